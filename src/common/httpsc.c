/* SPDX-License-Identifier: Apache-2.0 */
/*
 * httpsc.c - HTTP/1.1 over GnuTLS with one kept-alive connection (see
 * httpsc.h): the HTTPS client of libqkd014 and of the KME's peer channel.
 *
 * Why not libcurl: on a kept-alive connection a small request cost ~120 µs
 * of client CPU through libcurl (its per-transfer state machine and
 * allocations, and GnuTLS reading every TLS record as a 5-byte header and a
 * body: 4 polls and 4 recvs per answer), and each new connection re-parsed
 * the PEM credentials.  Here the credentials and the TLS priorities are
 * loaded once per object, TLS records are read from our own ciphertext
 * buffer (one recv normally brings the whole answer), the request goes out
 * in one record, and nothing is allocated per request.
 *
 * Layers, bottom up: socket and poll with the request's deadline; the
 * GnuTLS pull/push functions over the ciphertext buffer (send with
 * MSG_NOSIGNAL: a library must not touch the process's SIGPIPE handling);
 * connect and handshake; a plaintext buffer from which the answer's head,
 * chunk lines and body are taken (their syntax is read by the pure
 * http_answer.c); the request with its one retry.
 *
 * The plaintext buffer may hold secret answer bytes (base64 key text): it is
 * wiped after every request, and body bytes are handed to the caller's sink
 * without further copies.  Error messages never quote answer bytes.
 */
#include "common/httpsc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/http_answer.h"
#include "common/monotime.h"
#include "common/resolve.h"
#include "common/secret.h"
#include "common/tls_policy.h"

#define CBUF_SIZE (32u * 1024u) /* ciphertext read buffer: > one full record */
#define IN_SIZE (32u * 1024u)   /* plaintext buffer: head, chunk lines, body */
#define HEAD_MAX HTTP_ANSWER_HEAD_MAX
#define LINE_MAX_CHUNK HTTP_ANSWER_CHUNK_LINE_MAX
#define MAX_INTERIM 16          /* 1xx answers skipped before the final one */

struct httpsc {
    char *host;      /* for DNS and verification: no brackets */
    char *authority; /* Host header: host[:port] as in the URL */
    char *base;      /* base path without trailing '/', may be "" */
    char port[8];
    bool host_is_ip;
    gnutls_certificate_credentials_t cred;
    gnutls_priority_t prio;
    long connect_ms, timeout_ms;
    size_t max_body;
    httpsc_peer_check check;
    void *check_ud;
    /* the connection */
    int fd;
    gnutls_session_t tls;
    int connects;      /* opened during the current request */
    int64_t deadline;  /* ms (monotonic) bounding the current wait */
    bool lost;         /* the connection broke (EOF, reset) */
    bool got_bytes;    /* some answer byte arrived on this attempt */
    bool sending;      /* the request is going out (see push) */
    bool peer_gone;    /* the server reset while the request went out */
    unsigned char cbuf[CBUF_SIZE];
    size_t cpos, clen;
    char in[IN_SIZE];
    size_t ipos, ilen, ihwm; /* consumed, filled, most ever filled */
    char *req;
    size_t req_cap;
    char *err;
    size_t errlen;
};

/* How the answer's body is delimited, from its head. */
typedef http_answer_head framing;

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static httpsc_code fail(httpsc *h, httpsc_code code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(h->err, h->errlen, fmt, ap);
    va_end(ap);
    return code;
}

/* Wait for events on the socket until h->deadline: 1 ready, 0 timed out. */
static int wait_fd(httpsc *h, short events)
{
    struct pollfd p = { h->fd, events, 0 };
    for (;;) {
        int64_t left = h->deadline - mono_ms();
        if (left <= 0)
            return 0;
        int r = poll(&p, 1, left > INT32_MAX ? INT32_MAX : (int)left);
        if (r > 0)
            return 1;
        if (r < 0 && errno != EINTR)
            return 1; /* let the next I/O call report the error */
    }
}

/* ------------------------------------------------- GnuTLS transport */

/* Hand GnuTLS ciphertext from our buffer, refilled with one recv of up to
 * CBUF_SIZE: GnuTLS asks for a record header and then its body, and a
 * whole answer usually arrives in one read. */
