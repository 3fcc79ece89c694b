/* YAML for the stack file reader: libyaml's document loader turned into
 * our node tree (lines kept, aliases expanded within limits, "<<" merge
 * keys applied, duplicate keys refused), and JSON rendered back as YAML
 * with libyaml's emitter for "kontena stack validate".
 * SPDX-License-Identifier: Apache-2.0 */
#include "stackfile_int.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/util.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* ==== The tree ==== */

void sf_node_free(struct sf_node *n)
{
    if (n == NULL)
        return;
    for (size_t i = 0; i < n->n; i++) {
        sf_node_free(n->items[i]);
        if (n->keys != NULL)
            sf_node_free(n->keys[i]);
    }
    cp_free(n->items);
    cp_free(n->keys);
    cp_free(n->text);
    cp_free(n);
}

/* ==== A set of strings (duplicate keys in big maps) ==== */

struct strset {
    const char **slot;
    size_t cap; /* a power of two, at least twice len */
    size_t len;
};

static void strset_init(struct strset *s, size_t n)
{
    s->cap = 16;
    s->len = 0;
    while (s->cap < n * 2)
        s->cap *= 2;
    s->slot = cp_calloc(s->cap, sizeof(*s->slot));
}

static void strset_release(struct strset *s)
{
    cp_free(s->slot);
    s->slot = NULL;
}

static size_t strset_hash(const char *k)
{
    uint64_t h = 1469598103934665603ULL;
    for (const unsigned char *p = (const unsigned char *)k; *p != '\0'; p++)
        h = (h ^ *p) * 1099511628211ULL;
    return (size_t)h;
}

/* Doubles the table (merge keys add more keys than the map had pairs). */
static void strset_grow(struct strset *s)
{
    struct strset big = {cp_calloc(s->cap * 2, sizeof(*s->slot)),
                         s->cap * 2, s->len};
    for (size_t j = 0; j < s->cap; j++) {
        if (s->slot[j] == NULL)
            continue;
        size_t i = strset_hash(s->slot[j]) & (big.cap - 1);
        while (big.slot[i] != NULL)
            i = (i + 1) & (big.cap - 1);
        big.slot[i] = s->slot[j];
    }
    cp_free(s->slot);
    *s = big;
}

/* Adds k (borrowed); false when it was already there. */
static bool strset_add(struct strset *s, const char *k)
{
    size_t i = strset_hash(k) & (s->cap - 1);
    while (s->slot[i] != NULL) {
        if (strcmp(s->slot[i], k) == 0)
            return false;
        i = (i + 1) & (s->cap - 1);
    }
    s->slot[i] = k;
    if (++s->len * 2 > s->cap)
        strset_grow(s);
    return true;
}

/* ==== Loading ==== */

struct conv {
    struct sf_ctx *c;
    struct sf_doc *d;
    yaml_document_t *y;
    size_t nodes;
    size_t bytes;
    bool is_failed; /* a limit was hit: stop converting */
};

static struct sf_node *conv_node(struct conv *v, int idx, int depth);

static void map_append(struct sf_node *m, struct sf_node *k,
                       struct sf_node *val)
{
    m->keys = cp_realloc(m->keys, (m->n + 1) * sizeof(*m->keys));
    m->items = cp_realloc(m->items, (m->n + 1) * sizeof(*m->items));
    m->keys[m->n] = k;
    m->items[m->n] = val;
    m->n++;
}

static bool is_merge_key(const yaml_node_t *k)
{
    return k != NULL && k->type == YAML_SCALAR_NODE &&
           k->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
           k->data.scalar.length == 2 &&
           memcmp(k->data.scalar.value, "<<", 2) == 0;
}

/* Adds the pairs of merged map src that m does not have yet; frees src. */
static void merge_into(struct sf_node *m, struct strset *seen,
                       struct sf_node *src)
{
    for (size_t i = 0; i < src->n; i++) {
        if (strset_add(seen, src->keys[i]->text)) {
            map_append(m, src->keys[i], src->items[i]);
        } else {
            sf_node_free(src->keys[i]);
            sf_node_free(src->items[i]);
        }
        src->keys[i] = src->items[i] = NULL;
    }
    src->n = 0;
    sf_node_free(src);
}

