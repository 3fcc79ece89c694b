/* "kontena node ...": list, show, create, update and remove the nodes of
 * a grid, edit their labels, rotate node tokens, check their health and
 * print the environment an agent needs to join ("node env", and "grid
 * env" for a grid token). Nodes live under /v1/nodes/<grid>/<node>.
 * SPDX-License-Identifier: Apache-2.0 */
#include "cli.h"
#include "output.h"
#include "../common/alloc.h"
#include "../common/json.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* ==== Pure helpers ==== */

char *cmd_node_ws_url(const char *url)
{
    if (strncasecmp(url, "https://", 8) == 0)
        return cp_asprintf("wss://%s", url + 8);
    if (strncasecmp(url, "http://", 7) == 0)
        return cp_asprintf("ws://%s", url + 7);
    return cp_strdup(url);
}

static bool has_label(const json_t *labels, const char *label)
{
    size_t i;
    json_t *v;
    json_array_foreach(labels, i, v)
    {
        if (json_is_string(v) && strcmp(json_string_value(v), label) == 0)
            return true;
    }
    return false;
}

json_t *cmd_node_labels_add(const json_t *labels, const char *const *add,
                            size_t n)
{
    json_t *out = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(labels, i, v)
    {
        if (json_is_string(v) && !has_label(out, json_string_value(v)))
            json_array_append(out, v);
    }
    for (i = 0; i < n; i++) {
        if (!has_label(out, add[i]))
            json_array_append_new(out, json_string(add[i]));
    }
    return out;
}

json_t *cmd_node_labels_remove(const json_t *labels, const char *const *rm,
                               size_t n, const char **missing)
{
    *missing = NULL;
    for (size_t i = 0; i < n; i++) {
        if (!has_label(labels, rm[i])) {
            *missing = rm[i];
            return NULL;
        }
    }
    json_t *out = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(labels, i, v)
    {
        if (!json_is_string(v))
            continue;
        bool is_removed = false;
        for (size_t k = 0; k < n && !is_removed; k++)
            is_removed = strcmp(json_string_value(v), rm[k]) == 0;
        if (!is_removed)
            json_array_append(out, v);
    }
    return out;
}

char *cmd_node_bytes(long long n)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    if (n < 1024)
        return cp_asprintf("%lld B", n < 0 ? 0 : n);
    double v = (double)n;
    size_t u = 0;
    while (v >= 1024.0 && u + 1 < CP_ARRAY_LEN(units)) {
        v /= 1024.0;
        u++;
    }
    return cp_asprintf("%.2f %s", v, units[u]);
}

/* ==== Paths and lookups ==== */

/* The --grid option, else the current grid; NULL after an error. */
static const char *target_grid(struct cli *cli, const struct args *a)
{
    const char *g = args_get(a, "grid");
    return g != NULL ? g : cli_grid(cli);
}

/* "/v1/nodes/<grid>/<node><suffix>", both escaped (caller frees). */
static char *node_path(const char *grid, const char *node, const char *suffix)
{
    char *g = client_escape(grid);
    char *n = client_escape(node);
    char *p = cp_asprintf("/v1/nodes/%s/%s%s", g, n, suffix);
    cp_free(n);
    cp_free(g);
    return p;
}

/* method /v1/nodes/<grid>/<node><suffix>; NULL after printing "error:
 * cannot <verb> node <node>: <why>". */
static json_t *node_call(struct cli *cli, struct client *c, const char *method,
                         const char *grid, const char *node, const char *suffix,
                         const json_t *body, const char *verb)
{
    char *path = node_path(grid, node, suffix);
    char *what = cp_asprintf("cannot %s node %s", verb, node);
    json_t *r = cli_call(cli, c, method, path, body, what);
    cp_free(what);
    cp_free(path);
    return r;
}

static json_t *fetch_grid(struct cli *cli, struct client *c, const char *grid)
{
    char *g = client_escape(grid);
    char *path = cp_asprintf("/v1/grids/%s", g);
    char *what = cp_asprintf("cannot show grid %s", grid);
    json_t *r = cli_call(cli, c, "GET", path, NULL, what);
    cp_free(what);
    cp_free(path);
    cp_free(g);
    return r;
}

