/* PostgreSQL backend: services and their instances (issue 4).
 *
 * Optional ids ("" in the structs) are stored as NULL and read back as
 * "". Reads that return services join stacks for stack_name, so a list is
 * one query. Text is ordered with COLLATE "C" (byte order, as SQLite
 * does), whatever the database's default collation is.
 * SPDX-License-Identifier: Apache-2.0 */
#include "store_pg_int.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../common/util.h"

#include <stdio.h>
#include <string.h>

/* ==== Services ==== */

/* Adding a column: also update read_service_at and SVC_NCOLS. */
#define SVC_COLS                                                               \
    "v.id, v.grid_id, v.stack_id, k.name, v.name, v.spec, v.revision, "        \
    "v.stack_revision, v.state, v.deployed_at, v.deploy_requested_at, "        \
    "v.created_at, v.updated_at, v.deployed_revision"
#define SVC_FROM " FROM grid_services v JOIN stacks k ON k.id=v.stack_id "
#define SVC_NCOLS 14

static void read_service_at(const PGresult *r, int i, int o,
                            struct store_service *v)
{
    memset(v, 0, sizeof(*v));
    pgr_fixed(r, i, o + 0, v->id, sizeof(v->id));
    pgr_fixed(r, i, o + 1, v->grid_id, sizeof(v->grid_id));
    pgr_fixed(r, i, o + 2, v->stack_id, sizeof(v->stack_id));
    v->stack_name = pgr_str(r, i, o + 3);
    v->name = pgr_str(r, i, o + 4);
    v->spec = pgr_json(r, i, o + 5, json_object());
    v->revision = pgr_i64(r, i, o + 6);
    v->stack_revision = pgr_i64(r, i, o + 7);
    v->state = pgr_str(r, i, o + 8);
    v->deployed_at = pgr_i64(r, i, o + 9);
    v->deploy_requested_at = pgr_i64(r, i, o + 10);
    v->created_at = pgr_i64(r, i, o + 11);
    v->updated_at = pgr_i64(r, i, o + 12);
    v->deployed_revision = pgr_i64(r, i, o + 13);
}

static void read_service(const PGresult *r, int i, void *item)
{
    read_service_at(r, i, 0, item);
}

/* One INSERT ... SELECT: the stack row must exist in the service's grid
 * (the named one, or the grid's "null" stack), else nothing is inserted
 * and the grid or stack is reported missing. */
int pgv_service_create(struct store *st, const struct store_service *v)
{
    char *spec = pg_dump_or(v->spec, "{}");
    struct pgp p = {0};
    pgp_s(&p, v->id);
    pgp_s(&p, v->grid_id);
    pgp_s(&p, pg_nz(v->stack_id));
    pgp_s(&p, v->name);
    pgp_s(&p, spec);
    pgp_i(&p, v->revision > 0 ? v->revision : 1);
    pgp_i(&p, v->stack_revision);
    pgp_s(&p, v->state != NULL ? v->state : "initialized");
    pgp_i(&p, v->deployed_at);
    pgp_i(&p, v->deploy_requested_at);
    pgp_i(&p, v->created_at ? v->created_at : cp_now_ms());
    int rc = pg_write_row(
        st,
        "INSERT INTO grid_services(id, grid_id, stack_id, name, spec, "
        "revision, stack_revision, state, deployed_at, deploy_requested_at, "
        "created_at, updated_at) "
        "SELECT $1::text, k.grid_id, k.id, $4::text, $5::text, $6::bigint, "
        "$7::bigint, $8::text, $9::bigint, $10::bigint, $11::bigint, "
        "$11::bigint FROM stacks k WHERE k.grid_id=$2::text AND "
        "(k.id=$3::text OR ($3::text IS NULL AND k.name='null'))",
        &p, CP_ENOTFOUND, "service create");
    cp_free(spec);
    return rc;
}

