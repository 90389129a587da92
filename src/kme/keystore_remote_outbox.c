/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keystore_remote_outbox.c - reservations we make for our masters (we are
 * the master's KME; docs/kme-pair.md): ks_remote_enc takes each key's bytes
 * from own blocks in order and records the reservation in the outbox
 * ('pending' until the peer answers, then dropped: ks_remote_confirmed,
 * ks_remote_acked; 'void' until the peer has the void).  After a crash the
 * pending entries are of unknown fate until the peer tells
 * (ks_outbox_recover, ks_outbox_settle).
 *
 * Calls keystore_blocks.c, keystore_local.c (batches, slave lists),
 * keystore_unfetched.c and keystore_db.c.  Locks: bodies run under ks->mu;
 * the lists acked and unknown are under fate_mu, taken after mu, never
 * before it (keystore_internal.h).
 */
#include "kme/keystore.h"
#include "kme/keystore_internal.h"
#include "kme/keystore_link_internal.h"

#include <inttypes.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/secret.h"
#include "common/uuid.h"

/* ---- our reservations (we are the master's KME) ------------------------- */

/* Persist the cursor (the bytes it passed are zero already), or erase the
 * whole block at its end. */
int ksi_own_flush(keystore *ks, ksi_own_cur *cur)
{
    assert(ks_lock_held(ks));
    if (!cur->have || cur->b.cursor == cur->start)
        return 0;
    if (cur->b.cursor == cur->b.length)
        return ksi_blk_erase(ks, cur->b.id);
    sqlite3_stmt *s = L(ks, LS_CURSOR_SET);
    sqlite3_bind_int64(s, 1, bid(cur->b.id));
    sqlite3_bind_int64(s, 2, cur->b.cursor);
    return step_reset(s) == SQLITE_DONE ? 0 : -1;
}

/* Move to the next own confirmed block with unused bytes: 1, 0 none, -1. */
static int own_next(keystore *ks, ksi_own_cur *cur)
{
    assert(ks_lock_held(ks));
    if (ksi_own_flush(ks, cur) != 0)
        return -1;
    sqlite3_stmt *s = L(ks, LS_OWN_NEXT);
    sqlite3_bind_int64(s, 1, cur->have ? cur->key_ms : INT64_MIN);
    sqlite3_bind_int64(s, 2, cur->have ? cur->key_id : INT64_MIN);
    sqlite3_bind_int64(s, 3, cur->link);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        cur->key_id = sqlite3_column_int64(s, 0);
        cur->b = (blk){.id = (uint64_t)cur->key_id, .link = cur->link, .own = true,
                       .confirmed = true,
                       .length = (uint32_t)sqlite3_column_int64(s, 1),
                       .cursor = (uint32_t)sqlite3_column_int64(s, 2)};
        cur->key_ms = sqlite3_column_int64(s, 3);
        cur->start = cur->b.cursor;
        cur->have = true;
    }
    sqlite3_reset(s);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/* Outbox entries of acknowledged reservations one ks_remote_enc drops on
 * its way (ks_remote_acked): a DELETE each, in a transaction that commits
 * anyway, instead of a commit per answer. */
#define ACKED_PER_ENC 64

struct ksi_acked {
    uint8_t id[16];
};

struct ksi_unknown {
    uint8_t id[16];
    char *peer;
};

typedef struct enc_ctx {
    tx t;
    const char *peer, *master;
    const slave_list *sl;
    ks_reservation *out;
    ksi_segvec segs;          /* out->segs, grown as keys are taken */
    struct ksi_acked drop[ACKED_PER_ENC]; /* taken from ks->acked */
    size_t n_drop;
} enc_ctx;

static int seg_push(ksi_segvec *v, ks_segment seg)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 8;
        ks_segment *p = realloc(v->segs, cap * sizeof *p);
        if (!p)
            return -1;
        v->segs = p;
        v->cap = cap;
    }
    v->segs[v->n++] = seg;
    return 0;
}

/* Take len bytes from the own blocks of cur's link, in order, into dst,
 * as one or more segments appended to v; KS_EMPTY when they run out. */
