/* Unit tests for the agent's node facts (src/agent/facts.c): the /proc
 * parsers and the /nodes/update and /nodes/stats payloads, from fixture
 * text. The /info fixture is Podman 4.3.1's compat output (trimmed).
 * SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../src/agent/engine.h"
#include "../../src/agent/facts.h"
#include "../../src/common/alloc.h"
#include "../../src/common/err.h"
#include "../../src/common/json.h"
#include "../../src/common/version.h"

#include <string.h>

static const char meminfo[] = "MemTotal:       24684084 kB\n"
                              "MemFree:        18017412 kB\n"
                              "MemAvailable:   22744420 kB\n"
                              "Buffers:          293016 kB\n"
                              "Cached:          4446876 kB\n"
                              "SwapCached:            0 kB\n"
                              "Active:          2318464 kB\n"
                              "Inactive:        3644092 kB\n"
                              "Active(anon):      1384 kB\n"
                              "HugePages_Total:       0\n";

static const char stat1[] = "cpu  50377 0 26621 202439 1075 0 5296 30 0 0\n"
                            "cpu0 20344 0 12775 106948 155 0 2657 13 0 0\n"
                            "cpu1 30032 0 13846 95491 919 0 2638 16 0 0\n"
                            "intr 123 4 5\n"
                            "ctxt 1234\n";
/* 1000 jiffies later: 200 user+nice, 100 system+irq+softirq, 650
 * idle+iowait, 50 steal. */
static const char stat2[] = "cpu  50527 50 26701 203069 1095 10 5306 80 0 0\n"
                            "cpu0 20344 0 12775 106948 155 0 2657 13 0 0\n"
                            "cpu1 30032 0 13846 95491 919 0 2638 16 0 0\n";

static const char netdev[] =
    "Inter-|   Receive                                                |  "
    "Transmit\n"
    " face |bytes    packets errs drop fifo frame compressed multicast|bytes"
    "    packets errs drop fifo colls carrier compressed\n"
    "    lo: 2537 14 0 0 0 0 0 0 2537 14 0 0 0 0 0 0\n"
    "  eth0: 1000 10 0 0 0 0 0 0 2000 20 0 0 0 0 0 0\n"
    "  eth1: 5 1 0 0 0 0 0 0 7 1 0 0 0 0 0 0\n"
    "weave: 300 3 0 0 0 0 0 0 400 4 0 0 0 0 0 0\n"
    "podman0: 30 3 0 0 0 0 0 0 40 4 0 0 0 0 0 0\n"
    "garbage line without numbers\n"
    "  bad0: 1 2 3\n";

static const char route[] =
    "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU"
    "\tWindow\tIRTT\n"
    "eth1\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
    "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n";

/* GET /v1.41/info from Podman 4.3.1 (engine/podman-engine.sh), trimmed. */
static const char podman_info[] =
    "{\"ID\":\"72e0d040-70ac-446e-a8f8-1701a39fa0f6\",\"Containers\":0,\"Co"
    "ntainersRunning\":0,\"Images\":1,\"Driver\":\"overlay\",\"DriverStatus"
    "\":[[\"Supports d_type\",\"true\"],[\"Native Overlay Diff\",\"true\"],"
    "[\"Using metacopy\",\"false\"],[\"Backing Filesystem\",\"extfs\"]],\"P"
    "lugins\":{\"Volume\":[\"local\"],\"Network\":[\"bridge\",\"macvlan\"],"
    "\"Authorization\":null,\"Log\":[\"k8s-file\",\"none\",\"passthrough\","
    "\"journald\"]},\"MemoryLimit\":true,\"SwapLimit\":true,\"CgroupDriver\""
    ":\"cgroupfs\",\"KernelVersion\":\"6.18.44-fc-v669\",\"OperatingSystem"
    "\":\"debian\",\"OSVersion\":\"12\",\"OSType\":\"linux\",\"Architecture"
    "\":\"amd64\",\"NCPU\":2,\"MemTotal\":25276502016,\"DockerRootDir\":\"/"
    "var/lib/containers/storage\",\"Name\":\"vm\",\"Labels\":null,\"ServerV"
    "ersion\":\"4.3.1\",\"DefaultRuntime\":\"runc\",\"SystemTime\":\"2026-1"
    "1-25T13:41:27.723151452Z\",\"LiveRestoreEnabled\":false,\"CgroupVersio"
    "n\":\"1\"}";

