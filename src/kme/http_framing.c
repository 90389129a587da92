/* SPDX-License-Identifier: Apache-2.0 */
/*
 * http_framing.c - one framing per request body: no repeated
 * Content-Length, no Content-Length beside Transfer-Encoding, no transfer
 * coding but "chunked" (http_framing.h says why).
 */
#include "kme/http_framing.h"

#include <stddef.h>
#include <strings.h>

static bool same_word(const char *s, size_t len, const char *word)
{
    size_t n = 0;
    while (word[n])
        n++;
    return len == n && strncasecmp(s, word, n) == 0;
}

/* Optional whitespace around a header value is not part of it (RFC 9110
 * §5.5); libmicrohttpd trims it already, this keeps the rule local. */
static void trim(const char **s, size_t *len)
{
    while (*len && (**s == ' ' || **s == '\t')) {
        (*s)++;
        (*len)--;
    }
    while (*len && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t'))
        (*len)--;
}

void http_framing_add(http_framing *f, const char *name, size_t name_len,
                      const char *value, size_t value_len)
{
    if (same_word(name, name_len, "Content-Length")) {
        f->content_length++;
    } else if (same_word(name, name_len, "Transfer-Encoding")) {
        f->transfer_encoding++;
        trim(&value, &value_len);
        if (!same_word(value, value_len, "chunked"))
            f->te_not_chunked = true;
    }
}

const char *http_framing_refusal(const http_framing *f)
{
    if (f->content_length > 1)
        return "request has more than one Content-Length header";
    if (f->content_length && f->transfer_encoding)
        return "request has both Content-Length and Transfer-Encoding";
    if (f->transfer_encoding > 1 || f->te_not_chunked)
        return "unsupported Transfer-Encoding: only a single 'chunked' is accepted";
    return NULL;
}
