/* SPDX-License-Identifier: Apache-2.0 */
/*
 * crl.c - the SAE CA's certificate revocation list (see crl.h).
 *
 * The CRL's serials are kept sorted (leading zero bytes dropped, so that
 * 00 01 and 01 compare equal) and looked up by binary search: a check is
 * made on every new connection and, after a reload, once more on every
 * kept-alive one.  The CA certificates are read again at each reload, so
 * that the CRL is always judged against the CA file on disk.
 */
#include "kme/crl.h"

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CLOCK_SKEW_S 300 /* a CRL issued this far in the future is still taken */

typedef struct serial {
    unsigned char b[CRL_SERIAL_MAX];
    size_t len;
} serial;

struct crl_store {
    char *ca_file, *crl_file;
    pthread_rwlock_t lock;
    serial *serials;          /* sorted; under lock */
    size_t n;
    atomic_uint_fast64_t generation;
};

static void normalise(const unsigned char *in, size_t len, serial *out)
{
    while (len > 1 && in[0] == 0) {
        in++;
        len--;
    }
    out->len = len;
    memcpy(out->b, in, len);
}

static int by_serial(const void *a, const void *b)
{
    const serial *x = a, *y = b;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return memcmp(x->b, y->b, x->len);
}

static void utc_text(time_t t, char *out, size_t outlen)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, outlen, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

/* The one CRL of the PEM text. */
static int read_crl(const gnutls_datum_t *data, gnutls_x509_crl_t *crl, char *err, size_t errlen)
{
    gnutls_x509_crl_t *list = NULL;
    unsigned n = 0;
    int rc = gnutls_x509_crl_list_import2(&list, &n, data, GNUTLS_X509_FMT_PEM, 0);
    if (rc < 0 || n == 0) {
        snprintf(err, errlen, "not a PEM certificate revocation list (%s)",
                 rc < 0 ? gnutls_strerror(rc) : "no X509 CRL block");
        return -1;
    }
    for (unsigned i = 1; i < n; i++)
        gnutls_x509_crl_deinit(list[i]);
    *crl = list[0];
    gnutls_free(list);
    if (n > 1) {
        gnutls_x509_crl_deinit(*crl);
        snprintf(err, errlen, "holds %u CRLs; give the SAE CA's one CRL", n);
        return -1;
    }
    return 0;
}

/* Issued by a CA of ca_pem (read from ca_file), good signature, within
 * its validity. */
static int check_crl(gnutls_x509_crl_t crl, const gnutls_datum_t *ca_pem, const char *ca_file,
                     char *err, size_t errlen)
{
    gnutls_x509_crt_t *cas = NULL;
    unsigned ncas = 0, status = 0;
    int rc = gnutls_x509_crt_list_import2(&cas, &ncas, ca_pem, GNUTLS_X509_FMT_PEM, 0);
    if (rc < 0 || ncas == 0) {
        snprintf(err, errlen, "cannot read the CA file %s", ca_file);
        return -1;
    }
    rc = gnutls_x509_crl_verify(crl, cas, ncas, 0, &status);
    for (unsigned i = 0; i < ncas; i++)
        gnutls_x509_crt_deinit(cas[i]);
    gnutls_free(cas);
    if (rc < 0 || (status & GNUTLS_CERT_SIGNER_NOT_FOUND)) {
        snprintf(err, errlen, "not issued by the SAE CA (%s)", ca_file);
        return -1;
    }
    if (status & GNUTLS_CERT_SIGNATURE_FAILURE) {
        snprintf(err, errlen, "its signature does not verify against the SAE CA (%s)", ca_file);
        return -1;
    }
    time_t now = time(NULL), this_update = gnutls_x509_crl_get_this_update(crl);
    time_t next_update = gnutls_x509_crl_get_next_update(crl);
    char when[40];
    if (this_update == (time_t)-1 || this_update > now + CLOCK_SKEW_S) {
        utc_text(this_update, when, sizeof when);
        snprintf(err, errlen, "not issued yet (thisUpdate %s)", when);
        return -1;
    }
    if (next_update != (time_t)-1 && next_update < now) {
        utc_text(next_update, when, sizeof when);
        snprintf(err, errlen, "expired (nextUpdate %s): issue a new one", when);
        return -1;
    }
    /* the dates are judged above, with their own words; anything else */
    unsigned dates = GNUTLS_CERT_REVOCATION_DATA_SUPERSEDED
                     | GNUTLS_CERT_REVOCATION_DATA_ISSUED_IN_FUTURE;
    unsigned rest = status & ~(dates | GNUTLS_CERT_INVALID);
    if (rest != 0 || ((status & GNUTLS_CERT_INVALID) && !(status & dates))) {
        snprintf(err, errlen, "does not verify against the SAE CA (%s): GnuTLS status 0x%x",
                 ca_file, status);
        return -1;
    }
    return 0;
}

