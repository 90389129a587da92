/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_listener.c - attacks on the KME's HTTPS listener below the API:
 * request framing (smuggling), chunked bodies past the limit, and the TLS
 * 1.2 cipher suites (docs/kme.md "Identity and TLS", docs/security.md).
 *
 * Every request goes over a raw GnuTLS connection with SAE_A1's certificate
 * to KME-A's SAE API in a testbed (tests/system/run-with-testbed), so that
 * the test writes exactly the bytes an attacker would and sees every byte
 * the KME answers: how many responses, and whether the connection closed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>

#include "check.h"
#include "testbed_env.h"


#define MAX_BODY (64 * 1024)           /* the SAE API's body limit */
#define DRAIN_MAX (1024 * 1024)        /* dropped past it before the 413 */

static struct {
    char *dir, *ca, *cert, *key, *slave;
    int port;
} TB;

static char *env(const char *key)
{
    return testbed_env_value(TB.dir, key);
}

/* ---------------------------------------------------------- raw TLS client */

typedef struct tls_conn {
    int fd;
    gnutls_session_t s;
    gnutls_certificate_credentials_t cred;
    int handshake; /* gnutls code */
} tls_conn;

static int tcp_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = { 5, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* A TLS session to the SAE API as SAE_A1 under priority; c->handshake
 * says whether it came up. */
static void tls_open(tls_conn *c, const char *priority)
{
    memset(c, 0, sizeof *c);
    assert_int_equal(gnutls_certificate_allocate_credentials(&c->cred), 0);
    assert_true(gnutls_certificate_set_x509_trust_file(c->cred, TB.ca, GNUTLS_X509_FMT_PEM) > 0);
    assert_int_equal(gnutls_certificate_set_x509_key_file(c->cred, TB.cert, TB.key,
                                                          GNUTLS_X509_FMT_PEM), 0);
    assert_int_equal(gnutls_init(&c->s, GNUTLS_CLIENT), 0);
    const char *errpos = NULL;
    int prc = gnutls_priority_set_direct(c->s, priority, &errpos);
    CHECK(prc == 0, "priority %s refused at %s", priority, errpos ? errpos : "?");
    assert_int_equal(gnutls_credentials_set(c->s, GNUTLS_CRD_CERTIFICATE, c->cred), 0);
    gnutls_server_name_set(c->s, GNUTLS_NAME_DNS, "localhost", strlen("localhost"));
    gnutls_session_set_verify_cert(c->s, "localhost", 0);
    gnutls_handshake_set_timeout(c->s, 5000);
    c->fd = tcp_connect(TB.port);
    CHECK(c->fd >= 0, "cannot connect to 127.0.0.1:%d", TB.port);
    gnutls_transport_set_int(c->s, c->fd);
    int rc;
    do {
        rc = gnutls_handshake(c->s);
    } while (rc < 0 && gnutls_error_is_fatal(rc) == 0);
    c->handshake = rc;
}

static void tls_close(tls_conn *c)
{
    if (c->s)
        gnutls_deinit(c->s);
    if (c->fd >= 0)
        close(c->fd);
    if (c->cred)
        gnutls_certificate_free_credentials(c->cred);
    memset(c, 0, sizeof *c);
    c->fd = -1;
}

/* Bytes of data the connection took before an error (all of them if none). */
static size_t tls_send(tls_conn *c, const void *data, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t w = gnutls_record_send(c->s, (const char *)data + done, len - done);
        if (w == GNUTLS_E_AGAIN || w == GNUTLS_E_INTERRUPTED)
            continue;
        if (w <= 0)
            break;
        done += (size_t)w;
    }
    return done;
}

/* Everything the server sends until it closes (or 5 s of silence); *closed
 * tells which. */
static size_t tls_read_all(tls_conn *c, char *buf, size_t cap, bool *closed)
{
    size_t got = 0;
    *closed = false;
    for (;;) {
        ssize_t r = gnutls_record_recv(c->s, buf + got, cap - 1 - got);
        if (r == GNUTLS_E_INTERRUPTED)
            continue;
        if (r == GNUTLS_E_AGAIN) /* SO_RCVTIMEO: silent, still open */
            break;
        if (r <= 0) {
            *closed = true; /* close_notify, EOF or reset */
            break;
        }
        got += (size_t)r;
        if (got == cap - 1)
            break;
    }
    buf[got] = '\0';
    return got;
}

