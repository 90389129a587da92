/*
 * qumail_inbox.c - the mailbox commands of qumail: `inbox` lists my
 * messages, `read N|ID` shows one.
 *
 * The mailbox is my Maildir (maildir_root/<my address>/) or an IMAP mailbox,
 * as [mail] inbox says; a small adapter below gives both the same shape (a
 * list of IDs, fetch by index).  Listing burns no keys: it shows the clear
 * outer headers (date, sender) and, for messages already read, the subject
 * from the read store.  `read` decrypts a message once, with keys from the
 * KME, keeps the plaintext in the read store (mail/readstore.h) and shows it
 * from there afterwards without any KME call.
 *
 * A mailbox holds what anyone sent, so listing trusts nothing in it: each
 * message is listed from a bounded prefix (its header section and the
 * envelope header, mail/mime.h), a message past the header bounds is
 * listed as malformed, a Maildir entry that cannot be a message (too large,
 * unreadable, not a regular file) is skipped with a warning naming it, and
 * every line printed from the mailbox goes through common/termsafe.h.
 * Unprotected mail (Level 4, or not QuMail at all) is labelled from its
 * outer structure before anything is read.
 */
#include "qumail.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/termsafe.h"
#include "mail/maildir.h"
#include "mail/mailserver.h"
#include "mail/mime.h"
#include "mail/readstore.h"

typedef struct mailbox {
    qc_session *s;
    bool imap;
    char dir[PATH_MAX];            /* Maildir */
    qm_maildir_entry *entries;     /* Maildir */
    qm_mailserver srv;             /* IMAP */
    qm_imap_entry *uids;           /* IMAP */
    size_t n;
} mailbox;

/* "a" or "a/b" into out, cut short if need be (for messages only). */
static void detail_path(char *out, size_t cap, const char *a, const char *b)
{
    int n = b ? snprintf(out, cap, "%s/%s", a, b) : snprintf(out, cap, "%s", a);
    if (n < 0)
        out[0] = '\0';
}

/* A Maildir entry that is not a message: said, not listed. */
static void warn_skipped(void *arg, const char *path, const char *what)
{
    (void)arg;
    qc_line("qumail: warning: ", "skipped %s: %s, not a message", path, what);
}

/* Open the mailbox; skip (may be NULL) hears of Maildir entries that are
 * not messages. */
static int mailbox_open_with(qc_session *s, mailbox *mb, qm_maildir_skip_fn skip)
{
    memset(mb, 0, sizeof *mb);
    mb->s = s;
    qm_err rc;
    char detail[256] = "";
    if (s->cfg.inbox == QM_INBOX_IMAP) {
        mb->imap = true;
        mb->srv = (qm_mailserver){ s->cfg.imap.url, s->cfg.imap.username, s->cfg.imap.password,
                                   s->cfg.imap.ca };
        qc_say(s, "IMAP mailbox %s at %s", s->cfg.imap.mailbox, s->cfg.imap.url);
        rc = qm_imap_list(&mb->srv, s->cfg.imap.mailbox, &mb->uids, &mb->n, detail,
                          sizeof detail);
    } else {
        if (snprintf(mb->dir, sizeof mb->dir, "%s/%s", s->cfg.maildir_root, s->cfg.address) >=
            (int)sizeof mb->dir)
            return qc_error(EX_USAGE, "%s: [mail] maildir_root is too long", s->cfg.path);
        qc_say(s, "Maildir %s", mb->dir);
        rc = qm_maildir_list_report(mb->dir, &mb->entries, &mb->n, skip, NULL);
        detail_path(detail, sizeof detail, mb->dir, NULL);
    }
    return rc == QM_OK ? EX_OK : qc_fail(rc, SIDE_OPEN, detail);
}

static int mailbox_open(qc_session *s, mailbox *mb)
{
    return mailbox_open_with(s, mb, NULL);
}

static void mailbox_close(mailbox *mb)
{
    if (mb->imap)
        qm_imap_entries_free(mb->uids, mb->n);
    else
        qm_maildir_entries_free(mb->entries, mb->n);
    memset(mb, 0, sizeof *mb);
}

static const char *mailbox_id(const mailbox *mb, size_t i)
{
    return mb->imap ? mb->uids[i].uid : mb->entries[i].id;
}

