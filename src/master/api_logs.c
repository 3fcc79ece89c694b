/* Container logs and events (spec 3.3), for a grid, a service or a
 * container; each is a plain list or, with ?follow, a stream (see struct
 * api_stream in api.h; http.c drives it).
 *
 * Query: limit (default 100, 1..10000), since (ISO time; ignored with
 * from), from (the id, i.e. the store seq, of the last item seen: items
 * strictly after it), follow. Items come oldest first: the last limit
 * items, or the first limit after from. A stream sends the same backlog,
 * then pages by seq > last in chunks of 300.
 *
 * A stack's logs and events are the grid's narrowed to the stack (events
 * carry their stack; log lines are those of the stack's services).
 *
 * Filters that name several values (services=a,b&nodes=n1,n2) are one
 * store query per combination (at most 64), merged by seq: each item
 * belongs to one service, node and container, so the combinations never
 * overlap. Names shown in items (services, stacks, nodes) come from two
 * queries made once per request (and again by a stream when an item names
 * something new), never one per item (issue #2234).
 * SPDX-License-Identifier: Apache-2.0 */
#include "api.h"
#include "service_model.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/jw.h"
#include "../common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOGS_DEFAULT_LIMIT 100
#define LOGS_MAX_LIMIT 10000
#define LOGS_PAGE 300
#define LOGS_MAX_FILTERS 64

enum logs_kind { LOGS_LINES, LOGS_EVENTS };

/* One store query's narrowing; NULL fields do not narrow. */
struct filter {
    char *service_id;
    char *node_id;
    char *container;
    char *stack_id;
};

/* A log or event query, owned by the request or (follow) by its stream;
 * it references nothing of the request. */
struct logs {
    struct master *m;
    enum logs_kind kind;
    char grid_id[STORE_ID_LEN + 1];
    char *grid_name;
    struct filter *f;
    size_t nf;
    char *search; /* substring of data; applied after the query */
    int limit;
    int64_t since;
    int64_t after;  /* last seq sent */
    bool started;   /* the backlog was sent (follow) */
    json_t *svcs;   /* service id -> {path, name, stack, stack_path} */
    json_t *stacks; /* stack id -> stack name */
    json_t *nodes;  /* node id -> name */
};

static void logs_free(void *ctx)
{
    struct logs *x = ctx;
    if (x == NULL)
        return;
    for (size_t i = 0; i < x->nf; i++) {
        cp_free(x->f[i].service_id);
        cp_free(x->f[i].node_id);
        cp_free(x->f[i].container);
        cp_free(x->f[i].stack_id);
    }
    cp_free(x->f);
    cp_free(x->grid_name);
    cp_free(x->search);
    json_decref(x->svcs);
    json_decref(x->stacks);
    json_decref(x->nodes);
    cp_free(x);
}

/* (Re)loads the names of the grid's services, stacks and nodes (three
 * queries). */
static int load_names(struct logs *x)
{
    struct store_service_list sl = {0};
    struct store_node_list nl = {0};
    int rc = ST_CALL(x->m->store, service_list, x->grid_id, NULL, &sl);
    if (rc == 0)
        rc = ST_CALL(x->m->store, node_list, x->grid_id, &nl);
    if (rc != 0)
        goto out;
    json_decref(x->svcs);
    json_decref(x->stacks);
    json_decref(x->nodes);
    x->svcs = json_object();
    x->stacks = json_object();
    x->nodes = json_object();
    for (size_t i = 0; i < sl.len; i++) {
        const struct store_service *s = &sl.items[i];
        const char *stack = s->stack_name ? s->stack_name : "null";
        char *path = service_path(x->grid_name, s);
        char *stack_path = cp_asprintf("%s/%s", x->grid_name, stack);
        json_object_set_new(x->svcs, s->id,
                            json_pack("{s:s, s:s, s:s, s:s}", "path", path,
                                      "name", s->name, "stack", stack,
                                      "stack_path", stack_path));
        json_object_set_new(x->stacks, s->stack_id, json_string(stack));
        cp_free(path);
        cp_free(stack_path);
    }
    for (size_t i = 0; i < nl.len; i++)
        json_object_set_new(x->nodes, nl.items[i].id,
                            json_string(nl.items[i].name));
    /* Stacks without services have events too (their deploys). */
    struct store_stack_list kl = {0};
    if (ST_CALL(x->m->store, stack_list, x->grid_id, &kl) == 0)
        for (size_t i = 0; i < kl.len; i++)
            json_object_set_new(x->stacks, kl.stacks[i].id,
                                json_string(kl.stacks[i].name));
    store_stack_list_release(&kl);
out:
    store_service_list_release(&sl);
    store_node_list_release(&nl);
    return rc;
}

