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
#include "../../src/common/util.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

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

struct restart_call {
    int calls;
    char service_id[64];
    int instance_number;
};

static void on_restart(void *ctx, const char *service_id, int instance_number)
{
    struct restart_call *c = ctx;
    c->calls++;
    snprintf(c->service_id, sizeof(c->service_id), "%s", service_id);
    c->instance_number = instance_number;
}

/* /service_pods/restart [service_id, instance_number] reaches the hook;
 * bad params do not (and a request gets a 400). */
static void test_restart_hook(void **state)
{
    struct fixture *fx = *state;
    struct restart_call c = {0};
    agent_set_restart_hook(fx->agent, on_restart, &c);
    agent_before_connect(fx->agent);
    agent_on_open(fx->agent, 0);
    size_t base = fx->fake.nsent;
    feed(fx, json_pack("[i, s, [s, i]]", PROTO_NOTIFY, PROTO_M_PODS_RESTART,
                       "svc-id", 2));
    assert_int_equal(c.calls, 1);
    assert_string_equal(c.service_id, "svc-id");
    assert_int_equal(c.instance_number, 2);
    assert_int_equal(fx->fake.nsent, base);

    feed(fx,
         json_pack("[i, s, [i, i]]", PROTO_NOTIFY, PROTO_M_PODS_RESTART, 1, 2));
    feed(fx, json_pack("[i, s, [s]]", PROTO_NOTIFY, PROTO_M_PODS_RESTART,
                       "svc-id"));
    feed(fx, json_pack("[i, s, [s, s]]", PROTO_NOTIFY, PROTO_M_PODS_RESTART,
                       "svc-id", "2"));
    feed(fx, json_pack("[i, s, [s, i]]", PROTO_NOTIFY, PROTO_M_PODS_RESTART,
                       "svc-id", -1));
    feed(fx, json_pack("[i, s, [s, I]]", PROTO_NOTIFY, PROTO_M_PODS_RESTART,
                       "svc-id", (json_int_t)1 << 40));
    assert_int_equal(c.calls, 1);
    assert_int_equal(fx->fake.nsent, base);

    feed(fx,
         json_pack("[i, i, s, []]", PROTO_REQUEST, 9, PROTO_M_PODS_RESTART));
    assert_int_equal(fx->fake.nsent, base + 1);
    assert_int_equal(cp_json_int(fx->fake.sent[base].error, "code", 0), 400);
    feed(fx, json_pack("[i, i, s, [s, i]]", PROTO_REQUEST, 10,
                       PROTO_M_PODS_RESTART, "svc-id", 1));
    assert_int_equal(c.calls, 2);
    assert_null(fx->fake.sent[base + 1].error);
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

/* ==== The node update off the loop thread ==== */

/* A fake engine on a unix socket: answers /info after delay_ms and
 * /version at once, one request per connection. */
struct fake_engine {
    char path[108];
    int fd;
    int delay_ms;
    int ninfo; /* atomic */
    pthread_t th;
};

static void *engine_main(void *arg)
{
    struct fake_engine *fe = arg;
    for (;;) {
        int c = accept(fe->fd, NULL, NULL);
        if (c < 0)
            return NULL;
        char req[4096];
        size_t n = 0;
        while (n < sizeof(req) - 1) {
            ssize_t r = read(c, req + n, sizeof(req) - 1 - n);
            if (r <= 0)
                break;
            n += (size_t)r;
            req[n] = '\0';
            if (strstr(req, "\r\n\r\n") != NULL)
                break;
        }
        req[n] = '\0';
        const char *body = "{}";
        if (strstr(req, " /info") != NULL || strstr(req, "/info ") != NULL) {
            struct timespec ts = {fe->delay_ms / 1000,
                                  (long)(fe->delay_ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
            __atomic_add_fetch(&fe->ninfo, 1, __ATOMIC_RELAXED);
            body = "{\"ID\":\"X\",\"Name\":\"fake\",\"NCPU\":2,"
                   "\"MemTotal\":1024,\"DockerRootDir\":\"/tmp\","
                   "\"ServerVersion\":\"1.0\",\"Labels\":[]}";
        } else if (strstr(req, "/version") != NULL) {
            body = "{\"Version\":\"1.0\",\"ApiVersion\":\"1.40\"}";
        }
        char resp[1024];
        int len = snprintf(resp, sizeof(resp),
                           "HTTP/1.1 200 OK\r\nContent-Type: application/json"
                           "\r\nContent-Length: %zu\r\nConnection: close"
                           "\r\n\r\n%s",
                           strlen(body), body);
        if (write(c, resp, (size_t)len) < 0)
            perror("fake engine");
        close(c);
    }
}

static void fake_engine_start(struct fake_engine *fe, int delay_ms)
{
    memset(fe, 0, sizeof(*fe));
    fe->delay_ms = delay_ms;
    snprintf(fe->path, sizeof(fe->path), "/tmp/kagent-test-%d.sock",
             (int)getpid());
    unlink(fe->path);
    fe->fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(fe->fd >= 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", fe->path);
    assert_int_equal(bind(fe->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fe->fd, 8), 0);
    assert_int_equal(pthread_create(&fe->th, NULL, engine_main, fe), 0);
}

static void fake_engine_stop(struct fake_engine *fe)
{
    shutdown(fe->fd, SHUT_RDWR);
    close(fe->fd);
    pthread_join(fe->th, NULL);
    unlink(fe->path);
}

static int wakes; /* atomic */
static void on_wake(void *ctx)
{
    (void)ctx;
    __atomic_add_fetch(&wakes, 1, __ATOMIC_RELAXED);
}

static size_t count_sent(const struct fake *f, const char *method)
{
    size_t n = 0;
    for (size_t i = 0; i < f->nsent; i++)
        if (f->sent[i].kind != PROTO_RESPONSE &&
            strcmp(f->sent[i].method, method) == 0)
            n++;
    return n;
}

/* Ticks (as the loop does after a wake) until method was sent n times
 * or about 5 s passed. */
static void tick_until(struct agent *a, const struct fake *f,
                       const char *method, size_t n, int64_t now_ms)
{
    for (int i = 0; i < 500 && count_sent(f, method) < n; i++) {
        usleep(10 * 1000);
        agent_tick(a, now_ms);
    }
}

/* agent_on_open and agent_tick never wait for the engine: /info (slow
 * here, as on Podman) is read on the agent's thread, which wakes the
 * loop; the update goes out on the tick after that, and again every
 * update interval from then. */
static void test_node_update_async(void **state)
{
    (void)state;
    struct fake_engine fe;
    fake_engine_start(&fe, 300);
    char host[160];
    snprintf(host, sizeof(host), "DOCKER_HOST=unix://%s", fe.path);
    const char *env[] = {"KONTENA_URI=ws://127.0.0.1:1",
                         "KONTENA_TOKEN=grid-token",
                         "KONTENA_NODE_ID=AAAA:BBBB",
                         "KONTENA_NODE_NAME=node-1",
                         "KONTENA_NODE_LABELS=a=1",
                         "KONTENA_PUBLIC_IP=192.0.2.1",
                         "KONTENA_PRIVATE_IP=10.0.0.1",
                         host,
                         NULL};
    const char *argv[] = {"kontena-agent", NULL};
    struct agent_config cfg;
    char err[256];
    assert_int_equal(agent_config_parse(&cfg, (char *const *)(uintptr_t)env, 1,
                                        (char **)(uintptr_t)argv, err,
                                        sizeof(err)),
                     0);
    struct engine *e = engine_new(cfg.docker_socket);
    struct fake f;
    memset(&f, 0, sizeof(f));
    struct agent_io io = {.ctx = &f,
                          .send = fake_send,
                          .set_header = fake_set_header,
                          .wake = on_wake};
    struct agent *a = agent_new(&cfg, e, &io);
    wakes = 0;
    assert_int_equal(agent_before_connect(a), 0);

    int64_t t0 = cp_mono_ms();
    agent_on_open(a, 0);
    agent_tick(a, 0);
    assert_true(cp_mono_ms() - t0 < 150); /* did not wait for /info */
    assert_int_equal(count_sent(&f, PROTO_M_NODES_UPDATE), 0);

    tick_until(a, &f, PROTO_M_NODES_UPDATE, 1, 1000);
    assert_int_equal(count_sent(&f, PROTO_M_NODES_UPDATE), 1);
    assert_true(__atomic_load_n(&wakes, __ATOMIC_RELAXED) >= 1);
    const struct rpc_msg *m = &f.sent[f.nsent - 1];
    assert_int_equal(m->kind, PROTO_REQUEST);
    assert_string_equal(json_string_value(json_array_get(m->params, 0)),
                        "AAAA:BBBB");
    const json_t *facts = json_array_get(m->params, 1);
    assert_true(json_is_object(facts));
    assert_string_equal(cp_json_str(facts, "PublicIp"), "192.0.2.1");
    assert_string_equal(cp_json_str(facts, "Name"), "node-1");

    /* Next one an update interval after the first was sent. */
    int64_t next = 1000 + (int64_t)cfg.update_interval_s * 1000;
    agent_tick(a, next - 1);
    usleep(500 * 1000);
    agent_tick(a, next - 1);
    assert_int_equal(count_sent(&f, PROTO_M_NODES_UPDATE), 1);
    agent_tick(a, next);
    tick_until(a, &f, PROTO_M_NODES_UPDATE, 2, next);
    assert_int_equal(count_sent(&f, PROTO_M_NODES_UPDATE), 2);

    /* Facts that come back after the connection closed are dropped; a
     * new connection asks anew and gets its own update. */
    agent_tick(a, 2 * next);
    agent_on_close(a);
    usleep(500 * 1000);
    agent_tick(a, 2 * next);
    assert_int_equal(count_sent(&f, PROTO_M_NODES_UPDATE), 2);
    agent_on_open(a, 3 * next);
    tick_until(a, &f, PROTO_M_NODES_UPDATE, 3, 3 * next);
    assert_int_equal(count_sent(&f, PROTO_M_NODES_UPDATE), 3);

    agent_stop(a);
    agent_free(a);
    engine_free(e);
    fake_engine_stop(&fe);
    for (size_t i = 0; i < f.nsent; i++)
        rpc_msg_release(&f.sent[i]);
    agent_config_release(&cfg);
}

/* The engine is away: no update, and a retry AGENT_UPDATE_RETRY_MS
 * after the failure came back. */
static void test_node_update_retry(void **state)
{
    struct fixture *fx = *state;
    agent_before_connect(fx->agent);
    agent_on_open(fx->agent, 0);
    for (int i = 0; i < 100; i++) {
        usleep(10 * 1000);
        agent_tick(fx->agent, 100);
    }
    assert_int_equal(count_sent(&fx->fake, PROTO_M_NODES_UPDATE), 0);
    /* No request was sent and none is pending. */
    assert_int_equal(agent_outstanding(fx->agent), 0);
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
        cmocka_unit_test_setup_teardown(test_restart_hook, setup, teardown),
        cmocka_unit_test_setup_teardown(test_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_table_full_and_disconnect, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stats_interval, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
        cmocka_unit_test(test_node_update_async),
        cmocka_unit_test_setup_teardown(test_node_update_retry, setup,
                                        teardown),
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_close_texts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
