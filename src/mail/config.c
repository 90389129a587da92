/* SPDX-License-Identifier: Apache-2.0 */
/*
 * config.c - reads and checks the qumail user configuration (config.h).
 *
 * A table (config_keys) names every key, its section, its type and where it
 * goes; [addressbook] is the one section whose keys are free (addresses).
 * After the file is read, the relations between keys are checked (a Maildir
 * root when a Maildir is used, [smtp] when send = smtp, ...).  The first
 * problem stops the load with its file, line and key: a typo must never be
 * replaced by a default.
 */
#include "mail/config.h"

#include "common/ini.h"
#include "common/secret.h"
#include "mail/addressbook.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

static int set_address(ini_table *t, unsigned line, const ini_key *k, const char *v);
static int set_url(ini_table *t, unsigned line, const ini_key *k, const char *v);
static int set_dir(ini_table *t, unsigned line, const ini_key *k, const char *v);
static int set_password(ini_table *t, unsigned line, const ini_key *k, const char *v);

static const char *const https_url[] = { "https://", NULL };
static const char *const smtp_url[] = { "smtp://", "smtps://", NULL };
static const char *const imap_url[] = { "imap://", "imaps://", NULL };
static const char *const send_modes[] = { "maildir", "smtp", NULL };   /* qm_send_mode */
static const char *const inbox_modes[] = { "maildir", "imap", NULL };  /* qm_inbox_mode */

#define OFF(m) offsetof(qm_config, m)
/* required: always (the section is mandatory); no defaults in this table
 * (imap mailbox: INBOX, set with the relations) */
#define KEY(sec, name, type, req, off, max) { sec, name, type, req, 0, off, 0, max, NULL, NULL, NULL }
#define CUSTOM(sec, name, req, off, fn, list) { sec, name, INI_CUSTOM, req, 0, off, 0, 0, NULL, list, fn }
#define ENUM(sec, name, off, names) { sec, name, INI_ENUM, false, 0, off, 0, 0, NULL, names, NULL }

static const ini_key config_keys[] = {
    CUSTOM("user", "address", true, OFF(address), set_address, NULL),
    KEY("user", "sae_id", INI_ID, true, OFF(sae_id), 255),
    CUSTOM("kme", "url", true, OFF(kme_url), set_url, https_url),
    KEY("kme", "kme_id", INI_ID, false, OFF(kme_id), 255),
    KEY("kme", "cert", INI_FILE, true, OFF(kme_cert), 0),
    KEY("kme", "key", INI_FILE, true, OFF(kme_key), 0),
    KEY("kme", "ca", INI_FILE, true, OFF(kme_ca), 0),
    CUSTOM("store", "dir", true, OFF(store_dir), set_dir, NULL),
    ENUM("mail", "send", OFF(send), send_modes),
    ENUM("mail", "inbox", OFF(inbox), inbox_modes),
    CUSTOM("mail", "maildir_root", false, OFF(maildir_root), set_dir, NULL),
    CUSTOM("smtp", "url", false, OFF(smtp.url), set_url, smtp_url),
    KEY("smtp", "username", INI_STRING, false, OFF(smtp.username), 0),
    CUSTOM("smtp", "password_file", false, OFF(smtp.password), set_password, NULL),
    KEY("smtp", "ca", INI_FILE, false, OFF(smtp.ca), 0),
    CUSTOM("imap", "url", false, OFF(imap.url), set_url, imap_url),
    KEY("imap", "username", INI_STRING, false, OFF(imap.username), 0),
    CUSTOM("imap", "password_file", false, OFF(imap.password), set_password, NULL),
    KEY("imap", "ca", INI_FILE, false, OFF(imap.ca), 0),
    KEY("imap", "mailbox", INI_STRING, false, OFF(imap.mailbox), 0),
};
#define N_KEYS (sizeof config_keys / sizeof config_keys[0])

typedef struct parse_state {
    ini_table t;     /* the engine's view: table, lines, message */
    qm_config *cfg;
} parse_state;

