/* Stacks: the pure rules and the stack job worker; see stacks.h.
 *
 * DESIGN (the worker)
 * - A 1 s poll on the loop claims stack jobs while fewer than
 *   STACKS_MAX_INFLIGHT run here. The store hands a job to one master at a
 *   time (a lease of STACKS_LEASE_MS, renewed by every save) and never
 *   runs two jobs of one stack at once.
 * - Each claimed job steps once a second on the worker pool. A step reads
 *   what it needs, does one thing (apply the revision; queue the next
 *   service deploy; look at the one it waits on; remove the stack) and
 *   saves its progress in the job row, fenced by the claim. A step never
 *   sleeps, so a slow service deploy costs one store read per second.
 * - Progress in the row (the applied revision, the service deploys queued
 *   in order) lets another master resume a job whose master died: the
 *   apply is idempotent, and a service deploy already queued is waited
 *   on, not queued again.
 * - Every job ends in success or error with a reason that names the
 *   service (issue #2523): a failure before any service deploy (a link
 *   target gone, a service that cannot be updated) is an error like any
 *   other, written by the same finish().
 * SPDX-License-Identifier: Apache-2.0 */
#include "stacks.h"
#include "deploy.h"
#include "service_model.h"
#include "valid.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../common/util.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STACKS_MAX_INFLIGHT 8
#define STACKS_POLL_MS 1000
#define STACKS_TICK_MS 1000
#define STACKS_LEASE_MS 30000
#define STACKS_RENEW_MS 10000
/* How long a stack deploy waits for one service deploy (spec 5.5). */
#define STACKS_SERVICE_TIMEOUT_S 600

/* ==== Link order ==== */

/* The stack-local target of link name ("svc" or "<own>/svc"), or NULL
 * for a link to another stack. */
static const char *local_target(const char *name, const char *own)
{
    const char *slash = strchr(name, '/');
    if (slash == NULL)
        return name;
    size_t n = (size_t)(slash - name);
    if (own != NULL && strlen(own) == n && strncmp(name, own, n) == 0)
        return slash + 1;
    return NULL;
}

static size_t index_of(const json_t *services, const char *name)
{
    size_t i;
    json_t *s;
    json_array_foreach(services, i, s)
    {
        const char *n = cp_json_str(s, "name");
        if (n != NULL && strcmp(n, name) == 0)
            return i;
    }
    return SIZE_MAX;
}

enum mark { WHITE, GREY, BLACK };

struct sorter {
    const json_t *services;
    const char *own;
    enum mark *mark;
    size_t *path; /* the grey chain, for the cycle message */
    size_t depth;
    size_t *order;
    size_t n_out;
    char *why;
    size_t len;
    size_t bad;
};

static void cycle_message(struct sorter *s, size_t from)
{
    size_t start = 0;
    while (start < s->depth && s->path[start] != from)
        start++;
    struct cp_buf b;
    cp_buf_init(&b, 4096);
    for (size_t k = start; k < s->depth; k++)
        cp_buf_printf(
            &b, "%s -> ",
            cp_json_str(json_array_get(s->services, s->path[k]), "name"));
    cp_buf_printf(&b, "%s",
                  cp_json_str(json_array_get(s->services, from), "name"));
    snprintf(s->why, s->len, "service %s has recursive links: %s",
             cp_json_str(json_array_get(s->services, from), "name"),
             b.data ? b.data : "");
    cp_buf_release(&b);
    s->bad = from;
}

/* Depth-first: a service is emitted after everything it links to. */
static int visit(struct sorter *s, size_t i)
{
    s->mark[i] = GREY;
    s->path[s->depth++] = i;
    size_t k;
    json_t *l;
    json_array_foreach(json_object_get(json_array_get(s->services, i), "links"),
                       k, l)
    {
        const char *ln =
            json_is_string(l) ? json_string_value(l) : cp_json_str(l, "name");
        const char *t = ln ? local_target(ln, s->own) : NULL;
        if (t == NULL)
            continue;
        size_t j = index_of(s->services, t);
        if (j == SIZE_MAX)
            continue; /* reported before sorting */
        if (s->mark[j] == GREY) {
            cycle_message(s, j);
            return CP_EINVAL;
        }
        if (s->mark[j] == WHITE && visit(s, j) != 0)
            return CP_EINVAL;
    }
    s->depth--;
    s->mark[i] = BLACK;
    s->order[s->n_out++] = i;
    return 0;
}

