/* SPDX-License-Identifier: Apache-2.0 */
/*
 * compose_send.c - POST /compose/send and the result page GET /sent/ID of
 * `qumail web`.
 *
 * The form arrives as multipart/form-data, already read by server.c
 * (multipart.c: bounded, names from web_compose_fields, CSRF checked).
 * In order, each refusal re-showing the form with the reason and
 * nothing sent, no key taken: the recipients (address book, at most 16),
 * the level (3 is not available; 4 only with its confirmation box), the
 * inner message built (mail/compose.h, with a forward's attachments
 * taken from the read store again), and at Level 1 the pool of each
 * recipient asked (`status`) against what the message costs.  Then
 * mail/send.h encrypts, delivers (Maildir or SMTP: only the encrypted
 * outer message) and keeps the plaintext sent copy in [store] dir/sent.
 * The answer is a 303 to /sent/ID, a page of recipients, level and key
 * IDs kept in memory for the session that sent it (the last
 * WEB_SENT_KEEP sends).
 */
#include "web/compose.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/secret.h"
#include "mail/compose.h"
#include "mail/send.h"
#include "web/multipart.h"

#define WEB_SENT_KEEP 16
#define WEB_SENT_KEY_IDS 64
#define WEB_MAX_ATTACHMENTS (WEB_MP_MAX_PARTS + QM_PARTS_MAX_LEAVES)

typedef struct sent_result {
    bool live;
    char id[33];
    char session[WEB_SECRET_HEX + 1];
    int level;
    char to[QM_MAX_RECIPIENTS][256];
    size_t n_to, n_keys, n_attachments;
    char key_ids[WEB_SENT_KEY_IDS][UUID_STR_LEN + 1];
    bool copy_kept;
    unsigned long long bytes;
} sent_result;

/* The server's one request thread is the only one here. */
static sent_result sent[WEB_SENT_KEEP];
static size_t sent_next;

/* ------------------------------------------------------------ the form */

typedef struct send_form {
    const char *to, *cc, *subject, *text, *level, *confirm, *in_reply_to, *forward_of;
    size_t text_len;
} send_form;

static const char *value(const web_multipart *m, const char *name)
{
    const web_mp_part *p = web_mp_field(m, name);
    return p ? (const char *)p->data ? (const char *)p->data : "" : NULL;
}

static void read_form(const web_multipart *m, send_form *f)
{
    const web_mp_part *t = web_mp_field(m, "message");
    f->to = value(m, "to");
    f->cc = value(m, "cc");
    f->subject = value(m, "subject");
    f->text = t && t->data ? (const char *)t->data : "";
    f->text_len = t ? t->len : 0;
    f->level = value(m, "level");
    f->confirm = value(m, "confirm_level4");
    f->in_reply_to = value(m, "in_reply_to");
    f->forward_of = value(m, "forward_of");
    if (f->in_reply_to && !*f->in_reply_to)
        f->in_reply_to = NULL;
    if (f->forward_of && !*f->forward_of)
        f->forward_of = NULL;
}

static uint64_t upload_bytes(const web_multipart *m)
{
    uint64_t n = 0;
    for (size_t i = 0; i < m->n; i++)
        if (m->parts[i].filename)
            n += m->parts[i].len;
    return n;
}

/* The form again, filled with what was sent, and why it was refused. */
static void refuse(const web_request *rq, const send_form *f, const web_multipart *m,
                   unsigned status, const char *why, web_reply *out)
{
    char text[900];
    uint64_t up = upload_bytes(m);
    snprintf(text, sizeof text, "Not sent: %s%s", why,
             up ? " Nothing was sent and no key was used; attach the files again." :
                  " Nothing was sent and no key was used.");
    web_compose_form cf = { .title = "Compose", .to = f->to, .cc = f->cc, .subject = f->subject,
                            .text = f->text, .in_reply_to = f->in_reply_to,
                            .forward_of = f->forward_of, .error = text,
                            .attach_bytes = up * 4 / 3 };
    cf.level = f->level && (f->level[0] == '2' || f->level[0] == '4') ? f->level[0] - '0' : 0;
    web_compose_render(rq, &cf, status, out);
}

