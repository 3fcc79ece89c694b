/* Unit tests for the agent's RPC layer (src/agent/agent.c) with a fake
 * transport: dispatch of master->agent calls, the outstanding-request
 * table and its timeouts, malformed input; plus the link's pure parts
 * (backoff bounds, close texts).
 * SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../src/agent/agent.h"
#include "../../src/agent/link.h"
#include "../../src/common/alloc.h"
#include "../../src/common/err.h"
#include "../../src/common/json.h"
#include "../../src/common/log.h"
#include "../../src/common/proto.h"
#include "../../src/common/rpc.h"

#include <string.h>

#define MAX_SENT 128

/* The fake transport: keeps every frame sent, decoded. */
struct fake {
    struct rpc_msg sent[MAX_SENT];
    size_t nsent;
    int fail_send;
    char headers[8][2][128];
    size_t nheaders;
};

static int fake_send(void *ctx, char *buf, size_t len)
{
    struct fake *f = ctx;
    if (f->fail_send) {
        cp_free(buf);
        return CP_EIO;
    }
    assert_true(f->nsent < MAX_SENT);
    char err[128];
    assert_int_equal(rpc_decode(buf, len, &f->sent[f->nsent], err, sizeof(err)),
                     0);
    f->nsent++;
    cp_free(buf);
    return 0;
}

static void fake_set_header(void *ctx, const char *name, const char *value)
{
    struct fake *f = ctx;
    snprintf(f->headers[f->nheaders][0], 128, "%s", name);
    snprintf(f->headers[f->nheaders][1], 128, "%s", value);
    f->nheaders++;
}

static const char *header(const struct fake *f, const char *name)
{
    for (size_t i = 0; i < f->nheaders; i++) {
        if (strcmp(f->headers[i][0], name) == 0)
            return f->headers[i][1];
    }
    return NULL;
}

struct fixture {
    struct agent_config cfg;
    struct engine *engine;
    struct fake fake;
    struct agent *agent;
};

static int setup(void **state)
{
    struct fixture *fx = cp_calloc(1, sizeof(*fx));
    const char *env[] = {"KONTENA_URI=ws://127.0.0.1:1",
                         "KONTENA_TOKEN=grid-token",
                         "KONTENA_NODE_ID=AAAA:BBBB",
                         "KONTENA_NODE_NAME=node-1",
                         "KONTENA_NODE_LABELS=a=1 b=2",
                         "DOCKER_HOST=unix:///nonexistent/docker.sock",
                         NULL};
    const char *argv[] = {"kontena-agent", NULL};
    char err[256];
    assert_int_equal(agent_config_parse(&fx->cfg, (char *const *)(uintptr_t)env,
                                        1, (char **)(uintptr_t)argv, err,
                                        sizeof(err)),
                     0);
    fx->engine = engine_new(fx->cfg.docker_socket);
    struct agent_io io = {
        .ctx = &fx->fake, .send = fake_send, .set_header = fake_set_header};
    fx->agent = agent_new(&fx->cfg, fx->engine, &io);
    /* Quiet the expected warnings. */
    cp_log_level = CP_LOG_ERROR;
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    for (size_t i = 0; i < fx->fake.nsent; i++)
        rpc_msg_release(&fx->fake.sent[i]);
    agent_free(fx->agent);
    engine_free(fx->engine);
    agent_config_release(&fx->cfg);
    cp_free(fx);
    return 0;
}

static void feed(struct fixture *fx, json_t *frame)
{
    /* Encode through the shared codec, as the master does. */
    char *buf = NULL;
    size_t len = 0;
    json_int_t kind = json_integer_value(json_array_get(frame, 0));
    if (kind == PROTO_REQUEST)
        rpc_encode_request(
            (uint32_t)json_integer_value(json_array_get(frame, 1)),
            json_string_value(json_array_get(frame, 2)),
            json_array_get(frame, 3), &buf, &len);
    else if (kind == PROTO_NOTIFY)
        rpc_encode_notify(json_string_value(json_array_get(frame, 1)),
                          json_array_get(frame, 2), &buf, &len);
    else
        rpc_encode_response(
            (uint32_t)json_integer_value(json_array_get(frame, 1)),
            json_is_null(json_array_get(frame, 2)) ? NULL
                                                   : json_array_get(frame, 2),
            json_array_get(frame, 3), &buf, &len);
    assert_int_equal(agent_on_message(fx->agent, buf, len), 0);
    cp_free(buf);
    json_decref(frame);
}

