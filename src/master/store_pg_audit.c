/* PostgreSQL backend: external registries (sealed passwords) and the
 * bounded audit log (migration 7), as store_sqlite_audit.c.
 *
 * An audit entry is one INSERT and nothing else; trimming is a separate
 * periodic job (jobs.c). seq is an identity column: never reused, so
 * "newest first" is "highest seq first" on every master sharing the
 * database.
 * SPDX-License-Identifier: Apache-2.0 */
#include "store_pg_int.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/util.h"

#include <string.h>

/* ==== Registries ==== */

#define REG_COLS                                                               \
    "id, grid_id, name, url, username, password_sealed, email, created_at, "   \
    "updated_at"

static void read_registry(const PGresult *r, int i, void *item)
{
    struct store_registry *v = item;
    memset(v, 0, sizeof(*v));
    pgr_fixed(r, i, 0, v->id, sizeof(v->id));
    pgr_fixed(r, i, 1, v->grid_id, sizeof(v->grid_id));
    v->name = pgr_str(r, i, 2);
    v->url = pgr_str(r, i, 3);
    v->username = pgr_str(r, i, 4);
    v->password_sealed = pgr_str(r, i, 5);
    v->email = pgr_str(r, i, 6);
    v->created_at = pgr_i64(r, i, 7);
    v->updated_at = pgr_i64(r, i, 8);
}

/* A clash on (grid_id, name) is CP_ECONFLICT, a missing grid CP_ENOTFOUND
 * (foreign key). */