/* The node's token from GET .../token, or NULL after printing why (also
 * when the node has none). Caller frees. */
static char *fetch_node_token(struct cli *cli, struct client *c,
                              const char *grid, const char *node)
{
    json_t *r = node_call(cli, c, "GET", grid, node, "/token", NULL,
                          "get the token of");
    if (r == NULL)
        return NULL;
    const char *t = cp_json_str(r, "token");
    char *out = t != NULL && *t != '\0' ? cp_strdup(t) : NULL;
    if (out == NULL)
        cli_fail(cli,
                 "node %s has no node token; use kontena node reset-token "
                 "%s",
                 node, node);
    json_decref(r);
    return out;
}

/* Asks before a destructive step unless --force; 0 to go on, else the
 * exit code after printing why not. */
static int confirm(struct cli *cli, const struct args *a, const char *question,
                   const char *what)
{
    if (args_has(a, "force"))
        return 0;
    bool is_tty = cli_stdin_is_tty();
    if (!is_tty)
        return cli_fail(cli, "%s: use --force to confirm", what);
    if (!cli_confirm(question))
        return cli_fail(cli, "%s: aborted", what);
    return 0;
}

/* ==== list / show ==== */

static const char *node_status(const json_t *n)
{
    const char *s = cp_json_str(n, "status");
    if (s != NULL)
        return s;
    return cp_json_bool(n, "connected", false) ? "online" : "offline";
}

static char *node_initial(const json_t *n)
{
    if (!cp_json_bool(n, "initial_member", false))
        return cp_strdup("-");
    char *num = output_cell(json_object_get(n, "node_number"));
    char *size = output_cell(
        json_object_get(json_object_get(n, "grid"), "initial_size"));
    char *s =
        *size != '\0' ? cp_asprintf("%s / %s", num, size) : cp_strdup(num);
    cp_free(size);
    cp_free(num);
    return s;
}

static void add_node_rows(struct table *t, const json_t *nodes,
                          const char *grid)
{
    size_t i;
    json_t *n;
    json_array_foreach(nodes, i, n)
    {
        const json_t *labels = json_object_get(n, "labels");
        char *lbl =
            json_array_size(labels) > 0 ? output_cell(labels) : cp_strdup("-");
        char *init = node_initial(n);
        const char *ver = cp_json_str(n, "agent_version");
        const char *row[] = {cp_json_str(n, "name"),
                             ver != NULL ? ver : "-",
                             node_status(n),
                             init,
                             lbl,
                             grid};
        table_add(t, row);
        cp_free(init);
        cp_free(lbl);
    }
}

/* GET /v1/grids/<grid>/nodes; the answer (caller decrefs) or NULL. */
static json_t *list_nodes(struct cli *cli, struct client *c, const char *grid)
{
    char *g = client_escape(grid);
    char *path = cp_asprintf("/v1/grids/%s/nodes", g);
    char *what = cp_asprintf("cannot list nodes of grid %s", grid);
    json_t *r = cli_call(cli, c, "GET", path, NULL, what);
    cp_free(what);
    cp_free(path);
    cp_free(g);
    return r;
}

/* --all: the nodes of every grid the user can see, with a GRID column. */
static int ls_all(struct cli *cli, struct client *c)
{
    int rc = 1;
    json_t *all = json_array();
    static const char *const hdr[] = {"name",    "version", "status",
                                      "initial", "labels",  "grid"};
    struct table *t = table_new(6, hdr);
    json_t *grids =
        cli_call(cli, c, "GET", "/v1/grids", NULL, "cannot list grids");
    if (grids == NULL)
        goto out;
    size_t i;
    json_t *g;
    json_array_foreach(json_object_get(grids, "grids"), i, g)
    {
        const char *name = cp_json_str(g, "name");
        if (name == NULL)
            continue;
        json_t *r = list_nodes(cli, c, name);
        if (r == NULL)
            goto out;
        json_t *nodes = json_object_get(r, "nodes");
        json_array_extend(all, nodes);
        add_node_rows(t, nodes, name);
        json_decref(r);
    }
    if (cli->is_json)
        output_list(all);
    else
        table_print(t, stdout);
    rc = 0;
out:
    json_decref(grids);
    table_free(t);
    json_decref(all);
    return rc;
}

