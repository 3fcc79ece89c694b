/* "kontena service ...": create, list, show, update, deploy, scale,
 * start/stop/restart and remove services, list their containers and
 * instances, edit their env, and print or follow their logs and events.
 * Services live under /v1/services/<grid>/<stack>/<name>, the default
 * stack being "null". The log follower here is shared with cmd_container.c.
 * SPDX-License-Identifier: Apache-2.0 */
#include "cli.h"
#include "output.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/util.h"
#include "../common/version.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* A single streamed log or event item bigger than this is an error. */
#define SVC_STREAM_MAX_OBJECT (4 * 1024 * 1024)
#define SVC_DEPLOY_TIMEOUT_S 600
#define SVC_BACKOFF_MIN_MS 500
#define SVC_BACKOFF_MAX_MS 10000
/* A follow stream sends a keep-alive space every half second when idle;
 * this long without a byte means the connection is dead. */
#define SVC_STREAM_IDLE_S 30L

static int errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (err != NULL && errlen > 0)
        vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return CP_EINVAL;
}

/* ==== Pure helpers: arguments ==== */

int cmd_service_ref(const char *ref, char **grid, char **stack, char **name,
                    char *err, size_t errlen)
{
    *grid = *stack = *name = NULL;
    if (ref == NULL || *ref == '\0')
        return errf(err, errlen, "empty service name");
    const char *part[3];
    size_t len[3];
    size_t n = 0;
    const char *p = ref;
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t l = slash != NULL ? (size_t)(slash - p) : strlen(p);
        if (n == 3)
            return errf(err, errlen,
                        "invalid service '%s': use NAME, STACK/NAME or "
                        "GRID/STACK/NAME",
                        ref);
        if (l == 0)
            return errf(err, errlen, "invalid service '%s': empty part", ref);
        part[n] = p;
        len[n] = l;
        n++;
        if (slash == NULL)
            break;
        p = slash + 1;
    }
    size_t i = 0;
    if (n == 3) {
        *grid = cp_strndup(part[0], len[0]);
        i = 1;
    }
    *stack = n >= 2 ? cp_strndup(part[i], len[i]) : cp_strdup("null");
    *name = cp_strndup(part[n - 1], len[n - 1]);
    return 0;
}

char *cmd_service_path(const char *grid, const char *stack, const char *name,
                       const char *suffix)
{
    char *g = client_escape(grid);
    char *s = client_escape(stack);
    char *n = client_escape(name);
    char *p = cp_asprintf("/v1/services/%s/%s/%s%s", g, s, n,
                          suffix != NULL ? suffix : "");
    cp_free(n);
    cp_free(s);
    cp_free(g);
    return p;
}

static int parse_port_num(const char *s, size_t len, long long *out)
{
    char buf[16];
    if (len == 0 || len >= sizeof(buf))
        return CP_EINVAL;
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)s[i]))
            return CP_EINVAL;
    }
    memcpy(buf, s, len);
    buf[len] = '\0';
    return cp_parse_int(buf, 1, 65535, out);
}

static bool is_ipv4(const char *s, size_t len)
{
    int parts = 0;
    size_t i = 0;
    while (i < len) {
        size_t start = i;
        long v = 0;
        while (i < len && isdigit((unsigned char)s[i]) && i - start < 3)
            v = v * 10 + (s[i++] - '0');
        if (i == start || v > 255)
            return false;
        parts++;
        if (i == len)
            break;
        if (s[i] != '.' || parts == 4)
            return false;
        i++;
        if (i == len)
            return false;
    }
    return parts == 4;
}

int cmd_service_port(const char *spec, json_t **out, char *err, size_t errlen)
{
    *out = NULL;
    if (spec == NULL || *spec == '\0')
        return errf(err, errlen, "empty port spec");
    const char *proto = "tcp";
    size_t body = strlen(spec);
    const char *slash = strchr(spec, '/');
    if (slash != NULL) {
        proto = slash + 1;
        body = (size_t)(slash - spec);
        if (strcmp(proto, "tcp") != 0 && strcmp(proto, "udp") != 0)
            return errf(err, errlen,
                        "invalid port '%s': protocol must be tcp or udp", spec);
    }
    /* ip:node:container, or node:container; split at the last colons so
     * that the ip part is whatever comes before. */
    const char *c2 = NULL, *c1 = NULL;
    for (size_t i = body; i > 0; i--) {
        if (spec[i - 1] != ':')
            continue;
        if (c2 == NULL) {
            c2 = spec + i - 1;
        } else {
            c1 = spec + i - 1;
            break;
        }
    }
    if (c2 == NULL)
        return errf(err, errlen,
                    "invalid port '%s': use NODE_PORT:CONTAINER_PORT[/udp] "
                    "or IP:NODE_PORT:CONTAINER_PORT",
                    spec);
    const char *ip = "0.0.0.0";
    size_t iplen = 7;
    const char *np = spec;
    if (c1 != NULL) {
        ip = spec;
        iplen = (size_t)(c1 - spec);
        np = c1 + 1;
        if (!is_ipv4(ip, iplen))
            return errf(err, errlen, "invalid port '%s': bad ip address", spec);
    }
    long long node_port, cont_port;
    if (parse_port_num(np, (size_t)(c2 - np), &node_port) != 0 ||
        parse_port_num(c2 + 1, (size_t)(spec + body - c2 - 1), &cont_port) != 0)
        return errf(err, errlen,
                    "invalid port '%s': ports must be numbers 1-65535", spec);
    json_t *j = json_object();
    json_object_set_new(j, "ip", json_stringn(ip, iplen));
    json_object_set_new(j, "protocol", json_string(proto));
    json_object_set_new(j, "node_port", json_integer(node_port));
    json_object_set_new(j, "container_port", json_integer(cont_port));
    *out = j;
    return 0;
}

int cmd_service_memory(const char *s, long long *out, char *err, size_t errlen)
{
    *out = 0;
    if (s == NULL || *s == '\0')
        return errf(err, errlen, "empty memory size");
    const char *p = s;
    unsigned long long whole = 0;
    if (!isdigit((unsigned char)*p))
        goto bad;
    while (isdigit((unsigned char)*p)) {
        if (whole > (unsigned long long)LLONG_MAX / 10)
            goto toobig;
        whole = whole * 10 + (unsigned long long)(*p++ - '0');
    }
    /* Up to nine fraction digits, kept as frac / 10^fdigits. */
    unsigned long long frac = 0, fscale = 1;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            goto bad;
        while (isdigit((unsigned char)*p)) {
            if (fscale < 1000000000ULL) {
                frac = frac * 10 + (unsigned long long)(*p - '0');
                fscale *= 10;
            }
            p++;
        }
    }
    unsigned long long mult = 1;
    switch (tolower((unsigned char)*p)) {
    case '\0':
        break;
    case 'b':
        p++;
        break;
    case 'k':
        mult = 1ULL << 10;
        p++;
        break;
    case 'm':
        mult = 1ULL << 20;
        p++;
        break;
    case 'g':
        mult = 1ULL << 30;
        p++;
        break;
    case 't':
        mult = 1ULL << 40;
        p++;
        break;
    default:
        goto bad;
    }
    if (mult > 1 && tolower((unsigned char)*p) == 'b')
        p++;
    if (*p != '\0')
        goto bad;
    if (whole > (unsigned long long)LLONG_MAX / mult)
        goto toobig;
    unsigned long long v = whole * mult;
    /* frac / fscale < 1, so the fraction adds less than mult; long double
     * keeps 1.5g exact where integer division by 10^n would not. */
    unsigned long long add =
        (unsigned long long)((long double)frac * (long double)mult /
                             (long double)fscale);
    if (v > (unsigned long long)LLONG_MAX - add)
        goto toobig;
    *out = (long long)(v + add);
    return 0;
bad:
    return errf(err, errlen,
                "invalid memory size '%s': use bytes or a number with k, m, "
                "g or t",
                s);
toobig:
    return errf(err, errlen, "invalid memory size '%s': too big", s);
}

int cmd_service_secret(const char *spec, json_t **out, char *err, size_t errlen)
{
    *out = NULL;
    if (spec == NULL)
        return errf(err, errlen, "empty secret spec");
    const char *c1 = strchr(spec, ':');
    const char *c2 = c1 != NULL ? strchr(c1 + 1, ':') : NULL;
    if (c1 == NULL || c1 == spec || c1[1] == '\0' || c1 + 1 == c2)
        return errf(err, errlen, "invalid secret '%s': use SECRET:NAME[:env]",
                    spec);
    const char *type = c2 != NULL ? c2 + 1 : "env";
    if (strcmp(type, "env") != 0)
        return errf(err, errlen, "invalid secret '%s': the only type is env",
                    spec);
    const char *name_end = c2 != NULL ? c2 : c1 + strlen(c1);
    json_t *j = json_object();
    json_object_set_new(j, "secret", json_stringn(spec, (size_t)(c1 - spec)));
    json_object_set_new(j, "name",
                        json_stringn(c1 + 1, (size_t)(name_end - c1 - 1)));
    json_object_set_new(j, "type", json_string(type));
    *out = j;
    return 0;
}

/* ==== Pure helpers: the concatenated-JSON stream ==== */

