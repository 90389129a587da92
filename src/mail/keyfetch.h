/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keyfetch.h - getting the keys of a message through libqkd014
 * (docs/qumail-format.md §4): the sender's key plan and enc_keys calls, and
 * the reader's dec_keys calls, with libqkd014's errors mapped to qm_err.
 *
 * Key bytes stay in libqkd014's locked containers (one qkd014_keys per
 * ETSI call); a qm_key_set lists them in the order the envelope needs and
 * hands them to level1.c / level2.c as qm_key_bytes views, so a pad is
 * never copied.  qm_key_set_free() wipes and frees the containers.  Keys
 * of a failed encryption are freed the same way and never used again.
 * message.c is the only caller; every ETSI call and every key ID and size
 * is narrated through me->trace, never a key byte.
 */
#ifndef QM_KEYFETCH_H
#define QM_KEYFETCH_H

#include <stddef.h>
#include <stdint.h>

#include "qkd014.h"

#include "common/uuid.h"
#include "mail/envelope.h"
#include "mail/errors.h"
#include "mail/keys.h"
#include "mail/message.h"

/* Keys in envelope order, spread over the containers that hold them. */
typedef struct qm_key_set {
    qkd014_keys **batches;   /* one per ETSI call */
    size_t n_batches;
    qm_key_bytes *views;     /* n views into the batches */
    qm_key_ref *refs;        /* the same keys as the envelope names them */
    char (*ids)[UUID_STR_LEN + 1];   /* and their text IDs */
    size_t n;
} qm_key_set;

void qm_key_set_free(qm_key_set *s);   /* wipes the key bytes; safe on a zeroed set, twice */

/* The sender's keys for one message. */
typedef struct qm_key_plan {
    int level;
    size_t n_groups;
    size_t group_of[QM_MAX_RECIPIENTS];      /* recipient (index into to[]) -> group */
    qm_key_set group_keys[QM_MAX_GROUPS];    /* level 1: pad keys; level 2: its one key */
    qm_key_set mac_keys[QM_MAX_RECIPIENTS];  /* level 1: one 32-byte key per recipient */
} qm_key_plan;

void qm_key_plan_free(qm_key_plan *p);   /* wipes; safe on a zeroed plan, twice */

/* Fetch (enc_keys, as me for the recipients) every key a level 1 or 2
 * message of msg_len bytes to them needs.  Level 1: recipients with the same
 * non-NULL kme_id share a multicast pad in batches the KME's
 * max_SAE_ID_count allows, the others get their own pad; pad keys follow
 * the KME's size limits and sum to msg_len where possible.  Level 2: one
 * 256-bit key per recipient, each its own group.  On error *p is empty
 * and me->detail says why. */
qm_err qm_keyfetch_for_send(qm_self *me, int level, const qm_peer *to, size_t n_to,
                            uint64_t msg_len, qm_key_plan *p);

/* Fetch (dec_keys, as me, master = the envelope's sender) the n keys with
 * these IDs: in one call, or, if the KME refuses that call with a 400 that
 * is not about the keys themselves, in as many calls as the
 * max_key_per_request of its status requires (a 413 for the request body:
 * in calls of half as many key IDs, as often as it takes).
 * A KME that does not have a key (400 "not found") gives QM_E_KEY_NOT_FOUND.
 * On error *s still holds the keys of the calls that succeeded (the KME
 * has handed them out, so the caller records them as used). */
qm_err qm_keyfetch_by_ids(qm_self *me, const char *master, const char *const *ids, size_t n,
                          qm_key_set *s);

/* One line of narration to me->trace, if set (printf format; the callers
 * pass key IDs and sizes, never key bytes).  Shared by keyfetch.c and
 * message.c. */
void qm_trace(qm_self *me, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Pad key sizes (bytes) for msg_len bytes under the KME's limits in bits:
 * sizes[] (capacity cap) receives them in pad order, *n their number.
 * Exported for tests.  QM_E_TOO_BIG if more than cap keys are needed,
 * QM_E_KME if the limits allow no key at all. */
qm_err qm_pad_plan(uint64_t msg_len, int32_t min_key_bits, int32_t max_key_bits,
                   uint32_t *sizes, size_t cap, size_t *n);

#endif
