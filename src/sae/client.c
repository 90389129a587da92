/* SPDX-License-Identifier: Apache-2.0 */
/*
 * client.c - libqkd014: the client object and the HTTPS exchange with a KME
 * (ETSI GS QKD 014 V1.1.1 §5, §8 of our digest).
 *
 * The HTTPS side is common/httpsc.c, our own HTTP/1.1-over-GnuTLS client (not
 * libcurl, which cost about twice the client CPU per request; numbers in
 * docs/libqkd014.md): one per client, holding the TLS credentials (loaded
 * once) and one kept-alive connection.  TLS 1.2 minimum, trust only the
 * given CA, peer and host name verification always on.  The expected KME ID
 * (subject CN of the KME certificate) is checked by check_peer() right after
 * each handshake, before a request (which may carry key IDs) is sent.
 *
 * Every call, typed or raw, goes through do_request(); the typed calls then
 * map the HTTP status and hand the body to parse.c.  Response bodies are
 * capped, kept in a buffer that is wiped after every call (it may hold
 * base64 key text), and never logged.
 *
 * Per call the client allocates nothing of its own: the path buffer, the
 * response buffer and the percent-encoded SAE ID live in the client, and the
 * transport keeps its request and answer buffers.
 */
#include "sae/qkd014_internal.h"
#include "sae/version.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <sodium.h>

#include "common/pct.h"
#include "common/secret.h"
#include "common/uuid.h"
#include "common/x509cn.h"
#include "common/httpsc.h"

#define DEFAULT_CONNECT_TIMEOUT_MS 5000L
#define DEFAULT_TIMEOUT_MS 10000L
#define KME_ID_MAX 256
#define RESP_INITIAL 16384u       /* first size of the response buffer */
#define RESP_KEEP (1024u * 1024u) /* larger buffers are freed after a call */

/* Response buffer, kept by the client across calls (so a call costs no
 * allocation); grown by copy-and-wipe, never realloc, and wiped (the bytes
 * in use) after every call. */
typedef struct resp_buf {
    char *data;
    size_t len, cap;
    bool too_big;
} resp_buf;

struct qkd014_client {
    httpsc *tr;            /* NULL: the credentials did not load (tr_err) */
    char *tr_err;
    char *url;             /* path and query of the next request */
    size_t url_cap;
    char *sae_raw, *sae_enc; /* last SAE ID put in a path, and its encoding */
    char *expected_kme_id; /* NULL: no KME ID check */
    char peer_kme_id[KME_ID_MAX];
    bool have_peer;
    /* Leaf certificate of the last check and its CN: on a kept-alive
     * connection every request shows the same one, and parsing it again
     * would cost more than the request itself. */
    unsigned char *leaf_der;
    size_t leaf_len;
    char leaf_cn[KME_ID_MAX];
    int leaf_rc;
    long http_status;
    httpsc_response hresp; /* status and Content-Type of the last answer */
    resp_buf resp;
    char errmsg[QKD014_ERRMSG_LEN];
};

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static qkd014_code set_err(qkd014_client *c, qkd014_code code,
                           const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->errmsg, sizeof c->errmsg, fmt, ap);
    va_end(ap);
    return code;
}

/* ------------------------------------------------------------- global */

QKD014_API qkd014_code qkd014_global_init(void)
{
    if (sodium_init() < 0)
        return QKD014_E_NOMEM;
    if (gnutls_global_init() < 0) /* reference-counted by GnuTLS */
        return QKD014_E_NOMEM;
    return QKD014_OK;
}

QKD014_API void qkd014_global_cleanup(void)
{
    gnutls_global_deinit();
}

QKD014_API const char *qkd014_strerror(qkd014_code code)
{
    switch (code) {
    case QKD014_OK: return "success";
    case QKD014_E_USAGE: return "invalid argument";
    case QKD014_E_NOMEM: return "out of memory";
    case QKD014_E_TRANSPORT: return "cannot reach KME";
    case QKD014_E_TLS: return "TLS failure";
    case QKD014_E_UNAUTHORIZED: return "unauthorized";
    case QKD014_E_BAD_REQUEST: return "bad request";
    case QKD014_E_UNAVAILABLE: return "KME unavailable";
    case QKD014_E_MALFORMED: return "malformed answer from KME";
    case QKD014_E_HTTP: return "unexpected HTTP status";
    case QKD014_E_VERSION: return "unsupported options version";
    }
    return "unknown error";
}

