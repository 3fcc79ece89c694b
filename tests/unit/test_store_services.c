/* Unit tests of the store's service-side operations (issue 4):
 * services, instances, deploys (queue, claim, fencing), containers, logs
 * and events, each against a fresh database: SQLite in a temporary data
 * directory, PostgreSQL when KONTENA_TEST_DATABASE_URL is set
 * (tests/pg.sh), or MongoDB when KONTENA_TEST_MONGODB_URI is set
 * (tests/mongo.sh; see store_testdb.h).
 * SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../src/common/alloc.h"
#include "../../src/common/err.h"
#include "../../src/common/util.h"
#include "../../src/master/store.h"
#include "store_testdb.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct fixture {
    struct testdb db;
    struct store *st;
    char grid[STORE_ID_LEN + 1];
    char node1[STORE_ID_LEN + 1];
    char node2[STORE_ID_LEN + 1];
};

static void make_node(struct store *st, const char *grid, const char *name,
                      char id[STORE_ID_LEN + 1])
{
    struct store_node n = {0}, out = {0};
    const char *field = NULL;
    store_new_id(n.id);
    memcpy(n.grid_id, grid, STORE_ID_LEN + 1);
    n.name = (char *)(uintptr_t)name;
    assert_int_equal(ST_CALL(st, node_create, &n, false, &out, &field), 0);
    memcpy(id, out.id, STORE_ID_LEN + 1);
    store_node_release(&out);
}

static void make_grid(struct store *st, const char *name, const char *tok,
                      char id[STORE_ID_LEN + 1])
{
    struct store_grid g = {0};
    store_new_id(g.id);
    g.name = (char *)(uintptr_t)name;
    g.token_hash = (char *)(uintptr_t)tok;
    g.initial_size = 1;
    g.subnet = (char *)(uintptr_t) "10.81.0.0/16";
    assert_int_equal(ST_CALL(st, grid_create, &g, NULL, NULL), 0);
    memcpy(id, g.id, STORE_ID_LEN + 1);
}

static int setup(void **state)
{
    struct fixture *f = cp_calloc(1, sizeof(*f));
    testdb_make(&f->db, NULL);
    char err[256] = "";
    if (store_open(f->db.url, &f->st, err, sizeof(err)) != 0)
        fail_msg("store_open: %s", err);
    make_grid(f->st, "g1", "tok-1", f->grid);
    make_node(f->st, f->grid, "node-1", f->node1);
    make_node(f->st, f->grid, "node-2", f->node2);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    store_close(f->st);
    testdb_drop(&f->db);
    cp_free(f);
    return 0;
}


/* Creates service name in stack_id ("" = null stack); returns its id. */
static void make_service(struct store *st, const char *grid,
                         const char *stack_id, const char *name,
                         char id[STORE_ID_LEN + 1])
{
    struct store_service v = {0};
    store_new_id(v.id);
    memcpy(v.grid_id, grid, STORE_ID_LEN + 1);
    snprintf(v.stack_id, sizeof(v.stack_id), "%s", stack_id);
    v.name = (char *)(uintptr_t)name;
    v.spec = json_pack("{s:s, s:i}", "image", "nginx:latest", "instances", 2);
    assert_int_equal(ST_CALL(st, service_create, &v), 0);
    json_decref(v.spec);
    memcpy(id, v.id, STORE_ID_LEN + 1);
}

/* ==== Services ==== */

static void test_services(void **state)
{
    struct fixture *f = *state;
    struct store *st = f->st;
    char web[25], db[25], api[25];
    make_service(st, f->grid, "", "web", web);
    make_service(st, f->grid, "", "db", db);

    /* a second stack, written straight into the database (no stack API
     * yet) */
    if (f->db.mongo) {
#ifdef CP_WITH_MONGODB
        char doc[512];
        snprintf(doc, sizeof(doc),
                 "{\"_id\": \"aaaaaaaaaaaaaaaaaaaaaaaa\", "
                 "\"grid_id\": \"%s\", \"name\": \"app\", "
                 "\"labels\": \"[]\", \"parent_name\": null, "
                 "\"revision\": {\"$numberLong\": \"0\"}, "
                 "\"removing\": false, "
                 "\"created_at\": {\"$numberLong\": \"1\"}, "
                 "\"updated_at\": {\"$numberLong\": \"1\"}}",
                 f->grid);
        testdb_mongo_insert(&f->db, "stacks", doc);
#endif
    } else {
        char sql[256];
        snprintf(sql, sizeof(sql),
                 "INSERT INTO stacks(id, grid_id, name, created_at, "
                 "updated_at) VALUES('aaaaaaaaaaaaaaaaaaaaaaaa', '%s', "
                 "'app', 1, 1)",
                 f->grid);
        testdb_exec(&f->db, sql);
    }
    make_service(st, f->grid, "aaaaaaaaaaaaaaaaaaaaaaaa", "web", api);

    struct store_service v = {0};
    assert_int_equal(ST_CALL(st, service_get, f->grid, "null", "web", &v), 0);
    assert_string_equal(v.id, web);
    assert_string_equal(v.stack_name, "null");
    assert_string_equal(v.state, "initialized");
    assert_int_equal(v.revision, 1);
    assert_string_equal(json_string_value(json_object_get(v.spec, "image")),
                        "nginx:latest");
    assert_true(v.created_at > 0);
    store_service_release(&v);
    assert_int_equal(ST_CALL(st, service_get, f->grid, "app", "web", &v), 0);
    assert_string_equal(v.id, api);
    assert_string_equal(v.stack_id, "aaaaaaaaaaaaaaaaaaaaaaaa");
    assert_string_equal(v.stack_name, "app");
    store_service_release(&v);
    assert_int_equal(ST_CALL(st, service_get, f->grid, "app", "db", &v),
                     CP_ENOTFOUND);
    assert_int_equal(ST_CALL(st, service_get_by_id, db, &v), 0);
    assert_string_equal(v.name, "db");
    assert_string_equal(v.stack_name, "null");
    store_service_release(&v);
    assert_int_equal(ST_CALL(st, service_get_by_id, "nope", &v), CP_ENOTFOUND);

    /* name taken in the stack; unknown grid or stack */
    struct store_service dup = {0};
    store_new_id(dup.id);
    memcpy(dup.grid_id, f->grid, sizeof(dup.grid_id));
    dup.name = (char *)(uintptr_t) "web";
    assert_int_equal(ST_CALL(st, service_create, &dup), CP_ECONFLICT);
    store_new_id(dup.grid_id);
    assert_int_equal(ST_CALL(st, service_create, &dup), CP_ENOTFOUND);
    memcpy(dup.grid_id, f->grid, sizeof(dup.grid_id));
    store_new_id(dup.stack_id);
    assert_int_equal(ST_CALL(st, service_create, &dup), CP_ENOTFOUND);

    /* list: all stacks ordered by stack, name; or one stack */
    struct store_service_list l = {0};
    assert_int_equal(ST_CALL(st, service_list, f->grid, NULL, &l), 0);
    assert_int_equal(l.len, 3);
    assert_string_equal(l.items[0].stack_name, "app");
    assert_string_equal(l.items[1].name, "db");
    assert_string_equal(l.items[2].name, "web");
    assert_string_equal(l.items[2].stack_name, "null");
    store_service_list_release(&l);
    assert_int_equal(ST_CALL(st, service_list, f->grid, "null", &l), 0);
    assert_int_equal(l.len, 2);
    store_service_list_release(&l);

    /* update */
    assert_int_equal(ST_CALL(st, service_get_by_id, web, &v), 0);
    json_decref(v.spec);
    v.spec = json_pack("{s:s}", "image", "nginx:1.25");
    v.revision = 2;
    v.stack_revision = 3;
    cp_free(v.state);
    v.state = cp_strdup("running");
    v.deployed_at = 777;
    v.deploy_requested_at = 666;
    v.updated_at = 888;
    assert_int_equal(ST_CALL(st, service_update, &v), 0);
    store_service_release(&v);
    assert_int_equal(ST_CALL(st, service_get_by_id, web, &v), 0);
    assert_int_equal(v.revision, 2);
    assert_int_equal(v.stack_revision, 3);
    assert_string_equal(v.state, "running");
    assert_int_equal(v.deployed_at, 777);
    assert_int_equal(v.deploy_requested_at, 666);
    assert_int_equal(v.updated_at, 888);
    assert_string_equal(json_string_value(json_object_get(v.spec, "image")),
                        "nginx:1.25");
    store_new_id(v.id);
    assert_int_equal(ST_CALL(st, service_update, &v), CP_ENOTFOUND);
    store_service_release(&v);

    /* grid counts, then the delete guard */
    struct store_grid g = {0};
    assert_int_equal(ST_CALL(st, grid_get_by_id, f->grid, &g), 0);
    assert_int_equal(g.service_count, 3);
    store_grid_release(&g);

    assert_int_equal(ST_CALL(st, service_delete, api), 0);
    assert_int_equal(ST_CALL(st, service_delete, api), CP_ENOTFOUND);
    assert_int_equal(ST_CALL(st, service_list, f->grid, NULL, &l), 0);
    assert_int_equal(l.len, 2);
    store_service_list_release(&l);
}

