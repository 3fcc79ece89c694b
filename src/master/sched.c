/* The scheduler's filters and driver (spec 5.2). For each instance number
 * the candidate nodes go through the filters in the spec's order; the
 * first filter that leaves no node fails that instance with a message
 * naming the filter and the rule (issues #1275, #2107). The strategy in
 * sched_strategy.c then picks one survivor. Pure: see sched.h.
 * SPDX-License-Identifier: Apache-2.0 */
#include "sched.h"
#include "../common/alloc.h"
#include "../common/err.h"

#include <assert.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NONE SIZE_MAX          /* no node */
#define UNKNOWN (SIZE_MAX - 1) /* a node id the input does not list */
#define MIB (1024ULL * 1024ULL)
#define ERR_MAX 512

/* ==== Affinity rules ==== */

enum rule_key {
    KEY_NODE,
    KEY_SERVICE,
    KEY_CONTAINER,
    KEY_LABEL,
};

static const struct {
    const char *name;
    enum rule_key key;
} rule_keys[] = {
    {"node", KEY_NODE},
    {"service", KEY_SERVICE},
    {"container", KEY_CONTAINER},
    {"label", KEY_LABEL},
};

/* A parsed rule. `value` points into `text`; a regex without %s is
 * compiled once (`re_ready`), one with %s per instance. */
struct rule {
    const char *text;
    enum rule_key key;
    bool is_neg;
    bool is_soft;
    bool is_regex;
    bool has_subst;
    const char *value;
    regex_t re;
    bool re_ready;
};

/* ==== One call's state ==== */

struct run {
    const struct sched_input *in;
    const struct sched_service *svc;
    const struct sched__strategy_ops *ops;
    char *svc_full; /* "stack/name" */
    struct rule *rules;
    size_t n_rules;
    uint64_t need_mem;
    size_t count;       /* instances to place */
    size_t *placed;     /* per node: instances placed this round */
    uint64_t *used_mem; /* per node: memory placed this round */
    size_t *zone;       /* per node: zone id, 0 = no az label */
    size_t *zone_placed;
    size_t *port_hits; /* per node: containers publishing a service port */
    size_t *bound;     /* per instance number: node from the instance list */
    size_t *running;   /* per instance number: node running its container */
    size_t *cand;
    size_t *scratch;
    uint64_t rng;
};

__attribute__((format(printf, 3, 4))) static void say(char *err, size_t cap,
                                                      const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}

static size_t max_count(size_t a, size_t b)
{
    return a > b ? a : b;
}

/* Copies tmpl to buf with every "%s" replaced by n. Returns false when the
 * result does not fit. */
static bool subst(const char *tmpl, int n, char *buf, size_t cap)
{
    char num[16];
    snprintf(num, sizeof(num), "%d", n);
    size_t used = 0;
    for (const char *p = tmpl; *p != '\0'; p++) {
        const char *piece = p;
        size_t len = 1;
        if (p[0] == '%' && p[1] == 's') {
            piece = num;
            len = strlen(num);
            p++;
        }
        if (used + len >= cap)
            return false;
        memcpy(buf + used, piece, len);
        used += len;
    }
    buf[used] = '\0';
    return true;
}

static bool is_ephemeral(const struct sched_node *nd)
{
    for (size_t i = 0; i < nd->n_labels; i++) {
        const char *l = nd->labels[i];
        if (strcmp(l, "ephemeral") == 0 || strncmp(l, "ephemeral=", 10) == 0)
            return true;
    }
    return false;
}

static bool is_usable(const struct run *r, const struct sched_node *nd)
{
    if (nd->connected)
        return true;
    return r->in->use_grace &&
           r->in->now - nd->disconnected_at < r->ops->grace_seconds;
}

/* True if node n runs (or is recorded as running) instance i. */
static bool runs_here(const struct run *r, size_t n, int i)
{
    return r->bound[i] == n || r->running[i] == n;
}

