/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_qumail_message.c - system tests of libqumail's message API
 * (src/mail/message.c, keyfetch.c, usedkeys.c) against the real testbed:
 * KME-A, KME-B and the QKD link on loopback, keys through libqkd014.
 *
 * What: round trips at Levels 1, 2 and 4 of 0 B, 1 B, 100 KiB and 5 MiB
 * messages (UTF-8 headers, a binary attachment) A1->B1 (across the link),
 * B1->A1 and A1->A2 (one KME), byte-identical; several recipients (B1 and
 * B2 sharing a multicast pad, A2 with its own) each decrypting; a 9 MiB
 * pad in batches of max_key_per_request (enc_keys and dec_keys); tampering
 * (bit flips in ciphertext, tag and header, swapped and repeated key IDs, a
 * changed level) gives "tampered" or "malformed" and no plaintext, and
 * what can be rejected offline consumes no key (no dec_keys is made and the
 * intact copy still decrypts); replays: "key already used" from the
 * used-key store without a KME call, "key not found at the KME" (its 400)
 * with a fresh store; a reader that is not a recipient; Level 3; the outer MIME layer
 * (addresses and constant Subject in clear; not QuMail, another version, a
 * broken or truncated envelope refused before any KME call); libqkd014
 * errors (unknown SAE, wrong KME ID, nothing listening).  With the argument
 * "no-keys" (a testbed with a tiny link pool) only: a Level 1 message
 * larger than the pool is "not enough key material" and goes at Level 2.
 *
 * How: tests/system/run-with-testbed brings the testbed up and sets
 * TESTBED_DIR; DIR/testbed.env names the SAE certificates and KME URLs.
 * The library's narration (qm_self.trace) is counted to see which ETSI
 * calls were made; TRACE=1 prints it.  Key bytes are never printed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "qkd014.h"

#include "common/uuid.h"
#include "mail/envelope.h"
#include "mail/message.h"
#include "mail/mime.h"
#include "mail/usedkeys.h"
#include "check.h"
#include "testbed_env.h"


#define KIB 1024u
#define MIB (1024u * 1024u)

/* ----------------------------------------------------------------- testbed */

static char *tb_dir;

static char *env_value(const char *key)
{
    return testbed_env_value(tb_dir, key);
}

/* One mail user: an SAE with its KME client, its used-key store and the
 * counts of the ETSI calls the library narrated. */
typedef struct user {
    const char *name;      /* A1, A2, B1, B2 */
    const char *kme;       /* KME_A or KME_B */
    char *sae_id, *cert, *key, *kme_url, *kme_id, *address;
    qkd014_client *client;
    qm_usedkeys *used;
    int n_store;           /* stores opened so far */
    qm_self self;
    int n_enc, n_dec, n_status;
    char multicast[512];   /* the last enc_keys line with additional slaves */
} user;

static user A1 = { .name = "A1", .kme = "KME_A" }, A2 = { .name = "A2", .kme = "KME_A" },
            B1 = { .name = "B1", .kme = "KME_B" }, B2 = { .name = "B2", .kme = "KME_B" };
static user *const USERS[] = { &A1, &A2, &B1, &B2 };
static char *ca_cert;
static bool print_trace;

static void on_trace(void *arg, const char *line)
{
    user *u = arg;
    if (strncmp(line, "enc_keys ", 9) == 0) {
        u->n_enc++;
        if (strstr(line, "additional_slave_SAE_IDs=") != NULL && strstr(line, "failed") == NULL)
            snprintf(u->multicast, sizeof u->multicast, "%s", line);
    } else if (strncmp(line, "dec_keys ", 9) == 0) {
        u->n_dec++;
    } else if (strncmp(line, "status ", 7) == 0) {
        u->n_status++;
    }
    if (print_trace)
        printf("    [%s] %s\n", u->name, line);
}

/* Open a fresh used-key store for u (the old one is closed). */
static void fresh_store(user *u)
{
    qm_usedkeys_close(u->used);
    u->used = NULL;
    char path[4200];
    snprintf(path, sizeof path, "%s/used-%s-%d.db", tb_dir, u->name, u->n_store++);
    qm_err err = qm_usedkeys_open(path, &u->used);
    CHECK(err == QM_OK, "used-key store %s: %s", path, qm_strerror(err));
    u->self.used = u->used;
}

static int user_load(user *u)
{
    char k[64];
    snprintf(k, sizeof k, "SAE_%s_ID", u->name);
    u->sae_id = env_value(k);
    snprintf(k, sizeof k, "SAE_%s_CERT", u->name);
    u->cert = env_value(k);
    snprintf(k, sizeof k, "SAE_%s_KEY", u->name);
    u->key = env_value(k);
    snprintf(k, sizeof k, "%s_URL", u->kme);
    u->kme_url = env_value(k);
    snprintf(k, sizeof k, "%s_ID", u->kme);
    u->kme_id = env_value(k);
    if (!u->sae_id || !u->cert || !u->key || !u->kme_url || !u->kme_id) {
        fprintf(stderr, "testbed.env lacks SAE_%s_* or %s_*\n", u->name, u->kme);
        return 1;
    }
    if (asprintf(&u->address, "%s@example.org", u->name) < 0)
        return 1;
    qkd014_options o = { .version = QKD014_OPTIONS_VERSION,
                         .kme_url = u->kme_url, .cert_file = u->cert, .key_file = u->key,
                         .ca_file = ca_cert, .expected_kme_id = u->kme_id,
                         .timeout_ms = 60000 };
    if (qkd014_client_new(&o, &u->client) != QKD014_OK) {
        fprintf(stderr, "cannot make the libqkd014 client of SAE %s\n", u->name);
        return 1;
    }
    u->self = (qm_self){ .kme = u->client, .sae_id = u->sae_id, .address = u->address,
                         .trace = on_trace, .trace_arg = u };
    char path[4200];
    snprintf(path, sizeof path, "%s/used-%s-%d.db", tb_dir, u->name, u->n_store++);
    if (qm_usedkeys_open(path, &u->used) != QM_OK) {
        fprintf(stderr, "cannot open %s\n", path);
        return 1;
    }
    u->self.used = u->used;
    return 0;
}