/* The read store's key of message i: its Maildir ID (unique for ever), or
 * imap:MAILBOX:UID:MESSAGE-ID, since IMAP UIDs start again when a mailbox is
 * recreated (a new UIDVALIDITY) and must then not find an older plaintext.
 * msgid is the outer Message-ID (fresh for every message), or NULL. */
static void store_key(const mailbox *mb, size_t i, const char *msgid, char *out, size_t cap)
{
    int n = mb->imap ? snprintf(out, cap, "imap:%s:%s:%s", mb->s->cfg.imap.mailbox,
                                mb->uids[i].uid, msgid ? msgid : "-")
                     : snprintf(out, cap, "%s", mb->entries[i].id);
    if (n < 0)
        out[0] = '\0';
}

static qm_err mailbox_fetch(const mailbox *mb, size_t i, uint8_t **msg, size_t *len,
                            char *detail, size_t cap)
{
    if (mb->imap)
        return qm_imap_fetch(&mb->srv, mb->s->cfg.imap.mailbox, mb->uids[i].uid, msg, len,
                             detail, cap);
    detail_path(detail, cap, mb->dir, mb->entries[i].id);
    return qm_maildir_read(mb->dir, mb->entries[i].id, msg, len);
}

/* What the listing reads of message i: at most QM_MIME_LIST_PREFIX bytes,
 * whatever its size. */
static qm_err mailbox_peek(const mailbox *mb, size_t i, uint8_t **msg, size_t *len,
                           char *detail, size_t cap)
{
    if (mb->imap)
        return qm_imap_fetch_prefix(&mb->srv, mb->s->cfg.imap.mailbox, mb->uids[i].uid,
                                    QM_MIME_LIST_PREFIX, msg, len, detail, cap);
    detail_path(detail, cap, mb->entries[i].path, NULL);
    return qm_maildir_read_prefix(mb->dir, mb->entries[i].id, QM_MIME_LIST_PREFIX, msg, len);
}

/* Date, sender and Message-ID from the clear outer headers (a bounded
 * prefix): no key is touched.  msgid is "" when there is none. */
static void outer_headers(const uint8_t *msg, size_t len, char *date, char *from,
                          char *msgid, size_t cap)
{
    qm_mime_listing l;
    msgid[0] = '\0';
    if (qm_mime_listing_read(msg, len < QM_MIME_LIST_PREFIX ? len : QM_MIME_LIST_PREFIX,
                             &l) == QM_OK) {
        snprintf(date, cap, "%s", l.date ? l.date : "(no date)");
        snprintf(from, cap, "%s", l.from ? l.from : "(no sender)");
        snprintf(msgid, cap, "%s", l.message_id ? l.message_id : "");
    } else {
        snprintf(date, cap, "-");
        snprintf(from, cap, "(malformed)");
    }
    qm_mime_listing_free(&l);
}

/* The subject of a message already read: false if it was not read. */
static bool subject_of(const mailbox *mb, size_t i, const char *msgid, char *subject, size_t cap)
{
    char key[512];
    uint8_t *plain = NULL;
    size_t len = 0;
    int level = 0;
    qm_read_meta meta;
    store_key(mb, i, *msgid ? msgid : NULL, key, sizeof key);
    if (qm_readstore_get_meta(mb->s->cfg.store_dir, key, &level, &meta, &plain, &len) != QM_OK) {
        return false;
    }
    qm_inner_summary sum = {0};
    const char *subj = "(no subject)";
    if (qm_mime_inner_summary(plain, len, &sum) == QM_OK && sum.subject)
        subj = sum.subject;
    snprintf(subject, cap, "%s%s%s", level == 4 ? "[NOT PROTECTED] " : "",
             meta.unverified[0] ? "[UNVERIFIED SENDER] " : "", subj);
    qm_inner_summary_free(&sum);
    qc_wipe_free(plain, len);
    return true;
}

/* The subject column of a message not read yet, from its outer structure
 * alone: a protected one says "(encrypted)"; Level 4 and mail that is not
 * QuMail at all are labelled, with their real subject. */
static void unread_subject(const qm_mime_listing *l, char *out, size_t cap)
{
    if (l->qumail && l->level != 4) {
        snprintf(out, cap, "(encrypted)");
        return;
    }
    snprintf(out, cap, "[NOT PROTECTED] %s%s", l->qumail ? "" : "[not QuMail] ",
             l->subject ? l->subject : "(no subject)");
}

/* One row of the listing; every field is sanitised (they come from the
 * mailbox, the ID from a file name or the server). */
