/* SPDX-License-Identifier: Apache-2.0 */
/*
 * msgurl.c - the Read page's URLs and download names (msgurl.h).
 */
#include "web/msgurl.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool id_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == ',' || c == '=' || c == '+' || c == '-';
}

/* 0..999999 without sign or leading zero; -1 if not. */
static long part_number(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 6 || strspn(s, "0123456789") != n || (n > 1 && s[0] == '0'))
        return -1;
    return strtol(s, NULL, 10);
}

bool web_msg_url_parse(const char *path, web_msg_url *out)
{
    static const char prefix[] = "/message/";
    memset(out, 0, sizeof *out);
    if (strncmp(path, prefix, sizeof prefix - 1) != 0)
        return false;
    const char *id = path + sizeof prefix - 1, *slash = strchr(id, '/');
    size_t n = slash ? (size_t)(slash - id) : strlen(id);
    if (n == 0 || n > WEB_MSG_ID_MAX || id[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!id_byte((unsigned char)id[i]))
            return false;
    memcpy(out->id, id, n);
    out->id[n] = '\0';
    if (!slash)
        return true;
    const char *rest = slash + 1;
    if (strncmp(rest, "part/", 5) == 0)
        out->view = WEB_MSG_PART;
    else if (strncmp(rest, "html/", 5) == 0)
        out->view = WEB_MSG_HTML;
    else
        return false;
    long k = part_number(rest + 5);
    if (k < 0)
        return false;
    out->part = (size_t)k;
    return true;
}

static int hex_nibble(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

size_t web_url_unescape(char *s)
{
    size_t r = 0, w = 0;
    while (s[r]) {
        int hi = s[r] == '%' ? hex_nibble(s[r + 1]) : -1;
        int lo = hi >= 0 ? hex_nibble(s[r + 2]) : -1;
        if (lo >= 0 && (hi | lo) != 0) {
            s[w++] = (char)(hi << 4 | lo);
            r += 3;
        } else {
            s[w++] = s[r++];
        }
    }
    s[w] = '\0';
    return w;
}

void web_msg_id_encode(const char *id, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)id; *p && n + 4 < cap; p++) {
        bool keep = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                    (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-';
        if (keep) {
            out[n++] = (char)*p;
        } else {
            out[n++] = '%';
            out[n++] = hex[*p >> 4];
            out[n++] = hex[*p & 15];
        }
    }
    if (cap)
        out[n] = '\0';
}

/* Length of the valid UTF-8 sequence at s and its code point; 0 if none. */
static size_t utf8_char(const unsigned char *s, uint32_t *cp)
{
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    size_t n = s[0] >= 0xC2 && s[0] <= 0xDF ? 2 : s[0] >= 0xE0 && s[0] <= 0xEF ? 3
             : s[0] >= 0xF0 && s[0] <= 0xF4 ? 4 : 0;
    if (n == 0)
        return 0;
    uint32_t c = s[0] & (0x7F >> n);
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        c = c << 6 | (s[i] & 0x3F);
    }
    static const uint32_t least[] = { 0, 0, 0x80, 0x800, 0x10000 };
    if (c < least[n] || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
        return 0;
    *cp = c;
    return n;
}

/* Characters a file name must not carry: controls, and those that make a
 * name read differently from what it is (bidi overrides and isolates,
 * zero-width and direction marks, the BOM). */
static bool hostile_char(uint32_t c)
{
    return c < 0x20 || c == 0x7F || (c >= 0x80 && c <= 0x9F) || c == 0x061C ||
           (c >= 0x200B && c <= 0x200F) || (c >= 0x202A && c <= 0x202E) ||
           (c >= 0x2060 && c <= 0x2069) || c == 0xFEFF;
}

/* The name as it may be saved: no directory, no hostile character, no
 * leading dot or space, invalid UTF-8 dropped; "attachment" if empty. */
static void clean_name(const char *name, char *out, size_t cap)
{
    const char *base = name;
    for (const char *p = name; *p; p++)
        if (*p == '/' || *p == '\\')
            base = p + 1;
    size_t n = 0;
    const unsigned char *p = (const unsigned char *)base;
    while (*p) {
        uint32_t c;
        size_t k = utf8_char(p, &c);
        if (k == 0) {
            p++;
            continue;
        }
        bool lead = n == 0 && (c == '.' || c == ' ');
        if (!hostile_char(c) && !lead && n + k < cap) {
            memcpy(out + n, p, k);
            n += k;
        }
        p += k;
    }
    while (n > 0 && (out[n - 1] == ' ' || out[n - 1] == '.'))
        n--;
    out[n] = '\0';
    if (n == 0)
        snprintf(out, cap, "attachment");
}

void web_display_name(const char *name, char *out, size_t cap)
{
    clean_name(name ? name : "", out, cap);
}

void web_content_disposition(const char *name, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    char clean[256], ascii[256], enc[256 * 3 + 1];
    clean_name(name ? name : "", clean, sizeof clean);
    size_t a = 0, e = 0;
    for (const unsigned char *p = (const unsigned char *)clean; *p; p++) {
        bool printable = *p >= 0x20 && *p < 0x7F && *p != '"' && *p != '\\' && *p != '%';
        ascii[a++] = printable ? (char)*p : '_';
        bool attr = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                    (*p >= '0' && *p <= '9') || strchr("!#$&+-.^_`|~", *p);
        if (attr) {
            enc[e++] = (char)*p;
        } else {
            enc[e++] = '%';
            enc[e++] = hex[*p >> 4];
            enc[e++] = hex[*p & 15];
        }
    }
    ascii[a] = '\0';
    enc[e] = '\0';
    int w = snprintf(out, cap, "attachment; filename=\"%s\"; filename*=UTF-8''%s", ascii, enc);
    if (w < 0 || (size_t)w >= cap)
        snprintf(out, cap, "attachment; filename=\"attachment\"");
}