static ssize_t pull(gnutls_transport_ptr_t p, void *data, size_t len)
{
    httpsc *h = p;
    if (h->cpos == h->clen) {
        ssize_t r;
        do
            r = recv(h->fd, h->cbuf, sizeof h->cbuf, 0);
        while (r < 0 && errno == EINTR);
        if (r <= 0) {
            if (r < 0)
                gnutls_transport_set_errno(h->tls, errno);
            return r;
        }
        h->cpos = 0;
        h->clen = (size_t)r;
    }
    size_t n = h->clen - h->cpos < len ? h->clen - h->cpos : len;
    memcpy(data, h->cbuf + h->cpos, n);
    h->cpos += n;
    return (ssize_t)n;
}

static int pull_timeout(gnutls_transport_ptr_t p, unsigned int ms)
{
    httpsc *h = p;
    if (h->cpos < h->clen)
        return 1;
    struct pollfd pfd = { h->fd, POLLIN, 0 };
    int64_t left = h->deadline - mono_ms();
    if (left < 0)
        left = 0;
    if (ms != GNUTLS_INDEFINITE_TIMEOUT && (int64_t)ms < left)
        left = ms;
    int r;
    do
        r = poll(&pfd, 1, (int)left);
    while (r < 0 && errno == EINTR);
    return r;
}

/* A server may answer before it has read the whole request (a 413 for a
 * body past its limit, a 401) and close, and its close resets the
 * connection under the rest of the request.  Its answer is still in the
 * socket's receive queue, so the rest of the request is dropped here as if
 * sent and the answer is read as usual; with no answer there, the read
 * reports the lost connection. */
static ssize_t push(gnutls_transport_ptr_t p, const void *data, size_t len)
{
    httpsc *h = p;
    ssize_t r;
    if (h->peer_gone)
        return (ssize_t)len;
    do
        r = send(h->fd, data, len, MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    if (r < 0 && h->sending && (errno == EPIPE || errno == ECONNRESET)) {
        h->peer_gone = true;
        return (ssize_t)len;
    }
    if (r < 0)
        gnutls_transport_set_errno(h->tls, errno);
    return r;
}

/* True when GnuTLS may make progress without waiting for the socket. */
static bool tls_pending(httpsc *h)
{
    return h->cpos < h->clen || gnutls_record_check_pending(h->tls) > 0;
}

/* Wait for the direction GnuTLS asked for; false on timeout. */
static bool tls_wait(httpsc *h)
{
    if (gnutls_record_get_direction(h->tls) == 0 && tls_pending(h))
        return true;
    return wait_fd(h, gnutls_record_get_direction(h->tls) ? POLLOUT : POLLIN) == 1;
}

/* ------------------------------------------------------- connection */

static void conn_close(httpsc *h)
{
    if (h->tls != NULL)
        gnutls_deinit(h->tls);
    if (h->fd >= 0)
        close(h->fd);
    h->tls = NULL;
    h->fd = -1;
    h->cpos = h->clen = 0;
    h->ipos = h->ilen = 0;
    h->peer_gone = false;
}

/* Non-blocking connect to one address until its deadline; 0 or an errno. */
static int connect_one(httpsc *h, const struct addrinfo *ai)
{
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return errno;
    h->fd = fd;
    int e = 0;
    socklen_t el = sizeof e;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        if (errno != EINPROGRESS)
            e = errno;
        else if (wait_fd(h, POLLOUT) == 0)
            e = ETIMEDOUT;
        else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) != 0)
            e = errno;
    }
    if (e != 0) {
        close(fd);
        h->fd = -1;
        return e;
    }
    int one = 1; /* the request is one write: do not let Nagle hold it */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    return 0;
}

/* Resolve (bounded by cdl too) and try each address in turn, each with an
 * equal share of the time left until cdl. */
