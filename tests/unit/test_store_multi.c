/* Two stores on one database, as two masters share one in HA: races on
 * the HA primitives and on stacks and stack jobs resolve as store.h
 * documents (exactly one winner, nothing lost), and the change feed reaches every store, the publisher included.
 *
 * Runs against SQLite (two handles on one file) by default, against
 * PostgreSQL when KONTENA_TEST_DATABASE_URL is set (tests/pg.sh) and
 * against MongoDB when KONTENA_TEST_MONGODB_URI is set (tests/mongo.sh);
 * the cross-store feed test needs a server (SQLite's feed is in-process).
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
#include <string.h>

#define RACERS 8

struct fixture {
    struct testdb db;
    struct store *st[2]; /* two "masters" */
    char grid[STORE_ID_LEN + 1];
};

static int setup(void **state)
{
    struct fixture *f = cp_calloc(1, sizeof(*f));
    testdb_make(&f->db, NULL);
    for (int i = 0; i < 2; i++) {
        char err[256] = "";
        if (store_open(f->db.url, &f->st[i], err, sizeof(err)) != 0)
            fail_msg("store_open: %s", err);
    }
    struct store_grid g = {0};
    store_new_id(g.id);
    g.name = (char *)(uintptr_t) "race";
    g.token_hash = (char *)(uintptr_t) "race-token";
    g.initial_size = 1;
    assert_int_equal(ST_CALL(f->st[0], grid_create, &g, NULL, NULL), 0);
    memcpy(f->grid, g.id, sizeof(f->grid));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    store_close(f->st[0]);
    store_close(f->st[1]);
    testdb_drop(&f->db);
    cp_free(f);
    return 0;
}

/* ==== A race: RACERS threads, alternating stores, released at once ==== */

struct racer;
typedef int race_fn(struct racer *r);

struct racer {
    struct fixture *f;
    struct store *st;
    int index;
    race_fn *fn;
    pthread_barrier_t *go;
    int rc;
    int64_t num;
    char text[64];
};

static void *racer_main(void *arg)
{
    struct racer *r = arg;
    pthread_barrier_wait(r->go);
    r->rc = r->fn(r);
    return NULL;
}

static void race(struct fixture *f, race_fn *fn, struct racer *r)
{
    pthread_barrier_t go;
    pthread_t t[RACERS];
    pthread_barrier_init(&go, NULL, RACERS);
    for (int i = 0; i < RACERS; i++) {
        memset(&r[i], 0, sizeof(r[i]));
        r[i] = (struct racer){
            .f = f, .st = f->st[i % 2], .index = i, .fn = fn, .go = &go};
        assert_int_equal(pthread_create(&t[i], NULL, racer_main, &r[i]), 0);
    }
    for (int i = 0; i < RACERS; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&go);
}

/* How many racers got 0; every other one must have got loser. */
static int winners(const struct racer *r, int loser)
{
    int won = 0;
    for (int i = 0; i < RACERS; i++) {
        if (r[i].rc == 0)
            won++;
        else
            assert_int_equal(r[i].rc, loser);
    }
    return won;
}

/* ==== kv compare-and-set ==== */

static int64_t kv_expect;

static int kv_racer(struct racer *r)
{
    char v[16];
    snprintf(v, sizeof(v), "v%d", r->index);
    return ST_CALL(r->st, kv_cas, "leader-info", kv_expect, v, &r->num);
}

static void test_kv_cas_race(void **state)
{
    struct fixture *f = *state;
    struct racer r[RACERS];
    for (int round = 0; round < 10; round++) {
        kv_expect = round; /* 0 = the key must be absent */
        race(f, kv_racer, r);
        assert_int_equal(winners(r, CP_ECONFLICT), 1);
        int w = 0;
        while (r[w].rc != 0)
            w++;
        assert_int_equal(r[w].num, round + 1);
        /* both stores read the winner's value */
        for (int s = 0; s < 2; s++) {
            char *val = NULL;
            int64_t ver = 0;
            assert_int_equal(
                ST_CALL(f->st[s], kv_get, "leader-info", &val, &ver), 0);
            char want[16];
            snprintf(want, sizeof(want), "v%d", w);
            assert_string_equal(val, want);
            assert_int_equal(ver, round + 1);
            cp_free(val);
        }
    }
}

/* ==== Leases ==== */

static int64_t lease_now;

