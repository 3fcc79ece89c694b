/* Stacks (spec 3.1 "Stacks", 3.2 "Stack install", 5.5): create, list,
 * show, update (a new immutable revision when anything differs), patch
 * labels, remove (in the background), deploy, stop, restart, and the
 * stack deploy view. The rules are in stacks.c (pure) and the deploys and
 * removals run in its worker; handlers here validate, write and queue.
 *
 * The null stack (the grid's default) is shown but never updated,
 * deployed, stopped, restarted or removed here: 422 {"stack": ...}.
 * Lists are a fixed number of queries whatever the number of stacks and
 * services (issue #2234).
 * SPDX-License-Identifier: Apache-2.0 */
#include "api.h"
#include "deploy.h"
#include "service_model.h"
#include "stacks.h"
#include "valid.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../common/util.h"

#include <string.h>

#define LABELS_MAX 128
#define LABEL_MAX_LEN 1024

/* ==== Loading and views ==== */

/* The stack named by params[1], with its newest revision (rev may be
 * NULL); answers 404 and returns non-zero when there is none. */
static int load_stack(struct api_req *req, struct api_res *res,
                      struct store_stack *k, struct store_stack_revision *rev)
{
    int rc =
        ST_CALL(req->m->store, stack_get, req->grid.id, req->params[1], k, rev);
    if (rc == CP_ENOTFOUND)
        api_error(res, 404, "Not found");
    else if (rc != 0)
        api_store_error(res, rc);
    return rc;
}

/* Refuses verb on the null stack (422); true when refused. */
static bool refuse_null(struct api_res *res, const struct store_stack *k,
                        const char *verb)
{
    if (strcmp(k->name, "null") != 0)
        return false;
    api_field_error(res, "stack", "the default stack null cannot be %s", verb);
    return true;
}

/* Refuses changes while a removal is queued or running (409). */
static bool refuse_removing(struct api_res *res, const struct store_stack *k)
{
    if (!k->removing)
        return false;
    api_error(res, 409, "stack %s is being removed", k->name);
    return true;
}

static json_t *str_or_null(const char *s)
{
    return s != NULL ? json_string(s) : json_null();
}

/* Stack JSON (spec 3.2). svcs holds the grid's services (those of k are
 * picked), counts their instance counts, all every stack of the grid
 * (for parent and children; may be NULL). */
static json_t *stack_json(const struct api_req *req,
                          const struct store_stack *k,
                          const struct store_stack_revision *rev,
                          const struct store_service_list *svcs,
                          const json_t *counts,
                          const struct store_stack_list *all)
{
    const char *g = req->grid.name;
    json_t *j = json_object();
    char *id = cp_asprintf("%s/%s", g, k->name);
    json_object_set_new(j, "id", json_string(id));
    cp_free(id);
    cp_json_set_str(j, "name", k->name);
    json_t *services = json_array();
    const char **states = cp_calloc(svcs->len + 1, sizeof(*states));
    size_t n = 0;
    for (size_t i = 0; i < svcs->len; i++) {
        const struct store_service *s = &svcs->items[i];
        if (strcmp(s->stack_id, k->id) != 0)
            continue;
        states[n++] = s->state;
        json_array_append_new(
            services,
            api__service_view((struct api_req *)(uintptr_t)req, s, counts));
    }
    cp_json_set_str(j, "state", stacks_state(states, n, k->is_deploying));
    cp_free(states);
    cp_json_set_time(j, "created_at", k->created_at);
    cp_json_set_time(j, "updated_at",
                     rev->created_at ? rev->created_at : k->updated_at);
    json_object_set_new(j, "stack", str_or_null(rev->stack));
    json_object_set_new(j, "registry", str_or_null(rev->registry));
    json_object_set_new(j, "version", str_or_null(rev->version));
    json_object_set_new(j, "revision", json_integer(k->revision));
    json_object_set_new(j, "expose", str_or_null(rev->expose));
    json_object_set_new(j, "source", str_or_null(rev->source));
    json_object_set_new(j, "variables",
                        rev->variables ? json_incref(rev->variables)
                                       : json_object());
    json_object_set_new(j, "labels",
                        k->labels ? json_incref(k->labels) : json_array());
    json_object_set_new(j, "services", services);
    json_object_set_new(
        j, "volumes", rev->volumes ? json_incref(rev->volumes) : json_array());
    json_object_set_new(j, "metadata",
                        rev->metadata ? json_incref(rev->metadata)
                                      : json_object());
    json_t *parent = json_null();
    json_t *children = json_array();
    for (size_t i = 0; all != NULL && i < all->len; i++) {
        const struct store_stack *o = &all->stacks[i];
        if (k->parent_name != NULL && strcmp(o->name, k->parent_name) == 0) {
            json_decref(parent);
            char *pid = cp_asprintf("%s/%s", g, o->name);
            parent = json_pack("{s:s, s:s}", "id", pid, "name", o->name);
            cp_free(pid);
        }
        if (o->parent_name != NULL && strcmp(o->parent_name, k->name) == 0) {
            char *cid = cp_asprintf("%s/%s", g, o->name);
            json_array_append_new(
                children, json_pack("{s:s, s:s}", "id", cid, "name", o->name));
            cp_free(cid);
        }
    }
    if (json_is_null(parent) && k->parent_name != NULL)
        parent = json_pack("{s:n, s:s}", "id", "name", k->parent_name);
    json_object_set_new(j, "parent", parent);
    json_object_set_new(j, "children", children);
    return j;
}

