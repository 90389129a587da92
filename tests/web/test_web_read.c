/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_web_read.c - the Read page of `qumail web`, offline (cmocka): its
 * URLs (src/web/msgurl.c: traversal, NUL, overlong and malformed IDs and
 * part numbers), download names (quotes, CR/LF, slashes, bidi overrides,
 * leading dots, invalid UTF-8), an inner message's parts (src/mail/parts.c)
 * and the page itself (src/web/message_page.c) for a message already in
 * the read store: hostile headers, text and attachment names escaped, the
 * HTML part only in a sandboxed frame with its own policy, downloads byte
 * for byte, a part of an unread message never decrypted.  No KME: a
 * message in the read store needs none (tests/web/test-read.mjs has the
 * testbed).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mail/maildir.h"
#include "mail/parts.h"
#include "mail/readstore.h"
#include "web/msgurl.h"
#include "web/pages.h"

/* ------------------------------------------------------------ URLs */

static void test_url_forms(void **state)
{
    web_msg_url u;
    (void)state;
    assert_true(web_msg_url_parse("/message/1765.M1P2Q3.host,S=9", &u));
    assert_string_equal(u.id, "1765.M1P2Q3.host,S=9");
    assert_int_equal(u.view, WEB_MSG_PAGE);
    assert_true(web_msg_url_parse("/message/42/part/3", &u));
    assert_int_equal(u.view, WEB_MSG_PART);
    assert_int_equal(u.part, 3);
    assert_true(web_msg_url_parse("/message/42/html/0", &u));
    assert_int_equal(u.view, WEB_MSG_HTML);
    assert_int_equal(u.part, 0);
}

static void test_url_hostile(void **state)
{
    (void)state;
    char longid[300];
    memset(longid, 'a', sizeof longid);
    memcpy(longid, "/message/", 9);
    longid[9 + 256] = '\0';   /* 256 bytes of ID: one too many */
    const char *bad[] = {
        "/message/", "/message/../usedkeys.db", "/message/..", "/message/.hidden",
        "/message/%2e%2e", "/message/a/../../x", "/message/a%2Fb", "/message/a b",
        "/message/a\tb", "/message/a\r\nSet-Cookie:x", "/message/\xC3\xA9",
        "/message/a/part/", "/message/a/part/-1", "/message/a/part/01",
        "/message/a/part/1234567", "/message/a/part/1x", "/message/a/part/1/",
        "/message/a/html/+1", "/message/a/raw/1", "/message/a/", "/messages/a", "/message",
        longid,
    };
    web_msg_url u;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (web_msg_url_parse(bad[i], &u))
            fail_msg("accepted: %s", bad[i]);
    }
    longid[9 + 255] = '\0';   /* 255: the most */
    assert_true(web_msg_url_parse(longid, &u));
    /* a NUL ends the path libmicrohttpd hands over: what follows is not seen */
    assert_true(web_msg_url_parse("/message/abc\0/../../etc", &u));
    assert_string_equal(u.id, "abc");
}

static void test_unescape(void **state)
{
    (void)state;
    char a[] = "/message/abc%00.x%2e%2E%2F%41%zz%4%", b[] = "%00%00", c[] = "%C3%A9";
    assert_int_equal(web_url_unescape(a), strlen("/message/abc%00.x../A%zz%4%"));
    assert_string_equal(a, "/message/abc%00.x../A%zz%4%");
    assert_int_equal(web_url_unescape(b), 6);
    assert_string_equal(b, "%00%00");
    assert_int_equal(web_url_unescape(c), 2);
    assert_string_equal(c, "\xC3\xA9");
    web_msg_url u;
    assert_false(web_msg_url_parse(a, &u));
}

static void test_id_encode(void **state)
{
    char out[64];
    (void)state;
    web_msg_id_encode("12.M3,S=4:2,S", out, sizeof out);
    assert_string_equal(out, "12.M3%2CS%3D4%3A2%2CS");
    web_msg_id_encode("<\"x'>", out, sizeof out);
    assert_string_equal(out, "%3C%22x%27%3E");
}

/* ------------------------------------------------------- download names */

