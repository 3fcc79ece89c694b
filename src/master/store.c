/* The store facade: picks a backend from the URL and owns the release
 * helpers for the entity structs.
 * SPDX-License-Identifier: Apache-2.0 */
#include "store.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/util.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

/* store_ops_missing reads the table as name followed by an array of
 * function pointers. */
typedef void store_any_fn(void);
_Static_assert(offsetof(struct store_ops, name) == 0,
               "struct store_ops begins with name");
_Static_assert((sizeof(struct store_ops) - sizeof(const char *)) %
                       sizeof(store_any_fn *) ==
                   0,
               "every member of struct store_ops after name is an "
               "operation");

int store_ops_missing(const struct store_ops *ops)
{
    const unsigned char *base =
        (const unsigned char *)ops + sizeof(const char *);
    size_t n = (sizeof(*ops) - sizeof(const char *)) / sizeof(store_any_fn *);
    for (size_t i = 0; i < n; i++) {
        store_any_fn *fn = NULL;
        memcpy(&fn, base + i * sizeof(fn), sizeof(fn));
        if (fn == NULL)
            return (int)i;
    }
    return -1;
}

/* Refuses a backend that leaves an operation NULL (the master would
 * crash on its first call) before opening it. */
static int open_with(const struct store_ops *ops, const char *url,
                     struct store **out, char *err, size_t errlen)
{
    int missing = store_ops_missing(ops);
    if (missing >= 0) {
        *out = NULL;
        snprintf(err, errlen,
                 "the %s store backend lacks operation #%d of struct "
                 "store_ops (a bug: it cannot run this master)",
                 ops->name, missing);
        return CP_EUNSUPPORTED;
    }
    return ops->open(url, out, err, errlen);
}

int store_open(const char *url, struct store **out, char *err,
               size_t errlen)
{
    if (strncmp(url, "postgres://", 11) == 0 ||
        strncmp(url, "postgresql://", 13) == 0) {
#ifdef CP_WITH_POSTGRES
        return open_with(&store_pg_ops, url, out, err, errlen);
#else
        snprintf(err, errlen,
                 "the PostgreSQL store backend is not built into this "
                 "kontena-master (configure with -DWITH_POSTGRES=ON and "
                 "libpq-dev installed)");
        return CP_EUNSUPPORTED;
#endif
    }
    if (strncmp(url, "mongodb://", 10) == 0 ||
        strncmp(url, "mongodb+srv://", 14) == 0) {
#ifdef CP_WITH_MONGODB
        return open_with(&store_mongo_ops, url, out, err, errlen);
#else
        snprintf(err, errlen,
                 "the MongoDB store backend is not built into this "
                 "kontena-master (configure with -DWITH_MONGODB=ON and "
                 "libmongoc-dev installed)");
        return CP_EUNSUPPORTED;
#endif
    }
    const char *path = url;
    if (strncmp(url, "sqlite:", 7) == 0)
        path = url + 7;
    else if (strstr(url, "://") != NULL) {
        snprintf(err, errlen, "unknown store URL scheme in '%s'", url);
        return CP_EINVAL;
    }
    return open_with(&store_sqlite_ops, path, out, err, errlen);
}

void store_process_init(void)
{
#ifdef CP_WITH_MONGODB
    store_mongo_process_init();
#endif
}

void store_close(struct store *st)
{
    if (st != NULL)
        st->ops->close(st);
}

const struct store_ops *store_ops_of(const struct store *st)
{
    return st->ops;
}

void store_new_id(char out[STORE_ID_LEN + 1])
{
    cp_random_hex(out, STORE_ID_LEN / 2);
}

void store_user_release(struct store_user *u)
{
    cp_free(u->email);
    cp_free(u->name);
    memset(u, 0, sizeof(*u));
}

void store_token_release(struct store_token *t)
{
    cp_free(t->token_hash);
    cp_free(t->refresh_hash);
    cp_free(t->scopes);
    cp_free(t->description);
    memset(t, 0, sizeof(*t));
}

