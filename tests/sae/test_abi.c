/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_abi.c - libqkd014's promises to programs built against another
 * version of qkd014.h (docs/libqkd014.md, "Versioning and ABI"):
 *   - qkd014_version() is the version of the header's macros, which is
 *     meson.build's project version (QUMAILC_VERSION);
 *   - an option struct laid out as version 1 (the first versioned layout,
 *     frozen here member by member) is accepted and its members are read,
 *     even when it is allocated with exactly its own size (ASan sees any
 *     read past it);
 *   - version 0 (a struct not started from its _INIT macro) and a version
 *     newer than the library are refused with QKD014_E_VERSION, with a
 *     message, before anything is allocated or sent.
 * No KME is needed: the client (with certificates made by scripts/pki,
 * named by QKD014_PKI_SCRIPT) is pointed at a loopback port that refuses
 * connections, so a struct that gets past the checks ends in
 * QKD014_E_TRANSPORT.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "qkd014.h"
#include "sae/qkd014_internal.h"

/* Version 1 of the option structs as released in 0.2.0.  A later version
 * only appends members: these offsets must never change. */
typedef struct options_v1 {
    unsigned int version;
    const char *kme_url, *cert_file, *key_file, *ca_file, *expected_kme_id;
    long connect_timeout_ms, timeout_ms;
} options_v1;

typedef struct key_request_v1 {
    unsigned int version;
    int32_t number, size;
    const char *const *additional_slaves;
    size_t n_additional;
    const char *extension_mandatory_json, *extension_optional_json;
} key_request_v1;

