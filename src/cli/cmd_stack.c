/* "kontena stack ...": install, upgrade, deploy, list, show, inspect,
 * logs, events, stop, restart, remove, validate and labels of stacks.
 * Stack files are read by stackfile.c; this file talks to the master's
 * stacks API (/v1/grids/G/stacks, /v1/stacks/G/S) and waits for stack
 * deploys with a bound, so a deploy that fails before any service starts
 * ends the command with its reason (issue #2523).
 * SPDX-License-Identifier: Apache-2.0 */
#include "cli.h"
#include "output.h"
#include "stackfile.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/util.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define STACK_DEPLOY_TIMEOUT_S 600
#define STACK_REMOVE_TIMEOUT_S 300
#define STACK_PROMPT_MAX 4096

/* ==== Interruptible waiting ==== */

static volatile sig_atomic_t is_interrupted;

static void on_sigint(int sig)
{
    CP_UNUSED(sig);
    is_interrupted = 1;
}

/* Sleeps ms in short steps; false when SIGINT arrived meanwhile. */
static bool nap(long ms)
{
    while (ms > 0 && !is_interrupted) {
        long step = ms > 100 ? 100 : ms;
        struct timespec ts = {0, step * 1000000L};
        nanosleep(&ts, NULL);
        ms -= step;
    }
    return !is_interrupted;
}

/* ==== Calls ==== */

/* "/v1/stacks/<grid>/<name><suffix>", escaped (caller frees). */
static char *stack_path(const char *grid, const char *name, const char *suffix)
{
    char *g = client_escape(grid);
    char *n = client_escape(name);
    char *p =
        cp_asprintf("/v1/stacks/%s/%s%s", g, n, suffix != NULL ? suffix : "");
    cp_free(n);
    cp_free(g);
    return p;
}

/* Prints "error: <what>: <why>", a 422 field hash one field a line. */
static void print_api_error(struct cli *cli, struct client *c, const char *what)
{
    const char *e = client_error(c);
    if (client_status(c) != 422 || strstr(e, "; ") == NULL) {
        cli_api_fail(cli, c, what);
        return;
    }
    fprintf(stderr, "error: %s:\n", what);
    const char *p = e;
    for (;;) {
        const char *sep = strstr(p, "; ");
        size_t l = sep != NULL ? (size_t)(sep - p) : strlen(p);
        fprintf(stderr, "  %.*s\n", (int)l, p);
        if (sep == NULL)
            break;
        p = sep + 2;
    }
}

/* method on the stack's path plus suffix; NULL after printing "error:
 * cannot <verb> stack <name>: <why>". */
static json_t *stack_call(struct cli *cli, struct client *c, const char *method,
                          const char *grid, const char *name,
                          const char *suffix, const json_t *body,
                          const char *verb)
{
    char *path = stack_path(grid, name, suffix);
    json_t *out = NULL;
    if (client_request(c, method, path, body, &out) != 0) {
        char *what = cp_asprintf("cannot %s stack %s", verb, name);
        print_api_error(cli, c, what);
        cp_free(what);
        out = NULL;
    }
    cp_free(path);
    return out;
}

/* Asks before a destructive step unless --force; 0 to go on. */
static int confirm(struct cli *cli, const struct args *a, const char *question,
                   const char *what)
{
    if (args_has(a, "force"))
        return 0;
    if (!cli_stdin_is_tty())
        return cli_fail(cli, "%s: use --force to confirm", what);
    if (!cli_confirm(question))
        return cli_fail(cli, "%s: aborted", what);
    return 0;
}

static int parse_timeout(struct cli *cli, const struct args *a, long long dflt,
                         long long *out)
{
    *out = dflt;
    if (!args_has(a, "timeout"))
        return 0;
    const char *v = args_get(a, "timeout");
    if (cp_parse_int(v, 1, 86400, out) != 0)
        return cli_usage(cli, "--timeout must be seconds 1-86400, not '%s'", v);
    return 0;
}

/* ==== Reading stack files ==== */

/* What the reader's callbacks need. */
struct reader {
    struct cli *cli;
    struct client *c; /* NULL until a vault secret is wanted (validate) */
    bool owns_client;
    const char *grid;
};

static int vault_cb(void *ud, const char *name, char **value, char *err,
                    size_t errlen)
{
    struct reader *r = ud;
    if (r->grid == NULL) {
        snprintf(err, errlen, "no current grid");
        return CP_EINVAL;
    }
    if (r->c == NULL) {
        r->c = cli_connect(r->cli);
        r->owns_client = true;
        if (r->c == NULL) {
            snprintf(err, errlen, "not connected to a master");
            return CP_EINVAL;
        }
    }
    char *g = client_escape(r->grid);
    char *n = client_escape(name);
    char *path = cp_asprintf("/v1/secrets/%s/%s", g, n);
    json_t *out = NULL;
    int rc = client_request(r->c, "GET", path, NULL, &out);
    cp_free(path);
    cp_free(n);
    cp_free(g);
    if (rc == CP_ENOTFOUND) {
        json_decref(out);
        return CP_ENOTFOUND;
    }
    if (rc != 0) {
        snprintf(err, errlen, "%s", client_error(r->c));
        return rc;
    }
    const char *v = cp_json_str(out, "value");
    if (v == NULL) {
        snprintf(err, errlen, "the master answered without a value");
        json_decref(out);
        return CP_EPROTO;
    }
    *value = cp_strdup(v);
    json_decref(out);
    return 0;
}

static int prompt_cb(void *ud, const char *text, char **value)
{
    CP_UNUSED(ud);
    if (!cli_stdin_is_tty())
        return -1;
    fprintf(stderr, "%s: ", text);
    fflush(stderr);
    char line[STACK_PROMPT_MAX];
    if (fgets(line, sizeof(line), stdin) == NULL)
        return -1;
    line[strcspn(line, "\r\n")] = '\0';
    *value = cp_strdup(line);
    return 0;
}