static void test_disposition_plain(void **state)
{
    char out[1100];
    (void)state;
    web_content_disposition("report.pdf", out, sizeof out);
    assert_string_equal(out, "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf");
    web_content_disposition("Grüße.txt", out, sizeof out);
    assert_string_equal(out, "attachment; filename=\"Gr____e.txt\"; "
                             "filename*=UTF-8''Gr%C3%BC%C3%9Fe.txt");
}

static void test_disposition_hostile(void **state)
{
    char out[1100], name[256];
    (void)state;
    /* quotes, CR LF (header injection), a path */
    web_content_disposition("../../etc/\"evil\"\r\nSet-Cookie: x=1.txt", out, sizeof out);
    assert_null(strchr(out, '\r'));
    assert_null(strchr(out, '\n'));
    assert_null(strchr(out, '/'));
    assert_string_equal(out, "attachment; filename=\"_evil_Set-Cookie: x=1.txt\"; "
                             "filename*=UTF-8''%22evil%22Set-Cookie%3A%20x%3D1.txt");
    /* a right-to-left override that makes "exe" read as "txt" */
    web_content_disposition("invoice\xE2\x80\xAEtxt.exe", out, sizeof out);
    assert_string_equal(out, "attachment; filename=\"invoicetxt.exe\"; "
                             "filename*=UTF-8''invoicetxt.exe");
    /* isolates, zero-width, BOM, C1 control, DEL, invalid UTF-8 */
    web_display_name("a\xE2\x81\xA6" "b\xE2\x80\x8B" "c\xEF\xBB\xBF" "d\xC2\x85" "e\x7F" "f\xFF", name,
                     sizeof name);
    assert_string_equal(name, "abcdef");
    /* Windows paths and hidden files */
    web_display_name("C:\\Users\\x\\..\\.bashrc", name, sizeof name);
    assert_string_equal(name, "bashrc");
    web_display_name("...", name, sizeof name);
    assert_string_equal(name, "attachment");
    web_display_name("", name, sizeof name);
    assert_string_equal(name, "attachment");
    web_content_disposition(NULL, out, sizeof out);
    assert_string_equal(out, "attachment; filename=\"attachment\"; filename*=UTF-8''attachment");
    /* a 4 KiB name: cut, still one header */
    char big[4096];
    memset(big, 'n', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    web_content_disposition(big, out, sizeof out);
    assert_true(strlen(out) < sizeof out);
    assert_non_null(strstr(out, "filename*=UTF-8''nnn"));
}

/* ------------------------------------------------------------- parts */

static const char HOSTILE[] =
    "From: \"Mallory <script>\" <alice@example.org>\r\n"
    "To: bob@example.org\r\n"
    "Cc: carol@example.org\r\n"
    "Date: Mon, 7 Dec 2026 08:00:00 +0000\r\n"
    "Subject: =?UTF-8?B?R3LDvMOfZSA8aW1nIHNyYz14IG9uZXJyb3I9YWxlcnQoMSk+?=\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed; boundary=\"B1\"\r\n"
    "\r\n"
    "--B1\r\n"
    "Content-Type: multipart/alternative; boundary=\"B2\"\r\n"
    "\r\n"
    "--B2\r\n"
    "Content-Type: text/plain; charset=iso-8859-1\r\n"
    "Content-Transfer-Encoding: quoted-printable\r\n"
    "\r\n"
    "Gr=FC=DFe </pre><script>alert(1)</script>\r\n"
    "--B2\r\n"
    "Content-Type: text/html; charset=utf-8\r\n"
    "\r\n"
    "<p>hi<script>parent.document.title='pwned'</script><img src=\"http://127.0.0.1:9/x\"></p>\r\n"
    "--B2--\r\n"
    "--B1\r\n"
    "Content-Type: application/octet-stream\r\n"
    "Content-Disposition: attachment; filename=\"..\\\\..\\\\\\\"evil\\\".bin\"\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "AAECAwT/\r\n"
    "--B1\r\n"
    "Content-Type: application/pdf\r\n"
    "Content-Disposition: attachment; filename*=UTF-8''%E2%80%AEfdp.exe\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "JVBERg==\r\n"
    "--B1--\r\n";

static void test_parts(void **state)
{
    qm_parts p;
    (void)state;
    assert_int_equal(qm_parts_read((const uint8_t *)HOSTILE, sizeof HOSTILE - 1, &p), QM_OK);
    assert_string_equal(p.subject, "Grüße <img src=x onerror=alert(1)>");
    assert_non_null(strstr(p.from, "alice@example.org"));
    assert_string_equal(p.to, "bob@example.org");
    assert_string_equal(p.cc, "carol@example.org");
    assert_non_null(strstr(p.text, "Grüße </pre><script>"));   /* charset converted */
    assert_int_equal(p.n_parts, 4);
    assert_int_equal(p.parts[0].kind, QM_PART_TEXT);
    assert_int_equal(p.parts[1].kind, QM_PART_HTML);
    assert_int_equal(p.parts[2].kind, QM_PART_ATTACHMENT);
    assert_int_equal(p.parts[2].size, 6);
    assert_int_equal(p.n_attachments, 2);
    uint8_t *b;
    size_t n;
    assert_int_equal(qm_parts_content((const uint8_t *)HOSTILE, sizeof HOSTILE - 1, 2, &b, &n),
                     QM_OK);
    assert_int_equal(n, 6);
    assert_memory_equal(b, "\x00\x01\x02\x03\x04\xff", 6);
    free(b);
    assert_int_equal(qm_parts_content((const uint8_t *)HOSTILE, sizeof HOSTILE - 1, 9, &b, &n),
                     QM_E_NOT_FOUND);
    qm_read_meta m;
    memset(&m, 0, sizeof m);
    qm_parts_list_attachments(&p, &m);
    assert_int_equal(m.n_attachments, 2);
    assert_int_equal(m.attachments[1].size, 4);
    qm_parts_free(&p);
    qm_parts_free(&p);   /* twice is safe */
}

static void test_parts_bounds(void **state)
{
    (void)state;
    qm_parts p;
    assert_int_equal(qm_parts_read((const uint8_t *)"\r\nbody", 6, &p), QM_E_MIME);
    /* 300 nested multiparts: walked 16 deep, then cut */
    size_t cap = 300 * 80 + 200, n = 0;
    char *deep = malloc(cap);
    assert_non_null(deep);
    n += (size_t)snprintf(deep + n, cap - n, "Subject: deep\r\nMIME-Version: 1.0\r\n");
    for (int i = 0; i < 300; i++)
        n += (size_t)snprintf(deep + n, cap - n,
                              "Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n", i, i);
    n += (size_t)snprintf(deep + n, cap - n, "Content-Type: text/plain\r\n\r\nbottom\r\n");
    assert_int_equal(qm_parts_read((const uint8_t *)deep, n, &p), QM_OK);
    assert_true(p.truncated);
    qm_parts_free(&p);
    free(deep);
}

/* ------------------------------------------------------- the page */

static char dir[256], maildir[300], store[300];
static qm_config cfg;
static char *stored_id, *unread_id;

static int page_setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "%s/qmread.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir))
        return -1;
    snprintf(maildir, sizeof maildir, "%s/mail/bob@example.org", dir);
    snprintf(store, sizeof store, "%s/store", dir);
    char root[300];
    snprintf(root, sizeof root, "%s/mail", dir);
    cfg.address = "bob@example.org";
    cfg.maildir_root = strdup(root);
    cfg.store_dir = store;
    static const char outer[] = "From: alice@example.org\r\nTo: bob@example.org\r\n"
                                "Subject: QuMail encrypted message\r\n\r\nciphertext\r\n";
    if (qm_maildir_deliver(maildir, (const uint8_t *)outer, sizeof outer - 1, &stored_id) != QM_OK ||
        qm_maildir_deliver(maildir, (const uint8_t *)outer, sizeof outer - 1, &unread_id) != QM_OK)
        return -1;
    qm_read_meta m;
    memset(&m, 0, sizeof m);
    snprintf(m.sender, sizeof m.sender, "SAE_A1");
    snprintf(m.recipients, sizeof m.recipients, "SAE_B1");
    snprintf(m.kme, sizeof m.kme, "KME-B");
    m.n_keys = 1;
    snprintf(m.key_ids[0], sizeof m.key_ids[0], "0b7b2a4e-0000-4000-8000-000000000001");
    m.read_at = 1796630400;
    return qm_readstore_put_meta(store, stored_id, 2, &m, (const uint8_t *)HOSTILE,
                                 sizeof HOSTILE - 1) == QM_OK ? 0 : -1;
}