static bool conv_map(struct conv *v, struct sf_node *m, yaml_node_t *y,
                     int depth)
{
    yaml_node_pair_t *pairs = y->data.mapping.pairs.start;
    size_t np = (size_t)(y->data.mapping.pairs.top - pairs);
    struct strset seen;
    bool ok = true;
    strset_init(&seen, np);
    /* Explicit keys first: they win over merged ones wherever they are. */
    for (size_t i = 0; i < np && ok; i++) {
        yaml_node_t *k = yaml_document_get_node(v->y, pairs[i].key);
        if (is_merge_key(k))
            continue;
        struct sf_node *key = conv_node(v, pairs[i].key, depth + 1);
        if (key == NULL) {
            ok = false;
            break;
        }
        if (key->kind != SF_SCALAR) {
            sf_err(v->c, key, "", "a key must be a plain string");
            sf_node_free(key);
            continue;
        }
        struct sf_node *val = conv_node(v, pairs[i].value, depth + 1);
        if (val == NULL) {
            sf_node_free(key);
            ok = false;
            break;
        }
        if (!strset_add(&seen, key->text)) {
            sf_err(v->c, key, "", "duplicate key '%s'", key->text);
            sf_node_free(key);
            sf_node_free(val);
            continue;
        }
        map_append(m, key, val);
    }
    for (size_t i = 0; i < np && ok; i++) {
        yaml_node_t *k = yaml_document_get_node(v->y, pairs[i].key);
        if (!is_merge_key(k))
            continue;
        struct sf_node *src = conv_node(v, pairs[i].value, depth + 1);
        if (src == NULL) {
            ok = false;
            break;
        }
        if (src->kind == SF_MAP) {
            merge_into(m, &seen, src);
            continue;
        }
        bool is_maps = src->kind == SF_SEQ;
        for (size_t j = 0; is_maps && j < src->n; j++)
            is_maps = src->items[j]->kind == SF_MAP;
        if (!is_maps) {
            sf_err(v->c, src, "", "'<<' must merge a map or a list of maps");
            sf_node_free(src);
            continue;
        }
        for (size_t j = 0; j < src->n; j++) {
            merge_into(m, &seen, src->items[j]);
            src->items[j] = NULL;
        }
        sf_node_free(src);
    }
    strset_release(&seen);
    return ok;
}

static struct sf_node *conv_node(struct conv *v, int idx, int depth)
{
    if (v->is_failed)
        return NULL;
    yaml_node_t *y = yaml_document_get_node(v->y, idx);
    if (y == NULL) {
        sf_err_at(v->c, v->d->file, 0, "", "broken YAML document");
        v->is_failed = true;
        return NULL;
    }
    int line = (int)y->start_mark.line + 1;
    if (depth > STACKFILE_MAX_DEPTH) {
        sf_err_at(v->c, v->d->file, line, "",
                  "nested deeper than %d levels (or an alias refers to "
                  "itself)",
                  STACKFILE_MAX_DEPTH);
        v->is_failed = true;
        return NULL;
    }
    if (++v->nodes > STACKFILE_MAX_NODES) {
        sf_err_at(v->c, v->d->file, line, "",
                  "more than %d values once aliases are expanded",
                  STACKFILE_MAX_NODES);
        v->is_failed = true;
        return NULL;
    }
    struct sf_node *n = cp_calloc(1, sizeof(*n));
    n->line = line;
    n->file = v->d->file;
    switch (y->type) {
    case YAML_NO_NODE:
    case YAML_SCALAR_NODE:
        n->kind = SF_SCALAR;
        if (y->type == YAML_SCALAR_NODE) {
            v->bytes += y->data.scalar.length;
            if (v->bytes > STACKFILE_MAX_BYTES) {
                sf_err_at(v->c, v->d->file, line, "",
                          "more than %d bytes of text once aliases are "
                          "expanded",
                          STACKFILE_MAX_BYTES);
                v->is_failed = true;
                sf_node_free(n);
                return NULL;
            }
            n->text = cp_strndup((const char *)y->data.scalar.value,
                                 y->data.scalar.length);
            n->len = strlen(n->text);
            n->is_plain = y->data.scalar.style == YAML_PLAIN_SCALAR_STYLE ||
                          y->data.scalar.style == YAML_ANY_SCALAR_STYLE;
        } else {
            n->text = cp_strdup("");
            n->is_plain = true;
        }
        return n;
    case YAML_SEQUENCE_NODE: {
        n->kind = SF_SEQ;
        yaml_node_item_t *it = y->data.sequence.items.start;
        size_t ni = (size_t)(y->data.sequence.items.top - it);
        n->items = ni > 0 ? cp_calloc(ni, sizeof(*n->items)) : NULL;
        for (size_t i = 0; i < ni; i++) {
            struct sf_node *c = conv_node(v, it[i], depth + 1);
            if (c == NULL) {
                sf_node_free(n);
                return NULL;
            }
            n->items[n->n++] = c;
        }
        return n;
    }
    case YAML_MAPPING_NODE:
        n->kind = SF_MAP;
        if (!conv_map(v, n, y, depth)) {
            sf_node_free(n);
            return NULL;
        }
        return n;
    }
    sf_node_free(n);
    return NULL;
}

