/* MongoDB backend: nodes, their connection generations and stats.
 *
 * Every write about a connection is one single-document update with the
 * expected conn_gen in its filter, so of two masters writing about the
 * same node the loser matches nothing. Batches (seen, stats, sweep) run
 * in one transaction, with a fixed number of statements where the
 * contract asks for it. Mirrors store_pg_nodes.c.
 * SPDX-License-Identifier: Apache-2.0 */
#include "store_mongo_int.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/util.h"

#include <stdio.h>
#include <string.h>

#define NODES "host_nodes"
#define STATS "host_node_stats"

/* The prefix of the masters' liveness leases (leader.h). */
#define LIVENESS_PREFIX "master:"

/* ==== Readers ==== */

static int read_node(const bson_t *d, void *item)
{
    struct store_node *n = item;
    memset(n, 0, sizeof(*n));
    mgr_id(d, n->id);
    mgr_fixed(d, "grid_id", n->grid_id, sizeof(n->grid_id));
    n->node_id = mgr_str(d, "node_id");
    n->name = mgr_str(d, "name");
    n->node_number = (int)mgr_i64(d, "node_number");
    n->token_hash = mgr_str(d, "token_hash");
    n->token_sealed = mgr_str(d, "token_sealed");
    n->labels = mgr_json(d, "labels", json_array());
    n->info = mgr_json(d, "info", json_object());
    n->stats = mgr_json(d, "stats", NULL);
    n->availability = mgr_str(d, "availability");
    n->agent_version = mgr_str(d, "agent_version");
    n->connected = mgr_bool(d, "connected");
    n->updated = mgr_bool(d, "updated");
    n->conn_gen = mgr_i64(d, "conn_gen");
    n->conn_master = mgr_str(d, "conn_master");
    n->connected_at = mgr_i64(d, "connected_at");
    n->disconnected_at = mgr_i64(d, "disconnected_at");
    n->last_seen_at = mgr_i64(d, "last_seen_at");
    n->close_code = (int)mgr_i64(d, "close_code");
    n->close_reason = mgr_str(d, "close_reason");
    n->created_at = mgr_i64(d, "created_at");
    n->updated_at = mgr_i64(d, "updated_at");
    return 0;
}

static void release_node(void *item)
{
    store_node_release(item);
}

/* For existence checks: reads nothing. */
static int read_nothing(const bson_t *d, void *item)
{
    CP_UNUSED(d);
    CP_UNUSED(item);
    return 0;
}

static int read_gen(const bson_t *d, void *item)
{
    *(int64_t *)item = mgr_i64(d, "conn_gen");
    return 0;
}

static int read_number(const bson_t *d, void *item)
{
    *(int64_t *)item = mgr_i64(d, "node_number");
    return 0;
}

static int read_seq(const bson_t *d, void *item)
{
    *(int64_t *)item = mgr_i64(d, "seq");
    return 0;
}

/* Appends key: {$literal: s} (s may be NULL), for string values inside
 * an update pipeline, where a string starting with "$" would otherwise
 * be read as a field path. */
static void lit_str(bson_t *b, const char *key, const char *s)
{
    bson_t lit;
    BSON_APPEND_DOCUMENT_BEGIN(b, key, &lit);
    mgb_str(&lit, "$literal", s);
    bson_append_document_end(b, &lit);
}

/* The same for JSON text (dflt's text when j is NULL). */
static void lit_json(bson_t *b, const char *key, const json_t *j,
                     const char *dflt)
{
    bson_t lit;
    BSON_APPEND_DOCUMENT_BEGIN(b, key, &lit);
    mgb_json(&lit, "$literal", j, dflt);
    bson_append_document_end(b, &lit);
}

/* ==== Lookups ==== */

/* {key: v} for a plain string v; on node_id and token_hash also
 * {$type: "string"}: their unique indexes are partial over strings only
 * (store_mongo_schema.c), and the planner uses a partial index only when
 * the query repeats its filter (an equality on a string does not count). */
static void str_eq(bson_t *f, const char *key, const char *v)
{
    if (v == NULL ||
        (strcmp(key, "node_id") != 0 && strcmp(key, "token_hash") != 0)) {
        mgb_str(f, key, v);
        return;
    }
    bson_t cond;
    BSON_APPEND_DOCUMENT_BEGIN(f, key, &cond);
    mgb_str(&cond, "$eq", v);
    mgb_str(&cond, "$type", "string");
    bson_append_document_end(f, &cond);
}

/* The node matching {k1: v1[, k2: v2]} (k1 "_id" or "grid_id": an id). */
static int node_one(struct store *st, const char *k1, const char *v1,
                    const char *k2, const char *v2, struct store_node *out)
{
    memset(out, 0, sizeof(*out));
    /* SQL's "col = NULL" matches nothing; {col: null} would match the
     * rows where it is null. */
    if (v1 == NULL || (k2 != NULL && v2 == NULL))
        return CP_ENOTFOUND;
    bson_t f = BSON_INITIALIZER;
    if (strcmp(k1, "_id") == 0 || strcmp(k1, "grid_id") == 0)
        mgb_id(&f, k1, v1);
    else
        str_eq(&f, k1, v1);
    if (k2 != NULL)
        str_eq(&f, k2, v2);
    int rc = mg_find_one(st, NODES, &f, NULL, read_node, out, "node get");
    bson_destroy(&f);
    if (rc != 0)
        store_node_release(out);
    return rc;
}

