/* SPDX-License-Identifier: Apache-2.0 */
/*
 * parts.c - the headers, text, HTML parts and attachments of an inner
 * message (parts.h), with GMime.
 *
 * GMime gets a copy of the message (it must never see, let alone rewrite,
 * the caller's bytes) and every copy it makes is wiped before it is
 * released: this is plaintext.  A leaf is text when it is inline
 * text/plain, HTML when it is inline text/html, an attachment otherwise
 * (a message/rfc822 part too, as the bytes GMime writes of it).
 */
#include "mail/parts.h"

#include <gmime/gmime.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/secret.h"
#include "mail/mime.h"
#include "mail/readstore.h"

static pthread_once_t gmime_once = PTHREAD_ONCE_INIT;

static void gmime_init_once(void)
{
    g_mime_init();   /* counted: mime.c's call and this one are the same init */
}

/* A GMime stream over a copy of msg, ended by an empty line so that a
 * header-only message parses; NULL when out of memory. */
static GMimeStream *copy_stream(const uint8_t *msg, size_t len)
{
    pthread_once(&gmime_once, gmime_init_once);
    GMimeStream *s = g_mime_stream_mem_new();
    if (s == NULL)
        return NULL;
    if ((len > 0 && g_mime_stream_write(s, (const char *)msg, len) != (ssize_t)len) ||
        g_mime_stream_write(s, "\n\n", 2) != 2 || g_mime_stream_reset(s) != 0) {
        g_object_unref(s);
        return NULL;
    }
    return s;
}

static void wipe_stream(GMimeStream *s)
{
    GByteArray *b = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(s));
    if (b != NULL)
        secret_wipe(b->data, b->len);
    g_object_unref(s);
}

/* The message in msg, or NULL (*rc says why); *stream to wipe after. */
static GMimeMessage *parse(const uint8_t *msg, size_t len, GMimeStream **stream, qm_err *rc)
{
    size_t hlen = 0;
    *stream = NULL;
    if ((*rc = qm_mime_header_section(msg, len, &hlen)) != QM_OK)
        return NULL;
    if (len == 0 || msg[0] == '\n' || (msg[0] == '\r' && len > 1 && msg[1] == '\n')) {
        *rc = QM_E_MIME;   /* no header at all */
        return NULL;
    }
    if ((*stream = copy_stream(msg, len)) == NULL) {
        *rc = QM_E_NOMEM;
        return NULL;
    }
    GMimeParser *parser = g_mime_parser_new_with_stream(*stream);
    g_mime_parser_set_format(parser, GMIME_FORMAT_MESSAGE);
    GMimeMessage *m = g_mime_parser_construct_message(parser, NULL);
    g_object_unref(parser);
    *rc = m != NULL ? QM_OK : QM_E_MIME;
    return m;
}

/* The decoded bytes of a leaf (an attachment's as they were attached). */
static qm_err leaf_bytes(GMimeObject *o, uint8_t **out, size_t *n)
{
    GMimeStream *mem = g_mime_stream_mem_new();
    if (mem == NULL)
        return QM_E_NOMEM;
    bool ok = true;
    if (GMIME_IS_MESSAGE_PART(o)) {
        GMimeMessage *inner = g_mime_message_part_get_message(GMIME_MESSAGE_PART(o));
        ok = inner == NULL || g_mime_object_write_to_stream(GMIME_OBJECT(inner), NULL, mem) >= 0;
    } else if (GMIME_IS_PART(o)) {
        GMimeDataWrapper *w = g_mime_part_get_content(GMIME_PART(o));
        ok = w == NULL || g_mime_data_wrapper_write_to_stream(w, mem) >= 0;
    }
    GByteArray *b = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
    size_t len = b ? b->len : 0;
    *out = ok ? malloc(len + 1) : NULL;
    if (*out != NULL) {
        if (len)
            memcpy(*out, b->data, len);
        (*out)[len] = 0;
        *n = len;
    }
    wipe_stream(mem);
    return !ok ? QM_E_MIME : *out == NULL ? QM_E_NOMEM : QM_OK;
}

