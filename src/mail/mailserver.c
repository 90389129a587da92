/*
 * mailserver.c - SMTP submission and IMAP reading over TLS with libcurl
 * (mailserver.h has the contract).
 *
 * SMTP uses libcurl's own SMTP engine: STARTTLS (CURLUSESSL_ALL) or
 * implicit TLS, AUTH, MAIL FROM / RCPT TO, DATA with dot-stuffing.  Our
 * part is the LF -> CRLF conversion (CURLOPT_CRLF would turn CRLF into
 * CRCRLF) and the error classes.
 *
 * IMAP uses libcurl only to connect: CURLOPT_CONNECT_ONLY runs the greeting,
 * STARTTLS, certificate checks and LOGIN/AUTHENTICATE, and we then speak the
 * few commands we need ourselves over curl_easy_send/recv.  libcurl's IMAP
 * URLs fetch with BODY[] (which sets \Seen) and its custom requests read a
 * literal line by line (not byte-exact); with our own reader the mailbox is
 * opened read-only (EXAMINE), messages are fetched with BODY.PEEK[] (the
 * inbox listing: BODY.PEEK[]<0.N>, a bounded prefix), and the literal is
 * taken by its announced byte count.
 */
#include "mail/mailserver.h"

#include "common/tls_policy.h"

#include <curl/curl.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum {
    /* libcurl's connect phase is TCP, TLS, greeting and login together;
     * Dovecot answers a repeated failed login only after a penalty of up
     * to 15 s, which must come out as "login refused", not a timeout. */
    CONNECT_TIMEOUT_S = 30,
    OPERATION_TIMEOUT_S = 600,      /* a whole send, list or fetch */
    STALL_TIMEOUT_S = 30,           /* no byte moving for this long: give up */
    IMAP_LINE_MAX = 1 << 20,        /* one response line (without literals) */
};
/* The largest message we accept from IMAP: a QuMail message carries at most
 * 2^30 bytes of plaintext, base64 adds a third, and headers are small. */
#define IMAP_LITERAL_MAX ((size_t)1536 << 20)

/* --- details ------------------------------------------------------------- */

/* One line of reason into detail (NULL or 0 capacity: nothing).  Control
 * characters (a server's CR LF, say) become spaces. */
static void set_detail(char *detail, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_detail(char *detail, size_t cap, const char *fmt, ...)
{
    if (detail == NULL || cap == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, cap, fmt, ap);
    va_end(ap);
    for (char *p = detail; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
}

/* --- URLs ---------------------------------------------------------------- */

/* The parts of a server URL we use: which scheme, and scheme://host:port for
 * messages.  Credentials in the URL are refused (they would end up in error
 * messages, and the password has its own field). */
typedef struct server_url {
    bool implicit_tls;
    char shown[300];
    char base[300];  /* scheme://host:port/ for libcurl */
} server_url;

static qm_err parse_url(const char *url, const char *plain, const char *tls, server_url *out,
                        char *detail, size_t cap)
{
    CURLU *u = curl_url();
    if (u == NULL)
        return QM_E_NOMEM;
    qm_err err = QM_E_CONFIG;
    char *scheme = NULL, *host = NULL, *port = NULL, *user = NULL, *path = NULL;
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        set_detail(detail, cap, "mail server URL is not a URL of the form %s://HOST[:PORT]", plain);
        goto out;
    }
    if (strcmp(scheme, plain) != 0 && strcmp(scheme, tls) != 0) {
        set_detail(detail, cap, "mail server URL scheme '%s' is neither %s:// (STARTTLS) nor %s://",
                   scheme, plain, tls);
        goto out;
    }
    if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK) {
        set_detail(detail, cap, "mail server URL must not carry a user name or password "
                   "(they have their own settings)");
        goto out;
    }
    if (curl_url_get(u, CURLUPART_PATH, &path, 0) == CURLUE_OK && strcmp(path, "/") != 0 &&
        path[0] != '\0') {
        set_detail(detail, cap, "mail server URL must not have a path (%s://HOST[:PORT])", plain);
        goto out;
    }
    if (curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK) {
        set_detail(detail, cap, "mail server URL has no usable port");
        goto out;
    }
    out->implicit_tls = strcmp(scheme, tls) == 0;
    int a = snprintf(out->shown, sizeof out->shown, "%s://%s:%s", scheme, host, port);
    int b = snprintf(out->base, sizeof out->base, "%s://%s:%s/", scheme, host, port);
    if (a < 0 || (size_t)a >= sizeof out->shown || b < 0 || (size_t)b >= sizeof out->base) {
        set_detail(detail, cap, "mail server URL is too long");
        goto out;
    }
    err = QM_OK;
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(user);
    curl_free(path);
    curl_url_cleanup(u);
    return err;
}

