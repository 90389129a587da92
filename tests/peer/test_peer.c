/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_peer.c - system test of two KMEs in step: remote pairs over the
 * KME-to-KME channel (docs/kme-pair.md), with real qkd-kme processes, real
 * mutual TLS on loopback and real database files.
 *
 * Setup (once): a fresh PKI from scripts/pki (KME CA, SAE CA, KME-A, KME-B,
 * KME-C, KME-X, the link's certificate LINK-AB, SAEs), configs for KME-A
 * (SAE_A1, SAE_A2) and KME-B (SAE_B1, SAE_B2) that name each other as peers
 * and share the link LINK-AB.  This program plays the QKD link itself: it
 * POSTs blocks to both KMEs' [link] listeners with the link certificate and
 * confirms them, exactly as the simulator does (that is the protocol of
 * docs/kme-pair.md, not a mock of a component), so it knows every block and
 * can check the pool figures exactly.
 *
 * KME-C (SAE_A1 local, "KME-B" = an in-process HTTPS server, the hostile
 * server of the libqkd014 tests) lets the test see the reservation a KME
 * sends (no key material in it, I3) and a peer certificate with the wrong
 * CN (refused before the request goes out).  A KME that serves no link
 * intake or refuses the fed blocks fails the setup: both are built always.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <sodium.h>

#include "../sae/hostile_server.h"
#include "qkd014.h"
#include "sae/qkd014_internal.h"

#define BLOCK_BYTES 4096u
#define N_BLOCKS 4                  /* per direction */
#define KEY_SIZE 256
#define POOL_CAP 1048576
#define PEER_TIMEOUT_MS 1000
#define RAW_BLOCK UINT64_C(0xaaaa00000000000f) /* A-owned, fed to KME-B only */
#define RAW_BYTES 256u
#define PEER_TEST_BIG (1024 * 1024 + 4096) /* past the peer listener's body limit */
#define MSG_RELAY "additional_slave_SAE_IDs must sit behind the same KME as the slave " \
                  "(multicast to slaves behind different KMEs is not supported)"

#define CHECK(cond, ...)                                                     \
    do {                                                                     \
        if (!(cond)) {                                                       \
            print_error("%s:%d: ", __FILE__, __LINE__);                     \
            print_error(__VA_ARGS__);                                        \
            print_error("\n");                                               \
            _fail(__FILE__, __LINE__);                                       \
        }                                                                    \
    } while (0)

/* ------------------------------------------------------------ processes */

typedef struct kme {
    const char *name, *id;          /* "kme-a", "KME-A" */
    char conf[512], log[512];
    pid_t pid;
    int sae_port, link_port, peer_port;
} kme;

static struct {
    char dir[256], pki[300];
    const char *kme_bin, *pki_script;
    kme a, b, c;
    int c_target;                   /* port KME-C's "KME-B" points at */
    uint64_t a_fed_bits;            /* A-owned bits fed to both */
} T;

static char *path(const char *fmt, ...)
{
    static char buf[8][512];
    static int i;
    char *p = buf[i++ % 8];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p, 512, fmt, ap);
    va_end(ap);
    return p;
}

static int sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof sa;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0
        && getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

static int read_port(const char *file)
{
    FILE *f = fopen(file, "r");
    int port = -1;
    if (f) {
        if (fscanf(f, "%d", &port) != 1)
            port = -1;
        fclose(f);
    }
    return port;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* The KMEs' deadline for a TLS handshake: the default 3 s, three times that
 * in a sanitizer build (QC_SANITIZED), where a handshake between two
 * instrumented processes on a loaded machine has been seen to take longer.
 * What the deadline does is tested by tests/pair/test_flood.c. */
static int handshake_timeout_ms(void)
{
    const char *s = getenv("QC_SANITIZED");
    return s && strcmp(s, "1") == 0 ? 9000 : 3000;
}

/* One KME config: local SAEs, one peer (ID, port, its SAEs), the link. */
static void write_conf(kme *k, const char *locals, const char *peer_id, int peer_port,
                       const char *peer_saes, const char *side)
{
    snprintf(k->conf, sizeof k->conf, "%s/%s.conf", T.dir, k->name);
    snprintf(k->log, sizeof k->log, "%s/%s.log", T.dir, k->name);
    FILE *f = fopen(k->conf, "w");
    assert_non_null(f);
    fprintf(f,
        "[kme]\nid = %s\ndatabase = %s/%s.db\nlog_level = debug\n"
        "[sae_api]\nlisten = 127.0.0.1:0\ncert = %s/%s.crt\nkey = %s/%s.key\n"
        "ca = %s/sae-ca.crt\nport_file = %s/%s.port\n"
        "[saes]\nlocal = %s\n"
        "[limits]\nkey_size = %d\nmax_sae_id_count = 4\nhandshake_timeout_ms = %d\n"
        "[peer_api]\nlisten = 127.0.0.1:%d\nca = %s/kme-ca.crt\nport_file = %s/%s.peer.port\n"
        "timeout_ms = %d\n"
        "[peer %s]\naddress = 127.0.0.1:%d\nsaes = %s\n"
        "[link]\nlisten = 127.0.0.1:0\nport_file = %s/%s.link.port\nid = LINK-AB\n"
        "side = %s\npeer = %s\npool_cap_bits = %d\n",
        k->id, T.dir, k->name, T.pki, k->id, T.pki, k->id, T.pki, T.dir, k->name, locals,
        KEY_SIZE, handshake_timeout_ms(), k->peer_port, T.pki, T.dir, k->name, PEER_TIMEOUT_MS,
        peer_id, peer_port, peer_saes, T.dir, k->name, side, peer_id, POOL_CAP);
    fclose(f);
}

/* Start k and wait for its three port files (SAE API, peer channel, link
 * intake); -1 when it died or one never came. */
static int start_kme(kme *k)
{
    unlink(path("%s/%s.port", T.dir, k->name));
    unlink(path("%s/%s.link.port", T.dir, k->name));
    unlink(path("%s/%s.peer.port", T.dir, k->name));
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(k->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        execl(T.kme_bin, T.kme_bin, "--config", k->conf, (char *)NULL);
        _exit(127);
    }
    k->pid = pid;
    for (int i = 0; i < 200; i++) {
        k->sae_port = read_port(path("%s/%s.port", T.dir, k->name));
        k->link_port = read_port(path("%s/%s.link.port", T.dir, k->name));
        int peer = read_port(path("%s/%s.peer.port", T.dir, k->name));
        if (k->sae_port > 0 && k->link_port > 0 && peer > 0)
            return 0;
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            k->pid = 0;
            return -1;
        }
        sleep_ms(50);
    }
    return -1;
}

