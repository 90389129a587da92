/* SPDX-License-Identifier: Apache-2.0 */
/*
 * http_answer.c - the HTTP/1.1 answer reader, pure (see http_answer.h).
 *
 * Strict where ambiguity could let a hostile server frame one body two
 * ways (two Content-Length fields, Content-Length with chunked, a
 * Transfer-Encoding other than chunked, obsolete line folding, white space
 * before a colon), tolerant elsewhere (bare LF line ends, unknown fields).
 */
#include "common/http_answer.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

size_t http_answer_head_end(const char *p, size_t n, size_t from)
{
    if (n >= 1 && p[0] == '\n')
        return 1;
    if (n >= 2 && p[0] == '\r' && p[1] == '\n')
        return 2;
    for (size_t i = from; i + 1 < n; i++) {
        if (p[i] != '\n')
            continue;
        if (p[i + 1] == '\n')
            return i + 2;
        if (p[i + 1] == '\r' && i + 2 < n && p[i + 2] == '\n')
            return i + 3;
    }
    return 0;
}

/* Next line of p[0..end) from *at (without CR LF); false at the end. */
static bool next_line(const char *p, size_t end, size_t *at, const char **line,
                      size_t *len)
{
    if (*at >= end)
        return false;
    const char *s = p + *at, *nl = memchr(s, '\n', end - *at);
    size_t l = nl ? (size_t)(nl - s) : end - *at;
    *at += l + (nl != NULL);
    if (l > 0 && s[l - 1] == '\r')
        l--;
    *line = s;
    *len = l;
    return true;
}

/* "HTTP/1.x NNN[ reason]" */
static bool parse_status_line(const char *l, size_t n, http_answer_head *f)
{
    if (n < 12 || memcmp(l, "HTTP/1.", 7) != 0 || (l[7] != '0' && l[7] != '1') ||
        l[8] != ' ' || (n > 12 && l[12] != ' '))
        return false;
    for (int i = 9; i < 12; i++)
        if (l[i] < '0' || l[i] > '9')
            return false;
    f->minor = l[7] - '0';
    f->status = (l[9] - '0') * 100 + (l[10] - '0') * 10 + (l[11] - '0');
    return f->status >= 100;
}

static bool value_is(const char *v, size_t n, const char *word)
{
    return strlen(word) == n && strncasecmp(v, word, n) == 0;
}

/* Connection: a comma-separated token list. */
static void parse_connection(const char *v, size_t n, http_answer_head *f)
{
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && v[j] != ',')
            j++;
        size_t a = i, b = j;
        while (a < b && (v[a] == ' ' || v[a] == '\t'))
            a++;
        while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t'))
            b--;
        if (value_is(v + a, b - a, "close"))
            f->close = true;
        else if (value_is(v + a, b - a, "keep-alive"))
            f->keep_alive = true;
        i = j + 1;
    }
}

static bool parse_length(const char *v, size_t n, uint64_t *out)
{
    uint64_t x = 0;
    if (n == 0 || n > 19)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return false;
        x = x * 10 + (uint64_t)(v[i] - '0');
    }
    *out = x;
    return true;
}

static void set_content_type(http_answer_head *f, const char *v, size_t vl)
{
    /* an overlong value must not be cut into something acceptable */
    if (vl >= sizeof f->content_type)
        snprintf(f->content_type, sizeof f->content_type, "(too long)");
    else
        snprintf(f->content_type, sizeof f->content_type, "%.*s", (int)vl, v);
    f->has_content_type = true;
}

/* One header field; the names we act on. */
static http_answer_code header_field(const char *l, size_t n, http_answer_head *f,
                                     const char **why)
{
    const char *colon = memchr(l, ':', n);
    *why = NULL;
    if (l[0] == ' ' || l[0] == '\t')
        *why = "answer header uses line folding";
    else if (colon == NULL || colon == l || colon[-1] == ' ' || colon[-1] == '\t')
        *why = "malformed header line in the answer";
    if (*why)
        return HTTP_ANSWER_MALFORMED;
    size_t nl = (size_t)(colon - l), a = nl + 1, b = n;
    while (a < b && (l[a] == ' ' || l[a] == '\t'))
        a++;
    while (b > a && (l[b - 1] == ' ' || l[b - 1] == '\t'))
        b--;
    const char *v = l + a;
    size_t vl = b - a;
    if (value_is(l, nl, "content-length")) {
        if (f->has_len)
            *why = "answer has two Content-Length fields";
        else if (!parse_length(v, vl, &f->len))
            *why = "answer has an invalid Content-Length";
        f->has_len = true;
    } else if (value_is(l, nl, "transfer-encoding")) {
        if (f->chunked || !value_is(v, vl, "chunked"))
            *why = "answer has a Transfer-Encoding other than chunked";
        f->chunked = true;
    } else if (value_is(l, nl, "connection")) {
        parse_connection(v, vl, f);
    } else if (value_is(l, nl, "content-type")) {
        set_content_type(f, v, vl);
    }
    return *why ? HTTP_ANSWER_MALFORMED : HTTP_ANSWER_OK;
}

http_answer_code http_answer_parse_head(const char *p, size_t len,
                                        http_answer_head *f, const char **why)
{
    const char *l;
    size_t at = 0, n;
    *f = (http_answer_head){0};
    *why = NULL;
    if (!next_line(p, len, &at, &l, &n) || !parse_status_line(l, n, f)) {
        *why = "the answer is not HTTP/1.x";
        return HTTP_ANSWER_NOT_HTTP;
    }
    while (next_line(p, len, &at, &l, &n) && n > 0) {
        http_answer_code rc = header_field(l, n, f, why);
        if (rc != HTTP_ANSWER_OK)
            return rc;
    }
    if (f->chunked && f->has_len) {
        *why = "answer has both Content-Length and Transfer-Encoding";
        return HTTP_ANSWER_MALFORMED;
    }
    return HTTP_ANSWER_OK;
}

bool http_answer_chunk_size(const char *l, size_t n, uint64_t *size)
{
    uint64_t x = 0;
    size_t i = 0;
    for (; i < n; i++) {
        int d = (l[i] >= '0' && l[i] <= '9') ? l[i] - '0'
              : (l[i] >= 'a' && l[i] <= 'f') ? l[i] - 'a' + 10
              : (l[i] >= 'A' && l[i] <= 'F') ? l[i] - 'A' + 10 : -1;
        if (d < 0)
            break;
        if (i >= 15)
            return false;
        x = x * 16 + (uint64_t)d;
    }
    if (i == 0)
        return false;
    while (i < n && (l[i] == ' ' || l[i] == '\t'))
        i++;
    if (i < n && l[i] != ';')
        return false;
    *size = x;
    return true;
}
