/*
 * test_ini.c - the line splitter shared by the configuration files of
 * qkd-kme, qkd-link and qumail (ini_split_line in src/common/ini.c):
 * blank and comment lines, sections with and without an argument, key =
 * value pairs, and the two malformed shapes with their messages.
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blank),
        cmocka_unit_test(test_sections),
        cmocka_unit_test(test_pairs),
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests_name("ini", tests, NULL, NULL);
}