static void print_errors(const struct stackfile *sf)
{
    for (size_t i = 0; i < sf->nerrors; i++) {
        char *t = stackfile_error_text(&sf->errors[i]);
        fprintf(stderr, "error: %s\n", t);
        cp_free(t);
    }
    if (sf->ndropped > 0)
        fprintf(stderr, "error: ... and %zu more\n", sf->ndropped);
}

/* Reads a stack file (or text) into sf; 0, or 1 after printing every
 * problem. */
static int read_stack(struct reader *r, const char *file, const char *text,
                      const char *name, const char *parent,
                      const json_t *values, struct stackfile *sf)
{
    struct stackfile_opts o = {0};
    o.name = name;
    o.parent = parent;
    o.grid = r->grid;
    o.values = values;
    o.text = text;
    o.text_len = text != NULL ? strlen(text) : 0;
    o.vault_fn = vault_cb;
    o.prompt_fn = prompt_cb;
    o.ud = r;
    if (stackfile_load(sf, file, &o) != 0) {
        print_errors(sf);
        fprintf(stderr, "error: %s has %zu problem%s\n", file,
                sf->nerrors + sf->ndropped,
                sf->nerrors + sf->ndropped == 1 ? "" : "s");
        return 1;
    }
    return 0;
}

/* The overrides of --values-from then -v (new object), or NULL after
 * printing the error, with the exit code in *code. */
static json_t *read_values(struct cli *cli, const struct args *a, int *code)
{
    json_t *values = json_object();
    char why[512];
    if (args_has(a, "values-from") &&
        stackfile_values_file(values, args_get(a, "values-from"), why,
                              sizeof(why)) != 0) {
        *code = cli_fail(cli, "cannot read --values-from: %s", why);
        json_decref(values);
        return NULL;
    }
    for (size_t i = 0; i < args_count(a, "var"); i++) {
        if (stackfile_value_arg(values, args_at(a, "var", i), why,
                                sizeof(why)) != 0) {
            *code = cli_usage(cli, "%s", why);
            json_decref(values);
            return NULL;
        }
    }
    return values;
}

/* The grid for reading a file without failing when there is none
 * (validate works offline); NULL when unknown. */
static const char *quiet_grid(struct cli *cli)
{
    const char *env = getenv("KONTENA_GRID");
    if (env != NULL && *env != '\0')
        return env;
    if (cli_config(cli) != 0)
        return NULL;
    const char *g = config_grid(cli->cfg, config_current(cli->cfg));
    return g != NULL && *g != '\0' ? g : NULL;
}

/* A dependency chain: the files being installed, outermost first. */
struct chain {
    const char *files[STACKFILE_MAX_CHAIN + 1];
    size_t n;
};

/* 0 when file may be read as the next link of ch (pushed), else 1 after
 * printing the loop. */
static int chain_push(struct cli *cli, struct chain *ch, const char *file)
{
    char real[PATH_MAX];
    if (realpath(file, real) == NULL)
        snprintf(real, sizeof(real), "%s", file);
    for (size_t i = 0; i < ch->n; i++) {
        if (strcmp(ch->files[i], real) == 0)
            return cli_fail(cli, "depends loops: %s depends on itself", file);
    }
    if (ch->n >= STACKFILE_MAX_CHAIN)
        return cli_fail(cli, "depends nests deeper than %d stacks at %s",
                        STACKFILE_MAX_CHAIN, file);
    ch->files[ch->n++] = cp_strdup(real);
    return 0;
}

static void chain_pop(struct chain *ch)
{
    cp_free((char *)(uintptr_t)ch->files[--ch->n]);
}

/* ==== Deploy and wait ==== */

static bool is_done(const char *state)
{
    return state != NULL &&
           (strcmp(state, "success") == 0 || strcmp(state, "error") == 0);
}

/* The state of service_id in a stack deploy, or NULL. */
static const char *service_state(const json_t *d, const char *id)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(d, "service_deploys"), i, v)
    {
        const char *sid = cp_json_str(v, "service_id");
        if (sid != NULL && strcmp(sid, id) == 0)
            return cp_json_str(v, "state");
    }
    return NULL;
}

/* One line per service deploy whose state changed since prev. */
static void print_progress(const json_t *prev, const json_t *d)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(d, "service_deploys"), i, v)
    {
        const char *id = cp_json_str(v, "service_id");
        const char *st = cp_json_str(v, "state");
        if (id == NULL || st == NULL)
            continue;
        const char *old = service_state(prev, id);
        if (old != NULL && strcmp(old, st) == 0)
            continue;
        const char *reason = cp_json_str(v, "reason");
        printf("%s: %s%s%s\n", id, st,
               reason != NULL && *reason != '\0' ? ": " : "",
               reason != NULL ? reason : "");
    }
    fflush(stdout);
}

