/* SPDX-License-Identifier: Apache-2.0 */
/*
 * admin.c - the KME's admin listener (admin.h): routes, the gauges of
 * /metrics, /health, and the sampler thread behind the status page.
 *
 * Every request gathers one admin_view: the key store's status calls
 * (ks_stats_get, ks_link_stats_get: each one short read under the store's
 * mutex, as a `status` request does), the peer probe's last word
 * (peer_health_get) and the counters (metrics.h).  The sampler records
 * the links' pool levels and production once a second into a ring of
 * ADMIN_HISTORY samples under `mu`, which only it and the admin thread
 * take.
 */
#include "kme/admin.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/admin_http.h"
#include "common/jsonw.h"
#include "common/log.h"
#include "common/monotime.h"
#include "common/prom.h"
#include "kme/admin_view.h"
#include "kme/metrics.h"
#include "kme/status_page.h"

#define SAMPLE_PERIOD_MS 1000

struct kme_admin {
    const kme_config *cfg;
    keystore *ks;
    peer_service *peers;
    link_state *const *links; /* per cfg->links[i], entries may be NULL */
    admin_http *http;
    /* sampler */
    pthread_t sampler;
    bool sampler_started, stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    admin_sample ring[ADMIN_HISTORY];
    size_t ring_next, ring_n;
};

static int64_t unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------ the view */

static void link_gather(kme_admin *a, size_t i, admin_link_view *lv, bool *store_ok)
{
    const kme_link *l = &a->cfg->links[i];
    memset(lv, 0, sizeof *lv);
    lv->cfg = l;
    ks_link_stats ls;
    if (ks_link_stats_get(a->ks, l->peer, &ls) == KS_OK) {
        lv->ok = true;
        lv->own_bytes = ls.own_bits / 8;
        lv->peer_bytes = ls.peer_bits / 8;
        lv->cap_bytes = (uint64_t)l->pool_cap_bits / 8;
    } else {
        *store_ok = false;
    }
    lv->state = "unknown";
    if (a->links && a->links[i]) {
        link_state_snapshot snap;
        link_state_get(a->links[i], mono_ms(), &snap);
        lv->state = snap.state;
        lv->qber_known = snap.has_qber;
        lv->qber = snap.qber;
        lv->qber_alarm = snap.alarm;
    }
}

/* links: cfg->n_links entries, peers: cfg->n_peers (the caller's arrays). */
static void view_gather(kme_admin *a, admin_view *v, peer_health *peers, admin_link_view *links)
{
    const kme_config *cfg = a->cfg;
    memset(v, 0, sizeof *v);
    v->cfg = cfg;
    ks_stats st;
    v->store_ok = ks_stats_get(a->ks, &st) == KS_OK;
    if (v->store_ok) {
        v->local_bytes = st.local_available_bits / 8;
        v->local_cap_bytes = st.local_cap_bits / 8;
        v->stored_keys = st.stored_keys;
    }
    v->links = links;
    for (size_t i = 0; i < cfg->n_links; i++) {
        link_gather(a, i, &links[i], &v->store_ok);
        v->any_qber_alarm |= links[i].qber_alarm;
    }
    v->peers = peers;
    for (size_t i = 0; i < cfg->n_peers; i++)
        peer_health_get(a->peers, i, &peers[i]);
    for (int r = 0; r < 3; r++)
        for (int o = 0; o < 4; o++)
            v->relays[r][o] = metrics_relay_count((metrics_relay_role)r, (metrics_relay_result)o);
}

/* ------------------------------------------------------------ /metrics */

static void gauge(prom_writer *w, const char *name, const char *help, const prom_label *l,
                  size_t n, uint64_t v)
{
    prom_family(w, name, PROM_GAUGE, help);
    prom_u64(w, l, n, v);
}

