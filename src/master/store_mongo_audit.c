/* MongoDB backend: external registries (sealed passwords) and the
 * bounded audit log, as store_pg_audit.c.
 *
 * An audit entry is one insert (its seq reserved just before in
 * "counters"); trimming is a separate periodic job (jobs.c). seq is never
 * reused, so "newest first" is "highest seq first" on every master
 * sharing the database.
 * SPDX-License-Identifier: Apache-2.0 */
#include "store_mongo_int.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/util.h"

#include <string.h>

/* ==== Registries ==== */

static int read_registry(const bson_t *d, void *item)
{
    struct store_registry *v = item;
    memset(v, 0, sizeof(*v));
    mgr_id(d, v->id);
    mgr_fixed(d, "grid_id", v->grid_id, sizeof(v->grid_id));
    v->name = mgr_str(d, "name");
    v->url = mgr_str(d, "url");
    v->username = mgr_str(d, "username");
    v->password_sealed = mgr_str(d, "password_sealed");
    v->email = mgr_str(d, "email");
    v->created_at = mgr_i64(d, "created_at");
    v->updated_at = mgr_i64(d, "updated_at");
    return 0;
}

static void release_registry(void *item)
{
    store_registry_release(item);
}

/* {grid_id: grid_id, name: name} */
static void grid_name_filter(bson_t *f, const char *grid_id, const char *name)
{
    mgb_str(f, "grid_id", grid_id);
    mgb_str(f, "name", name);
}

struct reg_ctx {
    const struct store_registry *r;
    int64_t now;
};

/* The grid is checked first, in the same transaction: PostgreSQL's
 * foreign key answers CP_ENOTFOUND without it. */
static int reg_create_fn(struct mgc *c, void *ctx)
{
    struct reg_ctx *k = ctx;
    const struct store_registry *r = k->r;
    /* Locked, so that a grid_delete meanwhile conflicts (mgx_lock_row). */
    int rc = mgx_lock_row(c, "grids", r->grid_id, "registry create grid");
    if (rc != 0)
        return rc;
    bson_t d = BSON_INITIALIZER;
    mgb_id(&d, "_id", r->id);
    mgb_id(&d, "grid_id", r->grid_id);
    mgb_str(&d, "name", r->name);
    mgb_str(&d, "url", r->url);
    mgb_str(&d, "username", r->username);
    mgb_str(&d, "password_sealed", r->password_sealed);
    mgb_str(&d, "email", r->email);
    mgb_i64(&d, "created_at", r->created_at ? r->created_at : k->now);
    mgb_i64(&d, "updated_at", r->updated_at ? r->updated_at : k->now);
    rc = mgx_insert(c, "registries", &d, "registry create");
    bson_destroy(&d);
    return rc;
}

/* A clash on (grid_id, name) is CP_ECONFLICT (registries_grid_id_name_key),
 * a missing grid CP_ENOTFOUND. */
int mga_registry_create(struct store *st, const struct store_registry *r)
{
    struct reg_ctx k = {r, cp_now_ms()};
    return mg_tx(st, reg_create_fn, &k);
}

int mga_registry_list(struct store *st, const char *grid_id,
                      struct store_registry_list *out)
{
    memset(out, 0, sizeof(*out));
    bson_t f = BSON_INITIALIZER;
    mgb_str(&f, "grid_id", grid_id);
    bson_t *opts = BCON_NEW("sort", "{", "name", BCON_INT32(1), "}");
    void *items = NULL;
    size_t len = 0;
    int rc = mg_find_all(st, "registries", &f, opts, read_registry,
                         sizeof(*out->items), release_registry, &items, &len,
                         "registry list");
    bson_destroy(opts);
    bson_destroy(&f);
    if (rc == 0) {
        out->items = items;
        out->len = len;
    }
    return rc;
}

int mga_registry_get(struct store *st, const char *grid_id, const char *name,
                     struct store_registry *out)
{
    memset(out, 0, sizeof(*out));
    bson_t f = BSON_INITIALIZER;
    grid_name_filter(&f, grid_id, name);
    int rc = mg_find_one(st, "registries", &f, NULL, read_registry, out,
                         "registry get");
    bson_destroy(&f);
    if (rc != 0)
        store_registry_release(out);
    return rc;
}

int mga_registry_delete(struct store *st, const char *grid_id, const char *name)
{
    bson_t f = BSON_INITIALIZER;
    grid_name_filter(&f, grid_id, name);
    int64_t deleted = 0;
    int rc =
        mg_delete(st, "registries", &f, false, &deleted, "registry delete");
    bson_destroy(&f);
    return rc == 0 && deleted == 0 ? CP_ENOTFOUND : rc;
}

/* ==== Audit log ==== */

