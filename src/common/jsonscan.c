/* SPDX-License-Identifier: Apache-2.0 */
/*
 * jsonscan.c - strict in-place JSON validation and a cursor over valid
 * documents (see jsonscan.h for why libqkd014 does not use jansson for
 * Key containers).
 *
 * The validator is a recursive-descent parser of RFC 8259 with the
 * extra rules jansson applies when loading with JSON_REJECT_DUPLICATES;
 * fuzz/fuzz_jsonscan.c checks that both accept exactly the same
 * documents.  The cursor trusts that validation happened only for speed
 * (a string is skipped by looking for its closing quote), never for
 * memory safety: every read is bounded by the buffer's end.
 */
#include "common/jsonscan.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "common/hex.h"

/* ------------------------------------------------------------ validation */

typedef struct vstate {
    const char *start, *p, *end;
    const char *why;
    const char *at;
    int depth;
} vstate;

static bool verr(vstate *v, const char *at, const char *why)
{
    if (v->why == NULL) {
        v->why = why;
        v->at = at;
    }
    return false;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void vblank(vstate *v)
{
    while (v->p < v->end && is_blank(*v->p))
        v->p++;
}

/* Four hex digits at p (bounds checked by the caller); -1 if not. */
static long hex4(const char *p)
{
    long u = 0;
    for (int i = 0; i < 4; i++) {
        int h = hex_value(p[i]);
        if (h < 0)
            return -1;
        u = u * 16 + h;
    }
    return u;
}

/* Length of the valid UTF-8 sequence of a non-ASCII lead byte at p, or 0
 * (overlong forms, surrogates and code points above U+10FFFF are invalid). */
static size_t utf8_len(const unsigned char *p, const unsigned char *end)
{
    unsigned char c = p[0];
    size_t n;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else
        return 0;
    if ((size_t)(end - p) < n || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xBF)
            return 0;
    return n;
}

/* One escape after the backslash at p; returns the bytes it spans, or 0. */
static size_t vescape(vstate *v, const char *p)
{
    if (p + 1 >= v->end)
        return verr(v, p, "unterminated string"), 0;
    switch (p[1]) {
    case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
        return 2;
    case 'u':
        break;
    default:
        return verr(v, p, "invalid escape"), 0;
    }
    long u = v->end - p >= 6 ? hex4(p + 2) : -1;
    if (u < 0)
        return verr(v, p, "invalid \\u escape"), 0;
    if (u == 0)
        return verr(v, p, "\\u0000 is not allowed"), 0;
    if (u >= 0xDC00 && u <= 0xDFFF)
        return verr(v, p, "invalid Unicode escape (lone low surrogate)"), 0;
    if (u < 0xD800 || u > 0xDBFF)
        return 6;
    long lo = (v->end - p >= 12 && p[6] == '\\' && p[7] == 'u') ? hex4(p + 8) : -1;
    if (lo < 0xDC00 || lo > 0xDFFF)
        return verr(v, p, "invalid Unicode escape (lone high surrogate)"), 0;
    return 12;
}

/* Might any of the 8 bytes at p be special inside a string (a control
 * character, '"', '\\' or a non-ASCII byte)?  Word-at-a-time tests of the
 * "has a zero byte" kind: never a false "no", sometimes a false "yes",
 * which the byte loop then sorts out. */
static bool special8(const char *p)
{
    const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
    uint64_t x, q, b;
    memcpy(&x, p, 8);
    q = x ^ (ones * '"');
    b = x ^ (ones * '\\');
    return ((((x - ones * 0x20) & ~x) | ((q - ones) & ~q) | ((b - ones) & ~b) | x) & high) != 0;
}

static bool vstring(vstate *v, js_str *out)
{
    const char *open = v->p++;
    bool escaped = false;
    for (;;) {
        /* plain ASCII eight bytes at a time: key text is all of it */
        while (v->end - v->p >= 8 && !special8(v->p))
            v->p += 8;
        while (v->p < v->end) {
            unsigned char c = (unsigned char)*v->p;
            if (c < 0x20 || c == '"' || c == '\\' || c >= 0x80)
                break;
            v->p++;
        }
        if (v->p >= v->end)
            return verr(v, open, "unterminated string");
        unsigned char c = (unsigned char)*v->p;
        if (c == '"')
            break;
        size_t n;
        if (c == '\\') {
            escaped = true;
            n = vescape(v, v->p);
        } else if (c < 0x20) {
            return verr(v, v->p, "control character in string");
        } else {
            n = utf8_len((const unsigned char *)v->p, (const unsigned char *)v->end);
            if (n == 0)
                verr(v, v->p, "invalid UTF-8");
        }
        if (n == 0)
            return false;
        v->p += n;
    }
    if (out != NULL) {
        out->raw = open + 1;
        out->len = (size_t)(v->p - open - 1);
        out->escaped = escaped;
    }
    v->p++;
    return true;
}

static size_t digits(const char *p, const char *end)
{
    const char *q = p;
    while (q < end && *q >= '0' && *q <= '9')
        q++;
    return (size_t)(q - p);
}

/* A number must also convert: integers within int64, reals finite. */
static bool vnumber_fits(vstate *v, const char *from, size_t len, bool real)
{
    char small[64], *buf = len < sizeof small ? small : malloc(len + 1);
    if (buf == NULL)
        return verr(v, from, "out of memory");
    memcpy(buf, from, len);
    buf[len] = '\0';
    errno = 0;
    if (real)
        (void)strtod(buf, NULL);
    else
        (void)strtoll(buf, NULL, 10);
    /* strtod sets ERANGE on underflow too; only overflow is an error */
    bool ok = errno != ERANGE;
    if (!ok && real) {
        double d = strtod(buf, NULL);
        ok = d < 1.0 && d > -1.0;
    }
    if (buf != small)
        free(buf);
    return ok ? true : verr(v, from, real ? "real number overflow" : "integer too big");
}

static bool vnumber(vstate *v)
{
    const char *from = v->p, *p = v->p;
    bool real = false;
    if (p < v->end && *p == '-')
        p++;
    size_t n = digits(p, v->end);
    if (n == 0 || (p[0] == '0' && n > 1))
        return verr(v, from, "invalid number");
    p += n;
    if (p < v->end && *p == '.') {
        real = true;
        if ((n = digits(++p, v->end)) == 0)
            return verr(v, from, "invalid number");
        p += n;
    }
    if (p < v->end && (*p == 'e' || *p == 'E')) {
        real = true;
        p++;
        if (p < v->end && (*p == '+' || *p == '-'))
            p++;
        if ((n = digits(p, v->end)) == 0)
            return verr(v, from, "invalid number");
        p += n;
    }
    v->p = p;
    return vnumber_fits(v, from, (size_t)(p - from), real);
}

static bool vliteral(vstate *v, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(v->end - v->p) < n || memcmp(v->p, lit, n) != 0)
        return verr(v, v->p, "invalid token");
    v->p += n;
    return true;
}