static httpsc_code tcp_connect(httpsc *h, int64_t cdl)
{
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_NUMERICSERV |
                                          (h->host_is_ip ? AI_NUMERICHOST : 0) };
    struct addrinfo *res = NULL;
    bool timed_out;
    int64_t left = cdl - mono_ms();
    int g = resolve_within(h->host, h->port, &hints, left > 0 ? (long)left : 0, &res, &timed_out);
    if (timed_out)
        return fail(h, HTTPSC_E_TRANSPORT, "resolving %s timed out", h->host);
    if (g != 0)
        return fail(h, HTTPSC_E_TRANSPORT, "cannot resolve %s: %s", h->host,
                    gai_strerror(g));
    size_t n = 0;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next)
        n++;
    int e = ENOENT;
    for (struct addrinfo *ai = res; ai != NULL && e != 0; ai = ai->ai_next, n--) {
        int64_t now = mono_ms();
        if (now >= cdl) {
            e = ETIMEDOUT;
            break;
        }
        h->deadline = now + (cdl - now) / (int64_t)n;
        e = connect_one(h, ai);
    }
    freeaddrinfo(res);
    h->deadline = cdl;
    if (e == ETIMEDOUT)
        return fail(h, HTTPSC_E_TRANSPORT, "connection to %s port %s timed out",
                    h->host, h->port);
    if (e != 0)
        return fail(h, HTTPSC_E_TRANSPORT, "cannot connect to %s port %s: %s",
                    h->host, h->port, strerror(e));
    return HTTPSC_OK;
}

static httpsc_code tls_setup(httpsc *h)
{
    int r = gnutls_init(&h->tls, GNUTLS_CLIENT);
    if (r < 0) {
        h->tls = NULL;
        return fail(h, HTTPSC_E_NOMEM, "TLS setup: %s", gnutls_strerror(r));
    }
    if ((r = gnutls_priority_set(h->tls, h->prio)) >= 0 &&
        (r = gnutls_credentials_set(h->tls, GNUTLS_CRD_CERTIFICATE, h->cred)) >= 0 &&
        !h->host_is_ip) /* SNI carries DNS names only (RFC 6066) */
        r = gnutls_server_name_set(h->tls, GNUTLS_NAME_DNS, h->host, strlen(h->host));
    if (r < 0)
        return fail(h, HTTPSC_E_NOMEM, "TLS setup: %s", gnutls_strerror(r));
    /* verification during the handshake: chain to our CA, and the host
     * name (or IP address) against the certificate's names */
    gnutls_session_set_verify_cert(h->tls, h->host, 0);
    gnutls_transport_set_ptr(h->tls, h);
    gnutls_transport_set_pull_function(h->tls, pull);
    gnutls_transport_set_pull_timeout_function(h->tls, pull_timeout);
    gnutls_transport_set_push_function(h->tls, push);
    gnutls_handshake_set_timeout(h->tls, 0); /* our deadline bounds it */
    return HTTPSC_OK;
}

static httpsc_code handshake_error(httpsc *h, int r)
{
    if (r == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
        gnutls_datum_t txt = { NULL, 0 };
        unsigned st = gnutls_session_get_verify_cert_status(h->tls);
        gnutls_certificate_verification_status_print(st, GNUTLS_CRT_X509, &txt, 0);
        fail(h, HTTPSC_E_TLS, "server certificate not accepted: %s",
             txt.data ? (const char *)txt.data : "verification failed");
        gnutls_free(txt.data);
        return HTTPSC_E_TLS;
    }
    if (r == GNUTLS_E_FATAL_ALERT_RECEIVED)
        return fail(h, HTTPSC_E_TLS, "TLS handshake failed: server sent alert %s",
                    gnutls_alert_get_name(gnutls_alert_get(h->tls)));
    return fail(h, HTTPSC_E_TLS, "TLS handshake failed: %s", gnutls_strerror(r));
}

static httpsc_code tls_handshake(httpsc *h)
{
    for (;;) {
        int r = gnutls_handshake(h->tls);
        if (r == 0)
            return HTTPSC_OK;
        if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) {
            if (!tls_wait(h))
                return fail(h, HTTPSC_E_TRANSPORT, "TLS handshake with %s timed out",
                            h->host);
        } else if (r == GNUTLS_E_TIMEDOUT) {
            return fail(h, HTTPSC_E_TRANSPORT, "TLS handshake with %s timed out",
                        h->host);
        } else if (gnutls_error_is_fatal(r))
            return handshake_error(h, r);
    }
}

/* TCP connect, handshake and peer check, bounded by the connect timeout
 * (and the request's deadline). */
