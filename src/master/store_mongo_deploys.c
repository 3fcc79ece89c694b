/* MongoDB backend: the deploy queue, the containers agents report, and
 * the bounded container logs and events (issue 4). The PostgreSQL
 * backend (store_pg_deploys.c) is the reference for every behaviour.
 *
 * The deploy queue's rules span documents ("one queued deploy per
 * service", "one ongoing deploy per service"), so deploy_queue and
 * deploy_claim run in a transaction that also writes one lock document
 * (DEPLOY_LOCK in "counters"): two of them that overlap conflict on it
 * and the later one is retried by mg_tx on a fresh snapshot, as the
 * PostgreSQL advisory lock makes them run one at a time.
 * SPDX-License-Identifier: Apache-2.0 */
#include "store_mongo_int.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/log.h"
#include "../common/util.h"

#include <string.h>

#define DEPLOYS "grid_service_deploys"
#define CONTAINERS "containers"
#define LOGS "container_logs"
#define EVENTS "event_logs"
#define SERVICES "grid_services"
/* The _id of the lock document of the deploy queue, in "counters". */
#define DEPLOY_LOCK "deploy-lock"

#define LOGS_DEFAULT_LIMIT 100
#define LOGS_MAX_LIMIT 10000
/* Ids per deleteMany of deploys_prune (keeps each command small). */
#define PRUNE_BATCH 1000

/* ==== Document helpers ==== */

static void sort2(bson_t *opts, const char *a, const char *b, int dir)
{
    bson_t s;
    BSON_APPEND_DOCUMENT_BEGIN(opts, "sort", &s);
    BSON_APPEND_INT32(&s, a, dir);
    if (b != NULL)
        BSON_APPEND_INT32(&s, b, dir);
    bson_append_document_end(opts, &s);
}

/* A projection of the single field key. */
static void project1(bson_t *opts, const char *key)
{
    bson_t p;
    BSON_APPEND_DOCUMENT_BEGIN(opts, "projection", &p);
    BSON_APPEND_INT32(&p, key, 1);
    bson_append_document_end(opts, &p);
}

/* key: {op: v} with v an int64. */
static void cmp_i64(bson_t *b, const char *key, const char *op, int64_t v)
{
    bson_t c;
    BSON_APPEND_DOCUMENT_BEGIN(b, key, &c);
    mgb_i64(&c, op, v);
    bson_append_document_end(b, &c);
}

/* key: {op: [v[0], ..., v[n-1]]}; v holds n strings of stride bytes
 * each (a char[n][STORE_ID_LEN + 1] read by mgx_find_all). */
static void in_strs(bson_t *b, const char *key, const char *op, const char *v,
                    size_t stride, size_t n)
{
    bson_t c, arr;
    BSON_APPEND_DOCUMENT_BEGIN(b, key, &c);
    BSON_APPEND_ARRAY_BEGIN(&c, op, &arr);
    for (size_t i = 0; i < n; i++) {
        char buf[16];
        const char *k;
        bson_uint32_to_string((uint32_t)i, &k, buf, sizeof(buf));
        mgb_str(&arr, k, v + i * stride);
    }
    bson_append_array_end(&c, &arr);
    bson_append_document_end(b, &c);
}

/* As in_strs with an array of n string pointers. */
static void in_ptrs(bson_t *b, const char *key, const char *op,
                    const char *const *v, size_t n)
{
    bson_t c, arr;
    BSON_APPEND_DOCUMENT_BEGIN(b, key, &c);
    BSON_APPEND_ARRAY_BEGIN(&c, op, &arr);
    for (size_t i = 0; i < n; i++) {
        char buf[16];
        const char *k;
        bson_uint32_to_string((uint32_t)i, &k, buf, sizeof(buf));
        mgb_str(&arr, k, v[i]);
    }
    bson_append_array_end(&c, &arr);
    bson_append_document_end(b, &c);
}

static bool is_set(const char *s)
{
    return s != NULL && s[0] != '\0';
}

/* Reads the document's _id into a char[STORE_ID_LEN + 1] item. */
static int read_id(const bson_t *d, void *item)
{
    mgr_id(d, item);
    return 0;
}

/* ==== Deploys ==== */

/* Adding a field: also update the insert in queue_fn. */
int mgd_read_deploy(const bson_t *d, void *item)
{
    struct store_deploy *v = item;
    memset(v, 0, sizeof(*v));
    mgr_id(d, v->id);
    mgr_fixed(d, "service_id", v->service_id, sizeof(v->service_id));
    mgr_fixed(d, "stack_deploy_id", v->stack_deploy_id,
              sizeof(v->stack_deploy_id));
    v->state = mgr_str(d, "state");
    v->reason = mgr_str(d, "reason");
    v->force = mgr_bool(d, "force");
    v->instance_deploys = mgr_json(d, "instance_deploys", json_array());
    v->claimed_by = mgr_str(d, "claimed_by");
    v->lease_until = mgr_i64(d, "lease_until");
    v->created_at = mgr_i64(d, "created_at");
    v->queued_at = mgr_i64(d, "queued_at");
    v->started_at = mgr_i64(d, "started_at");
    v->finished_at = mgr_i64(d, "finished_at");
    return 0;
}

static void release_deploy(void *item)
{
    store_deploy_release(item);
}

/* Writes the lock document, so that this transaction conflicts with every
 * other queue or claim running at the same time. */