struct cmd_jstream {
    struct cp_buf buf; /* bytes of the object being read */
    size_t max;
    int depth;      /* nesting inside the current object; 0 between */
    bool is_str;    /* inside a string */
    bool is_escape; /* the previous byte was a backslash in a string */
    char err[160];
};

struct cmd_jstream *cmd_jstream_new(size_t max)
{
    struct cmd_jstream *js = cp_calloc(1, sizeof(*js));
    js->max = max;
    cp_buf_init(&js->buf, max);
    return js;
}

void cmd_jstream_free(struct cmd_jstream *js)
{
    if (js == NULL)
        return;
    cp_buf_release(&js->buf);
    cp_free(js);
}

void cmd_jstream_reset(struct cmd_jstream *js)
{
    js->buf.len = 0;
    if (js->buf.data != NULL)
        js->buf.data[0] = '\0';
    js->depth = 0;
    js->is_str = false;
    js->is_escape = false;
}

bool cmd_jstream_is_partial(const struct cmd_jstream *js)
{
    return js->depth > 0;
}

const char *cmd_jstream_error(const struct cmd_jstream *js)
{
    return js->err;
}

/* Parses the complete object in the buffer and hands it over. */
static int jstream_emit(struct cmd_jstream *js, cmd_jstream_fn *fn, void *ud)
{
    char why[120];
    json_t *j = cp_json_parse(js->buf.data, js->buf.len, why, sizeof(why));
    cmd_jstream_reset(js);
    /* The buffer is empty again before the callback runs, so a callback
     * may feed or reset the parser. */
    if (j == NULL) {
        snprintf(js->err, sizeof(js->err), "invalid json in stream: %s", why);
        return CP_EPROTO;
    }
    int rc = fn(ud, j);
    json_decref(j);
    return rc;
}

int cmd_jstream_feed(struct cmd_jstream *js, const char *data, size_t len,
                     cmd_jstream_fn *fn, void *ud)
{
    size_t start = 0; /* first byte of data not yet copied to buf */
    for (size_t i = 0; i < len; i++) {
        char ch = data[i];
        if (js->depth == 0) {
            if (ch == ' ' || ch == '\n' || ch == '\r' || ch == '\t') {
                start = i + 1;
                continue;
            }
            if (ch != '{') {
                snprintf(js->err, sizeof(js->err),
                         "unexpected byte 0x%02x between objects in stream",
                         (unsigned char)ch);
                return CP_EPROTO;
            }
            start = i;
            js->depth = 1;
            continue;
        }
        if (js->is_str) {
            if (js->is_escape)
                js->is_escape = false;
            else if (ch == '\\')
                js->is_escape = true;
            else if (ch == '"')
                js->is_str = false;
            continue;
        }
        if (ch == '"') {
            js->is_str = true;
        } else if (ch == '{' || ch == '[') {
            if (js->depth >= CP_JSON_MAX_DEPTH) {
                snprintf(js->err, sizeof(js->err),
                         "json in stream nested too deep");
                return CP_EPROTO;
            }
            js->depth++;
        } else if (ch == '}' || ch == ']') {
            js->depth--;
            if (js->depth == 0) {
                if (cp_buf_append(&js->buf, data + start, i + 1 - start) != 0)
                    goto toobig;
                start = i + 1;
                int rc = jstream_emit(js, fn, ud);
                if (rc != 0)
                    return rc;
            }
        }
    }
    if (js->depth > 0 && start < len &&
        cp_buf_append(&js->buf, data + start, len - start) != 0)
        goto toobig;
    return 0;
toobig:
    cmd_jstream_reset(js);
    snprintf(js->err, sizeof(js->err), "object in stream bigger than %zu bytes",
             js->max);
    return CP_EINVAL;
}

/* ==== Service references and calls ==== */

/* A parsed SVC argument with its grid resolved. */
struct svc {
    char *grid;
    char *stack;
    char *name;
    char *label; /* "svc" or "S/svc" for messages */
};

static void svc_release(struct svc *s)
{
    cp_free(s->grid);
    cp_free(s->stack);
    cp_free(s->name);
    cp_free(s->label);
    memset(s, 0, sizeof(*s));
}

/* Fills s from ref; returns 0, 2 for a bad argument, 1 when no grid. */
static int svc_parse(struct cli *cli, const char *ref, struct svc *s)
{
    char why[160];
    memset(s, 0, sizeof(*s));
    if (cmd_service_ref(ref, &s->grid, &s->stack, &s->name, why, sizeof(why)) !=
        0)
        return cli_usage(cli, "%s", why);
    if (s->grid == NULL) {
        const char *g = cli_grid(cli);
        if (g == NULL) {
            svc_release(s);
            return 1;
        }
        s->grid = cp_strdup(g);
    }
    s->label = strcmp(s->stack, "null") == 0
                   ? cp_strdup(s->name)
                   : cp_asprintf("%s/%s", s->stack, s->name);
    return 0;
}

static char *svc_path(const struct svc *s, const char *suffix)
{
    return cmd_service_path(s->grid, s->stack, s->name, suffix);
}

/* Prints "error: <what>: <why>"; a 422 field hash goes one field a line. */
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

/* Performs a request and returns the answer (caller decrefs) or NULL
 * after printing "error: <what>: <why>". */
static json_t *call(struct cli *cli, struct client *c, const char *method,
                    const char *path, const json_t *body, const char *what)
{
    json_t *out = NULL;
    if (client_request(c, method, path, body, &out) != 0) {
        print_api_error(cli, c, what);
        return NULL;
    }
    return out;
}

/* method on the service's path plus suffix; NULL after printing "error:
 * cannot <verb> service <svc>: <why>". */
static json_t *svc_call(struct cli *cli, struct client *c, const char *method,
                        const struct svc *s, const char *suffix,
                        const json_t *body, const char *verb)
{
    char *path = svc_path(s, suffix);
    char *what = cp_asprintf("cannot %s service %s", verb, s->label);
    json_t *r = call(cli, c, method, path, body, what);
    cp_free(what);
    cp_free(path);
    return r;
}

/* The array under key in an answer, or the answer when it is an array. */
static json_t *list_of(json_t *resp, const char *key)
{
    if (json_is_array(resp))
        return resp;
    json_t *l = json_object_get(resp, key);
    return json_is_array(l) ? l : NULL;
}

/* "svc" or "S/svc" from a service JSON (caller frees). */
static char *service_label(const json_t *svc)
{
    const char *name = cp_json_str(svc, "name");
    const char *stack = cp_json_str(json_object_get(svc, "stack"), "name");
    if (name == NULL)
        name = "";
    if (stack == NULL || strcmp(stack, "null") == 0 || *stack == '\0')
        return cp_strdup(name);
    return cp_asprintf("%s/%s", stack, name);
}

/* A node reference that may be a name or an object with a name. */
static const char *node_name(const json_t *n)
{
    if (json_is_string(n))
        return json_string_value(n);
    const char *s = cp_json_str(n, "name");
    return s != NULL ? s : cp_json_str(n, "node_id");
}

/* Asks before a destructive step unless --force; 0 to go on, else the
 * exit code after printing why not. */
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

/* ==== The service spec from flags (create and update) ==== */

static int parse_int_opt(struct cli *cli, const struct args *a, const char *opt,
                         long long min, long long max, long long *out)
{
    const char *v = args_get(a, opt);
    if (cp_parse_int(v, min, max, out) != 0)
        return cli_usage(cli, "--%s must be a whole number %lld-%lld, not '%s'",
                         opt, min, max, v);
    return 0;
}

static int parse_real_opt(struct cli *cli, const struct args *a,
                          const char *opt, double min, double max, double *out)
{
    const char *v = args_get(a, opt);
    char *end = NULL;
    errno = 0;
    double d = strtod(v, &end);
    if (*v == '\0' || end == NULL || *end != '\0' || errno != 0 ||
        !isfinite(d) || d < min || d > max)
        return cli_usage(cli, "--%s must be a number %g-%g, not '%s'", opt, min,
                         max, v);
    *out = d;
    return 0;
}

/* A duration in seconds: "90", "90s", "5min", "2h", "1d". */
static int parse_duration(const char *s, long long *out)
{
    static const struct {
        const char *unit;
        long long secs;
    } units[] = {{"", 1},     {"s", 1},    {"m", 60},
                 {"min", 60}, {"h", 3600}, {"d", 86400}};
    char *end = NULL;
    if (s == NULL || !isdigit((unsigned char)*s))
        return CP_EINVAL;
    errno = 0;
    long long n = strtoll(s, &end, 10);
    if (errno != 0)
        return CP_EINVAL;
    for (size_t i = 0; i < CP_ARRAY_LEN(units); i++) {
        if (strcmp(end, units[i].unit) == 0) {
            if (n > LLONG_MAX / units[i].secs)
                return CP_EINVAL;
            *out = n * units[i].secs;
            return 0;
        }
    }
    return CP_EINVAL;
}

static json_t *strings(const struct args *a, const char *opt)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < args_count(a, opt); i++)
        json_array_append_new(arr, json_string(args_at(a, opt, i)));
    return arr;
}

static void set_strings(json_t *body, const struct args *a, const char *opt,
                        const char *key)
{
    if (args_has(a, opt))
        json_object_set_new(body, key, strings(a, opt));
}

static void set_str(json_t *body, const struct args *a, const char *opt,
                    const char *key)
{
    if (args_has(a, opt))
        cp_json_set_str(body, key, args_get(a, opt));
}

