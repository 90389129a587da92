/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_limits.c - system tests of qkd-kme's per-SAE limits ([limits]
 * sae_rate_bps, sae_burst_bits, sae_unfetched_bits; docs/kme.md) on the
 * real testbed: two KMEs, the link, real mTLS on loopback.
 *
 * The attacks of issue 11 item 4: one master SAE draining a shared pool as
 * fast as it can, and a master having keys reserved for a slave that never
 * fetches them (here, at KME-A, and at the peer KME-B that holds a remote
 * slave's keys).  Beyond a limit the KME must answer 503 with the exact
 * message naming the limit and a Retry-After header, while other SAEs go on
 * being served, and the caller must be served again once the reason is
 * gone (time passed; the slave fetched).
 *
 * tests/system/meson.build brings the testbed up with small limits through
 * TESTBED_KME_LIMITS; every figure below is read from KME-A's configuration
 * file, none is hard-coded.  Plain libcurl, since the headers matter.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "testbed_env.h"

typedef tb_sae sae;

static struct {
    char *dir, *ca, *url_a, *url_b, *conf_a, *kme_b;
    sae a1, a2, a3, b1;
    long rate_bps, burst_bits, unfetched_bits, max_key_size;
} TB;

/* One HTTP answer. */
typedef struct answer {
    long status;
    tb_buf body;           /* the answer's body */
    long retry_after;      /* -1: no Retry-After header */
    json_t *json;
} answer;

static void answer_free(answer *a)
{
    tb_buf_free(&a->body);
    json_decref(a->json);
    memset(a, 0, sizeof *a);
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
    answer *a = ud;
    static const char name[] = "Retry-After:";
    if (sz * n > sizeof name && strncasecmp(p, name, sizeof name - 1) == 0)
        a->retry_after = strtol(p + sizeof name - 1, NULL, 10);
    return sz * n;
}

/* One kept-alive connection per SAE and KME, so that a call costs no TLS
 * handshake: the rate test must outpace the refill, also under sanitizers. */
#define MAX_HANDLES 8
static struct {
    const sae *s;
    const char *base;
    CURL *h;
} HANDLES[MAX_HANDLES];

static CURL *handle_for(const char *base, const sae *s)
{
    for (size_t i = 0; i < MAX_HANDLES; i++)
        if (HANDLES[i].h && HANDLES[i].s == s && HANDLES[i].base == base)
            return HANDLES[i].h;
    for (size_t i = 0; i < MAX_HANDLES; i++)
        if (!HANDLES[i].h) {
            HANDLES[i].s = s;
            HANDLES[i].base = base;
            HANDLES[i].h = curl_easy_init();
            assert_non_null(HANDLES[i].h);
            return HANDLES[i].h;
        }
    fail_msg("more than %d SAE connections", MAX_HANDLES);
    return NULL;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* method path (at base URL) as s, with an optional JSON body. */
static void call(const char *base, const sae *s, const char *method, const char *path,
                 const char *body, answer *a)
{
    char url[1024];
    memset(a, 0, sizeof *a);
    a->retry_after = -1;
    snprintf(url, sizeof url, "%s/api/v1/keys/%s", base, path);
    CURL *h = handle_for(base, s);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, NULL);
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROXY, "");
    curl_easy_setopt(h, CURLOPT_CAINFO, TB.ca);
    curl_easy_setopt(h, CURLOPT_SSLCERT, s->cert);
    curl_easy_setopt(h, CURLOPT_SSLKEY, s->key);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 20000L);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    if (body)
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, tb_buf_append);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &a->body);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, a);
    CURLcode rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &a->status);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(hdr);
    if (rc != CURLE_OK)
        fail_msg("%s %s: %s", method, url, curl_easy_strerror(rc));
    if (a->body.data)
        a->json = json_loadb(a->body.data, a->body.len, 0, NULL);
}

/* enc_keys master -> slave: n keys of size bits; ids (may be NULL) gets a
 * "key_IDs" array for dec_keys when the answer is 200. */
