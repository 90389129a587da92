/* SPDX-License-Identifier: Apache-2.0 */
/*
 * message_page.c - the Read page of `qumail web` (GET /message/ID), the
 * HTML parts it frames (GET /message/ID/html/N) and attachment downloads
 * (GET /message/ID/part/N); URLs in msgurl.h.
 *
 * The first GET of the page of an unread message decrypts it once, with
 * keys from the KME, and keeps it in the read store: libqumail's
 * mail/open.h, the code behind `qumail read` (same stores, same errors).
 * Every later view, and every part, comes from the read store with no KME
 * call; a part of a message not yet read is never decrypted (404).  The
 * gate (server.c) has already refused a request without the session
 * cookie or with a Sec-Fetch-Site other than same-origin or none, so a
 * page of another site cannot make us spend a key; a HEAD never decrypts.
 *
 * What the sender wrote is hostile: text is escaped (html_text), an HTML
 * part is shown only inside <iframe sandbox> (no scripts, an opaque origin)
 * from its own URL whose policy allows no script, no remote content and
 * no form, and is sandboxed again by that policy when opened on its own;
 * a download is application/octet-stream with a cleaned file name.
 */
#include "web/pages.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/secret.h"
#include "mail/envelope.h"
#include "mail/inbox.h"
#include "mail/open.h"
#include "mail/parts.h"
#include "web/msgurl.h"

/* An HTML part's own policy: nothing but inline style and data: images;
 * sandboxed even when opened outside our frame. */
static const char frame_csp[] =
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'none'; "
    "base-uri 'none'; frame-ancestors 'self'; sandbox";

/* ------------------------------------------------------------ helpers */

static void page_ok(web_reply *out)
{
    out->status = 200;
    out->content_type = "text/html; charset=utf-8";
}

/* n bytes of text (up to a NUL) with CR LF as LF (html_text shows a lone
 * CR as U+FFFD). */
static void text_lines(html_buf *b, const char *s, size_t n)
{
    char *copy = malloc(n + 1);
    if (!copy) {
        b->oom = true;
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < n && s[i]; i++)
        if (!(s[i] == '\r' && i + 1 < n && s[i + 1] == '\n'))
            copy[k++] = s[i];
    copy[k] = '\0';
    html_text(b, copy);
    secret_wipe(copy, n);
    free(copy);
}

static const char *level_name(int level)
{
    switch (level) {
    case 1: return "Level 1";
    case 2: return "Level 2";
    case 4: return "Level 4 (not protected)";
    default: return "Unknown level";
    }
}

static void size_text(html_buf *b, size_t n)
{
    if (n < 1000)
        html_rawf(b, "%zu bytes", n);
    else if (n < 1000 * 1000)
        html_rawf(b, "%.1f kB (%zu bytes)", (double)n / 1000, n);
    else
        html_rawf(b, "%.1f MB (%zu bytes)", (double)n / 1e6, n);
}

static void utc_time(long long t, char *out, size_t cap)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (t <= 0 || !gmtime_r(&tt, &tm) || !strftime(out, cap, "%Y-%m-%d %H:%M:%S UTC", &tm))
        snprintf(out, cap, "not recorded");
}

/* ------------------------------------------------------------ the page */

static void header_row(html_buf *b, const char *name, const char *value)
{
    if (!value)
        return;
    html_rawf(b, "<dt>%s</dt><dd>", name);
    html_text(b, value);
    html_raw(b, "</dd>");
}

static void actions(html_buf *b, const char *enc)
{
    html_raw(b, "<nav aria-label=\"Message\" class=\"actions\">");
    html_rawf(b, "<a href=\"/compose?reply=%s\" aria-keyshortcuts=\"r\">Reply</a>", enc);
    html_rawf(b, "<a href=\"/compose?reply_all=%s\" aria-keyshortcuts=\"a\">Reply all</a>", enc);
    html_rawf(b, "<a href=\"/compose?forward=%s\" aria-keyshortcuts=\"f\">Forward</a>", enc);
    html_raw(b, "</nav>\n");
}