static int deploy_lock(struct mgc *c)
{
    bson_t f = BSON_INITIALIZER, u = BSON_INITIALIZER, inc;
    mgb_str(&f, "_id", DEPLOY_LOCK);
    BSON_APPEND_DOCUMENT_BEGIN(&u, "$inc", &inc);
    mgb_i64(&inc, "n", 1);
    bson_append_document_end(&u, &inc);
    int rc = mgx_update(c, "counters", &f, &u, false, true, NULL, NULL,
                        "deploy lock");
    bson_destroy(&f);
    bson_destroy(&u);
    /* Two first-ever upserts of the lock clash on _id: retry. */
    return rc == CP_ECONFLICT ? CP_EAGAIN : rc;
}

static int deploy_by_id(struct mgc *c, const char *id, struct store_deploy *out,
                        const char *what)
{
    bson_t f = BSON_INITIALIZER;
    mgb_str(&f, "_id", id);
    int rc = mgx_find_one(c, DEPLOYS, &f, NULL, mgd_read_deploy, out, what);
    bson_destroy(&f);
    return rc;
}

/* 0 when service id exists, CP_ENOTFOUND when not (the PostgreSQL
 * foreign key's answer); locks it, so that a service_delete committing
 * meanwhile conflicts instead of leaving an orphan deploy. */
static int service_exists(struct mgc *c, const char *id)
{
    return mgx_lock_row(c, SERVICES, id, "deploy service");
}

struct queue_ctx {
    const struct store_deploy *d;
    struct store_deploy *out;
};

/* Reuses the oldest queued deploy of the service (force or-ed in, the
 * stack deploy taking it over), or inserts a new one. */
static int coalesce(struct mgc *c, const struct store_deploy *d,
                    struct store_deploy *out)
{
    if (!d->force && d->stack_deploy_id[0] == '\0')
        return 0; /* nothing changes: out is the queued one */
    char id[STORE_ID_LEN + 1];
    memcpy(id, out->id, sizeof(id));
    store_deploy_release(out);
    bson_t f = BSON_INITIALIZER, u = BSON_INITIALIZER, set;
    mgb_str(&f, "_id", id);
    BSON_APPEND_DOCUMENT_BEGIN(&u, "$set", &set);
    if (d->force)
        mgb_bool(&set, "force", true);
    if (d->stack_deploy_id[0] != '\0')
        mgb_id(&set, "stack_deploy_id", d->stack_deploy_id);
    bson_append_document_end(&u, &set);
    int rc = mgx_find_update(c, DEPLOYS, &f, NULL, &u, false, true,
                             mgd_read_deploy, out, "deploy coalesce");
    bson_destroy(&f);
    bson_destroy(&u);
    return rc;
}

static int queue_fn(struct mgc *c, void *ctx)
{
    struct queue_ctx *k = ctx;
    const struct store_deploy *d = k->d;
    store_deploy_release(k->out);
    int rc = deploy_lock(c);
    if (rc != 0)
        return rc;

    bson_t f = BSON_INITIALIZER, opts = BSON_INITIALIZER;
    mgb_str(&f, "service_id", d->service_id);
    mgb_str(&f, "state", "created");
    sort2(&opts, "created_at", "seq", 1);
    rc = mgx_find_one(c, DEPLOYS, &f, &opts, mgd_read_deploy, k->out,
                      "deploy queued");
    bson_destroy(&f);
    bson_destroy(&opts);
    if (rc == 0)
        return coalesce(c, d, k->out);
    if (rc != CP_ENOTFOUND)
        return rc;

    /* No foreign keys here: the service must exist. */
    rc = service_exists(c, d->service_id);
    if (rc != 0)
        return rc;
    int64_t seq = 0;
    rc = mgx_next_seq(c, DEPLOYS, 1, &seq);
    if (rc != 0)
        return rc;
    char id[STORE_ID_LEN + 1];
    if (d->id[0] != '\0')
        memcpy(id, d->id, sizeof(id));
    else
        store_new_id(id);
    int64_t now = cp_now_ms();
    bson_t doc = BSON_INITIALIZER;
    mgb_str(&doc, "_id", id);
    mgb_i64(&doc, "seq", seq);
    mgb_str(&doc, "service_id", d->service_id);
    mgb_id(&doc, "stack_deploy_id", d->stack_deploy_id);
    mgb_str(&doc, "state", "created");
    mgb_str(&doc, "reason", d->reason);
    mgb_bool(&doc, "force", d->force);
    mgb_json(&doc, "instance_deploys", d->instance_deploys, "[]");
    mgb_str(&doc, "claimed_by", NULL);
    mgb_i64(&doc, "lease_until", 0);
    mgb_i64(&doc, "created_at", d->created_at ? d->created_at : now);
    mgb_i64(&doc, "queued_at", d->queued_at ? d->queued_at : now);
    mgb_i64(&doc, "started_at", 0);
    mgb_i64(&doc, "finished_at", 0);
    rc = mgx_insert(c, DEPLOYS, &doc, "deploy insert");
    if (rc == 0)
        rc = mgd_read_deploy(&doc, k->out); /* exactly what was stored */
    bson_destroy(&doc);
    return rc;
}

int mgd_deploy_queue(struct store *st, const struct store_deploy *d,
                     struct store_deploy *out)
{
    memset(out, 0, sizeof(*out));
    struct queue_ctx k = {d, out};
    int rc = mg_tx(st, queue_fn, &k);
    if (rc != 0)
        store_deploy_release(out);
    return rc;
}

