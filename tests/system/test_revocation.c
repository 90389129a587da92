/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_revocation.c - system tests of the SAE API's client certificate
 * checks on the real testbed: certificate revocation ([sae_api] crl,
 * re-read on SIGHUP) and the extended key usage (docs/kme.md, "Identity and
 * TLS").
 *
 * The attacks: an SAE whose certificate was revoked keeps calling, on a new
 * connection and on one it kept alive from before the revocation; an
 * operator (or an attacker who can write the file) puts a garbage CRL in
 * place and signals the KME; a certificate of the SAE CA without the client
 * authentication purpose (no extended key usage at all, or server only)
 * tries to pass as a registered SAE.
 *
 * scripts/testbed gives both KMEs the SAE CA's CRL (empty at start);
 * `scripts/pki revoke` rewrites it and `kill -HUP` makes KME-A read it.
 * Deadlines: the KME reads the CRL within a second of SIGHUP (three under
 * a sanitizer build); polls, never a fixed sleep.  Plain libcurl, so that
 * connection reuse can be seen.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "testbed_env.h"

typedef tb_sae sae;

static struct {
    char *dir, *ca, *url, *crl, *pki, *kme_bin, *conf, *log;
    pid_t pid;
    sae a1, a2, a3;
    long deadline_ms;
} TB;

typedef struct answer {
    long status;
    long connects;     /* new connections this call made (0: reused) */
    char body[4096];
    size_t len;
} answer;

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    answer *a = ud;
    size_t take = sz * n;
    if (take > sizeof a->body - 1 - a->len)
        take = sizeof a->body - 1 - a->len;
    memcpy(a->body + a->len, p, take);
    a->len += take;
    a->body[a->len] = '\0';
    return sz * n;
}

static CURL *handle_of(const sae *s)
{
    CURL *h = curl_easy_init();
    assert_non_null(h);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROXY, "");
    curl_easy_setopt(h, CURLOPT_CAINFO, TB.ca);
    curl_easy_setopt(h, CURLOPT_SSLCERT, s->cert);
    curl_easy_setopt(h, CURLOPT_SSLKEY, s->key);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    return h;
}

/* GET status of slave on h (its connection is kept alive between calls). */
static void status_on(CURL *h, const char *slave, answer *a)
{
    char url[512];
    memset(a, 0, sizeof *a);
    snprintf(url, sizeof url, "%s/api/v1/keys/%s/status", TB.url, slave);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, a);
    CURLcode rc = curl_easy_perform(h);
    if (rc != CURLE_OK)
        fail_msg("GET %s: %s", url, curl_easy_strerror(rc));
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &a->status);
    curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &a->connects);
}

/* One call as s on a connection of its own. */
static void status_new(const sae *s, const char *slave, answer *a)
{
    CURL *h = handle_of(s);
    status_on(h, slave, a);
    curl_easy_cleanup(h);
}

static void expect_401(const answer *a, const char *what)
{
    if (a->status != 401)
        fail_msg("%s: expected 401, got HTTP %ld %s", what, a->status, a->body);
    json_t *j = json_loads(a->body, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "message")), "unauthorized");
    assert_int_equal(json_object_size(j), 1);
    json_decref(j);
}

static void expect_200(const answer *a, const char *what)
{
    if (a->status != 200)
        fail_msg("%s: expected 200, got HTTP %ld %s", what, a->status, a->body);
}

/* SIGHUP to KME-A, then wait (up to the deadline) until its log shows one
 * more line with text than before. */
static void sighup_and_wait_log(const char *text)
{
    int before = tb_count_lines(TB.log, text);
    assert_int_equal(kill(TB.pid, SIGHUP), 0);
    long end = tb_now_ms() + TB.deadline_ms;
    while (tb_count_lines(TB.log, text) <= before) {
        if (tb_now_ms() > end)
            fail_msg("KME-A logged no \"%s\" within %ld ms of SIGHUP (%s)", text, TB.deadline_ms,
                     TB.log);
        tb_pause_ms(20);
    }
}

/* SAE_A2 is revoked: after SIGHUP it is refused on a new connection and on
 * the connection it kept alive from before; SAE_A1's kept-alive connection
 * and SAE_A3's new one go on. */
static void test_revoked_after_sighup(void **state)
{
    (void)state;
    answer a;
    CURL *kept_a2 = handle_of(&TB.a2), *kept_a1 = handle_of(&TB.a1);
    status_on(kept_a2, TB.a1.id, &a);
    expect_200(&a, "SAE_A2 before the revocation");
    status_on(kept_a1, TB.a2.id, &a);
    expect_200(&a, "SAE_A1 before the revocation");

    assert_int_equal(tb_run("'%s' revoke '%s/pki' '%s' >/dev/null", TB.pki, TB.dir, TB.a2.id), 0);
    sighup_and_wait_log("CRL ");
    assert_int_equal(tb_count_lines(TB.log, "refused, the previous one stays in force"), 0);

    status_new(&TB.a2, TB.a1.id, &a);
    expect_401(&a, "revoked SAE_A2 on a new connection");
    status_on(kept_a2, TB.a1.id, &a);
    assert_int_equal(a.connects, 0); /* the very connection from before */
    expect_401(&a, "revoked SAE_A2 on its kept-alive connection");
    status_on(kept_a1, TB.a2.id, &a);
    assert_int_equal(a.connects, 0);
    expect_200(&a, "SAE_A1 on its kept-alive connection");
    status_new(&TB.a3, TB.a1.id, &a);
    expect_200(&a, "SAE_A3 on a new connection");
    curl_easy_cleanup(kept_a2);
    curl_easy_cleanup(kept_a1);
}

