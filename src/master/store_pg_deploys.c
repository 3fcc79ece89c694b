/* PostgreSQL backend: the deploy queue, the containers agents report, and
 * the bounded container logs and events (issue 4).
 *
 * The deploy queue's rules span rows ("one queued deploy per service",
 * "one ongoing deploy per service"), which row locks cannot guard, so
 * deploy_queue and deploy_claim take one transaction-level advisory lock
 * (PG_DEPLOY_LOCK): masters queue and claim one at a time, each seeing
 * the previous one's commit. Both are short, and claims are polled, not
 * on a request path.
 * SPDX-License-Identifier: Apache-2.0 */
#include "store_pg_int.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../common/util.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

#define LOGS_DEFAULT_LIMIT 100
#define LOGS_MAX_LIMIT 10000

/* ==== Deploys ==== */

/* Adding a column: also update pgd_read_deploy (PGD_DEPLOY_COLS is in
 * store_pg_int.h). */
#define DEP_COLS PGD_DEPLOY_COLS
#define read_deploy pgd_read_deploy

void pgd_read_deploy(const PGresult *r, int i, void *item)
{
    struct store_deploy *d = item;
    memset(d, 0, sizeof(*d));
    pgr_fixed(r, i, 0, d->id, sizeof(d->id));
    pgr_fixed(r, i, 1, d->service_id, sizeof(d->service_id));
    pgr_fixed(r, i, 2, d->stack_deploy_id, sizeof(d->stack_deploy_id));
    d->state = pgr_str(r, i, 3);
    d->reason = pgr_str(r, i, 4);
    d->force = pgr_bool(r, i, 5);
    d->instance_deploys = pgr_json(r, i, 6, json_array());
    d->claimed_by = pgr_str(r, i, 7);
    d->lease_until = pgr_i64(r, i, 8);
    d->created_at = pgr_i64(r, i, 9);
    d->queued_at = pgr_i64(r, i, 10);
    d->started_at = pgr_i64(r, i, 11);
    d->finished_at = pgr_i64(r, i, 12);
}

static const char deploy_by_id[] =
    "SELECT " DEP_COLS " FROM grid_service_deploys WHERE id=$1";

static void read_id(const PGresult *r, int i, void *item)
{
    pgr_fixed(r, i, 0, item, STORE_ID_LEN + 1);
}

static int deploy_lock(struct pgc *c)
{
    struct pgp p = {0};
    pgp_i(&p, PG_DEPLOY_LOCK);
    return pgx_run(c, "SELECT pg_advisory_xact_lock($1::bigint)", &p,
                   "deploy lock", NULL);
}

static int read_back(struct pgc *c, const char *id, struct store_deploy *out)
{
    struct pgp p = {0};
    pgp_s(&p, id);
    return pgx_row_in(c, deploy_by_id, &p, read_deploy, out, "deploy get");
}

struct queue_ctx {
    const struct store_deploy *d;
    struct store_deploy *out;
};

