/* SPDX-License-Identifier: Apache-2.0 */
/*
 * admin.c - the link simulator's /metrics (admin.h).
 *
 * The feeder's one thread reports; the admin listener's one thread reads.
 * Counters and gauges are relaxed atomics (doubles stored as their bits),
 * so a report costs the feeder an atomic store and never waits for a
 * scrape.
 */
#include "link/admin.h"

#include <arpa/inet.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/admin_http.h"
#include "common/ini.h"
#include "common/prom.h"

struct link_admin {
    admin_http *http;
    const link_config *cfg;
};

static struct {
    _Atomic uint64_t blocks, bytes;
    _Atomic uint64_t rate_bits, qber_bits; /* doubles, as their bits */
    _Atomic bool qber_known, alarm;
    _Atomic bool kme_up[2];
    _Atomic(const char *) state;           /* static text, or NULL */
} lm;

static uint64_t bits_of(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

static double double_of(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

void link_admin_block(uint64_t bytes)
{
    atomic_fetch_add_explicit(&lm.blocks, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&lm.bytes, bytes, memory_order_relaxed);
}

void link_admin_rate(double bps)
{
    atomic_store_explicit(&lm.rate_bits, bits_of(bps), memory_order_relaxed);
}

void link_admin_qber(double ratio, bool alarm)
{
    atomic_store_explicit(&lm.qber_bits, bits_of(ratio), memory_order_relaxed);
    atomic_store_explicit(&lm.alarm, alarm, memory_order_relaxed);
    atomic_store_explicit(&lm.qber_known, true, memory_order_release);
}

void link_admin_state(const char *state)
{
    atomic_store_explicit(&lm.state, state, memory_order_release);
}

void link_admin_kme(int k, bool up)
{
    if (k == 0 || k == 1)
        atomic_store_explicit(&lm.kme_up[k], up, memory_order_relaxed);
}

static void render(const link_config *cfg, prom_writer *w)
{
    prom_family(w, "qkd_link_blocks_total", PROM_COUNTER, "Key blocks stored at both KMEs.");
    prom_u64(w, NULL, 0, atomic_load(&lm.blocks));
    prom_family(w, "qkd_link_key_bytes_total", PROM_COUNTER,
                "Bytes of key material stored at both KMEs (each copy counted once).");
    prom_u64(w, NULL, 0, atomic_load(&lm.bytes));
    prom_family(w, "qkd_link_secret_key_rate_bytes_per_second", PROM_GAUGE,
                "Secret-key rate in force, both directions together.");
    prom_double(w, NULL, 0, double_of(atomic_load(&lm.rate_bits)));
    if (atomic_load_explicit(&lm.qber_known, memory_order_acquire)) {
        prom_family(w, "qkd_link_qber_ratio", PROM_GAUGE, "Quantum bit error rate last measured (0..1).");
        prom_double(w, NULL, 0, double_of(atomic_load(&lm.qber_bits)));
        prom_family(w, "qkd_link_alarm", PROM_GAUGE, "1 while the QBER is above the abort threshold.");
        prom_u64(w, NULL, 0, atomic_load(&lm.alarm));
    }
    const char *state = atomic_load_explicit(&lm.state, memory_order_acquire);
    if (state) {
        prom_family(w, "qkd_link_state", PROM_GAUGE,
                    "1 for the state of the last block (distilling, marginal, aborted, no_key).");
        prom_label l[] = { { "state", state } };
        prom_u64(w, l, 1, 1);
    }
    prom_family(w, "qkd_link_kme_up", PROM_GAUGE, "1 while the KME at this end answers the link.");
    for (int k = 0; k < 2; k++) {
        prom_label l[] = { { "kme", cfg->kme[k].id } };
        prom_u64(w, l, 1, atomic_load(&lm.kme_up[k]));
    }
    prom_family(w, "qkd_link_build_info", PROM_GAUGE, "Always 1: the version of this qkd-link.");
    prom_label v[] = { { "version", QUMAILC_VERSION } };
    prom_u64(w, v, 1, 1);
}

static void handle(void *ctx, const char *path, admin_reply *out)
{
    link_admin *a = ctx;
    if (strcmp(path, "/metrics") != 0)
        return admin_reply_text(out, 404, "not found: the link's admin listener serves /metrics");
    prom_writer w;
    prom_init(&w);
    render(a->cfg, &w);
    out->body = prom_finish(&w, &out->len);
    if (!out->body)
        return admin_reply_text(out, 503, "out of memory");
    out->status = 200;
    out->content_type = "text/plain; version=0.0.4; charset=utf-8";
}

int link_admin_parse_listen(const char *v, char *host, size_t hostlen, uint16_t *port,
                            char *why, size_t whylen)
{
    const char *colon = v[0] == '[' ? strstr(v, "]:") : strrchr(v, ':');
    const char *hs = v[0] == '[' ? v + 1 : v;
    int64_t p;
    if (!colon || colon == hs || (size_t)(colon - hs) >= hostlen) {
        snprintf(why, whylen, "'%.100s' is not ADDRESS:PORT (IPv6 as [ADDRESS]:PORT)", v);
        return -1;
    }
    memcpy(host, hs, (size_t)(colon - hs));
    host[colon - hs] = '\0';
    const char *ps = colon + (v[0] == '[' ? 2 : 1);
    unsigned char buf[16];
    if (inet_pton(v[0] == '[' ? AF_INET6 : AF_INET, host, buf) != 1) {
        snprintf(why, whylen, "'%.64s' is not a numeric %s address", host, v[0] == '[' ? "IPv6" : "IPv4");
        return -1;
    }
    if (ini_parse_uint(ps, &p) != 0 || p > 65535) {
        snprintf(why, whylen, "port '%.32s' is not a number in 0..65535", ps);
        return -1;
    }
    if (!admin_is_loopback(host)) {
        snprintf(why, whylen, "plain HTTP on %.64s, which is not a loopback address: the admin "
                 "listener has no authentication; use 127.0.0.1", host);
        return -1;
    }
    *port = (uint16_t)p;
    return 0;
}

int link_admin_check(const link_config *cfg, char *err, size_t errlen)
{
    char host[64], why[200];
    uint16_t port;
    if (!cfg->admin_listen
        || link_admin_parse_listen(cfg->admin_listen, host, sizeof host, &port, why, sizeof why) == 0)
        return 0;
    snprintf(err, errlen, "%s: [admin] listen: %s", cfg->path, why);
    return -1;
}

int link_admin_start(const link_config *cfg, link_admin **out, char *err, size_t errlen)
{
    char host[64], why[200];
    uint16_t port;
    *out = NULL;
    link_admin_rate((double)cfg->rate_bps / 8);
    if (!cfg->admin_listen)
        return 0;
    if (link_admin_parse_listen(cfg->admin_listen, host, sizeof host, &port, why, sizeof why) != 0) {
        snprintf(err, errlen, "[admin] listen: %s", why);
        return -1;
    }
    link_admin *a = calloc(1, sizeof *a);
    if (!a) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    a->cfg = cfg;
    admin_spec spec = { .name = "admin", .host = host, .port = port, .handle = handle, .ctx = a };
    if (!(a->http = admin_http_start(&spec, err, errlen))) {
        free(a);
        return -1;
    }
    *out = a;
    return 0;
}

uint16_t link_admin_port(const link_admin *a)
{
    return admin_http_port(a->http);
}

void link_admin_stop(link_admin *a)
{
    if (!a)
        return;
    admin_http_stop(a->http);
    free(a);
}