static void test_headers(void **state)
{
    struct fixture *fx = *state;
    assert_int_equal(agent_before_connect(fx->agent), 0);
    assert_string_equal(header(&fx->fake, PROTO_H_NODE_ID), "AAAA:BBBB");
    assert_string_equal(header(&fx->fake, PROTO_H_NODE_NAME), "node-1");
    assert_string_equal(header(&fx->fake, PROTO_H_NODE_LABELS), "a=1,b=2");
    assert_string_equal(header(&fx->fake, PROTO_H_GRID_TOKEN), "grid-token");
    assert_null(header(&fx->fake, PROTO_H_NODE_TOKEN));
    assert_non_null(header(&fx->fake, PROTO_H_VERSION));
    assert_string_equal(agent_node_id(fx->agent), "AAAA:BBBB");
}

static void test_master_calls(void **state)
{
    struct fixture *fx = *state;
    agent_before_connect(fx->agent);
    /* The engine is unreachable: the node update is skipped, not fatal. */
    agent_on_open(fx->agent, 1000);
    size_t base = fx->fake.nsent;

    feed(fx, json_pack("[i, s, [{s:s}]]", PROTO_NOTIFY, PROTO_M_MASTER_INFO,
                       "version", "1.5.90"));
    feed(fx, json_pack("[i, s, [{s:s, s:i, s:[s], s:{s:s}}]]", PROTO_NOTIFY,
                       PROTO_M_NODE_INFO, "name", "node-1", "node_number", 3,
                       "labels", "a=1", "grid", "name", "test"));
    assert_int_equal(agent_node_number(fx->agent), 3);
    assert_string_equal(cp_json_str(agent_node_info(fx->agent), "name"),
                        "node-1");
    assert_int_equal(fx->fake.nsent, base); /* notifications: no answer */

    feed(fx, json_pack("[i, i, s, [s]]", PROTO_REQUEST, 77, PROTO_M_PODS_NOTIFY,
                       "deploy"));
    assert_int_equal(fx->fake.nsent, base + 1);
    struct rpc_msg *r = &fx->fake.sent[base];
    assert_int_equal(r->kind, PROTO_RESPONSE);
    assert_int_equal(r->id, 77);
    assert_null(r->error);
    assert_true(json_is_object(r->result) && json_object_size(r->result) == 0);

    feed(fx, json_pack("[i, i, s, []]", PROTO_REQUEST, 78, "/etcd/get"));
    r = &fx->fake.sent[base + 1];
    assert_int_equal(r->id, 78);
    assert_int_equal(cp_json_int(r->error, "code", 0), 501);
    assert_string_equal(cp_json_str(r->error, "message"),
                        "service not implemented");

    /* Unknown notifications and bad node_info are answered by nothing and
     * do not crash. */
    feed(fx, json_pack("[i, s, []]", PROTO_NOTIFY, "/nope/nope"));
    feed(fx, json_pack("[i, s, [i]]", PROTO_NOTIFY, PROTO_M_NODE_INFO, 5));
    feed(fx, json_pack("[i, s, []]", PROTO_NOTIFY, PROTO_M_MASTER_INFO));
    assert_int_equal(fx->fake.nsent, base + 2);
}

static int pods_calls;
static void on_pods(void *ctx, const char *reason)
{
    (void)ctx;
    assert_string_equal(reason, "start");
    pods_calls++;
}

static void test_pods_hook(void **state)
{
    struct fixture *fx = *state;
    agent_set_pods_hook(fx->agent, on_pods, NULL);
    pods_calls = 0;
    feed(fx,
         json_pack("[i, s, [s]]", PROTO_NOTIFY, PROTO_M_PODS_NOTIFY, "start"));
    assert_int_equal(pods_calls, 1);
}

struct reply {
    int calls;
    long long code;
    json_t *result;
};

static void on_reply(void *ctx, const json_t *error, const json_t *result)
{
    struct reply *r = ctx;
    r->calls++;
    r->code = error != NULL ? cp_json_int(error, "code", -1) : 0;
    if (result != NULL)
        r->result = json_deep_copy(result);
}

