/* SPDX-License-Identifier: Apache-2.0 */
/*
 * readstore.c - the local store of decrypted messages (readstore.h).
 *
 * Each file is "QUMAIL-READ 1 LEVEL\n" followed by the inner message bytes
 * exactly as decrypted.  The header lets a reader refuse a file this store
 * did not write, and keeps the level so that a Level 4 message is still
 * labelled as unprotected when shown again.  A message with metadata is
 * "QUMAIL-READ 2 LEVEL\n", then the lines "unverified TEXT\n" and
 * "forged-copy-seen\n" (each optional, in this order; TEXT printable
 * ASCII), then an empty line, then the bytes.
 */
#include "mail/readstore.h"

#include "common/fdio.h"
#include "common/secret.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAGIC "QUMAIL-READ 1 "
#define MAGIC2 "QUMAIL-READ 2 "
#define UNVERIFIED "unverified "
#define FORGED "forged-copy-seen\n"
#define MAX_NAME 200

/* File name of id: safe characters kept, the rest (and a leading '.') as
 * %XX, so that no id can name another directory or a hidden file. */
static qm_err file_name(const char *id, char out[MAX_NAME + 1])
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    if (!*id)
        return QM_E_USAGE;
    for (const unsigned char *p = (const unsigned char *)id; *p; p++) {
        bool keep = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                    (*p >= '0' && *p <= '9') || strchr("_,=+-", *p) ||
                    (*p == '.' && p != (const unsigned char *)id);
        if (n + (keep ? 1 : 3) > MAX_NAME)
            return QM_E_USAGE;
        if (keep) {
            out[n++] = (char)*p;
        } else {
            out[n++] = '%';
            out[n++] = hex[*p >> 4];
            out[n++] = hex[*p & 15];
        }
    }
    out[n] = '\0';
    return QM_OK;
}

static qm_err make_dir(const char *path)
{
    struct stat st;
    if (mkdir(path, 0700) != 0 && errno != EEXIST)
        return QM_E_IO;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return QM_E_IO;
    return QM_OK;
}

/* out = a "/" b, or QM_E_USAGE if it does not fit. */
static qm_err join(char *out, size_t cap, const char *a, const char *b)
{
    int n = snprintf(out, cap, "%s/%s", a, b);
    return n > 0 && (size_t)n < cap ? QM_OK : QM_E_USAGE;
}

static qm_err read_dir_path(const char *store_dir, char *out, size_t cap)
{
    return join(out, cap, store_dir, "read");
}

qm_err qm_readstore_init(const char *store_dir)
{
    char dir[PATH_MAX];
    qm_err rc = read_dir_path(store_dir, dir, sizeof dir);
    if (rc == QM_OK)
        rc = make_dir(store_dir);
    if (rc == QM_OK)
        rc = make_dir(dir);
    /* the plaintexts live here: whatever made the directory, only we read it */
    if (rc == QM_OK && chmod(dir, 0700) != 0)
        rc = QM_E_IO;
    return rc;
}

/* The file's head: version 1 without metadata, else version 2 with its
 * lines (the text made printable ASCII).  Returns the length. */
static size_t write_head(char *head, size_t cap, int level, const qm_read_meta *meta)
{
    if (meta == NULL || (meta->unverified[0] == '\0' && !meta->forged_copy_seen))
        return (size_t)snprintf(head, cap, MAGIC "%d\n", level);
    size_t n = (size_t)snprintf(head, cap, MAGIC2 "%d\n", level);
    if (meta->unverified[0] != '\0') {
        n += (size_t)snprintf(head + n, cap - n, UNVERIFIED);
        const char *text = meta->unverified;
        for (size_t i = 0; i < sizeof meta->unverified && text[i] != '\0'; i++)
            head[n++] = text[i] >= 0x20 && text[i] < 0x7F ? text[i] : '?';
        head[n++] = '\n';
    }
    if (meta->forged_copy_seen)
        n += (size_t)snprintf(head + n, cap - n, FORGED);
    head[n++] = '\n';
    return n;
}

qm_err qm_readstore_put(const char *store_dir, const char *id, int level,
                        const uint8_t *msg, size_t len)
{
    return qm_readstore_put_meta(store_dir, id, level, NULL, msg, len);
}

