/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fdio.h - whole-buffer writes to a file descriptor, and a directory's fsync.
 *
 * write(2) may write less than asked or be interrupted; every file the
 * project writes (key files of qkd014, Maildir messages, the read store)
 * needs all bytes or a clear failure, so the loop lives here once.  A new
 * or removed name is durable only once its directory is synced: the Maildir,
 * the read store, the pending keys and the KME's WAL all need that.
 */
#ifndef COMMON_FDIO_H
#define COMMON_FDIO_H

#include <stddef.h>

/* Write all n bytes of p to fd, retrying after EINTR and short writes (in
 * chunks of at most 1 GiB).  0 on success, -1 with errno set otherwise. */
int fd_write_all(int fd, const void *p, size_t n);

/* fsync(2) the directory dir.  0 on success, -1 with errno set otherwise. */
int fsync_dir(const char *dir);

#endif
