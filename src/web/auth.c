/* SPDX-License-Identifier: Apache-2.0 */
/*
 * auth.c - the start token, sessions and CSRF tokens of `qumail web`
 * (auth.h).  Every comparison of a secret takes the same time whatever the
 * guess: the length is checked first (it is public: always 64), then the
 * bytes with secret_cmp.
 */
#include "web/auth.h"

#include <string.h>

#include "common/secret.h"

static void random_hex(char out[WEB_SECRET_HEX + 1])
{
    static const char digits[] = "0123456789abcdef";
    uint8_t raw[WEB_SECRET_HEX / 2];
    secret_random(raw, sizeof raw);
    for (size_t i = 0; i < sizeof raw; i++) {
        out[2 * i] = digits[raw[i] >> 4];
        out[2 * i + 1] = digits[raw[i] & 15];
    }
    out[WEB_SECRET_HEX] = '\0';
    secret_wipe(raw, sizeof raw);
}

static bool secret_equal(const char *known, const char *given)
{
    if (!given || strnlen(given, WEB_SECRET_HEX + 1) != WEB_SECRET_HEX)
        return false;
    return secret_cmp(known, given, WEB_SECRET_HEX) == 0;
}

void web_auth_init(web_auth *a, unsigned idle_s, unsigned max_s)
{
    memset(a, 0, sizeof *a);
    random_hex(a->token);
    a->idle_ms = (uint64_t)idle_s * 1000;
    a->max_ms = (uint64_t)max_s * 1000;
}

void web_auth_wipe(web_auth *a)
{
    secret_wipe(a, sizeof *a);
}

bool web_auth_token_ok(const web_auth *a, const char *given)
{
    return secret_equal(a->token, given);
}

static bool expired(const web_auth *a, const web_session *s, uint64_t now_ms)
{
    return now_ms - s->used_ms >= a->idle_ms || now_ms - s->created_ms >= a->max_ms;
}

const web_session *web_auth_open(web_auth *a, uint64_t now_ms)
{
    web_session *slot = &a->s[0];
    for (size_t i = 0; i < WEB_MAX_SESSIONS; i++) {
        web_session *s = &a->s[i];
        if (!s->live || expired(a, s, now_ms)) {
            slot = s;
            break;
        }
        if (s->used_ms < slot->used_ms)
            slot = s;
    }
    random_hex(slot->id);
    random_hex(slot->csrf);
    slot->created_ms = slot->used_ms = now_ms;
    slot->live = true;
    return slot;
}

web_session *web_auth_find(web_auth *a, const char *id, uint64_t now_ms)
{
    web_session *found = NULL;
    /* Every slot is compared, so the time says nothing about which matched. */
    for (size_t i = 0; i < WEB_MAX_SESSIONS; i++)
        if (a->s[i].live && secret_equal(a->s[i].id, id))
            found = &a->s[i];
    if (!found)
        return NULL;
    if (expired(a, found, now_ms)) {
        web_auth_close(found);
        return NULL;
    }
    found->used_ms = now_ms;
    return found;
}

bool web_auth_csrf_ok(const web_session *s, const char *given)
{
    return s && s->live && secret_equal(s->csrf, given);
}

void web_auth_close(web_session *s)
{
    secret_wipe(s, sizeof *s);
}

const char *web_cookie_value(const char *header, const char *name, char *out, size_t cap)
{
    size_t nlen = strlen(name);
    const char *p = header;
    while (p && *p) {
        while (*p == ' ' || *p == '\t' || *p == ';')
            p++;
        const char *end = strchr(p, ';');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > nlen && strncmp(p, name, nlen) == 0 && p[nlen] == '=') {
            size_t vlen = len - nlen - 1;
            while (vlen > 0 && (p[nlen + 1 + vlen - 1] == ' ' || p[nlen + 1 + vlen - 1] == '\t'))
                vlen--;
            if (vlen >= cap)
                return NULL;
            memcpy(out, p + nlen + 1, vlen);
            out[vlen] = '\0';
            return out;
        }
        p = end;
    }
    return NULL;
}
