/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_relay.c - trusted-node relay on the real testbed (docs/network.md):
 * three or four KMEs, one link simulator per link, real mTLS on loopback,
 * SAEs through libqkd014.  The topology comes from testbed.env
 * (TESTBED_TOPOLOGY); tests/system/meson.build runs this program once on
 * a chain (A - B - C) and once on a ring (A - B - C - D - A).
 *
 * Chain:
 *   - A1 -> C1 and C1 -> A1, one key and a batch: the slave gets exactly
 *     the master's bytes, once; status names KME-C as the target, the path
 *     and the first hop's link;
 *   - the trusted node's /metrics count the relays it carried, /health and
 *     the status page show both links and the network;
 *   - a network map that contradicts a KME's own sections is refused by
 *     `qkd-kme --check`; one whose version differs from a running
 *     neighbour's makes the KME's start fail, naming both versions;
 *   - the one-link behaviour holds over two hops: a second dec_keys of a
 *     key is refused, an SAE that is not the slave gets 401, a bad size
 *     400, multicast to slaves behind different KMEs 400;
 *   - hostile relays from a linked KME (its real certificate): a block the
 *     receiver never had, the same again, a path that does not come from
 *     the caller, a master or slaves behind the wrong KMEs, a KME outside
 *     the map, the sealed form at hop 1, broken JSON: each refused with its
 *     problem type, nothing reaches the last KME;
 *   - a slave at its limit of unfetched bits at KME-C: the master gets 503
 *     naming it, and keys again once the slave fetched;
 *   - the B-C link stopped and B's key towards C spent: A's status towards
 *     C1 follows what B last told (the second hop), relays give 503, and
 *     work again once the link is back;
 *   - a relay whose cipher is changed on the way (the intermediate KME's
 *     test hook flips a bit) is refused by the last KME's one-time tag:
 *     the master gets 503 and nothing, and relays work again after;
 *   - kill -9 of the trusted node KME-B while masters on A and C get keys
 *     both ways: after its restart every key a master got is fetched by
 *     its slave with the same bytes, and no key ID was handed out twice;
 *     the same with kill -9 of KME-A and then of KME-C (each the origin of
 *     one direction and the last KME of the other).
 * Ring:
 *   - KME-B hung (SIGSTOP): A1 -> C1 through D within the same bound, the
 *     first path having had half of the time;
 *   - KME-B stopped: A1 -> C1 goes through D, each call within the peer
 *     timeout (2 s + 1 s slack, x3 under sanitizers); KME-D stopped too:
 *     503 within the same bound;
 *   - the A-B link's simulator stopped: relays go on from the key A and B
 *     hold, and when A's stock towards B is spent they go through D.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <jansson.h>

#include "check.h"
#include "qkd014.h"
#include "testbed_env.h"

static struct {
    char *dir, *script, *ca, *topology, *kme_bin;
    char *url[4];                  /* KME-A .. KME-D */
    tb_sae a1, a2, b1, c1, c2;
    long slack_ms;                 /* 1 s, x3 under sanitizers */
} TB;

static qkd014_client *client(const char *url, const tb_sae *s)
{
    qkd014_options o = QKD014_OPTIONS_INIT;
    o.kme_url = url;
    o.cert_file = s->cert;
    o.key_file = s->key;
    o.ca_file = TB.ca;
    o.timeout_ms = 15000;
    qkd014_client *c = NULL;
    if (qkd014_client_new(&o, &c) != QKD014_OK)
        fail_msg("cannot make a client for %s at %s", s->id, url);
    return c;
}

/* n keys of bits from master (at url) for slave; the code. */
static qkd014_code get_keys(qkd014_client *m, const char *slave, int n, int bits, qkd014_keys **out)
{
    qkd014_key_request r = QKD014_KEY_REQUEST_INIT;
    r.number = n;
    r.size = bits;
    *out = NULL;
    return qkd014_get_key(m, slave, &r, out);
}

/* The slave fetches every key of k from master and gets the same bytes. */
static void fetch_same(qkd014_client *s, const char *master, const qkd014_keys *k)
{
    const char *ids[1024];
    for (size_t i = 0; i < k->n; i++)
        ids[i] = k->keys[i].key_id;
    qkd014_keys *got = NULL;
    qkd014_code rc = qkd014_get_key_with_ids(s, master, ids, k->n, &got);
    if (rc != QKD014_OK)
        fail_msg("dec_keys of %zu keys: %s: %s", k->n, qkd014_strerror(rc), qkd014_errmsg(s));
    for (size_t i = 0; i < k->n; i++) {
        CHECK(got->keys[i].key_len == k->keys[i].key_len, "key %zu: length differs", i);
        CHECK(memcmp(got->keys[i].key, k->keys[i].key, k->keys[i].key_len) == 0,
              "key %zu: the slave got other bytes than the master", i);
    }
    qkd014_keys_free(got);
}

static void relay_round(const char *murl, const tb_sae *m, const char *surl, const tb_sae *s,
                        int n)
{
    qkd014_client *mc = client(murl, m), *sc = client(surl, s);
    qkd014_keys *k = NULL;
    qkd014_code rc = get_keys(mc, s->id, n, 256, &k);
    if (rc != QKD014_OK)
        fail_msg("enc_keys %s -> %s (%d keys): %s: %s", m->id, s->id, n, qkd014_strerror(rc),
                 qkd014_errmsg(mc));
    CHECK(k->n == (size_t)n, "%zu keys instead of %d", k->n, n);
    fetch_same(sc, m->id, k);
    qkd014_keys_free(k);
    qkd014_client_free(mc);
    qkd014_client_free(sc);
}

