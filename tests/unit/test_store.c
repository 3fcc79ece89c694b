/* Unit tests of the store, each against a fresh database: SQLite in a
 * temporary data directory, PostgreSQL when KONTENA_TEST_DATABASE_URL is
 * set (tests/pg.sh), or MongoDB when KONTENA_TEST_MONGODB_URI is set
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
    /* SQLite: a not-yet-existing subdirectory: open must create it */
    struct testdb db;
    struct store *st;
};

static int setup(void **state)
{
    struct fixture *f = cp_calloc(1, sizeof(*f));
    testdb_make(&f->db, "a/data");
    char err[256] = "";
    int rc = store_open(f->db.url, &f->st, err, sizeof(err));
    if (rc != 0)
        fail_msg("store_open: %s", err);
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

static void make_user(struct store *st, const char *email, char id[25])
{
    struct store_user u = {0};
    store_new_id(u.id);
    u.email = (char *)(uintptr_t)email;
    u.name = NULL;
    u.roles = 0;
    assert_int_equal(ST_CALL(st, user_create, &u), 0);
    memcpy(id, u.id, STORE_ID_LEN + 1);
}

static void fill_grid(struct store_grid *g, const char *name,
                      const char *token_hash)
{
    memset(g, 0, sizeof(*g));
    store_new_id(g->id);
    g->name = (char *)(uintptr_t)name;
    g->token_hash = (char *)(uintptr_t)token_hash;
    g->token_sealed = (char *)(uintptr_t) "sealed";
    g->initial_size = 1;
    g->subnet = (char *)(uintptr_t) "10.81.0.0/16";
    g->supernet = (char *)(uintptr_t) "10.80.0.0/12";
}

/* ==== Open, migrate, reopen ==== */

static void test_open_migrates(void **state)
{
    struct fixture *f = *state;
    int v = 0;
    assert_int_equal(ST_CALL(f->st, schema_version, &v), 0);
    assert_true(v >= 1);
    assert_int_equal(f->st->ops->ping(f->st), 0);
    assert_string_equal(store_ops_of(f->st)->name, testdb_backend());
    if (f->db.mongo) {
#ifdef CP_WITH_MONGODB
        /* MongoDB has no schema_migrations: open made the indexes, named
         * like the PostgreSQL constraints */
        print_message("MongoDB: no schema_migrations rows to count; "
                      "checking the unique indexes instead\n");
        assert_true(testdb_mongo_has_index(&f->db, "users",
                                           "users_email_key"));
        assert_true(testdb_mongo_has_index(&f->db, "grids", "grids_name_key"));
        assert_true(testdb_mongo_has_index(&f->db, "host_nodes",
                                           "host_nodes_grid_id_name_key"));
#endif
        return;
    }
    /* one schema_migrations row per version (numbers may have gaps:
     * branches take theirs ahead), the newest one v */
    assert_int_equal(testdb_count(&f->db, "SELECT COUNT(*) - COUNT(DISTINCT "
                                          "version) FROM schema_migrations"),
                     0);
    assert_int_equal(testdb_count(&f->db, "SELECT MAX(version) FROM "
                                          "schema_migrations"),
                     v);
    if (f->db.pg)
        return;

    struct stat sb;
    char path[160];
    snprintf(path, sizeof(path), "%s/kontena.db", f->db.path);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(stat(f->db.path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);
}

static void test_reopen_keeps_data(void **state)
{
    struct fixture *f = *state;
    int v1 = 0, v2 = 0;
    assert_int_equal(ST_CALL(f->st, schema_version, &v1), 0);
    assert_int_equal(ST_CALL(f->st, config_set, "k", "v"), 0);
    store_close(f->st);

    char err[256] = "";
    assert_int_equal(store_open(f->db.url, &f->st, err, sizeof(err)), 0);
    assert_int_equal(ST_CALL(f->st, schema_version, &v2), 0);
    assert_int_equal(v1, v2);
    char *val = NULL;
    assert_int_equal(ST_CALL(f->st, config_get, "k", &val), 0);
    assert_string_equal(val, "v");
    cp_free(val);
}

struct opener {
    const char *dir;
    struct store *st;
    int rc;
};

static void *open_thread(void *arg)
{
    struct opener *o = arg;
    char err[256];
    o->rc = store_open(o->dir, &o->st, err, sizeof(err));
    return NULL;
}

/* Several stores opening one empty database at the same moment (masters
 * starting together) migrate it exactly once, without an error. */
#define OPENERS 6

static void test_two_stores_same_dir(void **state)
{
    (void)state;
    struct testdb fresh;
    testdb_make(&fresh, "shared");
    struct opener o[OPENERS];
    pthread_t t[OPENERS];
    for (int i = 0; i < OPENERS; i++) {
        o[i] = (struct opener){fresh.url, NULL, -1};
        assert_int_equal(pthread_create(&t[i], NULL, open_thread, &o[i]), 0);
    }
    for (int i = 0; i < OPENERS; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < OPENERS; i++)
        assert_int_equal(o[i].rc, 0);

    int v0 = 0;
    assert_int_equal(ST_CALL(o[0].st, schema_version, &v0), 0);
    for (int i = 1; i < OPENERS; i++) {
        int v = 0;
        assert_int_equal(ST_CALL(o[i].st, schema_version, &v), 0);
        assert_int_equal(v, v0);
    }
    if (fresh.mongo) {
#ifdef CP_WITH_MONGODB
        /* no migration rows: index creation is idempotent; every opener
         * found the indexes in place */
        print_message("MongoDB: no schema_migrations rows to count; "
                      "checking the indexes instead\n");
        assert_true(testdb_mongo_has_index(&fresh, "users",
                                           "users_email_key"));
        assert_true(testdb_mongo_has_index(&fresh, "stacks",
                                           "stacks_grid_id_name_key"));
#endif
    } else {
        /* Each version applied once; numbers may have gaps. */
        assert_int_equal(testdb_count(&fresh, "SELECT COUNT(*) FROM "
                                              "schema_migrations"),
                         testdb_count(&fresh, "SELECT COUNT(DISTINCT version) "
                                              "FROM schema_migrations"));
        assert_int_equal(testdb_count(&fresh, "SELECT MAX(version) "
                                              "FROM schema_migrations"),
                         v0);
    }
    assert_int_equal(ST_CALL(o[0].st, config_set, "who", "zero"), 0);
    char *val = NULL;
    assert_int_equal(ST_CALL(o[1].st, config_get, "who", &val), 0);
    assert_string_equal(val, "zero");
    cp_free(val);
    for (int i = 0; i < OPENERS; i++)
        store_close(o[i].st);
    testdb_drop(&fresh);
}

/* ==== Config ==== */

static void test_config(void **state)
{
    struct store *st = ((struct fixture *)*state)->st;
    char *val = NULL;
    bool written = false;
    assert_int_equal(ST_CALL(st, config_get, "a", &val), CP_ENOTFOUND);
    assert_null(val);
    assert_int_equal(ST_CALL(st, config_set, "a", "1"), 0);
    assert_int_equal(ST_CALL(st, config_set, "a", "2"), 0);
    assert_int_equal(ST_CALL(st, config_get, "a", &val), 0);
    assert_string_equal(val, "2");
    cp_free(val);
    assert_int_equal(ST_CALL(st, config_set_if_absent, "a", "3", &written), 0);
    assert_false(written);
    assert_int_equal(ST_CALL(st, config_set_if_absent, "b", "4", &written), 0);
    assert_true(written);
    assert_int_equal(ST_CALL(st, config_get, "a", &val), 0);
    assert_string_equal(val, "2");
    cp_free(val);
    assert_int_equal(ST_CALL(st, config_get, "b", &val), 0);
    assert_string_equal(val, "4");
    cp_free(val);
}

/* ==== Users ==== */

static void test_users(void **state)
{
    struct store *st = ((struct fixture *)*state)->st;
    struct store_user u = {0}, got = {0};
    store_new_id(u.id);
    u.email = (char *)(uintptr_t) "zed@example.com";
    u.name = (char *)(uintptr_t) "Zed";
    u.roles = STORE_ROLE_GRID_ADMIN;
    assert_int_equal(ST_CALL(st, user_create, &u), 0);

    struct store_user dup = u;
    store_new_id(dup.id);
    assert_int_equal(ST_CALL(st, user_create, &dup), CP_ECONFLICT);

    char admin_id[25];
    make_user(st, "admin", admin_id);

    assert_int_equal(ST_CALL(st, user_get, u.id, &got), 0);
    assert_string_equal(got.email, "zed@example.com");
    assert_string_equal(got.name, "Zed");
    assert_int_equal(got.roles, STORE_ROLE_GRID_ADMIN);
    assert_true(got.created_at > 0);
    store_user_release(&got);

    assert_int_equal(ST_CALL(st, user_get_by_email, "admin", &got), 0);
    assert_string_equal(got.id, admin_id);
    assert_null(got.name);
    store_user_release(&got);
    assert_int_equal(ST_CALL(st, user_get, "nope", &got), CP_ENOTFOUND);
    assert_int_equal(ST_CALL(st, user_get_by_email, "x@y", &got), CP_ENOTFOUND);

    struct store_user_list l = {0};
    assert_int_equal(ST_CALL(st, user_list, &l), 0);
    assert_int_equal(l.len, 2);
    assert_string_equal(l.items[0].email, "admin");
    assert_string_equal(l.items[1].email, "zed@example.com");
    store_user_list_release(&l);

    unsigned roles = STORE_ROLE_MASTER_ADMIN | STORE_ROLE_USER_ADMIN;
    assert_int_equal(ST_CALL(st, user_set_roles, admin_id, roles), 0);
    assert_int_equal(ST_CALL(st, user_get, admin_id, &got), 0);
    assert_int_equal(got.roles, roles);
    store_user_release(&got);
    assert_int_equal(ST_CALL(st, user_set_roles, "nope", 1), CP_ENOTFOUND);
}

/* ==== Tokens ==== */

static void make_token(struct store *st, const char *user_id,
                       enum store_token_kind kind, const char *hash,
                       const char *refresh, bool bootstrap, int64_t expires_at,
                       char id[25])
{
    struct store_token t = {0};
    store_new_id(t.id);
    memcpy(t.user_id, user_id, STORE_ID_LEN + 1);
    t.kind = kind;
    t.token_hash = (char *)(uintptr_t)hash;
    t.refresh_hash = (char *)(uintptr_t)refresh;
    memcpy(t.token_last4, "abcd", 5);
    t.scopes = (char *)(uintptr_t) "user";
    t.is_bootstrap = bootstrap;
    t.expires_at = expires_at;
    t.created_at = 1000;
    assert_int_equal(ST_CALL(st, token_create, &t), 0);
    if (id != NULL)
        memcpy(id, t.id, STORE_ID_LEN + 1);
}

static void test_tokens(void **state)
{
    struct store *st = ((struct fixture *)*state)->st;
    char uid[25], bearer[25], expiring[25], code[25], boot[25];
    make_user(st, "admin", uid);
    const int64_t now = 1000000;

    make_token(st, uid, STORE_TOKEN_BEARER, "h-bearer", "r-bearer", false, 0,
               bearer);
    make_token(st, uid, STORE_TOKEN_BEARER, "h-exp", NULL, false, now + 10,
               expiring);
    make_token(st, uid, STORE_TOKEN_CODE, "h-code", NULL, false, now + 600,
               code);
    make_token(st, uid, STORE_TOKEN_CODE, "h-boot", NULL, true, 0, boot);

    struct store_token t = {0};
    assert_int_equal(ST_CALL(st, token_get, bearer, &t), 0);
    assert_string_equal(t.token_hash, "h-bearer");
    assert_string_equal(t.refresh_hash, "r-bearer");
    assert_string_equal(t.token_last4, "abcd");
    assert_string_equal(t.scopes, "user");
    assert_null(t.description);
    assert_string_equal(t.parent_code_id, "");
    store_token_release(&t);

    /* find: kind and expiry matter */
    assert_int_equal(
        ST_CALL(st, token_find, STORE_TOKEN_BEARER, "h-bearer", now, &t), 0);
    assert_string_equal(t.id, bearer);
    store_token_release(&t);
    assert_int_equal(
        ST_CALL(st, token_find, STORE_TOKEN_CODE, "h-bearer", now, &t),
        CP_ENOTFOUND);
    assert_int_equal(
        ST_CALL(st, token_find, STORE_TOKEN_BEARER, "h-exp", now, &t), 0);
    store_token_release(&t);
    assert_int_equal(
        ST_CALL(st, token_find, STORE_TOKEN_BEARER, "h-exp", now + 10, &t),
        CP_ENOTFOUND);

    /* a normal code is consumed, a bootstrap code stays */
    assert_int_equal(ST_CALL(st, code_take, "h-code", now, &t), 0);
    assert_string_equal(t.id, code);
    store_token_release(&t);
    assert_int_equal(ST_CALL(st, code_take, "h-code", now, &t), CP_ENOTFOUND);
    assert_int_equal(ST_CALL(st, code_take, "h-boot", now, &t), 0);
    assert_true(t.is_bootstrap);
    store_token_release(&t);
    assert_int_equal(ST_CALL(st, code_take, "h-boot", now, &t), 0);
    store_token_release(&t);
    assert_int_equal(ST_CALL(st, code_take, "h-bearer", now, &t), CP_ENOTFOUND);

    /* refresh tokens are single use */
    assert_int_equal(ST_CALL(st, refresh_take, "r-bearer", &t), 0);
    assert_string_equal(t.id, bearer);
    store_token_release(&t);
    assert_int_equal(ST_CALL(st, refresh_take, "r-bearer", &t), CP_ENOTFOUND);
    assert_int_equal(ST_CALL(st, token_get, bearer, &t), CP_ENOTFOUND);

    /* touch: writes only once per minute */
    assert_int_equal(ST_CALL(st, token_touch, expiring, now), 0);
    assert_int_equal(ST_CALL(st, token_get, expiring, &t), 0);
    assert_int_equal(t.last_used_at, now);
    store_token_release(&t);
    assert_int_equal(ST_CALL(st, token_touch, expiring, now + 30000), 0);
    assert_int_equal(ST_CALL(st, token_get, expiring, &t), 0);
    assert_int_equal(t.last_used_at, now);
    store_token_release(&t);
    assert_int_equal(ST_CALL(st, token_touch, expiring, now + 60001), 0);
    assert_int_equal(ST_CALL(st, token_get, expiring, &t), 0);
    assert_int_equal(t.last_used_at, now + 60001);
    store_token_release(&t);

    struct store_token_list l = {0};
    assert_int_equal(ST_CALL(st, token_list_by_user, uid, &l), 0);
    assert_int_equal(l.len, 2); /* expiring + boot */
    store_token_list_release(&l);

    /* expire, bootstrap delete, delete */
    int deleted = -1;
    assert_int_equal(ST_CALL(st, tokens_expire, now + 5, &deleted), 0);
    assert_int_equal(deleted, 0);
    assert_int_equal(ST_CALL(st, tokens_expire, now + 10, &deleted), 0);
    assert_int_equal(deleted, 1);
    assert_int_equal(ST_CALL(st, token_get, expiring, &t), CP_ENOTFOUND);
    assert_int_equal(st->ops->bootstrap_codes_delete(st), 0);
    assert_int_equal(ST_CALL(st, token_get, boot, &t), CP_ENOTFOUND);

    char other[25];
    make_token(st, uid, STORE_TOKEN_BEARER, "h-other", NULL, false, 0, other);
    assert_int_equal(ST_CALL(st, token_delete, other), 0);
    assert_int_equal(ST_CALL(st, token_delete, other), CP_ENOTFOUND);
    assert_int_equal(ST_CALL(st, token_list_by_user, uid, &l), 0);
    assert_int_equal(l.len, 0);
    store_token_list_release(&l);
}

/* A bootstrap login confirmed: the code goes, the token forgets it. */
static void test_token_confirm(void **state)
{
    struct store *st = ((struct fixture *)*state)->st;
    char uid[25], code[25];
    make_user(st, "admin", uid);
    make_token(st, uid, STORE_TOKEN_CODE, "h-boot", NULL, true, 0, code);
    struct store_token t = {0};
    store_new_id(t.id);
    memcpy(t.user_id, uid, sizeof(t.user_id));
    t.kind = STORE_TOKEN_BEARER;
    t.token_hash = (char *)(uintptr_t) "h-child";
    memcpy(t.parent_code_id, code, sizeof(t.parent_code_id));
    assert_int_equal(ST_CALL(st, token_create, &t), 0);

    struct store_token got = {0};
    assert_int_equal(ST_CALL(st, token_get, t.id, &got), 0);
    assert_string_equal(got.parent_code_id, code);
    store_token_release(&got);
    assert_int_equal(ST_CALL(st, token_confirm, t.id, code), 0);
    assert_int_equal(ST_CALL(st, token_get, code, &got), CP_ENOTFOUND);
    assert_int_equal(ST_CALL(st, token_get, t.id, &got), 0);
    assert_string_equal(got.parent_code_id, "");
    store_token_release(&got);
}

/* ==== Grids ==== */

static void test_grids(void **state)
{
    struct store *st = ((struct fixture *)*state)->st;
    char alice[25], bob[25];
    make_user(st, "alice@x", alice);
    make_user(st, "bob@x", bob);

    struct store_grid g, g2, got;
    const char *field = "unset";
    fill_grid(&g, "test", "tok-1");
    assert_int_equal(ST_CALL(st, grid_create, &g, alice, &field), 0);
    assert_null(field);

    fill_grid(&g2, "test", "tok-2");
    assert_int_equal(ST_CALL(st, grid_create, &g2, alice, &field),
                     CP_ECONFLICT);
    assert_string_equal(field, "name");
    fill_grid(&g2, "other", "tok-1");
    assert_int_equal(ST_CALL(st, grid_create, &g2, alice, &field),
                     CP_ECONFLICT);
    assert_string_equal(field, "token");
    fill_grid(&g2, "alpha", "tok-2");
    assert_int_equal(ST_CALL(st, grid_create, &g2, bob, &field), 0);

    assert_int_equal(ST_CALL(st, grid_get, "test", &got), 0);
    assert_string_equal(got.id, g.id);
    assert_string_equal(got.subnet, "10.81.0.0/16");
    assert_string_equal(got.token_sealed, "sealed");
    assert_int_equal(got.initial_size, 1);
    assert_true(json_is_object(got.settings));
    assert_int_equal(got.user_count, 1);
    assert_int_equal(got.node_count, 0);
    assert_int_equal(got.service_count, 0);
    store_grid_release(&got);
    assert_int_equal(ST_CALL(st, grid_get, "none", &got), CP_ENOTFOUND);
    assert_int_equal(ST_CALL(st, grid_get_by_token_hash, "tok-2", &got), 0);
    assert_string_equal(got.name, "alpha");
    store_grid_release(&got);

    /* members */
    bool member = true;
    assert_int_equal(ST_CALL(st, grid_is_member, g.id, bob, &member), 0);
    assert_false(member);
    assert_int_equal(ST_CALL(st, grid_user_add, g.id, bob), 0);
    assert_int_equal(ST_CALL(st, grid_user_add, g.id, bob), 0);
    assert_int_equal(ST_CALL(st, grid_is_member, g.id, bob, &member), 0);
    assert_true(member);
    assert_int_equal(ST_CALL(st, grid_user_add, g.id, "nobody"), CP_ENOTFOUND);
    struct store_user_list ul = {0};
    assert_int_equal(ST_CALL(st, grid_users, g.id, &ul), 0);
    assert_int_equal(ul.len, 2);
    assert_string_equal(ul.items[0].email, "alice@x");
    assert_string_equal(ul.items[1].email, "bob@x");
    store_user_list_release(&ul);

    /* list: all, by member, with counts */
    struct store_grid_list l = {0};
    assert_int_equal(ST_CALL(st, grid_list, NULL, &l), 0);
    assert_int_equal(l.len, 2);
    assert_string_equal(l.items[0].name, "alpha");
    assert_string_equal(l.items[1].name, "test");
    assert_int_equal(l.items[0].user_count, 1);
    assert_int_equal(l.items[1].user_count, 2);
    store_grid_list_release(&l);
    assert_int_equal(ST_CALL(st, grid_list, alice, &l), 0);
    assert_int_equal(l.len, 1);
    assert_string_equal(l.items[0].name, "test");
    store_grid_list_release(&l);
    assert_int_equal(ST_CALL(st, grid_list, bob, &l), 0);
    assert_int_equal(l.len, 2);
    store_grid_list_release(&l);

    assert_int_equal(ST_CALL(st, grid_user_remove, g.id, bob), 0);
    assert_int_equal(ST_CALL(st, grid_user_remove, g.id, bob), CP_ENOTFOUND);
    assert_int_equal(ST_CALL(st, grid_list, bob, &l), 0);
    assert_int_equal(l.len, 1);
    assert_string_equal(l.items[0].name, "alpha");
    store_grid_list_release(&l);

    /* update settings */
    struct store_grid upd = {0};
    memcpy(upd.id, g.id, sizeof(upd.id));
    upd.settings = json_pack("{s:{s:s}}", "logs", "forwarder", "fluentd");
    upd.updated_at = 424242;
    assert_int_equal(ST_CALL(st, grid_update, &upd), 0);
    json_decref(upd.settings);
    assert_int_equal(ST_CALL(st, grid_get, "test", &got), 0);
    assert_int_equal(got.updated_at, 424242);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(got.settings, "logs"),
                                          "forwarder")),
        "fluentd");
    store_grid_release(&got);
    store_new_id(upd.id);
    assert_int_equal(ST_CALL(st, grid_update, &upd), CP_ENOTFOUND);

    /* counts and the delete guard, with rows written straight into the
     * database */
    struct testdb *db = &((struct fixture *)*state)->db;
    if (db->mongo) {
#ifdef CP_WITH_MONGODB
        /* the documents the PostgreSQL rows below make, defaults
         * included */
        char doc[1024], stack[25];
        for (int i = 1; i <= 2; i++) {
            snprintf(doc, sizeof(doc),
                     "{\"_id\": \"n%d\", \"grid_id\": \"%s\", "
                     "\"node_id\": null, \"name\": \"node-%d\", "
                     "\"node_number\": {\"$numberLong\": \"%d\"}, "
                     "\"token_hash\": null, \"token_sealed\": null, "
                     "\"labels\": \"[]\", \"info\": \"{}\", "
                     "\"stats\": null, \"availability\": \"active\", "
                     "\"agent_version\": null, \"connected\": false, "
                     "\"updated\": false, "
                     "\"conn_gen\": {\"$numberLong\": \"0\"}, "
                     "\"conn_master\": null, "
                     "\"connected_at\": {\"$numberLong\": \"0\"}, "
                     "\"disconnected_at\": {\"$numberLong\": \"0\"}, "
                     "\"last_seen_at\": {\"$numberLong\": \"0\"}, "
                     "\"close_code\": {\"$numberLong\": \"0\"}, "
                     "\"close_reason\": null, "
                     "\"created_at\": {\"$numberLong\": \"1\"}, "
                     "\"updated_at\": {\"$numberLong\": \"1\"}}",
                     i, g.id, i, i);
            testdb_mongo_insert(db, "host_nodes", doc);
        }
        snprintf(doc, sizeof(doc),
                 "{\"grid_id\": \"%s\", \"name\": \"null\"}", g.id);
        testdb_mongo_id(db, "stacks", doc, stack);
        snprintf(doc, sizeof(doc),
                 "{\"_id\": \"s1\", \"grid_id\": \"%s\", "
                 "\"stack_id\": \"%s\", \"name\": \"web\", "
                 "\"spec\": \"{}\", "
                 "\"revision\": {\"$numberLong\": \"1\"}, "
                 "\"stack_revision\": {\"$numberLong\": \"0\"}, "
                 "\"state\": \"initialized\", "
                 "\"deployed_at\": {\"$numberLong\": \"0\"}, "
                 "\"deploy_requested_at\": {\"$numberLong\": \"0\"}, "
                 "\"deployed_revision\": {\"$numberLong\": \"0\"}, "
                 "\"secret_names\": [], "
                 "\"created_at\": {\"$numberLong\": \"1\"}, "
                 "\"updated_at\": {\"$numberLong\": \"1\"}}",
                 g.id, stack);
        testdb_mongo_insert(db, "grid_services", doc);
#endif
    } else {
        char sql[512];
        snprintf(sql, sizeof(sql),
             "INSERT INTO host_nodes(id, grid_id, name, node_number, "
             "created_at, updated_at) VALUES('n1', '%s', 'node-1', 1, 1, 1);"
             "INSERT INTO host_nodes(id, grid_id, name, node_number, "
             "created_at, updated_at) VALUES('n2', '%s', 'node-2', 2, 1, 1);"
             "INSERT INTO grid_services(id, grid_id, stack_id, name, "
             "created_at, updated_at) SELECT 's1', grid_id, id, 'web', 1, 1 "
             "FROM stacks WHERE grid_id='%s' AND name='null';",
             g.id, g.id, g.id);
        testdb_exec(db, sql);
    }
    assert_int_equal(ST_CALL(st, grid_list, NULL, &l), 0);
    assert_int_equal(l.items[0].node_count, 0);
    assert_int_equal(l.items[1].node_count, 2);
    assert_int_equal(l.items[1].service_count, 1);
    assert_int_equal(l.items[1].container_count, 0);
    store_grid_list_release(&l);
    assert_int_equal(ST_CALL(st, grid_delete, g.id), CP_ECONFLICT);
    if (db->mongo) {
#ifdef CP_WITH_MONGODB
        testdb_mongo_delete(db, "host_nodes", NULL);
        testdb_mongo_delete(db, "grid_services", NULL);
#endif
    } else {
        testdb_exec(db, "DELETE FROM host_nodes;"
                        "DELETE FROM grid_services;");
    }

    /* delete */
    assert_int_equal(ST_CALL(st, grid_delete, g.id), 0);
    assert_int_equal(ST_CALL(st, grid_delete, g.id), CP_ENOTFOUND);
    assert_int_equal(ST_CALL(st, grid_get, "test", &got), CP_ENOTFOUND);
    /* the name is free again: the cascade removed the stack, network and
     * members too */
    fill_grid(&g, "test", "tok-3");
    assert_int_equal(ST_CALL(st, grid_create, &g, alice, &field), 0);
    assert_int_equal(ST_CALL(st, grid_get, "test", &got), 0);
    assert_int_equal(got.user_count, 1);
    store_grid_release(&got);
}