int mgn_node_get(struct store *st, const char *id, struct store_node *out)
{
    return node_one(st, "_id", id, NULL, NULL, out);
}

int mgn_node_find(struct store *st, const char *grid_id, const char *key,
                  struct store_node *out)
{
    if (strchr(key, ':') != NULL)
        return node_one(st, "grid_id", grid_id, "node_id", key, out);
    return node_one(st, "grid_id", grid_id, "name", key, out);
}

int mgn_node_get_by_node_id(struct store *st, const char *node_id,
                            struct store_node *out)
{
    return node_one(st, "node_id", node_id, NULL, NULL, out);
}

int mgn_node_get_by_token_hash(struct store *st, const char *hash,
                               struct store_node *out)
{
    return node_one(st, "token_hash", hash, NULL, NULL, out);
}

int mgn_node_list(struct store *st, const char *grid_id,
                  struct store_node_list *out)
{
    memset(out, 0, sizeof(*out));
    bson_t f = BSON_INITIALIZER, opts = BSON_INITIALIZER, sort;
    mgb_id(&f, "grid_id", grid_id);
    BSON_APPEND_DOCUMENT_BEGIN(&opts, "sort", &sort);
    mgb_i64(&sort, "name", 1); /* bytewise, as PostgreSQL's COLLATE "C" */
    bson_append_document_end(&opts, &sort);
    void *items = NULL;
    int rc = mg_find_all(st, NODES, &f, &opts, read_node, sizeof(*out->items),
                         release_node, &items, &out->len, "node list");
    bson_destroy(&opts);
    bson_destroy(&f);
    out->items = items;
    if (rc != 0) /* mg_find_all released what it had read */
        memset(out, 0, sizeof(*out));
    return rc;
}

/* ==== Create ==== */

/* 0 when a document matches f in coll, CP_ENOTFOUND when none, or a
 * CP_E* code. */
static int exists(struct mgc *c, const char *coll, const bson_t *f,
                  const char *what)
{
    bson_t opts = BSON_INITIALIZER, proj;
    BSON_APPEND_DOCUMENT_BEGIN(&opts, "projection", &proj);
    mgb_i64(&proj, "_id", 1);
    bson_append_document_end(&opts, &proj);
    int rc = mgx_find_one(c, coll, f, &opts, read_nothing, NULL, what);
    bson_destroy(&opts);
    return rc;
}

/* exists() on {key: value} (value a plain string) in host_nodes, within
 * grid_id when not NULL. */
static int node_exists(struct mgc *c, const char *grid_id, const char *key,
                       const char *value)
{
    bson_t f = BSON_INITIALIZER;
    if (grid_id != NULL)
        mgb_id(&f, "grid_id", grid_id);
    str_eq(&f, key, value);
    int rc = exists(c, NODES, &f, "node exists");
    bson_destroy(&f);
    return rc;
}

/* The lowest node number in 1..254 not used in the grid, or 0. */
static int free_number(struct mgc *c, const char *grid_id, int *out)
{
    bson_t f = BSON_INITIALIZER, opts = BSON_INITIALIZER, doc;
    mgb_id(&f, "grid_id", grid_id);
    BSON_APPEND_DOCUMENT_BEGIN(&opts, "projection", &doc);
    mgb_i64(&doc, "node_number", 1);
    mgb_i64(&doc, "_id", 0);
    bson_append_document_end(&opts, &doc);
    BSON_APPEND_DOCUMENT_BEGIN(&opts, "sort", &doc);
    mgb_i64(&doc, "node_number", 1);
    bson_append_document_end(&opts, &doc);
    void *items = NULL;
    size_t len = 0;
    int rc = mgx_find_all(c, NODES, &f, &opts, read_number, sizeof(int64_t),
                          NULL, &items, &len, "node numbers");
    bson_destroy(&opts);
    bson_destroy(&f);
    if (rc != 0)
        return rc;
    const int64_t *numbers = items;
    int64_t want = 1;
    for (size_t i = 0; i < len; i++) {
        if (numbers[i] == want)
            want++;
        else if (numbers[i] > want)
            break;
    }
    cp_free(items);
    *out = want <= 254 ? (int)want : 0;
    return 0;
}

/* Whether the last duplicate key error on c was on index. */
static bool clashed_on(const struct mgc *c, const char *index)
{
    return strcmp(c->conflict, index) == 0;
}

struct create_ctx {
    const struct store_node *n;
    bool rename_on_clash;
    struct store_node *out;
    const char *field;
    bool full; /* all 254 numbers are used */
};

/* The checks of store_pg_nodes.c's create_fn, in its order, so that the
 * same clash is named when several apply. Without PostgreSQL's lock on
 * the grid row, two creates in one grid can both pick the same number
 * or free name; the loser's insert then hits the unique index and the
 * whole transaction runs again (CP_EAGAIN), seeing the winner's node. */
