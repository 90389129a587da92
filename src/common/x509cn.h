/* SPDX-License-Identifier: Apache-2.0 */
/*
 * x509cn.h - the subject common name of a DER certificate, as an identity.
 *
 * Shared by every client that checks whom it reached (libqkd014 checks the
 * KME ID, the KME checks its peer KMEs) so that the rule is the same
 * everywhere: exactly one CN, no embedded NUL.
 */
#ifndef QC_X509CN_H
#define QC_X509CN_H

#include <stddef.h>

/* Subject CN of the DER certificate der[0..len) into out (NUL-terminated);
 * 0, or -1 when it cannot be parsed, has no CN or several, holds a NUL, or
 * does not fit outlen. */
int x509_der_cn(const void *der, size_t len, char *out, size_t outlen);

#endif
