/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sender.h - binding a decrypted message's From and Sender to the SAE that
 * sent it (docs/qumail-format.md §6).
 *
 * At Levels 1 and 2 the envelope's sender SAE is proven once the message
 * verifies: the reader's KME handed out the keys only because that SAE was
 * their master, and the tag shows the message was sealed with them.  What
 * the inner message says about its author (From, Sender) is the sender's own
 * claim: any registered SAE can write "From: alice@example.org".  The rule:
 *
 *   - the sender SAE must be in the reader's address book;
 *   - every address of every From and Sender header must be in the address
 *     book with that same SAE (addresses compared case-insensitively, display
 *     names ignored: they are not verified);
 *   - a From or Sender header without any address, or a header section that
 *     does not parse but has a line starting like one, is refused;
 *   - a message with neither header claims nobody and passes if the SAE is
 *     in the address book.
 *
 * Level 4 proves nothing and is never checked (it is labelled unprotected).
 * Only the header section of the inner message is parsed (GMime).
 */
#ifndef QM_SENDER_H
#define QM_SENDER_H

#include <stddef.h>
#include <stdint.h>

#include "mail/config.h"
#include "mail/errors.h"

/* QM_OK if the From and Sender addresses of inner are bound to sender_sae by
 * cfg's address book; QM_E_SENDER if not, with one line in why naming the
 * address, the SAE the address book gives it, and the SAE that sent the
 * message (e.g. "sent by SAE SAE_A2 (carol@example.org), but From
 * alice@example.org is SAE_A1 in your address book"), terminal controls
 * replaced (common/termsafe.h).  QM_E_NOMEM, or
 * QM_E_USAGE for NULL arguments.  *who (may be NULL) receives on QM_OK the
 * address-book address of sender_sae (owned by cfg). */
qm_err qm_sender_verify(const qm_config *cfg, const char *sender_sae, const uint8_t *inner,
                        size_t len, char *why, size_t why_cap, const char **who);

/* The addresses of every From and Sender header of the header section of
 * msg, in order, as malloc'd strings "From ADDR" or "Sender ADDR" (for tests and the fuzz target);
 * *bad receives the name of a header without any address ("From" or
 * "Sender") or NULL.  QM_E_NOMEM, QM_E_MIME if the header section does not
 * parse and has a line that starts like a From or Sender header (one that
 * does not parse and has none gives no address). */
qm_err qm_sender_addresses(const uint8_t *msg, size_t len, char ***addrs, size_t *n,
                           const char **bad);
void qm_sender_addresses_free(char **addrs, size_t n);

#endif
