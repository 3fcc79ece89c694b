/* The deploy engine (spec 5.3; issues #2212 #2215 #1275 #2415 #3003).
 *
 * Requests (worker functions called by API handlers) write the desired
 * state and queue deploys; the store coalesces queued deploys of one
 * service and hands each to one master at a time under a lease.
 *
 * On the loop, a 1 s poll (and every "deploys.queued" wake-up) claims
 * deploys while fewer than DEPLOY_MAX_INFLIGHT run here. Each claimed
 * deploy gets a deployer: a small state machine whose steps (prepare,
 * roll, finish) run on a worker, one step at a time, driven by a 0.1 s
 * loop timer, so nothing waits on the loop and no worker sleeps. Every
 * write of a deploy is fenced by the claim; a deployer that loses its
 * lease stops quietly and leaves the deploy to whoever took it.
 * SPDX-License-Identifier: Apache-2.0 */
#include "deploy.h"
#include "deploy_int.h"
#include "deploy_rules.h"
#include "feed.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../common/proto.h"
#include "../common/util.h"

#include <assert.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define DEPLOY_MAX_INFLIGHT 16
#define DEPLOY_POLL_MS 1000
#define DEPLOY_TICK_MS 100
/* Steps reuse the grid's node rows for this long (node_list parses every
 * node's JSON); a node going offline is seen within it. */
#define DEPLOY_NODES_MAX_AGE_MS 1000
#define DEPLOY_LEASE_MS 30000
#define DEPLOY_RENEW_MS 10000
#define DEPLOY_INSTANCE_TIMEOUT_S 300
/* With wait_for_port the agent probes for up to 300 s itself and then
 * reports why; the master waits longer so that reason, not a generic
 * timeout, reaches the user (issues #2415, #3003). */
#define DEPLOY_PORT_WAIT_MARGIN_S 60

/* ==== Small helpers ==== */

int deploy__env_seconds(const char *name, int def)
{
    long long v;
    const char *s = getenv(name);
    if (s == NULL || cp_parse_int(s, 0, 86400 * 365, &v) != 0)
        return def;
    return (int)v;
}

void deploy__event(struct master *m, const struct store_service *svc,
                   const char *node_id, int severity, const char *type,
                   const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    struct store_event ev = {
        .severity = severity,
        .type = (char *)(uintptr_t)type,
        .message = msg,
        .created_at = cp_now_ms(),
    };
    memcpy(ev.grid_id, svc->grid_id, sizeof(ev.grid_id));
    memcpy(ev.stack_id, svc->stack_id, sizeof(ev.stack_id));
    memcpy(ev.service_id, svc->id, sizeof(ev.service_id));
    if (node_id != NULL)
        snprintf(ev.node_id, sizeof(ev.node_id), "%s", node_id);
    int rc = ST_CALL(m->store, events_append, &ev, 1);
    if (rc != 0)
        cp_warn("deploy: cannot record event \"%s\": %s", msg, cp_strerror(rc));
}

static void notify(struct master *m, const char *node_id, const char *why)
{
    if (node_id == NULL || node_id[0] == '\0')
        return;
    json_t *params = json_pack("[s]", why);
    feed_notify_agent(m, node_id, PROTO_M_PODS_NOTIFY, params);
    json_decref(params);
}

/* Notifies every distinct node of insts (plus extra, may be NULL). */
static void notify_nodes(struct master *m,
                         const struct store_instance_list *insts,
                         const char *extra, const char *why)
{
    for (size_t i = 0; i < insts->len; i++) {
        const char *id = insts->items[i].node_id;
        bool seen = false;
        for (size_t k = 0; k < i && !seen; k++)
            seen = strcmp(insts->items[k].node_id, id) == 0;
        if (!seen)
            notify(m, id, why);
    }
    if (extra != NULL) {
        bool seen = false;
        for (size_t i = 0; i < insts->len && !seen; i++)
            seen = strcmp(insts->items[i].node_id, extra) == 0;
        if (!seen)
            notify(m, extra, why);
    }
}

/* ==== Requests (worker) ==== */

int deploy_request(struct master *m, struct store_service *svc, bool force,
                   struct store_deploy *out)
{
    return deploy_request_ex(m, svc, force, NULL, out);
}

int deploy_request_ex(struct master *m, struct store_service *svc, bool force,
                      const char *stack_deploy_id, struct store_deploy *out)
{
    assert(m != NULL && svc != NULL && out != NULL);
    int64_t now = cp_now_ms();
    cp_free(svc->state);
    svc->state = cp_strdup("running");
    svc->deploy_requested_at = now;
    if (force) {
        svc->revision++;
        svc->updated_at = now;
    }
    int rc = ST_CALL(m->store, service_update, svc);
    if (rc != 0)
        return rc;
    json_t *ids = json_array();
    struct store_deploy d = {
        .state = (char *)(uintptr_t) "created",
        .force = force,
        .instance_deploys = ids,
        .created_at = now,
    };
    store_new_id(d.id);
    memcpy(d.service_id, svc->id, sizeof(d.service_id));
    if (stack_deploy_id != NULL)
        snprintf(d.stack_deploy_id, sizeof(d.stack_deploy_id), "%s",
                 stack_deploy_id);
    rc = ST_CALL(m->store, deploy_queue, &d, out);
    json_decref(ids);
    if (rc != 0)
        return rc;
    feed_deploy_queued(m, svc->id);
    return 0;
}