static void enc(const char *base, const sae *master, const sae *slave, long n, long size,
                answer *a, json_t **ids)
{
    char path[256], body[128];
    snprintf(path, sizeof path, "%s/enc_keys", slave->id);
    snprintf(body, sizeof body, "{\"number\":%ld,\"size\":%ld}", n, size);
    call(base, master, "POST", path, body, a);
    if (ids == NULL || a->status != 200)
        return;
    json_t *keys = json_object_get(a->json, "keys"), *k;
    size_t i;
    assert_int_equal(json_array_size(keys), (size_t)n);
    *ids = json_array();
    json_array_foreach(keys, i, k)
        json_array_append_new(*ids, json_pack("{s:O}", "key_ID", json_object_get(k, "key_ID")));
}

/* dec_keys of ids (a key_IDs array, consumed) by slave from master: 200. */
static void fetch(const char *base, const sae *slave, const sae *master, json_t *ids)
{
    char path[256];
    answer a;
    snprintf(path, sizeof path, "%s/dec_keys", master->id);
    json_t *req = json_pack("{s:o}", "key_IDs", ids);
    char *body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    call(base, slave, "POST", path, body, &a);
    free(body);
    if (a.status != 200)
        fail_msg("dec_keys %s <- %s: HTTP %ld %s", slave->id, master->id, a.status,
                 a.body.data ? a.body.data : "");
    answer_free(&a);
}

static void expect_ok(const answer *a, const char *what)
{
    if (a->status != 200)
        fail_msg("%s: HTTP %ld %s", what, a->status, a->body.data ? a->body.data : "");
}

/* 503, the exact message, and a Retry-After header equal to the seconds
 * the message names. */
static void expect_limit(const answer *a, const char *fmt_with_retry, const char *what)
{
    if (a->status != 503) /* a 200's body holds keys: not printed */
        fail_msg("%s: expected 503, got HTTP %ld %s", what, a->status,
                 a->body.data && a->status != 200 ? a->body.data : "");
    assert_true(a->retry_after >= 1);
    char want[512];
    snprintf(want, sizeof want, fmt_with_retry, a->retry_after);
    const char *msg = json_string_value(json_object_get(a->json, "message"));
    assert_non_null(msg);
    assert_string_equal(msg, want);
}

