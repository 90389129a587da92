/* SPDX-License-Identifier: Apache-2.0 */
/*
 * x509cn.c - subject CN of a DER certificate (GnuTLS).
 *
 * Two CNs make the identity ambiguous, and a CN with an embedded NUL could
 * pass as a shorter name in a C string compare: both are refused.
 */
#include "common/x509cn.h"

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <string.h>

int x509_der_cn(const void *der, size_t len, char *out, size_t outlen)
{
    gnutls_datum_t d = { .data = (unsigned char *)der, .size = (unsigned)len };
    gnutls_x509_crt_t crt;
    if (outlen == 0 || len > 0xffffffffu || gnutls_x509_crt_init(&crt) < 0)
        return -1;
    int rc = -1;
    size_t n = outlen, n2 = 0;
    if (gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_DER) == 0
        && gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, out, &n) == 0
        && gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 1, 0, NULL, &n2)
               == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE
        && strlen(out) == n)
        rc = 0;
    gnutls_x509_crt_deinit(crt);
    return rc;
}
