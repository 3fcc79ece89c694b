/* Environment and flag parsing for kontena-master. Every setting has one
 * row in the table below: its variable, its flag and how to parse it.
 * SPDX-License-Identifier: Apache-2.0 */
#include "config.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/util.h"

#include <stdio.h>
#include <string.h>

const char master_config_usage[] =
    "usage: kontena-master [serve] [options]\n"
    "       kontena-master reset-admin-code [--code CODE] [--data-dir DIR]\n"
    "       kontena-master vault-rekey [--data-dir DIR] (VAULT_KEY,\n"
    "                      VAULT_KEY_PREVIOUS: re-seal secrets, see "
    "docs/vault.md)\n"
    "       kontena-master --help | --version\n"
    "\n"
    "Every option mirrors an environment variable; flags win.\n"
    "  --port N             PORT                 listen port (9292)\n"
    "  --bind ADDR          KONTENA_BIND         listen address (0.0.0.0)\n"
    "  --data-dir DIR       KONTENA_DATA_DIR     embedded store dir (./data)\n"
    "  --database-url URL   KONTENA_DATABASE_URL postgres://... store\n"
    "  --mongodb-uri URI    MONGODB_URI          mongodb://... store\n"
    "  --code CODE          INITIAL_ADMIN_CODE   initial admin code\n"
    "  --vault-key KEY      VAULT_KEY            vault master key\n"
    "  --vault-key-previous KEY VAULT_KEY_PREVIOUS the key being rotated "
    "out\n"
    "  --vault-iv IV        VAULT_IV             legacy vault IV\n"
    "  --master-url URL     KONTENA_MASTER_URL   public URL of the master\n"
    "  --server-name NAME   SERVER_NAME          name shown to the CLI\n"
    "  --log-level LEVEL    LOG_LEVEL            debug|info|warn|error\n"
    "  --trace LIST         KONTENA_TRACE        http,ws,rpc,store,...\n"
    "  --rack-env ENV       RACK_ENV             accepted, logged\n"
    "  --websocket-timeout S WEBSOCKET_TIMEOUT   agent pong timeout (5)\n"
    "  --clock-skew S       KONTENA_CLOCK_SKEW   agent clock skew (1)\n"
    "  --ping-interval S    KONTENA_PING_INTERVAL agent ping interval (30)\n"
    "  --login-rate-limit N KONTENA_LOGIN_RATE_LIMIT  per window (60)\n"
    "  --login-rate-window S KONTENA_LOGIN_RATE_WINDOW seconds (60)\n"
    "  --rate-limit-loopback KONTENA_RATE_LIMIT_LOOPBACK=1 (or DEBUG_RA)\n"
    "  --max-body BYTES     KONTENA_MAX_BODY     request body limit (1 MiB)\n"
    "  --max-header BYTES   KONTENA_MAX_HEADER   header block limit (16 KiB)\n"
    "  --threads N          KONTENA_THREADS      store worker threads (4)\n"
    "  --auth-cache-ms MS   KONTENA_AUTH_CACHE_MS token cache TTL (1000)\n"
    "  --inline-reads       KONTENA_INLINE_READS  cheap reads on the loop\n"
    "                       with the embedded store (0: on the worker pool)\n"
    "  --trusted-proxies L  KONTENA_TRUSTED_PROXIES load balancers (IPs,\n"
    "                       CIDRs) whose X-Forwarded-For/-Proto count\n"
    "  --audit-log-max N    KONTENA_AUDIT_LOG_MAX audit entries kept (10000)\n";

enum kind { K_STR, K_INT, K_BOOL, K_LEVEL, K_TRACE, K_SIZE };

struct setting {
    const char *env;
    const char *flag;
    enum kind kind;
    size_t offset;
    long long min, max;
};

#define OFF(f) offsetof(struct master_config, f)

