/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_relay_wire.c - the relay's wire format (src/kme/relay_wire.c):
 * hop 1 and sealed hops read back what the writers wrote; hostile shapes
 * (a short or looping path, a hop outside it, the wrong form for the hop,
 * a cipher or pad of the wrong length, unknown members) are 400s; the aad
 * changes with every field it binds and not with the hop or the time left;
 * the map version answer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kme/relay_wire.h"

#define RID "018f0000-0000-7000-8000-000000000001"
#define KID "11111111-1111-4111-8111-111111111111"
#define HEAD "{\"reservation_ID\":\"" RID "\",\"master_SAE_ID\":\"SAE_A1\"," \
             "\"slave_SAE_IDs\":[\"SAE_C1\"],\"expires\":1796600000000,"
/* 32 bytes 00..1f and 16 bytes 00..0f in base64 */
#define CIPHER "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
#define TAG "AAECAwQFBgcICQoLDA0ODw=="

static const char FIRST[] = HEAD "\"path\":[\"KME-A\",\"KME-B\",\"KME-C\"],\"hop\":1,"
    "\"timeout_ms\":1900,\"keys\":[{\"key_ID\":\"" KID "\",\"segments\":[[\"00000000000000aa\",0,32]]}]}";
static const char SEALED[] = HEAD "\"path\":[\"KME-A\",\"KME-B\",\"KME-C\",\"KME-D\"],\"hop\":2,"
    "\"timeout_ms\":1800,\"keys\":[{\"key_ID\":\"" KID "\",\"size\":256}],"
    "\"pad\":[[\"00000000000000bb\",0,64]],\"cipher\":\"" CIPHER "\",\"tag\":\"" TAG "\"}";

/* The document of the last relay read: its arena holds the strings. */
static pw_doc keep;

/* Read text; 0 with *r filled, or the refusal's HTTP status (message in why). */
static int read_text(const char *text, pw_relay *r, char *why, size_t whylen)
{
    pw_doc d;
    kme_err e = { 0 };
    int rc = pw_doc_open(&d, text, strlen(text), &e);
    if (rc == 0)
        rc = pw_read_relay(&d, r, &e);
    if (rc != 0) {
        snprintf(why, whylen, "%s", e.message);
        pw_relay_free(r);
        if (d.arena)
            pw_doc_close(&d);
        return e.http;
    }
    /* the strings live in the arena: keep it while r is used */
    if (keep.arena)
        pw_doc_close(&keep);
    keep = d;
    return 0;
}

static void test_first_hop(void **state)
{
    (void)state;
    pw_relay r;
    char why[256];
    assert_int_equal(read_text(FIRST, &r, why, sizeof why), 0);
    assert_int_equal(r.hop, 1);
    assert_false(r.sealed);
    assert_int_equal(r.npath, 3);
    assert_string_equal(r.path[2], "KME-C");
    assert_int_equal(r.nkeys, 1);
    assert_int_equal(r.keys[0].size_bits, 256);
    assert_int_equal(r.keys[0].nsegs, 1);
    assert_int_equal(r.keys[0].segs[0].block_id, 0xaa);
    pw_relay_free(&r);
}

static void test_sealed_roundtrip(void **state)
{
    (void)state;
    pw_relay r, back;
    char why[256];
    assert_int_equal(read_text(SEALED, &r, why, sizeof why), 0);
    assert_true(r.sealed);
    assert_int_equal(r.cipher_len, 32);
    assert_int_equal(r.cipher[31], 31);
    assert_int_equal(r.tag[15], 15);
    size_t alen = 0, blen = 0;
    uint8_t *aad = relay_aad(&r, &alen);
    char *next = pw_relay_sealed_text(&r, 700, r.pad, r.npad, r.cipher, r.cipher_len, r.tag);
    assert_non_null(next);
    assert_int_equal(read_text(next, &back, why, sizeof why), 0);
    assert_int_equal(back.hop, 3);
    assert_int_equal(back.timeout_ms, 700);
    uint8_t *baad = relay_aad(&back, &blen);
    /* the aad is the same at every hop */
    assert_int_equal(alen, blen);
    assert_memory_equal(aad, baad, alen);
    free(aad);
    free(baad);
    free(next);
    pw_relay_free(&back);
    pw_relay_free(&r);
}

