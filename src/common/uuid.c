/* SPDX-License-Identifier: Apache-2.0 */
/*
 * uuid.c - random version-4 UUIDs for key IDs, time-ordered version-7 ones
 * for reservation IDs, and strict parsing and
 * formatting of the 8-4-4-4-12 text form.
 */
#include "common/uuid.h"

#include <stddef.h>

#include "common/hex.h"
#include "common/secret.h"

void uuid_generate_v4(uint8_t out[16])
{
    secret_random(out, 16);
    out[6] = (uint8_t)((out[6] & 0x0f) | 0x40); /* version 4 */
    out[8] = (uint8_t)((out[8] & 0x3f) | 0x80); /* RFC 4122 variant */
}

void uuid_generate_v7(uint8_t out[16], uint64_t ms_now)
{
    secret_random(out + 6, 10);
    for (int i = 5; i >= 0; i--, ms_now >>= 8)
        out[i] = (uint8_t)ms_now;
    out[6] = (uint8_t)((out[6] & 0x0f) | 0x70); /* version 7 */
    out[8] = (uint8_t)((out[8] & 0x3f) | 0x80); /* RFC 4122 variant */
}

static int is_hyphen_position(size_t i)
{
    return i == 8 || i == 13 || i == 18 || i == 23;
}

int uuid_parse(const char *s, size_t len, uint8_t out[16])
{
    uint8_t tmp[16];
    size_t nibble = 0;

    if (s == NULL || len != UUID_STR_LEN)
        return -1;
    for (size_t i = 0; i < UUID_STR_LEN; i++) {
        if (is_hyphen_position(i)) {
            if (s[i] != '-')
                return -1;
            continue;
        }
        int v = hex_value(s[i]);
        if (v < 0)
            return -1;
        if (nibble % 2 == 0)
            tmp[nibble / 2] = (uint8_t)(v << 4);
        else
            tmp[nibble / 2] |= (uint8_t)v;
        nibble++;
    }
    for (size_t i = 0; i < 16; i++)
        out[i] = tmp[i];
    return 0;
}

void uuid_format(const uint8_t in[16], char out[UUID_STR_LEN + 1])
{
    static const char digits[] = "0123456789abcdef";
    size_t pos = 0;

    for (size_t i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[pos++] = '-';
        out[pos++] = digits[in[i] >> 4];
        out[pos++] = digits[in[i] & 0x0f];
    }
    out[pos] = '\0';
}
