/* SPDX-License-Identifier: Apache-2.0 */
/*
 * compose_page.c - the Compose page of `qumail web` (GET /compose, and
 * ?reply=ID, ?reply_all=ID, ?forward=ID): the form (To and Cc completed
 * from the address book, Subject, Message, Attachments, Security level,
 * the Level 4 confirmation, Send) and its key panel: what Level 1 costs in
 * key bits for the text as it stands and what the KME holds for each
 * recipient (its `status`, no key used), Level 1 disabled with the reason
 * when the pool cannot cover the message.  Attachment sizes are not known
 * before upload (no script needed): compose_send.c computes the cost again
 * and refuses before any key is taken.
 *
 * A reply or forward is made from the read store only (the message was
 * read, its keys are spent): an unknown or unread ID is an error page.
 * Reply: To the original sender, "Re: ", the text quoted; Reply all: the
 * other recipients (not me) in Cc; Forward: "Fwd: ", the text below a
 * header block, and its attachments carried along (compose_send.c takes
 * them from the read store again).
 */
#include "web/compose.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/secret.h"
#include "mail/inbox.h"
#include "mail/mime.h"
#include "mail/open.h"
#include "mail/send.h"
#include "qkd014.h"

#define PANEL_ROWS 20            /* contacts asked on a new message */
#define HEADERS_ESTIMATE 600     /* bytes of headers around the text */

const char *const web_compose_fields[] = {
    "csrf", "to", "cc", "subject", "message", "level", "confirm_level4", "in_reply_to",
    "forward_of", WEB_COMPOSE_FILES, NULL,
};

/* ------------------------------------------------------------ the original */

void web_original_free(web_original *o)
{
    if (o->plain) {
        secret_wipe(o->plain, o->len);
        free(o->plain);
    }
    qm_parts_free(&o->parts);
    memset(o, 0, sizeof *o);
}

/* The Message-ID of the inner message, from its bounded header section. */
static void inner_message_id(const uint8_t *msg, size_t len, char *out, size_t cap)
{
    size_t hlen = 0;
    out[0] = '\0';
    if (qm_mime_header_section(msg, len, &hlen) != QM_OK)
        return;
    for (size_t i = 0; i < hlen; i++) {
        if ((i == 0 || msg[i - 1] == '\n') && hlen - i > 11 &&
            strncasecmp((const char *)msg + i, "Message-ID:", 11) == 0) {
            const uint8_t *lt = memchr(msg + i, '<', hlen - i), *gt;
            const uint8_t *eol = memchr(msg + i, '\n', hlen - i);
            if (!lt || (eol && lt > eol) || !(gt = memchr(lt, '>', hlen - (size_t)(lt - msg))))
                return;
            size_t n = (size_t)(gt - lt - 1);
            if (n < cap) {
                memcpy(out, lt + 1, n);
                out[n] = '\0';
            }
            return;
        }
    }
}

bool web_original_get(const web_request *rq, const char *id, web_original *o, web_reply *out)
{
    qm_inbox mb;
    qm_opened op = {0};
    char detail[PATH_MAX + 64] = "";
    memset(o, 0, sizeof *o);
    qm_err rc = qm_inbox_open(&mb, rq->cfg, NULL, NULL, detail, sizeof detail);
    if (rc != QM_OK) {
        web_error_page(out, 503, "Inbox unavailable", "The mailbox cannot be read now: reload "
                       "this page to retry.");
        return false;
    }
    long idx = qm_open_find(&mb, id);
    if (idx < 0) {
        qm_inbox_close(&mb);
        web_error_page(out, 404, "No such message",
                       "There is no message with this ID in the inbox: go back to the Inbox.");
        return false;
    }
    rc = qm_open_stored(rq->cfg, &mb, (size_t)idx, &op, detail, sizeof detail);
    qm_inbox_close(&mb);
    if (rc != QM_OK || !op.from_store) {
        qm_opened_free(&op);
        web_error_page(out, rc == QM_E_NOT_FOUND ? 409 : 503, "Not read yet",
                       rc == QM_E_NOT_FOUND
                           ? "This message has not been read yet: open it first, then reply "
                             "to it or forward it."
                           : "This message cannot be read from the read store now.");
        return false;
    }
    o->plain = op.plain;
    o->len = op.len;
    op.plain = NULL;
    qm_opened_free(&op);
    inner_message_id(o->plain, o->len, o->message_id, sizeof o->message_id);
    if (qm_parts_read(o->plain, o->len, &o->parts) != QM_OK) {
        web_original_free(o);
        web_error_page(out, 422, "Unreadable message",
                       "This message has no readable header section to reply to.");
        return false;
    }
    return true;
}