QKD014_API const char *qkd014_errmsg(const qkd014_client *c)
{
    return c == NULL ? "no client" : c->errmsg;
}

QKD014_API long qkd014_last_http_status(const qkd014_client *c)
{
    return c == NULL ? 0 : c->http_status;
}

long qkd014_last_connects(const qkd014_client *c)
{
    if (c == NULL || c->tr == NULL)
        return -1;
    return httpsc_last_connects(c->tr);
}

QKD014_API const char *qkd014_peer_kme_id(const qkd014_client *c)
{
    return (c != NULL && c->have_peer) ? c->peer_kme_id : NULL;
}

/* ------------------------------------------------------ response buffer */

/* Bytes of r that may hold answer data (the text and its NUL). */
static size_t resp_used(const resp_buf *r)
{
    return r->len + 1 < r->cap ? r->len + 1 : r->cap;
}

/* Wipe the answer; keep the buffer unless it grew beyond RESP_KEEP. */
static void resp_clear(resp_buf *r)
{
    if (r->data != NULL) {
        secret_wipe(r->data, resp_used(r));
        if (r->cap > RESP_KEEP) {
            free(r->data);
            r->data = NULL;
            r->cap = 0;
        }
    }
    r->len = 0;
    r->too_big = false;
}

static void resp_release(resp_buf *r)
{
    resp_clear(r);
    free(r->data);
    *r = (resp_buf){0};
}

static bool resp_grow(resp_buf *r, size_t need)
{
    size_t cap = r->cap ? r->cap : RESP_INITIAL;
    while (cap < need)
        cap *= 2;
    char *d = malloc(cap);
    if (d == NULL)
        return false;
    if (r->len > 0)
        memcpy(d, r->data, r->len);
    if (r->data != NULL)
        secret_wipe(r->data, resp_used(r));
    free(r->data);
    r->data = d;
    r->cap = cap;
    return true;
}

/* Body sink of the transport (which enforces QKD014_MAX_RESPONSE too). */
static int on_body(void *ud, const char *data, size_t n)
{
    resp_buf *r = ud;
    if (n > QKD014_MAX_RESPONSE - r->len) {
        r->too_big = true;
        return -1;
    }
    if (r->len + n + 1 > r->cap && !resp_grow(r, r->len + n + 1))
        return -1;
    memcpy(r->data + r->len, data, n);
    r->len += n;
    r->data[r->len] = '\0';
    return 0;
}

/* ------------------------------------------------------- KME ID check */

/* Subject CN of the peer's leaf certificate, parsed once per certificate. */
static int peer_cn(qkd014_client *c, gnutls_session_t s, char *out, size_t outlen)
{
    unsigned int n = 0;
    const gnutls_datum_t *chain = gnutls_certificate_get_peers(s, &n);
    if (chain == NULL || n == 0)
        return -1;
    if (c->leaf_der == NULL || c->leaf_len != chain[0].size ||
        memcmp(c->leaf_der, chain[0].data, chain[0].size) != 0) {
        free(c->leaf_der);
        c->leaf_der = malloc(chain[0].size ? chain[0].size : 1);
        if (c->leaf_der == NULL)
            return -1;
        memcpy(c->leaf_der, chain[0].data, chain[0].size);
        c->leaf_len = chain[0].size;
        c->leaf_rc = x509_der_cn(chain[0].data, chain[0].size, c->leaf_cn, sizeof c->leaf_cn);
    }
    if (c->leaf_rc != 0)
        return -1;
    snprintf(out, outlen, "%s", c->leaf_cn);
    return 0;
}

/* Peer check of the transport, after every handshake and before the
 * request: note the KME ID and refuse a KME other than the expected one. */
