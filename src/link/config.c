/* SPDX-License-Identifier: Apache-2.0 */
/*
 * config.c - reads and validates the link simulator's configuration.
 *
 * Its table of keys, read by the project's key-table engine (common/ini.c)
 * as the KME's and qumail's are, so an operator meets the same messages: unknown sections or keys, repeated keys, bad values,
 * unreadable files and missing required keys stop the program with the
 * file, line and key named.  After the syntax, the relations: the link's
 * certificate must carry the link ID as its CN (the KMEs identify the link
 * by it), and the two KMEs must differ.  [physics] (model.h) holds real
 * numbers, each in its physical range; `qkd-link --table` reads only it.
 */
#include "link/config.h"

#include "common/ini.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define OFF(m) offsetof(link_config, m)
#define PHY(m) offsetof(link_physics, m)

static int set_url(ini_table *t, unsigned line, const ini_key *k, const char *v);
static int set_ratio(ini_table *t, unsigned line, const ini_key *k, const char *v);
static int set_real(ini_table *t, unsigned line, const ini_key *k, const char *v);

#define KEY(sec, name, type, req, off, min, max, dflt) \
    { sec, name, type, req, 0, off, min, max, dflt, NULL, NULL }
#define CUSTOM(sec, name, req, off, fn, dflt) \
    { sec, name, INI_CUSTOM, req, 0, off, 0, 0, dflt, NULL, fn }
/* [physics] keys live in base 1 (a link_physics), so that --table can
 * read them without a whole link configuration. */
#define PKEY(name, type, off, min, max, dflt) \
    { "physics", name, type, false, 1, off, min, max, dflt, NULL, NULL }
#define PREAL(name, off, dflt) \
    { "physics", name, INI_CUSTOM, false, 1, off, 0, 0, dflt, NULL, set_real }

static const char *const model_names[] = { "fixed", "decoy-bb84", NULL };

/* The range of each real-valued [physics] key (docs/link.md says why). */
typedef struct real_range {
    const char *name;
    double min, max;
    bool min_open;        /* min itself is refused */
    const char *special;  /* a word that stands for 0 ("auto"), or NULL */
} real_range;

static const real_range real_ranges[] = {
    { "distance_km", 0, 1000, false, NULL },
    { "fiber_loss_db_per_km", 0, 10, false, NULL },
    { "detector_efficiency", 0, 1, true, NULL },
    { "dark_count_yield", 0, 0.1, false, NULL },
    { "misalignment", 0, 0.5, false, NULL },
    { "ec_efficiency", 1, 10, false, NULL },
    { "pulse_rate_hz", 0, 1e12, true, NULL },
    { "mu", 0.001, 10, false, "auto" },
    { "time_scale", 0.001, 1e9, false, NULL },
    { "eavesdropper", 0, 1, false, NULL },
    { "qber_abort", 0, 0.5, true, NULL },
};

static const ini_key keys[] = {
    KEY("link", "id", INI_ID, true, OFF(id), 0, 0, NULL),
    KEY("link", "cert", INI_FILE, true, OFF(cert), 0, 0, NULL),
    KEY("link", "key", INI_FILE, true, OFF(key), 0, 0, NULL),
    KEY("link", "ca", INI_FILE, true, OFF(ca), 0, 0, NULL),
    KEY("link", "rate_bps", INI_INT, false, OFF(rate_bps), 1, 100000000000LL, "100000000"),
    KEY("link", "block_bytes", INI_INT, false, OFF(block_bytes), 1, LINK_MAX_BLOCK_BYTES, "65536"),
    CUSTOM("link", "owner_ratio", false, 0, set_ratio, "1:1"),
    KEY("link", "timeout_ms", INI_INT, false, OFF(timeout_ms), 100, 600000, "5000"),
    KEY("link", "log_level", INI_LOGLEVEL, false, OFF(log_level), 0, 0, "info"),
    CUSTOM("kme_a", "url", true, OFF(kme[0].url), set_url, NULL),
    KEY("kme_a", "id", INI_ID, true, OFF(kme[0].id), 0, 0, NULL),
    CUSTOM("kme_b", "url", true, OFF(kme[1].url), set_url, NULL),
    KEY("kme_b", "id", INI_ID, true, OFF(kme[1].id), 0, 0, NULL),
    KEY("admin", "listen", INI_STRING, false, OFF(admin_listen), 0, 0, NULL), /* admin.c checks it */
    { "physics", "model", INI_ENUM, false, 1, PHY(model), 0, 0, "fixed", model_names, NULL },
    PREAL("distance_km", PHY(distance_km), "25"),
    PREAL("fiber_loss_db_per_km", PHY(fiber_loss_db_per_km), "0.21"),
    PREAL("detector_efficiency", PHY(detector_efficiency), "0.045"),
    PREAL("dark_count_yield", PHY(dark_count_yield), "1.7e-6"),
    PREAL("misalignment", PHY(misalignment), "0.033"),
    PREAL("ec_efficiency", PHY(ec_efficiency), "1.22"),
    PREAL("pulse_rate_hz", PHY(pulse_rate_hz), "2e6"),
    PREAL("mu", PHY(mu), "auto"),
    PREAL("time_scale", PHY(time_scale), "1"),
    PREAL("eavesdropper", PHY(eavesdropper), "0"),
    PKEY("block_sifted_bits", INI_INT, PHY(block_sifted_bits), 1000, 8000000, "1000000"),
    PKEY("qber_sample_bits", INI_INT, PHY(qber_sample_bits), 100, 1000000, "10000"),
    PREAL("qber_abort", PHY(qber_abort), "0.11"),
};
#define N_KEYS (sizeof keys / sizeof keys[0])

