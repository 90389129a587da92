/* SPDX-License-Identifier: Apache-2.0 */
/*
 * uuid.h - UUIDs.  ETSI GS QKD 014 names every key by a UUID; our key IDs
 * are random version-4 UUIDs from the OS CSPRNG, independent of the key
 * material.  Reservation IDs between our KMEs, which no SAE sees, are
 * time-ordered version-7 UUIDs (uuid_generate_v7).
 * Parsing accepts any version and either case (other KMEs issue non-v4 IDs)
 * and canonicalises to 16 bytes; formatting is always lower case.
 */
#ifndef QC_UUID_H
#define QC_UUID_H

#include <stddef.h>
#include <stdint.h>

#define UUID_STR_LEN 36 /* 8-4-4-4-12, without NUL */

void uuid_generate_v4(uint8_t out[16]);

/* A time-ordered version-7 UUID (RFC 9562): 48 bits of Unix milliseconds
 * (ms_now), then 74 random bits.  For IDs that a database indexes and that
 * no SAE sees (reservation IDs between our KMEs): consecutive IDs land at
 * the end of the B-tree instead of on a random page of it. */
void uuid_generate_v7(uint8_t out[16], uint64_t ms_now);

/* Parse exactly UUID_STR_LEN characters of 8-4-4-4-12 hex; 0 ok, -1 not a UUID.
 * s need not be NUL-terminated after the 36 characters only if len == 36. */
int uuid_parse(const char *s, size_t len, uint8_t out[16]);

/* Write the canonical lower-case form and a NUL into out[37]. */
void uuid_format(const uint8_t in[16], char out[UUID_STR_LEN + 1]);

#endif