/* ==== HA primitives ==== */

static void test_kv_cas(void **state)
{
    struct store *st = ((struct fixture *)*state)->st;
    char *val = NULL;
    int64_t ver = -1, nv = -1;
    assert_int_equal(ST_CALL(st, kv_get, "leader", &val, &ver), CP_ENOTFOUND);
    assert_int_equal(ST_CALL(st, kv_cas, "leader", 0, "a", &nv), 0);
    assert_int_equal(nv, 1);
    assert_int_equal(ST_CALL(st, kv_cas, "leader", 0, "b", &nv), CP_ECONFLICT);
    assert_int_equal(ST_CALL(st, kv_cas, "leader", 2, "b", &nv), CP_ECONFLICT);
    assert_int_equal(ST_CALL(st, kv_cas, "leader", 1, "b", &nv), 0);
    assert_int_equal(nv, 2);
    assert_int_equal(ST_CALL(st, kv_cas, "leader", 1, "c", &nv), CP_ECONFLICT);
    assert_int_equal(ST_CALL(st, kv_get, "leader", &val, &ver), 0);
    assert_string_equal(val, "b");
    assert_int_equal(ver, 2);
    cp_free(val);
    assert_int_equal(ST_CALL(st, kv_cas, "absent", 3, "x", &nv), CP_ECONFLICT);
}

