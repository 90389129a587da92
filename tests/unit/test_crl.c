/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_crl.c - the SAE CA's CRL as the KME loads it (src/kme/crl.c): a CRL
 * made by scripts/pki loads and revokes exactly its serials; a CRL of
 * another CA, one whose signature does not verify, an expired one, one not
 * issued yet, garbage and a missing file are each refused with their own
 * reason; a failed reload keeps the CRL in force and its generation, a
 * good one replaces it and bumps the generation.
 *
 * The fixtures are made with scripts/pki (PKI_SCRIPT) and certtool in a
 * fresh temporary directory; the test is skipped without them.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "kme/crl.h"

static char dir[64];
static char ca[128], crl[128];

static int sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    return system(cmd);
}

/* The serial number of dir/NAME.crt. */
static size_t serial_of(const char *name, unsigned char *out, size_t outlen)
{
    char path[160];
    gnutls_datum_t d;
    gnutls_x509_crt_t crt;
    snprintf(path, sizeof path, "%s/%s.crt", dir, name);
    assert_int_equal(gnutls_load_file(path, &d), 0);
    assert_int_equal(gnutls_x509_crt_init(&crt), 0);
    assert_true(gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM) >= 0);
    size_t len = outlen;
    assert_true(gnutls_x509_crt_get_serial(crt, out, &len) >= 0);
    gnutls_x509_crt_deinit(crt);
    gnutls_free(d.data);
    return len;
}

static bool revoked(crl_store *c, const char *name)
{
    unsigned char sn[CRL_SERIAL_MAX];
    size_t len = serial_of(name, sn, sizeof sn);
    return crl_store_revoked(c, sn, len);
}