ks_result ksi_own_take(keystore *ks, ksi_own_cur *cur, uint8_t *dst, uint32_t len,
                       ksi_segvec *v)
{
    assert(ks_lock_held(ks));
    uint32_t left = len;
    while (left > 0) {
        if (!cur->have || cur->b.cursor == cur->b.length) {
            int rc = own_next(ks, cur);
            if (rc <= 0)
                return rc < 0 ? KS_ERROR : KS_EMPTY;
        }
        uint32_t take = cur->b.length - cur->b.cursor;
        take = take < left ? take : left;
        /* the block's last bytes are not zeroed: ksi_own_flush deletes it */
        bool last = take == cur->b.length - cur->b.cursor;
        if (ksi_mat_read(ks, &cur->b, cur->b.cursor, take, dst) != 0 ||
            (!last && ksi_mat_zero(ks, cur->b.id, cur->b.length, cur->b.cursor, take) != 0) ||
            seg_push(v, (ks_segment){cur->b.id, cur->b.cursor, take}) != 0)
            return KS_ERROR;
        cur->b.cursor += take;
        dst += take;
        left -= take;
    }
    return KS_OK;
}

/* Take one key's bytes from own blocks, in order, as one or more segments. */
static ks_result take_key(keystore *ks, enc_ctx *c, ksi_own_cur *cur, size_t i)
{
    assert(ks_lock_held(ks));
    ks_key *k = &c->out->keys.keys[i];
    c->out->first_seg[i] = c->segs.n;
    ks_result r = ksi_own_take(ks, cur, (uint8_t *)k->material, k->size_bits / 8, &c->segs);
    c->out->segs = c->segs.segs; /* it may have moved */
    c->out->total_segs = c->segs.n;
    c->out->n_segs[i] = c->segs.n - c->out->first_seg[i];
    return r;
}

int ksi_outbox_insert(keystore *ks, const uint8_t id[16], const char *peer, const char *master,
                      const slave_list *sl, const ks_segment *segs, size_t nsegs,
                      int64_t expires_ms)
{
    assert(ks_lock_held(ks));
    size_t len = nsegs * SEG_WIRE;
    uint8_t *blob = malloc(len ? len : 1);
    if (!blob)
        return -1;
    for (size_t i = 0; i < nsegs; i++) {
        put_be(blob + i * SEG_WIRE, segs[i].block_id, 8);
        put_be(blob + i * SEG_WIRE + 8, segs[i].offset, 4);
        put_be(blob + i * SEG_WIRE + 12, segs[i].length, 4);
    }
    sqlite3_stmt *s = L(ks, LS_OB_INSERT);
    sqlite3_bind_blob(s, 1, id, 16, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, peer, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, master, -1, SQLITE_STATIC);
    sqlite3_bind_blob(s, 4, sl->data, (int)sl->len, SQLITE_STATIC);
    sqlite3_bind_blob(s, 5, blob, (int)len, SQLITE_STATIC);
    sqlite3_bind_int64(s, 6, now_ms(ks));
    sqlite3_bind_int64(s, 7, expires_ms);
    int rc = step_reset(s);
    sqlite3_clear_bindings(s);
    free(blob);
    return rc == SQLITE_DONE ? 0 : -1;
}

static int drop_acked(keystore *ks, const struct ksi_acked *ids, size_t n);

static ks_result enc_body(keystore *ks, tx *t)
{
    assert(ks_lock_held(ks));
    enc_ctx *c = (enc_ctx *)t;
    ksi_own_cur cur = {.have = false, .link = ksi_link_find(ks, c->peer)};
    if (drop_acked(ks, c->drop, c->n_drop) != 0)
        return KS_ERROR;
    ksi_tx_expect(ks, c->out->keys.arena.len);
    /* No sum over all blocks first: it cost more than the allocation (a
     * scan of every block per call).  Running out mid-way is KS_EMPTY and
     * the transaction is rolled back. */
    for (size_t i = 0; i < c->out->keys.n; i++) {
        ks_result r = take_key(ks, c, &cur, i);
        if (r != KS_OK)
            return r;
    }
    const ks_reservation *r = c->out;
    if (ksi_own_flush(ks, &cur) != 0 ||
        ksi_outbox_insert(ks, r->id, c->peer, c->master, c->sl, r->segs, r->total_segs,
                          r->expires_ms) != 0)
        return KS_ERROR;
    t->changed = true;
    return KS_OK;
}

