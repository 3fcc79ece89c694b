/* The MongoDB backend's schema: the collections and indexes that mirror
 * the PostgreSQL tables after its migration 7 (store_pg_schema.c), so a
 * duplicate key names the same constraint pgx_conflict would.
 *
 * Translation rules: every collection is created up front (a transaction
 * cannot always create one); each UNIQUE constraint (and each primary key
 * not on the row id) is a unique index with the constraint's name; a
 * unique column that may be NULL gets a partial index over strings only,
 * so that many rows may leave it null, as in SQL; each CREATE INDEX is an
 * index of the same name and keys; rows keyed by a sequence have a unique
 * index on "seq" named like the table's primary key.
 *
 * Masters starting together create them once: mg_schema_apply holds the
 * lease MG_MIGRATE_LEASE while it works; the others wait for it and then
 * find the version recorded in meta. Every step is idempotent, so a
 * master that dies half way leaves nothing the next one cannot redo.
 *
 * Adding an index or a collection: add its row below and raise
 * MG_SCHEMA_VERSION with the other backends' next migration, or, for an
 * index alone, MG_INDEX_VERSION: the work is skipped only when meta
 * records both versions, so a database already at MG_SCHEMA_VERSION
 * still gets the new index (createIndexes leaves existing ones alone).
 * SPDX-License-Identifier: Apache-2.0 */
#include "store_mongo_int.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/log.h"
#include "../common/util.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define LEASE_TTL_MS 60000
#define LEASE_POLL_MS 250
/* Longest wait for another master's schema work: past its lease's expiry,
 * so a dead holder's lease is taken over before we give up. */
#define LEASE_WAIT_MS (2 * LEASE_TTL_MS)
#define CODE_NAMESPACE_EXISTS 48
/* The version of the indexes[] table below, recorded in meta beside the
 * schema version ("indexes"); raise it when a row is added or changed
 * without a new MG_SCHEMA_VERSION. */
#define MG_INDEX_VERSION 1

static const char *const collections[] = {
    "users",
    "access_tokens",
    "grids",
    "grid_users",
    "stacks",
    "networks",
    "host_nodes",
    "host_node_stats",
    "grid_services",
    "grid_service_instances",
    "grid_service_deploys",
    "containers",
    "container_logs",
    "event_logs",
    "grid_secrets",
    "stack_revisions",
    "stack_deploys",
    "registries",
    "audit_logs",
    "config",
    "kv",
    "leases",
    "counters",
    "meta",
    "feed",
};

#define MAX_KEYS 3

struct mg_index {
    const char *coll;
    const char *name;
    const char *keys[MAX_KEYS]; /* ascending; unused slots NULL */
    bool unique;
    /* Unique over the documents where this field is a string only (a
     * nullable UNIQUE column); NULL: over every document. */
    const char *strings_only;
};

