/* Docker multiplexed log frames, line splitting and the bounded log
 * queue. Pure: the caller locks and reads the clock.
 * SPDX-License-Identifier: Apache-2.0 */
#include "logship.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/util.h"

#include <string.h>

void logship_frames_init(struct logship_frames *f)
{
    memset(f, 0, sizeof(*f));
}

void logship_frames_release(struct logship_frames *f)
{
    for (int i = 0; i < 3; i++)
        cp_free(f->line[i]);
    memset(f, 0, sizeof(*f));
}

/* Adds payload bytes to the partial line of stream s, emitting every
 * complete line, and pieces of LOGSHIP_MAX_LINE for overlong ones. */
static void add_payload(struct logship_frames *f, int s, const char *p,
                        size_t n, logship_line_fn *fn, void *ctx)
{
    if (f->line[s] == NULL)
        f->line[s] = cp_malloc(LOGSHIP_MAX_LINE);
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\n') {
            fn(ctx, (enum logship_stream)s, f->line[s], f->line_len[s]);
            f->line_len[s] = 0;
            continue;
        }
        if (f->line_len[s] == LOGSHIP_MAX_LINE) {
            fn(ctx, (enum logship_stream)s, f->line[s], f->line_len[s]);
            f->line_len[s] = 0;
        }
        f->line[s][f->line_len[s]++] = p[i];
    }
}

int logship_frames_feed(struct logship_frames *f, const char *data, size_t len,
                        logship_line_fn *fn, void *ctx)
{
    size_t pos = 0;
    while (pos < len) {
        if (f->left == 0) {
            size_t want = 8 - f->hdr_len;
            size_t take = len - pos < want ? len - pos : want;
            memcpy(f->hdr + f->hdr_len, data + pos, take);
            f->hdr_len += take;
            pos += take;
            if (f->hdr_len < 8)
                return 0;
            f->hdr_len = 0;
            if (f->hdr[0] > 2 || f->hdr[1] || f->hdr[2] || f->hdr[3])
                return CP_EPROTO;
            f->stream = f->hdr[0] == 2 ? LOGSHIP_STDERR : LOGSHIP_STDOUT;
            f->left = (size_t)f->hdr[4] << 24 | (size_t)f->hdr[5] << 16 |
                      (size_t)f->hdr[6] << 8 | (size_t)f->hdr[7];
            continue;
        }
        size_t take = len - pos < f->left ? len - pos : f->left;
        add_payload(f, f->stream, data + pos, take, fn, ctx);
        f->left -= take;
        pos += take;
    }
    return 0;
}

void logship_frames_flush(struct logship_frames *f, logship_line_fn *fn,
                          void *ctx)
{
    for (int s = 1; s <= 2; s++) {
        if (f->line_len[s] > 0)
            fn(ctx, (enum logship_stream)s, f->line[s], f->line_len[s]);
        f->line_len[s] = 0;
    }
}

bool logship_split_time(const char *line, size_t len, int64_t *time_ms,
                        size_t *text_off)
{
    const char *sp = memchr(line, ' ', len < 64 ? len : 64);
    if (sp == NULL || sp == line)
        return false;
    char stamp[64];
    size_t n = (size_t)(sp - line);
    memcpy(stamp, line, n);
    stamp[n] = '\0';
    int64_t ms;
    if (cp_time_parse_iso(stamp, &ms) != 0)
        return false;
    *time_ms = ms;
    *text_off = n + 1;
    return true;
}

/* ==== The bounded queue ==== */

struct logship_entry {
    struct logship_entry *next;
    char *id;
    char *name;
    int64_t time_ms;
    enum logship_stream stream;
    size_t len;
    char *data;
};

static size_t entry_bytes(const struct logship_entry *e)
{
    return sizeof(*e) + strlen(e->id) + strlen(e->name) + e->len + 3;
}

static void entry_free(struct logship_entry *e)
{
    cp_free(e->id);
    cp_free(e->name);
    cp_free(e->data);
    cp_free(e);
}

void logship_queue_init(struct logship_queue *q, size_t max_bytes)
{
    memset(q, 0, sizeof(*q));
    q->max_bytes = max_bytes;
}

static struct logship_entry *pop(struct logship_queue *q)
{
    struct logship_entry *e = q->head;
    if (e == NULL)
        return NULL;
    q->head = e->next;
    if (q->head == NULL)
        q->tail = NULL;
    q->n--;
    q->bytes -= entry_bytes(e);
    return e;
}

void logship_queue_release(struct logship_queue *q)
{
    struct logship_entry *e;
    while ((e = pop(q)) != NULL)
        entry_free(e);
    logship_queue_init(q, q->max_bytes);
}

void logship_queue_push(struct logship_queue *q, const char *id,
                        const char *name, int64_t time_ms,
                        enum logship_stream stream, const char *data,
                        size_t len)
{
    struct logship_entry *e = cp_calloc(1, sizeof(*e));
    e->id = cp_strdup(id);
    e->name = cp_strdup(name != NULL ? name : "");
    e->time_ms = time_ms;
    e->stream = stream;
    e->len = len;
    e->data = cp_malloc(len + 1);
    memcpy(e->data, data, len);
    e->data[len] = '\0';
    if (q->tail != NULL)
        q->tail->next = e;
    else
        q->head = e;
    q->tail = e;
    q->n++;
    q->bytes += entry_bytes(e);
    while (q->bytes > q->max_bytes && q->head != NULL) {
        entry_free(pop(q));
        q->dropped++;
    }
}

json_t *logship_queue_take(struct logship_queue *q, size_t max)
{
    if (q->head == NULL || max == 0)
        return NULL;
    json_t *arr = json_array();
    struct logship_entry *e;
    while (json_array_size(arr) < max && (e = pop(q)) != NULL) {
        char when[40];
        cp_time_iso(e->time_ms, when, sizeof(when));
        json_t *data = json_stringn(e->data, e->len);
        if (data == NULL) { /* not UTF-8: keep the ASCII, mark the rest */
            for (size_t i = 0; i < e->len; i++)
                if ((unsigned char)e->data[i] >= 0x80)
                    e->data[i] = '?';
            data = json_stringn(e->data, e->len);
        }
        json_t *o = json_pack(
            "{s:s, s:s, s:s, s:s}", "id", e->id, "name", e->name, "time", when,
            "type", e->stream == LOGSHIP_STDERR ? "stderr" : "stdout");
        json_object_set_new(o, "data", data != NULL ? data : json_string(""));
        json_array_append_new(arr, o);
        entry_free(e);
    }
    return arr;
}

uint64_t logship_queue_take_dropped(struct logship_queue *q)
{
    uint64_t d = q->dropped;
    q->dropped = 0;
    return d;
}