static int group_setup(void **state)
{
    (void)state;
    const char *pki = getenv("PKI_SCRIPT");
    if (!pki || system("certtool --version >/dev/null 2>&1") != 0)
        return 0; /* each test skips */
    snprintf(dir, sizeof dir, "/tmp/test_crl.XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(ca, sizeof ca, "%s/sae-ca.crt", dir);
    snprintf(crl, sizeof crl, "%s/sae-ca.crl", dir);
    if (sh("'%s' init %s >/dev/null && '%s' sae %s S1 >/dev/null && '%s' sae %s S2 >/dev/null"
           " && '%s' crl %s >/dev/null && mkdir %s/other && '%s' init %s/other >/dev/null"
           " && '%s' crl %s/other >/dev/null",
           pki, dir, pki, dir, pki, dir, pki, dir, dir, pki, dir, pki, dir) != 0)
        return -1;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    if (dir[0])
        sh("rm -rf '%s'", dir);
    return 0;
}

static void need_fixtures(void)
{
    if (!dir[0])
        skip();
}

/* A CRL file of the SAE CA with certtool's template text (dates). */
static void make_crl(const char *out, const char *tmpl)
{
    FILE *f;
    char t[160];
    snprintf(t, sizeof t, "%s/t.tmpl", dir);
    assert_non_null(f = fopen(t, "w"));
    fputs(tmpl, f);
    fclose(f);
    assert_int_equal(sh("certtool --generate-crl --load-ca-certificate %s --load-ca-privkey "
                        "%s/sae-ca.key --template %s --outfile %s >/dev/null 2>&1",
                        ca, dir, t, out), 0);
}

static void expect_refused(const char *file, const char *reason)
{
    char err[512] = "";
    crl_store *c = crl_store_open(ca, file, err, sizeof err);
    assert_null(c);
    if (!strstr(err, reason))
        fail_msg("reason \"%s\" does not contain \"%s\"", err, reason);
}

static void test_revokes_exactly_its_serials(void **state)
{
    (void)state;
    need_fixtures();
    char err[512];
    crl_store *c = crl_store_open(ca, crl, err, sizeof err);
    if (!c)
        fail_msg("%s", err);
    assert_false(revoked(c, "S1"));
    uint64_t gen = crl_store_generation(c);

    assert_int_equal(sh("'%s' revoke %s S1 >/dev/null", getenv("PKI_SCRIPT"), dir), 0);
    size_t n = 0;
    assert_int_equal(crl_store_reload(c, &n, err, sizeof err), 0);
    assert_int_equal(n, 1);
    assert_true(crl_store_generation(c) > gen);
    assert_true(revoked(c, "S1"));
    assert_false(revoked(c, "S2"));
    /* the same serial with a leading zero byte is the same serial */
    unsigned char sn[CRL_SERIAL_MAX + 1];
    size_t len = serial_of("S1", sn + 1, CRL_SERIAL_MAX);
    sn[0] = 0;
    assert_true(crl_store_revoked(c, sn, len + 1));
    crl_store_free(c);
}

/* A failed reload keeps the CRL in force and its generation. */
static void test_bad_reload_keeps_old(void **state)
{
    (void)state;
    need_fixtures();
    char err[512], keep[160];
    assert_int_equal(sh("'%s' revoke %s S2 >/dev/null", getenv("PKI_SCRIPT"), dir), 0);
    crl_store *c = crl_store_open(ca, crl, err, sizeof err);
    assert_non_null(c);
    assert_true(revoked(c, "S2"));
    uint64_t gen = crl_store_generation(c);
    snprintf(keep, sizeof keep, "%s/keep.crl", dir);
    assert_int_equal(sh("cp %s %s && echo garbage > %s", crl, keep, crl), 0);
    size_t n = 0;
    assert_int_equal(crl_store_reload(c, &n, err, sizeof err), -1);
    assert_non_null(strstr(err, "not a PEM certificate revocation list"));
    assert_true(n >= 1);
    assert_int_equal(crl_store_generation(c), gen);
    assert_true(revoked(c, "S2"));
    assert_int_equal(sh("cp %s %s", keep, crl), 0);
    crl_store_free(c);
}

static void test_refused_at_open(void **state)
{
    (void)state;
    need_fixtures();
    char path[160];
    expect_refused("/nonexistent/sae-ca.crl", "cannot read the file");
    snprintf(path, sizeof path, "%s/garbage.crl", dir);
    assert_int_equal(sh("echo garbage > %s", path), 0);
    expect_refused(path, "not a PEM certificate revocation list");
    /* another CA of the same name: its signature cannot verify with ours */
    snprintf(path, sizeof path, "%s/other/sae-ca.crl", dir);
    expect_refused(path, "SAE CA");
    /* a certificate, not a CRL */
    expect_refused(ca, "not a PEM certificate revocation list");
    snprintf(path, sizeof path, "%s/expired.crl", dir);
    make_crl(path, "crl_this_update_date = \"2020-01-01 00:00:00\"\n"
                   "crl_next_update_date = \"2020-02-01 00:00:00\"\ncrl_number = 7\n");
    expect_refused(path, "expired (nextUpdate 2020-02-01 00:00:00 UTC)");
    snprintf(path, sizeof path, "%s/future.crl", dir);
    make_crl(path, "crl_this_update_date = \"2099-01-01 00:00:00\"\n"
                   "crl_next_update_date = \"2099-02-01 00:00:00\"\ncrl_number = 8\n");
    expect_refused(path, "not issued yet (thisUpdate 2099-01-01 00:00:00 UTC)");
    /* two CRLs in one file */
    snprintf(path, sizeof path, "%s/two.crl", dir);
    assert_int_equal(sh("cat %s %s > %s", crl, crl, path), 0);
    expect_refused(path, "holds 2 CRLs");
}

/* A CRL whose signature bytes were altered. */
static void test_bad_signature(void **state)
{
    (void)state;
    need_fixtures();
    char der[160], pem[160];
    snprintf(der, sizeof der, "%s/crl.der", dir);
    snprintf(pem, sizeof pem, "%s/tampered.crl", dir);
    /* flip one byte near the end (inside the signature) of the DER form */
    assert_int_equal(sh("certtool --crl-info --infile %s --outder --outfile %s >/dev/null 2>&1 &&"
                        " size=$(stat -c %%s %s) && printf '\\x55' |"
                        " dd of=%s bs=1 seek=$((size - 5)) conv=notrunc 2>/dev/null &&"
                        " certtool --crl-info --inder --infile %s --outfile %s >/dev/null 2>&1",
                        crl, der, der, der, der, pem), 0);
    char err[512];
    assert_null(crl_store_open(ca, pem, err, sizeof err));
    if (!strstr(err, "SAE CA"))
        fail_msg("unexpected reason: %s", err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_revokes_exactly_its_serials),
        cmocka_unit_test(test_bad_reload_keeps_old),
        cmocka_unit_test(test_refused_at_open),
        cmocka_unit_test(test_bad_signature),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
