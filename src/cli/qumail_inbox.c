/* SPDX-License-Identifier: Apache-2.0 */
/*
 * qumail_inbox.c - the mailbox commands of qumail: `inbox` lists my
 * messages, `read N|ID` shows one.
 *
 * The mailbox is my Maildir (maildir_root/<my address>/) or an IMAP mailbox,
 * as [mail] inbox says; mail/inbox.h (shared with the web client) gives both
 * the same shape (a list of IDs, fetch by index) and makes each row.  Listing burns no keys: it shows the clear
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

#include "common/secret.h"
#include "common/termsafe.h"
#include "mail/inbox.h"
#include "mail/maildir.h"
#include "mail/mailserver.h"
#include "mail/mime.h"
#include "mail/open.h"
#include "mail/readstore.h"

/* A Maildir entry that is not a message: said, not listed. */
static void warn_skipped(void *arg, const char *path, const char *what)
{
    (void)arg;
    qc_line("qumail: warning: ", "skipped %s: %s, not a message", path, what);
}

/* Open the mailbox (mail/inbox.h); skip (may be NULL) hears of Maildir
 * entries that are not messages. */
static int mailbox_open_with(qc_session *s, qm_inbox *mb, qm_maildir_skip_fn skip)
{
    char detail[PATH_MAX + 64] = "";
    if (s->cfg.inbox == QM_INBOX_IMAP)
        qc_say(s, "IMAP mailbox %s at %s", s->cfg.imap.mailbox, s->cfg.imap.url);
    else
        qc_say(s, "Maildir %s/%s", s->cfg.maildir_root, s->cfg.address);
    qm_err rc = qm_inbox_open(mb, &s->cfg, skip, NULL, detail, sizeof detail);
    if (rc == QM_E_CONFIG)
        return qc_error(EX_USAGE, "%s", detail);
    return rc == QM_OK ? EX_OK : qc_fail(rc, SIDE_OPEN, detail);
}

static int mailbox_open(qc_session *s, qm_inbox *mb)
{
    return mailbox_open_with(s, mb, NULL);
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
static void warn_unlisted(const qm_inbox *mb, qm_err rc, int why, const char *detail)
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
static int list_one(const qm_inbox *mb, size_t i)
{
    char detail[PATH_MAX + 64] = "", subject[600];
    int64_t size = 0;
    int why = 0;
    if (qm_inbox_oversized(mb, i, &size)) {
        qc_line("qumail: warning: ", "skipped %s: %lld bytes, larger than any message (%zu)",
                mb->entries[i].path, (long long)size, QM_MIME_MAX_MESSAGE);
        return EX_OK;
    }
    qm_inbox_row row;
    qm_err rc = qm_inbox_row_get(mb, i, &row, detail, sizeof detail, &why);
    if (rc != QM_OK && mb->imap && rc != QM_E_NOT_FOUND)
        return qc_fail(rc, SIDE_OPEN, detail);
    if (rc != QM_OK) {
        warn_unlisted(mb, rc, why, detail);
        return EX_OK;
    }
    qm_inbox_row_label(&row, subject, sizeof subject);
    print_row(i, row.date, row.from, subject, qm_inbox_id(mb, i));
    secret_wipe(&row, sizeof row);   /* a subject of a read message is plaintext */
    return EX_OK;
}

int qc_cmd_inbox(qc_session *s)
{
    qm_inbox mb;
    int ex = mailbox_open_with(s, &mb, warn_skipped);
    if (ex != EX_OK)
        return ex;
    char me[300];
    termsafe_copy(me, sizeof me, s->cfg.address, strlen(s->cfg.address), TERMSAFE_LINE);
    printf("%s: %zu message%s\n", me, mb.n, mb.n == 1 ? "" : "s");
    for (size_t i = 0; i < mb.n && ex == EX_OK; i++)
        ex = list_one(&mb, i);
    qm_inbox_close(&mb);
    return ex;
}

/* Index of "N" (1-based position) or of a message ID. */
static int select_message(const qm_inbox *mb, const char *which, size_t *idx)
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
    long i = qm_open_find(mb, which);
    if (i < 0)
        return qc_error(EX_USAGE, "no message with ID %s in the inbox", which);
    *idx = (size_t)i;
    return EX_OK;
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

/* Decrypt the fetched message (mail/open.h: keys from the KME, kept in
 * the read store), show it. */
static int read_fresh(qc_session *s, qm_opened *o, size_t idx)
{
    int ex = qc_session_keys(s, true);
    if (ex != EX_OK)
        return ex;
    qc_say(s, "decrypting a %zu-byte message", o->outer_len);
    ex = qc_decrypted(s, qm_open_fresh(&s->me, &s->cfg, o), o);
    if (ex != EX_OK)
        return ex;
    /* The keys are spent now: the plaintext was kept before it is shown,
     * and it is shown even if it could not be kept (it could not be
     * decrypted again); a message whose sender is not verified is kept
     * marked as such. */
    if (o->kept == QM_OK)
        qc_say(s, "kept in the read store %s/read (shown from there next time)",
               s->cfg.store_dir);
    bool shown = o->meta.unverified[0] == '\0' || s->show_unverified;
    ex = show(s, o->plain, o->len, o->level, &o->meta, idx);
    if (o->kept != QM_OK && (ex == EX_OK || ex == EX_SENDER))
        ex = qc_error(EX_TRANSPORT, "the message %s cannot be kept in the read store %s: %s; "
                      "its keys are used, it cannot be decrypted again",
                      shown ? "was shown but" : "was not shown and", s->cfg.store_dir,
                      qm_strerror(o->kept));
    return ex;
}

/* Message idx: from the read store if it was read before, else decrypted. */
static int read_one(qc_session *s, const qm_inbox *mb, size_t idx)
{
    char detail[PATH_MAX + 64] = "";
    qm_opened o;
    int ex;
    qm_err rc = qm_open_stored(&s->cfg, mb, idx, &o, detail, sizeof detail);
    if (rc == QM_OK) {
        qc_say(s, "message %zu (%s) from the read store: no KME call", idx + 1, o.key);
        if (o.meta.forged_copy_seen)
            qc_say(s, "a forged copy of this message was seen before it was read");
        ex = show(s, o.plain, o.len, o.level, &o.meta, idx);
    } else if (rc == QM_E_NOT_FOUND && o.outer) {
        qc_say(s, "message %zu (%s): not read before, decrypting", idx + 1, o.key);
        ex = read_fresh(s, &o, idx);
    } else {
        ex = qc_fail(rc, SIDE_OPEN, detail);
    }
    qm_opened_free(&o);
    return ex;
}

int qc_cmd_read(qc_session *s, const char *which)
{
    qm_inbox mb;
    size_t idx = 0;
    int ex = mailbox_open(s, &mb);
    if (ex == EX_OK)
        ex = select_message(&mb, which, &idx);
    if (ex == EX_OK)
        ex = read_one(s, &mb, idx);
    qm_inbox_close(&mb);
    return ex;
}