/* ==== Instances ==== */

static void put_instance(struct store *st, const char *svc, int number,
                         const char *node)
{
    struct store_instance i = {0};
    memcpy(i.service_id, svc, STORE_ID_LEN + 1);
    i.instance_number = number;
    snprintf(i.node_id, sizeof(i.node_id), "%s", node);
    i.desired_state = (char *)(uintptr_t) "running";
    i.deploy_rev = (char *)(uintptr_t) "2026-01-01 00:00:00";
    assert_int_equal(ST_CALL(st, instance_put, &i), 0);
}

static void test_instances(void **state)
{
    struct fixture *f = *state;
    struct store *st = f->st;
    char web[25], db[25];
    make_service(st, f->grid, "", "web", web);
    make_service(st, f->grid, "", "db", db);
    put_instance(st, web, 1, f->node1);
    put_instance(st, web, 2, f->node2);
    put_instance(st, web, 3, f->node1);
    put_instance(st, db, 1, f->node1);

    struct store_instance_list l = {0};
    assert_int_equal(ST_CALL(st, instance_list, web, &l), 0);
    assert_int_equal(l.len, 3);
    assert_int_equal(l.items[0].instance_number, 1);
    assert_string_equal(l.items[0].node_id, f->node1);
    assert_string_equal(l.items[0].desired_state, "running");
    assert_null(l.items[0].rev);
    char id1[25];
    memcpy(id1, l.items[0].id, sizeof(id1));
    store_instance_list_release(&l);

    /* replace keeps the row id; "" node means none */
    put_instance(st, web, 1, "");
    assert_int_equal(ST_CALL(st, instance_list, web, &l), 0);
    assert_string_equal(l.items[0].id, id1);
    assert_string_equal(l.items[0].node_id, "");
    store_instance_list_release(&l);
    put_instance(st, web, 1, f->node1);

    /* a missing service is CP_ENOTFOUND */
    struct store_instance bad = {0};
    store_new_id(bad.service_id);
    bad.instance_number = 1;
    assert_int_equal(ST_CALL(st, instance_put, &bad), CP_ENOTFOUND);

    /* reports: newer or equal rev wins, older is ignored */
    const char *r1 = "2026-01-01 00:00:10", *r0 = "2026-01-01 00:00:05",
               *r2 = "2026-01-01 00:00:20";
    assert_int_equal(
        ST_CALL(st, instance_report, web, 1, f->node1, r1, "running", NULL), 0);
    assert_int_equal(
        ST_CALL(st, instance_report, web, 1, f->node1, r0, "stopped", "old"),
        0);
    assert_int_equal(ST_CALL(st, instance_list, web, &l), 0);
    assert_string_equal(l.items[0].rev, r1);
    assert_string_equal(l.items[0].state, "running");
    assert_null(l.items[0].error);
    store_instance_list_release(&l);
    assert_int_equal(ST_CALL(st, instance_report, web, 1, f->node1, r1,
                             "running", "same rev"),
                     0);
    assert_int_equal(
        ST_CALL(st, instance_report, web, 1, f->node1, r2, "error", "boom"), 0);
    /* a node the instance is not placed on cannot overwrite it */
    assert_int_equal(ST_CALL(st, instance_report, web, 1, f->node2,
                             "2026-01-01 00:00:30", "stopped", NULL),
                     0);
    assert_int_equal(ST_CALL(st, instance_list, web, &l), 0);
    assert_string_equal(l.items[0].rev, r2);
    assert_string_equal(l.items[0].state, "error");
    assert_string_equal(l.items[0].error, "boom");
    store_instance_list_release(&l);
    assert_int_equal(
        ST_CALL(st, instance_report, web, 9, f->node1, r2, "running", NULL),
        CP_ENOTFOUND);

    /* the node's pods: instances with their services, one list each */
    struct store_instance_list on = {0};
    struct store_service_list svcs = {0};
    assert_int_equal(ST_CALL(st, instances_on_node, f->node1, &on, &svcs), 0);
    assert_int_equal(on.len, 3);
    assert_int_equal(svcs.len, 3);
    for (size_t i = 0; i < on.len; i++) {
        assert_string_equal(on.items[i].service_id, svcs.items[i].id);
        assert_string_equal(on.items[i].node_id, f->node1);
        assert_string_equal(svcs.items[i].stack_name, "null");
        assert_non_null(json_object_get(svcs.items[i].spec, "image"));
    }
    assert_string_equal(svcs.items[0].name, "db");
    assert_string_equal(svcs.items[1].name, "web");
    assert_int_equal(on.items[1].instance_number, 1);
    assert_int_equal(on.items[2].instance_number, 3);
    store_instance_list_release(&on);
    store_service_list_release(&svcs);

    /* trim above 2 */
    assert_int_equal(ST_CALL(st, instance_trim, web, 2), 0);
    assert_int_equal(ST_CALL(st, instance_list, web, &l), 0);
    assert_int_equal(l.len, 2);
    store_instance_list_release(&l);

    /* detach */
    int count = -1;
    assert_int_equal(ST_CALL(st, instances_detach_node, f->node1, &count), 0);
    assert_int_equal(count, 2);
    assert_int_equal(ST_CALL(st, instances_on_node, f->node1, &on, &svcs), 0);
    assert_int_equal(on.len, 0);
    store_instance_list_release(&on);
    store_service_list_release(&svcs);
    assert_int_equal(ST_CALL(st, instances_on_node, f->node2, &on, &svcs), 0);
    assert_int_equal(on.len, 1);
    store_instance_list_release(&on);
    store_service_list_release(&svcs);
}