static void sleep_s(long s)
{
    struct timespec ts = {s, 0};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* SAE_A1 drains beyond its rate: the request after the burst is refused
 * with the limit's message and a Retry-After; SAE_A3 is still served at
 * once; after Retry-After seconds SAE_A1 is served again. */
static void test_rate_limit(void **state)
{
    (void)state;
    const long size = TB.max_key_size;
    const long n = TB.burst_bits / 4 / size; /* four requests fill the burst */
    assert_true(n >= 1);
    char fmt[256];
    snprintf(fmt, sizeof fmt, "per-SAE rate limit sae_rate_bps (%ld bit/s) reached for SAE %s; "
             "retry after %%ld s", TB.rate_bps, TB.a1.id);
    answer a;
    json_t *ids;
    long served = 0;
    double start = now_s();
    for (;;) {
        enc(TB.url_a, &TB.a1, &TB.a2, n, size, &a, &ids);
        if (a.status != 200)
            break;
        fetch(TB.url_a, &TB.a2, &TB.a1, ids); /* the slave keeps up: only the rate counts */
        answer_free(&a);
        served++;
        /* never more than the burst and what refilled meanwhile */
        double allowed = (double)TB.burst_bits + (double)TB.rate_bps * (now_s() - start);
        if ((double)(served * n * size) > allowed)
            fail_msg("%ld bits served in %.2f s: the bucket allows %.0f", served * n * size,
                     now_s() - start, allowed);
        if (served > 100)
            fail_msg("SAE_A1 was never limited (%ld calls)", served);
    }
    assert_true(served >= 3); /* the burst holds four */
    expect_limit(&a, fmt, "SAE_A1 beyond its rate");
    long retry = a.retry_after;
    assert_true(retry <= (n * size + TB.rate_bps - 1) / TB.rate_bps);
    answer_free(&a);

    /* another master is not affected */
    enc(TB.url_a, &TB.a3, &TB.a1, n, size, &a, &ids);
    expect_ok(&a, "SAE_A3 while SAE_A1 is limited");
    fetch(TB.url_a, &TB.a1, &TB.a3, ids);
    answer_free(&a);

    /* after Retry-After seconds SAE_A1 is served again (one key: the rest
     * of its bucket stays for the next test) */
    sleep_s(retry);
    enc(TB.url_a, &TB.a1, &TB.a2, 1, size, &a, &ids);
    expect_ok(&a, "SAE_A1 after Retry-After");
    fetch(TB.url_a, &TB.a2, &TB.a1, ids);
    answer_free(&a);
}

/* SAE_A3 has keys recorded for SAE_A2, which never fetches: at the limit
 * every master is refused for SAE_A2 (not for other slaves); one fetch by
 * SAE_A2 lets SAE_A3 go on. */
static void test_unfetched_local(void **state)
{
    (void)state;
    const long size = TB.max_key_size, n = TB.unfetched_bits / size;
    char fmt[256];
    snprintf(fmt, sizeof fmt, "per-SAE limit sae_unfetched_bits (%ld bits) reached for slave "
             "SAE %s; retry after %%ld s", TB.unfetched_bits, TB.a2.id);
    answer a;
    json_t *ids = NULL, *one;
    enc(TB.url_a, &TB.a3, &TB.a2, n, size, &a, &ids);
    expect_ok(&a, "SAE_A3 -> SAE_A2 up to the limit");
    answer_free(&a);

    enc(TB.url_a, &TB.a3, &TB.a2, 1, size, &a, NULL);
    expect_limit(&a, fmt, "SAE_A3 -> SAE_A2 beyond the limit");
    answer_free(&a);
    enc(TB.url_a, &TB.a1, &TB.a2, 1, size, &a, NULL);
    expect_limit(&a, fmt, "SAE_A1 -> SAE_A2 beyond the limit");
    answer_free(&a);
    enc(TB.url_a, &TB.a3, &TB.a1, 1, size, &a, &one); /* another slave */
    expect_ok(&a, "SAE_A3 -> SAE_A1");
    fetch(TB.url_a, &TB.a1, &TB.a3, one);
    answer_free(&a);

    one = json_array();
    json_array_append(one, json_array_get(ids, 0));
    fetch(TB.url_a, &TB.a2, &TB.a3, one);
    enc(TB.url_a, &TB.a3, &TB.a2, 1, size, &a, NULL);
    expect_ok(&a, "SAE_A3 -> SAE_A2 after one fetch");
    answer_free(&a);
    json_array_remove(ids, 0);
    fetch(TB.url_a, &TB.a2, &TB.a3, ids);
}

/* The same for a remote slave: KME-B holds SAE_B1's keys and refuses the
 * reservation beyond the limit; KME-A answers SAE_A3 with KME-B's message,
 * 503 and Retry-After. */
static void test_unfetched_remote(void **state)
{
    (void)state;
    if (TB.url_b == NULL)
        skip();
    const long size = TB.max_key_size, n = TB.unfetched_bits / size;
    char fmt[256];
    snprintf(fmt, sizeof fmt, "per-SAE limit sae_unfetched_bits (%ld bits) reached for slave "
             "SAE %s; retry after %%ld s", TB.unfetched_bits, TB.b1.id);
    answer a;
    json_t *ids = NULL, *one;
    enc(TB.url_a, &TB.a3, &TB.b1, n, size, &a, &ids);
    expect_ok(&a, "SAE_A3 -> SAE_B1 up to the limit");
    answer_free(&a);

    enc(TB.url_a, &TB.a3, &TB.b1, 1, size, &a, NULL);
    expect_limit(&a, fmt, "SAE_A3 -> SAE_B1 beyond the limit");
    answer_free(&a);

    one = json_array();
    json_array_append(one, json_array_get(ids, 0));
    fetch(TB.url_b, &TB.b1, &TB.a3, one);
    enc(TB.url_a, &TB.a3, &TB.b1, 1, size, &a, NULL);
    expect_ok(&a, "SAE_A3 -> SAE_B1 after one fetch");
    answer_free(&a);
    json_array_remove(ids, 0);
    fetch(TB.url_b, &TB.b1, &TB.a3, ids);
}

/* ------------------------------------------------------------------ setup */

/* [limits] key of the conf file, or -1. */
static long conf_limit(const char *conf, const char *key)
{
    FILE *f = fopen(conf, "r");
    char line[512];
    long v = -1;
    size_t kl = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, key, kl) == 0 && (line[kl] == ' ' || line[kl] == '='))
            v = strtol(strchr(line, '=') + 1, NULL, 10);
    if (f)
        fclose(f);
    return v;
}