/* The object under key, created when absent (borrowed). */
static json_t *sub_object(json_t *body, const char *key)
{
    json_t *o = json_object_get(body, key);
    if (!json_is_object(o)) {
        o = json_object();
        json_object_set_new(body, key, o);
    }
    return o;
}

static int spec_lists(struct cli *cli, const struct args *a, json_t *body)
{
    char why[200];
    if (args_has(a, "ports")) {
        json_t *ports = json_array();
        json_object_set_new(body, "ports", ports);
        for (size_t i = 0; i < args_count(a, "ports"); i++) {
            json_t *p;
            if (cmd_service_port(args_at(a, "ports", i), &p, why,
                                 sizeof(why)) != 0)
                return cli_usage(cli, "%s", why);
            json_array_append_new(ports, p);
        }
    }
    if (args_has(a, "env")) {
        for (size_t i = 0; i < args_count(a, "env"); i++) {
            const char *e = args_at(a, "env", i);
            if (strchr(e, '=') == NULL || *e == '=')
                return cli_usage(cli, "invalid env '%s': use KEY=VALUE", e);
        }
        set_strings(body, a, "env", "env");
    }
    if (args_has(a, "link")) {
        json_t *links = json_array();
        json_object_set_new(body, "links", links);
        for (size_t i = 0; i < args_count(a, "link"); i++) {
            const char *l = args_at(a, "link", i);
            const char *colon = strchr(l, ':');
            size_t nlen = colon != NULL ? (size_t)(colon - l) : strlen(l);
            if (nlen == 0 || (colon != NULL && colon[1] == '\0'))
                return cli_usage(cli, "invalid link '%s': use SERVICE[:ALIAS]",
                                 l);
            char *name = cp_strndup(l, nlen);
            const char *slash = strrchr(name, '/');
            const char *alias = colon != NULL   ? colon + 1
                                : slash != NULL ? slash + 1
                                                : name;
            json_array_append_new(
                links, json_pack("{s:s, s:s}", "name", name, "alias", alias));
            cp_free(name);
        }
    }
    if (args_has(a, "secret")) {
        json_t *secrets = json_array();
        json_object_set_new(body, "secrets", secrets);
        for (size_t i = 0; i < args_count(a, "secret"); i++) {
            json_t *s;
            if (cmd_service_secret(args_at(a, "secret", i), &s, why,
                                   sizeof(why)) != 0)
                return cli_usage(cli, "%s", why);
            json_array_append_new(secrets, s);
        }
    }
    if (args_has(a, "log-opt")) {
        json_t *opts = json_object();
        json_object_set_new(body, "log_opts", opts);
        for (size_t i = 0; i < args_count(a, "log-opt"); i++) {
            const char *o = args_at(a, "log-opt", i);
            const char *eq = strchr(o, '=');
            if (eq == NULL || eq == o)
                return cli_usage(cli, "invalid log option '%s': use KEY=VALUE",
                                 o);
            char *k = cp_strndup(o, (size_t)(eq - o));
            json_object_set_new(opts, k, json_string(eq + 1));
            cp_free(k);
        }
    }
    set_strings(body, a, "volume", "volumes");
    set_strings(body, a, "volumes-from", "volumes_from");
    set_strings(body, a, "affinity", "affinity");
    set_strings(body, a, "cap-add", "cap_add");
    set_strings(body, a, "cap-drop", "cap_drop");
    if (args_has(a, "cmd")) {
        json_t *cmd = json_array();
        const char *p = args_get(a, "cmd");
        while (*p != '\0') {
            while (*p == ' ')
                p++;
            size_t l = strcspn(p, " ");
            if (l > 0)
                json_array_append_new(cmd, json_stringn(p, l));
            p += l;
        }
        json_object_set_new(body, "cmd", cmd);
    }
    return 0;
}

static int spec_sizes(struct cli *cli, const struct args *a, json_t *body)
{
    static const char *const mem[][2] = {{"memory", "memory"},
                                         {"memory-swap", "memory_swap"},
                                         {"shm-size", "shm_size"}};
    char why[200];
    for (size_t i = 0; i < CP_ARRAY_LEN(mem); i++) {
        if (!args_has(a, mem[i][0]))
            continue;
        long long n;
        if (cmd_service_memory(args_get(a, mem[i][0]), &n, why, sizeof(why)) !=
            0)
            return cli_usage(cli, "--%s: %s", mem[i][0], why);
        json_object_set_new(body, mem[i][1], json_integer(n));
    }
    long long n;
    double d;
    if (args_has(a, "cpus")) {
        if (parse_real_opt(cli, a, "cpus", 0, 1024, &d) != 0)
            return 2;
        json_object_set_new(body, "cpus", json_real(d));
    }
    if (args_has(a, "cpu-shares")) {
        if (parse_int_opt(cli, a, "cpu-shares", 0, 1024, &n) != 0)
            return 2;
        json_object_set_new(body, "cpu_shares", json_integer(n));
    }
    if (args_has(a, "instances")) {
        if (parse_int_opt(cli, a, "instances", 0, 100000, &n) != 0)
            return 2;
        json_object_set_new(body, "instances", json_integer(n));
    }
    return 0;
}

static int spec_deploy_opts(struct cli *cli, const struct args *a, json_t *body)
{
    const char *strategy = args_get(a, "deploy-strategy");
    if (strategy != NULL) {
        if (strcmp(strategy, "ha") != 0 && strcmp(strategy, "daemon") != 0 &&
            strcmp(strategy, "random") != 0)
            return cli_usage(cli,
                             "--deploy-strategy must be ha, daemon or "
                             "random, not '%s'",
                             strategy);
        cp_json_set_str(body, "strategy", strategy);
    }
    long long n;
    double d;
    if (args_has(a, "wait-for-port")) {
        if (parse_int_opt(cli, a, "wait-for-port", 1, 65535, &n) != 0)
            return 2;
        json_object_set_new(sub_object(body, "deploy_opts"), "wait_for_port",
                            json_integer(n));
    }
    if (args_has(a, "min-health")) {
        if (parse_real_opt(cli, a, "min-health", 0, 1, &d) != 0)
            return 2;
        json_object_set_new(sub_object(body, "deploy_opts"), "min_health",
                            json_real(d));
    }
    if (args_has(a, "deploy-interval")) {
        const char *v = args_get(a, "deploy-interval");
        if (parse_duration(v, &n) != 0)
            return cli_usage(cli,
                             "--deploy-interval must be a duration such as "
                             "90s, 5min, 2h or 1d, not '%s'",
                             v);
        json_object_set_new(sub_object(body, "deploy_opts"), "interval",
                            json_integer(n));
    }
    return 0;
}

static int spec_health_check(struct cli *cli, const struct args *a,
                             json_t *body)
{
    static const char *const ints[][2] = {
        {"health-check-port", "port"},
        {"health-check-timeout", "timeout"},
        {"health-check-interval", "interval"},
        {"health-check-initial-delay", "initial_delay"}};
    const char *proto = args_get(a, "health-check-protocol");
    if (proto != NULL) {
        if (strcmp(proto, "http") != 0 && strcmp(proto, "tcp") != 0)
            return cli_usage(cli,
                             "--health-check-protocol must be http or tcp, "
                             "not '%s'",
                             proto);
        cp_json_set_str(sub_object(body, "health_check"), "protocol", proto);
    }
    if (args_has(a, "health-check-uri"))
        cp_json_set_str(sub_object(body, "health_check"), "uri",
                        args_get(a, "health-check-uri"));
    for (size_t i = 0; i < CP_ARRAY_LEN(ints); i++) {
        if (!args_has(a, ints[i][0]))
            continue;
        long long n;
        long long max = strcmp(ints[i][1], "port") == 0 ? 65535 : 86400;
        long long min = strcmp(ints[i][1], "initial_delay") == 0 ? 0 : 1;
        if (parse_int_opt(cli, a, ints[i][0], min, max, &n) != 0)
            return 2;
        json_object_set_new(sub_object(body, "health_check"), ints[i][1],
                            json_integer(n));
    }
    return 0;
}

/* Adds every given flag to body; 0, or 2 after printing the usage error. */
static int build_spec(struct cli *cli, const struct args *a, json_t *body)
{
    int rc = spec_lists(cli, a, body);
    if (rc == 0)
        rc = spec_sizes(cli, a, body);
    if (rc == 0)
        rc = spec_deploy_opts(cli, a, body);
    if (rc == 0)
        rc = spec_health_check(cli, a, body);
    if (rc != 0)
        return rc;
    set_str(body, a, "entrypoint", "entrypoint");
    set_str(body, a, "user", "user");
    set_str(body, a, "net", "net");
    set_str(body, a, "pid", "pid");
    set_str(body, a, "log-driver", "log_driver");
    set_str(body, a, "stop-signal", "stop_signal");
    if (args_has(a, "stop-timeout")) {
        const char *v = args_get(a, "stop-timeout");
        long long secs;
        if (parse_duration(v, &secs) != 0)
            return cli_usage(cli,
                             "--stop-timeout must be a duration such as 30s "
                             "or 2min, not '%s'",
                             v);
        char *s = cp_asprintf("%llds", secs);
        cp_json_set_str(body, "stop_grace_period", s);
        cp_free(s);
    }
    if (args_has(a, "stateful"))
        json_object_set_new(body, "stateful", json_true());
    if (args_has(a, "privileged"))
        json_object_set_new(body, "privileged", json_true());
    if (args_has(a, "read-only"))
        json_object_set_new(body, "read_only", json_true());
    return 0;
}

