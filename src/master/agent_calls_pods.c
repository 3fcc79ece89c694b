/* Agent -> master calls about service pods and containers (spec 4.5):
 * the desired-state pull, instance state reports, pod events, container
 * records, logs and health. Rows in agent_calls.c's calls[] point here.
 * Every handler runs on a worker with the calling session's node (row_id)
 * and grid; the node id inside params is checked for shape but never
 * trusted: a node only ever reads and writes its own rows.
 * SPDX-License-Identifier: Apache-2.0 */
#include "agent_calls.h"
#include "pods_view.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../common/rpc.h"
#include "../common/util.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define LOG_BATCH_MAX 1000       /* entries taken from one log_batch */
#define LOG_LINE_MAX (64 * 1024) /* bytes kept of one log line */
#define CLEANUP_MAX 10000        /* container ids in one cleanup */
#define REPORT_ERROR_MAX 4096    /* bytes kept of an instance error */
#define FIELD_MAX 256            /* ids, revs, states, names */

static void fail_rc(struct agent_call *c, int rc)
{
    agent_call_error(c, rc == CP_ENOTFOUND ? 404 : 500, cp_strerror(rc));
}

/* A string of 1..FIELD_MAX bytes, or NULL. */
static const char *short_str(const json_t *v)
{
    if (!json_is_string(v))
        return NULL;
    size_t len = json_string_length(v);
    return len > 0 && len <= FIELD_MAX ? json_string_value(v) : NULL;
}