/* ------------------------------------------------------------ prefill */

/* "Re: " or "Fwd: " before subject, unless it is there already. */
static char *prefixed(const char *prefix, const char *subject)
{
    char *s = NULL;
    size_t n = strlen(prefix);
    if (!subject)
        subject = "";
    if (strncasecmp(subject, prefix, n) == 0)
        return strdup(subject);
    return asprintf(&s, "%s%s", prefix, subject) < 0 ? NULL : s;
}

/* text with "> " before every line. */
static char *quoted(const char *from, const char *date, const char *text)
{
    size_t n = text ? strlen(text) : 0, lines = 1;
    for (size_t i = 0; i < n; i++)
        lines += text[i] == '\n';
    size_t cap = n + 2 * lines + 600, k;
    char *q = malloc(cap);
    if (!q)
        return NULL;
    k = (size_t)snprintf(q, cap, "\n\nOn %.200s, %.200s wrote:\n> ", date ? date : "an earlier day",
                         from ? from : "the sender");
    for (size_t i = 0; i < n && k + 4 < cap; i++) {
        q[k++] = text[i];
        if (text[i] == '\n' && i + 1 < n) {
            q[k++] = '>';
            q[k++] = ' ';
        }
    }
    q[k] = '\0';
    return q;
}

static char *forwarded_text(const qm_parts *p)
{
    char *s = NULL;
    int n = asprintf(&s, "\n\n---------- Forwarded message ----------\nFrom: %s\nDate: %s\n"
                     "Subject: %s\nTo: %s\n%s%s\n\n%s", p->from ? p->from : "",
                     p->date ? p->date : "", p->subject ? p->subject : "", p->to ? p->to : "",
                     p->cc ? "Cc: " : "", p->cc ? p->cc : "", p->text ? p->text : "");
    return n < 0 ? NULL : s;
}

/* Reply all: the original's To and Cc without me and the sender, comma-separated. */
static char *others(const web_original *o, const char *me, const char *sender)
{
    qm_inner_summary sum = {0};
    size_t cap = 1, k = 0;
    if (qm_mime_inner_summary(o->plain, o->len, &sum) != QM_OK)
        return strdup("");
    for (size_t i = 0; i < sum.n_to; i++)
        cap += strlen(sum.to[i]) + 2;
    char *s = calloc(1, cap);
    for (size_t i = 0; s && i < sum.n_to; i++) {
        if (strcasecmp(sum.to[i], me) == 0 || (sender && strcasecmp(sum.to[i], sender) == 0))
            continue;
        k += (size_t)snprintf(s + k, cap - k, "%s%s", k ? ", " : "", sum.to[i]);
    }
    qm_inner_summary_free(&sum);
    return s;
}

static char *sender_of(const web_original *o)
{
    qm_inner_summary sum = {0};
    char *s = NULL;
    if (qm_mime_inner_summary(o->plain, o->len, &sum) == QM_OK && sum.from)
        s = strdup(sum.from);
    qm_inner_summary_free(&sum);
    return s ? s : strdup("");
}

static void wipe_free(char *s)
{
    if (s) {
        secret_wipe(s, strlen(s));
        free(s);
    }
}

