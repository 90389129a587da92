/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_mailserver.c - mail/mailserver.c against real servers: the private
 * Postfix (submission) and Dovecot (IMAP) of tests/mail/mailservers, whose
 * directory run-with-mailservers passes in MAILSERVERS_DIR.
 *
 * What it shows: a 5 MiB message goes out over SMTP (STARTTLS and implicit
 * TLS) and comes back over IMAP (STARTTLS and implicit TLS) byte for byte,
 * apart from the trace headers the servers put on top (exactly which ones
 * is checked); fetching does not set \Seen; a wrong password is QM_E_AUTH
 * (and the password is in no detail); a closed port is QM_E_TRANSPORT at
 * once; a server certificate from another CA is QM_E_TRANSPORT; an unknown
 * UID is QM_E_NOT_FOUND; an unknown recipient is refused and nothing is
 * delivered; and a server that offers no STARTTLS never sees
 * the credentials (a small fake server in this program); and a hostile
 * IMAPS server (truncated or huge literals, a 2 MiB line, another UID's
 * body, a body that looks like the tagged answer) cannot make a fetch
 * return wrong bytes.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <gnutls/gnutls.h>

#include "mail/mailserver.h"

/* --- the servers' environment ----------------------------------------- */

static char env_text[8192 + 1];   /* one more NUL ends the list */

static void load_env(void)
{
    const char *dir = getenv("MAILSERVERS_DIR");
    if (dir == NULL) {
        printf("skipped: MAILSERVERS_DIR is not set (run through tests/mail/run-with-mailservers)\n");
        exit(77);
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/mailservers.env", dir);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        printf("cannot open %s\n", path);
        exit(1);
    }
    size_t n = fread(env_text, 1, sizeof env_text - 1, f);
    fclose(f);
    env_text[n] = '\0';
    for (char *p = env_text; *p != '\0'; p++)   /* KEY=VALUE lines become strings */
        if (*p == '\n')
            *p = '\0';
}

/* The value of KEY in DIR/mailservers.env. */
static const char *get(const char *key)
{
    size_t klen = strlen(key);
    for (const char *p = env_text; *p != '\0'; p += strlen(p) + 1)
        if (strncmp(p, key, klen) == 0 && p[klen] == '=')
            return p + klen + 1;
    fail_msg("no %s in mailservers.env", key);
    return NULL;
}

static char alice_pw[128], bob_pw[128];

static void read_password(const char *file, char *out, size_t cap)
{
    FILE *f = fopen(file, "r");
    assert_non_null(f);
    size_t n = fread(out, 1, cap - 1, f);
    fclose(f);
    out[n] = '\0';
    assert_true(n > 8);
}

static qm_mailserver server(const char *url_key, const char *user, const char *password)
{
    return (qm_mailserver){.url = get(url_key), .username = user, .password = password,
                           .ca_file = get("MAIL_CA")};
}

/* --- messages ----------------------------------------------------------- */

/* A message of about `size` bytes with LF lines: headers, a base64-like
 * body of random bytes, and the lines SMTP and IMAP must carry unchanged
 * (a leading dot, a lone dot, "From ", IMAP responses, 8-bit text, a long
 * line). */
static uint8_t *make_message(size_t size, const char *subject, size_t *len)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    uint8_t *m = malloc(size + 4096);
    assert_non_null(m);
    int h = snprintf((char *)m, 4096,
                     "From: alice@example.org\nTo: bob@example.org\nSubject: %s\n"
                     "Date: Wed, 25 Nov 2026 23:00:00 +0000\n"
                     "Message-ID: <%ld.%d@qumail.test>\nMIME-Version: 1.0\n"
                     "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
                     ".a line with a leading dot\n.\nFrom the start of a line\n"
                     /* IMAP look-alikes: a reader that goes line by line, not
                      * by the literal's byte count, stops or skips here */
                     "q2 OK UID FETCH completed\nA004 OK done\n* 7 FETCH (UID 9 BODY[] {5}\n"
                     "+ go ahead\n* BYE\n{3}\n"
                     "8-bit: \xc3\xa9\xc3\xa8\xe2\x82\xac \xf0\x9f\x94\x91\n",
                     subject, (long)time(NULL), rand());
    size_t n = (size_t)h;
    for (int i = 0; i < 900; i++)
        m[n++] = (uint8_t)('a' + i % 26);
    m[n++] = '\n';
    while (n + 78 < size) {
        for (int i = 0; i < 76; i++)
            m[n++] = (uint8_t)b64[rand() % 64];
        m[n++] = '\n';
    }
    memcpy(m + n, "-- \nend\n", 8);
    n += 8;
    *len = n;
    return m;
}