int stacks_order(const json_t *services, const char *own_stack, size_t *order,
                 char *why, size_t len, size_t *bad)
{
    size_t n = json_array_size(services);
    if (why != NULL && len > 0)
        why[0] = '\0';
    /* Missing targets first, in input order. */
    for (size_t i = 0; i < n; i++) {
        const json_t *svc = json_array_get(services, i);
        size_t k;
        json_t *l;
        json_array_foreach(json_object_get(svc, "links"), k, l)
        {
            const char *ln = json_is_string(l) ? json_string_value(l)
                                               : cp_json_str(l, "name");
            const char *t = ln ? local_target(ln, own_stack) : NULL;
            if (t != NULL && index_of(services, t) == SIZE_MAX) {
                snprintf(why, len, "service %s has missing links: %s",
                         cp_json_str(svc, "name"), t);
                if (bad != NULL)
                    *bad = i;
                return CP_EINVAL;
            }
        }
    }
    struct sorter s = {
        .services = services,
        .own = own_stack,
        .mark = cp_calloc(n + 1, sizeof(enum mark)),
        .path = cp_calloc(n + 1, sizeof(size_t)),
        .order = order,
        .why = why,
        .len = len,
    };
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        if (s.mark[i] == WHITE)
            rc = visit(&s, i);
    if (rc != 0 && bad != NULL)
        *bad = s.bad;
    cp_free(s.mark);
    cp_free(s.path);
    return rc;
}

/* ==== Revisions ==== */

static void add_error(json_t *errors, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void add_error(json_t *errors, const char *key, const char *fmt, ...)
{
    if (json_object_get(errors, key) != NULL)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_object_set_new(errors, key, json_string(msg));
}

/* Copies the errors of one service as "services.<svc>.<field>". */
static void prefix_errors(json_t *errors, const char *svc, const json_t *errs)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)(uintptr_t)errs, k, v)
    {
        char *key = cp_asprintf("services.%s.%s", svc, k);
        add_error(errors, key, "%s", json_string_value(v));
        cp_free(key);
    }
}

/* An optional string field: absent or null is null. */
static json_t *opt_string(const json_t *body, const char *key, json_t *errors)
{
    json_t *v = json_object_get(body, key);
    if (v == NULL || json_is_null(v))
        return json_null();
    if (!json_is_string(v)) {
        add_error(errors, key, "must be a string");
        return json_null();
    }
    return json_incref(v);
}

static json_t *opt_object(const json_t *body, const char *key, json_t *errors)
{
    json_t *v = json_object_get(body, key);
    if (v == NULL || json_is_null(v))
        return json_object();
    if (!json_is_object(v)) {
        add_error(errors, key, "must be an object");
        return json_object();
    }
    return json_deep_copy(v);
}

/* Validates the services array into specs (with names), unordered. */
static json_t *build_services(const json_t *list, const char *stack_name,
                              const char *grid_name, const json_t *current,
                              json_t *errors)
{
    json_t *out = json_array();
    if (!json_is_array(list) || json_array_size(list) == 0) {
        add_error(errors, "services", "stack does not specify any services");
        return out;
    }
    if (json_array_size(list) > STACKS_MAX_SERVICES) {
        add_error(errors, "services", "a stack has at most %d services",
                  STACKS_MAX_SERVICES);
        return out;
    }
    size_t i;
    json_t *body;
    json_array_foreach(list, i, body)
    {
        const char *name = cp_json_str(body, "name");
        if (!json_is_object(body) || name == NULL || !valid_name(name)) {
            add_error(errors, "services",
                      "entry %zu must be an object with a name of letters, "
                      "digits, _ and -, not starting with -",
                      i + 1);
            continue;
        }
        if (index_of(out, name) != SIZE_MAX) {
            char *key = cp_asprintf("services.%s.name", name);
            add_error(errors, key, "service %s is defined twice", name);
            cp_free(key);
            continue;
        }
        json_t *errs = json_object();
        json_t *spec = NULL;
        service_validate(body, NULL, &spec, errs);
        service_name_ok(name, stack_name, grid_name,
                        cp_json_int(spec, "instances", 1), errs);
        const json_t *cur = json_object_get(current, name);
        if (cur != NULL && json_object_size(errs) == 0) {
            /* What an update of the existing service may not change. */
            json_t *upd = NULL;
            service_validate(body, cur, &upd, errs);
            json_decref(upd);
        }
        prefix_errors(errors, name, errs);
        json_decref(errs);
        json_object_set_new(spec, "name", json_string(name));
        json_array_append_new(out, spec);
    }
    return out;
}