static int lease_racer(struct racer *r)
{
    char holder[16], *got = NULL;
    snprintf(holder, sizeof(holder), "m%d", r->index);
    int rc = ST_CALL(r->st, lease_acquire, "leader", holder, lease_now, 10000,
                     &got, &r->num);
    snprintf(r->text, sizeof(r->text), "%s", got ? got : "(none)");
    cp_free(got);
    return rc;
}

static void test_lease_race(void **state)
{
    struct fixture *f = *state;
    struct racer r[RACERS];
    for (int round = 0; round < 5; round++) {
        /* each round starts after the last lease expired */
        lease_now = 1000000 + (int64_t)round * 20000;
        race(f, lease_racer, r);
        assert_int_equal(winners(r, CP_EAGAIN), 1);
        int w = 0;
        while (r[w].rc != 0)
            w++;
        char holder[16];
        snprintf(holder, sizeof(holder), "m%d", w);
        for (int i = 0; i < RACERS; i++) {
            /* every loser names the winner and its expiry */
            assert_string_equal(r[i].text, holder);
            assert_int_equal(r[i].num, lease_now + 10000);
        }
        /* the winner renews through the other store */
        assert_int_equal(ST_CALL(f->st[(w + 1) % 2], lease_acquire, "leader",
                                 holder, lease_now + 5000, 10000, NULL, NULL),
                         0);
    }
}

/* ==== Deploy claims ==== */

struct claimed {
    char deploy[STORE_ID_LEN + 1];
    char service[STORE_ID_LEN + 1];
};

static int claim_racer(struct racer *r)
{
    char holder[16];
    snprintf(holder, sizeof(holder), "m%d", r->index);
    struct store_deploy d = {0};
    int rc = ST_CALL(r->st, deploy_claim, holder, 5000, 60000, &d);
    if (rc == 0)
        snprintf(r->text, sizeof(r->text), "%s%s", d.id, d.service_id);
    store_deploy_release(&d);
    return rc;
}

static void make_service(struct store *st, const char *grid, const char *name,
                         char id[STORE_ID_LEN + 1])
{
    struct store_service v = {0};
    store_new_id(v.id);
    memcpy(v.grid_id, grid, STORE_ID_LEN + 1);
    v.name = (char *)(uintptr_t)name;
    assert_int_equal(ST_CALL(st, service_create, &v), 0);
    memcpy(id, v.id, STORE_ID_LEN + 1);
}

static void queue(struct store *st, const char *svc, char id[25])
{
    struct store_deploy d = {0}, out = {0};
    memcpy(d.service_id, svc, STORE_ID_LEN + 1);
    assert_int_equal(ST_CALL(st, deploy_queue, &d, &out), 0);
    if (id != NULL)
        memcpy(id, out.id, STORE_ID_LEN + 1);
    store_deploy_release(&out);
}

static void test_deploy_claim_race(void **state)
{
    struct fixture *f = *state;
    char a[25], b[25], c[25];
    make_service(f->st[0], f->grid, "a", a);
    make_service(f->st[1], f->grid, "b", b);
    make_service(f->st[0], f->grid, "c", c);
    /* a and b queued once each; c queued from both stores at once is
     * coalesced into one deploy */
    queue(f->st[0], a, NULL);
    queue(f->st[1], b, NULL);
    char c1[25], c2[25];
    queue(f->st[0], c, c1);
    queue(f->st[1], c, c2);
    assert_string_equal(c1, c2);

    struct racer r[RACERS];
    race(f, claim_racer, r);
    /* three deploys, eight claimers: three winners, each deploy once */
    assert_int_equal(winners(r, CP_ENOTFOUND), 3);
    for (int i = 0; i < RACERS; i++)
        for (int j = i + 1; j < RACERS; j++)
            if (r[i].rc == 0 && r[j].rc == 0)
                assert_string_not_equal(r[i].text, r[j].text);

    /* a second deploy of a service with an ongoing one is not claimed
     * while the lease lives */
    queue(f->st[1], a, NULL);
    race(f, claim_racer, r);
    assert_int_equal(winners(r, CP_ENOTFOUND), 0);
}

/* ==== Stacks ==== */

static char race_stack[STORE_ID_LEN + 1];

