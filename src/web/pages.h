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
#include "mail/message.h"
#include "qkd014.h"
#include "web/auth.h"
#include "web/form.h"
#include "web/html.h"

struct web_multipart;

typedef struct web_request {
    const char *method;       /* "GET", "HEAD" or "POST" */
    const char *url;          /* the path, without the query */
    web_session *session;
    const web_form *form;     /* POST only */
    const char *account;      /* the configured address */
    const qm_config *cfg;     /* the account's configuration */
    const char *page_arg;     /* ?page=N of the inbox, or NULL */
    qkd014_client *kme;       /* the server's one connection to the KME */
    const struct web_multipart *multipart;   /* POST /compose/send: its body (multipart.h) */
    const char *(*arg)(const struct web_request *rq, const char *name);   /* ?name=, or NULL */
    void *conn;               /* for arg (server.c) */
    qm_self *reader;          /* the account as reader (mail/open.h): kme, used keys */
} web_request;

typedef struct web_reply {
    unsigned status;
    const char *content_type;
    html_buf body;
    const char *location;     /* a path of ours, for 303 */
    bool end_session;         /* logout: close the session, expire the cookie */
    const char *csp;          /* NULL: the pages' policy (server.c) */
    bool frames;              /* the page frames our own URLs (frame-src 'self') */
    bool framable;            /* may be framed by our own pages (an HTML part) */
    char disposition[1100];   /* "" or the Content-Disposition of a download */
} web_reply;

void web_route(const web_request *rq, web_reply *out);

/* GET /: the inbox (inbox_page.c). */
void web_page_inbox(const web_request *rq, web_reply *out);

/* GET /message/ID and below: the Read page (message_page.c). */
void web_page_message(const web_request *rq, web_reply *out);

/* GET /compose (?reply=ID, ?reply_all=ID, ?forward=ID): the Compose page
 * (compose_page.c); POST /compose/send and GET /sent/ID (compose_send.c). */
void web_page_compose(const web_request *rq, web_reply *out);
void web_compose_send(const web_request *rq, web_reply *out);
void web_page_sent(const web_request *rq, web_reply *out);

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
