/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_qumail_maildir.c - Maildir delivery, listing and reading
 * (src/mail/maildir.c) in a fresh temporary directory per test.
 *
 * Checked: a delivered message lands in new/ byte for byte under a unique
 * id, with nothing left in tmp/; directories are 0700 and files 0600 (with
 * a permissive umask); an absent Maildir lists as empty and reads as not
 * found; a message moved to cur/ with flags keeps its id; listing is oldest
 * first, then by id, and ignores dot files and directories; ids with '/',
 * a leading '.', or ':' are refused; 200 deliveries give 200 distinct ids;
 * a message for several Maildirs reaches all of them or, when one fails
 * (before or after the others were linked), none.  Hostile entries
 * (a FIFO, a directory, a dangling symbolic link, a file past the size
 * bound) are reported by path and kind without being opened and never
 * stop the listing of the others; read_prefix reads a bounded prefix.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#include "mail/maildir.h"
#include "mail/mime.h"

typedef struct fixture {
    char root[256];   /* temporary directory */
    char dir[300];    /* root/a/b/Maildir: parents do not exist yet */
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    snprintf(f->root, sizeof f->root, "%s/qm-maildir-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(f->root) == NULL)
        return -1;
    snprintf(f->dir, sizeof f->dir, "%s/a/b/Maildir", f->root);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->root);
    int rc = system(cmd);
    free(f);
    return rc == 0 ? 0 : -1;
}

static size_t count_files(const char *dir, const char *sub)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, sub);
    DIR *d = opendir(path);
    assert_non_null(d);
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static void write_file(const char *path, const char *content, time_t mtime)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(content, fp);
    assert_int_equal(fclose(fp), 0);
    struct timeval tv[2] = { { mtime, 0 }, { mtime, 0 } };
    assert_int_equal(utimes(path, tv), 0);
}

static void set_mtime(const char *path, time_t mtime)
{
    struct timeval tv[2] = { { mtime, 0 }, { mtime, 0 } };
    assert_int_equal(utimes(path, tv), 0);
}

