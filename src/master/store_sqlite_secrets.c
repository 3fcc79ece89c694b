/* SQLite backend: the vault's secrets (spec 7), and the compare-and-set
 * re-sealing of every sealed value that a key rotation rewrites. Values arrive sealed;
 * this file never sees a plaintext. Which services use a secret is read
 * from their spec JSON ("secrets": [{secret, name, type}]) with
 * json_each, so a list is two queries whatever the number of secrets and
 * services, and a write bumps the revision of the services using the
 * secret in the same transaction.
 * SPDX-License-Identifier: Apache-2.0 */
#include "store_sqlite_int.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/util.h"

#include <stdio.h>
#include <string.h>

#define SECRET_COLS "id, grid_id, name, value, created_at, updated_at"

static void read_secret(sqlite3_stmt *q, void *item)
{
    struct store_secret *v = item;
    memset(v, 0, sizeof(*v));
    sqlx_col_fixed(q, 0, v->id, sizeof(v->id));
    sqlx_col_fixed(q, 1, v->grid_id, sizeof(v->grid_id));
    v->name = sqlx_col_str(q, 2);
    v->value = sqlx_col_str(q, 3);
    v->created_at = sqlite3_column_int64(q, 4);
    v->updated_at = sqlite3_column_int64(q, 5);
}

/* Services of the grid whose spec names secret ?2 (or any secret when ?2
 * is NULL), one row per (secret, service), ordered by secret, stack and
 * service name. */
#define SECRET_OF_J                                                            \
    "(CASE WHEN j.type='object' THEN json_extract(j.value, '$.secret') END)"
static const char USERS_SQL[] =
    "SELECT DISTINCT " SECRET_OF_J ", v.id, k.name, v.name"
    " FROM grid_services v JOIN stacks k ON k.id=v.stack_id,"
    " json_each(v.spec, '$.secrets') j"
    " WHERE v.grid_id=?1 AND " SECRET_OF_J " IS NOT NULL"
    " AND (?2 IS NULL OR " SECRET_OF_J "=?2)"
    " ORDER BY 1, 3, 4";

/* Bumps the services of the grid using secret name. */
static const char BUMP_SQL[] =
    "UPDATE grid_services SET revision=revision+1, updated_at=?3"
    " WHERE grid_id=?1 AND EXISTS (SELECT 1 FROM json_each("
    "grid_services.spec, '$.secrets') j WHERE " SECRET_OF_J "=?2)";

static void add_user(struct store_secret *s, sqlite3_stmt *q)
{
    s->services = cp_realloc(s->services,
                             (s->nservices + 1) * sizeof(*s->services));
    struct store_secret_user *u = &s->services[s->nservices++];
    memset(u, 0, sizeof(*u));
    sqlx_col_fixed(q, 1, u->id, sizeof(u->id));
    u->stack_name = sqlx_col_str(q, 2);
    u->name = sqlx_col_str(q, 3);
}

/* Attaches to each of the n secrets (ordered by name) the services using
 * it; name NULL reads every secret's users, else only that name's. */
static int attach_users(struct conn *c, const char *grid_id, const char *name,
                        struct store_secret *v, size_t n)
{
    sqlite3_stmt *q = sqlx_prep(c, USERS_SQL);
    if (q == NULL)
        return CP_EIO;
    sqlx_bind_str(q, 1, grid_id);
    sqlx_bind_str(q, 2, name);
    int rc;
    size_t k = 0;
    while ((rc = sqlx_step(c, q, "secret users")) == 1) {
        const char *secret = (const char *)sqlite3_column_text(q, 0);
        if (secret == NULL)
            continue;
        /* Both sides are ordered by name (BINARY collation); skip the
         * secrets no service uses, and services naming a missing one. */
        while (k < n && strcmp(v[k].name, secret) < 0)
            k++;
        if (k < n && strcmp(v[k].name, secret) == 0)
            add_user(&v[k], q);
    }
    sqlx_done(q);
    return rc;
}

static int bump(struct conn *c, const char *grid_id, const char *name,
                int64_t now, int *bumped)
{
    sqlite3_stmt *q = sqlx_prep(c, BUMP_SQL);
    if (q == NULL)
        return CP_EIO;
    sqlx_bind_str(q, 1, grid_id);
    sqlx_bind_str(q, 2, name);
    sqlite3_bind_int64(q, 3, now);
    int rc = sqlx_run(c, q, "secret bump services");
    if (rc == 0 && bumped != NULL)
        *bumped = sqlite3_changes(c->db);
    return rc;
}

