/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_qumail_envelope.c - the QuMail envelope (src/mail/envelope.c)
 * against docs/qumail-format.md §2.
 *
 * The test encodes envelopes itself, field by field from the format page
 * (spec_encode below), so it checks the writer against the document rather
 * than against itself: the writer must produce the same bytes, the parser
 * must accept them and reproduce the fields, and every rule of §2 gets a
 * mutated encoding that the parser must reject with the right code.
 * Truncating a valid envelope at every length must fail cleanly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mail/envelope.h"

/* ---- an independent encoder, straight from the format page -------------- */

#define MAXP 4   /* pad keys per group in these tests */

/* What to encode.  valid_l1() etc. give a valid envelope; tests change one
 * thing.  Key IDs are small numbers n, encoded as 15 bytes 0xA5 and n. */
typedef struct spec {
    const char *magic;
    int version, level;
    const char *alg, *sender;
    uint64_t msg_len;
    int n_groups, n_recipients;
    uint32_t n_pad[QM_MAX_GROUPS + 2];   /* level 1 */
    uint32_t pad_len[QM_MAX_GROUPS + 2][MAXP];
    int pad_id[QM_MAX_GROUPS + 2][MAXP];
    uint32_t key_len[QM_MAX_GROUPS + 2]; /* level 2 */
    int key_id[QM_MAX_GROUPS + 2];
    const char *rcpt[QM_MAX_RECIPIENTS + 2];
    int group[QM_MAX_RECIPIENTS + 2];
    uint32_t mac_len[QM_MAX_RECIPIENTS + 2];
    int mac_id[QM_MAX_RECIPIENTS + 2];
    long body_delta;                    /* bytes more (or fewer) body than due */
} spec;

static const char *const names[] = {
    "SAE_B1", "SAE_B2", "SAE_C1", "R3", "R4", "R5", "R6", "R7", "R8", "R9",
    "R10", "R11", "R12", "R13", "R14", "R15", "R16", "R17",
};

static spec base(int level, int groups, int recipients, uint64_t msg_len)
{
    spec s = { .magic = "QUMAIL", .version = 1, .level = level,
               .alg = qm_level_alg(level), .sender = "SAE_A1", .msg_len = msg_len,
               .n_groups = groups, .n_recipients = recipients };
    for (int r = 0; r < recipients; r++) {
        s.rcpt[r] = names[r];
        s.group[r] = r < groups ? r : 0;
        s.mac_len[r] = 32;
        s.mac_id[r] = 100 + r;
    }
    for (int g = 0; g < groups; g++) {
        s.key_len[g] = 32;
        s.key_id[g] = 200 + g;
    }
    return s;
}

/* Level 1, L = 100: group 0 = pads of 60 and 40 bytes for SAE_B1 and
 * SAE_B2 (multicast); group 1 = one pad of 100 bytes for SAE_C1. */
static spec valid_l1(void)
{
    spec s = base(1, 2, 3, 100);
    s.n_pad[0] = 2;
    s.pad_len[0][0] = 60; s.pad_id[0][0] = 1;
    s.pad_len[0][1] = 40; s.pad_id[0][1] = 2;
    s.n_pad[1] = 1;
    s.pad_len[1][0] = 100; s.pad_id[1][0] = 3;
    s.group[0] = 0; s.group[1] = 0; s.group[2] = 1;
    return s;
}

static spec valid_l2(void) { return base(2, 2, 2, 77); }
static spec valid_l4(void) { return base(4, 1, 2, 33); }

typedef struct buf { uint8_t *p; size_t len, cap; } buf;

static void put(buf *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    if (n > 0)
        memcpy(b->p + b->len, p, n);
    b->len += n;
}

static void put_be(buf *b, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--) {
        uint8_t c = (uint8_t)(v >> (8 * i));
        put(b, &c, 1);
    }
}

static void put_str8(buf *b, const char *s)
{
    put_be(b, strlen(s), 1);
    put(b, s, strlen(s));
}

static void id_bytes(int n, uint8_t out[16])
{
    memset(out, 0xA5, 15);
    out[15] = (uint8_t)n;
}

static void put_key(buf *b, int id, uint32_t len)
{
    uint8_t raw[16];
    id_bytes(id, raw);
    put(b, raw, 16);
    put_be(b, len, 4);
}

