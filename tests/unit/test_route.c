/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_route.c - the routing table (src/kme/route.c) on small maps whose
 * paths are known by hand (chain, ring, a leaf behind one hub, more first
 * hops than paths, disconnected, 16 and 17 hops), the ranking by a
 * first-hop score, and on random maps against an independent breadth-first
 * search in the test: every guarantee of route.h checked for every source
 * and destination.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kme/netmap.h"
#include "kme/route.h"

static char err[1024];

static netmap *map_of(const char *text)
{
    FILE *f = fmemopen((void *)text, strlen(text), "r");
    assert_non_null(f);
    netmap *m = NULL;
    if (netmap_read(f, "map.ini", &m, err, sizeof err) != 0)
        fail_msg("%s", err);
    fclose(f);
    return m;
}

/* "[network] version = 1", the KMEs, and the links: links is "A:B B:C ..."
 * (link IDs are "L" + both ends). */
static netmap *graph(const char *kmes, const char *links)
{
    char text[16384];
    size_t used = (size_t)snprintf(text, sizeof text, "[network]\nversion = 1\n");
    char copy[4096];
    snprintf(copy, sizeof copy, "%s", kmes);
    for (char *save = NULL, *k = strtok_r(copy, " ", &save); k; k = strtok_r(NULL, " ", &save))
        used += (size_t)snprintf(text + used, sizeof text - used, "[kme %s]\n", k);
    snprintf(copy, sizeof copy, "%s", links);
    for (char *save = NULL, *l = strtok_r(copy, " ", &save); l; l = strtok_r(NULL, " ", &save)) {
        char *dash = strchr(l, ':');
        assert_non_null(dash);
        *dash = '\0';
        used += (size_t)snprintf(text + used, sizeof text - used, "[link L%s%s]\nkmes = %s %s\n",
                                 l, dash + 1, l, dash + 1);
        assert_true(used < sizeof text);
    }
    return map_of(text);
}

static route_table *table_of(const netmap *m, const char *source)
{
    route_table *t = NULL;
    if (route_build(m, source, &t, err, sizeof err) != 0)
        fail_msg("%s", err);
    return t;
}

/* The paths to dest as "A B C | A D C". */
static const char *paths_to(const route_table *t, const netmap *m, const char *dest)
{
    static char out[1024];
    const route_path *p;
    size_t n = route_paths(t, dest, &p);
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        char one[256];
        route_path_format(m, &p[i], one, sizeof one);
        size_t used = strlen(out);
        snprintf(out + used, sizeof out - used, "%s%s", i ? " | " : "", one);
    }
    return out;
}

static void test_chain(void **state)
{
    (void)state;
    netmap *m = graph("KME-A KME-B KME-C", "KME-A:KME-B KME-B:KME-C");
    route_table *a = table_of(m, "KME-A"), *b = table_of(m, "KME-B");
    assert_string_equal(paths_to(a, m, "KME-B"), "KME-A KME-B");
    assert_string_equal(paths_to(a, m, "KME-C"), "KME-A KME-B KME-C");
    assert_string_equal(paths_to(a, m, "KME-A"), ""); /* not to itself */
    assert_string_equal(paths_to(a, m, "KME-Z"), ""); /* not in the map */
    assert_string_equal(paths_to(b, m, "KME-A"), "KME-B KME-A");
    assert_string_equal(paths_to(b, m, "KME-C"), "KME-B KME-C");
    const route_path *p;
    assert_int_equal(route_paths(a, "KME-C", &p), 1);
    assert_int_equal(p->n_hops, 2);
    assert_string_equal(m->links[p->link[0]].id, "LKME-AKME-B");
    assert_string_equal(m->links[p->link[1]].id, "LKME-BKME-C");
    assert_int_equal(route_paths_to(a, 99, &p), 0);
    route_free(a);
    route_free(b);
    route_table *t = NULL;
    assert_int_equal(route_build(m, "KME-Z", &t, err, sizeof err), -1);
    assert_null(t);
    assert_string_equal(err, "map.ini: no [kme KME-Z] in the map");
    netmap_free(m);
}

