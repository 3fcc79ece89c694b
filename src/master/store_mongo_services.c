/* MongoDB backend: services and their instances (issue 4), mirroring
 * store_pg_services.c.
 *
 * A grid_services document holds the columns of the PostgreSQL row plus
 * "secret_names", the secret names its spec uses, rewritten with every
 * spec (mgv_service_fields, service_update) so that the vault finds the
 * services using a secret with one query. Reads that return stack names
 * read the stacks once and map their ids (service_list) or join them in
 * one aggregation ($lookup: instances_on_node, node_pod_rows); strings
 * sort bytewise, as PostgreSQL's COLLATE "C". PostgreSQL's foreign keys
 * are checked by hand (service_create, instance_put) and its cascades
 * from grid_services done by hand in the delete's transaction.
 * SPDX-License-Identifier: Apache-2.0 */
#include "store_mongo_int.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/log.h"
#include "../common/util.h"

#include <stdlib.h>
#include <string.h>

#define SVC_COLL "grid_services"
#define INST_COLL "grid_service_instances"
#define DEPLOY_COLL "grid_service_deploys"
#define STACK_COLL "stacks"

/* ==== Helpers ==== */

/* A filter value naming a row or a parent: NULL is written as "" so that
 * it matches nothing, as "col=NULL" in SQL (mgb_id would write null,
 * which matches every null and missing field). */
static void key_str(bson_t *b, const char *key, const char *v)
{
    BSON_APPEND_UTF8(b, key, v != NULL ? v : "");
}

static const char *nz(const char *s)
{
    return s != NULL ? s : "";
}

/* The embedded document key of d as a read-only view in out (no
 * bson_destroy needed); false when it is missing or not a document. */
static bool sub_doc(const bson_t *d, const char *key, bson_t *out)
{
    bson_iter_t it;
    if (!bson_iter_init_find(&it, d, key) || !BSON_ITER_HOLDS_DOCUMENT(&it))
        return false;
    uint32_t len = 0;
    const uint8_t *data = NULL;
    bson_iter_document(&it, &len, &data);
    return bson_init_static(out, data, len);
}

/* A deleteMany or updateMany that may match nothing: 0 matched is not
 * an error here. */
static int none_ok(int rc)
{
    return rc == CP_ENOTFOUND ? 0 : rc;
}

/* Finds only whether a document exists (projection: _id). */
static int read_nothing(const bson_t *d, void *item)
{
    CP_UNUSED(d);
    CP_UNUSED(item);
    return 0;
}

static int exists(struct mgc *c, const char *coll, const bson_t *filter,
                  const char *what)
{
    bson_t *opts = BCON_NEW("projection", "{", "_id", BCON_INT32(1), "}");
    int dummy = 0;
    int rc = mgx_find_one(c, coll, filter, opts, read_nothing, &dummy, what);
    bson_destroy(opts);
    return rc;
}

/* A stack's id and name (projection: name). */
struct stack_name {
    char id[STORE_ID_LEN + 1];
    char *name;
};

static int read_stack_name(const bson_t *d, void *item)
{
    struct stack_name *k = item;
    memset(k, 0, sizeof(*k));
    mgr_id(d, k->id);
    k->name = mgr_str(d, "name");
    return 0;
}

static void release_stack_name(void *item)
{
    struct stack_name *k = item;
    cp_free(k->name);
    k->name = NULL;
}

static bson_t *stack_name_opts(void)
{
    return BCON_NEW("projection", "{", "name", BCON_INT32(1), "}");
}

/* ==== Shared helpers (store_mongo_int.h) ==== */

/* Whether element i of secrets repeats the secret name of an earlier
 * one. */
static bool named_before(const json_t *secrets, size_t i, const char *name)
{
    for (size_t j = 0; j < i; j++) {
        const char *s = json_string_value(
            json_object_get(json_array_get(secrets, j), "secret"));
        if (s != NULL && strcmp(s, name) == 0)
            return true;
    }
    return false;
}

/* What store_pg_secrets.c's SECRETS_OF and e->>'secret' count: the
 * "secret" member of each object element of an array "secrets"; other
 * elements, and a "secrets" that is not an array, name nothing. A
 * validated spec (service_model.c) only has string members; a non-string
 * one is ignored. Each name once, in spec order. */