static bool is_self(const struct run *r, const struct sched_container *c, int i)
{
    return c->service != NULL && c->instance == i &&
           strcmp(c->service, r->svc_full) == 0;
}

static bool publishes_service_port(const struct run *r,
                                   const struct sched_container *c)
{
    for (size_t a = 0; a < c->n_ports; a++) {
        for (size_t b = 0; b < r->svc->n_ports; b++) {
            if (c->ports[a] == r->svc->ports[b])
                return true;
        }
    }
    return false;
}

/* ==== Filters ==== */

/* Each filter keeps the nodes of cand[0..n) that pass, in order, and
 * returns how many; when that is 0 it has written to err which rule
 * emptied the set. */
typedef size_t filter_fn(struct run *r, int i, size_t *cand, size_t n,
                         char *err, size_t cap);

static size_t filter_availability(struct run *r, int i, size_t *cand, size_t n,
                                  char *err, size_t cap)
{
    (void)i;
    size_t kept = 0, offline = 0, drained = 0;
    for (size_t k = 0; k < n; k++) {
        const struct sched_node *nd = &r->in->nodes[cand[k]];
        if (!is_usable(r, nd))
            offline++;
        else if (nd->availability == SCHED_DRAIN)
            drained++;
        else
            cand[kept++] = cand[k];
    }
    if (kept == 0 && n == 0)
        say(err, cap, "availability: the grid has no nodes");
    else if (kept == 0)
        say(err, cap,
            "availability: no node is connected and active "
            "(%zu nodes: %zu offline, %zu drained)",
            n, offline, drained);
    return kept;
}

static size_t filter_ephemeral(struct run *r, int i, size_t *cand, size_t n,
                               char *err, size_t cap)
{
    if (!r->svc->stateful)
        return n;
    size_t kept = 0;
    for (size_t k = 0; k < n; k++) {
        size_t node = cand[k];
        if (!is_ephemeral(&r->in->nodes[node]) || runs_here(r, node, i))
            cand[kept++] = node;
    }
    if (kept == 0)
        say(err, cap,
            "ephemeral: a stateful service cannot run on nodes labelled "
            "ephemeral (%zu nodes checked)",
            n);
    return kept;
}

static bool text_matches(const char *s, const char *value, const regex_t *re)
{
    if (re != NULL)
        return regexec(re, s, 0, NULL, 0) == 0;
    return strcmp(s, value) == 0;
}

static bool node_matches(const struct sched_node *nd, enum rule_key key,
                         const char *value, const regex_t *re)
{
    switch (key) {
    case KEY_NODE:
        return nd->name != NULL && text_matches(nd->name, value, re);
    case KEY_LABEL:
        for (size_t k = 0; k < nd->n_labels; k++) {
            if (text_matches(nd->labels[k], value, re))
                return true;
        }
        return false;
    case KEY_CONTAINER:
        for (size_t k = 0; k < nd->n_containers; k++) {
            const char *name = nd->containers[k].name;
            if (name != NULL && text_matches(name, value, re))
                return true;
        }
        return false;
    case KEY_SERVICE:
        for (size_t k = 0; k < nd->n_containers; k++) {
            const char *svc = nd->containers[k].service;
            if (svc != NULL && text_matches(svc, value, re))
                return true;
        }
        return false;
    }
    return false;
}

/* Fills buf with the rule's value for instance i: %s expanded, the regex
 * delimiters dropped, and a bare service name qualified with the
 * service's own stack. */
static bool rule_value(const struct run *r, const struct rule *rl, int i,
                       char *buf, size_t cap)
{
    char tmp[SCHED_RULE_MAX + 32];
    if (!subst(rl->value, i, tmp, sizeof(tmp)))
        return false;
    size_t len = strlen(tmp);
    if (rl->is_regex) {
        if (len - 2 >= cap)
            return false;
        memcpy(buf, tmp + 1, len - 2);
        buf[len - 2] = '\0';
        return true;
    }
    if (rl->key == KEY_SERVICE && strchr(tmp, '/') == NULL) {
        int w = snprintf(buf, cap, "%s/%s",
                         r->svc->stack ? r->svc->stack : "null", tmp);
        return w >= 0 && (size_t)w < cap;
    }
    if (len >= cap)
        return false;
    memcpy(buf, tmp, len + 1);
    return true;
}