static int queue_fn(struct pgc *c, void *ctx)
{
    struct queue_ctx *k = ctx;
    const struct store_deploy *d = k->d;
    store_deploy_release(k->out);
    int rc = deploy_lock(c);
    if (rc != 0)
        return rc;
    char id[STORE_ID_LEN + 1] = "";
    struct pgp p = {0};
    pgp_s(&p, d->service_id);
    rc = pgx_row_in(c,
                    "SELECT id FROM grid_service_deploys WHERE service_id=$1 "
                    "AND state='created' ORDER BY created_at, seq LIMIT 1",
                    &p, read_id, id, "deploy queued");
    if (rc == 0 && (d->force || pg_nz(d->stack_deploy_id) != NULL)) {
        /* The newest stack deploy that waits on it owns it. */
        struct pgp f = {0};
        pgp_s(&f, id);
        pgp_b(&f, d->force);
        pgp_s(&f, pg_nz(d->stack_deploy_id));
        rc = pgx_run(c,
                     "UPDATE grid_service_deploys SET force=(force OR $2), "
                     "stack_deploy_id=COALESCE($3::text, stack_deploy_id) "
                     "WHERE id=$1",
                     &f, "deploy coalesce", NULL);
    } else if (rc == CP_ENOTFOUND) {
        if (d->id[0] != '\0')
            memcpy(id, d->id, sizeof(id));
        else
            store_new_id(id);
        char *ideps = pg_dump_or(d->instance_deploys, "[]");
        int64_t now = cp_now_ms();
        struct pgp q = {0};
        pgp_s(&q, id);
        pgp_s(&q, d->service_id);
        pgp_s(&q, pg_nz(d->stack_deploy_id));
        pgp_s(&q, d->reason);
        pgp_b(&q, d->force);
        pgp_s(&q, ideps);
        pgp_i(&q, d->created_at ? d->created_at : now);
        pgp_i(&q, d->queued_at ? d->queued_at : now);
        rc = pgx_run(c,
                     "INSERT INTO grid_service_deploys(id, service_id, "
                     "stack_deploy_id, state, reason, force, "
                     "instance_deploys, created_at, queued_at) "
                     "VALUES($1, $2, $3, 'created', $4, $5, $6, $7, $8)",
                     &q, "deploy insert", NULL);
        cp_free(ideps);
    }
    if (rc != 0)
        return rc;
    return read_back(c, id, k->out);
}

int pgd_deploy_queue(struct store *st, const struct store_deploy *d,
                     struct store_deploy *out)
{
    memset(out, 0, sizeof(*out));
    struct queue_ctx k = {d, out};
    int rc = pg_tx(st, queue_fn, &k);
    if (rc != 0)
        store_deploy_release(out);
    return rc;
}

int pgd_deploy_get(struct store *st, const char *id, struct store_deploy *out)
{
    struct pgp p = {0};
    pgp_s(&p, id);
    memset(out, 0, sizeof(*out));
    return pg_row_one(st, deploy_by_id, &p, read_deploy, out, "deploy get");
}

struct claim_ctx {
    const char *holder;
    int64_t now, lease_ms;
    struct store_deploy *out;
};

/* Candidates, oldest first: ongoing deploys whose lease expired (their
 * master died; taken over before anything else, so a service never gets
 * a second ongoing deploy beside an expired one), then queued deploys of
 * services without an ongoing deploy under a live lease. */
static int claim_fn(struct pgc *c, void *ctx)
{
    struct claim_ctx *k = ctx;
    store_deploy_release(k->out);
    int rc = deploy_lock(c);
    if (rc != 0)
        return rc;
    char id[STORE_ID_LEN + 1] = "";
    struct pgp p = {0};
    pgp_i(&p, k->now);
    rc = pgx_row_in(c,
                    "SELECT d.id FROM grid_service_deploys d "
                    "WHERE (d.state='ongoing' AND d.lease_until<=$1) OR "
                    "(d.state='created' AND NOT EXISTS (SELECT 1 FROM "
                    "grid_service_deploys o WHERE o.service_id=d.service_id "
                    "AND o.state='ongoing' AND o.lease_until>$1)) "
                    "ORDER BY d.state='ongoing' DESC, d.created_at, d.seq "
                    "LIMIT 1",
                    &p, read_id, id, "deploy claim");
    if (rc != 0)
        return rc;
    struct pgp u = {0};
    pgp_s(&u, id);
    pgp_s(&u, k->holder);
    pgp_i(&u, k->now + k->lease_ms);
    pgp_i(&u, k->now);
    rc = pgx_run(c,
                 "UPDATE grid_service_deploys SET state='ongoing', "
                 "claimed_by=$2, lease_until=$3, started_at=$4, "
                 "finished_at=0 WHERE id=$1",
                 &u, "deploy claim", NULL);
    if (rc != 0)
        return rc;
    return read_back(c, id, k->out);
}

int pgd_deploy_claim(struct store *st, const char *holder, int64_t now,
                     int64_t lease_ms, struct store_deploy *out)
{
    memset(out, 0, sizeof(*out));
    struct claim_ctx k = {holder, now, lease_ms, out};
    int rc = pg_tx(st, claim_fn, &k);
    if (rc != 0)
        store_deploy_release(out);
    return rc;
}

