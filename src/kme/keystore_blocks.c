/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keystore_blocks.c - QKD link blocks in the key store (docs/kme-pair.md):
 * the link adapter to the shared transaction (ksi_run_tx), the links (one
 * per peer KME, docs/network.md), block rows and their material
 * (incremental blob I/O), link intake (store, confirm, discard), expiry of
 * unconfirmed blocks, link maintenance and link stats.
 *
 * The lowest link layer: the reservation layers (keystore_remote_*.c) and
 * the schema's migration build on it; it calls only keystore_db.c.  The
 * bodies run with ks->mu held (ksi_tx takes it) and assert it; the public
 * calls here take it through ksi_run_tx or ks_lock.
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

/* ---- transactions ------------------------------------------------------- */

/* Adapter to the shared transaction of keystore_db.c (ksi_tx): a body that
 * changed nothing or refused is undone, so a refusal never leaves a trace. */
static ks_result link_body(keystore *ks, void *ctx, bool *changed)
{
    assert(ks_lock_held(ks));
    tx *t = ctx;
    t->changed = false;
    ks_result r = t->body(ks, t);
    ksi_mat_close(ks); /* before ksi_tx commits, releases or rolls back */
    if (r == KS_OK && t->changed) {
        ks->stored = (uint64_t)((int64_t)ks->stored + t->stored_delta);
        *changed = true;
    }
    return r;
}

/* One transaction (shared with concurrent calls), committed and durable
 * before return.  An answer that changed nothing (an idempotent repeat)
 * still waits for every earlier commit to be durable: the state it
 * confirms may come from a commit whose group fsync or whose shared
 * COMMIT is still to come. */
ks_result ksi_run_tx(keystore *ks, tx *t, tx_body body)
{
    t->body = body;
    return ksi_tx(ks, t->what, link_body, t);
}

/* ---- links --------------------------------------------------------------- */

bool ksi_peer_ok(const char *peer)
{
    return peer && peer[0] && strlen(peer) <= KS_PEER_MAX;
}

int64_t ksi_link_find(keystore *ks, const char *peer)
{
    assert(ks_lock_held(ks));
    for (size_t i = 0; i < ks->n_links; i++)
        if (strcmp(ks->links[i].peer, peer) == 0)
            return ks->links[i].no;
    return 0;
}

/* Add a committed row to the list (caller holds mu); -1 out of memory. */
static int link_list_add(keystore *ks, int64_t no, const char *peer)
{
    assert(ks_lock_held(ks));
    for (size_t i = 0; i < ks->n_links; i++)
        if (ks->links[i].no == no)
            return 0; /* a concurrent ksi_link_ensure listed it */
    struct ksi_link *p = realloc(ks->links, (ks->n_links + 1) * sizeof *p);
    if (!p)
        return -1;
    ks->links = p;
    if (!(p[ks->n_links].peer = strdup(peer)))
        return -1;
    p[ks->n_links++].no = no;
    return 0;
}

int ksi_links_load(keystore *ks)
{
    assert(ks_lock_held(ks));
    sqlite3_stmt *s = L(ks, LS_LINK_LIST);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const char *peer = (const char *)sqlite3_column_text(s, 1);
        struct ksi_link *p = realloc(ks->links, (ks->n_links + 1) * sizeof *p);
        if (!p || !peer || !(p[ks->n_links].peer = strdup(peer))) {
            if (p)
                ks->links = p;
            rc = SQLITE_NOMEM;
            break;
        }
        ks->links = p;
        p[ks->n_links++].no = sqlite3_column_int64(s, 0);
    }
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? 0 : -1;
}

void ksi_links_free(keystore *ks)
{
    for (size_t i = 0; i < ks->n_links; i++)
        free(ks->links[i].peer);
    free(ks->links);
    ks->links = NULL;
    ks->n_links = 0;
}

typedef struct link_ctx {
    tx t;
    const char *peer;
    int64_t no;
} link_ctx;

