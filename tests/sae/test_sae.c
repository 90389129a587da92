/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_sae.c - libqkd014 against the real qkd-kme over mutual TLS: every
 * public call (status, get key in its GET and POST forms, get key with key
 * IDs in its GET and POST forms) and every error class the library tells
 * apart (usage, transport, TLS, 401, 400 with the KME's message, 503).
 *
 * Run through tests/system/run-with-testbed, which brings a testbed up and
 * sets TESTBED_DIR.  The 503 test starts a second qkd-kme with a tiny pool
 * (KME-A's certificate, its own database) and drains it.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "qkd014.h"
#include "sae/qkd014_internal.h"

static struct {
    char env[64][2][1024];
    size_t n;
    pid_t tiny_pid;
} T;

/* ---------------------------------------------------------------- setup */

static const char *env(const char *key)
{
    for (size_t i = 0; i < T.n; i++)
        if (strcmp(T.env[i][0], key) == 0)
            return T.env[i][1];
    fail_msg("testbed.env has no %s", key);
    return NULL;
}

static int group_setup(void **state)
{
    (void)state;
    char path[1024], line[2100];
    const char *dir = getenv("TESTBED_DIR");
    if (dir == NULL) {
        fprintf(stderr, "TESTBED_DIR is not set (run me through run-with-testbed)\n");
        return -1;
    }
    snprintf(path, sizeof path, "%s/testbed.env", dir);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof line, f) != NULL && T.n < 64) {
        char *eq = strchr(line, '=');
        if (eq == NULL || eq - line >= 1024 || strlen(eq + 1) >= 1024)
            continue;
        *eq = '\0';
        eq[1 + strcspn(eq + 1, "\n")] = '\0';
        memcpy(T.env[T.n][0], line, (size_t)(eq - line) + 1);
        memcpy(T.env[T.n][1], eq + 1, strlen(eq + 1) + 1);
        T.n++;
    }
    fclose(f);
    return 0;
}

/* -------------------------------------------------------------- helpers */

typedef struct who {
    const char *url, *sae;     /* sae: prefix in testbed.env, e.g. "SAE_A1" */
    const char *cert, *key;    /* override the SAE's own files */
    const char *ca, *kme_id;
} who;

static qkd014_client *client_for(who w)
{
    char k[64];
    qkd014_options o = { .version = QKD014_OPTIONS_VERSION,
                         .kme_url = w.url ? w.url : env("KME_A_URL"),
                         .ca_file = w.ca ? w.ca : env("CA_CERT"),
                         .expected_kme_id = w.kme_id };
    snprintf(k, sizeof k, "%s_CERT", w.sae);
    o.cert_file = w.cert ? w.cert : env(k);
    snprintf(k, sizeof k, "%s_KEY", w.sae);
    o.key_file = w.key ? w.key : env(k);
    qkd014_client *c = NULL;
    assert_int_equal(qkd014_client_new(&o, &c), QKD014_OK);
    return c;
}

static qkd014_client *sae(const char *name)
{
    return client_for((who){ .sae = name });
}

#define EXPECT(c, rc, want, needle) expect_at(__FILE__, __LINE__, c, rc, want, needle)
static void expect_at(const char *file, int line, qkd014_client *c, qkd014_code rc,
                      qkd014_code want, const char *needle)
{
    const char *msg = qkd014_errmsg(c);
    if (rc != want || (needle && strstr(msg, needle) == NULL))
        fail_msg("%s:%d: got %s (%s), expected %s with \"%s\"", file, line,
                 qkd014_strerror(rc), msg, qkd014_strerror(want), needle ? needle : "");
}

static void same_keys(const qkd014_keys *a, const qkd014_keys *b)
{
    assert_int_equal(a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        assert_string_equal(a->keys[i].key_id, b->keys[i].key_id);
        assert_int_equal(a->keys[i].key_len, b->keys[i].key_len);
        assert_memory_equal(a->keys[i].key, b->keys[i].key, a->keys[i].key_len);
    }
}

