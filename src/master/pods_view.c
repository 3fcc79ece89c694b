/* The service pod view (spec 4.5, the original's ServicePodSerializer).
 * The stored service spec is what the API validated, so this file only
 * reshapes it: volumes from "src:dst:flags" strings into objects, hooks
 * filtered for the instance, the KONTENA_* env and io.kontena.* labels
 * the agent and the containers rely on.
 * Adding a pod field: also teach the agent's pods_parse() (agent/pods.c).
 * SPDX-License-Identifier: Apache-2.0 */
#include "pods_view.h"
#include "../common/alloc.h"
#include "../common/json.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static bool is_null_stack(const struct store_service *svc)
{
    return svc->stack_name == NULL || svc->stack_name[0] == '\0' ||
           strcmp(svc->stack_name, "null") == 0;
}

void pods_view_service_name(const struct store_service *svc, char *out,
                            size_t len)
{
    if (is_null_stack(svc))
        snprintf(out, len, "%s", svc->name ? svc->name : "");
    else
        snprintf(out, len, "%s.%s", svc->stack_name,
                 svc->name ? svc->name : "");
}

long long pods_view_duration(const json_t *v)
{
    if (json_is_integer(v))
        return json_integer_value(v) < 0 ? -1 : json_integer_value(v);
    if (json_is_real(v))
        return json_real_value(v) < 0 || json_real_value(v) > 1e9
                   ? -1
                   : (long long)(json_real_value(v) + 0.5);
    if (!json_is_string(v))
        return -1;
    const char *s = json_string_value(v);
    long long total = 0;
    bool any = false;
    while (*s != '\0') {
        if (!isdigit((unsigned char)*s))
            return -1;
        long long n = 0;
        while (isdigit((unsigned char)*s)) {
            n = n * 10 + (*s++ - '0');
            if (n > 100000000)
                return -1;
        }
        long long unit = 1;
        if (*s == 'h')
            unit = 3600;
        else if (*s == 'm' && s[1] == 's')
            unit = 0; /* milliseconds round down to whole seconds below */
        else if (*s == 'm')
            unit = 60;
        else if (*s == 's' || *s == '\0')
            unit = 1;
        else
            return -1;
        if (unit == 0) {
            total += n / 1000;
            s += 2;
        } else {
            total += n * unit;
            if (*s != '\0')
                s++;
        }
        any = true;
    }
    return any ? total : -1;
}

/* A copy of spec[key] when it has type_ok, else null. */
static json_t *pick(const json_t *spec, const char *key,
                    int (*type_ok)(const json_t *))
{
    json_t *v = json_object_get(spec, key);
    return v != NULL && type_ok(v) ? json_deep_copy(v) : json_null();
}

static int is_string(const json_t *v)
{
    return json_is_string(v);
}
static int is_integer(const json_t *v)
{
    return json_is_integer(v);
}
static int is_number(const json_t *v)
{
    return json_is_number(v);
}
static int is_strv(const json_t *v)
{
    return json_is_array(v) && cp_json_is_string_array(v);
}
static int is_cmd(const json_t *v)
{
    return json_is_string(v) || is_strv(v);
}

static json_t *strv_or_empty(const json_t *spec, const char *key)
{
    json_t *v = json_object_get(spec, key);
    return is_strv(v) ? json_deep_copy(v) : json_array();
}

/* "%s" in s replaced by the instance number (volumes_from, spec 5.2). */
static json_t *expand_instance(const char *s, int n)
{
    char buf[512];
    size_t o = 0;
    for (const char *p = s; *p != '\0' && o + 12 < sizeof(buf); p++) {
        if (p[0] == '%' && p[1] == 's') {
            o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%d", n);
            p++;
        } else {
            buf[o++] = *p;
        }
    }
    buf[o] = '\0';
    return json_string(buf);
}

/* ==== Ports and volumes ==== */