/* ---- duplicate member names -------------------------------------------- */

typedef struct name_list {
    js_str small[8];
    js_str *items;
    size_t n, cap;
} name_list;

static bool names_add(name_list *l, const js_str *s)
{
    if (l->items == NULL) {
        l->items = l->small;
        l->cap = sizeof l->small / sizeof l->small[0];
    }
    if (l->n == l->cap) {
        js_str *bigger = malloc(2 * l->cap * sizeof *bigger);
        if (bigger == NULL)
            return false;
        memcpy(bigger, l->items, l->n * sizeof *bigger);
        if (l->items != l->small)
            free(l->items);
        l->items = bigger;
        l->cap *= 2;
    }
    l->items[l->n++] = *s;
    return true;
}

static void names_free(name_list *l)
{
    if (l->items != l->small)
        free(l->items);
}

/* Decoded comparison of two names (either may be escaped). */
static int name_cmp(const js_str *a, const js_str *b)
{
    if (!a->escaped && !b->escaped) {
        size_t n = a->len < b->len ? a->len : b->len;
        int c = memcmp(a->raw, b->raw, n);
        return c != 0 ? c : (a->len > b->len) - (a->len < b->len);
    }
    char sa[256], sb[256];
    char *da = a->len <= sizeof sa ? sa : malloc(a->len);
    char *db = b->len <= sizeof sb ? sb : malloc(b->len);
    int c = 0;
    if (da != NULL && db != NULL) {
        size_t la = js_str_decode(a, da), lb = js_str_decode(b, db);
        size_t n = la < lb ? la : lb;
        c = memcmp(da, db, n);
        if (c == 0)
            c = (la > lb) - (la < lb);
    } else {
        c = 1; /* out of memory: cannot prove a duplicate */
    }
    if (da != sa)
        free(da);
    if (db != sb)
        free(db);
    return c;
}

static int name_qcmp(const void *a, const void *b)
{
    return name_cmp(a, b);
}

static bool names_unique(name_list *l)
{
    if (l->n <= 8) {
        for (size_t i = 1; i < l->n; i++)
            for (size_t j = 0; j < i; j++)
                if (name_cmp(&l->items[i], &l->items[j]) == 0)
                    return false;
        return true;
    }
    qsort(l->items, l->n, sizeof *l->items, name_qcmp);
    for (size_t i = 1; i < l->n; i++)
        if (name_cmp(&l->items[i], &l->items[i - 1]) == 0)
            return false;
    return true;
}

/* ---- values ------------------------------------------------------------- */

static bool vvalue(vstate *v);

