/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_ini.c - libFuzzer target for the INI reader every configuration file
 * goes through (src/common/ini.c: qkd-kme, qkd-link and qumail files).
 *
 * The input is a whole file, read with ini_read() from memory.  Beyond "no
 * crash, no leak" the target checks the contract: lines are numbered 1, 2,
 * ... in order; keys and values hold no line break, no surrounding white
 * space and no comment, section names no blank; a key names no '='; a pair is reported under the
 * section last accepted; each malformed line gets a one-line reason; the
 * value checks (ini_is_id, ini_parse_uint) agree with their definitions.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/ini.h"
#include "common/log.h"

/* What the fuzz table's keys set. */
typedef struct fuzz_cfg {
    char *name, *id;
    int64_t count;
    unsigned port;
    int mode;
    enum log_level level;
} fuzz_cfg;

static const char *const modes[] = { "off", "on", "auto", NULL };
#define KEY(sec, nm, ty, field, ...) \
    { .section = sec, .name = nm, .type = ty, .offset = offsetof(fuzz_cfg, field), __VA_ARGS__ }
static const ini_key keys[] = {
    KEY("kme", "name", INI_STRING, name, .required = true),
    KEY("kme", "id", INI_ID, id, .max = 8),
    KEY("kme", "count", INI_INT, count, .min = 1, .max = 1000000, .dflt = "10"),
    KEY("link", "port", INI_UINT, port, .min = 1, .max = 65535),
    KEY("link", "mode", INI_ENUM, mode, .choices = modes, .dflt = "auto"),
    KEY("log", "level", INI_LOGLEVEL, level, .dflt = "info"),
};
#define N_KEYS (sizeof keys / sizeof *keys)

typedef struct reading {
    unsigned last_line;
    char section[64];
    unsigned pairs;
    ini_table table;
    bool refused; /* the engine refused a pair: a program stops there */
} reading;

static void check_refusal(const ini_table *t)
{
    if (strncmp(t->err, "fuzz.conf", 9) != 0 || strchr(t->err, '\n'))
        abort();
}

static void check_table(const fuzz_cfg *c, bool defaults_applied)
{
    if ((c->id && (!ini_is_id(c->id) || strlen(c->id) > 8)) || (c->name && !*c->name))
        abort();
    if ((c->count != 0 || defaults_applied) && (c->count < 1 || c->count > 1000000))
        abort();
    if (c->port > 65535 || c->mode < 0 || c->mode > 2)
        abort();
}

static void check_line(reading *r, unsigned line)
{
    if (line <= r->last_line)
        abort();
    r->last_line = line;
}

static void check_text(const char *s)
{
    size_t n = strlen(s);
    if (strchr(s, '\n') || (n && (isspace((unsigned char)s[0]) || isspace((unsigned char)s[n - 1]))))
        abort();
    for (const char *p = strchr(s, '#'); p; p = strchr(p + 1, '#'))
        if (p > s && isspace((unsigned char)p[-1])) /* a comment left in */
            abort();
}

static void check_value(const char *v)
{
    bool id = *v != '\0';
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        id = id && *p > 0x20 && *p != 0x7f;
    if (ini_is_id(v) != id)
        abort();
    int64_t x = -1;
    if (ini_parse_uint(v, &x) == 0) {
        if (x < 0 || strspn(v, "0123456789") != strlen(v) || strtoll(v, NULL, 10) != x)
            abort();
    }
}

static int on_section(void *ud, unsigned line, const char *name, const char *arg)
{
    reading *r = ud;
    check_line(r, line);
    check_text(arg);
    /* the name ends at the first blank or tab (other white space is part
     * of it, and no table knows such a name) */
    if (strpbrk(name, " \t\n"))
        abort();
    /* accept the section, as a program's table would, if its name fits */
    snprintf(r->section, sizeof r->section, "%s", name);
    return 0;
}

static int on_pair(void *ud, unsigned line, const char *section, const char *key, char *value)
{
    reading *r = ud;
    check_line(r, line);
    check_text(key);
    check_text(value);
    if (strchr(key, '=') || strcmp(section, r->section) != 0 || !*section)
        abort();
    check_value(value);
    unsigned before = ini_line_of(&r->table, section, key);
    if (r->refused) {
        /* the raw reader goes on; the engine saw its first error */
    } else if (ini_take_pair(&r->table, line, section, key, value) != 0) {
        check_refusal(&r->table);
        r->refused = true;
    } else if (before != 0) {
        abort(); /* a key given twice must be refused */
    }
    check_table(r->table.base[0], false);
    char err[256];
    ini_format_error(err, sizeof err, "fuzz.conf", line, section, key, "reason");
    if (strchr(err, '\n'))
        abort();
    r->pairs++;
    return 0;
}

static int on_error(void *ud, unsigned line, const char *why)
{
    reading *r = ud;
    if (line != 0)
        check_line(r, line);
    if (!*why)
        abort();
    return 0; /* keep reading: every line must be handled */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    FILE *f = fmemopen((void *)data, size, "r");
    if (!f)
        return 0;
    static const ini_handler h = { on_section, on_pair, on_error };
    fuzz_cfg cfg = { 0 };
    unsigned lines[N_KEYS] = { 0 };
    char err[512] = "";
    reading r = { .table = { .keys = keys, .n_keys = N_KEYS, .lines = lines, .base = { &cfg },
                             .file = "fuzz.conf", .err = err, .errlen = sizeof err } };
    if (ini_read(f, &h, &r) != 0)
        abort();
    fclose(f);
    if (!r.refused && ini_apply_defaults(&r.table, NULL) == 0)
        check_table(&cfg, true);
    else if (!r.refused)
        check_refusal(&r.table);
    free(cfg.name);
    free(cfg.id);
    return 0;
}
