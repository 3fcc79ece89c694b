/* Unit tests for the agent's pure reconcile step (src/agent/pods.c):
 * service pod parsing, container names, the create body, engine
 * container reduction, and every diff rule including the crash backoff
 * and level-triggered convergence.
 * SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../src/agent/pods.h"
#include "../../src/common/alloc.h"
#include "../../src/common/err.h"
#include "../../src/common/json.h"

#include <stdio.h>
#include <string.h>

/* A full pod as /node_service_pods/list sends it (trimmed of fields the
 * agent ignores). */
static const char good_pod[] =
    "{\"id\":\"5a1/2\",\"desired_state\":\"running\",\"service_id\":\"5a1\","
    "\"service_name\":\"shop.web\",\"service_revision\":3,"
    "\"updated_at\":\"2026-11-25T12:00:00Z\",\"instance_number\":2,"
    "\"image_name\":\"busybox:latest\",\"image_credentials\":null,"
    "\"deploy_rev\":\"2026-11-25 12:00:00 UTC\",\"stateful\":true,"
    "\"user\":\"nobody\",\"cmd\":[\"httpd\",\"-f\",\"-p\",\"8080\"],"
    "\"entrypoint\":\"/bin/sh\",\"memory\":67108864,"
    "\"memory_swap\":134217728,\"shm_size\":null,\"cpu_shares\":512,"
    "\"cpus\":1.5,\"privileged\":false,\"cap_add\":[\"NET_ADMIN\"],"
    "\"cap_drop\":[\"MKNOD\"],\"devices\":[],"
    "\"ports\":[{\"ip\":\"0.0.0.0\",\"protocol\":\"tcp\",\"node_port\":18080,"
    "\"container_port\":8080},{\"ip\":\"127.0.0.1\",\"protocol\":\"tcp\","
    "\"node_port\":18081,\"container_port\":8080},"
    "{\"protocol\":\"udp\",\"node_port\":5353,\"container_port\":53}],"
    "\"volumes\":[{\"bind_mount\":\"/var/log\",\"path\":\"/host-log\","
    "\"flags\":\"ro\"},{\"name\":\"shop.data\",\"path\":\"/data\","
    "\"flags\":null,\"driver\":\"local\",\"driver_opts\":{}},"
    "{\"bind_mount\":null,\"name\":null,\"path\":\"/cache\"}],"
    "\"volumes_from\":[],\"net\":\"bridge\",\"hostname\":\"web-2\","
    "\"domainname\":\"shop.test.kontena.local\",\"exposed\":null,"
    "\"log_driver\":\"json-file\",\"log_opts\":{\"max-size\":\"10m\"},"
    "\"pid\":null,\"wait_for_port\":8080,\"stop_signal\":\"SIGQUIT\","
    "\"stop_grace_period\":20,"
    "\"env\":[\"A=1\",\"KONTENA_SERVICE_ID=5a1\","
    "\"KONTENA_SERVICE_INSTANCE_NUMBER=2\"],"
    "\"secrets\":[{\"name\":\"PASS\",\"type\":\"env\",\"value\":\"one\"},"
    "{\"name\":\"TOKEN\",\"type\":\"env\",\"value\":\"t\"},"
    "{\"name\":\"PASS\",\"type\":\"env\",\"value\":\"two\"}],"
    "\"labels\":{\"io.kontena.service.id\":\"5a1\","
    "\"io.kontena.service.name\":\"web\",\"io.kontena.stack.name\":\"shop\","
    "\"io.kontena.grid.name\":\"test\","
    "\"io.kontena.load_balancer.name\":\"lb\","
    "\"io.kontena.load_balancer.internal_port\":\"8080\","
    "\"io.kontena.health_check.protocol\":\"http\","
    "\"io.kontena.health_check.port\":\"8080\","
    "\"io.kontena.health_check.uri\":\"/health\","
    "\"io.kontena.health_check.interval\":\"30\"},"
    "\"hooks\":[],\"networks\":[],\"read_only\":true}";

static json_t *load(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &e);
    if (j == NULL)
        fail_msg("bad fixture: %s at %d", e.text, e.position);
    return j;
}

/* ==== Parsing ==== */

static void test_parse_good(void **state)
{
    (void)state;
    json_t *j = load(good_pod);
    struct pod p;
    char err[200] = "";
    assert_int_equal(pods_parse(j, &p, err, sizeof(err)), 0);
    assert_string_equal(p.id, "5a1/2");
    assert_int_equal(p.desired, POD_RUNNING);
    assert_string_equal(p.service_id, "5a1");
    assert_string_equal(p.service_name, "shop.web");
    assert_int_equal(p.service_revision, 3);
    assert_int_equal(p.instance_number, 2);
    assert_string_equal(p.image_name, "busybox:latest");
    assert_string_equal(p.deploy_rev, "2026-11-25 12:00:00 UTC");
    assert_true(p.is_stateful);
    assert_int_equal(p.cmd.n, 4);
    assert_string_equal(p.cmd.v[3], "8080");
    assert_int_equal(p.entrypoint.n, 1);
    assert_string_equal(p.entrypoint.v[0], "/bin/sh");
    assert_int_equal(p.env.n, 3);
    assert_int_equal(p.nsecrets, 2);
    assert_string_equal(p.secrets[0].key, "PASS");
    assert_string_equal(p.secrets[0].value, "one\ntwo");
    assert_string_equal(p.secrets[1].value, "t");
    assert_int_equal(p.nports, 3);
    assert_string_equal(p.ports[2].ip, "0.0.0.0");
    assert_string_equal(p.ports[2].protocol, "udp");
    assert_int_equal(p.ports[2].container_port, 53);
    assert_int_equal(p.nvolumes, 3);
    assert_string_equal(p.volumes[0].bind_mount, "/var/log");
    assert_string_equal(p.volumes[1].name, "shop.data");
    assert_null(p.volumes[1].flags);
    assert_null(p.volumes[2].bind_mount);
    assert_null(p.volumes[2].name);
    assert_string_equal(p.net, "bridge");
    assert_string_equal(p.hostname, "web-2");
    assert_string_equal(p.user, "nobody");
    assert_int_equal(p.memory, 67108864);
    assert_int_equal(p.memory_swap, 134217728);
    assert_int_equal(p.cpu_shares, 512);
    assert_true(p.cpus > 1.49 && p.cpus < 1.51);
    assert_false(p.is_privileged);
    assert_string_equal(p.cap_add.v[0], "NET_ADMIN");
    assert_string_equal(p.cap_drop.v[0], "MKNOD");
    assert_string_equal(p.log_driver, "json-file");
    assert_int_equal(p.nlog_opts, 1);
    assert_string_equal(p.stop_signal, "SIGQUIT");
    assert_int_equal(p.stop_grace_period, 20);
    assert_int_equal(p.wait_for_port, 8080);
    assert_int_equal(p.nlabels, 10);
    assert_string_equal(p.health.protocol, "http");
    assert_string_equal(p.health.uri, "/health");
    assert_int_equal(p.health.port, 8080);
    assert_int_equal(p.health.interval_s, 30);
    assert_int_equal(p.health.timeout_s, 10);
    assert_true(p.is_read_only);
    pod_release(&p);
    pod_release(&p); /* released pods can be released again */
    json_decref(j);
}