/* ==== Deploy progress ==== */

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

static bool is_finished(const json_t *d)
{
    const char *f = cp_json_str(d, "finished_at");
    return f != NULL && *f != '\0';
}

static long long instance_number(const json_t *idep)
{
    return cp_json_int(idep, "instance_number", 0);
}

/* The state of instance n in a deploy, or NULL. */
static const char *instance_state(const json_t *d, long long n)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(d, "instance_deploys"), i, v)
    {
        if (instance_number(v) == n)
            return cp_json_str(v, "state");
    }
    return NULL;
}

/* One plain line per instance deploy whose state changed since prev. */
static void print_changes(const char *label, const json_t *prev,
                          const json_t *d)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(d, "instance_deploys"), i, v)
    {
        const char *st = cp_json_str(v, "state");
        const char *old = instance_state(prev, instance_number(v));
        if (st == NULL || (old != NULL && strcmp(old, st) == 0))
            continue;
        const char *node = node_name(json_object_get(v, "node"));
        const char *err = cp_json_str(v, "error");
        printf("%s-%lld on node %s: %s%s%s\n", label, instance_number(v),
               node != NULL ? node : "-", st, err != NULL ? ": " : "",
               err != NULL ? err : "");
    }
    fflush(stdout);
}

static void print_spinner(const char *label, const json_t *d, unsigned tick)
{
    static const char spin[] = "|/-\\";
    long long done = 0;
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(d, "instance_deploys"), i, v)
    {
        const char *st = cp_json_str(v, "state");
        if (st != NULL && strcmp(st, "success") == 0)
            done++;
    }
    long long total = cp_json_int(d, "instance_count", 0);
    const char *state = cp_json_str(d, "state");
    fprintf(stderr, "\r\033[K%c deploying %s: %lld/%lld instances (%s)",
            spin[tick % 4], label, done, total,
            state != NULL ? state : "queued");
    fflush(stderr);
}

/* Reports a finished deploy; returns the exit code. */
static int deploy_result(struct cli *cli, const char *label, const json_t *d)
{
    const char *state = cp_json_str(d, "state");
    if (state != NULL && strcmp(state, "success") == 0) {
        if (cli->is_json)
            output_json(d, stdout);
        else
            printf("deployed %s\n", label);
        return 0;
    }
    const char *reason = cp_json_str(d, "reason");
    cli_fail(cli, "cannot deploy %s: %s", label,
             reason != NULL && *reason != '\0' ? reason : "the deploy failed");
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(d, "instance_deploys"), i, v)
    {
        const char *err = cp_json_str(v, "error");
        const char *st = cp_json_str(v, "state");
        if (err == NULL && (st == NULL || strcmp(st, "error") != 0))
            continue;
        const char *node = node_name(json_object_get(v, "node"));
        fprintf(stderr, "  %s-%lld on node %s: %s\n", label, instance_number(v),
                node != NULL ? node : "-", err != NULL ? err : "failed");
    }
    if (cli->is_json)
        output_json(d, stdout);
    return 1;
}

/* Polls GET .../deploys/<id> every second until the deploy finishes or
 * timeout_s passes. Takes ownership of d. */
static int wait_deploy(struct cli *cli, struct client *c, const struct svc *s,
                       json_t *d, long long timeout_s)
{
    const char *id = cp_json_str(d, "id");
    int rc = 1;
    json_t *prev = json_object();
    char *suffix = NULL;
    if (id == NULL || *id == '\0') {
        cli_fail(cli,
                 "cannot deploy %s: the master answered without a "
                 "deploy id",
                 s->label);
        goto out;
    }
    char *eid = client_escape(id);
    suffix = cp_asprintf("/deploys/%s", eid);
    cp_free(eid);
    bool is_tty = isatty(STDERR_FILENO) == 1 && !cli->is_json;
    int64_t deadline = cp_mono_ms() + timeout_s * 1000;
    unsigned tick = 0;
    while (!is_finished(d)) {
        if (is_tty)
            print_spinner(s->label, d, tick++);
        else if (!cli->is_json)
            print_changes(s->label, prev, d);
        json_decref(prev);
        prev = json_incref(d);
        if (cp_mono_ms() >= deadline) {
            if (is_tty)
                fputs("\r\033[K", stderr);
            cli_fail(cli,
                     "cannot deploy %s: still not finished after %lld s; "
                     "see kontena service show %s",
                     s->label, timeout_s, s->label);
            goto out;
        }
        if (!nap(1000)) {
            if (is_tty)
                fputs("\r\033[K", stderr);
            cli_fail(cli,
                     "stopped waiting for the deploy of %s: "
                     "interrupted; it goes on in the master",
                     s->label);
            goto out;
        }
        json_t *next =
            svc_call(cli, c, "GET", s, suffix, NULL, "check the deploy of");
        if (next == NULL) {
            if (is_tty)
                fputs("\r\033[K", stderr);
            goto out;
        }
        json_decref(d);
        d = next;
    }
    if (is_tty)
        fputs("\r\033[K", stderr);
    else if (!cli->is_json)
        print_changes(s->label, prev, d);
    rc = deploy_result(cli, s->label, d);
out:
    cp_free(suffix);
    json_decref(prev);
    json_decref(d);
    return rc;
}

static int deploy_timeout(struct cli *cli, const struct args *a, long long *out)
{
    *out = SVC_DEPLOY_TIMEOUT_S;
    if (!args_has(a, "timeout"))
        return 0;
    return parse_int_opt(cli, a, "timeout", 1, 86400, out);
}

/* Sends a deploy-starting request and waits for it unless --no-wait. */
static int deploy_and_wait(struct cli *cli, const struct args *a,
                           const char *suffix, const json_t *body,
                           const char *verb)
{
    long long timeout;
    if (deploy_timeout(cli, a, &timeout) != 0)
        return 2;
    struct svc s;
    struct client *c = cli_connect(cli);
    if (c == NULL)
        return 1;
    int rc = svc_parse(cli, a->pos[0], &s);
    if (rc != 0) {
        client_free(c);
        return rc;
    }
    rc = 1;
    json_t *d = svc_call(cli, c, "POST", &s, suffix, body, verb);
    if (d == NULL)
        goto out;
    if (args_has(a, "no-wait")) {
        if (cli->is_json)
            output_json(d, stdout);
        else
            printf("deploy of %s queued: %s\n", s.label,
                   cp_json_str(d, "id") != NULL ? cp_json_str(d, "id") : "-");
        json_decref(d);
        rc = 0;
        goto out;
    }
    struct sigaction sa = {0}, old;
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    is_interrupted = 0;
    sigaction(SIGINT, &sa, &old);
    rc = wait_deploy(cli, c, &s, d, timeout);
    sigaction(SIGINT, &old, NULL);
out:
    svc_release(&s);
    client_free(c);
    return rc;
}

static int run_deploy(struct cli *cli, const struct args *a)
{
    json_t *body = json_object();
    if (args_has(a, "force"))
        json_object_set_new(body, "force", json_true());
    int rc = deploy_and_wait(cli, a, "/deploy", body, "deploy");
    json_decref(body);
    return rc;
}

static int run_scale(struct cli *cli, const struct args *a)
{
    long long n;
    if (cp_parse_int(a->pos[1], 0, 100000, &n) != 0)
        return cli_usage(cli,
                         "instances must be a whole number 0-100000, "
                         "not '%s'",
                         a->pos[1]);
    json_t *body = json_pack("{s:I}", "instances", (json_int_t)n);
    int rc = deploy_and_wait(cli, a, "/scale", body, "scale");
    json_decref(body);
    return rc;
}

/* ==== list / show ==== */

static char *ports_text(const json_t *ports)
{
    struct cp_buf b;
    cp_buf_init(&b, 64 * 1024);
    size_t i;
    json_t *p;
    json_array_foreach(ports, i, p)
    {
        const char *ip = cp_json_str(p, "ip");
        const char *proto = cp_json_str(p, "protocol");
        cp_buf_printf(
            &b, "%s%s:%lld->%lld/%s", b.len > 0 ? ", " : "",
            ip != NULL ? ip : "0.0.0.0", cp_json_int(p, "node_port", 0),
            cp_json_int(p, "container_port", 0), proto != NULL ? proto : "tcp");
    }
    char *out = cp_strdup(b.data != NULL ? b.data : "");
    cp_buf_release(&b);
    return out;
}

static char *instances_text(const json_t *svc)
{
    const json_t *counts = json_object_get(svc, "instance_counts");
    if (json_is_object(counts))
        return cp_asprintf("%lld / %lld", cp_json_int(counts, "running", 0),
                           cp_json_int(counts, "total", 0));
    return output_cell(json_object_get(svc, "instances"));
}