static void test_leases(void **state)
{
    struct store *st = ((struct fixture *)*state)->st;
    char *holder = NULL;
    int64_t exp = 0;
    const int64_t now = 5000000;

    assert_int_equal(
        ST_CALL(st, lease_acquire, "sched", "m1", now, 1000, &holder, &exp), 0);
    assert_string_equal(holder, "m1");
    assert_int_equal(exp, now + 1000);
    cp_free(holder);

    /* renew by the holder */
    assert_int_equal(
        ST_CALL(st, lease_acquire, "sched", "m1", now + 500, 1000, NULL, &exp),
        0);
    assert_int_equal(exp, now + 1500);

    /* contention */
    assert_int_equal(ST_CALL(st, lease_acquire, "sched", "m2", now + 600, 1000,
                             &holder, &exp),
                     CP_EAGAIN);
    assert_string_equal(holder, "m1");
    assert_int_equal(exp, now + 1500);
    cp_free(holder);

    /* expiry takeover */
    assert_int_equal(ST_CALL(st, lease_acquire, "sched", "m2", now + 1500, 1000,
                             &holder, &exp),
                     0);
    assert_string_equal(holder, "m2");
    assert_int_equal(exp, now + 2500);
    cp_free(holder);

    /* release: only by the holder */
    assert_int_equal(ST_CALL(st, lease_release, "sched", "m1"), 0);
    assert_int_equal(
        ST_CALL(st, lease_acquire, "sched", "m1", now + 1600, 1000, NULL, NULL),
        CP_EAGAIN);
    assert_int_equal(ST_CALL(st, lease_release, "sched", "m2"), 0);
    assert_int_equal(
        ST_CALL(st, lease_acquire, "sched", "m1", now + 1600, 1000, NULL, NULL),
        0);
}

