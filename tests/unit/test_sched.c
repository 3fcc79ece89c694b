/* Unit tests of the pure scheduler (src/master/sched.c, sched_strategy.c;
 * spec 5.2): every filter alone, the three strategies, stateful binding
 * (issue #2274), failure messages naming filter and rule (#1275, #2107),
 * determinism and a large placement.
 * SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../src/common/alloc.h"
#include "../../src/common/err.h"
#include "../../src/master/sched.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define GIB (1024ULL * 1024ULL * 1024ULL)
#define MIB (1024ULL * 1024ULL)

/* ==== Helpers ==== */

static const char *const az_a[] = {"az=a"};
static const char *const az_b[] = {"az=b"};
static const char *const az_c[] = {"az=c"};
static const char *const eph[] = {"ephemeral"};
static const char *const ids[] = {"n1", "n2", "n3", "n4", "n5", "n6"};

/* A connected, active node with 4 cpus, 8 GiB and no stats. */
static struct sched_node node(int k)
{
    return (struct sched_node){
        .id = ids[k - 1],
        .name = ids[k - 1],
        .node_number = k,
        .availability = SCHED_ACTIVE,
        .connected = true,
        .cpus = 4,
        .mem_total = 8 * GIB,
    };
}

static struct sched_service service(void)
{
    return (struct sched_service){
        .stack = "s",
        .name = "web",
        .strategy = "ha",
        .instances = 1,
    };
}

static int place(const struct sched_node *nodes, size_t n,
                 const struct sched_service *svc,
                 const struct sched_instance *insts, size_t n_insts,
                 uint64_t seed, struct sched_result *res)
{
    struct sched_input in = {
        .nodes = nodes,
        .n_nodes = n,
        .service = svc,
        .instances = insts,
        .n_instances = n_insts,
        .now = 1000000,
        .seed = seed,
    };
    return sched_place(&in, res);
}

/* The node id instance k (1-based) went to, or "-" when it failed. */
static const char *at(const struct sched_result *res, size_t k)
{
    assert_true(k >= 1 && k <= res->n_placements);
    const char *id = res->placements[k - 1].node_id;
    return id ? id : "-";
}

static void expect_has(const char *text, const char *want)
{
    if (text == NULL || strstr(text, want) == NULL)
        fail_msg("expected \"%s\" in \"%s\"", want, text ? text : "(null)");
}

/* Places one instance and expects it to fail with all the given pieces in
 * its error, which must also be the result's error. */
static void expect_fail1(const struct sched_node *nodes, size_t n,
                         const struct sched_service *svc, const char *piece1,
                         const char *piece2)
{
    struct sched_result res;
    assert_int_equal(place(nodes, n, svc, NULL, 0, 1, &res), CP_ENOTFOUND);
    assert_int_equal(res.n_placements, 1);
    assert_int_equal(res.n_failed, 1);
    assert_null(res.placements[0].node_id);
    expect_has(res.placements[0].error, piece1);
    if (piece2)
        expect_has(res.placements[0].error, piece2);
    expect_has(res.error, "instance 1: ");
    sched_result_release(&res);
}

static void expect_at1(const struct sched_node *nodes, size_t n,
                       const struct sched_service *svc, const char *want)
{
    struct sched_result res;
    int rc = place(nodes, n, svc, NULL, 0, 1, &res);
    if (rc != 0)
        fail_msg("expected success, got %d: %s", rc, res.error);
    assert_string_equal(at(&res, 1), want);
    sched_result_release(&res);
}

/* ==== Availability ==== */

static void test_availability(void **state)
{
    (void)state;
    struct sched_node nodes[2] = {node(1), node(2)};
    struct sched_service svc = service();
    nodes[0].availability = SCHED_DRAIN;
    expect_at1(nodes, 2, &svc, "n2");

    nodes[1].connected = false;
    expect_fail1(nodes, 2, &svc,
                 "availability: no node is connected and active",
                 "2 nodes: 1 offline, 1 drained");
}

static void test_zero_nodes(void **state)
{
    (void)state;
    struct sched_service svc = service();
    svc.instances = 3;
    struct sched_result res;
    assert_int_equal(place(NULL, 0, &svc, NULL, 0, 1, &res), CP_ENOTFOUND);
    assert_int_equal(res.n_failed, 3);
    expect_has(res.error, "availability: the grid has no nodes");
    sched_result_release(&res);

    svc.strategy = "daemon";
    assert_int_equal(place(NULL, 0, &svc, NULL, 0, 1, &res), CP_ENOTFOUND);
    assert_int_equal(res.n_placements, 0);
    expect_has(res.error, "no eligible node: availability");
    sched_result_release(&res);
}

