/* "kontena grid ...": create, list, show, select, update and remove grids,
 * and manage grid membership. The selected grid lives in the current
 * server's entry of the client config.
 * SPDX-License-Identifier: Apache-2.0 */
#include "cli.h"
#include "output.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/util.h"

#include <stdio.h>
#include <string.h>

#define STATSD_DEFAULT_PORT 8125

/* "/v1/grids/<name><suffix>" with the name escaped (caller frees). */
static char *grid_path(const char *name, const char *suffix)
{
    char *n = client_escape(name);
    char *p = cp_asprintf("/v1/grids/%s%s", n, suffix);
    cp_free(n);
    return p;
}

static json_t *string_list(const struct args *a, const char *opt)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < args_count(a, opt); i++)
        json_array_append_new(arr, json_string(args_at(a, opt, i)));
    return arr;
}

/* Adds the settings shared by create and update to body. Returns 0 or 2
 * after printing a usage error. */
static int add_settings(struct cli *cli, const struct args *a, json_t *body)
{
    if (args_has(a, "default-affinity"))
        json_object_set_new(body, "default_affinity",
                            string_list(a, "default-affinity"));
    if (args_has(a, "trusted-subnet"))
        json_object_set_new(body, "trusted_subnets",
                            string_list(a, "trusted-subnet"));
    const char *statsd = args_get(a, "statsd-server");
    bool has_no_statsd = false;
    for (const struct args_opt *o = a->opts; o->name != NULL; o++) {
        if (strcmp(o->name, "no-statsd-server") == 0)
            has_no_statsd = args_has(a, "no-statsd-server");
    }
    if (statsd != NULL && has_no_statsd)
        return cli_usage(cli, "--statsd-server and --no-statsd-server "
                              "cannot be used together");
    if (statsd != NULL) {
        const char *colon = strrchr(statsd, ':');
        long long port = STATSD_DEFAULT_PORT;
        char *host = colon != NULL
                         ? cp_strndup(statsd, (size_t)(colon - statsd))
                         : cp_strdup(statsd);
        if ((colon != NULL && cp_parse_int(colon + 1, 1, 65535, &port) != 0) ||
            *host == '\0') {
            cp_free(host);
            return cli_usage(cli, "--statsd-server must be HOST:PORT");
        }
        json_t *st = json_pack("{s:{s:s, s:I}}", "statsd", "server", host,
                               "port", (json_int_t)port);
        json_object_set_new(body, "stats", st);
        cp_free(host);
    } else if (has_no_statsd) {
        json_object_set_new(body, "stats", json_pack("{s:n}", "statsd"));
    }
    const char *fwd = args_get(a, "log-forwarder");
    if (fwd == NULL && args_has(a, "log-opt"))
        return cli_usage(cli, "--log-opt needs --log-forwarder");
    if (fwd != NULL) {
        json_t *opts = json_object();
        for (size_t i = 0; i < args_count(a, "log-opt"); i++) {
            const char *kv = args_at(a, "log-opt", i);
            const char *eq = strchr(kv, '=');
            if (eq == NULL || eq == kv) {
                json_decref(opts);
                return cli_usage(cli, "--log-opt must be KEY=VALUE, not '%s'",
                                 kv);
            }
            char *k = cp_strndup(kv, (size_t)(eq - kv));
            json_object_set_new(opts, k, json_string(eq + 1));
            cp_free(k);
        }
        json_object_set_new(
            body, "logs",
            json_pack("{s:s, s:o}", "forwarder", fwd, "opts", opts));
    }
    return 0;
}

/* Stores name as the grid of the current master and saves. */
static int select_grid(struct cli *cli, const char *name)
{
    struct config_server *s = config_current(cli->cfg);
    config_set_str(&s->grid, name);
    return cli_save(cli);
}

/* ==== create / list / show ==== */

