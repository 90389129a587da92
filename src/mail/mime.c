/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mime.c - build and strictly parse the outer QuMail message, and summarise
 * an inner one (mime.h, docs/qumail-format.md §1).
 *
 * Building writes the bytes of §1 directly, line by line, so that every
 * outer message has exactly the documented layout (header order, folding,
 * 76-character base64 lines); GMime only formats the default date.
 * Parsing goes through GMime's parser, with a warning callback that turns
 * every structural complaint (truncation, malformed multipart, bad content
 * type, conflicting headers) into a rejection, and then checks the tree
 * itself: one multipart/encrypted with our protocol, exactly two leaf
 * parts of the right types, Version 1, and canonical base64 (common/base64
 * after removing line breaks) - so two different outer messages never give
 * the same envelope by accident of a lenient decoder.  Transport headers
 * (Received, DKIM-Signature, ...) are allowed; the headers that address or
 * describe the message may appear only once.  The envelope can be a Level 4
 * plaintext, so every intermediate copy is wiped before it is freed.
 */
#include "mail/mime.h"

#include <gmime/gmime.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/base64.h"
#include "common/secret.h"
#include "mail/envelope.h"

#define B64_LINE          76
#define MAX_B64_LINE      998    /* RFC 5322 line limit, when reading */
#define MAX_CONTROL_PART  1024
#define MAX_FORMAT_VERSION_DIGITS 9

/* ---- GMime, once per process -------------------------------------------- */

static pthread_once_t gmime_once = PTHREAD_ONCE_INIT;

static void gmime_init_once(void)
{
    g_mime_init();
}

static void gmime_ready(void)
{
    pthread_once(&gmime_once, gmime_init_once);
}

/* ---- small helpers ------------------------------------------------------ */

static char *dup_or_null(const char *s)
{
    return s == NULL ? NULL : strdup(s);
}

static void free_strv(char **v, size_t n)
{
    if (v == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* A bare addr-spec as we write it into From and To: printable ASCII with
 * one '@' inside, none of the characters that would need quoting or could
 * start a comment, a group or another address. */
static bool addr_spec_valid(const char *a)
{
    if (a == NULL)
        return false;
    size_t n = strlen(a);
    const char *at = strchr(a, '@');
    if (n == 0 || n > 254 || at == NULL || at == a || at == a + n - 1 || strchr(at + 1, '@'))
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)a[i];
        if (c < 0x21 || c > 0x7e || strchr("()<>,;:\\\"[]", c) != NULL)
            return false;
    }
    return true;
}

