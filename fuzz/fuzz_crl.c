/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_crl.c - libFuzzer target for the SAE CA's CRL as qkd-kme reads it
 * ([sae_api] crl; src/kme/crl.c): the file is the operator's, but it may
 * come from elsewhere (a CA's distribution point, a copied file), and a
 * garbage one reaches the parser on every SIGHUP.
 *
 * The input is the CRL's PEM text, checked against a fixed test CA (the
 * seeds in fuzz/corpus/crl/ are CRLs that CA signed, valid until 2099, so
 * that mutations reach the serial list, not only the signature check).
 * Beyond "no crash, no leak": a refusal has a one-line reason, an
 * acceptance holds no more serials than the PEM has bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kme/crl.h"

static const char ca_pem[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBtDCCAVmgAwIBAgIUe8Js2b8DMD/2YJrHhh7BKaEWc3MwCgYIKoZIzj0EAwIw\n"
    "NjEaMBgGA1UEChMRUXVNYWlsLUMgdGVzdCBQS0kxGDAWBgNVBAMTD1F1TWFpbC1D\n"
    "IFNBRSBDQTAeFw0yNjEyMDcwMzUxNTJaFw0zNjEyMDQwMzUxNTJaMDYxGjAYBgNV\n"
    "BAoTEVF1TWFpbC1DIHRlc3QgUEtJMRgwFgYDVQQDEw9RdU1haWwtQyBTQUUgQ0Ew\n"
    "WTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAATzdp1aMkQyZfBxtMxHOgp1k87xiS3W\n"
    "te7DI8J7flCbwjPJoQkTeAX9fY9EYJlbVgWATWuu4uZlRQxi2x6o4/oYo0UwQzAS\n"
    "BgNVHRMBAf8ECDAGAQH/AgEAMA4GA1UdDwEB/wQEAwIBBjAdBgNVHQ4EFgQU0RFY\n"
    "8sDXSROTPOVBqGKbTGViyg8wCgYIKoZIzj0EAwIDSQAwRgIhAP9Q42vbb4tRG/j8\n"
    "q6XVZSBOSd35knATvQ4hct4FbrwDAiEAw2bhVuUod52xKWYVd1Z/Jhw/goIq/VVf\n"
    "eQVjHZFihnI=\n"
    "-----END CERTIFICATE-----\n"
    ;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512] = "";
    size_t revoked = 0;
    int rc = crl_check_pem((const unsigned char *)ca_pem, sizeof ca_pem - 1, data, size, &revoked,
                           err, sizeof err);
    if (rc != 0 && (!err[0] || strchr(err, '\n')))
        abort();
    if (rc == 0 && revoked > size)
        abort();
    return 0;
}
