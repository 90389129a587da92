/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_link_block.c - libFuzzer target for what the link simulator sends
 * to a KME's [link] listener (src/kme/link_block.c): the binary block body
 * and the {"block_IDs": [...]} body of confirm and discard.
 *
 * Input layout: one selector byte (by its value mod 4: 0 block body,
 * 1 ID list, 2 block body that may carry a QBER report trailer, 3 a QBER
 * report alone), then the body.  Beyond "no crash, no leak, no read past the body" the target
 * checks the contract: an accepted block has owner 0 or 1 and a length of
 * 1..LINK_MAX_BLOCK equal to the bytes after the header; an accepted ID
 * list gives IDs that format back to 16 hex digits; a trailer lies inside
 * the body right after the key bytes; an accepted report has its numbers
 * in range and a printable reason; a refusal has a one-line reason and
 * returns nothing.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/blockid.h"
#include "kme/link_block.h"

static void check_reason(const char *why)
{
    if (why[0] == '\0' || strchr(why, '\n'))
        abort();
}

static void fuzz_block(const char *body, size_t len)
{
    uint64_t id = 0;
    int owner = -1;
    uint32_t blen = 0;
    char why[160] = "";
    if (link_parse_block(body, len, &id, &owner, &blen, why, sizeof why) != 0) {
        check_reason(why);
        return;
    }
    if ((owner != 0 && owner != 1) || blen == 0 || blen > LINK_MAX_BLOCK || len != LINK_HEADER + (size_t)blen)
        abort();
}

static void fuzz_ids(const char *body, size_t len)
{
    uint64_t *ids = (uint64_t *)1; /* must be overwritten on every path */
    size_t n = 99;
    char why[200] = "";
    if (link_parse_ids(body, len, &ids, &n, why, sizeof why) != 0) {
        check_reason(why);
        if (ids != NULL || n != 0)
            abort();
        return;
    }
    if ((n == 0) != (ids == NULL))
        abort();
    for (size_t i = 0; i < n; i++) {
        char hex[BLOCK_ID_STR_LEN + 1];
        uint64_t back;
        block_id_format(ids[i], hex);
        if (block_id_parse(hex, strlen(hex), &back) != 0 || back != ids[i])
            abort();
    }
    free(ids);
}

static void fuzz_block_ex(const char *body, size_t len)
{
    uint64_t id = 0;
    int owner = -1;
    uint32_t blen = 0;
    const char *rep = (const char *)1;
    size_t rlen = 99;
    char why[160] = "";
    if (link_parse_block_ex(body, len, &id, &owner, &blen, &rep, &rlen, why, sizeof why) != 0) {
        check_reason(why);
        if (rep != NULL || rlen != 0)
            abort();
        return;
    }
    if ((owner != 0 && owner != 1) || blen == 0 || blen > LINK_MAX_BLOCK)
        abort();
    if (rep ? rep != body + LINK_HEADER + blen + 2 || rlen != len - LINK_HEADER - blen - 2
            : rlen != 0 || len != LINK_HEADER + (size_t)blen)
        abort();
}

static void fuzz_report(const char *body, size_t len)
{
    link_report r;
    char why[200] = "";
    if (link_parse_report(body, len, &r, why, sizeof why) != 0) {
        check_reason(why);
        return;
    }
    if ((r.has_qber && !(r.qber >= 0 && r.qber <= 1)) || (r.has_bound && !(r.bound >= 0 && r.bound <= 1))
        || !(r.time_scale > 0 && isfinite(r.time_scale)) || r.secret_bits > (uint64_t)LINK_MAX_BLOCK * 8
        || (unsigned)r.state > LINK_REPORT_NO_KEY || strlen(r.reason) > LINK_REPORT_REASON_MAX)
        abort();
    for (const char *p = r.reason; *p; p++)
        if (*p < 0x20 || *p > 0x7e)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t len = size - 1;
    char *body = malloc(len ? len : 1); /* exact copy: ASan sees overreads */
    if (!body)
        return 0;
    memcpy(body, data + 1, len);
    switch (data[0] & 3) {
    case 0: fuzz_block(body, len); break;
    case 1: fuzz_ids(body, len); break;
    case 2: fuzz_block_ex(body, len); break;
    default: fuzz_report(body, len); break;
    }
    free(body);
    return 0;
}