static size_t filter_affinity(struct run *r, int i, size_t *cand, size_t n,
                              char *err, size_t cap)
{
    for (size_t q = 0; q < r->n_rules; q++) {
        const struct rule *rl = &r->rules[q];
        char value[SCHED_RULE_MAX + 64];
        if (!rule_value(r, rl, i, value, sizeof(value))) {
            say(err, cap, "affinity: rule %s is too long for instance %d",
                rl->text, i);
            return 0;
        }
        regex_t local;
        const regex_t *re = NULL;
        if (rl->re_ready) {
            re = &rl->re;
        } else if (rl->is_regex) {
            if (regcomp(&local, value, REG_EXTENDED | REG_NOSUB) != 0) {
                say(err, cap,
                    "affinity: invalid regex in rule %s for instance %d",
                    rl->text, i);
                return 0;
            }
            re = &local;
        }
        size_t kept = 0;
        for (size_t k = 0; k < n; k++) {
            const struct sched_node *nd = &r->in->nodes[cand[k]];
            if (node_matches(nd, rl->key, value, re) != rl->is_neg)
                r->scratch[kept++] = cand[k];
        }
        if (re == &local)
            regfree(&local);
        if (kept > 0) {
            memcpy(cand, r->scratch, kept * sizeof(*cand));
            n = kept;
        } else if (!rl->is_soft) {
            say(err, cap, "affinity: no node matches %s (%zu nodes checked)",
                rl->text, n);
            return 0;
        }
    }
    return n;
}

/* Formats a port list "80,443" into buf. */
static void port_list(const struct sched_service *svc, char *buf, size_t cap)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t k = 0; k < svc->n_ports && used < cap; k++) {
        int w = snprintf(buf + used, cap - used, "%s%d", k ? "," : "",
                         svc->ports[k]);
        if (w < 0)
            break;
        used += (size_t)w;
    }
}

/* A node fails when another container there already publishes one of the
 * service's node ports (its own previous container does not count), or
 * when another instance of this service was placed there this round. */
static size_t filter_port(struct run *r, int i, size_t *cand, size_t n,
                          char *err, size_t cap)
{
    if (r->svc->n_ports == 0)
        return n;
    size_t kept = 0;
    for (size_t k = 0; k < n; k++) {
        size_t node = cand[k];
        bool is_busy = r->placed[node] > 0;
        if (!is_busy && r->port_hits[node] > 0) {
            const struct sched_node *nd = &r->in->nodes[node];
            for (size_t c = 0; c < nd->n_containers && !is_busy; c++) {
                const struct sched_container *ct = &nd->containers[c];
                is_busy = !is_self(r, ct, i) && publishes_service_port(r, ct);
            }
        }
        if (!is_busy)
            cand[kept++] = node;
    }
    if (kept == 0) {
        char ports[128];
        port_list(r->svc, ports, sizeof(ports));
        say(err, cap,
            "port: node port %s already published on every node "
            "(%zu nodes checked)",
            ports, n);
    }
    return kept;
}

static size_t filter_cpu(struct run *r, int i, size_t *cand, size_t n,
                         char *err, size_t cap)
{
    (void)i;
    double need = r->svc->cpus;
    if (need <= 0)
        return n;
    size_t kept = 0, best = NONE;
    for (size_t k = 0; k < n; k++) {
        const struct sched_node *nd = &r->in->nodes[cand[k]];
        if (best == NONE || nd->cpus > r->in->nodes[best].cpus)
            best = cand[k];
        if (nd->cpus >= need)
            cand[kept++] = cand[k];
    }
    if (kept == 0 && best == NONE)
        say(err, cap, "cpu: service needs %g cpus (0 nodes checked)", need);
    else if (kept == 0)
        say(err, cap,
            "cpu: service needs %g cpus, largest is %g on %s "
            "(%zu nodes checked)",
            need, r->in->nodes[best].cpus, r->in->nodes[best].name, n);
    return kept;
}