static int create_fn(struct mgc *c, void *ctx)
{
    struct create_ctx *k = ctx;
    const struct store_node *n = k->n;
    store_node_release(k->out);
    k->field = NULL;
    k->full = false;
    if (n->name == NULL)
        return CP_EINVAL; /* NOT NULL in PostgreSQL */

    /* Locks the grid, as PostgreSQL's FOR NO KEY UPDATE: a grid_delete
     * committing meanwhile conflicts instead of orphaning the node. */
    int rc = mgx_lock_row(c, "grids", n->grid_id, "node grid");
    if (rc != 0)
        return rc;
    if (n->node_id != NULL) {
        rc = node_exists(c, NULL, "node_id", n->node_id);
        if (rc == 0) {
            k->field = "node_id";
            return CP_ECONFLICT;
        }
        if (rc != CP_ENOTFOUND)
            return rc;
    }
    if (n->token_hash != NULL) {
        rc = node_exists(c, NULL, "token_hash", n->token_hash);
        if (rc == 0) {
            k->field = "token";
            return CP_ECONFLICT;
        }
        if (rc != CP_ENOTFOUND)
            return rc;
    }
    int number = 0;
    rc = free_number(c, n->grid_id, &number);
    if (rc != 0)
        return rc;
    if (number == 0) {
        /* Not CP_EAGAIN, which mg_tx would retry: mapped by the caller. */
        k->full = true;
        return CP_ECONFLICT;
    }
    rc = node_exists(c, n->grid_id, "name", n->name);
    if (rc != 0 && rc != CP_ENOTFOUND)
        return rc;
    bool renamed = rc == 0;
    if (renamed && !k->rename_on_clash) {
        k->field = "name";
        return CP_ECONFLICT;
    }
    char *name =
        renamed ? cp_asprintf("%s-%d", n->name, number) : cp_strdup(n->name);
    int64_t now = n->created_at ? n->created_at : cp_now_ms();

    bson_t d = BSON_INITIALIZER;
    mgb_id(&d, "_id", n->id);
    mgb_id(&d, "grid_id", n->grid_id);
    mgb_str(&d, "node_id", n->node_id);
    mgb_str(&d, "name", name);
    mgb_i64(&d, "node_number", number);
    mgb_str(&d, "token_hash", n->token_hash);
    mgb_str(&d, "token_sealed", n->token_sealed);
    mgb_json(&d, "labels", n->labels, "[]");
    mgb_json(&d, "info", n->info, "{}");
    mgb_json(&d, "stats", NULL, NULL);
    mgb_str(&d, "availability", n->availability ? n->availability : "active");
    mgb_str(&d, "agent_version", n->agent_version);
    mgb_bool(&d, "connected", false);
    mgb_bool(&d, "updated", false);
    mgb_i64(&d, "conn_gen", 0);
    mgb_str(&d, "conn_master", NULL);
    mgb_i64(&d, "connected_at", 0);
    mgb_i64(&d, "disconnected_at", 0);
    mgb_i64(&d, "last_seen_at", 0);
    mgb_i64(&d, "close_code", 0);
    mgb_str(&d, "close_reason", NULL);
    mgb_i64(&d, "created_at", now);
    mgb_i64(&d, "updated_at", now);
    rc = mgx_insert(c, NODES, &d, "node create");
    bson_destroy(&d);
    cp_free(name);
    if (rc == CP_ECONFLICT) {
        if (clashed_on(c, "host_nodes_node_id_key")) {
            k->field = "node_id";
        } else if (clashed_on(c, "host_nodes_token_hash_key")) {
            k->field = "token";
        } else if (clashed_on(c, "host_nodes_grid_id_node_number_key")) {
            return CP_EAGAIN; /* a concurrent create took the number */
        } else if (clashed_on(c, "host_nodes_grid_id_name_key") && !renamed &&
                   k->rename_on_clash) {
            return CP_EAGAIN; /* the name was taken meanwhile: rename */
        } else {
            k->field = "name";
        }
    }
    if (rc != 0)
        return rc;
    bson_t f = BSON_INITIALIZER;
    mgb_id(&f, "_id", n->id);
    rc = mgx_find_one(c, NODES, &f, NULL, read_node, k->out, "node get");
    bson_destroy(&f);
    return rc;
}

int mgn_node_create(struct store *st, const struct store_node *n,
                    bool rename_on_clash, struct store_node *out,
                    const char **field)
{
    memset(out, 0, sizeof(*out));
    struct create_ctx k = {n, rename_on_clash, out, NULL, false};
    int rc = mg_tx(st, create_fn, &k);
    if (rc == CP_ECONFLICT && k.full)
        rc = CP_EAGAIN;
    *field = rc == CP_ECONFLICT ? k.field : NULL;
    if (rc != 0)
        store_node_release(out);
    return rc;
}

/* ==== Single-row writes ==== */

/* Runs mg_update_row on {_id: id} with {$set: set}. */
static int set_row(struct store *st, const char *id, const bson_t *set,
                   int none, const char *what)
{
    bson_t f = BSON_INITIALIZER, u = BSON_INITIALIZER;
    mgb_id(&f, "_id", id);
    BSON_APPEND_DOCUMENT(&u, "$set", set);
    int rc = mg_update_row(st, NODES, &f, &u, none, what);
    bson_destroy(&u);
    bson_destroy(&f);
    return rc;
}

