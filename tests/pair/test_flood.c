/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_flood.c - connection floods against every listener of a KME, on a
 * pair testbed (KME-A, KME-B, the link; tests/system/run-with-testbed).
 *
 * What: 2,000 TCP connections that never authenticate (most idle, some
 * sending one byte of a ClientHello a second, each reopened as soon as the
 * KME closes it) are held against KME-A's SAE API, KME-B's peer listener
 * and KME-A's link listener in turn, while the legitimate party of that
 * listener keeps being served on fresh connections within a second: an SAE
 * through libqkd014, KME-A's certificate at KME-B's peer listener and a
 * cross-KME enc_keys (which KME-A sends through that listener), the link's
 * certificate at the link listener.  Every flood connection the KME closes
 * must have been closed by handshake_timeout_ms + 1 s (libmicrohttpd's own
 * timeout is 60 s and idle-based).  An address outside the peer
 * listener's allow_from (127.0.0.2) is dropped before TLS.  Afterwards the
 * KME's log holds a few aggregated lines about the flood, whose counts add
 * up to the connections the flood made, instead of a line per connection.
 * With [sae_api] per_ip_limit set (KME-A restarted on an edited
 * configuration), one address holds no more connections than that.
 *
 * Before this test's change the 2,000 connections took all 1,024 slots of
 * a listener for 60 s and every legitimate call timed out.  Slacks are
 * tripled under sanitizers (QC_SANITIZED=1, set by meson).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "qkd014.h"
#include "check.h"
#include "testbed_env.h"


#define FLOOD_SOCKETS 2000
#define FLOOD_SLOW 200          /* of them: one byte a second */
#define FLOOD_SECONDS 4         /* legitimate calls while the flood holds */
#define HANDSHAKE_TIMEOUT_MS 3000 /* the default; the testbed leaves it */
#define LOG_INTERVAL_S 10       /* of the aggregated failure lines */

static struct {
    char *dir, *ca, *sae_ca;
    char *kme_a_url, *kme_a_id, *kme_a_cert, *kme_a_key;
    int sae_port_a, peer_port_b, link_port_a;
    char *link_cert, *link_key;
    char *a1_id, *a1_cert, *a1_key, *a2_id, *b1_id, *b1_cert, *b1_key;
    char *kme_b_url, *kme_b_id;
    int slack; /* 3 under sanitizers */
} TB;

static char *env(const char *key)
{
    return testbed_env_value(TB.dir, key);
}

static int port_of(const char *url)
{
    const char *colon = url ? strrchr(url, ':') : NULL;
    return colon ? atoi(colon + 1) : 0;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    struct timespec d = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };
    nanosleep(&d, NULL);
}

/* ------------------------------------------------------------------ flood */

typedef struct flood {
    const char *src;            /* source address to bind */
    int port;
    int reopen_ms;              /* a closed socket is reopened after this */
    atomic_bool stop;
    /* results (read after join) */
    unsigned long opened;       /* connections made */
    unsigned long server_closed;
    int64_t longest_ms;         /* longest life of one the KME closed */
    pthread_t thread;
} flood;

typedef struct flood_sock {
    int fd;                     /* -1: closed, reopened at reopen_ms */
    int64_t opened_ms, next_byte_ms, reopen_ms;
    size_t bytes_sent;
} flood_sock;

#define REOPEN_MS 500 /* a closed socket is reopened after this: the flood
                         holds its sockets without burning the shared CPU */

/* A ClientHello record header and the start of its body: bytes a real
 * handshake begins with, sent one at a time. */
static const unsigned char HELLO[] = { 0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc,
                                       0x03, 0x03, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66 };

static int flood_connect(const flood *f)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in src = { .sin_family = AF_INET };
    inet_pton(AF_INET, f->src, &src.sin_addr);
    struct sockaddr_in dst = { .sin_family = AF_INET, .sin_port = htons((uint16_t)f->port) };
    dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&src, sizeof src) != 0
        || (connect(fd, (struct sockaddr *)&dst, sizeof dst) != 0 && errno != EINPROGRESS)) {
        close(fd);
        return -1;
    }
    return fd;
}