/* Creates stack name (revision 1) with services svcs[0..n). */
static void make_stack(struct store *st, const char *grid, const char *name,
                       const char *const *svcs, size_t n,
                       char id[STORE_ID_LEN + 1])
{
    struct store_stack k = {.name = (char *)(uintptr_t)name, .revision = 1};
    store_new_id(k.id);
    memcpy(k.grid_id, grid, STORE_ID_LEN + 1);
    struct store_stack_revision r = {.revision = 1};
    struct store_service v[4] = {0};
    for (size_t i = 0; i < n; i++) {
        store_new_id(v[i].id);
        v[i].name = (char *)(uintptr_t)svcs[i];
    }
    assert_int_equal(ST_CALL(st, stack_create, &k, &r, v, n), 0);
    memcpy(id, k.id, STORE_ID_LEN + 1);
}

static int stack_create_racer(struct racer *r)
{
    struct store_stack k = {.name = (char *)(uintptr_t) "same", .revision = 1};
    store_new_id(k.id);
    memcpy(k.grid_id, r->f->grid, STORE_ID_LEN + 1);
    struct store_stack_revision rev = {.revision = 1};
    struct store_service v = {.name = (char *)(uintptr_t) "web"};
    store_new_id(v.id);
    return ST_CALL(r->st, stack_create, &k, &rev, &v, 1);
}

static int stack_revise_racer(struct racer *r)
{
    char svc[16];
    snprintf(svc, sizeof(svc), "s%d", r->index);
    struct store_stack_revision rev = {.revision = 2};
    struct store_service v = {.name = svc};
    store_new_id(v.id);
    return ST_CALL(r->st, stack_revise, race_stack, 1, &rev, &v, 1);
}

/* A stack is created once; one revision wins, and only its service is
 * added. */
static void test_stack_create_revise_race(void **state)
{
    struct fixture *f = *state;
    struct racer r[RACERS];
    race(f, stack_create_racer, r);
    assert_int_equal(winners(r, CP_ECONFLICT), 1);
    struct store_stack k = {0};
    assert_int_equal(ST_CALL(f->st[0], stack_get, f->grid, "same", &k, NULL),
                     0);
    memcpy(race_stack, k.id, sizeof(race_stack));
    store_stack_release(&k);

    race(f, stack_revise_racer, r);
    assert_int_equal(winners(r, CP_ECONFLICT), 1);
    int w = 0;
    while (r[w].rc != 0)
        w++;
    assert_int_equal(ST_CALL(f->st[1], stack_get_by_id, race_stack, &k, NULL),
                     0);
    assert_int_equal(k.revision, 2);
    store_stack_release(&k);
    struct store_service_list l = {0};
    assert_int_equal(ST_CALL(f->st[0], service_list, f->grid, "same", &l), 0);
    assert_int_equal(l.len, 2);
    char want[16];
    snprintf(want, sizeof(want), "s%d", w);
    assert_string_equal(l.items[0].name, want);
    assert_string_equal(l.items[1].name, "web");
    store_service_list_release(&l);
}

/* Half the racers add a service to the stack, half delete the stack:
 * either the stack goes and no service was added, or it stays with every
 * service added; a service is never taken along by the delete. */
static int stack_delete_racer(struct racer *r)
{
    if (r->index % 2 == 0)
        return ST_CALL(r->st, stack_delete, race_stack);
    struct store_service v = {0};
    store_new_id(v.id);
    memcpy(v.grid_id, r->f->grid, STORE_ID_LEN + 1);
    memcpy(v.stack_id, race_stack, STORE_ID_LEN + 1);
    snprintf(r->text, sizeof(r->text), "s%d", r->index);
    v.name = r->text;
    return ST_CALL(r->st, service_create, &v);
}

static void test_stack_delete_race(void **state)
{
    struct fixture *f = *state;
    struct racer r[RACERS];
    for (int round = 0; round < 5; round++) {
        char name[16];
        snprintf(name, sizeof(name), "del%d", round);
        make_stack(f->st[0], f->grid, name, NULL, 0, race_stack);
        race(f, stack_delete_racer, r);
        int deleted = 0, added = 0;
        for (int i = 0; i < RACERS; i++) {
            if (i % 2 == 0) {
                if (r[i].rc == 0)
                    deleted++;
                else
                    assert_true(r[i].rc == CP_ECONFLICT ||
                                r[i].rc == CP_ENOTFOUND);
            } else if (r[i].rc == 0) {
                added++;
            } else {
                assert_int_equal(r[i].rc, CP_ENOTFOUND);
            }
        }
        assert_true(deleted <= 1);
        struct store_stack k = {0};
        int got = ST_CALL(f->st[1], stack_get, f->grid, name, &k, NULL);
        store_stack_release(&k);
        struct store_service_list l = {0};
        assert_int_equal(ST_CALL(f->st[1], service_list, f->grid, name, &l), 0);
        if (deleted == 1) {
            assert_int_equal(got, CP_ENOTFOUND);
            assert_int_equal(added, 0);
            assert_int_equal(l.len, 0);
        } else {
            assert_int_equal(got, 0);
            assert_int_equal(l.len, (size_t)added);
        }
        store_service_list_release(&l);
    }
}

