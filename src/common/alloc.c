/* The one place that calls the C allocator. Everything else goes through
 * the cp_* wrappers, which abort on OOM (see alloc.h).
 * SPDX-License-Identifier: Apache-2.0 */
#include "alloc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Noreturn void oom(size_t n, const char *file, int line)
{
    fprintf(stderr, "fatal: out of memory allocating %zu bytes at %s:%d\n",
            n, file, line);
    abort();
}

void *cp__malloc(size_t n, const char *file, int line)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        oom(n, file, line);
    return p;
}

void *cp__calloc(size_t count, size_t n, const char *file, int line)
{
    void *p = calloc(count ? count : 1, n ? n : 1);
    if (p == NULL)
        oom(count * n, file, line);
    return p;
}

void *cp__realloc(void *p, size_t n, const char *file, int line)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL)
        oom(n, file, line);
    return q;
}

char *cp__strdup(const char *s, const char *file, int line)
{
    size_t n = strlen(s);
    char *p = cp__malloc(n + 1, file, line);
    memcpy(p, s, n + 1);
    return p;
}

char *cp__strndup(const char *s, size_t n, const char *file, int line)
{
    char *p = cp__malloc(n + 1, file, line);
    if (n > 0)
        memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void cp_free(void *p)
{
    free(p);
}

char *cp_asprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    char *p = cp_malloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}
