/* MongoDB backend: stacks, their immutable revisions and stack jobs
 * (deploys and removals, spec 5.5), with the semantics and error codes of
 * store_pg_stacks.c.
 *
 * Reads of stacks take a fixed number of queries whatever the number of
 * stacks (issue #2234): the stacks, their newest revisions ($or of
 * stack_id and revision pairs), then is_deploying from the open deploy
 * jobs and the open service deploys of their services ($in). Creating
 * and revising a stack write the stack, its revision and its new
 * services in one transaction; a revision is a compare-and-set on
 * stacks.revision.
 *
 * The job queue's rules span documents ("one queued job per stack and
 * action", "one ongoing job per stack"), so stack_deploy_queue,
 * stack_deploy_claim and stack_delete write one lock document
 * (MG_STACK_DEPLOY_LOCK in "counters") first in their transaction: two of
 * them running at once conflict on it and one is retried, as PostgreSQL
 * serialises them with an advisory lock. Writes of a claimed job are
 * fenced on claimed_by by a conditional update.
 * SPDX-License-Identifier: Apache-2.0 */
#include "store_mongo_int.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../common/util.h"

#include <stdio.h>
#include <string.h>

/* The "counters" document the job transactions write to serialise. */
#define MG_STACK_DEPLOY_LOCK "stack-deploy-lock"
/* The sequence ordering jobs created in the same millisecond (PG's
 * stack_deploys.seq). */
#define MG_STACK_DEPLOY_SEQ "stack_deploys"
/* Ids per deleteMany of a prune (keeps the filter far below 16 MiB). */
#define MG_PRUNE_BATCH 10000

static const char *nz(const char *s)
{
    return s != NULL && s[0] != '\0' ? s : NULL;
}

static bool same(const char *a, const char *b)
{
    return a != NULL && b != NULL && strcmp(a, b) == 0;
}

/* ==== Filters ==== */

/* {key: {op: [v, ...]}} built value by value: in_begin, in_add...,
 * in_end. Nothing else may be appended to b in between. */
struct in_list {
    bson_t cond;
    bson_t arr;
    uint32_t n;
};

static void in_begin(bson_t *b, const char *key, const char *op,
                     struct in_list *l)
{
    l->n = 0;
    bson_append_document_begin(b, key, -1, &l->cond);
    bson_append_array_begin(&l->cond, op, -1, &l->arr);
}

static void in_add(struct in_list *l, const char *v)
{
    char buf[16];
    const char *key;
    size_t len = bson_uint32_to_string(l->n++, &key, buf, sizeof(buf));
    if (v != NULL)
        bson_append_utf8(&l->arr, key, (int)len, v, -1);
    else
        bson_append_null(&l->arr, key, (int)len);
}

static void in_end(bson_t *b, struct in_list *l)
{
    bson_append_array_end(&l->cond, &l->arr);
    bson_append_document_end(b, &l->cond);
}

/* {key: {op: ["created", "ongoing"]}}: a job that is queued or running. */
static void open_states(bson_t *b, const char *key, const char *op)
{
    struct in_list l;
    in_begin(b, key, op, &l);
    in_add(&l, "created");
    in_add(&l, "ongoing");
    in_end(b, &l);
}

/* opts {sort: {a: dir, b: dir}} (b may be NULL). */
static void sort_by(bson_t *opts, const char *a, int dir_a, const char *b,
                    int dir_b)
{
    bson_t sort;
    bson_append_document_begin(opts, "sort", -1, &sort);
    bson_append_int32(&sort, a, -1, dir_a);
    if (b != NULL)
        bson_append_int32(&sort, b, -1, dir_b);
    bson_append_document_end(opts, &sort);
}

/* opts {projection: {key: 1}} (_id comes along). */
static void project(bson_t *opts, const char *key)
{
    bson_t proj;
    bson_append_document_begin(opts, "projection", -1, &proj);
    bson_append_int32(&proj, key, -1, 1);
    bson_append_document_end(opts, &proj);
}

/* ==== Readers ==== */

static int read_none(const bson_t *d, void *item)
{
    CP_UNUSED(d);
    CP_UNUSED(item);
    return 0;
}

static int read_stack(const bson_t *d, void *item)
{
    struct store_stack *k = item;
    mgr_id(d, k->id);
    mgr_fixed(d, "grid_id", k->grid_id, sizeof(k->grid_id));
    k->name = mgr_str(d, "name");
    k->labels = mgr_json(d, "labels", json_array());
    k->parent_name = mgr_str(d, "parent_name");
    k->revision = mgr_i64(d, "revision");
    k->removing = mgr_bool(d, "removing");
    k->created_at = mgr_i64(d, "created_at");
    k->updated_at = mgr_i64(d, "updated_at");
    return 0;
}

static void release_stack(void *item)
{
    store_stack_release(item);
}

static int read_rev(const bson_t *d, void *item)
{
    struct store_stack_revision *r = item;
    mgr_id(d, r->id);
    mgr_fixed(d, "stack_id", r->stack_id, sizeof(r->stack_id));
    r->revision = mgr_i64(d, "revision");
    r->stack = mgr_str(d, "stack");
    r->version = mgr_str(d, "version");
    r->registry = mgr_str(d, "registry");
    r->source = mgr_str(d, "source");
    r->expose = mgr_str(d, "expose");
    r->variables = mgr_json(d, "variables", json_object());
    r->services = mgr_json(d, "services", json_array());
    r->volumes = mgr_json(d, "volumes", json_array());
    r->metadata = mgr_json(d, "metadata", json_object());
    r->created_at = mgr_i64(d, "created_at");
    return 0;
}

static void release_rev(void *item)
{
    store_stack_revision_release(item);
}

/* A document's _id with the id it refers to (a stack's or a service's). */
struct ref {
    char id[STORE_ID_LEN + 1];
    char to[STORE_ID_LEN + 1];
};

