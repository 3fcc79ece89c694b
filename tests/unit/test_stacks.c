/* Unit tests of the pure stack rules (src/master/stacks.c; spec 5.5):
 * link order, missing links and cycles, the revision a stack body
 * describes (validation and error keys), revision comparison, the stack
 * state, and the revision <-> store struct round trip.
 * SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../src/common/alloc.h"
#include "../../src/common/err.h"
#include "../../src/common/json.h"
#include "../../src/master/stacks.h"

#include <stdio.h>
#include <string.h>

static json_t *parse(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    if (j == NULL)
        fail_msg("bad test JSON: %s: %s", e.text, text);
    return j;
}

/* The names of services in the order stacks_order gives, "a,b,c". */
static int order_of(const char *services, const char *own, char *out,
                    size_t len, char *why, size_t *bad)
{
    json_t *s = parse(services);
    size_t n = json_array_size(s);
    size_t *order = cp_calloc(n + 1, sizeof(*order));
    int rc = stacks_order(s, own, order, why, 256, bad);
    out[0] = '\0';
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const char *name = cp_json_str(json_array_get(s, order[i]), "name");
        size_t used = strlen(out);
        snprintf(out + used, len - used, "%s%s", i ? "," : "", name);
    }
    cp_free(order);
    json_decref(s);
    return rc;
}

/* ==== Link order ==== */

static void test_order_links_first(void **state)
{
    (void)state;
    char got[256], why[256];
    size_t bad = 99;
    /* web -> api -> db: db first, then api, then web */
    assert_int_equal(
        order_of("[{\"name\":\"web\",\"links\":[{\"name\":\"api\"}]},"
                 "{\"name\":\"api\",\"links\":[{\"name\":\"db\"}]},"
                 "{\"name\":\"db\"}]",
                 "s", got, sizeof(got), why, &bad),
        0);
    assert_string_equal(got, "db,api,web");
    /* independent services keep their input order */
    assert_int_equal(order_of("[{\"name\":\"b\"},{\"name\":\"a\"},"
                              "{\"name\":\"c\"}]",
                              "s", got, sizeof(got), why, &bad),
                     0);
    assert_string_equal(got, "b,a,c");
    /* diamond: d before b and c, a last */
    assert_int_equal(
        order_of(
            "[{\"name\":\"a\",\"links\":[{\"name\":\"b\"},{\"name\":\"c\"}]},"
            "{\"name\":\"b\",\"links\":[{\"name\":\"d\"}]},"
            "{\"name\":\"c\",\"links\":[{\"name\":\"d\"}]},"
            "{\"name\":\"d\"}]",
            "s", got, sizeof(got), why, &bad),
        0);
    assert_string_equal(got, "d,b,c,a");
    /* "<own>/svc" is of the stack; other stacks are ignored here */
    assert_int_equal(
        order_of("[{\"name\":\"web\",\"links\":[{\"name\":\"s/db\"},"
                 "{\"name\":\"other/db\"},{\"name\":\"null/x\"}]},"
                 "{\"name\":\"db\"}]",
                 "s", got, sizeof(got), why, &bad),
        0);
    assert_string_equal(got, "db,web");
    /* an empty list */
    assert_int_equal(order_of("[]", "s", got, sizeof(got), why, &bad), 0);
    assert_string_equal(got, "");
}

static void test_order_missing(void **state)
{
    (void)state;
    char got[256], why[256];
    size_t bad = 99;
    assert_int_equal(order_of("[{\"name\":\"db\"},"
                              "{\"name\":\"web\",\"links\":[{\"name\":\"db\"},"
                              "{\"name\":\"cache\"}]}]",
                              "s", got, sizeof(got), why, &bad),
                     CP_EINVAL);
    assert_string_equal(why, "service web has missing links: cache");
    assert_int_equal(bad, 1);
    /* "s/cache" in stack s is missing too */
    assert_int_equal(order_of("[{\"name\":\"web\",\"links\":[{\"name\":"
                              "\"s/cache\"}]}]",
                              "s", got, sizeof(got), why, &bad),
                     CP_EINVAL);
    assert_string_equal(why, "service web has missing links: cache");
}

