/* Unit tests for the pod worker's pure helpers: Docker's multiplexed log
 * frames (fed split at every byte), timestamps, the bounded log queue,
 * engine events, newline-delimited JSON, pull errors and container IPs.
 * SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../src/agent/engine.h"
#include "../../src/agent/logship.h"
#include "../../src/agent/podworker.h"
#include "../../src/common/alloc.h"
#include "../../src/common/err.h"
#include "../../src/common/json.h"
#include "../../src/common/util.h"

#include <stdio.h>
#include <string.h>

/* ==== Log frames ==== */

struct lines {
    char text[64][128];
    int stream[64];
    int n;
};

static void collect(void *ctx, enum logship_stream stream, const char *line,
                    size_t len)
{
    struct lines *l = ctx;
    assert_true(l->n < 64);
    snprintf(l->text[l->n], sizeof(l->text[0]), "%.*s", (int)len, line);
    l->stream[l->n] = (int)stream;
    l->n++;
}

static size_t frame(char *out, int stream, const char *payload)
{
    size_t n = strlen(payload);
    out[0] = (char)stream;
    out[1] = out[2] = out[3] = 0;
    out[4] = (char)(n >> 24);
    out[5] = (char)(n >> 16);
    out[6] = (char)(n >> 8);
    out[7] = (char)n;
    memcpy(out + 8, payload, n);
    return n + 8;
}

/* Three frames: a line split over two stdout frames, a stderr line, and
 * two lines in one frame. */
static size_t sample(char *buf)
{
    size_t n = 0;
    n += frame(buf + n, 1, "2026-11-25T12:50:38Z hel");
    n += frame(buf + n, 2, "oops\n");
    n += frame(buf + n, 1, "lo\nsecond\n");
    return n;
}

static void check_sample(const struct lines *l)
{
    assert_int_equal(l->n, 3);
    assert_string_equal(l->text[0], "oops");
    assert_int_equal(l->stream[0], LOGSHIP_STDERR);
    assert_string_equal(l->text[1], "2026-11-25T12:50:38Z hello");
    assert_int_equal(l->stream[1], LOGSHIP_STDOUT);
    assert_string_equal(l->text[2], "second");
}

static void test_frames_whole(void **state)
{
    (void)state;
    char buf[256];
    size_t n = sample(buf);
    struct logship_frames f;
    struct lines l = {0};
    logship_frames_init(&f);
    assert_int_equal(logship_frames_feed(&f, buf, n, collect, &l), 0);
    check_sample(&l);
    logship_frames_release(&f);
}

static void test_frames_split_everywhere(void **state)
{
    (void)state;
    char buf[256];
    size_t n = sample(buf);
    for (size_t cut = 0; cut <= n; cut++) {
        struct logship_frames f;
        struct lines l = {0};
        logship_frames_init(&f);
        assert_int_equal(logship_frames_feed(&f, buf, cut, collect, &l), 0);
        assert_int_equal(
            logship_frames_feed(&f, buf + cut, n - cut, collect, &l), 0);
        check_sample(&l);
        logship_frames_release(&f);
    }
    /* And one byte at a time. */
    struct logship_frames f;
    struct lines l = {0};
    logship_frames_init(&f);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(logship_frames_feed(&f, buf + i, 1, collect, &l), 0);
    check_sample(&l);
    logship_frames_release(&f);
}

static void test_frames_flush_and_bad_header(void **state)
{
    (void)state;
    char buf[64];
    size_t n = frame(buf, 1, "no newline");
    struct logship_frames f;
    struct lines l = {0};
    logship_frames_init(&f);
    assert_int_equal(logship_frames_feed(&f, buf, n, collect, &l), 0);
    assert_int_equal(l.n, 0);
    logship_frames_flush(&f, collect, &l);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.text[0], "no newline");
    /* A TTY stream is plain text: "2026..." is no frame header. */
    assert_int_equal(logship_frames_feed(&f, "2026-11-25 x\n", 13, collect, &l),
                     CP_EPROTO);
    logship_frames_release(&f);
}

