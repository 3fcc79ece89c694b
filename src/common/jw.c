/* Streaming JSON writer.
 * SPDX-License-Identifier: Apache-2.0 */
#include "jw.h"
#include "alloc.h"
#include "json.h"

#include <stdio.h>
#include <string.h>

void jw_init(struct jw *w, struct cp_buf *out)
{
    memset(w, 0, sizeof(*w));
    w->out = out;
}

static void put(struct jw *w, const char *s, size_t n)
{
    /* A full buffer truncates; the caller bounds what it renders. */
    cp_buf_append(w->out, s, n);
}

/* Called before every value or key at the current level. */
static void sep(struct jw *w)
{
    if (w->need_comma[w->depth])
        put(w, ",", 1);
    w->need_comma[w->depth] = true;
}

static void open_(struct jw *w, const char *c)
{
    sep(w);
    put(w, c, 1);
    if (w->depth < JW_MAX_DEPTH - 1)
        w->depth++;
    w->need_comma[w->depth] = false;
}

static void close_(struct jw *w, const char *c)
{
    put(w, c, 1);
    if (w->depth > 0)
        w->depth--;
}

void jw_obj_open(struct jw *w)
{
    open_(w, "{");
}

void jw_obj_close(struct jw *w)
{
    close_(w, "}");
}

void jw_arr_open(struct jw *w)
{
    open_(w, "[");
}

void jw_arr_close(struct jw *w)
{
    close_(w, "]");
}

static void put_string(struct jw *w, const char *s)
{
    static const char hexd[] = "0123456789abcdef";
    put(w, "\"", 1);
    const char *run = s;
    for (const char *p = s; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        put(w, run, (size_t)(p - run));
        char esc[6] = {'\\', 'u', '0', '0', hexd[c >> 4], hexd[c & 15]};
        switch (c) {
        case '"':
            put(w, "\\\"", 2);
            break;
        case '\\':
            put(w, "\\\\", 2);
            break;
        case '\n':
            put(w, "\\n", 2);
            break;
        case '\r':
            put(w, "\\r", 2);
            break;
        case '\t':
            put(w, "\\t", 2);
            break;
        default:
            put(w, esc, 6);
            break;
        }
        run = p + 1;
    }
    put(w, run, strlen(run));
    put(w, "\"", 1);
}

void jw_key(struct jw *w, const char *key)
{
    sep(w);
    put_string(w, key);
    put(w, ":", 1);
    /* The value that follows must not get a comma of its own. */
    w->need_comma[w->depth] = false;
}

/* After a value at object level, the next key needs a comma. */
static void after_value(struct jw *w)
{
    w->need_comma[w->depth] = true;
}

void jw_str(struct jw *w, const char *s)
{
    sep(w);
    if (s == NULL)
        put(w, "null", 4);
    else
        put_string(w, s);
    after_value(w);
}

void jw_int(struct jw *w, long long v)
{
    /* Formatted by hand: snprintf showed in profiles of list views. */
    char num[24];
    char *p = num + sizeof(num);
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v
                                 : (unsigned long long)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0)
        *--p = '-';
    sep(w);
    put(w, p, (size_t)(num + sizeof(num) - p));
    after_value(w);
}

void jw_bool(struct jw *w, bool v)
{
    sep(w);
    put(w, v ? "true" : "false", v ? 4 : 5);
    after_value(w);
}

void jw_null(struct jw *w)
{
    sep(w);
    put(w, "null", 4);
    after_value(w);
}

void jw_time(struct jw *w, int64_t ms)
{
    if (ms == 0) {
        jw_null(w);
        return;
    }
    char buf[40];
    jw_str(w, cp_time_iso(ms, buf, sizeof(buf)));
}

void jw_json(struct jw *w, const json_t *v, const char *dflt)
{
    sep(w);
    if (v == NULL) {
        put(w, dflt, strlen(dflt));
    } else {
        char *s = cp_json_dump(v);
        put(w, s, strlen(s));
        cp_free(s);
    }
    after_value(w);
}