static int run_create(struct cli *cli, const struct args *a)
{
    json_t *body = json_pack("{s:s}", "name", a->pos[0]);
    struct client *c = NULL;
    json_t *grid = NULL;
    int rc = 2;
    if (args_has(a, "initial-size")) {
        long long n;
        if (cp_parse_int(args_get(a, "initial-size"), 1, 1000, &n) != 0) {
            cli_usage(cli, "--initial-size must be a number from 1 to 7");
            goto out;
        }
        json_object_set_new(body, "initial_size", json_integer(n));
    }
    static const char *const plain[][2] = {
        {"token", "token"}, {"subnet", "subnet"}, {"supernet", "supernet"}};
    for (size_t i = 0; i < CP_ARRAY_LEN(plain); i++) {
        if (args_has(a, plain[i][0]))
            cp_json_set_str(body, plain[i][1], args_get(a, plain[i][0]));
    }
    if (add_settings(cli, a, body) != 0)
        goto out;
    rc = 1;
    c = cli_connect(cli);
    if (c == NULL)
        goto out;
    char *what = cp_asprintf("cannot create grid %s", a->pos[0]);
    grid = cli_call(cli, c, "POST", "/v1/grids", body, what);
    cp_free(what);
    if (grid == NULL)
        goto out;
    const char *name = cp_json_str(grid, "name");
    if (name == NULL)
        name = a->pos[0];
    if (select_grid(cli, name) != 0)
        goto out;
    if (cli->is_json)
        output_json(grid, stdout);
    else
        printf("Created grid %s\nUsing grid %s\n", name, name);
    rc = 0;
out:
    json_decref(grid);
    client_free(c);
    json_decref(body);
    return rc;
}

static int run_ls(struct cli *cli, const struct args *a)
{
    CP_UNUSED(a);
    struct client *c = cli_connect(cli);
    if (c == NULL)
        return 1;
    json_t *resp =
        cli_call(cli, c, "GET", "/v1/grids", NULL, "cannot list grids");
    client_free(c);
    if (resp == NULL)
        return 1;
    json_t *list = json_object_get(resp, "grids");
    if (cli->is_json) {
        output_list(list);
        json_decref(resp);
        return 0;
    }
    const char *cur = config_grid(cli->cfg, config_current(cli->cfg));
    static const char *const hdr[] = {"name", "nodes", "services", "users"};
    struct table *t = table_new(4, hdr);
    size_t i;
    json_t *g;
    json_array_foreach(list, i, g)
    {
        const char *name = cp_json_str(g, "name");
        bool is_cur = name != NULL && cur != NULL && strcmp(name, cur) == 0;
        char *n =
            cp_asprintf("%s%s", name != NULL ? name : "", is_cur ? " *" : "");
        char *nodes = output_cell(json_object_get(g, "node_count"));
        char *svcs = output_cell(json_object_get(g, "service_count"));
        char *users = output_cell(json_object_get(g, "user_count"));
        const char *row[] = {n, nodes, svcs, users};
        table_add(t, row);
        cp_free(users);
        cp_free(svcs);
        cp_free(nodes);
        cp_free(n);
    }
    table_print(t, stdout);
    table_free(t);
    json_decref(resp);
    return 0;
}

static void print_val(const char *indent, const char *k, const json_t *v)
{
    char *s = output_cell(v);
    printf("%s%s: %s\n", indent, k, s);
    cp_free(s);
}

static void print_list(const char *k, const json_t *arr)
{
    printf("  %s:\n", k);
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        char *s = output_cell(v);
        printf("    - %s\n", s);
        cp_free(s);
    }
}