int sqv_secret_create(struct store *st, const struct store_secret *v,
                      int *bumped)
{
    struct sq_store *s = sq(st);
    if (bumped != NULL)
        *bumped = 0;
    CONN_OR_EIO(s, c);
    int rc = sqlx_tx_begin(c);
    if (rc != 0)
        goto out;
    sqlite3_stmt *q = sqlx_prep(c, "INSERT INTO grid_secrets(" SECRET_COLS
                                   ") VALUES(?1, ?2, ?3, ?4, ?5, ?5)");
    if (q == NULL) {
        rc = CP_EIO;
        goto out;
    }
    int64_t now = v->created_at ? v->created_at : cp_now_ms();
    sqlx_bind_str(q, 1, v->id);
    sqlx_bind_str(q, 2, v->grid_id);
    sqlx_bind_str(q, 3, v->name);
    sqlx_bind_str(q, 4, v->value);
    sqlite3_bind_int64(q, 5, now);
    rc = sqlx_run(c, q, "secret create");
    if (rc == 0)
        rc = bump(c, v->grid_id, v->name, now, bumped);
    if (rc == 0)
        rc = sqlx_tx_commit(c);
out:
    sqlx_conn_put(s, c); /* rolls back an open transaction */
    return rc;
}

int sqv_secret_get(struct store *st, const char *grid_id, const char *name,
                   struct store_secret *out)
{
    struct sq_store *s = sq(st);
    memset(out, 0, sizeof(*out));
    CONN_OR_EIO(s, c);
    int rc = sqlx_row_in(c,
                         "SELECT " SECRET_COLS
                         " FROM grid_secrets WHERE grid_id=?1 AND name=?2",
                         ARGS(grid_id, name), read_secret, out, "secret get");
    if (rc == 0)
        rc = attach_users(c, grid_id, name, out, 1);
    sqlx_conn_put(s, c);
    if (rc != 0)
        store_secret_release(out);
    return rc;
}

int sqv_secret_list(struct store *st, const char *grid_id,
                    struct store_secret_list *out)
{
    struct sq_store *s = sq(st);
    memset(out, 0, sizeof(*out));
    CONN_OR_EIO(s, c);
    int rc = CP_EIO;
    void *items = NULL;
    size_t len = 0;
    sqlite3_stmt *q = sqlx_prep(c, "SELECT " SECRET_COLS
                                   " FROM grid_secrets WHERE grid_id=?1"
                                   " ORDER BY name");
    if (q == NULL)
        goto out;
    sqlx_bind_str(q, 1, grid_id);
    rc = sqlx_collect(c, q, "secret list", read_secret, sizeof(*out->items),
                      &items, &len);
    sqlx_done(q);
    out->items = items;
    out->len = len;
    if (rc == 0)
        rc = attach_users(c, grid_id, NULL, out->items, out->len);
out:
    sqlx_conn_put(s, c);
    if (rc != 0)
        store_secret_list_release(out);
    return rc;
}

int sqv_secret_update(struct store *st, const char *grid_id, const char *name,
                      const char *value, int64_t now, int *bumped)
{
    struct sq_store *s = sq(st);
    if (bumped != NULL)
        *bumped = 0;
    CONN_OR_EIO(s, c);
    int rc = sqlx_tx_begin(c);
    if (rc != 0)
        goto out;
    sqlite3_stmt *q =
        sqlx_prep(c, "UPDATE grid_secrets SET value=?3, updated_at=?4"
                     " WHERE grid_id=?1 AND name=?2");
    if (q == NULL) {
        rc = CP_EIO;
        goto out;
    }
    sqlx_bind_str(q, 1, grid_id);
    sqlx_bind_str(q, 2, name);
    sqlx_bind_str(q, 3, value);
    sqlite3_bind_int64(q, 4, now);
    rc = sqlx_run(c, q, "secret update");
    if (rc == 0 && sqlite3_changes(c->db) == 0)
        rc = CP_ENOTFOUND;
    if (rc == 0)
        rc = bump(c, grid_id, name, now, bumped);
    if (rc == 0)
        rc = sqlx_tx_commit(c);
out:
    sqlx_conn_put(s, c);
    return rc;
}