/* msg with LF -> CRLF: what SMTP carries and IMAP returns. */
static uint8_t *crlf(const uint8_t *msg, size_t len, size_t *out_len)
{
    uint8_t *o = malloc(2 * len + 1);
    assert_non_null(o);
    size_t k = 0;
    for (size_t i = 0; i < len; i++) {
        if (msg[i] == '\n')
            o[k++] = '\r';
        o[k++] = msg[i];
    }
    *out_len = k;
    return o;
}

/* The fetched message must be: trace header fields the servers add, then
 * exactly the sent message (CRLF).  Only these fields are accepted, each
 * possibly folded: Postfix writes Return-Path, X-Original-To, Delivered-To
 * and Received at the top. */
static void assert_sent_bytes(const uint8_t *got, size_t got_len, const uint8_t *sent,
                              size_t sent_len)
{
    size_t want_len;
    uint8_t *want = crlf(sent, sent_len, &want_len);
    assert_true(got_len > want_len);
    size_t prefix = got_len - want_len;
    assert_memory_equal(got + prefix, want, want_len);
    static const char *const allowed[] = {"Return-Path:", "X-Original-To:", "Delivered-To:",
                                          "Received:"};
    size_t i = 0;
    int fields = 0;
    while (i < prefix) {
        const uint8_t *eol = memchr(got + i, '\n', prefix - i);
        assert_non_null(eol);
        size_t line_len = (size_t)(eol - (got + i)) + 1;
        assert_true(line_len >= 2 && got[i + line_len - 2] == '\r');
        if (got[i] == ' ' || got[i] == '\t') {
            assert_true(fields > 0);                  /* a folded continuation */
        } else {
            bool ok = false;
            for (size_t a = 0; a < sizeof allowed / sizeof *allowed; a++)
                if (line_len > strlen(allowed[a]) &&
                    strncasecmp((const char *)got + i, allowed[a], strlen(allowed[a])) == 0)
                    ok = true;
            if (!ok)
                fail_msg("unexpected header added by the servers: %.*s", (int)line_len - 2,
                         (const char *)got + i);
            fields++;
        }
        i += line_len;
    }
    assert_true(fields >= 1);
    free(want);
}

/* --- helpers around the API ------------------------------------------- */

/* assert_int_equal with the detail line in the failure message */
#define expect_rc(call, want)                                                              \
    do {                                                                                   \
        qm_err got_ = (call);                                                              \
        if (got_ != (want))                                                                \
            fail_msg("%s: got %s, want %s (%s)", #call, qm_strerror(got_), qm_strerror(want), \
                     detail);                                                              \
    } while (0)

static size_t list_uids(const qm_mailserver *s, qm_imap_entry **e)
{
    size_t n = 99;
    char detail[256];
    qm_err rc = qm_imap_list(s, "INBOX", e, &n, detail, sizeof detail);
    if (rc != QM_OK)
        fail_msg("qm_imap_list: %s: %s", qm_strerror(rc), detail);
    for (size_t i = 1; i < n; i++)
        assert_true(strtoul((*e)[i - 1].uid, NULL, 10) < strtoul((*e)[i].uid, NULL, 10));
    return n;
}

/* Send msg from alice to bob through url_key and return the UID of the one
 * new message in bob's INBOX (read through imap_key). */