void web_page_compose(const web_request *rq, web_reply *out)
{
    const char *reply = rq->arg ? rq->arg(rq, "reply") : NULL;
    const char *all = rq->arg ? rq->arg(rq, "reply_all") : NULL;
    const char *fwd = rq->arg ? rq->arg(rq, "forward") : NULL;
    const char *id = reply ? reply : all ? all : fwd;
    web_compose_form f = { .title = "Compose" };
    web_original o = {0};
    if ((reply != NULL) + (all != NULL) + (fwd != NULL) > 1) {
        web_error_page(out, 400, "Bad request", "Reply, reply all or forward: one at a time.");
        return;
    }
    if (!id) {
        web_compose_render(rq, &f, 200, out);
        return;
    }
    if (!web_original_get(rq, id, &o, out))
        return;
    char *sender = sender_of(&o), *to = NULL, *cc = NULL, *subject, *text;
    if (fwd) {
        f.title = "Forward";
        subject = prefixed("Fwd: ", o.parts.subject);
        text = forwarded_text(&o.parts);
        f.forward_of = fwd;
        f.forwarded = &o.parts;
    } else {
        f.title = reply ? "Reply" : "Reply all";
        to = strdup(sender);
        cc = all ? others(&o, rq->cfg->address, sender) : NULL;
        subject = prefixed("Re: ", o.parts.subject);
        text = quoted(o.parts.from, o.parts.date, o.parts.text);
        f.in_reply_to = o.message_id[0] ? o.message_id : NULL;
    }
    f.to = to, f.cc = cc, f.subject = subject, f.text = text;
    web_compose_render(rq, &f, 200, out);
    wipe_free(sender), wipe_free(to), wipe_free(cc), wipe_free(subject), wipe_free(text);
    web_original_free(&o);
}

/* ------------------------------------------------------------ the form */

/* The recipients in the key panel: the form's To and Cc if any, else the
 * first contacts of the address book. */
static size_t panel_peers(const web_request *rq, const web_compose_form *f, qm_peer *peers)
{
    size_t n = 0;
    const char *lists[2] = { f->to, f->cc };
    for (int l = 0; l < 2; l++) {
        char buf[2048];
        snprintf(buf, sizeof buf, "%s", lists[l] ? lists[l] : "");
        for (char *save = NULL, *a = strtok_r(buf, ", ;\t\r\n", &save); a && n < QM_MAX_RECIPIENTS;
             a = strtok_r(NULL, ", ;\t\r\n", &save)) {
            const qm_contact *c = qm_config_contact(rq->cfg, a);
            if (c)
                peers[n++] = (qm_peer){ c->address, c->sae_id, c->kme_id };
        }
    }
    return n;
}

/* One row of the key panel; whether its pool covers need bits at Level 1. */
static bool panel_row(html_buf *b, const web_request *rq, const qm_peer *p, uint64_t bytes)
{
    qkd014_status *st = NULL;
    bool covers = false;
    html_raw(b, "<tr><td>");
    html_text(b, p->address);
    html_raw(b, "</td>");
    qkd014_code rc = qkd014_get_status(rq->kme, p->sae_id, &st);
    if (rc == QKD014_OK) {
        uint64_t have = (uint64_t)st->stored_key_count * (uint64_t)st->key_size;
        uint64_t need = qm_send_cost_bits(1, bytes, (uint32_t)st->key_size);
        covers = need <= have;
        html_rawf(b, "<td>%llu bits</td><td>%llu bits (%d keys of %d bits)</td><td%s>%s</td>",
                  (unsigned long long)need, (unsigned long long)have, (int)st->stored_key_count,
                  (int)st->key_size, covers ? "" : " class=\"warn\"",
                  covers ? "Level 1 possible" : "Not enough for Level 1");
    } else {
        html_raw(b, "<td colspan=\"3\" class=\"warn\">");
        html_text(b, rc == QKD014_E_TRANSPORT ? "KME unreachable: reload this page to retry."
                                              : qkd014_strerror(rc));
        html_raw(b, "</td>");
    }
    qkd014_status_free(st);
    html_raw(b, "</tr>\n");
    return covers;
}

