/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_link_physics.c - issue 13 on the real testbed: qkd-link with model
 * decoy-bb84 at 25 km and a large time_scale (tests/system/meson.build
 * sets TESTBED_LINK_PHYSICS), two real KMEs, real mTLS on loopback.
 *
 * - keys arrive at the modelled rate (within 20 %): the rate comes from
 *   `qkd-link --table` on the testbed's own configuration, none is written
 *   here; the pools of both directions are read through the ETSI status;
 * - `scripts/testbed link DIR eavesdropper=1`: both KMEs raise the alarm
 *   within 2 s (+1 s slack, x3 under sanitizers) with one warning line
 *   each, and no new key arrives; keys made before the attack are still
 *   served and equal at both ends;
 * - `eavesdropper=0`: the alarm clears (one line each) and key flows again;
 *   keys delivered before, during and after are equal at master and slave;
 * - hostile QBER reports from the link (its own certificate) get a 400
 *   and change nothing in the status;
 * - `model=fixed` by SIGHUP: the status says fixed, with qber null.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "testbed_env.h"

typedef struct who {
    char *id, *cert, *key;
} who;

static struct {
    char *dir, *script, *ca, *url_a, *url_b, *link_url_a, *link_bin, *link_conf;
    who a1, b1, link;
    double slack;           /* x3 under sanitizers */
} TB;

typedef struct answer {
    long status;
    tb_buf body;           /* the answer's body */
    json_t *json;
} answer;

static void answer_free(answer *a)
{
    tb_buf_free(&a->body);
    json_decref(a->json);
    memset(a, 0, sizeof *a);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void pause_s(double s)
{
    struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };
    nanosleep(&ts, NULL);
}

/* method url as w, with an optional body. */
static void call(const char *url, const who *w, const char *method, const char *body, size_t len,
                 const char *type, answer *a)
{
    memset(a, 0, sizeof *a);
    CURL *h = curl_easy_init();
    assert_non_null(h);
    char ct[96];
    snprintf(ct, sizeof ct, "Content-Type: %s", type);
    struct curl_slist *hdr = curl_slist_append(NULL, ct);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROXY, "");
    curl_easy_setopt(h, CURLOPT_CAINFO, TB.ca);
    curl_easy_setopt(h, CURLOPT_SSLCERT, w->cert);
    curl_easy_setopt(h, CURLOPT_SSLKEY, w->key);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 20000L);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    if (body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)len);
    }
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, tb_buf_append);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &a->body);
    CURLcode rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &a->status);
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    if (rc != CURLE_OK)
        fail_msg("%s %s: %s", method, url, curl_easy_strerror(rc));
    if (a->body.data)
        a->json = json_loadb(a->body.data, a->body.len, 0, NULL);
}

/* The ETSI status of master -> slave at base: the answer's JSON (owned). */
static json_t *status_of(const char *base, const who *master, const who *slave)
{
    char url[1024];
    answer a;
    snprintf(url, sizeof url, "%s/api/v1/keys/%s/status", base, slave->id);
    call(url, master, "GET", NULL, 0, "application/json", &a);
    if (a.status != 200 || !a.json)
        fail_msg("status at %s: HTTP %ld %s", base, a.status, a.body.data ? a.body.data : "");
    json_t *o = json_incref(a.json);
    answer_free(&a);
    return o;
}

static json_t *link_of(json_t *status)
{
    json_t *l = json_object_get(json_object_get(status, "status_extension"), "link");
    if (!json_is_object(l))
        fail_msg("no status_extension.link in the status answer");
    return l;
}

static bool alarm_at(const char *base, const who *m, const who *s)
{
    json_t *st = status_of(base, m, s);
    bool on = json_is_true(json_object_get(link_of(st), "alarm"));
    json_decref(st);
    return on;
}

/* Key bits waiting in both directions (A -> B at KME-A, B -> A at KME-B). */
static double pool_bits(void)
{
    json_t *a = status_of(TB.url_a, &TB.a1, &TB.b1), *b = status_of(TB.url_b, &TB.b1, &TB.a1);
    double bits = (double)json_integer_value(json_object_get(a, "stored_key_count"))
                      * (double)json_integer_value(json_object_get(a, "key_size"))
                  + (double)json_integer_value(json_object_get(b, "stored_key_count"))
                      * (double)json_integer_value(json_object_get(b, "key_size"));
    json_decref(a);
    json_decref(b);
    return bits;
}

