/* SPDX-License-Identifier: Apache-2.0 */
/*
 * maildir.c - Maildir delivery, listing and reading (maildir.h).
 *
 * Delivery follows the Maildir convention so that any reader (mutt, Dovecot)
 * sees only complete messages: write tmp/NAME (created exclusively), fsync,
 * link it to new/NAME (link fails instead of overwriting, so a name clash
 * can never replace another message: we then pick a new name), unlink the
 * tmp file and fsync new/ so the delivery survives a crash.  A message for
 * several Maildirs is written to every tmp/ before it is linked into any
 * new/, and a failure removes what was written and linked: a sender who is
 * told that sending failed has delivered to nobody (and sending again, with
 * fresh keys, gives nobody a second copy).  NAME is
 * "SECONDS.MUSECSPpidQcounterRrandom.host": unique by time, process, a
 * per-process counter and 64 random bits.  A message keeps its id when a
 * reader moves it to cur/ and appends ":2,FLAGS".  Ids come from users on
 * the command line, so read() accepts only a bare file name.  Listing
 * looks at directory entries only (never opens one, so a FIFO cannot
 * block it) and reports what is not a regular file; the inbox reads a
 * bounded prefix of each message (read_prefix), whatever its size.
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

/* One message on its way into one Maildir: written to tmp/TMP, then linked
 * to new/NAME (a fresh NAME when new/ already has one). */
typedef struct staged {
    const char *dir;
    char tmp[MAX_ID + 1], name[MAX_ID + 1];
    bool in_tmp, in_new;
} staged;

static bool path_of(char *out, size_t cap, const char *dir, const char *sub, const char *name)
{
    return (size_t)snprintf(out, cap, "%s/%s/%s", dir, sub, name) < cap;
}

/* Write the message to dir/tmp under a fresh name. */
static bool stage(staged *m, const uint8_t *msg, size_t len)
{
    char tmp[4096];
    if (!make_maildir(m->dir))
        return false;
    for (int attempt = 0; attempt < NAME_ATTEMPTS; attempt++) {
        unique_name(m->tmp, sizeof m->tmp);
        if (!path_of(tmp, sizeof tmp, m->dir, "tmp", m->tmp))
            return false;
        if (write_tmp(tmp, msg, len)) {
            m->in_tmp = true;
            return true;
        }
        if (errno != EEXIST)
            return false;
    }
    return false;
}

/* Link the staged file into new/: link fails instead of overwriting, so a
 * name clash never replaces another message. */
static bool publish(staged *m)
{
    char tmp[4096], dst[4096];
    if (!path_of(tmp, sizeof tmp, m->dir, "tmp", m->tmp))
        return false;
    memcpy(m->name, m->tmp, sizeof m->name);
    for (int attempt = 0; attempt < NAME_ATTEMPTS; attempt++) {
        if (attempt > 0)
            unique_name(m->name, sizeof m->name);
        if (!path_of(dst, sizeof dst, m->dir, "new", m->name))
            return false;
        if (link(tmp, dst) == 0) {
            m->in_new = true;
            return true;
        }
        if (errno != EEXIST)
            return false;
    }
    return false;
}

/* Remove what a delivery left: the tmp files, and with all, its new/ links
 * (a link a reader has already moved to cur/ stays: publishing fails only
 * for a Maildir broken between staging and linking). */
static void clean(staged *v, size_t n, bool all)
{
    char path[4096];
    for (size_t i = 0; i < n; i++) {
        if (v[i].in_tmp && path_of(path, sizeof path, v[i].dir, "tmp", v[i].tmp))
            unlink(path);
        v[i].in_tmp = false;
        if (all && v[i].in_new && path_of(path, sizeof path, v[i].dir, "new", v[i].name))
            unlink(path);
    }
}

static bool fsync_new(const char *dir)
{
    char path[4096];
    return (size_t)snprintf(path, sizeof path, "%s/new", dir) < sizeof path && fsync_dir(path) == 0;
}

/* Stage in every tmp/, then publish in every new/, then make new/ durable. */
static qm_err deliver_staged(staged *v, size_t n, const uint8_t *msg, size_t len,
                             size_t *failed)
{
    for (*failed = 0; *failed < n; ++*failed)
        if (!stage(&v[*failed], msg, len))
            return QM_E_TRANSPORT;
    for (*failed = 0; *failed < n; ++*failed)
        if (!publish(&v[*failed]))
            return QM_E_TRANSPORT;
    clean(v, n, false);
    for (*failed = 0; *failed < n; ++*failed)
        if (!fsync_new(v[*failed].dir))
            return QM_E_TRANSPORT;
    return QM_OK;
}

qm_err qm_maildir_deliver_all(const char *const *dirs, size_t n, const uint8_t *msg,
                              size_t len, char **ids, size_t *failed)
{
    size_t at = 0;
    if (failed == NULL)
        failed = &at;
    *failed = 0;
    if (dirs == NULL || n == 0 || (msg == NULL && len > 0))
        return QM_E_USAGE;
    for (size_t i = 0; i < n; i++) {
        if (ids != NULL)
            ids[i] = NULL;
        if (dirs[i] == NULL || dirs[i][0] == '\0')
            return QM_E_USAGE;
    }
    staged *v = calloc(n, sizeof *v);
    if (v == NULL)
        return QM_E_NOMEM;
    for (size_t i = 0; i < n; i++)
        v[i].dir = dirs[i];
    qm_err rc = deliver_staged(v, n, msg, len, failed);
    for (size_t i = 0; rc == QM_OK && ids != NULL && i < n; i++)
        if ((ids[i] = strdup(v[i].name)) == NULL)
            rc = QM_E_NOMEM;
    if (rc != QM_OK) {
        clean(v, n, true);
        for (size_t i = 0; ids != NULL && i < n; i++) {
            free(ids[i]);
            ids[i] = NULL;
        }
    }
    free(v);
    return rc;
}

