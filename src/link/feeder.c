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
#include "link/kmeconn.h"

#define HEADER_BYTES 13          /* block_id (8), owner (1), length (4) */
#define BATCH_MAX 64             /* block IDs per confirm request */
#define BATCH_AGE_MS 100         /* a stored block waits at most this for its confirm */
#define POLL_MS 200              /* state poll while a direction is paused */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define OWED_MAX (1u << 20)      /* owed confirmations kept per KME */
#define IDLE_LOG_MS 30000

typedef struct idlist {
    uint64_t *v;
    size_t n, cap;
} idlist;

typedef struct counters {
    uint64_t blocks, bits;       /* stored at both */
    uint64_t confirmed, discarded;
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

static void fill_block(feeder *f, int d, uint64_t *id)
{
    uint8_t *b = f->block.data;
    size_t len = (size_t)f->cfg->block_bytes;
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

static void feed_block(feeder *f, int d)
{
    uint64_t id;
    kmeconn *cs[2] = { f->kc[0], f->kc[1] };
    kc_outcome r[2] = { KC_FAIL, KC_FAIL };
    fill_block(f, d, &id);
    f->produced[d]++;
    if (kc_prepare_block(cs[0], f->block.data, f->block.len) == 0
        && kc_prepare_block(cs[1], f->block.data, f->block.len) == 0) {
        kc_perform(cs, 2);
        r[0] = kc_result(cs[0]);
        r[1] = kc_result(cs[1]);
    }
    secret_wipe(f->block.data, f->block.len); /* both copies are sent */
    if (r[0] == KC_OK && r[1] == KC_OK)
        stored_at_both(f, id);
    else
        stored_partly(f, d, id, r);
}

/* ------------------------------------------------------------ logging */

/* One line a second while blocks flow; while both directions are paused
 * (nothing changes) one every IDLE_LOG_MS, so that the log stays useful. */
static void log_status(feeder *f, int64_t now)
{
    double s = (double)(now - f->window_start) / 1000.0;
    bool busy = f->window.blocks || f->window.discarded;
    bool paused = f->paused[0] || f->paused[1];
    if (s < 1.0)
        return;
    if (!busy && paused && now - f->idle_logged >= IDLE_LOG_MS)
        f->idle_logged = now;
    else if (!busy)
        paused = false; /* nothing to say this second */
    if (busy || paused)
        log_info("%.2f Mbit/s (%.1f blocks/s); total %" PRIu64 " blocks stored, %" PRIu64
                 " confirmed, %" PRIu64 " discarded; pools (own/peer/cap Mbit) %s %.1f/%.1f/%.1f, %s %.1f/%.1f/%.1f%s%s",
                 (double)f->window.bits / s / 1e6, (double)f->window.blocks / s,
                 f->total.blocks, f->total.confirmed, f->total.discarded,
                 kc_name(f->kc[0]), f->pool[0].own_bits / 1e6, f->pool[0].peer_bits / 1e6, f->pool[0].cap_bits / 1e6,
                 kc_name(f->kc[1]), f->pool[1].own_bits / 1e6, f->pool[1].peer_bits / 1e6, f->pool[1].cap_bits / 1e6,
                 f->paused[0] ? "; A paused" : "", f->paused[1] ? "; B paused" : "");
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
    int d = next_direction(f);
    int64_t wait = d < 0 ? f->poll_at - now : tokens_wait(f);
    if (wait > 0) {
        if (f->nbatch && f->batch_since + BATCH_AGE_MS - now < wait)
            wait = f->batch_since + BATCH_AGE_MS - now;
        sleep_ms(wait > 50 ? 50 : wait);
        return;
    }
    f->tokens -= (double)f->block_bits;
    feed_block(f, d);
}

int feeder_run(feeder *f, volatile sig_atomic_t *stop)
{
    f->refill_at = f->window_start = mono_ms();
    while (!*stop) {
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
    if (!f->kc[0] || !f->kc[1] || secret_alloc(&f->block, HEADER_BYTES + (size_t)cfg->block_bytes) != 0) {
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
    for (int k = 0; k < 2; k++)
        free(f->owed[k].v);
    free(f);
}