void mgv_secret_names(bson_t *b, const char *key, const json_t *spec)
{
    bson_t arr;
    bson_append_array_begin(b, key, -1, &arr);
    const json_t *secrets =
        spec != NULL ? json_object_get(spec, "secrets") : NULL;
    uint32_t n = 0;
    for (size_t i = 0; json_is_array(secrets) && i < json_array_size(secrets);
         i++) {
        const json_t *e = json_array_get(secrets, i);
        const char *name = json_string_value(json_object_get(e, "secret"));
        if (name == NULL || named_before(secrets, i, name))
            continue;
        char buf[16];
        const char *idx = NULL;
        size_t len = bson_uint32_to_string(n++, &idx, buf, sizeof(buf));
        bson_append_utf8(&arr, idx, (int)len, name, -1);
    }
    bson_append_array_end(b, &arr);
}

/* For an insert, with the defaults of both PostgreSQL inserts
 * (service_create and the stacks' insert_service): revision 1, state
 * "initialized", created_at now, updated_at = created_at,
 * deployed_revision 0 (a new service has not been deployed);
 * deployed_at and deploy_requested_at as given (service_create writes
 * them; the stacks' callers leave them 0). Adding a column: also update
 * mgv_read_service and mgv_service_update. */
void mgv_service_fields(bson_t *b, const struct store_service *v)
{
    int64_t created = v->created_at != 0 ? v->created_at : cp_now_ms();
    mgb_id(b, "grid_id", v->grid_id);
    mgb_id(b, "stack_id", v->stack_id);
    mgb_str(b, "name", v->name);
    mgb_json(b, "spec", v->spec, "{}");
    mgb_i64(b, "revision", v->revision > 0 ? v->revision : 1);
    mgb_i64(b, "stack_revision", v->stack_revision);
    mgb_str(b, "state", v->state != NULL ? v->state : "initialized");
    mgb_i64(b, "deployed_at", v->deployed_at);
    mgb_i64(b, "deploy_requested_at", v->deploy_requested_at);
    mgb_i64(b, "created_at", created);
    mgb_i64(b, "updated_at", created);
    mgb_i64(b, "deployed_revision", 0);
    mgv_secret_names(b, "secret_names", v->spec);
}

int mgv_read_service(const bson_t *d, void *item)
{
    struct store_service *v = item;
    memset(v, 0, sizeof(*v));
    mgr_id(d, v->id);
    mgr_fixed(d, "grid_id", v->grid_id, sizeof(v->grid_id));
    mgr_fixed(d, "stack_id", v->stack_id, sizeof(v->stack_id));
    v->name = mgr_str(d, "name");
    v->spec = mgr_json(d, "spec", json_object());
    v->revision = mgr_i64(d, "revision");
    v->stack_revision = mgr_i64(d, "stack_revision");
    v->state = mgr_str(d, "state");
    v->deployed_at = mgr_i64(d, "deployed_at");
    v->deploy_requested_at = mgr_i64(d, "deploy_requested_at");
    v->created_at = mgr_i64(d, "created_at");
    v->updated_at = mgr_i64(d, "updated_at");
    v->deployed_revision = mgr_i64(d, "deployed_revision");
    return 0;
}

static void release_service(void *item)
{
    store_service_release(item);
}

/* ==== Services ==== */

/* The stack must exist in the service's grid (the named one, or the
 * grid's "null" stack), else nothing is inserted and CP_ENOTFOUND says
 * the grid or stack is missing; a name taken in the stack is
 * CP_ECONFLICT (grid_services_stack_id_name_key). */
static int create_fn(struct mgc *c, void *ctx)
{
    const struct store_service *v = ctx;
    bson_t f;
    bson_init(&f);
    key_str(&f, "grid_id", v->grid_id);
    if (v->stack_id[0] != '\0')
        key_str(&f, "_id", v->stack_id);
    else
        BSON_APPEND_UTF8(&f, "name", "null");
    bson_t *opts = stack_name_opts();
    struct stack_name k = {0};
    int rc = mgx_find_one(c, STACK_COLL, &f, opts, read_stack_name, &k,
                          "service create stack");
    bson_destroy(opts);
    bson_destroy(&f);
    cp_free(k.name);
    if (rc == 0) /* a stack_delete or grid_delete meanwhile conflicts */
        rc = mgx_lock_row(c, STACK_COLL, k.id, "service create stack");
    if (rc != 0)
        return rc;

    struct store_service w = *v; /* borrowed fields */
    memcpy(w.stack_id, k.id, sizeof(w.stack_id));
    bson_t doc;
    bson_init(&doc);
    key_str(&doc, "_id", v->id);
    mgv_service_fields(&doc, &w);
    rc = mgx_insert(c, SVC_COLL, &doc, "service create");
    bson_destroy(&doc);
    return rc;
}

