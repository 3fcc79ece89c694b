/* Unit tests of the deploy engine's pure rules (src/master/deploy_rules.c;
 * spec 5.3, 5.4): rolling concurrency, the deploy_rev format, the
 * instance wait verdict with its precise reasons (#2415 #3003), and the
 * reconciler's decision including stateful instances (#2274).
 * SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../src/master/deploy_rules.h"

#include <math.h>
#include <string.h>

static void test_concurrency(void **state)
{
    (void)state;
    assert_int_equal(deploy_rules_concurrency(1, 0.8), 1);
    assert_int_equal(deploy_rules_concurrency(4, 0.8), 1);
    assert_int_equal(deploy_rules_concurrency(5, 0.8), 1);
    assert_int_equal(deploy_rules_concurrency(10, 0.8), 2);
    assert_int_equal(deploy_rules_concurrency(10, 0.5), 5);
    assert_int_equal(deploy_rules_concurrency(10, 0.0), 10);
    assert_int_equal(deploy_rules_concurrency(10, 1.0), 1);
    assert_int_equal(deploy_rules_concurrency(1000, 0.0), 20);
    assert_int_equal(deploy_rules_concurrency(100, 0.5), 20);
    assert_int_equal(deploy_rules_concurrency(0, 0.5), 1);
    /* Out of range or NaN: the default 0.8. */
    assert_int_equal(deploy_rules_concurrency(10, 7.0), 2);
    assert_int_equal(deploy_rules_concurrency(10, -1.0), 2);
    assert_int_equal(deploy_rules_concurrency(10, NAN), 2);
}

static void test_rev(void **state)
{
    (void)state;
    char a[DEPLOY_RULES_REV_LEN], b[DEPLOY_RULES_REV_LEN];
    assert_string_equal(deploy_rules_rev(0, a), "1970-01-01 00:00:00");
    deploy_rules_rev(1767322800999LL, a);
    assert_string_equal(a, "2026-01-02 03:00:00");
    deploy_rules_rev(1767322801000LL, b);
    assert_true(strcmp(a, b) < 0);
}

static struct deploy_rules_wait waiting(void)
{
    return (struct deploy_rules_wait){
        .instance_number = 2,
        .node_name = "node-1",
        .node_id = "n1",
        .deploy_rev = "2026-01-02 03:00:00",
        .has_row = true,
        .row_node = "n1",
        .node_connected = true,
        .now_ms = 1000,
        .deadline_ms = 301000,
        .timeout_s = 300,
    };
}

static void test_wait(void **state)
{
    (void)state;
    char why[256];
    struct deploy_rules_wait w = waiting();
    assert_int_equal(deploy_rules_instance(&w, why, sizeof(why)),
                     DEPLOY_RULES_WAIT);

    /* An old report does not count. */
    w.rev = "2026-01-01 00:00:00";
    w.state = "running";
    assert_int_equal(deploy_rules_instance(&w, why, sizeof(why)),
                     DEPLOY_RULES_WAIT);
    /* Nor does the right rev in a state other than running. */
    w.rev = "2026-01-02 03:00:00";
    w.state = "stopped";
    assert_int_equal(deploy_rules_instance(&w, why, sizeof(why)),
                     DEPLOY_RULES_WAIT);
    w.state = "running";
    assert_int_equal(deploy_rules_instance(&w, why, sizeof(why)),
                     DEPLOY_RULES_OK);

    /* The agent's error, word for word. */
    w.error = "image not found: nginx:nope";
    assert_int_equal(deploy_rules_instance(&w, why, sizeof(why)),
                     DEPLOY_RULES_FAIL);
    assert_string_equal(why, "instance 2 on node node-1: image not found: "
                             "nginx:nope");

    /* A newer rev means somebody else deployed it. */
    w = waiting();
    w.rev = "2026-01-02 03:00:01";
    assert_int_equal(deploy_rules_instance(&w, why, sizeof(why)),
                     DEPLOY_RULES_FAIL);
    assert_non_null(strstr(why, "re-deployed"));

    /* Offline node. */
    w = waiting();
    w.node_connected = false;
    assert_int_equal(deploy_rules_instance(&w, why, sizeof(why)),
                     DEPLOY_RULES_FAIL);
    assert_string_equal(why, "node node-1 went offline");

    /* Timeouts say whether the agent reported at all. */
    w = waiting();
    w.now_ms = w.deadline_ms;
    assert_int_equal(deploy_rules_instance(&w, why, sizeof(why)),
                     DEPLOY_RULES_FAIL);
    assert_string_equal(why, "instance 2 on node node-1 did not report within "
                             "300 s");
    w.rev = w.deploy_rev;
    w.state = "restarting";
    assert_int_equal(deploy_rules_instance(&w, why, sizeof(why)),
                     DEPLOY_RULES_FAIL);
    assert_string_equal(why, "instance 2 on node node-1 is restarting after "
                             "300 s (wanted running)");

    /* The row went away or moved. */
    w = waiting();
    w.has_row = false;
    assert_int_equal(deploy_rules_instance(&w, why, sizeof(why)),
                     DEPLOY_RULES_FAIL);
    w = waiting();
    w.row_node = "";
    assert_int_equal(deploy_rules_instance(&w, why, sizeof(why)),
                     DEPLOY_RULES_FAIL);
    assert_non_null(strstr(why, "moved off node node-1"));
}

