/* Unit tests of the stale-node sweep with HA (issue 6): liveness leases
 * of masters, the stale rule, and the leader fence, against a fresh
 * temporary data directory.
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

#include <ftw.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct fixture {
    char dir[64];
    struct store *st;
    char grid[STORE_ID_LEN + 1];
    char node1[STORE_ID_LEN + 1];
    char node2[STORE_ID_LEN + 1];
};

static int rm_entry(const char *path, const struct stat *sb, int flag,
                    struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

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
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_store_sweep.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    char err[256] = "";
    if (store_open(f->dir, &f->st, err, sizeof(err)) != 0)
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
    nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
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

/* Rows of the leases table by name, read with SQLite directly. */
static int count_leases(const char *dir, const char *name)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/kontena.db", dir);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL),
                     SQLITE_OK);
    sqlite3_stmt *q = NULL;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT COUNT(*) FROM leases "
                                        "WHERE name=?",
                                        -1, &q, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    int n = sqlite3_column_int(q, 0);
    sqlite3_finalize(q);
    sqlite3_close(db);
    return n;
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
    assert_int_equal(count_leases(f->dir, "master:old"), 0);
    assert_int_equal(count_leases(f->dir, "master:recent"), 1);
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