/* Memory a node can still give: free from the latest stats (or the total
 * when there are no stats), less what this round already placed there. */
static uint64_t mem_avail(const struct run *r, size_t n)
{
    const struct sched_node *nd = &r->in->nodes[n];
    uint64_t avail = nd->mem_total;
    if (nd->mem_free != 0 && nd->mem_free < avail)
        avail = nd->mem_free;
    return avail > r->used_mem[n] ? avail - r->used_mem[n] : 0;
}

static void fmt_bytes(uint64_t v, char *buf, size_t cap)
{
    if (v >= MIB)
        snprintf(buf, cap, "%llu MiB", (unsigned long long)(v / MIB));
    else
        snprintf(buf, cap, "%llu bytes", (unsigned long long)v);
}

static size_t filter_memory(struct run *r, int i, size_t *cand, size_t n,
                            char *err, size_t cap)
{
    uint64_t need = r->need_mem;
    if (need == 0)
        return n;
    size_t kept = 0, best = NONE;
    uint64_t best_avail = 0;
    for (size_t k = 0; k < n; k++) {
        size_t node = cand[k];
        if (runs_here(r, node, i)) {
            cand[kept++] = node;
            continue;
        }
        uint64_t avail = mem_avail(r, node);
        if (best == NONE || avail > best_avail) {
            best = node;
            best_avail = avail;
        }
        if (avail >= need)
            cand[kept++] = node;
    }
    if (kept == 0) {
        char want[32], have[32];
        fmt_bytes(need, want, sizeof(want));
        fmt_bytes(best_avail, have, sizeof(have));
        if (best == NONE)
            say(err, cap, "memory: service needs %s (0 nodes checked)", want);
        else
            say(err, cap,
                "memory: service needs %s, largest free is %s on %s "
                "(%zu nodes checked)",
                want, have, r->in->nodes[best].name, n);
    }
    return kept;
}

/* True if the node runs a container called name, bare or as
 * "<stack>.<name>" (how stack services name their containers). */
static bool runs_container(const struct run *r, const struct sched_node *nd,
                           const char *name)
{
    const char *stack = r->svc->stack;
    bool has_stack = stack != NULL && strcmp(stack, "null") != 0;
    size_t slen = has_stack ? strlen(stack) : 0;
    for (size_t k = 0; k < nd->n_containers; k++) {
        const char *c = nd->containers[k].name;
        if (c == NULL)
            continue;
        if (strcmp(c, name) == 0)
            return true;
        if (has_stack && strncmp(c, stack, slen) == 0 && c[slen] == '.' &&
            strcmp(c + slen + 1, name) == 0)
            return true;
    }
    return false;
}

/* Keeps the nodes that run the container dep (a template, expanded for
 * instance i). */
static size_t keep_with(struct run *r, int i, const char *dep, const char *why,
                        size_t *cand, size_t n, char *err, size_t cap)
{
    char name[SCHED_RULE_MAX + 32];
    if (!subst(dep, i, name, sizeof(name))) {
        say(err, cap, "dependency: %s %s is too long", why, dep);
        return 0;
    }
    size_t kept = 0;
    for (size_t k = 0; k < n; k++) {
        if (runs_container(r, &r->in->nodes[cand[k]], name))
            cand[kept++] = cand[k];
    }
    if (kept == 0)
        say(err, cap,
            "dependency: no node runs container %s (%s %s, "
            "%zu nodes checked)",
            name, why, dep, n);
    return kept;
}