int mgd_deploy_get(struct store *st, const char *id, struct store_deploy *out)
{
    memset(out, 0, sizeof(*out));
    bson_t f = BSON_INITIALIZER;
    mgb_str(&f, "_id", id);
    int rc =
        mg_find_one(st, DEPLOYS, &f, NULL, mgd_read_deploy, out, "deploy get");
    bson_destroy(&f);
    if (rc != 0)
        store_deploy_release(out);
    return rc;
}

struct claim_ctx {
    const char *holder;
    int64_t now, lease_ms;
    struct store_deploy *out;
};

static int read_service_id(const bson_t *d, void *item)
{
    mgr_fixed(d, "service_id", item, STORE_ID_LEN + 1);
    return 0;
}

/* The oldest ongoing deploy whose lease expired at now (its master died)
 * into id; CP_ENOTFOUND when none. */
static int expired_candidate(struct mgc *c, int64_t now,
                             char id[STORE_ID_LEN + 1])
{
    bson_t f = BSON_INITIALIZER, opts = BSON_INITIALIZER;
    mgb_str(&f, "state", "ongoing");
    cmp_i64(&f, "lease_until", "$lte", now);
    sort2(&opts, "created_at", "seq", 1);
    project1(&opts, "_id");
    int rc = mgx_find_one(c, DEPLOYS, &f, &opts, read_id, id, "deploy claim");
    bson_destroy(&f);
    bson_destroy(&opts);
    return rc;
}

/* The oldest queued deploy of a service without an ongoing deploy under
 * a live lease into id; CP_ENOTFOUND when none. Two queries: the busy
 * services, then the queued deploys of the others. */
static int queued_candidate(struct mgc *c, int64_t now,
                            char id[STORE_ID_LEN + 1])
{
    bson_t f = BSON_INITIALIZER, opts = BSON_INITIALIZER;
    mgb_str(&f, "state", "ongoing");
    cmp_i64(&f, "lease_until", "$gt", now);
    project1(&opts, "service_id");
    void *items = NULL;
    size_t n = 0;
    int rc = mgx_find_all(c, DEPLOYS, &f, &opts, read_service_id,
                          STORE_ID_LEN + 1, NULL, &items, &n, "deploy busy");
    bson_destroy(&f);
    bson_destroy(&opts);
    if (rc != 0)
        return rc;

    bson_init(&f);
    bson_init(&opts);
    mgb_str(&f, "state", "created");
    in_strs(&f, "service_id", "$nin", items, STORE_ID_LEN + 1, n);
    sort2(&opts, "created_at", "seq", 1);
    project1(&opts, "_id");
    rc = mgx_find_one(c, DEPLOYS, &f, &opts, read_id, id, "deploy claim");
    bson_destroy(&f);
    bson_destroy(&opts);
    cp_free(items);
    return rc;
}

/* Candidates, oldest first: ongoing deploys whose lease expired (taken
 * over before anything else, so a service never gets a second ongoing
 * deploy beside an expired one), then queued deploys of services without
 * an ongoing deploy under a live lease. The reads come first so that an
 * idle poll writes nothing; the lock write then makes a claim that read
 * before another one committed conflict and run again. */
static int claim_fn(struct mgc *c, void *ctx)
{
    struct claim_ctx *k = ctx;
    store_deploy_release(k->out);
    char id[STORE_ID_LEN + 1] = "";
    int rc = expired_candidate(c, k->now, id);
    if (rc == CP_ENOTFOUND)
        rc = queued_candidate(c, k->now, id);
    if (rc != 0)
        return rc;
    rc = deploy_lock(c);
    if (rc != 0)
        return rc;

    bson_t f = BSON_INITIALIZER, u = BSON_INITIALIZER, set;
    mgb_str(&f, "_id", id);
    BSON_APPEND_DOCUMENT_BEGIN(&u, "$set", &set);
    mgb_str(&set, "state", "ongoing");
    mgb_str(&set, "claimed_by", k->holder);
    mgb_i64(&set, "lease_until", k->now + k->lease_ms);
    mgb_i64(&set, "started_at", k->now);
    mgb_i64(&set, "finished_at", 0);
    bson_append_document_end(&u, &set);
    rc = mgx_find_update(c, DEPLOYS, &f, NULL, &u, false, true, mgd_read_deploy,
                         k->out, "deploy claim");
    bson_destroy(&f);
    bson_destroy(&u);
    return rc;
}

int mgd_deploy_claim(struct store *st, const char *holder, int64_t now,
                     int64_t lease_ms, struct store_deploy *out)
{
    memset(out, 0, sizeof(*out));
    struct claim_ctx k = {holder, now, lease_ms, out};
    int rc = mg_tx(st, claim_fn, &k);
    if (rc != 0)
        store_deploy_release(out);
    return rc;
}

/* Fenced on claimed_by ({claimed_by: null} also matches an unclaimed
 * deploy, as PostgreSQL's IS NOT DISTINCT FROM). A NULL state or
 * instance_deploys keeps the stored one. */