static void test_ring(void **state)
{
    (void)state;
    netmap *m = graph("A B C D", "A:B B:C C:D D:A");
    route_table *a = table_of(m, "A");
    /* two 2-hop paths with different first hops, by IDs */
    assert_string_equal(paths_to(a, m, "C"), "A B C | A D C");
    /* the neighbour directly, and the long way round as the second */
    assert_string_equal(paths_to(a, m, "B"), "A B | A D C B");
    assert_string_equal(paths_to(a, m, "D"), "A D | A B C D");
    route_free(a);
    route_table *c = table_of(m, "C");
    assert_string_equal(paths_to(c, m, "A"), "C B A | C D A");
    route_free(c);
    netmap_free(m);
}

/* The score of a first hop: its position in the ud string, later is
 * better ("DB": D scores above B); counts the calls. */
static int calls;
static int64_t score_by_list(void *ud, const netmap_kme *next, const netmap_link *link)
{
    (void)link;
    calls++;
    const char *at = strstr(ud, next->id);
    return at ? at - (const char *)ud : -1;
}

static void test_rank(void **state)
{
    (void)state;
    netmap *m = graph("A B C D", "A:B B:C C:D D:A");
    route_table *a = table_of(m, "A");
    const route_path *out[ROUTE_MAX_PATHS];
    char one[64];
    calls = 0;
    assert_int_equal(route_rank(a, "C", score_by_list, "BD", out), 2);
    assert_int_equal(calls, 2);
    route_path_format(m, out[0], one, sizeof one);
    assert_string_equal(one, "A D C"); /* D has more stock */
    route_path_format(m, out[1], one, sizeof one);
    assert_string_equal(one, "A B C");
    assert_int_equal(route_rank(a, "C", score_by_list, "DB", out), 2);
    route_path_format(m, out[0], one, sizeof one);
    assert_string_equal(one, "A B C");
    /* a tie keeps the table's order */
    assert_int_equal(route_rank(a, "C", score_by_list, "", out), 2);
    route_path_format(m, out[0], one, sizeof one);
    assert_string_equal(one, "A B C");
    /* fewer hops first, whatever the score */
    assert_int_equal(route_rank(a, "B", score_by_list, "BD", out), 2);
    route_path_format(m, out[0], one, sizeof one);
    assert_string_equal(one, "A B");
    /* the table itself is unchanged */
    assert_string_equal(paths_to(a, m, "C"), "A B C | A D C");
    assert_int_equal(route_rank(a, "Z", score_by_list, "", out), 0);
    route_free(a);
    netmap_free(m);
}

static void test_leaf_behind_hub(void **state)
{
    (void)state;
    /* S has one neighbour H; H reaches T through X, Y and Z */
    netmap *m = graph("S H X Y Z T", "S:H H:X H:Y H:Z X:T Y:T Z:T");
    route_table *s = table_of(m, "S");
    /* one first hop: the other paths differ in their second hop */
    assert_string_equal(paths_to(s, m, "T"), "S H X T | S H Y T | S H Z T");
    assert_string_equal(paths_to(s, m, "X"), "S H X | S H Y T X | S H Z T X");
    assert_string_equal(paths_to(s, m, "H"), "S H");
    route_free(s);
    netmap_free(m);
}

static void test_first_hops_preferred(void **state)
{
    (void)state;
    /* S reaches T in 2 hops through A, and through A-C in 3; in 4 through
     * B: the new first hop B comes in, the second hop C of A fills */
    netmap *m = graph("S A B C D E T", "S:A S:B A:T A:C C:T B:D D:E E:T");
    route_table *s = table_of(m, "S");
    assert_string_equal(paths_to(s, m, "T"), "S A T | S A C T | S B D E T");
    route_free(s);
    netmap_free(m);
    /* five first hops of 2 hops each: the best four by IDs, no fill */
    m = graph("S N1 N2 N3 N4 N5 T", "S:N5 S:N4 S:N3 S:N2 S:N1 N1:T N2:T N3:T N4:T N5:T");
    s = table_of(m, "S");
    assert_string_equal(paths_to(s, m, "T"), "S N1 T | S N2 T | S N3 T | S N4 T");
    route_free(s);
    netmap_free(m);
    /* a new first hop wins over a shorter path through a used one: with
     * four first hops there is no fill, so S A X T (3 hops) is left out
     * for the 4-hop paths through B and D */
    m = graph("S A B C D P Q T X", "S:A S:B S:C S:D A:T A:X X:T B:P P:Q Q:T C:Q D:P");
    s = table_of(m, "S");
    assert_string_equal(paths_to(s, m, "T"), "S A T | S C Q T | S B P Q T | S D P Q T");
    route_free(s);
    netmap_free(m);
}

