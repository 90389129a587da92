/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kmeconn.c - HTTPS requests from the link to one KME's link intake.
 *
 * All transfers run through one curl multi handle, whose connection cache
 * keeps one TLS connection per KME alive between requests; running both
 * KMEs' requests in the same multi lets a block reach them side by side.
 * The KME ID check runs from CURLOPT_PREREQFUNCTION, that is after the TLS
 * handshake and before the request is sent, on every request (a reused
 * connection is checked again at the cost of one certificate parse, far
 * below the cost of sending a block).  "Expect:" is cleared: waiting for a
 * 100-continue would add a round trip to every block.
 */
#include "link/kmeconn.h"

#include <curl/curl.h>
#include <gnutls/gnutls.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/blockid.h"
#include "common/tls_policy.h"
#include "common/x509cn.h"

#define MAX_ANSWER (16u * 1024 * 1024) /* a state answer lists unconfirmed IDs */

struct kmeconn {
    CURL *h;
    char *base;                 /* https://HOST:PORT */
    char *expected_id;
    char url[512];
    struct curl_slist *hdr_bin, *hdr_json;
    char *resp;                 /* answer body, NUL-terminated */
    size_t resp_len, resp_cap;
    bool too_long, id_rejected;
    CURLcode cc;
    long http;
    char reason[256];
    char curl_err[CURL_ERROR_SIZE];
};

static CURLM *multi;            /* shared by both connections */
static unsigned multi_users;

/* ------------------------------------------------------------ callbacks */

static size_t on_write(char *data, size_t size, size_t nmemb, void *ud)
{
    kmeconn *c = ud;
    size_t n = size * nmemb;
    if (c->resp_len + n + 1 > MAX_ANSWER) {
        c->too_long = true;
        return 0;
    }
    if (c->resp_len + n + 1 > c->resp_cap) {
        size_t cap = c->resp_cap ? c->resp_cap : 1024;
        while (cap < c->resp_len + n + 1)
            cap *= 2;
        char *g = realloc(c->resp, cap);
        if (!g)
            return 0;
        c->resp = g;
        c->resp_cap = cap;
    }
    memcpy(c->resp + c->resp_len, data, n);
    c->resp_len += n;
    c->resp[c->resp_len] = '\0';
    return n;
}

/* Subject CN of the peer's leaf certificate, by the project's one rule
 * (exactly one CN, no NUL: common/x509cn.h). */
static int session_cn(gnutls_session_t s, char *out, size_t outlen)
{
    unsigned n = 0;
    const gnutls_datum_t *chain = gnutls_certificate_get_peers(s, &n);
    return chain && n ? x509_der_cn(chain[0].data, chain[0].size, out, outlen) : -1;
}

/* Before the request goes out: the server must be the KME we expect. */
static int on_prereq(void *ud, char *ip, char *local_ip, int port, int local_port)
{
    kmeconn *c = ud;
    const struct curl_tlssessioninfo *ti = NULL;
    char cn[256];
    (void)ip, (void)local_ip, (void)port, (void)local_port;
    if (curl_easy_getinfo(c->h, CURLINFO_TLS_SSL_PTR, &ti) != CURLE_OK || !ti
        || ti->backend != CURLSSLBACKEND_GNUTLS || !ti->internals
        || session_cn((gnutls_session_t)ti->internals, cn, sizeof cn) != 0) {
        c->id_rejected = true;
        snprintf(c->reason, sizeof c->reason, "cannot read the subject CN of the KME certificate");
        return CURL_PREREQFUNC_ABORT;
    }
    if (strcmp(cn, c->expected_id) != 0) {
        c->id_rejected = true;
        snprintf(c->reason, sizeof c->reason, "the certificate names KME '%.64s', expected '%.64s'",
                 cn, c->expected_id);
        return CURL_PREREQFUNC_ABORT;
    }
    return CURL_PREREQFUNC_OK;
}

/* ------------------------------------------------------------ set-up */

