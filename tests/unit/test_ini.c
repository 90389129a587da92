/*
 * test_ini.c - the line splitter shared by the configuration files of
 * qkd-kme, qkd-link and qumail (ini_split_line in src/common/ini.c):
 * blank and comment lines, sections with and without an argument, key =
 * value pairs, and the two malformed shapes with their messages; the
 * reader ini_read (what its handler sees, in order, and where it stops;
 * a line with a NUL byte is an error).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/ini.h"

static void expect_split(const char *text, ini_kind kind, const char *name, const char *arg)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s", text);
    ini_line l;
    assert_int_equal(ini_split_line(buf, &l), kind);
    assert_int_equal(l.kind, kind);
    assert_string_equal(l.name, name);
    assert_string_equal(l.arg, arg);
    assert_string_equal(l.why, "");
}

static void expect_bad(const char *text, const char *why)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s", text);
    ini_line l;
    assert_int_equal(ini_split_line(buf, &l), INI_BAD);
    assert_string_equal(l.why, why);
}

static void test_blank(void **state)
{
    (void)state;
    expect_split("", INI_BLANK, "", "");
    expect_split("   \t ", INI_BLANK, "", "");
    expect_split("# only a comment = [x]", INI_BLANK, "", "");
    expect_split("  # indented comment", INI_BLANK, "", "");
}

static void test_sections(void **state)
{
    (void)state;
    expect_split("[kme]", INI_SECTION, "kme", "");
    expect_split("  [ sae_api ]  # the SAE listener", INI_SECTION, "sae_api", "");
    expect_split("[peer KME-B]", INI_SECTION, "peer", "KME-B");
    expect_split("[peer \t KME B ]", INI_SECTION, "peer", "KME B");
    expect_split("[]", INI_SECTION, "", "");
}

static void test_pairs(void **state)
{
    (void)state;
    expect_split("id = KME-A", INI_PAIR, "id", "KME-A");
    expect_split("  path=/var/lib/kme#1  # a '#' inside a word stays", INI_PAIR, "path",
                 "/var/lib/kme#1");
    expect_split("empty =", INI_PAIR, "empty", "");
    expect_split("a = b = c", INI_PAIR, "a", "b = c");
    expect_split("bob@example.org = SAE_B1 KME-B", INI_PAIR, "bob@example.org", "SAE_B1 KME-B");
}

static void test_malformed(void **state)
{
    (void)state;
    expect_bad("[limits", "malformed section header '[limits'");
    expect_bad("[limits] x", "malformed section header '[limits] x'");
    expect_bad("[limits]]", "malformed section header '[limits]]'");
    expect_bad("threads 3", "expected 'key = value', got 'threads 3'");
    /* a long line is quoted in part, never overflowing the message */
    char line[400];
    memset(line, 'x', sizeof line - 1);
    line[sizeof line - 1] = '\0';
    char buf[512];
    snprintf(buf, sizeof buf, "%s", line);
    ini_line l;
    assert_int_equal(ini_split_line(buf, &l), INI_BAD);
    char want[200];
    snprintf(want, sizeof want, "expected 'key = value', got '%.100s'", line);
    assert_string_equal(l.why, want);
}

/* ini_read: what the handler sees, in order, and where it stops. */
typedef struct record {
    char text[1024];
    int stop_at_line; /* a handler returns 7 on this line (-1: none) */
} record;

static int rec(record *r, unsigned line, const char *fmt, const char *a, const char *b)
{
    size_t n = strlen(r->text);
    snprintf(r->text + n, sizeof r->text - n, "%u:", line);
    n = strlen(r->text);
    snprintf(r->text + n, sizeof r->text - n, fmt, a, b);
    return (int)line == r->stop_at_line ? 7 : 0;
}

static int on_section(void *ud, unsigned line, const char *name, const char *arg)
{
    return rec(ud, line, "S(%s|%s) ", name, arg);
}

static int on_pair(void *ud, unsigned line, const char *section, const char *key, char *value)
{
    char kv[256];
    snprintf(kv, sizeof kv, "%s=%s", key, value);
    return rec(ud, line, "P(%s|%s) ", section, kv);
}

static int on_error(void *ud, unsigned line, const char *why)
{
    return rec(ud, line, "E(%s%s) ", why, "");
}

static const ini_handler handler = { on_section, on_pair, on_error };

static int read_text(const char *text, record *r)
{
    FILE *f = fmemopen((void *)text, strlen(text), "r");
    assert_non_null(f);
    int rc = ini_read(f, &handler, r);
    fclose(f);
    return rc;
}

static void test_read(void **state)
{
    (void)state;
    record r = { "", -1 };
    const char *text = "# head\nearly = 1\n[a]\nx = 1\n\n[b c]\ny=2 # note\nbad line\n";
    assert_int_equal(read_text(text, &r), 0);
    assert_string_equal(r.text, "2:E(key 'early' outside of any section) 3:S(a|) 4:P(a|x=1) "
                                "6:S(b|c) 7:P(b|y=2) 8:E(expected 'key = value', got 'bad line') ");
    /* a nonzero return stops the reading and is the result; a refused
     * section is not entered */
    record stop = { "", 3 };
    assert_int_equal(read_text("[a]\nx = 1\n[b]\ny = 2\n", &stop), 7);
    assert_string_equal(stop.text, "1:S(a|) 2:P(a|x=1) 3:S(b|) ");
    /* a directory opens but does not read: line 0 */
    FILE *d = fopen(".", "r");
    if (d == NULL)
        skip();
    record dir = { "", -1 };
    assert_int_equal(ini_read(d, &handler, &dir), 0);
    fclose(d);
    assert_string_equal(dir.text, "0:E(cannot read: Is a directory) ");
}

/* A NUL byte would cut a value short without a word (C strings): the
 * line is refused with its number, the next ones are still read. */
static void test_nul_byte(void **state)
{
    (void)state;
    static const char text[] = "[a]\nkey = /etc/ok\0/../evil\nx = 1\n";
    FILE *f = fmemopen((void *)text, sizeof text - 1, "r");
    assert_non_null(f);
    record r = { "", -1 };
    assert_int_equal(ini_read(f, &handler, &r), 0);
    fclose(f);
    assert_string_equal(r.text, "1:S(a|) 2:E(contains a NUL byte) 3:P(a|x=1) ");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blank),
        cmocka_unit_test(test_sections),
        cmocka_unit_test(test_pairs),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_read),
        cmocka_unit_test(test_nul_byte),
    };
    return cmocka_run_group_tests_name("ini", tests, NULL, NULL);
}