/* Messages a subscriber got: the count and the last one. PostgreSQL
 * delivers on its listener thread, so the count is read atomically (and
 * written after last). */
struct feed_rec {
    int calls;
    char last[64];
    size_t last_len;
};

static void feed_cb(void *ctx, const char *channel, const char *payload)
{
    struct feed_rec *r = ctx;
    snprintf(r->last, sizeof(r->last), "%s:%s", channel, payload);
    r->last_len = strlen(channel) + 1 + strlen(payload);
    __atomic_add_fetch(&r->calls, 1, __ATOMIC_SEQ_CST);
}

static int calls(struct feed_rec *r)
{
    return __atomic_load_n(&r->calls, __ATOMIC_SEQ_CST);
}

static void test_feed(void **state)
{
    struct store *st = ((struct fixture *)*state)->st;
    struct feed_rec a = {0}, b = {0}, c = {0};
    int ida = st->ops->feed_subscribe(st, feed_cb, &a);
    int idb = st->ops->feed_subscribe(st, feed_cb, &b);
    assert_true(ida > 0);
    assert_true(idb > 0);
    assert_int_not_equal(ida, idb);
    assert_int_equal(ST_CALL(st, feed_publish, "grids", "{\"id\":1}"), 0);
    assert_true(testdb_wait(&a.calls, 1, 5000));
    assert_true(testdb_wait(&b.calls, 1, 5000));
    assert_string_equal(a.last, "grids:{\"id\":1}");
    st->ops->feed_unsubscribe(st, ida);
    assert_int_equal(ST_CALL(st, feed_publish, "grids", "2"), 0);
    assert_true(testdb_wait(&b.calls, 2, 5000));
    assert_int_equal(calls(&a), 1);
    assert_string_equal(b.last, "grids:2");
    st->ops->feed_unsubscribe(st, idb);
    assert_int_equal(ST_CALL(st, feed_publish, "grids", "3"), 0);
    /* a later subscriber sees "4", which was published after "3": by
     * then "3" went to nobody */
    int idc = st->ops->feed_subscribe(st, feed_cb, &c);
    assert_true(idc > 0);
    assert_int_equal(ST_CALL(st, feed_publish, "grids", "4"), 0);
    for (int i = 0; i < 1000 && strcmp(c.last, "grids:4") != 0; i++) {
        testdb_wait(&c.calls, calls(&c) + 1, 5);
    }
    assert_string_equal(c.last, "grids:4");
    assert_int_equal(calls(&b), 2);
    assert_int_equal(calls(&a), 1);
    st->ops->feed_unsubscribe(st, idc);
}