static int deploy_result(struct cli *cli, const char *name, const json_t *d)
{
    if (strcmp(cp_json_str(d, "state"), "success") == 0) {
        if (cli->is_json)
            output_json(d, stdout);
        else
            printf("deployed stack %s\n", name);
        return 0;
    }
    const char *reason = cp_json_str(d, "reason");
    const json_t *sds = json_object_get(d, "service_deploys");
    if (reason == NULL || *reason == '\0') {
        /* The first failed service says why. */
        size_t i;
        json_t *v;
        json_array_foreach(sds, i, v)
        {
            const char *st = cp_json_str(v, "state");
            if (reason == NULL && st != NULL && strcmp(st, "error") == 0)
                reason = cp_json_str(v, "reason");
        }
    }
    if (reason == NULL || *reason == '\0')
        reason = json_array_size(sds) == 0
                     ? "the deploy failed before any service was deployed"
                     : "the deploy failed";
    cli_fail(cli, "cannot deploy stack %s: %s", name, reason);
    size_t i, k;
    json_t *v, *idep;
    json_array_foreach(sds, i, v)
    {
        json_array_foreach(json_object_get(v, "instance_deploys"), k, idep)
        {
            const char *err = cp_json_str(idep, "error");
            if (err == NULL)
                continue;
            const json_t *node = json_object_get(idep, "node");
            const char *nn = json_is_string(node) ? json_string_value(node)
                                                  : cp_json_str(node, "name");
            fprintf(stderr, "  %s-%lld on node %s: %s\n",
                    cp_json_str(v, "service_id") != NULL
                        ? cp_json_str(v, "service_id")
                        : "-",
                    cp_json_int(idep, "instance_number", 0),
                    nn != NULL ? nn : "-", err);
        }
    }
    if (cli->is_json)
        output_json(d, stdout);
    return 1;
}

/* POST .../deploy and, unless no_wait, poll the stack deploy every
 * second until success or error, at most timeout_s. */
static int deploy_stack(struct cli *cli, struct client *c, const char *grid,
                        const char *name, bool no_wait, long long timeout_s)
{
    json_t *empty = json_object();
    json_t *d =
        stack_call(cli, c, "POST", grid, name, "/deploy", empty, "deploy");
    json_decref(empty);
    if (d == NULL)
        return 1;
    const char *id = cp_json_str(d, "id");
    if (no_wait) {
        if (cli->is_json)
            output_json(d, stdout);
        else
            printf("deploy of stack %s started: %s\n", name,
                   id != NULL ? id : "-");
        json_decref(d);
        return 0;
    }
    int rc = 1;
    char *suffix = NULL;
    json_t *prev = json_object();
    if (id == NULL || *id == '\0') {
        cli_fail(cli,
                 "cannot deploy stack %s: the master answered without "
                 "a deploy id",
                 name);
        goto out;
    }
    char *eid = client_escape(id);
    suffix = cp_asprintf("/deploys/%s", eid);
    cp_free(eid);
    struct sigaction sa = {0}, old;
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    is_interrupted = 0;
    sigaction(SIGINT, &sa, &old);
    int64_t deadline = cp_mono_ms() + timeout_s * 1000;
    if (!cli->is_json)
        printf("deploying stack %s\n", name);
    for (;;) {
        if (!cli->is_json)
            print_progress(prev, d);
        if (is_done(cp_json_str(d, "state")))
            break;
        json_decref(prev);
        prev = json_incref(d);
        if (cp_mono_ms() >= deadline) {
            cli_fail(cli,
                     "cannot deploy stack %s: still not finished after %lld "
                     "s (state %s); see kontena stack show %s",
                     name, timeout_s,
                     cp_json_str(d, "state") != NULL ? cp_json_str(d, "state")
                                                     : "unknown",
                     name);
            goto restore;
        }
        if (!nap(1000)) {
            cli_fail(cli,
                     "stopped waiting for the deploy of stack %s: "
                     "interrupted; it goes on in the master",
                     name);
            goto restore;
        }
        json_t *next = stack_call(cli, c, "GET", grid, name, suffix, NULL,
                                  "check the deploy of");
        if (next == NULL)
            goto restore;
        json_decref(d);
        d = next;
    }
    rc = deploy_result(cli, name, d);
restore:
    sigaction(SIGINT, &old, NULL);
out:
    json_decref(prev);
    json_decref(d);
    cp_free(suffix);
    return rc;
}

/* ==== install / upgrade ==== */

struct install {
    struct cli *cli;
    struct client *c;
    struct reader *r;
    const char *grid;
    bool is_deploy;
    bool is_force;
    long long timeout;
    struct chain chain;
};

static int install_file(struct install *in, const char *file, const char *name,
                        const char *parent, const json_t *values);
static int upgrade_stack(struct install *in, const char *name, const char *file,
                         const json_t *values, const json_t *existing);

