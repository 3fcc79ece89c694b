/* SQLite backend: external registries (sealed passwords) and the bounded
 * audit log (migration 7).
 *
 * An audit entry is one INSERT and nothing else: the request that writes
 * it has already been answered by its handler, and reads never write.
 * Trimming is a separate periodic job (jobs.c).
 * SPDX-License-Identifier: Apache-2.0 */
#include "store_sqlite_int.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/util.h"

#include <string.h>

/* ==== Registries ==== */

#define REG_COLS                                                               \
    "id, grid_id, name, url, username, password_sealed, email, created_at, "   \
    "updated_at"

static void read_registry(sqlite3_stmt *q, void *item)
{
    struct store_registry *r = item;
    memset(r, 0, sizeof(*r));
    sqlx_col_fixed(q, 0, r->id, sizeof(r->id));
    sqlx_col_fixed(q, 1, r->grid_id, sizeof(r->grid_id));
    r->name = sqlx_col_str(q, 2);
    r->url = sqlx_col_str(q, 3);
    r->username = sqlx_col_str(q, 4);
    r->password_sealed = sqlx_col_str(q, 5);
    r->email = sqlx_col_str(q, 6);
    r->created_at = sqlite3_column_int64(q, 7);
    r->updated_at = sqlite3_column_int64(q, 8);
}

int sqa_registry_create(struct store *st, const struct store_registry *r)
{
    struct sq_store *s = sq(st);
    CONN_OR_EIO(s, c);
    int rc = CP_EIO;
    sqlite3_stmt *q = sqlx_prep(c, "INSERT INTO registries(" REG_COLS ") "
                                   "VALUES(?,?,?,?,?,?,?,?,?)");
    if (q == NULL)
        goto out;
    int64_t now = cp_now_ms();
    sqlx_bind_str(q, 1, r->id);
    sqlx_bind_str(q, 2, r->grid_id);
    sqlx_bind_str(q, 3, r->name);
    sqlx_bind_str(q, 4, r->url);
    sqlx_bind_str(q, 5, r->username);
    sqlx_bind_str(q, 6, r->password_sealed);
    sqlx_bind_str(q, 7, r->email);
    sqlite3_bind_int64(q, 8, r->created_at ? r->created_at : now);
    sqlite3_bind_int64(q, 9, r->updated_at ? r->updated_at : now);
    rc = sqlx_run(c, q, "registry create");
out:
    sqlx_conn_put(s, c);
    return rc;
}

int sqa_registry_list(struct store *st, const char *grid_id,
                      struct store_registry_list *out)
{
    void *items = NULL;
    int rc = sqlx_rows_all(st,
                           "SELECT " REG_COLS " FROM registries "
                           "WHERE grid_id=? ORDER BY name",
                           ARGS(grid_id), read_registry, sizeof(*out->items),
                           &items, &out->len, "registry list");
    out->items = items;
    return rc;
}

int sqa_registry_get(struct store *st, const char *grid_id, const char *name,
                     struct store_registry *out)
{
    return sqlx_row_one(st,
                        "SELECT " REG_COLS " FROM registries "
                        "WHERE grid_id=? AND name=?",
                        ARGS(grid_id, name), read_registry, out,
                        "registry get");
}

int sqa_registry_delete(struct store *st, const char *grid_id, const char *name)
{
    return sqlx_write_row(st,
                          "DELETE FROM registries WHERE grid_id=? AND "
                          "name=?",
                          ARGS(grid_id, name), CP_ENOTFOUND);
}

/* ==== Audit log ==== */

/* Adding a column: also update read_audit, the insert and AUDIT_NCOLS. */
#define AUDIT_COLS                                                             \
    "seq, grid_id, grid_name, user_id, user_email, resource_type, "            \
    "resource_id, resource_name, service_id, event_name, event_status, "       \
    "status, method, path, source_ip, user_agent, request_body, created_at"
#define AUDIT_NCOLS 18