/* ==== Deploys ==== */

static void queue(struct store *st, const char *svc, bool force,
                  struct store_deploy *out)
{
    struct store_deploy d = {0};
    memcpy(d.service_id, svc, STORE_ID_LEN + 1);
    d.force = force;
    d.reason = (char *)(uintptr_t) "test";
    assert_int_equal(ST_CALL(st, deploy_queue, &d, out), 0);
}

/* The batched forms: instance_put_many writes all in one transaction,
 * instances_report_many gives each entry instance_report's answer. */
static void test_instances_many(void **state)
{
    struct fixture *f = *state;
    struct store *st = f->st;
    char web[25];
    make_service(st, f->grid, "", "web", web);
    struct store_instance v[3];
    memset(v, 0, sizeof(v));
    for (int k = 0; k < 3; k++) {
        memcpy(v[k].service_id, web, STORE_ID_LEN + 1);
        v[k].instance_number = k + 1;
        snprintf(v[k].node_id, sizeof(v[k].node_id), "%s",
                 k == 1 ? f->node2 : f->node1);
        v[k].desired_state = (char *)(uintptr_t) "running";
        v[k].deploy_rev = (char *)(uintptr_t) "2026-01-01 00:00:00";
    }
    assert_int_equal(ST_CALL(st, instance_put_many, v, 0), 0);
    assert_int_equal(ST_CALL(st, instance_put_many, v, 3), 0);
    struct store_instance_list l = {0};
    assert_int_equal(ST_CALL(st, instance_list, web, &l), 0);
    assert_int_equal(l.len, 3);
    assert_string_equal(l.items[1].node_id, f->node2);
    store_instance_list_release(&l);

    /* one bad entry (no such service) rolls back the whole put */
    struct store_instance bad[2];
    memcpy(bad, v, sizeof(bad));
    bad[0].instance_number = 4;
    store_new_id(bad[1].service_id);
    assert_int_equal(ST_CALL(st, instance_put_many, bad, 2), CP_ENOTFOUND);
    assert_int_equal(ST_CALL(st, instance_list, web, &l), 0);
    assert_int_equal(l.len, 3);
    store_instance_list_release(&l);

    const char *r1 = "2026-01-01 00:00:10", *r0 = "2026-01-01 00:00:05";
    struct store_instance_report r[5] = {
        {web, 1, f->node1, r1, "running", NULL, -1},
        {web, 2, f->node1, r1, "running", NULL, -1}, /* not its node */
        {web, 3, f->node1, r1, "error", "boom", -1},
        {web, 9, f->node1, r1, "running", NULL, -1}, /* no such */
        {web, 1, f->node1, r0, "stopped", NULL, -1}, /* older */
    };
    assert_int_equal(ST_CALL(st, instances_report_many, r, 5), 0);
    assert_int_equal(r[0].rc, 0);
    assert_int_equal(r[1].rc, 0);
    assert_int_equal(r[2].rc, 0);
    assert_int_equal(r[3].rc, CP_ENOTFOUND);
    assert_int_equal(r[4].rc, 0);
    assert_int_equal(ST_CALL(st, instance_list, web, &l), 0);
    assert_string_equal(l.items[0].rev, r1);
    assert_string_equal(l.items[0].state, "running");
    assert_null(l.items[1].rev);
    assert_null(l.items[1].state);
    assert_string_equal(l.items[2].state, "error");
    assert_string_equal(l.items[2].error, "boom");
    store_instance_list_release(&l);
    assert_int_equal(ST_CALL(st, instances_report_many, r, 0), 0);

    /* a node's pod rows: names, instances and raw service columns */
    struct store_pod_rows pr = {0};
    assert_int_equal(ST_CALL(st, node_pod_rows, f->node1, f->grid, &pr), 0);
    assert_non_null(pr.node_name);
    assert_non_null(pr.grid_name);
    assert_int_equal(pr.len, 2);
    assert_int_equal(pr.items[0].inst.instance_number, 1);
    assert_int_equal(pr.items[1].inst.instance_number, 3);
    assert_string_equal(pr.items[0].inst.service_id, web);
    assert_string_equal(pr.items[0].service_name, "web");
    assert_string_equal(pr.items[0].stack_name, "null");
    assert_non_null(strstr(pr.items[0].spec, "image"));
    store_pod_rows_release(&pr);
    char none[25];
    store_new_id(none);
    assert_int_equal(ST_CALL(st, node_pod_rows, none, f->grid, &pr),
                     CP_ENOTFOUND);
    assert_int_equal(ST_CALL(st, node_pod_rows, f->node1, none, &pr),
                     CP_ENOTFOUND);
}