int pgv_service_get(struct store *st, const char *grid_id,
                    const char *stack_name, const char *name,
                    struct store_service *out)
{
    struct pgp p = {0};
    pgp_s(&p, grid_id);
    pgp_s(&p, pg_nz(stack_name) != NULL ? stack_name : "null");
    pgp_s(&p, name);
    memset(out, 0, sizeof(*out));
    return pg_row_one(st,
                      "SELECT " SVC_COLS SVC_FROM
                      "WHERE k.grid_id=$1 AND k.name=$2 AND v.name=$3",
                      &p, read_service, out, "service get");
}

int pgv_service_get_by_id(struct store *st, const char *id,
                          struct store_service *out)
{
    struct pgp p = {0};
    pgp_s(&p, id);
    memset(out, 0, sizeof(*out));
    return pg_row_one(st, "SELECT " SVC_COLS SVC_FROM "WHERE v.id=$1", &p,
                      read_service, out, "service get");
}

int pgv_service_list(struct store *st, const char *grid_id,
                     const char *stack_name, struct store_service_list *out)
{
    struct pgp p = {0};
    pgp_s(&p, grid_id);
    pgp_s(&p, stack_name);
    void *items = NULL;
    int rc = pg_rows_all(st,
                         "SELECT " SVC_COLS SVC_FROM
                         "WHERE v.grid_id=$1 AND ($2::text IS NULL OR "
                         "k.name=$2::text) ORDER BY k.name COLLATE \"C\", "
                         "v.name COLLATE \"C\"",
                         &p, read_service, sizeof(*out->items), &items,
                         &out->len, "service list");
    out->items = items;
    if (rc != 0)
        store_service_list_release(out);
    return rc;
}

/* A NULL spec or state keeps the stored one. */
int pgv_service_update(struct store *st, const struct store_service *v)
{
    char *spec = v->spec != NULL ? cp_json_dump(v->spec) : NULL;
    struct pgp p = {0};
    pgp_s(&p, v->id);
    pgp_s(&p, spec);
    pgp_i(&p, v->revision);
    pgp_i(&p, v->stack_revision);
    pgp_s(&p, v->state);
    pgp_i(&p, v->deployed_at);
    pgp_i(&p, v->deploy_requested_at);
    pgp_i(&p, v->updated_at ? v->updated_at : cp_now_ms());
    pgp_i(&p, v->deployed_revision);
    int rc =
        pg_write_row(st,
                     "UPDATE grid_services SET spec=COALESCE($2::text, spec), "
                     "revision=GREATEST(revision, $3), stack_revision=$4, "
                     "state=COALESCE($5::text, state), "
                     "deployed_at=$6, deploy_requested_at=$7, updated_at=$8, "
                     "deployed_revision=$9 WHERE id=$1",
                     &p, CP_ENOTFOUND, "service update");
    cp_free(spec);
    return rc;
}

/* Instances and deploys go by ON DELETE CASCADE, inside the statement. */
int pgv_service_delete(struct store *st, const char *id)
{
    struct pgp p = {0};
    pgp_s(&p, id);
    return pg_write_row(st, "DELETE FROM grid_services WHERE id=$1", &p,
                        CP_ENOTFOUND, "service delete");
}

/* ==== Instances ==== */

/* Adding a column: also update read_instance_at and INST_NCOLS. */
#define INST_COLS                                                              \
    "i.id, i.service_id, i.instance_number, i.node_id, i.desired_state, "      \
    "i.deploy_rev, i.rev, i.state, i.error, i.updated_at"
#define INST_NCOLS 10

static void read_instance_at(const PGresult *r, int i, int o,
                             struct store_instance *in)
{
    memset(in, 0, sizeof(*in));
    pgr_fixed(r, i, o + 0, in->id, sizeof(in->id));
    pgr_fixed(r, i, o + 1, in->service_id, sizeof(in->service_id));
    in->instance_number = (int)pgr_i64(r, i, o + 2);
    pgr_fixed(r, i, o + 3, in->node_id, sizeof(in->node_id));
    in->desired_state = pgr_str(r, i, o + 4);
    in->deploy_rev = pgr_str(r, i, o + 5);
    in->rev = pgr_str(r, i, o + 6);
    in->state = pgr_str(r, i, o + 7);
    in->error = pgr_str(r, i, o + 8);
    in->updated_at = pgr_i64(r, i, o + 9);
}

