/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hostile_server.h - a deliberately hostile HTTPS "KME" for the libqkd014
 * tests: a GnuTLS server on 127.0.0.1 (port 0 = any free port) in a thread
 * of the test process, answering each request the way the test asks for
 * (canned answers that break the standard, slow or huge bodies, dropped
 * connections, garbage, raw HTTP framing, kept-alive connections) and
 * recording the last request it saw.
 */
#ifndef HOSTILE_SERVER_H
#define HOSTILE_SERVER_H

#include <stddef.h>

typedef enum hostile_mode {
    H_CANNED,       /* status, Content-Type (NULL: none), body (NULL: none) */
    H_SLOW,         /* 200 JSON, Content-Length 200, 1 byte per 100 ms */
    H_HUGE_CHUNKED, /* 200 JSON, chunked, streams 80 MiB of spaces */
    H_HUGE_LENGTH,  /* 200 JSON, Content-Length 80 MiB, streams spaces */
    H_CLOSE,        /* read the request, close without an answer */
    H_GARBAGE,      /* answer bytes that are not HTTP */
    H_TRUNCATED,    /* Content-Length larger than the body sent, then close */
    H_EARLY,        /* canned answer after the head, body unread, then close */
} hostile_mode;

#define HOSTILE_HUGE_BYTES (80u * 1024u * 1024u)

/* The last request, as received (target = path and query, raw). */
typedef struct hostile_request {
    char method[16];
    char target[2048];
    char content_type[256]; /* "" if absent */
    char body[65536];
    size_t body_len;
    int count;              /* requests seen since start */
} hostile_request;

typedef struct hostile_server hostile_server;

/* Start a server with this certificate and key (PEM), requesting a client
 * certificate.  NULL on failure, with the reason in err. */
hostile_server *hostile_start(const char *cert, const char *key, char *err,
                              size_t errlen);
int hostile_port(const hostile_server *s);

/* How to answer the following requests (until changed); drops queued
 * answers.  The strings are copied; status, content_type and body matter
 * for H_CANNED only. */
void hostile_answer(hostile_server *s, hostile_mode mode, int status,
                    const char *content_type, const char *body);

/* Queue one canned answer (H_CANNED) for the next request; queued answers
 * go out in order, each once, before the standing answer of
 * hostile_answer() applies again.  At most HOSTILE_QUEUE pending. */
#define HOSTILE_QUEUE 8
int hostile_enqueue(hostile_server *s, int status, const char *content_type, const char *body);

/* Queue one raw answer: the bytes of raw go out as they are (any HTTP, or
 * broken HTTP).  Then, with keep, the connection stays open and serves the
 * next request (keep-alive, whatever raw's headers say); otherwise it is
 * held open for hold_ms without reading (0: not at all) and closed. */
int hostile_enqueue_raw(hostile_server *s, const char *raw, int keep, long hold_ms);

/* Copy of the last request. */
void hostile_last(hostile_server *s, hostile_request *out);

/* Stop the thread and free everything. */
void hostile_stop(hostile_server *s);

#endif