static char *send_and_find(const char *smtp_key, const char *imap_key, const uint8_t *msg,
                           size_t len)
{
    qm_mailserver bob = server(imap_key, "bob@example.org", bob_pw);
    qm_imap_entry *before = NULL, *after = NULL;
    size_t n_before = list_uids(&bob, &before);

    qm_mailserver alice = server(smtp_key, "alice@example.org", alice_pw);
    const char *rcpt[] = {"bob@example.org"};
    char detail[256];
    qm_err rc = qm_smtp_send(&alice, "alice@example.org", rcpt, 1, msg, len, detail, sizeof detail);
    if (rc != QM_OK)
        fail_msg("qm_smtp_send: %s: %s", qm_strerror(rc), detail);

    /* delivery is asynchronous: wait for the new message (10 s at most) */
    size_t n_after = 0;
    for (int i = 0; i < 100; i++) {
        n_after = list_uids(&bob, &after);
        if (n_after > n_before)
            break;
        qm_imap_entries_free(after, n_after);
        after = NULL;
        usleep(100000);
    }
    assert_int_equal(n_after, n_before + 1);
    for (size_t i = 0; i < n_before; i++)
        assert_string_equal(before[i].uid, after[i].uid);
    char *uid = strdup(after[n_after - 1].uid);
    qm_imap_entries_free(before, n_before);
    qm_imap_entries_free(after, n_after);
    return uid;
}

/* No message of bob's carries the Seen flag: Maildir keeps flags in the
 * file name ("...:2,S" when seen). */
static void assert_nothing_seen(void)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/bob@example.org/cur", get("MAILDIR_ROOT"));
    DIR *d = opendir(path);
    if (d == NULL)
        return;                       /* nothing moved to cur/: nothing flagged */
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *info = strstr(e->d_name, ":2,");
        if (info != NULL && strchr(info + 3, 'S') != NULL)
            fail_msg("message %s is marked \\Seen", e->d_name);
    }
    closedir(d);
}

/* --- tests ------------------------------------------------------------- */

static void five_mib_round_trip(const char *smtp_key, const char *imap_key)
{
    size_t len;
    uint8_t *msg = make_message(5u << 20, "five MiB", &len);
    char *uid = send_and_find(smtp_key, imap_key, msg, len);

    qm_mailserver bob = server(imap_key, "bob@example.org", bob_pw);
    uint8_t *got = NULL;
    size_t got_len = 0;
    char detail[256];
    for (int round = 0; round < 2; round++) {   /* twice: reading changes nothing */
        qm_err rc = qm_imap_fetch(&bob, "INBOX", uid, &got, &got_len, detail, sizeof detail);
        if (rc != QM_OK)
            fail_msg("qm_imap_fetch: %s: %s", qm_strerror(rc), detail);
        assert_sent_bytes(got, got_len, msg, len);
        free(got);
    }
    assert_nothing_seen();
    free(uid);
    free(msg);
}

static void test_starttls_round_trip(void **state)
{
    (void)state;
    five_mib_round_trip("SMTP_URL", "IMAP_URL");
}

static void test_implicit_tls_round_trip(void **state)
{
    (void)state;
    five_mib_round_trip("SMTPS_URL", "IMAPS_URL");
}

/* Already-CRLF input goes out unchanged (no CR doubling). */
static void test_crlf_input(void **state)
{
    (void)state;
    size_t len, wire_len;
    uint8_t *msg = make_message(4096, "crlf input", &len);
    uint8_t *wire = crlf(msg, len, &wire_len);
    char *uid = send_and_find("SMTP_URL", "IMAP_URL", wire, wire_len);
    qm_mailserver bob = server("IMAP_URL", "bob@example.org", bob_pw);
    uint8_t *got;
    size_t got_len;
    char detail[256];
    expect_rc(qm_imap_fetch(&bob, "INBOX", uid, &got, &got_len, detail, sizeof detail), QM_OK);
    assert_sent_bytes(got, got_len, msg, len);
    /* a prefix (what inbox lists from) is the start of the same bytes */
    uint8_t *pre;
    size_t pre_len;
    expect_rc(qm_imap_fetch_prefix(&bob, "INBOX", uid, 100, &pre, &pre_len, detail,
                                   sizeof detail), QM_OK);
    assert_int_equal(pre_len, 100);
    assert_memory_equal(pre, got, 100);
    free(pre);
    expect_rc(qm_imap_fetch_prefix(&bob, "INBOX", uid, got_len + 1000, &pre, &pre_len, detail,
                                   sizeof detail), QM_OK);
    assert_int_equal(pre_len, got_len);
    assert_memory_equal(pre, got, got_len);
    free(pre);
    free(got);
    free(uid);
    free(wire);
    free(msg);
}