static void test_deploy_queue(void **state)
{
    struct fixture *f = *state;
    struct store *st = f->st;
    char web[25];
    make_service(st, f->grid, "", "web", web);

    struct store_deploy a = {0}, b = {0}, c = {0};
    queue(st, web, false, &a);
    assert_string_equal(a.state, "created");
    assert_false(a.force);
    assert_true(a.created_at > 0 && a.queued_at > 0);
    assert_true(json_is_array(a.instance_deploys));
    assert_string_equal(a.stack_deploy_id, "");
    /* coalesced: the same deploy, force or-ed in, and not or-ed out */
    queue(st, web, true, &b);
    assert_string_equal(b.id, a.id);
    assert_true(b.force);
    store_deploy_release(&b);
    queue(st, web, false, &b);
    assert_string_equal(b.id, a.id);
    assert_true(b.force);
    store_deploy_release(&b);

    /* once claimed, a new one is queued */
    assert_int_equal(ST_CALL(st, deploy_claim, "m1", 1000, 5000, &c), 0);
    assert_string_equal(c.id, a.id);
    store_deploy_release(&c);
    queue(st, web, false, &b);
    assert_string_not_equal(b.id, a.id);

    struct store_deploy_list l = {0};
    assert_int_equal(ST_CALL(st, deploy_list, web, 10, &l), 0);
    assert_int_equal(l.len, 2);
    assert_string_equal(l.items[0].id, b.id); /* newest first */
    store_deploy_list_release(&l);
    assert_int_equal(ST_CALL(st, deploy_list, web, 1, &l), 0);
    assert_int_equal(l.len, 1);
    store_deploy_list_release(&l);

    struct store_deploy bad = {0};
    store_new_id(bad.service_id);
    assert_int_equal(ST_CALL(st, deploy_queue, &bad, &c), CP_ENOTFOUND);
    assert_int_equal(ST_CALL(st, deploy_get, "nope", &c), CP_ENOTFOUND);
    store_deploy_release(&a);
    store_deploy_release(&b);
}

static void test_deploy_claim(void **state)
{
    struct fixture *f = *state;
    struct store *st = f->st;
    char web[25], db[25];
    make_service(st, f->grid, "", "web", web);
    make_service(st, f->grid, "", "db", db);
    struct store_deploy d1 = {0}, d2 = {0}, got = {0}, other = {0};

    assert_int_equal(ST_CALL(st, deploy_claim, "m1", 1000, 5000, &got),
                     CP_ENOTFOUND);
    queue(st, web, false, &d1);

    /* one wins, the other finds nothing */
    assert_int_equal(ST_CALL(st, deploy_claim, "m1", 1000, 5000, &got), 0);
    assert_string_equal(got.id, d1.id);
    assert_string_equal(got.state, "ongoing");
    assert_string_equal(got.claimed_by, "m1");
    assert_int_equal(got.lease_until, 6000);
    assert_int_equal(got.started_at, 1000);
    assert_int_equal(ST_CALL(st, deploy_claim, "m2", 1001, 5000, &other),
                     CP_ENOTFOUND);

    /* a queued deploy of the same service waits for the live lease */
    queue(st, web, false, &d2);
    assert_int_equal(ST_CALL(st, deploy_claim, "m2", 2000, 5000, &other),
                     CP_ENOTFOUND);

    /* fencing: the holder writes, a stranger cannot */
    json_t *ideps = json_pack("[{s:i, s:s, s:s}]", "instance_number", 1, "node",
                              "node-1", "state", "ongoing");
    json_decref(got.instance_deploys);
    got.instance_deploys = ideps;
    got.lease_until = 9000; /* renew */
    assert_int_equal(ST_CALL(st, deploy_update, &got), 0);
    cp_free(got.claimed_by);
    got.claimed_by = cp_strdup("m2");
    assert_int_equal(ST_CALL(st, deploy_update, &got), CP_ECONFLICT);
    store_deploy_release(&got);

    /* renewed lease still live at 8000 */
    assert_int_equal(ST_CALL(st, deploy_claim, "m2", 8000, 5000, &other),
                     CP_ENOTFOUND);
    /* m1 died: at 9000 the lease has expired; m2 takes d1 over, keeping
     * its instance_deploys, before the queued d2 */
    assert_int_equal(ST_CALL(st, deploy_claim, "m2", 9000, 5000, &other), 0);
    assert_string_equal(other.id, d1.id);
    assert_string_equal(other.claimed_by, "m2");
    assert_int_equal(other.started_at, 9000);
    assert_int_equal(other.lease_until, 14000);
    assert_int_equal(json_array_size(other.instance_deploys), 1);
    /* m1 comes back: its writes are fenced off */
    assert_int_equal(ST_CALL(st, deploy_get, d1.id, &got), 0);
    cp_free(got.claimed_by);
    got.claimed_by = cp_strdup("m1");
    cp_free(got.state);
    got.state = cp_strdup("error");
    assert_int_equal(ST_CALL(st, deploy_update, &got), CP_ECONFLICT);
    store_deploy_release(&got);
    /* d2 still waits */
    assert_int_equal(ST_CALL(st, deploy_claim, "m1", 9500, 5000, &got),
                     CP_ENOTFOUND);

    /* m2 finishes d1; then d2 is claimable */
    cp_free(other.state);
    other.state = cp_strdup("success");
    other.finished_at = 9600;
    other.lease_until = 0;
    assert_int_equal(ST_CALL(st, deploy_update, &other), 0);
    store_deploy_release(&other);
    assert_int_equal(ST_CALL(st, deploy_get, d1.id, &got), 0);
    assert_string_equal(got.state, "success");
    assert_int_equal(got.finished_at, 9600);
    assert_int_equal(json_array_size(got.instance_deploys), 1);
    store_deploy_release(&got);
    assert_int_equal(ST_CALL(st, deploy_claim, "m1", 9700, 5000, &got), 0);
    assert_string_equal(got.id, d2.id);
    store_deploy_release(&got);

    /* another service's deploy is independent of web's live lease */
    struct store_deploy d3 = {0};
    queue(st, db, false, &d3);
    assert_int_equal(ST_CALL(st, deploy_claim, "m2", 9800, 5000, &got), 0);
    assert_string_equal(got.id, d3.id);
    store_deploy_release(&got);

    /* an unknown deploy */
    struct store_deploy none = {0};
    store_new_id(none.id);
    assert_int_equal(ST_CALL(st, deploy_update, &none), CP_ENOTFOUND);

    store_deploy_release(&d1);
    store_deploy_release(&d2);
    store_deploy_release(&d3);
}