static void test_parse_minimal(void **state)
{
    (void)state;
    json_t *j = load("{\"id\":\"s/1\",\"desired_state\":\"stopped\","
                     "\"service_id\":\"s\",\"service_name\":\"web\","
                     "\"instance_number\":1,\"image_name\":\"busybox\","
                     "\"cmd\":null,\"secrets\":null,\"labels\":null}");
    struct pod p;
    assert_int_equal(pods_parse(j, &p, NULL, 0), 0);
    assert_int_equal(p.desired, POD_STOPPED);
    assert_null(p.cmd.v);
    assert_null(p.deploy_rev);
    assert_int_equal(p.stop_grace_period, -1);
    assert_null(p.health.protocol);
    pod_release(&p);
    json_decref(j);
}

/* Each row replaces one member of the good pod with a bad value (NULL
 * deletes it) and names the error it must give. */
static const struct {
    const char *key, *value, *want;
} bad_cases[] = {
    {"id", "\"5a1/3\"", "id: not <service_id>/<instance_number>"},
    {"id", NULL, "id: missing"},
    {"desired_state", "\"gone\"", "desired_state: not one of"},
    {"desired_state", "1", "desired_state: missing"},
    {"service_id", "null", "service_id: missing"},
    {"service_name", "\"\"", "service_name: missing"},
    {"service_revision", "\"3\"", "service_revision: not an integer"},
    {"instance_number", "\"2\"", "instance_number: not an integer"},
    {"instance_number", "0", "instance_number: not an integer in 1.."},
    {"image_name", "5", "image_name: not a string"},
    {"deploy_rev", "{}", "deploy_rev: not a string"},
    {"stateful", "\"yes\"", "stateful: not a boolean"},
    {"cmd", "[\"a\",1]", "cmd: not an array of strings"},
    {"entrypoint", "7", "entrypoint: not an array of strings"},
    {"env", "\"A=1\"", "env: not an array of strings"},
    {"secrets", "{}", "secrets: not an array"},
    {"secrets", "[{\"value\":\"x\"}]", "secrets[0].name: missing"},
    {"secrets", "[{\"name\":\"A\",\"value\":3}]", "secrets[0].value"},
    {"ports", "[1]", "ports[0]: not an object"},
    {"ports", "[{\"container_port\":80},{\"container_port\":0}]",
     "ports[1].container_port: not an integer in 1..65535"},
    {"ports", "[{\"node_port\":80}]", "ports[0].container_port: missing"},
    {"ports", "[{\"container_port\":80,\"node_port\":70000}]",
     "ports[0].node_port"},
    {"ports", "[{\"container_port\":80,\"protocol\":\"sctp\"}]",
     "ports[0].protocol: not tcp or udp"},
    {"volumes", "[{\"path\":\"data\"}]",
     "volumes[0].path: not an absolute path"},
    {"volumes", "[{\"bind_mount\":\"/a\"}]", "volumes[0].path: missing"},
    {"volumes", "[{\"bind_mount\":\"/a\",\"name\":\"v\",\"path\":\"/d\"}]",
     "volumes[0].name: given together with bind_mount"},
    {"net", "[]", "net: not a string"},
    {"memory", "-5", "memory: not an integer"},
    {"memory_swap", "-2", "memory_swap: not an integer"},
    {"cpu_shares", "1.5", "cpu_shares: not an integer"},
    {"cpus", "\"1\"", "cpus: not a number"},
    {"privileged", "1", "privileged: not a boolean"},
    {"cap_add", "\"NET_ADMIN\"", "cap_add: not an array of strings"},
    {"log_opts", "[]", "log_opts: not an object"},
    {"log_opts", "{\"max-size\":10}", "log_opts.max-size: not a string"},
    {"stop_grace_period", "\"10s\"", "stop_grace_period: not seconds"},
    {"wait_for_port", "-1", "wait_for_port: not an integer"},
    {"labels", "{\"io.kontena.service.id\":1}",
     "labels.io.kontena.service.id: not a string"},
    {"labels", "{\"io.kontena.health_check.protocol\":\"udp\"}",
     "labels.io.kontena.health_check.protocol: not http or tcp"},
    {"labels",
     "{\"io.kontena.health_check.protocol\":\"tcp\","
     "\"io.kontena.health_check.port\":\"x\"}",
     "labels.io.kontena.health_check.port: not a number"},
    {"labels", "{\"io.kontena.health_check.protocol\":\"tcp\"}",
     "labels.io.kontena.health_check.port: missing"},
    {"read_only", "\"no\"", "read_only: not a boolean"},
};

static void test_parse_bad(void **state)
{
    (void)state;
    for (size_t i = 0; i < CP_ARRAY_LEN(bad_cases); i++) {
        json_t *j = load(good_pod);
        if (bad_cases[i].value == NULL)
            json_object_del(j, bad_cases[i].key);
        else
            json_object_set_new(j, bad_cases[i].key, load(bad_cases[i].value));
        struct pod p;
        char err[200] = "";
        int rc = pods_parse(j, &p, err, sizeof(err));
        if (rc != CP_EINVAL || strstr(err, bad_cases[i].want) == NULL)
            fail_msg("case %zu (%s): rc %d, err \"%s\", want \"%s\"", i,
                     bad_cases[i].key, rc, err, bad_cases[i].want);
        assert_null(p.id); /* nothing left to free */
        json_decref(j);
    }
    json_t *arr = load("[1]");
    struct pod p;
    char err[200] = "";
    assert_int_equal(pods_parse(arr, &p, err, sizeof(err)), CP_EINVAL);
    assert_string_equal(err, "service_pod: not an object");
    json_decref(arr);
}

