/* Unit tests of the store's node operations: creation with numbers and
 * clashes, lookups, binding, tokens, connection generations (plug,
 * unplug, set_info, seen, sweep) and bounded stats. Each runs against a
 * fresh database: SQLite, PostgreSQL when KONTENA_TEST_DATABASE_URL is set
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

#include <stdio.h>
#include <string.h>

struct fixture {
    struct testdb db;
    struct store *st;
    char grid[STORE_ID_LEN + 1];
};

static int setup(void **state)
{
    struct fixture *f = cp_calloc(1, sizeof(*f));
    testdb_make(&f->db, NULL);
    char err[256] = "";
    if (store_open(f->db.url, &f->st, err, sizeof(err)) != 0)
        fail_msg("store_open: %s", err);
    struct store_grid g = {0};
    store_new_id(g.id);
    g.name = (char *)(uintptr_t) "g1";
    g.token_hash = (char *)(uintptr_t) "grid-token";
    g.initial_size = 1;
    assert_int_equal(ST_CALL(f->st, grid_create, &g, NULL, NULL), 0);
    memcpy(f->grid, g.id, sizeof(f->grid));
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

/* Creates a node; returns create's code, fills out (released by caller
 * when 0). */
static int create(struct fixture *f, const char *name, const char *node_id,
                  const char *token, bool rename, struct store_node *out,
                  const char **field)
{
    struct store_node n = {0};
    store_new_id(n.id);
    memcpy(n.grid_id, f->grid, sizeof(n.grid_id));
    n.name = (char *)(uintptr_t)name;
    n.node_id = (char *)(uintptr_t)node_id;
    n.token_hash = (char *)(uintptr_t)token;
    n.token_sealed = (char *)(uintptr_t)(token ? "sealed" : NULL);
    n.labels = json_pack("[s]", "zone=a");
    int rc = ST_CALL(f->st, node_create, &n, rename, out, field);
    json_decref(n.labels);
    return rc;
}

static void test_create_and_lookups(void **state)
{
    struct fixture *f = *state;
    struct store *st = f->st;
    struct store_node a = {0}, b = {0}, c = {0}, got = {0};
    const char *field = "unset";

    assert_int_equal(create(f, "beta", "AA:BB", NULL, false, &a, &field), 0);
    assert_null(field);
    assert_int_equal(a.node_number, 1);
    assert_string_equal(a.name, "beta");
    assert_string_equal(a.node_id, "AA:BB");
    assert_string_equal(a.availability, "active");
    assert_string_equal(json_string_value(json_array_get(a.labels, 0)),
                        "zone=a");
    assert_true(json_is_object(a.info));
    assert_null(a.stats);
    assert_false(a.connected);
    assert_int_equal(a.conn_gen, 0);
    assert_true(a.created_at > 0);

    /* a node token and no agent id yet: unbound */
    assert_int_equal(create(f, "alpha", NULL, "node-tok", false, &b, &field),
                     0);
    assert_int_equal(b.node_number, 2);
    assert_null(b.node_id);

    /* clashes name the field */
    assert_int_equal(create(f, "beta", "CC:DD", NULL, false, &c, &field),
                     CP_ECONFLICT);
    assert_string_equal(field, "name");
    assert_int_equal(create(f, "gamma", "AA:BB", NULL, false, &c, &field),
                     CP_ECONFLICT);
    assert_string_equal(field, "node_id");
    assert_int_equal(create(f, "gamma", NULL, "node-tok", false, &c, &field),
                     CP_ECONFLICT);
    assert_string_equal(field, "token");
    /* a taken name with rename_on_clash becomes name-<number> */
    assert_int_equal(create(f, "beta", "CC:DD", NULL, true, &c, &field), 0);
    assert_int_equal(c.node_number, 3);
    assert_string_equal(c.name, "beta-3");
    store_node_release(&c);

    /* lookups */
    assert_int_equal(ST_CALL(st, node_get, a.id, &got), 0);
    assert_string_equal(got.name, "beta");
    store_node_release(&got);
    assert_int_equal(ST_CALL(st, node_find, f->grid, "alpha", &got), 0);
    assert_string_equal(got.id, b.id);
    store_node_release(&got);
    assert_int_equal(ST_CALL(st, node_find, f->grid, "AA:BB", &got), 0);
    assert_string_equal(got.id, a.id);
    store_node_release(&got);
    assert_int_equal(ST_CALL(st, node_find, f->grid, "nope", &got),
                     CP_ENOTFOUND);
    assert_int_equal(ST_CALL(st, node_get_by_node_id, "CC:DD", &got), 0);
    assert_string_equal(got.name, "beta-3");
    store_node_release(&got);
    assert_int_equal(ST_CALL(st, node_get_by_token_hash, "node-tok", &got), 0);
    assert_string_equal(got.id, b.id);
    assert_string_equal(got.token_sealed, "sealed");
    store_node_release(&got);
    assert_int_equal(ST_CALL(st, node_get_by_token_hash, "x", &got),
                     CP_ENOTFOUND);

    /* list: by name */
    struct store_node_list l = {0};
    assert_int_equal(ST_CALL(st, node_list, f->grid, &l), 0);
    assert_int_equal(l.len, 3);
    assert_string_equal(l.items[0].name, "alpha");
    assert_string_equal(l.items[1].name, "beta");
    assert_string_equal(l.items[2].name, "beta-3");
    store_node_list_release(&l);

    /* the grid counts them */
    struct store_grid g = {0};
    assert_int_equal(ST_CALL(st, grid_get_by_id, f->grid, &g), 0);
    assert_int_equal(g.node_count, 3);
    store_grid_release(&g);

    /* an unknown grid */
    struct store_node n = {0};
    store_new_id(n.id);
    store_new_id(n.grid_id);
    n.name = (char *)(uintptr_t) "lost";
    assert_int_equal(ST_CALL(st, node_create, &n, false, &c, &field),
                     CP_ENOTFOUND);

    store_node_release(&a);
    store_node_release(&b);
}