/* A text or HTML leaf in UTF-8 (GMime converts from its charset). */
static qm_err leaf_text(GMimeObject *o, uint8_t **out, size_t *n)
{
    char *t = g_mime_text_part_get_text(GMIME_TEXT_PART(o));
    if (t == NULL)
        return leaf_bytes(o, out, n);
    size_t len = strlen(t);
    *out = malloc(len + 1);
    if (*out != NULL) {
        memcpy(*out, t, len + 1);
        *n = len;
    }
    secret_wipe(t, len);
    g_free(t);
    return *out ? QM_OK : QM_E_NOMEM;
}

static qm_part_kind kind_of(GMimeObject *o)
{
    if (!GMIME_IS_TEXT_PART(o) || g_mime_part_is_attachment(GMIME_PART(o)))
        return QM_PART_ATTACHMENT;
    GMimeContentType *ct = g_mime_object_get_content_type(o);
    if (ct && g_mime_content_type_is_type(ct, "text", "plain"))
        return QM_PART_TEXT;
    if (ct && g_mime_content_type_is_type(ct, "text", "html"))
        return QM_PART_HTML;
    return QM_PART_ATTACHMENT;
}

/* The leaves under o, depth first, each to fn (which returns false to
 * stop); the bounds of parts.h hold. */
typedef bool (*leaf_fn)(void *arg, GMimeObject *leaf, size_t index);

typedef struct walk {
    leaf_fn fn;
    void *arg;
    size_t leaves;
    bool truncated, stopped;
} walk;

