/* SPDX-License-Identifier: Apache-2.0 */
/*
 * prom.c - the Prometheus text exposition format 0.0.4 (prom.h).
 *
 * The format in short: "# HELP name text" and "# TYPE name type" before a
 * family's samples; a sample is `name{l1="v1",l2="v2"} value`; in label
 * values \, " and newline are written \\, \" and \n; in help texts \ and
 * newline.  A histogram's buckets are cumulative and end with le="+Inf",
 * which equals _count.
 */
#include "common/prom.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void prom_init(prom_writer *w)
{
    memset(w, 0, sizeof *w);
}

static void put(prom_writer *w, const char *s, size_t n)
{
    if (w->failed)
        return;
    if (w->len + n + 1 > w->cap) {
        size_t cap = w->cap ? w->cap : 4096;
        while (cap < w->len + n + 1)
            cap *= 2;
        char *grown = realloc(w->buf, cap);
        if (!grown) {
            w->failed = true;
            return;
        }
        w->buf = grown;
        w->cap = cap;
    }
    memcpy(w->buf + w->len, s, n);
    w->len += n;
    w->buf[w->len] = '\0';
}

static void puts_(prom_writer *w, const char *s)
{
    put(w, s, strlen(s));
}

/* s with the given characters escaped: backslash and newline always, the
 * double quote in label values. */
static void put_escaped(prom_writer *w, const char *s, bool quote)
{
    const char *run = s;
    for (; *s; s++) {
        const char *esc = *s == '\\' ? "\\\\" : *s == '\n' ? "\\n"
                        : (quote && *s == '"') ? "\\\"" : NULL;
        if (!esc)
            continue;
        put(w, run, (size_t)(s - run));
        puts_(w, esc);
        run = s + 1;
    }
    put(w, run, (size_t)(s - run));
}

void prom_label_value(prom_writer *w, const char *value)
{
    put_escaped(w, value ? value : "", true);
}

void prom_family(prom_writer *w, const char *name, prom_type type, const char *help)
{
    static const char *const types[] = { "counter", "gauge", "histogram" };
    w->family = name;
    puts_(w, "# HELP ");
    puts_(w, name);
    puts_(w, " ");
    put_escaped(w, help, false);
    puts_(w, "\n# TYPE ");
    puts_(w, name);
    puts_(w, " ");
    puts_(w, types[type]);
    puts_(w, "\n");
}

/* name{labels[,extra="value"]} */
static void series(prom_writer *w, const char *suffix, const prom_label *labels, size_t n,
                   const char *extra_name, const char *extra_value)
{
    puts_(w, w->family ? w->family : "unnamed");
    puts_(w, suffix);
    if (n == 0 && !extra_name)
        return;
    puts_(w, "{");
    for (size_t i = 0; i < n && i < PROM_MAX_LABELS; i++) {
        if (i)
            puts_(w, ",");
        puts_(w, labels[i].name);
        puts_(w, "=\"");
        prom_label_value(w, labels[i].value);
        puts_(w, "\"");
    }
    if (extra_name) {
        if (n)
            puts_(w, ",");
        puts_(w, extra_name);
        puts_(w, "=\"");
        puts_(w, extra_value);
        puts_(w, "\"");
    }
    puts_(w, "}");
}

static void value_u64(prom_writer *w, uint64_t v)
{
    char num[32];
    snprintf(num, sizeof num, " %" PRIu64 "\n", v);
    puts_(w, num);
}

static void format_double(char *out, size_t outlen, double v)
{
    if (isnan(v))
        snprintf(out, outlen, "NaN");
    else if (isinf(v))
        snprintf(out, outlen, v > 0 ? "+Inf" : "-Inf");
    else if (snprintf(out, outlen, "%.15g", v) > 0 && strtod(out, NULL) != v)
        snprintf(out, outlen, "%.17g", v); /* the shortest text that reads back exactly */
}

static void value_double(prom_writer *w, double v)
{
    char num[40];
    format_double(num, sizeof num, v);
    puts_(w, " ");
    puts_(w, num);
    puts_(w, "\n");
}

void prom_u64(prom_writer *w, const prom_label *labels, size_t n, uint64_t v)
{
    series(w, "", labels, n, NULL, NULL);
    value_u64(w, v);
}

void prom_double(prom_writer *w, const prom_label *labels, size_t n, double v)
{
    series(w, "", labels, n, NULL, NULL);
    value_double(w, v);
}

void prom_histogram(prom_writer *w, const prom_label *labels, size_t n, const double *bounds,
                    const uint64_t *counts, size_t nb, double sum)
{
    uint64_t cum = 0;
    char le[40];
    if (n > PROM_MAX_LABELS - 1)
        n = PROM_MAX_LABELS - 1; /* room for le */
    for (size_t i = 0; i < nb; i++) {
        cum += counts[i];
        format_double(le, sizeof le, bounds[i]);
        series(w, "_bucket", labels, n, "le", le);
        value_u64(w, cum);
    }
    cum += counts[nb];
    series(w, "_bucket", labels, n, "le", "+Inf");
    value_u64(w, cum);
    series(w, "_sum", labels, n, NULL, NULL);
    value_double(w, sum);
    series(w, "_count", labels, n, NULL, NULL);
    value_u64(w, cum);
}

char *prom_finish(prom_writer *w, size_t *len)
{
    if (!w->failed && !w->buf)
        put(w, "", 0);
    if (w->failed) {
        prom_free(w);
        return NULL;
    }
    char *out = w->buf;
    if (len)
        *len = w->len;
    memset(w, 0, sizeof *w);
    return out;
}

void prom_free(prom_writer *w)
{
    free(w->buf);
    memset(w, 0, sizeof *w);
}