static const struct setting settings[] = {
    {"PORT", "--port", K_INT, OFF(port), 1, 65535},
    {"KONTENA_BIND", "--bind", K_STR, OFF(bind), 0, 0},
    {"KONTENA_DATA_DIR", "--data-dir", K_STR, OFF(data_dir), 0, 0},
    {"INITIAL_ADMIN_CODE", "--code", K_STR, OFF(initial_admin_code), 0, 0},
    {"VAULT_KEY", "--vault-key", K_STR, OFF(vault_key), 0, 0},
    {"VAULT_KEY_PREVIOUS", "--vault-key-previous", K_STR,
     OFF(vault_key_previous), 0, 0},
    {"VAULT_IV", "--vault-iv", K_STR, OFF(vault_iv), 0, 0},
    {"KONTENA_MASTER_URL", "--master-url", K_STR, OFF(master_url), 0, 0},
    {"SERVER_NAME", "--server-name", K_STR, OFF(server_name), 0, 0},
    {"RACK_ENV", "--rack-env", K_STR, OFF(rack_env), 0, 0},
    {"LOG_LEVEL", "--log-level", K_LEVEL, OFF(log_level), 0, 0},
    {"KONTENA_TRACE", "--trace", K_TRACE, OFF(trace), 0, 0},
    {"WEBSOCKET_TIMEOUT", "--websocket-timeout", K_INT,
     OFF(websocket_timeout), 1, 3600},
    {"KONTENA_CLOCK_SKEW", "--clock-skew", K_INT, OFF(clock_skew), 0, 3600},
    {"KONTENA_PING_INTERVAL", "--ping-interval", K_INT, OFF(ping_interval), 1,
     3600},
    {"KONTENA_LOGIN_RATE_LIMIT", "--login-rate-limit", K_INT,
     OFF(login_rate_limit), 1, 1000000},
    {"KONTENA_LOGIN_RATE_WINDOW", "--login-rate-window", K_INT,
     OFF(login_rate_window), 1, 86400},
    {"KONTENA_RATE_LIMIT_LOOPBACK", "--rate-limit-loopback", K_BOOL,
     OFF(rate_limit_loopback), 0, 0},
    {"DEBUG_RA", NULL, K_BOOL, OFF(rate_limit_loopback), 0, 0},
    {"KONTENA_MAX_BODY", "--max-body", K_SIZE, OFF(max_body), 1024,
     1LL << 30},
    {"KONTENA_MAX_HEADER", "--max-header", K_SIZE, OFF(max_header), 1024,
     256 * 1024},
    {"KONTENA_THREADS", "--threads", K_INT, OFF(threads), 1, 128},
    {"KONTENA_AUTH_CACHE_MS", "--auth-cache-ms", K_INT, OFF(auth_cache_ms),
     0, 60000},
    {"KONTENA_TRUSTED_PROXIES", "--trusted-proxies", K_STR,
     OFF(trusted_proxies), 0, 0},
    {"KONTENA_INLINE_READS", "--inline-reads", K_BOOL, OFF(inline_reads), 0,
     0},
    {"KONTENA_AUDIT_LOG_MAX", "--audit-log-max", K_INT, OFF(audit_log_max), 1,
     100000000},
};

/* Store selectors are not plain settings: they pick a backend. */
static const char *const store_envs[] = {"KONTENA_DATABASE_URL",
                                         "MONGODB_URI"};

static const char *env_get(char *const *envp, const char *name)
{
    size_t n = strlen(name);
    for (char *const *e = envp; e != NULL && *e != NULL; e++) {
        if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
            return *e + n + 1;
    }
    return NULL;
}

static bool is_truthy(const char *v)
{
    return strcmp(v, "1") == 0 || strcmp(v, "true") == 0 ||
           strcmp(v, "yes") == 0 || strcmp(v, "on") == 0;
}

