/* Unit tests of the store's stack operations (spec 5.5): stacks with
 * revisions and services written at once, revisions guarded by
 * compare-and-set, labels, removal; stack jobs (queue with coalescing,
 * claims one per stack, take-over after the lease, fencing, pruning);
 * the service deploys of a stack deploy; log lines by stack. Each test
 * runs against a fresh database: SQLite in a temporary data directory,
 * PostgreSQL when KONTENA_TEST_DATABASE_URL is set (tests/pg.sh), or
 * MongoDB when KONTENA_TEST_MONGODB_URI is set (tests/mongo.sh; see
 * store_testdb.h).
 * SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../src/common/alloc.h"
#include "../../src/common/err.h"
#include "../../src/common/json.h"
#include "../../src/common/util.h"
#include "../../src/master/store.h"
#include "store_testdb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define S(lit) ((char *)(uintptr_t)(lit))

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
    g.name = S("g1");
    g.token_hash = S("tok-1");
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

/* Creates stack name with revision 1 holding services names (comma
 * separated); its id goes to id. */
static int make_stack(struct fixture *f, const char *name, const char *svcs,
                      char id[STORE_ID_LEN + 1])
{
    struct store_stack k = {.name = S(name), .revision = 1};
    store_new_id(k.id);
    memcpy(k.grid_id, f->grid, sizeof(k.grid_id));
    k.labels = json_pack("[s]", "env=test");
    struct store_stack_revision r = {.revision = 1};
    r.stack = S("user/x");
    r.source = S("services: {}");
    r.services = json_array();
    struct store_service v[8] = {0};
    size_t n = 0;
    char buf[128];
    snprintf(buf, sizeof(buf), "%s", svcs);
    for (char *p = buf, *e; *p != '\0' && n < 8; p = e) {
        e = p + strcspn(p, ",");
        if (*e == ',')
            *e++ = '\0';
        store_new_id(v[n].id);
        v[n].name = cp_strdup(p);
        v[n].spec = json_pack("{s:s}", "image", "busybox:latest");
        json_array_append_new(r.services, json_pack("{s:s}", "name", p));
        n++;
    }
    int rc = ST_CALL(f->st, stack_create, &k, &r, v, n);
    for (size_t i = 0; i < n; i++) {
        cp_free(v[i].name);
        json_decref(v[i].spec);
    }
    json_decref(r.services);
    json_decref(k.labels);
    if (id != NULL)
        memcpy(id, k.id, STORE_ID_LEN + 1);
    return rc;
}

/* ==== Stacks ==== */