/* --- one libcurl handle ------------------------------------------------- */

/* A handle set up for one operation: TLS required and verified, bounded in
 * time, restricted to the two schemes of its protocol. */
static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static bool curl_ready;

/* libcurl's global set-up, once per process, here: libqkd014 no longer
 * uses libcurl (common/httpsc.c), so nothing else in a qumail process
 * does it. */
static void curl_setup(void)
{
    curl_ready = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
}

static CURL *new_handle(const qm_mailserver *s, const server_url *url, const char *protocols,
                        char errbuf[CURL_ERROR_SIZE])
{
    pthread_once(&curl_once, curl_setup);
    CURL *h = curl_ready ? curl_easy_init() : NULL;
    if (h == NULL)
        return NULL;
    errbuf[0] = '\0';
    bool ok = curl_easy_setopt(h, CURLOPT_URL, url->base) == CURLE_OK &&
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, protocols) == CURLE_OK &&
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf) == CURLE_OK &&
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
        curl_easy_setopt(h, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL) == CURLE_OK &&
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L) == CURLE_OK &&
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L) == CURLE_OK &&
        curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)QC_TLS_CURL_MIN_VERSION) == CURLE_OK &&
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, (long)CONNECT_TIMEOUT_S) == CURLE_OK &&
        curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)OPERATION_TIMEOUT_S) == CURLE_OK &&
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L) == CURLE_OK &&
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (long)STALL_TIMEOUT_S) == CURLE_OK &&
        curl_easy_setopt(h, CURLOPT_USERNAME, s->username) == CURLE_OK &&
        curl_easy_setopt(h, CURLOPT_PASSWORD, s->password) == CURLE_OK;
    if (ok && s->ca_file != NULL)
        ok = curl_easy_setopt(h, CURLOPT_CAINFO, s->ca_file) == CURLE_OK;
    if (!ok) {
        curl_easy_cleanup(h);
        return NULL;
    }
    return h;
}

/* The error class and detail of a failed libcurl operation. */
static qm_err curl_failure(CURLcode rc, const char *errbuf, const char *what,
                           const server_url *url, char *detail, size_t cap)
{
    const char *why = errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc);
    if (rc == CURLE_LOGIN_DENIED) {
        set_detail(detail, cap, "%s %s: login refused: %s", what, url->shown, why);
        return QM_E_AUTH;
    }
    if (rc == CURLE_OUT_OF_MEMORY)
        return QM_E_NOMEM;
    set_detail(detail, cap, "%s %s: %s", what, url->shown, why);
    return QM_E_TRANSPORT;
}

static bool credentials_given(const qm_mailserver *s, char *detail, size_t cap)
{
    if (s == NULL || s->url == NULL || s->username == NULL || s->password == NULL) {
        set_detail(detail, cap, "mail server URL, user name and password are required");
        return false;
    }
    return true;
}

/* --- SMTP ---------------------------------------------------------------- */

/* An address usable in MAIL FROM:<...> / RCPT TO:<...>: printable, no
 * spaces or angle brackets, at most 254 characters (RFC 5321). */