static ks_result link_add_body(keystore *ks, tx *t)
{
    assert(ks_lock_held(ks));
    link_ctx *c = (link_ctx *)t;
    sqlite3_stmt *s = L(ks, LS_LINK_ADD);
    sqlite3_bind_text(s, 1, c->peer, -1, SQLITE_STATIC);
    if (step_reset(s) != SQLITE_DONE)
        return KS_ERROR;
    t->changed = sqlite3_changes(ks->db) > 0;
    s = L(ks, LS_LINK_GET);
    sqlite3_bind_text(s, 1, c->peer, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    c->no = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    sqlite3_reset(s);
    return c->no > 0 ? KS_OK : KS_ERROR;
}

/* A new link's row is committed by its own transaction before the link is
 * listed: a link_no in the list is never one a rollback could give to
 * another peer. */
int64_t ksi_link_ensure(keystore *ks, const char *peer)
{
    ks_lock(ks);
    int64_t no = ksi_link_find(ks, peer);
    ks_unlock(ks);
    if (no > 0)
        return no;
    link_ctx c = {.t.what = "link add", .peer = peer};
    if (ksi_run_tx(ks, &c.t, link_add_body) != KS_OK)
        return -1;
    ks_lock(ks);
    int rc = link_list_add(ks, c.no, peer);
    ks_unlock(ks);
    if (rc == 0)
        log_info("keystore: link to %s: link number %" PRId64, peer, c.no);
    return rc == 0 ? c.no : -1;
}

/* ---- blocks ------------------------------------------------------------- */


/* 1 found, 0 unknown, -1 database error. */
int ksi_blk_get(keystore *ks, uint64_t id, blk *b)
{
    assert(ks_lock_held(ks));
    sqlite3_stmt *s = L(ks, LS_BLK_GET);
    sqlite3_bind_int64(s, 1, bid(id));
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        b->id = id;
        b->own = sqlite3_column_int(s, 0) != 0;
        b->length = (uint32_t)sqlite3_column_int64(s, 1);
        b->confirmed = sqlite3_column_int(s, 2) != 0;
        b->cursor = (uint32_t)sqlite3_column_int64(s, 3);
        b->used = (uint32_t)sqlite3_column_int64(s, 4);
        b->link = sqlite3_column_int64(s, 5);
    }
    sqlite3_reset(s);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

static int exec_id(keystore *ks, enum lstmt st, uint64_t id)
{
    assert(ks_lock_held(ks));
    sqlite3_bind_int64(L(ks, st), 1, bid(id));
    return step_reset(L(ks, st)) == SQLITE_DONE ? 0 : -1;
}

/* Erase a block: its material, segments and row, leaving a tombstone.
 * secure_delete zeroes the material's pages as the row goes. */
int ksi_blk_erase(keystore *ks, uint64_t id)
{
    assert(ks_lock_held(ks));
    if (ks->mat && ks->mat_row == bid(id))
        ksi_mat_close(ks); /* its row goes: the handle would expire */
    if (exec_id(ks, LS_MAT_DEL, id) != 0 || exec_id(ks, LS_SEGS_DEL, id) != 0 ||
        exec_id(ks, LS_BLK_DEL, id) != 0)
        return -1;
    sqlite3_stmt *s = L(ks, LS_GONE_ADD);
    sqlite3_bind_int64(s, 1, bid(id));
    sqlite3_bind_int64(s, 2, now_ms(ks));
    return step_reset(s) == SQLITE_DONE ? 0 : -1;
}

static int64_t query_one(keystore *ks, enum lstmt st, int64_t arg, int *rc_out)
{
    assert(ks_lock_held(ks));
    sqlite3_stmt *s = L(ks, st);
    sqlite3_bind_int64(s, 1, arg);
    int rc = sqlite3_step(s);
    int64_t v = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    sqlite3_reset(s);
    *rc_out = rc;
    return v;
}

/* ---- block material (incremental blob I/O) ----------------------------- */

static const uint8_t zeros[4096];

void ksi_mat_close(keystore *ks)
{
    if (ks->mat) {
        sqlite3_blob_close(ks->mat);
        ks->mat = NULL;
    }
}

/* Point ks->mat at block id's material (reusing the open handle: reopen
 * is much cheaper than open) and check its length; -1 when the row is
 * missing or has another length (an inconsistency) or the database fails. */
static int mat_seek(keystore *ks, uint64_t id, uint32_t length)
{
    assert(ks_lock_held(ks));
    if (ks->mat && ks->mat_row != bid(id)) {
        if (sqlite3_blob_reopen(ks->mat, bid(id)) == SQLITE_OK)
            ks->mat_row = bid(id);
        else
            ksi_mat_close(ks); /* a failed reopen leaves the handle unusable */
    }
    if (!ks->mat) {
        if (sqlite3_blob_open(ks->db, "main", "block_material", "bytes", bid(id), 1,
                              &ks->mat) != SQLITE_OK) {
            ks->mat = NULL; /* sqlite3_blob_open leaves NULL, but say so */
            return -1;
        }
        ks->mat_row = bid(id);
    }
    return (uint32_t)sqlite3_blob_bytes(ks->mat) == length ? 0 : -1;
}

/* One blob read or write on block id.  A handle that expired (its row was
 * rewritten, or a ROLLBACK TO inside the body tripped its cursor) answers
 * SQLITE_ABORT: reopen it and try once more. */
int ksi_mat_io(keystore *ks, uint64_t id, uint32_t length, void *buf, int n, int off,
                  bool write)
{
    assert(ks_lock_held(ks));
    for (int tries = 0; tries < 2; tries++) {
        if (mat_seek(ks, id, length) != 0)
            return -1;
        int rc = write ? sqlite3_blob_write(ks->mat, buf, n, off)
                       : sqlite3_blob_read(ks->mat, buf, n, off);
        if (rc != SQLITE_ABORT)
            return rc == SQLITE_OK ? 0 : -1;
        ksi_mat_close(ks);
    }
    return -1;
}

/* Copy bytes [off, off+len) of a block into dst. */
int ksi_mat_read(keystore *ks, const blk *b, uint32_t off, uint32_t len, uint8_t *dst)
{
    assert(ks_lock_held(ks));
    return ksi_mat_io(ks, b->id, b->length, dst, (int)len, (int)off, false);
}

/* Erase bytes [off, off+len) of a block in place: zeros, in this
 * transaction (a rollback brings them back, with the accounting). */
int ksi_mat_zero(keystore *ks, uint64_t id, uint32_t length, uint64_t off, uint64_t len)
{
    assert(ks_lock_held(ks));
    while (len > 0) {
        int n = len < sizeof zeros ? (int)len : (int)sizeof zeros;
        if (ksi_mat_io(ks, id, length, (void *)zeros, n, (int)off, true) != 0)
            return -1;
        off += (uint64_t)n;
        len -= (uint64_t)n;
    }
    return 0;
}

/* ---- link intake -------------------------------------------------------- */

typedef struct store_ctx {
    tx t;
    int64_t link;
    uint64_t id;
    bool own;
    const uint8_t *bytes;
    uint32_t len;
    uint64_t cap_bits;
} store_ctx;

/* The used segment starting before `pos`, closest to it (1, 0 none, -1). */
int ksi_seg_near(keystore *ks, enum lstmt st, uint64_t id, uint64_t pos, uint64_t *off,
                    uint64_t *len)
{
    assert(ks_lock_held(ks));
    sqlite3_stmt *s = L(ks, st);
    sqlite3_bind_int64(s, 1, bid(id));
    sqlite3_bind_int64(s, 2, (int64_t)pos);
    int rc = sqlite3_step(s);
    *off = *len = 0;
    if (rc == SQLITE_ROW) {
        *off = (uint64_t)sqlite3_column_int64(s, 0);
        *len = (uint64_t)sqlite3_column_int64(s, 1);
    }
    sqlite3_reset(s);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}



/* Is the stored block the one offered again?  Owner and length must match,
 * and the bytes still unconsumed (own: from the cursor on; peer: the gaps
 * between used segments; consumed ones are zero) must be equal. */
static ks_result same_block(keystore *ks, const blk *b, const store_ctx *c)
{
    assert(ks_lock_held(ks));
    if (b->link != c->link || b->own != c->own || b->length != c->len)
        return KS_CONFLICT;
    secret_buf held;
    if (secret_alloc(&held, b->length) != 0)
        return KS_ERROR;
    ks_result r = KS_OK;
    uint64_t pos = b->cursor, so, sl;
    while (r == KS_OK && pos < b->length) {
        int q = ksi_seg_near(ks, LS_SEG_FROM, b->id, pos, &so, &sl);
        if (q < 0)
            r = KS_ERROR;
        else if (q == 0)
            so = b->length; /* the last gap runs to the end */
        if (r == KS_OK && so > pos &&
            ksi_mat_read(ks, b, (uint32_t)pos, (uint32_t)(so - pos), held.data + pos) != 0)
            r = KS_ERROR;
        if (r == KS_OK && so > pos && secret_cmp(held.data + pos, c->bytes + pos, so - pos) != 0)
            r = KS_CONFLICT;
        pos = so + sl;
    }
    secret_free(&held);
    return r;
}

static int insert_material(keystore *ks, const store_ctx *c)
{
    assert(ks_lock_held(ks));
    sqlite3_stmt *s = L(ks, LS_MAT_INSERT);
    sqlite3_bind_int64(s, 1, bid(c->id));
    sqlite3_bind_blob(s, 2, c->bytes, (int)c->len, SQLITE_STATIC);
    int rc = step_reset(s) == SQLITE_DONE ? 0 : -1;
    sqlite3_clear_bindings(s); /* no pointer into the caller's buffer */
    return rc;
}

static ks_result store_body(keystore *ks, tx *t)
{
    assert(ks_lock_held(ks));
    store_ctx *c = (store_ctx *)t;
    blk b;
    int rc;
    query_one(ks, LS_GONE_GET, bid(c->id), &rc);
    if (rc == SQLITE_ROW)
        return KS_CONFLICT; /* erased before: its bits may have been used */
    if (rc != SQLITE_DONE)
        return KS_ERROR;
    int found = ksi_blk_get(ks, c->id, &b);
    if (found != 0)
        return found < 0 ? KS_ERROR : same_block(ks, &b, c);
    sqlite3_bind_int64(L(ks, LS_DIR_UNUSED), 2, c->own);
    uint64_t unused = (uint64_t)query_one(ks, LS_DIR_UNUSED, c->link, &rc);
    if (rc != SQLITE_ROW)
        return KS_ERROR;
    if (unused + c->len > c->cap_bits / 8)
        return KS_EMPTY;
    sqlite3_stmt *s = L(ks, LS_BLK_INSERT);
    sqlite3_bind_int64(s, 1, bid(c->id));
    sqlite3_bind_int(s, 2, c->own);
    sqlite3_bind_int64(s, 3, c->len);
    sqlite3_bind_int64(s, 4, now_ms(ks));
    sqlite3_bind_int64(s, 5, c->link);
    if (step_reset(s) != SQLITE_DONE || insert_material(ks, c) != 0)
        return KS_ERROR;
    t->changed = true;
    return KS_OK;
}

ks_result ks_block_store(keystore *ks, const char *link_peer, uint64_t block_id, bool own,
                         const uint8_t *bytes, uint32_t len, uint64_t cap_bits)
{
    if (!ks || !ksi_peer_ok(link_peer) || !bytes || len == 0 ||
        len > INT32_MAX) { /* one blob: an int length */
        log_error("keystore: ks_block_store: invalid arguments");
        return KS_ERROR;
    }
    int64_t link = ksi_link_ensure(ks, link_peer);
    if (link < 0)
        return KS_ERROR;
    store_ctx c = {.t.what = "block store", .link = link, .id = block_id, .own = own,
                   .bytes = bytes, .len = len, .cap_bits = cap_bits};
    return ksi_run_tx(ks, &c.t, store_body);
}

typedef struct ids_ctx {
    tx t;
    const char *peer;
    const uint64_t *ids;
    size_t n;
    size_t done;
} ids_ctx;

static ks_result confirm_body(keystore *ks, tx *t)
{
    assert(ks_lock_held(ks));
    ids_ctx *c = (ids_ctx *)t;
    int64_t link = ksi_link_find(ks, c->peer);
    for (size_t i = 0; i < c->n && link > 0; i++) {
        sqlite3_bind_int64(L(ks, LS_CONFIRM), 2, link);
        if (exec_id(ks, LS_CONFIRM, c->ids[i]) != 0)
            return KS_ERROR;
        c->done += (size_t)sqlite3_changes(ks->db);
    }
    t->changed = c->done > 0;
    return KS_OK;
}

static ks_result discard_body(keystore *ks, tx *t)
{
    assert(ks_lock_held(ks));
    ids_ctx *c = (ids_ctx *)t;
    for (size_t i = 0; i < c->n; i++) {
        blk b;
        int found = ksi_blk_get(ks, c->ids[i], &b);
        if (found < 0)
            return KS_ERROR;
        if (found == 0 || b.confirmed || b.link != ksi_link_find(ks, c->peer))
            continue; /* only unconfirmed blocks of this link can be discarded */
        if (ksi_blk_erase(ks, b.id) != 0)
            return KS_ERROR;
        c->done++;
    }
    t->changed = c->done > 0;
    return KS_OK;
}

static ks_result ids_call(keystore *ks, const char *peer, const uint64_t *ids, size_t n,
                          size_t *done, tx_body body, const char *what)
{
    if (done)
        *done = 0;
    if (!ks || !ksi_peer_ok(peer) || (n > 0 && !ids)) {
        log_error("keystore: %s: invalid arguments", what);
        return KS_ERROR;
    }
    ids_ctx c = {.t.what = what, .peer = peer, .ids = ids, .n = n};
    ks_result r = ksi_run_tx(ks, &c.t, body);
    if (r == KS_OK && done)
        *done = c.done;
    return r;
}

ks_result ks_block_confirm(keystore *ks, const char *link_peer, const uint64_t *ids, size_t n,
                           size_t *done)
{
    return ids_call(ks, link_peer, ids, n, done, confirm_body, "block confirm");
}

ks_result ks_block_discard(keystore *ks, const char *link_peer, const uint64_t *ids, size_t n,
                           size_t *done)
{
    return ids_call(ks, link_peer, ids, n, done, discard_body, "block discard");
}

/* Collect the IDs a one-column query returns (caller holds mu). */
static int collect_ids(keystore *ks, sqlite3_stmt *s, uint64_t **ids, size_t *n)
{
    assert(ks_lock_held(ks));
    size_t cap = 0;
    int rc;
    *ids = NULL;
    *n = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            uint64_t *p = realloc(*ids, cap * sizeof *p);
            if (!p)
                break;
            *ids = p;
        }
        (*ids)[(*n)++] = (uint64_t)sqlite3_column_int64(s, 0);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        ksi_db_log(ks, "block list");
        free(*ids);
        *ids = NULL;
        *n = 0;
        return -1;
    }
    return 0;
}

