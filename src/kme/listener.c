/* SPDX-License-Identifier: Apache-2.0 */
/*
 * listener.c - mTLS HTTPS listener: libmicrohttpd + GnuTLS.
 *
 * libmicrohttpd only *requests* a client certificate, so this file verifies
 * it itself (chain to the listener's CA, validity, an extended key usage
 * naming client authentication, not revoked by the CRL in force) on the
 * first request of each connection and caches the outcome and the SAE ID in
 * the connection's context: verifying per request costs ten times the
 * throughput (DESIGN.md §6).  A failed check answers 401 with a JSON body
 * and closes the connection.
 *
 * Each request keeps its raw URI (taken from the URI log callback, before
 * libmicrohttpd decodes anything) so that request.c can split the path
 * before percent-decoding; the body is gathered up to the listener's limit and a
 * larger one is refused with 413 (see declared_size); a request whose body
 * is framed in more than one way is refused with 400 (http_framing.h).
 *
 * Until its first authenticated request, a connection is in the listener's
 * conn_guard: an absolute deadline from accept, a budget of its own, and
 * an aggregated log of failures; allow_from is applied at accept, before
 * TLS (conn_guard.h).
 */
#include "kme/listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/listen_setup.h"
#include "common/log.h"
#include "common/tls_policy.h"
#include "kme/conn_guard.h"
#include "kme/crl.h"
#include "kme/events.h"
#include "kme/http_framing.h"
#include "kme/request.h"

#define IDLE_TIMEOUT_S 60          /* authenticated, kept alive, idle */
#define MAX_CONNECTIONS 1024       /* without spec.max_connections */
#define HANDSHAKE_TIMEOUT_MS 3000  /* without spec.handshake_timeout_ms */

struct listener {
    struct MHD_Daemon *daemon;
    listener_spec spec;
    uint16_t port;
    conn_guard *guard;  /* connections not authenticated yet */
};

/* Per TLS connection: the verified identity of the caller. */
typedef enum { PEER_UNCHECKED = 0, PEER_OK, PEER_REJECTED } peer_state;
typedef struct conn_ctx {
    peer_state state;
    char id[KME_MAX_SAE_ID_LEN + 1];
    guard_conn guard;   /* deadline until authenticated */
    unsigned char serial[CRL_SERIAL_MAX]; /* the client certificate's, for the CRL */
    size_t serial_len;
    uint64_t crl_gen;   /* CRL generation it was last checked against */
    const char *refusal;                  /* PEER_REJECTED: why (the audit log's reason) */
    char refused_cn[KME_MAX_SAE_ID_LEN + 1]; /* ... and the certificate's CN, if any */
} conn_ctx;

/* Per request: raw URI and body. */
typedef struct req_ctx {
    char *uri;
    char *body;
    size_t body_len, body_cap;
    size_t dropped;     /* bytes read and dropped once past the limit */
    bool headers_done;
    bool too_large;     /* body passed the limit: being dropped */
} req_ctx;

/* ---- identity from the client certificate ------------------------------ */

static int cert_common_name(gnutls_x509_crt_t crt, char *out, size_t outlen)
{
    size_t sz = outlen;
    if (gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, out, &sz) < 0)
        return -1;
    char extra[8];
    size_t esz = sizeof extra;
    int more = gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 1, 0, extra, &esz);
    if (more != GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
        return -1; /* two CNs: ambiguous identity */
    return strlen(out) == sz ? 0 : -1; /* no embedded NUL */
}

static int cert_uri_san(gnutls_x509_crt_t crt, char *out, size_t outlen)
{
    for (unsigned i = 0;; i++) {
        size_t sz = outlen;
        int t = gnutls_x509_crt_get_subject_alt_name(crt, i, out, &sz, NULL);
        if (t < 0)
            return -1;
        if (t == GNUTLS_SAN_URI)
            return strlen(out) == sz ? 0 : -1;
    }
}

/* Does the certificate name TLS client authentication among its extended
 * key usages?  GnuTLS's purpose check (RFC 5280) lets a certificate without
 * the extension through, valid for every purpose; we do not: any
 * certificate the CA ever issued for another use (a server, code signing)
 * would otherwise authenticate as an SAE, and every certificate our PKI
 * makes for a client says so. */
static bool has_client_auth_eku(gnutls_x509_crt_t crt)
{
    for (unsigned i = 0;; i++) {
        char oid[128];
        size_t sz = sizeof oid;
        int rc = gnutls_x509_crt_get_key_purpose_oid(crt, i, oid, &sz, NULL);
        if (rc < 0)
            return false; /* the end of the list, or no extension at all */
        if (strcmp(oid, GNUTLS_KP_TLS_WWW_CLIENT) == 0)
            return true;
    }
}