static void test_disconnected(void **state)
{
    (void)state;
    netmap *m = graph("A B C D E", "A:B C:D D:E");
    route_table *a = table_of(m, "A");
    assert_string_equal(paths_to(a, m, "B"), "A B");
    assert_string_equal(paths_to(a, m, "C"), "");
    assert_string_equal(paths_to(a, m, "E"), "");
    route_free(a);
    route_table *e = table_of(m, "E");
    assert_string_equal(paths_to(e, m, "C"), "E D C");
    assert_string_equal(paths_to(e, m, "A"), "");
    route_free(e);
    netmap_free(m);
}

static void test_sixteen_hops(void **state)
{
    (void)state;
    char kmes[512] = "", links[1024] = "";
    for (int i = 0; i <= 17; i++) {
        snprintf(kmes + strlen(kmes), sizeof kmes - strlen(kmes), "K%02d ", i);
        if (i)
            snprintf(links + strlen(links), sizeof links - strlen(links), "K%02d:K%02d ", i - 1, i);
    }
    netmap *m = graph(kmes, links);
    route_table *t = table_of(m, "K00");
    const route_path *p;
    assert_int_equal(route_paths(t, "K16", &p), 1);
    assert_int_equal(p->n_hops, 16);
    assert_string_equal(m->kmes[p->kme[16]].id, "K16");
    assert_string_equal(m->links[p->link[15]].id, "LK15K16");
    assert_int_equal(route_paths(t, "K17", &p), 0); /* 17 hops: unreachable */
    route_free(t);
    t = table_of(m, "K17");
    assert_int_equal(route_paths(t, "K00", &p), 0);
    assert_int_equal(route_paths(t, "K01", &p), 1);
    route_free(t);
    /* closed into a ring of 18: K00 to K09 both ways in 9 hops, to K17
     * directly and the long way in 17 (too long), to K16 in 2 and 16 */
    strcat(links, "K17:K00");
    netmap_free(m);
    m = graph(kmes, links);
    t = table_of(m, "K00");
    assert_int_equal(route_paths(t, "K09", &p), 2);
    assert_int_equal(p[0].n_hops, 9);
    assert_int_equal(p[1].n_hops, 9);
    assert_int_equal(route_paths(t, "K17", &p), 1);
    assert_int_equal(route_paths(t, "K16", &p), 2);
    assert_int_equal(p[1].n_hops, 16);
    route_free(t);
    netmap_free(m);
}

/* ------------------------------------------------------------ random maps */

static uint64_t rng;
static unsigned next_rand(unsigned below)
{
    rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return (unsigned)((rng >> 33) % below);
}

/* Hops from root to every KME without entering the banned ones (-1: not
 * reached): the test's own BFS. */
static void distances(const netmap *m, size_t root, const bool *banned, int *dist)
{
    size_t *queue = malloc(m->n_kmes * sizeof *queue), head = 0, tail = 0;
    for (size_t i = 0; i < m->n_kmes; i++)
        dist[i] = -1;
    dist[root] = 0;
    queue[tail++] = root;
    while (head < tail) {
        size_t v = queue[head++];
        for (size_t i = 0; i < m->n_links; i++) {
            const netmap_link *l = &m->links[i];
            size_t w;
            if (l->kme[0] == v)
                w = l->kme[1];
            else if (l->kme[1] == v)
                w = l->kme[0];
            else
                continue;
            if (!banned[w] && dist[w] < 0) {
                dist[w] = dist[v] + 1;
                queue[tail++] = w;
            }
        }
    }
    free(queue);
}

static bool joined_by(const netmap *m, uint16_t a, uint16_t b, uint16_t link)
{
    const netmap_link *l = &m->links[link];
    return (l->kme[0] == a && l->kme[1] == b) || (l->kme[0] == b && l->kme[1] == a);
}

