/*
 * blockid.c - text form of QKD link block IDs (see blockid.h).
 */
#include "common/blockid.h"

#include <inttypes.h>
#include <stdio.h>

static int hex_digit(char c)
{
    return c >= '0' && c <= '9' ? c - '0'
         : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

int block_id_parse(const char *s, size_t len, uint64_t *out)
{
    if (!s || len != BLOCK_ID_STR_LEN)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < BLOCK_ID_STR_LEN; i++) {
        int d = hex_digit(s[i]);
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