int deploy_set_desired(struct master *m, struct store_service *svc,
                       const char *desired)
{
    assert(m != NULL && svc != NULL && desired != NULL);
    bool is_run = strcmp(desired, "running") == 0;
    if (!is_run && strcmp(desired, "stopped") != 0)
        return CP_EINVAL;
    struct store_instance_list insts = {0};
    int rc = ST_CALL(m->store, instance_list, svc->id, &insts);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < insts.len && rc == 0; i++) {
        struct store_instance *in = &insts.items[i];
        if (in->desired_state != NULL &&
            strcmp(in->desired_state, desired) == 0)
            continue;
        cp_free(in->desired_state);
        in->desired_state = cp_strdup(desired);
        rc = ST_CALL(m->store, instance_put, in);
    }
    if (rc == 0) {
        cp_free(svc->state);
        svc->state = cp_strdup(is_run ? "running" : "stopped");
        rc = ST_CALL(m->store, service_update, svc);
    }
    if (rc == 0) {
        notify_nodes(m, &insts, NULL, is_run ? "start" : "stop");
        deploy__event(
            m, svc, NULL, 1, is_run ? "service:start" : "service:stop",
            "service %s %s", svc->name, is_run ? "started" : "stopped");
    }
    store_instance_list_release(&insts);
    return rc;
}

/* A restart is a new deploy_rev on every instance (the marker: the agent
 * sees a rev it has not applied and re-converges the pod) plus the
 * /service_pods/restart notification that asks it to restart the
 * container even when nothing else changed, so that current secrets and
 * env are picked up (issue #651). */
int deploy_restart(struct master *m, const struct store_service *svc)
{
    assert(m != NULL && svc != NULL);
    struct store_instance_list insts = {0};
    int rc = ST_CALL(m->store, instance_list, svc->id, &insts);
    if (rc != 0)
        return rc;
    char rev[DEPLOY_RULES_REV_LEN];
    deploy_rules_rev(cp_now_ms(), rev);
    for (size_t i = 0; i < insts.len && rc == 0; i++) {
        struct store_instance *in = &insts.items[i];
        if (in->node_id[0] == '\0')
            continue;
        cp_free(in->deploy_rev);
        in->deploy_rev = cp_strdup(rev);
        rc = ST_CALL(m->store, instance_put, in);
        if (rc == 0) {
            json_t *p = json_pack("[s, i]", svc->id, in->instance_number);
            feed_notify_agent(m, in->node_id, PROTO_M_PODS_RESTART, p);
            json_decref(p);
        }
    }
    if (rc == 0) {
        notify_nodes(m, &insts, NULL, "restart");
        deploy__event(m, svc, NULL, 1, "service:restart",
                      "service %s restarted (%zu instances)", svc->name,
                      insts.len);
    }
    store_instance_list_release(&insts);
    return rc;
}

int deploy_remove_service(struct master *m, const struct store_service *svc)
{
    assert(m != NULL && svc != NULL);
    struct store_instance_list insts = {0};
    int rc = ST_CALL(m->store, instance_list, svc->id, &insts);
    if (rc != 0)
        return rc;
    rc = ST_CALL(m->store, service_delete, svc->id);
    if (rc == 0) {
        notify_nodes(m, &insts, NULL, "terminate");
        deploy__event(m, svc, NULL, 1, "service:remove", "service %s removed",
                      svc->name);
    }
    store_instance_list_release(&insts);
    return rc;
}

int deploy_move_instance(struct master *m, const struct store_service *svc,
                         int instance_number)
{
    assert(m != NULL && svc != NULL);
    struct store_instance_list insts = {0};
    int rc = ST_CALL(m->store, instance_list, svc->id, &insts);
    if (rc != 0)
        return rc;
    struct store_instance *in = NULL;
    for (size_t i = 0; i < insts.len; i++)
        if (insts.items[i].instance_number == instance_number)
            in = &insts.items[i];
    if (in == NULL) {
        rc = CP_ENOTFOUND;
        goto out;
    }
    char old[STORE_ID_LEN + 1];
    memcpy(old, in->node_id, sizeof(old));
    /* The pod leaves the old node's list, so its agent removes the
     * container; the next deploy places the instance afresh, stateful or
     * not (issue #2274). */
    in->node_id[0] = '\0';
    rc = ST_CALL(m->store, instance_put, in);
    if (rc != 0)
        goto out;
    notify(m, old, "terminate");
    deploy__event(m, svc, old[0] ? old : NULL, 2, "service:instance_move",
                  "instance %d of %s detached from its node", instance_number,
                  svc->name);
    if (svc->state != NULL && strcmp(svc->state, "running") == 0) {
        struct store_service copy = *svc;
        copy.state = cp_strdup(svc->state);
        struct store_deploy d = {0};
        /* deploy_request rewrites the service columns it owns only; the
         * borrowed pointers of svc stay with svc. */
        rc = deploy_request(m, &copy, false, &d);
        cp_free(copy.state);
        store_deploy_release(&d);
    }
out:
    store_instance_list_release(&insts);
    return rc;
}

json_t *deploy_json(const struct store_deploy *d, const char *service_path)
{
    json_t *j = json_object();
    cp_json_set_str(j, "id", d->id);
    cp_json_set_time(j, "created_at", d->created_at);
    cp_json_set_time(j, "queued_at", d->queued_at);
    cp_json_set_time(j, "started_at", d->started_at);
    cp_json_set_time(j, "finished_at", d->finished_at);
    cp_json_set_str(j, "service_id", service_path);
    cp_json_set_str(j, "state", d->state ? d->state : "created");
    cp_json_set_str(j, "reason", d->reason);
    size_t n = json_is_array(d->instance_deploys)
                   ? json_array_size(d->instance_deploys)
                   : 0;
    json_object_set_new(j, "instance_count", json_integer((json_int_t)n));
    json_object_set_new(j, "instance_deploys",
                        n ? json_deep_copy(d->instance_deploys) : json_array());
    return j;
}

/* ==== Grid snapshot for the scheduler ==== */

static uint64_t json_u64(const json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (json_is_integer(v) && json_integer_value(v) > 0)
        return (uint64_t)json_integer_value(v);
    if (json_is_real(v) && json_real_value(v) > 0)
        return (uint64_t)json_real_value(v);
    return 0;
}

