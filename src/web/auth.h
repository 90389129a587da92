/* SPDX-License-Identifier: Apache-2.0 */
/*
 * auth.h - who may talk to `qumail web`: the start token printed in the URL,
 * the sessions it opens (cookie value, CSRF token, expiry) and the cookie's
 * name.  Pure state, no HTTP: the server (server.c) asks it questions.
 *
 * All secrets are 256 random bits written as 64 lower-case hex digits and
 * compared in constant time.  The table is small and fixed: a new session
 * beyond it replaces the one used least recently.  Not thread-safe: the
 * server calls it from its one request thread.
 */
#ifndef QUMAIL_WEB_AUTH_H
#define QUMAIL_WEB_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WEB_SECRET_HEX 64          /* 256 bits */
#define WEB_MAX_SESSIONS 16

typedef struct web_session {
    char id[WEB_SECRET_HEX + 1];   /* the cookie value */
    char csrf[WEB_SECRET_HEX + 1]; /* the hidden field of every form */
    uint64_t created_ms, used_ms;  /* monotonic */
    bool live;
} web_session;

typedef struct web_auth {
    char token[WEB_SECRET_HEX + 1];
    uint64_t idle_ms;              /* a session unused this long is gone */
    uint64_t max_ms;               /* and any session this old */
    web_session s[WEB_MAX_SESSIONS];
} web_auth;

/* A fresh start token; sessions last idle_s unused, max_s at most. */
void web_auth_init(web_auth *a, unsigned idle_s, unsigned max_s);

/* Wipe every secret. */
void web_auth_wipe(web_auth *a);

/* Whether given (any length, NUL-terminated) is the start token. */
bool web_auth_token_ok(const web_auth *a, const char *given);

/* Open a session at now_ms (always succeeds: the least recently used one
 * makes room). */
const web_session *web_auth_open(web_auth *a, uint64_t now_ms);

/* The live session whose cookie value is id (NULL if none, or expired:
 * then it is closed); marks it used at now_ms. */
web_session *web_auth_find(web_auth *a, const char *id, uint64_t now_ms);

/* Whether given is this session's CSRF token. */
bool web_auth_csrf_ok(const web_session *s, const char *given);

/* End a session (logout). */
void web_auth_close(web_session *s);

/* The value of cookie `name` in a Cookie header (NULL if absent), copied to
 * out (cap bytes); a value too long for out counts as absent. */
const char *web_cookie_value(const char *header, const char *name, char *out, size_t cap);

#endif
