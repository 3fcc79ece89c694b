/* Unit tests for master -> agent requests across masters (src/master/
 * xrpc.c's waiter table and reply matching) and the pure parts of the
 * agent's live inspect (src/agent/inspector.c) and the master's secret
 * env stripping (agent_calls_strip_secret_env).
 * SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../src/agent/inspector.h"
#include "../../src/common/alloc.h"
#include "../../src/common/json.h"
#include "../../src/common/util.h"
#include "../../src/master/agent_calls.h"
#include "../../src/master/xrpc.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void test_table_complete_then_wait(void **state)
{
    (void)state;
    struct xrpc_table t;
    xrpc_table_init(&t);
    int slot = xrpc_table_register(&t, "abc");
    assert_true(slot >= 0);
    json_t *res = json_pack("{s:b}", "Running", 1);
    assert_false(xrpc_table_complete(&t, "other", NULL, res));
    assert_true(xrpc_table_complete(&t, "abc", NULL, res));
    /* A duplicate reply matches nothing. */
    assert_false(xrpc_table_complete(&t, "abc", NULL, res));
    json_decref(res);
    json_t *err = NULL, *out = NULL;
    assert_true(xrpc_table_wait(&t, slot, 1000, &err, &out));
    assert_null(err);
    assert_true(cp_json_bool(out, "Running", false));
    json_decref(out);
    /* The slot is free again: a late reply matches nothing. */
    assert_false(xrpc_table_complete(&t, "abc", NULL, NULL));
    xrpc_table_destroy(&t);
}

static void test_table_timeout_frees(void **state)
{
    (void)state;
    struct xrpc_table t;
    xrpc_table_init(&t);
    int slot = xrpc_table_register(&t, "late");
    int64_t t0 = cp_mono_ms();
    json_t *err = NULL, *out = NULL;
    assert_false(xrpc_table_wait(&t, slot, 150, &err, &out));
    int64_t took = cp_mono_ms() - t0;
    assert_true(took >= 140 && took < 2000);
    assert_null(err);
    assert_null(out);
    json_t *e = json_pack("{s:i,s:s}", "code", 404, "message", "x");
    assert_false(xrpc_table_complete(&t, "late", e, NULL));
    json_decref(e);
    xrpc_table_destroy(&t);
}

static void test_table_bounded(void **state)
{
    (void)state;
    struct xrpc_table t;
    xrpc_table_init(&t);
    char id[16];
    for (int i = 0; i < XRPC_MAX_WAITERS; i++) {
        snprintf(id, sizeof(id), "r%d", i);
        assert_int_equal(xrpc_table_register(&t, id), i);
    }
    assert_int_equal(xrpc_table_register(&t, "one-more"), -1);
    json_t *err = NULL, *out = NULL;
    assert_false(xrpc_table_wait(&t, 7, 0, &err, &out));
    assert_int_equal(xrpc_table_register(&t, "one-more"), 7);
    char toolong[XRPC_ID_LEN + 2];
    memset(toolong, 'a', sizeof(toolong) - 1);
    toolong[sizeof(toolong) - 1] = '\0';
    assert_int_equal(xrpc_table_register(&t, toolong), -1);
    xrpc_table_destroy(&t);
}

struct completer {
    struct xrpc_table *t;
    const char *id;
};

static void *complete_later(void *arg)
{
    struct completer *c = arg;
    usleep(50 * 1000);
    json_t *e = json_pack("{s:i,s:s}", "code", 404, "message", "gone");
    xrpc_table_complete(c->t, "wrong", NULL, NULL);
    xrpc_table_complete(c->t, c->id, e, NULL);
    json_decref(e);
    return NULL;
}

/* The waiter wakes when another thread completes it, with the error. */
static void test_table_cross_thread(void **state)
{
    (void)state;
    struct xrpc_table t;
    xrpc_table_init(&t);
    int a = xrpc_table_register(&t, "wrong");
    int b = xrpc_table_register(&t, "right");
    struct completer c = {&t, "right"};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, complete_later, &c), 0);
    json_t *err = NULL, *out = NULL;
    int64_t t0 = cp_mono_ms();
    assert_true(xrpc_table_wait(&t, b, 5000, &err, &out));
    assert_true(cp_mono_ms() - t0 < 4000);
    assert_int_equal(cp_json_int(err, "code", 0), 404);
    assert_null(out);
    json_decref(err);
    pthread_join(th, NULL);
    assert_true(xrpc_table_wait(&t, a, 0, &err, &out));
    xrpc_table_destroy(&t);
}

