/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kme_error.h - the KME's one carrier of a refused request: an HTTP status
 * and a message, for both of its HTTP APIs.
 *
 * The SAE API (request.c, api.c) renders it as the ETSI Error object
 * {"message", "details"}; the peer API (peer_wire.c, peer_server.c) as a
 * problem object {"type", "status", "message"}, so there it also carries a
 * problem type.  Messages never hold key material or key IDs.
 */
#ifndef QC_KME_ERROR_H
#define QC_KME_ERROR_H

#include <inttypes.h>
#include <jansson.h>

typedef struct kme_err {
    int http;            /* 400, 401, 403, 404, 405, 409, 413, 429, 503 */
    const char *type;    /* peer API: problem type (a static string); SAE API: NULL */
    char message[256];   /* the JSON "message" */
    json_t *details;     /* SAE API: optional "details" array (owned), or NULL */
} kme_err;

/* Set err to code + formatted message (type and details NULL).  *err is
 * output only: every field is overwritten without releasing what it held,
 * so an uninitialised kme_err is fine; release a filled one with
 * kme_err_clear() before reusing it. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
void kme_err_set(kme_err *err, int http, const char *fmt, ...);

/* The same with a problem type (peer API); returns -1, so that a reader
 * can refuse with `return kme_err_problem(...)`. */
#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
int kme_err_problem(kme_err *err, int http, const char *type, const char *fmt, ...);

/* Release details and clear *err (NULL is fine). */
void kme_err_clear(kme_err *err);

/* The per-SAE limits' messages, answered by the SAE API (503 with a
 * Retry-After header) and by the peer API (429, slave-limit): printf
 * formats of the limit's value, the SAE ID and the seconds to wait. */
#define MSG_RATE_LIMIT "per-SAE rate limit sae_rate_bps (%" PRId64 " bit/s) reached for SAE %s; " \
                       "retry after %u s"
#define MSG_UNFETCHED_LIMIT "per-SAE limit sae_unfetched_bits (%" PRIu64 " bits) reached for " \
                            "slave SAE %s; retry after %u s"

#endif