static const char podman_version[] =
    "{\"Platform\":{\"Name\":\"linux/amd64/debian-12\"},\"Components\":[{"
    "\"Name\":\"Podman Engine\",\"Version\":\"4.3.1\"}],\"Version\":\"4.3.1\","
    "\"ApiVersion\":\"1.41\",\"MinAPIVersion\":\"1.24\",\"Os\":\"linux\","
    "\"Arch\":\"amd64\",\"KernelVersion\":\"6.18.44-fc-v669\"}";

static json_t *parse(const char *text)
{
    char err[128];
    json_t *j = cp_json_parse(text, strlen(text), err, sizeof(err));
    if (j == NULL)
        fail_msg("fixture: %s", err);
    return j;
}

static void test_meminfo(void **state)
{
    (void)state;
    struct facts_mem m;
    assert_int_equal(facts_parse_meminfo(meminfo, &m), 0);
    assert_true(m.total == 24684084ull * 1024);
    assert_true(m.free == 18017412ull * 1024);
    assert_true(m.available == 22744420ull * 1024);
    assert_true(m.buffers == 293016ull * 1024);
    assert_true(m.cached == 4446876ull * 1024); /* not SwapCached */
    assert_true(m.active == 2318464ull * 1024); /* not Active(anon) */
    assert_true(m.inactive == 3644092ull * 1024);
    assert_int_equal(facts_parse_meminfo("", &m), CP_EINVAL);
    assert_int_equal(facts_parse_meminfo("MemTotal: 1 kB\n", &m), CP_EINVAL);
    assert_int_equal(facts_parse_meminfo("MemTotal: x kB\nMemFree: 1", &m),
                     CP_EINVAL);
}

static void test_loadavg(void **state)
{
    (void)state;
    double l[3];
    assert_int_equal(facts_parse_loadavg("0.52 1.58 10.59 1/389 12345\n", l),
                     0);
    assert_true(l[0] > 0.51 && l[0] < 0.53);
    assert_true(l[1] > 1.57 && l[1] < 1.59);
    assert_true(l[2] > 10.58 && l[2] < 10.60);
    assert_int_equal(facts_parse_loadavg("", l), CP_EINVAL);
    assert_int_equal(facts_parse_loadavg("0.1 x", l), CP_EINVAL);
}

static void test_cpu(void **state)
{
    (void)state;
    struct facts_cpu a, b;
    assert_int_equal(facts_parse_cpu(stat1, &a), 0);
    assert_int_equal(a.num_cores, 2);
    assert_true(a.user == 50377 && a.idle == 202439 && a.steal == 30);
    assert_int_equal(facts_parse_cpu(stat2, &b), 0);
    json_t *j = facts_cpu_json(&a, &b);
    assert_int_equal(cp_json_int(j, "num_cores", 0), 2);
    assert_true(json_real_value(json_object_get(j, "user")) == 20.0);
    assert_true(json_real_value(json_object_get(j, "system")) == 10.0);
    assert_true(json_real_value(json_object_get(j, "idle")) == 65.0);
    assert_true(json_real_value(json_object_get(j, "steal")) == 5.0);
    json_decref(j);
    /* No previous sample: all idle. Counters going backwards: no crash,
     * no negative numbers. */
    j = facts_cpu_json(NULL, &b);
    assert_true(json_real_value(json_object_get(j, "idle")) == 100.0);
    json_decref(j);
    j = facts_cpu_json(&b, &a);
    assert_true(json_real_value(json_object_get(j, "user")) >= 0.0);
    json_decref(j);
    assert_int_equal(facts_parse_cpu("intr 1\n", &a), CP_EINVAL);
    assert_int_equal(facts_parse_cpu("cpu 1 2\n", &a), CP_EINVAL);
}