static int stack_queue_racer(struct racer *r)
{
    struct store_stack_deploy d = {0}, out = {0};
    store_new_id(d.id);
    memcpy(d.stack_id, race_stack, STORE_ID_LEN + 1);
    d.action = (char *)(uintptr_t)(r->index % 2 ? "remove" : "deploy");
    int rc = ST_CALL(r->st, stack_deploy_queue, &d, &out);
    snprintf(r->text, sizeof(r->text), "%s", out.id);
    store_stack_deploy_release(&out);
    return rc;
}

static int64_t job_now;

static int stack_claim_racer(struct racer *r)
{
    char holder[16];
    snprintf(holder, sizeof(holder), "m%d", r->index);
    struct store_stack_deploy d = {0};
    int rc = ST_CALL(r->st, stack_deploy_claim, holder, job_now, 60000, &d);
    if (rc == 0)
        snprintf(r->text, sizeof(r->text), "%s %s", d.id, d.stack_id);
    store_stack_deploy_release(&d);
    return rc;
}

/* Asserts that no two winners claimed jobs of the same stack. */
static void claims_distinct(const struct racer *r)
{
    for (int i = 0; i < RACERS; i++)
        for (int j = i + 1; j < RACERS; j++)
            if (r[i].rc == 0 && r[j].rc == 0)
                assert_string_not_equal(strchr(r[i].text, ' '),
                                        strchr(r[j].text, ' '));
}

/* Stack jobs queued from both stores at once coalesce into one per
 * action; claims give each stack at most one ongoing job, and an expired
 * one to exactly one taker, whose writes then fence the others out. */
static void test_stack_jobs_race(void **state)
{
    struct fixture *f = *state;
    const char *one[] = {"x"};
    char a[STORE_ID_LEN + 1], b[STORE_ID_LEN + 1];
    make_stack(f->st[0], f->grid, "a", one, 1, a);
    make_stack(f->st[1], f->grid, "b", one, 1, b);
    struct racer r[RACERS];
    memcpy(race_stack, a, sizeof(race_stack));
    race(f, stack_queue_racer, r);
    assert_int_equal(winners(r, -1), RACERS);
    for (int i = 2; i < RACERS; i++)
        assert_string_equal(r[i].text, r[i % 2].text);
    assert_string_not_equal(r[0].text, r[1].text);
    memcpy(race_stack, b, sizeof(race_stack));
    race(f, stack_queue_racer, r);
    struct store_stack_deploy_list l = {0};
    assert_int_equal(
        ST_CALL(f->st[0], stack_deploy_list, f->grid, NULL, true, 0, &l), 0);
    assert_int_equal(l.len, 4); /* deploy and remove of a and b */
    store_stack_deploy_list_release(&l);

    /* four jobs on two stacks: two winners, on different stacks */
    job_now = 10000;
    race(f, stack_claim_racer, r);
    assert_int_equal(winners(r, CP_ENOTFOUND), 2);
    claims_distinct(r);
    char first[RACERS][64];
    int w = 0;
    for (int i = 0; i < RACERS; i++)
        if (r[i].rc == 0)
            snprintf(first[w++], sizeof(first[0]), "%s", r[i].text);

    /* both leases expire: each job is taken over by exactly one */
    job_now = 10000 + 60001;
    race(f, stack_claim_racer, r);
    assert_int_equal(winners(r, CP_ENOTFOUND), 2);
    claims_distinct(r);
    int taker = -1;
    for (int i = 0; i < RACERS; i++) {
        if (r[i].rc != 0)
            continue;
        assert_true(strcmp(r[i].text, first[0]) == 0 ||
                    strcmp(r[i].text, first[1]) == 0);
        taker = i;
    }
    /* the taker writes its job; any other holder is fenced out */
    char id[STORE_ID_LEN + 1];
    snprintf(id, sizeof(id), "%.*s", STORE_ID_LEN, r[taker].text);
    for (int i = 0; i < RACERS; i++) {
        struct store_stack_deploy d = {0};
        assert_int_equal(ST_CALL(f->st[i % 2], stack_deploy_get, id, &d), 0);
        cp_free(d.claimed_by);
        char holder[16];
        snprintf(holder, sizeof(holder), "m%d", i);
        d.claimed_by = cp_strdup(holder);
        cp_free(d.state);
        d.state = cp_strdup("success");
        d.finished_at = job_now;
        assert_int_equal(ST_CALL(f->st[i % 2], stack_deploy_update, &d),
                         i == taker ? 0 : CP_ECONFLICT);
        store_stack_deploy_release(&d);
    }
}