static int long_count;
static size_t long_total;

static void count_line(void *ctx, enum logship_stream s, const char *line,
                       size_t len)
{
    (void)ctx;
    (void)s;
    (void)line;
    assert_true(len <= LOGSHIP_MAX_LINE);
    long_count++;
    long_total += len;
}

static void test_frames_long_line_cut(void **state)
{
    (void)state;
    size_t n = LOGSHIP_MAX_LINE * 2 + 10;
    char *buf = cp_malloc(n + 9);
    char *p = buf + 8;
    memset(p, 'x', n);
    p[n] = '\n';
    buf[0] = 1;
    buf[1] = buf[2] = buf[3] = 0;
    uint32_t sz = (uint32_t)(n + 1);
    buf[4] = (char)(sz >> 24);
    buf[5] = (char)(sz >> 16);
    buf[6] = (char)(sz >> 8);
    buf[7] = (char)sz;
    struct logship_frames f;
    logship_frames_init(&f);
    long_count = 0;
    long_total = 0;
    assert_int_equal(logship_frames_feed(&f, buf, n + 9, count_line, NULL), 0);
    assert_int_equal(long_count, 3);
    assert_int_equal(long_total, n);
    logship_frames_release(&f);
    cp_free(buf);
}

static void test_split_time(void **state)
{
    (void)state;
    int64_t t = 0;
    size_t off = 0;
    const char *podman = "2026-11-25T12:50:38Z hello world";
    assert_true(logship_split_time(podman, strlen(podman), &t, &off));
    assert_string_equal(podman + off, "hello world");
    int64_t want = 0;
    assert_int_equal(cp_time_parse_iso("2026-11-25T12:50:38Z", &want), 0);
    assert_int_equal(t, want);
    const char *docker = "2026-11-25T12:50:38.123456789Z x";
    assert_true(logship_split_time(docker, strlen(docker), &t, &off));
    assert_string_equal(docker + off, "x");
    assert_int_equal(t, want + 123);
    const char *plain = "no stamp here";
    t = 7;
    assert_false(logship_split_time(plain, strlen(plain), &t, &off));
    assert_int_equal(t, 7);
    assert_false(logship_split_time("", 0, &t, &off));
}

/* ==== Log queue ==== */

static void test_queue_batches(void **state)
{
    (void)state;
    struct logship_queue q;
    logship_queue_init(&q, LOGSHIP_QUEUE_BYTES);
    assert_null(logship_queue_take(&q, 10));
    for (int i = 0; i < 1200; i++) {
        char line[32];
        int n = snprintf(line, sizeof(line), "line %d", i);
        logship_queue_push(&q, "abc", "web-1", 1000,
                           i % 2 ? LOGSHIP_STDERR : LOGSHIP_STDOUT, line,
                           (size_t)n);
    }
    json_t *b = logship_queue_take(&q, LOGSHIP_BATCH_LINES);
    assert_int_equal(json_array_size(b), 500);
    json_t *e = json_array_get(b, 1);
    assert_string_equal(cp_json_str(e, "id"), "abc");
    assert_string_equal(cp_json_str(e, "name"), "web-1");
    assert_string_equal(cp_json_str(e, "type"), "stderr");
    assert_string_equal(cp_json_str(e, "data"), "line 1");
    assert_string_equal(cp_json_str(e, "time"), "1970-01-01T00:00:01.000Z");
    json_decref(b);
    b = logship_queue_take(&q, 500);
    json_decref(b);
    b = logship_queue_take(&q, 500);
    assert_int_equal(json_array_size(b), 200);
    assert_string_equal(cp_json_str(json_array_get(b, 199), "data"),
                        "line 1199");
    json_decref(b);
    assert_int_equal(q.n, 0);
    assert_int_equal(q.bytes, 0);
    assert_int_equal(logship_queue_take_dropped(&q), 0);
    logship_queue_release(&q);
}

