/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hostile_server.c - the hostile HTTPS "KME" of the libqkd014 tests (see
 * hostile_server.h): one thread, one connection at a time, every answer
 * followed by closing the connection (unless a raw answer asks to keep it),
 * so each answer is exactly what the test asked for.  Test code only; it trusts nothing the client sends but
 * does not try to be a real HTTP server.
 */
#include "hostile_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>

struct hostile_server {
    int listen_fd, stop_pipe[2], port;
    pthread_t thread;
    gnutls_certificate_credentials_t cred;
    pthread_mutex_t lock;
    hostile_mode mode;
    int status;
    char *content_type, *body;
    struct queued {
        int status, keep;
        long hold_ms;
        char *content_type, *body, *raw; /* raw: sent as is */
    } queue[HOSTILE_QUEUE];
    size_t queued;
    hostile_request last;
};

/* One accepted connection. */
typedef struct conn {
    hostile_server *srv;
    int fd;
    gnutls_session_t tls;
    char buf[65536 + 8192];
    size_t len;
} conn;

static ssize_t push_nosignal(gnutls_transport_ptr_t p, const void *d, size_t n)
{
    return send((int)(intptr_t)p, d, n, MSG_NOSIGNAL);
}

static ssize_t pull_plain(gnutls_transport_ptr_t p, void *d, size_t n)
{
    return recv((int)(intptr_t)p, d, n, 0);
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int send_all(conn *c, const void *data, size_t n)
{
    const char *p = data;
    while (n > 0) {
        ssize_t w = gnutls_record_send(c->tls, p, n);
        if (w == GNUTLS_E_INTERRUPTED || w == GNUTLS_E_AGAIN)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int send_str(conn *c, const char *s)
{
    return send_all(c, s, strlen(s));
}

/* ------------------------------------------------------------ requests */

/* Value of header name in the header block hdr (NUL-terminated), into out. */
static void header_value(const char *hdr, const char *name, char *out,
                         size_t outlen)
{
    size_t nl = strlen(name);
    out[0] = '\0';
    for (const char *l = strstr(hdr, "\r\n"); l != NULL; l = strstr(l, "\r\n")) {
        l += 2;
        if (strncasecmp(l, name, nl) == 0 && l[nl] == ':') {
            const char *v = l + nl + 1, *e = strstr(v, "\r\n");
            while (*v == ' ')
                v++;
            size_t vl = e ? (size_t)(e - v) : strlen(v);
            snprintf(out, outlen, "%.*s", (int)vl, v);
            return;
        }
    }
}

/* Read until the header block is complete; returns its length (with the
 * blank line) or -1. */
static long read_headers(conn *c)
{
    for (;;) {
        c->buf[c->len] = '\0';
        char *end = strstr(c->buf, "\r\n\r\n");
        if (end != NULL)
            return end + 4 - c->buf;
        if (c->len >= sizeof c->buf - 1)
            return -1;
        ssize_t r = gnutls_record_recv(c->tls, c->buf + c->len,
                                       sizeof c->buf - 1 - c->len);
        if (r == GNUTLS_E_INTERRUPTED)
            continue; /* AGAIN: SO_RCVTIMEO expired, e.g. an idle kept connection */
        if (r <= 0)
            return -1;
        c->len += (size_t)r;
    }
}

/* Read one request and record it (without its body when head_only); 0 or -1. */
static int read_request(conn *c, hostile_request *rq, bool head_only)
{
    long hl = read_headers(c);
    if (hl < 0)
        return -1;
    char cl[32];
    c->buf[hl - 2] = '\0'; /* headers end at the first CRLF of the blank line */
    memset(rq, 0, sizeof *rq);
    if (sscanf(c->buf, "%15s %2047s", rq->method, rq->target) != 2)
        return -1;
    header_value(c->buf, "Content-Type", rq->content_type, sizeof rq->content_type);
    header_value(c->buf, "Content-Length", cl, sizeof cl);
    size_t want = cl[0] ? strtoul(cl, NULL, 10) : 0;
    if (head_only)
        return 0;
    if (want >= sizeof rq->body)
        return -1;
    size_t have = c->len - (size_t)hl;
    memcpy(rq->body, c->buf + hl, have < want ? have : want);
    while (have < want) {
        ssize_t r = gnutls_record_recv(c->tls, rq->body + have, want - have);
        if (r == GNUTLS_E_INTERRUPTED)
            continue;
        if (r <= 0)
            return -1;
        have += (size_t)r;
    }
    rq->body_len = want;
    return 0;
}

/* ------------------------------------------------------------- answers */

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Whatever";
    }
}

/* Head and body go out in one record, as most servers write an answer:
 * a server that closes with the request unread resets the connection, and
 * a reset drops what its socket had not sent yet. */
static void answer_canned(conn *c, int status, const char *ct, const char *body)
{
    size_t bl = body ? strlen(body) : 0, cap = 1024 + bl;
    char *out = malloc(cap);
    if (out == NULL)
        return;
    int n = snprintf(out, cap, "HTTP/1.1 %d %s\r\n", status, reason(status));
    if (ct != NULL)
        n += snprintf(out + n, cap - (size_t)n, "Content-Type: %s\r\n", ct);
    n += snprintf(out + n, cap - (size_t)n,
                  "Content-Length: %zu\r\nConnection: close\r\n\r\n", bl);
    if (bl > 0)
        memcpy(out + n, body, bl);
    send_all(c, out, (size_t)n + bl);
    free(out);
}

static void answer_slow(conn *c)
{
    if (send_str(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    "Content-Length: 200\r\nConnection: close\r\n\r\n") != 0)
        return;
    for (int i = 0; i < 200; i++) {
        if (send_all(c, i == 0 ? "{" : " ", 1) != 0)
            return;
        sleep_ms(100);
    }
}

static void answer_huge(conn *c, bool chunked)
{
    static char block[65536];
    char line[128];
    memset(block, ' ', sizeof block);
    snprintf(line, sizeof line, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
             "%s%s\r\nConnection: close\r\n\r\n",
             chunked ? "Transfer-Encoding: chunked" : "Content-Length: ",
             chunked ? "" : "83886080");
    if (send_str(c, line) != 0)
        return;
    for (size_t sent = 0; sent < HOSTILE_HUGE_BYTES; sent += sizeof block) {
        if (chunked && send_str(c, "10000\r\n") != 0)
            return;
        if (send_all(c, block, sizeof block) != 0)
            return;
        if (chunked && send_str(c, "\r\n") != 0)
            return;
    }
    if (chunked)
        send_str(c, "0\r\n\r\n");
}

static void answer(conn *c, hostile_mode mode, int status, const char *ct,
                   const char *body)
{
    switch (mode) {
    case H_CANNED:
    case H_EARLY: answer_canned(c, status, ct, body); break;
    case H_SLOW: answer_slow(c); break;
    case H_HUGE_CHUNKED: answer_huge(c, true); break;
    case H_HUGE_LENGTH: answer_huge(c, false); break;
    case H_CLOSE: break;
    case H_GARBAGE: send_str(c, "\x16\x03 this is not HTTP at all\r\n\r\n"); break;
    case H_TRUNCATED:
        send_str(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    "Content-Length: 500\r\nConnection: close\r\n\r\n{\"keys\":[");
        break;
    }
}

/* ---------------------------------------------------------- connection */

/* Send a raw answer; then hold the connection without reading. */
static void answer_raw(conn *c, const char *raw, long hold_ms)
{
    if (raw[0] != '\0')
        send_str(c, raw);
    if (hold_ms > 0)
        sleep_ms(hold_ms);
}

/* Serve one request; true if the connection is to serve another. */
static bool serve_one(hostile_server *s, conn *c)
{
    hostile_request *rq = malloc(sizeof *rq);
    pthread_mutex_lock(&s->lock);
    bool early = s->mode == H_EARLY && s->queued == 0;
    pthread_mutex_unlock(&s->lock);
    c->len = 0; /* the client does not pipeline */
    if (rq == NULL || read_request(c, rq, early) != 0) {
        free(rq);
        return false;
    }
    pthread_mutex_lock(&s->lock);
    rq->count = s->last.count + 1;
    s->last = *rq;
    hostile_mode mode = s->mode;
    int status = s->status, keep = 0;
    long hold = 0;
    char *ct, *body, *raw = NULL;
    if (s->queued > 0) { /* the oldest queued answer, handed over */
        mode = H_CANNED;
        status = s->queue[0].status;
        ct = s->queue[0].content_type;
        body = s->queue[0].body;
        raw = s->queue[0].raw;
        keep = s->queue[0].keep;
        hold = s->queue[0].hold_ms;
        memmove(s->queue, s->queue + 1, --s->queued * sizeof s->queue[0]);
    } else {
        ct = s->content_type ? strdup(s->content_type) : NULL;
        body = s->body ? strdup(s->body) : NULL;
    }
    pthread_mutex_unlock(&s->lock);
    if (raw != NULL)
        answer_raw(c, raw, hold);
    else
        answer(c, mode, status, ct, body);
    free(ct);
    free(body);
    free(raw);
    free(rq);
    return keep != 0;
}

static void serve_conn(hostile_server *s, conn *c)
{
    while (serve_one(s, c))
        ;
}

static void handle(hostile_server *s, int fd)
{
    conn *c = calloc(1, sizeof *c);
    struct timeval tv = { 5, 0 };
    if (c == NULL) {
        close(fd);
        return;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    c->srv = s;
    c->fd = fd;
    if (gnutls_init(&c->tls, GNUTLS_SERVER) == 0) {
        gnutls_set_default_priority(c->tls);
        gnutls_credentials_set(c->tls, GNUTLS_CRD_CERTIFICATE, s->cred);
        gnutls_certificate_server_set_request(c->tls, GNUTLS_CERT_REQUEST);
        gnutls_transport_set_int(c->tls, fd);
        gnutls_transport_set_push_function(c->tls, push_nosignal);
        gnutls_transport_set_pull_function(c->tls, pull_plain);
        int r;
        do
            r = gnutls_handshake(c->tls);
        while (r < 0 && !gnutls_error_is_fatal(r));
        if (r == 0) {
            serve_conn(s, c);
            gnutls_bye(c->tls, GNUTLS_SHUT_WR);
        }
        gnutls_deinit(c->tls);
    }
    close(fd);
    free(c);
}

static void *run(void *p)
{
    hostile_server *s = p;
    struct pollfd fds[2] = { { s->listen_fd, POLLIN, 0 }, { s->stop_pipe[0], POLLIN, 0 } };
    for (;;) {
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (fds[1].revents != 0)
            break;
        int fd = accept(s->listen_fd, NULL, NULL);
        if (fd >= 0)
            handle(s, fd);
    }
    return NULL;
}

/* -------------------------------------------------------------- public */

static int listen_any(int *port)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = 0 };
    socklen_t al = sizeof a;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 16) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &al) != 0) {
        close(fd);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

hostile_server *hostile_start(const char *cert, const char *key, char *err,
                              size_t errlen)
{
    hostile_server *s = calloc(1, sizeof *s);
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->listen_fd = s->stop_pipe[0] = s->stop_pipe[1] = -1;
    pthread_mutex_init(&s->lock, NULL);
    s->mode = H_CANNED;
    s->status = 500;
    int r = gnutls_certificate_allocate_credentials(&s->cred);
    if (r == 0)
        r = gnutls_certificate_set_x509_key_file(s->cred, cert, key, GNUTLS_X509_FMT_PEM);
    if (r < 0) {
        snprintf(err, errlen, "certificate %s / key %s: %s", cert, key, gnutls_strerror(r));
    } else if ((s->listen_fd = listen_any(&s->port)) < 0 || pipe(s->stop_pipe) != 0) {
        snprintf(err, errlen, "cannot listen on 127.0.0.1: %s", strerror(errno));
    } else if (pthread_create(&s->thread, NULL, run, s) != 0) {
        snprintf(err, errlen, "cannot start the server thread");
    } else
        return s;
    if (s->stop_pipe[0] >= 0) {
        close(s->stop_pipe[0]);
        close(s->stop_pipe[1]);
    }
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    if (s->cred != NULL)
        gnutls_certificate_free_credentials(s->cred);
    pthread_mutex_destroy(&s->lock);
    free(s);
    return NULL;
}

int hostile_port(const hostile_server *s)
{
    return s->port;
}

void hostile_answer(hostile_server *s, hostile_mode mode, int status,
                    const char *content_type, const char *body)
{
    pthread_mutex_lock(&s->lock);
    free(s->content_type);
    free(s->body);
    s->mode = mode;
    s->status = status;
    s->content_type = content_type ? strdup(content_type) : NULL;
    s->body = body ? strdup(body) : NULL;
    for (size_t i = 0; i < s->queued; i++) {
        free(s->queue[i].content_type);
        free(s->queue[i].body);
        free(s->queue[i].raw);
    }
    s->queued = 0;
    pthread_mutex_unlock(&s->lock);
}

int hostile_enqueue(hostile_server *s, int status, const char *content_type, const char *body)
{
    int rc = -1;
    pthread_mutex_lock(&s->lock);
    if (s->queued < HOSTILE_QUEUE) {
        struct queued *q = &s->queue[s->queued++];
        q->status = status;
        q->content_type = content_type ? strdup(content_type) : NULL;
        q->body = body ? strdup(body) : NULL;
        q->raw = NULL;
        q->keep = 0;
        q->hold_ms = 0;
        rc = 0;
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int hostile_enqueue_raw(hostile_server *s, const char *raw, int keep, long hold_ms)
{
    int rc = -1;
    pthread_mutex_lock(&s->lock);
    if (s->queued < HOSTILE_QUEUE) {
        struct queued *q = &s->queue[s->queued];
        *q = (struct queued){ .keep = keep, .hold_ms = hold_ms, .raw = strdup(raw) };
        if (q->raw != NULL) {
            s->queued++;
            rc = 0;
        }
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

void hostile_last(hostile_server *s, hostile_request *out)
{
    pthread_mutex_lock(&s->lock);
    *out = s->last;
    pthread_mutex_unlock(&s->lock);
}

void hostile_stop(hostile_server *s)
{
    if (s == NULL)
        return;
    if (write(s->stop_pipe[1], "x", 1) == 1)
        pthread_join(s->thread, NULL);
    close(s->stop_pipe[0]);
    close(s->stop_pipe[1]);
    close(s->listen_fd);
    gnutls_certificate_free_credentials(s->cred);
    free(s->content_type);
    free(s->body);
    for (size_t i = 0; i < s->queued; i++) {
        free(s->queue[i].content_type);
        free(s->queue[i].body);
        free(s->queue[i].raw);
    }
    pthread_mutex_destroy(&s->lock);
    free(s);
}