static void test_bind_update_token_delete(void **state)
{
    struct fixture *f = *state;
    struct store *st = f->st;
    struct store_node a = {0}, b = {0}, got = {0};
    const char *field = NULL;
    assert_int_equal(create(f, "a", NULL, "tok-a", false, &a, &field), 0);
    assert_int_equal(create(f, "b", "B:B", NULL, false, &b, &field), 0);

    /* bind once */
    assert_int_equal(ST_CALL(st, node_bind, a.id, "A:A"), 0);
    assert_int_equal(ST_CALL(st, node_bind, a.id, "A:2"), CP_ECONFLICT);
    assert_int_equal(ST_CALL(st, node_get, a.id, &got), 0);
    assert_string_equal(got.node_id, "A:A");
    store_node_release(&got);

    /* update labels and availability */
    struct store_node u = {0};
    memcpy(u.id, a.id, sizeof(u.id));
    u.labels = json_pack("[s,s]", "x=1", "y=2");
    u.availability = (char *)(uintptr_t) "drain";
    u.updated_at = 4242;
    assert_int_equal(ST_CALL(st, node_update, &u), 0);
    assert_int_equal(ST_CALL(st, node_get, a.id, &got), 0);
    assert_int_equal(json_array_size(got.labels), 2);
    assert_string_equal(got.availability, "drain");
    assert_int_equal(got.updated_at, 4242);
    store_node_release(&got);
    store_new_id(u.id);
    assert_int_equal(ST_CALL(st, node_update, &u), CP_ENOTFOUND);
    json_decref(u.labels);

    /* tokens: set, clash, clear */
    assert_int_equal(ST_CALL(st, node_set_token, b.id, "tok-b", "sb"), 0);
    assert_int_equal(ST_CALL(st, node_set_token, b.id, "tok-a", "sa"),
                     CP_ECONFLICT);
    assert_int_equal(ST_CALL(st, node_get_by_token_hash, "tok-b", &got), 0);
    assert_string_equal(got.id, b.id);
    store_node_release(&got);
    assert_int_equal(ST_CALL(st, node_set_token, b.id, NULL, NULL), 0);
    assert_int_equal(ST_CALL(st, node_get, b.id, &got), 0);
    assert_null(got.token_hash);
    assert_null(got.token_sealed);
    store_node_release(&got);
    assert_int_equal(ST_CALL(st, node_set_token, u.id, NULL, NULL),
                     CP_ENOTFOUND);

    /* delete takes the stats history with it */
    json_t *stats = json_pack("{s:i}", "cpu", 1);
    assert_int_equal(ST_CALL(st, node_add_stats, a.id, stats, 1000, 5), 0);
    json_decref(stats);
    assert_int_equal(ST_CALL(st, node_delete, a.id), 0);
    assert_int_equal(ST_CALL(st, node_delete, a.id), CP_ENOTFOUND);
    assert_int_equal(ST_CALL(st, node_get, a.id, &got), CP_ENOTFOUND);
    assert_int_equal(testdb_rows(&f->db, "host_node_stats"), 0);
    /* its number is free again */
    struct store_node c = {0};
    assert_int_equal(create(f, "c", NULL, NULL, false, &c, &field), 0);
    assert_int_equal(c.node_number, 1);
    store_node_release(&c);
    store_node_release(&a);
    store_node_release(&b);
}

