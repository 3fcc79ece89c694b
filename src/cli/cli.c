/* The CLI's dispatcher and shared helpers (see cli.h): walks the static
 * command tables, parses the leaf's options, prints help and usage, and
 * turns failures into one "error: ..." line.
 * SPDX-License-Identifier: Apache-2.0 */
#include "cli.h"
#include "../common/alloc.h"
#include "../common/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const struct args_opt version_opts[] = {{0}};
static const struct args_opt whoami_opts[] = {
    CLI_OPT_OUTPUT,
    {"bash-completion-path", 0, ARGS_FLAG, NULL, "print only the master name"},
    {0}};

const struct cli_cmd cli_commands[] = {
    {"master", NULL, "<command>", "manage masters and logins", NULL, 0, 0, NULL,
     cmd_master},
    {"grid", NULL, "<command>", "manage grids", NULL, 0, 0, NULL, cmd_grid},
    {"node", NULL, "<command>", "manage grid nodes", NULL, 0, 0, NULL,
     cmd_node},
    {"service", NULL, "<command>", "manage services", NULL, 0, 0, NULL,
     cmd_service},
    {"container", NULL, "<command>", "manage containers", NULL, 0, 0, NULL,
     cmd_container},
    {"stack", NULL, "<command>", "manage stacks", NULL, 0, 0, NULL, cmd_stack},
    {"vault", NULL, "<command>", "manage the grid's secrets", NULL, 0, 0, NULL,
     cmd_vault},
    {"external-registry", NULL, "<command>",
     "manage pull credentials of private registries", NULL, 0, 0, NULL,
     cmd_registry},
    {"whoami", NULL, "[options]", "show the current master, grid and user",
     whoami_opts, 0, 0, cmd_whoami, NULL},
    {"version", NULL, "", "show the cli and master versions", version_opts, 0,
     0, cmd_version, NULL},
    {0}};

/* ==== Errors ==== */