static void test_deliver_read(void **state)
{
    fixture *f = *state;
    mode_t old = umask(022);
    const uint8_t msg[] = "From: a@b\n\nhello\n";
    char *id;
    assert_int_equal(qm_maildir_deliver(f->dir, msg, sizeof msg - 1, &id), QM_OK);
    umask(old);
    assert_non_null(id);
    assert_null(strchr(id, '/'));
    assert_null(strchr(id, ':'));
    assert_true(id[0] != '.');
    assert_int_equal(count_files(f->dir, "new"), 1);
    assert_int_equal(count_files(f->dir, "tmp"), 0);
    assert_int_equal(count_files(f->dir, "cur"), 0);

    struct stat st;
    const char *subs[] = { "", "/tmp", "/new", "/cur" };
    for (size_t i = 0; i < 4; i++) {
        char p[512];
        snprintf(p, sizeof p, "%s%s", f->dir, subs[i]);
        assert_int_equal(stat(p, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0700);
    }
    char path[512];
    snprintf(path, sizeof path, "%s/new/%s", f->dir, id);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    uint8_t *got;
    size_t len;
    assert_int_equal(qm_maildir_read(f->dir, id, &got, &len), QM_OK);
    assert_int_equal(len, sizeof msg - 1);
    assert_memory_equal(got, msg, len);
    free(got);

    qm_maildir_entry *e;
    size_t n;
    assert_int_equal(qm_maildir_list(f->dir, &e, &n), QM_OK);
    assert_int_equal(n, 1);
    assert_string_equal(e[0].id, id);
    assert_string_equal(e[0].path, path);
    assert_true(e[0].mtime > 0);
    qm_maildir_entries_free(e, n);
    free(id);
}

static void test_empty_message_and_null_id(void **state)
{
    fixture *f = *state;
    assert_int_equal(qm_maildir_deliver(f->dir, NULL, 0, NULL), QM_OK);
    qm_maildir_entry *e;
    size_t n;
    assert_int_equal(qm_maildir_list(f->dir, &e, &n), QM_OK);
    assert_int_equal(n, 1);
    uint8_t *got;
    size_t len = 99;
    assert_int_equal(qm_maildir_read(f->dir, e[0].id, &got, &len), QM_OK);
    assert_int_equal(len, 0);
    free(got);
    qm_maildir_entries_free(e, n);
}

static void test_absent_dir(void **state)
{
    fixture *f = *state;
    qm_maildir_entry *e = (qm_maildir_entry *)1;
    size_t n = 5;
    assert_int_equal(qm_maildir_list(f->dir, &e, &n), QM_OK);
    assert_int_equal(n, 0);
    assert_null(e);
    qm_maildir_entries_free(e, n);
    uint8_t *got;
    size_t len;
    assert_int_equal(qm_maildir_read(f->dir, "1.M1P1Q1R1.host", &got, &len), QM_E_NOT_FOUND);
    /* list and read create nothing */
    struct stat st;
    assert_int_not_equal(stat(f->dir, &st), 0);
}

static void test_cur_keeps_id(void **state)
{
    fixture *f = *state;
    char *id;
    assert_int_equal(qm_maildir_deliver(f->dir, (const uint8_t *)"x", 1, &id), QM_OK);
    char from[512], to[512];
    snprintf(from, sizeof from, "%s/new/%s", f->dir, id);
    snprintf(to, sizeof to, "%s/cur/%s:2,S", f->dir, id);
    assert_int_equal(rename(from, to), 0);
    uint8_t *got;
    size_t len;
    assert_int_equal(qm_maildir_read(f->dir, id, &got, &len), QM_OK);
    assert_int_equal(len, 1);
    assert_int_equal(got[0], 'x');
    free(got);
    qm_maildir_entry *e;
    size_t n;
    assert_int_equal(qm_maildir_list(f->dir, &e, &n), QM_OK);
    assert_int_equal(n, 1);
    assert_string_equal(e[0].id, id);
    assert_string_equal(e[0].path, to);
    qm_maildir_entries_free(e, n);
    /* a prefix of an id is not the id */
    char prefix[300];
    snprintf(prefix, sizeof prefix, "%.*s", (int)strlen(id) - 1, id);
    assert_int_equal(qm_maildir_read(f->dir, prefix, &got, &len), QM_E_NOT_FOUND);
    free(id);
}

static void test_list_order_and_filter(void **state)
{
    fixture *f = *state;
    assert_int_equal(qm_maildir_deliver(f->dir, (const uint8_t *)"init", 4, NULL), QM_OK);
    qm_maildir_entry *e;
    size_t n;
    assert_int_equal(qm_maildir_list(f->dir, &e, &n), QM_OK);
    assert_int_equal(n, 1);
    set_mtime(e[0].path, 5000);    /* the delivered one is the second-oldest */
    qm_maildir_entries_free(e, n);

    char p[512];
    snprintf(p, sizeof p, "%s/cur/zzz:2,S", f->dir);
    write_file(p, "old", 1000);
    snprintf(p, sizeof p, "%s/new/bbb", f->dir);
    write_file(p, "newest-b", 9000);
    snprintf(p, sizeof p, "%s/cur/aaa:2,", f->dir);
    write_file(p, "newest-a", 9000);
    snprintf(p, sizeof p, "%s/new/.hidden", f->dir);
    write_file(p, "hidden", 1);
    snprintf(p, sizeof p, "%s/new/subdir", f->dir);
    assert_int_equal(mkdir(p, 0700), 0);
    snprintf(p, sizeof p, "%s/tmp/inflight", f->dir);
    write_file(p, "tmp", 1);

    assert_int_equal(qm_maildir_list(f->dir, &e, &n), QM_OK);
    assert_int_equal(n, 4);
    assert_string_equal(e[0].id, "zzz");
    assert_int_equal(e[0].mtime, 1000);
    assert_int_equal(e[1].mtime, 5000);
    assert_string_equal(e[2].id, "aaa");
    assert_string_equal(e[3].id, "bbb");
    qm_maildir_entries_free(e, n);

    uint8_t *got;
    size_t len;
    assert_int_equal(qm_maildir_read(f->dir, "aaa", &got, &len), QM_OK);
    assert_int_equal(len, 8);
    assert_memory_equal(got, "newest-a", 8);
    free(got);
    assert_int_equal(qm_maildir_read(f->dir, "subdir", &got, &len), QM_E_NOT_FOUND);
    assert_int_equal(qm_maildir_read(f->dir, "inflight", &got, &len), QM_E_NOT_FOUND);
}

static void test_bad_ids(void **state)
{
    fixture *f = *state;
    assert_int_equal(qm_maildir_deliver(f->dir, (const uint8_t *)"x", 1, NULL), QM_OK);
    char p[512];
    snprintf(p, sizeof p, "%s/new/.hidden", f->dir);
    write_file(p, "hidden", 1);
    snprintf(p, sizeof p, "%s/secret", f->root);
    write_file(p, "outside", 1);
    const char *bad[] = { "", ".hidden", "..", ".", "../../../secret", "new/x", "/etc/passwd",
                          "a:2,S", "x/" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        uint8_t *got = (uint8_t *)"unchanged";
        size_t len = 7;
        assert_int_equal(qm_maildir_read(f->dir, bad[i], &got, &len), QM_E_NOT_FOUND);
        assert_null(got);
        assert_int_equal(len, 0);
    }
    uint8_t *got;
    size_t len;
    assert_int_equal(qm_maildir_read(f->dir, NULL, &got, &len), QM_E_NOT_FOUND);
    assert_int_equal(qm_maildir_read(NULL, "x", &got, &len), QM_E_USAGE);
    assert_int_equal(qm_maildir_deliver("", (const uint8_t *)"x", 1, NULL), QM_E_USAGE);
    assert_int_equal(qm_maildir_deliver(f->dir, NULL, 1, NULL), QM_E_USAGE);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_many_messages(void **state)
{
    fixture *f = *state;
    enum { N = 200 };
    char *ids[N];
    for (int i = 0; i < N; i++) {
        char body[32];
        int len = snprintf(body, sizeof body, "message %d\n", i);
        assert_int_equal(qm_maildir_deliver(f->dir, (const uint8_t *)body, (size_t)len, &ids[i]),
                         QM_OK);
    }
    char *sorted[N];
    memcpy(sorted, ids, sizeof ids);
    qsort(sorted, N, sizeof *sorted, cmp_str);
    for (int i = 1; i < N; i++)
        assert_string_not_equal(sorted[i - 1], sorted[i]);
    assert_int_equal(count_files(f->dir, "new"), N);
    assert_int_equal(count_files(f->dir, "tmp"), 0);
    qm_maildir_entry *e;
    size_t n;
    assert_int_equal(qm_maildir_list(f->dir, &e, &n), QM_OK);
    assert_int_equal(n, N);
    for (size_t i = 1; i < n; i++)
        assert_true(e[i - 1].mtime < e[i].mtime
                    || (e[i - 1].mtime == e[i].mtime && strcmp(e[i - 1].id, e[i].id) < 0));
    qm_maildir_entries_free(e, n);
    for (int i = 0; i < N; i++) {
        uint8_t *got;
        size_t len;
        char want[32];
        int wl = snprintf(want, sizeof want, "message %d\n", i);
        assert_int_equal(qm_maildir_read(f->dir, ids[i], &got, &len), QM_OK);
        assert_int_equal(len, (size_t)wl);
        assert_memory_equal(got, want, len);
        free(got);
        free(ids[i]);
    }
}

static void test_unwritable(void **state)
{
    fixture *f = *state;
    /* a file where the Maildir should be */
    char file[512];
    snprintf(file, sizeof file, "%s/file", f->root);
    write_file(file, "x", 1);
    assert_int_equal(qm_maildir_deliver(file, (const uint8_t *)"x", 1, NULL), QM_E_TRANSPORT);
    char under[600];
    snprintf(under, sizeof under, "%s/Maildir", file);
    assert_int_equal(qm_maildir_deliver(under, (const uint8_t *)"x", 1, NULL), QM_E_TRANSPORT);
    if (geteuid() == 0)
        skip();   /* root writes into read-only directories */
    char ro[512];
    snprintf(ro, sizeof ro, "%s/ro", f->root);
    assert_int_equal(mkdir(ro, 0500), 0);
    char dir[600];
    snprintf(dir, sizeof dir, "%s/Maildir", ro);
    assert_int_equal(qm_maildir_deliver(dir, (const uint8_t *)"x", 1, NULL), QM_E_TRANSPORT);
    chmod(ro, 0700);
}

/* Several Maildirs: each gets the message under its own name. */
static void test_deliver_all(void **state)
{
    fixture *f = *state;
    char d2[400];
    snprintf(d2, sizeof d2, "%s/bob/Maildir", f->root);
    const char *dirs[] = { f->dir, d2 };
    const uint8_t msg[] = "From: a@b\n\nto two\n";
    char *ids[2];
    assert_int_equal(qm_maildir_deliver_all(dirs, 2, msg, sizeof msg - 1, ids, NULL), QM_OK);
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(count_files(dirs[i], "new"), 1);
        assert_int_equal(count_files(dirs[i], "tmp"), 0);
        uint8_t *got;
        size_t len;
        assert_int_equal(qm_maildir_read(dirs[i], ids[i], &got, &len), QM_OK);
        assert_int_equal(len, sizeof msg - 1);
        assert_memory_equal(got, msg, len);
        free(got);
    }
    assert_string_not_equal(ids[0], ids[1]);
    free(ids[0]);
    free(ids[1]);
    size_t failed = 99;
    assert_int_equal(qm_maildir_deliver_all(dirs, 0, msg, 1, NULL, &failed), QM_E_USAGE);
    const char *with_empty[] = { f->dir, "" };
    assert_int_equal(qm_maildir_deliver_all(with_empty, 2, msg, 1, NULL, NULL), QM_E_USAGE);
    assert_int_equal(count_files(f->dir, "new"), 1);
}

/* The last of three Maildirs cannot be written: nobody gets the message,
 * nothing stays in tmp/, and the failed one is named. */
static void test_deliver_all_or_none(void **state)
{
    fixture *f = *state;
    char d2[400], file[400], bad[500];
    snprintf(d2, sizeof d2, "%s/bob/Maildir", f->root);
    snprintf(file, sizeof file, "%s/file", f->root);
    write_file(file, "x", 1);
    snprintf(bad, sizeof bad, "%s/Maildir", file);
    const char *dirs[] = { f->dir, d2, bad };
    char *ids[3] = { (char *)"unchanged", NULL, NULL };
    size_t failed = 99;
    assert_int_equal(qm_maildir_deliver_all(dirs, 3, (const uint8_t *)"x", 1, ids, &failed),
                     QM_E_TRANSPORT);
    assert_int_equal(failed, 2);
    for (size_t i = 0; i < 3; i++)
        assert_null(ids[i]);
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(count_files(dirs[i], "new"), 0);
        assert_int_equal(count_files(dirs[i], "tmp"), 0);
    }
    /* the first one fails: the others are not even created */
    const char *first_bad[] = { bad, d2 };
    assert_int_equal(qm_maildir_deliver_all(first_bad, 2, (const uint8_t *)"x", 1, NULL, &failed),
                     QM_E_TRANSPORT);
    assert_int_equal(failed, 0);
    assert_int_equal(count_files(d2, "new"), 0);
}