/* Fenced on claimed_by (NULL-safe, so that an unclaimed deploy is written
 * with claimed_by NULL). A NULL state or instance_deploys keeps the stored
 * one. */
int pgd_deploy_update(struct store *st, const struct store_deploy *d)
{
    char *ideps =
        d->instance_deploys != NULL ? cp_json_dump(d->instance_deploys) : NULL;
    struct pgp p = {0};
    pgp_s(&p, d->id);
    pgp_s(&p, d->claimed_by);
    pgp_s(&p, d->state);
    pgp_s(&p, d->reason);
    pgp_s(&p, ideps);
    pgp_i(&p, d->lease_until);
    pgp_i(&p, d->finished_at);
    int changes = 0;
    int rc = pg_write(st,
                      "UPDATE grid_service_deploys SET "
                      "state=COALESCE($3::text, state), reason=$4, "
                      "instance_deploys=COALESCE($5::text, instance_deploys),"
                      " lease_until=$6, finished_at=$7 WHERE id=$1 AND "
                      "claimed_by IS NOT DISTINCT FROM $2::text",
                      &p, &changes, "deploy update");
    cp_free(ideps);
    if (rc != 0 || changes > 0)
        return rc;
    struct store_deploy got = {0};
    rc = pgd_deploy_get(st, d->id, &got);
    store_deploy_release(&got);
    return rc == 0 ? CP_ECONFLICT /* another holder took it over */ : rc;
}

int pgd_deploy_list(struct store *st, const char *service_id, int limit,
                    struct store_deploy_list *out)
{
    struct pgp p = {0};
    pgp_s(&p, service_id);
    if (limit > 0)
        pgp_i(&p, limit);
    else
        pgp_s(&p, NULL); /* LIMIT NULL: no limit */
    void *items = NULL;
    int rc = pg_rows_all(st,
                         "SELECT " DEP_COLS " FROM grid_service_deploys "
                         "WHERE service_id=$1 ORDER BY created_at DESC, "
                         "seq DESC LIMIT $2",
                         &p, read_deploy, sizeof(*out->items), &items,
                         &out->len, "deploy list");
    out->items = items;
    if (rc != 0)
        store_deploy_list_release(out);
    return rc;
}

/* Finished = neither queued nor ongoing. One statement, so atomic. */
int pgd_deploys_prune(struct store *st, int keep, int *deleted)
{
    struct pgp p = {0};
    pgp_i(&p, keep > 0 ? keep : 0);
    int changes = 0;
    int rc = pg_write(st,
                      "DELETE FROM grid_service_deploys WHERE id IN (SELECT "
                      "id FROM (SELECT id, ROW_NUMBER() OVER (PARTITION BY "
                      "service_id ORDER BY created_at DESC, seq DESC) AS n "
                      "FROM grid_service_deploys WHERE state NOT IN "
                      "('created', 'ongoing')) t WHERE n>$1)",
                      &p, &changes, "deploys prune");
    if (deleted != NULL)
        *deleted = rc == 0 ? changes : 0;
    return rc;
}

/* ==== Containers ==== */

/* Adding a column: also update read_container. */
#define CONT_COLS                                                              \
    "id, grid_id, node_id, service_id, container_id, name, "                   \
    "instance_number, status, info, created_at, updated_at, deleted_at"

static void read_container(const PGresult *r, int i, void *item)
{
    struct store_container *k = item;
    memset(k, 0, sizeof(*k));
    pgr_fixed(r, i, 0, k->id, sizeof(k->id));
    pgr_fixed(r, i, 1, k->grid_id, sizeof(k->grid_id));
    pgr_fixed(r, i, 2, k->node_id, sizeof(k->node_id));
    pgr_fixed(r, i, 3, k->service_id, sizeof(k->service_id));
    k->container_id = pgr_str(r, i, 4);
    k->name = pgr_str(r, i, 5);
    k->instance_number = (int)pgr_i64(r, i, 6);
    k->status = pgr_str(r, i, 7);
    k->info = pgr_json(r, i, 8, json_object());
    k->created_at = pgr_i64(r, i, 9);
    k->updated_at = pgr_i64(r, i, 10);
    k->deleted_at = pgr_i64(r, i, 11);
}