static bool smtp_address_ok(const char *a)
{
    size_t n = a != NULL ? strlen(a) : 0;
    if (n == 0 || n > 254)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)a[i];
        if (c <= 0x20 || c == 0x7f || c == '<' || c == '>')
            return false;
    }
    return true;
}

/* msg with every LF that lacks its CR turned into CRLF.  The copy may hold
 * a plaintext message (Level 4): the caller wipes it. */
static uint8_t *to_crlf(const uint8_t *msg, size_t len, size_t *out_len)
{
    size_t bare = 0;
    for (size_t i = 0; i < len; i++)
        if (msg[i] == '\n' && (i == 0 || msg[i - 1] != '\r'))
            bare++;
    if (len > SIZE_MAX - bare - 1)
        return NULL;
    uint8_t *out = malloc(len + bare + 1);
    if (out == NULL)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (msg[i] == '\n' && (i == 0 || msg[i - 1] != '\r'))
            out[o++] = '\r';
        out[o++] = msg[i];
    }
    *out_len = o;
    return out;
}

typedef struct upload {
    const uint8_t *data;
    size_t len, pos;
} upload;

static size_t upload_read(char *buf, size_t size, size_t nitems, void *arg)
{
    upload *u = arg;
    size_t n = size * nitems;
    if (n > u->len - u->pos)
        n = u->len - u->pos;
    memcpy(buf, u->data + u->pos, n);
    u->pos += n;
    return n;
}

static struct curl_slist *smtp_recipients(const char *const *rcpt, size_t n_rcpt)
{
    struct curl_slist *list = NULL;
    for (size_t i = 0; i < n_rcpt; i++) {
        char buf[260];
        snprintf(buf, sizeof buf, "<%s>", rcpt[i]);
        struct curl_slist *next = curl_slist_append(list, buf);
        if (next == NULL) {
            curl_slist_free_all(list);
            return NULL;
        }
        list = next;
    }
    return list;
}

qm_err qm_smtp_send(const qm_mailserver *s, const char *from, const char *const *rcpt,
                    size_t n_rcpt, const uint8_t *msg, size_t len, char *detail, size_t detail_cap)
{
    if (detail != NULL && detail_cap > 0)
        detail[0] = '\0';
    if (!credentials_given(s, detail, detail_cap))
        return QM_E_USAGE;
    if ((msg == NULL && len > 0) || rcpt == NULL || n_rcpt == 0) {
        set_detail(detail, detail_cap, "nothing to send or nobody to send it to");
        return QM_E_USAGE;
    }
    if (!smtp_address_ok(from)) {
        set_detail(detail, detail_cap, "sender address is not usable in SMTP");
        return QM_E_USAGE;
    }
    for (size_t i = 0; i < n_rcpt; i++)
        if (!smtp_address_ok(rcpt[i])) {
            set_detail(detail, detail_cap, "recipient address %zu is not usable in SMTP", i + 1);
            return QM_E_USAGE;
        }
    server_url url;
    qm_err err = parse_url(s->url, "smtp", "smtps", &url, detail, detail_cap);
    if (err != QM_OK)
        return err;

    size_t wire_len = 0;
    uint8_t *wire = to_crlf(msg != NULL ? msg : (const uint8_t *)"", len, &wire_len);
    struct curl_slist *rcpts = smtp_recipients(rcpt, n_rcpt);
    char from_arg[260];
    snprintf(from_arg, sizeof from_arg, "<%s>", from);
    char errbuf[CURL_ERROR_SIZE];
    CURL *h = wire != NULL && rcpts != NULL ? new_handle(s, &url, "smtp,smtps", errbuf) : NULL;
    if (h == NULL) {
        err = QM_E_NOMEM;
        goto out;
    }
    upload up = {.data = wire, .len = wire_len};
    if (curl_easy_setopt(h, CURLOPT_MAIL_FROM, from_arg) != CURLE_OK ||
        curl_easy_setopt(h, CURLOPT_MAIL_RCPT, rcpts) != CURLE_OK ||
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L) != CURLE_OK ||
        curl_easy_setopt(h, CURLOPT_READFUNCTION, upload_read) != CURLE_OK ||
        curl_easy_setopt(h, CURLOPT_READDATA, &up) != CURLE_OK ||
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)wire_len) != CURLE_OK) {
        err = QM_E_NOMEM;
        goto out;
    }
    CURLcode rc = curl_easy_perform(h);
    err = rc == CURLE_OK ? QM_OK : curl_failure(rc, errbuf, "SMTP", &url, detail, detail_cap);
