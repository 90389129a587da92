/* SPDX-License-Identifier: Apache-2.0 */
/*
 * base64.h - strict RFC 4648 base64 (standard alphabet, '=' padding, no
 * whitespace, no line breaks), as ETSI GS QKD 014 requires for key material.
 *
 * Decoding is strict on purpose: general-purpose decoders accept whitespace,
 * missing padding or non-zero trailing bits, and a KME or SAE that accepts
 * those lets two different strings name the same key.  The encoder and the
 * decoder run in time independent of the data (branch-free arithmetic, no
 * secret-indexed table), since their input is key material.
 */
#ifndef QC_BASE64_H
#define QC_BASE64_H

#include <stddef.h>
#include <stdint.h>

/* Length of the encoding of n bytes, without the terminating NUL. */
size_t b64_encoded_len(size_t n);

/* Largest number of bytes that an encoding of len characters can hold. */
size_t b64_max_decoded_len(size_t len);

/* Encode n bytes into out, which must hold b64_encoded_len(n) + 1 bytes;
 * out is NUL-terminated. */
void b64_encode(const uint8_t *in, size_t n, char *out);

/* Decode exactly len characters of in into out (capacity outcap).  Returns 0
 * and sets *outlen, or -1 if the text is not canonical base64 (bad alphabet,
 * bad padding, non-zero unused bits, whitespace, length not a multiple of 4)
 * or does not fit. */
int b64_decode(const char *in, size_t len, uint8_t *out, size_t outcap,
               size_t *outlen);

#endif
