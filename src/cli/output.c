/* Tables and JSON output (see output.h).
 * SPDX-License-Identifier: Apache-2.0 */
#include "output.h"
#include "../common/alloc.h"
#include "../common/json.h"
#include "../common/util.h"

#include <stdint.h>
#include <string.h>

struct table {
    size_t ncols;
    size_t nrows; /* including the header row */
    char **cells; /* nrows * ncols, row-major */
};

static void add_row(struct table *t, const char *const *cells)
{
    t->cells =
        cp_realloc(t->cells, (t->nrows + 1) * t->ncols * sizeof(*t->cells));
    for (size_t i = 0; i < t->ncols; i++)
        t->cells[t->nrows * t->ncols + i] =
            cp_strdup(cells[i] != NULL ? cells[i] : "");
    t->nrows++;
}

struct table *table_new(size_t ncols, const char *const *headers)
{
    struct table *t = cp_calloc(1, sizeof(*t));
    t->ncols = ncols;
    add_row(t, headers);
    return t;
}

void table_free(struct table *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->nrows * t->ncols; i++)
        cp_free(t->cells[i]);
    cp_free(t->cells);
    cp_free(t);
}

void table_add(struct table *t, const char *const *cells)
{
    add_row(t, cells);
}

/* Display width: counts UTF-8 code points, not bytes. */
static size_t width(const char *s)
{
    size_t n = 0;
    for (; *s != '\0'; s++) {
        if (((unsigned char)*s & 0xC0) != 0x80)
            n++;
    }
    return n;
}

void table_print(const struct table *t, FILE *f)
{
    size_t *w = cp_calloc(t->ncols, sizeof(*w));
    for (size_t r = 0; r < t->nrows; r++) {
        for (size_t c = 0; c < t->ncols; c++) {
            size_t n = width(t->cells[r * t->ncols + c]);
            if (n > w[c])
                w[c] = n;
        }
    }
    struct cp_buf line;
    cp_buf_init(&line, SIZE_MAX / 2);
    for (size_t r = 0; r < t->nrows; r++) {
        line.len = 0;
        for (size_t c = 0; c < t->ncols; c++) {
            const char *s = t->cells[r * t->ncols + c];
            size_t start = line.len;
            cp_buf_append(&line, s, strlen(s));
            if (r == 0) {
                for (size_t i = start; i < line.len; i++) {
                    if (line.data[i] >= 'a' && line.data[i] <= 'z')
                        line.data[i] = (char)(line.data[i] - 'a' + 'A');
                }
            }
            if (c + 1 < t->ncols)
                cp_buf_printf(&line, "%*s", (int)(w[c] - width(s) + 3), "");
        }
        /* Empty trailing cells would leave padding at the end. */
        while (line.len > 0 && line.data[line.len - 1] == ' ')
            line.len--;
        fprintf(f, "%.*s\n", (int)line.len, line.len > 0 ? line.data : "");
    }
    cp_buf_release(&line);
    cp_free(w);
}

void output_json(const json_t *j, FILE *f)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER |
                                JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
    fprintf(f, "%s\n", s != NULL ? s : "null");
    cp_free(s);
}

void output_list(const json_t *arr)
{
    if (arr != NULL) {
        output_json(arr, stdout);
        return;
    }
    json_t *empty = json_array();
    output_json(empty, stdout);
    json_decref(empty);
}

char *output_cell(const json_t *v)
{
    if (v == NULL || json_is_null(v))
        return cp_strdup("");
    if (json_is_string(v))
        return cp_strdup(json_string_value(v));
    if (json_is_array(v)) {
        struct cp_buf b;
        cp_buf_init(&b, 1024 * 1024);
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
        {
            char *s = output_cell(e);
            cp_buf_printf(&b, "%s%s", i > 0 ? "," : "", s);
            cp_free(s);
        }
        char *out = cp_strdup(b.data != NULL ? b.data : "");
        cp_buf_release(&b);
        return out;
    }
    return cp_json_dump(v);
}