static httpsc_code conn_open(httpsc *h, int64_t request_deadline)
{
    int64_t cdl = mono_ms() + h->connect_ms;
    if (cdl > request_deadline)
        cdl = request_deadline;
    h->connects++;
    httpsc_code rc = tcp_connect(h, cdl);
    if (rc == HTTPSC_OK)
        rc = tls_setup(h);
    if (rc == HTTPSC_OK)
        rc = tls_handshake(h);
    if (rc == HTTPSC_OK && h->check != NULL &&
        h->check(h->check_ud, h->tls, h->err, h->errlen) != 0)
        rc = HTTPSC_E_PEER;
    h->deadline = request_deadline;
    if (rc != HTTPSC_OK)
        conn_close(h);
    return rc;
}

/* ------------------------------------------------------------ sending */

static bool is_token(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++)
        if (*s <= ' ' || *s >= 127 || strchr("\"(),/:;<=>?@[\\]{}", *s))
            return false;
    return true;
}

/* No control characters (nor spaces, with no_space) that could split the
 * request head. */
static bool is_clean(const char *s, bool no_space)
{
    for (; *s; s++)
        if ((unsigned char)*s < ' ' || *s == 127 || (no_space && *s == ' '))
            return false;
    return true;
}

/* Put the whole request (head and body) into h->req; its length. */
static httpsc_code build_request(httpsc *h, const httpsc_request *rq, size_t *len)
{
    if (!is_token(rq->method) || rq->target[0] != '/' || !is_clean(rq->target, true) ||
        (rq->content_type && !is_clean(rq->content_type, false)))
        return fail(h, HTTPSC_E_USAGE, "bad method, path or Content-Type");
    size_t need = strlen(rq->method) + strlen(h->base) + strlen(rq->target) +
                  strlen(h->authority) + 128 +
                  (rq->content_type ? strlen(rq->content_type) + 16 : 0);
    if (rq->body != NULL && rq->body_len > SIZE_MAX - need)
        return fail(h, HTTPSC_E_NOMEM, "request too large");
    need += rq->body ? rq->body_len : 0;
    if (need > h->req_cap) {
        char *r = malloc(need);
        if (r == NULL)
            return fail(h, HTTPSC_E_NOMEM, "out of memory");
        free(h->req);
        h->req = r;
        h->req_cap = need;
    }
    int n = snprintf(h->req, need, "%s %s%s HTTP/1.1\r\nHost: %s\r\n"
                     "Accept: application/json\r\n", rq->method, h->base,
                     rq->target, h->authority);
    if (rq->content_type != NULL)
        n += snprintf(h->req + n, need - (size_t)n, "Content-Type: %s\r\n",
                      rq->content_type);
    if (rq->body != NULL)
        n += snprintf(h->req + n, need - (size_t)n, "Content-Length: %zu\r\n",
                      rq->body_len);
    n += snprintf(h->req + n, need - (size_t)n, "\r\n");
    if (rq->body != NULL && rq->body_len > 0)
        memcpy(h->req + n, rq->body, rq->body_len);
    *len = (size_t)n + (rq->body ? rq->body_len : 0);
    return HTTPSC_OK;
}

/* Send the request: one gnutls_record_send unless it exceeds a record. */
static httpsc_code send_request(httpsc *h, size_t len)
{
    size_t off = 0;
    h->sending = true;
    while (off < len) {
        ssize_t w = gnutls_record_send(h->tls, h->req + off, len - off);
        if (w > 0) {
            off += (size_t)w;
        } else if (w == GNUTLS_E_AGAIN || w == GNUTLS_E_INTERRUPTED) {
            if (!tls_wait(h)) {
                h->sending = false;
                return fail(h, HTTPSC_E_TRANSPORT, "sending the request timed out");
            }
        } else {
            h->sending = false;
            h->lost = true;
            return fail(h, HTTPSC_E_TRANSPORT, "connection lost while sending: %s",
                        gnutls_strerror((int)w));
        }
    }
    h->sending = false;
    return HTTPSC_OK;
}

/* ------------------------------------------------------------ reading */

