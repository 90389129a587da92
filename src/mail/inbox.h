/* SPDX-License-Identifier: Apache-2.0 */
/*
 * inbox.h - the user's mailbox as every front end sees it (the qumail
 * command's `inbox` and `read`, the web client's Inbox): a Maildir
 * (maildir_root/<address>/) or an IMAP mailbox, as [mail] inbox says, as one
 * list of messages, oldest first; and the listing row of a message, made
 * without any key.
 *
 * A row comes from a bounded prefix of the message (its clear outer headers
 * and the envelope header, mail/mime.h) and, for a message already read,
 * from the read store (its real subject, its level, whether its sender was
 * verified).  Everything in a row came from the mailbox: front ends make it
 * safe for their output (termsafe, HTML escaping).
 */
#ifndef QM_INBOX_H
#define QM_INBOX_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mail/config.h"
#include "mail/errors.h"
#include "mail/maildir.h"
#include "mail/mailserver.h"

typedef struct qm_inbox {
    const qm_config *cfg;
    bool imap;
    char dir[PATH_MAX];            /* Maildir */
    qm_maildir_entry *entries;     /* Maildir */
    qm_mailserver srv;             /* IMAP */
    qm_imap_entry *uids;           /* IMAP */
    size_t n;
} qm_inbox;

/* List the mailbox of cfg into mb; skip (may be NULL) hears of Maildir
 * entries that are not messages.  On failure detail names the Maildir or
 * the server (QM_E_CONFIG: maildir_root too long). */
qm_err qm_inbox_open(qm_inbox *mb, const qm_config *cfg, qm_maildir_skip_fn skip, void *arg,
                     char *detail, size_t cap);
void qm_inbox_close(qm_inbox *mb);

/* The ID of message i: a Maildir file's unique name, or an IMAP UID. */
const char *qm_inbox_id(const qm_inbox *mb, size_t i);

/* The read store's key of message i (see inbox.c); msgid is its outer
 * Message-ID or NULL. */
void qm_inbox_store_key(const qm_inbox *mb, size_t i, const char *msgid, char *out, size_t cap);

/* The whole message i (detail names it on failure). */
qm_err qm_inbox_fetch(const qm_inbox *mb, size_t i, uint8_t **msg, size_t *len, char *detail,
                      size_t cap);

/* Whether message i is a Maildir file larger than any message (listed by
 * no one: *size says how large). */
bool qm_inbox_oversized(const qm_inbox *mb, size_t i, int64_t *size);

typedef struct qm_inbox_row {
    char date[256], from[256];
    char subject[512];   /* the real subject (read, Level 4, not QuMail), "" if none */
    bool has_subject;
    bool read;           /* in the read store: subject and level from there */
    bool qumail;         /* a QuMail message (else plain mail: unprotected) */
    int level;           /* 1, 2 or 4; 0 when not QuMail or malformed */
    bool unverified;     /* read, and its sender was not verified */
    bool malformed;      /* no header section, or one past the bounds */
    bool too_big;        /* malformed: header section over 1000 lines or 256 KiB */
    unsigned attachments; /* read: how many attachments it has (the read store's list) */
} qm_inbox_row;

/* The row of message i, from a bounded prefix and the read store: no key
 * is used.  QM_OK also for a malformed message (row->malformed); otherwise
 * the message could not be read (detail names it, *why is errno). */
qm_err qm_inbox_row_get(const qm_inbox *mb, size_t i, qm_inbox_row *row, char *detail,
                        size_t cap, int *why);

/* The subject column as the qumail command prints it: "(encrypted)",
 * "[NOT PROTECTED] ...", "[UNVERIFIED SENDER] ...", "(malformed: ...)". */
void qm_inbox_row_label(const qm_inbox_row *row, char *out, size_t cap);

#endif