static void put_group(buf *b, const spec *s, int g)
{
    if (s->level == 1) {
        put_be(b, s->n_pad[g], 4);
        for (uint32_t i = 0; i < s->n_pad[g] && i < MAXP; i++)
            put_key(b, s->pad_id[g][i], s->pad_len[g][i]);
    } else if (s->level == 2) {
        uint8_t salt[32], nonce[12];
        memset(salt, 0x50 + g, sizeof salt);
        memset(nonce, 0x60 + g, sizeof nonce);
        put_key(b, s->key_id[g], s->key_len[g]);
        put(b, salt, sizeof salt);
        put(b, nonce, sizeof nonce);
    }
}

/* The header alone; *header_len set. */
static buf spec_header(const spec *s)
{
    buf b = { 0 };
    put(&b, s->magic, 6);
    put_be(&b, (uint64_t)s->version, 1);
    put_be(&b, (uint64_t)s->level, 1);
    put_str8(&b, s->alg);
    put_str8(&b, s->sender);
    put_be(&b, s->msg_len, 8);
    put_be(&b, (uint64_t)s->n_groups, 1);
    put_be(&b, (uint64_t)s->n_recipients, 1);
    for (int g = 0; g < s->n_groups; g++)
        put_group(&b, s, g);
    for (int r = 0; r < s->n_recipients; r++) {
        put_str8(&b, s->rcpt[r]);
        put_be(&b, (uint64_t)s->group[r], 1);
        if (s->level == 1)
            put_key(&b, s->mac_id[r], s->mac_len[r]);
    }
    return b;
}

/* Header and a body of the length the spec implies (plus body_delta);
 * body bytes are a counting pattern. */
static buf spec_encode(const spec *s)
{
    buf b = spec_header(s);
    uint64_t body = (uint64_t)s->n_groups * s->msg_len
                  + (s->level == 4 ? 0 : (uint64_t)s->n_recipients * 16);
    if (s->body_delta < 0 && (uint64_t)-s->body_delta > body)
        body = 0;
    else
        body += (uint64_t)s->body_delta;
    if (s->msg_len > QM_MAX_MESSAGE)
        body = 0;   /* rejected from the header alone; no need for 2^30 bytes */
    assert_true(body < 64u * 1024 * 1024);
    uint8_t *zeros = malloc(body + 1);
    assert_non_null(zeros);
    for (uint64_t i = 0; i < body; i++)
        zeros[i] = (uint8_t)i;
    put(&b, zeros, (size_t)body);
    free(zeros);
    return b;
}

static qm_err parse_spec(const spec *s)
{
    buf b = spec_encode(s);
    qm_envelope e;
    qm_envelope_view v;
    qm_err rc = qm_envelope_parse(b.p, b.len, &e, &v);
    qm_envelope_free(&e);
    free(b.p);
    return rc;
}

/* ---- building with the library -------------------------------------------- */

static qm_key_ref ref(int id, uint32_t len)
{
    qm_key_ref k;
    id_bytes(id, k.id);
    k.len = len;
    return k;
}

/* The library's version of valid_l1(). */
static void build_l1(qm_envelope *e)
{
    qm_key_ref g0[2] = { ref(1, 60), ref(2, 40) }, g1[1] = { ref(3, 100) };
    qm_key_ref m0 = ref(100, 32), m1 = ref(101, 32), m2 = ref(102, 32);
    uint8_t gi;
    assert_int_equal(qm_envelope_init(e, 1, "SAE_A1", 100), QM_OK);
    assert_int_equal(qm_envelope_add_group(e, g0, 2, NULL, &gi), QM_OK);
    assert_int_equal(gi, 0);
    assert_int_equal(qm_envelope_add_group(e, g1, 1, NULL, &gi), QM_OK);
    assert_int_equal(gi, 1);
    assert_int_equal(qm_envelope_add_recipient(e, "SAE_B1", 0, &m0), QM_OK);
    assert_int_equal(qm_envelope_add_recipient(e, "SAE_B2", 0, &m1), QM_OK);
    assert_int_equal(qm_envelope_add_recipient(e, "SAE_C1", 1, &m2), QM_OK);
}

