/* SPDX-License-Identifier: Apache-2.0 */
/*
 * server.c - the HTTP server of `qumail web` (server.h).
 *
 * libmicrohttpd with one internal polling thread: every request, and so
 * every use of the session table, runs on that thread.  A request goes
 * through, in order: the method (GET, HEAD, POST), Host, Sec-Fetch-Site,
 * Origin (gate.h); then the start token (GET /?token=..., exchanged for a
 * session cookie with a 303 to /, so the token leaves the address bar and
 * history); then the session cookie; then, for a POST, a bounded
 * url-encoded body holding the session's CSRF token.  A refusal is decided
 * on the headers alone, before any body is read.  Every answer carries the
 * same security headers (CSP, nosniff, no-referrer, no-store).  Nothing is
 * logged: URLs hold the token.
 */
#include "web/server.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/monotime.h"
#include "common/secret.h"
#include "web/auth.h"
#include "web/compose.h"
#include "web/form.h"
#include "web/gate.h"
#include "web/msgurl.h"
#include "web/multipart.h"
#include "web/pages.h"

#define WEB_MAX_CONNECTIONS 32
#define WEB_CONNECTION_TIMEOUT_S 30

struct web_server {
    struct MHD_Daemon *mhd;
    uint16_t port;
    char cookie_name[32];       /* qumail_PORT: two servers never share a cookie */
    const char *account;
    const qm_config *cfg;
    qkd014_client *kme;
    qm_self *reader;
    web_auth auth;
};

/* One request's state between libmicrohttpd's calls. */
typedef struct request_state {
    char *body;                 /* POST only */
    size_t len;
    bool too_large;
    web_multipart *mp;          /* POST /compose/send only: its body, read as it comes */
    bool refused;               /* answered on the headers */
    web_session *session;
} request_state;

static const char csp[] =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'";

/* ------------------------------------------------------------ replies */

static void free_body(void *cls)
{
    html_buf *b = cls;
    html_free(b);
    free(b);
}

/* out->csp replaces the pages' policy (an HTML part's frame: no script,
 * nothing remote); out->framable lets our own pages frame it. */
static void add_security_headers(struct MHD_Response *r, const web_reply *out)
{
    char policy[sizeof csp + 32];
    snprintf(policy, sizeof policy, "%s%s", csp, out->frames ? "; frame-src 'self'" : "");
    MHD_add_response_header(r, "Content-Security-Policy", out->csp ? out->csp : policy);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(r, "X-Frame-Options", out->framable ? "SAMEORIGIN" : "DENY");
    MHD_add_response_header(r, "Cross-Origin-Opener-Policy", "same-origin");
    MHD_add_response_header(r, "Cross-Origin-Resource-Policy", "same-origin");
    MHD_add_response_header(r, "Cache-Control", "no-store");
}

