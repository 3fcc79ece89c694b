/* Container log shipping helpers, all pure (no I/O, no locks, no clock):
 * a parser for Docker's multiplexed log stream (8-byte frame headers,
 * [stream, 0, 0, 0, size big-endian] then size bytes) that cuts the
 * payload into lines, and a bounded FIFO of log lines waiting to be sent
 * as /containers/log_batch. The pod worker feeds the parser from its log
 * stream threads and drains the queue from the loop thread, holding its
 * own lock around the queue.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef CP_AGENT_LOGSHIP_H
#define CP_AGENT_LOGSHIP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LOGSHIP_MAX_LINE (16u * 1024) /* longer lines are cut in pieces */
#define LOGSHIP_BATCH_LINES 500
#define LOGSHIP_QUEUE_BYTES (4u * 1024 * 1024)

enum logship_stream {
    LOGSHIP_STDOUT = 1,
    LOGSHIP_STDERR = 2,
};

/* Called once per complete line (without its "\n"); line is borrowed. */
typedef void logship_line_fn(void *ctx, enum logship_stream stream,
                             const char *line, size_t len);

/* The parser's state between chunks: a partial frame header, the bytes
 * left in the current frame, and one partial line per stream. */
struct logship_frames {
    unsigned char hdr[8];
    size_t hdr_len;
    size_t left;   /* payload bytes left in the current frame */
    int stream;    /* of the current frame */
    char *line[3]; /* [1] stdout, [2] stderr partial lines, owned */
    size_t line_len[3];
};

void logship_frames_init(struct logship_frames *f);
/* Frees the partial lines; f can be init'ed again. */
void logship_frames_release(struct logship_frames *f);
/* Feeds len bytes of the stream (any split, even inside a header) and
 * calls fn for every line they complete. Stream 0 (stdin) counts as
 * stdout. Returns 0, or CP_EPROTO when a header names a stream other
 * than 0..2 (the stream is not multiplexed: a TTY container); lines
 * completed before the bad header were delivered. */
int logship_frames_feed(struct logship_frames *f, const char *data, size_t len,
                        logship_line_fn *fn, void *ctx);
/* Delivers the partial lines (end of stream). */
void logship_frames_flush(struct logship_frames *f, logship_line_fn *fn,
                          void *ctx);

/* Splits a timestamps=1 line "2026-11-25T12:50:38Z text" (Docker sends
 * nanoseconds, Podman whole seconds) into *time_ms and the offset of the
 * text. Returns false, leaving both untouched, when the line does not
 * start with a timestamp and a space. */
bool logship_split_time(const char *line, size_t len, int64_t *time_ms,
                        size_t *text_off);

/* ==== The bounded queue ==== */

struct logship_entry;

struct logship_queue {
    struct logship_entry *head, *tail;
    size_t n;
    size_t bytes;
    size_t max_bytes;
    uint64_t dropped; /* since the last logship_queue_take_dropped() */
};

void logship_queue_init(struct logship_queue *q, size_t max_bytes);
void logship_queue_release(struct logship_queue *q);
/* Appends one line (id, name, data copied); drops the oldest lines while
 * the queue holds more than max_bytes, counting them in dropped. */
void logship_queue_push(struct logship_queue *q, const char *id,
                        const char *name, int64_t time_ms,
                        enum logship_stream stream, const char *data,
                        size_t len);
/* Removes up to max lines from the front as a new JSON array of
 * {id, name, time (ISO 8601), type: stdout|stderr, data}; NULL when the
 * queue is empty. */
json_t *logship_queue_take(struct logship_queue *q, size_t max);
/* Returns and clears the count of dropped lines. */
uint64_t logship_queue_take_dropped(struct logship_queue *q);

#endif