static void test_wrong_password(void **state)
{
    (void)state;
    const char *bad = "not-the-password-42";
    char detail[256];
    const char *rcpt[] = {"bob@example.org"};
    qm_mailserver s = server("SMTP_URL", "alice@example.org", bad);
    expect_rc(qm_smtp_send(&s, "alice@example.org", rcpt, 1, (const uint8_t *)"x\n", 2,
                                  detail, sizeof detail), QM_E_AUTH);
    assert_true(detail[0] != '\0');
    assert_null(strstr(detail, bad));
    assert_null(strchr(detail, '\n'));

    /* list over STARTTLS, fetch over implicit TLS (the test Dovecot has no
     * login penalty, tests/mail/mailservers; a stock one would delay every
     * further login from this address by up to 15 s) */
    qm_mailserver b = server("IMAP_URL", "bob@example.org", bad);
    qm_imap_entry *e = (qm_imap_entry *)1;
    size_t n = 7;
    expect_rc(qm_imap_list(&b, "INBOX", &e, &n, detail, sizeof detail), QM_E_AUTH);
    assert_null(e);
    assert_int_equal(n, 0);
    assert_null(strstr(detail, bad));
    b = server("IMAPS_URL", "bob@example.org", bad);
    uint8_t *m = (uint8_t *)1;
    size_t len = 7;
    expect_rc(qm_imap_fetch(&b, "INBOX", "1", &m, &len, detail, sizeof detail), QM_E_AUTH);
    assert_null(m);
    assert_null(strstr(detail, bad));
    /* the right password with the wrong user is refused too */
    qm_mailserver w = server("SMTP_URL", "bob@example.org", alice_pw);
    expect_rc(qm_smtp_send(&w, "alice@example.org", rcpt, 1, (const uint8_t *)"x\n", 2,
                                  detail, sizeof detail), QM_E_AUTH);
    assert_null(strstr(detail, alice_pw));
}

/* A loopback port nobody listens on. */
static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void test_closed_port(void **state)
{
    (void)state;
    char url[64], detail[256];
    const char *rcpt[] = {"bob@example.org"};
    snprintf(url, sizeof url, "smtp://127.0.0.1:%d", closed_port());
    qm_mailserver s = {.url = url, .username = "alice@example.org", .password = alice_pw,
                       .ca_file = get("MAIL_CA")};
    double t0 = now_s();
    expect_rc(qm_smtp_send(&s, "alice@example.org", rcpt, 1, (const uint8_t *)"x\n", 2,
                                  detail, sizeof detail), QM_E_TRANSPORT);
    assert_non_null(strstr(detail, url));
    snprintf(url, sizeof url, "imaps://127.0.0.1:%d", closed_port());
    qm_imap_entry *e;
    size_t n;
    expect_rc(qm_imap_list(&s, "INBOX", &e, &n, detail, sizeof detail), QM_E_TRANSPORT);
    assert_true(now_s() - t0 < 2.0);
}