/* Answers status with the Stack JSON of the stack named name (four
 * queries: the stacks, the services, their counts). */
static void answer_stack(struct api_req *req, struct api_res *res, int status,
                         const char *name)
{
    struct store_stack_list all = {0};
    struct store_service_list svcs = {0};
    json_t *counts = NULL;
    int rc = ST_CALL(req->m->store, stack_list, req->grid.id, &all);
    if (rc == 0)
        rc = ST_CALL(req->m->store, service_list, req->grid.id, name, &svcs);
    if (rc != 0) {
        api_store_error(res, rc);
        goto out;
    }
    counts = api__service_counts(req, res, NULL);
    if (counts == NULL)
        goto out;
    for (size_t i = 0; i < all.len; i++) {
        if (strcmp(all.stacks[i].name, name) == 0) {
            api_json(res, status,
                     stack_json(req, &all.stacks[i], &all.revs[i], &svcs,
                                counts, &all));
            goto out;
        }
    }
    api_error(res, 404, "Not found");
out:
    json_decref(counts);
    store_service_list_release(&svcs);
    store_stack_list_release(&all);
}

void api_stacks_list(struct api_req *req, struct api_res *res)
{
    struct store_stack_list all = {0};
    struct store_service_list svcs = {0};
    json_t *counts = NULL;
    int rc = ST_CALL(req->m->store, stack_list, req->grid.id, &all);
    if (rc == 0)
        rc = ST_CALL(req->m->store, service_list, req->grid.id, NULL, &svcs);
    if (rc != 0) {
        api_store_error(res, rc);
        goto out;
    }
    counts = api__service_counts(req, res, NULL);
    if (counts == NULL)
        goto out;
    json_t *arr = json_array();
    for (size_t i = 0; i < all.len; i++) {
        if (strcmp(all.stacks[i].name, "null") == 0)
            continue; /* the default stack is hidden */
        json_array_append_new(arr, stack_json(req, &all.stacks[i], &all.revs[i],
                                              &svcs, counts, &all));
    }
    api_json(res, 200, json_pack("{s:o}", "stacks", arr));
out:
    json_decref(counts);
    store_service_list_release(&svcs);
    store_stack_list_release(&all);
}

void api_stack_show(struct api_req *req, struct api_res *res)
{
    answer_stack(req, res, 200, req->params[1]);
}

/* ==== Create and update ==== */

/* labels (array of strings) of body into *out (new reference) when
 * present; adds "labels" to errors when bad. False when absent. */