ks_result ks_block_unconfirmed(keystore *ks, const char *link_peer, uint64_t **ids, size_t *n)
{
    if (!ks || !ksi_peer_ok(link_peer) || !ids || !n)
        return KS_ERROR;
    ks_lock(ks);
    ksi_tx_flush_locked(ks);
    /* an unknown link (0) has no blocks: the query finds none */
    sqlite3_bind_int64(L(ks, LS_UNCONF_LIST), 1, ksi_link_find(ks, link_peer));
    int rc = atomic_load(&ks->failed) ? -1 : collect_ids(ks, L(ks, LS_UNCONF_LIST), ids, n);
    ks_unlock(ks);
    return rc == 0 ? KS_OK : KS_ERROR;
}

typedef struct sweep_ctx {
    tx t;
    int64_t cutoff_ms; /* unconfirmed blocks stored at or before this go */
    long erased;
} sweep_ctx;

/* Erase every block the statement lists (unconfirmed and old, or used up). */
static ks_result erase_listed(keystore *ks, sweep_ctx *c, enum lstmt st)
{
    assert(ks_lock_held(ks));
    uint64_t *ids;
    size_t n;
    if (st == LS_UNCONF_OLD)
        sqlite3_bind_int64(L(ks, st), 1, c->cutoff_ms);
    if (collect_ids(ks, L(ks, st), &ids, &n) != 0)
        return KS_ERROR;
    for (size_t i = 0; i < n; i++) {
        if (ksi_blk_erase(ks, ids[i]) != 0) {
            free(ids);
            return KS_ERROR;
        }
    }
    free(ids);
    c->erased += (long)n;
    c->t.changed |= n > 0;
    return KS_OK;
}