static void test_all_drained(void **state)
{
    (void)state;
    struct sched_node nodes[3] = {node(1), node(2), node(3)};
    for (int k = 0; k < 3; k++)
        nodes[k].availability = SCHED_DRAIN;
    struct sched_service svc = service();
    expect_fail1(nodes, 3, &svc, "availability:", "3 drained");
}

static void test_grace(void **state)
{
    (void)state;
    struct sched_node nodes[1] = {node(1)};
    nodes[0].connected = false;
    nodes[0].disconnected_at = 1000000 - 60;
    struct sched_service svc = service();
    struct sched_input in = {
        .nodes = nodes, .n_nodes = 1, .service = &svc, .now = 1000000};
    struct sched_result res;
    assert_int_equal(sched_place(&in, &res), CP_ENOTFOUND);
    sched_result_release(&res);
    /* For drift, ha keeps a node offline for 60 s (grace 120 s). */
    in.use_grace = true;
    assert_int_equal(sched_place(&in, &res), 0);
    assert_string_equal(at(&res, 1), "n1");
    sched_result_release(&res);
    /* random's grace is 30 s. */
    svc.strategy = "random";
    assert_int_equal(sched_place(&in, &res), CP_ENOTFOUND);
    sched_result_release(&res);
    assert_int_equal(sched_strategy_grace("ha"), 120);
    assert_int_equal(sched_strategy_grace("daemon"), 600);
    assert_int_equal(sched_strategy_grace("random"), 30);
    assert_int_equal(sched_strategy_grace("spread"), -1);
}

/* ==== Ephemeral ==== */

static void test_ephemeral(void **state)
{
    (void)state;
    struct sched_node nodes[2] = {node(1), node(2)};
    nodes[0].labels = eph;
    nodes[0].n_labels = 1;
    struct sched_service svc = service();
    svc.stateful = true;
    expect_at1(nodes, 2, &svc, "n2");
    expect_fail1(nodes, 1, &svc, "ephemeral: a stateful service", NULL);

    /* Already there: stays. */
    struct sched_instance inst = {1, "n1"};
    struct sched_result res;
    assert_int_equal(place(nodes, 2, &svc, &inst, 1, 1, &res), 0);
    assert_string_equal(at(&res, 1), "n1");
    sched_result_release(&res);

    svc.stateful = false;
    expect_at1(nodes, 1, &svc, "n1");
}

/* ==== Affinity ==== */

static void test_affinity_label(void **state)
{
    (void)state;
    struct sched_node nodes[3] = {node(1), node(2), node(3)};
    nodes[1].labels = az_b;
    nodes[1].n_labels = 1;
    struct sched_service svc = service();
    const char *hard[] = {"label==az=b"};
    svc.affinity = hard;
    svc.n_affinity = 1;
    expect_at1(nodes, 3, &svc, "n2");

    const char *none[] = {"label==az=x"};
    svc.affinity = none;
    expect_fail1(nodes, 3, &svc,
                 "affinity: no node matches label==az=x (3 nodes checked)",
                 NULL);

    /* Soft: skipped when nothing matches, applied when something does. */
    const char *soft[] = {"label==~az=x", "node!=n1", "node!=n3"};
    svc.affinity = soft;
    svc.n_affinity = 3;
    expect_at1(nodes, 3, &svc, "n2");
    const char *soft_ok[] = {"label==~az=b"};
    svc.affinity = soft_ok;
    svc.n_affinity = 1;
    expect_at1(nodes, 3, &svc, "n2");

    const char *neg[] = {"label!=az=b", "node!=n1"};
    svc.affinity = neg;
    svc.n_affinity = 2;
    expect_at1(nodes, 3, &svc, "n3");
}