/* The audit log's reason for a chain that did not verify. */
static const char *chain_refusal(unsigned status)
{
    if (status & GNUTLS_CERT_SIGNER_NOT_FOUND)
        return "not signed by a CA this listener trusts";
    if (status & GNUTLS_CERT_EXPIRED)
        return "certificate expired";
    if (status & GNUTLS_CERT_NOT_ACTIVATED)
        return "certificate not yet valid";
    if (status & GNUTLS_CERT_REVOKED)
        return "certificate revoked";
    if (status & GNUTLS_CERT_PURPOSE_MISMATCH)
        return "certificate not for TLS client authentication";
    if (status & GNUTLS_CERT_INSECURE_ALGORITHM)
        return "certificate signed with an insecure algorithm";
    if (status & GNUTLS_CERT_SIGNATURE_FAILURE)
        return "certificate signature does not verify";
    return "certificate chain does not verify";
}

/* The checks of verify_client past the chain: purpose, CRL, identity.
 * The reason of a refusal, or NULL with the chosen identity in cc->id. */
static const char *check_leaf(const listener *l, gnutls_x509_crt_t crt, bool has_cn,
                              const char *cn, conn_ctx *cc)
{
    char uri[KME_MAX_SAE_ID_LEN + 1];
    if (!has_client_auth_eku(crt))
        return "no TLS client authentication purpose (extended key usage)";
    cc->serial_len = sizeof cc->serial;
    if (gnutls_x509_crt_get_serial(crt, cc->serial, &cc->serial_len) < 0)
        return "certificate serial number unreadable";
    if (crl_store_revoked(l->spec.crl, cc->serial, cc->serial_len))
        return "certificate revoked by the CRL in force";
    bool has_uri = cert_uri_san(crt, uri, sizeof uri) == 0;
    const char *chosen = l->spec.identify(l->spec.ctx, has_cn ? cn : NULL, has_uri ? uri : NULL);
    if (!chosen || strlen(chosen) >= sizeof cc->id)
        return "certificate identity not admitted by this listener (unknown ID)";
    strcpy(cc->id, chosen);
    return NULL;
}

/* Verify the client's chain, validity and purpose, that the CRL in force
 * (if any) does not revoke it, then let the listener's rule pick the
 * identity from the leaf's CN or URI SAN; the leaf's serial goes to cc for
 * the checks against later CRLs.  A refusal leaves its reason and the
 * certificate's CN (if it has one) in cc for the audit log. */
static int verify_client(const listener *l, gnutls_session_t s, conn_ctx *cc)
{
    cc->crl_gen = crl_store_generation(l->spec.crl); /* before the check: a reload
                                                         meanwhile is seen later */
    gnutls_typed_vdata_st purpose = {
        .type = GNUTLS_DT_KEY_PURPOSE_OID,
        .data = (unsigned char *)GNUTLS_KP_TLS_WWW_CLIENT,
    };
    unsigned status = 0, n = 0;
    const gnutls_datum_t *certs = gnutls_certificate_type_get(s) == GNUTLS_CRT_X509
        ? gnutls_certificate_get_peers(s, &n) : NULL;
    gnutls_x509_crt_t crt;
    if (!certs || n == 0) {
        cc->refusal = "no client certificate";
        return -1;
    }
    if (gnutls_x509_crt_init(&crt) < 0) {
        cc->refusal = "out of memory";
        return -1;
    }
    char cn[KME_MAX_SAE_ID_LEN + 1];
    bool has_cn = false;
    if (gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER) < 0) {
        cc->refusal = "client certificate unreadable";
    } else {
        has_cn = cert_common_name(crt, cn, sizeof cn) == 0;
        if (gnutls_certificate_verify_peers(s, &purpose, 1, &status) < 0)
            cc->refusal = "certificate chain could not be verified";
        else if (status != 0)
            cc->refusal = chain_refusal(status);
        else
            cc->refusal = check_leaf(l, crt, has_cn, cn, cc);
    }
    gnutls_x509_crt_deinit(crt);
    if (cc->refusal && has_cn)
        snprintf(cc->refused_cn, sizeof cc->refused_cn, "%s", cn);
    return cc->refusal ? -1 : 0;
}