/* An update keeps the row id and created_at. */
int pgd_container_save(struct store *st, const struct store_container *k)
{
    char *info = pg_dump_or(k->info, "{}");
    char id[STORE_ID_LEN + 1];
    if (k->id[0] != '\0')
        memcpy(id, k->id, sizeof(id));
    else
        store_new_id(id);
    int64_t now = cp_now_ms();
    struct pgp p = {0};
    pgp_s(&p, id);
    pgp_s(&p, k->grid_id);
    pgp_s(&p, pg_nz(k->node_id));
    pgp_s(&p, pg_nz(k->service_id));
    pgp_s(&p, k->container_id);
    pgp_s(&p, k->name);
    pgp_i(&p, k->instance_number);
    pgp_s(&p, k->status);
    pgp_s(&p, info);
    pgp_i(&p, k->created_at ? k->created_at : now);
    pgp_i(&p, k->updated_at ? k->updated_at : now);
    int rc = pg_write(st,
                      "INSERT INTO containers(id, grid_id, node_id, "
                      "service_id, container_id, name, instance_number, "
                      "status, info, created_at, updated_at, deleted_at) "
                      "VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, "
                      "0) ON CONFLICT(container_id) DO UPDATE SET "
                      "grid_id=excluded.grid_id, node_id=excluded.node_id, "
                      "service_id=excluded.service_id, name=excluded.name, "
                      "instance_number=excluded.instance_number, "
                      "status=excluded.status, info=excluded.info, "
                      "updated_at=excluded.updated_at, deleted_at=0",
                      &p, NULL, "container save");
    cp_free(info);
    return rc;
}

int pgd_container_delete(struct store *st, const char *container_id)
{
    struct pgp p = {0};
    pgp_s(&p, container_id);
    return pg_write_row(st, "DELETE FROM containers WHERE container_id=$1", &p,
                        CP_ENOTFOUND, "container delete");
}

/* The keep list travels as one JSON array parameter, so the whole cleanup
 * is a single statement however long the list is. */
int pgd_containers_cleanup(struct store *st, const char *node_id,
                           const char *const *keep, size_t nkeep, int *deleted)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < nkeep; i++)
        json_array_append_new(arr, json_string(keep[i]));
    char *keep_s = cp_json_dump(arr);
    json_decref(arr);
    struct pgp p = {0};
    pgp_s(&p, node_id);
    pgp_s(&p, keep_s);
    int changes = 0;
    int rc = pg_write(st,
                      "DELETE FROM containers WHERE node_id=$1 AND "
                      "container_id NOT IN "
                      "(SELECT jsonb_array_elements_text($2::jsonb))",
                      &p, &changes, "containers cleanup");
    cp_free(keep_s);
    if (deleted != NULL)
        *deleted = rc == 0 ? changes : 0;
    return rc;
}

int pgd_containers_mark_deleted(struct store *st, const char *node_id,
                                int64_t now)
{
    struct pgp p = {0};
    pgp_s(&p, node_id);
    pgp_i(&p, now);
    return pg_write(st,
                    "UPDATE containers SET deleted_at=$2, updated_at=$2 "
                    "WHERE node_id=$1 AND deleted_at=0",
                    &p, NULL, "containers mark deleted");
}

int pgd_container_list(struct store *st, const char *grid_id,
                       const char *node_id, const char *service_id,
                       struct store_container_list *out)
{
    struct pgp p = {0};
    pgp_s(&p, grid_id);
    pgp_s(&p, pg_nz(node_id));
    pgp_s(&p, pg_nz(service_id));
    void *items = NULL;
    int rc = pg_rows_all(st,
                         "SELECT " CONT_COLS " FROM containers "
                         "WHERE grid_id=$1 AND deleted_at=0 "
                         "AND ($2::text IS NULL OR node_id=$2::text) "
                         "AND ($3::text IS NULL OR service_id=$3::text) "
                         "ORDER BY name COLLATE \"C\"",
                         &p, read_container, sizeof(*out->items), &items,
                         &out->len, "container list");
    out->items = items;
    if (rc != 0)
        store_container_list_release(out);
    return rc;
}