static void user_free(user *u)
{
    qm_usedkeys_close(u->used);
    qkd014_client_free(u->client);
    free(u->sae_id);
    free(u->cert);
    free(u->key);
    free(u->kme_url);
    free(u->kme_id);
    free(u->address);
}

/* 0: loaded; 77: skip (reason printed); 1: error. */
static int testbed_load(void)
{
    const char *dir = getenv("TESTBED_DIR");
    if (dir == NULL || dir[0] == '\0') {
        fprintf(stderr, "TESTBED_DIR is not set: run through tests/system/run-with-testbed\n");
        return 1;
    }
    tb_dir = strdup(dir);
    char *mode = env_value("TESTBED_MODE");
    bool pair = mode != NULL && strcmp(mode, "pair") == 0;
    free(mode);
    if (!pair) {
        printf("SKIP: the testbed runs without KME-B and the link (see %s/testbed.mode)\n",
               tb_dir);
        return 77;
    }
    ca_cert = env_value("CA_CERT");
    if (ca_cert == NULL) {
        fprintf(stderr, "testbed.env lacks CA_CERT\n");
        return 1;
    }
    for (size_t i = 0; i < sizeof USERS / sizeof USERS[0]; i++)
        if (user_load(USERS[i]) != 0)
            return 1;
    return 0;
}

static void sleep_ms(long ms)
{
    struct timespec d = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };
    nanosleep(&d, NULL);
}

/* Wait (up to 60 s) until from's KME holds at least bytes of key for the
 * pair from -> to, so a big Level 1 message does not race the link. */
static void wait_for_keys(user *from, const user *to, size_t bytes)
{
    for (int i = 0; i < 600; i++) {
        qkd014_status *st = NULL;
        if (qkd014_get_status(from->client, to->sae_id, &st) == QKD014_OK) {
            uint64_t have = (uint64_t)st->stored_key_count * (uint64_t)st->key_size / 8;
            qkd014_status_free(st);
            if (have >= bytes)
                return;
        }
        sleep_ms(100);
    }
    printf("    (waited 60 s for %zu bytes of key %s->%s; trying anyway)\n", bytes, from->name,
           to->name);
}

/* ---------------------------------------------------------------- messages */

/* An inner RFC 5322 message of exactly len bytes: UTF-8 headers, a text
 * part and a binary attachment (every byte value, bare CR and LF, NULs).
 * Below a minimal size it is raw binary. */
static uint8_t *make_inner(size_t len)
{
    static const char head[] =
        "From: =?UTF-8?Q?Alice_M=C3=BCller?= <A1@example.org>\n"
        "To: B1@example.org\n"
        "Subject: Grüße aus dem Labor — 量子鍵配送 ✓\n"
        "Date: Wed, 25 Nov 2026 23:00:00 +0000\n"
        "Message-ID: <inner.1@example.org>\n"
        "MIME-Version: 1.0\n"
        "Content-Type: multipart/mixed; boundary=\"b1\"\n"
        "\n"
        "--b1\n"
        "Content-Type: text/plain; charset=UTF-8\n"
        "Content-Transfer-Encoding: 8bit\n"
        "\n"
        "Hallo Bob, anbei die Messdaten. Ça marche ? Ελληνικά. 😀\n"
        "--b1\n"
        "Content-Type: application/octet-stream; name=\"data.bin\"\n"
        "Content-Disposition: attachment; filename=\"data.bin\"\n"
        "Content-Transfer-Encoding: binary\n"
        "\n";
    static const char tail[] = "\n--b1--\n";
    uint8_t *m = malloc(len ? len : 1);
    assert_non_null(m);
    size_t hl = sizeof head - 1, tl = sizeof tail - 1;
    if (len < hl + tl + 256) {
        randombytes_buf(m, len);
        return m;
    }
    memcpy(m, head, hl);
    size_t body = len - hl - tl;
    randombytes_buf(m + hl, body);
    for (size_t i = 0; i < 256; i++)
        m[hl + i] = (uint8_t)i;
    memcpy(m + hl + body, tail, tl);
    return m;
}

static qm_peer peer_of(const user *u, bool with_kme)
{
    return (qm_peer){ .address = u->address, .sae_id = u->sae_id,
                      .kme_id = with_kme ? u->kme_id : NULL };
}

/* Encrypt (outer message, or envelope with envelope_only). */
static qm_err encrypt_to(user *from, int level, user *const *to, size_t n, bool with_kme,
                         const uint8_t *inner, size_t len, bool envelope_only, uint8_t **out,
                         size_t *out_len)
{
    qm_peer peers[16];
    for (size_t i = 0; i < n; i++)
        peers[i] = peer_of(to[i], with_kme);
    if (!envelope_only)
        return qm_encrypt(&from->self, level, peers, n, inner, len, out, out_len);
    return qm_encrypt_envelope(&from->self, level, peers, n, inner, len, out, out_len);
}

static qm_err decrypt_as(user *u, const uint8_t *msg, size_t len, bool envelope_only,
                         uint8_t **inner, size_t *inner_len, int *level)
{
    if (!envelope_only)
        return qm_decrypt(&u->self, msg, len, inner, inner_len, level);
    return qm_decrypt_envelope(&u->self, msg, len, inner, inner_len, level);
}

