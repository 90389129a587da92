/* SPDX-License-Identifier: Apache-2.0 */
/*
 * blockid.h - the text form of a QKD link block ID: exactly 16 hex digits
 * (a 64-bit number; either case read, lower case written).  The link
 * simulator, the KME's link intake and the KME-to-KME channel all speak it
 * (docs/kme-pair.md).
 */
#ifndef QC_BLOCKID_H
#define QC_BLOCKID_H

#include <stddef.h>
#include <stdint.h>

#define BLOCK_ID_STR_LEN 16

/* Parse exactly len characters; 0, or -1 if not 16 hex digits. */
int block_id_parse(const char *s, size_t len, uint64_t *out);

/* Write the 16 lower-case hex digits and a NUL into out. */
void block_id_format(uint64_t id, char out[BLOCK_ID_STR_LEN + 1]);

#endif
