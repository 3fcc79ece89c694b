/* Internals shared by the SQLite backend's files: the connection pool,
 * statement cache and transaction helpers. Nothing outside
 * store_sqlite*.c includes this.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef CP_STORE_SQLITE_INT_H
#define CP_STORE_SQLITE_INT_H

#include <pthread.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stddef.h>

#include "store.h"

#define SQ_BUSY_TIMEOUT_MS 5000
#define SQ_MAX_SUBSCRIBERS 64
#define SQ_TOUCH_INTERVAL_MS 60000

/* ==== Types ==== */

struct cached_stmt {
    const char *sql; /* identity: the address of a static string */
    sqlite3_stmt *stmt;
};

struct conn {
    sqlite3 *db;
    struct cached_stmt *cache;
    size_t ncache;
    size_t cap;
    struct conn *next; /* in the free pool */
};

struct subscriber {
    int id; /* 0 = free slot */
    store_feed_cb *cb;
    void *ctx;
};

struct sq_store {
    struct store base; /* must be first */
    char *db_path;
    pthread_mutex_t pool_mu;
    struct conn *pool;
    pthread_mutex_t feed_mu;
    struct subscriber subs[SQ_MAX_SUBSCRIBERS];
    int next_sub_id;
};

struct sq_store *sq(struct store *st);

/* Maps the connection's last error to a CP_E* code, logging real
 * failures once. */
int sqlx_fail(struct conn *c, const char *what);
/* The connection's cached statement for sql (a string literal: cached by
 * address), prepared on first use; NULL (logged) on failure. */
sqlite3_stmt *sqlx_prep(struct conn *c, const char *sql);
/* Makes a cached statement ready for its next use. NULL is fine. */
void sqlx_done(sqlite3_stmt *q);
/* Steps q: 1 for a row, 0 when done, or a CP_E* code. */
int sqlx_step(struct conn *c, sqlite3_stmt *q, const char *what);
/* Steps a statement that returns no rows, then resets it. */
int sqlx_run(struct conn *c, sqlite3_stmt *q, const char *what);
void sqlx_bind_str(sqlite3_stmt *q, int i, const char *s);
/* Column i as a new string, or NULL. */
char *sqlx_col_str(sqlite3_stmt *q, int i);
/* Copies column i into a fixed buffer, truncating. */
void sqlx_col_fixed(sqlite3_stmt *q, int i, char *out, size_t size);
int sqlx_exec(struct conn *c, const char *sql, const char *what);
int sqlx_tx_begin(struct conn *c); /* BEGIN IMMEDIATE */
int sqlx_tx_commit(struct conn *c);
void sqlx_tx_rollback(struct conn *c);
/* Takes a connection from the pool (NULL, logged, on failure). */
struct conn *sqlx_conn_get(struct sq_store *s);
/* Returns it, rolling back an open transaction. */
void sqlx_conn_put(struct sq_store *s, struct conn *c);
/* Runs a write whose parameters are the n strings of args; *changes (may
 * be NULL) gets the number of rows it changed. */
int sqlx_write_args(struct store *st, const char *sql,
                    const char *const *args, int n, int *changes);
/* sqlx_write_args for a write that must change a row: returns none (e.g.
 * CP_ENOTFOUND or CP_ECONFLICT) when it changed nothing. */
int sqlx_write_row(struct store *st, const char *sql, const char *const *args,
                   int n, int none);

#define CONN_OR_EIO(s, c)                                                      \
    struct conn *c = sqlx_conn_get(s);                                              \
    if (c == NULL)                                                             \
    return CP_EIO

#define ARGS(...)                                                              \
    (const char *const[]){__VA_ARGS__},                                        \
        (int)(sizeof((const char *const[]){__VA_ARGS__}) /                     \
              sizeof(const char *))

/* Reads the current row of q into item. */
typedef void sqlx_row_fn(sqlite3_stmt *q, void *item);
/* Column i parsed as JSON, or dflt when NULL or not JSON. */
json_t *sqlx_col_json(sqlite3_stmt *q, int i, json_t *dflt);
/* j dumped as JSON text, or a copy of dflt when j is NULL (caller frees). */
char *sqlx_dump_or(const json_t *j, const char *dflt);
/* Steps q to the end, reading every row into a growing array of items of
 * size bytes; on error the items read so far are returned for release. */
int sqlx_collect(struct conn *c, sqlite3_stmt *q, const char *what,
                 sqlx_row_fn *rd, size_t size, void **items, size_t *len);
/* Runs sql with n string arguments on c and reads its first row into out:
 * 0, CP_ENOTFOUND or CP_EIO. */
int sqlx_row_in(struct conn *c, const char *sql, const char *const *args,
                int n, sqlx_row_fn *rd, void *out, const char *what);