static int update_fn(struct mgc *c, void *ctx)
{
    const struct store_deploy *d = ctx;
    bson_t f = BSON_INITIALIZER, u = BSON_INITIALIZER, set;
    mgb_str(&f, "_id", d->id);
    mgb_str(&f, "claimed_by", d->claimed_by);
    BSON_APPEND_DOCUMENT_BEGIN(&u, "$set", &set);
    if (d->state != NULL)
        mgb_str(&set, "state", d->state);
    mgb_str(&set, "reason", d->reason);
    if (d->instance_deploys != NULL)
        mgb_json(&set, "instance_deploys", d->instance_deploys, NULL);
    mgb_i64(&set, "lease_until", d->lease_until);
    mgb_i64(&set, "finished_at", d->finished_at);
    bson_append_document_end(&u, &set);
    int64_t matched = 0;
    int rc = mgx_update(c, DEPLOYS, &f, &u, false, false, &matched, NULL,
                        "deploy update");
    bson_destroy(&f);
    bson_destroy(&u);
    if (rc != 0 || matched > 0)
        return rc;
    struct store_deploy got = {0};
    rc = deploy_by_id(c, d->id, &got, "deploy get");
    store_deploy_release(&got);
    return rc == 0 ? CP_ECONFLICT /* another holder took it over */ : rc;
}

int mgd_deploy_update(struct store *st, const struct store_deploy *d)
{
    /* The cast drops const for the callback's void *; update_fn only
     * reads. */
    return mg_do(st, update_fn, (void *)(uintptr_t)d);
}

int mgd_deploy_list(struct store *st, const char *service_id, int limit,
                    struct store_deploy_list *out)
{
    bson_t f = BSON_INITIALIZER, opts = BSON_INITIALIZER;
    mgb_str(&f, "service_id", service_id);
    sort2(&opts, "created_at", "seq", -1);
    if (limit > 0)
        mgb_i64(&opts, "limit", limit);
    void *items = NULL;
    out->items = NULL;
    out->len = 0;
    int rc = mg_find_all(st, DEPLOYS, &f, &opts, mgd_read_deploy,
                         sizeof(*out->items), release_deploy, &items, &out->len,
                         "deploy list");
    bson_destroy(&f);
    bson_destroy(&opts);
    /* On error mgx_find_all has released and freed what it read. */
    out->items = rc == 0 ? items : NULL;
    if (rc != 0)
        out->len = 0;
    return rc;
}

struct prune_ctx {
    int keep;
    int64_t deleted;
};

static int read_prune_id(const bson_t *d, void *item)
{
    mgr_fixed(d, "ids", item, STORE_ID_LEN + 1);
    return 0;
}

/* state: {$nin: ["created", "ongoing"]}: finished deploys. */
static void finished(bson_t *b)
{
    static const char *const open[] = {"created", "ongoing"};
    in_ptrs(b, "state", "$nin", open, 2);
}

/* The ids of the finished deploys beyond the newest keep of each service:
 * grouped per service newest first, sliced past keep, unwound. */
static void prune_pipeline(bson_t *p, int keep)
{
    bson_t st, a, b, c;
    BSON_APPEND_DOCUMENT_BEGIN(p, "0", &st);
    BSON_APPEND_DOCUMENT_BEGIN(&st, "$match", &a);
    finished(&a);
    bson_append_document_end(&st, &a);
    bson_append_document_end(p, &st);

    BSON_APPEND_DOCUMENT_BEGIN(p, "1", &st);
    BSON_APPEND_DOCUMENT_BEGIN(&st, "$sort", &a);
    BSON_APPEND_INT32(&a, "service_id", 1);
    BSON_APPEND_INT32(&a, "created_at", -1);
    BSON_APPEND_INT32(&a, "seq", -1);
    bson_append_document_end(&st, &a);
    bson_append_document_end(p, &st);

    BSON_APPEND_DOCUMENT_BEGIN(p, "2", &st);
    BSON_APPEND_DOCUMENT_BEGIN(&st, "$group", &a);
    BSON_APPEND_UTF8(&a, "_id", "$service_id");
    BSON_APPEND_DOCUMENT_BEGIN(&a, "ids", &b);
    BSON_APPEND_UTF8(&b, "$push", "$_id");
    bson_append_document_end(&a, &b);
    bson_append_document_end(&st, &a);
    bson_append_document_end(p, &st);

    /* {$slice: [array, position, n]}: n must be positive. */
    BSON_APPEND_DOCUMENT_BEGIN(p, "3", &st);
    BSON_APPEND_DOCUMENT_BEGIN(&st, "$project", &a);
    BSON_APPEND_DOCUMENT_BEGIN(&a, "ids", &b);
    BSON_APPEND_ARRAY_BEGIN(&b, "$slice", &c);
    BSON_APPEND_UTF8(&c, "0", "$ids");
    BSON_APPEND_INT32(&c, "1", keep);
    BSON_APPEND_INT32(&c, "2", INT32_MAX);
    bson_append_array_end(&b, &c);
    bson_append_document_end(&a, &b);
    bson_append_document_end(&st, &a);
    bson_append_document_end(p, &st);

    BSON_APPEND_DOCUMENT_BEGIN(p, "4", &st);
    BSON_APPEND_UTF8(&st, "$unwind", "$ids");
    bson_append_document_end(p, &st);
}