static void vprint_error(const char *fmt, va_list ap)
{
    fputs("error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

int cli_fail(struct cli *cli, const char *fmt, ...)
{
    CP_UNUSED(cli);
    va_list ap;
    va_start(ap, fmt);
    vprint_error(fmt, ap);
    va_end(ap);
    return 1;
}

static void print_usage_line(FILE *f, const char *words,
                             const struct cli_cmd *cmd)
{
    const char *usage = cmd != NULL && cmd->usage != NULL ? cmd->usage
                                                          : "<command> "
                                                            "[options]";
    fprintf(f, "usage: kontena%s%s%s%s\n", *words != '\0' ? " " : "", words,
            *usage != '\0' ? " " : "", usage);
}

int cli_usage(struct cli *cli, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprint_error(fmt, ap);
    va_end(ap);
    print_usage_line(stderr, cli->words != NULL ? cli->words : "", cli->cmd);
    fprintf(stderr, "run 'kontena %s%s--help' for more\n",
            cli->words != NULL ? cli->words : "",
            cli->words != NULL && *cli->words != '\0' ? " " : "");
    return 2;
}

int cli_api_fail(struct cli *cli, struct client *c, const char *what)
{
    if (client_is_auth_error(c)) {
        struct config_server *srv =
            cli->cfg != NULL ? config_current(cli->cfg) : NULL;
        return cli_fail(cli,
                        "not authenticated to %s: %s; use kontena master "
                        "login",
                        srv != NULL && srv->name != NULL ? srv->name
                                                         : "the master",
                        client_error(c));
    }
    return cli_fail(cli, "%s: %s", what, client_error(c));
}

/* ==== Context helpers ==== */

int cli_config(struct cli *cli)
{
    if (cli->cfg != NULL)
        return 0;
    char *path = config_default_path();
    struct config *cfg = config_new(path);
    cp_free(path);
    char err[512];
    if (config_load(cfg, err, sizeof(err)) != 0) {
        config_free(cfg);
        return cli_fail(cli, "cannot load the client config: %s", err);
    }
    config_apply_env(cfg, getenv("KONTENA_URL"), getenv("KONTENA_MASTER"),
                     getenv("KONTENA_GRID"), getenv("KONTENA_TOKEN"));
    cli->cfg = cfg;
    if (cfg->is_migrated && !cfg->is_readonly &&
        config_save(cfg, err, sizeof(err)) != 0)
        fprintf(stderr, "warning: cannot save the migrated config: %s\n", err);
    return 0;
}

int cli_save(struct cli *cli)
{
    char err[512];
    if (config_save(cli->cfg, err, sizeof(err)) != 0)
        return cli_fail(cli, "cannot save the client config: %s", err);
    return 0;
}

struct client *cli_connect(struct cli *cli)
{
    if (cli_config(cli) != 0)
        return NULL;
    struct config_server *srv = config_current(cli->cfg);
    if (srv == NULL && cli->cfg->env_master != NULL) {
        cli_fail(cli,
                 "master %s is not in the client config; use kontena "
                 "master ls",
                 cli->cfg->env_master);
        return NULL;
    }
    if (srv == NULL) {
        cli_fail(cli, "no current master; use kontena master login URL "
                      "--code CODE");
        return NULL;
    }
    if (srv->url == NULL) {
        cli_fail(cli, "master %s has no url; use kontena master login URL",
                 srv->name);
        return NULL;
    }
    if (config_token(cli->cfg, srv) == NULL) {
        cli_fail(cli, "not logged in to %s; use kontena master login",
                 srv->name);
        return NULL;
    }
    return client_new(cli->cfg, srv, NULL);
}

const char *cli_grid(struct cli *cli)
{
    if (cli_config(cli) != 0)
        return NULL;
    const char *g = config_grid(cli->cfg, config_current(cli->cfg));
    if (g == NULL || *g == '\0') {
        cli_fail(cli, "no current grid; use kontena grid use NAME or "
                      "kontena grid create NAME");
        return NULL;
    }
    return g;
}

json_t *cli_call(struct cli *cli, struct client *c, const char *method,
                 const char *path, const json_t *body, const char *what)
{
    json_t *out = NULL;
    if (client_request(c, method, path, body, &out) != 0) {
        cli_api_fail(cli, c, what);
        return NULL;
    }
    return out;
}

bool cli_stdin_is_tty(void)
{
    return isatty(STDIN_FILENO) == 1;
}

bool cli_confirm(const char *question)
{
    if (!cli_stdin_is_tty())
        return false;
    fprintf(stderr, "%s (y/N) ", question);
    fflush(stderr);
    char line[64];
    if (fgets(line, sizeof(line), stdin) == NULL)
        return false;
    return line[0] == 'y' || line[0] == 'Y';
}

/* ==== Help ==== */

static void print_group_help(FILE *f, const char *words,
                             const struct cli_cmd *table)
{
    fprintf(f, "usage: kontena%s%s <command> [options]\n\ncommands:\n",
            *words != '\0' ? " " : "", words);
    for (const struct cli_cmd *c = table; c->name != NULL; c++) {
        char name[64];
        if (c->alias != NULL)
            snprintf(name, sizeof(name), "%s, %s", c->name, c->alias);
        else
            snprintf(name, sizeof(name), "%s", c->name);
        fprintf(f, "  %-16s %s\n", name, c->summary);
    }
    if (*words == '\0')
        fprintf(f, "  %-16s %s\n", "help", "show help for a command");
    fprintf(f,
            "\nrun 'kontena %s%s<command> --help' for a command's "
            "options\n",
            words, *words != '\0' ? " " : "");
}

static void print_leaf_help(FILE *f, const char *words,
                            const struct cli_cmd *cmd)
{
    print_usage_line(f, words, cmd);
    fprintf(f, "\n%s\n\noptions:\n", cmd->summary);
    for (const struct args_opt *o = cmd->opts; o != NULL && o->name != NULL;
         o++) {
        char spec[80];
        char shortp[8] = "    ";
        if (o->short_name != 0)
            snprintf(shortp, sizeof(shortp), "-%c, ", o->short_name);
        if (o->kind == ARGS_FLAG)
            snprintf(spec, sizeof(spec), "%s--%s", shortp, o->name);
        else
            snprintf(spec, sizeof(spec), "%s--%s %s", shortp, o->name,
                     o->metavar != NULL ? o->metavar : "VALUE");
        fprintf(f, "  %-34s %s%s\n", spec, o->help != NULL ? o->help : "",
                o->kind == ARGS_MULTI ? " (may repeat)" : "");
    }
    fprintf(f, "  %-34s %s\n", "-h, --help", "show this help");
}

/* ==== Dispatch ==== */

static const struct cli_cmd *find_cmd(const struct cli_cmd *table,
                                      const char *word)
{
    for (const struct cli_cmd *c = table; c->name != NULL; c++) {
        if (strcmp(c->name, word) == 0 ||
            (c->alias != NULL && strcmp(c->alias, word) == 0))
            return c;
    }
    return NULL;
}

static void push_word(struct cli *cli, const char *word)
{
    char *w = *cli->words != '\0' ? cp_asprintf("%s %s", cli->words, word)
                                  : cp_strdup(word);
    cp_free(cli->words);
    cli->words = w;
}

static bool is_help_word(const char *s)
{
    return strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0 ||
           strcmp(s, "help") == 0;
}

/* "kontena help grid create": help for the named command. */
static int run_help(struct cli *cli, int argc, char **argv)
{
    const struct cli_cmd *table = cli_commands;
    for (int i = 0; i < argc; i++) {
        const struct cli_cmd *c = find_cmd(table, argv[i]);
        if (c == NULL) {
            cli->cmd = NULL;
            return cli_usage(cli, "unknown command '%s'", argv[i]);
        }
        push_word(cli, c->name);
        if (c->sub == NULL) {
            print_leaf_help(stdout, cli->words, c);
            return 0;
        }
        table = c->sub;
    }
    print_group_help(stdout, cli->words, table);
    return 0;
}

/* The i-th positional name in a usage string ("NAME [URL]" -> "URL"). */
static void usage_arg(const char *usage, size_t i, char *out, size_t len)
{
    snprintf(out, len, "argument");
    size_t n = 0;
    const char *p = usage;
    while (p != NULL && *p != '\0') {
        while (*p == ' ')
            p++;
        const char *end = strchr(p, ' ');
        size_t l = end != NULL ? (size_t)(end - p) : strlen(p);
        if (l > 0 && *p != '-' && strncmp(p, "[-", 2) != 0 &&
            strncmp(p, "[options]", 9) != 0) {
            if (n == i) {
                const char *s = p;
                while (l > 0 && (*s == '[' || *s == '<')) {
                    s++;
                    l--;
                }
                while (l > 0 &&
                       (s[l - 1] == ']' || s[l - 1] == '>' || s[l - 1] == '.'))
                    l--;
                snprintf(out, len, "%.*s", (int)l, s);
                return;
            }
            n++;
        }
        p = end;
    }
}

static int run_leaf(struct cli *cli, const struct cli_cmd *cmd, int argc,
                    char **argv)
{
    struct args a;
    int rc;
    cli->cmd = cmd;
    if (args_parse(&a, cmd->opts, argc, argv) != 0) {
        rc = cli_usage(cli, "%s", a.err);
        goto out;
    }
    if (a.is_help) {
        print_leaf_help(stdout, cli->words, cmd);
        rc = 0;
        goto out;
    }
    if ((int)a.npos < cmd->min_pos) {
        char name[64];
        usage_arg(cmd->usage, a.npos, name, sizeof(name));
        rc = cli_usage(cli, "missing %s", name);
        goto out;
    }
    if (cmd->max_pos >= 0 && (int)a.npos > cmd->max_pos) {
        rc = cli_usage(cli, "unexpected argument '%s'", a.pos[cmd->max_pos]);
        goto out;
    }
    bool has_output = false;
    for (const struct args_opt *o = cmd->opts; o != NULL && o->name != NULL;
         o++) {
        if (strcmp(o->name, "output") == 0)
            has_output = true;
    }
    if (has_output && args_has(&a, "output")) {
        const char *fmt = args_get(&a, "output");
        if (strcmp(fmt, "json") == 0) {
            cli->is_json = true;
        } else if (strcmp(fmt, "table") != 0) {
            rc = cli_usage(cli, "unknown output format '%s'", fmt);
            goto out;
        }
    }
    rc = cmd->run(cli, &a);
out:
    args_release(&a);
    return rc;
}

static int dispatch(struct cli *cli, const struct cli_cmd *table, int argc,
                    char **argv)
{
    if (argc == 0 || argv[0] == NULL) {
        print_group_help(stderr, cli->words, table);
        return 2;
    }
    if (is_help_word(argv[0])) {
        if (table == cli_commands && strcmp(argv[0], "help") == 0)
            return run_help(cli, argc - 1, argv + 1);
        print_group_help(stdout, cli->words, table);
        return 0;
    }
    const struct cli_cmd *c = find_cmd(table, argv[0]);
    if (c == NULL) {
        cli->cmd = NULL;
        if (argv[0][0] == '-')
            return cli_usage(cli, "unknown option %s", argv[0]);
        return cli_usage(cli, "unknown command '%s'", argv[0]);
    }
    push_word(cli, c->name);
    if (c->sub != NULL) {
        cli->cmd = c;
        return dispatch(cli, c->sub, argc - 1, argv + 1);
    }
    return run_leaf(cli, c, argc - 1, argv + 1);
}

int cli_main(int argc, char **argv)
{
    struct cli cli = {0};
    cli.words = cp_strdup("");
    int rc;
    if (argc >= 2 && argv[1] != NULL &&
        (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-v") == 0)) {
        struct args a = {0};
        rc = cmd_version(&cli, &a);
        goto out;
    }
    rc = dispatch(&cli, cli_commands, argc > 0 ? argc - 1 : 0,
                  argc > 0 ? argv + 1 : argv);
out:
    config_free(cli.cfg);
    cp_free(cli.words);
    return rc;
}
