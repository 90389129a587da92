/*
 * config.c - reads and validates the link simulator's configuration.
 *
 * A table of its keys read through the project's INI reader (common/ini.c,
 * ini_read), as the KME's and qumail's configurations are, so an operator
 * meets the same messages: unknown sections or keys, repeated keys, bad values,
 * unreadable files and missing required keys stop the program with the
 * file, line and key named.  After the syntax, the relations: the link's
 * certificate must carry the link ID as its CN (the KMEs identify the link
 * by it), and the two KMEs must differ.
 */
#include "link/config.h"

#include "common/ini.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef enum { T_ID, T_FILE, T_INT, T_RATIO, T_URL, T_LOGLEVEL } key_type;

typedef struct config_key {
    const char *section, *name;
    key_type type;
    bool required;
    size_t offset;          /* into link_config */
    int64_t min, max;       /* T_INT */
    const char *dflt;
} config_key;

#define OFF(m) offsetof(link_config, m)

static const config_key keys[] = {
    { "link", "id", T_ID, true, OFF(id), 0, 0, NULL },
    { "link", "cert", T_FILE, true, OFF(cert), 0, 0, NULL },
    { "link", "key", T_FILE, true, OFF(key), 0, 0, NULL },
    { "link", "ca", T_FILE, true, OFF(ca), 0, 0, NULL },
    { "link", "rate_bps", T_INT, false, OFF(rate_bps), 1, 100000000000LL, "100000000" },
    { "link", "block_bytes", T_INT, false, OFF(block_bytes), 1, LINK_MAX_BLOCK_BYTES, "65536" },
    { "link", "owner_ratio", T_RATIO, false, 0, 0, 0, "1:1" },
    { "link", "timeout_ms", T_INT, false, OFF(timeout_ms), 100, 600000, "5000" },
    { "link", "log_level", T_LOGLEVEL, false, 0, 0, 0, "info" },
    { "kme_a", "url", T_URL, true, OFF(kme[0].url), 0, 0, NULL },
    { "kme_a", "id", T_ID, true, OFF(kme[0].id), 0, 0, NULL },
    { "kme_b", "url", T_URL, true, OFF(kme[1].url), 0, 0, NULL },
    { "kme_b", "id", T_ID, true, OFF(kme[1].id), 0, 0, NULL },
};
#define N_KEYS (sizeof keys / sizeof keys[0])

typedef struct parse_state {
    link_config *cfg;
    const char *file;
    unsigned lines[N_KEYS];     /* line of each key given; 0: not given */
    char *err;
    size_t errlen;
} parse_state;