static bool body_labels(const json_t *body, json_t **out, json_t *errors)
{
    json_t *v = json_object_get(body, "labels");
    *out = NULL;
    if (v == NULL)
        return false;
    if (json_is_null(v)) {
        *out = json_array();
        return true;
    }
    bool ok = json_is_array(v) && json_array_size(v) <= LABELS_MAX;
    size_t i;
    json_t *l;
    json_array_foreach(v, i, l)
    {
        ok = ok && json_is_string(l) && json_string_length(l) > 0 &&
             json_string_length(l) <= LABEL_MAX_LEN;
    }
    if (!ok) {
        json_object_set_new(errors, "labels",
                            json_string("must be an array of non-empty "
                                        "strings (128 at most)"));
        return false;
    }
    *out = json_deep_copy(v);
    return true;
}

/* parent: null or {name}; *name borrowed from body. False when absent. */
static bool body_parent(const json_t *body, const char *self, const char **name,
                        json_t *errors)
{
    json_t *v = json_object_get(body, "parent");
    *name = NULL;
    if (v == NULL)
        return false;
    if (json_is_null(v))
        return true;
    const char *n = cp_json_str(v, "name");
    if (n == NULL || !valid_name(n) || strcmp(n, "null") == 0) {
        json_object_set_new(errors, "parent",
                            json_string("must be null or {\"name\": a stack "
                                        "name}"));
        return false;
    }
    if (self != NULL && strcmp(n, self) == 0) {
        json_object_set_new(errors, "parent",
                            json_string("cannot be the stack itself"));
        return false;
    }
    *name = n;
    return true;
}

/* Adds errors for links of rev's services to other stacks' services the
 * grid lacks (one query). 0, or a store error already answered. */
static int check_links(struct api_req *req, struct api_res *res,
                       const json_t *rev, const char *stack, json_t *errors)
{
    struct store_service_list all = {0};
    int rc = ST_CALL(req->m->store, service_list, req->grid.id, NULL, &all);
    if (rc != 0) {
        api_store_error(res, rc);
        return rc;
    }
    json_t *existing = json_object();
    for (size_t i = 0; i < all.len; i++) {
        char *p =
            cp_asprintf("%s/%s", all.items[i].stack_name, all.items[i].name);
        json_object_set_new(existing, p, json_true());
        cp_free(p);
    }
    stacks_check_external_links(json_object_get(rev, "services"), stack,
                                existing, errors);
    json_decref(existing);
    store_service_list_release(&all);
    return 0;
}

/* The services of rev as store rows of a new stack (specs without the
 * name), in *out (n entries); release with free_services. */
static struct store_service *rev_services(const json_t *rev, size_t *n)
{
    const json_t *list = json_object_get(rev, "services");
    *n = json_array_size(list);
    struct store_service *v = cp_calloc(*n + 1, sizeof(*v));
    for (size_t i = 0; i < *n; i++) {
        const json_t *e = json_array_get(list, i);
        store_new_id(v[i].id);
        v[i].name = (char *)(uintptr_t)cp_json_str(e, "name");
        v[i].spec = json_deep_copy(e);
        json_object_del(v[i].spec, "name");
        v[i].revision = 1;
        v[i].state = (char *)(uintptr_t) "initialized";
    }
    return v;
}

static void free_services(struct store_service *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        json_decref(v[i].spec);
    cp_free(v);
}

void api_stacks_create(struct api_req *req, struct api_res *res)
{
    const json_t *body = req->json;
    json_t *errors = json_object();
    json_t *rev = NULL, *labels = NULL;
    struct store_service *svcs = NULL;
    size_t n = 0;
    struct store_stack_revision r = {0};
    const char *name = cp_json_str(body, "name");
    if (name == NULL || !valid_name(name))
        json_object_set_new(errors, "name",
                            json_string("must be letters, digits, _ and -, "
                                        "not starting with -"));
    else if (strcmp(name, "null") == 0)
        json_object_set_new(errors, "name",
                            json_string("null is the grid's default stack"));
    body_labels(body, &labels, errors);
    const char *parent = NULL;
    body_parent(body, name, &parent, errors);
    if (json_object_get(errors, "name") == NULL) {
        stacks_build_revision(body, name, req->grid.name, NULL, &rev, errors);
        if (rev != NULL && check_links(req, res, rev, name, errors) != 0)
            goto out;
    }
    if (json_object_size(errors) > 0) {
        api_field_errors(res, errors);
        goto out;
    }
    struct store_stack k = {
        .name = (char *)(uintptr_t)name,
        .labels = labels,
        .parent_name = (char *)(uintptr_t)parent,
        .revision = 1,
    };
    store_new_id(k.id);
    memcpy(k.grid_id, req->grid.id, sizeof(k.grid_id));
    stacks_revision_from_json(rev, &r);
    r.revision = 1;
    svcs = rev_services(rev, &n);
    int rc = ST_CALL(req->m->store, stack_create, &k, &r, svcs, n);
    if (rc == CP_ECONFLICT) {
        api_field_error(res, "name", "%s already exists", name);
        goto out;
    }
    if (rc != 0) {
        api_store_error(res, rc);
        goto out;
    }
    cp_info("stacks: %s created stack %s/%s (%zu services)", req->user.email,
            req->grid.name, name, n);
    answer_stack(req, res, 201, name);
out:
    free_services(svcs, n);
    store_stack_revision_release(&r);
    json_decref(rev);
    json_decref(labels);
    json_decref(errors);
}

