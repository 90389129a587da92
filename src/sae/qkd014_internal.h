/* SPDX-License-Identifier: Apache-2.0 */
/*
 * qkd014_internal.h - libqkd014 internals shared by client.c and parse.c,
 * and exposed to the project's tests and tools (never installed).
 *
 * client.c owns the client and the HTTP exchange (through common/httpsc.c, one
 * kept-alive HTTPS connection per client); parse.c turns response bodies into the public structures
 * and builds request bodies.  The parse functions never touch the network:
 * they report a qkd014_code and write a message (without key material) into
 * a caller-supplied buffer.
 */
#ifndef QKD014_INTERNAL_H
#define QKD014_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qkd014.h"

/* Length of the error message buffers (including the NUL). */
#define QKD014_ERRMSG_LEN 512

/*
 * Send exactly one request on the client's connection (the same code path
 * the typed API uses) and return the raw answer.
 *   method          "GET", "POST" or any other token
 *   path_and_query  appended to the base URL; must start with '/'
 *   content_type    Content-Type header value, or NULL for none at all
 *   body, body_len  request body; body NULL = no body
 * On QKD014_OK an HTTP answer arrived (any status): *http_status is set,
 * *resp_body is a malloc'd NUL-terminated copy of the body (*resp_len bytes
 * without the NUL) and *resp_content_type, if resp_content_type is not NULL,
 * a malloc'd copy of the Content-Type or NULL.  The caller frees them (and
 * should wipe the body if it may hold keys).  Otherwise the code is
 * QKD014_E_TRANSPORT, _TLS, _MALFORMED (answer too big) or _NOMEM, and
 * qkd014_errmsg() tells why.
 */
qkd014_code qkd014_raw_request(qkd014_client *c, const char *method,
                               const char *path_and_query,
                               const char *content_type, const char *body,
                               size_t body_len, long *http_status,
                               char **resp_body, size_t *resp_len,
                               char **resp_content_type);

/* Number of new connections the client's last call opened (0 when it
 * reused the kept-alive one); for tests of connection reuse. */
long qkd014_last_connects(const qkd014_client *c);

/* ---- parse.c: responses ---- */

/* Parse a Status body.  expected_slave, if not NULL, must equal its
 * slave_SAE_ID member. */
qkd014_code qkd014_parse_status(const char *body, size_t len,
                                const char *expected_slave,
                                qkd014_status **out, char *err, size_t errlen);

/* What a Key container must hold. */
typedef struct qkd014_keys_expect {
    /* enc_keys: number of keys (>= 1) and size in bits (0 = KME default:
     * all keys then have one common non-zero length). */
    size_t number;
    int32_t size_bits;
    /* dec_keys: when ids != NULL, exactly these n_ids canonical lower-case
     * key IDs (distinct), returned in this order; number/size are ignored. */
    const char (*ids)[QKD014_KEY_ID_LEN + 1];
    size_t n_ids;
} qkd014_keys_expect;

/* Parse and check a Key container; key bytes go into one locked arena that
 * qkd014_keys_free() zeroes. */
qkd014_code qkd014_parse_keys(const char *body, size_t len,
                              const qkd014_keys_expect *exp,
                              qkd014_keys **out, char *err, size_t errlen);

/* Copy the message of an Error body ({"message": ...}, or {"detail": ...}
 * as FastAPI-based KMEs send) into msg, with control characters replaced.
 * Returns true if one was found; msg is "" otherwise. */
bool qkd014_parse_error_message(const char *body, size_t len, char *msg,
                                size_t msglen);

/* True if a Content-Type value is application/json (any case, optional
 * parameters such as "; charset=utf-8"). */
bool qkd014_is_json_content_type(const char *ct);

/* ---- parse.c: requests ---- */

/* True if the request needs POST (anything beyond number and size). */
bool qkd014_key_request_needs_post(const qkd014_key_request *req);

/* Check a Key request (negative number/size, NULL or empty IDs, extension
 * text that is not a JSON array of objects) and, if post is true, build its
 * JSON body into *json (malloc'd).  QKD014_E_USAGE with a message if the
 * request is invalid. */
qkd014_code qkd014_build_key_request(const qkd014_key_request *req, bool post,
                                     char **json, char *err, size_t errlen);

/* Build {"key_IDs":[{"key_ID":...},...]} from n key ID strings. */
qkd014_code qkd014_build_key_ids(const char *const *key_ids, size_t n,
                                 char **json, char *err, size_t errlen);

/* Copy s into dst (capacity dstlen) with control characters and non-ASCII
 * bytes replaced by '?', truncated to fit. */
void qkd014_sanitize(const char *s, size_t len, char *dst, size_t dstlen);

#endif
