/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pending.h - key material fetched for a message that did not verify, kept
 * until a copy that verifies arrives (docs/qumail-format.md §7).
 *
 * Key IDs travel in clear, so anyone on the mail path can send a reader a
 * tampered copy of a genuine message first.  Reading it makes the KME hand
 * out (and forget) the keys; if they were then thrown away, the genuine copy
 * could never be read.  Instead the reader keeps them in [store]
 * dir/pending/ (directory 0700, files 0600, never plaintext), bound to their
 * key IDs, the envelope's sender SAE and the reader's SAE, and a later copy
 * naming the same keys, from the same sender, to the same reader takes them
 * from here instead of calling dec_keys.  Keys of a dec_keys sequence cut
 * short (a chunked Level 1 fetch whose second call failed) are kept the
 * same way, and so are those of a message that verified but whose sender
 * is not (mail/sender.h) when the caller does not take such a message.
 * Entries older than the TTL (default: the KME's default key_ttl,
 * 1 h) are erased; erasing is overwrite with zeros, fsync, unlink.
 *
 * One file per save, named p-CREATED-RANDOM; its format (strict, versioned):
 *
 *   QUMAIL-PENDING 1\n
 *   sender SAE_ID\n
 *   recipient SAE_ID\n
 *   created UNIX_SECONDS\n
 *   reason tampered|incomplete|unverified\n
 *   keys N\n
 *   KEY_ID LEN\n            N lines: canonical lower-case UUID, bytes 1..2^28
 *   \n
 *   key bytes               exactly the sum of the LENs, in that order
 */
#ifndef QM_PENDING_H
#define QM_PENDING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/secret.h"
#include "common/uuid.h"
#include "mail/envelope.h"
#include "mail/errors.h"
#include "mail/keys.h"

#define QM_PENDING_TTL_DEFAULT 3600   /* seconds: the KME's default key_ttl */
#define QM_PENDING_MAX_KEYS (QM_MAX_PAD_KEYS + 1)   /* a Level 1 pad and its MAC key */

/* Why keys wait here: a copy failed its integrity check; the dec_keys
 * calls were cut short; the message verified but its sender did not. */
typedef enum qm_pending_reason {
    QM_PENDING_TAMPERED,
    QM_PENDING_INCOMPLETE,
    QM_PENDING_UNVERIFIED,
} qm_pending_reason;

typedef struct qm_pending_key {
    char id[UUID_STR_LEN + 1];
    const uint8_t *data;   /* into the bytes parsed */
    size_t len;
} qm_pending_key;

/* One pending file, parsed. */
typedef struct qm_pending_entry {
    char sender[QM_SAE_ID_MAX + 1];
    char recipient[QM_SAE_ID_MAX + 1];
    long long created;
    qm_pending_reason reason;
    qm_pending_key *keys;
    size_t n;
} qm_pending_entry;

/* Parse the bytes of a pending file strictly; e's keys point into buf and
 * are sorted by key ID (lookups are binary searches).
 * QM_E_PENDING (reason in why) for anything that is not exactly the format. */
qm_err qm_pending_parse(const uint8_t *buf, size_t len, qm_pending_entry *e,
                        char *why, size_t why_cap);
void qm_pending_entry_free(qm_pending_entry *e);   /* safe on a zeroed entry, twice */

/* The pending files that hold keys of one message. */
typedef struct qm_pending_found {
    secret_buf *bytes;          /* each file's bytes (key material: locked, wiped) */
    qm_pending_entry *entries;
    char (*names)[64];          /* their file names in pending/ */
    size_t n;
    bool forged_copy_seen;      /* a key came from an entry saved after a failed check */
} qm_pending_found;

/* Erase every pending file older than ttl seconds at now, then load those
 * that hold any of the n key IDs for this sender and recipient.  A corrupt
 * file among them is QM_E_PENDING with its path and the reason in detail. */
qm_err qm_pending_find(const char *store_dir, const char *sender, const char *recipient,
                       const char *const *ids, size_t n, long long now, long long ttl,
                       qm_pending_found *f, char *detail, size_t detail_cap);

/* The key with this ID in f, or NULL; *reason (may be NULL) receives the
 * reason of its entry. */
const qm_pending_key *qm_pending_lookup(const qm_pending_found *f, const char *id,
                                       qm_pending_reason *reason);

/* Keep n keys (IDs and bytes) in a new file, durably (fsync of the file
 * and the directory).  Creates STORE_DIR/pending (0700) if need be. */
qm_err qm_pending_save(const char *store_dir, const char *sender, const char *recipient,
                       qm_pending_reason reason, long long now, const char *const *ids,
                       const qm_key_bytes *keys, size_t n);

/* The n keys were used by a message that verified: remove them from the
 * files of f (a file left with other keys is rewritten without them; the
 * old file, or one left empty, is erased). */
qm_err qm_pending_consume(const char *store_dir, const qm_pending_found *f,
                          const char *const *ids, size_t n);

void qm_pending_found_free(qm_pending_found *f);   /* wipes; safe on a zeroed struct, twice */

/* Number of files in STORE_DIR/pending (for tests and --verbose); -1 if
 * the directory cannot be read, 0 if it does not exist. */
long qm_pending_count(const char *store_dir);

#endif
