/* GET / and GET /v1/ping.
 * SPDX-License-Identifier: Apache-2.0 */
#include "api.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/log.h"
#include "../common/version.h"

void api_root_get(struct api_req *req, struct api_res *res)
{
    CP_UNUSED(req);
    api_json(res, 200,
             json_pack("{s:s,s:s,s:s}", "name", "Kontena Master", "tagline",
                       "The Container Platform", "version",
                       KONTENA_VERSION));
}

/* Answers pong only after a real round trip to the store. */
void api_ping(struct api_req *req, struct api_res *res)
{
    int rc = req->m->store->ops->ping(req->m->store);
    if (rc != 0) {
        api_error(res, 500, "store is not answering: %s", cp_strerror(rc));
        return;
    }
    api_json(res, 200, json_pack("{s:s}", "message", "pong"));
}