int mgv_service_create(struct store *st, const struct store_service *v)
{
    return mg_tx(st, create_fn, (void *)(uintptr_t)v);
}

struct get_ctx {
    const char *grid_id, *stack_name, *name, *id;
    struct store_service *out;
};

/* The stack by name first, then the service in it. */
static int get_fn(struct mgc *c, void *ctx)
{
    struct get_ctx *k = ctx;
    bson_t f;
    bson_init(&f);
    key_str(&f, "grid_id", k->grid_id);
    key_str(&f, "name", k->stack_name);
    bson_t *opts = stack_name_opts();
    struct stack_name sk = {0};
    int rc = mgx_find_one(c, STACK_COLL, &f, opts, read_stack_name, &sk,
                          "service get stack");
    bson_destroy(opts);
    bson_destroy(&f);
    if (rc != 0) {
        cp_free(sk.name);
        return rc;
    }
    bson_t g;
    bson_init(&g);
    key_str(&g, "stack_id", sk.id);
    key_str(&g, "name", k->name);
    rc = mgx_find_one(c, SVC_COLL, &g, NULL, mgv_read_service, k->out,
                      "service get");
    bson_destroy(&g);
    if (rc == 0) {
        k->out->stack_name = sk.name;
        sk.name = NULL;
    }
    cp_free(sk.name);
    return rc;
}

int mgv_service_get(struct store *st, const char *grid_id,
                    const char *stack_name, const char *name,
                    struct store_service *out)
{
    memset(out, 0, sizeof(*out));
    struct get_ctx k = {
        .grid_id = grid_id,
        .stack_name =
            stack_name != NULL && stack_name[0] != '\0' ? stack_name : "null",
        .name = name,
        .out = out,
    };
    int rc = mg_do(st, get_fn, &k);
    if (rc != 0)
        store_service_release(out);
    return rc;
}

/* The service, then its stack's name; a service whose stack is gone is
 * not found (PostgreSQL's inner join). */
static int get_by_id_fn(struct mgc *c, void *ctx)
{
    struct get_ctx *k = ctx;
    bson_t f;
    bson_init(&f);
    key_str(&f, "_id", k->id);
    int rc = mgx_find_one(c, SVC_COLL, &f, NULL, mgv_read_service, k->out,
                          "service get");
    bson_destroy(&f);
    if (rc != 0)
        return rc;
    bson_t g;
    bson_init(&g);
    key_str(&g, "_id", k->out->stack_id);
    bson_t *opts = stack_name_opts();
    struct stack_name sk = {0};
    rc = mgx_find_one(c, STACK_COLL, &g, opts, read_stack_name, &sk,
                      "service get stack");
    bson_destroy(opts);
    bson_destroy(&g);
    if (rc == 0)
        k->out->stack_name = sk.name;
    else
        cp_free(sk.name);
    return rc;
}

int mgv_service_get_by_id(struct store *st, const char *id,
                          struct store_service *out)
{
    memset(out, 0, sizeof(*out));
    struct get_ctx k = {.id = id, .out = out};
    int rc = mg_do(st, get_by_id_fn, &k);
    if (rc != 0)
        store_service_release(out);
    return rc;
}

static int cmp_stack_id(const void *a, const void *b)
{
    const struct stack_name *x = a, *y = b;
    return strcmp(x->id, y->id);
}

static int cmp_key_stack(const void *key, const void *elem)
{
    const struct stack_name *y = elem;
    return strcmp(key, y->id);
}

/* By stack name, then name, byte order (COLLATE "C"). */
static int cmp_service(const void *a, const void *b)
{
    const struct store_service *x = a, *y = b;
    int c = strcmp(nz(x->stack_name), nz(y->stack_name));
    return c != 0 ? c : strcmp(nz(x->name), nz(y->name));
}

struct list_ctx {
    const char *grid_id, *stack_name;
    struct store_service_list *out;
};

/* Two queries: the grid's stacks (or the one named), then their
 * services, whose stack names come from the stacks read. */