static size_t filter_dependency(struct run *r, int i, size_t *cand, size_t n,
                                char *err, size_t cap)
{
    const struct sched_service *svc = r->svc;
    for (size_t v = 0; v < svc->n_volumes_from && n > 0; v++)
        n = keep_with(r, i, svc->volumes_from[v], "volumes_from", cand, n, err,
                      cap);
    const char *net = svc->net;
    if (n > 0 && net != NULL && strncmp(net, "container:", 10) == 0 &&
        net[10] != '\0')
        n = keep_with(r, i, net + 10, "net container:", cand, n, err, cap);
    return n;
}

/* The spec's order. `is_node_wide` filters decide a node's eligibility
 * regardless of the round (what daemon multiplies its count by). */
static const struct {
    const char *name;
    bool is_node_wide;
    filter_fn *fn;
} filters[] = {
    {"availability", true, filter_availability},
    {"ephemeral", true, filter_ephemeral},
    {"affinity", true, filter_affinity},
    {"port", false, filter_port},
    {"cpu", true, filter_cpu},
    {"memory", false, filter_memory},
    {"dependency", false, filter_dependency},
};

/* Runs the filters (all of them, or only the node-wide ones) over
 * cand[0..n); returns the survivors' count, 0 with err set on failure. */
static size_t run_filters(struct run *r, int i, bool only_node_wide,
                          size_t *cand, size_t n, char *err, size_t cap)
{
    for (size_t f = 0; f < CP_ARRAY_LEN(filters); f++) {
        if (only_node_wide && !filters[f].is_node_wide)
            continue;
        n = filters[f].fn(r, i, cand, n, err, cap);
        if (n == 0)
            return 0;
    }
    return n;
}

/* ==== Setup ==== */

static int rule_parse(const char *text, struct rule *rl, char *err, size_t cap)
{
    memset(rl, 0, sizeof(*rl));
    rl->text = text;
    if (text == NULL) {
        say(err, cap, "affinity: empty rule");
        return CP_EINVAL;
    }
    if (strlen(text) > SCHED_RULE_MAX) {
        say(err, cap, "affinity: rule %.40s... is longer than %d bytes", text,
            SCHED_RULE_MAX);
        return CP_EINVAL;
    }
    const char *op = NULL;
    for (size_t k = 0; k < CP_ARRAY_LEN(rule_keys); k++) {
        size_t len = strlen(rule_keys[k].name);
        if (strncmp(text, rule_keys[k].name, len) == 0 &&
            (strncmp(text + len, "==", 2) == 0 ||
             strncmp(text + len, "!=", 2) == 0)) {
            rl->key = rule_keys[k].key;
            op = text + len;
            break;
        }
    }
    if (op == NULL) {
        say(err, cap,
            "affinity: invalid rule %s: want <key>==<value> or "
            "<key>!=<value> with key node, service, container or label",
            text);
        return CP_EINVAL;
    }
    rl->is_neg = op[0] == '!';
    const char *value = op + 2;
    if (value[0] == '~') {
        rl->is_soft = true;
        value++;
    }
    size_t len = strlen(value);
    if (len == 0) {
        say(err, cap, "affinity: invalid rule %s: empty value", text);
        return CP_EINVAL;
    }
    rl->value = value;
    rl->has_subst = strstr(value, "%s") != NULL;
    if (len >= 2 && value[0] == '/' && value[len - 1] == '/') {
        rl->is_regex = true;
        if (len == 2 || len - 2 > SCHED_REGEX_MAX) {
            say(err, cap,
                "affinity: invalid rule %s: regex must be 1 to %d bytes", text,
                SCHED_REGEX_MAX);
            return CP_EINVAL;
        }
    }
    return 0;
}

/* Parses the rules that apply (the service's, else the grid default) and
 * compiles the regexes. A regex with %s is checked for instance 1. */
