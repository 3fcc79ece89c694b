/* "kontena vault ...": the grid's secrets (spec 7, 9). write / update
 * read the value from stdin when it is not given; read prints the value;
 * export prints every secret as one JSON object name -> value, which
 * import reads back (a null value removes that secret).
 * SPDX-License-Identifier: Apache-2.0 */
#include "cli.h"
#include "output.h"
#include "../common/alloc.h"
#include "../common/json.h"
#include "../common/util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* The most bytes read from stdin or a file (the master's limits are
 * lower; it says which). */
#define VAULT_INPUT_MAX (16 * 1024 * 1024)

static char *secret_path(const char *grid, const char *name)
{
    char *g = client_escape(grid);
    char *n = client_escape(name);
    char *p = cp_asprintf("/v1/secrets/%s/%s", g, n);
    cp_free(n);
    cp_free(g);
    return p;
}

static char *secrets_path(const char *grid)
{
    char *g = client_escape(grid);
    char *p = cp_asprintf("/v1/grids/%s/secrets", g);
    cp_free(g);
    return p;
}

/* Reads all of f (at most VAULT_INPUT_MAX bytes) into a new string, or
 * NULL with errno set (EFBIG when too long). */
static char *read_all(FILE *f, size_t *len)
{
    struct cp_buf b;
    cp_buf_init(&b, VAULT_INPUT_MAX);
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (cp_buf_append(&b, chunk, n) != 0) {
            cp_buf_release(&b);
            errno = EFBIG;
            return NULL;
        }
    }
    if (ferror(f)) {
        cp_buf_release(&b);
        errno = EIO;
        return NULL;
    }
    *len = b.len;
    return b.data != NULL ? b.data : cp_strdup("");
}

/* The value argument, or stdin without its final newline; NULL after
 * printing the error. */
static json_t *value_arg(struct cli *cli, const struct args *a)
{
    json_t *v = NULL;
    if (a->npos >= 2) {
        v = json_string(a->pos[1]);
    } else {
        size_t len = 0;
        char *in = read_all(stdin, &len);
        if (in == NULL) {
            cli_fail(cli, "cannot read the value from stdin: %s",
                     strerror(errno));
            return NULL;
        }
        if (len > 0 && in[len - 1] == '\n')
            len--;
        if (len > 0 && in[len - 1] == '\r')
            len--;
        v = len > 0 ? json_stringn(in, len) : NULL;
        if (len > 0 && v == NULL) {
            cp_free(in);
            cli_fail(cli, "the value is not valid UTF-8 text");
            return NULL;
        }
        cp_free(in);
    }
    if (v == NULL || json_string_length(v) == 0) {
        json_decref(v);
        if (a->npos < 2 && v == NULL)
            cli_fail(cli, "no value given (as an argument or on stdin)");
        else
            cli_fail(cli, "no value given");
        return NULL;
    }
    return v;
}

static int run_write(struct cli *cli, const struct args *a)
{
    struct client *c = cli_connect(cli);
    const char *grid = c != NULL ? cli_grid(cli) : NULL;
    json_t *v = grid != NULL ? value_arg(cli, a) : NULL;
    int rc = 1;
    if (v != NULL) {
        json_t *body = json_pack("{s:s, s:O}", "name", a->pos[0], "value", v);
        char *path = secrets_path(grid);
        char *what = cp_asprintf("cannot write secret %s", a->pos[0]);
        json_t *r = cli_call(cli, c, "POST", path, body, what);
        if (r != NULL) {
            if (!args_has(a, "silent"))
                printf("Wrote secret %s\n", a->pos[0]);
            rc = 0;
        }
        json_decref(r);
        cp_free(what);
        cp_free(path);
        json_decref(body);
    }
    json_decref(v);
    client_free(c);
    return rc;
}

static int run_update(struct cli *cli, const struct args *a)
{
    struct client *c = cli_connect(cli);
    const char *grid = c != NULL ? cli_grid(cli) : NULL;
    json_t *v = grid != NULL ? value_arg(cli, a) : NULL;
    int rc = 1;
    if (v != NULL) {
        json_t *body = json_pack("{s:s, s:O, s:b}", "name", a->pos[0], "value",
                                 v, "upsert", args_has(a, "upsert"));
        char *path = secret_path(grid, a->pos[0]);
        char *what = cp_asprintf("cannot update secret %s", a->pos[0]);
        json_t *r = cli_call(cli, c, "PUT", path, body, what);
        if (r != NULL) {
            if (!args_has(a, "silent"))
                printf("Updated secret %s\n", a->pos[0]);
            rc = 0;
        }
        json_decref(r);
        cp_free(what);
        cp_free(path);
        json_decref(body);
    }
    json_decref(v);
    client_free(c);
    return rc;
}