static int list_fn(struct mgc *c, void *ctx)
{
    struct list_ctx *k = ctx;
    bson_t f;
    bson_init(&f);
    key_str(&f, "grid_id", k->grid_id);
    if (k->stack_name != NULL)
        key_str(&f, "name", k->stack_name);
    bson_t *opts = stack_name_opts();
    void *items = NULL;
    size_t nk = 0;
    int rc = mgx_find_all(c, STACK_COLL, &f, opts, read_stack_name,
                          sizeof(struct stack_name), release_stack_name, &items,
                          &nk, "service list stacks");
    bson_destroy(opts);
    bson_destroy(&f);
    if (rc != 0 || nk == 0) {
        cp_free(items);
        return rc;
    }
    struct stack_name *stacks = items;
    qsort(stacks, nk, sizeof(*stacks), cmp_stack_id);

    bson_t g;
    bson_init(&g);
    key_str(&g, "grid_id", k->grid_id);
    if (k->stack_name != NULL)
        key_str(&g, "stack_id", stacks[0].id);
    void *svcs = NULL;
    size_t nv = 0;
    rc = mgx_find_all(c, SVC_COLL, &g, NULL, mgv_read_service,
                      sizeof(struct store_service), release_service, &svcs, &nv,
                      "service list");
    bson_destroy(&g);
    if (rc == 0) {
        /* Keep the services whose stack was read (PostgreSQL's inner
         * join), with its name. */
        struct store_service *v = svcs;
        size_t n = 0;
        for (size_t i = 0; i < nv; i++) {
            const struct stack_name *sk = bsearch(
                v[i].stack_id, stacks, nk, sizeof(*stacks), cmp_key_stack);
            if (sk == NULL) {
                store_service_release(&v[i]);
                continue;
            }
            v[i].stack_name = cp_strdup(nz(sk->name));
            if (n != i)
                v[n] = v[i];
            n++;
        }
        if (n > 0) {
            qsort(v, n, sizeof(*v), cmp_service);
            k->out->items = v;
            k->out->len = n;
        } else {
            cp_free(v);
        }
    }
    for (size_t i = 0; i < nk; i++)
        release_stack_name(&stacks[i]);
    cp_free(stacks);
    return rc;
}

int mgv_service_list(struct store *st, const char *grid_id,
                     const char *stack_name, struct store_service_list *out)
{
    memset(out, 0, sizeof(*out));
    struct list_ctx k = {grid_id, stack_name, out};
    int rc = mg_do(st, list_fn, &k);
    if (rc != 0)
        store_service_list_release(out);
    return rc;
}

/* One updateOne; a NULL spec or state keeps the stored one, a new spec
 * rewrites secret_names with it, and revision only goes up ($max). */
int mgv_service_update(struct store *st, const struct store_service *v)
{
    bson_t f, u, set;
    bson_init(&f);
    key_str(&f, "_id", v->id);
    bson_init(&u);
    bson_append_document_begin(&u, "$set", -1, &set);
    if (v->spec != NULL) {
        mgb_json(&set, "spec", v->spec, NULL);
        mgv_secret_names(&set, "secret_names", v->spec);
    }
    mgb_i64(&set, "stack_revision", v->stack_revision);
    if (v->state != NULL)
        mgb_str(&set, "state", v->state);
    mgb_i64(&set, "deployed_at", v->deployed_at);
    mgb_i64(&set, "deploy_requested_at", v->deploy_requested_at);
    mgb_i64(&set, "updated_at", v->updated_at ? v->updated_at : cp_now_ms());
    mgb_i64(&set, "deployed_revision", v->deployed_revision);
    bson_append_document_end(&u, &set);
    bson_t max; /* never below the stored one: see store.h */
    bson_append_document_begin(&u, "$max", -1, &max);
    mgb_i64(&max, "revision", v->revision);
    bson_append_document_end(&u, &max);
    int rc =
        mg_update_row(st, SVC_COLL, &f, &u, CP_ENOTFOUND, "service update");
    bson_destroy(&u);
    bson_destroy(&f);
    return rc;
}

/* PostgreSQL's ON DELETE CASCADE from grid_services: its instances and
 * deploys, in the delete's transaction. */
