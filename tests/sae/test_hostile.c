/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_hostile.c - libqkd014 against a deliberately hostile HTTPS "KME"
 * (hostile_server.c): every way an answer can break the standard must give
 * its own error code and message, never a crash, and the client must stay
 * usable afterwards.  Also checks what the client sends (GET for the simple
 * forms, POST with Content-Type application/json otherwise, percent-encoded
 * SAE IDs) and the KME certificate checks (CA, expected KME ID).  The
 * HTTP layer (src/common/httpsc.c) is tested through raw answers: chunked
 * bodies, 1xx, close-delimited bodies, keep-alive and Connection: close,
 * a kept connection closed by the server while idle (one transparent
 * retry), half answers and silent servers (timeouts), broken framing.
 *
 * The certificates are made at test time with scripts/pki (path in the
 * environment variable QKD014_PKI_SCRIPT) in a temporary directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <jansson.h>

#include "hostile_server.h"
#include "qkd014.h"
#include "common/base64.h"
#include "sae/qkd014_internal.h"

#define ID1 "0b5f4d9e-1c2a-4b3d-8e7f-a1b2c3d4e5f6"
#define ID2 "1c6e5eaf-2d3b-4c4e-9f80-b2c3d4e5f607"
#define ID3 "2d7f6fb0-3e4c-4d5f-a091-c3d4e5f60718"

static struct {
    char dir[256], pki[512];
    hostile_server *main, *other; /* CN KME-H, CN KME-OTHER */
} T;

/* ---------------------------------------------------------------- setup */

static int run_pki(const char *args)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' %s >/dev/null", T.pki, args);
    return system(cmd);
}

static void file_of(char *out, size_t len, const char *name, const char *ext)
{
    snprintf(out, len, "%s/%s.%s", T.dir, name, ext);
}

static hostile_server *start_as(const char *kme_id)
{
    char crt[512], key[512], err[512];
    file_of(crt, sizeof crt, kme_id, "crt");
    file_of(key, sizeof key, kme_id, "key");
    hostile_server *s = hostile_start(crt, key, err, sizeof err);
    if (s == NULL)
        fprintf(stderr, "hostile_start: %s\n", err);
    return s;
}

