/* SPDX-License-Identifier: Apache-2.0 */
/*
 * prom.h - a writer of the Prometheus text exposition format 0.0.4, for
 * the admin listeners of qkd-kme and qkd-link (docs/operations.md).
 *
 * A family is opened with its HELP and TYPE lines (prom_family), then its
 * samples follow with up to PROM_MAX_LABELS labels each; label values are
 * escaped (backslash, double quote, newline) and help texts too (backslash,
 * newline), so that no value a peer or an operator chose can break the
 * text.  Histograms are written from per-bucket (not cumulative) counts:
 * the writer accumulates them, adds the +Inf bucket, _sum and _count.
 *
 * Like jsonw.h the writer never fails midway: an allocation failure sets
 * `failed` and prom_finish() returns NULL.  Pure: no I/O, fuzzed and
 * unit-tested (tests/unit/test_prom.c).
 */
#ifndef QC_PROM_H
#define QC_PROM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROM_MAX_LABELS 4

typedef enum { PROM_COUNTER, PROM_GAUGE, PROM_HISTOGRAM } prom_type;

typedef struct prom_label {
    const char *name;   /* [a-zA-Z_][a-zA-Z0-9_]*, chosen by the program */
    const char *value;  /* any text: escaped */
} prom_label;

typedef struct prom_writer {
    char *buf;
    size_t len, cap;
    bool failed;
    const char *family; /* the name given to the last prom_family */
} prom_writer;

void prom_init(prom_writer *w);
/* "# HELP name help\n# TYPE name type\n". */
void prom_family(prom_writer *w, const char *name, prom_type type, const char *help);
/* One sample of the open family: name{labels} value.  Integers print
 * exactly; doubles so that they read back exactly (NaN, +Inf, -Inf by
 * their names). */
void prom_u64(prom_writer *w, const prom_label *labels, size_t n, uint64_t v);
void prom_double(prom_writer *w, const prom_label *labels, size_t n, double v);
/* One histogram series of the open family: nb bucket upper bounds
 * (ascending, seconds or other base units) and their per-bucket counts,
 * plus counts[nb] for observations above the last bound; sum of all. */
void prom_histogram(prom_writer *w, const prom_label *labels, size_t n, const double *bounds,
                    const uint64_t *counts, size_t nb, double sum);
/* Escaped label value into the writer, alone (for tests and callers
 * writing their own lines). */
void prom_label_value(prom_writer *w, const char *value);
/* The text (NUL-terminated; the caller frees it) and its length, or NULL
 * after a failure. */
char *prom_finish(prom_writer *w, size_t *len);
void prom_free(prom_writer *w);

#endif