static void test_affinity_node_container_service(void **state)
{
    (void)state;
    struct sched_container on2[] = {
        {.name = "s.db-1", .service = "s/db", .instance = 1},
        {.name = "cache", .service = "other/cache", .instance = 1},
    };
    struct sched_node nodes[3] = {node(1), node(2), node(3)};
    nodes[1].containers = on2;
    nodes[1].n_containers = 2;
    struct sched_service svc = service();

    const char *r1[] = {"node==n3"};
    svc.affinity = r1;
    svc.n_affinity = 1;
    expect_at1(nodes, 3, &svc, "n3");

    const char *r2[] = {"container==cache"};
    svc.affinity = r2;
    expect_at1(nodes, 3, &svc, "n2");

    /* A bare service name means the same stack. */
    const char *r3[] = {"service==db"};
    svc.affinity = r3;
    expect_at1(nodes, 3, &svc, "n2");
    const char *r4[] = {"service==other/cache"};
    svc.affinity = r4;
    expect_at1(nodes, 3, &svc, "n2");
    const char *r5[] = {"service==cache"}; /* s/cache runs nowhere */
    svc.affinity = r5;
    expect_fail1(nodes, 3, &svc, "affinity: no node matches service==cache",
                 NULL);

    const char *r6[] = {"service!=db", "node!=n1"};
    svc.affinity = r6;
    svc.n_affinity = 2;
    expect_at1(nodes, 3, &svc, "n3");

    const char *r7[] = {"container!=cache", "container!=s.db-1", "node!=n3"};
    svc.affinity = r7;
    svc.n_affinity = 3;
    expect_at1(nodes, 3, &svc, "n1");
}

static void test_affinity_regex_and_subst(void **state)
{
    (void)state;
    struct sched_node nodes[3] = {node(1), node(2), node(3)};
    nodes[0].labels = az_a;
    nodes[0].n_labels = 1;
    nodes[2].labels = az_c;
    nodes[2].n_labels = 1;
    struct sched_service svc = service();
    const char *re[] = {"label==/^az=(b|c)$/"};
    svc.affinity = re;
    svc.n_affinity = 1;
    expect_at1(nodes, 3, &svc, "n3");

    const char *re_neg[] = {"node!=/^n[12]$/"};
    svc.affinity = re_neg;
    expect_at1(nodes, 3, &svc, "n3");

    /* %s: instance i goes to node n<i>, also inside a regex. */
    const char *sub[] = {"node==n%s"};
    svc.affinity = sub;
    svc.instances = 3;
    struct sched_result res;
    assert_int_equal(place(nodes, 3, &svc, NULL, 0, 7, &res), 0);
    assert_string_equal(at(&res, 1), "n1");
    assert_string_equal(at(&res, 2), "n2");
    assert_string_equal(at(&res, 3), "n3");
    sched_result_release(&res);

    const char *sub_re[] = {"node==/^n%s$/"};
    svc.affinity = sub_re;
    svc.instances = 4;
    assert_int_equal(place(nodes, 3, &svc, NULL, 0, 7, &res), CP_ENOTFOUND);
    assert_string_equal(at(&res, 2), "n2");
    assert_string_equal(at(&res, 4), "-");
    expect_has(res.placements[3].error,
               "affinity: no node matches node==/^n%s$/");
    assert_int_equal(res.n_placed, 3);
    assert_int_equal(res.n_failed, 1);
    sched_result_release(&res);
}

static void test_affinity_default(void **state)
{
    (void)state;
    struct sched_node nodes[3] = {node(1), node(2), node(3)};
    nodes[1].labels = az_b;
    nodes[1].n_labels = 1;
    struct sched_service svc = service();
    const char *grid[] = {"label==az=b"};
    svc.default_affinity = grid;
    svc.n_default_affinity = 1;
    expect_at1(nodes, 3, &svc, "n2");

    /* The service's own rules replace the grid's. */
    const char *own[] = {"node==n3"};
    svc.affinity = own;
    svc.n_affinity = 1;
    expect_at1(nodes, 3, &svc, "n3");
}

static void expect_invalid(const char *rule, const char *piece)
{
    struct sched_node nodes[1] = {node(1)};
    struct sched_service svc = service();
    const char *rules[] = {rule};
    svc.affinity = rules;
    svc.n_affinity = 1;
    struct sched_result res;
    assert_int_equal(place(nodes, 1, &svc, NULL, 0, 1, &res), CP_EINVAL);
    assert_int_equal(res.n_placements, 0);
    expect_has(res.error, "affinity: ");
    expect_has(res.error, piece);
    sched_result_release(&res);
}

static void test_affinity_invalid(void **state)
{
    (void)state;
    expect_invalid("foo==bar", "invalid rule foo==bar");
    expect_invalid("label=az=a", "invalid rule label=az=a");
    expect_invalid("label==", "empty value");
    expect_invalid("label==~", "empty value");
    expect_invalid("label==/[/", "invalid regex in rule label==/[/");
    expect_invalid("node==//", "regex must be");
    char big[SCHED_RULE_MAX + 10];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    memcpy(big, "node==", 6);
    expect_invalid(big, "longer than");
    char bigre[SCHED_REGEX_MAX + 20];
    memset(bigre, 'a', sizeof(bigre) - 1);
    bigre[sizeof(bigre) - 1] = '\0';
    memcpy(bigre, "node==/", 7);
    bigre[sizeof(bigre) - 2] = '/';
    expect_invalid(bigre, "regex must be");
}

