/* Environment parsing for kontena-agent. Each bad or missing setting
 * yields one line naming its variable; main prints it and exits 2.
 * SPDX-License-Identifier: Apache-2.0 */
#include "config.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/proto.h"
#include "../common/util.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

const char agent_config_usage[] =
    "usage: kontena-agent [--help | --version]\n"
    "\n"
    "Connects this node's container engine to a Kontena master. Settings\n"
    "come from the environment:\n"
    "  KONTENA_URI           master URI: ws://, wss://, http://, https://\n"
    "  KONTENA_TOKEN         grid token\n"
    "  KONTENA_NODE_TOKEN    node token (instead of the grid token)\n"
    "  KONTENA_NODE_ID       node id (default: the engine's ID)\n"
    "  KONTENA_NODE_NAME     node name (default: engine name / hostname)\n"
    "  KONTENA_NODE_LABELS   space-separated labels\n"
    "  KONTENA_PUBLIC_IP     public address (default: detected)\n"
    "  KONTENA_PRIVATE_IP    private address (default: detected)\n"
    "  KONTENA_SSL_VERIFY    verify the master's certificate (true)\n"
    "  WEBSOCKET_TIMEOUT     pong timeout in seconds (5)\n"
    "  KONTENA_PING_INTERVAL ping interval in seconds (30)\n"
    "  KONTENA_NODE_UPDATE_INTERVAL  /nodes/update interval (60)\n"
    "  KONTENA_STATS_INTERVAL        /nodes/stats interval (60)\n"
    "  KONTENA_PODS_INTERVAL         service pod pull interval (30)\n"
    "  LOG_LEVEL             debug|info|warn|error (info)\n"
    "  KONTENA_TRACE         traces: ws,rpc,engine\n"
    "  DOCKER_HOST           unix:///path (unix:///var/run/docker.sock)\n";

static void fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Value of name in env, or NULL. An empty value counts as unset. */
static const char *env_get(char *const *env, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; env != NULL && env[i] != NULL; i++) {
        if (strncmp(env[i], name, n) == 0 && env[i][n] == '=')
            return env[i][n + 1] != '\0' ? env[i] + n + 1 : NULL;
    }
    return NULL;
}

static bool env_is_set(char *const *env, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; env != NULL && env[i] != NULL; i++) {
        if (strncmp(env[i], name, n) == 0 && env[i][n] == '=')
            return true;
    }
    return false;
}

static char *dup_or_null(const char *s)
{
    return s != NULL ? cp_strdup(s) : NULL;
}

static int parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    for (size_t i = 0; i < CP_ARRAY_LEN(yes); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return CP_EINVAL;
}

static int int_setting(char *const *env, const char *name, int def, int min,
                       int max, int *out, char *err, size_t errlen)
{
    const char *v = env_get(env, name);
    long long n = def;
    if (v != NULL && cp_parse_int(v, min, max, &n) != 0) {
        fail(err, errlen, "%s: expected an integer in %d..%d, got \"%s\"", name,
             min, max, v);
        return CP_EINVAL;
    }
    *out = (int)n;
    return 0;
}

/* ==== URI ==== */

void agent_uri_release(struct agent_uri *u)
{
    cp_free(u->host);
    cp_free(u->path);
    cp_free(u->host_header);
    cp_free(u->url);
    memset(u, 0, sizeof(*u));
}