static void banners(html_buf *b, const qm_opened *o)
{
    if (o->meta.unverified[0]) {
        html_raw(b, "<div class=\"banner danger\" role=\"alert\"><strong>Sender not verified:"
                    "</strong> ");
        html_text(b, o->meta.unverified);
        html_raw(b, ". Its From does NOT prove who wrote it; shown on request.</div>\n");
    }
    if (o->level == 4)
        html_raw(b, "<div class=\"banner danger\" role=\"alert\">Level 4: this message is NOT "
                    "encrypted and NOT authenticated; anyone on the way could read or change "
                    "it.</div>\n");
    if (o->meta.forged_copy_seen)
        html_raw(b, "<p class=\"warn\" role=\"note\">A forged copy of this message was seen "
                    "earlier (it failed its integrity check); this copy verified.</p>\n");
    if (!o->from_store && o->kept != QM_OK)
        html_raw(b, "<div class=\"banner danger\" role=\"alert\">This message could not be kept "
                    "in the read store and its keys are used: it cannot be decrypted again. "
                    "Save what you need from this page now.</div>\n");
}

static void attachments(html_buf *b, const qm_parts *p, const char *enc)
{
    if (p->n_attachments == 0)
        return;
    html_rawf(b, "<section aria-labelledby=\"att\"><h2 id=\"att\">Attachments (%zu)</h2>"
                 "<ul class=\"attachments\">\n", p->n_attachments);
    for (size_t i = 0; i < p->n_parts; i++) {
        const qm_part *part = &p->parts[i];
        if (part->kind != QM_PART_ATTACHMENT)
            continue;
        char name[256], fallback[32];
        snprintf(fallback, sizeof fallback, "attachment-%zu", part->index);
        web_display_name(part->name ? part->name : fallback, name, sizeof name);
        html_rawf(b, "<li><a href=\"/message/%s/part/%zu\">", enc, part->index);
        html_text(b, name);
        html_raw(b, "</a> <span class=\"size\">");
        size_text(b, part->size);
        html_raw(b, "</span></li>\n");
        secret_wipe(name, sizeof name);
    }
    html_raw(b, "</ul></section>\n");
}

static void html_frames(html_buf *b, const qm_parts *p, const char *enc)
{
    for (size_t i = 0; i < p->n_parts; i++)
        if (p->parts[i].kind == QM_PART_HTML)
            html_rawf(b, "<iframe sandbox class=\"html-part\" referrerpolicy=\"no-referrer\" "
                         "title=\"HTML part %zu (no scripts, no remote content)\" "
                         "src=\"/message/%s/html/%zu\"></iframe>\n",
                      p->parts[i].index, enc, p->parts[i].index);
}

static void detail_row(html_buf *b, const char *name, const char *value)
{
    html_rawf(b, "<dt>%s</dt><dd>", name);
    html_text(b, value && *value ? value : "not recorded");
    html_raw(b, "</dd>");
}

static void security_details(html_buf *b, const qm_opened *o)
{
    const qm_read_meta *m = &o->meta;
    const char *alg = qm_level_alg(o->level);
    char when[64];
    html_raw(b, "<section class=\"security\" aria-labelledby=\"sec\"><h2 id=\"sec\">Security "
                "details</h2><dl>");
    detail_row(b, "Level", level_name(o->level));
    detail_row(b, "Algorithm", alg);
    detail_row(b, "Sender SAE", m->sender);
    detail_row(b, "Recipient SAEs", m->recipients);
    html_raw(b, "<dt>Key IDs</dt><dd>");
    if (m->n_keys == 0)
        html_text(b, o->level == 4 ? "none (Level 4 uses no key)" : "not recorded");
    for (unsigned i = 0; i < m->n_keys && i < QM_READ_MAX_KEYS; i++) {
        html_raw(b, "<code>");
        html_text(b, m->key_ids[i]);
        html_raw(b, "</code> ");
    }
    if (m->n_keys > QM_READ_MAX_KEYS)
        html_rawf(b, "and %u more", m->n_keys - QM_READ_MAX_KEYS);
    html_raw(b, "</dd>");
    detail_row(b, "KME", m->kme);
    detail_row(b, "Integrity verified",
               o->level == 1 ? "Yes: its one-time MAC was checked before anything was shown"
               : o->level == 2 ? "Yes: its AES-GCM tag was checked before anything was shown"
               : "No: Level 4 carries no integrity check");
    utc_time(m->read_at, when, sizeof when);
    detail_row(b, "First read", when);
    detail_row(b, "This view", o->from_store ? "from the read store (no key used, no KME call)"
                                             : "decrypted now with keys from the KME");
    html_raw(b, "</dl></section>\n");
}