/* The human view of a grid, YAML-like as in the Ruby CLI. */
static void print_grid(const struct cli *cli, const json_t *g)
{
    const char *name = cp_json_str(g, "name");
    printf("%s:\n", name != NULL ? name : "");
    const struct config_server *s = config_current(cli->cfg);
    if (s != NULL && s->url != NULL && strncmp(s->url, "http", 4) == 0)
        printf("  uri: ws%s\n", s->url + 4);
    print_val("  ", "id", json_object_get(g, "id"));
    print_val("  ", "token", json_object_get(g, "token"));
    print_val("  ", "initial_size", json_object_get(g, "initial_size"));
    print_val("  ", "subnet", json_object_get(g, "subnet"));
    print_val("  ", "supernet", json_object_get(g, "supernet"));
    printf("  stats:\n");
    const json_t *statsd =
        json_object_get(json_object_get(g, "stats"), "statsd");
    if (json_is_object(statsd)) {
        char *port = output_cell(json_object_get(statsd, "port"));
        const char *srv = cp_json_str(statsd, "server");
        printf("    statsd: %s:%s\n", srv != NULL ? srv : "", port);
        cp_free(port);
    } else {
        printf("    statsd: none\n");
    }
    print_list("default_affinity", json_object_get(g, "default_affinity"));
    print_list("trusted_subnets", json_object_get(g, "trusted_subnets"));
    const json_t *logs = json_object_get(g, "logs");
    if (json_is_object(logs)) {
        printf("  logs:\n");
        print_val("    ", "forwarder", json_object_get(logs, "forwarder"));
        const char *k;
        json_t *v;
        json_object_foreach(json_object_get(logs, "opts"), k, v)
        {
            print_val("    ", k, v);
        }
    }
    print_val("  ", "node_count", json_object_get(g, "node_count"));
    print_val("  ", "service_count", json_object_get(g, "service_count"));
    print_val("  ", "container_count", json_object_get(g, "container_count"));
    print_val("  ", "user_count", json_object_get(g, "user_count"));
}

/* GET /v1/grids/<name>; NULL after printing the error. */
static json_t *fetch_grid(struct cli *cli, struct client *c, const char *name)
{
    char *path = grid_path(name, "");
    char *what = cp_asprintf("cannot show grid %s", name);
    json_t *g = cli_call(cli, c, "GET", path, NULL, what);
    cp_free(what);
    cp_free(path);
    return g;
}

static int run_show(struct cli *cli, const struct args *a)
{
    struct client *c = cli_connect(cli);
    if (c == NULL)
        return 1;
    const char *name = a->npos > 0 ? a->pos[0] : cli_grid(cli);
    json_t *g = name != NULL ? fetch_grid(cli, c, name) : NULL;
    client_free(c);
    if (g == NULL)
        return 1;
    if (cli->is_json)
        output_json(g, stdout);
    else
        print_grid(cli, g);
    json_decref(g);
    return 0;
}

static int run_use(struct cli *cli, const struct args *a)
{
    struct client *c = cli_connect(cli);
    if (c == NULL)
        return 1;
    char *path = grid_path(a->pos[0], "");
    char *what = cp_asprintf("cannot use grid %s", a->pos[0]);
    json_t *g = cli_call(cli, c, "GET", path, NULL, what);
    cp_free(what);
    cp_free(path);
    client_free(c);
    if (g == NULL)
        return 1;
    int rc = select_grid(cli, a->pos[0]);
    if (rc == 0)
        printf("Using grid %s\n", a->pos[0]);
    json_decref(g);
    return rc;
}

static int run_current(struct cli *cli, const struct args *a)
{
    if (cli_config(cli) != 0)
        return 1;
    if (config_current(cli->cfg) == NULL)
        return cli_fail(cli, "no current master; use kontena master login "
                             "URL --code CODE");
    const char *name = cli_grid(cli);
    if (name == NULL)
        return 1;
    if (args_has(a, "name")) {
        printf("%s\n", name);
        return 0;
    }
    struct client *c = cli_connect(cli);
    if (c == NULL)
        return 1;
    json_t *g = fetch_grid(cli, c, name);
    client_free(c);
    if (g == NULL)
        return 1;
    if (cli->is_json)
        output_json(g, stdout);
    else
        print_grid(cli, g);
    json_decref(g);
    return 0;
}

static int run_update(struct cli *cli, const struct args *a)
{
    json_t *body = json_object();
    struct client *c = NULL;
    json_t *g = NULL;
    int rc = add_settings(cli, a, body);
    if (rc != 0)
        goto out;
    if (json_object_size(body) == 0) {
        rc = cli_usage(cli, "nothing to update");
        goto out;
    }
    rc = 1;
    c = cli_connect(cli);
    if (c == NULL)
        goto out;
    char *path = grid_path(a->pos[0], "");
    char *what = cp_asprintf("cannot update grid %s", a->pos[0]);
    g = cli_call(cli, c, "PUT", path, body, what);
    cp_free(what);
    cp_free(path);
    if (g == NULL)
        goto out;
    if (cli->is_json)
        output_json(g, stdout);
    else
        printf("Updated grid %s\n", a->pos[0]);
    rc = 0;
out:
    json_decref(g);
    client_free(c);
    json_decref(body);
    return rc;
}