/* ---------------------------------------------------------------- calls */

static void test_status(void **state)
{
    (void)state;
    qkd014_client *c = client_for((who){ .sae = "SAE_A1", .kme_id = "KME-A" });
    qkd014_status *s = NULL;
    EXPECT(c, qkd014_get_status(c, "SAE_A2", &s), QKD014_OK, NULL);
    assert_string_equal(s->source_kme_id, "KME-A");
    assert_string_equal(s->master_sae_id, "SAE_A1");
    assert_string_equal(s->slave_sae_id, "SAE_A2");
    assert_int_equal(s->key_size, 256);
    assert_true(s->stored_key_count > 0);
    assert_true(s->max_sae_id_count >= 1);
    assert_string_equal(qkd014_peer_kme_id(c), "KME-A");
    assert_int_equal(qkd014_last_http_status(c), 200);
    qkd014_status_free(s);
    assert_int_equal(qkd014_last_connects(c), 1);
    /* the kept-alive connection serves the next calls too, GET and POST */
    EXPECT(c, qkd014_get_status(c, "SAE_A3", &s), QKD014_OK, NULL);
    assert_string_equal(s->slave_sae_id, "SAE_A3");
    qkd014_status_free(s);
    assert_int_equal(qkd014_last_connects(c), 0);
    qkd014_keys *k = NULL;
    const char *more[] = { "SAE_A3" };
    qkd014_key_request req = { .version = QKD014_KEY_REQUEST_VERSION,
                               .additional_slaves = more, .n_additional = 1 };
    EXPECT(c, qkd014_get_key(c, "SAE_A2", &req, &k), QKD014_OK, NULL);
    qkd014_keys_free(k);
    assert_int_equal(qkd014_last_connects(c), 0);
    qkd014_client_free(c);
}

static void test_get_key_round_trips(void **state)
{
    (void)state;
    qkd014_client *m = sae("SAE_A1"), *s2 = sae("SAE_A2"), *s3 = sae("SAE_A3");
    qkd014_keys *k = NULL, *got = NULL;
    /* default GET form: one key of key_size bits; dec_keys GET */
    EXPECT(m, qkd014_get_key(m, "SAE_A2", NULL, &k), QKD014_OK, NULL);
    assert_int_equal(k->n, 1);
    assert_int_equal(k->keys[0].key_len, 32);
    const char *id = k->keys[0].key_id;
    EXPECT(s2, qkd014_get_key_with_ids(s2, "SAE_A1", &id, 1, &got), QKD014_OK, NULL);
    same_keys(k, got);
    qkd014_keys_free(got);
    qkd014_keys_free(k);
    /* GET with number and size; POST dec_keys in another order */
    qkd014_key_request req = { .version = QKD014_KEY_REQUEST_VERSION, .number = 3, .size = 512 };
    EXPECT(m, qkd014_get_key(m, "SAE_A2", &req, &k), QKD014_OK, NULL);
    assert_int_equal(k->n, 3);
    assert_int_equal(k->keys[2].key_len, 64);
    const char *ids[] = { k->keys[2].key_id, k->keys[0].key_id, k->keys[1].key_id };
    EXPECT(s2, qkd014_get_key_with_ids(s2, "SAE_A1", ids, 3, &got), QKD014_OK, NULL);
    assert_string_equal(got->keys[0].key_id, ids[0]);
    assert_memory_equal(got->keys[0].key, k->keys[2].key, 64);
    qkd014_keys_free(got);
    qkd014_keys_free(k);
    /* POST form (multicast + optional extension): both slaves get the keys */
    const char *more[] = { "SAE_A3" };
    req = (qkd014_key_request){ .version = QKD014_KEY_REQUEST_VERSION,
                                .number = 2, .additional_slaves = more, .n_additional = 1,
                                .extension_optional_json = "[{\"abc_route\":\"x\"}]" };
    EXPECT(m, qkd014_get_key(m, "SAE_A2", &req, &k), QKD014_OK, NULL);
    const char *two[] = { k->keys[0].key_id, k->keys[1].key_id };
    EXPECT(s2, qkd014_get_key_with_ids(s2, "SAE_A1", two, 2, &got), QKD014_OK, NULL);
    same_keys(k, got);
    qkd014_keys_free(got);
    EXPECT(s3, qkd014_get_key_with_ids(s3, "SAE_A1", two, 2, &got), QKD014_OK, NULL);
    same_keys(k, got);
    qkd014_keys_free(got);
    qkd014_keys_free(k);
    qkd014_client_free(m);
    qkd014_client_free(s2);
    qkd014_client_free(s3);
}