static void test_other_ca(void **state)
{
    (void)state;
    char detail[256];
    const char *rcpt[] = {"bob@example.org"};
    const char *smtp_keys[] = {"SMTP_URL", "SMTPS_URL"};
    for (size_t i = 0; i < 2; i++) {
        qm_mailserver s = server(smtp_keys[i], "alice@example.org", alice_pw);
        s.ca_file = get("MAIL_OTHER_CA");
        expect_rc(qm_smtp_send(&s, "alice@example.org", rcpt, 1, (const uint8_t *)"x\n", 2,
                                      detail, sizeof detail), QM_E_TRANSPORT);
        assert_null(strstr(detail, alice_pw));
    }
    const char *imap_keys[] = {"IMAP_URL", "IMAPS_URL"};
    for (size_t i = 0; i < 2; i++) {
        qm_mailserver b = server(imap_keys[i], "bob@example.org", bob_pw);
        b.ca_file = get("MAIL_OTHER_CA");
        qm_imap_entry *e;
        size_t n;
        expect_rc(qm_imap_list(&b, "INBOX", &e, &n, detail, sizeof detail), QM_E_TRANSPORT);
    }
    /* and the system store does not know our private CA either */
    qm_mailserver s = server("SMTP_URL", "alice@example.org", alice_pw);
    s.ca_file = NULL;
    expect_rc(qm_smtp_send(&s, "alice@example.org", rcpt, 1, (const uint8_t *)"x\n", 2,
                                  detail, sizeof detail), QM_E_TRANSPORT);
}

static void test_unknown_uid(void **state)
{
    (void)state;
    char detail[256];
    qm_mailserver b = server("IMAP_URL", "bob@example.org", bob_pw);
    uint8_t *m = (uint8_t *)1;
    size_t len = 1;
    const char *uids[] = {"4000000000", "abc", "0", "", "1 2", "99999999999"};
    for (size_t i = 0; i < sizeof uids / sizeof *uids; i++) {
        expect_rc(qm_imap_fetch(&b, "INBOX", uids[i], &m, &len, detail, sizeof detail), QM_E_NOT_FOUND);
        assert_null(m);
        assert_int_equal(len, 0);
    }
    qm_imap_entry *e;
    size_t n;
    expect_rc(qm_imap_list(&b, "No Such Folder", &e, &n, detail, sizeof detail), QM_E_NOT_FOUND);
}

/* A recipient the server does not know: refused at RCPT TO, nothing sent
 * (libcurl fails when any recipient is refused). */
static void test_unknown_recipient(void **state)
{
    (void)state;
    char detail[256];
    const char *rcpt[] = {"bob@example.org", "carol@example.org"};
    qm_mailserver s = server("SMTP_URL", "alice@example.org", alice_pw);
    qm_mailserver bob = server("IMAP_URL", "bob@example.org", bob_pw);
    qm_imap_entry *e;
    size_t before = list_uids(&bob, &e);
    qm_imap_entries_free(e, before);
    expect_rc(qm_smtp_send(&s, "alice@example.org", rcpt, 2, (const uint8_t *)"x\n", 2, detail,
                           sizeof detail), QM_E_TRANSPORT);
    assert_non_null(strstr(detail, "550"));
    sleep(1);
    size_t after = list_uids(&bob, &e);
    qm_imap_entries_free(e, after);
    assert_int_equal(after, before);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    char detail[256];
    const char *rcpt[] = {"bob@example.org"};
    const char *evil[] = {"bob@example.org>\r\nRCPT TO:<eve@example.org"};
    qm_mailserver s = server("SMTP_URL", "alice@example.org", alice_pw);
    expect_rc(qm_smtp_send(&s, "alice@example.org", evil, 1, (const uint8_t *)"x\n", 2,
                                  detail, sizeof detail), QM_E_USAGE);
    expect_rc(qm_smtp_send(&s, "alice@example.org", rcpt, 0, (const uint8_t *)"x\n", 2,
                                  detail, sizeof detail), QM_E_USAGE);
    qm_mailserver h = s;
    h.url = "http://127.0.0.1:1";
    expect_rc(qm_smtp_send(&h, "alice@example.org", rcpt, 1, (const uint8_t *)"x\n", 2,
                                  detail, sizeof detail), QM_E_CONFIG);
    char url[256];
    snprintf(url, sizeof url, "smtp://alice:%s@127.0.0.1:25", alice_pw);
    h.url = url;
    expect_rc(qm_smtp_send(&h, "alice@example.org", rcpt, 1, (const uint8_t *)"x\n", 2,
                                  detail, sizeof detail), QM_E_CONFIG);
    assert_null(strstr(detail, alice_pw));
    qm_mailserver i = server("IMAP_URL", "bob@example.org", bob_pw);
    i.url = get("SMTP_URL");       /* smtp:// for IMAP */
    qm_imap_entry *e;
    size_t n;
    expect_rc(qm_imap_list(&i, "INBOX", &e, &n, detail, sizeof detail), QM_E_CONFIG);
    i = server("IMAP_URL", "bob@example.org", bob_pw);
    expect_rc(qm_imap_list(&i, "IN\"BOX", &e, &n, detail, sizeof detail), QM_E_CONFIG);
}