static const struct deploy_rules_node nodes[] = {
    {"n1", "node-1", true, 0},
    {"n2", "node-2", false, 100000}, /* offline since t=100 s */
};

static struct deploy_rules_service
service(const struct deploy_rules_instance *in, size_t n)
{
    return (struct deploy_rules_service){
        .wanted = (int)n,
        .grace_ms = 120000,
        .revision = 3,
        .deployed_revision = 3,
        .deployed_at_ms = 60000,
        .instances = in,
        .n_instances = n,
        .nodes = nodes,
        .n_nodes = 2,
        .now_ms = 200000,
    };
}

static void test_reconcile(void **state)
{
    (void)state;
    char why[256];
    int stuck;
    const char *off;
    struct deploy_rules_instance in[] = {{1, "n1", NULL}, {2, "n2", NULL}};
    struct deploy_rules_service s = service(in, 2);

    /* Offline for 100 s: inside the 120 s grace. */
    assert_int_equal(deploy_rules_reconcile(&s, why, sizeof(why), &stuck, &off),
                     DEPLOY_RULES_NONE);
    /* Past the grace: redeploy, naming the node for the re-check. */
    s.now_ms = 220000;
    assert_int_equal(deploy_rules_reconcile(&s, why, sizeof(why), &stuck, &off),
                     DEPLOY_RULES_DEPLOY);
    assert_string_equal(why, "node node-2 offline");
    assert_string_equal(off, "n2");

    /* Stateful: never moved; STUCK once, quiet once the error says so. */
    s.stateful = true;
    assert_int_equal(deploy_rules_reconcile(&s, why, sizeof(why), &stuck, &off),
                     DEPLOY_RULES_STUCK);
    assert_int_equal(stuck, 2);
    assert_string_equal(why, "stateful instance 2 is bound to offline node "
                             "node-2");
    in[1].error = "stateful instance 2 is bound to offline node node-2";
    assert_int_equal(deploy_rules_reconcile(&s, why, sizeof(why), &stuck, &off),
                     DEPLOY_RULES_NONE);

    /* A removed node. */
    struct deploy_rules_instance gone[] = {{1, "zz", NULL}};
    s = service(gone, 1);
    assert_int_equal(deploy_rules_reconcile(&s, why, sizeof(why), &stuck, &off),
                     DEPLOY_RULES_DEPLOY);
    s.stateful = true;
    assert_int_equal(deploy_rules_reconcile(&s, why, sizeof(why), &stuck, &off),
                     DEPLOY_RULES_STUCK);
    assert_string_equal(why, "stateful instance 1 is bound to a removed node");
}

static void test_reconcile_drift(void **state)
{
    (void)state;
    char why[256];
    int stuck;
    const char *off;
    struct deploy_rules_instance in[] = {{1, "n1", NULL}};
    struct deploy_rules_service s = service(in, 1);
    assert_int_equal(deploy_rules_reconcile(&s, why, sizeof(why), &stuck, &off),
                     DEPLOY_RULES_NONE);
    /* A daemon service on a new node. */
    s.wanted = 2;
    assert_int_equal(deploy_rules_reconcile(&s, why, sizeof(why), &stuck, &off),
                     DEPLOY_RULES_DEPLOY);
    assert_string_equal(why, "1 instances, 2 wanted");
    /* An unplaceable service (wanted 0) is left alone. */
    s.wanted = 0;
    assert_int_equal(deploy_rules_reconcile(&s, why, sizeof(why), &stuck, &off),
                     DEPLOY_RULES_NONE);
    /* A detached instance. */
    s.wanted = 1;
    in[0].node_id = "";
    assert_int_equal(deploy_rules_reconcile(&s, why, sizeof(why), &stuck, &off),
                     DEPLOY_RULES_DEPLOY);
    in[0].node_id = "n1";
    /* Revision lag. */
    s.revision = 4;
    assert_int_equal(deploy_rules_reconcile(&s, why, sizeof(why), &stuck, &off),
                     DEPLOY_RULES_DEPLOY);
    assert_string_equal(why, "service changed since its last deploy");
    /* Never deployed: no lag. */
    s.deployed_revision = 0;
    assert_int_equal(deploy_rules_reconcile(&s, why, sizeof(why), &stuck, &off),
                     DEPLOY_RULES_NONE);
    /* The interval forces a new revision. */
    s.deployed_at_ms = 100000;
    s.deployed_revision = 4;
    s.interval_ms = 60000;
    assert_int_equal(deploy_rules_reconcile(&s, why, sizeof(why), &stuck, &off),
                     DEPLOY_RULES_FORCE_DEPLOY);
    s.interval_ms = 200000;
    assert_int_equal(deploy_rules_reconcile(&s, why, sizeof(why), &stuck, &off),
                     DEPLOY_RULES_NONE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrency),
        cmocka_unit_test(test_rev),
        cmocka_unit_test(test_wait),
        cmocka_unit_test(test_reconcile),
        cmocka_unit_test(test_reconcile_drift),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