static int group_setup(void **state)
{
    (void)state;
    const char *pki = getenv("QKD014_PKI_SCRIPT");
    char args[1024];
    if (pki == NULL || access(pki, X_OK) != 0) {
        fprintf(stderr, "QKD014_PKI_SCRIPT does not name scripts/pki\n");
        return -1;
    }
    snprintf(T.pki, sizeof T.pki, "%s", pki);
    snprintf(T.dir, sizeof T.dir, "%s/qkd014-hostile.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(T.dir) == NULL)
        return -1;
    const char *steps[] = { "init", "kme", "kme", "sae" };
    const char *names[] = { "", "KME-H", "KME-OTHER", "SAE_H1" };
    for (size_t i = 0; i < 4; i++) {
        snprintf(args, sizeof args, "%s '%s' %s", steps[i], T.dir, names[i]);
        if (run_pki(args) != 0)
            return -1;
    }
    T.main = start_as("KME-H");
    T.other = start_as("KME-OTHER");
    return (T.main && T.other) ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    char cmd[600];
    hostile_stop(T.main);
    hostile_stop(T.other);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", T.dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* -------------------------------------------------------------- helpers */

typedef struct client_opts {
    const hostile_server *srv;
    const char *expected_kme_id;
    const char *ca; /* file stem in T.dir: "kme-ca" unless set */
    long timeout_ms;
} client_opts;

static qkd014_client *client_with(client_opts o)
{
    char url[64], crt[512], key[512], ca[512];
    snprintf(url, sizeof url, "https://localhost:%d", hostile_port(o.srv));
    file_of(crt, sizeof crt, "SAE_H1", "crt");
    file_of(key, sizeof key, "SAE_H1", "key");
    file_of(ca, sizeof ca, o.ca ? o.ca : "kme-ca", "crt");
    qkd014_options opt = { .version = QKD014_OPTIONS_VERSION,
                           .kme_url = url, .cert_file = crt, .key_file = key,
                           .ca_file = ca, .expected_kme_id = o.expected_kme_id,
                           .timeout_ms = o.timeout_ms ? o.timeout_ms : 5000 };
    qkd014_client *c = NULL;
    assert_int_equal(qkd014_client_new(&opt, &c), QKD014_OK);
    assert_non_null(c);
    return c;
}

static qkd014_client *client(void)
{
    return client_with((client_opts){ .srv = T.main });
}

/* A Key container of n keys of `bytes` bytes each, with the given IDs. */
static char *container(const char *const *ids, size_t n, size_t bytes)
{
    json_t *keys = json_array();
    unsigned char raw[64] = {0};
    char b64[128];
    for (size_t i = 0; i < n; i++) {
        raw[0] = (unsigned char)(i + 1);
        b64_encode(raw, bytes, b64);
        json_array_append_new(keys, json_pack("{s:s,s:s}", "key_ID", ids[i], "key", b64));
    }
    json_t *root = json_pack("{s:o}", "keys", keys);
    char *s = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return s;
}

static void answer_json(int status, const char *body)
{
    hostile_answer(T.main, H_CANNED, status, "application/json", body);
}

/* The call gives `want`, and the message holds `needle`. */
#define EXPECT(c, rc, want, needle) expect_at(__FILE__, __LINE__, c, rc, want, needle)
static void expect_at(const char *file, int line, qkd014_client *c, qkd014_code rc,
                      qkd014_code want, const char *needle)
{
    const char *msg = qkd014_errmsg(c);
    if (rc != want || (needle && strstr(msg, needle) == NULL))
        fail_msg("%s:%d: got %s (%s), expected %s with \"%s\"", file, line,
                 qkd014_strerror(rc), msg, qkd014_strerror(want), needle ? needle : "");
}

/* One enc_keys call of the default form. */
static qkd014_code get_one(qkd014_client *c)
{
    qkd014_keys *k = NULL;
    qkd014_code rc = qkd014_get_key(c, "SAE_H2", NULL, &k);
    if (rc != QKD014_OK)
        assert_null(k);
    qkd014_keys_free(k);
    return rc;
}

/* After a failure the same client must work again. */
static void still_works(qkd014_client *c)
{
    const char *ids[] = { ID1 };
    char *body = container(ids, 1, 32);
    answer_json(200, body);
    free(body);
    EXPECT(c, get_one(c), QKD014_OK, "ok");
}

static const char status_ok[] =
    "{\"source_KME_ID\":\"KME-H\",\"target_KME_ID\":\"KME-H\","
    "\"master_SAE_ID\":\"SAE_H1\",\"slave_SAE_ID\":\"SAE_H2\",\"key_size\":256,"
    "\"stored_key_count\":10,\"max_key_count\":100,\"max_key_per_request\":8,"
    "\"max_key_size\":1024,\"min_key_size\":64,\"max_SAE_ID_count\":2}";

/* ---------------------------------------------------------- good paths */

static void test_status_and_kme_id(void **state)
{
    (void)state;
    qkd014_client *c = client_with((client_opts){ .srv = T.main, .expected_kme_id = "KME-H" });
    qkd014_status *s = NULL;
    answer_json(200, status_ok);
    EXPECT(c, qkd014_get_status(c, "SAE_H2", &s), QKD014_OK, NULL);
    assert_string_equal(s->source_kme_id, "KME-H");
    assert_int_equal(s->max_sae_id_count, 2);
    assert_string_equal(qkd014_peer_kme_id(c), "KME-H");
    qkd014_status_free(s);
    hostile_request rq;
    hostile_last(T.main, &rq);
    assert_string_equal(rq.method, "GET");
    assert_string_equal(rq.target, "/api/v1/keys/SAE_H2/status");
    qkd014_client_free(c);
}

static void test_request_forms(void **state)
{
    (void)state;
    qkd014_client *c = client();
    hostile_request rq;
    const char *ids[] = { ID1, ID2 };
    char *body = container(ids, 2, 16);
    answer_json(200, body);
    free(body);
    qkd014_key_request req = { .version = QKD014_KEY_REQUEST_VERSION, .number = 2, .size = 128 };
    qkd014_keys *k = NULL;
    /* simple form: GET with the query; the SAE ID percent-encoded */
    EXPECT(c, qkd014_get_key(c, "SAE H/2%", &req, &k), QKD014_OK, NULL);
    assert_int_equal(k->n, 2);
    assert_int_equal(k->keys[1].key_len, 16);
    assert_string_equal(k->keys[0].key_id, ID1);
    qkd014_keys_free(k);
    hostile_last(T.main, &rq);
    assert_string_equal(rq.method, "GET");
    assert_string_equal(rq.target, "/api/v1/keys/SAE%20H%2F2%25/enc_keys?number=2&size=128");
    assert_int_equal(rq.body_len, 0);
    /* multicast: POST with a JSON body and its Content-Type */
    const char *more[] = { "SAE_H3" };
    req.additional_slaves = more;
    req.n_additional = 1;
    EXPECT(c, qkd014_get_key(c, "SAE_H2", &req, &k), QKD014_OK, NULL);
    qkd014_keys_free(k);
    hostile_last(T.main, &rq);
    assert_string_equal(rq.method, "POST");
    assert_string_equal(rq.target, "/api/v1/keys/SAE_H2/enc_keys");
    assert_string_equal(rq.content_type, "application/json");
    json_t *j = json_loadb(rq.body, rq.body_len, 0, NULL);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "number")), 2);
    assert_string_equal(json_string_value(json_array_get(
        json_object_get(j, "additional_slave_SAE_IDs"), 0)), "SAE_H3");
    json_decref(j);
    /* dec_keys: GET for one ID, POST of key_IDs objects for two */
    EXPECT(c, qkd014_get_key_with_ids(c, "SAE_H2", ids, 2, &k), QKD014_OK, NULL);
    qkd014_keys_free(k);
    hostile_last(T.main, &rq);
    assert_string_equal(rq.method, "POST");
    assert_string_equal(rq.content_type, "application/json");
    assert_non_null(strstr(rq.body, "{\"key_IDs\":[{\"key_ID\":\"" ID1 "\"}"));
    body = container(ids, 1, 16);
    answer_json(200, body);
    free(body);
    EXPECT(c, qkd014_get_key_with_ids(c, "SAE_H2", ids, 1, &k), QKD014_OK, NULL);
    qkd014_keys_free(k);
    hostile_last(T.main, &rq);
    assert_string_equal(rq.method, "GET");
    assert_string_equal(rq.target, "/api/v1/keys/SAE_H2/dec_keys?key_ID=" ID1);
    qkd014_client_free(c);
}