/* The outer message shows the addresses and the constant Subject only. */
static void check_outer(const user *from, user *const *to, size_t n, const uint8_t *out,
                        size_t out_len)
{
    uint8_t *env = NULL;
    size_t env_len = 0;
    qm_outer_info info = { 0 };
    qm_err err = qm_mime_parse(out, out_len, &env, &env_len, &info);
    CHECK(err == QM_OK, "the outer message does not parse: %s", qm_strerror(err));
    CHECK(info.from != NULL && strcmp(info.from, from->address) == 0, "outer From: %s",
          info.from ? info.from : "(none)");
    CHECK(info.n_to == n, "outer To has %zu addresses, not %zu", info.n_to, n);
    for (size_t i = 0; i < n && i < info.n_to; i++)
        CHECK(strcmp(info.to[i], to[i]->address) == 0, "outer To[%zu]: %s", i, info.to[i]);
    CHECK(memmem(out, out_len, "Subject: " QM_MIME_SUBJECT, strlen("Subject: " QM_MIME_SUBJECT))
              != NULL, "no constant Subject in the outer message");
    qm_outer_info_free(&info);
    free(env);
}

/* Encrypt inner from `from` to the users, then each decrypts it to the
 * same bytes at the same level. */
static void round_trip(user *from, int level, user *const *to, size_t n, bool with_kme,
                       const uint8_t *inner, size_t len)
{
    uint8_t *out = NULL;
    size_t out_len = 0;
    qm_err err = encrypt_to(from, level, to, n, with_kme, inner, len, false, &out, &out_len);
    CHECK(err == QM_OK, "encrypt L%d %zu B %s->%s: %s (%s)", level, len, from->name, to[0]->name,
          qm_strerror(err), from->self.detail);
    CHECK(out_len > len, "the encrypted message (%zu B) is not longer than the plaintext", out_len);
    if (level != 4 && len >= 64)   /* the plaintext does not show through */
        CHECK(memmem(out, out_len, inner + len / 2 - 16, 32) == NULL,
              "plaintext bytes found in the Level %d message", level);
    check_outer(from, to, n, out, out_len);
    for (size_t i = 0; i < n; i++) {
        uint8_t *got = NULL;
        size_t got_len = 0;
        int got_level = 0;
        err = decrypt_as(to[i], out, out_len, false, &got, &got_len, &got_level);
        CHECK(err == QM_OK, "decrypt L%d %zu B %s->%s: %s (%s)", level, len, from->name,
              to[i]->name, qm_strerror(err), to[i]->self.detail);
        CHECK(got_len == len && (len == 0 || memcmp(got, inner, len) == 0),
              "L%d %s->%s: %zu B decrypted, %zu B sent, or the bytes differ", level, from->name,
              to[i]->name, got_len, len);
        CHECK(got_level == level, "level %d reported for a Level %d message", got_level, level);
        free(got);
    }
    free(out);
}

static void round_trips(user *from, user *to)
{
    static const size_t sizes[] = { 0, 1, 100 * KIB, 5 * MIB };
    static const int levels[] = { 1, 2, 4 };
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        uint8_t *inner = make_inner(sizes[s]);
        for (size_t l = 0; l < 3; l++) {
            if (levels[l] == 1)
                wait_for_keys(from, to, sizes[s] + 64);
            user *rcpt[] = { to };
            round_trip(from, levels[l], rcpt, 1, true, inner, sizes[s]);
            printf("    %s->%s Level %d, %zu B: ok\n", from->name, to->name, levels[l], sizes[s]);
        }
        free(inner);
    }
}

static void test_round_trip_a1_b1(void **state)
{
    (void)state;
    round_trips(&A1, &B1);
}

static void test_round_trip_b1_a1(void **state)
{
    (void)state;
    round_trips(&B1, &A1);
}

static void test_round_trip_a1_a2(void **state)
{
    (void)state;
    round_trips(&A1, &A2);
}

/* A pad of more keys than one ETSI call may carry (max_key_per_request 1024
 * keys of 65536 bits on the testbed): 9 MiB takes 1152 pad keys, so two
 * enc_keys calls for the pad (+1 for the MAC key).  max_key_per_request
 * bounds enc_keys' number only; our KME takes the 1153 key IDs in one
 * dec_keys call, and the reader asks for all at once, with no status call. */
static void test_batches(void **state)
{
    (void)state;
    size_t len = 9 * MIB;
    uint8_t *inner = make_inner(len);
    user *to[] = { &A2 };
    wait_for_keys(&A1, &A2, len + 64);
    int enc = A1.n_enc, dec = A2.n_dec, status = A2.n_status;
    round_trip(&A1, 1, to, 1, true, inner, len);
    CHECK(A1.n_enc - enc == 3, "%d enc_keys calls for a 1152-key pad, not 3", A1.n_enc - enc);
    CHECK(A2.n_dec - dec == 1, "%d dec_keys calls for 1153 keys, not 1", A2.n_dec - dec);
    CHECK(A2.n_status == status, "the reader asked for status");
    printf("    9 MiB at Level 1: %d enc_keys, %d dec_keys calls\n", A1.n_enc - enc,
           A2.n_dec - dec);
    free(inner);
}