static json_t *build_volumes(const json_t *v, json_t *errors)
{
    if (v == NULL || json_is_null(v))
        return json_array();
    if (!json_is_array(v)) {
        add_error(errors, "volumes", "must be an array of {name, external}");
        return json_array();
    }
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e)
    {
        const char *name = cp_json_str(e, "name");
        json_t *ext = json_object_get(e, "external");
        if (!json_is_object(e) || name == NULL || !valid_name(name)) {
            add_error(errors, "volumes", "entry %zu must be {name, external}",
                      i + 1);
            continue;
        }
        char *key = cp_asprintf("volumes.%s", name);
        if (ext == NULL || json_is_false(ext) || json_is_null(ext))
            add_error(errors, "volumes",
                      "only external volumes are supported "
                      "(volume %s is not external)",
                      name);
        else
            /* External volumes must exist, and this master keeps no
             * managed volumes yet: none can. */
            add_error(errors, key,
                      "external volume %s not found: this master has no "
                      "managed volumes yet",
                      json_is_string(ext) ? json_string_value(ext) : name);
        cp_free(key);
    }
    return json_deep_copy(v);
}

int stacks_build_revision(const json_t *body, const char *stack_name,
                          const char *grid_name, const json_t *current,
                          json_t **rev_out, json_t *errors)
{
    size_t before = json_object_size(errors);
    *rev_out = NULL;
    json_t *rev = json_object();
    static const char *const strs[] = {"stack", "version", "registry", "source",
                                       "expose"};
    for (size_t i = 0; i < CP_ARRAY_LEN(strs); i++)
        json_object_set_new(rev, strs[i], opt_string(body, strs[i], errors));
    json_object_set_new(rev, "variables",
                        opt_object(body, "variables", errors));
    json_object_set_new(rev, "metadata", opt_object(body, "metadata", errors));
    json_object_set_new(
        rev, "volumes",
        build_volumes(json_object_get(body, "volumes"), errors));
    json_t *svcs = build_services(json_object_get(body, "services"), stack_name,
                                  grid_name, current, errors);
    const char *expose = cp_json_str(rev, "expose");
    if (expose != NULL && index_of(svcs, expose) == SIZE_MAX)
        add_error(errors, "expose", "%s is not defined in the services array",
                  expose);
    size_t n = json_array_size(svcs);
    size_t *order = cp_calloc(n + 1, sizeof(*order));
    char why[512];
    size_t bad = 0;
    json_t *sorted = json_array();
    if (stacks_order(svcs, stack_name, order, why, sizeof(why), &bad) != 0) {
        char *key = cp_asprintf("services.%s.links",
                                cp_json_str(json_array_get(svcs, bad), "name"));
        add_error(errors, key, "%s", why);
        cp_free(key);
    } else {
        for (size_t i = 0; i < n; i++)
            json_array_append(sorted, json_array_get(svcs, order[i]));
    }
    cp_free(order);
    json_decref(svcs);
    json_object_set_new(rev, "services", sorted);
    if (json_object_size(errors) > before) {
        json_decref(rev);
        return CP_EINVAL;
    }
    *rev_out = rev;
    return 0;
}

bool stacks_check_external_links(const json_t *services, const char *own_stack,
                                 const json_t *existing, json_t *errors)
{
    bool ok = true;
    size_t i, k;
    json_t *svc, *l;
    json_array_foreach(services, i, svc)
    {
        json_array_foreach(json_object_get(svc, "links"), k, l)
        {
            const char *ln = cp_json_str(l, "name");
            if (ln == NULL || local_target(ln, own_stack) != NULL ||
                json_object_get(existing, ln) != NULL)
                continue;
            char *key =
                cp_asprintf("services.%s.links", cp_json_str(svc, "name"));
            add_error(errors, key, "linked service %s does not exist", ln);
            cp_free(key);
            ok = false;
        }
    }
    return ok;
}

static const char *const rev_fields[] = {
    "stack",     "version",  "registry", "source",   "expose",
    "variables", "services", "volumes",  "metadata",
};

bool stacks_revision_differs(const json_t *a, const json_t *b)
{
    for (size_t i = 0; i < CP_ARRAY_LEN(rev_fields); i++) {
        json_t *x = json_object_get(a, rev_fields[i]);
        json_t *y = json_object_get(b, rev_fields[i]);
        if (x == NULL)
            x = json_null();
        if (y == NULL)
            y = json_null();
        if (!json_equal(x, y))
            return true;
    }
    return false;
}

const char *stacks_state(const char *const *service_states, size_t n,
                         bool is_deploying)
{
    size_t init = 0, run = 0, stop = 0;
    for (size_t i = 0; i < n; i++) {
        const char *s = service_states[i] ? service_states[i] : "initialized";
        if (strcmp(s, "running") == 0)
            run++;
        else if (strcmp(s, "stopped") == 0)
            stop++;
        else
            init++;
    }
    if (init == n)
        return "initialized";
    if (is_deploying)
        return "deploying";
    if (stop == n)
        return "stopped";
    if (run == n)
        return "running";
    return "partially_running";
}