#define CLAIM_THREADS 8

struct claimer {
    struct store *st;
    char holder[16];
    int rc;
};

static void *claim_thread(void *arg)
{
    struct claimer *c = arg;
    struct store_deploy d = {0};
    c->rc = ST_CALL(c->st, deploy_claim, c->holder, 1000, 60000, &d);
    store_deploy_release(&d);
    return NULL;
}

/* Many masters race for one queued deploy: exactly one wins. */
static void test_deploy_claim_race(void **state)
{
    struct fixture *f = *state;
    char web[25];
    make_service(f->st, f->grid, "", "web", web);
    struct store_deploy d = {0};
    queue(f->st, web, false, &d);
    store_deploy_release(&d);

    struct claimer c[CLAIM_THREADS];
    pthread_t t[CLAIM_THREADS];
    for (int i = 0; i < CLAIM_THREADS; i++) {
        c[i].st = f->st;
        snprintf(c[i].holder, sizeof(c[i].holder), "m%d", i);
        assert_int_equal(pthread_create(&t[i], NULL, claim_thread, &c[i]), 0);
    }
    int won = 0;
    for (int i = 0; i < CLAIM_THREADS; i++) {
        pthread_join(t[i], NULL);
        if (c[i].rc == 0)
            won++;
        else
            assert_int_equal(c[i].rc, CP_ENOTFOUND);
    }
    assert_int_equal(won, 1);
}

static void test_deploys_prune(void **state)
{
    struct fixture *f = *state;
    struct store *st = f->st;
    char web[25], db[25];
    make_service(st, f->grid, "", "web", web);
    make_service(st, f->grid, "", "db", db);
    const char *svcs[2] = {web, db};
    for (int s = 0; s < 2; s++) {
        for (int i = 0; i < 5; i++) {
            struct store_deploy d = {0};
            queue(st, svcs[s], false, &d);
            store_deploy_release(&d);
            assert_int_equal(ST_CALL(st, deploy_claim, "m", 1000, 10, &d), 0);
            cp_free(d.state);
            d.state = cp_strdup(i % 2 ? "success" : "error");
            assert_int_equal(ST_CALL(st, deploy_update, &d), 0);
            store_deploy_release(&d);
        }
    }
    /* one still queued: never pruned */
    struct store_deploy q = {0};
    queue(st, web, false, &q);
    int deleted = -1;
    assert_int_equal(ST_CALL(st, deploys_prune, 2, &deleted), 0);
    assert_int_equal(deleted, 6);
    struct store_deploy_list l = {0};
    assert_int_equal(ST_CALL(st, deploy_list, web, 0, &l), 0);
    assert_int_equal(l.len, 3);
    assert_string_equal(l.items[0].id, q.id);
    store_deploy_list_release(&l);
    assert_int_equal(ST_CALL(st, deploy_list, db, 0, &l), 0);
    assert_int_equal(l.len, 2);
    store_deploy_list_release(&l);
    store_deploy_release(&q);
}

/* ==== Cascades ==== */

static void test_service_delete_cascades(void **state)
{
    struct fixture *f = *state;
    struct store *st = f->st;
    char web[25];
    make_service(st, f->grid, "", "web", web);
    put_instance(st, web, 1, f->node1);
    struct store_deploy d = {0};
    queue(st, web, false, &d);
    assert_int_equal(ST_CALL(st, service_delete, web), 0);
    struct store_instance_list l = {0};
    assert_int_equal(ST_CALL(st, instance_list, web, &l), 0);
    assert_int_equal(l.len, 0);
    struct store_deploy got = {0};
    assert_int_equal(ST_CALL(st, deploy_get, d.id, &got), CP_ENOTFOUND);
    store_deploy_release(&d);
}

/* ==== Containers ==== */

static void save(struct store *st, const char *grid, const char *node,
                 const char *svc, const char *cid, const char *name,
                 const char *status)
{
    struct store_container k = {0};
    memcpy(k.grid_id, grid, STORE_ID_LEN + 1);
    snprintf(k.node_id, sizeof(k.node_id), "%s", node);
    snprintf(k.service_id, sizeof(k.service_id), "%s", svc);
    k.container_id = (char *)(uintptr_t)cid;
    k.name = (char *)(uintptr_t)name;
    k.instance_number = 1;
    k.status = (char *)(uintptr_t)status;
    k.info = json_pack("{s:s}", "image", "nginx");
    assert_int_equal(ST_CALL(st, container_save, &k), 0);
    json_decref(k.info);
}

