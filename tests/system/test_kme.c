/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_kme.c - system tests of qkd-kme: the ETSI GS QKD 014 SAE API of a real
 * KME process, over real mutual TLS on loopback, with its real database.
 *
 * What: every row of the behaviour table of shared/spec/etsi-gs-qkd-014.md
 * §5 and the matrix of §14 (status, enc_keys, dec_keys, multicast,
 * extensions, error bodies and their exact spec messages, HTTP details,
 * TLS authentication and protocol versions), the 503 on an exhausted pool,
 * and the invariants of DESIGN.md §3 under load and under kill -9: I1 (a key
 * goes once to the master), I2 (once to each named slave, and only to them)
 * and I4 (durable before visible).
 *
 * How: tests/system/run-with-testbed brings up scripts/testbed (KME-A with
 * SAE_A1..A3, a fresh PKI) and runs this program with TESTBED_DIR set; the
 * group setup reads TESTBED_DIR/testbed.env and the limits of KME-A's config
 * file once, and every expected limit below comes from there (nothing is
 * hard-coded but the spec's own strings).  Well-formed calls go through
 * libqkd014 (qkd014_get_status, qkd014_get_key, qkd014_get_key_with_ids);
 * malformed ones through qkd014_raw_request on the same client code path.
 * Raw libcurl is used where response headers or connection reuse must be
 * seen (TLS probing without/with bad certificates, Cache-Control,
 * keep-alive), the GnuTLS client API for TLS protocol versions.  The
 * exhaustion test runs a second qkd-kme of its own (small pool, slow
 * refill); the crash tests SIGKILL KME-A through `scripts/testbed kill` and
 * restart it with `scripts/testbed start`.  Every test makes its own keys.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <jansson.h>
#include <sodium.h>

#include "qkd014.h"
#include "sae/qkd014_internal.h"
#include "check.h"
#include "testbed_env.h"

/* The spec's exact messages (ETSI GS QKD 014 §6.2, §6.4) and the 401 body
 * of the digest §5.1 item 4. */
#define MSG_SIZE_MULT8 "size shall be a multiple of 8"
#define MSG_EXT_UNSUPPORTED "not all extension_mandatory parameters are supported"
#define MSG_EXT_UNMET "not all extension_mandatory request options could be met"
#define MSG_NOT_FOUND "one or more keys specified are not found on KME"
#define MSG_UNAUTHORIZED "unauthorized"

/* ------------------------------------------------------------------ checks */

/* Report a failure at the caller's file and line (helpers take them). */

/* ----------------------------------------------------------------- testbed */

typedef tb_sae sae;

typedef struct limits {
    long key_size, min_key_size, max_key_size, max_key_per_request, max_sae_id_count;
} limits;

static struct testbed {
    char *dir, *script, *build_dir;
    char *kme_url, *kme_id, *ca_cert, *kme_conf;
    int port;
    sae a1, a2, a3, x;
    sae a1_expired, a1_rogue; /* may be NULL: tests then skip */
    char *kme_cert, *kme_key, *sae_ca; /* from KME_A_CONF */
    limits lim;
} TB;

/* Value of KEY in DIR/testbed.env (malloc'd), or NULL. */
static char *env_value(const char *key)
{
    return testbed_env_value(TB.dir, key);
}

/* "key = value" of [section] in an INI file (malloc'd), or NULL. */
static char *ini_value(const char *file, const char *section, const char *key)
{
    FILE *f = fopen(file, "r");
    if (f == NULL)
        return NULL;
    char line[4096], cur[128] = "";
    char *val = NULL;
    while (val == NULL && fgets(line, sizeof line, f) != NULL) {
        char *p = line;
        char *hash = strchr(p, '#');
        if (hash != NULL)
            *hash = '\0';
        while (*p == ' ' || *p == '\t')
            p++;
        size_t n = strlen(p);
        while (n > 0 && strchr(" \t\r\n", p[n - 1]) != NULL)
            p[--n] = '\0';
        if (p[0] == '[') {
            snprintf(cur, sizeof cur, "%.*s", (int)strcspn(p + 1, "]"), p + 1);
            continue;
        }
        char *eq = strchr(p, '=');
        if (eq == NULL || strcmp(cur, section) != 0)
            continue;
        char *k = p, *v = eq + 1;
        char *ke = eq;
        while (ke > k && (ke[-1] == ' ' || ke[-1] == '\t'))
            ke--;
        *ke = '\0';
        while (*v == ' ' || *v == '\t')
            v++;
        if (strcmp(k, key) == 0)
            val = strdup(v);
    }
    fclose(f);
    return val;
}

/* A [limits] value of KME-A's config, or the documented default. */
static long conf_limit(const char *key, long dflt)
{
    char *v = ini_value(TB.kme_conf, "limits", key);
    long n = v != NULL ? strtol(v, NULL, 10) : dflt;
    free(v);
    return n;
}

/* (Re-)read the URL and port of KME-A: `testbed start` rewrites the env. */
static int load_kme_url(void)
{
    free(TB.kme_url);
    TB.kme_url = env_value("KME_A_URL");
    const char *colon = TB.kme_url != NULL ? strrchr(TB.kme_url, ':') : NULL;
    TB.port = colon != NULL ? atoi(colon + 1) : 0;
    return TB.port > 0 ? 0 : -1;
}

static int group_setup(void **state)
{
    (void)state;
    memset(&TB, 0, sizeof TB);
    const char *dir = getenv("TESTBED_DIR");
    if (dir == NULL || dir[0] == '\0') {
        print_error("TESTBED_DIR is not set: run through tests/system/run-with-testbed\n");
        return -1;
    }
    TB.dir = strdup(dir);
    const char *script = getenv("TESTBED_SCRIPT");
    TB.script = script != NULL ? strdup(script) : NULL;
    TB.build_dir = getenv("TESTBED_BUILD_DIR") ? strdup(getenv("TESTBED_BUILD_DIR")) : NULL;
    TB.kme_id = env_value("KME_A_ID");
    TB.ca_cert = env_value("CA_CERT");
    TB.kme_conf = env_value("KME_A_CONF");
    tb_sae_load(&TB.a1, TB.dir, "SAE_A1");
    tb_sae_load(&TB.a2, TB.dir, "SAE_A2");
    tb_sae_load(&TB.a3, TB.dir, "SAE_A3");
    tb_sae_load(&TB.x, TB.dir, "SAE_X");
    TB.a1_expired.id = TB.a1.id ? strdup(TB.a1.id) : NULL;
    TB.a1_expired.cert = env_value("SAE_A1_EXPIRED_CERT");
    TB.a1_expired.key = env_value("SAE_A1_EXPIRED_KEY");
    TB.a1_rogue.id = TB.a1.id ? strdup(TB.a1.id) : NULL;
    TB.a1_rogue.cert = env_value("SAE_A1_ROGUE_CERT");
    TB.a1_rogue.key = env_value("SAE_A1_ROGUE_KEY");
    if (load_kme_url() != 0 || TB.kme_id == NULL || TB.ca_cert == NULL || TB.kme_conf == NULL
        || TB.a1.cert == NULL || TB.a2.cert == NULL || TB.a3.cert == NULL || TB.x.cert == NULL) {
        print_error("%s/testbed.env lacks KME_A_URL, KME_A_ID, CA_CERT, KME_A_CONF or an SAE\n",
                    TB.dir);
        return -1;
    }
    TB.kme_cert = ini_value(TB.kme_conf, "sae_api", "cert");
    TB.kme_key = ini_value(TB.kme_conf, "sae_api", "key");
    TB.sae_ca = ini_value(TB.kme_conf, "sae_api", "ca");
    TB.lim.key_size = conf_limit("key_size", 256);
    TB.lim.min_key_size = conf_limit("min_key_size", 64);
    TB.lim.max_key_size = conf_limit("max_key_size", 65536);
    TB.lim.max_key_per_request = conf_limit("max_key_per_request", 1024);
    TB.lim.max_sae_id_count = conf_limit("max_sae_id_count", 4);
    if (qkd014_global_init() != QKD014_OK || gnutls_global_init() < 0) {
        print_error("cannot initialise libqkd014 / GnuTLS\n");
        return -1;
    }
    print_message("testbed %s: KME %s at %s; limits key_size %ld [%ld, %ld], "
                  "max_key_per_request %ld, max_SAE_ID_count %ld\n",
                  TB.dir, TB.kme_id, TB.kme_url, TB.lim.key_size, TB.lim.min_key_size,
                  TB.lim.max_key_size, TB.lim.max_key_per_request, TB.lim.max_sae_id_count);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    gnutls_global_deinit();
    qkd014_global_cleanup();
    free(TB.dir);
    free(TB.script);
    free(TB.build_dir);
    free(TB.kme_url);
    free(TB.kme_id);
    free(TB.ca_cert);
    free(TB.kme_conf);
    free(TB.kme_cert);
    free(TB.kme_key);
    free(TB.sae_ca);
    tb_sae_free(&TB.a1);
    tb_sae_free(&TB.a2);
    tb_sae_free(&TB.a3);
    tb_sae_free(&TB.x);
    tb_sae_free(&TB.a1_expired);
    tb_sae_free(&TB.a1_rogue);
    return 0;
}

/* Run scripts/testbed CMD TESTBED_DIR kme-a; its exit status. */
static int testbed_cmd(const char *cmd)
{
    if (TB.script == NULL)
        return -1;
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        execl(TB.script, TB.script, cmd, TB.dir, "kme-a", (char *)NULL);
        _exit(127);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* kill -9 of KME-A at once (the crash tests): the script takes tens of
 * milliseconds to start, long enough for fast workers to finish before
 * the crash; then `testbed kill` for its bookkeeping (it finds KME-A
 * gone).  The status of that command. */
static int crash_kme_a(void)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/kme-a.pid", TB.dir);
    FILE *f = fopen(path, "r");
    long pid = 0;
    if (f) {
        if (fscanf(f, "%ld", &pid) != 1)
            pid = 0;
        fclose(f);
    }
    if (pid > 1)
        kill((pid_t)pid, SIGKILL);
    return testbed_cmd("kill");
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ------------------------------------------------- cleanup after failures */

/* A failed check leaves its test by longjmp: what the test made through
 * track() is released by the per-test teardown, so that a failing test does
 * not also show up as leaks in sanitizer builds. */
typedef struct tracked {
    void (*fn)(void *);
    void *p;
} tracked;
static tracked TRACKED[256];
static size_t N_TRACKED;

static void *track(void (*fn)(void *), void *p)
{
    if (p != NULL && N_TRACKED < sizeof TRACKED / sizeof *TRACKED)
        TRACKED[N_TRACKED++] = (tracked){ fn, p };
    return p;
}

/* Release p now and forget it. */
static void untrack(void *p)
{
    for (size_t i = N_TRACKED; i-- > 0;)
        if (TRACKED[i].p == p) {
            TRACKED[i].fn(p);
            TRACKED[i] = TRACKED[--N_TRACKED];
            return;
        }
}

static int release_tracked(void **state)
{
    (void)state;
    while (N_TRACKED > 0) {
        tracked t = TRACKED[--N_TRACKED];
        t.fn(t.p);
    }
    return 0;
}

static void client_free_cb(void *p)
{
    qkd014_client_free(p);
}

/* ------------------------------------------------------- libqkd014 clients */

static qkd014_client *client_at(const char *file, int line, const char *url, const sae *s)
{
    qkd014_options o = {
        .version = QKD014_OPTIONS_VERSION,
        .kme_url = url,
        .cert_file = s->cert,
        .key_file = s->key,
        .ca_file = TB.ca_cert,
        .expected_kme_id = TB.kme_id,
    };
    qkd014_client *c = NULL;
    qkd014_code rc = qkd014_client_new(&o, &c);
    CHECK_AT(file, line, rc == QKD014_OK && c != NULL, "qkd014_client_new(%s, %s): %s",
             url, s->id, qkd014_strerror(rc));
    return track(client_free_cb, c);
}
#define new_client(s) client_at(__FILE__, __LINE__, TB.kme_url, (s))

/* The raw answer to one request. */
typedef struct answer {
    long status;
    char *body;
    size_t len;
    char *ctype;
    json_t *json; /* parsed body (object or not), or NULL */
} answer;

static void answer_free(answer *a)
{
    if (a->body != NULL)
        sodium_memzero(a->body, a->len);
    free(a->body);
    free(a->ctype);
    json_decref(a->json);
    memset(a, 0, sizeof *a);
}

static void raw_at(const char *file, int line, qkd014_client *c, const char *method,
                   const char *path, const char *ctype, const char *body, size_t len,
                   answer *a)
{
    memset(a, 0, sizeof *a);
    qkd014_code rc = qkd014_raw_request(c, method, path, ctype, body, len, &a->status,
                                        &a->body, &a->len, &a->ctype);
    CHECK_AT(file, line, rc == QKD014_OK, "%s %s: no HTTP answer: %s (%s)", method, path,
             qkd014_strerror(rc), qkd014_errmsg(c));
    json_error_t je;
    a->json = json_loadb(a->body, a->len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
}

/* application/json, optionally with parameters. */
static bool is_json_ctype(const char *ct)
{
    static const char want[] = "application/json";
    return ct != NULL && strncasecmp(ct, want, sizeof want - 1) == 0
        && (ct[sizeof want - 1] == '\0' || ct[sizeof want - 1] == ';'
            || ct[sizeof want - 1] == ' ');
}

/* Body is an Error: JSON object, string "message" (exactly want_msg, or any
 * non-empty text if want_msg is NULL), no key material. */
static void check_error_body_at(const char *file, int line, const char *what, long status,
                                const char *ctype, json_t *json, const char *body,
                                const char *want_msg)
{
    CHECK_AT(file, line, is_json_ctype(ctype), "%s: HTTP %ld with Content-Type %s, "
             "not application/json", what, status, ctype ? ctype : "(none)");
    CHECK_AT(file, line, json_is_object(json), "%s: HTTP %ld body is no JSON object: %.200s",
             what, status, body ? body : "");
    json_t *m = json_object_get(json, "message");
    CHECK_AT(file, line, json_is_string(m) && json_string_length(m) > 0,
             "%s: HTTP %ld body has no non-empty string \"message\": %.200s", what, status, body);
    if (want_msg != NULL)
        CHECK_AT(file, line, strcmp(json_string_value(m), want_msg) == 0,
                 "%s: message \"%s\", expected \"%s\"", what, json_string_value(m), want_msg);
    CHECK_AT(file, line, json_object_get(json, "keys") == NULL, "%s: error body holds keys", what);
}

/* The one helper for error answers: the request must be answered with
 * status, a JSON Error body and (if msg is not NULL) exactly msg.  Returns
 * the parsed body for further checks (caller decrefs). */
static void answer_free_cb(void *p)
{
    answer_free(p);
    free(p);
}

static json_t *expect_error_at(const char *file, int line, qkd014_client *c, const char *method,
                               const char *path, const char *ctype, const char *body,
                               long status, const char *msg)
{
    char what[600];
    snprintf(what, sizeof what, "%s %.400s%s%.100s", method, path, body ? " body " : "",
             body ? body : "");
    answer *a = calloc(1, sizeof *a);
    assert_non_null(a);
    track(answer_free_cb, a);
    raw_at(file, line, c, method, path, ctype, body, body ? strlen(body) : 0, a);
    CHECK_AT(file, line, a->status == status, "%s: HTTP %ld, expected %ld (body %.250s)", what,
             a->status, status, a->body ? a->body : "");
    check_error_body_at(file, line, what, a->status, a->ctype, a->json, a->body, msg);
    json_t *j = json_incref(a->json);
    untrack(a);
    return j;
}
#define expect_error(c, m, p, ct, b, st, msg) \
    json_decref(expect_error_at(__FILE__, __LINE__, (c), (m), (p), (ct), (b), (st), (msg)))
/* POST with a JSON body. */
#define expect_post_error(c, p, b, st, msg) expect_error(c, "POST", p, "application/json", b, st, msg)

/* A libqkd014 call failed with code, HTTP status and exactly msg. */
static void expect_lib_error_at(const char *file, int line, qkd014_client *c, qkd014_code got,
                                qkd014_code want, long http, const char *msg)
{
    CHECK_AT(file, line, got == want, "libqkd014 returned %s (%s), expected %s",
             qkd014_strerror(got), qkd014_errmsg(c), qkd014_strerror(want));
    CHECK_AT(file, line, qkd014_last_http_status(c) == http, "HTTP %ld, expected %ld",
             qkd014_last_http_status(c), http);
    if (msg != NULL)
        CHECK_AT(file, line, strcmp(qkd014_errmsg(c), msg) == 0, "message \"%s\", expected \"%s\"",
                 qkd014_errmsg(c), msg);
}
#define expect_lib_error(c, got, want, http, msg) \
    expect_lib_error_at(__FILE__, __LINE__, (c), (got), (want), (http), (msg))

static bool is_lower_uuid(const char *s)
{
    if (s == NULL || strlen(s) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    }
    return true;
}

/* A 200 Key container of n keys of bits bits (independent of libqkd014's
 * parser: jansson + libsodium's base64). */
static void check_key_container_at(const char *file, int line, const char *what, const answer *a,
                                   size_t n, long bits)
{
    CHECK_AT(file, line, a->status == 200, "%s: HTTP %ld, expected 200: %.200s", what, a->status,
             a->body);
    CHECK_AT(file, line, is_json_ctype(a->ctype), "%s: Content-Type %s", what,
             a->ctype ? a->ctype : "(none)");
    json_t *keys = json_object_get(a->json, "keys");
    CHECK_AT(file, line, json_is_object(a->json) && json_is_array(keys), "%s: no keys array", what);
    CHECK_AT(file, line, json_array_size(keys) == n, "%s: %zu keys, expected %zu", what,
             json_array_size(keys), n);
    size_t i;
    json_t *k;
    json_array_foreach(keys, i, k) {
        const char *id = json_string_value(json_object_get(k, "key_ID"));
        const char *b64 = json_string_value(json_object_get(k, "key"));
        CHECK_AT(file, line, is_lower_uuid(id), "%s: key %zu has key_ID %s", what, i,
                 id ? id : "(none)");
        CHECK_AT(file, line, b64 != NULL, "%s: key %zu has no key string", what, i);
        size_t cap = strlen(b64), got = 0;
        uint8_t *bin = malloc(cap + 1);
        const char *end = NULL;
        int rc = sodium_base642bin(bin, cap + 1, b64, strlen(b64), NULL, &got, &end,
                                   sodium_base64_VARIANT_ORIGINAL);
        sodium_memzero(bin, cap + 1);
        free(bin);
        CHECK_AT(file, line, rc == 0 && end == b64 + strlen(b64), "%s: key %zu is not base64", what,
                 i);
        CHECK_AT(file, line, (long)got * 8 == bits, "%s: key %zu has %zu bits, expected %ld", what,
                 i, got * 8, bits);
    }
}
#define check_key_container(what, a, n, bits) \
    check_key_container_at(__FILE__, __LINE__, (what), (a), (n), (bits))

/* enc_keys through libqkd014: n keys of bits bits (0 = defaults). */
static qkd014_keys *get_keys_at(const char *file, int line, qkd014_client *c, const char *slave,
                                const qkd014_key_request *req)
{
    qkd014_keys *k = NULL;
    qkd014_code rc = qkd014_get_key(c, slave, req, &k);
    CHECK_AT(file, line, rc == QKD014_OK, "enc_keys for %s: %s (%s, HTTP %ld)", slave,
             qkd014_strerror(rc), qkd014_errmsg(c), qkd014_last_http_status(c));
    size_t want_n = req != NULL && req->number > 0 ? (size_t)req->number : 1;
    long want_bits = req != NULL && req->size > 0 ? req->size : TB.lim.key_size;
    CHECK_AT(file, line, k->n == want_n, "enc_keys: %zu keys, expected %zu", k->n, want_n);
    for (size_t i = 0; i < k->n; i++)
        CHECK_AT(file, line, (long)k->keys[i].key_len * 8 == want_bits,
                 "enc_keys: key %zu has %zu bits, expected %ld", i, k->keys[i].key_len * 8,
                 want_bits);
    return k;
}
#define get_keys(c, slave, req) get_keys_at(__FILE__, __LINE__, (c), (slave), (req))

static qkd014_keys *make_keys_at(const char *file, int line, qkd014_client *c, const char *slave,
                                 int32_t number, int32_t bits)
{
    qkd014_key_request r = { .version = QKD014_KEY_REQUEST_VERSION,
                             .number = number, .size = bits };
    return get_keys_at(file, line, c, slave, &r);
}
#define make_keys(c, slave, n, bits) make_keys_at(__FILE__, __LINE__, (c), (slave), (n), (bits))

/* dec_keys through libqkd014 of all keys of k (in order). */
static qkd014_keys *fetch_keys_at(const char *file, int line, qkd014_client *c, const char *master,
                                  const qkd014_keys *k)
{
    const char **ids = calloc(k->n, sizeof *ids);
    for (size_t i = 0; i < k->n; i++)
        ids[i] = k->keys[i].key_id;
    qkd014_keys *got = NULL;
    qkd014_code rc = qkd014_get_key_with_ids(c, master, ids, k->n, &got);
    free(ids);
    CHECK_AT(file, line, rc == QKD014_OK, "dec_keys of %zu keys of %s: %s (%s, HTTP %ld)", k->n,
             master, qkd014_strerror(rc), qkd014_errmsg(c), qkd014_last_http_status(c));
    return got;
}
#define fetch_keys(c, master, k) fetch_keys_at(__FILE__, __LINE__, (c), (master), (k))

/* Same IDs in the same order and identical material. */
static void check_same_keys_at(const char *file, int line, const qkd014_keys *want,
                               const qkd014_keys *got)
{
    CHECK_AT(file, line, want->n == got->n, "%zu keys, expected %zu", got->n, want->n);
    for (size_t i = 0; i < want->n; i++) {
        CHECK_AT(file, line, strcmp(want->keys[i].key_id, got->keys[i].key_id) == 0,
                 "key %zu: ID %s, expected %s", i, got->keys[i].key_id, want->keys[i].key_id);
        CHECK_AT(file, line, want->keys[i].key_len == got->keys[i].key_len
                 && sodium_memcmp(want->keys[i].key, got->keys[i].key, want->keys[i].key_len) == 0,
                 "key %s: material differs from the master's", want->keys[i].key_id);
    }
}
#define check_same_keys(want, got) check_same_keys_at(__FILE__, __LINE__, (want), (got))

static void path_of(char *out, size_t len, const char *sae_id, const char *what)
{
    snprintf(out, len, "/api/v1/keys/%s/%s", sae_id, what);
}

/* The not-found answer to a single GET dec_keys, through libqkd014 and raw. */
static void expect_not_found_at(const char *file, int line, qkd014_client *c, const char *master,
                                const char *key_id)
{
    qkd014_keys *k = NULL;
    qkd014_code rc = qkd014_get_key_with_ids(c, master, &key_id, 1, &k);
    qkd014_keys_free(k);
    expect_lib_error_at(file, line, c, rc, QKD014_E_BAD_REQUEST, 400, MSG_NOT_FOUND);
    char path[512];
    snprintf(path, sizeof path, "/api/v1/keys/%s/dec_keys?key_ID=%s", master, key_id);
    json_decref(expect_error_at(file, line, c, "GET", path, NULL, NULL, 400, MSG_NOT_FOUND));
}
#define expect_not_found(c, master, id) expect_not_found_at(__FILE__, __LINE__, (c), (master), (id))

/* ------------------------------------------------------------ raw libcurl */

/* One HTTPS exchange with libcurl, seeing the headers libqkd014 hides. */
typedef struct probe {
    CURLcode rc;
    long status, num_connects;
    char ctype[128], cache_control[128], connection[64], allow[64];
    char *body;
    size_t len;
    json_t *json;
    char err[CURL_ERROR_SIZE];
} probe;

static size_t probe_write(char *p, size_t sz, size_t n, void *ud)
{
    probe *pr = ud;
    size_t add = sz * n;
    char *b = realloc(pr->body, pr->len + add + 1);
    if (b == NULL)
        return 0;
    memcpy(b + pr->len, p, add);
    pr->body = b;
    pr->len += add;
    b[pr->len] = '\0';
    return add;
}

static void header_value(const char *line, size_t n, const char *name, char *out, size_t outlen)
{
    size_t nl = strlen(name);
    if (n <= nl || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
        return;
    const char *v = line + nl + 1;
    size_t vl = n - nl - 1;
    while (vl > 0 && (*v == ' ' || *v == '\t'))
        v++, vl--;
    while (vl > 0 && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
        vl--;
    snprintf(out, outlen, "%.*s", (int)vl, v);
}

static size_t probe_header(char *p, size_t sz, size_t n, void *ud)
{
    probe *pr = ud;
    size_t len = sz * n;
    if (len > 5 && strncmp(p, "HTTP/", 5) == 0) /* a new answer: forget the last */
        pr->ctype[0] = pr->cache_control[0] = pr->connection[0] = pr->allow[0] = '\0';
    header_value(p, len, "Content-Type", pr->ctype, sizeof pr->ctype);
    header_value(p, len, "Cache-Control", pr->cache_control, sizeof pr->cache_control);
    header_value(p, len, "Connection", pr->connection, sizeof pr->connection);
    header_value(p, len, "Allow", pr->allow, sizeof pr->allow);
    return len;
}

static CURL *probe_handle(const char *cert, const char *key)
{
    CURL *h = curl_easy_init();
    assert_non_null(h);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROXY, "");
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(h, CURLOPT_CAINFO, TB.ca_cert);
    curl_easy_setopt(h, CURLOPT_SSLVERSION, CURL_SSLVERSION_TLSv1_2);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
    if (cert != NULL) {
        curl_easy_setopt(h, CURLOPT_SSLCERT, cert);
        curl_easy_setopt(h, CURLOPT_SSLKEY, key);
    }
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, probe_write);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, probe_header);
    return h;
}

static void probe_free(probe *p)
{
    if (p->body != NULL)
        sodium_memzero(p->body, p->len);
    free(p->body);
    json_decref(p->json);
    memset(p, 0, sizeof *p);
}

/* GET url path on h (keep-alive across calls on the same handle). */
static void probe_get(CURL *h, const char *path, probe *p)
{
    char url[1024];
    memset(p, 0, sizeof *p);
    snprintf(url, sizeof url, "%s%s", TB.kme_url, path);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, p);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, p);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, p->err);
    p->rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &p->status);
    curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &p->num_connects);
    if (p->body != NULL)
        p->json = json_loadb(p->body, p->len, JSON_REJECT_DUPLICATES, NULL);
}