/* ------------------------------------------------------ broken answers */

static void test_malformed_json(void **state)
{
    (void)state;
    qkd014_client *c = client();
    answer_json(200, "{\"keys\":[{\"key_ID\":");
    EXPECT(c, get_one(c), QKD014_E_MALFORMED, "not valid JSON");
    answer_json(200, "[1,2,3]");
    EXPECT(c, get_one(c), QKD014_E_MALFORMED, "not a JSON object");
    answer_json(200, "{\"keys\":[],\"keys\":[]}");
    EXPECT(c, get_one(c), QKD014_E_MALFORMED, "not valid JSON");
    answer_json(200, "{\"keys\":{}}");
    EXPECT(c, get_one(c), QKD014_E_MALFORMED, "lacks a \"keys\" array");
    still_works(c);
    qkd014_client_free(c);
}

static void test_wrong_count(void **state)
{
    (void)state;
    qkd014_client *c = client();
    const char *ids[] = { ID1, ID2 };
    char *body = container(ids, 2, 32);
    answer_json(200, body);
    free(body);
    EXPECT(c, get_one(c), QKD014_E_MALFORMED, "holds 2 keys, 1 requested");
    answer_json(200, "{\"keys\":[]}");
    EXPECT(c, get_one(c), QKD014_E_MALFORMED, "holds 0 keys");
    still_works(c);
    qkd014_client_free(c);
}

static void test_wrong_size(void **state)
{
    (void)state;
    qkd014_client *c = client();
    const char *ids[] = { ID1, ID2 };
    char *body = container(ids, 1, 16);
    answer_json(200, body);
    free(body);
    qkd014_key_request req = { .version = QKD014_KEY_REQUEST_VERSION, .size = 256 };
    qkd014_keys *k = NULL;
    EXPECT(c, qkd014_get_key(c, "SAE_H2", &req, &k), QKD014_E_MALFORMED,
           "has 128 bits, expected 256");
    assert_null(k);
    answer_json(200, "{\"keys\":[{\"key_ID\":\"" ID1 "\",\"key\":\"AAAA\"},"
                     "{\"key_ID\":\"" ID2 "\",\"key\":\"AAAAAA==\"}]}");
    req = (qkd014_key_request){ .version = QKD014_KEY_REQUEST_VERSION, .number = 2 };
    EXPECT(c, qkd014_get_key(c, "SAE_H2", &req, &k), QKD014_E_MALFORMED, "differ in length");
    answer_json(200, "{\"keys\":[{\"key_ID\":\"" ID1 "\",\"key\":\"AAB=\"}]}");
    EXPECT(c, get_one(c), QKD014_E_MALFORMED, "not canonical base64");
    still_works(c);
    qkd014_client_free(c);
}