static void test_connection_generations(void **state)
{
    struct fixture *f = *state;
    struct store *st = f->st;
    struct store_node a = {0}, got = {0};
    const char *field = NULL;
    assert_int_equal(create(f, "a", "A:A", NULL, false, &a, &field), 0);
    /* labels only when the node has none: clear the created ones */
    struct store_node u = {0};
    memcpy(u.id, a.id, sizeof(u.id));
    assert_int_equal(ST_CALL(st, node_update, &u), 0);

    int64_t g1 = 0, g2 = 0;
    assert_int_equal(ST_CALL(st, node_plug, a.id, "m1", 100, 110, &g1), 0);
    assert_int_equal(g1, 1);
    assert_int_equal(ST_CALL(st, node_plug, a.id, "m2", 200, 210, &g2), 0);
    assert_int_equal(g2, 2);
    assert_int_equal(ST_CALL(st, node_plug, "nope", "m2", 1, 1, &g2),
                     CP_ENOTFOUND);
    assert_int_equal(ST_CALL(st, node_get, a.id, &got), 0);
    assert_true(got.connected);
    assert_false(got.updated);
    assert_string_equal(got.conn_master, "m2");
    assert_int_equal(got.connected_at, 200);
    assert_int_equal(got.last_seen_at, 210);
    store_node_release(&got);

    /* set_info: only for the current generation; labels when none */
    json_t *info = json_pack("{s:s,s:i}", "os", "Debian", "cpus", 2);
    json_t *labels = json_pack("[s]", "from=agent");
    assert_int_equal(
        ST_CALL(st, node_set_info, a.id, g1, info, "1.5.0", labels),
        CP_ECONFLICT);
    assert_int_equal(
        ST_CALL(st, node_set_info, a.id, g2, info, "1.5.0", labels), 0);
    assert_int_equal(ST_CALL(st, node_get, a.id, &got), 0);
    assert_true(got.updated);
    assert_string_equal(got.agent_version, "1.5.0");
    assert_string_equal(json_string_value(json_object_get(got.info, "os")),
                        "Debian");
    assert_string_equal(json_string_value(json_array_get(got.labels, 0)),
                        "from=agent");
    store_node_release(&got);
    json_decref(labels);
    labels = json_pack("[s]", "second=time");
    assert_int_equal(
        ST_CALL(st, node_set_info, a.id, g2, info, "1.5.1", labels), 0);
    assert_int_equal(ST_CALL(st, node_get, a.id, &got), 0);
    assert_string_equal(json_string_value(json_array_get(got.labels, 0)),
                        "from=agent");
    store_node_release(&got);
    json_decref(labels);
    json_decref(info);

    /* seen: per entry, by generation */
    struct store_node_seen seen[2] = {{a.id, g1, 500, true},
                                      {a.id, g2, 600, false}};
    assert_int_equal(ST_CALL(st, nodes_seen, seen, 2), 0);
    assert_false(seen[0].ok);
    assert_true(seen[1].ok);
    assert_int_equal(ST_CALL(st, node_get, a.id, &got), 0);
    assert_int_equal(got.last_seen_at, 600);
    store_node_release(&got);

    /* unplug: the old generation cannot */
    assert_int_equal(ST_CALL(st, node_unplug, a.id, g1, 700, 1000, "bye"),
                     CP_ECONFLICT);
    assert_int_equal(ST_CALL(st, node_unplug, a.id, g2, 700, 4030, "gone"), 0);
    assert_int_equal(ST_CALL(st, node_get, a.id, &got), 0);
    assert_false(got.connected);
    assert_int_equal(got.disconnected_at, 700);
    assert_int_equal(got.close_code, 4030);
    assert_string_equal(got.close_reason, "gone");
    assert_null(got.conn_master);
    store_node_release(&got);
    store_node_release(&a);
}