int mgn_node_bind(struct store *st, const char *id, const char *node_id)
{
    /* {node_id: null} also matches a missing field (node_id IS NULL). */
    bson_t f = BSON_INITIALIZER, u = BSON_INITIALIZER, set;
    mgb_id(&f, "_id", id);
    mgb_str(&f, "node_id", NULL);
    BSON_APPEND_DOCUMENT_BEGIN(&u, "$set", &set);
    mgb_str(&set, "node_id", node_id);
    bson_append_document_end(&u, &set);
    int rc = mg_update_row(st, NODES, &f, &u, CP_ECONFLICT, "node bind");
    bson_destroy(&u);
    bson_destroy(&f);
    return rc;
}

int mgn_node_update(struct store *st, const struct store_node *n)
{
    bson_t set = BSON_INITIALIZER;
    mgb_json(&set, "labels", n->labels, "[]");
    mgb_str(&set, "availability", n->availability ? n->availability : "active");
    mgb_i64(&set, "updated_at", n->updated_at ? n->updated_at : cp_now_ms());
    int rc = set_row(st, n->id, &set, CP_ENOTFOUND, "node update");
    bson_destroy(&set);
    return rc;
}

int mgn_node_set_token(struct store *st, const char *id, const char *hash,
                       const char *sealed)
{
    bson_t set = BSON_INITIALIZER;
    mgb_str(&set, "token_hash", hash);
    mgb_str(&set, "token_sealed", sealed);
    int rc = set_row(st, id, &set, CP_ENOTFOUND, "node set token");
    bson_destroy(&set);
    return rc;
}

/* host_node_stats rows reference the node with ON DELETE CASCADE; they
 * go in the same transaction. Instances and containers keep their
 * node_id (no foreign key in PostgreSQL either). */
static int delete_fn(struct mgc *c, void *ctx)
{
    const char *id = ctx;
    bson_t f = BSON_INITIALIZER;
    mgb_id(&f, "_id", id);
    int64_t deleted = 0;
    int rc = mgx_delete(c, NODES, &f, false, &deleted, "node delete");
    bson_destroy(&f);
    if (rc != 0)
        return rc;
    if (deleted == 0)
        return CP_ENOTFOUND;
    bson_t s = BSON_INITIALIZER;
    mgb_id(&s, "node_id", id);
    rc = mgx_delete(c, STATS, &s, true, NULL, "node stats delete");
    bson_destroy(&s);
    return rc;
}

int mgn_node_delete(struct store *st, const char *id)
{
    return mg_tx(st, delete_fn, (void *)(uintptr_t)id);
}

/* ==== Connection generations ==== */

struct plug_ctx {
    const char *id;
    const char *master;
    int64_t connected_at, now;
    int64_t *gen;
};

/* One findOneAndUpdate: two masters plugging the same node at once get
 * two different generations, the later one current. */
static int plug_fn(struct mgc *c, void *ctx)
{
    struct plug_ctx *k = ctx;
    bson_t f = BSON_INITIALIZER, u = BSON_INITIALIZER, inc, set;
    mgb_id(&f, "_id", k->id);
    BSON_APPEND_DOCUMENT_BEGIN(&u, "$inc", &inc);
    mgb_i64(&inc, "conn_gen", 1);
    bson_append_document_end(&u, &inc);
    BSON_APPEND_DOCUMENT_BEGIN(&u, "$set", &set);
    mgb_bool(&set, "connected", true);
    mgb_bool(&set, "updated", false);
    mgb_str(&set, "conn_master", k->master);
    mgb_i64(&set, "connected_at", k->connected_at);
    mgb_i64(&set, "last_seen_at", k->now);
    mgb_i64(&set, "close_code", 0);
    mgb_str(&set, "close_reason", NULL);
    bson_append_document_end(&u, &set);
    int rc = mgx_find_update(c, NODES, &f, NULL, &u, false, true, read_gen,
                             k->gen, "node plug");
    bson_destroy(&u);
    bson_destroy(&f);
    return rc;
}

int mgn_node_plug(struct store *st, const char *id, const char *master,
                  int64_t connected_at, int64_t now, int64_t *gen)
{
    struct plug_ctx k = {id, master, connected_at, now, gen};
    return mg_do(st, plug_fn, &k);
}

int mgn_node_unplug(struct store *st, const char *id, int64_t gen, int64_t now,
                    int close_code, const char *reason)
{
    bson_t f = BSON_INITIALIZER, u = BSON_INITIALIZER, set;
    mgb_id(&f, "_id", id);
    mgb_i64(&f, "conn_gen", gen);
    BSON_APPEND_DOCUMENT_BEGIN(&u, "$set", &set);
    mgb_bool(&set, "connected", false);
    mgb_bool(&set, "updated", false);
    mgb_i64(&set, "disconnected_at", now);
    mgb_i64(&set, "close_code", close_code);
    mgb_str(&set, "close_reason", reason);
    mgb_str(&set, "conn_master", NULL);
    bson_append_document_end(&u, &set);
    int rc = mg_update_row(st, NODES, &f, &u, CP_ECONFLICT, "node unplug");
    bson_destroy(&u);
    bson_destroy(&f);
    return rc;
}