static void test_order_cycles(void **state)
{
    (void)state;
    char got[256], why[256];
    size_t bad = 99;
    /* self link */
    assert_int_equal(order_of("[{\"name\":\"a\",\"links\":[{\"name\":\"a\"}]}]",
                              "s", got, sizeof(got), why, &bad),
                     CP_EINVAL);
    assert_string_equal(why, "service a has recursive links: a -> a");
    assert_int_equal(bad, 0);
    /* a -> b -> c -> b */
    assert_int_equal(order_of("[{\"name\":\"a\",\"links\":[{\"name\":\"b\"}]},"
                              "{\"name\":\"b\",\"links\":[{\"name\":\"c\"}]},"
                              "{\"name\":\"c\",\"links\":[{\"name\":\"b\"}]}]",
                              "s", got, sizeof(got), why, &bad),
                     CP_EINVAL);
    assert_string_equal(why, "service b has recursive links: b -> c -> b");
    assert_int_equal(bad, 1);
    /* string links count too (as the service model accepts them) */
    assert_int_equal(order_of("[{\"name\":\"x\",\"links\":[\"y\"]},"
                              "{\"name\":\"y\",\"links\":[\"x\"]}]",
                              "s", got, sizeof(got), why, &bad),
                     CP_EINVAL);
    assert_non_null(strstr(why, "recursive links"));
}

/* ==== Revisions ==== */

static json_t *build(const char *body, const json_t *current, json_t **errors)
{
    json_t *b = parse(body);
    json_t *rev = NULL;
    *errors = json_object();
    int rc = stacks_build_revision(b, "wp", "grid", current, &rev, *errors);
    json_decref(b);
    assert_int_equal(rc == 0, rev != NULL);
    return rev;
}

static void test_build_good(void **state)
{
    (void)state;
    json_t *errors;
    json_t *rev =
        build("{\"name\":\"wp\",\"stack\":\"user/wp\",\"version\":\"1.0.0\","
              "\"source\":\"services: ...\",\"variables\":{\"a\":1},"
              "\"expose\":\"web\",\"extra\":true,"
              "\"services\":[{\"name\":\"web\",\"image\":\"busybox\","
              "\"links\":[{\"name\":\"db\",\"alias\":\"db\"},"
              "{\"name\":\"other/api\"}]},"
              "{\"name\":\"db\",\"image\":\"busybox\",\"instances\":2}]}",
              NULL, &errors);
    assert_non_null(rev);
    assert_int_equal(json_object_size(errors), 0);
    assert_string_equal(cp_json_str(rev, "stack"), "user/wp");
    assert_string_equal(cp_json_str(rev, "expose"), "web");
    assert_true(json_is_null(json_object_get(rev, "registry")));
    assert_null(json_object_get(rev, "extra"));
    assert_int_equal(json_array_size(json_object_get(rev, "volumes")), 0);
    const json_t *svcs = json_object_get(rev, "services");
    assert_int_equal(json_array_size(svcs), 2);
    /* link order, names kept, specs normalised */
    assert_string_equal(cp_json_str(json_array_get(svcs, 0), "name"), "db");
    assert_string_equal(cp_json_str(json_array_get(svcs, 1), "name"), "web");
    assert_int_equal(cp_json_int(json_array_get(svcs, 0), "instances", 0), 2);
    assert_string_equal(cp_json_str(json_array_get(svcs, 1), "image"),
                        "busybox:latest");
    assert_string_equal(
        cp_json_str(json_array_get(
                        json_object_get(json_array_get(svcs, 1), "links"), 1),
                    "alias"),
        "api");
    json_decref(rev);
    json_decref(errors);
}

