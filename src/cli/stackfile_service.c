/* The services of a stack file: each compose-style key mapped to the
 * fields of POST /v1/grids/G/services (spec 3.2, 5.5), extends (same
 * file or another one), env files, and the checks across services: links
 * to services that exist, no link cycles.
 * SPDX-License-Identifier: Apache-2.0 */
#include "stackfile_int.h"
#include "cli.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/util.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define SVC_MAX_INSTANCES 10000
#define SVC_MAX_SERVICES 1000

/* Every field the master's service model knows (service_model.c); a
 * field the file leaves out is sent as null so that an upgrade resets it
 * to the default instead of keeping an old value. Checklist: a new
 * service field goes here and, when the file can set it, in keys[]. */
static const char *const api_fields[] = {"instances",    "cmd",
                                         "entrypoint",   "env",
                                         "secrets",      "certificates",
                                         "ports",        "volumes",
                                         "volumes_from", "links",
                                         "affinity",     "strategy",
                                         "stateful",     "cpus",
                                         "cpu_shares",   "memory",
                                         "memory_swap",  "shm_size",
                                         "user",         "privileged",
                                         "cap_add",      "cap_drop",
                                         "devices",      "net",
                                         "pid",          "log_driver",
                                         "log_opts",     "deploy_opts",
                                         "health_check", "hooks",
                                         "stop_signal",  "stop_grace_period",
                                         "read_only",    NULL};

/* ==== Small parsers ==== */

/* A duration: seconds as a number, or "1h30m", "90s", "5min", "1d",
 * "1.5s" (rounded to whole seconds). */
static bool parse_duration(const char *s, long long *out)
{
    if (*s == '\0')
        return false;
    long long plain;
    if (cp_parse_int(s, 0, 100LL * 365 * 86400, &plain) == 0) {
        *out = plain;
        return true;
    }
    double total = 0;
    const char *p = s;
    while (*p != '\0') {
        if (!isdigit((unsigned char)*p))
            return false;
        char *end = NULL;
        double n = strtod(p, &end);
        if (end == p || !isfinite(n))
            return false;
        double unit;
        if (strncmp(end, "min", 3) == 0) {
            unit = 60;
            end += 3;
        } else if (strncmp(end, "ms", 2) == 0) {
            unit = 0.001;
            end += 2;
        } else if (*end == 'd' || *end == 'h' || *end == 'm' || *end == 's') {
            unit = *end == 'd'   ? 86400
                   : *end == 'h' ? 3600
                   : *end == 'm' ? 60
                                 : 1;
            end++;
        } else {
            return false;
        }
        total += n * unit;
        if (total > 100.0 * 365 * 86400)
            return false;
        p = end;
    }
    *out = (long long)(total + 0.5);
    return true;
}

/* ==== Key handlers ==== */

struct svc_ctx {
    struct sf_ctx *c;
    const struct sf_doc *d;
    json_t *spec;
    json_t *env_file; /* lines read from env_file, merged after */
};

typedef void key_fn(struct svc_ctx *s, const struct sf_node *v,
                    const char *path, const char *field);

static void k_str(struct svc_ctx *s, const struct sf_node *v, const char *path,
                  const char *field)
{
    if (sf_is_null(v)) {
        json_object_set_new(s->spec, field, json_null());
        return;
    }
    const char *str = sf_str(s->c, v, path);
    if (str != NULL)
        json_object_set_new(s->spec, field, json_string(str));
}

static void k_net(struct svc_ctx *s, const struct sf_node *v, const char *path,
                  const char *field)
{
    const char *str = sf_str(s->c, v, path);
    if (str == NULL)
        return;
    if (strcmp(str, "bridge") != 0 && strcmp(str, "host") != 0 &&
        !(strncmp(str, "container:", 10) == 0 && str[10] != '\0')) {
        sf_err(s->c, v, path,
               "must be bridge, host or container:NAME, not "
               "'%s'",
               str);
        return;
    }
    json_object_set_new(s->spec, field, json_string(str));
}

static void k_instances(struct svc_ctx *s, const struct sf_node *v,
                        const char *path, const char *field)
{
    long long n;
    if (sf_int(s->c, v, path, 0, SVC_MAX_INSTANCES, &n) == 0)
        json_object_set_new(s->spec, field, json_integer(n));
}

static void k_cpu_shares(struct svc_ctx *s, const struct sf_node *v,
                         const char *path, const char *field)
{
    long long n;
    if (sf_int(s->c, v, path, 0, 1024, &n) == 0)
        json_object_set_new(s->spec, field, json_integer(n));
}

static void k_cpus(struct svc_ctx *s, const struct sf_node *v, const char *path,
                   const char *field)
{
    double d;
    if (sf_real(s->c, v, path, 0.001, 1024, &d) == 0)
        json_object_set_new(s->spec, field, json_real(d));
}