/* ==== Port ==== */

static void test_port(void **state)
{
    (void)state;
    static const int p80[] = {80};
    struct sched_container c1[] = {
        {.name = "lb-1",
         .service = "s/lb",
         .instance = 1,
         .ports = p80,
         .n_ports = 1},
    };
    struct sched_node nodes[2] = {node(1), node(2)};
    nodes[0].containers = c1;
    nodes[0].n_containers = 1;
    struct sched_service svc = service();
    svc.ports = p80;
    svc.n_ports = 1;
    expect_at1(nodes, 2, &svc, "n2");
    expect_fail1(nodes, 1, &svc, "port: node port 80 already published",
                 "(1 nodes checked)");

    /* Without ports the same node is fine. */
    svc.n_ports = 0;
    expect_at1(nodes, 1, &svc, "n1");

    /* Its own previous container does not block it. */
    struct sched_container self[] = {
        {.name = "s.web-1",
         .service = "s/web",
         .instance = 1,
         .ports = p80,
         .n_ports = 1},
    };
    nodes[0].containers = self;
    svc.n_ports = 1;
    expect_at1(nodes, 1, &svc, "n1");
}

static void test_port_within_round(void **state)
{
    (void)state;
    static const int ports[] = {443, 80};
    struct sched_node nodes[2] = {node(1), node(2)};
    struct sched_service svc = service();
    svc.ports = ports;
    svc.n_ports = 2;
    svc.instances = 3;
    struct sched_result res;
    assert_int_equal(place(nodes, 2, &svc, NULL, 0, 3, &res), CP_ENOTFOUND);
    assert_string_not_equal(at(&res, 1), at(&res, 2));
    assert_string_not_equal(at(&res, 1), "-");
    assert_string_not_equal(at(&res, 2), "-");
    assert_string_equal(at(&res, 3), "-");
    expect_has(res.placements[2].error,
               "port: node port 443,80 already published on every node");
    sched_result_release(&res);
}

/* ==== Cpu ==== */

static void test_cpu(void **state)
{
    (void)state;
    struct sched_node nodes[2] = {node(1), node(2)};
    nodes[0].cpus = 2;
    nodes[1].cpus = 8;
    struct sched_service svc = service();
    svc.cpus = 0.5;
    svc.instances = 1;
    const char *to1[] = {"node==n1"};
    svc.affinity = to1;
    svc.n_affinity = 1;
    expect_at1(nodes, 2, &svc, "n1");
    svc.n_affinity = 0;
    svc.cpus = 6;
    expect_at1(nodes, 2, &svc, "n2");
    svc.cpus = 16;
    expect_fail1(nodes, 2, &svc, "cpu: service needs 16 cpus",
                 "largest is 8 on n2 (2 nodes checked)");
}

/* ==== Memory ==== */

static void test_memory(void **state)
{
    (void)state;
    struct sched_node nodes[2] = {node(1), node(2)};
    struct sched_service svc = service();
    /* No stats: total decides. */
    nodes[0].mem_total = 256 * MIB;
    nodes[1].mem_total = 1 * GIB;
    svc.memory = 512 * MIB;
    expect_at1(nodes, 2, &svc, "n2");
    /* memory_swap when memory is unset; 0 skips the filter. */
    svc.memory = 0;
    svc.memory_swap = 2 * GIB;
    expect_fail1(nodes, 2, &svc, "memory: service needs 2048 MiB",
                 "largest free is 1024 MiB on n2 (2 nodes checked)");
    svc.memory_swap = 0;
    const char *to1[] = {"node==n1"};
    svc.affinity = to1;
    svc.n_affinity = 1;
    expect_at1(nodes, 2, &svc, "n1");
    svc.n_affinity = 0;

    /* With stats: free decides. */
    nodes[0].mem_total = 8 * GIB;
    nodes[0].mem_free = 256 * MIB;
    nodes[1].mem_total = 8 * GIB;
    nodes[1].mem_free = 128 * MIB;
    svc.memory = 512 * MIB;
    expect_fail1(nodes, 2, &svc, "memory: service needs 512 MiB",
                 "largest free is 256 MiB on n1");
    nodes[1].mem_free = 4 * GIB;
    expect_at1(nodes, 2, &svc, "n2");

    /* A node already hosting the instance keeps it. */
    nodes[1].mem_free = 128 * MIB;
    struct sched_container self[] = {
        {.name = "s.web-1", .service = "s/web", .instance = 1}};
    nodes[0].containers = self;
    nodes[0].n_containers = 1;
    expect_at1(nodes, 2, &svc, "n1");
}

