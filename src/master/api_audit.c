/* The audit log's API (spec 3.1): the master-wide log for master admins,
 * a grid's own log for its admins. Newest entries first. Recording is in
 * audit.c.
 * SPDX-License-Identifier: Apache-2.0 */
#include "api.h"
#include "audit.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/util.h"

/* ?limit=1..AUDIT_LIMIT_MAX, AUDIT_LIMIT_DEFAULT when absent; 0 after a
 * 422. */
static int limit_of(struct api_req *req, struct api_res *res)
{
    char *v = api_query(req, "limit");
    long long n = AUDIT_LIMIT_DEFAULT;
    if (v != NULL && *v != '\0' &&
        cp_parse_int(v, 1, AUDIT_LIMIT_MAX, &n) != 0) {
        api_field_error(res, "limit", "must be an integer from 1 to %d",
                        AUDIT_LIMIT_MAX);
        n = 0;
    }
    cp_free(v);
    return (int)n;
}

static void answer(struct api_req *req, struct api_res *res,
                   const char *grid_id)
{
    int limit = limit_of(req, res);
    if (limit == 0)
        return;
    struct store_audit_list l = {0};
    int rc = ST_CALL(req->m->store, audit_list, grid_id, limit, &l);
    if (rc != 0) {
        store_audit_list_release(&l);
        api_store_error(res, rc);
        return;
    }
    json_t *logs = json_array();
    for (size_t i = 0; i < l.len; i++)
        json_array_append_new(logs, audit_entry_json(&l.items[i]));
    store_audit_list_release(&l);
    api_json(res, 200, json_pack("{s:o}", "logs", logs));
}

void api_audit_logs_list(struct api_req *req, struct api_res *res)
{
    answer(req, res, NULL);
}

void api_grid_audit_log(struct api_req *req, struct api_res *res)
{
    answer(req, res, req->grid.id);
}