static void test_queue_drops_oldest(void **state)
{
    (void)state;
    struct logship_queue q;
    logship_queue_init(&q, 4096);
    char line[200];
    memset(line, 'y', sizeof(line));
    for (int i = 0; i < 100; i++) {
        int n = snprintf(line, sizeof(line), "%03d", i);
        line[n] = 'y';
        logship_queue_push(&q, "c", "n", 0, LOGSHIP_STDOUT, line, sizeof(line));
    }
    assert_true(q.bytes <= 4096);
    assert_true(q.n > 0 && q.n < 100);
    uint64_t dropped = logship_queue_take_dropped(&q);
    assert_int_equal(dropped + q.n, 100);
    assert_int_equal(logship_queue_take_dropped(&q), 0);
    json_t *b = logship_queue_take(&q, 1000);
    /* The newest line survived; the oldest went. */
    const char *last =
        cp_json_str(json_array_get(b, json_array_size(b) - 1), "data");
    assert_memory_equal(last, "099", 3);
    json_decref(b);
    /* Invalid UTF-8 is shipped with the bad bytes replaced. */
    logship_queue_push(&q, "c", "n", 0, LOGSHIP_STDOUT,
                       "a\xff"
                       "b",
                       3);
    b = logship_queue_take(&q, 1);
    assert_string_equal(cp_json_str(json_array_get(b, 0), "data"), "a?b");
    json_decref(b);
    logship_queue_release(&q);
}

/* ==== Events ==== */

static const char podman_start[] =
    "{\"status\":\"start\",\"id\":\"c0ffee\",\"from\":\"busybox\","
    "\"Type\":\"container\",\"Action\":\"start\",\"Actor\":{\"ID\":\"c0ffee\","
    "\"Attributes\":{\"image\":\"docker.io/library/busybox:latest\","
    "\"name\":\"web-1\",\"io.kontena.service.id\":\"5a1\"}},"
    "\"scope\":\"local\",\"time\":1764075038,\"timeNano\":1764075038000000000}";

static void test_event_parse(void **state)
{
    (void)state;
    json_t *j = cp_json_parse(podman_start, strlen(podman_start), NULL, 0);
    struct podworker_event ev;
    assert_int_equal(podworker_event_parse(j, &ev), 0);
    assert_string_equal(ev.id, "c0ffee");
    assert_string_equal(ev.action, "start");
    assert_string_equal(ev.from, "busybox");
    assert_string_equal(ev.name, "web-1");
    assert_string_equal(ev.service_id, "5a1");
    assert_int_equal(ev.time_s, 1764075038);
    json_decref(j);

    /* Docker's destroy with no kontena label: not ours. */
    j = json_pack("{s:s, s:s, s:{s:s, s:{s:s}}, s:i}", "Type", "container",
                  "Action", "destroy", "Actor", "ID", "d1", "Attributes",
                  "name", "other", "time", 5);
    assert_int_equal(podworker_event_parse(j, &ev), 0);
    assert_string_equal(ev.action, "destroy");
    assert_null(ev.service_id);
    assert_string_equal(ev.id, "d1");
    json_decref(j);

    /* Not a container event, or no id. */
    j = json_pack("{s:s, s:s, s:{s:s}}", "Type", "image", "Action", "pull",
                  "Actor", "ID", "busybox");
    assert_int_equal(podworker_event_parse(j, &ev), CP_EINVAL);
    json_decref(j);
    j = json_pack("{s:s, s:s}", "Type", "container", "Action", "die");
    assert_int_equal(podworker_event_parse(j, &ev), CP_EINVAL);
    json_decref(j);
    j = json_string("nonsense");
    assert_int_equal(podworker_event_parse(j, &ev), CP_EINVAL);
    json_decref(j);
}

struct seen {
    char ids[8][16];
    int n;
};

