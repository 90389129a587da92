/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keystore_walbuf.c - a SQLite VFS shim over the default VFS that gathers
 * the writes to the key store's write-ahead log and hands them to the OS in
 * one write() per transaction.
 *
 * Why: SQLite appends each WAL frame with two pwrite() calls (its 24-byte
 * header, then the page).  The key store uses 1 KiB pages (small commits
 * for 256-bit keys), so a transaction that moves 100 KiB of key material
 * -- a QuMail Level 1 message -- makes some 250 frames and 500 system
 * calls, and half of a KME's CPU time was the kernel taking them.
 *
 * How it stays as durable as before (invariant I4): only files opened as a
 * WAL are buffered.  The buffer is written out when the frame that commits
 * a transaction is complete (its header's "database size after commit"
 * field is non-zero), so every committed frame is in the OS before SQLite's
 * COMMIT returns, exactly as without the shim; kill -9 loses nothing that
 * was acknowledged.  Frames of a transaction still open may sit in the
 * buffer; they are written before anything else touches the file (read,
 * sync, truncate, size, close, file control) and whenever the next write
 * does not continue the buffer.  The key store's own fdatasync of the WAL
 * (full sync mode) runs after COMMIT, so it covers the same bytes.
 *
 * The buffer holds page images, key material among them: it is locked in
 * memory and wiped after each write-out (common/secret.h).
 */
#include "kme/keystore_walbuf.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "common/secret.h"

#define WAL_FRAME_HEADER 24          /* SQLite's WAL frame header size */
/* Larger transactions go out in pieces.  Below 128 KiB: the unix VFS
 * masks a write's length to 17 bits (seekAndWriteFd), so it must never be
 * asked for more in one call. */
#define WALBUF_BYTES (126 * 1024)

typedef struct walbuf_file {
    sqlite3_file base;               /* must come first */
    sqlite3_file *real;              /* the default VFS's file, after us */
    secret_buf buf;
    sqlite3_int64 buf_off;           /* file offset of buf.data[0] */
    size_t buf_len;
    bool commit_pending;             /* the last header buffered was a commit's */
} walbuf_file;

static sqlite3_vfs walbuf_vfs;
static sqlite3_vfs *real_vfs;

static walbuf_file *wf(sqlite3_file *f)
{
    return (walbuf_file *)f;
}

/* Write out and wipe the buffer. */
static int flush(walbuf_file *f)
{
    if (f->buf_len == 0)
        return SQLITE_OK;
    int rc = f->real->pMethods->xWrite(f->real, f->buf.data, (int)f->buf_len, f->buf_off);
    secret_wipe(f->buf.data, f->buf_len);
    f->buf_len = 0;
    f->commit_pending = false;
    return rc;
}

static int wb_close(sqlite3_file *file)
{
    walbuf_file *f = wf(file);
    int rc = flush(f);
    int rc2 = f->real->pMethods ? f->real->pMethods->xClose(f->real) : SQLITE_OK;
    secret_free(&f->buf);
    return rc != SQLITE_OK ? rc : rc2;
}

static int wb_read(sqlite3_file *file, void *dst, int amt, sqlite3_int64 off)
{
    walbuf_file *f = wf(file);
    int rc = flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xRead(f->real, dst, amt, off);
}

/* Is this 24-byte write the header of a frame that commits? */
static bool is_commit_header(const void *src, int amt)
{
    const uint8_t *h = src;
    return amt == WAL_FRAME_HEADER && (h[4] | h[5] | h[6] | h[7]) != 0;
}

static int wb_write(sqlite3_file *file, const void *src, int amt, sqlite3_int64 off)
{
    walbuf_file *f = wf(file);
    int rc;
    bool continues = f->buf_len > 0 && off == f->buf_off + (sqlite3_int64)f->buf_len;
    if (f->buf_len > 0 && (!continues || f->buf_len + (size_t)amt > f->buf.cap)) {
        bool was_commit = f->commit_pending;
        if ((rc = flush(f)) != SQLITE_OK)
            return rc;
        f->commit_pending = was_commit && continues;
    }
    if ((size_t)amt > f->buf.cap) /* larger than the buffer: straight through */
        return f->real->pMethods->xWrite(f->real, src, amt, off);
    if (f->buf_len == 0)
        f->buf_off = off;
    memcpy(f->buf.data + f->buf_len, src, (size_t)amt);
    f->buf_len += (size_t)amt;
    if (amt == WAL_FRAME_HEADER) {
        f->commit_pending = is_commit_header(src, amt);
        return SQLITE_OK;
    }
    /* a header and its page in one write (pages are multiples of 512):
     * should SQLite ever write frames whole, commits still go out */
    if (amt > WAL_FRAME_HEADER && amt % 512 == WAL_FRAME_HEADER &&
        is_commit_header(src, WAL_FRAME_HEADER))
        f->commit_pending = true;
    /* the page of a commit frame completes the transaction: out it goes */
    return f->commit_pending ? flush(f) : SQLITE_OK;
}

static int wb_truncate(sqlite3_file *file, sqlite3_int64 size)
{
    walbuf_file *f = wf(file);
    int rc = flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xTruncate(f->real, size);
}

static int wb_sync(sqlite3_file *file, int flags)
{
    walbuf_file *f = wf(file);
    int rc = flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xSync(f->real, flags);
}