static void test_bad_ids(void **state)
{
    (void)state;
    qkd014_client *c = client();
    const char *ids[] = { ID1, ID1 };
    char *body = container(ids, 2, 32);
    answer_json(200, body);
    free(body);
    qkd014_key_request req = { .version = QKD014_KEY_REQUEST_VERSION, .number = 2 };
    qkd014_keys *k = NULL;
    EXPECT(c, qkd014_get_key(c, "SAE_H2", &req, &k), QKD014_E_MALFORMED, "appears twice");
    answer_json(200, "{\"keys\":[{\"key_ID\":\"not-a-uuid\",\"key\":\"AAAA\"}]}");
    EXPECT(c, get_one(c), QKD014_E_MALFORMED, "is not a UUID");
    /* dec_keys must return exactly the IDs asked for */
    const char *asked[] = { ID3 };
    body = container(ids, 1, 32);
    answer_json(200, body);
    free(body);
    EXPECT(c, qkd014_get_key_with_ids(c, "SAE_H2", asked, 1, &k), QKD014_E_MALFORMED,
           "missing from the answer");
    still_works(c);
    qkd014_client_free(c);
}

/* status_ok with the first `from` replaced by `to` (malloc'd). */
static char *status_with(const char *from, const char *to)
{
    const char *at = strstr(status_ok, from);
    assert_non_null(at);
    size_t head = (size_t)(at - status_ok), n = strlen(status_ok) + strlen(to) + 1;
    char *s = malloc(n);
    assert_non_null(s);
    snprintf(s, n, "%.*s%s%s", (int)head, status_ok, to, at + strlen(from));
    return s;
}

static void test_bad_status(void **state)
{
    (void)state;
    static const char *const cases[][3] = {
        { "\"key_size\":256", "\"key_size\":\"256\"", "\"key_size\" is not an integer" },
        { "\"key_size\":256", "\"key_size\":256.0", "\"key_size\" is not an integer" },
        { "\"stored_key_count\":10", "\"stored_key_count\":-1", "out of range" },
        { "\"max_key_count\":100", "\"max_key_count\":2147483648", "out of range" },
        { "\"source_KME_ID\":\"KME-H\",", "", "lacks member \"source_KME_ID\"" },
        { "\"master_SAE_ID\":\"SAE_H1\"", "\"master_SAE_ID\":7", "is not a string" },
        { "\"key_size\":256", "\"key_size\":256,\"key_size\":257", "not valid JSON" },
        { "\"max_SAE_ID_count\":2", "\"max_SAE_ID_count\":2,\"status_extension\":[]",
          "\"status_extension\" is not an object" },
    };
    qkd014_client *c = client();
    qkd014_status *s = NULL;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *body = status_with(cases[i][0], cases[i][1]);
        answer_json(200, body);
        free(body);
        EXPECT(c, qkd014_get_status(c, "SAE_H2", &s), QKD014_E_MALFORMED, cases[i][2]);
        assert_null(s);
    }
    answer_json(200, status_ok);
    EXPECT(c, qkd014_get_status(c, "SAE_OTHER", &s), QKD014_E_MALFORMED, "not the one asked for");
    assert_null(s);
    /* the KME's slave ID is quoted in the message: never its control bytes
     * (a forged log line, terminal escapes) */
    char *body = status_with("\"slave_SAE_ID\":\"SAE_H2\"",
                             "\"slave_SAE_ID\":\"SAE_H2\\r\\nX\\u001b[2J\"");
    answer_json(200, body);
    free(body);
    EXPECT(c, qkd014_get_status(c, "SAE_H2", &s), QKD014_E_MALFORMED,
           "Status is for slave SAE \"SAE_H2??X?[2J\"");
    for (const char *m = qkd014_errmsg(c); *m; m++)
        assert_true((unsigned char)*m >= 0x20 && (unsigned char)*m < 0x7f);
    assert_null(s);
    qkd014_client_free(c);
}

static void test_wrong_content_type(void **state)
{
    (void)state;
    qkd014_client *c = client();
    const char *ids[] = { ID1 };
    char *body = container(ids, 1, 32);
    hostile_answer(T.main, H_CANNED, 200, "text/html", body);
    EXPECT(c, get_one(c), QKD014_E_MALFORMED, "Content-Type text/html");
    hostile_answer(T.main, H_CANNED, 200, NULL, body);
    EXPECT(c, get_one(c), QKD014_E_MALFORMED, "Content-Type none");
    hostile_answer(T.main, H_CANNED, 200, "application/jsonx", body);
    EXPECT(c, get_one(c), QKD014_E_MALFORMED, "not application/json");
    free(body);
    answer_json(200, "");
    EXPECT(c, get_one(c), QKD014_E_MALFORMED, "empty body");
    still_works(c);
    qkd014_client_free(c);
}