static int run_ls(struct cli *cli, const struct args *a)
{
    struct client *c = cli_connect(cli);
    if (c == NULL)
        return 1;
    if (args_has(a, "all")) {
        int rc = ls_all(cli, c);
        client_free(c);
        return rc;
    }
    const char *grid = target_grid(cli, a);
    json_t *resp = grid != NULL ? list_nodes(cli, c, grid) : NULL;
    client_free(c);
    if (resp == NULL)
        return 1;
    json_t *list = json_object_get(resp, "nodes");
    if (cli->is_json) {
        output_list(list);
    } else {
        static const char *const hdr[] = {"name", "version", "status",
                                          "initial", "labels"};
        struct table *t = table_new(5, hdr);
        add_node_rows(t, list, NULL);
        table_print(t, stdout);
        table_free(t);
    }
    json_decref(resp);
    return 0;
}

static void print_val(const char *indent, const char *k, const json_t *v)
{
    char *s = v == NULL || json_is_null(v) ? cp_strdup("-") : output_cell(v);
    printf("%s%s: %s\n", indent, k, *s != '\0' ? s : "-");
    cp_free(s);
}

static void print_bytes(const char *indent, const char *k, const json_t *v)
{
    if (!json_is_integer(v) && !json_is_real(v)) {
        print_val(indent, k, v);
        return;
    }
    char *s = cmd_node_bytes((long long)json_number_value(v));
    printf("%s%s: %s\n", indent, k, s);
    cp_free(s);
}

/* "used / total" of an object with those byte counts. */
static void print_usage_of(const char *indent, const char *k, const json_t *o)
{
    const json_t *used = json_object_get(o, "used");
    const json_t *total = json_object_get(o, "total");
    if (!json_is_number(used) || !json_is_number(total)) {
        print_val(indent, k, o);
        return;
    }
    char *u = cmd_node_bytes((long long)json_number_value(used));
    char *t = cmd_node_bytes((long long)json_number_value(total));
    printf("%s%s: %s / %s\n", indent, k, u, t);
    cp_free(t);
    cp_free(u);
}

static void print_resource_usage(json_t *ru)
{
    if (!json_is_object(ru) || json_object_size(ru) == 0)
        return;
    printf("  stats:\n");
    const char *k;
    json_t *v;
    json_object_foreach(ru, k, v)
    {
        if (strcmp(k, "memory") == 0 && json_is_object(v)) {
            print_usage_of("    ", "memory", v);
        } else if (strcmp(k, "load") == 0 && json_is_object(v)) {
            char *l1 = output_cell(json_object_get(v, "1m"));
            char *l5 = output_cell(json_object_get(v, "5m"));
            char *l15 = output_cell(json_object_get(v, "15m"));
            printf("    load: %s %s %s\n", l1, l5, l15);
            cp_free(l15);
            cp_free(l5);
            cp_free(l1);
        } else if (strcmp(k, "filesystem") == 0 && json_is_array(v)) {
            printf("    filesystem:\n");
            size_t i;
            json_t *fs;
            json_array_foreach(v, i, fs)
            {
                const char *name = cp_json_str(fs, "name");
                print_usage_of("      - ", name != NULL ? name : "?", fs);
            }
        } else {
            print_val("    ", k, v);
        }
    }
}