/* B1 and B2 behind KME-B share one multicast pad; A2 gets its own. */
static void test_several_recipients(void **state)
{
    (void)state;
    size_t len = 100 * KIB;
    uint8_t *inner = make_inner(len);
    user *to[] = { &B1, &A2, &B2 };
    A1.multicast[0] = '\0';
    round_trip(&A1, 1, to, 3, true, inner, len);
    CHECK(strstr(A1.multicast, "slave=") != NULL &&
              strstr(A1.multicast, B1.sae_id) != NULL &&
              strstr(A1.multicast, "additional_slave_SAE_IDs=") != NULL &&
              strstr(A1.multicast, B2.sae_id) != NULL,
          "no multicast enc_keys for B1 and B2 (last: '%s')", A1.multicast);

    /* the envelope: two groups, B1 and B2 in one */
    uint8_t *env = NULL;
    size_t env_len = 0;
    qm_err err = encrypt_to(&A1, 1, to, 3, true, inner, len, true, &env, &env_len);
    CHECK(err == QM_OK, "encrypt: %s (%s)", qm_strerror(err), A1.self.detail);
    qm_envelope e;
    qm_envelope_view v;
    assert_int_equal(qm_envelope_parse(env, env_len, &e, &v), QM_OK);
    assert_int_equal(e.n_groups, 2);
    assert_int_equal(e.n_recipients, 3);
    assert_int_equal(e.recipients[0].group, e.recipients[2].group);
    assert_int_not_equal(e.recipients[0].group, e.recipients[1].group);
    qm_envelope_free(&e);
    free(env);

    /* without KME IDs every recipient has its own pad */
    A1.multicast[0] = '\0';
    round_trip(&A1, 1, to, 3, false, inner, len);
    CHECK(A1.multicast[0] == '\0', "multicast without KME IDs: '%s'", A1.multicast);
    round_trip(&A1, 2, to, 3, true, inner, len);
    round_trip(&A1, 4, to, 3, true, inner, len);
    free(inner);
}

/* ---------------------------------------------------------------- tampering */

typedef struct sealed {
    uint8_t *env;
    size_t len;
    qm_envelope e;
    qm_envelope_view v;
} sealed;

/* A fresh envelope A1 -> to (B1 first). */
static void seal_for(sealed *s, int level, user *const *to, size_t n, const uint8_t *inner,
                     size_t len)
{
    qm_err err = encrypt_to(&A1, level, to, n, true, inner, len, true, &s->env, &s->len);
    CHECK(err == QM_OK, "encrypt: %s (%s)", qm_strerror(err), A1.self.detail);
    assert_int_equal(qm_envelope_parse(s->env, s->len, &s->e, &s->v), QM_OK);
}

static void sealed_free(sealed *s)
{
    qm_envelope_free(&s->e);
    free(s->env);
}

static uint8_t *copy(const sealed *s)
{
    uint8_t *c = malloc(s->len);
    assert_non_null(c);
    memcpy(c, s->env, s->len);
    return c;
}

/* Offset of a key ID in the header. */
static size_t id_offset(const sealed *s, const uint8_t id[QM_KEY_ID_LEN])
{
    const uint8_t *p = memmem(s->env, s->v.header_len, id, QM_KEY_ID_LEN);
    assert_non_null(p);
    return (size_t)(p - s->env);
}

/* B1 decrypts bytes: the result must be one of want1/want2, no plaintext;
 * offline says whether a dec_keys call was allowed. */
static void expect_rejected(user *u, const uint8_t *bytes, size_t len, qm_err want1,
                            qm_err want2, bool offline, const char *what)
{
    int dec_before = u->n_dec;
    uint8_t *got = (uint8_t *)"x";
    size_t got_len = 12345;
    qm_err err = qm_decrypt_envelope(&u->self, bytes, len, &got, &got_len, NULL);
    CHECK(err == want1 || err == want2, "%s: %s (%s), wanted %s or %s", what, qm_strerror(err),
          u->self.detail, qm_strerror(want1), qm_strerror(want2));
    CHECK(got == NULL && got_len == 0, "%s: plaintext returned with an error", what);
    if (offline)
        CHECK(u->n_dec == dec_before, "%s: rejected only after dec_keys", what);
    else
        CHECK(u->n_dec > dec_before, "%s: no dec_keys call", what);
    printf("    %s: %s\n", what, qm_strerror(err));
}

static void expect_decrypts(user *u, const sealed *s, const uint8_t *inner, size_t len)
{
    uint8_t *got = NULL;
    size_t got_len = 0;
    qm_err err = qm_decrypt_envelope(&u->self, s->env, s->len, &got, &got_len, NULL);
    CHECK(err == QM_OK, "intact copy: %s (%s)", qm_strerror(err), u->self.detail);
    CHECK(got_len == len && memcmp(got, inner, len) == 0, "intact copy decrypts to other bytes");
    free(got);
}