static int run_ls(struct cli *cli, const struct args *a)
{
    struct client *c = cli_connect(cli);
    if (c == NULL)
        return 1;
    const char *grid = cli_grid(cli);
    json_t *resp = NULL;
    if (grid != NULL) {
        char *g = client_escape(grid);
        char *path;
        if (args_has(a, "stack")) {
            char *st = client_escape(args_get(a, "stack"));
            path = cp_asprintf("/v1/grids/%s/services?stack=%s", g, st);
            cp_free(st);
        } else {
            path = cp_asprintf("/v1/grids/%s/services", g);
        }
        char *what = cp_asprintf("cannot list services of grid %s", grid);
        resp = call(cli, c, "GET", path, NULL, what);
        cp_free(what);
        cp_free(path);
        cp_free(g);
    }
    client_free(c);
    if (resp == NULL)
        return 1;
    json_t *list = list_of(resp, "services");
    if (cli->is_json) {
        output_list(list);
        json_decref(resp);
        return 0;
    }
    static const char *const hdr[] = {"name", "instances", "stateful", "state",
                                      "exposed"};
    struct table *t = table_new(5, hdr);
    size_t i;
    json_t *svc;
    json_array_foreach(list, i, svc)
    {
        char *name = service_label(svc);
        char *inst = instances_text(svc);
        char *ports = ports_text(json_object_get(svc, "ports"));
        const char *state = cp_json_str(svc, "state");
        const char *row[] = {
            name, inst, cp_json_bool(svc, "stateful", false) ? "yes" : "no",
            state != NULL ? state : "-", *ports != '\0' ? ports : "-"};
        table_add(t, row);
        cp_free(ports);
        cp_free(inst);
        cp_free(name);
    }
    table_print(t, stdout);
    table_free(t);
    json_decref(resp);
    return 0;
}

static void print_val(const char *indent, const char *k, const json_t *v)
{
    char *s = v == NULL || json_is_null(v) ? cp_strdup("-") : output_cell(v);
    printf("%s%s: %s\n", indent, k, *s != '\0' ? s : "-");
    cp_free(s);
}

static void print_list(const char *indent, const char *k, const json_t *arr)
{
    if (json_array_size(arr) == 0)
        return;
    printf("%s%s:\n", indent, k);
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        char *s = output_cell(v);
        printf("%s  - %s\n", indent, s);
        cp_free(s);
    }
}

static void print_object(const char *indent, const char *k, json_t *o)
{
    if (!json_is_object(o) || json_object_size(o) == 0)
        return;
    printf("%s%s:\n", indent, k);
    char *sub = cp_asprintf("%s  ", indent);
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v)
    {
        print_val(sub, key, v);
    }
    cp_free(sub);
}

static void print_service(const json_t *svc)
{
    const char *id = cp_json_str(svc, "id");
    printf("%s:\n", id != NULL ? id : "");
    print_val("  ", "created", json_object_get(svc, "created_at"));
    print_val("  ", "updated", json_object_get(svc, "updated_at"));
    print_val("  ", "stack",
              json_object_get(json_object_get(svc, "stack"), "name"));
    print_val("  ", "state", json_object_get(svc, "state"));
    print_val("  ", "image", json_object_get(svc, "image"));
    print_val("  ", "revision", json_object_get(svc, "revision"));
    print_val("  ", "stack revision", json_object_get(svc, "stack_revision"));
    print_val("  ", "dns", json_object_get(svc, "dns"));
    print_val("  ", "stateful", json_object_get(svc, "stateful"));
    print_val("  ", "scaling", json_object_get(svc, "instances"));
    print_val("  ", "strategy", json_object_get(svc, "strategy"));
    print_object("  ", "deploy_opts", json_object_get(svc, "deploy_opts"));
    print_val("  ", "cmd", json_object_get(svc, "cmd"));
    print_val("  ", "entrypoint", json_object_get(svc, "entrypoint"));
    print_val("  ", "user", json_object_get(svc, "user"));
    print_val("  ", "net", json_object_get(svc, "net"));
    print_list("  ", "affinity", json_object_get(svc, "affinity"));
    print_list("  ", "env", json_object_get(svc, "env"));
    const json_t *secrets = json_object_get(svc, "secrets");
    if (json_array_size(secrets) > 0) {
        printf("  secrets:\n");
        size_t i;
        json_t *v;
        json_array_foreach(secrets, i, v)
        {
            const char *sec = cp_json_str(v, "secret");
            const char *name = cp_json_str(v, "name");
            const char *type = cp_json_str(v, "type");
            printf("    - secret: %s\n      name: %s\n      type: %s\n",
                   sec != NULL ? sec : "-", name != NULL ? name : "-",
                   type != NULL ? type : "env");
        }
    }
    const json_t *ports = json_object_get(svc, "ports");
    if (json_array_size(ports) > 0) {
        char *p = ports_text(ports);
        printf("  ports: %s\n", p);
        cp_free(p);
    }
    print_list("  ", "volumes", json_object_get(svc, "volumes"));
    print_list("  ", "volumes_from", json_object_get(svc, "volumes_from"));
    const json_t *links = json_object_get(svc, "links");
    if (json_array_size(links) > 0) {
        printf("  links:\n");
        size_t i;
        json_t *v;
        json_array_foreach(links, i, v)
        {
            const char *name = cp_json_str(v, "name");
            const char *alias = cp_json_str(v, "alias");
            printf("    - %s:%s\n", name != NULL ? name : "-",
                   alias != NULL ? alias : "-");
        }
    }
    print_list("  ", "cap_add", json_object_get(svc, "cap_add"));
    print_list("  ", "cap_drop", json_object_get(svc, "cap_drop"));
    print_val("  ", "log_driver", json_object_get(svc, "log_driver"));
    print_object("  ", "log_opts", json_object_get(svc, "log_opts"));
    print_val("  ", "cpus", json_object_get(svc, "cpus"));
    print_val("  ", "cpu_shares", json_object_get(svc, "cpu_shares"));
    print_val("  ", "memory", json_object_get(svc, "memory"));
    print_val("  ", "memory_swap", json_object_get(svc, "memory_swap"));
    print_val("  ", "shm_size", json_object_get(svc, "shm_size"));
    print_val("  ", "pid", json_object_get(svc, "pid"));
    print_val("  ", "privileged", json_object_get(svc, "privileged"));
    print_val("  ", "read_only", json_object_get(svc, "read_only"));
    print_val("  ", "stop_signal", json_object_get(svc, "stop_signal"));
    print_val("  ", "stop_grace_period",
              json_object_get(svc, "stop_grace_period"));
    print_object("  ", "health_check", json_object_get(svc, "health_check"));
    print_object("  ", "health_status", json_object_get(svc, "health_status"));
}

static void print_containers(const json_t *containers)
{
    printf("  instances:\n");
    if (json_array_size(containers) == 0) {
        printf("    -\n");
        return;
    }
    size_t i;
    json_t *ct;
    json_array_foreach(containers, i, ct)
    {
        const char *name = cp_json_str(ct, "name");
        const json_t *node = json_object_get(ct, "node");
        printf("    %s:\n", name != NULL ? name : "-");
        print_val("      ", "rev", json_object_get(ct, "deploy_rev"));
        print_val("      ", "service_rev", json_object_get(ct, "service_rev"));
        print_val("      ", "node", json_object_get(node, "name"));
        print_val("      ", "dns", json_object_get(ct, "hostname"));
        print_val("      ", "ip", json_object_get(ct, "ip_address"));
        print_val("      ", "public ip", json_object_get(node, "public_ip"));
        print_val("      ", "status", json_object_get(ct, "status"));
        const json_t *health = json_object_get(ct, "health_status");
        if (json_is_object(health))
            print_val("      ", "health", json_object_get(health, "status"));
        const json_t *state = json_object_get(ct, "state");
        if (json_is_object(state) && cp_json_has(state, "exit_code"))
            print_val("      ", "exit code",
                      json_object_get(state, "exit_code"));
    }
}

static int run_show(struct cli *cli, const struct args *a)
{
    struct client *c = cli_connect(cli);
    struct svc s = {0};
    json_t *svc = NULL, *cts = NULL;
    int rc = 1;
    if (c == NULL)
        goto out;
    rc = svc_parse(cli, a->pos[0], &s);
    if (rc != 0)
        goto out;
    rc = 1;
    svc = svc_call(cli, c, "GET", &s, "", NULL, "show");
    if (svc == NULL)
        goto out;
    if (cli->is_json) {
        output_json(svc, stdout);
        rc = 0;
        goto out;
    }
    cts = svc_call(cli, c, "GET", &s, "/containers", NULL,
                   "list the containers of");
    if (cts == NULL)
        goto out;
    print_service(svc);
    print_containers(list_of(cts, "containers"));
    rc = 0;
out:
    json_decref(cts);
    json_decref(svc);
    svc_release(&s);
    client_free(c);
    return rc;
}

/* ==== create / update / remove ==== */

