/* SPDX-License-Identifier: Apache-2.0 */
/*
 * route.c - the routing table of one KME (route.h says what it holds and
 * guarantees; docs/network.md §2 how the KME uses it).
 *
 * Breadth-first searches over the map, nothing else.  A BFS that takes
 * each KME's neighbours in ID order (the map keeps them so) and keeps the
 * first parent it finds gives every KME it reaches the shortest path from
 * the root that is smallest by IDs: KMEs leave the queue in the order of
 * their paths, so the first to reach a KME has the smallest path to it.
 *
 *   1. First hops: for each neighbour N of the source S, one BFS from N in
 *      the map without S (depth <= ROUTE_MAX_HOPS - 1) gives, for every
 *      destination at once, the best path S, N, ...  Each destination keeps
 *      the best four of these candidates (one per first hop).
 *   2. Second hops, only when some destination has fewer than four: for
 *      each neighbour N and each neighbour M != S of N, one BFS from M in
 *      the map without S and N gives the best path S, N, M, ...; a
 *      destination short of paths keeps the best of these whose (N, M) no
 *      path of step 1 starts with.
 *
 * Cost: deg(S) searches, plus sum of deg(N) over S's neighbours when step 2
 * runs, each O(KMEs + links).  bench/route_bench.c measures it.
 */
#include "kme/route.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define UNREACHED 0xFF

struct route_table {
    const netmap *map;
    uint16_t source;
    uint32_t *first;            /* n_kmes + 1 offsets: dest d's paths are
                                 * paths[first[d] .. first[d + 1]) */
    route_path *paths;
};

/* The best paths to one destination so far, best first. */
typedef struct candidates {
    route_path p[ROUTE_MAX_PATHS];
    uint8_t n;
} candidates;

/* One breadth-first search: its arrays, reused from search to search. */
typedef struct bfs {
    uint16_t *parent, *via;     /* the KME a KME was reached from, and the link */
    uint8_t *depth;             /* hops from the root, or UNREACHED */
    uint16_t *queue;            /* every KME reached, in the order reached */
    uint8_t *banned;            /* KMEs the search must not enter */
    size_t reached;
} bfs;

/* Fewer hops first, then the smaller KME IDs hop by hop (map indices are
 * in ID order). */
static int path_cmp(const route_path *a, const route_path *b)
{
    if (a->n_hops != b->n_hops)
        return a->n_hops < b->n_hops ? -1 : 1;
    for (unsigned i = 0; i <= a->n_hops; i++)
        if (a->kme[i] != b->kme[i])
            return a->kme[i] < b->kme[i] ? -1 : 1;
    return 0;
}

/* Insert p into c, which keeps at most cap paths. */
static void keep_best(candidates *c, const route_path *p, unsigned cap)
{
    unsigned at = c->n;
    while (at > 0 && path_cmp(p, &c->p[at - 1]) < 0)
        at--;
    if (at >= cap)
        return;
    unsigned last = c->n < cap ? c->n : cap - 1;
    memmove(&c->p[at + 1], &c->p[at], (last - at) * sizeof *c->p);
    c->p[at] = *p;
    if (c->n < cap)
        c->n++;
}

static int bfs_init(bfs *b, size_t n)
{
    b->parent = malloc(n * sizeof *b->parent);
    b->via = malloc(n * sizeof *b->via);
    b->depth = malloc(n);
    b->queue = malloc(n * sizeof *b->queue);
    b->banned = calloc(n, 1);
    return b->parent && b->via && b->depth && b->queue && b->banned ? 0 : -1;
}

static void bfs_free(bfs *b)
{
    free(b->parent);
    free(b->via);
    free(b->depth);
    free(b->queue);
    free(b->banned);
}