/* --------------------------------------------------------------- errors */

static void test_usage_errors(void **state)
{
    (void)state;
    qkd014_client *c = sae("SAE_A1");
    qkd014_keys *k = NULL;
    qkd014_status *s = NULL;
    const char *bad[] = { "not-a-uuid" };
    qkd014_key_request neg = { .version = QKD014_KEY_REQUEST_VERSION, .number = -1 };
    EXPECT(c, qkd014_get_status(c, "", &s), QKD014_E_USAGE, "empty");
    EXPECT(c, qkd014_get_key(c, "SAE_A2", &neg, &k), QKD014_E_USAGE, "negative");
    EXPECT(c, qkd014_get_key_with_ids(c, "SAE_A2", bad, 1, &k), QKD014_E_USAGE, "not a UUID");
    qkd014_key_request ext = { .version = QKD014_KEY_REQUEST_VERSION,
                               .extension_mandatory_json = "{\"a\":1}" };
    EXPECT(c, qkd014_get_key(c, "SAE_A2", &ext, &k), QKD014_E_USAGE, "not a JSON array");
    assert_int_equal(qkd014_last_http_status(c), 0); /* nothing was sent */
    assert_null(qkd014_peer_kme_id(c));
    qkd014_options o = { .version = QKD014_OPTIONS_VERSION,
                         .kme_url = "http://localhost:1", .cert_file = env("SAE_A1_CERT"),
                         .key_file = env("SAE_A1_KEY"), .ca_file = env("CA_CERT") };
    qkd014_client *d = NULL;
    assert_int_equal(qkd014_client_new(&o, &d), QKD014_E_USAGE);
    assert_null(d);
    qkd014_client_free(c);
}

static void test_bad_request_400(void **state)
{
    (void)state;
    qkd014_client *m = sae("SAE_A1"), *s2 = sae("SAE_A2");
    qkd014_keys *k = NULL, *got = NULL;
    qkd014_key_request req = { .version = QKD014_KEY_REQUEST_VERSION, .size = 7 };
    EXPECT(m, qkd014_get_key(m, "SAE_A2", &req, &k), QKD014_E_BAD_REQUEST,
           "size shall be a multiple of 8");
    assert_int_equal(qkd014_last_http_status(m), 400);
    req = (qkd014_key_request){ .version = QKD014_KEY_REQUEST_VERSION,
                                .extension_mandatory_json = "[{\"abc_unknown\":1}]" };
    EXPECT(m, qkd014_get_key(m, "SAE_A2", &req, &k), QKD014_E_BAD_REQUEST,
           "not all extension_mandatory parameters are supported");
    EXPECT(m, qkd014_get_key(m, "SAE_A2", NULL, &k), QKD014_OK, NULL);
    const char *id = k->keys[0].key_id;
    EXPECT(s2, qkd014_get_key_with_ids(s2, "SAE_A1", &id, 1, &got), QKD014_OK, NULL);
    qkd014_keys_free(got);
    EXPECT(s2, qkd014_get_key_with_ids(s2, "SAE_A1", &id, 1, &got), QKD014_E_BAD_REQUEST,
           "one or more keys specified are not found on KME");
    assert_null(got);
    qkd014_keys_free(k);
    qkd014_client_free(m);
    qkd014_client_free(s2);
}

