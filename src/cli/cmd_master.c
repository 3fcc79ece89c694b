/* "kontena master ...": log in to masters, switch between them, log out,
 * and manage access tokens and users on the current master.
 * SPDX-License-Identifier: Apache-2.0 */
#include "cli.h"
#include "output.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/util.h"

#include <stdio.h>
#include <string.h>

/* Fixed client credentials, as in the Ruby CLI; the master ignores them. */
#define CLI_CLIENT_ID "15faec8a7a9b4f1e8b7daebb1307f1d8"
#define CLI_CLIENT_SECRET "fb8942ae00da4c7b8d5a1898effc742f"

/* ==== login ==== */

static bool has_scheme(const char *url)
{
    return strncmp(url, "http://", 7) == 0 || strncmp(url, "https://", 8) == 0;
}

static char *strip_url(const char *url)
{
    size_t n = strlen(url);
    while (n > 0 && url[n - 1] == '/')
        n--;
    return cp_strndup(url, n);
}

/* Picks the grid to use after a login: the one asked for, else the one
 * already stored if it still exists, else the first. Returns a borrowed
 * name, NULL when there are no grids, or sets *is_missing when the asked
 * one does not exist. */
static const char *pick_grid(const json_t *grids, const char *wanted,
                             const char *stored, bool *is_missing)
{
    *is_missing = false;
    const char *first = NULL;
    const char *found_stored = NULL;
    size_t i;
    json_t *g;
    json_array_foreach(grids, i, g)
    {
        const char *name = cp_json_str(g, "name");
        if (name == NULL)
            continue;
        if (first == NULL)
            first = name;
        if (wanted != NULL && strcmp(name, wanted) == 0)
            return name;
        if (stored != NULL && strcmp(name, stored) == 0)
            found_stored = name;
    }
    if (wanted != NULL) {
        *is_missing = true;
        return NULL;
    }
    return found_stored != NULL ? found_stored : first;
}

