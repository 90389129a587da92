/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_imap.c - libFuzzer target for what a hostile IMAP server sends to
 * qumail (src/mail/imap_reader.c): response lines, literals, SEARCH
 * results, FETCH responses with and without our BODY[], and the tagged
 * status.
 *
 * Input layout: one selector byte (low 2 bits: 0 nothing collected, as for
 * EXAMINE; 1 FETCH of UID 42; 2 SEARCH; 3 FETCH of a 64-byte prefix of UID
 * 42; the rest: how many bytes arrive per read, 1..64), then the server's
 * byte stream, read as the answer to the command tagged "q1".  Contract checks: the reader never reads past what
 * the server sent; a kept body fits in the stream and, for a prefix, in
 * the prefix; SEARCH UIDs are non-zero; the detail is one printable line
 * and is set when the server refused.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mail/imap_reader.h"

typedef struct stream {
    const uint8_t *p;
    size_t n, step;
} stream;

static qm_err serve(void *ctx, uint8_t *dst, size_t room, size_t *got)
{
    stream *s = ctx;
    if (s->n == 0)
        return QM_E_TRANSPORT; /* the server closed the connection */
    size_t k = s->step < room ? s->step : room;
    k = k < s->n ? k : s->n;
    memcpy(dst, s->p, k);
    s->p += k;
    s->n -= k;
    *got = k;
    return QM_OK;
}

static void check_detail(const char *d)
{
    for (; *d; d++)
        if ((unsigned char)*d < 0x20 || (unsigned char)*d == 0x7f)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    int mode = data[0] & 3;
    stream s = { data + 1, size - 1, (size_t)(data[0] >> 2) + 1 };
    static imap_reader rd; /* 16 KiB buffer: not on the stack */
    char detail[256] = "";
    rd = (imap_reader){ .fill = serve, .ctx = &s, .shown = "imap://fuzz:143",
                        .detail = detail, .cap = sizeof detail };
    imap_result r = { 0 };
    if (mode == 1 || mode == 3)
        r.want_uid = "42";
    if (mode == 3)
        r.max_body = 64;
    bool refused = false;
    qm_err err = imap_read_responses(&rd, "q1", mode == 0 ? NULL : &r, &refused);
    check_detail(detail);
    if (err == QM_OK && refused && detail[0] == '\0')
        abort();
    if (r.have_body && (r.body == NULL || r.body_len > size || (r.max_body && r.body_len > r.max_body)))
        abort();
    if (!r.have_body && r.body != NULL)
        abort();
    for (size_t i = 0; i < r.n_uids; i++)
        if (r.uids[i] == 0)
            abort();
    free(r.body);
    free(r.uids);
    return 0;
}