static void test_parse_list(void **state)
{
    (void)state;
    json_t *res = json_object();
    json_t *arr = json_array();
    json_object_set_new(res, "service_pods", arr);
    json_array_append_new(arr, load(good_pod));
    struct pod *pods;
    size_t n;
    char err[200] = "";
    assert_int_equal(pods_parse_list(res, &pods, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 1);
    pods_free_list(pods, n);

    /* One bad pod rejects the whole list: the previous list stays. */
    json_t *bad = load(good_pod);
    json_object_set_new(bad, "ports", load("[{\"container_port\":\"x\"}]"));
    json_array_append_new(arr, bad);
    assert_int_equal(pods_parse_list(res, &pods, &n, err, sizeof(err)),
                     CP_EINVAL);
    assert_null(pods);
    assert_int_equal(n, 0);
    assert_string_equal(err, "service_pods[1].ports[0].container_port: not "
                             "an integer in 1..65535");
    json_decref(res);

    res = load("{\"service_pods\":{}}");
    assert_int_equal(pods_parse_list(res, &pods, &n, err, sizeof(err)),
                     CP_EINVAL);
    json_decref(res);
}

/* ==== Helpers for building pods and containers ==== */

static struct pod mkpod(const char *service_name, int n, const char *desired,
                        long long rev, const char *deploy_rev)
{
    char id[64];
    snprintf(id, sizeof(id), "id-%s/%d", service_name, n);
    json_t *j = json_object();
    cp_json_set_str(j, "id", id);
    id[strlen(id) - 2] = '\0';
    cp_json_set_str(j, "service_id", id);
    cp_json_set_str(j, "service_name", service_name);
    cp_json_set_str(j, "desired_state", desired);
    json_object_set_new(j, "instance_number", json_integer(n));
    json_object_set_new(j, "service_revision", json_integer(rev));
    cp_json_set_str(j, "image_name", "busybox:latest");
    cp_json_set_str(j, "deploy_rev", deploy_rev);
    struct pod p;
    char err[200] = "";
    if (pods_parse(j, &p, err, sizeof(err)) != 0)
        fail_msg("mkpod: %s", err);
    json_decref(j);
    return p;
}

/* A container of ours for pod p as it is now (running, same revision). */
static struct actual mkactual(const struct pod *p, bool is_running)
{
    struct actual a = {0};
    a.name = pods_container_name(p);
    a.id = cp_asprintf("id-%s", a.name);
    a.service_id = cp_strdup(p->service_id);
    a.instance_number = p->instance_number;
    a.service_revision = p->service_revision;
    a.deploy_rev = p->deploy_rev != NULL ? cp_strdup(p->deploy_rev) : NULL;
    a.secrets_rev = pods_secrets_rev(p);
    a.image_id = cp_strdup("sha256:aaa");
    a.is_running = is_running;
    return a;
}

static struct actual mkforeign(const char *name)
{
    struct actual a = {0};
    a.name = cp_strdup(name);
    a.id = cp_asprintf("id-%s", name);
    a.instance_number = -1;
    a.service_revision = -1;
    a.is_running = true;
    return a;
}

/* The actions as "kind name" lines, for compact assertions. */
static char *summary(const struct pods_actions *out)
{
    char *s = cp_strdup("");
    for (size_t i = 0; i < out->n; i++) {
        char *next =
            cp_asprintf("%s%s %s\n", s, pods_action_kind_name(out->v[i].kind),
                        out->v[i].name);
        cp_free(s);
        s = next;
    }
    return s;
}

#define assert_actions(out, want)                                              \
    do {                                                                       \
        char *got_ = summary(out);                                             \
        assert_string_equal(got_, want);                                       \
        cp_free(got_);                                                         \
    } while (0)

/* ==== Names and the create body ==== */

static void test_names(void **state)
{
    (void)state;
    struct pod a = mkpod("web", 2, "running", 1, "r1");
    struct pod b = mkpod("shop.web", 3, "running", 1, "r1");
    struct pod c = mkpod("null.web", 1, "running", 1, "r1");
    char *n;
    n = pods_container_name(&a);
    assert_string_equal(n, "web-2");
    cp_free(n);
    n = pods_container_name(&b);
    assert_string_equal(n, "shop.web-3");
    cp_free(n);
    n = pods_container_name(&c);
    assert_string_equal(n, "web-1");
    cp_free(n);
    pod_release(&a);
    pod_release(&b);
    pod_release(&c);
}

static void test_container_spec(void **state)
{
    (void)state;
    json_t *j = load(good_pod);
    struct pod p;
    assert_int_equal(pods_parse(j, &p, NULL, 0), 0);
    json_t *b = NULL;
    assert_int_equal(pods_container_spec(&p, &b), 0);
    char *got = cp_json_dump(b);
    /* Checked as one document so that nothing unexpected slips in. */
    json_t *want = load(
        "{\"Image\":\"busybox:latest\","
        "\"Cmd\":[\"httpd\",\"-f\",\"-p\",\"8080\"],"
        "\"Entrypoint\":[\"/bin/sh\"],"
        "\"Env\":[\"A=1\",\"KONTENA_SERVICE_ID=5a1\","
        "\"KONTENA_SERVICE_INSTANCE_NUMBER=2\",\"PASS=one\\ntwo\","
        "\"TOKEN=t\"],"
        "\"Labels\":{\"io.kontena.service.id\":\"5a1\","
        "\"io.kontena.service.name\":\"web\","
        "\"io.kontena.stack.name\":\"shop\",\"io.kontena.grid.name\":\"test\","
        "\"io.kontena.load_balancer.name\":\"lb\","
        "\"io.kontena.load_balancer.internal_port\":\"8080\","
        "\"io.kontena.health_check.protocol\":\"http\","
        "\"io.kontena.health_check.port\":\"8080\","
        "\"io.kontena.health_check.uri\":\"/health\","
        "\"io.kontena.health_check.interval\":\"30\","
        "\"io.kontena.container.name\":\"shop.web-2\","
        "\"io.kontena.container.type\":\"container\","
        "\"io.kontena.container.deploy_rev\":\"2026-11-25 12:00:00 UTC\","
        "\"io.kontena.container.service_revision\":\"3\","
        "\"io.kontena.service.instance_number\":\"2\","
        "\"io.kontena.container.secret_env\":\"PASS,TOKEN\"},"
        "\"Hostname\":\"web-2\",\"Domainname\":\"shop.test.kontena.local\","
        "\"User\":\"nobody\",\"StopSignal\":\"SIGQUIT\",\"StopTimeout\":20,"
        "\"ExposedPorts\":{\"8080/tcp\":{},\"53/udp\":{}},"
        "\"Volumes\":{\"/cache\":{}},"
        "\"HostConfig\":{"
        "\"PortBindings\":{\"8080/tcp\":["
        "{\"HostPort\":\"18080\"},{\"HostIp\":\"127.0.0.1\","
        "\"HostPort\":\"18081\"}],\"53/udp\":[{"
        "\"HostPort\":\"5353\"}]},"
        "\"Binds\":[\"/var/log:/host-log:ro\",\"shop.data:/data\"],"
        "\"Memory\":67108864,\"MemorySwap\":134217728,\"CpuShares\":512,"
        "\"NanoCpus\":1500000000,\"Privileged\":false,"
        "\"CapAdd\":[\"NET_ADMIN\"],\"CapDrop\":[\"MKNOD\"],"
        "\"NetworkMode\":\"bridge\","
        "\"LogConfig\":{\"Type\":\"json-file\","
        "\"Config\":{\"max-size\":\"10m\"}},"
        "\"ReadonlyRootfs\":true,\"Init\":true,"
        "\"RestartPolicy\":{\"Name\":\"no\"}}}");
    /* The digest of the secrets (its own test below). */
    char *rev = pods_secrets_rev(&p);
    assert_non_null(rev);
    json_object_set_new(json_object_get(want, "Labels"),
                        "io.kontena.container.secrets_rev", json_string(rev));
    cp_free(rev);
    if (!json_equal(b, want)) {
        char *w = cp_json_dump(want);
        fail_msg("spec\n got: %s\nwant: %s", got, w);
    }
    cp_free(got);
    json_decref(want);
    json_decref(b);
    pod_release(&p);

    /* Host networking: no hostname (the engine refuses it), no limits
     * given means none set. */
    json_object_set_new(j, "net", json_string("host"));
    for (const char *const *k =
             (const char *const[]){"memory", "memory_swap", "cpu_shares",
                                   "cpus", "ports", "volumes",
                                   "stop_grace_period", NULL};
         *k != NULL; k++)
        json_object_del(j, *k);
    assert_int_equal(pods_parse(j, &p, NULL, 0), 0);
    assert_int_equal(pods_container_spec(&p, &b), 0);
    const json_t *h = json_object_get(b, "HostConfig");
    assert_false(cp_json_has(b, "Hostname"));
    assert_false(cp_json_has(b, "Domainname"));
    assert_false(cp_json_has(b, "StopTimeout"));
    assert_false(cp_json_has(b, "ExposedPorts"));
    assert_false(cp_json_has(h, "Memory"));
    assert_false(cp_json_has(h, "NanoCpus"));
    assert_false(cp_json_has(h, "Binds"));
    assert_string_equal(cp_json_str(h, "NetworkMode"), "host");
    json_decref(b);
    pod_release(&p);
    json_decref(j);
}

/* ==== Actual containers ==== */

static void test_actual_from_inspect(void **state)
{
    (void)state;
    /* Podman 4.3 compat inspect, trimmed. */
    json_t *j =
        load("{\"Id\":\"abc123\",\"Name\":\"/shop.web-2\","
             "\"Image\":\"sha256:beef\","
             "\"State\":{\"Status\":\"exited\",\"Running\":false,\"Pid\":0,"
             "\"ExitCode\":3,\"Error\":\"\","
             "\"StartedAt\":\"2026-11-25T12:50:38.123456789Z\","
             "\"FinishedAt\":\"2026-11-25T12:50:41.5Z\"},"
             "\"Config\":{\"Image\":\"docker.io/library/busybox:latest\","
             "\"Labels\":{\"io.kontena.service.id\":\"5a1\","
             "\"io.kontena.service.instance_number\":\"2\","
             "\"io.kontena.container.service_revision\":\"7\","
             "\"io.kontena.container.deploy_rev\":\"r9\","
             "\"io.kontena.load_balancer.name\":\"lb\"}},\"RestartCount\":0}");
    struct actual a;
    assert_int_equal(pods_actual_from_inspect(j, &a), 0);
    assert_string_equal(a.name, "shop.web-2");
    assert_string_equal(a.id, "abc123");
    assert_string_equal(a.service_id, "5a1");
    assert_int_equal(a.instance_number, 2);
    assert_int_equal(a.service_revision, 7);
    assert_string_equal(a.deploy_rev, "r9");
    assert_string_equal(a.lb_labels, "io.kontena.load_balancer.name=lb\n");
    assert_string_equal(a.image_id, "sha256:beef");
    assert_false(a.is_running);
    assert_int_equal(a.exit_code, 3);
    assert_null(a.error);
    assert_int_equal(a.finished_at_ms - a.started_at_ms, 3377);
    pods_actual_release(&a);

    /* Never started: Go's zero time is "unknown"; the service revision
     * label wins over the container one. */
    json_t *st = json_object_get(j, "State");
    json_object_set_new(st, "StartedAt", json_string("0001-01-01T00:00:00Z"));
    json_object_set_new(st, "Error", json_string("port is taken"));
    json_object_set_new(json_object_get(json_object_get(j, "Config"), "Labels"),
                        "io.kontena.service.revision", json_string("8"));
    assert_int_equal(pods_actual_from_inspect(j, &a), 0);
    assert_int_equal(a.started_at_ms, 0);
    assert_string_equal(a.error, "port is taken");
    assert_int_equal(a.service_revision, 8);
    pods_actual_release(&a);

    json_object_del(j, "Name");
    assert_int_equal(pods_actual_from_inspect(j, &a), CP_EPROTO);
    assert_null(a.name);
    json_decref(j);
}

static void test_actual_from_list_row(void **state)
{
    (void)state;
    json_t *j = load("{\"Id\":\"f00\",\"Names\":[\"/web-1\"],"
                     "\"Image\":\"docker.io/library/busybox:latest\","
                     "\"ImageID\":\"sha256:beef\",\"State\":\"running\","
                     "\"Labels\":{\"io.kontena.service.id\":\"s\","
                     "\"io.kontena.service.instance_number\":\"x\"}}");
    struct actual a;
    assert_int_equal(pods_actual_from_list_row(j, &a), 0);
    assert_string_equal(a.name, "web-1");
    assert_string_equal(a.service_id, "s");
    assert_int_equal(a.instance_number, -1);
    assert_int_equal(a.service_revision, -1);
    assert_null(a.lb_labels);
    assert_true(a.is_running);
    pods_actual_release(&a);

    json_t *foreign = load("{\"Id\":\"f01\",\"Names\":[\"/db\"],"
                           "\"State\":\"exited\",\"Labels\":null}");
    assert_int_equal(pods_actual_from_list_row(foreign, &a), 0);
    assert_null(a.service_id);
    assert_false(a.is_running);
    pods_actual_release(&a);
    json_decref(foreign);

    json_object_set_new(j, "Names", json_array());
    assert_int_equal(pods_actual_from_list_row(j, &a), CP_EPROTO);
    json_decref(j);
}

/* ==== The diff ==== */

#define T0 1800000000000LL /* some "now" in ms */

static void test_diff_create(void **state)
{
    (void)state;
    struct pod d[3] = {mkpod("web", 1, "running", 1, "r1"),
                       mkpod("web", 2, "stopped", 1, "r1"),
                       mkpod("web", 3, "initialized", 1, "r1")};
    struct pods_actions out;
    pods_actions_init(&out);
    assert_int_equal(pods_diff(d, 3, NULL, 0, NULL, T0, &out), 0);
    assert_actions(&out, "create web-1\nstart web-1\n");
    assert_int_equal(out.v[0].pod, 0);
    assert_null(out.v[0].container_id);
    assert_int_equal(out.nreports, 3);
    assert_int_equal(out.reports[0].state, PODS_REPORT_MISSING);
    assert_false(out.reports[0].is_settled);
    assert_string_equal(out.reports[0].service_id, "id-web");
    assert_string_equal(out.reports[0].rev, "r1");
    assert_int_equal(out.reports[1].state, PODS_REPORT_MISSING);
    assert_true(out.reports[1].is_settled);
    assert_true(out.reports[2].is_settled);
    pods_actions_release(&out);
    for (int i = 0; i < 3; i++)
        pod_release(&d[i]);
}

static void test_diff_in_sync(void **state)
{
    (void)state;
    struct pod d = mkpod("shop.web", 1, "running", 4, "r1");
    struct actual a = mkactual(&d, true);
    a.service_revision = 5; /* newer than desired is fine */
    struct pods_actions out;
    pods_actions_init(&out);
    pods_diff(&d, 1, &a, 1, NULL, T0, &out);
    assert_int_equal(out.n, 0);
    assert_int_equal(out.reports[0].state, PODS_REPORT_RUNNING);
    assert_true(out.reports[0].is_settled);
    assert_null(out.reports[0].error);
    assert_string_equal(pods_report_state_name(out.reports[0].state),
                        "running");
    pods_actions_release(&out);
    pods_actual_release(&a);
    pod_release(&d);
}

static void test_diff_recreate_revision(void **state)
{
    (void)state;
    struct pod d = mkpod("web", 1, "running", 4, "r2");
    struct actual a = mkactual(&d, true);
    a.service_revision = 3;
    struct pods_actions out;
    pods_actions_init(&out);
    pods_diff(&d, 1, &a, 1, NULL, T0, &out);
    assert_actions(&out, "recreate web-1\nstart web-1\n");
    assert_string_equal(out.v[0].container_id, "id-web-1");
    assert_non_null(strstr(out.v[0].reason, "revision 4"));
    assert_false(out.reports[0].is_settled);
    pods_actions_release(&out);

    /* A container without a readable revision label is stale too. */
    a.service_revision = -1;
    pods_actions_init(&out);
    pods_diff(&d, 1, &a, 1, NULL, T0, &out);
    assert_actions(&out, "recreate web-1\nstart web-1\n");
    pods_actions_release(&out);

    /* Same name, another service (deleted and re-created). */
    a.service_revision = 4;
    cp_free(a.service_id);
    a.service_id = cp_strdup("other");
    pods_actions_init(&out);
    pods_diff(&d, 1, &a, 1, NULL, T0, &out);
    assert_actions(&out, "recreate web-1\nstart web-1\n");
    pods_actions_release(&out);

    /* Desired stopped: a stale container is only stopped, not rebuilt. */
    d.desired = POD_STOPPED;
    pods_actions_init(&out);
    pods_diff(&d, 1, &a, 1, NULL, T0, &out);
    assert_actions(&out, "stop web-1\n");
    pods_actions_release(&out);
    pods_actual_release(&a);
    pod_release(&d);
}

static void test_diff_recreate_image_and_lb(void **state)
{
    (void)state;
    struct pod d = mkpod("web", 1, "running", 4, "r2");
    struct actual a = mkactual(&d, true);
    struct pods_state st;
    pods_state_init(&st);
    pods_state_set_image(&st, "busybox:latest", "sha256:bbb");
    struct pods_actions out;

    /* Same deploy_rev: a newer image alone does not recreate. */
    pods_actions_init(&out);
    pods_diff(&d, 1, &a, 1, &st, T0, &out);
    assert_int_equal(out.n, 0);
    pods_actions_release(&out);

    /* New deploy_rev and the pull gave another image: recreate. */
    cp_free(a.deploy_rev);
    a.deploy_rev = cp_strdup("r1");
    pods_actions_init(&out);
    pods_diff(&d, 1, &a, 1, &st, T0, &out);
    assert_actions(&out, "recreate web-1\nstart web-1\n");
    assert_non_null(strstr(out.v[0].reason, "image busybox:latest"));
    pods_actions_release(&out);

    /* New deploy_rev but the same image: nothing. */
    pods_state_set_image(&st, "busybox:latest", "sha256:aaa");
    assert_string_equal(pods_state_image(&st, "busybox:latest"), "sha256:aaa");
    pods_actions_init(&out);
    pods_diff(&d, 1, &a, 1, &st, T0, &out);
    assert_int_equal(out.n, 0);
    assert_string_equal(out.reports[0].rev, "r2");
    pods_actions_release(&out);

    /* Load balancer labels changed. */
    pod_release(&d);
    json_t *j = load(good_pod);
    assert_int_equal(pods_parse(j, &d, NULL, 0), 0);
    pods_actual_release(&a);
    a = mkactual(&d, true);
    a.lb_labels = cp_strdup("io.kontena.load_balancer.internal_port=8080\n"
                            "io.kontena.load_balancer.name=lb\n");
    pods_actions_init(&out);
    pods_diff(&d, 1, &a, 1, NULL, T0, &out);
    assert_int_equal(out.n, 0);
    pods_actions_release(&out);
    cp_free(a.lb_labels);
    a.lb_labels = cp_strdup("io.kontena.load_balancer.name=lb\n");
    pods_actions_init(&out);
    pods_diff(&d, 1, &a, 1, NULL, T0, &out);
    assert_actions(&out, "recreate shop.web-2\nstart shop.web-2\n");
    assert_non_null(strstr(out.v[0].reason, "load balancer"));
    pods_actions_release(&out);

    json_decref(j);
    pods_state_release(&st);
    pods_actual_release(&a);
    pod_release(&d);
}

/* pods_find: the pod of one service instance, for /service_pods/restart. */
/* A change of a secret's value is a change of the pod (#651, #2917). */
static void test_diff_recreate_secrets(void **state)
{
    (void)state;
    json_t *j = load(good_pod);
    struct pod d;
    assert_int_equal(pods_parse(j, &d, NULL, 0), 0);
    struct actual a = mkactual(&d, true);
    a.lb_labels = cp_strdup("io.kontena.load_balancer.internal_port=8080\n"
                            "io.kontena.load_balancer.name=lb\n");
    struct pods_actions out;

    char *rev = pods_secrets_rev(&d);
    assert_non_null(rev);
    assert_int_equal(strlen(rev), 64);
    assert_null(strstr(rev, "one")); /* a digest, not the values */
    pods_actions_init(&out);
    pods_diff(&d, 1, &a, 1, NULL, T0, &out);
    assert_int_equal(out.n, 0);
    pods_actions_release(&out);

    /* Another value under the same name. */
    cp_free(d.secrets[1].value);
    d.secrets[1].value = cp_strdup("t2");
    char *rev2 = pods_secrets_rev(&d);
    assert_string_not_equal(rev, rev2);
    pods_actions_init(&out);
    pods_diff(&d, 1, &a, 1, NULL, T0, &out);
    assert_actions(&out, "recreate shop.web-2\nstart shop.web-2\n");
    assert_non_null(strstr(out.v[0].reason, "secret values changed"));
    assert_null(strstr(out.v[0].reason, "t2"));
    pods_actions_release(&out);

    /* Same values, other instance: another digest (per-container salt). */
    d.instance_number = 3;
    char *rev3 = pods_secrets_rev(&d);
    assert_string_not_equal(rev2, rev3);
    d.instance_number = 2;

    /* A container made before its pod had secrets. */
    cp_free(a.secrets_rev);
    a.secrets_rev = NULL;
    pods_actions_init(&out);
    pods_diff(&d, 1, &a, 1, NULL, T0, &out);
    assert_actions(&out, "recreate shop.web-2\nstart shop.web-2\n");
    pods_actions_release(&out);

    /* No secrets on either side: in sync. */
    for (size_t i = 0; i < d.nsecrets; i++) {
        cp_free(d.secrets[i].key);
        cp_free(d.secrets[i].value);
    }
    d.nsecrets = 0;
    assert_null(pods_secrets_rev(&d));
    pods_actions_init(&out);
    pods_diff(&d, 1, &a, 1, NULL, T0, &out);
    assert_int_equal(out.n, 0);
    pods_actions_release(&out);

    cp_free(rev);
    cp_free(rev2);
    cp_free(rev3);
    pods_actual_release(&a);
    pod_release(&d);
    json_decref(j);
}

static void test_find(void **state)
{
    (void)state;
    struct pod d[3] = {mkpod("web", 1, "running", 1, "r1"),
                       mkpod("web", 2, "running", 1, "r1"),
                       mkpod("db", 1, "running", 1, "r1")};
    assert_int_equal(pods_find(d, 3, "id-web", 2), 1);
    assert_int_equal(pods_find(d, 3, "id-db", 1), 2);
    assert_int_equal(pods_find(d, 3, "id-db", 2), PODS_NO_POD);
    assert_int_equal(pods_find(d, 3, "id-nope", 1), PODS_NO_POD);
    assert_int_equal(pods_find(NULL, 0, "id-web", 1), PODS_NO_POD);
    for (int i = 0; i < 3; i++)
        pod_release(&d[i]);
}

/* What the pod worker relies on for `service restart`: the master bumps
 * deploy_rev; the restarted container keeps its old deploy_rev label and
 * the image is the same, so the diff leaves it alone (no recreate) and
 * reports the new rev; and the restart's pods_state_started(0) resets
 * the crash backoff. */
static void test_diff_restart_new_rev(void **state)
{
    (void)state;
    struct pod d = mkpod("web", 1, "running", 4, "r2");
    struct actual a = mkactual(&d, true);
    cp_free(a.deploy_rev);
    a.deploy_rev = cp_strdup("r1");
    struct pods_state st;
    pods_state_init(&st);
    pods_state_set_image(&st, "busybox:latest", "sha256:aaa");
    /* Three crashes in a row, then the restart (stop, start). */
    pods_state_started(&st, "web-1", 3, T0 - 20000);
    pods_state_stopped(&st, "web-1");
    pods_state_started(&st, "web-1", 0, T0);
    a.started_at_ms = T0;

    struct pods_actions out;
    pods_actions_init(&out);
    pods_diff(&d, 1, &a, 1, &st, T0 + 1000, &out);
    assert_int_equal(out.n, 0);
    assert_true(out.reports[0].is_settled);
    assert_int_equal(out.reports[0].state, PODS_REPORT_RUNNING);
    assert_string_equal(out.reports[0].rev, "r2");
    pods_actions_release(&out);

    /* It dies 2 s later: the first restart's backoff (1 s), not the
     * fourth's. */
    a.is_running = false;
    a.exit_code = 1;
    a.finished_at_ms = T0 + 2000;
    pods_actions_init(&out);
    pods_diff(&d, 1, &a, 1, &st, T0 + 2500, &out);
    assert_actions(&out, "wait web-1\n");
    assert_int_equal(out.v[0].wait_ms, 500);
    pods_actions_release(&out);

    pods_state_release(&st);
    pods_actual_release(&a);
    pod_release(&d);
}

static void test_diff_stop_and_start(void **state)
{
    (void)state;
    struct pod d = mkpod("web", 1, "stopped", 1, "r1");
    struct actual a = mkactual(&d, true);
    struct pods_state st;
    pods_state_init(&st);
    struct pods_actions out;

    pods_actions_init(&out);
    pods_diff(&d, 1, &a, 1, &st, T0, &out);
    assert_actions(&out, "stop web-1\n");
    assert_int_equal(out.reports[0].state, PODS_REPORT_RUNNING);
    assert_false(out.reports[0].is_settled);
    pods_actions_release(&out);

    /* The executor stopped it; stopped and desired stopped: settled. */
    pods_state_stopped(&st, "web-1");
    a.is_running = false;
    a.started_at_ms = T0 - 5000;
    a.finished_at_ms = T0;
    a.exit_code = 143;
    pods_actions_init(&out);
    pods_diff(&d, 1, &a, 1, &st, T0, &out);
    assert_int_equal(out.n, 0);
    assert_int_equal(out.reports[0].state, PODS_REPORT_STOPPED);
    assert_true(out.reports[0].is_settled);
    pods_actions_release(&out);

    /* Desired running again: start at once, no backoff. */
    d.desired = POD_RUNNING;
    pods_actions_init(&out);
    pods_diff(&d, 1, &a, 1, &st, T0 + 1, &out);
    assert_actions(&out, "start web-1\n");
    assert_int_equal(out.v[0].restarts, 0);
    pods_actions_release(&out);

    /* Created but never started (a start that never happened): start. */
    pods_state_forget(&st, "web-1");
    assert_null(pods_state_get(&st, "web-1"));
    a.started_at_ms = 0;
    a.finished_at_ms = 0;
    pods_actions_init(&out);
    pods_diff(&d, 1, &a, 1, &st, T0, &out);
    assert_actions(&out, "start web-1\n");
    pods_actions_release(&out);

    pods_state_release(&st);
    pods_actual_release(&a);
    pod_release(&d);
}

static void test_diff_orphans_and_foreign(void **state)
{
    (void)state;
    struct pod d[2] = {mkpod("web", 1, "running", 1, "r1"),
                       mkpod("db", 1, "running", 1, "r1")};
    struct pod gone = mkpod("web", 2, "running", 1, "r1");
    struct actual a[4] = {mkactual(&d[0], true), mkforeign("db-1"),
                          mkforeign("registry"), mkactual(&gone, false)};
    struct pods_actions out;
    pods_actions_init(&out);
    pods_diff(d, 2, a, 4, NULL, T0, &out);
    /* The orphan goes first; foreign containers are never touched, even
     * when one holds a pod's name. */
    assert_actions(&out, "remove web-2\n");
    assert_int_equal(out.v[0].pod, PODS_NO_POD);
    assert_string_equal(out.v[0].container_id, "id-web-2");
    assert_int_equal(out.reports[1].state, PODS_REPORT_MISSING);
    assert_non_null(strstr(out.reports[1].error, "not managed by kontena"));
    assert_true(out.reports[1].is_settled);
    pods_actions_release(&out);

    /* An empty desired list removes every container of ours, only. */
    pods_actions_init(&out);
    pods_diff(NULL, 0, a, 4, NULL, T0, &out);
    assert_actions(&out, "remove web-1\nremove web-2\n");
    assert_int_equal(out.nreports, 0);
    pods_actions_release(&out);

    /* Removals come before creates (they free names and ports). */
    pods_actions_init(&out);
    pods_diff(&gone, 1, a, 1, NULL, T0, &out);
    assert_actions(&out, "remove web-1\ncreate web-2\nstart web-2\n");
    pods_actions_release(&out);

    for (int i = 0; i < 4; i++)
        pods_actual_release(&a[i]);
    pod_release(&d[0]);
    pod_release(&d[1]);
    pod_release(&gone);
}

/* Crash loop: the container dies 2 s after every start. The waits are
 * n² s capped at 30 s, and the diff gives START once they have passed. */
static void test_diff_backoff(void **state)
{
    (void)state;
    struct pod d = mkpod("web", 1, "running", 1, "r1");
    struct actual a = mkactual(&d, false);
    struct pods_state st;
    pods_state_init(&st);
    pods_state_started(&st, "web-1", 0, T0 - 2000);
    a.started_at_ms = T0 - 2000;
    a.finished_at_ms = T0;
    a.exit_code = 1;
    const int64_t want[] = {1, 4, 9, 16, 25, 30, 30, 30};
    int64_t now = T0;
    for (size_t k = 0; k < CP_ARRAY_LEN(want); k++) {
        struct pods_actions out;
        pods_actions_init(&out);
        pods_diff(&d, 1, &a, 1, &st, now, &out);
        assert_actions(&out, "wait web-1\n");
        assert_int_equal(out.v[0].wait_ms, want[k] * 1000);
        assert_int_equal(out.wake_in_ms, want[k] * 1000);
        assert_int_equal(out.reports[0].state, PODS_REPORT_RESTARTING);
        assert_string_equal(out.reports[0].error, "exited with code 1");
        assert_true(out.reports[0].is_settled);
        pods_actions_release(&out);

        /* Half way: still waiting, for the rest. */
        int64_t half = want[k] * 500;
        pods_actions_init(&out);
        pods_diff(&d, 1, &a, 1, &st, now + half, &out);
        assert_actions(&out, "wait web-1\n");
        assert_int_equal(out.v[0].wait_ms, want[k] * 1000 - half);
        pods_actions_release(&out);

        now += want[k] * 1000;
        pods_actions_init(&out);
        pods_diff(&d, 1, &a, 1, &st, now, &out);
        assert_actions(&out, "start web-1\n");
        assert_int_equal(out.v[0].restarts, (int)k + 1);
        assert_string_equal(out.v[0].container_id, "id-web-1");
        assert_int_equal(out.reports[0].state, PODS_REPORT_RESTARTING);
        assert_false(out.reports[0].is_settled);
        pods_state_started(&st, "web-1", out.v[0].restarts, now);
        pods_actions_release(&out);

        /* ... and it dies again 2 s later. */
        a.started_at_ms = now;
        now += 2000;
        a.finished_at_ms = now;
    }
    assert_int_equal(pods_state_get(&st, "web-1")->restarts, 8);

    /* Up 10 s before dying: the count starts again at 1 s. */
    a.started_at_ms = now;
    now += PODS_RESET_UP_MS;
    a.finished_at_ms = now;
    struct pods_actions out;
    pods_actions_init(&out);
    pods_diff(&d, 1, &a, 1, &st, now, &out);
    assert_actions(&out, "wait web-1\n");
    assert_int_equal(out.v[0].wait_ms, 1000);
    pods_actions_release(&out);
    pods_actions_init(&out);
    pods_diff(&d, 1, &a, 1, &st, now + 1000, &out);
    assert_actions(&out, "start web-1\n");
    assert_int_equal(out.v[0].restarts, 1);
    pods_actions_release(&out);

    /* Up 9.9 s: not reset, the count goes on. */
    a.finished_at_ms = a.started_at_ms + PODS_RESET_UP_MS - 100;
    pods_actions_init(&out);
    pods_diff(&d, 1, &a, 1, &st, a.finished_at_ms, &out);
    assert_int_equal(out.v[0].wait_ms, 30000);
    pods_actions_release(&out);

    /* No memory at all (agent restarted): the first restart waits 1 s. */
    pods_actions_init(&out);
    pods_diff(&d, 1, &a, 1, NULL, a.finished_at_ms, &out);
    assert_int_equal(out.v[0].wait_ms, 1000);
    pods_actions_release(&out);

    pods_state_release(&st);
    pods_actual_release(&a);
    pod_release(&d);
}

/* A container that stopped with an engine error is rebuilt, after the
 * same backoff. */
static void test_diff_engine_error(void **state)
{
    (void)state;
    struct pod d = mkpod("web", 1, "running", 1, "r1");
    struct actual a = mkactual(&d, false);
    a.error = cp_strdup("address already in use");
    a.finished_at_ms = T0;
    struct pods_actions out;
    pods_actions_init(&out);
    pods_diff(&d, 1, &a, 1, NULL, T0, &out);
    assert_actions(&out, "wait web-1\n");
    assert_string_equal(out.reports[0].error, "address already in use");
    pods_actions_release(&out);
    pods_actions_init(&out);
    pods_diff(&d, 1, &a, 1, NULL, T0 + 1000, &out);
    assert_actions(&out, "recreate web-1\nstart web-1\n");
    assert_null(out.v[1].container_id);
    assert_int_equal(out.v[1].restarts, 1);
    pods_actions_release(&out);
    pods_actual_release(&a);
    pod_release(&d);
}

/* Issue #2623: the agent acts on the latest list only. A list that
 * would recreate (wrong image, revision 2) followed by one that reverts
 * to revision 1 gives nothing to do; a stop followed by a start gives
 * nothing either; and a fix on top of a bad revision acts once, on the
 * fix. */
static void test_diff_level_triggered(void **state)
{
    (void)state;
    struct pod cur = mkpod("web", 1, "running", 1, "r1");
    struct actual a = mkactual(&cur, true);
    struct pod bad = mkpod("web", 1, "running", 2, "r2");
    struct pod stop = mkpod("web", 1, "stopped", 1, "r3");
    struct pod back = mkpod("web", 1, "running", 1, "r4");
    struct pod fix = mkpod("web", 1, "running", 3, "r5");
    struct pods_actions out;

    pods_actions_init(&out);
    pods_diff(&bad, 1, &a, 1, NULL, T0, &out);
    assert_actions(&out, "recreate web-1\nstart web-1\n");
    pods_actions_release(&out);

    /* The caller replaced its list before acting: only the latest. */
    pods_actions_init(&out);
    pods_diff(&back, 1, &a, 1, NULL, T0, &out);
    assert_int_equal(out.n, 0);
    assert_string_equal(out.reports[0].rev, "r4");
    pods_actions_release(&out);

    pods_actions_init(&out);
    pods_diff(&stop, 1, &a, 1, NULL, T0, &out);
    assert_actions(&out, "stop web-1\n");
    pods_actions_release(&out);
    pods_actions_init(&out);
    pods_diff(&back, 1, &a, 1, NULL, T0, &out);
    assert_int_equal(out.n, 0);
    pods_actions_release(&out);

    pods_actions_init(&out);
    pods_diff(&fix, 1, &a, 1, NULL, T0, &out);
    assert_actions(&out, "recreate web-1\nstart web-1\n");
    assert_non_null(strstr(out.v[0].reason, "revision 3"));
    assert_string_equal(out.reports[0].rev, "r5");
    pods_actions_release(&out);

    pods_actual_release(&a);
    pod_release(&cur);
    pod_release(&bad);
    pod_release(&stop);
    pod_release(&back);
    pod_release(&fix);
}

static void test_names_of_kinds(void **state)
{
    (void)state;
    assert_string_equal(pods_action_kind_name(PODS_CREATE), "create");
    assert_string_equal(pods_action_kind_name(PODS_RECREATE), "recreate");
    assert_string_equal(pods_action_kind_name(PODS_WAIT), "wait");
    assert_string_equal(pods_report_state_name(PODS_REPORT_MISSING), "missing");
    assert_string_equal(pods_report_state_name(PODS_REPORT_RESTARTING),
                        "restarting");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_good),
        cmocka_unit_test(test_parse_minimal),
        cmocka_unit_test(test_parse_bad),
        cmocka_unit_test(test_parse_list),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_container_spec),
        cmocka_unit_test(test_actual_from_inspect),
        cmocka_unit_test(test_actual_from_list_row),
        cmocka_unit_test(test_diff_create),
        cmocka_unit_test(test_diff_in_sync),
        cmocka_unit_test(test_diff_recreate_revision),
        cmocka_unit_test(test_diff_recreate_image_and_lb),
        cmocka_unit_test(test_diff_recreate_secrets),
        cmocka_unit_test(test_find),
        cmocka_unit_test(test_diff_restart_new_rev),
        cmocka_unit_test(test_diff_stop_and_start),
        cmocka_unit_test(test_diff_orphans_and_foreign),
        cmocka_unit_test(test_diff_backoff),
        cmocka_unit_test(test_diff_engine_error),
        cmocka_unit_test(test_diff_level_triggered),
        cmocka_unit_test(test_names_of_kinds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