static void test_containers(void **state)
{
    struct fixture *f = *state;
    struct store *st = f->st;
    char web[25];
    make_service(st, f->grid, "", "web", web);
    save(st, f->grid, f->node1, web, "c1", "web-1", "running");
    save(st, f->grid, f->node1, "", "c2", "weave", "running");
    save(st, f->grid, f->node2, web, "c3", "web-2", "running");

    struct store_container_list l = {0};
    assert_int_equal(ST_CALL(st, container_list, f->grid, NULL, NULL, &l), 0);
    assert_int_equal(l.len, 3);
    assert_string_equal(l.items[0].name, "weave");
    assert_string_equal(l.items[0].service_id, "");
    assert_string_equal(l.items[1].name, "web-1");
    assert_string_equal(l.items[1].node_id, f->node1);
    assert_string_equal(
        json_string_value(json_object_get(l.items[1].info, "image")), "nginx");
    char id1[25];
    memcpy(id1, l.items[1].id, sizeof(id1));
    int64_t created1 = l.items[1].created_at;
    store_container_list_release(&l);
    assert_int_equal(ST_CALL(st, container_list, f->grid, f->node1, NULL, &l),
                     0);
    assert_int_equal(l.len, 2);
    store_container_list_release(&l);
    assert_int_equal(ST_CALL(st, container_list, f->grid, NULL, web, &l), 0);
    assert_int_equal(l.len, 2);
    store_container_list_release(&l);
    assert_int_equal(ST_CALL(st, container_list, f->grid, f->node2, web, &l),
                     0);
    assert_int_equal(l.len, 1);
    store_container_list_release(&l);

    /* upsert by engine id keeps the row */
    save(st, f->grid, f->node1, web, "c1", "web-1", "stopped");
    struct store_container k = {0};
    assert_int_equal(ST_CALL(st, container_get, f->grid, f->node1, "web-1", &k),
                     0);
    assert_string_equal(k.id, id1);
    assert_string_equal(k.status, "stopped");
    assert_int_equal(k.created_at, created1);
    store_container_release(&k);
    assert_int_equal(ST_CALL(st, container_get, f->grid, NULL, "web-2", &k), 0);
    assert_string_equal(k.container_id, "c3");
    store_container_release(&k);
    assert_int_equal(ST_CALL(st, container_get, f->grid, f->node1, "web-2", &k),
                     CP_ENOTFOUND);

    struct store_grid g = {0};
    assert_int_equal(ST_CALL(st, grid_get_by_id, f->grid, &g), 0);
    assert_int_equal(g.container_count, 3);
    store_grid_release(&g);

    /* node went away: its containers leave the lists and counts */
    assert_int_equal(
        ST_CALL(st, containers_mark_deleted, f->node1, cp_now_ms()), 0);
    assert_int_equal(ST_CALL(st, container_list, f->grid, NULL, NULL, &l), 0);
    assert_int_equal(l.len, 1);
    store_container_list_release(&l);
    assert_int_equal(ST_CALL(st, container_get, f->grid, f->node1, "web-1", &k),
                     CP_ENOTFOUND);
    assert_int_equal(ST_CALL(st, grid_get_by_id, f->grid, &g), 0);
    assert_int_equal(g.container_count, 1);
    store_grid_release(&g);
    /* and a fresh save brings one back */
    save(st, f->grid, f->node1, web, "c1", "web-1", "running");
    assert_int_equal(ST_CALL(st, container_get, f->grid, f->node1, "web-1", &k),
                     0);
    assert_int_equal(k.deleted_at, 0);
    store_container_release(&k);

    /* cleanup keeps only the listed engine ids of that node */
    save(st, f->grid, f->node1, "", "c4", "other", "running");
    const char *keep[] = {"c1", "c3"}; /* c3 is on node2: not touched */
    int deleted = -1;
    assert_int_equal(
        ST_CALL(st, containers_cleanup, f->node1, keep, 2, &deleted), 0);
    assert_int_equal(deleted, 2); /* c2, c4 */
    assert_int_equal(ST_CALL(st, container_list, f->grid, NULL, NULL, &l), 0);
    assert_int_equal(l.len, 2);
    assert_string_equal(l.items[0].container_id, "c1");
    assert_string_equal(l.items[1].container_id, "c3");
    store_container_list_release(&l);
    assert_int_equal(
        ST_CALL(st, containers_cleanup, f->node2, NULL, 0, &deleted), 0);
    assert_int_equal(deleted, 1);

    assert_int_equal(ST_CALL(st, container_delete, "c1"), 0);
    assert_int_equal(ST_CALL(st, container_delete, "c1"), CP_ENOTFOUND);
    assert_int_equal(ST_CALL(st, container_list, f->grid, NULL, NULL, &l), 0);
    assert_int_equal(l.len, 0);
    store_container_list_release(&l);
}

/* ==== Logs and events ==== */

static void append_logs(struct fixture *f, const char *svc_a, const char *svc_b,
                        int n)
{
    struct store_log *v = cp_calloc((size_t)n, sizeof(*v));
    char data[32];
    for (int i = 0; i < n; i++) {
        memcpy(v[i].grid_id, f->grid, sizeof(v[i].grid_id));
        memcpy(v[i].node_id, i % 2 ? f->node2 : f->node1, sizeof(v[i].node_id));
        memcpy(v[i].service_id, i % 2 ? svc_b : svc_a, sizeof(v[i].service_id));
        v[i].container_id = (char *)(uintptr_t)(i % 2 ? "cb" : "ca");
        v[i].name = (char *)(uintptr_t)(i % 2 ? "b-1" : "a-1");
        v[i].type = (char *)(uintptr_t) "stdout";
        snprintf(data, sizeof(data), "line %d", i);
        v[i].data = cp_strdup(data);
        v[i].created_at = 1000 + i;
    }
    assert_int_equal(ST_CALL(f->st, logs_append, v, (size_t)n), 0);
    for (int i = 0; i < n; i++)
        cp_free(v[i].data);
    cp_free(v);
}

static void test_logs(void **state)
{
    struct fixture *f = *state;
    struct store *st = f->st;
    char a[25], b[25];
    make_service(st, f->grid, "", "a", a);
    make_service(st, f->grid, "", "b", b);
    append_logs(f, a, b, 300);

    /* default: the last 100, oldest first */
    struct store_log_query q = {.grid_id = f->grid};
    struct store_log_list l = {0};
    assert_int_equal(ST_CALL(st, logs_read, &q, &l), 0);
    assert_int_equal(l.len, 100);
    assert_string_equal(l.items[0].data, "line 200");
    assert_string_equal(l.items[99].data, "line 299");
    assert_true(l.items[0].seq < l.items[99].seq);
    int64_t seq200 = l.items[0].seq;
    store_log_list_release(&l);

    /* after_seq reads forward, at most limit */
    q.after_seq = seq200;
    q.limit = 5;
    assert_int_equal(ST_CALL(st, logs_read, &q, &l), 0);
    assert_int_equal(l.len, 5);
    assert_string_equal(l.items[0].data, "line 201");
    assert_string_equal(l.items[4].data, "line 205");
    store_log_list_release(&l);

    /* filters narrow */
    q = (struct store_log_query){
        .grid_id = f->grid, .service_id = b, .limit = 3};
    assert_int_equal(ST_CALL(st, logs_read, &q, &l), 0);
    assert_int_equal(l.len, 3);
    assert_string_equal(l.items[0].data, "line 295");
    assert_string_equal(l.items[2].data, "line 299");
    assert_string_equal(l.items[2].service_id, b);
    assert_string_equal(l.items[2].name, "b-1");
    assert_string_equal(l.items[2].container_id, "cb");
    store_log_list_release(&l);
    q = (struct store_log_query){.container_name = "a-1", .limit = 2};
    assert_int_equal(ST_CALL(st, logs_read, &q, &l), 0);
    assert_int_equal(l.len, 2);
    assert_string_equal(l.items[1].data, "line 298");
    store_log_list_release(&l);
    q = (struct store_log_query){
        .grid_id = f->grid, .node_id = f->node2, .service_id = a};
    assert_int_equal(ST_CALL(st, logs_read, &q, &l), 0);
    assert_int_equal(l.len, 0);
    store_log_list_release(&l);

    /* since: rows created at or after since_ms */
    q = (struct store_log_query){
        .grid_id = f->grid, .since_ms = 1290, .limit = 1000};
    assert_int_equal(ST_CALL(st, logs_read, &q, &l), 0);
    assert_int_equal(l.len, 10);
    assert_string_equal(l.items[0].data, "line 290");
    store_log_list_release(&l);

    /* the cap */
    q = (struct store_log_query){.grid_id = f->grid, .limit = 1000000};
    assert_int_equal(ST_CALL(st, logs_read, &q, &l), 0);
    assert_int_equal(l.len, 300);
    store_log_list_release(&l);
}