static void render_pools(prom_writer *w, const admin_view *v)
{
    const kme_config *cfg = v->cfg;
    gauge(w, "qkd_kme_local_pool_bytes", "Key material in the local (CSPRNG) pool for local pairs.",
          NULL, 0, v->local_bytes);
    gauge(w, "qkd_kme_local_pool_capacity_bytes", "Capacity of the local (CSPRNG) pool.",
          NULL, 0, v->local_cap_bytes);
    gauge(w, "qkd_kme_stored_keys", "Keys made and awaiting at least one slave.",
          NULL, 0, v->stored_keys);
    if (!cfg->n_links)
        return;
    prom_family(w, "qkd_kme_pool_bytes", PROM_GAUGE,
                "Unused confirmed link key material per link and direction: owner self (our "
                "masters use it) or peer (the peer's masters use it).");
    for (size_t i = 0; i < cfg->n_links; i++) {
        const admin_link_view *l = &v->links[i];
        prom_label self[] = { { "peer", l->cfg->peer }, { "owner", "self" } };
        prom_label peer[] = { { "peer", l->cfg->peer }, { "owner", "peer" } };
        if (l->ok) {
            prom_u64(w, self, 2, l->own_bytes);
            prom_u64(w, peer, 2, l->peer_bytes);
        }
    }
    prom_family(w, "qkd_kme_pool_capacity_bytes", PROM_GAUGE,
                "Capacity of each link key pool per direction (the link's pool_cap_bits).");
    for (size_t i = 0; i < cfg->n_links; i++) {
        const kme_link *l = &cfg->links[i];
        prom_label self[] = { { "peer", l->peer }, { "owner", "self" } };
        prom_label peer[] = { { "peer", l->peer }, { "owner", "peer" } };
        prom_u64(w, self, 2, (uint64_t)l->pool_cap_bits / 8);
        prom_u64(w, peer, 2, (uint64_t)l->pool_cap_bits / 8);
    }
}

static void render_peer_gauges(prom_writer *w, const admin_view *v)
{
    const kme_config *cfg = v->cfg;
    if (cfg->n_peers) {
        prom_family(w, "qkd_kme_peer_up", PROM_GAUGE,
                    "1 when the peer KME answered the last probe (once a second), else 0.");
        for (size_t i = 0; i < cfg->n_peers; i++) {
            prom_label l[] = { { "peer", cfg->peers[i].id } };
            prom_u64(w, l, 1, v->peers[i].probed && v->peers[i].up);
        }
    }
    bool any_qber = false;
    for (size_t i = 0; i < cfg->n_links; i++)
        any_qber |= v->links[i].qber_known;
    if (!any_qber)
        return;
    prom_family(w, "qkd_kme_link_qber_ratio", PROM_GAUGE,
                "Quantum bit error rate each QKD link last reported (0..1).");
    for (size_t i = 0; i < cfg->n_links; i++)
        if (v->links[i].qber_known) {
            prom_label l[] = { { "peer", cfg->links[i].peer } };
            prom_double(w, l, 1, v->links[i].qber);
        }
    prom_family(w, "qkd_kme_link_alarm", PROM_GAUGE,
                "1 while the QKD link reports its QBER alarm, else 0.");
    for (size_t i = 0; i < cfg->n_links; i++)
        if (v->links[i].qber_known) {
            prom_label l[] = { { "peer", cfg->links[i].peer } };
            prom_u64(w, l, 1, v->links[i].qber_alarm);
        }
}

static void serve_metrics(kme_admin *a, admin_reply *out)
{
    peer_health peers[a->cfg->n_peers ? a->cfg->n_peers : 1];
    admin_link_view links[a->cfg->n_links ? a->cfg->n_links : 1];
    admin_view v;
    view_gather(a, &v, peers, links);
    prom_writer w;
    prom_init(&w);
    metrics_render(&w, a->cfg);
    render_pools(&w, &v);
    render_peer_gauges(&w, &v);
    out->body = prom_finish(&w, &out->len);
    if (!out->body)
        return admin_reply_text(out, 503, "out of memory");
    out->status = 200;
    out->content_type = "text/plain; version=0.0.4; charset=utf-8";
}

/* ------------------------------------------------------------ /health */

/* Why the KME cannot serve everything it is configured for ("" if it can). */
static void health_reasons(const admin_view *v, jsonw *w, bool *ok)
{
    const kme_config *cfg = v->cfg;
    char msg[256];
    *ok = true;
    jw_lit(w, "\"reasons\":[");
    if (!v->store_ok) {
        jw_str(w, "the key store cannot be read");
        *ok = false;
    }
    for (size_t i = 0; i < cfg->n_peers; i++)
        if (v->peers[i].probed && !v->peers[i].up) {
            snprintf(msg, sizeof msg, "peer KME %s is not answering: %s", cfg->peers[i].id,
                     v->peers[i].reason);
            if (!*ok)
                jw_lit(w, ",");
            jw_str(w, msg);
            *ok = false;
        }
    for (size_t i = 0; i < cfg->n_links; i++)
        if (v->links[i].qber_alarm) {
            snprintf(msg, sizeof msg, "the QKD link to %s reports its QBER alarm", cfg->links[i].peer);
            if (!*ok)
                jw_lit(w, ",");
            jw_str(w, msg);
            *ok = false;
        }
    jw_lit(w, "]");
}