static void test_memory_within_round(void **state)
{
    (void)state;
    struct sched_node nodes[1] = {node(1)};
    nodes[0].mem_free = 1 * GIB;
    struct sched_service svc = service();
    svc.memory = 512 * MIB;
    svc.instances = 3;
    struct sched_result res;
    assert_int_equal(place(nodes, 1, &svc, NULL, 0, 1, &res), CP_ENOTFOUND);
    assert_string_equal(at(&res, 1), "n1");
    assert_string_equal(at(&res, 2), "n1");
    assert_string_equal(at(&res, 3), "-");
    expect_has(res.placements[2].error,
               "memory: service needs 512 MiB, largest free is 0 bytes on n1");
    sched_result_release(&res);
}

/* ==== Dependency ==== */

static void test_dependency(void **state)
{
    (void)state;
    struct sched_container on1[] = {{.name = "s.data-1"}};
    struct sched_container on2[] = {{.name = "data-2"}, {.name = "s.vpn-2"}};
    struct sched_node nodes[3] = {node(1), node(2), node(3)};
    nodes[0].containers = on1;
    nodes[0].n_containers = 1;
    nodes[1].containers = on2;
    nodes[1].n_containers = 2;
    struct sched_service svc = service();
    const char *vf[] = {"data-%s"};
    svc.volumes_from = vf;
    svc.n_volumes_from = 1;
    svc.instances = 3;
    struct sched_result res;
    assert_int_equal(place(nodes, 3, &svc, NULL, 0, 1, &res), CP_ENOTFOUND);
    assert_string_equal(at(&res, 1), "n1");
    assert_string_equal(at(&res, 2), "n2");
    assert_string_equal(at(&res, 3), "-");
    expect_has(res.placements[2].error,
               "dependency: no node runs container data-3 "
               "(volumes_from data-%s, 3 nodes checked)");
    sched_result_release(&res);

    svc.n_volumes_from = 0;
    svc.instances = 1;
    svc.net = "container:vpn-2";
    expect_at1(nodes, 3, &svc, "n2");
    svc.net = "container:vpn-%s";
    expect_fail1(nodes, 3, &svc, "dependency: no node runs container vpn-1",
                 "net container:");
    svc.net = "bridge";
    svc.stack = "null";
    expect_at1(nodes, 1, &svc, "n1");
}

/* ==== Strategies ==== */

static size_t count_on(const struct sched_result *res, const char *id)
{
    size_t n = 0;
    for (size_t k = 0; k < res->n_placements; k++) {
        const char *at_id = res->placements[k].node_id;
        if (at_id != NULL && strcmp(at_id, id) == 0)
            n++;
    }
    return n;
}

static void test_ha_spreads(void **state)
{
    (void)state;
    struct sched_node nodes[3] = {node(1), node(2), node(3)};
    struct sched_service svc = service();
    svc.instances = 6;
    for (uint64_t seed = 0; seed < 20; seed++) {
        struct sched_result res;
        assert_int_equal(place(nodes, 3, &svc, NULL, 0, seed, &res), 0);
        for (int k = 0; k < 3; k++)
            assert_int_equal(count_on(&res, ids[k]), 2);
        sched_result_release(&res);
    }
}

static void test_ha_spreads_zones(void **state)
{
    (void)state;
    /* Three nodes in az a, one in az b: two instances go one per zone. */
    struct sched_node nodes[4] = {node(1), node(2), node(3), node(4)};
    for (int k = 0; k < 3; k++) {
        nodes[k].labels = az_a;
        nodes[k].n_labels = 1;
    }
    nodes[3].labels = az_b;
    nodes[3].n_labels = 1;
    struct sched_service svc = service();
    svc.instances = 2;
    for (uint64_t seed = 0; seed < 20; seed++) {
        struct sched_result res;
        assert_int_equal(place(nodes, 4, &svc, NULL, 0, seed, &res), 0);
        assert_int_equal(count_on(&res, "n4"), 1);
        sched_result_release(&res);
    }
    /* Four instances: two per zone, so n4 takes two. */
    svc.instances = 4;
    struct sched_result res;
    assert_int_equal(place(nodes, 4, &svc, NULL, 0, 9, &res), 0);
    assert_int_equal(count_on(&res, "n4"), 2);
    sched_result_release(&res);
}

