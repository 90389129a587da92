/* SPDX-License-Identifier: Apache-2.0 */
/*
 * send.h - sending a message: what `qumail send` and the web client's
 * Compose page share (docs/qumail.md, docs/web.md).
 *
 *   qm_send_resolve   recipients' addresses -> address-book peers, checked
 *                     before any key is fetched
 *   qm_send           encrypt a complete inner message at Level 1, 2 or 4
 *                     (message.h: keys from the KME), deliver the outer
 *                     message to every recipient's Maildir (all or none) or
 *                     by SMTP, as [mail] send says, and, on request, keep
 *                     the plaintext sent copy in [store] dir/sent only
 *   qm_send_cost_bits the key bits a message takes from the sender's KME
 *                     pool for one recipient (to refuse before any key is
 *                     taken)
 *
 * A Maildir or a mail server only ever gets the encrypted outer message;
 * the plaintext copy stays in the sender's local store (mode 0700/0600).
 * The key IDs the message used are handed back (they name keys, not key
 * bytes) so that a front end can show them.
 */
#ifndef QM_SEND_H
#define QM_SEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/uuid.h"
#include "mail/config.h"
#include "mail/envelope.h"
#include "mail/errors.h"
#include "mail/message.h"

/* The address-book entries of the n addresses in *peers (their strings
 * point into cfg).  QM_E_USAGE (none, more than QM_MAX_RECIPIENTS, one
 * given twice) or QM_E_NOT_FOUND (not in the address book) with the reason
 * in detail, before any key is fetched. */
qm_err qm_send_resolve(const qm_config *cfg, const char *const *to, size_t n, qm_peer *peers,
                       char *detail, size_t cap);

/* What qm_send did. */
typedef struct qm_send_result {
    char message_id[128];                      /* the outer Message-ID */
    char (*key_ids)[UUID_STR_LEN + 1];         /* the keys the message used, envelope order */
    size_t n_keys;
    bool sent_copy_kept;                       /* keep_sent asked and the copy written */
} qm_send_result;

void qm_send_result_free(qm_send_result *r);   /* safe on a zeroed result, twice */

/* Encrypt inner (a complete RFC 5322 message) at level for the n_to peers
 * as me (me->kme connected unless level 4), deliver it by cfg's [mail]
 * send, and with keep_sent keep inner in cfg's [store] dir/sent.  On error
 * nothing was delivered and me->detail says why (encryption: the KME's
 * words; delivery: the Maildir or the server's answer; QM_E_CONFIG:
 * maildir_root too long).  A sent copy that cannot be written does not
 * undo a delivered message: sent_copy_kept says so.  Narrates through
 * me->trace (where each copy went). */
qm_err qm_send(qm_self *me, const qm_config *cfg, int level, const qm_peer *to, size_t n_to,
               const uint8_t *inner, size_t inner_len, bool keep_sent, qm_send_result *res);

/* Key bits a level 1 or 2 message of inner_len bytes takes from the pool
 * of the sender's KME for each recipient, with pad keys of key_bits each
 * (the KME's key_size): Level 1 the pad rounded up to whole keys plus the
 * 256-bit MAC key, Level 2 one 256-bit key, Level 4 none. */
uint64_t qm_send_cost_bits(int level, uint64_t inner_len, uint32_t key_bits);

#endif
