/* SPDX-License-Identifier: Apache-2.0 */
/*
 * feeder.c - the link simulator's loop (see feeder.h).
 *
 * Consistency between the KMEs is what matters, so every rule here errs
 * towards burning a block rather than letting the two ends disagree:
 * - a block is confirmed only after both KMEs answered that they stored it;
 * - a block that one KME stored and the other did not is discarded at the
 *   first (at once, or by the reconciliation when that KME was unreachable);
 * - after any KME was unreachable, nothing new is produced until both
 *   answered GET /link/v1/state, and the blocks unconfirmed at both are
 *   confirmed, those unconfirmed at one only are discarded there -- except
 *   the ones whose confirmation we owe that KME (confirmed at the other
 *   end while this one was away), which are confirmed: discarding them
 *   would leave bits usable at one end only.
 *
 * Key bytes live in one locked secret buffer, are wiped as soon as both
 * requests are done, and are never logged; logs carry counts, rates and
 * pool levels.
 *
 * [physics] model decoy-bb84 (issue 13): instead of the token bucket, one
 * block per block period (distill.h).  Every block, produced or aborted,
 * and also while its direction is paused, reports its QBER estimate,
 * state and bound to both KMEs: a produced block carries the report as a
 * trailer of its body, the others go as POST /link/v1/report.  Only a KME
 * whose state answer says "reports": 1 gets reports (an old KME would
 * refuse the trailer).  SIGHUP re-reads [physics] and applies it whole.
 */
#include "link/admin.h"
#include "link/feeder.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/monotime.h"
#include "common/secret.h"
#include "link/distill.h"
#include "link/kmeconn.h"
#include "link/model.h"

#define HEADER_BYTES 13          /* block_id (8), owner (1), length (4) */
#define BATCH_MAX 64             /* block IDs per confirm request */
#define BATCH_AGE_MS 100         /* a stored block waits at most this for its confirm */
#define POLL_MS 200              /* state poll while a direction is paused */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define OWED_MAX (1u << 20)      /* owed confirmations kept per KME */
#define IDLE_LOG_MS 30000
#define TRAILER_MAX 1024         /* "R1" + report: the KME's LINK_REPORT_MAX */

typedef struct idlist {
    uint64_t *v;
    size_t n, cap;
} idlist;

typedef struct counters {
    uint64_t blocks, bits;       /* stored at both */
    uint64_t confirmed, discarded;
    uint64_t simulated, aborted, marginal; /* decoy-bb84 blocks */
} counters;

struct feeder {
    const link_config *cfg;
    kmeconn *kc[2];              /* index = KME side: 0 = A, 1 = B */
    bool up[2];                  /* answered since the last failure */
    int64_t retry_at[2], backoff_ms[2];
    bool need_reconcile;
    bool paused[2];              /* by direction (owner side) */
    int64_t poll_at;
    kc_pool pool[2];             /* last known pool of each KME */
    bool pool_known[2];
    secret_buf block;            /* header + bytes of the block in flight */
    uint64_t block_bits;
    double tokens;               /* token bucket, bits */
    int64_t refill_at;
    uint64_t produced[2];        /* blocks per direction, for the ratio */
    uint64_t batch[BATCH_MAX];
    size_t nbatch;
    int64_t batch_since;
    idlist owed[2];              /* confirmations owed to each KME */
    counters total, window;
    int64_t window_start, idle_logged;
    /* [physics] in force (SIGHUP replaces it) */
    link_physics ph;
    distill_model dm;
    distill_rng rng;
    int64_t next_block_at;
    double carry_bits;           /* key bits short of a byte, for the next block */
    bool reports[2];             /* the KME takes QBER reports */
    char report[TRAILER_MAX];    /* "R1" + the report of the block in hand */
    size_t report_len;
    int last_state;              /* distill_state of the last block; -1 none */
    double last_qber;
};

static const char side_char[2] = { 'A', 'B' };

/* ------------------------------------------------------------ helpers */

