/* Allocation that never fails: on OOM the process aborts with the size
 * and the caller's location. Callers never check for NULL.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef CP_ALLOC_H
#define CP_ALLOC_H

#include <stddef.h>

#define cp_malloc(n) cp__malloc((n), __FILE__, __LINE__)
#define cp_calloc(c, n) cp__calloc((c), (n), __FILE__, __LINE__)
#define cp_realloc(p, n) cp__realloc((p), (n), __FILE__, __LINE__)
#define cp_strdup(s) cp__strdup((s), __FILE__, __LINE__)
#define cp_strndup(s, n) cp__strndup((s), (n), __FILE__, __LINE__)

void *cp__malloc(size_t n, const char *file, int line);
void *cp__calloc(size_t count, size_t n, const char *file, int line);
void *cp__realloc(void *p, size_t n, const char *file, int line);
char *cp__strdup(const char *s, const char *file, int line);
char *cp__strndup(const char *s, size_t n, const char *file, int line);
/* Frees p; NULL is fine. */
void cp_free(void *p);

/* Returns a newly allocated string built like printf (caller frees). */
char *cp_asprintf(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

#define CP_UNUSED(x) ((void)(x))
#define CP_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