static void read_instance(const PGresult *r, int i, void *item)
{
    read_instance_at(r, i, 0, item);
}

int pgv_instance_list(struct store *st, const char *service_id,
                      struct store_instance_list *out)
{
    struct pgp p = {0};
    pgp_s(&p, service_id);
    void *items = NULL;
    int rc = pg_rows_all(st,
                         "SELECT " INST_COLS " FROM grid_service_instances i "
                         "WHERE i.service_id=$1 ORDER BY i.instance_number",
                         &p, read_instance, sizeof(*out->items), &items,
                         &out->len, "instance list");
    out->items = items;
    if (rc != 0)
        store_instance_list_release(out);
    return rc;
}

struct on_node_ctx {
    const char *node_id;
    struct store_instance_list *instances;
    struct store_service_list *services;
};

static int on_node_fn(struct pgc *c, void *ctx)
{
    struct on_node_ctx *k = ctx;
    struct pgp p = {0};
    pgp_s(&p, k->node_id);
    PGresult *r = NULL;
    int rc = pgx_exec(c,
                      "SELECT " INST_COLS ", " SVC_COLS
                      " FROM grid_service_instances i "
                      "JOIN grid_services v ON v.id=i.service_id "
                      "JOIN stacks k ON k.id=v.stack_id "
                      "WHERE i.node_id=$1 ORDER BY k.name COLLATE \"C\", "
                      "v.name COLLATE \"C\", i.instance_number",
                      &p, "instances on node", &r);
    if (rc != 0)
        return rc;
    size_t n = (size_t)PQntuples(r);
    if (n > 0) {
        k->instances->items = cp_calloc(n, sizeof(*k->instances->items));
        k->services->items = cp_calloc(n, sizeof(*k->services->items));
    }
    for (size_t i = 0; i < n; i++) {
        read_instance_at(r, (int)i, 0, &k->instances->items[i]);
        read_service_at(r, (int)i, INST_NCOLS, &k->services->items[i]);
    }
    k->instances->len = k->services->len = n;
    PQclear(r);
    return 0;
}

/* One query: each row carries the instance and its service side by side,
 * so services[i] is a copy of the service of instances[i]. */
int pgv_instances_on_node(struct store *st, const char *node_id,
                          struct store_instance_list *instances,
                          struct store_service_list *services)
{
    memset(instances, 0, sizeof(*instances));
    memset(services, 0, sizeof(*services));
    struct on_node_ctx k = {node_id, instances, services};
    struct pg_store *s = pgs(st);
    struct pgc *c = pg_conn_get(s);
    if (c == NULL)
        return CP_EIO;
    int rc = on_node_fn(c, &k);
    pg_conn_put(s, c);
    return rc;
}

struct pod_ctx {
    const char *node_id, *grid_id;
    struct store_pod_rows *out;
};

struct names {
    char *node, *grid;
};

static void read_names(const PGresult *r, int i, void *item)
{
    struct names *n = item;
    n->node = pgr_str(r, i, 0);
    n->grid = pgr_str(r, i, 1);
}

