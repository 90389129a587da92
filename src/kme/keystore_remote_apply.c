/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keystore_remote_apply.c - the peer's reservations and voids (we are the
 * slaves' KME; docs/kme-pair.md): ks_reservation_apply(_batch) checks each
 * segment against the peer block's used segments, takes its bytes, records
 * the reservation (digest of the content, for idempotent retries) and
 * stores the keys for ks_dec; ks_void_apply burns the bytes of a void.
 * Bits are never handed out twice: a segment must not overlap
 * used_segments, and adjacent used ranges are merged.
 *
 * Calls keystore_blocks.c, keystore_local.c (batches, slave lists),
 * keystore_unfetched.c and keystore_db.c.  Bodies run under ks->mu.
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

/* ---- the peer's reservations (we are the slaves' KME) ------------------- */

static int seg_write(keystore *ks, enum lstmt st, uint64_t id, uint64_t off, uint64_t len)
{
    assert(ks_lock_held(ks));
    sqlite3_stmt *s = L(ks, st);
    sqlite3_bind_int64(s, 1, bid(id));
    sqlite3_bind_int64(s, 2, (int64_t)off);
    if (st != LS_SEG_DEL)
        sqlite3_bind_int64(s, 3, (int64_t)len);
    return step_reset(s) == SQLITE_DONE ? 0 : -1;
}

/* The used segment closest before a position, when the caller has
 * looked it up already (found: 1, none: 0). */
typedef struct seg_prev {
    int found;
    uint64_t off, len;
} seg_prev;

/* Record [off, off+len) as used (it is known unused), merged with the
 * neighbours it touches so the table stays small.  prev: the used segment
 * starting closest before off, if known (NULL: look it up). */
static int seg_add(keystore *ks, uint64_t id, uint64_t off, uint64_t len, const seg_prev *prev)
{
    assert(ks_lock_held(ks));
    uint64_t po, pl, so, sl;
    int p = prev ? prev->found : ksi_seg_near(ks, LS_SEG_BEFORE, id, off, &po, &pl);
    if (prev) {
        po = prev->off;
        pl = prev->len;
    }
    int q = ksi_seg_near(ks, LS_SEG_FROM, id, off + len, &so, &sl);
    if (p < 0 || q < 0)
        return -1;
    bool join_prev = p && po + pl == off, join_next = q && so == off + len;
    if (join_next && seg_write(ks, LS_SEG_DEL, id, so, 0) != 0)
        return -1;
    uint64_t tail = join_next ? sl : 0;
    if (join_prev)
        return seg_write(ks, LS_SEG_SETLEN, id, po, pl + len + tail);
    return seg_write(ks, LS_SEG_INSERT, id, off, len + tail);
}

/* Mark known-unused bytes of a peer block used and zero them; the block
 * goes once all of it is used (b->length == 0 afterwards tells the
 * caller).  prev as for seg_add. */
static int mark_used(keystore *ks, blk *b, uint64_t off, uint64_t len, const seg_prev *prev)
{
    assert(ks_lock_held(ks));
    if (seg_add(ks, b->id, off, len, prev) != 0)
        return -1;
    sqlite3_stmt *s = L(ks, LS_BLK_ADD_USED);
    sqlite3_bind_int64(s, 1, bid(b->id));
    sqlite3_bind_int64(s, 2, (int64_t)len);
    if (step_reset(s) != SQLITE_DONE)
        return -1;
    b->used += (uint32_t)len;
    if (b->used < b->length)
        return ksi_mat_zero(ks, b->id, b->length, off, len);
    b->length = 0; /* used up: the row goes, no need to zero it first */
    return ksi_blk_erase(ks, b->id);
}

typedef struct apply_ctx {
    tx t;
    const char *peer;   /* from_peer: its link's peer blocks only */
    const uint8_t *id;
    const char *master;
    const slave_list *sl;
    int64_t expires_ms;
    const ks_remote_key *keys;
    size_t n;
    uint8_t digest[KS_DIGEST];
    secret_buf buf; /* one key's material at a time */
} apply_ctx;

static int confirm_one(keystore *ks, blk *b)
{
    assert(ks_lock_held(ks));
    sqlite3_stmt *s = L(ks, LS_CONFIRM);
    sqlite3_bind_int64(s, 1, (sqlite3_int64)b->id);
    sqlite3_bind_int64(s, 2, b->link);
    if (step_reset(s) != SQLITE_DONE)
        return -1;
    b->confirmed = true;
    return 0;
}