static int run_login(struct cli *cli, const struct args *a)
{
    if (cli_config(cli) != 0)
        return 1;
    const char *code = args_get(a, "code");
    const char *token = args_get(a, "token");
    if (code == NULL && token == NULL)
        return cli_usage(cli, "give --code CODE or --token TOKEN (browser "
                              "login is not supported)");
    if (code != NULL && token != NULL)
        return cli_usage(cli, "--code and --token cannot be used together");
    long long expires_in = 0;
    if (args_has(a, "expires-in") &&
        cp_parse_int(args_get(a, "expires-in"), 0, 1LL << 40, &expires_in) != 0)
        return cli_usage(cli, "--expires-in must be a number of seconds");
    CP_UNUSED(expires_in);

    const char *url_arg = a->npos > 0 ? a->pos[0] : NULL;
    struct config_server *cur = config_current(cli->cfg);
    if (url_arg == NULL && cur != NULL)
        url_arg = cur->url;
    if (url_arg == NULL)
        return cli_usage(cli, "missing URL");
    if (!has_scheme(url_arg))
        return cli_fail(cli,
                        "login failed: invalid url '%s': must start "
                        "with http:// or https://",
                        url_arg);

    char *url = strip_url(url_arg);
    struct config_server *srv = config_server_new(NULL, url);
    struct client *c = client_new(NULL, srv, NULL);
    json_t *tok = NULL, *user = NULL, *grids = NULL;
    const char *server_name = NULL;
    int rc = 1;

    if (code != NULL) {
        json_t *req =
            json_pack("{s:s, s:s, s:s, s:s}", "grant_type",
                      "authorization_code", "code", code, "client_id",
                      CLI_CLIENT_ID, "client_secret", CLI_CLIENT_SECRET);
        client_set_anonymous(c, true);
        int e = client_request(c, "POST", "/oauth2/token", req, &tok);
        client_set_anonymous(c, false);
        json_decref(req);
        if (e != 0) {
            cli_fail(cli, "login to %s failed: %s", url, client_error(c));
            goto out;
        }
        const char *at = cp_json_str(tok, "access_token");
        if (at == NULL) {
            cli_fail(cli,
                     "login to %s failed: no access_token in the "
                     "answer",
                     url);
            goto out;
        }
        config_set_str(&srv->token, at);
        config_set_str(&srv->refresh_token, cp_json_str(tok, "refresh_token"));
        long long exp = cp_json_int(tok, "expires_in", 0);
        srv->token_expires_at = exp > 0 ? cp_now_ms() / 1000 + exp : 0;
        server_name = cp_json_str(json_object_get(tok, "server"), "name");
    } else {
        config_set_str(&srv->token, token);
    }
    client_free(c);
    c = client_new(NULL, srv, NULL);

    /* The master only counts the login as done once a token works. */
    if (client_request(c, "GET", "/v1/user", NULL, &user) != 0) {
        cli_fail(cli, "login to %s failed: %s", url, client_error(c));
        goto out;
    }
    const char *uname = cp_json_str(user, "name");
    if (uname == NULL || *uname == '\0')
        uname = cp_json_str(user, "email");
    config_set_str(&srv->username, uname);

    const char *name = args_get(a, "name");
    if (name == NULL)
        name = server_name;
    if (name == NULL || *name == '\0')
        name = "default";
    config_set_str(&srv->name, name);
    struct config_server *old = config_find(cli->cfg, name);

    json_t *list = NULL;
    if (client_request(c, "GET", "/v1/grids", NULL, &grids) != 0) {
        cli_fail(cli, "cannot list grids on %s: %s", url, client_error(c));
        goto out;
    }
    list = json_object_get(grids, "grids");
    bool is_missing;
    const char *grid = pick_grid(list, args_get(a, "grid"),
                                 old != NULL ? old->grid : NULL, &is_missing);
    if (is_missing) {
        cli_fail(cli, "login to %s failed: grid %s not found", url,
                 args_get(a, "grid"));
        goto out;
    }
    config_set_str(&srv->grid, grid);
    if (old != NULL && old->extra != NULL)
        json_object_update_missing(srv->extra, old->extra);

    config_put_server(cli->cfg, srv);
    srv = NULL; /* the config owns it now */
    config_set_current(cli->cfg, name);
    if (cli->cfg->env_master != NULL && !cli->cfg->is_readonly)
        config_set_str(&cli->cfg->env_master, NULL);
    if (cli_save(cli) != 0)
        goto out;
    if (cli->cfg->is_readonly)
        fprintf(stderr, "warning: KONTENA_URL is set; the client config "
                        "was not written\n");

    printf("Authenticated to %s at %s as %s\n", name, url,
           uname != NULL ? uname : "?");
    if (grid != NULL)
        printf("Using grid %s\n", grid);
    else
        printf("No grids yet; create one with: kontena grid create NAME\n");
    rc = 0;
out:
    json_decref(grids);
    json_decref(user);
    json_decref(tok);
    client_free(c);
    config_server_free(srv);
    cp_free(url);
    return rc;
}

/* ==== local config commands ==== */

static int run_ls(struct cli *cli, const struct args *a)
{
    CP_UNUSED(a);
    if (cli_config(cli) != 0)
        return 1;
    const struct config_server *cur = config_current(cli->cfg);
    if (cli->is_json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < cli->cfg->nservers; i++) {
            const struct config_server *s = cli->cfg->servers[i];
            json_t *o = json_object();
            cp_json_set_str(o, "name", s->name);
            cp_json_set_str(o, "url", s->url);
            cp_json_set_str(o, "username", s->username);
            cp_json_set_str(o, "grid", config_grid(cli->cfg, s));
            json_object_set_new(o, "current", json_boolean(s == cur));
            json_array_append_new(arr, o);
        }
        output_json(arr, stdout);
        json_decref(arr);
        return 0;
    }
    static const char *const hdr[] = {"name", "url", "user", "grid"};
    struct table *t = table_new(4, hdr);
    for (size_t i = 0; i < cli->cfg->nservers; i++) {
        const struct config_server *s = cli->cfg->servers[i];
        char *name = cp_asprintf("%s%s", s->name, s == cur ? " *" : "");
        const char *row[] = {name, s->url, s->username,
                             config_grid(cli->cfg, s)};
        table_add(t, row);
        cp_free(name);
    }
    table_print(t, stdout);
    table_free(t);
    return 0;
}