/* ---- chain ---------------------------------------------------------------- */

static void test_chain_both_ways(void **state)
{
    (void)state;
    relay_round(TB.url[0], &TB.a1, TB.url[2], &TB.c1, 1);
    relay_round(TB.url[0], &TB.a1, TB.url[2], &TB.c1, 16);
    relay_round(TB.url[2], &TB.c1, TB.url[0], &TB.a1, 1);
    relay_round(TB.url[2], &TB.c1, TB.url[0], &TB.a1, 16);
    qkd014_client *mc = client(TB.url[0], &TB.a1);
    qkd014_status *st = NULL;
    CHECK(qkd014_get_status(mc, TB.c1.id, &st) == QKD014_OK, "status A1 -> C1: %s", qkd014_errmsg(mc));
    CHECK(strcmp(st->target_kme_id, "KME-C") == 0, "target_KME_ID %s", st->target_kme_id);
    CHECK(st->stored_key_count > 0, "no key can be relayed to C1 now");
    qkd014_status_free(st);
    qkd014_client_free(mc);
}

static size_t on_retry_after(char *p, size_t sz, size_t n, void *ud)
{
    static const char name[] = "Retry-After:";
    if (sz * n > sizeof name && strncasecmp(p, name, sizeof name - 1) == 0)
        *(long *)ud = strtol(p + sizeof name - 1, NULL, 10);
    return sz * n;
}

/* One HTTP request by hand, where libqkd014 hides what a test looks at:
 * method url with the client certificate cert/key (NULL: none) trusting ca
 * (NULL: plain HTTP), a JSON body (NULL: none).  The HTTP status; the
 * answer's body into *out (free it; "" when empty) and, when retry_after
 * is given, its Retry-After header (-1: none). */
static long http_call(const char *method, const char *url, const char *cert, const char *key,
                      const char *ca, const char *body, char **out, long *retry_after)
{
    tb_buf buf = { 0 };
    long code = 0;
    CURL *h = curl_easy_init();
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROXY, "");
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    if (ca)
        curl_easy_setopt(h, CURLOPT_CAINFO, ca);
    if (cert) {
        curl_easy_setopt(h, CURLOPT_SSLCERT, cert);
        curl_easy_setopt(h, CURLOPT_SSLKEY, key);
    }
    if (body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    }
    if (retry_after) {
        *retry_after = -1;
        curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_retry_after);
        curl_easy_setopt(h, CURLOPT_HEADERDATA, retry_after);
    }
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, tb_buf_append);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &buf);
    CURLcode rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(h);
    curl_slist_free_all(hdr);
    CHECK(rc == CURLE_OK, "%s %s: %s", method, url, curl_easy_strerror(rc));
    *out = buf.data ? buf.data : strdup("");
    return code;
}

/* The raw status answer A1 -> C1 at KME-A (libqkd014 does not hand out
 * status_extension). */
static json_t *raw_status(void)
{
    char url[512], *text;
    snprintf(url, sizeof url, "%s/api/v1/keys/%s/status", TB.url[0], TB.c1.id);
    long code = http_call("GET", url, TB.a1.cert, TB.a1.key, TB.ca, NULL, &text, NULL);
    CHECK(code == 200, "status: HTTP %ld", code);
    json_t *j = json_loads(text, 0, NULL);
    free(text);
    CHECK(j != NULL, "status: not JSON");
    return j;
}

static void test_chain_status_path(void **state)
{
    (void)state;
    json_t *j = raw_status();
    json_t *ext = json_object_get(j, "status_extension");
    json_t *path = json_object_get(ext, "path");
    CHECK(strcmp(json_string_value(json_object_get(j, "target_KME_ID")), "KME-C") == 0, "target");
    CHECK(json_array_size(path) == 3, "status_extension.path has %zu KMEs", json_array_size(path));
    static const char *const want[] = { "KME-A", "KME-B", "KME-C" };
    for (size_t i = 0; i < 3; i++)
        CHECK(strcmp(json_string_value(json_array_get(path, i)), want[i]) == 0, "path[%zu]", i);
    CHECK(json_is_object(json_object_get(ext, "link")), "status_extension.link is missing");
    CHECK(json_integer_value(json_object_get(j, "stored_key_count")) > 0, "nothing to deliver");
    json_decref(j);
}

/* GET url (the plain-HTTP admin listener on loopback) into a string. */
static char *admin_get(const char *url)
{
    char *text;
    long code = http_call("GET", url, NULL, NULL, NULL, NULL, &text, NULL);
    CHECK(code == 200, "GET %s: HTTP %ld", url, code);
    return text;
}

/* The trusted node's operations view: its metrics count the relays it
 * carried, /health lists both links, the status page has the network. */