/* Rejections that need no key: none consumed, the intact copy still reads. */
static void test_tamper_offline(void **state)
{
    (void)state;
    size_t len = 20000;   /* three pad keys at the testbed's 65536-bit maximum */
    uint8_t *inner = make_inner(len);
    user *to[] = { &B1 };
    for (int level = 1; level <= 2; level++) {
        sealed s;
        seal_for(&s, level, to, 1, inner, len);
        uint8_t *c;

        c = copy(&s);
        c[0] ^= 0x01;   /* magic */
        expect_rejected(&B1, c, s.len, QM_E_MALFORMED, QM_E_MALFORMED, true, "magic flipped");
        free(c);

        c = copy(&s);
        c[QM_MAGIC_LEN + 1] = (uint8_t)(level == 1 ? 2 : 1);   /* level changed */
        expect_rejected(&B1, c, s.len, QM_E_MALFORMED, QM_E_MALFORMED, true, "level changed");
        c[QM_MAGIC_LEN + 1] = 4;
        expect_rejected(&B1, c, s.len, QM_E_MALFORMED, QM_E_MALFORMED, true,
                        "level changed to 4");
        free(c);

        c = copy(&s);   /* msg_len: after magic, version, level, alg, sender */
        size_t at = QM_MAGIC_LEN + 2 + 1 + strlen(qm_level_alg(level)) + 1 + strlen(A1.sae_id);
        c[at + 7] ^= 0x01;
        expect_rejected(&B1, c, s.len, QM_E_MALFORMED, QM_E_MALFORMED, true, "length flipped");
        free(c);

        expect_rejected(&B1, s.env, s.len - 1, QM_E_MALFORMED, QM_E_MALFORMED, true, "truncated");
        c = malloc(s.len + 1);
        memcpy(c, s.env, s.len);
        c[s.len] = 0;
        expect_rejected(&B1, c, s.len + 1, QM_E_MALFORMED, QM_E_MALFORMED, true, "extra byte");
        free(c);

        if (level == 1) {
            assert_int_equal(s.e.groups[0].n_pad_keys, 3);
            c = copy(&s);   /* pad key 1 repeats pad key 0's ID */
            memcpy(c + id_offset(&s, s.e.groups[0].pad_keys[1].id), s.e.groups[0].pad_keys[0].id,
                   QM_KEY_ID_LEN);
            expect_rejected(&B1, c, s.len, QM_E_MALFORMED, QM_E_MALFORMED, true,
                            "repeated key ID");
            memcpy(c + id_offset(&s, s.e.groups[0].pad_keys[1].id),
                   s.e.groups[0].pad_keys[1].id, QM_KEY_ID_LEN);
            memcpy(c + id_offset(&s, s.e.recipients[0].mac_key.id),
                   s.e.groups[0].pad_keys[2].id, QM_KEY_ID_LEN);
            expect_rejected(&B1, c, s.len, QM_E_MALFORMED, QM_E_MALFORMED, true,
                            "MAC key ID repeats a pad key ID");
            free(c);
        }
        /* someone else reads it: not a recipient, no KME call */
        expect_rejected(&B2, s.env, s.len, QM_E_NOT_RECIPIENT, QM_E_NOT_RECIPIENT, true,
                        "not a recipient");
        expect_decrypts(&B1, &s, inner, len);
        printf("    Level %d: the intact copy still decrypts\n", level);
        sealed_free(&s);
    }
    free(inner);
}

/* The outer layer: not a QuMail message, or another format version, is
 * refused before any KME call; the intact message still decrypts. */
static void test_outer_malformed(void **state)
{
    (void)state;
    size_t len = 3000;
    uint8_t *inner = make_inner(len);
    user *to[] = { &B1 };
    uint8_t *out = NULL;
    size_t out_len = 0;
    qm_err err = encrypt_to(&A1, 1, to, 1, true, inner, len, false, &out, &out_len);
    CHECK(err == QM_OK, "encrypt: %s (%s)", qm_strerror(err), A1.self.detail);
    int dec = B1.n_dec;
    uint8_t *got = NULL;
    size_t got_len = 0;

    /* the plain inner message is no QuMail message */
    err = qm_decrypt(&B1.self, inner, len, &got, &got_len, NULL);
    CHECK(err == QM_E_MIME && got == NULL, "inner message as outer: %s", qm_strerror(err));
    /* Version: 2 in the control part */
    uint8_t *c = malloc(out_len);
    memcpy(c, out, out_len);
    uint8_t *v = memmem(c, out_len, "\nVersion: 1\n", 12);   /* not MIME-Version */
    assert_non_null(v);
    v[10] = '2';
    err = qm_decrypt(&B1.self, c, out_len, &got, &got_len, NULL);
    CHECK(err == QM_E_VERSION && got == NULL, "Version 2: %s (%s)", qm_strerror(err),
          B1.self.detail);
    /* a base64 character of the envelope changed: the envelope no longer parses or
     * its header differs; either way no KME call for a broken magic */
    memcpy(c, out, out_len);
    uint8_t *b = memmem(c, out_len, "UVVNQUlM", 8);   /* base64 of "QUMAIL" */
    assert_non_null(b);
    b[0] = 'V';
    err = qm_decrypt(&B1.self, c, out_len, &got, &got_len, NULL);
    CHECK(err == QM_E_MALFORMED && got == NULL, "magic changed in base64: %s", qm_strerror(err));
    /* truncated in the middle of the base64 */
    err = qm_decrypt(&B1.self, out, out_len / 2, &got, &got_len, NULL);
    CHECK((err == QM_E_MIME || err == QM_E_MALFORMED) && got == NULL, "truncated: %s",
          qm_strerror(err));
    CHECK(B1.n_dec == dec, "the KME was asked for a malformed message");
    err = qm_decrypt(&B1.self, out, out_len, &got, &got_len, NULL);
    CHECK(err == QM_OK && got_len == len && memcmp(got, inner, len) == 0,
          "intact message after the malformed ones: %s (%s)", qm_strerror(err), B1.self.detail);
    free(got);
    free(c);
    free(out);
    free(inner);
}

/* Rejections that need the keys: "tampered", no plaintext, keys spent. */
static void tamper_online(int level, const char *what, void (*mutate)(sealed *, uint8_t *))
{
    size_t len = 20000;
    uint8_t *inner = make_inner(len);
    user *to[] = { &B1, &B2 };
    sealed s;
    seal_for(&s, level, to, 2, inner, len);
    uint8_t *c = copy(&s);
    mutate(&s, c);
    char label[128];
    snprintf(label, sizeof label, "Level %d: %s", level, what);
    expect_rejected(&B1, c, s.len, QM_E_TAMPERED, QM_E_TAMPERED, false, label);
    free(c);
    /* the keys the tampered copy fetched are spent: the intact copy is refused
     * from the used-key store, without a KME call */
    expect_rejected(&B1, s.env, s.len, QM_E_KEY_USED, QM_E_KEY_USED, true,
                    "intact copy after a tampered one");
    /* B2 was not involved: it still reads its copy */
    uint8_t *got = NULL;
    size_t got_len = 0;
    qm_err err = qm_decrypt_envelope(&B2.self, s.env, s.len, &got, &got_len, NULL);
    CHECK(err == QM_OK && got_len == len && memcmp(got, inner, len) == 0,
          "B2 after B1's tampered copy: %s (%s)", qm_strerror(err), B2.self.detail);
    free(got);
    sealed_free(&s);
    free(inner);
}