static int run_use(struct cli *cli, const struct args *a)
{
    if (cli_config(cli) != 0)
        return 1;
    const struct config_server *s = config_find(cli->cfg, a->pos[0]);
    if (s == NULL)
        return cli_fail(cli,
                        "cannot use master %s: not in the client "
                        "config; use kontena master ls",
                        a->pos[0]);
    config_set_current(cli->cfg, s->name);
    if (cli_save(cli) != 0)
        return 1;
    printf("Using master %s at %s\n", s->name, s->url != NULL ? s->url : "");
    return 0;
}

static int run_current(struct cli *cli, const struct args *a)
{
    if (cli_config(cli) != 0)
        return 1;
    const struct config_server *s = config_current(cli->cfg);
    if (s == NULL)
        return cli_fail(cli, "no current master; use kontena master login "
                             "URL --code CODE");
    if (args_has(a, "name"))
        printf("%s\n", s->name);
    else if (args_has(a, "url"))
        printf("%s\n", s->url != NULL ? s->url : "");
    else
        printf("%s %s\n", s->name, s->url != NULL ? s->url : "");
    return 0;
}

static int run_logout(struct cli *cli, const struct args *a)
{
    CP_UNUSED(a);
    if (cli_config(cli) != 0)
        return 1;
    struct config_server *s = config_current(cli->cfg);
    if (s == NULL)
        return cli_fail(cli, "no current master to log out of");
    const char *token = config_token(cli->cfg, s);
    if (token != NULL && s->url != NULL) {
        /* Best effort: the token goes from the config either way. */
        struct client *c = client_new(cli->cfg, s, NULL);
        char *tok = client_escape(token);
        char *path = cp_asprintf("/oauth2/tokens/%s", tok);
        if (client_request(c, "DELETE", path, NULL, NULL) != 0)
            fprintf(stderr, "warning: cannot revoke the token on %s: %s\n",
                    s->name, client_error(c));
        cp_free(path);
        cp_free(tok);
        client_free(c);
    }
    config_set_str(&s->token, NULL);
    config_set_str(&s->refresh_token, NULL);
    s->token_expires_at = 0;
    if (cli_save(cli) != 0)
        return 1;
    printf("Logged out of %s\n", s->name);
    return 0;
}

static int run_rm(struct cli *cli, const struct args *a)
{
    if (cli_config(cli) != 0)
        return 1;
    for (size_t i = 0; i < a->npos; i++) {
        if (config_find(cli->cfg, a->pos[i]) == NULL)
            return cli_fail(cli,
                            "cannot remove master %s: not in the "
                            "client config",
                            a->pos[i]);
    }
    for (size_t i = 0; i < a->npos; i++)
        config_remove_server(cli->cfg, a->pos[i]);
    if (cli_save(cli) != 0)
        return 1;
    for (size_t i = 0; i < a->npos; i++)
        printf("Removed master %s\n", a->pos[i]);
    return 0;
}

/* ==== token ==== */

static void print_kv(const char *k, const json_t *v)
{
    char *s = output_cell(v);
    printf("  %s: %s\n", k, s);
    cp_free(s);
}

static char *masked(const json_t *tok, const char *key)
{
    const char *four = cp_json_str(tok, key);
    return four != NULL ? cp_asprintf("****%s", four) : cp_strdup("");
}