/* The CRL's serials, sorted, in a new array. */
static int collect_serials(gnutls_x509_crl_t crl, serial **out, size_t *nout, char *err,
                           size_t errlen)
{
    int count = gnutls_x509_crl_get_crt_count(crl);
    serial *s = calloc(count > 0 ? (size_t)count : 1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    gnutls_x509_crl_iter_t iter = NULL;
    size_t n = 0;
    for (;;) {
        unsigned char b[CRL_SERIAL_MAX];
        size_t len = sizeof b;
        time_t t;
        int rc = gnutls_x509_crl_iter_crt_serial(crl, &iter, b, &len, &t);
        if (rc == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
            break;
        if (rc < 0 || len == 0 || n >= (size_t)count) {
            gnutls_x509_crl_iter_deinit(iter);
            free(s);
            snprintf(err, errlen, "an entry cannot be read: %s",
                     rc < 0 ? gnutls_strerror(rc) : "bad serial number");
            return -1;
        }
        normalise(b, len, &s[n++]);
    }
    gnutls_x509_crl_iter_deinit(iter);
    qsort(s, n, sizeof *s, by_serial);
    *out = s;
    *nout = n;
    return 0;
}

/* The CRL of crl_pem checked against ca_pem, its serials sorted into *s. */
static int parse(const gnutls_datum_t *ca_pem, const char *ca_file, const gnutls_datum_t *crl_pem,
                 serial **s, size_t *n, char *err, size_t errlen)
{
    gnutls_x509_crl_t crl;
    if (read_crl(crl_pem, &crl, err, errlen) != 0)
        return -1;
    int rc = check_crl(crl, ca_pem, ca_file, err, errlen);
    if (rc == 0)
        rc = collect_serials(crl, s, n, err, errlen);
    gnutls_x509_crl_deinit(crl);
    return rc;
}

static int load(const char *ca_file, const char *crl_file, serial **s, size_t *n, char *err,
                size_t errlen)
{
    gnutls_datum_t ca = {0}, crl = {0};
    int rc = gnutls_load_file(crl_file, &crl);
    if (rc < 0) {
        snprintf(err, errlen, "cannot read the file: %s", gnutls_strerror(rc));
        return -1;
    }
    rc = gnutls_load_file(ca_file, &ca);
    if (rc < 0)
        snprintf(err, errlen, "cannot read the CA file %s", ca_file);
    else
        rc = parse(&ca, ca_file, &crl, s, n, err, errlen);
    gnutls_free(ca.data);
    gnutls_free(crl.data);
    return rc < 0 ? -1 : rc;
}

int crl_check_pem(const unsigned char *ca_pem, size_t ca_len, const unsigned char *crl_pem,
                  size_t crl_len, size_t *revoked, char *err, size_t errlen)
{
    gnutls_datum_t ca = {(unsigned char *)ca_pem, (unsigned)ca_len};
    gnutls_datum_t crl = {(unsigned char *)crl_pem, (unsigned)crl_len};
    serial *s = NULL;
    size_t n = 0;
    if (ca_len > UINT32_MAX || crl_len > UINT32_MAX) {
        snprintf(err, errlen, "too large");
        return -1;
    }
    int rc = parse(&ca, "(given)", &crl, &s, &n, err, errlen);
    free(s);
    if (rc == 0 && revoked)
        *revoked = n;
    return rc;
}

crl_store *crl_store_open(const char *ca_file, const char *crl_file, char *err, size_t errlen)
{
    crl_store *c = calloc(1, sizeof *c);
    if (!c || !(c->ca_file = strdup(ca_file)) || !(c->crl_file = strdup(crl_file))) {
        snprintf(err, errlen, "out of memory");
        if (c)
            free(c->ca_file);
        free(c);
        return NULL;
    }
    pthread_rwlock_init(&c->lock, NULL);
    if (load(c->ca_file, c->crl_file, &c->serials, &c->n, err, errlen) != 0) {
        crl_store_free(c);
        return NULL;
    }
    atomic_store(&c->generation, 1);
    return c;
}

int crl_store_reload(crl_store *c, size_t *revoked, char *err, size_t errlen)
{
    serial *s = NULL;
    size_t n = 0;
    int rc = load(c->ca_file, c->crl_file, &s, &n, err, errlen);
    pthread_rwlock_wrlock(&c->lock);
    if (rc == 0) {
        free(c->serials);
        c->serials = s;
        c->n = n;
        atomic_fetch_add(&c->generation, 1);
    }
    if (revoked)
        *revoked = c->n;
    pthread_rwlock_unlock(&c->lock);
    return rc;
}

bool crl_store_revoked(crl_store *c, const unsigned char *sn, size_t len)
{
    if (!c || len == 0 || len > CRL_SERIAL_MAX)
        return c != NULL; /* a serial we cannot compare is not let through */
    serial key;
    normalise(sn, len, &key);
    pthread_rwlock_rdlock(&c->lock);
    bool found = bsearch(&key, c->serials, c->n, sizeof *c->serials, by_serial) != NULL;
    pthread_rwlock_unlock(&c->lock);
    return found;
}

uint64_t crl_store_generation(const crl_store *c)
{
    return c ? atomic_load(&((crl_store *)c)->generation) : 0;
}

void crl_store_free(crl_store *c)
{
    if (!c)
        return;
    free(c->serials);
    free(c->ca_file);
    free(c->crl_file);
    pthread_rwlock_destroy(&c->lock);
    free(c);
}