/* The human view of a node, YAML-like as in the Ruby CLI. */
static void print_node(const json_t *n)
{
    const char *name = cp_json_str(n, "name");
    printf("%s:\n", name != NULL ? name : "");
    print_val("  ", "id", json_object_get(n, "id"));
    print_val("  ", "node_id", json_object_get(n, "node_id"));
    print_val("  ", "agent version", json_object_get(n, "agent_version"));
    print_val("  ", "docker version", json_object_get(n, "docker_version"));
    printf("  status: %s\n", node_status(n));
    printf("  connected: %s\n",
           cp_json_bool(n, "connected", false) ? "yes" : "no");
    print_val("  ", "availability", json_object_get(n, "availability"));
    print_val("  ", "has token", json_object_get(n, "has_token"));
    print_val("  ", "last connect", json_object_get(n, "connected_at"));
    print_val("  ", "last seen", json_object_get(n, "last_seen_at"));
    if (!cp_json_bool(n, "connected", false))
        print_val("  ", "disconnected", json_object_get(n, "disconnected_at"));
    print_val("  ", "public ip", json_object_get(n, "public_ip"));
    print_val("  ", "private ip", json_object_get(n, "private_ip"));
    print_val("  ", "overlay ip", json_object_get(n, "overlay_ip"));
    print_val("  ", "os", json_object_get(n, "os"));
    print_val("  ", "kernel", json_object_get(n, "kernel_version"));
    print_val("  ", "driver", json_object_get(n, "driver"));
    print_val("  ", "cpus", json_object_get(n, "cpus"));
    print_bytes("  ", "memory", json_object_get(n, "mem_total"));
    print_val("  ", "node number", json_object_get(n, "node_number"));
    char *init = node_initial(n);
    printf("  initial node: %s\n", strcmp(init, "-") == 0 ? "no" : init);
    cp_free(init);
    const json_t *labels = json_object_get(n, "labels");
    if (json_array_size(labels) == 0) {
        printf("  labels: -\n");
    } else {
        printf("  labels:\n");
        size_t i;
        json_t *v;
        json_array_foreach(labels, i, v)
        {
            char *s = output_cell(v);
            printf("    - %s\n", s);
            cp_free(s);
        }
    }
    print_resource_usage(json_object_get(n, "resource_usage"));
}

static int run_show(struct cli *cli, const struct args *a)
{
    struct client *c = cli_connect(cli);
    if (c == NULL)
        return 1;
    const char *grid = target_grid(cli, a);
    json_t *n = grid != NULL ? node_call(cli, c, "GET", grid, a->pos[0], "",
                                         NULL, "show")
                             : NULL;
    client_free(c);
    if (n == NULL)
        return 1;
    if (cli->is_json)
        output_json(n, stdout);
    else
        print_node(n);
    json_decref(n);
    return 0;
}

/* ==== create / update / remove ==== */

static json_t *label_list(const struct args *a)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < args_count(a, "label"); i++)
        json_array_append_new(arr, json_string(args_at(a, "label", i)));
    return arr;
}

static int run_create(struct cli *cli, const struct args *a)
{
    const char *name = a->pos[0];
    json_t *body = json_pack("{s:s}", "name", name);
    struct client *c = NULL;
    json_t *n = NULL;
    char *token = NULL;
    int rc = 1;
    if (args_has(a, "token"))
        cp_json_set_str(body, "token", args_get(a, "token"));
    if (args_has(a, "label"))
        json_object_set_new(body, "labels", label_list(a));
    c = cli_connect(cli);
    if (c == NULL)
        goto out;
    const char *grid = target_grid(cli, a);
    if (grid == NULL)
        goto out;
    char *g = client_escape(grid);
    char *path = cp_asprintf("/v1/grids/%s/nodes", g);
    char *what = cp_asprintf("cannot create node %s", name);
    n = cli_call(cli, c, "POST", path, body, what);
    cp_free(what);
    cp_free(path);
    cp_free(g);
    if (n == NULL)
        goto out;
    const char *t = cp_json_str(n, "token");
    token = t != NULL ? cp_strdup(t) : fetch_node_token(cli, c, grid, name);
    if (token == NULL)
        goto out;
    if (cli->is_json) {
        if (!json_is_string(json_object_get(n, "token")))
            cp_json_set_str(n, "token", token);
        output_json(n, stdout);
    } else {
        printf("Created node %s\nKONTENA_NODE_TOKEN=%s\n", name, token);
    }
    rc = 0;
out:
    cp_free(token);
    json_decref(n);
    client_free(c);
    json_decref(body);
    return rc;
}

