/* Internals shared by the MongoDB backend's files (store_mongo*.c): the
 * client pool, transactions, the document helpers, the schema (indexes)
 * and the change feed. Nothing outside store_mongo*.c includes this.
 *
 * The data model mirrors the PostgreSQL backend (store_pg_schema.c) so
 * that one reading of either explains both:
 * - a collection per table, named like the table (users, access_tokens,
 *   grids, grid_users, stacks, networks, host_nodes, host_node_stats,
 *   grid_services, grid_service_instances, grid_service_deploys,
 *   containers, container_logs, event_logs, grid_secrets,
 *   stack_revisions, stack_deploys, registries, audit_logs, config, kv,
 *   leases) plus "counters" (sequence numbers), "meta" (the schema
 *   version) and "feed" (the change feed);
 * - a field per column, named like the column; the row id (24 hex chars)
 *   is the document's _id, and there is no separate "id" field; rows
 *   keyed by a name (config, kv, leases: key / name) use it as _id; rows
 *   keyed by a sequence (container_logs, event_logs, audit_logs,
 *   host_node_stats) carry "seq" (from counters, store-wide increasing)
 *   and an ObjectId _id;
 * - JSON columns are stored as JSON text (strings), exactly what jansson
 *   wrote, so every backend returns the same documents byte for byte;
 *   the values queries need are stored beside them as plain fields (a
 *   service's "secret_names": the secret names its spec uses);
 * - SQL NULL is BSON null (absent fields read the same); an empty id
 *   ("") is stored as null; booleans are BSON booleans; times are int64
 *   milliseconds like everywhere else in the store;
 * - each unique constraint is a unique index with the PostgreSQL
 *   constraint's name (users_email_key, grids_name_key, ...), so a
 *   duplicate key error names the clash the same way pgx_conflict does
 *   (mgc.conflict);
 * - ON DELETE CASCADE is done by hand, inside the same transaction as
 *   the delete (deleteMany on the children).
 *
 * Every operation runs either as single-document writes (atomic by
 * themselves) or inside mg_tx: a session transaction with majority read
 * and write concerns, retried whole on TransientTransactionError and
 * UnknownTransactionCommitResult (libmongoc's with_transaction), so the
 * body must be safe to run again. Transactions need a replica set
 * (MongoDB 4.4+); open refuses a standalone server with a clear error.
 *
 * Adding an operation: write it in the store_mongo_<area>.c of its area
 * with the helpers below, declare it here, and add it to the ops table
 * at the end of store_mongo.c.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef CP_STORE_MONGO_INT_H
#define CP_STORE_MONGO_INT_H

#include <jansson.h>
#include <pthread.h>
#include <mongoc/mongoc.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

#define MG_SCHEMA_VERSION 7 /* the SQLite and PostgreSQL version it matches */
#define MG_MAX_SUBSCRIBERS 64
#define MG_FEED_KEEP_S 60 /* TTL of feed documents */
#define MG_DEFAULT_DB "kontena_master"
/* Lease held around the index creation when several masters start at
 * once (in the "leases" collection, like the leader lease). */
#define MG_MIGRATE_LEASE "schema-migrate"

/* ==== Types ==== */

struct mg_subscriber {
    int id; /* 0 = free slot */
    store_feed_cb *cb;
    void *ctx;
};

struct mg_store {
    struct store base; /* must be first */
    mongoc_client_pool_t *pool;
    mongoc_uri_t *uri;
    char *db; /* database name: the URI's, or MG_DEFAULT_DB */

    /* Change feed: subscribers, and the change stream thread (started by
     * the first subscribe). */
    pthread_mutex_t feed_mu;
    pthread_cond_t feed_cv;
    struct mg_subscriber subs[MG_MAX_SUBSCRIBERS];
    int next_sub_id;
    bool watcher_started;
    bool watching; /* the change stream is open */
    bool stopping;
    pthread_t watcher;
};

struct mg_store *mgs(struct store *st);

/* A client taken from the pool, with the session of the transaction
 * running on it (NULL outside mg_tx). Every mgx_* call passes the
 * session, so the same code runs in and out of a transaction. */
struct mgc {
    struct mg_store *s;
    mongoc_client_t *client;
    mongoc_client_session_t *session;
    char conflict[64]; /* index named by the last duplicate key error */
};

