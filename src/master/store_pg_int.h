/* Internals shared by the PostgreSQL backend's files (store_pg*.c): the
 * connection pool, the statement helpers, parameter and row helpers, the
 * migrations and the change feed. Nothing outside store_pg*.c includes
 * this.
 *
 * Adding an operation: write it in the store_pg_<area>.c of its area with
 * the helpers below (pg_write, pg_row_one, pg_rows_all, or pg_tx for
 * several statements), declare it here, and add it to the ops table at
 * the end of store_pg.c. Adding a migration: append it to pg_migrations[]
 * in store_pg_schema.c with the same version as SQLite's.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef CP_STORE_PG_INT_H
#define CP_STORE_PG_INT_H

#include <jansson.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

#define PG_MAX_SUBSCRIBERS 64
#define PG_MAX_PARAMS 24 /* audit_append has 17 */
#define PG_POOL_MAX 32  /* connections per store, listener apart */
#define PG_TX_RETRIES 8 /* serialization failures and deadlocks */
#define PG_TOUCH_INTERVAL_MS 60000
/* pg_advisory_lock key held around the migration loop: "kontena" */
#define PG_MIGRATE_LOCK 0x6b6f6e74656e61LL
/* pg_advisory_xact_lock key serialising deploy_queue and deploy_claim */
#define PG_DEPLOY_LOCK 0x6b6f6e74656e62LL
/* pg_advisory_xact_lock key serialising stack_deploy_queue and
 * stack_deploy_claim (store_pg_stacks.c) */
#define PG_STACK_DEPLOY_LOCK 0x6b6f6e74656e73LL
/* The NOTIFY channel every master listens on; our own channel names
 * travel inside the payload. */
#define PG_FEED_CHANNEL "kontena_feed"
/* NOTIFY payloads must stay below 8000 bytes; bigger messages are stored
 * in feed_messages and the notification carries their id. */
#define PG_FEED_INLINE_MAX 7000
#define PG_FEED_KEEP_MS 60000

/* ==== Types ==== */

struct pg_stmt {
    const char *sql; /* identity: the address of a static string */
    char name[16];   /* server-side prepared statement name */
};

/* One pooled connection; used by one thread at a time. */
struct pgc {
    PGconn *conn;
    struct pg_stmt *stmts; /* prepared on this connection */
    size_t nstmts, cap;
    bool broken; /* lost: closed instead of going back to the pool */
    struct pgc *next;
};

struct pg_subscriber {
    int id; /* 0 = free slot */
    store_feed_cb *cb;
    void *ctx;
};

struct pg_store {
    struct store base; /* must be first */
    char *url;
    pthread_mutex_t pool_mu;
    pthread_cond_t pool_cv;
    struct pgc *pool;
    int nconns; /* open connections, pooled or in use */

    /* Change feed: subscribers, and the listener thread with its own
     * connection (started by the first subscribe). */
    pthread_mutex_t feed_mu;
    pthread_cond_t feed_cv;
    struct pg_subscriber subs[PG_MAX_SUBSCRIBERS];
    int next_sub_id;
    bool listener_started;
    bool listening; /* LISTEN is in effect on the listener connection */
    int wake[2];    /* pipe: wakes the listener to stop */
    pthread_t listener;
};

struct pg_store *pgs(struct store *st);

/* ==== Parameters: all sent as text, typed by the statement ==== */

struct pgp {
    int n;
    const char *v[PG_MAX_PARAMS];
    char num[PG_MAX_PARAMS][24];
};

void pgp_s(struct pgp *p, const char *s); /* NULL is SQL NULL */
void pgp_i(struct pgp *p, int64_t v);
void pgp_b(struct pgp *p, bool v);
/* NULL for an absent optional id, so "" never reaches an id column. */
const char *pg_nz(const char *s);

/* ==== Statements ==== */

/* Runs sql (a string literal: prepared once per connection, cached by
 * address) with p (may be NULL). Returns 0 with *res set (caller
 * PQclear()s; res may be NULL to discard), or CP_ECONFLICT (unique
 * violation), CP_ENOTFOUND (foreign key violation), CP_EAGAIN
 * (serialization failure or deadlock, retried by pg_tx) or CP_EIO
 * (logged once, with what). */
int pgx_exec(struct pgc *c, const char *sql, const struct pgp *p,
             const char *what, PGresult **res);
/* pgx_exec for SQL text built per call (never with values in it): sent
 * with PQexecParams instead of being prepared. */
