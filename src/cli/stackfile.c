/* The stack file reader (see stackfile.h): the reading context and its
 * error list, typed scalar readers with ${VAR} interpolation, variables
 * and their sources, and the top level of a stack file (stack, version,
 * expose, volumes, depends) around the services that
 * stackfile_service.c maps.
 * SPDX-License-Identifier: Apache-2.0 */
#include "stackfile_int.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* One scalar may not grow past this by interpolation, nor all of them
 * together past the second limit. */
#define SF_MAX_SCALAR (1024 * 1024)
#define SF_MAX_INTERPOLATED (64 * 1024 * 1024)
#define SF_MAX_RANDOM 4096

/* ==== Errors and kept strings ==== */

static void add_error(struct sf_ctx *c, const char *file, int line,
                      const char *path, const char *fmt, va_list ap)
{
    struct stackfile *sf = c->sf;
    if (sf->nerrors >= STACKFILE_MAX_ERRORS) {
        sf->ndropped++;
        return;
    }
    char msg[1024];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    sf->errors =
        cp_realloc(sf->errors, (sf->nerrors + 1) * sizeof(*sf->errors));
    struct stackfile_error *e = &sf->errors[sf->nerrors++];
    e->file = cp_strdup(file != NULL ? file : "");
    e->line = line;
    e->path = cp_strdup(path != NULL ? path : "");
    e->msg = cp_strdup(msg);
}

void sf_err(struct sf_ctx *c, const struct sf_node *at, const char *path,
            const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    add_error(c, at != NULL ? at->file : c->main_file,
              at != NULL ? at->line : 0, path, fmt, ap);
    va_end(ap);
}

void sf_err_at(struct sf_ctx *c, const char *file, int line, const char *path,
               const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    add_error(c, file, line, path, fmt, ap);
    va_end(ap);
}

const char *sf_keep(struct sf_ctx *c, char *s)
{
    if (c->npool == c->cappool) {
        c->cappool = c->cappool ? c->cappool * 2 : 64;
        c->pool = cp_realloc(c->pool, c->cappool * sizeof(*c->pool));
    }
    c->pool[c->npool++] = s;
    return s;
}

const char *sf_path(struct sf_ctx *c, const char *base, const char *key)
{
    if (base == NULL || *base == '\0')
        return sf_keep(c, cp_strdup(key));
    return sf_keep(c, cp_asprintf("%s.%s", base, key));
}

const char *sf_path_i(struct sf_ctx *c, const char *base, size_t i)
{
    return sf_keep(c, cp_asprintf("%s[%zu]", base, i + 1));
}

char *stackfile_error_text(const struct stackfile_error *e)
{
    char line[32] = "";
    if (e->line > 0)
        snprintf(line, sizeof(line), ":%d", e->line);
    return cp_asprintf("%s%s: %s%s%s", e->file, line, e->path,
                       *e->path != '\0' ? ": " : "", e->msg);
}

/* ==== Nodes ==== */

const struct sf_node *sf_get(const struct sf_node *m, const char *key)
{
    if (m == NULL || m->kind != SF_MAP)
        return NULL;
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->keys[i]->text, key) == 0)
            return m->items[i];
    return NULL;
}

static bool is_null_word(const char *s)
{
    return *s == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
           strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

bool sf_is_null(const struct sf_node *n)
{
    return n == NULL ||
           (n->kind == SF_SCALAR && n->is_plain && is_null_word(n->text));
}

static const char *kind_name(const struct sf_node *n)
{
    switch (n->kind) {
    case SF_SCALAR:
        return "a value";
    case SF_MAP:
        return "a map";
    case SF_SEQ:
        return "a list";
    }
    return "?";
}

bool sf_check_keys(struct sf_ctx *c, const struct sf_node *m, const char *path,
                   const char *const *allowed)
{
    if (m == NULL || m->kind != SF_MAP) {
        sf_err(c, m, path, "must be a map, not %s",
               m != NULL ? kind_name(m) : "nothing");
        return false;
    }
    for (size_t i = 0; i < m->n; i++) {
        const char *k = m->keys[i]->text;
        bool ok = false;
        for (size_t j = 0; allowed[j] != NULL && !ok; j++)
            ok = strcmp(allowed[j], k) == 0;
        if (!ok)
            sf_err(c, m->keys[i], sf_path(c, path, k), "unknown key");
    }
    return true;
}

/* ==== Interpolation ==== */

static struct sf_var *find_var(struct sf_ctx *c, const char *name)
{
    for (size_t i = 0; i < c->nvars; i++)
        if (strcmp(c->vars[i].name, name) == 0)
            return &c->vars[i];
    return NULL;
}

/* The text of a JSON scalar (kept), "" for null. */
static const char *json_text(struct sf_ctx *c, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_STRING:
        return json_string_value(v);
    case JSON_INTEGER:
        return sf_keep(c,
                       cp_asprintf("%lld", (long long)json_integer_value(v)));
    case JSON_REAL:
        return sf_keep(c, cp_asprintf("%.15g", json_real_value(v)));
    case JSON_TRUE:
        return "true";
    case JSON_FALSE:
        return "false";
    case JSON_NULL:
    case JSON_OBJECT:
    case JSON_ARRAY:
        break;
    }
    return "";
}

/* The replacement for ${name}, or NULL after reporting. */
static const char *lookup(struct sf_ctx *c, const struct sf_node *n,
                          const char *path, const char *name)
{
    if (strcmp(name, "STACK") == 0)
        return c->stack_name != NULL ? c->stack_name : "";
    if (strcmp(name, "GRID") == 0) {
        if (c->o->grid != NULL)
            return c->o->grid;
        sf_err(c, n, path,
               "${GRID} is unknown: no current grid (use kontena grid "
               "use NAME, or set KONTENA_GRID)");
        return NULL;
    }
    struct sf_var *v = find_var(c, name);
    if (v == NULL) {
        sf_err(c, n, path,
               "unknown variable '%s' (define it under variables:, or "
               "write $$ for a literal $)",
               name);
        return NULL;
    }
    return v->value != NULL ? json_text(c, v->value) : "";
}

static bool is_name_start(char ch)
{
    return isalpha((unsigned char)ch) || ch == '_';
}

