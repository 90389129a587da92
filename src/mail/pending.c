/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pending.c - the pending-key store of pending.h: files of key material
 * kept for a message whose copy failed verification, parsed strictly, found
 * by key ID, sender and recipient, erased (zeros, fsync, unlink) when used
 * by a verified copy or older than the TTL.
 */
#include "mail/pending.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fdio.h"

#define MAGIC_LINE "QUMAIL-PENDING 1\n"
#define MAX_FILE_BYTES ((uint64_t)QM_MAX_MESSAGE + ((uint64_t)64 << 20))
/* Longest head: the fixed lines (< 700 bytes) and 65,537 key lines of at
 * most 36 + 1 + 9 + 1 bytes. */
#define HEAD_MAX ((size_t)4 << 20)

/* ------------------------------------------------------------- parsing */

typedef struct cursor {
    const uint8_t *p, *end;
    char *why;
    size_t why_cap;
} cursor;

static qm_err bad(cursor *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static qm_err bad(cursor *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (c->why != NULL && c->why_cap > 0)
        vsnprintf(c->why, c->why_cap, fmt, ap);
    va_end(ap);
    return QM_E_PENDING;
}

/* The next line (without its LF) as [*s, *s + *n), or -1 at the end. */
static int next_line(cursor *c, const char **s, size_t *n)
{
    const uint8_t *lf = memchr(c->p, '\n', (size_t)(c->end - c->p));
    if (lf == NULL)
        return -1;
    *s = (const char *)c->p;
    *n = (size_t)(lf - c->p);
    c->p = lf + 1;
    return 0;
}

/* A decimal of 1..19 digits without sign or leading zero, at most max. */
static int parse_decimal(const char *s, size_t n, unsigned long long max, unsigned long long *v)
{
    if (n == 0 || n > 19 || (s[0] == '0' && n > 1))
        return -1;
    unsigned long long x = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        x = x * 10 + (unsigned long long)(s[i] - '0');
    }
    if (x > max)
        return -1;
    *v = x;
    return 0;
}

/* "NAME VALUE" with VALUE copied to out (1..cap-1 printable characters). */
static qm_err named_field(cursor *c, const char *name, char *out, size_t cap)
{
    const char *s;
    size_t n, nl = strlen(name);
    if (next_line(c, &s, &n) != 0 || n <= nl + 1 || memcmp(s, name, nl) != 0 || s[nl] != ' ')
        return bad(c, "'%s' line missing", name);
    s += nl + 1;
    n -= nl + 1;
    if (n >= cap)
        return bad(c, "'%s' too long", name);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7E)
            return bad(c, "'%s' is not printable ASCII", name);
    memcpy(out, s, n);
    out[n] = '\0';
    return QM_OK;
}

static qm_err parse_key_line(cursor *c, size_t i, qm_pending_key *k)
{
    const char *s;
    size_t n;
    uint8_t bin[16];
    unsigned long long len;
    if (next_line(c, &s, &n) != 0 || n < UUID_STR_LEN + 2 || s[UUID_STR_LEN] != ' ' ||
        uuid_parse(s, UUID_STR_LEN, bin) != 0)
        return bad(c, "key line %zu is not 'KEY_ID LEN'", i + 1);
    uuid_format(bin, k->id);
    if (memcmp(k->id, s, UUID_STR_LEN) != 0)
        return bad(c, "key line %zu: key ID not in canonical lower case", i + 1);
    if (parse_decimal(s + UUID_STR_LEN + 1, n - UUID_STR_LEN - 1, QM_MAX_KEY_LEN, &len) != 0 ||
        len == 0)
        return bad(c, "key line %zu: length not in 1..%u", i + 1, QM_MAX_KEY_LEN);
    k->len = (size_t)len;
    return QM_OK;
}

static int cmp_key_id(const void *a, const void *b)
{
    return strcmp(((const qm_pending_key *)a)->id, ((const qm_pending_key *)b)->id);
}

