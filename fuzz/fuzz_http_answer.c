/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_http_answer.c - libFuzzer target for the HTTP/1.1 answer reader of
 * the HTTPS client (src/common/http_answer.c): every byte a hostile KME or
 * peer KME sends to libqkd014 or to a KME's peer client goes through it.
 *
 * Input layout: one byte giving how many bytes arrive per read (1..256),
 * then the answer stream.  The target reads it as httpsc.c does: the head
 * end is searched as bytes arrive (resuming where the last search stopped),
 * 1xx heads are skipped, the final head is parsed, and a chunked body's
 * size lines are read.  Contract checks: the resumed search finds the same
 * end as one search over everything; a parsed head has a status of
 * 100..999, HTTP/1.0 or 1.1, never both Content-Length and chunked, a
 * NUL-terminated Content-Type; a refusal has a message; a chunk size fits
 * 15 hex digits.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/http_answer.h"

/* The head end as httpsc.c finds it, `step` bytes arriving at a time. */
static size_t resumed_head_end(const char *p, size_t n, size_t step)
{
    size_t scanned = 0;
    for (size_t have = step < n ? step : n;; have = have + step < n ? have + step : n) {
        size_t e = http_answer_head_end(p, have, scanned > 2 ? scanned - 2 : 0);
        if (e != 0 || have == n)
            return e;
        scanned = have;
    }
}

static void check_head(const http_answer_head *f)
{
    if (f->status < 100 || f->status > 999 || (f->minor != 0 && f->minor != 1) ||
        (f->chunked && f->has_len) || !memchr(f->content_type, '\0', sizeof f->content_type) ||
        (!f->has_content_type && f->content_type[0]))
        abort();
}

/* Chunk-size lines of a chunked body, with the data between skipped. */
static void read_chunks(const char *p, size_t n)
{
    while (n > 0) {
        const char *nl = memchr(p, '\n', n < HTTP_ANSWER_CHUNK_LINE_MAX ? n : HTTP_ANSWER_CHUNK_LINE_MAX);
        if (!nl)
            return;
        size_t l = (size_t)(nl - p);
        uint64_t size;
        if (!http_answer_chunk_size(p, l > 0 && p[l - 1] == '\r' ? l - 1 : l, &size))
            return;
        if (size >> 60)
            abort();
        n -= l + 1;
        p += l + 1;
        if (size == 0 || size + 2 > n)
            return;
        n -= (size_t)size + 2;
        p += size + 2;
    }
}

static void read_answer(const char *p, size_t n, size_t step)
{
    for (int interim = 0; interim <= 16; interim++) {
        size_t e = resumed_head_end(p, n, step);
        if (e != http_answer_head_end(p, n, 0) || e > n)
            abort();
        if (e == 0 || e > HTTP_ANSWER_HEAD_MAX)
            return;
        http_answer_head f;
        const char *why = NULL;
        http_answer_code rc = http_answer_parse_head(p, e, &f, &why);
        if (rc != HTTP_ANSWER_OK) {
            if (!why || !*why)
                abort();
            return;
        }
        check_head(&f);
        p += e;
        n -= e;
        if (f.status >= 200) {
            if (f.chunked)
                read_chunks(p, n);
            return;
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t step = (size_t)data[0] + 1, n = size - 1;
    char *p = malloc(n ? n : 1); /* exact copy: ASan sees overreads */
    if (!p)
        return 0;
    memcpy(p, data + 1, n);
    read_answer(p, n, step);
    free(p);
    return 0;
}