static int rules_init(struct run *r, char *err, size_t cap)
{
    const struct sched_service *svc = r->svc;
    const char *const *list = svc->affinity;
    size_t n = svc->n_affinity;
    if (n == 0) {
        list = svc->default_affinity;
        n = svc->n_default_affinity;
    }
    r->rules = cp_calloc(max_count(n, 1), sizeof(*r->rules));
    for (size_t q = 0; q < n; q++) {
        struct rule *rl = &r->rules[q];
        int rc = rule_parse(list[q], rl, err, cap);
        if (rc != 0)
            return rc;
        r->n_rules = q + 1;
        if (!rl->is_regex)
            continue;
        char value[SCHED_RULE_MAX + 64];
        regex_t probe;
        regex_t *re = rl->has_subst ? &probe : &rl->re;
        if (!rule_value(r, rl, 1, value, sizeof(value)) ||
            regcomp(re, value, REG_EXTENDED | REG_NOSUB) != 0) {
            say(err, cap, "affinity: invalid regex in rule %s", rl->text);
            return CP_EINVAL;
        }
        if (rl->has_subst)
            regfree(&probe);
        else
            rl->re_ready = true;
    }
    return 0;
}

struct id_ix {
    const char *id;
    size_t ix;
};

static int id_cmp(const void *a, const void *b)
{
    const struct id_ix *x = a, *y = b;
    return strcmp(x->id, y->id);
}

static const char *az_of(const struct sched_node *nd)
{
    for (size_t k = 0; k < nd->n_labels; k++) {
        if (strncmp(nd->labels[k], "az=", 3) == 0)
            return nd->labels[k] + 3;
    }
    return NULL;
}

/* Gives each node a zone id: 0 for no az label, 1.. per distinct az. */
static void zones_init(struct run *r)
{
    size_t nn = r->in->n_nodes;
    struct id_ix *az = cp_calloc(max_count(nn, 1), sizeof(*az));
    size_t n_az = 0;
    for (size_t k = 0; k < nn; k++) {
        const char *z = az_of(&r->in->nodes[k]);
        if (z != NULL)
            az[n_az++] = (struct id_ix){z, k};
    }
    qsort(az, n_az, sizeof(*az), id_cmp);
    size_t id = 0;
    for (size_t k = 0; k < n_az; k++) {
        if (k == 0 || strcmp(az[k].id, az[k - 1].id) != 0)
            id++;
        r->zone[az[k].ix] = id;
    }
    r->zone_placed = cp_calloc(id + 1, sizeof(*r->zone_placed));
    cp_free(az);
}

/* Fills bound[] from the instance list and running[] from the containers
 * on the nodes, for instance numbers 1..count. */
static void history_init(struct run *r)
{
    const struct sched_input *in = r->in;
    for (size_t i = 0; i <= r->count; i++)
        r->bound[i] = r->running[i] = NONE;

    struct id_ix *ids = cp_calloc(max_count(in->n_nodes, 1), sizeof(*ids));
    size_t n_ids = 0;
    for (size_t k = 0; k < in->n_nodes; k++) {
        if (in->nodes[k].id != NULL)
            ids[n_ids++] = (struct id_ix){in->nodes[k].id, k};
    }
    qsort(ids, n_ids, sizeof(*ids), id_cmp);
    for (size_t k = 0; k < in->n_instances; k++) {
        const struct sched_instance *si = &in->instances[k];
        if (si->instance_number < 1 || (size_t)si->instance_number > r->count ||
            si->node_id == NULL)
            continue;
        struct id_ix key = {si->node_id, 0};
        const struct id_ix *hit =
            bsearch(&key, ids, n_ids, sizeof(*ids), id_cmp);
        r->bound[si->instance_number] = hit ? hit->ix : UNKNOWN;
    }
    cp_free(ids);

    for (size_t n = 0; n < in->n_nodes; n++) {
        const struct sched_node *nd = &in->nodes[n];
        for (size_t c = 0; c < nd->n_containers; c++) {
            const struct sched_container *ct = &nd->containers[c];
            if (ct->service != NULL && ct->instance >= 1 &&
                (size_t)ct->instance <= r->count &&
                strcmp(ct->service, r->svc_full) == 0 &&
                r->running[ct->instance] == NONE)
                r->running[ct->instance] = n;
            if (publishes_service_port(r, ct))
                r->port_hits[n]++;
        }
    }
}

