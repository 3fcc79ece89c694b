/* The agent's pure reconcile step: parse service pods, reduce engine
 * containers, diff the two into actions, and build the create body.
 * See pods.h for the model; nothing here does I/O or reads the clock.
 * SPDX-License-Identifier: Apache-2.0 */
#include "pods.h"

#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/util.h"

#include <assert.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LABEL_SERVICE_ID "io.kontena.service.id"
#define LABEL_INSTANCE "io.kontena.service.instance_number"
#define LABEL_SVC_REVISION "io.kontena.service.revision"
#define LABEL_CONT_REVISION "io.kontena.container.service_revision"
#define LABEL_DEPLOY_REV "io.kontena.container.deploy_rev"
#define LABEL_LB_PREFIX "io.kontena.load_balancer."
#define LABEL_HC_PREFIX "io.kontena.health_check."
#define LABEL_SECRETS_REV "io.kontena.container.secrets_rev"
#define LABEL_SECRET_ENV "io.kontena.container.secret_env"

static bool str_eq(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

/* ==== Parsing helpers ==== */

/* Where a parse error is reported: the caller's buffer plus the path of
 * the object being read ("", "ports[1]", ...). */
struct perr {
    char *buf;
    size_t len;
    char ctx[48];
};

static int bad(struct perr *e, const char *field, const char *why)
{
    if (e->buf != NULL && e->len > 0)
        snprintf(e->buf, e->len, "%s%s%s: %s", e->ctx,
                 e->ctx[0] != '\0' ? "." : "", field, why);
    return CP_EINVAL;
}

/* A json value that is missing or null counts as absent. */
static const json_t *member(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return v == NULL || json_is_null(v) ? NULL : v;
}

static int opt_str(const json_t *o, const char *key, char **out, struct perr *e)
{
    const json_t *v = member(o, key);
    *out = NULL;
    if (v == NULL)
        return 0;
    if (!json_is_string(v))
        return bad(e, key, "not a string");
    *out = cp_strdup(json_string_value(v));
    return 0;
}

static int req_str(const json_t *o, const char *key, char **out, struct perr *e)
{
    int rc = opt_str(o, key, out, e);
    if (rc != 0)
        return rc;
    if (*out == NULL || (*out)[0] == '\0')
        return bad(e, key, "missing");
    return 0;
}

static int opt_int(const json_t *o, const char *key, long long min,
                   long long max, long long def, long long *out, struct perr *e)
{
    const json_t *v = member(o, key);
    *out = def;
    if (v == NULL)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < min ||
        json_integer_value(v) > max) {
        char why[80];
        snprintf(why, sizeof(why), "not an integer in %lld..%lld", min, max);
        return bad(e, key, why);
    }
    *out = json_integer_value(v);
    return 0;
}

static int req_int(const json_t *o, const char *key, long long min,
                   long long max, long long *out, struct perr *e)
{
    if (member(o, key) == NULL)
        return bad(e, key, "missing");
    return opt_int(o, key, min, max, 0, out, e);
}

static int opt_bool(const json_t *o, const char *key, bool *out, struct perr *e)
{
    const json_t *v = member(o, key);
    *out = false;
    if (v == NULL)
        return 0;
    if (!json_is_boolean(v))
        return bad(e, key, "not a boolean");
    *out = json_is_true(v);
    return 0;
}

/* An array of strings; with allow_string a lone string is a one-element
 * list (Docker accepts both for Cmd and Entrypoint). */
static int opt_strv(const json_t *o, const char *key, bool allow_string,
                    struct pod_strv *out, struct perr *e)
{
    const json_t *v = member(o, key);
    out->v = NULL;
    out->n = 0;
    if (v == NULL)
        return 0;
    if (allow_string && json_is_string(v)) {
        out->v = cp_calloc(1, sizeof(*out->v));
        out->v[0] = cp_strdup(json_string_value(v));
        out->n = 1;
        return 0;
    }
    if (!json_is_array(v) || !cp_json_is_string_array(v))
        return bad(e, key, "not an array of strings");
    out->v = cp_calloc(json_array_size(v) + 1, sizeof(*out->v));
    for (size_t i = 0; i < json_array_size(v); i++)
        out->v[out->n++] = cp_strdup(json_string_value(json_array_get(v, i)));
    return 0;
}

/* An object whose values are all strings. */
static int opt_kv(const json_t *o, const char *key, struct pod_kv **out,
                  size_t *n, struct perr *e)
{
    const json_t *v = member(o, key);
    *out = NULL;
    *n = 0;
    if (v == NULL)
        return 0;
    if (!json_is_object(v))
        return bad(e, key, "not an object");
    *out = cp_calloc(json_object_size(v) + 1, sizeof(**out));
    const char *k;
    const json_t *val;
    json_object_foreach((json_t *)(uintptr_t)v, k, val)
    {
        if (!json_is_string(val)) {
            char field[160];
            snprintf(field, sizeof(field), "%s.%s", key, k);
            return bad(e, field, "not a string");
        }
        (*out)[*n].key = cp_strdup(k);
        (*out)[*n].value = cp_strdup(json_string_value(val));
        (*n)++;
    }
    return 0;
}

static void strv_release(struct pod_strv *s)
{
    for (size_t i = 0; i < s->n; i++)
        cp_free(s->v[i]);
    cp_free(s->v);
    s->v = NULL;
    s->n = 0;
}

static void kv_free(struct pod_kv *kv, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        cp_free(kv[i].key);
        cp_free(kv[i].value);
    }
    cp_free(kv);
}

static const char *kv_get(const struct pod_kv *kv, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(kv[i].key, key) == 0)
            return kv[i].value;
    return NULL;
}

/* ==== Parsing a service pod ==== */

static int parse_desired(const json_t *o, enum pod_desired *out, struct perr *e)
{
    const char *s = cp_json_str(o, "desired_state");
    if (s == NULL)
        return bad(e, "desired_state", "missing");
    if (strcmp(s, "running") == 0)
        *out = POD_RUNNING;
    else if (strcmp(s, "stopped") == 0)
        *out = POD_STOPPED;
    else if (strcmp(s, "initialized") == 0)
        *out = POD_INITIALIZED;
    else
        return bad(e, "desired_state",
                   "not one of running, stopped, initialized");
    return 0;
}

/* Env secrets only; values of the same name are joined by "\n" in the
 * order the master sent them (what the Ruby agent did). */