static int group_setup(void **state)
{
    (void)state;
    TB.dir = getenv("TESTBED_DIR");
    if (!TB.dir) {
        print_error("TESTBED_DIR is not set: run through tests/system/run-with-testbed\n");
        return -1;
    }
    TB.ca = testbed_env_value(TB.dir, "CA_CERT");
    TB.url_a = testbed_env_value(TB.dir, "KME_A_URL");
    TB.url_b = testbed_env_value(TB.dir, "KME_B_URL");
    TB.conf_a = testbed_env_value(TB.dir, "KME_A_CONF");
    tb_sae_load(&TB.a1, TB.dir, "SAE_A1");
    tb_sae_load(&TB.a2, TB.dir, "SAE_A2");
    tb_sae_load(&TB.a3, TB.dir, "SAE_A3");
    tb_sae_load(&TB.b1, TB.dir, "SAE_B1");
    if (!TB.ca || !TB.url_a || !TB.conf_a || !TB.a1.id || !TB.a2.id || !TB.a3.id) {
        print_error("%s/testbed.env lacks CA_CERT, KME_A_URL, KME_A_CONF or an SAE\n", TB.dir);
        return -1;
    }
    TB.rate_bps = conf_limit(TB.conf_a, "sae_rate_bps");
    TB.burst_bits = conf_limit(TB.conf_a, "sae_burst_bits");
    TB.unfetched_bits = conf_limit(TB.conf_a, "sae_unfetched_bits");
    TB.max_key_size = conf_limit(TB.conf_a, "max_key_size");
    if (TB.rate_bps <= 0 || TB.burst_bits <= 0 || TB.unfetched_bits <= 0 || TB.max_key_size <= 0) {
        print_error("%s needs sae_rate_bps, sae_burst_bits, sae_unfetched_bits and max_key_size "
                    "in [limits] (TESTBED_KME_LIMITS)\n", TB.conf_a);
        return -1;
    }
    print_message("limits: sae_rate_bps %ld, sae_burst_bits %ld, sae_unfetched_bits %ld, "
                  "max_key_size %ld\n", TB.rate_bps, TB.burst_bits, TB.unfetched_bits,
                  TB.max_key_size);
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    free(TB.ca);
    free(TB.url_a);
    free(TB.url_b);
    free(TB.conf_a);
    tb_sae_free(&TB.a1);
    tb_sae_free(&TB.a2);
    tb_sae_free(&TB.a3);
    tb_sae_free(&TB.b1);
    for (size_t i = 0; i < MAX_HANDLES; i++)
        if (HANDLES[i].h)
            curl_easy_cleanup(HANDLES[i].h);
    curl_global_cleanup();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rate_limit),
        cmocka_unit_test(test_unfetched_local),
        cmocka_unit_test(test_unfetched_remote),
    };
    return cmocka_run_group_tests_name("qkd-kme per-SAE limits", tests, group_setup,
                                       group_teardown);
}