static void test_ha_prefers_previous(void **state)
{
    (void)state;
    struct sched_node nodes[3] = {node(1), node(2), node(3)};
    struct sched_service svc = service();
    svc.instances = 2;
    struct sched_instance insts[] = {{1, "n3"}, {2, "n2"}};
    for (uint64_t seed = 0; seed < 20; seed++) {
        struct sched_result res;
        assert_int_equal(place(nodes, 3, &svc, insts, 2, seed, &res), 0);
        assert_string_equal(at(&res, 1), "n3");
        assert_string_equal(at(&res, 2), "n2");
        sched_result_release(&res);
    }
    /* A running container counts as well. */
    struct sched_container c[] = {
        {.name = "s.web-1", .service = "s/web", .instance = 1}};
    nodes[1].containers = c;
    nodes[1].n_containers = 1;
    svc.instances = 1;
    expect_at1(nodes, 3, &svc, "n2");

    /* Otherwise the least used memory wins the tie. */
    nodes[1].n_containers = 0;
    nodes[0].mem_used_ratio = 0.9;
    nodes[1].mem_used_ratio = 0.2;
    nodes[2].mem_used_ratio = 0.5;
    expect_at1(nodes, 3, &svc, "n2");
}

static void test_daemon(void **state)
{
    (void)state;
    struct sched_node nodes[4] = {node(1), node(2), node(3), node(4)};
    struct sched_service svc = service();
    svc.strategy = "daemon";
    svc.instances = 2;
    struct sched_result res;
    assert_int_equal(place(nodes, 4, &svc, NULL, 0, 1, &res), 0);
    assert_int_equal(res.n_placements, 8);
    assert_int_equal(res.eligible_nodes, 4);
    for (int k = 0; k < 4; k++)
        assert_int_equal(count_on(&res, ids[k]), 2);
    /* Fewest first, then lowest node number. */
    assert_string_equal(at(&res, 1), "n1");
    assert_string_equal(at(&res, 2), "n2");
    assert_string_equal(at(&res, 5), "n1");
    sched_result_release(&res);

    /* Count scales with eligible nodes: drain one, label-limit another. */
    nodes[3].availability = SCHED_DRAIN;
    assert_int_equal(place(nodes, 4, &svc, NULL, 0, 1, &res), 0);
    assert_int_equal(res.n_placements, 6);
    assert_int_equal(count_on(&res, "n4"), 0);
    sched_result_release(&res);
    nodes[0].labels = az_a;
    nodes[0].n_labels = 1;
    const char *lim[] = {"label!=az=a"};
    svc.affinity = lim;
    svc.n_affinity = 1;
    assert_int_equal(place(nodes, 4, &svc, NULL, 0, 1, &res), 0);
    assert_int_equal(res.n_placements, 4);
    assert_int_equal(count_on(&res, "n2"), 2);
    assert_int_equal(count_on(&res, "n3"), 2);
    sched_result_release(&res);

    /* No eligible node: an error, never a silent 0 instances (#1275). */
    const char *none[] = {"label==az=x"};
    svc.affinity = none;
    assert_int_equal(place(nodes, 4, &svc, NULL, 0, 1, &res), CP_ENOTFOUND);
    assert_int_equal(res.n_placements, 0);
    expect_has(res.error, "no eligible node: affinity: no node matches "
                          "label==az=x");
    sched_result_release(&res);
}

static void test_daemon_prefers_previous(void **state)
{
    (void)state;
    struct sched_node nodes[3] = {node(1), node(2), node(3)};
    struct sched_service svc = service();
    svc.strategy = "daemon";
    svc.instances = 1;
    struct sched_instance insts[] = {{1, "n3"}, {2, "n1"}, {3, "n2"}};
    struct sched_result res;
    assert_int_equal(place(nodes, 3, &svc, insts, 3, 1, &res), 0);
    assert_string_equal(at(&res, 1), "n3");
    assert_string_equal(at(&res, 2), "n1");
    assert_string_equal(at(&res, 3), "n2");
    sched_result_release(&res);

    /* Stale history naming one node twice still gives one per node. */
    struct sched_instance twice[] = {{1, "n2"}, {2, "n2"}};
    assert_int_equal(place(nodes, 3, &svc, twice, 2, 1, &res), 0);
    assert_string_equal(at(&res, 1), "n2");
    for (int k = 0; k < 3; k++)
        assert_int_equal(count_on(&res, ids[k]), 1);
    sched_result_release(&res);
}