static int read_stack_ref(const bson_t *d, void *item)
{
    struct ref *r = item;
    mgr_id(d, r->id);
    mgr_fixed(d, "stack_id", r->to, sizeof(r->to));
    return 0;
}

static int read_service_ref(const bson_t *d, void *item)
{
    struct ref *r = item;
    mgr_id(d, r->id);
    mgr_fixed(d, "service_id", r->to, sizeof(r->to));
    return 0;
}

static int read_grid_id(const bson_t *d, void *item)
{
    mgr_fixed(d, "grid_id", item, STORE_ID_LEN + 1);
    return 0;
}

/* ==== Stacks: reads ==== */

/* Moves the newest revisions of the n stacks in k into revs (empty, with
 * empty JSON values, for a stack without one), in one query: an $or of
 * (stack_id, revision) pairs, each on the unique index, so that only the
 * newest revisions are read. */
static int load_revs(struct mgc *c, const struct store_stack *k,
                     struct store_stack_revision *revs, size_t n)
{
    if (n == 0)
        return 0;
    bson_t f = BSON_INITIALIZER, any;
    bson_append_array_begin(&f, "$or", -1, &any);
    for (size_t i = 0; i < n; i++) {
        char buf[16];
        const char *key;
        size_t len = bson_uint32_to_string((uint32_t)i, &key, buf, sizeof(buf));
        bson_t one;
        bson_append_document_begin(&any, key, (int)len, &one);
        mgb_str(&one, "stack_id", k[i].id);
        mgb_i64(&one, "revision", k[i].revision);
        bson_append_document_end(&any, &one);
    }
    bson_append_array_end(&f, &any);
    void *items = NULL;
    size_t len = 0;
    int rc = mgx_find_all(c, "stack_revisions", &f, NULL, read_rev,
                          sizeof(struct store_stack_revision), release_rev,
                          &items, &len, "stack revisions");
    bson_destroy(&f);
    if (rc != 0)
        return rc; /* mgx_find_all freed what it read */
    struct store_stack_revision *got = items;
    for (size_t j = 0; j < len; j++) {
        for (size_t i = 0; i < n; i++) {
            if (revs[i].id[0] == '\0' &&
                strcmp(k[i].id, got[j].stack_id) == 0 &&
                k[i].revision == got[j].revision) {
                revs[i] = got[j];
                memset(&got[j], 0, sizeof(got[j]));
                break;
            }
        }
        store_stack_revision_release(&got[j]); /* no-op once moved */
    }
    cp_free(got);
    /* As PostgreSQL's LEFT JOIN miss: empty, with empty JSON values. */
    for (size_t i = 0; i < n; i++) {
        if (revs[i].id[0] != '\0')
            continue;
        revs[i].variables = json_object();
        revs[i].services = json_array();
        revs[i].volumes = json_array();
        revs[i].metadata = json_object();
    }
    return 0;
}

/* Index of id in k[0..n), or n. */
static size_t stack_index(const struct store_stack *k, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(k[i].id, id) == 0)
            return i;
    return n;
}

/* Fills is_deploying of the n stacks in k as PostgreSQL computes it: a
 * deploy job of the stack is queued or ongoing, or a deploy of one of its
 * services is. Three queries at most, whatever n. */
static int load_deploying(struct mgc *c, struct store_stack *k, size_t n)
{
    if (n == 0)
        return 0;
    void *items = NULL;
    size_t len = 0;

    /* Open deploy jobs. */
    bson_t f = BSON_INITIALIZER, opts = BSON_INITIALIZER;
    struct in_list l;
    in_begin(&f, "stack_id", "$in", &l);
    for (size_t i = 0; i < n; i++)
        in_add(&l, k[i].id);
    in_end(&f, &l);
    mgb_str(&f, "action", "deploy");
    open_states(&f, "state", "$in");
    project(&opts, "stack_id");
    int rc =
        mgx_find_all(c, "stack_deploys", &f, &opts, read_stack_ref,
                     sizeof(struct ref), NULL, &items, &len, "stack deploying");
    bson_destroy(&f);
    bson_destroy(&opts);
    if (rc != 0)
        return rc;
    struct ref *jobs = items;
    for (size_t j = 0; j < len; j++) {
        size_t i = stack_index(k, n, jobs[j].to);
        if (i < n)
            k[i].is_deploying = true;
    }
    cp_free(jobs);

    /* The services of the other stacks. */
    size_t left = 0;
    bson_init(&f);
    bson_init(&opts);
    in_begin(&f, "stack_id", "$in", &l);
    for (size_t i = 0; i < n; i++) {
        if (!k[i].is_deploying) {
            in_add(&l, k[i].id);
            left++;
        }
    }
    in_end(&f, &l);
    project(&opts, "stack_id");
    items = NULL;
    len = 0;
    if (left > 0)
        rc = mgx_find_all(c, "grid_services", &f, &opts, read_stack_ref,
                          sizeof(struct ref), NULL, &items, &len,
                          "stack services");
    bson_destroy(&f);
    bson_destroy(&opts);
    if (rc != 0 || len == 0)
        return rc;
    struct ref *svcs = items;
    size_t nsvcs = len;

    /* Their open deploys. */
    bson_init(&f);
    bson_init(&opts);
    in_begin(&f, "service_id", "$in", &l);
    for (size_t s = 0; s < nsvcs; s++)
        in_add(&l, svcs[s].id);
    in_end(&f, &l);
    open_states(&f, "state", "$in");
    project(&opts, "service_id");
    items = NULL;
    len = 0;
    rc = mgx_find_all(c, "grid_service_deploys", &f, &opts, read_service_ref,
                      sizeof(struct ref), NULL, &items, &len,
                      "stack service deploying");
    bson_destroy(&f);
    bson_destroy(&opts);
    if (rc != 0) {
        cp_free(svcs);
        return rc;
    }
    struct ref *deps = items;
    for (size_t d = 0; d < len; d++) {
        for (size_t s = 0; s < nsvcs; s++) {
            if (strcmp(svcs[s].id, deps[d].to) != 0)
                continue;
            size_t i = stack_index(k, n, svcs[s].to);
            if (i < n)
                k[i].is_deploying = true;
            break;
        }
    }
    cp_free(deps);
    cp_free(svcs);
    return 0;
}

