/*
 * maildir.c - Maildir delivery, listing and reading (maildir.h).
 *
 * Delivery follows the Maildir convention so that any reader (mutt, Dovecot)
 * sees only complete messages: write tmp/NAME (created exclusively), fsync,
 * link it to new/NAME (link fails instead of overwriting, so a name clash
 * can never replace another message: we then pick a new name), unlink the
 * tmp file and fsync new/ so the delivery survives a crash.  NAME is
 * "SECONDS.MUSECSPpidQcounterRrandom.host": unique by time, process, a
 * per-process counter and 64 random bits.  A message keeps its id when a
 * reader moves it to cur/ and appends ":2,FLAGS".  Ids come from users on
 * the command line, so read() accepts only a bare file name.
 */
#include "mail/maildir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/fdio.h"
#include "common/secret.h"
#include "mail/mime.h"

#define MAX_ID         255
#define NAME_ATTEMPTS  16

static const char *const subdirs[] = { "tmp", "new", "cur" };

/* ---- directories -------------------------------------------------------- */

/* mkdir that accepts an existing directory (never changes its mode). */
static bool make_dir(const char *path)
{
    struct stat st;
    if (mkdir(path, 0700) == 0)
        return true;
    return errno == EEXIST && stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* DIR and its missing parents, then DIR/{tmp,new,cur}. */
static bool make_maildir(const char *dir)
{
    char *p = strdup(dir);
    bool ok = p != NULL && *p != '\0';
    for (char *s = p ? p + 1 : NULL; ok && (s = strchr(s, '/')) != NULL; s++) {
        *s = '\0';
        ok = make_dir(p);
        *s = '/';
    }
    ok = ok && make_dir(p);
    free(p);
    char sub[4096];
    for (size_t i = 0; ok && i < 3; i++)
        ok = (size_t)snprintf(sub, sizeof sub, "%s/%s", dir, subdirs[i]) < sizeof sub
             && make_dir(sub);
    return ok;
}

static bool fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return false;
    bool ok = fsync(fd) == 0;
    close(fd);
    return ok;
}

/* ---- delivery ----------------------------------------------------------- */

/* The host name with the characters Maildir readers treat specially
 * ('/', ':') and anything unusual replaced. */
static void host_part(char *out, size_t cap)
{
    char host[256] = "localhost";
    if (gethostname(host, sizeof host - 1) != 0 || host[0] == '\0')
        strcpy(host, "localhost");
    host[sizeof host - 1] = '\0';
    size_t j = 0;
    for (size_t i = 0; host[i] != '\0' && j + 1 < cap; i++) {
        char c = host[i];
        bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
                     || c == '-' || c == '.';
        out[j++] = plain ? c : '_';
    }
    out[j] = '\0';
}

static void unique_name(char *out, size_t cap)
{
    static atomic_uint counter;
    struct timeval tv;
    uint64_t rnd;
    char host[64];
    gettimeofday(&tv, NULL);
    secret_random(&rnd, sizeof rnd);
    host_part(host, sizeof host);
    snprintf(out, cap, "%lld.M%06ldP%ldQ%uR%016llx.%s", (long long)tv.tv_sec,
             (long)tv.tv_usec, (long)getpid(), atomic_fetch_add(&counter, 1) + 1,
             (unsigned long long)rnd, host);
}

/* Write tmp/NAME durably.  false with errno EEXIST on a name clash. */
static bool write_tmp(const char *path, const uint8_t *msg, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return false;
    bool ok = fd_write_all(fd, msg, len) == 0 && fsync(fd) == 0;
    ok = close(fd) == 0 && ok;
    if (!ok)
        unlink(path);
    return ok;
}

/* One attempt under a fresh name: 1 delivered, 0 name clash, -1 error. */
static int deliver_once(const char *dir, const uint8_t *msg, size_t len, char *name, size_t cap)
{
    char tmp[4096], dst[4096];
    unique_name(name, cap);
    if ((size_t)snprintf(tmp, sizeof tmp, "%s/tmp/%s", dir, name) >= sizeof tmp
        || (size_t)snprintf(dst, sizeof dst, "%s/new/%s", dir, name) >= sizeof dst)
        return -1;
    if (!write_tmp(tmp, msg, len))
        return errno == EEXIST ? 0 : -1;
    int rc = link(tmp, dst) == 0 ? 1 : (errno == EEXIST ? 0 : -1);
    unlink(tmp);
    return rc;
}

qm_err qm_maildir_deliver(const char *dir, const uint8_t *msg, size_t len, char **id)
{
    if (dir == NULL || *dir == '\0' || (msg == NULL && len > 0))
        return QM_E_USAGE;
    if (id != NULL)
        *id = NULL;
    if (!make_maildir(dir))
        return QM_E_TRANSPORT;
    char name[MAX_ID + 1], newdir[4096];
    int rc = 0;
    for (int attempt = 0; attempt < NAME_ATTEMPTS && rc == 0; attempt++)
        rc = deliver_once(dir, msg, len, name, sizeof name);
    snprintf(newdir, sizeof newdir, "%s/new", dir);
    if (rc != 1 || !fsync_dir(newdir))
        return QM_E_TRANSPORT;
    if (id != NULL && (*id = strdup(name)) == NULL)
        return QM_E_NOMEM;
    return QM_OK;
}

/* ---- listing ------------------------------------------------------------ */

typedef struct entry_list {
    qm_maildir_entry *v;
    size_t n, cap;
} entry_list;

