/* SPDX-License-Identifier: Apache-2.0 */
/*
 * inbox_page.c - the Inbox of `qumail web` (GET /): one table row per
 * message, newest first, WEB_INBOX_PAGE rows a page, made by libqumail's
 * listing (mail/inbox.h) exactly as `qumail inbox` makes its lines: from
 * a bounded prefix of each message and the read store, with no key and no
 * KME call.  Only the rows of the page shown are read.  Every field came
 * from the mailbox and is escaped (html_text).
 */
#include "web/pages.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/secret.h"
#include "mail/inbox.h"
#include "web/msgurl.h"

#define WEB_INBOX_PAGE 50

/* "N" with 1 <= N <= pages; 1 when absent; 0 when malformed. */
static size_t page_number(const char *arg, size_t pages)
{
    if (!arg)
        return 1;
    if (!*arg || strlen(arg) > 9 || strspn(arg, "0123456789") != strlen(arg) || arg[0] == '0')
        return 0;
    size_t n = (size_t)strtoul(arg, NULL, 10);
    return n <= pages ? n : 0;
}

static const char *level_text(const qm_inbox_row *row)
{
    if (row->malformed)
        return "Malformed";
    if (!row->qumail && !row->read)
        return "Not protected (not QuMail)";
    switch (row->level) {
    case 1: return "Level 1";
    case 2: return "Level 2";
    case 4: return "Level 4 (not protected)";
    default: return "Unknown level";
    }
}

/* The subject cell: the real subject once read (or in clear), else the
 * listing's label ("(encrypted)"); marks as words.  The row's one link,
 * to the Read page of message id. */
static void subject_cell(html_buf *b, const qm_inbox_row *row, const char *id)
{
    char label[600], enc[WEB_MSG_ID_MAX * 3 + 1];
    web_msg_id_encode(id, enc, sizeof enc);
    html_raw(b, "<td class=\"subject\">");
    html_rawf(b, "<a href=\"/message/%s\">", enc);
    if (row->read && row->unverified)
        html_raw(b, "<strong class=\"warn\">Sender not verified:</strong> ");
    if (row->read || !row->qumail || row->level == 4) {
        html_text(b, row->malformed ? "" : row->has_subject ? row->subject : "(no subject)");
        if (row->malformed) {
            qm_inbox_row_label(row, label, sizeof label);
            html_text(b, label);
        }
    } else {
        html_raw(b, "<em>Encrypted</em>");
    }
    html_raw(b, "</a>");
    if (row->read && row->attachments)
        html_rawf(b, " <span class=\"attach\">%u attachment%s</span>",
                  row->attachments, row->attachments == 1 ? "" : "s");
    html_raw(b, "</td>");
}

static void row_html(html_buf *b, const qm_inbox_row *row, const char *id)
{
    html_raw(b, row->read ? "<tr class=\"read\">" : "<tr class=\"unread\">");
    html_raw(b, "<td>");
    html_text(b, row->from);
    html_raw(b, "</td><td>");
    html_text(b, row->date);
    html_raw(b, "</td>");
    subject_cell(b, row, id);
    html_raw(b, "<td>");
    html_text(b, level_text(row));
    html_raw(b, row->read ? "</td><td>Read</td></tr>\n" : "</td><td>Unread</td></tr>\n");
}

static void paging(html_buf *b, size_t page, size_t pages)
{
    if (pages <= 1)
        return;
    html_raw(b, "<nav aria-label=\"Pages\" class=\"pages\">");
    if (page > 1)
        html_rawf(b, "<a href=\"/?page=%zu\" rel=\"prev\">Newer</a> ", page - 1);
    html_rawf(b, "<span>Page %zu of %zu</span>", page, pages);
    if (page < pages)
        html_rawf(b, " <a href=\"/?page=%zu\" rel=\"next\">Older</a>", page + 1);
    html_raw(b, "</nav>\n");
}