static void run_release(struct run *r)
{
    for (size_t q = 0; q < r->n_rules; q++) {
        if (r->rules[q].re_ready)
            regfree(&r->rules[q].re);
    }
    cp_free(r->rules);
    cp_free(r->svc_full);
    cp_free(r->placed);
    cp_free(r->used_mem);
    cp_free(r->zone);
    cp_free(r->zone_placed);
    cp_free(r->port_hits);
    cp_free(r->bound);
    cp_free(r->running);
    cp_free(r->cand);
    cp_free(r->scratch);
}

/* ==== Placement ==== */

static size_t all_nodes(struct run *r)
{
    for (size_t k = 0; k < r->in->n_nodes; k++)
        r->cand[k] = k;
    return r->in->n_nodes;
}

/* The node a stateful instance is bound to, or NONE if it is free to go
 * anywhere: the instance record first, else where its container runs. */
static size_t stateful_bound(const struct run *r, int i)
{
    if (!r->svc->stateful)
        return NONE;
    return r->bound[i] != NONE ? r->bound[i] : r->running[i];
}

static const char *bound_id(const struct run *r, int i)
{
    for (size_t k = 0; k < r->in->n_instances; k++) {
        if (r->in->instances[k].instance_number == i)
            return r->in->instances[k].node_id;
    }
    return "?";
}

/* Places instance i; returns the node index, or NONE with err set. */
static size_t place_one(struct run *r, int i, char *err, size_t cap)
{
    char why[ERR_MAX];
    size_t bound = stateful_bound(r, i);
    size_t n;
    if (bound == UNKNOWN) {
        say(err, cap,
            "stateful instance %d is bound to node %s which is no longer "
            "in the grid",
            i, bound_id(r, i));
        return NONE;
    }
    if (bound != NONE) {
        const struct sched_node *nd = &r->in->nodes[bound];
        const char *name = nd->name ? nd->name : nd->id;
        if (!is_usable(r, nd)) {
            say(err, cap,
                "stateful instance %d is bound to node %s which is offline", i,
                name);
            return NONE;
        }
        if (nd->availability == SCHED_DRAIN) {
            say(err, cap,
                "stateful instance %d is bound to node %s which is drained", i,
                name);
            return NONE;
        }
        r->cand[0] = bound;
        if (run_filters(r, i, false, r->cand, 1, why, sizeof(why)) == 0) {
            say(err, cap,
                "stateful instance %d is bound to node %s which is "
                "rejected by %s",
                i, name, why);
            return NONE;
        }
        return bound;
    }
    n = run_filters(r, i, false, r->cand, all_nodes(r), err, cap);
    if (n == 0)
        return NONE;
    struct sched__pick p = {
        .nodes = r->in->nodes,
        .cand = r->cand,
        .n_cand = n,
        .placed = r->placed,
        .zone = r->zone,
        .zone_placed = r->zone_placed,
        .prev = r->bound[i] != NONE && r->bound[i] != UNKNOWN ? r->bound[i]
                                                              : r->running[i],
        .quota = (size_t)r->svc->instances,
        .rng = &r->rng,
    };
    size_t k = r->ops->pick(&p);
    assert(k < n);
    return r->cand[k];
}

/* Charges the round for instance i placed on node n. */
static void account(struct run *r, int i, size_t n)
{
    r->placed[n]++;
    r->zone_placed[r->zone[n]]++;
    if (!runs_here(r, n, i))
        r->used_mem[n] += r->need_mem;
}

static int refuse(struct sched_result *out, int status, const char *msg)
{
    out->status = status;
    out->error = cp_strdup(msg);
    return status;
}