static bool vobject(vstate *v)
{
    const char *open = v->p++;
    name_list names = { .n = 0 };
    bool ok = false;
    vblank(v);
    if (v->p < v->end && *v->p == '}') {
        v->p++;
        return true;
    }
    for (;;) {
        js_str name;
        vblank(v);
        if (v->p >= v->end || *v->p != '"') {
            verr(v, v->p, "string or '}' expected");
            break;
        }
        if (!vstring(v, &name))
            break;
        if (!names_add(&names, &name)) {
            verr(v, v->p, "out of memory");
            break;
        }
        vblank(v);
        if (v->p >= v->end || *v->p != ':') {
            verr(v, v->p, "':' expected");
            break;
        }
        v->p++;
        if (!vvalue(v))
            break;
        vblank(v);
        if (v->p < v->end && *v->p == ',') {
            v->p++;
            continue;
        }
        if (v->p < v->end && *v->p == '}') {
            v->p++;
            ok = names_unique(&names) || verr(v, open, "duplicate object key");
        } else {
            verr(v, v->p, "',' or '}' expected");
        }
        break;
    }
    names_free(&names);
    return ok;
}

static bool varray(vstate *v)
{
    v->p++;
    vblank(v);
    if (v->p < v->end && *v->p == ']') {
        v->p++;
        return true;
    }
    for (;;) {
        if (!vvalue(v))
            return false;
        vblank(v);
        if (v->p < v->end && *v->p == ',') {
            v->p++;
            continue;
        }
        if (v->p < v->end && *v->p == ']') {
            v->p++;
            return true;
        }
        return verr(v, v->p, "',' or ']' expected");
    }
}

static bool vvalue(vstate *v)
{
    vblank(v);
    if (v->p >= v->end)
        return verr(v, v->p, "unexpected end of input");
    bool ok;
    switch (*v->p) {
    case '{':
    case '[':
        if (++v->depth > JS_MAX_DEPTH)
            return verr(v, v->p, "maximum nesting depth exceeded");
        ok = *v->p == '{' ? vobject(v) : varray(v);
        v->depth--;
        return ok;
    case '"':
        return vstring(v, NULL);
    case 't':
        return vliteral(v, "true");
    case 'f':
        return vliteral(v, "false");
    case 'n':
        return vliteral(v, "null");
    default:
        if (*v->p == '-' || (*v->p >= '0' && *v->p <= '9'))
            return vnumber(v);
        return verr(v, v->p, "invalid token");
    }
}

static void position(const char *start, const char *at, js_error *e)
{
    e->line = 1;
    e->column = 1;
    for (const char *q = start; q < at; q++) {
        if (*q == '\n') {
            e->line++;
            e->column = 1;
        } else {
            e->column++;
        }
    }
}

bool js_validate(const char *buf, size_t len, js_error *e)
{
    vstate v = { .start = buf, .p = buf, .end = buf + len };
    bool ok;
    vblank(&v);
    if (v.p >= v.end || (*v.p != '{' && *v.p != '['))
        ok = verr(&v, v.p, "'[' or '{' expected");
    else if ((ok = vvalue(&v))) {
        vblank(&v);
        if (v.p != v.end)
            ok = verr(&v, v.p, "end of input expected");
    }
    if (!ok && e != NULL) {
        position(buf, v.at ? v.at : v.p, e);
        e->why = v.why ? v.why : "invalid JSON";
    }
    return ok;
}

/* ----------------------------------------------------------------- cursor */

void js_init(jscan *s, const char *buf, size_t len)
{
    s->p = buf;
    s->end = buf + len;
}

char js_peek(jscan *s)
{
    while (s->p < s->end && is_blank(*s->p))
        s->p++;
    return s->p < s->end ? *s->p : '\0';
}

static bool take(jscan *s, char c)
{
    if (js_peek(s) != c)
        return false;
    s->p++;
    return true;
}

bool js_object_begin(jscan *s, js_iter *it)
{
    it->started = false;
    return take(s, '{');
}

bool js_array_begin(jscan *s, js_iter *it)
{
    it->started = false;
    return take(s, '[');
}

/* Before the next item of a container closed by `close`: 1 if an item
 * follows, 0 after the close, -1 on anything else. */
static int next_item(jscan *s, js_iter *it, char close)
{
    if (take(s, close))
        return 0;
    if (it->started && !take(s, ','))
        return -1;
    it->started = true;
    return js_peek(s) != '\0' ? 1 : -1;
}

int js_member(jscan *s, js_iter *it, js_str *name)
{
    int r = next_item(s, it, '}');
    if (r != 1)
        return r;
    if (!js_string(s, name) || !take(s, ':'))
        return -1;
    return js_peek(s) != '\0' ? 1 : -1;
}

int js_element(jscan *s, js_iter *it)
{
    return next_item(s, it, ']');
}

