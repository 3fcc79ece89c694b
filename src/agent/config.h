/* kontena-agent configuration: every setting comes from the environment
 * (spec appendix B); the only flags are --help and --version. Parsing is
 * pure (it reads the env array it is given), so the tests drive it with
 * fixture arrays.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef CP_AGENT_CONFIG_H
#define CP_AGENT_CONFIG_H

#include "../common/log.h"

#include <stdbool.h>
#include <stddef.h>

enum agent_cmd {
    AGENT_CMD_RUN,
    AGENT_CMD_HELP,
    AGENT_CMD_VERSION,
};

/* The master's address, split for lws. host has no IPv6 brackets. */
struct agent_uri {
    bool is_tls;       /* wss:// (or https:// rewritten) */
    char *host;        /* "master.example.com", "::1" */
    int port;          /* explicit or 80/443 */
    char *path;        /* "/" when absent; keeps the query string */
    char *host_header; /* "host" or "host:port" when not the default */
    char *url;         /* normalised "ws://host:port/path" for logs */
};

/* Every field is owned and released by agent_config_release(). Strings
 * that were not set are NULL. */
struct agent_config {
    enum agent_cmd command;
    struct agent_uri uri;
    char *grid_token; /* KONTENA_TOKEN */
    char *node_token; /* KONTENA_NODE_TOKEN; wins when both are set */
    char *node_id;    /* KONTENA_NODE_ID, else the engine's ID */
    char *node_name;  /* KONTENA_NODE_NAME, else engine Name/hostname */
    char **labels;    /* KONTENA_NODE_LABELS split on spaces */
    size_t nlabels;
    bool has_labels; /* KONTENA_NODE_LABELS was set (even empty) */
    char *public_ip;
    char *private_ip;
    bool ssl_verify;             /* KONTENA_SSL_VERIFY, default true */
    int ws_timeout_s;            /* WEBSOCKET_TIMEOUT, pong timeout (5) */
    int ping_interval_s;         /* KONTENA_PING_INTERVAL (30) */
    int update_interval_s;       /* KONTENA_NODE_UPDATE_INTERVAL (60) */
    int stats_interval_s;        /* KONTENA_STATS_INTERVAL (60) */
    int pods_interval_s;         /* KONTENA_PODS_INTERVAL (30) */
    enum cp_log_level log_level; /* LOG_LEVEL (info) */
    unsigned trace;              /* KONTENA_TRACE */
    char *docker_socket;         /* DOCKER_HOST unix:///path, the path part */
};

extern const char agent_config_usage[];

/* Fills cfg from env (a NULL-terminated "K=V" array, like environ) and
 * argv. Returns 0, or CP_EINVAL with a one-line message naming the
 * variable in err. On error cfg is released. */
int agent_config_parse(struct agent_config *cfg, char *const *env, int argc,
                       char **argv, char *err, size_t errlen);
/* Frees every field; cfg may be parsed again afterwards. */
void agent_config_release(struct agent_config *cfg);

/* Parses a master URI: ws://, wss://, http:// or https:// (the last two
 * rewritten to ws/wss), with optional port and path. Returns 0 or
 * CP_EINVAL with a reason in err. On error out is left empty. */
int agent_uri_parse(const char *text, struct agent_uri *out, char *err,
                    size_t errlen);
void agent_uri_release(struct agent_uri *u);

/* Splits a space-separated label list into *out (owned strings, empty
 * items skipped); returns the count. Caller frees with
 * agent_labels_free(). */
size_t agent_labels_split(const char *text, char ***out);
void agent_labels_free(char **labels, size_t n);
/* Joins labels with commas for the Kontena-Node-Labels header (caller
 * frees; "" for none). */
char *agent_labels_join(char *const *labels, size_t n);

#endif
