/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_jsonscan.c - the in-place JSON reader (src/common/jsonscan.c):
 * validation case by case, the cursor and string decoding, and a
 * differential check against jansson (JSON_REJECT_DUPLICATES) on
 * generated and mutated documents, since libqkd014 relies on both
 * accepting exactly the same answers; js_int64; and the writer
 * (src/common/jsonw.c), whose text jansson must read back unchanged.
 */
#include <stdarg.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>

#include "common/jsonscan.h"
#include "common/jsonw.h"

static bool valid(const char *doc)
{
    return js_validate(doc, strlen(doc), NULL);
}

static bool jansson_valid(const char *doc, size_t len)
{
    json_error_t je;
    json_t *j = json_loadb(doc, len, JSON_REJECT_DUPLICATES, &je);
    json_decref(j);
    return j != NULL;
}

static void test_accepts(void **state)
{
    (void)state;
    static const char *const docs[] = {
        "{}", "[]", " \t\r\n{ } ", "{\"a\":1}", "[1,-0,0.5,1e3,1E+3,-1.5e-3,12345678901234]",
        "{\"a\":{\"b\":[true,false,null,\"x\"]}}", "[\"\\u00e9\\n\\\"\\\\\\/\\b\\f\\r\\t\"]",
        "[\"\\ud83d\\ude00\"]", "[\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"]",
        "{\"a\":1,\"A\":2,\"\\u0061b\":3}", "[9223372036854775807,-9223372036854775808]",
        "[1e-400]", "{\"\":0}",
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        if (!valid(docs[i]))
            fail_msg("refused valid JSON: %s", docs[i]);
        assert_true(jansson_valid(docs[i], strlen(docs[i])));
    }
}

static void test_refuses(void **state)
{
    (void)state;
    static const char *const docs[] = {
        "", " ", "1", "\"x\"", "null", "{", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "[1,]",
        "[01]", "[1.]", "[.5]", "[1e]", "[-]", "[+1]", "[tru]", "[truex]", "[nul]",
        "{\"a\":1}x", "{}{}", "[\"\\x\"]", "[\"\\u12g4\"]", "[\"\\u0000\"]",
        "[\"\\ud800\"]", "[\"\\udc00\"]", "[\"\\ud800\\u0041\"]", "[\"a\nb\"]",
        "[\"\xc0\x80\"]", "[\"\xed\xa0\x80\"]", "[\"\xf4\x90\x80\x80\"]", "[\"\xff\"]",
        "[\"\xe2\x82\"]", "{\"a\":1,\"a\":2}", "{\"a\":1,\"\\u0061\":2}",
        "{\"x\":{\"a\":1,\"b\":{},\"a\":[]}}", "[9223372036854775808]", "[1e400]",
        "[\"unterminated]", "{'a':1}", "[1 2]", "{\"a\" 1}",
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        js_error e;
        if (js_validate(docs[i], strlen(docs[i]), &e))
            fail_msg("accepted invalid JSON: %s", docs[i]);
        assert_non_null(e.why);
        assert_true(e.line >= 1 && e.column >= 1);
        assert_false(jansson_valid(docs[i], strlen(docs[i])));
    }
    /* a NUL byte inside the buffer is not JSON either */
    assert_false(js_validate("[\"a\0b\"]", 7, NULL));
}

static void test_position_and_depth(void **state)
{
    (void)state;
    js_error e;
    assert_false(js_validate("{\n  \"a\": 1,\n  \"b\" 2}", 21, &e));
    assert_int_equal(e.line, 3);
    assert_int_equal(e.column, 7);
    char deep[2 * JS_MAX_DEPTH + 8];
    size_t n = 0;
    for (int i = 0; i < JS_MAX_DEPTH; i++)
        deep[n++] = '[';
    for (int i = 0; i < JS_MAX_DEPTH; i++)
        deep[n++] = ']';
    assert_true(js_validate(deep, n, NULL));
    memmove(deep + 1, deep, n);
    deep[0] = '[';
    deep[++n] = ']';
    n++;
    assert_false(js_validate(deep, n, &e));
    assert_non_null(strstr(e.why, "depth"));
}

static void test_many_members(void **state)
{
    (void)state;
    /* more than 16 names: the sorted duplicate check */
    char doc[4096];
    size_t n = 0;
    n += (size_t)snprintf(doc + n, sizeof doc - n, "{");
    for (int i = 0; i < 100; i++)
        n += (size_t)snprintf(doc + n, sizeof doc - n, "%s\"k%d\":%d", i ? "," : "", i, i);
    n += (size_t)snprintf(doc + n, sizeof doc - n, "}");
    assert_true(js_validate(doc, n, NULL));
    doc[n - 1] = ',';
    n += (size_t)snprintf(doc + n, sizeof doc - n, "\"k\\u0037\":0}"); /* "k7" again */
    assert_false(js_validate(doc, n, NULL));
    assert_false(jansson_valid(doc, n));
}

