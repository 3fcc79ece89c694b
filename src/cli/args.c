/* Option parsing over static per-command tables (see args.h). Never
 * crashes on any argv: every problem becomes a sentence in a->err.
 * SPDX-License-Identifier: Apache-2.0 */
#include "args.h"
#include "../common/alloc.h"
#include "../common/err.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static size_t count_opts(const struct args_opt *opts)
{
    size_t n = 0;
    while (opts != NULL && opts[n].name != NULL)
        n++;
    return n;
}

static int find_long(const struct args *a, const char *name, size_t len)
{
    for (size_t i = 0; i < a->nopts; i++) {
        if (strlen(a->opts[i].name) == len &&
            strncmp(a->opts[i].name, name, len) == 0)
            return (int)i;
    }
    return -1;
}

static int find_short(const struct args *a, char c)
{
    for (size_t i = 0; i < a->nopts; i++) {
        if (a->opts[i].short_name == c)
            return (int)i;
    }
    return -1;
}

static int failf(struct args *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int failf(struct args *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a->err, sizeof(a->err), fmt, ap);
    va_end(ap);
    return CP_EINVAL;
}

static void add_value(struct args_val *v, const char *s)
{
    v->values = cp_realloc(v->values, (v->nvalues + 1) * sizeof(*v->values));
    v->values[v->nvalues++] = s;
    v->is_set = true;
}

int args_parse(struct args *a, const struct args_opt *opts, int argc,
               char **argv)
{
    memset(a, 0, sizeof(*a));
    a->opts = opts;
    a->nopts = count_opts(opts);
    a->vals = cp_calloc(a->nopts + 1, sizeof(*a->vals));
    a->pos = cp_calloc((size_t)(argc > 0 ? argc : 0) + 1, sizeof(*a->pos));
    bool only_pos = false;

    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        if (s == NULL)
            break;
        if (only_pos || s[0] != '-' || s[1] == '\0') {
            a->pos[a->npos++] = s;
            continue;
        }
        if (strcmp(s, "--") == 0) {
            only_pos = true;
            continue;
        }
        if (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0) {
            a->is_help = true;
            continue;
        }
        int idx;
        const char *inline_val = NULL;
        const char *shown = s;
        if (s[1] == '-') {
            const char *name = s + 2;
            const char *eq = strchr(name, '=');
            size_t len = eq != NULL ? (size_t)(eq - name) : strlen(name);
            idx = find_long(a, name, len);
            if (eq != NULL)
                inline_val = eq + 1;
            if (idx < 0)
                return failf(a, "unknown option --%.*s", (int)len, name);
        } else {
            idx = find_short(a, s[1]);
            if (idx < 0)
                return failf(a, "unknown option %.2s", s);
            if (s[2] != '\0')
                inline_val = s + 2;
        }
        const struct args_opt *o = &a->opts[idx];
        struct args_val *v = &a->vals[idx];
        if (o->kind == ARGS_FLAG) {
            if (inline_val != NULL)
                return failf(a, "option --%s takes no value", o->name);
            v->is_set = true;
            continue;
        }
        if (inline_val == NULL) {
            if (i + 1 >= argc || argv[i + 1] == NULL)
                return failf(a, "option %s needs a value", shown);
            inline_val = argv[++i];
        }
        if (o->kind == ARGS_VALUE)
            v->nvalues = 0;
        add_value(v, inline_val);
    }
    return 0;
}

void args_release(struct args *a)
{
    for (size_t i = 0; a->vals != NULL && i < a->nopts; i++)
        cp_free(a->vals[i].values);
    cp_free(a->vals);
    cp_free(a->pos);
    a->vals = NULL;
    a->pos = NULL;
    a->npos = 0;
}

static const struct args_val *lookup(const struct args *a, const char *name)
{
    int idx = find_long(a, name, strlen(name));
    assert(idx >= 0 && "option not in the command's table");
    if (idx < 0)
        return NULL;
    return &a->vals[idx];
}

bool args_has(const struct args *a, const char *name)
{
    const struct args_val *v = lookup(a, name);
    return v != NULL && v->is_set;
}

const char *args_get(const struct args *a, const char *name)
{
    const struct args_val *v = lookup(a, name);
    if (v == NULL || v->nvalues == 0)
        return NULL;
    return v->values[v->nvalues - 1];
}

size_t args_count(const struct args *a, const char *name)
{
    const struct args_val *v = lookup(a, name);
    return v != NULL ? v->nvalues : 0;
}

const char *args_at(const struct args *a, const char *name, size_t i)
{
    const struct args_val *v = lookup(a, name);
    if (v == NULL || i >= v->nvalues)
        return NULL;
    return v->values[i];
}