static int run_create(struct cli *cli, const struct args *a)
{
    char *grid = NULL, *stack = NULL, *name = NULL;
    struct client *c = NULL;
    json_t *body = json_object(), *r = NULL;
    char why[160];
    int rc = 2;
    if (cmd_service_ref(a->pos[0], &grid, &stack, &name, why, sizeof(why)) !=
        0) {
        cli_usage(cli, "%s", why);
        goto out;
    }
    cp_json_set_str(body, "name", name);
    cp_json_set_str(body, "image", a->pos[1]);
    if (strcmp(stack, "null") != 0)
        cp_json_set_str(body, "stack", stack);
    if (build_spec(cli, a, body) != 0)
        goto out;
    rc = 1;
    c = cli_connect(cli);
    if (c == NULL)
        goto out;
    const char *g = grid != NULL ? grid : cli_grid(cli);
    if (g == NULL)
        goto out;
    char *eg = client_escape(g);
    char *path = cp_asprintf("/v1/grids/%s/services", eg);
    char *what = cp_asprintf("cannot create service %s", a->pos[0]);
    r = call(cli, c, "POST", path, body, what);
    cp_free(what);
    cp_free(path);
    cp_free(eg);
    if (r == NULL)
        goto out;
    if (cli->is_json)
        output_json(r, stdout);
    else
        printf("Created service %s\n", a->pos[0]);
    rc = 0;
out:
    json_decref(r);
    client_free(c);
    json_decref(body);
    cp_free(name);
    cp_free(stack);
    cp_free(grid);
    return rc;
}

static int run_update(struct cli *cli, const struct args *a)
{
    json_t *body = json_object(), *r = NULL;
    struct client *c = NULL;
    struct svc s = {0};
    int rc = build_spec(cli, a, body);
    if (rc != 0)
        goto out;
    if (args_has(a, "image"))
        cp_json_set_str(body, "image", args_get(a, "image"));
    if (json_object_size(body) == 0) {
        rc = cli_usage(cli, "nothing to update");
        goto out;
    }
    rc = 1;
    c = cli_connect(cli);
    if (c == NULL)
        goto out;
    rc = svc_parse(cli, a->pos[0], &s);
    if (rc != 0)
        goto out;
    rc = 1;
    r = svc_call(cli, c, "PUT", &s, "", body, "update");
    if (r == NULL)
        goto out;
    if (cli->is_json)
        output_json(r, stdout);
    else
        printf("Updated service %s\n", s.label);
    rc = 0;
out:
    svc_release(&s);
    json_decref(r);
    client_free(c);
    json_decref(body);
    return rc;
}

/* Runs one call on the service and prints done when it succeeds. */
static int simple_action(struct cli *cli, const struct args *a,
                         const char *method, const char *suffix,
                         const json_t *body, const char *verb, const char *done)
{
    struct client *c = cli_connect(cli);
    struct svc s = {0};
    int rc = 1;
    if (c == NULL)
        goto out;
    rc = svc_parse(cli, a->pos[0], &s);
    if (rc != 0)
        goto out;
    rc = 1;
    json_t *r = svc_call(cli, c, method, &s, suffix, body, verb);
    if (r == NULL)
        goto out;
    json_decref(r);
    printf("%s service %s\n", done, s.label);
    rc = 0;
out:
    svc_release(&s);
    client_free(c);
    return rc;
}

static int run_start(struct cli *cli, const struct args *a)
{
    return simple_action(cli, a, "POST", "/start", NULL, "start", "Started");
}

static int run_stop(struct cli *cli, const struct args *a)
{
    return simple_action(cli, a, "POST", "/stop", NULL, "stop", "Stopped");
}

static int run_restart(struct cli *cli, const struct args *a)
{
    return simple_action(cli, a, "POST", "/restart", NULL, "restart",
                         "Restarted");
}

static int run_rm(struct cli *cli, const struct args *a)
{
    char *q = cp_asprintf("Remove service %s?", a->pos[0]);
    char *what = cp_asprintf("cannot remove service %s", a->pos[0]);
    int rc = confirm(cli, a, q, what);
    if (rc == 0)
        rc = simple_action(cli, a, "DELETE", "", NULL, "remove", "Removed");
    cp_free(what);
    cp_free(q);
    return rc;
}

/* ==== containers / instances ==== */

/* Writes one table row of a list item; cells it allocates go in owned
 * (at most 4), freed by the caller. */
typedef void row_fn(const json_t *item, const char **row, char **owned);

/* GET <service><suffix>, then prints the array under key: as JSON with
 * -o json, else as a table with the given header and rows. */
static int list_of_service(struct cli *cli, const struct args *a,
                           const char *suffix, const char *key,
                           const char *doing, const char *const *hdr,
                           size_t ncols, row_fn *fill)
{
    struct client *c = cli_connect(cli);
    struct svc s = {0};
    json_t *r = NULL;
    int rc = 1;
    if (c == NULL)
        goto out;
    rc = svc_parse(cli, a->pos[0], &s);
    if (rc != 0)
        goto out;
    rc = 1;
    r = svc_call(cli, c, "GET", &s, suffix, NULL, doing);
    if (r == NULL)
        goto out;
    json_t *list = list_of(r, key);
    rc = 0;
    if (cli->is_json) {
        output_list(list);
        goto out;
    }
    struct table *t = table_new(ncols, hdr);
    size_t i;
    json_t *item;
    json_array_foreach(list, i, item)
    {
        const char *row[8] = {0};
        char *owned[4] = {0};
        fill(item, row, owned);
        table_add(t, row);
        for (size_t k = 0; k < CP_ARRAY_LEN(owned); k++)
            cp_free(owned[k]);
    }
    table_print(t, stdout);
    table_free(t);
out:
    json_decref(r);
    svc_release(&s);
    client_free(c);
    return rc;
}

static void container_row(const json_t *ct, const char **row, char **owned)
{
    owned[0] = output_cell(json_object_get(ct, "instance_number"));
    row[0] = cp_json_str(ct, "name");
    row[1] = owned[0];
    row[2] = node_name(json_object_get(ct, "node"));
    row[3] = cp_json_str(ct, "status");
    row[4] = cp_json_str(ct, "ip_address");
    row[5] = cp_json_str(ct, "image");
}

static int run_containers(struct cli *cli, const struct args *a)
{
    static const char *const hdr[] = {"name",   "instance", "node",
                                      "status", "ip",       "image"};
    return list_of_service(cli, a, "/containers", "containers",
                           "list the containers of", hdr, CP_ARRAY_LEN(hdr),
                           container_row);
}

static void instance_row(const json_t *in, const char **row, char **owned)
{
    const json_t *node = json_object_get(in, "node");
    if (node == NULL)
        node = json_object_get(in, "host_node");
    owned[0] = output_cell(json_object_get(in, "instance_number"));
    owned[1] = output_cell(json_object_get(in, "rev"));
    row[0] = owned[0];
    row[1] = node_name(node);
    row[2] = cp_json_str(in, "desired_state");
    row[3] = cp_json_str(in, "state");
    row[4] = owned[1];
    row[5] = cp_json_str(in, "error");
}

static int run_instances(struct cli *cli, const struct args *a)
{
    static const char *const hdr[] = {"instance", "node", "desired",
                                      "state",    "rev",  "error"};
    return list_of_service(cli, a, "/instances", "instances",
                           "list the instances of", hdr, CP_ARRAY_LEN(hdr),
                           instance_row);
}

/* ==== env ==== */

static int run_env_ls(struct cli *cli, const struct args *a)
{
    struct client *c = cli_connect(cli);
    struct svc s = {0};
    json_t *r = NULL;
    int rc = 1;
    if (c == NULL)
        goto out;
    rc = svc_parse(cli, a->pos[0], &s);
    if (rc != 0)
        goto out;
    rc = 1;
    r = svc_call(cli, c, "GET", &s, "", NULL, "show");
    if (r == NULL)
        goto out;
    json_t *env = json_object_get(r, "env");
    if (cli->is_json) {
        output_list(json_is_array(env) ? env : NULL);
    } else {
        size_t i;
        json_t *v;
        json_array_foreach(env, i, v)
        {
            if (json_is_string(v))
                printf("%s\n", json_string_value(v));
        }
    }
    rc = 0;
out:
    json_decref(r);
    svc_release(&s);
    client_free(c);
    return rc;
}

static int run_env_add(struct cli *cli, const struct args *a)
{
    const char *env = a->pos[1];
    if (strchr(env, '=') == NULL || *env == '=')
        return cli_usage(cli, "invalid env '%s': use KEY=VALUE", env);
    json_t *body = json_pack("{s:s}", "env", env);
    int rc = simple_action(cli, a, "POST", "/envs", body, "add env to",
                           "Added env to");
    json_decref(body);
    return rc;
}

static int run_env_rm(struct cli *cli, const struct args *a)
{
    const char *key = a->pos[1];
    if (*key == '\0' || strchr(key, '=') != NULL)
        return cli_usage(cli, "invalid env key '%s'", key);
    char *k = client_escape(key);
    char *suffix = cp_asprintf("/envs/%s", k);
    int rc = simple_action(cli, a, "DELETE", suffix, NULL, "remove env from",
                           "Removed env from");
    cp_free(suffix);
    cp_free(k);
    return rc;
}

/* ==== logs and events ==== */

/* The state of one logs run: what has been printed so far. */
struct follow {
    bool is_events;
    char *last_id; /* id of the last item printed; NULL before any */
    bool has_data; /* a byte arrived on the current connection */
    long status;   /* HTTP status of the current connection */
    CURL *h;
    struct cmd_jstream *js;
    struct cp_buf errbody; /* body of a non-2xx answer */
    int feed_rc;
};

