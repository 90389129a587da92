/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_keystore_relay.c - unit tests of the trusted-node relay in the key
 * store (src/kme/keystore_relay.c, relay_seal.c; docs/network.md §3).
 *
 * First the seal alone: a round trip, and every input tampered with (an
 * aad byte, a cipher byte, a tag byte, another pad or MAC key, the split
 * between aad and cipher) fails and writes nothing.  Then a chain of three
 * stores in one process, A - B - C, each link fed the same blocks at both
 * ends: A reserves K on A-B (ks_remote_enc), B forwards it sealed under
 * B-C bits (ks_relay_forward), C stores it (ks_relay_deliver) and ks_dec
 * at C must give exactly A's material.  The tests attack C with tampered
 * messages (nothing may change), repeat messages (idempotent), void at B
 * before and after C applied (the void travels on, C deletes the keys),
 * kill B between forward and answer (the entry is of unknown fate after
 * reopen), run B's next link dry (KS_EMPTY, nothing changes) and name
 * another link's bits; a fourth store D checks a second relay (sealed in,
 * resealed out).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kme/keystore.h"
#include "kme/relay_seal.h"
#include "keystore_fixture.h"

/* ---- the seal ------------------------------------------------------------ */

static void seal_inputs(uint8_t pad[64], uint8_t mac[32], uint8_t k[64])
{
    for (int i = 0; i < 64; i++) {
        pad[i] = (uint8_t)(i * 7 + 1);
        k[i] = (uint8_t)(255 - i);
    }
    for (int i = 0; i < 32; i++)
        mac[i] = (uint8_t)(i * 13 + 5);
}

static void test_seal_round_trip(void **state)
{
    (void)state;
    uint8_t pad[64], mac[32], k[64], cipher[64], tag[16], back[64];
    const uint8_t aad[] = "reservation 1, path A B C";
    seal_inputs(pad, mac, k);
    relay_seal(pad, mac, aad, sizeof aad, k, 64, cipher, tag);
    for (int i = 0; i < 64; i++)
        assert_int_equal(cipher[i], k[i] ^ pad[i]);
    assert_int_equal(relay_open(pad, mac, aad, sizeof aad, cipher, 64, tag, back), 0);
    assert_memory_equal(back, k, 64);
    /* no aad at all is a valid encoding too */
    relay_seal(pad, mac, NULL, 0, k, 64, cipher, tag);
    assert_int_equal(relay_open(pad, mac, NULL, 0, cipher, 64, tag, back), 0);
    assert_memory_equal(back, k, 64);
}

/* Every input tampered with: -1, and the output untouched. */
static void test_seal_tampered(void **state)
{
    (void)state;
    uint8_t pad[64], mac[32], k[64], cipher[64], tag[16], back[64];
    uint8_t aad[16] = "reservation 2";
    seal_inputs(pad, mac, k);
    relay_seal(pad, mac, aad, sizeof aad, k, 64, cipher, tag);
    uint8_t *fields[] = {aad, cipher, tag, mac, pad};
    size_t lens[] = {sizeof aad, 64, 16, 32, 64};
    for (size_t f = 0; f < 5; f++) {
        for (size_t at = 0; at < lens[f]; at += lens[f] - 1) {
            fields[f][at] ^= 0x01;
            memset(back, 0xA5, sizeof back);
            int rc = relay_open(pad, mac, aad, sizeof aad, cipher, 64, tag, back);
            fields[f][at] ^= 0x01;
            if (f == 4) { /* another pad: the tag still holds, K comes out wrong */
                assert_int_equal(rc, 0);
                assert_memory_not_equal(back, k, 64);
                continue;
            }
            assert_int_equal(rc, -1);
            for (size_t i = 0; i < sizeof back; i++)
                assert_int_equal(back[i], 0xA5);
        }
    }
    /* moving the split between aad and cipher changes the tag (the length
     * prefix): "aad" + 'x' + cipher[1..] is not "aadx" + cipher[1..] */
    uint8_t aad2[17];
    memcpy(aad2, aad, 16);
    aad2[16] = cipher[0];
    assert_int_equal(relay_open(pad + 1, mac, aad2, 17, cipher + 1, 63, tag, back), -1);
    assert_int_equal(relay_open(pad, mac, aad, sizeof aad, cipher, 64, tag, back), 0);
    assert_memory_equal(back, k, 64);
}