static void health_peers(const admin_view *v, jsonw *w)
{
    const kme_config *cfg = v->cfg;
    jw_lit(w, ",\"peers\":[");
    for (size_t i = 0; i < cfg->n_peers; i++) {
        const peer_health *h = &v->peers[i];
        jw_lit(w, i ? ",{\"id\":" : "{\"id\":");
        jw_str(w, cfg->peers[i].id);
        jw_lit(w, ",\"state\":");
        jw_str(w, !h->probed ? "unknown" : h->up ? "up" : "down");
        jw_lit(w, ",\"since_unix_ms\":");
        jw_int(w, h->since_unix_ms);
        if (h->probed && !h->up) {
            jw_lit(w, ",\"reason\":");
            jw_str(w, h->reason);
        }
        jw_lit(w, "}");
    }
    jw_lit(w, "],\"links\":[");
    for (size_t i = 0; i < cfg->n_links; i++) {
        const admin_link_view *l = &v->links[i];
        jw_lit(w, i ? ",{\"peer\":" : "{\"peer\":");
        jw_str(w, l->cfg->peer);
        jw_lit(w, ",\"id\":");
        jw_str(w, l->cfg->id);
        jw_lit(w, ",\"pool_bytes\":{\"self\":");
        jw_int(w, (int64_t)l->own_bytes);
        jw_lit(w, ",\"peer\":");
        jw_int(w, (int64_t)l->peer_bytes);
        jw_lit(w, "},\"capacity_bytes\":");
        jw_int(w, (int64_t)l->cap_bytes);
        jw_lit(w, ",\"state\":");
        jw_str(w, l->state);
        jw_lit(w, ",\"alarm\":");
        jw_lit(w, l->qber_alarm ? "true" : "false");
        if (l->qber_known) {
            char q[32];
            snprintf(q, sizeof q, ",\"qber\":%.6f", l->qber);
            jw_lit(w, q);
        }
        jw_lit(w, "}");
    }
    jw_lit(w, "]");
}

static void serve_health(kme_admin *a, admin_reply *out)
{
    peer_health peers[a->cfg->n_peers ? a->cfg->n_peers : 1];
    admin_link_view links[a->cfg->n_links ? a->cfg->n_links : 1];
    admin_view v;
    view_gather(a, &v, peers, links);
    jsonw w;
    bool ok;
    jw_init(&w, 1024);
    jw_lit(&w, "{\"kme\":");
    jw_str(&w, a->cfg->id);
    jw_lit(&w, ",");
    health_reasons(&v, &w, &ok);
    jw_lit(&w, ",\"status\":");
    jw_str(&w, ok ? "ok" : "unavailable");
    jw_lit(&w, ",\"store\":{\"ok\":");
    jw_lit(&w, v.store_ok ? "true" : "false");
    jw_lit(&w, ",\"local_pool_bytes\":");
    jw_int(&w, (int64_t)v.local_bytes);
    jw_lit(&w, ",\"stored_keys\":");
    jw_int(&w, (int64_t)v.stored_keys);
    jw_lit(&w, "}");
    health_peers(&v, &w);
    jw_lit(&w, "}\n");
    out->body = jw_finish(&w, &out->len);
    if (!out->body)
        return admin_reply_text(out, 503, "out of memory");
    out->status = ok ? 200 : 503;
    out->content_type = "application/json";
}

/* ------------------------------------------------------------ the page */

static void serve_page(kme_admin *a, admin_reply *out)
{
    peer_health peers[a->cfg->n_peers ? a->cfg->n_peers : 1];
    admin_link_view links[a->cfg->n_links ? a->cfg->n_links : 1];
    admin_view v;
    view_gather(a, &v, peers, links);
    admin_sample *hist = malloc(sizeof a->ring);
    if (hist) {
        pthread_mutex_lock(&a->mu);
        size_t first = (a->ring_next + ADMIN_HISTORY - a->ring_n) % ADMIN_HISTORY;
        for (size_t i = 0; i < a->ring_n; i++)
            hist[i] = a->ring[(first + i) % ADMIN_HISTORY];
        v.n_history = a->ring_n;
        pthread_mutex_unlock(&a->mu);
        v.history = hist;
    }
    out->body = status_page_render(&v, &out->len);
    free(hist);
    if (!out->body)
        return admin_reply_text(out, 503, "out of memory");
    out->status = 200;
    out->content_type = "text/html; charset=utf-8";
}

