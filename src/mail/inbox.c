/* SPDX-License-Identifier: Apache-2.0 */
/*
 * inbox.c - the mailbox adapter and listing rows (inbox.h), shared by the
 * qumail command (src/cli/qumail_inbox.c) and the web client (src/web/).
 *
 * A mailbox holds what anyone sent, so a row trusts nothing in it: it is
 * made from at most QM_MIME_LIST_PREFIX bytes (an IMAP server is asked for
 * no more), a header section past the bounds makes it malformed, and
 * unprotected mail (Level 4, or not QuMail at all) is labelled from its
 * outer structure before anything is read.
 */
#include "mail/inbox.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/secret.h"
#include "mail/mime.h"
#include "mail/readstore.h"

static void detail_path(char *out, size_t cap, const char *a, const char *b)
{
    int n = b ? snprintf(out, cap, "%s/%s", a, b) : snprintf(out, cap, "%s", a);
    if (n < 0 && cap > 0)
        out[0] = '\0';
}

qm_err qm_inbox_open(qm_inbox *mb, const qm_config *cfg, qm_maildir_skip_fn skip, void *arg,
                     char *detail, size_t cap)
{
    memset(mb, 0, sizeof *mb);
    mb->cfg = cfg;
    if (cfg->inbox == QM_INBOX_IMAP) {
        mb->imap = true;
        mb->srv = (qm_mailserver){ cfg->imap.url, cfg->imap.username, cfg->imap.password,
                                   cfg->imap.ca };
        return qm_imap_list(&mb->srv, cfg->imap.mailbox, &mb->uids, &mb->n, detail, cap);
    }
    if (snprintf(mb->dir, sizeof mb->dir, "%s/%s", cfg->maildir_root, cfg->address) >=
        (int)sizeof mb->dir) {
        snprintf(detail, cap, "%s: [mail] maildir_root is too long", cfg->path);
        return QM_E_CONFIG;
    }
    detail_path(detail, cap, mb->dir, NULL);
    return qm_maildir_list_report(mb->dir, &mb->entries, &mb->n, skip, arg);
}

void qm_inbox_close(qm_inbox *mb)
{
    if (mb->imap)
        qm_imap_entries_free(mb->uids, mb->n);
    else
        qm_maildir_entries_free(mb->entries, mb->n);
    memset(mb, 0, sizeof *mb);
}

const char *qm_inbox_id(const qm_inbox *mb, size_t i)
{
    return mb->imap ? mb->uids[i].uid : mb->entries[i].id;
}

/* A Maildir ID is unique for ever; IMAP UIDs start again when a mailbox is
 * recreated (a new UIDVALIDITY) and must then not find an older plaintext,
 * hence imap:MAILBOX:UID:MESSAGE-ID (the outer Message-ID is fresh for
 * every message). */
void qm_inbox_store_key(const qm_inbox *mb, size_t i, const char *msgid, char *out, size_t cap)
{
    int n = mb->imap ? snprintf(out, cap, "imap:%s:%s:%s", mb->cfg->imap.mailbox,
                                mb->uids[i].uid, msgid ? msgid : "-")
                     : snprintf(out, cap, "%s", mb->entries[i].id);
    if (n < 0 && cap > 0)
        out[0] = '\0';
}

qm_err qm_inbox_fetch(const qm_inbox *mb, size_t i, uint8_t **msg, size_t *len, char *detail,
                      size_t cap)
{
    if (mb->imap)
        return qm_imap_fetch(&mb->srv, mb->cfg->imap.mailbox, mb->uids[i].uid, msg, len,
                             detail, cap);
    detail_path(detail, cap, mb->dir, mb->entries[i].id);
    return qm_maildir_read(mb->dir, mb->entries[i].id, msg, len);
}

bool qm_inbox_oversized(const qm_inbox *mb, size_t i, int64_t *size)
{
    if (mb->imap || (uint64_t)mb->entries[i].size <= QM_MIME_MAX_MESSAGE)
        return false;
    *size = mb->entries[i].size;
    return true;
}