static void test_network(void **state)
{
    (void)state;
    json_t *n = facts_network_json(netdev);
    json_t *in = json_object_get(n, "internal");
    json_t *ex = json_object_get(n, "external");
    assert_int_equal(json_array_size(json_object_get(ex, "interfaces")), 2);
    assert_string_equal(
        json_string_value(json_array_get(json_object_get(ex, "interfaces"), 0)),
        "eth0");
    assert_int_equal(cp_json_int(ex, "rx_bytes", 0), 1005);
    assert_int_equal(cp_json_int(ex, "tx_bytes", 0), 2007);
    assert_int_equal(json_array_size(json_object_get(in, "interfaces")), 2);
    assert_int_equal(cp_json_int(in, "rx_bytes", 0), 330);
    assert_int_equal(cp_json_int(in, "tx_bytes", 0), 440);
    json_decref(n);
    n = facts_network_json("");
    assert_int_equal(
        cp_json_int(json_object_get(n, "external"), "rx_bytes", -1), 0);
    json_decref(n);
    assert_true(facts_iface_is_internal("vethwe-bridge"));
    assert_true(facts_iface_is_internal("docker0"));
    assert_false(facts_iface_is_internal("eth0"));
    assert_false(facts_iface_is_internal("ens3"));
}

static void test_default_iface(void **state)
{
    (void)state;
    char iface[32];
    assert_true(facts_default_iface(route, iface, sizeof(iface)));
    assert_string_equal(iface, "eth0");
    assert_false(
        facts_default_iface("Iface\tDestination\n", iface, sizeof(iface)));
    assert_false(facts_default_iface("", iface, sizeof(iface)));
}

static void test_os_release(void **state)
{
    (void)state;
    char *s = facts_parse_os_release(
        "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 "
        "(bookworm)\"\nID=debian\n");
    assert_string_equal(s, "Debian GNU/Linux 12 (bookworm)");
    cp_free(s);
    s = facts_parse_os_release("PRETTY_NAME=Alpine\n");
    assert_string_equal(s, "Alpine");
    cp_free(s);
    assert_null(facts_parse_os_release("ID=x\n"));
    assert_null(facts_parse_os_release("PRETTY_NAME=\n"));
}