void api_stack_update(struct api_req *req, struct api_res *res)
{
    struct store_stack k = {0};
    struct store_stack_revision latest = {0}, r = {0};
    struct store_service_list cur = {0};
    struct store_service *svcs = NULL;
    size_t n = 0;
    json_t *errors = json_object();
    json_t *rev = NULL, *labels = NULL, *old = NULL, *specs = json_object();
    if (load_stack(req, res, &k, &latest) != 0)
        goto out;
    if (refuse_null(res, &k, "updated") || refuse_removing(res, &k))
        goto out;
    const char *name = cp_json_str(req->json, "name");
    json_t *nv = json_object_get(req->json, "name");
    if (nv != NULL && !json_is_null(nv) &&
        (name == NULL || strcmp(name, k.name) != 0))
        json_object_set_new(errors, "name",
                            json_string("does not match the stack (a stack "
                                        "cannot be renamed)"));
    bool has_labels = body_labels(req->json, &labels, errors);
    const char *parent = NULL;
    bool has_parent = body_parent(req->json, k.name, &parent, errors);
    int rc = ST_CALL(req->m->store, service_list, req->grid.id, k.name, &cur);
    if (rc != 0) {
        api_store_error(res, rc);
        goto out;
    }
    for (size_t i = 0; i < cur.len; i++)
        json_object_set(specs, cur.items[i].name, cur.items[i].spec);
    stacks_build_revision(req->json, k.name, req->grid.name, specs, &rev,
                          errors);
    if (rev != NULL && check_links(req, res, rev, k.name, errors) != 0)
        goto out;
    if (json_object_size(errors) > 0) {
        api_field_errors(res, errors);
        goto out;
    }
    old = stacks_revision_json(&latest);
    if (stacks_revision_differs(old, rev)) {
        stacks_revision_from_json(rev, &r);
        r.revision = k.revision + 1;
        svcs = rev_services(rev, &n);
        rc =
            ST_CALL(req->m->store, stack_revise, k.id, k.revision, &r, svcs, n);
        if (rc == CP_ECONFLICT) {
            api_error(res, 409,
                      "stack %s was updated meanwhile (now at revision "
                      "> %lld); try again",
                      k.name, (long long)k.revision);
            goto out;
        }
        if (rc != 0) {
            api_store_error(res, rc);
            goto out;
        }
        cp_info("stacks: %s updated stack %s/%s to revision %lld",
                req->user.email, req->grid.name, k.name, (long long)r.revision);
    }
    if (has_labels || has_parent) {
        if (has_labels) {
            json_decref(k.labels);
            k.labels = json_incref(labels);
        }
        if (has_parent) {
            cp_free(k.parent_name);
            k.parent_name = parent ? cp_strdup(parent) : NULL;
        }
        k.updated_at = cp_now_ms();
        rc = ST_CALL(req->m->store, stack_update, &k);
        if (rc != 0) {
            api_store_error(res, rc);
            goto out;
        }
    }
    answer_stack(req, res, 200, k.name);
out:
    free_services(svcs, n);
    store_stack_revision_release(&r);
    store_stack_revision_release(&latest);
    store_service_list_release(&cur);
    store_stack_release(&k);
    json_decref(specs);
    json_decref(old);
    json_decref(rev);
    json_decref(labels);
    json_decref(errors);
}