static void test_huge_bodies(void **state)
{
    (void)state;
    qkd014_client *c = client_with((client_opts){ .srv = T.main, .timeout_ms = 240000 });
    hostile_answer(T.main, H_HUGE_CHUNKED, 0, NULL, NULL);
    EXPECT(c, get_one(c), QKD014_E_MALFORMED, "answer exceeds 67108864 bytes");
    hostile_answer(T.main, H_HUGE_LENGTH, 0, NULL, NULL);
    EXPECT(c, get_one(c), QKD014_E_MALFORMED, "answer exceeds 67108864 bytes");
    still_works(c);
    qkd014_client_free(c);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_slow_body(void **state)
{
    (void)state;
    qkd014_client *c = client_with((client_opts){ .srv = T.main, .timeout_ms = 1500 });
    hostile_answer(T.main, H_SLOW, 0, NULL, NULL);
    double t0 = now_s();
    EXPECT(c, get_one(c), QKD014_E_TRANSPORT, "timed out");
    double took = now_s() - t0;
    if (took < 1.4 || took > 10)
        fail_msg("the timed-out call took %.2f s (timeout 1.5 s)", took);
    still_works(c);
    qkd014_client_free(c);
}

static void test_error_statuses(void **state)
{
    (void)state;
    qkd014_client *c = client();
    hostile_answer(T.main, H_CANNED, 401, NULL, NULL);
    EXPECT(c, get_one(c), QKD014_E_UNAUTHORIZED, "401");
    assert_int_equal(qkd014_last_http_status(c), 401);
    hostile_answer(T.main, H_CANNED, 500, "text/html", "<html>oops\x01</html>");
    EXPECT(c, get_one(c), QKD014_E_HTTP, "HTTP 500");
    answer_json(400, "{\"message\":\"size shall be a multiple of 8\"}");
    EXPECT(c, get_one(c), QKD014_E_BAD_REQUEST, "size shall be a multiple of 8");
    answer_json(400, "{\"detail\":\"from FastAPI\"}");
    EXPECT(c, get_one(c), QKD014_E_BAD_REQUEST, "from FastAPI");
    answer_json(503, "{\"message\":\"key data access error\"}");
    EXPECT(c, get_one(c), QKD014_E_UNAVAILABLE, "key data access error");
    answer_json(503, "{\"message\":\"bell\\u0007\\nnewline\"}");
    EXPECT(c, get_one(c), QKD014_E_UNAVAILABLE, "bell??newline");
    hostile_answer(T.main, H_CANNED, 302, "text/plain", "go away");
    EXPECT(c, get_one(c), QKD014_E_HTTP, "302");
    still_works(c);
    qkd014_client_free(c);
}

static void test_broken_connections(void **state)
{
    (void)state;
    qkd014_client *c = client();
    hostile_answer(T.main, H_CLOSE, 0, NULL, NULL);
    EXPECT(c, get_one(c), QKD014_E_TRANSPORT, NULL);
    hostile_answer(T.main, H_GARBAGE, 0, NULL, NULL);
    EXPECT(c, get_one(c), QKD014_E_TRANSPORT, NULL);
    hostile_answer(T.main, H_TRUNCATED, 0, NULL, NULL);
    EXPECT(c, get_one(c), QKD014_E_TRANSPORT, NULL);
    still_works(c);
    qkd014_client_free(c);
}

/* ------------------------------------------------------ HTTP transport */

static const char ka_head[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n";

/* A raw 200 answer: ka_head + extra headers + Content-Length + body. */
static char *raw_answer(const char *extra, const char *body)
{
    size_t n = strlen(ka_head) + strlen(extra) + strlen(body) + 64;
    char *r = malloc(n);
    assert_non_null(r);
    snprintf(r, n, "%s%sContent-Length: %zu\r\n\r\n%s", ka_head, extra, strlen(body), body);
    return r;
}

static char *one_key_body(void)
{
    const char *ids[] = { ID1 };
    return container(ids, 1, 32);
}

static int requests_seen(const hostile_server *s)
{
    hostile_request rq;
    hostile_last((hostile_server *)s, &rq);
    return rq.count;
}

/* Chunked answers (with extensions and trailers) and bodies that end when
 * the server closes are read whole; 1xx interim answers are skipped. */
static void test_chunked_and_close_delimited(void **state)
{
    (void)state;
    qkd014_client *c = client();
    char *body = one_key_body(), raw[1024];
    size_t bl = strlen(body);
    snprintf(raw, sizeof raw, "%sTransfer-Encoding: chunked\r\n\r\n"
             "5;name=value\r\n%.5s\r\n%zx\r\n%s\r\n0\r\nX-Trailer: yes\r\n\r\n",
             ka_head, body, bl - 5, body + 5);
    assert_int_equal(hostile_enqueue_raw(T.main, raw, 0, 0), 0);
    EXPECT(c, get_one(c), QKD014_OK, "ok");
    snprintf(raw, sizeof raw, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n"
             "%s\r\n%s", ka_head, body);
    assert_int_equal(hostile_enqueue_raw(T.main, raw, 0, 0), 0);
    EXPECT(c, get_one(c), QKD014_OK, "ok");
    assert_int_equal(qkd014_last_connects(c), 1);
    free(body);
    qkd014_client_free(c);
}

/* The connection is kept and reused while the server allows it; after
 * Connection: close, or HTTP/1.0 without keep-alive, the next call opens a
 * new one.  A HEAD answer has no body whatever its Content-Length says. */
static void test_keep_alive(void **state)
{
    (void)state;
    qkd014_client *c = client();
    char *body = one_key_body();
    char *ka = raw_answer("", body), *cl = raw_answer("Connection: close\r\n", body);
    static const char head_answer[] = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n";
    const char *plan[] = { ka, ka, head_answer, ka, cl, ka };
    const long connects[] = { 1, 0, 0, 0, 0, 1 };
    for (size_t i = 0; i < 6; i++) {
        /* every answer keeps the server side open: closing is our choice */
        assert_int_equal(hostile_enqueue_raw(T.main, plan[i], 1, 0), 0);
        if (plan[i] == head_answer) {
            long http = 0;
            char *out = NULL;
            size_t len = 1;
            EXPECT(c, qkd014_raw_request(c, "HEAD", "/api/v1/keys/SAE_H2/status", NULL,
                                         NULL, 0, &http, &out, &len, NULL), QKD014_OK, NULL);
            assert_int_equal(http, 200);
            assert_int_equal(len, 0);
            free(out);
        } else
            EXPECT(c, get_one(c), QKD014_OK, "ok");
        if (qkd014_last_connects(c) != connects[i])
            fail_msg("call %zu opened %ld connections, expected %ld", i + 1,
                     qkd014_last_connects(c), connects[i]);
    }
    /* HTTP/1.0 closes unless it says keep-alive */
    char *h10 = raw_answer("", body), *h10ka = raw_answer("Connection: keep-alive\r\n", body);
    memcpy(h10 + 5, "1.0", 3);
    memcpy(h10ka + 5, "1.0", 3);
    const char *plan10[] = { h10ka, h10, ka };
    const long connects10[] = { 0, 0, 1 };
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(hostile_enqueue_raw(T.main, plan10[i], i < 2, 0), 0);
        EXPECT(c, get_one(c), QKD014_OK, "ok");
        assert_int_equal(qkd014_last_connects(c), connects10[i]);
    }
    free(h10);
    free(h10ka);
    free(ka);
    free(cl);
    free(body);
    qkd014_client_free(c);
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* A server that closes a kept connection while it is idle: the next call
 * fails on it before any answer byte and is sent again, once, on a new
 * connection.  A new connection that fails is not retried. */
static void test_idle_close_retry(void **state)
{
    (void)state;
    qkd014_client *c = client();
    char *body = one_key_body(), *ka = raw_answer("", body);
    /* the server closes after this answer although it allowed keep-alive */
    assert_int_equal(hostile_enqueue_raw(T.main, ka, 0, 0), 0);
    EXPECT(c, get_one(c), QKD014_OK, "ok");
    sleep_ms(100);
    int before = requests_seen(T.main);
    assert_int_equal(hostile_enqueue_raw(T.main, ka, 0, 0), 0);
    EXPECT(c, get_one(c), QKD014_OK, "ok");
    assert_int_equal(qkd014_last_connects(c), 1);
    assert_int_equal(requests_seen(T.main), before + 1);
    /* the retry's new connection fails too: no second retry */
    sleep_ms(100);
    hostile_answer(T.main, H_CLOSE, 0, NULL, NULL);
    before = requests_seen(T.main);
    EXPECT(c, get_one(c), QKD014_E_TRANSPORT, NULL);
    assert_int_equal(qkd014_last_connects(c), 1);
    assert_int_equal(requests_seen(T.main), before + 1);
    still_works(c);
    free(ka);
    free(body);
    qkd014_client_free(c);
}

/* A server that answers before reading the whole body (a 413 for a body
 * past its limit) and closes resets the connection under the rest of the
 * request: its answer is still read, and a kept connection the server
 * reset before any answer still fails as a transport error. */
static void test_early_answer(void **state)
{
    (void)state;
    qkd014_client *c = client();
    size_t big = 8u << 20; /* more than the socket buffers hold */
    char *body = malloc(big);
    assert_non_null(body);
    memset(body, 'a', big);
    hostile_answer(T.main, H_EARLY, 413, "application/json",
                   "{\"message\":\"request body too large\"}");
    for (int i = 0; i < 3; i++) {
        long http = 0;
        char *out = NULL;
        size_t len = 0;
        EXPECT(c, qkd014_raw_request(c, "POST", "/api/v1/keys/SAE_H2/enc_keys",
                                     "application/json", body, big, &http, &out, &len,
                                     NULL), QKD014_OK, NULL);
        assert_int_equal(http, 413);
        assert_non_null(strstr(out, "request body too large"));
        free(out);
    }
    free(body);
    hostile_answer(T.main, H_CLOSE, 0, NULL, NULL);
    EXPECT(c, get_one(c), QKD014_E_TRANSPORT, NULL);
    still_works(c);
    qkd014_client_free(c);
}

/* A server that goes silent (after the handshake, in the middle of the
 * head, or before the handshake) makes the call time out on time; a head
 * cut short by a close is a transport error. */
static void test_silent_servers(void **state)
{
    (void)state;
    static const char *const raws[] = {
        "", "HTTP/1.1 200 OK\r\nContent-Type: appl",
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n{",
    };
    qkd014_client *c = client_with((client_opts){ .srv = T.main, .timeout_ms = 700 });
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(hostile_enqueue_raw(T.main, raws[i], 0, 1200), 0);
        double t0 = now_s();
        EXPECT(c, get_one(c), QKD014_E_TRANSPORT, "timed out");
        double took = now_s() - t0;
        if (took < 0.65 || took > 3)
            fail_msg("case %zu: the timed-out call took %.2f s (timeout 0.7 s)", i, took);
        sleep_ms(600); /* until the server lets go of the connection */
    }
    assert_int_equal(hostile_enqueue_raw(T.main, raws[1], 0, 0), 0);
    EXPECT(c, get_one(c), QKD014_E_TRANSPORT, "closed before the answer was complete");
    qkd014_client_free(c);
    /* a listener that never accepts: TCP connects, TLS never answers */
    struct sockaddr_in a = { .sin_family = AF_INET };
    socklen_t al = sizeof a;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 4), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    char url[64], crt[512], key[512], ca[512];
    snprintf(url, sizeof url, "https://127.0.0.1:%d", ntohs(a.sin_port));
    file_of(crt, sizeof crt, "SAE_H1", "crt");
    file_of(key, sizeof key, "SAE_H1", "key");
    file_of(ca, sizeof ca, "kme-ca", "crt");
    qkd014_options opt = { .version = QKD014_OPTIONS_VERSION,
                           .kme_url = url, .cert_file = crt, .key_file = key,
                           .ca_file = ca, .timeout_ms = 700 };
    assert_int_equal(qkd014_client_new(&opt, &c), QKD014_OK);
    double t0 = now_s();
    EXPECT(c, get_one(c), QKD014_E_TRANSPORT, "timed out");
    if (now_s() - t0 < 0.65 || now_s() - t0 > 3)
        fail_msg("the silent handshake took %.2f s (timeout 0.7 s)", now_s() - t0);
    qkd014_client_free(c);
    close(fd);
}

/* Broken HTTP framing is QKD014_E_MALFORMED, and the client recovers. */
static void test_bad_framing(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        { "Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n", "invalid chunk size" },
        { "Transfer-Encoding: chunked\r\n\r\n-1\r\n{}\r\n0\r\n\r\n", "invalid chunk size" },
        { "Transfer-Encoding: chunked\r\n\r\n1\r\n{}\r\n0\r\n\r\n", "longer than its size" },
        { "Transfer-Encoding: chunked\r\n\r\n10000000000000000\r\n", "invalid chunk size" },
        { "Transfer-Encoding: gzip\r\n\r\n{}", "other than chunked" },
        { "Transfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
          "both Content-Length and Transfer-Encoding" },
        { "Content-Length: 2\r\nContent-Length: 3\r\n\r\n{} ", "two Content-Length" },
        { "Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}", "two Content-Length" },
        { "Content-Length: +2\r\n\r\n{}", "invalid Content-Length" },
        { "Content-Length : 2\r\n\r\n{}", "malformed header line" },
        { "X-Folded: a\r\n b\r\nContent-Length: 2\r\n\r\n{}", "line folding" },
    };
    qkd014_client *c = client();
    char raw[512];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(raw, sizeof raw, "%s%s", ka_head, cases[i][0]);
        assert_int_equal(hostile_enqueue_raw(T.main, raw, 0, 0), 0);
        EXPECT(c, get_one(c), QKD014_E_MALFORMED, cases[i][1]);
    }
    /* a head beyond 16 KiB */
    size_t big = 20000;
    char *huge = malloc(big + 256);
    assert_non_null(huge);
    int n = snprintf(huge, 256, "%sX-Big: ", ka_head);
    memset(huge + n, 'a', big);
    snprintf(huge + n + big, 200, "\r\nContent-Length: 2\r\n\r\n{}");
    assert_int_equal(hostile_enqueue_raw(T.main, huge, 0, 0), 0);
    EXPECT(c, get_one(c), QKD014_E_MALFORMED, "headers exceed 16384 bytes");
    free(huge);
    /* not HTTP/1.x at all */
    assert_int_equal(hostile_enqueue_raw(T.main, "HTTP/2 200\r\n\r\n", 0, 0), 0);
    EXPECT(c, get_one(c), QKD014_E_TRANSPORT, "not HTTP");
    still_works(c);
    qkd014_client_free(c);
}