/* The key panel; whether Level 1 can be offered (every named recipient
 * covered, or, with none named yet, at least one contact). */
static bool key_panel(html_buf *b, const web_request *rq, const web_compose_form *f,
                      uint64_t bytes)
{
    qm_peer peers[QM_MAX_RECIPIENTS];
    size_t n = panel_peers(rq, f, peers);
    bool named = n > 0, all = true, any = false;
    html_raw(b, "<section aria-labelledby=\"keys-h\" class=\"panel\"><h2 id=\"keys-h\">Keys for "
                "this message</h2>\n");
    html_rawf(b, "<p id=\"cost\">Level 1 (one-time pad) costs <strong>%llu bits</strong> of "
                 "key per recipient for this message as written now (%llu bytes%s). Attachments "
                 "add about 11 bits per byte; the cost is computed again when you press Send. "
                 "Level 2 costs 256 bits per recipient; Level 4 none.</p>\n",
              (unsigned long long)qm_send_cost_bits(1, bytes, 1), (unsigned long long)bytes,
              f->attach_bytes ? " with the attachments" : ", without attachments");
    html_raw(b, "<table class=\"inbox keys\"><thead><tr><th scope=\"col\">Recipient</th>"
                "<th scope=\"col\">Level 1 needs</th><th scope=\"col\">KME holds</th>"
                "<th scope=\"col\">Status</th></tr></thead><tbody>\n");
    for (size_t i = 0; !named && i < rq->cfg->n_contacts && n < PANEL_ROWS; i++)
        if (strcasecmp(rq->cfg->contacts[i].address, rq->cfg->address) != 0) {
            const qm_contact *c = &rq->cfg->contacts[i];
            peers[n++] = (qm_peer){ c->address, c->sae_id, c->kme_id };
        }
    for (size_t i = 0; i < n; i++) {
        bool ok = panel_row(b, rq, &peers[i], bytes);
        all = all && ok;
        any = any || ok;
    }
    html_raw(b, "</tbody></table></section>\n");
    return named ? all : any;
}

static void input(html_buf *b, const char *id, const char *label, const char *value,
                  const char *extra)
{
    html_rawf(b, "<p><label for=\"%s\">%s</label> <input type=\"text\" id=\"%s\" name=\"%s\" %s "
                 "value=\"", id, label, id, id, extra);
    html_text(b, value ? value : "");
    html_raw(b, "\"></p>\n");
}

static void level_select(html_buf *b, int level, bool l1_ok)
{
    int chosen = level ? level : l1_ok ? 1 : 2;
    if (chosen == 1 && !l1_ok)
        chosen = 2;
    html_raw(b, "<p><label for=\"level\">Security level</label> <select id=\"level\" "
                "name=\"level\" aria-describedby=\"cost level1-reason\">\n");
    html_rawf(b, "<option value=\"1\"%s%s>Level 1: one-time pad (information-theoretic)%s</option>\n",
              chosen == 1 ? " selected" : "", l1_ok ? "" : " disabled",
              l1_ok ? "" : ", not available: the key pool cannot cover this message");
    html_rawf(b, "<option value=\"2\"%s>Level 2: AES-256-GCM keyed by a QKD key</option>\n",
              chosen == 2 ? " selected" : "");
    html_raw(b, "<option value=\"3\" disabled>Level 3: post-quantum, not available</option>\n");
    html_rawf(b, "<option value=\"4\"%s>Level 4: no protection</option>\n</select></p>\n",
              chosen == 4 ? " selected" : "");
    if (!l1_ok)
        html_raw(b, "<p id=\"level1-reason\" class=\"warn\" role=\"status\">Level 1 is disabled: "
                    "the KME does not hold enough key for this message (see the table above). "
                    "Level 2 needs only 256 bits per recipient.</p>\n");
}