static int parse_uint(const char *v, int64_t max, int64_t *out)
{
    return ini_parse_uint(v, out) == 0 && *out <= max ? 0 : -1;
}

/* https://HOST:PORT with HOST a name, an IPv4 address or [IPv6]; the port
 * is required (the KMEs' intake ports are configured, not well known). */
static int check_url(ini_table *t, unsigned line, const ini_key *k, const char *v)
{
    static const char scheme[] = "https://";
    if (strncmp(v, scheme, sizeof scheme - 1) != 0)
        return ini_fail(t, line, k, "'%s' is not an https:// URL", v);
    const char *host = v + sizeof scheme - 1, *colon;
    if (*host == '[') {
        const char *close = strchr(host, ']');
        if (!close || close[1] != ':')
            return ini_fail(t, line, k, "'%s': write it as https://[IPV6]:PORT", v);
        colon = close + 1;
    } else {
        colon = strchr(host, ':');
        if (!colon)
            return ini_fail(t, line, k, "'%s' has no port (https://HOST:PORT)", v);
        for (const char *p = host; p < colon; p++)
            if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-')
                return ini_fail(t, line, k, "'%s': bad host name", v);
    }
    if (colon == host)
        return ini_fail(t, line, k, "'%s' has no host", v);
    int64_t port;
    if (parse_uint(colon + 1, 65535, &port) != 0 || port == 0)
        return ini_fail(t, line, k, "'%s': the port must be a number in 1..65535 and end the URL", v);
    return 0;
}

static int set_url(ini_table *t, unsigned line, const ini_key *k, const char *v)
{
    int rc = check_url(t, line, k, v);
    return rc != 0 ? rc : ini_store_string(t, line, k, v);
}

/* A plain decimal or e-notation number in the key's range; NaN and
 * infinities are refused (strtod would take "nan", "inf"). */
static int set_real(ini_table *t, unsigned line, const ini_key *k, const char *v)
{
    const real_range *r = NULL;
    for (size_t i = 0; i < sizeof real_ranges / sizeof real_ranges[0]; i++)
        if (strcmp(real_ranges[i].name, k->name) == 0)
            r = &real_ranges[i];
    if (!r)
        return ini_fail(t, line, k, "internal: no range");
    double *slot = (double *)((char *)t->base[k->base] + k->offset);
    if (r->special && strcmp(v, r->special) == 0) {
        *slot = 0.0;
        return 0;
    }
    char *end = NULL;
    errno = 0;
    double x = strtod(v, &end);
    bool plain = strspn(v, "0123456789.eE+-") == strlen(v);
    if (!plain || end == v || *end || errno == ERANGE || !isfinite(x)
        || x < r->min || (r->min_open && x == r->min) || x > r->max)
        return ini_fail(t, line, k, "'%s' is not a number in %g..%g%s%s", v, r->min, r->max,
                        r->min_open ? " (above the first)" : "", r->special ? " or 'auto'" : "");
    *slot = x;
    return 0;
}

static int set_ratio(ini_table *t, unsigned line, const ini_key *k, const char *v)
{
    char a[32], b[32];
    const char *colon = strchr(v, ':');
    int64_t ra, rb;
    if (!colon || (size_t)(colon - v) >= sizeof a || strlen(colon + 1) >= sizeof b)
        return ini_fail(t, line, k, "'%s' is not A:B (for example 1:1)", v);
    snprintf(a, sizeof a, "%.*s", (int)(colon - v), v);
    snprintf(b, sizeof b, "%s", colon + 1);
    if (parse_uint(ini_trim(a), 1000, &ra) != 0 || parse_uint(ini_trim(b), 1000, &rb) != 0)
        return ini_fail(t, line, k, "'%s': both parts must be integers in 0..1000", v);
    if (ra + rb == 0)
        return ini_fail(t, line, k, "'%s': at least one side must own blocks", v);
    link_config *c = t->base[0];
    c->ratio_a = (unsigned)ra;
    c->ratio_b = (unsigned)rb;
    return 0;
}

static int on_section(void *ud, unsigned line, const char *name, const char *arg)
{
    ini_table *t = ud;
    if (*arg || !ini_known_section(t, name))
        return ini_fail(t, line, NULL, "unknown section [%s%s%s] (known: [link], [kme_a], [kme_b], [physics], [admin])",
                        name, *arg ? " " : "", arg);
    return 0;
}