static json_t *port_json(const json_t *p)
{
    if (!json_is_object(p))
        return NULL;
    json_t *cport = json_object_get(p, "container_port");
    if (!json_is_integer(cport))
        return NULL;
    const char *ip = cp_json_str(p, "ip");
    const char *proto = cp_json_str(p, "protocol");
    json_t *nport = json_object_get(p, "node_port");
    return json_pack("{s:s, s:s, s:O, s:O}", "ip", ip ? ip : "0.0.0.0",
                     "protocol", proto ? proto : "tcp", "node_port",
                     json_is_integer(nport) ? nport : cport, "container_port",
                     cport);
}

static json_t *ports_json(const json_t *spec)
{
    json_t *out = json_array();
    const json_t *ports = json_object_get(spec, "ports");
    size_t i;
    const json_t *p;
    json_array_foreach(ports, i, p)
    {
        json_t *j = port_json(p);
        if (j != NULL)
            json_array_append_new(out, j);
    }
    return out;
}

/* One volume: "/path" (anonymous), "/host:/path[:flags]" (bind mount) or
 * "name:/path[:flags]" (named), or an object already in pod shape. */
static json_t *volume_json(const json_t *v)
{
    if (json_is_object(v)) {
        const char *path = cp_json_str(v, "path");
        if (path == NULL)
            return NULL;
        const char *bind = cp_json_str(v, "bind_mount");
        const char *name = cp_json_str(v, "name");
        if (name == NULL)
            name = cp_json_str(v, "volume");
        json_t *j = json_object();
        if (bind != NULL)
            json_object_set_new(j, "bind_mount", json_string(bind));
        else if (name != NULL)
            json_object_set_new(j, "name", json_string(name));
        json_object_set_new(j, "path", json_string(path));
        cp_json_set_str(j, "flags", cp_json_str(v, "flags"));
        return j;
    }
    if (!json_is_string(v))
        return NULL;
    const char *s = json_string_value(v);
    const char *parts[3] = {NULL, NULL, NULL};
    size_t lens[3] = {0, 0, 0};
    size_t np = 0;
    const char *start = s;
    for (const char *p = s;; p++) {
        if (*p == ':' || *p == '\0') {
            if (np == 3)
                return NULL;
            parts[np] = start;
            lens[np++] = (size_t)(p - start);
            if (*p == '\0')
                break;
            start = p + 1;
        }
    }
    json_t *j = json_object();
    char *a = cp_strndup(parts[0], lens[0]);
    if (np == 1) {
        json_object_set_new(j, "path", json_string(a));
        json_object_set_new(j, "flags", json_null());
    } else {
        char *b = cp_strndup(parts[1], lens[1]);
        json_object_set_new(j, a[0] == '/' ? "bind_mount" : "name",
                            json_string(a));
        json_object_set_new(j, "path", json_string(b));
        cp_free(b);
        if (np == 3) {
            char *c = cp_strndup(parts[2], lens[2]);
            json_object_set_new(j, "flags", json_string(c));
            cp_free(c);
        } else {
            json_object_set_new(j, "flags", json_null());
        }
    }
    cp_free(a);
    return j;
}

static json_t *volumes_json(const json_t *spec)
{
    json_t *out = json_array();
    size_t i;
    const json_t *v;
    json_array_foreach(json_object_get(spec, "volumes"), i, v)
    {
        json_t *j = volume_json(v);
        if (j != NULL)
            json_array_append_new(out, j);
    }
    return out;
}

/* ==== Hooks ==== */