/* ------------------------------------------------------------------ status */

static void test_status_members(void **state)
{
    (void)state;
    qkd014_client *c = new_client(&TB.a1);
    char path[512];
    path_of(path, sizeof path, TB.a2.id, "status");
    answer a;
    raw_at(__FILE__, __LINE__, c, "GET", path, NULL, NULL, 0, &a);
    CHECK(a.status == 200, "status: HTTP %ld: %.200s", a.status, a.body);
    CHECK(is_json_ctype(a.ctype), "status: Content-Type %s", a.ctype ? a.ctype : "(none)");
    CHECK(json_is_object(a.json), "status body is no JSON object: %.200s", a.body);
    static const char *strings[] = { "source_KME_ID", "target_KME_ID", "master_SAE_ID",
                                     "slave_SAE_ID" };
    static const char *ints[] = { "key_size", "stored_key_count", "max_key_count",
                                  "max_key_per_request", "max_key_size", "min_key_size",
                                  "max_SAE_ID_count" };
    for (size_t i = 0; i < sizeof strings / sizeof *strings; i++)
        CHECK(json_is_string(json_object_get(a.json, strings[i])), "status: %s is not a string",
              strings[i]);
    json_int_t v[7];
    for (size_t i = 0; i < sizeof ints / sizeof *ints; i++) {
        json_t *m = json_object_get(a.json, ints[i]);
        CHECK(json_is_integer(m), "status: %s is not an integer", ints[i]);
        v[i] = json_integer_value(m);
        CHECK(v[i] >= 0 && v[i] <= INT32_MAX, "status: %s = %lld outside [0, 2^31)", ints[i],
              (long long)v[i]);
    }
    CHECK(strcmp(json_string_value(json_object_get(a.json, "master_SAE_ID")), TB.a1.id) == 0,
          "master_SAE_ID is not the caller");
    CHECK(strcmp(json_string_value(json_object_get(a.json, "slave_SAE_ID")), TB.a2.id) == 0,
          "slave_SAE_ID is not the path SAE ID");
    CHECK(strcmp(json_string_value(json_object_get(a.json, "source_KME_ID")), TB.kme_id) == 0,
          "source_KME_ID is not %s", TB.kme_id);
    CHECK(strcmp(json_string_value(json_object_get(a.json, "target_KME_ID")), TB.kme_id) == 0,
          "target_KME_ID is not %s (local pair)", TB.kme_id);
    answer_free(&a);

    /* The same through libqkd014, against the KME's configuration. */
    qkd014_status *s = NULL;
    qkd014_code rc = qkd014_get_status(c, TB.a2.id, &s);
    CHECK(rc == QKD014_OK, "qkd014_get_status: %s (%s)", qkd014_strerror(rc), qkd014_errmsg(c));
    assert_string_equal(s->master_sae_id, TB.a1.id);
    assert_string_equal(s->slave_sae_id, TB.a2.id);
    assert_string_equal(s->source_kme_id, TB.kme_id);
    assert_string_equal(s->target_kme_id, TB.kme_id);
    assert_int_equal(s->key_size, TB.lim.key_size);
    assert_int_equal(s->min_key_size, TB.lim.min_key_size);
    assert_int_equal(s->max_key_size, TB.lim.max_key_size);
    assert_int_equal(s->max_key_per_request, TB.lim.max_key_per_request);
    assert_int_equal(s->max_sae_id_count, TB.lim.max_sae_id_count);
    CHECK(s->min_key_size <= s->key_size && s->key_size <= s->max_key_size,
          "key_size %d outside [%d, %d]", s->key_size, s->min_key_size, s->max_key_size);
    CHECK(s->stored_key_count <= s->max_key_count, "stored_key_count %d > max_key_count %d",
          s->stored_key_count, s->max_key_count);
    CHECK(s->stored_key_count > 0, "no stored keys on a ready testbed");
    print_message("status: stored_key_count %d of max_key_count %d\n", s->stored_key_count,
                  s->max_key_count);
    qkd014_status_free(s);

    /* Another caller sees itself as the master. */
    qkd014_client *c3 = new_client(&TB.a3);
    rc = qkd014_get_status(c3, TB.a1.id, &s);
    CHECK(rc == QKD014_OK, "status as %s: %s", TB.a3.id, qkd014_errmsg(c3));
    assert_string_equal(s->master_sae_id, TB.a3.id);
    assert_string_equal(s->slave_sae_id, TB.a1.id);
    qkd014_status_free(s);
    untrack(c3);
    untrack(c);
}