static void flood_open(flood *f, flood_sock *s, int64_t now)
{
    s->fd = flood_connect(f);
    s->reopen_ms = now + f->reopen_ms;
    s->opened_ms = now;
    s->next_byte_ms = now + 1000;
    s->bytes_sent = 0;
    if (s->fd >= 0)
        f->opened++;
}

/* A socket the KME ended (EOF, reset) is counted and opened again soon. */
static void flood_check(flood *f, flood_sock *s, short revents, int64_t now)
{
    if (!(revents & (POLLIN | POLLHUP | POLLERR)))
        return;
    char b[256];
    ssize_t r = recv(s->fd, b, sizeof b, 0);
    if (r > 0 || (r < 0 && (errno == EAGAIN || errno == EINTR)))
        return; /* an alert or data: wait for the close */
    close(s->fd);
    s->fd = -1;
    s->reopen_ms = now + f->reopen_ms;
    f->server_closed++;
    if (now - s->opened_ms > f->longest_ms)
        f->longest_ms = now - s->opened_ms;
}

static void *flood_run(void *arg)
{
    flood *f = arg;
    static flood_sock socks[FLOOD_SOCKETS];
    static struct pollfd pfd[FLOOD_SOCKETS];
    int64_t now = now_ms();
    for (int i = 0; i < FLOOD_SOCKETS; i++)
        flood_open(f, &socks[i], now);
    while (!atomic_load(&f->stop)) {
        for (int i = 0; i < FLOOD_SOCKETS; i++)
            pfd[i] = (struct pollfd){ .fd = socks[i].fd, .events = POLLIN };
        poll(pfd, FLOOD_SOCKETS, 100);
        now = now_ms();
        for (int i = 0; i < FLOOD_SOCKETS; i++) {
            flood_sock *s = &socks[i];
            if (s->fd < 0) {
                if (now >= s->reopen_ms)
                    flood_open(f, s, now);
                continue;
            }
            flood_check(f, s, pfd[i].revents, now);
            if (i < FLOOD_SLOW && s->fd >= 0 && now >= s->next_byte_ms && s->bytes_sent < sizeof HELLO) {
                if (send(s->fd, HELLO + s->bytes_sent, 1, MSG_NOSIGNAL) == 1)
                    s->bytes_sent++;
                s->next_byte_ms = now + 1000;
            }
        }
    }
    for (int i = 0; i < FLOOD_SOCKETS; i++)
        if (socks[i].fd >= 0)
            close(socks[i].fd);
    return NULL;
}

/* The flood whose thread runs, if any: a test that fails mid-flood leaves
 * through cmocka's longjmp, and stop_running_flood (each test's teardown)
 * ends that thread before the next test.  Floods are static for the same
 * reason: the thread never outlives the memory it uses. */
static flood *running_flood;

static void flood_start(flood *f, const char *src, int port, int reopen_ms)
{
    memset(f, 0, sizeof *f);
    f->src = src;
    f->port = port;
    f->reopen_ms = reopen_ms;
    atomic_init(&f->stop, false);
    assert_int_equal(pthread_create(&f->thread, NULL, flood_run, f), 0);
    running_flood = f;
    sleep_ms(500); /* the sockets are open and waiting */
}

static void flood_join(flood *f)
{
    atomic_store(&f->stop, true);
    pthread_join(f->thread, NULL);
    running_flood = NULL;
}

static int stop_running_flood(void **state)
{
    (void)state;
    if (running_flood)
        flood_join(running_flood);
    return 0;
}

/* Stop, and check that the KME closed flood connections by the deadline. */
static void flood_stop(flood *f, const char *what)
{
    flood_join(f);
    print_message("%s: %lu connections from %s, %lu closed by the KME, the longest after %lld ms\n",
                  what, f->opened, f->src, f->server_closed, (long long)f->longest_ms);
    CHECK(f->opened >= FLOOD_SOCKETS, "%s: only %lu flood connections opened", what, f->opened);
    CHECK(f->server_closed > 0, "%s: the KME closed no flood connection in %d s", what, FLOOD_SECONDS);
    int64_t bound = HANDSHAKE_TIMEOUT_MS + 1000L * TB.slack;
    CHECK(f->longest_ms <= bound, "%s: a flood connection lived %lld ms (deadline %d ms)", what,
          (long long)f->longest_ms, HANDSHAKE_TIMEOUT_MS);
}