/* ------------------------------------------------------ TLS and KME ID */

static void test_kme_id_mismatch(void **state)
{
    (void)state;
    int before = 0;
    hostile_request rq;
    hostile_answer(T.other, H_CANNED, 200, "application/json", status_ok);
    hostile_last(T.other, &rq);
    before = rq.count;
    qkd014_client *c = client_with((client_opts){ .srv = T.other, .expected_kme_id = "KME-H" });
    qkd014_status *s = NULL;
    EXPECT(c, qkd014_get_status(c, "SAE_H2", &s), QKD014_E_TLS,
           "KME certificate names KME-OTHER, expected KME-H");
    assert_null(s);
    hostile_last(T.other, &rq);
    assert_int_equal(rq.count, before); /* no request went out */
    qkd014_client_free(c);
    /* without an expected ID the same KME is accepted and its ID shown */
    c = client_with((client_opts){ .srv = T.other });
    EXPECT(c, qkd014_get_status(c, "SAE_H2", &s), QKD014_OK, NULL);
    assert_string_equal(qkd014_peer_kme_id(c), "KME-OTHER");
    qkd014_status_free(s);
    qkd014_client_free(c);
}

/* An IP address in the URL is checked against the certificate's IP SANs
 * (scripts/pki gives KME certificates IP:127.0.0.1), and no SNI is sent. */