/* ==== Documents: writers (NULL strings are null) ==== */

void mgb_str(bson_t *b, const char *key, const char *v);
/* An id: "" and NULL are null. */
void mgb_id(bson_t *b, const char *key, const char *v);
void mgb_i64(bson_t *b, const char *key, int64_t v);
void mgb_bool(bson_t *b, const char *key, bool v);
/* j as JSON text (compact, keys in insertion order, as pg_dump_or and
 * SQLite store it); dflt's text when j is NULL (dflt NULL: null). */
void mgb_json(bson_t *b, const char *key, const json_t *j, const char *dflt);

/* ==== Documents: readers (absent and null read as NULL / 0 / "") ==== */

char *mgr_str(const bson_t *d, const char *key); /* new string or NULL */
void mgr_fixed(const bson_t *d, const char *key, char *out, size_t size);
/* int32, int64, double and bool all read as int64. */
int64_t mgr_i64(const bson_t *d, const char *key);
bool mgr_bool(const bson_t *d, const char *key);
bool mgr_null(const bson_t *d, const char *key); /* absent or null */
/* The field parsed as JSON text, or dflt when null or not JSON (dflt is
 * released when the field parses). */
json_t *mgr_json(const bson_t *d, const char *key, json_t *dflt);
/* The document's _id as a string (an ObjectId as its 24 hex chars). */
void mgr_id(const bson_t *d, char out[STORE_ID_LEN + 1]);

/* ==== Statements on one client (in a transaction when c->session) ====
 *
 * Each returns 0, CP_ENOTFOUND (nothing matched where something had to),
 * CP_ECONFLICT (duplicate key; c->conflict names the index), CP_EAGAIN
 * (write conflict or another transient error: mg_tx retries) or CP_EIO
 * (logged once as "store: what: message"). coll is a collection name;
 * opts (may be NULL) are extra options (sort, limit, projection, skip,
 * upsert, ...) for the driver call. */

/* Reads one document into item; returns 0 or a CP_E* code. */
typedef int mg_doc_fn(const bson_t *doc, void *item);

int mgx_insert(struct mgc *c, const char *coll, const bson_t *doc,
               const char *what);
/* Ordered insert of n documents; stops at the first error. */
int mgx_insert_many(struct mgc *c, const char *coll, const bson_t **docs,
                    size_t n, const char *what);
/* updateOne (many false) or updateMany with update (an update document
 * with $ operators, or a pipeline array); *matched (may be NULL) gets the
 * matched count, *upserted (may be NULL) whether it inserted. */
int mgx_update(struct mgc *c, const char *coll, const bson_t *filter,
               const bson_t *update, bool many, bool upsert,
               int64_t *matched, bool *upserted, const char *what);
/* deleteOne (many false) or deleteMany; *deleted may be NULL. */
int mgx_delete(struct mgc *c, const char *coll, const bson_t *filter,
               bool many, int64_t *deleted, const char *what);
/* The first document matching filter (in opts' sort order) read by rd
 * into out; CP_ENOTFOUND when none. */
int mgx_find_one(struct mgc *c, const char *coll, const bson_t *filter,
                 const bson_t *opts, mg_doc_fn *rd, void *out,
                 const char *what);
/* Every document matching filter read into a new array of items of size
 * bytes (zeroed before rd; *items NULL when none). On error the items
 * read so far are passed to release (may be NULL) and freed. */
int mgx_find_all(struct mgc *c, const char *coll, const bson_t *filter,
                 const bson_t *opts, mg_doc_fn *rd, size_t size,
                 void (*release)(void *item), void **items, size_t *len,
                 const char *what);
/* As mgx_find_all, with an aggregation pipeline (an array document). */
int mgx_aggregate(struct mgc *c, const char *coll, const bson_t *pipeline,
                  mg_doc_fn *rd, size_t size, void (*release)(void *item),
                  void **items, size_t *len, const char *what);
/* findOneAndUpdate: applies update to the first document matching filter
 * (sort may be NULL) and reads the document after the update (return_new)
 * or before it into out (rd may be NULL); CP_ENOTFOUND when nothing
 * matched and upsert is false. */
int mgx_find_update(struct mgc *c, const char *coll, const bson_t *filter,
                    const bson_t *sort, const bson_t *update, bool upsert,
                    bool return_new, mg_doc_fn *rd, void *out,
                    const char *what);