int pgx_exec_dyn(struct pgc *c, const char *sql, const struct pgp *p,
                 const char *what, PGresult **res);
/* pgx_exec that discards the result; *changes (may be NULL) gets the
 * number of rows the statement affected. */
int pgx_run(struct pgc *c, const char *sql, const struct pgp *p,
            const char *what, int *changes);
/* The constraint named by the last unique violation on c ("" if none). */
const char *pgx_conflict(struct pgc *c);

/* Reads row i of res into item. */
typedef void pg_row_fn(const PGresult *res, int i, void *item);
/* Runs sql on c and reads its first row into out: 0, CP_ENOTFOUND, or a
 * pgx_exec error. */
int pgx_row_in(struct pgc *c, const char *sql, const struct pgp *p,
               pg_row_fn *rd, void *out, const char *what);
/* Runs sql on c and reads every row into a new array of items of size
 * bytes. */
int pgx_rows_in(struct pgc *c, const char *sql, const struct pgp *p,
                pg_row_fn *rd, size_t size, void **items, size_t *len,
                const char *what);
/* As pgx_rows_in, for dynamic SQL text. */
int pgx_rows_dyn(struct pgc *c, const char *sql, const struct pgp *p,
                 pg_row_fn *rd, size_t size, void **items, size_t *len,
                 const char *what);

/* ==== Pooled shorthands: one statement, autocommit ==== */

int pg_write(struct store *st, const char *sql, const struct pgp *p,
             int *changes, const char *what);
/* pg_write for a write that must change a row: returns none when it
 * changed nothing. */
int pg_write_row(struct store *st, const char *sql, const struct pgp *p,
                 int none, const char *what);
int pg_row_one(struct store *st, const char *sql, const struct pgp *p,
               pg_row_fn *rd, void *out, const char *what);
int pg_rows_all(struct store *st, const char *sql, const struct pgp *p,
                pg_row_fn *rd, size_t size, void **items, size_t *len,
                const char *what);

/* ==== Connections and transactions ==== */

/* Logs one line (error level): "store: what: [state] msg" with libpq's
 * newlines folded. */
void pg_log_failure(const char *what, const char *state, const char *msg);
/* Opens a libpq connection to url named app (NULL, logged, on failure);
 * the URL is never logged (it may carry a password). */
PGconn *pg_connect(const char *url, const char *app);
/* Takes a connection (NULL, logged, when none can be opened). */
struct pgc *pg_conn_get(struct pg_store *s);
/* Returns it; a broken connection is closed instead (the next get opens
 * a fresh one). */
void pg_conn_put(struct pg_store *s, struct pgc *c);

/* The body of a transaction: statements on c; returns 0 to commit. */
typedef int pg_tx_fn(struct pgc *c, void *ctx);
/* Runs fn inside BEGIN ... COMMIT (READ COMMITTED) on a pooled
 * connection; rolls back on any error. Retries the whole transaction on
 * serialization failures and deadlocks, so fn must be safe to run again
 * (release what a failed run left in its outputs). */
int pg_tx(struct store *st, pg_tx_fn *fn, void *ctx);

/* ==== Row readers (NULL columns read as NULL / 0 / "") ==== */

char *pgr_str(const PGresult *r, int i, int col); /* new string or NULL */
void pgr_fixed(const PGresult *r, int i, int col, char *out, size_t size);
int64_t pgr_i64(const PGresult *r, int i, int col);
bool pgr_bool(const PGresult *r, int i, int col);
bool pgr_null(const PGresult *r, int i, int col);
/* The column parsed as JSON, or dflt when NULL or not JSON (dflt is
 * released when the column parses). */
json_t *pgr_json(const PGresult *r, int i, int col, json_t *dflt);
/* j dumped as JSON text, or a copy of dflt when j is NULL (caller frees). */
char *pg_dump_or(const json_t *j, const char *dflt);

/* ==== store_pg_schema.c ==== */

struct pg_migration {
    int version;
    const char *sql;
};
extern const struct pg_migration pg_migrations[];
extern const size_t pg_nmigrations;

/* ==== store_pg_feed.c ==== */

int pgf_publish(struct store *st, const char *channel, const char *payload);
int pgf_subscribe(struct store *st, store_feed_cb *cb, void *ctx);
void pgf_unsubscribe(struct store *st, int id);
/* Stops the listener thread (at close). */
void pgf_stop(struct pg_store *s);

/* ==== store_pg_nodes.c ==== */

