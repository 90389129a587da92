/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_pair.c - system tests of two KMEs in step: KME-A and KME-B, the QKD
 * link simulator between them and the KME-to-KME channel, all real
 * processes over real mutual TLS on loopback (docs/kme-pair.md).
 *
 * What: remote pairs through libqkd014 in both directions (A->B and B->A),
 * GET and POST, single keys and batches, multicast to slaves behind one
 * KME; concurrent load in both directions at once (I1: no key ID and no key
 * bytes shared between two keys; I2/I6: every slave fetch equals the
 * master's key); kill -9 of KME-A and of KME-B under load, then restart: no
 * key delivered twice, every key acknowledged to a master retrievable by
 * its slaves, and the two KMEs' link pools consistent (own bits at one KME
 * equal the peer bits at the other, read through GET /link/v1/state with
 * the link's certificate); a stopped peer makes enc_keys answer 503 with a
 * JSON message within the peer timeout + 1 s and deliver nothing (also a
 * peer that hangs: SIGSTOP, the timeout path); a stopped
 * link lets the pool drain to 503, and keys flow again once it restarts;
 * the KME-to-KME and link listeners refuse SAE certificates; finally, no
 * sanitizer report or failed assertion in the logs of the three processes.
 *
 * How: tests/system/run-with-testbed brings up scripts/testbed (pair mode)
 * and runs this program with TESTBED_DIR and TESTBED_SCRIPT set.  Parts are
 * stopped, killed and restarted through `scripts/testbed stop|kill|start`.
 * If the testbed runs KME-A alone (the link or the KME-to-KME channel is not
 * built), the program prints the reason from DIR/testbed.mode and exits 77
 * (skipped).  Key bytes are compared in memory and never printed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "qkd014.h"
#include "check.h"
#include "testbed_env.h"


#define MSG_NOT_FOUND "one or more keys specified are not found on KME"

/* ----------------------------------------------------------------- testbed */

enum { KA = 0, KB = 1 };

typedef tb_sae sae;

static struct testbed {
    char *dir, *script, *mode, *ca;
    char *url[2], *kme_id[2], *peer_url[2], *link_url[2], *kme_cert[2], *kme_key[2];
    char *link_cert, *link_key;
    long pool_cap_bits, peer_timeout_ms;
    sae a1, a2, b1, b2, x;
} TB;

static const char *const PART[2] = { "kme-a", "kme-b" };

static char *env_value(const char *key)
{
    return testbed_env_value(TB.dir, key);
}

static long env_long(const char *key, long dflt)
{
    char *v = env_value(key);
    long n = v != NULL ? strtol(v, NULL, 10) : dflt;
    free(v);
    return n;
}

/* The first line of DIR/testbed.mode ("pair" or "single: reason"). */
static char *read_mode(void)
{
    char path[4096], line[2048] = "";
    snprintf(path, sizeof path, "%s/testbed.mode", TB.dir);
    FILE *f = fopen(path, "r");
    if (f != NULL) {
        if (fgets(line, sizeof line, f) == NULL)
            line[0] = '\0';
        fclose(f);
    }
    line[strcspn(line, "\r\n")] = '\0';
    return strdup(line[0] ? line : "unknown (no testbed.mode)");
}

/* 0: a pair testbed is loaded; 77: skip (reason printed); 1: error. */
static int testbed_load(void)
{
    const char *dir = getenv("TESTBED_DIR");
    if (dir == NULL || dir[0] == '\0') {
        fprintf(stderr, "TESTBED_DIR is not set: run through tests/system/run-with-testbed\n");
        return 1;
    }
    TB.dir = strdup(dir);
    const char *script = getenv("TESTBED_SCRIPT");
    TB.script = script != NULL ? strdup(script) : NULL;
    TB.mode = read_mode();
    char *m = env_value("TESTBED_MODE");
    bool pair = m != NULL && strcmp(m, "pair") == 0;
    free(m);
    if (!pair) {
        printf("SKIP: the testbed runs without KME-B and the link: %s\n", TB.mode);
        return 77;
    }
    if (TB.script == NULL) {
        fprintf(stderr, "TESTBED_SCRIPT is not set: run through tests/system/run-with-testbed\n");
        return 1;
    }
    TB.ca = env_value("CA_CERT");
    static const char *const pfx[2] = { "KME_A", "KME_B" };
    char k[64];
    for (int i = 0; i < 2; i++) {
        snprintf(k, sizeof k, "%s_URL", pfx[i]);
        TB.url[i] = env_value(k);
        snprintf(k, sizeof k, "%s_ID", pfx[i]);
        TB.kme_id[i] = env_value(k);
        snprintf(k, sizeof k, "%s_PEER_URL", pfx[i]);
        TB.peer_url[i] = env_value(k);
        snprintf(k, sizeof k, "%s_LINK_URL", pfx[i]);
        TB.link_url[i] = env_value(k);
        snprintf(k, sizeof k, "%s_CERT", pfx[i]);
        TB.kme_cert[i] = env_value(k);
        snprintf(k, sizeof k, "%s_KEY", pfx[i]);
        TB.kme_key[i] = env_value(k);
        if (!TB.url[i] || !TB.kme_id[i] || !TB.peer_url[i] || !TB.link_url[i] || !TB.kme_cert[i]
            || !TB.kme_key[i]) {
            fprintf(stderr, "testbed.env lacks a %s_* variable (URL, ID, PEER_URL, LINK_URL, CERT, KEY)\n",
                    pfx[i]);
            return 1;
        }
    }
    TB.link_cert = env_value("LINK_CERT");
    TB.link_key = env_value("LINK_KEY");
    TB.pool_cap_bits = env_long("LINK_POOL_CAP_BITS", 268435456L);
    TB.peer_timeout_ms = env_long("PEER_TIMEOUT_MS", 2000);
    tb_sae_load(&TB.a1, TB.dir, "SAE_A1");
    tb_sae_load(&TB.a2, TB.dir, "SAE_A2");
    tb_sae_load(&TB.b1, TB.dir, "SAE_B1");
    tb_sae_load(&TB.b2, TB.dir, "SAE_B2");
    tb_sae_load(&TB.x, TB.dir, "SAE_X");
    if (!TB.ca || !TB.link_cert || !TB.link_key || !TB.a1.id || !TB.a2.id || !TB.b1.id
        || !TB.b2.id || !TB.x.id) {
        fprintf(stderr, "testbed.env lacks CA_CERT, LINK_CERT/KEY or an SAE\n");
        return 1;
    }
    return 0;
}

/* Run scripts/testbed CMD DIR PART; its exit status. */
static int testbed_cmd(const char *cmd, const char *part)
{
    char line[8192];
    snprintf(line, sizeof line, "'%s' %s '%s' %s >>'%s/pair-test-testbed.log' 2>&1", TB.script, cmd,
             TB.dir, part, TB.dir);
    int rc = system(line);
    return rc == -1 ? -1 : WIFEXITED(rc) ? WEXITSTATUS(rc) : 128 + WTERMSIG(rc);
}

#define TESTBED(cmd, part)                                                                   \
    do {                                                                                     \
        int rc_ = testbed_cmd((cmd), (part));                                                \
        CHECK(rc_ == 0, "scripts/testbed %s %s failed (status %d; see %s/pair-test-testbed.log)", \
              (cmd), (part), rc_, TB.dir);                                                   \
    } while (0)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms)
{
    struct timespec d = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };
    nanosleep(&d, NULL);
}