static void test_status_bad_requests(void **state)
{
    (void)state;
    qkd014_client *c = new_client(&TB.a1);
    char path[512];
    path_of(path, sizeof path, TB.a1.id, "status"); /* the caller itself */
    expect_error(c, "GET", path, NULL, NULL, 400, NULL);
    expect_error(c, "GET", "/api/v1/keys/SAE_NOWHERE_h5/status", NULL, NULL, 400, NULL);
    expect_error(c, "GET", "/api/v1/keys/%20/status", NULL, NULL, 400, NULL);
    path_of(path, sizeof path, TB.a2.id, "status?number=1");
    expect_error(c, "GET", path, NULL, NULL, 400, NULL);
    path_of(path, sizeof path, TB.a2.id, "status");
    expect_error(c, "POST", path, "application/json", "{}", 405, NULL);
    /* The client and its connection still work afterwards. */
    qkd014_status *s = NULL;
    assert_int_equal(qkd014_get_status(c, TB.a2.id, &s), QKD014_OK);
    qkd014_status_free(s);
    untrack(c);
}

/* ------------------------------------------------------- HTTP generalities */

static void test_http_unknown_path_and_method(void **state)
{
    (void)state;
    qkd014_client *c = new_client(&TB.a1);
    char path[512];
    expect_error(c, "GET", "/api/v1/nothing/here", NULL, NULL, 404, NULL);
    expect_error(c, "GET", "/", NULL, NULL, 404, NULL);
    path_of(path, sizeof path, TB.a2.id, "unknown_endpoint");
    expect_error(c, "GET", path, NULL, NULL, 404, NULL);
    path_of(path, sizeof path, TB.a2.id, "enc_keys");
    expect_error(c, "PUT", path, NULL, NULL, 405, NULL);
    expect_error(c, "DELETE", path, NULL, NULL, 405, NULL);
    path_of(path, sizeof path, TB.a1.id, "dec_keys");
    expect_error(c, "PATCH", path, NULL, NULL, 405, NULL);
    /* A GET with a body is malformed. */
    path_of(path, sizeof path, TB.a2.id, "enc_keys");
    expect_error(c, "GET", path, "application/json", "{}", 400, NULL);
    /* A PUT with a body is still the wrong method: 405, not a body error. */
    expect_error(c, "PUT", path, "application/json", "{}", 405, NULL);
    untrack(c);
}

/* A body over 64 KiB: 413 with a JSON body (a valid JSON object, so only its
 * size is wrong).  libmicrohttpd takes no answer while a body is arriving, so
 * the KME answers from Content-Length, or after draining a chunked body. */
/* A JSON body of exactly len bytes: {"number":1,"pad":"aaa..."}. */
static char *padded_body(size_t len)
{
    char *body = track(free, malloc(len + 1));
    int n = snprintf(body, len + 1, "{\"number\":1,\"pad\":\"");
    memset(body + n, 'a', len - (size_t)n - 2);
    memcpy(body + len - 2, "\"}", 3);
    return body;
}

/* Bodies past 64 KiB get 413 with the JSON message, whether the KME reads
 * and drops them (up to 1 MiB past the limit) or refuses them at once. */
static void test_http_body_too_large(void **state)
{
    (void)state;
    qkd014_client *c = new_client(&TB.a1);
    char path[512];
    path_of(path, sizeof path, TB.a2.id, "enc_keys");
    const size_t sizes[] = { 64 * 1024 + 1, 64 * 1024 + 4096, 64 * 1024 + 1024 * 1024,
                             16 * 1024 * 1024 };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char *body = padded_body(sizes[i]);
        json_t *e = expect_error_at(__FILE__, __LINE__, c, "POST", path, "application/json",
                                    body, 413, "request body too large: at most 65536 bytes");
        json_decref(e);
        untrack(body);
    }
    /* The client goes on working (on a new connection if the KME closed it). */
    qkd014_keys *k = get_keys(c, TB.a2.id, NULL);
    qkd014_keys_free(k);
    untrack(c);
}

/* ---------------------------------------------------------------- enc_keys */

static void test_enc_keys_get(void **state)
{
    (void)state;
    qkd014_client *c = new_client(&TB.a1);
    char path[512];
    answer a;

    /* GET with defaults: one key of key_size bits. */
    path_of(path, sizeof path, TB.a2.id, "enc_keys");
    raw_at(__FILE__, __LINE__, c, "GET", path, NULL, NULL, 0, &a);
    check_key_container("GET enc_keys", &a, 1, TB.lim.key_size);
    answer_free(&a);
    qkd014_keys *k = get_keys(c, TB.a2.id, NULL);
    qkd014_keys_free(k);

    /* GET ?number=3&size=1024 (raw and through the library). */
    path_of(path, sizeof path, TB.a2.id, "enc_keys?number=3&size=1024");
    raw_at(__FILE__, __LINE__, c, "GET", path, NULL, NULL, 0, &a);
    check_key_container("GET enc_keys?number=3&size=1024", &a, 3, 1024);
    answer_free(&a);
    k = make_keys(c, TB.a2.id, 3, 1024);
    qkd014_keys_free(k);

    /* Boundaries that must work: min and max size, max number. */
    k = make_keys(c, TB.a2.id, 1, (int32_t)TB.lim.min_key_size);
    qkd014_keys_free(k);
    k = make_keys(c, TB.a2.id, 1, (int32_t)TB.lim.max_key_size);
    qkd014_keys_free(k);
    k = make_keys(c, TB.a2.id, (int32_t)TB.lim.max_key_per_request, 64);
    qkd014_keys_free(k);
    untrack(c);
}

static void test_enc_keys_post_forms(void **state)
{
    (void)state;
    qkd014_client *c = new_client(&TB.a1);
    char path[512];
    answer a;
    path_of(path, sizeof path, TB.a2.id, "enc_keys");

    /* POST with no body at all and no Content-Type. */
    raw_at(__FILE__, __LINE__, c, "POST", path, NULL, NULL, 0, &a);
    check_key_container("POST without body", &a, 1, TB.lim.key_size);
    answer_free(&a);
    /* POST with an empty body (Content-Length: 0), no Content-Type. */
    raw_at(__FILE__, __LINE__, c, "POST", path, NULL, "", 0, &a);
    check_key_container("POST with empty body", &a, 1, TB.lim.key_size);
    answer_free(&a);
    /* POST {} */
    raw_at(__FILE__, __LINE__, c, "POST", path, "application/json", "{}", 2, &a);
    check_key_container("POST {}", &a, 1, TB.lim.key_size);
    answer_free(&a);
    /* Unknown members are ignored. */
    static const char unknown[] = "{\"number\":2,\"size\":128,\"additional_target_sae_ids\":[],"
                                  "\"h5_vendor_member\":{\"x\":1}}";
    raw_at(__FILE__, __LINE__, c, "POST", path, "application/json", unknown, strlen(unknown), &a);
    check_key_container("POST with unknown members", &a, 2, 128);
    answer_free(&a);
    /* extension_optional is ignored: 200. */
    static const char opt[] = "{\"number\":1,\"extension_optional\":[{\"h5_unknown_ext\":true}]}";
    raw_at(__FILE__, __LINE__, c, "POST", path, "application/json", opt, strlen(opt), &a);
    check_key_container("POST with extension_optional", &a, 1, TB.lim.key_size);
    answer_free(&a);

    /* Malformed bodies. */
    expect_post_error(c, path, "{\"number\":1,\"number\":2}", 400, NULL);
    expect_post_error(c, path, "[]", 400, NULL);
    expect_post_error(c, path, "[{\"number\":1}]", 400, NULL);
    expect_post_error(c, path, "\"number\"", 400, NULL);
    expect_post_error(c, path, "17", 400, NULL);
    expect_post_error(c, path, "{\"number\":", 400, NULL);
    untrack(c);
}

/* Where the standard is silent, what third-party clients do: Java, Go and
 * .NET serializers send null for unset optional members (taken as absent),
 * and a 405 names the methods the resource takes (RFC 9110 Allow). */
static void test_interop_null_members_and_allow(void **state)
{
    (void)state;
    qkd014_client *c = new_client(&TB.a1);
    char path[512];
    answer a;
    path_of(path, sizeof path, TB.a2.id, "enc_keys");
    static const char nulls[] = "{\"number\":null,\"size\":null,\"additional_slave_SAE_IDs\":null,"
                                "\"extension_mandatory\":null,\"extension_optional\":null}";
    raw_at(__FILE__, __LINE__, c, "POST", path, "application/json", nulls, strlen(nulls), &a);
    check_key_container("POST with null members", &a, 1, TB.lim.key_size);
    answer_free(&a);
    static const char some[] = "{\"number\":2,\"size\":null,\"extension_optional\":null}";
    raw_at(__FILE__, __LINE__, c, "POST", path, "application/json", some, strlen(some), &a);
    check_key_container("POST with number and null members", &a, 2, TB.lim.key_size);
    answer_free(&a);
    untrack(c);

    static const struct { const char *method, *endpoint, *allow; } wrong[] = {
        { "POST", "status", "GET" },
        { "PUT", "enc_keys", "GET, POST" },
        { "DELETE", "dec_keys", "GET, POST" },
    };
    CURL *h = probe_handle(TB.a1.cert, TB.a1.key);
    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
        probe p;
        path_of(path, sizeof path, TB.a2.id, wrong[i].endpoint);
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, wrong[i].method);
        probe_get(h, path, &p);
        CHECK(p.rc == CURLE_OK && p.status == 405, "%s %s: curl %d (%s), HTTP %ld",
              wrong[i].method, wrong[i].endpoint, p.rc, p.err, p.status);
        CHECK(strcmp(p.allow, wrong[i].allow) == 0, "%s %s: Allow \"%s\", want \"%s\"",
              wrong[i].method, wrong[i].endpoint, p.allow, wrong[i].allow);
        probe_free(&p);
    }
    /* a 200 carries no Allow */
    probe p;
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, NULL);
    path_of(path, sizeof path, TB.a2.id, "status");
    probe_get(h, path, &p);
    CHECK(p.rc == CURLE_OK && p.status == 200 && p.allow[0] == '\0',
          "GET status: HTTP %ld, Allow \"%s\"", p.status, p.allow);
    probe_free(&p);
    curl_easy_cleanup(h);
}

