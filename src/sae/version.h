/* SPDX-License-Identifier: Apache-2.0 */
/*
 * version.h - libqkd014's side of its ABI promise (docs/libqkd014.md,
 * "Versioning and ABI"): reading an option struct of any version the
 * library knows into the current layout.  Internal, never installed.
 */
#ifndef QKD014_SAE_VERSION_H
#define QKD014_SAE_VERSION_H

#include <stddef.h>

#include "qkd014.h"

/* Copy the caller's *in, of whatever known version it declares, into *out
 * in this library's layout; members the caller's version lacks are 0 (their
 * defaults).  QKD014_E_VERSION, with the reason in err, for version 0 or a
 * version newer than this library. */
qkd014_code qkd014_options_read(const qkd014_options *in, qkd014_options *out,
                                char *err, size_t errlen);
qkd014_code qkd014_key_request_read(const qkd014_key_request *in,
                                    qkd014_key_request *out,
                                    char *err, size_t errlen);

#endif