/* A payload far above PostgreSQL's 8000-byte NOTIFY limit arrives whole
 * (and one just under and over the inline size). */
static void big_cb(void *ctx, const char *channel, const char *payload)
{
    struct feed_rec *r = ctx;
    size_t n = strlen(payload);
    bool ok = strcmp(channel, "big") == 0 && n > 0;
    for (size_t i = 0; ok && i < n; i++)
        ok = payload[i] == (char)('a' + (i % 26));
    snprintf(r->last, sizeof(r->last), "%s", ok ? "intact" : "damaged");
    r->last_len = n;
    __atomic_add_fetch(&r->calls, 1, __ATOMIC_SEQ_CST);
}

static void test_feed_big_payload(void **state)
{
    struct store *st = ((struct fixture *)*state)->st;
    struct feed_rec r = {0};
    int id = st->ops->feed_subscribe(st, big_cb, &r);
    assert_true(id > 0);
    const size_t sizes[] = {6990, 7100, 8000, 100000};
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        char *payload = cp_malloc(sizes[k] + 1);
        for (size_t i = 0; i < sizes[k]; i++)
            payload[i] = (char)('a' + (i % 26));
        payload[sizes[k]] = '\0';
        assert_int_equal(ST_CALL(st, feed_publish, "big", payload), 0);
        cp_free(payload);
        assert_true(testdb_wait(&r.calls, (int)k + 1, 5000));
        assert_string_equal(r.last, "intact");
        assert_int_equal(r.last_len, sizes[k]);
    }
    st->ops->feed_unsubscribe(st, id);
}