static void bfs_run(bfs *b, const netmap *m, uint16_t root, unsigned max_depth)
{
    memset(b->depth, UNREACHED, m->n_kmes);
    b->depth[root] = 0;
    b->queue[0] = root;
    size_t head = 0, tail = 1;
    while (head < tail) {
        uint16_t v = b->queue[head++];
        if (b->depth[v] == max_depth)
            continue;
        const netmap_kme *k = &m->kmes[v];
        for (size_t i = 0; i < k->n_adj; i++) {
            uint16_t w = k->adj[i].kme;
            if (b->banned[w] || b->depth[w] != UNREACHED)
                continue;
            b->depth[w] = (uint8_t)(b->depth[v] + 1);
            b->parent[w] = v;
            b->via[w] = k->adj[i].link;
            b->queue[tail++] = w;
        }
    }
    b->reached = tail;
}

/* The path prefix (n_pre links: kme[0..n_pre-1] and link[0..n_pre-1],
 * ending at the search's root) followed by the search's path to d. */
static void make_path(const bfs *b, const route_path *prefix, unsigned n_pre, uint16_t d,
                      route_path *p)
{
    memcpy(p->kme, prefix->kme, n_pre * sizeof *p->kme);
    memcpy(p->link, prefix->link, n_pre * sizeof *p->link);
    p->n_hops = (uint16_t)(n_pre + b->depth[d]);
    for (unsigned i = p->n_hops; i > n_pre; i--) {
        p->kme[i] = d;
        p->link[i - 1] = b->via[d];
        d = b->parent[d];
    }
    p->kme[n_pre] = d; /* the root */
}

/* Step 1: the best path through each first hop, best four kept. */
static void first_hops(const netmap *m, uint16_t s, bfs *b, candidates *cand)
{
    const netmap_kme *src = &m->kmes[s];
    route_path prefix = { .kme = { s } };
    b->banned[s] = 1;
    for (size_t i = 0; i < src->n_adj; i++) {
        prefix.link[0] = src->adj[i].link;
        bfs_run(b, m, src->adj[i].kme, ROUTE_MAX_HOPS - 1);
        for (size_t q = 0; q < b->reached; q++) {
            route_path p;
            make_path(b, &prefix, 1, b->queue[q], &p);
            keep_best(&cand[b->queue[q]], &p, ROUTE_MAX_PATHS);
        }
    }
    b->banned[s] = 0;
}

/* Does a path of c start with s, n, m? */
static bool starts_with(const candidates *c, uint16_t n, uint16_t m)
{
    for (unsigned i = 0; i < c->n; i++)
        if (c->p[i].n_hops >= 2 && c->p[i].kme[1] == n && c->p[i].kme[2] == m)
            return true;
    return false;
}

/* Step 2: for destinations with 1..3 paths, the best paths through a new
 * (first hop, second hop) pair, into fill. */
static void second_hops(const netmap *m, uint16_t s, bfs *b, const candidates *cand,
                        candidates *fill)
{
    const netmap_kme *src = &m->kmes[s];
    route_path prefix = { .kme = { s } };
    b->banned[s] = 1;
    for (size_t i = 0; i < src->n_adj; i++) {
        uint16_t n = src->adj[i].kme;
        const netmap_kme *nk = &m->kmes[n];
        prefix.kme[1] = n;
        prefix.link[0] = src->adj[i].link;
        b->banned[n] = 1;
        for (size_t j = 0; j < nk->n_adj; j++) {
            uint16_t mid = nk->adj[j].kme;
            if (mid == s)
                continue;
            prefix.link[1] = nk->adj[j].link;
            bfs_run(b, m, mid, ROUTE_MAX_HOPS - 2);
            for (size_t q = 0; q < b->reached; q++) {
                uint16_t d = b->queue[q];
                unsigned room = ROUTE_MAX_PATHS - cand[d].n;
                if (cand[d].n == 0 || room == 0 || starts_with(&cand[d], n, mid))
                    continue;
                route_path p;
                make_path(b, &prefix, 2, d, &p);
                keep_best(&fill[d], &p, room);
            }
        }
        b->banned[n] = 0;
    }
    b->banned[s] = 0;
}

static bool needs_fill(const candidates *cand, size_t n)
{
    for (size_t d = 0; d < n; d++)
        if (cand[d].n > 0 && cand[d].n < ROUTE_MAX_PATHS)
            return true;
    return false;
}