/* A libqkd014 client of SAE s at KME k (never NULL: fails the test). */
static qkd014_client *client_at(int k, const sae *s)
{
    qkd014_options o = { .version = QKD014_OPTIONS_VERSION,
                         .kme_url = TB.url[k], .cert_file = s->cert, .key_file = s->key,
                         .ca_file = TB.ca, .expected_kme_id = TB.kme_id[k],
                         .timeout_ms = 20000 };
    qkd014_client *c = NULL;
    qkd014_code rc = qkd014_client_new(&o, &c);
    CHECK(rc == QKD014_OK && c != NULL, "client for %s at %s: %s", s->id, TB.kme_id[k],
          qkd014_strerror(rc));
    return c;
}

static bool same_key(const qkd014_key *a, const qkd014_key *b)
{
    return a->key_len == b->key_len && memcmp(a->key, b->key, a->key_len) == 0;
}

/* ------------------------------------------------------- link state (pool) */

typedef struct pool {
    uint64_t own, peer, cap;
    size_t unconfirmed;
} pool;

typedef struct buf {
    char *p;
    size_t n;
} buf;

static size_t buf_write(char *data, size_t sz, size_t nm, void *ud)
{
    buf *b = ud;
    size_t n = sz * nm;
    if (b->n + n > (1u << 24))
        return 0;
    char *p = realloc(b->p, b->n + n + 1);
    if (p == NULL)
        return 0;
    memcpy(p + b->n, data, n);
    b->p = p;
    b->n += n;
    b->p[b->n] = '\0';
    return n;
}

/* One HTTPS request with a client certificate; the HTTP status (0 if none
 * came: TLS refusal, connection error) and the body in *body (malloc'd). */
static long https_call(const char *url, const char *method, const char *cert, const char *key,
                       const char *json, char **body, CURLcode *cc_out)
{
    CURL *h = curl_easy_init();
    buf b = { 0 };
    long status = 0;
    struct curl_slist *hdr = NULL;
    if (h == NULL)
        return 0;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CAINFO, TB.ca);
    curl_easy_setopt(h, CURLOPT_SSLCERT, cert);
    curl_easy_setopt(h, CURLOPT_SSLKEY, key);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, buf_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    if (json != NULL) {
        hdr = curl_slist_append(hdr, "Content-Type: application/json");
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, json);
    }
    if (method != NULL)
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    CURLcode cc = curl_easy_perform(h);
    if (cc == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (cc_out != NULL)
        *cc_out = cc;
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    if (body != NULL)
        *body = b.p;
    else
        free(b.p);
    return status;
}

static int get_u64(json_t *o, const char *k, uint64_t *v)
{
    json_t *x = json_object_get(o, k);
    if (!json_is_integer(x) || json_integer_value(x) < 0)
        return -1;
    *v = (uint64_t)json_integer_value(x);
    return 0;
}

/* GET /link/v1/state of KME k with the link's certificate.  Accepts the
 * pool as {"own_bits","peer_bits","cap_bits"} or as {"A": {"bits",
 * "cap_bits"}, "B": {...}} (docs/kme-pair.md). */
static int link_state(int k, pool *out, char *err, size_t errlen)
{
    char url[1024], *body = NULL;
    snprintf(url, sizeof url, "%s/link/v1/state", TB.link_url[k]);
    CURLcode cc;
    long st = https_call(url, NULL, TB.link_cert, TB.link_key, NULL, &body, &cc);
    int rc = -1;
    json_t *o = st == 200 && body ? json_loads(body, 0, NULL) : NULL;
    json_t *p = json_object_get(o, "pool");
    memset(out, 0, sizeof *out);
    if (json_is_object(p)) {
        if (json_object_get(p, "own_bits") != NULL) {
            rc = get_u64(p, "own_bits", &out->own) | get_u64(p, "peer_bits", &out->peer)
               | get_u64(p, "cap_bits", &out->cap);
        } else {
            json_t *me = json_object_get(p, k == KA ? "A" : "B");
            json_t *other = json_object_get(p, k == KA ? "B" : "A");
            rc = get_u64(me, "bits", &out->own) | get_u64(other, "bits", &out->peer)
               | get_u64(me, "cap_bits", &out->cap);
        }
        out->unconfirmed = json_array_size(json_object_get(o, "unconfirmed"));
    }
    if (rc != 0)
        snprintf(err, errlen, "GET %.300s: %s, HTTP %ld, body %.200s", url, curl_easy_strerror(cc), st,
                 body ? body : "(none)");
    json_decref(o);
    free(body);
    return rc != 0 ? -1 : 0;
}

/* Wait (up to secs) until both KMEs agree: own bits at A == peer bits at B
 * and peer bits at A == own bits at B, nothing unconfirmed, and the same
 * reading twice 300 ms apart (the link idle at the cap, voids replayed). */
static void check_pools_consistent(const char *when, double secs)
{
    pool a, b, pa = { 0 }, pb = { 0 };
    char err[1024] = "";
    double end = now_s() + secs;
    bool ok = false, have_prev = false;
    while (!ok && now_s() < end) {
        if (link_state(KA, &a, err, sizeof err) == 0 && link_state(KB, &b, err, sizeof err) == 0) {
            CHECK(a.own <= a.cap && b.own <= b.cap, "%s: pool above its cap (A own %llu cap %llu, B own %llu cap %llu)",
                  when, (unsigned long long)a.own, (unsigned long long)a.cap,
                  (unsigned long long)b.own, (unsigned long long)b.cap);
            ok = have_prev && a.own == b.peer && a.peer == b.own && a.unconfirmed == 0
                 && b.unconfirmed == 0 && memcmp(&a, &pa, sizeof a) == 0
                 && memcmp(&b, &pb, sizeof b) == 0;
            pa = a;
            pb = b;
            have_prev = true;
        }
        if (!ok)
            sleep_ms(300);
    }
    CHECK(have_prev, "%s: cannot read the link state: %s", when, err);
    CHECK(ok, "%s: the KMEs' pools disagree after %.0f s: A own %llu peer %llu (unconfirmed %zu), "
          "B own %llu peer %llu (unconfirmed %zu)", when, secs, (unsigned long long)pa.own,
          (unsigned long long)pa.peer, pa.unconfirmed, (unsigned long long)pb.own,
          (unsigned long long)pb.peer, pb.unconfirmed);
    print_message("%s: pools consistent: A-owned %llu bits, B-owned %llu bits\n", when,
                  (unsigned long long)pa.own, (unsigned long long)pb.own);
}