out:
    if (h != NULL)
        curl_easy_cleanup(h);
    curl_slist_free_all(rcpts);
    if (wire != NULL) {
        sodium_memzero(wire, wire_len);
        free(wire);
    }
    return err;
}

/* --- IMAP: a connection and a response reader ------------------------- */

typedef struct imap_conn {
    CURL *h;
    curl_socket_t sock;
    struct timespec deadline;
    char errbuf[CURL_ERROR_SIZE];   /* libcurl writes here as long as h lives */
    uint8_t buf[16384];
    size_t start, end;     /* unread bytes of buf */
    unsigned tag;
    const server_url *url;
    char *detail;
    size_t cap;
} imap_conn;

static long ms_left(const imap_conn *c)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long ms = (long)(c->deadline.tv_sec - now.tv_sec) * 1000 +
              (c->deadline.tv_nsec - now.tv_nsec) / 1000000;
    if (ms < 0)
        return 0;
    return ms < STALL_TIMEOUT_S * 1000L ? ms : STALL_TIMEOUT_S * 1000L;
}

/* Wait until the socket is ready for `events`, at most the stall timeout. */
static qm_err imap_wait(imap_conn *c, short events)
{
    struct pollfd p = {.fd = c->sock, .events = events};
    for (;;) {
        long ms = ms_left(c);
        int r = ms > 0 ? poll(&p, 1, (int)ms) : 0;
        if (r > 0)
            return QM_OK;
        if (r < 0 && errno == EINTR)
            continue;
        set_detail(c->detail, c->cap, "IMAP %s: %s", c->url->shown,
                   r == 0 ? "the server did not answer in time" : "poll failed");
        return QM_E_TRANSPORT;
    }
}

static qm_err imap_send(imap_conn *c, const char *line, size_t len)
{
    size_t done = 0;
    while (done < len) {
        size_t n = 0;
        CURLcode rc = curl_easy_send(c->h, line + done, len - done, &n);
        if (rc == CURLE_AGAIN) {
            qm_err err = imap_wait(c, POLLOUT);
            if (err != QM_OK)
                return err;
            continue;
        }
        if (rc != CURLE_OK) {
            set_detail(c->detail, c->cap, "IMAP %s: sending failed: %s", c->url->shown,
                       curl_easy_strerror(rc));
            return QM_E_TRANSPORT;
        }
        done += n;
    }
    return QM_OK;
}

/* More bytes into buf (which the caller has emptied or compacted). */
static qm_err imap_fill(imap_conn *c)
{
    if (c->start > 0) {
        memmove(c->buf, c->buf + c->start, c->end - c->start);
        c->end -= c->start;
        c->start = 0;
    }
    for (;;) {
        size_t n = 0;
        CURLcode rc = curl_easy_recv(c->h, c->buf + c->end, sizeof c->buf - c->end, &n);
        if (rc == CURLE_AGAIN) {
            qm_err err = imap_wait(c, POLLIN);
            if (err != QM_OK)
                return err;
            continue;
        }
        if (rc != CURLE_OK || n == 0) {
            set_detail(c->detail, c->cap, "IMAP %s: %s", c->url->shown,
                       rc != CURLE_OK ? curl_easy_strerror(rc) : "the server closed the connection");
            return QM_E_TRANSPORT;
        }
        c->end += n;
        return QM_OK;
    }
}

