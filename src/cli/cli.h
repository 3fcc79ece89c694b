/* Shared internals of the kontena CLI: the command table type, the
 * per-run context and the helpers every cmd_*.c uses to load the config,
 * reach the master and report errors. A command is a row in a static
 * table (git.c style); adding one means a row plus a handler.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef CP_CLI_CLI_H
#define CP_CLI_CLI_H

#include "args.h"
#include "client.h"
#include "config.h"

#include <jansson.h>
#include <stdbool.h>

struct cli;
typedef int cli_run_fn(struct cli *cli, const struct args *a);

/* One row of a command table; tables end with a zeroed row. A row has
 * either sub (a group such as "grid") or run (a leaf command). */
struct cli_cmd {
    const char *name;
    const char *alias;   /* "ls" for "list"; may be NULL */
    const char *usage;   /* arguments after the command words */
    const char *summary; /* one line for help */
    const struct args_opt *opts;
    int min_pos;
    int max_pos; /* -1: no limit */
    cli_run_fn *run;
    const struct cli_cmd *sub;
};

/* The state of one run. */
struct cli {
    char *words;               /* "grid create": the command words */
    const struct cli_cmd *cmd; /* the leaf being run */
    struct config *cfg;        /* loaded on first use */
    bool is_json;              /* -o json was given */
};

/* The option every list/show command accepts. */
#define CLI_OPT_OUTPUT                                                         \
    {                                                                          \
        "output", 'o', ARGS_VALUE, "FORMAT", "output format: table or json"    \
    }

extern const struct cli_cmd cli_commands[];
extern const struct cli_cmd cmd_master[];
extern const struct cli_cmd cmd_grid[];
extern const struct cli_cmd cmd_master_token[];
extern const struct cli_cmd cmd_master_user[];
extern const struct cli_cmd cmd_grid_user[];
extern const struct cli_cmd cmd_node[];
extern const struct cli_cmd cmd_node_label[];
extern const struct cli_cmd cmd_service[];
extern const struct cli_cmd cmd_container[];
extern const struct cli_cmd cmd_stack[];
extern const struct cli_cmd cmd_vault[];
extern const struct cli_cmd cmd_registry[];
int cmd_grid_env(struct cli *cli, const struct args *a);
/* cmd_audit.c: "master audit-log" and "grid audit-log [GRID]". */
extern const struct args_opt cmd_audit_opts[];
int cmd_master_audit_log(struct cli *cli, const struct args *a);
int cmd_grid_audit_log(struct cli *cli, const struct args *a);
/* An audit entry's action ("create", "delete (403)") and resource
 * ("secrets G/DB_PASS") as table cells (caller frees). Pure. */
char *cmd_audit_action(const json_t *e);
char *cmd_audit_resource(const json_t *e);
int cmd_whoami(struct cli *cli, const struct args *a);
int cmd_version(struct cli *cli, const struct args *a);

/* Runs the CLI; returns the process exit code (0 ok, 1 error, 2 usage). */
int cli_main(int argc, char **argv);