/* Send out (its body handed over to libmicrohttpd, wiped when sent). */
static enum MHD_Result send_reply(web_server *w, struct MHD_Connection *c, web_reply *out,
                                  const char *set_cookie)
{
    html_buf *b = malloc(sizeof *b);
    if (!b || out->body.oom) {
        free(b);
        html_free(&out->body);
        *out = (web_reply){0};   /* no download headers on the error page */
        web_error_page(out, 500, "Internal error", "Out of memory.");
        if (out->body.oom)
            return MHD_NO;
        b = malloc(sizeof *b);
        if (!b)
            return MHD_NO;
    }
    *b = out->body;
    memset(&out->body, 0, sizeof out->body);
    struct MHD_Response *r = MHD_create_response_from_buffer_with_free_callback_cls(
        b->len, b->p ? b->p : (void *)"", free_body, b);
    if (!r) {
        free_body(b);
        return MHD_NO;
    }
    add_security_headers(r, out);
    if (out->disposition[0])
        MHD_add_response_header(r, "Content-Disposition", out->disposition);
    if (out->content_type)
        MHD_add_response_header(r, "Content-Type", out->content_type);
    if (out->location)
        MHD_add_response_header(r, "Location", out->location);
    if (set_cookie)
        MHD_add_response_header(r, "Set-Cookie", set_cookie);
    (void)w;
    enum MHD_Result ok = MHD_queue_response(c, out->status, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result refuse(web_server *w, struct MHD_Connection *c, request_state *st,
                              unsigned status, const char *title, const char *text)
{
    web_reply out = {0};
    st->refused = true;
    web_error_page(&out, status, title, text);
    return send_reply(w, c, &out, NULL);
}

/* ------------------------------------------------------------- checks */

static const char *header(struct MHD_Connection *c, const char *name)
{
    return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
}

/* The rules on headers alone: NULL if the request may go on, else the
 * reason (and *status). */
static const char *gate_refusal(web_server *w, struct MHD_Connection *c, const char *method,
                                unsigned *status)
{
    *status = 403;
    if (!web_host_ok(header(c, MHD_HTTP_HEADER_HOST), w->port))
        return "This server answers only to 127.0.0.1 and localhost with its own port.";
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0 &&
        strcmp(method, "POST") != 0) {
        *status = 405;
        return "Only GET, HEAD and POST are served.";
    }
    const char *site = header(c, "Sec-Fetch-Site");
    if (!web_fetch_site_ok(site))
        return "Requests from other sites are refused.";
    if (!web_origin_ok(header(c, "Origin"), site, w->port))
        return "Requests from other origins are refused.";
    return NULL;
}

static web_session *session_of(web_server *w, struct MHD_Connection *c)
{
    char id[WEB_SECRET_HEX + 1];
    const char *cookie = header(c, MHD_HTTP_HEADER_COOKIE);
    if (!cookie || !web_cookie_value(cookie, w->cookie_name, id, sizeof id))
        return NULL;
    return web_auth_find(&w->auth, id, (uint64_t)mono_ms());
}

static bool form_urlencoded(struct MHD_Connection *c)
{
    const char *ct = header(c, MHD_HTTP_HEADER_CONTENT_TYPE);
    static const char want[] = "application/x-www-form-urlencoded";
    return ct && strncasecmp(ct, want, sizeof want - 1) == 0 &&
           (ct[sizeof want - 1] == '\0' || ct[sizeof want - 1] == ';');
}

/* ---------------------------------------------------------- the flow */

/* GET /?token=T: a new session and a 303 to / that drops the token. */
static enum MHD_Result exchange_token(web_server *w, struct MHD_Connection *c,
                                      request_state *st, const char *token)
{
    if (!web_auth_token_ok(&w->auth, token))
        return refuse(w, c, st, 403, "Wrong token",
                      "This link is not valid: open the URL that qumail web printed.");
    const web_session *s = web_auth_open(&w->auth, (uint64_t)mono_ms());
    char cookie[160];
    snprintf(cookie, sizeof cookie, "%s=%s; Path=/; HttpOnly; SameSite=Strict",
             w->cookie_name, s->id);
    web_reply out = { .status = 303, .location = "/" };
    enum MHD_Result r = send_reply(w, c, &out, cookie);
    secret_wipe(cookie, sizeof cookie);
    st->refused = true;   /* answered */
    return r;
}

/* POST /compose/send, the one multipart/form-data form (attachments):
 * refused on its headers when it is not multipart or announces more than
 * WEB_MP_MAX_BODY bytes; else its body is read as it comes (multipart.h),
 * at most the parts themselves held. */
static enum MHD_Result start_multipart(web_server *w, struct MHD_Connection *c,
                                       request_state *st)
{
    char boundary[WEB_MP_MAX_BOUNDARY + 1];
    const char *len = header(c, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (web_mp_boundary(header(c, MHD_HTTP_HEADER_CONTENT_TYPE), boundary, sizeof boundary) !=
        WEB_MP_OK)
        return refuse(w, c, st, 415, "Unsupported form",
                      "This form is sent as multipart/form-data with a boundary.");
    if (len && (strlen(len) > 10 || strtoull(len, NULL, 10) > WEB_MP_MAX_BODY))
        return refuse(w, c, st, 413, "Too large",
                      "The message with its attachments is larger than 25 MiB.");
    if (!(st->mp = malloc(sizeof *st->mp)))
        return MHD_NO;
    web_mp_init(st->mp, boundary, web_compose_fields, WEB_COMPOSE_FILES);
    return MHD_YES;
}

/* The first call of a request: its headers only. */
static enum MHD_Result on_headers(web_server *w, struct MHD_Connection *c, const char *url,
                                  const char *method, request_state *st)
{
    unsigned status;
    const char *why = gate_refusal(w, c, method, &status);
    if (why)
        return refuse(w, c, st, status, status == 405 ? "Method not allowed" : "Forbidden", why);
    bool post = strcmp(method, "POST") == 0;
    const char *token = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "token");
    if (!post && strcmp(url, "/") == 0 && token)
        return exchange_token(w, c, st, token);
    if (!post && web_route_public(url))
        return MHD_YES;
    st->session = session_of(w, c);
    if (!st->session)
        return refuse(w, c, st, 401, "Not signed in",
                      "Open the URL that qumail web printed when it started "
                      "(sessions end after a while, or at logout).");
    if (post && strcmp(url, WEB_MULTIPART_URL) == 0)
        return start_multipart(w, c, st);
    if (post && !form_urlencoded(c))
        return refuse(w, c, st, 415, "Unsupported form",
                      "Forms are sent as application/x-www-form-urlencoded.");
    return MHD_YES;
}

static void take_body(request_state *st, const char *data, size_t n)
{
    if (st->mp) {
        web_mp_feed(st->mp, data, n);   /* errors are kept for on_complete */
        return;
    }
    if (st->too_large || n > WEB_FORM_MAX_BODY - st->len) {
        st->too_large = true;
        return;
    }
    if (!st->body && !(st->body = malloc(WEB_FORM_MAX_BODY))) {
        st->too_large = true;
        return;
    }
    memcpy(st->body + st->len, data, n);
    st->len += n;
}

/* ?name= of the request (web_request.arg). */
static const char *query_arg(const web_request *rq, const char *name)
{
    return MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, name);
}