static void walk_tree(walk *w, GMimeObject *o, int depth)
{
    if (w->stopped || o == NULL)
        return;
    if (depth > QM_PARTS_MAX_DEPTH || w->leaves >= QM_PARTS_MAX_LEAVES) {
        w->truncated = true;
        return;
    }
    if (GMIME_IS_MULTIPART(o)) {
        int n = g_mime_multipart_get_count(GMIME_MULTIPART(o));
        for (int i = 0; i < n && !w->stopped; i++)
            walk_tree(w, g_mime_multipart_get_part(GMIME_MULTIPART(o), i), depth + 1);
        return;
    }
    if (!w->fn(w->arg, o, w->leaves++))
        w->stopped = true;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static char *addresses(InternetAddressList *l)
{
    if (l == NULL || internet_address_list_length(l) == 0)
        return NULL;
    char *g = internet_address_list_to_string(l, NULL, FALSE);
    char *d = dup_or_null(g);
    g_free(g);
    return d;
}

static char *date_header(GMimeMessage *m)
{
    const char *v = g_mime_object_get_header(GMIME_OBJECT(m), "Date");
    if (v == NULL)
        return NULL;
    v += strspn(v, " \t");
    char *d = strdup(v);
    size_t n = d ? strlen(d) : 0;
    while (n > 0 && strchr(" \t\r\n", d[n - 1]))
        d[--n] = '\0';
    return d;
}

/* Append a text part to p->text ("\n\n" between two); *size its length. */
static bool add_text(qm_parts *p, GMimeObject *o, size_t *size)
{
    uint8_t *t = NULL;
    size_t n = 0, old = p->text ? strlen(p->text) : 0;
    if (leaf_text(o, &t, &n) != QM_OK)
        return false;
    *size = n;
    char *joined = malloc(old + 2 + n + 1);
    if (joined != NULL) {
        size_t k = 0;
        if (old) {
            memcpy(joined, p->text, old);
            memcpy(joined + old, "\n\n", 2);
            k = old + 2;
        }
        memcpy(joined + k, t, n + 1);
    }
    secret_wipe(t, n);
    free(t);
    if (p->text) {
        secret_wipe(p->text, old);
        free(p->text);
    }
    p->text = joined;
    return joined != NULL;
}

static bool on_leaf(void *arg, GMimeObject *o, size_t index)
{
    qm_parts *p = arg;
    qm_part *grown = realloc(p->parts, (p->n_parts + 1) * sizeof *grown);   /* no plaintext */
    if (grown == NULL)
        return false;
    p->parts = grown;
    qm_part *part = &p->parts[p->n_parts];
    memset(part, 0, sizeof *part);
    part->index = index;
    part->kind = GMIME_IS_PART(o) ? kind_of(o) : QM_PART_ATTACHMENT;
    p->n_parts++;
    if (part->kind == QM_PART_TEXT)   /* its size: the text in UTF-8 */
        return add_text(p, o, &part->size);
    uint8_t *b = NULL;
    size_t n = 0;
    if (leaf_bytes(o, &b, &n) != QM_OK)
        return false;
    secret_wipe(b, n);
    free(b);
    part->size = n;
    if (part->kind == QM_PART_ATTACHMENT) {
        p->n_attachments++;
        const char *name = GMIME_IS_PART(o) ? g_mime_part_get_filename(GMIME_PART(o)) : NULL;
        part->name = name && *name ? strdup(name) : NULL;
        return !name || !*name || part->name != NULL;
    }
    return true;
}

qm_err qm_parts_read(const uint8_t *msg, size_t len, qm_parts *p)
{
    if (p == NULL || (msg == NULL && len > 0))
        return QM_E_USAGE;
    memset(p, 0, sizeof *p);
    GMimeStream *stream;
    qm_err rc;
    GMimeMessage *m = parse(msg, len, &stream, &rc);
    if (m == NULL) {
        if (stream)
            wipe_stream(stream);
        return rc;
    }
    p->from = addresses(g_mime_message_get_from(m));
    p->to = addresses(g_mime_message_get_to(m));
    p->cc = addresses(g_mime_message_get_cc(m));
    p->date = date_header(m);
    p->subject = dup_or_null(g_mime_message_get_subject(m));
    walk w = { .fn = on_leaf, .arg = p };
    walk_tree(&w, g_mime_message_get_mime_part(m), 0);
    p->truncated = w.truncated;
    g_object_unref(m);
    wipe_stream(stream);
    if (w.stopped) {
        qm_parts_free(p);
        return QM_E_NOMEM;
    }
    return QM_OK;
}

static void wipe_str(char *s)
{
    if (s)
        secret_wipe(s, strlen(s));
    free(s);
}

void qm_parts_free(qm_parts *p)
{
    if (p == NULL)
        return;
    wipe_str(p->from);
    wipe_str(p->to);
    wipe_str(p->cc);
    wipe_str(p->date);
    wipe_str(p->subject);
    wipe_str(p->text);
    for (size_t i = 0; i < p->n_parts; i++)
        wipe_str(p->parts[i].name);
    free(p->parts);
    memset(p, 0, sizeof *p);
}

typedef struct find {
    size_t want;
    uint8_t *out;
    size_t len;
    qm_err rc;
} find;

static bool on_find(void *arg, GMimeObject *o, size_t index)
{
    find *f = arg;
    if (index != f->want)
        return true;
    bool text = GMIME_IS_PART(o) && kind_of(o) != QM_PART_ATTACHMENT;
    f->rc = text ? leaf_text(o, &f->out, &f->len) : leaf_bytes(o, &f->out, &f->len);
    return false;
}

qm_err qm_parts_content(const uint8_t *msg, size_t len, size_t index, uint8_t **out,
                        size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    GMimeStream *stream;
    qm_err rc;
    GMimeMessage *m = parse(msg, len, &stream, &rc);
    if (m == NULL) {
        if (stream)
            wipe_stream(stream);
        return rc;
    }
    find f = { .want = index, .rc = QM_E_NOT_FOUND };
    walk w = { .fn = on_find, .arg = &f };
    walk_tree(&w, g_mime_message_get_mime_part(m), 0);
    g_object_unref(m);
    wipe_stream(stream);
    if (f.rc == QM_OK) {
        *out = f.out;
        *out_len = f.len;
    }
    return f.rc;
}

void qm_parts_list_attachments(const qm_parts *p, struct qm_read_meta *meta)
{
    unsigned k = 0;
    meta->n_attachments = (unsigned)p->n_attachments;
    for (size_t i = 0; i < p->n_parts && k < QM_READ_MAX_ATTACH; i++) {
        const qm_part *part = &p->parts[i];
        if (part->kind != QM_PART_ATTACHMENT)
            continue;
        qm_read_attachment *a = &meta->attachments[k++];
        a->size = part->size;
        if (part->name)
            snprintf(a->name, sizeof a->name, "%s", part->name);
        else
            snprintf(a->name, sizeof a->name, "attachment-%zu", part->index);
    }
}