/* Both queries in one transaction: the rows match the names read. */
static int pod_fn(struct pgc *c, void *ctx)
{
    struct pod_ctx *k = ctx;
    store_pod_rows_release(k->out);
    struct pgp p = {0};
    pgp_s(&p, k->node_id);
    pgp_s(&p, k->grid_id);
    struct names nm = {0};
    int rc = pgx_row_in(c,
                        "SELECT n.name, g.name FROM host_nodes n, grids g "
                        "WHERE n.id=$1 AND g.id=$2",
                        &p, read_names, &nm, "pod rows node");
    if (rc != 0)
        return rc;
    k->out->node_name = nm.node;
    k->out->grid_name = nm.grid;
    struct pgp q = {0};
    pgp_s(&q, k->node_id);
    PGresult *r = NULL;
    rc = pgx_exec(c,
                  "SELECT " INST_COLS ", v.name, k.name, v.spec, "
                  "v.revision, v.updated_at FROM grid_service_instances i "
                  "JOIN grid_services v ON v.id=i.service_id "
                  "JOIN stacks k ON k.id=v.stack_id "
                  "WHERE i.node_id=$1 ORDER BY k.name COLLATE \"C\", "
                  "v.name COLLATE \"C\", i.instance_number",
                  &q, "pod rows", &r);
    if (rc != 0)
        return rc;
    size_t n = (size_t)PQntuples(r);
    if (n > 0)
        k->out->items = cp_calloc(n, sizeof(*k->out->items));
    for (size_t i = 0; i < n; i++) {
        struct store_pod_row *row = &k->out->items[i];
        read_instance_at(r, (int)i, 0, &row->inst);
        row->service_name = pgr_str(r, (int)i, INST_NCOLS + 0);
        row->stack_name = pgr_str(r, (int)i, INST_NCOLS + 1);
        row->spec = pgr_str(r, (int)i, INST_NCOLS + 2);
        row->revision = pgr_i64(r, (int)i, INST_NCOLS + 3);
        row->updated_at = pgr_i64(r, (int)i, INST_NCOLS + 4);
    }
    k->out->len = n;
    PQclear(r);
    return 0;
}

int pgv_node_pod_rows(struct store *st, const char *node_id,
                      const char *grid_id, struct store_pod_rows *out)
{
    memset(out, 0, sizeof(*out));
    struct pod_ctx k = {node_id, grid_id, out};
    int rc = pg_tx(st, pod_fn, &k);
    if (rc != 0)
        store_pod_rows_release(out);
    return rc;
}

/* Replaces every field but the row id, which a replaced instance keeps. */
static int put_one(struct pgc *c, const struct store_instance *i)
{
    char id[STORE_ID_LEN + 1];
    if (i->id[0] != '\0')
        memcpy(id, i->id, sizeof(id));
    else
        store_new_id(id);
    struct pgp p = {0};
    pgp_s(&p, id);
    pgp_s(&p, i->service_id);
    pgp_i(&p, i->instance_number);
    pgp_s(&p, pg_nz(i->node_id));
    pgp_s(&p, i->desired_state ? i->desired_state : "running");
    pgp_s(&p, i->deploy_rev);
    pgp_s(&p, i->rev);
    pgp_s(&p, i->state);
    pgp_s(&p, i->error);
    pgp_i(&p, i->updated_at ? i->updated_at : cp_now_ms());
    return pgx_run(c,
                   "INSERT INTO grid_service_instances(id, service_id, "
                   "instance_number, node_id, desired_state, deploy_rev, rev, "
                   "state, error, updated_at) VALUES($1, $2, $3, $4, $5, $6, "
                   "$7, $8, $9, $10) "
                   "ON CONFLICT(service_id, instance_number) DO UPDATE SET "
                   "node_id=excluded.node_id, "
                   "desired_state=excluded.desired_state, "
                   "deploy_rev=excluded.deploy_rev, rev=excluded.rev, "
                   "state=excluded.state, error=excluded.error, "
                   "updated_at=excluded.updated_at",
                   &p, "instance put", NULL);
}

struct put_ctx {
    const struct store_instance *v;
    size_t n;
};

