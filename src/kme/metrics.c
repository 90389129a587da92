/* SPDX-License-Identifier: Apache-2.0 */
/*
 * metrics.c - the KME's counters (metrics.h).
 *
 * One process-wide set of relaxed atomics: the API threads add, the admin
 * listener's one thread reads.  A relaxed add is a single locked
 * instruction; with counters grouped by what one request touches (its
 * endpoint's row), two requests contend on a cache line only when they hit
 * the same endpoint at the same instant, which costs nanoseconds against a
 * request's tens of microseconds (docs/operations.md, "Cost").
 *
 * The histogram keeps per-bucket counts and a sum in nanoseconds; the
 * renderer accumulates them, so that a scrape never shows a bucket above
 * its successor.
 */
#include "kme/metrics.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kme/events.h"

/* Status codes with their own label value; the rest count as "other". */
static const int known_codes[] = { 200, 400, 401, 404, 405, 413, 503 };
#define N_CODES (sizeof known_codes / sizeof known_codes[0] + 1)

/* Upper bounds of the duration buckets, in seconds. */
static const double bucket_s[] = { 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                   0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5 };
#define N_BUCKETS (sizeof bucket_s / sizeof bucket_s[0])


static const char *const ep_names[METRICS_N_EP] = { "other", "status", "enc_keys", "dec_keys" };
/* The kinds of qkd_kme_security_events_total (events.h counts more). */
static const event_kind security_kinds[] = {
    EV_UNAUTHORIZED, EV_KEY_REUSE, EV_NOT_A_SLAVE, EV_QBER_ALARM, EV_POOL_EXHAUSTED,
    EV_RATE_LIMITED,
};
static const char *const resv_names[METRICS_RESV_N] = { "acknowledged", "refused", "failed" };
static const char *const relay_roles[METRICS_RELAY_ROLE_N] = { "origin", "trusted_node", "last" };
static const char *const relay_results[METRICS_RELAY_RESULT_N] = {
    "delivered", "unavailable", "tampered", "refused",
};

typedef struct ep_row {
    _Atomic uint64_t requests[N_CODES];
    _Atomic uint64_t buckets[N_BUCKETS + 1];
    _Atomic uint64_t sum_ns;
} __attribute__((aligned(64))) ep_row;

static struct {
    ep_row ep[METRICS_N_EP];
    _Atomic uint64_t keys[2], key_bytes[2];          /* [0] dec, [1] enc */
    /* per link (cfg->links[i]): [0] peer-owned, [1] own */
    _Atomic uint64_t link_blocks[KME_MAX_LINKS][2], link_bytes[KME_MAX_LINKS][2];
    _Atomic uint64_t *resv;                          /* n_peers x METRICS_RESV_N */
    _Atomic uint64_t relay[METRICS_RELAY_ROLE_N][METRICS_RELAY_RESULT_N];
    size_t n_peers;
} m;

/* QKD_KME_METRICS_OFF=1 in the environment: nothing is counted (the
 * benchmark's "without counting", same build; docs/benchmarks.md). */
static bool enabled = true;

int metrics_init(const kme_config *cfg)
{
    metrics_free();
    const char *off = getenv("QKD_KME_METRICS_OFF");
    enabled = !(off && strcmp(off, "1") == 0);
    m.n_peers = cfg->n_peers;
    if (m.n_peers && !(m.resv = calloc(m.n_peers * METRICS_RESV_N, sizeof *m.resv)))
        return -1;
    return 0;
}

void metrics_free(void)
{
    free((void *)m.resv);
    m.resv = NULL;
    m.n_peers = 0;
}

void metrics_testing_reset(void)
{
    _Atomic uint64_t *resv = m.resv;
    size_t n = m.n_peers;
    memset((void *)&m, 0, sizeof m);
    m.resv = resv;
    m.n_peers = n;
    if (resv)
        memset((void *)resv, 0, n * METRICS_RESV_N * sizeof *resv);
}

static void add(_Atomic uint64_t *c, uint64_t v)
{
    atomic_fetch_add_explicit(c, v, memory_order_relaxed);
}