/* The stacks matching filter ordered by name, with their newest
 * revisions and is_deploying, into out (emptied on error). */
static int load_stacks(struct mgc *c, const bson_t *filter,
                       struct store_stack_list *out)
{
    memset(out, 0, sizeof(*out));
    void *items = NULL;
    size_t len = 0;
    bson_t opts = BSON_INITIALIZER;
    sort_by(&opts, "name", 1, NULL, 0);
    int rc = mgx_find_all(c, "stacks", filter, &opts, read_stack,
                          sizeof(struct store_stack), release_stack, &items,
                          &len, "stack list");
    bson_destroy(&opts);
    if (rc != 0)
        return rc; /* mgx_find_all freed what it read */
    out->stacks = cp_calloc(len + 1, sizeof(*out->stacks));
    out->revs = cp_calloc(len + 1, sizeof(*out->revs));
    if (len > 0)
        memcpy(out->stacks, items, len * sizeof(*out->stacks));
    out->len = len;
    cp_free(items);
    rc = load_revs(c, out->stacks, out->revs, len);
    if (rc == 0)
        rc = load_deploying(c, out->stacks, len);
    if (rc != 0)
        store_stack_list_release(out);
    return rc;
}

struct load_ctx {
    const bson_t *filter;
    struct store_stack_list *out;
};

static int load_fn(struct mgc *c, void *ctx)
{
    struct load_ctx *x = ctx;
    return load_stacks(c, x->filter, x->out);
}

/* One stack matching filter into out and rev (may be NULL), or both
 * emptied. */
static int get_one(struct store *st, const bson_t *filter,
                   struct store_stack *out, struct store_stack_revision *rev)
{
    struct store_stack_list l;
    memset(&l, 0, sizeof(l));
    struct load_ctx x = {filter, &l};
    int rc = mg_do(st, load_fn, &x);
    memset(out, 0, sizeof(*out));
    if (rev != NULL)
        memset(rev, 0, sizeof(*rev));
    if (rc != 0)
        return rc;
    if (l.len == 0) {
        store_stack_list_release(&l);
        return CP_ENOTFOUND;
    }
    *out = l.stacks[0];
    memset(&l.stacks[0], 0, sizeof(l.stacks[0]));
    if (rev != NULL) {
        *rev = l.revs[0];
        memset(&l.revs[0], 0, sizeof(l.revs[0]));
    }
    store_stack_list_release(&l);
    return 0;
}

int mgk_stack_get(struct store *st, const char *grid_id, const char *name,
                  struct store_stack *out, struct store_stack_revision *rev)
{
    bson_t f = BSON_INITIALIZER;
    mgb_str(&f, "grid_id", grid_id);
    mgb_str(&f, "name", name);
    int rc = get_one(st, &f, out, rev);
    bson_destroy(&f);
    return rc;
}

int mgk_stack_get_by_id(struct store *st, const char *id,
                        struct store_stack *out,
                        struct store_stack_revision *rev)
{
    bson_t f = BSON_INITIALIZER;
    mgb_str(&f, "_id", id);
    int rc = get_one(st, &f, out, rev);
    bson_destroy(&f);
    return rc;
}

int mgk_stack_list(struct store *st, const char *grid_id,
                   struct store_stack_list *out)
{
    bson_t f = BSON_INITIALIZER;
    mgb_str(&f, "grid_id", grid_id);
    memset(out, 0, sizeof(*out));
    struct load_ctx x = {&f, out};
    int rc = mg_do(st, load_fn, &x);
    bson_destroy(&f);
    return rc;
}

int mgk_stack_revision_get(struct store *st, const char *stack_id,
                           int64_t revision, struct store_stack_revision *out)
{
    memset(out, 0, sizeof(*out));
    bson_t f = BSON_INITIALIZER;
    mgb_str(&f, "stack_id", stack_id);
    mgb_i64(&f, "revision", revision);
    int rc = mg_find_one(st, "stack_revisions", &f, NULL, read_rev, out,
                         "stack revision");
    bson_destroy(&f);
    if (rc != 0)
        store_stack_revision_release(out);
    return rc;
}

/* ==== Stacks: writes ==== */

static int insert_rev(struct mgc *c, const char *stack_id,
                      const struct store_stack_revision *r, int64_t now)
{
    char id[STORE_ID_LEN + 1];
    if (r->id[0] != '\0')
        memcpy(id, r->id, sizeof(id));
    else
        store_new_id(id);
    bson_t doc = BSON_INITIALIZER;
    mgb_str(&doc, "_id", id);
    mgb_id(&doc, "stack_id", stack_id);
    mgb_i64(&doc, "revision", r->revision);
    mgb_str(&doc, "stack", r->stack);
    mgb_str(&doc, "version", r->version);
    mgb_str(&doc, "registry", r->registry);
    mgb_str(&doc, "source", r->source);
    mgb_str(&doc, "expose", r->expose);
    mgb_json(&doc, "variables", r->variables, "{}");
    mgb_json(&doc, "services", r->services, "[]");
    mgb_json(&doc, "volumes", r->volumes, "[]");
    mgb_json(&doc, "metadata", r->metadata, "{}");
    mgb_i64(&doc, "created_at", r->created_at ? r->created_at : now);
    int rc = mgx_insert(c, "stack_revisions", &doc, "stack revision insert");
    bson_destroy(&doc);
    return rc;
}

/* Inserts service v into stack stack_id of grid_id with the columns
 * PostgreSQL's insert sets (the others at their defaults). */