static int run_update(struct cli *cli, const struct args *a)
{
    const char *name = a->pos[0];
    json_t *body = json_object();
    struct client *c = NULL;
    json_t *n = NULL;
    int rc = 2;
    if (args_has(a, "label") && args_has(a, "clear-labels")) {
        cli_usage(cli, "--label and --clear-labels cannot be used together");
        goto out;
    }
    if (args_has(a, "label") || args_has(a, "clear-labels"))
        json_object_set_new(body, "labels", label_list(a));
    const char *avail = args_get(a, "availability");
    if (avail != NULL) {
        if (strcmp(avail, "active") != 0 && strcmp(avail, "drain") != 0) {
            cli_usage(cli, "--availability must be active or drain, not '%s'",
                      avail);
            goto out;
        }
        cp_json_set_str(body, "availability", avail);
    }
    if (json_object_size(body) == 0) {
        cli_usage(cli, "nothing to update");
        goto out;
    }
    rc = 1;
    c = cli_connect(cli);
    if (c == NULL)
        goto out;
    const char *grid = target_grid(cli, a);
    if (grid == NULL)
        goto out;
    n = node_call(cli, c, "PUT", grid, name, "", body, "update");
    if (n == NULL)
        goto out;
    if (cli->is_json)
        output_json(n, stdout);
    else
        printf("Updated node %s\n", name);
    rc = 0;
out:
    json_decref(n);
    client_free(c);
    json_decref(body);
    return rc;
}

static int run_rm(struct cli *cli, const struct args *a)
{
    const char *name = a->pos[0];
    struct client *c = cli_connect(cli);
    json_t *n = NULL, *r = NULL;
    char *q = NULL, *what = NULL;
    int rc = 1;
    if (c == NULL)
        goto out;
    const char *grid = target_grid(cli, a);
    if (grid == NULL)
        goto out;
    n = node_call(cli, c, "GET", grid, name, "", NULL, "remove");
    if (n == NULL)
        goto out;
    what = cp_asprintf("cannot remove node %s", name);
    if (cp_json_bool(n, "connected", false) && !args_has(a, "force")) {
        rc = cli_fail(cli,
                      "%s: it is still connected; stop its agent first or "
                      "use --force",
                      what);
        goto out;
    }
    q = cp_asprintf("Remove node %s from grid %s?", name, grid);
    rc = confirm(cli, a, q, what);
    if (rc != 0)
        goto out;
    rc = 1;
    r = node_call(cli, c, "DELETE", grid, name, "", NULL, "remove");
    if (r == NULL)
        goto out;
    printf("Removed node %s\n", name);
    rc = 0;
out:
    json_decref(r);
    cp_free(what);
    cp_free(q);
    json_decref(n);
    client_free(c);
    return rc;
}

/* ==== tokens ==== */

static int run_reset_token(struct cli *cli, const struct args *a)
{
    const char *name = a->pos[0];
    bool is_clear = args_has(a, "clear-token");
    bool is_reset = !args_has(a, "no-reset-connection");
    struct client *c = NULL;
    json_t *body = NULL, *r = NULL;
    char *token = NULL, *q = NULL, *what = NULL;
    int rc = 2;
    if (is_clear && args_has(a, "token")) {
        cli_usage(cli, "--token and --clear-token cannot be used together");
        goto out;
    }
    what = cp_asprintf("cannot %s the token of node %s",
                       is_clear ? "clear" : "reset", name);
    if (is_reset) {
        q = cp_asprintf("%s the token of node %s and disconnect its agent?",
                        is_clear ? "Clear" : "Reset", name);
        rc = confirm(cli, a, q, what);
        if (rc != 0)
            goto out;
    }
    rc = 1;
    c = cli_connect(cli);
    if (c == NULL)
        goto out;
    const char *grid = target_grid(cli, a);
    if (grid == NULL)
        goto out;
    body = json_pack("{s:b}", "reset_connection", is_reset);
    if (args_has(a, "token"))
        cp_json_set_str(body, "token", args_get(a, "token"));
    char *path = node_path(grid, name, "/token");
    r = cli_call(cli, c, is_clear ? "DELETE" : "PUT", path, body, what);
    cp_free(path);
    if (r == NULL)
        goto out;
    if (is_clear) {
        printf("Cleared the token of node %s\n", name);
        rc = 0;
        goto out;
    }
    const char *t = cp_json_str(r, "token");
    token = t != NULL ? cp_strdup(t) : fetch_node_token(cli, c, grid, name);
    if (token == NULL)
        goto out;
    printf("KONTENA_NODE_TOKEN=%s\n", token);
    rc = 0;
out:
    cp_free(token);
    json_decref(r);
    json_decref(body);
    cp_free(q);
    cp_free(what);
    client_free(c);
    return rc;
}

