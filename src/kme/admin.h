/* SPDX-License-Identifier: Apache-2.0 */
/*
 * admin.h - the KME's admin listener ([admin], docs/operations.md):
 *   GET /metrics  Prometheus text format 0.0.4: the counters of metrics.h
 *                 and gauges read at scrape time (pools, peers, link)
 *   GET /health   JSON: the key store, each peer, each link; 200 when the
 *                 KME can serve every pair it is configured for, else 503
 *                 with the reasons
 *   GET /         the status page for people (status_page.c)
 * on the bounded listener of common/admin_http.h (loopback HTTP, or HTTPS
 * with client certificates).  Read-only: nothing here changes the store,
 * and no page or metric holds key material, key IDs or SAE IDs.
 */
#ifndef QC_KME_ADMIN_H
#define QC_KME_ADMIN_H

#include <stddef.h>
#include <stdint.h>

#include "kme/config.h"
#include "kme/keystore.h"
#include "kme/link_state.h"
#include "kme/peer.h"

typedef struct kme_admin kme_admin;

/* Start the listener and its once-a-second sampler (the page's charts);
 * peers may be NULL (no [peer_api]); links[i] is the link state of
 * cfg->links[i] (its QBER and state are read from it; links or an entry
 * may be NULL).  NULL with the reason in err. */
kme_admin *kme_admin_start(const kme_config *cfg, keystore *ks, peer_service *peers,
                           link_state *const *links, char *err, size_t errlen);
uint16_t kme_admin_port(const kme_admin *a);
void kme_admin_stop(kme_admin *a);

#endif