static json_t *str_or_null(const char *s)
{
    return s != NULL ? json_string(s) : json_null();
}

json_t *stacks_revision_json(const struct store_stack_revision *r)
{
    json_t *j = json_object();
    json_object_set_new(j, "stack", str_or_null(r->stack));
    json_object_set_new(j, "version", str_or_null(r->version));
    json_object_set_new(j, "registry", str_or_null(r->registry));
    json_object_set_new(j, "source", str_or_null(r->source));
    json_object_set_new(j, "expose", str_or_null(r->expose));
    json_object_set_new(j, "variables",
                        r->variables ? json_incref(r->variables)
                                     : json_object());
    json_object_set_new(j, "services",
                        r->services ? json_incref(r->services) : json_array());
    json_object_set_new(j, "volumes",
                        r->volumes ? json_incref(r->volumes) : json_array());
    json_object_set_new(j, "metadata",
                        r->metadata ? json_incref(r->metadata) : json_object());
    return j;
}

static char *dup_str(const json_t *rev, const char *key)
{
    const char *s = cp_json_str(rev, key);
    return s ? cp_strdup(s) : NULL;
}

void stacks_revision_from_json(const json_t *rev,
                               struct store_stack_revision *r)
{
    r->stack = dup_str(rev, "stack");
    r->version = dup_str(rev, "version");
    r->registry = dup_str(rev, "registry");
    r->source = dup_str(rev, "source");
    r->expose = dup_str(rev, "expose");
    r->variables = json_deep_copy(json_object_get(rev, "variables"));
    r->services = json_deep_copy(json_object_get(rev, "services"));
    r->volumes = json_deep_copy(json_object_get(rev, "volumes"));
    r->metadata = json_deep_copy(json_object_get(rev, "metadata"));
}

/* ==== Events ==== */

void stacks_event(struct master *m, const struct store_stack *k, int severity,
                  const char *type, const char *fmt, ...)
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
    memcpy(ev.grid_id, k->grid_id, sizeof(ev.grid_id));
    memcpy(ev.stack_id, k->id, sizeof(ev.stack_id));
    int rc = ST_CALL(m->store, events_append, &ev, 1);
    if (rc != 0)
        cp_warn("stacks: cannot record event \"%s\": %s", msg, cp_strerror(rc));
}

/* ==== The worker: one job ==== */

/* A claimed job. The loop owns it between steps; a worker owns it while
 * busy. */
struct job {
    struct job *next;
    struct master *m;
    struct store_stack_deploy d; /* the claimed row; claimed_by is ours */
    int64_t renewed_at;
    bool is_busy;
    bool is_done;
    uv_timer_t tick;
};

static struct {
    struct master *m;
    uv_timer_t poll;
    bool is_started;
    bool is_stopping;
    bool is_claiming;
    int inflight;
    struct job *list;
} eng;

/* Writes the job (fenced), renewing its lease unless it finished.
 * Returns false when the claim is lost (or the row is gone). */
static bool save(struct job *j)
{
    int64_t now = cp_now_ms();
    j->d.lease_until = j->d.finished_at ? now : now + STACKS_LEASE_MS;
    int rc = ST_CALL(j->m->store, stack_deploy_update, &j->d);
    if (rc == CP_ECONFLICT || rc == CP_ENOTFOUND) {
        cp_info("stacks: job %s: claim lost, leaving it", j->d.id);
        j->is_done = true;
        return false;
    }
    if (rc != 0) {
        /* The lease outlives a transient failure; the next step retries. */
        cp_warn("stacks: cannot save job %s: %s", j->d.id, cp_strerror(rc));
        return true;
    }
    j->renewed_at = now;
    return true;
}

static void finish(struct job *j, const struct store_stack *k,
                   const char *error)
{
    cp_free(j->d.state);
    j->d.state = cp_strdup(error ? "error" : "success");
    cp_free(j->d.reason);
    j->d.reason = error ? cp_strdup(error) : NULL;
    j->d.finished_at = cp_now_ms();
    bool is_remove = strcmp(j->d.action, "remove") == 0;
    if (save(j) && k != NULL) {
        if (error)
            stacks_event(
                j->m, k, 3, is_remove ? "stack:remove" : "stack:deploy",
                "%s %s of stack %s failed: %s",
                is_remove ? "removal" : "deploy", j->d.id, k->name, error);
        else
            stacks_event(j->m, k, 1, "stack:deploy",
                         "deploy %s of stack %s (revision %lld) finished",
                         j->d.id, k->name, (long long)j->d.revision);
    }
    cp_info("stacks: %s %s of %s: %s%s%s", j->d.action, j->d.id,
            k ? k->name : j->d.stack_id, j->d.state, error ? ": " : "",
            error ? error : "");
    j->is_done = true;
}

