/*
 * secret.c - locked, dump-excluded, zeroed-on-free buffers for key material,
 * and the process-wide hardening every program runs at start.
 *
 * secret_alloc() sits on the per-request hot path, so it is one
 * posix_memalign, one mlock and one madvise: no guard pages (sodium_malloc
 * would cost several mmap/mprotect calls per request).  Every buffer is
 * page-aligned and rounded up to whole pages so that no two buffers share a
 * page: mlock is per page and does not nest, and MADV_DONTDUMP needs page
 * boundaries.
 */
#include "common/secret.h"

#include <sodium.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/log.h"

static atomic_bool sodium_ready;
static atomic_bool mlock_warned;

/* sodium_init() is idempotent and thread-safe; the flag only saves its lock
 * on the hot path. */
static int ensure_sodium(void)
{
    if (atomic_load_explicit(&sodium_ready, memory_order_acquire))
        return 0;
    if (sodium_init() < 0)
        return -1;
    atomic_store_explicit(&sodium_ready, true, memory_order_release);
    return 0;
}

static size_t page_size(void)
{
    static atomic_size_t cached;
    size_t ps = atomic_load_explicit(&cached, memory_order_relaxed);
    if (ps == 0) {
        long v = sysconf(_SC_PAGESIZE);
        ps = v > 0 ? (size_t)v : 4096;
        atomic_store_explicit(&cached, ps, memory_order_relaxed);
    }
    return ps;
}

/* Bytes actually allocated for a request of cap bytes (at least one page). */
static size_t rounded_size(size_t cap)
{
    size_t ps = page_size();
    if (cap == 0)
        return ps;
    if (cap > SIZE_MAX - (ps - 1))
        return 0;
    return (cap + ps - 1) / ps * ps;
}

static void warn_mlock_once(size_t n)
{
    if (!atomic_exchange(&mlock_warned, true))
        log_warn("cannot lock %zu bytes of key memory in RAM (ulimit -l?); "
                 "key material may be swapped", n);
}

int secret_alloc(secret_buf *sb, size_t cap)
{
    void *p = NULL;
    size_t n = rounded_size(cap);

    memset(sb, 0, sizeof *sb);
    if (n == 0 || posix_memalign(&p, page_size(), n) != 0)
        return -1;
    memset(p, 0, n);
    if (mlock(p, n) != 0)
        warn_mlock_once(n);
#ifdef MADV_DONTDUMP
    /* best effort: core dumps are also disabled process-wide */
    (void)madvise(p, n, MADV_DONTDUMP);
#endif
    sb->data = p;
    sb->cap = cap;
    sb->len = 0;
    return 0;
}

void secret_free(secret_buf *sb)
{
    if (sb->data != NULL) {
        size_t n = rounded_size(sb->cap);
        sodium_memzero(sb->data, n);
#ifdef MADV_DODUMP
        /* the heap reuses this page for ordinary data after free */
        (void)madvise(sb->data, n, MADV_DODUMP);
#endif
        (void)munlock(sb->data, n);
        free(sb->data);
    }
    sb->data = NULL;
    sb->len = 0;
    sb->cap = 0;
}

void secret_wipe(void *p, size_t n)
{
    if (p != NULL && n > 0)
        sodium_memzero(p, n);
}

int secret_cmp(const void *a, const void *b, size_t n)
{
    return sodium_memcmp(a, b, n) == 0 ? 0 : -1;
}

void secret_random(void *p, size_t n)
{
    /* randombytes_buf initialises itself too; ensure_sodium makes the
     * choice of implementation happen once, thread-safely */
    (void)ensure_sodium();
    randombytes_buf(p, n);
}

int secret_process_init(void)
{
    const struct rlimit no_core = { 0, 0 };
    int rc = 0;

    if (ensure_sodium() != 0)
        rc = -1;
    if (setrlimit(RLIMIT_CORE, &no_core) != 0)
        rc = -1;
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
        rc = -1;
    return rc;
}