#define SAME_OFFSET(old, cur, m) \
    _Static_assert(offsetof(old, m) == offsetof(cur, m), #cur "." #m " moved")
SAME_OFFSET(options_v1, qkd014_options, version);
SAME_OFFSET(options_v1, qkd014_options, kme_url);
SAME_OFFSET(options_v1, qkd014_options, cert_file);
SAME_OFFSET(options_v1, qkd014_options, key_file);
SAME_OFFSET(options_v1, qkd014_options, ca_file);
SAME_OFFSET(options_v1, qkd014_options, expected_kme_id);
SAME_OFFSET(options_v1, qkd014_options, connect_timeout_ms);
SAME_OFFSET(options_v1, qkd014_options, timeout_ms);
SAME_OFFSET(key_request_v1, qkd014_key_request, version);
SAME_OFFSET(key_request_v1, qkd014_key_request, number);
SAME_OFFSET(key_request_v1, qkd014_key_request, size);
SAME_OFFSET(key_request_v1, qkd014_key_request, additional_slaves);
SAME_OFFSET(key_request_v1, qkd014_key_request, n_additional);
SAME_OFFSET(key_request_v1, qkd014_key_request, extension_mandatory_json);
SAME_OFFSET(key_request_v1, qkd014_key_request, extension_optional_json);

static struct {
    char dir[256], cert[300], key[300], ca[300];
    char url[64];            /* https://127.0.0.1:PORT, refusing connections */
    int closed_sock;         /* bound, never listening: holds PORT */
} T;

static int setup(void **state)
{
    (void)state;
    const char *pki = getenv("QKD014_PKI_SCRIPT");
    char cmd[1024];
    if (pki == NULL || access(pki, X_OK) != 0) {
        fprintf(stderr, "QKD014_PKI_SCRIPT does not name scripts/pki\n");
        return -1;
    }
    snprintf(T.dir, sizeof T.dir, "%s/qkd014-abi.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(T.dir) == NULL)
        return -1;
    snprintf(cmd, sizeof cmd, "'%s' init '%s' >/dev/null && '%s' sae '%s' SAE_T >/dev/null",
             pki, T.dir, pki, T.dir);
    if (system(cmd) != 0)
        return -1;
    snprintf(T.cert, sizeof T.cert, "%s/SAE_T.crt", T.dir);
    snprintf(T.key, sizeof T.key, "%s/SAE_T.key", T.dir);
    snprintf(T.ca, sizeof T.ca, "%s/kme-ca.crt", T.dir);
    struct sockaddr_in a = { .sin_family = AF_INET };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    T.closed_sock = socket(AF_INET, SOCK_STREAM, 0);
    if (T.closed_sock < 0 || bind(T.closed_sock, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(T.closed_sock, (struct sockaddr *)&a, &len) != 0)
        return -1;
    snprintf(T.url, sizeof T.url, "https://127.0.0.1:%u", ntohs(a.sin_port));
    return qkd014_global_init() == QKD014_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    close(T.closed_sock);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", T.dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", T.dir);
    qkd014_global_cleanup();
    return 0;
}

/* A version-1 options struct in an allocation of exactly its size. */
static options_v1 *options_v1_new(void)
{
    options_v1 *o = malloc(sizeof *o);
    assert_non_null(o);
    *o = (options_v1){ .version = 1, .kme_url = T.url, .cert_file = T.cert,
                       .key_file = T.key, .ca_file = T.ca, .timeout_ms = 2000 };
    return o;
}

static void test_version_matches_macros_and_meson(void **state)
{
    (void)state;
    char built[32];
    snprintf(built, sizeof built, "%d.%d.%d", QKD014_VERSION_MAJOR, QKD014_VERSION_MINOR,
             QKD014_VERSION_PATCH);
    assert_string_equal(qkd014_version(), QKD014_VERSION_STRING);
    assert_string_equal(qkd014_version(), built);
    assert_string_equal(qkd014_version(), QUMAILC_VERSION); /* meson's project version */
    assert_int_equal(QKD014_VERSION_NUM, (QKD014_VERSION_MAJOR << 16) |
                                         (QKD014_VERSION_MINOR << 8) | QKD014_VERSION_PATCH);
}

static void test_init_macros_set_the_current_version(void **state)
{
    (void)state;
    qkd014_options o = QKD014_OPTIONS_INIT;
    qkd014_key_request r = QKD014_KEY_REQUEST_INIT;
    assert_int_equal(o.version, QKD014_OPTIONS_VERSION);
    assert_null(o.kme_url);
    assert_int_equal(o.timeout_ms, 0);
    assert_int_equal(r.version, QKD014_KEY_REQUEST_VERSION);
    assert_int_equal(r.number, 0);
    assert_string_not_equal(qkd014_strerror(QKD014_E_VERSION), "unknown error");
}

static void test_v1_options_accepted(void **state)
{
    (void)state;
    options_v1 *o = options_v1_new();
    char err[256];
    assert_int_equal(qkd014_options_check((const qkd014_options *)o, err, sizeof err),
                     QKD014_OK);
    qkd014_client *c = NULL;
    assert_int_equal(qkd014_client_new((const qkd014_options *)o, &c), QKD014_OK);
    assert_non_null(c);
    /* its members were read: the URL is the refusing port */
    qkd014_status *s;
    assert_int_equal(qkd014_get_status(c, "SAE_B", &s), QKD014_E_TRANSPORT);
    assert_null(s);
    qkd014_client_free(c);
    /* and a member of the old struct is still checked */
    o->timeout_ms = -1;
    assert_int_equal(qkd014_options_check((const qkd014_options *)o, err, sizeof err),
                     QKD014_E_USAGE);
    assert_non_null(strstr(err, "timeout"));
    free(o);
}

static void refused_options(unsigned int version, const char *says)
{
    options_v1 *o = options_v1_new();
    o->version = version;
    char err[256] = "";
    assert_int_equal(qkd014_options_check((const qkd014_options *)o, err, sizeof err),
                     QKD014_E_VERSION);
    assert_non_null(strstr(err, says));
    qkd014_client *c = (qkd014_client *)o; /* any non-NULL value */
    assert_int_equal(qkd014_client_new((const qkd014_options *)o, &c), QKD014_E_VERSION);
    assert_null(c);
    free(o);
}

static void test_version_0_options_refused(void **state)
{
    (void)state;
    refused_options(0, "QKD014_OPTIONS_INIT");
}

static void test_future_options_refused(void **state)
{
    (void)state;
    refused_options(QKD014_OPTIONS_VERSION + 1, "newer");
    refused_options(~0u, "newer");
}

static qkd014_client *client(void)
{
    qkd014_options o = QKD014_OPTIONS_INIT;
    o.kme_url = T.url;
    o.cert_file = T.cert;
    o.key_file = T.key;
    o.ca_file = T.ca;
    o.timeout_ms = 2000;
    qkd014_client *c;
    assert_int_equal(qkd014_client_new(&o, &c), QKD014_OK);
    return c;
}

static void test_v1_key_request_accepted(void **state)
{
    (void)state;
    qkd014_client *c = client();
    key_request_v1 *r = malloc(sizeof *r);
    assert_non_null(r);
    *r = (key_request_v1){ .version = 1, .number = -1 };
    qkd014_keys *k;
    /* number was read from the old struct: refused before any connection */
    assert_int_equal(qkd014_get_key(c, "SAE_B", (const qkd014_key_request *)r, &k),
                     QKD014_E_USAGE);
    assert_int_equal(qkd014_last_connects(c), 0);
    r->number = 2;
    assert_int_equal(qkd014_get_key(c, "SAE_B", (const qkd014_key_request *)r, &k),
                     QKD014_E_TRANSPORT);
    assert_null(k);
    free(r);
    qkd014_client_free(c);
}

static void refused_request(unsigned int version, const char *says)
{
    qkd014_client *c = client();
    qkd014_key_request r = QKD014_KEY_REQUEST_INIT;
    r.version = version;
    r.number = 2;
    qkd014_keys *k = (qkd014_keys *)c;
    assert_int_equal(qkd014_get_key(c, "SAE_B", &r, &k), QKD014_E_VERSION);
    assert_null(k);
    assert_non_null(strstr(qkd014_errmsg(c), says));
    assert_int_equal(qkd014_last_connects(c), 0); /* nothing was sent */
    qkd014_client_free(c);
}

static void test_version_0_key_request_refused(void **state)
{
    (void)state;
    refused_request(0, "QKD014_KEY_REQUEST_INIT");
}

static void test_future_key_request_refused(void **state)
{
    (void)state;
    refused_request(QKD014_KEY_REQUEST_VERSION + 1, "newer");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version_matches_macros_and_meson),
        cmocka_unit_test(test_init_macros_set_the_current_version),
        cmocka_unit_test(test_v1_options_accepted),
        cmocka_unit_test(test_version_0_options_refused),
        cmocka_unit_test(test_future_options_refused),
        cmocka_unit_test(test_v1_key_request_accepted),
        cmocka_unit_test(test_version_0_key_request_refused),
        cmocka_unit_test(test_future_key_request_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