static enum MHD_Result on_complete(web_server *w, struct MHD_Connection *c, const char *url,
                                   const char *method, request_state *st)
{
    web_reply out = {0};
    web_form form = {0};
    if (!st->session) {   /* only public pages get here without one */
        web_route_public_page(url, &out);
        return send_reply(w, c, &out, NULL);
    }
    bool post = strcmp(method, "POST") == 0;
    if (post && st->too_large)
        return refuse(w, c, st, 413, "Too large", "The form is larger than this page allows.");
    if (post && st->mp) {
        web_mp_err e = web_mp_finish(st->mp);
        const web_mp_part *csrf = web_mp_field(st->mp, "csrf");
        if (e != WEB_MP_OK)
            return refuse(w, c, st, e == WEB_MP_TOO_LARGE ? 413 : 400,
                          e == WEB_MP_TOO_LARGE ? "Too large" : "Bad form", web_mp_strerror(e));
        if (!web_auth_csrf_ok(st->session, csrf ? (const char *)csrf->data : NULL))
            return refuse(w, c, st, 403, "Forbidden",
                          "This form is not from this session's page: reload and try again.");
    } else if (post) {
        web_form_err e = web_form_parse(st->body ? st->body : "", st->len, &form);
        if (e != WEB_FORM_OK) {
            web_form_free(&form);
            return refuse(w, c, st, 400, "Bad form", web_form_strerror(e));
        }
        if (!web_auth_csrf_ok(st->session, web_form_get(&form, "csrf"))) {
            web_form_free(&form);
            return refuse(w, c, st, 403, "Forbidden",
                          "This form is not from this session's page: reload and try again.");
        }
    }
    web_request rq = { .method = method, .url = url, .session = st->session,
                       .form = post ? &form : NULL, .account = w->account, .cfg = w->cfg,
                       .page_arg = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND,
                                                               "page"),
                       .kme = w->kme, .reader = w->reader, .multipart = st->mp,
                       .arg = query_arg, .conn = c };
    web_route(&rq, &out);
    web_form_free(&form);
    char expire[96];
    const char *set_cookie = NULL;
    if (out.end_session) {
        web_auth_close(st->session);
        st->session = NULL;
        snprintf(expire, sizeof expire, "%s=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0",
                 w->cookie_name);
        set_cookie = expire;
    }
    return send_reply(w, c, &out, set_cookie);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    web_server *w = cls;
    request_state *st = *con_cls;
    (void)version;
    if (!st) {
        if (!(st = calloc(1, sizeof *st)))
            return MHD_NO;
        *con_cls = st;
        return on_headers(w, c, url, method, st);
    }
    if (st->refused)
        return MHD_YES;
    if (*upload_data_size > 0) {
        take_body(st, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    return on_complete(w, c, url, method, st);
}

static void on_done(void *cls, struct MHD_Connection *c, void **con_cls,
                    enum MHD_RequestTerminationCode why)
{
    request_state *st = *con_cls;
    (void)cls, (void)c, (void)why;
    if (st) {
        if (st->body) {
            secret_wipe(st->body, st->len);
            free(st->body);
        }
        if (st->mp) {
            web_mp_free(st->mp);
            free(st->mp);
        }
        free(st);
        *con_cls = NULL;
    }
}

/* ------------------------------------------------------------- public */

/* %XX decoding of paths and query arguments without ever making a NUL
 * (msgurl.h): a %00 would cut a path short and name another resource. */
static size_t unescape(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls, (void)c;
    return web_url_unescape(s);
}

/* A listening socket on 127.0.0.1:port (0: any); its port in *bound.
 * Bound here rather than by libmicrohttpd so that the port (which the Host
 * rule and the cookie name need) is known before the first request. */
static int listen_loopback(uint16_t port, uint16_t *bound)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof sa;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 64) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
        close(fd);
        return -1;
    }
    *bound = ntohs(sa.sin_port);
    return fd;
}