static void flip_ciphertext(sealed *s, uint8_t *c)
{
    size_t g = s->e.recipients[0].group;
    c[(size_t)(s->v.ciphertext[g] - s->env) + 1234] ^= 0x20;
}
static void flip_tag(sealed *s, uint8_t *c) { c[(size_t)(s->v.tags - s->env) + 5] ^= 0x01; }
static void flip_last_tag_bit(sealed *s, uint8_t *c)
{
    c[(size_t)(s->v.tags - s->env) + QM_TAG_LEN - 1] ^= 0x80;
}
/* header: the other recipient's SAE ID (B2 -> another name of equal length) */
static void flip_other_recipient(sealed *s, uint8_t *c)
{
    const char *id = s->e.recipients[1].sae_id;
    uint8_t *p = memmem(c, s->v.header_len, id, strlen(id));
    assert_non_null(p);
    p[strlen(id) - 1] ^= 0x04;
}
static void flip_salt(sealed *s, uint8_t *c)
{
    size_t g = s->e.recipients[0].group;
    uint8_t *p = memmem(c, s->v.header_len, s->e.groups[g].salt, QM_SALT_LEN);
    assert_non_null(p);
    p[3] ^= 0x01;
}
static void swap_ids(uint8_t *c, size_t a, size_t b)
{
    uint8_t t[QM_KEY_ID_LEN];
    memcpy(t, c + a, QM_KEY_ID_LEN);
    memcpy(c + a, c + b, QM_KEY_ID_LEN);
    memcpy(c + b, t, QM_KEY_ID_LEN);
}
static void swap_pad_keys(sealed *s, uint8_t *c)
{
    const qm_group *g = &s->e.groups[s->e.recipients[0].group];
    swap_ids(c, id_offset(s, g->pad_keys[0].id), id_offset(s, g->pad_keys[1].id));
}
static void swap_pad_and_mac(sealed *s, uint8_t *c)
{
    const qm_group *g = &s->e.groups[s->e.recipients[0].group];
    swap_ids(c, id_offset(s, g->pad_keys[2].id), id_offset(s, s->e.recipients[0].mac_key.id));
}
/* level 2: B1's key ID exchanged with B2's (each a valid key for its own slave) */
static void swap_recipient_keys(sealed *s, uint8_t *c)
{
    swap_ids(c, id_offset(s, s->e.groups[0].key.id), id_offset(s, s->e.groups[1].key.id));
}

static void test_tamper_online(void **state)
{
    (void)state;
    tamper_online(1, "ciphertext bit flipped", flip_ciphertext);
    tamper_online(1, "tag bit flipped", flip_tag);
    tamper_online(1, "last tag bit flipped", flip_last_tag_bit);
    tamper_online(1, "other recipient's SAE ID changed (header)", flip_other_recipient);
    tamper_online(1, "pad key IDs swapped", swap_pad_keys);
    tamper_online(1, "pad key and MAC key IDs swapped", swap_pad_and_mac);
    tamper_online(2, "ciphertext bit flipped", flip_ciphertext);
    tamper_online(2, "tag bit flipped", flip_tag);
    tamper_online(2, "salt bit flipped (header)", flip_salt);
    tamper_online(2, "other recipient's SAE ID changed (header)", flip_other_recipient);
}

/* B1 reading B2's key: the KME refuses it to B1 (401: the key is not B1's),
 * which is a tampered envelope, not a credentials problem. */
static void test_swapped_recipient_keys(void **state)
{
    (void)state;
    size_t len = 1000;
    uint8_t *inner = make_inner(len);
    user *to[] = { &B1, &B2 };
    sealed s;
    seal_for(&s, 2, to, 2, inner, len);
    uint8_t *c = copy(&s);
    swap_recipient_keys(&s, c);
    int dec = B1.n_dec;
    uint8_t *got = NULL;
    size_t got_len = 0;
    qm_err err = qm_decrypt_envelope(&B1.self, c, s.len, &got, &got_len, NULL);
    CHECK(err == QM_E_TAMPERED && got == NULL, "swapped recipient keys: %s (%s)",
          qm_strerror(err), B1.self.detail);
    CHECK(B1.n_dec > dec, "no dec_keys call");
    printf("    Level 2: recipients' key IDs swapped: %s (%s)\n", qm_strerror(err),
           B1.self.detail);
    free(c);
    sealed_free(&s);
    free(inner);
}

/* -------------------------------------------------------------- replays */

/* Every key ID the reader fetched for the message is in its used-key store. */
static void expect_recorded(user *u, const uint8_t *outer, size_t len)
{
    uint8_t *env = NULL;
    size_t env_len = 0;
    assert_int_equal(qm_mime_parse(outer, len, &env, &env_len, NULL), QM_OK);
    qm_envelope e;
    qm_envelope_view v;
    assert_int_equal(qm_envelope_parse(env, env_len, &e, &v), QM_OK);
    int r = qm_envelope_find_recipient(&e, u->sae_id);
    assert_true(r >= 0);
    const qm_group *g = &e.groups[e.recipients[r].group];
    qm_key_ref refs[64];
    size_t n = 0;
    if (e.level == QM_LEVEL_1) {
        assert_true(g->n_pad_keys < 63);
        for (uint32_t i = 0; i < g->n_pad_keys; i++)
            refs[n++] = g->pad_keys[i];
        refs[n++] = e.recipients[r].mac_key;
    } else {
        refs[n++] = g->key;
    }
    for (size_t i = 0; i < n; i++) {
        char id[UUID_STR_LEN + 1];
        uuid_format(refs[i].id, id);
        const char *ids[] = { id };
        bool any = false;
        assert_int_equal(qm_usedkeys_any(u->used, ids, 1, &any, NULL), QM_OK);
        CHECK(any, "key %s of the message read is not in the used-key store", id);
    }
    qm_envelope_free(&e);
    free(env);
}