static const ini_handler link_ini = { on_section, ini_on_pair, ini_on_error };

/* Subject CN of the PEM certificate in path; 0, or -1 with a reason. */
static int cert_cn(const char *path, char *cn, size_t cnlen, char *why, size_t whylen)
{
    gnutls_datum_t pem = { NULL, 0 };
    gnutls_x509_crt_t crt = NULL;
    int rc = -1;
    size_t sz = cnlen;
    if (gnutls_load_file(path, &pem) < 0)
        snprintf(why, whylen, "cannot read '%s'", path);
    else if (gnutls_x509_crt_init(&crt) < 0 || gnutls_x509_crt_import(crt, &pem, GNUTLS_X509_FMT_PEM) < 0)
        snprintf(why, whylen, "'%s' holds no PEM certificate", path);
    else if (gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, cn, &sz) < 0
             || strlen(cn) != sz)
        snprintf(why, whylen, "the certificate '%s' has no usable subject CN", path);
    else
        rc = 0;
    if (crt)
        gnutls_x509_crt_deinit(crt);
    gnutls_free(pem.data);
    return rc;
}

static int check_relations(ini_table *t)
{
    link_config *c = t->base[0];
    size_t id_idx = 0, b_idx = 0;
    const ini_key *id_key = ini_find_key(t, "link", "id", &id_idx);
    const ini_key *b_key = ini_find_key(t, "kme_b", "id", &b_idx);
    char cn[256], why[512];
    if (cert_cn(c->cert, cn, sizeof cn, why, sizeof why) != 0)
        return ini_fail(t, t->lines[id_idx], id_key, "%s", why);
    if (strcmp(cn, c->id) != 0)
        return ini_fail(t, t->lines[id_idx], id_key,
                        "'%s' differs from the subject CN '%s' of the certificate '%s' (the KMEs know the link by it)",
                        c->id, cn, c->cert);
    if (strcmp(c->kme[0].id, c->kme[1].id) == 0)
        return ini_fail(t, t->lines[b_idx], b_key, "'%s' is also the ID of [kme_a]: the two ends must differ",
                        c->kme[1].id);
    return 0;
}

int link_config_load(const char *path, link_config *cfg, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
    unsigned lines[N_KEYS] = { 0 };
    ini_table t = { .keys = keys, .n_keys = N_KEYS, .lines = lines, .base = { cfg, &cfg->physics },
                    .file = path, .err = err, .errlen = errlen };
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    int rc = (cfg->path = strdup(path)) ? 0 : ini_fail(&t, 0, NULL, "out of memory");
    if (rc == 0)
        rc = ini_read(f, &link_ini, &t);
    fclose(f);
    if (rc == 0)
        rc = ini_apply_defaults(&t, NULL);
    if (rc == 0)
        rc = check_relations(&t);
    if (rc != 0)
        link_config_free(cfg);
    return rc != 0 ? -1 : 0;
}

/* --table: the other sections' keys must be known, but their values
 * (certificate files, URLs) are not read. */
static int on_physics_pair(void *ud, unsigned line, const char *section, const char *name, char *value)
{
    ini_table *t = ud;
    size_t idx;
    if (strcmp(section, "physics") == 0)
        return ini_take_pair(t, line, section, name, value);
    if (!ini_find_key(t, section, name, &idx))
        return ini_fail(t, line, NULL, "unknown key '%s' in [%s]", name, section);
    return 0;
}

static const ini_handler physics_ini = { on_section, on_physics_pair, ini_on_error };

static bool physics_only(ini_table *t, const ini_key *k)
{
    (void)t;
    return strcmp(k->section, "physics") == 0;
}

int link_physics_load(const char *path, link_physics *ph, char *err, size_t errlen)
{
    link_config scratch;
    memset(&scratch, 0, sizeof scratch);
    unsigned lines[N_KEYS] = { 0 };
    ini_table t = { .keys = keys, .n_keys = N_KEYS, .lines = lines, .base = { &scratch, ph },
                    .file = path, .err = err, .errlen = errlen };
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    int rc = ini_read(f, &physics_ini, &t);
    fclose(f);
    if (rc == 0)
        rc = ini_apply_defaults(&t, physics_only);
    link_config_free(&scratch);
    return rc != 0 ? -1 : 0;
}

const char *link_model_name(int model)
{
    return model == LINK_MODEL_DECOY_BB84 ? "decoy-bb84" : "fixed";
}

void link_config_free(link_config *cfg)
{
    free(cfg->path);
    free(cfg->id);
    free(cfg->cert);
    free(cfg->key);
    free(cfg->ca);
    free(cfg->admin_listen);
    for (int i = 0; i < 2; i++) {
        free(cfg->kme[i].url);
        free(cfg->kme[i].id);
    }
    memset(cfg, 0, sizeof *cfg);
}

bool link_config_key(size_t i, const char **section, const char **name)
{
    if (i >= N_KEYS)
        return false;
    *section = keys[i].section;
    *name = keys[i].name;
    return true;
}
