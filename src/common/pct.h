/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pct.h - percent-decoding of URL path segments and query values.
 *
 * SAE IDs travel percent-encoded in the request path (ETSI GS QKD 014 Tables
 * 3, 5, 7).  The KME splits the raw path first and decodes each segment after,
 * so an ID holding "%2F" stays one segment.  Decoding is strict: a '%' not
 * followed by two hex digits, or a decoded NUL, is an error.  '+' is kept as
 * '+' (it means space only in HTML form bodies, never in a path).
 */
#ifndef QC_PCT_H
#define QC_PCT_H

#include <stddef.h>

/* Decode len bytes of in into a new NUL-terminated malloc'd string stored in
 * *out.  Returns 0, or -1 for a malformed escape or an embedded NUL (*out is
 * then NULL), or -2 when out of memory. */
int pct_decode(const char *in, size_t len, char **out);

/* Encode s for use as one path segment: everything but RFC 3986 unreserved
 * characters is escaped.  Returns a malloc'd string or NULL. */
char *pct_encode(const char *s);

#endif