/* Status lines at the start of a line: the number of responses. */
static int count_responses(const char *buf)
{
    int n = 0;
    for (const char *p = buf; (p = strstr(p, "HTTP/1.1 ")) != NULL; p++)
        if (p == buf || p[-1] == '\n')
            n++;
    return n;
}

/* ----------------------------------------------------------------- framing */

#define ENC_PATH_FMT "POST /api/v1/keys/%s/enc_keys HTTP/1.1\r\nHost: localhost\r\n" \
                     "Content-Type: application/json\r\n"
#define BODY "{\"number\":1}" /* 12 bytes */

/* Send head + body, then a pipelined status request (the request a
 * smuggler would hide in the body); exactly one 400 with a JSON message and
 * Connection: close must come back, then the close. */
static void expect_refused_framing(const char *what, const char *framing, const char *body,
                                   bool json)
{
    char req[2048], buf[16384];
    snprintf(req, sizeof req, ENC_PATH_FMT "%s\r\n%sGET /api/v1/keys/%s/status HTTP/1.1\r\n"
             "Host: localhost\r\n\r\n", TB.slave, framing, body, TB.slave);
    tls_conn c;
    tls_open(&c, "NORMAL");
    CHECK(c.handshake == 0, "%s: handshake failed: %s", what, gnutls_strerror(c.handshake));
    tls_send(&c, req, strlen(req));
    bool closed;
    tls_read_all(&c, buf, sizeof buf, &closed);
    tls_close(&c);
    int status_len = (int)strcspn(buf, "\r\n"); /* never print a key */
    print_message("%s: %.*s\n", what, status_len, buf);
    CHECK(strncmp(buf, "HTTP/1.1 400 ", 13) == 0, "%s: not a 400: %.*s", what, status_len, buf);
    CHECK(strstr(buf, "\"keys\"") == NULL, "%s: a key was delivered", what);
    CHECK(closed, "%s: the connection stayed open after the 400", what);
    if (!json) /* answered by libmicrohttpd itself (docs/kme.md) */
        return;
    CHECK(count_responses(buf) == 1, "%s: %d responses, want 1: %s", what, count_responses(buf), buf);
    CHECK(strcasestr(buf, "\r\nConnection: close\r\n") != NULL, "%s: no Connection: close: %s", what, buf);
    CHECK(strstr(buf, "\r\n\r\n{\"message\":\"") != NULL, "%s: no JSON message: %s", what, buf);
}

static void test_repeated_content_length(void **state)
{
    (void)state;
    expect_refused_framing("two Content-Length: 12", "Content-Length: 12\r\nContent-Length: 12\r\n",
                           BODY, true);
    expect_refused_framing("Content-Length 12 then 40", "Content-Length: 12\r\nContent-Length: 40\r\n",
                           BODY, true);
}

/* libmicrohttpd refuses a Content-Length that is not one decimal number
 * before the KME sees the request: still a 400 and a close, and the
 * pipelined request is never answered. */
static void test_content_length_list(void **state)
{
    (void)state;
    expect_refused_framing("Content-Length: 12, 12", "Content-Length: 12, 12\r\n", BODY, false);
}

static void test_content_length_and_chunked(void **state)
{
    (void)state;
    expect_refused_framing("Content-Length + chunked",
                           "Content-Length: 12\r\nTransfer-Encoding: chunked\r\n",
                           "c\r\n" BODY "\r\n0\r\n\r\n", true);
    expect_refused_framing("chunked + Content-Length",
                           "Transfer-Encoding: chunked\r\nContent-Length: 17\r\n",
                           "c\r\n" BODY "\r\n0\r\n\r\n", true);
}

static void test_unknown_transfer_coding(void **state)
{
    (void)state;
    static const char *const codings[] = { "gzip, chunked", "chunked, identity", "identity",
                                           "xchunked", "chunked;q=1" };
    for (size_t i = 0; i < sizeof codings / sizeof *codings; i++) {
        char framing[128];
        snprintf(framing, sizeof framing, "Transfer-Encoding: %s\r\n", codings[i]);
        expect_refused_framing(codings[i], framing, "c\r\n" BODY "\r\n0\r\n\r\n", true);
    }
    expect_refused_framing("Transfer-Encoding twice",
                           "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
                           "c\r\n" BODY "\r\n0\r\n\r\n", true);
}