/* An update pipeline, so that labels are written only while the stored
 * ones are "[]" (PostgreSQL's CASE), in the same single-document write
 * as the rest. */
int mgn_node_set_info(struct store *st, const char *id, int64_t gen,
                      const json_t *info, const char *agent_version,
                      const json_t *labels)
{
    bson_t f = BSON_INITIALIZER, p = BSON_INITIALIZER, stage, set;
    mgb_id(&f, "_id", id);
    mgb_i64(&f, "conn_gen", gen);
    BSON_APPEND_DOCUMENT_BEGIN(&p, "0", &stage);
    BSON_APPEND_DOCUMENT_BEGIN(&stage, "$set", &set);
    lit_json(&set, "info", info, "{}");
    lit_str(&set, "agent_version", agent_version);
    mgb_bool(&set, "updated", true);
    if (labels != NULL) {
        /* labels: {$cond: [{$eq: ["$labels", "[]"]}, new, "$labels"]} */
        bson_t cond, args, eq, eqargs;
        BSON_APPEND_DOCUMENT_BEGIN(&set, "labels", &cond);
        BSON_APPEND_ARRAY_BEGIN(&cond, "$cond", &args);
        BSON_APPEND_DOCUMENT_BEGIN(&args, "0", &eq);
        BSON_APPEND_ARRAY_BEGIN(&eq, "$eq", &eqargs);
        mgb_str(&eqargs, "0", "$labels");
        lit_str(&eqargs, "1", "[]");
        bson_append_array_end(&eq, &eqargs);
        bson_append_document_end(&args, &eq);
        lit_json(&args, "1", labels, NULL);
        mgb_str(&args, "2", "$labels");
        bson_append_array_end(&cond, &args);
        bson_append_document_end(&set, &cond);
    }
    mgb_i64(&set, "updated_at", cp_now_ms());
    bson_append_document_end(&stage, &set);
    bson_append_document_end(&p, &stage);
    int rc = mg_update_row(st, NODES, &f, &p, CP_ECONFLICT, "node set info");
    bson_destroy(&p);
    bson_destroy(&f);
    return rc;
}

/* ==== Stats ==== */

/* Writes one node's stats inside the caller's transaction, as history
 * row number seq; CP_ENOTFOUND without the node. The node's write also
 * bumps lock_seq (see mgx_lock_row): stats equal to the stored ones would
 * otherwise be a no-op update, which conflicts with nothing, and a
 * node_delete committed after this transaction's snapshot would leave the
 * history row orphaned (PostgreSQL's foreign key refuses it). */
static int add_stats(struct mgc *c, const char *id, const json_t *stats,
                     int64_t at, int keep, int64_t seq)
{
    bson_t f = BSON_INITIALIZER, u = BSON_INITIALIZER, set, inc;
    mgb_id(&f, "_id", id);
    BSON_APPEND_DOCUMENT_BEGIN(&u, "$set", &set);
    mgb_json(&set, "stats", stats, NULL);
    bson_append_document_end(&u, &set);
    BSON_APPEND_DOCUMENT_BEGIN(&u, "$inc", &inc);
    mgb_i64(&inc, "lock_seq", 1);
    bson_append_document_end(&u, &inc);
    int64_t matched = 0;
    int rc = mgx_update(c, NODES, &f, &u, false, false, &matched, NULL,
                        "node stats");
    bson_destroy(&u);
    bson_destroy(&f);
    if (rc == 0 && matched == 0)
        rc = CP_ENOTFOUND;
    if (rc != 0)
        return rc;

    bson_oid_t oid;
    bson_oid_init(&oid, NULL);
    bson_t d = BSON_INITIALIZER;
    BSON_APPEND_OID(&d, "_id", &oid);
    mgb_i64(&d, "seq", seq);
    mgb_id(&d, "node_id", id);
    mgb_json(&d, "stats", stats, NULL);
    mgb_i64(&d, "created_at", at);
    rc = mgx_insert(c, STATS, &d, "node stats history");
    bson_destroy(&d);
    if (rc != 0)
        return rc;

    /* Bounded history: keep the newest rows of this node only. The
     * (keep+1)-th newest row, if any, and every older one go. */
    bson_t h = BSON_INITIALIZER, opts = BSON_INITIALIZER, doc;
    mgb_id(&h, "node_id", id);
    BSON_APPEND_DOCUMENT_BEGIN(&opts, "sort", &doc);
    mgb_i64(&doc, "seq", -1);
    bson_append_document_end(&opts, &doc);
    BSON_APPEND_DOCUMENT_BEGIN(&opts, "projection", &doc);
    mgb_i64(&doc, "seq", 1);
    bson_append_document_end(&opts, &doc);
    mgb_i64(&opts, "skip", keep > 0 ? keep : 1);
    int64_t cut = 0;
    rc = mgx_find_one(c, STATS, &h, &opts, read_seq, &cut, "node stats trim");
    bson_destroy(&opts);
    if (rc == 0) {
        bson_t lte;
        BSON_APPEND_DOCUMENT_BEGIN(&h, "seq", &lte);
        mgb_i64(&lte, "$lte", cut);
        bson_append_document_end(&h, &lte);
        rc = mgx_delete(c, STATS, &h, true, NULL, "node stats trim");
    } else if (rc == CP_ENOTFOUND) {
        rc = 0; /* no more than keep rows */
    }
    bson_destroy(&h);
    return rc;
}