/* --- a server without STARTTLS: credentials must never leave ---------- */

typedef struct fake {
    int listen_fd;
    int port;
    bool imap;
    bool saw_credentials;   /* an AUTH / LOGIN / AUTHENTICATE command came */
} fake;

static void fake_reply(int fd, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    ssize_t w = write(fd, buf, (size_t)n);
    (void)w;
}

static void *fake_main(void *arg)
{
    fake *f = arg;
    int fd = accept(f->listen_fd, NULL, NULL);
    if (fd < 0)
        return NULL;
    fake_reply(fd, f->imap ? "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] fake\r\n" : "220 fake ESMTP\r\n");
    char line[1024];
    size_t n = 0;
    char c;
    while (read(fd, &c, 1) == 1) {
        if (c != '\n') {
            if (n < sizeof line - 1)
                line[n++] = c;
            continue;
        }
        line[n] = '\0';
        n = 0;
        if (strcasestr(line, "AUTH") != NULL || strcasestr(line, "LOGIN") != NULL)
            f->saw_credentials = true;
        if (f->imap) {
            char tag[32] = "";
            sscanf(line, "%31s", tag);
            if (strcasestr(line, "CAPABILITY") != NULL)
                fake_reply(fd, "* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n%s OK done\r\n", tag);
            else
                fake_reply(fd, "%s NO no\r\n", tag);
        } else if (strncasecmp(line, "EHLO", 4) == 0) {
            fake_reply(fd, "250-fake\r\n250 AUTH PLAIN LOGIN\r\n");
        } else if (strncasecmp(line, "QUIT", 4) == 0) {
            fake_reply(fd, "221 bye\r\n");
            break;
        } else {
            fake_reply(fd, "250 ok\r\n");
        }
    }
    close(fd);
    return NULL;
}

static void fake_start(fake *f, bool imap, pthread_t *t)
{
    memset(f, 0, sizeof *f);
    f->imap = imap;
    f->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    assert_int_equal(bind(f->listen_fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(f->listen_fd, 1), 0);
    assert_int_equal(getsockname(f->listen_fd, (struct sockaddr *)&a, &alen), 0);
    f->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(t, NULL, fake_main, f), 0);
}

static void test_no_starttls_no_credentials(void **state)
{
    (void)state;
    char url[64], detail[256];
    fake f;
    pthread_t t;
    const char *rcpt[] = {"bob@example.org"};

    fake_start(&f, false, &t);
    snprintf(url, sizeof url, "smtp://127.0.0.1:%d", f.port);
    qm_mailserver s = {.url = url, .username = "alice@example.org", .password = alice_pw,
                       .ca_file = get("MAIL_CA")};
    expect_rc(qm_smtp_send(&s, "alice@example.org", rcpt, 1, (const uint8_t *)"x\n", 2,
                                  detail, sizeof detail), QM_E_TRANSPORT);
    pthread_join(t, NULL);
    close(f.listen_fd);
    assert_false(f.saw_credentials);

    fake_start(&f, true, &t);
    snprintf(url, sizeof url, "imap://127.0.0.1:%d", f.port);
    qm_imap_entry *e;
    size_t n;
    expect_rc(qm_imap_list(&s, "INBOX", &e, &n, detail, sizeof detail), QM_E_TRANSPORT);
    pthread_join(t, NULL);
    close(f.listen_fd);
    assert_false(f.saw_credentials);
}