/* A live container by name; node_id NULL or "" matches any node. */
int pgd_container_get(struct store *st, const char *grid_id,
                      const char *node_id, const char *name,
                      struct store_container *out)
{
    struct pgp p = {0};
    pgp_s(&p, grid_id);
    pgp_s(&p, pg_nz(node_id));
    pgp_s(&p, name);
    memset(out, 0, sizeof(*out));
    return pg_row_one(st,
                      "SELECT " CONT_COLS " FROM containers WHERE grid_id=$1 "
                      "AND name=$3 AND deleted_at=0 "
                      "AND ($2::text IS NULL OR node_id=$2::text) "
                      "ORDER BY updated_at DESC LIMIT 1",
                      &p, read_container, out, "container get");
}

/* ==== Logs and events ==== */

struct logs_ctx {
    const struct store_log *v;
    size_t n;
};

static int logs_fn(struct pgc *c, void *ctx)
{
    struct logs_ctx *k = ctx;
    int64_t now = cp_now_ms();
    for (size_t i = 0; i < k->n; i++) {
        const struct store_log *l = &k->v[i];
        struct pgp p = {0};
        pgp_s(&p, l->grid_id);
        pgp_s(&p, pg_nz(l->node_id));
        pgp_s(&p, pg_nz(l->service_id));
        pgp_s(&p, l->container_id);
        pgp_s(&p, l->name);
        pgp_s(&p, l->type);
        pgp_s(&p, l->data);
        pgp_i(&p, l->created_at ? l->created_at : now);
        int rc = pgx_run(c,
                         "INSERT INTO container_logs(grid_id, node_id, "
                         "service_id, container_id, name, type, data, "
                         "created_at) VALUES($1, $2, $3, $4, $5, $6, $7, $8)",
                         &p, "logs append", NULL);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int pgd_logs_append(struct store *st, const struct store_log *v, size_t n)
{
    struct logs_ctx k = {v, n};
    return n == 0 ? 0 : pg_tx(st, logs_fn, &k);
}

struct events_ctx {
    const struct store_event *v;
    size_t n;
};

static int events_fn(struct pgc *c, void *ctx)
{
    struct events_ctx *k = ctx;
    int64_t now = cp_now_ms();
    for (size_t i = 0; i < k->n; i++) {
        const struct store_event *e = &k->v[i];
        char *meta = e->meta != NULL ? cp_json_dump(e->meta) : NULL;
        struct pgp p = {0};
        pgp_s(&p, e->grid_id);
        pgp_s(&p, pg_nz(e->stack_id));
        pgp_s(&p, pg_nz(e->service_id));
        pgp_s(&p, pg_nz(e->node_id));
        pgp_i(&p, e->severity);
        pgp_s(&p, e->type);
        pgp_s(&p, e->message);
        pgp_s(&p, meta);
        pgp_i(&p, e->created_at ? e->created_at : now);
        int rc = pgx_run(c,
                         "INSERT INTO event_logs(grid_id, stack_id, "
                         "service_id, node_id, severity, type, message, "
                         "meta, created_at) VALUES($1, $2, $3, $4, $5, $6, "
                         "$7, $8, $9)",
                         &p, "events append", NULL);
        cp_free(meta);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int pgd_events_append(struct store *st, const struct store_event *v, size_t n)
{
    struct events_ctx k = {v, n};
    return n == 0 ? 0 : pg_tx(st, events_fn, &k);
}

/* A history query under construction: SQL text whose filters are plain
 * "col=$n" terms (so the planner picks the (col, seq) index), and its
 * parameters in order. The SQL text holds only column names and
 * placeholders, never values. */
struct hq {
    char sql[768];
    size_t len;
    struct pgp p;
};

static void hq_cat(struct hq *h, const char *s)
{
    size_t n = strlen(s);
    assert(h->len + n < sizeof(h->sql));
    memcpy(h->sql + h->len, s, n + 1);
    h->len += n;
}

static void hq_param(struct hq *h, const char *prefix)
{
    char ph[32];
    snprintf(ph, sizeof(ph), "%s$%d", prefix, h->p.n + 1);
    hq_cat(h, ph);
}

static void hq_filter(struct hq *h, const char *col, const char *value)
{
    if (value == NULL || value[0] == '\0')
        return;
    hq_cat(h, " AND ");
    hq_cat(h, col);
    hq_param(h, "=");
    pgp_s(&h->p, value);
}

static int query_limit(const struct store_log_query *q)
{
    if (q->limit <= 0)
        return LOGS_DEFAULT_LIMIT;
    return q->limit > LOGS_MAX_LIMIT ? LOGS_MAX_LIMIT : q->limit;
}

/* Copies src's parameters; numbers point into dst's own buffers. */
static void pgp_copy(struct pgp *dst, const struct pgp *src)
{
    memcpy(dst, src, sizeof(*dst));
    for (int i = 0; i < dst->n; i++)
        if (src->v[i] == src->num[i])
            dst->v[i] = dst->num[i];
}

/* Finishes h into out: after_seq mode reads forward from it; otherwise
 * the newest limit rows (since since_ms) are selected and re-sorted
 * oldest first. */
static void hq_finish(struct hq *h, const struct store_log_query *q,
                      struct hq *out)
{
    memset(out, 0, sizeof(*out));
    if (q->after_seq > 0) {
        hq_param(h, " AND seq>");
        pgp_i(&h->p, q->after_seq);
        hq_param(h, " ORDER BY seq LIMIT ");
        pgp_i(&h->p, query_limit(q));
        hq_cat(out, h->sql);
    } else {
        if (q->since_ms > 0) {
            hq_param(h, " AND created_at>=");
            pgp_i(&h->p, q->since_ms);
        }
        hq_param(h, " ORDER BY seq DESC LIMIT ");
        pgp_i(&h->p, query_limit(q));
        hq_cat(out, "SELECT * FROM (");
        hq_cat(out, h->sql);
        hq_cat(out, ") t ORDER BY seq");
    }
    pgp_copy(&out->p, &h->p);
}

struct hq_ctx {
    const struct hq *h;
    pg_row_fn *rd;
    size_t size;
    void **items;
    size_t *len;
    const char *what;
};

static int hq_fn(struct pgc *c, void *ctx)
{
    struct hq_ctx *k = ctx;
    return pgx_rows_dyn(c, k->h->sql, &k->h->p, k->rd, k->size, k->items,
                        k->len, k->what);
}

static int hq_run(struct store *st, const struct hq *h, pg_row_fn *rd,
                  size_t size, void **items, size_t *len, const char *what)
{
    struct pg_store *s = pgs(st);
    *items = NULL;
    *len = 0;
    struct pgc *c = pg_conn_get(s);
    if (c == NULL)
        return CP_EIO;
    struct hq_ctx k = {h, rd, size, items, len, what};
    int rc = hq_fn(c, &k);
    pg_conn_put(s, c);
    return rc;
}

static void read_log(const PGresult *r, int i, void *item)
{
    struct store_log *l = item;
    memset(l, 0, sizeof(*l));
    l->seq = pgr_i64(r, i, 0);
    pgr_fixed(r, i, 1, l->grid_id, sizeof(l->grid_id));
    pgr_fixed(r, i, 2, l->node_id, sizeof(l->node_id));
    pgr_fixed(r, i, 3, l->service_id, sizeof(l->service_id));
    l->container_id = pgr_str(r, i, 4);
    l->name = pgr_str(r, i, 5);
    l->type = pgr_str(r, i, 6);
    l->data = pgr_str(r, i, 7);
    l->created_at = pgr_i64(r, i, 8);
}

int pgd_logs_read(struct store *st, const struct store_log_query *q,
                  struct store_log_list *out)
{
    struct hq h = {0}, full;
    hq_cat(&h, "SELECT seq, grid_id, node_id, service_id, container_id, "
               "name, type, data, created_at FROM container_logs WHERE true");
    hq_filter(&h, "grid_id", q->grid_id);
    hq_filter(&h, "service_id", q->service_id);
    hq_filter(&h, "node_id", q->node_id);
    hq_filter(&h, "name", q->container_name);
    if (pg_nz(q->stack_id) != NULL) {
        /* Lines carry no stack: those of the stack's services. */
        hq_cat(&h, " AND service_id IN (SELECT id FROM grid_services "
                   "WHERE stack_id=");
        hq_param(&h, "");
        hq_cat(&h, ")");
        pgp_s(&h.p, q->stack_id);
    }
    hq_finish(&h, q, &full);
    void *items = NULL;
    int rc = hq_run(st, &full, read_log, sizeof(*out->items), &items, &out->len,
                    "logs read");
    out->items = items;
    if (rc != 0)
        store_log_list_release(out);
    return rc;
}

static void read_event(const PGresult *r, int i, void *item)
{
    struct store_event *e = item;
    memset(e, 0, sizeof(*e));
    e->seq = pgr_i64(r, i, 0);
    pgr_fixed(r, i, 1, e->grid_id, sizeof(e->grid_id));
    pgr_fixed(r, i, 2, e->stack_id, sizeof(e->stack_id));
    pgr_fixed(r, i, 3, e->service_id, sizeof(e->service_id));
    pgr_fixed(r, i, 4, e->node_id, sizeof(e->node_id));
    e->severity = (int)pgr_i64(r, i, 5);
    e->type = pgr_str(r, i, 6);
    e->message = pgr_str(r, i, 7);
    e->meta = pgr_null(r, i, 8) ? NULL : pgr_json(r, i, 8, NULL);
    e->created_at = pgr_i64(r, i, 9);
}

/* container_name is not an event column and is ignored here. */
int pgd_events_read(struct store *st, const struct store_log_query *q,
                    struct store_event_list *out)
{
    struct hq h = {0}, full;
    hq_cat(&h, "SELECT seq, grid_id, stack_id, service_id, node_id, "
               "severity, type, message, meta, created_at FROM event_logs "
               "WHERE true");
    hq_filter(&h, "grid_id", q->grid_id);
    hq_filter(&h, "stack_id", q->stack_id);
    hq_filter(&h, "service_id", q->service_id);
    hq_filter(&h, "node_id", q->node_id);
    hq_finish(&h, q, &full);
    void *items = NULL;
    int rc = hq_run(st, &full, read_event, sizeof(*out->items), &items,
                    &out->len, "events read");
    out->items = items;
    if (rc != 0)
        store_event_list_release(out);
    return rc;
}

struct trim_ctx {
    int64_t max_logs, max_events;
};

/* Deletes every row at or below the seq of the (max+1)-th newest; a
 * negative max leaves that table alone. */
static int trim_fn(struct pgc *c, void *ctx)
{
    struct trim_ctx *k = ctx;
    int rc = 0;
    if (k->max_logs >= 0) {
        struct pgp p = {0};
        pgp_i(&p, k->max_logs);
        rc = pgx_run(c,
                     "DELETE FROM container_logs WHERE seq<=(SELECT seq "
                     "FROM container_logs ORDER BY seq DESC LIMIT 1 "
                     "OFFSET $1)",
                     &p, "logs trim", NULL);
    }
    if (rc == 0 && k->max_events >= 0) {
        struct pgp p = {0};
        pgp_i(&p, k->max_events);
        rc = pgx_run(c,
                     "DELETE FROM event_logs WHERE seq<=(SELECT seq "
                     "FROM event_logs ORDER BY seq DESC LIMIT 1 OFFSET $1)",
                     &p, "events trim", NULL);
    }
    return rc;
}

int pgd_history_trim(struct store *st, int64_t max_logs, int64_t max_events)
{
    struct trim_ctx k = {max_logs, max_events};
    return pg_tx(st, trim_fn, &k);
}