/* ==== env ==== */

/* KONTENA_URI for the current master; NULL after printing why. */
static char *agent_uri(struct cli *cli)
{
    const struct config_server *s = config_current(cli->cfg);
    if (s == NULL || s->url == NULL) {
        cli_fail(cli, "the current master has no url");
        return NULL;
    }
    return cmd_node_ws_url(s->url);
}

/* The grid token from GET /v1/grids/<grid>; NULL after printing why. */
static char *grid_token(struct cli *cli, struct client *c, const char *grid)
{
    json_t *g = fetch_grid(cli, c, grid);
    if (g == NULL)
        return NULL;
    const char *t = cp_json_str(g, "token");
    char *out = t != NULL && *t != '\0' ? cp_strdup(t) : NULL;
    if (out == NULL)
        cli_fail(cli, "grid %s has no token", grid);
    json_decref(g);
    return out;
}

static int run_env(struct cli *cli, const struct args *a)
{
    const char *name = a->pos[0];
    struct client *c = cli_connect(cli);
    json_t *n = NULL;
    char *uri = NULL, *token = NULL;
    int rc = 1;
    if (c == NULL)
        goto out;
    const char *grid = target_grid(cli, a);
    if (grid == NULL)
        goto out;
    n = node_call(cli, c, "GET", grid, name, "", NULL, "show");
    if (n == NULL)
        goto out;
    uri = agent_uri(cli);
    if (uri == NULL)
        goto out;
    bool is_node_token =
        args_has(a, "token") || cp_json_bool(n, "has_token", false);
    token = is_node_token ? fetch_node_token(cli, c, grid, name)
                          : grid_token(cli, c, grid);
    if (token == NULL)
        goto out;
    const char *node_name = cp_json_str(n, "name");
    printf("KONTENA_URI=%s\n%s=%s\nKONTENA_NODE_NAME=%s\n", uri,
           is_node_token ? "KONTENA_NODE_TOKEN" : "KONTENA_TOKEN", token,
           node_name != NULL ? node_name : name);
    rc = 0;
out:
    cp_free(token);
    cp_free(uri);
    json_decref(n);
    client_free(c);
    return rc;
}

int cmd_grid_env(struct cli *cli, const struct args *a)
{
    struct client *c = cli_connect(cli);
    char *uri = NULL, *token = NULL;
    int rc = 1;
    if (c == NULL)
        goto out;
    const char *grid = a->npos > 0 ? a->pos[0] : cli_grid(cli);
    if (grid == NULL)
        goto out;
    token = grid_token(cli, c, grid);
    if (token == NULL)
        goto out;
    uri = agent_uri(cli);
    if (uri == NULL)
        goto out;
    printf("KONTENA_URI=%s\nKONTENA_TOKEN=%s\n", uri, token);
    rc = 0;
out:
    cp_free(uri);
    cp_free(token);
    client_free(c);
    return rc;
}

/* ==== health ==== */

