/* SPDX-License-Identifier: Apache-2.0 */
/*
 * admin_view.h - one look at the KME for the admin listener: what
 * /metrics, /health and the status page show, gathered once per request
 * (admin.c) from the key store's read-only status calls, the peer probe
 * and the counters; and the ring of per-second samples the status page
 * draws its charts from.  Shared by admin.c and status_page.c only.
 */
#ifndef QC_KME_ADMIN_VIEW_H
#define QC_KME_ADMIN_VIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kme/config.h"
#include "kme/peer.h"

#define ADMIN_HISTORY 300 /* samples, one a second: the last 5 minutes */
#define ADMIN_CHART_LINKS 8 /* links whose history the status page draws */

/* One second of the links' pools, as the sampler saw it (the first
 * ADMIN_CHART_LINKS links of cfg->links). */
typedef struct admin_sample {
    int64_t unix_ms;
    uint64_t level[ADMIN_CHART_LINKS][2];    /* bytes: [0] the peer's direction, [1] ours */
    uint64_t produced[ADMIN_CHART_LINKS][2]; /* cumulative bytes the link stored, same order */
} admin_sample;

/* One QKD link (cfg->links[i]) as this request saw it. */
typedef struct admin_link_view {
    const kme_link *cfg;
    bool ok;                  /* its stats were read */
    uint64_t own_bytes, peer_bytes, cap_bytes;
    bool qber_known;
    double qber;
    bool qber_alarm;
    const char *state;        /* link_state.h's word ("unknown" before a report) */
} admin_link_view;

typedef struct admin_view {
    const kme_config *cfg;
    bool store_ok;
    uint64_t local_bytes, local_cap_bytes, stored_keys;
    admin_link_view *links;   /* cfg->n_links entries */
    bool any_qber_alarm;
    peer_health *peers;       /* cfg->n_peers entries */
    /* relays (with a network map): [origin, trusted node, last] x
     * [delivered, unavailable, tampered, refused] (metrics.h) */
    uint64_t relays[3][4];
    /* the history, oldest first (status page only) */
    admin_sample *history;
    size_t n_history;
} admin_view;

/* The status page (HTML, malloc'd; NULL when out of memory). */
char *status_page_render(const admin_view *v, size_t *len);

#endif