/* Split a To or Cc field on commas, semicolons and white space into list. */
static bool split(char *s, const char **list, size_t *n)
{
    for (char *save = NULL, *a = strtok_r(s, ", ;\t\r\n", &save); a;
         a = strtok_r(NULL, ", ;\t\r\n", &save)) {
        if (*n == QM_MAX_RECIPIENTS)
            return false;
        list[(*n)++] = a;
    }
    return true;
}

/* ------------------------------------------------------------ checks */

/* Level 1: every recipient's pool covers the message; false with why. */
static bool pools_cover(const web_request *rq, const qm_peer *peers, size_t n, size_t bytes,
                        char *why, size_t cap, unsigned *status)
{
    for (size_t i = 0; i < n; i++) {
        qkd014_status *st = NULL;
        qkd014_code rc = qkd014_get_status(rq->kme, peers[i].sae_id, &st);
        if (rc != QKD014_OK) {
            snprintf(why, cap, "the KME cannot be asked how much key it holds for %s (%s). "
                     "Try again, or choose Level 2.", peers[i].address, qkd014_strerror(rc));
            *status = 503;
            return false;
        }
        uint64_t have = (uint64_t)st->stored_key_count * (uint64_t)st->key_size;
        uint64_t need = qm_send_cost_bits(1, bytes, (uint32_t)st->key_size);
        qkd014_status_free(st);
        if (need > have) {
            snprintf(why, cap, "Level 1 cannot cover this message: it needs %llu bits of key "
                     "for %s and the KME holds %llu bits. Choose Level 2 (256 bits), or send a "
                     "smaller message.", (unsigned long long)need, peers[i].address,
                     (unsigned long long)have);
            *status = 409;
            return false;
        }
    }
    return true;
}

/* The forwarded original's attachments, appended to att (from n). */
static bool forwarded(const web_request *rq, const char *id, web_original *o,
                      qm_attachment *att, size_t *n, uint8_t **bufs, web_reply *scratch)
{
    if (!web_original_get(rq, id, o, scratch))
        return false;
    for (size_t i = 0; i < o->parts.n_parts && *n < WEB_MAX_ATTACHMENTS; i++) {
        const qm_part *p = &o->parts.parts[i];
        size_t len = 0;
        if (p->kind != QM_PART_ATTACHMENT ||
            qm_parts_content(o->plain, o->len, p->index, &bufs[*n], &len) != QM_OK)
            continue;
        att[*n] = (qm_attachment){ p->name, "application/octet-stream", bufs[*n], len };
        ++*n;
    }
    return true;
}

/* ------------------------------------------------------------ result */

static const char *keep_result(const web_request *rq, int level, const qm_peer *peers,
                               size_t n, const qm_send_result *res, size_t n_att, size_t bytes)
{
    sent_result *r = &sent[sent_next++ % WEB_SENT_KEEP];
    static const char hex[] = "0123456789abcdef";
    uint8_t rnd[16];
    memset(r, 0, sizeof *r);
    secret_random(rnd, sizeof rnd);
    for (size_t i = 0; i < sizeof rnd; i++) {
        r->id[2 * i] = hex[rnd[i] >> 4];
        r->id[2 * i + 1] = hex[rnd[i] & 15];
    }
    memcpy(r->session, rq->session->id, sizeof r->session);
    r->live = true;
    r->level = level;
    r->n_to = n;
    for (size_t i = 0; i < n; i++)
        snprintf(r->to[i], sizeof r->to[i], "%s", peers[i].address);
    r->n_keys = res->n_keys;
    for (size_t i = 0; i < res->n_keys && i < WEB_SENT_KEY_IDS; i++)
        memcpy(r->key_ids[i], res->key_ids[i], sizeof r->key_ids[i]);
    r->copy_kept = res->sent_copy_kept;
    r->n_attachments = n_att;
    r->bytes = bytes;
    return r->id;
}

