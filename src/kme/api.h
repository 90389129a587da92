/* SPDX-License-Identifier: Apache-2.0 */
/*
 * api.h - the three ETSI GS QKD 014 methods: status, enc_keys, dec_keys.
 *
 * The listener (listener.c) has already authenticated the caller and knows its
 * SAE ID; api_handle() parses and validates the request (request.c), applies
 * the authorisation rules, calls the key store and renders the answer: a
 * Status or Key container on success, an Error object otherwise.  Every
 * answer has a JSON body.  Bodies that carry keys live in a secret buffer
 * that is wiped when the HTTP layer has sent it.
 *
 * A slave attached to a peer KME makes a remote pair (docs/kme-pair.md):
 * status reports the QKD link's pool, and enc_keys reserves bits of our own
 * link blocks, has the peer record the same keys for the slaves (peer.c)
 * and answers only once the peer has acknowledged them.
 */
#ifndef QC_KME_API_H
#define QC_KME_API_H

#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>

#include "kme/config.h"
#include "kme/keystore.h"
#include "kme/kme_error.h"
#include "kme/reply.h"

struct link_state;
struct peer_service;
struct route_table;
struct route_path;
struct kme_request;
struct sae_rate;

/* The per-SAE limits' answers (503 with a Retry-After header): printf
 * formats of the limit's value, the SAE ID and the seconds to wait. */
/* MSG_RATE_LIMIT, MSG_UNFETCHED_LIMIT: the per-SAE limits' answers
 * (kme_error.h). */

typedef struct kme_api {
    const kme_config *cfg;
    keystore *ks;
    struct peer_service *peers;   /* the KME-to-KME channel; NULL without [peer_api] */
    struct sae_rate *rate;        /* per master SAE token buckets (api_init) */
    struct reuse_watch *reuse;    /* keys delivered by dec_keys, to see reuse (api_init) */
    struct link_state *const *links; /* per cfg->links[i]: its reports (entries may be NULL) */
    struct route_table *routes;   /* over cfg->map (api_init); NULL without a map */
} kme_api;

/* Set up the per-SAE rate limits of cfg (0, or -1 when out of memory);
 * api_free releases them. */
int api_init(kme_api *api);
void api_free(kme_api *api);

/* The SAE API's request handler (a listener_handler; ctx is a kme_api). */
void api_handle(void *ctx, const char *caller, const char *method,
                const char *raw_uri, const char *body, size_t body_len,
                kme_reply *out);

/* The SAE API listener's refusals before api_handle (a listener_refused):
 * counted as requests (metrics.h). */
void api_refused(void *ctx, const char *raw_uri, int http);

/* The SAE API's identity rule (a listener_identify; ctx is a kme_api): the
 * SAE ID is the certificate's CN or URI SAN as configured, and must be a
 * local SAE.  Returns cn or uri_san, or NULL to refuse. */
const char *api_identify(void *ctx, const char *cn, const char *uri_san);

/* ---- shared by api.c and api_relay.c only -------------------------------- */

/* {"keys": [...]} of b into out (a secret buffer), counted as delivered. */
void api_render_keys(kme_reply *out, const ks_batch *b, bool enc);

/* enc_keys for slaves behind far_kme, a KME reached by relay (request
 * validated; docs/network.md §2). */
void api_relay_enc(const kme_api *api, const char *far_kme, const char *caller,
                   const char *const *slaves, size_t nslaves, const struct kme_request *req,
                   kme_reply *out);

/* status towards far_kme: the best path's first-hop stock and capacity in
 * bits, and the status_extension {"path": [...], "link": {...}} (*ext,
 * new reference).  0, or -1 on a key store error. */
int api_relay_status(const kme_api *api, const char *far_kme, uint64_t *avail, uint64_t *cap,
                     struct json_t **ext);

/* The paths to far_kme ranked for this request (room for 4 in out). */
size_t api_relay_paths(const kme_api *api, const char *far_kme, const struct route_path **out);

#endif