static void on_obj(void *ctx, const json_t *obj)
{
    struct seen *s = ctx;
    struct podworker_event ev;
    if (podworker_event_parse(obj, &ev) == 0 && s->n < 8)
        snprintf(s->ids[s->n++], sizeof(s->ids[0]), "%s", ev.id);
}

static void test_ndjson_split_everywhere(void **state)
{
    (void)state;
    char text[2048];
    int n = snprintf(text, sizeof(text), "%s\n{bad json}\r\n\n%s\n",
                     podman_start, podman_start);
    for (int cut = 0; cut <= n; cut++) {
        struct cp_buf pending;
        cp_buf_init(&pending, 4096);
        struct seen s = {0};
        int bad =
            podworker_ndjson_feed(&pending, text, (size_t)cut, on_obj, &s);
        bad += podworker_ndjson_feed(&pending, text + cut, (size_t)(n - cut),
                                     on_obj, &s);
        assert_int_equal(bad, 1);
        assert_int_equal(s.n, 2);
        assert_string_equal(s.ids[1], "c0ffee");
        assert_int_equal(pending.len, 0);
        cp_buf_release(&pending);
    }
    /* A line longer than the buffer is an error, not a crash. */
    struct cp_buf small;
    cp_buf_init(&small, 16);
    struct seen s = {0};
    assert_int_equal(podworker_ndjson_feed(&small, podman_start,
                                           strlen(podman_start), on_obj, &s),
                     CP_EPROTO);
    cp_buf_release(&small);
}

/* ==== Engine answers ==== */

static void test_pull_error(void **state)
{
    (void)state;
    char msg[256];
    const char ok[] = "{\"status\":\"Pulling from library/busybox\"}\n"
                      "{\"status\":\"Digest: sha256:1\"}\n";
    assert_false(engine_pull_error(ok, strlen(ok), msg, sizeof(msg)));
    const char podman[] =
        "{\"status\":\"Trying to pull docker.io/library/nope:latest...\"}\n"
        "{\"error\":\"short\",\"errorDetail\":{\"message\":\"lookup "
        "registry-1.docker.io: no such host\"}}\n";
    assert_true(engine_pull_error(podman, strlen(podman), msg, sizeof(msg)));
    assert_string_equal(msg, "lookup registry-1.docker.io: no such host");
    const char docker[] = "{\"error\":\"manifest unknown\"}";
    assert_true(engine_pull_error(docker, strlen(docker), msg, sizeof(msg)));
    assert_string_equal(msg, "manifest unknown");
    assert_false(engine_pull_error("", 0, msg, sizeof(msg)));
}

static void test_container_ip(void **state)
{
    (void)state;
    json_t *j =
        json_pack("{s:{s:s, s:{s:{s:s}}}}", "NetworkSettings", "IPAddress", "",
                  "Networks", "podman", "IPAddress", "10.88.0.5");
    assert_string_equal(podworker_container_ip(j), "10.88.0.5");
    json_decref(j);
    j = json_pack("{s:{s:s}}", "NetworkSettings", "IPAddress", "172.17.0.2");
    assert_string_equal(podworker_container_ip(j), "172.17.0.2");
    json_decref(j);
    j = json_pack("{s:{s:s, s:{}}}", "NetworkSettings", "IPAddress", "",
                  "Networks");
    assert_null(podworker_container_ip(j));
    json_decref(j);
    assert_null(podworker_container_ip(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frames_whole),
        cmocka_unit_test(test_frames_split_everywhere),
        cmocka_unit_test(test_frames_flush_and_bad_header),
        cmocka_unit_test(test_frames_long_line_cut),
        cmocka_unit_test(test_split_time),
        cmocka_unit_test(test_queue_batches),
        cmocka_unit_test(test_queue_drops_oldest),
        cmocka_unit_test(test_event_parse),
        cmocka_unit_test(test_ndjson_split_everywhere),
        cmocka_unit_test(test_pull_error),
        cmocka_unit_test(test_container_ip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