struct stats_ctx {
    const struct store_node_stats *v;
    size_t n;
    int keep;
    bool skip_missing;
};

/* The history numbers of the batch are reserved at once: entry i gets
 * first + i (those of skipped entries stay unused). */
static int stats_fn(struct mgc *c, void *ctx)
{
    struct stats_ctx *k = ctx;
    int64_t first = 0;
    int rc = mgx_next_seq(c, STATS, (int64_t)k->n, &first);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < k->n; i++) {
        rc = add_stats(c, k->v[i].id, k->v[i].stats, k->v[i].at, k->keep,
                       first + (int64_t)i);
        if (rc == CP_ENOTFOUND && k->skip_missing)
            continue; /* the node was removed meanwhile */
        if (rc != 0)
            return rc;
    }
    return 0;
}

int mgn_node_add_stats(struct store *st, const char *id, const json_t *stats,
                       int64_t at, int keep)
{
    struct store_node_stats one = {id, stats, at};
    struct stats_ctx k = {&one, 1, keep, false};
    return mg_tx(st, stats_fn, &k);
}

int mgn_nodes_add_stats(struct store *st, const struct store_node_stats *v,
                        size_t n, int keep)
{
    struct stats_ctx k = {v, n, keep, true};
    return n == 0 ? 0 : mg_tx(st, stats_fn, &k);
}

/* ==== Last seen ==== */

struct node_gen {
    char id[STORE_ID_LEN + 1];
    int64_t conn_gen;
};

static int read_node_gen(const bson_t *d, void *item)
{
    struct node_gen *g = item;
    mgr_id(d, g->id);
    g->conn_gen = mgr_i64(d, "conn_gen");
    return 0;
}

struct seen_ctx {
    struct store_node_seen *v;
    size_t n;
};

/* Two statements for any n, in one transaction: read the generations of
 * the nodes named (an entry is ok when its node is on its generation),
 * then one updateMany writing every ok entry's last_seen_at through a
 * $switch on _id. The read and the write see the same snapshot, and a
 * plug committed in between makes the write conflict and the whole
 * transaction run again: the write always changes each node it matches
 * (lock_seq + 1, as mgx_lock_row), since an update that leaves a document
 * as it was (last_seen_at already at) writes nothing and conflicts with
 * nothing, and would report ok for a superseded generation. Branches are
 * listed from the last entry back, so that of two ok entries for one
 * node the later wins, as with PostgreSQL's updates in order. */