static void k_bool(struct svc_ctx *s, const struct sf_node *v, const char *path,
                   const char *field)
{
    bool b;
    if (sf_bool(s->c, v, path, &b) == 0)
        json_object_set_new(s->spec, field, json_boolean(b));
}

static void k_memory(struct svc_ctx *s, const struct sf_node *v,
                     const char *path, const char *field)
{
    const char *str = sf_str(s->c, v, path);
    long long n;
    char why[160];
    if (str == NULL)
        return;
    if (cmd_service_memory(str, &n, why, sizeof(why)) != 0) {
        sf_err(s->c, v, path, "%s", why);
        return;
    }
    json_object_set_new(s->spec, field, json_integer(n));
}

static void k_list(struct svc_ctx *s, const struct sf_node *v, const char *path,
                   const char *field)
{
    json_t *l = sf_str_list(s->c, v, path);
    if (l != NULL)
        json_object_set_new(s->spec, field, l);
}

static void k_cmd(struct svc_ctx *s, const struct sf_node *v, const char *path,
                  const char *field)
{
    if (sf_is_null(v)) {
        json_object_set_new(s->spec, field, json_null());
        return;
    }
    if (v->kind == SF_SEQ) {
        k_list(s, v, path, field);
        return;
    }
    const char *str = sf_str(s->c, v, path);
    if (str == NULL)
        return;
    char why[128];
    json_t *words = stackfile_shell_split(str, why, sizeof(why));
    if (words == NULL) {
        sf_err(s->c, v, path, "%s", why);
        return;
    }
    json_object_set_new(s->spec, field, words);
}

/* "KEY=value" with a non-empty key without spaces. */
static bool env_ok(const char *kv)
{
    const char *eq = strchr(kv, '=');
    if (eq == NULL || eq == kv)
        return false;
    for (const char *p = kv; p < eq; p++)
        if (isspace((unsigned char)*p))
            return false;
    return true;
}

/* Appends kv to env unless its key is there already. */
static void env_add(json_t *env, const char *kv)
{
    size_t klen = strcspn(kv, "=");
    size_t i;
    json_t *e;
    json_array_foreach(env, i, e)
    {
        const char *s = json_string_value(e);
        if (strncmp(s, kv, klen) == 0 && s[klen] == '=')
            return;
    }
    json_array_append_new(env, json_string(kv));
}

static void k_environment(struct svc_ctx *s, const struct sf_node *v,
                          const char *path, const char *field)
{
    json_t *env = json_array();
    if (v->kind == SF_MAP) {
        for (size_t i = 0; i < v->n; i++) {
            const char *k = v->keys[i]->text;
            const char *kp = sf_path(s->c, path, k);
            const struct sf_node *val = v->items[i];
            const char *str = sf_is_null(val) ? "" : sf_str(s->c, val, kp);
            if (str == NULL)
                continue;
            char *kv = cp_asprintf("%s=%s", k, str);
            if (!env_ok(kv))
                sf_err(s->c, v->keys[i], kp,
                       "an environment variable name has no '=' or spaces");
            else
                env_add(env, kv);
            cp_free(kv);
        }
    } else if (v->kind == SF_SEQ) {
        for (size_t i = 0; i < v->n; i++) {
            const char *ip = sf_path_i(s->c, path, i);
            const char *str = sf_str(s->c, v->items[i], ip);
            if (str == NULL)
                continue;
            if (!env_ok(str))
                sf_err(s->c, v->items[i], ip, "must be KEY=VALUE, not '%s'",
                       str);
            else
                env_add(env, str);
        }
    } else if (!sf_is_null(v)) {
        sf_err(s->c, v, path, "must be a map or a list of KEY=VALUE");
    }
    json_object_set_new(s->spec, field, env);
}

static void read_env_file(struct svc_ctx *s, const struct sf_node *v,
                          const char *path)
{
    const char *file = sf_str(s->c, v, path);
    if (file == NULL)
        return;
    const char *full = sf_join(s->c, s->d->dir, file);
    struct stat st;
    int src = stat(full, &st);
    if (src != 0 || !S_ISREG(st.st_mode)) {
        sf_err(s->c, v, path, "cannot read %s: %s", full,
               src != 0 ? strerror(errno) : "not a regular file");
        return;
    }
    FILE *f = fopen(full, "re");
    if (f == NULL) {
        sf_err(s->c, v, path, "cannot read %s: %s", full, strerror(errno));
        return;
    }
    char line[8192];
    int lineno = 0;
    size_t total = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        lineno++;
        total += strlen(line);
        if (total > STACKFILE_MAX_SIZE) {
            sf_err(s->c, v, path, "%s is bigger than %d bytes", full,
                   STACKFILE_MAX_SIZE);
            break;
        }
        size_t len = strlen(line);
        if (len == sizeof(line) - 1 && line[len - 1] != '\n') {
            sf_err_at(s->c, full, lineno, "", "line too long");
            break;
        }
        while (len > 0 && isspace((unsigned char)line[len - 1]))
            line[--len] = '\0';
        char *p = line;
        while (isspace((unsigned char)*p))
            p++;
        if (*p == '\0' || *p == '#')
            continue;
        if (!env_ok(p)) {
            sf_err_at(s->c, full, lineno, "", "must be KEY=VALUE");
            continue;
        }
        env_add(s->env_file, p);
    }
    fclose(f);
}

