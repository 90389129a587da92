/* SPDX-License-Identifier: Apache-2.0 */
/*
 * blockid.c - text form of QKD link block IDs (see blockid.h).
 */
#include "common/blockid.h"

#include <inttypes.h>
#include <stdio.h>
#include "common/hex.h"

int block_id_parse(const char *s, size_t len, uint64_t *out)
{
    if (!s || len != BLOCK_ID_STR_LEN)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < BLOCK_ID_STR_LEN; i++) {
        int d = hex_value(s[i]);
        if (d < 0)
            return -1;
        v = v << 4 | (uint64_t)d;
    }
    *out = v;
    return 0;
}

void block_id_format(uint64_t id, char out[BLOCK_ID_STR_LEN + 1])
{
    snprintf(out, BLOCK_ID_STR_LEN + 1, "%016" PRIx64, id);
}