/* A garbage CRL on SIGHUP: refused with the reason in the log, the CRL in
 * force (SAE_A2 revoked) stays, the KME runs on; a valid one again is taken. */
static void test_garbage_crl_keeps_old(void **state)
{
    (void)state;
    answer a;
    assert_int_equal(tb_run("cp '%s' '%s.good' && echo 'not a CRL' > '%s'", TB.crl, TB.crl, TB.crl), 0);
    sighup_and_wait_log("refused, the previous one stays in force");
    assert_int_equal(tb_count_lines(TB.log, "not a PEM certificate revocation list"), 1);
    assert_int_equal(kill(TB.pid, 0), 0);
    status_new(&TB.a2, TB.a1.id, &a);
    expect_401(&a, "revoked SAE_A2 after a garbage CRL");
    status_new(&TB.a1, TB.a2.id, &a);
    expect_200(&a, "SAE_A1 after a garbage CRL");

    /* the start refuses the same file with its reason (--check) */
    char out[256];
    snprintf(out, sizeof out, "%s/check.out", TB.dir);
    int rc = tb_run("'%s' --config '%s' --check > '%s' 2>&1", TB.kme_bin, TB.conf, out);
    assert_true(WIFEXITED(rc));
    assert_int_equal(WEXITSTATUS(rc), 3);
    assert_int_equal(tb_run("grep -q '\\[sae_api\\] crl %s: not a PEM certificate revocation list' '%s'",
                         TB.crl, out), 0);

    assert_int_equal(tb_run("mv -f '%s.good' '%s'", TB.crl, TB.crl), 0);
    sighup_and_wait_log("certificates revoked");
    status_new(&TB.a2, TB.a1.id, &a);
    expect_401(&a, "revoked SAE_A2 after the CRL is back");
}

/* Certificates of the SAE CA for a registered SAE ID but without the
 * client authentication purpose are refused; SAE_A3's own is served. */
static void test_extended_key_usage(void **state)
{
    (void)state;
    static const char *const kinds[] = {"none", "server"};
    answer a;
    for (size_t i = 0; i < 2; i++) {
        char sub[512];
        snprintf(sub, sizeof sub, "%s/pki/eku-%s", TB.dir, kinds[i]);
        assert_int_equal(tb_run("mkdir -p '%s' && cp '%s/pki/sae-ca.crt' '%s/pki/sae-ca.key' '%s/' &&"
                             " '%s' sae '%s' '%s' --eku %s >/dev/null",
                             sub, TB.dir, TB.dir, sub, TB.pki, sub, TB.a3.id, kinds[i]), 0);
        char cert[600], key[600];
        snprintf(cert, sizeof cert, "%s/%s.crt", sub, TB.a3.id);
        snprintf(key, sizeof key, "%s/%s.key", sub, TB.a3.id);
        sae s = {TB.a3.id, cert, key};
        status_new(&s, TB.a1.id, &a);
        expect_401(&a, kinds[i]);
    }
    status_new(&TB.a3, TB.a1.id, &a);
    expect_200(&a, "SAE_A3's own certificate");
}

/* ------------------------------------------------------------------ setup */

static int group_setup(void **state)
{
    (void)state;
    TB.dir = getenv("TESTBED_DIR");
    if (!TB.dir) {
        print_error("TESTBED_DIR is not set: run through tests/system/run-with-testbed\n");
        return -1;
    }
    TB.ca = testbed_env_value(TB.dir, "CA_CERT");
    TB.url = testbed_env_value(TB.dir, "KME_A_URL");
    TB.crl = testbed_env_value(TB.dir, "SAE_CA_CRL");
    TB.pki = testbed_env_value(TB.dir, "PKI_SCRIPT");
    TB.kme_bin = testbed_env_value(TB.dir, "KME_BIN");
    TB.conf = testbed_env_value(TB.dir, "KME_A_CONF");
    char *pid = testbed_env_value(TB.dir, "KME_A_PID");
    TB.pid = pid ? (pid_t)atol(pid) : 0;
    free(pid);
    tb_sae_load(&TB.a1, TB.dir, "SAE_A1");
    tb_sae_load(&TB.a2, TB.dir, "SAE_A2");
    tb_sae_load(&TB.a3, TB.dir, "SAE_A3");
    if (!TB.ca || !TB.url || !TB.crl || !TB.pki || !TB.kme_bin || !TB.conf || TB.pid <= 0
        || !TB.a1.id || !TB.a2.id || !TB.a3.id) {
        print_error("%s/testbed.env lacks CA_CERT, KME_A_URL, SAE_CA_CRL, PKI_SCRIPT, KME_BIN, "
                    "KME_A_CONF, KME_A_PID or an SAE\n", TB.dir);
        return -1;
    }
    size_t n = strlen(TB.dir) + 16;
    TB.log = malloc(n);
    snprintf(TB.log, n, "%s/kme-a.log", TB.dir);
    /* one second, three under a sanitizer (QC_SANITIZED=1, set by meson) */
    const char *san = getenv("QC_SANITIZED");
    TB.deadline_ms = san && strcmp(san, "1") == 0 ? 3000 : 1000;
    TB.deadline_ms += 1000; /* slack */
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    free(TB.ca);
    free(TB.url);
    free(TB.crl);
    free(TB.pki);
    free(TB.kme_bin);
    free(TB.conf);
    free(TB.log);
    tb_sae_free(&TB.a1);
    tb_sae_free(&TB.a2);
    tb_sae_free(&TB.a3);
    curl_global_cleanup();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_extended_key_usage),
        cmocka_unit_test(test_revoked_after_sighup),
        cmocka_unit_test(test_garbage_crl_keeps_old),
    };
    return cmocka_run_group_tests_name("qkd-kme certificate revocation", tests, group_setup,
                                       group_teardown);
}