/* Interrupted by a signal: the loop then sees the stop flag at once. */
static void sleep_ms(int64_t ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

static void put_be(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static int idlist_push(idlist *l, uint64_t id)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        uint64_t *g = realloc(l->v, cap * sizeof *g);
        if (!g)
            return -1;
        l->v = g;
        l->cap = cap;
    }
    l->v[l->n++] = id;
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* qsort() of NULL is undefined even for no elements. */
static void sort_ids(uint64_t *v, size_t n)
{
    if (n > 1)
        qsort(v, n, sizeof *v, cmp_u64);
}

static bool sorted_has(const uint64_t *v, size_t n, uint64_t id)
{
    return n && bsearch(&id, v, n, sizeof *v, cmp_u64) != NULL;
}

/* {"block_IDs":["0123456789abcdef",...]} (malloc'd; *len set). */
static char *ids_json(const uint64_t *ids, size_t n, size_t *len)
{
    size_t cap = 16 + n * 19;
    char *s = malloc(cap), *p = s;
    if (!s)
        return NULL;
    p += sprintf(p, "{\"block_IDs\":[");
    for (size_t i = 0; i < n; i++)
        p += sprintf(p, "%s\"%016" PRIx64 "\"", i ? "," : "", ids[i]);
    p += sprintf(p, "]}");
    *len = (size_t)(p - s);
    return s;
}

/* ------------------------------------------------------------ KME status */

static void mark_down(feeder *f, int k, const char *what)
{
    /* warn on the first failure; the retries that follow are debug noise */
    if (f->up[k] || f->backoff_ms[k] == 0)
        log_warn("KME %s: %s failed: %s; retrying with back-off", kc_name(f->kc[k]), what,
                 kc_reason(f->kc[k]));
    else
        log_debug("KME %s: %s failed: %s", kc_name(f->kc[k]), what, kc_reason(f->kc[k]));
    f->up[k] = false;
    link_admin_kme(k, false);
    f->backoff_ms[k] = f->backoff_ms[k] ? f->backoff_ms[k] : BACKOFF_MIN_MS;
    f->retry_at[k] = mono_ms() + f->backoff_ms[k];
    f->need_reconcile = true;
}

static void note_pool(feeder *f, int k)
{
    kc_pool p;
    if (kc_pool_of(f->kc[k], &p) == 0) {
        f->pool[k] = p;
        f->pool_known[k] = true;
    }
}

/* Bits of direction d (blocks owned by side d) held at KME k. */
static uint64_t level(const feeder *f, int k, int d)
{
    return k == d ? f->pool[k].own_bits : f->pool[k].peer_bits;
}

static bool room_for(const feeder *f, int d)
{
    for (int k = 0; k < 2; k++)
        if (!f->pool_known[k] || level(f, k, d) + f->block_bits > f->pool[k].cap_bits)
            return false;
    return true;
}

/* The KME must be the side it is configured as: a swapped pair would
 * give both ends the same blocks as "own". */
static bool side_ok(feeder *f, int k)
{
    uint64_t *ids = NULL;
    size_t n = 0;
    char side = 0;
    int rc = kc_state_of(f->kc[k], &ids, &n, &side);
    free(ids);
    if (rc != 0 || (side && side != side_char[k])) {
        log_error("KME %s: %s (configured as [kme_%c])", kc_name(f->kc[k]),
                  rc ? "malformed state answer" : "reports the other link side", side_char[k] + 32);
        return false;
    }
    return true;
}

/* GET state from the KMEs that are down and due; the ones that answer
 * are up again (the reconciliation follows once both are). */
static void try_connect(feeder *f)
{
    int64_t now = mono_ms();
    kmeconn *cs[2];
    int ks[2];
    size_t n = 0;
    for (int k = 0; k < 2; k++)
        if (!f->up[k] && now >= f->retry_at[k] && kc_prepare_state(f->kc[k]) == 0) {
            ks[n] = k;
            cs[n++] = f->kc[k];
        }
    kc_perform(cs, n);
    for (size_t i = 0; i < n; i++) {
        int k = ks[i];
        if (kc_result(f->kc[k]) == KC_OK && side_ok(f, k)) {
            f->up[k] = true;
            f->reports[k] = kc_takes_reports(f->kc[k]);
            if (!f->reports[k])
                log_warn("KME %s takes no QBER reports (an older qkd-kme): it gets key blocks only",
                         kc_name(f->kc[k]));
            link_admin_kme(k, true);
            f->backoff_ms[k] = 0;
            note_pool(f, k);
            log_info("KME %s: connected", kc_name(f->kc[k]));
            continue;
        }
        f->backoff_ms[k] = f->backoff_ms[k] * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : f->backoff_ms[k] * 2;
        mark_down(f, k, "connect");
    }
}

static int64_t next_retry(const feeder *f)
{
    int64_t t = INT64_MAX;
    for (int k = 0; k < 2; k++)
        if (!f->up[k] && f->retry_at[k] < t)
            t = f->retry_at[k];
    return t;
}

/* ------------------------------------------------------------ confirm, discard */

/* POST ids to path at the KMEs in which[]; false where it failed. */
static void post_ids(feeder *f, const char *path, const uint64_t *ids, size_t n,
                     const bool which[2], bool ok[2])
{
    size_t len = 0;
    char *json = ids_json(ids, n, &len);
    kmeconn *cs[2];
    size_t m = 0;
    for (int k = 0; k < 2; k++) {
        ok[k] = !which[k];
        if (which[k] && json && kc_prepare_ids(f->kc[k], path, json, len) == 0)
            cs[m++] = f->kc[k];
    }
    kc_perform(cs, m);
    for (size_t i = 0; i < m; i++) {
        int k = cs[i] == f->kc[0] ? 0 : 1;
        ok[k] = kc_result(cs[i]) == KC_OK;
    }
    free(json);
}

static void owe(feeder *f, int k, const uint64_t *ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (f->owed[k].n >= OWED_MAX || idlist_push(&f->owed[k], ids[i]) != 0) {
            log_error("KME %s: cannot remember more owed confirmations", kc_name(f->kc[k]));
            return;
        }
}

/* Confirm the batch at both KMEs; a KME that fails is owed them. */
static void flush_confirms(feeder *f)
{
    if (!f->nbatch)
        return;
    bool ok[2];
    post_ids(f, "/link/v1/confirm", f->batch, f->nbatch, (const bool[2]){ true, true }, ok);
    for (int k = 0; k < 2; k++)
        if (!ok[k]) {
            owe(f, k, f->batch, f->nbatch);
            mark_down(f, k, "confirm");
        }
    f->total.confirmed += f->nbatch;
    f->window.confirmed += f->nbatch;
    f->nbatch = 0;
}

static void discard_at(feeder *f, int k, uint64_t id)
{
    bool which[2] = { k == 0, k == 1 }, ok[2];
    post_ids(f, "/link/v1/discard", &id, 1, which, ok);
    f->total.discarded++;
    f->window.discarded++;
    if (!ok[k])
        mark_down(f, k, "discard"); /* the reconciliation discards it */
}

/* ------------------------------------------------------------ reconciliation */

typedef struct plan {
    idlist confirm[2], discard[2];
} plan;

static void plan_free(plan *p)
{
    for (int k = 0; k < 2; k++) {
        free(p->confirm[k].v);
        free(p->discard[k].v);
    }
}

/* What to do with the blocks unconfirmed at KME k (sorted lists). */
static int plan_side(feeder *f, int k, const uint64_t *mine, size_t nm,
                     const uint64_t *other, size_t no, plan *p)
{
    sort_ids(f->owed[k].v, f->owed[k].n);
    for (size_t i = 0; i < nm; i++) {
        bool both = sorted_has(other, no, mine[i]);
        bool owed = sorted_has(f->owed[k].v, f->owed[k].n, mine[i]);
        idlist *to = both || owed ? &p->confirm[k] : &p->discard[k];
        if (idlist_push(to, mine[i]) != 0)
            return -1;
    }
    return 0;
}

static int fetch_states(feeder *f, uint64_t *ids[2], size_t n[2])
{
    kmeconn *cs[2] = { f->kc[0], f->kc[1] };
    char side;
    ids[0] = ids[1] = NULL;
    if (kc_prepare_state(cs[0]) != 0 || kc_prepare_state(cs[1]) != 0)
        return -1;
    kc_perform(cs, 2);
    for (int k = 0; k < 2; k++) {
        if (kc_result(cs[k]) != KC_OK || kc_state_of(cs[k], &ids[k], &n[k], &side) != 0) {
            mark_down(f, k, "state");
            return -1;
        }
        note_pool(f, k);
        sort_ids(ids[k], n[k]);
    }
    return 0;
}

static void apply_plan(feeder *f, plan *p, const char *path, bool confirm)
{
    for (int k = 0; k < 2; k++) {
        idlist *l = confirm ? &p->confirm[k] : &p->discard[k];
        bool which[2] = { k == 0, k == 1 }, ok[2];
        if (!l->n || !f->up[k])
            continue;
        post_ids(f, path, l->v, l->n, which, ok);
        if (!ok[k])
            mark_down(f, k, confirm ? "confirm" : "discard");
    }
}

static void reconcile(feeder *f)
{
    uint64_t *ids[2];
    size_t n[2] = { 0, 0 };
    plan p;
    memset(&p, 0, sizeof p);
    flush_confirms(f);
    if (!f->up[0] || !f->up[1] || fetch_states(f, ids, n) != 0)
        return;
    if (plan_side(f, 0, ids[0], n[0], ids[1], n[1], &p) == 0
        && plan_side(f, 1, ids[1], n[1], ids[0], n[0], &p) == 0) {
        apply_plan(f, &p, "/link/v1/confirm", true);
        apply_plan(f, &p, "/link/v1/discard", false);
        if (f->up[0] && f->up[1]) {
            log_info("reconciled with %s and %s: confirmed %zu + %zu, discarded %zu + %zu unconfirmed blocks",
                     kc_name(f->kc[0]), kc_name(f->kc[1]), p.confirm[0].n, p.confirm[1].n,
                     p.discard[0].n, p.discard[1].n);
            f->owed[0].n = f->owed[1].n = 0;
            f->need_reconcile = false;
            f->poll_at = 0; /* re-evaluate paused directions from fresh levels */
        }
    }
    plan_free(&p);
    free(ids[0]);
    free(ids[1]);
}

/* ------------------------------------------------------------ pacing */

static void refill(feeder *f, int64_t now)
{
    double burst = (double)f->cfg->rate_bps / 10;   /* 100 ms of rate */
    if (burst < 2.0 * (double)f->block_bits)
        burst = 2.0 * (double)f->block_bits;
    f->tokens += (double)(now - f->refill_at) * (double)f->cfg->rate_bps / 1000.0;
    if (f->tokens > burst)
        f->tokens = burst;
    f->refill_at = now;
}

/* ms to wait until a block's bits are in the bucket (0: take them now). */
static int64_t tokens_wait(feeder *f)
{
    refill(f, mono_ms());
    if (f->tokens >= (double)f->block_bits)
        return 0;
    double ms = ((double)f->block_bits - f->tokens) * 1000.0 / (double)f->cfg->rate_bps;
    return (int64_t)ms + 1;
}

/* The owner of the next block: the open direction furthest behind its
 * share of the ratio (A first on a tie); -1 when both are paused. */
static int next_direction(const feeder *f)
{
    unsigned w[2] = { f->cfg->ratio_a, f->cfg->ratio_b };
    bool open[2] = { w[0] && !f->paused[0], w[1] && !f->paused[1] };
    if (open[0] && open[1])
        return (f->produced[0] + 1) * w[1] <= (f->produced[1] + 1) * w[0] ? 0 : 1;
    return open[0] ? 0 : open[1] ? 1 : -1;
}

static void pause_direction(feeder *f, int d, int k)
{
    if (!f->paused[d])
        log_info("direction %c paused: pool full at KME %s", side_char[d], kc_name(f->kc[k]));
    f->paused[d] = true;
    f->poll_at = mono_ms() + POLL_MS;
}

/* While a direction is paused: read both pools every POLL_MS. */
static void poll_paused(feeder *f)
{
    kmeconn *cs[2] = { f->kc[0], f->kc[1] };
    flush_confirms(f); /* the levels count confirmed blocks only */
    if (!f->up[0] || !f->up[1] || kc_prepare_state(cs[0]) != 0 || kc_prepare_state(cs[1]) != 0)
        return;
    kc_perform(cs, 2);
    for (int k = 0; k < 2; k++) {
        if (kc_result(cs[k]) != KC_OK) {
            mark_down(f, k, "state");
            return;
        }
        note_pool(f, k);
    }
    for (int d = 0; d < 2; d++)
        if (f->paused[d] && room_for(f, d)) {
            log_info("direction %c resumed", side_char[d]);
            f->paused[d] = false;
            f->produced[0] = f->produced[1] = 0; /* no catch-up burst */
        }
    f->poll_at = mono_ms() + POLL_MS;
}

/* ------------------------------------------------------------ one block */

static void fill_block(feeder *f, int d, uint64_t *id, size_t len)
{
    uint8_t *b = f->block.data;
    secret_random(id, sizeof *id);
    put_be(b, *id, 8);
    b[8] = (uint8_t)d;
    put_be(b + 9, len, 4);
    secret_random(b + HEADER_BYTES, len);
    f->block.len = HEADER_BYTES + len;
}

static void stored_at_both(feeder *f, uint64_t id)
{
    if (f->nbatch == 0)
        f->batch_since = mono_ms();
    f->batch[f->nbatch++] = id;
    f->total.blocks++;
    f->window.blocks++;
    f->total.bits += f->block_bits;
    f->window.bits += f->block_bits;
    link_admin_block(f->block_bits / 8);
    note_pool(f, 0);
    note_pool(f, 1);
}

/* The block reached one KME at most: undo it there, learn why. */
static void stored_partly(feeder *f, int d, uint64_t id, const kc_outcome r[2])
{
    for (int k = 0; k < 2; k++) {
        if (r[k] == KC_FULL)
            pause_direction(f, d, k);
        else if (r[k] == KC_CONFLICT)
            log_warn("KME %s: block ID already known with other bytes; block dropped", kc_name(f->kc[k]));
        else if (r[k] == KC_FAIL)
            mark_down(f, k, "store");
    }
    for (int k = 0; k < 2; k++)
        if (r[k] == KC_OK && f->up[k])
            discard_at(f, k, id);
}

/* len bytes of key owned by d; the report in f->report (if any) rides
 * along as a trailer to the KMEs that take reports. */
static void feed_block(feeder *f, int d, size_t len)
{
    uint64_t id;
    kmeconn *cs[2] = { f->kc[0], f->kc[1] };
    kc_outcome r[2] = { KC_FAIL, KC_FAIL };
    size_t plain;
    f->block_bits = (uint64_t)len * 8;
    fill_block(f, d, &id, len);
    plain = f->block.len;
    memcpy(f->block.data + plain, f->report, f->report_len);
    f->produced[d]++;
    if (kc_prepare_block(cs[0], f->block.data, plain + (f->reports[0] ? f->report_len : 0)) == 0
        && kc_prepare_block(cs[1], f->block.data, plain + (f->reports[1] ? f->report_len : 0)) == 0) {
        kc_perform(cs, 2);
        r[0] = kc_result(cs[0]);
        r[1] = kc_result(cs[1]);
    }
    secret_wipe(f->block.data, plain); /* both copies are sent */
    if (r[0] == KC_OK && r[1] == KC_OK)
        stored_at_both(f, id);
    else
        stored_partly(f, d, id, r);
}

/* ------------------------------------------------------------ physics */

/* "R1" + {"state":...} into f->report (link_block.h in the KME reads it). */
static void make_report(feeder *f, const char *state, bool has_qber, double qber, uint64_t secret_bits,
                        const char *reason)
{
    bool decoy = f->ph.model == LINK_MODEL_DECOY_BB84;
    char q[32] = "null", b[32] = "null", dist[32] = "null", why[160] = "";
    if (has_qber)
        snprintf(q, sizeof q, "%.6f", qber);
    if (decoy) {
        snprintf(b, sizeof b, "%.6f", f->dm.bound);
        snprintf(dist, sizeof dist, "%.3f", f->ph.distance_km);
    }
    if (reason && *reason)
        snprintf(why, sizeof why, ",\"reason\":\"%s\"", reason); /* our own text: no quotes */
    int n = snprintf(f->report, sizeof f->report, "R1{\"state\":\"%s\",\"qber\":%s,\"bound\":%s,"
                     "\"model\":\"%s\",\"distance_km\":%s,\"time_scale\":%.9g,\"secret_bits\":%" PRIu64 "%s}",
                     state, q, b, link_model_name(f->ph.model), dist, f->ph.time_scale, secret_bits, why);
    f->report_len = n > 0 && (size_t)n < sizeof f->report ? (size_t)n : 0;
}

/* A block that produced no key: its report alone, to both KMEs. */
static void send_report(feeder *f)
{
    bool which[2] = { f->reports[0], f->reports[1] }, ok[2];
    if (f->report_len < 2 || (!which[0] && !which[1]))
        return;
    size_t len = f->report_len - 2;
    kmeconn *cs[2];
    size_t m = 0;
    for (int k = 0; k < 2; k++)
        if (which[k] && kc_prepare_ids(f->kc[k], "/link/v1/report", f->report + 2, len) == 0)
            cs[m++] = f->kc[k];
    kc_perform(cs, m);
    for (int k = 0; k < 2; k++) {
        ok[k] = !which[k] || kc_result(f->kc[k]) == KC_OK;
        if (!ok[k])
            mark_down(f, k, "report");
    }
}

static void log_physics(feeder *f, const char *why)
{
    const link_physics *ph = &f->ph;
    if (ph->model != LINK_MODEL_DECOY_BB84) {
        log_info("%s: model fixed: %.3f Mbit/s in blocks of %lld bytes", why, (double)f->cfg->rate_bps / 1e6,
                 (long long)f->cfg->block_bytes);
        return;
    }
    log_info("%s: model decoy-bb84 at %g km, mu %.4f%s, eavesdropper %g, time_scale %g: key rate %.1f bit/s "
             "physical (%.1f bit/s at this time scale), QBER %.4f (%.4f without Eve), bound %.4f, a block "
             "every %lld ms", why, ph->distance_km, f->dm.mu, ph->mu > 0 ? "" : " (optimised)", ph->eavesdropper,
             ph->time_scale, f->dm.secret_rate_bps, f->dm.secret_rate_bps * ph->time_scale, f->dm.true_qber,
             f->dm.honest_qber, f->dm.bound, (long long)distill_period_ms(ph, &f->dm));
}

static void apply_physics(feeder *f, const link_physics *ph)
{
    f->ph = *ph;
    distill_prepare(&f->ph, &f->dm);
    f->next_block_at = mono_ms();
    f->carry_bits = 0;
    f->last_state = -1;
}

/* SIGHUP: the file again; [physics] applied whole, or nothing. */
static void reload(feeder *f)
{
    link_config fresh;
    char err[1024];
    if (link_config_load(f->cfg->path, &fresh, err, sizeof err) != 0) {
        log_error("SIGHUP: configuration refused, the previous settings stay: %s", err);
        return;
    }
    apply_physics(f, &fresh.physics);
    link_config_free(&fresh);
    log_physics(f, "SIGHUP: physics applied");
}

static void note_state(feeder *f, const distill_block *b)
{
    if ((int)b->state != f->last_state)
        log_info("blocks now %s: QBER estimate %.4f (bound %.4f)%s%s", distill_state_name(b->state), b->qber,
                 f->dm.bound, b->reason[0] ? ": " : "", b->reason);
    f->last_state = (int)b->state;
    f->last_qber = b->qber;
    link_admin_qber(b->qber, b->state == DISTILL_ABORTED); /* /metrics (admin.h) */
    link_admin_state(distill_state_name(b->state));
    link_admin_rate(f->dm.secret_rate_bps * f->ph.time_scale / 8); /* the model's, scaled */
    f->total.simulated++;
    f->window.simulated++;
    if (b->state == DISTILL_ABORTED) {
        f->total.aborted++;
        f->window.aborted++;
    } else if (b->state == DISTILL_MARGINAL) {
        f->total.marginal++;
        f->window.marginal++;
    }
}

/* One decoy-bb84 block when its period is over. */
static void decoy_block(feeder *f, int64_t now)
{
    if (now < f->next_block_at) {
        int64_t wait = f->next_block_at - now;
        if (f->nbatch && f->batch_since + BATCH_AGE_MS - now < wait)
            wait = f->batch_since + BATCH_AGE_MS - now;
        sleep_ms(wait > 50 ? 50 : wait);
        return;
    }
    int64_t period = distill_period_ms(&f->ph, &f->dm);
    f->next_block_at = (now - f->next_block_at > 1000 ? now : f->next_block_at) + period;
    distill_block b;
    distill_run(&f->ph, &f->dm, &f->rng, period, &b);
    note_state(f, &b);
    size_t bytes = 0;
    int d = -1;
    if (b.state == DISTILL_DISTILLING) {
        f->carry_bits += b.secret_bits;
        bytes = (size_t)(f->carry_bits / 8);
        if (bytes > LINK_MAX_BLOCK_BYTES)
            bytes = LINK_MAX_BLOCK_BYTES;
        d = bytes ? next_direction(f) : -1;
        f->carry_bits = d >= 0 ? f->carry_bits - 8.0 * (double)bytes : 0; /* a paused direction loses it */
    }
    make_report(f, distill_state_name(b.state), true, b.qber, d >= 0 ? (uint64_t)bytes * 8 : 0, b.reason);
    if (d >= 0)
        feed_block(f, d, bytes);
    else
        send_report(f);
}

/* ------------------------------------------------------------ logging */

/* One line a second while blocks flow; while both directions are paused
 * (nothing changes) one every IDLE_LOG_MS, so that the log stays useful. */
static void log_status(feeder *f, int64_t now)
{
    double s = (double)(now - f->window_start) / 1000.0;
    bool busy = f->window.blocks || f->window.discarded || f->window.simulated;
    bool paused = f->paused[0] || f->paused[1];
    if (s < 1.0)
        return;
    if (!busy && paused && now - f->idle_logged >= IDLE_LOG_MS)
        f->idle_logged = now;
    else if (!busy)
        paused = false; /* nothing to say this second */
    char phys[200] = "";
    if (f->ph.model == LINK_MODEL_DECOY_BB84)
        snprintf(phys, sizeof phys, "; decoy-bb84 %g km, time_scale %g (%.1f bit/s physical): %" PRIu64
                 " blocks, %" PRIu64 " aborted, %" PRIu64 " marginal, last QBER %.4f (bound %.4f)",
                 f->ph.distance_km, f->ph.time_scale, (double)f->window.bits / s / f->ph.time_scale,
                 f->window.simulated, f->window.aborted, f->window.marginal, f->last_qber, f->dm.bound);
    if (busy || paused)
        log_info("%.2f Mbit/s (%.1f blocks/s); total %" PRIu64 " blocks stored, %" PRIu64
                 " confirmed, %" PRIu64 " discarded; pools (own/peer/cap Mbit) %s %.1f/%.1f/%.1f, %s %.1f/%.1f/%.1f%s%s%s",
                 (double)f->window.bits / s / 1e6, (double)f->window.blocks / s,
                 f->total.blocks, f->total.confirmed, f->total.discarded,
                 kc_name(f->kc[0]), f->pool[0].own_bits / 1e6, f->pool[0].peer_bits / 1e6, f->pool[0].cap_bits / 1e6,
                 kc_name(f->kc[1]), f->pool[1].own_bits / 1e6, f->pool[1].peer_bits / 1e6, f->pool[1].cap_bits / 1e6,
                 f->paused[0] ? "; A paused" : "", f->paused[1] ? "; B paused" : "", phys);
    memset(&f->window, 0, sizeof f->window);
    f->window_start = now;
}

/* ------------------------------------------------------------ the loop */

/* One step when both KMEs are up and reconciled. */
static void step(feeder *f)
{
    int64_t now = mono_ms();
    if (f->nbatch && (f->nbatch == BATCH_MAX || now - f->batch_since >= BATCH_AGE_MS)) {
        flush_confirms(f);
        return;
    }
    if ((f->paused[0] || f->paused[1]) && now >= f->poll_at) {
        poll_paused(f);
        return;
    }
    if (f->ph.model == LINK_MODEL_DECOY_BB84) {
        decoy_block(f, now);
        return;
    }
    f->block_bits = (uint64_t)f->cfg->block_bytes * 8;
    int d = next_direction(f);
    int64_t wait = d < 0 ? f->poll_at - now : tokens_wait(f);
    if (wait > 0) {
        if (f->nbatch && f->batch_since + BATCH_AGE_MS - now < wait)
            wait = f->batch_since + BATCH_AGE_MS - now;
        sleep_ms(wait > 50 ? 50 : wait);
        return;
    }
    f->tokens -= (double)f->block_bits;
    make_report(f, "distilling", false, 0, f->block_bits, NULL);
    feed_block(f, d, (size_t)f->cfg->block_bytes);
}

int feeder_run(feeder *f, volatile sig_atomic_t *stop, volatile sig_atomic_t *reload_now)
{
    f->refill_at = f->window_start = mono_ms();
    log_physics(f, "start");
    while (!*stop) {
        if (*reload_now) {
            *reload_now = 0;
            reload(f);
        }
        if (!f->up[0] || !f->up[1]) {
            int64_t wait = next_retry(f) - mono_ms();
            if (wait > 0)
                sleep_ms(wait > 100 ? 100 : wait);
            else
                try_connect(f);
        } else if (f->need_reconcile) {
            reconcile(f);
        } else {
            step(f);
        }
        log_status(f, mono_ms());
    }
    if (f->up[0] && f->up[1])
        flush_confirms(f);
    log_info("stopped: %" PRIu64 " blocks (%.1f Mbit) stored at both KMEs, %" PRIu64 " confirmed, %" PRIu64 " discarded",
             f->total.blocks, f->total.bits / 1e6, f->total.confirmed, f->total.discarded);
    return 0;
}

feeder *feeder_new(const link_config *cfg)
{
    feeder *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->cfg = cfg;
    f->block_bits = (uint64_t)cfg->block_bytes * 8;
    f->need_reconcile = true;
    f->kc[0] = kc_new(cfg, 0);
    f->kc[1] = kc_new(cfg, 1);
    distill_rng_seed(&f->rng, NULL);
    apply_physics(f, &cfg->physics);
    /* room for any block size a SIGHUP may bring, and the trailer */
    if (!f->kc[0] || !f->kc[1]
        || secret_alloc(&f->block, HEADER_BYTES + LINK_MAX_BLOCK_BYTES + TRAILER_MAX) != 0) {
        feeder_free(f);
        return NULL;
    }
    return f;
}

void feeder_free(feeder *f)
{
    if (!f)
        return;
    kc_free(f->kc[0]);
    kc_free(f->kc[1]);
    secret_free(&f->block);
    distill_rng_wipe(&f->rng);
    for (int k = 0; k < 2; k++)
        free(f->owed[k].v);
    free(f);
}
