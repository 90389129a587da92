/* SPDX-License-Identifier: Apache-2.0 */
/*
 * secret.c - locked, dump-excluded, zeroed-on-free buffers for key material,
 * and the process-wide hardening every program runs at start.
 *
 * Every buffer is page-aligned and rounded up to whole pages so that no two
 * buffers share a page: mlock is per page and does not nest, and
 * MADV_DONTDUMP needs page boundaries.  secret_alloc() sits on the
 * per-request hot path, and mlock + madvise + munlock cost about 10 us per
 * buffer (VMA split and merge), so freed buffers of up to CACHE_MAX_PAGES
 * pages are zeroed and kept, still locked, for reuse; the cache is bounded
 * by CACHE_MAX_BYTES so it stays well inside `ulimit -l`.  No guard pages:
 * sodium_malloc would cost several mmap/mprotect calls per request.
 */
#include "common/secret.h"

#include <pthread.h>
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

#define CACHE_MAX_PAGES 16              /* larger buffers are never cached */
#define CACHE_PER_SIZE  32
#define CACHE_MAX_BYTES (1024 * 1024)   /* locked memory kept in reserve */

/* Free, zeroed, locked blocks, one stack per size in pages. */
static struct {
    void *blocks[CACHE_PER_SIZE];
    size_t count;
} block_cache[CACHE_MAX_PAGES + 1];
static size_t cached_bytes;
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;

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

static void *cache_take(size_t n)
{
    size_t pages = n / page_size();
    void *p = NULL;

    if (pages > CACHE_MAX_PAGES)
        return NULL;
    pthread_mutex_lock(&cache_lock);
    if (block_cache[pages].count > 0) {
        p = block_cache[pages].blocks[--block_cache[pages].count];
        cached_bytes -= n;
    }
    pthread_mutex_unlock(&cache_lock);
    return p;
}

/* Keep a zeroed block for reuse; 0 when kept, -1 when the cache is full. */
static int cache_put(void *p, size_t n)
{
    size_t pages = n / page_size();
    int rc = -1;

    if (pages > CACHE_MAX_PAGES)
        return -1;
    pthread_mutex_lock(&cache_lock);
    if (block_cache[pages].count < CACHE_PER_SIZE
        && cached_bytes + n <= CACHE_MAX_BYTES) {
        block_cache[pages].blocks[block_cache[pages].count++] = p;
        cached_bytes += n;
        rc = 0;
    }
    pthread_mutex_unlock(&cache_lock);
    return rc;
}

/* A fresh zeroed block of n bytes (a page multiple), locked if possible. */
static void *fresh_block(size_t n)
{
    void *p = NULL;

    if (posix_memalign(&p, page_size(), n) != 0)
        return NULL;
    memset(p, 0, n);
    if (mlock(p, n) != 0)
        warn_mlock_once(n);
#ifdef MADV_DONTDUMP
    /* best effort: core dumps are also disabled process-wide */
    (void)madvise(p, n, MADV_DONTDUMP);
#endif
    return p;
}

static void release_block(void *p, size_t n)
{
#ifdef MADV_DODUMP
    /* the heap reuses these pages for ordinary data after free */
    (void)madvise(p, n, MADV_DODUMP);
#endif
    (void)munlock(p, n);
    free(p);
}

int secret_alloc(secret_buf *sb, size_t cap)
{
    size_t n = rounded_size(cap);

    memset(sb, 0, sizeof *sb);
    if (n == 0)
        return -1;
    void *p = cache_take(n);  /* cached blocks were zeroed when freed */
    if (p == NULL)
        p = fresh_block(n);
    if (p == NULL)
        return -1;
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
        if (cache_put(sb->data, n) != 0)
            release_block(sb->data, n);
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
