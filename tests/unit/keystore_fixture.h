/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keystore_fixture.h - what the key store's unit tests (test_keystore*.c)
 * share: a fresh temporary directory per test with the paths of up to four
 * stores in it, opening a store with given options, feeding one block to
 * both ends of a link, and the figures the tests check after every step
 * (link stats that must equal a recount, stored keys, unfetched bits).
 *
 * A test program's fixture is a ksf, or a struct whose first member is
 * one (ksf_new allocates it, ksf_free removes the directory and frees it).
 * Failed checks are cmocka assertions: the helpers are for tests only.
 */
#ifndef QC_TESTS_KEYSTORE_FIXTURE_H
#define QC_TESTS_KEYSTORE_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kme/keystore.h"

#define KSF_STORES 4

typedef struct ksf {
    char dir[64];                    /* /tmp/<test program>.XXXXXX */
    char path[KSF_STORES][128];      /* <dir>/a.db, b.db, c.db, d.db */
} ksf;

/* A zeroed fixture of size bytes (a ksf first) with its directory made;
 * NULL when that fails. */
void *ksf_new(size_t size);
/* Removes the files of the fixture's directory and the directory, frees
 * the fixture (NULL is fine). */
void ksf_free(void *fixture);

/* cmocka setup and teardown of a plain ksf. */
int ksf_setup(void **state);
int ksf_teardown(void **state);
/* A test of a program whose fixture is a plain ksf. */
#define KSF_TEST(fn) cmocka_unit_test_setup_teardown(fn, ksf_setup, ksf_teardown)
/* cmocka teardown of a fixture holding n stores still open (NULL ones
 * are skipped): closes them, then ksf_free. */
int ksf_teardown_closing(void **state, keystore *const open[], size_t n);

/* ks_open with the ks_open error printed when it fails (NULL then). */
keystore *ksf_open(const ks_options *o);
/* ksf_open that must succeed. */
keystore *ksf_open_ok(const ks_options *o);

/* Deterministic, distinct bytes for seed (xorshift64*): a block's bytes can
 * be recognised in the files. */
void ksf_fill(uint8_t *p, size_t n, uint64_t seed);

/* One block on the link between stores a and b, a naming the link
 * a_link (b's name) and b naming it b_link, owned by a when a_owns:
 * stored and confirmed at both ends. */
void ksf_feed(keystore *a, const char *a_link, keystore *b, const char *b_link, uint64_t id,
              bool a_owns, const uint8_t *bytes, uint32_t len);
/* The same with len bytes of ksf_fill(id). */
void ksf_feed_filled(keystore *a, const char *a_link, keystore *b, const char *b_link,
                     uint64_t id, bool a_owns, uint32_t len);

/* The figures of the link to peer; the running totals must equal a
 * recount over the blocks. */
ks_link_stats ksf_link_stats(keystore *ks, const char *peer);
/* Keys stored (ks_stats_get). */
uint64_t ksf_stored(keystore *ks);
/* Bits held at ks for slave, not fetched yet. */
uint64_t ksf_held(keystore *ks, const char *slave);

/* The keys of reservation r as the peer receives them (at most max). */
void ksf_remote_keys(const ks_reservation *r, ks_remote_key *k, size_t max);
/* Key i of reservation r (made for master alice) decrypts at ks for slave
 * with r's material. */
void ksf_assert_key(keystore *ks, const char *slave, const ks_reservation *r, size_t i);
/* ks_dec of one key, the batch freed. */
ks_result ksf_dec1(keystore *ks, const char *master, const char *slave, const uint8_t id[16]);

/* A void the store's outbox has to send on (ks_outbox_next_void);
 * ksf_void_free frees what a KS_OK left in it. */
typedef struct ksf_void {
    uint8_t id[16];
    char *peer;
    ks_segment *segs;
    size_t n;
} ksf_void;
ks_result ksf_next_void(keystore *ks, ksf_void *v);
void ksf_void_free(ksf_void *v);

/* Whether the store at path or its WAL file holds the n bytes of needle. */
bool ksf_store_contains(const char *path, const uint8_t *needle, size_t n);

#endif