static int delete_fn(struct mgc *c, void *ctx)
{
    const char *id = ctx;
    bson_t f;
    bson_init(&f);
    key_str(&f, "_id", id);
    int64_t deleted = 0;
    int rc = mgx_delete(c, SVC_COLL, &f, false, &deleted, "service delete");
    bson_destroy(&f);
    if (rc == 0 && deleted == 0)
        rc = CP_ENOTFOUND;
    if (rc != 0)
        return rc;
    bson_t g;
    bson_init(&g);
    key_str(&g, "service_id", id);
    rc = none_ok(
        mgx_delete(c, INST_COLL, &g, true, NULL, "service delete instances"));
    if (rc == 0)
        rc = none_ok(mgx_delete(c, DEPLOY_COLL, &g, true, NULL,
                                "service delete deploys"));
    bson_destroy(&g);
    return rc;
}

int mgv_service_delete(struct store *st, const char *id)
{
    return mg_tx(st, delete_fn, (void *)(uintptr_t)id);
}

/* ==== Instances ==== */

/* Adding a field: also update put_one. */
static int read_instance(const bson_t *d, void *item)
{
    struct store_instance *in = item;
    memset(in, 0, sizeof(*in));
    mgr_id(d, in->id);
    mgr_fixed(d, "service_id", in->service_id, sizeof(in->service_id));
    in->instance_number = (int)mgr_i64(d, "instance_number");
    mgr_fixed(d, "node_id", in->node_id, sizeof(in->node_id));
    in->desired_state = mgr_str(d, "desired_state");
    in->deploy_rev = mgr_str(d, "deploy_rev");
    in->rev = mgr_str(d, "rev");
    in->state = mgr_str(d, "state");
    in->error = mgr_str(d, "error");
    in->updated_at = mgr_i64(d, "updated_at");
    return 0;
}

static void release_instance(void *item)
{
    store_instance_release(item);
}

int mgv_instance_list(struct store *st, const char *service_id,
                      struct store_instance_list *out)
{
    memset(out, 0, sizeof(*out));
    bson_t f;
    bson_init(&f);
    key_str(&f, "service_id", service_id);
    bson_t *opts = BCON_NEW("sort", "{", "instance_number", BCON_INT32(1), "}");
    void *items = NULL;
    int rc =
        mg_find_all(st, INST_COLL, &f, opts, read_instance, sizeof(*out->items),
                    release_instance, &items, &out->len, "instance list");
    bson_destroy(opts);
    bson_destroy(&f);
    if (rc != 0) {
        /* mg_find_all released and freed what it read. */
        memset(out, 0, sizeof(*out));
        return rc;
    }
    out->items = items;
    return 0;
}

/* The instances on node_id joined with their service (v) and its stack
 * (k), ordered by stack name, service name and instance number (byte
 * order); an instance whose service or stack is gone is left out, as by
 * PostgreSQL's inner joins. */
static bson_t *on_node_pipeline(const char *node_id)
{
    /* clang-format off */
    return BCON_NEW(
        "0", "{", "$match", "{", "node_id", BCON_UTF8(nz(node_id)), "}", "}",
        "1", "{", "$lookup", "{",
                "from", BCON_UTF8(SVC_COLL),
                "localField", BCON_UTF8("service_id"),
                "foreignField", BCON_UTF8("_id"),
                "as", BCON_UTF8("v"),
            "}", "}",
        "2", "{", "$unwind", BCON_UTF8("$v"), "}",
        "3", "{", "$lookup", "{",
                "from", BCON_UTF8(STACK_COLL),
                "localField", BCON_UTF8("v.stack_id"),
                "foreignField", BCON_UTF8("_id"),
                "as", BCON_UTF8("k"),
            "}", "}",
        "4", "{", "$unwind", BCON_UTF8("$k"), "}",
        "5", "{", "$project", "{",
                "v.secret_names", BCON_INT32(0),
                "k.labels", BCON_INT32(0),
            "}", "}",
        "6", "{", "$sort", "{",
                "k.name", BCON_INT32(1),
                "v.name", BCON_INT32(1),
                "instance_number", BCON_INT32(1),
                "_id", BCON_INT32(1), /* a unique tiebreak */
            "}", "}");
    /* clang-format on */
}

/* One row of on_node_pipeline: the instance with its service. */
struct inst_svc {
    struct store_instance inst;
    struct store_service svc;
};