static void stop_kme(kme *k, int sig)
{
    if (k->pid <= 0)
        return;
    kill(k->pid, SIGCONT);
    kill(k->pid, sig);
    waitpid(k->pid, NULL, 0);
    k->pid = 0;
}

/* ----------------------------------------------------------------- HTTPS */

typedef struct resp {
    long http;
    char body[65536];
    size_t len;
} resp;

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    resp *r = ud;
    size_t k = sz * n;
    if (k > sizeof r->body - 1 - r->len)
        k = sizeof r->body - 1 - r->len;
    memcpy(r->body + r->len, p, k);
    r->len += k;
    r->body[r->len] = '\0';
    return sz * n;
}

/* method url with the client certificate NAME (in the PKI); 0 when an HTTP
 * answer arrived, else the curl error. */
static int https(const char *cert_name, const char *method, int port, const char *target,
                 const char *ctype, const void *body, size_t len, resp *r)
{
    CURL *h = curl_easy_init();
    char url[256], ct[128];
    struct curl_slist *hd = NULL;
    memset(r, 0, sizeof *r);
    snprintf(url, sizeof url, "https://127.0.0.1:%d%s", port, target);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_SSLCERT, path("%s/%s.crt", T.pki, cert_name));
    curl_easy_setopt(h, CURLOPT_SSLKEY, path("%s/%s.key", T.pki, cert_name));
    curl_easy_setopt(h, CURLOPT_CAINFO, path("%s/kme-ca.crt", T.pki));
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    if (body) {
        snprintf(ct, sizeof ct, "Content-Type: %s", ctype);
        hd = curl_slist_append(curl_slist_append(NULL, ct), "Expect:");
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)len);
    }
    CURLcode rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->http);
    curl_slist_free_all(hd);
    curl_easy_cleanup(h);
    return (int)rc;
}

/* POST JSON to KME-B's peer listener as cert_name. */
static long peer_post(const char *cert_name, const char *target, const char *json, resp *r)
{
    int rc = https(cert_name, "POST", T.b.peer_port, target, "application/json", json,
                   strlen(json), r);
    return rc == 0 ? r->http : -rc;
}

/* ------------------------------------------------------------- the link */

static int feed_block(kme *k, uint64_t id, int owner, const uint8_t *bytes, uint32_t len)
{
    uint8_t *msg = malloc(13 + len);
    for (int i = 0; i < 8; i++)
        msg[i] = (uint8_t)(id >> (56 - 8 * i));
    msg[8] = (uint8_t)owner;
    for (int i = 0; i < 4; i++)
        msg[9 + i] = (uint8_t)(len >> (24 - 8 * i));
    memcpy(msg + 13, bytes, len);
    resp r;
    int rc = https("LINK-AB", "POST", k->link_port, "/link/v1/blocks", "application/octet-stream",
                   msg, 13 + len, &r);
    free(msg);
    return rc == 0 && r.http == 200 ? 0 : -1;
}

static int confirm_block(kme *k, uint64_t id)
{
    char body[96];
    snprintf(body, sizeof body, "{\"block_IDs\":[\"%016" PRIx64 "\"]}", id);
    resp r;
    int rc = https("LINK-AB", "POST", k->link_port, "/link/v1/confirm", "application/json", body,
                   strlen(body), &r);
    return rc == 0 && r.http == 200 ? 0 : -1;
}

/* Unused bits of the A-owned pool as k sees it (GET /link/v1/state). */
static int64_t pool_a_bits(kme *k)
{
    resp r;
    if (https("LINK-AB", "GET", k->link_port, "/link/v1/state", NULL, NULL, 0, &r) != 0 || r.http != 200)
        return -1;
    json_t *o = json_loads(r.body, 0, NULL);
    json_t *b = json_object_get(json_object_get(json_object_get(o, "pool"), "A"), "bits");
    int64_t v = json_is_integer(b) ? json_integer_value(b) : -1;
    json_decref(o);
    return v;
}

/* Wait until both KMEs agree on the A-owned pool (voids delivered). */
static bool pools_agree(long within_ms)
{
    int64_t end = now_ms() + within_ms, a = -1, b = -2;
    while (now_ms() < end) {
        a = pool_a_bits(&T.a);
        b = pool_a_bits(&T.b);
        if (a >= 0 && a == b)
            return true;
        sleep_ms(100);
    }
    print_error("A-owned pool: %" PRId64 " bits at KME-A, %" PRId64 " at KME-B\n", a, b);
    return false;
}

/* ------------------------------------------------------------ SAE side */

static qkd014_client *sae(const char *id, const kme *k)
{
    char url[64];
    snprintf(url, sizeof url, "https://localhost:%d", k->sae_port);
    char cert[512], key[512], ca[512];
    snprintf(cert, sizeof cert, "%s/%s.crt", T.pki, id);
    snprintf(key, sizeof key, "%s/%s.key", T.pki, id);
    snprintf(ca, sizeof ca, "%s/kme-ca.crt", T.pki);
    qkd014_options o = { .version = QKD014_OPTIONS_VERSION,
                         .kme_url = url, .cert_file = cert, .key_file = key, .ca_file = ca,
                         .expected_kme_id = k->id, .timeout_ms = 10000 };
    qkd014_client *c = NULL;
    assert_int_equal(qkd014_client_new(&o, &c), QKD014_OK);
    return c;
}

/* enc at master's KME, dec at the slaves' KME: identical bytes. */
static void roundtrip(const char *master, kme *mk, const char *slave, kme *sk,
                      const char *const *extra, size_t nextra, int number, int size)
{
    qkd014_client *m = sae(master, mk);
    qkd014_key_request rq = { .version = QKD014_KEY_REQUEST_VERSION,
                              .number = number, .size = size, .additional_slaves = extra,
                              .n_additional = nextra };
    qkd014_keys *ks = NULL;
    qkd014_code rc = qkd014_get_key(m, slave, &rq, &ks);
    CHECK(rc == QKD014_OK, "enc_keys %s -> %s: %s", master, slave, qkd014_errmsg(m));
    assert_int_equal(ks->n, (size_t)number);
    const char *ids[64];
    for (size_t i = 0; i < ks->n; i++) {
        ids[i] = ks->keys[i].key_id;
        assert_int_equal(ks->keys[i].key_len, (size_t)size / 8);
    }
    for (size_t s = 0; s <= nextra; s++) {
        const char *who = s == 0 ? slave : extra[s - 1];
        qkd014_client *d = sae(who, sk);
        qkd014_keys *got = NULL;
        rc = qkd014_get_key_with_ids(d, master, ids, ks->n, &got);
        CHECK(rc == QKD014_OK, "dec_keys by %s: %s", who, qkd014_errmsg(d));
        for (size_t i = 0; i < ks->n; i++) {
            assert_string_equal(got->keys[i].key_id, ks->keys[i].key_id);
            assert_memory_equal(got->keys[i].key, ks->keys[i].key, ks->keys[i].key_len);
        }
        qkd014_keys_free(got);
        /* once to each slave (I2) */
        assert_int_equal(qkd014_get_key_with_ids(d, master, ids, 1, &got), QKD014_E_BAD_REQUEST);
        qkd014_client_free(d);
    }
    qkd014_keys_free(ks);
    qkd014_client_free(m);
}