static void test_enc_keys_bad_number_size(void **state)
{
    (void)state;
    qkd014_client *c = new_client(&TB.a1);
    char path[1024], base[256], body[256];
    path_of(base, sizeof base, TB.a2.id, "enc_keys");
    long over = TB.lim.max_key_per_request + 1;
    long small = TB.lim.min_key_size - 8, large = TB.lim.max_key_size + 8;
    CHECK(small > 0, "min_key_size %ld leaves no smaller multiple of 8", TB.lim.min_key_size);

    /* number: 0, -8, "abc01", 1.5, true, over the maximum (null is absent: interop test). */
    const char *numbers[] = { "0", "-8", "\"abc01\"", "1.5", "true", NULL };
    for (int i = 0; numbers[i] != NULL; i++) {
        snprintf(body, sizeof body, "{\"number\":%s}", numbers[i]);
        expect_post_error(c, base, body, 400, NULL);
    }
    snprintf(body, sizeof body, "{\"number\":%ld}", over);
    expect_post_error(c, base, body, 400, NULL);
    const char *qnumbers[] = { "0", "-8", "abc01", "1.5", "", "%201", "99999999999999999999", NULL };
    for (int i = 0; qnumbers[i] != NULL; i++) {
        snprintf(path, sizeof path, "%s?number=%s", base, qnumbers[i]);
        expect_error(c, "GET", path, NULL, NULL, 400, NULL);
    }
    snprintf(path, sizeof path, "%s?number=%ld", base, over);
    expect_error(c, "GET", path, NULL, NULL, 400, NULL);

    /* size: 0, -8, "abc01", not a multiple of 8, below min, above max. */
    const char *sizes[] = { "0", "-8", "\"abc01\"", "256.0", NULL };
    for (int i = 0; sizes[i] != NULL; i++) {
        snprintf(body, sizeof body, "{\"size\":%s}", sizes[i]);
        expect_post_error(c, base, body, 400, NULL);
    }
    const char *qsizes[] = { "0", "-8", "abc01", NULL };
    for (int i = 0; qsizes[i] != NULL; i++) {
        snprintf(path, sizeof path, "%s?size=%s", base, qsizes[i]);
        expect_error(c, "GET", path, NULL, NULL, 400, NULL);
    }
    expect_post_error(c, base, "{\"size\":12}", 400, MSG_SIZE_MULT8);
    snprintf(path, sizeof path, "%s?size=12", base);
    expect_error(c, "GET", path, NULL, NULL, 400, MSG_SIZE_MULT8);
    snprintf(body, sizeof body, "{\"size\":%ld}", TB.lim.key_size + 4);
    expect_post_error(c, base, body, 400, MSG_SIZE_MULT8);
    snprintf(body, sizeof body, "{\"size\":%ld}", small);
    expect_post_error(c, base, body, 400, NULL);
    snprintf(path, sizeof path, "%s?size=%ld", base, small);
    expect_error(c, "GET", path, NULL, NULL, 400, NULL);
    snprintf(body, sizeof body, "{\"size\":%ld}", large);
    expect_post_error(c, base, body, 400, NULL);
    snprintf(path, sizeof path, "%s?number=1&size=%ld", base, large);
    expect_error(c, "GET", path, NULL, NULL, 400, NULL);

    /* GET takes number and size only, each once. */
    const char *queries[] = { "?count=1", "?number=1&number=2", "?size=256&size=256",
                              "?number=1&foo=bar", "?additional_slave_SAE_IDs=SAE_A3",
                              "?number", "?key_ID=550e8400-e29b-41d4-a716-446655440000", NULL };
    for (int i = 0; queries[i] != NULL; i++) {
        snprintf(path, sizeof path, "%s%s", base, queries[i]);
        expect_error(c, "GET", path, NULL, NULL, 400, NULL);
    }
    /* A POST carries its parameters in the body. */
    snprintf(path, sizeof path, "%s?number=2", base);
    expect_error(c, "POST", path, "application/json", "{}", 400, NULL);

    /* Path: slave = caller, unknown, blank. */
    path_of(path, sizeof path, TB.a1.id, "enc_keys");
    expect_error(c, "GET", path, NULL, NULL, 400, NULL);
    expect_error(c, "GET", "/api/v1/keys/SAE_NOWHERE_h5/enc_keys", NULL, NULL, 400, NULL);
    expect_error(c, "GET", "/api/v1/keys/%20/enc_keys", NULL, NULL, 400, NULL);

    /* None of this took a key: the library still works. */
    qkd014_keys *k = get_keys(c, TB.a2.id, NULL);
    qkd014_keys_free(k);
    untrack(c);
}

static void test_enc_keys_extensions(void **state)
{
    (void)state;
    qkd014_client *c = new_client(&TB.a1);
    char path[512];
    path_of(path, sizeof path, TB.a2.id, "enc_keys");

    /* Unknown mandatory extension: the spec message, with details. */
    json_t *e = expect_error_at(__FILE__, __LINE__, c, "POST", path, "application/json",
                                "{\"extension_mandatory\":[{\"abc_route_type\":\"direct\"}]}",
                                400, MSG_EXT_UNSUPPORTED);
    json_t *details = json_object_get(e, "details");
    CHECK(json_is_array(details) && json_array_size(details) >= 1,
          "extension_mandatory_unsupported answer has no details array");
    json_t *d0 = json_array_get(details, 0);
    CHECK(json_is_object(d0), "details[0] is not an object");
    const char *why = json_string_value(json_object_get(d0, "extension_mandatory_unsupported"));
    CHECK(why != NULL && strstr(why, "abc_route_type") != NULL,
          "details[0] does not name abc_route_type");
    json_decref(e);

    /* Known extension, unmet on a local pair (keys from the CSPRNG pool). */
    expect_post_error(c, path, "{\"extension_mandatory\":[{\"qkdc_key_source\":\"qkd\"}]}", 400,
                      MSG_EXT_UNMET);
    /* Through libqkd014 too. */
    qkd014_key_request r = { .version = QKD014_KEY_REQUEST_VERSION,
                             .extension_mandatory_json = "[{\"qkdc_key_source\":\"qkd\"}]" };
    qkd014_keys *k = NULL;
    qkd014_code rc = qkd014_get_key(c, TB.a2.id, &r, &k);
    expect_lib_error(c, rc, QKD014_E_BAD_REQUEST, 400, MSG_EXT_UNMET);
    /* "any" can always be met. */
    r.extension_mandatory_json = "[{\"qkdc_key_source\":\"any\"}]";
    r.number = 2;
    k = get_keys(c, TB.a2.id, &r);
    qkd014_keys_free(k);
    /* Malformed extension arrays. */
    expect_post_error(c, path, "{\"extension_mandatory\":{\"qkdc_key_source\":\"any\"}}", 400, NULL);
    expect_post_error(c, path, "{\"extension_mandatory\":[\"qkdc_key_source\"]}", 400, NULL);
    /* Extensions need POST: a GET form of them is refused. */
    char get[600];
    snprintf(get, sizeof get, "%s?extension_mandatory=x", path);
    expect_error(c, "GET", get, NULL, NULL, 400, NULL);
    untrack(c);
}

/* --------------------------------------------------------------- multicast */

static void test_multicast(void **state)
{
    (void)state;
    qkd014_client *c1 = new_client(&TB.a1), *c2 = new_client(&TB.a2), *c3 = new_client(&TB.a3);
    const char *add[] = { TB.a3.id };
    qkd014_key_request r = { .version = QKD014_KEY_REQUEST_VERSION,
                             .number = 2, .additional_slaves = add, .n_additional = 1 };
    qkd014_keys *k = get_keys(c1, TB.a2.id, &r);

    /* Each named slave gets each key once, identical to the master's. */
    qkd014_keys *g2 = fetch_keys(c2, TB.a1.id, k);
    check_same_keys(k, g2);
    qkd014_keys_free(g2);
    qkd014_keys *g3 = fetch_keys(c3, TB.a1.id, k);
    check_same_keys(k, g3);
    qkd014_keys_free(g3);
    for (size_t i = 0; i < k->n; i++) {
        expect_not_found(c2, TB.a1.id, k->keys[i].key_id);
        expect_not_found(c3, TB.a1.id, k->keys[i].key_id);
    }
    qkd014_keys_free(k);

    char path[512], body[1024];
    path_of(path, sizeof path, TB.a2.id, "enc_keys");
    expect_post_error(c1, path, "{\"additional_slave_SAE_IDs\":[]}", 400, NULL);
    snprintf(body, sizeof body, "{\"additional_slave_SAE_IDs\":[\"%s\",\"%s\"]}", TB.a3.id,
             TB.a3.id);
    expect_post_error(c1, path, body, 400, NULL);
    snprintf(body, sizeof body, "{\"additional_slave_SAE_IDs\":[\"%s\"]}", TB.a2.id);
    expect_post_error(c1, path, body, 400, NULL);
    snprintf(body, sizeof body, "{\"additional_slave_SAE_IDs\":[\"%s\"]}", TB.a1.id);
    expect_post_error(c1, path, body, 400, NULL);
    expect_post_error(c1, path, "{\"additional_slave_SAE_IDs\":[\"SAE_NOWHERE_h5\"]}", 400, NULL);
    snprintf(body, sizeof body, "{\"additional_slave_SAE_IDs\":[\"%s\"]}", TB.x.id);
    expect_post_error(c1, path, body, 400, NULL);
    expect_post_error(c1, path, "{\"additional_slave_SAE_IDs\":[\" \"]}", 400, NULL);
    expect_post_error(c1, path, "{\"additional_slave_SAE_IDs\":\"SAE_A3\"}", 400, NULL);
    expect_post_error(c1, path, "{\"additional_slave_SAE_IDs\":[7]}", 400, NULL);
    /* One more than max_SAE_ID_count entries (distinct, none the slave or master). */
    int n = snprintf(body, sizeof body, "{\"additional_slave_SAE_IDs\":[\"%s\"", TB.a3.id);
    for (long i = 1; i <= TB.lim.max_sae_id_count; i++)
        n += snprintf(body + n, sizeof body - (size_t)n, ",\"SAE_h5_extra_%ld\"", i);
    snprintf(body + n, sizeof body - (size_t)n, "]}");
    expect_post_error(c1, path, body, 400, NULL);
    untrack(c1);
    untrack(c2);
    untrack(c3);
}

/* ---------------------------------------------------------------- dec_keys */

static void test_dec_keys_round_trip(void **state)
{
    (void)state;
    qkd014_client *c1 = new_client(&TB.a1), *c2 = new_client(&TB.a2);

    /* Single key: GET form. */
    qkd014_keys *k = make_keys(c1, TB.a2.id, 1, 256);
    qkd014_keys *g = fetch_keys(c2, TB.a1.id, k);
    check_same_keys(k, g);
    qkd014_keys_free(g);
    expect_not_found(c2, TB.a1.id, k->keys[0].key_id);
    qkd014_keys_free(k);

    /* Batch: POST form, in a different order than issued. */
    k = make_keys(c1, TB.a2.id, 5, 512);
    qkd014_key tmp = k->keys[0];
    k->keys[0] = k->keys[4];
    k->keys[4] = tmp;
    g = fetch_keys(c2, TB.a1.id, k);
    check_same_keys(k, g);
    qkd014_keys_free(g);
    /* Second fetch of the batch and of each key: not found. */
    char path[512];
    path_of(path, sizeof path, TB.a1.id, "dec_keys");
    char body[1024];
    int n = snprintf(body, sizeof body, "{\"key_IDs\":[");
    for (size_t i = 0; i < k->n; i++)
        n += snprintf(body + n, sizeof body - (size_t)n, "%s{\"key_ID\":\"%s\"}", i ? "," : "",
                      k->keys[i].key_id);
    snprintf(body + n, sizeof body - (size_t)n, "]}");
    expect_post_error(c2, path, body, 400, MSG_NOT_FOUND);
    for (size_t i = 0; i < k->n; i++)
        expect_not_found(c2, TB.a1.id, k->keys[i].key_id);
    qkd014_keys_free(k);

    /* Raw POST with a key_IDs_extension and key_ID_extension: accepted. */
    k = make_keys(c1, TB.a2.id, 1, 256);
    snprintf(body, sizeof body,
             "{\"key_IDs\":[{\"key_ID\":\"%s\",\"key_ID_extension\":{}}],\"key_IDs_extension\":{}}",
             k->keys[0].key_id);
    answer a;
    raw_at(__FILE__, __LINE__, c2, "POST", path, "application/json", body, strlen(body), &a);
    check_key_container("POST dec_keys with extensions", &a, 1, 256);
    const char *got_id = json_string_value(
        json_object_get(json_array_get(json_object_get(a.json, "keys"), 0), "key_ID"));
    CHECK(got_id != NULL && strcmp(got_id, k->keys[0].key_id) == 0, "dec_keys returned key %s",
          got_id ? got_id : "(none)");
    answer_free(&a);
    qkd014_keys_free(k);
    untrack(c1);
    untrack(c2);
}

/* The slave asks again for a key it got: the same 400 as for an unknown
 * key, and KME-A logs (and audits, and counts) one security violation for
 * the call; an unknown key ID is no such event (src/kme/reuse_watch.c). */