static void test_requests(void **state)
{
    struct fixture *fx = *state;
    agent_before_connect(fx->agent);
    /* Not connected: refused, callback not called. */
    struct reply r1 = {0};
    assert_int_equal(
        agent_request(fx->agent, "/nodes/get", NULL, 0, on_reply, &r1, 0),
        CP_EAGAIN);
    agent_on_open(fx->agent, 0);
    size_t base = fx->fake.nsent;
    assert_int_equal(agent_request(fx->agent, "/nodes/get",
                                   json_pack("[s]", "AAAA:BBBB"), 0, on_reply,
                                   &r1, 0),
                     0);
    struct rpc_msg *m = &fx->fake.sent[base];
    assert_int_equal(m->kind, PROTO_REQUEST);
    assert_string_equal(m->method, "/nodes/get");
    assert_true(m->id > 0 && m->id <= 0x7fffffff);
    assert_int_equal(agent_outstanding(fx->agent), 1);
    feed(fx, json_pack("[i, i, n, {s:s}]", PROTO_RESPONSE, (json_int_t)m->id,
                       "name", "node-1"));
    assert_int_equal(r1.calls, 1);
    assert_int_equal(r1.code, 0);
    assert_string_equal(cp_json_str(r1.result, "name"), "node-1");
    json_decref(r1.result);
    assert_int_equal(agent_outstanding(fx->agent), 0);

    /* A response nobody waits for is ignored. */
    feed(fx, json_pack("[i, i, n, n]", PROTO_RESPONSE, 12345));

    /* An error response reaches the callback. */
    struct reply r2 = {0};
    agent_request(fx->agent, "/x", NULL, 0, on_reply, &r2, 0);
    m = &fx->fake.sent[fx->fake.nsent - 1];
    feed(fx, json_pack("[i, i, {s:i, s:s}, n]", PROTO_RESPONSE,
                       (json_int_t)m->id, "code", 404, "message", "nope"));
    assert_int_equal(r2.calls, 1);
    assert_int_equal(r2.code, 404);

    /* Timeouts: 100 ms here, the default elsewhere. */
    struct reply r3 = {0}, r4 = {0};
    agent_request(fx->agent, "/slow", NULL, 100, on_reply, &r3, 1000);
    agent_request(fx->agent, "/slower", NULL, 0, on_reply, &r4, 1000);
    agent_tick(fx->agent, 1099);
    assert_int_equal(r3.calls, 0);
    agent_tick(fx->agent, 1100);
    assert_int_equal(r3.calls, 1);
    assert_int_equal(r3.code, PROTO_ERR_TIMEOUT);
    assert_int_equal(r4.calls, 0);
    agent_tick(fx->agent, 1000 + AGENT_REQUEST_TIMEOUT_MS);
    assert_int_equal(r4.calls, 1);
    assert_int_equal(agent_outstanding(fx->agent), 0);

    /* A failed send does not take a slot. */
    fx->fake.fail_send = 1;
    struct reply r5 = {0};
    assert_int_equal(agent_request(fx->agent, "/x", NULL, 0, on_reply, &r5, 0),
                     CP_EAGAIN);
    assert_int_equal(agent_outstanding(fx->agent), 0);
    fx->fake.fail_send = 0;
}

static void test_table_full_and_disconnect(void **state)
{
    struct fixture *fx = *state;
    agent_before_connect(fx->agent);
    agent_on_open(fx->agent, 0);
    struct reply r = {0};
    for (int i = 0; i < AGENT_MAX_OUTSTANDING; i++)
        assert_int_equal(
            agent_request(fx->agent, "/x", NULL, 0, on_reply, &r, 0), 0);
    assert_int_equal(agent_request(fx->agent, "/x", NULL, 0, on_reply, &r, 0),
                     CP_EAGAIN);
    assert_int_equal(agent_outstanding(fx->agent), AGENT_MAX_OUTSTANDING);
    /* Ids are unique. */
    for (size_t i = 0; i < fx->fake.nsent; i++)
        for (size_t j = i + 1; j < fx->fake.nsent; j++)
            if (fx->fake.sent[i].kind == PROTO_REQUEST)
                assert_true(fx->fake.sent[i].id != fx->fake.sent[j].id);
    agent_on_close(fx->agent);
    assert_int_equal(r.calls, AGENT_MAX_OUTSTANDING);
    assert_int_equal(r.code, PROTO_ERR_TIMEOUT);
    assert_int_equal(agent_outstanding(fx->agent), 0);
    assert_int_equal(agent_notify(fx->agent, "/x", NULL), CP_EAGAIN);
}