static int prune_fn(struct mgc *c, void *ctx)
{
    struct prune_ctx *k = ctx;
    k->deleted = 0;
    bson_t p = BSON_INITIALIZER;
    prune_pipeline(&p, k->keep);
    void *items = NULL;
    size_t n = 0;
    int rc = mgx_aggregate(c, DEPLOYS, &p, read_prune_id, STORE_ID_LEN + 1,
                           NULL, &items, &n, "deploys prune");
    bson_destroy(&p);
    if (rc != 0)
        return rc; /* mgx_aggregate freed what it read */
    for (size_t i = 0; rc == 0 && i < n; i += PRUNE_BATCH) {
        size_t m = n - i < PRUNE_BATCH ? n - i : PRUNE_BATCH;
        bson_t f = BSON_INITIALIZER;
        in_strs(&f, "_id", "$in", (const char *)items + i * (STORE_ID_LEN + 1),
                STORE_ID_LEN + 1, m);
        finished(&f);
        int64_t deleted = 0;
        rc = mgx_delete(c, DEPLOYS, &f, true, &deleted, "deploys prune");
        bson_destroy(&f);
        k->deleted += deleted;
    }
    cp_free(items);
    return rc;
}

/* Finished = neither queued nor ongoing. One transaction, so atomic. */
int mgd_deploys_prune(struct store *st, int keep, int *deleted)
{
    struct prune_ctx k = {keep > 0 ? keep : 0, 0};
    int rc = mg_tx(st, prune_fn, &k);
    if (deleted != NULL)
        *deleted = rc == 0 ? (int)k.deleted : 0;
    return rc;
}

/* ==== Containers ==== */

/* Adding a field: also update mgd_container_save. */
static int read_container(const bson_t *d, void *item)
{
    struct store_container *k = item;
    memset(k, 0, sizeof(*k));
    mgr_id(d, k->id);
    mgr_fixed(d, "grid_id", k->grid_id, sizeof(k->grid_id));
    mgr_fixed(d, "node_id", k->node_id, sizeof(k->node_id));
    mgr_fixed(d, "service_id", k->service_id, sizeof(k->service_id));
    k->container_id = mgr_str(d, "container_id");
    k->name = mgr_str(d, "name");
    k->instance_number = (int)mgr_i64(d, "instance_number");
    k->status = mgr_str(d, "status");
    k->info = mgr_json(d, "info", json_object());
    k->created_at = mgr_i64(d, "created_at");
    k->updated_at = mgr_i64(d, "updated_at");
    k->deleted_at = mgr_i64(d, "deleted_at");
    return 0;
}

static void release_container(void *item)
{
    store_container_release(item);
}

/* One upsert on the unique container_id: an update keeps the _id and
 * created_at ($setOnInsert). */
int mgd_container_save(struct store *st, const struct store_container *k)
{
    if (k->container_id == NULL) {
        cp_log(CP_LOG_WARN, "store: container save: no container id");
        return CP_EIO; /* PostgreSQL's NOT NULL violation */
    }
    char id[STORE_ID_LEN + 1];
    if (k->id[0] != '\0')
        memcpy(id, k->id, sizeof(id));
    else
        store_new_id(id);
    int64_t now = cp_now_ms();
    bson_t f = BSON_INITIALIZER, u = BSON_INITIALIZER, set, ins;
    mgb_str(&f, "container_id", k->container_id);
    BSON_APPEND_DOCUMENT_BEGIN(&u, "$set", &set);
    mgb_str(&set, "grid_id", k->grid_id);
    mgb_id(&set, "node_id", k->node_id);
    mgb_id(&set, "service_id", k->service_id);
    mgb_str(&set, "name", k->name);
    mgb_i64(&set, "instance_number", k->instance_number);
    mgb_str(&set, "status", k->status);
    mgb_json(&set, "info", k->info, "{}");
    mgb_i64(&set, "updated_at", k->updated_at ? k->updated_at : now);
    mgb_i64(&set, "deleted_at", 0);
    bson_append_document_end(&u, &set);
    BSON_APPEND_DOCUMENT_BEGIN(&u, "$setOnInsert", &ins);
    mgb_str(&ins, "_id", id);
    mgb_i64(&ins, "created_at", k->created_at ? k->created_at : now);
    bson_append_document_end(&u, &ins);
    int rc =
        mg_update(st, CONTAINERS, &f, &u, false, true, NULL, "container save");
    bson_destroy(&f);
    bson_destroy(&u);
    return rc;
}

int mgd_container_delete(struct store *st, const char *container_id)
{
    bson_t f = BSON_INITIALIZER;
    mgb_str(&f, "container_id", container_id);
    int64_t deleted = 0;
    int rc = mg_delete(st, CONTAINERS, &f, false, &deleted, "container delete");
    bson_destroy(&f);
    if (rc == 0 && deleted == 0)
        rc = CP_ENOTFOUND;
    return rc;
}

/* One deleteMany, with the keep list as $nin. A node id of NULL or ""
 * matches no container (PostgreSQL's node_id=NULL), where {node_id:
 * null} would match every foreign one. */
int mgd_containers_cleanup(struct store *st, const char *node_id,
                           const char *const *keep, size_t nkeep, int *deleted)
{
    if (deleted != NULL)
        *deleted = 0;
    if (!is_set(node_id))
        return 0;
    bson_t f = BSON_INITIALIZER;
    mgb_str(&f, "node_id", node_id);
    in_ptrs(&f, "container_id", "$nin", keep, nkeep);
    int64_t n = 0;
    int rc = mg_delete(st, CONTAINERS, &f, true, &n, "containers cleanup");
    bson_destroy(&f);
    if (deleted != NULL)
        *deleted = rc == 0 ? (int)n : 0;
    return rc;
}