/* stored_key_count of master -> slave at KME k, or -1. */
static long stored_count(int k, const sae *master, const char *slave)
{
    qkd014_client *c = client_at(k, master);
    qkd014_status *s = NULL;
    long n = -1;
    if (qkd014_get_status(c, slave, &s) == QKD014_OK)
        n = s->stored_key_count;
    qkd014_status_free(s);
    qkd014_client_free(c);
    return n;
}

/* Wait until master -> slave at KME k shows stored keys. */
static void wait_keys(int k, const sae *master, const char *slave, double secs)
{
    double end = now_s() + secs;
    long n;
    while ((n = stored_count(k, master, slave)) <= 0 && now_s() < end)
        sleep_ms(200);
    CHECK(n > 0, "no keys %s -> %s at %s within %.0f s (stored_key_count %ld)", master->id, slave,
          TB.kme_id[k], secs, n);
}

/* ------------------------------------------------------------- round trips */

/* enc_keys at KME mk by master for slave (number, size; extra slaves), then
 * dec_keys at KME sk by each slave; all keys equal, second fetch refused. */
static void round_trip(int mk, const sae *master, int sk, const sae *const *slaves, size_t n_slaves,
                       int32_t number, int32_t size, bool post)
{
    qkd014_client *m = client_at(mk, master);
    const char *extra[4];
    for (size_t i = 1; i < n_slaves; i++)
        extra[i - 1] = slaves[i]->id;
    qkd014_key_request rq = { .version = QKD014_KEY_REQUEST_VERSION, .number = number, .size = size,
                              .additional_slaves = n_slaves > 1 ? extra : NULL,
                              .n_additional = n_slaves - 1,
                              .extension_optional_json = post && n_slaves == 1 ? "[{\"x_qumail_test\": true}]" : NULL };
    qkd014_keys *enc = NULL;
    qkd014_code rc = qkd014_get_key(m, slaves[0]->id, &rq, &enc);
    CHECK(rc == QKD014_OK, "enc_keys %s -> %s at %s (number %d size %d%s): %s: %s", master->id,
          slaves[0]->id, TB.kme_id[mk], number, size, post ? ", POST" : "", qkd014_strerror(rc),
          qkd014_errmsg(m));
    CHECK(enc->n == (size_t)(number ? number : 1), "%zu keys for number %d", enc->n, number);
    size_t want_len = (size_t)(size ? size : 256) / 8;
    const char **ids = calloc(enc->n, sizeof *ids);
    for (size_t i = 0; i < enc->n; i++) {
        CHECK(enc->keys[i].key_len == want_len, "key of %zu bytes, want %zu", enc->keys[i].key_len,
              want_len);
        ids[i] = enc->keys[i].key_id;
    }
    for (size_t s = 0; s < n_slaves; s++) {
        qkd014_client *c = client_at(sk, slaves[s]);
        qkd014_keys *dec = NULL;
        rc = qkd014_get_key_with_ids(c, master->id, ids, enc->n, &dec);
        CHECK(rc == QKD014_OK, "dec_keys by %s at %s of %zu keys: %s: %s", slaves[s]->id,
              TB.kme_id[sk], enc->n, qkd014_strerror(rc), qkd014_errmsg(c));
        for (size_t i = 0; i < enc->n; i++)
            CHECK(same_key(&enc->keys[i], &dec->keys[i]), "slave %s got other bytes for key %s",
                  slaves[s]->id, ids[i]);
        qkd014_keys_free(dec);
        dec = NULL;
        /* I2: once to each slave. */
        rc = qkd014_get_key_with_ids(c, master->id, ids, 1, &dec);
        CHECK(rc == QKD014_E_BAD_REQUEST, "second dec_keys of %s by %s: %s (want 400)", ids[0],
              slaves[s]->id, qkd014_strerror(rc));
        CHECK(strstr(qkd014_errmsg(c), MSG_NOT_FOUND) != NULL, "second fetch message: %s",
              qkd014_errmsg(c));
        qkd014_client_free(c);
    }
    free(ids);
    qkd014_keys_free(enc);
    qkd014_client_free(m);
}

static void test_status_remote(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        const sae *master = k == KA ? &TB.a1 : &TB.b1;
        const sae *slave = k == KA ? &TB.b1 : &TB.a1;
        qkd014_client *c = client_at(k, master);
        qkd014_status *s = NULL;
        qkd014_code rc = qkd014_get_status(c, slave->id, &s);
        CHECK(rc == QKD014_OK, "status %s -> %s at %s: %s: %s", master->id, slave->id,
              TB.kme_id[k], qkd014_strerror(rc), qkd014_errmsg(c));
        CHECK(strcmp(s->source_kme_id, TB.kme_id[k]) == 0, "source_KME_ID %s", s->source_kme_id);
        CHECK(strcmp(s->target_kme_id, TB.kme_id[1 - k]) == 0, "target_KME_ID %s, want %s",
              s->target_kme_id, TB.kme_id[1 - k]);
        CHECK(s->key_size == 256, "key_size %d", s->key_size);
        CHECK(s->stored_key_count > 0, "stored_key_count %d on a ready testbed", s->stored_key_count);
        CHECK(s->max_key_count == (int32_t)(TB.pool_cap_bits / 256), "max_key_count %d, want %ld",
              s->max_key_count, TB.pool_cap_bits / 256);
        CHECK(s->stored_key_count <= s->max_key_count, "stored %d > max %d", s->stored_key_count,
              s->max_key_count);
        qkd014_status_free(s);
        qkd014_client_free(c);
    }
}

static void test_round_trip_single(void **state)
{
    (void)state;
    const sae *to_b[] = { &TB.b1 }, *to_a[] = { &TB.a1 };
    round_trip(KA, &TB.a1, KB, to_b, 1, 0, 0, false);     /* GET, defaults */
    round_trip(KB, &TB.b1, KA, to_a, 1, 0, 0, false);
    round_trip(KA, &TB.a1, KB, to_b, 1, 1, 512, true);    /* POST */
    round_trip(KB, &TB.b1, KA, to_a, 1, 1, 64, true);
}

static void test_round_trip_batches(void **state)
{
    (void)state;
    const sae *to_b[] = { &TB.b2 }, *to_a[] = { &TB.a2 };
    round_trip(KA, &TB.a1, KB, to_b, 1, 64, 256, false);  /* GET ?number&size */
    round_trip(KB, &TB.b1, KA, to_a, 1, 64, 256, false);
    round_trip(KA, &TB.a2, KB, to_b, 1, 1024, 1024, true); /* POST, the request limit */
    round_trip(KB, &TB.b2, KA, to_a, 1, 16, 65536, true);  /* max_key_size */
}

static void test_multicast(void **state)
{
    (void)state;
    const sae *to_b[] = { &TB.b1, &TB.b2 };
    round_trip(KA, &TB.a1, KB, to_b, 2, 4, 256, false);
    const sae *to_a[] = { &TB.a1, &TB.a2 };
    round_trip(KB, &TB.b1, KA, to_a, 2, 3, 128, false);
    /* Slaves behind two KMEs: refused (no relay), nothing delivered. */
    qkd014_client *m = client_at(KA, &TB.a1);
    const char *extra[] = { TB.a2.id };
    qkd014_key_request rq = { .version = QKD014_KEY_REQUEST_VERSION,
                              .additional_slaves = extra, .n_additional = 1 };
    qkd014_keys *k = NULL;
    qkd014_code rc = qkd014_get_key(m, TB.b1.id, &rq, &k);
    CHECK(rc == QKD014_E_BAD_REQUEST, "multicast across KMEs: %s (want 400)", qkd014_strerror(rc));
    qkd014_client_free(m);
}

