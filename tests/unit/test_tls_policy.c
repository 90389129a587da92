/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_tls_policy.c - the one TLS policy (src/common/tls_policy.h) as
 * GnuTLS reads it: it compiles, it enables TLS 1.3 and TLS 1.2 and nothing
 * older, and in TLS 1.2 only AEAD suites with ECDHE key exchange.  The
 * listeners and httpsc both take this string, so a change that widens it
 * fails here before any handshake is tried.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>

#include <gnutls/gnutls.h>

#include "common/tls_policy.h"

static gnutls_priority_t compile(void)
{
    gnutls_priority_t p = NULL;
    const char *where = NULL;
    int rc = gnutls_priority_init(&p, QC_TLS_PRIORITIES, &where);
    if (rc < 0)
        fail_msg("priority string refused at '%s': %s", where ? where : "?", gnutls_strerror(rc));
    return p;
}

static void test_versions_are_1_2_and_1_3(void **state)
{
    (void)state;
    gnutls_priority_t p = compile();
    const unsigned *list = NULL;
    int n = gnutls_priority_protocol_list(p, &list);
    assert_true(n > 0);
    bool has12 = false, has13 = false;
    for (int i = 0; i < n; i++) {
        if (list[i] == GNUTLS_TLS1_2)
            has12 = true;
        else if (list[i] == GNUTLS_TLS1_3)
            has13 = true;
        else
            fail_msg("protocol %s is enabled", gnutls_protocol_get_name((gnutls_protocol_t)list[i]));
    }
    assert_true(has12 && has13);
    gnutls_priority_deinit(p);
}

static void test_tls12_suites_are_aead_ecdhe(void **state)
{
    (void)state;
    gnutls_priority_t p = compile();
    const unsigned *ciphers = NULL, *kx = NULL, *macs = NULL;
    int nc = gnutls_priority_cipher_list(p, &ciphers);
    int nk = gnutls_priority_kx_list(p, &kx);
    int nm = gnutls_priority_mac_list(p, &macs);
    assert_true(nc > 0 && nk > 0 && nm > 0);
    for (int i = 0; i < nc; i++) {
        gnutls_cipher_algorithm_t c = (gnutls_cipher_algorithm_t)ciphers[i];
        if (c != GNUTLS_CIPHER_AES_256_GCM && c != GNUTLS_CIPHER_AES_128_GCM
            && c != GNUTLS_CIPHER_CHACHA20_POLY1305)
            fail_msg("cipher %s is enabled", gnutls_cipher_get_name(c));
    }
    for (int i = 0; i < nk; i++) {
        gnutls_kx_algorithm_t k = (gnutls_kx_algorithm_t)kx[i];
        if (k != GNUTLS_KX_ECDHE_ECDSA && k != GNUTLS_KX_ECDHE_RSA)
            fail_msg("key exchange %s is enabled", gnutls_kx_get_name(k));
    }
    for (int i = 0; i < nm; i++)
        if ((gnutls_mac_algorithm_t)macs[i] != GNUTLS_MAC_AEAD)
            fail_msg("MAC %s is enabled", gnutls_mac_get_name((gnutls_mac_algorithm_t)macs[i]));
    gnutls_priority_deinit(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_versions_are_1_2_and_1_3),
        cmocka_unit_test(test_tls12_suites_are_aead_ecdhe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