/* The rows of one page, newest first; false (with *rc) when the mailbox
 * failed (an IMAP server) while listing. */
static bool rows(html_buf *b, const qm_inbox *mb, size_t first, size_t last, size_t *skipped,
                 qm_err *rc, char *detail, size_t cap)
{
    for (size_t k = first; k < last; k++) {
        size_t i = mb->n - 1 - k;
        int64_t size;
        int why;
        qm_inbox_row row;
        if (qm_inbox_oversized(mb, i, &size)) {
            ++*skipped;
            continue;
        }
        *rc = qm_inbox_row_get(mb, i, &row, detail, cap, &why);
        if (*rc != QM_OK && mb->imap && *rc != QM_E_NOT_FOUND)
            return false;
        if (*rc != QM_OK) {
            ++*skipped;
            continue;
        }
        row_html(b, &row, qm_inbox_id(mb, i));
        secret_wipe(&row, sizeof row);   /* subjects of read messages are plaintext */
    }
    *rc = QM_OK;
    return true;
}

static void mailbox_error(web_reply *out, qm_err rc, const char *detail)
{
    char text[700];
    snprintf(text, sizeof text, "The mailbox cannot be read: %s (%s). Check the mail "
             "server or the Maildir, then reload this page.", qm_strerror(rc), detail);
    web_error_page(out, 503, "Inbox unavailable", text);
}

void web_page_inbox(const web_request *rq, web_reply *out)
{
    qm_inbox mb;
    char detail[PATH_MAX + 64] = "";
    qm_err rc = qm_inbox_open(&mb, rq->cfg, NULL, NULL, detail, sizeof detail);
    if (rc != QM_OK) {
        mailbox_error(out, rc, detail);
        return;
    }
    size_t pages = mb.n ? (mb.n + WEB_INBOX_PAGE - 1) / WEB_INBOX_PAGE : 1;
    size_t page = page_number(rq->page_arg, pages);
    if (page == 0) {
        qm_inbox_close(&mb);
        web_error_page(out, 404, "No such page", "The inbox has no such page.");
        return;
    }
    html_buf *b = &out->body;
    size_t first = (page - 1) * WEB_INBOX_PAGE, skipped = 0;
    size_t last = first + WEB_INBOX_PAGE < mb.n ? first + WEB_INBOX_PAGE : mb.n;
    html_begin(b, "Inbox", true);
    html_raw(b, "<h1>Inbox</h1>\n<p><strong id=\"account\">");
    html_text(b, rq->account);
    html_rawf(b, "</strong>: %zu message%s.</p>\n", mb.n, mb.n == 1 ? "" : "s");
    paging(b, page, pages);
    html_raw(b, "<table class=\"inbox\"><thead><tr><th scope=\"col\">From</th>"
                "<th scope=\"col\">Date</th><th scope=\"col\">Subject</th>"
                "<th scope=\"col\">Security</th><th scope=\"col\">Status</th></tr></thead>\n"
                "<tbody>\n");
    if (!rows(b, &mb, first, last, &skipped, &rc, detail, sizeof detail)) {
        qm_inbox_close(&mb);
        html_free(b);
        mailbox_error(out, rc, detail);
        return;
    }
    html_raw(b, "</tbody></table>\n");
    if (skipped)
        html_rawf(b, "<p class=\"note\">%zu message%s on this page could not be listed (too "
                     "large, unreadable or gone); <code>qumail inbox</code> names them.</p>\n",
                  skipped, skipped == 1 ? "" : "s");
    paging(b, page, pages);
    html_raw(b, "<form method=\"post\" action=\"/logout\">");
    html_rawf(b, "<input type=\"hidden\" name=\"csrf\" value=\"%s\">", rq->session->csrf);
    html_raw(b, "<button type=\"submit\">Log out</button></form>\n");
    html_end(b);
    qm_inbox_close(&mb);
    out->status = 200;
    out->content_type = "text/html; charset=utf-8";
}
