/* SPDX-License-Identifier: Apache-2.0 */
/*
 * log.h - one-line log records on stderr: time, level, program, message.
 *
 * Never pass key material, key IDs of dec_keys GET URLs or base64 keys to the
 * logger: callers log counts, sizes and SAE IDs only.  Messages are sanitised
 * (control characters escaped) because they may quote client input.
 */
#ifndef QC_LOG_H
#define QC_LOG_H

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

void log_init(const char *program, enum log_level level);
void log_set_level(enum log_level level);
int log_level_parse(const char *s, enum log_level *out); /* 0 ok, -1 unknown */
int log_enabled(enum log_level level);

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
void log_msg(enum log_level level, const char *fmt, ...);

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)  do { if (log_enabled(LOG_INFO)) log_msg(LOG_INFO, __VA_ARGS__); } while (0)
#define log_debug(...) do { if (log_enabled(LOG_DEBUG)) log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)

#endif