static bool add_entry(entry_list *l, const char *dir, const char *sub, const char *name,
                      int64_t mtime)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        qm_maildir_entry *v = realloc(l->v, cap * sizeof *v);
        if (v == NULL)
            return false;
        l->v = v;
        l->cap = cap;
    }
    qm_maildir_entry *e = &l->v[l->n];
    size_t idlen = strcspn(name, ":");
    e->id = strndup(name, idlen);
    e->mtime = mtime;
    e->path = NULL;
    if (e->id == NULL || asprintf(&e->path, "%s/%s/%s", dir, sub, name) < 0) {
        free(e->id);
        return false;
    }
    l->n++;
    return true;
}

/* Regular files of DIR/SUB whose names do not start with '.'; an absent
 * SUB adds nothing. */
static qm_err scan(entry_list *l, const char *dir, const char *sub)
{
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, sub) >= sizeof path)
        return QM_E_USAGE;
    DIR *d = opendir(path);
    if (d == NULL)
        return errno == ENOENT ? QM_OK : QM_E_TRANSPORT;
    qm_err err = QM_OK;
    struct dirent *de;
    while (err == QM_OK && (de = readdir(d)) != NULL) {
        struct stat st;
        if (de->d_name[0] == '.' || de->d_name[0] == ':'
            || fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0
            || !S_ISREG(st.st_mode))
            continue;
        if (!add_entry(l, dir, sub, de->d_name, (int64_t)st.st_mtime))
            err = QM_E_NOMEM;
    }
    closedir(d);
    return err;
}

static int by_age_then_id(const void *a, const void *b)
{
    const qm_maildir_entry *x = a, *y = b;
    if (x->mtime != y->mtime)
        return x->mtime < y->mtime ? -1 : 1;
    return strcmp(x->id, y->id);
}

qm_err qm_maildir_list(const char *dir, qm_maildir_entry **entries, size_t *n)
{
    if (dir == NULL || *dir == '\0' || entries == NULL || n == NULL)
        return QM_E_USAGE;
    *entries = NULL;
    *n = 0;
    entry_list l = { 0 };
    qm_err err = scan(&l, dir, "new");
    if (err == QM_OK)
        err = scan(&l, dir, "cur");
    if (err != QM_OK) {
        qm_maildir_entries_free(l.v, l.n);
        return err;
    }
    if (l.n > 1)
        qsort(l.v, l.n, sizeof *l.v, by_age_then_id);
    *entries = l.v;
    *n = l.n;
    return QM_OK;
}

void qm_maildir_entries_free(qm_maildir_entry *entries, size_t n)
{
    if (entries == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        free(entries[i].id);
        free(entries[i].path);
    }
    free(entries);
}

/* ---- reading ------------------------------------------------------------ */

/* A bare file name as deliver() makes them: no path, no hidden file, no
 * flags part. */
static bool id_valid(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    return n > 0 && n <= MAX_ID && id[0] != '.' && strchr(id, '/') == NULL
           && strchr(id, ':') == NULL;
}

/* The path of the message: new/ID, or cur/ID or cur/ID:FLAGS. */
static qm_err find_message(const char *dir, const char *id, char *out, size_t cap)
{
    struct stat st;
    if ((size_t)snprintf(out, cap, "%s/new/%s", dir, id) < cap
        && lstat(out, &st) == 0 && S_ISREG(st.st_mode))
        return QM_OK;
    char cur[4096];
    snprintf(cur, sizeof cur, "%s/cur", dir);
    DIR *d = opendir(cur);
    if (d == NULL)
        return errno == ENOENT ? QM_E_NOT_FOUND : QM_E_TRANSPORT;
    size_t idlen = strlen(id);
    qm_err err = QM_E_NOT_FOUND;
    struct dirent *de;
    while (err == QM_E_NOT_FOUND && (de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, id, idlen) != 0
            || (de->d_name[idlen] != '\0' && de->d_name[idlen] != ':'))
            continue;
        if ((size_t)snprintf(out, cap, "%s/%s", cur, de->d_name) < cap
            && lstat(out, &st) == 0 && S_ISREG(st.st_mode))
            err = QM_OK;
    }
    closedir(d);
    return err;
}

static qm_err read_file(const char *path, uint8_t **msg, size_t *len)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd < 0)
        return errno == ENOENT ? QM_E_NOT_FOUND : QM_E_TRANSPORT;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return QM_E_TRANSPORT;
    }
    if ((uint64_t)st.st_size > QM_MIME_MAX_MESSAGE) {
        close(fd);
        return QM_E_TOO_BIG;
    }
    size_t size = (size_t)st.st_size, got = 0;
    uint8_t *buf = malloc(size ? size : 1);
    if (buf == NULL) {
        close(fd);
        return QM_E_NOMEM;
    }
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (got != size) {       /* changed under us: not a delivered message */
        free(buf);
        return QM_E_TRANSPORT;
    }
    *msg = buf;
    *len = size;
    return QM_OK;
}

qm_err qm_maildir_read(const char *dir, const char *id, uint8_t **msg, size_t *len)
{
    if (dir == NULL || *dir == '\0' || msg == NULL || len == NULL)
        return QM_E_USAGE;
    *msg = NULL;
    *len = 0;
    if (!id_valid(id))
        return QM_E_NOT_FOUND;
    char path[4096];
    qm_err err = find_message(dir, id, path, sizeof path);
    return err == QM_OK ? read_file(path, msg, len) : err;
}