/* Node ports a service spec publishes, into a new array. */
static int *spec_ports(const json_t *spec, size_t *n)
{
    const json_t *ports = json_object_get(spec, "ports");
    int *out = cp_calloc(json_array_size(ports) + 1, sizeof(*out));
    *n = 0;
    size_t i;
    const json_t *p;
    json_array_foreach(ports, i, p)
    {
        json_t *np = json_object_get(p, "node_port");
        if (!json_is_integer(np))
            np = json_object_get(p, "container_port");
        if (json_is_integer(np) && json_integer_value(np) > 0)
            out[(*n)++] = (int)json_integer_value(np);
    }
    return out;
}

static size_t service_index(const struct deploy__grid *g, const char *id)
{
    for (size_t i = 0; i < g->svcs.len; i++)
        if (strcmp(g->svcs.items[i].id, id) == 0)
            return i;
    return SIZE_MAX;
}

int deploy__grid_load(struct master *m, const char *grid_id,
                      struct deploy__grid *g)
{
    memset(g, 0, sizeof(*g));
    struct store *st = m->store;
    int rc = ST_CALL(st, grid_get_by_id, grid_id, &g->grid);
    if (rc == 0)
        rc = ST_CALL(st, node_list, grid_id, &g->nodes);
    if (rc == 0)
        rc = ST_CALL(st, container_list, grid_id, NULL, NULL, &g->cts);
    if (rc == 0)
        rc = ST_CALL(st, service_list, grid_id, NULL, &g->svcs);
    if (rc != 0) {
        deploy__grid_release(g);
        return rc;
    }
    size_t ns = g->svcs.len;
    g->names = cp_calloc(ns + 1, sizeof(*g->names));
    g->ports = cp_calloc(ns + 1, sizeof(*g->ports));
    g->n_ports = cp_calloc(ns + 1, sizeof(*g->n_ports));
    for (size_t i = 0; i < ns; i++) {
        const struct store_service *s = &g->svcs.items[i];
        g->names[i] = cp_asprintf(
            "%s/%s", s->stack_name ? s->stack_name : "null", s->name);
        g->ports[i] = spec_ports(s->spec, &g->n_ports[i]);
    }

    size_t nl = 0;
    for (size_t i = 0; i < g->nodes.len; i++)
        nl += json_array_size(g->nodes.items[i].labels);
    g->labels = cp_calloc(nl + 1, sizeof(*g->labels));
    g->sn = cp_calloc(g->nodes.len + 1, sizeof(*g->sn));
    g->sc = cp_calloc(g->cts.len + 1, sizeof(*g->sc));
    size_t li = 0, ci = 0;
    for (size_t i = 0; i < g->nodes.len; i++) {
        const struct store_node *n = &g->nodes.items[i];
        struct sched_node *s = &g->sn[i];
        s->id = n->id;
        s->name = n->name;
        s->node_number = n->node_number;
        s->labels = &g->labels[li];
        size_t k;
        const json_t *l;
        json_array_foreach(n->labels, k, l)
        {
            if (json_is_string(l))
                g->labels[li + s->n_labels++] = json_string_value(l);
        }
        li += s->n_labels;
        s->availability =
            n->availability != NULL && strcmp(n->availability, "drain") == 0
                ? SCHED_DRAIN
                : SCHED_ACTIVE;
        s->connected = n->connected;
        s->disconnected_at = n->disconnected_at / 1000;
        json_t *cpus = json_object_get(n->info, "cpus");
        s->cpus = json_is_number(cpus) ? json_number_value(cpus) : 0;
        const json_t *mem = json_object_get(n->stats, "memory");
        s->mem_total = json_u64(n->info, "mem_total");
        uint64_t total = json_u64(mem, "total");
        uint64_t used = json_u64(mem, "used");
        if (s->mem_total == 0)
            s->mem_total = total;
        /* The agent's "used" already leaves out page cache and buffers
         * (free(1)'s used), so what is free to take is total − used. */
        if (total > 0 && used <= total) {
            s->mem_free = total - used;
            s->mem_used_ratio = (double)used / (double)total;
        }
        s->containers = &g->sc[ci];
        for (size_t c = 0; c < g->cts.len; c++) {
            const struct store_container *ct = &g->cts.items[c];
            if (strcmp(ct->node_id, n->id) != 0)
                continue;
            struct sched_container *sc = &g->sc[ci + s->n_containers++];
            sc->name = ct->name;
            size_t si =
                ct->service_id[0] ? service_index(g, ct->service_id) : SIZE_MAX;
            if (si != SIZE_MAX) {
                sc->service = g->names[si];
                sc->instance = ct->instance_number;
                sc->ports = g->ports[si];
                sc->n_ports = g->n_ports[si];
            }
        }
        ci += s->n_containers;
    }
    return 0;
}

void deploy__grid_release(struct deploy__grid *g)
{
    for (size_t i = 0; g->names != NULL && i < g->svcs.len; i++) {
        cp_free(g->names[i]);
        cp_free(g->ports[i]);
    }
    cp_free(g->names);
    cp_free(g->ports);
    cp_free(g->n_ports);
    cp_free(g->labels);
    cp_free(g->sn);
    cp_free(g->sc);
    store_grid_release(&g->grid);
    store_node_list_release(&g->nodes);
    store_container_list_release(&g->cts);
    store_service_list_release(&g->svcs);
    memset(g, 0, sizeof(*g));
}

static const struct store_instance *
find_instance(const struct store_instance_list *l, int number)
{
    for (size_t i = 0; i < l->len; i++)
        if (l->items[i].instance_number == number)
            return &l->items[i];
    return NULL;
}

/* Borrowed strings of a JSON string array into a new array. */
static const char **strv(const json_t *arr, size_t *n)
{
    const char **out = cp_calloc(json_array_size(arr) + 1, sizeof(*out));
    *n = 0;
    size_t i;
    const json_t *v;
    json_array_foreach(arr, i, v)
    {
        if (json_is_string(v))
            out[(*n)++] = json_string_value(v);
    }
    return out;
}