void web_page_sent(const web_request *rq, web_reply *out)
{
    const char *id = rq->url + strlen("/sent/");
    const sent_result *r = NULL;
    for (size_t i = 0; i < WEB_SENT_KEEP; i++)
        if (sent[i].live && strcmp(sent[i].id, id) == 0 &&
            secret_cmp(sent[i].session, rq->session->id, WEB_SECRET_HEX) == 0)
            r = &sent[i];
    if (!r) {
        web_error_page(out, 404, "Not found", "There is no such sent message in this session.");
        return;
    }
    html_buf *b = &out->body;
    html_begin(b, "Sent", true);
    html_rawf(b, "<h1>Sent</h1>\n<p id=\"sent-summary\">Sent at <strong>Level %d</strong>%s to "
                 "%zu recipient%s (%llu bytes, %zu attachment%s).</p>\n<ul id=\"recipients\">",
              r->level, r->level == 4 ? " (not protected)" : "", r->n_to, r->n_to == 1 ? "" : "s",
              r->bytes, r->n_attachments, r->n_attachments == 1 ? "" : "s");
    for (size_t i = 0; i < r->n_to; i++) {
        html_raw(b, "<li>");
        html_text(b, r->to[i]);
        html_raw(b, "</li>");
    }
    html_rawf(b, "</ul>\n<h2>Keys used</h2>\n<p>%zu key%s (their IDs; the keys themselves never "
                 "leave the KMEs and this program's memory):</p>\n<ul id=\"key-ids\">",
              r->n_keys, r->n_keys == 1 ? "" : "s");
    for (size_t i = 0; i < r->n_keys && i < WEB_SENT_KEY_IDS; i++)
        html_rawf(b, "<li><code>%s</code></li>", r->key_ids[i]);
    html_raw(b, "</ul>\n");
    if (r->n_keys > WEB_SENT_KEY_IDS)
        html_rawf(b, "<p>and %zu more.</p>\n", r->n_keys - WEB_SENT_KEY_IDS);
    html_raw(b, r->copy_kept ? "<p>A plaintext copy is kept in your local store only.</p>\n"
                             : "<p class=\"warn\">No sent copy could be kept in the local "
                               "store.</p>\n");
    html_end(b);
    out->status = 200;
    out->content_type = "text/html; charset=utf-8";
}

/* ------------------------------------------------------------ send */

static unsigned status_of(qm_err rc)
{
    return rc == QM_E_KME || rc == QM_E_TRANSPORT ? 503 : rc == QM_E_NO_KEYS ? 409 : 422;
}

/* Recipients and level checked; *level set. */
static bool check_form(const web_request *rq, const send_form *f, qm_peer *peers, size_t *n,
                       int *level, char *lists, size_t cap, char *why, size_t wcap)
{
    const char *addr[QM_MAX_RECIPIENTS];
    size_t na = 0;
    snprintf(lists, cap, "%s,%s", f->to ? f->to : "", f->cc ? f->cc : "");
    if (!split(lists, addr, &na)) {
        snprintf(why, wcap, "at most %d recipients.", QM_MAX_RECIPIENTS);
        return false;
    }
    if (na == 0) {
        snprintf(why, wcap, "no recipient: fill in To.");
        return false;
    }
    if (qm_send_resolve(rq->cfg, addr, na, peers, why, wcap) != QM_OK)
        return false;
    *n = na;
    *level = f->level && strlen(f->level) == 1 ? f->level[0] - '0' : 0;
    if (*level != 1 && *level != 2 && *level != 4) {
        snprintf(why, wcap, "%s", *level == 3 ? "Level 3 is not available."
                                              : "choose a security level.");
        return false;
    }
    if (*level == 4 && !(f->confirm && strcmp(f->confirm, "yes") == 0)) {
        snprintf(why, wcap, "Level 4 sends the message without any protection: tick the box "
                 "that says you know, or choose Level 1 or 2.");
        return false;
    }
    return true;
}