/* ---- acknowledged reservations (ks_remote_acked) ----------------------- */

static int acked_push(keystore *ks, const uint8_t id[16])
{
    if (ks->n_acked == ks->cap_acked) {
        size_t cap = ks->cap_acked ? ks->cap_acked * 2 : 256;
        struct ksi_acked *p = realloc(ks->acked, cap * sizeof *p);
        if (!p)
            return -1;
        ks->acked = p;
        ks->cap_acked = cap;
    }
    memcpy(ks->acked[ks->n_acked++].id, id, 16);
    return 0;
}

/* Take up to max entries (the newest: order does not matter). */
static size_t acked_take(keystore *ks, struct ksi_acked *dst, size_t max)
{
    pthread_mutex_lock(&ks->fate_mu);
    size_t n = ks->n_acked < max ? ks->n_acked : max;
    ks->n_acked -= n;
    if (n > 0) /* the list may not exist yet (NULL) */
        memcpy(dst, ks->acked + ks->n_acked, n * sizeof *dst);
    pthread_mutex_unlock(&ks->fate_mu);
    return n;
}

/* Give back entries a rolled-back transaction did not drop.  Lost only
 * when out of memory: the entry then stays pending until the next start,
 * whose recovery asks the peer and drops it. */
static void acked_put_back(keystore *ks, const struct ksi_acked *ids, size_t n)
{
    pthread_mutex_lock(&ks->fate_mu);
    for (size_t i = 0; i < n; i++)
        if (acked_push(ks, ids[i].id) != 0)
            break;
    pthread_mutex_unlock(&ks->fate_mu);
}

static int drop_acked(keystore *ks, const struct ksi_acked *ids, size_t n)
{
    assert(ks_lock_held(ks));
    sqlite3_stmt *s = L(ks, LS_OB_CONFIRMED);
    for (size_t i = 0; i < n; i++) {
        sqlite3_bind_blob(s, 1, ids[i].id, 16, SQLITE_STATIC);
        if (step_reset(s) != SQLITE_DONE)
            return -1;
    }
    return 0;
}

ks_result ks_remote_acked(keystore *ks, const uint8_t id[16])
{
    if (!ks || !id)
        return KS_ERROR;
    pthread_mutex_lock(&ks->fate_mu);
    int rc = acked_push(ks, id);
    pthread_mutex_unlock(&ks->fate_mu);
    return rc == 0 ? KS_OK : KS_ERROR;
}

typedef struct drop_ctx {
    tx t;
    struct ksi_acked ids[ACKED_PER_ENC];
    size_t n;
} drop_ctx;

static ks_result drop_body(keystore *ks, tx *t)
{
    assert(ks_lock_held(ks));
    drop_ctx *c = (drop_ctx *)t;
    if (drop_acked(ks, c->ids, c->n) != 0)
        return KS_ERROR;
    t->changed = c->n > 0;
    return KS_OK;
}

/* Drop every acknowledged entry now (maintenance, close): when no
 * ks_remote_enc comes along to take them. */
int ksi_outbox_drain_acked(keystore *ks)
{
    drop_ctx c = {.t.what = "outbox drop"};
    while ((c.n = acked_take(ks, c.ids, ACKED_PER_ENC)) > 0)
        if (ksi_run_tx(ks, &c.t, drop_body) != KS_OK) {
            acked_put_back(ks, c.ids, c.n);
            return -1;
        }
    return 0;
}

void ksi_link_drain_acked(keystore *ks)
{
    if (ks->lst && !atomic_load(&ks->failed) && ksi_outbox_drain_acked(ks) != 0)
        log_warn("keystore: acknowledged outbox entries left pending; the next start asks "
                 "the peer about them");
}

void ks_testing_forget_acked(keystore *ks)
{
    pthread_mutex_lock(&ks->fate_mu);
    ks->n_acked = 0;
    pthread_mutex_unlock(&ks->fate_mu);
}