static int parse_secrets(const json_t *o, struct pod *p, struct perr *e)
{
    const json_t *arr = member(o, "secrets");
    if (arr == NULL)
        return 0;
    if (!json_is_array(arr))
        return bad(e, "secrets", "not an array");
    p->secrets = cp_calloc(json_array_size(arr) + 1, sizeof(*p->secrets));
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const json_t *s = json_array_get(arr, i);
        struct perr se = {e->buf, e->len, ""};
        snprintf(se.ctx, sizeof(se.ctx), "secrets[%zu]", i);
        if (!json_is_object(s))
            return bad(e, se.ctx, "not an object");
        char *name = NULL, *type = NULL, *value = NULL;
        int rc = req_str(s, "name", &name, &se);
        if (rc == 0)
            rc = opt_str(s, "type", &type, &se);
        if (rc == 0)
            rc = opt_str(s, "value", &value, &se);
        if (rc != 0 || (type != NULL && strcmp(type, "env") != 0)) {
            cp_free(name);
            cp_free(type);
            cp_free(value);
            if (rc != 0)
                return rc;
            continue;
        }
        cp_free(type);
        struct pod_kv *prev = NULL;
        for (size_t j = 0; j < p->nsecrets; j++)
            if (strcmp(p->secrets[j].key, name) == 0)
                prev = &p->secrets[j];
        if (prev != NULL) {
            char *joined =
                cp_asprintf("%s\n%s", prev->value, value != NULL ? value : "");
            cp_free(prev->value);
            prev->value = joined;
            cp_free(name);
            cp_free(value);
        } else {
            p->secrets[p->nsecrets].key = name;
            p->secrets[p->nsecrets].value =
                value != NULL ? value : cp_strdup("");
            p->nsecrets++;
        }
    }
    return 0;
}

static int parse_ports(const json_t *o, struct pod *p, struct perr *e)
{
    const json_t *arr = member(o, "ports");
    if (arr == NULL)
        return 0;
    if (!json_is_array(arr))
        return bad(e, "ports", "not an array");
    p->ports = cp_calloc(json_array_size(arr) + 1, sizeof(*p->ports));
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const json_t *po = json_array_get(arr, i);
        struct perr pe = {e->buf, e->len, ""};
        snprintf(pe.ctx, sizeof(pe.ctx), "ports[%zu]", i);
        if (!json_is_object(po))
            return bad(e, pe.ctx, "not an object");
        struct pod_port *pp = &p->ports[p->nports++];
        long long node_port, container_port;
        int rc = opt_str(po, "ip", &pp->ip, &pe);
        if (rc == 0)
            rc = opt_str(po, "protocol", &pp->protocol, &pe);
        if (rc == 0)
            rc = opt_int(po, "node_port", 0, 65535, 0, &node_port, &pe);
        if (rc == 0)
            rc = req_int(po, "container_port", 1, 65535, &container_port, &pe);
        if (rc != 0)
            return rc;
        if (pp->protocol == NULL)
            pp->protocol = cp_strdup("tcp");
        else if (strcmp(pp->protocol, "tcp") != 0 &&
                 strcmp(pp->protocol, "udp") != 0)
            return bad(&pe, "protocol", "not tcp or udp");
        if (pp->ip == NULL)
            pp->ip = cp_strdup("0.0.0.0");
        pp->node_port = (int)node_port;
        pp->container_port = (int)container_port;
    }
    return 0;
}

static int parse_volumes(const json_t *o, struct pod *p, struct perr *e)
{
    const json_t *arr = member(o, "volumes");
    if (arr == NULL)
        return 0;
    if (!json_is_array(arr))
        return bad(e, "volumes", "not an array");
    p->volumes = cp_calloc(json_array_size(arr) + 1, sizeof(*p->volumes));
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const json_t *vo = json_array_get(arr, i);
        struct perr ve = {e->buf, e->len, ""};
        snprintf(ve.ctx, sizeof(ve.ctx), "volumes[%zu]", i);
        if (!json_is_object(vo))
            return bad(e, ve.ctx, "not an object");
        struct pod_volume *pv = &p->volumes[p->nvolumes++];
        int rc = opt_str(vo, "bind_mount", &pv->bind_mount, &ve);
        if (rc == 0)
            rc = opt_str(vo, "name", &pv->name, &ve);
        if (rc == 0)
            rc = req_str(vo, "path", &pv->path, &ve);
        if (rc == 0)
            rc = opt_str(vo, "flags", &pv->flags, &ve);
        if (rc != 0)
            return rc;
        if (pv->path[0] != '/')
            return bad(&ve, "path", "not an absolute path");
        if (pv->bind_mount != NULL && pv->name != NULL)
            return bad(&ve, "name", "given together with bind_mount");
        if (pv->flags != NULL && pv->flags[0] == '\0') {
            cp_free(pv->flags);
            pv->flags = NULL;
        }
    }
    return 0;
}

static int health_int(const struct pod *p, const char *suffix, int min, int max,
                      int def, int *out, struct perr *e)
{
    char key[80];
    snprintf(key, sizeof(key), LABEL_HC_PREFIX "%s", suffix);
    const char *s = kv_get(p->labels, p->nlabels, key);
    long long v = def;
    *out = def;
    if (s == NULL)
        return 0;
    if (cp_parse_int(s, min, max, &v) != 0) {
        char field[96];
        snprintf(field, sizeof(field), "labels.%s", key);
        return bad(e, field, "not a number in range");
    }
    *out = (int)v;
    return 0;
}

/* The health check lives in labels so that it survives in the
 * container; read it here once so the checker gets numbers. */
static int parse_health(struct pod *p, struct perr *e)
{
    struct pod_health *h = &p->health;
    const char *proto =
        kv_get(p->labels, p->nlabels, LABEL_HC_PREFIX "protocol");
    if (proto == NULL)
        return 0;
    if (strcmp(proto, "http") != 0 && strcmp(proto, "tcp") != 0)
        return bad(e, "labels." LABEL_HC_PREFIX "protocol", "not http or tcp");
    int rc = health_int(p, "port", 1, 65535, 0, &h->port, e);
    if (rc == 0 && h->port == 0)
        rc = bad(e, "labels." LABEL_HC_PREFIX "port", "missing");
    if (rc == 0)
        rc = health_int(p, "interval", 1, 86400, 60, &h->interval_s, e);
    if (rc == 0)
        rc = health_int(p, "timeout", 1, 86400, 10, &h->timeout_s, e);
    if (rc == 0)
        rc = health_int(p, "initial_delay", 0, 86400, 10, &h->initial_delay_s,
                        e);
    if (rc != 0)
        return rc;
    h->protocol = cp_strdup(proto);
    const char *uri = kv_get(p->labels, p->nlabels, LABEL_HC_PREFIX "uri");
    if (strcmp(proto, "http") == 0)
        h->uri = cp_strdup(uri != NULL ? uri : "/");
    return 0;
}

/* ==== Hooks ==== */

static const char *const hook_types[] = {"pre_start", "post_start", "pre_stop"};

const char *pods_hook_type_name(enum pod_hook_type t)
{
    return (size_t)t < CP_ARRAY_LEN(hook_types) ? hook_types[t] : "?";
}