/* Adding a field: also update read_audit and audit_fn. */
static int read_audit(const bson_t *d, void *item)
{
    struct store_audit *a = item;
    memset(a, 0, sizeof(*a));
    a->seq = mgr_i64(d, "seq");
    mgr_fixed(d, "grid_id", a->grid_id, sizeof(a->grid_id));
    a->grid_name = mgr_str(d, "grid_name");
    mgr_fixed(d, "user_id", a->user_id, sizeof(a->user_id));
    a->user_email = mgr_str(d, "user_email");
    a->resource_type = mgr_str(d, "resource_type");
    a->resource_id = mgr_str(d, "resource_id");
    a->resource_name = mgr_str(d, "resource_name");
    a->service_id = mgr_str(d, "service_id");
    a->event_name = mgr_str(d, "event_name");
    a->event_status = mgr_str(d, "event_status");
    a->status = (int)mgr_i64(d, "status");
    a->method = mgr_str(d, "method");
    a->path = mgr_str(d, "path");
    a->source_ip = mgr_str(d, "source_ip");
    a->user_agent = mgr_str(d, "user_agent");
    a->request_body = mgr_str(d, "request_body");
    a->created_at = mgr_i64(d, "created_at");
    return 0;
}

static void release_audit(void *item)
{
    store_audit_release(item);
}

static int audit_fn(struct mgc *c, void *ctx)
{
    const struct store_audit *a = ctx;
    int64_t seq = 0;
    int rc = mgx_next_seq(c, "audit_logs", 1, &seq);
    if (rc != 0)
        return rc;
    bson_t d = BSON_INITIALIZER;
    bson_oid_t oid;
    bson_oid_init(&oid, NULL);
    BSON_APPEND_OID(&d, "_id", &oid);
    mgb_i64(&d, "seq", seq);
    mgb_id(&d, "grid_id", a->grid_id); /* "" (no grid): null */
    mgb_str(&d, "grid_name", a->grid_name);
    mgb_id(&d, "user_id", a->user_id);
    mgb_str(&d, "user_email", a->user_email);
    mgb_str(&d, "resource_type", a->resource_type);
    mgb_str(&d, "resource_id", a->resource_id);
    mgb_str(&d, "resource_name", a->resource_name);
    mgb_str(&d, "service_id", a->service_id);
    mgb_str(&d, "event_name", a->event_name);
    mgb_str(&d, "event_status", a->event_status);
    mgb_i64(&d, "status", a->status);
    mgb_str(&d, "method", a->method);
    mgb_str(&d, "path", a->path);
    mgb_str(&d, "source_ip", a->source_ip);
    mgb_str(&d, "user_agent", a->user_agent);
    mgb_str(&d, "request_body", a->request_body);
    mgb_i64(&d, "created_at", a->created_at ? a->created_at : cp_now_ms());
    rc = mgx_insert(c, "audit_logs", &d, "audit append");
    bson_destroy(&d);
    return rc;
}

/* No transaction: a seq reserved by a failed insert is only a gap. */
int mga_audit_append(struct store *st, const struct store_audit *a)
{
    return mg_do(st, audit_fn, (void *)(uintptr_t)a);
}

int mga_audit_list(struct store *st, const char *grid_id, int limit,
                   struct store_audit_list *out)
{
    memset(out, 0, sizeof(*out));
    /* grid_id as a plain string: "" matches nothing, as in PostgreSQL
     * (entries without a grid hold null). */
    bson_t f = BSON_INITIALIZER;
    if (grid_id != NULL)
        mgb_str(&f, "grid_id", grid_id);
    bson_t *opts = BCON_NEW("sort", "{", "seq", BCON_INT32(-1), "}", "limit",
                            BCON_INT64(limit > 0 ? limit : 1));
    void *items = NULL;
    size_t len = 0;
    int rc =
        mg_find_all(st, "audit_logs", &f, opts, read_audit, sizeof(*out->items),
                    release_audit, &items, &len, "audit list");
    bson_destroy(opts);
    bson_destroy(&f);
    if (rc == 0) {
        out->items = items;
        out->len = len;
    }
    return rc;
}

struct trim_ctx {
    int64_t keep;
    int64_t deleted;
};

static int read_seq(const bson_t *d, void *item)
{
    *(int64_t *)item = mgr_i64(d, "seq");
    return 0;
}

/* Deletes every entry up to the seq of the keep+1-th newest. */
static int trim_fn(struct mgc *c, void *ctx)
{
    struct trim_ctx *k = ctx;
    k->deleted = 0;
    bson_t all = BSON_INITIALIZER;
    bson_t *opts = BCON_NEW("sort", "{", "seq", BCON_INT32(-1), "}", "skip",
                            BCON_INT64(k->keep), "projection", "{", "seq",
                            BCON_INT32(1), "}");
    int64_t last = 0;
    int rc = mgx_find_one(c, "audit_logs", &all, opts, read_seq, &last,
                          "audit trim");
    bson_destroy(opts);
    bson_destroy(&all);
    if (rc == CP_ENOTFOUND)
        return 0; /* no more than keep entries */
    if (rc != 0)
        return rc;
    bson_t *f = BCON_NEW("seq", "{", "$lte", BCON_INT64(last), "}");
    rc = mgx_delete(c, "audit_logs", f, true, &k->deleted, "audit trim");
    bson_destroy(f);
    return rc;
}

int mga_audit_trim(struct store *st, int64_t keep, int *deleted)
{
    *deleted = 0;
    if (keep < 0)
        return 0;
    struct trim_ctx k = {keep, 0};
    int rc = mg_do(st, trim_fn, &k);
    if (rc == 0)
        *deleted = (int)k.deleted;
    return rc;
}