static int run_read(struct cli *cli, const struct args *a)
{
    struct client *c = cli_connect(cli);
    const char *grid = c != NULL ? cli_grid(cli) : NULL;
    int rc = 1;
    if (grid != NULL) {
        char *path = secret_path(grid, a->pos[0]);
        char *what = cp_asprintf("cannot read secret %s", a->pos[0]);
        json_t *r = cli_call(cli, c, "GET", path, NULL, what);
        if (r != NULL && cli->is_json) {
            output_json(r, stdout);
            rc = 0;
        } else if (r != NULL) {
            const json_t *v = json_object_get(r, "value");
            if (json_is_string(v)) {
                fwrite(json_string_value(v), 1, json_string_length(v), stdout);
                fputc('\n', stdout);
                rc = 0;
            } else {
                rc = cli_fail(cli, "%s: the master sent no value", what);
            }
        }
        json_decref(r);
        cp_free(what);
        cp_free(path);
    }
    client_free(c);
    return rc;
}

/* GET the grid's secret list; NULL after printing the error. */
static json_t *list_secrets(struct cli *cli, struct client *c,
                            const char *grid)
{
    char *path = secrets_path(grid);
    char *what = cp_asprintf("cannot list the secrets of grid %s", grid);
    json_t *r = cli_call(cli, c, "GET", path, NULL, what);
    if (r != NULL && !json_is_array(json_object_get(r, "secrets"))) {
        cli_fail(cli, "%s: the master sent no list", what);
        json_decref(r);
        r = NULL;
    }
    cp_free(what);
    cp_free(path);
    return r;
}

static int run_ls(struct cli *cli, const struct args *a)
{
    CP_UNUSED(a);
    struct client *c = cli_connect(cli);
    const char *grid = c != NULL ? cli_grid(cli) : NULL;
    json_t *r = grid != NULL ? list_secrets(cli, c, grid) : NULL;
    client_free(c);
    if (r == NULL)
        return 1;
    const json_t *list = json_object_get(r, "secrets");
    if (cli->is_json) {
        output_list(list);
        json_decref(r);
        return 0;
    }
    static const char *const hdr[] = {"name", "created at", "updated at",
                                      "services"};
    struct table *t = table_new(4, hdr);
    size_t i;
    const json_t *s;
    json_array_foreach(list, i, s)
    {
        struct cp_buf users;
        cp_buf_init(&users, 64 * 1024);
        size_t k;
        const json_t *u;
        json_array_foreach(json_object_get(s, "services"), k, u)
            cp_buf_printf(&users, "%s%s", k > 0 ? "," : "",
                          cp_json_str(u, "id") ? cp_json_str(u, "id") : "");
        const char *row[] = {cp_json_str(s, "name"),
                             cp_json_str(s, "created_at"),
                             cp_json_str(s, "updated_at"),
                             users.data != NULL ? users.data : "-"};
        table_add(t, row);
        cp_buf_release(&users);
    }
    table_print(t, stdout);
    table_free(t);
    json_decref(r);
    return 0;
}

/* DELETE one secret; 0 or 1 after printing why. */
static int remove_one(struct cli *cli, struct client *c, const char *grid,
                      const char *name)
{
    char *path = secret_path(grid, name);
    char *what = cp_asprintf("cannot remove secret %s", name);
    json_t *r = cli_call(cli, c, "DELETE", path, NULL, what);
    int rc = r != NULL ? 0 : 1;
    json_decref(r);
    cp_free(what);
    cp_free(path);
    return rc;
}

static int run_rm(struct cli *cli, const struct args *a)
{
    if (!args_has(a, "force")) {
        if (!cli_stdin_is_tty())
            return cli_fail(cli,
                            "cannot remove secret %s: use --force to "
                            "confirm",
                            a->pos[0]);
        char *q = cp_asprintf("Remove secret %s?", a->pos[0]);
        bool yes = cli_confirm(q);
        cp_free(q);
        if (!yes)
            return cli_fail(cli, "cannot remove secret %s: not confirmed",
                            a->pos[0]);
    }
    struct client *c = cli_connect(cli);
    const char *grid = c != NULL ? cli_grid(cli) : NULL;
    int rc = grid != NULL ? remove_one(cli, c, grid, a->pos[0]) : 1;
    if (rc == 0 && !args_has(a, "silent"))
        printf("Removed secret %s\n", a->pos[0]);
    client_free(c);
    return rc;
}

static int run_export(struct cli *cli, const struct args *a)
{
    CP_UNUSED(a);
    struct client *c = cli_connect(cli);
    const char *grid = c != NULL ? cli_grid(cli) : NULL;
    json_t *r = grid != NULL ? list_secrets(cli, c, grid) : NULL;
    json_t *out = json_object();
    int rc = r != NULL ? 0 : 1;
    size_t i;
    const json_t *s;
    json_array_foreach(json_object_get(r, "secrets"), i, s)
    {
        const char *name = cp_json_str(s, "name");
        if (name == NULL)
            continue;
        char *path = secret_path(grid, name);
        char *what = cp_asprintf("cannot read secret %s", name);
        json_t *one = cli_call(cli, c, "GET", path, NULL, what);
        const json_t *v = json_object_get(one, "value");
        if (json_is_string(v))
            json_object_set(out, name, (json_t *)(uintptr_t)v);
        else if (one != NULL)
            cli_fail(cli, "%s: the master sent no value", what);
        cp_free(what);
        cp_free(path);
        json_decref(one);
        if (!json_is_string(v)) {
            rc = 1;
            break;
        }
    }
    /* The list is ordered by name; so is the object (jansson keeps
     * insertion order). Nothing half-read is printed. */
    if (rc == 0)
        output_json(out, stdout);
    json_decref(out);
    json_decref(r);
    client_free(c);
    return rc;
}