web_server *web_server_start(const web_server_opts *o, char *err, size_t cap)
{
    web_server *w = calloc(1, sizeof *w);
    if (!w) {
        snprintf(err, cap, "out of memory");
        return NULL;
    }
    w->account = o->account;
    w->cfg = o->cfg;
    w->kme = o->kme;
    w->reader = o->reader;
    int fd = listen_loopback(o->port, &w->port);
    if (fd < 0) {
        snprintf(err, cap, "cannot listen on 127.0.0.1:%u (in use?)", (unsigned)o->port);
        free(w);
        return NULL;
    }
    snprintf(w->cookie_name, sizeof w->cookie_name, "qumail_%u", (unsigned)w->port);
    web_auth_init(&w->auth, o->idle_s, o->max_s);
    w->mhd = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO, 0, NULL, NULL, on_request, w,
        MHD_OPTION_LISTEN_SOCKET, fd,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)WEB_MAX_CONNECTIONS,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)WEB_CONNECTION_TIMEOUT_S,
        MHD_OPTION_NOTIFY_COMPLETED, on_done, w,
        MHD_OPTION_UNESCAPE_CALLBACK, unescape, w,
        MHD_OPTION_END);
    if (!w->mhd) {
        snprintf(err, cap, "cannot start the HTTP server on 127.0.0.1:%u", (unsigned)w->port);
        close(fd);
        web_auth_wipe(&w->auth);
        free(w);
        return NULL;
    }
    return w;
}

uint16_t web_server_port(const web_server *w)
{
    return w->port;
}

int web_server_url(const web_server *w, char *out, size_t cap)
{
    int n = snprintf(out, cap, "http://127.0.0.1:%u/?token=%s", (unsigned)w->port, w->auth.token);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

void web_server_stop(web_server *w)
{
    if (!w)
        return;
    MHD_stop_daemon(w->mhd);
    web_auth_wipe(&w->auth);
    free(w);
}