/* ==== Reading and rendering ==== */

struct ref {
    int64_t seq;
    const void *item;
};

static int by_seq(const void *a, const void *b)
{
    const struct ref *x = a, *y = b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static bool known(const json_t *map, const char *id)
{
    return id[0] == '\0' || json_object_get(map, id) != NULL;
}

static void write_line(const struct logs *x, struct jw *w,
                       const struct store_log *l)
{
    char id[32];
    snprintf(id, sizeof(id), "%lld", (long long)l->seq);
    const json_t *sv = json_object_get(x->svcs, l->service_id);
    const char *node = cp_json_str(x->nodes, l->node_id);
    jw_obj_open(w);
    jw_key(w, "id");
    jw_str(w, id);
    jw_key(w, "name");
    jw_str(w, l->name);
    jw_key(w, "container_id");
    jw_str(w, l->container_id);
    jw_key(w, "service");
    if (sv != NULL) {
        jw_obj_open(w);
        jw_key(w, "id");
        jw_str(w, cp_json_str(sv, "path"));
        jw_key(w, "name");
        jw_str(w, cp_json_str(sv, "name"));
        jw_obj_close(w);
    } else {
        jw_null(w);
    }
    jw_key(w, "stack");
    if (sv != NULL) {
        jw_obj_open(w);
        jw_key(w, "id");
        jw_str(w, cp_json_str(sv, "stack_path"));
        jw_key(w, "name");
        jw_str(w, cp_json_str(sv, "stack"));
        jw_obj_close(w);
    } else {
        jw_null(w);
    }
    jw_key(w, "grid");
    jw_obj_open(w);
    jw_key(w, "id");
    jw_str(w, x->grid_name);
    jw_key(w, "name");
    jw_str(w, x->grid_name);
    jw_obj_close(w);
    jw_key(w, "node");
    if (node != NULL) {
        jw_obj_open(w);
        jw_key(w, "name");
        jw_str(w, node);
        jw_obj_close(w);
    } else {
        jw_null(w);
    }
    jw_key(w, "created_at");
    jw_time(w, l->created_at);
    jw_key(w, "type");
    jw_str(w, l->type);
    jw_key(w, "data");
    jw_str(w, l->data ? l->data : "");
    jw_obj_close(w);
}

static void relationship(struct jw *w, const char *id, const char *type)
{
    jw_obj_open(w);
    jw_key(w, "id");
    jw_str(w, id);
    jw_key(w, "type");
    jw_str(w, type);
    jw_obj_close(w);
}

static void write_event(const struct logs *x, struct jw *w,
                        const struct store_event *e)
{
    char id[32];
    snprintf(id, sizeof(id), "%lld", (long long)e->seq);
    const json_t *sv = json_object_get(x->svcs, e->service_id);
    const char *stack = cp_json_str(x->stacks, e->stack_id);
    const char *node = cp_json_str(x->nodes, e->node_id);
    jw_obj_open(w);
    jw_key(w, "id");
    jw_str(w, id);
    jw_key(w, "created_at");
    jw_time(w, e->created_at);
    jw_key(w, "severity");
    jw_int(w, e->severity);
    jw_key(w, "type");
    jw_str(w, e->type);
    jw_key(w, "message");
    jw_str(w, e->message);
    jw_key(w, "meta");
    jw_json(w, e->meta, "{}");
    jw_key(w, "relationships");
    jw_arr_open(w);
    relationship(w, x->grid_name, "grid");
    if (stack != NULL) {
        char *p = cp_asprintf("%s/%s", x->grid_name, stack);
        relationship(w, p, "stack");
        cp_free(p);
    }
    if (sv != NULL)
        relationship(w, cp_json_str(sv, "path"), "service");
    if (node != NULL) {
        char *p = cp_asprintf("%s/%s", x->grid_name, node);
        relationship(w, p, "node");
        cp_free(p);
    }
    jw_arr_close(w);
    jw_obj_close(w);
}

/* Reads at most limit items (after x->after, or the last ones since
 * x->since) over every filter, renders them oldest first into w (bare
 * objects when bare, else array elements) and advances x->after. Returns
 * the number rendered or a CP_E* code. */
static int read_window(struct logs *x, struct jw *w, int limit, bool bare)
{
    bool is_lines = x->kind == LOGS_LINES;
    struct store_log_list *ll = NULL;
    struct store_event_list *el = NULL;
    struct ref *refs = NULL;
    size_t nrefs = 0, total = 0;
    int rc = 0, written = 0;
    if (is_lines)
        ll = cp_calloc(x->nf, sizeof(*ll));
    else
        el = cp_calloc(x->nf, sizeof(*el));
    for (size_t i = 0; i < x->nf; i++) {
        struct store_log_query q = {
            .grid_id = x->grid_id,
            .service_id = x->f[i].service_id,
            .node_id = x->f[i].node_id,
            .container_name = x->f[i].container,
            .stack_id = x->f[i].stack_id,
            .after_seq = x->after,
            .since_ms = x->after > 0 ? 0 : x->since,
            .limit = limit,
        };
        rc = is_lines ? ST_CALL(x->m->store, logs_read, &q, &ll[i])
                      : ST_CALL(x->m->store, events_read, &q, &el[i]);
        if (rc != 0)
            goto out;
        total += is_lines ? ll[i].len : el[i].len;
    }
    refs = cp_calloc(total ? total : 1, sizeof(*refs));
    for (size_t i = 0; i < x->nf; i++) {
        size_t n = is_lines ? ll[i].len : el[i].len;
        for (size_t k = 0; k < n; k++) {
            if (is_lines)
                refs[nrefs++] =
                    (struct ref){ll[i].items[k].seq, &ll[i].items[k]};
            else
                refs[nrefs++] =
                    (struct ref){el[i].items[k].seq, &el[i].items[k]};
        }
    }
    qsort(refs, nrefs, sizeof(*refs), by_seq);
    /* After from: the first limit; otherwise the last limit. */
    size_t first = 0, count = nrefs < (size_t)limit ? nrefs : (size_t)limit;
    if (x->after == 0)
        first = nrefs - count;
    bool need_names = false;
    for (size_t i = first; i < first + count && !need_names; i++) {
        if (is_lines) {
            const struct store_log *l = refs[i].item;
            need_names =
                !known(x->svcs, l->service_id) || !known(x->nodes, l->node_id);
        } else {
            const struct store_event *e = refs[i].item;
            need_names = !known(x->svcs, e->service_id) ||
                         !known(x->nodes, e->node_id) ||
                         !known(x->stacks, e->stack_id);
        }
    }
    if (need_names) {
        rc = load_names(x);
        if (rc != 0)
            goto out;
    }
    struct cp_buf *out = w->out;
    for (size_t i = first; i < first + count; i++) {
        /* Stop well before the buffer's bound so that the JSON stays
         * whole; the rest comes with the next page. */
        if (out->len > out->max / 2)
            break;
        x->after = refs[i].seq;
        if (is_lines) {
            const struct store_log *l = refs[i].item;
            if (x->search != NULL &&
                (l->data == NULL || strstr(l->data, x->search) == NULL))
                continue;
        }
        if (bare)
            jw_init(w, out);
        if (is_lines)
            write_line(x, w, refs[i].item);
        else
            write_event(x, w, refs[i].item);
        written++;
    }
out:
    for (size_t i = 0; i < x->nf; i++) {
        if (is_lines)
            store_log_list_release(&ll[i]);
        else
            store_event_list_release(&el[i]);
    }
    cp_free(ll);
    cp_free(el);
    cp_free(refs);
    return rc != 0 ? rc : written;
}

/* The stream's poll (a worker thread; see struct api_stream). */
static int logs_poll(void *ctx, struct cp_buf *out)
{
    struct logs *x = ctx;
    struct jw w;
    jw_init(&w, out);
    int n = read_window(x, &w, x->started ? LOGS_PAGE : x->limit, true);
    x->started = true;
    return n;
}

/* ==== Requests ==== */

/* Parses limit, since, from; answers 422 and returns NULL when bad. */
static struct logs *logs_new(struct api_req *req, struct api_res *res,
                             enum logs_kind kind)
{
    struct logs *x = cp_calloc(1, sizeof(*x));
    x->m = req->m;
    x->kind = kind;
    memcpy(x->grid_id, req->grid.id, sizeof(x->grid_id));
    x->grid_name = cp_strdup(req->grid.name);
    x->limit = LOGS_DEFAULT_LIMIT;
    char *limit = api_query(req, "limit");
    char *since = api_query(req, "since");
    char *from = api_query(req, "from");
    long long n;
    if (limit != NULL && *limit != '\0') {
        if (cp_parse_int(limit, 1, LOGS_MAX_LIMIT, &n) != 0)
            api_field_error(res, "limit", "must be an integer from 1 to %d",
                            LOGS_MAX_LIMIT);
        else
            x->limit = (int)n;
    }
    if (since != NULL && *since != '\0' &&
        cp_time_parse_iso(since, &x->since) != 0)
        api_field_error(res, "since",
                        "must be an ISO-8601 time like "
                        "2026-01-31T12:00:00Z");
    if (from != NULL && *from != '\0') {
        if (cp_parse_int(from, 0, INT64_MAX, &n) != 0)
            api_field_error(res, "from",
                            "must be the id of the last item seen");
        else
            x->after = n;
    }
    cp_free(limit);
    cp_free(since);
    cp_free(from);
    if (!api_failed(res) && load_names(x) != 0)
        api_error(res, 500, "cannot read the grid's services and nodes");
    if (api_failed(res)) {
        logs_free(x);
        return NULL;
    }
    return x;
}

/* The values of a comma-separated query parameter, as a new array
 * (empty when absent). */
static json_t *query_list(const struct api_req *req, const char *name)
{
    json_t *arr = json_array();
    char *v = api_query(req, name);
    for (const char *s = v; s != NULL && *s != '\0';) {
        size_t len = strcspn(s, ",");
        if (len > 0) {
            char *w = cp_strndup(s, len);
            json_array_append_new(arr, json_string(w));
            cp_free(w);
        }
        s += len;
        if (*s == ',')
            s++;
    }
    cp_free(v);
    return arr;
}

/* Ids that match nothing stand in for names that match nothing, so that
 * "services=gone" is an empty answer rather than every log. */
#define NO_MATCH "-"

/* Service ids named by "svc" (any stack, null stack first) or "S/svc". */
static json_t *resolve_services(const struct logs *x, const json_t *names)
{
    json_t *ids = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(names, i, v)
    {
        const char *want = json_string_value(v);
        const char *slash = strchr(want, '/');
        size_t before = json_array_size(ids);
        const char *id;
        json_t *sv;
        json_object_foreach(x->svcs, id, sv)
        {
            const char *stack = cp_json_str(sv, "stack");
            const char *name = cp_json_str(sv, "name");
            bool hit =
                slash ? strncmp(want, stack, (size_t)(slash - want)) == 0 &&
                            stack[slash - want] == '\0' &&
                            strcmp(slash + 1, name) == 0
                      : strcmp(want, name) == 0;
            if (hit)
                json_array_append_new(ids, json_string(id));
        }
        if (json_array_size(ids) == before)
            json_array_append_new(ids, json_string(NO_MATCH));
    }
    return ids;
}

/* Ids of map (id -> name) whose name is one of names. */
static json_t *resolve_names(const json_t *map, const json_t *names)
{
    json_t *ids = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(names, i, v)
    {
        size_t before = json_array_size(ids);
        const char *id;
        json_t *e;
        json_object_foreach((json_t *)(uintptr_t)map, id, e)
        {
            const char *name = json_string_value(e);
            if (name != NULL && strcmp(name, json_string_value(v)) == 0)
                json_array_append_new(ids, json_string(id));
        }
        if (json_array_size(ids) == before)
            json_array_append_new(ids, json_string(NO_MATCH));
    }
    return ids;
}

static char *dup_or_null(const json_t *arr, size_t i)
{
    const char *s = json_string_value(json_array_get(arr, i));
    return s ? cp_strdup(s) : NULL;
}

/* Sets x's filters to every combination of the four lists (empty lists
 * do not narrow). Answers 422 beyond LOGS_MAX_FILTERS. */
static int set_filters(struct logs *x, struct api_res *res, const json_t *svc,
                       const json_t *node, const json_t *cont,
                       const json_t *stack)
{
    size_t ns = json_array_size(svc) ? json_array_size(svc) : 1;
    size_t nn = json_array_size(node) ? json_array_size(node) : 1;
    size_t nc = json_array_size(cont) ? json_array_size(cont) : 1;
    size_t nk = json_array_size(stack) ? json_array_size(stack) : 1;
    if (ns > LOGS_MAX_FILTERS || nn > LOGS_MAX_FILTERS ||
        nc > LOGS_MAX_FILTERS || nk > LOGS_MAX_FILTERS ||
        ns * nn * nc * nk > LOGS_MAX_FILTERS) {
        api_field_error(res, "filters",
                        "name at most %d combinations of services, stacks, "
                        "nodes and containers",
                        LOGS_MAX_FILTERS);
        return CP_EINVAL;
    }
    x->nf = ns * nn * nc * nk;
    x->f = cp_calloc(x->nf, sizeof(*x->f));
    size_t k = 0;
    for (size_t a = 0; a < ns; a++)
        for (size_t b = 0; b < nn; b++)
            for (size_t c = 0; c < nc; c++)
                for (size_t d = 0; d < nk; d++, k++) {
                    x->f[k].service_id = dup_or_null(svc, a);
                    x->f[k].node_id = dup_or_null(node, b);
                    x->f[k].container = dup_or_null(cont, c);
                    x->f[k].stack_id = dup_or_null(stack, d);
                }
    return 0;
}

/* Answers the list, or starts the stream with ?follow. Takes x. */
static void logs_answer(struct api_req *req, struct api_res *res,
                        struct logs *x)
{
    char *follow = api_query(req, "follow");
    bool is_follow = follow != NULL && strcmp(follow, "false") != 0 &&
                     strcmp(follow, "0") != 0;
    cp_free(follow);
    if (is_follow) {
        api_stream(res, logs_poll, logs_free, x);
        return;
    }
    struct cp_buf b;
    struct jw w;
    cp_buf_init(&b, API_MAX_RESPONSE);
    jw_init(&w, &b);
    jw_obj_open(&w);
    jw_key(&w, "logs");
    jw_arr_open(&w);
    int rc = read_window(x, &w, x->limit, false);
    jw_arr_close(&w);
    jw_obj_close(&w);
    logs_free(x);
    if (rc < 0) {
        cp_buf_release(&b);
        api_store_error(res, rc);
        return;
    }
    api_raw_json(res, 200, &b);
}

void api_grid_container_logs(struct api_req *req, struct api_res *res)
{
    struct logs *x = logs_new(req, res, LOGS_LINES);
    if (x == NULL)
        return;
    json_t *svc_names = query_list(req, "services");
    json_t *node_names = query_list(req, "nodes");
    json_t *conts = query_list(req, "containers");
    json_t *svcs = resolve_services(x, svc_names);
    json_t *nodes = resolve_names(x->nodes, node_names);
    json_t *none = json_array();
    int rc = set_filters(x, res, svcs, nodes, conts, none);
    json_decref(svc_names);
    json_decref(node_names);
    json_decref(conts);
    json_decref(svcs);
    json_decref(nodes);
    json_decref(none);
    if (rc != 0)
        logs_free(x);
    else
        logs_answer(req, res, x);
}

void api_grid_event_logs(struct api_req *req, struct api_res *res)
{
    struct logs *x = logs_new(req, res, LOGS_EVENTS);
    if (x == NULL)
        return;
    json_t *svc_names = query_list(req, "services");
    json_t *node_names = query_list(req, "nodes");
    json_t *stack_names = query_list(req, "stacks");
    json_t *svcs = resolve_services(x, svc_names);
    json_t *nodes = resolve_names(x->nodes, node_names);
    json_t *stacks = resolve_names(x->stacks, stack_names);
    json_t *none = json_array();
    int rc = set_filters(x, res, svcs, nodes, none, stacks);
    json_decref(svc_names);
    json_decref(node_names);
    json_decref(stack_names);
    json_decref(svcs);
    json_decref(nodes);
    json_decref(stacks);
    json_decref(none);
    if (rc != 0)
        logs_free(x);
    else
        logs_answer(req, res, x);
}

/* The logs of one service: ?container=<name>, ?instance=<n> (its
 * container's name, one query), ?search=<text>. */
void api_service_container_logs(struct api_req *req, struct api_res *res)
{
    struct store_service s = {0};
    struct store_container_list cl = {0};
    struct logs *x = NULL;
    json_t *svc = NULL, *conts = NULL, *none = json_array();
    char *container = api_query(req, "container");
    char *instance = api_query(req, "instance");
    if (api__service_load(req, res, &s) != 0)
        goto out;
    x = logs_new(req, res, LOGS_LINES);
    if (x == NULL)
        goto out;
    x->search = api_query(req, "search");
    if (x->search != NULL && *x->search == '\0') {
        cp_free(x->search);
        x->search = NULL;
    }
    svc = json_pack("[s]", s.id);
    conts = json_array();
    if (container != NULL && *container != '\0')
        json_array_append_new(conts, json_string(container));
    if (instance != NULL && *instance != '\0') {
        long long n;
        if (cp_parse_int(instance, 1, SERVICE_MAX_INSTANCES, &n) != 0) {
            api_field_error(res, "instance", "must be an instance number");
            goto out;
        }
        int rc = ST_CALL(req->m->store, container_list, req->grid.id, NULL,
                         s.id, &cl);
        if (rc != 0) {
            api_store_error(res, rc);
            goto out;
        }
        const char *name = NO_MATCH;
        for (size_t i = 0; i < cl.len; i++)
            if (cl.items[i].instance_number == n)
                name = cl.items[i].name;
        json_array_clear(conts);
        json_array_append_new(conts, json_string(name));
    }
    if (set_filters(x, res, svc, none, conts, none) != 0)
        goto out;
    logs_answer(req, res, x);
    x = NULL;
out:
    logs_free(x);
    json_decref(svc);
    json_decref(conts);
    json_decref(none);
    cp_free(container);
    cp_free(instance);
    store_container_list_release(&cl);
    store_service_release(&s);
}

void api_service_event_logs(struct api_req *req, struct api_res *res)
{
    struct store_service s = {0};
    if (api__service_load(req, res, &s) != 0)
        return;
    struct logs *x = logs_new(req, res, LOGS_EVENTS);
    json_t *svc = json_pack("[s]", s.id), *none = json_array();
    if (x != NULL && set_filters(x, res, svc, none, none, none) == 0) {
        logs_answer(req, res, x);
        x = NULL;
    }
    logs_free(x);
    json_decref(svc);
    json_decref(none);
    store_service_release(&s);
}

void api_container_logs(struct api_req *req, struct api_res *res)
{
    struct store_node n = {0};
    int rc =
        ST_CALL(req->m->store, node_find, req->grid.id, req->params[1], &n);
    if (rc != 0) {
        api_store_error(res, rc);
        return;
    }
    struct logs *x = logs_new(req, res, LOGS_LINES);
    json_t *node = json_pack("[s]", n.id);
    json_t *cont = json_pack("[s]", req->params[2]);
    json_t *none = json_array();
    if (x != NULL && set_filters(x, res, none, node, cont, none) == 0) {
        logs_answer(req, res, x);
        x = NULL;
    }
    logs_free(x);
    json_decref(node);
    json_decref(cont);
    json_decref(none);
    store_node_release(&n);
}

/* ==== Stacks ==== */

/* The id of the stack named by params[1] as a one-element array (new
 * reference), or NULL after answering 404. */
static json_t *stack_filter(struct api_req *req, struct api_res *res)
{
    struct store_stack k = {0};
    int rc = ST_CALL(req->m->store, stack_get, req->grid.id, req->params[1],
                     &k, NULL);
    if (rc != 0) {
        api_store_error(res, rc);
        return NULL;
    }
    json_t *ids = json_pack("[s]", k.id);
    store_stack_release(&k);
    return ids;
}

/* Service names of a stack's query: "svc" is the stack's own. */
static json_t *stack_service_names(const struct api_req *req)
{
    json_t *names = query_list(req, "services");
    size_t i;
    json_t *v;
    json_array_foreach(names, i, v)
    {
        const char *s = json_string_value(v);
        if (strchr(s, '/') == NULL) {
            char *full = cp_asprintf("%s/%s", req->params[1], s);
            json_array_set_new(names, i, json_string(full));
            cp_free(full);
        }
    }
    return names;
}

/* The logs of a stack's services: the grid route's parameters
 * (services, nodes, containers) narrowed to the stack. */
void api_stack_container_logs(struct api_req *req, struct api_res *res)
{
    json_t *stack = stack_filter(req, res);
    if (stack == NULL)
        return;
    struct logs *x = logs_new(req, res, LOGS_LINES);
    if (x == NULL) {
        json_decref(stack);
        return;
    }
    json_t *svc_names = stack_service_names(req);
    json_t *node_names = query_list(req, "nodes");
    json_t *conts = query_list(req, "containers");
    json_t *svcs = resolve_services(x, svc_names);
    json_t *nodes = resolve_names(x->nodes, node_names);
    int rc = set_filters(x, res, svcs, nodes, conts, stack);
    json_decref(svc_names);
    json_decref(node_names);
    json_decref(conts);
    json_decref(svcs);
    json_decref(nodes);
    json_decref(stack);
    if (rc != 0)
        logs_free(x);
    else
        logs_answer(req, res, x);
}

/* The events of a stack: its own (deploys, removal) and its services'. */
void api_stack_event_logs(struct api_req *req, struct api_res *res)
{
    json_t *stack = stack_filter(req, res);
    if (stack == NULL)
        return;
    struct logs *x = logs_new(req, res, LOGS_EVENTS);
    if (x == NULL) {
        json_decref(stack);
        return;
    }
    json_t *svc_names = stack_service_names(req);
    json_t *node_names = query_list(req, "nodes");
    json_t *svcs = resolve_services(x, svc_names);
    json_t *nodes = resolve_names(x->nodes, node_names);
    json_t *none = json_array();
    int rc = set_filters(x, res, svcs, nodes, none, stack);
    json_decref(svc_names);
    json_decref(node_names);
    json_decref(svcs);
    json_decref(nodes);
    json_decref(none);
    json_decref(stack);
    if (rc != 0)
        logs_free(x);
    else
        logs_answer(req, res, x);
}