/* instances: "*", "1,2", 3, or an array of those; absent means all. */
static int hook_instances(const json_t *v, struct pod_hook *h, struct perr *e)
{
    h->is_all_instances = v == NULL;
    if (v == NULL)
        return 0;
    json_t *tmp = json_is_array(v) ? json_incref((json_t *)(uintptr_t)v)
                                   : json_pack("[O]", v);
    size_t i;
    const json_t *el;
    int rc = 0;
    json_array_foreach(tmp, i, el)
    {
        if (json_is_integer(el)) {
            h->instances = cp_realloc(h->instances, (h->ninstances + 1) *
                                                        sizeof(*h->instances));
            h->instances[h->ninstances++] = (int)json_integer_value(el);
            continue;
        }
        if (!json_is_string(el)) {
            rc = bad(e, "instances", "not \"*\", \"1,2\" or a list");
            break;
        }
        for (const char *s = json_string_value(el); *s != '\0';) {
            size_t len = strcspn(s, ",");
            char *w = cp_strndup(s, len);
            char *t = w;
            while (*t == ' ')
                t++;
            long long k;
            if (strcmp(t, "*") == 0) {
                h->is_all_instances = true;
            } else if (cp_parse_int(t, 1, 1000000, &k) == 0) {
                h->instances = cp_realloc(
                    h->instances, (h->ninstances + 1) * sizeof(*h->instances));
                h->instances[h->ninstances++] = (int)k;
            } else if (*t != '\0') {
                rc = bad(e, "instances", "not \"*\", \"1,2\" or a list");
            }
            cp_free(w);
            s += len;
            if (*s == ',')
                s++;
        }
    }
    json_decref(tmp);
    return rc;
}

static int parse_hooks(const json_t *o, struct pod *p, struct perr *e)
{
    const json_t *arr = member(o, "hooks");
    if (arr == NULL)
        return 0;
    if (!json_is_array(arr))
        return bad(e, "hooks", "not an array");
    p->hooks = cp_calloc(json_array_size(arr) + 1, sizeof(*p->hooks));
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const json_t *h = json_array_get(arr, i);
        struct perr he = {e->buf, e->len, ""};
        snprintf(he.ctx, sizeof(he.ctx), "hooks[%zu]", i);
        struct pod_hook *ph = &p->hooks[p->nhooks++];
        if (!json_is_object(h))
            return bad(&he, "hook", "not an object");
        char *type = NULL;
        int rc = req_str(h, "id", &ph->name, &he);
        if (rc == 0)
            rc = req_str(h, "cmd", &ph->cmd, &he);
        if (rc == 0)
            rc = opt_bool(h, "oneshot", &ph->is_oneshot, &he);
        if (rc == 0)
            rc = req_str(h, "type", &type, &he);
        if (rc == 0) {
            size_t t = 0;
            while (t < CP_ARRAY_LEN(hook_types) &&
                   strcmp(type, hook_types[t]) != 0)
                t++;
            if (t == CP_ARRAY_LEN(hook_types))
                rc = bad(&he, "type", "not pre_start|post_start|pre_stop");
            ph->type = (enum pod_hook_type)t;
        }
        cp_free(type);
        if (rc == 0)
            rc = hook_instances(member(h, "instances"), ph, &he);
        if (rc != 0)
            return rc;
    }
    return 0;
}

bool pods_hook_runs(const struct pod *p, size_t i, enum pod_hook_type type)
{
    if (i >= p->nhooks || p->hooks[i].type != type)
        return false;
    const struct pod_hook *h = &p->hooks[i];
    if (h->is_all_instances)
        return true;
    for (size_t k = 0; k < h->ninstances; k++)
        if (h->instances[k] == p->instance_number)
            return true;
    return false;
}

static int parse_limits(const json_t *o, struct pod *p, struct perr *e)
{
    long long v;
    int rc = opt_int(o, "memory", 0, INT64_MAX, 0, &p->memory, e);
    if (rc == 0)
        rc = opt_int(o, "memory_swap", -1, INT64_MAX, 0, &p->memory_swap, e);
    if (rc == 0)
        rc = opt_int(o, "cpu_shares", 0, 262144, 0, &p->cpu_shares, e);
    if (rc != 0)
        return rc;
    const json_t *cpus = member(o, "cpus");
    if (cpus != NULL) {
        if (!json_is_number(cpus) || json_number_value(cpus) < 0 ||
            json_number_value(cpus) > 4096)
            return bad(e, "cpus", "not a number in 0..4096");
        p->cpus = json_number_value(cpus);
    }
    const json_t *grace = member(o, "stop_grace_period");
    p->stop_grace_period = -1;
    if (grace != NULL) {
        if (!json_is_number(grace) || json_number_value(grace) < 0 ||
            json_number_value(grace) > 86400)
            return bad(e, "stop_grace_period", "not seconds in 0..86400");
        p->stop_grace_period = (int)(json_number_value(grace) + 0.5);
    }
    rc = opt_int(o, "wait_for_port", 0, 65535, 0, &v, e);
    p->wait_for_port = (int)v;
    return rc;
}

/* image_credentials: {username, password, email, serveraddress} or
 * null. Errors name fields, never values. */
static int parse_creds(const json_t *o, struct pod *p, struct perr *e)
{
    const json_t *c = member(o, "image_credentials");
    if (c == NULL)
        return 0;
    if (!json_is_object(c))
        return bad(e, "image_credentials", "not an object");
    struct pod_creds *k = cp_calloc(1, sizeof(*k));
    p->creds = k; /* pod_release frees it on error */
    snprintf(e->ctx, sizeof(e->ctx), "image_credentials");
    int rc = opt_str(c, "username", &k->username, e);
    if (rc == 0)
        rc = opt_str(c, "password", &k->password, e);
    if (rc == 0)
        rc = opt_str(c, "email", &k->email, e);
    if (rc == 0)
        rc = opt_str(c, "serveraddress", &k->serveraddress, e);
    e->ctx[0] = '\0';
    return rc;
}

