/* SPDX-License-Identifier: Apache-2.0 */
/*
 * route.h - the routing table of one KME over the network map (netmap.h;
 * design: docs/network.md §2).
 *
 * Built once from the map and this KME's ID, then immutable (no lock).  For
 * each destination KME it holds up to ROUTE_MAX_PATHS paths of at most
 * ROUTE_MAX_HOPS links, chosen as follows (route.c has the algorithm):
 *
 *   - every path is loopless (no KME twice) and starts at this KME;
 *   - the first path is a shortest path by hops, and of those the smallest
 *     by the KME IDs along it (strcmp, hop by hop);
 *   - the paths have different first hops where the graph allows: for
 *     each neighbour N, the best path that starts with N (fewest hops, then
 *     smallest IDs) is a candidate, and the best four candidates are taken;
 *   - only when fewer than four first hops reach the destination, paths
 *     that share a first hop are added, each with a (first hop, second
 *     hop) pair no other path has: for a pair (N, M) the best path starting
 *     with N, M that does not come back to this KME or to N;
 *   - the paths are listed by hops, then by the KME IDs along them.
 *
 * Not guaranteed: node-disjoint paths beyond the first (or second) hop; two
 * paths may meet at a later KME, and that KME being down breaks both.  Nor
 * the k shortest paths: a longer path with a new first hop is preferred to
 * a shorter one through a first hop already used.  A destination more than
 * ROUTE_MAX_HOPS links away is unreachable (no path).
 */
#ifndef QC_KME_ROUTE_H
#define QC_KME_ROUTE_H

#include <stddef.h>
#include <stdint.h>

#include "kme/netmap.h"

#define ROUTE_MAX_PATHS 4
#define ROUTE_MAX_HOPS 16

typedef struct route_path {
    uint16_t n_hops;                    /* links on the path: 1..ROUTE_MAX_HOPS */
    uint16_t kme[ROUTE_MAX_HOPS + 1];   /* map indices: kme[0] this KME, kme[n_hops] the destination */
    uint16_t link[ROUTE_MAX_HOPS];      /* map indices: link[i] joins kme[i] and kme[i + 1] */
} route_path;

typedef struct route_table route_table;

/* The table of source_kme over m (m must outlive it).  0 and *out, or -1
 * and the reason in err (the source is not in the map, out of memory). */
int route_build(const netmap *m, const char *source_kme, route_table **out, char *err,
                size_t errlen);

void route_free(route_table *t);

/* The paths to dest_kme, in the order above: their number (0: unknown,
 * unreachable, or the source itself) and *paths pointing into the table. */
size_t route_paths(const route_table *t, const char *dest_kme, const route_path **paths);

/* The same by the destination's map index. */
size_t route_paths_to(const route_table *t, size_t dest, const route_path **paths);

/* The score of a first hop, higher is better (the KME: the own bits of
 * that link in stock); next is the neighbour, link the link to it. */
typedef int64_t (*route_score_fn)(void *ud, const netmap_kme *next, const netmap_link *link);

/* The paths to dest_kme ranked for one request, into out (room for
 * ROUTE_MAX_PATHS): by hops, then by score(first hop) (higher first), then
 * in the table's order.  score is called once per path.  The table is not
 * changed: threads may rank at once.  Returns the number of paths. */
size_t route_rank(const route_table *t, const char *dest_kme, route_score_fn score, void *ud,
                  const route_path **out);

/* "KME-A KME-B KME-C" into buf (truncated to fit). */
void route_path_format(const netmap *m, const route_path *p, char *buf, size_t buflen);

#endif