static int run_import(struct cli *cli, const struct args *a)
{
    const char *file = a->npos >= 1 ? a->pos[0] : NULL;
    FILE *f = file != NULL ? fopen(file, "rb") : stdin;
    if (f == NULL)
        return cli_fail(cli, "cannot open %s: %s", file, strerror(errno));
    size_t len = 0;
    char *text = read_all(f, &len);
    int err = errno;
    if (f != stdin)
        fclose(f);
    if (text == NULL)
        return cli_fail(cli, "cannot read %s: %s", file ? file : "stdin",
                        strerror(err));
    char why[256];
    json_t *in = cp_json_parse(text, len, why, sizeof(why));
    cp_free(text);
    if (!json_is_object(in)) {
        json_decref(in);
        return cli_fail(cli, "cannot import %s: %s", file ? file : "stdin",
                        in != NULL ? "not a JSON object of name: value"
                                   : why);
    }
    /* Check every entry before changing anything. */
    const char *k;
    json_t *v;
    json_object_foreach(in, k, v)
    {
        if (!(json_is_string(v) || json_is_number(v) || json_is_boolean(v) ||
              json_is_null(v))) {
            cli_fail(cli,
                     "cannot import: the value of %s is not a string, "
                     "number, boolean or null",
                     k);
            json_decref(in);
            return 1;
        }
    }
    if (json_object_size(in) == 0) {
        json_decref(in);
        return cli_fail(cli, "cannot import: no secrets in the input");
    }
    struct client *c = cli_connect(cli);
    const char *grid = c != NULL ? cli_grid(cli) : NULL;
    int rc = grid != NULL ? 0 : 1;
    int written = 0, removed = 0;
    json_object_foreach(in, k, v)
    {
        if (rc != 0)
            break;
        if (json_is_null(v)) {
            rc = remove_one(cli, c, grid, k);
            removed += rc == 0;
            continue;
        }
        json_t *val;
        if (json_is_string(v))
            val = json_incref(v);
        else {
            char *t = cp_json_dump(v);
            val = json_string(t);
            cp_free(t);
        }
        json_t *body = json_pack("{s:s, s:o, s:b}", "name", k, "value", val,
                                 "upsert", 1);
        char *path = secret_path(grid, k);
        char *what = cp_asprintf("cannot import secret %s", k);
        json_t *r = cli_call(cli, c, "PUT", path, body, what);
        rc = r != NULL ? 0 : 1;
        written += rc == 0;
        json_decref(r);
        cp_free(what);
        cp_free(path);
        json_decref(body);
    }
    if (grid != NULL)
        printf("Imported %d secret(s)%s", written, removed > 0 ? ", " : "");
    if (grid != NULL && removed > 0)
        printf("removed %d", removed);
    if (grid != NULL)
        printf("\n");
    json_decref(in);
    client_free(c);
    return rc;
}

static const struct args_opt write_opts[] = {
    {"silent", 0, ARGS_FLAG, NULL, "print nothing on success"}, {0}};
static const struct args_opt update_opts[] = {
    {"upsert", 'u', ARGS_FLAG, NULL, "create the secret when it is missing"},
    {"silent", 0, ARGS_FLAG, NULL, "print nothing on success"},
    {0}};
static const struct args_opt read_opts[] = {
    {"value", 0, ARGS_FLAG, NULL, "print only the value (the default)"},
    CLI_OPT_OUTPUT,
    {0}};
static const struct args_opt ls_opts[] = {CLI_OPT_OUTPUT, {0}};
static const struct args_opt rm_opts[] = {
    {"force", 'f', ARGS_FLAG, NULL, "do not ask for confirmation"},
    {"silent", 0, ARGS_FLAG, NULL, "print nothing on success"},
    {0}};
static const struct args_opt no_opts[] = {{0}};

const struct cli_cmd cmd_vault[] = {
    {"write", NULL, "NAME [VALUE] [options]",
     "store a new secret (the value from stdin when not given)", write_opts,
     1, 2, run_write, NULL},
    {"read", NULL, "NAME [options]", "print the value of a secret", read_opts,
     1, 1, run_read, NULL},
    {"update", NULL, "NAME [VALUE] [options]",
     "change a secret (services using it are redeployed)", update_opts, 1, 2,
     run_update, NULL},
    {"list", "ls", "[options]", "list the grid's secrets (no values)",
     ls_opts, 0, 0, run_ls, NULL},
    {"remove", "rm", "NAME [options]", "remove a secret", rm_opts, 1, 1,
     run_rm, NULL},
    {"export", NULL, "", "print every secret as a JSON object name: value",
     no_opts, 0, 0, run_export, NULL},
    {"import", NULL, "[FILE]",
     "write the secrets of a JSON object name: value (null removes)", no_opts,
     0, 1, run_import, NULL},
    {0}};