/* I2 across KMEs: only the named slave at the slave's KME gets the key. */
static void test_only_named_slave(void **state)
{
    (void)state;
    qkd014_client *m = client_at(KA, &TB.a1);
    qkd014_keys *enc = NULL, *dec = NULL;
    qkd014_code rc = qkd014_get_key(m, TB.b1.id, NULL, &enc);
    CHECK(rc == QKD014_OK, "enc_keys: %s: %s", qkd014_strerror(rc), qkd014_errmsg(m));
    const char *id = enc->keys[0].key_id;
    qkd014_client *other = client_at(KB, &TB.b2);
    rc = qkd014_get_key_with_ids(other, TB.a1.id, &id, 1, &dec);
    CHECK(rc == QKD014_E_UNAUTHORIZED, "SAE_B2 (known, not named) asked for a key of SAE_B1: %s "
          "(want 401, digest table)", qkd014_strerror(rc));
    qkd014_client_free(other);
    qkd014_client *local = client_at(KA, &TB.a2);
    rc = qkd014_get_key_with_ids(local, TB.a1.id, &id, 1, &dec);
    CHECK(rc == QKD014_E_BAD_REQUEST || rc == QKD014_E_UNAUTHORIZED,
          "SAE_A2 at KME-A asked for a key of SAE_B1 (held at KME-B): %s (want 400 or 401)",
          qkd014_strerror(rc));
    qkd014_client_free(local);
    qkd014_client *s = client_at(KB, &TB.b1);
    rc = qkd014_get_key_with_ids(s, TB.a1.id, &id, 1, &dec);
    CHECK(rc == QKD014_OK, "the named slave cannot fetch: %s: %s", qkd014_strerror(rc),
          qkd014_errmsg(s));
    CHECK(same_key(&enc->keys[0], &dec->keys[0]), "slave's key differs");
    qkd014_keys_free(dec);
    qkd014_keys_free(enc);
    qkd014_client_free(s);
    qkd014_client_free(m);
}

/* --------------------------------------------------- records of many keys */

enum { ST_ACKED = 1, ST_FETCHED = 2, ST_DOUBT = 3 }; /* DOUBT: dec_keys got no answer */

typedef struct rec {
    char id[QKD014_KEY_ID_LEN + 1];
    uint8_t key[32];
    int mk;        /* KME of the master */
    int state;
} rec;

static struct recs {
    pthread_mutex_t mu;
    rec *v;
    size_t n, cap;
} R = { .mu = PTHREAD_MUTEX_INITIALIZER };

static void recs_reset(void)
{
    pthread_mutex_lock(&R.mu);
    if (R.v != NULL)
        memset(R.v, 0, R.cap * sizeof *R.v);
    free(R.v);
    R.v = NULL;
    R.n = R.cap = 0;
    pthread_mutex_unlock(&R.mu);
}

/* Record the keys a master received (256-bit keys); index of the first. */
static size_t recs_add(const qkd014_keys *k, int mk)
{
    pthread_mutex_lock(&R.mu);
    if (R.n + k->n > R.cap) {
        size_t cap = R.cap ? R.cap * 2 : 4096;
        while (cap < R.n + k->n)
            cap *= 2;
        rec *v = realloc(R.v, cap * sizeof *v);
        if (v == NULL) {
            pthread_mutex_unlock(&R.mu);
            abort();
        }
        R.v = v;
        R.cap = cap;
    }
    size_t first = R.n;
    for (size_t i = 0; i < k->n; i++) {
        rec *r = &R.v[R.n++];
        memcpy(r->id, k->keys[i].key_id, sizeof r->id);
        memset(r->key, 0, sizeof r->key);
        memcpy(r->key, k->keys[i].key, k->keys[i].key_len < 32 ? k->keys[i].key_len : 32);
        r->mk = mk;
        r->state = ST_ACKED;
    }
    pthread_mutex_unlock(&R.mu);
    return first;
}

static void recs_mark(size_t first, size_t n, int state)
{
    pthread_mutex_lock(&R.mu);
    for (size_t i = 0; i < n; i++)
        R.v[first + i].state = state;
    pthread_mutex_unlock(&R.mu);
}

static int cmp_id(const void *a, const void *b)
{
    return strcmp(((const rec *)a)->id, ((const rec *)b)->id);
}

static int cmp_key(const void *a, const void *b)
{
    return memcmp(((const rec *)a)->key, ((const rec *)b)->key, 32);
}

/* I1: no key ID and no key bytes twice among all keys masters received. */
static void check_unique(const char *when)
{
    rec *v = malloc((R.n ? R.n : 1) * sizeof *v);
    CHECK(v != NULL, "out of memory");
    memcpy(v, R.v, R.n * sizeof *v);
    qsort(v, R.n, sizeof *v, cmp_id);
    size_t dup_id = 0, dup_key = 0;
    for (size_t i = 1; i < R.n; i++)
        dup_id += strcmp(v[i - 1].id, v[i].id) == 0;
    qsort(v, R.n, sizeof *v, cmp_key);
    for (size_t i = 1; i < R.n; i++)
        dup_key += memcmp(v[i - 1].key, v[i].key, 32) == 0;
    memset(v, 0, R.n * sizeof *v);
    free(v);
    CHECK(dup_id == 0, "%s: %zu key IDs delivered twice among %zu keys", when, dup_id, R.n);
    CHECK(dup_key == 0, "%s: %zu keys share their bytes with another among %zu keys", when, dup_key,
          R.n);
}

/* -------------------------------------------------------- load in threads */

typedef struct loader {
    pthread_t th;
    int mk;                   /* KME of the master: KA or KB */
    int number;
    bool fetch_all;           /* fetch every batch (else every other one) */
    atomic_int *stop;
    unsigned long ok, errors, mismatches, fetched;
    char first_error[256];
} loader;

static void note(loader *l, const char *what, qkd014_client *c, qkd014_code rc)
{
    if (l->errors++ == 0)
        snprintf(l->first_error, sizeof l->first_error, "%s: %s: %s", what, qkd014_strerror(rc),
                 qkd014_errmsg(c));
}

static qkd014_client *client_quiet(int k, const sae *s)
{
    qkd014_options o = { .version = QKD014_OPTIONS_VERSION,
                         .kme_url = TB.url[k], .cert_file = s->cert, .key_file = s->key,
                         .ca_file = TB.ca, .expected_kme_id = TB.kme_id[k],
                         .connect_timeout_ms = 2000, .timeout_ms = 8000 };
    qkd014_client *c = NULL;
    return qkd014_client_new(&o, &c) == QKD014_OK ? c : NULL;
}