int sf_yaml_parse(struct sf_ctx *c, struct sf_doc *d)
{
    yaml_parser_t p;
    yaml_document_t y;
    int rc = CP_EINVAL;
    d->root = NULL;
    if (!yaml_parser_initialize(&p)) {
        sf_err_at(c, d->file, 0, "", "cannot start the YAML parser");
        return CP_EINVAL;
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)d->text, d->len);
    if (!yaml_parser_load(&p, &y)) {
        sf_err_at(
            c, d->file, (int)p.problem_mark.line + 1, "",
            "invalid YAML at column %d: %s%s%s", (int)p.problem_mark.column + 1,
            p.problem != NULL ? p.problem : "syntax error",
            p.context != NULL ? " " : "", p.context != NULL ? p.context : "");
        yaml_parser_delete(&p);
        return CP_EINVAL;
    }
    yaml_node_t *root = yaml_document_get_root_node(&y);
    if (root == NULL) {
        sf_err_at(c, d->file, 0, "", "the file is empty");
        goto out;
    }
    struct conv v = {c, d, &y, 0, 0, false};
    d->root = conv_node(&v, 1, 0);
    if (d->root == NULL)
        goto out;
    /* A second document would be ignored silently: refuse it. */
    yaml_document_t y2;
    if (!yaml_parser_load(&p, &y2)) {
        sf_err_at(c, d->file, (int)p.problem_mark.line + 1, "",
                  "invalid YAML at column %d: %s",
                  (int)p.problem_mark.column + 1,
                  p.problem != NULL ? p.problem : "syntax error");
        goto out;
    }
    bool has_more = yaml_document_get_root_node(&y2) != NULL;
    int line2 = (int)y2.start_mark.line + 1;
    yaml_document_delete(&y2);
    if (has_more) {
        sf_err_at(c, d->file, line2, "",
                  "more than one YAML document ('---'); a stack file is "
                  "one");
        goto out;
    }
    /* Problems inside the tree (duplicate keys, bad merges) are listed
     * and reading goes on, to collect the rest. */
    rc = 0;
out:
    yaml_document_delete(&y);
    yaml_parser_delete(&p);
    return rc;
}

/* ==== Emitting ==== */

/* True when s as a plain scalar would read back as something other than
 * this string (null, a boolean, a number) or lose spaces. */
static bool needs_quotes(const char *s)
{
    static const char *const words[] = {
        "~",     "null",  "Null",  "NULL", "true", "True", "TRUE",
        "false", "False", "FALSE", "yes",  "Yes",  "YES",  "no",
        "No",    "NO",    "on",    "On",   "ON",   "off",  "Off",
        "OFF",   "y",     "Y",     "n",    "N",    ".inf", ".nan"};
    size_t len = strlen(s);
    if (len == 0 || s[0] == ' ' || s[len - 1] == ' ')
        return true;
    for (size_t i = 0; i < CP_ARRAY_LEN(words); i++)
        if (strcmp(s, words[i]) == 0)
            return true;
    if (strchr("0123456789+-.", s[0]) != NULL) {
        char *end = NULL;
        (void)strtod(s, &end);
        if (end != NULL && *end == '\0')
            return true;
        if (s[0] == '0' && (s[1] == 'x' || s[1] == 'o'))
            return true;
    }
    return false;
}