static uint64_t get(_Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

metrics_endpoint metrics_endpoint_of(const char *uri)
{
    static const char *const tails[] = { NULL, "/status", "/enc_keys", "/dec_keys" };
    if (!uri)
        return METRICS_EP_OTHER;
    size_t n = strcspn(uri, "?");
    for (int ep = METRICS_EP_STATUS; ep < METRICS_N_EP; ep++) {
        size_t t = strlen(tails[ep]);
        if (n >= t && memcmp(uri + n - t, tails[ep], t) == 0 && strncmp(uri, "/api/v1/keys/", 13) == 0)
            return (metrics_endpoint)ep;
    }
    return METRICS_EP_OTHER;
}

static size_t code_index(int http)
{
    for (size_t i = 0; i < N_CODES - 1; i++)
        if (known_codes[i] == http)
            return i;
    return N_CODES - 1;
}

static size_t bucket_index(int64_t ns)
{
    double s = (double)ns / 1e9;
    size_t i = 0;
    while (i < N_BUCKETS && s > bucket_s[i])
        i++;
    return i;
}

void metrics_request(metrics_endpoint ep, int http, int64_t ns)
{
    if (!enabled)
        return;
    if ((unsigned)ep >= METRICS_N_EP)
        ep = METRICS_EP_OTHER;
    if (ns < 0)
        ns = 0;
    ep_row *r = &m.ep[ep];
    add(&r->buckets[bucket_index(ns)], 1);
    add(&r->sum_ns, (uint64_t)ns);
    add(&r->requests[code_index(http)], 1);
}

void metrics_keys(bool enc, size_t n, uint64_t bytes)
{
    if (!enabled)
        return;
    add(&m.keys[enc], n);
    add(&m.key_bytes[enc], bytes);
}

void metrics_reservation(size_t peer, metrics_resv_result result)
{
    if (!enabled)
        return;
    if (m.resv && peer < m.n_peers && (unsigned)result < METRICS_RESV_N)
        add(&m.resv[peer * METRICS_RESV_N + result], 1);
}

void metrics_relay(metrics_relay_role role, metrics_relay_result result)
{
    if (enabled && (unsigned)role < METRICS_RELAY_ROLE_N && (unsigned)result < METRICS_RELAY_RESULT_N)
        add(&m.relay[role][result], 1);
}

uint64_t metrics_relay_count(metrics_relay_role role, metrics_relay_result result)
{
    if ((unsigned)role >= METRICS_RELAY_ROLE_N || (unsigned)result >= METRICS_RELAY_RESULT_N)
        return 0;
    return get(&m.relay[role][result]);
}

void metrics_link_block(size_t link, bool own, uint64_t bytes)
{
    if (!enabled || link >= KME_MAX_LINKS)
        return;
    add(&m.link_blocks[link][own], 1);
    add(&m.link_bytes[link][own], bytes);
}

uint64_t metrics_link_bytes(size_t link, bool own)
{
    return link < KME_MAX_LINKS ? get(&m.link_bytes[link][own]) : 0;
}

/* ------------------------------------------------------------ rendering */

static void render_requests(prom_writer *w)
{
    char code[8];
    prom_family(w, "qkd_kme_requests_total", PROM_COUNTER,
                "Requests of the ETSI 014 SAE API answered, by endpoint and HTTP status code.");
    for (int ep = 0; ep < METRICS_N_EP; ep++)
        for (size_t c = 0; c < N_CODES; c++) {
            uint64_t v = get(&m.ep[ep].requests[c]);
            if (v == 0 && ep == METRICS_EP_OTHER)
                continue; /* only the endpoints are always there */
            if (v == 0 && c != 0)
                continue;
            if (c < N_CODES - 1)
                snprintf(code, sizeof code, "%d", known_codes[c]);
            else
                snprintf(code, sizeof code, "other");
            prom_label l[] = { { "endpoint", ep_names[ep] }, { "code", code } };
            prom_u64(w, l, 2, v);
        }
    prom_family(w, "qkd_kme_request_duration_seconds", PROM_HISTOGRAM,
                "Time the SAE API spent in its handler per request, by endpoint.");
    for (int ep = 0; ep < METRICS_N_EP; ep++) {
        uint64_t counts[N_BUCKETS + 1];
        for (size_t b = 0; b <= N_BUCKETS; b++)
            counts[b] = get(&m.ep[ep].buckets[b]);
        prom_label l[] = { { "endpoint", ep_names[ep] } };
        prom_histogram(w, l, 1, bucket_s, counts, N_BUCKETS, (double)get(&m.ep[ep].sum_ns) / 1e9);
    }
}

static void render_keys(prom_writer *w)
{
    static const char *const ops[2] = { "dec", "enc" };
    prom_family(w, "qkd_kme_keys_delivered_total", PROM_COUNTER,
                "Keys handed to SAEs: op enc (to the master, enc_keys) or dec (to a slave, dec_keys).");
    for (int i = 1; i >= 0; i--) {
        prom_label l[] = { { "op", ops[i] } };
        prom_u64(w, l, 1, get(&m.keys[i]));
    }
    prom_family(w, "qkd_kme_key_bytes_delivered_total", PROM_COUNTER,
                "Bytes of key material handed to SAEs, by op.");
    for (int i = 1; i >= 0; i--) {
        prom_label l[] = { { "op", ops[i] } };
        prom_u64(w, l, 1, get(&m.key_bytes[i]));
    }
}

static void render_peers(prom_writer *w, const kme_config *cfg)
{
    prom_family(w, "qkd_kme_reservations_total", PROM_COUNTER,
                "Reservations of keys for a peer KME's slaves, by outcome.");
    for (size_t p = 0; p < cfg->n_peers && p < m.n_peers; p++)
        for (int r = 0; r < METRICS_RESV_N; r++) {
            prom_label l[] = { { "peer", cfg->peers[p].id }, { "result", resv_names[r] } };
            prom_u64(w, l, 2, m.resv ? get(&m.resv[p * METRICS_RESV_N + r]) : 0);
        }
    if (cfg->map) {
        prom_family(w, "qkd_kme_relays_total", PROM_COUNTER,
                    "Relayed keys by this KME's role on the path (origin: per path tried) and "
                    "the outcome of its part.");
        for (int r = 0; r < METRICS_RELAY_ROLE_N; r++)
            for (int o = 0; o < METRICS_RELAY_RESULT_N; o++) {
                prom_label l[] = { { "role", relay_roles[r] }, { "result", relay_results[o] } };
                prom_u64(w, l, 2, get(&m.relay[r][o]));
            }
    }
    if (!cfg->n_links)
        return;
    prom_family(w, "qkd_kme_link_blocks_total", PROM_COUNTER,
                "Key blocks each QKD link stored at this KME (both directions).");
    for (size_t i = 0; i < cfg->n_links && i < KME_MAX_LINKS; i++) {
        prom_label l[] = { { "peer", cfg->links[i].peer } };
        prom_u64(w, l, 1, get(&m.link_blocks[i][0]) + get(&m.link_blocks[i][1]));
    }
    prom_family(w, "qkd_kme_link_key_bytes_total", PROM_COUNTER,
                "Bytes of key material each QKD link stored at this KME (both directions).");
    for (size_t i = 0; i < cfg->n_links && i < KME_MAX_LINKS; i++) {
        prom_label l[] = { { "peer", cfg->links[i].peer } };
        prom_u64(w, l, 1, get(&m.link_bytes[i][0]) + get(&m.link_bytes[i][1]));
    }
}

void metrics_render(prom_writer *w, const kme_config *cfg)
{
    render_requests(w);
    render_keys(w);
    render_peers(w, cfg);
    prom_family(w, "qkd_kme_security_events_total", PROM_COUNTER,
                "Security events: unauthorized (every 401), key_reuse, not_a_slave, qber_alarm, "
                "pool_exhausted, rate_limited.");
    for (size_t k = 0; k < sizeof security_kinds / sizeof security_kinds[0]; k++) {
        prom_label l[] = { { "kind", event_kind_name(security_kinds[k]) } };
        prom_u64(w, l, 1, events_total(security_kinds[k]));
    }
    prom_family(w, "qkd_kme_build_info", PROM_GAUGE, "Always 1: the version of this qkd-kme.");
    prom_label v[] = { { "version", QUMAILC_VERSION } };
    prom_u64(w, v, 1, 1);
}