static int check_peer(void *ud, gnutls_session_t tls, char *err, size_t errlen)
{
    qkd014_client *c = ud;
    char cn[KME_ID_MAX];
    c->have_peer = false;
    if (peer_cn(c, tls, cn, sizeof cn) != 0) {
        if (c->expected_kme_id == NULL)
            return 0;
        snprintf(err, errlen, "KME certificate has no single subject CN, "
                              "expected %s", c->expected_kme_id);
        return -1;
    }
    qkd014_sanitize(cn, strlen(cn), c->peer_kme_id, sizeof c->peer_kme_id);
    c->have_peer = true;
    if (c->expected_kme_id != NULL && strcmp(cn, c->expected_kme_id) != 0) {
        snprintf(err, errlen, "KME certificate names %s, expected %s",
                 c->peer_kme_id, c->expected_kme_id);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------- client */

/* The checks of qkd014_options_check(), on options in the current layout. */
static qkd014_code check_options(const qkd014_options *o, char *err, size_t errlen)
{
    const char *files[] = { o->cert_file, o->key_file, o->ca_file };
    const char *names[] = { "client certificate", "private key", "CA" };
    if (o->kme_url == NULL || strncasecmp(o->kme_url, "https://", 8) != 0 ||
        o->kme_url[8] == '\0' || strpbrk(o->kme_url, "?# \t\r\n") != NULL) {
        snprintf(err, errlen, "KME URL must be https://host[:port]");
        return QKD014_E_USAGE;
    }
    if (!httpsc_url_valid(o->kme_url)) {
        snprintf(err, errlen, "KME URL must be https://host[:port][/prefix] "
                              "(port 1-65535, no user info)");
        return QKD014_E_USAGE;
    }
    for (size_t i = 0; i < 3; i++) {
        if (files[i] == NULL || files[i][0] == '\0') {
            snprintf(err, errlen, "no %s file given", names[i]);
            return QKD014_E_USAGE;
        }
        if (access(files[i], R_OK) != 0) {
            snprintf(err, errlen, "cannot read %s file %s: %s", names[i],
                     files[i], strerror(errno));
            return QKD014_E_USAGE;
        }
    }
    if (o->expected_kme_id != NULL && o->expected_kme_id[0] == '\0') {
        snprintf(err, errlen, "expected KME ID is empty");
        return QKD014_E_USAGE;
    }
    if (o->connect_timeout_ms < 0 || o->timeout_ms < 0) {
        snprintf(err, errlen, "negative timeout");
        return QKD014_E_USAGE;
    }
    return QKD014_OK;
}

QKD014_API qkd014_code qkd014_options_check(const qkd014_options *opt,
                                            char *err, size_t errlen)
{
    qkd014_options o;
    if (opt == NULL) {
        snprintf(err, errlen, "no options");
        return QKD014_E_USAGE;
    }
    qkd014_code rc = qkd014_options_read(opt, &o, err, errlen);
    return rc != QKD014_OK ? rc : check_options(&o, err, errlen);
}

/* The transport: URL, credentials (parsed here, once), timeouts.  A
 * credential file that does not load is reported by every call (as
 * QKD014_E_TLS), as when libcurl loaded them per connection; false only
 * when out of memory. */
static bool setup_transport(qkd014_client *c, const qkd014_options *o)
{
    char err[QKD014_ERRMSG_LEN];
    long ct = o->connect_timeout_ms ? o->connect_timeout_ms
                                    : DEFAULT_CONNECT_TIMEOUT_MS;
    long to = o->timeout_ms ? o->timeout_ms : DEFAULT_TIMEOUT_MS;
    httpsc_config cfg = { .url = o->kme_url, .ca_file = o->ca_file,
                          .cert_file = o->cert_file, .key_file = o->key_file,
                          .connect_timeout_ms = ct < to ? ct : to,
                          .timeout_ms = to, .max_body = QKD014_MAX_RESPONSE };
    c->tr = httpsc_new(&cfg, err, sizeof err);
    if (c->tr != NULL) {
        httpsc_set_peer_check(c->tr, check_peer, c);
        return true;
    }
    c->tr_err = strdup(err);
    return c->tr_err != NULL;
}

QKD014_API qkd014_code qkd014_client_new(const qkd014_options *caller_opt,
                                         qkd014_client **out)
{
    char err[QKD014_ERRMSG_LEN];
    qkd014_options o, *opt = &o; /* in this library's layout */
    if (out == NULL || caller_opt == NULL)
        return QKD014_E_USAGE;
    *out = NULL;
    qkd014_code rc = qkd014_options_read(caller_opt, &o, err, sizeof err);
    if (rc == QKD014_OK)
        rc = check_options(&o, err, sizeof err);
    if (rc != QKD014_OK)
        return rc;
    qkd014_client *c = calloc(1, sizeof *c);
    if (c == NULL)
        return QKD014_E_NOMEM;
    c->expected_kme_id = opt->expected_kme_id ? strdup(opt->expected_kme_id)
                                              : NULL;
    c->url_cap = 256;
    c->url = malloc(c->url_cap);
    if (c->url == NULL || (opt->expected_kme_id && c->expected_kme_id == NULL) ||
        !setup_transport(c, opt)) {
        qkd014_client_free(c);
        return QKD014_E_NOMEM;
    }
    snprintf(c->errmsg, sizeof c->errmsg, "no error");
    *out = c;
    return QKD014_OK;
}

QKD014_API void qkd014_client_free(qkd014_client *c)
{
    if (c == NULL)
        return;
    httpsc_free(c->tr);
    free(c->tr_err);
    resp_release(&c->resp);
    free(c->url);
    free(c->sae_raw);
    free(c->sae_enc);
    free(c->expected_kme_id);
    free(c->leaf_der);
    free(c);
}

/* ------------------------------------------------------------ request */

static qkd014_code map_transport_error(qkd014_client *c, httpsc_code e)
{
    switch (e) {
    case HTTPSC_OK: return QKD014_OK;
    case HTTPSC_E_NOMEM: return QKD014_E_NOMEM;
    case HTTPSC_E_TLS: case HTTPSC_E_PEER: return QKD014_E_TLS;
    case HTTPSC_E_MALFORMED: case HTTPSC_E_TOO_BIG: return QKD014_E_MALFORMED;
    case HTTPSC_E_USAGE: return QKD014_E_USAGE;
    case HTTPSC_E_SINK:
        if (c->resp.too_big)
            return set_err(c, QKD014_E_MALFORMED, "answer exceeds %u bytes",
                           QKD014_MAX_RESPONSE);
        return set_err(c, QKD014_E_NOMEM, "out of memory");
    case HTTPSC_E_TRANSPORT: break;
    }
    return QKD014_E_TRANSPORT;
}

/* The one code path of every request, for the path in c->url.  On
 * QKD014_OK, c->http_status, c->hresp and c->resp hold the answer (the
 * caller clears c->resp).  The transport writes its messages (which never
 * quote the answer) straight into c->errmsg. */
static qkd014_code do_request(qkd014_client *c, const char *method,
                              const char *content_type, const char *body,
                              size_t body_len)
{
    c->http_status = 0;
    resp_clear(&c->resp);
    if (c->tr == NULL)
        return set_err(c, QKD014_E_TLS, "%s", c->tr_err);
    httpsc_request rq = { .method = method, .target = c->url,
                          .content_type = content_type, .body = body,
                          .body_len = body_len };
    httpsc_code e = httpsc_request_send(c->tr, &rq, on_body, &c->resp, &c->hresp,
                                        c->errmsg, sizeof c->errmsg);
    qkd014_code rc = map_transport_error(c, e);
    if (rc == QKD014_OK)
        c->http_status = c->hresp.status;
    else
        resp_clear(&c->resp);
    return rc;
}

/* Put the n parts into c->url (the path); false when out of memory. */
static bool url_build(qkd014_client *c, const char *const *parts,
                      const size_t *lens, size_t n)
{
    size_t total = 1;
    for (size_t i = 0; i < n; i++) {
        if (lens[i] > SIZE_MAX / 2 - total)
            return false;
        total += lens[i];
    }
    if (total > c->url_cap) {
        char *u = realloc(c->url, total);
        if (u == NULL)
            return false;
        c->url = u;
        c->url_cap = total;
    }
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(c->url + off, parts[i], lens[i]);
        off += lens[i];
    }
    c->url[off] = '\0';
    return true;
}

static qkd014_code set_ok(qkd014_client *c)
{
    memcpy(c->errmsg, "ok", 3);
    return QKD014_OK;
}

qkd014_code qkd014_raw_request(qkd014_client *c, const char *method,
                               const char *path_and_query,
                               const char *content_type, const char *body,
                               size_t body_len, long *http_status,
                               char **resp_body, size_t *resp_len,
                               char **resp_content_type)
{
    if (c == NULL || http_status == NULL || resp_body == NULL || resp_len == NULL)
        return QKD014_E_USAGE;
    *resp_body = NULL;
    *resp_len = 0;
    if (resp_content_type != NULL)
        *resp_content_type = NULL;
    c->http_status = 0;
    if (method == NULL || path_and_query == NULL || path_and_query[0] != '/' ||
        method[0] == '\0')
        return set_err(c, QKD014_E_USAGE, "bad method or path");
    size_t pl = strlen(path_and_query);
    if (!url_build(c, &path_and_query, &pl, 1))
        return set_err(c, QKD014_E_NOMEM, "out of memory");
    qkd014_code rc = do_request(c, method, content_type, body, body_len);
    if (rc != QKD014_OK)
        return rc;
    *http_status = c->http_status;
    const char *ct = c->hresp.has_content_type ? c->hresp.content_type : NULL;
    char *copy = malloc(c->resp.len + 1);
    char *ctcopy = (ct && resp_content_type) ? strdup(ct) : NULL;
    if (copy == NULL || (ct && resp_content_type && ctcopy == NULL)) {
        free(copy);
        free(ctcopy);
        resp_clear(&c->resp);
        return set_err(c, QKD014_E_NOMEM, "out of memory");
    }
    if (c->resp.len > 0)
        memcpy(copy, c->resp.data, c->resp.len);
    copy[c->resp.len] = '\0';
    *resp_body = copy;
    *resp_len = c->resp.len;
    if (resp_content_type != NULL)
        *resp_content_type = ctcopy;
    resp_clear(&c->resp);
    return set_err(c, QKD014_OK, "HTTP %ld", c->http_status);
}

/* ---------------------------------------------------- typed requests */

/* Map a non-200 answer to a code and message. */
static qkd014_code map_http_error(qkd014_client *c)
{
    char msg[QKD014_ERRMSG_LEN - 64];
    long st = c->http_status;
    bool has = c->resp.data != NULL &&
               qkd014_parse_error_message(c->resp.data, c->resp.len, msg,
                                          sizeof msg);
    if (!has)
        snprintf(msg, sizeof msg, "(no message)");
    switch (st) {
    case 400: return set_err(c, QKD014_E_BAD_REQUEST, "%s", msg);
    case 401: return set_err(c, QKD014_E_UNAUTHORIZED, "%s",
                             has ? msg : "KME answered 401 Unauthorized");
    case 503: return set_err(c, QKD014_E_UNAVAILABLE, "%s", msg);
    default: return set_err(c, QKD014_E_HTTP, "KME answered HTTP %ld: %s",
                            st, msg);
    }
}

/* Send a request to the URL in c->url and accept only 200 with a JSON body;
 * on QKD014_OK the body is in c->resp (the caller clears it). */
static qkd014_code exchange(qkd014_client *c, const char *method,
                            const char *body)
{
    qkd014_code rc = do_request(c, method, body ? "application/json" : NULL,
                                body, body ? strlen(body) : 0);
    if (rc != QKD014_OK)
        return rc;
    if (c->http_status != 200)
        rc = map_http_error(c);
    else {
        const char *ct = c->hresp.has_content_type ? c->hresp.content_type : NULL;
        if (!qkd014_is_json_content_type(ct)) {
            char shown[80];
            qkd014_sanitize(ct ? ct : "none", 80, shown, sizeof shown);
            rc = set_err(c, QKD014_E_MALFORMED,
                         "answer has Content-Type %s, not application/json",
                         shown);
        } else if (c->resp.len == 0)
            rc = set_err(c, QKD014_E_MALFORMED, "answer has an empty body");
    }
    if (rc != QKD014_OK)
        resp_clear(&c->resp);
    return rc;
}

/* Percent-encoded form of an SAE ID; the last one is cached, since a client
 * mostly talks about one peer.  NULL when out of memory. */
static const char *encoded_sae(qkd014_client *c, const char *sae)
{
    if (c->sae_raw != NULL && strcmp(c->sae_raw, sae) == 0)
        return c->sae_enc;
    char *raw = strdup(sae), *enc = pct_encode(sae);
    if (raw == NULL || enc == NULL) {
        free(raw);
        free(enc);
        return NULL;
    }
    free(c->sae_raw);
    free(c->sae_enc);
    c->sae_raw = raw;
    c->sae_enc = enc;
    return enc;
}

/* c->url = base + "/api/v1/keys/<pct(sae)>/<what><query>". */
static qkd014_code keys_url(qkd014_client *c, const char *sae, const char *what,
                            const char *query)
{
    static const char prefix[] = "/api/v1/keys/";
    const char *enc = encoded_sae(c, sae);
    if (enc == NULL)
        return set_err(c, QKD014_E_NOMEM, "out of memory");
    const char *parts[] = { prefix, enc, "/", what, query };
    size_t lens[] = { sizeof prefix - 1, strlen(enc), 1, strlen(what),
                      strlen(query) };
    if (!url_build(c, parts, lens, 5))
        return set_err(c, QKD014_E_NOMEM, "out of memory");
    return QKD014_OK;
}

static qkd014_code check_sae_id(qkd014_client *c, const char *id,
                                const char *what)
{
    if (c == NULL)
        return QKD014_E_USAGE;
    c->http_status = 0;
    if (id == NULL || id[0] == '\0')
        return set_err(c, QKD014_E_USAGE, "%s SAE ID is empty", what);
    return QKD014_OK;
}

QKD014_API qkd014_code qkd014_get_status(qkd014_client *c,
                                         const char *slave_sae_id,
                                         qkd014_status **out)
{
    qkd014_code rc = check_sae_id(c, slave_sae_id, "slave");
    if (rc != QKD014_OK || out == NULL)
        return rc ? rc : set_err(c, QKD014_E_USAGE, "no output pointer");
    *out = NULL;
    if ((rc = keys_url(c, slave_sae_id, "status", "")) != QKD014_OK)
        return rc;
    rc = exchange(c, "GET", NULL);
    if (rc == QKD014_OK)
        rc = qkd014_parse_status(c->resp.data, c->resp.len, slave_sae_id, out,
                                 c->errmsg, sizeof c->errmsg);
    resp_clear(&c->resp);
    return rc == QKD014_OK ? set_ok(c) : rc;
}

/* Send the request for c->url and parse a Key container against exp. */
static qkd014_code fetch_keys(qkd014_client *c, const char *method,
                              const char *body, const qkd014_keys_expect *exp,
                              qkd014_keys **out)
{
    qkd014_code rc = exchange(c, method, body);
    if (rc == QKD014_OK)
        rc = qkd014_parse_keys(c->resp.data, c->resp.len, exp, out, c->errmsg,
                               sizeof c->errmsg);
    resp_clear(&c->resp);
    return rc == QKD014_OK ? set_ok(c) : rc;
}

/* Append "<name><decimal v>" at *p (no NUL). */
static void put_param(char **p, const char *name, int32_t v)
{
    char digits[12];
    size_t n = 0, len = strlen(name);
    memcpy(*p, name, len);
    *p += len;
    uint32_t u = (uint32_t)v;
    do {
        digits[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    while (n > 0)
        *(*p)++ = digits[--n];
}

/* Query of the simple GET form of enc_keys ("" when all defaults); q holds
 * at least 48 bytes. */
static void enc_query(const qkd014_key_request *req, char *q)
{
    char *p = q;
    if (req != NULL && req->number > 0)
        put_param(&p, "?number=", req->number);
    if (req != NULL && req->size > 0)
        put_param(&p, p == q ? "?size=" : "&size=", req->size);
    *p = '\0';
}

QKD014_API qkd014_code qkd014_get_key(qkd014_client *c, const char *slave_sae_id,
                                      const qkd014_key_request *caller_req,
                                      qkd014_keys **out)
{
    qkd014_code rc = check_sae_id(c, slave_sae_id, "slave");
    if (rc != QKD014_OK || out == NULL)
        return rc ? rc : set_err(c, QKD014_E_USAGE, "no output pointer");
    *out = NULL;
    qkd014_key_request r, *req = NULL; /* in this library's layout */
    if (caller_req != NULL) {
        rc = qkd014_key_request_read(caller_req, &r, c->errmsg, sizeof c->errmsg);
        if (rc != QKD014_OK)
            return rc;
        req = &r;
    }
    bool post = qkd014_key_request_needs_post(req);
    char *body = NULL, query[64];
    rc = qkd014_build_key_request(req, post, &body, c->errmsg, sizeof c->errmsg);
    if (rc != QKD014_OK)
        return rc;
    enc_query(post ? NULL : req, query);
    qkd014_keys_expect exp = {
        .number = (req && req->number > 0) ? (size_t)req->number : 1,
        .size_bits = req ? req->size : 0,
    };
    rc = keys_url(c, slave_sae_id, "enc_keys", query);
    if (rc == QKD014_OK)
        rc = fetch_keys(c, post ? "POST" : "GET", body, &exp, out);
    free(body);
    return rc;
}

/* Validate key IDs: UUIDs, distinct; canonical forms go into ids. */
static qkd014_code check_key_ids(qkd014_client *c, const char *const *key_ids,
                                 size_t n, char (*ids)[QKD014_KEY_ID_LEN + 1])
{
    uint8_t raw[16];
    for (size_t i = 0; i < n; i++) {
        const char *s = key_ids[i];
        if (s == NULL || strlen(s) != UUID_STR_LEN ||
            uuid_parse(s, UUID_STR_LEN, raw) != 0)
            return set_err(c, QKD014_E_USAGE, "key ID %zu is not a UUID", i + 1);
        uuid_format(raw, ids[i]);
        for (size_t j = 0; j < i; j++)
            if (strcmp(ids[i], ids[j]) == 0)
                return set_err(c, QKD014_E_USAGE, "key ID %s is given twice",
                               ids[i]);
    }
    return QKD014_OK;
}

static qkd014_code dec_request(qkd014_client *c, const char *master,
                               const char *const *key_ids, size_t n,
                               char (*ids)[QKD014_KEY_ID_LEN + 1],
                               qkd014_keys **out)
{
    static const char name[] = "?key_ID=";
    char *body = NULL, query[sizeof name + UUID_STR_LEN] = "";
    qkd014_code rc = QKD014_OK;
    if (n == 1) {
        memcpy(query, name, sizeof name - 1);
        memcpy(query + sizeof name - 1, key_ids[0], UUID_STR_LEN + 1);
    } else
        rc = qkd014_build_key_ids(key_ids, n, &body, c->errmsg,
                                  sizeof c->errmsg);
    if (rc == QKD014_OK)
        rc = keys_url(c, master, "dec_keys", query);
    qkd014_keys_expect exp = { .ids = (const char (*)[QKD014_KEY_ID_LEN + 1])ids,
                               .n_ids = n };
    if (rc == QKD014_OK)
        rc = fetch_keys(c, n == 1 ? "GET" : "POST", body, &exp, out);
    free(body);
    return rc;
}

QKD014_API qkd014_code qkd014_get_key_with_ids(qkd014_client *c,
                                               const char *master_sae_id,
                                               const char *const *key_ids,
                                               size_t n, qkd014_keys **out)
{
    qkd014_code rc = check_sae_id(c, master_sae_id, "master");
    if (rc != QKD014_OK || out == NULL)
        return rc ? rc : set_err(c, QKD014_E_USAGE, "no output pointer");
    *out = NULL;
    if (key_ids == NULL || n == 0)
        return set_err(c, QKD014_E_USAGE, "no key IDs given");
    if (n > SIZE_MAX / (QKD014_KEY_ID_LEN + 1))
        return set_err(c, QKD014_E_USAGE, "too many key IDs");
    char one[1][QKD014_KEY_ID_LEN + 1];
    char (*ids)[QKD014_KEY_ID_LEN + 1] = n == 1 ? one : malloc(n * sizeof *ids);
    if (ids == NULL)
        return set_err(c, QKD014_E_NOMEM, "out of memory");
    rc = check_key_ids(c, key_ids, n, ids);
    if (rc == QKD014_OK)
        rc = dec_request(c, master_sae_id, key_ids, n, ids, out);
    if (ids != one)
        free(ids);
    return rc;
}