/* findOneAndDelete: deletes the first document matching filter and reads
 * it into out (rd may be NULL); CP_ENOTFOUND when none. */
int mgx_find_delete(struct mgc *c, const char *coll, const bson_t *filter,
                    mg_doc_fn *rd, void *out, const char *what);
/* Reserves n (>= 1) numbers of sequence name (in "counters"): *first is
 * the first of them; they are first .. first+n-1, above every number
 * handed out before. Inside a transaction the reservation commits or
 * aborts with it. */
int mgx_next_seq(struct mgc *c, const char *name, int64_t n, int64_t *first);

/* ==== Clients and transactions ==== */

/* Takes a client from the pool (blocks while all are in use; never NULL)
 * into *c with no session. */
void mg_get(struct mg_store *s, struct mgc *c);
void mg_put(struct mgc *c);

/* The body of an operation: statements on c; returns 0 (to commit) or a
 * CP_E* code. */
typedef int mg_fn(struct mgc *c, void *ctx);
/* Runs fn on a pooled client without a transaction. */
int mg_do(struct store *st, mg_fn *fn, void *ctx);
/* Runs fn inside a transaction (snapshot reads, majority writes) on a
 * pooled client; aborts on any error. Retries the whole transaction on
 * transient errors and write conflicts (CP_EAGAIN from fn included), up
 * to MG_TX_RETRIES times, so fn must be safe to run again (release what a
 * failed run left in its outputs). */
#define MG_TX_RETRIES 16 /* write conflicts fail at once, not wait */
int mg_tx(struct store *st, mg_fn *fn, void *ctx);

/* Fences a leader-only write inside a transaction: writes the lease
 * document (a no-op $set that still counts as a write) only while fence
 * names its holder and it has not expired at now, so a concurrent
 * takeover conflicts with this transaction. 0 when held, CP_ECONFLICT
 * when not; 0 at once when fence is NULL. */
int mgx_fence(struct mgc *c, const struct store_fence *fence, int64_t now);

/* Locks the document id of coll for the rest of the transaction, as
 * PostgreSQL's row locks and foreign keys do: writes it ($inc of its
 * "lock_seq"), so that a concurrent transaction deleting or writing it
 * conflicts with this one (and is retried after it) instead of both
 * committing, e.g. a node created in a grid being deleted. CP_ENOTFOUND
 * when it does not exist. Only inside mg_tx. */
int mgx_lock_row(struct mgc *c, const char *coll, const char *id,
                 const char *what);

/* ==== Pooled shorthands: one statement, no transaction ==== */

int mg_find_one(struct store *st, const char *coll, const bson_t *filter,
                const bson_t *opts, mg_doc_fn *rd, void *out,
                const char *what);
int mg_find_all(struct store *st, const char *coll, const bson_t *filter,
                const bson_t *opts, mg_doc_fn *rd, size_t size,
                void (*release)(void *item), void **items, size_t *len,
                const char *what);
int mg_update(struct store *st, const char *coll, const bson_t *filter,
              const bson_t *update, bool many, bool upsert, int64_t *matched,
              const char *what);
/* mg_update of one document that must exist: none when nothing matched. */
int mg_update_row(struct store *st, const char *coll, const bson_t *filter,
                  const bson_t *update, int none, const char *what);
/* (Use mg_do with mgx_insert when the clashing index matters.) */
int mg_insert(struct store *st, const char *coll, const bson_t *doc,
              const char *what);
int mg_delete(struct store *st, const char *coll, const bson_t *filter,
              bool many, int64_t *deleted, const char *what);

/* ==== Errors (pure; unit-tested) ==== */

/* Maps a driver error to a CP_E* code; fills conflict (size bytes, may
 * be NULL) with the index name of a duplicate key error ("" otherwise). */
int mg_error_code(const bson_error_t *e, const bson_t *reply, char *conflict,
                  size_t size);
/* The index name in a duplicate key message ("E11000 duplicate key error
 * collection: db.users index: users_email_key dup key: ..."), or "". */
void mg_dup_index(const char *message, char *out, size_t size);

/* ==== store_mongo_schema.c ==== */

/* Creates every collection's indexes (idempotent) and records
 * MG_SCHEMA_VERSION in meta, under MG_MIGRATE_LEASE. */