static void datalist(html_buf *b, const qm_config *cfg)
{
    html_raw(b, "<datalist id=\"contacts\">");
    for (size_t i = 0; i < cfg->n_contacts; i++) {
        html_raw(b, "<option value=\"");
        html_text(b, cfg->contacts[i].address);
        html_raw(b, "\"></option>");
    }
    html_raw(b, "</datalist>\n");
}

static void forwarded_list(html_buf *b, const web_compose_form *f)
{
    if (!f->forward_of)
        return;
    html_raw(b, "<input type=\"hidden\" name=\"forward_of\" value=\"");
    html_text(b, f->forward_of);
    html_raw(b, "\">\n");
    if (!f->forwarded || f->forwarded->n_attachments == 0)
        return;
    html_raw(b, "<p>Forwarded with the message:</p><ul class=\"forwarded\">");
    for (size_t i = 0; i < f->forwarded->n_parts; i++) {
        const qm_part *p = &f->forwarded->parts[i];
        if (p->kind != QM_PART_ATTACHMENT)
            continue;
        html_raw(b, "<li>");
        html_text(b, p->name ? p->name : "attachment");
        html_rawf(b, " (%zu bytes)</li>", p->size);
    }
    html_raw(b, "</ul>\n");
}

void web_compose_render(const web_request *rq, const web_compose_form *f, unsigned status,
                        web_reply *out)
{
    html_buf *b = &out->body;
    uint64_t bytes = HEADERS_ESTIMATE + (f->text ? strlen(f->text) : 0) +
                     (f->subject ? 2 * strlen(f->subject) : 0) + f->attach_bytes;
    html_begin(b, f->title, true);
    html_raw(b, "<h1>");
    html_text(b, f->title);
    html_raw(b, "</h1>\n");
    if (f->error) {
        html_raw(b, "<p class=\"warn\" role=\"alert\" id=\"send-error\">");
        html_text(b, f->error);
        html_raw(b, "</p>\n");
    }
    bool l1_ok = key_panel(b, rq, f, bytes);
    html_raw(b, "<form method=\"post\" action=\"/compose/send\" enctype=\"multipart/form-data\" "
                "class=\"compose\">\n");
    html_rawf(b, "<input type=\"hidden\" name=\"csrf\" value=\"%s\">\n", rq->session->csrf);
    if (f->in_reply_to) {
        html_raw(b, "<input type=\"hidden\" name=\"in_reply_to\" value=\"");
        html_text(b, f->in_reply_to);
        html_raw(b, "\">\n");
    }
    datalist(b, rq->cfg);
    input(b, "to", "To", f->to, "list=\"contacts\" autocomplete=\"off\"");
    input(b, "cc", "Cc", f->cc, "list=\"contacts\" autocomplete=\"off\"");
    input(b, "subject", "Subject", f->subject, "maxlength=\"998\"");
    html_raw(b, "<p><label for=\"message\">Message</label><br><textarea id=\"message\" "
                "name=\"message\" rows=\"14\" cols=\"72\">");
    html_text(b, f->text ? f->text : "");
    html_raw(b, "</textarea></p>\n<p><label for=\"attachments\">Attachments</label> <input "
                "type=\"file\" id=\"attachments\" name=\"attachments\" multiple></p>\n");
    forwarded_list(b, f);
    level_select(b, f->level, l1_ok);
    html_raw(b, "<p><input type=\"checkbox\" id=\"confirm_level4\" name=\"confirm_level4\" "
                "value=\"yes\"> <label for=\"confirm_level4\">Level 4 only: I know this message "
                "will be sent without protection (anyone on the way can read and change "
                "it)</label></p>\n");
    html_raw(b, "<p><button type=\"submit\">Send</button></p>\n</form>\n");
    html_end(b);
    out->status = status;
    out->content_type = "text/html; charset=utf-8";
}