static void print_item(struct follow *f, const json_t *item)
{
    const char *ts = cp_json_str(item, "created_at");
    if (f->is_events) {
        const char *type = cp_json_str(item, "type");
        const char *msg = cp_json_str(item, "message");
        printf("%s %s: %s\n", ts != NULL ? ts : "-", type != NULL ? type : "-",
               msg != NULL ? msg : "");
    } else {
        const char *name = cp_json_str(item, "name");
        const char *data = cp_json_str(item, "data");
        size_t len = data != NULL ? strlen(data) : 0;
        while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r'))
            len--;
        printf("%s [%s]: %.*s\n", ts != NULL ? ts : "-",
               name != NULL ? name : "-", (int)len, data != NULL ? data : "");
    }
    const char *id = cp_json_str(item, "id");
    if (id != NULL) {
        cp_free(f->last_id);
        f->last_id = cp_strdup(id);
    }
}

static int on_item(void *ud, json_t *obj)
{
    struct follow *f = ud;
    if (!json_is_object(obj))
        return 0;
    print_item(f, obj);
    fflush(stdout);
    return 0;
}

static size_t on_stream(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct follow *f = ud;
    size_t n = size * nmemb;
    if (f->status == 0)
        curl_easy_getinfo(f->h, CURLINFO_RESPONSE_CODE, &f->status);
    if (f->status < 200 || f->status >= 300) {
        /* Keep only what fits: the error text is a short JSON body. */
        cp_buf_append(&f->errbody, ptr, n);
        return n;
    }
    if (n > 0)
        f->has_data = true;
    f->feed_rc = cmd_jstream_feed(f->js, ptr, n, on_item, f);
    return f->feed_rc == 0 ? n : 0;
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow,
                       curl_off_t ultotal, curl_off_t ulnow)
{
    CP_UNUSED(ud);
    CP_UNUSED(dltotal);
    CP_UNUSED(dlnow);
    CP_UNUSED(ultotal);
    CP_UNUSED(ulnow);
    return is_interrupted ? 1 : 0;
}

/* Adds ~/.kontena/certs/<host>.pem as the CA when it exists, as
 * client.c does for ordinary requests. */
static void set_ca(CURL *h, const char *url)
{
    const char *home = getenv("HOME");
    CURLU *u = curl_url();
    char *host = NULL;
    if (home == NULL || u == NULL)
        goto out;
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK)
        goto out;
    if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
        goto out;
    char *pem = cp_asprintf("%s/.kontena/certs/%s.pem", home, host);
    if (access(pem, R_OK) == 0)
        curl_easy_setopt(h, CURLOPT_CAINFO, pem);
    cp_free(pem);
out:
    curl_free(host);
    curl_url_cleanup(u);
}

/* One streaming connection. Returns 0 when it ended (EOF or a network
 * failure: reconnect), 1 after printing a final error, or CP_EAGAIN for
 * a server error worth retrying. */