static void build_l2(qm_envelope *e)
{
    qm_key_ref k0 = ref(200, 32), k1 = ref(201, 32);
    assert_int_equal(qm_envelope_init(e, 2, "SAE_A1", 77), QM_OK);
    assert_int_equal(qm_envelope_add_group(e, NULL, 0, &k0, NULL), QM_OK);
    assert_int_equal(qm_envelope_add_group(e, NULL, 0, &k1, NULL), QM_OK);
    for (int g = 0; g < 2; g++) {
        memset(e->groups[g].salt, 0x50 + g, QM_SALT_LEN);
        memset(e->groups[g].nonce, 0x60 + g, QM_NONCE_LEN);
    }
    assert_int_equal(qm_envelope_add_recipient(e, "SAE_B1", 0, NULL), QM_OK);
    assert_int_equal(qm_envelope_add_recipient(e, "SAE_B2", 1, NULL), QM_OK);
}

static void build_l4(qm_envelope *e)
{
    assert_int_equal(qm_envelope_init(e, 4, "SAE_A1", 33), QM_OK);
    assert_int_equal(qm_envelope_add_group(e, NULL, 0, NULL, NULL), QM_OK);
    assert_int_equal(qm_envelope_add_recipient(e, "SAE_B1", 0, NULL), QM_OK);
    assert_int_equal(qm_envelope_add_recipient(e, "SAE_B2", 0, NULL), QM_OK);
}

static void assert_same_envelope(const qm_envelope *a, const qm_envelope *b)
{
    assert_int_equal(a->version, b->version);
    assert_int_equal(a->level, b->level);
    assert_string_equal(a->sender, b->sender);
    assert_true(a->msg_len == b->msg_len);
    assert_int_equal(a->n_groups, b->n_groups);
    assert_int_equal(a->n_recipients, b->n_recipients);
    for (int g = 0; g < a->n_groups; g++) {
        const qm_group *x = &a->groups[g], *y = &b->groups[g];
        assert_int_equal(x->n_pad_keys, y->n_pad_keys);
        for (uint32_t i = 0; i < x->n_pad_keys; i++) {
            assert_memory_equal(x->pad_keys[i].id, y->pad_keys[i].id, 16);
            assert_int_equal(x->pad_keys[i].len, y->pad_keys[i].len);
        }
        assert_memory_equal(&x->key, &y->key, sizeof x->key);
        assert_memory_equal(x->salt, y->salt, QM_SALT_LEN);
        assert_memory_equal(x->nonce, y->nonce, QM_NONCE_LEN);
    }
    for (int r = 0; r < a->n_recipients; r++) {
        assert_string_equal(a->recipients[r].sae_id, b->recipients[r].sae_id);
        assert_int_equal(a->recipients[r].group, b->recipients[r].group);
        assert_memory_equal(&a->recipients[r].mac_key, &b->recipients[r].mac_key,
                            sizeof(qm_key_ref));
    }
}

/* Writer output == the document's encoding; parse gives the fields back
 * and the view points at the right places. */
static void round_trip(void (*build)(qm_envelope *), spec s)
{
    qm_envelope e, back;
    qm_envelope_view v;
    uint8_t header[4096];
    size_t hlen, total;

    build(&e);
    assert_int_equal(qm_header_len(&e, &hlen), QM_OK);
    assert_int_equal(qm_header_write(&e, header, sizeof header, &total), QM_OK);
    assert_int_equal(total, hlen);
    assert_int_equal(qm_header_write(&e, header, hlen - 1, &total), QM_E_USAGE);

    buf doc = spec_header(&s);
    assert_int_equal(doc.len, hlen);
    assert_memory_equal(doc.p, header, hlen);
    free(doc.p);

    buf full = spec_encode(&s);
    assert_int_equal(qm_envelope_total_len(&e, hlen, &total), QM_OK);
    assert_int_equal(full.len, total);
    assert_int_equal(qm_envelope_parse(full.p, full.len, &back, &v), QM_OK);
    assert_same_envelope(&e, &back);
    assert_ptr_equal(v.header, full.p);
    assert_int_equal(v.header_len, hlen);
    for (int g = 0; g < e.n_groups; g++)
        assert_ptr_equal(v.ciphertext[g], full.p + hlen + g * e.msg_len);
    if (e.level == QM_LEVEL_4)
        assert_null(v.tags);
    else
        assert_ptr_equal(v.tags, full.p + hlen + e.n_groups * e.msg_len);
    assert_int_equal(qm_envelope_find_recipient(&back, "SAE_B2"), 1);
    assert_int_equal(qm_envelope_find_recipient(&back, "SAE_A1"), -1);
    qm_envelope_free(&back);

    /* every proper prefix and one byte more are rejected */
    for (size_t n = 0; n < full.len; n++) {
        qm_err rc = qm_envelope_parse(full.p, n, &back, &v);
        assert_true(rc == QM_E_MALFORMED || rc == QM_E_TOO_BIG);
    }
    full.p = realloc(full.p, full.len + 1);
    full.p[full.len] = 0;
    assert_int_equal(qm_envelope_parse(full.p, full.len + 1, &back, &v), QM_E_MALFORMED);
    free(full.p);
    qm_envelope_free(&e);
    qm_envelope_free(&e);  /* safe twice */
}

