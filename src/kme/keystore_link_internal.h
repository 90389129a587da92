/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keystore_link_internal.h - what the link layers of the key store share
 * (keystore_schema.c, keystore_blocks.c, keystore_remote_outbox.c,
 * keystore_remote_apply.c, keystore_relay.c): the link statements, the
 * link transaction adapter, the links, block rows and material, and the
 * reservation steps the relay reuses.  Include only from those files.
 *
 * Everything here but ksi_run_tx needs ks->mu held (inside a body): the
 * functions assert it in debug builds.
 */
#ifndef QC_KME_KEYSTORE_LINK_INTERNAL_H
#define QC_KME_KEYSTORE_LINK_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "kme/keystore_internal.h"

/* Chunk size of schema version 2 (block_chunks rows), for its migration. */
#define KS_V2_CHUNK 128u
/* erased block IDs are refused this long (a link never resends so late) */
#define KS_GONE_KEEP_MS (7LL * 24 * 3600 * 1000)
/* a peer's reservation record is kept this long for idempotent retries;
 * later duplicates are still refused by their used segments */
#define KS_RES_KEEP_MS (10LL * 60 * 1000)
#define KS_DIGEST 32
#define SEG_WIRE 16 /* outbox segments blob: id(8) offset(4) length(4), BE */

/* reservations.state: applied here (keys stored), voided, relayed to the
 * next KME and its answer still to come, relayed and applied there */
enum { RES_APPLIED = 1, RES_VOID = 2, RES_RELAYING = 3, RES_RELAYED = 4 };

enum lstmt {
    LS_BLK_GET, LS_GONE_GET, LS_GONE_ADD, LS_DIR_UNUSED, LS_BLK_INSERT,
    LS_MAT_INSERT, LS_CONFIRM, LS_BLK_DEL, LS_MAT_DEL, LS_SEGS_DEL,
    LS_UNCONF_LIST, LS_UNCONF_OLD, LS_FULL_LIST, LS_STATS, LS_STATS_RECOUNT, LS_OWN_NEXT, LS_CURSOR_SET,
    LS_OB_INSERT, LS_OB_CONFIRMED, LS_OB_FAILED, LS_OB_STATE,
    LS_OB_RECOVER, LS_OB_PENDING, LS_OB_NEXT_VOID, LS_OB_VOID_SENT, LS_SEG_BEFORE, LS_SEG_FROM,
    LS_SEG_INSERT, LS_SEG_SETLEN, LS_SEG_DEL,
    LS_BLK_ADD_USED, LS_RES_GET, LS_RES_PUT, LS_RES_ADD, LS_RKEY_INSERT, LS_RKEYS_DEL, LS_GONE_PRUNE,
    LS_RES_PRUNE, LS_LINK_ADD, LS_LINK_GET, LS_LINK_LIST, LS_OB_VOID_ADD, LS_RES_SET_STATE,
    LS_COUNT_
};

#define L(ks, x) ((ks)->lst[x])

/* Common head of every link call's context: the body sets `changed` when
 * there is something to commit, and `stored_delta` for rows added to keys. */
typedef struct tx tx;
typedef ks_result (*tx_body)(keystore *ks, tx *t);
struct tx {
    const char *what;
    bool changed;
    int64_t stored_delta;
    tx_body body;
};

/* One transaction (shared with concurrent calls), committed and durable
 * before return (keystore_blocks.c).  Takes mu: call without it. */
ks_result ksi_run_tx(keystore *ks, tx *t, tx_body body);

static inline int64_t bid(uint64_t id)
{
    return (int64_t)id; /* the link's IDs use all 64 bits: stored two's complement */
}

static inline int64_t now_ms(keystore *ks)
{
    return now_ns(ks) / 1000000;
}