static void *load_run(void *arg)
{
    loader *l = arg;
    int sk = 1 - l->mk;
    const sae *master = l->mk == KA ? &TB.a1 : &TB.b1;
    const sae *slave = l->mk == KA ? &TB.b1 : &TB.a1;
    qkd014_client *m = client_quiet(l->mk, master), *s = client_quiet(sk, slave);
    qkd014_key_request rq = { .version = QKD014_KEY_REQUEST_VERSION,
                              .number = l->number, .size = 256 };
    unsigned long iter = 0;
    while (m && s && !atomic_load(l->stop)) {
        qkd014_keys *enc = NULL, *dec = NULL;
        qkd014_code rc = qkd014_get_key(m, slave->id, &rq, &enc);
        if (rc != QKD014_OK) {
            note(l, "enc_keys", m, rc);
            sleep_ms(20);
            continue;
        }
        l->ok += enc->n;
        size_t first = recs_add(enc, l->mk);
        if (l->fetch_all || iter++ % 2 == 0) {
            const char *ids[64];
            for (size_t i = 0; i < enc->n; i++)
                ids[i] = enc->keys[i].key_id;
            recs_mark(first, enc->n, ST_DOUBT);
            rc = qkd014_get_key_with_ids(s, master->id, ids, enc->n, &dec);
            if (rc != QKD014_OK) {
                note(l, "dec_keys", s, rc);
                /* An answer (400, 503, ...) means nothing was consumed;
                 * without one the fetch may have happened. */
                if (qkd014_last_http_status(s) != 0)
                    recs_mark(first, enc->n, ST_ACKED);
            } else {
                for (size_t i = 0; i < enc->n; i++)
                    l->mismatches += !same_key(&enc->keys[i], &dec->keys[i]);
                l->fetched += enc->n;
                recs_mark(first, enc->n, ST_FETCHED);
            }
        }
        qkd014_keys_free(enc);
        qkd014_keys_free(dec);
    }
    if (!m || !s)
        note(l, "client", NULL, QKD014_E_USAGE);
    qkd014_client_free(m);
    qkd014_client_free(s);
    return NULL;
}

#define LOADERS_PER_SIDE 4

/* n loaders, masters all at KME mk, or (mk < 0) alternately at KME-A and
 * KME-B. */
static void loaders_start_at(loader *ls, int n, int mk, atomic_int *stop, int number,
                             bool fetch_all)
{
    for (int i = 0; i < n; i++) {
        memset(&ls[i], 0, sizeof ls[i]);
        ls[i].mk = mk >= 0 ? mk : i % 2 == 0 ? KA : KB;
        ls[i].number = number;
        ls[i].fetch_all = fetch_all;
        ls[i].stop = stop;
        CHECK(pthread_create(&ls[i].th, NULL, load_run, &ls[i]) == 0, "pthread_create");
    }
}

static void loaders_start(loader *ls, int n, atomic_int *stop, int number, bool fetch_all)
{
    loaders_start_at(ls, n, -1, stop, number, fetch_all);
}

static void loaders_join(loader *ls, int n, unsigned long *ok, unsigned long *errors,
                         unsigned long *mismatches)
{
    *ok = *errors = *mismatches = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(ls[i].th, NULL);
        *ok += ls[i].ok;
        *errors += ls[i].errors;
        *mismatches += ls[i].mismatches;
    }
}

static void test_concurrent_both_directions(void **state)
{
    (void)state;
    recs_reset();
    loader ls[2 * LOADERS_PER_SIDE];
    atomic_int stop = 0;
    loaders_start(ls, 2 * LOADERS_PER_SIDE, &stop, 4, true);
    sleep_ms(3000);
    atomic_store(&stop, 1);
    unsigned long ok, errors, mismatches;
    loaders_join(ls, 2 * LOADERS_PER_SIDE, &ok, &errors, &mismatches);
    unsigned long ab = 0, ba = 0;
    for (int i = 0; i < 2 * LOADERS_PER_SIDE; i++)
        *(ls[i].mk == KA ? &ab : &ba) += ls[i].fetched;
    print_message("concurrent load: %lu keys A->B and %lu keys B->A fetched by their slaves "
                  "(%d threads per side)\n", ab, ba, LOADERS_PER_SIDE);
    for (int i = 0; i < 2 * LOADERS_PER_SIDE; i++)
        CHECK(ls[i].errors == 0, "thread %d (%s master): %lu errors, first: %s", i,
              ls[i].mk == KA ? "A" : "B", ls[i].errors, ls[i].first_error);
    CHECK(mismatches == 0, "%lu slave fetches differ from the master's key", mismatches);
    CHECK(ab > 0 && ba > 0, "no keys in one direction (A->B %lu, B->A %lu)", ab, ba);
    check_unique("concurrent load");
    recs_reset();
}

/* Whether the log of KME part (kme-a, kme-b) has a line containing what. */
static bool log_has(const char *part, const char *what)
{
    char path[4096], line[4096];
    snprintf(path, sizeof path, "%s/%s.log", TB.dir, part);
    FILE *f = fopen(path, "r");
    bool found = false;
    while (f != NULL && !found && fgets(line, sizeof line, f) != NULL)
        found = strstr(line, what) != NULL;
    if (f != NULL)
        fclose(f);
    return found;
}

/* 16 clients at once, all A->B: their reservations must travel to KME-B
 * in batches of more than one (KME-A logs when its largest batch grows),
 * and every key must still arrive intact, once. */
#define BATCH_LOADERS 16

static void test_batches_form(void **state)
{
    (void)state;
    recs_reset();
    loader ls[BATCH_LOADERS];
    atomic_int stop = 0;
    loaders_start_at(ls, BATCH_LOADERS, KA, &stop, 1, true);
    sleep_ms(2000);
    atomic_store(&stop, 1);
    unsigned long ok, errors, mismatches;
    loaders_join(ls, BATCH_LOADERS, &ok, &errors, &mismatches);
    print_message("16 clients: %lu keys; KME-A batched: %s\n", ok,
                  log_has("kme-a", "reservations coalesced into one request") ? "yes" : "no");
    for (int i = 0; i < BATCH_LOADERS; i++)
        CHECK(ls[i].errors == 0, "thread %d (%s master): %lu errors, first: %s", i,
              ls[i].mk == KA ? "A" : "B", ls[i].errors, ls[i].first_error);
    CHECK(mismatches == 0, "%lu slave fetches differ from the master's key", mismatches);
    CHECK(log_has("kme-a", "reservations coalesced into one request"),
          "KME-A sent no reservation batch of more than one under %d clients", BATCH_LOADERS);
    check_unique("batched load");
    recs_reset();
}

/* ------------------------------------------------------------ crash tests */

/* Fetch every recorded key of master KME mk by its slave; counts per
 * outcome.  Keys of the first kind must come back identical. */