void deploy__sched_build(const struct deploy__grid *g,
                         const struct store_service *svc,
                         const struct store_instance_list *insts,
                         int64_t now_ms, bool use_grace, uint64_t seed,
                         struct deploy__sched *out)
{
    memset(out, 0, sizeof(*out));
    const json_t *spec = svc->spec;
    struct sched_service *s = &out->svc;
    s->stack = svc->stack_name ? svc->stack_name : "null";
    s->name = svc->name;
    s->strategy = cp_json_str(spec, "strategy");
    long long count = cp_json_int(spec, "instances", 1);
    s->instances = count < 0 ? 0 : count > 100000 ? 100000 : (int)count;
    s->stateful = cp_json_bool(spec, "stateful", false);
    json_t *cpus = json_object_get(spec, "cpus");
    s->cpus = json_is_number(cpus) ? json_number_value(cpus) : 0;
    s->memory = json_u64(spec, "memory");
    s->memory_swap = json_u64(spec, "memory_swap");
    out->ports = spec_ports(spec, &s->n_ports);
    s->ports = out->ports;
    out->affinity = strv(json_object_get(spec, "affinity"), &s->n_affinity);
    s->affinity = out->affinity;
    out->default_affinity =
        strv(json_object_get(g->grid.settings, "default_affinity"),
             &s->n_default_affinity);
    s->default_affinity = out->default_affinity;
    out->volumes_from =
        strv(json_object_get(spec, "volumes_from"), &s->n_volumes_from);
    s->volumes_from = out->volumes_from;
    s->net = cp_json_str(spec, "net");

    /* Nodes: the grid's, minus this service's containers of instances
     * whose row no longer places them there (moved or detached). */
    size_t own = service_index(g, svc->id);
    const char *own_name = own != SIZE_MAX ? g->names[own] : NULL;
    out->nodes = cp_calloc(g->nodes.len + 1, sizeof(*out->nodes));
    out->sc = cp_calloc(g->cts.len + 1, sizeof(*out->sc));
    size_t ci = 0;
    for (size_t i = 0; i < g->nodes.len; i++) {
        out->nodes[i] = g->sn[i];
        out->nodes[i].containers = &out->sc[ci];
        out->nodes[i].n_containers = 0;
        for (size_t k = 0; k < g->sn[i].n_containers; k++) {
            const struct sched_container *c = &g->sn[i].containers[k];
            const struct store_instance *in =
                c->service != NULL && own_name != NULL &&
                        strcmp(c->service, own_name) == 0
                    ? find_instance(insts, c->instance)
                    : NULL;
            bool is_stale = in != NULL && strcmp(in->node_id, g->sn[i].id) != 0;
            if (!is_stale)
                out->sc[ci + out->nodes[i].n_containers++] = *c;
        }
        ci += out->nodes[i].n_containers;
    }
    out->inst = cp_calloc(insts->len + 1, sizeof(*out->inst));
    for (size_t j = 0; j < insts->len; j++) {
        out->inst[j].instance_number = insts->items[j].instance_number;
        out->inst[j].node_id =
            insts->items[j].node_id[0] ? insts->items[j].node_id : NULL;
    }
    out->in = (struct sched_input){
        .nodes = out->nodes,
        .n_nodes = g->nodes.len,
        .service = &out->svc,
        .instances = out->inst,
        .n_instances = insts->len,
        .now = now_ms / 1000,
        .use_grace = use_grace,
        .seed = seed,
    };
}

void deploy__sched_release(struct deploy__sched *s)
{
    cp_free(s->nodes);
    cp_free(s->sc);
    cp_free(s->inst);
    cp_free(s->affinity);
    cp_free(s->default_affinity);
    cp_free(s->volumes_from);
    cp_free(s->ports);
    memset(s, 0, sizeof(*s));
}

/* ==== The deployer ==== */

enum phase {
    PH_PREPARE,
    PH_ROLL,
    PH_FINISH,
    PH_DONE,
};

enum slot_state {
    SLOT_PENDING,
    SLOT_WAITING,
    SLOT_OK,
    SLOT_FAILED,
};

/* One instance of the rollout. */
struct slot {
    int number;
    char node_id[STORE_ID_LEN + 1];
    char *node_name;
    char prev_node[STORE_ID_LEN + 1]; /* "" unless it moves */
    enum slot_state st;
    int64_t deadline;
    char *error;
};

/* Whether a node of the grid is connected, as of the last read. */
struct node_conn {
    char id[STORE_ID_LEN + 1];
    bool connected;
};

/* A claimed deploy being rolled out. The loop owns it between steps; a
 * worker owns it while busy. */
struct deployer {
    struct deployer *next;
    struct master *m;
    struct store_deploy d; /* claimed row; claimed_by is ours */
    struct store_service svc;
    char rev[DEPLOY_RULES_REV_LEN];
    int64_t started_ms;
    struct slot *slots;
    size_t n_slots;
    int concurrency;
    int timeout_s;
    enum phase phase;
    bool is_busy;
    bool is_dirty;
    bool is_woken;           /* reports landed while busy: step again at once */
    struct node_conn *conns; /* the grid's nodes for roll(), see step_nodes */
    size_t n_conns;
    int64_t renewed_at;
    char *first_error;
    uv_timer_t tick;
};

static struct {
    struct master *m;
    uv_timer_t poll;
    bool is_started;
    bool is_stopping;
    bool is_claiming;
    int inflight;
    struct deployer *list;
} eng;

static uint64_t seed_of(const char *id)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (const char *p = id; *p != '\0'; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    return h;
}

static void fail(struct deployer *dp, const char *why)
{
    if (dp->first_error == NULL)
        dp->first_error = cp_strdup(why);
}