/* ----------------------------------------------------------------- tests */

static void test_status_remote(void **state)
{
    (void)state;
    qkd014_client *c = sae("SAE_A1", &T.a);
    qkd014_status *st = NULL;
    assert_int_equal(qkd014_get_status(c, "SAE_B1", &st), QKD014_OK);
    assert_string_equal(st->source_kme_id, "KME-A");
    assert_string_equal(st->target_kme_id, "KME-B");
    assert_int_equal(st->stored_key_count, (int32_t)(T.a_fed_bits / KEY_SIZE));
    assert_int_equal(st->max_key_count, POOL_CAP / KEY_SIZE);
    qkd014_status_free(st);
    /* a local pair still reports this KME and its local pool */
    assert_int_equal(qkd014_get_status(c, "SAE_A2", &st), QKD014_OK);
    assert_string_equal(st->target_kme_id, "KME-A");
    qkd014_status_free(st);
    qkd014_client_free(c);
    /* the other direction, seen from KME-B */
    c = sae("SAE_B1", &T.b);
    assert_int_equal(qkd014_get_status(c, "SAE_A1", &st), QKD014_OK);
    assert_string_equal(st->target_kme_id, "KME-A");
    assert_int_equal(st->stored_key_count, N_BLOCKS * BLOCK_BYTES * 8 / KEY_SIZE);
    qkd014_status_free(st);
    qkd014_client_free(c);
}

static void test_status_counts_follow_enc(void **state)
{
    (void)state;
    qkd014_client *c = sae("SAE_A1", &T.a);
    qkd014_status *st = NULL;
    assert_int_equal(qkd014_get_status(c, "SAE_B1", &st), QKD014_OK);
    int32_t before = st->stored_key_count;
    qkd014_status_free(st);
    roundtrip("SAE_A1", &T.a, "SAE_B1", &T.b, NULL, 0, 3, KEY_SIZE);
    assert_int_equal(qkd014_get_status(c, "SAE_B1", &st), QKD014_OK);
    assert_int_equal(st->stored_key_count, before - 3);
    qkd014_status_free(st);
    qkd014_client_free(c);
}

static void test_roundtrip_a_to_b_get(void **state)
{
    (void)state;
    roundtrip("SAE_A1", &T.a, "SAE_B1", &T.b, NULL, 0, 1, 0 + KEY_SIZE);
}

static void test_roundtrip_b_to_a_batch(void **state)
{
    (void)state;
    roundtrip("SAE_B1", &T.b, "SAE_A1", &T.a, NULL, 0, 16, 512);
    roundtrip("SAE_B2", &T.b, "SAE_A2", &T.a, NULL, 0, 1, 64);
}

/* POST form, through the raw call: keys then decrypt at the other KME. */
static void test_post_form(void **state)
{
    (void)state;
    qkd014_client *m = sae("SAE_A2", &T.a);
    static const char body[] = "{\"number\":2,\"size\":128,"
        "\"extension_mandatory\":[{\"qkdc_key_source\":\"qkd\"}]}";
    long http = 0;
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(qkd014_raw_request(m, "POST", "/api/v1/keys/SAE_B2/enc_keys", "application/json",
                                        body, sizeof body - 1, &http, &out, &len, NULL), QKD014_OK);
    CHECK(http == 200, "POST enc_keys: %ld %s", http, out);
    json_t *o = json_loads(out, 0, NULL);
    json_t *keys = json_object_get(o, "keys");
    assert_int_equal(json_array_size(keys), 2);
    const char *ids[2];
    for (size_t i = 0; i < 2; i++)
        ids[i] = json_string_value(json_object_get(json_array_get(keys, i), "key_ID"));
    qkd014_client *d = sae("SAE_B2", &T.b);
    qkd014_keys *got = NULL;
    assert_int_equal(qkd014_get_key_with_ids(d, "SAE_A2", ids, 2, &got), QKD014_OK);
    for (size_t i = 0; i < 2; i++) {
        char b64[64];
        sodium_bin2base64(b64, sizeof b64, got->keys[i].key, got->keys[i].key_len,
                          sodium_base64_VARIANT_ORIGINAL);
        assert_string_equal(b64, json_string_value(json_object_get(json_array_get(keys, i), "key")));
    }
    qkd014_keys_free(got);
    json_decref(o);
    sodium_memzero(out, len);
    free(out);
    qkd014_client_free(d);
    qkd014_client_free(m);
}

static void test_multicast_behind_b(void **state)
{
    (void)state;
    static const char *const extra[] = { "SAE_B2" };
    roundtrip("SAE_A1", &T.a, "SAE_B1", &T.b, extra, 1, 4, KEY_SIZE);
}

static void test_split_slaves_refused(void **state)
{
    (void)state;
    qkd014_client *m = sae("SAE_A1", &T.a);
    static const char *const local[] = { "SAE_A2" }, *const remote[] = { "SAE_B1" };
    qkd014_key_request rq = { .version = QKD014_KEY_REQUEST_VERSION,
                              .additional_slaves = local, .n_additional = 1 };
    qkd014_keys *ks = NULL;
    assert_int_equal(qkd014_get_key(m, "SAE_B1", &rq, &ks), QKD014_E_BAD_REQUEST);
    assert_string_equal(qkd014_errmsg(m), MSG_RELAY);
    rq.additional_slaves = remote;
    assert_int_equal(qkd014_get_key(m, "SAE_A2", &rq, &ks), QKD014_E_BAD_REQUEST);
    assert_string_equal(qkd014_errmsg(m), MSG_RELAY);
    qkd014_client_free(m);
}

/* An enc_keys that the peer cannot confirm: 503 with a JSON message within
 * the timeout + 1 s, and afterwards the peer learns the bits are burned; the
 * call after it gets 503 at once. */