static int run_health(struct cli *cli, const struct args *a)
{
    const char *name = a->pos[0];
    struct client *c = cli_connect(cli);
    if (c == NULL)
        return 1;
    const char *grid = target_grid(cli, a);
    json_t *h = grid != NULL ? node_call(cli, c, "GET", grid, name, "/health",
                                         NULL, "check the health of")
                             : NULL;
    client_free(c);
    if (h == NULL)
        return 1;
    if (cli->is_json) {
        output_json(h, stdout);
        json_decref(h);
        return 0;
    }
    bool is_up = cp_json_bool(h, "connected", false);
    const char *status = cp_json_str(h, "status");
    printf("%s:\n  connected: %s\n", name, is_up ? "yes" : "no");
    if (status != NULL)
        printf("  status: %s\n", status);
    const json_t *etcd = json_object_get(h, "etcd_health");
    if (json_is_object(etcd)) {
        const json_t *hv = json_object_get(etcd, "health");
        const char *err = cp_json_str(etcd, "error");
        const char *hl = "unknown";
        if (json_is_boolean(hv))
            hl = json_is_true(hv) ? "healthy" : "unhealthy";
        else if (json_is_string(hv))
            hl = json_string_value(hv);
        printf("  etcd: %s\n", hl);
        if (err != NULL)
            printf("  etcd error: %s\n", err);
    }
    const char *k;
    json_t *v;
    json_object_foreach(h, k, v)
    {
        if (strcmp(k, "connected") != 0 && strcmp(k, "status") != 0 &&
            strcmp(k, "etcd_health") != 0 && strcmp(k, "name") != 0 &&
            strcmp(k, "id") != 0)
            print_val("  ", k, v);
    }
    json_decref(h);
    return is_up ? 0 : 1;
}

/* ==== labels ==== */

static int run_label_ls(struct cli *cli, const struct args *a)
{
    struct client *c = cli_connect(cli);
    if (c == NULL)
        return 1;
    const char *grid = target_grid(cli, a);
    json_t *n = grid != NULL ? node_call(cli, c, "GET", grid, a->pos[0], "",
                                         NULL, "show")
                             : NULL;
    client_free(c);
    if (n == NULL)
        return 1;
    json_t *labels = json_object_get(n, "labels");
    if (cli->is_json) {
        output_list(labels);
    } else {
        size_t i;
        json_t *v;
        json_array_foreach(labels, i, v)
        {
            char *s = output_cell(v);
            printf("%s\n", s);
            cp_free(s);
        }
    }
    json_decref(n);
    return 0;
}

/* GET the node, edit its labels with the positional LABELs after the
 * node name and PUT them back. */
static int label_change(struct cli *cli, const struct args *a, bool is_add)
{
    const char *name = a->pos[0];
    const char *const *want = a->pos + 1;
    size_t nwant = a->npos - 1;
    struct client *c = cli_connect(cli);
    json_t *n = NULL, *labels = NULL, *body = NULL, *r = NULL;
    int rc = 1;
    if (c == NULL)
        goto out;
    const char *grid = target_grid(cli, a);
    if (grid == NULL)
        goto out;
    const char *verb = is_add ? "add labels to" : "remove labels from";
    n = node_call(cli, c, "GET", grid, name, "", NULL, verb);
    if (n == NULL)
        goto out;
    const json_t *old = json_object_get(n, "labels");
    if (is_add) {
        labels = cmd_node_labels_add(old, want, nwant);
    } else {
        const char *missing = NULL;
        labels = cmd_node_labels_remove(old, want, nwant, &missing);
        if (labels == NULL) {
            rc = cli_fail(cli,
                          "cannot remove label %s: node %s has no such "
                          "label",
                          missing, name);
            goto out;
        }
    }
    body = json_pack("{s:O}", "labels", labels);
    r = node_call(cli, c, "PUT", grid, name, "", body, verb);
    if (r == NULL)
        goto out;
    for (size_t i = 0; i < nwant; i++)
        printf("%s label %s %s node %s\n", is_add ? "Added" : "Removed",
               want[i], is_add ? "to" : "from", name);
    rc = 0;
out:
    json_decref(r);
    json_decref(body);
    json_decref(labels);
    json_decref(n);
    client_free(c);
    return rc;
}