static void k_env_file(struct svc_ctx *s, const struct sf_node *v,
                       const char *path, const char *field)
{
    CP_UNUSED(field);
    if (v->kind == SF_SEQ) {
        for (size_t i = 0; i < v->n; i++)
            read_env_file(s, v->items[i], sf_path_i(s->c, path, i));
    } else if (!sf_is_null(v)) {
        read_env_file(s, v, path);
    }
}

static void k_ports(struct svc_ctx *s, const struct sf_node *v,
                    const char *path, const char *field)
{
    json_t *ports = json_array();
    if (v->kind != SF_SEQ && !sf_is_null(v))
        sf_err(s->c, v, path, "must be a list of \"NODE_PORT:PORT[/udp]\"");
    for (size_t i = 0; v->kind == SF_SEQ && i < v->n; i++) {
        const char *ip = sf_path_i(s->c, path, i);
        const char *str = sf_str(s->c, v->items[i], ip);
        json_t *p;
        char why[200];
        if (str == NULL)
            continue;
        if (cmd_service_port(str, &p, why, sizeof(why)) != 0)
            sf_err(s->c, v->items[i], ip, "%s", why);
        else
            json_array_append_new(ports, p);
    }
    json_object_set_new(s->spec, field, ports);
}

static void k_volumes(struct svc_ctx *s, const struct sf_node *v,
                      const char *path, const char *field)
{
    json_t *l = sf_str_list(s->c, v, path);
    if (l == NULL)
        return;
    json_t *out = json_array();
    size_t i;
    json_t *e;
    json_array_foreach(l, i, e)
    {
        const char *vol = json_string_value(e);
        const char *colon = strchr(vol, ':');
        const struct sf_node *at = v->items[i];
        const char *ip = sf_path_i(s->c, path, i);
        if (colon == NULL || vol[0] == '/') {
            json_array_append_new(out, json_string(vol));
            continue;
        }
        if (vol[0] == '.' || vol[0] == '~') {
            /* A bind mount relative to the stack file. */
            char dir[PATH_MAX];
            if (vol[0] == '~' || realpath(s->d->dir, dir) == NULL) {
                sf_err(s->c, at, ip,
                       "cannot make '%.*s' an absolute path; write the "
                       "host path in full",
                       (int)(colon - vol), vol);
                continue;
            }
            const char *rel = vol[1] == '/' ? vol + 2 : vol;
            char *abs = cp_asprintf("%s/%s", dir, rel);
            json_array_append_new(out, json_string(abs));
            cp_free(abs);
            continue;
        }
        char *name = cp_strndup(vol, (size_t)(colon - vol));
        if (sf_get(s->c->volumes, name) == NULL)
            sf_err(s->c, at, ip,
                   "volume '%s' is not in the top-level volumes (add it "
                   "there with external: true)",
                   name);
        cp_free(name);
        json_array_append_new(out, json_string(vol));
    }
    json_decref(l);
    json_object_set_new(s->spec, field, out);
}

/* The link array of the spec, created when absent (borrowed). */
static json_t *links_of(struct svc_ctx *s)
{
    json_t *l = json_object_get(s->spec, "links");
    if (!json_is_array(l)) {
        l = json_array();
        json_object_set_new(s->spec, "links", l);
    }
    return l;
}

/* Adds "svc", "svc:alias" or "stack/svc[:alias]"; the line and file stay
 * on the entry until the cross-service checks are done. */
static void add_link(struct svc_ctx *s, const struct sf_node *at,
                     const char *path, const char *str, bool has_alias)
{
    const char *colon = has_alias ? strchr(str, ':') : NULL;
    size_t nlen = colon != NULL ? (size_t)(colon - str) : strlen(str);
    if (nlen == 0 || (colon != NULL && colon[1] == '\0')) {
        sf_err(s->c, at, path, "must be SERVICE[:ALIAS], not '%s'", str);
        return;
    }
    char *name = cp_strndup(str, nlen);
    const char *slash = strchr(name, '/');
    const char *alias = colon != NULL   ? colon + 1
                        : slash != NULL ? slash + 1
                                        : name;
    json_t *links = links_of(s);
    size_t i;
    json_t *e;
    json_array_foreach(links, i, e)
    {
        if (strcmp(json_string_value(json_object_get(e, "name")), name) == 0) {
            cp_free(name);
            return;
        }
    }
    json_array_append_new(links, json_pack("{s:s, s:s, s:i, s:s}", "name", name,
                                           "alias", alias, "_line", at->line,
                                           "_file", at->file));
    cp_free(name);
}