static void test_replay(void **state)
{
    (void)state;
    size_t len = 5000;
    uint8_t *inner = make_inner(len);
    for (int level = 1; level <= 2; level++) {
        user *to[] = { &B1 };
        uint8_t *out = NULL;
        size_t out_len = 0;
        qm_err err = encrypt_to(&A1, level, to, 1, true, inner, len, false, &out, &out_len);
        CHECK(err == QM_OK, "encrypt: %s (%s)", qm_strerror(err), A1.self.detail);
        uint8_t *got = NULL;
        size_t got_len = 0;
        err = decrypt_as(&B1, out, out_len, false, &got, &got_len, NULL);
        CHECK(err == QM_OK && got_len == len, "first decrypt: %s (%s)", qm_strerror(err),
              B1.self.detail);
        free(got);
        got = NULL;
        expect_recorded(&B1, out, out_len);

        /* the same store: refused before any KME call */
        int dec = B1.n_dec, status = B1.n_status;
        err = decrypt_as(&B1, out, out_len, false, &got, &got_len, NULL);
        CHECK(err == QM_E_KEY_USED && got == NULL, "replay: %s", qm_strerror(err));
        CHECK(B1.n_dec == dec && B1.n_status == status, "replay: the KME was asked");
        printf("    Level %d replay, same store: %s (%s)\n", level, qm_strerror(err),
               B1.self.detail);

        /* a fresh store: the KME no longer has the keys */
        fresh_store(&B1);
        err = decrypt_as(&B1, out, out_len, false, &got, &got_len, NULL);
        CHECK(err == QM_E_KEY_NOT_FOUND && got == NULL, "replay, fresh store: %s (%s)",
              qm_strerror(err), B1.self.detail);
        CHECK(B1.n_dec > dec, "replay, fresh store: no dec_keys call");
        printf("    Level %d replay, fresh store: %s (%s)\n", level, qm_strerror(err),
               B1.self.detail);
        free(out);
    }
    free(inner);
}

/* ------------------------------------------------------------ odds and ends */

static void test_levels_and_arguments(void **state)
{
    (void)state;
    uint8_t msg[] = "Subject: x\n\nhello\n";
    user *to[] = { &B1 };
    uint8_t *out = (uint8_t *)"x";
    size_t out_len = 7;
    int enc = A1.n_enc, status = A1.n_status;
    qm_err err = encrypt_to(&A1, 3, to, 1, true, msg, sizeof msg - 1, false, &out, &out_len);
    CHECK(err == QM_E_LEVEL && out == NULL && out_len == 0, "Level 3: %s", qm_strerror(err));
    CHECK(strstr(A1.self.detail, "does not exist yet") != NULL, "Level 3 detail: %s",
          A1.self.detail);
    err = encrypt_to(&A1, 5, to, 1, true, msg, sizeof msg - 1, false, &out, &out_len);
    CHECK(err == QM_E_LEVEL, "Level 5: %s", qm_strerror(err));
    CHECK(A1.n_enc == enc, "enc_keys called for an impossible level");

    /* a recipient twice, or an SAE ID the envelope cannot carry: refused
     * before any key is fetched */
    qm_peer twice[] = { peer_of(&B1, true), peer_of(&B2, true), peer_of(&B1, true) };
    err = qm_encrypt(&A1.self, 1, twice, 3, msg, sizeof msg - 1, &out, &out_len);
    CHECK(err == QM_E_USAGE && out == NULL, "recipient twice: %s", qm_strerror(err));
    qm_peer spaced = { .address = "x@example.org", .sae_id = "SAE B1", .kme_id = NULL };
    err = qm_encrypt(&A1.self, 2, &spaced, 1, msg, sizeof msg - 1, &out, &out_len);
    CHECK(err == QM_E_USAGE && out == NULL, "SAE ID with a space: %s", qm_strerror(err));
    qm_peer no_address = { .address = NULL, .sae_id = B1.sae_id, .kme_id = NULL };
    err = qm_encrypt(&A1.self, 2, &no_address, 1, msg, sizeof msg - 1, &out, &out_len);
    CHECK(err == QM_E_USAGE && out == NULL, "no address: %s", qm_strerror(err));
    CHECK(A1.n_enc == enc && A1.n_status == status, "a KME call for a message that cannot be sent");

    /* an unknown recipient SAE: the KME says so, nothing is produced */
    qm_peer nobody = { .address = "x@example.org", .sae_id = "SAE_NOBODY", .kme_id = NULL };
    err = qm_encrypt_envelope(&A1.self, 1, &nobody, 1, msg, sizeof msg - 1, &out, &out_len);
    CHECK(err == QM_E_KME && out == NULL, "unknown SAE: %s (%s)", qm_strerror(err),
          A1.self.detail);
    printf("    unknown recipient SAE: %s (%s)\n", qm_strerror(err), A1.self.detail);

    /* Level 4 is labelled: the reader learns it */
    round_trip(&A1, 4, to, 1, true, msg, sizeof msg - 1);
}