static void test_stack_create_get_list(void **state)
{
    struct fixture *f = *state;
    struct store *st = f->st;
    char id[STORE_ID_LEN + 1];
    assert_int_equal(make_stack(f, "wp", "db,web", id), 0);
    assert_int_equal(make_stack(f, "wp", "x", NULL), CP_ECONFLICT);

    struct store_stack k = {0};
    struct store_stack_revision r = {0};
    assert_int_equal(ST_CALL(st, stack_get, f->grid, "wp", &k, &r), 0);
    assert_string_equal(k.id, id);
    assert_int_equal(k.revision, 1);
    assert_false(k.removing);
    assert_false(k.is_deploying);
    assert_string_equal(json_string_value(json_array_get(k.labels, 0)),
                        "env=test");
    assert_int_equal(r.revision, 1);
    assert_string_equal(r.stack, "user/x");
    assert_null(r.version);
    assert_int_equal(json_array_size(r.services), 2);
    assert_true(json_is_object(r.variables));
    store_stack_release(&k);
    store_stack_revision_release(&r);
    assert_int_equal(ST_CALL(st, stack_get_by_id, id, &k, NULL), 0);
    assert_string_equal(k.name, "wp");
    store_stack_release(&k);
    assert_int_equal(ST_CALL(st, stack_get, f->grid, "nope", &k, NULL),
                     CP_ENOTFOUND);

    /* the services were made in the stack */
    struct store_service_list sl = {0};
    assert_int_equal(ST_CALL(st, service_list, f->grid, "wp", &sl), 0);
    assert_int_equal(sl.len, 2);
    assert_string_equal(sl.items[0].stack_name, "wp");
    assert_string_equal(sl.items[0].state, "initialized");
    store_service_list_release(&sl);

    /* the list has the null stack (no revision) and wp, by name */
    struct store_stack_list l = {0};
    assert_int_equal(ST_CALL(st, stack_list, f->grid, &l), 0);
    assert_int_equal(l.len, 2);
    assert_string_equal(l.stacks[0].name, "null");
    assert_int_equal(l.stacks[0].revision, 0);
    assert_int_equal(l.revs[0].revision, 0);
    assert_null(l.revs[0].stack);
    assert_string_equal(l.stacks[1].name, "wp");
    assert_string_equal(l.revs[1].source, "services: {}");
    store_stack_list_release(&l);

    /* a service of that name fails the whole create */
    struct store_stack k2 = {.name = S("two"), .revision = 1};
    store_new_id(k2.id);
    memcpy(k2.grid_id, f->grid, sizeof(k2.grid_id));
    struct store_stack_revision r2 = {.revision = 1};
    struct store_service v[2] = {{.name = S("a")}, {.name = S("a")}};
    store_new_id(v[0].id);
    store_new_id(v[1].id);
    assert_int_equal(ST_CALL(st, stack_create, &k2, &r2, v, 2), CP_ECONFLICT);
    assert_int_equal(ST_CALL(st, stack_get, f->grid, "two", &k, NULL),
                     CP_ENOTFOUND);
}

static void test_stack_revise(void **state)
{
    struct fixture *f = *state;
    struct store *st = f->st;
    char id[STORE_ID_LEN + 1];
    assert_int_equal(make_stack(f, "wp", "db", id), 0);
    struct store_stack_revision r = {.revision = 2};
    r.source = S("v2");
    r.services = json_pack("[{s:s},{s:s}]", "name", "db", "name", "cache");
    struct store_service v[2] = {{.name = S("db")}, {.name = S("cache")}};
    store_new_id(v[0].id);
    store_new_id(v[1].id);
    v[0].spec = json_pack("{s:s}", "image", "changed");
    v[1].spec = json_pack("{s:s}", "image", "redis");
    /* wrong expectation: conflict, nothing written */
    assert_int_equal(ST_CALL(st, stack_revise, id, 2, &r, v, 2), CP_EINVAL);
    r.revision = 2;
    assert_int_equal(ST_CALL(st, stack_revise, id, 1, &r, v, 2), 0);
    assert_int_equal(ST_CALL(st, stack_revise, id, 1, &r, v, 2), CP_ECONFLICT);
    assert_int_equal(ST_CALL(st, stack_revise, "nope", 1, &r, v, 2),
                     CP_ENOTFOUND);
    struct store_stack k = {0};
    struct store_stack_revision got = {0};
    assert_int_equal(ST_CALL(st, stack_get, f->grid, "wp", &k, &got), 0);
    assert_int_equal(k.revision, 2);
    assert_string_equal(got.source, "v2");
    store_stack_revision_release(&got);
    /* revision 1 is still there, unchanged */
    assert_int_equal(ST_CALL(st, stack_revision_get, id, 1, &got), 0);
    assert_string_equal(got.source, "services: {}");
    store_stack_revision_release(&got);
    assert_int_equal(ST_CALL(st, stack_revision_get, id, 3, &got),
                     CP_ENOTFOUND);
    /* cache is new, db was left untouched */
    struct store_service s = {0};
    assert_int_equal(ST_CALL(st, service_get, f->grid, "wp", "db", &s), 0);
    assert_string_equal(cp_json_str(s.spec, "image"), "busybox:latest");
    store_service_release(&s);
    assert_int_equal(ST_CALL(st, service_get, f->grid, "wp", "cache", &s), 0);
    assert_string_equal(cp_json_str(s.spec, "image"), "redis");
    store_service_release(&s);
    store_stack_release(&k);
    json_decref(r.services);
    json_decref(v[0].spec);
    json_decref(v[1].spec);
}

