/* SPDX-License-Identifier: Apache-2.0 */
/*
 * request.h - parsing and validation of ETSI GS QKD 014 requests.
 *
 * Pure functions, no I/O: the HTTP layer hands over the method, the raw
 * request URI (path and query exactly as received, still percent-encoded)
 * and the body; kme_request_parse() checks syntax and types and fills a
 * kme_request; kme_request_validate_enc() checks an enc_keys request
 * against the pair's limits.
 * Both answer with the status code and the exact message the KME sends, so
 * the behaviour table of the spec digest (shared/spec §5) lives here and is
 * unit-tested and fuzzed without a server.  No key is touched before both
 * have passed.
 */
#ifndef QC_KME_REQUEST_H
#define QC_KME_REQUEST_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kme/kme_error.h"

/* Messages that clients match byte for byte (ETSI GS QKD 014 §6.2, §6.4). */
#define MSG_SIZE_NOT_MULTIPLE_OF_8  "size shall be a multiple of 8"
#define MSG_EXT_MANDATORY_UNSUPPORTED "not all extension_mandatory parameters are supported"
#define MSG_EXT_MANDATORY_UNMET     "not all extension_mandatory request options could be met"
#define MSG_KEYS_NOT_FOUND          "one or more keys specified are not found on KME"
#define MSG_UNAUTHORIZED            "unauthorized"

#define KME_MAX_BODY       65536   /* larger bodies get 413 */
#define KME_MAX_SAE_ID_LEN 256     /* bytes, after percent-decoding */

/* The one vendor extension this KME knows, for extension_mandatory:
 * {"qkdc_key_source": "qkd"} demands keys from a QKD link (a local pair's
 * CSPRNG pool cannot meet it), {"qkdc_key_source": "any"} accepts either. */
#define EXT_KEY_SOURCE "qkdc_key_source"

typedef enum {
    KME_EP_STATUS = 1,
    KME_EP_ENC_KEYS,
    KME_EP_DEC_KEYS,
} kme_endpoint;

typedef struct kme_request {
    kme_endpoint ep;
    bool is_post;
    char *sae_id;            /* path SAE ID, percent-decoded (slave for
                                status/enc_keys, master for dec_keys) */
    /* enc_keys (GET query or POST body) */
    bool has_number, has_size;
    int64_t number, size;    /* as given; range checks in _validate */
    bool has_additional;
    char **additional;       /* additional_slave_SAE_IDs */
    size_t n_additional;
    json_t *ext_mandatory;   /* array of objects, owned, or NULL */
    json_t *ext_optional;    /* array of objects, owned, or NULL */
    /* dec_keys (GET key_ID or POST key_IDs) */
    uint8_t (*key_ids)[16];
    size_t n_key_ids;
} kme_request;

/* The limits one master/slave pair is served under (Status members). */
typedef struct kme_limits {
    int64_t key_size, min_key_size, max_key_size;
    int64_t max_key_per_request, max_sae_id_count;
    bool keys_from_qkd;      /* false for local pairs (CSPRNG pool) */
} kme_limits;

/* Parse method ("GET"/"POST"), raw URI and body.  On success returns 0 and
 * fills *req (release with kme_request_clear).  On failure returns -1, fills
 * *err and leaves *req cleared: 404 unknown path, 405 method not allowed for
 * the path, 413 body too large, 400 anything malformed (bad escapes, blank
 * SAE ID, unknown or repeated query parameters, GET forms beyond the simple
 * ones, body not a JSON object, duplicate members, wrong member types,
 * key_IDs empty or not UUIDs or repeated).  An empty or whitespace-only POST
 * body means {}.  Unknown members are ignored. */
int kme_request_parse(const char *method, const char *raw_uri,
                      const char *body, size_t body_len,
                      kme_request *req, kme_err *err);

/* The methods the resource at raw_uri takes, as an Allow header (RFC 9110
 * §10.2.1) of its 405 answer: "GET" for status, "GET, POST" for enc_keys
 * and dec_keys; NULL for a path that names no resource. */
const char *kme_request_allowed_methods(const char *raw_uri);

/* Check an enc_keys request against the pair's limits and resolve defaults:
 * number defaults to 1, size to key_size.  caller is the master SAE ID (from
 * its certificate).  On success returns 0 and sets req->number, req->size,
 * has_number and has_size.  On failure returns -1 with *err (400). */
int kme_request_validate_enc(kme_request *req, const kme_limits *lim,
                             const char *caller, kme_err *err);

void kme_request_clear(kme_request *req);

#endif