static void fetch_recorded(int state, int mk, size_t *ok, size_t *refused, size_t *other,
                           size_t *mismatch, char *first, size_t firstlen)
{
    int sk = 1 - mk;
    const sae *master = mk == KA ? &TB.a1 : &TB.b1;
    const sae *slave = mk == KA ? &TB.b1 : &TB.a1;
    qkd014_client *c = client_at(sk, slave);
    *ok = *refused = *other = *mismatch = 0;
    for (size_t i = 0; i < R.n; i++) {
        rec *r = &R.v[i];
        if (r->mk != mk || r->state != state)
            continue;
        const char *id = r->id;
        qkd014_keys *dec = NULL;
        qkd014_code rc = qkd014_get_key_with_ids(c, master->id, &id, 1, &dec);
        if (rc == QKD014_OK) {
            (*ok)++;
            *mismatch += dec->keys[0].key_len != 32 || memcmp(dec->keys[0].key, r->key, 32) != 0;
        } else if (rc == QKD014_E_BAD_REQUEST) {
            (*refused)++;
        } else {
            if (*other == 0)
                snprintf(first, firstlen, "%s: %s: %s", id, qkd014_strerror(rc), qkd014_errmsg(c));
            (*other)++;
        }
        qkd014_keys_free(dec);
    }
    qkd014_client_free(c);
}

static void crash_test(int victim)
{
    const char *name = TB.kme_id[victim];
    recs_reset();
    loader ls[2 * LOADERS_PER_SIDE];
    atomic_int stop = 0;
    loaders_start(ls, 2 * LOADERS_PER_SIDE, &stop, 2, false);
    sleep_ms(1500);
    TESTBED("kill", PART[victim]);
    sleep_ms(500);
    atomic_store(&stop, 1);
    unsigned long ok, errors, mismatches;
    loaders_join(ls, 2 * LOADERS_PER_SIDE, &ok, &errors, &mismatches);
    CHECK(mismatches == 0, "%lu slave fetches differed before the crash", mismatches);
    CHECK(ok > 0, "no key was delivered before the crash of %s", name);
    TESTBED("start", PART[victim]);

    char first[512] = "";
    size_t n_ok, n_ref, n_other, n_mis;
    for (int mk = 0; mk < 2; mk++) {
        /* I6: every key a master received is retrievable by its slave. */
        fetch_recorded(ST_ACKED, mk, &n_ok, &n_ref, &n_other, &n_mis, first, sizeof first);
        print_message("crash of %s: %zu unfetched keys with masters at %s: %zu retrieved, "
                      "%zu refused, %zu failed\n", name, n_ok + n_ref + n_other, TB.kme_id[mk], n_ok,
                      n_ref, n_other);
        CHECK(n_other == 0, "after the crash of %s: fetch failed: %s", name, first);
        CHECK(n_ref == 0, "after the crash of %s: %zu keys acknowledged to masters at %s are gone",
              name, n_ref, TB.kme_id[mk]);
        CHECK(n_mis == 0, "after the crash of %s: %zu keys came back with other bytes", name, n_mis);
        for (size_t i = 0; i < R.n; i++)
            if (R.v[i].mk == mk && R.v[i].state == ST_ACKED)
                R.v[i].state = ST_FETCHED;
        /* Fetches cut by the crash: the key is there or was consumed. */
        fetch_recorded(ST_DOUBT, mk, &n_ok, &n_ref, &n_other, &n_mis, first, sizeof first);
        CHECK(n_other == 0, "after the crash of %s: fetch of a key in doubt failed: %s", name, first);
        CHECK(n_mis == 0, "after the crash of %s: %zu keys in doubt came back with other bytes", name,
              n_mis);
        print_message("crash of %s: %zu keys whose fetch the crash cut: %zu retrieved now, %zu "
                      "consumed then\n", name, n_ok + n_ref, n_ok, n_ref);
        for (size_t i = 0; i < R.n; i++)
            if (R.v[i].mk == mk && R.v[i].state == ST_DOUBT)
                R.v[i].state = ST_FETCHED;
        /* I2: every fetched key is gone now (fetched before the crash or just now). */
        fetch_recorded(ST_FETCHED, mk, &n_ok, &n_ref, &n_other, &n_mis, first, sizeof first);
        CHECK(n_other == 0, "second fetch failed otherwise than 400: %s", first);
        CHECK(n_ok == 0, "after the crash of %s: %zu keys delivered twice to their slave", name,
              n_ok);
    }
    check_unique(name);
    recs_reset();
    check_pools_consistent(name, 30);
    if (victim == KA) {
        /* KME-A answers a master before its outbox entry is dropped: the
         * entries a kill leaves pending are settled by asking KME-B (the
         * keys above were all retrievable, so none applied was voided) */
        bool unknown = log_has("kme-a", "reservations of unknown fate");
        print_message("crash of KME-A: reservations of unknown fate at restart: %s\n",
                      unknown ? "yes, settled with KME-B" : "none");
        CHECK(!unknown || log_has("kme-a", "reservation of unknown fate for KME"),
              "KME-A restarted with reservations of unknown fate but settled none");
    }
    /* Both directions work again. */
    const sae *to_b[] = { &TB.b1 }, *to_a[] = { &TB.a1 };
    round_trip(KA, &TB.a1, KB, to_b, 1, 2, 256, false);
    round_trip(KB, &TB.b1, KA, to_a, 1, 2, 256, false);
}

static void test_crash_kme_a(void **state)
{
    (void)state;
    crash_test(KA);
}

static void test_crash_kme_b(void **state)
{
    (void)state;
    crash_test(KB);
}

/* ------------------------------------------------------- failure handling */

static void test_peer_stopped(void **state)
{
    (void)state;
    TESTBED("stop", "kme-b");
    qkd014_client *m = client_at(KA, &TB.a1);
    for (int i = 0; i < 3; i++) {
        qkd014_keys *k = NULL;
        double t0 = now_s();
        qkd014_code rc = qkd014_get_key(m, TB.b1.id, NULL, &k);
        double dt = now_s() - t0;
        CHECK(rc == QKD014_E_UNAVAILABLE, "enc_keys at A for SAE_B1 with KME-B stopped: %s "
              "(HTTP %ld; want 503)", qkd014_strerror(rc), qkd014_last_http_status(m));
        CHECK(k == NULL, "keys delivered although KME-B is down");
        CHECK(strlen(qkd014_errmsg(m)) > 0, "503 without a message");
        CHECK(dt <= (double)TB.peer_timeout_ms / 1000.0 + 1.0, "503 after %.2f s (bound %.1f s)", dt,
              (double)TB.peer_timeout_ms / 1000.0 + 1.0);
        if (i == 0)
            print_message("peer stopped: 503 \"%s\" after %.3f s\n", qkd014_errmsg(m), dt);
    }
    /* Local pairs at A are unaffected. */
    qkd014_keys *k = NULL;
    qkd014_code rc = qkd014_get_key(m, TB.a2.id, NULL, &k);
    CHECK(rc == QKD014_OK, "local pair at A with KME-B down: %s", qkd014_strerror(rc));
    qkd014_keys_free(k);
    qkd014_client_free(m);
    TESTBED("start", "kme-b");
    check_pools_consistent("peer stopped and restarted", 30);
    const sae *to_b[] = { &TB.b1 };
    round_trip(KA, &TB.a1, KB, to_b, 1, 1, 256, false);
}