static void test_stats_interval(void **state)
{
    struct fixture *fx = *state;
    agent_before_connect(fx->agent);
    agent_on_open(fx->agent, 0);
    size_t base = fx->fake.nsent;
    agent_tick(fx->agent, 59000);
    assert_int_equal(fx->fake.nsent, base);
    agent_tick(fx->agent, 60000);
    assert_int_equal(fx->fake.nsent, base + 1);
    struct rpc_msg *m = &fx->fake.sent[base];
    assert_int_equal(m->kind, PROTO_NOTIFY);
    assert_string_equal(m->method, PROTO_M_NODES_STATS);
    assert_string_equal(json_string_value(json_array_get(m->params, 0)),
                        "AAAA:BBBB");
    json_t *s = json_array_get(m->params, 1);
    assert_non_null(json_object_get(s, "memory"));
    assert_non_null(json_object_get(s, "cpu"));
    assert_non_null(json_object_get(s, "network"));
    assert_non_null(cp_json_str(s, "time"));
}

/* Garbage never crashes the agent; it is reported as CP_EPROTO. */
static void test_malformed(void **state)
{
    struct fixture *fx = *state;
    static const unsigned char cases[][8] = {
        {0xc1},                         /* never-used byte */
        {0x93, 0x00},                   /* truncated array */
        {0x94, 0x07, 0x01, 0xa1},       /* unknown kind, truncated */
        {0xa3, 'a', 'b', 'c'},          /* not an array */
        {0x92, 0x00, 0x01},             /* too short */
        {0xdd, 0xff, 0xff, 0xff, 0xff}, /* huge array claim */
    };
    static const size_t lens[] = {1, 2, 4, 4, 3, 5};
    for (size_t i = 0; i < CP_ARRAY_LEN(cases); i++)
        assert_int_equal(agent_on_message(fx->agent, cases[i], lens[i]),
                         CP_EPROTO);
    assert_int_equal(agent_on_message(fx->agent, "", 0), CP_EPROTO);
    /* Random bytes. */
    unsigned char buf[256];
    for (int round = 0; round < 2000; round++) {
        size_t n = 1 + (size_t)(round % 255);
        for (size_t i = 0; i < n; i++)
            buf[i] = (unsigned char)((round * 131 + i * 7919) >> 3);
        buf[0] = (unsigned char)(0x90 | (round % 5));
        int rc = agent_on_message(fx->agent, buf, n);
        assert_true(rc == 0 || rc == CP_EPROTO);
    }
}

static void test_backoff(void **state)
{
    (void)state;
    assert_int_equal(link_backoff_ms(0, 1.0), 1000);
    assert_int_equal(link_backoff_ms(1, 1.0), 2000);
    assert_int_equal(link_backoff_ms(6, 1.0), 64000);
    assert_int_equal(link_backoff_ms(7, 1.0), 90000);
    assert_int_equal(link_backoff_ms(0, 0.0), 0);
    assert_int_equal(link_backoff_ms(3, 0.5), 4000);
    for (unsigned a = 0; a < 1000; a++) {
        int64_t hi = link_backoff_ms(a, 1.0);
        assert_true(hi <= 90000);
        assert_true(link_backoff_ms(a, 0.37) <= hi);
        assert_true(link_backoff_ms(a, 0.0) >= 0);
    }
    assert_int_equal(link_backoff_ms(UINT32_MAX, 1.0), 90000);
    /* Out-of-range jitter is clamped. */
    assert_int_equal(link_backoff_ms(2, 7.0), 4000);
    assert_int_equal(link_backoff_ms(2, -1.0), 0);
}

static void test_close_texts(void **state)
{
    (void)state;
    assert_string_equal(link_close_text(4001), "invalid grid token");
    assert_string_equal(link_close_text(4041),
                        "superseded by a newer connection");
    assert_string_equal(link_close_text(1234), "");
    static const int final[] = {4001, 4010, 4040, 4041};
    for (size_t i = 0; i < CP_ARRAY_LEN(final); i++)
        assert_true(proto_close_is_final(final[i]));
    assert_false(proto_close_is_final(4030));
    assert_false(proto_close_is_final(1000));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_master_calls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pods_hook, setup, teardown),
        cmocka_unit_test_setup_teardown(test_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_table_full_and_disconnect, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stats_interval, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_close_texts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
