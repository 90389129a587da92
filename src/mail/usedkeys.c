/* SPDX-License-Identifier: Apache-2.0 */
/*
 * usedkeys.c - the used-key store of usedkeys.h: one SQLite table of key
 * IDs, written in WAL mode with synchronous=NORMAL: an ID recorded before
 * a plaintext was shown is still there after the process crashes; a power
 * loss may forget the last records, which costs no safety because the KME
 * has erased those keys (its "not found" reads as "key already used" too),
 * and saves an fsync on every message read.
 */
#include "mail/usedkeys.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/uuid.h"

struct qm_usedkeys {
    sqlite3 *db;
    sqlite3_stmt *find;
    sqlite3_stmt *insert;
    sqlite3_stmt *when;
};

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS used_keys ("
    " key_id TEXT PRIMARY KEY NOT NULL,"
    " master_sae_id TEXT NOT NULL,"
    " used_at INTEGER NOT NULL"
    ") WITHOUT ROWID";

/* Make the file with mode 0600 before SQLite opens it (SQLite would use
 * the umask); its -wal and -shm files take the same mode. */
static qm_err create_private(const char *path)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return QM_E_IO;
    close(fd);
    return QM_OK;
}

static qm_err exec(sqlite3 *db, const char *sql)
{
    return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? QM_OK : QM_E_IO;
}

/* journal_mode answers with the mode it got, which must be wal. */
static qm_err set_wal(sqlite3 *db)
{
    sqlite3_stmt *s = NULL;
    qm_err err = QM_E_IO;
    if (sqlite3_prepare_v2(db, "PRAGMA journal_mode=WAL", -1, &s, NULL) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW) {
        const unsigned char *mode = sqlite3_column_text(s, 0);
        if (mode != NULL && strcmp((const char *)mode, "wal") == 0)
            err = QM_OK;
    }
    sqlite3_finalize(s);
    return err;
}

static qm_err prepare(qm_usedkeys *u)
{
    if (sqlite3_prepare_v2(u->db, "SELECT 1 FROM used_keys WHERE key_id = ?1", -1,
                           &u->find, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(u->db,
                           "INSERT OR IGNORE INTO used_keys (key_id, master_sae_id, used_at)"
                           " VALUES (?1, ?2, ?3)", -1, &u->insert, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(u->db, "SELECT used_at FROM used_keys WHERE key_id = ?1", -1,
                           &u->when, NULL) != SQLITE_OK)
        return QM_E_IO;
    return QM_OK;
}

qm_err qm_usedkeys_open(const char *path, qm_usedkeys **out)
{
    if (out == NULL)
        return QM_E_USAGE;
    *out = NULL;
    if (path == NULL || path[0] == '\0')
        return QM_E_USAGE;
    qm_err err = create_private(path);
    if (err != QM_OK)
        return err;
    qm_usedkeys *u = calloc(1, sizeof *u);
    if (u == NULL)
        return QM_E_NOMEM;
    if (sqlite3_open_v2(path, &u->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW, NULL) !=
        SQLITE_OK) {
        qm_usedkeys_close(u);
        return QM_E_IO;
    }
    sqlite3_busy_timeout(u->db, 5000);
    err = set_wal(u->db);
    if (err == QM_OK)
        err = exec(u->db, "PRAGMA synchronous=NORMAL");
    if (err == QM_OK)
        err = exec(u->db, SCHEMA);
    if (err == QM_OK)
        err = prepare(u);
    if (err != QM_OK) {
        qm_usedkeys_close(u);
        return err;
    }
    *out = u;
    return QM_OK;
}

void qm_usedkeys_close(qm_usedkeys *u)
{
    if (u == NULL)
        return;
    sqlite3_finalize(u->find);
    sqlite3_finalize(u->insert);
    sqlite3_finalize(u->when);
    sqlite3_close(u->db);
    free(u);
}

/* The canonical (lower-case) text of a key ID, or -1 if it is no UUID. */
static int canonical_id(const char *id, char out[UUID_STR_LEN + 1])
{
    uint8_t bin[16];
    if (id == NULL || strlen(id) != UUID_STR_LEN || uuid_parse(id, UUID_STR_LEN, bin) != 0)
        return -1;
    uuid_format(bin, out);
    return 0;
}

static qm_err check_ids(const char *const *key_ids, size_t n)
{
    char c[UUID_STR_LEN + 1];
    if (n > 0 && key_ids == NULL)
        return QM_E_USAGE;
    for (size_t i = 0; i < n; i++)
        if (canonical_id(key_ids[i], c) != 0)
            return QM_E_USAGE;
    return QM_OK;
}

qm_err qm_usedkeys_any(qm_usedkeys *u, const char *const *key_ids, size_t n,
                       bool *any, size_t *used_index)
{
    if (u == NULL || any == NULL)
        return QM_E_USAGE;
    *any = false;
    qm_err err = check_ids(key_ids, n);
    if (err != QM_OK)
        return err;
    for (size_t i = 0; i < n; i++) {
        char id[UUID_STR_LEN + 1];
        canonical_id(key_ids[i], id);
        sqlite3_reset(u->find);
        sqlite3_bind_text(u->find, 1, id, -1, SQLITE_TRANSIENT);
        int rc = sqlite3_step(u->find);
        sqlite3_reset(u->find);
        if (rc == SQLITE_ROW) {
            *any = true;
            if (used_index != NULL)
                *used_index = i;
            return QM_OK;
        }
        if (rc != SQLITE_DONE)
            return QM_E_IO;
    }
    return QM_OK;
}

qm_err qm_usedkeys_when(qm_usedkeys *u, const char *key_id, long long *used_at)
{
    char id[UUID_STR_LEN + 1];
    if (u == NULL || used_at == NULL || canonical_id(key_id, id) != 0)
        return QM_E_USAGE;
    sqlite3_reset(u->when);
    sqlite3_bind_text(u->when, 1, id, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(u->when);
    if (rc == SQLITE_ROW)
        *used_at = (long long)sqlite3_column_int64(u->when, 0);
    sqlite3_reset(u->when);
    return rc == SQLITE_ROW ? QM_OK : rc == SQLITE_DONE ? QM_E_NOT_FOUND : QM_E_IO;
}

static qm_err insert_one(qm_usedkeys *u, const char *key_id, const char *master, int64_t now)
{
    char id[UUID_STR_LEN + 1];
    canonical_id(key_id, id);
    sqlite3_reset(u->insert);
    sqlite3_bind_text(u->insert, 1, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(u->insert, 2, master, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(u->insert, 3, now);
    int rc = sqlite3_step(u->insert);
    sqlite3_reset(u->insert);
    return rc == SQLITE_DONE ? QM_OK : QM_E_IO;
}

qm_err qm_usedkeys_record(qm_usedkeys *u, const char *const *key_ids, size_t n,
                          const char *master_sae_id)
{
    if (u == NULL || master_sae_id == NULL)
        return QM_E_USAGE;
    qm_err err = check_ids(key_ids, n);
    if (err != QM_OK || n == 0)
        return err;
    if (exec(u->db, "BEGIN IMMEDIATE") != QM_OK)
        return QM_E_IO;
    int64_t now = (int64_t)time(NULL);
    for (size_t i = 0; i < n && err == QM_OK; i++)
        err = insert_one(u, key_ids[i], master_sae_id, now);
    if (err == QM_OK)
        err = exec(u->db, "COMMIT");
    if (err != QM_OK)
        exec(u->db, "ROLLBACK");
    return err;
}