static void test_key_reuse_reported(void **state)
{
    (void)state;
    char log[4096], needle[256], path[512], body[512];
    snprintf(log, sizeof log, "%s/kme-a.log", TB.dir);
    /* two keys in one call: no other test asks again for two at once, and
     * their events may still be on their way to the log */
    snprintf(needle, sizeof needle,
             "security violation: SAE %s asked again for 2 key(s) of master %s", TB.a2.id,
             TB.a1.id);
    qkd014_client *c1 = new_client(&TB.a1), *c2 = new_client(&TB.a2);
    qkd014_keys *k = make_keys(c1, TB.a2.id, 2, 256);
    qkd014_keys *g = fetch_keys(c2, TB.a1.id, k);
    check_same_keys(k, g);
    qkd014_keys_free(g);
    int before = tb_count_lines(log, needle);
    path_of(path, sizeof path, TB.a1.id, "dec_keys");
    snprintf(body, sizeof body,
             "{\"key_IDs\":[{\"key_ID\":\"00000000-0000-4000-8000-00000000abcd\"},"
             "{\"key_ID\":\"00000000-0000-4000-8000-00000000abce\"}]}");
    expect_post_error(c2, path, body, 400, MSG_NOT_FOUND); /* never issued: no event */
    snprintf(body, sizeof body, "{\"key_IDs\":[{\"key_ID\":\"%s\"},{\"key_ID\":\"%s\"}]}",
             k->keys[0].key_id, k->keys[1].key_id);
    expect_post_error(c2, path, body, 400, MSG_NOT_FOUND); /* a reuse: the same answer */
    /* the KME's writer thread logs it: poll (the unknown IDs, asked first,
     * would have been logged before it) */
    long end = tb_now_ms() + 6000;
    while (tb_count_lines(log, needle) <= before && tb_now_ms() < end)
        tb_pause_ms(20);
    int got = tb_count_lines(log, needle) - before;
    CHECK(got == 1, "%d security violation lines for one reuse in %s", got, log);
    qkd014_keys_free(k);
    untrack(c1);
    untrack(c2);
}

static void test_dec_keys_authorization(void **state)
{
    (void)state;
    qkd014_client *c1 = new_client(&TB.a1), *c2 = new_client(&TB.a2), *c3 = new_client(&TB.a3);
    qkd014_keys *k = make_keys(c1, TB.a2.id, 2, 256);
    char path[512], get[600];
    path_of(path, sizeof path, TB.a1.id, "dec_keys");

    /* A third SAE (not named at enc_keys time): 401, through both paths. */
    qkd014_keys *g = NULL;
    const char *id0 = k->keys[0].key_id;
    qkd014_code rc = qkd014_get_key_with_ids(c3, TB.a1.id, &id0, 1, &g);
    expect_lib_error(c3, rc, QKD014_E_UNAUTHORIZED, 401, MSG_UNAUTHORIZED);
    snprintf(get, sizeof get, "%s?key_ID=%s", path, id0);
    expect_error(c3, "GET", get, NULL, NULL, 401, MSG_UNAUTHORIZED);
    /* The master calling dec_keys with its own ID in the path: 400. */
    path_of(get, sizeof get, TB.a1.id, "dec_keys");
    snprintf(get + strlen(get), sizeof get - strlen(get), "?key_ID=%s", id0);
    expect_error(c1, "GET", get, NULL, NULL, 400, NULL);
    /* The slave naming another master than the real one: not found. */
    path_of(get, sizeof get, TB.a3.id, "dec_keys");
    snprintf(get + strlen(get), sizeof get - strlen(get), "?key_ID=%s", id0);
    expect_error(c2, "GET", get, NULL, NULL, 400, MSG_NOT_FOUND);

    /* None of this consumed anything: the slave still gets both keys. */
    g = fetch_keys(c2, TB.a1.id, k);
    check_same_keys(k, g);
    qkd014_keys_free(g);
    /* After delivery the third SAE gets 401 or not-found, with a JSON body. */
    snprintf(get, sizeof get, "%s?key_ID=%s", path, id0);
    long st;
    answer a;
    raw_at(__FILE__, __LINE__, c3, "GET", get, NULL, NULL, 0, &a);
    st = a.status;
    check_error_body_at(__FILE__, __LINE__, "third SAE after delivery", a.status, a.ctype, a.json,
                        a.body, NULL);
    answer_free(&a);
    CHECK(st == 401 || st == 400, "third SAE after delivery: HTTP %ld", st);
    qkd014_keys_free(k);
    untrack(c1);
    untrack(c2);
    untrack(c3);
}

static void test_dec_keys_bad_ids(void **state)
{
    (void)state;
    qkd014_client *c1 = new_client(&TB.a1), *c2 = new_client(&TB.a2);
    char path[512], get[700], body[1024];
    path_of(path, sizeof path, TB.a1.id, "dec_keys");

    /* Unknown key ID (random v4 UUID), and not a UUID at all. */
    uint8_t r[16];
    randombytes_buf(r, sizeof r);
    r[6] = (uint8_t)((r[6] & 0x0f) | 0x40);
    r[8] = (uint8_t)((r[8] & 0x3f) | 0x80);
    char unknown[37];
    snprintf(unknown, sizeof unknown,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", r[0], r[1],
             r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13], r[14],
             r[15]);
    expect_not_found(c2, TB.a1.id, unknown);
    snprintf(get, sizeof get, "%s?key_ID=non-uuid", path);
    expect_error(c2, "GET", get, NULL, NULL, 400, NULL);
    expect_post_error(c2, path, "{\"key_IDs\":[{\"key_ID\":\"non-uuid\"}]}", 400, NULL);

    /* Upper-case UUID accepted (GET and via the library). */
    qkd014_keys *k = make_keys(c1, TB.a2.id, 2, 256);
    char upper[2][37];
    for (int i = 0; i < 2; i++) {
        for (int j = 0; j <= 36; j++)
            upper[i][j] = (char)toupper((unsigned char)k->keys[i].key_id[j]);
    }
    snprintf(get, sizeof get, "%s?key_ID=%s", path, upper[0]);
    answer a;
    raw_at(__FILE__, __LINE__, c2, "GET", get, NULL, NULL, 0, &a);
    check_key_container("GET dec_keys with an upper-case key_ID", &a, 1, 256);
    const char *got = json_string_value(
        json_object_get(json_array_get(json_object_get(a.json, "keys"), 0), "key_ID"));
    CHECK(got != NULL && strcmp(got, k->keys[0].key_id) == 0,
          "upper-case request answered with key_ID %s, expected %s", got ? got : "(none)",
          k->keys[0].key_id);
    answer_free(&a);
    const char *up1 = upper[1];
    qkd014_keys *g = NULL;
    qkd014_code rc = qkd014_get_key_with_ids(c2, TB.a1.id, &up1, 1, &g);
    CHECK(rc == QKD014_OK, "library dec_keys with an upper-case ID: %s", qkd014_errmsg(c2));
    CHECK(g->n == 1 && sodium_memcmp(g->keys[0].key, k->keys[1].key, k->keys[1].key_len) == 0,
          "upper-case fetch returned other material");
    qkd014_keys_free(g);
    qkd014_keys_free(k);

    /* All or nothing: one good and one unknown ID consume nothing. */
    k = make_keys(c1, TB.a2.id, 1, 256);
    snprintf(body, sizeof body, "{\"key_IDs\":[{\"key_ID\":\"%s\"},{\"key_ID\":\"%s\"}]}",
             k->keys[0].key_id, unknown);
    expect_post_error(c2, path, body, 400, MSG_NOT_FOUND);
    g = fetch_keys(c2, TB.a1.id, k);
    check_same_keys(k, g);
    qkd014_keys_free(g);
    qkd014_keys_free(k);

    /* Malformed key_IDs. */
    k = make_keys(c1, TB.a2.id, 2, 256);
    const char *id0 = k->keys[0].key_id, *id1 = k->keys[1].key_id;
    snprintf(body, sizeof body, "{\"key_IDs\":[\"%s\"]}", id0);
    expect_post_error(c2, path, body, 400, NULL);               /* array of strings */
    expect_post_error(c2, path, "{\"key_IDs\":[]}", 400, NULL); /* empty */
    expect_post_error(c2, path, "{}", 400, NULL);               /* missing */
    expect_error(c2, "POST", path, NULL, NULL, 400, NULL);      /* no body */
    snprintf(body, sizeof body, "{\"key_IDs\":[{\"key_ID\":\"%s\"},{\"key_ID\":\"%s\"}]}", id0, id0);
    expect_post_error(c2, path, body, 400, NULL); /* duplicated */
    snprintf(body, sizeof body, "{\"key_IDs\":{\"key_ID\":\"%s\"}}", id0);
    expect_post_error(c2, path, body, 400, NULL); /* not an array */
    snprintf(body, sizeof body, "{\"key_IDs\":[{\"key_ID\":\"%s\"}],\"key_IDs\":[]}", id0);
    expect_post_error(c2, path, body, 400, NULL); /* duplicate member */
    snprintf(get, sizeof get, "%s?key_ID=%s&key_ID=%s", path, id0, id1);
    expect_error(c2, "GET", get, NULL, NULL, 400, NULL); /* two key_ID parameters */
    expect_error(c2, "GET", path, NULL, NULL, 400, NULL); /* none */
    snprintf(get, sizeof get, "%s?key_id=%s", path, id0);
    expect_error(c2, "GET", get, NULL, NULL, 400, NULL); /* wrong name */
    expect_error(c2, "GET", "/api/v1/keys/%20/dec_keys?key_ID=550e8400-e29b-41d4-a716-446655440000",
                 NULL, NULL, 400, NULL); /* blank master */
    /* Nothing was consumed by the malformed requests. */
    g = fetch_keys(c2, TB.a1.id, k);
    check_same_keys(k, g);
    qkd014_keys_free(g);
    qkd014_keys_free(k);
    untrack(c1);
    untrack(c2);
}

/* ------------------------------------------------- headers and keep-alive */

static void test_headers_and_keep_alive(void **state)
{
    (void)state;
    CURL *h1 = probe_handle(TB.a1.cert, TB.a1.key);
    char path[512];
    probe p;

    /* Three calls on one handle: one TCP/TLS connection. */
    path_of(path, sizeof path, TB.a2.id, "status");
    probe_get(h1, path, &p);
    CHECK(p.rc == CURLE_OK && p.status == 200, "status: curl %d (%s), HTTP %ld", p.rc, p.err,
          p.status);
    CHECK(p.num_connects == 1, "first call made %ld connections", p.num_connects);
    CHECK(is_json_ctype(p.ctype), "status Content-Type %s", p.ctype);
    probe_free(&p);

    path_of(path, sizeof path, TB.a2.id, "enc_keys?number=2");
    probe_get(h1, path, &p);
    CHECK(p.rc == CURLE_OK && p.status == 200, "enc_keys: curl %d (%s), HTTP %ld", p.rc, p.err,
          p.status);
    CHECK(p.num_connects == 0, "second call on a kept-alive connection made %ld new connections",
          p.num_connects);
    CHECK(is_json_ctype(p.ctype), "enc_keys Content-Type %s", p.ctype);
    CHECK(strstr(p.cache_control, "no-store") != NULL, "enc_keys answer has Cache-Control \"%s\"",
          p.cache_control);
    json_t *keys = json_object_get(p.json, "keys");
    CHECK(json_array_size(keys) == 2, "enc_keys answer does not hold 2 keys");
    char id[2][37];
    for (int i = 0; i < 2; i++)
        snprintf(id[i], sizeof id[i], "%s",
                 json_string_value(json_object_get(json_array_get(keys, (size_t)i), "key_ID")));
    probe_free(&p);

    /* An error answer keeps the connection too. */
    path_of(path, sizeof path, TB.a2.id, "enc_keys?size=12");
    probe_get(h1, path, &p);
    CHECK(p.rc == CURLE_OK && p.status == 400, "size=12: curl %d, HTTP %ld", p.rc, p.status);
    CHECK(p.num_connects == 0, "a 400 answer cost the connection (%ld new)", p.num_connects);
    probe_free(&p);
    curl_easy_cleanup(h1);

    /* dec_keys answers: Cache-Control no-store as well. */
    CURL *h2 = probe_handle(TB.a2.cert, TB.a2.key);
    path_of(path, sizeof path, TB.a1.id, "dec_keys?key_ID=");
    strncat(path, id[0], sizeof path - strlen(path) - 1);
    probe_get(h2, path, &p);
    CHECK(p.rc == CURLE_OK && p.status == 200, "dec_keys: curl %d (%s), HTTP %ld", p.rc, p.err,
          p.status);
    CHECK(is_json_ctype(p.ctype), "dec_keys Content-Type %s", p.ctype);
    CHECK(strstr(p.cache_control, "no-store") != NULL, "dec_keys answer has Cache-Control \"%s\"",
          p.cache_control);
    probe_free(&p);
    path_of(path, sizeof path, TB.a1.id, "dec_keys?key_ID=");
    strncat(path, id[1], sizeof path - strlen(path) - 1);
    probe_get(h2, path, &p);
    CHECK(p.rc == CURLE_OK && p.status == 200 && p.num_connects == 0,
          "second dec_keys: curl %d, HTTP %ld, %ld new connections", p.rc, p.status,
          p.num_connects);
    probe_free(&p);
    curl_easy_cleanup(h2);
}

/* ------------------------------------------------------ TLS authentication */

/* A connection that must not be served: either the TLS handshake fails, or
 * the first request gets 401 with a JSON body and the connection is closed
 * (a second request on the same handle needs a new connection). */
static void expect_rejected_at(const char *file, int line, const char *what, const char *cert,
                               const char *key)
{
    CURL *h = probe_handle(cert, key);
    char path[512];
    probe p;
    path_of(path, sizeof path, TB.a2.id, "status");
    probe_get(h, path, &p);
    if (p.rc != CURLE_OK) {
        CHECK_AT(file, line, p.status == 0, "%s: curl %d with HTTP %ld", what, p.rc, p.status);
        print_message("%s: refused at the TLS handshake (curl %d: %s)\n", what, p.rc, p.err);
    } else {
        CHECK_AT(file, line, p.status == 401, "%s: HTTP %ld, expected 401 or a failed handshake",
                 what, p.status);
        check_error_body_at(file, line, what, p.status, p.ctype, p.json, p.body, MSG_UNAUTHORIZED);
        CHECK_AT(file, line, strcasecmp(p.connection, "close") == 0,
                 "%s: 401 without \"Connection: close\" (got \"%s\")", what, p.connection);
        probe_free(&p);
        /* The same handle again: the old connection must be gone. */
        probe_get(h, path, &p);
        CHECK_AT(file, line, p.rc != CURLE_OK || (p.status == 401 && p.num_connects == 1),
                 "%s: second request: curl %d, HTTP %ld, %ld new connections", what, p.rc,
                 p.status, p.num_connects);
        print_message("%s: 401 with JSON body, connection closed\n", what);
    }
    probe_free(&p);
    curl_easy_cleanup(h);
}
#define expect_rejected(what, cert, key) expect_rejected_at(__FILE__, __LINE__, what, cert, key)