static void test_events(void **state)
{
    struct fixture *f = *state;
    struct store *st = f->st;
    char a[25];
    make_service(st, f->grid, "", "a", a);
    struct store_service v = {0};
    assert_int_equal(ST_CALL(st, service_get_by_id, a, &v), 0);

    struct store_event e[10];
    memset(e, 0, sizeof(e));
    for (int i = 0; i < 10; i++) {
        memcpy(e[i].grid_id, f->grid, sizeof(e[i].grid_id));
        if (i < 4) {
            memcpy(e[i].stack_id, v.stack_id, sizeof(e[i].stack_id));
            memcpy(e[i].service_id, a, sizeof(e[i].service_id));
        }
        if (i == 9)
            memcpy(e[i].node_id, f->node1, sizeof(e[i].node_id));
        e[i].severity = i % 4;
        e[i].type = (char *)(uintptr_t) "service:deploy";
        e[i].message = (char *)(uintptr_t) "hello";
        e[i].meta = i == 0 ? json_pack("{s:i}", "rev", 7) : NULL;
        e[i].created_at = 5000 + i;
    }
    assert_int_equal(ST_CALL(st, events_append, e, 10), 0);
    json_decref(e[0].meta);

    struct store_log_query q = {.grid_id = f->grid};
    struct store_event_list l = {0};
    assert_int_equal(ST_CALL(st, events_read, &q, &l), 0);
    assert_int_equal(l.len, 10);
    assert_int_equal(
        json_integer_value(json_object_get(l.items[0].meta, "rev")), 7);
    assert_null(l.items[1].meta);
    assert_int_equal(l.items[3].severity, 3);
    assert_string_equal(l.items[3].type, "service:deploy");
    assert_string_equal(l.items[5].service_id, "");
    int64_t first = l.items[0].seq;
    store_event_list_release(&l);

    q = (struct store_log_query){.stack_id = v.stack_id, .limit = 2};
    assert_int_equal(ST_CALL(st, events_read, &q, &l), 0);
    assert_int_equal(l.len, 2);
    assert_int_equal(l.items[1].created_at, 5003);
    store_event_list_release(&l);
    q = (struct store_log_query){.service_id = a, .after_seq = first};
    assert_int_equal(ST_CALL(st, events_read, &q, &l), 0);
    assert_int_equal(l.len, 3);
    store_event_list_release(&l);
    q = (struct store_log_query){.grid_id = f->grid, .node_id = f->node1};
    assert_int_equal(ST_CALL(st, events_read, &q, &l), 0);
    assert_int_equal(l.len, 1);
    assert_string_equal(l.items[0].node_id, f->node1);
    store_event_list_release(&l);
    q = (struct store_log_query){.grid_id = f->grid, .since_ms = 5008};
    assert_int_equal(ST_CALL(st, events_read, &q, &l), 0);
    assert_int_equal(l.len, 2);
    store_event_list_release(&l);
    store_service_release(&v);
}

static void test_history_trim(void **state)
{
    struct fixture *f = *state;
    struct store *st = f->st;
    char a[25];
    make_service(st, f->grid, "", "a", a);
    append_logs(f, a, a, 50);
    struct store_event e[20];
    memset(e, 0, sizeof(e));
    for (int i = 0; i < 20; i++) {
        memcpy(e[i].grid_id, f->grid, sizeof(e[i].grid_id));
        e[i].type = (char *)(uintptr_t) "t";
    }
    assert_int_equal(ST_CALL(st, events_append, e, 20), 0);

    assert_int_equal(ST_CALL(st, history_trim, 10, 5), 0);
    struct store_log_query q = {.grid_id = f->grid, .limit = 1000};
    struct store_log_list l = {0};
    assert_int_equal(ST_CALL(st, logs_read, &q, &l), 0);
    assert_int_equal(l.len, 10);
    assert_string_equal(l.items[0].data, "line 40"); /* the newest kept */
    store_log_list_release(&l);
    struct store_event_list el = {0};
    assert_int_equal(ST_CALL(st, events_read, &q, &el), 0);
    assert_int_equal(el.len, 5);
    store_event_list_release(&el);
    /* under the caps: nothing more goes; negative = no cap */
    assert_int_equal(ST_CALL(st, history_trim, 100, -1), 0);
    assert_int_equal(ST_CALL(st, logs_read, &q, &l), 0);
    assert_int_equal(l.len, 10);
    store_log_list_release(&l);
}

/* Deleting a grid (once its nodes and services are gone) takes its
 * containers, logs and events with it. */
static void test_grid_delete_cascades(void **state)
{
    struct fixture *f = *state;
    struct store *st = f->st;
    char a[25];
    make_service(st, f->grid, "", "a", a);
    save(st, f->grid, f->node1, a, "c1", "a-1", "running");
    append_logs(f, a, a, 4);
    struct store_event e = {0};
    memcpy(e.grid_id, f->grid, sizeof(e.grid_id));
    e.type = (char *)(uintptr_t) "t";
    assert_int_equal(ST_CALL(st, events_append, &e, 1), 0);

    assert_int_equal(ST_CALL(st, grid_delete, f->grid), CP_ECONFLICT);
    assert_int_equal(ST_CALL(st, node_delete, f->node1), 0);
    assert_int_equal(ST_CALL(st, node_delete, f->node2), 0);
    assert_int_equal(ST_CALL(st, grid_delete, f->grid), CP_ECONFLICT);
    assert_int_equal(ST_CALL(st, service_delete, a), 0);
    assert_int_equal(ST_CALL(st, grid_delete, f->grid), 0);

    struct testdb *db = &f->db;
    assert_int_equal(testdb_rows(db, "containers"), 0);
    assert_int_equal(testdb_rows(db, "container_logs"), 0);
    assert_int_equal(testdb_rows(db, "event_logs"), 0);
    assert_int_equal(testdb_rows(db, "stacks"), 0);
}

