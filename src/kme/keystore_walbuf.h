/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keystore_walbuf.h - a SQLite VFS shim that coalesces the key store's
 * WAL writes into one write() per transaction (keystore_walbuf.c).
 */
#ifndef QC_KME_KEYSTORE_WALBUF_H
#define QC_KME_KEYSTORE_WALBUF_H

/* The name to pass to sqlite3_open_v2 as zVfs. */
#define WALBUF_VFS_NAME "qc-walbuf"

/* Register the VFS (once per process; later calls return the first
 * result): SQLITE_OK or an SQLite error code. */
int walbuf_register(void);

#endif