static ks_result expire_body(keystore *ks, tx *t)
{
    assert(ks_lock_held(ks));
    return erase_listed(ks, (sweep_ctx *)t, LS_UNCONF_OLD);
}

long ks_block_expire_unconfirmed(keystore *ks, int64_t max_age_ms)
{
    if (!ks || max_age_ms < 0)
        return -1;
    sweep_ctx c = {.t.what = "block expiry", .cutoff_ms = now_ms(ks) - max_age_ms};
    return ksi_run_tx(ks, &c.t, expire_body) == KS_OK ? c.erased : -1;
}

static ks_result prune(keystore *ks, tx *t, enum lstmt st, int64_t cutoff)
{
    assert(ks_lock_held(ks));
    sqlite3_bind_int64(L(ks, st), 1, cutoff);
    if (step_reset(L(ks, st)) != SQLITE_DONE)
        return KS_ERROR;
    t->changed |= sqlite3_changes(ks->db) > 0;
    return KS_OK;
}

/* Maintenance: used-up blocks (normally erased at once; this also catches
 * any left by an older version), old tombstones and reservation records. */
static ks_result maint_body(keystore *ks, tx *t)
{
    assert(ks_lock_held(ks));
    int64_t now = now_ms(ks);
    if (erase_listed(ks, (sweep_ctx *)t, LS_FULL_LIST) != KS_OK ||
        prune(ks, t, LS_GONE_PRUNE, now - KS_GONE_KEEP_MS) != KS_OK ||
        prune(ks, t, LS_RES_PRUNE, now) != KS_OK)
        return KS_ERROR;
    return KS_OK;
}