static void expect_peer_failure(const char *why)
{
    qkd014_client *m = sae("SAE_A1", &T.a);
    qkd014_keys *ks = NULL;
    int64_t t0 = now_ms();
    qkd014_code rc = qkd014_get_key(m, "SAE_B1", NULL, &ks);
    int64_t took = now_ms() - t0;
    CHECK(rc == QKD014_E_UNAVAILABLE, "%s: %s", why, qkd014_errmsg(m));
    CHECK(strstr(qkd014_errmsg(m), "peer KME KME-B did not confirm the keys") != NULL, "%s: %s",
          why, qkd014_errmsg(m));
    CHECK(took <= PEER_TIMEOUT_MS + 1000, "%s: took %" PRId64 " ms", why, took);
    /* the next call is refused at once: KME-A knows the peer is not
     * answering and reserves nothing */
    t0 = now_ms();
    rc = qkd014_get_key(m, "SAE_B1", NULL, &ks);
    took = now_ms() - t0;
    CHECK(rc == QKD014_E_UNAVAILABLE, "%s, again: %s", why, qkd014_errmsg(m));
    CHECK(strstr(qkd014_errmsg(m), "peer KME KME-B is not answering") != NULL, "%s, again: %s",
          why, qkd014_errmsg(m));
    CHECK(took < PEER_TIMEOUT_MS / 2, "%s, again: took %" PRId64 " ms", why, took);
    qkd014_client_free(m);
}

static void test_peer_stopped(void **state)
{
    (void)state;
    kill(T.b.pid, SIGSTOP);
    expect_peer_failure("KME-B stopped");
    kill(T.b.pid, SIGCONT);
    assert_true(pools_agree(15000));
    roundtrip("SAE_A1", &T.a, "SAE_B1", &T.b, NULL, 0, 1, KEY_SIZE);
}

static void test_peer_killed(void **state)
{
    (void)state;
    stop_kme(&T.b, SIGKILL);
    expect_peer_failure("KME-B killed");
    assert_int_equal(start_kme(&T.b), 0);
    assert_true(pools_agree(15000));
    roundtrip("SAE_A1", &T.a, "SAE_B1", &T.b, NULL, 0, 2, KEY_SIZE);
    roundtrip("SAE_B1", &T.b, "SAE_A1", &T.a, NULL, 0, 2, KEY_SIZE);
}

static void test_foreign_certs_refused(void **state)
{
    (void)state;
    static const char body[] = "{}";
    resp r;
    /* an SAE certificate (other CA): 401 or no TLS session at all */
    long http = peer_post("SAE_B1", "/peer/v1/voids", body, &r);
    CHECK(http == 401 || http < 0, "SAE certificate on the peer listener: %ld", http);
    /* a KME certificate of our CA whose CN is no configured peer */
    http = peer_post("KME-X", "/peer/v1/voids", body, &r);
    CHECK(http == 401, "KME-X on the peer listener: %ld %s", http, r.body);
    /* the link's certificate is not a peer either */
    http = peer_post("LINK-AB", "/peer/v1/voids", body, &r);
    CHECK(http == 401, "LINK-AB on the peer listener: %ld %s", http, r.body);
}

static char *reservation(const char *rid, const char *master, const char *slave, const char *kid,
                         uint64_t block, unsigned off, unsigned len)
{
    static char buf[1024];
    static int64_t expires; /* fixed: it is part of the content a replay repeats */
    if (!expires)
        expires = (int64_t)time(NULL) * 1000 + 3600000;
    snprintf(buf, sizeof buf,
             "{\"reservation_ID\":\"%s\",\"master_SAE_ID\":\"%s\",\"slave_SAE_IDs\":[\"%s\"],"
             "\"expires\":%" PRId64 ",\"keys\":[{\"key_ID\":\"%s\",\"segments\":[[\"%016" PRIx64
             "\",%u,%u]]}]}",
             rid, master, slave, expires, kid, block, off, len);
    return buf;
}

static const char *json_str(const char *body, const char *member)
{
    static char out[512];
    json_t *o = json_loads(body, 0, NULL);
    snprintf(out, sizeof out, "%s", json_string_value(json_object_get(o, member)) ?: "");
    json_decref(o);
    return out;
}

#define R1 "11111111-1111-4111-8111-111111111111"
#define R2 "22222222-2222-4222-8222-222222222222"
#define R3 "33333333-3333-4333-8333-333333333333"
#define R4 "44444444-4444-4444-8444-444444444444"
#define K1 "aaaaaaaa-0000-4000-8000-000000000001"
#define K2 "aaaaaaaa-0000-4000-8000-000000000002"

/* Raw reservations and voids with KME-A's certificate, on a block that only
 * KME-B holds (so that KME-A never allocates from it). */
#define R5_UNSEEN "5eeeeeee-5eee-4eee-8eee-5eeeeeeeeeee"