static json_t *instance_deploys(const struct deployer *dp)
{
    json_t *arr = json_array();
    static const char *const names[] = {"created", "ongoing", "success",
                                        "error"};
    for (size_t i = 0; i < dp->n_slots; i++) {
        const struct slot *s = &dp->slots[i];
        if (s->st == SLOT_PENDING)
            continue;
        json_array_append_new(arr, json_pack("{s:i, s:s, s:s, s:s?}",
                                             "instance_number", s->number,
                                             "node", s->node_name, "state",
                                             names[s->st], "error", s->error));
    }
    return arr;
}

/* Writes the deploy (fenced). Returns false when the claim is lost. */
static bool save(struct deployer *dp, int64_t now)
{
    json_decref(dp->d.instance_deploys);
    dp->d.instance_deploys = instance_deploys(dp);
    dp->d.lease_until = dp->phase == PH_FINISH ? now : now + DEPLOY_LEASE_MS;
    int rc = ST_CALL(dp->m->store, deploy_update, &dp->d);
    if (rc == CP_ECONFLICT || rc == CP_ENOTFOUND) {
        cp_info("deploy: %s of service %s: claim lost, leaving it", dp->d.id,
                dp->d.service_id);
        dp->phase = PH_DONE;
        return false;
    }
    if (rc != 0) {
        /* The lease outlives a transient failure; retry next tick. */
        cp_warn("deploy: cannot save deploy %s: %s", dp->d.id, cp_strerror(rc));
        return true;
    }
    dp->renewed_at = now;
    dp->is_dirty = false;
    return true;
}

static int instance_timeout(const struct store_service *svc)
{
    int def = DEPLOY_INSTANCE_TIMEOUT_S;
    const json_t *wfp = json_object_get(
        json_object_get(svc->spec, "deploy_opts"), "wait_for_port");
    if (json_is_integer(wfp) && json_integer_value(wfp) > 0)
        def += DEPLOY_PORT_WAIT_MARGIN_S;
    return deploy__env_seconds("KONTENA_DEPLOY_INSTANCE_TIMEOUT", def);
}

static void prepare(struct deployer *dp)
{
    struct master *m = dp->m;
    int64_t now = cp_now_ms();
    struct deploy__grid g = {0};
    struct store_instance_list insts = {0};
    struct deploy__sched ds = {0};
    struct sched_result res = {0};
    int rc = ST_CALL(m->store, service_get_by_id, dp->d.service_id, &dp->svc);
    if (rc == CP_ENOTFOUND) {
        dp->phase = PH_DONE; /* removed with its deploys */
        return;
    }
    if (rc != 0) {
        fail(dp, "cannot read the service");
        goto finish;
    }
    if (dp->svc.state == NULL || strcmp(dp->svc.state, "running") != 0) {
        fail(dp, "service is not running");
        goto finish;
    }
    dp->started_ms = now;
    deploy_rules_rev(now, dp->rev);
    rc = deploy__grid_load(m, dp->svc.grid_id, &g);
    if (rc == 0)
        rc = ST_CALL(m->store, instance_list, dp->svc.id, &insts);
    if (rc != 0) {
        fail(dp, "cannot read the grid");
        goto finish;
    }
    deploy__sched_build(&g, &dp->svc, &insts, now, false, seed_of(dp->d.id),
                        &ds);
    sched_place(&ds.in, &res);
    if (res.status != 0 || res.n_failed > 0) {
        /* The scheduler's message names the filter and the rule (#1275). */
        fail(dp, res.error ? res.error : "no node fits the service");
        goto finish;
    }
    deploy__event(m, &dp->svc, NULL, 1, "service:deploy",
                  "deploy %s of %s started: revision %lld, %zu instances",
                  dp->d.id, dp->svc.name, (long long)dp->svc.revision,
                  res.n_placements);

    /* deployed_revision is what revision lag is measured against. */
    struct store_service fresh = {0};
    if (ST_CALL(m->store, service_get_by_id, dp->svc.id, &fresh) == 0) {
        fresh.deployed_at = now;
        fresh.deployed_revision = dp->svc.revision;
        ST_CALL(m->store, service_update, &fresh);
    }
    store_service_release(&fresh);

    /* Instances above the count go, and their nodes hear of it. */
    int count = (int)res.n_placements;
    bool has_extra = false;
    for (size_t i = 0; i < insts.len; i++)
        has_extra |= insts.items[i].instance_number > count;
    if (has_extra) {
        rc = ST_CALL(m->store, instance_trim, dp->svc.id, count);
        if (rc != 0) {
            fail(dp, "cannot remove surplus instances");
            goto finish;
        }
        for (size_t i = 0; i < insts.len; i++)
            if (insts.items[i].instance_number > count)
                notify(m, insts.items[i].node_id, "terminate");
    }

    dp->n_slots = res.n_placements;
    dp->slots = cp_calloc(dp->n_slots + 1, sizeof(*dp->slots));
    for (size_t i = 0; i < res.n_placements; i++) {
        const struct sched_placement *p = &res.placements[i];
        struct slot *s = &dp->slots[i];
        s->number = p->instance_number;
        snprintf(s->node_id, sizeof(s->node_id), "%s", p->node_id);
        s->node_name = cp_strdup(g.nodes.items[p->node].name);
        for (size_t k = 0; k < insts.len; k++) {
            const struct store_instance *in = &insts.items[k];
            if (in->instance_number == s->number && in->node_id[0] &&
                strcmp(in->node_id, s->node_id) != 0)
                memcpy(s->prev_node, in->node_id, sizeof(s->prev_node));
        }
    }
    const json_t *opts = json_object_get(dp->svc.spec, "deploy_opts");
    json_t *mh = json_object_get(opts, "min_health");
    dp->concurrency = deploy_rules_concurrency(
        count, json_is_number(mh) ? json_number_value(mh) : 0.8);
    dp->timeout_s = instance_timeout(&dp->svc);
    dp->phase = PH_ROLL;
    dp->is_dirty = true;
    goto out;
finish:
    dp->phase = PH_FINISH;
out:
    sched_result_release(&res);
    deploy__sched_release(&ds);
    store_instance_list_release(&insts);
    deploy__grid_release(&g);
}

