/* SPDX-License-Identifier: Apache-2.0 */
/*
 * compose.c - a new inner message from typed fields (compose.h).
 *
 * Written by hand rather than through GMime: every byte of the headers is
 * ours or checked, the output is the same on every machine, and the
 * length (what Level 1 pays for in key bits) is easy to reason about.
 * The buffer grows by copying and wipes what it leaves: it is plaintext.
 */
#include "mail/compose.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/base64.h"
#include "common/secret.h"
#include "mail/config.h"

#define LINE_MAX_8BIT 998
#define B64_LINE 76
#define WORD_BYTES 45      /* UTF-8 bytes per RFC 2047 encoded word (60 base64 chars) */

typedef struct cbuf {
    uint8_t *p;
    size_t len, cap;
    bool oom;
} cbuf;

static void put(cbuf *b, const void *s, size_t n)
{
    if (b->oom)
        return;
    if (n + 1 > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap - b->len < n + 1) {
            if (cap > SIZE_MAX / 4) {
                b->oom = true;
                return;
            }
            cap *= 2;
        }
        uint8_t *g = malloc(cap);
        if (!g) {
            b->oom = true;
            return;
        }
        if (b->p) {
            memcpy(g, b->p, b->len);
            secret_wipe(b->p, b->cap);
            free(b->p);
        }
        b->p = g;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void puts_(cbuf *b, const char *s)
{
    put(b, s, strlen(s));
}

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

/* Base64 in lines of 76 characters. */
static void put_base64(cbuf *b, const uint8_t *data, size_t len)
{
    char line[B64_LINE + 1];
    for (size_t i = 0; i < len; i += B64_LINE / 4 * 3) {
        size_t n = len - i < B64_LINE / 4 * 3 ? len - i : B64_LINE / 4 * 3;
        b64_encode(data + i, n, line);
        puts_(b, line);
        puts_(b, "\n");
    }
}

/* ------------------------------------------------------------ headers */

static void put_date(cbuf *b)
{
    static const char *const days[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
    static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul",
                                          "Aug", "Sep", "Oct", "Nov", "Dec" };
    time_t now = time(NULL);
    struct tm tm;
    char d[64];
    gmtime_r(&now, &tm);
    snprintf(d, sizeof d, "Date: %s, %d %s %d %02d:%02d:%02d +0000\n", days[tm.tm_wday % 7],
             tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
             tm.tm_sec);
    puts_(b, d);
}

static void put_addresses(cbuf *b, const char *name, const char *const *a, size_t n)
{
    if (n == 0)
        return;
    puts_(b, name);
    for (size_t i = 0; i < n; i++) {
        puts_(b, a[i]);
        puts_(b, i + 1 < n ? ",\n " : "\n");
    }
}

/* The subject as one line of printable text (line ends, tabs and other
 * control characters become spaces), plain when it is short ASCII, else
 * RFC 2047 encoded words that never cut a UTF-8 sequence. */
static void put_subject(cbuf *b, const char *subject)
{
    size_t n = strlen(subject);
    char *s = malloc(n + 1);
    if (!s) {
        b->oom = true;
        return;
    }
    bool ascii = n <= 70;
    for (size_t i = 0; i <= n; i++) {
        unsigned char c = (unsigned char)subject[i];
        s[i] = (char)(i < n && (c < 0x20 || c == 0x7f) ? ' ' : c);
        ascii = ascii && (i == n || c < 0x80);
    }
    puts_(b, "Subject: ");
    if (ascii && strstr(s, "=?") == NULL) {
        puts_(b, s);
    } else {
        char word[WORD_BYTES / 3 * 4 + 4];
        for (size_t i = 0; i < n;) {
            size_t k = n - i < WORD_BYTES ? n - i : WORD_BYTES;
            while (k > 1 && i + k < n && ((unsigned char)s[i + k] & 0xC0) == 0x80)
                k--;   /* do not cut a character */
            b64_encode((const uint8_t *)s + i, k, word);
            puts_(b, i ? "\n =?UTF-8?B?" : "=?UTF-8?B?");
            puts_(b, word);
            puts_(b, "?=");
            i += k;
        }
    }
    puts_(b, "\n");
    secret_wipe(s, n);
    free(s);
}

/* ------------------------------------------------------------ body */

/* The text with CRLF made LF and a final LF; *eight_bit when every line
 * is short and holds no NUL or CR. */
static uint8_t *normal_text(const char *t, size_t len, size_t *out_len, bool *eight_bit)
{
    uint8_t *o = malloc(len + 2);
    size_t n = 0, line = 0;
    if (!o)
        return NULL;
    *eight_bit = true;
    for (size_t i = 0; i < len; i++) {
        if (t[i] == '\r' && i + 1 < len && t[i + 1] == '\n')
            continue;
        o[n++] = (uint8_t)t[i];
        line = t[i] == '\n' ? 0 : line + 1;
        if (t[i] == '\0' || t[i] == '\r' || line > LINE_MAX_8BIT)
            *eight_bit = false;
    }
    if (n == 0 || o[n - 1] != '\n')
        o[n++] = '\n';
    *out_len = n;
    return o;
}

static void put_text_part(cbuf *b, const char *text, size_t len)
{
    size_t n = 0;
    bool eight_bit = true;
    uint8_t *t = normal_text(text ? text : "", text ? len : 0, &n, &eight_bit);
    if (!t) {
        b->oom = true;
        return;
    }
    puts_(b, "Content-Type: text/plain; charset=utf-8\n");
    puts_(b, eight_bit ? "Content-Transfer-Encoding: 8bit\n\n" : "Content-Transfer-Encoding: base64\n\n");
    if (eight_bit)
        put(b, t, n);
    else
        put_base64(b, t, n);
    secret_wipe(t, n);
    free(t);
}

static bool token_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           strchr("!#$&^_.+-", c);
}