int sched_place(const struct sched_input *in, struct sched_result *out)
{
    assert(in != NULL && in->service != NULL && out != NULL);
    memset(out, 0, sizeof(*out));
    const struct sched_service *svc = in->service;
    char err[ERR_MAX] = "";
    struct run r = {.in = in, .svc = svc, .rng = in->seed};
    int rc = 0;

    r.ops = sched__strategy_find(svc->strategy);
    if (r.ops == NULL) {
        say(err, sizeof(err), "unknown strategy %s", svc->strategy);
        rc = refuse(out, CP_EINVAL, err);
        goto out;
    }
    if (svc->instances < 0) {
        rc = refuse(out, CP_EINVAL, "instances must not be negative");
        goto out;
    }
    r.svc_full = cp_asprintf("%s/%s", svc->stack ? svc->stack : "null",
                             svc->name ? svc->name : "");
    r.need_mem = svc->memory ? svc->memory : svc->memory_swap;
    rc = rules_init(&r, err, sizeof(err));
    if (rc != 0) {
        refuse(out, rc, err);
        goto out;
    }

    size_t nn = max_count(in->n_nodes, 1);
    r.placed = cp_calloc(nn, sizeof(*r.placed));
    r.used_mem = cp_calloc(nn, sizeof(*r.used_mem));
    r.zone = cp_calloc(nn, sizeof(*r.zone));
    r.port_hits = cp_calloc(nn, sizeof(*r.port_hits));
    r.cand = cp_calloc(nn, sizeof(*r.cand));
    r.scratch = cp_calloc(nn, sizeof(*r.scratch));
    zones_init(&r);

    /* Eligible nodes: those the node-wide filters accept for instance 1.
     * History is not known yet, so a stateful node's "already there"
     * exemption from Ephemeral does not count here. */
    r.count = 0;
    r.bound = cp_calloc(2, sizeof(*r.bound));
    r.running = cp_calloc(2, sizeof(*r.running));
    r.bound[1] = r.running[1] = NONE;
    out->eligible_nodes =
        run_filters(&r, 1, true, r.cand, all_nodes(&r), err, sizeof(err));
    cp_free(r.bound);
    cp_free(r.running);
    r.bound = r.running = NULL;

    size_t count = r.ops->count((size_t)svc->instances, out->eligible_nodes);
    if (count > SCHED_MAX_PLACEMENTS) {
        say(err, sizeof(err), "too many instances to place: %zu (max %d)",
            count, SCHED_MAX_PLACEMENTS);
        rc = refuse(out, CP_EINVAL, err);
        goto out;
    }
    if (count == 0 && svc->instances > 0) {
        /* A daemon with no eligible node would silently run nothing. */
        char msg[ERR_MAX + 32];
        say(msg, sizeof(msg), "no eligible node: %s", err);
        rc = refuse(out, CP_ENOTFOUND, msg);
        goto out;
    }
    r.count = count;
    r.bound = cp_calloc(count + 1, sizeof(*r.bound));
    r.running = cp_calloc(count + 1, sizeof(*r.running));
    history_init(&r);

    out->placements = cp_calloc(max_count(count, 1), sizeof(*out->placements));
    out->n_placements = count;
    for (size_t k = 0; k < count; k++) {
        int i = (int)k + 1;
        struct sched_placement *pl = &out->placements[k];
        pl->instance_number = i;
        size_t n = place_one(&r, i, err, sizeof(err));
        if (n == NONE) {
            pl->node = NONE;
            pl->error = cp_strdup(err);
            if (out->n_failed++ == 0)
                out->error = cp_asprintf("instance %d: %s", i, err);
            continue;
        }
        pl->node = n;
        pl->node_id = in->nodes[n].id;
        out->n_placed++;
        account(&r, i, n);
    }
    rc = out->n_failed ? CP_ENOTFOUND : 0;
    out->status = rc;
out:
    run_release(&r);
    return rc;
}

void sched_result_release(struct sched_result *r)
{
    if (r == NULL)
        return;
    for (size_t k = 0; k < r->n_placements; k++)
        cp_free(r->placements[k].error);
    cp_free(r->placements);
    cp_free(r->error);
    memset(r, 0, sizeof(*r));
}