static void k_links(struct svc_ctx *s, const struct sf_node *v,
                    const char *path, const char *field)
{
    bool is_depends = strcmp(field, "depends_on") == 0;
    links_of(s);
    if (sf_is_null(v))
        return;
    if (v->kind == SF_MAP && is_depends) {
        /* depends_on: {svc: {condition: ...}}: the names only. */
        for (size_t i = 0; i < v->n; i++)
            add_link(s, v->keys[i], sf_path(s->c, path, v->keys[i]->text),
                     v->keys[i]->text, false);
        return;
    }
    if (v->kind != SF_SEQ) {
        sf_err(s->c, v, path, "must be a list of services");
        return;
    }
    for (size_t i = 0; i < v->n; i++) {
        const char *ip = sf_path_i(s->c, path, i);
        const char *str = sf_str(s->c, v->items[i], ip);
        if (str != NULL)
            add_link(s, v->items[i], ip, str, !is_depends);
    }
}

static void k_deploy(struct svc_ctx *s, const struct sf_node *v,
                     const char *path, const char *field)
{
    static const char *const keys[] = {"strategy", "wait_for_port",
                                       "min_health", "interval", NULL};
    CP_UNUSED(field);
    if (sf_is_null(v) || !sf_check_keys(s->c, v, path, keys))
        return;
    struct sf_ctx *c = s->c;
    const struct sf_node *n = sf_get(v, "strategy");
    if (n != NULL) {
        const char *p = sf_path(c, path, "strategy");
        const char *str = sf_str(c, n, p);
        if (str != NULL && strcmp(str, "ha") != 0 &&
            strcmp(str, "daemon") != 0 && strcmp(str, "random") != 0)
            sf_err(c, n, p, "must be ha, daemon or random, not '%s'", str);
        else if (str != NULL)
            json_object_set_new(s->spec, "strategy", json_string(str));
    }
    json_t *o = json_object();
    long long port, secs;
    double d;
    n = sf_get(v, "wait_for_port");
    if (!sf_is_null(n) &&
        sf_int(c, n, sf_path(c, path, "wait_for_port"), 1, 65535, &port) == 0)
        json_object_set_new(o, "wait_for_port", json_integer(port));
    n = sf_get(v, "min_health");
    if (!sf_is_null(n) &&
        sf_real(c, n, sf_path(c, path, "min_health"), 0, 1, &d) == 0)
        json_object_set_new(o, "min_health", json_real(d));
    n = sf_get(v, "interval");
    if (!sf_is_null(n)) {
        const char *p = sf_path(c, path, "interval");
        const char *str = sf_str(c, n, p);
        if (str != NULL && (!parse_duration(str, &secs) || secs < 1))
            sf_err(c, n, p,
                   "must be a duration like 90s, 5min, 2h or 1d, not '%s'",
                   str);
        else if (str != NULL)
            json_object_set_new(o, "interval", json_integer(secs));
    }
    json_object_set_new(s->spec, "deploy_opts", o);
}

static void k_health(struct svc_ctx *s, const struct sf_node *v,
                     const char *path, const char *field)
{
    static const char *const keys[] = {"protocol", "port",     "uri",
                                       "timeout",  "interval", "initial_delay",
                                       NULL};
    static const char *const ints[] = {"timeout", "interval", "initial_delay"};
    if (sf_is_null(v) || !sf_check_keys(s->c, v, path, keys))
        return;
    struct sf_ctx *c = s->c;
    json_t *o = json_object();
    const struct sf_node *n = sf_get(v, "protocol");
    const char *pp = sf_path(c, path, "protocol");
    const char *proto = n != NULL ? sf_str(c, n, pp) : NULL;
    if (n == NULL)
        sf_err(c, v, pp, "is required (http or tcp)");
    else if (proto != NULL && strcmp(proto, "http") != 0 &&
             strcmp(proto, "tcp") != 0)
        sf_err(c, n, pp, "must be http or tcp, not '%s'", proto);
    else if (proto != NULL)
        json_object_set_new(o, "protocol", json_string(proto));
    long long port;
    n = sf_get(v, "port");
    if (n == NULL)
        sf_err(c, v, sf_path(c, path, "port"), "is required");
    else if (sf_int(c, n, sf_path(c, path, "port"), 1, 65535, &port) == 0)
        json_object_set_new(o, "port", json_integer(port));
    n = sf_get(v, "uri");
    if (!sf_is_null(n)) {
        const char *up = sf_path(c, path, "uri");
        const char *uri = sf_str(c, n, up);
        if (uri != NULL && uri[0] != '/')
            sf_err(c, n, up, "must start with /");
        else if (uri != NULL)
            json_object_set_new(o, "uri", json_string(uri));
    }
    for (size_t i = 0; i < CP_ARRAY_LEN(ints); i++) {
        long long k;
        n = sf_get(v, ints[i]);
        if (!sf_is_null(n) &&
            sf_int(c, n, sf_path(c, path, ints[i]),
                   strcmp(ints[i], "initial_delay") == 0 ? 0 : 1, 86400,
                   &k) == 0)
            json_object_set_new(o, ints[i], json_integer(k));
    }
    json_object_set_new(s->spec, field, o);
}

