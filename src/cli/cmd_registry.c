/* "kontena external-registry ...": pull credentials for private image
 * registries of a grid (spec 3.1, 9). The password is read from -p, from
 * stdin when stdin is not a terminal, or asked for without echo; it is
 * never printed.
 * SPDX-License-Identifier: Apache-2.0 */
#include "cli.h"
#include "output.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/util.h"

#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#define REGISTRY_DEFAULT_URL "https://index.docker.io/v2/"
#define PASSWORD_MAX 8192

/* The --grid option, else the current grid; NULL after an error. */
static const char *target_grid(struct cli *cli, const struct args *a)
{
    const char *g = args_get(a, "grid");
    return g != NULL ? g : cli_grid(cli);
}

/* Reads one secret from f: everything up to the end (or the first line
 * when is_line), without the trailing newline. NULL when it is longer
 * than PASSWORD_MAX. Caller frees. */
static char *read_secret(FILE *f, bool is_line)
{
    char *buf = cp_malloc(PASSWORD_MAX + 2);
    size_t n = 0;
    int ch;
    while ((ch = fgetc(f)) != EOF) {
        if (is_line && ch == '\n')
            break;
        if (n > PASSWORD_MAX) {
            memset(buf, 0, n);
            cp_free(buf);
            return NULL;
        }
        buf[n++] = (char)ch;
    }
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    buf[n] = '\0';
    return buf;
}

/* Asks for the password on the terminal with echo off. */
static char *ask_secret(const char *prompt)
{
    fprintf(stderr, "%s", prompt);
    fflush(stderr);
    struct termios old, quiet;
    bool is_quiet = tcgetattr(STDIN_FILENO, &old) == 0;
    if (is_quiet) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    }
    char *s = read_secret(stdin, true);
    if (is_quiet)
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
    fputc('\n', stderr);
    return s;
}

static int run_add(struct cli *cli, const struct args *a)
{
    const char *url = a->npos > 0 ? a->pos[0] : REGISTRY_DEFAULT_URL;
    const char *user = args_get(a, "username");
    if (user == NULL || *user == '\0')
        return cli_usage(cli, "--username is required");
    char *pass = NULL;
    if (args_has(a, "password"))
        pass = cp_strdup(args_get(a, "password"));
    else if (!cli_stdin_is_tty())
        pass = read_secret(stdin, false);
    else
        pass = ask_secret("Password: ");
    if (pass == NULL)
        return cli_fail(cli, "the password is longer than %d bytes",
                        PASSWORD_MAX);
    int rc = 1;
    struct client *c = NULL;
    json_t *body = NULL, *r = NULL;
    if (*pass == '\0') {
        rc = cli_usage(cli, "the password is empty: give -p PASSWORD or "
                            "write it to stdin");
        goto out;
    }
    c = cli_connect(cli);
    const char *grid = c != NULL ? target_grid(cli, a) : NULL;
    if (grid == NULL)
        goto out;
    body = json_pack("{s:s, s:s, s:s}", "url", url, "username", user,
                     "password", pass);
    if (args_has(a, "email"))
        cp_json_set_str(body, "email", args_get(a, "email"));
    char *g = client_escape(grid);
    char *path = cp_asprintf("/v1/grids/%s/external_registries", g);
    char *what = cp_asprintf("cannot add registry %s to grid %s", url, grid);
    r = cli_call(cli, c, "POST", path, body, what);
    cp_free(what);
    cp_free(path);
    cp_free(g);
    if (r == NULL)
        goto out;
    if (cli->is_json)
        output_json(r, stdout);
    else
        printf("Added registry %s to grid %s\n",
               cp_json_str(r, "name") ? cp_json_str(r, "name") : url, grid);
    rc = 0;
out:
    json_decref(r);
    json_decref(body);
    client_free(c);
    memset(pass, 0, strlen(pass));
    cp_free(pass);
    return rc;
}

