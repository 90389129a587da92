/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pages.h - the pages of `qumail web` behind the gate: each request that
 * reaches route() has passed server.c's checks (Host, Origin,
 * Sec-Fetch-Site, a live session, and for a POST its CSRF token and a
 * well-formed form body).
 */
#ifndef QUMAIL_WEB_PAGES_H
#define QUMAIL_WEB_PAGES_H

#include <stdbool.h>

#include "mail/config.h"
#include "qkd014.h"
#include "web/auth.h"
#include "web/form.h"
#include "web/html.h"

typedef struct web_request {
    const char *method;       /* "GET", "HEAD" or "POST" */
    const char *url;          /* the path, without the query */
    web_session *session;
    const web_form *form;     /* POST only */
    const char *account;      /* the configured address */
    const qm_config *cfg;     /* the account's configuration */
    const char *page_arg;     /* ?page=N of the inbox, or NULL */
    qkd014_client *kme;       /* the server's one connection to the KME */
} web_request;

typedef struct web_reply {
    unsigned status;
    const char *content_type;
    html_buf body;
    const char *location;     /* a path of ours, for 303 */
    bool end_session;         /* logout: close the session, expire the cookie */
} web_reply;

void web_route(const web_request *rq, web_reply *out);

/* GET /: the inbox (inbox_page.c). */
void web_page_inbox(const web_request *rq, web_reply *out);

/* GET /keys: the Keys panel (keys_page.c). */
void web_page_keys(const web_request *rq, web_reply *out);

/* Whether a GET of url is served without a session (it shows no data:
 * the stylesheet, the page after logout). */
bool web_route_public(const char *url);

/* Serve a public page (web_route_public(url) is true). */
void web_route_public_page(const char *url, web_reply *out);

/* A page of plain words for the gate's refusals and errors (title and
 * text are ours). */
void web_error_page(web_reply *out, unsigned status, const char *title, const char *text);

#endif