int pods_parse(const json_t *o, struct pod *out, char *err, size_t errlen)
{
    struct perr e = {err, errlen, ""};
    long long n = 0;
    memset(out, 0, sizeof(*out));
    if (!json_is_object(o))
        return bad(&e, "service_pod", "not an object");
    int rc = req_str(o, "id", &out->id, &e);
    if (rc == 0)
        rc = parse_desired(o, &out->desired, &e);
    if (rc == 0)
        rc = req_str(o, "service_id", &out->service_id, &e);
    if (rc == 0)
        rc = req_str(o, "service_name", &out->service_name, &e);
    if (rc == 0)
        rc = opt_int(o, "service_revision", 0, INT64_MAX, 0,
                     &out->service_revision, &e);
    if (rc == 0)
        rc = req_int(o, "instance_number", 1, 1000000, &n, &e);
    out->instance_number = (int)n;
    if (rc == 0)
        rc = req_str(o, "image_name", &out->image_name, &e);
    if (rc == 0)
        rc = parse_creds(o, out, &e);
    if (rc == 0)
        rc = opt_str(o, "deploy_rev", &out->deploy_rev, &e);
    if (rc == 0)
        rc = opt_bool(o, "stateful", &out->is_stateful, &e);
    if (rc == 0)
        rc = opt_strv(o, "cmd", true, &out->cmd, &e);
    if (rc == 0)
        rc = opt_strv(o, "entrypoint", true, &out->entrypoint, &e);
    if (rc == 0)
        rc = opt_strv(o, "env", false, &out->env, &e);
    if (rc == 0)
        rc = parse_secrets(o, out, &e);
    if (rc == 0)
        rc = parse_ports(o, out, &e);
    if (rc == 0)
        rc = parse_volumes(o, out, &e);
    if (rc == 0)
        rc = opt_str(o, "net", &out->net, &e);
    if (rc == 0)
        rc = opt_str(o, "hostname", &out->hostname, &e);
    if (rc == 0)
        rc = opt_str(o, "domainname", &out->domainname, &e);
    if (rc == 0)
        rc = opt_str(o, "user", &out->user, &e);
    if (rc == 0)
        rc = parse_limits(o, out, &e);
    if (rc == 0)
        rc = opt_bool(o, "privileged", &out->is_privileged, &e);
    if (rc == 0)
        rc = opt_strv(o, "cap_add", false, &out->cap_add, &e);
    if (rc == 0)
        rc = opt_strv(o, "cap_drop", false, &out->cap_drop, &e);
    if (rc == 0)
        rc = opt_str(o, "log_driver", &out->log_driver, &e);
    if (rc == 0)
        rc = opt_kv(o, "log_opts", &out->log_opts, &out->nlog_opts, &e);
    if (rc == 0)
        rc = opt_str(o, "stop_signal", &out->stop_signal, &e);
    if (rc == 0)
        rc = opt_kv(o, "labels", &out->labels, &out->nlabels, &e);
    if (rc == 0)
        rc = parse_health(out, &e);
    if (rc == 0)
        rc = opt_bool(o, "read_only", &out->is_read_only, &e);
    if (rc == 0)
        rc = parse_hooks(o, out, &e);
    if (rc == 0 && out->instance_number > 0) {
        /* The id is "<service_id>/<n>"; a mismatch means a confused
         * master, and acting on it could remove the wrong container. */
        char *want =
            cp_asprintf("%s/%d", out->service_id, out->instance_number);
        if (strcmp(want, out->id) != 0)
            rc = bad(&e, "id", "not <service_id>/<instance_number>");
        cp_free(want);
    }
    if (rc != 0)
        pod_release(out);
    return rc;
}

int pods_parse_list(const json_t *result, struct pod **out, size_t *n,
                    char *err, size_t errlen)
{
    struct perr e = {err, errlen, ""};
    *out = NULL;
    *n = 0;
    const json_t *arr = json_object_get(result, "service_pods");
    if (!json_is_array(arr))
        return bad(&e, "service_pods", "not an array");
    struct pod *pods = cp_calloc(json_array_size(arr) + 1, sizeof(*pods));
    for (size_t i = 0; i < json_array_size(arr); i++) {
        char why[200];
        int rc = pods_parse(json_array_get(arr, i), &pods[i], why, sizeof(why));
        if (rc != 0) {
            if (err != NULL && errlen > 0)
                snprintf(err, errlen, "service_pods[%zu].%s", i, why);
            pods_free_list(pods, i);
            return rc;
        }
    }
    *out = pods;
    *n = json_array_size(arr);
    return 0;
}

void pod_release(struct pod *p)
{
    if (p == NULL)
        return;
    cp_free(p->id);
    cp_free(p->service_id);
    cp_free(p->service_name);
    cp_free(p->image_name);
    if (p->creds != NULL) {
        struct pod_creds *k = p->creds;
        if (k->password != NULL)
            memset(k->password, 0, strlen(k->password));
        cp_free(k->username);
        cp_free(k->password);
        cp_free(k->email);
        cp_free(k->serveraddress);
        cp_free(k);
    }
    cp_free(p->deploy_rev);
    strv_release(&p->cmd);
    strv_release(&p->entrypoint);
    strv_release(&p->env);
    kv_free(p->secrets, p->nsecrets);
    for (size_t i = 0; i < p->nhooks; i++) {
        cp_free(p->hooks[i].name);
        cp_free(p->hooks[i].cmd);
        cp_free(p->hooks[i].instances);
    }
    cp_free(p->hooks);
    for (size_t i = 0; i < p->nports; i++) {
        cp_free(p->ports[i].ip);
        cp_free(p->ports[i].protocol);
    }
    cp_free(p->ports);
    for (size_t i = 0; i < p->nvolumes; i++) {
        cp_free(p->volumes[i].bind_mount);
        cp_free(p->volumes[i].name);
        cp_free(p->volumes[i].path);
        cp_free(p->volumes[i].flags);
    }
    cp_free(p->volumes);
    cp_free(p->net);
    cp_free(p->hostname);
    cp_free(p->domainname);
    cp_free(p->user);
    strv_release(&p->cap_add);
    strv_release(&p->cap_drop);
    cp_free(p->log_driver);
    kv_free(p->log_opts, p->nlog_opts);
    cp_free(p->stop_signal);
    kv_free(p->labels, p->nlabels);
    cp_free(p->health.protocol);
    cp_free(p->health.uri);
    memset(p, 0, sizeof(*p));
}