static httpsc_code recv_error(httpsc *h, int r)
{
    if (r == GNUTLS_E_FATAL_ALERT_RECEIVED) /* e.g. a refused client certificate */
        return fail(h, HTTPSC_E_TLS, "server sent TLS alert %s",
                    gnutls_alert_get_name(gnutls_alert_get(h->tls)));
    h->lost = r == GNUTLS_E_PULL_ERROR || r == GNUTLS_E_PREMATURE_TERMINATION;
    return fail(h, HTTPSC_E_TRANSPORT, "connection lost: %s", gnutls_strerror(r));
}

/* Read more plaintext after h->ilen (compacting first if the buffer is
 * full); *eof when the server closed the connection. */
static httpsc_code fill(httpsc *h, bool *eof)
{
    *eof = false;
    if (h->ipos == h->ilen)
        h->ipos = h->ilen = 0;
    else if (h->ilen == sizeof h->in) {
        memmove(h->in, h->in + h->ipos, h->ilen - h->ipos);
        h->ilen -= h->ipos;
        h->ipos = 0;
    }
    for (;;) {
        ssize_t r = gnutls_record_recv(h->tls, h->in + h->ilen, sizeof h->in - h->ilen);
        if (r > 0) {
            h->ilen += (size_t)r;
            h->ihwm = h->ilen > h->ihwm ? h->ilen : h->ihwm;
            h->got_bytes = true;
            return HTTPSC_OK;
        }
        if (r == 0 || r == GNUTLS_E_PREMATURE_TERMINATION) {
            *eof = true; /* with or without close_notify */
            return HTTPSC_OK;
        }
        if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) {
            if (!tls_wait(h))
                return fail(h, HTTPSC_E_TRANSPORT, "waiting for the answer timed out");
        } else if (r == GNUTLS_E_TIMEDOUT) {
            return fail(h, HTTPSC_E_TRANSPORT, "waiting for the answer timed out");
        } else if (gnutls_error_is_fatal((int)r))
            return recv_error(h, (int)r);
        /* else a warning alert or an ignored renegotiation request */
    }
}

/* fill() where the answer must go on: EOF is an error. */
static httpsc_code fill_more(httpsc *h)
{
    bool eof;
    httpsc_code rc = fill(h, &eof);
    if (rc == HTTPSC_OK && eof) {
        h->lost = true;
        return fail(h, HTTPSC_E_TRANSPORT,
                    "connection closed before the answer was complete");
    }
    return rc;
}

/* Read until a head (lines ending in a blank line, at most HEAD_MAX bytes)
 * is in the buffer at h->ipos; its length in *len. */
static httpsc_code read_head(httpsc *h, size_t *len, const char *what)
{
    size_t scanned = 0;
    for (;;) {
        size_t avail = h->ilen - h->ipos;
        size_t e = http_answer_head_end(h->in + h->ipos, avail, scanned > 2 ? scanned - 2 : 0);
        if (e != 0) {
            *len = e;
            return *len > HEAD_MAX ? fail(h, HTTPSC_E_MALFORMED,
                                          "answer %s exceed %u bytes", what, HEAD_MAX)
                                   : HTTPSC_OK;
        }
        scanned = avail;
        if (avail > HEAD_MAX)
            return fail(h, HTTPSC_E_MALFORMED, "answer %s exceed %u bytes", what,
                        HEAD_MAX);
        httpsc_code rc = fill_more(h);
        if (rc != HTTPSC_OK)
            return rc;
    }
}

/* Parse the head at h->ipos (len bytes) into f and resp. */
static httpsc_code parse_head(httpsc *h, size_t len, framing *f,
                              httpsc_response *resp)
{
    _Static_assert(sizeof resp->content_type == sizeof f->content_type,
                   "Content-Type buffers differ");
    const char *why;
    http_answer_code rc = http_answer_parse_head(h->in + h->ipos, len, f, &why);
    resp->has_content_type = f->has_content_type;
    memcpy(resp->content_type, f->content_type, sizeof resp->content_type);
    if (rc == HTTP_ANSWER_OK) {
        resp->status = f->status;
        return HTTPSC_OK;
    }
    return fail(h, rc == HTTP_ANSWER_NOT_HTTP ? HTTPSC_E_TRANSPORT : HTTPSC_E_MALFORMED,
                "%s", why);
}