static void test_node_update_from_podman(void **state)
{
    (void)state;
    json_t *info = parse(podman_info);
    json_t *version = parse(podman_version);
    assert_true(engine_is_podman(version));
    assert_false(engine_is_podman(info));
    const char *labels[] = {"region=eu", "ssd"};
    struct facts_node node = {
        .name = "node-1",
        .public_ip = "203.0.113.5",
        .private_ip = "10.0.0.5",
        .labels = (char *const *)(uintptr_t)labels,
        .nlabels = 2,
        .has_labels = true,
        .kernel = "ignored",
        .os = "ignored",
    };
    json_t *p = facts_node_update(info, version, &node);
    /* Docker's keys pass through untouched. */
    assert_string_equal(cp_json_str(p, "ID"),
                        "72e0d040-70ac-446e-a8f8-1701a39fa0f6");
    assert_int_equal(cp_json_int(p, "NCPU", 0), 2);
    assert_true(cp_json_int(p, "MemTotal", 0) == 25276502016LL);
    assert_string_equal(cp_json_str(p, "KernelVersion"), "6.18.44-fc-v669");
    assert_string_equal(cp_json_str(p, "OperatingSystem"), "debian");
    assert_string_equal(cp_json_str(p, "Driver"), "overlay");
    assert_string_equal(cp_json_str(p, "DockerRootDir"),
                        "/var/lib/containers/storage");
    assert_string_equal(cp_json_str(p, "ServerVersion"), "4.3.1");
    /* Ours. */
    assert_string_equal(cp_json_str(p, "Name"), "node-1");
    assert_string_equal(cp_json_str(p, "PublicIp"), "203.0.113.5");
    assert_string_equal(cp_json_str(p, "PrivateIp"), "10.0.0.5");
    assert_string_equal(cp_json_str(p, "AgentVersion"), KONTENA_VERSION);
    json_t *l = json_object_get(p, "Labels");
    assert_int_equal(json_array_size(l), 2);
    assert_string_equal(json_string_value(json_array_get(l, 1)), "ssd");
    json_t *drivers = json_object_get(p, "Drivers");
    json_t *vol = json_object_get(drivers, "Volume");
    json_t *net = json_object_get(drivers, "Network");
    assert_int_equal(json_array_size(vol), 1);
    assert_string_equal(cp_json_str(json_array_get(vol, 0), "name"), "local");
    assert_true(cp_json_has(json_array_get(vol, 0), "version"));
    assert_int_equal(json_array_size(net), 2);
    assert_string_equal(cp_json_str(json_array_get(net, 1), "name"), "macvlan");
    /* The input is not modified. */
    assert_string_equal(cp_json_str(info, "Name"), "vm");
    assert_false(cp_json_has(info, "PublicIp"));
    json_decref(p);
    json_decref(info);
    json_decref(version);
}

/* A sparse /info (old engine, or a broken one) still yields a payload,
 * with the /version and /proc fallbacks filled in. */
static void test_node_update_sparse(void **state)
{
    (void)state;
    json_t *info = parse("{\"ID\":\"X\",\"Labels\":[\"a=b\"],"
                         "\"Plugins\":{\"Volume\":\"bad\"}}");
    json_t *version = parse(podman_version);
    struct facts_node node = {.name = "n", .kernel = "5.10", .os = "Deb"};
    json_t *p = facts_node_update(info, version, &node);
    assert_string_equal(cp_json_str(p, "ServerVersion"), "4.3.1");
    assert_string_equal(cp_json_str(p, "KernelVersion"), "6.18.44-fc-v669");
    assert_string_equal(cp_json_str(p, "OperatingSystem"), "Deb");
    assert_true(json_is_null(json_object_get(p, "PublicIp")));
    /* Engine labels are kept when the config has none. */
    assert_int_equal(json_array_size(json_object_get(p, "Labels")), 1);
    assert_int_equal(json_array_size(json_object_get(
                         json_object_get(p, "Drivers"), "Volume")),
                     0);
    json_decref(p);
    p = facts_node_update(NULL, NULL, &node);
    assert_string_equal(cp_json_str(p, "KernelVersion"), "5.10");
    assert_true(json_is_array(json_object_get(p, "Labels")));
    json_decref(p);
    json_decref(info);
    json_decref(version);
}