/* ==== Node connections ==== */

static char plug_node[STORE_ID_LEN + 1];

static int plug_racer(struct racer *r)
{
    char master[16];
    snprintf(master, sizeof(master), "m%d", r->index);
    return ST_CALL(r->st, node_plug, plug_node, master, 1000, 1000, &r->num);
}

static void test_node_plug_race(void **state)
{
    struct fixture *f = *state;
    struct store_node n = {0}, out = {0};
    const char *field = NULL;
    store_new_id(n.id);
    memcpy(n.grid_id, f->grid, sizeof(n.grid_id));
    n.name = (char *)(uintptr_t) "node-1";
    assert_int_equal(ST_CALL(f->st[0], node_create, &n, false, &out, &field),
                     0);
    memcpy(plug_node, out.id, sizeof(plug_node));
    store_node_release(&out);

    struct racer r[RACERS];
    race(f, plug_racer, r);
    assert_int_equal(winners(r, 0), RACERS);
    /* every connection got its own generation: 1..RACERS */
    bool seen[RACERS + 1] = {false};
    int newest = 0;
    for (int i = 0; i < RACERS; i++) {
        assert_true(r[i].num >= 1 && r[i].num <= RACERS);
        assert_false(seen[r[i].num]);
        seen[r[i].num] = true;
        if (r[i].num == RACERS)
            newest = i;
    }
    /* only the newest connection may unplug; the others are superseded */
    for (int i = 0; i < RACERS; i++) {
        if (i == newest)
            continue;
        assert_int_equal(ST_CALL(f->st[i % 2], node_unplug, plug_node, r[i].num,
                                 2000, 1000, "closed"),
                         CP_ECONFLICT);
    }
    struct store_node got = {0};
    assert_int_equal(ST_CALL(f->st[1], node_get, plug_node, &got), 0);
    assert_true(got.connected);
    char master[16];
    snprintf(master, sizeof(master), "m%d", newest);
    assert_string_equal(got.conn_master, master);
    store_node_release(&got);
    assert_int_equal(ST_CALL(f->st[newest % 2], node_unplug, plug_node,
                             (int64_t)RACERS, 2000, 1000, "closed"),
                     0);
}

/* Agents of one grid connecting to different masters at once: every node
 * gets its own number, none fails. */
static int create_racer(struct racer *r)
{
    struct store_node n = {0}, out = {0};
    const char *field = NULL;
    store_new_id(n.id);
    memcpy(n.grid_id, r->f->grid, sizeof(n.grid_id));
    n.name = (char *)(uintptr_t) "same-name";
    int rc = ST_CALL(r->st, node_create, &n, true, &out, &field);
    r->num = out.node_number;
    store_node_release(&out);
    return rc;
}

static void test_node_create_race(void **state)
{
    struct fixture *f = *state;
    struct racer r[RACERS];
    race(f, create_racer, r);
    assert_int_equal(winners(r, 0), RACERS);
    bool seen[RACERS + 1] = {false};
    for (int i = 0; i < RACERS; i++) {
        assert_true(r[i].num >= 1 && r[i].num <= RACERS);
        assert_false(seen[r[i].num]);
        seen[r[i].num] = true;
    }
    struct store_node_list l = {0};
    assert_int_equal(ST_CALL(f->st[0], node_list, f->grid, &l), 0);
    assert_int_equal(l.len, RACERS);
    store_node_list_release(&l);
}

/* ==== Grids and codes ==== */