static int seen_fn(struct mgc *c, void *ctx)
{
    struct seen_ctx *k = ctx;
    bson_t f = BSON_INITIALIZER, opts = BSON_INITIALIZER, in, ids, doc;
    char key[16];
    const char *kp = NULL;
    BSON_APPEND_DOCUMENT_BEGIN(&f, "_id", &in);
    BSON_APPEND_ARRAY_BEGIN(&in, "$in", &ids);
    for (size_t i = 0; i < k->n; i++) {
        bson_uint32_to_string((uint32_t)i, &kp, key, sizeof(key));
        mgb_id(&ids, kp, k->v[i].id);
    }
    bson_append_array_end(&in, &ids);
    bson_append_document_end(&f, &in);
    BSON_APPEND_DOCUMENT_BEGIN(&opts, "projection", &doc);
    mgb_i64(&doc, "conn_gen", 1);
    bson_append_document_end(&opts, &doc);
    /* All in the first batch: no getMore round trips. */
    BSON_APPEND_INT32(&opts, "batchSize", (int32_t)k->n);
    void *items = NULL;
    size_t len = 0;
    int rc =
        mgx_find_all(c, NODES, &f, &opts, read_node_gen,
                     sizeof(struct node_gen), NULL, &items, &len, "nodes seen");
    bson_destroy(&opts);
    bson_destroy(&f);
    if (rc != 0)
        return rc;
    const struct node_gen *gens = items;
    size_t nok = 0;
    for (size_t i = 0; i < k->n; i++) {
        k->v[i].ok = false;
        for (size_t j = 0; j < len; j++) {
            if (strcmp(gens[j].id, k->v[i].id) == 0 &&
                gens[j].conn_gen == k->v[i].conn_gen) {
                k->v[i].ok = true;
                nok++;
                break;
            }
        }
    }
    cp_free(items);
    if (nok == 0)
        return 0;

    /* filter: {$or: [{_id: id, conn_gen: gen}, ...]} over ok entries;
     * update: [{$set: {last_seen_at: {$switch: {branches: [{case: {$eq:
     * ["$_id", id]}, then: at}, ...], default: "$last_seen_at"}},
     * lock_seq: {$add: [{$ifNull: ["$lock_seq", 0]}, 1]}}}] */
    bson_t w = BSON_INITIALIZER, p = BSON_INITIALIZER, any, stage, set, sw,
           sw_doc, branches;
    BSON_APPEND_ARRAY_BEGIN(&w, "$or", &any);
    BSON_APPEND_DOCUMENT_BEGIN(&p, "0", &stage);
    BSON_APPEND_DOCUMENT_BEGIN(&stage, "$set", &set);
    BSON_APPEND_DOCUMENT_BEGIN(&set, "last_seen_at", &sw);
    BSON_APPEND_DOCUMENT_BEGIN(&sw, "$switch", &sw_doc);
    BSON_APPEND_ARRAY_BEGIN(&sw_doc, "branches", &branches);
    uint32_t at = 0;
    for (size_t i = k->n; i-- > 0;) {
        const struct store_node_seen *e = &k->v[i];
        if (!e->ok)
            continue;
        bson_uint32_to_string(at++, &kp, key, sizeof(key));
        bson_t one, br, cs, eq;
        BSON_APPEND_DOCUMENT_BEGIN(&any, kp, &one);
        mgb_id(&one, "_id", e->id);
        mgb_i64(&one, "conn_gen", e->conn_gen);
        bson_append_document_end(&any, &one);
        BSON_APPEND_DOCUMENT_BEGIN(&branches, kp, &br);
        BSON_APPEND_DOCUMENT_BEGIN(&br, "case", &cs);
        BSON_APPEND_ARRAY_BEGIN(&cs, "$eq", &eq);
        mgb_str(&eq, "0", "$_id");
        mgb_id(&eq, "1", e->id);
        bson_append_array_end(&cs, &eq);
        bson_append_document_end(&br, &cs);
        mgb_i64(&br, "then", e->at);
        bson_append_document_end(&branches, &br);
    }
    bson_append_array_end(&sw_doc, &branches);
    mgb_str(&sw_doc, "default", "$last_seen_at");
    bson_append_document_end(&sw, &sw_doc);
    bson_append_document_end(&set, &sw);
    bson_t bump, addargs, ifnull, ifargs;
    BSON_APPEND_DOCUMENT_BEGIN(&set, "lock_seq", &bump);
    BSON_APPEND_ARRAY_BEGIN(&bump, "$add", &addargs);
    BSON_APPEND_DOCUMENT_BEGIN(&addargs, "0", &ifnull);
    BSON_APPEND_ARRAY_BEGIN(&ifnull, "$ifNull", &ifargs);
    mgb_str(&ifargs, "0", "$lock_seq");
    mgb_i64(&ifargs, "1", 0);
    bson_append_array_end(&ifnull, &ifargs);
    bson_append_document_end(&addargs, &ifnull);
    mgb_i64(&addargs, "1", 1);
    bson_append_array_end(&bump, &addargs);
    bson_append_document_end(&set, &bump);
    bson_append_document_end(&stage, &set);
    bson_append_document_end(&p, &stage);
    bson_append_array_end(&w, &any);
    rc = mgx_update(c, NODES, &w, &p, true, false, NULL, NULL, "nodes seen");
    bson_destroy(&p);
    bson_destroy(&w);
    return rc;
}

int mgn_nodes_seen(struct store *st, struct store_node_seen *v, size_t n)
{
    struct seen_ctx k = {v, n};
    return n == 0 ? 0 : mg_tx(st, seen_fn, &k);
}

/* ==== Sweep ==== */

struct lease_name {
    char *name;
};

static int read_lease_name(const bson_t *d, void *item)
{
    struct lease_name *l = item;
    l->name = mgr_str(d, "_id");
    return 0;
}

static void release_lease_name(void *item)
{
    struct lease_name *l = item;
    cp_free(l->name);
    l->name = NULL;
}

/* Appends {_id: /^master:/} and expires_at: {op: t} to f. */
static void liveness_filter(bson_t *f, const char *op, int64_t t)
{
    bson_t cmp;
    BSON_APPEND_REGEX(f, "_id", "^" LIVENESS_PREFIX, "");
    BSON_APPEND_DOCUMENT_BEGIN(f, "expires_at", &cmp);
    mgb_i64(&cmp, op, t);
    bson_append_document_end(f, &cmp);
}

struct sweep_ctx {
    int64_t before, now;
    const char *except_master;
    const struct store_fence *fence;
    int marked;
};

/* Four statements in one transaction: the fence, the masters alive at
 * now (their liveness leases), one updateMany marking the nodes, and the
 * cleanup of liveness leases expired for an hour. Where PostgreSQL
 * checks the liveness leases in a subquery, the update here names the
 * live masters: a connected node goes when it was not seen since
 * before, or its conn_master is null or not one of them. */
