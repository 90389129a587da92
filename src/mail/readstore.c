/* SPDX-License-Identifier: Apache-2.0 */
/*
 * readstore.c - the local store of decrypted messages (readstore.h).
 *
 * Each file is "QUMAIL-READ 1 LEVEL\n" followed by the inner message bytes
 * exactly as decrypted.  The header lets a reader refuse a file this store
 * did not write, and keeps the level so that a Level 4 message is still
 * labelled as unprotected when shown again.  A message with metadata is
 * "QUMAIL-READ 2 LEVEL\n", then these lines, each optional, in this order,
 * then an empty line, then the bytes:
 *
 *   unverified TEXT           why the sender is not verified
 *   forged-copy-seen
 *   sender SAE                the envelope's sender
 *   recipients SAE [SAE...]   the envelope's recipients
 *   kme ID                    the reader's KME
 *   keys N [ID...]            N keys used, the first QM_READ_MAX_KEYS named
 *   read-at SECONDS           when it was first read (Unix time)
 *   attachments N             then at most QM_READ_MAX_ATTACH lines:
 *   attachment SIZE NAME      NAME with bytes outside '!'..'~' and '%' as %XX
 *
 * Every value is printable ASCII; anything else is not a file this store
 * wrote and reads as QM_E_IO (fuzz/fuzz_read.c runs that parser).
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
#define MAX_LINE 4096

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

static bool meta_empty(const qm_read_meta *m)
{
    return m == NULL || (m->unverified[0] == '\0' && !m->forged_copy_seen && !m->sender[0] &&
                         !m->recipients[0] && !m->kme[0] && m->n_keys == 0 && m->read_at == 0 &&
                         m->n_attachments == 0);
}

/* A growing head; ok false once it ran out of memory. */
typedef struct head_buf {
    char *p;
    size_t len, cap;
    bool ok;
} head_buf;

static void put_bytes(head_buf *h, const char *s, size_t n)
{
    if (!h->ok)
        return;
    if (n > h->cap - h->len) {
        size_t cap = (h->cap + n) * 2;
        char *g = malloc(cap);
        if (!g) {
            h->ok = false;
            return;
        }
        if (h->p) {
            memcpy(g, h->p, h->len);
            secret_wipe(h->p, h->cap);
            free(h->p);
        }
        h->p = g;
        h->cap = cap;
    }
    memcpy(h->p + h->len, s, n);
    h->len += n;
}

static void put_str(head_buf *h, const char *s)
{
    put_bytes(h, s, strlen(s));
}

/* text made printable ASCII (space kept only with spaces): no value can
 * end its line early or carry a terminal control. */
static void put_printable(head_buf *h, const char *text, size_t max, bool spaces)
{
    for (size_t i = 0; i < max && text[i] != '\0'; i++) {
        char c = text[i];
        bool ok = (c > 0x20 && c < 0x7F) || (spaces && c == ' ');
        put_bytes(h, ok ? &c : "?", 1);
    }
}

static void put_field(head_buf *h, const char *name, const char *value, size_t max, bool spaces)
{
    if (!value[0])
        return;
    put_str(h, name);
    put_printable(h, value, max, spaces);
    put_str(h, "\n");
}

/* An attachment's name, %XX outside '!'..'~' and for '%' itself. */
static void put_name(head_buf *h, const char *name)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        if (*p > 0x20 && *p < 0x7F && *p != '%') {
            put_bytes(h, (const char *)p, 1);
        } else {
            char e[3] = { '%', hex[*p >> 4], hex[*p & 15] };
            put_bytes(h, e, 3);
        }
    }
}

static void put_lists(head_buf *h, const qm_read_meta *m)
{
    char num[64];
    if (m->n_keys) {
        snprintf(num, sizeof num, "keys %u", m->n_keys);
        put_str(h, num);
        for (unsigned i = 0; i < m->n_keys && i < QM_READ_MAX_KEYS; i++) {
            put_str(h, " ");
            put_printable(h, m->key_ids[i], sizeof m->key_ids[i], false);
        }
        put_str(h, "\n");
    }
    if (m->read_at > 0) {
        snprintf(num, sizeof num, "read-at %lld\n", m->read_at);
        put_str(h, num);
    }
    if (m->n_attachments) {
        snprintf(num, sizeof num, "attachments %u\n", m->n_attachments);
        put_str(h, num);
    }
    for (unsigned i = 0; i < m->n_attachments && i < QM_READ_MAX_ATTACH; i++) {
        snprintf(num, sizeof num, "attachment %llu ", m->attachments[i].size);
        put_str(h, num);
        put_name(h, m->attachments[i].name);
        put_str(h, "\n");
    }
}