static const struct mg_index indexes[] = {
    /* users, access_tokens (1) */
    {"users", "users_email_key", {"email"}, true, NULL},
    {"access_tokens", "access_tokens_token_hash", {"token_hash"}, false, NULL},
    {"access_tokens",
     "access_tokens_refresh_hash",
     {"refresh_hash"},
     false,
     NULL},
    {"access_tokens", "access_tokens_user_id", {"user_id"}, false, NULL},
    /* grids, grid_users, networks (1) */
    {"grids", "grids_name_key", {"name"}, true, NULL},
    {"grids", "grids_token_hash_key", {"token_hash"}, true, NULL},
    {"grid_users", "grid_users_pkey", {"grid_id", "user_id"}, true, NULL},
    {"grid_users", "grid_users_user_id", {"user_id"}, false, NULL},
    {"networks", "networks_grid_id_name_key", {"grid_id", "name"}, true, NULL},
    /* stacks (1, 6) */
    {"stacks", "stacks_grid_id_name_key", {"grid_id", "name"}, true, NULL},
    {"stacks", "stacks_parent", {"grid_id", "parent_name"}, false, NULL},
    /* host_nodes, host_node_stats (2) */
    {"host_nodes", "host_nodes_node_id_key", {"node_id"}, true, "node_id"},
    {"host_nodes",
     "host_nodes_token_hash_key",
     {"token_hash"},
     true,
     "token_hash"},
    {"host_nodes",
     "host_nodes_grid_id_name_key",
     {"grid_id", "name"},
     true,
     NULL},
    {"host_nodes",
     "host_nodes_grid_id_node_number_key",
     {"grid_id", "node_number"},
     true,
     NULL},
    {"host_nodes", "host_nodes_grid_id", {"grid_id"}, false, NULL},
    {"host_node_stats", "host_node_stats_pkey", {"seq"}, true, NULL},
    {"host_node_stats",
     "host_node_stats_node",
     {"node_id", "seq"},
     false,
     NULL},
    /* grid_services, instances, deploys, containers, logs, events (3) */
    {"grid_services",
     "grid_services_stack_id_name_key",
     {"stack_id", "name"},
     true,
     NULL},
    {"grid_services", "grid_services_grid_id", {"grid_id"}, false, NULL},
    {"grid_service_instances",
     "grid_service_instances_number_key",
     {"service_id", "instance_number"},
     true,
     NULL},
    {"grid_service_instances",
     "grid_service_instances_node",
     {"node_id"},
     false,
     NULL},
    {"grid_service_deploys",
     "grid_service_deploys_service",
     {"service_id", "created_at"},
     false,
     NULL},
    {"grid_service_deploys",
     "grid_service_deploys_state",
     {"state", "created_at"},
     false,
     NULL},
    {"grid_service_deploys",
     "grid_service_deploys_stack_deploy",
     {"stack_deploy_id"},
     false,
     NULL},
    {"containers", "containers_container_id_key", {"container_id"}, true, NULL},
    {"containers", "containers_grid_name", {"grid_id", "name"}, false, NULL},
    {"containers", "containers_node", {"node_id"}, false, NULL},
    {"containers", "containers_service", {"service_id"}, false, NULL},
    {"container_logs", "container_logs_pkey", {"seq"}, true, NULL},
    {"container_logs", "container_logs_grid", {"grid_id", "seq"}, false, NULL},
    {"container_logs",
     "container_logs_service",
     {"service_id", "seq"},
     false,
     NULL},
    {"container_logs", "container_logs_name", {"name", "seq"}, false, NULL},
    {"event_logs", "event_logs_pkey", {"seq"}, true, NULL},
    {"event_logs", "event_logs_grid", {"grid_id", "seq"}, false, NULL},
    {"event_logs", "event_logs_stack", {"stack_id", "seq"}, false, NULL},
    {"event_logs", "event_logs_service", {"service_id", "seq"}, false, NULL},
    /* grid_secrets (5) */
    {"grid_secrets",
     "grid_secrets_grid_id_name_key",
     {"grid_id", "name"},
     true,
     NULL},
    /* stack_revisions, stack_deploys (6) */
    {"stack_revisions",
     "stack_revisions_stack_id_revision_key",
     {"stack_id", "revision"},
     true,
     NULL},
    {"stack_deploys",
     "stack_deploys_stack",
     {"stack_id", "created_at"},
     false,
     NULL},
    {"stack_deploys",
     "stack_deploys_state",
     {"state", "created_at"},
     false,
     NULL},
    /* registries, audit_logs (7) */
    {"registries",
     "registries_grid_id_name_key",
     {"grid_id", "name"},
     true,
     NULL},
    {"audit_logs", "audit_logs_pkey", {"seq"}, true, NULL},
    {"audit_logs", "audit_logs_grid", {"grid_id", "seq"}, false, NULL},
};

/* ==== Commands ==== */

/* Runs a command on the store's database; ok_code (0: none) is a server
 * error code that counts as success. Failures are logged once. */
static int run_command(struct mgc *c, const bson_t *cmd, int32_t ok_code,
                       const char *what, char *err, size_t errlen)
{
    mongoc_database_t *db = mongoc_client_get_database(c->client, c->s->db);
    bson_t reply = BSON_INITIALIZER;
    bson_error_t e;
    int rc = 0;
    if (!mongoc_database_write_command_with_opts(db, cmd, NULL, &reply, &e) &&
        !(ok_code != 0 && e.code == (uint32_t)ok_code)) {
        rc = mg_error_code(&e, &reply, NULL, 0);
        if (rc == CP_ECONFLICT || rc == CP_EAGAIN)
            rc = CP_EIO; /* neither can be right for DDL */
        cp_error("store: %s: %s", what, e.message);
        snprintf(err, errlen, "MongoDB store: %s failed: %s", what, e.message);
    }
    bson_destroy(&reply);
    mongoc_database_destroy(db);
    return rc;
}

static int create_collection(struct mgc *c, const char *name, char *err,
                             size_t errlen)
{
    bson_t cmd = BSON_INITIALIZER;
    mgb_str(&cmd, "create", name);
    char what[96];
    snprintf(what, sizeof(what), "create collection %s", name);
    int rc = run_command(c, &cmd, CODE_NAMESPACE_EXISTS, what, err, errlen);
    bson_destroy(&cmd);
    return rc;
}