/* "type/subtype" of letters, digits and !#$&^_.+-, else application/octet-stream. */
static const char *checked_type(const char *t)
{
    const char *slash = t ? strchr(t, '/') : NULL;
    if (!slash || slash == t || !slash[1] || strlen(t) > 100)
        return "application/octet-stream";
    for (const char *p = t; *p; p++)
        if (p != slash && !token_char(*p))
            return "application/octet-stream";
    return t;
}

/* Content-Type name= (ASCII, unsafe characters as '_') and
 * Content-Disposition filename*= (RFC 2231, every byte that is not an
 * attr-char percent-encoded). */
static void put_attachment(cbuf *b, const qm_attachment *a, size_t i)
{
    static const char hex[] = "0123456789ABCDEF";
    char fallback[64], plain[256];
    snprintf(fallback, sizeof fallback, "attachment-%zu", i + 1);
    const char *name = a->name && *a->name ? a->name : fallback;
    size_t k = 0;
    for (const char *p = name; *p && k + 1 < sizeof plain; p++)
        plain[k++] = token_char(*p) ? *p : '_';
    plain[k] = '\0';
    puts_(b, "Content-Type: ");
    puts_(b, checked_type(a->content_type));
    puts_(b, "; name=\"");
    puts_(b, plain);
    puts_(b, "\"\nContent-Disposition: attachment;\n filename*=UTF-8''");
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        char e[3] = { '%', hex[*p >> 4], hex[*p & 15] };
        if (token_char((char)*p) && *p != '%')
            put(b, p, 1);
        else
            put(b, e, 3);
    }
    puts_(b, "\nContent-Transfer-Encoding: base64\n\n");
    put_base64(b, a->data, a->len);
}

/* ------------------------------------------------------------ public */

static bool msgid_ok(const char *id)
{
    if (!*id || strlen(id) > 250)
        return false;
    for (const char *p = id; *p; p++)
        if (*p <= ' ' || *p > '~' || *p == '<' || *p == '>')
            return false;
    return true;
}

static qm_err check(const qm_compose *c)
{
    if (!c->from || !qm_address_valid(c->from) || (c->n_to + c->n_cc) == 0 ||
        strlen(c->subject ? c->subject : "") > QM_COMPOSE_MAX_SUBJECT ||
        (c->in_reply_to && !msgid_ok(c->in_reply_to)))
        return QM_E_USAGE;
    for (size_t i = 0; i < c->n_to; i++)
        if (!qm_address_valid(c->to[i]))
            return QM_E_USAGE;
    for (size_t i = 0; i < c->n_cc; i++)
        if (!qm_address_valid(c->cc[i]))
            return QM_E_USAGE;
    return QM_OK;
}

qm_err qm_compose_build(const qm_compose *c, uint8_t **out, size_t *out_len)
{
    cbuf b = {0};
    char boundary[48], msgid[33];
    qm_err rc = check(c);
    if (rc != QM_OK)
        return rc;
    random_hex(msgid, 16);
    snprintf(boundary, sizeof boundary, "=_qumail_");
    random_hex(boundary + 9, 16);
    puts_(&b, "From: ");
    puts_(&b, c->from);
    puts_(&b, "\n");
    put_addresses(&b, "To: ", c->to, c->n_to);
    put_addresses(&b, "Cc: ", c->cc, c->n_cc);
    put_subject(&b, c->subject ? c->subject : "");
    put_date(&b);
    puts_(&b, "Message-ID: <");
    puts_(&b, msgid);
    puts_(&b, "@");
    puts_(&b, strchr(c->from, '@') + 1);
    puts_(&b, ">\n");
    if (c->in_reply_to) {
        puts_(&b, "In-Reply-To: <");
        puts_(&b, c->in_reply_to);
        puts_(&b, ">\nReferences: <");
        puts_(&b, c->in_reply_to);
        puts_(&b, ">\n");
    }
    puts_(&b, "MIME-Version: 1.0\n");
    if (c->n_attachments == 0) {
        put_text_part(&b, c->text, c->text_len);
    } else {
        puts_(&b, "Content-Type: multipart/mixed; boundary=\"");
        puts_(&b, boundary);
        puts_(&b, "\"\n\n");
        for (size_t i = 0; i <= c->n_attachments; i++) {
            puts_(&b, "--");
            puts_(&b, boundary);
            puts_(&b, "\n");
            if (i == 0)
                put_text_part(&b, c->text, c->text_len);
            else
                put_attachment(&b, &c->attachments[i - 1], i - 1);
        }
        puts_(&b, "--");
        puts_(&b, boundary);
        puts_(&b, "--\n");
    }
    if (b.oom) {
        if (b.p)
            secret_wipe(b.p, b.cap);
        free(b.p);
        return QM_E_NOMEM;
    }
    *out = b.p;
    *out_len = b.len;
    return QM_OK;
}