static void test_stack_update_delete(void **state)
{
    struct fixture *f = *state;
    struct store *st = f->st;
    char id[STORE_ID_LEN + 1];
    assert_int_equal(make_stack(f, "wp", "db", id), 0);
    struct store_stack k = {0};
    assert_int_equal(ST_CALL(st, stack_get, f->grid, "wp", &k, NULL), 0);
    json_decref(k.labels);
    k.labels = json_pack("[s,s]", "a=1", "b=2");
    k.parent_name = cp_strdup("parent");
    assert_int_equal(ST_CALL(st, stack_update, &k), 0);
    store_stack_release(&k);
    assert_int_equal(ST_CALL(st, stack_get, f->grid, "wp", &k, NULL), 0);
    assert_int_equal(json_array_size(k.labels), 2);
    assert_string_equal(k.parent_name, "parent");
    store_stack_release(&k);

    /* not while it has services; then with its revisions and jobs */
    assert_int_equal(ST_CALL(st, stack_delete, id), CP_ECONFLICT);
    struct store_stack_deploy d = {.action = S("deploy")}, out = {0};
    memcpy(d.stack_id, id, sizeof(d.stack_id));
    assert_int_equal(ST_CALL(st, stack_deploy_queue, &d, &out), 0);
    struct store_service s = {0};
    assert_int_equal(ST_CALL(st, service_get, f->grid, "wp", "db", &s), 0);
    assert_int_equal(ST_CALL(st, service_delete, s.id), 0);
    store_service_release(&s);
    assert_int_equal(ST_CALL(st, stack_delete, id), 0);
    assert_int_equal(ST_CALL(st, stack_get, f->grid, "wp", &k, NULL),
                     CP_ENOTFOUND);
    struct store_stack_deploy gone = {0};
    assert_int_equal(ST_CALL(st, stack_deploy_get, out.id, &gone),
                     CP_ENOTFOUND);
    struct store_stack_revision r = {0};
    assert_int_equal(ST_CALL(st, stack_revision_get, id, 1, &r), CP_ENOTFOUND);
    store_stack_deploy_release(&out);
    assert_int_equal(ST_CALL(st, stack_delete, id), CP_ENOTFOUND);

    /* the null stack stays */
    assert_int_equal(ST_CALL(st, stack_get, f->grid, "null", &k, NULL), 0);
    assert_int_equal(ST_CALL(st, stack_delete, k.id), CP_ENOTFOUND);
    store_stack_release(&k);
}

/* ==== Jobs ==== */

static void queue(struct fixture *f, const char *stack_id, const char *action,
                  struct store_stack_deploy *out)
{
    struct store_stack_deploy d = {.action = S(action)};
    store_new_id(d.id);
    memcpy(d.stack_id, stack_id, sizeof(d.stack_id));
    assert_int_equal(ST_CALL(f->st, stack_deploy_queue, &d, out), 0);
}

