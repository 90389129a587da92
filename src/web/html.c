/* SPDX-License-Identifier: Apache-2.0 */
/*
 * html.c - page buffers and HTML escaping (html.h).
 */
#include "web/html.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/secret.h"

#define HTML_MAX_PAGE (64u * 1024 * 1024)   /* no page of ours is larger */

static bool reserve(html_buf *b, size_t more)
{
    if (b->oom)
        return false;
    if (more <= b->cap - b->len)
        return true;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len < more) {
        if (cap > HTML_MAX_PAGE / 2) {
            b->oom = true;
            return false;
        }
        cap *= 2;
    }
    char *p = malloc(cap);
    if (!p) {
        b->oom = true;
        return false;
    }
    /* Not realloc: the old block held plaintext and is wiped before free. */
    if (b->p) {
        memcpy(p, b->p, b->len);
        secret_wipe(b->p, b->cap);
        free(b->p);
    }
    b->p = p;
    b->cap = cap;
    return true;
}

static void append(html_buf *b, const char *s, size_t n)
{
    if (reserve(b, n + 1)) {
        memcpy(b->p + b->len, s, n);
        b->len += n;
        b->p[b->len] = '\0';
    }
}

void html_bytes(html_buf *b, const void *p, size_t n)
{
    append(b, p, n);
}

void html_raw(html_buf *b, const char *s)
{
    append(b, s, strlen(s));
}

void html_rawf(html_buf *b, const char *fmt, ...)
{
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof small) {
        b->oom = true;   /* our formats are short: a longer one is a bug */
        return;
    }
    append(b, small, (size_t)n);
}

/* Length of the valid UTF-8 sequence at s (0 if none): no overlongs, no
 * surrogates, nothing past U+10FFFF. */
static size_t utf8_len(const unsigned char *s)
{
    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xC2 && s[0] <= 0xDF)
        return (s[1] & 0xC0) == 0x80 ? 2 : 0;
    if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        if ((s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80)
            return 0;
        if ((s[0] == 0xE0 && s[1] < 0xA0) || (s[0] == 0xED && s[1] > 0x9F))
            return 0;
        return 3;
    }
    if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        if ((s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80)
            return 0;
        if ((s[0] == 0xF0 && s[1] < 0x90) || (s[0] == 0xF4 && s[1] > 0x8F))
            return 0;
        return 4;
    }
    return 0;
}

void html_text(html_buf *b, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        const char *esc = NULL;
        switch (*p) {
        case '&': esc = "&amp;"; break;
        case '<': esc = "&lt;"; break;
        case '>': esc = "&gt;"; break;
        case '"': esc = "&quot;"; break;
        case '\'': esc = "&#39;"; break;
        default: break;
        }
        if (esc) {
            html_raw(b, esc);
            p++;
            continue;
        }
        size_t n = utf8_len(p);   /* stops at the NUL: it is not a continuation byte */
        if (n == 0 || (*p < 0x20 && *p != '\n' && *p != '\t') || *p == 0x7F) {
            html_raw(b, "\xEF\xBF\xBD");
            p++;
            continue;
        }
        append(b, (const char *)p, n);
        p += n;
    }
}

void html_begin(html_buf *b, const char *title, bool nav)
{
    html_raw(b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                "<meta name=\"viewport\" content=\"width=device-width\">"
                "<link rel=\"stylesheet\" href=\"/static/qumail.css\"><title>");
    html_text(b, title);
    html_raw(b, nav ? " - QuMail</title><script src=\"/static/keys.js\" defer></script>"
                      "</head><body>\n"
                    : " - QuMail</title></head><body>\n");
    if (nav)
        html_raw(b, "<nav aria-label=\"Main\"><a href=\"/\" aria-keyshortcuts=\"g i\">Inbox</a>"
                    "<a href=\"/compose\" aria-keyshortcuts=\"c\">Compose</a>"
                    "<a href=\"/keys\">Keys</a></nav>\n");
    html_raw(b, "<main>\n");
}

void html_end(html_buf *b)
{
    html_raw(b, "</main></body></html>\n");
}

void html_free(html_buf *b)
{
    if (b->p) {
        secret_wipe(b->p, b->cap);
        free(b->p);
    }
    memset(b, 0, sizeof *b);
}