/* Check one segment of a reservation (in a peer block of link) and take
 * its bytes into dst. */
ks_result ksi_take_seg(keystore *ks, int64_t link, const ks_segment *sg, uint8_t *dst)
{
    assert(ks_lock_held(ks));
    blk b;
    uint64_t po, pl, end = (uint64_t)sg->offset + sg->length;
    int found = ksi_blk_get(ks, sg->block_id, &b);
    if (found <= 0)
        return found < 0 ? KS_ERROR : KS_REJECTED;
    if (b.own || b.link != link || end > b.length)
        return KS_REJECTED; /* ours, or another link's: not the sender's bits */
    /* The peer allocates only from blocks the link confirmed to it, and the
     * link confirms only blocks that both KMEs stored: a peer block we hold
     * but whose confirmation has not reached us yet is confirmed by the
     * peer's use of it.  Refusing would burn bits that both sides hold. */
    if (!b.confirmed && confirm_one(ks, &b) != 0)
        return KS_ERROR;
    int p = ksi_seg_near(ks, LS_SEG_BEFORE, b.id, end, &po, &pl);
    if (p < 0)
        return KS_ERROR;
    if (p && po + pl > sg->offset)
        return KS_REJECTED; /* overlaps bits used before (or in this call) */
    /* Nothing used starts inside the segment (it would overlap), so the
     * segment just found is also the closest one before its start. */
    seg_prev prev = {.found = p, .off = po, .len = pl};
    if (ksi_mat_read(ks, &b, sg->offset, sg->length, dst) != 0 ||
        mark_used(ks, &b, sg->offset, sg->length, &prev) != 0)
        return KS_ERROR;
    return KS_OK;
}

static ks_result insert_remote_key(keystore *ks, const apply_ctx *c, const ks_remote_key *k)
{
    assert(ks_lock_held(ks));
    sqlite3_stmt *s = L(ks, LS_RKEY_INSERT);
    sqlite3_bind_blob(s, 1, k->id, 16, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, c->master, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, k->size_bits);
    sqlite3_bind_blob(s, 4, c->buf.data, (int)(k->size_bits / 8), SQLITE_STATIC);
    sqlite3_bind_int64(s, 5, now_ms(ks));
    sqlite3_bind_int64(s, 6, c->expires_ms);
    sqlite3_bind_blob(s, 7, c->sl->data, (int)c->sl->len, SQLITE_STATIC);
    sqlite3_bind_int64(s, 8, c->sl->pending);
    sqlite3_bind_blob(s, 9, c->id, 16, SQLITE_STATIC);
    int rc = step_reset(s);
    sqlite3_clear_bindings(s); /* no pointer into the secret buffer */
    if (rc == SQLITE_DONE)
        return KS_OK;
    return sqlite3_extended_errcode(ks->db) == SQLITE_CONSTRAINT_PRIMARYKEY ? KS_CONFLICT
                                                                           : KS_ERROR;
}

static ks_result apply_key(keystore *ks, apply_ctx *c, int64_t link, const ks_remote_key *k)
{
    assert(ks_lock_held(ks));
    uint8_t *dst = c->buf.data;
    for (size_t j = 0; j < k->nsegs; j++) {
        ks_result r = ksi_take_seg(ks, link, &k->segs[j], dst);
        if (r != KS_OK)
            return r;
        dst += k->segs[j].length;
    }
    ks_result r = insert_remote_key(ks, c, k);
    secret_wipe(c->buf.data, k->size_bits / 8);
    return r;
}

static void copy_text(char *dst, sqlite3_stmt *s, int col)
{
    const unsigned char *t = sqlite3_column_text(s, col);
    snprintf(dst, KS_PEER_MAX + 1, "%s", t ? (const char *)t : "");
}

/* The record of a reservation ID into *rec: its state (0 none), -1 on a
 * database error. */