/* True if the hook's "instances" ("*", "1,2", ["*"], [1, "2"]) names n. */
static bool hook_applies(const json_t *h, int n)
{
    const json_t *inst = json_object_get(h, "instances");
    if (inst == NULL || json_is_null(inst))
        return true;
    char want[16];
    snprintf(want, sizeof(want), "%d", n);
    if (json_is_string(inst)) {
        const char *s = json_string_value(inst);
        size_t wl = strlen(want);
        for (const char *p = s; *p != '\0';) {
            size_t l = strcspn(p, ",");
            const char *t = p;
            size_t tl = l;
            while (tl > 0 && *t == ' ')
                t++, tl--;
            while (tl > 0 && t[tl - 1] == ' ')
                tl--;
            if ((tl == 1 && *t == '*') ||
                (tl == wl && strncmp(t, want, wl) == 0))
                return true;
            p += l;
            if (*p == ',')
                p++;
        }
        return false;
    }
    size_t i;
    const json_t *e;
    json_array_foreach(inst, i, e)
    {
        if (json_is_integer(e) && json_integer_value(e) == n)
            return true;
        if (json_is_string(e) && (strcmp(json_string_value(e), "*") == 0 ||
                                  strcmp(json_string_value(e), want) == 0))
            return true;
    }
    return false;
}

/* A oneshot hook that already ran for instance n is omitted (spec 4.5). */
static bool hook_done(const json_t *h, int n)
{
    char want[16];
    snprintf(want, sizeof(want), "%d", n);
    size_t i;
    const json_t *e;
    json_array_foreach(json_object_get(h, "done"), i, e)
    {
        if ((json_is_integer(e) && json_integer_value(e) == n) ||
            (json_is_string(e) && strcmp(json_string_value(e), want) == 0))
            return true;
    }
    return false;
}

static void add_hook(json_t *out, const json_t *h, const char *type, int n,
                     size_t index)
{
    const char *cmd = cp_json_str(h, "cmd");
    if (!json_is_object(h) || cmd == NULL || type == NULL ||
        !hook_applies(h, n))
        return;
    bool oneshot = cp_json_bool(h, "oneshot", false);
    if (oneshot && hook_done(h, n))
        return;
    const char *name = cp_json_str(h, "name");
    const char *id = cp_json_str(h, "id");
    char fallback[64];
    snprintf(fallback, sizeof(fallback), "%s-%zu", type, index);
    json_t *o = json_pack("{s:s, s:s, s:s, s:b}", "id",
                          id ? id : (name ? name : fallback), "type", type,
                          "cmd", cmd, "oneshot", oneshot);
    /* Already filtered for n; the agent checks again (defence). */
    const json_t *inst = json_object_get(h, "instances");
    if (json_is_array(inst) || json_is_string(inst))
        json_object_set(o, "instances", (json_t *)(uintptr_t)inst);
    json_array_append_new(out, o);
}

/* Hooks are stored either as the API shows them, [{name,type,cmd,...}],
 * or as given, {pre_start: [...], post_start: [...], pre_stop: [...]}. */
static json_t *hooks_json(const json_t *spec, int n)
{
    json_t *out = json_array();
    const json_t *hooks = json_object_get(spec, "hooks");
    size_t i;
    const json_t *h;
    if (json_is_array(hooks)) {
        json_array_foreach(hooks, i, h)
            add_hook(out, h, cp_json_str(h, "type"), n, i);
    } else if (json_is_object(hooks)) {
        static const char *const types[] = {"pre_start", "post_start",
                                            "pre_stop"};
        for (size_t t = 0; t < CP_ARRAY_LEN(types); t++) {
            json_array_foreach(json_object_get(hooks, types[t]), i, h)
                add_hook(out, h, types[t], n, i);
        }
    }
    return out;
}

/* ==== Env and labels ==== */

static void env_add(json_t *env, const char *key, const char *value)
{
    char *kv = cp_asprintf("%s=%s", key, value ? value : "");
    json_array_append_new(env, json_string(kv));
    cp_free(kv);
}

