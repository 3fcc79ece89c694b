/* Agent -> master calls about service pods and containers (spec 4.5):
 * the desired-state pull, instance state reports, pod events, container
 * records, logs and health. Rows in agent_calls.c's calls[] point here.
 * Every handler runs on a worker with the calling session's node (row_id)
 * and grid; the node id inside params is checked for shape but never
 * trusted: a node only ever reads and writes its own rows.
 * SPDX-License-Identifier: Apache-2.0 */
#include "agent_calls.h"
#include "pods_view.h"
#include "vault.h"
#include "registry.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../common/rpc.h"
#include "../common/util.h"

#include <pthread.h>
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

/* Parsed services shared by the pod lists of every node: a deploy makes
 * each of its nodes list its pods again and again, and parsing the same
 * spec for every pod of every list was most of a list's cost. An entry
 * is keyed by the columns pods_view_pod reads from a service (spec text,
 * revision, updated_at, name, stack name); a row that differs in any of
 * them replaces it. Extend svc_memo_matches when pods_view starts reading
 * another service column. Entries are immutable once made; refs keep one
 * alive outside the lock after it was replaced.
 *
 * An entry also holds the service's secrets as the pods carry them
 * (plaintext, from the vault), read after the row: every write of a
 * secret bumps the revision of the services using it, so a changed
 * secret always comes with a changed row and a fresh entry. */
#define SVC_MEMO_BUCKETS 1024
#define SVC_MEMO_MAX 4096
#define POD_MEMO_MAX_NUMBER 1000 /* instances of a service with a memo */
/* Pods kept in all (a pod is a few KiB: 10,000 cost ~70 MiB of RSS);
 * beyond it pods are built for each list as before. */
#define POD_MEMO_MAX_TOTAL 20000

/* A built pod of the service's instance, valid while the instance's
 * deploy_rev and desired_state and the grid's and node's names are
 * these (the rest of what pods_view_pod reads is the service's). */
struct pod_memo {
    char *deploy_rev, *desired_state, *grid_name, *node_name;
    json_t *pod; /* shared read-only (jansson refcounts are atomic) */
};

struct svc_memo {
    struct svc_memo *next;
    int refs; /* the table's 1 + users */
    char *spec_text;
    struct store_service svc; /* id, name, stack_name, spec, revision,
                                 updated_at from the row */
    json_t *secrets;          /* the pods' "secrets" array */
    struct pod_memo *pods;    /* by instance_number - 1; under memo.mu */
    size_t npods;
};

static struct {
    pthread_mutex_t mu;
    struct svc_memo *buckets[SVC_MEMO_BUCKETS];
    size_t count;
    size_t npods; /* pods kept in all entries */
} memo = {.mu = PTHREAD_MUTEX_INITIALIZER};

static size_t memo_bucket(const char *id)
{
    uint32_t h = 2166136261u;
    for (; *id != '\0'; id++)
        h = (h ^ (unsigned char)*id) * 16777619u;
    return h % SVC_MEMO_BUCKETS;
}

