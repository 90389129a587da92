/* SPDX-License-Identifier: Apache-2.0 */
/*
 * http_framing.h - is a request's body framed in exactly one way?
 *
 * libmicrohttpd 0.9.75 takes the first of two Content-Length headers, lets
 * Transfer-Encoding: chunked win silently over a Content-Length, and reads
 * a body of an unknown transfer coding until the connection closes.  A
 * proxy in front of the KME may frame the same bytes otherwise, which is
 * how requests are smuggled.  The listener feeds every request header to an
 * http_framing and refuses the request (400, connection closed) when
 * http_framing_refusal names a reason.  Pure code on untrusted bytes
 * (fuzzed: fuzz/fuzz_http_framing.c).
 */
#ifndef QC_KME_HTTP_FRAMING_H
#define QC_KME_HTTP_FRAMING_H

#include <stdbool.h>
#include <stddef.h>

typedef struct http_framing {
    unsigned content_length;     /* Content-Length headers seen */
    unsigned transfer_encoding;  /* Transfer-Encoding headers seen */
    bool te_not_chunked;         /* one of them is not exactly "chunked" */
} http_framing;

/* Count one request header (name compared without case). */
void http_framing_add(http_framing *f, const char *name, size_t name_len,
                      const char *value, size_t value_len);

/* NULL when the body is framed in exactly one way (no body, one
 * Content-Length, or one Transfer-Encoding: chunked); else the message of
 * the 400 answer. */
const char *http_framing_refusal(const http_framing *f);

#endif
