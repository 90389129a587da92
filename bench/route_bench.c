/* SPDX-License-Identifier: Apache-2.0 */
/*
 * route_bench.c - the routing code alone (src/kme/netmap.c, route.c) at the
 * scale of today's largest national QKD backbones, for planning beyond this
 * machine (docs/network.md, "Scale").
 *
 *     route_bench [--seed N] [--kmes N] [--links N]   (default 1, 150, 700)
 *
 * The network: N KMEs placed uniformly at random in a 1,000 km x 1,000 km
 * square (seeded: the same seed gives the same network), joined first by
 * a minimum spanning tree (so it is connected) and then by the shortest
 * remaining pairs until it has the links asked for, at most 64 per KME: a
 * geometric graph, as fibre backbones are.  It is written as a map file
 * and read by netmap_read(), as a KME would.
 *
 * Printed: the time to read the map and to build the routing table of one
 * source and of every source; the shortest path's length over all ordered
 * pairs (mean, max, histogram) and how many paths a destination gets; and
 * the relay's key consumption for a uniform demand of one 256-bit key per
 * ordered pair of KMEs over the first path: the first hop spends 256 bits
 * of its link, each further hop 256 + 256 (the one-time pad and the
 * Poly1305 key), compared with a one-hop network (a link between every two
 * KMEs, each carrying the 2 x 256 bits of its pair).  Then the same demand
 * split evenly over the paths of the shortest length, and the read and
 * build times at the map's limits (1,024 KMEs, 8,192 links).
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kme/netmap.h"
#include "kme/route.h"

#define KEY_BITS 256
#define MAC_BITS 256
#define SIDE_KM 1000.0

static uint64_t rng_state;

static uint64_t next_u64(void) /* splitmix64 */
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double next_unit(void)
{
    return (double)(next_u64() >> 11) / 9007199254740992.0;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *must_alloc(size_t n)
{
    void *p = calloc(1, n ? n : 1);
    if (!p) {
        fprintf(stderr, "route_bench: out of memory\n");
        exit(1);
    }
    return p;
}

typedef struct pair {
    float km;
    uint16_t a, b;
} pair;

static int cmp_pair(const void *x, const void *y)
{
    const pair *p = x, *q = y;
    return (p->km > q->km) - (p->km < q->km);
}

/* The generated network: KME i at (x[i], y[i]); links as pairs. */
typedef struct network {
    unsigned n, n_links;
    double *x, *y;
    pair *links;
    unsigned *degree;
} network;

static double dist_km(const network *g, unsigned a, unsigned b)
{
    return hypot(g->x[a] - g->x[b], g->y[a] - g->y[b]);
}

/* Prim's minimum spanning tree: n - 1 links, the network connected. */
static void spanning_tree(network *g, bool *joined)
{
    bool *in = must_alloc(g->n);
    double *best = must_alloc(g->n * sizeof *best);
    unsigned *from = must_alloc(g->n * sizeof *from);
    for (unsigned i = 0; i < g->n; i++)
        best[i] = INFINITY;
    best[0] = 0;
    for (unsigned step = 0; step < g->n; step++) {
        unsigned v = g->n;
        for (unsigned i = 0; i < g->n; i++)
            if (!in[i] && (v == g->n || best[i] < best[v]))
                v = i;
        in[v] = true;
        if (step) {
            g->links[g->n_links++] = (pair){ (float)best[v], (uint16_t)from[v], (uint16_t)v };
            joined[from[v] * g->n + v] = joined[v * g->n + from[v]] = true;
            g->degree[v]++;
            g->degree[from[v]]++;
        }
        for (unsigned i = 0; i < g->n; i++)
            if (!in[i] && dist_km(g, v, i) < best[i]) {
                best[i] = dist_km(g, v, i);
                from[i] = v;
            }
    }
    free(in);
    free(best);
    free(from);
}

static void generate(network *g, unsigned n, unsigned n_links)
{
    g->n = n;
    g->x = must_alloc(n * sizeof *g->x);
    g->y = must_alloc(n * sizeof *g->y);
    g->degree = must_alloc(n * sizeof *g->degree);
    g->links = must_alloc(n_links * sizeof *g->links);
    for (unsigned i = 0; i < n; i++) {
        g->x[i] = next_unit() * SIDE_KM;
        g->y[i] = next_unit() * SIDE_KM;
    }
    bool *joined = must_alloc((size_t)n * n);
    spanning_tree(g, joined);
    size_t n_pairs = (size_t)n * (n - 1) / 2, k = 0;
    pair *all = must_alloc(n_pairs * sizeof *all);
    for (unsigned a = 0; a < n; a++)
        for (unsigned b = a + 1; b < n; b++)
            all[k++] = (pair){ (float)dist_km(g, a, b), (uint16_t)a, (uint16_t)b };
    qsort(all, n_pairs, sizeof *all, cmp_pair);
    for (size_t i = 0; i < n_pairs && g->n_links < n_links; i++) {
        pair p = all[i];
        if (joined[p.a * n + p.b] || g->degree[p.a] >= NETMAP_MAX_LINKS_PER_KME
            || g->degree[p.b] >= NETMAP_MAX_LINKS_PER_KME)
            continue;
        joined[p.a * n + p.b] = joined[p.b * n + p.a] = true;
        g->degree[p.a]++;
        g->degree[p.b]++;
        g->links[g->n_links++] = p;
    }
    free(all);
    free(joined);
}

/* The map file of g, in memory. */
static char *map_text(const network *g, size_t *len)
{
    char *text = NULL;
    FILE *f = open_memstream(&text, len);
    if (!f)
        exit(1);
    fprintf(f, "[network]\nversion = 1\n");
    for (unsigned i = 0; i < g->n; i++)
        fprintf(f, "[kme KME-%04u]\nsaes = SAE-%04u-1 SAE-%04u-2\n", i, i, i);
    for (unsigned i = 0; i < g->n_links; i++)
        fprintf(f, "[link L-%04u-%04u]\nkmes = KME-%04u KME-%04u\n", g->links[i].a, g->links[i].b,
                g->links[i].a, g->links[i].b);
    fclose(f);
    return text;
}

static netmap *read_map(const char *text, size_t len, double *seconds)
{
    FILE *f = fmemopen((void *)text, len, "r");
    netmap *m = NULL;
    char err[1024];
    double t0 = now();
    if (!f || netmap_read(f, "bench.ini", &m, err, sizeof err) != 0) {
        fprintf(stderr, "route_bench: %s\n", f ? err : "fmemopen failed");
        exit(1);
    }
    *seconds = now() - t0;
    fclose(f);
    return m;
}

static route_table *build(const netmap *m, size_t source, double *seconds)
{
    route_table *t = NULL;
    char err[512];
    double t0 = now();
    if (route_build(m, m->kmes[source].id, &t, err, sizeof err) != 0) {
        fprintf(stderr, "route_bench: %s\n", err);
        exit(1);
    }
    *seconds = now() - t0;
    return t;
}

/* What the tables of every source say, summed. */
typedef struct stats {
    size_t pairs, unreachable, paths, with_four, hist[ROUTE_MAX_HOPS + 1];
    size_t hops_sum, max_hops, second_pairs, second_extra;
    double *load, *spread_load; /* bits per link: first path, equal-length paths */
} stats;

static void spend(double *load, const route_path *p, double share)
{
    load[p->link[0]] += KEY_BITS * share;
    for (unsigned h = 1; h < p->n_hops; h++)
        load[p->link[h]] += (KEY_BITS + MAC_BITS) * share;
}

static void account(stats *st, const route_table *t, size_t source, size_t n_kmes)
{
    for (size_t d = 0; d < n_kmes; d++) {
        if (d == source)
            continue;
        const route_path *p;
        size_t n = route_paths_to(t, d, &p);
        st->pairs++;
        if (n == 0) {
            st->unreachable++;
            continue;
        }
        st->paths += n;
        st->with_four += n == ROUTE_MAX_PATHS;
        st->hist[p[0].n_hops]++;
        st->hops_sum += p[0].n_hops;
        if (p[0].n_hops > st->max_hops)
            st->max_hops = p[0].n_hops;
        if (n > 1) {
            st->second_pairs++;
            st->second_extra += p[1].n_hops - p[0].n_hops;
        }
        spend(st->load, &p[0], 1.0);
        size_t equal = 1;
        while (equal < n && p[equal].n_hops == p[0].n_hops)
            equal++;
        for (size_t i = 0; i < equal; i++)
            spend(st->spread_load, &p[i], 1.0 / (double)equal);
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Total and per-link load; "x one-hop" compares with a network that has
 * a link between every two KMEs (each pair's key on its own link). */
static void print_load(const char *what, const double *load, size_t n_links, size_t pairs)
{
    double *sorted = must_alloc(n_links * sizeof *sorted), total = 0;
    size_t unused = 0;
    memcpy(sorted, load, n_links * sizeof *sorted);
    qsort(sorted, n_links, sizeof *sorted, cmp_double);
    for (size_t i = 0; i < n_links; i++) {
        total += sorted[i];
        unused += sorted[i] == 0;
    }
    double one_hop_total = (double)pairs * KEY_BITS, one_hop_link = 2.0 * KEY_BITS;
    double mean = total / (double)n_links, p90 = sorted[n_links * 9 / 10];
    double max = sorted[n_links - 1];
    printf("  %s: total %.2f Mbit = %.2f x one-hop\n", what, total / 1e6, total / one_hop_total);
    printf("    per link kbit: mean %.1f (%.0f x one-hop), p90 %.1f, max %.1f (%.0f x one-hop,"
           " %.1f x mean), unused links %zu\n", mean / 1e3, mean / one_hop_link, p90 / 1e3,
           max / 1e3, max / one_hop_link, max / mean, unused);
    free(sorted);
}

static void describe(const network *g)
{
    double sum = 0, max = 0;
    unsigned max_deg = 0;
    for (unsigned i = 0; i < g->n_links; i++) {
        sum += g->links[i].km;
        if (g->links[i].km > max)
            max = g->links[i].km;
    }
    for (unsigned i = 0; i < g->n; i++)
        if (g->degree[i] > max_deg)
            max_deg = g->degree[i];
    printf("network: %u KMEs, %u links in %.0f x %.0f km; link length mean %.0f km, max %.0f km;"
           " links per KME mean %.1f, max %u\n", g->n, g->n_links, SIDE_KM, SIDE_KM,
           sum / g->n_links, max, 2.0 * g->n_links / g->n, max_deg);
}

static void free_network(network *g)
{
    free(g->x);
    free(g->y);
    free(g->links);
    free(g->degree);
}

static void main_case(unsigned n, unsigned n_links)
{
    network g = { 0 };
    generate(&g, n, n_links);
    describe(&g);
    size_t len;
    char *text = map_text(&g, &len);
    double parse_s, s, total_s = 0, max_s = 0;
    netmap *m = read_map(text, len, &parse_s);
    stats st = { .load = must_alloc(m->n_links * sizeof(double)),
                 .spread_load = must_alloc(m->n_links * sizeof(double)) };
    for (size_t src = 0; src < m->n_kmes; src++) {
        route_table *t = build(m, src, &s);
        total_s += s;
        if (s > max_s)
            max_s = s;
        account(&st, t, src, m->n_kmes);
        route_free(t);
    }
    printf("read the map (%zu bytes)            %8.2f ms\n", len, parse_s * 1e3);
    printf("routing table of one source         %8.2f ms mean, %.2f ms max\n",
           total_s * 1e3 / (double)m->n_kmes, max_s * 1e3);
    printf("routing tables of all %4zu sources  %8.2f ms\n", m->n_kmes, total_s * 1e3);
    size_t reached = st.pairs - st.unreachable;
    printf("ordered pairs %zu, unreachable %zu; shortest path: mean %.2f hops, max %zu;"
           " paths per pair mean %.2f, four paths %.1f%%\n", st.pairs, st.unreachable,
           (double)st.hops_sum / (double)reached, st.max_hops,
           (double)st.paths / (double)reached, 100.0 * (double)st.with_four / (double)reached);
    printf("second path: %.2f hops longer than the first on average (%zu pairs have one)\n",
           (double)st.second_extra / (double)(st.second_pairs ? st.second_pairs : 1),
           st.second_pairs);
    printf("hops  pairs\n");
    for (size_t h = 1; h <= st.max_hops; h++)
        printf("%4zu  %6zu  %5.1f%%\n", h, st.hist[h], 100.0 * (double)st.hist[h] / (double)reached);
    printf("relay key consumption, one %d-bit key per ordered pair (one-hop network: %d bits"
           " per link):\n", KEY_BITS, 2 * KEY_BITS);
    print_load("first path", st.load, m->n_links, reached);
    print_load("split over equal-length paths", st.spread_load, m->n_links, reached);
    free(st.load);
    free(st.spread_load);
    netmap_free(m);
    free(text);
    free_network(&g);
}

/* At the map's limits: read it, and build the tables of a few sources. */
static void limits_case(void)
{
    network g = { 0 };
    generate(&g, NETMAP_MAX_KMES, NETMAP_MAX_LINKS);
    size_t len;
    char *text = map_text(&g, &len);
    double parse_s, s, total_s = 0, max_s = 0;
    netmap *m = read_map(text, len, &parse_s);
    const unsigned sources = 8;
    for (unsigned i = 0; i < sources; i++) {
        route_table *t = build(m, i * (m->n_kmes / sources), &s);
        total_s += s;
        if (s > max_s)
            max_s = s;
        route_free(t);
    }
    printf("at the limits (%zu KMEs, %zu links, %.1f MB map): read %.1f ms; routing table of"
           " one source %.1f ms mean, %.1f ms max (%u sources)\n", m->n_kmes, m->n_links,
           (double)len / 1e6, parse_s * 1e3, total_s * 1e3 / sources, max_s * 1e3, sources);
    netmap_free(m);
    free(text);
    free_network(&g);
}

int main(int argc, char **argv)
{
    unsigned long seed = 1, n = 150, links = 700;
    for (int i = 1; i + 1 < argc; i += 2) {
        unsigned long *opt = strcmp(argv[i], "--seed") == 0 ? &seed
                           : strcmp(argv[i], "--kmes") == 0 ? &n
                           : strcmp(argv[i], "--links") == 0 ? &links : NULL;
        if (!opt) {
            fprintf(stderr, "usage: route_bench [--seed N] [--kmes N] [--links N]\n");
            return 2;
        }
        *opt = strtoul(argv[i + 1], NULL, 10);
    }
    if (n < 2 || n > NETMAP_MAX_KMES || links < n - 1 || links > NETMAP_MAX_LINKS
        || links > n * (n - 1) / 2) {
        fprintf(stderr, "route_bench: 2..%d KMEs, and between KMEs - 1 and %d links\n",
                NETMAP_MAX_KMES, NETMAP_MAX_LINKS);
        return 2;
    }
    rng_state = seed;
    printf("route_bench, seed %lu\n", seed);
    main_case((unsigned)n, (unsigned)links);
    limits_case();
    return 0;
}