int agent_uri_parse(const char *text, struct agent_uri *out, char *err,
                    size_t errlen)
{
    static const struct {
        const char *prefix;
        bool is_tls;
    } schemes[] = {
        {"ws://", false},
        {"wss://", true},
        {"http://", false},
        {"https://", true},
    };
    memset(out, 0, sizeof(*out));
    const char *rest = NULL;
    for (size_t i = 0; i < CP_ARRAY_LEN(schemes); i++) {
        size_t n = strlen(schemes[i].prefix);
        if (strncasecmp(text, schemes[i].prefix, n) == 0) {
            rest = text + n;
            out->is_tls = schemes[i].is_tls;
            break;
        }
    }
    if (rest == NULL) {
        fail(err, errlen, "scheme must be ws, wss, http or https");
        return CP_EINVAL;
    }
    /* Authority ends at the first '/', '?' or '#'. */
    size_t alen = strcspn(rest, "/?#");
    const char *auth = rest;
    const char *at = memchr(auth, '@', alen);
    if (at != NULL) {
        alen -= (size_t)(at + 1 - auth);
        auth = at + 1;
    }
    const char *host = auth;
    size_t hlen;
    const char *port_text = NULL;
    size_t plen = 0;
    if (alen > 0 && auth[0] == '[') {
        const char *close = memchr(auth, ']', alen);
        if (close == NULL) {
            fail(err, errlen, "unterminated IPv6 address");
            return CP_EINVAL;
        }
        host = auth + 1;
        hlen = (size_t)(close - host);
        const char *after = close + 1;
        size_t left = alen - (size_t)(after - auth);
        if (left > 0) {
            if (after[0] != ':') {
                fail(err, errlen, "junk after IPv6 address");
                return CP_EINVAL;
            }
            port_text = after + 1;
            plen = left - 1;
        }
    } else {
        const char *colon = memchr(auth, ':', alen);
        hlen = colon != NULL ? (size_t)(colon - auth) : alen;
        if (colon != NULL) {
            port_text = colon + 1;
            plen = alen - hlen - 1;
        }
    }
    if (hlen == 0) {
        fail(err, errlen, "missing host");
        return CP_EINVAL;
    }
    for (size_t i = 0; i < hlen; i++) {
        unsigned char c = (unsigned char)host[i];
        if (!isalnum(c) && c != '.' && c != '-' && c != '_' && c != ':') {
            fail(err, errlen, "bad character in host");
            return CP_EINVAL;
        }
    }
    long long port = out->is_tls ? 443 : 80;
    bool is_default_port = true;
    if (port_text != NULL) {
        char buf[8];
        if (plen == 0 || plen >= sizeof(buf)) {
            fail(err, errlen, "bad port");
            return CP_EINVAL;
        }
        memcpy(buf, port_text, plen);
        buf[plen] = '\0';
        if (cp_parse_int(buf, 1, 65535, &port) != 0) {
            fail(err, errlen, "bad port \"%s\"", buf);
            return CP_EINVAL;
        }
        is_default_port = port == (out->is_tls ? 443 : 80);
    }
    out->host = cp_strndup(host, hlen);
    out->port = (int)port;
    const char *path = rest + strcspn(rest, "/?#");
    size_t path_len = strcspn(path, "#");
    if (path_len == 0)
        out->path = cp_strdup("/");
    else if (path[0] == '?')
        out->path = cp_asprintf("/%.*s", (int)path_len, path);
    else
        out->path = cp_strndup(path, path_len);
    bool is_v6 = memchr(out->host, ':', hlen) != NULL;
    const char *lb = is_v6 ? "[" : "", *rb = is_v6 ? "]" : "";
    if (is_default_port)
        out->host_header = cp_asprintf("%s%s%s", lb, out->host, rb);
    else
        out->host_header =
            cp_asprintf("%s%s%s:%d", lb, out->host, rb, out->port);
    out->url = cp_asprintf("%s://%s%s%s:%d%s", out->is_tls ? "wss" : "ws", lb,
                           out->host, rb, out->port, out->path);
    return 0;
}

/* ==== Labels ==== */

size_t agent_labels_split(const char *text, char ***out)
{
    size_t n = 0, cap = 0;
    char **v = NULL;
    const char *p = text != NULL ? text : "";
    for (;;) {
        p += strspn(p, " \t\r\n");
        if (*p == '\0')
            break;
        size_t len = strcspn(p, " \t\r\n");
        if (n == cap) {
            cap = cap ? cap * 2 : 4;
            v = cp_realloc(v, cap * sizeof(*v));
        }
        v[n++] = cp_strndup(p, len);
        p += len;
    }
    *out = v;
    return n;
}

void agent_labels_free(char **labels, size_t n)
{
    for (size_t i = 0; i < n; i++)
        cp_free(labels[i]);
    cp_free(labels);
}

char *agent_labels_join(char *const *labels, size_t n)
{
    size_t total = 1;
    for (size_t i = 0; i < n; i++)
        total += strlen(labels[i]) + 1;
    char *s = cp_malloc(total);
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(labels[i]);
        if (i > 0)
            s[off++] = ',';
        memcpy(s + off, labels[i], len);
        off += len;
    }
    s[off] = '\0';
    return s;
}

/* ==== The whole config ==== */

void agent_config_release(struct agent_config *cfg)
{
    agent_uri_release(&cfg->uri);
    cp_free(cfg->grid_token);
    cp_free(cfg->node_token);
    cp_free(cfg->node_id);
    cp_free(cfg->node_name);
    agent_labels_free(cfg->labels, cfg->nlabels);
    cp_free(cfg->public_ip);
    cp_free(cfg->private_ip);
    cp_free(cfg->docker_socket);
    memset(cfg, 0, sizeof(*cfg));
}

static int parse_docker_host(const char *v, struct agent_config *cfg, char *err,
                             size_t errlen)
{
    static const char prefix[] = "unix://";
    if (strncmp(v, prefix, sizeof(prefix) - 1) != 0 ||
        v[sizeof(prefix) - 1] != '/') {
        fail(err, errlen,
             "DOCKER_HOST: only unix:///path is supported, got \"%s\"", v);
        return CP_EINVAL;
    }
    cfg->docker_socket = cp_strdup(v + sizeof(prefix) - 1);
    return 0;
}

