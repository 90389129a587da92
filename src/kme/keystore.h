/*
 * keystore.h - the KME's durable key state, in one SQLite file (WAL).
 *
 * Every call that hands out or consumes keys is one transaction, committed
 * before the call returns, so the HTTP layer answers only after the state it
 * implies is on disk (invariant I4): kill -9 at any instant and a restart
 * never deliver a key twice (I1, I2).  In KS_SYNC_NORMAL commits reach the OS
 * (safe against process crashes); in KS_SYNC_FULL they also reach the disk
 * (safe against power loss), with group commit: concurrent callers share
 * one fsync of the WAL.
 *
 * Deleted key material is overwritten in the file (PRAGMA secure_delete) and
 * a maintenance thread expires keys past their TTL and checkpoints the WAL
 * with TRUNCATE, so consumed keys leave the disk too.
 *
 * Local pairs (master and slaves on this KME) draw from a local pool of
 * `local_cap_bits`, refilled from the OS CSPRNG at `local_rate_bps`; its
 * level is a counter persisted with every allocation, and the material is
 * drawn at allocation time.  Thread-safe: one internal mutex, never held
 * across anything but the database.
 */
#ifndef QC_KME_KEYSTORE_H
#define QC_KME_KEYSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "common/secret.h"

typedef struct keystore keystore;

typedef enum { KS_SYNC_NORMAL = 0, KS_SYNC_FULL = 1 } ks_sync;

typedef enum {
    KS_OK = 0,
    KS_EMPTY,          /* not enough key material in the pool */
    KS_NOT_FOUND,      /* dec: some key unknown, expired, from another master,
                          or already delivered to this slave */
    KS_UNAUTHORIZED,   /* dec: some key exists but the caller is not among
                          its slaves */
    KS_ERROR,          /* invalid arguments, or a database or I/O failure;
                          nothing was changed -- except when the WAL fsync
                          after COMMIT fails (full mode): those keys are
                          burnt (I5) and the store refuses every later call */
} ks_result;

typedef struct ks_options {
    const char *path;              /* database file */
    ks_sync sync;
    uint64_t local_cap_bits;       /* local pool capacity */
    uint64_t local_rate_bps;       /* local pool refill rate (0 = instant) */
    int64_t key_ttl_s;             /* undelivered keys expire after this */
    unsigned maintenance_ms;       /* expiry + WAL checkpoint period */
} ks_options;

typedef struct ks_key {
    uint8_t id[16];
    uint32_t size_bits;
    const uint8_t *material;       /* size_bits / 8 bytes inside the batch's arena */
} ks_key;

/* A set of keys handed out by one call; material lives in one secret arena. */
typedef struct ks_batch {
    ks_key *keys;
    size_t n;
    secret_buf arena;
} ks_batch;

typedef struct ks_stats {
    uint64_t local_available_bits; /* local pool level now (after refill) */
    uint64_t local_cap_bits;
    uint64_t stored_keys;          /* keys awaiting at least one slave */
} ks_stats;

/* Open or create the store; on failure returns NULL and writes a precise
 * reason into err. */
keystore *ks_open(const ks_options *opt, char *err, size_t errlen);
void ks_close(keystore *ks);

/* Allocate n keys of size_bits (a multiple of 8) from the local pool for
 * master, retrievable once by each of the nslaves slaves; fresh random
 * UUIDs; material from the CSPRNG.  KS_OK fills *out (free with
 * ks_batch_free); KS_EMPTY when the pool holds fewer than n * size_bits.
 * At most 63 distinct slaves; a slave named twice counts once. */
ks_result ks_local_enc(keystore *ks, const char *master,
                       const char *const *slaves, size_t nslaves,
                       uint32_t n, uint32_t size_bits, ks_batch *out);

/* Deliver keys ids[0..n) of master to slave, all or nothing, in request
 * order; each slave gets each key once; a key is erased once every slave
 * has it.  KS_UNAUTHORIZED wins over KS_NOT_FOUND when both apply. */
ks_result ks_dec(keystore *ks, const char *master, const char *slave,
                 const uint8_t (*ids)[16], size_t n, ks_batch *out);

ks_result ks_stats_get(keystore *ks, ks_stats *out);

/* Expire keys past their TTL and checkpoint the WAL now (the maintenance
 * thread does this periodically); returns the number of keys expired, or -1
 * on a database error.  key_ttl_s <= 0 means keys never expire. */
long ks_maintain(keystore *ks);

void ks_batch_free(ks_batch *b);

const char *ks_result_str(ks_result r);

/* Tests only: move the store's clock (pool refill, key expiry) forward by
 * ms milliseconds instead of sleeping. */
void ks_testing_advance_clock(keystore *ks, int64_t ms);

#endif