static int run_token_ls(struct cli *cli, const struct args *a)
{
    CP_UNUSED(a);
    struct client *c = cli_connect(cli);
    if (c == NULL)
        return 1;
    json_t *resp =
        cli_call(cli, c, "GET", "/oauth2/tokens", NULL, "cannot list tokens");
    client_free(c);
    if (resp == NULL)
        return 1;
    json_t *list = json_object_get(resp, "access_tokens");
    if (cli->is_json) {
        output_list(list);
        json_decref(resp);
        return 0;
    }
    static const char *const hdr[] = {"id",         "token",  "refresh token",
                                      "expires in", "scopes", "description"};
    struct table *t = table_new(6, hdr);
    size_t i;
    json_t *tok;
    json_array_foreach(list, i, tok)
    {
        char *at = masked(tok, "access_token_last_four");
        char *rt = masked(tok, "refresh_token_last_four");
        long long exp = cp_json_int(tok, "expires_in", 0);
        char *exps = exp > 0 ? cp_asprintf("%llds", exp) : cp_strdup("never");
        char *scopes = output_cell(json_object_get(tok, "scopes"));
        const char *row[] = {
            cp_json_str(tok, "id"),         at, rt, exps, scopes,
            cp_json_str(tok, "description")};
        table_add(t, row);
        cp_free(scopes);
        cp_free(exps);
        cp_free(rt);
        cp_free(at);
    }
    table_print(t, stdout);
    table_free(t);
    json_decref(resp);
    return 0;
}

static int run_token_show(struct cli *cli, const struct args *a)
{
    struct client *c = cli_connect(cli);
    if (c == NULL)
        return 1;
    char *id = client_escape(a->pos[0]);
    char *path = cp_asprintf("/oauth2/tokens/%s", id);
    char *what = cp_asprintf("cannot show token %s", a->pos[0]);
    json_t *tok = cli_call(cli, c, "GET", path, NULL, what);
    cp_free(what);
    cp_free(path);
    cp_free(id);
    client_free(c);
    if (tok == NULL)
        return 1;
    if (cli->is_json) {
        output_json(tok, stdout);
    } else {
        printf("%s:\n",
               cp_json_str(tok, "id") ? cp_json_str(tok, "id") : a->pos[0]);
        char *at = masked(tok, "access_token_last_four");
        char *rt = masked(tok, "refresh_token_last_four");
        printf("  access_token: %s\n  refresh_token: %s\n", at, rt);
        cp_free(rt);
        cp_free(at);
        print_kv("expires_in", json_object_get(tok, "expires_in"));
        print_kv("scopes", json_object_get(tok, "scopes"));
        print_kv("description", json_object_get(tok, "description"));
        json_t *user = json_object_get(tok, "user");
        print_kv("user", json_object_get(user, "email"));
    }
    json_decref(tok);
    return 0;
}

static int run_token_create(struct cli *cli, const struct args *a)
{
    long long expires_in = 0;
    if (args_has(a, "expires-in") &&
        cp_parse_int(args_get(a, "expires-in"), 0, 1LL << 40, &expires_in) != 0)
        return cli_usage(cli, "--expires-in must be a number of seconds");
    struct client *c = cli_connect(cli);
    if (c == NULL)
        return 1;
    const char *scopes = args_get(a, "scopes");
    json_t *req = json_pack("{s:s, s:s, s:I}", "response_type", "token",
                            "scope", scopes != NULL ? scopes : "user",
                            "expires_in", (json_int_t)expires_in);
    if (args_has(a, "description"))
        cp_json_set_str(req, "description", args_get(a, "description"));
    if (args_has(a, "user"))
        cp_json_set_str(req, "user", args_get(a, "user"));
    json_t *tok = cli_call(cli, c, "POST", "/oauth2/authorize", req,
                           "cannot create token");
    json_decref(req);
    client_free(c);
    if (tok == NULL)
        return 1;
    if (cli->is_json) {
        output_json(tok, stdout);
    } else {
        const char *at = cp_json_str(tok, "access_token");
        printf("%s\n", at != NULL ? at : "");
    }
    json_decref(tok);
    return 0;
}