/* What a row reads of message i: at most QM_MIME_LIST_PREFIX bytes. */
static qm_err peek(const qm_inbox *mb, size_t i, uint8_t **msg, size_t *len, char *detail,
                   size_t cap)
{
    if (mb->imap)
        return qm_imap_fetch_prefix(&mb->srv, mb->cfg->imap.mailbox, mb->uids[i].uid,
                                    QM_MIME_LIST_PREFIX, msg, len, detail, cap);
    detail_path(detail, cap, mb->entries[i].path, NULL);
    return qm_maildir_read_prefix(mb->dir, mb->entries[i].id, QM_MIME_LIST_PREFIX, msg, len);
}

/* Subject, level and sender mark of a message already read: false if it
 * was not read. */
static bool from_read_store(const qm_inbox *mb, size_t i, const char *msgid, qm_inbox_row *row)
{
    char key[512];
    uint8_t *plain = NULL;
    size_t len = 0;
    int level = 0;
    qm_read_meta meta;
    qm_inbox_store_key(mb, i, msgid, key, sizeof key);
    if (qm_readstore_get_meta(mb->cfg->store_dir, key, &level, &meta, &plain, &len) != QM_OK)
        return false;
    qm_inner_summary sum = {0};
    if (qm_mime_inner_summary(plain, len, &sum) == QM_OK && sum.subject) {
        snprintf(row->subject, sizeof row->subject, "%s", sum.subject);
        row->has_subject = true;
    }
    qm_inner_summary_free(&sum);
    secret_wipe(plain, len);
    free(plain);
    row->read = true;
    row->level = level;
    row->unverified = meta.unverified[0] != '\0';
    row->attachments = meta.n_attachments;
    return true;
}

static void copy_or(char *out, size_t cap, const char *s, const char *fallback)
{
    snprintf(out, cap, "%s", s ? s : fallback);
}

qm_err qm_inbox_row_get(const qm_inbox *mb, size_t i, qm_inbox_row *row, char *detail,
                        size_t cap, int *why)
{
    memset(row, 0, sizeof *row);
    uint8_t *msg = NULL;
    size_t len = 0;
    qm_err rc = peek(mb, i, &msg, &len, detail, cap);
    *why = errno;
    if (rc != QM_OK)
        return rc;
    qm_mime_listing l;
    rc = qm_mime_listing_read(msg, len < QM_MIME_LIST_PREFIX ? len : QM_MIME_LIST_PREFIX, &l);
    free(msg);
    if (rc != QM_OK) {
        row->malformed = true;
        row->too_big = rc == QM_E_TOO_BIG;
        snprintf(row->date, sizeof row->date, "-");
        snprintf(row->from, sizeof row->from, "(malformed)");
        return QM_OK;
    }
    copy_or(row->date, sizeof row->date, l.date, "(no date)");
    copy_or(row->from, sizeof row->from, l.from, "(no sender)");
    row->qumail = l.qumail;
    if (!from_read_store(mb, i, l.message_id, row)) {
        row->level = l.qumail ? l.level : 0;
        if (!l.qumail || l.level == 4) {   /* unprotected: its real subject is in clear */
            row->has_subject = l.subject != NULL;
            copy_or(row->subject, sizeof row->subject, l.subject, "");
        }
    }
    qm_mime_listing_free(&l);
    return QM_OK;
}

void qm_inbox_row_label(const qm_inbox_row *row, char *out, size_t cap)
{
    const char *subj = row->has_subject ? row->subject : "(no subject)";
    if (row->malformed)
        snprintf(out, cap, "%s", row->too_big
                 ? "(malformed: header section over 1000 lines or 256 KiB, not parsed)"
                 : "(malformed: no header section)");
    else if (row->read)
        snprintf(out, cap, "%s%s%s", row->level == 4 ? "[NOT PROTECTED] " : "",
                 row->unverified ? "[UNVERIFIED SENDER] " : "", subj);
    else if (row->qumail && row->level != 4)
        snprintf(out, cap, "(encrypted)");
    else
        snprintf(out, cap, "[NOT PROTECTED] %s%s", row->qumail ? "" : "[not QuMail] ", subj);
}