/* Prints "error: <message>" to stderr and returns 1. */
int cli_fail(struct cli *cli, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Prints "error: <message>" and the usage line and returns 2. */
int cli_usage(struct cli *cli, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Prints the API failure of c for the action what and returns 1; a
 * rejected token becomes "not authenticated to <master>". */
int cli_api_fail(struct cli *cli, struct client *c, const char *what);

/* Loads the configuration once (file plus environment). Returns 0, or 1
 * after printing the error. */
int cli_config(struct cli *cli);
/* Saves the configuration; returns 0 or 1 after printing the error. */
int cli_save(struct cli *cli);
/* A client for the current master with a token, or NULL after printing
 * what to run (caller frees with client_free). */
struct client *cli_connect(struct cli *cli);
/* The current grid (KONTENA_GRID first) or NULL after printing what to
 * run. Borrowed. */
const char *cli_grid(struct cli *cli);
/* Performs a request; returns the parsed answer (caller decrefs) or NULL
 * after printing "error: <what>: <why>". */
json_t *cli_call(struct cli *cli, struct client *c, const char *method,
                 const char *path, const json_t *body, const char *what);
/* True when stdin is a terminal (someone can answer a question). */
bool cli_stdin_is_tty(void);
/* Asks a yes/no question on the terminal; false when stdin is not one. */
bool cli_confirm(const char *question);

/* Pure helpers of cmd_node.c, exported for the unit tests. */
/* The agent's KONTENA_URI for a master url: http:// becomes ws://,
 * https:// becomes wss://, anything else is kept (caller frees). */
char *cmd_node_ws_url(const char *url);
/* labels plus every label of add not already in it, order kept and
 * duplicates dropped (new array). */
json_t *cmd_node_labels_add(const json_t *labels, const char *const *add,
                            size_t n);
/* labels without those in rm (new array), or NULL with *missing set to
 * the first label of rm that labels does not hold. */
json_t *cmd_node_labels_remove(const json_t *labels, const char *const *rm,
                               size_t n, const char **missing);
/* A byte count as "1.50 GiB" (caller frees). */
char *cmd_node_bytes(long long n);

/* Pure helpers of cmd_service.c, exported for the unit tests and for
 * cmd_container.c. Each returns 0 or CP_EINVAL with a lower-case reason
 * in err (errlen bytes) unless said otherwise. */
/* Splits a service argument "svc", "S/svc" or "G/S/svc" into owned
 * strings (caller frees): *grid is NULL when not given, *stack is "null"
 * when not given. */
int cmd_service_ref(const char *ref, char **grid, char **stack, char **name,
                    char *err, size_t errlen);
/* "/v1/services/<grid>/<stack>/<name><suffix>", escaped (caller frees). */
char *cmd_service_path(const char *grid, const char *stack, const char *name,
                       const char *suffix);
/* A port spec "8080:80", "8080:80/udp" or "0.0.0.0:8080:80[/tcp]" as
 * {ip, protocol, node_port, container_port} in *out (new reference). */
int cmd_service_port(const char *spec, json_t **out, char *err, size_t errlen);
/* A memory size "512m", "1g", "1.5G", "64k" or plain bytes in *out. */
int cmd_service_memory(const char *s, long long *out, char *err, size_t errlen);
/* A secret spec "SECRET:NAME[:env]" as {secret, name, type} in *out. */
int cmd_service_secret(const char *spec, json_t **out, char *err,
                       size_t errlen);

/* An incremental parser for a stream of concatenated JSON objects with
 * whitespace between them (the master's follow responses). Objects larger
 * than max bytes are an error. */
struct cmd_jstream;
/* Called for each complete object (borrowed); non-zero stops the feed and
 * is returned by cmd_jstream_feed(). */
typedef int cmd_jstream_fn(void *ud, json_t *obj);
struct cmd_jstream *cmd_jstream_new(size_t max);
void cmd_jstream_free(struct cmd_jstream *js);
/* Feeds len bytes. Returns 0, the callback's non-zero result, or
 * CP_EPROTO (bad JSON or a non-object at the top level; the reason is in
 * cmd_jstream_error()) or CP_EINVAL (an object over max). After an error
 * the parser must be reset. */
int cmd_jstream_feed(struct cmd_jstream *js, const char *data, size_t len,
                     cmd_jstream_fn *fn, void *ud);
/* Drops any partial object, e.g. before a reconnect. */
void cmd_jstream_reset(struct cmd_jstream *js);
/* True when part of an object is buffered. */
bool cmd_jstream_is_partial(const struct cmd_jstream *js);
/* The reason of the last error; borrowed. */
const char *cmd_jstream_error(const struct cmd_jstream *js);

/* Prints the items of a container_logs or event_logs path (no query
 * string; query is "limit=N&since=T" or ""): the backlog first, then,
 * with is_follow, the live stream until SIGINT, reconnecting from the
 * last id. Returns the exit code. */
int cmd_service_logs_run(struct cli *cli, struct client *c, const char *path,
                         const char *query, bool is_follow, bool is_events,
                         const char *what);

#endif