static int setup_tls(kmeconn *c, const link_config *cfg)
{
    CURL *h = c->h;
    int bad = curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    bad |= curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
    bad |= curl_easy_setopt(h, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
    bad |= curl_easy_setopt(h, CURLOPT_PROXY, "");
    bad |= curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    bad |= curl_easy_setopt(h, CURLOPT_SSLCERT, cfg->cert);
    bad |= curl_easy_setopt(h, CURLOPT_SSLKEY, cfg->key);
    bad |= curl_easy_setopt(h, CURLOPT_CAINFO, cfg->ca);
    bad |= curl_easy_setopt(h, CURLOPT_CAPATH, NULL);
    bad |= curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)QC_TLS_CURL_MIN_VERSION);
    bad |= curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    bad |= curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    bad |= curl_easy_setopt(h, CURLOPT_PREREQFUNCTION, on_prereq);
    bad |= curl_easy_setopt(h, CURLOPT_PREREQDATA, c);
    return bad ? -1 : 0;
}

static int setup_http(kmeconn *c, const link_config *cfg)
{
    CURL *h = c->h;
    long to = (long)cfg->timeout_ms;
    int bad = curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, to < 2000 ? to : 2000L);
    bad |= curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, to);
    bad |= curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    bad |= curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    bad |= curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
    bad |= curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
    bad |= curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->curl_err);
    c->hdr_bin = curl_slist_append(NULL, "Content-Type: application/octet-stream");
    c->hdr_bin = c->hdr_bin ? curl_slist_append(c->hdr_bin, "Expect:") : NULL;
    c->hdr_json = curl_slist_append(NULL, "Content-Type: application/json");
    c->hdr_json = c->hdr_json ? curl_slist_append(c->hdr_json, "Expect:") : NULL;
    return bad || !c->hdr_bin || !c->hdr_json ? -1 : 0;
}

static int multi_ref(void)
{
    if (!multi && !(multi = curl_multi_init()))
        return -1;
    multi_users++;
    return 0;
}

kmeconn *kc_new(const link_config *cfg, int side)
{
    kmeconn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    if (multi_ref() != 0) {
        free(c);
        return NULL;
    }
    c->base = strdup(cfg->kme[side].url);
    c->expected_id = strdup(cfg->kme[side].id);
    c->h = curl_easy_init();
    if (!c->base || !c->expected_id || !c->h || setup_tls(c, cfg) != 0 || setup_http(c, cfg) != 0) {
        kc_free(c);
        return NULL;
    }
    return c;
}

void kc_free(kmeconn *c)
{
    if (!c)
        return;
    if (c->h)
        curl_easy_cleanup(c->h);
    curl_slist_free_all(c->hdr_bin);
    curl_slist_free_all(c->hdr_json);
    free(c->base);
    free(c->expected_id);
    free(c->resp);
    free(c);
    if (multi_users && --multi_users == 0) {
        curl_multi_cleanup(multi);
        multi = NULL;
    }
}

const char *kc_name(const kmeconn *c)
{
    return c->expected_id;
}

/* ------------------------------------------------------------ requests */

static int prepare(kmeconn *c, const char *path, struct curl_slist *hdr, const void *body, size_t len)
{
    c->resp_len = 0;
    c->too_long = c->id_rejected = false;
    c->reason[0] = c->curl_err[0] = '\0';
    c->http = 0;
    c->cc = CURLE_OK;
    if (snprintf(c->url, sizeof c->url, "%s%s", c->base, path) >= (int)sizeof c->url)
        return -1;
    int bad = curl_easy_setopt(c->h, CURLOPT_URL, c->url);
    if (body) {
        bad |= curl_easy_setopt(c->h, CURLOPT_POST, 1L);
        bad |= curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, hdr);
        bad |= curl_easy_setopt(c->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        bad |= curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, body);
    } else {
        bad |= curl_easy_setopt(c->h, CURLOPT_HTTPGET, 1L);
        bad |= curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, NULL);
    }
    return bad ? -1 : 0;
}

int kc_prepare_block(kmeconn *c, const uint8_t *body, size_t len)
{
    return prepare(c, "/link/v1/blocks", c->hdr_bin, body, len);
}

int kc_prepare_ids(kmeconn *c, const char *path, const char *json, size_t len)
{
    return prepare(c, path, c->hdr_json, json, len);
}

int kc_prepare_state(kmeconn *c)
{
    return prepare(c, "/link/v1/state", NULL, NULL, 0);
}

/* After a transfer: drop the body pointer, which the caller will wipe. */
static void finish(kmeconn *c, CURLcode cc)
{
    c->cc = cc;
    curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &c->http);
    curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, NULL);
}

