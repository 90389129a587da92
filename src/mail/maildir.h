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
} qm_maildir_entry;
/* Deliver: write to DIR/tmp, fsync, rename into DIR/new (creates DIR/{tmp,new,cur} 0700).
 * *id (may be NULL) receives the unique name. */
qm_err qm_maildir_deliver(const char *dir, const uint8_t *msg, size_t len, char **id);
/* Every message in new/ and cur/, oldest first (then by id).  An absent DIR is an empty list. */
qm_err qm_maildir_list(const char *dir, qm_maildir_entry **entries, size_t *n);
void qm_maildir_entries_free(qm_maildir_entry *entries, size_t n);
/* Read one message by id: QM_E_NOT_FOUND if absent. */
qm_err qm_maildir_read(const char *dir, const char *id, uint8_t **msg, size_t *len);

#endif