/* One response line without its CRLF, NUL-terminated, in *line (grown as
 * needed, *cap its size). */
static qm_err imap_line(imap_conn *c, char **line, size_t *cap)
{
    size_t len = 0;
    for (;;) {
        uint8_t *lf = memchr(c->buf + c->start, '\n', c->end - c->start);
        size_t take = lf != NULL ? (size_t)(lf - (c->buf + c->start)) + 1 : c->end - c->start;
        if (len + take + 1 > IMAP_LINE_MAX) {
            set_detail(c->detail, c->cap, "IMAP %s: a response line is too long", c->url->shown);
            return QM_E_TRANSPORT;
        }
        if (len + take + 1 > *cap) {
            size_t ncap = *cap < 1024 ? 1024 : *cap;
            while (ncap < len + take + 1)
                ncap *= 2;
            char *n = realloc(*line, ncap);
            if (n == NULL)
                return QM_E_NOMEM;
            *line = n;
            *cap = ncap;
        }
        memcpy(*line + len, c->buf + c->start, take);
        len += take;
        c->start += take;
        if (lf != NULL)
            break;
        qm_err err = imap_fill(c);
        if (err != QM_OK)
            return err;
    }
    len--;                                  /* the LF */
    if (len > 0 && (*line)[len - 1] == '\r')
        len--;
    (*line)[len] = '\0';
    return QM_OK;
}

/* Exactly n bytes of a literal into out (or dropped if out is NULL). */
static qm_err imap_literal(imap_conn *c, uint8_t *out, size_t n)
{
    size_t got = 0;
    while (got < n) {
        if (c->start == c->end) {
            c->start = c->end = 0;
            qm_err err = imap_fill(c);
            if (err != QM_OK)
                return err;
        }
        size_t take = c->end - c->start;
        if (take > n - got)
            take = n - got;
        if (out != NULL)
            memcpy(out + got, c->buf + c->start, take);
        got += take;
        c->start += take;
    }
    return QM_OK;
}

/* The size of the literal announced at the end of line ("... {123}"), or
 * -1 if the line announces none. */
static long long literal_size(const char *line)
{
    size_t n = strlen(line);
    if (n < 3 || line[n - 1] != '}')
        return -1;
    size_t i = n - 1;
    while (i > 0 && line[i - 1] >= '0' && line[i - 1] <= '9')
        i--;
    if (i == 0 || i == n - 1 || line[i - 1] != '{' || n - 1 - i > 12)
        return -1;
    return strtoll(line + i, NULL, 10);
}

/* What a command's untagged responses gave us. */
typedef struct imap_result {
    const char *want_uid;    /* fetch: the UID whose BODY[] we want */
    size_t max_body;         /* fetch of a prefix (BODY[]<0>): at most this; 0: whole */
    uint8_t *body;
    size_t body_len;
    bool have_body;
    uint32_t *uids;          /* search */
    size_t n_uids, cap_uids;
} imap_result;

static qm_err add_search_uids(imap_result *r, const char *p)
{
    while (*p == ' ')
        p++;
    while (*p != '\0') {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(p, &end, 10);
        if (end == p || errno != 0 || v == 0 || v > UINT32_MAX || (*end != ' ' && *end != '\0'))
            return QM_E_TRANSPORT;
        if (r->n_uids == r->cap_uids) {
            size_t ncap = r->cap_uids < 64 ? 64 : r->cap_uids * 2;
            uint32_t *n = realloc(r->uids, ncap * sizeof *n);
            if (n == NULL)
                return QM_E_NOMEM;
            r->uids = n;
            r->cap_uids = ncap;
        }
        r->uids[r->n_uids++] = (uint32_t)v;
        p = end;
        while (*p == ' ')
            p++;
    }
    return QM_OK;
}