/* Verify once per connection; true if the caller is acceptable. */
static bool caller_identity(listener *l, struct MHD_Connection *conn, const char **caller)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    conn_ctx *cc = ci ? ci->socket_context : NULL;
    if (!cc)
        return false;
    if (cc->state == PEER_UNCHECKED) {
        const union MHD_ConnectionInfo *ti = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
        bool ok = ti && ti->tls_session
            && verify_client(l, (gnutls_session_t)ti->tls_session, cc) == 0;
        cc->state = ok ? PEER_OK : PEER_REJECTED;
        if (ok) /* no deadline any more */
            conn_guard_authenticated(l->guard, &cc->guard);
        else    /* counted in the guard's log, not one line each */
            conn_guard_refused(l->guard, &cc->guard);
    } else if (cc->state == PEER_OK && cc->crl_gen != crl_store_generation(l->spec.crl)) {
        /* a CRL loaded since: a kept-alive connection is checked again */
        cc->crl_gen = crl_store_generation(l->spec.crl);
        if (crl_store_revoked(l->spec.crl, cc->serial, cc->serial_len)) {
            log_info("%s: %s's certificate is revoked now: its connection is refused and closed",
                     l->spec.name, cc->id);
            cc->state = PEER_REJECTED;
            cc->refusal = "certificate revoked by a CRL loaded since the connection began";
        }
    }
    *caller = cc->id;
    return cc->state == PEER_OK;
}

/* ---- responses --------------------------------------------------------- */

static void free_body(void *cls)
{
    secret_buf *sb = cls;
    secret_free(sb);
    free(sb);
}

static enum MHD_Result send_response(struct MHD_Connection *conn, kme_reply *r, bool close)
{
    secret_buf *sb = malloc(sizeof *sb);
    if (!sb) {
        reply_free(r);
        return MHD_NO;
    }
    *sb = r->body;
    memset(&r->body, 0, sizeof r->body);
    struct MHD_Response *resp = MHD_create_response_from_buffer_with_free_callback_cls(
        sb->len, sb->data, free_body, sb);
    if (!resp) {
        free_body(sb);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (close)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    if (r->retry_after_s > 0) { /* a per-SAE limit: when to ask again */
        char secs[16];
        snprintf(secs, sizeof secs, "%u", r->retry_after_s);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, secs);
    }
    if (r->allow) /* a 405: the methods the resource takes (RFC 9110) */
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)r->http, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result send_error(struct MHD_Connection *conn, int http, const char *msg, bool close)
{
    kme_reply r = { 0 };
    reply_error(&r, http, msg);
    return send_response(conn, &r, close);
}

/* The 401 of a refused caller, reported as a security event (one per
 * answer) with the reason caller_identity left in its connection. */
static enum MHD_Result send_unauthorized(const listener *l, struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    const conn_ctx *cc = ci ? ci->socket_context : NULL;
    const char *reason = cc && cc->refusal ? cc->refusal : "no connection context";
    events_unauthorized(l->spec.name, reason, cc && cc->refused_cn[0] ? cc->refused_cn : NULL,
                        cc && cc->id[0] ? cc->id : NULL);
    return send_error(conn, 401, MSG_UNAUTHORIZED, true);
}

/* ---- libmicrohttpd callbacks ------------------------------------------- */

static int append_body(req_ctx *rq, size_t max_body, const char *data, size_t n)
{
    if (rq->body_len + n > max_body)
        return -1;
    if (rq->body_len + n > rq->body_cap) {
        size_t cap = rq->body_cap ? rq->body_cap * 2 : 1024;
        while (cap < rq->body_len + n)
            cap *= 2;
        char *grown = realloc(rq->body, cap);
        if (!grown)
            return -1;
        rq->body = grown;
        rq->body_cap = cap;
    }
    memcpy(rq->body + rq->body_len, data, n);
    rq->body_len += n;
    return 0;
}

static enum MHD_Result send_too_large(listener *l, struct MHD_Connection *conn)
{
    char msg[96];
    snprintf(msg, sizeof msg, "request body too large: at most %zu bytes", l->spec.max_body);
    return send_error(conn, 413, msg, true);
}

/*
 * How a declared Content-Length is taken.  A body past the limit is refused
 * with 413, after reading and dropping it when it is at most DRAIN_MAX bytes
 * past the limit: a server that answers and closes with the request unread
 * resets the connection, and the reset can destroy the answer before the
 * client reads it (the client then sees a lost connection, not the 413).
 * A larger body is refused at once and the connection closed, so that no
 * client keeps a worker reading for long.
 */