static void append_index(bson_t *arr, const char *key,
                         const struct mg_index *ix)
{
    bson_t spec, keys;
    bson_append_document_begin(arr, key, -1, &spec);
    bson_append_document_begin(&spec, "key", -1, &keys);
    for (size_t k = 0; k < MAX_KEYS && ix->keys[k] != NULL; k++)
        bson_append_int32(&keys, ix->keys[k], -1, 1);
    bson_append_document_end(&spec, &keys);
    mgb_str(&spec, "name", ix->name);
    if (ix->unique)
        mgb_bool(&spec, "unique", true);
    if (ix->strings_only != NULL) {
        bson_t pfe, type;
        bson_append_document_begin(&spec, "partialFilterExpression", -1, &pfe);
        bson_append_document_begin(&pfe, ix->strings_only, -1, &type);
        mgb_str(&type, "$type", "string");
        bson_append_document_end(&pfe, &type);
        bson_append_document_end(&spec, &pfe);
    }
    bson_append_document_end(arr, &spec);
}

/* One createIndexes per collection, with all of its indexes; an index
 * that exists with the same name and keys is left alone by the server. */
static int create_indexes(struct mgc *c, const char *coll, char *err,
                          size_t errlen)
{
    bson_t cmd = BSON_INITIALIZER, arr;
    mgb_str(&cmd, "createIndexes", coll);
    bson_append_array_begin(&cmd, "indexes", -1, &arr);
    int n = 0;
    for (size_t i = 0; i < CP_ARRAY_LEN(indexes); i++) {
        if (strcmp(indexes[i].coll, coll) != 0)
            continue;
        char key[16];
        snprintf(key, sizeof(key), "%d", n++);
        append_index(&arr, key, &indexes[i]);
    }
    if (strcmp(coll, "feed") == 0) {
        /* Feed documents expire on their own: "at" is a BSON date. */
        bson_t spec, keys;
        char key[16];
        snprintf(key, sizeof(key), "%d", n++);
        bson_append_document_begin(&arr, key, -1, &spec);
        bson_append_document_begin(&spec, "key", -1, &keys);
        bson_append_int32(&keys, "at", -1, 1);
        bson_append_document_end(&spec, &keys);
        mgb_str(&spec, "name", "feed_at");
        bson_append_int32(&spec, "expireAfterSeconds", -1, MG_FEED_KEEP_S);
        bson_append_document_end(&arr, &spec);
    }
    bson_append_array_end(&cmd, &arr);
    int rc = 0;
    if (n > 0) {
        char what[96];
        snprintf(what, sizeof(what), "create indexes of %s", coll);
        rc = run_command(c, &cmd, 0, what, err, errlen);
    }
    bson_destroy(&cmd);
    return rc;
}

/* ==== Version ==== */

struct versions {
    int64_t schema;  /* "version": MG_SCHEMA_VERSION when applied */
    int64_t indexes; /* "indexes": MG_INDEX_VERSION when applied */
};

static int read_version(const bson_t *d, void *item)
{
    struct versions *v = item;
    v->schema = mgr_i64(d, "version");
    v->indexes = mgr_i64(d, "indexes");
    return 0;
}

static int versions_of(struct mgc *c, struct versions *v)
{
    bson_t filter = BSON_INITIALIZER;
    mgb_str(&filter, "_id", "schema");
    memset(v, 0, sizeof(*v));
    int rc = mgx_find_one(c, "meta", &filter, NULL, read_version, v,
                          "schema_version");
    bson_destroy(&filter);
    return rc == CP_ENOTFOUND ? 0 : rc;
}

static int version_of(struct mgc *c, int64_t *v)
{
    struct versions vs;
    int rc = versions_of(c, &vs);
    *v = vs.schema;
    return rc;
}

/* Nothing to do: the schema and the indexes of this version (or a later
 * one) were applied. */
static bool up_to_date(const struct versions *v)
{
    return v->schema >= MG_SCHEMA_VERSION && v->indexes >= MG_INDEX_VERSION;
}

static int set_version(struct mgc *c)
{
    bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set, max;
    mgb_str(&filter, "_id", "schema");
    /* $max: never lowered by an older master with other index rows. */
    bson_append_document_begin(&update, "$max", -1, &max);
    mgb_i64(&max, "version", MG_SCHEMA_VERSION);
    mgb_i64(&max, "indexes", MG_INDEX_VERSION);
    bson_append_document_end(&update, &max);
    bson_append_document_begin(&update, "$set", -1, &set);
    mgb_i64(&set, "applied_at", cp_now_ms());
    bson_append_document_end(&update, &set);
    int rc = mgx_update(c, "meta", &filter, &update, false, true, NULL, NULL,
                        "record schema version");
    bson_destroy(&update);
    bson_destroy(&filter);
    return rc;
}