static int page_teardown(void **state)
{
    (void)state;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    free(stored_id);
    free(unread_id);
    free(cfg.maildir_root);
    return system(cmd) == 0 ? 0 : -1;
}

static void get(const char *url, const char *method, web_reply *out)
{
    static web_session session;
    web_request rq = { .method = method, .url = url, .session = &session,
                       .account = cfg.address, .cfg = &cfg };
    memset(out, 0, sizeof *out);
    web_page_message(&rq, out);
}

static void test_page_escapes(void **state)
{
    (void)state;
    char url[400];
    web_reply out;
    snprintf(url, sizeof url, "/message/%s", stored_id);
    get(url, "GET", &out);
    assert_int_equal(out.status, 200);
    const char *p = out.body.p;
    assert_non_null(strstr(p, "Gr\xC3\xBC\xC3\x9F" "e &lt;img src=x onerror=alert(1)&gt;"));
    assert_null(strstr(p, "<img src=x"));
    assert_null(strstr(p, "<script>"));
    assert_non_null(strstr(p, "&lt;/pre&gt;&lt;script&gt;"));
    assert_non_null(strstr(p, "Mallory &lt;script&gt;"));
    assert_non_null(strstr(p, ">Level 2</p>"));
    assert_non_null(strstr(p, "<iframe sandbox class=\"html-part\""));
    assert_null(strstr(p, "allow-"));
    assert_non_null(strstr(p, "/html/1\"></iframe>"));
    assert_null(strstr(p, "parent.document"));   /* the HTML is not in the page */
    assert_non_null(strstr(p, "/part/2\">&quot;evil&quot;.bin</a>"));
    assert_null(strstr(p, "\xE2\x80\xAE"));      /* the override is gone from the name */
    assert_non_null(strstr(p, ">fdp.exe</a>"));
    assert_non_null(strstr(p, "Security details"));
    assert_non_null(strstr(p, "AES-256-GCM-HKDF-SHA256-QKD"));
    assert_non_null(strstr(p, "SAE_A1"));
    assert_non_null(strstr(p, "0b7b2a4e-0000-4000-8000-000000000001"));
    assert_non_null(strstr(p, "from the read store"));
    assert_non_null(strstr(p, "aria-keyshortcuts=\"r\">Reply</a>"));
    assert_non_null(strstr(p, "/compose?reply_all="));
    assert_non_null(strstr(p, "aria-keyshortcuts=\"f\">Forward</a>"));
    assert_true(out.frames);
    html_free(&out.body);
}

