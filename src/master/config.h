/* kontena-master settings: the environment of spec 1.1 first, then flags
 * that mirror it. A missing or bad setting is a one-line error naming the
 * variable, before anything listens.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef CP_MASTER_CONFIG_H
#define CP_MASTER_CONFIG_H

#include "proxy.h"
#include <stdbool.h>
#include <stddef.h>

#include "../common/log.h"

enum master_command {
    MASTER_CMD_SERVE = 0,
    MASTER_CMD_HELP,
    MASTER_CMD_VERSION,
    MASTER_CMD_RESET_ADMIN_CODE, /* mint a new initial admin code */
    MASTER_CMD_VAULT_REKEY,      /* re-seal the vault under VAULT_KEY */
};

struct master_config {
    enum master_command command;
    char *bind;     /* KONTENA_BIND, default 0.0.0.0 */
    int port;       /* PORT, default 9292 */
    char *data_dir; /* KONTENA_DATA_DIR, default ./data */
    char *store_url; /* derived: sqlite:<dir>, postgres://, mongodb:// */
    char *initial_admin_code; /* INITIAL_ADMIN_CODE (or --code) */
    char *vault_key;          /* VAULT_KEY */
    char *vault_key_previous; /* VAULT_KEY_PREVIOUS (key rotation) */
    char *vault_iv;           /* VAULT_IV (legacy, accepted) */
    char *master_url;         /* KONTENA_MASTER_URL */
    char *server_name;        /* SERVER_NAME */
    char *rack_env;           /* RACK_ENV, logged only */
    enum cp_log_level log_level; /* LOG_LEVEL */
    unsigned trace;              /* KONTENA_TRACE / --trace */
    int websocket_timeout;       /* WEBSOCKET_TIMEOUT, seconds */
    int clock_skew;              /* KONTENA_CLOCK_SKEW, seconds */
    int ping_interval;           /* KONTENA_PING_INTERVAL, seconds */
    int login_rate_limit;        /* KONTENA_LOGIN_RATE_LIMIT per window */
    int login_rate_window;       /* KONTENA_LOGIN_RATE_WINDOW, seconds */
    bool rate_limit_loopback;    /* DEBUG_RA / KONTENA_RATE_LIMIT_LOOPBACK */
    size_t max_body;             /* KONTENA_MAX_BODY bytes */
    size_t max_header;           /* KONTENA_MAX_HEADER bytes */
    int threads;                 /* KONTENA_THREADS: store worker threads */
    int auth_cache_ms;           /* KONTENA_AUTH_CACHE_MS, 0 = off */
    bool inline_reads;           /* KONTENA_INLINE_READS */
    char *trusted_proxies;       /* KONTENA_TRUSTED_PROXIES, as given */
    struct proxy_list proxies;   /* ... parsed */
    int audit_log_max;           /* KONTENA_AUDIT_LOG_MAX: entries kept */
};

/* Fills c from envp (NULL-terminated "K=V" strings) and argv. Returns 0,
 * or CP_EINVAL with a one-line reason in err. argv[0] is skipped. */
int master_config_parse(struct master_config *c, char *const *envp,
                        int argc, char *const *argv, char *err,
                        size_t errlen);
void master_config_release(struct master_config *c);

/* The --help text. */
extern const char master_config_usage[];

#endif
