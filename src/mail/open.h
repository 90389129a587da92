/* SPDX-License-Identifier: Apache-2.0 */
/*
 * open.h - reading a message as its recipient: what `qumail read`,
 * `qumail decrypt` and the web client's Read page share, so that they use
 * the same stores (the read store, the used-key store, pending/) and fail
 * with the same errors.
 *
 *   qm_open_keys     make me (message.h) ready for cfg's account: the KME
 *                    client (it connects on first use) and, for reading,
 *                    the used-key store and pending/ in [store] dir
 *   qm_open_outer    decrypt an outer message with me's keys (dec_keys);
 *                    the keys are spent afterwards
 *   qm_open_stored   message idx of a mailbox from the read store, if it
 *                    was read before (no key, no KME call)
 *   qm_open_fresh    decrypt it (qm_open_outer) and keep it in the read
 *                    store, with what a reader shows of it (readstore.h):
 *                    a reader of the mailbox calls qm_open_stored, then
 *                    qm_open_fresh if it was not read (and if it may spend
 *                    the message's keys now)
 *
 * A message is decrypted once: its keys are delivered once by the KME and
 * recorded as used before any plaintext is returned.  The plaintext is
 * then kept in the read store, and shown from there afterwards.
 */
#ifndef QM_OPEN_H
#define QM_OPEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mail/config.h"
#include "mail/errors.h"
#include "mail/inbox.h"
#include "mail/message.h"
#include "mail/parts.h"
#include "mail/readstore.h"

/* Fill me for cfg's account (sae_id, address, book) and create its KME
 * client if me->kme is NULL; with for_decrypt also create [store] dir and
 * its read/ (0700) and open the used-key store.  Safe to call again (what
 * is open stays open).  On failure msg holds the whole sentence for the
 * user: QM_E_CONFIG ([kme] settings, [store] dir too long), QM_E_NOMEM
 * (the client), QM_E_IO (the store directory or the used-key store). */
qm_err qm_open_keys(qm_self *me, const qm_config *cfg, bool for_decrypt, char *msg,
                    size_t cap);

/* Free what qm_open_keys opened (the client, the used-key store). */
void qm_open_close(qm_self *me);

/* A message opened for reading. */
typedef struct qm_opened {
    char key[512];        /* its read-store key (qm_inbox_store_key) */
    uint8_t *outer;       /* qm_open_stored: the fetched message, for qm_open_fresh */
    size_t outer_len;
    uint8_t *plain;       /* the inner message (plaintext: qm_opened_free wipes it) */
    size_t len;
    int level;
    qm_read_meta meta;    /* from the store, or made now */
    qm_parts parts;       /* decrypted now: its parts as read for the meta (has_parts), so
                             that a reader shows them without parsing it again */
    bool has_parts;
    bool from_store;      /* read before: no key was used, no KME call made */
    qm_err kept;          /* decrypted now: QM_OK once it is in the read store */
} qm_opened;

/* Wipe and free; safe on a zeroed struct, twice. */
void qm_opened_free(qm_opened *o);

/* Decrypt an outer message addressed to me (qm_open_keys done with
 * for_decrypt) and fill o->plain, o->level and o->meta (sender verified or
 * why not, a forged copy seen, the envelope's SAE IDs and key IDs, the
 * KME, the attachment list, the time).  A message whose sender is not
 * verified is returned only with accept_unverified (else QM_E_SENDER, no
 * plaintext, me->unverified says why, its keys wait in pending/).  On
 * failure me->detail has one line of detail. */
qm_err qm_open_outer(qm_self *me, const qm_config *cfg, const uint8_t *outer, size_t len,
                     bool accept_unverified, qm_opened *o);

/* Message idx of mb: fetched, its read-store key in o->key, and from the
 * read store if it was read before (o->from_store).  QM_E_NOT_FOUND: not
 * read yet (o->outer holds it for qm_open_fresh).  Other failures: the
 * mailbox (detail names it) or the read store (QM_E_IO). */
qm_err qm_open_stored(const qm_config *cfg, const qm_inbox *mb, size_t idx, qm_opened *o,
                      char *detail, size_t cap);

/* After qm_open_stored said QM_E_NOT_FOUND: decrypt o->outer and keep the
 * plaintext in the read store (marked if its sender is not verified).
 * QM_OK also when it could not be kept: o->kept says so (its keys are
 * spent: show it all the same). */
qm_err qm_open_fresh(qm_self *me, const qm_config *cfg, qm_opened *o);

/* The index in mb of the message with this ID (qm_inbox_id), or -1. */
long qm_open_find(const qm_inbox *mb, const char *id);

#endif
