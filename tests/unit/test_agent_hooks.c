/* Unit tests for service hooks on the agent: parsing the pod's hooks
 * (src/agent/pods.c), the instances filter and hook selection, and the
 * pure helpers of src/agent/hooks.c.
 * SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../src/agent/hooks.h"
#include "../../src/agent/pods.h"
#include "../../src/common/alloc.h"
#include "../../src/common/err.h"
#include "../../src/common/json.h"

#include <stdio.h>
#include <string.h>

static int parse_pod(const char *hooks, int n, struct pod *p, char *err,
                     size_t errlen)
{
    char *text = cp_asprintf(
        "{\"id\":\"5a1/%d\",\"desired_state\":\"running\","
        "\"service_id\":\"5a1\",\"service_name\":\"web\","
        "\"instance_number\":%d,\"image_name\":\"busybox\",\"hooks\":%s}",
        n, n, hooks);
    json_t *o = cp_json_parse(text, strlen(text), NULL, 0);
    assert_non_null(o);
    int rc = pods_parse(o, p, err, errlen);
    json_decref(o);
    cp_free(text);
    return rc;
}

static void test_parse_hooks(void **state)
{
    (void)state;
    struct pod p;
    char err[256];
    assert_int_equal(
        parse_pod("[{\"id\":\"migrate\",\"type\":\"pre_start\",\"cmd\":"
                  "\"rake db:migrate\",\"oneshot\":true,\"instances\":[\"1\"]},"
                  "{\"id\":\"mark\",\"type\":\"post_start\",\"cmd\":\"touch "
                  "/x\",\"oneshot\":false},"
                  "{\"id\":\"bye\",\"type\":\"pre_stop\",\"cmd\":\"true\","
                  "\"instances\":\"*\"}]",
                  2, &p, err, sizeof(err)),
        0);
    assert_int_equal(p.nhooks, 3);
    assert_string_equal(p.hooks[0].name, "migrate");
    assert_int_equal(p.hooks[0].type, POD_HOOK_PRE_START);
    assert_string_equal(p.hooks[0].cmd, "rake db:migrate");
    assert_true(p.hooks[0].is_oneshot);
    assert_false(p.hooks[0].is_all_instances);
    assert_int_equal(p.hooks[0].ninstances, 1);
    assert_int_equal(p.hooks[0].instances[0], 1);
    assert_int_equal(p.hooks[1].type, POD_HOOK_POST_START);
    assert_true(p.hooks[1].is_all_instances);
    assert_true(p.hooks[2].is_all_instances);
    assert_string_equal(pods_hook_type_name(p.hooks[2].type), "pre_stop");
    pod_release(&p);

    assert_int_equal(parse_pod("[{\"id\":\"x\",\"type\":\"post_stop\","
                               "\"cmd\":\"true\"}]",
                               1, &p, err, sizeof(err)),
                     CP_EINVAL);
    assert_non_null(strstr(err, "hooks[0].type"));
    assert_int_equal(parse_pod("[{\"id\":\"x\",\"type\":\"pre_start\"}]", 1, &p,
                               err, sizeof(err)),
                     CP_EINVAL);
    assert_non_null(strstr(err, "hooks[0].cmd"));
    assert_int_equal(parse_pod("[{\"id\":\"x\",\"type\":\"pre_start\","
                               "\"cmd\":\"true\",\"instances\":\"1,x\"}]",
                               1, &p, err, sizeof(err)),
                     CP_EINVAL);
    assert_int_equal(parse_pod("{}", 1, &p, err, sizeof(err)), CP_EINVAL);
}

static void test_instances_filter(void **state)
{
    (void)state;
    static const char hooks[] =
        "[{\"id\":\"a\",\"type\":\"pre_start\",\"cmd\":\"true\","
        "\"instances\":\"1, 3\"},"
        "{\"id\":\"b\",\"type\":\"pre_start\",\"cmd\":\"true\","
        "\"instances\":[2,\"4\"]},"
        "{\"id\":\"c\",\"type\":\"post_start\",\"cmd\":\"true\","
        "\"instances\":[\"*\"]}]";
    struct pod p;
    char err[256];
    for (int n = 1; n <= 5; n++) {
        assert_int_equal(parse_pod(hooks, n, &p, err, sizeof(err)), 0);
        assert_int_equal(pods_hook_runs(&p, 0, POD_HOOK_PRE_START),
                         n == 1 || n == 3);
        assert_int_equal(pods_hook_runs(&p, 1, POD_HOOK_PRE_START),
                         n == 2 || n == 4);
        assert_false(pods_hook_runs(&p, 0, POD_HOOK_POST_START));
        assert_true(pods_hook_runs(&p, 2, POD_HOOK_POST_START));
        assert_false(pods_hook_runs(&p, 3, POD_HOOK_POST_START));
        assert_true(hooks_any(&p, POD_HOOK_POST_START));
        assert_int_equal(hooks_any(&p, POD_HOOK_PRE_START), n != 5);
        assert_false(hooks_any(&p, POD_HOOK_PRE_STOP));
        pod_release(&p);
    }
}

static void test_container_name(void **state)
{
    (void)state;
    char *n = hooks_container_name("shop.web-2", "db migrate/1");
    assert_string_equal(n, "shop.web-2-pre-start-db-migrate-1");
    cp_free(n);
}

static void test_timeout(void **state)
{
    (void)state;
    assert_int_equal(hooks_timeout_s(NULL), HOOKS_TIMEOUT_S);
    assert_int_equal(hooks_timeout_s(""), HOOKS_TIMEOUT_S);
    assert_int_equal(hooks_timeout_s("abc"), HOOKS_TIMEOUT_S);
    assert_int_equal(hooks_timeout_s("0"), HOOKS_TIMEOUT_S);
    assert_int_equal(hooks_timeout_s("30"), 30);
    assert_int_equal(hooks_timeout_s("999999"), HOOKS_TIMEOUT_S);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_hooks),
        cmocka_unit_test(test_instances_filter),
        cmocka_unit_test(test_container_name),
        cmocka_unit_test(test_timeout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