static void test_jobs_queue_claim(void **state)
{
    struct fixture *f = *state;
    struct store *st = f->st;
    char a[STORE_ID_LEN + 1], b[STORE_ID_LEN + 1];
    assert_int_equal(make_stack(f, "a", "x", a), 0);
    assert_int_equal(make_stack(f, "b", "y", b), 0);
    struct store_stack_deploy a1 = {0}, a2 = {0}, b1 = {0}, c = {0};
    queue(f, a, "deploy", &a1);
    queue(f, a, "deploy", &a2);
    assert_string_equal(a1.id, a2.id); /* coalesced */
    assert_string_equal(a1.state, "created");
    assert_int_equal(a1.revision, 0);
    queue(f, b, "deploy", &b1);

    /* is_deploying shows while a deploy is open */
    struct store_stack k = {0};
    assert_int_equal(ST_CALL(st, stack_get, f->grid, "a", &k, NULL), 0);
    assert_true(k.is_deploying);
    store_stack_release(&k);

    int64_t now = cp_now_ms();
    assert_int_equal(ST_CALL(st, stack_deploy_claim, "m1", now, 30000, &c), 0);
    assert_string_equal(c.id, a1.id);
    assert_string_equal(c.state, "ongoing");
    assert_string_equal(c.claimed_by, "m1");
    assert_int_equal(c.started_at, now);
    store_stack_deploy_release(&c);
    /* a second deploy of a queues behind the ongoing one */
    struct store_stack_deploy a3 = {0};
    queue(f, a, "deploy", &a3);
    assert_string_not_equal(a3.id, a1.id);
    assert_int_equal(ST_CALL(st, stack_deploy_claim, "m2", now, 30000, &c), 0);
    assert_string_equal(c.id, b1.id);
    store_stack_deploy_release(&c);
    assert_int_equal(ST_CALL(st, stack_deploy_claim, "m2", now, 30000, &c),
                     CP_ENOTFOUND);

    /* fenced writes */
    struct store_stack_deploy w = {0};
    assert_int_equal(ST_CALL(st, stack_deploy_get, a1.id, &w), 0);
    w.revision = 3;
    json_decref(w.service_deploys);
    w.service_deploys = json_pack("[{s:s}]", "name", "x");
    assert_int_equal(ST_CALL(st, stack_deploy_update, &w), 0);
    cp_free(w.claimed_by);
    w.claimed_by = cp_strdup("m2");
    assert_int_equal(ST_CALL(st, stack_deploy_update, &w), CP_ECONFLICT);
    store_stack_deploy_release(&w);

    /* the lease of m1 expires: m2 takes a1 over, progress kept, and the
     * queued a3 still waits */
    int64_t later = now + 31000;
    assert_int_equal(ST_CALL(st, stack_deploy_claim, "m2", later, 30000, &c),
                     0);
    assert_string_equal(c.id, a1.id);
    assert_string_equal(c.claimed_by, "m2");
    assert_int_equal(c.revision, 3);
    assert_int_equal(c.started_at, now);
    assert_string_equal(
        cp_json_str(json_array_get(c.service_deploys, 0), "name"), "x");
    /* m1 can no longer write it */
    struct store_stack_deploy old = {0};
    assert_int_equal(ST_CALL(st, stack_deploy_get, a1.id, &old), 0);
    cp_free(old.claimed_by);
    old.claimed_by = cp_strdup("m1");
    assert_int_equal(ST_CALL(st, stack_deploy_update, &old), CP_ECONFLICT);
    store_stack_deploy_release(&old);
    /* b1's lease (m2's first claim) ran out too: taken over */
    struct store_stack_deploy none = {0};
    assert_int_equal(ST_CALL(st, stack_deploy_claim, "m3", later, 30000, &none),
                     0);
    assert_string_equal(none.id, b1.id);
    store_stack_deploy_release(&none);
    assert_int_equal(ST_CALL(st, stack_deploy_claim, "m3", later, 30000, &none),
                     CP_ENOTFOUND);
    /* finishing a1 lets a3 go */
    cp_free(c.state);
    c.state = cp_strdup("success");
    c.finished_at = later;
    assert_int_equal(ST_CALL(st, stack_deploy_update, &c), 0);
    store_stack_deploy_release(&c);
    assert_int_equal(ST_CALL(st, stack_deploy_claim, "m3", later, 30000, &c),
                     0);
    assert_string_equal(c.id, a3.id);
    store_stack_deploy_release(&c);

    /* open jobs of the grid (a3, b1), and of one stack */
    struct store_stack_deploy_list l = {0};
    assert_int_equal(ST_CALL(st, stack_deploy_list, f->grid, NULL, true, 0, &l),
                     0);
    assert_int_equal(l.len, 2); /* a3 and b1 */
    store_stack_deploy_list_release(&l);
    assert_int_equal(ST_CALL(st, stack_deploy_list, f->grid, a, false, 0, &l),
                     0);
    assert_int_equal(l.len, 2);
    assert_string_equal(l.items[0].id, a3.id); /* newest first */
    store_stack_deploy_list_release(&l);

    store_stack_deploy_release(&a1);
    store_stack_deploy_release(&a2);
    store_stack_deploy_release(&a3);
    store_stack_deploy_release(&b1);
}

