/*
 * ini.h - the lexical rules shared by every configuration file of the
 * project (qkd-kme, qkd-link, qumail): INI lines, comments, IDs, numbers, files,
 * and the one shape of error message, "FILE:LINE: [section] key: reason".
 * Each program keeps its own table of sections and keys; only the rules
 * that must not differ between them live here.
 */
#ifndef QC_INI_H
#define QC_INI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Strip surrounding white space in place; returns the start. */
char *ini_trim(char *s);

/* Cut a '#' comment that starts the line or follows white space (a path
 * may hold a '#' inside a word). */
void ini_strip_comment(char *s);

/* One line of a configuration file, split in place by ini_split_line(). */
typedef enum ini_kind {
    INI_BLANK,   /* empty or only a comment */
    INI_SECTION, /* "[name]" or "[name arg]": name and arg ("" if none) */
    INI_PAIR,    /* "key = value": name is the key, arg the value ("" if empty) */
    INI_BAD,     /* none of these: why says what is wrong */
} ini_kind;

typedef struct ini_line {
    ini_kind kind;
    char *name, *arg; /* point into the line; white space trimmed */
    char why[160];    /* INI_BAD: "malformed section header '...'" or
                       * "expected 'key = value', got '...'" */
} ini_line;

/* Cut the comment, trim, and split one line (modified in place). */
ini_kind ini_split_line(char *text, ini_line *out);

/* What a configuration file's reader hands its caller, line by line.  Each
 * returns 0 to go on; the first other value stops the reading and is
 * ini_read()'s result. */
typedef struct ini_handler {
    /* a section header; the section's name is the current one afterwards */
    int (*section)(void *ud, unsigned line, const char *name, const char *arg);
    /* key = value inside the current section */
    int (*pair)(void *ud, unsigned line, const char *section, const char *key, char *value);
    /* a malformed line, a line holding a NUL byte, a key outside of any
     * section, or (line 0) a read error: why is the message, without file
     * and line */
    int (*error)(void *ud, unsigned line, const char *why);
} ini_handler;

/* Read f to its end (or the first nonzero return) through h. */
int ini_read(FILE *f, const ini_handler *h, void *ud);

/* Non-empty, no control characters, no spaces (UTF-8 bytes allowed). */
bool ini_is_id(const char *s);

/* A plain decimal integer (digits only) that fits int64_t: 0, else -1. */
int ini_parse_uint(const char *v, int64_t *out);

/* The file opens for reading and is a regular file: 0; else -1 and the
 * reason (naming the path) in why. */
int ini_check_file(const char *path, char *why, size_t whylen);

/* "FILE:LINE: [section] key: reason", leaving out the parts that are 0 or
 * NULL. */
void ini_format_error(char *err, size_t errlen, const char *file, unsigned line,
                      const char *section, const char *key, const char *reason);

#endif
