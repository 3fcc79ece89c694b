/* Unit tests of the service pod view (src/master/pods_view.c, spec 4.5):
 * the pod of a stack and of a null-stack service, volumes, hooks, env,
 * labels, durations, and that the agent's own parser accepts the result.
 * SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../src/common/alloc.h"
#include "../../src/common/json.h"
#include "../../src/master/pods_view.h"
#include "../../src/agent/pods.h"

#include <string.h>

#define SID "0123456789abcdef01234567"

static json_t *spec_of(const char *text)
{
    json_t *j = cp_json_parse(text, strlen(text), NULL, 0);
    assert_non_null(j);
    return j;
}

static json_t *pod_for(const char *stack, const char *spec_text, int n,
                       const char *desired)
{
    struct store_service svc = {
        .id = SID,
        .stack_name = (char *)(uintptr_t)stack,
        .name = (char *)(uintptr_t) "web",
        .spec = spec_of(spec_text),
        .revision = 7,
        .updated_at = 1700000000000LL,
    };
    struct store_instance in = {
        .instance_number = n,
        .desired_state = (char *)(uintptr_t)desired,
        .deploy_rev = (char *)(uintptr_t) "2026-01-02 03:04:05",
    };
    struct store_grid g = {.name = (char *)(uintptr_t) "prod"};
    struct store_node node = {.name = (char *)(uintptr_t) "node-1"};
    json_t *p = pods_view_pod(&svc, &in, &g, &node);
    json_decref(svc.spec);
    return p;
}

static bool env_has(const json_t *pod, const char *kv)
{
    size_t i;
    const json_t *e;
    json_array_foreach(json_object_get(pod, "env"), i, e)
    {
        if (strcmp(json_string_value(e), kv) == 0)
            return true;
    }
    return false;
}

static void test_stack_pod(void **state)
{
    (void)state;
    json_t *p = pod_for(
        "wp",
        "{\"image\":\"nginx:1.13\",\"stateful\":true,\"cmd\":[\"nginx\"],"
        "\"env\":[\"FOO=bar\"],\"memory\":268435456,\"cpus\":0.5,"
        "\"cpu_shares\":512,\"ports\":[{\"node_port\":80,"
        "\"container_port\":8080}],\"volumes\":[\"/data\","
        "\"/host/path:/cont/path:ro\",\"myvol:/var/lib/x\"],"
        "\"volumes_from\":[\"data-%s\"],\"log_opts\":{\"max-size\":\"10m\","
        "\"max-file\":3},\"deploy_opts\":{\"wait_for_port\":80},"
        "\"stop_grace_period\":\"1m30s\",\"stop_signal\":\"SIGQUIT\","
        "\"health_check\":{\"protocol\":\"http\",\"port\":80,"
        "\"uri\":\"/health\"}}",
        2, "running");
    assert_string_equal(cp_json_str(p, "id"), SID "/2");
    assert_string_equal(cp_json_str(p, "service_name"), "wp.web");
    assert_string_equal(cp_json_str(p, "hostname"), "web-2");
    assert_string_equal(cp_json_str(p, "domainname"), "wp.prod.kontena.local");
    assert_string_equal(cp_json_str(p, "desired_state"), "running");
    assert_string_equal(cp_json_str(p, "deploy_rev"), "2026-01-02 03:04:05");
    assert_int_equal(cp_json_int(p, "service_revision", 0), 7);
    assert_true(cp_json_bool(p, "stateful", false));
    assert_true(json_is_null(json_object_get(p, "image_credentials")));
    assert_int_equal(cp_json_int(p, "stop_grace_period", 0), 90);
    assert_int_equal(cp_json_int(p, "wait_for_port", 0), 80);
    assert_true(env_has(p, "FOO=bar"));
    assert_true(env_has(p, "KONTENA_SERVICE_ID=" SID));
    assert_true(env_has(p, "KONTENA_SERVICE_NAME=web"));
    assert_true(env_has(p, "KONTENA_GRID_NAME=prod"));
    assert_true(env_has(p, "KONTENA_PLATFORM_NAME=prod"));
    assert_true(env_has(p, "KONTENA_STACK_NAME=wp"));
    assert_true(env_has(p, "KONTENA_NODE_NAME=node-1"));
    assert_true(env_has(p, "KONTENA_SERVICE_INSTANCE_NUMBER=2"));
    json_t *vols = json_object_get(p, "volumes");
    assert_int_equal(json_array_size(vols), 3);
    assert_string_equal(cp_json_str(json_array_get(vols, 0), "path"), "/data");
    assert_null(cp_json_str(json_array_get(vols, 0), "name"));
    assert_string_equal(cp_json_str(json_array_get(vols, 1), "bind_mount"),
                        "/host/path");
    assert_string_equal(cp_json_str(json_array_get(vols, 1), "flags"), "ro");
    assert_string_equal(cp_json_str(json_array_get(vols, 2), "name"), "myvol");
    assert_string_equal(json_string_value(json_array_get(
                            json_object_get(p, "volumes_from"), 0)),
                        "data-2");
    json_t *l = json_object_get(p, "labels");
    assert_string_equal(cp_json_str(l, "io.kontena.service.id"), SID);
    assert_string_equal(cp_json_str(l, "io.kontena.stack.name"), "wp");
    assert_string_equal(cp_json_str(l, "io.kontena.grid.name"), "prod");
    assert_string_equal(cp_json_str(l, "io.kontena.health_check.port"), "80");
    assert_string_equal(cp_json_str(l, "io.kontena.health_check.uri"),
                        "/health");
    assert_string_equal(cp_json_str(l, "io.kontena.health_check.interval"),
                        "60");
    json_t *port = json_array_get(json_object_get(p, "ports"), 0);
    assert_string_equal(cp_json_str(port, "protocol"), "tcp");
    assert_int_equal(cp_json_int(port, "node_port", 0), 80);
    assert_string_equal(cp_json_str(json_object_get(p, "log_opts"), "max-file"),
                        "3");

    /* The agent's parser must take it whole. */
    struct pod parsed;
    char err[256] = "";
    assert_int_equal(pods_parse(p, &parsed, err, sizeof(err)), 0);
    assert_int_equal(parsed.instance_number, 2);
    pod_release(&parsed);
    json_decref(p);
}