/* Does this FETCH response line end in the BODY[] literal of our message?
 * A UID FETCH of one UID returns only that message's data (other FETCH
 * responses are flag updates without a body); the UID, when written before
 * the body, must be ours. */
static bool is_our_body(const char *line, const char *uid, bool prefix)
{
    if (strncmp(line, "* ", 2) != 0 || strstr(line, " FETCH (") == NULL)
        return false;
    const char *body = strstr(line, prefix ? "BODY[]<0> {" : "BODY[] {");
    if (body == NULL)
        return false;
    const char *u = strstr(line, "UID ");
    if (u == NULL || u > body)
        return true;
    size_t n = strlen(uid);
    return strncmp(u + 4, uid, n) == 0 && (u[4 + n] == ' ' || u[4 + n] == ')');
}

/* Send "TAG command" and read every response up to the tagged one.  QM_OK
 * on OK; on NO/BAD *refused is set and the server's text is in detail. */
static qm_err imap_command(imap_conn *c, const char *command, imap_result *r, bool *refused)
{
    char tag[16], buf[512];
    snprintf(tag, sizeof tag, "q%u", ++c->tag);
    int n = snprintf(buf, sizeof buf, "%s %s\r\n", tag, command);
    if (n < 0 || (size_t)n >= sizeof buf)
        return QM_E_USAGE;
    *refused = false;
    qm_err err = imap_send(c, buf, (size_t)n);
    char *line = NULL;
    size_t cap = 0, tag_len = strlen(tag);
    while (err == QM_OK) {
        err = imap_line(c, &line, &cap);
        if (err != QM_OK)
            break;
        if (strncmp(line, tag, tag_len) == 0 && line[tag_len] == ' ') {
            const char *status = line + tag_len + 1;
            if (strncmp(status, "OK", 2) != 0) {
                *refused = true;
                set_detail(c->detail, c->cap, "IMAP %s: %.200s", c->url->shown, status);
            }
            break;
        }
        if (r != NULL && strncmp(line, "* SEARCH", 8) == 0 && (line[8] == ' ' || line[8] == '\0')) {
            err = add_search_uids(r, line + 8);
            if (err == QM_E_TRANSPORT)
                set_detail(c->detail, c->cap, "IMAP %s: malformed SEARCH response", c->url->shown);
            continue;
        }
        /* A literal may follow any response line; the line goes on after
         * it.  Only our message's BODY[] is kept. */
        long long size;
        while (err == QM_OK && (size = literal_size(line)) >= 0) {
            bool ours = r != NULL && r->want_uid != NULL && !r->have_body &&
                        is_our_body(line, r->want_uid, r->max_body > 0);
            if ((unsigned long long)size > IMAP_LITERAL_MAX
                || (ours && r->max_body > 0 && (unsigned long long)size > r->max_body)) {
                set_detail(c->detail, c->cap, "IMAP %s: a literal of %lld bytes is beyond our limit",
                           c->url->shown, size);
                err = QM_E_TRANSPORT;
                break;
            }
            uint8_t *data = NULL;
            if (ours && (data = malloc(size > 0 ? (size_t)size : 1)) == NULL) {
                err = QM_E_NOMEM;
                break;
            }
            err = imap_literal(c, data, (size_t)size);
            if (err == QM_OK && ours) {
                r->body = data;
                r->body_len = (size_t)size;
                r->have_body = true;
            } else {
                free(data);
            }
            if (err == QM_OK)
                err = imap_line(c, &line, &cap);     /* the rest of the response */
        }
    }
    free(line);
    return err;
}

static void imap_close(imap_conn *c)
{
    if (c->h == NULL)
        return;
    /* LOGOUT is a courtesy: its answer is not awaited */
    char buf[32];
    int n = snprintf(buf, sizeof buf, "q%u LOGOUT\r\n", ++c->tag);
    size_t sent;
    curl_easy_send(c->h, buf, (size_t)n, &sent);
    curl_easy_cleanup(c->h);
    c->h = NULL;
}