/* Sort the keys by ID (a file may name 65,537 keys: lookups are binary
 * searches) and refuse an ID listed twice. */
static qm_err sort_unique(cursor *c, qm_pending_key *keys, size_t n)
{
    qsort(keys, n, sizeof *keys, cmp_key_id);
    for (size_t i = 1; i < n; i++)
        if (strcmp(keys[i - 1].id, keys[i].id) == 0)
            return bad(c, "key %s is listed twice", keys[i].id);
    return QM_OK;
}

static const qm_pending_key *entry_key(const qm_pending_entry *e, const char *id)
{
    qm_pending_key probe;
    snprintf(probe.id, sizeof probe.id, "%s", id);
    return bsearch(&probe, e->keys, e->n, sizeof *e->keys, cmp_key_id);
}

static qm_err parse_head(cursor *c, qm_pending_entry *e, unsigned long long *n_keys)
{
    char num[32], reason[16];
    unsigned long long v = 0; /* gcc -O3 cannot see that err != QM_OK covers every path without it */
    size_t ml = strlen(MAGIC_LINE);
    if ((size_t)(c->end - c->p) < ml || memcmp(c->p, MAGIC_LINE, ml) != 0)
        return bad(c, "not a pending-key file of format version 1");
    c->p += ml;
    qm_err err = named_field(c, "sender", e->sender, sizeof e->sender);
    if (err == QM_OK)
        err = named_field(c, "recipient", e->recipient, sizeof e->recipient);
    if (err == QM_OK && (err = named_field(c, "created", num, sizeof num)) == QM_OK &&
        parse_decimal(num, strlen(num), (unsigned long long)INT64_MAX / 2, &v) != 0)
        err = bad(c, "'created' is not a time");
    if (err != QM_OK)
        return err;
    e->created = (long long)v;
    if ((err = named_field(c, "reason", reason, sizeof reason)) != QM_OK)
        return err;
    if (strcmp(reason, "tampered") == 0)
        e->reason = QM_PENDING_TAMPERED;
    else if (strcmp(reason, "incomplete") == 0)
        e->reason = QM_PENDING_INCOMPLETE;
    else if (strcmp(reason, "unverified") == 0)
        e->reason = QM_PENDING_UNVERIFIED;
    else
        return bad(c, "unknown reason '%s'", reason);
    if ((err = named_field(c, "keys", num, sizeof num)) != QM_OK)
        return err;
    if (parse_decimal(num, strlen(num), QM_PENDING_MAX_KEYS, n_keys) != 0 || *n_keys == 0)
        return bad(c, "'keys' not in 1..%u", QM_PENDING_MAX_KEYS);
    return QM_OK;
}

/* Parse the first len bytes of a file of file_len bytes: the whole file
 * (keys point into buf), or, with len < file_len, its head only (keys
 * without data: enough to tell whose keys and how old they are). */
static qm_err parse(const uint8_t *buf, size_t len, uint64_t file_len, qm_pending_entry *e,
                    char *why, size_t why_cap)
{
    cursor c = { buf, buf + len, why, why_cap };
    unsigned long long n;
    memset(e, 0, sizeof *e);
    if (buf == NULL)
        return QM_E_USAGE;
    qm_err err = parse_head(&c, e, &n);
    if (err != QM_OK)
        return err;
    if ((e->keys = calloc((size_t)n, sizeof *e->keys)) == NULL)
        return QM_E_NOMEM;
    e->n = (size_t)n;
    uint64_t total = 0;
    for (size_t i = 0; i < e->n && err == QM_OK; i++) {
        err = parse_key_line(&c, i, &e->keys[i]);
        total += e->keys[i].len;
    }
    const char *s;
    size_t ln;
    if (err == QM_OK && (next_line(&c, &s, &ln) != 0 || ln != 0))
        err = bad(&c, "no empty line after the %zu key lines", e->n);
    uint64_t present = file_len - (uint64_t)(c.p - buf);
    if (err == QM_OK && total != present)
        err = bad(&c, "%llu bytes of keys announced, %llu present", (unsigned long long)total,
                  (unsigned long long)present);
    for (size_t i = 0; i < e->n && err == QM_OK && len == file_len; i++) {
        e->keys[i].data = c.p;
        c.p += e->keys[i].len;
    }
    if (err == QM_OK)
        err = sort_unique(&c, e->keys, e->n);
    if (err != QM_OK)
        qm_pending_entry_free(e);
    return err;
}