static void test_build_errors(void **state)
{
    (void)state;
    json_t *errors;
    /* no services */
    assert_null(build("{\"services\":[]}", NULL, &errors));
    assert_string_equal(cp_json_str(errors, "services"),
                        "stack does not specify any services");
    json_decref(errors);
    assert_null(build("{}", NULL, &errors));
    assert_non_null(json_object_get(errors, "services"));
    json_decref(errors);
    /* several at once, each named */
    assert_null(
        build("{\"expose\":\"nope\",\"variables\":[],\"version\":3,"
              "\"volumes\":[{\"name\":\"data\",\"external\":\"gvol\"},"
              "{\"name\":\"local\"}],"
              "\"services\":[{\"name\":\"web\",\"image\":\"busybox\","
              "\"instances\":-1,\"links\":[\"db\"]},"
              "{\"name\":\"api\",\"image\":\"\"},"
              "{\"name\":\"api\",\"image\":\"busybox\"},{\"image\":\"x\"}]}",
              NULL, &errors));
    assert_string_equal(cp_json_str(errors, "expose"),
                        "nope is not defined in the services array");
    assert_non_null(json_object_get(errors, "variables"));
    assert_non_null(json_object_get(errors, "version"));
    assert_non_null(strstr(cp_json_str(errors, "volumes.data"),
                           "external volume gvol not found"));
    assert_non_null(
        strstr(cp_json_str(errors, "volumes"), "only external volumes"));
    assert_non_null(json_object_get(errors, "services.web.instances"));
    assert_non_null(json_object_get(errors, "services.api.image"));
    assert_string_equal(cp_json_str(errors, "services.api.name"),
                        "service api is defined twice");
    assert_non_null(strstr(cp_json_str(errors, "services"), "entry 4"));
    assert_string_equal(cp_json_str(errors, "services.web.links"),
                        "service web has missing links: db");
    json_decref(errors);
    /* cycles name the service */
    assert_null(build("{\"services\":[{\"name\":\"a\",\"image\":\"busybox\","
                      "\"links\":[\"b\"]},{\"name\":\"b\",\"image\":"
                      "\"busybox\",\"links\":[\"a\"]}]}",
                      NULL, &errors));
    assert_non_null(strstr(cp_json_str(errors, "services.a.links"),
                           "recursive links: a -> b -> a"));
    json_decref(errors);
    /* a DNS name too long for the stack and grid */
    char body[512];
    char longname[64];
    memset(longname, 'x', 60);
    longname[60] = '\0';
    snprintf(body, sizeof(body),
             "{\"services\":[{\"name\":\"%s\",\"image\":\"busybox\"}]}",
             longname);
    assert_null(build(body, NULL, &errors));
    char key[128];
    snprintf(key, sizeof(key), "services.%s.name", longname);
    assert_non_null(json_object_get(errors, key));
    json_decref(errors);
}

static void test_build_update_rules(void **state)
{
    (void)state;
    json_t *errors;
    /* stateful cannot change on an existing service */
    json_t *cur = parse("{\"db\":{\"image\":\"busybox:latest\","
                        "\"stateful\":false}}");
    assert_null(build("{\"services\":[{\"name\":\"db\",\"image\":\"busybox\","
                      "\"stateful\":true}]}",
                      cur, &errors));
    assert_non_null(json_object_get(errors, "services.db.stateful"));
    json_decref(errors);
    /* a new service may be stateful */
    json_t *rev = build("{\"services\":[{\"name\":\"other\",\"image\":"
                        "\"busybox\",\"stateful\":true}]}",
                        cur, &errors);
    assert_non_null(rev);
    json_decref(rev);
    json_decref(errors);
    json_decref(cur);
}