void api_stack_patch(struct api_req *req, struct api_res *res)
{
    struct store_stack k = {0};
    json_t *errors = json_object(), *labels = NULL;
    if (load_stack(req, res, &k, NULL) != 0)
        goto out;
    if (refuse_null(res, &k, "updated") || refuse_removing(res, &k))
        goto out;
    if (!body_labels(req->json, &labels, errors)) {
        if (json_object_size(errors) == 0)
            json_object_set_new(errors, "labels",
                                json_string("must be given (an array of "
                                            "strings)"));
        api_field_errors(res, errors);
        goto out;
    }
    json_decref(k.labels);
    k.labels = json_incref(labels);
    k.updated_at = cp_now_ms();
    int rc = ST_CALL(req->m->store, stack_update, &k);
    if (rc != 0) {
        api_store_error(res, rc);
        goto out;
    }
    answer_stack(req, res, 200, k.name);
out:
    store_stack_release(&k);
    json_decref(labels);
    json_decref(errors);
}

/* ==== Removal, deploys, stop, restart ==== */

/* Queues a job of action for k; fills out. */
static int queue_job(struct api_req *req, const struct store_stack *k,
                     const char *action, struct store_stack_deploy *out)
{
    struct store_stack_deploy d = {
        .action = (char *)(uintptr_t)action,
        .created_at = cp_now_ms(),
    };
    store_new_id(d.id);
    memcpy(d.stack_id, k->id, sizeof(d.stack_id));
    return ST_CALL(req->m->store, stack_deploy_queue, &d, out);
}

/* Like the original, a stack whose services other stacks link to is not
 * removed: 422 naming the links, nothing changes. */
static void answer_job(struct api_req *req, struct api_res *res,
                       const struct store_stack *k,
                       const struct store_stack_deploy *d);

void api_stack_delete(struct api_req *req, struct api_res *res)
{
    struct store_stack k = {0};
    struct store_service_list all = {0};
    struct store_stack_deploy d = {0};
    if (load_stack(req, res, &k, NULL) != 0)
        goto out;
    if (refuse_null(res, &k, "removed"))
        goto out;
    int rc = ST_CALL(req->m->store, service_list, req->grid.id, NULL, &all);
    if (rc != 0) {
        api_store_error(res, rc);
        goto out;
    }
    for (size_t i = 0; i < all.len; i++) {
        const struct store_service *s = &all.items[i];
        if (strcmp(s->stack_id, k.id) != 0)
            continue;
        for (size_t o = 0; o < all.len; o++) {
            const struct store_service *f = &all.items[o];
            if (strcmp(f->stack_id, k.id) != 0 &&
                service_links_to(f->spec, f->stack_name, k.name, s->name)) {
                api_field_error(res, "service",
                                "cannot remove stack %s: service %s is "
                                "linked from another stack (%s/%s)",
                                k.name, s->name, f->stack_name, f->name);
                goto out;
            }
        }
    }
    rc = queue_job(req, &k, "remove", &d);
    if (rc != 0) {
        api_store_error(res, rc);
        goto out;
    }
    cp_info("stacks: %s removes stack %s/%s (job %s)", req->user.email,
            req->grid.name, k.name, d.id);
    /* The job, so that a client can tell a refused removal from one
     * still running (GET .../deploys/:id). */
    answer_job(req, res, &k, &d);
out:
    store_stack_deploy_release(&d);
    store_service_list_release(&all);
    store_stack_release(&k);
}

/* Stack deploy JSON: the job and the service deploys it queued (one
 * query). */