qm_err qm_pending_parse(const uint8_t *buf, size_t len, qm_pending_entry *e,
                        char *why, size_t why_cap)
{
    return parse(buf, len, len, e, why, why_cap);
}

void qm_pending_entry_free(qm_pending_entry *e)
{
    if (e == NULL)
        return;
    free(e->keys);
    memset(e, 0, sizeof *e);
}

/* ------------------------------------------------------------ the files */

static qm_err pending_dir(const char *store_dir, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s/pending", store_dir);
    return n > 0 && (size_t)n < cap ? QM_OK : QM_E_USAGE;
}

/* Overwrite with zeros, fsync, unlink: the key bytes do not stay in the
 * file's blocks for the next reader of the disk (as far as the file system
 * writes in place). */
static qm_err erase_file(const char *dir, const char *name)
{
    static const uint8_t zeros[65536];
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
        return QM_E_USAGE;
    int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    bool ok = fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
    for (off_t done = 0; ok && done < st.st_size;) {
        size_t chunk = st.st_size - done < (off_t)sizeof zeros ? (size_t)(st.st_size - done)
                                                                : sizeof zeros;
        ok = fd_write_all(fd, zeros, chunk) == 0;
        done += (off_t)chunk;
    }
    ok = ok && fsync(fd) == 0;
    if (fd >= 0)
        close(fd);
    if (unlink(path) != 0 && errno != ENOENT)
        return QM_E_IO;
    ok = fsync_dir(dir) == 0 && ok;
    return ok ? QM_OK : QM_E_IO;
}

static qm_err make_dir(const char *store_dir, char *dir, size_t cap)
{
    struct stat st;
    qm_err err = pending_dir(store_dir, dir, cap);
    if (err != QM_OK)
        return err;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return QM_E_IO;
    if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || chmod(dir, 0700) != 0)
        return QM_E_IO;
    return QM_OK;
}

/* The first max bytes of the file (all of it if shorter) into locked
 * memory, its size in *size; a file not ours (not regular, open to others,
 * too large) is refused with the reason. */
static qm_err load_file(const char *path, size_t max, secret_buf *b, uint64_t *size, char *why,
                        size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        snprintf(why, cap, "cannot open: %s", strerror(errno));
        if (fd >= 0)
            close(fd);
        return QM_E_PENDING;
    }
    qm_err err = QM_OK;
    if (!S_ISREG(st.st_mode) || (st.st_mode & 077) != 0 || (uint64_t)st.st_size > MAX_FILE_BYTES)
        err = QM_E_PENDING;
    if (err != QM_OK)
        snprintf(why, cap, "not a regular file of mode 0600 within %llu bytes",
                 (unsigned long long)MAX_FILE_BYTES);
    size_t want = (uint64_t)st.st_size < max ? (size_t)st.st_size : max;
    *size = (uint64_t)st.st_size;
    if (err == QM_OK && secret_alloc(b, want ? want : 1) != 0)
        err = QM_E_NOMEM;
    size_t got = 0;
    while (err == QM_OK && got < want) {
        ssize_t r = read(fd, b->data + got, want - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            snprintf(why, cap, "cannot read: %s", r < 0 ? strerror(errno) : "short file");
            err = QM_E_PENDING;
            break;
        }
        got += (size_t)r;
    }
    close(fd);
    b->len = got;
    if (err != QM_OK)
        secret_free(b);
    return err;
}

