/* SPDX-License-Identifier: Apache-2.0 */
/*
 * msgurl.h - the URLs of the Read page and what a download says about its
 * file (message_page.c):
 *
 *   /message/ID           the message
 *   /message/ID/part/N    leaf N as a download (an attachment, byte for byte)
 *   /message/ID/html/N    HTML leaf N for the page's sandboxed frame
 *
 * ID is a mailbox's message ID (a Maildir file name, an IMAP UID) as the
 * Inbox links to it, percent-encoded; N is a decimal leaf number.  Both
 * come from the address bar, so they are checked here before anything
 * looks them up: a malformed one is 400, an unknown one 404 (the ID is
 * then only compared with the IDs the mailbox lists, never used as a path).
 * fuzz/fuzz_web_msgurl.c runs both functions.
 */
#ifndef QUMAIL_WEB_MSGURL_H
#define QUMAIL_WEB_MSGURL_H

#include <stdbool.h>
#include <stddef.h>

#define WEB_MSG_ID_MAX 255

typedef enum web_msg_view { WEB_MSG_PAGE, WEB_MSG_PART, WEB_MSG_HTML } web_msg_view;

typedef struct web_msg_url {
    char id[WEB_MSG_ID_MAX + 1];
    web_msg_view view;
    size_t part;
} web_msg_url;

/* Parse a path (libmicrohttpd has decoded its %-escapes) under /message/.
 * false if it is not one of the three forms, or ID has a byte outside
 * [A-Za-z0-9._,=+-] (no '/', no NUL, no control), starts with '.', is
 * longer than WEB_MSG_ID_MAX, or N has a sign, a leading zero or more
 * than 6 digits. */
bool web_msg_url_parse(const char *path, web_msg_url *out);

/* Decode %XX escapes of a URL's path or query in place, as the server's
 * unescaper (libmicrohttpd's would turn %00 into a NUL that cuts the path:
 * "/message/ID%00.x" would name message ID).  %00 and escapes that are not
 * two hex digits stay as they are, so no NUL ever appears; returns the new
 * length. */
size_t web_url_unescape(char *s);

/* id percent-encoded for a path segment (all but [A-Za-z0-9._-]). */
void web_msg_id_encode(const char *id, char *out, size_t cap);

/* The Content-Disposition of a download of a file called name (UTF-8 as a
 * message gave it: hostile): "attachment; filename="ASCII"; filename*=UTF-8''ENC".
 * The name loses any directory part and control characters (C0, DEL, C1),
 * bidirectional overrides and isolates, invisible marks and leading dots;
 * ASCII is the rest with every byte outside printable ASCII and '"', '\\',
 * '%' as '_'; ENC is it percent-encoded (RFC 8187 attr-chars kept); an
 * empty result is "attachment". */
void web_content_disposition(const char *name, char *out, size_t cap);

/* The name as the page shows it and a download saves it: what
 * web_content_disposition keeps of it, in UTF-8 (escape it for HTML). */
void web_display_name(const char *name, char *out, size_t cap);

#endif
