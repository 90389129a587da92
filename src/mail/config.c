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

typedef enum {
    T_ADDRESS,   /* e-mail address (qm_address_valid) */
    T_ID,        /* SAE or KME ID: printable, no spaces */
    T_HTTPS,     /* https:// URL */
    T_SMTP_URL,  /* smtp:// or smtps:// */
    T_IMAP_URL,  /* imap:// or imaps:// */
    T_FILE,      /* readable regular file */
    T_DIR,       /* a directory, or a path whose parent directory exists */
    T_TEXT,      /* any non-empty text */
    T_PASSWORD,  /* password_file: read now, private */
    T_SEND,      /* maildir | smtp */
    T_INBOX,     /* maildir | imap */
} key_type;

typedef struct config_key {
    const char *section;
    const char *name;
    key_type type;
    bool required;   /* always (the section is mandatory) */
    size_t offset;   /* of the char * in qm_config (unused for T_SEND, T_INBOX) */
} config_key;

#define OFF(m) offsetof(qm_config, m)

static const config_key config_keys[] = {
    { "user", "address", T_ADDRESS, true, OFF(address) },
    { "user", "sae_id", T_ID, true, OFF(sae_id) },
    { "kme", "url", T_HTTPS, true, OFF(kme_url) },
    { "kme", "kme_id", T_ID, false, OFF(kme_id) },
    { "kme", "cert", T_FILE, true, OFF(kme_cert) },
    { "kme", "key", T_FILE, true, OFF(kme_key) },
    { "kme", "ca", T_FILE, true, OFF(kme_ca) },
    { "store", "dir", T_DIR, true, OFF(store_dir) },
    { "mail", "send", T_SEND, false, 0 },
    { "mail", "inbox", T_INBOX, false, 0 },
    { "mail", "maildir_root", T_DIR, false, OFF(maildir_root) },
    { "smtp", "url", T_SMTP_URL, false, OFF(smtp.url) },
    { "smtp", "username", T_TEXT, false, OFF(smtp.username) },
    { "smtp", "password_file", T_PASSWORD, false, OFF(smtp.password) },
    { "smtp", "ca", T_FILE, false, OFF(smtp.ca) },
    { "imap", "url", T_IMAP_URL, false, OFF(imap.url) },
    { "imap", "username", T_TEXT, false, OFF(imap.username) },
    { "imap", "password_file", T_PASSWORD, false, OFF(imap.password) },
    { "imap", "ca", T_FILE, false, OFF(imap.ca) },
    { "imap", "mailbox", T_TEXT, false, OFF(imap.mailbox) },
};
#define N_KEYS (sizeof config_keys / sizeof config_keys[0])

typedef struct parse_state {
    qm_config *cfg;
    const char *file;
    unsigned lines[N_KEYS];  /* line of each key given (0: not given) */
    char *err;
    size_t errlen;
} parse_state;

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
    ini_format_error(ps->err, ps->errlen, ps->file, line, section, key, reason);
    return QM_E_CONFIG;
}

#define FAIL_K(ps, line, k, ...) fail((ps), (line), (k)->section, (k)->name, __VA_ARGS__)

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

/* T_DIR: an existing directory, or a path whose parent exists (the
 * directory is created, 0700, when first needed). */
static qm_err check_dir(parse_state *ps, unsigned line, const config_key *k, const char *v)
{
    struct stat st;
    if (stat(v, &st) == 0)
        return S_ISDIR(st.st_mode) ? QM_OK
                                   : FAIL_K(ps, line, k, "'%s' is not a directory", v);
    if (errno != ENOENT)
        return FAIL_K(ps, line, k, "'%s': %s", v, strerror(errno));
    char *parent = strdup(v);
    if (!parent)
        return QM_E_NOMEM;
    char *slash = strrchr(parent, '/');
    while (slash && slash > parent && slash[1] == '\0') { /* "dir/" */
        *slash = '\0';
        slash = strrchr(parent, '/');
    }
    const char *d = !slash ? "." : slash == parent ? "/" : (*slash = '\0', parent);
    qm_err rc = QM_OK;
    if (stat(d, &st) != 0 || !S_ISDIR(st.st_mode))
        rc = FAIL_K(ps, line, k, "'%s' does not exist and neither does its parent directory '%s'",
                    v, d);
    free(parent);
    return rc;
}

/* T_PASSWORD: the first line of a file only its owner may read. */
static qm_err read_password(parse_state *ps, unsigned line, const config_key *k,
                            const char *v, char **out)
{
    char why[600];
    if (ini_check_file(v, why, sizeof why) != 0)
        return FAIL_K(ps, line, k, "%s", why);
    struct stat st;
    if (stat(v, &st) != 0)
        return FAIL_K(ps, line, k, "'%s': %s", v, strerror(errno));
    if (st.st_mode & 077)
        return FAIL_K(ps, line, k, "'%s' is accessible by group or others (mode %04o): "
                      "make it private (chmod 600)", v, (unsigned)(st.st_mode & 07777));
    FILE *f = fopen(v, "r");
    if (!f)
        return FAIL_K(ps, line, k, "cannot read '%s': %s", v, strerror(errno));
    char *buf = NULL;
    size_t cap = 0;
    ssize_t n = getline(&buf, &cap, f);
    fclose(f);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    qm_err rc = QM_OK;
    if (n <= 0)
        rc = FAIL_K(ps, line, k, "'%s' is empty: its first line is the password", v);
    else if (!(*out = strdup(buf)))
        rc = QM_E_NOMEM;
    if (buf)
        secret_wipe(buf, cap);
    free(buf);
    return rc;
}