static void k_hooks(struct svc_ctx *s, const struct sf_node *v,
                    const char *path, const char *field)
{
    static const char *const types[] = {"pre_start", "post_start", "pre_stop",
                                        NULL};
    static const char *const keys[] = {"name", "cmd", "instances", "oneshot",
                                       NULL};
    if (sf_is_null(v) || !sf_check_keys(s->c, v, path, types))
        return;
    struct sf_ctx *c = s->c;
    json_t *out = json_object();
    for (size_t t = 0; t < v->n; t++) {
        const char *type = v->keys[t]->text;
        const char *tp = sf_path(c, path, type);
        const struct sf_node *list = v->items[t];
        json_t *arr = json_array();
        json_object_set_new(out, type, arr);
        if (sf_is_null(list))
            continue;
        if (list->kind != SF_SEQ) {
            sf_err(c, list, tp, "must be a list of hooks");
            continue;
        }
        for (size_t i = 0; i < list->n; i++) {
            const struct sf_node *h = list->items[i];
            const char *hp = sf_path_i(c, tp, i);
            if (!sf_check_keys(c, h, hp, keys))
                continue;
            json_t *hook = json_object();
            const struct sf_node *n = sf_get(h, "name");
            const char *name =
                n != NULL ? sf_str(c, n, sf_path(c, hp, "name")) : NULL;
            if (name != NULL)
                json_object_set_new(hook, "name", json_string(name));
            n = sf_get(h, "cmd");
            const char *cmd =
                n != NULL ? sf_str(c, n, sf_path(c, hp, "cmd")) : NULL;
            if (n == NULL)
                sf_err(c, h, sf_path(c, hp, "cmd"), "is required");
            if (cmd != NULL)
                json_object_set_new(hook, "cmd", json_string(cmd));
            n = sf_get(h, "instances");
            if (!sf_is_null(n)) {
                const char *ins = sf_str(c, n, sf_path(c, hp, "instances"));
                if (ins != NULL)
                    json_object_set_new(hook, "instances", json_string(ins));
            }
            n = sf_get(h, "oneshot");
            bool b;
            if (!sf_is_null(n) &&
                sf_bool(c, n, sf_path(c, hp, "oneshot"), &b) == 0)
                json_object_set_new(hook, "oneshot", json_boolean(b));
            json_array_append_new(arr, hook);
        }
    }
    json_object_set_new(s->spec, field, out);
}

/* secrets [{secret, name, type}] and certificates [{subject, name,
 * type}]: first is the key that must be given. */
static void k_refs(struct svc_ctx *s, const struct sf_node *v, const char *path,
                   const char *field)
{
    bool is_secret = strcmp(field, "secrets") == 0;
    const char *first = is_secret ? "secret" : "subject";
    const char *const keys[] = {first, "name", "type", NULL};
    struct sf_ctx *c = s->c;
    json_t *out = json_array();
    json_object_set_new(s->spec, field, out);
    if (sf_is_null(v))
        return;
    if (v->kind != SF_SEQ) {
        sf_err(c, v, path, "must be a list of {%s, name, type}", first);
        return;
    }
    for (size_t i = 0; i < v->n; i++) {
        const struct sf_node *e = v->items[i];
        const char *ep = sf_path_i(c, path, i);
        if (!sf_check_keys(c, e, ep, keys))
            continue;
        json_t *o = json_object();
        for (size_t k = 0; keys[k] != NULL; k++) {
            const struct sf_node *n = sf_get(e, keys[k]);
            const char *kp = sf_path(c, ep, keys[k]);
            if (n == NULL) {
                if (k == 0 || (k == 1 && is_secret))
                    sf_err(c, e, kp, "is required");
                continue;
            }
            const char *str = sf_str(c, n, kp);
            if (str == NULL)
                continue;
            if (k == 2 && strcmp(str, "env") != 0) {
                sf_err(c, n, kp, "the only type is env, not '%s'", str);
                continue;
            }
            json_object_set_new(o, keys[k], json_string(str));
        }
        if (json_object_get(o, "type") == NULL)
            json_object_set_new(o, "type", json_string("env"));
        json_array_append_new(out, o);
    }
}