static int schema_version_fn(struct mgc *c, void *ctx)
{
    return version_of(c, ctx);
}

int mg_schema_version(struct store *st, int *out)
{
    int64_t v = 0;
    int rc = mg_do(st, schema_version_fn, &v);
    *out = (int)v;
    return rc;
}

/* ==== The migration lease ==== */

/* Takes or renews MG_MIGRATE_LEASE for holder: the filter matches the
 * lease when it is ours or expired; when it is another's and live,
 * nothing matches and the upsert's insert clashes on _id (CP_ECONFLICT). */
static int lease_take(struct mgc *c, const char *holder)
{
    int64_t now = cp_now_ms();
    bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, ors, alt, cond,
           set;
    mgb_str(&filter, "_id", MG_MIGRATE_LEASE);
    bson_append_array_begin(&filter, "$or", -1, &ors);
    bson_append_document_begin(&ors, "0", -1, &alt);
    mgb_str(&alt, "holder", holder);
    bson_append_document_end(&ors, &alt);
    bson_append_document_begin(&ors, "1", -1, &alt);
    bson_append_document_begin(&alt, "expires_at", -1, &cond);
    mgb_i64(&cond, "$lte", now);
    bson_append_document_end(&alt, &cond);
    bson_append_document_end(&ors, &alt);
    bson_append_array_end(&filter, &ors);
    bson_append_document_begin(&update, "$set", -1, &set);
    mgb_str(&set, "holder", holder);
    mgb_i64(&set, "expires_at", now + LEASE_TTL_MS);
    bson_append_document_end(&update, &set);
    int rc = mgx_find_update(c, "leases", &filter, NULL, &update, true, false,
                             NULL, NULL, "schema lease");
    bson_destroy(&update);
    bson_destroy(&filter);
    return rc;
}

static void lease_drop(struct mgc *c, const char *holder)
{
    bson_t filter = BSON_INITIALIZER;
    mgb_str(&filter, "_id", MG_MIGRATE_LEASE);
    mgb_str(&filter, "holder", holder);
    mgx_delete(c, "leases", &filter, false, NULL, "schema lease release");
    bson_destroy(&filter);
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ==== Apply ==== */

static int apply(struct mgc *c, char *err, size_t errlen)
{
    for (size_t i = 0; i < CP_ARRAY_LEN(collections); i++) {
        int rc = create_collection(c, collections[i], err, errlen);
        if (rc != 0)
            return rc;
    }
    for (size_t i = 0; i < CP_ARRAY_LEN(collections); i++) {
        int rc = create_indexes(c, collections[i], err, errlen);
        if (rc != 0)
            return rc;
    }
    int rc = set_version(c);
    if (rc != 0)
        snprintf(err, errlen,
                 "MongoDB store: cannot record the schema version");
    return rc;
}

int mg_schema_apply(struct mg_store *s, char *err, size_t errlen)
{
    struct mgc c;
    mg_get(s, &c);
    char holder[40] = "schema-";
    cp_random_hex(holder + strlen(holder), 8);
    struct versions v;
    int64_t deadline = cp_mono_ms() + LEASE_WAIT_MS;
    bool held = false;
    int rc;
    for (;;) {
        rc = versions_of(&c, &v);
        if (rc != 0) {
            snprintf(err, errlen,
                     "MongoDB store: cannot read the schema version");
            goto out;
        }
        if (up_to_date(&v))
            goto out; /* done, by us before or by another master */
        rc = lease_take(&c, holder);
        if (rc == 0) {
            held = true;
            break;
        }
        if (rc != CP_ECONFLICT) {
            snprintf(err, errlen,
                     "MongoDB store: cannot take the schema lease");
            goto out;
        }
        if (cp_mono_ms() >= deadline) {
            snprintf(err, errlen,
                     "MongoDB store: another master held the schema lease "
                     "'%s' for too long",
                     MG_MIGRATE_LEASE);
            rc = CP_ETIMEDOUT;
            goto out;
        }
        cp_debug("store: waiting for another master's schema work");
        sleep_ms(LEASE_POLL_MS);
    }
    /* Read again under the lease: the holder before us may have
     * finished between our read and our take. */
    rc = versions_of(&c, &v);
    if (rc != 0) {
        snprintf(err, errlen, "MongoDB store: cannot read the schema version");
        goto out;
    }
    if (!up_to_date(&v)) {
        rc = apply(&c, err, errlen);
        if (rc == 0)
            cp_info("store: MongoDB schema version %d applied",
                    MG_SCHEMA_VERSION);
    }
out:
    if (held)
        lease_drop(&c, holder);
    mg_put(&c);
    return rc;
}
