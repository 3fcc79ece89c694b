/* GET /, GET /v1/ping and GET /v1/master/status.
 * SPDX-License-Identifier: Apache-2.0 */
#include "api.h"
#include "leader.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/log.h"
#include "../common/version.h"

#include <string.h>

void api_root_get(struct api_req *req, struct api_res *res)
{
    CP_UNUSED(req);
    api_json(res, 200,
             json_pack("{s:s,s:s,s:s}", "name", "Kontena Master", "tagline",
                       "The Container Platform", "version",
                       KONTENA_VERSION));
}

static const char *backend_name(const struct master *m)
{
    const char *u = m->cfg.store_url;
    if (strncmp(u, "sqlite:", 7) == 0)
        return "sqlite";
    if (strncmp(u, "mongodb", 7) == 0)
        return "mongodb";
    return "postgresql";
}

/* This master, the leader as this master last saw it, and the store. */
static json_t *master_json(struct master *m, int store_rc,
                           const struct leader_status *ls)
{
    json_t *j = json_pack("{s:s,s:b,s:s?}", "id", m->master_id, "leader",
                          ls->is_leader, "leader_id",
                          ls->leader_id[0] ? ls->leader_id : NULL);
    json_object_set_new(j, "store",
                        json_pack("{s:s,s:b}", "backend", backend_name(m),
                                  "healthy", store_rc == 0));
    if (store_rc != 0)
        json_object_set_new(json_object_get(j, "store"), "error",
                            json_string(cp_strerror(store_rc)));
    return j;
}

/* Answers pong only after a real round trip to the store. */
void api_ping(struct api_req *req, struct api_res *res)
{
    int rc = req->m->store->ops->ping(req->m->store);
    if (rc != 0) {
        api_error(res, 500, "store is not answering: %s", cp_strerror(rc));
        return;
    }
    struct leader_status ls;
    leader_status(req->m, &ls);
    api_json(res, 200,
             json_pack("{s:s,s:o}", "message", "pong", "master",
                       master_json(req->m, 0, &ls)));
}

/* GET /v1/master/status: what an operator of several masters needs to
 * see: which master answered, who leads, whether the store answers. */
void api_master_status(struct api_req *req, struct api_res *res)
{
    struct master *m = req->m;
    int rc = m->store->ops->ping(m->store);
    int schema = 0;
    if (rc == 0)
        rc = m->store->ops->schema_version(m->store, &schema);
    struct leader_status ls;
    leader_status(m, &ls);
    json_t *j = master_json(m, rc, &ls);
    json_object_set_new(j, "version", json_string(KONTENA_VERSION));
    json_object_set_new(j, "started_at", json_integer(m->started_at / 1000));
    json_object_set_new(j, "leader_since",
                        ls.since ? json_integer(ls.since / 1000)
                                 : json_null());
    json_object_set_new(j, "leader_changes", json_integer(ls.changes));
    json_object_set_new(j, "leader_lease_expires_at",
                        ls.leader_expires_at
                            ? json_integer(ls.leader_expires_at / 1000)
                            : json_null());
    if (rc == 0)
        json_object_set_new(json_object_get(j, "store"), "schema_version",
                            json_integer(schema));
    api_json(res, rc == 0 ? 200 : 503, j);
}
