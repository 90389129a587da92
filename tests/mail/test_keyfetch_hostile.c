/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_keyfetch_hostile.c - libqumail's key fetching against the scripted
 * HTTPS "KME" of tests/sae/hostile_server.c, for the paths our own KME
 * never takes: a KME that takes fewer key IDs per dec_keys call than a
 * message names (the reader asks for all at once, then learns
 * max_key_per_request from status and splits), and one whose refusal is
 * not about the batch size (reported as it is, without a retry).
 *
 * The certificates are made at test time with scripts/pki (path in
 * QKD014_PKI_SCRIPT) in a temporary directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "hostile_server.h"
#include "mail/keyfetch.h"
#include "mail/message.h"
#include "qkd014.h"

static const char *const IDS[] = {
    "0b5f4d9e-1c2a-4b3d-8e7f-a1b2c3d4e5f6",
    "1c6e5eaf-2d3b-4c4e-9f80-b2c3d4e5f607",
    "2d7f6fb0-3e4c-4d5f-a091-c3d4e5f60718",
};
#define KEY32 "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=" /* 32 bytes 0..31 */

static struct {
    char dir[256];
    hostile_server *kme;
    qkd014_client *client;
    qm_self me;
    int n_status, n_dec;
} T;

static void on_trace(void *arg, const char *line)
{
    (void)arg;
    /* calls only: failures are narrated on lines of their own */
    if (strncmp(line, "status slave=", 13) == 0)
        T.n_status++;
    else if (strncmp(line, "dec_keys ", 9) == 0 && strstr(line, " number=") != NULL)
        T.n_dec++;
}