/* The engine's INI_ERR / INI_NOMEM as a qm_err; qm_err values pass. */
static qm_err as_qm_err(int rc)
{
    return rc == INI_ERR ? QM_E_CONFIG : rc == INI_NOMEM ? QM_E_NOMEM : (qm_err)rc;
}

#if defined(__GNUC__)
__attribute__((format(printf, 5, 6)))
#endif
static qm_err fail(parse_state *ps, unsigned line, const char *section, const char *key,
                   const char *fmt, ...)
{
    char reason[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    ini_format_error(ps->t.err, ps->t.errlen, ps->t.file, line, section, key, reason);
    return QM_E_CONFIG;
}

bool qm_address_valid(const char *a)
{
    size_t n = strlen(a);
    const char *at = strchr(a, '@');
    if (n == 0 || n > 254 || !at || at == a || at[1] == '\0' || strchr(at + 1, '@'))
        return false;
    if (a[0] == '.' || at[1] == '.')
        return false;
    for (const unsigned char *p = (const unsigned char *)a; *p; p++)
        if (*p <= 0x20 || *p >= 0x7f || strchr("\"<>()[]\\,;:/", *p))
            return false;
    return true;
}

static bool has_prefix(const char *s, const char *p)
{
    return strncasecmp(s, p, strlen(p)) == 0 && s[strlen(p)] != '\0';
}

/* An existing directory, or a path whose parent exists (the directory is
 * created, 0700, when first needed). */
static int set_dir(ini_table *t, unsigned line, const ini_key *k, const char *v)
{
    struct stat st;
    if (stat(v, &st) == 0)
        return S_ISDIR(st.st_mode) ? ini_store_string(t, line, k, v)
                                   : ini_fail(t, line, k, "'%s' is not a directory", v);
    if (errno != ENOENT)
        return ini_fail(t, line, k, "'%s': %s", v, strerror(errno));
    char *parent = strdup(v);
    if (!parent)
        return INI_NOMEM;
    char *slash = strrchr(parent, '/');
    while (slash && slash > parent && slash[1] == '\0') { /* "dir/" */
        *slash = '\0';
        slash = strrchr(parent, '/');
    }
    const char *d = !slash ? "." : slash == parent ? "/" : (*slash = '\0', parent);
    int rc = 0;
    if (stat(d, &st) != 0 || !S_ISDIR(st.st_mode))
        rc = ini_fail(t, line, k, "'%s' does not exist and neither does its parent directory '%s'",
                      v, d);
    free(parent);
    return rc != 0 ? rc : ini_store_string(t, line, k, v);
}

/* password_file: the first line of a file only its owner may read, kept
 * (the path is not). */
static int set_password(ini_table *t, unsigned line, const ini_key *k, const char *v)
{
    char why[600];
    if (ini_check_file(v, why, sizeof why) != 0)
        return ini_fail(t, line, k, "%s", why);
    struct stat st;
    if (stat(v, &st) != 0)
        return ini_fail(t, line, k, "'%s': %s", v, strerror(errno));
    if (st.st_mode & 077)
        return ini_fail(t, line, k, "'%s' is accessible by group or others (mode %04o): "
                        "make it private (chmod 600)", v, (unsigned)(st.st_mode & 07777));
    FILE *f = fopen(v, "r");
    if (!f)
        return ini_fail(t, line, k, "cannot read '%s': %s", v, strerror(errno));
    char *buf = NULL;
    size_t cap = 0;
    ssize_t n = getline(&buf, &cap, f);
    fclose(f);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    char **out = (char **)((char *)t->base[0] + k->offset);
    int rc = 0;
    if (n <= 0)
        rc = ini_fail(t, line, k, "'%s' is empty: its first line is the password", v);
    else if (!(*out = strdup(buf)))
        rc = INI_NOMEM;
    if (buf)
        secret_wipe(buf, cap);
    free(buf);
    return rc;
}

/* One of the key's URL schemes (k->choices): "is not an https:// URL",
 * "is not an smtp:// or smtps:// URL". */
static int set_url(ini_table *t, unsigned line, const ini_key *k, const char *v)
{
    char schemes[64] = "";
    for (int i = 0; k->choices[i]; i++) {
        if (has_prefix(v, k->choices[i]))
            return ini_store_string(t, line, k, v);
        size_t used = strlen(schemes);
        snprintf(schemes + used, sizeof schemes - used, "%s%s", i ? " or " : "", k->choices[i]);
    }
    return ini_fail(t, line, k, "'%s' is not an %s URL", v, schemes);
}

/* My address: checked, kept in lower case. */
static int set_address(ini_table *t, unsigned line, const ini_key *k, const char *v)
{
    if (!qm_address_valid(v))
        return ini_fail(t, line, k, "'%s' is not an e-mail address (local@domain)", v);
    int rc = ini_store_string(t, line, k, v);
    if (rc != 0)
        return rc;
    for (char *p = *(char **)((char *)t->base[0] + k->offset); *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return 0;
}

/* [addressbook] "address = SAE_ID [KME_ID]". */
static qm_err add_contact(parse_state *ps, unsigned line, const char *addr, char *v)
{
    static const char sec[] = "addressbook";
    qm_config *c = ps->cfg;
    if (!qm_address_valid(addr))
        return fail(ps, line, sec, addr, "not an e-mail address (local@domain)");
    const qm_contact *dup = qm_config_contact(c, addr);
    if (dup)
        return fail(ps, line, sec, addr, "given twice (first on line %u)", dup->line);
    char *save = NULL;
    char *sae = strtok_r(v, " \t", &save), *kme = strtok_r(NULL, " \t", &save);
    if (!sae)
        return fail(ps, line, sec, addr, "empty value: write 'SAE_ID' or 'SAE_ID KME_ID'");
    if (strtok_r(NULL, " \t", &save))
        return fail(ps, line, sec, addr, "too many words: write 'SAE_ID' or 'SAE_ID KME_ID'");
    if (!ini_is_id(sae) || strlen(sae) > 255)
        return fail(ps, line, sec, addr, "'%s' is not a valid SAE ID", sae);
    if (kme && (!ini_is_id(kme) || strlen(kme) > 255))
        return fail(ps, line, sec, addr, "'%s' is not a valid KME ID", kme);
    char lower[256];   /* qm_address_valid: at most 254 characters */
    size_t n = strlen(addr);
    for (size_t i = 0; i <= n; i++)
        lower[i] = (char)tolower((unsigned char)addr[i]);
    return qm_addressbook_add(c, lower, sae, kme, line);
}

static bool known_section(const parse_state *ps, const char *s)
{
    return strcmp(s, "addressbook") == 0 || ini_known_section(&ps->t, s);
}

/* The handlers return qm_err values (or the engine's) through ini_read(). */
static int on_section(void *ud, unsigned line, const char *name, const char *arg)
{
    if (*arg || !known_section(ud, name))
        return fail(ud, line, NULL, NULL, "unknown section [%s%s%s] (known: user, kme, store, "
                    "mail, smtp, imap, addressbook)", name, *arg ? " " : "", arg);
    return QM_OK;
}

static int on_pair(void *ud, unsigned line, const char *section, const char *name, char *value)
{
    parse_state *ps = ud;
    if (strcmp(section, "addressbook") == 0)
        return add_contact(ps, line, name, value);
    return as_qm_err(ini_take_pair(&ps->t, line, section, name, value));
}

static int on_error(void *ud, unsigned line, const char *why)
{
    return fail(ud, line, NULL, NULL, "%s", why);
}

static const ini_handler mail_ini = { on_section, on_pair, on_error };

/* The line key section.name was given on (0: not given). */
static unsigned line_of(const parse_state *ps, const char *section, const char *name)
{
    return ini_line_of(&ps->t, section, name);
}

static qm_err need(parse_state *ps, const char *section, const char *name, const char *why)
{
    if (line_of(ps, section, name))
        return QM_OK;
    return fail(ps, 0, section, name, "missing (required%s%s)", why ? " " : "", why ? why : "");
}

/* [smtp] or [imap] when its mode is chosen: url, and a username with a
 * password_file or neither. */
static qm_err check_server(parse_state *ps, const char *sec, bool used, const char *mode)
{
    bool user = line_of(ps, sec, "username") != 0, pass = line_of(ps, sec, "password_file") != 0;
    if (user != pass)
        return fail(ps, line_of(ps, sec, user ? "username" : "password_file"), sec,
                    user ? "username" : "password_file",
                    "needs %s as well", user ? "password_file" : "username");
    return used ? need(ps, sec, "url", mode) : QM_OK;
}

static qm_err check_relations(parse_state *ps)
{
    qm_config *c = ps->cfg;
    qm_err rc;
    if ((rc = as_qm_err(ini_apply_defaults(&ps->t, NULL))) != QM_OK)
        return rc;
    if (c->send == QM_SEND_MAILDIR && (rc = need(ps, "mail", "maildir_root",
                                                 "with send = maildir")) != QM_OK)
        return rc;
    if (c->inbox == QM_INBOX_MAILDIR && (rc = need(ps, "mail", "maildir_root",
                                                   "with inbox = maildir")) != QM_OK)
        return rc;
    if ((rc = check_server(ps, "smtp", c->send == QM_SEND_SMTP, "with send = smtp")) != QM_OK ||
        (rc = check_server(ps, "imap", c->inbox == QM_INBOX_IMAP, "with inbox = imap")) != QM_OK)
        return rc;
    if (!c->imap.mailbox && !(c->imap.mailbox = strdup("INBOX")))
        return QM_E_NOMEM;
    const qm_contact *me = qm_config_contact(c, c->address);
    if (me && strcmp(me->sae_id, c->sae_id) != 0)
        return fail(ps, me->line, "addressbook", me->address,
                    "SAE ID '%s' differs from [user] sae_id '%s'", me->sae_id, c->sae_id);
    return QM_OK;
}

static qm_err read_file(parse_state *ps, FILE *f)
{
    return (qm_err)ini_read(f, &mail_ini, ps);
}

qm_err qm_config_load(const char *path, qm_config *cfg, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
    unsigned lines[N_KEYS] = { 0 };
    parse_state ps = { .cfg = cfg };
    ps.t = (ini_table){ .keys = config_keys, .n_keys = N_KEYS, .lines = lines,
                        .base = { cfg }, .file = path, .err = err, .errlen = errlen,
                        .ctx = &ps };
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return QM_E_CONFIG;
    }
    qm_err rc = (cfg->path = strdup(path)) ? read_file(&ps, f) : QM_E_NOMEM;
    fclose(f);
    if (rc == QM_OK)
        rc = check_relations(&ps);
    if (rc == QM_E_NOMEM)
        snprintf(err, errlen, "%s: out of memory", path);
    if (rc != QM_OK)
        qm_config_free(cfg);
    return rc;
}

static void free_server(qm_server_config *s)
{
    free(s->url);
    free(s->username);
    if (s->password) {
        secret_wipe(s->password, strlen(s->password));
        free(s->password);
    }
    free(s->ca);
    free(s->mailbox);
}

void qm_config_free(qm_config *cfg)
{
    free(cfg->path);
    free(cfg->address);
    free(cfg->sae_id);
    free(cfg->kme_url);
    free(cfg->kme_id);
    free(cfg->kme_cert);
    free(cfg->kme_key);
    free(cfg->kme_ca);
    free(cfg->store_dir);
    free(cfg->maildir_root);
    free_server(&cfg->smtp);
    free_server(&cfg->imap);
    qm_addressbook_free(cfg);
    memset(cfg, 0, sizeof *cfg);
}

const qm_contact *qm_config_contact(const qm_config *cfg, const char *address)
{
    return qm_addressbook_by_address(cfg, address);
}

const qm_contact *qm_config_contact_by_sae(const qm_config *cfg, const char *sae_id)
{
    return qm_addressbook_by_sae(cfg, sae_id);
}

bool qm_config_key(size_t i, const char **section, const char **name)
{
    if (i >= N_KEYS)
        return false;
    *section = config_keys[i].section;
    *name = config_keys[i].name;
    return true;
}