static void test_external_links(void **state)
{
    (void)state;
    json_t *svcs = parse("[{\"name\":\"web\",\"links\":[{\"name\":\"db\"},"
                         "{\"name\":\"wp/db\"},{\"name\":\"other/api\"},"
                         "{\"name\":\"null/cache\"}]}]");
    json_t *existing = parse("{\"other/api\":true}");
    json_t *errors = json_object();
    assert_false(stacks_check_external_links(svcs, "wp", existing, errors));
    assert_string_equal(cp_json_str(errors, "services.web.links"),
                        "linked service null/cache does not exist");
    json_object_set_new(existing, "null/cache", json_true());
    json_object_clear(errors);
    assert_true(stacks_check_external_links(svcs, "wp", existing, errors));
    assert_int_equal(json_object_size(errors), 0);
    json_decref(errors);
    json_decref(existing);
    json_decref(svcs);
}

static void test_revision_differs(void **state)
{
    (void)state;
    json_t *errors;
    const char *body = "{\"stack\":\"u/s\",\"source\":\"x\",\"services\":"
                       "[{\"name\":\"a\",\"image\":\"busybox\"}]}";
    json_t *a = build(body, NULL, &errors);
    json_decref(errors);
    json_t *b = build(body, NULL, &errors);
    json_decref(errors);
    assert_false(stacks_revision_differs(a, b));
    /* key order and absent-vs-null do not count */
    json_t *c = json_deep_copy(a);
    json_object_del(c, "registry");
    assert_false(stacks_revision_differs(a, c));
    /* any stored field does */
    json_object_set_new(c, "source", json_string("y"));
    assert_true(stacks_revision_differs(a, c));
    json_decref(c);
    c = json_deep_copy(a);
    json_object_set_new(json_array_get(json_object_get(c, "services"), 0),
                        "instances", json_integer(3));
    assert_true(stacks_revision_differs(a, c));
    json_decref(c);
    c = json_deep_copy(a);
    json_object_set_new(json_object_get(c, "variables"), "v", json_true());
    assert_true(stacks_revision_differs(a, c));
    json_decref(c);
    json_decref(a);
    json_decref(b);
}

static void test_state(void **state)
{
    (void)state;
    const char *none[] = {NULL};
    assert_string_equal(stacks_state(none, 0, false), "initialized");
    const char *init[] = {"initialized", NULL};
    assert_string_equal(stacks_state(init, 2, true), "initialized");
    const char *run[] = {"running", "running"};
    assert_string_equal(stacks_state(run, 2, false), "running");
    assert_string_equal(stacks_state(run, 2, true), "deploying");
    const char *stop[] = {"stopped", "stopped"};
    assert_string_equal(stacks_state(stop, 2, false), "stopped");
    const char *mix[] = {"running", "stopped"};
    assert_string_equal(stacks_state(mix, 2, false), "partially_running");
    const char *half[] = {"running", "initialized"};
    assert_string_equal(stacks_state(half, 2, false), "partially_running");
}

static void test_revision_round_trip(void **state)
{
    (void)state;
    json_t *errors;
    json_t *rev = build("{\"stack\":\"u/s\",\"version\":\"2\",\"registry\":"
                        "\"file://\",\"source\":\"src\",\"expose\":\"a\","
                        "\"metadata\":{\"m\":1},\"variables\":{\"v\":\"x\"},"
                        "\"services\":[{\"name\":\"a\",\"image\":"
                        "\"busybox\"}]}",
                        NULL, &errors);
    json_decref(errors);
    struct store_stack_revision r = {0};
    stacks_revision_from_json(rev, &r);
    assert_string_equal(r.registry, "file://");
    json_t *back = stacks_revision_json(&r);
    assert_false(stacks_revision_differs(rev, back));
    json_decref(back);
    store_stack_revision_release(&r);
    json_decref(rev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_links_first),
        cmocka_unit_test(test_order_missing),
        cmocka_unit_test(test_order_cycles),
        cmocka_unit_test(test_build_good),
        cmocka_unit_test(test_build_errors),
        cmocka_unit_test(test_build_update_rules),
        cmocka_unit_test(test_external_links),
        cmocka_unit_test(test_revision_differs),
        cmocka_unit_test(test_state),
        cmocka_unit_test(test_revision_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
