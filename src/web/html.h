/* SPDX-License-Identifier: Apache-2.0 */
/*
 * html.h - building a page: a growing byte buffer, text escaped for HTML
 * (element content and quoted attribute values alike), and the page frame
 * (head with our stylesheet, the navigation, the end).
 *
 * Everything that did not come from this program's source (an address, a
 * subject, a file name) goes through html_text; html_raw is for our own
 * markup only.  A buffer that fails to grow remembers it (oom) and the
 * server answers 500 instead of a cut page.  Buffers are wiped when freed:
 * pages hold plaintext mail.
 */
#ifndef QUMAIL_WEB_HTML_H
#define QUMAIL_WEB_HTML_H

#include <stdbool.h>
#include <stddef.h>

typedef struct html_buf {
    char *p;
    size_t len, cap;
    bool oom;
} html_buf;

/* Our own markup, as it is. */
void html_raw(html_buf *b, const char *s);

/* n bytes as they are (a download's body). */
void html_bytes(html_buf *b, const void *p, size_t n);

/* Text from anywhere: & < > " ' escaped; bytes that are not valid UTF-8
 * and control characters other than LF and TAB become U+FFFD. */
void html_text(html_buf *b, const char *s);

/* printf-style, for our own markup and numbers only (never for text from
 * outside: use html_text). */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
void html_rawf(html_buf *b, const char *fmt, ...);

/* The top of a page titled title (escaped) with the navigation; nav is
 * false on pages shown without a session. */
void html_begin(html_buf *b, const char *title, bool nav);

/* The end of a page. */
void html_end(html_buf *b);

/* Wipe and free. */
void html_free(html_buf *b);

#endif