/* Starts slot s: fills *in with the instance to place on its node (the
 * caller writes all of a step's in one transaction, then tells the
 * nodes). Returns false when the slot failed at once (node offline). */
static bool conn_of(const struct deployer *dp, const char *id);

static bool start_slot(struct deployer *dp, struct slot *s,
                       const struct store_instance_list *insts, int64_t now,
                       struct store_instance *in)
{
    s->st = SLOT_WAITING;
    s->deadline = now + (int64_t)dp->timeout_s * 1000;
    dp->is_dirty = true;
    if (!conn_of(dp, s->node_id)) {
        s->st = SLOT_FAILED;
        s->error = cp_asprintf("node %s is offline", s->node_name);
        return false;
    }
    const struct store_instance *old = find_instance(insts, s->number);
    *in = (struct store_instance){
        .instance_number = s->number,
        .desired_state = (char *)(uintptr_t) "running",
        .deploy_rev = dp->rev,
        .updated_at = now,
    };
    if (old != NULL)
        memcpy(in->id, old->id, sizeof(in->id));
    else
        store_new_id(in->id);
    memcpy(in->service_id, dp->svc.id, sizeof(in->service_id));
    memcpy(in->node_id, s->node_id, sizeof(in->node_id));
    /* rev, state and error start empty: only a report made after this
     * write can complete the wait. */
    return true;
}

/* Adds id to the set ids[0..*n) (distinct node ids to notify). */
static void add_node(char (*ids)[STORE_ID_LEN + 1], size_t *n, const char *id)
{
    if (id == NULL || id[0] == '\0')
        return;
    for (size_t i = 0; i < *n; i++)
        if (strcmp(ids[i], id) == 0)
            return;
    memcpy(ids[(*n)++], id, STORE_ID_LEN + 1);
}

/* The grid's nodes' connected flags for this step, shared by the
 * deployers of a grid and re-read (node_list parses every node's JSON) at
 * most every DEPLOY_NODES_MAX_AGE_MS. */
struct conn_snap {
    struct conn_snap *next;
    char grid_id[STORE_ID_LEN + 1];
    int64_t at; /* mono ms */
    struct node_conn *v;
    size_t n;
};

static struct {
    pthread_mutex_t mu;
    struct conn_snap *list;
} snaps = {.mu = PTHREAD_MUTEX_INITIALIZER};

static bool snap_copy(struct deployer *dp, int64_t mono)
{
    bool ok = false;
    pthread_mutex_lock(&snaps.mu);
    for (struct conn_snap *c = snaps.list; c != NULL; c = c->next) {
        if (strcmp(c->grid_id, dp->svc.grid_id) != 0)
            continue;
        if (mono - c->at < DEPLOY_NODES_MAX_AGE_MS) {
            cp_free(dp->conns);
            dp->conns = cp_calloc(c->n + 1, sizeof(*dp->conns));
            memcpy(dp->conns, c->v, c->n * sizeof(*c->v));
            dp->n_conns = c->n;
            ok = true;
        }
        break;
    }
    pthread_mutex_unlock(&snaps.mu);
    return ok;
}

static int step_nodes(struct deployer *dp)
{
    int64_t mono = cp_mono_ms();
    if (snap_copy(dp, mono))
        return 0;
    struct store_node_list l = {0};
    int rc = ST_CALL(dp->m->store, node_list, dp->svc.grid_id, &l);
    if (rc != 0)
        return rc;
    struct node_conn *v = cp_calloc(l.len + 1, sizeof(*v));
    for (size_t i = 0; i < l.len; i++) {
        memcpy(v[i].id, l.items[i].id, sizeof(v[i].id));
        v[i].connected = l.items[i].connected;
    }
    size_t n = l.len;
    store_node_list_release(&l);
    cp_free(dp->conns);
    dp->conns = cp_calloc(n + 1, sizeof(*dp->conns));
    memcpy(dp->conns, v, n * sizeof(*v));
    dp->n_conns = n;
    pthread_mutex_lock(&snaps.mu);
    struct conn_snap *c = snaps.list;
    while (c != NULL && strcmp(c->grid_id, dp->svc.grid_id) != 0)
        c = c->next;
    if (c == NULL) {
        c = cp_calloc(1, sizeof(*c));
        memcpy(c->grid_id, dp->svc.grid_id, sizeof(c->grid_id));
        c->next = snaps.list;
        snaps.list = c;
    }
    cp_free(c->v);
    c->v = v;
    c->n = n;
    c->at = mono;
    pthread_mutex_unlock(&snaps.mu);
    return 0;
}

static bool conn_of(const struct deployer *dp, const char *id)
{
    for (size_t i = 0; i < dp->n_conns; i++)
        if (strcmp(dp->conns[i].id, id) == 0)
            return dp->conns[i].connected;
    return false;
}