/* Installs or upgrades each child of sf (children first). */
static int install_children(struct install *in, const struct stackfile *sf,
                            const char *parent)
{
    size_t i;
    json_t *dep;
    json_array_foreach(sf->depends, i, dep)
    {
        const char *child = cp_json_str(dep, "name");
        const char *file = cp_json_str(dep, "file");
        const json_t *vars = json_object_get(dep, "variables");
        char *path = stack_path(in->grid, child, "");
        json_t *existing = NULL;
        int rc = client_request(in->c, "GET", path, NULL, &existing);
        cp_free(path);
        if (rc == 0) {
            printf("upgrading child stack %s of %s from %s\n", child, parent,
                   file);
            rc = upgrade_stack(in, child, file, vars, existing);
        } else if (rc == CP_ENOTFOUND) {
            printf("installing child stack %s of %s from %s\n", child, parent,
                   file);
            rc = install_file(in, file, child, parent, vars);
        } else {
            char *what = cp_asprintf("cannot check stack %s", child);
            print_api_error(in->cli, in->c, what);
            cp_free(what);
            rc = 1;
        }
        json_decref(existing);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int install_file(struct install *in, const char *file, const char *name,
                        const char *parent, const json_t *values)
{
    struct stackfile sf;
    if (chain_push(in->cli, &in->chain, file) != 0)
        return 1;
    int rc = read_stack(in->r, file, NULL, name, parent, values, &sf);
    if (rc != 0)
        goto out;
    const char *sname = cp_json_str(sf.body, "name");
    rc = install_children(in, &sf, sname);
    if (rc != 0)
        goto out;
    char *g = client_escape(in->grid);
    char *path = cp_asprintf("/v1/grids/%s/stacks", g);
    cp_free(g);
    json_t *created = NULL;
    rc = client_request(in->c, "POST", path, sf.body, &created);
    cp_free(path);
    if (rc != 0) {
        char *what = cp_asprintf("cannot create stack %s", sname);
        print_api_error(in->cli, in->c, what);
        cp_free(what);
        rc = 1;
        goto out;
    }
    json_decref(created);
    printf("created stack %s\n", sname);
    fflush(stdout);
    rc = in->is_deploy
             ? deploy_stack(in->cli, in->c, in->grid, sname, false, in->timeout)
             : 0;
out:
    stackfile_release(&sf);
    chain_pop(&in->chain);
    return rc;
}

/* PUTs a new revision of stack name from file (or, when file is NULL,
 * from the stored source of existing) and deploys it. */
static int upgrade_stack(struct install *in, const char *name, const char *file,
                         const json_t *values, const json_t *existing)
{
    struct stackfile sf;
    memset(&sf, 0, sizeof(sf));
    const char *parent =
        cp_json_str(json_object_get(existing, "parent"), "name");
    json_t *vals = json_object();
    const char *text = NULL;
    char *label = NULL;
    int rc = 1;
    if (file == NULL) {
        text = cp_json_str(existing, "source");
        if (text == NULL) {
            rc = cli_fail(in->cli,
                          "cannot upgrade stack %s: the master has no "
                          "source for it; give the stack file",
                          name);
            goto out;
        }
        /* Replay the stored values (random strings stay the same). */
        const json_t *stored = json_object_get(existing, "variables");
        if (json_is_object(stored))
            json_object_update(vals, (json_t *)(uintptr_t)stored);
        label = cp_asprintf("stored source of %s", name);
    } else {
        label = cp_strdup(file);
        if (chain_push(in->cli, &in->chain, file) != 0)
            goto out_nochain;
    }
    if (values != NULL)
        json_object_update(vals, (json_t *)(uintptr_t)values);
    rc = read_stack(in->r, label, text, name, parent, vals, &sf);
    if (rc != 0)
        goto out;
    const char *old = cp_json_str(existing, "stack");
    const char *now = cp_json_str(sf.body, "stack");
    if (old != NULL && now != NULL && strcmp(old, now) != 0 && !in->is_force) {
        rc = cli_fail(in->cli,
                      "stack %s was installed from %s, not %s: use --force "
                      "to replace it",
                      name, old, now);
        goto out;
    }
    rc = install_children(in, &sf, name);
    if (rc != 0)
        goto out;
    /* Labels are kept as they are: kontena stack label edits them. */
    json_object_del(sf.body, "labels");
    json_t *r = stack_call(in->cli, in->c, "PUT", in->grid, name, "", sf.body,
                           "upgrade");
    if (r == NULL) {
        rc = 1;
        goto out;
    }
    printf("upgraded stack %s to revision %lld\n", name,
           cp_json_int(r, "revision", 0));
    fflush(stdout);
    json_decref(r);
    rc = in->is_deploy
             ? deploy_stack(in->cli, in->c, in->grid, name, false, in->timeout)
             : 0;
out:
    if (file != NULL)
        chain_pop(&in->chain);
out_nochain:
    stackfile_release(&sf);
    json_decref(vals);
    cp_free(label);
    return rc;
}

/* Shared set-up of install and upgrade. */
static int install_begin(struct cli *cli, const struct args *a,
                         struct install *in, struct reader *r, json_t **values)
{
    memset(in, 0, sizeof(*in));
    memset(r, 0, sizeof(*r));
    in->is_deploy = !args_has(a, "no-deploy");
    if (parse_timeout(cli, a, STACK_DEPLOY_TIMEOUT_S, &in->timeout) != 0)
        return 2;
    int code = 2;
    *values = read_values(cli, a, &code);
    if (*values == NULL)
        return code;
    in->c = cli_connect(cli);
    in->grid = in->c != NULL ? cli_grid(cli) : NULL;
    if (in->grid == NULL) {
        client_free(in->c);
        json_decref(*values);
        return 1;
    }
    in->cli = cli;
    in->r = r;
    r->cli = cli;
    r->c = in->c;
    r->grid = in->grid;
    return 0;
}

static int run_install(struct cli *cli, const struct args *a)
{
    struct install in;
    struct reader r;
    json_t *values;
    int rc = install_begin(cli, a, &in, &r, &values);
    if (rc != 0)
        return rc;
    const char *file = a->npos > 0 ? a->pos[0] : "kontena.yml";
    rc = install_file(&in, file, args_get(a, "name"), NULL, values);
    json_decref(values);
    client_free(in.c);
    return rc;
}

static int run_upgrade(struct cli *cli, const struct args *a)
{
    struct install in;
    struct reader r;
    json_t *values;
    int rc = install_begin(cli, a, &in, &r, &values);
    if (rc != 0)
        return rc;
    in.is_force = args_has(a, "force");
    const char *name = a->pos[0];
    json_t *existing =
        stack_call(cli, in.c, "GET", in.grid, name, "", NULL, "upgrade");
    rc = 1;
    if (existing != NULL)
        rc = upgrade_stack(&in, name, a->npos > 1 ? a->pos[1] : NULL, values,
                           existing);
    json_decref(existing);
    json_decref(values);
    client_free(in.c);
    return rc;
}

/* ==== validate ==== */

/* The body as people read it: no raw source, no unset service fields. */
static json_t *display_body(const json_t *body)
{
    json_t *b = json_deep_copy(body);
    json_object_del(b, "source");
    json_object_del(b, "registry");
    size_t i;
    json_t *svc;
    json_array_foreach(json_object_get(b, "services"), i, svc)
    {
        const char *k;
        json_t *v;
        void *tmp;
        json_object_foreach_safe(svc, tmp, k, v)
        {
            if (json_is_null(v))
                json_object_del(svc, k);
        }
    }
    return b;
}

static int validate_file(struct cli *cli, struct reader *r, struct chain *ch,
                         const char *file, const char *name, const char *parent,
                         const json_t *values, json_t *out)
{
    struct stackfile sf;
    if (chain_push(cli, ch, file) != 0)
        return 1;
    int rc = read_stack(r, file, NULL, name, parent, values, &sf);
    if (rc == 0) {
        size_t i;
        json_t *dep;
        json_array_foreach(sf.depends, i, dep)
        {
            int crc = validate_file(cli, r, ch, cp_json_str(dep, "file"),
                                    cp_json_str(dep, "name"),
                                    cp_json_str(sf.body, "name"),
                                    json_object_get(dep, "variables"), out);
            if (crc != 0)
                rc = crc;
        }
        json_array_append_new(out, cli->is_json ? json_incref(sf.body)
                                                : display_body(sf.body));
    }
    stackfile_release(&sf);
    chain_pop(ch);
    return rc;
}

static int run_validate(struct cli *cli, const struct args *a)
{
    int code = 2;
    json_t *values = read_values(cli, a, &code);
    if (values == NULL)
        return code;
    struct reader r = {0};
    r.cli = cli;
    r.grid = quiet_grid(cli);
    struct chain ch = {0};
    json_t *out = json_array();
    const char *file = a->npos > 0 ? a->pos[0] : "kontena.yml";
    int rc = validate_file(cli, &r, &ch, file, args_get(a, "name"), NULL,
                           values, out);
    if (rc == 0) {
        if (cli->is_json) {
            output_json(json_array_size(out) == 1 ? json_array_get(out, 0)
                                                  : out,
                        stdout);
        } else {
            size_t i;
            json_t *b;
            json_array_foreach(out, i, b)
            {
                char *y = stackfile_yaml(b);
                if (y == NULL) {
                    rc = cli_fail(cli, "cannot render the stack as YAML");
                    break;
                }
                if (json_array_size(out) > 1)
                    fputs("---\n", stdout);
                fputs(y, stdout);
                cp_free(y);
            }
        }
    }
    json_decref(out);
    json_decref(values);
    if (r.owns_client)
        client_free(r.c);
    return rc;
}

/* ==== deploy, list, show, inspect ==== */

/* The connection and grid most commands need; 0 or the exit code. */
static int begin(struct cli *cli, struct client **c, const char **grid)
{
    *c = cli_connect(cli);
    if (*c == NULL)
        return 1;
    *grid = cli_grid(cli);
    if (*grid == NULL) {
        client_free(*c);
        *c = NULL;
        return 1;
    }
    return 0;
}

static int run_deploy(struct cli *cli, const struct args *a)
{
    long long timeout;
    struct client *c;
    const char *grid;
    if (parse_timeout(cli, a, STACK_DEPLOY_TIMEOUT_S, &timeout) != 0)
        return 2;
    if (begin(cli, &c, &grid) != 0)
        return 1;
    int rc =
        deploy_stack(cli, c, grid, a->pos[0], args_has(a, "no-wait"), timeout);
    client_free(c);
    return rc;
}

static char *join_labels(const json_t *labels)
{
    struct cp_buf b;
    cp_buf_init(&b, 64 * 1024);
    size_t i;
    json_t *v;
    json_array_foreach(labels, i, v)
    {
        if (json_is_string(v))
            cp_buf_printf(&b, "%s%s", b.len > 0 ? "," : "",
                          json_string_value(v));
    }
    char *s = cp_strdup(b.data != NULL ? b.data : "");
    cp_buf_release(&b);
    return s;
}

static int run_ls(struct cli *cli, const struct args *a)
{
    CP_UNUSED(a);
    struct client *c;
    const char *grid;
    if (begin(cli, &c, &grid) != 0)
        return 1;
    char *g = client_escape(grid);
    char *path = cp_asprintf("/v1/grids/%s/stacks", g);
    char *what = cp_asprintf("cannot list stacks of grid %s", grid);
    json_t *resp = NULL;
    if (client_request(c, "GET", path, NULL, &resp) != 0) {
        print_api_error(cli, c, what);
        resp = NULL;
    }
    cp_free(what);
    cp_free(path);
    cp_free(g);
    client_free(c);
    if (resp == NULL)
        return 1;
    json_t *list = json_is_array(resp) ? resp : json_object_get(resp, "stacks");
    if (cli->is_json) {
        output_list(list);
        json_decref(resp);
        return 0;
    }
    static const char *const hdr[] = {
        "name", "stack", "revision", "services", "state", "exposed", "labels"};
    struct table *t = table_new(7, hdr);
    size_t i;
    json_t *s;
    json_array_foreach(list, i, s)
    {
        const char *stack = cp_json_str(s, "stack");
        const char *version = cp_json_str(s, "version");
        char *sv = cp_asprintf("%s:%s", stack != NULL ? stack : "-",
                               version != NULL ? version : "-");
        char *rev = cp_asprintf("%lld", cp_json_int(s, "revision", 0));
        char *nsvc =
            cp_asprintf("%zu", json_array_size(json_object_get(s, "services")));
        char *labels = join_labels(json_object_get(s, "labels"));
        const char *expose = cp_json_str(s, "expose");
        const char *state = cp_json_str(s, "state");
        const char *row[] = {cp_json_str(s, "name"),
                             sv,
                             rev,
                             nsvc,
                             state != NULL ? state : "-",
                             expose != NULL ? expose : "-",
                             *labels != '\0' ? labels : "-"};
        table_add(t, row);
        cp_free(labels);
        cp_free(nsvc);
        cp_free(rev);
        cp_free(sv);
    }
    table_print(t, stdout);
    table_free(t);
    json_decref(resp);
    return 0;
}

static void show_field(const char *k, const json_t *v)
{
    char *s = v == NULL || json_is_null(v) ? cp_strdup("-") : output_cell(v);
    printf("  %s: %s\n", k, *s != '\0' ? s : "-");
    cp_free(s);
}

static int run_show(struct cli *cli, const struct args *a)
{
    struct client *c;
    const char *grid;
    if (begin(cli, &c, &grid) != 0)
        return 1;
    json_t *s = stack_call(cli, c, "GET", grid, a->pos[0], "", NULL, "show");
    client_free(c);
    if (s == NULL)
        return 1;
    if (cli->is_json) {
        output_json(s, stdout);
        json_decref(s);
        return 0;
    }
    const char *id = cp_json_str(s, "id");
    printf("%s:\n", id != NULL ? id : a->pos[0]);
    static const char *const fields[] = {"created_at", "updated_at", "state",
                                         "stack",      "version",    "revision",
                                         "expose",     "labels"};
    for (size_t i = 0; i < CP_ARRAY_LEN(fields); i++)
        show_field(fields[i], json_object_get(s, fields[i]));
    show_field("parent", json_object_get(json_object_get(s, "parent"), "name"));
    const json_t *children = json_object_get(s, "children");
    if (json_array_size(children) > 0) {
        printf("  children:\n");
        size_t i;
        json_t *ch;
        json_array_foreach(children, i, ch)
        {
            const char *cn = cp_json_str(ch, "name");
            printf("    - %s\n", cn != NULL ? cn : "-");
        }
    }
    printf("  services:\n");
    size_t i;
    json_t *svc;
    json_array_foreach(json_object_get(s, "services"), i, svc)
    {
        const json_t *counts = json_object_get(svc, "instance_counts");
        printf("    %s:\n", cp_json_str(svc, "name") != NULL
                                ? cp_json_str(svc, "name")
                                : "-");
        printf("      image: %s\n", cp_json_str(svc, "image") != NULL
                                        ? cp_json_str(svc, "image")
                                        : "-");
        printf("      state: %s\n", cp_json_str(svc, "state") != NULL
                                        ? cp_json_str(svc, "state")
                                        : "-");
        if (json_is_object(counts))
            printf("      instances: %lld / %lld\n",
                   cp_json_int(counts, "running", 0),
                   cp_json_int(counts, "total", 0));
        else
            printf("      instances: %lld\n", cp_json_int(svc, "instances", 0));
    }
    json_decref(s);
    return 0;
}

static int run_inspect(struct cli *cli, const struct args *a)
{
    struct client *c;
    const char *grid;
    if (begin(cli, &c, &grid) != 0)
        return 1;
    json_t *s = stack_call(cli, c, "GET", grid, a->pos[0], "", NULL, "inspect");
    client_free(c);
    if (s == NULL)
        return 1;
    int rc = 0;
    if (args_has(a, "values")) {
        const json_t *vars = json_object_get(s, "variables");
        json_t *shown = json_is_object(vars)
                            ? json_incref((json_t *)(uintptr_t)vars)
                            : json_object();
        if (cli->is_json) {
            output_json(shown, stdout);
        } else {
            char *y = stackfile_yaml(shown);
            if (y != NULL)
                fputs(y, stdout);
            else
                rc = cli_fail(cli, "cannot render the values as YAML");
            cp_free(y);
        }
        json_decref(shown);
    } else {
        const char *src = cp_json_str(s, "source");
        if (src == NULL)
            rc = cli_fail(cli, "stack %s has no stored source", a->pos[0]);
        else
            fputs(src, stdout);
        if (src != NULL && *src != '\0' && src[strlen(src) - 1] != '\n')
            fputc('\n', stdout);
    }
    json_decref(s);
    return rc;
}

/* ==== logs, events, stop, restart, remove ==== */

static int logs_or_events(struct cli *cli, const struct args *a, bool is_events)
{
    struct cp_buf q;
    cp_buf_init(&q, 64 * 1024);
    if (args_has(a, "tail")) {
        long long n;
        const char *v = args_get(a, "tail");
        if (cp_parse_int(v, 1, 10000, &n) != 0) {
            cp_buf_release(&q);
            return cli_usage(cli, "--tail must be 1-10000, not '%s'", v);
        }
        cp_buf_printf(&q, "limit=%lld", n);
    }
    if (args_has(a, "since")) {
        char *s = client_escape(args_get(a, "since"));
        cp_buf_printf(&q, "%ssince=%s", q.len > 0 ? "&" : "", s);
        cp_free(s);
    }
    struct client *c;
    const char *grid;
    int rc = 1;
    if (begin(cli, &c, &grid) == 0) {
        char *path = stack_path(grid, a->pos[0],
                                is_events ? "/event_logs" : "/container_logs");
        char *what = cp_asprintf("cannot get the %s of stack %s",
                                 is_events ? "events" : "logs", a->pos[0]);
        rc = cmd_service_logs_run(cli, c, path, q.data != NULL ? q.data : "",
                                  args_has(a, "follow"), is_events, what);
        cp_free(what);
        cp_free(path);
        client_free(c);
    }
    cp_buf_release(&q);
    return rc;
}

static int run_logs(struct cli *cli, const struct args *a)
{
    return logs_or_events(cli, a, false);
}

static int run_events(struct cli *cli, const struct args *a)
{
    return logs_or_events(cli, a, true);
}

static int post_action(struct cli *cli, const struct args *a,
                       const char *suffix, const char *verb, const char *done)
{
    struct client *c;
    const char *grid;
    if (begin(cli, &c, &grid) != 0)
        return 1;
    json_t *body = json_object();
    json_t *r = stack_call(cli, c, "POST", grid, a->pos[0], suffix, body, verb);
    json_decref(body);
    client_free(c);
    if (r == NULL)
        return 1;
    json_decref(r);
    printf("%s stack %s\n", done, a->pos[0]);
    return 0;
}

static int run_stop(struct cli *cli, const struct args *a)
{
    return post_action(cli, a, "/stop", "stop", "stopping");
}

static int run_restart(struct cli *cli, const struct args *a)
{
    return post_action(cli, a, "/restart", "restart", "restarting");
}

static int run_rm(struct cli *cli, const struct args *a)
{
    const char *name = a->pos[0];
    long long timeout;
    if (parse_timeout(cli, a, STACK_REMOVE_TIMEOUT_S, &timeout) != 0)
        return 2;
    char *question = cp_asprintf("remove stack %s and all its services?", name);
    char *what = cp_asprintf("cannot remove stack %s", name);
    int rc = confirm(cli, a, question, what);
    cp_free(question);
    cp_free(what);
    if (rc != 0)
        return rc;
    struct client *c;
    const char *grid;
    if (begin(cli, &c, &grid) != 0)
        return 1;
    json_t *r = stack_call(cli, c, "DELETE", grid, name, "", NULL, "remove");
    rc = 1;
    if (r == NULL)
        goto out;
    /* The removal job: a refusal in the master ends the wait at once. */
    char *job = cp_json_str(r, "id") != NULL
                    ? cp_asprintf("/deploys/%s", cp_json_str(r, "id"))
                    : NULL;
    json_decref(r);
    if (args_has(a, "no-wait")) {
        printf("removing stack %s\n", name);
        rc = 0;
        cp_free(job);
        goto out;
    }
    /* Removal runs in the master: wait until the stack is gone. */
    char *path = stack_path(grid, name, "");
    char *jobpath = job != NULL ? stack_path(grid, name, job) : NULL;
    int64_t deadline = cp_mono_ms() + timeout * 1000;
    struct sigaction sa = {0}, old;
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    is_interrupted = 0;
    sigaction(SIGINT, &sa, &old);
    for (;;) {
        json_t *s = NULL;
        int grc = client_request(c, "GET", path, NULL, &s);
        json_decref(s);
        if (grc == CP_ENOTFOUND) {
            printf("removed stack %s\n", name);
            rc = 0;
            break;
        }
        if (grc != 0) {
            char *w = cp_asprintf("cannot check the removal of stack %s", name);
            print_api_error(cli, c, w);
            cp_free(w);
            break;
        }
        json_t *jr = NULL;
        if (job != NULL &&
            client_request(c, "GET", jobpath, NULL, &jr) == 0) {
            const char *st = cp_json_str(jr, "state");
            if (st != NULL && strcmp(st, "error") == 0) {
                const char *why = cp_json_str(jr, "reason");
                cli_fail(cli, "cannot remove stack %s: %s", name,
                         why ? why : "the master gave up");
                json_decref(jr);
                break;
            }
        }
        json_decref(jr);
        if (cp_mono_ms() >= deadline) {
            cli_fail(cli,
                     "stack %s is still there after %lld s; see kontena "
                     "stack show %s",
                     name, timeout, name);
            break;
        }
        if (!nap(500)) {
            cli_fail(cli,
                     "stopped waiting for the removal of stack %s: "
                     "interrupted; it goes on in the master",
                     name);
            break;
        }
    }
    sigaction(SIGINT, &old, NULL);
    cp_free(path);
    cp_free(jobpath);
    cp_free(job);
out:
    client_free(c);
    return rc;
}

/* ==== labels ==== */

static int run_label_ls(struct cli *cli, const struct args *a)
{
    struct client *c;
    const char *grid;
    if (begin(cli, &c, &grid) != 0)
        return 1;
    json_t *s = stack_call(cli, c, "GET", grid, a->pos[0], "", NULL, "show");
    client_free(c);
    if (s == NULL)
        return 1;
    json_t *labels = json_object_get(s, "labels");
    if (cli->is_json) {
        output_list(labels);
    } else {
        size_t i;
        json_t *v;
        json_array_foreach(labels, i, v)
        {
            char *t = output_cell(v);
            printf("%s\n", t);
            cp_free(t);
        }
    }
    json_decref(s);
    return 0;
}

static int label_change(struct cli *cli, const struct args *a, bool is_add)
{
    const char *name = a->pos[0];
    const char *const *want = a->pos + 1;
    size_t nwant = a->npos - 1;
    for (size_t i = 0; i < nwant; i++)
        if (*want[i] == '\0' || strlen(want[i]) > 256)
            return cli_usage(cli, "invalid label '%s'", want[i]);
    struct client *c;
    const char *grid;
    if (begin(cli, &c, &grid) != 0)
        return 1;
    const char *verb = is_add ? "add labels to" : "remove labels from";
    json_t *labels = NULL, *body = NULL, *r = NULL;
    json_t *s = stack_call(cli, c, "GET", grid, name, "", NULL, verb);
    int rc = 1;
    if (s == NULL)
        goto out;
    const json_t *old = json_object_get(s, "labels");
    if (is_add) {
        labels = cmd_node_labels_add(old, want, nwant);
    } else {
        const char *missing = NULL;
        labels = cmd_node_labels_remove(old, want, nwant, &missing);
        if (labels == NULL) {
            rc = cli_fail(cli,
                          "cannot remove label %s: stack %s has no such "
                          "label",
                          missing, name);
            goto out;
        }
    }
    body = json_pack("{s:O}", "labels", labels);
    r = stack_call(cli, c, "PATCH", grid, name, "", body, verb);
    if (r == NULL)
        goto out;
    for (size_t i = 0; i < nwant; i++)
        printf("%s label %s %s stack %s\n", is_add ? "added" : "removed",
               want[i], is_add ? "to" : "from", name);
    rc = 0;
out:
    json_decref(r);
    json_decref(body);
    json_decref(labels);
    json_decref(s);
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

#define STACK_OPT_VALUES                                                       \
    {"var", 'v', ARGS_MULTI, "NAME=VALUE", "set a variable"},                  \
    {                                                                          \
        "values-from", 0, ARGS_VALUE, "FILE",                                  \
            "read variable values from a YAML file"                            \
    }

#define STACK_OPT_TIMEOUT                                                      \
    {                                                                          \
        "timeout", 0, ARGS_VALUE, "SECONDS",                                   \
            "how long to wait for the deploy (default 600)"                    \
    }

static const struct args_opt install_opts[] = {
    {"name", 'n', ARGS_VALUE, "NAME", "stack name (default: from the file)"},
    {"no-deploy", 0, ARGS_FLAG, NULL, "create the stack without deploying"},
    STACK_OPT_VALUES,
    STACK_OPT_TIMEOUT,
    CLI_OPT_OUTPUT,
    {0}};
static const struct args_opt upgrade_opts[] = {
    {"no-deploy", 0, ARGS_FLAG, NULL, "upgrade without deploying"},
    {"force", 0, ARGS_FLAG, NULL,
     "replace a stack installed from another "
     "stack file"},
    STACK_OPT_VALUES,
    STACK_OPT_TIMEOUT,
    CLI_OPT_OUTPUT,
    {0}};
static const struct args_opt validate_opts[] = {
    {"name", 'n', ARGS_VALUE, "NAME", "stack name (default: from the file)"},
    STACK_OPT_VALUES,
    CLI_OPT_OUTPUT,
    {0}};
static const struct args_opt deploy_opts[] = {
    {"no-wait", 0, ARGS_FLAG, NULL, "do not wait for the deploy"},
    STACK_OPT_TIMEOUT,
    CLI_OPT_OUTPUT,
    {0}};
static const struct args_opt show_opts[] = {CLI_OPT_OUTPUT, {0}};
static const struct args_opt inspect_opts[] = {
    {"values", 0, ARGS_FLAG, NULL, "print the variable values, not the file"},
    CLI_OPT_OUTPUT,
    {0}};
static const struct args_opt no_opts[] = {{0}};
static const struct args_opt rm_opts[] = {
    {"force", 'f', ARGS_FLAG, NULL, "do not ask for confirmation"},
    {"no-wait", 0, ARGS_FLAG, NULL, "do not wait for the removal"},
    {"timeout", 0, ARGS_VALUE, "SECONDS",
     "how long to wait for the removal (default 300)"},
    {0}};
static const struct args_opt logs_opts[] = {
    {"follow", 'f', ARGS_FLAG, NULL, "keep printing new lines"},
    {"tail", 't', ARGS_VALUE, "N", "how many lines to show first"},
    {"since", 0, ARGS_VALUE, "TIME", "only lines after this time"},
    {0}};

static const struct cli_cmd cmd_stack_label[] = {
    {"list", "ls", "STACK [options]", "list the labels of a stack", show_opts,
     1, 1, run_label_ls, NULL},
    {"add", NULL, "STACK LABEL...", "add labels to a stack", no_opts, 2, -1,
     run_label_add, NULL},
    {"remove", "rm", "STACK LABEL...", "remove labels from a stack", no_opts, 2,
     -1, run_label_rm, NULL},
    {0}};

const struct cli_cmd cmd_stack[] = {
    {"install", NULL, "[FILE] [options]",
     "install a stack from a stack file (default kontena.yml) and deploy it",
     install_opts, 0, 1, run_install, NULL},
    {"upgrade", NULL, "STACK [FILE] [options]",
     "upgrade a stack from a stack file (or its stored one) and deploy it",
     upgrade_opts, 1, 2, run_upgrade, NULL},
    {"deploy", NULL, "STACK [options]", "deploy a stack and wait for it",
     deploy_opts, 1, 1, run_deploy, NULL},
    {"list", "ls", "[options]", "list the stacks of the grid", show_opts, 0, 0,
     run_ls, NULL},
    {"show", NULL, "STACK [options]", "show a stack and its services",
     show_opts, 1, 1, run_show, NULL},
    {"inspect", NULL, "STACK [options]",
     "print the stored stack file (or its values)", inspect_opts, 1, 1,
     run_inspect, NULL},
    {"logs", NULL, "STACK [options]", "show the logs of a stack's services",
     logs_opts, 1, 1, run_logs, NULL},
    {"events", NULL, "STACK [options]", "show the events of a stack", logs_opts,
     1, 1, run_events, NULL},
    {"stop", NULL, "STACK", "stop the services of a stack", no_opts, 1, 1,
     run_stop, NULL},
    {"restart", NULL, "STACK", "restart the services of a stack", no_opts, 1, 1,
     run_restart, NULL},
    {"remove", "rm", "STACK [options]", "remove a stack and its services",
     rm_opts, 1, 1, run_rm, NULL},
    {"validate", NULL, "[FILE] [options]",
     "check a stack file and print it resolved", validate_opts, 0, 1,
     run_validate, NULL},
    {"label", NULL, "<command>", "manage the labels of a stack", NULL, 0, 0,
     NULL, cmd_stack_label},
    {0}};
