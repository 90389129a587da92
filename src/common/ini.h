/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ini.h - the lexical rules shared by every configuration file of the
 * project (qkd-kme, qkd-link, qumail): INI lines, comments, IDs, numbers, files,
 * and the one shape of error message, "FILE:LINE: [section] key: reason";
 * and the key-table engine they all read through (ini_table, below).  Each
 * program keeps only its table of keys, its own value types and the
 * relations between its keys.
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

/* The same with the reason made from fmt; returns -1. */
#if defined(__GNUC__)
__attribute__((format(printf, 7, 8)))
#endif
int ini_format_errorf(char *err, size_t errlen, const char *file, unsigned line,
                      const char *section, const char *key, const char *fmt, ...);

/* ---------------------------------------------------------------------
 * The key table: one engine for the keys of every program.  A program
 * lists its keys (section, name, type, range, default) and keeps only what
 * is its own: custom value types, sections with an argument, and the
 * relations between keys.  The engine finds a key, refuses an unknown or
 * repeated one, sets typed values with the shared messages, and applies
 * defaults and required checks.
 * --------------------------------------------------------------------- */

#define INI_ERR (-1)   /* a configuration error: the message is written */
#define INI_NOMEM (-2) /* out of memory: "out of memory" is written */

typedef enum ini_type {
    INI_STRING,   /* non-empty text, copied into a char * */
    INI_ID,       /* printable text without spaces (max > 0: at most max bytes) */
    INI_FILE,     /* a readable regular file: its path, copied */
    INI_INT,      /* a plain decimal in [min, max] into an int64_t */
    INI_UINT,     /* a plain decimal in [min, max] into an unsigned */
    INI_ENUM,     /* one of choices (NULL-terminated): its index into an int */
    INI_LOGLEVEL, /* error | warn | info | debug into an enum log_level */
    INI_CUSTOM,   /* the key's own setter parses and stores */
} ini_type;

struct ini_table;

typedef struct ini_key {
    const char *section, *name;
    ini_type type;
    bool required;            /* in a section that is in force */
    unsigned char base;       /* which of the table's bases offset is into */
    size_t offset;
    int64_t min, max;         /* INI_INT, INI_UINT; INI_ID: max length */
    const char *dflt;         /* set when the key is absent; NULL: none */
    const char *const *choices; /* INI_ENUM */
    /* INI_CUSTOM: 0, or ini_fail()'s (or INI_NOMEM) */
    int (*set)(struct ini_table *t, unsigned line, const struct ini_key *k, const char *value);
} ini_key;

typedef struct ini_table {
    const ini_key *keys;
    size_t n_keys;
    unsigned *lines;          /* n_keys entries, zeroed: line each key was given on */
    void *base[2];            /* where the keys' offsets point */
    const char *file;         /* for messages */
    char *err;
    size_t errlen;
    void *ctx;                /* the program's own parse state */
} ini_table;

/* Write "FILE:LINE: [section] key: reason" (k may be NULL) into t->err;
 * returns INI_ERR. */
#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
int ini_fail(ini_table *t, unsigned line, const ini_key *k, const char *fmt, ...);

/* The key section.name (and its index in *idx), or NULL. */
const ini_key *ini_find_key(const ini_table *t, const char *section, const char *name,
                            size_t *idx);

/* Does the table have a key in section? */
bool ini_known_section(const ini_table *t, const char *section);

/* The line section.name was given on (0: not given, or no such key). */
unsigned ini_line_of(const ini_table *t, const char *section, const char *name);

/* key = value read on line: unknown and repeated keys refused, else set. */
int ini_take_pair(ini_table *t, unsigned line, const char *section, const char *name,
                  const char *value);

/* ini_handler members for a reader whose user data is an ini_table (or a
 * struct that starts with one): key = value through ini_take_pair, and a
 * bad line through ini_fail. */
int ini_on_pair(void *table, unsigned line, const char *section, const char *name, char *value);
int ini_on_error(void *table, unsigned line, const char *why);

/* Set value (line 0: a default) by k's type. */
int ini_set_value(ini_table *t, unsigned line, const ini_key *k, const char *value);

/* Copy v into the char * of k, replacing what it held. */
int ini_store_string(ini_table *t, unsigned line, const ini_key *k, const char *v);

/* For every key not given: "missing (required)" when it is required and
 * its section is in force (in_force(t, k); NULL: every section is), else
 * its default if it has one (an optional section's defaults apply even
 * when the section is left out: the program may read them).  Keys whose
 * base is NULL now (those of a repeated section, such as [peer ID], read
 * into a struct of its own) are left to the program, section by section. */
int ini_apply_defaults(ini_table *t, bool (*in_force)(ini_table *t, const ini_key *k));

#endif