int mgd_containers_mark_deleted(struct store *st, const char *node_id,
                                int64_t now)
{
    if (!is_set(node_id))
        return 0; /* as cleanup: no such node's containers */
    bson_t f = BSON_INITIALIZER, u = BSON_INITIALIZER, set;
    mgb_str(&f, "node_id", node_id);
    mgb_i64(&f, "deleted_at", 0);
    BSON_APPEND_DOCUMENT_BEGIN(&u, "$set", &set);
    mgb_i64(&set, "deleted_at", now);
    mgb_i64(&set, "updated_at", now);
    bson_append_document_end(&u, &set);
    int rc = mg_update(st, CONTAINERS, &f, &u, true, false, NULL,
                       "containers mark deleted");
    bson_destroy(&f);
    bson_destroy(&u);
    return rc;
}

/* Strings sort bytewise, as PostgreSQL's COLLATE "C". */
int mgd_container_list(struct store *st, const char *grid_id,
                       const char *node_id, const char *service_id,
                       struct store_container_list *out)
{
    bson_t f = BSON_INITIALIZER, opts = BSON_INITIALIZER;
    mgb_str(&f, "grid_id", grid_id);
    mgb_i64(&f, "deleted_at", 0);
    if (is_set(node_id))
        mgb_str(&f, "node_id", node_id);
    if (is_set(service_id))
        mgb_str(&f, "service_id", service_id);
    sort2(&opts, "name", "_id", 1); /* _id: a unique tiebreak */
    void *items = NULL;
    out->items = NULL;
    out->len = 0;
    int rc = mg_find_all(st, CONTAINERS, &f, &opts, read_container,
                         sizeof(*out->items), release_container, &items,
                         &out->len, "container list");
    bson_destroy(&f);
    bson_destroy(&opts);
    /* On error mgx_find_all has released and freed what it read. */
    out->items = rc == 0 ? items : NULL;
    if (rc != 0)
        out->len = 0;
    return rc;
}

/* A live container by name; node_id NULL or "" matches any node. */
int mgd_container_get(struct store *st, const char *grid_id,
                      const char *node_id, const char *name,
                      struct store_container *out)
{
    memset(out, 0, sizeof(*out));
    bson_t f = BSON_INITIALIZER, opts = BSON_INITIALIZER;
    mgb_str(&f, "grid_id", grid_id);
    mgb_str(&f, "name", name);
    mgb_i64(&f, "deleted_at", 0);
    if (is_set(node_id))
        mgb_str(&f, "node_id", node_id);
    sort2(&opts, "updated_at", "_id", -1);
    int rc = mg_find_one(st, CONTAINERS, &f, &opts, read_container, out,
                         "container get");
    bson_destroy(&f);
    bson_destroy(&opts);
    if (rc != 0)
        store_container_release(out);
    return rc;
}

/* ==== Logs and events ==== */

/* n documents to insert, built once (a retried transaction inserts the
 * same ones). */
struct docs {
    bson_t **v;
    const bson_t **cv; /* the same, as mgx_insert_many takes them */
    size_t n;
    const char *coll, *what;
};

static void docs_init(struct docs *d, size_t n, const char *coll,
                      const char *what)
{
    d->v = cp_calloc(n, sizeof(*d->v));
    d->cv = cp_calloc(n, sizeof(*d->cv));
    d->n = n;
    d->coll = coll;
    d->what = what;
    for (size_t i = 0; i < n; i++) {
        d->v[i] = bson_new();
        d->cv[i] = d->v[i];
    }
}

static void docs_free(struct docs *d)
{
    for (size_t i = 0; i < d->n; i++)
        bson_destroy(d->v[i]);
    cp_free(d->v);
    cp_free(d->cv);
}

/* A new ObjectId _id and seq, the first fields of a history document. */
static void doc_head(bson_t *b, int64_t seq)
{
    bson_oid_t oid;
    bson_oid_init(&oid, NULL);
    BSON_APPEND_OID(b, "_id", &oid);
    mgb_i64(b, "seq", seq);
}

static int insert_fn(struct mgc *c, void *ctx)
{
    struct docs *d = ctx;
    return mgx_insert_many(c, d->coll, d->cv, d->n, d->what);
}

struct reserve_ctx {
    const char *coll;
    int64_t n, first;
};

static int next_seq_fn(struct mgc *c, void *ctx)
{
    struct reserve_ctx *k = ctx;
    return mgx_next_seq(c, k->coll, k->n, &k->first);
}

/* The seqs are reserved outside the insert's transaction: in it, every
 * concurrent append would conflict on the counter and be retried. A
 * failed insert leaves a gap, as a rolled back PostgreSQL identity does;
 * seqs only have to grow. The documents go in with one insert_many, in a
 * transaction when there are several, so that the append is whole or
 * nothing. */
static int reserve(struct store *st, const char *coll, size_t n, int64_t *first)
{
    struct reserve_ctx k = {coll, (int64_t)n, 0};
    int rc = mg_do(st, next_seq_fn, &k);
    *first = k.first;
    return rc;
}

static int insert_docs(struct store *st, struct docs *d)
{
    return d->n == 1 ? mg_do(st, insert_fn, d) : mg_tx(st, insert_fn, d);
}

int mgd_logs_append(struct store *st, const struct store_log *v, size_t n)
{
    if (n == 0)
        return 0;
    int64_t first = 0;
    int rc = reserve(st, LOGS, n, &first);
    if (rc != 0)
        return rc;
    struct docs d;
    docs_init(&d, n, LOGS, "logs append");
    int64_t now = cp_now_ms();
    for (size_t i = 0; i < n; i++) {
        const struct store_log *l = &v[i];
        bson_t *b = d.v[i];
        doc_head(b, first + (int64_t)i);
        mgb_str(b, "grid_id", l->grid_id);
        mgb_id(b, "node_id", l->node_id);
        mgb_id(b, "service_id", l->service_id);
        mgb_str(b, "container_id", l->container_id);
        mgb_str(b, "name", l->name);
        mgb_str(b, "type", l->type);
        mgb_str(b, "data", l->data);
        mgb_i64(b, "created_at", l->created_at ? l->created_at : now);
    }
    rc = insert_docs(st, &d);
    docs_free(&d);
    return rc;
}

