/* "kontena master audit-log" and "kontena grid audit-log": the newest
 * audit entries as a table (time, user, action, resource, source IP,
 * user agent) or JSON.
 * SPDX-License-Identifier: Apache-2.0 */
#include "cli.h"
#include "output.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/util.h"

#include <stdio.h>
#include <string.h>

#define AUDIT_LIMIT_MAX 3000

char *cmd_audit_action(const json_t *e)
{
    const char *ev = cp_json_str(e, "event_name");
    long long status = cp_json_int(e, "status", 0);
    if (ev == NULL)
        ev = "";
    if (status >= 400)
        return cp_asprintf("%s (%lld)", ev, status);
    return cp_strdup(ev);
}

char *cmd_audit_resource(const json_t *e)
{
    const char *type = cp_json_str(e, "resource_type");
    const char *name = cp_json_str(e, "resource_name");
    if (type == NULL)
        type = "";
    if (name == NULL || *name == '\0')
        return cp_strdup(type);
    return cp_asprintf("%s %s", type, name);
}

static int show(struct cli *cli, const struct args *a, const char *path,
                const char *what)
{
    long long limit = 0;
    const char *lv = args_get(a, "limit");
    if (lv != NULL && cp_parse_int(lv, 1, AUDIT_LIMIT_MAX, &limit) != 0)
        return cli_usage(cli, "--limit must be a number from 1 to %d",
                         AUDIT_LIMIT_MAX);
    struct client *c = cli_connect(cli);
    if (c == NULL)
        return 1;
    char *full =
        limit > 0 ? cp_asprintf("%s?limit=%lld", path, limit) : cp_strdup(path);
    json_t *resp = cli_call(cli, c, "GET", full, NULL, what);
    cp_free(full);
    client_free(c);
    if (resp == NULL)
        return 1;
    json_t *logs = json_object_get(resp, "logs");
    if (cli->is_json) {
        output_list(logs);
        json_decref(resp);
        return 0;
    }
    static const char *const hdr[] = {"time",     "user",      "action",
                                      "resource", "source ip", "user agent"};
    struct table *t = table_new(6, hdr);
    size_t i;
    json_t *e;
    json_array_foreach(logs, i, e)
    {
        char *action = cmd_audit_action(e);
        char *res = cmd_audit_resource(e);
        const char *row[] = {
            cp_json_str(e, "time"),
            cp_json_str(json_object_get(e, "user_identity"), "email"),
            action,
            res,
            cp_json_str(e, "source_ip"),
            cp_json_str(e, "user_agent")};
        table_add(t, row);
        cp_free(res);
        cp_free(action);
    }
    table_print(t, stdout);
    table_free(t);
    json_decref(resp);
    return 0;
}

int cmd_master_audit_log(struct cli *cli, const struct args *a)
{
    return show(cli, a, "/v1/audit_logs", "cannot read the audit log");
}

int cmd_grid_audit_log(struct cli *cli, const struct args *a)
{
    const char *grid = a->npos > 0 ? a->pos[0] : cli_grid(cli);
    if (grid == NULL)
        return 1;
    char *g = client_escape(grid);
    char *path = cp_asprintf("/v1/grids/%s/audit_log", g);
    char *what = cp_asprintf("cannot read the audit log of grid %s", grid);
    int rc = show(cli, a, path, what);
    cp_free(what);
    cp_free(path);
    cp_free(g);
    return rc;
}

const struct args_opt cmd_audit_opts[] = {
    {"limit", 'l', ARGS_VALUE, "N", "newest N entries, 1 to 3000 (500)"},
    CLI_OPT_OUTPUT,
    {0}};
