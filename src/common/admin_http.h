/* SPDX-License-Identifier: Apache-2.0 */
/*
 * admin_http.h - the admin listener of qkd-kme and qkd-link: a small,
 * bounded HTTP server for operators and Prometheus (docs/operations.md).
 *
 * Plain HTTP on a loopback address, or HTTPS whose clients must present a
 * certificate of a configured CA (for scraping from another host).  Every
 * request passes, before any page sees it:
 *   the method  GET or HEAD (others: 405 with Allow)
 *   the body    none: a Content-Length above 0 or any Transfer-Encoding
 *               is refused with 400 and the connection closed
 *   Host        exactly LISTEN:PORT, or localhost:PORT when LISTEN is a
 *               loopback address (DNS rebinding: a name of the attacker's
 *               that resolves to 127.0.0.1 must not reach the page), 403
 *   the target  at most ADMIN_MAX_TARGET bytes, no query string kept
 * Connections are limited (ADMIN_MAX_CONNECTIONS in all, a few per
 * address) and idle ones closed after ADMIN_IDLE_S.  Every answer carries
 * the security headers of the web client (a CSP of default-src 'none',
 * nosniff, no-referrer, DENY framing, no-store).
 */
#ifndef QC_ADMIN_HTTP_H
#define QC_ADMIN_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ADMIN_MAX_CONNECTIONS 16
#define ADMIN_PER_IP_CONNECTIONS 8
#define ADMIN_IDLE_S 10
#define ADMIN_MAX_TARGET 256

/* One answer: status, content type (static text) and a malloc'd body the
 * server frees. */
typedef struct admin_reply {
    unsigned status;
    const char *content_type;
    char *body;
    size_t len;
} admin_reply;

/* Answer GET path (the target without its query).  Must fill *out; a body
 * left NULL is sent empty. */
typedef void (*admin_handler)(void *ctx, const char *path, admin_reply *out);

typedef struct admin_spec {
    const char *name;        /* for logs: "admin" */
    const char *host;        /* numeric IPv4 or IPv6 address */
    uint16_t port;           /* 0: any free port */
    /* HTTPS: all three, or none for plain HTTP (then host must be loopback) */
    const char *cert, *key, *client_ca;
    admin_handler handle;
    void *ctx;
} admin_spec;

typedef struct admin_http admin_http;

/* Start serving; NULL with the reason in err. */
admin_http *admin_http_start(const admin_spec *spec, char *err, size_t errlen);
uint16_t admin_http_port(const admin_http *a);
void admin_http_stop(admin_http *a);

/* The rules, pure for tests and fuzzing. */
bool admin_is_loopback(const char *numeric_host);
bool admin_host_ok(const char *host_header, const char *listen_host, uint16_t port);
/* The answer body for an error status, as text/plain. */
void admin_reply_text(admin_reply *out, unsigned status, const char *text);

#endif