/* xrpc_on_reply completes only replies addressed to this master. */
static void test_on_reply_addressed(void **state)
{
    (void)state;
    struct master m;
    memset(&m, 0, sizeof(m));
    snprintf(m.master_id, sizeof(m.master_id), "%s", "me");
    /* A reply for another master, or for nobody, is ignored. */
    json_t *r = json_pack("{s:s,s:s,s:n,s:{}}", "req_id", "x", "to", "you",
                          "error", "result");
    xrpc_on_reply(&m, r);
    json_decref(r);
    /* Not connected: a clear error at once, nothing published. */
    json_t *res = NULL;
    char *err = NULL;
    json_t *params = json_pack("[s]", "c");
    assert_int_equal(
        xrpc_call(&m, "row", "node-1", false, "/x", params, 1000, &res, &err),
        503);
    assert_string_equal(err, "node node-1 is not connected to any master");
    assert_null(res);
    cp_free(err);
    json_decref(params);
}

static void test_inspector_target(void **state)
{
    (void)state;
    assert_true(inspector_valid_target("web-1"));
    assert_true(inspector_valid_target("shop.web-2"));
    assert_true(inspector_valid_target("0123abcdef"));
    assert_false(inspector_valid_target(""));
    assert_false(inspector_valid_target(NULL));
    assert_false(inspector_valid_target("../../info"));
    assert_false(inspector_valid_target("a/b"));
    assert_false(inspector_valid_target("a?b=1"));
    assert_false(inspector_valid_target(".hidden"));
    assert_false(inspector_valid_target("-x"));
}

static json_t *sample(const char *grid, bool with_service)
{
    json_t *labels = json_object();
    if (grid != NULL)
        cp_json_set_str(labels, "io.kontena.grid.name", grid);
    if (with_service)
        cp_json_set_str(labels, "io.kontena.service.id", "svc1");
    cp_json_set_str(labels, "io.kontena.container.secret_env", "DB_PW,TOKEN");
    cp_json_set_str(labels, "io.kontena.container.secrets_rev", "digest");
    return json_pack("{s:{s:[s,s,s,s],s:o},s:{s:b}}", "Config", "Env",
                     "PATH=/bin", "DB_PW=hunter2", "TOKEN=t0k", "DB_PWX=ok",
                     "Labels", labels, "State", "Running", 1);
}

static void test_inspector_check(void **state)
{
    (void)state;
    json_t *ok = sample("g1", true);
    assert_null(inspector_check(ok, "g1", "web-1"));
    json_t *e = inspector_check(ok, "g2", "web-1");
    assert_int_equal(cp_json_int(e, "code", 0), 403);
    json_decref(e);
    json_t *foreign = sample(NULL, false);
    e = inspector_check(foreign, "g1", "postgres");
    assert_int_equal(cp_json_int(e, "code", 0), 403);
    json_decref(e);
    json_t *nosvc = sample("g1", false);
    e = inspector_check(nosvc, "g1", "x");
    assert_non_null(e);
    json_decref(e);
    json_decref(ok);
    json_decref(foreign);
    json_decref(nosvc);
}

static void assert_env(const json_t *ins, const char *const *want, size_t n)
{
    const json_t *env = json_object_get(json_object_get(ins, "Config"), "Env");
    assert_int_equal(json_array_size(env), n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(json_string_value(json_array_get(env, i)), want[i]);
    const json_t *labels =
        json_object_get(json_object_get(ins, "Config"), "Labels");
    assert_null(json_object_get(labels, "io.kontena.container.secrets_rev"));
}

static void test_strip_secrets(void **state)
{
    (void)state;
    static const char *const want[] = {"PATH=/bin", "DB_PWX=ok"};
    json_t *a = sample("g1", true);
    inspector_strip_secrets(a);
    assert_env(a, want, 2);
    json_decref(a);
    /* The master's strip: label names, and the spec's secrets too. */
    json_t *b = sample("g1", true);
    json_object_del(json_object_get(json_object_get(b, "Config"), "Labels"),
                    "io.kontena.container.secret_env");
    json_t *spec = json_pack("{s:[{s:s},{s:s}]}", "secrets", "name", "DB_PW",
                             "name", "TOKEN");
    agent_calls_strip_secret_env(b, spec);
    assert_env(b, want, 2);
    json_decref(spec);
    json_decref(b);
    json_t *c = sample("g1", true);
    agent_calls_strip_secret_env(c, NULL);
    assert_env(c, want, 2);
    json_decref(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_complete_then_wait),
        cmocka_unit_test(test_table_timeout_frees),
        cmocka_unit_test(test_table_bounded),
        cmocka_unit_test(test_table_cross_thread),
        cmocka_unit_test(test_on_reply_addressed),
        cmocka_unit_test(test_inspector_target),
        cmocka_unit_test(test_inspector_check),
        cmocka_unit_test(test_strip_secrets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