static void serve_css(admin_reply *out)
{
    out->len = strlen(STATUS_CSS);
    out->body = strdup(STATUS_CSS);
    if (!out->body)
        return admin_reply_text(out, 503, "out of memory");
    out->status = 200;
    out->content_type = "text/css; charset=utf-8";
}

static void handle(void *ctx, const char *path, admin_reply *out)
{
    kme_admin *a = ctx;
    if (strcmp(path, "/metrics") == 0)
        serve_metrics(a, out);
    else if (strcmp(path, "/health") == 0)
        serve_health(a, out);
    else if (strcmp(path, "/") == 0)
        serve_page(a, out);
    else if (strcmp(path, "/status.css") == 0)
        serve_css(out);
    else if (strcmp(path, "/favicon.ico") == 0)
        out->status = 204; /* browsers ask: no icon, and no 404 in their console */
    else
        admin_reply_text(out, 404, "not found: the admin listener serves /, /metrics and /health");
}

/* ------------------------------------------------------------ sampler */

static void sample_once(kme_admin *a)
{
    admin_sample s = { .unix_ms = unix_ms() };
    for (size_t i = 0; i < a->cfg->n_links && i < ADMIN_CHART_LINKS; i++) {
        ks_link_stats ls;
        if (ks_link_stats_get(a->ks, a->cfg->links[i].peer, &ls) == KS_OK) {
            s.level[i][0] = ls.peer_bits / 8;
            s.level[i][1] = ls.own_bits / 8;
        }
        s.produced[i][0] = metrics_link_bytes(i, false);
        s.produced[i][1] = metrics_link_bytes(i, true);
    }
    pthread_mutex_lock(&a->mu);
    a->ring[a->ring_next] = s;
    a->ring_next = (a->ring_next + 1) % ADMIN_HISTORY;
    if (a->ring_n < ADMIN_HISTORY)
        a->ring_n++;
    pthread_mutex_unlock(&a->mu);
}

static void *sampler_main(void *arg)
{
    kme_admin *a = arg;
    int64_t next = mono_ms();
    pthread_mutex_lock(&a->mu);
    while (!a->stop) {
        pthread_mutex_unlock(&a->mu);
        sample_once(a);
        next += SAMPLE_PERIOD_MS;
        if (next < mono_ms())
            next = mono_ms();
        struct timespec at = mono_timespec(next);
        pthread_mutex_lock(&a->mu);
        while (!a->stop && pthread_cond_timedwait(&a->cv, &a->mu, &at) == 0)
            ;
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

/* ------------------------------------------------------------ start, stop */

kme_admin *kme_admin_start(const kme_config *cfg, keystore *ks, peer_service *peers,
                           link_state *const *links, char *err, size_t errlen)
{
    kme_admin *a = calloc(1, sizeof *a);
    if (!a || pthread_mutex_init(&a->mu, NULL) != 0 || mono_cond_init(&a->cv) != 0) {
        snprintf(err, errlen, "admin: out of memory");
        free(a);
        return NULL;
    }
    a->cfg = cfg;
    a->ks = ks;
    a->peers = peers;
    a->links = links;
    if (pthread_create(&a->sampler, NULL, sampler_main, a) != 0) {
        snprintf(err, errlen, "admin: cannot start the sampler thread");
        kme_admin_stop(a);
        return NULL;
    }
    a->sampler_started = true;
    admin_spec spec = {
        .name = "admin", .host = cfg->admin_listen.host, .port = cfg->admin_listen.port,
        .cert = cfg->admin_cert, .key = cfg->admin_key, .client_ca = cfg->admin_client_ca,
        .handle = handle, .ctx = a,
    };
    if (!(a->http = admin_http_start(&spec, err, errlen))) {
        kme_admin_stop(a);
        return NULL;
    }
    return a;
}

uint16_t kme_admin_port(const kme_admin *a)
{
    return admin_http_port(a->http);
}

void kme_admin_stop(kme_admin *a)
{
    if (!a)
        return;
    admin_http_stop(a->http);
    if (a->sampler_started) {
        pthread_mutex_lock(&a->mu);
        a->stop = true;
        pthread_cond_broadcast(&a->cv);
        pthread_mutex_unlock(&a->mu);
        pthread_join(a->sampler, NULL);
    }
    pthread_cond_destroy(&a->cv);
    pthread_mutex_destroy(&a->mu);
    free(a);
}