static int read_inst_svc(const bson_t *d, void *item)
{
    struct inst_svc *p = item;
    bson_t v, k;
    if (!sub_doc(d, "v", &v) || !sub_doc(d, "k", &k)) {
        cp_error("store: instances on node: a joined row without its "
                 "service or stack");
        return CP_EIO;
    }
    read_instance(d, &p->inst);
    mgv_read_service(&v, &p->svc);
    p->svc.stack_name = mgr_str(&k, "name");
    return 0;
}

static void release_inst_svc(void *item)
{
    struct inst_svc *p = item;
    store_instance_release(&p->inst);
    store_service_release(&p->svc);
}

/* One aggregation: each row carries the instance and its service side by
 * side, so services[i] is a copy of the service of instances[i]. */
int mgv_instances_on_node(struct store *st, const char *node_id,
                          struct store_instance_list *instances,
                          struct store_service_list *services)
{
    memset(instances, 0, sizeof(*instances));
    memset(services, 0, sizeof(*services));
    bson_t *pipe = on_node_pipeline(node_id);
    struct mgc c;
    mg_get(mgs(st), &c);
    void *items = NULL;
    size_t n = 0;
    int rc = mgx_aggregate(&c, INST_COLL, pipe, read_inst_svc,
                           sizeof(struct inst_svc), release_inst_svc, &items,
                           &n, "instances on node");
    mg_put(&c);
    bson_destroy(pipe);
    if (rc != 0 || n == 0)
        return rc;
    struct inst_svc *p = items;
    instances->items = cp_calloc(n, sizeof(*instances->items));
    services->items = cp_calloc(n, sizeof(*services->items));
    for (size_t i = 0; i < n; i++) {
        instances->items[i] = p[i].inst;
        services->items[i] = p[i].svc;
    }
    instances->len = services->len = n;
    cp_free(p);
    return 0;
}

/* The node's name and grid grid_id's name; no row when either is
 * missing. */
struct names {
    char *node, *grid;
};

static int read_names(const bson_t *d, void *item)
{
    struct names *nm = item;
    bson_t g;
    nm->node = mgr_str(d, "name");
    nm->grid = sub_doc(d, "g", &g) ? mgr_str(&g, "name") : NULL;
    return 0;
}

static void release_names(void *item)
{
    struct names *nm = item;
    cp_free(nm->node);
    cp_free(nm->grid);
    nm->node = nm->grid = NULL;
}

static int read_pod_row(const bson_t *d, void *item)
{
    struct store_pod_row *row = item;
    bson_t v, k;
    if (!sub_doc(d, "v", &v) || !sub_doc(d, "k", &k)) {
        cp_error("store: pod rows: a joined row without its service or "
                 "stack");
        return CP_EIO;
    }
    read_instance(d, &row->inst);
    row->service_name = mgr_str(&v, "name");
    row->stack_name = mgr_str(&k, "name");
    row->spec = mgr_str(&v, "spec"); /* the stored JSON text */
    row->revision = mgr_i64(&v, "revision");
    row->updated_at = mgr_i64(&v, "updated_at");
    return 0;
}

static void release_pod_row(void *item)
{
    struct store_pod_row *row = item;
    store_instance_release(&row->inst);
    cp_free(row->service_name);
    cp_free(row->stack_name);
    cp_free(row->spec);
    row->service_name = row->stack_name = row->spec = NULL;
}

struct pod_ctx {
    const char *node_id, *grid_id;
    struct store_pod_rows *out;
};

/* Two aggregations in one transaction, so the rows match the names read:
 * the node joined with the grid, then on_node_pipeline. */