void kc_perform(kmeconn *const *cs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (curl_multi_add_handle(multi, cs[i]->h) != CURLM_OK)
            cs[i]->cc = CURLE_OUT_OF_MEMORY;
    int running = 1;
    while (running) {
        if (curl_multi_perform(multi, &running) != CURLM_OK)
            break;
        if (running && curl_multi_poll(multi, NULL, 0, 1000, NULL) != CURLM_OK)
            break;
    }
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(multi, &left)))
        for (size_t i = 0; i < n; i++)
            if (m->msg == CURLMSG_DONE && m->easy_handle == cs[i]->h)
                finish(cs[i], m->data.result);
    for (size_t i = 0; i < n; i++)
        curl_multi_remove_handle(multi, cs[i]->h);
}

/* ------------------------------------------------------------ answers */

static json_t *answer_json(const kmeconn *c)
{
    return c->resp_len ? json_loadb(c->resp, c->resp_len, JSON_REJECT_DUPLICATES, NULL) : NULL;
}

/* The "message" of a JSON error answer, or "". */
static void answer_message(const kmeconn *c, char *out, size_t outlen)
{
    json_t *o = answer_json(c);
    const char *m = json_string_value(json_object_get(o, "message"));
    snprintf(out, outlen, "%.200s", m ? m : "");
    json_decref(o);
}

kc_outcome kc_result(const kmeconn *c)
{
    if (c->cc != CURLE_OK || c->http == 0)
        return KC_FAIL;
    if (c->http >= 200 && c->http < 300)
        return KC_OK;
    if (c->http == 409)
        return KC_CONFLICT;
    char msg[256];
    answer_message(c, msg, sizeof msg);
    return c->http == 503 && strcmp(msg, "pool full") == 0 ? KC_FULL : KC_FAIL;
}

const char *kc_reason(const kmeconn *c)
{
    kmeconn *w = (kmeconn *)c; /* the reason is rendered on demand */
    if (c->id_rejected)
        return c->reason;
    if (c->cc != CURLE_OK) {
        snprintf(w->reason, sizeof w->reason, "%s", c->curl_err[0] ? c->curl_err : curl_easy_strerror(c->cc));
        return c->reason;
    }
    char msg[256];
    answer_message(c, msg, sizeof msg);
    snprintf(w->reason, sizeof w->reason, "HTTP %ld: %.200s", c->http, msg[0] ? msg : "(no message)");
    return c->reason;
}

static int get_u64(json_t *o, const char *key, uint64_t *out)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return -1;
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

static int parse_pool(json_t *root, kc_pool *out)
{
    json_t *p = json_object_get(root, "pool");
    return get_u64(p, "own_bits", &out->own_bits) == 0
        && get_u64(p, "peer_bits", &out->peer_bits) == 0
        && get_u64(p, "cap_bits", &out->cap_bits) == 0 ? 0 : -1;
}

int kc_pool_of(const kmeconn *c, kc_pool *out)
{
    json_t *o = answer_json(c);
    int rc = o ? parse_pool(o, out) : -1;
    json_decref(o);
    return rc;
}

int kc_state_of(const kmeconn *c, uint64_t **ids, size_t *n, char *side)
{
    json_t *o = answer_json(c);
    json_t *arr = json_object_get(o, "unconfirmed");
    const char *s = json_string_value(json_object_get(json_object_get(o, "pool"), "side"));
    *ids = NULL;
    *n = 0;
    *side = s && (strcmp(s, "A") == 0 || strcmp(s, "B") == 0) ? s[0] : 0;
    int rc = json_is_array(arr) ? 0 : -1;
    size_t cnt = rc == 0 ? json_array_size(arr) : 0;
    if (rc == 0 && cnt && !(*ids = calloc(cnt, sizeof **ids)))
        rc = -1;
    for (size_t i = 0; rc == 0 && i < cnt; i++) {
        json_t *v = json_array_get(arr, i);
        rc = json_is_string(v) ? block_id_parse(json_string_value(v), json_string_length(v), &(*ids)[i]) : -1;
    }
    if (rc == 0)
        *n = cnt;
    else {
        free(*ids);
        *ids = NULL;
    }
    json_decref(o);
    return rc;
}

bool kc_takes_reports(const kmeconn *c)
{
    json_t *o = answer_json(c);
    json_t *v = json_object_get(o, "reports");
    bool yes = json_is_integer(v) && json_integer_value(v) == 1;
    json_decref(o);
    return yes;
}