static void test_jobs_remove(void **state)
{
    struct fixture *f = *state;
    struct store *st = f->st;
    char a[STORE_ID_LEN + 1];
    assert_int_equal(make_stack(f, "a", "x", a), 0);
    struct store_stack_deploy r1 = {0}, r2 = {0}, d1 = {0};
    queue(f, a, "deploy", &d1);
    queue(f, a, "remove", &r1);
    queue(f, a, "remove", &r2);
    assert_string_equal(r1.id, r2.id);
    assert_string_equal(r1.action, "remove");
    assert_string_not_equal(r1.id, d1.id);
    struct store_stack k = {0};
    assert_int_equal(ST_CALL(st, stack_get, f->grid, "a", &k, NULL), 0);
    assert_true(k.removing);
    store_stack_release(&k);
    /* oldest first: the deploy, then (after it ends) the removal */
    struct store_stack_deploy c = {0};
    int64_t now = cp_now_ms();
    assert_int_equal(ST_CALL(st, stack_deploy_claim, "m", now, 1000, &c), 0);
    assert_string_equal(c.id, d1.id);
    store_stack_deploy_release(&c);
    store_stack_deploy_release(&r1);
    store_stack_deploy_release(&r2);
    store_stack_deploy_release(&d1);
}

static void test_jobs_prune(void **state)
{
    struct fixture *f = *state;
    struct store *st = f->st;
    char a[STORE_ID_LEN + 1];
    assert_int_equal(make_stack(f, "a", "x", a), 0);
    int64_t now = cp_now_ms();
    for (int i = 0; i < 5; i++) {
        struct store_stack_deploy d = {0}, c = {0};
        queue(f, a, "deploy", &d);
        assert_int_equal(
            ST_CALL(st, stack_deploy_claim, "m", now + i, 30000, &c), 0);
        cp_free(c.state);
        c.state = cp_strdup(i % 2 ? "error" : "success");
        c.finished_at = now + i;
        assert_int_equal(ST_CALL(st, stack_deploy_update, &c), 0);
        store_stack_deploy_release(&c);
        store_stack_deploy_release(&d);
    }
    struct store_stack_deploy open = {0};
    queue(f, a, "deploy", &open);
    int deleted = -1;
    assert_int_equal(ST_CALL(st, stack_deploys_prune, 2, &deleted), 0);
    assert_int_equal(deleted, 3);
    struct store_stack_deploy_list l = {0};
    assert_int_equal(ST_CALL(st, stack_deploy_list, f->grid, a, false, 0, &l),
                     0);
    assert_int_equal(l.len, 3); /* two finished + the open one */
    assert_string_equal(l.items[0].id, open.id);
    store_stack_deploy_list_release(&l);
    store_stack_deploy_release(&open);
}