/* PostgreSQL: connections killed by the server (restart, failover, idle
 * timeout) cost at most a CP_EIO per pooled connection, then the store
 * reconnects; the feed's listener reconnects by itself. */
static void test_reconnect(void **state)
{
    struct fixture *f = *state;
    if (f->db.mongo) {
        /* MongoDB has no command that drops another client's connections
         * (killOp ends operations, killSessions sessions); the driver's
         * own reconnecting is libmongoc's, tested there. */
        print_message("skipped: MongoDB: no server command cuts the "
                      "store's connections\n");
        skip();
    }
    if (!f->db.pg) {
        print_message("skipped: SQLite has no connections to lose\n");
        skip();
    }
    struct store *st = f->st;
    struct feed_rec r = {0};
    int id = st->ops->feed_subscribe(st, feed_cb, &r);
    assert_true(id > 0);
    assert_int_equal(ST_CALL(st, config_set, "k", "before"), 0);
    /* the pool's connection and the listener's */
    assert_true(testdb_count(&f->db, "SELECT COUNT(pg_terminate_backend(pid))"
                                     " FROM pg_stat_activity WHERE "
                                     "datname=current_database() AND "
                                     "pid<>pg_backend_pid()") >= 2);
    int failures = 0, rc = -1;
    for (int i = 0; i < 10 && rc != 0; i++) {
        rc = st->ops->ping(st);
        if (rc != 0) {
            assert_int_equal(rc, CP_EIO);
            failures++;
        }
    }
    assert_int_equal(rc, 0);
    assert_true(failures <= 1);
    char *val = NULL;
    assert_int_equal(ST_CALL(st, config_get, "k", &val), 0);
    assert_string_equal(val, "before");
    cp_free(val);
    /* the listener is back within its backoff */
    bool got = false;
    for (int i = 0; i < 50 && !got; i++) {
        assert_int_equal(ST_CALL(st, feed_publish, "after", "1"), 0);
        got = testdb_wait(&r.calls, 1, 200);
    }
    assert_true(got);
    assert_string_equal(r.last, "after:1");
    st->ops->feed_unsubscribe(st, id);
}

