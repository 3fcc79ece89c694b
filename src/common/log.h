/* Structured log lines on stderr: "2026-11-25T13:00:00.123Z info  msg k=v".
 * Four levels; per-subsystem traces are switched on at run time and cost a
 * flag test when off. Safe to call from any thread.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef CP_LOG_H
#define CP_LOG_H

#include <stdbool.h>

enum cp_log_level {
    CP_LOG_DEBUG = 0,
    CP_LOG_INFO = 1,
    CP_LOG_WARN = 2,
    CP_LOG_ERROR = 3,
};

enum cp_trace {
    CP_TRACE_HTTP = 1 << 0,
    CP_TRACE_WS = 1 << 1,
    CP_TRACE_RPC = 1 << 2,
    CP_TRACE_STORE = 1 << 3,
    CP_TRACE_SCHED = 1 << 4,
    CP_TRACE_ENGINE = 1 << 5,
};

extern enum cp_log_level cp_log_level;
extern unsigned cp_trace_mask;

/* Parses "debug|info|warn|warning|error" (any case, also Ruby's "fatal");
 * returns 0 and sets *out, or CP_EINVAL. */
int cp_log_parse_level(const char *s, enum cp_log_level *out);
/* Parses a comma list of subsystem names ("http,ws"); CP_EINVAL names the
 * first unknown one in *bad. */
int cp_log_parse_trace(const char *s, unsigned *out, const char **bad);

void cp_log(enum cp_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define cp_debug(...)                                                          \
    do {                                                                       \
        if (cp_log_level <= CP_LOG_DEBUG)                                      \
            cp_log(CP_LOG_DEBUG, __VA_ARGS__);                                 \
    } while (0)
#define cp_info(...) cp_log(CP_LOG_INFO, __VA_ARGS__)
#define cp_warn(...) cp_log(CP_LOG_WARN, __VA_ARGS__)
#define cp_error(...) cp_log(CP_LOG_ERROR, __VA_ARGS__)
#define cp_trace(sub, ...)                                                     \
    do {                                                                       \
        if (cp_trace_mask & (sub))                                             \
            cp_log(CP_LOG_DEBUG, __VA_ARGS__);                                 \
    } while (0)

/* Logs file, line and the message, prints a stack trace and aborts. For
 * "cannot happen" cases that must stop a release build too. */
_Noreturn void cp__panic(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#define cp_panic(...) cp__panic(__FILE__, __LINE__, __VA_ARGS__)

/* Installs SIGSEGV/SIGABRT/SIGBUS handlers that print a stack trace. */
void cp_log_install_crash_handler(void);

#endif
