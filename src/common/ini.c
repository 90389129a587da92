/*
 * ini.c - lexical rules of the project's configuration files (see ini.h).
 */
#include "common/ini.h"

#include <ctype.h>
#include <errno.h>
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