/* Replace the first `from` in base by `to`. */
static char *edited(const char *base, const char *from, const char *to)
{
    const char *at = strstr(base, from);
    assert_non_null(at);
    size_t n = strlen(base) - strlen(from) + strlen(to) + 1;
    char *s = malloc(n);
    assert_non_null(s);
    snprintf(s, n, "%.*s%s%s", (int)(at - base), base, to, at + strlen(from));
    return s;
}

static void refused(const char *base, const char *from, const char *to, const char *msg)
{
    char *s = edited(base, from, to), why[256];
    pw_relay r;
    int http = read_text(s, &r, why, sizeof why);
    if (http != 400 || !strstr(why, msg))
        fail_msg("%s -> %s: HTTP %d '%s', expected 400 '%s'", from, to, http, why, msg);
    free(s);
}

static void test_hostile_shapes(void **state)
{
    (void)state;
    refused(FIRST, "[\"KME-A\",\"KME-B\",\"KME-C\"]", "[\"KME-A\",\"KME-C\"]", "at least 3 KMEs");
    refused(FIRST, "[\"KME-A\",\"KME-B\",\"KME-C\"]", "[\"KME-A\",\"KME-B\",\"KME-A\"]", "path[2] repeats");
    refused(FIRST, "\"hop\":1", "\"hop\":3", "hop must be an integer in 1..2");
    refused(FIRST, "\"hop\":1", "\"hop\":0", "hop must be an integer in 1..2");
    refused(FIRST, "\"hop\":1", "\"hop\":2", "must carry pad, cipher and tag");
    refused(SEALED, "\"hop\":2", "\"hop\":1", "carries no pad, cipher or tag");
    refused(SEALED, ",\"tag\":\"" TAG "\"", "", "pad, cipher and tag go together");
    refused(SEALED, CIPHER, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==", "cipher must be base64 of exactly 32 bytes");
    refused(SEALED, TAG, "AAEC", "tag must be base64 of exactly 16 bytes");
    refused(SEALED, "0,64]", "0,63]", "pad must cover");
    refused(SEALED, "\"size\":256", "\"size\":250", "multiple of 8");
    refused(FIRST, "\"timeout_ms\":1900", "\"timeout_ms\":0", "timeout_ms must be an integer");
    refused(FIRST, "\"timeout_ms\":1900", "\"timeout_ms\":1900,\"extra\":1", "unknown member \"extra\"");
    refused(FIRST, "\"path\":[\"KME-A\",", "\"path\":[\"\",", "non-empty string");
    char *long_path = malloc(4096);
    strcpy(long_path, "[");
    for (int i = 0; i < RELAY_MAX_PATH + 1; i++) {
        char id[16];
        snprintf(id, sizeof id, "%s\"K%d\"", i ? "," : "", i);
        strcat(long_path, id);
    }
    strcat(long_path, "]");
    refused(FIRST, "[\"KME-A\",\"KME-B\",\"KME-C\"]", long_path, "array of 1 to 17 IDs");
    free(long_path);
}

/* Each field the tag binds changes the aad. */
static void test_aad_binds_everything(void **state)
{
    (void)state;
    static const char *const edits[][2] = {
        { "SAE_A1", "SAE_A2" }, { "SAE_C1", "SAE_C2" }, { "1796600000000", "1796600000001" },
        { "\"KME-D\"", "\"KME-E\"" }, { "\"size\":256", "\"size\":264" },
        { "018f0000-0000-7000-8000-000000000001", "018f0000-0000-7000-8000-000000000002" },
        { KID, "22222222-2222-4222-8222-222222222222" },
    };
    pw_relay r;
    char why[256];
    size_t alen = 0;
    assert_int_equal(read_text(SEALED, &r, why, sizeof why), 0);
    uint8_t *aad = relay_aad(&r, &alen);
    pw_relay_free(&r);
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        char *s = edited(SEALED, edits[i][0], edits[i][1]);
        if (strstr(edits[i][1], "264")) { /* a longer key needs a longer pad and cipher */
            char *t = edited(s, "0,64]", "0,65]");
            free(s);
            s = edited(t, CIPHER, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g");
            free(t);
        }
        size_t blen = 0;
        if (read_text(s, &r, why, sizeof why) != 0)
            fail_msg("edit %zu: %s", i, why);
        uint8_t *b = relay_aad(&r, &blen);
        assert_true(blen != alen || memcmp(aad, b, alen) != 0);
        free(b);
        pw_relay_free(&r);
        free(s);
    }
    free(aad);
}

static void test_map_version(void **state)
{
    (void)state;
    int64_t v = 0;
    pw_stock st[2];
    size_t n = 9;
    assert_int_equal(pw_map_answer("{\"map_version\":7}", &v, st, 2, &n), 0);
    assert_int_equal(v, 7);
    assert_int_equal(n, 0);
    assert_int_equal(pw_map_answer("{\"map_version\":null,\"stock\":[]}", &v, st, 2, &n), 0);
    assert_int_equal(v, -1);
    assert_int_equal(pw_map_answer("{\"stock\":[{\"kme\":\"KME-C\",\"bits\":512},"
                                   "{\"bits\":8,\"kme\":\"KME-A\"},{\"kme\":\"X\",\"bits\":1}],"
                                   "\"map_version\":3}", &v, st, 2, &n), 0);
    assert_int_equal(n, 2); /* the third does not fit: left out */
    assert_string_equal(st[0].kme, "KME-C");
    assert_int_equal(st[0].bits, 512);
    assert_string_equal(st[1].kme, "KME-A");
    /* other shapes */
    static const char *const bad[] = {
        "{\"map_version\":-3}", "{\"map_version\":\"7\"}", "{\"map_version\":7,\"x\":1}",
        "{\"version\":7}", "{\"stock\":[]}", "{\"map_version\":1,\"stock\":[{\"kme\":\"K\"}]}",
        "{\"map_version\":1,\"stock\":[{\"kme\":\"K\",\"bits\":-1}]}",
        "{\"map_version\":1,\"stock\":[{\"kme\":\"\",\"bits\":1}]}",
        "{\"map_version\":1,\"stock\":[{\"kme\":\"K\",\"bits\":1,\"kme\":\"L\"}]}",
        "{\"map_version\":1,\"stock\":{}}", "{\"map_version\":1", "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (pw_map_answer(bad[i], &v, st, 2, &n) != -1)
            fail_msg("taken: %s", bad[i]);
    assert_int_equal(pw_map_answer(NULL, &v, st, 2, &n), -1);
    kme_reply out = { 0 };
    pw_stock mine[1] = { { "KME-\"B\"", 4096 } };
    pw_reply_map(&out, 42, mine, 1);
    assert_int_equal(out.http, 200);
    char text[256];
    snprintf(text, sizeof text, "%.*s", (int)out.body.len, (const char *)out.body.data);
    assert_int_equal(pw_map_answer(text, &v, st, 2, &n), 0);
    assert_int_equal(v, 42);
    assert_int_equal(n, 1);
    assert_string_equal(st[0].kme, "KME-\"B\"");
    assert_int_equal(st[0].bits, 4096);
    reply_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_hop),
        cmocka_unit_test(test_sealed_roundtrip),
        cmocka_unit_test(test_hostile_shapes),
        cmocka_unit_test(test_aad_binds_everything),
        cmocka_unit_test(test_map_version),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    if (keep.arena)
        pw_doc_close(&keep);
    return failed;
}