/* ---- a chain of three stores --------------------------------------------- */

enum { A, B, C, D }; /* the stores' paths in the ksf */

typedef struct chain {
    ksf t;
    keystore *a, *b, *c;
} chain;

static keystore *open_one(const char *path)
{
    ks_options o = {.path = path, .local_cap_bits = 1u << 20, .key_ttl_s = 3600,
                    .slave_unfetched_bits = UINT64_C(1) << 40};
    return ksf_open_ok(&o);
}

static int setup(void **state)
{
    chain *ch = ksf_new(sizeof *ch);
    if (!ch)
        return -1;
    ch->a = open_one(ch->t.path[A]);
    ch->b = open_one(ch->t.path[B]);
    ch->c = open_one(ch->t.path[C]);
    ksf_feed_filled(ch->a, "KME-B", ch->b, "KME-A", 1, true, 1000);   /* A-B, A's */
    ksf_feed_filled(ch->b, "KME-C", ch->c, "KME-B", 2, true, 1000);   /* B-C, B's */
    ksf_feed_filled(ch->c, "KME-B", ch->b, "KME-C", 3, true, 1000);   /* B-C, C's */
    *state = ch;
    return 0;
}

static int teardown(void **state)
{
    chain *ch = *state;
    return ksf_teardown_closing(state, (keystore *[]){ch->a, ch->b, ch->c}, 3);
}

static const char *const SL[] = {"carol"};
static const uint8_t AAD1[] = "hop 1 -> 2";
static const uint8_t AAD2[] = "hop 2 -> 3";

/* What B received from A, and what C receives from B. */
typedef struct hop {
    ks_remote_key keys[4];
    ks_relay_in in;
} hop;

static void hop_first(hop *h, const ks_reservation *r)
{
    memset(h, 0, sizeof *h);
    ksf_remote_keys(r, h->keys, 4);
    h->in = (ks_relay_in){.from_peer = "KME-A", .master = "alice", .slaves = SL, .nslaves = 1,
                          .expires_ms = r->expires_ms, .keys = h->keys, .n = r->keys.n,
                          .aad = AAD1, .aad_len = sizeof AAD1};
    memcpy(h->in.id, r->id, 16);
}

static void hop_sealed(hop *h, const hop *prev, const ks_relay_out *o)
{
    *h = *prev;
    for (size_t i = 0; i < prev->in.n; i++) {
        h->keys[i].segs = NULL;
        h->keys[i].nsegs = 0;
    }
    h->in.keys = h->keys;
    h->in.from_peer = "KME-B";
    h->in.sealed = true;
    h->in.pad = o->pad;
    h->in.npad = o->npad;
    h->in.cipher = o->cipher;
    h->in.cipher_len = o->cipher_len;
    h->in.tag = o->tag;
    h->in.aad = AAD2;
    h->in.aad_len = sizeof AAD2;
}

static ks_res_state res_state(keystore *ks, const uint8_t id[16])
{
    ks_res_state st;
    assert_int_equal(ks_reservation_state(ks, id, &st), KS_OK);
    return st;
}

/* A reserves n keys of 256 bits for carol behind C; h1 is what B
 * receives. */
static void a_reserves(chain *ch, uint32_t n, ks_reservation *r, hop *h1)
{
    assert_int_equal(ks_remote_enc(ch->a, "KME-B", "alice", SL, 1, n, 256, r), KS_OK);
    hop_first(h1, r);
}

/* A reserves 2 keys; B forwards them. */
static void start(chain *ch, ks_reservation *r, hop *h1, ks_relay_out *o)
{
    a_reserves(ch, 2, r, h1);
    assert_int_equal(ks_relay_forward(ch->b, &h1->in, "KME-C", AAD2, sizeof AAD2, o), KS_OK);
}

/* One reservation of A's on its way: what B received (h1) and sent (o),
 * what C receives from B (h2). */
typedef struct relay {
    ks_reservation r;
    hop h1, h2;
    ks_relay_out o;
} relay;

static void start_sealed(chain *ch, relay *x)
{
    start(ch, &x->r, &x->h1, &x->o);
    hop_sealed(&x->h2, &x->h1, &x->o);
}