static int grid_racer(struct racer *r)
{
    struct store_grid g = {0};
    char token[32];
    snprintf(token, sizeof(token), "tok-%d", r->index);
    store_new_id(g.id);
    g.name = (char *)(uintptr_t) "contested";
    g.token_hash = token;
    g.initial_size = 1;
    const char *field = NULL;
    int rc = ST_CALL(r->st, grid_create, &g, NULL, &field);
    snprintf(r->text, sizeof(r->text), "%s", field ? field : "");
    return rc;
}

static void test_grid_create_race(void **state)
{
    struct fixture *f = *state;
    struct racer r[RACERS];
    race(f, grid_racer, r);
    assert_int_equal(winners(r, CP_ECONFLICT), 1);
    for (int i = 0; i < RACERS; i++)
        if (r[i].rc != 0)
            assert_string_equal(r[i].text, "name");
}

static int code_racer(struct racer *r)
{
    struct store_token t = {0};
    int rc = ST_CALL(r->st, code_take, "one-time-code", 1000, &t);
    store_token_release(&t);
    return rc;
}

static void test_code_take_race(void **state)
{
    struct fixture *f = *state;
    struct store_user u = {0};
    store_new_id(u.id);
    u.email = (char *)(uintptr_t) "admin";
    assert_int_equal(ST_CALL(f->st[0], user_create, &u), 0);
    struct store_token t = {0};
    store_new_id(t.id);
    memcpy(t.user_id, u.id, sizeof(t.user_id));
    t.kind = STORE_TOKEN_CODE;
    t.token_hash = (char *)(uintptr_t) "one-time-code";
    assert_int_equal(ST_CALL(f->st[1], token_create, &t), 0);
    struct racer r[RACERS];
    race(f, code_racer, r);
    assert_int_equal(winners(r, CP_ENOTFOUND), 1);
}

/* ==== The change feed across stores ==== */

struct inbox {
    pthread_mutex_t mu;
    int calls;
    char got[8][64];
};

static void inbox_cb(void *ctx, const char *channel, const char *payload)
{
    struct inbox *b = ctx;
    pthread_mutex_lock(&b->mu);
    if (b->calls < 8)
        snprintf(b->got[b->calls], sizeof(b->got[0]), "%s:%s", channel,
                 payload);
    b->calls++;
    pthread_mutex_unlock(&b->mu);
}

static int inbox_calls(struct inbox *b)
{
    pthread_mutex_lock(&b->mu);
    int n = b->calls;
    pthread_mutex_unlock(&b->mu);
    return n;
}

static bool inbox_wait(struct inbox *b, int want)
{
    for (int i = 0; i < 1000 && inbox_calls(b) < want; i++)
        usleep(5000);
    return inbox_calls(b) >= want;
}

static void test_feed_across_stores(void **state)
{
    struct fixture *f = *state;
    if (!f->db.pg && !f->db.mongo) {
        print_message("skipped: SQLite's change feed is in-process only\n");
        skip();
    }
    struct inbox in[2];
    int id[2];
    for (int i = 0; i < 2; i++) {
        memset(&in[i], 0, sizeof(in[i]));
        pthread_mutex_init(&in[i].mu, NULL);
        id[i] = f->st[i]->ops->feed_subscribe(f->st[i], inbox_cb, &in[i]);
        assert_true(id[i] > 0);
    }
    /* each store's message reaches both, the publisher included, in the
     * order published */
    assert_int_equal(
        ST_CALL(f->st[0], feed_publish, "agents.close", "{\"node\":\"n1\"}"),
        0);
    assert_int_equal(ST_CALL(f->st[1], feed_publish, "deploys.queued",
                             "{\"service\":\"s1\"}"),
                     0);
    for (int i = 0; i < 2; i++) {
        assert_true(inbox_wait(&in[i], 2));
        assert_string_equal(in[i].got[0], "agents.close:{\"node\":\"n1\"}");
        assert_string_equal(in[i].got[1],
                            "deploys.queued:{\"service\":\"s1\"}");
    }
    for (int i = 0; i < 2; i++) {
        f->st[i]->ops->feed_unsubscribe(f->st[i], id[i]);
        pthread_mutex_destroy(&in[i].mu);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_kv_cas_race, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lease_race, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deploy_claim_race, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stack_create_revise_race, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stack_delete_race, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stack_jobs_race, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_plug_race, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_create_race, setup, teardown),
        cmocka_unit_test_setup_teardown(test_grid_create_race, setup, teardown),
        cmocka_unit_test_setup_teardown(test_code_take_race, setup, teardown),
        cmocka_unit_test_setup_teardown(test_feed_across_stores, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