static void test_tls_client_certificates(void **state)
{
    (void)state;
    expect_rejected("no client certificate", NULL, NULL);
    if (TB.a1_rogue.cert != NULL)
        expect_rejected("certificate from a rogue CA", TB.a1_rogue.cert, TB.a1_rogue.key);
    if (TB.a1_expired.cert != NULL)
        expect_rejected("expired certificate", TB.a1_expired.cert, TB.a1_expired.key);

    /* A valid certificate of an SAE this KME does not know: the handshake
     * succeeds and the request gets 401. */
    CURL *h = probe_handle(TB.x.cert, TB.x.key);
    char path[512];
    probe p;
    path_of(path, sizeof path, TB.a2.id, "status");
    probe_get(h, path, &p);
    CHECK(p.rc == CURLE_OK, "SAE_X: TLS failed (curl %d: %s), expected 401", p.rc, p.err);
    CHECK(p.status == 401, "SAE_X: HTTP %ld, expected 401", p.status);
    check_error_body_at(__FILE__, __LINE__, "SAE_X", p.status, p.ctype, p.json, p.body,
                        MSG_UNAUTHORIZED);
    probe_free(&p);
    curl_easy_cleanup(h);
    /* Its key requests too, through libqkd014. */
    qkd014_client *cx = new_client(&TB.x);
    qkd014_keys *k = NULL;
    qkd014_code rc = qkd014_get_key(cx, TB.a2.id, NULL, &k);
    expect_lib_error(cx, rc, QKD014_E_UNAUTHORIZED, 401, MSG_UNAUTHORIZED);
    untrack(cx);

    if (TB.a1_rogue.cert == NULL || TB.a1_expired.cert == NULL)
        skip(); /* testbed.env names no rogue or expired certificate */
}

/* ------------------------------------------------------------ TLS versions */

typedef struct tls_io {
    int fd;
    uint8_t first[16]; /* the start of the first record we sent */
    size_t first_len;
} tls_io;

static ssize_t io_push(gnutls_transport_ptr_t p, const void *data, size_t len)
{
    tls_io *io = p;
    if (io->first_len == 0) {
        io->first_len = len < sizeof io->first ? len : sizeof io->first;
        memcpy(io->first, data, io->first_len);
    }
    return send(io->fd, data, len, MSG_NOSIGNAL);
}

static ssize_t io_pull(gnutls_transport_ptr_t p, void *data, size_t len)
{
    tls_io *io = p;
    return recv(io->fd, data, len, 0);
}

/* Needed with a handshake timeout: the default one would take the
 * transport pointer for a file descriptor. */
static int io_pull_timeout(gnutls_transport_ptr_t p, unsigned int ms)
{
    tls_io *io = p;
    struct pollfd pfd = { .fd = io->fd, .events = POLLIN };
    return poll(&pfd, 1, ms == GNUTLS_INDEFINITE_TIMEOUT ? -1 : (int)ms);
}

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

typedef struct tls_result {
    int handshake;            /* gnutls code of the handshake */
    int alert;                /* alert received, or -1 */
    gnutls_protocol_t version;
    uint16_t hello_version;   /* client_version of our ClientHello */
    int http_status;          /* of a status request after the handshake, or 0 */
} tls_result;

/* A handshake with SAE_A1's certificate under priority, then (if it worked)
 * one status request to prove the session serves the API. */
static void tls_try(const char *priority, tls_result *res)
{
    memset(res, 0, sizeof *res);
    res->alert = -1;
    gnutls_certificate_credentials_t cred;
    assert_int_equal(gnutls_certificate_allocate_credentials(&cred), 0);
    assert_true(gnutls_certificate_set_x509_trust_file(cred, TB.ca_cert, GNUTLS_X509_FMT_PEM) > 0);
    assert_int_equal(gnutls_certificate_set_x509_key_file(cred, TB.a1.cert, TB.a1.key,
                                                          GNUTLS_X509_FMT_PEM), 0);
    gnutls_session_t s;
    assert_int_equal(gnutls_init(&s, GNUTLS_CLIENT), 0);
    const char *errpos = NULL;
    int prc = gnutls_priority_set_direct(s, priority, &errpos);
    CHECK(prc == 0, "priority %s refused at %s: %s", priority, errpos ? errpos : "?",
          gnutls_strerror(prc));
    assert_int_equal(gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred), 0);
    gnutls_server_name_set(s, GNUTLS_NAME_DNS, "localhost", strlen("localhost"));
    gnutls_session_set_verify_cert(s, "localhost", 0);
    gnutls_handshake_set_timeout(s, 5000);
    tls_io io = { .fd = tcp_connect(TB.port) };
    CHECK(io.fd >= 0, "cannot connect to 127.0.0.1:%d", TB.port);
    gnutls_transport_set_ptr(s, &io);
    gnutls_transport_set_push_function(s, io_push);
    gnutls_transport_set_pull_function(s, io_pull);
    gnutls_transport_set_pull_timeout_function(s, io_pull_timeout);
    int rc;
    do {
        rc = gnutls_handshake(s);
    } while (rc < 0 && gnutls_error_is_fatal(rc) == 0);
    res->handshake = rc;
    if (rc == GNUTLS_E_FATAL_ALERT_RECEIVED || rc == GNUTLS_E_WARNING_ALERT_RECEIVED)
        res->alert = (int)gnutls_alert_get(s);
    if (io.first_len >= 11 && io.first[0] == 0x16 && io.first[5] == 0x01)
        res->hello_version = (uint16_t)(io.first[9] << 8 | io.first[10]);
    if (rc == 0) {
        res->version = gnutls_protocol_get_version(s);
        char req[512], buf[4096];
        snprintf(req, sizeof req,
                 "GET /api/v1/keys/%s/status HTTP/1.1\r\nHost: localhost\r\n"
                 "Connection: close\r\n\r\n", TB.a2.id);
        ssize_t w = gnutls_record_send(s, req, strlen(req));
        size_t got = 0;
        while (w > 0 && got < sizeof buf - 1) {
            ssize_t r = gnutls_record_recv(s, buf + got, sizeof buf - 1 - got);
            if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED)
                continue;
            if (r <= 0)
                break;
            got += (size_t)r;
        }
        buf[got] = '\0';
        if (strncmp(buf, "HTTP/1.1 ", 9) == 0)
            res->http_status = atoi(buf + 9);
        gnutls_bye(s, GNUTLS_SHUT_WR);
    }
    close(io.fd);
    gnutls_deinit(s);
    gnutls_certificate_free_credentials(cred);
}

static void test_tls_versions(void **state)
{
    (void)state;
    tls_result r;
    /* Positive controls: the same client code works with 1.2 only and 1.3 only. */
    tls_try("NORMAL:-VERS-ALL:+VERS-TLS1.2", &r);
    CHECK(r.handshake == 0, "TLS 1.2 only: handshake failed: %s", gnutls_strerror(r.handshake));
    CHECK(r.version == GNUTLS_TLS1_2, "TLS 1.2 only: negotiated %s",
          gnutls_protocol_get_name(r.version));
    CHECK(r.http_status == 200, "TLS 1.2 session: status request got HTTP %d", r.http_status);
    tls_try("NORMAL:-VERS-ALL:+VERS-TLS1.3", &r);
    CHECK(r.handshake == 0, "TLS 1.3 only: handshake failed: %s", gnutls_strerror(r.handshake));
    CHECK(r.version == GNUTLS_TLS1_3, "TLS 1.3 only: negotiated %s",
          gnutls_protocol_get_name(r.version));
    CHECK(r.http_status == 200, "TLS 1.3 session: status request got HTTP %d", r.http_status);

    /* TLS 1.1 only: the ClientHello really offers 1.1 (client_version
     * 0x0302), and the KME refuses it. */
    tls_try("NORMAL:-VERS-ALL:+VERS-TLS1.1", &r);
    CHECK(r.hello_version == 0x0302, "the TLS 1.1 probe sent no TLS 1.1 ClientHello "
          "(client_version 0x%04x)", r.hello_version);
    CHECK(r.handshake < 0, "TLS 1.1 handshake succeeded (%s)", gnutls_protocol_get_name(r.version));
    print_message("TLS 1.1 refused: %s%s%s\n", gnutls_strerror(r.handshake),
                  r.alert >= 0 ? ", alert " : "",
                  r.alert >= 0 ? gnutls_alert_get_name((gnutls_alert_description_t)r.alert) : "");
}

/* -------------------------------------------------------------- exhaustion */

typedef struct kme2 {
    pid_t pid;
    char conf[4096], port_file[4096], db[4096], log[4096];
} kme2;

static int kme2_teardown(void **state)
{
    release_tracked(state);
    kme2 *k = *state;
    if (k == NULL)
        return 0;
    if (k->pid > 0) {
        kill(k->pid, SIGKILL);
        waitpid(k->pid, NULL, 0);
    }
    free(k);
    *state = NULL;
    return 0;
}

static int kme2_setup(void **state)
{
    *state = calloc(1, sizeof(kme2));
    return *state != NULL ? 0 : -1;
}

static int read_port_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    int port = 0;
    if (fscanf(f, "%d", &port) != 1)
        port = 0;
    fclose(f);
    return port;
}

static void test_exhaustion_503(void **state)
{
    kme2 *k2 = *state;
    const long pool_bits = 4096, key_bits = 256;
    if (TB.kme_cert == NULL || TB.kme_key == NULL || TB.sae_ca == NULL)
        fail_msg("KME-A's config %s names no sae_api cert, key and ca", TB.kme_conf);
    char kme_bin[4096];
    if (TB.build_dir != NULL)
        snprintf(kme_bin, sizeof kme_bin, "%s/src/kme/qkd-kme", TB.build_dir);
    else {
        char *b = env_value("KME_BIN");
        snprintf(kme_bin, sizeof kme_bin, "%s", b ? b : "");
        free(b);
    }
    CHECK(access(kme_bin, X_OK) == 0, "no qkd-kme program at %s", kme_bin);
    snprintf(k2->conf, sizeof k2->conf, "%s/h5-exhaust.conf", TB.dir);
    snprintf(k2->port_file, sizeof k2->port_file, "%s/h5-exhaust.port", TB.dir);
    snprintf(k2->db, sizeof k2->db, "%s/h5-exhaust.db", TB.dir);
    snprintf(k2->log, sizeof k2->log, "%s/h5-exhaust.log", TB.dir);
    unlink(k2->port_file);
    unlink(k2->db);
    FILE *f = fopen(k2->conf, "w");
    assert_non_null(f);
    fprintf(f,
            "# A second KME for the exhaustion test of tests/system/test_kme.c.\n"
            "[kme]\nid = %s\ndatabase = %s\nlog_level = info\n\n"
            "[sae_api]\nlisten = 127.0.0.1:0\ncert = %s\nkey = %s\nca = %s\n"
            "identity = cn\nthreads = 2\nport_file = %s\n\n"
            "[saes]\nlocal = %s %s %s\n\n"
            "[limits]\nkey_size = %ld\nmin_key_size = 64\nmax_key_size = %ld\n"
            "local_pool_bits = %ld\nlocal_rate_bps = 1\n",
            TB.kme_id, k2->db, TB.kme_cert, TB.kme_key, TB.sae_ca, k2->port_file, TB.a1.id,
            TB.a2.id, TB.a3.id, key_bits, pool_bits, pool_bits);
    assert_int_equal(fclose(f), 0);

    fflush(stdout);
    k2->pid = fork();
    assert_true(k2->pid >= 0);
    if (k2->pid == 0) {
        int fd = open(k2->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execl(kme_bin, kme_bin, "--config", k2->conf, (char *)NULL);
        _exit(127);
    }
    /* Ready once the port file names a port (bounded wait). */
    int port = 0;
    double deadline = now_s() + 20;
    while ((port = read_port_file(k2->port_file)) <= 0 && now_s() < deadline) {
        int st;
        pid_t w = waitpid(k2->pid, &st, WNOHANG);
        if (w == k2->pid) {
            k2->pid = 0;
            fail_msg("the second qkd-kme exited during start-up (status %d); see %s", st, k2->log);
        }
        sleep_ms(20);
    }
    CHECK(port > 0, "the second qkd-kme wrote no port file within 20 s (see %s)", k2->log);
    char url[128];
    snprintf(url, sizeof url, "https://localhost:%d", port);

    qkd014_client *c = client_at(__FILE__, __LINE__, url, &TB.a1);
    qkd014_status *s = NULL;
    qkd014_code rc = qkd014_get_status(c, TB.a2.id, &s);
    CHECK(rc == QKD014_OK, "status at the second KME: %s", qkd014_errmsg(c));
    int32_t stored = s->stored_key_count;
    CHECK(s->max_key_count == pool_bits / key_bits, "max_key_count %d, expected %ld",
          s->max_key_count, pool_bits / key_bits);
    CHECK(stored >= 0 && stored <= s->max_key_count, "stored_key_count %d of %d", stored,
          s->max_key_count);
    qkd014_status_free(s);
    print_message("exhaustion: the second KME holds %d keys of %ld bits\n", stored, key_bits);

    /* Drain: all stored keys in one request, then one more is refused. */
    if (stored > 0) {
        qkd014_keys *k = make_keys(c, TB.a2.id, stored, (int32_t)key_bits);
        qkd014_keys_free(k);
    }
    char path[512];
    path_of(path, sizeof path, TB.a2.id, "enc_keys");
    expect_error(c, "GET", path, NULL, NULL, 503, NULL);
    qkd014_keys *k = NULL;
    rc = qkd014_get_key(c, TB.a2.id, NULL, &k);
    expect_lib_error(c, rc, QKD014_E_UNAVAILABLE, 503, NULL);
    rc = qkd014_get_status(c, TB.a2.id, &s);
    CHECK(rc == QKD014_OK && s->stored_key_count == 0, "after draining, stored_key_count %d",
          rc == QKD014_OK ? s->stored_key_count : -1);
    qkd014_status_free(s);
    /* A smaller key still fits if bits are left; a bigger one never does. */
    char body[128];
    snprintf(body, sizeof body, "{\"size\":%ld}", pool_bits);
    expect_post_error(c, path, body, 503, NULL);
    untrack(c);

    /* Clean stop on SIGTERM. */
    kill(k2->pid, SIGTERM);
    int st = 0;
    pid_t w = 0;
    deadline = now_s() + 10;
    while ((w = waitpid(k2->pid, &st, WNOHANG)) == 0 && now_s() < deadline)
        sleep_ms(20);
    CHECK(w == k2->pid, "the second qkd-kme did not stop within 10 s of SIGTERM");
    k2->pid = 0;
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the second qkd-kme ended with status 0x%x "
          "after SIGTERM (see %s)", st, k2->log);
}