static void test_reservation_idempotent(void **state)
{
    uint8_t *raw = *state;
    resp r;
    assert_int_equal(peer_post("KME-A", "/peer/v1/reservations",
                               reservation(R1, "SAE_A1", "SAE_B1", K1, RAW_BLOCK, 0, 32), &r), 200);
    assert_string_equal(json_str(r.body, "status"), "applied");
    /* the same again: 200, and no second key */
    assert_int_equal(peer_post("KME-A", "/peer/v1/reservations",
                               reservation(R1, "SAE_A1", "SAE_B1", K1, RAW_BLOCK, 0, 32), &r), 200);
    /* the key ID again, with other content, while B holds it: conflict */
    assert_int_equal(peer_post("KME-A", "/peer/v1/reservations",
                               reservation(R2, "SAE_A1", "SAE_B1", K1, RAW_BLOCK, 64, 32), &r), 409);
    assert_string_equal(json_str(r.body, "type"), "key-conflict");
    qkd014_client *d = sae("SAE_B1", &T.b);
    qkd014_keys *got = NULL;
    const char *ids[] = { K1 };
    assert_int_equal(qkd014_get_key_with_ids(d, "SAE_A1", ids, 1, &got), QKD014_OK);
    assert_int_equal(got->keys[0].key_len, 32);
    assert_memory_equal(got->keys[0].key, raw, 32); /* B copied its own block bytes */
    qkd014_keys_free(got);
    assert_int_equal(peer_post("KME-A", "/peer/v1/reservations",
                               reservation(R1, "SAE_A1", "SAE_B1", K1, RAW_BLOCK, 0, 32), &r), 200);
    assert_int_equal(qkd014_get_key_with_ids(d, "SAE_A1", ids, 1, &got), QKD014_E_BAD_REQUEST);
    qkd014_client_free(d);
    /* bits used before: refused, nothing made */
    assert_int_equal(peer_post("KME-A", "/peer/v1/reservations",
                               reservation(R2, "SAE_A1", "SAE_B1", K2, RAW_BLOCK, 16, 32), &r), 409);
    assert_string_equal(json_str(r.body, "type"), "segments-unusable");
    /* a block B does not hold, or one B owns */
    assert_int_equal(peer_post("KME-A", "/peer/v1/reservations",
                               reservation(R2, "SAE_A1", "SAE_B1", K2, 0x1234, 0, 32), &r), 409);
    assert_int_equal(peer_post("KME-A", "/peer/v1/reservations",
                               reservation(R2, "SAE_A1", "SAE_B1", K2, UINT64_C(0xb000000000000001), 0, 32), &r), 409);
    /* a void burns bits: later reservations of them are refused */
    char v[256];
    snprintf(v, sizeof v, "{\"reservation_ID\":\"" R3 "\",\"segments\":[[\"%016" PRIx64 "\",100,10]]}", RAW_BLOCK);
    assert_int_equal(peer_post("KME-A", "/peer/v1/voids", v, &r), 200);
    assert_string_equal(json_str(r.body, "status"), "voided");
    assert_int_equal(peer_post("KME-A", "/peer/v1/voids", v, &r), 200);
    /* what a restarting KME-A learns of its reservations (their fate) */
    static const struct { const char *id, *status; } fates[] = {
        { R1, "applied" }, { R3, "voided" }, { R5_UNSEEN, "unknown" },
    };
    for (size_t i = 0; i < 3; i++) {
        snprintf(v, sizeof v, "{\"reservation_ID\":\"%s\"}", fates[i].id);
        assert_int_equal(peer_post("KME-A", "/peer/v1/reservation-state", v, &r), 200);
        assert_string_equal(json_str(r.body, "status"), fates[i].status);
        assert_string_equal(json_str(r.body, "reservation_ID"), fates[i].id);
    }
    assert_int_equal(peer_post("KME-A", "/peer/v1/reservations",
                               reservation(R2, "SAE_A1", "SAE_B1", K2, RAW_BLOCK, 96, 8), &r), 409);
    /* burn the rest of the block so that both KMEs' A-owned pools agree */
    snprintf(v, sizeof v, "{\"reservation_ID\":\"" R4 "\",\"segments\":[[\"%016" PRIx64 "\",32,68],"
             "[\"%016" PRIx64 "\",110,%u]]}", RAW_BLOCK, RAW_BLOCK, RAW_BYTES - 110);
    assert_int_equal(peer_post("KME-A", "/peer/v1/voids", v, &r), 200);
    assert_true(pools_agree(5000));
}

static void expect_400(const char *target, const char *json, const char *needle)
{
    resp r;
    long http = peer_post("KME-A", target, json, &r);
    CHECK(http == 400, "%s: %ld %s", json, http, r.body);
    CHECK(strstr(r.body, needle) != NULL, "%s: message %s lacks '%s'", json, r.body, needle);
    assert_string_equal(json_str(r.body, "type"), "bad-request");
}