int pga_registry_create(struct store *st, const struct store_registry *r)
{
    int64_t now = cp_now_ms();
    struct pgp p = {0};
    pgp_s(&p, r->id);
    pgp_s(&p, r->grid_id);
    pgp_s(&p, r->name);
    pgp_s(&p, r->url);
    pgp_s(&p, r->username);
    pgp_s(&p, r->password_sealed);
    pgp_s(&p, r->email);
    pgp_i(&p, r->created_at ? r->created_at : now);
    pgp_i(&p, r->updated_at ? r->updated_at : now);
    return pg_write(st,
                    "INSERT INTO registries(" REG_COLS ") "
                    "VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    &p, NULL, "registry create");
}

int pga_registry_list(struct store *st, const char *grid_id,
                      struct store_registry_list *out)
{
    struct pgp p = {0};
    pgp_s(&p, grid_id);
    void *items = NULL;
    int rc = pg_rows_all(st,
                         "SELECT " REG_COLS " FROM registries "
                         "WHERE grid_id=$1 ORDER BY name COLLATE \"C\"",
                         &p, read_registry, sizeof(*out->items), &items,
                         &out->len, "registry list");
    out->items = items;
    return rc;
}

int pga_registry_get(struct store *st, const char *grid_id, const char *name,
                     struct store_registry *out)
{
    struct pgp p = {0};
    pgp_s(&p, grid_id);
    pgp_s(&p, name);
    memset(out, 0, sizeof(*out));
    return pg_row_one(st,
                      "SELECT " REG_COLS " FROM registries "
                      "WHERE grid_id=$1 AND name=$2",
                      &p, read_registry, out, "registry get");
}

int pga_registry_delete(struct store *st, const char *grid_id, const char *name)
{
    struct pgp p = {0};
    pgp_s(&p, grid_id);
    pgp_s(&p, name);
    return pg_write_row(st,
                        "DELETE FROM registries WHERE grid_id=$1 AND name=$2",
                        &p, CP_ENOTFOUND, "registry delete");
}

/* ==== Audit log ==== */

/* Adding a column: also update read_audit and the insert. */
#define AUDIT_COLS                                                             \
    "seq, grid_id, grid_name, user_id, user_email, resource_type, "            \
    "resource_id, resource_name, service_id, event_name, event_status, "       \
    "status, method, path, source_ip, user_agent, request_body, created_at"

static void read_audit(const PGresult *r, int i, void *item)
{
    struct store_audit *a = item;
    memset(a, 0, sizeof(*a));
    a->seq = pgr_i64(r, i, 0);
    pgr_fixed(r, i, 1, a->grid_id, sizeof(a->grid_id));
    a->grid_name = pgr_str(r, i, 2);
    pgr_fixed(r, i, 3, a->user_id, sizeof(a->user_id));
    a->user_email = pgr_str(r, i, 4);
    a->resource_type = pgr_str(r, i, 5);
    a->resource_id = pgr_str(r, i, 6);
    a->resource_name = pgr_str(r, i, 7);
    a->service_id = pgr_str(r, i, 8);
    a->event_name = pgr_str(r, i, 9);
    a->event_status = pgr_str(r, i, 10);
    a->status = (int)pgr_i64(r, i, 11);
    a->method = pgr_str(r, i, 12);
    a->path = pgr_str(r, i, 13);
    a->source_ip = pgr_str(r, i, 14);
    a->user_agent = pgr_str(r, i, 15);
    a->request_body = pgr_str(r, i, 16);
    a->created_at = pgr_i64(r, i, 17);
}

int pga_audit_append(struct store *st, const struct store_audit *a)
{
    struct pgp p = {0};
    pgp_s(&p, pg_nz(a->grid_id));
    pgp_s(&p, a->grid_name);
    pgp_s(&p, pg_nz(a->user_id));
    pgp_s(&p, a->user_email);
    pgp_s(&p, a->resource_type);
    pgp_s(&p, a->resource_id);
    pgp_s(&p, a->resource_name);
    pgp_s(&p, a->service_id);
    pgp_s(&p, a->event_name);
    pgp_s(&p, a->event_status);
    pgp_i(&p, a->status);
    pgp_s(&p, a->method);
    pgp_s(&p, a->path);
    pgp_s(&p, a->source_ip);
    pgp_s(&p, a->user_agent);
    pgp_s(&p, a->request_body);
    pgp_i(&p, a->created_at ? a->created_at : cp_now_ms());
    return pg_write(st,
                    "INSERT INTO audit_logs(grid_id, grid_name, user_id, "
                    "user_email, resource_type, resource_id, resource_name, "
                    "service_id, event_name, event_status, status, method, "
                    "path, source_ip, user_agent, request_body, created_at) "
                    "VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, "
                    "$12, $13, $14, $15, $16, $17)",
                    &p, NULL, "audit append");
}

int pga_audit_list(struct store *st, const char *grid_id, int limit,
                   struct store_audit_list *out)
{
    struct pgp p = {0};
    if (grid_id != NULL)
        pgp_s(&p, grid_id);
    pgp_i(&p, limit > 0 ? limit : 1);
    void *items = NULL;
    /* Two statements rather than "$1 IS NULL OR ...", so that each uses
     * its index. */
    int rc = grid_id != NULL
                 ? pg_rows_all(st,
                               "SELECT " AUDIT_COLS " FROM audit_logs "
                               "WHERE grid_id=$1 ORDER BY seq DESC LIMIT $2",
                               &p, read_audit, sizeof(*out->items), &items,
                               &out->len, "audit list")
                 : pg_rows_all(st,
                               "SELECT " AUDIT_COLS " FROM audit_logs "
                               "ORDER BY seq DESC LIMIT $1",
                               &p, read_audit, sizeof(*out->items), &items,
                               &out->len, "audit list");
    out->items = items;
    return rc;
}

int pga_audit_trim(struct store *st, int64_t keep, int *deleted)
{
    *deleted = 0;
    if (keep < 0)
        return 0;
    struct pgp p = {0};
    pgp_i(&p, keep);
    return pg_write(st,
                    "DELETE FROM audit_logs WHERE seq<="
                    "(SELECT seq FROM audit_logs ORDER BY seq DESC "
                    "LIMIT 1 OFFSET $1)",
                    &p, deleted, "audit trim");
}
