/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_netmap.c - the network map file (src/kme/netmap.c): a good map loads
 * with its KMEs, SAEs and links and the lookups find them; every way a map
 * can be wrong is refused with its one exact message (file, line, key); the
 * limits of docs/network.md §1 hold at the bound and fail one past it; and
 * netmap_check_against() refuses every contradiction with a KME's own
 * configuration.
 *
 * Maps are read from memory (netmap_read, file name "map.ini") except
 * where the file itself is the point (netmap_load).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kme/netmap.h"

static char err[2048];

/* The map in text (len bytes: it may hold a NUL), or NULL with err set. */
static netmap *read_map_n(const char *text, size_t len)
{
    FILE *f = fmemopen((void *)text, len, "r");
    assert_non_null(f);
    netmap *m = NULL;
    err[0] = '\0';
    int rc = netmap_read(f, "map.ini", &m, err, sizeof err);
    fclose(f);
    assert_true(rc == 0 ? m != NULL : m == NULL);
    return m;
}

static netmap *read_map(const char *text)
{
    return read_map_n(text, strlen(text));
}

static void expect_error(const char *text, const char *want)
{
    netmap *m = read_map(text);
    if (m) {
        netmap_free(m);
        fail_msg("accepted; wanted '%s'", want);
    }
    if (strcmp(err, want) != 0)
        fail_msg("got  '%s'\nwant '%s'", err, want);
}

/* The example of docs/network.md §1 with a relay-only KME-R added. */
static const char GOOD[] =
    "[network]\n"                        /* 1 */
    "version = 7   # changes with every edit\n"
    "\n"
    "[kme KME-C]\n"                      /* 4 */
    "saes = SAE_C1 SAE_C2\n"
    "[kme KME-A]\n"                      /* 6 */
    "saes = SAE_A1\tSAE_A2 SAE_A3\n"
    "[link LINK-BC]\n"                   /* 8 */
    "kmes = KME-B KME-C\n"
    "[kme KME-B]\n"                      /* 10 */
    "saes = SAE_B1 SAE_B2\n"
    "[link LINK-AB]\n"                   /* 12 */
    "kmes = KME-A KME-B\n"
    "[kme KME-R]\n"                      /* 14: a trusted node, no SAEs */
    "[link LINK-CR]\n"
    "kmes = KME-R KME-C\n";

static void test_good_map(void **state)
{
    (void)state;
    netmap *m = read_map(GOOD);
    if (!m)
        fail_msg("%s", err);
    assert_string_equal(m->path, "map.ini");
    assert_int_equal(m->version, 7);
    assert_int_equal(m->n_kmes, 4);
    assert_int_equal(m->n_links, 3);
    assert_int_equal(m->n_saes, 7);
    /* sorted by ID, whatever the file's order */
    const char *kmes[] = { "KME-A", "KME-B", "KME-C", "KME-R" };
    for (size_t i = 0; i < 4; i++) {
        assert_string_equal(m->kmes[i].id, kmes[i]);
        assert_int_equal(netmap_kme_index(m, kmes[i]), (int)i);
    }
    assert_string_equal(m->links[0].id, "LINK-AB");
    assert_string_equal(m->links[2].id, "LINK-CR");
    assert_int_equal(netmap_kme_index(m, "KME-Z"), -1);
    assert_null(netmap_kme_by_id(m, "KME-Z"));
    assert_null(netmap_kme_by_id(m, ""));

    const netmap_kme *a = netmap_kme_by_id(m, "KME-A");
    assert_int_equal(a->n_saes, 3);
    assert_string_equal(a->saes[1], "SAE_A2"); /* a tab separates too */
    assert_int_equal(a->line, 6);
    assert_int_equal(a->saes_line, 7);
    assert_ptr_equal(netmap_kme_of_sae(m, "SAE_A3"), a);
    assert_string_equal(netmap_kme_of_sae(m, "SAE_C2")->id, "KME-C");
    assert_null(netmap_kme_of_sae(m, "SAE_A4"));
    assert_null(netmap_kme_of_sae(m, "KME-A"));

    const netmap_kme *r = netmap_kme_by_id(m, "KME-R");
    assert_int_equal(r->n_saes, 0);
    assert_int_equal(r->saes_line, 0);

    /* neighbours in ID order, each with the link that joins them */
    const netmap_kme *c = netmap_kme_by_id(m, "KME-C");
    assert_int_equal(c->n_adj, 2);
    assert_string_equal(netmap_neighbour(m, c, 0)->id, "KME-B");
    assert_string_equal(m->links[c->adj[0].link].id, "LINK-BC");
    assert_string_equal(netmap_neighbour(m, c, 1)->id, "KME-R");
    assert_string_equal(m->links[c->adj[1].link].id, "LINK-CR");
    assert_null(netmap_neighbour(m, c, 2));
    assert_int_equal(a->n_adj, 1);
    assert_string_equal(netmap_neighbour(m, a, 0)->id, "KME-B");

    const netmap_link *cr = netmap_link_by_id(m, "LINK-CR");
    assert_non_null(cr);
    assert_string_equal(m->kmes[cr->kme[0]].id, "KME-R"); /* as the file names them */
    assert_string_equal(m->kmes[cr->kme[1]].id, "KME-C");
    assert_int_equal(cr->line, 15);
    assert_int_equal(cr->kmes_line, 16);
    assert_null(netmap_link_by_id(m, "LINK-XX"));
    netmap_free(m);
}

