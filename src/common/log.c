/* SPDX-License-Identifier: Apache-2.0 */
/*
 * log.c - one-line log records on stderr:
 *   2026-11-25T18:00:00.123Z LEVEL program: message
 *
 * Messages may quote client input, so control characters (and the backslash
 * that introduces the escapes) are escaped: a record is always one line and
 * cannot forge another.  Each record is written with one locked fwrite so
 * records of different threads never interleave.
 */
#include "common/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define LOG_MSG_MAX  2048                /* formatted message, before escaping */
#define LOG_LINE_MAX (LOG_MSG_MAX * 4 + 128)

static atomic_int current_level = LOG_INFO;
static char program_name[64] = "qumail-c";

static const char *const level_names[] = { "ERROR", "WARN", "INFO", "DEBUG" };

void log_init(const char *program, enum log_level level)
{
    if (program != NULL) {
        const char *slash = strrchr(program, '/');
        const char *base = slash != NULL ? slash + 1 : program;
        snprintf(program_name, sizeof program_name, "%s", base);
    }
    log_set_level(level);
}

void log_set_level(enum log_level level)
{
    if (level > LOG_DEBUG)
        level = LOG_DEBUG;
    atomic_store(&current_level, (int)level);
}

int log_level_parse(const char *s, enum log_level *out)
{
    static const struct { const char *name; enum log_level level; } names[] = {
        { "error", LOG_ERROR }, { "warn", LOG_WARN }, { "warning", LOG_WARN },
        { "info", LOG_INFO },   { "debug", LOG_DEBUG },
    };
    if (s == NULL)
        return -1;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcasecmp(s, names[i].name) == 0) {
            *out = names[i].level;
            return 0;
        }
    }
    return -1;
}

int log_enabled(enum log_level level)
{
    return (int)level <= atomic_load(&current_level);
}

/* "2026-11-25T18:00:00.123Z" into buf (at least 32 bytes). */
static void format_timestamp(char *buf, size_t cap)
{
    struct timespec ts;
    struct tm tm;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, cap - n, ".%03ldZ", ts.tv_nsec / 1000000L);
}

/* Append src to dst with control characters and '\' escaped; returns the
 * new length.  dst must hold 4 * strlen(src) more bytes. */
static size_t append_escaped(char *dst, size_t pos, const char *src)
{
    static const char hex[] = "0123456789abcdef";
    for (const unsigned char *p = (const unsigned char *)src; *p; p++) {
        unsigned char c = *p;
        if (c == '\n') {
            dst[pos++] = '\\'; dst[pos++] = 'n';
        } else if (c == '\r') {
            dst[pos++] = '\\'; dst[pos++] = 'r';
        } else if (c == '\t') {
            dst[pos++] = '\\'; dst[pos++] = 't';
        } else if (c == '\\') {
            dst[pos++] = '\\'; dst[pos++] = '\\';
        } else if (c < 0x20 || c == 0x7f) {
            dst[pos++] = '\\'; dst[pos++] = 'x';
            dst[pos++] = hex[c >> 4]; dst[pos++] = hex[c & 0x0f];
        } else {
            dst[pos++] = (char)c;
        }
    }
    return pos;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    char msg[LOG_MSG_MAX];
    char line[LOG_LINE_MAX];
    char stamp[40];
    va_list ap;

    if (!log_enabled(level))
        return;
    if ((unsigned)level > LOG_DEBUG)
        level = LOG_DEBUG;

    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        snprintf(msg, sizeof msg, "(unformattable log message)");
    else if ((size_t)n >= sizeof msg)
        memcpy(msg + sizeof msg - 4, "...", 4); /* mark the truncation */

    format_timestamp(stamp, sizeof stamp);
    int head = snprintf(line, sizeof line, "%s %s %s: ", stamp,
                        level_names[level], program_name);
    if (head < 0)
        return;
    size_t pos = append_escaped(line, (size_t)head, msg);
    line[pos++] = '\n';

    flockfile(stderr);
    fwrite(line, 1, pos, stderr);
    fflush(stderr);
    funlockfile(stderr);
}