/* enc_keys of 2 keys at KME-A for SAE_B1, dec_keys at KME-B: equal. */
static void keys_agree(const char *when)
{
    char url[1024];
    answer e, d;
    snprintf(url, sizeof url, "%s/api/v1/keys/%s/enc_keys", TB.url_a, TB.b1.id);
    call(url, &TB.a1, "POST", "{\"number\":2,\"size\":256}", 23, "application/json", &e);
    if (e.status != 200)
        fail_msg("%s: enc_keys: HTTP %ld %s", when, e.status, e.body.data ? e.body.data : "");
    json_t *keys = json_object_get(e.json, "keys"), *k, *ids = json_array();
    size_t i;
    json_array_foreach(keys, i, k)
        json_array_append_new(ids, json_pack("{s:O}", "key_ID", json_object_get(k, "key_ID")));
    json_t *req = json_pack("{s:o}", "key_IDs", ids);
    char *body = json_dumps(req, JSON_COMPACT);
    snprintf(url, sizeof url, "%s/api/v1/keys/%s/dec_keys", TB.url_b, TB.a1.id);
    call(url, &TB.b1, "POST", body, strlen(body), "application/json", &d);
    free(body);
    json_decref(req);
    if (d.status != 200)
        fail_msg("%s: dec_keys: HTTP %ld %s", when, d.status, d.body.data ? d.body.data : "");
    json_t *back = json_object_get(d.json, "keys");
    assert_int_equal(json_array_size(back), 2);
    json_array_foreach(keys, i, k) {
        json_t *o = json_array_get(back, i);
        assert_string_equal(json_string_value(json_object_get(k, "key_ID")),
                            json_string_value(json_object_get(o, "key_ID")));
        if (!json_equal(json_object_get(k, "key"), json_object_get(o, "key")))
            fail_msg("%s: key %zu differs between master and slave", when, i);
    }
    answer_free(&e);
    answer_free(&d);
}

/* `scripts/testbed link DIR words`: its exit status. */
static int testbed_link(const char *words)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' link '%s' %s", TB.script, TB.dir, words);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* Lines of DIR/NAME.log that contain needle. */
static int log_lines(const char *name, const char *needle)
{
    char path[1024], line[2048];
    int n = 0;
    snprintf(path, sizeof path, "%s/%s.log", TB.dir, name);
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f))
        n += strstr(line, needle) != NULL;
    if (f)
        fclose(f);
    return n;
}

/* The model's rate and the time scale, from the testbed's own files. */
static void modelled(double *rate_bps, double *time_scale)
{
    char cmd[2048], line[512];
    snprintf(cmd, sizeof cmd, "'%s' --config '%s' --table --distances 25", TB.link_bin, TB.link_conf);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    *rate_bps = -1;
    while (fgets(line, sizeof line, p))
        if (strncmp(line, "25 ", 3) == 0)
            sscanf(line, "%*s %*s %lf", rate_bps);
    pclose(p);
    FILE *f = fopen(TB.link_conf, "r");
    *time_scale = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "time_scale", 10) == 0)
            *time_scale = strtod(strchr(line, '=') + 1, NULL);
    if (f)
        fclose(f);
    assert_true(*rate_bps > 0 && *time_scale > 0);
}

static void test_modelled_rate(void **state)
{
    (void)state;
    double rate, scale;
    modelled(&rate, &scale);
    double b0 = pool_bits(), t0 = now_s();
    pause_s(4.0);
    double b1 = pool_bits(), t1 = now_s();
    double measured = (b1 - b0) / (t1 - t0) / scale;
    print_message("modelled %.1f bit/s, measured %.1f bit/s (time_scale %g, %.1f s)\n", rate, measured,
                  scale, t1 - t0);
    assert_true(fabs(measured - rate) <= 0.2 * rate);
    json_t *st = status_of(TB.url_a, &TB.a1, &TB.b1), *l = link_of(st);
    assert_string_equal(json_string_value(json_object_get(l, "model")), "decoy-bb84");
    assert_string_equal(json_string_value(json_object_get(l, "state")), "distilling");
    assert_true(json_is_number(json_object_get(l, "qber")) && json_is_number(json_object_get(l, "qber_avg")));
    assert_true(json_is_number(json_object_get(l, "bound")) && json_is_false(json_object_get(l, "alarm")));
    assert_true(json_number_value(json_object_get(l, "distance_km")) == 25);
    double kme_rate = json_number_value(json_object_get(l, "secret_key_rate_bps"));
    assert_true(fabs(kme_rate - rate) <= 0.2 * rate);
    json_decref(st);
}