static void test_ip_url(void **state)
{
    (void)state;
    char url[64], crt[512], key[512], ca[512];
    snprintf(url, sizeof url, "https://127.0.0.1:%d/", hostile_port(T.main));
    file_of(crt, sizeof crt, "SAE_H1", "crt");
    file_of(key, sizeof key, "SAE_H1", "key");
    file_of(ca, sizeof ca, "kme-ca", "crt");
    qkd014_options opt = { .version = QKD014_OPTIONS_VERSION,
                           .kme_url = url, .cert_file = crt, .key_file = key,
                           .ca_file = ca, .expected_kme_id = "KME-H" };
    qkd014_client *c = NULL;
    assert_int_equal(qkd014_client_new(&opt, &c), QKD014_OK);
    qkd014_status *s = NULL;
    answer_json(200, status_ok);
    EXPECT(c, qkd014_get_status(c, "SAE_H2", &s), QKD014_OK, NULL);
    qkd014_status_free(s);
    hostile_request rq;
    hostile_last(T.main, &rq);
    assert_string_equal(rq.target, "/api/v1/keys/SAE_H2/status");
    qkd014_client_free(c);
}

static void test_untrusted_kme(void **state)
{
    (void)state;
    /* the SAE CA did not sign the KME certificate */
    qkd014_client *c = client_with((client_opts){ .srv = T.main, .ca = "sae-ca" });
    answer_json(200, status_ok);
    EXPECT(c, get_one(c), QKD014_E_TLS, NULL);
    qkd014_client_free(c);
}