/* sqlx_row_in on a pooled connection. */
int sqlx_row_one(struct store *st, const char *sql, const char *const *args,
                 int n, sqlx_row_fn *rd, void *out, const char *what);
/* Runs sql with n string arguments on a pooled connection and collects
 * every row. */
int sqlx_rows_all(struct store *st, const char *sql,
                  const char *const *args, int n, sqlx_row_fn *rd,
                  size_t size, void **items, size_t *len, const char *what);

/* ==== store_sqlite_nodes.c ==== */
int sqn_node_get(struct store *st, const char *id, struct store_node *out);
int sqn_node_find(struct store *st, const char *grid_id, const char *key,
                  struct store_node *out);
int sqn_node_get_by_node_id(struct store *st, const char *node_id,
                            struct store_node *out);
int sqn_node_get_by_token_hash(struct store *st, const char *hash,
                               struct store_node *out);
int sqn_node_list(struct store *st, const char *grid_id,
                  struct store_node_list *out);
int sqn_node_create(struct store *st, const struct store_node *n,
                    bool rename_on_clash, struct store_node *out,
                    const char **field);
int sqn_node_bind(struct store *st, const char *id, const char *node_id);
int sqn_node_update(struct store *st, const struct store_node *n);
int sqn_node_set_token(struct store *st, const char *id, const char *hash,
                       const char *sealed);
int sqn_node_delete(struct store *st, const char *id);
int sqn_node_plug(struct store *st, const char *id, const char *master,
                  int64_t connected_at, int64_t now, int64_t *gen);
int sqn_node_unplug(struct store *st, const char *id, int64_t gen,
                    int64_t now, int close_code, const char *reason);
int sqn_node_set_info(struct store *st, const char *id, int64_t gen,
                      const json_t *info, const char *agent_version,
                      const json_t *labels);
int sqn_node_add_stats(struct store *st, const char *id, const json_t *stats,
                       int64_t at, int keep);
int sqn_nodes_add_stats(struct store *st, const struct store_node_stats *v,
                        size_t n, int keep);
int sqn_nodes_seen(struct store *st, struct store_node_seen *v, size_t n);
int sqn_nodes_sweep(struct store *st, int64_t before, int64_t now,
                    const char *except_master,
                    const struct store_fence *fence, int *marked);

/* ==== store_sqlite_services.c ==== */
int sqs_service_create(struct store *st, const struct store_service *v);
int sqs_service_get(struct store *st, const char *grid_id,
                    const char *stack_name, const char *name,
                    struct store_service *out);
int sqs_service_get_by_id(struct store *st, const char *id,
                          struct store_service *out);
int sqs_service_list(struct store *st, const char *grid_id,
                     const char *stack_name, struct store_service_list *out);
int sqs_service_update(struct store *st, const struct store_service *v);
int sqs_service_delete(struct store *st, const char *id);
int sqs_instance_list(struct store *st, const char *service_id,
                      struct store_instance_list *out);
int sqs_instances_on_node(struct store *st, const char *node_id,
                          struct store_instance_list *instances,
                          struct store_service_list *services);
int sqs_instance_put(struct store *st, const struct store_instance *i);
int sqs_node_pod_rows(struct store *st, const char *node_id,
                      const char *grid_id, struct store_pod_rows *out);
int sqs_instance_put_many(struct store *st, const struct store_instance *v,
                          size_t n);
int sqs_instances_report_many(struct store *st, struct store_instance_report *v,
                              size_t n);
int sqs_instance_trim(struct store *st, const char *service_id, int keep);
int sqs_instance_report(struct store *st, const char *service_id,
                        int instance_number, const char *node_id,
                        const char *rev, const char *state,
                        const char *error);
int sqs_instances_detach_node(struct store *st, const char *node_id,
                              int *count);
int sqs_deploy_queue(struct store *st, const struct store_deploy *d,
                     struct store_deploy *out);
int sqs_deploy_get(struct store *st, const char *id, struct store_deploy *out);
int sqs_deploy_claim(struct store *st, const char *holder, int64_t now,
                     int64_t lease_ms, struct store_deploy *out);
int sqs_deploy_update(struct store *st, const struct store_deploy *d);
int sqs_deploy_list(struct store *st, const char *service_id, int limit,
                    struct store_deploy_list *out);
int sqs_deploys_prune(struct store *st, int keep, int *deleted);
int sqs_container_save(struct store *st, const struct store_container *k);
int sqs_container_delete(struct store *st, const char *container_id);
int sqs_containers_cleanup(struct store *st, const char *node_id,
                           const char *const *keep, size_t nkeep,
                           int *deleted);
int sqs_containers_mark_deleted(struct store *st, const char *node_id,
                                int64_t now);