void pods_free_list(struct pod *pods, size_t n)
{
    if (pods == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        pod_release(&pods[i]);
    cp_free(pods);
}

size_t pods_find(const struct pod *pods, size_t n, const char *service_id,
                 int instance_number)
{
    assert(n == 0 || pods != NULL);
    for (size_t i = 0; i < n; i++) {
        if (pods[i].instance_number == instance_number &&
            pods[i].service_id != NULL &&
            strcmp(pods[i].service_id, service_id) == 0)
            return i;
    }
    return PODS_NO_POD;
}

char *pods_container_name(const struct pod *p)
{
    assert(p != NULL && p->service_name != NULL);
    const char *svc = p->service_name;
    if (strncmp(svc, "null.", 5) == 0)
        svc += 5;
    return cp_asprintf("%s-%d", svc, p->instance_number);
}

/* ==== The create body ==== */

static json_t *strv_json(const struct pod_strv *s)
{
    json_t *a = json_array();
    for (size_t i = 0; i < s->n; i++)
        json_array_append_new(a, json_string(s->v[i]));
    return a;
}

static json_t *kv_json(const struct pod_kv *kv, size_t n)
{
    json_t *o = json_object();
    for (size_t i = 0; i < n; i++)
        json_object_set_new(o, kv[i].key, json_string(kv[i].value));
    return o;
}

static bool shares_netns(const char *net)
{
    return net != NULL &&
           (strcmp(net, "host") == 0 || strncmp(net, "container:", 10) == 0);
}

char *pods_secrets_rev(const struct pod *p)
{
    if (p->nsecrets == 0)
        return NULL;
    struct cp_buf b;
    cp_buf_init(&b, (size_t)1 << 26);
    cp_buf_printf(&b, "kontena secrets v1\n%s\n%d\n",
                  p->service_id ? p->service_id : "", p->instance_number);
    /* Length-prefixed, so no two lists give the same bytes. */
    for (size_t i = 0; i < p->nsecrets; i++)
        cp_buf_printf(&b, "%zu:%s%zu:%s", strlen(p->secrets[i].key),
                      p->secrets[i].key, strlen(p->secrets[i].value),
                      p->secrets[i].value);
    char hex[65];
    cp_sha256_hex(b.data, b.len, hex);
    OPENSSL_cleanse(b.data, b.len);
    cp_buf_release(&b);
    return cp_strdup(hex);
}

static json_t *spec_labels(const struct pod *p)
{
    json_t *l = kv_json(p->labels, p->nlabels);
    char *name = pods_container_name(p);
    char num[32];
    /* The diff finds our containers by these; they win over whatever
     * the master put in the pod's labels. */
    cp_json_set_str(l, LABEL_SERVICE_ID, p->service_id);
    cp_json_set_str(l, "io.kontena.container.name", name);
    cp_json_set_str(l, "io.kontena.container.type", "container");
    if (p->deploy_rev != NULL)
        cp_json_set_str(l, LABEL_DEPLOY_REV, p->deploy_rev);
    snprintf(num, sizeof(num), "%lld", p->service_revision);
    cp_json_set_str(l, LABEL_CONT_REVISION, num);
    snprintf(num, sizeof(num), "%d", p->instance_number);
    cp_json_set_str(l, LABEL_INSTANCE, num);
    cp_free(name);
    char *rev = pods_secrets_rev(p);
    if (rev != NULL) {
        struct cp_buf names;
        cp_buf_init(&names, (size_t)1 << 20);
        for (size_t i = 0; i < p->nsecrets; i++)
            cp_buf_printf(&names, "%s%s", i > 0 ? "," : "",
                          p->secrets[i].key);
        cp_json_set_str(l, LABEL_SECRETS_REV, rev);
        cp_json_set_str(l, LABEL_SECRET_ENV, names.data);
        cp_buf_release(&names);
        cp_free(rev);
    } else {
        json_object_del(l, LABEL_SECRETS_REV);
        json_object_del(l, LABEL_SECRET_ENV);
    }
    return l;
}

static json_t *spec_env(const struct pod *p)
{
    json_t *env = strv_json(&p->env);
    for (size_t i = 0; i < p->nsecrets; i++) {
        char *kv = cp_asprintf("%s=%s", p->secrets[i].key, p->secrets[i].value);
        json_array_append_new(env, json_string(kv));
        cp_free(kv);
    }
    return env;
}

/* ExposedPorts and HostConfig.PortBindings; one container port may be
 * published on several host ports. */
static void spec_ports(const struct pod *p, json_t *body, json_t *host)
{
    if (p->nports == 0)
        return;
    json_t *exposed = json_object();
    json_t *bindings = json_object();
    for (size_t i = 0; i < p->nports; i++) {
        const struct pod_port *pp = &p->ports[i];
        char key[32], host_port[16];
        snprintf(key, sizeof(key), "%d/%s", pp->container_port, pp->protocol);
        json_object_set_new(exposed, key, json_object());
        if (pp->node_port == 0)
            continue;
        json_t *list = json_object_get(bindings, key);
        if (list == NULL) {
            list = json_array();
            json_object_set_new(bindings, key, list);
        }
        snprintf(host_port, sizeof(host_port), "%d", pp->node_port);
        json_t *b = json_object();
        /* "All addresses" is said by leaving HostIp out: Podman turns an
         * explicit 0.0.0.0 into a DNAT rule for 0.0.0.0/32 that matches
         * no traffic. */
        if (pp->ip != NULL && pp->ip[0] != '\0' &&
            strcmp(pp->ip, "0.0.0.0") != 0 && strcmp(pp->ip, "::") != 0)
            cp_json_set_str(b, "HostIp", pp->ip);
        cp_json_set_str(b, "HostPort", host_port);
        json_array_append_new(list, b);
    }
    json_object_set_new(body, "ExposedPorts", exposed);
    json_object_set_new(host, "PortBindings", bindings);
}

/* Bind mounts and named volumes go to Binds ("src:path[:flags]");
 * anonymous ones to Volumes. */
static void spec_volumes(const struct pod *p, json_t *body, json_t *host)
{
    json_t *binds = json_array();
    json_t *anon = json_object();
    for (size_t i = 0; i < p->nvolumes; i++) {
        const struct pod_volume *v = &p->volumes[i];
        const char *src = v->bind_mount != NULL ? v->bind_mount : v->name;
        if (src == NULL) {
            json_object_set_new(anon, v->path, json_object());
            continue;
        }
        char *bind = v->flags != NULL
                         ? cp_asprintf("%s:%s:%s", src, v->path, v->flags)
                         : cp_asprintf("%s:%s", src, v->path);
        json_array_append_new(binds, json_string(bind));
        cp_free(bind);
    }
    if (json_array_size(binds) > 0)
        json_object_set(host, "Binds", binds);
    if (json_object_size(anon) > 0)
        json_object_set(body, "Volumes", anon);
    json_decref(binds);
    json_decref(anon);
}

static json_t *spec_host_config(const struct pod *p, json_t *body)
{
    json_t *h = json_object();
    spec_ports(p, body, h);
    spec_volumes(p, body, h);
    if (p->memory > 0)
        json_object_set_new(h, "Memory", json_integer(p->memory));
    if (p->memory_swap != 0)
        json_object_set_new(h, "MemorySwap", json_integer(p->memory_swap));
    if (p->cpu_shares > 0)
        json_object_set_new(h, "CpuShares", json_integer(p->cpu_shares));
    if (p->cpus > 0)
        json_object_set_new(h, "NanoCpus",
                            json_integer((json_int_t)(p->cpus * 1e9 + 0.5)));
    json_object_set_new(h, "Privileged", json_boolean(p->is_privileged));
    if (p->cap_add.n > 0)
        json_object_set_new(h, "CapAdd", strv_json(&p->cap_add));
    if (p->cap_drop.n > 0)
        json_object_set_new(h, "CapDrop", strv_json(&p->cap_drop));
    cp_json_set_str(h, "NetworkMode", p->net != NULL ? p->net : "bridge");
    if (p->log_driver != NULL) {
        json_t *log = json_object();
        cp_json_set_str(log, "Type", p->log_driver);
        json_object_set_new(log, "Config", kv_json(p->log_opts, p->nlog_opts));
        json_object_set_new(h, "LogConfig", log);
    }
    json_object_set_new(h, "ReadonlyRootfs", json_boolean(p->is_read_only));
    /* An init process makes SIGTERM work for images whose command runs
     * as PID 1 without a handler (engine/NOTES.md: stop with catatonit
     * takes 0.2 s instead of the full timeout). */
    json_object_set_new(h, "Init", json_true());
    /* The agent restarts crashed containers itself, with backoff. */
    json_t *restart = json_object();
    cp_json_set_str(restart, "Name", "no");
    json_object_set_new(h, "RestartPolicy", restart);
    return h;
}

int pods_container_spec(const struct pod *p, json_t **create_body)
{
    assert(p != NULL && create_body != NULL);
    json_t *b = json_object();
    cp_json_set_str(b, "Image", p->image_name);
    if (p->cmd.v != NULL)
        json_object_set_new(b, "Cmd", strv_json(&p->cmd));
    if (p->entrypoint.v != NULL)
        json_object_set_new(b, "Entrypoint", strv_json(&p->entrypoint));
    json_object_set_new(b, "Env", spec_env(p));
    json_object_set_new(b, "Labels", spec_labels(p));
    /* The engine refuses a hostname in a shared network namespace. */
    if (!shares_netns(p->net)) {
        if (p->hostname != NULL)
            cp_json_set_str(b, "Hostname", p->hostname);
        if (p->domainname != NULL)
            cp_json_set_str(b, "Domainname", p->domainname);
    }
    if (p->user != NULL)
        cp_json_set_str(b, "User", p->user);
    if (p->stop_signal != NULL)
        cp_json_set_str(b, "StopSignal", p->stop_signal);
    if (p->stop_grace_period >= 0)
        json_object_set_new(b, "StopTimeout",
                            json_integer(p->stop_grace_period));
    json_object_set_new(b, "HostConfig", spec_host_config(p, b));
    *create_body = b;
    return 0;
}

/* ==== Actual containers ==== */

struct lb_pair {
    const char *k, *v;
};

static int lb_cmp(const void *a, const void *b)
{
    return strcmp(((const struct lb_pair *)a)->k,
                  ((const struct lb_pair *)b)->k);
}

/* The load balancer labels as one comparable string, or NULL. */
static char *lb_signature(struct lb_pair *pairs, size_t n)
{
    if (n == 0)
        return NULL;
    qsort(pairs, n, sizeof(*pairs), lb_cmp);
    struct cp_buf b;
    cp_buf_init(&b, SIZE_MAX);
    for (size_t i = 0; i < n; i++)
        cp_buf_printf(&b, "%s=%s\n", pairs[i].k, pairs[i].v);
    char *s = cp_strdup(b.data);
    cp_buf_release(&b);
    return s;
}

static char *pod_lb_signature(const struct pod *p)
{
    struct lb_pair *pairs = cp_calloc(p->nlabels + 1, sizeof(*pairs));
    size_t n = 0;
    for (size_t i = 0; i < p->nlabels; i++)
        if (strncmp(p->labels[i].key, LABEL_LB_PREFIX,
                    strlen(LABEL_LB_PREFIX)) == 0)
            pairs[n++] = (struct lb_pair){p->labels[i].key, p->labels[i].value};
    char *s = lb_signature(pairs, n);
    cp_free(pairs);
    return s;
}

static long long label_int(const json_t *labels, const char *key)
{
    long long v;
    if (cp_parse_int(cp_json_str(labels, key), 0, INT64_MAX, &v) != 0)
        return -1;
    return v;
}

static void fill_labels(const json_t *labels, struct actual *out)
{
    out->instance_number = -1;
    out->service_revision = -1;
    if (!json_is_object(labels))
        return;
    const char *sid = cp_json_str(labels, LABEL_SERVICE_ID);
    if (sid == NULL)
        return;
    out->service_id = cp_strdup(sid);
    long long n = label_int(labels, LABEL_INSTANCE);
    out->instance_number = n >= 0 && n <= 1000000 ? (int)n : -1;
    out->service_revision = label_int(labels, LABEL_SVC_REVISION);
    if (out->service_revision < 0)
        out->service_revision = label_int(labels, LABEL_CONT_REVISION);
    const char *rev = cp_json_str(labels, LABEL_DEPLOY_REV);
    out->deploy_rev = rev != NULL ? cp_strdup(rev) : NULL;
    const char *srev = cp_json_str(labels, LABEL_SECRETS_REV);
    out->secrets_rev = srev != NULL ? cp_strdup(srev) : NULL;

    struct lb_pair *pairs =
        cp_calloc(json_object_size(labels) + 1, sizeof(*pairs));
    size_t np = 0;
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)(uintptr_t)labels, k, v)
    {
        if (strncmp(k, LABEL_LB_PREFIX, strlen(LABEL_LB_PREFIX)) == 0 &&
            json_is_string(v))
            pairs[np++] = (struct lb_pair){k, json_string_value(v)};
    }
    out->lb_labels = lb_signature(pairs, np);
    cp_free(pairs);
}