static inline void put_be(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static inline uint64_t get_be(const uint8_t *p, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v = v << 8 | p[i];
    return v;
}

typedef struct blk {
    uint64_t id;
    int64_t link;       /* links.link_no */
    bool own, confirmed;
    uint32_t length, cursor, used;
} blk;

/* ---- links (keystore_blocks.c) ---- */

struct ksi_link {
    int64_t no;         /* links.link_no (>= 1) */
    char *peer;
};
/* The link_no of the link to peer, 0 when it has none (caller holds mu). */
int64_t ksi_link_find(keystore *ks, const char *peer);
/* The same, creating the link in a committed transaction of its own when
 * it is new (takes mu: call without it); -1 on error. */
int64_t ksi_link_ensure(keystore *ks, const char *peer);
/* Read the links table into ks->links (at open); free it (at close). */
int ksi_links_load(keystore *ks);
void ksi_links_free(keystore *ks);

/* The row of block id: 1 found, 0 unknown, -1 database error. */
int ksi_blk_get(keystore *ks, uint64_t id, blk *b);
/* Erase a block: its material, segments and row, leaving a tombstone. */
int ksi_blk_erase(keystore *ks, uint64_t id);
/* The used segment of block id nearest to pos by statement st
 * (LS_SEG_BEFORE or LS_SEG_FROM): 1, 0 none, -1 database error. */
int ksi_seg_near(keystore *ks, enum lstmt st, uint64_t id, uint64_t pos, uint64_t *off,
                 uint64_t *len);

/* ---- reservation records and peer segments (keystore_remote_apply.c) ---- */

typedef struct ksi_res_rec {
    int state;                  /* RES_*, 0: no record */
    uint8_t digest[KS_DIGEST];
    bool has_peer;              /* records of schema version 3 name none */
    char peer[KS_PEER_MAX + 1], next_peer[KS_PEER_MAX + 1];
} ksi_res_rec;
int ksi_res_get(keystore *ks, const uint8_t id[16], ksi_res_rec *rec);
bool ksi_res_from(const ksi_res_rec *rec, const char *peer);
int ksi_res_add(keystore *ks, const uint8_t id[16], int state, const uint8_t *digest,
                const char *peer, const char *next_peer);
/* Check a segment lies unused in a confirmed (or confirmable) peer block of
 * link, take its bytes into dst and mark them used (KS_REJECTED if not). */
ks_result ksi_take_seg(keystore *ks, int64_t link, const ks_segment *sg, uint8_t *dst);

/* ---- own blocks and the outbox (keystore_remote_outbox.c) ---- */

/* The own block being consumed: its cursor moves in memory and is written
 * once when we leave the block (ksi_own_flush). */
typedef struct ksi_own_cur {
    blk b;
    int64_t link;           /* the link whose own blocks we take (0: none) */
    bool have;
    uint32_t start;         /* cursor when we took the block */
    int64_t key_ms, key_id; /* its position in allocation order */
} ksi_own_cur;

typedef struct ksi_segvec {  /* a growing array of segments (malloc'd) */
    ks_segment *segs;
    size_t n, cap;
} ksi_segvec;

ks_result ksi_own_take(keystore *ks, ksi_own_cur *cur, uint8_t *dst, uint32_t len,
                       ksi_segvec *v);
int ksi_own_flush(keystore *ks, ksi_own_cur *cur);
/* A 'pending' outbox entry. */
int ksi_outbox_insert(keystore *ks, const uint8_t id[16], const char *peer, const char *master,
                      const slave_list *sl, const ks_segment *segs, size_t nsegs,
                      int64_t expires_ms);

/* Block material, by incremental blob I/O through the one handle ks->mat
 * (closed before every body returns). */
void ksi_mat_close(keystore *ks);
int ksi_mat_io(keystore *ks, uint64_t id, uint32_t length, void *buf, int n, int off,
               bool write);
int ksi_mat_read(keystore *ks, const blk *b, uint32_t off, uint32_t len, uint8_t *dst);
int ksi_mat_zero(keystore *ks, uint64_t id, uint32_t length, uint64_t off, uint64_t len);

#endif