int mg_schema_apply(struct mg_store *s, char *err, size_t errlen);
int mg_schema_version(struct store *st, int *out);

/* ==== store_mongo_users.c: config, users, tokens, grids, kv, leases ==== */

int mgu_config_get(struct store *st, const char *key, char **out);
int mgu_config_set(struct store *st, const char *key, const char *value);
int mgu_config_set_if_absent(struct store *st, const char *key,
                             const char *value, bool *written);
int mgu_user_create(struct store *st, const struct store_user *u);
int mgu_user_get(struct store *st, const char *id, struct store_user *out);
int mgu_user_get_by_email(struct store *st, const char *email,
                          struct store_user *out);
int mgu_user_list(struct store *st, struct store_user_list *out);
int mgu_user_set_roles(struct store *st, const char *id, unsigned roles);
int mgu_token_create(struct store *st, const struct store_token *t);
int mgu_token_get(struct store *st, const char *id, struct store_token *out);
int mgu_token_find(struct store *st, enum store_token_kind kind,
                   const char *hash, int64_t now, struct store_token *out);
int mgu_code_take(struct store *st, const char *hash, int64_t now,
                  struct store_token *out);
int mgu_refresh_take(struct store *st, const char *refresh_hash,
                     struct store_token *out);
int mgu_token_list_by_user(struct store *st, const char *user_id,
                           struct store_token_list *out);
int mgu_token_delete(struct store *st, const char *id);
int mgu_token_touch(struct store *st, const char *id, int64_t now);
int mgu_token_confirm(struct store *st, const char *token_id,
                      const char *code_id);
int mgu_bootstrap_codes_delete(struct store *st);
int mgu_tokens_expire(struct store *st, int64_t now, int *deleted);
int mgu_grid_create(struct store *st, const struct store_grid *g,
                    const char *creator_id, const char **field);
int mgu_grid_get(struct store *st, const char *name, struct store_grid *out);
int mgu_grid_get_by_token_hash(struct store *st, const char *hash,
                               struct store_grid *out);
int mgu_grid_get_by_id(struct store *st, const char *id,
                       struct store_grid *out);
int mgu_grid_list(struct store *st, const char *member_of,
                  struct store_grid_list *out);
int mgu_grid_update(struct store *st, const struct store_grid *g);
int mgu_grid_delete(struct store *st, const char *id);
int mgu_grid_user_add(struct store *st, const char *grid_id,
                      const char *user_id);
int mgu_grid_user_remove(struct store *st, const char *grid_id,
                         const char *user_id);
int mgu_grid_users(struct store *st, const char *grid_id,
                   struct store_user_list *out);
int mgu_grid_is_member(struct store *st, const char *grid_id,
                       const char *user_id, bool *out);
int mgu_kv_get(struct store *st, const char *key, char **value,
               int64_t *version);
int mgu_kv_cas(struct store *st, const char *key, int64_t expect,
               const char *value, int64_t *new_version);
int mgu_lease_acquire(struct store *st, const char *name, const char *holder,
                      int64_t now, int64_t ttl_ms, char **holder_out,
                      int64_t *expires_out);
int mgu_lease_release(struct store *st, const char *name,
                      const char *holder);

/* ==== store_mongo_feed.c ==== */

int mgf_publish(struct store *st, const char *channel, const char *payload);
int mgf_subscribe(struct store *st, store_feed_cb *cb, void *ctx);
void mgf_unsubscribe(struct store *st, int id);
/* Stops the change stream thread (at close). */
void mgf_stop(struct mg_store *s);

/* ==== store_mongo_nodes.c ==== */

int mgn_node_get(struct store *st, const char *id, struct store_node *out);
int mgn_node_find(struct store *st, const char *grid_id, const char *key,
                  struct store_node *out);
int mgn_node_get_by_node_id(struct store *st, const char *node_id,
                            struct store_node *out);
int mgn_node_get_by_token_hash(struct store *st, const char *hash,
                               struct store_node *out);
int mgn_node_list(struct store *st, const char *grid_id,
                  struct store_node_list *out);
int mgn_node_create(struct store *st, const struct store_node *n,
                    bool rename_on_clash, struct store_node *out,
                    const char **field);