/* The history reads must be served by the (col, seq) indexes, not a scan
 * of a table that holds up to millions of lines. */
static void test_history_plans(void **state)
{
    struct fixture *f = *state;
    if (f->db.mongo) {
#ifdef CP_WITH_MONGODB
        /* The same reads as find commands: the winning plan must scan an
         * index in seq order (IXSCAN, no COLLSCAN, no blocking SORT). */
        static const char *const finds[] = {
            "{\"find\": \"container_logs\", \"filter\": {\"grid_id\": "
            "\"g\", \"service_id\": \"s\"}, \"sort\": {\"seq\": -1}, "
            "\"limit\": 10}",
            "{\"find\": \"container_logs\", \"filter\": {\"grid_id\": "
            "\"g\", \"seq\": {\"$gt\": 5}}, \"sort\": {\"seq\": 1}, "
            "\"limit\": 10}",
            "{\"find\": \"event_logs\", \"filter\": {\"grid_id\": "
            "\"g\"}, \"sort\": {\"seq\": -1}, \"limit\": 10}",
        };
        for (size_t i = 0; i < sizeof(finds) / sizeof(finds[0]); i++) {
            char cmd[512];
            snprintf(cmd, sizeof(cmd),
                     "{\"explain\": %s, \"verbosity\": \"queryPlanner\"}",
                     finds[i]);
            bson_t reply;
            testdb_mongo_command(&f->db, cmd, &reply);
            bson_iter_t it, plan;
            assert_true(bson_iter_init(&it, &reply));
            assert_true(bson_iter_find_descendant(
                &it, "queryPlanner.winningPlan", &plan));
            assert_true(BSON_ITER_HOLDS_DOCUMENT(&plan));
            uint32_t len = 0;
            const uint8_t *data = NULL;
            bson_iter_document(&plan, &len, &data);
            bson_t win;
            assert_true(bson_init_static(&win, data, len));
            char *json = bson_as_relaxed_extended_json(&win, NULL);
            assert_non_null(json);
            if (strstr(json, "\"IXSCAN\"") == NULL ||
                strstr(json, "\"COLLSCAN\"") != NULL ||
                strstr(json, "\"SORT\"") != NULL)
                fail_msg("%s is not served by an index in seq order: %s",
                         finds[i], json);
            bson_free(json);
            bson_destroy(&reply);
        }
#endif
        return;
    }
    if (f->db.pg) {
#ifdef CP_WITH_POSTGRES
        /* With sequential scans priced out, each read must still be
         * answerable by an index in seq order (no scan, no sort). */
        static const char *const pg_sqls[] = {
            "SELECT seq FROM container_logs WHERE true AND grid_id='g' AND "
            "service_id='s' ORDER BY seq DESC LIMIT 10",
            "SELECT seq FROM container_logs WHERE true AND grid_id='g' AND "
            "seq>5 ORDER BY seq LIMIT 10",
            "SELECT seq FROM event_logs WHERE true AND grid_id='g' ORDER BY "
            "seq DESC LIMIT 10",
        };
        for (size_t i = 0; i < sizeof(pg_sqls) / sizeof(pg_sqls[0]); i++) {
            char sql[512];
            snprintf(sql, sizeof(sql),
                     "SET enable_seqscan=off; SET enable_bitmapscan=off; "
                     "EXPLAIN %s",
                     pg_sqls[i]);
            PGresult *r = testdb_pq(f->db.url, sql, true);
            bool indexed = false;
            for (int row = 0; row < PQntuples(r); row++) {
                const char *d = PQgetvalue(r, row, 0);
                if (strstr(d, "Index") != NULL)
                    indexed = true;
                assert_null(strstr(d, "Seq Scan"));
                assert_null(strstr(d, "Sort"));
            }
            PQclear(r);
            assert_true(indexed);
        }
#endif
        return;
    }
    sqlite3 *db = testdb_sqlite(&f->db);
    static const char *const sqls[] = {
        "EXPLAIN QUERY PLAN SELECT seq FROM container_logs WHERE 1 AND "
        "grid_id=? AND service_id=? ORDER BY seq DESC LIMIT ?",
        "EXPLAIN QUERY PLAN SELECT seq FROM container_logs WHERE 1 AND "
        "grid_id=? AND seq>? ORDER BY seq LIMIT ?",
        "EXPLAIN QUERY PLAN SELECT seq FROM event_logs WHERE 1 AND "
        "grid_id=? ORDER BY seq DESC LIMIT ?",
    };
    for (size_t i = 0; i < sizeof(sqls) / sizeof(sqls[0]); i++) {
        sqlite3_stmt *q = NULL;
        assert_int_equal(sqlite3_prepare_v2(db, sqls[i], -1, &q, NULL),
                         SQLITE_OK);
        bool indexed = false;
        while (sqlite3_step(q) == SQLITE_ROW) {
            const char *d = (const char *)sqlite3_column_text(q, 3);
            if (strstr(d, "USING INDEX") != NULL ||
                strstr(d, "USING COVERING INDEX") != NULL)
                indexed = true;
            assert_null(strstr(d, "TEMP B-TREE"));
        }
        sqlite3_finalize(q);
        assert_true(indexed);
    }
    sqlite3_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_services, setup, teardown),
        cmocka_unit_test_setup_teardown(test_instances, setup, teardown),
        cmocka_unit_test_setup_teardown(test_instances_many, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deploy_queue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deploy_claim, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deploy_claim_race, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_deploys_prune, setup, teardown),
        cmocka_unit_test_setup_teardown(test_service_delete_cascades, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_containers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_logs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_history_trim, setup, teardown),
        cmocka_unit_test_setup_teardown(test_grid_delete_cascades, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_history_plans, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