/* Linking into the last Maildir's new/ fails after every tmp/ was written
 * (its new/ is on another file system: link gives EXDEV): the message
 * already linked into the first Maildir's new/ is taken back. */
static void test_deliver_all_link_fails(void **state)
{
    fixture *f = *state;
    char other[] = "/dev/shm/qm-maildir-XXXXXX";
    struct stat a, b;
    if (stat(f->root, &a) != 0 || mkdtemp(other) == NULL)
        skip();
    if (stat(other, &b) != 0 || a.st_dev == b.st_dev) {
        rmdir(other);
        skip(); /* needs a second file system */
    }
    char d2[400], sub[500];
    snprintf(d2, sizeof d2, "%s/bob", f->root);
    assert_int_equal(mkdir(d2, 0700), 0);
    snprintf(sub, sizeof sub, "%s/tmp", d2);
    assert_int_equal(mkdir(sub, 0700), 0);
    snprintf(sub, sizeof sub, "%s/cur", d2);
    assert_int_equal(mkdir(sub, 0700), 0);
    snprintf(sub, sizeof sub, "%s/new", d2);
    assert_int_equal(symlink(other, sub), 0);
    const char *dirs[] = { f->dir, d2 };
    size_t failed = 99;
    qm_err rc = qm_maildir_deliver_all(dirs, 2, (const uint8_t *)"x", 1, NULL, &failed);
    rmdir(other);
    assert_int_equal(rc, QM_E_TRANSPORT);
    assert_int_equal(failed, 1);
    assert_int_equal(count_files(f->dir, "new"), 0);
    assert_int_equal(count_files(f->dir, "tmp"), 0);
    assert_int_equal(count_files(d2, "tmp"), 0);
}