/* Engine times; Go's zero time ("0001-01-01T00:00:00Z") means never. */
static int64_t engine_time(const json_t *o, const char *key)
{
    const char *s = cp_json_str(o, key);
    int64_t ms = 0;
    if (s == NULL || cp_time_parse_iso(s, &ms) != 0 || ms <= 0)
        return 0;
    return ms;
}

static int start_actual(const char *id, const char *name, struct actual *out)
{
    memset(out, 0, sizeof(*out));
    out->instance_number = -1;
    out->service_revision = -1;
    if (id == NULL || id[0] == '\0' || name == NULL)
        return CP_EPROTO;
    if (name[0] == '/')
        name++;
    if (name[0] == '\0')
        return CP_EPROTO;
    out->id = cp_strdup(id);
    out->name = cp_strdup(name);
    return 0;
}

int pods_actual_from_inspect(const json_t *inspect, struct actual *out)
{
    int rc = start_actual(cp_json_str(inspect, "Id"),
                          cp_json_str(inspect, "Name"), out);
    if (rc != 0)
        return rc;
    fill_labels(json_object_get(json_object_get(inspect, "Config"), "Labels"),
                out);
    const char *image = cp_json_str(inspect, "Image");
    out->image_id = image != NULL ? cp_strdup(image) : NULL;
    const json_t *st = json_object_get(inspect, "State");
    out->is_running = cp_json_bool(st, "Running", false);
    out->exit_code = (int)cp_json_int(st, "ExitCode", 0);
    const char *error = cp_json_str(st, "Error");
    out->error = error != NULL && error[0] != '\0' ? cp_strdup(error) : NULL;
    out->started_at_ms = engine_time(st, "StartedAt");
    out->finished_at_ms = engine_time(st, "FinishedAt");
    return 0;
}