static void test_unauthorized_401(void **state)
{
    (void)state;
    qkd014_client *m = sae("SAE_A1"), *s3 = sae("SAE_A3");
    qkd014_client *x = sae("SAE_X");
    qkd014_keys *k = NULL, *got = NULL;
    qkd014_status *s = NULL;
    EXPECT(m, qkd014_get_key(m, "SAE_A2", NULL, &k), QKD014_OK, NULL);
    const char *id = k->keys[0].key_id;
    /* SAE_A3 was not named as a slave */
    EXPECT(s3, qkd014_get_key_with_ids(s3, "SAE_A1", &id, 1, &got), QKD014_E_UNAUTHORIZED, NULL);
    assert_int_equal(qkd014_last_http_status(s3), 401);
    /* a valid certificate of an SAE registered nowhere */
    EXPECT(x, qkd014_get_status(x, "SAE_A2", &s), QKD014_E_UNAUTHORIZED, NULL);
    assert_null(s);
    qkd014_keys_free(k);
    qkd014_client_free(m);
    qkd014_client_free(s3);
    qkd014_client_free(x);
}

/* Client certificates the KME must refuse: it fails the handshake or, where
 * libmicrohttpd gets that far, answers 401 and closes (DESIGN.md §2). */
static void test_rejected_client_certs(void **state)
{
    (void)state;
    qkd014_status *s = NULL;
    const who cases[] = {
        { .sae = "SAE_A1", .cert = env("SAE_A1_ROGUE_CERT"), .key = env("SAE_A1_ROGUE_KEY") },
        { .sae = "SAE_A1", .cert = env("SAE_A1_EXPIRED_CERT"), .key = env("SAE_A1_EXPIRED_KEY") },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        qkd014_client *c = client_for(cases[i]);
        qkd014_code rc = qkd014_get_status(c, "SAE_A2", &s);
        if (rc != QKD014_E_TLS && rc != QKD014_E_UNAUTHORIZED)
            fail_msg("case %zu: got %s (%s), expected TLS failure or 401", i,
                     qkd014_strerror(rc), qkd014_errmsg(c));
        assert_null(s);
        qkd014_client_free(c);
    }
}

/* KME certificates the client must refuse, before any request is sent. */
static void test_tls_errors(void **state)
{
    (void)state;
    qkd014_status *s = NULL;
    const who cases[] = {
        { .sae = "SAE_A1", .ca = env("SAE_CA_CERT") },  /* does not sign KME-A */
        { .sae = "SAE_A1", .kme_id = "KME-B" },         /* KME-A is not KME-B */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        qkd014_client *c = client_for(cases[i]);
        EXPECT(c, qkd014_get_status(c, "SAE_A2", &s), QKD014_E_TLS,
               i == 1 ? "names KME-A, expected KME-B" : NULL);
        assert_null(s);
        assert_int_equal(qkd014_last_http_status(c), 0);
        qkd014_client_free(c);
    }
}

static void test_transport(void **state)
{
    (void)state;
    qkd014_status *s = NULL;
    qkd014_client *c = client_for((who){ .sae = "SAE_A1", .url = "https://localhost:1" });
    EXPECT(c, qkd014_get_status(c, "SAE_A2", &s), QKD014_E_TRANSPORT, NULL);
    assert_int_equal(qkd014_last_http_status(c), 0);
    qkd014_client_free(c);
}

/* ------------------------------------------------------------ 503 (tiny) */

static int tiny_port(const char *file)
{
    int port = 0;
    FILE *f = fopen(file, "r");
    if (f != NULL) {
        if (fscanf(f, "%d", &port) != 1)
            port = 0;
        fclose(f);
    }
    return port;
}