int pgn_node_get(struct store *st, const char *id, struct store_node *out);
int pgn_node_find(struct store *st, const char *grid_id, const char *key,
                  struct store_node *out);
int pgn_node_get_by_node_id(struct store *st, const char *node_id,
                            struct store_node *out);
int pgn_node_get_by_token_hash(struct store *st, const char *hash,
                               struct store_node *out);
int pgn_node_list(struct store *st, const char *grid_id,
                  struct store_node_list *out);
int pgn_node_create(struct store *st, const struct store_node *n,
                    bool rename_on_clash, struct store_node *out,
                    const char **field);
int pgn_node_bind(struct store *st, const char *id, const char *node_id);
int pgn_node_update(struct store *st, const struct store_node *n);
int pgn_node_set_token(struct store *st, const char *id, const char *hash,
                       const char *sealed);
int pgn_node_delete(struct store *st, const char *id);
int pgn_node_plug(struct store *st, const char *id, const char *master,
                  int64_t connected_at, int64_t now, int64_t *gen);
int pgn_node_unplug(struct store *st, const char *id, int64_t gen, int64_t now,
                    int close_code, const char *reason);
int pgn_node_set_info(struct store *st, const char *id, int64_t gen,
                      const json_t *info, const char *agent_version,
                      const json_t *labels);
int pgn_node_add_stats(struct store *st, const char *id, const json_t *stats,
                       int64_t at, int keep);
int pgn_nodes_add_stats(struct store *st, const struct store_node_stats *v,
                        size_t n, int keep);
int pgn_nodes_seen(struct store *st, struct store_node_seen *v, size_t n);
int pgn_nodes_sweep(struct store *st, int64_t before, int64_t now,
                    const char *except_master,
                    const struct store_fence *fence, int *marked);

/* ==== store_pg_services.c ==== */

int pgv_service_create(struct store *st, const struct store_service *v);
int pgv_service_get(struct store *st, const char *grid_id,
                    const char *stack_name, const char *name,
                    struct store_service *out);
int pgv_service_get_by_id(struct store *st, const char *id,
                          struct store_service *out);
int pgv_service_list(struct store *st, const char *grid_id,
                     const char *stack_name, struct store_service_list *out);
int pgv_service_update(struct store *st, const struct store_service *v);
int pgv_service_delete(struct store *st, const char *id);
int pgv_instance_list(struct store *st, const char *service_id,
                      struct store_instance_list *out);
int pgv_instances_on_node(struct store *st, const char *node_id,
                          struct store_instance_list *instances,
                          struct store_service_list *services);
int pgv_node_pod_rows(struct store *st, const char *node_id,
                      const char *grid_id, struct store_pod_rows *out);
int pgv_instance_put(struct store *st, const struct store_instance *i);
int pgv_instance_put_many(struct store *st, const struct store_instance *v,
                          size_t n);
int pgv_instance_trim(struct store *st, const char *service_id, int keep);
int pgv_instance_report(struct store *st, const char *service_id,
                        int instance_number, const char *node_id,
                        const char *rev, const char *state, const char *error);
int pgv_instances_report_many(struct store *st, struct store_instance_report *v,
                              size_t n);
int pgv_instances_detach_node(struct store *st, const char *node_id,
                              int *count);

/* ==== store_pg_deploys.c ==== */

int pgd_deploy_queue(struct store *st, const struct store_deploy *d,
                     struct store_deploy *out);
int pgd_deploy_get(struct store *st, const char *id, struct store_deploy *out);
int pgd_deploy_claim(struct store *st, const char *holder, int64_t now,
                     int64_t lease_ms, struct store_deploy *out);
int pgd_deploy_update(struct store *st, const struct store_deploy *d);
int pgd_deploy_list(struct store *st, const char *service_id, int limit,
                    struct store_deploy_list *out);
int pgd_deploys_prune(struct store *st, int keep, int *deleted);
int pgd_container_save(struct store *st, const struct store_container *k);
int pgd_container_delete(struct store *st, const char *container_id);
int pgd_containers_cleanup(struct store *st, const char *node_id,
                           const char *const *keep, size_t nkeep, int *deleted);
int pgd_containers_mark_deleted(struct store *st, const char *node_id,
                                int64_t now);
int pgd_container_list(struct store *st, const char *grid_id,
                       const char *node_id, const char *service_id,
                       struct store_container_list *out);
int pgd_container_get(struct store *st, const char *grid_id,
                      const char *node_id, const char *name,
                      struct store_container *out);