bool js_string(jscan *s, js_str *out)
{
    if (!take(s, '"'))
        return false;
    const char *from = s->p;
    bool escaped = false;
    for (;;) {
        const char *q = memchr(s->p, '"', (size_t)(s->end - s->p));
        if (q == NULL)
            return false;
        /* the quote ends the string unless an odd run of backslashes
         * precedes it */
        size_t bs = 0;
        while (q - bs > from && q[-1 - (ptrdiff_t)bs] == '\\')
            bs++;
        if (bs != 0 || memchr(from, '\\', (size_t)(q - from)) != NULL)
            escaped = true;
        s->p = q + 1;
        if (bs % 2 == 0)
            break;
    }
    out->raw = from;
    out->len = (size_t)(s->p - 1 - from);
    out->escaped = escaped;
    return true;
}

bool js_int64(jscan *s, long long *out)
{
    char c = js_peek(s);
    if (c != '-' && (c < '0' || c > '9'))
        return false;
    const char *from = s->p;
    bool neg = *s->p == '-';
    if (neg)
        s->p++;
    unsigned long long v = 0, limit = neg ? 9223372036854775808ULL : 9223372036854775807ULL;
    const char *digits = s->p;
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9') {
        unsigned d = (unsigned)(*s->p - '0');
        if (v > (limit - d) / 10) {
            s->p = from;
            return false;
        }
        v = v * 10 + d;
        s->p++;
    }
    if (s->p == digits || (s->p < s->end && (*s->p == '.' || *s->p == 'e' || *s->p == 'E'))) {
        s->p = from;
        return false;
    }
    *out = neg ? (v == limit ? (-9223372036854775807LL - 1) : -(long long)v) : (long long)v;
    return true;
}

bool js_skip(jscan *s)
{
    js_iter it;
    js_str str;
    int r;
    switch (js_peek(s)) {
    case '"':
        return js_string(s, &str);
    case '{':
        js_object_begin(s, &it);
        while ((r = js_member(s, &it, &str)) == 1)
            if (!js_skip(s))
                return false;
        return r == 0;
    case '[':
        js_array_begin(s, &it);
        while ((r = js_element(s, &it)) == 1)
            if (!js_skip(s))
                return false;
        return r == 0;
    case '\0':
        return false;
    default: /* number or literal: up to the next delimiter */
        while (s->p < s->end && !is_blank(*s->p) && *s->p != ',' && *s->p != '}' &&
               *s->p != ']')
            s->p++;
        return true;
    }
}

/* ---------------------------------------------------------------- strings */

static size_t put_utf8(char *dst, unsigned long cp)
{
    if (cp < 0x80) {
        dst[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        dst[0] = (char)(0xC0 | (cp >> 6));
        dst[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        dst[0] = (char)(0xE0 | (cp >> 12));
        dst[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        dst[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    dst[0] = (char)(0xF0 | (cp >> 18));
    dst[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    dst[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    dst[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

size_t js_str_decode(const js_str *s, char *dst)
{
    const char *p = s->raw, *end = s->raw + s->len;
    size_t n = 0;
    if (!s->escaped) {
        memcpy(dst, p, s->len);
        return s->len;
    }
    while (p < end) {
        if (*p != '\\' || end - p < 2) {
            dst[n++] = *p++;
            continue;
        }
        char c = p[1];
        static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
        const char *k = c != '\0' ? strchr(from, c) : NULL;
        if (k != NULL) {
            dst[n++] = to[k - from];
            p += 2;
            continue;
        }
        long u = (c == 'u' && end - p >= 6) ? hex4(p + 2) : -1;
        if (u < 0) { /* not valid: copy as is (validation refused it) */
            dst[n++] = *p++;
            continue;
        }
        p += 6;
        unsigned long cp = (unsigned long)u;
        long lo = (u >= 0xD800 && u <= 0xDBFF && end - p >= 6 && p[0] == '\\' && p[1] == 'u')
                      ? hex4(p + 2) : -1;
        if (lo >= 0xDC00 && lo <= 0xDFFF) {
            cp = 0x10000 + (((unsigned long)u - 0xD800) << 10) + ((unsigned long)lo - 0xDC00);
            p += 6;
        }
        /* 6 escape bytes give at most 3 bytes, 12 give 4: never longer */
        n += put_utf8(dst + n, cp);
    }
    return n;
}

bool js_str_is(const js_str *s, const char *lit)
{
    size_t n = strlen(lit);
    if (!s->escaped)
        return s->len == n && memcmp(s->raw, lit, n) == 0;
    if (s->len > 256)
        return false; /* our literals are short; an escaped form is < 6x */
    char buf[256];
    size_t got = js_str_decode(s, buf);
    return got == n && memcmp(buf, lit, n) == 0;
}