static void test_null_stack_pod(void **state)
{
    (void)state;
    json_t *p = pod_for("null", "{\"image\":\"redis\"}", 1, "stopped");
    assert_string_equal(cp_json_str(p, "service_name"), "web");
    assert_string_equal(cp_json_str(p, "domainname"), "prod.kontena.local");
    assert_string_equal(cp_json_str(p, "desired_state"), "stopped");
    assert_string_equal(cp_json_str(p, "net"), "bridge");
    assert_true(json_is_null(json_object_get(p, "cmd")));
    assert_int_equal(json_array_size(json_object_get(p, "secrets")), 0);
    assert_int_equal(json_array_size(json_object_get(p, "networks")), 0);
    assert_true(env_has(p, "KONTENA_STACK_NAME=null"));
    assert_null(cp_json_str(json_object_get(p, "labels"),
                            "io.kontena.health_check.protocol"));
    struct pod parsed;
    char err[256] = "";
    assert_int_equal(pods_parse(p, &parsed, err, sizeof(err)), 0);
    pod_release(&parsed);
    json_decref(p);
}

static void test_hooks(void **state)
{
    (void)state;
    const char *spec =
        "{\"image\":\"x\",\"hooks\":{\"pre_start\":[{\"name\":\"migrate\","
        "\"cmd\":\"rake db:migrate\",\"instances\":\"1\",\"oneshot\":true}],"
        "\"post_start\":[{\"name\":\"all\",\"cmd\":\"echo\","
        "\"instances\":\"*\"},{\"name\":\"two\",\"cmd\":\"echo 2\","
        "\"instances\":[2,3]}]}}";
    json_t *p1 = pod_for("s", spec, 1, "running");
    json_t *p2 = pod_for("s", spec, 2, "running");
    assert_int_equal(json_array_size(json_object_get(p1, "hooks")), 2);
    assert_int_equal(json_array_size(json_object_get(p2, "hooks")), 2);
    json_t *h = json_array_get(json_object_get(p1, "hooks"), 0);
    assert_string_equal(cp_json_str(h, "type"), "pre_start");
    assert_string_equal(cp_json_str(h, "id"), "migrate");
    assert_true(cp_json_bool(h, "oneshot", false));
    json_decref(p1);
    json_decref(p2);

    /* A oneshot hook already done for the instance is left out; the list
     * form of the API view works too. */
    json_t *p = pod_for("s",
                        "{\"image\":\"x\",\"hooks\":[{\"name\":\"m\","
                        "\"type\":\"pre_start\",\"cmd\":\"c\","
                        "\"oneshot\":true,\"done\":[\"1\"]}]}",
                        1, "running");
    assert_int_equal(json_array_size(json_object_get(p, "hooks")), 0);
    json_decref(p);
}

static void test_bad_spec_fields(void **state)
{
    (void)state;
    /* Wrong types never crash and come out as null or defaults. */
    json_t *p = pod_for("s",
                        "{\"image\":\"x\",\"cmd\":5,\"memory\":\"lots\","
                        "\"ports\":[\"junk\",{\"container_port\":\"80\"}],"
                        "\"volumes\":[7,\"a:b:c:d\"],\"env\":\"X=1\","
                        "\"hooks\":5,\"health_check\":{\"protocol\":1},"
                        "\"stop_grace_period\":\"soon\"}",
                        1, NULL);
    assert_true(json_is_null(json_object_get(p, "cmd")));
    assert_true(json_is_null(json_object_get(p, "memory")));
    assert_int_equal(json_array_size(json_object_get(p, "ports")), 0);
    assert_int_equal(json_array_size(json_object_get(p, "volumes")), 0);
    assert_true(json_is_null(json_object_get(p, "stop_grace_period")));
    assert_string_equal(cp_json_str(p, "desired_state"), "running");
    json_decref(p);
}

static void test_duration(void **state)
{
    (void)state;
    json_t *v;
    struct {
        const char *text;
        long long want;
    } cases[] = {{"\"30s\"", 30},   {"\"2m\"", 120}, {"\"1m30s\"", 90},
                 {"\"1h\"", 3600},  {"\"45\"", 45},  {"10", 10},
                 {"\"1500ms\"", 1}, {"\"x\"", -1},   {"\"\"", -1},
                 {"-5", -1},        {"null", -1}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        v = json_loads(cases[i].text, JSON_DECODE_ANY, NULL);
        assert_int_equal(pods_view_duration(v), cases[i].want);
        json_decref(v);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stack_pod),
        cmocka_unit_test(test_null_stack_pod),
        cmocka_unit_test(test_hooks),
        cmocka_unit_test(test_bad_spec_fields),
        cmocka_unit_test(test_duration),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