static int insert_service(struct mgc *c, const char *grid_id,
                          const char *stack_id, const struct store_service *v,
                          int64_t now)
{
    struct store_service w;
    memset(&w, 0, sizeof(w));
    if (v->id[0] != '\0')
        memcpy(w.id, v->id, sizeof(w.id));
    else
        store_new_id(w.id);
    snprintf(w.grid_id, sizeof(w.grid_id), "%s", grid_id);
    snprintf(w.stack_id, sizeof(w.stack_id), "%s", stack_id);
    w.name = v->name;
    w.spec = v->spec != NULL ? json_incref(v->spec) : json_object();
    w.revision = v->revision > 0 ? v->revision : 1;
    w.stack_revision = v->stack_revision;
    w.state = v->state != NULL ? v->state : (char *)(uintptr_t) "initialized";
    w.created_at = v->created_at ? v->created_at : now;
    w.updated_at = w.created_at;
    bson_t doc = BSON_INITIALIZER;
    mgb_str(&doc, "_id", w.id);
    mgv_service_fields(&doc, &w);
    int rc = mgx_insert(c, "grid_services", &doc, "stack service insert");
    bson_destroy(&doc);
    json_decref(w.spec);
    return rc;
}

struct create_ctx {
    const struct store_stack *k;
    const struct store_stack_revision *r;
    const struct store_service *svcs;
    size_t n;
};

static int create_fn(struct mgc *c, void *ctx)
{
    struct create_ctx *x = ctx;
    const struct store_stack *k = x->k;
    int64_t now = k->created_at ? k->created_at : cp_now_ms();
    /* The grid must exist (PostgreSQL's foreign key); locked, so that a
     * grid_delete meanwhile conflicts instead of orphaning the stack. */
    int rc = mgx_lock_row(c, "grids", k->grid_id, "stack grid");
    if (rc != 0)
        return rc;
    bson_t doc = BSON_INITIALIZER;
    mgb_str(&doc, "_id", k->id);
    mgb_id(&doc, "grid_id", k->grid_id);
    mgb_str(&doc, "name", k->name);
    mgb_json(&doc, "labels", k->labels, "[]");
    mgb_str(&doc, "parent_name", nz(k->parent_name));
    mgb_i64(&doc, "revision", x->r->revision);
    mgb_bool(&doc, "removing", false);
    mgb_i64(&doc, "created_at", now);
    mgb_i64(&doc, "updated_at", now);
    rc = mgx_insert(c, "stacks", &doc, "stack insert");
    bson_destroy(&doc);
    if (rc == 0)
        rc = insert_rev(c, k->id, x->r, now);
    for (size_t i = 0; rc == 0 && i < x->n; i++)
        rc = insert_service(c, k->grid_id, k->id, &x->svcs[i], now);
    return rc;
}

int mgk_stack_create(struct store *st, const struct store_stack *k,
                     const struct store_stack_revision *r,
                     const struct store_service *svcs, size_t n)
{
    struct create_ctx x = {k, r, svcs, n};
    return mg_tx(st, create_fn, &x);
}

struct name_row {
    char *name;
};

static int read_name(const bson_t *d, void *item)
{
    struct name_row *r = item;
    r->name = mgr_str(d, "name");
    return 0;
}

static void release_name(void *item)
{
    struct name_row *r = item;
    cp_free(r->name);
    r->name = NULL;
}

struct revise_ctx {
    const char *stack_id;
    int64_t expect;
    const struct store_stack_revision *r;
    const struct store_service *svcs;
    size_t n;
};

/* Creates those of svcs[0..n) the stack lacks by name (PostgreSQL's ON
 * CONFLICT DO NOTHING: a duplicate key would abort the transaction here,
 * so the names present are read first). */
static int add_missing_services(struct mgc *c, const char *grid_id,
                                struct revise_ctx *x, int64_t now)
{
    if (x->n == 0)
        return 0;
    bson_t f = BSON_INITIALIZER, opts = BSON_INITIALIZER;
    mgb_str(&f, "stack_id", x->stack_id);
    struct in_list l;
    in_begin(&f, "name", "$in", &l);
    for (size_t i = 0; i < x->n; i++)
        in_add(&l, x->svcs[i].name);
    in_end(&f, &l);
    project(&opts, "name");
    void *items = NULL;
    size_t len = 0;
    int rc = mgx_find_all(c, "grid_services", &f, &opts, read_name,
                          sizeof(struct name_row), release_name, &items, &len,
                          "stack service names");
    bson_destroy(&f);
    bson_destroy(&opts);
    if (rc != 0)
        return rc;
    struct name_row *have = items;
    for (size_t i = 0; rc == 0 && i < x->n; i++) {
        const char *name = x->svcs[i].name;
        bool exists = false;
        for (size_t j = 0; !exists && j < len; j++)
            exists = same(have[j].name, name);
        /* An earlier one of the same name was just made. */
        for (size_t j = 0; !exists && j < i; j++)
            exists = same(x->svcs[j].name, name);
        if (!exists)
            rc = insert_service(c, grid_id, x->stack_id, &x->svcs[i], now);
    }
    for (size_t j = 0; j < len; j++)
        release_name(&have[j]);
    cp_free(have);
    return rc;
}