static void render(web_reply *out, const qm_opened *o, const char *id)
{
    html_buf *b = &out->body;
    char enc[WEB_MSG_ID_MAX * 3 + 1];
    qm_parts p = {0};   /* a message decrypted now was read once already */
    qm_err prc = o->has_parts ? QM_OK : qm_parts_read(o->plain, o->len, &p);
    const qm_parts *pp = o->has_parts ? &o->parts : &p;
    const char *subject = prc == QM_OK && pp->subject ? pp->subject : "(no subject)";
    web_msg_id_encode(id, enc, sizeof enc);
    html_begin(b, subject, true);
    html_raw(b, "<article class=\"message\"><h1 id=\"subject\">");
    html_text(b, subject);
    html_rawf(b, "</h1>\n<p class=\"level level%d\">", o->level);
    html_text(b, level_name(o->level));
    html_raw(b, "</p>\n");
    banners(b, o);
    actions(b, enc);
    if (prc == QM_OK) {
        html_raw(b, "<dl class=\"headers\">");
        header_row(b, "From", pp->from);
        header_row(b, "To", pp->to);
        header_row(b, "Cc", pp->cc);
        header_row(b, "Date", pp->date);
        header_row(b, "Subject", pp->subject);
        html_raw(b, "</dl>\n");
        if (pp->text) {
            html_raw(b, "<pre class=\"body\">");
            text_lines(b, pp->text, strlen(pp->text));
            html_raw(b, "</pre>\n");
        }
        html_frames(b, pp, enc);
        if (pp->truncated)
            html_raw(b, "<p class=\"note\">Parts past 256 or 16 levels deep are not shown.</p>\n");
        attachments(b, pp, enc);
    } else {
        html_raw(b, "<p class=\"warn\">Its structure cannot be read; here it is as text.</p>"
                    "<pre class=\"body\">");
        text_lines(b, (const char *)o->plain, o->len);   /* not NUL-terminated */
        html_raw(b, "</pre>\n");
    }
    security_details(b, o);
    html_raw(b, "</article>\n");
    html_end(b);
    qm_parts_free(&p);
    page_ok(out);
    out->frames = true;
}

/* ------------------------------------------------------------- parts */

static void serve_part(web_reply *out, const qm_opened *o, const web_msg_url *u)
{
    qm_parts p;
    if (qm_parts_read(o->plain, o->len, &p) != QM_OK) {
        web_error_page(out, 404, "No such part", "This message has no such part.");
        return;
    }
    const qm_part *part = NULL;
    for (size_t i = 0; i < p.n_parts; i++)
        if (p.parts[i].index == u->part)
            part = &p.parts[i];
    bool html = u->view == WEB_MSG_HTML;
    uint8_t *bytes = NULL;
    size_t n = 0;
    if (!part || (html && part->kind != QM_PART_HTML) ||
        qm_parts_content(o->plain, o->len, u->part, &bytes, &n) != QM_OK) {
        qm_parts_free(&p);
        web_error_page(out, 404, "No such part", "This message has no such part.");
        return;
    }
    char fallback[32];
    snprintf(fallback, sizeof fallback, "attachment-%zu", part->index);
    if (html) {
        out->content_type = "text/html; charset=utf-8";
        out->csp = frame_csp;
        out->framable = true;
    } else {
        out->content_type = "application/octet-stream";
        web_content_disposition(part->name ? part->name : fallback, out->disposition,
                                sizeof out->disposition);
    }
    if (n)
        html_bytes(&out->body, bytes, n);
    out->status = 200;
    secret_wipe(bytes, n);
    free(bytes);
    qm_parts_free(&p);
}

/* ------------------------------------------------------------ errors */