#define DRAIN_MAX (1024u * 1024u)
typedef enum { BODY_FITS, BODY_DRAIN, BODY_REFUSE_NOW } declared_body;

static declared_body declared_size(const listener *l, struct MHD_Connection *conn)
{
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (!cl)
        return BODY_FITS;
    char *end;
    errno = 0;
    unsigned long long n = strtoull(cl, &end, 10);
    if (errno != ERANGE && n <= l->spec.max_body)
        return BODY_FITS;
    return errno != ERANGE && n - l->spec.max_body <= DRAIN_MAX ? BODY_DRAIN : BODY_REFUSE_NOW;
}

static enum MHD_Result count_framing_header(void *cls, enum MHD_ValueKind kind,
                                            const char *key, size_t key_size,
                                            const char *value, size_t value_size)
{
    (void)kind;
    http_framing_add(cls, key, key_size, value ? value : "", value ? value_size : 0);
    return MHD_YES;
}

/* The refusal of a request whose body is framed in more than one way, or
 * NULL (http_framing.h). */
static const char *framing_refusal(struct MHD_Connection *conn)
{
    http_framing f = { 0 };
    MHD_get_connection_values_n(conn, MHD_HEADER_KIND, count_framing_header, &f);
    return http_framing_refusal(&f);
}

/* A body past the limit is read and dropped (see declared_size); true while
 * the body read stays within the limit + DRAIN_MAX.  A declared length
 * never passes that (declared_size refused it at once); a chunked body
 * declares no size, so this is where its limit holds: past it the
 * connection is closed at once instead of reading the rest. */
static bool take_body(listener *h, req_ctx *rq, const char *data, size_t n)
{
    if (!rq->too_large && append_body(rq, h->spec.max_body, data, n) == 0)
        return true;
    rq->too_large = true;
    rq->dropped += n;
    return rq->body_len + rq->dropped <= h->spec.max_body + DRAIN_MAX;
}

/* An answer the listener makes itself, before the handler: the spec's
 * `refused` hook sees it first (the KME's metrics count it). */
static enum MHD_Result refuse(listener *h, const req_ctx *rq, struct MHD_Connection *conn,
                              int http, const char *msg)
{
    if (h->spec.refused)
        h->spec.refused(h->spec.ctx, rq ? rq->uri : NULL, http);
    if (http == 401)
        return send_unauthorized(h, conn);
    return http == 413 ? send_too_large(h, conn) : send_error(conn, http, msg, true);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **req_cls)
{
    (void)url;
    (void)version;
    listener *h = cls;
    req_ctx *rq = *req_cls;
    const char *caller = NULL;
    if (!rq)
        return send_error(conn, 503, "out of memory", true);
    if (!rq->headers_done) {
        rq->headers_done = true;
        if (!caller_identity(h, conn, &caller))
            return refuse(h, rq, conn, 401, MSG_UNAUTHORIZED);
        const char *framing = framing_refusal(conn);
        if (framing)
            return refuse(h, rq, conn, 400, framing);
        switch (declared_size(h, conn)) {
        case BODY_FITS: break;
        case BODY_DRAIN: rq->too_large = true; break;
        case BODY_REFUSE_NOW: return refuse(h, rq, conn, 413, NULL);
        }
        return MHD_YES; /* wait for the body */
    }
    if (*upload_data_size) {
        /* libmicrohttpd takes no answer while a body is still arriving: a
         * body past the limit is read and dropped, then refused */
        bool keep_reading = take_body(h, rq, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return keep_reading ? MHD_YES : MHD_NO; /* MHD_NO: closed, no answer */
    }
    if (rq->too_large)
        return refuse(h, rq, conn, 413, NULL);
    if (!caller_identity(h, conn, &caller)) /* cached: no second verification */
        return refuse(h, rq, conn, 401, MSG_UNAUTHORIZED);
    kme_reply r;
    memset(&r, 0, sizeof r);
    h->spec.handle(h->spec.ctx, caller, method, rq->uri, rq->body, rq->body_len, &r);
    return send_response(conn, &r, false);
}

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)cls;
    (void)conn;
    req_ctx *rq = calloc(1, sizeof *rq);
    if (rq && !(rq->uri = strdup(uri))) {
        free(rq);
        rq = NULL;
    }
    return rq;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    req_ctx *rq = *req_cls;
    if (!rq)
        return;
    if (rq->body)
        secret_wipe(rq->body, rq->body_cap); /* key IDs; cheap to wipe */
    free(rq->body);
    free(rq->uri);
    free(rq);
    *req_cls = NULL;
}