static void test_round_trip_level1(void **state)
{
    (void)state;
    round_trip(build_l1, valid_l1());
}

static void test_round_trip_level2(void **state)
{
    (void)state;
    round_trip(build_l2, valid_l2());
}

static void test_round_trip_level4(void **state)
{
    (void)state;
    round_trip(build_l4, valid_l4());
}

/* An empty level 1 message: no pad keys, MAC keys only. */
static void test_empty_message(void **state)
{
    (void)state;
    spec s = base(1, 1, 1, 0);
    assert_int_equal(parse_spec(&s), QM_OK);
    s.n_pad[0] = 1; s.pad_len[0][0] = 8; s.pad_id[0][0] = 1;
    assert_int_equal(parse_spec(&s), QM_E_MALFORMED);  /* a key for nothing */
}

static void test_preamble(void **state)
{
    (void)state;
    spec s = valid_l1();
    s.magic = "QUMAIm";
    assert_int_equal(parse_spec(&s), QM_E_MALFORMED);
    s = valid_l1(); s.version = 2;
    assert_int_equal(parse_spec(&s), QM_E_VERSION);
    s = valid_l1(); s.version = 0;
    assert_int_equal(parse_spec(&s), QM_E_VERSION);
    s = valid_l1(); s.level = 3;
    assert_int_equal(parse_spec(&s), QM_E_LEVEL);
    s = valid_l1(); s.level = 0;
    assert_int_equal(parse_spec(&s), QM_E_LEVEL);
    s = valid_l1(); s.level = 5;
    assert_int_equal(parse_spec(&s), QM_E_LEVEL);
    s = valid_l1(); s.alg = QM_ALG_LEVEL2;    /* level 1 under another name */
    assert_int_equal(parse_spec(&s), QM_E_MALFORMED);
    s = valid_l1(); s.alg = "otp-qkd-etsi-014";
    assert_int_equal(parse_spec(&s), QM_E_MALFORMED);
    s = valid_l1(); s.alg = "OTP-QKD-ETSI-014 ";
    assert_int_equal(parse_spec(&s), QM_E_MALFORMED);
    s = valid_l1(); s.alg = "";
    assert_int_equal(parse_spec(&s), QM_E_MALFORMED);
    s = valid_l2(); s.level = 1;              /* a changed level */
    assert_int_equal(parse_spec(&s), QM_E_MALFORMED);
}

static void test_sae_ids(void **state)
{
    (void)state;
    static const char *const bad[] = { "", "SAE A1", "SAE\tA1", "SAE\x7f", "\xc3\xa9" };
    char long_id[300];
    memset(long_id, 'x', 255);
    long_id[255] = '\0';
    spec s = valid_l1();
    s.sender = long_id;
    assert_int_equal(parse_spec(&s), QM_OK);       /* 255 is the limit */
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        s = valid_l1(); s.sender = bad[i];
        assert_int_equal(parse_spec(&s), QM_E_MALFORMED);
        s = valid_l1(); s.rcpt[1] = bad[i];
        assert_int_equal(parse_spec(&s), QM_E_MALFORMED);
    }
    s = valid_l1(); s.rcpt[2] = "SAE_B1";          /* a recipient twice */
    assert_int_equal(parse_spec(&s), QM_E_MALFORMED);
}