/* Both KMEs show alarm == on within the deadline; the seconds it took. */
static double wait_alarm(bool on)
{
    double t0 = now_s(), limit = (2.0 + 1.0) * TB.slack;
    while (alarm_at(TB.url_a, &TB.a1, &TB.b1) != on || alarm_at(TB.url_b, &TB.b1, &TB.a1) != on) {
        if (now_s() - t0 > limit)
            fail_msg("the alarm did not become %s at both KMEs within %.1f s", on ? "true" : "false", limit);
        pause_s(0.05);
    }
    return now_s() - t0;
}

static void test_eavesdropper(void **state)
{
    (void)state;
    keys_agree("before the attack");
    assert_int_equal(testbed_link("eavesdropper=1"), 0);
    print_message("alarm at both KMEs after %.2f s\n", wait_alarm(true));
    double b0 = pool_bits();
    pause_s(1.5);
    double b1 = pool_bits();
    if (b1 != b0)
        fail_msg("key arrived while the eavesdropper listened: %.0f -> %.0f bits", b0, b1);
    keys_agree("during the attack (key made before it)");
    assert_int_equal(log_lines("kme-a", "possible eavesdropping"), 1);
    assert_int_equal(log_lines("kme-b", "possible eavesdropping"), 1);
    assert_int_equal(log_lines("kme-a", "link LINK-AB: possible eavesdropping: QBER 0."), 1);

    assert_int_equal(testbed_link("eavesdropper=0"), 0);
    print_message("alarm cleared at both KMEs after %.2f s\n", wait_alarm(false));
    double c0 = pool_bits(), t0 = now_s();
    while (pool_bits() <= c0) {
        if (now_s() - t0 > 3.0 * TB.slack)
            fail_msg("no key after the eavesdropper left");
        pause_s(0.1);
    }
    keys_agree("after the attack");
    assert_int_equal(log_lines("kme-a", "alarm cleared"), 1);
    assert_int_equal(log_lines("kme-b", "alarm cleared"), 1);
    /* a refused change: the old settings stay, the reason is told */
    assert_int_not_equal(testbed_link("eavesdropper=7 2>/dev/null"), 0);
}

static void test_hostile_reports(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "{\"state\":\"aborted\",\"qber\":-1,\"bound\":0.06,\"model\":\"decoy-bb84\",\"distance_km\":25,\"time_scale\":1,\"secret_bits\":0}",
        "{\"state\":\"aborted\",\"qber\":1e999,\"bound\":0.06,\"model\":\"decoy-bb84\",\"distance_km\":25,\"time_scale\":1,\"secret_bits\":0}",
        "{\"state\":\"aborted\",\"qber\":0.3,\"bound\":0.06,\"model\":\"decoy-bb84\",\"distance_km\":25,\"time_scale\":1,\"secret_bits\":0,\"alarm\":true}",
        "{\"state\":\"pwned\",\"qber\":0.3,\"bound\":0.06,\"model\":\"decoy-bb84\",\"distance_km\":25,\"time_scale\":1,\"secret_bits\":0}",
        "not json",
    };
    char url[1024];
    json_t *before = status_of(TB.url_a, &TB.a1, &TB.b1);
    snprintf(url, sizeof url, "%s/link/v1/report", TB.link_url_a);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        answer a;
        call(url, &TB.link, "POST", bad[i], strlen(bad[i]), "application/json", &a);
        if (a.status != 400 || !json_is_string(json_object_get(a.json, "message")))
            fail_msg("hostile report %zu: HTTP %ld %s", i, a.status, a.body.data ? a.body.data : "");
        answer_free(&a);
    }
    /* a block whose trailer is a hostile report: refused whole */
    static const char rep[] = "R1{\"state\":\"aborted\",\"qber\":2}";
    uint8_t blk[13 + 32 + sizeof rep];
    memset(blk, 0x5a, sizeof blk);
    blk[8] = 0;
    blk[9] = blk[10] = blk[11] = 0;
    blk[12] = 32;
    memcpy(blk + 13 + 32, rep, sizeof rep - 1);
    snprintf(url, sizeof url, "%s/link/v1/blocks", TB.link_url_a);
    answer a;
    call(url, &TB.link, "POST", (const char *)blk, 13 + 32 + sizeof rep - 1, "application/octet-stream", &a);
    assert_int_equal(a.status, 400);
    answer_free(&a);
    json_t *after = status_of(TB.url_a, &TB.a1, &TB.b1);
    assert_false(json_is_true(json_object_get(link_of(after), "alarm")));
    assert_string_equal(json_string_value(json_object_get(link_of(after), "state")), "distilling");
    assert_true(log_lines("kme-a", "QBER report refused") >= 5);
    json_decref(before);
    json_decref(after);
}