static void test_chain_operations(void **state)
{
    (void)state;
    char *admin = testbed_env_value(TB.dir, "KME_B_ADMIN_URL"), url[512];
    CHECK(admin != NULL, "testbed.env lacks KME_B_ADMIN_URL");
    snprintf(url, sizeof url, "%s/metrics", admin);
    char *m = admin_get(url);
    const char *line = strstr(m, "qkd_kme_relays_total{role=\"trusted_node\",result=\"delivered\"} ");
    CHECK(line && strtol(line + strlen("qkd_kme_relays_total{role=\"trusted_node\",result=\"delivered\"} "),
                         NULL, 10) > 0, "KME-B counts no relayed key delivered");
    CHECK(strstr(m, "qkd_kme_pool_bytes{peer=\"KME-A\",owner=\"self\"}")
          && strstr(m, "qkd_kme_pool_bytes{peer=\"KME-C\",owner=\"self\"}"), "pools of both links");
    free(m);
    snprintf(url, sizeof url, "%s/health", admin);
    char *h = admin_get(url);
    CHECK(strstr(h, "\"id\":\"LINK-AB\"") && strstr(h, "\"id\":\"LINK-BC\""), "/health: %s", h);
    free(h);
    snprintf(url, sizeof url, "%s/", admin);
    char *page = admin_get(url);
    CHECK(strstr(page, "map version 1: 3 KMEs, 2 links") && strstr(page, "data-link=\"LINK-BC\""),
          "the status page lacks the network or the B-C link");
    free(page);
    free(admin);
}

/* DIR/NAME: the text of from with `what` replaced by `with` (once). */
static char *write_edited(const char *from, const char *name, const char *what, const char *with)
{
    FILE *f = fopen(from, "r");
    CHECK(f != NULL, "cannot read %s", from);
    static char text[65536];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    char *at = strstr(text, what);
    CHECK(at != NULL, "%s lacks '%s'", from, what);
    char *path = malloc(strlen(TB.dir) + strlen(name) + 2);
    sprintf(path, "%s/%s", TB.dir, name);
    f = fopen(path, "w");
    CHECK(f != NULL, "cannot write %s", path);
    fprintf(f, "%.*s%s%s", (int)(at - text), text, with, at + strlen(what));
    fclose(f);
    return path;
}

static void test_chain_map_checks(void **state)
{
    (void)state;
    char map[1024], *conf_a = testbed_env_value(TB.dir, "KME_A_CONF"), out[1100];
    snprintf(map, sizeof map, "%s/network.map", TB.dir);
    snprintf(out, sizeof out, "%s/map-check.out", TB.dir);
    /* the map gives KME-A one SAE less than its [saes] local */
    char *bad = write_edited(map, "map-bad.map", "SAE_A1 SAE_A2 SAE_A3", "SAE_A1 SAE_A2");
    char *bad_conf = write_edited(conf_a, "kme-a-badmap.conf", map, bad);
    int rc = tb_run("%s --check --config %s >%s 2>&1", TB.kme_bin, bad_conf, out);
    CHECK(rc != 0, "qkd-kme --check took a map that contradicts [saes] local");
    CHECK(tb_count_lines(out, "network_map") == 1 && tb_count_lines(out, "SAE_A3") == 1,
          "the refusal does not name the map and SAE_A3 (see %s)", out);
    /* version 2 at KME-A while B runs version 1: the start fails */
    char *v2 = write_edited(map, "map-v2.map", "version = 1", "version = 2");
    char *v2_conf = write_edited(conf_a, "kme-a-v2.conf", map, v2);
    CHECK(tb_run("%s --check --config %s >/dev/null 2>&1", TB.kme_bin, v2_conf) == 0,
          "the version-2 map alone is fine");
    CHECK(tb_run("%s stop %s kme-a >/dev/null 2>&1", TB.script, TB.dir) == 0, "stop KME-A");
    rc = tb_run("timeout 20 %s --config %s >%s 2>&1", TB.kme_bin, v2_conf, out);
    CHECK(rc != 0 && rc != 124 << 8, "KME-A started with map version 2 beside KME-B's 1 (%d)", rc);
    CHECK(tb_count_lines(out, "version 2 but neighbour KME KME-B runs with 1") == 1,
          "the refusal does not name both versions (see %s)", out);
    CHECK(tb_run("%s start %s kme-a >/dev/null 2>&1", TB.script, TB.dir) == 0, "restart KME-A");
    relay_round(TB.url[0], &TB.a1, TB.url[2], &TB.c1, 1);
    free(bad);
    free(bad_conf);
    free(v2);
    free(v2_conf);
    free(conf_a);
}

/* status master -> slave at url: stored_key_count (or -1). */
static long stored_keys(const char *url, const tb_sae *m, const char *slave)
{
    qkd014_client *c = client(url, m);
    qkd014_status *st = NULL;
    long n = qkd014_get_status(c, slave, &st) == QKD014_OK ? st->stored_key_count : -1;
    qkd014_status_free(st);
    qkd014_client_free(c);
    return n;
}

/* The B-C link stops and B's key towards C is spent: A's status towards C1
 * follows what B told it (its second hop), and relays A1 -> C1 fail with
 * 503 until the link is back. */
