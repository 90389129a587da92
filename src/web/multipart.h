/* SPDX-License-Identifier: Apache-2.0 */
/*
 * multipart.h - the body of the Compose form, multipart/form-data (RFC 7578,
 * the HTML standard's encoding), read as libmicrohttpd hands it over: in
 * pieces, without ever holding more than the parts themselves.
 *
 * The body comes from the browser or from any local program that found the
 * port, so everything is bounded and checked (docs/web.md, "Compose"):
 *   - the boundary from Content-Type: 1 to 70 of RFC 2046's characters,
 *     given once;
 *   - at most WEB_MP_MAX_BODY bytes in all (the server answers 413), at most
 *     WEB_MP_MAX_PARTS parts, each header section at most
 *     WEB_MP_MAX_HEADER bytes, each part that is not a file at most
 *     WEB_MP_MAX_FIELD bytes;
 *   - each part's Content-Disposition is form-data with a name from the
 *     caller's fixed set, given once, except the one repeatable name (the
 *     files); only that name may carry a filename;
 *   - a file name is reduced to its last path component, control
 *     characters (CR, LF, NUL: a header cannot hold them anyway) refused,
 *     at most WEB_MP_MAX_FILENAME bytes; an empty file part (no file
 *     chosen) is dropped;
 *   - a delimiter must be followed by CRLF or "--"; the body must end with
 *     the close delimiter (else truncated).
 * Pure: no I/O.  Part data is wiped when freed (it is mail being written).
 */
#ifndef QUMAIL_WEB_MULTIPART_H
#define QUMAIL_WEB_MULTIPART_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WEB_MP_MAX_BODY ((size_t)25 * 1024 * 1024)
#define WEB_MP_MAX_PARTS 64
#define WEB_MP_MAX_HEADER 2048
#define WEB_MP_MAX_FIELD ((size_t)1024 * 1024)
#define WEB_MP_MAX_FILENAME 200
#define WEB_MP_MAX_NAME 32
#define WEB_MP_MAX_BOUNDARY 70

typedef enum {
    WEB_MP_OK = 0,
    WEB_MP_TOO_LARGE,       /* the body, or a field, past its bound */
    WEB_MP_TOO_MANY_PARTS,
    WEB_MP_BAD_BOUNDARY,    /* no usable boundary in Content-Type */
    WEB_MP_MALFORMED,       /* delimiter, header section or disposition not as required */
    WEB_MP_BAD_NAME,        /* a name not in the set, or a file where none belongs */
    WEB_MP_DUPLICATE,       /* a name given twice */
    WEB_MP_BAD_FILENAME,    /* a control character in a file name, or too long */
    WEB_MP_TRUNCATED,       /* the body ended before the close delimiter */
    WEB_MP_NO_MEMORY,
} web_mp_err;

typedef struct web_mp_part {
    char name[WEB_MP_MAX_NAME + 1];
    char *filename;          /* NULL for a field; else the last path component */
    char content_type[128];  /* as given, or "" */
    uint8_t *data;           /* NUL-terminated after len bytes */
    size_t len, cap;
} web_mp_part;

typedef struct web_multipart {
    const char *const *names;   /* the names allowed (NULL-terminated) */
    const char *repeatable;     /* the one name allowed several times, with files */
    char delim[WEB_MP_MAX_BOUNDARY + 5];   /* "\r\n--" boundary */
    size_t dlen;
    size_t fail[WEB_MP_MAX_BOUNDARY + 5];  /* KMP table of delim */
    size_t matched;             /* bytes of delim matched so far */
    int state;
    char header[WEB_MP_MAX_HEADER + 1];
    size_t hlen;
    size_t total;
    web_mp_err err;             /* sticky */
    web_mp_part parts[WEB_MP_MAX_PARTS];
    size_t n;
} web_multipart;

/* The boundary of a Content-Type header value ("multipart/form-data;
 * boundary=..."), into out (at least WEB_MP_MAX_BOUNDARY + 1 bytes). */
web_mp_err web_mp_boundary(const char *content_type, char *out, size_t cap);

/* Ready m for a body with this boundary; names and repeatable as above
 * (they must outlive m). */
void web_mp_init(web_multipart *m, const char *boundary, const char *const *names,
                 const char *repeatable);

/* The next n bytes of the body.  Errors are sticky: after one, later
 * pieces are counted (for the size bound) but not read. */
web_mp_err web_mp_feed(web_multipart *m, const char *data, size_t n);

/* The body is complete: WEB_MP_OK, the first error, or WEB_MP_TRUNCATED. */
web_mp_err web_mp_finish(web_multipart *m);

/* The field name (not a file), or NULL. */
const web_mp_part *web_mp_field(const web_multipart *m, const char *name);

/* Wipe and free every part. */
void web_mp_free(web_multipart *m);

/* Words for an error (for the refusal page). */
const char *web_mp_strerror(web_mp_err e);

#endif