int pods_actual_from_list_row(const json_t *row, struct actual *out)
{
    const json_t *names = json_object_get(row, "Names");
    const char *name = json_is_array(names)
                           ? json_string_value(json_array_get(names, 0))
                           : NULL;
    int rc = start_actual(cp_json_str(row, "Id"), name, out);
    if (rc != 0)
        return rc;
    fill_labels(json_object_get(row, "Labels"), out);
    const char *image = cp_json_str(row, "ImageID");
    out->image_id = image != NULL ? cp_strdup(image) : NULL;
    const char *state = cp_json_str(row, "State");
    out->is_running = state != NULL && strcmp(state, "running") == 0;
    return 0;
}

void pods_actual_release(struct actual *a)
{
    if (a == NULL)
        return;
    cp_free(a->name);
    cp_free(a->id);
    cp_free(a->service_id);
    cp_free(a->deploy_rev);
    cp_free(a->lb_labels);
    cp_free(a->secrets_rev);
    cp_free(a->image_id);
    cp_free(a->error);
    memset(a, 0, sizeof(*a));
}

/* ==== Agent memory ==== */

void pods_state_init(struct pods_state *s)
{
    memset(s, 0, sizeof(*s));
}

void pods_state_release(struct pods_state *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->nc; i++)
        cp_free(s->c[i].name);
    cp_free(s->c);
    for (size_t i = 0; i < s->nimages; i++) {
        cp_free(s->images[i].name);
        cp_free(s->images[i].id);
    }
    cp_free(s->images);
    memset(s, 0, sizeof(*s));
}

const struct pods_cstate *pods_state_get(const struct pods_state *s,
                                         const char *name)
{
    if (s == NULL)
        return NULL;
    for (size_t i = 0; i < s->nc; i++)
        if (strcmp(s->c[i].name, name) == 0)
            return &s->c[i];
    return NULL;
}

static struct pods_cstate *cstate_put(struct pods_state *s, const char *name)
{
    for (size_t i = 0; i < s->nc; i++)
        if (strcmp(s->c[i].name, name) == 0)
            return &s->c[i];
    s->c = cp_realloc(s->c, (s->nc + 1) * sizeof(*s->c));
    struct pods_cstate *c = &s->c[s->nc++];
    memset(c, 0, sizeof(*c));
    c->name = cp_strdup(name);
    return c;
}

void pods_state_started(struct pods_state *s, const char *name, int restarts,
                        int64_t now_ms)
{
    struct pods_cstate *c = cstate_put(s, name);
    c->restarts = restarts;
    c->last_start_ms = now_ms;
    c->is_stopped_by_agent = false;
}

void pods_state_stopped(struct pods_state *s, const char *name)
{
    cstate_put(s, name)->is_stopped_by_agent = true;
}

void pods_state_forget(struct pods_state *s, const char *name)
{
    for (size_t i = 0; i < s->nc; i++) {
        if (strcmp(s->c[i].name, name) != 0)
            continue;
        cp_free(s->c[i].name);
        s->c[i] = s->c[--s->nc];
        return;
    }
}

void pods_state_set_image(struct pods_state *s, const char *image_name,
                          const char *image_id)
{
    for (size_t i = 0; i < s->nimages; i++) {
        if (strcmp(s->images[i].name, image_name) == 0) {
            cp_free(s->images[i].id);
            s->images[i].id = cp_strdup(image_id);
            return;
        }
    }
    s->images = cp_realloc(s->images, (s->nimages + 1) * sizeof(*s->images));
    s->images[s->nimages].name = cp_strdup(image_name);
    s->images[s->nimages].id = cp_strdup(image_id);
    s->nimages++;
}

const char *pods_state_image(const struct pods_state *s, const char *image_name)
{
    if (s == NULL)
        return NULL;
    for (size_t i = 0; i < s->nimages; i++)
        if (strcmp(s->images[i].name, image_name) == 0)
            return s->images[i].id;
    return NULL;
}

/* ==== The diff ==== */

void pods_actions_init(struct pods_actions *a)
{
    memset(a, 0, sizeof(*a));
}

void pods_actions_release(struct pods_actions *a)
{
    if (a == NULL)
        return;
    for (size_t i = 0; i < a->n; i++) {
        cp_free(a->v[i].name);
        cp_free(a->v[i].container_id);
        cp_free(a->v[i].reason);
    }
    cp_free(a->v);
    for (size_t i = 0; i < a->nreports; i++) {
        cp_free(a->reports[i].service_id);
        cp_free(a->reports[i].rev);
        cp_free(a->reports[i].error);
    }
    cp_free(a->reports);
    memset(a, 0, sizeof(*a));
}

/* Appends an action; reason is taken over (it comes from cp_asprintf). */
static struct pods_action *push(struct pods_actions *out,
                                enum pods_action_kind kind, const char *name,
                                const struct actual *a, size_t pod,
                                char *reason)
{
    /* Grow at powers of two; n is never past the capacity. */
    if (out->n == 0 || (out->n & (out->n - 1)) == 0)
        out->v =
            cp_realloc(out->v, (out->n < 4 ? 4 : 2 * out->n) * sizeof(*out->v));
    struct pods_action *act = &out->v[out->n++];
    memset(act, 0, sizeof(*act));
    act->kind = kind;
    act->name = cp_strdup(name);
    act->container_id = a != NULL ? cp_strdup(a->id) : NULL;
    act->pod = pod;
    act->reason = reason;
    return act;
}

/* Why a container of ours no longer fits its running pod (caller
 * frees), or NULL when it does. Deploy-driven, so no backoff. */
static char *stale_reason(const struct pod *p, const struct actual *a,
                          const struct pods_state *state)
{
    if (strcmp(a->service_id, p->service_id) != 0)
        return cp_asprintf("container belongs to service %s", a->service_id);
    if (a->service_revision < p->service_revision)
        return cp_asprintf("service revision %lld is newer than %lld",
                           p->service_revision, a->service_revision);
    char *lb = pod_lb_signature(p);
    bool lb_changed = !str_eq(lb, a->lb_labels);
    cp_free(lb);
    if (lb_changed)
        return cp_asprintf("load balancer labels changed");
    char *secrets = pods_secrets_rev(p);
    bool secrets_changed = !str_eq(secrets, a->secrets_rev);
    cp_free(secrets);
    if (secrets_changed)
        return cp_asprintf("secret values changed");
    /* Only a new deploy may pick up a new image behind the same name. */
    const char *image = pods_state_image(state, p->image_name);
    if (!str_eq(p->deploy_rev, a->deploy_rev) && image != NULL &&
        a->image_id != NULL && strcmp(image, a->image_id) != 0)
        return cp_asprintf("image %s changed", p->image_name);
    return NULL;
}

