/* SPDX-License-Identifier: Apache-2.0 */
/*
 * admin_http.c - the bounded admin listener of qkd-kme and qkd-link
 * (admin_http.h): libmicrohttpd with one internal polling thread, so the
 * handler never runs twice at once and a scrape costs the daemon's API
 * threads nothing but the counters they already keep.
 *
 * Every refusal is decided on the request line and headers alone, before
 * any body could be read.  With HTTPS the client certificate is verified
 * on every request (chain to client_ca, validity): scrapes are rare, and
 * a connection then never outlives a revoked trust.  The Host rule applies
 * to plain HTTP only: over HTTPS a browser reaching the listener under an
 * attacker's name fails the server certificate's name check first, and no
 * browser holds a scraping certificate by accident.
 */
#include "common/admin_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/listen_setup.h"
#include "common/log.h"
#include "common/secret.h"
#include "common/tls_policy.h"

#define ADMIN_MEMORY_LIMIT (16 * 1024) /* per connection: request line + headers */

struct admin_http {
    struct MHD_Daemon *mhd;
    admin_spec spec;
    char host[64];
    uint16_t port;
    bool tls;
};

static const char csp[] =
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'none'; "
    "frame-ancestors 'none'; base-uri 'none'";

/* ------------------------------------------------------------ rules */

bool admin_is_loopback(const char *h)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (h && inet_pton(AF_INET, h, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    return h && inet_pton(AF_INET6, h, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

bool admin_host_ok(const char *host, const char *listen_host, uint16_t port)
{
    if (!host || !listen_host)
        return false;
    char want[96];
    bool v6 = strchr(listen_host, ':') != NULL;
    snprintf(want, sizeof want, v6 ? "[%s]:%u" : "%s:%u", listen_host, (unsigned)port);
    if (strcmp(host, want) == 0)
        return true;
    snprintf(want, sizeof want, "localhost:%u", (unsigned)port);
    return admin_is_loopback(listen_host) && strcmp(host, want) == 0;
}

void admin_reply_text(admin_reply *out, unsigned status, const char *text)
{
    free(out->body);
    out->status = status;
    out->content_type = "text/plain; charset=utf-8";
    size_t n = strlen(text);
    out->body = malloc(n + 1);
    out->len = out->body ? n + 1 : 0;
    if (out->body) {
        memcpy(out->body, text, n);
        out->body[n] = '\n';
    }
}

/* ------------------------------------------------------------ replies */

static void add_security_headers(struct MHD_Response *r)
{
    MHD_add_response_header(r, "Content-Security-Policy", csp);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(r, "X-Frame-Options", "DENY");
    MHD_add_response_header(r, "Cross-Origin-Opener-Policy", "same-origin");
    MHD_add_response_header(r, "Cross-Origin-Resource-Policy", "same-origin");
    MHD_add_response_header(r, "Cache-Control", "no-store");
}

static enum MHD_Result send_reply(struct MHD_Connection *c, admin_reply *out, bool close,
                                  const char *allow)
{
    struct MHD_Response *r = MHD_create_response_from_buffer_with_free_callback(
        out->len, out->body ? out->body : (void *)"", out->body ? free : NULL);
    if (!r) {
        free(out->body);
        return MHD_NO;
    }
    add_security_headers(r);
    MHD_add_response_header(r, "Content-Type", out->content_type ? out->content_type : "text/plain");
    if (close)
        MHD_add_response_header(r, "Connection", "close");
    if (allow)
        MHD_add_response_header(r, "Allow", allow);
    enum MHD_Result ok = MHD_queue_response(c, out->status ? out->status : 500, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result refuse(struct MHD_Connection *c, unsigned status, const char *text,
                              const char *allow)
{
    admin_reply out = { 0 };
    admin_reply_text(&out, status, text);
    return send_reply(c, &out, true, allow);
}

/* ------------------------------------------------------------ checks */

static const char *header(struct MHD_Connection *c, const char *name)
{
    return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
}

/* A verified client certificate of client_ca on this TLS connection. */
static bool client_verified(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    if (!ci || !ci->tls_session)
        return false;
    gnutls_session_t s = (gnutls_session_t)ci->tls_session;
    unsigned n = 0, status = 0;
    if (!gnutls_certificate_get_peers(s, &n) || n == 0)
        return false;
    return gnutls_certificate_verify_peers2(s, &status) == 0 && status == 0;
}

static bool has_body(struct MHD_Connection *c)
{
    const char *cl = header(c, MHD_HTTP_HEADER_CONTENT_LENGTH);
    return header(c, MHD_HTTP_HEADER_TRANSFER_ENCODING) || (cl && strcmp(cl, "0") != 0);
}

/* One request: the rules of admin_http.h in order, each refusal decided
 * on the request line and headers, then the handler. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **req_cls)
{
    admin_http *a = cls;
    (void)version;
    (void)upload_data;
    (void)req_cls;
    if (*upload_data_size)
        return MHD_NO; /* a body we refused on the headers: close */
    if (a->tls && !client_verified(c))
        return refuse(c, 401, "a client certificate of the configured CA is required", NULL);
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return refuse(c, 405, "only GET and HEAD are allowed here", "GET, HEAD");
    if (has_body(c))
        return refuse(c, 400, "a request to the admin listener has no body", NULL);
    if (!a->tls && !admin_host_ok(header(c, MHD_HTTP_HEADER_HOST), a->host, a->port))
        return refuse(c, 403, "this listener answers only to its own address and port "
                              "in the Host header", NULL);
    if (!url || strlen(url) > ADMIN_MAX_TARGET)
        return refuse(c, 414, "request target too long", NULL);
    admin_reply out = { 0 };
    a->spec.handle(a->spec.ctx, url, &out);
    return send_reply(c, &out, false, NULL);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    admin_http *a = cls;
    char line[256];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    log_info("%s: http: %s", a->spec.name, line);
}

/* ------------------------------------------------------------ start, stop */

static struct MHD_Daemon *start_daemon(admin_http *a, unsigned flags, struct sockaddr_storage *ss,
                                       const char *cert, const char *key, const char *ca)
{
    if (!a->tls)
        return MHD_start_daemon(flags, 0, NULL, NULL, on_request, a,
            MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, a,
            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)ss,
            MHD_OPTION_CONNECTION_LIMIT, (unsigned)ADMIN_MAX_CONNECTIONS,
            MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)ADMIN_PER_IP_CONNECTIONS,
            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)ADMIN_IDLE_S,
            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)ADMIN_MEMORY_LIMIT,
            MHD_OPTION_END);
    return MHD_start_daemon(flags | MHD_USE_TLS, 0, NULL, NULL, on_request, a,
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, a,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)ss,
        MHD_OPTION_HTTPS_MEM_CERT, cert,
        MHD_OPTION_HTTPS_MEM_KEY, key,
        MHD_OPTION_HTTPS_MEM_TRUST, ca,
        MHD_OPTION_HTTPS_PRIORITIES, QC_TLS_PRIORITIES,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)ADMIN_MAX_CONNECTIONS,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)ADMIN_PER_IP_CONNECTIONS,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)ADMIN_IDLE_S,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)ADMIN_MEMORY_LIMIT,
        MHD_OPTION_END);
}