static void relay_free(relay *x)
{
    ks_relay_out_free(&x->o);
    ks_reservation_free(&x->r);
}

/* Every key of r decrypts at ks for carol with A's material. */
static void assert_keys_at(keystore *ks, const ks_reservation *r)
{
    for (size_t i = 0; i < r->keys.n; i++)
        ksf_assert_key(ks, "carol", r, i);
}

static void test_chain_delivers(void **state)
{
    chain *ch = *state;
    relay x;
    start_sealed(ch, &x);
    assert_int_equal(x.o.cipher_len, 64);
    assert_non_null(x.o.cipher);
    uint64_t pad_bytes = 0;
    for (size_t i = 0; i < x.o.npad; i++) {
        assert_int_equal(x.o.pad[i].block_id, 2); /* B's own block of B-C */
        pad_bytes += x.o.pad[i].length;
    }
    assert_int_equal(pad_bytes, 64 + 32);
    assert_memory_not_equal(x.o.cipher, x.r.keys.keys[0].material, 32);
    assert_int_equal(res_state(ch->b, x.r.id), KS_RES_RELAYING);
    assert_int_equal(ksf_link_stats(ch->b, "KME-A").peer_bits, (1000 - 64) * 8);
    assert_int_equal(ksf_link_stats(ch->b, "KME-C").own_bits, (1000 - 96) * 8);
    assert_int_equal(ksf_stored(ch->b), 0); /* a trusted node keeps no keys */

    assert_int_equal(ks_relay_deliver(ch->c, &x.h2.in), KS_OK);
    assert_int_equal(ksf_link_stats(ch->c, "KME-B").peer_bits, (1000 - 96) * 8);
    assert_int_equal(ksf_stored(ch->c), 2);
    assert_int_equal(res_state(ch->c, x.r.id), KS_RES_APPLIED);
    /* a repeat changes nothing */
    assert_int_equal(ks_relay_deliver(ch->c, &x.h2.in), KS_OK);
    assert_int_equal(ksf_stored(ch->c), 2);
    /* a repeat at B while the answer is awaited is not a new relay */
    ks_relay_out o2;
    assert_int_equal(ks_relay_forward(ch->b, &x.h1.in, "KME-C", AAD2, sizeof AAD2, &o2),
                     KS_CONFLICT);
    assert_null(o2.cipher);
    assert_int_equal(ks_relay_done(ch->b, x.r.id, true), KS_OK);
    assert_int_equal(ks_relay_done(ch->b, x.r.id, true), KS_NOT_FOUND);
    assert_int_equal(res_state(ch->b, x.r.id), KS_RES_APPLIED);
    /* after the downstream applied: OK, nothing to send */
    assert_int_equal(ks_relay_forward(ch->b, &x.h1.in, "KME-C", AAD2, sizeof AAD2, &o2), KS_OK);
    assert_null(o2.cipher);
    assert_int_equal(o2.npad, 0);
    assert_int_equal(ksf_link_stats(ch->b, "KME-C").own_bits, (1000 - 96) * 8);
    /* the same ID to another next hop, or with other content, conflicts */
    assert_int_equal(ks_relay_forward(ch->b, &x.h1.in, "KME-D", AAD2, sizeof AAD2, &o2),
                     KS_CONFLICT);
    assert_keys_at(ch->c, &x.r);
    ksf_void v;
    assert_int_equal(ksf_next_void(ch->b, &v), KS_NOT_FOUND);
    relay_free(&x);
}

/* Two trusted nodes, A - B - C - D: C receives K sealed and reseals it
 * under C-D bits; D gets A's material. */