/* Everything but the material: IDs, segment arrays, expiry. */
static int reservation_alloc(keystore *ks, ks_reservation *out, uint32_t n, uint32_t size_bits,
                             size_t seg_cap)
{
    uint64_t bytes = (uint64_t)n * (size_bits / 8);
    if (ksi_batch_alloc(&out->keys, n, (size_t)bytes) != 0)
        return -1;
    out->segs = malloc(seg_cap * sizeof *out->segs);
    out->first_seg = calloc(n, sizeof *out->first_seg);
    out->n_segs = calloc(n, sizeof *out->n_segs);
    if (!out->segs || !out->first_seg || !out->n_segs)
        return -1;
    /* time-ordered: the peer's reservation records and our outbox are
     * indexed by it, and random IDs made every insert touch a random page
     * of a table that holds ten minutes of reservations (the cross-KME
     * rate fell by a third as it grew past the page cache) */
    uuid_generate_v7(out->id, (uint64_t)now_ms(ks));
    for (uint32_t i = 0; i < n; i++) {
        uuid_generate_v4(out->keys.keys[i].id);
        out->keys.keys[i].size_bits = size_bits;
        out->keys.keys[i].material = out->keys.arena.data + (size_t)i * (size_bits / 8);
    }
    int64_t now = now_ms(ks);
    out->expires_ms = ks->ttl_ms > 0 && now < INT64_MAX - ks->ttl_ms ? now + ks->ttl_ms
                                                                    : INT64_MAX;
    return 0;
}

ks_result ks_remote_enc(keystore *ks, const char *peer, const char *master,
                        const char *const *slaves, size_t nslaves, uint32_t n,
                        uint32_t size_bits, ks_reservation *out)
{
    if (out)
        memset(out, 0, sizeof *out);
    if (!ks || !ksi_peer_ok(peer) || !out ||
        !ksi_enc_args_ok(master, slaves, nslaves, n, size_bits, &out->keys)) {
        log_error("keystore: ks_remote_enc: invalid arguments");
        return KS_ERROR;
    }
    slave_list sl;
    if (ksi_slave_list_build(&sl, slaves, nslaves) != 0)
        return KS_ERROR;
    enc_ctx c = {.t.what = "remote enc", .peer = peer, .master = master, .sl = &sl,
                 .out = out, .segs.cap = (size_t)n + 8};
    ks_result r = KS_ERROR;
    if (reservation_alloc(ks, out, n, size_bits, c.segs.cap) == 0) {
        c.segs.segs = out->segs;
        c.n_drop = acked_take(ks, c.drop, ACKED_PER_ENC);
        r = ksi_run_tx(ks, &c.t, enc_body);
        if (r != KS_OK) /* rolled back: the entries are still there */
            acked_put_back(ks, c.drop, c.n_drop);
    } else {
        log_error("keystore: out of memory for %" PRIu32 " keys", n);
    }
    ksi_slave_list_free(&sl);
    if (r != KS_OK)
        ks_reservation_free(out);
    return r;
}

void ks_reservation_free(ks_reservation *r)
{
    if (!r)
        return;
    ks_batch_free(&r->keys);
    free(r->segs);
    free(r->first_seg);
    free(r->n_segs);
    memset(r, 0, sizeof *r);
}

/* ---- the outbox --------------------------------------------------------- */

typedef struct ob_ctx {
    tx t;
    const uint8_t *id;
    enum lstmt st;
    int relay_state;          /* a relay's reservation goes to this state when
                                 the entry changed (0: leave it) */
    const char *absent_state; /* with no change: the state that still is OK */
    ks_result absent;         /* result when no entry in that state exists */
    long count;
} ob_ctx;