static int revise_fn(struct mgc *c, void *ctx)
{
    struct revise_ctx *x = ctx;
    int64_t now = cp_now_ms();
    char grid_id[STORE_ID_LEN + 1] = "";
    bson_t f = BSON_INITIALIZER, u = BSON_INITIALIZER, set;
    mgb_str(&f, "_id", x->stack_id);
    mgb_i64(&f, "revision", x->expect);
    bson_append_document_begin(&u, "$set", -1, &set);
    mgb_i64(&set, "revision", x->r->revision);
    mgb_i64(&set, "updated_at", now);
    bson_append_document_end(&u, &set);
    int rc = mgx_find_update(c, "stacks", &f, NULL, &u, false, true,
                             read_grid_id, grid_id, "stack revise");
    bson_destroy(&f);
    bson_destroy(&u);
    if (rc == CP_ENOTFOUND) {
        /* Nothing updated: no such stack, or it moved on. */
        bson_t e = BSON_INITIALIZER, opts = BSON_INITIALIZER;
        mgb_str(&e, "_id", x->stack_id);
        project(&opts, "_id");
        rc = mgx_find_one(c, "stacks", &e, &opts, read_none, NULL,
                          "stack exists");
        bson_destroy(&e);
        bson_destroy(&opts);
        return rc == 0 ? CP_ECONFLICT : rc;
    }
    if (rc == 0)
        rc = insert_rev(c, x->stack_id, x->r, now);
    if (rc == 0)
        rc = add_missing_services(c, grid_id, x, now);
    return rc;
}

int mgk_stack_revise(struct store *st, const char *stack_id, int64_t expect,
                     const struct store_stack_revision *r,
                     const struct store_service *svcs, size_t n)
{
    if (r->revision != expect + 1)
        return CP_EINVAL;
    struct revise_ctx x = {stack_id, expect, r, svcs, n};
    return mg_tx(st, revise_fn, &x);
}

int mgk_stack_update(struct store *st, const struct store_stack *k)
{
    bson_t f = BSON_INITIALIZER, u = BSON_INITIALIZER, set;
    mgb_str(&f, "_id", k->id);
    bson_append_document_begin(&u, "$set", -1, &set);
    mgb_json(&set, "labels", k->labels, "[]");
    mgb_str(&set, "parent_name", nz(k->parent_name));
    mgb_bool(&set, "removing", k->removing);
    mgb_i64(&set, "updated_at", k->updated_at ? k->updated_at : cp_now_ms());
    bson_append_document_end(&u, &set);
    int rc = mg_update_row(st, "stacks", &f, &u, CP_ENOTFOUND, "stack update");
    bson_destroy(&f);
    bson_destroy(&u);
    return rc;
}

/* Writes the lock document, so that two job transactions (queue, claim,
 * stack delete) running at once conflict and one of them is retried
 * after the other committed: the equivalent of PostgreSQL's
 * pg_advisory_xact_lock. $inc always changes the document, so it is a
 * real write even when the value is read by nobody. */
static int job_lock(struct mgc *c)
{
    bson_t f = BSON_INITIALIZER, u = BSON_INITIALIZER, inc;
    mgb_str(&f, "_id", MG_STACK_DEPLOY_LOCK);
    bson_append_document_begin(&u, "$inc", -1, &inc);
    mgb_i64(&inc, "value", 1);
    bson_append_document_end(&u, &inc);
    int rc = mgx_update(c, "counters", &f, &u, false, true, NULL, NULL,
                        "stack deploy lock");
    bson_destroy(&f);
    bson_destroy(&u);
    /* Two first-ever upserts racing: the clash aborted this transaction,
     * the document exists now, so mg_tx runs it again. */
    return rc == CP_ECONFLICT ? CP_EAGAIN : rc;
}

static int read_is_null(const bson_t *d, void *item)
{
    char *name = mgr_str(d, "name");
    *(bool *)item = same(name, "null");
    cp_free(name);
    return 0;
}

/* The lock document is written first: a job queued for this stack at the
 * same time either committed before (and is deleted here) or is retried
 * and then finds the stack gone. A revision (which writes the stack
 * document) conflicts with the delete of the stack document. */
static int delete_fn(struct mgc *c, void *ctx)
{
    const char *id = ctx;
    int rc = job_lock(c);
    if (rc != 0)
        return rc;
    bool is_null = false;
    bson_t f = BSON_INITIALIZER, opts = BSON_INITIALIZER;
    mgb_str(&f, "_id", id);
    project(&opts, "name");
    rc = mgx_find_one(c, "stacks", &f, &opts, read_is_null, &is_null,
                      "stack lock");
    bson_destroy(&f);
    bson_destroy(&opts);
    if (rc != 0)
        return rc;

    bson_t by_stack = BSON_INITIALIZER;
    mgb_str(&by_stack, "stack_id", id);
    bson_init(&opts);
    project(&opts, "_id");
    rc = mgx_find_one(c, "grid_services", &by_stack, &opts, read_none, NULL,
                      "stack services");
    bson_destroy(&opts);
    if (rc == 0)
        rc = CP_ECONFLICT;
    else if (rc == CP_ENOTFOUND)
        /* The null stack is the grid's; it goes only with the grid. */
        rc = is_null ? CP_ENOTFOUND : 0;
    if (rc == 0) {
        bson_t k = BSON_INITIALIZER;
        mgb_str(&k, "_id", id);
        int64_t deleted = 0;
        rc = mgx_delete(c, "stacks", &k, false, &deleted, "stack delete");
        bson_destroy(&k);
        if (rc == 0 && deleted == 0)
            rc = CP_ENOTFOUND;
    }
    /* ON DELETE CASCADE, by hand. */
    if (rc == 0)
        rc = mgx_delete(c, "stack_revisions", &by_stack, true, NULL,
                        "stack revisions delete");
    if (rc == 0)
        rc = mgx_delete(c, "stack_deploys", &by_stack, true, NULL,
                        "stack deploys delete");
    bson_destroy(&by_stack);
    return rc;
}

int mgk_stack_delete(struct store *st, const char *id)
{
    return mg_tx(st, delete_fn, (void *)(uintptr_t)id);
}

/* ==== Stack jobs ==== */

/* Adding a field: also update queue_fn's insert. */
static int read_job(const bson_t *d, void *item)
{
    struct store_stack_deploy *j = item;
    mgr_id(d, j->id);
    mgr_fixed(d, "stack_id", j->stack_id, sizeof(j->stack_id));
    j->action = mgr_str(d, "action");
    j->revision = mgr_i64(d, "revision");
    j->state = mgr_str(d, "state");
    j->reason = mgr_str(d, "reason");
    j->service_deploys = mgr_json(d, "service_deploys", json_array());
    j->claimed_by = mgr_str(d, "claimed_by");
    j->lease_until = mgr_i64(d, "lease_until");
    j->created_at = mgr_i64(d, "created_at");
    j->started_at = mgr_i64(d, "started_at");
    j->finished_at = mgr_i64(d, "finished_at");
    return 0;
}