/* A libqkd014 client with the certificate of SAE prefix at url. */
static qkd014_client *client_of(const char *prefix, const char *url, const char *kme_id)
{
    char k[64];
    snprintf(k, sizeof k, "%s_CERT", prefix);
    char *cert = env_value(k);
    snprintf(k, sizeof k, "%s_KEY", prefix);
    char *key = env_value(k);
    assert_non_null(cert);
    assert_non_null(key);
    qkd014_options o = { .version = QKD014_OPTIONS_VERSION,
                         .kme_url = url, .cert_file = cert, .key_file = key,
                         .ca_file = ca_cert, .expected_kme_id = kme_id,
                         .connect_timeout_ms = 2000, .timeout_ms = 5000 };
    qkd014_client *c = NULL;
    assert_int_equal(qkd014_client_new(&o, &c), QKD014_OK);
    free(cert);
    free(key);
    return c;
}

/* KME errors as qm_err: an SAE the KME does not know and a KME of another
 * ID are "authentication"; a KME that does not answer is "KME". */
static void test_kme_errors(void **state)
{
    (void)state;
    uint8_t msg[] = "Subject: x\n\nhello\n";
    qm_peer to = peer_of(&B1, true);
    struct { const char *what, *prefix, *url, *kme_id; qm_err want; } cases[] = {
        { "unregistered SAE certificate", "SAE_X", A1.kme_url, A1.kme_id, QM_E_AUTH },
        { "KME of another ID", "SAE_A1", A1.kme_url, B1.kme_id, QM_E_AUTH },
        { "nothing listening", "SAE_A1", "https://localhost:1", NULL, QM_E_KME },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        qkd014_client *c = client_of(cases[i].prefix, cases[i].url, cases[i].kme_id);
        qm_self me = { .kme = c, .sae_id = A1.sae_id, .address = A1.address, .used = A1.used };
        uint8_t *out = NULL;
        size_t out_len = 0;
        qm_err err = qm_encrypt_envelope(&me, 1, &to, 1, msg, sizeof msg - 1, &out, &out_len);
        CHECK(err == cases[i].want && out == NULL, "%s: %s (%s), wanted %s", cases[i].what,
              qm_strerror(err), me.detail, qm_strerror(cases[i].want));
        printf("    %s: %s (%s)\n", cases[i].what, qm_strerror(err), me.detail);
        qkd014_client_free(c);
    }
}

/* ------------------------------------------------------------- no keys */

/* A testbed with a tiny link pool (TESTBED_POOL_CAP): a Level 1 message
 * larger than the pool fails with "not enough key material" suggesting
 * Level 2, which then works. */
static void test_no_keys(void **state)
{
    (void)state;
    size_t len = 4 * MIB;
    uint8_t *inner = make_inner(len);
    user *to[] = { &B1 };
    uint8_t *out = NULL;
    size_t out_len = 0;
    qm_err err = encrypt_to(&A1, 1, to, 1, true, inner, len, false, &out, &out_len);
    CHECK(err == QM_E_NO_KEYS && out == NULL, "Level 1, 4 MiB, tiny pool: %s (%s)",
          qm_strerror(err), A1.self.detail);
    CHECK(strstr(A1.self.detail, "--level 2") != NULL, "no hint at Level 2: %s", A1.self.detail);
    printf("    Level 1, 4 MiB: %s (%s)\n", qm_strerror(err), A1.self.detail);
    /* the pool is now empty for a while: Level 2 may be short too, but then
     * it does not suggest itself */
    err = encrypt_to(&A1, 2, to, 1, true, inner, len, false, &out, &out_len);
    if (err == QM_E_NO_KEYS)
        CHECK(strstr(A1.self.detail, "--level 2") == NULL, "Level 2 suggests Level 2: %s",
              A1.self.detail);
    free(out);
    out = NULL;
    round_trip(&A1, 2, to, 1, true, inner, len);
    printf("    Level 2, 4 MiB: ok\n");
    free(inner);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    print_trace = getenv("TRACE") != NULL && strcmp(getenv("TRACE"), "1") == 0;
    bool no_keys = argc > 1 && strcmp(argv[1], "no-keys") == 0;
    if (sodium_init() < 0 || qkd014_global_init() != QKD014_OK) {
        fprintf(stderr, "library initialisation failed\n");
        return 1;
    }
    int rc = testbed_load();
    if (rc != 0)
        return rc;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_levels_and_arguments),
        cmocka_unit_test(test_kme_errors),
        cmocka_unit_test(test_round_trip_a1_b1),
        cmocka_unit_test(test_round_trip_b1_a1),
        cmocka_unit_test(test_round_trip_a1_a2),
        cmocka_unit_test(test_batches),
        cmocka_unit_test(test_several_recipients),
        cmocka_unit_test(test_tamper_offline),
        cmocka_unit_test(test_outer_malformed),
        cmocka_unit_test(test_tamper_online),
        cmocka_unit_test(test_swapped_recipient_keys),
        cmocka_unit_test(test_replay),
    };
    const struct CMUnitTest no_keys_tests[] = {
        cmocka_unit_test(test_no_keys),
    };
    const char *filter = getenv("TEST_FILTER");
    if (filter != NULL && filter[0] != '\0')
        cmocka_set_test_filter(filter);
    rc = no_keys ? cmocka_run_group_tests_name("qumail messages, tiny pool", no_keys_tests, NULL,
                                               NULL)
                 : cmocka_run_group_tests_name("qumail messages", tests, NULL, NULL);
    for (size_t i = 0; i < sizeof USERS / sizeof USERS[0]; i++)
        user_free(USERS[i]);
    free(ca_cert);
    free(tb_dir);
    qkd014_global_cleanup();
    return rc;
}