static void test_two_relays(void **state)
{
    chain *ch = *state;
    keystore *d = open_one(ch->t.path[D]);
    ksf_feed_filled(ch->c, "KME-D", d, "KME-C", 5, true, 1000); /* C-D, C's */
    relay x;
    hop h3;
    ks_relay_out o2;
    start_sealed(ch, &x);
    static const uint8_t aad3[] = "hop 3 -> 4";
    assert_int_equal(ks_relay_forward(ch->c, &x.h2.in, "KME-D", aad3, sizeof aad3, &o2), KS_OK);
    assert_int_equal(ksf_stored(ch->c), 0);
    assert_int_equal(ksf_link_stats(ch->c, "KME-B").peer_bits, (1000 - 96) * 8);
    assert_int_equal(ksf_link_stats(ch->c, "KME-D").own_bits, (1000 - 96) * 8);
    hop_sealed(&h3, &x.h2, &o2);
    h3.in.from_peer = "KME-C";
    h3.in.aad = aad3;
    h3.in.aad_len = sizeof aad3;
    assert_int_equal(ks_relay_deliver(d, &h3.in), KS_OK);
    assert_keys_at(d, &x.r);
    /* the cipher differs on every hop: fresh pads */
    assert_memory_not_equal(x.o.cipher, o2.cipher, 64);
    assert_int_equal(ks_relay_done(ch->c, x.r.id, true), KS_OK);
    assert_int_equal(ks_relay_done(ch->b, x.r.id, true), KS_OK);
    ks_close(d);
    ks_relay_out_free(&x.o);
    ks_relay_out_free(&o2);
    ks_reservation_free(&x.r);
}

/* Tampered messages at C: KS_TAMPERED and nothing changed; the genuine
 * message still applies afterwards. */
static void test_tampered_at_last_hop(void **state)
{
    chain *ch = *state;
    relay x;
    start_sealed(ch, &x);
    ks_link_stats before = ksf_link_stats(ch->c, "KME-B");
    uint8_t aad[sizeof AAD2], tag[16], cipher[64];
    ks_segment moved[8];
    assert_true(x.o.npad <= 8);
    for (int attack = 0; attack < 4; attack++) {
        memcpy(aad, AAD2, sizeof aad);
        memcpy(tag, x.o.tag, 16);
        memcpy(cipher, x.o.cipher, 64);
        memcpy(moved, x.o.pad, x.o.npad * sizeof *moved);
        hop t = x.h2;
        t.in.aad = aad;
        t.in.tag = tag;
        t.in.cipher = cipher;
        t.in.pad = moved;
        if (attack == 0)
            cipher[5] ^= 0x80;
        else if (attack == 1)
            tag[15] ^= 0x01;
        else if (attack == 2)
            aad[0] ^= 0x01;
        else
            moved[0].offset += 200; /* other bits of the link: another pad and MAC key */
        assert_int_equal(ks_relay_deliver(ch->c, &t.in), KS_TAMPERED);
        ks_link_stats now = ksf_link_stats(ch->c, "KME-B");
        assert_memory_equal(&now, &before, sizeof now);
        assert_int_equal(ksf_stored(ch->c), 0);
        assert_int_equal(res_state(ch->c, x.r.id), KS_RES_UNKNOWN);
    }
    assert_int_equal(ks_relay_deliver(ch->c, &x.h2.in), KS_OK);
    assert_keys_at(ch->c, &x.r);
    relay_free(&x);
}

/* A void from A after C applied: B sends C a void without segments, C
 * deletes the keys. */
static void test_void_after_applied(void **state)
{
    chain *ch = *state;
    relay x;
    start_sealed(ch, &x);
    assert_int_equal(ks_relay_deliver(ch->c, &x.h2.in), KS_OK);
    assert_int_equal(ks_relay_done(ch->b, x.r.id, true), KS_OK);
    /* from another peer: not its reservation */
    assert_int_equal(ks_void_apply(ch->b, "KME-C", x.r.id, NULL, 0), KS_CONFLICT);
    assert_int_equal(ks_void_apply(ch->b, "KME-A", x.r.id, x.r.segs, x.r.total_segs), KS_OK);
    assert_int_equal(res_state(ch->b, x.r.id), KS_RES_VOIDED);
    assert_int_equal(ks_void_apply(ch->b, "KME-A", x.r.id, x.r.segs, x.r.total_segs), KS_OK);
    ksf_void v = {.n = 99};
    assert_int_equal(ksf_next_void(ch->b, &v), KS_OK);
    assert_memory_equal(v.id, x.r.id, 16);
    assert_string_equal(v.peer, "KME-C");
    assert_int_equal(v.n, 0);
    ks_link_stats before = ksf_link_stats(ch->c, "KME-B");
    assert_int_equal(ks_void_apply(ch->c, "KME-B", v.id, v.segs, v.n), KS_OK);
    assert_int_equal(ksf_stored(ch->c), 0);
    assert_int_equal(res_state(ch->c, x.r.id), KS_RES_VOIDED);
    ks_link_stats now = ksf_link_stats(ch->c, "KME-B");
    assert_memory_equal(&now, &before, sizeof now);
    ksf_void_free(&v);
    assert_int_equal(ks_outbox_void_sent(ch->b, v.id), KS_OK);
    assert_int_equal(ksf_next_void(ch->b, &v), KS_NOT_FOUND);
    /* the relay cannot come back */
    assert_int_equal(ks_relay_deliver(ch->c, &x.h2.in), KS_CONFLICT);
    relay_free(&x);
}