static void test_chain_second_hop_dry(void **state)
{
    (void)state;
    long before = stored_keys(TB.url[0], &TB.a1, TB.c1.id);
    CHECK(tb_run("%s stop %s link-bc >/dev/null 2>&1", TB.script, TB.dir) == 0, "stop link-bc");
    qkd014_client *b1 = client(TB.url[1], &TB.b1), *c1 = client(TB.url[2], &TB.c1);
    for (int i = 0; i < 400 && stored_keys(TB.url[1], &TB.b1, TB.c1.id) >= 1024; i++) {
        qkd014_keys *k = NULL;
        CHECK(get_keys(b1, TB.c1.id, 1024, 256, &k) == QKD014_OK, "B1 -> C1: %s", qkd014_errmsg(b1));
        fetch_same(c1, TB.b1.id, k);
        qkd014_keys_free(k);
    }
    long left_b = stored_keys(TB.url[1], &TB.b1, TB.c1.id);
    CHECK(left_b >= 0 && left_b < 1024, "B's stock towards C did not run out (%ld keys)", left_b);
    tb_pause_ms(2500); /* the probe asks B once a second */
    long now = stored_keys(TB.url[0], &TB.a1, TB.c1.id);
    CHECK(now <= left_b && now < before, "status A1 -> C1 says %ld keys (before %ld), B holds %ld "
          "towards C", now, before, left_b);
    qkd014_client *a1 = client(TB.url[0], &TB.a1);
    qkd014_keys *k = NULL;
    qkd014_code rc = get_keys(a1, TB.c1.id, 1024, 256, &k);
    CHECK(rc == QKD014_E_UNAVAILABLE, "A1 -> C1 with B-C dry: %s", qkd014_strerror(rc));
    CHECK(tb_run("%s start %s link-bc >/dev/null 2>&1", TB.script, TB.dir) == 0, "start link-bc");
    for (int i = 0; i < 100 && stored_keys(TB.url[1], &TB.b1, TB.c1.id) < 1024; i++)
        tb_pause_ms(100);
    relay_round(TB.url[0], &TB.a1, TB.url[2], &TB.c1, 4);
    qkd014_client_free(a1);
    qkd014_client_free(b1);
    qkd014_client_free(c1);
}

/* method path at KME-B's peer API as KME-A (the testbed's KME certificate);
 * the HTTP status, the body into *body (a new reference, may be NULL). */
static long as_kme_a(const char *method, const char *path, const char *req, json_t **body)
{
    char url[512], cert[1024], key[1024], ca[1024], *text;
    char *base = testbed_env_value(TB.dir, "KME_B_PEER_URL");
    CHECK(base != NULL, "testbed.env lacks KME_B_PEER_URL");
    snprintf(url, sizeof url, "%s%s", base, path);
    snprintf(cert, sizeof cert, "%s/pki/KME-A.crt", TB.dir);
    snprintf(key, sizeof key, "%s/pki/KME-A.key", TB.dir);
    snprintf(ca, sizeof ca, "%s/pki/kme-ca.crt", TB.dir);
    free(base);
    long code = http_call(method, url, cert, key, ca, req, &text, NULL);
    *body = json_loads(text, 0, NULL);
    free(text);
    return code;
}

#define RELAY_HEAD "{\"reservation_ID\":\"018f0000-0000-7000-8000-0000000000aa\"," \
                   "\"expires\":4102444800000,\"timeout_ms\":1500,"
#define ONE_KEY "\"keys\":[{\"key_ID\":\"11111111-1111-4111-8111-1111111111aa\"," \
                "\"segments\":[[\"0123456789abcdef\",0,32]]}]"

/* Hostile relays from a linked KME: each is refused with its problem type
 * and nothing reaches KME-C (its slave cannot fetch the named key). */