/* Start a qkd-kme with a pool of 8 keys of 256 bits and no refill. */
static int start_tiny(char *url, size_t urllen)
{
    char conf[1200], pf[1200], db[1200], log[1200];
    const char *dir = env("TESTBED_DIR");
    snprintf(conf, sizeof conf, "%s/sae-tiny.conf", dir);
    snprintf(pf, sizeof pf, "%s/sae-tiny.port", dir);
    snprintf(db, sizeof db, "%s/sae-tiny.db", dir);
    snprintf(log, sizeof log, "%s/sae-tiny.log", dir);
    unlink(pf);
    FILE *f = fopen(conf, "w");
    assert_non_null(f);
    fprintf(f, "[kme]\nid = KME-A\ndatabase = %s\n\n[sae_api]\nlisten = 127.0.0.1:0\n"
               "cert = %s/pki/KME-A.crt\nkey = %s/pki/KME-A.key\nca = %s\n"
               "identity = cn\nport_file = %s\n\n[saes]\nlocal = SAE_A1 SAE_A2 SAE_A3\n\n"
               "[limits]\nkey_size = 256\nmin_key_size = 64\nmax_key_size = 2048\n"
               "local_pool_bits = 2048\nlocal_rate_bps = 1\n",
            db, dir, dir, env("SAE_CA_CERT"), pf);
    assert_int_equal(fclose(f), 0);
    T.tiny_pid = fork();
    assert_true(T.tiny_pid >= 0);
    if (T.tiny_pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(env("KME_BIN"), "qkd-kme", "--config", conf, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 200 && tiny_port(pf) <= 0; i++)
        usleep(50000);
    int port = tiny_port(pf);
    snprintf(url, urllen, "https://localhost:%d", port);
    return port;
}

static int stop_tiny(void **state)
{
    (void)state;
    if (T.tiny_pid > 0) {
        kill(T.tiny_pid, SIGTERM);
        waitpid(T.tiny_pid, NULL, 0);
        T.tiny_pid = 0;
    }
    return 0;
}

static void test_unavailable_503(void **state)
{
    (void)state;
    char url[64];
    if (start_tiny(url, sizeof url) <= 0)
        fail_msg("the tiny qkd-kme did not start (see TESTBED_DIR/sae-tiny.log)");
    qkd014_client *c = client_for((who){ .sae = "SAE_A1", .url = url });
    qkd014_status *s = NULL;
    qkd014_keys *k = NULL;
    EXPECT(c, qkd014_get_status(c, "SAE_A2", &s), QKD014_OK, NULL);
    int32_t stored = s->stored_key_count;
    qkd014_status_free(s);
    if (stored > 0) {
        qkd014_key_request all = { .version = QKD014_KEY_REQUEST_VERSION, .number = stored };
        EXPECT(c, qkd014_get_key(c, "SAE_A2", &all, &k), QKD014_OK, NULL);
        qkd014_keys_free(k);
    }
    EXPECT(c, qkd014_get_key(c, "SAE_A2", NULL, &k), QKD014_E_UNAVAILABLE, NULL);
    assert_int_equal(qkd014_last_http_status(c), 503);
    assert_true(strlen(qkd014_errmsg(c)) > 0);
    assert_null(k);
    qkd014_client_free(c);
}

int main(void)
{
    if (qkd014_global_init() != QKD014_OK)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status),
        cmocka_unit_test(test_get_key_round_trips),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_bad_request_400),
        cmocka_unit_test(test_unauthorized_401),
        cmocka_unit_test(test_rejected_client_certs),
        cmocka_unit_test(test_tls_errors),
        cmocka_unit_test(test_transport),
        cmocka_unit_test_teardown(test_unavailable_503, stop_tiny),
    };
    int r = cmocka_run_group_tests_name("libqkd014 vs qkd-kme", tests, group_setup, NULL);
    qkd014_global_cleanup();
    return r;
}