static int run_token_rm(struct cli *cli, const struct args *a)
{
    struct client *c = cli_connect(cli);
    if (c == NULL)
        return 1;
    int rc = 0;
    for (size_t i = 0; i < a->npos && rc == 0; i++) {
        char *id = client_escape(a->pos[i]);
        char *path = cp_asprintf("/oauth2/tokens/%s", id);
        char *what = cp_asprintf("cannot remove token %s", a->pos[i]);
        json_t *r = cli_call(cli, c, "DELETE", path, NULL, what);
        if (r == NULL)
            rc = 1;
        json_decref(r);
        cp_free(what);
        cp_free(path);
        cp_free(id);
    }
    client_free(c);
    return rc;
}

static int run_token_current(struct cli *cli, const struct args *a)
{
    CP_UNUSED(a);
    if (cli_config(cli) != 0)
        return 1;
    const struct config_server *s = config_current(cli->cfg);
    const char *tok = config_token(cli->cfg, s);
    if (tok == NULL)
        return cli_fail(cli, "no current token; use kontena master login");
    printf("%s\n", tok);
    return 0;
}

/* ==== user ==== */

static int run_user_invite(struct cli *cli, const struct args *a)
{
    struct client *c = cli_connect(cli);
    if (c == NULL)
        return 1;
    int rc = 0;
    json_t *all = json_array();
    for (size_t i = 0; i < a->npos; i++) {
        json_t *req = json_pack("{s:s, s:s}", "response_type", "invite",
                                "email", a->pos[i]);
        char *what = cp_asprintf("cannot invite %s", a->pos[i]);
        json_t *r = cli_call(cli, c, "POST", "/oauth2/authorize", req, what);
        cp_free(what);
        json_decref(req);
        if (r == NULL) {
            rc = 1;
            break;
        }
        if (!cli->is_json) {
            printf("Invitation created for %s\n", a->pos[i]);
            const char *code = cp_json_str(r, "invite_code");
            const char *link = cp_json_str(r, "link");
            if (code != NULL)
                printf("  code: %s\n", code);
            if (link != NULL)
                printf("  link: %s\n", link);
        }
        json_array_append_new(all, r);
    }
    if (cli->is_json && rc == 0)
        output_json(a->npos == 1 ? json_array_get(all, 0) : all, stdout);
    json_decref(all);
    client_free(c);
    return rc;
}

static int run_user_ls(struct cli *cli, const struct args *a)
{
    CP_UNUSED(a);
    struct client *c = cli_connect(cli);
    if (c == NULL)
        return 1;
    json_t *resp =
        cli_call(cli, c, "GET", "/v1/users", NULL, "cannot list users");
    client_free(c);
    if (resp == NULL)
        return 1;
    json_t *list = json_object_get(resp, "users");
    if (cli->is_json) {
        output_list(list);
        json_decref(resp);
        return 0;
    }
    static const char *const hdr[] = {"email", "name", "roles"};
    struct table *t = table_new(3, hdr);
    size_t i;
    json_t *u;
    json_array_foreach(list, i, u)
    {
        struct cp_buf b;
        cp_buf_init(&b, 64 * 1024);
        size_t j;
        json_t *r;
        json_array_foreach(json_object_get(u, "roles"), j, r)
        {
            const char *n = json_is_string(r) ? json_string_value(r)
                                              : cp_json_str(r, "name");
            if (n != NULL)
                cp_buf_printf(&b, "%s%s", b.len > 0 ? "," : "", n);
        }
        const char *row[] = {cp_json_str(u, "email"), cp_json_str(u, "name"),
                             b.data};
        table_add(t, row);
        cp_buf_release(&b);
    }
    table_print(t, stdout);
    table_free(t);
    json_decref(resp);
    return 0;
}

static int run_user_rm(struct cli *cli, const struct args *a)
{
    struct client *c = cli_connect(cli);
    if (c == NULL)
        return 1;
    int rc = 0;
    for (size_t i = 0; i < a->npos && rc == 0; i++) {
        char *email = client_escape(a->pos[i]);
        char *path = cp_asprintf("/v1/users/%s", email);
        char *what = cp_asprintf("cannot remove user %s", a->pos[i]);
        json_t *r = cli_call(cli, c, "DELETE", path, NULL, what);
        if (r == NULL)
            rc = 1;
        json_decref(r);
        cp_free(what);
        cp_free(path);
        cp_free(email);
    }
    client_free(c);
    return rc;
}

