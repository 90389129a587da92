/* SPDX-License-Identifier: Apache-2.0 */
/*
 * imap.c - IMAP reading over TLS (mailserver.h has the contract).
 *
 * libcurl is used only to connect: CURLOPT_CONNECT_ONLY runs the greeting,
 * STARTTLS, certificate checks and LOGIN/AUTHENTICATE, and we then speak the
 * few commands we need ourselves over curl_easy_send/recv.  libcurl's IMAP
 * URLs fetch with BODY[] (which sets \Seen) and its custom requests read a
 * literal line by line (not byte-exact); with our own reader
 * (imap_reader.c) the mailbox is opened read-only (EXAMINE), messages are
 * fetched with BODY.PEEK[] (the inbox listing: BODY.PEEK[]<0.N>, a bounded
 * prefix), and the literal is taken by its announced byte count.
 */
#include "mail/mailserver_internal.h"

#include <errno.h>
#include <poll.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mail/imap_reader.h"

/* --- a connection ------------------------------------------------------- */

typedef struct imap_conn {
    CURL *h;
    curl_socket_t sock;
    struct timespec deadline;
    char errbuf[CURL_ERROR_SIZE];   /* libcurl writes here as long as h lives */
    imap_reader rd;        /* what the server sends */
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
        qm_detail_set(c->detail, c->cap, "IMAP %s: %s", c->url->shown,
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
            qm_detail_set(c->detail, c->cap, "IMAP %s: sending failed: %s", c->url->shown,
                          curl_easy_strerror(rc));
            return QM_E_TRANSPORT;
        }
        done += n;
    }
    return QM_OK;
}

/* The reader's fill function: bytes from the connection, waiting at most
 * the stall timeout for each. */
static qm_err imap_recv(void *ctx, uint8_t *dst, size_t room, size_t *got)
{
    imap_conn *c = ctx;
    for (;;) {
        size_t n = 0;
        CURLcode rc = curl_easy_recv(c->h, dst, room, &n);
        if (rc == CURLE_AGAIN) {
            qm_err err = imap_wait(c, POLLIN);
            if (err != QM_OK)
                return err;
            continue;
        }
        if (rc != CURLE_OK || n == 0) {
            qm_detail_set(c->detail, c->cap, "IMAP %s: %s", c->url->shown,
                          rc != CURLE_OK ? curl_easy_strerror(rc) : "the server closed the connection");
            return QM_E_TRANSPORT;
        }
        *got = n;
        return QM_OK;
    }
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
    return err == QM_OK ? imap_read_responses(&c->rd, tag, r, refused) : err;
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
    c->rd = (imap_reader){ .fill = imap_recv, .ctx = c, .shown = url->shown, .detail = detail, .cap = cap };
    clock_gettime(CLOCK_MONOTONIC, &c->deadline);
    c->deadline.tv_sec += OPERATION_TIMEOUT_S;

    c->h = qm_curl_handle(s, url, "imap,imaps", c->errbuf);
    if (c->h == NULL || curl_easy_setopt(c->h, CURLOPT_CONNECT_ONLY, 1L) != CURLE_OK)
        return QM_E_NOMEM;
    CURLcode rc = curl_easy_perform(c->h);
    if (rc != CURLE_OK)
        return qm_curl_failure(rc, c->errbuf, "IMAP", url, detail, cap);
    /* From here on we read and write ourselves: the whole-operation
     * timeout of libcurl no longer applies, our deadline does. */
    if (curl_easy_getinfo(c->h, CURLINFO_ACTIVESOCKET, &c->sock) != CURLE_OK ||
        c->sock == CURL_SOCKET_BAD) {
        qm_detail_set(detail, cap, "IMAP %s: no connection after login", url->shown);
        return QM_E_TRANSPORT;
    }

    /* The mailbox as a quoted string: ASCII without CR, LF, quotes or
     * backslashes (modified UTF-7 names are not supported). */
    char command[300];
    size_t mlen = strlen(mailbox);
    if (mlen == 0 || mlen > 200 || strpbrk(mailbox, "\"\\\r\n") != NULL) {
        qm_detail_set(detail, cap, "IMAP mailbox name is empty, too long or contains quotes or line breaks");
        return QM_E_CONFIG;
    }
    for (size_t i = 0; i < mlen; i++)
        if ((unsigned char)mailbox[i] < 0x20 || (unsigned char)mailbox[i] > 0x7e) {
            qm_detail_set(detail, cap, "IMAP mailbox name must be printable ASCII");
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
    if (!qm_credentials_given(s, detail, detail_cap))
        return QM_E_USAGE;
    server_url url;
    qm_err err = qm_server_url_parse(s->url, "imap", "imaps", &url, detail, detail_cap);
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
    if (!qm_credentials_given(s, detail, detail_cap))
        return QM_E_USAGE;
    if (!uid_ok(uid)) {
        qm_detail_set(detail, detail_cap, "'%.40s' is not an IMAP UID", uid != NULL ? uid : "");
        return QM_E_NOT_FOUND;
    }
    server_url url;
    qm_err err = qm_server_url_parse(s->url, "imap", "imaps", &url, detail, detail_cap);
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
        qm_detail_set(detail, detail_cap, "IMAP %s: no message with UID %s in %.100s", url.shown, uid,
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
