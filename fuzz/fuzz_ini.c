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
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/ini.h"

typedef struct reading {
    unsigned last_line;
    char section[64];
    unsigned pairs;
} reading;

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
    reading r = { 0 };
    if (ini_read(f, &h, &r) != 0)
        abort();
    fclose(f);
    return 0;
}