static void test_counts(void **state)
{
    (void)state;
    spec s = valid_l1(); s.n_groups = 0;
    assert_int_equal(parse_spec(&s), QM_E_MALFORMED);
    s = valid_l1(); s.n_recipients = 0;
    assert_int_equal(parse_spec(&s), QM_E_MALFORMED);
    s = base(4, 1, 17, 1);
    assert_int_equal(parse_spec(&s), QM_E_MALFORMED);
    s = base(4, 1, 16, 1);
    assert_int_equal(parse_spec(&s), QM_OK);
    s = base(2, 17, 17, 1);
    assert_int_equal(parse_spec(&s), QM_E_MALFORMED);
    s = base(2, 16, 16, 1);
    assert_int_equal(parse_spec(&s), QM_OK);
    s = base(4, 2, 2, 1);                          /* level 4 has one group */
    assert_int_equal(parse_spec(&s), QM_E_MALFORMED);
    s = valid_l1(); s.msg_len = QM_MAX_MESSAGE + 1;
    assert_int_equal(parse_spec(&s), QM_E_TOO_BIG);
    s = valid_l1(); s.msg_len = UINT64_MAX;
    assert_int_equal(parse_spec(&s), QM_E_TOO_BIG);
    /* a huge pad key count with few bytes behind it: no allocation, an error */
    s = valid_l1(); s.n_pad[1] = QM_MAX_PAD_KEYS;
    assert_int_equal(parse_spec(&s), QM_E_MALFORMED);
    s = valid_l1(); s.n_pad[1] = UINT32_MAX;
    assert_int_equal(parse_spec(&s), QM_E_MALFORMED);
}

static void test_groups(void **state)
{
    (void)state;
    spec s = valid_l1(); s.group[2] = 2;           /* no such group */
    assert_int_equal(parse_spec(&s), QM_E_MALFORMED);
    s = valid_l1(); s.group[2] = 0;                /* group 1 has no recipient */
    assert_int_equal(parse_spec(&s), QM_E_MALFORMED);
    s = valid_l2(); s.group[1] = 0;                /* level 2: one recipient per key */
    assert_int_equal(parse_spec(&s), QM_E_MALFORMED);
}

static void test_key_lengths(void **state)
{
    (void)state;
    spec s = valid_l1(); s.pad_len[0][1] = 0;
    assert_int_equal(parse_spec(&s), QM_E_MALFORMED);
    s = valid_l1(); s.pad_len[0][1] = QM_MAX_KEY_LEN + 1;
    assert_int_equal(parse_spec(&s), QM_E_MALFORMED);
    s = valid_l1(); s.pad_len[0][1] = 39;          /* pad one byte short */
    assert_int_equal(parse_spec(&s), QM_E_MALFORMED);
    s = valid_l1(); s.pad_len[0][1] = 41;          /* a tail is allowed ... */
    assert_int_equal(parse_spec(&s), QM_OK);
    s = valid_l1(); s.pad_len[0][0] = 100;         /* ... a useless key is not */
    assert_int_equal(parse_spec(&s), QM_E_MALFORMED);
    s = valid_l1(); s.n_pad[1] = 2; s.pad_len[1][1] = 1; s.pad_id[1][1] = 9;
    assert_int_equal(parse_spec(&s), QM_E_MALFORMED);
    s = valid_l1(); s.mac_len[1] = 31;
    assert_int_equal(parse_spec(&s), QM_E_MALFORMED);
    s = valid_l1(); s.mac_len[1] = 33;
    assert_int_equal(parse_spec(&s), QM_E_MALFORMED);
    s = valid_l2(); s.key_len[1] = 16;
    assert_int_equal(parse_spec(&s), QM_E_MALFORMED);
    s = valid_l2(); s.key_len[1] = 64;
    assert_int_equal(parse_spec(&s), QM_E_MALFORMED);
}

