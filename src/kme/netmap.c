/* SPDX-License-Identifier: Apache-2.0 */
/*
 * netmap.c - reads and validates the network map (netmap.h; format and
 * rules: docs/network.md §1).
 *
 * The file goes through the key-table engine of common/ini.c like the
 * KME's own configuration (config.c): one table of keys, setters for the
 * two list values, and the section headers [network], [kme ID] and
 * [link ID] handled here.  Whatever one line can get wrong (a bad ID, an
 * SAE behind two KMEs, a KME or link given twice, a limit passed) is
 * refused on that line as it is read, so the first error in the file is
 * the one reported.  What needs the whole file (a link naming a KME defined
 * further down, two links between the same KMEs, 64 links per KME) is
 * checked link by link in file order once the file is read.  Then the KMEs
 * and links are sorted by ID and the adjacency and the SAE index built: the
 * result is immutable.
 *
 * netmap_check_against() (the map against a KME's own configuration) is at
 * the end.
 */
#include "kme/netmap.h"

#include "common/ini.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct netmap_sae {
    const char *id;             /* points into the KME's saes */
    uint16_t kme;
};

/* ------------------------------------------------------------ ID sets */

/* IDs seen while reading, to refuse a repeated one on its own line: an
 * open-addressing hash from ID to index (the keys point into the map). */
typedef struct idset {
    const char **keys;
    uint32_t *vals;
    size_t cap, n;
} idset;

