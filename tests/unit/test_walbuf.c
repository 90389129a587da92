/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_walbuf.c - the key store's WAL write-combining VFS
 * (src/kme/keystore_walbuf.c): after every COMMIT, a copy of the database
 * and WAL files as the OS has them -- what a kill -9 right after COMMIT
 * would leave -- must open with the plain default VFS and hold exactly the
 * committed state, for transactions from one small row to many times the
 * shim's buffer, after rollbacks of large spilled transactions, and across
 * checkpoints that restart the WAL.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "kme/keystore_walbuf.h"

static char dir[256], db_path[300], snap_path[300];

static void copy_file(const char *from, const char *to)
{
    int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(out >= 0);
    if (in >= 0) {
        char buf[65536];
        ssize_t n;
        while ((n = read(in, buf, sizeof buf)) > 0)
            assert_int_equal(write(out, buf, (size_t)n), n);
        close(in);
    }
    close(out);
}

/* Copy db and WAL as they are in the OS now, open the copy with the
 * default VFS, return the number of rows and the sum of their lengths. */
static void snapshot_state(long *rows, long *bytes)
{
    char from[320], to[320];
    copy_file(db_path, snap_path);
    snprintf(from, sizeof from, "%s-wal", db_path);
    snprintf(to, sizeof to, "%s-wal", snap_path);
    copy_file(from, to);
    snprintf(to, sizeof to, "%s-shm", snap_path);
    unlink(to);
    sqlite3 *db;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open_v2(snap_path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*), coalesce(sum(length(b)), 0) FROM t",
                                        -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    *rows = (long)sqlite3_column_int64(st, 0);
    *bytes = (long)sqlite3_column_int64(st, 1);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static void exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("%s: %s", sql, msg);
}

static void insert(sqlite3 *db, size_t len)
{
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "INSERT INTO t(b) VALUES (?1)", -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_bind_zeroblob(st, 1, (int)len), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
}

static void test_committed_state_reaches_the_os(void **state)
{
    (void)state;
    sqlite3 *db;
    assert_int_equal(walbuf_register(), SQLITE_OK);
    assert_int_equal(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                                     WALBUF_VFS_NAME), SQLITE_OK);
    exec(db, "PRAGMA page_size=1024; PRAGMA locking_mode=EXCLUSIVE; PRAGMA journal_mode=WAL;"
             "PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=0; PRAGMA cache_size=-256;"
             "PRAGMA secure_delete=ON; CREATE TABLE t(id INTEGER PRIMARY KEY, b BLOB)");
    /* sizes around the shim's buffer (126 KiB) and SQLite's 128 KiB write
     * limit, tiny ones, and transactions that spill the 256 KiB cache */
    static const size_t sizes[] = { 1, 100, 1000, 100 * 1024, 126 * 1024, 128 * 1024,
                                    130 * 1024, 256 * 1024, 1 << 20, 3 << 20, 32, 7 };
    long rows = 0, bytes = 0, got_rows, got_bytes;
    unsigned seed = 1;
    for (int round = 0; round < 60; round++) {
        size_t len = sizes[(unsigned)round % (sizeof sizes / sizeof sizes[0])];
        int kind = (int)((seed = seed * 1103515245u + 12345u) >> 16) % 5;
        if (kind == 0) { /* a large transaction rolled back after spilling */
            exec(db, "BEGIN");
            insert(db, 2 << 20);
            insert(db, len);
            exec(db, "ROLLBACK");
        } else if (kind == 1) { /* several rows in one transaction */
            exec(db, "BEGIN");
            insert(db, len);
            insert(db, 5);
            exec(db, "COMMIT");
            rows += 2;
            bytes += (long)len + 5;
        } else if (kind == 2 && rows > 0) { /* delete (secure_delete writes) */
            exec(db, "DELETE FROM t WHERE id = (SELECT min(id) FROM t)");
            snapshot_state(&rows, &bytes); /* recount after the delete */
            continue;
        } else if (kind == 3) { /* a checkpoint that restarts the WAL */
            exec(db, "PRAGMA wal_checkpoint(TRUNCATE)");
            insert(db, len);
            rows++;
            bytes += (long)len;
        } else {
            insert(db, len);
            rows++;
            bytes += (long)len;
        }
        snapshot_state(&got_rows, &got_bytes);
        if (got_rows != rows || got_bytes != bytes)
            fail_msg("round %d: the OS has %ld rows / %ld bytes, %ld / %ld committed", round,
                     got_rows, got_bytes, rows, bytes);
    }
    /* and the live connection agrees */
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM t", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int64(st, 0), rows);
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "%s/walbuf.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(db_path, sizeof db_path, "%s/t.db", dir);
    snprintf(snap_path, sizeof snap_path, "%s/snap.db", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_committed_state_reaches_the_os),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