/* ------------------------------------------------------------- concurrency */

#define KEY_BYTES 32 /* the concurrency and crash tests use 256-bit keys */

typedef struct rec {
    char id[QKD014_KEY_ID_LEN + 1];
    uint8_t key[KEY_BYTES];
} rec;

typedef struct rec_list {
    rec *v;
    size_t n, cap;
} rec_list;

static bool rec_add(rec_list *l, const qkd014_key *k)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 1024;
        rec *v = realloc(l->v, cap * sizeof *v);
        if (v == NULL)
            return false;
        l->v = v;
        l->cap = cap;
    }
    if (k->key_len != KEY_BYTES)
        return false;
    memcpy(l->v[l->n].id, k->key_id, sizeof l->v[l->n].id);
    memcpy(l->v[l->n].key, k->key, KEY_BYTES);
    l->n++;
    return true;
}

static void rec_list_free(rec_list *l)
{
    if (l->v != NULL)
        sodium_memzero(l->v, l->cap * sizeof *l->v);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static int cmp_rec_id(const void *a, const void *b)
{
    return strcmp(((const rec *)a)->id, ((const rec *)b)->id);
}

static int cmp_rec_key(const void *a, const void *b)
{
    return memcmp(((const rec *)a)->key, ((const rec *)b)->key, KEY_BYTES);
}

/* No key ID twice and no two equal keys (I1); sorts the list. */
static void check_unique_at(const char *file, int line, rec_list *l)
{
    qsort(l->v, l->n, sizeof *l->v, cmp_rec_id);
    for (size_t i = 1; i < l->n; i++)
        CHECK_AT(file, line, strcmp(l->v[i - 1].id, l->v[i].id) != 0, "key ID %s issued twice",
                 l->v[i].id);
    qsort(l->v, l->n, sizeof *l->v, cmp_rec_key);
    for (size_t i = 1; i < l->n; i++)
        CHECK_AT(file, line, memcmp(l->v[i - 1].key, l->v[i].key, KEY_BYTES) != 0,
                 "keys %s and %s have identical material", l->v[i - 1].id, l->v[i].id);
}
#define check_unique(l) check_unique_at(__FILE__, __LINE__, (l))

static void merge_lists(rec_list *all, rec_list *parts, size_t n)
{
    memset(all, 0, sizeof *all);
    for (size_t t = 0; t < n; t++)
        all->cap += parts[t].n;
    all->v = malloc((all->cap ? all->cap : 1) * sizeof *all->v);
    assert_non_null(all->v);
    for (size_t t = 0; t < n; t++) {
        if (parts[t].n > 0)
            memcpy(all->v + all->n, parts[t].v, parts[t].n * sizeof *parts[t].v);
        all->n += parts[t].n;
    }
}

#define ENC_THREADS 8
#define ENC_CALLS 50
#define ENC_BATCH 4

typedef struct enc_worker {
    pthread_t th;
    rec_list got;
    qkd014_code fail;
    char errmsg[256];
    /* crash test: */
    atomic_bool *stop;
    atomic_long *acked;
} enc_worker;

static void *enc_worker_run(void *p)
{
    enc_worker *w = p;
    qkd014_options o = { .version = QKD014_OPTIONS_VERSION,
                         .kme_url = TB.kme_url, .cert_file = TB.a1.cert, .key_file = TB.a1.key,
                         .ca_file = TB.ca_cert, .expected_kme_id = TB.kme_id };
    qkd014_client *c = NULL;
    w->fail = qkd014_client_new(&o, &c);
    for (int i = 0; i < ENC_CALLS && w->fail == QKD014_OK; i++) {
        qkd014_key_request r = { .version = QKD014_KEY_REQUEST_VERSION,
                                 .number = ENC_BATCH, .size = KEY_BYTES * 8 };
        qkd014_keys *k = NULL;
        w->fail = qkd014_get_key(c, TB.a2.id, &r, &k);
        for (size_t j = 0; w->fail == QKD014_OK && j < k->n; j++)
            if (!rec_add(&w->got, &k->keys[j]))
                w->fail = QKD014_E_NOMEM;
        qkd014_keys_free(k);
    }
    if (w->fail != QKD014_OK && c != NULL)
        snprintf(w->errmsg, sizeof w->errmsg, "%s", qkd014_errmsg(c));
    qkd014_client_free(c);
    return NULL;
}

static void test_concurrent_enc_keys_unique(void **state)
{
    (void)state;
    enc_worker w[ENC_THREADS];
    memset(w, 0, sizeof w);
    double t0 = now_s();
    for (int t = 0; t < ENC_THREADS; t++)
        assert_int_equal(pthread_create(&w[t].th, NULL, enc_worker_run, &w[t]), 0);
    for (int t = 0; t < ENC_THREADS; t++)
        pthread_join(w[t].th, NULL);
    double dt = now_s() - t0;
    rec_list parts[ENC_THREADS], all;
    for (int t = 0; t < ENC_THREADS; t++) {
        parts[t] = w[t].got;
        CHECK(w[t].fail == QKD014_OK, "thread %d: %s (%s)", t, qkd014_strerror(w[t].fail),
              w[t].errmsg);
        CHECK(w[t].got.n == ENC_CALLS * ENC_BATCH, "thread %d got %zu keys", t, w[t].got.n);
    }
    merge_lists(&all, parts, ENC_THREADS);
    for (int t = 0; t < ENC_THREADS; t++)
        rec_list_free(&w[t].got);
    assert_int_equal(all.n, ENC_THREADS * ENC_CALLS * ENC_BATCH);
    check_unique(&all);
    print_message("concurrency: %zu keys from %d threads in %.2f s, all IDs and keys distinct\n",
                  all.n, ENC_THREADS, dt);
    rec_list_free(&all);
}

#define RACE_THREADS 8

typedef struct race_worker {
    pthread_t th;
    qkd014_client *c;
    const char *key_id;
    pthread_barrier_t *go;
    qkd014_code rc;
    long http;
    char errmsg[256];
    uint8_t key[KEY_BYTES];
    size_t key_len;
} race_worker;

static void *race_run(void *p)
{
    race_worker *w = p;
    qkd014_keys *k = NULL;
    pthread_barrier_wait(w->go);
    w->rc = qkd014_get_key_with_ids(w->c, TB.a1.id, &w->key_id, 1, &k);
    w->http = qkd014_last_http_status(w->c);
    snprintf(w->errmsg, sizeof w->errmsg, "%s", qkd014_errmsg(w->c));
    if (w->rc == QKD014_OK && k->n == 1 && k->keys[0].key_len <= KEY_BYTES) {
        w->key_len = k->keys[0].key_len;
        memcpy(w->key, k->keys[0].key, w->key_len);
    }
    qkd014_keys_free(k);
    return NULL;
}

static void test_concurrent_dec_keys_once(void **state)
{
    (void)state;
    qkd014_client *c1 = new_client(&TB.a1);
    race_worker w[RACE_THREADS];
    memset(w, 0, sizeof w);
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, RACE_THREADS);
    int rounds = 3, total_ok = 0;
    for (int t = 0; t < RACE_THREADS; t++) {
        w[t].c = new_client(&TB.a2);
        qkd014_status *s = NULL; /* open the connection before the race */
        assert_int_equal(qkd014_get_status(w[t].c, TB.a1.id, &s), QKD014_OK);
        qkd014_status_free(s);
    }
    for (int round = 0; round < rounds; round++) {
        qkd014_keys *k = make_keys(c1, TB.a2.id, 1, KEY_BYTES * 8);
        for (int t = 0; t < RACE_THREADS; t++) {
            w[t].key_id = k->keys[0].key_id;
            w[t].go = &go;
            w[t].key_len = 0;
            assert_int_equal(pthread_create(&w[t].th, NULL, race_run, &w[t]), 0);
        }
        for (int t = 0; t < RACE_THREADS; t++)
            pthread_join(w[t].th, NULL);
        int ok = 0, notfound = 0;
        for (int t = 0; t < RACE_THREADS; t++) {
            if (w[t].rc == QKD014_OK) {
                ok++;
                CHECK(w[t].key_len == k->keys[0].key_len
                      && memcmp(w[t].key, k->keys[0].key, w[t].key_len) == 0,
                      "the winning fetch returned other material");
            } else {
                CHECK(w[t].rc == QKD014_E_BAD_REQUEST && w[t].http == 400
                      && strcmp(w[t].errmsg, MSG_NOT_FOUND) == 0,
                      "losing fetch: %s, HTTP %ld, \"%s\"", qkd014_strerror(w[t].rc), w[t].http,
                      w[t].errmsg);
                notfound++;
            }
        }
        CHECK(ok == 1 && notfound == RACE_THREADS - 1,
              "round %d: %d of %d racing fetches succeeded", round, ok, RACE_THREADS);
        total_ok += ok;
        qkd014_keys_free(k);
    }
    print_message("race: %d rounds of %d concurrent fetches of one key: exactly one success each\n",
                  rounds, RACE_THREADS);
    assert_int_equal(total_ok, rounds);
    for (int t = 0; t < RACE_THREADS; t++)
        untrack(w[t].c);
    pthread_barrier_destroy(&go);
    untrack(c1);
}

/* ------------------------------------------------------------ crash safety */

/* Fetch each of n records singly as A2 (from master A1) with nthreads
 * threads; codes[i] gets the result; a 200 must carry identical material
 * (mismatch counted), a 400 the not-found message (others counted). */
typedef struct fetch_job {
    const rec *recs;
    const size_t *idx; /* which records (NULL: all) */
    size_t n;
    qkd014_code *codes;
    atomic_size_t next;
    atomic_int mismatch, bad_message, client_fail;
} fetch_job;

static void *fetch_run(void *p)
{
    fetch_job *j = p;
    qkd014_options o = { .version = QKD014_OPTIONS_VERSION,
                         .kme_url = TB.kme_url, .cert_file = TB.a2.cert, .key_file = TB.a2.key,
                         .ca_file = TB.ca_cert, .expected_kme_id = TB.kme_id };
    qkd014_client *c = NULL;
    if (qkd014_client_new(&o, &c) != QKD014_OK) {
        atomic_fetch_add(&j->client_fail, 1);
        return NULL;
    }
    for (;;) {
        size_t i = atomic_fetch_add(&j->next, 1);
        if (i >= j->n)
            break;
        size_t r = j->idx ? j->idx[i] : i;
        const char *id = j->recs[r].id;
        qkd014_keys *k = NULL;
        qkd014_code rc = qkd014_get_key_with_ids(c, TB.a1.id, &id, 1, &k);
        j->codes[i] = rc;
        if (rc == QKD014_OK && (k->n != 1 || k->keys[0].key_len != KEY_BYTES
                                || memcmp(k->keys[0].key, j->recs[r].key, KEY_BYTES) != 0))
            atomic_fetch_add(&j->mismatch, 1);
        if (rc == QKD014_E_BAD_REQUEST && strcmp(qkd014_errmsg(c), MSG_NOT_FOUND) != 0)
            atomic_fetch_add(&j->bad_message, 1);
        qkd014_keys_free(k);
    }
    qkd014_client_free(c);
    return NULL;
}

static void fetch_each(const rec *recs, const size_t *idx, size_t n, qkd014_code *codes,
                       int *mismatch, int *bad_message)
{
    enum { FETCH_THREADS = 4 };
    fetch_job j = { .recs = recs, .idx = idx, .n = n, .codes = codes };
    pthread_t th[FETCH_THREADS];
    for (int t = 0; t < FETCH_THREADS; t++)
        assert_int_equal(pthread_create(&th[t], NULL, fetch_run, &j), 0);
    for (int t = 0; t < FETCH_THREADS; t++)
        pthread_join(th[t], NULL);
    assert_int_equal(atomic_load(&j.client_fail), 0);
    *mismatch = atomic_load(&j.mismatch);
    *bad_message = atomic_load(&j.bad_message);
}

static bool is_connection_loss(qkd014_code rc)
{
    return rc == QKD014_E_TRANSPORT || rc == QKD014_E_TLS;
}

static void restart_kme_a(void)
{
    int rc = testbed_cmd("start");
    CHECK(rc == 0, "scripts/testbed start %s kme-a failed (status %d)", TB.dir, rc);
    CHECK(load_kme_url() == 0, "testbed.env lacks KME_A_URL after restart");
}

#define CRASH_THREADS 4