/* One path: from s to d, loopless, each hop the link it names. */
static void check_path(const netmap *m, const route_path *p, size_t s, size_t d)
{
    assert_true(p->n_hops >= 1 && p->n_hops <= ROUTE_MAX_HOPS);
    assert_int_equal(p->kme[0], s);
    assert_int_equal(p->kme[p->n_hops], d);
    for (unsigned i = 0; i < p->n_hops; i++) {
        assert_true(joined_by(m, p->kme[i], p->kme[i + 1], p->link[i]));
        for (unsigned j = i + 1; j <= p->n_hops; j++)
            assert_int_not_equal(p->kme[i], p->kme[j]);
    }
}

static bool path_less(const route_path *a, const route_path *b)
{
    if (a->n_hops != b->n_hops)
        return a->n_hops < b->n_hops;
    for (unsigned i = 0; i <= a->n_hops; i++)
        if (a->kme[i] != b->kme[i])
            return a->kme[i] < b->kme[i];
    return false;
}

/* Every guarantee of route.h for s to d. */
/* Distances the test computes for one source S: from each first hop N
 * without S, and from each second hop M (a neighbour of N) without S and N. */
typedef struct source_dists {
    int *first[NETMAP_MAX_LINKS_PER_KME];
    int *second[NETMAP_MAX_LINKS_PER_KME][NETMAP_MAX_LINKS_PER_KME];
} source_dists;

/* How many (N, M) pairs reach d in time and are not the start of the
 * first path through N (the one a pair may not repeat). */
static size_t fill_pairs(const netmap *m, size_t s, size_t d, const route_path *p, size_t n,
                         const source_dists *sd)
{
    const netmap_kme *src = &m->kmes[s];
    size_t avail = 0;
    for (size_t i = 0; i < src->n_adj; i++) {
        const netmap_kme *nk = &m->kmes[src->adj[i].kme];
        size_t first = 0;
        while (first < n && p[first].kme[1] != src->adj[i].kme)
            first++;
        for (size_t j = 0; j < nk->n_adj; j++) {
            uint16_t mid = nk->adj[j].kme;
            int dd = mid == s ? -1 : sd->second[i][j][d];
            if (dd < 0 || dd + 2 > ROUTE_MAX_HOPS)
                continue;
            if (first < n && p[first].n_hops >= 2 && p[first].kme[2] == mid)
                continue;
            avail++;
        }
    }
    return avail;
}

static void check_dest(const netmap *m, const route_table *t, size_t s, size_t d,
                       const source_dists *sd)
{
    int *const *first_dist = sd->first;
    const route_path *p;
    size_t n = route_paths_to(t, d, &p);
    const netmap_kme *src = &m->kmes[s];
    /* F: the first hops that reach d within the hop limit, best hops */
    size_t usable = 0;
    int best_unused = 1 << 20;
    for (size_t i = 0; i < src->n_adj; i++) {
        int dd = first_dist[i][d];
        if (d != s && dd >= 0 && dd + 1 <= ROUTE_MAX_HOPS)
            usable++;
    }
    if (usable == 0) {
        assert_int_equal(n, 0);
        return;
    }
    assert_true(n >= (usable < ROUTE_MAX_PATHS ? usable : ROUTE_MAX_PATHS));
    bool used[NETMAP_MAX_LINKS_PER_KME] = { false };
    size_t distinct = 0;
    int worst_phase1 = 0;
    for (size_t i = 0; i < n; i++) {
        check_path(m, &p[i], s, d);
        if (i)
            assert_true(path_less(&p[i - 1], &p[i]));
        for (size_t j = 0; j < i; j++) /* (first hop, second hop) differ */
            assert_false(p[j].kme[1] == p[i].kme[1]
                         && (p[j].n_hops < 2 || p[i].n_hops < 2 || p[j].kme[2] == p[i].kme[2]));
        size_t a = 0;
        while (src->adj[a].kme != p[i].kme[1])
            a++;
        if (!used[a]) { /* the first path through a first hop is its best */
            used[a] = true;
            distinct++;
            assert_int_equal(p[i].n_hops, first_dist[a][d] + 1);
            if (p[i].n_hops > worst_phase1)
                worst_phase1 = p[i].n_hops;
        }
    }
    /* as many first hops as can be, and none left out beats one taken */
    assert_int_equal(distinct, usable < ROUTE_MAX_PATHS ? usable : ROUTE_MAX_PATHS);
    /* with fewer than four first hops, as many (first, second) pairs as
     * reach d fill up the four */
    if (usable < ROUTE_MAX_PATHS) {
        size_t want = usable + fill_pairs(m, s, d, p, n, sd);
        assert_int_equal(n, want < ROUTE_MAX_PATHS ? want : ROUTE_MAX_PATHS);
    }
    for (size_t i = 0; i < src->n_adj; i++)
        if (!used[i] && first_dist[i][d] >= 0 && first_dist[i][d] + 1 <= ROUTE_MAX_HOPS
            && first_dist[i][d] + 1 < best_unused)
            best_unused = first_dist[i][d] + 1;
    assert_true(best_unused >= worst_phase1);
    /* the first path is a shortest one */
    bool *none = calloc(m->n_kmes, sizeof *none);
    int *dist = malloc(m->n_kmes * sizeof *dist);
    distances(m, s, none, dist);
    assert_int_equal(p[0].n_hops, dist[d]);
    free(none);
    free(dist);
}