/* A key ID twice anywhere: pad and pad, pad and MAC, MAC and MAC, level 2. */
static void test_repeated_key_ids(void **state)
{
    (void)state;
    spec s = valid_l1(); s.pad_id[0][1] = 1;
    assert_int_equal(parse_spec(&s), QM_E_MALFORMED);
    s = valid_l1(); s.pad_id[1][0] = 2;            /* across groups */
    assert_int_equal(parse_spec(&s), QM_E_MALFORMED);
    s = valid_l1(); s.mac_id[2] = 3;
    assert_int_equal(parse_spec(&s), QM_E_MALFORMED);
    s = valid_l1(); s.mac_id[0] = 101;
    assert_int_equal(parse_spec(&s), QM_E_MALFORMED);
    s = valid_l2(); s.key_id[1] = 200;
    assert_int_equal(parse_spec(&s), QM_E_MALFORMED);
}

static void test_body_length(void **state)
{
    (void)state;
    spec s = valid_l1(); s.body_delta = 1;
    assert_int_equal(parse_spec(&s), QM_E_MALFORMED);
    s = valid_l1(); s.body_delta = -1;
    assert_int_equal(parse_spec(&s), QM_E_MALFORMED);
    s = valid_l4(); s.body_delta = 16;             /* no tags at level 4 */
    assert_int_equal(parse_spec(&s), QM_E_MALFORMED);
    s = valid_l2(); s.body_delta = -16;
    assert_int_equal(parse_spec(&s), QM_E_MALFORMED);
}

/* The builder and writer refuse what the parser would refuse. */
static void test_writer_refuses(void **state)
{
    (void)state;
    qm_envelope e;
    uint8_t out[1024];
    size_t n;
    qm_key_ref k = ref(1, 32), m = ref(1, 32);

    assert_int_equal(qm_envelope_init(&e, 3, "SAE_A1", 1), QM_E_LEVEL);
    assert_int_equal(qm_envelope_init(&e, 1, "SAE A1", 1), QM_E_USAGE);
    assert_int_equal(qm_envelope_init(&e, 1, "SAE_A1", QM_MAX_MESSAGE + 1), QM_E_TOO_BIG);

    assert_int_equal(qm_envelope_init(&e, 1, "SAE_A1", 32), QM_OK);
    assert_int_equal(qm_header_write(&e, out, sizeof out, &n), QM_E_MALFORMED); /* empty */
    assert_int_equal(qm_envelope_add_group(&e, &k, 1, NULL, NULL), QM_OK);
    assert_int_equal(qm_envelope_add_recipient(&e, "SAE_B1", 0, NULL), QM_E_USAGE);
    assert_int_equal(qm_envelope_add_recipient(&e, "SAE_B1", 0, &m), QM_OK);
    assert_int_equal(qm_header_write(&e, out, sizeof out, &n), QM_E_MALFORMED); /* same ID */
    id_bytes(2, e.recipients[0].mac_key.id);
    assert_int_equal(qm_header_write(&e, out, sizeof out, &n), QM_OK);
    e.version = 2;
    assert_int_equal(qm_header_write(&e, out, sizeof out, &n), QM_E_VERSION);
    qm_envelope_free(&e);

    assert_int_equal(qm_envelope_init(&e, 4, "SAE_A1", 0), QM_OK);
    for (int g = 0; g < QM_MAX_GROUPS; g++)
        assert_int_equal(qm_envelope_add_group(&e, NULL, 0, NULL, NULL), QM_OK);
    assert_int_equal(qm_envelope_add_group(&e, NULL, 0, NULL, NULL), QM_E_USAGE);
    qm_envelope_free(&e);
}

static void test_strerror(void **state)
{
    (void)state;
    for (int c = QM_OK; c <= QM_E_CRYPTO; c++) {
        assert_non_null(qm_strerror((qm_err)c));
        assert_true(strlen(qm_strerror((qm_err)c)) > 0);
    }
    assert_string_equal(qm_strerror((qm_err)999), "unknown error");
    assert_non_null(strstr(qm_strerror(QM_E_TAMPERED), "tampered"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_level1),
        cmocka_unit_test(test_round_trip_level2),
        cmocka_unit_test(test_round_trip_level4),
        cmocka_unit_test(test_empty_message),
        cmocka_unit_test(test_preamble),
        cmocka_unit_test(test_sae_ids),
        cmocka_unit_test(test_counts),
        cmocka_unit_test(test_groups),
        cmocka_unit_test(test_key_lengths),
        cmocka_unit_test(test_repeated_key_ids),
        cmocka_unit_test(test_body_length),
        cmocka_unit_test(test_writer_refuses),
        cmocka_unit_test(test_strerror),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