int mgn_node_bind(struct store *st, const char *id, const char *node_id);
int mgn_node_update(struct store *st, const struct store_node *n);
int mgn_node_set_token(struct store *st, const char *id, const char *hash,
                       const char *sealed);
int mgn_node_delete(struct store *st, const char *id);
int mgn_node_plug(struct store *st, const char *id, const char *master,
                  int64_t connected_at, int64_t now, int64_t *gen);
int mgn_node_unplug(struct store *st, const char *id, int64_t gen, int64_t now,
                    int close_code, const char *reason);
int mgn_node_set_info(struct store *st, const char *id, int64_t gen,
                      const json_t *info, const char *agent_version,
                      const json_t *labels);
int mgn_node_add_stats(struct store *st, const char *id, const json_t *stats,
                       int64_t at, int keep);
int mgn_nodes_add_stats(struct store *st, const struct store_node_stats *v,
                        size_t n, int keep);
int mgn_nodes_seen(struct store *st, struct store_node_seen *v, size_t n);
int mgn_nodes_sweep(struct store *st, int64_t before, int64_t now,
                    const char *except_master,
                    const struct store_fence *fence, int *marked);

/* ==== store_mongo_services.c ==== */

int mgv_service_create(struct store *st, const struct store_service *v);
int mgv_service_get(struct store *st, const char *grid_id,
                    const char *stack_name, const char *name,
                    struct store_service *out);
int mgv_service_get_by_id(struct store *st, const char *id,
                          struct store_service *out);
int mgv_service_list(struct store *st, const char *grid_id,
                     const char *stack_name, struct store_service_list *out);
int mgv_service_update(struct store *st, const struct store_service *v);
int mgv_service_delete(struct store *st, const char *id);
int mgv_instance_list(struct store *st, const char *service_id,
                      struct store_instance_list *out);
int mgv_instances_on_node(struct store *st, const char *node_id,
                          struct store_instance_list *instances,
                          struct store_service_list *services);
int mgv_node_pod_rows(struct store *st, const char *node_id,
                      const char *grid_id, struct store_pod_rows *out);
int mgv_instance_put(struct store *st, const struct store_instance *i);
int mgv_instance_put_many(struct store *st, const struct store_instance *v,
                          size_t n);
int mgv_instance_trim(struct store *st, const char *service_id, int keep);
int mgv_instance_report(struct store *st, const char *service_id,
                        int instance_number, const char *node_id,
                        const char *rev, const char *state, const char *error);
int mgv_instances_report_many(struct store *st, struct store_instance_report *v,
                              size_t n);
int mgv_instances_detach_node(struct store *st, const char *node_id,
                              int *count);

/* ==== store_mongo_deploys.c ==== */

int mgd_deploy_queue(struct store *st, const struct store_deploy *d,
                     struct store_deploy *out);
int mgd_deploy_get(struct store *st, const char *id, struct store_deploy *out);
int mgd_deploy_claim(struct store *st, const char *holder, int64_t now,
                     int64_t lease_ms, struct store_deploy *out);
int mgd_deploy_update(struct store *st, const struct store_deploy *d);
int mgd_deploy_list(struct store *st, const char *service_id, int limit,
                    struct store_deploy_list *out);
int mgd_deploys_prune(struct store *st, int keep, int *deleted);
int mgd_container_save(struct store *st, const struct store_container *k);
int mgd_container_delete(struct store *st, const char *container_id);
int mgd_containers_cleanup(struct store *st, const char *node_id,
                           const char *const *keep, size_t nkeep, int *deleted);
int mgd_containers_mark_deleted(struct store *st, const char *node_id,
                                int64_t now);
int mgd_container_list(struct store *st, const char *grid_id,
                       const char *node_id, const char *service_id,
                       struct store_container_list *out);
int mgd_container_get(struct store *st, const char *grid_id,
                      const char *node_id, const char *name,
                      struct store_container *out);
int mgd_logs_append(struct store *st, const struct store_log *v, size_t n);
int mgd_logs_read(struct store *st, const struct store_log_query *q,
                  struct store_log_list *out);
int mgd_events_append(struct store *st, const struct store_event *v, size_t n);
int mgd_events_read(struct store *st, const struct store_log_query *q,
                    struct store_event_list *out);
int mgd_history_trim(struct store *st, int64_t max_logs, int64_t max_events);

/* ==== store_mongo_stacks.c ==== */