static int64_t backoff_ms(int n)
{
    return n >= 6 ? PODS_BACKOFF_MAX_MS : (int64_t)n * n * 1000;
}

/* A desired-running pod whose container of ours is not running. */
static void diff_not_running(size_t i, const char *name, const struct actual *a,
                             const struct pods_state *state, int64_t now_ms,
                             struct pods_actions *out, struct pods_report *r)
{
    const struct pods_cstate *st = pods_state_get(state, name);
    bool is_ours_stop = st != NULL && st->is_stopped_by_agent;
    bool has_run = a->started_at_ms > 0 || a->error != NULL;
    if (is_ours_stop || !has_run) {
        push(out, PODS_START, name, a, i,
             cp_asprintf(is_ours_stop ? "desired running, stopped by agent"
                                      : "desired running, never started"));
        r->state = PODS_REPORT_STOPPED;
        return;
    }

    /* It crashed. n is the restart about to happen, counted from 1
     * again when it had been up long enough before it died. */
    int64_t started = a->started_at_ms;
    int64_t died = a->finished_at_ms > 0 ? a->finished_at_ms
                   : st != NULL          ? st->last_start_ms
                                         : 0;
    int prev = st != NULL ? st->restarts : 0;
    if (started > 0 && died >= started && died - started >= PODS_RESET_UP_MS)
        prev = 0;
    int n = prev + 1;
    int64_t delay = backoff_ms(n);
    r->state = PODS_REPORT_RESTARTING;
    r->error = a->error != NULL
                   ? cp_strdup(a->error)
                   : cp_asprintf("exited with code %d", a->exit_code);
    if (died > 0 && now_ms - died < delay) {
        struct pods_action *w = push(out, PODS_WAIT, name, a, i,
                                     cp_asprintf("restart %d backs off %lld s",
                                                 n, (long long)(delay / 1000)));
        w->wait_ms = delay - (now_ms - died);
        if (out->wake_in_ms == 0 || w->wait_ms < out->wake_in_ms)
            out->wake_in_ms = w->wait_ms;
        return;
    }
    /* An engine error (a port taken, a missing mount) sticks to the
     * container; only a fresh one can start. */
    if (a->error != NULL)
        push(out, PODS_RECREATE, name, a, i,
             cp_asprintf("engine error: %s", a->error));
    struct pods_action *s = push(
        out, PODS_START, name, a->error != NULL ? NULL : a, i,
        cp_asprintf("crashed (exit code %d), restart %d", a->exit_code, n));
    s->restarts = n;
}

static void diff_pod(const struct pod *p, size_t i, const char *name,
                     const struct actual *a, const struct pods_state *state,
                     int64_t now_ms, struct pods_actions *out,
                     struct pods_report *r)
{
    size_t before = out->n;
    if (a == NULL) {
        r->state = PODS_REPORT_MISSING;
        if (p->desired == POD_RUNNING) {
            push(out, PODS_CREATE, name, NULL, i, cp_asprintf("no container"));
            push(out, PODS_START, name, NULL, i, cp_asprintf("created"));
        }
    } else if (a->service_id == NULL) {
        /* Never touch what is not ours, even when it blocks us. */
        r->state = PODS_REPORT_MISSING;
        r->error = cp_asprintf("name %s is taken by a container not "
                               "managed by kontena",
                               name);
    } else {
        r->state = a->is_running ? PODS_REPORT_RUNNING : PODS_REPORT_STOPPED;
        switch (p->desired) {
        case POD_RUNNING: {
            char *why = stale_reason(p, a, state);
            if (why != NULL) {
                push(out, PODS_RECREATE, name, a, i, why);
                push(out, PODS_START, name, NULL, i, cp_asprintf("recreated"));
            } else if (!a->is_running) {
                diff_not_running(i, name, a, state, now_ms, out, r);
            }
            break;
        }
        case POD_STOPPED:
            if (a->is_running)
                push(out, PODS_STOP, name, a, i,
                     cp_asprintf("desired stopped"));
            break;
        case POD_INITIALIZED:
            break;
        }
    }
    r->is_settled = true;
    for (size_t k = before; k < out->n; k++)
        if (out->v[k].kind != PODS_WAIT)
            r->is_settled = false;
}

int pods_diff(const struct pod *desired, size_t nd, const struct actual *actual,
              size_t na, const struct pods_state *state, int64_t now_ms,
              struct pods_actions *out)
{
    assert(out != NULL && out->n == 0 && out->nreports == 0);
    assert(nd == 0 || desired != NULL);
    assert(na == 0 || actual != NULL);
    char **names = cp_calloc(nd + 1, sizeof(*names));
    for (size_t i = 0; i < nd; i++)
        names[i] = pods_container_name(&desired[i]);

    /* Orphans first: removing them frees names and host ports. */
    for (size_t j = 0; j < na; j++) {
        if (actual[j].service_id == NULL)
            continue;
        bool is_claimed = false;
        for (size_t i = 0; i < nd && !is_claimed; i++)
            is_claimed = strcmp(names[i], actual[j].name) == 0;
        if (!is_claimed)
            push(out, PODS_REMOVE, actual[j].name, &actual[j], PODS_NO_POD,
                 cp_asprintf("service %s instance %d is not desired here",
                             actual[j].service_id, actual[j].instance_number));
    }

    out->reports = cp_calloc(nd + 1, sizeof(*out->reports));
    out->nreports = nd;
    for (size_t i = 0; i < nd; i++) {
        const struct pod *p = &desired[i];
        const struct actual *a = NULL;
        for (size_t j = 0; j < na && a == NULL; j++)
            if (strcmp(actual[j].name, names[i]) == 0)
                a = &actual[j];
        struct pods_report *r = &out->reports[i];
        r->service_id = cp_strdup(p->service_id);
        r->instance_number = p->instance_number;
        r->rev = p->deploy_rev != NULL ? cp_strdup(p->deploy_rev) : NULL;
        diff_pod(p, i, names[i], a, state, now_ms, out, r);
    }

    for (size_t i = 0; i < nd; i++)
        cp_free(names[i]);
    cp_free(names);
    return 0;
}

const char *pods_action_kind_name(enum pods_action_kind k)
{
    switch (k) {
    case PODS_CREATE:
        return "create";
    case PODS_START:
        return "start";
    case PODS_STOP:
        return "stop";
    case PODS_RECREATE:
        return "recreate";
    case PODS_REMOVE:
        return "remove";
    case PODS_WAIT:
        return "wait";
    }
    return "?";
}

const char *pods_report_state_name(enum pods_report_state s)
{
    switch (s) {
    case PODS_REPORT_RUNNING:
        return "running";
    case PODS_REPORT_STOPPED:
        return "stopped";
    case PODS_REPORT_RESTARTING:
        return "restarting";
    case PODS_REPORT_MISSING:
        return "missing";
    }
    return "?";
}