void store_grid_release(struct store_grid *g)
{
    cp_free(g->name);
    cp_free(g->token_hash);
    cp_free(g->token_sealed);
    cp_free(g->subnet);
    cp_free(g->supernet);
    json_decref(g->settings);
    memset(g, 0, sizeof(*g));
}

void store_grid_list_release(struct store_grid_list *l)
{
    for (size_t i = 0; i < l->len; i++)
        store_grid_release(&l->items[i]);
    cp_free(l->items);
    l->items = NULL;
    l->len = 0;
}

void store_user_list_release(struct store_user_list *l)
{
    for (size_t i = 0; i < l->len; i++)
        store_user_release(&l->items[i]);
    cp_free(l->items);
    l->items = NULL;
    l->len = 0;
}

void store_token_list_release(struct store_token_list *l)
{
    for (size_t i = 0; i < l->len; i++)
        store_token_release(&l->items[i]);
    cp_free(l->items);
    l->items = NULL;
    l->len = 0;
}

void store_node_release(struct store_node *n)
{
    cp_free(n->node_id);
    cp_free(n->name);
    cp_free(n->token_hash);
    cp_free(n->token_sealed);
    json_decref(n->labels);
    json_decref(n->info);
    json_decref(n->stats);
    cp_free(n->availability);
    cp_free(n->agent_version);
    cp_free(n->conn_master);
    cp_free(n->close_reason);
    memset(n, 0, sizeof(*n));
}

void store_node_list_release(struct store_node_list *l)
{
    for (size_t i = 0; i < l->len; i++)
        store_node_release(&l->items[i]);
    cp_free(l->items);
    l->items = NULL;
    l->len = 0;
}

void store_service_release(struct store_service *s)
{
    cp_free(s->stack_name);
    cp_free(s->name);
    json_decref(s->spec);
    cp_free(s->state);
    memset(s, 0, sizeof(*s));
}

void store_service_list_release(struct store_service_list *l)
{
    for (size_t i = 0; i < l->len; i++)
        store_service_release(&l->items[i]);
    cp_free(l->items);
    l->items = NULL;
    l->len = 0;
}

void store_instance_release(struct store_instance *i)
{
    cp_free(i->desired_state);
    cp_free(i->deploy_rev);
    cp_free(i->rev);
    cp_free(i->state);
    cp_free(i->error);
    memset(i, 0, sizeof(*i));
}

void store_instance_list_release(struct store_instance_list *l)
{
    for (size_t i = 0; i < l->len; i++)
        store_instance_release(&l->items[i]);
    cp_free(l->items);
    l->items = NULL;
    l->len = 0;
}

void store_pod_rows_release(struct store_pod_rows *r)
{
    for (size_t i = 0; i < r->len; i++) {
        store_instance_release(&r->items[i].inst);
        cp_free(r->items[i].service_name);
        cp_free(r->items[i].stack_name);
        cp_free(r->items[i].spec);
    }
    cp_free(r->items);
    cp_free(r->node_name);
    cp_free(r->grid_name);
    memset(r, 0, sizeof(*r));
}

void store_deploy_release(struct store_deploy *d)
{
    cp_free(d->state);
    cp_free(d->reason);
    json_decref(d->instance_deploys);
    cp_free(d->claimed_by);
    memset(d, 0, sizeof(*d));
}

void store_deploy_list_release(struct store_deploy_list *l)
{
    for (size_t i = 0; i < l->len; i++)
        store_deploy_release(&l->items[i]);
    cp_free(l->items);
    l->items = NULL;
    l->len = 0;
}

void store_container_release(struct store_container *c)
{
    cp_free(c->container_id);
    cp_free(c->name);
    cp_free(c->status);
    json_decref(c->info);
    memset(c, 0, sizeof(*c));
}

void store_container_list_release(struct store_container_list *l)
{
    for (size_t i = 0; i < l->len; i++)
        store_container_release(&l->items[i]);
    cp_free(l->items);
    l->items = NULL;
    l->len = 0;
}