/* A new connection gets its context and its deadline; a closing one
 * (before libmicrohttpd closes the socket) leaves the guard. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    listener *h = cls;
    conn_ctx *cc = *socket_context;
    if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        if (cc)
            conn_guard_closed(h->guard, &cc->guard);
        free(cc);
        *socket_context = NULL;
        return;
    }
    const union MHD_ConnectionInfo *fdi = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    const union MHD_ConnectionInfo *ai = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    cc = calloc(1, sizeof *cc);
    *socket_context = cc;
    if (!fdi)
        return;
    if (!cc) { /* no context, no deadline: end it now */
        shutdown(fdi->connect_fd, SHUT_RDWR);
        return;
    }
    conn_guard_accepted(h->guard, &cc->guard, fdi->connect_fd, ai ? ai->client_addr : NULL);
}

/* allow_from, before anything else of the connection exists. */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    listener *h = cls;
    (void)addrlen;
    if (!h->spec.allow_from || net_prefix_match(h->spec.allow_from, h->spec.n_allow_from, addr))
        return MHD_YES;
    conn_guard_dropped(h->guard, addr, GONE_NOT_ALLOWED);
    return MHD_NO;
}

/* libmicrohttpd writes a line per failed handshake: the guard writes each
 * text once per interval, with a count of repeats. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    listener *h = cls;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    if (h->guard)
        conn_guard_http_message(h->guard, line);
    else
        log_info("%s: http: %s", h->spec.name, line);
}

/* ---- start and stop ---------------------------------------------------- */

listener *listener_start(const listener_spec *spec, char *err, size_t errlen)
{
    listener *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    h->spec = *spec;
    err[0] = '\0';
    char *cert = listen_pem_read(spec->cert, err, errlen);
    char *key = cert ? listen_pem_read(spec->key, err, errlen) : NULL;
    char *ca = key ? listen_pem_read(spec->ca, err, errlen) : NULL;
    unsigned flags = MHD_USE_TLS | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
    unsigned max_conn = spec->max_connections ? spec->max_connections : MAX_CONNECTIONS;
    unsigned deadline = spec->handshake_timeout_ms ? spec->handshake_timeout_ms : HANDSHAKE_TIMEOUT_MS;
    struct sockaddr_storage ss;
    bool v6 = false, addr_ok = listen_sockaddr(spec->host, spec->port, &ss, &v6) == 0;
    if (v6)
        flags |= MHD_USE_IPv6;
    if (ca && !(h->guard = conn_guard_new(spec->name, max_conn / 4, deadline)))
        snprintf(err, errlen, "%s: cannot start the connection guard", spec->name);
    else if (ca && !addr_ok)
        snprintf(err, errlen, "%s: bad listen address %s", spec->name, spec->host);
    else if (ca)
        h->daemon = MHD_start_daemon(flags, 0, on_accept, h, on_request, h,
            MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, h,
            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
            MHD_OPTION_HTTPS_MEM_CERT, cert,
            MHD_OPTION_HTTPS_MEM_KEY, key,
            MHD_OPTION_HTTPS_MEM_TRUST, ca,
            MHD_OPTION_HTTPS_PRIORITIES, QC_TLS_PRIORITIES,
            /* a pool of one is refused with a warning: one worker is the
             * internal polling thread itself (pool size 0) */
            MHD_OPTION_THREAD_POOL_SIZE, spec->threads > 1 ? spec->threads : 0u,
            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)IDLE_TIMEOUT_S,
            MHD_OPTION_CONNECTION_LIMIT, max_conn,
            MHD_OPTION_PER_IP_CONNECTION_LIMIT, spec->per_ip_limit,
            MHD_OPTION_URI_LOG_CALLBACK, on_uri, h,
            MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
            MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
            MHD_OPTION_END);
    if (ca && !h->daemon && !*err)
        snprintf(err, errlen, "%s: cannot start the HTTPS listener on %s:%u (address in use, or bad certificate/key in %s, %s)",
                 spec->name, spec->host, spec->port, spec->cert, spec->key);
    listen_pem_free(cert);
    listen_pem_free(key);
    listen_pem_free(ca);
    if (!h->daemon) {
        conn_guard_free(h->guard);
        free(h);
        return NULL;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    h->port = di ? di->port : spec->port;
    return h;
}

uint16_t listener_port(const listener *l)
{
    return l->port;
}

void listener_stop(listener *l)
{
    if (!l)
        return;
    MHD_stop_daemon(l->daemon); /* every connection closed: the guard is empty */
    conn_guard_free(l->guard);
    free(l);
}
