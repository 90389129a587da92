/* SPDX-License-Identifier: Apache-2.0 */
/*
 * termsafe.h - text from mail, mail servers and peers made safe to print on
 * a terminal.
 *
 * A terminal obeys escape sequences in what it prints: ESC ] 0;TITLE BEL
 * retitles the window, CSI sequences move the cursor and erase text (a
 * "[NOT PROTECTED]" label printed before a hostile Subject can be wiped
 * out), C1 controls (U+0080..U+009F, also as their UTF-8 form) are
 * escapes of their own on many terminals, and bidi overrides reorder what
 * follows them.  Every line qumail prints from such text goes through
 * termsafe first; docs/security.md lists what is replaced and why.
 *
 * Replaced by one '?' each: C0 controls (0x00..0x1F), DEL (0x7F), the
 * UTF-8 forms of C1 (U+0080..U+009F), the bidi embeddings, overrides and
 * isolates U+202A..U+202E and U+2066..U+2069, and (one '?' per byte)
 * every byte that is not part of well-formed UTF-8 (overlong forms,
 * surrogates, > U+10FFFF, truncated sequences).  TERMSAFE_TEXT (a message body on a terminal)
 * keeps LF, TAB and the CR of a CRLF; TERMSAFE_LINE (one line of a
 * listing, a status or an error) keeps none of them.
 */
#ifndef QC_TERMSAFE_H
#define QC_TERMSAFE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef enum termsafe_mode {
    TERMSAFE_LINE, /* one line: no line break, no tab */
    TERMSAFE_TEXT, /* a text: LF, TAB and the CR of CRLF kept */
} termsafe_mode;

#define TERMSAFE_REPLACEMENT '?'

/* Copy len bytes of in into out (capacity cap > 0, always NUL-terminated),
 * replacing what is unsafe.  A character is never cut in half: the copy
 * stops before the first one that does not fit.  Returns the length
 * written. */
size_t termsafe_copy(char *out, size_t cap, const void *in, size_t len, termsafe_mode mode);

/* Write len bytes of in to f with what is unsafe replaced: 0, or -1 with
 * errno set if the write failed. */
int termsafe_write(FILE *f, const void *in, size_t len, termsafe_mode mode);

/* How many bytes at p (n available) form one character that may be
 * printed as it is: 0 if p[0] must be replaced (as one byte). */
size_t termsafe_char_len(const unsigned char *p, size_t n, termsafe_mode mode);

/* true if f is a terminal (the descriptor behind it). */
bool termsafe_is_tty(FILE *f);

#endif