static int group_setup(void **state)
{
    (void)state;
    const char *pki = getenv("QKD014_PKI_SCRIPT");
    char cmd[2048], crt[512], key[512], err[512], url[64], ca[512], scrt[512], skey[512];
    if (pki == NULL || access(pki, X_OK) != 0)
        return -1;
    snprintf(T.dir, sizeof T.dir, "%s/qumail-hostile.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(T.dir) == NULL)
        return -1;
    snprintf(cmd, sizeof cmd, "'%s' init '%s' && '%s' kme '%s' KME-H && '%s' sae '%s' SAE_B1",
             pki, T.dir, pki, T.dir, pki, T.dir);
    if (system(cmd) != 0)
        return -1;
    snprintf(crt, sizeof crt, "%s/KME-H.crt", T.dir);
    snprintf(key, sizeof key, "%s/KME-H.key", T.dir);
    T.kme = hostile_start(crt, key, err, sizeof err);
    if (T.kme == NULL)
        return -1;
    snprintf(url, sizeof url, "https://localhost:%d", hostile_port(T.kme));
    snprintf(ca, sizeof ca, "%s/kme-ca.crt", T.dir);
    snprintf(scrt, sizeof scrt, "%s/SAE_B1.crt", T.dir);
    snprintf(skey, sizeof skey, "%s/SAE_B1.key", T.dir);
    qkd014_options o = { .version = QKD014_OPTIONS_VERSION,
                         .kme_url = url, .cert_file = scrt, .key_file = skey, .ca_file = ca };
    if (qkd014_client_new(&o, &T.client) != QKD014_OK)
        return -1;
    T.me = (qm_self){ .kme = T.client, .sae_id = "SAE_B1", .trace = on_trace };
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    char cmd[512];
    qkd014_client_free(T.client);
    hostile_stop(T.kme);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", T.dir);
    return system(cmd) == 0 ? 0 : -1;
}

static char *container(size_t from, size_t n)
{
    static char buf[1024];
    size_t len = (size_t)snprintf(buf, sizeof buf, "{\"keys\":[");
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(buf + len, sizeof buf - len, "%s{\"key_ID\":\"%s\",\"key\":\"%s\"}",
                                i ? "," : "", IDS[from + i], KEY32);
    snprintf(buf + len, sizeof buf - len, "]}");
    return buf;
}

static const char STATUS_LIMIT_2[] =
    "{\"source_KME_ID\":\"KME-H\",\"target_KME_ID\":\"KME-A\",\"master_SAE_ID\":\"SAE_B1\","
    "\"slave_SAE_ID\":\"SAE_A1\",\"key_size\":256,\"stored_key_count\":10,"
    "\"max_key_count\":100,\"max_key_per_request\":2,\"max_key_size\":1024,"
    "\"min_key_size\":64,\"max_SAE_ID_count\":0}";

/* 400 for three IDs at once -> status -> two calls of 2 and 1. */
static void test_split_after_refusal(void **state)
{
    (void)state;
    qm_key_set s;
    T.n_status = T.n_dec = 0;
    hostile_answer(T.kme, H_CANNED, 500, "application/json", "{\"message\":\"unexpected\"}");
    assert_int_equal(hostile_enqueue(T.kme, 400, "application/json",
                                     "{\"message\":\"too many key IDs\"}"), 0);
    assert_int_equal(hostile_enqueue(T.kme, 200, "application/json", STATUS_LIMIT_2), 0);
    assert_int_equal(hostile_enqueue(T.kme, 200, "application/json", container(0, 2)), 0);
    assert_int_equal(hostile_enqueue(T.kme, 200, "application/json", container(2, 1)), 0);
    qm_err err = qm_keyfetch_by_ids(&T.me, "SAE_A1", IDS, 3, &s);
    assert_int_equal(err, QM_OK);
    assert_int_equal(T.n_dec, 3);     /* 3 IDs refused, then 2 + 1 */
    assert_int_equal(T.n_status, 1);
    assert_int_equal(s.n, 3);
    assert_int_equal(s.n_batches, 2);
    for (size_t i = 0; i < 3; i++)
        assert_string_equal(s.ids[i], IDS[i]);
    hostile_request rq;
    hostile_last(T.kme, &rq);
    assert_non_null(strstr(rq.target, IDS[2]));  /* the last call asked for the third */
    qm_key_set_free(&s);
}

/* A 400 about the keys themselves is reported without a retry. */
static void test_not_found_no_retry(void **state)
{
    (void)state;
    qm_key_set s;
    T.n_status = T.n_dec = 0;
    hostile_answer(T.kme, H_CANNED, 400, "application/json",
                   "{\"message\":\"one or more keys specified are not found on KME\"}");
    qm_err err = qm_keyfetch_by_ids(&T.me, "SAE_A1", IDS, 3, &s);
    assert_int_equal(err, QM_E_KEY_NOT_FOUND);
    assert_int_equal(T.n_dec, 1);
    assert_int_equal(T.n_status, 0);
    qm_key_set_free(&s);
}

/* A 400 for another reason while the batch is within the limit: the
 * KME's own message comes back, not the status call's. */
static void test_other_refusal(void **state)
{
    (void)state;
    qm_key_set s;
    T.n_status = T.n_dec = 0;
    hostile_answer(T.kme, H_CANNED, 500, "application/json", "{\"message\":\"unexpected\"}");
    assert_int_equal(hostile_enqueue(T.kme, 400, "application/json",
                                     "{\"message\":\"something else is wrong\"}"), 0);
    assert_int_equal(hostile_enqueue(T.kme, 200, "application/json", STATUS_LIMIT_2), 0);
    qm_err err = qm_keyfetch_by_ids(&T.me, "SAE_A1", IDS, 2, &s);
    assert_int_equal(err, QM_E_KME);
    assert_non_null(strstr(T.me.detail, "something else is wrong"));
    assert_int_equal(T.n_dec, 1);
    assert_int_equal(T.n_status, 1);
    qm_key_set_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_after_refusal),
        cmocka_unit_test(test_not_found_no_retry),
        cmocka_unit_test(test_other_refusal),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