/* ---------------------------------------------------------------- body */

typedef struct body {
    httpsc_sink sink;
    void *ud;
    uint64_t total;
} body;

static httpsc_code deliver(httpsc *h, body *b, const char *p, size_t n)
{
    if (n > h->max_body - b->total)
        return fail(h, HTTPSC_E_TOO_BIG, "answer exceeds %zu bytes", h->max_body);
    b->total += n;
    if (n > 0 && b->sink(b->ud, p, n) != 0)
        return fail(h, HTTPSC_E_SINK, "the answer body was refused");
    return HTTPSC_OK;
}

/* Exactly n body bytes. */
static httpsc_code read_fixed(httpsc *h, body *b, uint64_t n)
{
    for (;;) {
        size_t avail = h->ilen - h->ipos;
        size_t take = (uint64_t)avail < n ? avail : (size_t)n;
        httpsc_code rc = deliver(h, b, h->in + h->ipos, take);
        if (rc != HTTPSC_OK)
            return rc;
        h->ipos += take;
        n -= take;
        if (n == 0)
            return HTTPSC_OK;
        if ((rc = fill_more(h)) != HTTPSC_OK)
            return rc;
    }
}

/* One line (chunk size or the CRLF after a chunk), at most LINE_MAX_CHUNK. */
static httpsc_code read_line(httpsc *h, const char **line, size_t *len)
{
    for (;;) {
        size_t avail = h->ilen - h->ipos;
        const char *s = h->in + h->ipos, *nl = memchr(s, '\n', avail);
        if (nl != NULL) {
            *line = s;
            *len = (size_t)(nl - s);
            h->ipos += *len + 1;
            if (*len > 0 && s[*len - 1] == '\r')
                (*len)--;
            return HTTPSC_OK;
        }
        if (avail > LINE_MAX_CHUNK)
            return fail(h, HTTPSC_E_MALFORMED, "answer has an overlong chunk line");
        httpsc_code rc = fill_more(h);
        if (rc != HTTPSC_OK)
            return rc;
    }
}

static httpsc_code read_chunked(httpsc *h, body *b)
{
    for (;;) {
        const char *l;
        size_t n;
        uint64_t size;
        httpsc_code rc = read_line(h, &l, &n);
        if (rc != HTTPSC_OK)
            return rc;
        if (!http_answer_chunk_size(l, n, &size))
            return fail(h, HTTPSC_E_MALFORMED, "answer has an invalid chunk size");
        if (size == 0) /* last chunk: skip the trailer section */
            break;
        if (size > h->max_body - b->total)
            return fail(h, HTTPSC_E_TOO_BIG, "answer exceeds %zu bytes", h->max_body);
        if ((rc = read_fixed(h, b, size)) != HTTPSC_OK ||
            (rc = read_line(h, &l, &n)) != HTTPSC_OK)
            return rc;
        if (n != 0)
            return fail(h, HTTPSC_E_MALFORMED, "answer chunk is longer than its size");
    }
    size_t len;
    httpsc_code rc = read_head(h, &len, "trailers");
    if (rc == HTTPSC_OK)
        h->ipos += len;
    return rc;
}

/* No length and no chunking: the body ends when the server closes. */
static httpsc_code read_to_close(httpsc *h, body *b)
{
    for (;;) {
        bool eof;
        httpsc_code rc = deliver(h, b, h->in + h->ipos, h->ilen - h->ipos);
        if (rc != HTTPSC_OK)
            return rc;
        h->ipos = h->ilen;
        if ((rc = fill(h, &eof)) != HTTPSC_OK || eof)
            return rc;
    }
}

/* The final answer's head (skipping 1xx interim answers) into f, resp. */
static httpsc_code read_final_head(httpsc *h, framing *f, httpsc_response *resp)
{
    for (int interim = 0;; interim++) {
        size_t len;
        httpsc_code rc = read_head(h, &len, "headers");
        if (rc == HTTPSC_OK)
            rc = parse_head(h, len, f, resp);
        if (rc != HTTPSC_OK)
            return rc;
        h->ipos += len;
        if (f->status >= 200)
            return HTTPSC_OK;
        if (f->status == 101 || interim >= MAX_INTERIM)
            return fail(h, HTTPSC_E_MALFORMED, "unexpected HTTP %d answer", f->status);
    }
}