static int run_label_add(struct cli *cli, const struct args *a)
{
    return label_change(cli, a, true);
}

static int run_label_rm(struct cli *cli, const struct args *a)
{
    return label_change(cli, a, false);
}

/* ==== tables ==== */

#define NODE_OPT_GRID                                                          \
    {                                                                          \
        "grid", 0, ARGS_VALUE, "GRID", "grid (default: current)"               \
    }

static const struct args_opt ls_opts[] = {
    {"all", 'a', ARGS_FLAG, NULL, "list the nodes of every grid"},
    NODE_OPT_GRID,
    CLI_OPT_OUTPUT,
    {0}};
static const struct args_opt show_opts[] = {NODE_OPT_GRID, CLI_OPT_OUTPUT, {0}};
static const struct args_opt grid_opts[] = {NODE_OPT_GRID, {0}};
static const struct args_opt create_opts[] = {
    {"token", 0, ARGS_VALUE, "TOKEN", "node token (default: random)"},
    {"label", 'l', ARGS_MULTI, "LABEL", "node label"},
    NODE_OPT_GRID,
    CLI_OPT_OUTPUT,
    {0}};
static const struct args_opt update_opts[] = {
    {"label", 'l', ARGS_MULTI, "LABEL", "set the labels to these"},
    {"clear-labels", 0, ARGS_FLAG, NULL, "remove every label"},
    {"availability", 0, ARGS_VALUE, "active|drain", "node availability"},
    NODE_OPT_GRID,
    CLI_OPT_OUTPUT,
    {0}};
static const struct args_opt rm_opts[] = {
    {"force", 'f', ARGS_FLAG, NULL, "do not ask; remove even a connected node"},
    NODE_OPT_GRID,
    {0}};
static const struct args_opt reset_token_opts[] = {
    {"token", 0, ARGS_VALUE, "TOKEN", "new node token (default: random)"},
    {"clear-token", 0, ARGS_FLAG, NULL, "remove the node token"},
    {"no-reset-connection", 0, ARGS_FLAG, NULL,
     "keep the agent's current connection"},
    {"force", 'f', ARGS_FLAG, NULL, "do not ask for confirmation"},
    NODE_OPT_GRID,
    {0}};
static const struct args_opt env_opts[] = {
    {"token", 0, ARGS_FLAG, NULL, "use the node token, not the grid token"},
    NODE_OPT_GRID,
    {0}};

const struct cli_cmd cmd_node_label[] = {
    {"list", "ls", "NODE [options]", "list the labels of a node", show_opts, 1,
     1, run_label_ls, NULL},
    {"add", NULL, "NODE LABEL... [options]", "add labels to a node", grid_opts,
     2, -1, run_label_add, NULL},
    {"remove", "rm", "NODE LABEL... [options]", "remove labels from a node",
     grid_opts, 2, -1, run_label_rm, NULL},
    {0}};

const struct cli_cmd cmd_node[] = {
    {"list", "ls", "[options]", "list the nodes of the grid", ls_opts, 0, 0,
     run_ls, NULL},
    {"show", NULL, "NODE [options]", "show a node", show_opts, 1, 1, run_show,
     NULL},
    {"create", NULL, "NODE [options]", "create a node with a node token",
     create_opts, 1, 1, run_create, NULL},
    {"update", NULL, "NODE [options]", "change node labels or availability",
     update_opts, 1, 1, run_update, NULL},
    {"remove", "rm", "NODE [options]", "remove a node", rm_opts, 1, 1, run_rm,
     NULL},
    {"reset-token", NULL, "NODE [options]", "rotate or clear a node token",
     reset_token_opts, 1, 1, run_reset_token, NULL},
    {"env", NULL, "NODE [options]", "print the agent environment of a node",
     env_opts, 1, 1, run_env, NULL},
    {"health", NULL, "NODE [options]",
     "show the connection and health of a "
     "node",
     show_opts, 1, 1, run_health, NULL},
    {"label", NULL, "<command>", "manage node labels", NULL, 0, 0, NULL,
     cmd_node_label},
    {0}};
