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
 */
#include "qumail.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static int mailbox_open(qc_session *s, mailbox *mb)
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
        rc = qm_maildir_list(mb->dir, &mb->entries, &mb->n);
        detail_path(detail, sizeof detail, mb->dir, NULL);
    }
    return rc == QM_OK ? EX_OK : qc_fail(rc, SIDE_OPEN, detail);
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

/* Date, sender and Message-ID from the clear outer headers: no key is
 * touched.  msgid is "" when there is none. */
static void outer_headers(const uint8_t *msg, size_t len, char *date, char *from,
                          char *msgid, size_t cap)
{
    qm_outer_info info = {0};
    uint8_t *env = NULL;
    size_t env_len = 0;
    msgid[0] = '\0';
    if (qm_mime_parse(msg, len, &env, &env_len, &info) == QM_OK) {
        snprintf(date, cap, "%s", info.date ? info.date : "(no date)");
        snprintf(from, cap, "%s", info.from ? info.from : "(no sender)");
        snprintf(msgid, cap, "%s", info.message_id ? info.message_id : "");
    } else {
        snprintf(date, cap, "-");
        snprintf(from, cap, "(not a QuMail message)");
    }
    free(env);
    qm_outer_info_free(&info);
}

/* The subject of a message already read, or "(encrypted)". */
static void subject_of(const mailbox *mb, size_t i, const char *msgid, char *subject, size_t cap)
{
    char key[512];
    uint8_t *plain = NULL;
    size_t len = 0;
    int level = 0;
    store_key(mb, i, *msgid ? msgid : NULL, key, sizeof key);
    if (qm_readstore_get(mb->s->cfg.store_dir, key, &level, &plain, &len) != QM_OK) {
        snprintf(subject, cap, "(encrypted)");
        return;
    }
    qm_inner_summary sum = {0};
    const char *subj = "(no subject)";
    if (qm_mime_inner_summary(plain, len, &sum) == QM_OK && sum.subject)
        subj = sum.subject;
    snprintf(subject, cap, "%s%s", level == 4 ? "[NOT PROTECTED] " : "", subj);
    qm_inner_summary_free(&sum);
    qc_wipe_free(plain, len);
}

int qc_cmd_inbox(qc_session *s)
{
    mailbox mb;
    int ex = mailbox_open(s, &mb);
    if (ex != EX_OK)
        return ex;
    printf("%s: %zu message%s\n", s->cfg.address, mb.n, mb.n == 1 ? "" : "s");
    for (size_t i = 0; i < mb.n && ex == EX_OK; i++) {
        uint8_t *msg = NULL;
        size_t len = 0;
        char detail[256] = "", date[256], from[256], msgid[256], subject[512];
        qm_err rc = mailbox_fetch(&mb, i, &msg, &len, detail, sizeof detail);
        if (rc != QM_OK) {
            ex = qc_fail(rc, SIDE_OPEN, detail);
            break;
        }
        outer_headers(msg, len, date, from, msgid, sizeof date);
        subject_of(&mb, i, msgid, subject, sizeof subject);
        printf("%3zu  %-31s  %-24s  %s  [%s]\n", i + 1, date, from, subject, mailbox_id(&mb, i));
        free(msg);
    }
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

static int show(const uint8_t *msg, size_t len, int level)
{
    if (level == 4)
        qc_warn_level4("this message was sent at");
    return qc_write_out(msg, len);
}

/* Decrypt the fetched message with keys from the KME, keep it, show it. */
static int read_fresh(qc_session *s, const uint8_t *outer, size_t outer_len, const char *key)
{
    uint8_t *inner = NULL;
    size_t inner_len = 0;
    int level = 0;
    int ex = qc_decrypt(s, outer, outer_len, &inner, &inner_len, &level);
    if (ex != EX_OK)
        return ex;
    /* The keys are spent now: keep the plaintext before showing it, and
     * show it even if it cannot be kept (it could not be decrypted again). */
    qm_err rc = qm_readstore_put(s->cfg.store_dir, key, level, inner, inner_len);
    if (rc == QM_OK)
        qc_say(s, "kept in the read store %s/read (shown from there next time)",
               s->cfg.store_dir);
    ex = show(inner, inner_len, level);
    qc_wipe_free(inner, inner_len);
    if (rc != QM_OK && ex == EX_OK)
        ex = qc_error(EX_TRANSPORT, "the message was shown but cannot be kept in the read "
                      "store %s: %s; its keys are used, it cannot be decrypted again",
                      s->cfg.store_dir, qm_strerror(rc));
    return ex;
}

/* Message idx: from the read store if it was read before, else decrypted. */
static int read_one(qc_session *s, const mailbox *mb, size_t idx)
{
    uint8_t *outer = NULL, *plain = NULL;
    size_t outer_len = 0, len = 0;
    char detail[256] = "", date[256], from[256], msgid[256], key[512];
    int level = 0, ex;
    qm_err rc = mailbox_fetch(mb, idx, &outer, &outer_len, detail, sizeof detail);
    if (rc != QM_OK)
        return qc_fail(rc, SIDE_OPEN, detail);
    outer_headers(outer, outer_len, date, from, msgid, sizeof date);
    store_key(mb, idx, *msgid ? msgid : NULL, key, sizeof key);
    rc = qm_readstore_get(s->cfg.store_dir, key, &level, &plain, &len);
    if (rc == QM_OK) {
        qc_say(s, "message %zu (%s) from the read store: no KME call", idx + 1, key);
        ex = show(plain, len, level);
        qc_wipe_free(plain, len);
    } else if (rc == QM_E_NOT_FOUND) {
        qc_say(s, "message %zu (%s): not read before, decrypting", idx + 1, key);
        ex = read_fresh(s, outer, outer_len, key);
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