int ksi_link_maintain(keystore *ks)
{
    if (ks_block_expire_unconfirmed(ks, ks->block_ttl_ms) < 0)
        return -1;
    sweep_ctx c = {.t.what = "link maintenance"};
    return ksi_run_tx(ks, &c.t, maint_body) == KS_OK ? 0 : -1;
}

/* Caller holds mu, with no shared transaction open. */
static ks_result link_stats_locked(keystore *ks, enum lstmt which, const char *peer,
                                   ks_link_stats *out)
{
    assert(ks_lock_held(ks));
    memset(out, 0, sizeof *out);
    sqlite3_stmt *s = L(ks, which);
    sqlite3_bind_int64(s, 1, ksi_link_find(ks, peer)); /* 0: no rows */
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        bool own = sqlite3_column_int(s, 0) != 0, conf = sqlite3_column_int(s, 1) != 0;
        uint64_t bits = (uint64_t)sqlite3_column_int64(s, 3) * 8;
        if (!conf)
            out->unconfirmed_blocks += (uint64_t)sqlite3_column_int64(s, 2);
        else if (own)
            out->own_bits = bits;
        else
            out->peer_bits = bits;
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        ksi_db_log(ks, "link stats");
    return rc == SQLITE_DONE ? KS_OK : KS_ERROR;
}

ks_result ks_link_stats_get(keystore *ks, const char *link_peer, ks_link_stats *out)
{
    if (!ks || !ksi_peer_ok(link_peer) || !out)
        return KS_ERROR;
    ks_lock(ks);
    ksi_tx_flush_locked(ks);
    ks_result r = link_stats_locked(ks, LS_STATS, link_peer, out);
    ks_unlock(ks);
    return r;
}

ks_result ks_testing_link_stats_check(keystore *ks, const char *link_peer,
                                      ks_link_stats *totals, ks_link_stats *recount)
{
    if (!ks || !ksi_peer_ok(link_peer) || !totals || !recount)
        return KS_ERROR;
    ks_lock(ks);
    ksi_tx_flush_locked(ks);
    ks_result r = link_stats_locked(ks, LS_STATS, link_peer, totals);
    if (r == KS_OK)
        r = link_stats_locked(ks, LS_STATS_RECOUNT, link_peer, recount);
    ks_unlock(ks);
    return r;
}