static void test_reservation_bad_input(void **state)
{
    (void)state;
    char j[1024];
    snprintf(j, sizeof j, "%s", reservation(R2, "SAE_A1", "SAE_B1", K2, RAW_BLOCK, 0, 8));
    char *p = strstr(j, "\"expires\"");
    char dup[1200];
    snprintf(dup, sizeof dup, "%.*s\"expires\":1,%s", (int)(p - j), j, p);
    expect_400("/peer/v1/reservations", dup, "duplicate");
    snprintf(dup, sizeof dup, "%.*s\"key\":\"AAAA\",%s", (int)(p - j), j, p);
    expect_400("/peer/v1/reservations", dup, "unknown member");
    expect_400("/peer/v1/reservations", reservation(R2, "SAE_B2", "SAE_B1", K2, RAW_BLOCK, 0, 8),
               "master_SAE_ID SAE_B2 is not an SAE attached to KME KME-A");
    expect_400("/peer/v1/reservations", reservation(R2, "SAE_A1", "SAE_A2", K2, RAW_BLOCK, 0, 8),
               "slave_SAE_IDs[0] is not an SAE attached to this KME");
    expect_400("/peer/v1/reservations", reservation("not-a-uuid", "SAE_A1", "SAE_B1", K2, RAW_BLOCK, 0, 8),
               "reservation_ID must be a UUID");
    expect_400("/peer/v1/reservations", reservation(R2, "SAE_A1", "SAE_B1", K2, RAW_BLOCK, 0, 0),
               "length >= 1");
    expect_400("/peer/v1/voids", "{\"reservation_ID\":\"" R2 "\",\"segments\":[[\"abc\",0,1]]}",
               "block ID must be 16 hex digits");
    expect_400("/peer/v1/voids", "{\"reservation_ID\":\"" R2 "\",\"segments\":{}}", "1 to");
    /* a void with no segments is a relay's, after its downstream applied:
     * it burns nothing (docs/network.md) and is accepted */
    resp r;
    assert_int_equal(peer_post("KME-A", "/peer/v1/voids",
                               "{\"reservation_ID\":\"e0e0e0e0-e0e0-4e0e-8e0e-e0e0e0e0e0e0\","
                               "\"segments\":[]}", &r), 200);
    assert_string_equal(json_str(r.body, "status"), "voided");
    expect_400("/peer/v1/voids", "[1]", "one JSON object");
    expect_400("/peer/v1/reservation-state", "{}", "missing member");
    expect_400("/peer/v1/reservation-state", "{\"reservation_ID\":\"" R2 "\",\"x\":1}",
               "unknown member");
    expect_400("/peer/v1/reservation-state", "{\"reservation_ID\":7}", "must be a UUID");
    assert_int_equal(https("KME-A", "GET", T.b.peer_port, "/peer/v1/voids", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.http, 405);
    assert_int_equal(peer_post("KME-A", "/peer/v1/other", "{}", &r), 404);
    assert_string_equal(json_str(r.body, "type"), "not-found");
}

/* ------------------------------------------------- reservation batches */

#define RAW2_BLOCK UINT64_C(0xaaaa000000000010) /* A-owned, fed to KME-B only */
#define R5 "55555555-5555-4555-8555-555555555555"
#define R6 "66666666-6666-4666-8666-666666666666"
#define R7 "77777777-7777-4777-8777-777777777777"
#define R8 "88888888-8888-4888-8888-888888888888"
#define R9 "99999999-9999-4999-8999-999999999999"
#define R10 "10101010-1010-4010-8010-101010101010"
#define K5 "aaaaaaaa-0000-4000-8000-000000000005"
#define K6 "aaaaaaaa-0000-4000-8000-000000000006"
#define K7 "aaaaaaaa-0000-4000-8000-000000000007"
#define K8 "aaaaaaaa-0000-4000-8000-000000000008"
#define K9 "aaaaaaaa-0000-4000-8000-000000000009"
#define K10 "aaaaaaaa-0000-4000-8000-000000000010"

/* Append one reservation (or any JSON text) to a batch body being built. */
static void batch_add(char *buf, size_t cap, const char *item)
{
    size_t n = strlen(buf);
    snprintf(buf + n, cap - n, "%s%s", n > strlen("{\"reservations\":[") ? "," : "", item);
}

static void batch_begin(char *buf, size_t cap)
{
    snprintf(buf, cap, "{\"reservations\":[");
}

static void batch_end(char *buf, size_t cap)
{
    size_t n = strlen(buf);
    snprintf(buf + n, cap - n, "]}");
}

/* results[i] of a batch answer: "applied", or status http with type. */
static void expect_result(const char *body, size_t i, const char *rid, int http, const char *type)
{
    json_t *o = json_loads(body, 0, NULL);
    json_t *r = json_array_get(json_object_get(o, "results"), i);
    json_t *st = json_object_get(r, "status"), *id = json_object_get(r, "reservation_ID");
    CHECK(r != NULL, "results[%zu] missing in %s", i, body);
    if (rid)
        CHECK(json_is_string(id) && strcmp(json_string_value(id), rid) == 0,
              "results[%zu].reservation_ID is not %s: %s", i, rid, body);
    if (http == 200)
        CHECK(json_is_string(st) && strcmp(json_string_value(st), "applied") == 0,
              "results[%zu] not applied: %s", i, body);
    else
        CHECK(json_integer_value(st) == http && json_is_string(json_object_get(r, "message"))
              && strcmp(json_string_value(json_object_get(r, "type")), type) == 0,
              "results[%zu] is not %d %s: %s", i, http, type, body);
    json_decref(o);
}

static size_t result_count(const char *body)
{
    json_t *o = json_loads(body, 0, NULL);
    size_t n = json_array_size(json_object_get(o, "results"));
    json_decref(o);
    return n;
}

/* One key at KME-B as SAE_B1 fetches it: 0 and its bytes, or the error. */
static qkd014_code fetch_b(const char *kid, uint8_t *out, size_t len)
{
    qkd014_client *d = sae("SAE_B1", &T.b);
    qkd014_keys *got = NULL;
    const char *ids[] = { kid };
    qkd014_code rc = qkd014_get_key_with_ids(d, "SAE_A1", ids, 1, &got);
    if (rc == QKD014_OK) {
        assert_int_equal(got->keys[0].key_len, len);
        memcpy(out, got->keys[0].key, len);
    }
    qkd014_keys_free(got);
    qkd014_client_free(d);
    return rc;
}

/* A batch with good and bad reservations: each gets its own outcome, in
 * order; a refused one changes nothing; the batch again changes nothing. */
static void test_batch_mixed(void **state)
{
    (void)state;
    static uint8_t raw[RAW_BYTES];
    randombytes_buf(raw, sizeof raw);
    assert_int_equal(feed_block(&T.b, RAW2_BLOCK, 0, raw, sizeof raw), 0);
    assert_int_equal(confirm_block(&T.b, RAW2_BLOCK), 0);
    char body[8192], unknown[1200];
    snprintf(unknown, sizeof unknown, "%s", reservation(R8, "SAE_A1", "SAE_B1", K8, RAW2_BLOCK, 96, 8));
    unknown[strlen(unknown) - 1] = '\0';
    strcat(unknown, ",\"extra\":1}");
    batch_begin(body, sizeof body);
    batch_add(body, sizeof body, reservation(R5, "SAE_A1", "SAE_B1", K5, RAW2_BLOCK, 0, 32));
    batch_add(body, sizeof body, reservation(R6, "SAE_A1", "SAE_B1", K6, 0x1234, 0, 32));
    batch_add(body, sizeof body, reservation(R7, "SAE_A1", "SAE_B1", K7, RAW2_BLOCK, 32, 32));
    batch_add(body, sizeof body, unknown);
    /* overlaps R5, applied before it in the same batch */
    batch_add(body, sizeof body, reservation(R9, "SAE_A1", "SAE_B1", K9, RAW2_BLOCK, 16, 32));
    /* the same reservation ID twice in one batch: the second is refused */
    batch_add(body, sizeof body, reservation(R5, "SAE_A1", "SAE_B1", K5, RAW2_BLOCK, 0, 32));
    batch_add(body, sizeof body, "[1]");
    batch_end(body, sizeof body);
    for (int round = 0; round < 2; round++) { /* the second: an idempotent replay */
        resp r;
        assert_int_equal(peer_post("KME-A", "/peer/v1/reservation-batch", body, &r), 200);
        assert_int_equal(result_count(r.body), 7);
        expect_result(r.body, 0, R5, 200, NULL);
        expect_result(r.body, 1, R6, 409, "segments-unusable");
        expect_result(r.body, 2, R7, 200, NULL);
        expect_result(r.body, 3, R8, 400, "bad-request");
        expect_result(r.body, 4, R9, 409, "segments-unusable");
        expect_result(r.body, 5, R5, 400, "bad-request");
        expect_result(r.body, 6, NULL, 400, "bad-request");
        CHECK(strstr(r.body, "repeats reservations[0]") && strstr(r.body, "unknown member"),
              "batch answer: %s", r.body);
    }
    uint8_t got[32];
    assert_int_equal(fetch_b(K5, got, 32), QKD014_OK);
    assert_memory_equal(got, raw, 32);
    assert_int_equal(fetch_b(K7, got, 32), QKD014_OK);
    assert_memory_equal(got, raw + 32, 32);
    /* the replay made no second copy; the refused ones made no key */
    assert_int_equal(fetch_b(K5, got, 32), QKD014_E_BAD_REQUEST);
    assert_int_equal(fetch_b(K6, got, 32), QKD014_E_BAD_REQUEST);
    assert_int_equal(fetch_b(K9, got, 32), QKD014_E_BAD_REQUEST);
    /* ... and left no record: the same IDs with other bits apply alone */
    resp r;
    assert_int_equal(peer_post("KME-A", "/peer/v1/reservations",
                               reservation(R9, "SAE_A1", "SAE_B1", K9, RAW2_BLOCK, 64, 8), &r), 200);
    assert_int_equal(peer_post("KME-A", "/peer/v1/reservations",
                               reservation(R8, "SAE_A1", "SAE_B1", K8, RAW2_BLOCK, 72, 8), &r), 200);
    assert_int_equal(fetch_b(K9, got, 8), QKD014_OK);
    assert_memory_equal(got, raw + 64, 8);
}

/* Batches refused whole (400, or 413 past the body limit): nothing of
 * them is applied, so a good reservation inside applies alone afterwards. */
static void test_batch_refused_whole(void **state)
{
    (void)state;
    static char body[PEER_TEST_BIG];
    char good[1024];
    snprintf(good, sizeof good, "%s", reservation(R10, "SAE_A1", "SAE_B1", K10, RAW2_BLOCK, 128, 8));
    resp r;
    /* 65 reservations: one more than a batch may hold */
    batch_begin(body, sizeof body);
    for (int i = 0; i < 65; i++)
        batch_add(body, sizeof body, good);
    batch_end(body, sizeof body);
    assert_int_equal(peer_post("KME-A", "/peer/v1/reservation-batch", body, &r), 400);
    CHECK(strstr(r.body, "1 to 64") != NULL, "%s", r.body);
    /* not JSON, wrong shapes, unknown or duplicate members */
    snprintf(body, sizeof body, "{\"reservations\":[%s", good);
    expect_400("/peer/v1/reservation-batch", body, "one JSON object");
    snprintf(body, sizeof body, "{\"reservations\":[%s],\"reservations\":[%s]}", good, good);
    expect_400("/peer/v1/reservation-batch", body, "duplicate");
    snprintf(body, sizeof body, "{\"reservations\":[%s],\"more\":true}", good);
    expect_400("/peer/v1/reservation-batch", body, "unknown member");
    snprintf(body, sizeof body, "{\"reservations\":%s}", good);
    expect_400("/peer/v1/reservation-batch", body, "1 to 64");
    expect_400("/peer/v1/reservation-batch", "{\"reservations\":[]}", "1 to 64");
    expect_400("/peer/v1/reservation-batch", "{}", "missing member");
    expect_400("/peer/v1/reservation-batch", "[]", "one JSON object");
    /* past the body limit (1 MiB): refused by the listener */
    batch_begin(body, sizeof body);
    batch_add(body, sizeof body, good);
    size_t n = strlen(body);
    memset(body + n, ' ', sizeof body - n - 3);
    memcpy(body + sizeof body - 3, "]}", 3);
    assert_int_equal(peer_post("KME-A", "/peer/v1/reservation-batch", body, &r), 413);
    /* none of the above applied R10 */
    assert_int_equal(peer_post("KME-A", "/peer/v1/reservations", good, &r), 200);
    uint8_t got[8];
    assert_int_equal(fetch_b(K10, got, 8), QKD014_OK);
    /* burn the rest of the block so that both KMEs' A-owned pools agree */
    char v[256];
    snprintf(v, sizeof v, "{\"reservation_ID\":\"" R4 "\",\"segments\":[[\"%016" PRIx64 "\",0,%u]]}",
             RAW2_BLOCK, RAW_BYTES);
    assert_int_equal(peer_post("KME-A", "/peer/v1/voids", v, &r), 200);
    assert_true(pools_agree(5000));
}

/* KME-C: its "KME-B" is the in-process server with certificate cert. */
static hostile_server *start_c(const char *cert)
{
    char err[256];
    hostile_server *hs = hostile_start(path("%s/%s.crt", T.pki, cert), path("%s/%s.key", T.pki, cert),
                                       err, sizeof err);
    assert_non_null(hs);
    hostile_answer(hs, H_CANNED, 200, "application/json", "{\"status\":\"applied\"}");
    T.c.peer_port = free_port();
    write_conf(&T.c, "SAE_A1", "KME-B", hostile_port(hs), "SAE_B1", "A");
    unlink(path("%s/kme-c.db", T.dir));
    assert_int_equal(start_kme(&T.c), 0);
    uint8_t blk[BLOCK_BYTES];
    randombytes_buf(blk, sizeof blk);
    assert_int_equal(feed_block(&T.c, 0xc1, 0, blk, sizeof blk), 0);
    assert_int_equal(confirm_block(&T.c, 0xc1), 0);
    return hs;
}

/* What a KME sends its peer: IDs and segments only (I3), as documented. */
static void test_reservation_has_no_key_material(void **state)
{
    (void)state;
    hostile_server *hs = start_c("KME-B");
    qkd014_client *m = sae("SAE_A1", &T.c);
    qkd014_key_request rq = { .version = QKD014_KEY_REQUEST_VERSION, .number = 3, .size = 512 };
    qkd014_keys *ks = NULL;
    CHECK(qkd014_get_key(m, "SAE_B1", &rq, &ks) == QKD014_OK, "%s", qkd014_errmsg(m));
    hostile_request req;
    hostile_last(hs, &req);
    assert_string_equal(req.target, "/peer/v1/reservations");
    json_error_t je;
    json_t *o = json_loadb(req.body, req.body_len, JSON_REJECT_DUPLICATES, &je);
    assert_non_null(o);
    assert_int_equal(json_object_size(o), 5);
    assert_string_equal(json_string_value(json_object_get(o, "master_SAE_ID")), "SAE_A1");
    json_t *keys = json_object_get(o, "keys");
    assert_int_equal(json_array_size(keys), 3);
    for (size_t i = 0; i < ks->n; i++) {
        json_t *k = json_array_get(keys, i);
        assert_int_equal(json_object_size(k), 2);
        assert_string_equal(json_string_value(json_object_get(k, "key_ID")), ks->keys[i].key_id);
        json_int_t bytes = 0;
        json_t *seg;
        size_t j;
        json_array_foreach(json_object_get(k, "segments"), j, seg)
            bytes += json_integer_value(json_array_get(seg, 2));
        assert_int_equal(bytes, 64);
        /* neither base64 nor hex of the key, nor of its first 12 bytes */
        char b64[128], hex[160];
        sodium_bin2base64(b64, sizeof b64, ks->keys[i].key, 12, sodium_base64_VARIANT_ORIGINAL);
        sodium_bin2hex(hex, sizeof hex, ks->keys[i].key, 12);
        assert_null(memmem(req.body, req.body_len, b64, strlen(b64)));
        assert_null(memmem(req.body, req.body_len, hex, strlen(hex)));
    }
    json_decref(o);
    qkd014_keys_free(ks);
    qkd014_client_free(m);
    stop_kme(&T.c, SIGTERM);
    hostile_stop(hs);
}

/* A peer whose certificate (same CA, right host) names another KME: the
 * request never goes out, the keys are refused. */
static void test_peer_with_wrong_cn(void **state)
{
    (void)state;
    hostile_server *hs = start_c("KME-X");
    qkd014_client *m = sae("SAE_A1", &T.c);
    qkd014_keys *ks = NULL;
    assert_int_equal(qkd014_get_key(m, "SAE_B1", NULL, &ks), QKD014_E_UNAVAILABLE);
    CHECK(strstr(qkd014_errmsg(m), "names KME-X, expected KME-B") != NULL, "%s", qkd014_errmsg(m));
    hostile_request req;
    hostile_last(hs, &req);
    assert_null(strstr(req.target, "/peer/"));
    qkd014_client_free(m);
    stop_kme(&T.c, SIGTERM);
    hostile_stop(hs);
}

/* ----------------------------------------------------------------- setup */

static int make_pki(void)
{
    static const char *const kmes[] = { "KME-A", "KME-B", "KME-C", "KME-X", "LINK-AB" };
    static const char *const saes[] = { "SAE_A1", "SAE_A2", "SAE_B1", "SAE_B2" };
    if (sh("'%s' init '%s' >/dev/null", T.pki_script, T.pki) != 0)
        return -1;
    for (size_t i = 0; i < 5; i++)
        if (sh("'%s' kme '%s' %s >/dev/null", T.pki_script, T.pki, kmes[i]) != 0)
            return -1;
    for (size_t i = 0; i < 4; i++)
        if (sh("'%s' sae '%s' %s >/dev/null", T.pki_script, T.pki, saes[i]) != 0)
            return -1;
    return 0;
}

/* N_BLOCKS per direction to both KMEs, confirmed; the raw block to B. */
static int feed_link(uint8_t *raw)
{
    uint8_t blk[BLOCK_BYTES];
    for (int i = 0; i < 2 * N_BLOCKS; i++) {
        uint64_t id = (i % 2 ? UINT64_C(0xb000000000000000) : UINT64_C(0xa000000000000000)) + (uint64_t)i / 2 + 1;
        randombytes_buf(blk, sizeof blk);
        if (feed_block(&T.a, id, i % 2, blk, sizeof blk) != 0 || feed_block(&T.b, id, i % 2, blk, sizeof blk) != 0
            || confirm_block(&T.a, id) != 0 || confirm_block(&T.b, id) != 0)
            return -1;
        if (i % 2 == 0)
            T.a_fed_bits += BLOCK_BYTES * 8;
    }
    randombytes_buf(raw, RAW_BYTES);
    return feed_block(&T.b, RAW_BLOCK, 0, raw, RAW_BYTES) == 0 && confirm_block(&T.b, RAW_BLOCK) == 0 ? 0 : -1;
}

/* A sanitizer build reports in the KMEs' logs, not in our exit status. */
static int sanitizer_reports(void)
{
    static const char *const names[] = { "kme-a", "kme-b", "kme-c" };
    int found = 0;
    for (size_t i = 0; i < 3; i++) {
        FILE *f = fopen(path("%s/%s.log", T.dir, names[i]), "r");
        char line[1024];
        while (f && fgets(line, sizeof line, f))
            if (strstr(line, "Sanitizer") || strstr(line, "runtime error:")) {
                printf("%s.log: %s", names[i], line);
                found = 1;
            }
        if (f)
            fclose(f);
    }
    return found;
}

static int setup_all(uint8_t *raw)
{
    snprintf(T.dir, sizeof T.dir, "%s/qumail-peer.XXXXXX", getenv("TMPDIR") ?: "/tmp");
    if (!mkdtemp(T.dir))
        return -1;
    snprintf(T.pki, sizeof T.pki, "%s/pki", T.dir);
    if (make_pki() != 0)
        return -1;
    T.a = (kme){ .name = "kme-a", .id = "KME-A", .peer_port = free_port() };
    T.b = (kme){ .name = "kme-b", .id = "KME-B", .peer_port = free_port() };
    T.c = (kme){ .name = "kme-c", .id = "KME-C" };
    write_conf(&T.a, "SAE_A1 SAE_A2", "KME-B", T.b.peer_port, "SAE_B1 SAE_B2", "A");
    write_conf(&T.b, "SAE_B1 SAE_B2", "KME-A", T.a.peer_port, "SAE_A1 SAE_A2", "B");
    int ra = start_kme(&T.a), rb = ra == 0 ? start_kme(&T.b) : -1;
    if (ra != 0 || rb != 0)
        return -1;
    return feed_link(raw);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: test_peer QKD_KME PKI_SCRIPT\n");
        return 2;
    }
    T.kme_bin = argv[1];
    T.pki_script = argv[2];
    signal(SIGPIPE, SIG_IGN);
    if (qkd014_global_init() != QKD014_OK || sodium_init() < 0)
        return 1;
    static uint8_t raw[RAW_BYTES];
    int rc = setup_all(raw);
    if (rc != 0) {
        fprintf(stderr, "setup failed; files in %s\n", T.dir);
        stop_kme(&T.a, SIGTERM);
        stop_kme(&T.b, SIGTERM);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_remote),
        cmocka_unit_test(test_roundtrip_a_to_b_get),
        cmocka_unit_test(test_roundtrip_b_to_a_batch),
        cmocka_unit_test(test_post_form),
        cmocka_unit_test(test_multicast_behind_b),
        cmocka_unit_test(test_status_counts_follow_enc),
        cmocka_unit_test(test_split_slaves_refused),
        cmocka_unit_test(test_foreign_certs_refused),
        cmocka_unit_test_prestate(test_reservation_idempotent, raw),
        cmocka_unit_test(test_reservation_bad_input),
        cmocka_unit_test(test_batch_mixed),
        cmocka_unit_test(test_batch_refused_whole),
        cmocka_unit_test(test_peer_stopped),
        cmocka_unit_test(test_peer_killed),
        cmocka_unit_test(test_reservation_has_no_key_material),
        cmocka_unit_test(test_peer_with_wrong_cn),
    };
    int failed = cmocka_run_group_tests_name("peer", tests, NULL, NULL);
    stop_kme(&T.a, SIGTERM);
    stop_kme(&T.b, SIGTERM);
    stop_kme(&T.c, SIGTERM);
    failed += sanitizer_reports();
    if (failed == 0)
        sh("rm -rf '%s'", T.dir);
    else
        printf("files kept in %s\n", T.dir);
    qkd014_global_cleanup();
    return failed ? 1 : 0;
}