static int run_rm(struct cli *cli, const struct args *a)
{
    const char *name = a->pos[0];
    if (!args_has(a, "force")) {
        char *q = cp_asprintf("Remove grid %s and everything in it?", name);
        bool is_tty = cli_stdin_is_tty();
        bool is_yes = is_tty && cli_confirm(q);
        cp_free(q);
        if (!is_tty)
            return cli_fail(cli,
                            "cannot remove grid %s: use --force to "
                            "confirm",
                            name);
        if (!is_yes)
            return cli_fail(cli, "cannot remove grid %s: aborted", name);
    }
    struct client *c = cli_connect(cli);
    if (c == NULL)
        return 1;
    char *path = grid_path(name, "");
    char *what = cp_asprintf("cannot remove grid %s", name);
    json_t *r = cli_call(cli, c, "DELETE", path, NULL, what);
    cp_free(what);
    cp_free(path);
    client_free(c);
    if (r == NULL)
        return 1;
    json_decref(r);
    struct config_server *s = config_current(cli->cfg);
    if (s->grid != NULL && strcmp(s->grid, name) == 0 &&
        select_grid(cli, NULL) != 0)
        return 1;
    printf("Removed grid %s\n", name);
    return 0;
}

/* ==== grid user ==== */

/* The --grid option, else the current grid; NULL after an error. */
static const char *target_grid(struct cli *cli, const struct args *a)
{
    const char *g = args_get(a, "grid");
    return g != NULL ? g : cli_grid(cli);
}

static int run_user_ls(struct cli *cli, const struct args *a)
{
    struct client *c = cli_connect(cli);
    if (c == NULL)
        return 1;
    const char *grid = target_grid(cli, a);
    json_t *resp = NULL;
    if (grid != NULL) {
        char *path = grid_path(grid, "/users");
        char *what = cp_asprintf("cannot list users of grid %s", grid);
        resp = cli_call(cli, c, "GET", path, NULL, what);
        cp_free(what);
        cp_free(path);
    }
    client_free(c);
    if (resp == NULL)
        return 1;
    json_t *list = json_object_get(resp, "users");
    if (cli->is_json) {
        output_list(list);
        json_decref(resp);
        return 0;
    }
    static const char *const hdr[] = {"email", "name"};
    struct table *t = table_new(2, hdr);
    size_t i;
    json_t *u;
    json_array_foreach(list, i, u)
    {
        const char *row[] = {cp_json_str(u, "email"), cp_json_str(u, "name")};
        table_add(t, row);
    }
    table_print(t, stdout);
    table_free(t);
    json_decref(resp);
    return 0;
}

static int user_change(struct cli *cli, const struct args *a, bool is_add)
{
    struct client *c = cli_connect(cli);
    if (c == NULL)
        return 1;
    const char *grid = target_grid(cli, a);
    int rc = grid != NULL ? 0 : 1;
    for (size_t i = 0; i < a->npos && rc == 0; i++) {
        const char *email = a->pos[i];
        char *path, *what;
        json_t *body = NULL;
        if (is_add) {
            path = grid_path(grid, "/users");
            body = json_pack("{s:s}", "email", email);
            what = cp_asprintf("cannot add %s to grid %s", email, grid);
        } else {
            char *e = client_escape(email);
            char *suffix = cp_asprintf("/users/%s", e);
            path = grid_path(grid, suffix);
            cp_free(suffix);
            cp_free(e);
            what = cp_asprintf("cannot remove %s from grid %s", email, grid);
        }
        json_t *r =
            cli_call(cli, c, is_add ? "POST" : "DELETE", path, body, what);
        if (r == NULL)
            rc = 1;
        else
            printf("%s %s grid %s\n", is_add ? "Added" : "Removed", email,
                   grid);
        json_decref(r);
        json_decref(body);
        cp_free(what);
        cp_free(path);
    }
    client_free(c);
    return rc;
}

static int run_user_add(struct cli *cli, const struct args *a)
{
    return user_change(cli, a, true);
}