/* Positive control: the same request framed once is served. */
static void test_single_framing_served(void **state)
{
    (void)state;
    static const char *const framings[] = { "Content-Length: 12\r\n", "Transfer-Encoding: chunked\r\n" };
    static const char *const bodies[] = { BODY, "c\r\n" BODY "\r\n0\r\n\r\n" };
    for (int i = 0; i < 2; i++) {
        char req[1024], buf[8192];
        snprintf(req, sizeof req, ENC_PATH_FMT "%sConnection: close\r\n\r\n%s", TB.slave,
                 framings[i], bodies[i]);
        tls_conn c;
        tls_open(&c, "NORMAL");
        CHECK(c.handshake == 0, "handshake failed: %s", gnutls_strerror(c.handshake));
        tls_send(&c, req, strlen(req));
        bool closed;
        tls_read_all(&c, buf, sizeof buf, &closed);
        tls_close(&c);
        CHECK(strncmp(buf, "HTTP/1.1 200 ", 13) == 0, "%s: %.*s", framings[i],
              (int)strcspn(buf, "\r\n"), buf);
        CHECK(count_responses(buf) == 1, "%s: %d responses", framings[i], count_responses(buf));
    }
}

/* ------------------------------------------------------- chunked body size */

/* A status call on a fresh connection answers 200: the KME still serves. */
static void expect_serving(const char *when)
{
    char req[512], buf[8192];
    snprintf(req, sizeof req, "GET /api/v1/keys/%s/status HTTP/1.1\r\nHost: localhost\r\n"
             "Connection: close\r\n\r\n", TB.slave);
    tls_conn c;
    tls_open(&c, "NORMAL");
    CHECK(c.handshake == 0, "%s: handshake failed: %s", when, gnutls_strerror(c.handshake));
    tls_send(&c, req, strlen(req));
    bool closed;
    tls_read_all(&c, buf, sizeof buf, &closed);
    tls_close(&c);
    CHECK(strncmp(buf, "HTTP/1.1 200 ", 13) == 0, "%s: status answered %.100s", when, buf);
}

/* Send a chunked body of total bytes in 64 KiB chunks; the bytes the
 * connection took, and the answer. */
static size_t send_chunked(tls_conn *c, size_t total, char *answer, size_t cap, bool *closed)
{
    char head[512];
    snprintf(head, sizeof head, ENC_PATH_FMT "Transfer-Encoding: chunked\r\n\r\n", TB.slave);
    tls_send(c, head, strlen(head));
    enum { CHUNK = 64 * 1024 };
    static char chunk[16 + CHUNK + 2];
    int hl = snprintf(chunk, 16, "%x\r\n", (unsigned)CHUNK);
    memset(chunk + hl, ' ', CHUNK);
    memcpy(chunk + hl + CHUNK, "\r\n", 2);
    size_t sent = 0, one = (size_t)hl + CHUNK + 2;
    while (sent < total) {
        size_t w = tls_send(c, chunk, one);
        sent += w;
        if (w < one)
            break; /* the KME closed */
    }
    if (sent >= total)
        tls_send(c, "0\r\n\r\n", 5);
    tls_read_all(c, answer, cap, closed);
    return sent;
}

/* 40 MiB chunked: the KME stops reading past limit + DRAIN_MAX and closes
 * (before: it read all 40 MiB, then answered 413). */