static int pod_fn(struct mgc *c, void *ctx)
{
    struct pod_ctx *k = ctx;
    store_pod_rows_release(k->out); /* a retried run starts afresh */
    /* clang-format off */
    bson_t *names = BCON_NEW(
        "0", "{", "$match", "{", "_id", BCON_UTF8(nz(k->node_id)), "}", "}",
        "1", "{", "$lookup", "{",
                "from", BCON_UTF8("grids"),
                "pipeline", "[",
                    "{", "$match", "{",
                        "_id", BCON_UTF8(nz(k->grid_id)),
                    "}", "}",
                    "{", "$project", "{", "name", BCON_INT32(1), "}", "}",
                "]",
                "as", BCON_UTF8("g"),
            "}", "}",
        "2", "{", "$unwind", BCON_UTF8("$g"), "}",
        "3", "{", "$project", "{",
                "name", BCON_INT32(1),
                "g", BCON_INT32(1),
            "}", "}");
    /* clang-format on */
    void *items = NULL;
    size_t n = 0;
    int rc =
        mgx_aggregate(c, "host_nodes", names, read_names, sizeof(struct names),
                      release_names, &items, &n, "pod rows node");
    bson_destroy(names);
    if (rc != 0)
        return rc;
    struct names *nm = items;
    if (n == 0 || nm[0].node == NULL || nm[0].grid == NULL)
        rc = CP_ENOTFOUND;
    if (rc == 0) {
        k->out->node_name = nm[0].node;
        k->out->grid_name = nm[0].grid;
        nm[0].node = nm[0].grid = NULL;
    }
    for (size_t i = 0; i < n; i++)
        release_names(&nm[i]);
    cp_free(nm);
    if (rc != 0)
        return rc;

    bson_t *pipe = on_node_pipeline(k->node_id);
    items = NULL;
    n = 0;
    rc = mgx_aggregate(c, INST_COLL, pipe, read_pod_row,
                       sizeof(struct store_pod_row), release_pod_row, &items,
                       &n, "pod rows");
    bson_destroy(pipe);
    if (rc != 0)
        return rc;
    k->out->items = items;
    k->out->len = n;
    return 0;
}

int mgv_node_pod_rows(struct store *st, const char *node_id,
                      const char *grid_id, struct store_pod_rows *out)
{
    memset(out, 0, sizeof(*out));
    struct pod_ctx k = {node_id, grid_id, out};
    int rc = mg_tx(st, pod_fn, &k);
    if (rc != 0)
        store_pod_rows_release(out);
    return rc;
}

/* Inserts or replaces instance (service_id, instance_number), keeping
 * the row id of a replaced one; the service must exist (PostgreSQL's
 * foreign key: CP_ENOTFOUND), checked unless check is false. */
static int put_one(struct mgc *c, const struct store_instance *i, bool check)
{
    if (check) {
        /* Locks the service: a service_delete committing meanwhile
         * conflicts instead of leaving an orphan instance. */
        int rc =
            mgx_lock_row(c, SVC_COLL, i->service_id, "instance put service");
        if (rc != 0)
            return rc;
    }
    char id[STORE_ID_LEN + 1];
    if (i->id[0] != '\0')
        memcpy(id, i->id, sizeof(id));
    else
        store_new_id(id);
    bson_t f, u, set, ins;
    bson_init(&f);
    key_str(&f, "service_id", i->service_id);
    mgb_i64(&f, "instance_number", i->instance_number);
    bson_init(&u);
    bson_append_document_begin(&u, "$set", -1, &set);
    mgb_id(&set, "node_id", i->node_id);
    mgb_str(&set, "desired_state",
            i->desired_state != NULL ? i->desired_state : "running");
    mgb_str(&set, "deploy_rev", i->deploy_rev);
    mgb_str(&set, "rev", i->rev);
    mgb_str(&set, "state", i->state);
    mgb_str(&set, "error", i->error);
    mgb_i64(&set, "updated_at", i->updated_at ? i->updated_at : cp_now_ms());
    bson_append_document_end(&u, &set);
    bson_append_document_begin(&u, "$setOnInsert", -1, &ins);
    BSON_APPEND_UTF8(&ins, "_id", id);
    bson_append_document_end(&u, &ins);
    /* An upsert inserts the filter's service_id and instance_number. */
    int rc = mgx_update(c, INST_COLL, &f, &u, false, true, NULL, NULL,
                        "instance put");
    bson_destroy(&u);
    bson_destroy(&f);
    return rc;
}

struct put_ctx {
    const struct store_instance *v;
    size_t n;
};