static json_t *env_json(const struct store_service *svc,
                        const struct store_grid *g,
                        const struct store_node *node, int n)
{
    json_t *env = strv_or_empty(svc->spec, "env");
    char name[256], num[16];
    pods_view_service_name(svc, name, sizeof(name));
    snprintf(num, sizeof(num), "%d", n);
    env_add(env, "KONTENA_SERVICE_ID", svc->id);
    env_add(env, "KONTENA_SERVICE_NAME", svc->name);
    env_add(env, "KONTENA_GRID_NAME", g->name);
    env_add(env, "KONTENA_PLATFORM_NAME", g->name);
    env_add(env, "KONTENA_STACK_NAME",
            is_null_stack(svc) ? "null" : svc->stack_name);
    env_add(env, "KONTENA_NODE_NAME", node ? node->name : "");
    env_add(env, "KONTENA_SERVICE_INSTANCE_NUMBER", num);
    return env;
}

/* Health check labels; values are strings, as container labels are. */
static void health_labels(json_t *labels, const json_t *hc)
{
    if (!json_is_object(hc))
        return;
    const char *proto = cp_json_str(hc, "protocol");
    json_t *port = json_object_get(hc, "port");
    if (proto == NULL || !json_is_integer(port))
        return;
    cp_json_set_str(labels, "io.kontena.health_check.protocol", proto);
    static const struct {
        const char *key;
        long long def;
    } ints[] = {
        {"port", 0}, {"timeout", 10}, {"interval", 60}, {"initial_delay", 10}};
    for (size_t i = 0; i < CP_ARRAY_LEN(ints); i++) {
        char key[64], val[32];
        snprintf(key, sizeof(key), "io.kontena.health_check.%s", ints[i].key);
        snprintf(val, sizeof(val), "%lld",
                 cp_json_int(hc, ints[i].key, ints[i].def));
        cp_json_set_str(labels, key, val);
    }
    if (strcmp(proto, "http") == 0) {
        const char *uri = cp_json_str(hc, "uri");
        cp_json_set_str(labels, "io.kontena.health_check.uri", uri ? uri : "/");
    }
}

static json_t *labels_json(const struct store_service *svc,
                           const struct store_grid *g)
{
    json_t *l = json_object();
    cp_json_set_str(l, "io.kontena.service.id", svc->id);
    cp_json_set_str(l, "io.kontena.service.name", svc->name);
    cp_json_set_str(l, "io.kontena.stack.name",
                    is_null_stack(svc) ? "null" : svc->stack_name);
    cp_json_set_str(l, "io.kontena.grid.name", g->name);
    cp_json_set_str(l, "io.kontena.platform.name", g->name);
    health_labels(l, json_object_get(svc->spec, "health_check"));
    return l;
}

static json_t *log_opts_json(const json_t *spec)
{
    json_t *out = json_object();
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)(uintptr_t)json_object_get(spec, "log_opts"),
                        k, v)
    {
        if (json_is_string(v))
            json_object_set(out, k, (json_t *)(uintptr_t)v);
        else if (json_is_integer(v)) {
            char num[32];
            snprintf(num, sizeof(num), "%lld",
                     (long long)json_integer_value(v));
            json_object_set_new(out, k, json_string(num));
        }
    }
    return out;
}

/* ==== The pod ==== */