static void test_stats_payload(void **state)
{
    (void)state;
    struct facts_mem m;
    assert_int_equal(facts_parse_meminfo(meminfo, &m), 0);
    double load[3] = {0.5, 0.25, 0.125};
    struct facts_cpu a, b;
    facts_parse_cpu(stat1, &a);
    facts_parse_cpu(stat2, &b);
    struct facts_fs fs = {
        .name = "/var/lib/docker", .total = 1000, .free = 400, .used = 600};
    json_t *s = facts_stats(&m, load, &fs, facts_cpu_json(&a, &b),
                            facts_network_json(netdev), 1764075600123LL);
    json_t *mem = json_object_get(s, "memory");
    assert_true(cp_json_int(mem, "total", 0) == 24684084LL * 1024);
    assert_true(cp_json_int(mem, "used", 0) ==
                (24684084LL - 18017412 - 293016 - 4446876) * 1024);
    assert_true(cp_json_has(mem, "active") && cp_json_has(mem, "inactive") &&
                cp_json_has(mem, "cached") && cp_json_has(mem, "buffers") &&
                cp_json_has(mem, "free"));
    json_t *l = json_object_get(s, "load");
    assert_true(json_real_value(json_object_get(l, "1m")) == 0.5);
    assert_true(json_real_value(json_object_get(l, "15m")) == 0.125);
    json_t *f = json_array_get(json_object_get(s, "filesystem"), 0);
    assert_string_equal(cp_json_str(f, "name"), "/var/lib/docker");
    assert_int_equal(cp_json_int(f, "used", 0), 600);
    assert_int_equal(
        cp_json_int(json_object_get(s, "usage"), "container_seconds", -1), 0);
    assert_int_equal(cp_json_int(json_object_get(s, "cpu"), "num_cores", 0), 2);
    assert_non_null(json_object_get(json_object_get(s, "network"), "external"));
    assert_string_equal(cp_json_str(s, "time"), "2025-11-25T13:00:00.123Z");
    json_decref(s);
    s = facts_stats(&m, load, NULL, facts_cpu_json(NULL, &b),
                    facts_network_json(""), 0);
    assert_int_equal(json_array_size(json_object_get(s, "filesystem")), 0);
    json_decref(s);
}

static void test_stable_id(void **state)
{
    (void)state;
    char a[FACTS_ID_LEN], b[FACTS_ID_LEN], c[FACTS_ID_LEN];
    facts_stable_id("machine|/var/lib/kn1/storage", a);
    facts_stable_id("machine|/var/lib/kn1/storage", b);
    facts_stable_id("machine|/var/lib/kn2/storage", c);
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
    /* Docker's format: 12 groups of 4 [A-Z0-9] joined by ':'. */
    assert_int_equal(strlen(a), 59);
    for (size_t i = 0; i < 59; i++) {
        if (i % 5 == 4)
            assert_int_equal(a[i], ':');
        else
            assert_true((a[i] >= '0' && a[i] <= '9') ||
                        (a[i] >= 'A' && a[i] <= 'F'));
    }
}

/* The live sampler works on this machine's /proc. */
static void test_sample_live(void **state)
{
    (void)state;
    struct facts_sampler s = {0};
    json_t *j = facts_sample(&s, "/");
    assert_non_null(j);
    assert_true(s.has_prev);
    assert_int_equal(json_array_size(json_object_get(j, "filesystem")), 1);
    assert_true(cp_json_int(json_object_get(j, "memory"), "total", 0) > 0);
    json_decref(j);
    j = facts_sample(&s, "/nonexistent-dir");
    assert_int_equal(json_array_size(json_object_get(j, "filesystem")), 0);
    json_decref(j);
}

static void test_engine_error_text(void **state)
{
    (void)state;
    char out[128];
    const char *podman = "{\"cause\":\"no such container\",\"message\":"
                         "\"no container with name or ID x\",\"response\":"
                         "404}";
    engine_error_text(podman, strlen(podman), out, sizeof(out));
    assert_string_equal(out, "no container with name or ID x");
    engine_error_text("plain text\nmore", 15, out, sizeof(out));
    assert_string_equal(out, "plain text");
    engine_error_text(NULL, 0, out, sizeof(out));
    assert_string_equal(out, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_meminfo),
        cmocka_unit_test(test_loadavg),
        cmocka_unit_test(test_cpu),
        cmocka_unit_test(test_network),
        cmocka_unit_test(test_default_iface),
        cmocka_unit_test(test_os_release),
        cmocka_unit_test(test_node_update_from_podman),
        cmocka_unit_test(test_node_update_sparse),
        cmocka_unit_test(test_stats_payload),
        cmocka_unit_test(test_stable_id),
        cmocka_unit_test(test_sample_live),
        cmocka_unit_test(test_engine_error_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