static void roll(struct deployer *dp)
{
    struct master *m = dp->m;
    int64_t now = cp_now_ms();
    struct store_service svc = {0};
    struct store_instance_list insts = {0};
    int rc = ST_CALL(m->store, service_get_by_id, dp->svc.id, &svc);
    if (rc == CP_ENOTFOUND) {
        dp->phase = PH_DONE;
        goto out;
    }
    if (rc == 0 && (svc.state == NULL || strcmp(svc.state, "running") != 0))
        fail(dp, "service was stopped during the deploy");
    if (rc == 0)
        rc = ST_CALL(m->store, instance_list, dp->svc.id, &insts);
    if (rc == 0)
        rc = step_nodes(dp);
    if (rc != 0) {
        /* A store hiccup: keep the lease alive and try again. */
        if (now - dp->renewed_at >= DEPLOY_RENEW_MS)
            save(dp, now);
        goto out;
    }

    size_t active = 0, pending = 0;
    for (size_t i = 0; i < dp->n_slots; i++) {
        struct slot *s = &dp->slots[i];
        if (s->st != SLOT_WAITING)
            continue;
        const struct store_instance *in = find_instance(&insts, s->number);
        struct deploy_rules_wait w = {
            .instance_number = s->number,
            .node_name = s->node_name,
            .node_id = s->node_id,
            .deploy_rev = dp->rev,
            .has_row = in != NULL,
            .row_node = in ? in->node_id : NULL,
            .rev = in ? in->rev : NULL,
            .state = in ? in->state : NULL,
            .error = in ? in->error : NULL,
            .node_connected = conn_of(dp, s->node_id),
            .now_ms = now,
            .deadline_ms = s->deadline,
            .timeout_s = dp->timeout_s,
        };
        char why[1024];
        switch (deploy_rules_instance(&w, why, sizeof(why))) {
        case DEPLOY_RULES_WAIT:
            break;
        case DEPLOY_RULES_OK:
            s->st = SLOT_OK;
            dp->is_dirty = true;
            break;
        case DEPLOY_RULES_FAIL:
            s->st = SLOT_FAILED;
            s->error = cp_strdup(why);
            dp->is_dirty = true;
            break;
        }
    }
    for (size_t i = 0; i < dp->n_slots; i++) {
        struct slot *s = &dp->slots[i];
        if (s->st == SLOT_FAILED && s->error != NULL &&
            dp->first_error == NULL) {
            fail(dp, s->error);
            deploy__event(m, &dp->svc, s->node_id, 3, "service:instance_deploy",
                          "%s", s->error);
        }
    }
    for (size_t i = 0; i < dp->n_slots; i++) {
        struct slot *s = &dp->slots[i];
        if (s->st == SLOT_WAITING)
            active++;
        else if (s->st == SLOT_PENDING)
            pending++;
    }
    /* Start more, in instance order, while the rollout is healthy: one
     * transaction for the step's instances, one notification per node. */
    size_t room =
        (size_t)dp->concurrency > active ? (size_t)dp->concurrency - active : 0;
    struct store_instance *put = cp_calloc(room + 1, sizeof(*put));
    struct slot **started = cp_calloc(room + 1, sizeof(*started));
    size_t nput = 0;
    for (size_t i = 0; i < dp->n_slots && dp->first_error == NULL &&
                       active < (size_t)dp->concurrency;
         i++) {
        struct slot *s = &dp->slots[i];
        if (s->st != SLOT_PENDING)
            continue;
        pending--;
        if (start_slot(dp, s, &insts, now, &put[nput])) {
            started[nput++] = s;
            active++;
        } else {
            fail(dp, s->error);
            deploy__event(m, &dp->svc, s->node_id, 3, "service:instance_deploy",
                          "%s", s->error);
        }
    }
    if (nput > 0) {
        rc = ST_CALL(m->store, instance_put_many, put, nput);
        if (rc != 0) {
            for (size_t k = 0; k < nput; k++) {
                struct slot *s = started[k];
                s->st = SLOT_FAILED;
                s->error = cp_asprintf("instance %d: cannot save it: %s",
                                       s->number, cp_strerror(rc));
                active--;
                if (k == 0) {
                    fail(dp, s->error);
                    deploy__event(m, &dp->svc, s->node_id, 3,
                                  "service:instance_deploy", "%s", s->error);
                }
            }
        } else {
            /* A moved instance vanishes from its old node's pod list; the
             * nudge makes that agent remove it now rather than at its
             * next pull. */
            char(*stop_ids)[STORE_ID_LEN + 1] =
                cp_calloc(nput + 1, sizeof(*stop_ids));
            char(*start_ids)[STORE_ID_LEN + 1] =
                cp_calloc(nput + 1, sizeof(*start_ids));
            size_t nstop = 0, nstart = 0;
            for (size_t k = 0; k < nput; k++) {
                add_node(stop_ids, &nstop, started[k]->prev_node);
                add_node(start_ids, &nstart, started[k]->node_id);
            }
            for (size_t k = 0; k < nstop; k++)
                notify(m, stop_ids[k], "stop");
            for (size_t k = 0; k < nstart; k++)
                notify(m, start_ids[k], "start");
            cp_free(stop_ids);
            cp_free(start_ids);
        }
    }
    cp_free(put);
    cp_free(started);
    if (active == 0 && (pending == 0 || dp->first_error != NULL)) {
        dp->phase = PH_FINISH;
        goto out;
    }
    if (dp->is_dirty || now - dp->renewed_at >= DEPLOY_RENEW_MS)
        save(dp, now);
out:
    store_service_release(&svc);
    store_instance_list_release(&insts);
}

static void finish(struct deployer *dp)
{
    int64_t now = cp_now_ms();
    cp_free(dp->d.state);
    dp->d.state = cp_strdup(dp->first_error ? "error" : "success");
    cp_free(dp->d.reason);
    dp->d.reason = dp->first_error ? cp_strdup(dp->first_error) : NULL;
    dp->d.finished_at = now;
    if (!save(dp, now))
        return;
    if (dp->svc.id[0] != '\0') {
        if (dp->first_error)
            deploy__event(dp->m, &dp->svc, NULL, 3, "service:deploy",
                          "deploy %s of %s failed: %s", dp->d.id, dp->svc.name,
                          dp->first_error);
        else
            deploy__event(dp->m, &dp->svc, NULL, 1, "service:deploy",
                          "deploy %s of %s finished", dp->d.id, dp->svc.name);
    }
    cp_info("deploy: %s of %s: %s%s%s", dp->d.id,
            dp->svc.name ? dp->svc.name : dp->d.service_id, dp->d.state,
            dp->first_error ? ": " : "",
            dp->first_error ? dp->first_error : "");
    dp->phase = PH_DONE;
}

static void step_work(void *ctx)
{
    struct deployer *dp = ctx;
    switch (dp->phase) {
    case PH_PREPARE:
        prepare(dp);
        if (dp->phase == PH_ROLL)
            roll(dp);
        break;
    case PH_ROLL:
        roll(dp);
        break;
    case PH_FINISH:
        break;
    case PH_DONE:
        break;
    }
    if (dp->phase == PH_FINISH)
        finish(dp);
}