/* --- a hostile IMAPS server: the response reader under lies ----------- */

typedef enum hostile_mode {
    H_TRUNCATED,    /* literal of 100 bytes announced, 10 sent, connection closed */
    H_HUGE_LITERAL, /* a literal beyond any message size */
    H_LONG_LINE,    /* a response line of 2 MiB */
    H_OTHER_UID,    /* the body of another UID */
    H_TRICKY,       /* flag update first, a body that looks like a tagged OK */
    H_PREFIX_LONG,  /* a prefix fetch answered with more than was asked */
} hostile_mode;

typedef struct hostile {
    int listen_fd, port;
    hostile_mode mode;
    gnutls_certificate_credentials_t cred;
} hostile;

static void tls_say(gnutls_session_t s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tls_say(gnutls_session_t s, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    gnutls_record_send(s, buf, (size_t)n);
}

static bool tls_line(gnutls_session_t s, char *buf, size_t cap)
{
    size_t n = 0;
    char c;
    while (gnutls_record_recv(s, &c, 1) == 1) {
        if (c == '\n') {
            buf[n > 0 && buf[n - 1] == '\r' ? n - 1 : n] = '\0';
            return true;
        }
        if (n < cap - 1)
            buf[n++] = c;
    }
    return false;
}

static void hostile_fetch(gnutls_session_t s, hostile_mode mode, const char *tag)
{
    switch (mode) {
    case H_TRUNCATED:
        tls_say(s, "* 1 FETCH (UID 5 BODY[] {100}\r\n0123456789");
        break;
    case H_HUGE_LITERAL:
        tls_say(s, "* 1 FETCH (UID 5 BODY[] {99999999999}\r\n0123456789");
        break;
    case H_LONG_LINE: {
        static char chunk[65536];
        memset(chunk, 'x', sizeof chunk);
        tls_say(s, "* 1 FETCH (UID 5 ");
        for (int i = 0; i < 32; i++)
            if (gnutls_record_send(s, chunk, sizeof chunk) < 0)
                break;
        break;
    }
    case H_OTHER_UID:
        tls_say(s, "* 1 FETCH (UID 6 BODY[] {5}\r\nhello)\r\n%s OK done\r\n", tag);
        break;
    case H_PREFIX_LONG:
        tls_say(s, "* 1 FETCH (UID 5 BODY[]<0> {11}\r\n0123456789x)\r\n%s OK done\r\n", tag);
        break;
    case H_TRICKY:
        tls_say(s, "* 1 FETCH (FLAGS (\\Recent))\r\n* 1 FETCH (UID 5 BODY[] {15}\r\n"
                   "%s OK no\r\n* X)\r\n%s OK done\r\n", tag, tag);
        break;
    }
}

static void *hostile_main(void *arg)
{
    hostile *h = arg;
    int fd = accept(h->listen_fd, NULL, NULL);
    if (fd < 0)
        return NULL;
    gnutls_session_t s;
    gnutls_init(&s, GNUTLS_SERVER);
    gnutls_set_default_priority(s);
    gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, h->cred);
    gnutls_transport_set_int(s, fd);
    int r;
    do
        r = gnutls_handshake(s);
    while (r < 0 && !gnutls_error_is_fatal(r));
    if (r == 0) {
        tls_say(s, "* OK hostile IMAP\r\n");
        char line[1024], tag[64], cmd[64];
        while (tls_line(s, line, sizeof line)) {
            if (sscanf(line, "%63s %63s", tag, cmd) != 2)
                break;
            if (strcasecmp(cmd, "CAPABILITY") == 0)
                tls_say(s, "* CAPABILITY IMAP4rev1\r\n%s OK done\r\n", tag);
            else if (strcasecmp(cmd, "LOGIN") == 0)
                tls_say(s, "%s OK logged in\r\n", tag);
            else if (strcasecmp(cmd, "EXAMINE") == 0)
                tls_say(s, "* 1 EXISTS\r\n%s OK [READ-ONLY] done\r\n", tag);
            else if (strcasecmp(cmd, "UID") == 0) {
                hostile_fetch(s, h->mode, tag);
                if (h->mode != H_OTHER_UID && h->mode != H_TRICKY)
                    break;     /* the lie ends with a closed connection */
            } else if (strcasecmp(cmd, "LOGOUT") == 0) {
                tls_say(s, "* BYE\r\n%s OK bye\r\n", tag);
                break;
            } else
                tls_say(s, "%s BAD what\r\n", tag);
        }
    }
    gnutls_deinit(s);
    close(fd);
    return NULL;
}