#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
static int fail(parse_state *ps, unsigned line, const config_key *k, const char *fmt, ...)
{
    char reason[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    ini_format_error(ps->err, ps->errlen, ps->file, line, k ? k->section : NULL,
                     k ? k->name : NULL, reason);
    return -1;
}

static int parse_uint(const char *v, int64_t max, int64_t *out)
{
    return ini_parse_uint(v, out) == 0 && *out <= max ? 0 : -1;
}

static int check_file(parse_state *ps, unsigned line, const config_key *k, const char *v)
{
    char why[600];
    return ini_check_file(v, why, sizeof why) == 0 ? 0 : fail(ps, line, k, "%s", why);
}

/* https://HOST:PORT with HOST a name, an IPv4 address or [IPv6]; the port
 * is required (the KMEs' intake ports are configured, not well known). */
static int check_url(parse_state *ps, unsigned line, const config_key *k, const char *v)
{
    static const char scheme[] = "https://";
    if (strncmp(v, scheme, sizeof scheme - 1) != 0)
        return fail(ps, line, k, "'%s' is not an https:// URL", v);
    const char *host = v + sizeof scheme - 1, *colon;
    if (*host == '[') {
        const char *close = strchr(host, ']');
        if (!close || close[1] != ':')
            return fail(ps, line, k, "'%s': write it as https://[IPV6]:PORT", v);
        colon = close + 1;
    } else {
        colon = strchr(host, ':');
        if (!colon)
            return fail(ps, line, k, "'%s' has no port (https://HOST:PORT)", v);
        for (const char *p = host; p < colon; p++)
            if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-')
                return fail(ps, line, k, "'%s': bad host name", v);
    }
    if (colon == host)
        return fail(ps, line, k, "'%s' has no host", v);
    int64_t port;
    if (parse_uint(colon + 1, 65535, &port) != 0 || port == 0)
        return fail(ps, line, k, "'%s': the port must be a number in 1..65535 and end the URL", v);
    return 0;
}

static int set_ratio(parse_state *ps, unsigned line, const config_key *k, const char *v)
{
    char a[32], b[32];
    const char *colon = strchr(v, ':');
    int64_t ra, rb;
    if (!colon || (size_t)(colon - v) >= sizeof a || strlen(colon + 1) >= sizeof b)
        return fail(ps, line, k, "'%s' is not A:B (for example 1:1)", v);
    snprintf(a, sizeof a, "%.*s", (int)(colon - v), v);
    snprintf(b, sizeof b, "%s", colon + 1);
    if (parse_uint(ini_trim(a), 1000, &ra) != 0 || parse_uint(ini_trim(b), 1000, &rb) != 0)
        return fail(ps, line, k, "'%s': both parts must be integers in 0..1000", v);
    if (ra + rb == 0)
        return fail(ps, line, k, "'%s': at least one side must own blocks", v);
    ps->cfg->ratio_a = (unsigned)ra;
    ps->cfg->ratio_b = (unsigned)rb;
    return 0;
}

static int set_string(parse_state *ps, unsigned line, const config_key *k, const char *v)
{
    if (k->type == T_ID && !ini_is_id(v))
        return fail(ps, line, k, "'%s' must be printable text without spaces", v);
    if (k->type == T_FILE && check_file(ps, line, k, v) != 0)
        return -1;
    if (k->type == T_URL && check_url(ps, line, k, v) != 0)
        return -1;
    char **slot = (char **)((char *)ps->cfg + k->offset);
    free(*slot);
    *slot = strdup(v);
    return *slot ? 0 : fail(ps, line, k, "out of memory");
}

static int set_value(parse_state *ps, unsigned line, const config_key *k, const char *v)
{
    int64_t x;
    if (!*v)
        return fail(ps, line, k, "empty value");
    switch (k->type) {
    case T_ID: case T_FILE: case T_URL:
        return set_string(ps, line, k, v);
    case T_INT:
        if (parse_uint(v, k->max, &x) != 0 || x < k->min)
            return fail(ps, line, k, "'%s' is not an integer in %lld..%lld", v,
                        (long long)k->min, (long long)k->max);
        *(int64_t *)((char *)ps->cfg + k->offset) = x;
        return 0;
    case T_RATIO:
        return set_ratio(ps, line, k, v);
    case T_LOGLEVEL:
        if (log_level_parse(v, &ps->cfg->log_level) != 0)
            return fail(ps, line, k, "'%s' is not one of: error, warn, info, debug", v);
        return 0;
    }
    return fail(ps, line, k, "internal: unknown type");
}

static const config_key *find_key(const char *section, const char *name, size_t *idx)
{
    for (size_t i = 0; i < N_KEYS; i++)
        if (strcmp(keys[i].section, section) == 0 && strcmp(keys[i].name, name) == 0) {
            *idx = i;
            return &keys[i];
        }
    return NULL;
}

static bool known_section(const char *s)
{
    for (size_t i = 0; i < N_KEYS; i++)
        if (strcmp(keys[i].section, s) == 0)
            return true;
    return false;
}

static int on_section(void *ud, unsigned line, const char *name, const char *arg)
{
    if (*arg || !known_section(name))
        return fail(ud, line, NULL, "unknown section [%s%s%s] (known: [link], [kme_a], [kme_b])",
                    name, *arg ? " " : "", arg);
    return 0;
}

static int on_pair(void *ud, unsigned line, const char *section, const char *name, char *value)
{
    parse_state *ps = ud;
    size_t idx;
    const config_key *k = find_key(section, name, &idx);
    if (!k)
        return fail(ps, line, NULL, "unknown key '%s' in [%s]", name, section);
    if (ps->lines[idx])
        return fail(ps, line, k, "given twice (first on line %u)", ps->lines[idx]);
    ps->lines[idx] = line;
    return set_value(ps, line, k, value);
}

static int on_error(void *ud, unsigned line, const char *why)
{
    return fail(ud, line, NULL, "%s", why);
}

static const ini_handler link_ini = { on_section, on_pair, on_error };

static int apply_defaults(parse_state *ps)
{
    for (size_t i = 0; i < N_KEYS; i++) {
        if (ps->lines[i])
            continue;
        if (keys[i].required)
            return fail(ps, 0, &keys[i], "missing (required)");
        if (set_value(ps, 0, &keys[i], keys[i].dflt) != 0)
            return -1;
    }
    return 0;
}

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

static int check_relations(parse_state *ps)
{
    link_config *c = ps->cfg;
    size_t id_idx = 0, b_idx = 0;
    const config_key *id_key = find_key("link", "id", &id_idx);
    const config_key *b_key = find_key("kme_b", "id", &b_idx);
    char cn[256], why[512];
    if (cert_cn(c->cert, cn, sizeof cn, why, sizeof why) != 0)
        return fail(ps, ps->lines[id_idx], id_key, "%s", why);
    if (strcmp(cn, c->id) != 0)
        return fail(ps, ps->lines[id_idx], id_key,
                    "'%s' differs from the subject CN '%s' of the certificate '%s' (the KMEs know the link by it)",
                    c->id, cn, c->cert);
    if (strcmp(c->kme[0].id, c->kme[1].id) == 0)
        return fail(ps, ps->lines[b_idx], b_key, "'%s' is also the ID of [kme_a]: the two ends must differ",
                    c->kme[1].id);
    return 0;
}

int link_config_load(const char *path, link_config *cfg, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
    parse_state ps = { .cfg = cfg, .file = path, .err = err, .errlen = errlen };
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    int rc = (cfg->path = strdup(path)) ? 0 : fail(&ps, 0, NULL, "out of memory");
    if (rc == 0)
        rc = ini_read(f, &link_ini, &ps);
    fclose(f);
    if (rc == 0)
        rc = apply_defaults(&ps);
    if (rc == 0)
        rc = check_relations(&ps);
    if (rc != 0)
        link_config_free(cfg);
    return rc;
}

void link_config_free(link_config *cfg)
{
    free(cfg->path);
    free(cfg->id);
    free(cfg->cert);
    free(cfg->key);
    free(cfg->ca);
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