qm_err qm_maildir_deliver(const char *dir, const uint8_t *msg, size_t len, char **id)
{
    return qm_maildir_deliver_all(&dir, 1, msg, len, id, NULL);
}

/* ---- listing ------------------------------------------------------------ */

typedef struct entry_list {
    qm_maildir_entry *v;
    size_t n, cap;
} entry_list;

static bool add_entry(entry_list *l, const char *dir, const char *sub, const char *name,
                      const struct stat *st)
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
    e->mtime = (int64_t)st->st_mtime;
    e->size = (int64_t)st->st_size;
    e->path = NULL;
    if (e->id == NULL || asprintf(&e->path, "%s/%s/%s", dir, sub, name) < 0) {
        free(e->id);
        return false;
    }
    l->n++;
    return true;
}

/* What an entry that is not a regular file is, for the warning. */
static const char *file_kind(mode_t mode)
{
    if (S_ISDIR(mode))
        return "a directory";
    if (S_ISLNK(mode))
        return "a symbolic link";
    if (S_ISFIFO(mode))
        return "a FIFO";
    if (S_ISSOCK(mode))
        return "a socket";
    if (S_ISCHR(mode) || S_ISBLK(mode))
        return "a device";
    return "not a regular file";
}

typedef struct skip_report {
    qm_maildir_skip_fn fn;
    void *arg;
} skip_report;

static void report_skip(const skip_report *r, const char *dir, const char *name,
                        const char *what)
{
    char path[4096];
    if (r->fn != NULL && (size_t)snprintf(path, sizeof path, "%s/%s", dir, name) < sizeof path)
        r->fn(r->arg, path, what);
}

/* Regular files of DIR/SUB whose names do not start with '.' (or ':');
 * other entries are reported; an absent SUB adds nothing.  Only the
 * directory entry is looked at (lstat): nothing is opened, so a FIFO
 * cannot block the listing. */
static qm_err scan(entry_list *l, const char *dir, const char *sub, const skip_report *r)
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
        if (de->d_name[0] == '.' || de->d_name[0] == ':')
            continue;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            continue;   /* gone since readdir: moved to cur/ or deleted */
        if (!S_ISREG(st.st_mode))
            report_skip(r, path, de->d_name, file_kind(st.st_mode));
        else if (!add_entry(l, dir, sub, de->d_name, &st))
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

qm_err qm_maildir_list_report(const char *dir, qm_maildir_entry **entries, size_t *n,
                              qm_maildir_skip_fn skip, void *arg)
{
    if (dir == NULL || *dir == '\0' || entries == NULL || n == NULL)
        return QM_E_USAGE;
    *entries = NULL;
    *n = 0;
    entry_list l = { 0 };
    skip_report r = { skip, arg };
    qm_err err = scan(&l, dir, "new", &r);
    if (err == QM_OK)
        err = scan(&l, dir, "cur", &r);
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

qm_err qm_maildir_list(const char *dir, qm_maildir_entry **entries, size_t *n)
{
    return qm_maildir_list_report(dir, entries, n, NULL, NULL);
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

/* Read the file at path: all of it (max 0; QM_E_TOO_BIG past
 * QM_MIME_MAX_MESSAGE) or at most max bytes.  O_NONBLOCK: should the
 * name have become a FIFO since it was looked at, open does not wait for a
 * writer (fstat then refuses it). */
static qm_err read_file(const char *path, size_t max, uint8_t **msg, size_t *len)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    if (fd < 0)
        return errno == ENOENT ? QM_E_NOT_FOUND : QM_E_TRANSPORT;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        errno = EINVAL;
        return QM_E_TRANSPORT;
    }
    if (max == 0 && (uint64_t)st.st_size > QM_MIME_MAX_MESSAGE) {
        close(fd);
        return QM_E_TOO_BIG;
    }
    size_t size = (size_t)st.st_size, got = 0;
    if (max != 0 && size > max)
        size = max;
    uint8_t *buf = malloc(size ? size : 1);
    if (buf == NULL) {
        close(fd);
        return QM_E_NOMEM;
    }
    int saved = 0;
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            saved = r < 0 ? errno : EIO;
            break;
        }
        got += (size_t)r;
    }
    close(fd);
    if (got != size) {       /* changed under us, or a read error */
        free(buf);
        errno = saved;
        return QM_E_TRANSPORT;
    }
    *msg = buf;
    *len = size;
    return QM_OK;
}

static qm_err read_message(const char *dir, const char *id, size_t max, uint8_t **msg,
                           size_t *len)
{
    if (dir == NULL || *dir == '\0' || msg == NULL || len == NULL)
        return QM_E_USAGE;
    *msg = NULL;
    *len = 0;
    if (!id_valid(id))
        return QM_E_NOT_FOUND;
    char path[4096];
    qm_err err = find_message(dir, id, path, sizeof path);
    return err == QM_OK ? read_file(path, max, msg, len) : err;
}

qm_err qm_maildir_read(const char *dir, const char *id, uint8_t **msg, size_t *len)
{
    return read_message(dir, id, 0, msg, len);
}

qm_err qm_maildir_read_prefix(const char *dir, const char *id, size_t max, uint8_t **msg,
                              size_t *len)
{
    if (max == 0)
        return QM_E_USAGE;
    return read_message(dir, id, max, msg, len);
}