static int sweep_fn(struct mgc *c, void *ctx)
{
    struct sweep_ctx *k = ctx;
    k->marked = 0;
    int rc = mgx_fence(c, k->fence, k->now);
    if (rc == CP_ECONFLICT)
        return 0; /* not the leader: nothing happens, marked is 0 */
    if (rc != 0)
        return rc;

    bson_t lf = BSON_INITIALIZER;
    liveness_filter(&lf, "$gt", k->now);
    void *items = NULL;
    size_t len = 0;
    rc = mgx_find_all(c, "leases", &lf, NULL, read_lease_name,
                      sizeof(struct lease_name), release_lease_name, &items,
                      &len, "nodes sweep leases");
    bson_destroy(&lf);
    if (rc != 0)
        return rc;
    struct lease_name *live = items;

    /* {connected: true, $or: [{last_seen_at: {$lt: before}},
     *  {conn_master: null}, {conn_master: {$nin: [live masters]}}],
     *  conn_master: {$ne: except_master}}; $ne also matches null, as
     * "conn_master IS NULL OR conn_master<>except" does. */
    bson_t f = BSON_INITIALIZER, any, clause, cmp, nin;
    char key[16];
    const char *kp = NULL;
    mgb_bool(&f, "connected", true);
    BSON_APPEND_ARRAY_BEGIN(&f, "$or", &any);
    BSON_APPEND_DOCUMENT_BEGIN(&any, "0", &clause);
    BSON_APPEND_DOCUMENT_BEGIN(&clause, "last_seen_at", &cmp);
    mgb_i64(&cmp, "$lt", k->before);
    bson_append_document_end(&clause, &cmp);
    bson_append_document_end(&any, &clause);
    BSON_APPEND_DOCUMENT_BEGIN(&any, "1", &clause);
    mgb_str(&clause, "conn_master", NULL);
    bson_append_document_end(&any, &clause);
    BSON_APPEND_DOCUMENT_BEGIN(&any, "2", &clause);
    BSON_APPEND_DOCUMENT_BEGIN(&clause, "conn_master", &cmp);
    BSON_APPEND_ARRAY_BEGIN(&cmp, "$nin", &nin);
    uint32_t nlive = 0;
    size_t plen = strlen(LIVENESS_PREFIX);
    for (size_t i = 0; i < len; i++) {
        if (live[i].name == NULL ||
            strncmp(live[i].name, LIVENESS_PREFIX, plen) != 0)
            continue;
        bson_uint32_to_string(nlive++, &kp, key, sizeof(key));
        mgb_str(&nin, kp, live[i].name + plen);
    }
    bson_append_array_end(&cmp, &nin);
    bson_append_document_end(&clause, &cmp);
    bson_append_document_end(&any, &clause);
    bson_append_array_end(&f, &any);
    if (k->except_master != NULL) {
        BSON_APPEND_DOCUMENT_BEGIN(&f, "conn_master", &cmp);
        mgb_str(&cmp, "$ne", k->except_master);
        bson_append_document_end(&f, &cmp);
    }
    for (size_t i = 0; i < len; i++)
        release_lease_name(&live[i]);
    cp_free(items);

    /* [{$set: {connected: false, updated: false, disconnected_at: now,
     *  close_code: 4030, close_reason: {$cond: [{$lt: ["$last_seen_at",
     *  before]}, "not seen ...", "its master stopped"]},
     *  conn_master: null}}] */
    bson_t p = BSON_INITIALIZER, stage, set, cond, args, lt, ltargs;
    BSON_APPEND_DOCUMENT_BEGIN(&p, "0", &stage);
    BSON_APPEND_DOCUMENT_BEGIN(&stage, "$set", &set);
    mgb_bool(&set, "connected", false);
    mgb_bool(&set, "updated", false);
    mgb_i64(&set, "disconnected_at", k->now);
    mgb_i64(&set, "close_code", 4030);
    BSON_APPEND_DOCUMENT_BEGIN(&set, "close_reason", &cond);
    BSON_APPEND_ARRAY_BEGIN(&cond, "$cond", &args);
    BSON_APPEND_DOCUMENT_BEGIN(&args, "0", &lt);
    BSON_APPEND_ARRAY_BEGIN(&lt, "$lt", &ltargs);
    mgb_str(&ltargs, "0", "$last_seen_at");
    mgb_i64(&ltargs, "1", k->before);
    bson_append_array_end(&lt, &ltargs);
    bson_append_document_end(&args, &lt);
    mgb_str(&args, "1", "not seen (stale connection)");
    mgb_str(&args, "2", "its master stopped");
    bson_append_array_end(&cond, &args);
    bson_append_document_end(&set, &cond);
    mgb_str(&set, "conn_master", NULL);
    bson_append_document_end(&stage, &set);
    bson_append_document_end(&p, &stage);
    int64_t matched = 0;
    rc = mgx_update(c, NODES, &f, &p, true, false, &matched, NULL,
                    "nodes sweep");
    bson_destroy(&p);
    bson_destroy(&f);
    if (rc != 0)
        return rc;
    k->marked = (int)matched;

    bson_t old = BSON_INITIALIZER;
    liveness_filter(&old, "$lt", k->now - 3600 * 1000);
    rc = mgx_delete(c, "leases", &old, true, NULL, "liveness leases cleanup");
    bson_destroy(&old);
    return rc;
}

int mgn_nodes_sweep(struct store *st, int64_t before, int64_t now,
                    const char *except_master, const struct store_fence *fence,
                    int *marked)
{
    struct sweep_ctx k = {before, now, except_master, fence, 0};
    *marked = 0;
    int rc = mg_tx(st, sweep_fn, &k);
    if (rc == 0)
        *marked = k.marked;
    return rc;
}