static void k_logging(struct svc_ctx *s, const struct sf_node *v,
                      const char *path, const char *field)
{
    static const char *const keys[] = {"driver", "options", NULL};
    CP_UNUSED(field);
    if (sf_is_null(v) || !sf_check_keys(s->c, v, path, keys))
        return;
    struct sf_ctx *c = s->c;
    const struct sf_node *n = sf_get(v, "driver");
    if (!sf_is_null(n)) {
        const char *d = sf_str(c, n, sf_path(c, path, "driver"));
        if (d != NULL)
            json_object_set_new(s->spec, "log_driver", json_string(d));
    }
    n = sf_get(v, "options");
    const char *op = sf_path(c, path, "options");
    json_t *opts = json_object();
    if (!sf_is_null(n) && n->kind != SF_MAP)
        sf_err(c, n, op, "must be a map of options");
    for (size_t i = 0; n != NULL && n->kind == SF_MAP && i < n->n; i++) {
        const char *o =
            sf_str(c, n->items[i], sf_path(c, op, n->keys[i]->text));
        if (o != NULL)
            json_object_set_new(opts, n->keys[i]->text, json_string(o));
    }
    json_object_set_new(s->spec, "log_opts", opts);
}

static void k_grace(struct svc_ctx *s, const struct sf_node *v,
                    const char *path, const char *field)
{
    const char *str = sf_str(s->c, v, path);
    long long secs;
    if (str == NULL)
        return;
    if (!parse_duration(str, &secs) || secs > 86400) {
        sf_err(s->c, v, path,
               "must be a duration like 30s or 1m30s (at most a day), not "
               "'%s'",
               str);
        return;
    }
    json_object_set_new(s->spec, field, json_integer(secs));
}

static void k_unsupported(struct svc_ctx *s, const struct sf_node *v,
                          const char *path, const char *field)
{
    CP_UNUSED(field);
    sf_err(s->c, v, path,
           "is not supported: build and push the image, then name it in "
           "image:");
}

/* The keys a service may have, with the API field each one sets. */
static const struct svc_key {
    const char *key;
    key_fn *fn;
    const char *field;
} svc_keys[] = {
    {"image", k_str, "image"},
    {"instances", k_instances, "instances"},
    {"command", k_cmd, "cmd"},
    {"entrypoint", k_cmd, "entrypoint"},
    {"environment", k_environment, "env"},
    {"env_file", k_env_file, NULL},
    {"ports", k_ports, "ports"},
    {"volumes", k_volumes, "volumes"},
    {"volumes_from", k_list, "volumes_from"},
    {"links", k_links, "links"},
    {"external_links", k_links, "external_links"},
    {"depends_on", k_links, "depends_on"},
    {"affinity", k_list, "affinity"},
    {"deploy", k_deploy, NULL},
    {"health_check", k_health, "health_check"},
    {"hooks", k_hooks, "hooks"},
    {"secrets", k_refs, "secrets"},
    {"certificates", k_refs, "certificates"},
    {"logging", k_logging, NULL},
    {"mem_limit", k_memory, "memory"},
    {"memswap_limit", k_memory, "memory_swap"},
    {"shm_size", k_memory, "shm_size"},
    {"cpus", k_cpus, "cpus"},
    {"cpu_shares", k_cpu_shares, "cpu_shares"},
    {"stateful", k_bool, "stateful"},
    {"privileged", k_bool, "privileged"},
    {"read_only", k_bool, "read_only"},
    {"user", k_str, "user"},
    {"pid", k_str, "pid"},
    {"cap_add", k_list, "cap_add"},
    {"cap_drop", k_list, "cap_drop"},
    {"devices", k_list, "devices"},
    {"network_mode", k_net, "net"},
    {"stop_signal", k_str, "stop_signal"},
    {"stop_grace_period", k_grace, "stop_grace_period"},
    {"build", k_unsupported, NULL},
    {"dockerfile", k_unsupported, NULL},
    {"extends", NULL, NULL},
};

/* ==== One service ==== */

/* child over parent: child's keys win; env and secrets are merged by
 * name (the child's first). Takes both, returns the result. */
static json_t *merge(json_t *parent, json_t *child)
{
    const char *k;
    json_t *v;
    json_object_foreach(child, k, v)
    {
        json_t *pv = json_object_get(parent, k);
        if (strcmp(k, "env") == 0 && json_is_array(pv)) {
            json_t *env = json_deep_copy(v);
            size_t i;
            json_t *e;
            json_array_foreach(pv, i, e)
            {
                env_add(env, json_string_value(e));
            }
            json_object_set_new(parent, k, env);
        } else if (strcmp(k, "secrets") == 0 && json_is_array(pv)) {
            json_t *out = json_deep_copy(v);
            size_t i, j;
            json_t *e, *f;
            json_array_foreach(pv, i, e)
            {
                bool has = false;
                json_array_foreach(v, j, f)
                {
                    has = has || json_equal(json_object_get(e, "secret"),
                                            json_object_get(f, "secret"));
                }
                if (!has)
                    json_array_append(out, e);
            }
            json_object_set_new(parent, k, out);
        } else {
            json_object_set(parent, k, v);
        }
    }
    json_decref(child);
    return parent;
}