static void poll_now(void);
static void on_tick(uv_timer_t *t);

static void deployer_free(uv_handle_t *h)
{
    struct deployer *dp = h->data;
    for (size_t i = 0; i < dp->n_slots; i++) {
        cp_free(dp->slots[i].node_name);
        cp_free(dp->slots[i].error);
    }
    cp_free(dp->slots);
    cp_free(dp->first_error);
    cp_free(dp->conns);
    store_deploy_release(&dp->d);
    store_service_release(&dp->svc);
    cp_free(dp);
}

static void deployer_close(struct deployer *dp)
{
    for (struct deployer **p = &eng.list; *p != NULL; p = &(*p)->next) {
        if (*p == dp) {
            *p = dp->next;
            break;
        }
    }
    eng.inflight--;
    uv_timer_stop(&dp->tick);
    uv_close((uv_handle_t *)&dp->tick, deployer_free);
}

static void step_done(void *ctx)
{
    struct deployer *dp = ctx;
    dp->is_busy = false;
    if (dp->phase == PH_DONE || eng.is_stopping) {
        deployer_close(dp);
        if (!eng.is_stopping)
            poll_now();
        return;
    }
    if (dp->is_woken) {
        dp->is_woken = false;
        uv_timer_start(&dp->tick, on_tick, 0, DEPLOY_TICK_MS);
    }
}

/* Instance reports landed: the deployers of those services step now
 * rather than at their next tick (one busy in a step, whose service the
 * loop must not read then, steps again when it returns). */
void deploy_wake(struct master *m, const char *const *service_ids, size_t n)
{
    CP_UNUSED(m);
    if (!eng.is_started || eng.is_stopping)
        return;
    for (struct deployer *dp = eng.list; dp != NULL; dp = dp->next) {
        if (dp->is_busy) {
            dp->is_woken = true;
            continue;
        }
        bool hit = service_ids == NULL;
        for (size_t i = 0; i < n && !hit; i++)
            hit = strcmp(service_ids[i], dp->svc.id) == 0;
        if (hit)
            uv_timer_start(&dp->tick, on_tick, 0, DEPLOY_TICK_MS);
    }
}

static void on_tick(uv_timer_t *t)
{
    struct deployer *dp = t->data;
    if (dp->is_busy)
        return;
    dp->is_busy = true;
    master_queue(dp->m, step_work, step_done, dp);
}

/* ==== Claiming ==== */

struct claim {
    struct master *m;
    struct store_deploy d;
    int rc;
};

static void claim_work(void *ctx)
{
    struct claim *c = ctx;
    c->rc = ST_CALL(c->m->store, deploy_claim, c->m->master_id, cp_now_ms(),
                    DEPLOY_LEASE_MS, &c->d);
}

static void claim_done(void *ctx)
{
    struct claim *c = ctx;
    eng.is_claiming = false;
    if (c->rc != 0 || eng.is_stopping) {
        if (c->rc != 0 && c->rc != CP_ENOTFOUND)
            cp_warn("deploy: cannot claim deploys: %s", cp_strerror(c->rc));
        store_deploy_release(&c->d);
        cp_free(c);
        return;
    }
    struct deployer *dp = cp_calloc(1, sizeof(*dp));
    dp->m = c->m;
    dp->d = c->d; /* takes the row */
    dp->renewed_at = cp_now_ms();
    cp_free(c);
    if (dp->d.claimed_by == NULL)
        dp->d.claimed_by = cp_strdup(dp->m->master_id);
    cp_info("deploy: claimed %s of service %s", dp->d.id, dp->d.service_id);
    dp->next = eng.list;
    eng.list = dp;
    eng.inflight++;
    uv_timer_init(dp->m->loop, &dp->tick);
    dp->tick.data = dp;
    uv_timer_start(&dp->tick, on_tick, 0, DEPLOY_TICK_MS);
    poll_now(); /* there may be more ready */
}

static void poll_now(void)
{
    if (!eng.is_started || eng.is_stopping || eng.is_claiming ||
        eng.inflight >= DEPLOY_MAX_INFLIGHT)
        return;
    eng.is_claiming = true;
    struct claim *c = cp_calloc(1, sizeof(*c));
    c->m = eng.m;
    master_queue(eng.m, claim_work, claim_done, c);
}

static void on_poll(uv_timer_t *t)
{
    CP_UNUSED(t);
    poll_now();
}

static void on_deploy_queued(struct master *m, const char *service_id)
{
    CP_UNUSED(m);
    CP_UNUSED(service_id);
    poll_now();
}

void deploy_start(struct master *m)
{
    memset(&eng, 0, sizeof(eng));
    eng.m = m;
    eng.is_started = true;
    uv_timer_init(m->loop, &eng.poll);
    uv_timer_start(&eng.poll, on_poll, DEPLOY_POLL_MS, DEPLOY_POLL_MS);
    feed_on_deploy_queued = on_deploy_queued;
    deploy__reconcile_start(m);
}

/* Deployers between steps close now; one inside a step closes when the
 * step returns (the HTTP drain waits for queued work). Their leases run
 * out and another master, or this one restarted, takes the deploys over. */
void deploy_stop(struct master *m)
{
    CP_UNUSED(m);
    if (!eng.is_started || eng.is_stopping)
        return;
    eng.is_stopping = true;
    feed_on_deploy_queued = NULL;
    uv_timer_stop(&eng.poll);
    uv_close((uv_handle_t *)&eng.poll, NULL);
    deploy__reconcile_stop();
    struct deployer *dp = eng.list;
    while (dp != NULL) {
        struct deployer *next = dp->next;
        if (!dp->is_busy)
            deployer_close(dp);
        else
            uv_timer_stop(&dp->tick);
        dp = next;
    }
}