static void read_audit(sqlite3_stmt *q, void *item)
{
    struct store_audit *a = item;
    memset(a, 0, sizeof(*a));
    a->seq = sqlite3_column_int64(q, 0);
    sqlx_col_fixed(q, 1, a->grid_id, sizeof(a->grid_id));
    a->grid_name = sqlx_col_str(q, 2);
    sqlx_col_fixed(q, 3, a->user_id, sizeof(a->user_id));
    a->user_email = sqlx_col_str(q, 4);
    a->resource_type = sqlx_col_str(q, 5);
    a->resource_id = sqlx_col_str(q, 6);
    a->resource_name = sqlx_col_str(q, 7);
    a->service_id = sqlx_col_str(q, 8);
    a->event_name = sqlx_col_str(q, 9);
    a->event_status = sqlx_col_str(q, 10);
    a->status = sqlite3_column_int(q, 11);
    a->method = sqlx_col_str(q, 12);
    a->path = sqlx_col_str(q, 13);
    a->source_ip = sqlx_col_str(q, 14);
    a->user_agent = sqlx_col_str(q, 15);
    a->request_body = sqlx_col_str(q, 16);
    a->created_at = sqlite3_column_int64(q, 17);
}

static const char *nz(const char *s)
{
    return s != NULL && s[0] != '\0' ? s : NULL;
}

int sqa_audit_append(struct store *st, const struct store_audit *a)
{
    struct sq_store *s = sq(st);
    CONN_OR_EIO(s, c);
    int rc = CP_EIO;
    /* seq is the rowid: AUTOINCREMENT never reuses a trimmed one. */
    sqlite3_stmt *q = sqlx_prep(
        c, "INSERT INTO audit_logs(grid_id, grid_name, user_id, user_email, "
           "resource_type, resource_id, resource_name, service_id, "
           "event_name, event_status, status, method, path, source_ip, "
           "user_agent, request_body, created_at) "
           "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
    if (q == NULL)
        goto out;
    sqlx_bind_str(q, 1, nz(a->grid_id));
    sqlx_bind_str(q, 2, a->grid_name);
    sqlx_bind_str(q, 3, nz(a->user_id));
    sqlx_bind_str(q, 4, a->user_email);
    sqlx_bind_str(q, 5, a->resource_type);
    sqlx_bind_str(q, 6, a->resource_id);
    sqlx_bind_str(q, 7, a->resource_name);
    sqlx_bind_str(q, 8, a->service_id);
    sqlx_bind_str(q, 9, a->event_name);
    sqlx_bind_str(q, 10, a->event_status);
    sqlite3_bind_int(q, 11, a->status);
    sqlx_bind_str(q, 12, a->method);
    sqlx_bind_str(q, 13, a->path);
    sqlx_bind_str(q, 14, a->source_ip);
    sqlx_bind_str(q, 15, a->user_agent);
    sqlx_bind_str(q, 16, a->request_body);
    sqlite3_bind_int64(q, 17, a->created_at ? a->created_at : cp_now_ms());
    rc = sqlx_run(c, q, "audit append");
out:
    sqlx_conn_put(s, c);
    return rc;
}

int sqa_audit_list(struct store *st, const char *grid_id, int limit,
                   struct store_audit_list *out)
{
    struct sq_store *s = sq(st);
    out->items = NULL;
    out->len = 0;
    CONN_OR_EIO(s, c);
    int rc = CP_EIO;
    sqlite3_stmt *q =
        grid_id != NULL
            ? sqlx_prep(c, "SELECT " AUDIT_COLS " FROM audit_logs "
                           "WHERE grid_id=? ORDER BY seq DESC LIMIT ?")
            : sqlx_prep(c, "SELECT " AUDIT_COLS " FROM audit_logs "
                           "ORDER BY seq DESC LIMIT ?");
    if (q == NULL)
        goto out;
    int i = 1;
    if (grid_id != NULL)
        sqlx_bind_str(q, i++, grid_id);
    sqlite3_bind_int(q, i, limit > 0 ? limit : 1);
    void *items = NULL;
    rc = sqlx_collect(c, q, "audit list", read_audit, sizeof(*out->items),
                      &items, &out->len);
    out->items = items;
    sqlx_done(q);
out:
    sqlx_conn_put(s, c);
    return rc;
}

int sqa_audit_trim(struct store *st, int64_t keep, int *deleted)
{
    struct sq_store *s = sq(st);
    *deleted = 0;
    if (keep < 0)
        return 0;
    CONN_OR_EIO(s, c);
    int rc = CP_EIO;
    sqlite3_stmt *q = sqlx_prep(c, "DELETE FROM audit_logs WHERE seq<="
                                   "(SELECT seq FROM audit_logs "
                                   "ORDER BY seq DESC LIMIT 1 OFFSET ?)");
    if (q == NULL)
        goto out;
    sqlite3_bind_int64(q, 1, keep);
    rc = sqlx_run(c, q, "audit trim");
    if (rc == 0)
        *deleted = sqlite3_changes(c->db);
out:
    sqlx_conn_put(s, c);
    return rc;
}