static bool is_name_char(char ch)
{
    return isalnum((unsigned char)ch) || ch == '_';
}

/* The interpolated text of scalar n (kept, or n->text itself), or NULL
 * after reporting. "$$" is a literal "$". */
static const char *interpolate(struct sf_ctx *c, const struct sf_node *n,
                               const char *path)
{
    const char *s = n->text;
    if (strchr(s, '$') == NULL)
        return s;
    struct cp_buf b;
    cp_buf_init(&b, SF_MAX_SCALAR);
    bool ok = true;
    bool is_reported = false; /* else a failure is a buffer limit */
    const char *p = s;
    while (*p != '\0' && ok) {
        const char *d = strchr(p, '$');
        if (d == NULL) {
            ok = cp_buf_append(&b, p, strlen(p)) == 0;
            break;
        }
        ok = cp_buf_append(&b, p, (size_t)(d - p)) == 0;
        if (!ok)
            break;
        const char *name = NULL;
        size_t nlen = 0;
        if (d[1] == '$') {
            ok = cp_buf_append(&b, "$", 1) == 0;
            p = d + 2;
            continue;
        }
        if (d[1] == '{') {
            const char *end = strchr(d + 2, '}');
            if (end == NULL) {
                sf_err(c, n, path, "'${' without a closing '}'");
                is_reported = true;
                ok = false;
                break;
            }
            name = d + 2;
            nlen = (size_t)(end - name);
            bool is_valid = nlen > 0 && is_name_start(name[0]);
            for (size_t i = 1; i < nlen && is_valid; i++)
                is_valid = is_name_char(name[i]);
            if (!is_valid) {
                sf_err(c, n, path,
                       "invalid variable reference '${%.*s}' (write $$ for "
                       "a literal $)",
                       (int)(nlen > 64 ? 64 : nlen), name);
                is_reported = true;
                ok = false;
                break;
            }
            p = end + 1;
        } else if (is_name_start(d[1])) {
            name = d + 1;
            while (is_name_char(name[nlen]))
                nlen++;
            p = name + nlen;
        } else {
            ok = cp_buf_append(&b, "$", 1) == 0;
            p = d + 1;
            continue;
        }
        char *nm = cp_strndup(name, nlen);
        const char *val = lookup(c, n, path, nm);
        cp_free(nm);
        if (val == NULL) {
            is_reported = true;
            ok = false;
            break;
        }
        ok = cp_buf_append(&b, val, strlen(val)) == 0;
    }
    if (ok && b.len + c->interpolated > SF_MAX_INTERPOLATED)
        ok = false;
    if (!ok) {
        if (!is_reported)
            sf_err(c, n, path, "too long once variables are put in");
        cp_buf_release(&b);
        return NULL;
    }
    c->interpolated += b.len;
    char *out = cp_strdup(b.data != NULL ? b.data : "");
    cp_buf_release(&b);
    return sf_keep(c, out);
}

/* ==== Typed readers ==== */

const char *sf_str(struct sf_ctx *c, const struct sf_node *n, const char *path)
{
    if (n == NULL) {
        sf_err(c, NULL, path, "is required");
        return NULL;
    }
    if (n->kind != SF_SCALAR) {
        sf_err(c, n, path, "must be a string, not %s", kind_name(n));
        return NULL;
    }
    if (sf_is_null(n))
        return "";
    return interpolate(c, n, path);
}