/* SIGHUP switches the model too; with fixed the status says so and has
 * no QBER (the last test: fixed fills the pools at the testbed's rate). */
static void test_model_fixed(void **state)
{
    (void)state;
    assert_int_equal(testbed_link("model=fixed"), 0);
    double t0 = now_s();
    for (;;) {
        json_t *st = status_of(TB.url_b, &TB.b1, &TB.a1), *l = link_of(st);
        bool fixed = json_is_string(json_object_get(l, "model"))
                     && strcmp(json_string_value(json_object_get(l, "model")), "fixed") == 0;
        if (fixed) {
            assert_true(json_is_null(json_object_get(l, "qber")) && json_is_null(json_object_get(l, "bound")));
            assert_true(json_is_null(json_object_get(l, "distance_km")));
            assert_string_equal(json_string_value(json_object_get(l, "state")), "distilling");
            assert_false(json_is_true(json_object_get(l, "alarm")));
            json_decref(st);
            break;
        }
        json_decref(st);
        if (now_s() - t0 > 3.0 * TB.slack)
            fail_msg("the KMEs still report model decoy-bb84 after the switch to fixed");
        pause_s(0.05);
    }
    keys_agree("with model fixed");
}

static void who_load(who *w, const char *name)
{
    char k[64];
    snprintf(k, sizeof k, "%s_ID", name);
    w->id = testbed_env_value(TB.dir, k);
    snprintf(k, sizeof k, "%s_CERT", name);
    w->cert = testbed_env_value(TB.dir, k);
    snprintf(k, sizeof k, "%s_KEY", name);
    w->key = testbed_env_value(TB.dir, k);
}

static void who_free(who *w)
{
    free(w->id);
    free(w->cert);
    free(w->key);
}

static int group_setup(void **state)
{
    (void)state;
    if (tb_from_env(&TB.dir, &TB.script) != 0)
        return -1;
    TB.slack = tb_slack_factor();
    TB.ca = testbed_env_value(TB.dir, "CA_CERT");
    TB.url_a = testbed_env_value(TB.dir, "KME_A_URL");
    TB.url_b = testbed_env_value(TB.dir, "KME_B_URL");
    TB.link_url_a = testbed_env_value(TB.dir, "KME_A_LINK_URL");
    TB.link_bin = testbed_env_value(TB.dir, "LINK_BIN");
    TB.link_conf = testbed_env_value(TB.dir, "LINK_CONF");
    who_load(&TB.a1, "SAE_A1");
    who_load(&TB.b1, "SAE_B1");
    TB.link.cert = testbed_env_value(TB.dir, "LINK_CERT");
    TB.link.key = testbed_env_value(TB.dir, "LINK_KEY");
    if (!TB.ca || !TB.url_a || !TB.url_b || !TB.link_url_a || !TB.link_bin || !TB.link_conf
        || !TB.a1.id || !TB.b1.id || !TB.link.cert) {
        print_error("%s/testbed.env lacks a pair testbed's entries\n", TB.dir);
        return -1;
    }
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    free(TB.ca);
    free(TB.url_a);
    free(TB.url_b);
    free(TB.link_url_a);
    free(TB.link_bin);
    free(TB.link_conf);
    who_free(&TB.a1);
    who_free(&TB.b1);
    who_free(&TB.link);
    curl_global_cleanup();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_modelled_rate),
        cmocka_unit_test(test_hostile_reports),
        cmocka_unit_test(test_eavesdropper),
        cmocka_unit_test(test_model_fixed),
    };
    return cmocka_run_group_tests_name("qkd-link physics and the KMEs' alarm", tests, group_setup,
                                       group_teardown);
}