/* The first message of an errors object, as "field: message". */
static void first_error(const json_t *errors, char *out, size_t len)
{
    const char *key;
    json_t *v;
    out[0] = '\0';
    json_object_foreach((json_t *)(uintptr_t)errors, key, v)
    {
        snprintf(out, len, "%s: %s", key, json_string_value(v));
        return;
    }
}

/* Services of the grid outside stack k that link to service name of k:
 * "stack/svc" of the first, or NULL. */
static const struct store_service *
linked_from_outside(const struct store_service_list *all,
                    const struct store_stack *k, const char *name)
{
    for (size_t i = 0; i < all->len; i++) {
        const struct store_service *o = &all->items[i];
        if (strcmp(o->stack_id, k->id) != 0 &&
            service_links_to(o->spec, o->stack_name, k->name, name))
            return o;
    }
    return NULL;
}

/* Applies revision rev of stack k to its services: refuses links to
 * services missing from the grid, then creates or updates every service
 * in link order (stack_revision = the revision) and removes the
 * services the revision lacks. 0, or CP_EINVAL with why. Idempotent. */
static int apply(struct job *j, const struct store_stack *k,
                 const struct store_stack_revision *rev, char *why, size_t len)
{
    struct master *m = j->m;
    struct store_service_list all = {0};
    json_t *existing = json_object(), *errors = json_object();
    int rc = ST_CALL(m->store, service_list, k->grid_id, NULL, &all);
    if (rc != 0) {
        snprintf(why, len, "cannot read the grid's services: %s",
                 cp_strerror(rc));
        goto out;
    }
    for (size_t i = 0; i < all.len; i++) {
        char *path =
            cp_asprintf("%s/%s", all.items[i].stack_name, all.items[i].name);
        json_object_set_new(existing, path, json_true());
        cp_free(path);
    }
    if (!stacks_check_external_links(rev->services, k->name, existing,
                                     errors)) {
        first_error(errors, why, len);
        rc = CP_EINVAL;
        goto out;
    }
    /* Services the revision drops must not be linked from elsewhere. */
    for (size_t i = 0; i < all.len; i++) {
        const struct store_service *s = &all.items[i];
        if (strcmp(s->stack_id, k->id) != 0 ||
            index_of(rev->services, s->name) != SIZE_MAX)
            continue;
        const struct store_service *o = linked_from_outside(&all, k, s->name);
        if (o != NULL) {
            snprintf(why, len,
                     "service %s cannot be removed: %s/%s links to it", s->name,
                     o->stack_name, o->name);
            rc = CP_EINVAL;
            goto out;
        }
    }
    size_t i;
    json_t *want;
    json_array_foreach(rev->services, i, want)
    {
        const char *name = cp_json_str(want, "name");
        const struct store_service *cur = NULL;
        for (size_t a = 0; a < all.len && cur == NULL; a++)
            if (strcmp(all.items[a].stack_id, k->id) == 0 &&
                strcmp(all.items[a].name, name) == 0)
                cur = &all.items[a];
        json_t *spec = json_deep_copy(want);
        json_object_del(spec, "name");
        if (cur == NULL) {
            struct store_service s = {
                .name = (char *)(uintptr_t)name,
                .spec = spec,
                .revision = 1,
                .stack_revision = rev->revision,
                .state = (char *)(uintptr_t) "initialized",
            };
            store_new_id(s.id);
            memcpy(s.grid_id, k->grid_id, sizeof(s.grid_id));
            memcpy(s.stack_id, k->id, sizeof(s.stack_id));
            rc = ST_CALL(m->store, service_create, &s);
            if (rc == CP_ECONFLICT)
                rc = 0; /* made meanwhile (a resumed job): updated below */
        } else {
            json_t *errs = json_object(), *upd = NULL;
            service_validate(want, cur->spec, &upd, errs);
            json_decref(upd);
            if (json_object_size(errs) > 0) {
                char first[400];
                first_error(errs, first, sizeof(first));
                snprintf(why, len, "service %s cannot be updated: %s", name,
                         first);
                json_decref(errs);
                json_decref(spec);
                rc = CP_EINVAL;
                goto out;
            }
            json_decref(errs);
            struct store_service s = *cur; /* borrowed strings */
            s.spec = spec;
            s.stack_revision = rev->revision;
            if (!json_equal(spec, cur->spec)) {
                s.revision = cur->revision + 1;
                s.updated_at = cp_now_ms();
            }
            rc = ST_CALL(m->store, service_update, &s);
        }
        json_decref(spec);
        if (rc != 0) {
            snprintf(why, len, "cannot save service %s: %s", name,
                     cp_strerror(rc));
            goto out;
        }
    }
    for (size_t a = 0; a < all.len; a++) {
        const struct store_service *s = &all.items[a];
        if (strcmp(s->stack_id, k->id) != 0 ||
            index_of(rev->services, s->name) != SIZE_MAX)
            continue;
        rc = deploy_remove_service(m, s);
        if (rc != 0 && rc != CP_ENOTFOUND) {
            snprintf(why, len, "cannot remove service %s: %s", s->name,
                     cp_strerror(rc));
            goto out;
        }
        rc = 0;
        cp_info("stacks: stack %s: removed service %s (not in revision %lld)",
                k->name, s->name, (long long)rev->revision);
    }
out:
    json_decref(existing);
    json_decref(errors);
    store_service_list_release(&all);
    return rc;
}