/* Service deploys carry their stack deploy, also when coalesced. */
static void test_service_deploys_of_job(void **state)
{
    struct fixture *f = *state;
    struct store *st = f->st;
    char a[STORE_ID_LEN + 1];
    assert_int_equal(make_stack(f, "a", "x,y", a), 0);
    struct store_service x = {0}, y = {0};
    assert_int_equal(ST_CALL(st, service_get, f->grid, "a", "x", &x), 0);
    assert_int_equal(ST_CALL(st, service_get, f->grid, "a", "y", &y), 0);
    struct store_stack_deploy job = {0};
    queue(f, a, "deploy", &job);

    struct store_deploy d = {0}, out = {0};
    memcpy(d.service_id, x.id, sizeof(d.service_id));
    store_new_id(d.id);
    assert_int_equal(ST_CALL(st, deploy_queue, &d, &out), 0); /* no job */
    assert_string_equal(out.stack_deploy_id, "");
    store_deploy_release(&out);
    memcpy(d.stack_deploy_id, job.id, sizeof(d.stack_deploy_id));
    store_new_id(d.id);
    assert_int_equal(ST_CALL(st, deploy_queue, &d, &out), 0); /* coalesced */
    assert_string_equal(out.stack_deploy_id, job.id);
    store_deploy_release(&out);
    memcpy(d.service_id, y.id, sizeof(d.service_id));
    store_new_id(d.id);
    assert_int_equal(ST_CALL(st, deploy_queue, &d, &out), 0);
    store_deploy_release(&out);

    struct store_deploy_list l = {0};
    assert_int_equal(ST_CALL(st, stack_deploy_services, job.id, &l), 0);
    assert_int_equal(l.len, 2);
    assert_string_equal(l.items[0].service_id, x.id);
    assert_string_equal(l.items[1].service_id, y.id);
    store_deploy_list_release(&l);

    /* a service deploy open makes the stack deploying */
    struct store_stack k = {0};
    assert_int_equal(ST_CALL(st, stack_get, f->grid, "a", &k, NULL), 0);
    assert_true(k.is_deploying);
    store_stack_release(&k);

    store_stack_deploy_release(&job);
    store_service_release(&x);
    store_service_release(&y);
}

/* Log lines of a stack are those of its services. */
static void test_logs_by_stack(void **state)
{
    struct fixture *f = *state;
    struct store *st = f->st;
    char a[STORE_ID_LEN + 1], b[STORE_ID_LEN + 1];
    assert_int_equal(make_stack(f, "a", "x", a), 0);
    assert_int_equal(make_stack(f, "b", "x", b), 0);
    struct store_service ax = {0}, bx = {0};
    assert_int_equal(ST_CALL(st, service_get, f->grid, "a", "x", &ax), 0);
    assert_int_equal(ST_CALL(st, service_get, f->grid, "b", "x", &bx), 0);
    struct store_log v[3] = {0};
    for (int i = 0; i < 3; i++) {
        memcpy(v[i].grid_id, f->grid, sizeof(v[i].grid_id));
        memcpy(v[i].service_id, i == 1 ? bx.id : ax.id, STORE_ID_LEN + 1);
        v[i].container_id = S("c");
        v[i].name = S(i == 1 ? "b.x-1" : "a.x-1");
        v[i].type = S("stdout");
        v[i].data = S(i == 1 ? "from b" : "from a");
    }
    assert_int_equal(ST_CALL(st, logs_append, v, 3), 0);
    struct store_log_query q = {.grid_id = f->grid, .stack_id = a};
    struct store_log_list l = {0};
    assert_int_equal(ST_CALL(st, logs_read, &q, &l), 0);
    assert_int_equal(l.len, 2);
    assert_string_equal(l.items[0].data, "from a");
    assert_string_equal(l.items[1].data, "from a");
    store_log_list_release(&l);
    q.stack_id = b;
    q.after_seq = 1;
    assert_int_equal(ST_CALL(st, logs_read, &q, &l), 0);
    assert_int_equal(l.len, 1);
    assert_string_equal(l.items[0].data, "from b");
    store_log_list_release(&l);
    store_service_release(&ax);
    store_service_release(&bx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_stack_create_get_list, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stack_revise, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stack_update_delete, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_jobs_queue_claim, setup, teardown),
        cmocka_unit_test_setup_teardown(test_jobs_remove, setup, teardown),
        cmocka_unit_test_setup_teardown(test_jobs_prune, setup, teardown),
        cmocka_unit_test_setup_teardown(test_service_deploys_of_job, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_logs_by_stack, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