/* Read the answer to a request with method `method`. */
static httpsc_code read_answer(httpsc *h, const char *method, httpsc_sink sink,
                               void *ud, httpsc_response *resp, framing *f)
{
    body b = { sink, ud, 0 };
    httpsc_code rc = read_final_head(h, f, resp);
    if (rc != HTTPSC_OK)
        return rc;
    if (strcmp(method, "HEAD") == 0 || f->status == 204 || f->status == 304)
        return HTTPSC_OK; /* no body, whatever the head says */
    if (f->chunked)
        return read_chunked(h, &b);
    if (f->has_len) {
        if (f->len > h->max_body)
            return fail(h, HTTPSC_E_TOO_BIG, "answer exceeds %zu bytes", h->max_body);
        return read_fixed(h, &b, f->len);
    }
    f->close = true;
    return read_to_close(h, &b);
}

/* One attempt on the open connection: send, read; the connection stays
 * open only when both sides want keep-alive and nothing is left over. */
static httpsc_code attempt(httpsc *h, const httpsc_request *rq, size_t len,
                           httpsc_sink sink, void *ud, httpsc_response *resp)
{
    framing f = {0};
    h->lost = h->got_bytes = h->peer_gone = false;
    h->ipos = h->ilen = 0;
    httpsc_code rc = send_request(h, len);
    if (rc == HTTPSC_OK)
        rc = read_answer(h, rq->method, sink, ud, resp, &f);
    bool keep = rc == HTTPSC_OK && !f.close && !h->peer_gone &&
                (f.minor == 1 || f.keep_alive) &&
                h->ipos == h->ilen && h->cpos == h->clen;
    if (!keep)
        conn_close(h);
    return rc;
}

httpsc_code httpsc_request_send(httpsc *h, const httpsc_request *rq,
                                httpsc_sink sink, void *sink_ud,
                                httpsc_response *resp, char *err, size_t errlen)
{
    size_t len = 0;
    int64_t deadline = mono_ms() + (rq->timeout_ms > 0 ? rq->timeout_ms : h->timeout_ms);
    h->err = err;
    h->errlen = errlen;
    err[0] = '\0';
    h->connects = 0;
    h->deadline = deadline;
    memset(resp, 0, sizeof *resp);
    httpsc_code rc = build_request(h, rq, &len);
    for (int tries = 0; rc == HTTPSC_OK; tries++) {
        bool reused = h->tls != NULL;
        if (!reused && (rc = conn_open(h, deadline)) != HTTPSC_OK)
            break;
        rc = attempt(h, rq, len, sink, sink_ud, resp);
        /* A kept connection that the server had closed while idle fails
         * before any answer byte: open a new one, once. */
        if (rc == HTTPSC_OK || !reused || tries > 0 || !h->lost || h->got_bytes)
            break;
        memset(resp, 0, sizeof *resp);
        rc = HTTPSC_OK;
    }
    secret_wipe(h->in, h->ihwm);
    h->ihwm = 0;
    return rc;
}

int httpsc_last_connects(const httpsc *h)
{
    return h->connects;
}

void httpsc_set_peer_check(httpsc *h, httpsc_peer_check fn, void *ud)
{
    h->check = fn;
    h->check_ud = ud;
}

/* ------------------------------------------------------------- object */

/* The parts of https://host[:port][/base]. */
typedef struct url_parts {
    char *host;      /* brackets removed */
    char *authority; /* host[:port] as written */
    char *base;      /* path without trailing '/' */
    char port[8];
} url_parts;

static void url_parts_free(url_parts *u)
{
    free(u->host);
    free(u->authority);
    free(u->base);
}