static uint64_t hash_id(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static long idset_get(const idset *set, const char *key)
{
    if (!set->cap)
        return -1;
    for (size_t i = hash_id(key) & (set->cap - 1);; i = (i + 1) & (set->cap - 1)) {
        if (!set->keys[i])
            return -1;
        if (strcmp(set->keys[i], key) == 0)
            return (long)set->vals[i];
    }
}

static void idset_insert(idset *set, const char *key, uint32_t val)
{
    size_t i = hash_id(key) & (set->cap - 1);
    while (set->keys[i])
        i = (i + 1) & (set->cap - 1);
    set->keys[i] = key;
    set->vals[i] = val;
    set->n++;
}

/* Add key (not yet in the set): 0, or -1 out of memory. */
static int idset_put(idset *set, const char *key, uint32_t val)
{
    if ((set->n + 1) * 2 > set->cap) { /* at most half full */
        idset grown = { calloc(set->cap ? set->cap * 2 : 64, sizeof *grown.keys),
                        calloc(set->cap ? set->cap * 2 : 64, sizeof *grown.vals),
                        set->cap ? set->cap * 2 : 64, 0 };
        if (!grown.keys || !grown.vals) {
            free(grown.keys);
            free(grown.vals);
            return -1;
        }
        for (size_t i = 0; i < set->cap; i++)
            if (set->keys[i])
                idset_insert(&grown, set->keys[i], set->vals[i]);
        free(set->keys);
        free(set->vals);
        *set = grown;
    }
    idset_insert(set, key, val);
    return 0;
}

static void idset_free(idset *set)
{
    free(set->keys);
    free(set->vals);
    memset(set, 0, sizeof *set);
}

/* ------------------------------------------------------------ the table */

enum { IN_MAP = 0, IN_SECTION = 1 };
enum section { SEC_NONE, SEC_NETWORK, SEC_KME, SEC_LINK };

static int set_saes(ini_table *t, unsigned line, const ini_key *k, const char *v);
static int set_kmes(ini_table *t, unsigned line, const ini_key *k, const char *v);

static const ini_key map_keys[] = {
    { "network", "version", INI_INT, true, IN_MAP, offsetof(netmap, version), 0,
      NETMAP_MAX_VERSION, NULL, NULL, NULL },
    { "kme", "saes", INI_CUSTOM, false, IN_SECTION, 0, 0, 0, NULL, NULL, set_saes },
    { "link", "kmes", INI_CUSTOM, true, IN_SECTION, 0, 0, 0, NULL, NULL, set_kmes },
};
#define N_KEYS (sizeof map_keys / sizeof map_keys[0])

typedef struct parse_state {
    ini_table t;
    netmap *m;
    size_t cap_kmes, cap_links, cap_ends;
    char *(*ends)[2];           /* per link (file order): its KMEs as written */
    idset kme_ids, link_ids, sae_ids; /* to file-order KME / link index */
    enum section sec;
    size_t cur;                 /* the [kme ID] or [link ID] being read */
} parse_state;

static parse_state *state_of(ini_table *t)
{
    return t->ctx;
}

static int fail_nomem(ini_table *t, unsigned line)
{
    ini_fail(t, line, NULL, "out of memory");
    return INI_NOMEM;
}

/* One ID of a list or a header: not too long (then not quoted: the
 * message stays short) and printable without spaces.  0, or the reason. */
static const char *bad_id(const char *id, char *why, size_t whylen)
{
    if (strlen(id) > NETMAP_MAX_ID_LEN)
        snprintf(why, whylen, "an ID of %zu bytes (at most %d)", strlen(id), NETMAP_MAX_ID_LEN);
    else if (!ini_is_id(id))
        snprintf(why, whylen, "'%s' is not printable text without spaces", id);
    else
        return NULL;
    return why;
}

static int add_sae(ini_table *t, unsigned line, const ini_key *k, const char *id)
{
    parse_state *ps = state_of(t);
    netmap_kme *kme = &ps->m->kmes[ps->cur];
    char why[NETMAP_MAX_ID_LEN + 64];
    if (bad_id(id, why, sizeof why))
        return ini_fail(t, line, k, "SAE ID: %s", why);
    long other = idset_get(&ps->sae_ids, id);
    if (other == (long)ps->cur)
        return ini_fail(t, line, k, "SAE ID '%s' listed twice", id);
    if (other >= 0)
        return ini_fail(t, line, k, "SAE ID '%s' is also behind %s (line %u): an SAE sits "
                        "behind one KME only", id, ps->m->kmes[other].id,
                        ps->m->kmes[other].saes_line);
    char **grown = realloc(kme->saes, (kme->n_saes + 1) * sizeof *grown);
    if (!grown)
        return fail_nomem(t, line);
    kme->saes = grown;
    if (!(grown[kme->n_saes] = strdup(id)))
        return fail_nomem(t, line);
    if (idset_put(&ps->sae_ids, grown[kme->n_saes], (uint32_t)ps->cur) != 0) {
        free(grown[kme->n_saes]);
        return fail_nomem(t, line);
    }
    kme->n_saes++;
    return 0;
}

/* [kme ID] saes = SAE ... (space-separated) */
static int set_saes(ini_table *t, unsigned line, const ini_key *k, const char *v)
{
    parse_state *ps = state_of(t);
    ps->m->kmes[ps->cur].saes_line = line;
    char *copy = strdup(v), *save = NULL;
    if (!copy)
        return fail_nomem(t, line);
    int rc = 0;
    for (char *tok = strtok_r(copy, " \t", &save); tok && rc == 0; tok = strtok_r(NULL, " \t", &save))
        rc = add_sae(t, line, k, tok);
    free(copy);
    return rc;
}

/* [link ID] kmes = KME KME: two different IDs, resolved once the whole
 * file is read (a [kme ID] may come after the link). */
static int set_kmes(ini_table *t, unsigned line, const ini_key *k, const char *v)
{
    parse_state *ps = state_of(t);
    ps->m->links[ps->cur].kmes_line = line;
    char *copy = strdup(v), *save = NULL, *tok[3] = { NULL };
    if (!copy)
        return fail_nomem(t, line);
    size_t n = 0;
    for (char *s = strtok_r(copy, " \t", &save); s; s = strtok_r(NULL, " \t", &save))
        tok[n < 3 ? n++ : 2] = s;
    char why[NETMAP_MAX_ID_LEN + 64];
    int rc = 0;
    if (n != 2)
        rc = ini_fail(t, line, k, "expected the two KME IDs of the link, got %s",
                      n < 2 ? "one" : "more");
    for (size_t i = 0; i < 2 && rc == 0; i++)
        if (bad_id(tok[i], why, sizeof why))
            rc = ini_fail(t, line, k, "KME ID: %s", why);
    if (rc == 0 && strcmp(tok[0], tok[1]) == 0)
        rc = ini_fail(t, line, k, "'%s' named twice: a link joins two different KMEs", tok[0]);
    for (size_t i = 0; i < 2 && rc == 0; i++)
        if (!(ps->ends[ps->cur][i] = strdup(tok[i])))
            rc = fail_nomem(t, line);
    free(copy);
    return rc;
}

/* ------------------------------------------------------------ sections */

/* The [kme ID] or [link ID] just read is complete; its keys' lines start
 * afresh for the next one. */
static int finish_section(parse_state *ps)
{
    for (size_t i = 0; i < N_KEYS; i++) {
        if (map_keys[i].base != IN_SECTION)
            continue;
        if (ps->sec == SEC_LINK && strcmp(map_keys[i].section, "link") == 0
            && map_keys[i].required && !ps->t.lines[i]) {
            const netmap_link *l = &ps->m->links[ps->cur];
            return ini_fail(&ps->t, l->line, NULL, "[link %s]: missing key '%s' (required)",
                            l->id, map_keys[i].name);
        }
        ps->t.lines[i] = 0;
    }
    ps->t.base[IN_SECTION] = NULL;
    ps->sec = SEC_NONE;
    return 0;
}

/* Make room for one more element of size sz in *arr (count n, capacity
 * *cap): 0, or -1. */
static int grow(void *arr, size_t n, size_t *cap, size_t sz)
{
    if (n < *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : 16;
    void *p = realloc(*(void **)arr, ncap * sz);
    if (!p)
        return -1;
    memset((char *)p + *cap * sz, 0, (ncap - *cap) * sz);
    *(void **)arr = p;
    *cap = ncap;
    return 0;
}

static int begin_kme(parse_state *ps, unsigned line, const char *id)
{
    netmap *m = ps->m;
    long first = idset_get(&ps->kme_ids, id);
    if (first >= 0)
        return ini_fail(&ps->t, line, NULL, "[kme %s] given twice (first on line %u)", id,
                        m->kmes[first].line);
    if (m->n_kmes == NETMAP_MAX_KMES)
        return ini_fail(&ps->t, line, NULL, "more than %d KMEs ([kme ID] sections)",
                        NETMAP_MAX_KMES);
    if (grow(&m->kmes, m->n_kmes, &ps->cap_kmes, sizeof *m->kmes) != 0)
        return fail_nomem(&ps->t, line);
    netmap_kme *k = &m->kmes[m->n_kmes];
    k->line = line;
    if (!(k->id = strdup(id)))
        return fail_nomem(&ps->t, line);
    ps->cur = m->n_kmes++;
    if (idset_put(&ps->kme_ids, k->id, (uint32_t)ps->cur) != 0)
        return fail_nomem(&ps->t, line);
    ps->sec = SEC_KME;
    return 0;
}

static int begin_link(parse_state *ps, unsigned line, const char *id)
{
    netmap *m = ps->m;
    long first = idset_get(&ps->link_ids, id);
    if (first >= 0)
        return ini_fail(&ps->t, line, NULL, "[link %s] given twice (first on line %u)", id,
                        m->links[first].line);
    if (m->n_links == NETMAP_MAX_LINKS)
        return ini_fail(&ps->t, line, NULL, "more than %d links ([link ID] sections)",
                        NETMAP_MAX_LINKS);
    if (grow(&m->links, m->n_links, &ps->cap_links, sizeof *m->links) != 0
        || grow(&ps->ends, m->n_links, &ps->cap_ends, sizeof *ps->ends) != 0)
        return fail_nomem(&ps->t, line);
    netmap_link *l = &m->links[m->n_links];
    l->line = line;
    if (!(l->id = strdup(id)))
        return fail_nomem(&ps->t, line);
    ps->cur = m->n_links++;
    if (idset_put(&ps->link_ids, l->id, (uint32_t)ps->cur) != 0)
        return fail_nomem(&ps->t, line);
    ps->sec = SEC_LINK;
    return 0;
}

/* [network], [kme ID] or [link ID]. */
static int on_section(void *ud, unsigned line, const char *name, const char *arg)
{
    parse_state *ps = ud;
    char why[NETMAP_MAX_ID_LEN + 64];
    if (finish_section(ps) != 0)
        return -1;
    bool kme = strcmp(name, "kme") == 0, link = strcmp(name, "link") == 0;
    if (strcmp(name, "network") == 0 && !*arg) {
        ps->sec = SEC_NETWORK;
        return 0;
    }
    if (!kme && !link)
        return ini_fail(&ps->t, line, NULL, "unknown section [%s%s%.64s]", name, *arg ? " " : "",
                        arg);
    if (!*arg)
        return ini_fail(&ps->t, line, NULL, "[%s] needs an ID: [%s %s]", name, name,
                        kme ? "KME-A" : "LINK-AB");
    if (bad_id(arg, why, sizeof why))
        return ini_fail(&ps->t, line, NULL, "[%s ...]: %s", name, why);
    int rc = kme ? begin_kme(ps, line, arg) : begin_link(ps, line, arg);
    if (rc == 0)
        ps->t.base[IN_SECTION] = ps->m;
    return rc;
}

/* parse_state starts with its ini_table: the engine's handlers take it */
static const ini_handler map_ini = { on_section, ini_on_pair, ini_on_error };

/* Only [network]'s keys are checked by the engine; the others were
 * checked section by section. */
static bool network_key(ini_table *t, const ini_key *k)
{
    (void)t;
    return k->base == IN_MAP;
}

/* ------------------------------------------------------------ the whole file */

static int cmp_kme(const void *a, const void *b)
{
    return strcmp(((const netmap_kme *)a)->id, ((const netmap_kme *)b)->id);
}

static int cmp_link(const void *a, const void *b)
{
    return strcmp(((const netmap_link *)a)->id, ((const netmap_link *)b)->id);
}

static int cmp_adj(const void *a, const void *b)
{
    const netmap_adj *x = a, *y = b;
    return (x->kme > y->kme) - (x->kme < y->kme);
}

static int cmp_sae(const void *a, const void *b)
{
    return strcmp(((const struct netmap_sae *)a)->id, ((const struct netmap_sae *)b)->id);
}

/* The link between the KMEs of index a and b (sorted indices), or NULL. */
static const netmap_link *link_between(const netmap *m, const netmap_kme *a, uint16_t b)
{
    for (size_t i = 0; i < a->n_adj; i++)
        if (a->adj[i].kme == b)
            return &m->links[a->adj[i].link];
    return NULL;
}

static int add_adj(netmap_kme *k, uint16_t other, uint16_t link)
{
    if (!k->adj && !(k->adj = malloc(NETMAP_MAX_LINKS_PER_KME * sizeof *k->adj)))
        return -1;
    k->adj[k->n_adj++] = (netmap_adj){ other, link };
    return 0;
}

/* One link, in file order (the KMEs already sorted): both ends are KMEs of
 * the map, not yet joined by another link, and under the per-KME limit. */
static int join(parse_state *ps, size_t li)
{
    netmap *m = ps->m;
    netmap_link *l = &m->links[li];
    const ini_key *k = &map_keys[2];
    long idx[2];
    for (int i = 0; i < 2; i++) {
        idx[i] = netmap_kme_index(m, ps->ends[li][i]);
        if (idx[i] < 0)
            return ini_fail(&ps->t, l->kmes_line, k, "'%s' is not a [kme ID] of the map",
                            ps->ends[li][i]);
        l->kme[i] = (uint16_t)idx[i];
    }
    netmap_kme *a = &m->kmes[idx[0]], *b = &m->kmes[idx[1]];
    const netmap_link *other = link_between(m, a, l->kme[1]);
    if (other)
        return ini_fail(&ps->t, l->kmes_line, k, "%s and %s are already joined by %s (line %u): "
                        "one link per pair of KMEs", a->id, b->id, other->id, other->line);
    for (int i = 0; i < 2; i++)
        if (m->kmes[idx[i]].n_adj == NETMAP_MAX_LINKS_PER_KME)
            return ini_fail(&ps->t, l->kmes_line, k, "%s would have more than %d links",
                            m->kmes[idx[i]].id, NETMAP_MAX_LINKS_PER_KME);
    if (add_adj(a, l->kme[1], (uint16_t)li) != 0 || add_adj(b, l->kme[0], (uint16_t)li) != 0)
        return fail_nomem(&ps->t, 0);
    return 0;
}

/* Sort the links by ID and make the adjacency point at their new places. */
static int sort_links(netmap *m)
{
    uint16_t *where = malloc((m->n_links ? m->n_links : 1) * sizeof *where);
    netmap_link *orig = malloc((m->n_links ? m->n_links : 1) * sizeof *orig);
    if (!where || !orig) {
        free(where);
        free(orig);
        return -1;
    }
    if (m->n_links) { /* no NULL to memcpy and qsort, even for 0 bytes */
        memcpy(orig, m->links, m->n_links * sizeof *orig);
        qsort(m->links, m->n_links, sizeof *m->links, cmp_link);
    }
    for (size_t i = 0; i < m->n_links; i++) { /* IDs are unique: find each */
        netmap_link *at = bsearch(&orig[i], m->links, m->n_links, sizeof *m->links, cmp_link);
        where[i] = (uint16_t)(at - m->links);
    }
    for (size_t i = 0; i < m->n_kmes; i++) {
        netmap_kme *k = &m->kmes[i];
        for (size_t j = 0; j < k->n_adj; j++)
            k->adj[j].link = where[k->adj[j].link];
        if (k->n_adj)
            qsort(k->adj, k->n_adj, sizeof *k->adj, cmp_adj);
    }
    free(where);
    free(orig);
    return 0;
}

static int build_sae_index(netmap *m)
{
    size_t n = 0;
    for (size_t i = 0; i < m->n_kmes; i++)
        n += m->kmes[i].n_saes;
    if (!(m->sae_index = malloc((n ? n : 1) * sizeof *m->sae_index)))
        return -1;
    for (size_t i = 0; i < m->n_kmes; i++)
        for (size_t j = 0; j < m->kmes[i].n_saes; j++)
            m->sae_index[m->n_saes++] = (struct netmap_sae){ m->kmes[i].saes[j], (uint16_t)i };
    if (m->n_saes)
        qsort(m->sae_index, m->n_saes, sizeof *m->sae_index, cmp_sae);
    return 0;
}

static int finish_map(parse_state *ps)
{
    netmap *m = ps->m;
    int rc = ini_apply_defaults(&ps->t, network_key);
    if (rc != 0)
        return rc;
    if (m->n_kmes == 0)
        return ini_fail(&ps->t, 0, NULL, "the map names no KME ([kme ID] sections)");
    /* the link ends are names until now: sort the KMEs, then resolve */
    qsort(m->kmes, m->n_kmes, sizeof *m->kmes, cmp_kme);
    for (size_t i = 0; i < m->n_links; i++)
        if ((rc = join(ps, i)) != 0)
            return rc;
    if (sort_links(m) != 0 || build_sae_index(m) != 0)
        return fail_nomem(&ps->t, 0);
    return 0;
}

static void free_state(parse_state *ps)
{
    for (size_t i = 0; ps->ends && i < ps->m->n_links; i++) {
        free(ps->ends[i][0]);
        free(ps->ends[i][1]);
    }
    free(ps->ends);
    idset_free(&ps->kme_ids);
    idset_free(&ps->link_ids);
    idset_free(&ps->sae_ids);
}

int netmap_read(FILE *f, const char *name, netmap **out, char *err, size_t errlen)
{
    *out = NULL;
    netmap *m = calloc(1, sizeof *m);
    unsigned lines[N_KEYS] = { 0 };
    parse_state ps = { .m = m };
    ps.t = (ini_table){ .keys = map_keys, .n_keys = N_KEYS, .lines = lines,
                        .base = { m, NULL }, .file = name, .err = err, .errlen = errlen,
                        .ctx = &ps };
    if (!m || !(m->path = strdup(name))) {
        free(m);
        snprintf(err, errlen, "%s: out of memory", name);
        return -1;
    }
    int rc = ini_read(f, &map_ini, &ps);
    if (rc == 0)
        rc = finish_section(&ps);
    if (rc == 0)
        rc = finish_map(&ps);
    free_state(&ps);
    if (rc != 0) {
        netmap_free(m);
        return -1;
    }
    *out = m;
    return 0;
}

int netmap_load(const char *path, netmap **out, char *err, size_t errlen)
{
    *out = NULL;
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    int rc = netmap_read(f, path, out, err, errlen);
    fclose(f);
    return rc;
}

void netmap_free(netmap *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n_kmes; i++) {
        netmap_kme *k = &m->kmes[i];
        free(k->id);
        for (size_t j = 0; j < k->n_saes; j++)
            free(k->saes[j]);
        free(k->saes);
        free(k->adj);
    }
    for (size_t i = 0; i < m->n_links; i++)
        free(m->links[i].id);
    free(m->kmes);
    free(m->links);
    free(m->sae_index);
    free(m->path);
    free(m);
}

/* ------------------------------------------------------------ lookups */

int netmap_kme_index(const netmap *m, const char *kme_id)
{
    netmap_kme key = { .id = (char *)kme_id };
    const netmap_kme *k = bsearch(&key, m->kmes, m->n_kmes, sizeof *m->kmes, cmp_kme);
    return k ? (int)(k - m->kmes) : -1;
}

const netmap_kme *netmap_kme_by_id(const netmap *m, const char *kme_id)
{
    int i = netmap_kme_index(m, kme_id);
    return i >= 0 ? &m->kmes[i] : NULL;
}

const netmap_kme *netmap_kme_of_sae(const netmap *m, const char *sae_id)
{
    struct netmap_sae key = { .id = sae_id };
    const struct netmap_sae *s = bsearch(&key, m->sae_index, m->n_saes, sizeof key, cmp_sae);
    return s ? &m->kmes[s->kme] : NULL;
}

const netmap_link *netmap_link_by_id(const netmap *m, const char *link_id)
{
    netmap_link key = { .id = (char *)link_id };
    if (!m->n_links)
        return NULL;
    return bsearch(&key, m->links, m->n_links, sizeof *m->links, cmp_link);
}

const netmap_kme *netmap_neighbour(const netmap *m, const netmap_kme *k, size_t i)
{
    return i < k->n_adj ? &m->kmes[k->adj[i].kme] : NULL;
}

/* ------------------------------------------------------------ against a configuration */

typedef struct check_ctx {
    const netmap *m;
    char *err;
    size_t errlen;
} check_ctx;

/* A contradiction: "MAP:LINE: [section] key: reason"; -1. */
#define refuse(c, line, section, key, ...) \
    ini_format_errorf((c)->err, (c)->errlen, (c)->m->path, line, section, key, __VA_ARGS__)

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The map puts exactly the SAEs of list behind k; what names list in the
 * configuration is whose ("this KME's [saes] local", "[peer KME-B] saes"). */
static int same_saes(const check_ctx *c, const netmap_kme *k, const netmap_sae_list *list,
                     const char *whose)
{
    unsigned line = k->saes_line ? k->saes_line : k->line;
    for (size_t i = 0; i < list->n; i++) {
        const netmap_kme *at = netmap_kme_of_sae(c->m, list->ids[i]);
        if (at != k)
            return refuse(c, line, "kme", "saes", "'%s' of %s is not behind %s in the map%s%s",
                          list->ids[i], whose, k->id, at ? ": the map puts it behind " : "",
                          at ? at->id : "");
    }
    char **sorted = malloc((list->n ? list->n : 1) * sizeof *sorted);
    if (!sorted)
        return refuse(c, 0, NULL, NULL, "out of memory");
    if (list->n) {
        memcpy(sorted, list->ids, list->n * sizeof *sorted);
        qsort(sorted, list->n, sizeof *sorted, cmp_str);
    }
    int rc = 0;
    for (size_t i = 0; i < k->n_saes && rc == 0; i++)
        if (!list->n || !bsearch(&k->saes[i], sorted, list->n, sizeof *sorted, cmp_str))
            rc = refuse(c, line, "kme", "saes", "'%s' behind %s in the map is not in %s",
                        k->saes[i], k->id, whose);
    free(sorted);
    return rc;
}

/* The configured links of self are the map's, with the same peers. */
static int same_links(const check_ctx *c, const netmap_kme *self,
                      const netmap_link_view *links, size_t n_links)
{
    const netmap *m = c->m;
    for (size_t i = 0; i < n_links; i++) {
        const netmap_link *l = netmap_link_by_id(m, links[i].id);
        if (!l)
            return refuse(c, 0, NULL, NULL, "this KME's link %s is not in the map", links[i].id);
        const char *a = m->kmes[l->kme[0]].id, *b = m->kmes[l->kme[1]].id;
        bool match = (strcmp(a, self->id) == 0 && strcmp(b, links[i].peer) == 0)
                  || (strcmp(b, self->id) == 0 && strcmp(a, links[i].peer) == 0);
        if (!match)
            return refuse(c, l->kmes_line, "link", "kmes", "%s joins %s and %s in the map; "
                          "this KME's configuration has it join %s and %s", l->id, a, b,
                          self->id, links[i].peer);
    }
    for (size_t i = 0; i < self->n_adj; i++) {
        const netmap_link *l = &m->links[self->adj[i].link];
        size_t j = 0;
        while (j < n_links && strcmp(links[j].id, l->id) != 0)
            j++;
        if (j == n_links)
            return refuse(c, l->kmes_line, "link", "kmes", "%s joins this KME (%s) to %s in "
                          "the map, but this KME's configuration has no such link", l->id,
                          self->id, m->kmes[self->adj[i].kme].id);
    }
    return 0;
}

int netmap_check_against(const netmap *m, const char *self_id, const netmap_sae_list *local,
                         const netmap_peer_view *peers, size_t n_peers,
                         const netmap_link_view *links, size_t n_links,
                         char *err, size_t errlen)
{
    check_ctx c = { m, err, errlen };
    const netmap_kme *self = netmap_kme_by_id(m, self_id);
    if (!self)
        return refuse(&c, 0, NULL, NULL, "this KME (%s) is not in the map", self_id);
    if (same_saes(&c, self, local, "this KME's [saes] local") != 0)
        return -1;
    for (size_t i = 0; i < n_peers; i++) {
        const netmap_kme *p = netmap_kme_by_id(m, peers[i].id);
        char whose[NETMAP_MAX_ID_LEN + 32];
        if (!p)
            return refuse(&c, 0, NULL, NULL, "this KME's [peer %s] is not in the map",
                          peers[i].id);
        snprintf(whose, sizeof whose, "[peer %s] saes", peers[i].id);
        if (same_saes(&c, p, &peers[i].saes, whose) != 0)
            return -1;
    }
    return same_links(&c, self, links, n_links);
}