typedef struct skipped {
    char text[2048];
    int count;
} skipped;

static void on_skip(void *arg, const char *path, const char *what)
{
    skipped *k = arg;
    size_t n = strlen(k->text);
    snprintf(k->text + n, sizeof k->text - n, "%s=%s;", path, what);
    k->count++;
}

/* A FIFO (no writer: opening it would block), a directory, a dangling
 * symbolic link and a symbolic link to a good file, among good messages:
 * the good ones are listed, each other entry reported once by full path. */
static void test_list_reports_hostile_entries(void **state)
{
    fixture *f = *state;
    assert_int_equal(qm_maildir_deliver(f->dir, (const uint8_t *)"one", 3, NULL), QM_OK);
    char p[512], good[512];
    snprintf(p, sizeof p, "%s/new/fifo", f->dir);
    assert_int_equal(mkfifo(p, 0600), 0);
    snprintf(p, sizeof p, "%s/cur/adir:2,", f->dir);
    assert_int_equal(mkdir(p, 0700), 0);
    snprintf(p, sizeof p, "%s/new/dangling", f->dir);
    assert_int_equal(symlink("/nonexistent/qumail-test", p), 0);
    snprintf(good, sizeof good, "%s/new/zgood", f->dir);
    write_file(good, "good", 2000000000);
    snprintf(p, sizeof p, "%s/new/link", f->dir);
    assert_int_equal(symlink(good, p), 0);

    qm_maildir_entry *e;
    size_t n;
    skipped k = { "", 0 };
    assert_int_equal(qm_maildir_list_report(f->dir, &e, &n, on_skip, &k), QM_OK);
    assert_int_equal(n, 2);
    assert_string_equal(e[1].id, "zgood");
    assert_int_equal(e[1].size, 4);
    qm_maildir_entries_free(e, n);
    assert_int_equal(k.count, 4);
    char want[600];
    snprintf(want, sizeof want, "%s/new/fifo=a FIFO;", f->dir);
    assert_non_null(strstr(k.text, want));
    snprintf(want, sizeof want, "%s/cur/adir:2,=a directory;", f->dir);
    assert_non_null(strstr(k.text, want));
    snprintf(want, sizeof want, "%s/new/dangling=a symbolic link;", f->dir);
    assert_non_null(strstr(k.text, want));
    snprintf(want, sizeof want, "%s/new/link=a symbolic link;", f->dir);
    assert_non_null(strstr(k.text, want));
    /* none of them reads as a message, and reading does not block */
    uint8_t *got;
    size_t len;
    assert_int_equal(qm_maildir_read(f->dir, "fifo", &got, &len), QM_E_NOT_FOUND);
    assert_int_equal(qm_maildir_read_prefix(f->dir, "fifo", 10, &got, &len), QM_E_NOT_FOUND);
    assert_int_equal(qm_maildir_read(f->dir, "link", &got, &len), QM_E_NOT_FOUND);
    assert_int_equal(qm_maildir_read(f->dir, "dangling", &got, &len), QM_E_NOT_FOUND);
    /* the plain listing is unchanged */
    assert_int_equal(qm_maildir_list(f->dir, &e, &n), QM_OK);
    assert_int_equal(n, 2);
    qm_maildir_entries_free(e, n);
}