static void answer_job(struct api_req *req, struct api_res *res,
                       const struct store_stack *k,
                       const struct store_stack_deploy *d)
{
    struct store_deploy_list l = {0};
    int rc = ST_CALL(req->m->store, stack_deploy_services, d->id, &l);
    if (rc != 0) {
        api_store_error(res, rc);
        return;
    }
    json_t *j = json_object();
    char *sid = cp_asprintf("%s/%s", req->grid.name, k->name);
    cp_json_set_str(j, "id", d->id);
    cp_json_set_str(j, "stack_id", sid);
    cp_json_set_str(j, "action", d->action ? d->action : "deploy");
    cp_json_set_time(j, "created_at", d->created_at);
    cp_json_set_time(j, "started_at", d->started_at);
    cp_json_set_time(j, "finished_at", d->finished_at);
    cp_json_set_str(j, "state", d->state ? d->state : "created");
    json_object_set_new(j, "reason", str_or_null(d->reason));
    json_object_set_new(j, "revision", json_integer(d->revision));
    json_t *arr = json_array();
    for (size_t i = 0; i < l.len; i++) {
        /* The service's name as the job recorded it (it may be gone). */
        const char *name = NULL;
        size_t k2;
        json_t *e;
        json_array_foreach(d->service_deploys, k2, e)
        {
            const char *svc = cp_json_str(e, "service_id");
            if (svc != NULL && strcmp(svc, l.items[i].service_id) == 0)
                name = cp_json_str(e, "name");
        }
        char *path = cp_asprintf("%s/%s", sid, name ? name : "?");
        json_array_append_new(arr, deploy_json(&l.items[i], path));
        cp_free(path);
    }
    json_object_set_new(j, "service_deploys", arr);
    cp_free(sid);
    store_deploy_list_release(&l);
    api_json(res, 200, j);
}

void api_stack_deploy(struct api_req *req, struct api_res *res)
{
    struct store_stack k = {0};
    struct store_stack_deploy d = {0};
    if (load_stack(req, res, &k, NULL) != 0)
        goto out;
    if (refuse_null(res, &k, "deployed") || refuse_removing(res, &k))
        goto out;
    int rc = queue_job(req, &k, "deploy", &d);
    if (rc != 0) {
        api_store_error(res, rc);
        goto out;
    }
    cp_info("stacks: %s deploys stack %s/%s (job %s)", req->user.email,
            req->grid.name, k.name, d.id);
    answer_job(req, res, &k, &d);
out:
    store_stack_deploy_release(&d);
    store_stack_release(&k);
}

void api_stack_deploy_show(struct api_req *req, struct api_res *res)
{
    struct store_stack k = {0};
    struct store_stack_deploy d = {0};
    if (load_stack(req, res, &k, NULL) != 0)
        goto out;
    int rc = ST_CALL(req->m->store, stack_deploy_get, req->params[2], &d);
    if (rc == 0 && strcmp(d.stack_id, k.id) != 0)
        rc = CP_ENOTFOUND;
    if (rc != 0)
        api_store_error(res, rc);
    else
        answer_job(req, res, &k, &d);
out:
    store_stack_deploy_release(&d);
    store_stack_release(&k);
}

/* Stop (desired stopped) or restart every service of the stack, as the
 * service routes do. */
static void fan_out(struct api_req *req, struct api_res *res, bool restart)
{
    struct store_stack k = {0};
    struct store_service_list l = {0};
    if (load_stack(req, res, &k, NULL) != 0)
        goto out;
    if (refuse_null(res, &k, restart ? "restarted" : "stopped") ||
        refuse_removing(res, &k))
        goto out;
    int rc = ST_CALL(req->m->store, service_list, req->grid.id, k.name, &l);
    for (size_t i = 0; rc == 0 && i < l.len; i++)
        rc = restart ? deploy_restart(req->m, &l.items[i])
                     : deploy_set_desired(req->m, &l.items[i], "stopped");
    if (rc != 0) {
        api_store_error(res, rc);
        goto out;
    }
    stacks_event(req->m, &k, 1, restart ? "stack:restart" : "stack:stop",
                 "stack %s %s (%zu services)", k.name,
                 restart ? "restarted" : "stopped", l.len);
    api_json(res, 200, json_object());
out:
    store_service_list_release(&l);
    store_stack_release(&k);
}

void api_stack_stop(struct api_req *req, struct api_res *res)
{
    fan_out(req, res, false);
}

void api_stack_restart(struct api_req *req, struct api_res *res)
{
    fan_out(req, res, true);
}