/* Connect, STARTTLS or TLS, verify, log in (libcurl), then EXAMINE mailbox. */
static qm_err imap_open(imap_conn *c, const qm_mailserver *s, const server_url *url,
                        const char *mailbox, char *detail, size_t cap)
{
    memset(c, 0, sizeof *c);
    c->url = url;
    c->detail = detail;
    c->cap = cap;
    clock_gettime(CLOCK_MONOTONIC, &c->deadline);
    c->deadline.tv_sec += OPERATION_TIMEOUT_S;

    c->h = new_handle(s, url, "imap,imaps", c->errbuf);
    if (c->h == NULL || curl_easy_setopt(c->h, CURLOPT_CONNECT_ONLY, 1L) != CURLE_OK)
        return QM_E_NOMEM;
    CURLcode rc = curl_easy_perform(c->h);
    if (rc != CURLE_OK)
        return curl_failure(rc, c->errbuf, "IMAP", url, detail, cap);
    /* From here on we read and write ourselves: the whole-operation
     * timeout of libcurl no longer applies, our deadline does. */
    if (curl_easy_getinfo(c->h, CURLINFO_ACTIVESOCKET, &c->sock) != CURLE_OK ||
        c->sock == CURL_SOCKET_BAD) {
        set_detail(detail, cap, "IMAP %s: no connection after login", url->shown);
        return QM_E_TRANSPORT;
    }

    /* The mailbox as a quoted string: ASCII without CR, LF, quotes or
     * backslashes (modified UTF-7 names are not supported). */
    char command[300];
    size_t mlen = strlen(mailbox);
    if (mlen == 0 || mlen > 200 || strpbrk(mailbox, "\"\\\r\n") != NULL) {
        set_detail(detail, cap, "IMAP mailbox name is empty, too long or contains quotes or line breaks");
        return QM_E_CONFIG;
    }
    for (size_t i = 0; i < mlen; i++)
        if ((unsigned char)mailbox[i] < 0x20 || (unsigned char)mailbox[i] > 0x7e) {
            set_detail(detail, cap, "IMAP mailbox name must be printable ASCII");
            return QM_E_CONFIG;
        }
    snprintf(command, sizeof command, "EXAMINE \"%s\"", mailbox);
    bool refused;
    qm_err err = imap_command(c, command, NULL, &refused);
    if (err == QM_OK && refused)
        return QM_E_NOT_FOUND;   /* detail holds the server's reason */
    return err;
}

static int uid_cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

qm_err qm_imap_list(const qm_mailserver *s, const char *mailbox, qm_imap_entry **entries,
                    size_t *n, char *detail, size_t detail_cap)
{
    if (detail != NULL && detail_cap > 0)
        detail[0] = '\0';
    if (entries == NULL || n == NULL || mailbox == NULL)
        return QM_E_USAGE;
    *entries = NULL;
    *n = 0;
    if (!credentials_given(s, detail, detail_cap))
        return QM_E_USAGE;
    server_url url;
    qm_err err = parse_url(s->url, "imap", "imaps", &url, detail, detail_cap);
    if (err != QM_OK)
        return err;

    imap_conn c;
    imap_result r = {0};
    bool refused = false;
    err = imap_open(&c, s, &url, mailbox, detail, detail_cap);
    if (err == QM_OK)
        err = imap_command(&c, "UID SEARCH ALL", &r, &refused);
    if (err == QM_OK && refused)
        err = QM_E_TRANSPORT;
    imap_close(&c);

    qm_imap_entry *list = NULL;
    size_t count = 0;
    if (err == QM_OK && r.n_uids > 0) {
        qsort(r.uids, r.n_uids, sizeof *r.uids, uid_cmp);
        list = calloc(r.n_uids, sizeof *list);
        if (list == NULL)
            err = QM_E_NOMEM;
        for (size_t i = 0; err == QM_OK && i < r.n_uids; i++) {
            if (count > 0 && r.uids[i] == r.uids[i - 1])
                continue;
            char buf[16];
            snprintf(buf, sizeof buf, "%u", (unsigned)r.uids[i]);
            if ((list[count].uid = strdup(buf)) == NULL)
                err = QM_E_NOMEM;
            else
                count++;
        }
    }
    free(r.uids);
    if (err != QM_OK) {
        qm_imap_entries_free(list, count);
        return err;
    }
    *entries = list;
    *n = count;
    return QM_OK;
}

