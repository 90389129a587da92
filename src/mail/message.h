/* SPDX-License-Identifier: Apache-2.0 */
/*
 * message.h - libqumail's message API: encrypt a whole inner RFC 5322
 * message for its recipients into an outer QuMail message, and decrypt one
 * (docs/qumail-format.md, DESIGN.md §5).
 *
 * Encrypting fetches the keys through libqkd014 as the sender's SAE
 * (keyfetch.c), names them in the envelope (envelope.c), seals with Level 1
 * or Level 2 (level1.c, level2.c) and wraps the envelope in the outer MIME
 * message (mime.c).  Decrypting runs the same way back, and rejects whatever
 * can be rejected offline before it asks the KME for a single key.  The
 * qumail CLI and its tests are the callers.
 */
#ifndef QM_MESSAGE_H
#define QM_MESSAGE_H

#include <stddef.h>
#include <stdint.h>

#include "qkd014.h"

#include "mail/config.h"
#include "mail/envelope.h"
#include "mail/errors.h"
#include "mail/usedkeys.h"

typedef struct qm_peer {
    const char *address;   /* e-mail address */
    const char *sae_id;    /* its SAE ID */
    const char *kme_id;    /* the KME it sits behind, or NULL if unknown (recipients with the
                              same kme_id share one Level 1 pad by multicast) */
} qm_peer;

typedef void (*qm_trace_fn)(void *arg, const char *line);  /* narration: ETSI calls, key IDs,
                              sizes; never key bytes */

typedef struct qm_self {
    qkd014_client *kme;    /* connected to our own KME as our SAE */
    const char *sae_id;
    const char *address;
    qm_usedkeys *used;     /* may be NULL only for encrypt */
    qm_trace_fn trace;     /* may be NULL */
    void *trace_arg;
    char detail[256];      /* on error: one line of detail (e.g. the KME's message) */
    const char *store_dir; /* decrypt: keys of a copy that fails its integrity check (or whose
                              dec_keys calls were cut short) wait in store_dir/pending for an
                              intact copy (mail/pending.h); NULL: they are spent */
    long long pending_ttl; /* seconds such keys are kept; 0: QM_PENDING_TTL_DEFAULT */
    const qm_config *book; /* decrypt, Levels 1 and 2: bind the inner From and Sender to the
                              sender SAE by this address book (mail/sender.h); NULL: unchecked */
    bool accept_unverified; /* decrypt: a message whose sender is not verified is returned (its
                              keys used) with unverified set; false: QM_E_SENDER, no plaintext,
                              its keys wait in store_dir/pending like a forged copy's (unverified
                              says why, detail what became of the keys) */
    /* set by decrypt: */
    char unverified[512];  /* why the sender is not verified (sender.h), or "" */
    char sender[QM_SAE_ID_MAX + 1]; /* the envelope's sender SAE: the master of the keys, so
                              proven by the KME at Levels 1 and 2 (not at Level 4) */
    bool forged_copy_seen; /* keys came from pending/, left by a copy that failed its check */
} qm_self;

/* Encrypt a complete inner RFC 5322 message for the recipients at level 1, 2 or 4 (3: QM_E_LEVEL)
 * into a complete outer message (mime.h) with From = me->address, To = recipients' addresses. */
qm_err qm_encrypt(qm_self *me, int level, const qm_peer *to, size_t n_to,
                  const uint8_t *inner, size_t inner_len, uint8_t **outer, size_t *outer_len);

/* Decrypt an outer message addressed to me: malformed input is rejected before any dec_keys;
 * keys already in me->used give QM_E_KEY_USED without asking the KME; keys kept in
 * me->store_dir/pending by an earlier copy are taken from there, the rest from the KME (a key it
 * does not have: QM_E_KEY_NOT_FOUND); integrity checked before any plaintext leaves; the keys
 * of a message that verifies are recorded in me->used before any plaintext is returned, those
 * of one that does not are kept in pending/ (with a store_dir) or recorded as used.
 * With me->book, the inner From and Sender are bound to the sender SAE after the integrity
 * check (mail/sender.h): see accept_unverified and unverified.
 * *level (may be NULL) receives the message's level.  *inner is the exact encrypted bytes. */
qm_err qm_decrypt(qm_self *me, const uint8_t *outer, size_t outer_len,
                  uint8_t **inner, size_t *inner_len, int *level);

/* The same two without the outer MIME layer: the envelope bytes themselves
 * (what qm_encrypt wraps and qm_decrypt unwraps). */
qm_err qm_encrypt_envelope(qm_self *me, int level, const qm_peer *to, size_t n_to,
                           const uint8_t *inner, size_t inner_len,
                           uint8_t **envelope, size_t *envelope_len);
qm_err qm_decrypt_envelope(qm_self *me, const uint8_t *envelope, size_t envelope_len,
                           uint8_t **inner, size_t *inner_len, int *level);

#endif