int ksi_res_get(keystore *ks, const uint8_t id[16], ksi_res_rec *rec)
{
    assert(ks_lock_held(ks));
    sqlite3_stmt *s = L(ks, LS_RES_GET);
    sqlite3_bind_blob(s, 1, id, 16, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    memset(rec, 0, sizeof *rec);
    if (rc == SQLITE_ROW) {
        rec->state = sqlite3_column_int(s, 0);
        if (sqlite3_column_bytes(s, 1) == KS_DIGEST)
            memcpy(rec->digest, sqlite3_column_blob(s, 1), KS_DIGEST);
        rec->has_peer = sqlite3_column_type(s, 2) != SQLITE_NULL;
        copy_text(rec->peer, s, 2);
        copy_text(rec->next_peer, s, 3);
    }
    sqlite3_reset(s);
    return rc == SQLITE_ROW ? rec->state : rc == SQLITE_DONE ? 0 : -1;
}

/* Was the record made for a reservation from peer?  Records of schema
 * version 3 name no peer: they had one. */
bool ksi_res_from(const ksi_res_rec *rec, const char *peer)
{
    return !rec->has_peer || strcmp(rec->peer, peer) == 0;
}

/* Record (or turn) a reservation ID into a void from peer. */
static int res_put_void(keystore *ks, const uint8_t id[16], const char *peer)
{
    assert(ks_lock_held(ks));
    sqlite3_stmt *s = L(ks, LS_RES_PUT);
    sqlite3_bind_blob(s, 1, id, 16, SQLITE_STATIC);
    sqlite3_bind_int(s, 2, RES_VOID);
    sqlite3_bind_null(s, 3);
    sqlite3_bind_int64(s, 4, now_ms(ks) + KS_RES_KEEP_MS);
    sqlite3_bind_text(s, 5, peer, -1, SQLITE_STATIC);
    return step_reset(s) == SQLITE_DONE ? 0 : -1;
}

/* Record a new reservation ID from peer in state (next_peer: the KME we
 * relay it to, or NULL): 1, or 0 when the ID has a record already
 * (nothing written), -1 on error.  One B-tree descent for the usual case,
 * a new ID, instead of a lookup and then an insert. */
int ksi_res_add(keystore *ks, const uint8_t id[16], int state, const uint8_t *digest,
                const char *peer, const char *next_peer)
{
    assert(ks_lock_held(ks));
    sqlite3_stmt *s = L(ks, LS_RES_ADD);
    sqlite3_bind_blob(s, 1, id, 16, SQLITE_STATIC);
    sqlite3_bind_int(s, 2, state);
    sqlite3_bind_blob(s, 3, digest, KS_DIGEST, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, now_ms(ks) + KS_RES_KEEP_MS);
    sqlite3_bind_text(s, 5, peer, -1, SQLITE_STATIC);
    if (next_peer)
        sqlite3_bind_text(s, 6, next_peer, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(s, 6);
    int rc = step_reset(s);
    sqlite3_clear_bindings(s);
    if (rc != SQLITE_DONE)
        return -1;
    return sqlite3_changes(ks->db) > 0 ? 1 : 0;
}

/* The record is written first: should a key then fail, the body's
 * savepoint is rolled back with it. */
static ks_result apply_body(keystore *ks, tx *t)
{
    assert(ks_lock_held(ks));
    apply_ctx *c = (apply_ctx *)t;
    ksi_res_rec seen;
    int added = ksi_res_add(ks, c->id, RES_APPLIED, c->digest, c->peer, NULL);
    if (added < 0)
        return KS_ERROR;
    if (added == 0) {
        int state = ksi_res_get(ks, c->id, &seen);
        if (state < 0)
            return KS_ERROR;
        if (state == RES_APPLIED && memcmp(seen.digest, c->digest, KS_DIGEST) == 0 &&
            ksi_res_from(&seen, c->peer))
            return KS_OK; /* a retry: applied before, nothing changes */
        return KS_CONFLICT; /* voided, or the ID came with other content */
    }
    int64_t link = ksi_link_find(ks, c->peer);
    uint64_t bytes = 0;
    for (size_t i = 0; i < c->n; i++)
        bytes += c->keys[i].size_bits / 8;
    ks_result lim = ksi_unfetched_check(ks, c->sl, bytes * 8);
    if (lim != KS_OK)
        return lim; /* the savepoint takes the record back with it */
    ksi_tx_expect(ks, bytes);
    for (size_t i = 0; i < c->n; i++) {
        ks_result r = apply_key(ks, c, link, &c->keys[i]);
        if (r != KS_OK)
            return r;
    }
    if (ksi_unf_note_list(ks, c->sl, bytes * 8) != 0)
        return KS_ERROR;
    t->stored_delta = (int64_t)c->n;
    t->changed = true;
    return KS_OK;
}

static void hash_u64(crypto_generichash_state *h, uint64_t v)
{
    uint8_t b[8];
    put_be(b, v, 8);
    crypto_generichash_update(h, b, 8);
}

static void hash_str(crypto_generichash_state *h, const char *s)
{
    hash_u64(h, strlen(s));
    crypto_generichash_update(h, (const uint8_t *)s, strlen(s));
}

/* Digest of a reservation's content (metadata only, no key material), so
 * a retry can be told from another reservation under the same ID. */
static void res_digest(apply_ctx *c, const char *const *slaves, size_t nslaves)
{
    crypto_generichash_state h;
    crypto_generichash_init(&h, NULL, 0, KS_DIGEST);
    hash_str(&h, c->master);
    hash_u64(&h, nslaves);
    for (size_t i = 0; i < nslaves; i++)
        hash_str(&h, slaves[i]);
    hash_u64(&h, (uint64_t)c->expires_ms);
    hash_u64(&h, c->n);
    for (size_t i = 0; i < c->n; i++) {
        const ks_remote_key *k = &c->keys[i];
        crypto_generichash_update(&h, k->id, 16);
        hash_u64(&h, k->size_bits);
        hash_u64(&h, k->nsegs);
        for (size_t j = 0; j < k->nsegs; j++) {
            hash_u64(&h, k->segs[j].block_id);
            hash_u64(&h, (uint64_t)k->segs[j].offset << 32 | k->segs[j].length);
        }
    }
    crypto_generichash_final(&h, c->digest, KS_DIGEST);
}

/* Shape of the reservation, before any lookup: every key a positive
 * multiple of 8 bits, exactly covered by non-empty segments.  Returns the
 * largest key in bytes, or 0 when the shape is wrong. */
static uint32_t keys_shape(const ks_remote_key *keys, size_t n)
{
    uint32_t max = 0;
    for (size_t i = 0; i < n; i++) {
        const ks_remote_key *k = &keys[i];
        uint64_t sum = 0;
        if (k->size_bits == 0 || k->size_bits % 8 != 0 || k->nsegs == 0 || !k->segs)
            return 0;
        for (size_t j = 0; j < k->nsegs; j++) {
            if (k->segs[j].length == 0)
                return 0;
            sum += k->segs[j].length;
        }
        if (sum != k->size_bits / 8)
            return 0;
        max = k->size_bits / 8 > max ? k->size_bits / 8 : max;
    }
    return max;
}

/* Check one reservation's arguments and shape and make its context for
 * apply_body (slave list built in *sl, digest taken); *max: its largest key
 * in bytes.  KS_ERROR for invalid arguments, KS_REJECTED for a bad shape. */
static ks_result apply_prepare(const ks_reservation_in *in, apply_ctx *c, slave_list *sl,
                               uint32_t *max)
{
    ks_batch unused = {0}; /* the shared check wants an output; 1 x 8 bits pass */
    if (!ksi_peer_ok(in->from_peer) || !in->keys || in->n == 0 || in->n > UINT32_MAX ||
        !ksi_enc_args_ok(in->master, in->slaves, in->nslaves, 1, 8, &unused)) {
        log_error("keystore: ks_reservation_apply: invalid arguments");
        return KS_ERROR;
    }
    *max = keys_shape(in->keys, in->n);
    if (*max == 0) {
        log_warn("keystore: a reservation's key sizes and segments disagree");
        return KS_REJECTED;
    }
    if (ksi_slave_list_build(sl, in->slaves, in->nslaves) != 0)
        return KS_ERROR;
    *c = (apply_ctx){.t.what = "reservation", .peer = in->from_peer, .id = in->id,
                     .master = in->master, .sl = sl,
                     .expires_ms = in->expires_ms, .keys = in->keys, .n = in->n};
    res_digest(c, in->slaves, in->nslaves);
    return KS_OK;
}

ks_result ks_reservation_apply(keystore *ks, const char *from_peer, const uint8_t id[16],
                               const char *master, const char *const *slaves, size_t nslaves,
                               int64_t expires_ms, const ks_remote_key *keys, size_t n)
{
    if (!ks || !id) {
        log_error("keystore: ks_reservation_apply: invalid arguments");
        return KS_ERROR;
    }
    ks_reservation_in in = {.from_peer = from_peer, .master = master, .slaves = slaves, .nslaves = nslaves,
                            .expires_ms = expires_ms, .keys = keys, .n = n};
    memcpy(in.id, id, 16);
    apply_ctx c;
    slave_list sl;
    uint32_t max;
    ks_result r = apply_prepare(&in, &c, &sl, &max);
    if (r != KS_OK)
        return r;
    c.id = id;
    r = KS_ERROR;
    if (secret_alloc(&c.buf, max) == 0)
        r = ksi_run_tx(ks, &c.t, apply_body);
    secret_free(&c.buf);
    ksi_slave_list_free(&sl);
    if (r == KS_REJECTED)
        log_warn("keystore: a reservation names bits that are not usable; refused");
    return r;
}

/* A batch of reservations: apply_body once per item, each under its own
 * savepoint, all in one call of the shared transaction. */
typedef struct batch_ctx {
    tx t;
    apply_ctx *items;
    bool *ready;        /* item passed apply_prepare */
    ks_result *results;
    size_t n;
} batch_ctx;

static ks_result batch_body(keystore *ks, tx *t)
{
    assert(ks_lock_held(ks));
    batch_ctx *b = (batch_ctx *)t;
    for (size_t i = 0; i < b->n; i++) {
        if (!b->ready[i])
            continue;
        apply_ctx *c = &b->items[i];
        c->t.changed = false;
        c->t.stored_delta = 0;
        if (!ksi_item_begin(ks))
            return KS_ERROR;
        ks_result r = apply_body(ks, &c->t);
        bool keep = r == KS_OK && c->t.changed;
        ksi_mat_close(ks); /* an open blob handle makes RELEASE fail, ROLLBACK TO trips it */
        if (!ksi_item_end(ks, keep))
            return KS_ERROR;
        if (r == KS_ERROR)
            ksi_db_log(ks, "reservation of a batch");
        b->results[i] = r;
        if (keep) {
            t->stored_delta += c->t.stored_delta;
            t->changed = true;
        }
    }
    return KS_OK;
}

ks_result ks_reservation_apply_batch(keystore *ks, const ks_reservation_in *items, size_t n,
                                     ks_result *results)
{
    if (!ks || !items || !results || n == 0) {
        log_error("keystore: ks_reservation_apply_batch: invalid arguments");
        return KS_ERROR;
    }
    batch_ctx b = {.t.what = "reservation batch", .n = n, .results = results,
                   .items = calloc(n, sizeof *b.items), .ready = calloc(n, sizeof *b.ready)};
    slave_list *sl = calloc(n, sizeof *sl);
    secret_buf buf = {0};
    uint32_t max = 0;
    ks_result r = KS_ERROR;
    for (size_t i = 0; i < n; i++)
        results[i] = KS_ERROR;
    if (b.items && b.ready && sl) {
        for (size_t i = 0; i < n; i++) {
            uint32_t m = 0;
            results[i] = apply_prepare(&items[i], &b.items[i], &sl[i], &m);
            b.ready[i] = results[i] == KS_OK;
            max = m > max ? m : max;
        }
        /* one buffer for all: apply_key wipes it after each key */
        if (max == 0 || secret_alloc(&buf, max) == 0) {
            for (size_t i = 0; i < n; i++)
                b.items[i].buf = buf;
            r = max == 0 ? KS_OK : ksi_run_tx(ks, &b.t, batch_body);
        }
    }
    for (size_t i = 0; i < n && b.ready; i++) {
        if (!b.ready[i])
            continue;
        if (r != KS_OK) /* the whole part was undone, or not committed */
            results[i] = r;
        else if (results[i] == KS_REJECTED)
            log_warn("keystore: a reservation names bits that are not usable; refused");
        ksi_slave_list_free(&sl[i]);
    }
    secret_free(&buf);
    free(sl);
    free(b.ready);
    free(b.items);
    return r;
}

ks_result ks_reservation_state(keystore *ks, const uint8_t id[16], ks_res_state *state)
{
    if (!ks || !id || !state)
        return KS_ERROR;
    ksi_res_rec rec;
    ks_lock(ks);
    ksi_tx_flush_locked(ks); /* answer from committed state only */
    int st = atomic_load(&ks->failed) ? -1 : ksi_res_get(ks, id, &rec);
    ks_unlock(ks);
    if (st < 0)
        return KS_ERROR;
    *state = st == RES_APPLIED || st == RES_RELAYED ? KS_RES_APPLIED
             : st == RES_VOID                       ? KS_RES_VOIDED
             : st == RES_RELAYING                   ? KS_RES_RELAYING
                                                    : KS_RES_UNKNOWN;
    return KS_OK;
}

typedef struct void_ctx {
    tx t;
    const char *peer;
    const uint8_t *id;
    const ks_segment *segs;
    size_t nsegs;
} void_ctx;

/* Burn [off, end) of a peer block: mark every gap between used segments. */
static int burn_range(keystore *ks, blk *b, uint64_t pos, uint64_t end)
{
    assert(ks_lock_held(ks));
    while (pos < end && b->length != 0) {
        uint64_t po, pl, so, sl;
        int p = ksi_seg_near(ks, LS_SEG_BEFORE, b->id, pos + 1, &po, &pl);
        if (p < 0)
            return -1;
        if (p && po + pl > pos) {
            pos = po + pl; /* already used */
            continue;
        }
        int q = ksi_seg_near(ks, LS_SEG_FROM, b->id, pos, &so, &sl);
        if (q < 0)
            return -1;
        uint64_t gap_end = q && so < end ? so : end;
        if (mark_used(ks, b, pos, gap_end - pos, NULL) != 0)
            return -1;
        pos = gap_end;
    }
    return 0;
}

static ks_result void_segs(keystore *ks, const void_ctx *c)
{
    assert(ks_lock_held(ks));
    int64_t link = ksi_link_find(ks, c->peer);
    for (size_t i = 0; i < c->nsegs && link > 0; i++) {
        const ks_segment *sg = &c->segs[i];
        blk b;
        int found = ksi_blk_get(ks, sg->block_id, &b);
        if (found < 0)
            return KS_ERROR;
        if (found == 0 || b.own || b.link != link || sg->offset >= b.length)
            continue; /* nothing of this link's peer to burn there */
        uint64_t end = (uint64_t)sg->offset + sg->length;
        if (burn_range(ks, &b, sg->offset, end < b.length ? end : b.length) != 0)
            return KS_ERROR;
    }
    return KS_OK;
}

/* A reservation we relayed: the void goes on downstream.  While the
 * downstream's answer is awaited the pending entry becomes a void (its pad
 * bits burned there too); once it had applied, a void without segments
 * (nothing of that link is left to burn) makes it delete the keys. */
static int void_downstream(keystore *ks, const uint8_t id[16], const ksi_res_rec *rec)
{
    assert(ks_lock_held(ks));
    sqlite3_stmt *s = L(ks, rec->state == RES_RELAYING ? LS_OB_FAILED : LS_OB_VOID_ADD);
    sqlite3_bind_blob(s, 1, id, 16, SQLITE_STATIC);
    if (rec->state == RES_RELAYED) {
        sqlite3_bind_text(s, 2, rec->next_peer, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 3, now_ms(ks));
        sqlite3_bind_int64(s, 4, now_ms(ks));
    }
    int rc = step_reset(s);
    sqlite3_clear_bindings(s);
    if (rc == SQLITE_DONE)
        log_info("keystore: a relayed reservation voided upstream: voiding it at %s",
                 rec->next_peer);
    return rc == SQLITE_DONE ? 0 : -1;
}

static ks_result void_body(keystore *ks, tx *t)
{
    assert(ks_lock_held(ks));
    void_ctx *c = (void_ctx *)t;
    ksi_res_rec seen;
    int state = ksi_res_get(ks, c->id, &seen);
    if (state < 0)
        return KS_ERROR;
    if (state != 0 && !ksi_res_from(&seen, c->peer))
        return KS_CONFLICT; /* another peer's reservation: not its to void */
    if (state == RES_APPLIED) { /* the master's call failed: its keys go */
        sqlite3_stmt *s = L(ks, LS_RKEYS_DEL);
        sqlite3_bind_blob(s, 1, c->id, 16, SQLITE_STATIC);
        long n = ksi_delete_keys(ks, s);
        if (n < 0)
            return KS_ERROR;
        t->stored_delta = -(int64_t)n;
    }
    if ((state == RES_RELAYING || state == RES_RELAYED) && void_downstream(ks, c->id, &seen) != 0)
        return KS_ERROR;
    if (void_segs(ks, c) != KS_OK || res_put_void(ks, c->id, c->peer) != 0)
        return KS_ERROR;
    t->changed = true;
    return KS_OK;
}

ks_result ks_void_apply(keystore *ks, const char *from_peer, const uint8_t id[16],
                        const ks_segment *segs, size_t nsegs)
{
    if (!ks || !ksi_peer_ok(from_peer) || !id || (nsegs > 0 && !segs)) {
        log_error("keystore: ks_void_apply: invalid arguments");
        return KS_ERROR;
    }
    void_ctx c = {.t.what = "void", .peer = from_peer, .id = id, .segs = segs, .nsegs = nsegs};
    return ksi_run_tx(ks, &c.t, void_body);
}