static int service_timeout(void)
{
    long long v;
    const char *s = getenv("KONTENA_STACK_SERVICE_TIMEOUT");
    if (s == NULL || cp_parse_int(s, 1, 86400, &v) != 0)
        return STACKS_SERVICE_TIMEOUT_S;
    return (int)v;
}

/* One step of a deploy: apply, or wait on the current service deploy,
 * or queue the next one, or finish. */
static void deploy_step(struct job *j, const struct store_stack *k)
{
    struct master *m = j->m;
    struct store_stack_revision rev = {0};
    struct store_deploy dep = {0};
    struct store_service svc = {0};
    char why[1024];
    int64_t now = cp_now_ms();
    if (k->removing) {
        finish(j, k, "the stack is being removed");
        return;
    }
    if (j->d.revision == 0) {
        int rc =
            ST_CALL(m->store, stack_revision_get, k->id, k->revision, &rev);
        if (rc != 0) {
            snprintf(why, sizeof(why), "cannot read revision %lld: %s",
                     (long long)k->revision, cp_strerror(rc));
            finish(j, k, why);
            goto out;
        }
        rev.revision = k->revision;
        if (apply(j, k, &rev, why, sizeof(why)) != 0) {
            finish(j, k, why);
            goto out;
        }
        j->d.revision = k->revision;
        stacks_event(m, k, 1, "stack:deploy",
                     "deploy %s of stack %s: revision %lld applied to %zu "
                     "services",
                     j->d.id, k->name, (long long)k->revision,
                     json_array_size(rev.services));
        save(j);
        goto out;
    }
    int rc = ST_CALL(m->store, stack_revision_get, k->id, j->d.revision, &rev);
    if (rc != 0) {
        snprintf(why, sizeof(why), "cannot read revision %lld: %s",
                 (long long)j->d.revision, cp_strerror(rc));
        finish(j, k, why);
        goto out;
    }
    size_t done = json_array_size(j->d.service_deploys);
    if (done > 0) {
        const json_t *last = json_array_get(j->d.service_deploys, done - 1);
        const char *name = cp_json_str(last, "name");
        rc =
            ST_CALL(m->store, deploy_get, cp_json_str(last, "deploy_id"), &dep);
        if (rc == CP_ENOTFOUND) {
            snprintf(why, sizeof(why),
                     "service %s was removed during the deploy", name);
            finish(j, k, why);
            goto out;
        }
        if (rc != 0)
            goto renew; /* a store hiccup: try again next step */
        if (dep.state != NULL && strcmp(dep.state, "error") == 0) {
            snprintf(why, sizeof(why), "service %s deploy failed: %s", name,
                     dep.reason ? dep.reason : "unknown error");
            finish(j, k, why);
            goto out;
        }
        if (dep.state == NULL || strcmp(dep.state, "success") != 0) {
            int timeout = service_timeout();
            if (now - cp_json_int(last, "queued_at", now) >
                (int64_t)timeout * 1000) {
                snprintf(why, sizeof(why),
                         "service %s did not finish deploying within %d s",
                         name, timeout);
                finish(j, k, why);
                goto out;
            }
            goto renew;
        }
    }
    if (done >= json_array_size(rev.services)) {
        finish(j, k, NULL);
        goto out;
    }
    const char *name = cp_json_str(json_array_get(rev.services, done), "name");
    rc = ST_CALL(m->store, service_get, k->grid_id, k->name, name, &svc);
    if (rc != 0) {
        snprintf(why, sizeof(why), "service %s: %s", name,
                 rc == CP_ENOTFOUND ? "removed during the deploy"
                                    : cp_strerror(rc));
        finish(j, k, why);
        goto out;
    }
    store_deploy_release(&dep);
    rc = deploy_request_ex(m, &svc, false, j->d.id, &dep);
    if (rc != 0) {
        snprintf(why, sizeof(why), "service %s: cannot queue its deploy: %s",
                 name, cp_strerror(rc));
        finish(j, k, why);
        goto out;
    }
    json_array_append_new(j->d.service_deploys,
                          json_pack("{s:s, s:s, s:s, s:I}", "service_id",
                                    svc.id, "name", name, "deploy_id", dep.id,
                                    "queued_at", (json_int_t)now));
    save(j);
    goto out;
renew:
    if (now - j->renewed_at >= STACKS_RENEW_MS)
        save(j);
out:
    store_service_release(&svc);
    store_deploy_release(&dep);
    store_stack_revision_release(&rev);
}