static void test_cursor(void **state)
{
    (void)state;
    const char *doc = "{\"skip\":{\"x\":[1,\"a\\\"]\",{\"y\":null}]},\"k\\u0065y\":\"v\\\\\\\"w\","
                      "\"arr\":[10, \"s\", [], {}] , \"n\":-1.5e3}";
    assert_true(valid(doc));
    jscan s;
    js_iter o, a;
    js_str name, v;
    js_init(&s, doc, strlen(doc));
    assert_true(js_object_begin(&s, &o));
    assert_int_equal(js_member(&s, &o, &name), 1);
    assert_true(js_str_is(&name, "skip"));
    assert_true(js_skip(&s));
    assert_int_equal(js_member(&s, &o, &name), 1);
    assert_true(name.escaped);
    assert_true(js_str_is(&name, "key"));
    assert_true(js_string(&s, &v));
    char buf[64];
    size_t len = js_str_decode(&v, buf);
    assert_int_equal(len, 4);
    assert_memory_equal(buf, "v\\\"w", 4);
    assert_int_equal(js_member(&s, &o, &name), 1);
    assert_true(js_str_is(&name, "arr"));
    assert_true(js_array_begin(&s, &a));
    int count = 0;
    while (js_element(&s, &a) == 1) {
        assert_true(js_skip(&s));
        count++;
    }
    assert_int_equal(count, 4);
    assert_int_equal(js_member(&s, &o, &name), 1);
    assert_true(js_str_is(&name, "n"));
    assert_false(js_string(&s, &v)); /* a number is not a string */
    assert_true(js_skip(&s));
    assert_int_equal(js_member(&s, &o, &name), 0);
    assert_int_equal(js_peek(&s), '\0');
}

static void test_decode(void **state)
{
    (void)state;
    const char *doc = "[\"a\\u00e9\\ud83d\\ude00\\n\\/\"]";
    jscan s;
    js_iter a;
    js_str v;
    js_init(&s, doc, strlen(doc));
    assert_true(js_array_begin(&s, &a));
    assert_int_equal(js_element(&s, &a), 1);
    assert_true(js_string(&s, &v));
    char buf[64];
    size_t n = js_str_decode(&v, buf);
    assert_true(n <= v.len);
    assert_int_equal(n, 1 + 2 + 4 + 1 + 1);
    assert_memory_equal(buf, "a\xc3\xa9\xf0\x9f\x98\x80\n/", n);
}