/* A peer that accepts connections but does not answer (SIGSTOP): the
 * timeout path.  Concurrent calls, more than KME-A's SAE workers, each get
 * 503 within the peer timeout + 1 s of their own start and nothing
 * delivered; a call right after them gets 503 at once (KME-A knows the peer
 * is not answering and reserves nothing); once the peer runs again the void
 * of the burned bits reaches it and the pools agree. */
/* One enc_keys at KME-A for SAE_B1 in a thread: its outcome and time. */
typedef struct hung_call {
    pthread_t th;
    qkd014_code rc;
    double dt;
    bool got_keys;
    char msg[320];
} hung_call;

static void *hung_call_run(void *arg)
{
    hung_call *h = arg;
    qkd014_options o = { .version = QKD014_OPTIONS_VERSION,
                         .kme_url = TB.url[KA], .cert_file = TB.a1.cert, .key_file = TB.a1.key,
                         .ca_file = TB.ca, .expected_kme_id = TB.kme_id[KA],
                         .connect_timeout_ms = 10000, .timeout_ms = 10000 };
    qkd014_client *m = NULL;
    if (qkd014_client_new(&o, &m) != QKD014_OK)
        m = NULL;
    qkd014_keys *k = NULL;
    double t0 = now_s();
    h->rc = m != NULL ? qkd014_get_key(m, TB.b1.id, NULL, &k) : QKD014_E_USAGE;
    h->dt = now_s() - t0;
    h->got_keys = k != NULL;
    snprintf(h->msg, sizeof h->msg, "%s", m != NULL ? qkd014_errmsg(m) : "");
    qkd014_keys_free(k);
    qkd014_client_free(m);
    return NULL;
}

/* More than KME-A's SAE listener workers (16 with a peer): some calls wait
 * behind another on one worker; more than the batches KME-A keeps on the
 * way: some wait queued in the batcher. */
#define HUNG_CALLS 24

static void test_peer_hung(void **state)
{
    (void)state;
    char *pid_s = env_value("KME_B_PID");
    pid_t pid = pid_s != NULL ? (pid_t)strtol(pid_s, NULL, 10) : 0;
    free(pid_s);
    CHECK(pid > 1, "testbed.env has no KME_B_PID");
    CHECK(stored_count(KA, &TB.a1, TB.b1.id) > 0, "no keys A->B before the test");
    CHECK(kill(pid, SIGSTOP) == 0, "SIGSTOP to KME-B (pid %ld)", (long)pid);
    hung_call hc[HUNG_CALLS];
    memset(hc, 0, sizeof hc);
    for (int i = 0; i < HUNG_CALLS; i++)
        CHECK(pthread_create(&hc[i].th, NULL, hung_call_run, &hc[i]) == 0, "pthread_create");
    for (int i = 0; i < HUNG_CALLS; i++)
        pthread_join(hc[i].th, NULL);
    /* right after them: refused at once */
    qkd014_client *m = client_at(KA, &TB.a1);
    qkd014_keys *k = NULL;
    double t0 = now_s();
    qkd014_code rc = qkd014_get_key(m, TB.b1.id, NULL, &k);
    double dt = now_s() - t0;
    kill(pid, SIGCONT);
    double bound = (double)TB.peer_timeout_ms / 1000.0 + 1.0, worst = 0;
    int waited = 0;
    for (int i = 0; i < HUNG_CALLS; i++) {
        worst = hc[i].dt > worst ? hc[i].dt : worst;
        waited += hc[i].dt >= (double)TB.peer_timeout_ms / 2000.0;
    }
    print_message("peer hung: %d concurrent enc_keys answered 503, %d of them after the peer timeout, "
                  "the last after %.3f s\n", HUNG_CALLS, waited, worst);
    for (int i = 0; i < HUNG_CALLS; i++) {
        CHECK(hc[i].rc == QKD014_E_UNAVAILABLE && !hc[i].got_keys,
              "concurrent enc_keys %d with KME-B hung: %s (want 503, no keys)", i,
              qkd014_strerror(hc[i].rc));
        CHECK(strlen(hc[i].msg) > 0, "concurrent enc_keys %d: 503 without a message", i);
        CHECK(hc[i].dt <= bound, "concurrent enc_keys %d: 503 after %.2f s (bound %.1f s): %s", i,
              hc[i].dt, bound, hc[i].msg);
    }
    CHECK(waited > 0, "no concurrent call waited for the peer");
    CHECK(rc == QKD014_E_UNAVAILABLE, "enc_keys at A with KME-B hung: %s (HTTP %ld; want 503)",
          qkd014_strerror(rc), qkd014_last_http_status(m));
    CHECK(k == NULL, "keys delivered although KME-B did not answer");
    CHECK(strstr(qkd014_errmsg(m), "peer KME KME-B is not answering") != NULL,
          "the call after the others: %s", qkd014_errmsg(m));
    CHECK(dt < (double)TB.peer_timeout_ms / 2000.0, "the call after the others: 503 after %.2f s, "
          "not at once", dt);
    print_message("peer hung: then 503 \"%s\" after %.3f s\n", qkd014_errmsg(m), dt);
    qkd014_client_free(m);
    check_pools_consistent("peer hung and resumed", 30);
    const sae *to_b[] = { &TB.b1 };
    round_trip(KA, &TB.a1, KB, to_b, 1, 1, 256, false);
}

/* Take every A-owned key (A1 -> B1) with the link stopped, until 503. */
static void test_link_stopped_drain(void **state)
{
    (void)state;
    TESTBED("stop", "link");
    qkd014_client *m = client_at(KA, &TB.a1);
    long count = stored_count(KA, &TB.a1, TB.b1.id);
    CHECK(count > 0, "no keys at A before the drain (%ld)", count);
    unsigned long long taken_bits = 0;
    int requests = 0;
    qkd014_code rc = QKD014_OK;
    while (count > 0 && requests < 10000) {
        int32_t number, size;
        if (count >= 1024L * 256) {
            number = 1024;
            size = 65536;
        } else if (count >= 1024) {
            number = 1024;
            size = (int32_t)(count / 1024) * 256;
        } else {
            number = (int32_t)count;
            size = 256;
        }
        qkd014_key_request rq = { .version = QKD014_KEY_REQUEST_VERSION,
                                  .number = number, .size = size };
        qkd014_keys *k = NULL;
        rc = qkd014_get_key(m, TB.b1.id, &rq, &k);
        CHECK(rc == QKD014_OK, "drain: enc_keys number %d size %d with %ld keys stored: %s: %s",
              number, size, count, qkd014_strerror(rc), qkd014_errmsg(m));
        taken_bits += (unsigned long long)number * (unsigned long long)size;
        qkd014_keys_free(k);
        requests++;
        long next = stored_count(KA, &TB.a1, TB.b1.id);
        CHECK(next >= 0 && next < count, "stored_key_count %ld -> %ld after taking keys", count, next);
        count = next;
    }
    qkd014_keys *k = NULL;
    rc = qkd014_get_key(m, TB.b1.id, NULL, &k);
    CHECK(rc == QKD014_E_UNAVAILABLE, "enc_keys on an empty pool: %s (want 503)",
          qkd014_strerror(rc));
    CHECK(strlen(qkd014_errmsg(m)) > 0, "503 without a message");
    print_message("link stopped: drained %llu bits in %d requests; then 503 \"%s\"\n", taken_bits,
                  requests, qkd014_errmsg(m));
    pool a;
    char err[1024];
    CHECK(link_state(KA, &a, err, sizeof err) == 0, "link state: %s", err);
    CHECK(a.own < 256, "A's own pool holds %llu bits after the drain", (unsigned long long)a.own);
    /* The other direction still has its keys. */
    CHECK(stored_count(KB, &TB.b1, TB.a1.id) > 0, "B->A emptied by draining A->B");
    TESTBED("start", "link");
    wait_keys(KA, &TB.a1, TB.b1.id, 20);
    qkd014_client_free(m);
    const sae *to_b[] = { &TB.b1 };
    round_trip(KA, &TB.a1, KB, to_b, 1, 8, 256, false);
    check_pools_consistent("after the drain and link restart", 30);
}