static int apply(struct master_config *c, const struct setting *s,
                 const char *name, const char *v, char *err, size_t errlen)
{
    char *base = (char *)c;
    long long n;
    switch (s->kind) {
    case K_STR: {
        char **slot = (char **)(void *)(base + s->offset);
        cp_free(*slot);
        *slot = cp_strdup(v);
        return 0;
    }
    case K_INT:
    case K_SIZE:
        if (cp_parse_int(v, s->min, s->max, &n) != 0) {
            snprintf(err, errlen,
                     "%s must be an integer from %lld to %lld, not '%s'",
                     name, s->min, s->max, v);
            return CP_EINVAL;
        }
        if (s->kind == K_INT)
            *(int *)(void *)(base + s->offset) = (int)n;
        else
            *(size_t *)(void *)(base + s->offset) = (size_t)n;
        return 0;
    case K_BOOL:
        *(bool *)(void *)(base + s->offset) = is_truthy(v);
        return 0;
    case K_LEVEL:
        if (cp_log_parse_level(
                v, (enum cp_log_level *)(void *)(base + s->offset)) != 0) {
            snprintf(err, errlen,
                     "%s must be debug, info, warn or error, not '%s'",
                     name, v);
            return CP_EINVAL;
        }
        return 0;
    case K_TRACE: {
        const char *bad = NULL;
        if (cp_log_parse_trace(v, (unsigned *)(void *)(base + s->offset),
                               &bad) != 0) {
            snprintf(err, errlen,
                     "%s: unknown trace subsystem in '%s' (known: http, ws, "
                     "rpc, store, sched, engine, all)",
                     name, v);
            return CP_EINVAL;
        }
        return 0;
    }
    }
    return CP_EINVAL;
}

static void set_defaults(struct master_config *c)
{
    memset(c, 0, sizeof(*c));
    c->port = 9292;
    c->bind = cp_strdup("0.0.0.0");
    c->data_dir = cp_strdup("./data");
    c->log_level = CP_LOG_INFO;
    c->websocket_timeout = 5;
    c->clock_skew = 1;
    c->ping_interval = 30;
    c->login_rate_limit = 60;
    c->login_rate_window = 60;
    c->max_body = 1024 * 1024;
    c->max_header = 16 * 1024;
    c->threads = 4;
    c->auth_cache_ms = 1000;
    c->inline_reads = false;
    c->audit_log_max = 10000;
}