static json_t *map_service(struct sf_ctx *c, const struct sf_doc *d,
                           const struct sf_node *services, const char *name,
                           const struct sf_node *n, const char *path,
                           int depth);

/* The spec of the service n extends, or NULL (reported or none). */
static json_t *extended(struct sf_ctx *c, const struct sf_doc *d,
                        const struct sf_node *services, const char *name,
                        const struct sf_node *ext, const char *path, int depth)
{
    static const char *const keys[] = {"file", "service", NULL};
    const char *file = NULL, *svc = NULL;
    if (depth >= STACKFILE_MAX_CHAIN) {
        sf_err(c, ext, path,
               "extends goes deeper than %d services (does it loop?)",
               STACKFILE_MAX_CHAIN);
        return NULL;
    }
    if (ext->kind == SF_SCALAR) {
        svc = sf_str(c, ext, path);
    } else if (sf_check_keys(c, ext, path, keys)) {
        const struct sf_node *f = sf_get(ext, "file");
        if (!sf_is_null(f))
            file = sf_str(c, f, sf_path(c, path, "file"));
        const struct sf_node *sv = sf_get(ext, "service");
        if (sv == NULL)
            sf_err(c, ext, sf_path(c, path, "service"), "is required");
        else
            svc = sf_str(c, sv, sf_path(c, path, "service"));
    }
    if (svc == NULL || (file == NULL && sf_get(ext, "file") != NULL))
        return NULL;
    const struct sf_doc *pd = d;
    const struct sf_node *psvcs = services;
    if (file != NULL) {
        pd = sf_load_doc(c, d->dir, file, ext, sf_path(c, path, "file"));
        if (pd == NULL)
            return NULL;
        psvcs = sf_get(pd->root, "services");
        if (psvcs == NULL || psvcs->kind != SF_MAP) {
            sf_err(c, ext, path, "%s has no services map", pd->file);
            return NULL;
        }
    } else if (strcmp(svc, name) == 0) {
        sf_err(c, ext, path, "a service cannot extend itself");
        return NULL;
    }
    const struct sf_node *pn = sf_get(psvcs, svc);
    if (pn == NULL) {
        sf_err(c, ext, path, "service '%s' is not in %s", svc, pd->file);
        return NULL;
    }
    return map_service(c, pd, psvcs, svc, pn, sf_path(c, "services", svc),
                       depth + 1);
}

static json_t *map_service(struct sf_ctx *c, const struct sf_doc *d,
                           const struct sf_node *services, const char *name,
                           const struct sf_node *n, const char *path, int depth)
{
    struct svc_ctx s = {c, d, json_object(), json_array()};
    if (sf_is_null(n) || n->kind != SF_MAP) {
        sf_err(c, n, path, "must be a map of service options");
        json_decref(s.env_file);
        return s.spec;
    }
    for (size_t i = 0; i < n->n; i++) {
        const char *k = n->keys[i]->text;
        const struct svc_key *sk = NULL;
        for (size_t j = 0; j < CP_ARRAY_LEN(svc_keys) && sk == NULL; j++)
            if (strcmp(svc_keys[j].key, k) == 0)
                sk = &svc_keys[j];
        if (sk == NULL) {
            sf_err(c, n->keys[i], sf_path(c, path, k), "unknown key");
            continue;
        }
        if (sk->fn != NULL)
            sk->fn(&s, n->items[i], sf_path(c, path, k), sk->field);
    }
    /* environment wins over env_file. */
    if (json_array_size(s.env_file) > 0) {
        json_t *env = json_object_get(s.spec, "env");
        if (!json_is_array(env)) {
            env = json_array();
            json_object_set_new(s.spec, "env", env);
        }
        size_t i;
        json_t *e;
        json_array_foreach(s.env_file, i, e)
        {
            env_add(env, json_string_value(e));
        }
    }
    json_decref(s.env_file);
    const struct sf_node *ext = sf_get(n, "extends");
    if (ext != NULL) {
        json_t *parent = extended(c, d, services, name, ext,
                                  sf_path(c, path, "extends"), depth);
        if (parent != NULL)
            return merge(parent, s.spec);
    }
    return s.spec;
}

/* ==== Across services ==== */

struct svc_item {
    const char *name;
    const struct sf_node *key;
    json_t *spec;
    int color; /* cycle search: 0 new, 1 on the path, 2 done */
};

static struct svc_item *find_item(struct svc_item *items, size_t n,
                                  const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(items[i].name, name) == 0)
            return &items[i];
    return NULL;
}