static int run_user_rm(struct cli *cli, const struct args *a)
{
    return user_change(cli, a, false);
}

/* ==== tables ==== */

#define GRID_SETTING_OPTS                                                      \
    {"default-affinity", 0, ARGS_MULTI, "AFFINITY",                            \
     "default affinity rule for services"},                                    \
        {"trusted-subnet", 0, ARGS_MULTI, "CIDR",                              \
         "subnet where overlay traffic is not encrypted"},                     \
        {"statsd-server", 0, ARGS_VALUE, "HOST:PORT",                          \
         "export container stats to statsd"},                                  \
        {"log-forwarder", 0, ARGS_VALUE, "fluentd|none",                       \
         "forward container logs"},                                            \
    {                                                                          \
        "log-opt", 0, ARGS_MULTI, "KEY=VALUE", "log forwarder option"          \
    }

static const struct args_opt create_opts[] = {
    {"initial-size", 0, ARGS_VALUE, "N", "number of initial (etcd) nodes"},
    {"token", 0, ARGS_VALUE, "TOKEN", "grid token (default: random)"},
    {"subnet", 0, ARGS_VALUE, "CIDR", "overlay subnet"},
    {"supernet", 0, ARGS_VALUE, "CIDR", "network supernet"},
    GRID_SETTING_OPTS,
    CLI_OPT_OUTPUT,
    {0}};
static const struct args_opt update_opts[] = {
    GRID_SETTING_OPTS,
    {"no-statsd-server", 0, ARGS_FLAG, NULL, "stop exporting to statsd"},
    CLI_OPT_OUTPUT,
    {0}};
static const struct args_opt output_opts[] = {CLI_OPT_OUTPUT, {0}};
static const struct args_opt current_opts[] = {
    {"name", 0, ARGS_FLAG, NULL, "print only the name"}, CLI_OPT_OUTPUT, {0}};
static const struct args_opt no_opts[] = {{0}};
static const struct args_opt rm_opts[] = {
    {"force", 'f', ARGS_FLAG, NULL, "do not ask for confirmation"}, {0}};
static const struct args_opt user_ls_opts[] = {
    {"grid", 0, ARGS_VALUE, "GRID", "grid (default: current)"},
    CLI_OPT_OUTPUT,
    {0}};
static const struct args_opt user_opts[] = {
    {"grid", 0, ARGS_VALUE, "GRID", "grid (default: current)"}, {0}};

const struct cli_cmd cmd_grid_user[] = {
    {"list", "ls", "[options]", "list grid members", user_ls_opts, 0, 0,
     run_user_ls, NULL},
    {"add", NULL, "EMAIL... [options]", "add users to the grid", user_opts, 1,
     -1, run_user_add, NULL},
    {"remove", "rm", "EMAIL... [options]", "remove users from the grid",
     user_opts, 1, -1, run_user_rm, NULL},
    {0}};

const struct cli_cmd cmd_grid[] = {
    {"create", NULL, "NAME [options]", "create a grid and use it", create_opts,
     1, 1, run_create, NULL},
    {"list", "ls", "[options]", "list grids", output_opts, 0, 0, run_ls, NULL},
    {"show", NULL, "[NAME] [options]", "show a grid", output_opts, 0, 1,
     run_show, NULL},
    {"use", NULL, "NAME", "switch to another grid", no_opts, 1, 1, run_use,
     NULL},
    {"current", NULL, "[options]", "show the current grid", current_opts, 0, 0,
     run_current, NULL},
    {"update", NULL, "NAME [options]", "change grid settings", update_opts, 1,
     1, run_update, NULL},
    {"remove", "rm", "NAME [options]", "remove a grid", rm_opts, 1, 1, run_rm,
     NULL},
    {"env", NULL, "[NAME]", "print the agent environment for a new node",
     no_opts, 0, 1, cmd_grid_env, NULL},
    {"user", NULL, "<command>", "manage grid members", NULL, 0, 0, NULL,
     cmd_grid_user},
    {"audit-log", NULL, "[GRID] [options]", "show a grid's audit log",
     cmd_audit_opts, 0, 1, cmd_grid_audit_log, NULL},
    {0}};