static void print_row(size_t i, const char *date, const char *from, const char *subject,
                      const char *id)
{
    char d[128], f[128], sub[600], idv[300];
    termsafe_copy(d, sizeof d, date, strlen(date), TERMSAFE_LINE);
    termsafe_copy(f, sizeof f, from, strlen(from), TERMSAFE_LINE);
    termsafe_copy(sub, sizeof sub, subject, strlen(subject), TERMSAFE_LINE);
    termsafe_copy(idv, sizeof idv, id, strlen(id), TERMSAFE_LINE);
    printf("%3zu  %-31s  %-24s  %s  [%s]\n", i + 1, d, f, sub, idv);
}

/* A message that vanished or cannot be read (detail names it). */
static void warn_unlisted(const mailbox *mb, qm_err rc, int why, const char *detail)
{
    if (rc == QM_E_NOT_FOUND)
        qc_line("qumail: warning: ", "skipped %s: %s", detail, mb->imap
                ? "no longer in the mailbox" : "gone since the listing began (moved or deleted)");
    else if (rc == QM_E_TRANSPORT && why != 0)
        qc_line("qumail: warning: ", "skipped %s: cannot read it: %s", detail, strerror(why));
    else
        qc_line("qumail: warning: ", "skipped %s: %s", detail, qm_strerror(rc));
}

/* List message i from a bounded prefix.  EX_OK, also when it is skipped
 * with a warning (a Maildir file too large or unreadable) or listed as
 * malformed; an IMAP failure other than a vanished message ends the
 * listing. */
static int list_one(const mailbox *mb, size_t i)
{
    const char *id = mailbox_id(mb, i);
    char detail[256] = "", subject[512];
    if (!mb->imap && (uint64_t)mb->entries[i].size > QM_MIME_MAX_MESSAGE) {
        qc_line("qumail: warning: ", "skipped %s: %lld bytes, larger than any message (%zu)",
                mb->entries[i].path, (long long)mb->entries[i].size, QM_MIME_MAX_MESSAGE);
        return EX_OK;
    }
    uint8_t *msg = NULL;
    size_t len = 0;
    qm_err rc = mailbox_peek(mb, i, &msg, &len, detail, sizeof detail);
    int why = errno;
    if (rc != QM_OK && mb->imap && rc != QM_E_NOT_FOUND)
        return qc_fail(rc, SIDE_OPEN, detail);
    if (rc != QM_OK) {
        warn_unlisted(mb, rc, why, detail);
        return EX_OK;
    }
    qm_mime_listing l;
    rc = qm_mime_listing_read(msg, len < QM_MIME_LIST_PREFIX ? len : QM_MIME_LIST_PREFIX, &l);
    free(msg);
    if (rc != QM_OK) {
        print_row(i, "-", "(malformed)", rc == QM_E_TOO_BIG
                  ? "(malformed: header section over 1000 lines or 256 KiB, not parsed)"
                  : "(malformed: no header section)", id);
        return EX_OK;
    }
    if (!subject_of(mb, i, l.message_id ? l.message_id : "", subject, sizeof subject))
        unread_subject(&l, subject, sizeof subject);
    print_row(i, l.date ? l.date : "(no date)", l.from ? l.from : "(no sender)", subject, id);
    qm_mime_listing_free(&l);
    return EX_OK;
}

int qc_cmd_inbox(qc_session *s)
{
    mailbox mb;
    int ex = mailbox_open_with(s, &mb, warn_skipped);
    if (ex != EX_OK)
        return ex;
    char me[300];
    termsafe_copy(me, sizeof me, s->cfg.address, strlen(s->cfg.address), TERMSAFE_LINE);
    printf("%s: %zu message%s\n", me, mb.n, mb.n == 1 ? "" : "s");
    for (size_t i = 0; i < mb.n && ex == EX_OK; i++)
        ex = list_one(&mb, i);
    mailbox_close(&mb);
    return ex;
}

/* Index of "N" (1-based position) or of a message ID. */
static int select_message(const mailbox *mb, const char *which, size_t *idx)
{
    char *end;
    if (which[0] >= '1' && which[0] <= '9') {
        unsigned long long v = strtoull(which, &end, 10);
        if (*end == '\0') {
            if (v < 1 || v > mb->n)
                return qc_error(EX_USAGE, "no message %s: the inbox has %zu", which, mb->n);
            *idx = (size_t)v - 1;
            return EX_OK;
        }
    }
    for (size_t i = 0; i < mb->n; i++)
        if (strcmp(mailbox_id(mb, i), which) == 0) {
            *idx = i;
            return EX_OK;
        }
    return qc_error(EX_USAGE, "no message with ID %s in the inbox", which);
}