static void test_page_parts(void **state)
{
    (void)state;
    char url[400];
    web_reply out;
    snprintf(url, sizeof url, "/message/%s/part/2", stored_id);
    get(url, "GET", &out);
    assert_int_equal(out.status, 200);
    assert_string_equal(out.content_type, "application/octet-stream");
    assert_int_equal(out.body.len, 6);
    assert_memory_equal(out.body.p, "\x00\x01\x02\x03\x04\xff", 6);
    assert_non_null(strstr(out.disposition, "attachment; filename=\""));
    assert_null(strchr(out.disposition, '/'));
    html_free(&out.body);

    snprintf(url, sizeof url, "/message/%s/html/1", stored_id);
    get(url, "GET", &out);
    assert_int_equal(out.status, 200);
    assert_non_null(out.csp);
    assert_non_null(strstr(out.csp, "default-src 'none'"));
    assert_non_null(strstr(out.csp, "sandbox"));
    assert_null(strstr(out.csp, "script-src"));
    assert_true(out.framable);
    html_free(&out.body);

    snprintf(url, sizeof url, "/message/%s/html/2", stored_id);   /* not HTML */
    get(url, "GET", &out);
    assert_int_equal(out.status, 404);
    html_free(&out.body);
    snprintf(url, sizeof url, "/message/%s/part/99", stored_id);
    get(url, "GET", &out);
    assert_int_equal(out.status, 404);
    html_free(&out.body);
}