/* A header value written as given: one line of printable ASCII. */
static bool header_value_valid(const char *v)
{
    if (v == NULL || *v == '\0' || strlen(v) > 200)
        return false;
    for (const char *p = v; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
            return false;
    return true;
}

/* ---- building ----------------------------------------------------------- */

/* An output buffer of known capacity; writing past it is a bug (abort
 * would hide it from the caller, so it is counted and reported). */
typedef struct outbuf {
    uint8_t *p;
    size_t len, cap;
    bool overflow;
} outbuf;

static void put(outbuf *o, const char *s, size_t n)
{
    if (n > o->cap - o->len) {
        o->overflow = true;
        return;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

static void puts_(outbuf *o, const char *s)
{
    put(o, s, strlen(s));
}

static char *default_date(void)
{
    GDateTime *now = g_date_time_new_now_utc();   /* UTC: no time zone in clear */
    if (now == NULL)
        return NULL;
    char *g = g_mime_utils_header_format_date(now);
    g_date_time_unref(now);
    char *d = dup_or_null(g);
    g_free(g);
    return d;
}

/* A fresh random token in hex: boundary and Message-ID, unrelated to the
 * inner message and to each other. */
static void random_hex(char *out, size_t bytes)
{
    uint8_t r[32];
    static const char hex[] = "0123456789abcdef";
    secret_random(r, bytes);
    for (size_t i = 0; i < bytes; i++) {
        out[2 * i] = hex[r[i] >> 4];
        out[2 * i + 1] = hex[r[i] & 15];
    }
    out[2 * bytes] = '\0';
}

static void put_headers(outbuf *o, const char *from, const char *const *to, size_t n_to,
                        const char *date, const char *boundary)
{
    char msgid[33];
    random_hex(msgid, 16);
    puts_(o, "From: "); puts_(o, from); puts_(o, "\n");
    puts_(o, "To: ");
    for (size_t i = 0; i < n_to; i++) {
        puts_(o, to[i]);
        puts_(o, i + 1 < n_to ? ",\n " : "\n");   /* one address per line */
    }
    puts_(o, "Date: "); puts_(o, date); puts_(o, "\n");
    puts_(o, "Message-ID: <"); puts_(o, msgid); puts_(o, "@");
    puts_(o, strchr(from, '@') + 1); puts_(o, ">\n");
    puts_(o, "Subject: " QM_MIME_SUBJECT "\n");
    puts_(o, "MIME-Version: 1.0\n");
    puts_(o, "Content-Type: multipart/encrypted; protocol=\"" QM_MIME_PROTOCOL "\";\n"
             " boundary=\""); puts_(o, boundary); puts_(o, "\"\n\n");
}

static void put_body(outbuf *o, const char *boundary, const char *b64, size_t b64_len)
{
    puts_(o, "--"); puts_(o, boundary); puts_(o, "\n");
    puts_(o, "Content-Type: " QM_MIME_PROTOCOL "\n\nVersion: 1\n\n");
    puts_(o, "--"); puts_(o, boundary); puts_(o, "\n");
    puts_(o, "Content-Type: application/octet-stream; name=\"qumail.bin\"\n"
             "Content-Disposition: inline; filename=\"qumail.bin\"\n"
             "Content-Transfer-Encoding: base64\n\n");
    for (size_t i = 0; i < b64_len; i += B64_LINE) {
        size_t n = b64_len - i < B64_LINE ? b64_len - i : B64_LINE;
        put(o, b64 + i, n);
        puts_(o, "\n");
    }
    puts_(o, "--"); puts_(o, boundary); puts_(o, "--\n");
}

static qm_err build_checks(const char *from, const char *const *to, size_t n_to,
                           const char *date, const uint8_t *envelope, size_t envelope_len,
                           uint8_t **out, size_t *out_len)
{
    if (out == NULL || out_len == NULL || (envelope == NULL && envelope_len > 0)
        || !addr_spec_valid(from) || to == NULL || n_to == 0 || n_to > 1000
        || (date != NULL && !header_value_valid(date)))
        return QM_E_USAGE;
    for (size_t i = 0; i < n_to; i++)
        if (!addr_spec_valid(to[i]))
            return QM_E_USAGE;
    if (envelope_len > QM_MIME_MAX_MESSAGE / 4 * 3)
        return QM_E_TOO_BIG;
    return QM_OK;
}

qm_err qm_mime_build(const char *from, const char *const *to, size_t n_to, const char *date,
                     const uint8_t *envelope, size_t envelope_len,
                     uint8_t **out, size_t *out_len)
{
    qm_err err = build_checks(from, to, n_to, date, envelope, envelope_len, out, out_len);
    if (err != QM_OK)
        return err;
    *out = NULL;
    *out_len = 0;
    gmime_ready();

    char *own_date = date == NULL ? default_date() : strdup(date);
    size_t b64_len = b64_encoded_len(envelope_len);
    char *b64 = malloc(b64_len + 1);
    size_t head = 1024 + strlen(from) * 2 + strlen(own_date ? own_date : "");
    for (size_t i = 0; i < n_to; i++)
        head += strlen(to[i]) + 3;
    outbuf o = { .cap = head + b64_len + b64_len / B64_LINE + 1 };
    o.p = malloc(o.cap);
    if (own_date == NULL || b64 == NULL || o.p == NULL) {
        free(own_date);
        free(b64);
        free(o.p);
        return QM_E_NOMEM;
    }
    char boundary[40] = "qumail-";
    random_hex(boundary + 7, 16);
    b64_encode(envelope, envelope_len, b64);
    put_headers(&o, from, to, n_to, own_date, boundary);
    put_body(&o, boundary, b64, b64_len);
    secret_wipe(b64, b64_len);
    free(b64);
    free(own_date);
    if (o.overflow || o.len > QM_MIME_MAX_MESSAGE) {
        secret_wipe(o.p, o.len);
        free(o.p);
        return o.overflow ? QM_E_USAGE : QM_E_TOO_BIG;
    }
    *out = o.p;
    *out_len = o.len;
    return QM_OK;
}

/* ---- header sections, bounded before GMime sees them -------------------- */

qm_err qm_mime_header_section(const uint8_t *msg, size_t len, size_t *hlen)
{
    size_t lines = 0, i = 0;
    while (i < len) {
        if (msg[i] == '\n') {
            *hlen = i + 1;
            return QM_OK;
        }
        if (msg[i] == '\r' && i + 1 < len && msg[i + 1] == '\n') {
            *hlen = i + 2;
            return QM_OK;
        }
        if (++lines > QM_MIME_MAX_HEADER_LINES)
            return QM_E_TOO_BIG;
        /* look no further than one byte past the bound (i <= the bound) */
        size_t room = QM_MIME_MAX_HEADER_BYTES - i + 1;
        size_t look = len - i < room ? len - i : room;
        const uint8_t *nl = memchr(msg + i, '\n', look);
        i = nl != NULL ? (size_t)(nl - msg) + 1 : i + look;
        if (i > QM_MIME_MAX_HEADER_BYTES)
            return QM_E_TOO_BIG;
    }
    *hlen = len;
    return QM_OK;
}

/* The header sections of the body parts are bounded as well: each line
 * that starts with "--" (a boundary, or what GMime might take for one)
 * opens one, and there are at most QM_MIME_MAX_PART_SECTIONS of them.
 * Linear: a section is skipped once checked. */
static qm_err part_sections_bounded(const uint8_t *body, size_t len)
{
    size_t i = 0, sections = 0;
    while (i < len) {
        const uint8_t *nl = memchr(body + i, '\n', len - i);
        size_t next = nl != NULL ? (size_t)(nl - body) + 1 : len;
        if (len - i >= 2 && body[i] == '-' && body[i + 1] == '-') {
            size_t h = 0;
            if (++sections > QM_MIME_MAX_PART_SECTIONS
                || qm_mime_header_section(body + next, len - next, &h) != QM_OK)
                return QM_E_TOO_BIG;
            next += h;
        }
        i = next;
    }
    return QM_OK;
}

/* ---- parsing: GMime with every structural warning fatal ----------------- */

static void on_warning(gint64 offset, GMimeParserWarning code, const gchar *item, gpointer arg)
{
    (void)offset;
    (void)item;
    bool *bad = arg;
    switch (code) {
    case GMIME_WARN_DUPLICATED_HEADER:     /* checked ourselves where it matters */
    case GMIME_WARN_UNENCODED_8BIT_HEADER: /* transport headers may carry 8-bit */
    case GMIME_WARN_INVALID_RFC2047_HEADER_VALUE:
    case GMIME_WARN_INVALID_ADDRESS_LIST:  /* From is checked ourselves */
        return;
    default:
        *bad = true;
    }
}

/* Parse a stream into a message; strict = any structural warning fails. */
static GMimeMessage *parse_stream(GMimeStream *stream, bool strict)
{
    gmime_ready();
    GMimeParserOptions *opts = g_mime_parser_options_new();
    bool bad = false;
    if (strict)
        g_mime_parser_options_set_warning_callback(opts, on_warning, &bad);
    GMimeParser *parser = g_mime_parser_new_with_stream(stream);
    g_mime_parser_set_format(parser, GMIME_FORMAT_MESSAGE);
    GMimeMessage *m = g_mime_parser_construct_message(parser, opts);
    g_object_unref(parser);
    g_mime_parser_options_free(opts);
    if (m != NULL && bad) {
        g_object_unref(m);
        m = NULL;
    }
    return m;
}

/* A memory stream holds a copy of the input, which may be plaintext. */
static void wipe_and_unref_stream(GMimeStream *stream)
{
    GByteArray *bytes = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(stream));
    if (bytes != NULL)
        secret_wipe(bytes->data, bytes->len);
    g_object_unref(stream);
}

static int header_count(GMimeObject *obj, const char *name)
{
    GMimeHeaderList *hl = g_mime_object_get_header_list(obj);
    int n = g_mime_header_list_get_count(hl), count = 0;
    for (int i = 0; i < n; i++) {
        GMimeHeader *h = g_mime_header_list_get_header_at(hl, i);
        if (strcasecmp(g_mime_header_get_name(h), name) == 0)
            count++;
    }
    return count;
}

/* Headers that describe the entity may appear at most once. */
static bool no_duplicates(GMimeObject *obj, const char *const *names)
{
    for (size_t i = 0; names[i] != NULL; i++)
        if (header_count(obj, names[i]) > 1)
            return false;
    return true;
}

static const char *const outer_unique[] = {
    "From", "Sender", "To", "Cc", "Date", "Message-ID", "Subject", "MIME-Version",
    "Content-Type", "Content-Transfer-Encoding", NULL,
};
static const char *const part_unique[] = {
    "Content-Type", "Content-Transfer-Encoding", "Content-Disposition", NULL,
};

static bool is_leaf(GMimeObject *o)
{
    return o != NULL && GMIME_IS_PART(o) && !GMIME_IS_MULTIPART(o) && !GMIME_IS_MESSAGE_PART(o);
}

/* Read a whole GMime stream (from its start) into a malloc'd buffer. */
static bool read_stream(GMimeStream *s, size_t max, char **out, size_t *out_len)
{
    /* a substream of the parsed message knows its length: one allocation */
    gint64 known = g_mime_stream_length(s);
    size_t cap = known >= 0 && (guint64)known <= max ? (size_t)known + 1 : 4096, len = 0;
    char *buf = malloc(cap);
    if (buf == NULL || g_mime_stream_reset(s) != 0) {
        free(buf);
        return false;
    }
    for (;;) {
        if (len == cap) {
            if (cap >= max + 1) {
                secret_wipe(buf, len);
                free(buf);
                return false;
            }
            char *more = malloc(cap * 2);
            if (more == NULL) {
                secret_wipe(buf, len);
                free(buf);
                return false;
            }
            memcpy(more, buf, len);
            secret_wipe(buf, len);
            free(buf);
            buf = more;
            cap *= 2;
        }
        ssize_t n = g_mime_stream_read(s, buf + len, cap - len);
        if (n < 0) {
            secret_wipe(buf, len);
            free(buf);
            return false;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    if (len > max) {
        secret_wipe(buf, len);
        free(buf);
        return false;
    }
    *out = buf;
    *out_len = len;
    return true;
}

/* The raw (still encoded) content of a leaf part, with its encoding. */
static bool part_raw(GMimeObject *o, size_t max, GMimeContentEncoding *enc,
                     char **out, size_t *out_len)
{
    GMimeDataWrapper *w = g_mime_part_get_content(GMIME_PART(o));
    if (w == NULL) {           /* no content at all: an empty body */
        *enc = g_mime_part_get_content_encoding(GMIME_PART(o));
        *out = malloc(1);
        *out_len = 0;
        return *out != NULL;
    }
    GMimeStream *s = g_mime_data_wrapper_get_stream(w);
    *enc = g_mime_data_wrapper_get_encoding(w);
    return s != NULL && read_stream(s, max, out, out_len);
}

/* "Version: N" with nothing else but whitespace and line breaks around it.
 * A well-formed version other than 1 is QM_E_VERSION; anything else
 * QM_E_MIME. */
static qm_err control_version(const char *p, size_t n)
{
    static const char key[] = "Version:";
    size_t i = 0, digits = 0;
    unsigned long v = 0;
    while (i < n && strchr(" \t\r\n", p[i]) != NULL && p[i] != '\0')
        i++;
    if (n - i < sizeof key - 1 || strncasecmp(p + i, key, sizeof key - 1) != 0)
        return QM_E_MIME;
    i += sizeof key - 1;
    while (i < n && (p[i] == ' ' || p[i] == '\t'))
        i++;
    for (; i < n && p[i] >= '0' && p[i] <= '9'; i++, digits++)
        v = v * 10 + (unsigned long)(p[i] - '0');
    if (digits == 0 || digits > MAX_FORMAT_VERSION_DIGITS)
        return QM_E_MIME;
    for (; i < n; i++)
        if (p[i] == '\0' || strchr(" \t\r\n", p[i]) == NULL)
            return QM_E_MIME;
    return v == 1 ? QM_OK : QM_E_VERSION;
}

static qm_err check_control(GMimeObject *o)
{
    GMimeContentType *ct = g_mime_object_get_content_type(o);
    if (!is_leaf(o) || !no_duplicates(o, part_unique) || ct == NULL
        || !g_mime_content_type_is_type(ct, "application", "x-qumail-envelope"))
        return QM_E_MIME;
    GMimeContentEncoding enc;
    char *raw;
    size_t raw_len;
    if (!part_raw(o, MAX_CONTROL_PART, &enc, &raw, &raw_len))
        return QM_E_MIME;
    qm_err err = QM_E_MIME;
    if (enc == GMIME_CONTENT_ENCODING_DEFAULT || enc == GMIME_CONTENT_ENCODING_7BIT)
        err = control_version(raw, raw_len);
    free(raw);
    return err;
}

/* Decoding the data part as it is read, so that a large message is not
 * copied once more: line breaks are dropped, the base64 characters
 * collected in a chunk and decoded whenever it is full.  The last 4
 * characters are always held back, and a flushed chunk may not contain
 * '=', so padding can only end the text; the final piece is decoded at the
 * end with padding allowed.  b64_decode checks alphabet and canonical form. */
#define B64_CHUNK 65536   /* a multiple of 4 */

typedef struct b64_lines {
    char chunk[B64_CHUNK + 4];
    size_t n, line;
    bool cr;                 /* the previous character was CR */
    uint8_t *out;
    size_t out_len, out_cap;
} b64_lines;

static bool b64_flush(b64_lines *d, size_t count)
{
    size_t got;
    if (memchr(d->chunk, '=', count) != NULL
        || b64_decode(d->chunk, count, d->out + d->out_len, d->out_cap - d->out_len, &got) != 0)
        return false;
    d->out_len += got;
    memmove(d->chunk, d->chunk + count, d->n - count);
    d->n -= count;
    return true;
}

/* Lines of at most 998 characters, LF or CRLF; no other whitespace.  The
 * text between line breaks is found with memchr and copied in runs. */
static bool b64_feed(b64_lines *d, const char *p, size_t len)
{
    size_t i = 0;
    while (i < len) {
        char c = p[i];
        if (d->cr && c != '\n')
            return false;            /* CR only right before LF */
        if (c == '\r' || c == '\n') {
            d->cr = c == '\r';
            d->line = c == '\n' ? 0 : d->line;
            i++;
            continue;
        }
        const char *nl = memchr(p + i, '\n', len - i);
        size_t end = nl != NULL ? (size_t)(nl - p) : len;
        const char *cr = memchr(p + i, '\r', end - i);
        if (cr != NULL)
            end = (size_t)(cr - p);
        size_t run = end - i;
        if (run > MAX_B64_LINE - d->line)
            return false;
        d->line += run;
        while (run > 0) {
            size_t take = sizeof d->chunk - d->n < run ? sizeof d->chunk - d->n : run;
            memcpy(d->chunk + d->n, p + i, take);
            d->n += take;
            i += take;
            run -= take;
            if (d->n == sizeof d->chunk && !b64_flush(d, B64_CHUNK))
                return false;
        }
    }
    return true;
}

static bool b64_finish(b64_lines *d)
{
    size_t got;
    if (d->cr || b64_decode(d->chunk, d->n, d->out + d->out_len, d->out_cap - d->out_len,
                            &got) != 0)
        return false;
    d->out_len += got;
    return true;
}

static qm_err decode_stream(GMimeStream *s, uint8_t **out, size_t *out_len)
{
    gint64 total = g_mime_stream_length(s);   /* known for the parser's substreams */
    if (total < 0 || (guint64)total > QM_MIME_MAX_MESSAGE || g_mime_stream_reset(s) != 0)
        return QM_E_MIME;
    b64_lines *d = calloc(1, sizeof *d);
    if (d == NULL)
        return QM_E_NOMEM;
    d->out_cap = b64_max_decoded_len((size_t)total);
    d->out = malloc(d->out_cap ? d->out_cap : 1);
    char buf[16384];
    ssize_t r = d->out != NULL ? 1 : -1;
    bool ok = d->out != NULL;
    while (ok && (r = g_mime_stream_read(s, buf, sizeof buf)) > 0)
        ok = b64_feed(d, buf, (size_t)r);
    ok = ok && r == 0 && b64_finish(d);
    qm_err err = d->out == NULL ? QM_E_NOMEM : ok ? QM_OK : QM_E_MIME;
    if (err == QM_OK) {
        *out = d->out;
        *out_len = d->out_len;
    } else if (d->out != NULL) {
        secret_wipe(d->out, d->out_cap);
        free(d->out);
    }
    secret_wipe(buf, sizeof buf);
    secret_wipe(d, sizeof *d);
    free(d);
    return err;
}

static qm_err check_data(GMimeObject *o, uint8_t **envelope, size_t *envelope_len)
{
    GMimeContentType *ct = g_mime_object_get_content_type(o);
    if (!is_leaf(o) || !no_duplicates(o, part_unique) || ct == NULL
        || !g_mime_content_type_is_type(ct, "application", "octet-stream")
        || g_mime_part_get_content_encoding(GMIME_PART(o)) != GMIME_CONTENT_ENCODING_BASE64)
        return QM_E_MIME;
    GMimeDataWrapper *w = g_mime_part_get_content(GMIME_PART(o));
    if (w == NULL) {         /* no body at all: the empty envelope */
        *envelope = malloc(1);
        *envelope_len = 0;
        return *envelope != NULL ? QM_OK : QM_E_NOMEM;
    }
    GMimeStream *s = g_mime_data_wrapper_get_stream(w);
    if (s == NULL || g_mime_data_wrapper_get_encoding(w) != GMIME_CONTENT_ENCODING_BASE64)
        return QM_E_MIME;
    return decode_stream(s, envelope, envelope_len);
}

/* The top-level headers and the multipart/encrypted around the parts. */
static qm_err check_outer(GMimeMessage *m, GMimeMultipart **mp)
{
    GMimeObject *top = g_mime_message_get_mime_part(m);
    const char *version = g_mime_object_get_header(GMIME_OBJECT(m), "MIME-Version");
    if (!no_duplicates(GMIME_OBJECT(m), outer_unique) || version == NULL || top == NULL
        || !GMIME_IS_MULTIPART(top))
        return QM_E_MIME;
    while (*version == ' ' || *version == '\t')
        version++;
    if (strncmp(version, "1.0", 3) != 0 || strspn(version + 3, " \t\r\n") != strlen(version + 3))
        return QM_E_MIME;
    GMimeContentType *ct = g_mime_object_get_content_type(top);
    const char *proto = ct ? g_mime_content_type_get_parameter(ct, "protocol") : NULL;
    const char *cte = g_mime_object_get_header(top, "Content-Transfer-Encoding");
    if (ct == NULL || !g_mime_content_type_is_type(ct, "multipart", "encrypted")
        || proto == NULL || strcasecmp(proto, QM_MIME_PROTOCOL) != 0
        || (cte != NULL && g_mime_content_encoding_from_string(cte) != GMIME_CONTENT_ENCODING_7BIT)
        || g_mime_multipart_get_count(GMIME_MULTIPART(top)) != 2)
        return QM_E_MIME;
    *mp = GMIME_MULTIPART(top);
    return QM_OK;
}

/* Addr-specs of an address list, groups flattened; empty ones skipped. */
static bool collect_addrs(InternetAddressList *list, char ***v, size_t *n)
{
    int count = list ? internet_address_list_length(list) : 0;
    for (int i = 0; i < count; i++) {
        InternetAddress *a = internet_address_list_get_address(list, i);
        if (INTERNET_ADDRESS_IS_GROUP(a)) {
            if (!collect_addrs(internet_address_group_get_members(INTERNET_ADDRESS_GROUP(a)), v, n))
                return false;
            continue;
        }
        const char *addr = internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(a));
        if (addr == NULL || *addr == '\0')
            continue;
        char **more = realloc(*v, (*n + 1) * sizeof **v);
        if (more == NULL)
            return false;
        *v = more;
        if ((more[*n] = strdup(addr)) == NULL)
            return false;
        (*n)++;
    }
    return true;
}

static bool collect_recipients(GMimeMessage *m, char ***v, size_t *n)
{
    return collect_addrs(g_mime_message_get_to(m), v, n)
           && collect_addrs(g_mime_message_get_cc(m), v, n);
}

/* The address of From, which must be one mailbox for the outer message. */
static const char *single_from(GMimeMessage *m, bool strict)
{
    InternetAddressList *from = g_mime_message_get_from(m);
    if (from == NULL || internet_address_list_length(from) < 1
        || (strict && internet_address_list_length(from) != 1))
        return NULL;
    InternetAddress *a = internet_address_list_get_address(from, 0);
    if (!INTERNET_ADDRESS_IS_MAILBOX(a))
        return NULL;
    const char *addr = internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(a));
    return addr != NULL && *addr != '\0' ? addr : NULL;
}

/* A header value, unfolded, without surrounding whitespace; NULL if absent. */
static char *header_trimmed(GMimeObject *o, const char *name)
{
    const char *v = g_mime_object_get_header(o, name);
    if (v == NULL)
        return NULL;
    while (*v == ' ' || *v == '\t')
        v++;
    char *d = strdup(v);
    if (d == NULL)
        return NULL;
    size_t n = strlen(d);
    while (n > 0 && strchr(" \t\r\n", d[n - 1]) != NULL)
        d[--n] = '\0';
    return d;
}

static qm_err fill_outer_info(GMimeMessage *m, qm_outer_info *info)
{
    const char *from = single_from(m, true);
    if (from == NULL)
        return QM_E_MIME;
    if (info == NULL)
        return QM_OK;
    const char *mid = g_mime_message_get_message_id(m);
    info->from = strdup(from);
    info->date = header_trimmed(GMIME_OBJECT(m), "Date");
    info->message_id = dup_or_null(mid);
    if (info->from == NULL || (mid != NULL && info->message_id == NULL)
        || !collect_recipients(m, &info->to, &info->n_to))
        return QM_E_NOMEM;
    return QM_OK;
}

static qm_err parse_tree(GMimeMessage *m, uint8_t **envelope, size_t *envelope_len,
                         qm_outer_info *info)
{
    GMimeMultipart *mp;
    qm_err err = check_outer(m, &mp);
    if (err == QM_OK)
        err = single_from(m, true) != NULL ? QM_OK : QM_E_MIME;
    if (err == QM_OK)
        err = check_control(g_mime_multipart_get_part(mp, 0));
    if (err == QM_OK)
        err = check_data(g_mime_multipart_get_part(mp, 1), envelope, envelope_len);
    if (err == QM_OK)
        err = fill_outer_info(m, info);
    return err;
}

qm_err qm_mime_parse(const uint8_t *msg, size_t len, uint8_t **envelope, size_t *envelope_len,
                     qm_outer_info *info)
{
    if ((msg == NULL && len > 0) || envelope == NULL || envelope_len == NULL)
        return QM_E_USAGE;
    *envelope = NULL;
    *envelope_len = 0;
    if (info != NULL)
        memset(info, 0, sizeof *info);
    size_t hlen = 0;
    if (len > QM_MIME_MAX_MESSAGE || len == 0 || qm_mime_header_section(msg, len, &hlen) != QM_OK
        || part_sections_bounded(msg + hlen, len - hlen) != QM_OK)
        return QM_E_MIME;
    gmime_ready();
    GMimeStream *stream = g_mime_stream_mem_new_with_buffer((const char *)msg, len);
    GMimeMessage *m = parse_stream(stream, true);
    qm_err err = m != NULL ? parse_tree(m, envelope, envelope_len, info) : QM_E_MIME;
    if (m != NULL)
        g_object_unref(m);   /* before the stream: parts refer to it */
    wipe_and_unref_stream(stream);
    if (err != QM_OK) {
        if (*envelope != NULL)
            secret_wipe(*envelope, *envelope_len);
        free(*envelope);
        *envelope = NULL;
        *envelope_len = 0;
        qm_outer_info_free(info);
    }
    return err;
}

void qm_outer_info_free(qm_outer_info *info)
{
    if (info == NULL)
        return;
    free(info->from);
    free_strv(info->to, info->n_to);
    free(info->date);
    free(info->message_id);
    memset(info, 0, sizeof *info);
}

/* ---- the inner message: headers only, leniently ------------------------- */

qm_err qm_mime_inner_summary(const uint8_t *msg, size_t len, qm_inner_summary *s)
{
    if (s == NULL || (msg == NULL && len > 0))
        return QM_E_USAGE;
    memset(s, 0, sizeof *s);
    /* parse a copy of the headers only: the body may be a gigabyte, and
     * GMime must never see (let alone rewrite) the caller's bytes */
    size_t hlen = 0;
    qm_err bounded = qm_mime_header_section(msg, len, &hlen);
    if (bounded != QM_OK)
        return bounded;
    uint8_t *copy = malloc(hlen + 2);
    if (copy == NULL)
        return QM_E_NOMEM;
    if (hlen > 0)
        memcpy(copy, msg, hlen);
    memcpy(copy + hlen, "\n\n", 2);  /* terminate a header-only message */
    gmime_ready();
    GMimeStream *stream = g_mime_stream_mem_new_with_buffer((const char *)copy, hlen + 2);
    secret_wipe(copy, hlen + 2);
    free(copy);
    GMimeMessage *m = parse_stream(stream, false);
    if (m == NULL) {
        wipe_and_unref_stream(stream);
        return QM_E_MIME;
    }
    qm_err err = QM_E_NOMEM;
    const char *from = single_from(m, false);
    const char *subject = g_mime_message_get_subject(m);
    s->from = dup_or_null(from);
    s->subject = dup_or_null(subject);
    s->date = header_trimmed(GMIME_OBJECT(m), "Date");
    if ((from == NULL || s->from != NULL) && (subject == NULL || s->subject != NULL)
        && collect_recipients(m, &s->to, &s->n_to))
        err = QM_OK;
    g_object_unref(m);
    wipe_and_unref_stream(stream);
    if (err != QM_OK)
        qm_inner_summary_free(s);
    return err;
}

void qm_inner_summary_free(qm_inner_summary *s)
{
    if (s == NULL)
        return;
    free(s->from);
    free_strv(s->to, s->n_to);
    if (s->subject != NULL)
        secret_wipe(s->subject, strlen(s->subject));   /* the subject is plaintext */
    free(s->subject);
    free(s->date);
    memset(s, 0, sizeof *s);
}

/* ---- listing: the header section and the envelope header only ----------- */

/* A copy of the first n bytes of msg as a GMime stream, ended by an empty
 * line (a header-only message then parses). */
static GMimeStream *prefix_stream(const uint8_t *msg, size_t n)
{
    uint8_t *copy = malloc(n + 2);
    if (copy == NULL)
        return NULL;
    if (n > 0)
        memcpy(copy, msg, n);
    memcpy(copy + n, "\n\n", 2);
    gmime_ready();
    GMimeStream *stream = g_mime_stream_mem_new_with_buffer((const char *)copy, n + 2);
    secret_wipe(copy, n + 2);
    free(copy);
    return stream;
}

static bool is_qumail_type(GMimeObject *top)
{
    GMimeContentType *ct = top != NULL ? g_mime_object_get_content_type(top) : NULL;
    const char *proto = ct != NULL ? g_mime_content_type_get_parameter(ct, "protocol") : NULL;
    return ct != NULL && g_mime_content_type_is_type(ct, "multipart", "encrypted")
           && proto != NULL && strcasecmp(proto, QM_MIME_PROTOCOL) == 0;
}

/* The first QM_MIME_PEEK_DATA bytes of the data part, decoded (whole
 * base64 groups only); false if there is no such part. */
static bool peek_data(GMimeObject *top, uint8_t *out, size_t cap, size_t *out_len)
{
    if (!GMIME_IS_MULTIPART(top) || g_mime_multipart_get_count(GMIME_MULTIPART(top)) < 2)
        return false;
    GMimeObject *data = g_mime_multipart_get_part(GMIME_MULTIPART(top), 1);
    if (!is_leaf(data)
        || g_mime_part_get_content_encoding(GMIME_PART(data)) != GMIME_CONTENT_ENCODING_BASE64)
        return false;
    GMimeDataWrapper *w = g_mime_part_get_content(GMIME_PART(data));
    GMimeStream *s = w != NULL ? g_mime_data_wrapper_get_stream(w) : NULL;
    if (s == NULL || g_mime_stream_reset(s) != 0)
        return false;
    char raw[QM_MIME_PEEK_DATA], b64[QM_MIME_PEEK_DATA];
    size_t got = 0, k = 0;
    ssize_t r;
    while (got < sizeof raw && (r = g_mime_stream_read(s, raw + got, sizeof raw - got)) > 0)
        got += (size_t)r;
    for (size_t i = 0; i < got; i++)
        if (raw[i] != '\r' && raw[i] != '\n')
            b64[k++] = raw[i];
    k -= k % 4;
    bool ok = b64_decode(b64, k, out, cap, out_len) == 0;
    secret_wipe(raw, sizeof raw);   /* Level 4: plaintext */
    secret_wipe(b64, sizeof b64);
    return ok;
}

/* The Subject of the inner message that follows a Level 4 envelope header
 * (docs/qumail-format.md §2: no groups, recipients without keys), from
 * complete lines only. */
static char *level4_subject(const uint8_t *e, size_t n)
{
    size_t i = QM_MAGIC_LEN + 2;
    for (int field = 0; field < 2; field++) {   /* alg, sender */
        if (i >= n)
            return NULL;
        i += 1 + (size_t)e[i];
    }
    i += 8;                                      /* msg_len */
    if (i + 2 > n)
        return NULL;
    unsigned recipients = e[i + 1];
    i += 2;
    for (unsigned r = 0; r < recipients; r++) {
        if (i >= n)
            return NULL;
        i += 1 + (size_t)e[i] + 1;               /* id_len, id, group */
    }
    if (i >= n)
        return NULL;
    const uint8_t *nl = memrchr(e + i, '\n', n - i);
    qm_inner_summary sum;
    char *subject = NULL;
    if (nl != NULL && qm_mime_inner_summary(e + i, (size_t)(nl - e) + 1 - i, &sum) == QM_OK) {
        subject = dup_or_null(sum.subject);
        qm_inner_summary_free(&sum);
    }
    return subject;
}

/* Level (and, at Level 4, the subject) from the envelope header. */
static void peek_envelope(GMimeObject *top, qm_mime_listing *l)
{
    uint8_t env[QM_MIME_PEEK_DATA];
    size_t n = 0;
    if (peek_data(top, env, sizeof env, &n) && n >= QM_MAGIC_LEN + 2
        && memcmp(env, QM_MAGIC, QM_MAGIC_LEN) == 0 && env[QM_MAGIC_LEN] == QM_FORMAT_VERSION) {
        int level = env[QM_MAGIC_LEN + 1];
        if (level == QM_LEVEL_1 || level == QM_LEVEL_2 || level == QM_LEVEL_4)
            l->level = level;
        if (level == QM_LEVEL_4)
            l->subject = level4_subject(env, n);
    }
    secret_wipe(env, sizeof env);
}

qm_err qm_mime_listing_read(const uint8_t *msg, size_t len, qm_mime_listing *l)
{
    if (l == NULL || (msg == NULL && len > 0))
        return QM_E_USAGE;
    memset(l, 0, sizeof *l);
    size_t hlen = 0;
    qm_err err = qm_mime_header_section(msg, len, &hlen);
    if (err != QM_OK)
        return err;
    if (len == 0 || msg[0] == '\n' || (msg[0] == '\r' && len > 1 && msg[1] == '\n'))
        return QM_E_MIME;   /* no header at all */
    size_t body = len - hlen < QM_MIME_PEEK_BODY ? len - hlen : QM_MIME_PEEK_BODY;
    GMimeStream *stream = prefix_stream(msg, hlen + body);
    GMimeMessage *m = stream != NULL ? parse_stream(stream, false) : NULL;
    if (m == NULL) {
        if (stream != NULL)
            wipe_and_unref_stream(stream);
        return stream != NULL ? QM_E_MIME : QM_E_NOMEM;
    }
    GMimeObject *top = g_mime_message_get_mime_part(m);
    const char *from = single_from(m, false), *mid = g_mime_message_get_message_id(m);
    l->from = dup_or_null(from);
    l->date = header_trimmed(GMIME_OBJECT(m), "Date");
    l->message_id = dup_or_null(mid);
    l->qumail = is_qumail_type(top);
    if (l->qumail)
        peek_envelope(top, l);
    else
        l->subject = dup_or_null(g_mime_message_get_subject(m));
    g_object_unref(m);
    wipe_and_unref_stream(stream);
    return QM_OK;
}

void qm_mime_listing_free(qm_mime_listing *l)
{
    if (l == NULL)
        return;
    free(l->from);
    free(l->date);
    free(l->message_id);
    if (l->subject != NULL)
        secret_wipe(l->subject, strlen(l->subject));   /* Level 4: plaintext */
    free(l->subject);
    memset(l, 0, sizeof *l);
}
