/* "kontena container ...": list the containers of a grid, inspect one and
 * print or follow its logs. Containers live under
 * /v1/containers/<grid>/<node>/<name>; the log follower is the one of
 * cmd_service.c.
 * SPDX-License-Identifier: Apache-2.0 */
#include "cli.h"
#include "output.h"
#include "../common/alloc.h"
#include "../common/json.h"
#include "../common/util.h"

#include <stdio.h>
#include <string.h>

/* "/v1/containers/<grid>/<node>/<name><suffix>" from "NODE/NAME", or
 * NULL after printing the usage error (caller frees). */
static char *container_path(struct cli *cli, const char *grid, const char *ref,
                            const char *suffix)
{
    const char *slash = strchr(ref, '/');
    if (slash == NULL || slash == ref || slash[1] == '\0' ||
        strchr(slash + 1, '/') != NULL) {
        cli_usage(cli, "invalid container '%s': use NODE/NAME", ref);
        return NULL;
    }
    char *node = cp_strndup(ref, (size_t)(slash - ref));
    char *g = client_escape(grid);
    char *n = client_escape(node);
    char *c = client_escape(slash + 1);
    char *p = cp_asprintf("/v1/containers/%s/%s/%s%s", g, n, c, suffix);
    cp_free(c);
    cp_free(n);
    cp_free(g);
    cp_free(node);
    return p;
}

static int run_ls(struct cli *cli, const struct args *a)
{
    struct client *c = cli_connect(cli);
    if (c == NULL)
        return 1;
    const char *grid = cli_grid(cli);
    json_t *r = NULL;
    if (grid != NULL) {
        char *g = client_escape(grid);
        char *path = cp_asprintf("/v1/containers/%s%s", g,
                                 args_has(a, "all") ? "?all=1" : "");
        char *what = cp_asprintf("cannot list containers of grid %s", grid);
        r = cli_call(cli, c, "GET", path, NULL, what);
        cp_free(what);
        cp_free(path);
        cp_free(g);
    }
    client_free(c);
    if (r == NULL)
        return 1;
    json_t *list = json_is_array(r) ? r : json_object_get(r, "containers");
    if (!json_is_array(list))
        list = NULL;
    if (cli->is_json) {
        output_list(list);
        json_decref(r);
        return 0;
    }
    static const char *const hdr[] = {"name", "image", "status", "node"};
    struct table *t = table_new(4, hdr);
    size_t i;
    json_t *ct;
    json_array_foreach(list, i, ct)
    {
        const json_t *node = json_object_get(ct, "node");
        const char *row[] = {cp_json_str(ct, "name"), cp_json_str(ct, "image"),
                             cp_json_str(ct, "status"),
                             json_is_string(node) ? json_string_value(node)
                                                  : cp_json_str(node, "name")};
        table_add(t, row);
    }
    table_print(t, stdout);
    table_free(t);
    json_decref(r);
    return 0;
}

static int run_inspect(struct cli *cli, const struct args *a)
{
    struct client *c = cli_connect(cli);
    char *path = NULL, *ipath = NULL, *what = NULL;
    json_t *r = NULL;
    int rc = 1;
    if (c == NULL)
        goto out;
    const char *grid = cli_grid(cli);
    if (grid == NULL)
        goto out;
    path = container_path(cli, grid, a->pos[0], "");
    if (path == NULL) {
        rc = 2;
        goto out;
    }
    ipath = container_path(cli, grid, a->pos[0], "/inspect");
    what = cp_asprintf("cannot inspect container %s", a->pos[0]);
    /* The engine's inspect needs the node online; when it cannot be had
     * the master's own record of the container is the next best. */
    if (client_request(c, "GET", ipath, NULL, &r) != 0) {
        if (client_is_auth_error(c)) {
            cli_api_fail(cli, c, what);
            goto out;
        }
        r = cli_call(cli, c, "GET", path, NULL, what);
        if (r == NULL)
            goto out;
    }
    output_json(r, stdout);
    rc = 0;
out:
    json_decref(r);
    cp_free(what);
    cp_free(ipath);
    cp_free(path);
    client_free(c);
    return rc;
}

static int run_logs(struct cli *cli, const struct args *a)
{
    struct client *c = cli_connect(cli);
    char *path = NULL, *what = NULL, *query = NULL;
    int rc = 1;
    if (c == NULL)
        goto out;
    const char *grid = cli_grid(cli);
    if (grid == NULL)
        goto out;
    path = container_path(cli, grid, a->pos[0], "/logs");
    if (path == NULL) {
        rc = 2;
        goto out;
    }
    if (args_has(a, "tail")) {
        long long n;
        if (cp_parse_int(args_get(a, "tail"), 1, 10000, &n) != 0) {
            rc = cli_usage(cli,
                           "--tail must be a whole number 1-10000, not "
                           "'%s'",
                           args_get(a, "tail"));
            goto out;
        }
        query = cp_asprintf("limit=%lld", n);
    } else {
        query = cp_strdup("");
    }
    what = cp_asprintf("cannot get the logs of container %s", a->pos[0]);
    rc = cmd_service_logs_run(cli, c, path, query, args_has(a, "follow"), false,
                              what);
out:
    cp_free(query);
    cp_free(what);
    cp_free(path);
    client_free(c);
    return rc;
}

static const struct args_opt ls_opts[] = {
    {"all", 'a', ARGS_FLAG, NULL, "include stopped containers"},
    CLI_OPT_OUTPUT,
    {0}};
static const struct args_opt inspect_opts[] = {{0}};
static const struct args_opt logs_opts[] = {
    {"follow", 'f', ARGS_FLAG, NULL, "keep printing new lines"},
    {"tail", 't', ARGS_VALUE, "N", "how many lines to show first"},
    {0}};

const struct cli_cmd cmd_container[] = {
    {"list", "ls", "[options]", "list the containers of the grid", ls_opts, 0,
     0, run_ls, NULL},
    {"inspect", NULL, "NODE/NAME", "show the engine's view of a container",
     inspect_opts, 1, 1, run_inspect, NULL},
    {"logs", NULL, "NODE/NAME [options]", "show the logs of a container",
     logs_opts, 1, 1, run_logs, NULL},
    {0}};