static void test_random(void **state)
{
    (void)state;
    struct sched_node nodes[5] = {node(1), node(2), node(3), node(4), node(5)};
    struct sched_service svc = service();
    svc.strategy = "random";
    svc.instances = 2;
    struct sched_instance insts[] = {{1, "n4"}, {2, "n4"}};
    for (uint64_t seed = 0; seed < 20; seed++) {
        struct sched_result res;
        assert_int_equal(place(nodes, 5, &svc, insts, 2, seed, &res), 0);
        assert_string_equal(at(&res, 1), "n4");
        assert_string_equal(at(&res, 2), "n4");
        sched_result_release(&res);
    }
    /* Previous node drained: some other node, varying with the seed. */
    nodes[3].availability = SCHED_DRAIN;
    size_t seen[5] = {0};
    for (uint64_t seed = 0; seed < 50; seed++) {
        struct sched_result res;
        assert_int_equal(place(nodes, 5, &svc, insts, 2, seed, &res), 0);
        assert_string_not_equal(at(&res, 1), "n4");
        seen[at(&res, 1)[1] - '1']++;
        sched_result_release(&res);
    }
    size_t distinct = 0;
    for (int k = 0; k < 5; k++)
        distinct += seen[k] > 0;
    assert_true(distinct >= 3);
}

static void test_unknown_strategy(void **state)
{
    (void)state;
    struct sched_node nodes[1] = {node(1)};
    struct sched_service svc = service();
    svc.strategy = "spread";
    struct sched_result res;
    assert_int_equal(place(nodes, 1, &svc, NULL, 0, 1, &res), CP_EINVAL);
    expect_has(res.error, "unknown strategy spread");
    sched_result_release(&res);
    assert_true(sched_strategy_valid("daemon"));
    assert_true(sched_strategy_valid(NULL));
    assert_false(sched_strategy_valid("spread"));

    svc.strategy = NULL;
    svc.instances = -1;
    assert_int_equal(place(nodes, 1, &svc, NULL, 0, 1, &res), CP_EINVAL);
    sched_result_release(&res);
    svc.instances = 0;
    assert_int_equal(place(nodes, 1, &svc, NULL, 0, 1, &res), 0);
    assert_int_equal(res.n_placements, 0);
    sched_result_release(&res);
}

/* ==== Stateful (issue #2274) ==== */

static void test_stateful(void **state)
{
    (void)state;
    struct sched_node nodes[3] = {node(1), node(2), node(3)};
    struct sched_service svc = service();
    svc.stateful = true;
    svc.instances = 2;
    struct sched_instance insts[] = {{1, "n1"}, {2, "n1"}};
    struct sched_result res;
    /* Bound: both stay on n1 though ha would spread them. */
    assert_int_equal(place(nodes, 3, &svc, insts, 2, 1, &res), 0);
    assert_string_equal(at(&res, 1), "n1");
    assert_string_equal(at(&res, 2), "n1");
    sched_result_release(&res);

    nodes[0].connected = false;
    assert_int_equal(place(nodes, 3, &svc, insts, 2, 1, &res), CP_ENOTFOUND);
    assert_int_equal(res.n_failed, 2);
    assert_string_equal(res.placements[0].error,
                        "stateful instance 1 is bound to node n1 which is "
                        "offline");
    assert_string_equal(res.error, "instance 1: stateful instance 1 is bound "
                                   "to node n1 which is offline");
    sched_result_release(&res);

    nodes[0].connected = true;
    nodes[0].availability = SCHED_DRAIN;
    assert_int_equal(place(nodes, 3, &svc, insts, 2, 1, &res), CP_ENOTFOUND);
    expect_has(res.placements[1].error, "node n1 which is drained");
    sched_result_release(&res);

    /* Memory keeps a node that already hosts the instance... */
    nodes[0].availability = SCHED_ACTIVE;
    nodes[0].mem_free = 100 * MIB;
    svc.memory = 512 * MIB;
    assert_int_equal(place(nodes, 3, &svc, insts, 2, 1, &res), 0);
    assert_string_equal(at(&res, 1), "n1");
    sched_result_release(&res);
    /* ...but a filter without that exemption names itself. */
    svc.cpus = 8;
    nodes[1].cpus = nodes[2].cpus = 16;
    assert_int_equal(place(nodes, 3, &svc, insts, 2, 1, &res), CP_ENOTFOUND);
    expect_has(res.placements[0].error,
               "stateful instance 1 is bound to node n1 which is rejected "
               "by cpu: service needs 8 cpus, largest is 4 on n1");
    sched_result_release(&res);

    struct sched_instance gone[] = {{1, "n9"}, {2, NULL}};
    svc.memory = 0;
    svc.cpus = 0;
    assert_int_equal(place(nodes, 3, &svc, gone, 2, 1, &res), CP_ENOTFOUND);
    assert_string_equal(res.placements[0].error,
                        "stateful instance 1 is bound to node n9 which is "
                        "no longer in the grid");
    /* Instance 2 has no node yet: placed like a stateless one. */
    assert_string_not_equal(at(&res, 2), "-");
    sched_result_release(&res);
}