/* ---- differential: generated documents, then mutated ones -------------- */

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static unsigned rnd(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

static void gen(char *b, size_t *n, size_t cap, int depth)
{
    static const char *const atoms[] = {
        "0", "-1", "12.5e-3", "1E400", "00", "true", "null", "\"\"", "\"a\\u00e9\"",
        "\"\\ud800\"", "\"\\ud83d\\ude00\"", "\"\xc3\xa9\"", "\"\xed\xa0\x80\"",
        "99999999999999999999", "\"k\"", "\"\\\"\"", "\"AAAA+/==\"",
    };
    if (*n + 64 >= cap)
        return;
    unsigned k = depth > 4 ? 0 : rnd(4);
    if (k == 0 || k == 1) {
        *n += (size_t)snprintf(b + *n, cap - *n, "%s", atoms[rnd(sizeof atoms / sizeof atoms[0])]);
        return;
    }
    bool obj = k == 2;
    b[(*n)++] = obj ? '{' : '[';
    unsigned m = rnd(4);
    for (unsigned i = 0; i < m && *n + 64 < cap; i++) {
        if (i)
            b[(*n)++] = ',';
        if (obj)
            *n += (size_t)snprintf(b + *n, cap - *n, "\"%c\":", "abA"[rnd(3)]);
        gen(b, n, cap, depth + 1);
    }
    if (*n < cap)
        b[(*n)++] = obj ? '}' : ']';
}

static void test_differential(void **state)
{
    (void)state;
    static const char bytes[] = "{}[],:\"\\u0 1e-.tn\x80\xc3";
    char doc[2048];
    unsigned mismatches = 0, accepted = 0;
    for (int round = 0; round < 20000; round++) {
        size_t n = 0;
        doc[n++] = rnd(2) ? '{' : '[';
        if (doc[0] == '{') {
            n += (size_t)snprintf(doc + n, sizeof doc - n, "\"r\":");
        }
        gen(doc, &n, sizeof doc - 8, 0);
        doc[n++] = doc[0] == '{' ? '}' : ']';
        for (unsigned m = rnd(3); m > 0 && n > 0; m--) { /* mutate */
            size_t at = rnd((unsigned)n);
            switch (rnd(3)) {
            case 0: doc[at] = bytes[rnd(sizeof bytes - 1)]; break;
            case 1: memmove(doc + at, doc + at + 1, n - at - 1); n--; break;
            default:
                if (n + 1 < sizeof doc) {
                    memmove(doc + at + 1, doc + at, n - at);
                    doc[at] = bytes[rnd(sizeof bytes - 1)];
                    n++;
                }
            }
        }
        bool ours = js_validate(doc, n, NULL), theirs = jansson_valid(doc, n);
        accepted += ours;
        if (ours != theirs && mismatches++ < 5)
            print_error("disagree (ours %d, jansson %d): %.*s\n", ours, theirs, (int)n, doc);
    }
    assert_int_equal(mismatches, 0);
    assert_true(accepted > 1000); /* the generator is not producing only garbage */
}

/* js_int64: the int64 range exactly, reals and other values refused (the
 * cursor stays put so the caller can skip the value). */
static void test_int64(void **state)
{
    (void)state;
    static const struct { const char *doc; bool ok; long long v; } cases[] = {
        { "[0]", true, 0 },
        { "[-1]", true, -1 },
        { "[9223372036854775807]", true, 9223372036854775807LL },
        { "[-9223372036854775808]", true, -9223372036854775807LL - 1 },
        { "[9223372036854775808]", false, 0 },
        { "[-9223372036854775809]", false, 0 },
        { "[1.5]", false, 0 },
        { "[1e3]", false, 0 },
        { "[\"7\"]", false, 0 },
        { "[true]", false, 0 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        jscan s;
        js_iter it;
        long long v = 42;
        /* js_validate refuses integers beyond int64 (as jansson does); the
         * cursor must still be safe on them */
        js_init(&s, cases[i].doc, strlen(cases[i].doc));
        assert_true(js_array_begin(&s, &it));
        assert_int_equal(js_element(&s, &it), 1);
        const char *at = s.p;
        bool ok = js_int64(&s, &v);
        if (ok != cases[i].ok)
            fail_msg("case %zu: %s", i, cases[i].doc);
        if (ok) {
            assert_true(v == cases[i].v);
            assert_int_equal(js_element(&s, &it), 0);
        } else {
            assert_ptr_equal(s.p, at);
            assert_true(js_skip(&s));
        }
    }
}

/* Writer: strings with every class of byte that needs escaping, and the
 * int64 extremes, come back from jansson as written. */
static void test_writer(void **state)
{
    (void)state;
    static const char *const strs[] = {
        "", "plain SAE_A1", "quote\" backslash\\ slash/", "ctl\x01\x1f\t\n\r\b\f",
        "utf-8 \xc3\xa9\xe2\x82\xac\xf0\x9f\x94\x91",
    };
    static const long long ints[] = { 0, -1, 1, 9223372036854775807LL, -9223372036854775807LL - 1 };
    jsonw w;
    jw_init(&w, 0); /* small: the writer must grow */
    jw_lit(&w, "{\"s\":[");
    for (size_t i = 0; i < 5; i++) {
        if (i)
            jw_raw(&w, ",", 1);
        jw_str(&w, strs[i]);
    }
    jw_lit(&w, "],\"i\":[");
    for (size_t i = 0; i < 5; i++) {
        if (i)
            jw_raw(&w, ",", 1);
        jw_int(&w, ints[i]);
    }
    jw_lit(&w, "]}");
    size_t len = 0;
    char *text = jw_finish(&w, &len);
    assert_non_null(text);
    assert_int_equal(len, strlen(text));
    assert_true(js_validate(text, len, NULL));
    json_error_t je;
    json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    assert_non_null(o);
    for (size_t i = 0; i < 5; i++) {
        assert_string_equal(json_string_value(json_array_get(json_object_get(o, "s"), i)), strs[i]);
        assert_true(json_integer_value(json_array_get(json_object_get(o, "i"), i)) == ints[i]);
    }
    json_decref(o);
    free(text);
    /* a spent writer yields nothing more */
    assert_null(jw_finish(&w, NULL));
    jw_free(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts),
        cmocka_unit_test(test_refuses),
        cmocka_unit_test(test_position_and_depth),
        cmocka_unit_test(test_many_members),
        cmocka_unit_test(test_cursor),
        cmocka_unit_test(test_decode),
        cmocka_unit_test(test_differential),
        cmocka_unit_test(test_int64),
        cmocka_unit_test(test_writer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