static void test_sweep(void **state)
{
    struct fixture *f = *state;
    struct store *st = f->st;
    struct store_node a = {0}, b = {0}, c = {0}, got = {0};
    const char *field = NULL;
    assert_int_equal(create(f, "a", NULL, NULL, false, &a, &field), 0);
    assert_int_equal(create(f, "b", NULL, NULL, false, &b, &field), 0);
    assert_int_equal(create(f, "c", NULL, NULL, false, &c, &field), 0);
    int64_t gen = 0;
    assert_int_equal(ST_CALL(st, node_plug, a.id, "m1", 10, 10, &gen), 0);
    assert_int_equal(ST_CALL(st, node_plug, b.id, "m2", 10, 10, &gen), 0);
    assert_int_equal(ST_CALL(st, node_plug, c.id, "m2", 10, 500, &gen), 0);
    int marked = -1;
    /* m2 is alive (its liveness lease holds until 10,000) */
    assert_int_equal(ST_CALL(st, lease_acquire, "master:m2", "m2", 0, 10000,
                             NULL, NULL), 0);
    /* m1's own nodes are left to it; c was seen recently */
    assert_int_equal(ST_CALL(st, nodes_sweep, 100, 1000, "m1", NULL, &marked),
                     0);
    assert_int_equal(marked, 1);
    assert_int_equal(ST_CALL(st, node_get, b.id, &got), 0);
    assert_false(got.connected);
    assert_int_equal(got.close_code, 4030);
    assert_int_equal(got.disconnected_at, 1000);
    store_node_release(&got);
    assert_int_equal(ST_CALL(st, node_get, a.id, &got), 0);
    assert_true(got.connected);
    store_node_release(&got);
    /* without an exception, a goes too */
    assert_int_equal(ST_CALL(st, nodes_sweep, 100, 1000, NULL, NULL, &marked),
                     0);
    assert_int_equal(marked, 1);
    store_node_release(&a);
    store_node_release(&b);
    store_node_release(&c);
}

static void test_stats(void **state)
{
    struct fixture *f = *state;
    struct store *st = f->st;
    struct store_node a = {0}, b = {0}, got = {0};
    const char *field = NULL;
    assert_int_equal(create(f, "a", NULL, NULL, false, &a, &field), 0);
    assert_int_equal(create(f, "b", NULL, NULL, false, &b, &field), 0);
    for (int i = 1; i <= 5; i++) {
        json_t *s = json_pack("{s:i}", "n", i);
        assert_int_equal(ST_CALL(st, node_add_stats, a.id, s, i * 1000, 3), 0);
        json_decref(s);
    }
    assert_int_equal(ST_CALL(st, node_get, a.id, &got), 0);
    assert_int_equal(json_integer_value(json_object_get(got.stats, "n")), 5);
    store_node_release(&got);
    /* bounded history: the newest 3 */
    assert_int_equal(testdb_rows(&f->db, "host_node_stats"), 3);
    if (f->db.mongo) {
#ifdef CP_WITH_MONGODB
        assert_int_equal(testdb_mongo_i64(&f->db, "host_node_stats", NULL,
                                          "{\"created_at\": 1}",
                                          "created_at"),
                         3000);
#endif
    } else {
        assert_int_equal(testdb_count(&f->db, "SELECT MIN(created_at) FROM "
                                              "host_node_stats"),
                         3000);
    }
    json_t *s = json_pack("{s:i}", "n", 9);
    assert_int_equal(ST_CALL(st, node_add_stats, "nope", s, 1, 3),
                     CP_ENOTFOUND);

    /* batched: a node removed meanwhile is skipped */
    char gone[STORE_ID_LEN + 1];
    store_new_id(gone);
    struct store_node_stats v[3] = {
        {a.id, s, 9000}, {gone, s, 9000}, {b.id, s, 9000}};
    assert_int_equal(ST_CALL(st, nodes_add_stats, v, 3, 3), 0);
    json_decref(s);
    assert_int_equal(ST_CALL(st, node_get, b.id, &got), 0);
    assert_int_equal(json_integer_value(json_object_get(got.stats, "n")), 9);
    store_node_release(&got);
    assert_int_equal(testdb_rows(&f->db, "host_node_stats"), 4);
    store_node_release(&a);
    store_node_release(&b);
}

/* All 254 node numbers of a grid in use: CP_EAGAIN. */
static void test_numbers_run_out(void **state)
{
    struct fixture *f = *state;
    const char *field = NULL;
    for (int i = 1; i <= 254; i++) {
        struct store_node n = {0};
        char name[16];
        snprintf(name, sizeof(name), "n%03d", i);
        assert_int_equal(create(f, name, NULL, NULL, false, &n, &field), 0);
        assert_int_equal(n.node_number, i);
        store_node_release(&n);
    }
    struct store_node n = {0};
    assert_int_equal(create(f, "one-too-many", NULL, NULL, false, &n, &field),
                     CP_EAGAIN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_and_lookups, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bind_update_token_delete, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_connection_generations, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_sweep, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stats, setup, teardown),
        cmocka_unit_test_setup_teardown(test_numbers_run_out, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