/* Removal: refused (and the stack kept) while services of other stacks
 * link to it; otherwise stop every service, delete them in reverse link
 * order, then the stack (its revisions and jobs, this one too, go with
 * it). */
static void remove_step(struct job *j, struct store_stack *k)
{
    struct master *m = j->m;
    struct store_service_list all = {0};
    json_t *mine = json_array();
    size_t *order = NULL;
    char why[512];
    int rc = ST_CALL(m->store, service_list, k->grid_id, NULL, &all);
    if (rc != 0)
        goto renew;
    for (size_t i = 0; i < all.len; i++) {
        const struct store_service *s = &all.items[i];
        if (strcmp(s->stack_id, k->id) != 0)
            continue;
        const struct store_service *o = linked_from_outside(&all, k, s->name);
        if (o != NULL) {
            snprintf(why, sizeof(why),
                     "service %s is linked from another stack (%s/%s)", s->name,
                     o->stack_name, o->name);
            k->removing = false;
            k->updated_at = cp_now_ms();
            ST_CALL(m->store, stack_update, k);
            finish(j, k, why);
            goto out;
        }
        json_t *e =
            json_pack("{s:s, s:I}", "name", s->name, "at", (json_int_t)i);
        json_object_set(e, "links", json_object_get(s->spec, "links"));
        json_array_append_new(mine, e);
    }
    size_t n = json_array_size(mine);
    order = cp_calloc(n + 1, sizeof(*order));
    if (stacks_order(mine, k->name, order, why, sizeof(why), NULL) != 0)
        for (size_t i = 0; i < n; i++)
            order[i] = i; /* cannot happen for stored stacks */
    for (size_t i = 0; i < n; i++) {
        struct store_service *s =
            &all.items[cp_json_int(json_array_get(mine, i), "at", 0)];
        if (s->state != NULL && strcmp(s->state, "initialized") != 0)
            deploy_set_desired(m, s, "stopped");
    }
    for (size_t i = n; i-- > 0;) {
        const struct store_service *s =
            &all.items[cp_json_int(json_array_get(mine, order[i]), "at", 0)];
        rc = deploy_remove_service(m, s);
        if (rc != 0 && rc != CP_ENOTFOUND) {
            cp_warn("stacks: cannot remove service %s of stack %s: %s", s->name,
                    k->name, cp_strerror(rc));
            goto renew; /* retried next step */
        }
    }
    rc = ST_CALL(m->store, stack_delete, k->id);
    if (rc == 0 || rc == CP_ENOTFOUND) {
        cp_info("stacks: stack %s removed (%zu services)", k->name, n);
        j->is_done = true;
        goto out;
    }
    if (rc == CP_ECONFLICT)
        goto renew; /* a service appeared meanwhile: removed next step */
    cp_warn("stacks: cannot delete stack %s: %s", k->name, cp_strerror(rc));
renew:
    if (cp_now_ms() - j->renewed_at >= STACKS_RENEW_MS)
        save(j);
out:
    cp_free(order);
    json_decref(mine);
    store_service_list_release(&all);
}

