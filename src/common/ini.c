/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ini.c - lexical rules of the project's configuration files and the
 * key-table engine that every program's configuration reads through (see
 * ini.h).
 */
#include "common/ini.h"

#include "common/log.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *ini_trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1]))
        *--end = '\0';
    return s;
}

void ini_strip_comment(char *s)
{
    for (char *p = s; *p; p++)
        if (*p == '#' && (p == s || isspace((unsigned char)p[-1]))) {
            *p = '\0';
            return;
        }
}

/* "[name]" or "[name arg]", the brackets already found. */
static ini_kind split_section(char *s, ini_line *out)
{
    char *close = strchr(s, ']');
    if (!close || close[1] != '\0') {
        snprintf(out->why, sizeof out->why, "malformed section header '%.100s'", s);
        return out->kind = INI_BAD;
    }
    *close = '\0';
    out->name = ini_trim(s + 1);
    out->arg = out->name + strcspn(out->name, " \t");
    if (*out->arg) {
        *out->arg++ = '\0';
        out->arg = ini_trim(out->arg);
    }
    return out->kind = INI_SECTION;
}

ini_kind ini_split_line(char *text, ini_line *out)
{
    ini_strip_comment(text);
    char *s = ini_trim(text);
    out->name = out->arg = s;
    out->why[0] = '\0';
    if (!*s)
        return out->kind = INI_BLANK;
    if (*s == '[')
        return split_section(s, out);
    char *eq = strchr(s, '=');
    if (!eq) {
        snprintf(out->why, sizeof out->why, "expected 'key = value', got '%.100s'", s);
        return out->kind = INI_BAD;
    }
    *eq = '\0';
    out->name = ini_trim(s);
    out->arg = ini_trim(eq + 1);
    return out->kind = INI_PAIR;
}

static int read_line(char *text, unsigned line, char *section, size_t seclen,
                     const ini_handler *h, void *ud)
{
    ini_line l;
    int rc;
    switch (ini_split_line(text, &l)) {
    case INI_BLANK:
        return 0;
    case INI_BAD:
        return h->error(ud, line, l.why);
    case INI_SECTION:
        if ((rc = h->section(ud, line, l.name, l.arg)) == 0)
            snprintf(section, seclen, "%s", l.name);
        return rc;
    case INI_PAIR:
        break;
    }
    if (!*section) {
        snprintf(l.why, sizeof l.why, "key '%.100s' outside of any section", l.name);
        return h->error(ud, line, l.why);
    }
    return h->pair(ud, line, section, l.name, l.arg);
}

int ini_read(FILE *f, const ini_handler *h, void *ud)
{
    char section[64] = "", *buf = NULL;
    size_t cap = 0;
    unsigned line = 0;
    int rc = 0;
    ssize_t got;
    errno = 0;
    while (rc == 0 && (got = getline(&buf, &cap, f)) != -1) {
        /* a NUL would silently cut the value short: refuse the line */
        if (memchr(buf, '\0', (size_t)got) != NULL)
            rc = h->error(ud, ++line, "contains a NUL byte");
        else
            rc = read_line(buf, ++line, section, sizeof section, h, ud);
    }
    free(buf);
    if (rc == 0 && ferror(f)) { /* e.g. EISDIR: fopen() opens a directory */
        char why[128];
        snprintf(why, sizeof why, "cannot read: %s", strerror(errno ? errno : EIO));
        rc = h->error(ud, 0, why);
    }
    return rc;
}

bool ini_is_id(const char *s)
{
    if (!*s)
        return false;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p <= 0x20 || *p == 0x7f)
            return false;
    return true;
}

int ini_parse_uint(const char *v, int64_t *out)
{
    if (!*v)
        return -1;
    for (const char *p = v; *p; p++)
        if (!isdigit((unsigned char)*p))
            return -1;
    errno = 0;
    char *end;
    long long x = strtoll(v, &end, 10);
    if (errno || *end)
        return -1;
    *out = x;
    return 0;
}

int ini_check_file(const char *path, char *why, size_t whylen)
{
    /* open, not access(): it must really open for reading (root "reads"
     * anything with access()), and be a file, not a directory */
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, whylen, "cannot read '%s': %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    int regular = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
    close(fd);
    if (!regular) {
        snprintf(why, whylen, "'%s' is not a regular file", path);
        return -1;
    }
    return 0;
}

void ini_format_error(char *err, size_t errlen, const char *file, unsigned line,
                      const char *section, const char *key, const char *reason)
{
    char where[64] = "";
    if (line)
        snprintf(where, sizeof where, ":%u", line);
    if (section && key)
        snprintf(err, errlen, "%s%s: [%s] %s: %s", file, where, section, key, reason);
    else
        snprintf(err, errlen, "%s%s: %s", file, where, reason);
}