/* A void from A while B awaits C: the pending entry becomes a void with
 * the pad's segments, C's late 200 is refused, and C burns the pad. */
static void test_void_while_relaying(void **state)
{
    chain *ch = *state;
    relay x;
    start_sealed(ch, &x);
    assert_int_equal(ks_void_apply(ch->b, "KME-A", x.r.id, x.r.segs, x.r.total_segs), KS_OK);
    assert_int_equal(ks_relay_deliver(ch->c, &x.h2.in), KS_OK); /* C answered late */
    assert_int_equal(ks_relay_done(ch->b, x.r.id, true), KS_NOT_FOUND);
    ksf_void v;
    assert_int_equal(ksf_next_void(ch->b, &v), KS_OK);
    assert_memory_equal(v.id, x.r.id, 16);
    assert_int_equal(v.n, x.o.npad);
    assert_memory_equal(v.segs, x.o.pad, v.n * sizeof *v.segs);
    assert_int_equal(ks_void_apply(ch->c, "KME-B", v.id, v.segs, v.n), KS_OK);
    assert_int_equal(ksf_stored(ch->c), 0);
    ksf_void_free(&v);
    relay_free(&x);
}

/* B stops between forward and answer: after reopen the entry is of
 * unknown fate, and the downstream's word settles the reservation. */
static void test_crash_leaves_pending(void **state)
{
    chain *ch = *state;
    relay x;
    ks_reservation r2;
    ks_relay_out o2;
    start_sealed(ch, &x);
    /* B's outbox lists by time, then by (random) ID: r2 one ms later */
    ks_testing_advance_clock(ch->b, 1);
    a_reserves(ch, 1, &r2, &x.h1);
    assert_int_equal(ks_relay_forward(ch->b, &x.h1.in, "KME-C", AAD2, sizeof AAD2, &o2), KS_OK);
    ks_close(ch->b);
    ch->b = open_one(ch->t.path[B]);
    assert_int_equal(ks_outbox_recover(ch->b), 2);
    ksf_void v;
    assert_int_equal(ks_outbox_next_unknown(ch->b, v.id, &v.peer), KS_OK);
    assert_memory_equal(v.id, x.r.id, 16);
    assert_string_equal(v.peer, "KME-C");
    free(v.peer);
    assert_int_equal(res_state(ch->b, x.r.id), KS_RES_RELAYING);
    assert_int_equal(ks_outbox_settle(ch->b, x.r.id, true), KS_OK);
    assert_int_equal(res_state(ch->b, x.r.id), KS_RES_APPLIED);
    assert_int_equal(ks_outbox_settle(ch->b, r2.id, false), KS_OK);
    assert_int_equal(res_state(ch->b, r2.id), KS_RES_VOIDED);
    assert_int_equal(ksf_next_void(ch->b, &v), KS_OK);
    assert_memory_equal(v.id, r2.id, 16);
    assert_int_equal(v.n, o2.npad);
    ksf_void_free(&v);
    assert_int_equal(ks_outbox_next_unknown(ch->b, v.id, &v.peer), KS_NOT_FOUND);
    relay_free(&x);
    ks_relay_out_free(&o2);
    ks_reservation_free(&r2);
}

/* Too few bits on B-C: KS_EMPTY and nothing changes at B (the A-B bits
 * stay usable for the retry once the link refilled). */