static void test_chunked_body_bounded(void **state)
{
    (void)state;
    const size_t total = 40u * 1024 * 1024;
    /* What can sit in socket buffers beyond what the KME read: the
     * loopback receive window grows to a few MiB at most while the KME
     * keeps reading; 12 MiB leaves room and is far below 40. */
    const size_t bound = MAX_BODY + DRAIN_MAX + 12u * 1024 * 1024;
    tls_conn c;
    tls_open(&c, "NORMAL");
    CHECK(c.handshake == 0, "handshake failed: %s", gnutls_strerror(c.handshake));
    int small = 64 * 1024;
    setsockopt(c.fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    char answer[8192];
    bool closed;
    size_t sent = send_chunked(&c, total, answer, sizeof answer, &closed);
    tls_close(&c);
    print_message("chunked 40 MiB: the KME took %zu bytes, then %s\n", sent,
                  answer[0] ? "answered" : "closed");
    CHECK(sent <= bound, "the KME read %zu bytes of a chunked body (limit %d + %d)", sent,
          MAX_BODY, DRAIN_MAX);
    CHECK(answer[0] == '\0' || strncmp(answer, "HTTP/1.1 413 ", 13) == 0,
          "answer to an oversized chunked body: %.200s", answer);
    CHECK(closed || answer[0], "neither an answer nor a close");
    expect_serving("after a 40 MiB chunked body");
}

/* Just past the limit: read, dropped, then the JSON 413. */
static void test_chunked_body_413(void **state)
{
    (void)state;
    tls_conn c;
    tls_open(&c, "NORMAL");
    CHECK(c.handshake == 0, "handshake failed: %s", gnutls_strerror(c.handshake));
    char answer[8192];
    bool closed;
    size_t total = MAX_BODY + 128 * 1024;
    size_t sent = send_chunked(&c, total, answer, sizeof answer, &closed);
    tls_close(&c);
    CHECK(sent >= total, "the KME took only %zu of %zu bytes", sent, total);
    CHECK(strncmp(answer, "HTTP/1.1 413 ", 13) == 0, "answer: %.200s", answer);
    CHECK(strstr(answer, "{\"message\":\"request body too large") != NULL, "answer: %s", answer);
    CHECK(count_responses(answer) == 1, "%d responses", count_responses(answer));
}

/* -------------------------------------------------------------- TLS suites */

static void expect_tls(const char *what, const char *priority, bool works)
{
    tls_conn c;
    tls_open(&c, priority);
    int hs = c.handshake;
    char name[128] = "";
    if (hs == 0)
        snprintf(name, sizeof name, "%s", gnutls_cipher_suite_get_name(gnutls_kx_get(c.s),
                 gnutls_cipher_get(c.s), gnutls_mac_get(c.s)) ?: "?");
    tls_close(&c);
    print_message("%s: %s\n", what, hs == 0 ? name : gnutls_strerror(hs));
    if (works)
        CHECK(hs == 0, "%s: handshake failed: %s", what, gnutls_strerror(hs));
    else
        CHECK(hs < 0, "%s: handshake succeeded with %s", what, name);
}

static void test_tls12_suites(void **state)
{
    (void)state;
    expect_tls("TLS 1.2 CBC suites only",
               "NORMAL:-VERS-ALL:+VERS-TLS1.2:-CIPHER-ALL:+AES-128-CBC:+AES-256-CBC"
               ":-MAC-ALL:+SHA1:+SHA256:+SHA384", false);
    expect_tls("TLS 1.2 RSA key exchange only", "NORMAL:-VERS-ALL:+VERS-TLS1.2:-KX-ALL:+RSA", false);
    expect_tls("TLS 1.2 ECDHE AES-128-GCM", "NORMAL:-VERS-ALL:+VERS-TLS1.2:-CIPHER-ALL:+AES-128-GCM"
               ":-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA", true);
    expect_tls("TLS 1.2 ECDHE AES-256-GCM", "NORMAL:-VERS-ALL:+VERS-TLS1.2:-CIPHER-ALL:+AES-256-GCM"
               ":-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA", true);
    expect_tls("TLS 1.3", "NORMAL:-VERS-ALL:+VERS-TLS1.3", true);
}

/* -------------------------------------------------------------------- main */

static int load_testbed(void)
{
    const char *dir = getenv("TESTBED_DIR");
    if (!dir || !*dir) {
        fprintf(stderr, "TESTBED_DIR is not set: run through tests/system/run-with-testbed\n");
        return -1;
    }
    TB.dir = strdup(dir);
    TB.ca = env("CA_CERT");
    TB.cert = env("SAE_A1_CERT");
    TB.key = env("SAE_A1_KEY");
    TB.slave = env("SAE_A2_ID");
    char *url = env("KME_A_URL");
    const char *colon = url ? strrchr(url, ':') : NULL;
    TB.port = colon ? atoi(colon + 1) : 0;
    free(url);
    if (!TB.ca || !TB.cert || !TB.key || !TB.slave || TB.port <= 0) {
        fprintf(stderr, "%s/testbed.env lacks CA_CERT, SAE_A1_*, SAE_A2_ID or KME_A_URL\n", dir);
        return -1;
    }
    return 0;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (load_testbed() != 0 || gnutls_global_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_framing_served),
        cmocka_unit_test(test_repeated_content_length),
        cmocka_unit_test(test_content_length_list),
        cmocka_unit_test(test_content_length_and_chunked),
        cmocka_unit_test(test_unknown_transfer_coding),
        cmocka_unit_test(test_chunked_body_413),
        cmocka_unit_test(test_chunked_body_bounded),
        cmocka_unit_test(test_tls12_suites),
    };
    const char *filter = getenv("TEST_FILTER");
    if (filter && *filter)
        cmocka_set_test_filter(filter);
    int rc = cmocka_run_group_tests_name("KME listener: framing, body size, TLS", tests, NULL, NULL);
    gnutls_global_deinit();
    return rc;
}
