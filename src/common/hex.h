/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hex.h - the value of one hexadecimal digit, for the parsers of UUIDs,
 * percent-encoding, JSON \u escapes and block IDs (one definition, so that
 * they agree on what a hex digit is).
 */
#ifndef QC_HEX_H
#define QC_HEX_H

/* 0..15, or -1 if c is not a hex digit (either case). */
static inline int hex_value(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

#endif