static bool names_any(const qm_pending_entry *e, const char *const *ids, size_t n)
{
    for (size_t j = 0; j < n; j++)
        if (entry_key(e, ids[j]) != NULL)
            return true;
    return false;
}

static qm_err found_add(qm_pending_found *f, secret_buf *b, qm_pending_entry *e,
                        const char *name)
{
    size_t n = f->n + 1;
    secret_buf *nb = realloc(f->bytes, n * sizeof *nb);
    if (nb != NULL)
        f->bytes = nb;
    qm_pending_entry *ne = nb ? realloc(f->entries, n * sizeof *ne) : NULL;
    if (ne != NULL)
        f->entries = ne;
    char (*nn)[64] = ne ? realloc(f->names, n * sizeof *nn) : NULL;
    if (nn == NULL)
        return QM_E_NOMEM;
    f->names = nn;
    f->bytes[f->n] = *b;
    f->entries[f->n] = *e;
    snprintf(f->names[f->n], sizeof f->names[f->n], "%.63s", name);
    f->forged_copy_seen = f->forged_copy_seen || e->reason == QM_PENDING_TAMPERED;
    f->n = n;
    return QM_OK;
}

/* One file of pending/: erased if expired, kept in f if it holds keys of
 * the message, else left alone. */
static qm_err visit(const char *dir, const char *name, const char *sender,
                    const char *recipient, const char *const *ids, size_t n, long long now,
                    long long ttl, qm_pending_found *f, char *why, size_t cap)
{
    char path[PATH_MAX];
    secret_buf b = { 0 };
    qm_pending_entry e;
    uint64_t size = 0;
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
        return QM_E_USAGE;
    /* the head first: a large file of someone else's keys is not read whole */
    qm_err err = load_file(path, HEAD_MAX, &b, &size, why, cap);
    if (err == QM_OK && (err = parse(b.data, b.len, size, &e, why, cap)) != QM_OK)
        secret_free(&b);
    if (err != QM_OK)
        return err;
    /* a creation time beyond now + ttl is no time this store wrote: expired too */
    bool expired = e.created + ttl < now || e.created > now + ttl;
    bool ours = !expired && strcmp(e.sender, sender) == 0 &&
                strcmp(e.recipient, recipient) == 0 && names_any(&e, ids, n);
    if (ours && b.len < size) {   /* now the whole file */
        qm_pending_entry_free(&e);
        secret_free(&b);
        err = load_file(path, SIZE_MAX, &b, &size, why, cap);
        if (err == QM_OK && (err = qm_pending_parse(b.data, b.len, &e, why, cap)) != QM_OK)
            secret_free(&b);
        if (err != QM_OK)
            return err;
    }
    if (ours && (err = found_add(f, &b, &e, name)) == QM_OK)
        return QM_OK;
    qm_pending_entry_free(&e);
    secret_free(&b);
    if (expired)
        err = erase_file(dir, name);
    return err;
}

qm_err qm_pending_find(const char *store_dir, const char *sender, const char *recipient,
                       const char *const *ids, size_t n, long long now, long long ttl,
                       qm_pending_found *f, char *detail, size_t detail_cap)
{
    char dir[PATH_MAX], why[200] = "";
    memset(f, 0, sizeof *f);
    if (store_dir == NULL || sender == NULL || recipient == NULL || (n > 0 && ids == NULL))
        return QM_E_USAGE;
    qm_err err = pending_dir(store_dir, dir, sizeof dir);
    DIR *d = err == QM_OK ? opendir(dir) : NULL;
    if (d == NULL)
        return err != QM_OK ? err : errno == ENOENT ? QM_OK : QM_E_IO;
    struct dirent *de;
    while (err == QM_OK && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')   /* ".", "..", temporary files of a save */
            continue;
        err = visit(dir, de->d_name, sender, recipient, ids, n, now, ttl, f, why, sizeof why);
        if (err == QM_E_PENDING)
            snprintf(detail, detail_cap, "%.150s/%.60s: %s", dir, de->d_name, why);
    }
    closedir(d);
    if (err != QM_OK)
        qm_pending_found_free(f);
    return err;
}