/* ==== Determinism and scale ==== */

static void test_deterministic(void **state)
{
    (void)state;
    struct sched_node nodes[6];
    for (int k = 0; k < 6; k++)
        nodes[k] = node(k + 1);
    struct sched_service svc = service();
    svc.instances = 4;
    const char *strategies[] = {"ha", "random"};
    for (size_t s = 0; s < 2; s++) {
        svc.strategy = strategies[s];
        for (uint64_t seed = 0; seed < 10; seed++) {
            struct sched_result a, b;
            assert_int_equal(place(nodes, 6, &svc, NULL, 0, seed, &a), 0);
            assert_int_equal(place(nodes, 6, &svc, NULL, 0, seed, &b), 0);
            for (size_t k = 1; k <= 4; k++)
                assert_string_equal(at(&a, k), at(&b, k));
            sched_result_release(&a);
            sched_result_release(&b);
        }
    }
}

static void test_large(void **state)
{
    (void)state;
    enum { NODES = 1000, INSTANCES = 10000 };
    static const char *const zones[][1] = {{"az=a"}, {"az=b"}, {"az=c"}};
    struct sched_node *nodes = cp_calloc(NODES, sizeof(*nodes));
    char(*names)[16] = cp_calloc(NODES, sizeof(*names));
    for (int k = 0; k < NODES; k++) {
        snprintf(names[k], sizeof(names[k]), "node-%d", k + 1);
        nodes[k] = node(1);
        nodes[k].id = nodes[k].name = names[k];
        nodes[k].node_number = k + 1;
        nodes[k].labels = zones[k % 3];
        nodes[k].n_labels = 1;
        nodes[k].mem_free = 4 * GIB;
    }
    struct sched_service svc = service();
    svc.instances = INSTANCES;
    svc.memory = 256 * MIB;
    svc.cpus = 1;
    const char *rules[] = {"label==~az=/[abc]/", "node!=node-7"};
    svc.affinity = rules;
    svc.n_affinity = 2;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct sched_result res;
    assert_int_equal(place(nodes, NODES, &svc, NULL, 0, 42, &res), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_int_equal(res.n_placed, INSTANCES);
    size_t max = 0;
    for (int k = 0; k < NODES; k++) {
        size_t c = count_on(&res, names[k]);
        if (c > max)
            max = c;
    }
    assert_int_equal(count_on(&res, "node-7"), 0);
    assert_true(max <= 11);
    sched_result_release(&res);
    printf("[ info ] ha: %d instances on %d nodes in %.3f s\n", INSTANCES,
           NODES,
           (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);

    /* Everything fails: still bounded, one error each. */
    const char *none[] = {"label==az=x"};
    svc.affinity = none;
    svc.n_affinity = 1;
    assert_int_equal(place(nodes, NODES, &svc, NULL, 0, 42, &res),
                     CP_ENOTFOUND);
    assert_int_equal(res.n_failed, INSTANCES);
    expect_has(res.error, "(1000 nodes checked)");
    sched_result_release(&res);
    cp_free(names);
    cp_free(nodes);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_availability),
        cmocka_unit_test(test_zero_nodes),
        cmocka_unit_test(test_all_drained),
        cmocka_unit_test(test_grace),
        cmocka_unit_test(test_ephemeral),
        cmocka_unit_test(test_affinity_label),
        cmocka_unit_test(test_affinity_node_container_service),
        cmocka_unit_test(test_affinity_regex_and_subst),
        cmocka_unit_test(test_affinity_default),
        cmocka_unit_test(test_affinity_invalid),
        cmocka_unit_test(test_port),
        cmocka_unit_test(test_port_within_round),
        cmocka_unit_test(test_cpu),
        cmocka_unit_test(test_memory),
        cmocka_unit_test(test_memory_within_round),
        cmocka_unit_test(test_dependency),
        cmocka_unit_test(test_ha_spreads),
        cmocka_unit_test(test_ha_spreads_zones),
        cmocka_unit_test(test_ha_prefers_previous),
        cmocka_unit_test(test_daemon),
        cmocka_unit_test(test_daemon_prefers_previous),
        cmocka_unit_test(test_random),
        cmocka_unit_test(test_unknown_strategy),
        cmocka_unit_test(test_stateful),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_large),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
