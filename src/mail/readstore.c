/*
 * readstore.c - the local store of decrypted messages (readstore.h).
 *
 * Each file is "QUMAIL-READ 1 LEVEL\n" followed by the inner message bytes
 * exactly as decrypted.  The header lets a reader refuse a file this store
 * did not write, and keeps the level so that a Level 4 message is still
 * labelled as unprotected when shown again.
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

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int r = fsync(fd);
    close(fd);
    return r;
}

qm_err qm_readstore_put(const char *store_dir, const char *id, int level,
                        const uint8_t *msg, size_t len)
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
    char head[32];
    int hl = snprintf(head, sizeof head, MAGIC "%d\n", level);
    bool ok = fchmod(fd, 0600) == 0 && fd_write_all(fd, head, (size_t)hl) == 0 &&
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

qm_err qm_readstore_get(const char *store_dir, const char *id, int *level,
                        uint8_t **msg, size_t *len)
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
    size_t ml = strlen(MAGIC);
    if (n < ml + 2 || memcmp(b, MAGIC, ml) != 0 || b[ml] < '0' || b[ml] > '9' ||
        b[ml + 1] != '\n') {
        secret_wipe(b, n);
        free(b);
        return QM_E_IO;
    }
    if (level)
        *level = b[ml] - '0';
    memmove(b, b + ml + 2, n - ml - 2);
    *len = n - ml - 2;
    secret_wipe(b + *len, n - *len);  /* the tail still held the last bytes */
    b[*len] = '\0';
    *msg = b;
    return QM_OK;
}