static void release_job(void *item)
{
    store_stack_deploy_release(item);
}

static void release_deploy(void *item)
{
    store_deploy_release(item);
}

static int job_read(struct mgc *c, const char *id,
                    struct store_stack_deploy *out)
{
    bson_t f = BSON_INITIALIZER;
    mgb_str(&f, "_id", id);
    int rc = mgx_find_one(c, "stack_deploys", &f, NULL, read_job, out,
                          "stack deploy");
    bson_destroy(&f);
    return rc;
}

/* A job's id and started_at, for the claim. */
struct job_key {
    char id[STORE_ID_LEN + 1];
    int64_t started_at;
};

static int read_job_key(const bson_t *d, void *item)
{
    struct job_key *k = item;
    mgr_id(d, k->id);
    k->started_at = mgr_i64(d, "started_at");
    return 0;
}

/* The oldest job matching f (created_at, then seq) into key. */
static int job_oldest(struct mgc *c, const bson_t *f, struct job_key *key,
                      const char *what)
{
    bson_t opts = BSON_INITIALIZER;
    sort_by(&opts, "created_at", 1, "seq", 1);
    bson_t proj;
    bson_append_document_begin(&opts, "projection", -1, &proj);
    bson_append_int32(&proj, "started_at", -1, 1);
    bson_append_document_end(&opts, &proj);
    int rc =
        mgx_find_one(c, "stack_deploys", f, &opts, read_job_key, key, what);
    bson_destroy(&opts);
    return rc;
}

struct queue_ctx {
    const struct store_stack_deploy *d;
    struct store_stack_deploy *out;
};

static int queue_fn(struct mgc *c, void *ctx)
{
    struct queue_ctx *x = ctx;
    const struct store_stack_deploy *d = x->d;
    const char *action = d->action != NULL ? d->action : "deploy";
    store_stack_deploy_release(x->out);
    int rc = job_lock(c);
    if (rc != 0)
        return rc;
    struct job_key key;
    memset(&key, 0, sizeof(key));
    bson_t f = BSON_INITIALIZER;
    mgb_str(&f, "stack_id", d->stack_id);
    mgb_str(&f, "action", action);
    mgb_str(&f, "state", "created");
    rc = job_oldest(c, &f, &key, "stack deploy queued");
    bson_destroy(&f);
    if (rc == CP_ENOTFOUND) {
        /* The stack must exist (PostgreSQL's foreign key); locked, so
         * that a grid_delete meanwhile (which deletes the grid's stacks
         * and their jobs without the job lock) conflicts instead of
         * leaving this job orphaned. */
        rc = mgx_lock_row(c, "stacks", d->stack_id, "stack deploy stack");
        int64_t seq = 0;
        if (rc == 0)
            rc = mgx_next_seq(c, MG_STACK_DEPLOY_SEQ, 1, &seq);
        if (rc != 0)
            return rc;
        if (d->id[0] != '\0')
            memcpy(key.id, d->id, sizeof(key.id));
        else
            store_new_id(key.id);
        bson_t doc = BSON_INITIALIZER;
        mgb_str(&doc, "_id", key.id);
        mgb_i64(&doc, "seq", seq);
        mgb_id(&doc, "stack_id", d->stack_id);
        mgb_str(&doc, "action", action);
        mgb_i64(&doc, "revision", 0);
        mgb_str(&doc, "state", "created");
        mgb_str(&doc, "reason", NULL);
        mgb_json(&doc, "service_deploys", NULL, "[]");
        mgb_str(&doc, "claimed_by", NULL);
        mgb_i64(&doc, "lease_until", 0);
        mgb_i64(&doc, "created_at",
                d->created_at ? d->created_at : cp_now_ms());
        mgb_i64(&doc, "started_at", 0);
        mgb_i64(&doc, "finished_at", 0);
        rc = mgx_insert(c, "stack_deploys", &doc, "stack deploy insert");
        bson_destroy(&doc);
    }
    if (rc == 0 && strcmp(action, "remove") == 0) {
        bson_t k = BSON_INITIALIZER, u = BSON_INITIALIZER, set;
        mgb_str(&k, "_id", d->stack_id);
        bson_append_document_begin(&u, "$set", -1, &set);
        mgb_bool(&set, "removing", true);
        bson_append_document_end(&u, &set);
        rc = mgx_update(c, "stacks", &k, &u, false, false, NULL, NULL,
                        "stack removing");
        bson_destroy(&k);
        bson_destroy(&u);
    }
    if (rc != 0)
        return rc;
    return job_read(c, key.id, x->out);
}

int mgk_stack_deploy_queue(struct store *st, const struct store_stack_deploy *d,
                           struct store_stack_deploy *out)
{
    memset(out, 0, sizeof(*out));
    struct queue_ctx x = {d, out};
    int rc = mg_tx(st, queue_fn, &x);
    if (rc != 0)
        store_stack_deploy_release(out);
    return rc;
}

int mgk_stack_deploy_get(struct store *st, const char *id,
                         struct store_stack_deploy *out)
{
    memset(out, 0, sizeof(*out));
    bson_t f = BSON_INITIALIZER;
    mgb_str(&f, "_id", id);
    int rc = mg_find_one(st, "stack_deploys", &f, NULL, read_job, out,
                         "stack deploy get");
    bson_destroy(&f);
    if (rc != 0)
        store_stack_deploy_release(out);
    return rc;
}

struct claim_ctx {
    const char *holder;
    int64_t now, lease_ms;
    struct store_stack_deploy *out;
};

