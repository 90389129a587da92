/* SPDX-License-Identifier: Apache-2.0 */
/*
 * version.c - the library's version at run time, and option structs read
 * by the version they declare, so that a program built against an older
 * qkd014.h keeps working with a newer libqkd014 of the same soname.
 *
 * A struct's caller allocated it with the size of its own header's
 * version: the library must read no byte past that.  Each version's size
 * is therefore written down here as the end of its last member, once and
 * for ever; a new version appends a member to the struct in qkd014.h, a
 * row here and bumps the _VERSION macro.
 */
#include "sae/version.h"

#include <stdio.h>
#include <string.h>

/* End of member m of struct type t: the size of a struct version ending there. */
#define END_OF(t, m) (offsetof(t, m) + sizeof(((t *)0)->m))

static const size_t options_size[] = {
    [1] = END_OF(qkd014_options, timeout_ms), /* 0.2.0 */
};

static const size_t key_request_size[] = {
    [1] = END_OF(qkd014_key_request, extension_optional_json), /* 0.2.0 */
};

_Static_assert(sizeof options_size / sizeof options_size[0] == QKD014_OPTIONS_VERSION + 1,
               "a new qkd014_options version needs its row in options_size");
_Static_assert(sizeof key_request_size / sizeof key_request_size[0] ==
               QKD014_KEY_REQUEST_VERSION + 1,
               "a new qkd014_key_request version needs its row in key_request_size");

QKD014_API const char *qkd014_version(void)
{
    return QKD014_VERSION_STRING;
}

/* Copy the prefix of in that its version covers into out (zeroed first). */
static qkd014_code read_versioned(const void *in, unsigned int version, void *out,
                                  size_t out_size, const size_t *sizes,
                                  unsigned int current, const char *what,
                                  const char *init, char *err, size_t errlen)
{
    memset(out, 0, out_size);
    if (version == 0) {
        snprintf(err, errlen, "%s version is 0: initialise it with %s", what, init);
        return QKD014_E_VERSION;
    }
    if (version > current) {
        snprintf(err, errlen, "%s version %u is newer than this libqkd014 %s knows "
                 "(%u): the program was built against a newer qkd014.h",
                 what, version, QKD014_VERSION_STRING, current);
        return QKD014_E_VERSION;
    }
    memcpy(out, in, sizes[version]);
    return QKD014_OK;
}

qkd014_code qkd014_options_read(const qkd014_options *in, qkd014_options *out,
                                char *err, size_t errlen)
{
    qkd014_code rc = read_versioned(in, in->version, out, sizeof *out, options_size,
                                    QKD014_OPTIONS_VERSION, "qkd014_options",
                                    "QKD014_OPTIONS_INIT", err, errlen);
    out->version = QKD014_OPTIONS_VERSION;
    return rc;
}

qkd014_code qkd014_key_request_read(const qkd014_key_request *in,
                                    qkd014_key_request *out,
                                    char *err, size_t errlen)
{
    qkd014_code rc = read_versioned(in, in->version, out, sizeof *out, key_request_size,
                                    QKD014_KEY_REQUEST_VERSION, "qkd014_key_request",
                                    "QKD014_KEY_REQUEST_INIT", err, errlen);
    out->version = QKD014_KEY_REQUEST_VERSION;
    return rc;
}