int mgd_events_append(struct store *st, const struct store_event *v, size_t n)
{
    if (n == 0)
        return 0;
    int64_t first = 0;
    int rc = reserve(st, EVENTS, n, &first);
    if (rc != 0)
        return rc;
    struct docs d;
    docs_init(&d, n, EVENTS, "events append");
    int64_t now = cp_now_ms();
    for (size_t i = 0; i < n; i++) {
        const struct store_event *e = &v[i];
        bson_t *b = d.v[i];
        doc_head(b, first + (int64_t)i);
        mgb_str(b, "grid_id", e->grid_id);
        mgb_id(b, "stack_id", e->stack_id);
        mgb_id(b, "service_id", e->service_id);
        mgb_id(b, "node_id", e->node_id);
        mgb_i64(b, "severity", e->severity);
        mgb_str(b, "type", e->type);
        mgb_str(b, "message", e->message);
        mgb_json(b, "meta", e->meta, NULL);
        mgb_i64(b, "created_at", e->created_at ? e->created_at : now);
    }
    rc = insert_docs(st, &d);
    docs_free(&d);
    return rc;
}

static int query_limit(const struct store_log_query *q)
{
    if (q->limit <= 0)
        return LOGS_DEFAULT_LIMIT;
    return q->limit > LOGS_MAX_LIMIT ? LOGS_MAX_LIMIT : q->limit;
}

/* Adds "key: value" to f when value is set (plain equality terms, so
 * that the (key, seq) indexes serve the query). */
static void hq_filter(bson_t *f, const char *key, const char *value)
{
    if (is_set(value))
        mgb_str(f, key, value);
}

/* Finishes a history query: after_seq mode reads forward from it;
 * otherwise the newest limit items (since since_ms) are read newest first
 * and *reverse is set (the caller turns them oldest first). */
static void hq_finish(bson_t *f, bson_t *opts, const struct store_log_query *q,
                      bool *reverse)
{
    if (q->after_seq > 0) {
        cmp_i64(f, "seq", "$gt", q->after_seq);
        sort2(opts, "seq", NULL, 1);
        *reverse = false;
    } else {
        if (q->since_ms > 0)
            cmp_i64(f, "created_at", "$gte", q->since_ms);
        sort2(opts, "seq", NULL, -1);
        *reverse = true;
    }
    mgb_i64(opts, "limit", query_limit(q));
}

/* Reverses n items of size bytes in place. */
static void reverse_items(void *items, size_t n, size_t size)
{
    if (n < 2)
        return;
    unsigned char *p = items;
    unsigned char *tmp = cp_malloc(size);
    for (size_t i = 0, j = n - 1; i < j; i++, j--) {
        memcpy(tmp, p + i * size, size);
        memcpy(p + i * size, p + j * size, size);
        memcpy(p + j * size, tmp, size);
    }
    cp_free(tmp);
}

static int read_log(const bson_t *d, void *item)
{
    struct store_log *l = item;
    memset(l, 0, sizeof(*l));
    l->seq = mgr_i64(d, "seq");
    mgr_fixed(d, "grid_id", l->grid_id, sizeof(l->grid_id));
    mgr_fixed(d, "node_id", l->node_id, sizeof(l->node_id));
    mgr_fixed(d, "service_id", l->service_id, sizeof(l->service_id));
    l->container_id = mgr_str(d, "container_id");
    l->name = mgr_str(d, "name");
    l->type = mgr_str(d, "type");
    l->data = mgr_str(d, "data");
    l->created_at = mgr_i64(d, "created_at");
    return 0;
}

static void release_log(void *item)
{
    struct store_log *l = item;
    cp_free(l->container_id);
    cp_free(l->name);
    cp_free(l->type);
    cp_free(l->data);
    memset(l, 0, sizeof(*l));
}

struct logs_read_ctx {
    const struct store_log_query *q;
    void *items;
    size_t len;
};

static int logs_read_fn(struct mgc *c, void *ctx)
{
    struct logs_read_ctx *k = ctx;
    const struct store_log_query *q = k->q;
    bson_t f = BSON_INITIALIZER, opts = BSON_INITIALIZER;
    hq_filter(&f, "grid_id", q->grid_id);
    hq_filter(&f, "service_id", q->service_id);
    hq_filter(&f, "node_id", q->node_id);
    hq_filter(&f, "name", q->container_name);
    int rc = 0;
    if (is_set(q->stack_id)) {
        /* Lines carry no stack: those of the stack's services. */
        bson_t sf = BSON_INITIALIZER, sopts = BSON_INITIALIZER;
        mgb_str(&sf, "stack_id", q->stack_id);
        project1(&sopts, "_id");
        void *ids = NULL;
        size_t n = 0;
        rc = mgx_find_all(c, SERVICES, &sf, &sopts, read_id, STORE_ID_LEN + 1,
                          NULL, &ids, &n, "logs read");
        bson_destroy(&sf);
        bson_destroy(&sopts);
        if (rc == 0) { /* (on error, mgx_find_all freed ids) */
            /* Under $and: service_id may already be a term of f. */
            bson_t and, term;
            BSON_APPEND_ARRAY_BEGIN(&f, "$and", &and);
            BSON_APPEND_DOCUMENT_BEGIN(&and, "0", &term);
            in_strs(&term, "service_id", "$in", ids, STORE_ID_LEN + 1, n);
            bson_append_document_end(&and, &term);
            bson_append_array_end(&f, &and);
            cp_free(ids);
        }
    }
    bool reverse = false;
    hq_finish(&f, &opts, q, &reverse);
    if (rc == 0)
        rc =
            mgx_find_all(c, LOGS, &f, &opts, read_log, sizeof(struct store_log),
                         release_log, &k->items, &k->len, "logs read");
    bson_destroy(&f);
    bson_destroy(&opts);
    if (rc == 0 && reverse)
        reverse_items(k->items, k->len, sizeof(struct store_log));
    return rc;
}