static int emit_scalar(yaml_emitter_t *e, const char *s, yaml_scalar_style_t st)
{
    yaml_event_t ev;
    /* libyaml copies the value but its prototype is not const. */
    yaml_char_t *value = (yaml_char_t *)(uintptr_t)s;
    if (!yaml_scalar_event_initialize(&ev, NULL, NULL, value, (int)strlen(s), 1,
                                      1, st))
        return -1;
    return yaml_emitter_emit(e, &ev) ? 0 : -1;
}

static int emit_value(yaml_emitter_t *e, const json_t *j, int depth)
{
    yaml_event_t ev;
    char num[64];
    if (depth > 2 * STACKFILE_MAX_DEPTH)
        return -1;
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        if (!yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1,
                                                 YAML_BLOCK_MAPPING_STYLE) ||
            !yaml_emitter_emit(e, &ev))
            return -1;
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)(uintptr_t)j, k, v)
        {
            if (emit_scalar(e, k,
                            needs_quotes(k) ? YAML_DOUBLE_QUOTED_SCALAR_STYLE
                                            : YAML_PLAIN_SCALAR_STYLE) != 0 ||
                emit_value(e, v, depth + 1) != 0)
                return -1;
        }
        if (!yaml_mapping_end_event_initialize(&ev))
            return -1;
        return yaml_emitter_emit(e, &ev) ? 0 : -1;
    }
    case JSON_ARRAY: {
        if (!yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1,
                                                  YAML_BLOCK_SEQUENCE_STYLE) ||
            !yaml_emitter_emit(e, &ev))
            return -1;
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v)
        {
            if (emit_value(e, v, depth + 1) != 0)
                return -1;
        }
        if (!yaml_sequence_end_event_initialize(&ev))
            return -1;
        return yaml_emitter_emit(e, &ev) ? 0 : -1;
    }
    case JSON_STRING: {
        const char *s = json_string_value(j);
        yaml_scalar_style_t st = YAML_PLAIN_SCALAR_STYLE;
        if (strchr(s, '\n') != NULL)
            st = YAML_LITERAL_SCALAR_STYLE;
        else if (needs_quotes(s))
            st = YAML_DOUBLE_QUOTED_SCALAR_STYLE;
        return emit_scalar(e, s, st);
    }
    case JSON_INTEGER:
        snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(j));
        return emit_scalar(e, num, YAML_PLAIN_SCALAR_STYLE);
    case JSON_REAL:
        snprintf(num, sizeof(num), "%.15g", json_real_value(j));
        if (strpbrk(num, ".eEn") == NULL) {
            size_t l = strlen(num);
            snprintf(num + l, sizeof(num) - l, ".0");
        }
        return emit_scalar(e, num, YAML_PLAIN_SCALAR_STYLE);
    case JSON_TRUE:
        return emit_scalar(e, "true", YAML_PLAIN_SCALAR_STYLE);
    case JSON_FALSE:
        return emit_scalar(e, "false", YAML_PLAIN_SCALAR_STYLE);
    case JSON_NULL:
        return emit_scalar(e, "null", YAML_PLAIN_SCALAR_STYLE);
    }
    return -1;
}

static int write_out(void *data, unsigned char *buf, size_t size)
{
    return cp_buf_append(data, buf, size) == 0 ? 1 : 0;
}

char *stackfile_yaml(const json_t *j)
{
    yaml_emitter_t e;
    yaml_event_t ev;
    struct cp_buf b;
    char *out = NULL;
    cp_buf_init(&b, 64 * 1024 * 1024);
    if (!yaml_emitter_initialize(&e))
        goto done;
    yaml_emitter_set_output(&e, write_out, &b);
    yaml_emitter_set_unicode(&e, 1);
    yaml_emitter_set_width(&e, 100);
    bool ok = yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING) &&
              yaml_emitter_emit(&e, &ev) &&
              yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1) &&
              yaml_emitter_emit(&e, &ev) && emit_value(&e, j, 0) == 0 &&
              yaml_document_end_event_initialize(&ev, 1) &&
              yaml_emitter_emit(&e, &ev) &&
              yaml_stream_end_event_initialize(&ev) &&
              yaml_emitter_emit(&e, &ev) && yaml_emitter_flush(&e);
    yaml_emitter_delete(&e);
    if (ok)
        out = cp_strdup(b.data != NULL ? b.data : "");
done:
    cp_buf_release(&b);
    return out;
}