/* A queued job of a stack without an ongoing job (there is no expired
 * one when this runs, so every ongoing job is under a live lease). */
static int claim_queued(struct mgc *c, struct job_key *key)
{
    bson_t f = BSON_INITIALIZER, opts = BSON_INITIALIZER;
    mgb_str(&f, "state", "ongoing");
    project(&opts, "stack_id");
    void *items = NULL;
    size_t len = 0;
    int rc = mgx_find_all(c, "stack_deploys", &f, &opts, read_stack_ref,
                          sizeof(struct ref), NULL, &items, &len,
                          "stack deploys ongoing");
    bson_destroy(&f);
    bson_destroy(&opts);
    if (rc != 0)
        return rc;
    struct ref *busy = items;
    bson_init(&f);
    mgb_str(&f, "state", "created");
    struct in_list l;
    in_begin(&f, "stack_id", "$nin", &l);
    for (size_t i = 0; i < len; i++)
        in_add(&l, busy[i].to);
    in_end(&f, &l);
    cp_free(busy);
    rc = job_oldest(c, &f, key, "stack deploy claim");
    bson_destroy(&f);
    return rc;
}

/* Candidates, oldest first: ongoing jobs whose lease expired (their
 * master died or stopped; taken over before anything else, so a stack
 * never gets a second ongoing job beside an expired one), then queued
 * jobs of stacks without an ongoing job. */
static int claim_fn(struct mgc *c, void *ctx)
{
    struct claim_ctx *x = ctx;
    store_stack_deploy_release(x->out);
    int rc = job_lock(c);
    if (rc != 0)
        return rc;
    struct job_key key;
    memset(&key, 0, sizeof(key));
    bson_t f = BSON_INITIALIZER, lte;
    mgb_str(&f, "state", "ongoing");
    bson_append_document_begin(&f, "lease_until", -1, &lte);
    mgb_i64(&lte, "$lte", x->now);
    bson_append_document_end(&f, &lte);
    rc = job_oldest(c, &f, &key, "stack deploy claim");
    bson_destroy(&f);
    if (rc == CP_ENOTFOUND)
        rc = claim_queued(c, &key);
    if (rc != 0)
        return rc;
    bson_t u = BSON_INITIALIZER, set;
    bson_init(&f);
    mgb_str(&f, "_id", key.id);
    bson_append_document_begin(&u, "$set", -1, &set);
    mgb_str(&set, "state", "ongoing");
    mgb_str(&set, "claimed_by", x->holder);
    mgb_i64(&set, "lease_until", x->now + x->lease_ms);
    mgb_i64(&set, "started_at", key.started_at != 0 ? key.started_at : x->now);
    bson_append_document_end(&u, &set);
    rc = mgx_find_update(c, "stack_deploys", &f, NULL, &u, false, true,
                         read_job, x->out, "stack deploy claim");
    bson_destroy(&f);
    bson_destroy(&u);
    return rc;
}

int mgk_stack_deploy_claim(struct store *st, const char *holder, int64_t now,
                           int64_t lease_ms, struct store_stack_deploy *out)
{
    memset(out, 0, sizeof(*out));
    struct claim_ctx x = {holder, now, lease_ms, out};
    int rc = mg_tx(st, claim_fn, &x);
    if (rc != 0)
        store_stack_deploy_release(out);
    return rc;
}

/* Fenced on claimed_by ({claimed_by: null} matches a null one, as IS NOT
 * DISTINCT FROM does): a claim by another master changes it, and this
 * update then matches nothing. A NULL state or service_deploys keeps the
 * stored one. */
static int update_fn(struct mgc *c, void *ctx)
{
    const struct store_stack_deploy *d = ctx;
    bson_t f = BSON_INITIALIZER, u = BSON_INITIALIZER, set;
    mgb_str(&f, "_id", d->id);
    mgb_str(&f, "claimed_by", d->claimed_by);
    bson_append_document_begin(&u, "$set", -1, &set);
    mgb_i64(&set, "revision", d->revision);
    if (d->state != NULL)
        mgb_str(&set, "state", d->state);
    mgb_str(&set, "reason", d->reason);
    if (d->service_deploys != NULL)
        mgb_json(&set, "service_deploys", d->service_deploys, NULL);
    mgb_i64(&set, "lease_until", d->lease_until);
    mgb_i64(&set, "finished_at", d->finished_at);
    bson_append_document_end(&u, &set);
    int64_t matched = 0;
    int rc = mgx_update(c, "stack_deploys", &f, &u, false, false, &matched,
                        NULL, "stack deploy update");
    bson_destroy(&f);
    bson_destroy(&u);
    if (rc != 0 || matched > 0)
        return rc;
    bson_t e = BSON_INITIALIZER, opts = BSON_INITIALIZER;
    mgb_str(&e, "_id", d->id);
    project(&opts, "_id");
    rc = mgx_find_one(c, "stack_deploys", &e, &opts, read_none, NULL,
                      "stack deploy exists");
    bson_destroy(&e);
    bson_destroy(&opts);
    return rc == 0 ? CP_ECONFLICT /* another holder took it over */ : rc;
}

int mgk_stack_deploy_update(struct store *st,
                            const struct store_stack_deploy *d)
{
    return mg_do(st, update_fn, (void *)(uintptr_t)d);
}

struct list_ctx {
    const char *grid_id;
    const char *stack_id;
    bool open_only;
    int limit;
    struct store_stack_deploy_list *out;
};

/* The jobs of the grid's stacks: the grid's stack ids first (the jobs
 * have no grid_id), then the jobs, newest first. */