void store_log_list_release(struct store_log_list *l)
{
    for (size_t i = 0; i < l->len; i++) {
        cp_free(l->items[i].container_id);
        cp_free(l->items[i].name);
        cp_free(l->items[i].type);
        cp_free(l->items[i].data);
    }
    cp_free(l->items);
    l->items = NULL;
    l->len = 0;
}

void store_event_list_release(struct store_event_list *l)
{
    for (size_t i = 0; i < l->len; i++) {
        cp_free(l->items[i].type);
        cp_free(l->items[i].message);
        json_decref(l->items[i].meta);
    }
    cp_free(l->items);
    l->items = NULL;
    l->len = 0;
}

void store_secret_release(struct store_secret *s)
{
    cp_free(s->name);
    cp_free(s->value);
    for (size_t i = 0; i < s->nservices; i++) {
        cp_free(s->services[i].stack_name);
        cp_free(s->services[i].name);
    }
    cp_free(s->services);
    memset(s, 0, sizeof(*s));
}

void store_secret_list_release(struct store_secret_list *l)
{
    for (size_t i = 0; i < l->len; i++)
        store_secret_release(&l->items[i]);
    cp_free(l->items);
    memset(l, 0, sizeof(*l));
}

void store_registry_release(struct store_registry *r)
{
    cp_free(r->name);
    cp_free(r->url);
    cp_free(r->username);
    cp_free(r->password_sealed);
    cp_free(r->email);
    memset(r, 0, sizeof(*r));
}

void store_registry_list_release(struct store_registry_list *l)
{
    for (size_t i = 0; i < l->len; i++)
        store_registry_release(&l->items[i]);
    cp_free(l->items);
    l->items = NULL;
    l->len = 0;
}

void store_audit_release(struct store_audit *a)
{
    cp_free(a->grid_name);
    cp_free(a->user_email);
    cp_free(a->resource_type);
    cp_free(a->resource_id);
    cp_free(a->resource_name);
    cp_free(a->service_id);
    cp_free(a->event_name);
    cp_free(a->event_status);
    cp_free(a->method);
    cp_free(a->path);
    cp_free(a->source_ip);
    cp_free(a->user_agent);
    cp_free(a->request_body);
    memset(a, 0, sizeof(*a));
}

void store_audit_list_release(struct store_audit_list *l)
{
    for (size_t i = 0; i < l->len; i++)
        store_audit_release(&l->items[i]);
    cp_free(l->items);
    l->items = NULL;
    l->len = 0;
}

void store_stack_release(struct store_stack *k)
{
    cp_free(k->name);
    json_decref(k->labels);
    cp_free(k->parent_name);
    memset(k, 0, sizeof(*k));
}

void store_stack_revision_release(struct store_stack_revision *r)
{
    cp_free(r->stack);
    cp_free(r->version);
    cp_free(r->registry);
    cp_free(r->source);
    cp_free(r->expose);
    json_decref(r->variables);
    json_decref(r->services);
    json_decref(r->volumes);
    json_decref(r->metadata);
    memset(r, 0, sizeof(*r));
}

void store_stack_list_release(struct store_stack_list *l)
{
    for (size_t i = 0; i < l->len; i++) {
        store_stack_release(&l->stacks[i]);
        store_stack_revision_release(&l->revs[i]);
    }
    cp_free(l->stacks);
    cp_free(l->revs);
    memset(l, 0, sizeof(*l));
}

void store_stack_deploy_release(struct store_stack_deploy *d)
{
    cp_free(d->action);
    cp_free(d->state);
    cp_free(d->reason);
    json_decref(d->service_deploys);
    cp_free(d->claimed_by);
    memset(d, 0, sizeof(*d));
}

void store_stack_deploy_list_release(struct store_stack_deploy_list *l)
{
    for (size_t i = 0; i < l->len; i++)
        store_stack_deploy_release(&l->items[i]);
    cp_free(l->items);
    l->items = NULL;
    l->len = 0;
}