json_t *pods_view_pod(const struct store_service *svc,
                      const struct store_instance *inst,
                      const struct store_grid *g, const struct store_node *node)
{
    const json_t *spec = svc->spec;
    int n = inst->instance_number;
    char buf[512];
    json_t *p = json_object();

    snprintf(buf, sizeof(buf), "%s/%d", svc->id, n);
    json_object_set_new(p, "id", json_string(buf));
    cp_json_set_str(p, "desired_state",
                    inst->desired_state ? inst->desired_state : "running");
    cp_json_set_str(p, "service_id", svc->id);
    pods_view_service_name(svc, buf, sizeof(buf));
    cp_json_set_str(p, "service_name", buf);
    json_object_set_new(p, "service_revision", json_integer(svc->revision));
    cp_json_set_time(p, "updated_at", svc->updated_at);
    json_object_set_new(p, "instance_number", json_integer(n));
    json_object_set_new(p, "image_name", pick(spec, "image", is_string));
    /* Filled per pod list by registry.c: never part of a memoised pod. */
    json_object_set_new(p, "image_credentials", json_null());
    cp_json_set_str(p, "deploy_rev", inst->deploy_rev);
    json_object_set_new(p, "stateful",
                        json_boolean(cp_json_bool(spec, "stateful", false)));
    json_object_set_new(p, "user", pick(spec, "user", is_string));
    json_object_set_new(p, "cmd", pick(spec, "cmd", is_cmd));
    json_object_set_new(p, "entrypoint", pick(spec, "entrypoint", is_cmd));
    json_object_set_new(p, "memory", pick(spec, "memory", is_integer));
    json_object_set_new(p, "memory_swap",
                        pick(spec, "memory_swap", is_integer));
    json_object_set_new(p, "shm_size", pick(spec, "shm_size", is_integer));
    json_object_set_new(p, "cpu_shares", pick(spec, "cpu_shares", is_integer));
    json_object_set_new(p, "cpus", pick(spec, "cpus", is_number));
    json_object_set_new(p, "privileged",
                        json_boolean(cp_json_bool(spec, "privileged", false)));
    json_object_set_new(p, "cap_add", strv_or_empty(spec, "cap_add"));
    json_object_set_new(p, "cap_drop", strv_or_empty(spec, "cap_drop"));
    json_object_set_new(p, "devices", strv_or_empty(spec, "devices"));
    json_object_set_new(p, "ports", ports_json(spec));
    json_object_set_new(p, "volumes", volumes_json(spec));

    json_t *vf = json_array();
    size_t i;
    const json_t *v;
    json_array_foreach(json_object_get(spec, "volumes_from"), i, v)
    {
        if (json_is_string(v))
            json_array_append_new(vf, expand_instance(json_string_value(v), n));
    }
    json_object_set_new(p, "volumes_from", vf);
    const char *net = cp_json_str(spec, "net");
    cp_json_set_str(p, "net", net ? net : "bridge");
    json_object_set_new(p, "pid", pick(spec, "pid", is_string));

    snprintf(buf, sizeof(buf), "%s-%d", svc->name ? svc->name : "", n);
    cp_json_set_str(p, "hostname", buf);
    if (is_null_stack(svc))
        snprintf(buf, sizeof(buf), "%s.kontena.local", g->name);
    else
        snprintf(buf, sizeof(buf), "%s.%s.kontena.local", svc->stack_name,
                 g->name);
    cp_json_set_str(p, "domainname", buf);
    json_object_set_new(p, "exposed", json_false());

    json_object_set_new(p, "log_driver", pick(spec, "log_driver", is_string));
    json_object_set_new(p, "log_opts", log_opts_json(spec));
    const json_t *opts = json_object_get(spec, "deploy_opts");
    json_t *wfp = json_object_get(opts, "wait_for_port");
    json_object_set_new(p, "wait_for_port",
                        json_is_integer(wfp) && json_integer_value(wfp) > 0
                            ? json_deep_copy(wfp)
                            : json_null());
    json_object_set_new(p, "stop_signal", pick(spec, "stop_signal", is_string));
    long long grace =
        pods_view_duration(json_object_get(spec, "stop_grace_period"));
    json_object_set_new(p, "stop_grace_period",
                        grace >= 0 && grace <= 86400 ? json_integer(grace)
                                                     : json_null());
    json_object_set_new(p, "env", env_json(svc, g, node, n));
    json_object_set_new(p, "secrets", json_array());
    json_object_set_new(p, "labels", labels_json(svc, g));
    json_object_set_new(p, "hooks", hooks_json(spec, n));
    json_object_set_new(p, "networks", json_array());
    json_object_set_new(p, "read_only",
                        json_boolean(cp_json_bool(spec, "read_only", false)));
    return p;
}