static void step_work(void *ctx)
{
    struct job *j = ctx;
    struct store_stack k = {0};
    int rc = ST_CALL(j->m->store, stack_get_by_id, j->d.stack_id, &k, NULL);
    if (rc == CP_ENOTFOUND) {
        j->is_done = true; /* the stack went, and its jobs with it */
        return;
    }
    if (rc != 0) {
        if (cp_now_ms() - j->renewed_at >= STACKS_RENEW_MS)
            save(j);
        return;
    }
    if (strcmp(k.name, "null") == 0)
        finish(j, &k, "the default stack null cannot be deployed or removed");
    else if (strcmp(j->d.action, "remove") == 0)
        remove_step(j, &k);
    else
        deploy_step(j, &k);
    store_stack_release(&k);
}

/* ==== The worker: claiming and stepping on the loop ==== */

static void poll_now(void);
static void on_tick(uv_timer_t *t);

static void job_free(uv_handle_t *h)
{
    struct job *j = h->data;
    store_stack_deploy_release(&j->d);
    cp_free(j);
}

static void job_close(struct job *j)
{
    for (struct job **p = &eng.list; *p != NULL; p = &(*p)->next) {
        if (*p == j) {
            *p = j->next;
            break;
        }
    }
    eng.inflight--;
    uv_timer_stop(&j->tick);
    uv_close((uv_handle_t *)&j->tick, job_free);
}

static void step_done(void *ctx)
{
    struct job *j = ctx;
    j->is_busy = false;
    if (j->is_done || eng.is_stopping) {
        job_close(j);
        if (!eng.is_stopping)
            poll_now();
    }
}

static void on_tick(uv_timer_t *t)
{
    struct job *j = t->data;
    if (j->is_busy)
        return;
    j->is_busy = true;
    master_queue(j->m, step_work, step_done, j);
}

struct claim {
    struct master *m;
    struct store_stack_deploy d;
    int rc;
};

static void claim_work(void *ctx)
{
    struct claim *c = ctx;
    c->rc = ST_CALL(c->m->store, stack_deploy_claim, c->m->master_id,
                    cp_now_ms(), STACKS_LEASE_MS, &c->d);
}

static void claim_done(void *ctx)
{
    struct claim *c = ctx;
    eng.is_claiming = false;
    if (c->rc != 0 || eng.is_stopping) {
        if (c->rc != 0 && c->rc != CP_ENOTFOUND)
            cp_warn("stacks: cannot claim stack jobs: %s", cp_strerror(c->rc));
        store_stack_deploy_release(&c->d);
        cp_free(c);
        return;
    }
    /* Our own job whose lease ran out while it still runs here (a slow
     * step, a store outage): the claim renewed its lease; the job goes
     * on as it is, never twice. */
    for (struct job *o = eng.list; o != NULL; o = o->next) {
        if (strcmp(o->d.id, c->d.id) == 0) {
            cp_warn("stacks: %s %s was still running here; its lease is "
                    "renewed",
                    o->d.action, o->d.id);
            o->renewed_at = cp_now_ms();
            store_stack_deploy_release(&c->d);
            cp_free(c);
            poll_now();
            return;
        }
    }
    struct job *j = cp_calloc(1, sizeof(*j));
    j->m = c->m;
    j->d = c->d; /* takes the row */
    cp_free(c);
    if (j->d.action == NULL)
        j->d.action = cp_strdup("deploy");
    if (!json_is_array(j->d.service_deploys)) {
        json_decref(j->d.service_deploys);
        j->d.service_deploys = json_array();
    }
    j->renewed_at = cp_now_ms();
    cp_info("stacks: claimed %s %s of stack %s", j->d.action, j->d.id,
            j->d.stack_id);
    j->next = eng.list;
    eng.list = j;
    eng.inflight++;
    uv_timer_init(j->m->loop, &j->tick);
    j->tick.data = j;
    uv_timer_start(&j->tick, on_tick, 0, STACKS_TICK_MS);
    poll_now(); /* there may be more ready */
}

static void poll_now(void)
{
    if (!eng.is_started || eng.is_stopping || eng.is_claiming ||
        eng.inflight >= STACKS_MAX_INFLIGHT)
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

void stacks_start(struct master *m)
{
    memset(&eng, 0, sizeof(eng));
    eng.m = m;
    eng.is_started = true;
    uv_timer_init(m->loop, &eng.poll);
    uv_timer_start(&eng.poll, on_poll, 0, STACKS_POLL_MS);
}

void stacks_stop(struct master *m)
{
    CP_UNUSED(m);
    if (!eng.is_started || eng.is_stopping)
        return;
    eng.is_stopping = true;
    uv_timer_stop(&eng.poll);
    uv_close((uv_handle_t *)&eng.poll, NULL);
    struct job *j = eng.list;
    while (j != NULL) {
        struct job *next = j->next;
        if (!j->is_busy)
            job_close(j);
        else
            uv_timer_stop(&j->tick);
        j = next;
    }
}