static void test_chain_hostile_relays(void **state)
{
    (void)state;
    json_t *b = NULL;
    CHECK(as_kme_a("GET", "/peer/v1/map", NULL, &b) == 200, "GET /peer/v1/map");
    CHECK(json_integer_value(json_object_get(b, "map_version")) == 1, "map_version");
    json_t *stock = json_object_get(b, "stock");
    CHECK(json_array_size(stock) == 2, "KME-B reports its two links");
    json_decref(b);
    static const struct {
        const char *body, *type;
        long http;
    } cases[] = {
        /* a block KME-B never had: nothing is relayed; the same again (a replay) */
        { RELAY_HEAD "\"master_SAE_ID\":\"SAE_A1\",\"slave_SAE_IDs\":[\"SAE_C1\"],"
          "\"path\":[\"KME-A\",\"KME-B\",\"KME-C\"],\"hop\":1," ONE_KEY "}", "segments-unusable", 409 },
        { RELAY_HEAD "\"master_SAE_ID\":\"SAE_A1\",\"slave_SAE_IDs\":[\"SAE_C1\"],"
          "\"path\":[\"KME-A\",\"KME-B\",\"KME-C\"],\"hop\":1," ONE_KEY "}", "segments-unusable", 409 },
        /* the path does not come from the caller */
        { RELAY_HEAD "\"master_SAE_ID\":\"SAE_C1\",\"slave_SAE_IDs\":[\"SAE_A1\"],"
          "\"path\":[\"KME-C\",\"KME-B\",\"KME-A\"],\"hop\":1," ONE_KEY "}", "bad-request", 400 },
        /* a master that is not behind the path's first KME */
        { RELAY_HEAD "\"master_SAE_ID\":\"SAE_B1\",\"slave_SAE_IDs\":[\"SAE_C1\"],"
          "\"path\":[\"KME-A\",\"KME-B\",\"KME-C\"],\"hop\":1," ONE_KEY "}", "bad-request", 400 },
        /* slaves not behind the last KME */
        { RELAY_HEAD "\"master_SAE_ID\":\"SAE_A1\",\"slave_SAE_IDs\":[\"SAE_B2\"],"
          "\"path\":[\"KME-A\",\"KME-B\",\"KME-C\"],\"hop\":1," ONE_KEY "}", "bad-request", 400 },
        /* a KME outside the map */
        { RELAY_HEAD "\"master_SAE_ID\":\"SAE_A1\",\"slave_SAE_IDs\":[\"SAE_C1\"],"
          "\"path\":[\"KME-A\",\"KME-B\",\"KME-Z\"],\"hop\":1," ONE_KEY "}", "bad-request", 400 },
        /* the sealed form at hop 1 */
        { RELAY_HEAD "\"master_SAE_ID\":\"SAE_A1\",\"slave_SAE_IDs\":[\"SAE_C1\"],"
          "\"path\":[\"KME-A\",\"KME-B\",\"KME-C\"],\"hop\":1," ONE_KEY ",\"pad\":[],"
          "\"cipher\":\"\",\"tag\":\"\"}", "bad-request", 400 },
        /* not JSON at all */
        { "{\"reservation_ID\":", "bad-request", 400 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        long http = as_kme_a("POST", "/peer/v1/relay", cases[i].body, &b);
        const char *type = json_string_value(json_object_get(b, "type"));
        CHECK(http == cases[i].http && type && strcmp(type, cases[i].type) == 0,
              "case %zu: HTTP %ld type %s, expected %ld %s", i, http, type ? type : "-",
              cases[i].http, cases[i].type);
        json_decref(b);
    }
    /* nothing arrived at KME-C */
    qkd014_client *c1 = client(TB.url[2], &TB.c1);
    const char *id = "11111111-1111-4111-8111-1111111111aa";
    qkd014_keys *got = NULL;
    CHECK(qkd014_get_key_with_ids(c1, TB.a1.id, &id, 1, &got) != QKD014_OK,
          "a refused relay left a key at KME-C");
    qkd014_client_free(c1);
}

/* GET enc_keys A1 -> C1 at KME-A by hand: the HTTP status, the message
 * into msg and the Retry-After header (-1: none). */
static long raw_enc(int number, int size, char *msg, size_t msglen, long *retry_after)
{
    char url[512], *text;
    snprintf(url, sizeof url, "%s/api/v1/keys/%s/enc_keys?number=%d&size=%d", TB.url[0], TB.c1.id,
             number, size);
    long code = http_call("GET", url, TB.a1.cert, TB.a1.key, TB.ca, NULL, &text, retry_after);
    json_t *j = json_loads(text, 0, NULL);
    const char *m = json_string_value(json_object_get(j, "message"));
    snprintf(msg, msglen, "%s", m ? m : "");
    json_decref(j);
    free(text);
    return code;
}

/* The slave's KME holds its limit of unfetched bits for it (meson.build
 * sets sae_unfetched_bits = 1 Mibit): the relay is refused there, the
 * refusal travels back, and the master gets 503 with the limit's reason;
 * once the slave fetched, relays go again. */
static void test_chain_slave_limit(void **state)
{
    (void)state;
    qkd014_client *a1 = client(TB.url[0], &TB.a1), *c1 = client(TB.url[2], &TB.c1);
    qkd014_keys *held = NULL, *k = NULL;
    CHECK(get_keys(a1, TB.c1.id, 12, 65536, &held) == QKD014_OK, "A1 -> C1, 12 x 64 kbit: %s",
          qkd014_errmsg(a1));
    char msg[512];
    long retry = -1;
    long http = raw_enc(8, 65536, msg, sizeof msg, &retry); /* 1.25 Mibit held: past 1 Mibit */
    CHECK(http == 503 && strstr(msg, "unfetched") && retry >= 1,
          "past the slave's limit at KME-C: HTTP %ld, Retry-After %ld, '%s'", http, retry, msg);
    fetch_same(c1, TB.a1.id, held);
    qkd014_keys_free(held);
    CHECK(get_keys(a1, TB.c1.id, 8, 65536, &k) == QKD014_OK, "after the fetch: %s", qkd014_errmsg(a1));
    fetch_same(c1, TB.a1.id, k);
    qkd014_keys_free(k);
    qkd014_client_free(a1);
    qkd014_client_free(c1);
}

static void test_chain_conformance(void **state)
{
    (void)state;
    qkd014_client *a1 = client(TB.url[0], &TB.a1), *c1 = client(TB.url[2], &TB.c1),
                  *c2 = client(TB.url[2], &TB.c2);
    qkd014_keys *k = NULL, *got = NULL;
    CHECK(get_keys(a1, TB.c1.id, 1, 256, &k) == QKD014_OK, "enc_keys: %s", qkd014_errmsg(a1));
    const char *id = k->keys[0].key_id;
    /* not the slave: 401, and the key stays for the slave */
    CHECK(qkd014_get_key_with_ids(c2, TB.a1.id, &id, 1, &got) == QKD014_E_UNAUTHORIZED,
          "dec_keys by C2, not a slave: %s", qkd014_errmsg(c2));
    fetch_same(c1, TB.a1.id, k);
    /* once only */
    qkd014_code rc = qkd014_get_key_with_ids(c1, TB.a1.id, &id, 1, &got);
    CHECK(rc != QKD014_OK, "a relayed key was delivered twice");
    qkd014_keys_free(k);
    /* a size that is no multiple of 8 */
    CHECK(get_keys(a1, TB.c1.id, 1, 250, &k) == QKD014_E_BAD_REQUEST, "size 250: %s", qkd014_errmsg(a1));
    /* multicast to slaves behind two KMEs */
    qkd014_key_request r = QKD014_KEY_REQUEST_INIT;
    const char *more[] = { TB.b1.id };
    r.additional_slaves = more;
    r.n_additional = 1;
    rc = qkd014_get_key(a1, TB.c1.id, &r, &k);
    CHECK(rc == QKD014_E_BAD_REQUEST && strstr(qkd014_errmsg(a1), "multicast"),
          "multicast to C1 and B1: %s: %s", qkd014_strerror(rc), qkd014_errmsg(a1));
    /* multicast to two slaves behind KME-C goes */
    const char *c2id[] = { TB.c2.id };
    r.additional_slaves = c2id;
    CHECK(qkd014_get_key(a1, TB.c1.id, &r, &k) == QKD014_OK, "multicast to C1 and C2: %s",
          qkd014_errmsg(a1));
    fetch_same(c1, TB.a1.id, k);
    fetch_same(c2, TB.a1.id, k);
    qkd014_keys_free(k);
    qkd014_client_free(a1);
    qkd014_client_free(c1);
    qkd014_client_free(c2);
}

static int restart_kme_b(const char *env)
{
    return tb_run("%s stop %s kme-b >/dev/null 2>&1 && %s %s start %s kme-b >/dev/null 2>&1",
                  TB.script, TB.dir, env, TB.script, TB.dir);
}

static void test_chain_tampered(void **state)
{
    (void)state;
    char log_c[1024];
    snprintf(log_c, sizeof log_c, "%s/kme-c.log", TB.dir); /* scripts/testbed's log of KME-C */
    int before = tb_count_lines(log_c, "did not verify");
    CHECK(restart_kme_b("QKD_KME_TEST_TAMPER_RELAY=1") == 0, "restart KME-B with the tamper hook");
    qkd014_client *a1 = client(TB.url[0], &TB.a1);
    qkd014_keys *k = NULL;
    qkd014_code rc = get_keys(a1, TB.c1.id, 1, 256, &k);
    CHECK(rc == QKD014_E_UNAVAILABLE, "a tampered relay gave the master keys: %s", qkd014_strerror(rc));
    CHECK(tb_count_lines(log_c, "did not verify") > before, "KME-C did not log the bad tag");
    /* the neighbour pair is not affected */
    relay_round(TB.url[0], &TB.a1, TB.url[1], &TB.b1, 1);
    CHECK(restart_kme_b("") == 0, "restart KME-B without the hook");
    relay_round(TB.url[0], &TB.a1, TB.url[2], &TB.c1, 4);
    qkd014_client_free(a1);
}

/* Load both ways while KME-B is killed: every key a master got is checked
 * afterwards. */
#define LOADERS 4
#define MAX_GOT 4096
typedef struct loader {
    const char *murl;
    const tb_sae *m, *s;
    volatile bool *stop;
    char ids[MAX_GOT][QKD014_KEY_ID_LEN + 1];
    uint8_t keys[MAX_GOT][32];
    size_t n;
    unsigned failed;
} loader;

static void *load_main(void *arg)
{
    loader *l = arg;
    qkd014_client *c = client(l->murl, l->m);
    while (!*l->stop && l->n < MAX_GOT) {
        qkd014_keys *k = NULL;
        if (get_keys(c, l->s->id, 1, 256, &k) != QKD014_OK) {
            l->failed++;
            tb_pause_ms(20);
            continue;
        }
        memcpy(l->ids[l->n], k->keys[0].key_id, sizeof l->ids[0]);
        memcpy(l->keys[l->n], k->keys[0].key, 32);
        l->n++;
        qkd014_keys_free(k);
    }
    qkd014_client_free(c);
    return NULL;
}

static int cmp_id(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* Load both ways (A1 -> C1, C1 -> A1) while KME `victim` is killed with
 * SIGKILL and restarted; then no key ID was handed out twice and every key
 * a master got is fetched by its slave with the same bytes. */
static void kill_under_load(const char *victim, const char *pid_var)
{
    volatile bool stop = false;
    static loader L[LOADERS];
    pthread_t t[LOADERS];
    for (int i = 0; i < LOADERS; i++) {
        bool ac = i % 2 == 0;
        L[i] = (loader){ .murl = ac ? TB.url[0] : TB.url[2], .m = ac ? &TB.a1 : &TB.c1,
                         .s = ac ? &TB.c1 : &TB.a1, .stop = &stop };
        CHECK(pthread_create(&t[i], NULL, load_main, &L[i]) == 0, "thread");
    }
    tb_pause_ms(1000);
    char *pid = testbed_env_value(TB.dir, pid_var);
    CHECK(pid && tb_run("kill -9 %s", pid) == 0, "kill -9 %s", victim);
    free(pid);
    tb_pause_ms(700);
    CHECK(tb_run("%s start %s %s >/dev/null 2>&1", TB.script, TB.dir, victim) == 0, "restart %s",
          victim);
    tb_pause_ms(1500);
    stop = true;
    for (int i = 0; i < LOADERS; i++)
        pthread_join(t[i], NULL);
    /* no key ID twice, across both directions */
    size_t total = 0;
    for (int i = 0; i < LOADERS; i++)
        total += L[i].n;
    char (*all)[QKD014_KEY_ID_LEN + 1] = calloc(total ? total : 1, sizeof *all);
    size_t k = 0;
    for (int i = 0; i < LOADERS; i++)
        for (size_t j = 0; j < L[i].n; j++)
            memcpy(all[k++], L[i].ids[j], sizeof all[0]);
    qsort(all, total, sizeof all[0], cmp_id);
    for (size_t i = 1; i < total; i++)
        CHECK(strcmp(all[i - 1], all[i]) != 0, "key ID %s handed out twice", all[i]);
    free(all);
    CHECK(total > 0, "no key was delivered at all");
    /* every key a master got: its slave gets the same bytes (the replay
     * threads may still be settling: a few tries) */
    for (int i = 0; i < LOADERS; i++) {
        qkd014_client *sc = client(L[i].murl == TB.url[0] ? TB.url[2] : TB.url[0], L[i].s);
        for (size_t j = 0; j < L[i].n; j++) {
            const char *id = L[i].ids[j];
            qkd014_keys *got = NULL;
            qkd014_code rc = QKD014_E_UNAVAILABLE;
            for (int tries = 0; tries < 20 && rc != QKD014_OK; tries++) {
                rc = qkd014_get_key_with_ids(sc, L[i].m->id, &id, 1, &got);
                if (rc != QKD014_OK)
                    tb_pause_ms(250);
            }
            if (rc != QKD014_OK)
                fail_msg("%s never got key %s its master %s got: %s", L[i].s->id, id, L[i].m->id,
                         qkd014_errmsg(sc));
            CHECK(memcmp(got->keys[0].key, L[i].keys[j], 32) == 0, "key %s: other bytes at the slave", id);
            qkd014_keys_free(got);
        }
        qkd014_client_free(sc);
    }
    print_message("kill -9 of %s: %zu keys delivered both ways, all fetched with the same bytes\n",
                  victim, total);
}

static void test_chain_kill_trusted_node(void **state)
{
    (void)state;
    kill_under_load("kme-b", "KME_B_PID");
}

/* The two ends of the path: the origin of one direction is the last KME
 * of the other. */
static void test_chain_kill_ends(void **state)
{
    (void)state;
    kill_under_load("kme-a", "KME_A_PID");
    kill_under_load("kme-c", "KME_C_PID");
}

/* ---- ring ----------------------------------------------------------------- */

static long timed_relay(qkd014_code *rc)
{
    qkd014_client *a1 = client(TB.url[0], &TB.a1);
    qkd014_keys *k = NULL;
    long t0 = tb_now_ms();
    *rc = get_keys(a1, TB.c1.id, 1, 256, &k);
    long dt = tb_now_ms() - t0;
    if (*rc == QKD014_OK) {
        qkd014_client *c1 = client(TB.url[2], &TB.c1);
        fetch_same(c1, TB.a1.id, k);
        qkd014_client_free(c1);
    }
    qkd014_keys_free(k);
    qkd014_client_free(a1);
    return dt;
}

/* KME-B hangs (SIGSTOP: it accepts connections and answers nothing): the
 * first path gets half the time, so A1 -> C1 still goes through D within
 * the peer timeout. */
static void test_ring_hung_node(void **state)
{
    (void)state;
    long bound = 2000 + TB.slack_ms;
    qkd014_code rc;
    char *pid_b = testbed_env_value(TB.dir, "KME_B_PID");
    CHECK(pid_b && tb_run("kill -STOP %s", pid_b) == 0, "SIGSTOP KME-B");
    for (int i = 0; i < 3; i++) {
        long dt = timed_relay(&rc);
        if (rc != QKD014_OK || dt > bound)
            tb_run("kill -CONT %s", pid_b);
        CHECK(rc == QKD014_OK, "A1 -> C1 with KME-B hung: %s", qkd014_strerror(rc));
        CHECK(dt <= bound, "A1 -> C1 with KME-B hung took %ld ms", dt);
    }
    CHECK(tb_run("kill -CONT %s", pid_b) == 0, "SIGCONT KME-B");
    free(pid_b);
    tb_pause_ms(2500); /* A's probe sees B answer again */
    long dt = timed_relay(&rc);
    CHECK(rc == QKD014_OK && dt <= bound, "A1 -> C1 after B resumed: %s, %ld ms",
          qkd014_strerror(rc), dt);
}

static void test_ring_failover(void **state)
{
    (void)state;
    long bound = 2000 + TB.slack_ms;
    qkd014_code rc;
    CHECK(tb_run("%s stop %s kme-b >/dev/null 2>&1", TB.script, TB.dir) == 0, "stop KME-B");
    for (int i = 0; i < 3; i++) {
        long dt = timed_relay(&rc);
        CHECK(rc == QKD014_OK, "A1 -> C1 with KME-B down: %s", qkd014_strerror(rc));
        CHECK(dt <= bound, "A1 -> C1 with KME-B down took %ld ms", dt);
    }
    CHECK(tb_run("%s stop %s kme-d >/dev/null 2>&1", TB.script, TB.dir) == 0, "stop KME-D");
    long dt = timed_relay(&rc);
    CHECK(rc == QKD014_E_UNAVAILABLE, "A1 -> C1 with B and D down: %s", qkd014_strerror(rc));
    CHECK(dt <= bound, "the 503 took %ld ms", dt);
    CHECK(tb_run("%s start %s kme-b >/dev/null 2>&1 && %s start %s kme-d >/dev/null 2>&1",
                 TB.script, TB.dir, TB.script, TB.dir) == 0, "restart KME-B and KME-D");
    dt = timed_relay(&rc);
    CHECK(rc == QKD014_OK, "A1 -> C1 after the restarts: %s", qkd014_strerror(rc));
}

/* A's own bits towards B, from its status towards B1 (a neighbour pair). */
static long stock_towards_b(void)
{
    qkd014_client *a1 = client(TB.url[0], &TB.a1);
    qkd014_status *st = NULL;
    long bits = -1;
    if (qkd014_get_status(a1, TB.b1.id, &st) == QKD014_OK)
        bits = (long)st->stored_key_count * st->key_size;
    qkd014_status_free(st);
    qkd014_client_free(a1);
    return bits;
}

static void test_ring_link_runs_dry(void **state)
{
    (void)state;
    CHECK(tb_run("%s stop %s link >/dev/null 2>&1", TB.script, TB.dir) == 0, "stop the A-B link");
    qkd014_client *a1 = client(TB.url[0], &TB.a1), *c1 = client(TB.url[2], &TB.c1);
    long start = stock_towards_b();
    CHECK(start > 0, "no stock towards B");
    /* spend A's stock towards B (relays and neighbour keys both draw on it),
     * while A1 -> C1 keeps working */
    qkd014_client *ab = client(TB.url[0], &TB.a1);
    int relays = 0;
    for (int round = 0; round < 400 && stock_towards_b() >= 1024 * 256; round++) {
        qkd014_keys *k = NULL;
        if (get_keys(ab, TB.b1.id, 1024, 256, &k) == QKD014_OK) {
            qkd014_client *b1 = client(TB.url[1], &TB.b1);
            fetch_same(b1, TB.a1.id, k);
            qkd014_client_free(b1);
        }
        qkd014_keys_free(k);
        if (round % 4 == 0) {
            CHECK(get_keys(a1, TB.c1.id, 2, 256, &k) == QKD014_OK, "A1 -> C1 while A-B drains: %s",
                  qkd014_errmsg(a1));
            fetch_same(c1, TB.a1.id, k);
            qkd014_keys_free(k);
            relays++;
        }
    }
    CHECK(stock_towards_b() < 1024 * 256, "A's stock towards B did not run out");
    /* the A-B link is dry: the relay takes the path through D */
    for (int i = 0; i < 5; i++) {
        qkd014_keys *k = NULL;
        CHECK(get_keys(a1, TB.c1.id, 16, 256, &k) == QKD014_OK, "A1 -> C1 with A-B dry: %s",
              qkd014_errmsg(a1));
        fetch_same(c1, TB.a1.id, k);
        qkd014_keys_free(k);
    }
    print_message("A-B link stopped: %d relays served from its stored key, then via D\n", relays);
    CHECK(tb_run("%s start %s link >/dev/null 2>&1", TB.script, TB.dir) == 0, "restart the A-B link");
    qkd014_client_free(ab);
    qkd014_client_free(a1);
    qkd014_client_free(c1);
}

/* ---- set-up --------------------------------------------------------------- */

static int setup(void **state)
{
    (void)state;
    if (tb_from_env(&TB.dir, &TB.script) != 0)
        return -1;
    TB.slack_ms = 1000L * tb_slack_factor();
    TB.ca = testbed_env_value(TB.dir, "CA_CERT");
    TB.topology = testbed_env_value(TB.dir, "TESTBED_TOPOLOGY");
    static const char *const urls[] = { "KME_A_URL", "KME_B_URL", "KME_C_URL", "KME_D_URL" };
    for (int i = 0; i < 4; i++)
        TB.url[i] = testbed_env_value(TB.dir, urls[i]);
    char *link_bin = testbed_env_value(TB.dir, "LINK_BIN"); /* BUILD/src/link/qkd-link */
    char *cut = link_bin ? strstr(link_bin, "/src/link/qkd-link") : NULL;
    if (cut) {
        *cut = '\0';
        TB.kme_bin = malloc(strlen(link_bin) + 32);
        sprintf(TB.kme_bin, "%s/src/kme/qkd-kme", link_bin);
    }
    free(link_bin);
    tb_sae_load(&TB.a1, TB.dir, "SAE_A1");
    tb_sae_load(&TB.a2, TB.dir, "SAE_A2");
    tb_sae_load(&TB.b1, TB.dir, "SAE_B1");
    tb_sae_load(&TB.c1, TB.dir, "SAE_C1");
    tb_sae_load(&TB.c2, TB.dir, "SAE_C2");
    if (!TB.ca || !TB.topology || !TB.url[2] || !TB.c1.id || !TB.c2.id || !TB.kme_bin) {
        print_error("testbed.env lacks the chain or ring variables (TESTBED_TOPOLOGY, KME_C_URL, "
                    "SAE_C1_*)\n");
        return -1;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return qkd014_global_init() == QKD014_OK ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest chain[] = {
        cmocka_unit_test(test_chain_both_ways),
        cmocka_unit_test(test_chain_status_path),
        cmocka_unit_test(test_chain_operations),
        cmocka_unit_test(test_chain_map_checks),
        cmocka_unit_test(test_chain_hostile_relays),
        cmocka_unit_test(test_chain_conformance),
        cmocka_unit_test(test_chain_tampered),
        cmocka_unit_test(test_chain_second_hop_dry),
        cmocka_unit_test(test_chain_slave_limit),
        cmocka_unit_test(test_chain_kill_trusted_node),
        cmocka_unit_test(test_chain_kill_ends),
    };
    const struct CMUnitTest ring[] = {
        cmocka_unit_test(test_ring_hung_node),
        cmocka_unit_test(test_ring_failover),
        cmocka_unit_test(test_ring_link_runs_dry),
    };
    if (setup(NULL) != 0)
        return 1;
    if (strcmp(TB.topology, "ring") == 0)
        return cmocka_run_group_tests_name("relay_ring", ring, NULL, NULL);
    return cmocka_run_group_tests_name("relay_chain", chain, NULL, NULL);
}