/* ------------------------------------------------------ legitimate parties */

static size_t discard(char *p, size_t sz, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return sz * n;
}

/* One request on a fresh connection with a client certificate: the HTTP
 * status, or 0 (no answer within 5 s; why says what happened). */
static long https_status(const char *url, const char *cert, const char *key, char *why,
                         size_t whylen)
{
    CURL *h = curl_easy_init();
    long status = 0;
    if (!h)
        return 0;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CAINFO, TB.ca);
    curl_easy_setopt(h, CURLOPT_SSLCERT, cert);
    curl_easy_setopt(h, CURLOPT_SSLKEY, key);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(h, CURLOPT_FORBID_REUSE, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    CURLcode cc = curl_easy_perform(h);
    if (cc == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    snprintf(why, whylen, "HTTP %ld (%s)", status, curl_easy_strerror(cc));
    curl_easy_cleanup(h);
    return status;
}

/* A libqkd014 client (one fresh connection) of an SAE at a KME. */
static qkd014_client *sae_client(const char *url, const char *kme_id, const char *cert,
                                 const char *key)
{
    qkd014_options o = { .version = QKD014_OPTIONS_VERSION,
                         .kme_url = url, .cert_file = cert, .key_file = key, .ca_file = TB.ca,
                         .expected_kme_id = kme_id, .connect_timeout_ms = 5000,
                         .timeout_ms = 5000 };
    qkd014_client *c = NULL;
    qkd014_code rc = qkd014_client_new(&o, &c);
    CHECK(rc == QKD014_OK, "client for %s: %s", url, qkd014_strerror(rc));
    return c;
}

typedef bool (*legit_call)(char *why, size_t whylen);

/* One legitimate call: it must succeed within 1 s (3 s under sanitizers);
 * its time in ms. */
static int64_t timed_call(const char *what, int number, legit_call call)
{
    char why[256] = "";
    int64_t t0 = now_ms();
    bool ok = call(why, sizeof why);
    int64_t took = now_ms() - t0;
    if (getenv("FLOOD_VERBOSE")) /* each call's time, for tuning */
        print_message("  %s call %d: %lld ms\n", what, number, (long long)took);
    CHECK(ok, "%s: call %d failed after %lld ms: %s", what, number, (long long)took, why);
    CHECK(took <= 1000L * TB.slack, "%s: call %d took %lld ms", what, number, (long long)took);
    return took;
}

/* The n calls in turn (each on fresh connections), a round every 250 ms
 * for FLOOD_SECONDS. */
static void keep_serving(const char *what, const legit_call *each, size_t n)
{
    int64_t end = now_ms() + FLOOD_SECONDS * 1000L, worst = 0;
    int calls = 0;
    while (now_ms() < end) {
        for (size_t i = 0; i < n; i++) {
            int64_t took = timed_call(what, ++calls, each[i]);
            if (took > worst)
                worst = took;
        }
        sleep_ms(250);
    }
    print_message("%s: %d calls served during the flood, the slowest in %lld ms\n", what, calls,
                  (long long)worst);
}

static bool sae_status_call(char *why, size_t whylen)
{
    qkd014_client *c = sae_client(TB.kme_a_url, TB.kme_a_id, TB.a1_cert, TB.a1_key);
    qkd014_status *st = NULL;
    qkd014_code rc = qkd014_get_status(c, TB.a2_id, &st);
    if (rc != QKD014_OK)
        snprintf(why, whylen, "%s: %s", qkd014_strerror(rc), qkd014_errmsg(c));
    qkd014_status_free(st);
    qkd014_client_free(c);
    return rc == QKD014_OK;
}

/* KME-A's own certificate at KME-B's peer listener: authenticated and
 * answered (404 JSON for a path that is no peer call). */
static bool peer_fresh_call(char *why, size_t whylen)
{
    char url[512];
    snprintf(url, sizeof url, "https://localhost:%d/peer/v1/flood-test", TB.peer_port_b);
    return https_status(url, TB.kme_a_cert, TB.kme_a_key, why, whylen) == 404;
}

/* A cross-KME pair: enc_keys at KME-A (reserved at KME-B through its peer
 * listener; the key ID is kept for the next call) ... */
static char CROSS_KEY_ID[QKD014_KEY_ID_LEN + 1];

static bool cross_enc_call(char *why, size_t whylen)
{
    qkd014_client *m = sae_client(TB.kme_a_url, TB.kme_a_id, TB.a1_cert, TB.a1_key);
    qkd014_keys *k = NULL;
    qkd014_code rc = qkd014_get_key(m, TB.b1_id, NULL, &k);
    if (rc != QKD014_OK)
        snprintf(why, whylen, "enc_keys: %s: %s", qkd014_strerror(rc), qkd014_errmsg(m));
    else
        snprintf(CROSS_KEY_ID, sizeof CROSS_KEY_ID, "%s", k->keys[0].key_id);
    qkd014_client_free(m);
    qkd014_keys_free(k);
    return rc == QKD014_OK;
}

/* ... then the slave's dec_keys at KME-B. */
static bool cross_dec_call(char *why, size_t whylen)
{
    qkd014_client *s = sae_client(TB.kme_b_url, TB.kme_b_id, TB.b1_cert, TB.b1_key);
    qkd014_keys *got = NULL;
    const char *id = CROSS_KEY_ID;
    qkd014_code rc = qkd014_get_key_with_ids(s, TB.a1_id, &id, 1, &got);
    if (rc != QKD014_OK)
        snprintf(why, whylen, "dec_keys: %s: %s", qkd014_strerror(rc), qkd014_errmsg(s));
    qkd014_client_free(s);
    qkd014_keys_free(got);
    return rc == QKD014_OK;
}

/* The link's certificate at KME-A's link listener. */
static bool link_call(char *why, size_t whylen)
{
    char url[512];
    snprintf(url, sizeof url, "https://localhost:%d/link/v1/state", TB.link_port_a);
    return https_status(url, TB.link_cert, TB.link_key, why, whylen) == 200;
}

/* ------------------------------------------------------------------ tests */

static flood SAE_FLOOD; /* its counts are checked against the log */
static long SAE_LOG_FROM;  /* size of KME-A's log before it */

static long file_size(const char *path)
{
    FILE *fp = fopen(path, "r");
    long n = 0;
    if (fp && fseek(fp, 0, SEEK_END) == 0)
        n = ftell(fp);
    if (fp)
        fclose(fp);
    return n;
}

static void kme_a_log(char *out, size_t len)
{
    snprintf(out, len, "%s/kme-a.log", TB.dir);
}

static void test_sae_api_flood(void **state)
{
    (void)state;
    char log[4096];
    kme_a_log(log, sizeof log);
    SAE_LOG_FROM = file_size(log);
    flood_start(&SAE_FLOOD, "127.0.0.2", TB.sae_port_a, REOPEN_MS);
    static const legit_call calls[] = { sae_status_call };
    keep_serving("SAE API of KME-A", calls, 1);
    flood_stop(&SAE_FLOOD, "SAE API flood");
}

/* From 127.0.0.2, outside the listener's allow_from (by default the
 * peers' hosts): dropped at accept, before TLS. */
static void test_peer_api_flood(void **state)
{
    (void)state;
    static flood f;
    flood_start(&f, "127.0.0.2", TB.peer_port_b, REOPEN_MS);
    static const legit_call calls[] = { peer_fresh_call, cross_enc_call, cross_dec_call };
    keep_serving("peer listener of KME-B", calls, 3);
    flood_stop(&f, "peer listener flood");
}

/* From 127.0.0.2, inside the link listener's allow_from (loopback): more
 * sockets than its unauthenticated budget, so the flood pushes out its own
 * oldest connections, never the link's. */
static void test_link_flood(void **state)
{
    (void)state;
    static flood f;
    flood_start(&f, "127.0.0.2", TB.link_port_a, REOPEN_MS);
    static const legit_call calls[] = { link_call };
    keep_serving("link listener of KME-A", calls, 1);
    flood_stop(&f, "link listener flood");
}

/* From 127.0.0.1, the link's own address: more held sockets than the
 * link listener's unauthenticated budget, from the very address of the
 * legitimate client.  Pushing out the oldest spares the link's handshakes
 * (milliseconds old) as long as the flood does not open a whole budget of
 * connections within one of them; a flood that churns that fast from the
 * same address is the limit docs/security.md names. */
static void test_same_address_flood(void **state)
{
    (void)state;
    static flood f;
    flood_start(&f, "127.0.0.1", TB.link_port_a, REOPEN_MS);
    static const legit_call calls[] = { link_call };
    keep_serving("link listener of KME-A, flood from its own address", calls, 1);
    flood_stop(&f, "same-address flood");
}

/* A connection from outside allow_from is closed at once, before any TLS
 * byte; from an allowed address the same bare connection is kept waiting
 * for a ClientHello. */
static void test_allow_from(void **state)
{
    (void)state;
    flood f = { .src = "127.0.0.2", .port = TB.peer_port_b };
    static const char *const srcs[] = { "127.0.0.2", "127.0.0.1" };
    for (int i = 0; i < 2; i++) {
        f.src = srcs[i];
        int fd = flood_connect(&f);
        CHECK(fd >= 0, "connect from %s: %s", srcs[i], strerror(errno));
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int64_t t0 = now_ms();
        int n = poll(&p, 1, 1000);
        char b[64];
        ssize_t r = n > 0 ? recv(fd, b, sizeof b, 0) : -1;
        close(fd);
        if (i == 0)
            CHECK(n == 1 && r <= 0 && now_ms() - t0 < 1000,
                  "from 127.0.0.2 (not in allow_from): not closed at once (poll %d, recv %zd)", n, r);
        else
            CHECK(n == 0, "from 127.0.0.1 (allowed): closed or answered before any ClientHello");
    }
}

/* Sum of N in "sae_api: N connection(s) from ADDR closed before
 * authenticating" lines of the log, and the number of such lines and of
 * all sae_api lines written after byte offset from. */
static void log_counts(const char *log, long from, const char *addr, unsigned long *sum,
                       int *lines, int *all)
{
    *sum = 0;
    *lines = *all = 0;
    FILE *fp = fopen(log, "r");
    if (!fp)
        return;
    fseek(fp, from, SEEK_SET);
    char line[4096], pat[128];
    snprintf(pat, sizeof pat, " from %s closed before authenticating", addr);
    while (fgets(line, sizeof line, fp)) {
        const char *p = strstr(line, "sae_api: ");
        if (!p)
            continue;
        (*all)++;
        if (strstr(line, pat)) {
            (*lines)++;
            *sum += strtoul(p + strlen("sae_api: "), NULL, 10);
        }
    }
    fclose(fp);
}

/* The SAE API flood left a few aggregated lines whose counts add up to
 * every connection it made, not a line per connection. */
static void test_failure_log_aggregated(void **state)
{
    (void)state;
    char log[4096];
    kme_a_log(log, sizeof log);
    unsigned long sum = 0;
    int lines = 0, all = 0;
    int64_t end = now_ms() + (LOG_INTERVAL_S + 2L * TB.slack) * 1000;
    while (now_ms() < end) {
        log_counts(log, SAE_LOG_FROM, "127.0.0.2", &sum, &lines, &all);
        if (sum >= SAE_FLOOD.opened)
            break;
        sleep_ms(250);
    }
    print_message("kme-a.log: %d lines about the flood from 127.0.0.2, %lu connections counted "
                  "(%lu made); %d sae_api lines in all\n", lines, sum, SAE_FLOOD.opened, all);
    CHECK(SAE_FLOOD.opened >= FLOOD_SOCKETS, "the SAE API flood did not run");
    CHECK(sum == SAE_FLOOD.opened, "the log counts %lu connections from 127.0.0.2, the flood made %lu",
          sum, SAE_FLOOD.opened);
    /* one line per address and 10 s interval: the flood ran about 6 s */
    CHECK(lines >= 1 && lines <= 3, "%d aggregated lines for one address", lines);
    CHECK(all <= 60, "%d sae_api lines for %lu connections: not aggregated", all, sum);
}

/* Run scripts/testbed CMD DIR PART; its exit status. */
static int testbed_cmd(const char *cmd, const char *part)
{
    const char *script = getenv("TESTBED_SCRIPT");
    if (!script)
        return -1;
    char line[8192];
    snprintf(line, sizeof line, "'%s' %s '%s' %s >>'%s/flood-test-testbed.log' 2>&1", script, cmd,
             TB.dir, part, TB.dir);
    int rc = system(line);
    return rc == -1 ? -1 : WIFEXITED(rc) ? WEXITSTATUS(rc) : 128 + WTERMSIG(rc);
}

/* KME-A's configuration with line inserted after "[sae_api]" (NULL: as it
 * was), and KME-A restarted on it. */
static void restart_kme_a_with(const char *conf, const char *original, const char *line)
{
    FILE *fp = fopen(conf, "w");
    CHECK(fp != NULL, "cannot write %s", conf);
    const char *cut = line ? strstr(original, "[sae_api]") : NULL;
    if (cut) {
        cut = strchr(cut, '\n') + 1;
        fwrite(original, 1, (size_t)(cut - original), fp);
        fputs(line, fp);
        fputs(cut, fp);
    } else {
        fputs(original, fp);
    }
    fclose(fp);
    CHECK(testbed_cmd("stop", "kme-a") == 0, "scripts/testbed stop kme-a failed (%s/flood-test-testbed.log)", TB.dir);
    CHECK(testbed_cmd("start", "kme-a") == 0, "scripts/testbed start kme-a failed (%s/flood-test-testbed.log)", TB.dir);
}

static char *read_text(const char *path)
{
    FILE *fp = fopen(path, "r");
    if (!fp)
        return NULL;
    static char text[65536];
    size_t n = fread(text, 1, sizeof text - 1, fp);
    fclose(fp);
    text[n] = '\0';
    return strdup(text);
}

/* [sae_api] per_ip_limit = 20: of 25 bare connections from 127.0.0.2 the
 * KME closes 5 at once and keeps 20 (until their deadline); an SAE on
 * 127.0.0.1 is served meanwhile.  (The testbed leaves the limit off.) */
static void test_per_ip_limit(void **state)
{
    (void)state;
    char *conf = env("KME_A_CONF");
    char *original = conf ? read_text(conf) : NULL;
    CHECK(original != NULL, "cannot read KME_A_CONF");
    restart_kme_a_with(conf, original, "per_ip_limit = 20\n");
    flood f = { .src = "127.0.0.2", .port = TB.sae_port_a };
    int fds[25], closed = 0;
    for (int i = 0; i < 25; i++)
        fds[i] = flood_connect(&f);
    sleep_ms(300L * TB.slack);
    for (int i = 0; i < 25; i++) {
        struct pollfd p = { .fd = fds[i], .events = POLLIN };
        char b[16];
        if (fds[i] < 0 || (poll(&p, 1, 0) == 1 && recv(fds[i], b, sizeof b, 0) <= 0))
            closed++;
    }
    char why[256] = "";
    bool served = sae_status_call(why, sizeof why);
    for (int i = 0; i < 25; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    restart_kme_a_with(conf, original, NULL);
    free(original);
    free(conf);
    CHECK(closed == 5, "per_ip_limit 20: %d of 25 connections from one address closed at once", closed);
    CHECK(served, "an SAE on another address was not served: %s", why);
}

/* No KME reported a sanitizer finding or a failed assertion while it was
 * flooded (sanitizer builds; a crash would have failed the calls). */
static void test_logs_clean(void **state)
{
    (void)state;
    static const char *const logs[] = { "kme-a.log", "kme-b.log" };
    static const char *const bad[] = { "ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                                       "runtime error:", "Assertion `" };
    for (size_t i = 0; i < 2; i++) {
        char path[4096], line[4096];
        snprintf(path, sizeof path, "%s/%s", TB.dir, logs[i]);
        FILE *fp = fopen(path, "r");
        CHECK(fp != NULL, "cannot read %s", path);
        while (fgets(line, sizeof line, fp))
            for (size_t j = 0; j < sizeof bad / sizeof *bad; j++)
                CHECK(strstr(line, bad[j]) == NULL, "%s: %s", path, line);
        fclose(fp);
    }
}

/* ------------------------------------------------------------------- main */

static int load_testbed(void)
{
    const char *dir = getenv("TESTBED_DIR");
    if (!dir || !*dir) {
        fprintf(stderr, "TESTBED_DIR is not set: run through tests/system/run-with-testbed\n");
        return 1;
    }
    TB.dir = strdup(dir);
    char *mode = env("TESTBED_MODE");
    bool pair = mode && strcmp(mode, "pair") == 0;
    free(mode);
    if (!pair) {
        printf("SKIP: the testbed runs without KME-B and the link\n");
        return 77;
    }
    TB.ca = env("CA_CERT");
    TB.kme_a_url = env("KME_A_URL");
    TB.kme_a_id = env("KME_A_ID");
    TB.kme_a_cert = env("KME_A_CERT");
    TB.kme_a_key = env("KME_A_KEY");
    TB.kme_b_url = env("KME_B_URL");
    TB.kme_b_id = env("KME_B_ID");
    TB.link_cert = env("LINK_CERT");
    TB.link_key = env("LINK_KEY");
    TB.a1_id = env("SAE_A1_ID");
    TB.a1_cert = env("SAE_A1_CERT");
    TB.a1_key = env("SAE_A1_KEY");
    TB.a2_id = env("SAE_A2_ID");
    TB.b1_id = env("SAE_B1_ID");
    TB.b1_cert = env("SAE_B1_CERT");
    TB.b1_key = env("SAE_B1_KEY");
    char *peer_b = env("KME_B_PEER_URL"), *link_a = env("KME_A_LINK_URL");
    TB.sae_port_a = port_of(TB.kme_a_url);
    TB.peer_port_b = port_of(peer_b);
    TB.link_port_a = port_of(link_a);
    free(peer_b);
    free(link_a);
    if (!TB.ca || !TB.kme_a_id || !TB.kme_a_cert || !TB.kme_a_key || !TB.kme_b_url || !TB.kme_b_id
        || !TB.link_cert || !TB.link_key || !TB.a1_cert || !TB.a2_id || !TB.b1_cert
        || TB.sae_port_a <= 0 || TB.peer_port_b <= 0 || TB.link_port_a <= 0) {
        fprintf(stderr, "%s/testbed.env lacks a KME, link or SAE variable\n", dir);
        return 1;
    }
    const char *san = getenv("QC_SANITIZED");
    TB.slack = san && strcmp(san, "1") == 0 ? 3 : 1;
    return 0;
}

/* Room for the flood's sockets. */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    int rc = load_testbed();
    if (rc != 0)
        return rc;
    raise_nofile();
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0 || qkd014_global_init() != QKD014_OK) {
        fprintf(stderr, "library initialisation failed\n");
        return 1;
    }
    /* The peer flood comes first: KME-A has no kept-alive connection to
     * KME-B's peer listener yet, so its reservations need a new one. */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_peer_api_flood, stop_running_flood),
        cmocka_unit_test_teardown(test_sae_api_flood, stop_running_flood),
        cmocka_unit_test_teardown(test_link_flood, stop_running_flood),
        cmocka_unit_test_teardown(test_same_address_flood, stop_running_flood),
        cmocka_unit_test(test_allow_from),
        cmocka_unit_test(test_failure_log_aggregated),
        cmocka_unit_test(test_per_ip_limit),
        cmocka_unit_test(test_logs_clean),
    };
    const char *filter = getenv("TEST_FILTER");
    if (filter && *filter)
        cmocka_set_test_filter(filter);
    rc = cmocka_run_group_tests_name("KME listeners under connection floods", tests, NULL, NULL);
    qkd014_global_cleanup();
    curl_global_cleanup();
    return rc;
}