/* ==== tables ==== */

static const struct args_opt login_opts[] = {
    {"code", 'c', ARGS_VALUE, "CODE",
     "authorization code (e.g. the "
     "INITIAL_ADMIN_CODE)"},
    {"token", 't', ARGS_VALUE, "TOKEN", "use an existing access token"},
    {"name", 'n', ARGS_VALUE, "NAME", "name for this master in the config"},
    {"grid", 'g', ARGS_VALUE, "GRID", "grid to use after login"},
    {"expires-in", 0, ARGS_VALUE, "SECONDS", "requested token lifetime"},
    {"remote", 'r', ARGS_FLAG, NULL, "ignored (no browser flow)"},
    {0}};
static const struct args_opt output_opts[] = {CLI_OPT_OUTPUT, {0}};
static const struct args_opt no_opts[] = {{0}};
static const struct args_opt current_opts[] = {
    {"name", 0, ARGS_FLAG, NULL, "print only the name"},
    {"url", 0, ARGS_FLAG, NULL, "print only the url"},
    {0}};
static const struct args_opt rm_opts[] = {
    {"force", 'f', ARGS_FLAG, NULL, "do not ask"}, {0}};
static const struct args_opt token_create_opts[] = {
    {"expires-in", 'e', ARGS_VALUE, "SECONDS", "lifetime; 0 = never"},
    {"description", 'd', ARGS_VALUE, "TEXT", "what the token is for"},
    {"user", 'u', ARGS_VALUE, "EMAIL", "create for another user (admin)"},
    {"scopes", 's', ARGS_VALUE, "SCOPES", "token scopes (default user)"},
    CLI_OPT_OUTPUT,
    {0}};

const struct cli_cmd cmd_master_token[] = {
    {"list", "ls", "[options]", "list your access tokens", output_opts, 0, 0,
     run_token_ls, NULL},
    {"show", NULL, "ID [options]", "show an access token", output_opts, 1, 1,
     run_token_show, NULL},
    {"current", NULL, "", "print the access token in use", no_opts, 0, 0,
     run_token_current, NULL},
    {"create", NULL, "[options]", "create an access token", token_create_opts,
     0, 0, run_token_create, NULL},
    {"remove", "rm", "ID...", "revoke access tokens", rm_opts, 1, -1,
     run_token_rm, NULL},
    {0}};

const struct cli_cmd cmd_master_user[] = {
    {"invite", NULL, "EMAIL... [options]", "invite users to the master",
     output_opts, 1, -1, run_user_invite, NULL},
    {"list", "ls", "[options]", "list users", output_opts, 0, 0, run_user_ls,
     NULL},
    {"remove", "rm", "EMAIL...", "remove users", rm_opts, 1, -1, run_user_rm,
     NULL},
    {0}};

const struct cli_cmd cmd_master[] = {
    {"login", NULL, "[URL] [options]", "log in to a master", login_opts, 0, 1,
     run_login, NULL},
    {"logout", NULL, "", "log out of the current master", no_opts, 0, 0,
     run_logout, NULL},
    {"list", "ls", "[options]", "list configured masters", output_opts, 0, 0,
     run_ls, NULL},
    {"use", NULL, "NAME", "switch to another master", no_opts, 1, 1, run_use,
     NULL},
    {"current", NULL, "[options]", "show the current master", current_opts, 0,
     0, run_current, NULL},
    {"remove", "rm", "NAME...", "remove masters from the config", rm_opts, 1,
     -1, run_rm, NULL},
    {"token", NULL, "<command>", "manage access tokens", NULL, 0, 0, NULL,
     cmd_master_token},
    {"user", NULL, "<command>", "manage master users", NULL, 0, 0, NULL,
     cmd_master_user},
    {"audit-log", NULL, "[options]", "show the master's audit log",
     cmd_audit_opts, 0, 0, cmd_master_audit_log, NULL},
    {0}};