/* The file's head: version 1 without metadata, else version 2 with its
 * lines (values made printable ASCII).  h->ok false: out of memory. */
static void write_head(head_buf *h, int level, const qm_read_meta *m)
{
    char first[32];
    snprintf(first, sizeof first, "%s%d\n", meta_empty(m) ? MAGIC : MAGIC2, level);
    put_str(h, first);
    if (meta_empty(m))
        return;
    put_field(h, UNVERIFIED, m->unverified, sizeof m->unverified, true);
    if (m->forged_copy_seen)
        put_str(h, FORGED);
    put_field(h, "sender ", m->sender, sizeof m->sender, false);
    put_field(h, "recipients ", m->recipients, sizeof m->recipients, true);
    put_field(h, "kme ", m->kme, sizeof m->kme, false);
    put_lists(h, m);
    put_str(h, "\n");
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
    head_buf h = { .ok = true };
    write_head(&h, level, meta);
    bool ok = h.ok && fchmod(fd, 0600) == 0 && fd_write_all(fd, h.p, h.len) == 0 &&
              fd_write_all(fd, msg, len) == 0 && fsync(fd) == 0;
    if (h.p)
        secret_wipe(h.p, h.cap);   /* attachment names are plaintext */
    free(h.p);
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

/* The next line from b + *off (its length without the LF); false if
 * there is no LF within MAX_LINE. */
static bool next_line(const uint8_t *b, size_t n, size_t off, size_t *len)
{
    size_t max = n - off < MAX_LINE ? n - off : MAX_LINE;
    const uint8_t *lf = memchr(b + off, '\n', max);
    if (!lf)
        return false;
    *len = (size_t)(lf - (b + off));
    return true;
}

/* value (vlen bytes) into out: printable ASCII (with spaces if allowed),
 * not empty, fits. */
static bool take_text(const uint8_t *v, size_t vlen, char *out, size_t cap, bool spaces)
{
    if (vlen == 0 || vlen >= cap)
        return false;
    for (size_t i = 0; i < vlen; i++)
        if (!((v[i] > 0x20 && v[i] < 0x7F) || (spaces && v[i] == ' ')))
            return false;
    memcpy(out, v, vlen);
    out[vlen] = '\0';
    return true;
}

/* A decimal number of 1..18 digits, without a leading zero (0 alone is
 * allowed); *used its length. */
static bool take_number(const uint8_t *v, size_t vlen, unsigned long long *out, size_t *used)
{
    size_t i = 0;
    unsigned long long x = 0;
    while (i < vlen && i < 19 && v[i] >= '0' && v[i] <= '9')
        x = x * 10 + (unsigned long long)(v[i++] - '0');
    if (i == 0 || i > 18 || (i > 1 && v[0] == '0'))
        return false;
    *out = x;
    *used = i;
    return true;
}

static int hexdigit(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* An attachment's stored name back to its bytes: no NUL, fits. */
static bool take_name(const uint8_t *v, size_t vlen, char out[QM_READ_NAME_MAX])
{
    size_t n = 0;
    for (size_t i = 0; i < vlen; i++) {
        int c = v[i];
        if (c == '%') {
            int hi = i + 2 < vlen ? hexdigit(v[i + 1]) : -1;
            int lo = hi >= 0 ? hexdigit(v[i + 2]) : -1;
            if (lo < 0 || (hi << 4 | lo) == 0)
                return false;
            c = hi << 4 | lo;
            i += 2;
        } else if (c <= 0x20 || c >= 0x7F) {
            return false;
        }
        if (n + 1 >= QM_READ_NAME_MAX)
            return false;
        out[n++] = (char)c;
    }
    out[n] = '\0';
    return n > 0;
}

static bool take_keys(const uint8_t *v, size_t vlen, qm_read_meta *m)
{
    unsigned long long count;
    size_t used, i;
    if (!take_number(v, vlen, &count, &used) || count == 0 || count > 1000000)
        return false;
    m->n_keys = (unsigned)count;
    unsigned named = 0;
    for (i = used; i < vlen; named++) {
        const uint8_t *sp = memchr(v + i + 1, ' ', vlen - i - 1);
        size_t end = sp ? (size_t)(sp - v) : vlen;
        if (v[i] != ' ' || named >= QM_READ_MAX_KEYS || named >= count ||
            !take_text(v + i + 1, end - i - 1, m->key_ids[named], sizeof m->key_ids[named],
                       false))
            return false;
        i = end;
    }
    return named == (count < QM_READ_MAX_KEYS ? count : QM_READ_MAX_KEYS);
}

static bool take_attachment(const uint8_t *v, size_t vlen, qm_read_meta *m, unsigned *seen)
{
    unsigned long long size;
    size_t used;
    if (*seen >= m->n_attachments || *seen >= QM_READ_MAX_ATTACH ||
        !take_number(v, vlen, &size, &used) || used >= vlen || v[used] != ' ')
        return false;
    m->attachments[*seen].size = size;
    return take_name(v + used + 1, vlen - used - 1, m->attachments[(*seen)++].name);
}

/* One line "NAME VALUE" of the kinds after forged-copy-seen; stage keeps
 * their order (attachment lines may repeat). */
static bool meta_line(const uint8_t *l, size_t len, qm_read_meta *m, int *stage,
                      unsigned *seen)
{
    static const char *const names[] = { "sender ", "recipients ", "kme ", "keys ",
                                         "read-at ", "attachments ", "attachment " };
    for (int k = 0; k < 7; k++) {
        size_t nl = strlen(names[k]);
        if (len <= nl || memcmp(l, names[k], nl) != 0)
            continue;
        if (k < *stage || (k == *stage && k != 6))
            return false;
        *stage = k;
        const uint8_t *v = l + nl;
        size_t vl = len - nl;
        unsigned long long x;
        size_t used;
        switch (k) {
        case 0: return take_text(v, vl, m->sender, sizeof m->sender, false);
        case 1: return take_text(v, vl, m->recipients, sizeof m->recipients, true);
        case 2: return take_text(v, vl, m->kme, sizeof m->kme, false);
        case 3: return take_keys(v, vl, m);
        case 4:
            if (!take_number(v, vl, &x, &used) || used != vl || x == 0)
                return false;
            m->read_at = (long long)x;
            return true;
        case 5:
            if (!take_number(v, vl, &x, &used) || used != vl || x == 0 || x > 100000)
                return false;
            m->n_attachments = (unsigned)x;
            return true;
        default: return take_attachment(v, vl, m, seen);
        }
    }
    return false;
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
    int stage = -1;
    unsigned seen = 0;
    size_t len;
    while (*off < n && b[*off] != '\n') {
        if (!next_line(b, n, *off, &len) || !meta_line(b + *off, len, meta, &stage, &seen))
            return -1;
        *off += len + 1;
    }
    /* every attachment the count promises is listed, up to the bound */
    if (seen != (meta->n_attachments < QM_READ_MAX_ATTACH ? meta->n_attachments
                                                         : QM_READ_MAX_ATTACH))
        return -1;
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

qm_err qm_readstore_parse_head(const uint8_t *b, size_t n, int *level, qm_read_meta *meta,
                               size_t *off)
{
    return read_head(b, n, level, meta, off) == 0 ? QM_OK : QM_E_IO;
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
    qm_read_meta *m = malloc(sizeof *m);   /* 10 KiB: not on the stack */
    int lv;
    size_t off;
    if (!m) {
        secret_wipe(b, n);
        free(b);
        return QM_E_NOMEM;
    }
    if (read_head(b, n, &lv, m, &off) != 0) {
        secret_wipe(m, sizeof *m);
        free(m);
        secret_wipe(b, n);
        free(b);
        return QM_E_IO;
    }
    if (level)
        *level = lv;
    if (meta)
        *meta = *m;
    secret_wipe(m, sizeof *m);
    free(m);
    memmove(b, b + off, n - off);
    *len = n - off;
    secret_wipe(b + *len, n - *len);  /* the tail still held the last bytes */
    b[*len] = '\0';
    *msg = b;
    return QM_OK;
}