/* Depth-first search for link cycles inside the stack. */
static void find_cycles(struct sf_ctx *c, struct svc_item *items, size_t n,
                        struct svc_item *it, const char **stack, size_t depth)
{
    it->color = 1;
    stack[depth] = it->name;
    size_t i;
    json_t *l;
    json_array_foreach(json_object_get(it->spec, "links"), i, l)
    {
        const char *ln = json_string_value(json_object_get(l, "name"));
        struct svc_item *to = ln != NULL ? find_item(items, n, ln) : NULL;
        if (to == NULL || to == it)
            continue;
        if (to->color == 1) {
            struct cp_buf b;
            cp_buf_init(&b, 64 * 1024);
            size_t start = 0;
            while (start < depth && strcmp(stack[start], to->name) != 0)
                start++;
            for (size_t k = start; k <= depth; k++)
                cp_buf_printf(&b, "%s -> ", stack[k]);
            cp_buf_printf(&b, "%s", to->name);
            sf_err(c, it->key,
                   sf_path(c, sf_path(c, "services", it->name), "links"),
                   "links form a cycle: %s", b.data);
            cp_buf_release(&b);
        } else if (to->color == 0) {
            find_cycles(c, items, n, to, stack, depth + 1);
        }
    }
    it->color = 2;
}

json_t *sf_services(struct sf_ctx *c, const struct sf_doc *d,
                    const struct sf_node *services)
{
    json_t *out = json_array();
    if (services->n > SVC_MAX_SERVICES) {
        sf_err(c, services, "services", "more than %d services",
               SVC_MAX_SERVICES);
        return out;
    }
    struct svc_item *items = cp_calloc(services->n + 1, sizeof(*items));
    size_t n = 0;
    for (size_t i = 0; i < services->n; i++) {
        const char *name = services->keys[i]->text;
        const char *path = sf_path(c, "services", name);
        bool is_valid = name[0] != '-' && strlen(name) <= 64;
        for (const char *p = name; *p != '\0' && is_valid; p++)
            is_valid = isalnum((unsigned char)*p) || *p == '_' || *p == '-';
        if (!is_valid || *name == '\0')
            sf_err(c, services->keys[i], path,
                   "a service name is letters, digits, '_' and '-' (at "
                   "most 64, not starting with '-')");
        json_t *spec =
            map_service(c, d, services, name, services->items[i], path, 0);
        const json_t *img = json_object_get(spec, "image");
        if (!json_is_string(img) || json_string_length(img) == 0)
            sf_err(c, services->keys[i], sf_path(c, path, "image"),
                   "is required");
        for (size_t k = 0; api_fields[k] != NULL; k++)
            if (json_object_get(spec, api_fields[k]) == NULL)
                json_object_set_new(spec, api_fields[k], json_null());
        /* name first, for people reading the output */
        json_t *named = json_pack("{s:s}", "name", name);
        json_object_update(named, spec);
        json_decref(spec);
        items[n].name = name;
        items[n].key = services->keys[i];
        items[n].spec = named;
        n++;
        json_array_append_new(out, named);
    }
    /* Links must name a service of this file, or another stack's. */
    for (size_t i = 0; i < n; i++) {
        size_t k;
        json_t *l;
        json_array_foreach(json_object_get(items[i].spec, "links"), k, l)
        {
            const char *ln = json_string_value(json_object_get(l, "name"));
            if (ln != NULL && strchr(ln, '/') == NULL &&
                find_item(items, n, ln) == NULL)
                sf_err_at(
                    c, json_string_value(json_object_get(l, "_file")),
                    (int)json_integer_value(json_object_get(l, "_line")),
                    sf_path(c, sf_path(c, "services", items[i].name), "links"),
                    "links to '%s', which is not a service of this "
                    "stack (write STACK/SERVICE for another stack)",
                    ln);
            else if (ln != NULL && strcmp(ln, items[i].name) == 0)
                sf_err_at(
                    c, json_string_value(json_object_get(l, "_file")),
                    (int)json_integer_value(json_object_get(l, "_line")),
                    sf_path(c, sf_path(c, "services", items[i].name), "links"),
                    "a service cannot link to itself");
        }
    }
    const char **stack = cp_calloc(n + 1, sizeof(*stack));
    for (size_t i = 0; i < n; i++)
        if (items[i].color == 0)
            find_cycles(c, items, n, &items[i], stack, 0);
    cp_free(stack);
    /* The bookkeeping goes before anything leaves. */
    for (size_t i = 0; i < n; i++) {
        size_t k;
        json_t *l;
        json_array_foreach(json_object_get(items[i].spec, "links"), k, l)
        {
            json_object_del(l, "_line");
            json_object_del(l, "_file");
        }
    }
    cp_free(items);
    return out;
}