static int wb_file_size(sqlite3_file *file, sqlite3_int64 *size)
{
    walbuf_file *f = wf(file);
    int rc = flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xFileSize(f->real, size);
}

static int wb_lock(sqlite3_file *file, int level)
{
    return wf(file)->real->pMethods->xLock(wf(file)->real, level);
}

static int wb_unlock(sqlite3_file *file, int level)
{
    return wf(file)->real->pMethods->xUnlock(wf(file)->real, level);
}

static int wb_check_reserved(sqlite3_file *file, int *out)
{
    return wf(file)->real->pMethods->xCheckReservedLock(wf(file)->real, out);
}

static int wb_file_control(sqlite3_file *file, int op, void *arg)
{
    walbuf_file *f = wf(file);
    int rc = flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xFileControl(f->real, op, arg);
}

static int wb_sector_size(sqlite3_file *file)
{
    return wf(file)->real->pMethods->xSectorSize(wf(file)->real);
}

static int wb_device_characteristics(sqlite3_file *file)
{
    return wf(file)->real->pMethods->xDeviceCharacteristics(wf(file)->real);
}

/* Version 1: a WAL file has no shared memory and is never memory-mapped. */
static const sqlite3_io_methods walbuf_methods = {
    .iVersion = 1,
    .xClose = wb_close,
    .xRead = wb_read,
    .xWrite = wb_write,
    .xTruncate = wb_truncate,
    .xSync = wb_sync,
    .xFileSize = wb_file_size,
    .xLock = wb_lock,
    .xUnlock = wb_unlock,
    .xCheckReservedLock = wb_check_reserved,
    .xFileControl = wb_file_control,
    .xSectorSize = wb_sector_size,
    .xDeviceCharacteristics = wb_device_characteristics,
};

/* Every file but a WAL is the default VFS's own object, in place (our
 * szOsFile covers it); a WAL gets the shim with the real file behind it. */
static int wb_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *file, int flags,
                   int *out_flags)
{
    (void)vfs;
    if (!(flags & SQLITE_OPEN_WAL))
        return real_vfs->xOpen(real_vfs, name, file, flags, out_flags);
    walbuf_file *f = wf(file);
    memset(f, 0, sizeof *f);
    f->real = (sqlite3_file *)(f + 1);
    if (secret_alloc(&f->buf, WALBUF_BYTES) != 0)
        return SQLITE_NOMEM;
    int rc = real_vfs->xOpen(real_vfs, name, f->real, flags, out_flags);
    if (rc != SQLITE_OK) {
        secret_free(&f->buf);
        return rc;
    }
    f->base.pMethods = &walbuf_methods;
    return SQLITE_OK;
}

static int wb_delete(sqlite3_vfs *v, const char *name, int sync_dir)
{
    (void)v;
    return real_vfs->xDelete(real_vfs, name, sync_dir);
}

static int wb_access(sqlite3_vfs *v, const char *name, int flags, int *out)
{
    (void)v;
    return real_vfs->xAccess(real_vfs, name, flags, out);
}

static int wb_full_pathname(sqlite3_vfs *v, const char *name, int n, char *out)
{
    (void)v;
    return real_vfs->xFullPathname(real_vfs, name, n, out);
}

static int wb_randomness(sqlite3_vfs *v, int n, char *out)
{
    (void)v;
    return real_vfs->xRandomness(real_vfs, n, out);
}

static int wb_sleep(sqlite3_vfs *v, int us)
{
    (void)v;
    return real_vfs->xSleep(real_vfs, us);
}

static int wb_current_time(sqlite3_vfs *v, double *out)
{
    (void)v;
    return real_vfs->xCurrentTime(real_vfs, out);
}

static int wb_last_error(sqlite3_vfs *v, int n, char *out)
{
    (void)v;
    return real_vfs->xGetLastError ? real_vfs->xGetLastError(real_vfs, n, out) : 0;
}

static int wb_current_time_int64(sqlite3_vfs *v, sqlite3_int64 *out)
{
    (void)v;
    return real_vfs->xCurrentTimeInt64(real_vfs, out);
}

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int register_rc = SQLITE_ERROR;

static void do_register(void)
{
    real_vfs = sqlite3_vfs_find(NULL);
    if (real_vfs == NULL || real_vfs->iVersion < 2 || real_vfs->xCurrentTimeInt64 == NULL)
        return;
    int size = real_vfs->szOsFile;
    if ((int)sizeof(walbuf_file) + real_vfs->szOsFile > size)
        size = (int)sizeof(walbuf_file) + real_vfs->szOsFile;
    walbuf_vfs = (sqlite3_vfs){
        .iVersion = 2,
        .szOsFile = size,
        .mxPathname = real_vfs->mxPathname,
        .zName = WALBUF_VFS_NAME,
        .xOpen = wb_open,
        .xDelete = wb_delete,
        .xAccess = wb_access,
        .xFullPathname = wb_full_pathname,
        .xRandomness = wb_randomness,
        .xSleep = wb_sleep,
        .xCurrentTime = wb_current_time,
        .xGetLastError = wb_last_error,
        .xCurrentTimeInt64 = wb_current_time_int64,
    };
    register_rc = sqlite3_vfs_register(&walbuf_vfs, 0);
}

int walbuf_register(void)
{
    pthread_once(&once, do_register);
    return register_rc;
}