/* Split url into u (strings malloc'd); false if malformed or out of memory. */
static bool parse_url(const char *url, url_parts *u)
{
    *u = (url_parts){0};
    if (strncasecmp(url, "https://", 8) != 0 || strpbrk(url, "?# \t\r\n") != NULL)
        return false;
    const char *a = url + 8, *slash = strchr(a, '/');
    size_t alen = slash ? (size_t)(slash - a) : strlen(a);
    if (memchr(a, '@', alen) != NULL) /* no user info */
        return false;
    const char *hs = a, *he, *port = NULL;
    if (*a == '[') {
        const char *rb = memchr(a, ']', alen);
        if (rb == NULL || (rb + 1 < a + alen && rb[1] != ':'))
            return false;
        hs = a + 1;
        he = rb;
        port = rb + 1 < a + alen ? rb + 2 : NULL;
    } else {
        const char *c = memchr(a, ':', alen);
        he = c ? c : a + alen;
        port = c ? c + 1 : NULL;
    }
    size_t plen = port ? (size_t)(a + alen - port) : 0;
    if (he == hs || (port && (plen == 0 || plen > 5 || strspn(port, "0123456789") < plen)))
        return false;
    snprintf(u->port, sizeof u->port, "%.*s", port ? (int)plen : 3, port ? port : "443");
    long pn = strtol(u->port, NULL, 10);
    size_t blen = slash ? strlen(slash) : 0;
    while (blen > 0 && slash[blen - 1] == '/')
        blen--;
    u->host = strndup(hs, (size_t)(he - hs));
    u->authority = strndup(a, alen);
    u->base = strndup(slash ? slash : "", blen);
    return pn >= 1 && pn <= 65535 && u->host && u->authority && u->base;
}

bool httpsc_url_valid(const char *url)
{
    url_parts u = {0};
    bool ok = url != NULL && parse_url(url, &u);
    url_parts_free(&u);
    return ok;
}

static bool host_is_ip(const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

/* Credentials and priorities, loaded once for every connection. */
static bool load_tls(httpsc *h, const httpsc_config *cfg, char *err, size_t errlen)
{
    int r = gnutls_certificate_allocate_credentials(&h->cred);
    if (r < 0) {
        h->cred = NULL;
        snprintf(err, errlen, "TLS credentials: %s", gnutls_strerror(r));
        return false;
    }
    r = gnutls_certificate_set_x509_trust_file(h->cred, cfg->ca_file, GNUTLS_X509_FMT_PEM);
    if (r <= 0) {
        snprintf(err, errlen, "CA file %s: %s", cfg->ca_file,
                 r == 0 ? "no certificate" : gnutls_strerror(r));
        return false;
    }
    if (cfg->cert_file != NULL &&
        (r = gnutls_certificate_set_x509_key_file(h->cred, cfg->cert_file, cfg->key_file,
                                                  GNUTLS_X509_FMT_PEM)) < 0) {
        snprintf(err, errlen, "client certificate %s / key %s: %s", cfg->cert_file,
                 cfg->key_file, gnutls_strerror(r));
        return false;
    }
    /* the listeners' own policy: a client offers what a KME accepts */
    r = gnutls_priority_init(&h->prio, QC_TLS_PRIORITIES, NULL);
    if (r < 0) {
        h->prio = NULL;
        snprintf(err, errlen, "TLS priorities: %s", gnutls_strerror(r));
        return false;
    }
    return true;
}

httpsc *httpsc_new(const httpsc_config *cfg, char *err, size_t errlen)
{
    httpsc *h = calloc(1, sizeof *h);
    if (h == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    h->fd = -1;
    h->connect_ms = cfg->connect_timeout_ms;
    h->timeout_ms = cfg->timeout_ms;
    h->max_body = cfg->max_body;
    url_parts u;
    bool url_ok = parse_url(cfg->url, &u);
    h->host = u.host;
    h->authority = u.authority;
    h->base = u.base;
    memcpy(h->port, u.port, sizeof h->port);
    if (!url_ok) {
        snprintf(err, errlen, "URL must be https://host[:port][/path]");
    } else if (load_tls(h, cfg, err, errlen)) {
        h->host_is_ip = host_is_ip(h->host);
        return h;
    }
    httpsc_free(h);
    return NULL;
}

void httpsc_free(httpsc *h)
{
    if (h == NULL)
        return;
    conn_close(h);
    secret_wipe(h->in, sizeof h->in);
    if (h->cred != NULL)
        gnutls_certificate_free_credentials(h->cred);
    if (h->prio != NULL)
        gnutls_priority_deinit(h->prio);
    free(h->req);
    free(h->host);
    free(h->authority);
    free(h->base);
    free(h);
}