static bool str_eq(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static bool svc_memo_matches(const struct svc_memo *e,
                             const struct store_pod_row *r)
{
    return e->svc.revision == r->revision &&
           e->svc.updated_at == r->updated_at &&
           str_eq(e->svc.name, r->service_name) &&
           str_eq(e->svc.stack_name, r->stack_name) &&
           str_eq(e->spec_text, r->spec);
}

static void svc_memo_unref(struct svc_memo *e)
{
    if (__atomic_sub_fetch(&e->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    cp_free(e->spec_text);
    store_service_release(&e->svc);
    json_decref(e->secrets);
    size_t kept = 0;
    for (size_t i = 0; i < e->npods; i++) {
        struct pod_memo *p = &e->pods[i];
        kept += p->pod != NULL;
        cp_free(p->deploy_rev);
        cp_free(p->desired_state);
        cp_free(p->grid_name);
        cp_free(p->node_name);
        json_decref(p->pod);
    }
    cp_free(e->pods);
    cp_free(e);
    pthread_mutex_lock(&memo.mu);
    memo.npods -= kept;
    pthread_mutex_unlock(&memo.mu);
}

static char *dup_or_null(const char *s)
{
    return s ? cp_strdup(s) : NULL;
}

/* pods_view's pod with the entry's secrets filled in. */
static json_t *build_pod(const struct svc_memo *e,
                         const struct store_instance *in,
                         const struct store_grid *grid,
                         const struct store_node *node)
{
    json_t *pod = pods_view_pod(&e->svc, in, grid, node);
    json_object_set_new(pod, "secrets", json_deep_copy(e->secrets));
    return pod;
}

/* The pod of r's instance on node/grid, from the memo or built (and
 * kept). */
static json_t *pod_of(struct svc_memo *e, const struct store_pod_row *r,
                      const struct store_grid *grid,
                      const struct store_node *node)
{
    const struct store_instance *in = &r->inst;
    size_t k = (size_t)in->instance_number - 1;
    if (in->instance_number < 1 || in->instance_number > POD_MEMO_MAX_NUMBER)
        return build_pod(e, in, grid, node);
    json_t *pod = NULL;
    pthread_mutex_lock(&memo.mu);
    if (k < e->npods) {
        struct pod_memo *p = &e->pods[k];
        if (p->pod != NULL && str_eq(p->deploy_rev, in->deploy_rev) &&
            str_eq(p->desired_state, in->desired_state) &&
            str_eq(p->grid_name, grid->name) &&
            str_eq(p->node_name, node->name))
            pod = json_incref(p->pod);
    }
    pthread_mutex_unlock(&memo.mu);
    if (pod != NULL)
        return pod;
    pod = build_pod(e, in, grid, node);
    struct pod_memo old = {0};
    pthread_mutex_lock(&memo.mu);
    bool has_old = k < e->npods && e->pods[k].pod != NULL;
    if (!has_old && memo.npods >= POD_MEMO_MAX_TOTAL) {
        pthread_mutex_unlock(&memo.mu);
        return pod;
    }
    if (!has_old)
        memo.npods++;
    if (k >= e->npods) {
        size_t n = k + 1 > e->npods * 2 ? k + 1 : e->npods * 2;
        if (n > POD_MEMO_MAX_NUMBER)
            n = POD_MEMO_MAX_NUMBER;
        e->pods = cp_realloc(e->pods, n * sizeof(*e->pods));
        memset(&e->pods[e->npods], 0, (n - e->npods) * sizeof(*e->pods));
        e->npods = n;
    }
    old = e->pods[k];
    e->pods[k] = (struct pod_memo){
        .deploy_rev = dup_or_null(in->deploy_rev),
        .desired_state = dup_or_null(in->desired_state),
        .grid_name = dup_or_null(grid->name),
        .node_name = dup_or_null(node->name),
        .pod = json_incref(pod),
    };
    pthread_mutex_unlock(&memo.mu);
    cp_free(old.deploy_rev);
    cp_free(old.desired_state);
    cp_free(old.grid_name);
    cp_free(old.node_name);
    json_decref(old.pod);
    return pod;
}

/* The memo for r's service into *out, held (unref when done); *out is
 * NULL when its spec does not parse. Returns 0, or the error of reading
 * its secrets (vault_pod_secrets). */
static int svc_memo_get(struct master *m, const char *grid_id,
                        const struct store_pod_row *r, struct svc_memo **out)
{
    *out = NULL;
    size_t b = memo_bucket(r->inst.service_id);
    pthread_mutex_lock(&memo.mu);
    for (struct svc_memo **p = &memo.buckets[b]; *p != NULL; p = &(*p)->next) {
        struct svc_memo *e = *p;
        if (strcmp(e->svc.id, r->inst.service_id) != 0)
            continue;
        if (svc_memo_matches(e, r)) {
            e->refs++;
            pthread_mutex_unlock(&memo.mu);
            *out = e;
            return 0;
        }
        *p = e->next; /* stale: replaced below */
        memo.count--;
        pthread_mutex_unlock(&memo.mu);
        svc_memo_unref(e);
        pthread_mutex_lock(&memo.mu);
        break;
    }
    pthread_mutex_unlock(&memo.mu);

    json_t *spec = r->spec ? json_loads(r->spec, 0, NULL) : NULL;
    if (spec == NULL)
        return 0;
    json_t *secrets = NULL;
    int rc = vault_pod_secrets(m->vault, m->store, grid_id, spec, &secrets);
    if (rc != 0) {
        json_decref(spec);
        return rc;
    }
    struct svc_memo *e = cp_calloc(1, sizeof(*e));
    e->secrets = secrets;
    e->refs = 2; /* the table's and the caller's */
    e->spec_text = cp_strdup(r->spec);
    memcpy(e->svc.id, r->inst.service_id, sizeof(e->svc.id));
    e->svc.name = r->service_name ? cp_strdup(r->service_name) : NULL;
    e->svc.stack_name = r->stack_name ? cp_strdup(r->stack_name) : NULL;
    e->svc.spec = spec;
    e->svc.revision = r->revision;
    e->svc.updated_at = r->updated_at;

    struct svc_memo *drop = NULL;
    pthread_mutex_lock(&memo.mu);
    if (memo.count >= SVC_MEMO_MAX) {
        /* Deleted services' entries go too; those in use live on. */
        for (size_t i = 0; i < SVC_MEMO_BUCKETS; i++) {
            while (memo.buckets[i] != NULL) {
                struct svc_memo *x = memo.buckets[i];
                memo.buckets[i] = x->next;
                x->next = drop;
                drop = x;
            }
        }
        memo.count = 0;
    }
    /* Another thread may have added one meanwhile; the newest wins. */
    for (struct svc_memo **p = &memo.buckets[b]; *p != NULL; p = &(*p)->next) {
        if (strcmp((*p)->svc.id, e->svc.id) == 0) {
            struct svc_memo *x = *p;
            *p = x->next;
            x->next = drop;
            drop = x;
            memo.count--;
            break;
        }
    }
    e->next = memo.buckets[b];
    memo.buckets[b] = e;
    memo.count++;
    pthread_mutex_unlock(&memo.mu);
    while (drop != NULL) {
        struct svc_memo *x = drop;
        drop = x->next;
        svc_memo_unref(x);
    }
    *out = e;
    return 0;
}

void agent_calls_pods_list(struct agent_call *c)
{
    if (!json_is_array(c->params) ||
        short_str(json_array_get(c->params, 0)) == NULL) {
        agent_call_error(c, 400, "params must be [node_id]");
        return;
    }
    struct store_pod_rows rows = {0};
    int rc = ST_CALL(c->m->store, node_pod_rows, c->row_id, c->grid_id, &rows);
    if (rc != 0) {
        fail_rc(c, rc);
        return;
    }
    /* pods_view reads the names only. */
    struct store_node node = {0};
    struct store_grid grid = {0};
    memcpy(node.id, c->row_id, sizeof(node.id));
    node.name = rows.node_name;
    memcpy(grid.id, c->grid_id, sizeof(grid.id));
    grid.name = rows.grid_name;
    json_t *pods = json_array();
    for (size_t i = 0; i < rows.len; i++) {
        const struct store_pod_row *r = &rows.items[i];
        struct svc_memo *e = NULL;
        rc = svc_memo_get(c->m, c->grid_id, r, &e);
        if (rc != 0) {
            /* No list at all: the agent keeps its previous one, rather
             * than recreating containers without their secrets. */
            cp_warn("pods: no pod list for node %s: the secrets of service "
                    "%s cannot be read (%s)",
                    rows.node_name ? rows.node_name : c->row_id,
                    r->inst.service_id, cp_strerror(rc));
            agent_call_error(c, 503, rc == CP_EAGAIN
                                         ? "the vault is unavailable"
                                         : "a secret cannot be read");
            json_decref(pods);
            store_pod_rows_release(&rows);
            return;
        }
        /* A pod without an image would make the agent refuse the whole
         * list; the API never stores one, so this is only defence. */
        if (e == NULL || cp_json_str(e->svc.spec, "image") == NULL) {
            cp_warn("pods: service %s has no image; pod skipped",
                    r->inst.service_id);
            if (e != NULL)
                svc_memo_unref(e);
            continue;
        }
        json_array_append_new(pods, pod_of(e, r, &grid, &node));
        svc_memo_unref(e);
    }
    /* Credentials are added per list, never memoised: a registry added
     * or removed shows in the next list. */
    rc = registry_add_pod_credentials(c->m, c->grid_id, pods);
    store_pod_rows_release(&rows);
    if (rc != 0) {
        json_decref(pods);
        fail_rc(c, rc);
        return;
    }
    c->result = json_pack("{s:o}", "service_pods", pods);
}

/* ==== /node_service_pods/set_state [node_id, {...}] ==== */

const char *agent_calls_pods_parse_state(const json_t *params,
                                         struct agent_state_report *out)
{
    memset(out, 0, sizeof(*out));
    const json_t *o = json_array_get(params, 1);
    if (!json_is_array(params) ||
        short_str(json_array_get(params, 0)) == NULL || !json_is_object(o))
        return "params must be [node_id, state]";
    const char *sid = cp_json_str(o, "service_id");
    json_t *num = json_object_get(o, "instance_number");
    json_t *rev = json_object_get(o, "rev");
    const char *state = short_str(json_object_get(o, "state"));
    json_t *err = json_object_get(o, "error");
    if (!is_row_id(sid) || !json_is_integer(num) ||
        json_integer_value(num) < 1 || json_integer_value(num) > 1000000 ||
        !(rev == NULL || json_is_null(rev) || short_str(rev) != NULL) ||
        state == NULL ||
        !(err == NULL || json_is_null(err) || json_is_string(err)))
        return "state must be {service_id, instance_number, rev, state, "
               "error}";
    memcpy(out->service_id, sid, sizeof(out->service_id));
    out->instance_number = (int)json_integer_value(num);
    out->rev = json_is_string(rev) ? cp_strdup(json_string_value(rev)) : NULL;
    out->state = cp_strdup(state);
    if (json_is_string(err) && json_string_length(err) > 0)
        out->error = utf8_prefix(json_string_value(err),
                                 json_string_length(err), REPORT_ERROR_MAX);
    return NULL;
}

void agent_state_report_release(struct agent_state_report *r)
{
    cp_free(r->rev);
    cp_free(r->state);
    cp_free(r->error);
    memset(r, 0, sizeof(*r));
}

/* The loop batches these (agents.c); this worker handler serves any other
 * caller with the same checks, one transaction per report. */
void agent_calls_pods_set_state(struct agent_call *c)
{
    struct agent_state_report r;
    const char *why = agent_calls_pods_parse_state(c->params, &r);
    if (why != NULL) {
        agent_call_error(c, 400, why);
        return;
    }
    int rc = ST_CALL(c->m->store, instance_report, r.service_id,
                     r.instance_number, c->row_id, r.rev, r.state, r.error);
    agent_state_report_release(&r);
    if (rc != 0) {
        fail_rc(c, rc);
        return;
    }
    c->result = json_object();
}

/* ==== /node_service_pods/mark_oneshot_hook [node_id, {...}] ==== */

/* The spec's hook entry named name (and of type, when given): hooks are
 * stored flat, [{name, type, ...}], or as {pre_start: [...], ...}. */
static json_t *find_hook(json_t *spec, const char *name, const char *type)
{
    json_t *hooks = json_object_get(spec, "hooks");
    size_t i;
    json_t *h;
    if (json_is_array(hooks)) {
        json_array_foreach(hooks, i, h)
        {
            const char *ht = cp_json_str(h, "type");
            if (cp_json_str(h, "name") != NULL &&
                strcmp(cp_json_str(h, "name"), name) == 0 &&
                (type == NULL || (ht != NULL && strcmp(ht, type) == 0)))
                return h;
        }
        return NULL;
    }
    const char *t;
    json_t *list;
    json_object_foreach(hooks, t, list)
    {
        if (type != NULL && strcmp(t, type) != 0)
            continue;
        json_array_foreach(list, i, h)
        {
            if (cp_json_str(h, "name") != NULL &&
                strcmp(cp_json_str(h, "name"), name) == 0)
                return h;
        }
    }
    return NULL;
}

/* Records that a oneshot hook ran for an instance: its number goes into
 * the hook's "done" list in the service spec, which pods_view.c reads
 * to leave the hook out of later pods. The revision is not bumped: this
 * is bookkeeping, not a change to deploy. The read-modify-write is not
 * atomic against an API update of the same service landing in between;
 * the worst case is a oneshot hook that runs once more. */
void agent_calls_pods_mark_oneshot_hook(struct agent_call *c)
{
    const json_t *o = node_and_object(c, "{service_id, instance_number, "
                                         "hook}");
    if (o == NULL)
        return;
    const char *sid = cp_json_str(o, "service_id");
    json_t *num = json_object_get(o, "instance_number");
    const json_t *hook = json_object_get(o, "hook");
    if (hook == NULL)
        hook = json_array_get(c->params, 2); /* [node_id, pod, hook] */
    const char *name = short_str(json_object_get(hook, "name"));
    if (name == NULL)
        name = short_str(json_object_get(hook, "id"));
    const char *type = short_str(json_object_get(hook, "type"));
    if (!is_row_id(sid) || !json_is_integer(num) ||
        json_integer_value(num) < 1 || json_integer_value(num) > 1000000 ||
        name == NULL) {
        agent_call_error(c, 400,
                         "params must be [node_id, {service_id, "
                         "instance_number, hook: {name, type}}]");
        return;
    }
    int n = (int)json_integer_value(num);
    struct store *st = c->m->store;
    struct store_service svc = {0};
    struct store_instance_list insts = {0};
    int rc = ST_CALL(st, service_get_by_id, sid, &svc);
    if (rc == 0 && strcmp(svc.grid_id, c->grid_id) != 0)
        rc = CP_ENOTFOUND;
    if (rc == 0)
        rc = ST_CALL(st, instance_list, sid, &insts);
    if (rc != 0) {
        agent_call_error(c, rc == CP_ENOTFOUND ? 404 : 500,
                         rc == CP_ENOTFOUND ? "no such service in this grid"
                                            : cp_strerror(rc));
        goto out;
    }
    bool is_ours = false;
    for (size_t i = 0; i < insts.len; i++)
        if (insts.items[i].instance_number == n &&
            strcmp(insts.items[i].node_id, c->row_id) == 0)
            is_ours = true;
    json_t *h = find_hook(svc.spec, name, type);
    if (!is_ours || h == NULL) {
        agent_call_error(c, 404,
                         !is_ours ? "no such instance on this node"
                                  : "no such hook in the service");
        goto out;
    }
    json_t *done = json_object_get(h, "done");
    if (!json_is_array(done)) {
        done = json_array();
        json_object_set_new(h, "done", done);
    }
    size_t i;
    json_t *e;
    json_array_foreach(done, i, e)
    {
        if (json_is_integer(e) && json_integer_value(e) == n) {
            c->result = json_object(); /* already recorded */
            goto out;
        }
    }
    json_array_append_new(done, json_integer(n));
    rc = ST_CALL(st, service_update, &svc);
    if (rc != 0) {
        fail_rc(c, rc);
        goto out;
    }
    cp_info("pods: service %s: %s hook %s done for instance %d", svc.name,
            type != NULL ? type : "oneshot", name, n);
    c->result = json_object();
out:
    store_instance_list_release(&insts);
    store_service_release(&svc);
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

/* The container labels the agent sets for secrets (agent/pods.h): the
 * env names the secrets went to, and a SHA-256 digest of the values with
 * the service id and instance number. The digest is not keyed: it is
 * stripped from every answer of the master, and whoever can read it on
 * the node can read the container's Env as well. */
#define LABEL_SECRET_ENV "io.kontena.container.secret_env"
#define LABEL_SECRETS_REV "io.kontena.container.secrets_rev"

/* True if the env entry "K=V" names one of the service's secret or
 * certificate variables (spec may be NULL), or one the container's
 * secret_env label lists (it may predate the current spec). */
static bool is_secret_env(const char *kv, const json_t *spec,
                          const char *label_names)
{
    static const char *const lists[] = {"secrets", "certificates"};
    size_t klen = strcspn(kv, "=");
    for (size_t l = 0; spec != NULL && l < CP_ARRAY_LEN(lists); l++) {
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
    for (const char *p = label_names; p != NULL && *p != '\0';) {
        size_t n = strcspn(p, ",");
        if (n == klen && strncmp(p, kv, klen) == 0)
            return true;
        p += n;
        if (*p == ',')
            p++;
    }
    return false;
}

void agent_calls_strip_secret_env(json_t *ins, const json_t *spec)
{
    json_t *cfg = json_object_get(ins, "Config");
    json_t *labels = json_object_get(cfg, "Labels");
    const char *secret_names = cp_json_str(labels, LABEL_SECRET_ENV);
    json_t *env = json_object_get(cfg, "Env");
    for (size_t i = json_array_size(env); i-- > 0;) {
        const json_t *e = json_array_get(env, i);
        if (!json_is_string(e) ||
            is_secret_env(json_string_value(e), spec, secret_names))
            json_array_remove(env, i);
    }
    json_object_del(labels, LABEL_SECRETS_REV);
}

/* The part of docker inspect that the API shows (spec 3.2 "Container
 * JSON"), without the env entries of secrets (names and values: spec 7)
 * and without the secrets digest label. */
static json_t *reduce_inspect(const json_t *ins, const json_t *spec)
{
    const json_t *cfg = json_object_get(ins, "Config");
    const json_t *state = json_object_get(ins, "State");
    const json_t *labels = json_object_get(cfg, "Labels");
    const json_t *net = json_object_get(ins, "NetworkSettings");
    const char *secret_names = cp_json_str(labels, LABEL_SECRET_ENV);
    json_t *env = json_array();
    size_t i;
    const json_t *e;
    json_array_foreach(json_object_get(cfg, "Env"), i, e)
    {
        if (json_is_string(e) &&
            !is_secret_env(json_string_value(e), spec, secret_names))
            json_array_append(env, (json_t *)(uintptr_t)e);
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
            json_object_set_new(out, copy[k].to, json_deep_copy(v));
    }
    json_object_del(json_object_get(out, "labels"), LABEL_SECRETS_REV);
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