/* ------------------------------------------------------------- TLS rules */

/* A request with this certificate must not be served: a TLS refusal or a
 * 401/403 answer. */
static void expect_refused(const char *what, const char *url, const char *method, const char *json,
                           const char *cert, const char *key)
{
    CURLcode cc;
    char *body = NULL;
    long st = https_call(url, method, cert, key, json, &body, &cc);
    CHECK(st == 0 || st == 401 || st == 403, "%s: HTTP %ld (want a TLS refusal, 401 or 403): %.200s",
          what, st, body ? body : "");
    if (st != 0) {
        json_t *o = body != NULL ? json_loads(body, 0, NULL) : NULL;
        CHECK(o != NULL, "%s: %ld without a JSON body", what, st);
        json_decref(o);
    }
    print_message("%s: %s\n", what, st == 0 ? curl_easy_strerror(cc) : st == 401 ? "401" : "403");
    free(body);
}

static void test_listener_identity(void **state)
{
    (void)state;
    char url[1024];
    const char *resv = "{\"reservation_ID\": \"00000000-0000-4000-8000-000000000000\", "
                       "\"master_SAE_ID\": \"SAE_A1\", \"slave_SAE_IDs\": [\"SAE_B1\"], "
                       "\"expires\": 0, \"keys\": []}";
    for (int k = 0; k < 2; k++) {
        char what[256];
        snprintf(url, sizeof url, "%s/peer/v1/reservations", TB.peer_url[k]);
        snprintf(what, sizeof what, "SAE certificate on %s's KME-to-KME listener", TB.kme_id[k]);
        expect_refused(what, url, "POST", resv, TB.a1.cert, TB.a1.key);
        snprintf(what, sizeof what, "unregistered SAE certificate on %s's KME-to-KME listener",
                 TB.kme_id[k]);
        expect_refused(what, url, "POST", resv, TB.x.cert, TB.x.key);
        snprintf(what, sizeof what, "link certificate on %s's KME-to-KME listener", TB.kme_id[k]);
        expect_refused(what, url, "POST", resv, TB.link_cert, TB.link_key);
        snprintf(what, sizeof what, "its own certificate on %s's KME-to-KME listener", TB.kme_id[k]);
        expect_refused(what, url, "POST", resv, TB.kme_cert[k], TB.kme_key[k]);
        snprintf(url, sizeof url, "%s/link/v1/state", TB.link_url[k]);
        snprintf(what, sizeof what, "SAE certificate on %s's link listener", TB.kme_id[k]);
        expect_refused(what, url, NULL, NULL, TB.b1.cert, TB.b1.key);
        snprintf(what, sizeof what, "peer KME certificate on %s's link listener", TB.kme_id[k]);
        expect_refused(what, url, NULL, NULL, TB.kme_cert[1 - k], TB.kme_key[1 - k]);
    }
    /* The link's own certificate is served (the state the tests rely on). */
    pool p;
    char err[1024];
    CHECK(link_state(KA, &p, err, sizeof err) == 0, "link state at A: %s", err);
    CHECK(p.cap == (uint64_t)TB.pool_cap_bits, "cap_bits %llu, want %ld", (unsigned long long)p.cap,
          TB.pool_cap_bits);
}

/* ------------------------------------------------------------ the logs */

/* After all of the above, no process of the testbed reported a sanitizer
 * finding (sanitizer builds) or an assertion failure in its log. */
static void test_logs_clean(void **state)
{
    (void)state;
    static const char *const logs[] = { "kme-a.log", "kme-b.log", "link.log" };
    static const char *const bad[] = { "ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                                       "runtime error:", "Assertion `" };
    for (size_t i = 0; i < sizeof logs / sizeof *logs; i++) {
        char path[4096], line[4096];
        snprintf(path, sizeof path, "%s/%s", TB.dir, logs[i]);
        FILE *f = fopen(path, "r");
        CHECK(f != NULL, "cannot read %s", path);
        unsigned long n = 0;
        while (fgets(line, sizeof line, f) != NULL) {
            n++;
            for (size_t j = 0; j < sizeof bad / sizeof *bad; j++)
                if (strstr(line, bad[j]) != NULL) {
                    fclose(f);
                    FAIL_AT(__FILE__, __LINE__, "%s line %lu: %s", path, n, line);
                }
        }
        fclose(f);
        CHECK(n > 0, "%s is empty", path);
    }
}

/* -------------------------------------------------------------------- main */

static void test_pools_consistent_at_start(void **state)
{
    (void)state;
    check_pools_consistent("start", 30);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    int rc = testbed_load();
    if (rc != 0)
        return rc;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0 || qkd014_global_init() != QKD014_OK) {
        fprintf(stderr, "library initialisation failed\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pools_consistent_at_start),
        cmocka_unit_test(test_listener_identity),
        cmocka_unit_test(test_status_remote),
        cmocka_unit_test(test_round_trip_single),
        cmocka_unit_test(test_round_trip_batches),
        cmocka_unit_test(test_multicast),
        cmocka_unit_test(test_only_named_slave),
        cmocka_unit_test(test_concurrent_both_directions),
        cmocka_unit_test(test_batches_form),
        cmocka_unit_test(test_peer_stopped),
        cmocka_unit_test(test_peer_hung),
        cmocka_unit_test(test_link_stopped_drain),
        cmocka_unit_test(test_crash_kme_a),
        cmocka_unit_test(test_crash_kme_b),
        cmocka_unit_test(test_logs_clean),
    };
    const char *filter = getenv("TEST_FILTER");
    if (filter != NULL && filter[0] != '\0')
        cmocka_set_test_filter(filter);
    rc = cmocka_run_group_tests_name("two KMEs in step", tests, NULL, NULL);
    recs_reset();
    qkd014_global_cleanup();
    curl_global_cleanup();
    return rc;
}