static int put_fn(struct mgc *c, void *ctx)
{
    struct put_ctx *k = ctx;
    for (size_t i = 0; i < k->n; i++) {
        /* A run of instances of one service checks it once. */
        bool check =
            i == 0 || strcmp(k->v[i].service_id, k->v[i - 1].service_id) != 0;
        int rc = put_one(c, &k->v[i], check);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* In a transaction: the service check and the upsert. */
int mgv_instance_put(struct store *st, const struct store_instance *i)
{
    struct put_ctx k = {i, 1};
    return mg_tx(st, put_fn, &k);
}

int mgv_instance_put_many(struct store *st, const struct store_instance *v,
                          size_t n)
{
    struct put_ctx k = {v, n};
    return n == 0 ? 0 : mg_tx(st, put_fn, &k);
}

int mgv_instance_trim(struct store *st, const char *service_id, int keep)
{
    bson_t f;
    bson_init(&f);
    key_str(&f, "service_id", service_id);
    BCON_APPEND(&f, "instance_number", "{", "$gt", BCON_INT64(keep), "}");
    int rc = none_ok(mg_delete(st, INST_COLL, &f, true, NULL, "instance trim"));
    bson_destroy(&f);
    return rc;
}

/* Revs are fixed-width UTC "YYYY-MM-DD HH:MM:SS" strings, so byte order
 * (MongoDB's string comparison) is time order; a null rev is older than
 * any. A report from a node the instance is no longer placed on is
 * ignored like an older one; a "" or NULL node_id is not checked. Both
 * return 0; CP_ENOTFOUND when there is no such instance. */
static int report_one(struct mgc *c, const char *service_id,
                      int instance_number, const char *node_id, const char *rev,
                      const char *state, const char *error, int64_t now)
{
    bson_t f, u, set;
    bson_init(&f);
    key_str(&f, "service_id", service_id);
    mgb_i64(&f, "instance_number", instance_number);
    if (node_id != NULL && node_id[0] != '\0')
        BSON_APPEND_UTF8(&f, "node_id", node_id);
    if (rev == NULL)
        BSON_APPEND_NULL(&f, "rev");
    else
        BCON_APPEND(&f, "$or", "[", "{", "rev", BCON_NULL, "}", "{", "rev", "{",
                    "$lte", BCON_UTF8(rev), "}", "}", "]");
    bson_init(&u);
    bson_append_document_begin(&u, "$set", -1, &set);
    mgb_str(&set, "rev", rev);
    mgb_str(&set, "state", state);
    mgb_str(&set, "error", error);
    mgb_i64(&set, "updated_at", now);
    bson_append_document_end(&u, &set);
    int64_t matched = 0;
    int rc = none_ok(mgx_update(c, INST_COLL, &f, &u, false, false, &matched,
                                NULL, "instance report"));
    bson_destroy(&u);
    bson_destroy(&f);
    if (rc != 0 || matched > 0)
        return rc;
    /* Nothing written: stale report (fine) or no such instance. */
    bson_t g;
    bson_init(&g);
    key_str(&g, "service_id", service_id);
    mgb_i64(&g, "instance_number", instance_number);
    rc = exists(c, INST_COLL, &g, "instance exists");
    bson_destroy(&g);
    return rc;
}

struct report_ctx {
    struct store_instance_report *v;
    size_t n;
    int64_t now;
};

static int report_fn(struct mgc *c, void *ctx)
{
    struct report_ctx *k = ctx;
    for (size_t i = 0; i < k->n; i++) {
        struct store_instance_report *e = &k->v[i];
        int r = report_one(c, e->service_id, e->instance_number, e->node_id,
                           e->rev, e->state, e->error, k->now);
        e->rc = r == CP_ENOTFOUND ? r : 0;
        if (r != 0 && r != CP_ENOTFOUND)
            return r;
    }
    return 0;
}

int mgv_instance_report(struct store *st, const char *service_id,
                        int instance_number, const char *node_id,
                        const char *rev, const char *state, const char *error)
{
    struct store_instance_report e = {service_id, instance_number, node_id, rev,
                                      state,      error,           0};
    struct report_ctx k = {&e, 1, cp_now_ms()};
    int rc = mg_do(st, report_fn, &k);
    return rc != 0 ? rc : e.rc;
}

int mgv_instances_report_many(struct store *st, struct store_instance_report *v,
                              size_t n)
{
    struct report_ctx k = {v, n, cp_now_ms()};
    return n == 0 ? 0 : mg_tx(st, report_fn, &k);
}

int mgv_instances_detach_node(struct store *st, const char *node_id, int *count)
{
    bson_t f;
    bson_init(&f);
    key_str(&f, "node_id", node_id);
    bson_t *u = BCON_NEW("$set", "{", "node_id", BCON_NULL, "}");
    int64_t matched = 0;
    int rc = none_ok(mg_update(st, INST_COLL, &f, u, true, false, &matched,
                               "instances detach"));
    bson_destroy(u);
    bson_destroy(&f);
    if (count != NULL)
        *count = rc == 0 ? (int)matched : 0;
    return rc;
}