static int run_ls(struct cli *cli, const struct args *a)
{
    struct client *c = cli_connect(cli);
    if (c == NULL)
        return 1;
    const char *grid = target_grid(cli, a);
    json_t *resp = NULL;
    if (grid != NULL) {
        char *g = client_escape(grid);
        char *path = cp_asprintf("/v1/grids/%s/external_registries", g);
        char *what = cp_asprintf("cannot list registries of grid %s", grid);
        resp = cli_call(cli, c, "GET", path, NULL, what);
        cp_free(what);
        cp_free(path);
        cp_free(g);
    }
    client_free(c);
    if (resp == NULL)
        return 1;
    json_t *list = json_object_get(resp, "external_registries");
    if (cli->is_json) {
        output_list(list);
        json_decref(resp);
        return 0;
    }
    static const char *const hdr[] = {"name", "url", "username", "email"};
    struct table *t = table_new(4, hdr);
    size_t i;
    json_t *r;
    json_array_foreach(list, i, r)
    {
        const char *row[] = {cp_json_str(r, "name"), cp_json_str(r, "url"),
                             cp_json_str(r, "username"),
                             cp_json_str(r, "email")};
        table_add(t, row);
    }
    table_print(t, stdout);
    table_free(t);
    json_decref(resp);
    return 0;
}

static int run_rm(struct cli *cli, const struct args *a)
{
    const char *name = a->pos[0];
    if (!args_has(a, "force")) {
        char *q = cp_asprintf("Remove registry %s?", name);
        bool is_tty = cli_stdin_is_tty();
        bool is_yes = is_tty && cli_confirm(q);
        cp_free(q);
        if (!is_tty)
            return cli_fail(cli,
                            "cannot remove registry %s: use --force to "
                            "confirm",
                            name);
        if (!is_yes)
            return cli_fail(cli, "cannot remove registry %s: aborted", name);
    }
    struct client *c = cli_connect(cli);
    if (c == NULL)
        return 1;
    const char *grid = target_grid(cli, a);
    json_t *r = NULL;
    if (grid != NULL) {
        char *g = client_escape(grid);
        char *n = client_escape(name);
        char *path = cp_asprintf("/v1/external_registries/%s/%s", g, n);
        char *what =
            cp_asprintf("cannot remove registry %s from grid %s", name, grid);
        r = cli_call(cli, c, "DELETE", path, NULL, what);
        cp_free(what);
        cp_free(path);
        cp_free(n);
        cp_free(g);
    }
    client_free(c);
    if (r == NULL)
        return 1;
    json_decref(r);
    printf("Removed registry %s from grid %s\n", name, grid);
    return 0;
}

static const struct args_opt add_opts[] = {
    {"username", 'u', ARGS_VALUE, "USER", "registry user (required)"},
    {"password", 'p', ARGS_VALUE, "PASSWORD",
     "registry password (default: stdin, or asked for)"},
    {"email", 'e', ARGS_VALUE, "EMAIL", "registry account email"},
    {"grid", 0, ARGS_VALUE, "GRID", "grid (default: current)"},
    CLI_OPT_OUTPUT,
    {0}};
static const struct args_opt ls_opts[] = {
    {"grid", 0, ARGS_VALUE, "GRID", "grid (default: current)"},
    CLI_OPT_OUTPUT,
    {0}};
static const struct args_opt rm_opts[] = {
    {"grid", 0, ARGS_VALUE, "GRID", "grid (default: current)"},
    {"force", 'f', ARGS_FLAG, NULL, "do not ask for confirmation"},
    {0}};

const struct cli_cmd cmd_registry[] = {
    {"add", "create", "[URL] -u USER [-p PASSWORD] [-e EMAIL] [options]",
     "add pull credentials for a registry (default: Docker Hub)", add_opts, 0,
     1, run_add, NULL},
    {"list", "ls", "[options]", "list the grid's registries", ls_opts, 0, 0,
     run_ls, NULL},
    {"remove", "rm", "NAME [options]", "remove a registry's credentials",
     rm_opts, 1, 1, run_rm, NULL},
    {0}};
