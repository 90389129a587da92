/* SPDX-License-Identifier: Apache-2.0 */
/*
 * metrics.h - what the KME counts for its operators: requests by endpoint
 * and status, their durations, keys delivered, reservations with the peer,
 * link blocks (docs/operations.md lists every metric).
 *
 * The request path only adds: every counter is a relaxed atomic, none is
 * behind a lock, and nothing here allocates after metrics_init.  A counter
 * is added before the handler returns its answer, so a scrape includes
 * every request answered before it.  Labels are bounded sets: endpoints,
 * status codes (others fold into "other"), kinds, configured peer IDs;
 * never key IDs, SAE IDs or anything a client chooses.
 *
 * metrics_render() writes the counters in the Prometheus text format
 * (common/prom.h); admin.c adds the gauges read at scrape time.  Security
 * events are counted where they are reported, by events.h.
 */
#ifndef QC_KME_METRICS_H
#define QC_KME_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/prom.h"
#include "kme/config.h"

/* Endpoints of the SAE API, as request.h numbers them (KME_EP_*), plus
 * requests whose endpoint is none of them. */
typedef enum {
    METRICS_EP_OTHER = 0,
    METRICS_EP_STATUS = 1,
    METRICS_EP_ENC_KEYS = 2,
    METRICS_EP_DEC_KEYS = 3,
    METRICS_N_EP
} metrics_endpoint;

typedef enum {
    METRICS_RESV_ACKNOWLEDGED = 0, /* the peer recorded the keys */
    METRICS_RESV_REFUSED,          /* the peer refused (a slave's limit) */
    METRICS_RESV_FAILED,           /* no acknowledgement: the bits burned */
    METRICS_RESV_N
} metrics_resv_result;

/* Before any thread counts: sized for cfg's peers.  0, or -1 out of memory.
 * QKD_KME_METRICS_OFF=1 in the environment: nothing is counted from then
 * on (to measure what counting costs, in the same build). */
int metrics_init(const kme_config *cfg);
void metrics_free(void);

/* Where a request whose parse failed was going, from its raw target. */
metrics_endpoint metrics_endpoint_of(const char *raw_uri);

/* One answered request of the SAE API and its time in the handler. */
void metrics_request(metrics_endpoint ep, int http, int64_t ns);
/* Keys delivered by one answer: enc_keys (enc = true) or dec_keys. */
void metrics_keys(bool enc, size_t n, uint64_t bytes);
/* A reservation sent to peer (index into cfg->peers) and its outcome. */
void metrics_reservation(size_t peer, metrics_resv_result result);

/* Relayed keys (docs/network.md): this KME's role on the path and the
 * outcome of its part. */
typedef enum {
    METRICS_RELAY_ORIGIN = 0,      /* our master's enc_keys, per path tried */
    METRICS_RELAY_TRUSTED,         /* we relayed it on to the next KME */
    METRICS_RELAY_LAST,            /* we stored it for our slaves */
    METRICS_RELAY_ROLE_N
} metrics_relay_role;
typedef enum {
    METRICS_RELAY_DELIVERED = 0,   /* the last KME stored the keys */
    METRICS_RELAY_UNAVAILABLE,     /* down, not answering or short of key on the way */
    METRICS_RELAY_TAMPERED,        /* a one-time tag did not verify */
    METRICS_RELAY_REFUSED,         /* another refusal (limit, conflict, bad request) */
    METRICS_RELAY_RESULT_N
} metrics_relay_result;
void metrics_relay(metrics_relay_role role, metrics_relay_result result);
/* The count so far (the status page). */
uint64_t metrics_relay_count(metrics_relay_role role, metrics_relay_result result);
/* A key block link number `link` (cfg->links[link]) stored here: own (our
 * masters use it) or the peer's. */
void metrics_link_block(size_t link, bool own, uint64_t bytes);

/* What the link stored so far (the status page's production rates). */
uint64_t metrics_link_bytes(size_t link, bool own);

/* The counter and histogram families (request, key, reservation, link,
 * build_info) into w, and qkd_kme_security_events_total from the counts
 * of events.h (every security event is reported there once). */
void metrics_render(prom_writer *w, const kme_config *cfg);

/* Tests: every counter back to zero. */
void metrics_testing_reset(void);

#endif
