/* SPDX-License-Identifier: Apache-2.0 */
/*
 * listener.h - an HTTPS listener with mutual TLS, as every KME interface
 * needs one: the SAE API (ETSI GS QKD 014), the KME-to-KME channel and the
 * link intake differ only in whom they trust and what they answer.
 *
 * libmicrohttpd with GnuTLS, TLS 1.2 and 1.3 only.  The client certificate
 * is verified against the listener's CA once per TLS connection (chain,
 * validity, TLS client-authentication purpose); the `identify` rule then
 * maps its subject CN / URI SAN to the caller's ID, which is cached with the
 * connection.  A connection without an acceptable certificate gets a 401
 * JSON answer and is closed.  Until its first authenticated request a
 * connection has a deadline and a budget of its own (conn_guard.h), and a
 * client address outside allow_from is dropped before TLS.
 */
#ifndef QC_KME_LISTENER_H
#define QC_KME_LISTENER_H

#include <stddef.h>
#include <stdint.h>

#include "kme/netprefix.h"
#include "kme/reply.h"

/* Map a verified certificate to the caller's ID: return cn or uri_san (either
 * may be NULL when the certificate has none), or NULL to refuse. */
typedef const char *(*listener_identify)(void *ctx, const char *cn, const char *uri_san);

/* Answer one request; caller is the ID returned by identify, raw_uri the
 * request target as received, body the request body (any method).  Must
 * fill *out (kme_reply) with a JSON answer. */
typedef void (*listener_handler)(void *ctx, const char *caller, const char *method,
                                 const char *raw_uri, const char *body, size_t body_len,
                                 kme_reply *out);

/* Told of every answer the listener makes itself, before any handler: a
 * 401 (no acceptable certificate), a 400 (body framed twice), a 413;
 * raw_uri may be NULL. */
typedef void (*listener_refused)(void *ctx, const char *raw_uri, int http);

typedef struct listener_spec {
    const char *name;            /* for logs: "sae_api", "peer_api", "link" */
    const char *host;            /* numeric IPv4 or IPv6 address */
    uint16_t port;               /* 0: any free port */
    const char *cert, *key;      /* server certificate and key (PEM files) */
    const char *ca;              /* CA for client certificates (PEM file) */
    unsigned threads;
    size_t max_body;             /* larger bodies get 413 */
    listener_identify identify;
    listener_handler handle;
    void *ctx;                   /* passed to identify, handle and refused */
    listener_refused refused;    /* NULL: nobody is told */
    /* Connections before and after authentication (conn_guard.h); 0 takes
     * the default. */
    unsigned max_connections;      /* libmicrohttpd's limit (1024); a quarter
                                      of it for unauthenticated ones */
    unsigned handshake_timeout_ms; /* accept to first authenticated request (3000) */
    unsigned per_ip_limit;         /* connections per client address; 0: no limit */
    const net_prefix *allow_from;  /* others are dropped at accept; NULL: anyone */
    struct crl_store *crl;         /* revoked client certificates (crl.h); NULL: none */
    size_t n_allow_from;
} listener_spec;

typedef struct listener listener;

/* Start listening and serving; returns NULL with a reason in err.  The spec
 * is copied; the files are read at start. */
listener *listener_start(const listener_spec *spec, char *err, size_t errlen);

/* The port actually bound (useful with port 0). */
uint16_t listener_port(const listener *l);

/* Stop accepting, close connections, release everything. */
void listener_stop(listener *l);

#endif