static void test_next_link_short(void **state)
{
    chain *ch = *state;
    ks_reservation r, big;
    hop h1;
    ks_relay_out o;
    /* leave 64 + 31 bytes on B's side of B-C: one byte short */
    assert_int_equal(ks_remote_enc(ch->b, "KME-C", "bob", SL, 1, 1, (1000 - 95) * 8, &big),
                     KS_OK);
    a_reserves(ch, 2, &r, &h1);
    ks_link_stats ba = ksf_link_stats(ch->b, "KME-A"), bc = ksf_link_stats(ch->b, "KME-C");
    assert_int_equal(ks_relay_forward(ch->b, &h1.in, "KME-C", AAD2, sizeof AAD2, &o), KS_EMPTY);
    assert_null(o.cipher);
    ks_link_stats ba2 = ksf_link_stats(ch->b, "KME-A"), bc2 = ksf_link_stats(ch->b, "KME-C");
    assert_memory_equal(&ba, &ba2, sizeof ba);
    assert_memory_equal(&bc, &bc2, sizeof bc);
    assert_int_equal(res_state(ch->b, r.id), KS_RES_UNKNOWN);
    assert_int_equal(ks_relay_done(ch->b, r.id, true), KS_NOT_FOUND);
    /* no such link at all */
    assert_int_equal(ks_relay_forward(ch->b, &h1.in, "KME-Q", AAD2, sizeof AAD2, &o), KS_EMPTY);
    ksf_feed_filled(ch->b, "KME-C", ch->c, "KME-B", 4, true, 100);
    assert_int_equal(ks_relay_forward(ch->b, &h1.in, "KME-C", AAD2, sizeof AAD2, &o), KS_OK);
    ks_relay_out_free(&o);
    ks_reservation_free(&r);
    ks_reservation_free(&big);
}

/* Bits of another link, or a message that does not add up: refused, and
 * nothing changes. */
static void test_wrong_link_and_shape(void **state)
{
    chain *ch = *state;
    ks_reservation r;
    hop h1;
    ks_relay_out o;
    a_reserves(ch, 1, &r, &h1);
    h1.in.from_peer = "KME-C"; /* A-B bits claimed by C */
    assert_int_equal(ks_relay_forward(ch->b, &h1.in, "KME-A", AAD2, sizeof AAD2, &o),
                     KS_REJECTED);
    assert_int_equal(ks_relay_deliver(ch->b, &h1.in), KS_REJECTED);
    assert_int_equal(ksf_link_stats(ch->b, "KME-A").peer_bits, 1000 * 8);
    h1.in.from_peer = "KME-A";
    assert_int_equal(ks_relay_forward(ch->b, &h1.in, "KME-A", AAD2, sizeof AAD2, &o),
                     KS_ERROR); /* back where it came from */
    h1.keys[0].size_bits = 264; /* segments no longer add up */
    assert_int_equal(ks_relay_deliver(ch->b, &h1.in), KS_REJECTED);
    h1.keys[0].size_bits = 256;
    hop t = h1;
    t.in.sealed = true; /* sealed without pad or cipher */
    assert_int_equal(ks_relay_deliver(ch->b, &t.in), KS_ERROR);
    uint8_t cipher[32] = {0}, tag[16] = {0};
    ks_segment pad = {1, 0, 32}; /* 32 bytes: no room for the MAC key */
    t.in.pad = &pad;
    t.in.npad = 1;
    t.in.cipher = cipher;
    t.in.cipher_len = 32;
    t.in.tag = tag;
    assert_int_equal(ks_relay_deliver(ch->b, &t.in), KS_REJECTED);
    assert_int_equal(ksf_link_stats(ch->b, "KME-A").peer_bits, 1000 * 8);
    assert_int_equal(ksf_stored(ch->b), 0);
    /* the genuine first hop delivers at B (a one-relay path) */
    assert_int_equal(ks_relay_deliver(ch->b, &h1.in), KS_OK);
    ksf_assert_key(ch->b, "carol", &r, 0);
    ks_reservation_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seal_round_trip),
        cmocka_unit_test(test_seal_tampered),
        cmocka_unit_test_setup_teardown(test_chain_delivers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_relays, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tampered_at_last_hop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_void_after_applied, setup, teardown),
        cmocka_unit_test_setup_teardown(test_void_while_relaying, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_leaves_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_next_link_short, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_link_and_shape, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