int sqs_container_list(struct store *st, const char *grid_id,
                       const char *node_id, const char *service_id,
                       struct store_container_list *out);
int sqs_container_get(struct store *st, const char *grid_id,
                      const char *node_id, const char *name,
                      struct store_container *out);
int sqs_logs_append(struct store *st, const struct store_log *v, size_t n);
int sqs_logs_read(struct store *st, const struct store_log_query *q,
                  struct store_log_list *out);
int sqs_events_append(struct store *st, const struct store_event *v,
                      size_t n);
int sqs_events_read(struct store *st, const struct store_log_query *q,
                    struct store_event_list *out);
int sqs_history_trim(struct store *st, int64_t max_logs, int64_t max_events);

/* ==== store_sqlite_secrets.c ==== */
int sqv_secret_create(struct store *st, const struct store_secret *v,
                      int *bumped);
int sqv_secret_get(struct store *st, const char *grid_id, const char *name,
                   struct store_secret *out);
int sqv_secret_list(struct store *st, const char *grid_id,
                    struct store_secret_list *out);
int sqv_secret_update(struct store *st, const char *grid_id, const char *name,
                      const char *value, int64_t now, int *bumped);
int sqv_secret_delete(struct store *st, const char *grid_id, const char *name);
int sqv_secret_reseal(struct store *st, const char *id, const char *old,
                      const char *value);
int sqv_grid_token_reseal(struct store *st, const char *id, const char *old,
                          const char *value);
int sqv_registry_reseal(struct store *st, const char *id, const char *old,
                        const char *value);
int sqv_node_token_reseal(struct store *st, const char *id, const char *old,
                          const char *value);
int sqv_secrets_page(struct store *st, const char *after_id, int limit,
                     struct store_secret_list *out);
/* ==== store_sqlite_audit.c ==== */
int sqa_registry_create(struct store *st, const struct store_registry *r);
int sqa_registry_list(struct store *st, const char *grid_id,
                      struct store_registry_list *out);
int sqa_registry_get(struct store *st, const char *grid_id, const char *name,
                     struct store_registry *out);
int sqa_registry_delete(struct store *st, const char *grid_id,
                        const char *name);
int sqa_audit_append(struct store *st, const struct store_audit *a);
int sqa_audit_list(struct store *st, const char *grid_id, int limit,
                   struct store_audit_list *out);
int sqa_audit_trim(struct store *st, int64_t keep, int *deleted);

/* ==== store_sqlite_stacks.c ==== */
int sqk_stack_create(struct store *st, const struct store_stack *k,
                     const struct store_stack_revision *r,
                     const struct store_service *svcs, size_t n);
int sqk_stack_get(struct store *st, const char *grid_id, const char *name,
                  struct store_stack *out, struct store_stack_revision *rev);
int sqk_stack_get_by_id(struct store *st, const char *id,
                        struct store_stack *out,
                        struct store_stack_revision *rev);
int sqk_stack_list(struct store *st, const char *grid_id,
                   struct store_stack_list *out);
int sqk_stack_revision_get(struct store *st, const char *stack_id,
                           int64_t revision,
                           struct store_stack_revision *out);
int sqk_stack_revise(struct store *st, const char *stack_id, int64_t expect,
                     const struct store_stack_revision *r,
                     const struct store_service *svcs, size_t n);
int sqk_stack_update(struct store *st, const struct store_stack *k);
int sqk_stack_delete(struct store *st, const char *id);
int sqk_stack_deploy_queue(struct store *st,
                           const struct store_stack_deploy *d,
                           struct store_stack_deploy *out);
int sqk_stack_deploy_get(struct store *st, const char *id,
                         struct store_stack_deploy *out);
int sqk_stack_deploy_claim(struct store *st, const char *holder, int64_t now,
                           int64_t lease_ms, struct store_stack_deploy *out);
int sqk_stack_deploy_update(struct store *st,
                            const struct store_stack_deploy *d);
int sqk_stack_deploy_list(struct store *st, const char *grid_id,
                          const char *stack_id, bool open_only, int limit,
                          struct store_stack_deploy_list *out);
int sqk_stack_deploy_services(struct store *st, const char *stack_deploy_id,
                              struct store_deploy_list *out);
int sqk_stack_deploys_prune(struct store *st, int keep, int *deleted);
/* Service columns and their reader (store_sqlite_services.c), for the
 * stack deploy view: "SELECT " SQS_DEPLOY_COLS " FROM
 * grid_service_deploys ...". */
void sqs_read_deploy(sqlite3_stmt *q, void *item);
#define SQS_DEPLOY_COLS                                                        \
    "id, service_id, stack_deploy_id, state, reason, force, "                  \
    "instance_deploys, claimed_by, lease_until, created_at, queued_at, "       \
    "started_at, finished_at"

#endif