static bool parse_bool_word(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on"};
    static const char *const no[] = {"false", "no", "off"};
    for (size_t i = 0; i < CP_ARRAY_LEN(yes); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

static bool parse_real(const char *s, double *out)
{
    if (*s == '\0' || isspace((unsigned char)*s))
        return false;
    char *end = NULL;
    errno = 0;
    double d = strtod(s, &end);
    if (end == NULL || *end != '\0' || errno != 0 || !isfinite(d))
        return false;
    /* No hex floats, infinities or nan words. */
    for (const char *p = s; *p != '\0'; p++)
        if (strchr("0123456789+-.eE", *p) == NULL)
            return false;
    *out = d;
    return true;
}

int sf_int(struct sf_ctx *c, const struct sf_node *n, const char *path,
           long long min, long long max, long long *out)
{
    if (n != NULL && n->kind != SF_SCALAR) {
        sf_err(c, n, path, "must be a whole number, not %s", kind_name(n));
        return CP_EINVAL;
    }
    const char *s = sf_str(c, n, path);
    if (s == NULL)
        return CP_EINVAL;
    if (cp_parse_int(s, min, max, out) != 0) {
        if (max == LLONG_MAX)
            sf_err(c, n, path, "must be a whole number from %lld, not '%s'",
                   min, s);
        else
            sf_err(c, n, path,
                   "must be a whole number from %lld to %lld, not '%s'", min,
                   max, s);
        return CP_EINVAL;
    }
    return 0;
}

int sf_bool(struct sf_ctx *c, const struct sf_node *n, const char *path,
            bool *out)
{
    if (n != NULL && n->kind != SF_SCALAR) {
        sf_err(c, n, path, "must be true or false, not %s", kind_name(n));
        return CP_EINVAL;
    }
    const char *s = sf_str(c, n, path);
    if (s == NULL)
        return CP_EINVAL;
    if (!parse_bool_word(s, out)) {
        sf_err(c, n, path, "must be true or false, not '%s'", s);
        return CP_EINVAL;
    }
    return 0;
}

int sf_real(struct sf_ctx *c, const struct sf_node *n, const char *path,
            double min, double max, double *out)
{
    if (n != NULL && n->kind != SF_SCALAR) {
        sf_err(c, n, path, "must be a number, not %s", kind_name(n));
        return CP_EINVAL;
    }
    const char *s = sf_str(c, n, path);
    if (s == NULL)
        return CP_EINVAL;
    if (!parse_real(s, out) || *out < min || *out > max) {
        sf_err(c, n, path, "must be a number from %g to %g, not '%s'", min, max,
               s);
        return CP_EINVAL;
    }
    return 0;
}

json_t *sf_scalar_json(struct sf_ctx *c, const struct sf_node *n,
                       const char *path)
{
    if (n != NULL && n->kind != SF_SCALAR) {
        sf_err(c, n, path, "must be a single value, not %s", kind_name(n));
        return NULL;
    }
    if (sf_is_null(n))
        return json_null();
    const char *s = sf_str(c, n, path);
    if (s == NULL)
        return NULL;
    if (!n->is_plain)
        return json_string(s);
    bool b;
    long long i;
    double d;
    if (is_null_word(s))
        return json_null();
    if (parse_bool_word(s, &b))
        return json_boolean(b);
    if (cp_parse_int(s, LLONG_MIN, LLONG_MAX, &i) == 0)
        return json_integer(i);
    if (strpbrk(s, "0123456789") != NULL && parse_real(s, &d))
        return json_real(d);
    return json_string(s);
}

json_t *sf_str_list(struct sf_ctx *c, const struct sf_node *n, const char *path)
{
    if (sf_is_null(n))
        return json_array();
    if (n->kind != SF_SEQ) {
        sf_err(c, n, path, "must be a list, not %s", kind_name(n));
        return NULL;
    }
    json_t *arr = json_array();
    bool ok = true;
    for (size_t i = 0; i < n->n; i++) {
        const char *s = sf_str(c, n->items[i], sf_path_i(c, path, i));
        if (s == NULL)
            ok = false;
        else
            json_array_append_new(arr, json_string(s));
    }
    if (!ok) {
        json_decref(arr);
        return NULL;
    }
    return arr;
}

/* ==== Files ==== */

const char *sf_join(struct sf_ctx *c, const char *dir, const char *path)
{
    if (path[0] == '/' || dir == NULL || strcmp(dir, ".") == 0)
        return sf_keep(c, cp_strdup(path));
    return sf_keep(c, cp_asprintf("%s/%s", dir, path));
}

static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        return cp_strdup(".");
    if (slash == path)
        return cp_strdup("/");
    return cp_strndup(path, (size_t)(slash - path));
}

/* Reads at most max bytes of path; NULL with the reason in err. */
static char *read_bounded(const char *path, size_t max, size_t *len, char *err,
                          size_t errlen)
{
    /* O_NONBLOCK: a FIFO must not hang the open; only regular files are
     * read. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "cannot read %s: %s", path,
                 S_ISDIR(st.st_mode) ? "it is a directory"
                                     : "not a regular file");
        close(fd);
        return NULL;
    }
    if ((size_t)st.st_size > max) {
        snprintf(err, errlen,
                 "%s is %lld bytes: stack files are limited to %zu bytes", path,
                 (long long)st.st_size, max);
        close(fd);
        return NULL;
    }
    char *buf = cp_malloc(max + 2);
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, max + 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
            goto fail;
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n > max) {
            snprintf(err, errlen,
                     "%s is bigger than %zu bytes: stack files are limited "
                     "to that",
                     path, max);
            goto fail;
        }
    }
    close(fd);
    buf[n] = '\0';
    *len = n;
    return buf;
fail:
    close(fd);
    cp_free(buf);
    return NULL;
}

static struct sf_doc *new_doc(struct sf_ctx *c, const char *file, char *text,
                              size_t len)
{
    struct sf_doc *d = cp_calloc(1, sizeof(*d));
    d->file = cp_strdup(file);
    d->dir = dir_of(file);
    d->text = text;
    d->len = len;
    d->next = c->docs;
    c->docs = d;
    return d;
}

struct sf_doc *sf_load_doc(struct sf_ctx *c, const char *dir, const char *path,
                           const struct sf_node *at, const char *key_path)
{
    const char *full = sf_join(c, dir, path);
    for (struct sf_doc *d = c->docs; d != NULL; d = d->next)
        if (strcmp(d->file, full) == 0)
            return d->root != NULL ? d : NULL;
    char why[512];
    size_t len = 0;
    char *text = read_bounded(full, STACKFILE_MAX_SIZE, &len, why, sizeof(why));
    if (text == NULL) {
        if (at != NULL)
            sf_err(c, at, key_path, "%s", why);
        else
            sf_err_at(c, full, 0, "", "%s", why);
        return NULL;
    }
    struct sf_doc *d = new_doc(c, full, text, len);
    if (sf_yaml_parse(c, d) != 0) {
        sf_node_free(d->root);
        d->root = NULL;
        return NULL;
    }
    return d;
}

/* ==== Variables ==== */

static bool is_var_name(const char *s)
{
    if (!is_name_start(*s))
        return false;
    for (s++; *s != '\0'; s++)
        if (!is_name_char(*s))
            return false;
    return true;
}

enum var_type { VT_STRING, VT_INTEGER, VT_BOOLEAN, VT_URI, VT_ENUM };

struct var_def {
    const char *name;
    const char *path;
    const struct sf_node *node;
    enum var_type type;
    bool has_min, has_max;
    long long min, max;
    long long min_len, max_len;
    const struct sf_node *options;
};

static bool is_uri(const char *s)
{
    const char *colon = strstr(s, "://");
    if (colon == NULL || colon == s || colon[3] == '\0' ||
        !isalpha((unsigned char)s[0]))
        return false;
    for (const char *p = s; p < colon; p++)
        if (!isalnum((unsigned char)*p) && strchr("+.-", *p) == NULL)
            return false;
    for (const char *p = colon + 3; *p != '\0'; p++)
        if (isspace((unsigned char)*p))
            return false;
    return true;
}

/* Turns a candidate value v (taken) into the variable's type; NULL after
 * reporting at node at. */
/* hide: the value is a secret (from the vault): errors never show it. */
static json_t *coerce(struct sf_ctx *c, const struct var_def *vd, json_t *v,
                      const struct sf_node *at, const char *what, bool hide)
{
    json_t *out = NULL;
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;
#define SHOWN(text) (hide ? "(hidden: a vault secret)" : (text))
    switch (vd->type) {
    case VT_STRING:
    case VT_URI:
    case VT_ENUM: {
        const char *t = json_text(c, v);
        if (vd->type == VT_URI && !is_uri(t)) {
            sf_err(c, at, vd->path, "%s '%s' is not a uri like https://host/",
                   what, SHOWN(t));
            break;
        }
        if (vd->type == VT_ENUM) {
            bool found = false;
            const struct sf_node *o = vd->options;
            for (size_t i = 0; o != NULL && i < o->n && !found; i++)
                found = o->items[i]->kind == SF_SCALAR &&
                        strcmp(o->items[i]->text, t) == 0;
            if (!found) {
                sf_err(c, at, vd->path, "%s '%s' is not one of the options",
                       what, SHOWN(t));
                break;
            }
        }
        long long len = (long long)strlen(t);
        if ((vd->min_len > 0 && len < vd->min_len) ||
            (vd->max_len > 0 && len > vd->max_len)) {
            sf_err(c, at, vd->path,
                   "%s must be %lld to %lld characters long, not %lld", what,
                   vd->min_len, vd->max_len > 0 ? vd->max_len : LLONG_MAX, len);
            break;
        }
        out = json_string(t);
        break;
    }
    case VT_INTEGER: {
        long long i;
        if (json_is_integer(v)) {
            i = (long long)json_integer_value(v);
        } else if (s == NULL ||
                   cp_parse_int(s, LLONG_MIN, LLONG_MAX, &i) != 0) {
            sf_err(c, at, vd->path, "%s '%s' is not a whole number", what,
                   SHOWN(json_text(c, v)));
            break;
        }
        if ((vd->has_min && i < vd->min) || (vd->has_max && i > vd->max)) {
            if (hide)
                sf_err(c, at, vd->path, "%s is out of range (%lld to %lld)",
                       what, vd->has_min ? vd->min : LLONG_MIN,
                       vd->has_max ? vd->max : LLONG_MAX);
            else
                sf_err(c, at, vd->path,
                       "%s %lld is out of range (%lld to %lld)", what, i,
                       vd->has_min ? vd->min : LLONG_MIN,
                       vd->has_max ? vd->max : LLONG_MAX);
            break;
        }
        out = json_integer(i);
        break;
    }
    case VT_BOOLEAN: {
        bool b;
        if (json_is_boolean(v))
            b = json_is_true(v);
        else if (s == NULL || !parse_bool_word(s, &b)) {
            sf_err(c, at, vd->path, "%s '%s' is not true or false", what,
                   SHOWN(json_text(c, v)));
            break;
        }
        out = json_boolean(b);
        break;
    }
    }
    json_decref(v);
    return out;
}
#undef SHOWN

static char *random_string(size_t n)
{
    static const char alnum[] = "abcdefghijklmnopqrstuvwxyz"
                                "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    char *s = cp_malloc(n + 1);
    size_t i = 0;
    while (i < n) {
        unsigned char bytes[64];
        cp_random_bytes(bytes, sizeof(bytes));
        for (size_t k = 0; k < sizeof(bytes) && i < n; k++)
            if (bytes[k] < 62 * 4) /* no modulo bias */
                s[i++] = alnum[bytes[k] % 62];
    }
    s[n] = '\0';
    return s;
}

/* Tries one from: source; returns the candidate (new reference), NULL
 * when the source has no value, and sets *is_err after reporting. */
static json_t *from_source(struct sf_ctx *c, const struct var_def *vd,
                           const char *src, const struct sf_node *arg,
                           bool *is_secret, bool *is_err)
{
    const char *path = sf_path(c, sf_path(c, vd->path, "from"), src);
    const struct stackfile_opts *o = c->o;
    if (strcmp(src, "env") == 0) {
        const char *name =
            arg != NULL && !sf_is_null(arg) ? sf_str(c, arg, path) : vd->name;
        if (name == NULL) {
            *is_err = true;
            return NULL;
        }
        const char *v =
            o->getenv_fn != NULL ? o->getenv_fn(o->ud, name) : getenv(name);
        return v != NULL ? json_string(v) : NULL;
    }
    if (strcmp(src, "vault") == 0) {
        const char *name =
            arg != NULL && !sf_is_null(arg) ? sf_str(c, arg, path) : vd->name;
        if (name == NULL) {
            *is_err = true;
            return NULL;
        }
        if (o->vault_fn == NULL) {
            sf_err(c, arg, path,
                   "variable %s is read from vault secret %s, but there is "
                   "no master to ask",
                   vd->name, name);
            *is_err = true;
            return NULL;
        }
        char *value = NULL;
        char why[256] = "";
        int rc = o->vault_fn(o->ud, name, &value, why, sizeof(why));
        if (rc == CP_ENOTFOUND)
            return NULL;
        if (rc != 0) {
            sf_err(c, arg, path, "cannot read vault secret %s: %s", name,
                   *why != '\0' ? why : "failed");
            *is_err = true;
            return NULL;
        }
        json_t *j = json_string(value != NULL ? value : "");
        cp_free(value);
        *is_secret = true;
        return j;
    }
    if (strcmp(src, "random_string") == 0) {
        long long n;
        if (sf_int(c, arg, path, 1, SF_MAX_RANDOM, &n) != 0) {
            *is_err = true;
            return NULL;
        }
        char *s = random_string((size_t)n);
        json_t *j = json_string(s);
        cp_free(s);
        return j;
    }
    if (strcmp(src, "prompt") == 0) {
        const char *text = NULL;
        bool is_flag = false;
        if (arg != NULL && arg->kind == SF_SCALAR && arg->is_plain &&
            parse_bool_word(arg->text, &is_flag)) {
            if (!is_flag)
                return NULL;
        } else if (!sf_is_null(arg)) {
            text = sf_str(c, arg, path);
            if (text == NULL) {
                *is_err = true;
                return NULL;
            }
        }
        if (text == NULL || *text == '\0')
            text = vd->name;
        char *value = NULL;
        if (o->prompt_fn == NULL || o->prompt_fn(o->ud, text, &value) != 0) {
            sf_err(c, arg, path,
                   "variable %s needs an answer to '%s' but stdin is not a "
                   "terminal: give it with -v %s=VALUE or --values-from FILE",
                   vd->name, text, vd->name);
            *is_err = true;
            return NULL;
        }
        json_t *j = json_string(value);
        cp_free(value);
        return j;
    }
    sf_err(c, arg, path,
           "unknown source '%s' (env, vault, random_string or prompt)", src);
    *is_err = true;
    return NULL;
}

static const char *const var_keys[] = {
    "type",    "default", "value", "required",   "description",
    "label",   "min",     "max",   "min_length", "max_length",
    "options", "from",    NULL};

/* Reads the definition of one variable into vd; false after reporting. */
static bool var_def_read(struct sf_ctx *c, struct var_def *vd)
{
    static const char *const types[] = {"string", "integer", "boolean", "uri",
                                        "enum"};
    const struct sf_node *n = vd->node;
    if (!sf_check_keys(c, n, vd->path, var_keys))
        return false;
    size_t before = c->sf->nerrors;
    const struct sf_node *t = sf_get(n, "type");
    vd->type = VT_STRING;
    if (t != NULL) {
        const char *ts = sf_str(c, t, sf_path(c, vd->path, "type"));
        bool found = false;
        for (size_t i = 0; ts != NULL && i < CP_ARRAY_LEN(types); i++) {
            if (strcmp(ts, types[i]) == 0) {
                vd->type = (enum var_type)i;
                found = true;
            }
        }
        if (ts != NULL && !found)
            sf_err(c, t, sf_path(c, vd->path, "type"),
                   "must be string, integer, boolean, uri or enum, not '%s'",
                   ts);
    }
    if (sf_get(n, "min") != NULL)
        vd->has_min = sf_int(c, sf_get(n, "min"), sf_path(c, vd->path, "min"),
                             LLONG_MIN, LLONG_MAX, &vd->min) == 0;
    if (sf_get(n, "max") != NULL)
        vd->has_max = sf_int(c, sf_get(n, "max"), sf_path(c, vd->path, "max"),
                             LLONG_MIN, LLONG_MAX, &vd->max) == 0;
    if (sf_get(n, "min_length") != NULL)
        sf_int(c, sf_get(n, "min_length"), sf_path(c, vd->path, "min_length"),
               0, SF_MAX_SCALAR, &vd->min_len);
    if (sf_get(n, "max_length") != NULL)
        sf_int(c, sf_get(n, "max_length"), sf_path(c, vd->path, "max_length"),
               1, SF_MAX_SCALAR, &vd->max_len);
    vd->options = sf_get(n, "options");
    if (vd->type == VT_ENUM &&
        (vd->options == NULL || vd->options->kind != SF_SEQ ||
         vd->options->n == 0))
        sf_err(c, vd->options != NULL ? vd->options : n,
               sf_path(c, vd->path, "options"),
               "an enum needs a list of options");
    else if (vd->type != VT_ENUM && vd->options != NULL)
        sf_err(c, vd->options, sf_path(c, vd->path, "options"),
               "only an enum has options");
    bool options_ok = vd->options != NULL && vd->options->kind == SF_SEQ;
    for (size_t i = 0; vd->type == VT_ENUM && options_ok && i < vd->options->n;
         i++)
        if (vd->options->items[i]->kind != SF_SCALAR)
            sf_err(c, vd->options->items[i],
                   sf_path_i(c, sf_path(c, vd->path, "options"), i),
                   "must be a single value");
    const struct sf_node *from = sf_get(n, "from");
    if (from != NULL && from->kind == SF_SEQ)
        sf_err(c, from, sf_path(c, vd->path, "from"),
               "must be a map of sources (env: NAME, vault: NAME, "
               "random_string: N, prompt: TEXT) or one source name");
    return c->sf->nerrors == before;
}

/* Resolves one variable: an override, value:, the from: sources in
 * order, default:, else an error unless required: false. */
static void resolve_var(struct sf_ctx *c, const char *name,
                        const struct sf_node *key, const struct sf_node *n,
                        const char *path)
{
    struct var_def vd = {0};
    vd.name = name;
    vd.path = path;
    vd.node = n;
    c->vars = cp_realloc(c->vars, (c->nvars + 1) * sizeof(*c->vars));
    struct sf_var *var = &c->vars[c->nvars];
    memset(var, 0, sizeof(*var));
    var->name = cp_strdup(name);
    if (!var_def_read(c, &vd)) {
        c->nvars++;
        return;
    }
    json_t *v = NULL;
    bool is_err = false;
    const json_t *ov =
        c->o->values != NULL ? json_object_get(c->o->values, name) : NULL;
    if (ov != NULL && !json_is_null(ov)) {
        v = coerce(c, &vd, json_deep_copy(ov), key, "the given value", false);
        is_err = v == NULL;
    }
    const struct sf_node *val = sf_get(n, "value");
    if (v == NULL && !is_err && !sf_is_null(val)) {
        json_t *j = sf_scalar_json(c, val, sf_path(c, path, "value"));
        is_err = j == NULL;
        if (j != NULL) {
            v = coerce(c, &vd, j, val, "value", false);
            is_err = v == NULL;
        }
    }
    const struct sf_node *from = sf_get(n, "from");
    if (v == NULL && !is_err && from != NULL && from->kind == SF_SCALAR &&
        !sf_is_null(from)) {
        const char *src = sf_str(c, from, sf_path(c, path, "from"));
        json_t *j = src != NULL ? from_source(c, &vd, src, NULL,
                                              &var->is_secret, &is_err)
                                : NULL;
        is_err = is_err || src == NULL;
        if (j != NULL) {
            v = coerce(c, &vd, j, from, "the value from the source",
                       var->is_secret);
            is_err = v == NULL;
        }
    }
    for (size_t i = 0; v == NULL && !is_err && from != NULL &&
                       from->kind == SF_MAP && i < from->n;
         i++) {
        json_t *j = from_source(c, &vd, from->keys[i]->text, from->items[i],
                                &var->is_secret, &is_err);
        if (j != NULL) {
            v = coerce(c, &vd, j, from->items[i],
                       "the value from the source", var->is_secret);
            is_err = v == NULL;
        }
    }
    const struct sf_node *dflt = sf_get(n, "default");
    if (v == NULL && !is_err && !sf_is_null(dflt)) {
        json_t *j = sf_scalar_json(c, dflt, sf_path(c, path, "default"));
        is_err = j == NULL;
        if (j != NULL) {
            var->is_secret = false;
            v = coerce(c, &vd, j, dflt, "default", false);
            is_err = v == NULL;
        }
    }
    bool is_required = true;
    const struct sf_node *req = sf_get(n, "required");
    if (req != NULL &&
        sf_bool(c, req, sf_path(c, path, "required"), &is_required) != 0)
        is_err = true;
    if (v == NULL && !is_err && is_required)
        sf_err(c, key, path,
               "variable %s has no value: give it with -v %s=VALUE or "
               "--values-from FILE, or set a default",
               name, name);
    var->value = v;
    c->nvars++;
}

static void read_variables(struct sf_ctx *c, const struct sf_node *vars)
{
    if (sf_is_null(vars))
        return;
    if (vars->kind != SF_MAP) {
        sf_err(c, vars, "variables", "must be a map of variables");
        return;
    }
    for (size_t i = 0; i < vars->n; i++) {
        const char *name = vars->keys[i]->text;
        const char *path = sf_path(c, "variables", name);
        if (!is_var_name(name) || strcmp(name, "STACK") == 0 ||
            strcmp(name, "GRID") == 0) {
            sf_err(c, vars->keys[i], path,
                   "a variable name is letters, digits and '_' (STACK and "
                   "GRID are taken)");
            continue;
        }
        resolve_var(c, name, vars->keys[i], vars->items[i], path);
    }
}

/* ==== The top level ==== */

static bool is_stack_name(const char *s, size_t len)
{
    if (len == 0 || len > 64 || s[0] == '-')
        return false;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-')
            return false;
    return true;
}

/* "user/name[:version]" or "name[:version]": *name and *version (kept;
 * version NULL when not given). False after reporting. */
static bool parse_stack(struct sf_ctx *c, const struct sf_node *n,
                        const char *s, const char **full, const char **name,
                        const char **version)
{
    const char *colon = strchr(s, ':');
    size_t flen = colon != NULL ? (size_t)(colon - s) : strlen(s);
    const char *slash = memchr(s, '/', flen);
    const char *nm = slash != NULL ? slash + 1 : s;
    size_t nlen = flen - (size_t)(nm - s);
    bool ok = is_stack_name(nm, nlen) &&
              (slash == NULL || is_stack_name(s, (size_t)(slash - s))) &&
              (colon == NULL || colon[1] != '\0');
    if (!ok) {
        sf_err(c, n, "stack",
               "must be \"user/name\" or \"name\" (letters, digits, '_' "
               "and '-', optionally \":version\"), not '%s'",
               s);
        return false;
    }
    *full = sf_keep(c, cp_strndup(s, flen));
    *name = sf_keep(c, cp_strndup(nm, nlen));
    *version = colon != NULL ? colon + 1 : NULL;
    return true;
}

static json_t *read_volumes(struct sf_ctx *c, const struct sf_node *vols)
{
    static const char *const keys[] = {"external", NULL};
    json_t *out = json_array();
    if (sf_is_null(vols))
        return out;
    if (vols->kind != SF_MAP) {
        sf_err(c, vols, "volumes", "must be a map of volumes");
        return out;
    }
    for (size_t i = 0; i < vols->n; i++) {
        const char *name = vols->keys[i]->text;
        const char *path = sf_path(c, "volumes", name);
        const struct sf_node *v = vols->items[i];
        const struct sf_node *ext = sf_get(v, "external");
        if (!is_stack_name(name, strlen(name)))
            sf_err(c, vols->keys[i], path,
                   "a volume name is letters, digits, '_' and '-'");
        if (sf_is_null(v) || v->kind != SF_MAP || ext == NULL) {
            sf_err(c, v != NULL ? v : vols->keys[i], path,
                   "only external volumes are supported: add \"external: "
                   "true\" (create the volume with kontena volume create)");
            continue;
        }
        if (!sf_check_keys(c, v, path, keys))
            continue;
        const char *ext_path = sf_path(c, path, "external");
        const char *ext_name = name;
        bool is_ext = true;
        if (ext->kind == SF_MAP) {
            static const char *const ekeys[] = {"name", NULL};
            if (!sf_check_keys(c, ext, ext_path, ekeys))
                continue;
            ext_name =
                sf_str(c, sf_get(ext, "name"), sf_path(c, ext_path, "name"));
            if (ext_name == NULL)
                continue;
        } else if (sf_bool(c, ext, ext_path, &is_ext) != 0) {
            continue;
        } else if (!is_ext) {
            sf_err(c, ext, ext_path,
                   "only external volumes are supported (create the volume "
                   "with kontena volume create)");
            continue;
        }
        json_array_append_new(
            out, json_pack("{s:s, s:s}", "name", name, "external", ext_name));
    }
    return out;
}

static json_t *read_depends(struct sf_ctx *c, const struct sf_doc *d,
                            const struct sf_node *deps)
{
    static const char *const keys[] = {"stack", "variables", NULL};
    json_t *out = json_array();
    if (sf_is_null(deps))
        return out;
    if (deps->kind != SF_MAP) {
        sf_err(c, deps, "depends", "must be a map of child stacks");
        return out;
    }
    for (size_t i = 0; i < deps->n; i++) {
        const char *name = deps->keys[i]->text;
        const char *path = sf_path(c, "depends", name);
        const struct sf_node *v = deps->items[i];
        if (!is_stack_name(name, strlen(name))) {
            sf_err(c, deps->keys[i], path,
                   "a child name is letters, digits, '_' and '-'");
            continue;
        }
        if (!sf_check_keys(c, v, path, keys))
            continue;
        const struct sf_node *st = sf_get(v, "stack");
        const char *file =
            st != NULL ? sf_str(c, st, sf_path(c, path, "stack")) : NULL;
        if (st == NULL)
            sf_err(c, deps->keys[i], sf_path(c, path, "stack"),
                   "is required: the child's stack file");
        if (file == NULL)
            continue;
        const char *full = sf_join(c, d->dir, file);
        struct stat sb;
        int src = stat(full, &sb);
        if (src != 0 || !S_ISREG(sb.st_mode)) {
            sf_err(c, st, sf_path(c, path, "stack"),
                   "cannot read %s: %s (stack registry references are not "
                   "supported: give a file)",
                   full, src != 0 ? strerror(errno) : "not a regular file");
            continue;
        }
        json_t *vars = json_object();
        const struct sf_node *vn = sf_get(v, "variables");
        const char *vpath = sf_path(c, path, "variables");
        if (!sf_is_null(vn) && vn->kind != SF_MAP)
            sf_err(c, vn, vpath, "must be a map of values");
        for (size_t k = 0; vn != NULL && vn->kind == SF_MAP && k < vn->n; k++) {
            json_t *j = sf_scalar_json(c, vn->items[k],
                                       sf_path(c, vpath, vn->keys[k]->text));
            if (j != NULL)
                json_object_set_new(vars, vn->keys[k]->text, j);
        }
        char *child = cp_asprintf("%s-%s", c->stack_name, name);
        if (!is_stack_name(child, strlen(child)))
            sf_err(c, deps->keys[i], path,
                   "the child stack name %s is too long", child);
        json_array_append_new(out, json_pack("{s:s, s:s, s:o}", "name", child,
                                             "file", full, "variables", vars));
        cp_free(child);
    }
    return out;
}

static const char *const top_keys[] = {"stack",   "version",   "description",
                                       "expose",  "variables", "services",
                                       "volumes", "depends",   NULL};

static void check_top_keys(struct sf_ctx *c, const struct sf_node *root)
{
    for (size_t i = 0; i < root->n; i++) {
        const char *k = root->keys[i]->text;
        bool ok = strncmp(k, "x-", 2) == 0;
        for (size_t j = 0; top_keys[j] != NULL && !ok; j++)
            ok = strcmp(top_keys[j], k) == 0;
        if (!ok)
            sf_err(c, root->keys[i], k,
                   "unknown key (top-level keys: stack, version, "
                   "description, expose, variables, services, volumes, "
                   "depends, and x-* for anchors)");
    }
}

static void build(struct sf_ctx *c, struct sf_doc *d)
{
    const struct sf_node *root = d->root;
    if (root->kind != SF_MAP) {
        sf_err(c, root, "",
               "a stack file must be a map with stack: and "
               "services:");
        return;
    }
    check_top_keys(c, root);
    const struct sf_node *stack = sf_get(root, "stack");
    const char *full = NULL, *name = NULL, *tag = NULL;
    if (stack == NULL) {
        sf_err_at(c, d->file, 1, "stack",
                  "is required: the stack's name as \"user/name\" or "
                  "\"name\"");
    } else {
        const char *s = sf_str(c, stack, "stack");
        if (s != NULL)
            parse_stack(c, stack, s, &full, &name, &tag);
    }
    if (c->o->name != NULL) {
        name = c->o->name;
        if (!is_stack_name(name, strlen(name)))
            sf_err_at(c, d->file, 0, "name",
                      "the stack name '%s' must be letters, digits, '_' and "
                      "'-' (at most 64)",
                      name);
    }
    c->stack_name = name != NULL ? name : "";
    read_variables(c, sf_get(root, "variables"));

    const char *version = tag != NULL ? tag : "1";
    const struct sf_node *vn = sf_get(root, "version");
    if (!sf_is_null(vn)) {
        const char *v = sf_str(c, vn, "version");
        if (v != NULL)
            version = v;
    }
    const char *desc = NULL;
    const struct sf_node *dn = sf_get(root, "description");
    if (!sf_is_null(dn))
        desc = sf_str(c, dn, "description");
    const char *expose = NULL;
    const struct sf_node *en = sf_get(root, "expose");
    if (!sf_is_null(en))
        expose = sf_str(c, en, "expose");

    c->volumes = sf_get(root, "volumes");
    json_t *volumes = read_volumes(c, c->volumes);
    const struct sf_node *sn = sf_get(root, "services");
    json_t *services;
    if (sf_is_null(sn)) {
        sf_err(c, sn != NULL ? sn : NULL, "services",
               "a stack needs at least one service");
        services = json_array();
    } else if (sn->kind != SF_MAP) {
        sf_err(c, sn, "services", "must be a map of services");
        services = json_array();
    } else {
        services = sf_services(c, d, sn);
    }
    if (expose != NULL && *expose != '\0') {
        bool found = false;
        size_t i;
        json_t *s;
        json_array_foreach(services, i, s)
        {
            const char *sname = json_string_value(json_object_get(s, "name"));
            found = found || (sname != NULL && strcmp(sname, expose) == 0);
        }
        if (!found && sf_get(sn, expose) == NULL)
            sf_err(c, en, "expose", "'%s' is not a service of this stack",
                   expose);
    }
    c->sf->depends = read_depends(c, d, sf_get(root, "depends"));

    json_t *vars = json_object();
    for (size_t i = 0; i < c->nvars; i++)
        if (c->vars[i].value != NULL && !c->vars[i].is_secret)
            json_object_set(vars, c->vars[i].name, c->vars[i].value);
    json_t *meta = json_object();
    if (desc != NULL)
        json_object_set_new(meta, "description", json_string(desc));
    json_t *body = json_object();
    json_object_set_new(body, "name", json_string(c->stack_name));
    json_object_set_new(body, "stack",
                        full != NULL ? json_string(full) : json_null());
    json_object_set_new(body, "version", json_string(version));
    json_object_set_new(body, "registry", json_string("file://"));
    json_object_set_new(body, "source", json_stringn_nocheck(d->text, d->len));
    json_object_set_new(body, "variables", vars);
    json_object_set_new(body, "expose",
                        expose != NULL && *expose != '\0' ? json_string(expose)
                                                          : json_null());
    json_object_set_new(body, "labels", json_array());
    json_object_set_new(body, "metadata", meta);
    json_object_set_new(body, "parent",
                        c->o->parent != NULL
                            ? json_pack("{s:s}", "name", c->o->parent)
                            : json_null());
    json_object_set_new(body, "services", services);
    json_object_set_new(body, "volumes", volumes);
    c->sf->body = body;
}

int stackfile_load(struct stackfile *sf, const char *path,
                   const struct stackfile_opts *o)
{
    memset(sf, 0, sizeof(*sf));
    struct sf_ctx c = {0};
    c.o = o;
    c.sf = sf;
    c.main_file = path;
    struct sf_doc *d = NULL;
    if (o->text != NULL) {
        if (o->text_len > STACKFILE_MAX_SIZE) {
            sf_err_at(&c, path, 0, "",
                      "the stack file is %zu bytes: stack files are "
                      "limited to %d bytes",
                      o->text_len, STACKFILE_MAX_SIZE);
        } else {
            d = new_doc(&c, path, cp_strndup(o->text, o->text_len),
                        o->text_len);
            if (strlen(d->text) != d->len)
                sf_err_at(&c, path, 0, "", "the stack file holds NUL bytes");
            else if (sf_yaml_parse(&c, d) != 0) {
                sf_node_free(d->root);
                d->root = NULL;
            }
        }
    } else {
        d = sf_load_doc(&c, NULL, path, NULL, "");
    }
    if (d != NULL && d->root != NULL)
        build(&c, d);
    if (sf->depends == NULL)
        sf->depends = json_array();
    int rc = 0;
    if (sf->nerrors + sf->ndropped > 0) {
        json_decref(sf->body);
        sf->body = NULL;
        rc = CP_EINVAL;
    }
    while (c.docs != NULL) {
        struct sf_doc *next = c.docs->next;
        sf_node_free(c.docs->root);
        cp_free(c.docs->file);
        cp_free(c.docs->dir);
        cp_free(c.docs->text);
        cp_free(c.docs);
        c.docs = next;
    }
    for (size_t i = 0; i < c.npool; i++)
        cp_free(c.pool[i]);
    cp_free(c.pool);
    for (size_t i = 0; i < c.nvars; i++) {
        cp_free(c.vars[i].name);
        json_decref(c.vars[i].value);
    }
    cp_free(c.vars);
    return rc;
}

void stackfile_release(struct stackfile *sf)
{
    for (size_t i = 0; i < sf->nerrors; i++) {
        cp_free(sf->errors[i].file);
        cp_free(sf->errors[i].path);
        cp_free(sf->errors[i].msg);
    }
    cp_free(sf->errors);
    json_decref(sf->body);
    json_decref(sf->depends);
    memset(sf, 0, sizeof(*sf));
}

/* ==== Helpers for the commands ==== */

json_t *stackfile_shell_split(const char *s, char *err, size_t errlen)
{
    json_t *arr = json_array();
    struct cp_buf w;
    cp_buf_init(&w, SF_MAX_SCALAR + 1);
    bool in_word = false;
    const char *p = s;
    while (*p != '\0') {
        char ch = *p;
        if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r') {
            if (in_word) {
                json_array_append_new(arr, json_string(w.data));
                w.len = 0;
                w.data[0] = '\0';
                in_word = false;
            }
            p++;
            continue;
        }
        in_word = true;
        if (ch == '\'') {
            const char *end = strchr(p + 1, '\'');
            if (end == NULL)
                goto unclosed;
            cp_buf_append(&w, p + 1, (size_t)(end - p - 1));
            p = end + 1;
        } else if (ch == '"') {
            p++;
            while (*p != '"') {
                if (*p == '\0')
                    goto unclosed;
                if (*p == '\\' && p[1] != '\0' && strchr("\"\\$`", p[1])) {
                    p++;
                } else if (*p == '\\' && p[1] == '\n') {
                    p += 2;
                    continue;
                }
                cp_buf_append(&w, p, 1);
                p++;
            }
            p++;
        } else if (ch == '\\') {
            if (p[1] == '\0') {
                p++;
                continue;
            }
            if (p[1] != '\n')
                cp_buf_append(&w, p + 1, 1);
            p += 2;
        } else {
            cp_buf_append(&w, p, 1);
            p++;
        }
        /* An empty quoted word ("") still makes a word. */
        if (w.data == NULL)
            cp_buf_append(&w, "", 0);
    }
    if (in_word)
        json_array_append_new(arr, json_string(w.data != NULL ? w.data : ""));
    cp_buf_release(&w);
    return arr;
unclosed:
    snprintf(err, errlen, "a quote is not closed");
    cp_buf_release(&w);
    json_decref(arr);
    return NULL;
}

int stackfile_value_arg(json_t *obj, const char *kv, char *err, size_t errlen)
{
    const char *eq = strchr(kv, '=');
    char *name = eq != NULL ? cp_strndup(kv, (size_t)(eq - kv)) : NULL;
    if (name == NULL || !is_var_name(name)) {
        snprintf(err, errlen, "invalid value '%s': use NAME=VALUE", kv);
        cp_free(name);
        return CP_EINVAL;
    }
    json_object_set_new(obj, name, json_string(eq + 1));
    cp_free(name);
    return 0;
}

int stackfile_values_file(json_t *obj, const char *path, char *err,
                          size_t errlen)
{
    struct stackfile sf;
    memset(&sf, 0, sizeof(sf));
    struct stackfile_opts o = {0};
    struct sf_ctx c = {0};
    c.o = &o;
    c.sf = &sf;
    c.main_file = path;
    int rc = CP_EINVAL;
    struct sf_doc *d = sf_load_doc(&c, NULL, path, NULL, "");
    if (d != NULL && d->root != NULL) {
        const struct sf_node *r = d->root;
        if (r->kind != SF_MAP) {
            sf_err(&c, r, "", "must be a map of variable values");
        } else {
            for (size_t i = 0; i < r->n; i++) {
                /* Literal text: values are not interpolated. */
                const struct sf_node *v = r->items[i];
                if (v->kind != SF_SCALAR) {
                    sf_err(&c, v, r->keys[i]->text, "must be a single value");
                    continue;
                }
                if (sf_is_null(v))
                    continue;
                json_object_set_new(obj, r->keys[i]->text,
                                    json_string(v->text));
            }
        }
    }
    if (sf.nerrors == 0 && sf.ndropped == 0) {
        rc = 0;
    } else if (sf.nerrors > 0) {
        char *t = stackfile_error_text(&sf.errors[0]);
        snprintf(err, errlen, "%s", t);
        cp_free(t);
    }
    while (c.docs != NULL) {
        struct sf_doc *next = c.docs->next;
        sf_node_free(c.docs->root);
        cp_free(c.docs->file);
        cp_free(c.docs->dir);
        cp_free(c.docs->text);
        cp_free(c.docs);
        c.docs = next;
    }
    for (size_t i = 0; i < c.npool; i++)
        cp_free(c.pool[i]);
    cp_free(c.pool);
    stackfile_release(&sf);
    return rc;
}