static void test_hostile_imap(void **state)
{
    (void)state;
    char cert[4096], key[4096], url[64], detail[256];
    snprintf(cert, sizeof cert, "%s/pki/server.crt", getenv("MAILSERVERS_DIR"));
    snprintf(key, sizeof key, "%s/pki/server.key", getenv("MAILSERVERS_DIR"));
    static const struct { hostile_mode mode; qm_err want; } cases[] = {
        {H_TRUNCATED, QM_E_TRANSPORT}, {H_HUGE_LITERAL, QM_E_TRANSPORT},
        {H_LONG_LINE, QM_E_TRANSPORT}, {H_OTHER_UID, QM_E_NOT_FOUND}, {H_TRICKY, QM_OK},
        {H_PREFIX_LONG, QM_E_TRANSPORT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        hostile h = {.mode = cases[i].mode};
        assert_int_equal(gnutls_certificate_allocate_credentials(&h.cred), 0);
        assert_int_equal(gnutls_certificate_set_x509_key_file(h.cred, cert, key, GNUTLS_X509_FMT_PEM), 0);
        h.listen_fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t alen = sizeof a;
        assert_int_equal(bind(h.listen_fd, (struct sockaddr *)&a, sizeof a), 0);
        assert_int_equal(listen(h.listen_fd, 1), 0);
        assert_int_equal(getsockname(h.listen_fd, (struct sockaddr *)&a, &alen), 0);
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, hostile_main, &h), 0);

        snprintf(url, sizeof url, "imaps://127.0.0.1:%d", ntohs(a.sin_port));
        qm_mailserver s = {.url = url, .username = "bob@example.org", .password = "pw",
                           .ca_file = get("MAIL_CA")};
        uint8_t *m = NULL;
        size_t len = 0;
        if (cases[i].mode == H_PREFIX_LONG)   /* 11 bytes for a prefix of 10 */
            expect_rc(qm_imap_fetch_prefix(&s, "INBOX", "5", 10, &m, &len, detail, sizeof detail),
                      cases[i].want);
        else
            expect_rc(qm_imap_fetch(&s, "INBOX", "5", &m, &len, detail, sizeof detail),
                      cases[i].want);
        if (cases[i].want == QM_OK) {
            /* exactly the 15 bytes of the literal, "tag OK" look-alike included */
            assert_int_equal(len, 15);
            assert_memory_equal(m, "q2 OK no\r\n* X)\r", 15);
            free(m);
        } else {
            assert_null(m);
        }
        pthread_join(t, NULL);
        close(h.listen_fd);
        gnutls_certificate_free_credentials(h.cred);
    }
}

int main(void)
{
    load_env();
    read_password(get("MAIL_ALICE_PASSWORD_FILE"), alice_pw, sizeof alice_pw);
    read_password(get("MAIL_BOB_PASSWORD_FILE"), bob_pw, sizeof bob_pw);
    srand((unsigned)time(NULL));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_starttls_round_trip),
        cmocka_unit_test(test_implicit_tls_round_trip),
        cmocka_unit_test(test_crlf_input),
        cmocka_unit_test(test_wrong_password),
        cmocka_unit_test(test_closed_port),
        cmocka_unit_test(test_other_ca),
        cmocka_unit_test(test_unknown_uid),
        cmocka_unit_test(test_unknown_recipient),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_no_starttls_no_credentials),
        cmocka_unit_test(test_hostile_imap),
    };
    return cmocka_run_group_tests_name("mailserver", tests, NULL, NULL);
}