/* Apply one outbox statement; when it changes nothing, look at the state. */
static ks_result ob_body(keystore *ks, tx *t)
{
    assert(ks_lock_held(ks));
    ob_ctx *c = (ob_ctx *)t;
    sqlite3_stmt *s = L(ks, c->st);
    if (c->id)
        sqlite3_bind_blob(s, 1, c->id, 16, SQLITE_STATIC);
    if (step_reset(s) != SQLITE_DONE)
        return KS_ERROR;
    c->count = sqlite3_changes(ks->db);
    t->changed = c->count > 0;
    if (t->changed && c->id && c->relay_state) { /* only a RES_RELAYING record moves */
        s = L(ks, LS_RES_SET_STATE);
        sqlite3_bind_blob(s, 1, c->id, 16, SQLITE_STATIC);
        sqlite3_bind_int(s, 2, c->relay_state);
        sqlite3_bind_int64(s, 3, now_ms(ks) + KS_RES_KEEP_MS);
        if (step_reset(s) != SQLITE_DONE)
            return KS_ERROR;
    }
    if (t->changed || !c->id)
        return KS_OK;
    s = L(ks, LS_OB_STATE);
    sqlite3_bind_blob(s, 1, c->id, 16, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    bool ok = rc == SQLITE_ROW && c->absent_state &&
              strcmp((const char *)sqlite3_column_text(s, 0), c->absent_state) == 0;
    sqlite3_reset(s);
    if (!step_ok(rc))
        return KS_ERROR;
    return ok ? KS_OK : c->absent;
}

/* A pending entry that is dropped (the downstream applied it) or becomes a
 * void: a reservation we relay follows it (applied or voided). */
static int relay_state_after(enum lstmt st)
{
    return st == LS_OB_CONFIRMED ? RES_RELAYED : st == LS_OB_FAILED ? RES_VOID : 0;
}

static ks_result ob_call(keystore *ks, const uint8_t *id, enum lstmt st, const char *ok_state,
                         ks_result absent, long *count)
{
    ob_ctx c = {.t.what = "outbox", .id = id, .st = st, .absent_state = ok_state,
                .absent = absent, .relay_state = relay_state_after(st)};
    ks_result r = ksi_run_tx(ks, &c.t, ob_body);
    if (count)
        *count = c.count;
    return r;
}

ks_result ks_remote_confirmed(keystore *ks, const uint8_t id[16])
{
    if (!ks || !id)
        return KS_ERROR;
    return ob_call(ks, id, LS_OB_CONFIRMED, NULL, KS_NOT_FOUND, NULL);
}

ks_result ks_remote_failed(keystore *ks, const uint8_t id[16])
{
    if (!ks || !id)
        return KS_ERROR;
    return ob_call(ks, id, LS_OB_FAILED, "void", KS_NOT_FOUND, NULL);
}

/* ---- entries of unknown fate (after a crash) ------------------------------ */

static void unknown_clear(keystore *ks)
{
    for (size_t i = 0; i < ks->n_unknown; i++)
        free(ks->unknown[i].peer);
    free(ks->unknown);
    ks->unknown = NULL;
    ks->n_unknown = 0;
}

void ksi_link_free_lists(keystore *ks)
{
    unknown_clear(ks);
    free(ks->acked);
    ks->acked = NULL;
    ks->n_acked = ks->cap_acked = 0;
}

/* The pending entries into ks->unknown (caller holds mu and fate_mu). */
static long list_pending_locked(keystore *ks)
{
    assert(ks_lock_held(ks));
    sqlite3_stmt *s = L(ks, LS_OB_PENDING);
    int rc;
    unknown_clear(ks);
    size_t cap = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (sqlite3_column_bytes(s, 0) != 16)
            continue; /* the table's CHECK makes this impossible */
        if (ks->n_unknown == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            struct ksi_unknown *p = realloc(ks->unknown, ncap * sizeof *p);
            if (!p)
                break;
            ks->unknown = p;
            cap = ncap;
        }
        struct ksi_unknown *u = &ks->unknown[ks->n_unknown];
        memcpy(u->id, sqlite3_column_blob(s, 0), 16);
        if (!(u->peer = strdup((const char *)sqlite3_column_text(s, 1))))
            break;
        ks->n_unknown++;
    }
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? (long)ks->n_unknown : -1;
}

long ks_outbox_recover(keystore *ks)
{
    if (!ks)
        return -1;
    ks_lock(ks);
    ksi_tx_flush_locked(ks);
    pthread_mutex_lock(&ks->fate_mu);
    long n = atomic_load(&ks->failed) ? -1 : list_pending_locked(ks);
    pthread_mutex_unlock(&ks->fate_mu);
    ks_unlock(ks);
    if (n > 0)
        log_warn("keystore: %ld reservations of unknown fate (the process stopped while they "
                 "were in flight): asking the peer", n);
    return n;
}

