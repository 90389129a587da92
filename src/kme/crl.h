/* SPDX-License-Identifier: Apache-2.0 */
/*
 * crl.h - certificate revocation for the SAE API ([sae_api] crl = FILE;
 * docs/kme.md): the SAE CA's CRL, checked when loaded, and the set of
 * serial numbers it revokes, replaced as a whole when SIGHUP re-reads the
 * file.
 *
 * A CRL is accepted only when it is one PEM CRL, signed by a certificate of
 * the configured CA file, already issued and not past its nextUpdate; a
 * reload that fails any of this keeps the CRL in force (and says why).
 * Each successful load bumps a generation number, so that a connection
 * authenticated under an older CRL checks its certificate again on its next
 * request (listener.c).  Thread-safe: lookups take a read lock.
 */
#ifndef QC_KME_CRL_H
#define QC_KME_CRL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CRL_SERIAL_MAX 64   /* bytes; RFC 5280 allows 20 */

typedef struct crl_store crl_store;

/* Load and check crl_file against the CAs in ca_file; NULL with the reason
 * in err (no file names: the caller adds them). */
crl_store *crl_store_open(const char *ca_file, const char *crl_file, char *err, size_t errlen);

/* Re-read the files given to crl_store_open.  0: the new CRL is in force;
 * -1: the old one stays, the reason in err.  *revoked (may be NULL) gets
 * the number of serials the CRL in force lists. */
int crl_store_reload(crl_store *c, size_t *revoked, char *err, size_t errlen);

/* Is this certificate serial number (big-endian bytes as in the
 * certificate) revoked by the CRL in force? */
bool crl_store_revoked(crl_store *c, const unsigned char *serial, size_t len);

/* Counts successful loads; changes whenever the CRL in force changes. */
uint64_t crl_store_generation(const crl_store *c);

void crl_store_free(crl_store *c);

/* The checks of crl_store_open on PEM texts in memory (CA certificates,
 * CRL): 0 with the number of revoked serials, or -1 with the reason.  For
 * the fuzz target. */
int crl_check_pem(const unsigned char *ca_pem, size_t ca_len, const unsigned char *crl_pem,
                  size_t crl_len, size_t *revoked, char *err, size_t errlen);

#endif
