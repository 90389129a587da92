/* SPDX-License-Identifier: Apache-2.0 */
/*
 * secret.h - memory for key material.
 *
 * A secret_buf is one contiguous allocation that is locked in RAM (mlock, so
 * it is never swapped), excluded from core dumps (MADV_DONTDUMP where the
 * allocation is page-aligned) and zeroed before it is released.  Allocate one
 * per key container, not one per key: locked memory is scarce (`ulimit -l` is
 * 8 MiB here), so a failed lock is logged once as a warning and the buffer is
 * still used.
 */
#ifndef QC_SECRET_H
#define QC_SECRET_H

#include <stddef.h>
#include <stdint.h>

typedef struct secret_buf {
    uint8_t *data;
    size_t len;    /* bytes in use */
    size_t cap;    /* bytes allocated */
} secret_buf;

/* Allocate cap zeroed bytes; returns 0, or -1 when out of memory. */
int secret_alloc(secret_buf *sb, size_t cap);

/* Zero, unlock and free; sb becomes empty.  Safe on an empty buffer. */
void secret_free(secret_buf *sb);

/* Zero a region the compiler must not optimise away (wraps sodium_memzero). */
void secret_wipe(void *p, size_t n);

/* Constant-time comparison; 0 when equal. */
int secret_cmp(const void *a, const void *b, size_t n);

/* Fill with bytes from the OS CSPRNG. */
void secret_random(void *p, size_t n);

/* Process-wide hardening: no core dumps of this process (RLIMIT_CORE 0 and
 * PR_SET_DUMPABLE 0), sodium_init().  Returns 0 or -1. */
int secret_process_init(void);

#endif
