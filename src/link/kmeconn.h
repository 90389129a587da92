/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kmeconn.h - the link's HTTPS connection to one KME's link intake
 * (docs/kme-pair.md "Link intake").
 *
 * One libcurl easy handle per KME, kept across requests so that its mutual
 * TLS connection stays alive; the requests to the two KMEs run side by
 * side (kc_perform), since every block goes to both.  TLS: our certificate,
 * trust only the KME CA, peer and host name verified, and the KME ID checked
 * against the certificate's subject CN before any request (which may carry
 * key bytes) is sent.  Answers are parsed here; nothing here logs key bytes.
 */
#ifndef QC_LINK_KMECONN_H
#define QC_LINK_KMECONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "link/config.h"

/* What became of one request. */
typedef enum {
    KC_OK = 0,      /* 2xx */
    KC_FULL,        /* 503 pool full: that direction is at its cap */
    KC_CONFLICT,    /* 409: block ID known with other bytes */
    KC_FAIL,        /* no answer (connection, TLS, KME ID, timeout) or any other status */
} kc_outcome;

/* A KME's pool as its answers report it. */
typedef struct kc_pool {
    uint64_t own_bits, peer_bits, cap_bits;
} kc_pool;

typedef struct kmeconn kmeconn;

/* side: 0 = [kme_a], 1 = [kme_b].  NULL when out of memory or libcurl fails. */
kmeconn *kc_new(const link_config *cfg, int side);
void kc_free(kmeconn *c);

const char *kc_name(const kmeconn *c);           /* its expected KME ID */

/* Prepare one request on c; kc_perform then runs the prepared requests.
 * The body must stay valid until kc_perform returns. */
int kc_prepare_block(kmeconn *c, const uint8_t *body, size_t len);
int kc_prepare_ids(kmeconn *c, const char *path, const char *json, size_t len);
int kc_prepare_state(kmeconn *c);

/* Run the prepared requests of cs[0..n) concurrently to completion. */
void kc_perform(kmeconn *const *cs, size_t n);

/* The outcome of the last request, and a short reason when not KC_OK
 * ("HTTP 400: <message>", "connection refused", ...). */
kc_outcome kc_result(const kmeconn *c);
const char *kc_reason(const kmeconn *c);

/* From the last answer: the "pool" object (store and state answers).
 * 0, or -1 if the answer had none or it was malformed. */
int kc_pool_of(const kmeconn *c, kc_pool *out);

/* From the last state answer: "unconfirmed" (malloc'd array in *ids) and
 * the KME's link side ('A'/'B'; 0 when not reported).  0 or -1. */
int kc_state_of(const kmeconn *c, uint64_t **ids, size_t *n, char *side);

/* From the last state answer: does the KME take QBER reports ("reports": 1,
 * POST /link/v1/report and block trailers)? */
bool kc_takes_reports(const kmeconn *c);

#endif