/* A message whose sender is not verified: shown under the banner of
 * `qumail read --show-unverified`; a structure GMime cannot read: as text. */
static void test_page_unverified(void **state)
{
    (void)state;
    char url[400];
    web_reply out;
    qm_read_meta m;
    memset(&m, 0, sizeof m);
    snprintf(m.unverified, sizeof m.unverified, "sent by SAE SAE_A2, but From alice is SAE_A1");
    static const char raw[] = "\r\nno header <b>at all</b>";
    assert_int_equal(qm_readstore_put_meta(store, unread_id, 1, &m, (const uint8_t *)raw,
                                           sizeof raw - 1), QM_OK);
    snprintf(url, sizeof url, "/message/%s", unread_id);
    get(url, "GET", &out);
    assert_int_equal(out.status, 200);
    assert_non_null(strstr(out.body.p, "role=\"alert\"><strong>Sender not verified:</strong> "
                                       "sent by SAE SAE_A2, but From alice is SAE_A1. Its From "
                                       "does NOT prove who wrote it"));
    assert_non_null(strstr(out.body.p, "no header &lt;b&gt;at all&lt;/b&gt;"));
    html_free(&out.body);
}

/* A Level 4 message says so in words and in red. */
static void test_page_level4(void **state)
{
    (void)state;
    char url[400];
    web_reply out;
    assert_int_equal(qm_readstore_put(store, unread_id, 4, (const uint8_t *)HOSTILE,
                                      sizeof HOSTILE - 1), QM_OK);
    snprintf(url, sizeof url, "/message/%s", unread_id);
    get(url, "GET", &out);
    assert_int_equal(out.status, 200);
    assert_non_null(strstr(out.body.p, ">Level 4 (not protected)</p>"));
    assert_non_null(strstr(out.body.p, "class=\"banner danger\" role=\"alert\">Level 4: this "
                                       "message is NOT encrypted and NOT authenticated"));
    assert_non_null(strstr(out.body.p, "No: Level 4 carries no integrity check"));
    assert_non_null(strstr(out.body.p, "none (Level 4 uses no key)"));
    html_free(&out.body);
}

static void test_page_refuses(void **state)
{
    (void)state;
    char url[400];
    web_reply out;
    get("/message/..%2Fstore", "GET", &out);
    assert_int_equal(out.status, 400);
    html_free(&out.body);
    get("/message/0000.unknown", "GET", &out);
    assert_int_equal(out.status, 404);
    html_free(&out.body);
    /* an unread message: no reader here, and a part or a HEAD never decrypts */
    snprintf(url, sizeof url, "/message/%s/part/0", unread_id);
    get(url, "GET", &out);
    assert_int_equal(out.status, 404);
    assert_non_null(strstr(out.body.p, "open its page first"));
    html_free(&out.body);
    snprintf(url, sizeof url, "/message/%s", unread_id);
    get(url, "HEAD", &out);
    assert_int_equal(out.status, 404);
    html_free(&out.body);
    int level;
    uint8_t *msg;
    size_t len;
    assert_int_equal(qm_readstore_get(store, unread_id, &level, &msg, &len), QM_E_NOT_FOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_forms),
        cmocka_unit_test(test_url_hostile),
        cmocka_unit_test(test_unescape),
        cmocka_unit_test(test_id_encode),
        cmocka_unit_test(test_disposition_plain),
        cmocka_unit_test(test_disposition_hostile),
        cmocka_unit_test(test_parts),
        cmocka_unit_test(test_parts_bounds),
        cmocka_unit_test_setup_teardown(test_page_escapes, page_setup, page_teardown),
        cmocka_unit_test_setup_teardown(test_page_parts, page_setup, page_teardown),
        cmocka_unit_test_setup_teardown(test_page_unverified, page_setup, page_teardown),
        cmocka_unit_test_setup_teardown(test_page_level4, page_setup, page_teardown),
        cmocka_unit_test_setup_teardown(test_page_refuses, page_setup, page_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