int mgd_logs_read(struct store *st, const struct store_log_query *q,
                  struct store_log_list *out)
{
    struct logs_read_ctx k = {q, NULL, 0};
    int rc = mg_do(st, logs_read_fn, &k);
    /* On error mgx_find_all has released and freed what it read. */
    out->items = rc == 0 ? k.items : NULL;
    out->len = rc == 0 ? k.len : 0;
    return rc;
}

static int read_event(const bson_t *d, void *item)
{
    struct store_event *e = item;
    memset(e, 0, sizeof(*e));
    e->seq = mgr_i64(d, "seq");
    mgr_fixed(d, "grid_id", e->grid_id, sizeof(e->grid_id));
    mgr_fixed(d, "stack_id", e->stack_id, sizeof(e->stack_id));
    mgr_fixed(d, "service_id", e->service_id, sizeof(e->service_id));
    mgr_fixed(d, "node_id", e->node_id, sizeof(e->node_id));
    e->severity = (int)mgr_i64(d, "severity");
    e->type = mgr_str(d, "type");
    e->message = mgr_str(d, "message");
    e->meta = mgr_json(d, "meta", NULL);
    e->created_at = mgr_i64(d, "created_at");
    return 0;
}

static void release_event(void *item)
{
    struct store_event *e = item;
    cp_free(e->type);
    cp_free(e->message);
    json_decref(e->meta);
    memset(e, 0, sizeof(*e));
}

/* container_name is not an event field and is ignored here. */
int mgd_events_read(struct store *st, const struct store_log_query *q,
                    struct store_event_list *out)
{
    bson_t f = BSON_INITIALIZER, opts = BSON_INITIALIZER;
    hq_filter(&f, "grid_id", q->grid_id);
    hq_filter(&f, "stack_id", q->stack_id);
    hq_filter(&f, "service_id", q->service_id);
    hq_filter(&f, "node_id", q->node_id);
    bool reverse = false;
    hq_finish(&f, &opts, q, &reverse);
    void *items = NULL;
    out->items = NULL;
    out->len = 0;
    int rc = mg_find_all(st, EVENTS, &f, &opts, read_event, sizeof(*out->items),
                         release_event, &items, &out->len, "events read");
    bson_destroy(&f);
    bson_destroy(&opts);
    /* On error mgx_find_all has released and freed what it read. */
    out->items = rc == 0 ? items : NULL;
    if (rc != 0) {
        out->len = 0;
        return rc;
    }
    if (reverse)
        reverse_items(out->items, out->len, sizeof(*out->items));
    return 0;
}

static int read_seq(const bson_t *d, void *item)
{
    *(int64_t *)item = mgr_i64(d, "seq");
    return 0;
}

/* Deletes every document at or below the seq of the (max+1)-th newest; a
 * negative max leaves the collection alone. */
static int trim_one(struct mgc *c, const char *coll, int64_t max,
                    const char *what)
{
    if (max < 0)
        return 0;
    bson_t f = BSON_INITIALIZER, opts = BSON_INITIALIZER;
    sort2(&opts, "seq", NULL, -1);
    mgb_i64(&opts, "skip", max);
    project1(&opts, "seq");
    int64_t seq = 0;
    int rc = mgx_find_one(c, coll, &f, &opts, read_seq, &seq, what);
    bson_destroy(&opts);
    if (rc == 0) {
        cmp_i64(&f, "seq", "$lte", seq);
        rc = mgx_delete(c, coll, &f, true, NULL, what);
    } else if (rc == CP_ENOTFOUND) {
        rc = 0; /* no more than max: nothing to trim */
    }
    bson_destroy(&f);
    return rc;
}

struct trim_ctx {
    int64_t max_logs, max_events;
};

static int trim_fn(struct mgc *c, void *ctx)
{
    struct trim_ctx *k = ctx;
    int rc = trim_one(c, LOGS, k->max_logs, "logs trim");
    if (rc == 0)
        rc = trim_one(c, EVENTS, k->max_events, "events trim");
    return rc;
}

/* Not in a transaction, unlike PostgreSQL: a backlog of millions of lines
 * would outgrow MongoDB's transaction limits (size, 60 s lifetime) and
 * then fail forever. A trim cut short has only deleted lines that are
 * due to go anyway, and the next one finishes it. */
int mgd_history_trim(struct store *st, int64_t max_logs, int64_t max_events)
{
    struct trim_ctx k = {max_logs, max_events};
    return mg_do(st, trim_fn, &k);
}