static void test_load_file(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_netmap.XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/map.ini", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(GOOD, f);
    fclose(f);
    netmap *m = NULL;
    assert_int_equal(netmap_load(path, &m, err, sizeof err), 0);
    assert_string_equal(m->path, path);
    netmap_free(m);

    char want[256];
    assert_int_equal(netmap_load(dir, &m, err, sizeof err), -1); /* a directory */
    assert_null(m);
    snprintf(want, sizeof want, "%s: cannot read: Is a directory", dir);
    assert_string_equal(err, want);
    unlink(path);
    assert_int_equal(netmap_load(path, &m, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s: cannot open: No such file or directory", path);
    assert_string_equal(err, want);
    rmdir(dir);
}

#define NET "[network]\nversion = 1\n"

static void test_syntax_errors(void **state)
{
    (void)state;
    expect_error("version = 1\n", "map.ini:1: key 'version' outside of any section");
    expect_error(NET "[kme KME-A\n", "map.ini:3: malformed section header '[kme KME-A'");
    expect_error(NET "[kme KME-A]\nsaes SAE_1\n",
                 "map.ini:4: expected 'key = value', got 'saes SAE_1'");
    static const char nul[] = NET "[kme KME-A]\nsaes = SAE_1\0x\n";
    netmap *m = read_map_n(nul, sizeof nul - 1);
    assert_null(m);
    assert_string_equal(err, "map.ini:4: contains a NUL byte");
    expect_error("", "map.ini: [network] version: missing (required)");
    expect_error("[kme KME-A]\n", "map.ini: [network] version: missing (required)");
    expect_error(NET, "map.ini: the map names no KME ([kme ID] sections)");
}

static void test_section_errors(void **state)
{
    (void)state;
    expect_error(NET "[kmes KME-A]\n", "map.ini:3: unknown section [kmes KME-A]");
    expect_error(NET "[peer KME-A]\n", "map.ini:3: unknown section [peer KME-A]");
    expect_error(NET "[network 2]\n", "map.ini:3: unknown section [network 2]");
    expect_error(NET "[kme]\n", "map.ini:3: [kme] needs an ID: [kme KME-A]");
    expect_error(NET "[link]\n", "map.ini:3: [link] needs an ID: [link LINK-AB]");
    expect_error(NET "[kme KME A]\n",
                 "map.ini:3: [kme ...]: 'KME A' is not printable text without spaces");
    expect_error(NET "[kme KME\x01" "A]\n",
                 "map.ini:3: [kme ...]: 'KME\x01" "A' is not printable text without spaces");
    char text[512];
    snprintf(text, sizeof text, NET "[link %0257d]\n", 0);
    expect_error(text, "map.ini:3: [link ...]: an ID of 257 bytes (at most 256)");
    snprintf(text, sizeof text, NET "[kme %0256d]\n", 0); /* 256 is allowed */
    netmap *m = read_map(text);
    assert_non_null(m);
    netmap_free(m);
    expect_error(NET "[kme KME-A]\n[kme KME-B]\n[kme KME-A]\n",
                 "map.ini:5: [kme KME-A] given twice (first on line 3)");
    expect_error(NET "[kme A]\n[kme B]\n[link L]\nkmes = A B\n[link L]\nkmes = B A\n",
                 "map.ini:7: [link L] given twice (first on line 5)");
    /* a KME and a link may share an ID: they are different things */
    m = read_map(NET "[kme X]\n[kme Y]\n[link X]\nkmes = X Y\n");
    assert_non_null(m);
    netmap_free(m);
}

static void test_key_errors(void **state)
{
    (void)state;
    expect_error("[network]\nversion = seven\n[kme A]\n",
                 "map.ini:2: [network] version: 'seven' is not an integer in 0..9007199254740991");
    expect_error("[network]\nversion = -1\n[kme A]\n",
                 "map.ini:2: [network] version: '-1' is not an integer in 0..9007199254740991");
    expect_error("[network]\nversion = 9007199254740992\n[kme A]\n",
                 "map.ini:2: [network] version: '9007199254740992' is not an integer in "
                 "0..9007199254740991");
    expect_error("[network]\nversion = 1\nversion = 2\n",
                 "map.ini:3: [network] version: given twice (first on line 2)");
    expect_error("[network]\nversion =\n", "map.ini:2: [network] version: empty value");
    expect_error(NET "[kme A]\nsae = S\n", "map.ini:4: unknown key 'sae' in [kme]");
    expect_error(NET "[kme A]\nversion = 2\n", "map.ini:4: unknown key 'version' in [kme]");
    expect_error(NET "[kme A]\nsaes =\n", "map.ini:4: [kme] saes: empty value");
    expect_error(NET "[kme A]\nsaes = S1\nsaes = S2\n",
                 "map.ini:5: [kme] saes: given twice (first on line 4)");
    /* the lines of a section's keys start afresh with the next section */
    netmap *m = read_map(NET "[kme A]\nsaes = S1\n[kme B]\nsaes = S2\n");
    assert_non_null(m);
    netmap_free(m);
    expect_error(NET "[kme A]\nsaes = S1 S2 S1\n", "map.ini:4: [kme] saes: SAE ID 'S1' listed twice");
    expect_error(NET "[kme A]\nsaes = S1 S2\n[kme B]\nsaes = S3 S2\n",
                 "map.ini:6: [kme] saes: SAE ID 'S2' is also behind A (line 4): an SAE sits "
                 "behind one KME only");
    expect_error(NET "[kme A]\nsaes = S1 S\x7f" "2\n",
                 "map.ini:4: [kme] saes: SAE ID: 'S\x7f" "2' is not printable text without spaces");
    char text[600];
    snprintf(text, sizeof text, NET "[kme A]\nsaes = S1 %0257d\n", 0);
    expect_error(text, "map.ini:4: [kme] saes: SAE ID: an ID of 257 bytes (at most 256)");
}

static void test_link_errors(void **state)
{
    (void)state;
    expect_error(NET "[kme A]\n[kme B]\n[link L]\nkmes = A\n",
                 "map.ini:6: [link] kmes: expected the two KME IDs of the link, got one");
    expect_error(NET "[kme A]\n[kme B]\n[link L]\nkmes = A B C\n",
                 "map.ini:6: [link] kmes: expected the two KME IDs of the link, got more");
    expect_error(NET "[kme A]\n[link L]\nkmes = A A\n",
                 "map.ini:5: [link] kmes: 'A' named twice: a link joins two different KMEs");
    expect_error(NET "[kme A]\n[link L]\nkmes = A B\x01\n",
                 "map.ini:5: [link] kmes: KME ID: 'B\x01' is not printable text without spaces");
    expect_error(NET "[kme A]\n[kme B]\n[link L]\n[kme C]\n",
                 "map.ini:5: [link L]: missing key 'kmes' (required)");
    expect_error(NET "[kme A]\n[kme B]\n[link L]\n",
                 "map.ini:5: [link L]: missing key 'kmes' (required)");
    expect_error(NET "[kme A]\n[link L]\nkmes = A Z\n",
                 "map.ini:5: [link] kmes: 'Z' is not a [kme ID] of the map");
    expect_error(NET "[kme A]\n[kme B]\n[link L1]\nkmes = A B\n[link L2]\nkmes = B A\n",
                 "map.ini:8: [link] kmes: B and A are already joined by L1 (line 5): one link "
                 "per pair of KMEs");
    /* a link may come before its KMEs; the first error in the file is told */
    netmap *m = read_map(NET "[link L]\nkmes = A B\n[kme A]\n[kme B]\n");
    assert_non_null(m);
    netmap_free(m);
    expect_error(NET "[link L]\nkmes = A Z\n[kme A]\nsaes = S S\n",
                 "map.ini:6: [kme] saes: SAE ID 'S' listed twice");
}

/* A growing text buffer for the generated maps. */
typedef struct text {
    char *s;
    size_t len, cap;
} text;

static void put(text *t, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(t->s + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        assert_true(n >= 0);
        if ((size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        t->cap = t->cap * 2 + (size_t)n + 1024;
        t->s = realloc(t->s, t->cap);
        assert_non_null(t->s);
    }
}

/* n KMEs K0000.., each joined to the next `step` KMEs around a ring
 * (n * step links, 2 * step per KME), then `extra` links of K0000 to
 * K(step+1).. (which pass the per-KME limit at step * 2 + extra > 64). */
static char *ring_map(unsigned n, unsigned step, unsigned extra, unsigned *last_line)
{
    text t = { 0 };
    put(&t, NET);
    unsigned line = 2;
    for (unsigned i = 0; i < n; i++, line++)
        put(&t, "[kme K%04u]\n", i);
    for (unsigned i = 0; i < n; i++)
        for (unsigned j = 1; j <= step; j++, line += 2)
            put(&t, "[link L%04u-%u]\nkmes = K%04u K%04u\n", i, j, i, (i + j) % n);
    for (unsigned j = 0; j < extra; j++, line += 2)
        put(&t, "[link X%u]\nkmes = K0000 K%04u\n", j, step + 1 + j);
    *last_line = line; /* the line of the last link's kmes */
    return t.s;
}

static void test_limits(void **state)
{
    (void)state;
    unsigned last;
    char want[256];
    /* 1,024 KMEs and 8,192 links (16 per KME) load */
    char *s = ring_map(1024, 8, 0, &last);
    netmap *m = read_map(s);
    if (!m)
        fail_msg("%s", err);
    assert_int_equal(m->n_kmes, 1024);
    assert_int_equal(m->n_links, 8192);
    assert_int_equal(m->kmes[5].n_adj, 16);
    netmap_free(m);
    free(s);
    /* one link more: refused on its header */
    s = ring_map(1024, 8, 1, &last);
    snprintf(want, sizeof want, "map.ini:%u: more than 8192 links ([link ID] sections)", last - 1);
    expect_error(s, want);
    free(s);
    /* one KME more */
    text t = { 0 };
    put(&t, NET);
    for (unsigned i = 0; i <= 1024; i++)
        put(&t, "[kme K%04u]\nsaes = S%u\n", i, i);
    expect_error(t.s, "map.ini:2051: more than 1024 KMEs ([kme ID] sections)");
    free(t.s);
    /* 64 links at one KME load; the 65th is refused on its kmes line */
    s = ring_map(100, 1, 62, &last);
    m = read_map(s);
    if (!m)
        fail_msg("%s", err);
    assert_int_equal(netmap_kme_by_id(m, "K0000")->n_adj, 64);
    netmap_free(m);
    free(s);
    s = ring_map(100, 1, 63, &last);
    snprintf(want, sizeof want, "map.ini:%u: [link] kmes: K0000 would have more than 64 links",
             last);
    expect_error(s, want);
    free(s);
}

/* ------------------------------------------------------------ against a configuration */

/* KME-B's view of GOOD: neighbours A and C, links AB and BC. */
static char *b_local[] = { "SAE_B1", "SAE_B2" };
static char *a_saes[] = { "SAE_A1", "SAE_A2", "SAE_A3" };
static char *c_saes[] = { "SAE_C1", "SAE_C2" };

typedef struct view {
    netmap_sae_list local;
    netmap_peer_view peers[2];
    netmap_link_view links[2];
    size_t n_peers, n_links;
} view;

static view b_view(void)
{
    return (view){ .local = { b_local, 2 },
                   .peers = { { "KME-A", { a_saes, 3 } }, { "KME-C", { c_saes, 2 } } },
                   .links = { { "LINK-AB", "KME-A" }, { "LINK-BC", "KME-C" } },
                   .n_peers = 2, .n_links = 2 };
}

static void expect_map_check(const netmap *m, const char *self, const view *v, const char *want)
{
    err[0] = '\0';
    int rc = netmap_check_against(m, self, &v->local, v->peers, v->n_peers, v->links,
                                  v->n_links, err, sizeof err);
    if (!want) {
        if (rc != 0)
            fail_msg("refused: %s", err);
        return;
    }
    assert_int_equal(rc, -1);
    if (strcmp(err, want) != 0)
        fail_msg("got  '%s'\nwant '%s'", err, want);
}

static void test_check_against(void **state)
{
    (void)state;
    netmap *m = read_map(GOOD);
    assert_non_null(m);
    view v = b_view();
    expect_map_check(m, "KME-B", &v, NULL);
    /* a neighbour may be configured without its SAEs in another order */
    char *a_shuffled[] = { "SAE_A3", "SAE_A1", "SAE_A2" };
    v.peers[0].saes = (netmap_sae_list){ a_shuffled, 3 };
    expect_map_check(m, "KME-B", &v, NULL);
    /* a KME with no peer and no link (KME-R's view, had it no link) */
    view lone = { .local = { NULL, 0 } };
    expect_map_check(m, "KME-R", &lone, "map.ini:16: [link] kmes: LINK-CR joins this KME (KME-R) to "
                 "KME-C in the map, but this KME's configuration has no such link");

    expect_map_check(m, "KME-X", &v, "map.ini: this KME (KME-X) is not in the map");
    v = b_view();
    char *fewer[] = { "SAE_B1" };
    v.local = (netmap_sae_list){ fewer, 1 };
    expect_map_check(m, "KME-B", &v, "map.ini:11: [kme] saes: 'SAE_B2' behind KME-B in the map is "
                 "not in this KME's [saes] local");
    char *more[] = { "SAE_B1", "SAE_B2", "SAE_B3" };
    v.local = (netmap_sae_list){ more, 3 };
    expect_map_check(m, "KME-B", &v, "map.ini:11: [kme] saes: 'SAE_B3' of this KME's [saes] local "
                 "is not behind KME-B in the map");
    char *elsewhere[] = { "SAE_B1", "SAE_B2", "SAE_C1" };
    v.local = (netmap_sae_list){ elsewhere, 3 };
    expect_map_check(m, "KME-B", &v, "map.ini:11: [kme] saes: 'SAE_C1' of this KME's [saes] local "
                 "is not behind KME-B in the map: the map puts it behind KME-C");

    v = b_view();
    v.peers[1].id = "KME-D";
    expect_map_check(m, "KME-B", &v, "map.ini: this KME's [peer KME-D] is not in the map");
    v = b_view();
    v.peers[0].saes.n = 2;
    expect_map_check(m, "KME-B", &v, "map.ini:7: [kme] saes: 'SAE_A3' behind KME-A in the map is "
                 "not in [peer KME-A] saes");
    /* the relay node has no saes line: its header's line is named */
    view r = { .local = { b_local, 1 },
               .peers = { { "KME-C", { c_saes, 2 } } },
               .links = { { "LINK-CR", "KME-C" } }, .n_peers = 1, .n_links = 1 };
    expect_map_check(m, "KME-R", &r, "map.ini:14: [kme] saes: 'SAE_B1' of this KME's [saes] local "
                 "is not behind KME-R in the map: the map puts it behind KME-B");
    r.local.n = 0;
    expect_map_check(m, "KME-R", &r, NULL);

    v = b_view();
    v.links[1].id = "LINK-BD";
    expect_map_check(m, "KME-B", &v, "map.ini: this KME's link LINK-BD is not in the map");
    v = b_view();
    v.links[1].peer = "KME-A";
    expect_map_check(m, "KME-B", &v, "map.ini:9: [link] kmes: LINK-BC joins KME-B and KME-C in the "
                 "map; this KME's configuration has it join KME-B and KME-A");
    v = b_view();
    v.links[1].id = "LINK-CR";
    expect_map_check(m, "KME-B", &v, "map.ini:16: [link] kmes: LINK-CR joins KME-R and KME-C in the "
                 "map; this KME's configuration has it join KME-B and KME-C");
    v = b_view();
    v.n_links = 1;
    expect_map_check(m, "KME-B", &v, "map.ini:9: [link] kmes: LINK-BC joins this KME (KME-B) to "
                 "KME-C in the map, but this KME's configuration has no such link");
    netmap_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_map),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_section_errors),
        cmocka_unit_test(test_key_errors),
        cmocka_unit_test(test_link_errors),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_check_against),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
