/* Unit tests of the stale-node sweep with HA (issue 6): liveness leases
 * of masters, the stale rule, and the leader fence, against a fresh
 * temporary data directory (or PostgreSQL database: store_testdb.h).
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

struct node_state {
    bool connected;
    char *close_reason;
};

static struct node_state state_of(struct store *st, const char *id)
{
    struct store_node n = {0};
    assert_int_equal(ST_CALL(st, node_get, id, &n), 0);
    struct node_state s = {n.connected,
                           n.close_reason ? cp_strdup(n.close_reason) : NULL};
    store_node_release(&n);
    return s;
}

static void expect(struct store *st, const char *id, bool connected,
                   const char *reason)
{
    struct node_state s = state_of(st, id);
    assert_int_equal(s.connected, connected);
    if (reason != NULL) {
        assert_non_null(s.close_reason);
        assert_string_equal(s.close_reason, reason);
    }
    cp_free(s.close_reason);
}

static void plug(struct store *st, const char *id, const char *master,
                 int64_t seen)
{
    int64_t gen = 0;
    assert_int_equal(ST_CALL(st, node_plug, id, master, seen, seen, &gen), 0);
}

static void test_sweep_liveness_stale_and_fence(void **state)
{
    struct fixture *f = *state;
    struct store *st = f->st;
    int64_t now = cp_now_ms();
    char node3[STORE_ID_LEN + 1], node4[STORE_ID_LEN + 1];
    make_node(st, f->grid, "node-3", node3);
    make_node(st, f->grid, "node-4", node4);
    /* node1 on live master A; node2 on master B that has no liveness
     * lease (died); node3 on A but silent for long; node4 on this master
     * "me" with no lease either (the sweeper never judges its own). */
    assert_int_equal(ST_CALL(st, lease_acquire, "master:A", "A", now, 10000,
                             NULL, NULL), 0);
    plug(st, f->node1, "A", now);
    plug(st, f->node2, "B", now);
    plug(st, node3, "A", now - 120000);
    plug(st, node4, "me", now - 120000);

    struct store_fence fence = {"leader", "me"};
    int marked = -1;
    /* Not the leader: the fence stops the sweep. */
    assert_int_equal(ST_CALL(st, nodes_sweep, now - 50000, now, "me", &fence,
                             &marked), 0);
    assert_int_equal(marked, 0);
    expect(st, f->node2, true, NULL);
    /* Another master leads: still fenced off. */
    assert_int_equal(ST_CALL(st, lease_acquire, "leader", "other", now, 10000,
                             NULL, NULL), 0);
    assert_int_equal(ST_CALL(st, nodes_sweep, now - 50000, now, "me", &fence,
                             &marked), 0);
    assert_int_equal(marked, 0);
    /* Its lease runs out and we take it: the sweep applies. */
    assert_int_equal(ST_CALL(st, lease_acquire, "leader", "me", now + 10001,
                             10000, NULL, NULL), 0);
    assert_int_equal(ST_CALL(st, lease_acquire, "master:A", "A", now + 10001,
                             10000, NULL, NULL), 0);
    assert_int_equal(ST_CALL(st, nodes_sweep, now - 50000, now + 10002, "me",
                             &fence, &marked), 0);
    assert_int_equal(marked, 2);
    expect(st, f->node1, true, NULL);
    expect(st, f->node2, false, "its master stopped");
    expect(st, node3, false, "not seen (stale connection)");
    expect(st, node4, true, NULL);
    /* A's liveness expires: its fresh node goes too. */
    assert_int_equal(ST_CALL(st, lease_acquire, "leader", "me", now + 25000,
                             10000, NULL, NULL), 0);
    assert_int_equal(ST_CALL(st, nodes_sweep, now - 50000, now + 25000, "me",
                             &fence, &marked), 0);
    assert_int_equal(marked, 1);
    expect(st, f->node1, false, "its master stopped");
    /* Without a fence (single master tools) the sweep always applies. */
    assert_int_equal(ST_CALL(st, nodes_sweep, now + 1, now + 25000, NULL,
                             NULL, &marked), 0);
    assert_int_equal(marked, 1);
    expect(st, node4, false, NULL);
}

/* Rows of the leases table by name, read with SQL directly (documents of
 * the leases collection, keyed by name, on MongoDB). */
static long long count_leases(struct fixture *f, const char *name)
{
    if (f->db.mongo) {
#ifdef CP_WITH_MONGODB
        char filter[128];
        snprintf(filter, sizeof(filter), "{\"_id\": \"%s\"}", name);
        return testdb_mongo_count(&f->db, "leases", filter);
#endif
    }
    char sql[128];
    snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM leases WHERE name='%s'",
             name);
    return testdb_count(&f->db, sql);
}

static void test_sweep_deletes_old_liveness_leases(void **state)
{
    struct fixture *f = *state;
    struct store *st = f->st;
    int64_t now = cp_now_ms();
    assert_int_equal(ST_CALL(st, lease_acquire, "master:old", "old",
                             now - 7200000, 10000, NULL, NULL), 0);
    assert_int_equal(ST_CALL(st, lease_acquire, "master:recent", "recent",
                             now - 60000, 10000, NULL, NULL), 0);
    int marked = 0;
    assert_int_equal(ST_CALL(st, nodes_sweep, now - 50000, now, NULL, NULL,
                             &marked), 0);
    /* The one expired for two hours is gone, the recent one stays. */
    assert_int_equal(count_leases(f, "master:old"), 0);
    assert_int_equal(count_leases(f, "master:recent"), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sweep_liveness_stale_and_fence,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_sweep_deletes_old_liveness_leases,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