static void *crash_enc_run(void *p)
{
    enc_worker *w = p;
    static const int32_t batches[] = { 1, 3, 8, 2, 5 };
    qkd014_options o = { .version = QKD014_OPTIONS_VERSION,
                         .kme_url = TB.kme_url, .cert_file = TB.a1.cert, .key_file = TB.a1.key,
                         .ca_file = TB.ca_cert, .expected_kme_id = TB.kme_id,
                         .timeout_ms = 5000 };
    qkd014_client *c = NULL;
    w->fail = qkd014_client_new(&o, &c);
    double deadline = now_s() + 30; /* bound, should the KME never die */
    for (unsigned i = 0; w->fail == QKD014_OK && now_s() < deadline; i++) {
        qkd014_key_request r = { .version = QKD014_KEY_REQUEST_VERSION,
                                 .number = batches[i % 5], .size = KEY_BYTES * 8 };
        qkd014_keys *k = NULL;
        w->fail = qkd014_get_key(c, TB.a2.id, &r, &k);
        for (size_t j = 0; w->fail == QKD014_OK && j < k->n; j++)
            if (!rec_add(&w->got, &k->keys[j]))
                w->fail = QKD014_E_NOMEM;
        if (w->fail == QKD014_OK)
            atomic_fetch_add(w->acked, (long)k->n);
        qkd014_keys_free(k);
    }
    if (c != NULL)
        snprintf(w->errmsg, sizeof w->errmsg, "%s", qkd014_errmsg(c));
    qkd014_client_free(c);
    return NULL;
}

/* I4 at enc_keys: every acknowledged key survives kill -9. */
static void test_crash_enc_keys(void **state)
{
    (void)state;
    if (TB.script == NULL)
        skip(); /* TESTBED_SCRIPT not set: cannot kill and restart KME-A */
    enc_worker w[CRASH_THREADS];
    memset(w, 0, sizeof w);
    atomic_long acked = 0;
    for (int t = 0; t < CRASH_THREADS; t++) {
        w[t].acked = &acked;
        assert_int_equal(pthread_create(&w[t].th, NULL, crash_enc_run, &w[t]), 0);
    }
    sleep_ms(1000);
    long before_kill = atomic_load(&acked);
    int krc = crash_kme_a();
    for (int t = 0; t < CRASH_THREADS; t++)
        pthread_join(w[t].th, NULL);
    CHECK(krc == 0, "scripts/testbed kill failed (status %d)", krc);
    rec_list parts[CRASH_THREADS], all;
    for (int t = 0; t < CRASH_THREADS; t++) {
        CHECK(is_connection_loss(w[t].fail), "enc thread %d stopped with %s (%s), not a lost "
              "connection", t, qkd014_strerror(w[t].fail), w[t].errmsg);
        parts[t] = w[t].got;
    }
    merge_lists(&all, parts, CRASH_THREADS);
    for (int t = 0; t < CRASH_THREADS; t++)
        rec_list_free(&w[t].got);
    print_message("crash test (enc_keys): %zu keys acknowledged before SIGKILL (%ld after 1 s)\n",
                  all.n, before_kill);
    CHECK(all.n > 0, "no key was acknowledged in 1 s");
    check_unique(&all); /* also: no key ID acknowledged twice */

    restart_kme_a();
    double t0 = now_s();
    /* Every acknowledged key is there, once, with identical material:
     * first in POST batches of up to max_key_per_request... */
    qkd014_client *c2 = new_client(&TB.a2);
    size_t batch = (size_t)TB.lim.max_key_per_request;
    const char **ids = malloc(batch * sizeof *ids);
    for (size_t off = 0; off < all.n; off += batch) {
        size_t n = all.n - off < batch ? all.n - off : batch;
        for (size_t i = 0; i < n; i++)
            ids[i] = all.v[off + i].id;
        qkd014_keys *k = NULL;
        qkd014_code rc = qkd014_get_key_with_ids(c2, TB.a1.id, ids, n, &k);
        CHECK(rc == QKD014_OK, "after restart, dec_keys of %zu acknowledged keys: %s (%s)", n,
              qkd014_strerror(rc), qkd014_errmsg(c2));
        for (size_t i = 0; i < n; i++)
            CHECK(memcmp(k->keys[i].key, all.v[off + i].key, KEY_BYTES) == 0,
                  "key %s: material after restart differs from the acknowledged one", ids[i]);
        qkd014_keys_free(k);
    }
    free(ids);
    untrack(c2);
    /* ... then each singly again: all gone. */
    qkd014_code *codes = calloc(all.n, sizeof *codes);
    int mismatch = 0, bad_message = 0;
    fetch_each(all.v, NULL, all.n, codes, &mismatch, &bad_message);
    size_t again = 0;
    for (size_t i = 0; i < all.n; i++)
        if (codes[i] != QKD014_E_BAD_REQUEST)
            again++;
    free(codes);
    CHECK(again == 0, "%zu keys could be fetched twice or failed otherwise", again);
    CHECK(bad_message == 0, "%d second fetches were refused with another message", bad_message);
    print_message("crash test (enc_keys): all %zu retrieved once after restart, none twice "
                  "(%.2f s)\n", all.n, now_s() - t0);
    rec_list_free(&all);
}

enum { K_NOT_TRIED = 0, K_IN_DOUBT, K_ACKED, K_WRONG };

typedef struct dec_worker {
    pthread_t th;
    int index;
    const rec *recs;
    size_t n;
    unsigned char *state; /* per key */
    atomic_long *acked;
    qkd014_code fail;
    char errmsg[256];
} dec_worker;

static void *crash_dec_run(void *p)
{
    dec_worker *w = p;
    qkd014_options o = { .version = QKD014_OPTIONS_VERSION,
                         .kme_url = TB.kme_url, .cert_file = TB.a2.cert, .key_file = TB.a2.key,
                         .ca_file = TB.ca_cert, .expected_kme_id = TB.kme_id,
                         .timeout_ms = 5000 };
    qkd014_client *c = NULL;
    w->fail = qkd014_client_new(&o, &c);
    for (size_t i = (size_t)w->index; w->fail == QKD014_OK && i < w->n; i += CRASH_THREADS) {
        const char *id = w->recs[i].id;
        qkd014_keys *k = NULL;
        w->state[i] = K_IN_DOUBT;
        w->fail = qkd014_get_key_with_ids(c, TB.a1.id, &id, 1, &k);
        if (w->fail == QKD014_OK) {
            bool same = k->n == 1 && memcmp(k->keys[0].key, w->recs[i].key, KEY_BYTES) == 0;
            w->state[i] = same ? K_ACKED : K_WRONG;
            atomic_fetch_add(w->acked, 1);
        } else if (!is_connection_loss(w->fail)) {
            w->state[i] = K_WRONG; /* a definite answer other than 200 */
        }
        qkd014_keys_free(k);
    }
    if (c != NULL)
        snprintf(w->errmsg, sizeof w->errmsg, "%s", qkd014_errmsg(c));
    qkd014_client_free(c);
    return NULL;
}

/* I4 at dec_keys: a delivered key is never delivered again after kill -9,
 * and an undelivered one is still there (unless its fate was in doubt). */
static void test_crash_dec_keys(void **state)
{
    (void)state;
    if (TB.script == NULL)
        skip();
    enum { N = 3000 };
    qkd014_client *c1 = new_client(&TB.a1);
    rec_list l = { 0 };
    for (int made = 0; made < N;) {
        int32_t n = N - made < 1000 ? N - made : 1000;
        qkd014_keys *k = make_keys(c1, TB.a2.id, n, KEY_BYTES * 8);
        for (size_t i = 0; i < k->n; i++)
            assert_true(rec_add(&l, &k->keys[i]));
        qkd014_keys_free(k);
        made += n;
    }
    untrack(c1);
    assert_int_equal(l.n, N);

    unsigned char *st = calloc(N, 1);
    atomic_long acked = 0;
    dec_worker w[CRASH_THREADS];
    memset(w, 0, sizeof w);
    for (int t = 0; t < CRASH_THREADS; t++) {
        w[t] = (dec_worker){ .index = t, .recs = l.v, .n = N, .state = st, .acked = &acked };
        assert_int_equal(pthread_create(&w[t].th, NULL, crash_dec_run, &w[t]), 0);
    }
    double deadline = now_s() + 30;
    while (atomic_load(&acked) < N / 10 && now_s() < deadline)
        sleep_ms(1);
    int krc = crash_kme_a();
    for (int t = 0; t < CRASH_THREADS; t++)
        pthread_join(w[t].th, NULL);
    CHECK(krc == 0, "scripts/testbed kill failed (status %d)", krc);
    size_t n_acked = 0, n_doubt = 0, n_untried = 0;
    for (size_t i = 0; i < N; i++) {
        CHECK(st[i] != K_WRONG, "key %s: a fetch before the crash gave a wrong answer", l.v[i].id);
        n_acked += st[i] == K_ACKED;
        n_doubt += st[i] == K_IN_DOUBT;
        n_untried += st[i] == K_NOT_TRIED;
    }
    for (int t = 0; t < CRASH_THREADS; t++)
        CHECK(is_connection_loss(w[t].fail), "dec thread %d stopped with %s (%s), not a lost "
              "connection", t, qkd014_strerror(w[t].fail), w[t].errmsg);
    print_message("crash test (dec_keys): %zu of %d fetches acknowledged before SIGKILL, "
                  "%zu in flight, %zu not tried\n", n_acked, N, n_doubt, n_untried);
    CHECK(n_untried > 0, "all %d keys were fetched before the kill: the crash hit no work", N);
    CHECK(n_doubt <= CRASH_THREADS, "%zu fetches in doubt with %d threads", n_doubt,
          CRASH_THREADS);

    restart_kme_a();
    qkd014_code *codes = calloc(N, sizeof *codes);
    int mismatch = 0, bad_message = 0;
    fetch_each(l.v, NULL, N, codes, &mismatch, &bad_message);
    CHECK(mismatch == 0, "%d keys came back with other material after restart", mismatch);
    CHECK(bad_message == 0, "%d refusals carried another message than \"%s\"", bad_message,
          MSG_NOT_FOUND);
    size_t lost = 0, doubt_lost = 0, n_ok = 0;
    size_t *okidx = calloc(N, sizeof *okidx);
    for (size_t i = 0; i < N; i++) {
        if (st[i] == K_ACKED) {
            CHECK(codes[i] == QKD014_E_BAD_REQUEST, "key %s was delivered before the crash and "
                  "again after it (%s)", l.v[i].id, qkd014_strerror(codes[i]));
            continue;
        }
        CHECK(codes[i] == QKD014_OK || codes[i] == QKD014_E_BAD_REQUEST,
              "key %s: %s after restart", l.v[i].id, qkd014_strerror(codes[i]));
        if (codes[i] == QKD014_OK) {
            okidx[n_ok++] = i;
        } else {
            lost++;
            doubt_lost += st[i] == K_IN_DOUBT;
        }
    }
    print_message("crash test (dec_keys): after restart %zu undelivered keys retrieved, %zu of "
                  "unknown fate consumed by the crash\n", n_ok, lost);
    CHECK(lost <= CRASH_THREADS, "%zu never-acknowledged keys are gone (at most %d may be)", lost,
          CRASH_THREADS);
    CHECK(lost == doubt_lost, "%zu keys that were never requested are gone", lost - doubt_lost);
    /* Exactly once: the keys just retrieved are gone now. */
    qkd014_code *codes2 = calloc(n_ok ? n_ok : 1, sizeof *codes2);
    fetch_each(l.v, okidx, n_ok, codes2, &mismatch, &bad_message);
    size_t twice = 0;
    for (size_t i = 0; i < n_ok; i++)
        twice += codes2[i] != QKD014_E_BAD_REQUEST;
    CHECK(twice == 0, "%zu keys were delivered twice after the restart", twice);
    CHECK(bad_message == 0, "second fetches refused with another message");
    free(codes2);
    free(okidx);
    free(codes);
    free(st);
    rec_list_free(&l);
}

/* -------------------------------------------------------------------- main */

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_status_members, release_tracked),
        cmocka_unit_test_teardown(test_status_bad_requests, release_tracked),
        cmocka_unit_test_teardown(test_http_unknown_path_and_method, release_tracked),
        cmocka_unit_test_teardown(test_http_body_too_large, release_tracked),
        cmocka_unit_test_teardown(test_enc_keys_get, release_tracked),
        cmocka_unit_test_teardown(test_enc_keys_post_forms, release_tracked),
        cmocka_unit_test_teardown(test_interop_null_members_and_allow, release_tracked),
        cmocka_unit_test_teardown(test_enc_keys_bad_number_size, release_tracked),
        cmocka_unit_test_teardown(test_enc_keys_extensions, release_tracked),
        cmocka_unit_test_teardown(test_multicast, release_tracked),
        cmocka_unit_test_teardown(test_dec_keys_round_trip, release_tracked),
        cmocka_unit_test_teardown(test_key_reuse_reported, release_tracked),
        cmocka_unit_test_teardown(test_dec_keys_authorization, release_tracked),
        cmocka_unit_test_teardown(test_dec_keys_bad_ids, release_tracked),
        cmocka_unit_test_teardown(test_headers_and_keep_alive, release_tracked),
        cmocka_unit_test_teardown(test_tls_client_certificates, release_tracked),
        cmocka_unit_test_teardown(test_tls_versions, release_tracked),
        cmocka_unit_test_setup_teardown(test_exhaustion_503, kme2_setup, kme2_teardown),
        cmocka_unit_test_teardown(test_concurrent_enc_keys_unique, release_tracked),
        cmocka_unit_test_teardown(test_concurrent_dec_keys_once, release_tracked),
        cmocka_unit_test_teardown(test_crash_enc_keys, release_tracked),
        cmocka_unit_test_teardown(test_crash_dec_keys, release_tracked),
    };
    /* TEST_FILTER=pattern runs only the matching tests (debugging). */
    const char *filter = getenv("TEST_FILTER");
    if (filter != NULL && filter[0] != '\0')
        cmocka_set_test_filter(filter);
    return cmocka_run_group_tests_name("qkd-kme system", tests, group_setup, group_teardown);
}
