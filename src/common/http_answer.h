/* SPDX-License-Identifier: Apache-2.0 */
/*
 * http_answer.h - the HTTP/1.1 answer reader of the HTTPS client
 * (httpsc.c), without sockets or TLS: where a head ends, the status line
 * and the header fields that decide the framing (Content-Length, chunked
 * Transfer-Encoding, Connection) and Content-Type, and chunk-size lines.
 * Bytes in, a parsed head or a precise error out, so that every byte a
 * hostile server can send is unit-tested and fuzzed
 * (fuzz/fuzz_http_answer.c).  Error texts never quote answer bytes.
 */
#ifndef QC_HTTP_ANSWER_H
#define QC_HTTP_ANSWER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_ANSWER_HEAD_MAX (16u * 1024u)   /* status line + fields, or trailers */
#define HTTP_ANSWER_CHUNK_LINE_MAX 1024u     /* a chunk-size line with extensions */
#define HTTP_ANSWER_CT_MAX 256               /* Content-Type kept, with its NUL */

typedef enum http_answer_code {
    HTTP_ANSWER_OK,
    HTTP_ANSWER_NOT_HTTP,  /* the first line is no HTTP/1.x status line */
    HTTP_ANSWER_MALFORMED, /* a broken or ambiguous framing field */
} http_answer_code;

/* What the head of one answer says. */
typedef struct http_answer_head {
    int status, minor;          /* 100..999; HTTP/1.minor (0 or 1) */
    bool chunked, has_len;      /* Transfer-Encoding: chunked; Content-Length */
    bool close, keep_alive;     /* tokens of Connection */
    uint64_t len;               /* Content-Length when has_len */
    bool has_content_type;
    char content_type[HTTP_ANSWER_CT_MAX]; /* raw value, "(too long)" if it
                                            * does not fit, "" if absent */
} http_answer_head;

/* Offset just past the blank line ending a head in p[0..n) (a head may be
 * only a blank line: an empty trailer section), or 0 if none is complete
 * yet.  The search for the blank line resumes at offset `from` (0, or
 * where the previous call on a shorter p stopped, minus 2), so that a
 * server dripping its head byte by byte costs linear time.  The caller
 * refuses heads over HTTP_ANSWER_HEAD_MAX. */
size_t http_answer_head_end(const char *p, size_t n, size_t from);

/* Parse the complete head p[0..len) (as found by http_answer_head_end)
 * into *out.  On failure *why is a static message. */
http_answer_code http_answer_parse_head(const char *p, size_t len,
                                        http_answer_head *out, const char **why);

/* chunk-size [ chunk-ext ] of one line without its CR LF: hex digits (at
 * most 15), then optional white space and ';' extensions. */
bool http_answer_chunk_size(const char *line, size_t n, uint64_t *size);

#endif