static void check_source(const netmap *m, size_t s)
{
    route_table *t = table_of(m, m->kmes[s].id);
    const netmap_kme *src = &m->kmes[s];
    bool *banned = calloc(m->n_kmes, sizeof *banned);
    source_dists *sd = calloc(1, sizeof *sd);
    banned[s] = true;
    for (size_t i = 0; i < src->n_adj; i++) {
        const netmap_kme *nk = &m->kmes[src->adj[i].kme];
        sd->first[i] = malloc(m->n_kmes * sizeof(int));
        distances(m, src->adj[i].kme, banned, sd->first[i]);
        banned[src->adj[i].kme] = true;
        for (size_t j = 0; j < nk->n_adj; j++) {
            sd->second[i][j] = malloc(m->n_kmes * sizeof(int));
            distances(m, nk->adj[j].kme, banned, sd->second[i][j]);
        }
        banned[src->adj[i].kme] = false;
    }
    for (size_t d = 0; d < m->n_kmes; d++)
        check_dest(m, t, s, d, sd);
    for (size_t i = 0; i < src->n_adj; i++) {
        free(sd->first[i]);
        for (size_t j = 0; j < m->kmes[src->adj[i].kme].n_adj; j++)
            free(sd->second[i][j]);
    }
    free(sd);
    free(banned);
    route_free(t);
}

static void test_random_maps(void **state)
{
    (void)state;
    for (unsigned seed = 1; seed <= 30; seed++) {
        rng = seed;
        unsigned n = 8 + next_rand(40), links = n + next_rand(n * 2);
        char kmes[4096] = "", list[16384] = "";
        for (unsigned i = 0; i < n; i++)
            snprintf(kmes + strlen(kmes), sizeof kmes - strlen(kmes), "K%02u ", i);
        /* a long chain (paths past 16 hops) plus random chords */
        bool *have = calloc(n * n, sizeof *have);
        for (unsigned i = 0; i < links; i++) {
            unsigned a = i < n - 1 ? i : next_rand(n), b = i < n - 1 ? i + 1 : next_rand(n);
            if (a == b || have[a * n + b] || (seed % 3 == 0 && i >= n - 1 && i < n + 2))
                continue;
            have[a * n + b] = have[b * n + a] = true;
            snprintf(list + strlen(list), sizeof list - strlen(list), "K%02u:K%02u ", a, b);
        }
        free(have);
        netmap *m = graph(kmes, list);
        for (size_t s = 0; s < m->n_kmes; s++)
            check_source(m, s);
        netmap_free(m);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chain),
        cmocka_unit_test(test_ring),
        cmocka_unit_test(test_rank),
        cmocka_unit_test(test_leaf_behind_hub),
        cmocka_unit_test(test_first_hops_preferred),
        cmocka_unit_test(test_disconnected),
        cmocka_unit_test(test_sixteen_hops),
        cmocka_unit_test(test_random_maps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