/* A sparse file past QM_MIME_MAX_MESSAGE: listed with its size, refused by
 * read (QM_E_TOO_BIG) without reading it, its prefix readable. */
static void test_oversized_and_prefix(void **state)
{
    fixture *f = *state;
    assert_int_equal(qm_maildir_deliver(f->dir, (const uint8_t *)"0123456789", 10, NULL), QM_OK);
    char p[512];
    snprintf(p, sizeof p, "%s/new/huge", f->dir);
    int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "Subject: big\n", 13), 13);
    assert_int_equal(ftruncate(fd, (off_t)QM_MIME_MAX_MESSAGE + 1), 0);
    close(fd);
    qm_maildir_entry *e;
    size_t n;
    assert_int_equal(qm_maildir_list(f->dir, &e, &n), QM_OK);
    assert_int_equal(n, 2);
    size_t huge = strcmp(e[0].id, "huge") == 0 ? 0 : 1;
    assert_int_equal(e[huge].size, (int64_t)QM_MIME_MAX_MESSAGE + 1);
    char *small_id = strdup(e[1 - huge].id);
    qm_maildir_entries_free(e, n);
    uint8_t *got = NULL;
    size_t len = 0;
    assert_int_equal(qm_maildir_read(f->dir, "huge", &got, &len), QM_E_TOO_BIG);
    assert_null(got);
    assert_int_equal(qm_maildir_read_prefix(f->dir, "huge", 20, &got, &len), QM_OK);
    assert_int_equal(len, 20);
    assert_memory_equal(got, "Subject: big\n\0\0\0\0\0\0\0", 20);
    free(got);
    /* a prefix longer than the file is the whole file */
    assert_int_equal(qm_maildir_read_prefix(f->dir, small_id, 4096, &got, &len), QM_OK);
    assert_int_equal(len, 10);
    assert_memory_equal(got, "0123456789", 10);
    free(got);
    assert_int_equal(qm_maildir_read_prefix(f->dir, small_id, 4, &got, &len), QM_OK);
    assert_int_equal(len, 4);
    free(got);
    assert_int_equal(qm_maildir_read_prefix(f->dir, small_id, 0, &got, &len), QM_E_USAGE);
    assert_int_equal(qm_maildir_read_prefix(f->dir, "absent", 4, &got, &len), QM_E_NOT_FOUND);
    free(small_id);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_deliver_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_message_and_null_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_absent_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cur_keeps_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_order_and_filter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_reports_hostile_entries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversized_and_prefix, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_messages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unwritable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deliver_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deliver_all_or_none, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deliver_all_link_fails, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