static void decrypt_error(web_reply *out, qm_err rc, const char *detail, const char *enc)
{
    char text[900];
    const char *title;
    unsigned status = 200;
    switch (rc) {
    case QM_E_KEY_USED:
    case QM_E_KEY_NOT_FOUND:
        title = "Key already used";
        snprintf(text, sizeof text, "This message's keys were used before (%s). A quantum key "
                 "is delivered once, so this copy cannot be decrypted here. If you read it "
                 "with another program or configuration, open it there.", detail);
        break;
    case QM_E_TAMPERED:
    case QM_E_KEY_SHORT:
        title = "Tampered";
        snprintf(text, sizeof text, "This message was changed on the way: its integrity check "
                 "failed and nothing of it is shown. Ask the sender to send it again.");
        break;
    case QM_E_KME:
        title = "KME unreachable";
        status = 503;
        snprintf(text, sizeof text, "Your KME cannot be reached (%s). No key was used: retry "
                 "when it is back.", detail);
        break;
    case QM_E_AUTH:
        title = "KME refused";
        snprintf(text, sizeof text, "Your KME refused this account's credentials (%s). Check "
                 "[kme] in the configuration.", detail);
        break;
    case QM_E_NOT_RECIPIENT:
        title = "Not for this account";
        snprintf(text, sizeof text, "This message is not addressed to this account's SAE: no "
                 "key of it is yours. Open it with the account it was sent to.");
        break;
    case QM_E_MIME: case QM_E_MALFORMED: case QM_E_VERSION: case QM_E_LEVEL:
    case QM_E_TOO_BIG:
        title = "Malformed message";
        snprintf(text, sizeof text, "This is not a QuMail message this program can read (%s: "
                 "%s). No key was used.", qm_strerror(rc), detail);
        break;
    default:
        title = "Cannot open the message";
        status = 500;
        snprintf(text, sizeof text, "%s: %s.", qm_strerror(rc), detail);
        break;
    }
    bool danger = rc == QM_E_TAMPERED || rc == QM_E_KEY_SHORT;
    html_buf *b = &out->body;
    html_begin(b, title, true);
    html_raw(b, danger ? "<div class=\"banner danger\" role=\"alert\"><h1>"
                       : "<div class=\"banner\" role=\"alert\"><h1>");
    html_text(b, title);
    html_raw(b, "</h1>\n<p>");
    html_text(b, text);
    html_raw(b, "</p></div>\n");
    if (rc == QM_E_KME)
        html_rawf(b, "<p><a href=\"/message/%s\">Retry</a></p>\n", enc);
    html_raw(b, "<p><a href=\"/\">Back to the Inbox</a></p>\n");
    html_end(b);
    out->status = status;
    out->content_type = "text/html; charset=utf-8";
}

/* ------------------------------------------------------------- route */

/* Open message idx: from the read store, or (the page, a GET) decrypted
 * now.  false when out holds the answer already. */
static bool open_it(const web_request *rq, web_reply *out, const qm_inbox *mb, size_t idx,
                    const web_msg_url *u, qm_opened *o)
{
    char detail[PATH_MAX + 64] = "", enc[WEB_MSG_ID_MAX * 3 + 1];
    qm_err rc = qm_open_stored(rq->cfg, mb, idx, o, detail, sizeof detail);
    if (rc == QM_OK)
        return true;
    if (rc != QM_E_NOT_FOUND || !o->outer) {
        char text[PATH_MAX + 200];
        snprintf(text, sizeof text, "The message cannot be read: %s (%s). Reload this page "
                 "to retry.", qm_strerror(rc), detail);
        web_error_page(out, rc == QM_E_NOT_FOUND ? 404 : 503, "Message unavailable", text);
        return false;
    }
    if (u->view != WEB_MSG_PAGE || strcmp(rq->method, "GET") != 0 || !rq->reader) {
        web_error_page(out, 404, "Not opened yet",
                       "This message has not been opened: open its page first.");
        return false;
    }
    rc = qm_open_fresh(rq->reader, rq->cfg, o);
    if (rc != QM_OK) {
        web_msg_id_encode(u->id, enc, sizeof enc);
        decrypt_error(out, rc, rq->reader->detail, enc);
        return false;
    }
    return true;
}

void web_page_message(const web_request *rq, web_reply *out)
{
    web_msg_url u;
    if (!web_msg_url_parse(rq->url, &u)) {
        web_error_page(out, 400, "Bad address", "This is not the address of a message.");
        return;
    }
    qm_inbox mb;
    char detail[PATH_MAX + 64] = "";
    qm_err rc = qm_inbox_open(&mb, rq->cfg, NULL, NULL, detail, sizeof detail);
    if (rc != QM_OK) {
        web_error_page(out, 503, "Inbox unavailable",
                       "The mailbox cannot be read. Check the mail server or the Maildir, "
                       "then reload this page.");
        return;
    }
    long idx = qm_open_find(&mb, u.id);
    qm_opened o = {0};
    if (idx < 0)
        web_error_page(out, 404, "No such message", "The inbox has no message with this ID.");
    else if (open_it(rq, out, &mb, (size_t)idx, &u, &o))
        u.view == WEB_MSG_PAGE ? render(out, &o, u.id) : serve_part(out, &o, &u);
    qm_opened_free(&o);
    qm_inbox_close(&mb);
}
