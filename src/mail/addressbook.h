/* SPDX-License-Identifier: Apache-2.0 */
/*
 * addressbook.h - the [addressbook] of a qumail configuration (config.h):
 * contacts kept in the order given, found by address (case-insensitively)
 * and by SAE ID through two open-addressing hash tables.  Loading adds each
 * entry after a lookup for its duplicate, so a linear lookup made loading
 * quadratic (200,000 entries took 100 s); now it is linear.
 */
#ifndef QM_ADDRESSBOOK_H
#define QM_ADDRESSBOOK_H

#include "mail/config.h"

/* Append a contact (address already valid and lower case; kme may be
 * NULL) to cfg's book and its indexes.  The caller checked that the
 * address is new.  QM_OK or QM_E_NOMEM (the book is then unchanged). */
qm_err qm_addressbook_add(qm_config *cfg, const char *address, const char *sae_id,
                          const char *kme_id, unsigned line);

/* The contact of address (case-insensitive), or NULL. */
const qm_contact *qm_addressbook_by_address(const qm_config *cfg, const char *address);

/* The first contact (in the file's order) whose SAE ID is sae_id, or NULL. */
const qm_contact *qm_addressbook_by_sae(const qm_config *cfg, const char *sae_id);

/* Free the contacts and the indexes. */
void qm_addressbook_free(qm_config *cfg);

#endif
