/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keystore_fixture.c - the set-up the key store's unit tests share
 * (keystore_fixture.h): one temporary directory per test, stores opened
 * and fed, the figures checked after every step.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "keystore_fixture.h"

#define CAP (1ull << 30)

void *ksf_new(size_t size)
{
    assert_true(size >= sizeof(ksf));
    ksf *f = calloc(1, size);
    if (!f)
        return NULL;
    /* the program's name tells whose directory a crash left behind */
    snprintf(f->dir, sizeof f->dir, "/tmp/%s.XXXXXX", program_invocation_short_name);
    if (!mkdtemp(f->dir)) {
        free(f);
        return NULL;
    }
    for (int i = 0; i < KSF_STORES; i++)
        snprintf(f->path[i], sizeof f->path[i], "%s/%c.db", f->dir, 'a' + i);
    return f;
}

void ksf_free(void *fixture)
{
    ksf *f = fixture;
    if (!f)
        return;
    DIR *d = opendir(f->dir);
    struct dirent *e;
    char p[512];
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(p, sizeof p, "%s/%s", f->dir, e->d_name);
        unlink(p);
    }
    if (d)
        closedir(d);
    rmdir(f->dir);
    free(f);
}

int ksf_setup(void **state)
{
    *state = ksf_new(sizeof(ksf));
    return *state ? 0 : -1;
}

int ksf_teardown(void **state)
{
    ksf_free(*state);
    return 0;
}

int ksf_teardown_closing(void **state, keystore *const open[], size_t n)
{
    for (size_t i = 0; i < n; i++)
        ks_close(open[i]);
    return ksf_teardown(state);
}

keystore *ksf_open(const ks_options *o)
{
    char err[256];
    keystore *ks = ks_open(o, err, sizeof err);
    if (!ks)
        print_error("ks_open: %s\n", err);
    return ks;
}

keystore *ksf_open_ok(const ks_options *o)
{
    keystore *ks = ksf_open(o);
    assert_non_null(ks);
    return ks;
}

void ksf_fill(uint8_t *p, size_t n, uint64_t seed)
{
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        p[i] = (uint8_t)((x * 0x2545F4914F6CDD1Dull) >> 56);
    }
}

void ksf_feed(keystore *a, const char *a_link, keystore *b, const char *b_link, uint64_t id,
              bool a_owns, const uint8_t *bytes, uint32_t len)
{
    size_t done;
    assert_int_equal(ks_block_store(a, a_link, id, a_owns, bytes, len, CAP), KS_OK);
    assert_int_equal(ks_block_store(b, b_link, id, !a_owns, bytes, len, CAP), KS_OK);
    assert_int_equal(ks_block_confirm(a, a_link, &id, 1, &done), KS_OK);
    assert_int_equal(done, 1);
    assert_int_equal(ks_block_confirm(b, b_link, &id, 1, &done), KS_OK);
    assert_int_equal(done, 1);
}

void ksf_feed_filled(keystore *a, const char *a_link, keystore *b, const char *b_link,
                     uint64_t id, bool a_owns, uint32_t len)
{
    uint8_t *bytes = malloc(len);
    assert_non_null(bytes);
    ksf_fill(bytes, len, id);
    ksf_feed(a, a_link, b, b_link, id, a_owns, bytes, len);
    free(bytes);
}

ks_link_stats ksf_link_stats(keystore *ks, const char *peer)
{
    ks_link_stats st, re;
    assert_int_equal(ks_testing_link_stats_check(ks, peer, &st, &re), KS_OK);
    assert_memory_equal(&st, &re, sizeof st);
    return st;
}

uint64_t ksf_stored(keystore *ks)
{
    ks_stats st;
    assert_int_equal(ks_stats_get(ks, &st), KS_OK);
    return st.stored_keys;
}

uint64_t ksf_held(keystore *ks, const char *slave)
{
    uint64_t bits = UINT64_MAX;
    assert_int_equal(ks_unfetched_get(ks, slave, &bits), KS_OK);
    return bits;
}

void ksf_remote_keys(const ks_reservation *r, ks_remote_key *k, size_t max)
{
    assert_true(r->keys.n <= max);
    for (size_t i = 0; i < r->keys.n; i++) {
        memcpy(k[i].id, r->keys.keys[i].id, 16);
        k[i].size_bits = r->keys.keys[i].size_bits;
        k[i].segs = r->segs + r->first_seg[i];
        k[i].nsegs = r->n_segs[i];
    }
}

void ksf_assert_key(keystore *ks, const char *slave, const ks_reservation *r, size_t i)
{
    ks_batch d;
    const ks_key *k = &r->keys.keys[i];
    assert_int_equal(ks_dec(ks, "alice", slave, (const uint8_t (*)[16])k->id, 1, &d), KS_OK);
    assert_memory_equal(d.keys[0].material, k->material, k->size_bits / 8);
    ks_batch_free(&d);
}

ks_result ksf_dec1(keystore *ks, const char *master, const char *slave, const uint8_t id[16])
{
    ks_batch b;
    ks_result r = ks_dec(ks, master, slave, (const uint8_t (*)[16])id, 1, &b);
    if (r == KS_OK)
        ks_batch_free(&b);
    return r;
}

ks_result ksf_next_void(keystore *ks, ksf_void *v)
{
    return ks_outbox_next_void(ks, v->id, &v->peer, &v->segs, &v->n);
}

void ksf_void_free(ksf_void *v)
{
    free(v->peer);
    free(v->segs);
}

static bool file_contains(const char *path, const uint8_t *needle, size_t n)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return false; /* no file, no material */
    fseek(fp, 0, SEEK_END);
    long sz = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *buf = malloc(sz > 0 ? (size_t)sz : 1);
    assert_non_null(buf);
    size_t got = fread(buf, 1, (size_t)(sz > 0 ? sz : 0), fp);
    fclose(fp);
    bool found = memmem(buf, got, needle, n) != NULL;
    free(buf);
    return found;
}

bool ksf_store_contains(const char *path, const uint8_t *needle, size_t n)
{
    char wal[160];
    snprintf(wal, sizeof wal, "%s-wal", path);
    return file_contains(path, needle, n) || file_contains(wal, needle, n);
}