int ini_format_errorf(char *err, size_t errlen, const char *file, unsigned line,
                      const char *section, const char *key, const char *fmt, ...)
{
    char reason[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    ini_format_error(err, errlen, file, line, section, key, reason);
    return -1;
}

/* ------------------------------------------------------------ key table */

int ini_on_pair(void *table, unsigned line, const char *section, const char *name, char *value)
{
    return ini_take_pair(table, line, section, name, value);
}

int ini_on_error(void *table, unsigned line, const char *why)
{
    return ini_fail(table, line, NULL, "%s", why);
}

int ini_fail(ini_table *t, unsigned line, const ini_key *k, const char *fmt, ...)
{
    char reason[1024]; /* may quote two paths */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    ini_format_error(t->err, t->errlen, t->file, line, k ? k->section : NULL,
                     k ? k->name : NULL, reason);
    return INI_ERR;
}

static int fail_nomem(ini_table *t, unsigned line, const ini_key *k)
{
    ini_fail(t, line, k, "out of memory");
    return INI_NOMEM;
}

const ini_key *ini_find_key(const ini_table *t, const char *section, const char *name,
                            size_t *idx)
{
    for (size_t i = 0; i < t->n_keys; i++)
        if (strcmp(t->keys[i].section, section) == 0 && strcmp(t->keys[i].name, name) == 0) {
            *idx = i;
            return &t->keys[i];
        }
    return NULL;
}

bool ini_known_section(const ini_table *t, const char *section)
{
    for (size_t i = 0; i < t->n_keys; i++)
        if (strcmp(t->keys[i].section, section) == 0)
            return true;
    return false;
}

unsigned ini_line_of(const ini_table *t, const char *section, const char *name)
{
    size_t idx;
    return ini_find_key(t, section, name, &idx) ? t->lines[idx] : 0;
}

static void *slot(ini_table *t, const ini_key *k)
{
    return (char *)t->base[k->base] + k->offset;
}

int ini_store_string(ini_table *t, unsigned line, const ini_key *k, const char *v)
{
    char **s = slot(t, k);
    free(*s);
    *s = strdup(v);
    return *s ? 0 : fail_nomem(t, line, k);
}

static int set_number(ini_table *t, unsigned line, const ini_key *k, const char *v)
{
    int64_t x;
    if (ini_parse_uint(v, &x) != 0 || x < k->min || x > k->max)
        return ini_fail(t, line, k, "'%s' is not an integer in %lld..%lld", v,
                        (long long)k->min, (long long)k->max);
    if (k->type == INI_UINT)
        *(unsigned *)slot(t, k) = (unsigned)x;
    else
        *(int64_t *)slot(t, k) = x;
    return 0;
}

/* "'v' is not one of: a, b, c" */
static int set_choice(ini_table *t, unsigned line, const ini_key *k, const char *v)
{
    char list[256] = "";
    for (int i = 0; k->choices[i]; i++) {
        if (strcmp(v, k->choices[i]) == 0) {
            *(int *)slot(t, k) = i;
            return 0;
        }
        size_t used = strlen(list);
        snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", k->choices[i]);
    }
    return ini_fail(t, line, k, "'%s' is not one of: %s", v, list);
}

int ini_set_value(ini_table *t, unsigned line, const ini_key *k, const char *v)
{
    char why[600];
    if (!*v)
        return ini_fail(t, line, k, "empty value");
    switch (k->type) {
    case INI_STRING:
        return ini_store_string(t, line, k, v);
    case INI_ID:
        if (!ini_is_id(v) || (k->max > 0 && strlen(v) > (size_t)k->max))
            return ini_fail(t, line, k, "'%s' must be printable text without spaces", v);
        return ini_store_string(t, line, k, v);
    case INI_FILE:
        if (ini_check_file(v, why, sizeof why) != 0)
            return ini_fail(t, line, k, "%s", why);
        return ini_store_string(t, line, k, v);
    case INI_INT: case INI_UINT:
        return set_number(t, line, k, v);
    case INI_ENUM:
        return set_choice(t, line, k, v);
    case INI_LOGLEVEL:
        if (log_level_parse(v, (enum log_level *)slot(t, k)) != 0)
            return ini_fail(t, line, k, "'%s' is not one of: error, warn, info, debug", v);
        return 0;
    case INI_CUSTOM:
        return k->set(t, line, k, v);
    }
    return ini_fail(t, line, k, "internal: unknown type");
}

int ini_take_pair(ini_table *t, unsigned line, const char *section, const char *name,
                  const char *value)
{
    size_t idx;
    const ini_key *k = ini_find_key(t, section, name, &idx);
    if (!k)
        return ini_fail(t, line, NULL, "unknown key '%s' in [%s]", name, section);
    if (t->lines[idx])
        return ini_fail(t, line, k, "given twice (first on line %u)", t->lines[idx]);
    t->lines[idx] = line;
    return ini_set_value(t, line, k, value);
}

int ini_apply_defaults(ini_table *t, bool (*in_force)(ini_table *t, const ini_key *k))
{
    for (size_t i = 0; i < t->n_keys; i++) {
        const ini_key *k = &t->keys[i];
        if (t->lines[i] || !t->base[k->base])
            continue; /* given, or a key of a repeated section (set by the program) */
        if (k->required && (!in_force || in_force(t, k)))
            return ini_fail(t, 0, k, "missing (required)");
        int rc = !k->required && k->dflt ? ini_set_value(t, 0, k, k->dflt) : 0;
        if (rc != 0)
            return rc;
    }
    return 0;
}
