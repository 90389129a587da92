/* SPDX-License-Identifier: Apache-2.0 */
/*
 * httpsc.h - a lean HTTPS/1.1 client over GnuTLS with one kept-alive
 * connection: what libqkd014 (docs/libqkd014.md, "Transport") and the
 * KME's peer client (src/kme/peer.c) use instead of libcurl.
 *
 * One httpsc object = one server (https://host[:port][/base]), the TLS
 * credentials loaded once, and at most one open connection, reused by every
 * request.  Certificate and host name verification are always on; an
 * optional peer check runs after each handshake, before any request byte is
 * sent.  Every request is bounded by the timeout (poll with a deadline), and
 * a reused connection that the server had closed is reopened once,
 * transparently, when it fails before any answer byte arrived.
 *
 * Not thread-safe: one thread at a time per object; different objects in
 * different threads are independent (no global state of its own).
 */
#ifndef QC_COMMON_HTTPSC_H
#define QC_COMMON_HTTPSC_H

#include <stdbool.h>
#include <stddef.h>

#include <gnutls/gnutls.h>

typedef enum httpsc_code {
    HTTPSC_OK = 0,
    HTTPSC_E_NOMEM,
    HTTPSC_E_TRANSPORT, /* cannot connect, timeout, connection lost, not HTTP */
    HTTPSC_E_TLS,       /* handshake, certificate, host name, fatal alert */
    HTTPSC_E_PEER,      /* the peer check refused the server (its message) */
    HTTPSC_E_MALFORMED, /* broken HTTP framing in the answer */
    HTTPSC_E_TOO_BIG,   /* body longer than max_body */
    HTTPSC_E_SINK,      /* the body sink refused bytes */
    HTTPSC_E_USAGE,     /* method, path or Content-Type unusable in a request */
} httpsc_code;

typedef struct httpsc_config {
    const char *url;        /* https://host[:port][/base], no query/fragment */
    const char *ca_file;    /* PEM: the only trusted CA(s) */
    const char *cert_file;  /* PEM client certificate, or NULL */
    const char *key_file;   /* PEM private key of cert_file */
    long connect_timeout_ms; /* TCP connect + TLS handshake (> 0) */
    long timeout_ms;         /* whole request (> 0) */
    size_t max_body;         /* larger answers: HTTPSC_E_TOO_BIG */
} httpsc_config;

/* Called after every handshake, before the request is sent: 0 to go on,
 * else the request fails with HTTPSC_E_PEER and the message put in err. */
typedef int (*httpsc_peer_check)(void *ud, gnutls_session_t tls, char *err,
                                 size_t errlen);

/* Receives the answer body as it arrives: 0, or -1 to stop (HTTPSC_E_SINK).
 * The bytes may be secret; the transport wipes its own copies after the
 * request. */
typedef int (*httpsc_sink)(void *ud, const char *data, size_t len);

typedef struct httpsc_request {
    const char *method;       /* "GET", "POST", "HEAD", ... */
    const char *target;       /* path and query, appended to the base path */
    const char *content_type; /* Content-Type header, or NULL */
    const char *body;         /* NULL: no body and no Content-Length */
    size_t body_len;
    long timeout_ms;          /* > 0: bound for this request instead of the
                                 config's (a caller with its own deadline) */
} httpsc_request;

typedef struct httpsc_response {
    int status;                /* final status code (1xx are skipped) */
    bool has_content_type;
    char content_type[256];    /* raw value (truncated), "" if absent */
} httpsc_response;

typedef struct httpsc httpsc;

/* True if url has the form https://host[:port][/base] that httpsc_new
 * accepts (no user info, query or fragment; port 1-65535). */
bool httpsc_url_valid(const char *url);

/* Parse the URL, load the credentials (once, here) and make the object; no
 * network traffic.  NULL on failure with the reason in err. */
httpsc *httpsc_new(const httpsc_config *cfg, char *err, size_t errlen);
void httpsc_free(httpsc *h);

void httpsc_set_peer_check(httpsc *h, httpsc_peer_check fn, void *ud);

/* Send one request and read its answer; the body goes to sink.  On failure
 * err tells why (never quoting answer bytes) and the connection is closed. */
httpsc_code httpsc_request_send(httpsc *h, const httpsc_request *rq,
                                httpsc_sink sink, void *sink_ud,
                                httpsc_response *resp, char *err,
                                size_t errlen);

/* Connections opened by the last request (0: it reused the kept one). */
int httpsc_last_connects(const httpsc *h);

#endif
