/* SPDX-License-Identifier: Apache-2.0 */
/*
 * maildir.h - local mail transport: deliver into, list and read a Maildir
 * (tmp/, new/, cur/).  The default transport of qumail: maildir_root/<address>/
 * is each user's Maildir, so two users on one machine can mail each other
 * without a mail server.  Files are 0600 and directories 0700.
 */
#ifndef QM_MAILDIR_H
#define QM_MAILDIR_H

#include <stddef.h>
#include <stdint.h>

#include "mail/errors.h"

typedef struct qm_maildir_entry {
    char *id;      /* the unique part of the file name (before ':'), stable across new/ -> cur/ */
    char *path;    /* full path */
    int64_t mtime; /* seconds */
    int64_t size;  /* bytes, when listed */
} qm_maildir_entry;
/* Deliver: write to DIR/tmp, fsync, rename into DIR/new (creates DIR/{tmp,new,cur} 0700).
 * *id (may be NULL) receives the unique name. */
qm_err qm_maildir_deliver(const char *dir, const uint8_t *msg, size_t len, char **id);
/* Deliver one message to n Maildirs, all or none: it is written to every
 * DIR/tmp before it is linked into any DIR/new, and on failure nothing of it
 * stays in any tmp/ or new/.  ids (may be NULL) receives n names to free;
 * on failure *failed (may be NULL) is the index of the Maildir that failed. */
qm_err qm_maildir_deliver_all(const char *const *dirs, size_t n, const uint8_t *msg,
                              size_t len, char **ids, size_t *failed);
/* Every message in new/ and cur/, oldest first (then by id).  An absent DIR is an empty list.
 * Entries that are not regular files (directories, FIFOs, symbolic links, ...) and names
 * starting with '.' are not messages and not listed. */
qm_err qm_maildir_list(const char *dir, qm_maildir_entry **entries, size_t *n);
/* The same, telling skip (if not NULL) of each entry of new/ and cur/ that is not a
 * message because it is not a regular file: its full path and what it is ("a directory",
 * "a FIFO", "a symbolic link", ...).  Names starting with '.' are skipped silently. */
typedef void (*qm_maildir_skip_fn)(void *arg, const char *path, const char *what);
qm_err qm_maildir_list_report(const char *dir, qm_maildir_entry **entries, size_t *n,
                              qm_maildir_skip_fn skip, void *arg);
void qm_maildir_entries_free(qm_maildir_entry *entries, size_t n);
/* Read one message by id: QM_E_NOT_FOUND if absent, QM_E_TOO_BIG past QM_MIME_MAX_MESSAGE. */
qm_err qm_maildir_read(const char *dir, const char *id, uint8_t **msg, size_t *len);
/* Read at most max bytes from the start of a message (what the inbox lists it from), whatever
 * its size: QM_E_NOT_FOUND if absent, QM_E_TRANSPORT if it is not a regular file or cannot be
 * read (errno tells why). */
qm_err qm_maildir_read_prefix(const char *dir, const char *id, size_t max, uint8_t **msg,
                              size_t *len);

#endif