/* ==== Concurrency ==== */

#define CONC_THREADS 4
#define CONC_OPS 200

struct worker {
    struct store *st;
    int index;
    char user_id[25];
    char token_id[25];
    int failures;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < CONC_OPS; i++) {
        char name[32], token[32];
        snprintf(name, sizeof(name), "g-%d-%d", w->index, i);
        snprintf(token, sizeof(token), "t-%d-%d", w->index, i);
        struct store_grid g;
        fill_grid(&g, name, token);
        const char *field = NULL;
        if (ST_CALL(w->st, grid_create, &g, w->user_id, &field) != 0)
            w->failures++;
        if (ST_CALL(w->st, token_touch, w->token_id,
                    (int64_t)(i + 1) * 61000) != 0)
            w->failures++;
    }
    return NULL;
}

static void test_concurrent(void **state)
{
    struct store *st = ((struct fixture *)*state)->st;
    struct worker w[CONC_THREADS];
    pthread_t t[CONC_THREADS];
    for (int i = 0; i < CONC_THREADS; i++) {
        char email[32];
        snprintf(email, sizeof(email), "w%d@x", i);
        memset(&w[i], 0, sizeof(w[i]));
        w[i].st = st;
        w[i].index = i;
        make_user(st, email, w[i].user_id);
        char hash[32];
        snprintf(hash, sizeof(hash), "conc-%d", i);
        make_token(st, w[i].user_id, STORE_TOKEN_BEARER, hash, NULL, false, 0,
                   w[i].token_id);
    }
    for (int i = 0; i < CONC_THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
    for (int i = 0; i < CONC_THREADS; i++)
        pthread_join(t[i], NULL);

    for (int i = 0; i < CONC_THREADS; i++) {
        assert_int_equal(w[i].failures, 0);
        struct store_token tok = {0};
        assert_int_equal(ST_CALL(st, token_get, w[i].token_id, &tok), 0);
        assert_int_equal(tok.last_used_at, (int64_t)CONC_OPS * 61000);
        store_token_release(&tok);
        struct store_grid_list l = {0};
        assert_int_equal(ST_CALL(st, grid_list, w[i].user_id, &l), 0);
        assert_int_equal(l.len, CONC_OPS);
        store_grid_list_release(&l);
    }
    struct store_grid_list all = {0};
    assert_int_equal(ST_CALL(st, grid_list, NULL, &all), 0);
    assert_int_equal(all.len, CONC_THREADS * CONC_OPS);
    for (size_t i = 0; i < all.len; i++)
        assert_int_equal(all.items[i].user_count, 1);
    store_grid_list_release(&all);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_migrates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_keeps_data, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_two_stores_same_dir, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_users, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tokens, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_confirm, setup, teardown),
        cmocka_unit_test_setup_teardown(test_grids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kv_cas, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leases, setup, teardown),
        cmocka_unit_test_setup_teardown(test_feed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_feed_big_payload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconnect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
