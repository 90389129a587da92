/* SPDX-License-Identifier: Apache-2.0 */
/*
 * readstore.h - the local store of decrypted messages behind `qumail read`.
 *
 * A message's keys are consumed by its first decryption (each key is
 * delivered once by the KME, and used key IDs are recorded locally), so
 * `qumail read` keeps the plaintext it produced here and shows it again from
 * here, without any KME call.  Layout: STORE_DIR/read/ (mode 0700), one file
 * per message (mode 0600), named after the message's mailbox ID (a Maildir
 * ID, or "imap:MAILBOX:UID:MESSAGE-ID"), written atomically (temporary file,
 * fsync, rename, fsync of the directory): a message is either fully stored
 * or not at all.  A message can carry metadata: its sender is not verified
 * (mail/sender.h; shown only on request, under a banner) or a forged copy
 * of it was seen first; and what a reader shows of a message without
 * opening it again: the envelope's SAE IDs, key IDs, the KME, when it was
 * read, its attachments' names and sizes (readstore.c has the format).
 * `qumail decrypt` never uses this store.
 */
#ifndef QM_READSTORE_H
#define QM_READSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mail/errors.h"

/* Create STORE_DIR (its parent must exist) and STORE_DIR/read, mode 0700,
 * if they are missing.  QM_E_IO if that fails or one is not a directory. */
qm_err qm_readstore_init(const char *store_dir);

/* Keep msg (the decrypted inner message of a message of this level) under
 * id, replacing an older copy.  QM_E_USAGE for an empty or over-long id. */
qm_err qm_readstore_put(const char *store_dir, const char *id, int level,
                        const uint8_t *msg, size_t len);

#define QM_READ_MAX_KEYS 16      /* key IDs kept of a message (the count is kept too) */
#define QM_READ_MAX_ATTACH 32    /* attachments listed (the count is kept too) */
#define QM_READ_NAME_MAX 256     /* an attachment's name, bytes with the NUL */

/* An attachment as the store lists it: its file name (UTF-8 as the message
 * gave it, raw: escape it before showing) and its decoded size. */
typedef struct qm_read_attachment {
    unsigned long long size;
    char name[QM_READ_NAME_MAX];
} qm_read_attachment;

/* What the store keeps about a message besides its bytes: what a reader
 * shows without opening the message again (the web client's Security
 * details and attachment list, the inbox's attachment mark). */
typedef struct qm_read_meta {
    char unverified[512];    /* "" or why its sender is not verified (mail/sender.h) */
    bool forged_copy_seen;   /* a copy that failed its integrity check came first */
    char sender[256];        /* the envelope's sender SAE ID, or "" */
    char recipients[512];    /* the envelope's recipient SAE IDs, space-separated, or "" */
    char kme[256];           /* the reader's KME ID when it was read, or "" */
    unsigned n_keys;         /* keys the message used for this reader */
    char key_ids[QM_READ_MAX_KEYS][40];   /* the first of them */
    long long read_at;       /* Unix seconds of the first reading, 0 unknown */
    unsigned n_attachments;  /* attachments in the message */
    qm_read_attachment attachments[QM_READ_MAX_ATTACH];   /* the first of them */
} qm_read_meta;

/* qm_readstore_put with meta (NULL: none). */
qm_err qm_readstore_put_meta(const char *store_dir, const char *id, int level,
                             const qm_read_meta *meta, const uint8_t *msg, size_t len);

/* The head of a stored file (its first n bytes): its level, metadata and
 * the offset of the message's first byte.  QM_E_IO if it is not a head
 * this store writes.  (Pure: what qm_readstore_get_meta and the fuzz
 * target run.) */
qm_err qm_readstore_parse_head(const uint8_t *b, size_t n, int *level, qm_read_meta *meta,
                               size_t *off);

/* qm_readstore_get with meta (may be NULL): zeroed for a message without. */
qm_err qm_readstore_get_meta(const char *store_dir, const char *id, int *level,
                             qm_read_meta *meta, uint8_t **msg, size_t *len);

/* The message kept under id: QM_E_NOT_FOUND if none, QM_E_IO if the file
 * cannot be read or is not one this store wrote.  *msg is malloc'd (and
 * NUL-terminated after len bytes); the caller wipes and frees it. */
qm_err qm_readstore_get(const char *store_dir, const char *id, int *level,
                        uint8_t **msg, size_t *len);

#endif