static int list_fn(struct mgc *c, void *ctx)
{
    struct list_ctx *x = ctx;
    bson_t f = BSON_INITIALIZER, opts = BSON_INITIALIZER;
    mgb_str(&f, "grid_id", x->grid_id);
    if (x->stack_id != NULL)
        mgb_str(&f, "_id", x->stack_id);
    project(&opts, "_id");
    void *items = NULL;
    size_t len = 0;
    int rc =
        mgx_find_all(c, "stacks", &f, &opts, read_stack_ref, sizeof(struct ref),
                     NULL, &items, &len, "stack deploy list stacks");
    bson_destroy(&f);
    bson_destroy(&opts);
    if (rc != 0 || len == 0)
        return rc;
    struct ref *stacks = items;
    bson_init(&f);
    bson_init(&opts);
    struct in_list l;
    in_begin(&f, "stack_id", "$in", &l);
    for (size_t i = 0; i < len; i++)
        in_add(&l, stacks[i].id);
    in_end(&f, &l);
    cp_free(stacks);
    if (x->open_only)
        open_states(&f, "state", "$in");
    sort_by(&opts, "created_at", -1, "seq", -1);
    if (x->limit > 0)
        bson_append_int64(&opts, "limit", -1, x->limit);
    items = NULL;
    len = 0;
    rc = mgx_find_all(c, "stack_deploys", &f, &opts, read_job,
                      sizeof(*x->out->items), release_job, &items, &len,
                      "stack deploy list");
    bson_destroy(&f);
    bson_destroy(&opts);
    if (rc != 0)
        return rc;
    x->out->items = items;
    x->out->len = len;
    return 0;
}

int mgk_stack_deploy_list(struct store *st, const char *grid_id,
                          const char *stack_id, bool open_only, int limit,
                          struct store_stack_deploy_list *out)
{
    memset(out, 0, sizeof(*out));
    struct list_ctx x = {grid_id, nz(stack_id), open_only, limit, out};
    int rc = mg_do(st, list_fn, &x);
    if (rc != 0)
        store_stack_deploy_list_release(out);
    return rc;
}

int mgk_stack_deploy_services(struct store *st, const char *stack_deploy_id,
                              struct store_deploy_list *out)
{
    memset(out, 0, sizeof(*out));
    /* {stack_deploy_id: null} would match every deploy queued outside a
     * stack job; SQL's "= NULL" matches nothing. */
    if (nz(stack_deploy_id) == NULL)
        return 0;
    bson_t f = BSON_INITIALIZER, opts = BSON_INITIALIZER;
    mgb_str(&f, "stack_deploy_id", stack_deploy_id);
    sort_by(&opts, "created_at", 1, "seq", 1);
    void *items = NULL;
    size_t len = 0;
    int rc = mg_find_all(st, "grid_service_deploys", &f, &opts, mgd_read_deploy,
                         sizeof(*out->items), release_deploy, &items, &len,
                         "stack deploy services");
    bson_destroy(&f);
    bson_destroy(&opts);
    if (rc != 0)
        return rc; /* mg_find_all freed what it read */
    out->items = items;
    out->len = len;
    return 0;
}

struct prune_ctx {
    int keep;
    int64_t deleted;
};

/* Deletes ids[0..n) of stack_deploys in batches. */
static int delete_jobs(struct mgc *c, char (*ids)[STORE_ID_LEN + 1], size_t n,
                       int64_t *deleted)
{
    int rc = 0;
    for (size_t at = 0; rc == 0 && at < n; at += MG_PRUNE_BATCH) {
        size_t end = n - at < MG_PRUNE_BATCH ? n : at + MG_PRUNE_BATCH;
        bson_t f = BSON_INITIALIZER;
        struct in_list l;
        in_begin(&f, "_id", "$in", &l);
        for (size_t i = at; i < end; i++)
            in_add(&l, ids[i]);
        in_end(&f, &l);
        int64_t n_deleted = 0;
        rc = mgx_delete(c, "stack_deploys", &f, true, &n_deleted,
                        "stack deploys prune");
        bson_destroy(&f);
        *deleted += n_deleted;
    }
    return rc;
}

/* Finished = neither queued nor ongoing. The finished jobs of every stack
 * are read newest first and all but the first keep of each stack deleted,
 * in one transaction, so atomic like PostgreSQL's single DELETE. */
static int prune_fn(struct mgc *c, void *ctx)
{
    struct prune_ctx *x = ctx;
    x->deleted = 0;
    bson_t f = BSON_INITIALIZER, opts = BSON_INITIALIZER, sort;
    open_states(&f, "state", "$nin");
    bson_append_document_begin(&opts, "sort", -1, &sort);
    bson_append_int32(&sort, "stack_id", -1, 1);
    bson_append_int32(&sort, "created_at", -1, -1);
    bson_append_int32(&sort, "seq", -1, -1);
    bson_append_document_end(&opts, &sort);
    project(&opts, "stack_id");
    void *items = NULL;
    size_t len = 0;
    int rc = mgx_find_all(c, "stack_deploys", &f, &opts, read_stack_ref,
                          sizeof(struct ref), NULL, &items, &len,
                          "stack deploys finished");
    bson_destroy(&f);
    bson_destroy(&opts);
    if (rc != 0 || len == 0)
        return rc;
    struct ref *jobs = items;
    char(*doomed)[STORE_ID_LEN + 1] = cp_calloc(len, sizeof(*doomed));
    size_t n = 0;
    int64_t rank = 0;
    for (size_t i = 0; i < len; i++) {
        rank = i > 0 && strcmp(jobs[i].to, jobs[i - 1].to) == 0 ? rank + 1 : 1;
        if (rank > x->keep)
            memcpy(doomed[n++], jobs[i].id, sizeof(doomed[0]));
    }
    cp_free(jobs);
    rc = delete_jobs(c, doomed, n, &x->deleted);
    cp_free(doomed);
    return rc;
}

int mgk_stack_deploys_prune(struct store *st, int keep, int *deleted)
{
    struct prune_ctx x = {keep > 0 ? keep : 0, 0};
    int rc = mg_tx(st, prune_fn, &x);
    if (deleted != NULL)
        *deleted = rc == 0 ? (int)x.deleted : 0;
    return rc;
}
