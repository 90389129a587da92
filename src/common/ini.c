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