static int put_fn(struct pgc *c, void *ctx)
{
    struct put_ctx *k = ctx;
    for (size_t i = 0; i < k->n; i++) {
        int rc = put_one(c, &k->v[i]);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int pgv_instance_put(struct store *st, const struct store_instance *i)
{
    struct pg_store *s = pgs(st);
    struct pgc *c = pg_conn_get(s);
    if (c == NULL)
        return CP_EIO;
    int rc = put_one(c, i);
    pg_conn_put(s, c);
    return rc;
}

int pgv_instance_put_many(struct store *st, const struct store_instance *v,
                          size_t n)
{
    struct put_ctx k = {v, n};
    return n == 0 ? 0 : pg_tx(st, put_fn, &k);
}

int pgv_instance_trim(struct store *st, const char *service_id, int keep)
{
    struct pgp p = {0};
    pgp_s(&p, service_id);
    pgp_i(&p, keep);
    return pg_write(st,
                    "DELETE FROM grid_service_instances "
                    "WHERE service_id=$1 AND instance_number>$2",
                    &p, NULL, "instance trim");
}

/* Revs are fixed-width UTC "YYYY-MM-DD HH:MM:SS" strings, so byte order
 * is time order; a NULL rev is older than any. A report from a node the
 * instance is no longer placed on is ignored like an older one (see the
 * SQLite backend). Both return 0. */
static int report_one(struct pgc *c, const char *service_id,
                      int instance_number, const char *node_id, const char *rev,
                      const char *state, const char *error, int64_t now)
{
    struct pgp p = {0};
    pgp_s(&p, service_id);
    pgp_i(&p, instance_number);
    pgp_s(&p, pg_nz(node_id));
    pgp_s(&p, rev);
    pgp_s(&p, state);
    pgp_s(&p, error);
    pgp_i(&p, now);
    int changes = 0;
    int rc = pgx_run(
        c,
        "UPDATE grid_service_instances SET rev=$4, state=$5, error=$6, "
        "updated_at=$7 WHERE service_id=$1 AND instance_number=$2 "
        "AND ($3::text IS NULL OR node_id IS NOT DISTINCT FROM $3::text) "
        "AND (rev IS NULL OR ($4::text IS NOT NULL AND "
        "rev COLLATE \"C\" <= $4::text))",
        &p, "instance report", &changes);
    if (rc != 0 || changes > 0)
        return rc;
    /* Nothing written: stale report (fine) or no such instance. */
    struct pgp q = {0};
    pgp_s(&q, service_id);
    pgp_i(&q, instance_number);
    PGresult *r = NULL;
    rc = pgx_exec(c,
                  "SELECT 1 FROM grid_service_instances "
                  "WHERE service_id=$1 AND instance_number=$2",
                  &q, "instance exists", &r);
    if (rc != 0)
        return rc;
    rc = PQntuples(r) > 0 ? 0 : CP_ENOTFOUND;
    PQclear(r);
    return rc;
}

int pgv_instance_report(struct store *st, const char *service_id,
                        int instance_number, const char *node_id,
                        const char *rev, const char *state, const char *error)
{
    struct pg_store *s = pgs(st);
    struct pgc *c = pg_conn_get(s);
    if (c == NULL)
        return CP_EIO;
    int rc = report_one(c, service_id, instance_number, node_id, rev, state,
                        error, cp_now_ms());
    pg_conn_put(s, c);
    return rc;
}

struct report_ctx {
    struct store_instance_report *v;
    size_t n;
    int64_t now;
};

static int report_fn(struct pgc *c, void *ctx)
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

int pgv_instances_report_many(struct store *st, struct store_instance_report *v,
                              size_t n)
{
    struct report_ctx k = {v, n, cp_now_ms()};
    return n == 0 ? 0 : pg_tx(st, report_fn, &k);
}

int pgv_instances_detach_node(struct store *st, const char *node_id, int *count)
{
    struct pgp p = {0};
    pgp_s(&p, node_id);
    int changes = 0;
    int rc = pg_write(st,
                      "UPDATE grid_service_instances SET node_id=NULL "
                      "WHERE node_id=$1",
                      &p, &changes, "instances detach");
    if (count != NULL)
        *count = rc == 0 ? changes : 0;
    return rc;
}