const qm_pending_key *qm_pending_lookup(const qm_pending_found *f, const char *id,
                                       qm_pending_reason *reason)
{
    for (size_t i = 0; f != NULL && i < f->n; i++) {
        const qm_pending_key *k = entry_key(&f->entries[i], id);
        if (k != NULL) {
            if (reason != NULL)
                *reason = f->entries[i].reason;
            return k;
        }
    }
    return NULL;
}

/* ------------------------------------------------------------- writing */

static const char *reason_name(qm_pending_reason reason)
{
    return reason == QM_PENDING_TAMPERED     ? "tampered"
           : reason == QM_PENDING_UNVERIFIED ? "unverified"
                                             : "incomplete";
}

static bool write_head(int fd, const char *sender, const char *recipient,
                       qm_pending_reason reason, long long created, const char *const *ids,
                       const qm_key_bytes *keys, size_t n)
{
    char line[400];
    int l = snprintf(line, sizeof line, MAGIC_LINE "sender %s\nrecipient %s\ncreated %lld\n"
                     "reason %s\nkeys %zu\n", sender, recipient, created,
                     reason_name(reason), n);
    if (l < 0 || (size_t)l >= sizeof line || fd_write_all(fd, line, (size_t)l) != 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        l = snprintf(line, sizeof line, "%s %zu\n", ids[i], keys[i].len);
        if (fd_write_all(fd, line, (size_t)l) != 0)
            return false;
    }
    return fd_write_all(fd, "\n", 1) == 0;
}

/* The checks the parser makes, before anything is written. */
static qm_err check_save_args(const char *sender, const char *recipient, long long now,
                              const char *const *ids, const qm_key_bytes *keys, size_t n)
{
    char buf[512];
    qm_pending_entry e;
    if (sender == NULL || recipient == NULL || ids == NULL || keys == NULL || n == 0 ||
        n > QM_PENDING_MAX_KEYS || now < 0)
        return QM_E_USAGE;
    int l = snprintf(buf, sizeof buf, MAGIC_LINE "sender %s\nrecipient %s\ncreated %lld\n"
                     "reason tampered\nkeys 1\n%s 1\n\nk", sender, recipient, now, ids[0]);
    if (l < 0 || (size_t)l >= sizeof buf ||
        qm_pending_parse((const uint8_t *)buf, (size_t)l, &e, NULL, 0) != QM_OK)
        return QM_E_USAGE;
    qm_pending_entry_free(&e);
    for (size_t i = 0; i < n; i++) {
        uint8_t bin[16];
        char canon[UUID_STR_LEN + 1];
        if (ids[i] == NULL || strlen(ids[i]) != UUID_STR_LEN ||
            uuid_parse(ids[i], UUID_STR_LEN, bin) != 0 || keys[i].len == 0 ||
            keys[i].len > QM_MAX_KEY_LEN || keys[i].data == NULL)
            return QM_E_USAGE;
        uuid_format(bin, canon);
        if (strcmp(canon, ids[i]) != 0)
            return QM_E_USAGE;
    }
    return QM_OK;
}