int main(void)
{
    /* SIGPIPE keeps its default action: the library must not raise it
     * (its sends use MSG_NOSIGNAL) when the KME has gone away. */
    if (qkd014_global_init() != QKD014_OK)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_and_kme_id),
        cmocka_unit_test(test_request_forms),
        cmocka_unit_test(test_malformed_json),
        cmocka_unit_test(test_wrong_count),
        cmocka_unit_test(test_wrong_size),
        cmocka_unit_test(test_bad_ids),
        cmocka_unit_test(test_bad_status),
        cmocka_unit_test(test_wrong_content_type),
        cmocka_unit_test(test_huge_bodies),
        cmocka_unit_test(test_slow_body),
        cmocka_unit_test(test_error_statuses),
        cmocka_unit_test(test_broken_connections),
        cmocka_unit_test(test_chunked_and_close_delimited),
        cmocka_unit_test(test_keep_alive),
        cmocka_unit_test(test_idle_close_retry),
        cmocka_unit_test(test_early_answer),
        cmocka_unit_test(test_silent_servers),
        cmocka_unit_test(test_bad_framing),
        cmocka_unit_test(test_kme_id_mismatch),
        cmocka_unit_test(test_ip_url),
        cmocka_unit_test(test_untrusted_kme),
    };
    int r = cmocka_run_group_tests_name("libqkd014 vs hostile KME", tests, group_setup,
                                        group_teardown);
    qkd014_global_cleanup();
    return r;
}