int pgd_logs_append(struct store *st, const struct store_log *v, size_t n);
int pgd_logs_read(struct store *st, const struct store_log_query *q,
                  struct store_log_list *out);
int pgd_events_append(struct store *st, const struct store_event *v, size_t n);
int pgd_events_read(struct store *st, const struct store_log_query *q,
                    struct store_event_list *out);
int pgd_history_trim(struct store *st, int64_t max_logs, int64_t max_events);
/* The service deploy row reader, for the stack deploy view: "SELECT "
 * PGD_DEPLOY_COLS " FROM grid_service_deploys ...". */
void pgd_read_deploy(const PGresult *r, int i, void *item);
#define PGD_DEPLOY_COLS                                                        \
    "id, service_id, stack_deploy_id, state, reason, force, "                  \
    "instance_deploys, claimed_by, lease_until, created_at, queued_at, "       \
    "started_at, finished_at"

/* ==== store_pg_stacks.c ==== */

int pgk_stack_create(struct store *st, const struct store_stack *k,
                     const struct store_stack_revision *r,
                     const struct store_service *svcs, size_t n);
int pgk_stack_get(struct store *st, const char *grid_id, const char *name,
                  struct store_stack *out, struct store_stack_revision *rev);
int pgk_stack_get_by_id(struct store *st, const char *id,
                        struct store_stack *out,
                        struct store_stack_revision *rev);
int pgk_stack_list(struct store *st, const char *grid_id,
                   struct store_stack_list *out);
int pgk_stack_revision_get(struct store *st, const char *stack_id,
                           int64_t revision, struct store_stack_revision *out);
int pgk_stack_revise(struct store *st, const char *stack_id, int64_t expect,
                     const struct store_stack_revision *r,
                     const struct store_service *svcs, size_t n);
int pgk_stack_update(struct store *st, const struct store_stack *k);
int pgk_stack_delete(struct store *st, const char *id);
int pgk_stack_deploy_queue(struct store *st, const struct store_stack_deploy *d,
                           struct store_stack_deploy *out);
int pgk_stack_deploy_get(struct store *st, const char *id,
                         struct store_stack_deploy *out);
int pgk_stack_deploy_claim(struct store *st, const char *holder, int64_t now,
                           int64_t lease_ms, struct store_stack_deploy *out);
int pgk_stack_deploy_update(struct store *st,
                            const struct store_stack_deploy *d);
int pgk_stack_deploy_list(struct store *st, const char *grid_id,
                          const char *stack_id, bool open_only, int limit,
                          struct store_stack_deploy_list *out);
int pgk_stack_deploy_services(struct store *st, const char *stack_deploy_id,
                              struct store_deploy_list *out);
int pgk_stack_deploys_prune(struct store *st, int keep, int *deleted);

/* ==== store_pg_secrets.c ==== */

int pgk_secret_create(struct store *st, const struct store_secret *v,
                      int *bumped);
int pgk_secret_get(struct store *st, const char *grid_id, const char *name,
                   struct store_secret *out);
int pgk_secret_list(struct store *st, const char *grid_id,
                    struct store_secret_list *out);
int pgk_secret_update(struct store *st, const char *grid_id, const char *name,
                      const char *value, int64_t now, int *bumped);
int pgk_secret_delete(struct store *st, const char *grid_id, const char *name);
int pgk_secret_reseal(struct store *st, const char *id, const char *old,
                      const char *value);
int pgk_grid_token_reseal(struct store *st, const char *id, const char *old,
                          const char *value);
int pgk_registry_reseal(struct store *st, const char *id, const char *old,
                        const char *value);
int pgk_node_token_reseal(struct store *st, const char *id, const char *old,
                          const char *value);
int pgk_secrets_page(struct store *st, const char *after_id, int limit,
                     struct store_secret_list *out);

/* ==== store_pg_audit.c ==== */

int pga_registry_create(struct store *st, const struct store_registry *r);
int pga_registry_list(struct store *st, const char *grid_id,
                      struct store_registry_list *out);
int pga_registry_get(struct store *st, const char *grid_id, const char *name,
                     struct store_registry *out);
int pga_registry_delete(struct store *st, const char *grid_id,
                        const char *name);
int pga_audit_append(struct store *st, const struct store_audit *a);
int pga_audit_list(struct store *st, const char *grid_id, int limit,
                   struct store_audit_list *out);
int pga_audit_trim(struct store *st, int64_t keep, int *deleted);

#endif