static bool is_row_id(const char *s)
{
    if (s == NULL || strlen(s) != STORE_ID_LEN)
        return false;
    for (const char *p = s; *p != '\0'; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

/* params must be [node_id, object]; returns the object or NULL after
 * answering 400. */
static const json_t *node_and_object(struct agent_call *c, const char *what)
{
    const json_t *obj = json_array_get(c->params, 1);
    if (!json_is_array(c->params) ||
        short_str(json_array_get(c->params, 0)) == NULL ||
        !json_is_object(obj)) {
        char msg[128];
        snprintf(msg, sizeof(msg), "params must be [node_id, %s]", what);
        agent_call_error(c, 400, msg);
        return NULL;
    }
    return obj;
}

/* Copies at most max bytes of s, cut back to a UTF-8 character boundary.
 * Caller frees. */
static char *utf8_prefix(const char *s, size_t len, size_t max)
{
    if (len > max) {
        len = max;
        while (len > 0 && ((unsigned char)s[len] & 0xC0) == 0x80)
            len--;
    }
    return cp_strndup(s, len);
}

/* ==== /node_service_pods/list [node_id] ==== */

void agent_calls_pods_list(struct agent_call *c)
{
    if (!json_is_array(c->params) ||
        short_str(json_array_get(c->params, 0)) == NULL) {
        agent_call_error(c, 400, "params must be [node_id]");
        return;
    }
    struct store *st = c->m->store;
    struct store_instance_list insts = {0};
    struct store_service_list svcs = {0};
    struct store_node node = {0};
    struct store_grid grid = {0};
    int rc = ST_CALL(st, node_get, c->row_id, &node);
    if (rc == 0)
        rc = ST_CALL(st, grid_get_by_id, c->grid_id, &grid);
    if (rc == 0)
        rc = ST_CALL(st, instances_on_node, c->row_id, &insts, &svcs);
    if (rc != 0) {
        fail_rc(c, rc);
        goto out;
    }
    json_t *pods = json_array();
    for (size_t i = 0; i < insts.len && i < svcs.len; i++) {
        const struct store_service *svc = &svcs.items[i];
        /* A pod without an image would make the agent refuse the whole
         * list; the API never stores one, so this is only defence. */
        if (cp_json_str(svc->spec, "image") == NULL) {
            cp_warn("pods: service %s has no image; pod skipped", svc->id);
            continue;
        }
        json_array_append_new(
            pods, pods_view_pod(svc, &insts.items[i], &grid, &node));
    }
    c->result = json_pack("{s:o}", "service_pods", pods);
out:
    store_instance_list_release(&insts);
    store_service_list_release(&svcs);
    store_node_release(&node);
    store_grid_release(&grid);
}

/* ==== /node_service_pods/set_state [node_id, {...}] ==== */

void agent_calls_pods_set_state(struct agent_call *c)
{
    const json_t *o = node_and_object(c, "state");
    if (o == NULL)
        return;
    const char *sid = cp_json_str(o, "service_id");
    json_t *num = json_object_get(o, "instance_number");
    json_t *rev = json_object_get(o, "rev");
    const char *state = short_str(json_object_get(o, "state"));
    json_t *err = json_object_get(o, "error");
    if (!is_row_id(sid) || !json_is_integer(num) ||
        json_integer_value(num) < 1 || json_integer_value(num) > 1000000 ||
        !(rev == NULL || json_is_null(rev) || short_str(rev) != NULL) ||
        state == NULL ||
        !(err == NULL || json_is_null(err) || json_is_string(err))) {
        agent_call_error(c, 400,
                         "state must be {service_id, instance_number, rev, "
                         "state, error}");
        return;
    }
    char *error = NULL;
    if (json_is_string(err) && json_string_length(err) > 0)
        error = utf8_prefix(json_string_value(err), json_string_length(err),
                            REPORT_ERROR_MAX);
    int rc =
        ST_CALL(c->m->store, instance_report, sid, (int)json_integer_value(num),
                c->row_id, json_is_string(rev) ? json_string_value(rev) : NULL,
                state, error);
    cp_free(error);
    if (rc != 0) {
        fail_rc(c, rc);
        return;
    }
    c->result = json_object();
}

/* ==== /node_service_pods/event [node_id, {...}] ==== */

static int severity_of(const json_t *v)
{
    if (json_is_integer(v))
        return json_integer_value(v) < 0   ? 0
               : json_integer_value(v) > 3 ? 3
                                           : (int)json_integer_value(v);
    const char *s = json_string_value(v);
    if (s == NULL)
        return 1;
    static const char *const names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return strcmp(s, "warning") == 0 ? 2 : 1;
}

void agent_calls_pods_event(struct agent_call *c)
{
    const json_t *o = node_and_object(c, "event");
    if (o == NULL)
        return;
    const char *sid = cp_json_str(o, "service_id");
    const char *type = short_str(json_object_get(o, "type"));
    json_t *data = json_object_get(o, "data");
    if (!is_row_id(sid) || type == NULL) {
        agent_call_error(c, 400,
                         "event must be {service_id, "
                         "instance_number, type, severity, data}");
        return;
    }
    struct store_service svc = {0};
    int rc = ST_CALL(c->m->store, service_get_by_id, sid, &svc);
    if (rc != 0 || strcmp(svc.grid_id, c->grid_id) != 0) {
        store_service_release(&svc);
        agent_call_error(c, 404, "no such service in this grid");
        return;
    }
    char *dump =
        json_is_string(data) ? NULL : cp_json_dump(data ? data : json_null());
    const char *text = dump ? dump : json_string_value(data);
    char *msg = utf8_prefix(text, strlen(text), REPORT_ERROR_MAX);
    struct store_event ev = {
        .severity = severity_of(json_object_get(o, "severity")),
        .type = (char *)(uintptr_t)type,
        .message = msg,
        .meta = json_pack("{s:O?}", "instance_number",
                          json_object_get(o, "instance_number")),
        .created_at = cp_now_ms(),
    };
    memcpy(ev.grid_id, c->grid_id, sizeof(ev.grid_id));
    memcpy(ev.stack_id, svc.stack_id, sizeof(ev.stack_id));
    memcpy(ev.service_id, svc.id, sizeof(ev.service_id));
    memcpy(ev.node_id, c->row_id, sizeof(ev.node_id));
    rc = ST_CALL(c->m->store, events_append, &ev, 1);
    json_decref(ev.meta);
    cp_free(msg);
    cp_free(dump);
    store_service_release(&svc);
    if (rc != 0) {
        fail_rc(c, rc);
        return;
    }
    c->result = json_object();
}

/* ==== /containers/save [{node, container}] ==== */

static const char *status_of(const json_t *state)
{
    if (cp_json_bool(state, "OOMKilled", false))
        return "oom_killed";
    if (cp_json_bool(state, "Dead", false))
        return "dead";
    if (cp_json_bool(state, "Restarting", false))
        return "restarting";
    if (cp_json_bool(state, "Paused", false))
        return "paused";
    if (cp_json_bool(state, "Running", false))
        return "running";
    return "stopped";
}

/* True if the env entry "K=V" names one of the service's secret or
 * certificate variables. */
static bool is_secret_env(const char *kv, const json_t *spec)
{
    static const char *const lists[] = {"secrets", "certificates"};
    size_t klen = strcspn(kv, "=");
    for (size_t l = 0; l < CP_ARRAY_LEN(lists); l++) {
        size_t i;
        const json_t *s;
        json_array_foreach(json_object_get(spec, lists[l]), i, s)
        {
            const char *name = cp_json_str(s, "name");
            if (name == NULL && l == 1)
                name = "SSL_CERTS";
            if (name != NULL && strlen(name) == klen &&
                strncmp(name, kv, klen) == 0)
                return true;
        }
    }
    return false;
}

/* The part of docker inspect that the API shows (spec 3.2 "Container
 * JSON"), with the values of secret env vars removed. */
static json_t *reduce_inspect(const json_t *ins, const json_t *spec)
{
    const json_t *cfg = json_object_get(ins, "Config");
    const json_t *state = json_object_get(ins, "State");
    const json_t *labels = json_object_get(cfg, "Labels");
    const json_t *net = json_object_get(ins, "NetworkSettings");
    json_t *env = json_array();
    size_t i;
    const json_t *e;
    json_array_foreach(json_object_get(cfg, "Env"), i, e)
    {
        if (!json_is_string(e))
            continue;
        if (spec != NULL && is_secret_env(json_string_value(e), spec)) {
            size_t klen = strcspn(json_string_value(e), "=");
            char *k = cp_strndup(json_string_value(e), klen);
            char *kv = cp_asprintf("%s=", k);
            json_array_append_new(env, json_string(kv));
            cp_free(kv);
            cp_free(k);
        } else {
            json_array_append(env, (json_t *)(uintptr_t)e);
        }
    }
    json_t *st = json_object();
    static const struct {
        const char *from, *to;
    } smap[] = {{"Running", "running"},
                {"Paused", "paused"},
                {"Restarting", "restarting"},
                {"OOMKilled", "oom_killed"},
                {"Dead", "dead"},
                {"ExitCode", "exit_code"},
                {"Error", "error"},
                {"StartedAt", "started_at"},
                {"FinishedAt", "finished_at"},
                {"Pid", "pid"}};
    for (size_t k = 0; k < CP_ARRAY_LEN(smap); k++) {
        json_t *v = json_object_get(state, smap[k].from);
        if (v != NULL)
            json_object_set(st, smap[k].to, v);
    }
    json_t *out = json_object();
    json_object_set_new(out, "state", st);
    json_object_set_new(out, "env", env);
    static const struct {
        const char *key, *to;
    } copy[] = {{"Image", "image"},           {"Cmd", "cmd"},
                {"Entrypoint", "entrypoint"}, {"Hostname", "hostname"},
                {"Domainname", "domainname"}, {"Labels", "labels"}};
    for (size_t k = 0; k < CP_ARRAY_LEN(copy); k++) {
        json_t *v = json_object_get(cfg, copy[k].key);
        if (v != NULL)
            json_object_set(out, copy[k].to, v);
    }
    json_t *image_id = json_object_get(ins, "Image");
    if (json_is_string(image_id))
        json_object_set(out, "image_id", image_id);
    json_t *created = json_object_get(ins, "Created");
    if (json_is_string(created))
        json_object_set(out, "created", created);
    json_t *mounts = json_object_get(ins, "Mounts");
    if (json_is_array(mounts))
        json_object_set(out, "volumes", mounts);
    if (json_is_object(net)) {
        json_t *ns = json_object();
        json_t *ip = json_object_get(net, "IPAddress");
        json_t *ports = json_object_get(net, "Ports");
        if (ip != NULL)
            json_object_set(ns, "ip_address", ip);
        if (ports != NULL)
            json_object_set(ns, "ports", ports);
        json_object_set_new(out, "network_settings", ns);
    }
    cp_json_set_str(out, "deploy_rev",
                    cp_json_str(labels, "io.kontena.container.deploy_rev"));
    const char *srev =
        cp_json_str(labels, "io.kontena.container.service_revision");
    cp_json_set_str(out, "service_rev",
                    srev ? srev
                         : cp_json_str(labels, "io.kontena.service.revision"));
    return out;
}

void agent_calls_containers_save(struct agent_call *c)
{
    const json_t *o = json_array_get(c->params, 0);
    const json_t *ins = json_object_get(o, "container");
    const char *engine_id = short_str(json_object_get(ins, "Id"));
    if (!json_is_array(c->params) || !json_is_object(ins) ||
        engine_id == NULL) {
        agent_call_error(c, 400,
                         "params must be [{node, container: "
                         "<inspect with Id>}]");
        return;
    }
    const json_t *labels =
        json_object_get(json_object_get(ins, "Config"), "Labels");
    const char *sid = cp_json_str(labels, "io.kontena.service.id");
    const char *name = short_str(json_object_get(ins, "Name"));
    long long num = 0;
    const char *num_s =
        cp_json_str(labels, "io.kontena.service.instance_number");
    if (num_s == NULL || cp_parse_int(num_s, 0, 1000000, &num) != 0)
        num = 0;

    struct store_service svc = {0};
    bool has_svc = is_row_id(sid) &&
                   ST_CALL(c->m->store, service_get_by_id, sid, &svc) == 0 &&
                   strcmp(svc.grid_id, c->grid_id) == 0;
    int64_t now = cp_now_ms();
    int64_t created = now;
    const char *created_s = cp_json_str(ins, "Created");
    if (created_s != NULL && cp_time_parse_iso(created_s, &created) != 0)
        created = now;
    struct store_container ct = {
        .container_id = (char *)(uintptr_t)engine_id,
        .name = (char *)(uintptr_t)(name ? (name[0] == '/' ? name + 1 : name)
                                         : engine_id),
        .instance_number = (int)num,
        .status = (char *)(uintptr_t)status_of(json_object_get(ins, "State")),
        .info = reduce_inspect(ins, has_svc ? svc.spec : NULL),
        .created_at = created,
        .updated_at = now,
    };
    memcpy(ct.grid_id, c->grid_id, sizeof(ct.grid_id));
    memcpy(ct.node_id, c->row_id, sizeof(ct.node_id));
    if (has_svc)
        memcpy(ct.service_id, svc.id, sizeof(ct.service_id));
    int rc = ST_CALL(c->m->store, container_save, &ct);
    json_decref(ct.info);
    store_service_release(&svc);
    if (rc != 0) {
        fail_rc(c, rc);
        return;
    }
    c->result = json_object();
}

/* ==== /containers/event [{id, status, from, time}] ==== */

void agent_calls_containers_event(struct agent_call *c)
{
    const json_t *o = json_array_get(c->params, 0);
    const char *id = short_str(json_object_get(o, "id"));
    const char *status = short_str(json_object_get(o, "status"));
    if (!json_is_array(c->params) || id == NULL || status == NULL) {
        agent_call_error(c, 400, "params must be [{id, status, from, time}]");
        return;
    }
    if (strcmp(status, "destroy") == 0 || strcmp(status, "remove") == 0) {
        int rc = ST_CALL(c->m->store, container_delete, id);
        if (rc != 0 && rc != CP_ENOTFOUND) {
            fail_rc(c, rc);
            return;
        }
    }
    c->result = json_object();
}

/* ==== /containers/cleanup [node_id, [ids]] ==== */

void agent_calls_containers_cleanup(struct agent_call *c)
{
    const json_t *ids = json_array_get(c->params, 1);
    if (!json_is_array(c->params) ||
        short_str(json_array_get(c->params, 0)) == NULL ||
        !json_is_array(ids) || json_array_size(ids) > CLEANUP_MAX) {
        agent_call_error(c, 400, "params must be [node_id, [container ids]]");
        return;
    }
    size_t n = json_array_size(ids);
    const char **keep = cp_calloc(n + 1, sizeof(*keep));
    for (size_t i = 0; i < n; i++) {
        keep[i] = short_str(json_array_get(ids, i));
        if (keep[i] == NULL) {
            cp_free(keep);
            agent_call_error(c, 400, "container ids must be strings");
            return;
        }
    }
    int deleted = 0;
    int rc =
        ST_CALL(c->m->store, containers_cleanup, c->row_id, keep, n, &deleted);
    cp_free(keep);
    if (rc != 0) {
        fail_rc(c, rc);
        return;
    }
    c->result = json_pack("{s:i}", "deleted", deleted);
}

/* ==== /containers/log_batch [[{id, name?, time, type, data}, ...]] ==== */

static const struct store_container *
find_ct(const struct store_container_list *l, const char *engine_id)
{
    for (size_t i = 0; i < l->len; i++)
        if (l->items[i].container_id != NULL &&
            strcmp(l->items[i].container_id, engine_id) == 0)
            return &l->items[i];
    return NULL;
}

static int64_t time_of(const json_t *v, int64_t now)
{
    int64_t ms;
    if (json_is_string(v) && cp_time_parse_iso(json_string_value(v), &ms) == 0)
        return ms;
    if (json_is_integer(v) && json_integer_value(v) > 0)
        return json_integer_value(v) > 100000000000LL
                   ? json_integer_value(v)
                   : json_integer_value(v) * 1000;
    return now;
}

void agent_calls_containers_log_batch(struct agent_call *c)
{
    const json_t *batch = json_array_get(c->params, 0);
    if (!json_is_array(c->params) || !json_is_array(batch)) {
        agent_call_error(c, 400, "params must be [[{id, time, type, data}]]");
        return;
    }
    size_t n = json_array_size(batch);
    if (n > LOG_BATCH_MAX) {
        cp_warn("pods: log batch of %zu lines from a node; keeping the "
                "first %d",
                n, LOG_BATCH_MAX);
        n = LOG_BATCH_MAX;
    }
    struct store_container_list cts = {0};
    int rc =
        ST_CALL(c->m->store, container_list, c->grid_id, c->row_id, NULL, &cts);
    if (rc != 0) {
        fail_rc(c, rc);
        return;
    }
    struct store_log *v = cp_calloc(n + 1, sizeof(*v));
    size_t nv = 0;
    int64_t now = cp_now_ms();
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(batch, i);
        const char *id = short_str(json_object_get(e, "id"));
        const json_t *data = json_object_get(e, "data");
        if (id == NULL || !json_is_string(data))
            continue;
        const char *type = cp_json_str(e, "type");
        const struct store_container *ct = find_ct(&cts, id);
        const char *name =
            ct ? ct->name : short_str(json_object_get(e, "name"));
        struct store_log *l = &v[nv++];
        memcpy(l->grid_id, c->grid_id, sizeof(l->grid_id));
        memcpy(l->node_id, c->row_id, sizeof(l->node_id));
        if (ct != NULL)
            memcpy(l->service_id, ct->service_id, sizeof(l->service_id));
        l->container_id = (char *)(uintptr_t)id;
        l->name = (char *)(uintptr_t)(name ? name : id);
        l->type =
            (char *)(uintptr_t)(type && strcmp(type, "stderr") == 0 ? "stderr"
                                                                    : "stdout");
        l->data = utf8_prefix(json_string_value(data), json_string_length(data),
                              LOG_LINE_MAX);
        l->created_at = time_of(json_object_get(e, "time"), now);
    }
    rc = nv > 0 ? ST_CALL(c->m->store, logs_append, v, nv) : 0;
    for (size_t i = 0; i < nv; i++)
        cp_free(v[i].data);
    cp_free(v);
    store_container_list_release(&cts);
    if (rc != 0) {
        fail_rc(c, rc);
        return;
    }
    c->result = json_pack("{s:I}", "count", (json_int_t)nv);
}

/* ==== /containers/health [{id, status, ...}] ==== */

void agent_calls_containers_health(struct agent_call *c)
{
    const json_t *o = json_array_get(c->params, 0);
    const char *id = short_str(json_object_get(o, "id"));
    const char *status = short_str(json_object_get(o, "status"));
    if (!json_is_array(c->params) || id == NULL || status == NULL) {
        agent_call_error(c, 400, "params must be [{id, status}]");
        return;
    }
    struct store_container_list cts = {0};
    int rc =
        ST_CALL(c->m->store, container_list, c->grid_id, c->row_id, NULL, &cts);
    if (rc != 0) {
        fail_rc(c, rc);
        return;
    }
    struct store_container *ct =
        (struct store_container *)(uintptr_t)find_ct(&cts, id);
    if (ct == NULL) {
        store_container_list_release(&cts);
        agent_call_error(c, 404, "no such container on this node");
        return;
    }
    if (!json_is_object(ct->info)) {
        json_decref(ct->info);
        ct->info = json_object();
    }
    char when[32];
    json_t *h = json_pack("{s:s, s:s}", "status", status, "updated_at",
                          cp_time_iso(cp_now_ms(), when, sizeof(when)));
    json_t *code = json_object_get(o, "status_code");
    if (json_is_integer(code))
        json_object_set(h, "status_code", code);
    json_object_set_new(ct->info, "health_status", h);
    ct->updated_at = cp_now_ms();
    rc = ST_CALL(c->m->store, container_save, ct);
    store_container_list_release(&cts);
    if (rc != 0) {
        fail_rc(c, rc);
        return;
    }
    c->result = json_object();
}

/* ==== /containers/stat [{id, cpu, memory, network, time, ...}] ==== */

/* Keeps the latest stats sample on the container (shown in its JSON as
 * "stats"); history stays with the agent's next samples. */
void agent_calls_containers_stat(struct agent_call *c)
{
    const json_t *o = json_array_get(c->params, 0);
    const char *id = short_str(json_object_get(o, "id"));
    if (!json_is_array(c->params) || !json_is_object(o) || id == NULL) {
        agent_call_error(c, 400, "params must be [{id, ...stats}]");
        return;
    }
    struct store_container_list cts = {0};
    int rc =
        ST_CALL(c->m->store, container_list, c->grid_id, c->row_id, NULL, &cts);
    if (rc != 0) {
        fail_rc(c, rc);
        return;
    }
    struct store_container *ct =
        (struct store_container *)(uintptr_t)find_ct(&cts, id);
    if (ct == NULL) {
        store_container_list_release(&cts);
        agent_call_error(c, 404, "no such container on this node");
        return;
    }
    if (!json_is_object(ct->info)) {
        json_decref(ct->info);
        ct->info = json_object();
    }
    json_t *stats = json_deep_copy(o);
    json_object_del(stats, "id");
    json_object_set_new(ct->info, "stats", stats);
    rc = ST_CALL(c->m->store, container_save, ct);
    store_container_list_release(&cts);
    if (rc != 0) {
        fail_rc(c, rc);
        return;
    }
    c->result = json_object();
}