static int parse_env(struct agent_config *cfg, char *const *env, char *err,
                     size_t errlen)
{
    const char *v = env_get(env, "KONTENA_URI");
    if (v == NULL) {
        fail(err, errlen, "KONTENA_URI is required");
        return CP_EINVAL;
    }
    char why[128];
    if (agent_uri_parse(v, &cfg->uri, why, sizeof(why)) != 0) {
        fail(err, errlen, "KONTENA_URI: %s: \"%s\"", why, v);
        return CP_EINVAL;
    }
    cfg->grid_token = dup_or_null(env_get(env, "KONTENA_TOKEN"));
    cfg->node_token = dup_or_null(env_get(env, "KONTENA_NODE_TOKEN"));
    if (cfg->grid_token == NULL && cfg->node_token == NULL) {
        fail(err, errlen, "KONTENA_TOKEN or KONTENA_NODE_TOKEN is required");
        return CP_EINVAL;
    }
    cfg->node_id = dup_or_null(env_get(env, "KONTENA_NODE_ID"));
    cfg->node_name = dup_or_null(env_get(env, "KONTENA_NODE_NAME"));
    cfg->has_labels = env_is_set(env, "KONTENA_NODE_LABELS");
    cfg->nlabels =
        agent_labels_split(env_get(env, "KONTENA_NODE_LABELS"), &cfg->labels);
    cfg->public_ip = dup_or_null(env_get(env, "KONTENA_PUBLIC_IP"));
    cfg->private_ip = dup_or_null(env_get(env, "KONTENA_PRIVATE_IP"));

    cfg->ssl_verify = true;
    v = env_get(env, "KONTENA_SSL_VERIFY");
    if (v != NULL && parse_bool(v, &cfg->ssl_verify) != 0) {
        fail(err, errlen,
             "KONTENA_SSL_VERIFY: expected true or false, got "
             "\"%s\"",
             v);
        return CP_EINVAL;
    }
    if (int_setting(env, "WEBSOCKET_TIMEOUT", PROTO_PONG_TIMEOUT_S, 1, 3600,
                    &cfg->ws_timeout_s, err, errlen) != 0 ||
        int_setting(env, "KONTENA_PING_INTERVAL", PROTO_PING_INTERVAL_S, 1,
                    3600, &cfg->ping_interval_s, err, errlen) != 0 ||
        int_setting(env, "KONTENA_NODE_UPDATE_INTERVAL",
                    PROTO_NODE_UPDATE_INTERVAL_S, 1, 86400,
                    &cfg->update_interval_s, err, errlen) != 0 ||
        int_setting(env, "KONTENA_STATS_INTERVAL", PROTO_NODE_STATS_INTERVAL_S,
                    1, 86400, &cfg->stats_interval_s, err, errlen) != 0 ||
        int_setting(env, "KONTENA_PODS_INTERVAL", 30, 1, 86400,
                    &cfg->pods_interval_s, err, errlen) != 0)
        return CP_EINVAL;

    cfg->log_level = CP_LOG_INFO;
    v = env_get(env, "LOG_LEVEL");
    if (v != NULL && cp_log_parse_level(v, &cfg->log_level) != 0) {
        fail(err, errlen, "LOG_LEVEL: unknown level \"%s\"", v);
        return CP_EINVAL;
    }
    v = env_get(env, "KONTENA_TRACE");
    const char *bad = NULL;
    if (v != NULL && cp_log_parse_trace(v, &cfg->trace, &bad) != 0) {
        fail(err, errlen, "KONTENA_TRACE: unknown subsystem \"%s\"",
             bad != NULL ? bad : v);
        return CP_EINVAL;
    }
    v = env_get(env, "DOCKER_HOST");
    return parse_docker_host(v != NULL ? v : "unix:///var/run/docker.sock", cfg,
                             err, errlen);
}

int agent_config_parse(struct agent_config *cfg, char *const *env, int argc,
                       char **argv, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->command = AGENT_CMD_RUN;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            cfg->command = AGENT_CMD_HELP;
            return 0;
        }
        if (strcmp(argv[i], "--version") == 0 || strcmp(argv[i], "-v") == 0) {
            cfg->command = AGENT_CMD_VERSION;
            return 0;
        }
        fail(err, errlen, "unknown argument \"%s\" (try --help)", argv[i]);
        return CP_EINVAL;
    }
    if (parse_env(cfg, env, err, errlen) != 0) {
        agent_config_release(cfg);
        return CP_EINVAL;
    }
    return 0;
}
