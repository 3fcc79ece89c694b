/* Users: the caller (GET /v1/user) and the list for user admins.
 * SPDX-License-Identifier: Apache-2.0 */
#include "api.h"
#include "../common/alloc.h"

static const struct {
    unsigned bit;
    const char *name;
    const char *description;
} role_names[] = {
    {STORE_ROLE_MASTER_ADMIN, "master_admin", "Master admin"},
    {STORE_ROLE_GRID_ADMIN, "grid_admin", "Grid admin"},
    {STORE_ROLE_USER_ADMIN, "user_admin", "User admin"},
};

json_t *api_user_json(const struct store_user *u)
{
    json_t *roles = json_array();
    for (size_t i = 0; i < CP_ARRAY_LEN(role_names); i++) {
        if (u->roles & role_names[i].bit)
            json_array_append_new(
                roles, json_pack("{s:s,s:s}", "name", role_names[i].name,
                                 "description",
                                 role_names[i].description));
    }
    return json_pack("{s:s,s:s,s:s?,s:o}", "id", u->id, "email", u->email,
                     "name", u->name, "roles", roles);
}

void api_user_current(struct api_req *req, struct api_res *res)
{
    api_json(res, 200, api_user_json(&req->user));
}

void api_users_list(struct api_req *req, struct api_res *res)
{
    struct store_user_list l = {0};
    int rc = ST_CALL(req->m->store, user_list, &l);
    if (rc != 0) {
        api_store_error(res, rc);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < l.len; i++)
        json_array_append_new(arr, api_user_json(&l.items[i]));
    store_user_list_release(&l);
    api_json(res, 200, json_pack("{s:o}", "users", arr));
}