qm_err qm_readstore_put_meta(const char *store_dir, const char *id, int level,
                             const qm_read_meta *meta, const uint8_t *msg, size_t len)
{
    char name[MAX_NAME + 1], dir[PATH_MAX], final[PATH_MAX], tmp[PATH_MAX];
    qm_err rc = file_name(id, name);
    if (rc == QM_OK)
        rc = read_dir_path(store_dir, dir, sizeof dir);
    if (rc != QM_OK || level < 0 || level > 9)
        return rc != QM_OK ? rc : QM_E_USAGE;
    if (join(final, sizeof final, dir, name) != QM_OK ||
        join(tmp, sizeof tmp, dir, ".tmp.XXXXXX") != QM_OK)
        return QM_E_USAGE;
    if (qm_readstore_init(store_dir) != QM_OK)
        return QM_E_IO;
    int fd = mkostemp(tmp, O_CLOEXEC); /* mode 0600 */
    if (fd < 0)
        return QM_E_IO;
    char head[sizeof(qm_read_meta) + 64];
    size_t hl = write_head(head, sizeof head, level, meta);
    bool ok = fchmod(fd, 0600) == 0 && fd_write_all(fd, head, hl) == 0 &&
              fd_write_all(fd, msg, len) == 0 && fsync(fd) == 0;
    ok = close(fd) == 0 && ok;
    ok = ok && rename(tmp, final) == 0;
    if (!ok) {
        unlink(tmp);
        return QM_E_IO;
    }
    return fsync_dir(dir) == 0 ? QM_OK : QM_E_IO;
}

static qm_err read_whole(int fd, uint8_t **out, size_t *len)
{
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < 0 ||
        (uint64_t)st.st_size > SIZE_MAX - 1)
        return QM_E_IO;
    size_t n = (size_t)st.st_size, got = 0;
    uint8_t *b = malloc(n + 1);
    if (!b)
        return QM_E_NOMEM;
    while (got < n) {
        ssize_t r = read(fd, b + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    if (got != n) {
        secret_wipe(b, n);
        free(b);
        return QM_E_IO;
    }
    b[n] = '\0';
    *out = b;
    *len = n;
    return QM_OK;
}

/* The metadata lines of a version 2 file from b + *off; -1 if malformed. */
static int read_meta(const uint8_t *b, size_t n, size_t *off, qm_read_meta *meta)
{
    size_t ul = strlen(UNVERIFIED), fl = strlen(FORGED);
    if (*off + ul < n && memcmp(b + *off, UNVERIFIED, ul) == 0) {
        const uint8_t *lf = memchr(b + *off, '\n', n - *off);
        size_t tl = lf ? (size_t)(lf - b) - *off - ul : 0;
        if (lf == NULL || tl == 0 || tl >= sizeof meta->unverified)
            return -1;
        for (size_t i = 0; i < tl; i++)
            if (b[*off + ul + i] < 0x20 || b[*off + ul + i] >= 0x7F)
                return -1;
        memcpy(meta->unverified, b + *off + ul, tl);
        meta->unverified[tl] = '\0';
        *off += ul + tl + 1;
    }
    if (*off + fl <= n && memcmp(b + *off, FORGED, fl) == 0) {
        meta->forged_copy_seen = true;
        *off += fl;
    }
    if (*off >= n || b[*off] != '\n')
        return -1;
    (*off)++;
    return 0;
}

/* The head of a file: its level and metadata; *off the first message byte. */
static int read_head(const uint8_t *b, size_t n, int *level, qm_read_meta *meta, size_t *off)
{
    size_t ml = strlen(MAGIC);
    bool v1 = n >= ml + 2 && memcmp(b, MAGIC, ml) == 0;
    bool v2 = n >= ml + 2 && memcmp(b, MAGIC2, ml) == 0;
    if ((!v1 && !v2) || b[ml] < '0' || b[ml] > '9' || b[ml + 1] != '\n')
        return -1;
    *level = b[ml] - '0';
    *off = ml + 2;
    memset(meta, 0, sizeof *meta);
    return v2 ? read_meta(b, n, off, meta) : 0;
}

qm_err qm_readstore_get(const char *store_dir, const char *id, int *level,
                        uint8_t **msg, size_t *len)
{
    return qm_readstore_get_meta(store_dir, id, level, NULL, msg, len);
}

qm_err qm_readstore_get_meta(const char *store_dir, const char *id, int *level,
                             qm_read_meta *meta, uint8_t **msg, size_t *len)
{
    char name[MAX_NAME + 1], dir[PATH_MAX], path[PATH_MAX];
    *msg = NULL;
    *len = 0;
    qm_err rc = file_name(id, name);
    if (rc == QM_OK)
        rc = read_dir_path(store_dir, dir, sizeof dir);
    if (rc == QM_OK)
        rc = join(path, sizeof path, dir, name);
    if (rc != QM_OK)
        return rc == QM_E_USAGE ? QM_E_NOT_FOUND : rc;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return errno == ENOENT ? QM_E_NOT_FOUND : QM_E_IO;
    uint8_t *b;
    size_t n;
    rc = read_whole(fd, &b, &n);
    close(fd);
    if (rc != QM_OK)
        return rc;
    qm_read_meta m;
    int lv;
    size_t off;
    if (read_head(b, n, &lv, &m, &off) != 0) {
        secret_wipe(b, n);
        free(b);
        return QM_E_IO;
    }
    if (level)
        *level = lv;
    if (meta)
        *meta = m;
    memmove(b, b + off, n - off);
    *len = n - off;
    secret_wipe(b + *len, n - *len);  /* the tail still held the last bytes */
    b[*len] = '\0';
    *msg = b;
    return QM_OK;
}