/* Show a message (its sender not verified: only with --show-unverified,
 * under a banner, and exit 10 all the same). */
static int show(const qc_session *s, const uint8_t *msg, size_t len, int level,
                const qm_read_meta *meta, size_t idx)
{
    char hint[160];
    int ex = EX_OK;
    if (meta->unverified[0] != '\0') {
        snprintf(hint, sizeof hint, "kept in the read store: 'qumail read --show-unverified "
                 "%zu' shows it under a banner", idx + 1);
        if ((ex = qc_unverified(s, meta->unverified, hint)) >= 0)
            return ex;
    }
    if (level == 4)
        qc_warn_level4("this message was sent at");
    ex = qc_write_message(msg, len);
    return ex == EX_OK && meta->unverified[0] != '\0' ? EX_SENDER : ex;
}

/* Decrypt the fetched message with keys from the KME, keep it, show it. */
static int read_fresh(qc_session *s, const uint8_t *outer, size_t outer_len, const char *key,
                      size_t idx)
{
    uint8_t *inner = NULL;
    size_t inner_len = 0;
    int level = 0;
    qm_read_meta meta;
    int ex = qc_decrypt(s, outer, outer_len, true, &inner, &inner_len, &level, &meta);
    if (ex != EX_OK)
        return ex;
    /* The keys are spent now: keep the plaintext before showing it, and
     * show it even if it cannot be kept (it could not be decrypted again);
     * a message whose sender is not verified is kept marked as such. */
    qm_err rc = qm_readstore_put_meta(s->cfg.store_dir, key, level, &meta, inner, inner_len);
    if (rc == QM_OK)
        qc_say(s, "kept in the read store %s/read (shown from there next time)",
               s->cfg.store_dir);
    bool shown = meta.unverified[0] == '\0' || s->show_unverified;
    ex = show(s, inner, inner_len, level, &meta, idx);
    qc_wipe_free(inner, inner_len);
    if (rc != QM_OK && (ex == EX_OK || ex == EX_SENDER))
        ex = qc_error(EX_TRANSPORT, "the message %s cannot be kept in the read store %s: %s; "
                      "its keys are used, it cannot be decrypted again",
                      shown ? "was shown but" : "was not shown and", s->cfg.store_dir,
                      qm_strerror(rc));
    return ex;
}

/* Message idx: from the read store if it was read before, else decrypted. */
static int read_one(qc_session *s, const mailbox *mb, size_t idx)
{
    uint8_t *outer = NULL, *plain = NULL;
    size_t outer_len = 0, len = 0;
    char detail[256] = "", date[256], from[256], msgid[256], key[512];
    int level = 0, ex;
    qm_read_meta meta;
    qm_err rc = mailbox_fetch(mb, idx, &outer, &outer_len, detail, sizeof detail);
    if (rc != QM_OK)
        return qc_fail(rc, SIDE_OPEN, detail);
    outer_headers(outer, outer_len, date, from, msgid, sizeof date);
    store_key(mb, idx, *msgid ? msgid : NULL, key, sizeof key);
    rc = qm_readstore_get_meta(s->cfg.store_dir, key, &level, &meta, &plain, &len);
    if (rc == QM_OK) {
        qc_say(s, "message %zu (%s) from the read store: no KME call", idx + 1, key);
        if (meta.forged_copy_seen)
            qc_say(s, "a forged copy of this message was seen before it was read");
        ex = show(s, plain, len, level, &meta, idx);
        qc_wipe_free(plain, len);
    } else if (rc == QM_E_NOT_FOUND) {
        qc_say(s, "message %zu (%s): not read before, decrypting", idx + 1, key);
        ex = read_fresh(s, outer, outer_len, key, idx);
    } else {
        ex = qc_fail(rc, SIDE_OPEN, "read store");
    }
    free(outer);
    return ex;
}

int qc_cmd_read(qc_session *s, const char *which)
{
    mailbox mb;
    size_t idx = 0;
    int ex = mailbox_open(s, &mb);
    if (ex == EX_OK)
        ex = select_message(&mb, which, &idx);
    if (ex == EX_OK)
        ex = read_one(s, &mb, idx);
    mailbox_close(&mb);
    return ex;
}
