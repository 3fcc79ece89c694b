/* Log lines, traces and the crash handler.
 * SPDX-License-Identifier: Apache-2.0 */
#include "log.h"
#include "err.h"

#include <execinfo.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

enum cp_log_level cp_log_level = CP_LOG_INFO;
unsigned cp_trace_mask = 0;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

int cp_log_parse_level(const char *s, enum cp_log_level *out)
{
    static const struct {
        const char *name;
        enum cp_log_level level;
    } names[] = {
        {"debug", CP_LOG_DEBUG}, {"info", CP_LOG_INFO},
        {"warn", CP_LOG_WARN},   {"warning", CP_LOG_WARN},
        {"error", CP_LOG_ERROR}, {"fatal", CP_LOG_ERROR},
        {"0", CP_LOG_DEBUG},     {"1", CP_LOG_INFO},
        {"2", CP_LOG_WARN},      {"3", CP_LOG_ERROR},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcasecmp(s, names[i].name) == 0) {
            *out = names[i].level;
            return 0;
        }
    }
    return CP_EINVAL;
}

int cp_log_parse_trace(const char *s, unsigned *out, const char **bad)
{
    static const struct {
        const char *name;
        unsigned bit;
    } subs[] = {
        {"http", CP_TRACE_HTTP},   {"ws", CP_TRACE_WS},
        {"rpc", CP_TRACE_RPC},     {"store", CP_TRACE_STORE},
        {"sched", CP_TRACE_SCHED}, {"engine", CP_TRACE_ENGINE},
        {"all", ~0u},
    };
    unsigned mask = 0;
    const char *p = s;
    while (*p != '\0') {
        size_t n = strcspn(p, ",");
        bool found = false;
        for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
            if (strlen(subs[i].name) == n &&
                strncmp(subs[i].name, p, n) == 0) {
                mask |= subs[i].bit;
                found = true;
            }
        }
        if (!found && n > 0) {
            if (bad != NULL)
                *bad = p;
            return CP_EINVAL;
        }
        p += n;
        if (*p == ',')
            p++;
    }
    *out = mask;
    return 0;
}

static void vlog(enum cp_log_level level, const char *fmt, va_list ap)
{
    char line[4096];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = (int)strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    n += snprintf(line + n, sizeof(line) - (size_t)n, ".%03ldZ %-5s ",
                  ts.tv_nsec / 1000000, level_names[level]);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    if (m < 0)
        m = 0;
    n += m;
    if ((size_t)n >= sizeof(line) - 1)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    /* One write(2) per line keeps lines whole across threads. */
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}

void cp_log(enum cp_log_level level, const char *fmt, ...)
{
    if (level < cp_log_level)
        return;
    va_list ap;
    va_start(ap, fmt);
    vlog(level, fmt, ap);
    va_end(ap);
}

_Noreturn void cp__panic(const char *file, int line, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    cp_log(CP_LOG_ERROR, "panic at %s:%d: %s", file, line, msg);
    void *frames[64];
    int n = backtrace(frames, 64);
    backtrace_symbols_fd(frames, n, STDERR_FILENO);
    abort();
}

static void on_crash(int sig)
{
    static const char head[] = "fatal signal, stack trace:\n";
    ssize_t w = write(STDERR_FILENO, head, sizeof(head) - 1);
    (void)w;
    void *frames[64];
    int n = backtrace(frames, 64);
    backtrace_symbols_fd(frames, n, STDERR_FILENO);
    signal(sig, SIG_DFL);
    raise(sig);
}

void cp_log_install_crash_handler(void)
{
    /* Sanitizers install their own handlers; keep theirs. */
#if !defined(__SANITIZE_ADDRESS__)
    signal(SIGSEGV, on_crash);
    signal(SIGBUS, on_crash);
    signal(SIGFPE, on_crash);
#endif
    (void)on_crash;
}