/* Check v against the type of k (string types; enums are set_value's). */
static qm_err check_value(parse_state *ps, unsigned line, const config_key *k, const char *v)
{
    char why[600];
    switch (k->type) {
    case T_ADDRESS:
        return qm_address_valid(v) ? QM_OK
               : FAIL_K(ps, line, k, "'%s' is not an e-mail address (local@domain)", v);
    case T_ID:
        return ini_is_id(v) && strlen(v) <= 255 ? QM_OK
               : FAIL_K(ps, line, k, "'%s' must be printable text without spaces", v);
    case T_HTTPS:
        return has_prefix(v, "https://") ? QM_OK
               : FAIL_K(ps, line, k, "'%s' is not an https:// URL", v);
    case T_SMTP_URL:
        return has_prefix(v, "smtp://") || has_prefix(v, "smtps://") ? QM_OK
               : FAIL_K(ps, line, k, "'%s' is not an smtp:// or smtps:// URL", v);
    case T_IMAP_URL:
        return has_prefix(v, "imap://") || has_prefix(v, "imaps://") ? QM_OK
               : FAIL_K(ps, line, k, "'%s' is not an imap:// or imaps:// URL", v);
    case T_FILE:
        return ini_check_file(v, why, sizeof why) == 0 ? QM_OK : FAIL_K(ps, line, k, "%s", why);
    case T_DIR:
        return check_dir(ps, line, k, v);
    case T_TEXT: case T_PASSWORD: case T_SEND: case T_INBOX:
        return QM_OK;
    }
    return FAIL_K(ps, line, k, "internal: unknown type");
}

static qm_err set_value(parse_state *ps, unsigned line, const config_key *k, const char *v)
{
    qm_config *c = ps->cfg;
    if (!*v)
        return FAIL_K(ps, line, k, "empty value");
    if (k->type == T_SEND) {
        if (strcmp(v, "maildir") == 0) c->send = QM_SEND_MAILDIR;
        else if (strcmp(v, "smtp") == 0) c->send = QM_SEND_SMTP;
        else return FAIL_K(ps, line, k, "'%s' is not one of: maildir, smtp", v);
        return QM_OK;
    }
    if (k->type == T_INBOX) {
        if (strcmp(v, "maildir") == 0) c->inbox = QM_INBOX_MAILDIR;
        else if (strcmp(v, "imap") == 0) c->inbox = QM_INBOX_IMAP;
        else return FAIL_K(ps, line, k, "'%s' is not one of: maildir, imap", v);
        return QM_OK;
    }
    char **slot = (char **)((char *)c + k->offset);
    if (k->type == T_PASSWORD)
        return read_password(ps, line, k, v, slot);
    qm_err rc = check_value(ps, line, k, v);
    if (rc != QM_OK)
        return rc;
    if (!(*slot = strdup(v)))
        return QM_E_NOMEM;
    if (k->type == T_ADDRESS)
        for (char *p = *slot; *p; p++)
            *p = (char)tolower((unsigned char)*p);
    return QM_OK;
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

static const config_key *find_key(const char *section, const char *name, size_t *idx)
{
    for (size_t i = 0; i < N_KEYS; i++)
        if (strcmp(config_keys[i].section, section) == 0 &&
            strcmp(config_keys[i].name, name) == 0) {
            *idx = i;
            return &config_keys[i];
        }
    return NULL;
}

static bool known_section(const char *s)
{
    if (strcmp(s, "addressbook") == 0)
        return true;
    for (size_t i = 0; i < N_KEYS; i++)
        if (strcmp(config_keys[i].section, s) == 0)
            return true;
    return false;
}

/* The handlers return qm_err values through ini_read()'s int. */
static int on_section(void *ud, unsigned line, const char *name, const char *arg)
{
    if (*arg || !known_section(name))
        return fail(ud, line, NULL, NULL, "unknown section [%s%s%s] (known: user, kme, store, "
                    "mail, smtp, imap, addressbook)", name, *arg ? " " : "", arg);
    return QM_OK;
}

static int on_pair(void *ud, unsigned line, const char *section, const char *name, char *value)
{
    parse_state *ps = ud;
    if (strcmp(section, "addressbook") == 0)
        return add_contact(ps, line, name, value);
    size_t idx;
    const config_key *k = find_key(section, name, &idx);
    if (!k)
        return fail(ps, line, NULL, NULL, "unknown key '%s' in [%s]", name, section);
    if (ps->lines[idx])
        return FAIL_K(ps, line, k, "given twice (first on line %u)", ps->lines[idx]);
    ps->lines[idx] = line;
    return set_value(ps, line, k, value);
}

static int on_error(void *ud, unsigned line, const char *why)
{
    return fail(ud, line, NULL, NULL, "%s", why);
}

static const ini_handler mail_ini = { on_section, on_pair, on_error };

/* The line key section.name was given on (0: not given). */
static unsigned line_of(const parse_state *ps, const char *section, const char *name)
{
    size_t idx;
    return find_key(section, name, &idx) ? ps->lines[idx] : 0;
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
    for (size_t i = 0; i < N_KEYS; i++)
        if (config_keys[i].required && (rc = need(ps, config_keys[i].section,
                                                  config_keys[i].name, NULL)) != QM_OK)
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
    parse_state ps = { .cfg = cfg, .file = path, .err = err, .errlen = errlen };
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