/* The To and Cc addresses of peers as the form split them. */
static void addresses(const send_form *f, const qm_peer *peers, size_t n, const char **to,
                      size_t *n_to, const char **cc, size_t *n_cc)
{
    char buf[4096];
    const char *tmp[QM_MAX_RECIPIENTS];
    size_t nt = 0;
    snprintf(buf, sizeof buf, "%s", f->to ? f->to : "");
    split(buf, tmp, &nt);
    *n_to = *n_cc = 0;
    for (size_t i = 0; i < n; i++) {
        if (i < nt)
            to[(*n_to)++] = peers[i].address;
        else
            cc[(*n_cc)++] = peers[i].address;
    }
}

void web_compose_send(const web_request *rq, web_reply *out)
{
    const web_multipart *m = rq->multipart;
    send_form f = {0};
    qm_peer peers[QM_MAX_RECIPIENTS];
    size_t n = 0, n_att = 0, n_to = 0, n_cc = 0, inner_len = 0;
    int level = 0;
    char lists[4200], why[700];
    const char *to[QM_MAX_RECIPIENTS], *cc[QM_MAX_RECIPIENTS];
    read_form(m, &f);
    if (!check_form(rq, &f, peers, &n, &level, lists, sizeof lists, why, sizeof why)) {
        refuse(rq, &f, m, 422, why, out);
        return;
    }
    addresses(&f, peers, n, to, &n_to, cc, &n_cc);
    qm_attachment *att = calloc(WEB_MAX_ATTACHMENTS, sizeof *att);
    uint8_t **bufs = calloc(WEB_MAX_ATTACHMENTS, sizeof *bufs);
    web_original orig = {0};
    web_reply scratch = {0};
    uint8_t *inner = NULL;
    if (!att || !bufs) {
        refuse(rq, &f, m, 500, "out of memory.", out);
        goto done;
    }
    for (size_t i = 0; i < m->n; i++)
        if (m->parts[i].filename)
            att[n_att++] = (qm_attachment){ m->parts[i].filename, m->parts[i].content_type,
                                            m->parts[i].data, m->parts[i].len };
    if (f.forward_of && !forwarded(rq, f.forward_of, &orig, att, &n_att, bufs, &scratch)) {
        refuse(rq, &f, m, 409, "the forwarded message is no longer in the read store.", out);
        goto done;
    }
    qm_compose c = { .from = rq->cfg->address, .to = to, .n_to = n_to, .cc = cc, .n_cc = n_cc,
                     .subject = f.subject ? f.subject : "", .text = f.text,
                     .text_len = f.text_len, .attachments = att, .n_attachments = n_att,
                     .in_reply_to = f.in_reply_to };
    if (qm_compose_build(&c, &inner, &inner_len) != QM_OK) {
        refuse(rq, &f, m, 422, "the subject is too long, or the reply reference is not valid.",
               out);
        goto done;
    }
    unsigned st = 422;
    if (level == 1 && !pools_cover(rq, peers, n, inner_len, why, sizeof why, &st)) {
        refuse(rq, &f, m, st, why, out);
        goto done;
    }
    qm_self me = { .kme = rq->kme, .sae_id = rq->cfg->sae_id, .address = rq->cfg->address };
    qm_send_result res;
    qm_err rc = qm_send(&me, rq->cfg, level, peers, n, inner, inner_len, true, &res);
    if (rc != QM_OK) {
        snprintf(why, sizeof why, "%s%s%s.", qm_strerror(rc), me.detail[0] ? ": " : "",
                 me.detail);
        refuse(rq, &f, m, status_of(rc), why, out);
        goto done;
    }
    static char location[64];
    snprintf(location, sizeof location, "/sent/%s",
             keep_result(rq, level, peers, n, &res, n_att, inner_len));
    qm_send_result_free(&res);
    out->status = 303;
    out->location = location;
done:
    if (inner) {
        secret_wipe(inner, inner_len);
        free(inner);
    }
    for (size_t i = 0; bufs && i < WEB_MAX_ATTACHMENTS; i++)
        if (bufs[i]) {
            secret_wipe(bufs[i], att[i].len);
            free(bufs[i]);
        }
    free(bufs);
    free(att);
    html_free(&scratch.body);
    web_original_free(&orig);
}
