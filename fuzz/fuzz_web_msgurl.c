/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_web_msgurl.c - what the address bar sends the Read page of `qumail
 * web` (src/web/msgurl.c): the URL unescaper, the /message/ID[/part|html/N]
 * parser and the download name of a hostile file name.  Checks that no NUL
 * is ever decoded, that an accepted ID has only its allowed bytes, and that
 * a Content-Disposition never carries a control character, a slash, a
 * backslash or a bidirectional override.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "web/msgurl.h"

static void check_disposition(const char *name)
{
    char out[1100];
    web_content_disposition(name, out, sizeof out);
    if (strncmp(out, "attachment; filename=\"", 22) != 0)
        abort();
    for (const unsigned char *p = (const unsigned char *)out; *p; p++)
        if (*p < 0x20 || *p >= 0x7F || *p == '/' || *p == '\\')
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    size_t before = strlen(s), n = web_url_unescape(s);
    if (n > before || strlen(s) != n)
        abort();   /* a NUL decoded, or the string grew */
    web_msg_url u;
    if (web_msg_url_parse(s, &u)) {
        if (!u.id[0] || u.id[0] == '.' || strlen(u.id) > WEB_MSG_ID_MAX ||
            strspn(u.id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._,=+-") !=
                strlen(u.id))
            abort();
    }
    memcpy(s, data, size);
    s[size] = '\0';
    check_disposition(s);
    char name[256];
    web_display_name(s, name, sizeof name);
    if (strstr(name, "\xE2\x80\xAE") || strchr(name, '/') || strchr(name, '\n'))
        abort();
    free(s);
    return 0;
}