int master_config_parse(struct master_config *c, char *const *envp,
                        int argc, char *const *argv, char *err,
                        size_t errlen)
{
    set_defaults(c);
    char *db_url = NULL, *mongo = NULL;
    int rc = CP_EINVAL;

    for (size_t i = 0; i < CP_ARRAY_LEN(settings); i++) {
        const char *v = env_get(envp, settings[i].env);
        if (v != NULL && *v != '\0' &&
            apply(c, &settings[i], settings[i].env, v, err, errlen) != 0)
            goto out;
    }
    const char *v = env_get(envp, store_envs[0]);
    if (v != NULL && *v != '\0')
        db_url = cp_strdup(v);
    v = env_get(envp, store_envs[1]);
    if (v != NULL && *v != '\0')
        mongo = cp_strdup(v);

    int i = 1;
    if (i < argc && argv[i][0] != '-') {
        if (strcmp(argv[i], "serve") == 0)
            c->command = MASTER_CMD_SERVE;
        else if (strcmp(argv[i], "reset-admin-code") == 0)
            c->command = MASTER_CMD_RESET_ADMIN_CODE;
        else if (strcmp(argv[i], "vault-rekey") == 0)
            c->command = MASTER_CMD_VAULT_REKEY;
        else if (strcmp(argv[i], "help") == 0)
            c->command = MASTER_CMD_HELP;
        else if (strcmp(argv[i], "version") == 0)
            c->command = MASTER_CMD_VERSION;
        else {
            snprintf(err, errlen, "unknown command '%s'", argv[i]);
            goto out;
        }
        i++;
    }
    for (; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            c->command = MASTER_CMD_HELP;
            continue;
        }
        if (strcmp(arg, "--version") == 0) {
            c->command = MASTER_CMD_VERSION;
            continue;
        }
        /* --flag=value and --flag value are both accepted. */
        const char *eq = strchr(arg, '=');
        size_t flen = eq ? (size_t)(eq - arg) : strlen(arg);
        const char *val = eq ? eq + 1 : NULL;
        const struct setting *s = NULL;
        for (size_t k = 0; k < CP_ARRAY_LEN(settings); k++) {
            if (settings[k].flag != NULL &&
                strlen(settings[k].flag) == flen &&
                strncmp(settings[k].flag, arg, flen) == 0)
                s = &settings[k];
        }
        bool is_db = flen == 14 && strncmp(arg, "--database-url", 14) == 0;
        bool is_mongo = flen == 13 && strncmp(arg, "--mongodb-uri", 13) == 0;
        if (s == NULL && !is_db && !is_mongo) {
            snprintf(err, errlen, "unknown option '%.*s' (see --help)",
                     (int)flen, arg);
            goto out;
        }
        if (s != NULL && s->kind == K_BOOL && val == NULL) {
            *(bool *)(void *)((char *)c + s->offset) = true;
            continue;
        }
        if (val == NULL) {
            if (i + 1 >= argc) {
                snprintf(err, errlen, "option '%s' needs a value", arg);
                goto out;
            }
            val = argv[++i];
        }
        if (is_db) {
            cp_free(db_url);
            db_url = cp_strdup(val);
        } else if (is_mongo) {
            cp_free(mongo);
            mongo = cp_strdup(val);
        } else if (apply(c, s, s->flag, val, err, errlen) != 0) {
            goto out;
        }
    }

    if (db_url != NULL && mongo != NULL) {
        snprintf(err, errlen,
                 "KONTENA_DATABASE_URL and MONGODB_URI are both set; "
                 "choose one store");
        goto out;
    }
    if (db_url != NULL) {
        if (strncmp(db_url, "postgres://", 11) != 0 &&
            strncmp(db_url, "postgresql://", 13) != 0) {
            snprintf(err, errlen,
                     "KONTENA_DATABASE_URL must start with postgres:// or "
                     "postgresql://");
            goto out;
        }
        c->store_url = db_url;
        db_url = NULL;
    } else if (mongo != NULL) {
        if (strncmp(mongo, "mongodb://", 10) != 0 &&
            strncmp(mongo, "mongodb+srv://", 14) != 0) {
            snprintf(err, errlen, "MONGODB_URI must start with mongodb://");
            goto out;
        }
        c->store_url = mongo;
        mongo = NULL;
    } else {
        c->store_url = cp_asprintf("sqlite:%s", c->data_dir);
    }
    if (c->initial_admin_code != NULL &&
        (strlen(c->initial_admin_code) < 6 ||
         strlen(c->initial_admin_code) > 256)) {
        snprintf(err, errlen,
                 "INITIAL_ADMIN_CODE must be 6 to 256 characters long");
        goto out;
    }
    if (proxy_list_parse(c->trusted_proxies, &c->proxies, err, errlen) != 0)
        goto out;
    rc = 0;
out:
    cp_free(db_url);
    cp_free(mongo);
    if (rc != 0)
        master_config_release(c);
    return rc;
}

void master_config_release(struct master_config *c)
{
    cp_free(c->bind);
    cp_free(c->data_dir);
    cp_free(c->store_url);
    cp_free(c->initial_admin_code);
    cp_free(c->vault_key);
    cp_free(c->vault_key_previous);
    cp_free(c->vault_iv);
    cp_free(c->master_url);
    cp_free(c->server_name);
    cp_free(c->rack_env);
    cp_free(c->trusted_proxies);
    proxy_list_release(&c->proxies);
    memset(c, 0, sizeof(*c));
}