static int stream_once(struct cli *cli, struct follow *f, const char *url,
                       const char *token, const char *what)
{
    char errbuf[CURL_ERROR_SIZE] = "";
    struct curl_slist *hdrs = NULL;
    char *ua = cp_asprintf("User-Agent: kontena-cli/%s", KONTENA_VERSION);
    char *auth =
        token != NULL ? cp_asprintf("Authorization: Bearer %s", token) : NULL;
    int rc = 0;
    f->h = curl_easy_init();
    if (f->h == NULL) {
        rc = cli_fail(cli, "%s: cannot initialise libcurl", what);
        goto out;
    }
    f->status = 0;
    f->has_data = false;
    f->feed_rc = 0;
    f->errbody.len = 0;
    cmd_jstream_reset(f->js);
    hdrs = curl_slist_append(hdrs, ua);
    hdrs = curl_slist_append(hdrs, "Accept: application/json");
    if (auth != NULL)
        hdrs = curl_slist_append(hdrs, auth);
    curl_easy_setopt(f->h, CURLOPT_URL, url);
    curl_easy_setopt(f->h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(f->h, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(f->h, CURLOPT_WRITEFUNCTION, on_stream);
    curl_easy_setopt(f->h, CURLOPT_WRITEDATA, f);
    curl_easy_setopt(f->h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(f->h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(f->h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(f->h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(f->h, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(f->h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(f->h, CURLOPT_LOW_SPEED_TIME, SVC_STREAM_IDLE_S);
    curl_easy_setopt(f->h, CURLOPT_PROTOCOLS_STR, "http,https");
    const char *ignore = getenv("SSL_IGNORE_ERRORS");
    if (ignore != NULL && strcmp(ignore, "true") == 0) {
        curl_easy_setopt(f->h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(f->h, CURLOPT_SSL_VERIFYHOST, 0L);
    } else {
        set_ca(f->h, url);
    }
    CURLcode cc = curl_easy_perform(f->h);
    if (is_interrupted)
        goto out;
    if (f->feed_rc != 0) {
        rc = cli_fail(cli, "%s: %s", what, cmd_jstream_error(f->js));
        goto out;
    }
    if (f->status >= 300 || (f->status > 0 && f->status < 200)) {
        if (f->status >= 500) {
            rc = CP_EAGAIN;
            goto out;
        }
        json_t *j = f->errbody.len > 0 ? cp_json_parse(f->errbody.data,
                                                       f->errbody.len, NULL, 0)
                                       : NULL;
        char *text = client_error_text(j);
        rc = cli_fail(cli, "%s: %s", what,
                      text != NULL ? text : "master answered an error");
        cp_free(text);
        json_decref(j);
        goto out;
    }
    if (cc != CURLE_OK && !f->has_data)
        rc = CP_EAGAIN;
out:
    curl_easy_cleanup(f->h);
    f->h = NULL;
    curl_slist_free_all(hdrs);
    cp_free(auth);
    cp_free(ua);
    return rc;
}

static char *join_url(const char *base, const char *path)
{
    size_t n = strlen(base);
    while (n > 0 && base[n - 1] == '/')
        n--;
    return cp_asprintf("%.*s%s", (int)n, base, path);
}

/* Follows path until SIGINT, reconnecting after EOF or an error with a
 * backoff, from the last id printed. */
static int follow_stream(struct cli *cli, struct follow *f, const char *path,
                         const char *query, const char *what)
{
    struct config_server *srv = config_current(cli->cfg);
    long backoff = SVC_BACKOFF_MIN_MS;
    bool is_warned = false; /* said so once for this outage */
    int rc = 0;
    while (!is_interrupted) {
        struct cp_buf q;
        cp_buf_init(&q, 64 * 1024);
        cp_buf_printf(&q, "%s?follow=1", path);
        if (f->last_id != NULL) {
            char *id = client_escape(f->last_id);
            cp_buf_printf(&q, "&from=%s", id);
            cp_free(id);
        } else if (*query != '\0') {
            cp_buf_printf(&q, "&%s", query);
        }
        char *url = join_url(srv->url, q.data);
        cp_buf_release(&q);
        rc = stream_once(cli, f, url, config_token(cli->cfg, srv), what);
        cp_free(url);
        if (rc == 1)
            break;
        if (f->has_data) {
            backoff = SVC_BACKOFF_MIN_MS;
            is_warned = false;
        }
        if (rc == CP_EAGAIN && !is_warned && !is_interrupted) {
            fprintf(stderr, "warning: %s: connection lost; reconnecting\n",
                    what);
            is_warned = true;
        }
        rc = 0;
        if (!nap(backoff))
            break;
        backoff =
            backoff * 2 > SVC_BACKOFF_MAX_MS ? SVC_BACKOFF_MAX_MS : backoff * 2;
    }
    return rc;
}

int cmd_service_logs_run(struct cli *cli, struct client *c, const char *path,
                         const char *query, bool is_follow, bool is_events,
                         const char *what)
{
    struct follow f = {0};
    f.is_events = is_events;
    int rc = 1;
    /* The backlog through the ordinary client: it refreshes the token and
     * reports errors the usual way. */
    char *first =
        *query != '\0' ? cp_asprintf("%s?%s", path, query) : cp_strdup(path);
    json_t *r = call(cli, c, "GET", first, NULL, what);
    cp_free(first);
    if (r == NULL)
        return 1;
    size_t i;
    json_t *item;
    json_array_foreach(list_of(r, "logs"), i, item)
    {
        if (json_is_object(item))
            print_item(&f, item);
    }
    json_decref(r);
    fflush(stdout);
    if (!is_follow) {
        rc = 0;
        goto out;
    }
    f.js = cmd_jstream_new(SVC_STREAM_MAX_OBJECT);
    cp_buf_init(&f.errbody, 64 * 1024);
    struct sigaction sa = {0}, old;
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    is_interrupted = 0;
    sigaction(SIGINT, &sa, &old);
    rc = follow_stream(cli, &f, path, query, what);
    sigaction(SIGINT, &old, NULL);
out:
    cp_buf_release(&f.errbody);
    cmd_jstream_free(f.js);
    cp_free(f.last_id);
    return rc;
}

/* "limit=N&since=T" from --tail and --since; NULL after a usage error. */
static char *log_query(struct cli *cli, const struct args *a)
{
    struct cp_buf q;
    cp_buf_init(&q, 64 * 1024);
    if (args_has(a, "tail")) {
        long long n;
        if (parse_int_opt(cli, a, "tail", 1, 10000, &n) != 0) {
            cp_buf_release(&q);
            return NULL;
        }
        cp_buf_printf(&q, "limit=%lld", n);
    }
    if (args_has(a, "since")) {
        char *s = client_escape(args_get(a, "since"));
        cp_buf_printf(&q, "%ssince=%s", q.len > 0 ? "&" : "", s);
        cp_free(s);
    }
    char *out = cp_strdup(q.data != NULL ? q.data : "");
    cp_buf_release(&q);
    return out;
}

static int logs_or_events(struct cli *cli, const struct args *a, bool is_events)
{
    char *query = log_query(cli, a);
    if (query == NULL)
        return 2;
    struct client *c = cli_connect(cli);
    struct svc s = {0};
    char *path = NULL, *what = NULL;
    int rc = 1;
    if (c == NULL)
        goto out;
    rc = svc_parse(cli, a->pos[0], &s);
    if (rc != 0)
        goto out;
    path = svc_path(&s, is_events ? "/event_logs" : "/container_logs");
    what = cp_asprintf("cannot get the %s of service %s",
                       is_events ? "events" : "logs", s.label);
    rc = cmd_service_logs_run(cli, c, path, query, args_has(a, "follow"),
                              is_events, what);
out:
    cp_free(what);
    cp_free(path);
    svc_release(&s);
    client_free(c);
    cp_free(query);
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

/* ==== tables ==== */

/* The service spec flags shared by create and update. */
#define SVC_SPEC_OPTS                                                          \
    {"ports", 'p', ARGS_MULTI, "PORT",                                         \
     "publish a port: [IP:]NODE_PORT:CONTAINER_PORT[/udp]"},                   \
        {"env", 'e', ARGS_MULTI, "KEY=VALUE", "environment variable"},         \
        {"link", 'l', ARGS_MULTI, "SERVICE[:ALIAS]", "link to a service"},     \
        {"volume", 'v', ARGS_MULTI, "VOLUME", "volume or bind mount"},         \
        {"volumes-from", 0, ARGS_MULTI, "CONTAINER",                           \
         "mount the volumes of a container"},                                  \
        {"affinity", 'a', ARGS_MULTI, "RULE", "scheduling rule"},              \
        {"cpus", 0, ARGS_VALUE, "N", "cpus the service may use"},              \
        {"cpu-shares", 'c', ARGS_VALUE, "N", "relative cpu weight 0-1024"},    \
        {"memory", 'm', ARGS_VALUE, "SIZE", "memory limit (512m, 1g)"},        \
        {"memory-swap", 0, ARGS_VALUE, "SIZE", "memory plus swap limit"},      \
        {"shm-size", 0, ARGS_VALUE, "SIZE", "size of /dev/shm"},               \
        {"cmd", 0, ARGS_VALUE, "CMD", "command, split on spaces"},             \
        {"entrypoint", 0, ARGS_VALUE, "ENTRYPOINT", "image entrypoint"},       \
        {"instances", 0, ARGS_VALUE, "N", "number of instances"},              \
        {"user", 'u', ARGS_VALUE, "USER", "user to run as"},                   \
        {"stateful", 0, ARGS_FLAG, NULL, "keep instances on their nodes"},     \
        {"privileged", 0, ARGS_FLAG, NULL, "give extended privileges"},        \
        {"cap-add", 0, ARGS_MULTI, "CAP", "add a linux capability"},           \
        {"cap-drop", 0, ARGS_MULTI, "CAP", "drop a linux capability"},         \
        {"net", 0, ARGS_VALUE, "NET", "bridge, host or container:NAME"},       \
        {"log-driver", 0, ARGS_VALUE, "DRIVER", "container log driver"},       \
        {"log-opt", 0, ARGS_MULTI, "KEY=VALUE", "log driver option"},          \
        {"deploy-strategy", 0, ARGS_VALUE, "ha|daemon|random",                 \
         "scheduling strategy"},                                               \
        {"wait-for-port", 0, ARGS_VALUE, "PORT",                               \
         "wait for this port before the next instance"},                       \
        {"min-health", 0, ARGS_VALUE, "0-1",                                   \
         "share of instances that stays up while deploying"},                  \
        {"deploy-interval", 0, ARGS_VALUE, "DURATION",                         \
         "redeploy periodically (90s, 5min, 2h, 1d)"},                         \
        {"pid", 0, ARGS_VALUE, "host", "pid namespace"},                       \
        {"secret", 0, ARGS_MULTI, "SECRET:NAME:env", "expose a vault secret"}, \
        {"health-check-uri", 0, ARGS_VALUE, "URI", "health check uri"},        \
        {"health-check-port", 0, ARGS_VALUE, "PORT", "health check port"},     \
        {"health-check-protocol", 0, ARGS_VALUE, "http|tcp",                   \
         "health check protocol"},                                             \
        {"health-check-timeout", 0, ARGS_VALUE, "SECONDS",                     \
         "health check timeout"},                                              \
        {"health-check-interval", 0, ARGS_VALUE, "SECONDS",                    \
         "time between health checks"},                                        \
        {"health-check-initial-delay", 0, ARGS_VALUE, "SECONDS",               \
         "time before the first health check"},                                \
        {"stop-signal", 0, ARGS_VALUE, "SIGNAL", "signal to stop with"},       \
        {"stop-timeout", 0, ARGS_VALUE, "DURATION",                            \
         "time to wait before killing"},                                       \
        {"read-only", 0, ARGS_FLAG, NULL, "read-only root filesystem"},        \
        CLI_OPT_OUTPUT

#define SVC_OPT_WAIT                                                           \
    {"no-wait", 0, ARGS_FLAG, NULL, "do not wait for the deploy"},             \
        {"timeout", 0, ARGS_VALUE, "SECONDS",                                  \
         "how long to wait for the deploy (default 600)"},                     \
        CLI_OPT_OUTPUT

static const struct args_opt create_opts[] = {SVC_SPEC_OPTS, {0}};
static const struct args_opt update_opts[] = {
    {"image", 0, ARGS_VALUE, "IMAGE", "new image"}, SVC_SPEC_OPTS, {0}};
static const struct args_opt ls_opts[] = {
    {"stack", 0, ARGS_VALUE, "STACK", "only the services of this stack"},
    CLI_OPT_OUTPUT,
    {0}};
static const struct args_opt show_opts[] = {CLI_OPT_OUTPUT, {0}};
static const struct args_opt no_opts[] = {{0}};
static const struct args_opt deploy_opts[] = {
    {"force", 0, ARGS_FLAG, NULL, "redeploy even when nothing changed"},
    SVC_OPT_WAIT,
    {0}};
static const struct args_opt scale_opts[] = {SVC_OPT_WAIT, {0}};
static const struct args_opt rm_opts[] = {
    {"force", 'f', ARGS_FLAG, NULL, "do not ask for confirmation"}, {0}};
static const struct args_opt logs_opts[] = {
    {"follow", 'f', ARGS_FLAG, NULL, "keep printing new lines"},
    {"tail", 't', ARGS_VALUE, "N", "how many lines to show first"},
    {"since", 0, ARGS_VALUE, "TIME", "only lines after this time"},
    {0}};

static const struct cli_cmd cmd_service_env[] = {
    {"list", "ls", "SERVICE [options]", "list the env of a service", show_opts,
     1, 1, run_env_ls, NULL},
    {"add", NULL, "SERVICE KEY=VALUE", "add an env variable (no redeploy)",
     no_opts, 2, 2, run_env_add, NULL},
    {"remove", "rm", "SERVICE KEY", "remove an env variable (no redeploy)",
     no_opts, 2, 2, run_env_rm, NULL},
    {0}};

const struct cli_cmd cmd_service[] = {
    {"list", "ls", "[options]", "list the services of the grid", ls_opts, 0, 0,
     run_ls, NULL},
    {"show", NULL, "SERVICE [options]", "show a service and its instances",
     show_opts, 1, 1, run_show, NULL},
    {"create", NULL, "NAME IMAGE [options]", "create a service", create_opts, 2,
     2, run_create, NULL},
    {"update", NULL, "SERVICE [options]", "change a service", update_opts, 1, 1,
     run_update, NULL},
    {"deploy", NULL, "SERVICE [options]", "deploy a service", deploy_opts, 1, 1,
     run_deploy, NULL},
    {"scale", NULL, "SERVICE INSTANCES [options]",
     "set the number of instances and deploy", scale_opts, 2, 2, run_scale,
     NULL},
    {"start", NULL, "SERVICE", "start the instances of a service", no_opts, 1,
     1, run_start, NULL},
    {"stop", NULL, "SERVICE", "stop the instances of a service", no_opts, 1, 1,
     run_stop, NULL},
    {"restart", NULL, "SERVICE", "restart the instances of a service", no_opts,
     1, 1, run_restart, NULL},
    {"remove", "rm", "SERVICE [options]", "remove a service", rm_opts, 1, 1,
     run_rm, NULL},
    {"containers", NULL, "SERVICE [options]",
     "list the containers of a service", show_opts, 1, 1, run_containers, NULL},
    {"instances", NULL, "SERVICE [options]", "list the instances of a service",
     show_opts, 1, 1, run_instances, NULL},
    {"logs", NULL, "SERVICE [options]", "show the logs of a service", logs_opts,
     1, 1, run_logs, NULL},
    {"events", NULL, "SERVICE [options]", "show the events of a service",
     logs_opts, 1, 1, run_events, NULL},
    {"env", NULL, "<command>", "manage the env of a service", NULL, 0, 0, NULL,
     cmd_service_env},
    {0}};
