/* SPDX-License-Identifier: Apache-2.0 */
/*
 * usedkeys.h - the key IDs this user has already used, in a small SQLite
 * file (docs/qumail-format.md, DESIGN.md §5 "used key IDs are recorded
 * locally").
 *
 * A QKD key is used once.  Before it asks its KME for the keys a message
 * names, the reader (message.c) looks the key IDs up here: a key ID already
 * present is "key already used" without any network traffic, so a replayed
 * message never reaches the KME.  Key IDs fetched are recorded, durably,
 * before any plaintext is returned.  The file is created with mode 0600 and
 * runs in WAL mode with synchronous=NORMAL: a recorded ID survives a process
 * crash (see usedkeys.c for why power loss needs no more).
 * Key IDs are stored in their canonical lower-case text form; no key bytes
 * ever come here.
 */
#ifndef QM_USEDKEYS_H
#define QM_USEDKEYS_H

#include <stdbool.h>
#include <stddef.h>

#include "mail/errors.h"

typedef struct qm_usedkeys qm_usedkeys;   /* SQLite file of key IDs this user has used */

/* Open (and create, mode 0600) the store at path.  QM_E_IO if the file
 * cannot be opened or is not a used-key store. */
qm_err qm_usedkeys_open(const char *path, qm_usedkeys **out);
void qm_usedkeys_close(qm_usedkeys *u);

/* Whether any of the n key IDs (UUID text, either case) is recorded;
 * *used_index (may be NULL) receives the index of the first one found. */
qm_err qm_usedkeys_any(qm_usedkeys *u, const char *const *key_ids, size_t n,
                       bool *any, size_t *used_index);

/* When key_id (UUID text, either case) was recorded: *used_at (Unix
 * seconds) and QM_OK, or QM_E_NOT_FOUND if it never was. */
qm_err qm_usedkeys_when(qm_usedkeys *u, const char *key_id, long long *used_at);

/* Record the n key IDs as used (master = the SAE that issued them), in one
 * durable transaction; IDs already present are kept as they are. */
qm_err qm_usedkeys_record(qm_usedkeys *u, const char *const *key_ids, size_t n,
                          const char *master_sae_id);

#endif