void qm_imap_entries_free(qm_imap_entry *entries, size_t n)
{
    if (entries == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free(entries[i].uid);
    free(entries);
}

/* A UID as IMAP writes it: 1..4294967295, decimal, no leading zero. */
static bool uid_ok(const char *uid)
{
    size_t n = uid != NULL ? strlen(uid) : 0;
    if (n == 0 || n > 10 || uid[0] == '0')
        return false;
    for (size_t i = 0; i < n; i++)
        if (uid[i] < '0' || uid[i] > '9')
            return false;
    return strtoull(uid, NULL, 10) <= UINT32_MAX;
}

/* UID FETCH of the whole message (max 0) or of its first max bytes. */
static qm_err fetch(const qm_mailserver *s, const char *mailbox, const char *uid, size_t max,
                    uint8_t **msg, size_t *len, char *detail, size_t detail_cap)
{
    if (detail != NULL && detail_cap > 0)
        detail[0] = '\0';
    if (msg == NULL || len == NULL || mailbox == NULL)
        return QM_E_USAGE;
    *msg = NULL;
    *len = 0;
    if (!credentials_given(s, detail, detail_cap))
        return QM_E_USAGE;
    if (!uid_ok(uid)) {
        set_detail(detail, detail_cap, "'%.40s' is not an IMAP UID", uid != NULL ? uid : "");
        return QM_E_NOT_FOUND;
    }
    server_url url;
    qm_err err = parse_url(s->url, "imap", "imaps", &url, detail, detail_cap);
    if (err != QM_OK)
        return err;

    imap_conn c;
    imap_result r = {.want_uid = uid, .max_body = max};
    bool refused = false;
    err = imap_open(&c, s, &url, mailbox, detail, detail_cap);
    if (err == QM_OK) {
        char command[80];
        if (max > 0)
            snprintf(command, sizeof command, "UID FETCH %s (BODY.PEEK[]<0.%zu>)", uid, max);
        else
            snprintf(command, sizeof command, "UID FETCH %s (BODY.PEEK[])", uid);
        err = imap_command(&c, command, &r, &refused);
    }
    imap_close(&c);
    if (err == QM_OK && refused)
        err = QM_E_TRANSPORT;
    if (err == QM_OK && !r.have_body) {
        set_detail(detail, detail_cap, "IMAP %s: no message with UID %s in %.100s", url.shown, uid,
                   mailbox);
        err = QM_E_NOT_FOUND;
    }
    if (err != QM_OK) {
        if (r.body != NULL) {
            sodium_memzero(r.body, r.body_len);
            free(r.body);
        }
        return err;
    }
    *msg = r.body;
    *len = r.body_len;
    return QM_OK;
}

qm_err qm_imap_fetch(const qm_mailserver *s, const char *mailbox, const char *uid,
                     uint8_t **msg, size_t *len, char *detail, size_t detail_cap)
{
    return fetch(s, mailbox, uid, 0, msg, len, detail, detail_cap);
}

qm_err qm_imap_fetch_prefix(const qm_mailserver *s, const char *mailbox, const char *uid,
                            size_t max, uint8_t **msg, size_t *len, char *detail,
                            size_t detail_cap)
{
    if (max == 0)
        return QM_E_USAGE;
    return fetch(s, mailbox, uid, max, msg, len, detail, detail_cap);
}