qm_err qm_pending_save(const char *store_dir, const char *sender, const char *recipient,
                       qm_pending_reason reason, long long now, const char *const *ids,
                       const qm_key_bytes *keys, size_t n)
{
    char dir[PATH_MAX], tmp[PATH_MAX], final[PATH_MAX];
    uint8_t rnd[8];
    qm_err err = check_save_args(sender, recipient, now, ids, keys, n);
    if (err == QM_OK)
        err = make_dir(store_dir, dir, sizeof dir);
    if (err != QM_OK)
        return err;
    secret_random(rnd, sizeof rnd);
    if (snprintf(tmp, sizeof tmp, "%s/.tmp.XXXXXX", dir) >= (int)sizeof tmp ||
        snprintf(final, sizeof final, "%s/p-%lld-%02x%02x%02x%02x%02x%02x%02x%02x", dir, now,
                 rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]) >=
            (int)sizeof final)
        return QM_E_USAGE;
    int fd = mkostemp(tmp, O_CLOEXEC);   /* mode 0600 */
    if (fd < 0)
        return QM_E_IO;
    bool ok = fchmod(fd, 0600) == 0 &&
              write_head(fd, sender, recipient, reason, now, ids, keys, n);
    for (size_t i = 0; i < n && ok; i++)
        ok = fd_write_all(fd, keys[i].data, keys[i].len) == 0;
    ok = ok && fsync(fd) == 0;
    ok = close(fd) == 0 && ok;
    ok = ok && rename(tmp, final) == 0;
    if (!ok) {
        erase_file(dir, strrchr(tmp, '/') + 1);
        return QM_E_IO;
    }
    return fsync_dir(dir) == 0 ? QM_OK : QM_E_IO;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Whether id is in sorted (n IDs in strcmp order). */
static bool listed(const char *id, const char *const *sorted, size_t n)
{
    return bsearch(&id, sorted, n, sizeof *sorted, cmp_str) != NULL;
}

/* An entry without the used keys (sorted: n IDs in strcmp order): a new
 * file with the rest, if any. */
static qm_err keep_rest(const char *store_dir, const qm_pending_entry *e,
                        const char *const *sorted, size_t n)
{
    const char **rest_ids = malloc(e->n * sizeof *rest_ids);
    qm_key_bytes *rest = malloc(e->n * sizeof *rest);
    size_t m = 0;
    qm_err err = rest_ids && rest ? QM_OK : QM_E_NOMEM;
    for (size_t k = 0; k < e->n && err == QM_OK; k++)
        if (!listed(e->keys[k].id, sorted, n)) {
            rest_ids[m] = e->keys[k].id;
            rest[m++] = (qm_key_bytes){ e->keys[k].data, e->keys[k].len };
        }
    if (err == QM_OK && m > 0)
        err = qm_pending_save(store_dir, e->sender, e->recipient, e->reason, e->created,
                              rest_ids, rest, m);
    free(rest_ids);
    if (rest != NULL)
        secret_wipe(rest, e->n * sizeof *rest);
    free(rest);
    return err;
}

qm_err qm_pending_consume(const char *store_dir, const qm_pending_found *f,
                          const char *const *ids, size_t n)
{
    char dir[PATH_MAX];
    qm_err err = pending_dir(store_dir, dir, sizeof dir);
    const char **sorted = malloc((n ? n : 1) * sizeof *sorted);
    if (sorted == NULL)
        return QM_E_NOMEM;
    if (n > 0)
        memcpy(sorted, ids, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, cmp_str);
    for (size_t i = 0; f != NULL && i < f->n && err == QM_OK; i++) {
        err = keep_rest(store_dir, &f->entries[i], sorted, n);
        if (err == QM_OK)
            err = erase_file(dir, f->names[i]);
    }
    free(sorted);
    return err;
}

void qm_pending_found_free(qm_pending_found *f)
{
    if (f == NULL)
        return;
    for (size_t i = 0; i < f->n; i++) {
        qm_pending_entry_free(&f->entries[i]);
        secret_free(&f->bytes[i]);
    }
    free(f->bytes);
    free(f->entries);
    free(f->names);
    memset(f, 0, sizeof *f);
}

long qm_pending_count(const char *store_dir)
{
    char dir[PATH_MAX];
    if (pending_dir(store_dir, dir, sizeof dir) != QM_OK)
        return -1;
    DIR *d = opendir(dir);
    if (d == NULL)
        return errno == ENOENT ? 0 : -1;
    long n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        n += de->d_name[0] != '.';
    closedir(d);
    return n;
}