admin_http *admin_http_start(const admin_spec *spec, char *err, size_t errlen)
{
    admin_http *a = calloc(1, sizeof *a);
    if (!a) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    a->spec = *spec;
    a->tls = spec->cert != NULL;
    snprintf(a->host, sizeof a->host, "%s", spec->host);
    err[0] = '\0';
    if (!a->tls && !admin_is_loopback(spec->host)) {
        snprintf(err, errlen, "%s: plain HTTP on %s, which is not a loopback address: "
                 "configure cert, key and client_ca for HTTPS", spec->name, spec->host);
        free(a);
        return NULL;
    }
    char *cert = a->tls ? listen_pem_read(spec->cert, err, errlen) : NULL;
    char *key = cert ? listen_pem_read(spec->key, err, errlen) : NULL;
    char *ca = key ? listen_pem_read(spec->client_ca, err, errlen) : NULL;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG;
    struct sockaddr_storage ss;
    bool v6 = false, addr_ok = listen_sockaddr(spec->host, spec->port, &ss, &v6) == 0;
    if (v6)
        flags |= MHD_USE_IPv6;
    if (a->tls && !ca)
        ; /* err says why */
    else if (!addr_ok)
        snprintf(err, errlen, "%s: bad listen address %s", spec->name, spec->host);
    else if (!(a->mhd = start_daemon(a, flags, &ss, cert, key, ca)))
        snprintf(err, errlen, "%s: cannot listen on %s port %u (address in use%s)", spec->name,
                 spec->host, (unsigned)spec->port, a->tls ? ", or a bad certificate or key" : "");
    listen_pem_free(cert);
    listen_pem_free(key);
    listen_pem_free(ca);
    if (!a->mhd) {
        free(a);
        return NULL;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(a->mhd, MHD_DAEMON_INFO_BIND_PORT);
    a->port = di ? di->port : spec->port;
    return a;
}

uint16_t admin_http_port(const admin_http *a)
{
    return a->port;
}

void admin_http_stop(admin_http *a)
{
    if (!a)
        return;
    MHD_stop_daemon(a->mhd);
    free(a);
}