/* Both lists of each destination, merged in order, into the table. */
static int store(route_table *t, const candidates *cand, const candidates *fill)
{
    size_t n = t->map->n_kmes, total = 0;
    for (size_t d = 0; d < n; d++)
        total += cand[d].n + fill[d].n;
    t->first = malloc((n + 1) * sizeof *t->first);
    t->paths = malloc((total ? total : 1) * sizeof *t->paths);
    if (!t->first || !t->paths)
        return -1;
    uint32_t at = 0;
    for (size_t d = 0; d < n; d++) {
        candidates all = cand[d];
        for (unsigned i = 0; i < fill[d].n; i++)
            keep_best(&all, &fill[d].p[i], ROUTE_MAX_PATHS);
        t->first[d] = at;
        memcpy(&t->paths[at], all.p, all.n * sizeof *all.p);
        at += all.n;
    }
    t->first[n] = at;
    return 0;
}

static int compute(route_table *t)
{
    const netmap *m = t->map;
    size_t n = m->n_kmes;
    candidates *cand = calloc(n, sizeof *cand), *fill = calloc(n, sizeof *fill);
    bfs b = { 0 };
    int rc = -1;
    if (cand && fill && bfs_init(&b, n) == 0) {
        first_hops(m, t->source, &b, cand);
        cand[t->source].n = 0; /* no path to itself */
        if (needs_fill(cand, n))
            second_hops(m, t->source, &b, cand, fill);
        rc = store(t, cand, fill);
    }
    bfs_free(&b);
    free(cand);
    free(fill);
    return rc;
}

int route_build(const netmap *m, const char *source_kme, route_table **out, char *err,
                size_t errlen)
{
    *out = NULL;
    int s = netmap_kme_index(m, source_kme);
    if (s < 0) {
        snprintf(err, errlen, "%s: no [kme %s] in the map", m->path, source_kme);
        return -1;
    }
    route_table *t = calloc(1, sizeof *t);
    if (t) {
        t->map = m;
        t->source = (uint16_t)s;
    }
    if (!t || compute(t) != 0) {
        route_free(t);
        snprintf(err, errlen, "routing table of %s: out of memory", source_kme);
        return -1;
    }
    *out = t;
    return 0;
}

void route_free(route_table *t)
{
    if (!t)
        return;
    free(t->first);
    free(t->paths);
    free(t);
}

size_t route_paths_to(const route_table *t, size_t dest, const route_path **paths)
{
    *paths = NULL;
    if (dest >= t->map->n_kmes)
        return 0;
    *paths = &t->paths[t->first[dest]];
    return t->first[dest + 1] - t->first[dest];
}

size_t route_paths(const route_table *t, const char *dest_kme, const route_path **paths)
{
    int d = netmap_kme_index(t->map, dest_kme);
    *paths = NULL;
    return d < 0 ? 0 : route_paths_to(t, (size_t)d, paths);
}

size_t route_rank(const route_table *t, const char *dest_kme, route_score_fn score, void *ud,
                  const route_path **out)
{
    const route_path *paths;
    size_t n = route_paths(t, dest_kme, &paths);
    int64_t scores[ROUTE_MAX_PATHS];
    const netmap *m = t->map;
    for (size_t i = 0; i < n; i++) {
        const route_path *p = &paths[i];
        int64_t sc = score(ud, &m->kmes[p->kme[1]], &m->links[p->link[0]]);
        size_t at = i; /* insertion sort: stable, so ties keep the table's order */
        while (at > 0 && (out[at - 1]->n_hops > p->n_hops
                          || (out[at - 1]->n_hops == p->n_hops && scores[at - 1] < sc))) {
            out[at] = out[at - 1];
            scores[at] = scores[at - 1];
            at--;
        }
        out[at] = p;
        scores[at] = sc;
    }
    return n;
}

void route_path_format(const netmap *m, const route_path *p, char *buf, size_t buflen)
{
    size_t used = 0;
    if (buflen)
        buf[0] = '\0';
    for (unsigned i = 0; i <= p->n_hops && used < buflen; i++) {
        int w = snprintf(buf + used, buflen - used, "%s%s", i ? " " : "", m->kmes[p->kme[i]].id);
        if (w < 0)
            break;
        used += (size_t)w;
    }
}