int mgk_stack_create(struct store *st, const struct store_stack *k,
                     const struct store_stack_revision *r,
                     const struct store_service *svcs, size_t n);
int mgk_stack_get(struct store *st, const char *grid_id, const char *name,
                  struct store_stack *out, struct store_stack_revision *rev);
int mgk_stack_get_by_id(struct store *st, const char *id,
                        struct store_stack *out,
                        struct store_stack_revision *rev);
int mgk_stack_list(struct store *st, const char *grid_id,
                   struct store_stack_list *out);
int mgk_stack_revision_get(struct store *st, const char *stack_id,
                           int64_t revision, struct store_stack_revision *out);
int mgk_stack_revise(struct store *st, const char *stack_id, int64_t expect,
                     const struct store_stack_revision *r,
                     const struct store_service *svcs, size_t n);
int mgk_stack_update(struct store *st, const struct store_stack *k);
int mgk_stack_delete(struct store *st, const char *id);
int mgk_stack_deploy_queue(struct store *st, const struct store_stack_deploy *d,
                           struct store_stack_deploy *out);
int mgk_stack_deploy_get(struct store *st, const char *id,
                         struct store_stack_deploy *out);
int mgk_stack_deploy_claim(struct store *st, const char *holder, int64_t now,
                           int64_t lease_ms, struct store_stack_deploy *out);
int mgk_stack_deploy_update(struct store *st,
                            const struct store_stack_deploy *d);
int mgk_stack_deploy_list(struct store *st, const char *grid_id,
                          const char *stack_id, bool open_only, int limit,
                          struct store_stack_deploy_list *out);
int mgk_stack_deploy_services(struct store *st, const char *stack_deploy_id,
                              struct store_deploy_list *out);
int mgk_stack_deploys_prune(struct store *st, int keep, int *deleted);

/* ==== store_mongo_secrets.c ==== */

int mgs_secret_create(struct store *st, const struct store_secret *v,
                      int *bumped);
int mgs_secret_get(struct store *st, const char *grid_id, const char *name,
                   struct store_secret *out);
int mgs_secret_list(struct store *st, const char *grid_id,
                    struct store_secret_list *out);
int mgs_secret_update(struct store *st, const char *grid_id, const char *name,
                      const char *value, int64_t now, int *bumped);
int mgs_secret_delete(struct store *st, const char *grid_id, const char *name);
int mgs_secret_reseal(struct store *st, const char *id, const char *old,
                      const char *value);
int mgs_grid_token_reseal(struct store *st, const char *id, const char *old,
                          const char *value);
int mgs_registry_reseal(struct store *st, const char *id, const char *old,
                        const char *value);
int mgs_node_token_reseal(struct store *st, const char *id, const char *old,
                          const char *value);
int mgs_secrets_page(struct store *st, const char *after_id, int limit,
                     struct store_secret_list *out);

/* ==== store_mongo_audit.c ==== */

int mga_registry_create(struct store *st, const struct store_registry *r);
int mga_registry_list(struct store *st, const char *grid_id,
                      struct store_registry_list *out);
int mga_registry_get(struct store *st, const char *grid_id, const char *name,
                     struct store_registry *out);
int mga_registry_delete(struct store *st, const char *grid_id,
                        const char *name);
int mga_audit_append(struct store *st, const struct store_audit *a);
int mga_audit_list(struct store *st, const char *grid_id, int limit,
                   struct store_audit_list *out);
int mga_audit_trim(struct store *st, int64_t keep, int *deleted);

/* ==== Shared between areas ==== */

/* store_mongo_services.c: appends the fields of service v (every column
 * of grid_services but _id, plus "secret_names") to b; stack_create and
 * stack_revise (store_mongo_stacks.c) insert services with it. */
void mgv_service_fields(bson_t *b, const struct store_service *v);
/* Reads a grid_services document (stack_name is not in it: left NULL). */
int mgv_read_service(const bson_t *d, void *item);
/* The secret names a service spec uses ("secrets": [{"secret": NAME,
 * ...}]) as an array field key of b. */
void mgv_secret_names(bson_t *b, const char *key, const json_t *spec);
/* store_mongo_deploys.c: reads a grid_service_deploys document into a
 * struct store_deploy (for stack_deploy_services). */
int mgd_read_deploy(const bson_t *d, void *item);

#endif