int sqv_secret_delete(struct store *st, const char *grid_id, const char *name)
{
    struct sq_store *s = sq(st);
    CONN_OR_EIO(s, c);
    int rc = sqlx_tx_begin(c);
    if (rc != 0)
        goto out;
    sqlite3_stmt *q = sqlx_prep(c, USERS_SQL);
    if (q == NULL) {
        rc = CP_EIO;
        goto out;
    }
    sqlx_bind_str(q, 1, grid_id);
    sqlx_bind_str(q, 2, name);
    rc = sqlx_step(c, q, "secret users");
    sqlx_done(q);
    if (rc == 1)
        rc = CP_ECONFLICT;
    if (rc != 0)
        goto out;
    q = sqlx_prep(c, "DELETE FROM grid_secrets WHERE grid_id=?1 AND name=?2");
    if (q == NULL) {
        rc = CP_EIO;
        goto out;
    }
    sqlx_bind_str(q, 1, grid_id);
    sqlx_bind_str(q, 2, name);
    rc = sqlx_run(c, q, "secret delete");
    if (rc == 0 && sqlite3_changes(c->db) == 0)
        rc = CP_ENOTFOUND;
    if (rc == 0)
        rc = sqlx_tx_commit(c);
out:
    sqlx_conn_put(s, c);
    return rc;
}

/* Compare-and-set of one sealed column: update sets it to ?3 where id=?1
 * and it is still ?2; exists tells a change from a missing row. */
static int reseal_cas(struct store *st, const char *update, const char *exists,
                      const char *id, const char *old, const char *value)
{
    struct sq_store *s = sq(st);
    CONN_OR_EIO(s, c);
    int rc = sqlx_tx_begin(c);
    if (rc != 0)
        goto out;
    sqlite3_stmt *q = sqlx_prep(c, update);
    if (q == NULL) {
        rc = CP_EIO;
        goto out;
    }
    sqlx_bind_str(q, 1, id);
    sqlx_bind_str(q, 2, old);
    sqlx_bind_str(q, 3, value);
    rc = sqlx_run(c, q, "reseal");
    if (rc == 0 && sqlite3_changes(c->db) == 0) {
        q = sqlx_prep(c, exists);
        if (q == NULL) {
            rc = CP_EIO;
            goto out;
        }
        sqlx_bind_str(q, 1, id);
        rc = sqlx_step(c, q, "reseal check");
        sqlx_done(q);
        rc = rc == 1 ? CP_ECONFLICT : (rc == 0 ? CP_ENOTFOUND : rc);
    }
    if (rc == 0)
        rc = sqlx_tx_commit(c);
out:
    sqlx_conn_put(s, c);
    return rc;
}

int sqv_secret_reseal(struct store *st, const char *id, const char *old,
                      const char *value)
{
    return reseal_cas(
        st, "UPDATE grid_secrets SET value=?3 WHERE id=?1 AND value=?2",
        "SELECT 1 FROM grid_secrets WHERE id=?1", id, old, value);
}

int sqv_grid_token_reseal(struct store *st, const char *id, const char *old,
                          const char *value)
{
    return reseal_cas(
        st, "UPDATE grids SET token_sealed=?3 WHERE id=?1 AND token_sealed=?2",
        "SELECT 1 FROM grids WHERE id=?1", id, old, value);
}

int sqv_node_token_reseal(struct store *st, const char *id, const char *old,
                          const char *value)
{
    return reseal_cas(st,
                      "UPDATE host_nodes SET token_sealed=?3"
                      " WHERE id=?1 AND token_sealed=?2",
                      "SELECT 1 FROM host_nodes WHERE id=?1", id, old, value);
}

int sqv_registry_reseal(struct store *st, const char *id, const char *old,
                        const char *value)
{
    return reseal_cas(st,
                      "UPDATE registries SET password_sealed=?3"
                      " WHERE id=?1 AND password_sealed=?2",
                      "SELECT 1 FROM registries WHERE id=?1", id, old, value);
}

int sqv_secrets_page(struct store *st, const char *after_id, int limit,
                     struct store_secret_list *out)
{
    memset(out, 0, sizeof(*out));
    char lim[16];
    snprintf(lim, sizeof(lim), "%d", limit > 0 ? limit : 100);
    void *items = NULL;
    size_t len = 0;
    int rc = sqlx_rows_all(st,
                           "SELECT " SECRET_COLS " FROM grid_secrets"
                           " WHERE id>?1 ORDER BY id LIMIT CAST(?2 AS INTEGER)",
                           ARGS(after_id != NULL ? after_id : "", lim),
                           read_secret, sizeof(*out->items), &items, &len,
                           "secrets page");
    out->items = items;
    out->len = len;
    if (rc != 0)
        store_secret_list_release(out);
    return rc;
}