ks_result ks_outbox_next_unknown(keystore *ks, uint8_t id[16], char **peer)
{
    if (!ks || !id || !peer)
        return KS_ERROR;
    *peer = NULL;
    pthread_mutex_lock(&ks->fate_mu);
    ks_result r = KS_NOT_FOUND;
    if (ks->n_unknown > 0) {
        memcpy(id, ks->unknown[0].id, 16);
        *peer = strdup(ks->unknown[0].peer);
        r = *peer ? KS_OK : KS_ERROR;
    }
    pthread_mutex_unlock(&ks->fate_mu);
    return r;
}

ks_result ks_outbox_settle(keystore *ks, const uint8_t id[16], bool applied)
{
    if (!ks || !id)
        return KS_ERROR;
    /* KS_NOT_FOUND: no longer pending (settled before): nothing to do */
    ks_result r = ob_call(ks, id, applied ? LS_OB_CONFIRMED : LS_OB_FAILED, NULL, KS_NOT_FOUND, NULL);
    if (r != KS_OK && r != KS_NOT_FOUND)
        return r;
    pthread_mutex_lock(&ks->fate_mu);
    for (size_t i = 0; i < ks->n_unknown; i++)
        if (memcmp(ks->unknown[i].id, id, 16) == 0) {
            free(ks->unknown[i].peer);
            memmove(&ks->unknown[i], &ks->unknown[i + 1],
                    (ks->n_unknown - i - 1) * sizeof *ks->unknown);
            ks->n_unknown--;
            break;
        }
    pthread_mutex_unlock(&ks->fate_mu);
    return KS_OK;
}

ks_result ks_relay_done(keystore *ks, const uint8_t id[16], bool applied)
{
    if (!ks || !id)
        return KS_ERROR;
    return applied ? ob_call(ks, id, LS_OB_CONFIRMED, NULL, KS_NOT_FOUND, NULL)
                   : ob_call(ks, id, LS_OB_FAILED, "void", KS_NOT_FOUND, NULL);
}

ks_result ks_outbox_void_sent(keystore *ks, const uint8_t id[16])
{
    if (!ks || !id)
        return KS_ERROR;
    return ob_call(ks, id, LS_OB_VOID_SENT, NULL, KS_OK, NULL);
}

static ks_result parse_segs(const uint8_t *blob, int len, ks_segment **segs, size_t *nsegs)
{
    size_t n = len > 0 ? (size_t)len / SEG_WIRE : 0;
    if (len < 0 || (size_t)len % SEG_WIRE != 0)
        return KS_ERROR;
    *segs = calloc(n ? n : 1, sizeof **segs);
    if (!*segs)
        return KS_ERROR;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p = blob + i * SEG_WIRE;
        (*segs)[i] = (ks_segment){get_be(p, 8), (uint32_t)get_be(p + 8, 4),
                                  (uint32_t)get_be(p + 12, 4)};
    }
    *nsegs = n;
    return KS_OK;
}

static ks_result next_void_locked(keystore *ks, uint8_t id[16], char **peer, ks_segment **segs,
                                  size_t *nsegs)
{
    assert(ks_lock_held(ks));
    sqlite3_stmt *s = L(ks, LS_OB_NEXT_VOID);
    int rc = sqlite3_step(s);
    ks_result r = rc == SQLITE_DONE ? KS_NOT_FOUND : KS_ERROR;
    if (rc == SQLITE_ROW && sqlite3_column_bytes(s, 0) == 16) {
        memcpy(id, sqlite3_column_blob(s, 0), 16);
        *peer = strdup((const char *)sqlite3_column_text(s, 1));
        r = *peer ? parse_segs(sqlite3_column_blob(s, 2), sqlite3_column_bytes(s, 2), segs,
                               nsegs)
                  : KS_ERROR;
        if (r != KS_OK) {
            free(*peer);
            *peer = NULL;
        }
    }
    sqlite3_reset(s);
    return r;
}

ks_result ks_outbox_next_void(keystore *ks, uint8_t id[16], char **peer, ks_segment **segs,
                              size_t *nsegs)
{
    if (!ks || !id || !peer || !segs || !nsegs)
        return KS_ERROR;
    *peer = NULL;
    *segs = NULL;
    *nsegs = 0;
    ks_lock(ks);
    ksi_tx_flush_locked(ks);
    ks_result r = atomic_load(&ks->failed) ? KS_ERROR
                                           : next_void_locked(ks, id, peer, segs, nsegs);
    ks_unlock(ks);
    return r;
}

