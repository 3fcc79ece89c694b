/* The pod worker: desired-state pull on the loop thread, convergence,
 * probes, events and logs on threads of their own (see podworker.h for
 * the design). Lock order: pw->mu is the only lock; nothing calls the
 * engine, the wake function or agent_* while holding it.
 * SPDX-License-Identifier: Apache-2.0 */
#include "podworker.h"
#include "engine.h"
#include "hooks.h"
#include "logship.h"
#include "pods.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../common/proto.h"
#include "../common/util.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define OUTBOX_MAX 10000     /* queued messages; more are dropped */
#define EVENTS_RETRY_MS 2000 /* after the events stream broke */
#define WORKER_IDLE_MS 1000  /* the worker looks around this often */
#define PORT_PROBE_EVERY_MS 1000
#define PORT_CONNECT_MS 1000
#define PULL_RETRY_MS 30000 /* a failed pull is not retried sooner */
#define EVENTS_FILTER "%7B%22type%22%3A%5B%22container%22%5D%7D"

/* ==== Shared state ==== */

/* One desired list; replaced wholesale, shared by reference count. */
struct podlist {
    int refs;
    struct pod *v;
    size_t n;
};

enum node_param {
    NODE_NONE,
    NODE_FIRST,     /* params = [node_id, ...] */
    NODE_IN_OBJECT, /* params[0].node = node_id */
};

struct outmsg {
    struct outmsg *next;
    const char *method;
    json_t *params;
    bool is_request;
    enum node_param node;
};

/* A wait_for_port probe or a health check of one container. */
struct probe {
    struct probe *next;
    uint64_t seq;
    bool is_port; /* else a health check */
    char *cid;
    char *name;
    char *host;
    int port;
    char *http_uri; /* health over http; NULL: tcp connect */
    int timeout_s, interval_s;
    int64_t next_ms, deadline_ms; /* monotonic */
    int result;                   /* port: 0 waiting, 1 open, -1 failed */
    char *error;
    bool is_busy, is_dropped;
};

struct logstream {
    struct logstream *next;
    struct podworker *pw;
    char *cid;
    char *name;
    int64_t since_s;
    pthread_t th;
    volatile int cancel;
    int is_done; /* atomic */
    struct logship_frames frames;
};

/* What the worker last reported for one instance. */
struct memo {
    char *key; /* "service_id/instance_number" */
    char *rev, *state, *error;
    char *max_rev; /* the newest rev ever reported; kept across resends */
};

struct pull_failure {
    char *image;
    char *error;
    int64_t retry_ms; /* monotonic */
};

/* A restart request: of container cid (a failed health check), or,
 * when cid is NULL, of the instance service_id/instance_number (the
 * master's /service_pods/restart), resolved against the pod list. */
struct restart {
    char *cid;
    char *name;
    char *service_id;
    int instance_number;
};

/* Hook bookkeeping of one container, by name (worker thread only):
 * whether its first start still needs the pre_start/post_start hooks,
 * and the last hook failure with the deploy_rev it happened under. A
 * pre_start failure blocks the start until a new deploy_rev; a
 * post_start failure only sticks to the reports (the container keeps
 * running). */
struct hookmark {
    char *name;
    bool is_pending;  /* created by us, first start not done yet */
    bool is_pre_done; /* pre_start hooks passed for this container */
    char *fail_rev;   /* NULL: no failure recorded */
    char *fail_error;
    bool is_fail_blocking; /* pre_start: do not start */
};

struct podworker {
    /* Set at creation, read-only afterwards. */
    char *socket_path;
    int pull_interval_ms, stats_interval_ms;
    int hook_timeout_s;
    podworker_wake_fn *wake;
    void *wake_ctx;
    struct agent *agent;

    pthread_mutex_t mu;
    pthread_cond_t cv;  /* the worker's */
    pthread_cond_t pcv; /* the prober's */
    /* Under mu. */
    struct podlist *desired;
    bool is_kicked, is_stopping, wants_sync, wants_resend;
    struct restart *restarts;
    size_t nrestarts;
    struct outmsg *out_head, *out_tail;
    size_t nout;
    struct probe *probes;
    uint64_t next_seq;
    struct logstream *logs;
    struct logship_queue logq;
    bool is_log_batch_ready;
    volatile int stop_flag; /* streams poll it */

    bool is_started;
    pthread_t worker_th, prober_th, events_th;

    /* Loop thread only. */
    bool is_open, is_pulling, wants_pull_again;
    int64_t next_pull_ms, next_flush_ms;

    /* Worker thread only. */
    struct engine *we;
    struct pods_state state;
    struct memo *memo;
    size_t nmemo;
    char **pulled; /* "image\ndeploy_rev" found or pulled */
    size_t npulled;
    struct pull_failure *failures; /* recent failed pulls, by image */
    size_t nfailures;
    int64_t wake_at_ms; /* monotonic; 0: none */
    int64_t next_stats_ms;
    struct hookmark *hookmarks;
    size_t nhookmarks;
};

static void wake_loop(struct podworker *pw)
{
    if (pw->wake != NULL)
        pw->wake(pw->wake_ctx);
}

/* Under mu. */
static void kick_locked(struct podworker *pw)
{
    pw->is_kicked = true;
    pthread_cond_signal(&pw->cv);
}

static void kick(struct podworker *pw)
{
    pthread_mutex_lock(&pw->mu);
    kick_locked(pw);
    pthread_mutex_unlock(&pw->mu);
}

/* Queues a message for the loop thread; takes ownership of params. */
static void post(struct podworker *pw, const char *method, json_t *params,
                 bool is_request, enum node_param node)
{
    struct outmsg *m = cp_calloc(1, sizeof(*m));
    m->method = method;
    m->params = params;
    m->is_request = is_request;
    m->node = node;
    bool is_full;
    pthread_mutex_lock(&pw->mu);
    is_full = pw->nout >= OUTBOX_MAX;
    if (!is_full) {
        if (pw->out_tail != NULL)
            pw->out_tail->next = m;
        else
            pw->out_head = m;
        pw->out_tail = m;
        pw->nout++;
    }
    pthread_mutex_unlock(&pw->mu);
    if (is_full) {
        cp_warn("pods: outbox full (%d messages); dropping %s", OUTBOX_MAX,
                method);
        json_decref(params);
        cp_free(m);
        return;
    }
    wake_loop(pw);
}

static void list_unref(struct podlist *l)
{
    if (l == NULL || __atomic_sub_fetch(&l->refs, 1, __ATOMIC_ACQ_REL) > 0)
        return;
    pods_free_list(l->v, l->n);
    cp_free(l);
}

static void cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(cv, mu, &ts);
}

/* ==== Pure helpers ==== */

int podworker_event_parse(const json_t *ev, struct podworker_event *out)
{
    memset(out, 0, sizeof(*out));
    const char *type = cp_json_str(ev, "Type");
    if (type != NULL && strcmp(type, "container") != 0)
        return CP_EINVAL;
    const json_t *actor = json_object_get(ev, "Actor");
    const json_t *attrs = json_object_get(actor, "Attributes");
    out->id = cp_json_str(actor, "ID");
    if (out->id == NULL)
        out->id = cp_json_str(ev, "id");
    out->action = cp_json_str(ev, "Action");
    if (out->action == NULL)
        out->action = cp_json_str(ev, "status");
    if (out->id == NULL || out->action == NULL)
        return CP_EINVAL;
    out->from = cp_json_str(ev, "from");
    if (out->from == NULL)
        out->from = cp_json_str(attrs, "image");
    out->name = cp_json_str(attrs, "name");
    out->service_id = cp_json_str(attrs, PODW_SERVICE_LABEL);
    out->time_s = cp_json_int(ev, "time", 0);
    return 0;
}

int podworker_ndjson_feed(struct cp_buf *pending, const char *data, size_t len,
                          podworker_json_fn *fn, void *ctx)
{
    int bad = 0;
    while (len > 0) {
        const char *nl = memchr(data, '\n', len);
        size_t take = nl != NULL ? (size_t)(nl - data) : len;
        if (cp_buf_append(pending, data, take) != 0)
            return CP_EPROTO;
        data += take;
        len -= take;
        if (nl == NULL)
            break;
        data++;
        len--;
        size_t n = pending->len;
        while (n > 0 &&
               (pending->data[n - 1] == '\r' || pending->data[n - 1] == ' '))
            n--;
        if (n > 0) {
            json_t *j = cp_json_parse(pending->data, n, NULL, 0);
            if (j != NULL)
                fn(ctx, j);
            else
                bad++;
            json_decref(j);
        }
        pending->len = 0;
        if (pending->data != NULL)
            pending->data[0] = '\0';
    }
    return bad;
}

const char *podworker_container_ip(const json_t *inspect)
{
    const json_t *ns = json_object_get(inspect, "NetworkSettings");
    const char *ip = cp_json_str(ns, "IPAddress");
    if (ip != NULL && ip[0] != '\0')
        return ip;
    const char *key;
    json_t *net;
    json_object_foreach((json_t *)(uintptr_t)json_object_get(ns, "Networks"),
                        key, net)
    {
        ip = cp_json_str(net, "IPAddress");
        if (ip != NULL && ip[0] != '\0')
            return ip;
    }
    return NULL;
}

/* ==== Log streams (one thread each) ==== */

static void on_log_line(void *ctx, enum logship_stream stream, const char *line,
                        size_t len)
{
    struct logstream *ls = ctx;
    struct podworker *pw = ls->pw;
    int64_t t = 0;
    size_t off = 0;
    if (!logship_split_time(line, len, &t, &off))
        t = cp_now_ms();
    bool is_full = false;
    pthread_mutex_lock(&pw->mu);
    logship_queue_push(&pw->logq, ls->cid, ls->name, t, stream, line + off,
                       len - off);
    if (pw->logq.n >= LOGSHIP_BATCH_LINES && !pw->is_log_batch_ready) {
        pw->is_log_batch_ready = true;
        is_full = true;
    }
    pthread_mutex_unlock(&pw->mu);
    if (is_full)
        wake_loop(pw);
}

static int on_log_chunk(void *ctx, const char *data, size_t len)
{
    struct logstream *ls = ctx;
    if (logship_frames_feed(&ls->frames, data, len, on_log_line, ls) != 0) {
        cp_warn("pods: logs of %s are not multiplexed (tty?); not followed",
                ls->name);
        return 1;
    }
    return 0;
}

static void *log_main(void *arg)
{
    struct logstream *ls = arg;
    struct engine *e = engine_new(ls->pw->socket_path);
    char *path = cp_asprintf("/containers/%s/logs?stdout=1&stderr=1&follow=1&"
                             "timestamps=1&since=%lld",
                             ls->cid, (long long)ls->since_s);
    char err[512];
    logship_frames_init(&ls->frames);
    int rc =
        engine_stream(e, path, on_log_chunk, ls, &ls->cancel, err, sizeof(err));
    logship_frames_flush(&ls->frames, on_log_line, ls);
    if (rc != 0 && !ls->cancel)
        cp_debug("pods: log stream of %s ended: %s", ls->name, err);
    logship_frames_release(&ls->frames);
    cp_free(path);
    engine_free(e);
    __atomic_store_n(&ls->is_done, 1, __ATOMIC_RELEASE);
    return NULL;
}

static void logstream_free(struct logstream *ls)
{
    pthread_join(ls->th, NULL);
    cp_free(ls->cid);
    cp_free(ls->name);
    cp_free(ls);
}

/* Joins and frees the streams that ended (any thread but a log thread). */
static void logs_reap(struct podworker *pw)
{
    struct logstream *done = NULL;
    pthread_mutex_lock(&pw->mu);
    for (struct logstream **p = &pw->logs; *p != NULL;) {
        struct logstream *ls = *p;
        if (__atomic_load_n(&ls->is_done, __ATOMIC_ACQUIRE)) {
            *p = ls->next;
            ls->next = done;
            done = ls;
        } else {
            p = &ls->next;
        }
    }
    pthread_mutex_unlock(&pw->mu);
    while (done != NULL) {
        struct logstream *next = done->next;
        logstream_free(done);
        done = next;
    }
}

/* Follows the logs of container cid from since_s unless a stream for it
 * is already running. */
static void logs_ensure(struct podworker *pw, const char *cid, const char *name,
                        int64_t since_s)
{
    logs_reap(pw);
    pthread_mutex_lock(&pw->mu);
    bool is_followed = pw->is_stopping;
    for (struct logstream *ls = pw->logs; ls != NULL && !is_followed;
         ls = ls->next)
        is_followed = strcmp(ls->cid, cid) == 0 && !ls->cancel;
    if (!is_followed) {
        struct logstream *ls = cp_calloc(1, sizeof(*ls));
        ls->pw = pw;
        ls->cid = cp_strdup(cid);
        ls->name = cp_strdup(name != NULL ? name : cid);
        ls->since_s = since_s;
        if (pthread_create(&ls->th, NULL, log_main, ls) != 0) {
            cp_warn("pods: cannot start a log thread for %s", ls->name);
            cp_free(ls->cid);
            cp_free(ls->name);
            cp_free(ls);
        } else {
            ls->next = pw->logs;
            pw->logs = ls;
        }
    }
    pthread_mutex_unlock(&pw->mu);
}

static void logs_cancel(struct podworker *pw, const char *cid)
{
    pthread_mutex_lock(&pw->mu);
    for (struct logstream *ls = pw->logs; ls != NULL; ls = ls->next) {
        if (cid == NULL || strcmp(ls->cid, cid) == 0)
            ls->cancel = 1;
    }
    pthread_mutex_unlock(&pw->mu);
}

/* ==== Container reports ==== */

static const char *name_of(const json_t *inspect)
{
    const char *n = cp_json_str(inspect, "Name");
    return n != NULL && n[0] == '/' ? n + 1 : n;
}

/* Inspects cid and queues /containers/save; returns the inspect JSON
 * (new reference) or NULL when the container is gone. */
static json_t *save_container(struct podworker *pw, struct engine *e,
                              const char *cid)
{
    json_t *ins = NULL;
    char err[512];
    int rc = engine_container_inspect(e, cid, &ins, err, sizeof(err));
    if (rc != 0) {
        if (rc != CP_ENOTFOUND)
            cp_warn("pods: %s", err);
        return NULL;
    }
    post(pw, PROTO_M_CONTAINERS_SAVE, json_pack("[{s:O}]", "container", ins),
         true, NODE_IN_OBJECT);
    return ins;
}

/* On connect: every container of ours to /containers/save, then
 * /containers/cleanup with the ids to keep; follows their logs. */
static void sync_containers(struct podworker *pw)
{
    json_t *rows = NULL;
    char err[512];
    if (engine_containers_list(pw->we, PODW_SERVICE_LABEL, &rows, err,
                               sizeof(err)) != 0) {
        cp_warn("pods: container sync skipped: %s", err);
        return;
    }
    json_t *ids = json_array();
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        const char *id = cp_json_str(row, "Id");
        if (id == NULL)
            continue;
        json_t *ins = save_container(pw, pw->we, id);
        if (ins == NULL)
            continue;
        json_array_append_new(ids, json_string(id));
        if (cp_json_bool(json_object_get(ins, "State"), "Running", false))
            logs_ensure(pw, id, name_of(ins), cp_now_ms() / 1000);
        json_decref(ins);
    }
    cp_info("pods: reported %zu containers to the master",
            json_array_size(ids));
    post(pw, PROTO_M_CONTAINERS_CLEANUP, json_pack("[o]", ids), true,
         NODE_FIRST);
    json_decref(rows);
}

/* ==== Events thread ==== */

struct events_ctx {
    struct podworker *pw;
    struct engine *ie; /* for inspects; the stream owns the other one */
    struct cp_buf pending;
    int64_t last_time_s;
};

static void on_event(void *ctx, const json_t *obj)
{
    struct events_ctx *c = ctx;
    struct podworker *pw = c->pw;
    struct podworker_event ev;
    if (podworker_event_parse(obj, &ev) != 0)
        return;
    if (ev.time_s > c->last_time_s)
        c->last_time_s = ev.time_s;
    if (ev.service_id == NULL)
        return;
    bool is_start = strcmp(ev.action, "start") == 0;
    bool is_die = strcmp(ev.action, "die") == 0;
    bool is_gone =
        strcmp(ev.action, "remove") == 0 || strcmp(ev.action, "destroy") == 0;
    if (!is_start && !is_die && !is_gone)
        return;
    cp_debug("pods: event %s %s", ev.action, ev.name ? ev.name : ev.id);
    if (is_gone) {
        logs_cancel(pw, ev.id);
        post(pw, PROTO_M_CONTAINERS_EVENT,
             json_pack("[{s:s, s:s, s:s?, s:I}]", "id", ev.id, "status",
                       "destroy", "from", ev.from, "time",
                       (json_int_t)ev.time_s),
             true, NODE_NONE);
    } else {
        json_t *ins = save_container(pw, c->ie, ev.id);
        if (ins != NULL && is_start)
            logs_ensure(pw, ev.id, name_of(ins),
                        ev.time_s > 0 ? ev.time_s : cp_now_ms() / 1000);
        json_decref(ins);
    }
    kick(pw);
}

static int on_events_chunk(void *ctx, const char *data, size_t len)
{
    struct events_ctx *c = ctx;
    if (podworker_ndjson_feed(&c->pending, data, len, on_event, c) < 0) {
        cp_warn("pods: an engine event is larger than %zu bytes",
                c->pending.max);
        return 1;
    }
    return 0;
}

static void *events_main(void *arg)
{
    struct podworker *pw = arg;
    struct engine *se = engine_new(pw->socket_path);
    struct events_ctx c = {.pw = pw, .ie = engine_new(pw->socket_path)};
    bool is_first = true;
    while (!pw->stop_flag) {
        cp_buf_init(&c.pending, 1024 * 1024);
        char *path = is_first || c.last_time_s == 0
                         ? cp_asprintf("/events?filters=%s", EVENTS_FILTER)
                         : cp_asprintf("/events?since=%lld&filters=%s",
                                       (long long)c.last_time_s, EVENTS_FILTER);
        char err[512] = "the engine closed it";
        int rc = engine_stream(se, path, on_events_chunk, &c, &pw->stop_flag,
                               err, sizeof(err));
        cp_free(path);
        cp_buf_release(&c.pending);
        if (pw->stop_flag)
            break;
        cp_warn("pods: engine events stream ended (%s); again in %d ms",
                rc != 0 ? err : "the engine closed it", EVENTS_RETRY_MS);
        for (int i = 0; i < EVENTS_RETRY_MS / 100 && !pw->stop_flag; i++)
            usleep(100 * 1000);
        is_first = false;
        /* Events may have been missed: converge and report anew. */
        pthread_mutex_lock(&pw->mu);
        pw->wants_sync = true;
        kick_locked(pw);
        pthread_mutex_unlock(&pw->mu);
    }
    engine_free(c.ie);
    engine_free(se);
    return NULL;
}

/* ==== Prober thread ==== */

/* TCP connect to host:port within timeout_ms. 0 or CP_EIO with err. */
static int tcp_probe(const char *host, int port, int timeout_ms, char *err,
                     size_t errlen)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        snprintf(err, errlen, "bad address %s", host);
        return CP_EINVAL;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return CP_EIO;
    }
    int rc = 0;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        if (errno != EINPROGRESS) {
            snprintf(err, errlen, "%s", strerror(errno));
            rc = CP_EIO;
            goto out;
        }
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int n = poll(&p, 1, timeout_ms);
        if (n <= 0) {
            snprintf(err, errlen, "connect timed out");
            rc = CP_EIO;
            goto out;
        }
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
        if (soerr != 0) {
            snprintf(err, errlen, "%s", strerror(soerr));
            rc = CP_EIO;
        }
    }
out:
    close(fd);
    return rc;
}

static size_t discard(char *d, size_t s, size_t n, void *ctx)
{
    CP_UNUSED(d);
    CP_UNUSED(ctx);
    return s * n;
}

/* GET http://host:port/uri; *status gets the HTTP status (0 if none). */
static int http_probe(CURL **curl, const char *host, int port, const char *uri,
                      int timeout_ms, long *status, char *err, size_t errlen)
{
    if (*curl == NULL)
        *curl = curl_easy_init();
    else
        curl_easy_reset(*curl);
    char *url = cp_asprintf("http://%s:%d%s%s", host, port,
                            uri[0] == '/' ? "" : "/", uri);
    CURL *c = *curl;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    CURLcode cc = curl_easy_perform(c);
    *status = 0;
    int rc = 0;
    if (cc != CURLE_OK) {
        snprintf(err, errlen, "%s", curl_easy_strerror(cc));
        rc = CP_EIO;
    } else {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    }
    cp_free(url);
    return rc;
}

static void probe_free(struct probe *p)
{
    cp_free(p->cid);
    cp_free(p->name);
    cp_free(p->host);
    cp_free(p->http_uri);
    cp_free(p->error);
    cp_free(p);
}

/* Under mu: unlinks and frees dropped probes nobody is running. */
static void probes_gc_locked(struct podworker *pw)
{
    for (struct probe **pp = &pw->probes; *pp != NULL;) {
        struct probe *p = *pp;
        if (p->is_dropped && !p->is_busy) {
            *pp = p->next;
            probe_free(p);
        } else {
            pp = &p->next;
        }
    }
}

static void *prober_main(void *arg)
{
    struct podworker *pw = arg;
    CURL *curl = NULL;
    pthread_mutex_lock(&pw->mu);
    while (!pw->is_stopping) {
        probes_gc_locked(pw);
        int64_t now = cp_mono_ms();
        struct probe *due = NULL;
        int64_t next = now + 1000;
        for (struct probe *p = pw->probes; p != NULL; p = p->next) {
            if (p->is_dropped || p->is_busy || (p->is_port && p->result != 0))
                continue;
            if (p->next_ms <= now && (due == NULL || p->next_ms < due->next_ms))
                due = p;
            else if (p->next_ms < next)
                next = p->next_ms;
        }
        if (due == NULL) {
            cond_wait_ms(&pw->pcv, &pw->mu, next - now);
            continue;
        }
        due->is_busy = true;
        struct probe copy = *due; /* strings stay valid while busy */
        pthread_mutex_unlock(&pw->mu);

        char err[256] = "";
        long status = 0;
        int rc;
        if (copy.is_port) {
            rc = tcp_probe(copy.host, copy.port, PORT_CONNECT_MS, err,
                           sizeof(err));
        } else if (copy.http_uri != NULL) {
            rc = http_probe(&curl, copy.host, copy.port, copy.http_uri,
                            copy.timeout_s * 1000, &status, err, sizeof(err));
            if (rc == 0 && (status < 200 || status > 399)) {
                snprintf(err, sizeof(err), "HTTP %ld", status);
                rc = CP_EIO;
            }
        } else {
            rc = tcp_probe(copy.host, copy.port, copy.timeout_s * 1000, err,
                           sizeof(err));
        }
        now = cp_mono_ms();
        bool is_kick = false;
        if (!copy.is_port) {
            json_t *h = json_pack("{s:s, s:s}", "id", copy.cid, "status",
                                  rc == 0 ? "healthy" : "unhealthy");
            if (status != 0)
                json_object_set_new(h, "status_code", json_integer(status));
            if (rc != 0)
                json_object_set_new(h, "error", json_string(err));
            post(pw, PROTO_M_CONTAINERS_HEALTH, json_pack("[o]", h), true,
                 NODE_NONE);
            if (rc != 0)
                cp_warn("pods: %s is unhealthy (%s:%d: %s); restarting it",
                        copy.name, copy.host, copy.port, err);
        }
        pthread_mutex_lock(&pw->mu);
        due->is_busy = false;
        if (due->is_dropped)
            continue;
        if (due->is_port) {
            if (rc == 0) {
                due->result = 1;
                is_kick = true;
                cp_info("pods: %s: port %d is open", due->name, due->port);
            } else if (now >= due->deadline_ms) {
                due->result = -1;
                due->error = cp_asprintf(
                    "port %d did not open within %d s (%s:%d: %s)", due->port,
                    PODW_PORT_WAIT_MS / 1000, due->host, due->port, err);
                is_kick = true;
            } else {
                due->next_ms = now + PORT_PROBE_EVERY_MS;
            }
        } else {
            due->next_ms = now + (int64_t)due->interval_s * 1000;
            if (rc != 0) {
                pw->restarts = cp_realloc(
                    pw->restarts, (pw->nrestarts + 1) * sizeof(*pw->restarts));
                struct restart *r = &pw->restarts[pw->nrestarts++];
                memset(r, 0, sizeof(*r));
                r->cid = cp_strdup(due->cid);
                r->name = cp_strdup(due->name);
                due->is_dropped = true; /* re-armed after the restart */
                is_kick = true;
            }
        }
        if (is_kick)
            kick_locked(pw);
    }
    pthread_mutex_unlock(&pw->mu);
    if (curl != NULL)
        curl_easy_cleanup(curl);
    return NULL;
}

/* ==== Worker: set_state ==== */

static struct memo *memo_get(struct podworker *pw, const char *key)
{
    for (size_t i = 0; i < pw->nmemo; i++)
        if (strcmp(pw->memo[i].key, key) == 0)
            return &pw->memo[i];
    pw->memo = cp_realloc(pw->memo, (pw->nmemo + 1) * sizeof(*pw->memo));
    struct memo *m = &pw->memo[pw->nmemo++];
    memset(m, 0, sizeof(*m));
    m->key = cp_strdup(key);
    return m;
}

static bool str_eq(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static void set_str(char **dst, const char *s)
{
    cp_free(*dst);
    *dst = s != NULL ? cp_strdup(s) : NULL;
}

/* Makes the next set_state of pod p go out even if it repeats the last
 * one (max_rev stays: an older rev is still never reported). */
static void memo_forget_state(struct podworker *pw, const struct pod *p)
{
    char *key = cp_asprintf("%s/%d", p->service_id, p->instance_number);
    struct memo *m = memo_get(pw, key);
    cp_free(key);
    cp_free(m->state);
    m->state = NULL;
}

/* Sends set_state for pod p unless it repeats the last report or would
 * report an older rev than one already reported. */
static void send_state(struct podworker *pw, const struct pod *p,
                       const char *state, const char *error)
{
    char *key = cp_asprintf("%s/%d", p->service_id, p->instance_number);
    struct memo *m = memo_get(pw, key);
    cp_free(key);
    const char *rev = p->deploy_rev;
    if (rev != NULL && m->max_rev != NULL && strcmp(rev, m->max_rev) < 0) {
        cp_debug("pods: %s-%d: not reporting rev %s (already reported %s)",
                 p->service_name, p->instance_number, rev, m->max_rev);
        return;
    }
    if (m->state != NULL && str_eq(m->rev, rev) && str_eq(m->state, state) &&
        str_eq(m->error, error))
        return;
    set_str(&m->rev, rev);
    set_str(&m->state, state);
    set_str(&m->error, error);
    if (rev != NULL)
        set_str(&m->max_rev, rev);
    cp_info("pods: %s-%d: %s rev %s%s%s", p->service_name, p->instance_number,
            state, rev != NULL ? rev : "-", error != NULL ? ": " : "",
            error != NULL ? error : "");
    json_t *o = json_pack("{s:s, s:i, s:s?, s:s}", "service_id", p->service_id,
                          "instance_number", p->instance_number, "rev", rev,
                          "state", state);
    json_object_set_new(o, "error",
                        error != NULL ? json_string(error) : json_null());
    post(pw, PROTO_M_PODS_SET_STATE, json_pack("[o]", o), true, NODE_FIRST);
}

/* ==== Worker: probes bookkeeping ==== */

/* The address to probe container port `port` at: the container's IP,
 * else 127.0.0.1 and the node port it is published on. Caller frees. */
static char *probe_host(struct podworker *pw, const struct pod *p,
                        const char *cid, int *port)
{
    json_t *ins = NULL;
    char err[512];
    char *host = NULL;
    if (engine_container_inspect(pw->we, cid, &ins, err, sizeof(err)) == 0) {
        const char *ip = podworker_container_ip(ins);
        if (ip != NULL)
            host = cp_strdup(ip);
    }
    json_decref(ins);
    if (host != NULL)
        return host;
    for (size_t i = 0; i < p->nports; i++) {
        if (p->ports[i].container_port == *port && p->ports[i].node_port > 0) {
            *port = p->ports[i].node_port;
            break;
        }
    }
    return cp_strdup("127.0.0.1");
}

static struct probe *probe_find_locked(struct podworker *pw, const char *cid,
                                       bool is_port)
{
    for (struct probe *p = pw->probes; p != NULL; p = p->next)
        if (!p->is_dropped && p->is_port == is_port && strcmp(p->cid, cid) == 0)
            return p;
    return NULL;
}

static void probe_add(struct podworker *pw, struct probe *p)
{
    pthread_mutex_lock(&pw->mu);
    p->seq = ++pw->next_seq;
    p->next = pw->probes;
    pw->probes = p;
    pthread_cond_signal(&pw->pcv);
    pthread_mutex_unlock(&pw->mu);
}

/* The wait_for_port outcome for the running container cid of pod p:
 * 1 open, 0 still waiting (a probe is started if there is none), -1
 * failed with *error (caller frees). */
static int port_status(struct podworker *pw, const struct pod *p,
                       const char *cid, const char *name, char **error)
{
    *error = NULL;
    pthread_mutex_lock(&pw->mu);
    struct probe *pr = probe_find_locked(pw, cid, true);
    int r = pr != NULL ? pr->result : 0;
    if (pr != NULL && r < 0)
        *error = cp_strdup(pr->error);
    pthread_mutex_unlock(&pw->mu);
    if (pr != NULL)
        return r;
    struct probe *np = cp_calloc(1, sizeof(*np));
    np->is_port = true;
    np->cid = cp_strdup(cid);
    np->name = cp_strdup(name);
    int port = p->wait_for_port;
    np->host = probe_host(pw, p, cid, &port);
    np->port = port;
    np->next_ms = cp_mono_ms();
    np->deadline_ms = np->next_ms + PODW_PORT_WAIT_MS;
    cp_info("pods: %s: waiting for port %d (%s:%d)", name, p->wait_for_port,
            np->host, np->port);
    probe_add(pw, np);
    return 0;
}

/* Drops the probes whose container is no longer the running container
 * of a pod that wants them (the pod changed, stopped or went), and adds
 * health checks for running pods that have none. */
static void sync_probes(struct podworker *pw, const struct podlist *l,
                        char **names, const struct actual *act, size_t na)
{
    pthread_mutex_lock(&pw->mu);
    for (struct probe *pr = pw->probes; pr != NULL; pr = pr->next) {
        bool is_wanted = false;
        for (size_t i = 0; i < l->n && !is_wanted; i++) {
            const struct pod *p = &l->v[i];
            if (p->desired != POD_RUNNING)
                continue;
            for (size_t j = 0; j < na; j++) {
                if (!act[j].is_running || strcmp(act[j].id, pr->cid) != 0 ||
                    strcmp(act[j].name, names[i]) != 0)
                    continue;
                is_wanted = pr->is_port ? p->wait_for_port > 0
                                        : p->health.protocol != NULL;
            }
        }
        if (!is_wanted && !pr->is_dropped) {
            cp_debug("pods: %s: %s probe cancelled", pr->name,
                     pr->is_port ? "port" : "health");
            pr->is_dropped = true;
        }
    }
    probes_gc_locked(pw);
    pthread_mutex_unlock(&pw->mu);

    for (size_t i = 0; i < l->n; i++) {
        const struct pod *p = &l->v[i];
        if (p->desired != POD_RUNNING || p->health.protocol == NULL ||
            p->health.port <= 0)
            continue;
        for (size_t j = 0; j < na; j++) {
            if (!act[j].is_running || strcmp(act[j].name, names[i]) != 0)
                continue;
            pthread_mutex_lock(&pw->mu);
            bool has = probe_find_locked(pw, act[j].id, false) != NULL;
            pthread_mutex_unlock(&pw->mu);
            if (has)
                continue;
            struct probe *np = cp_calloc(1, sizeof(*np));
            np->cid = cp_strdup(act[j].id);
            np->name = cp_strdup(names[i]);
            int port = p->health.port;
            np->host = probe_host(pw, p, act[j].id, &port);
            np->port = port;
            if (strcmp(p->health.protocol, "http") == 0)
                np->http_uri =
                    cp_strdup(p->health.uri != NULL ? p->health.uri : "/");
            np->timeout_s = p->health.timeout_s > 0 ? p->health.timeout_s : 10;
            np->interval_s =
                p->health.interval_s > 0 ? p->health.interval_s : 60;
            np->next_ms =
                cp_mono_ms() + (int64_t)(p->health.initial_delay_s > 0
                                             ? p->health.initial_delay_s
                                             : 0) *
                                   1000;
            probe_add(pw, np);
        }
    }
}

/* ==== Worker: convergence ==== */

/* Lists the engine's containers into *out; exited containers of ours
 * are inspected for their exit code and times. */
static int list_actual(struct podworker *pw, struct actual **out, size_t *n)
{
    json_t *rows = NULL;
    char err[512];
    *out = NULL;
    *n = 0;
    if (engine_containers_list(pw->we, NULL, &rows, err, sizeof(err)) != 0) {
        cp_warn("pods: cannot list containers: %s", err);
        return CP_EIO;
    }
    struct actual *v = cp_calloc(json_array_size(rows) + 1, sizeof(*v));
    size_t k = 0;
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        struct actual a;
        if (pods_actual_from_list_row(row, &a) != 0)
            continue;
        if (a.service_id != NULL && !a.is_running) {
            json_t *ins = NULL;
            int rc =
                engine_container_inspect(pw->we, a.id, &ins, err, sizeof(err));
            struct actual b;
            if (rc == 0 && pods_actual_from_inspect(ins, &b) == 0) {
                pods_actual_release(&a);
                a = b;
            } else if (rc == CP_ENOTFOUND) {
                pods_actual_release(&a);
                json_decref(ins);
                continue;
            }
            json_decref(ins);
        }
        v[k++] = a;
    }
    json_decref(rows);
    *out = v;
    *n = k;
    return 0;
}

static void free_actual(struct actual *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        pods_actual_release(&v[i]);
    cp_free(v);
}

/* Makes sure the pod's image is there, once per (image, deploy_rev):
 * a local image is used as it is (GET /images/{ref}/json; Podman cannot
 * pull at all), a missing one is pulled. Records the image id for the
 * diff. Returns 0, or an error with "image X: pull failed: ..." in err. */
static int image_ready(struct podworker *pw, const struct pod *p, char *err,
                       size_t errlen)
{
    char *key = cp_asprintf("%s\n%s", p->image_name,
                            p->deploy_rev != NULL ? p->deploy_rev : "");
    for (size_t i = 0; i < pw->npulled; i++) {
        if (strcmp(pw->pulled[i], key) == 0) {
            cp_free(key);
            return 0;
        }
    }
    char ierr[512], perr[512];
    json_t *img = NULL;
    int rc = 0;
    struct pull_failure *f = NULL;
    for (size_t i = 0; i < pw->nfailures && f == NULL; i++)
        if (strcmp(pw->failures[i].image, p->image_name) == 0)
            f = &pw->failures[i];
    int irc =
        engine_image_inspect(pw->we, p->image_name, &img, ierr, sizeof(ierr));
    if (irc == CP_ENOTFOUND && f != NULL && cp_mono_ms() < f->retry_ms) {
        /* Pulled in vain a moment ago: do not hammer the registry. */
        snprintf(err, errlen, "%s", f->error);
        cp_free(key);
        return CP_EIO;
    }
    if (irc == CP_ENOTFOUND) {
        /* The credentials go to the engine only, never to a log. */
        char *auth = NULL;
        if (p->creds != NULL) {
            char host[256];
            cp_image_registry(p->image_name, host, sizeof(host));
            const char *server = p->creds->serveraddress != NULL
                                     ? p->creds->serveraddress
                                     : host;
            auth = engine_registry_auth(p->creds->username,
                                        p->creds->password, p->creds->email,
                                        server);
        }
        cp_info("pods: pulling image %s%s", p->image_name,
                auth != NULL ? " with credentials" : "");
        rc = engine_image_pull(pw->we, p->image_name, auth, perr,
                               sizeof(perr));
        if (auth != NULL) {
            memset(auth, 0, strlen(auth));
            cp_free(auth);
        }
        if (rc == 0)
            irc = engine_image_inspect(pw->we, p->image_name, &img, ierr,
                                       sizeof(ierr));
    }
    if (irc == 0) {
        const char *id = cp_json_str(img, "Id");
        if (id != NULL)
            pods_state_set_image(&pw->state, p->image_name, id);
        pw->pulled =
            cp_realloc(pw->pulled, (pw->npulled + 1) * sizeof(*pw->pulled));
        pw->pulled[pw->npulled++] = key;
        json_decref(img);
        return 0;
    }
    cp_free(key);
    if (rc != 0)
        snprintf(err, errlen, "image %s: pull failed: %s", p->image_name, perr);
    else
        snprintf(err, errlen, "image %s: %s", p->image_name, ierr);
    if (rc != 0) {
        if (f == NULL) {
            pw->failures = cp_realloc(pw->failures, (pw->nfailures + 1) *
                                                        sizeof(*pw->failures));
            f = &pw->failures[pw->nfailures++];
            f->image = cp_strdup(p->image_name);
            f->error = NULL;
        }
        set_str(&f->error, err);
        f->retry_ms = cp_mono_ms() + PULL_RETRY_MS;
    }
    return rc != 0 ? rc : irc;
}

/* ==== Worker: hooks ==== */

static struct hookmark *hookmark_find(struct podworker *pw, const char *name)
{
    for (size_t i = 0; i < pw->nhookmarks; i++)
        if (strcmp(pw->hookmarks[i].name, name) == 0)
            return &pw->hookmarks[i];
    return NULL;
}

static struct hookmark *hookmark_get(struct podworker *pw, const char *name)
{
    struct hookmark *m = hookmark_find(pw, name);
    if (m != NULL)
        return m;
    pw->hookmarks = cp_realloc(pw->hookmarks,
                               (pw->nhookmarks + 1) * sizeof(*pw->hookmarks));
    m = &pw->hookmarks[pw->nhookmarks++];
    memset(m, 0, sizeof(*m));
    m->name = cp_strdup(name);
    return m;
}

static void hookmark_forget(struct podworker *pw, const char *name)
{
    struct hookmark *m = hookmark_find(pw, name);
    if (m == NULL)
        return;
    cp_free(m->name);
    cp_free(m->fail_rev);
    cp_free(m->fail_error);
    *m = pw->hookmarks[--pw->nhookmarks];
}

/* The hook failure recorded for container name under the pod's current
 * deploy_rev, or NULL. */
static const struct hookmark *
hook_failure(struct podworker *pw, const struct pod *p, const char *name)
{
    const struct hookmark *m = hookmark_find(pw, name);
    if (m == NULL || m->fail_error == NULL ||
        !str_eq(m->fail_rev, p->deploy_rev))
        return NULL;
    return m;
}

static void hook_fail(struct podworker *pw, const struct pod *p,
                      const char *name, const char *error, bool is_blocking)
{
    struct hookmark *m = hookmark_get(pw, name);
    set_str(&m->fail_rev, p->deploy_rev);
    set_str(&m->fail_error, error);
    m->is_fail_blocking = is_blocking;
}

/* A oneshot hook succeeded: the master records it so that later pods of
 * this instance leave it out. */
static void on_oneshot_done(void *ctx, const struct pod *p,
                            const struct pod_hook *h)
{
    struct podworker *pw = ctx;
    post(pw, PROTO_M_PODS_MARK_ONESHOT,
         json_pack("[{s:s, s:i, s:{s:s, s:s}}]", "service_id", p->service_id,
                   "instance_number", p->instance_number, "hook", "name",
                   h->name, "type", pods_hook_type_name(h->type)),
         true, NODE_FIRST);
}

/* Whether the START of name is the container's first start: it was
 * created by this worker and not started yet, or (after an agent
 * restart, which forgets that) the engine says it never ran. */
static bool first_start(struct podworker *pw, const char *target,
                        const char *name)
{
    const struct hookmark *m = hookmark_find(pw, name);
    if (m != NULL)
        return m->is_pending;
    json_t *ins = NULL;
    char err[512];
    struct actual a;
    bool first = false;
    if (engine_container_inspect(pw->we, target, &ins, err, sizeof(err)) == 0 &&
        pods_actual_from_inspect(ins, &a) == 0) {
        first = a.started_at_ms == 0 && a.error == NULL;
        pods_actual_release(&a);
    }
    json_decref(ins);
    return first;
}

/* START with the hooks around the container's first start: pre_start
 * (its failure keeps the container from starting, until a new deploy),
 * the start, then post_start (its failure is reported; the container
 * keeps running: stopping it would only make the agent start it again).
 * 0 or an error in err. */
static int start_with_hooks(struct podworker *pw, const struct pod *p,
                            const char *target, const char *name,
                            bool *is_started, char *err, size_t errlen)
{
    *is_started = false;
    bool has_pre = hooks_any(p, POD_HOOK_PRE_START);
    bool has_post = hooks_any(p, POD_HOOK_POST_START);
    bool is_first = (has_pre || has_post) && first_start(pw, target, name);
    struct hookmark *m = NULL;
    char herr[768];
    if (is_first) {
        m = hookmark_get(pw, name);
        m->is_pending = true;
        const struct hookmark *f = hook_failure(pw, p, name);
        if (f != NULL && f->is_fail_blocking) {
            snprintf(err, errlen, "%s", f->fail_error);
            return CP_EIO;
        }
        if (has_pre && !m->is_pre_done) {
            if (hooks_run(pw->we, p, POD_HOOK_PRE_START, name,
                          pw->hook_timeout_s, on_oneshot_done, pw, herr,
                          sizeof(herr)) != 0) {
                hook_fail(pw, p, name, herr, true);
                snprintf(err, errlen, "%s", herr);
                return CP_EIO;
            }
            m = hookmark_get(pw, name); /* still valid; no insertions */
            m->is_pre_done = true;
        }
    }
    char eerr[512];
    int rc = engine_container_start(pw->we, target, eerr, sizeof(eerr));
    if (rc != 0) {
        snprintf(err, errlen, "start %s: %s", name, eerr);
        return rc;
    }
    *is_started = true;
    if (!is_first)
        return 0;
    m = hookmark_get(pw, name);
    m->is_pending = false;
    m->is_pre_done = false;
    if (has_post &&
        hooks_run(pw->we, p, POD_HOOK_POST_START, target, pw->hook_timeout_s,
                  on_oneshot_done, pw, herr, sizeof(herr)) != 0) {
        hook_fail(pw, p, name, herr, false);
        snprintf(err, errlen, "%s", herr);
        return CP_EIO;
    }
    return 0;
}

/* pre_stop before the container goes: failures are logged (by hooks.c)
 * and stopping goes on. */
static void pre_stop(struct podworker *pw, const struct pod *p,
                     const char *target)
{
    if (p == NULL || !hooks_any(p, POD_HOOK_PRE_STOP))
        return;
    char herr[768];
    hooks_run(pw->we, p, POD_HOOK_PRE_STOP, target, pw->hook_timeout_s,
              on_oneshot_done, pw, herr, sizeof(herr));
}

static int create(struct podworker *pw, const struct pod *p, const char *name,
                  char *err, size_t errlen)
{
    json_t *body = NULL;
    pods_container_spec(p, &body);
    char *id = NULL;
    char cerr[512];
    int rc =
        engine_container_create(pw->we, name, body, &id, cerr, sizeof(cerr));
    json_decref(body);
    if (rc != 0)
        snprintf(err, errlen, "create %s: %s", name, cerr);
    if (rc == 0 && (hooks_any(p, POD_HOOK_PRE_START) ||
                    hooks_any(p, POD_HOOK_POST_START))) {
        struct hookmark *m = hookmark_get(pw, name);
        m->is_pending = true;
        m->is_pre_done = false;
    }
    cp_free(id);
    return rc;
}

/* Executes one action; 0 or an error with its text in err. */
static int execute(struct podworker *pw, const struct podlist *l,
                   const struct pods_action *a, char *err, size_t errlen)
{
    const struct pod *p = a->pod != PODS_NO_POD ? &l->v[a->pod] : NULL;
    const char *target = a->container_id != NULL ? a->container_id : a->name;
    char eerr[512];
    int rc = 0;
    cp_info("pods: %s %s (%s)", pods_action_kind_name(a->kind), a->name,
            a->reason != NULL ? a->reason : "");
    switch (a->kind) {
    case PODS_REMOVE:
        pre_stop(pw, p, target);
        rc = engine_container_remove(pw->we, target, true, eerr, sizeof(eerr));
        if (rc == CP_ENOTFOUND)
            rc = 0;
        if (rc == 0) {
            pods_state_forget(&pw->state, a->name);
            hookmark_forget(pw, a->name);
        }
        break;
    case PODS_STOP: {
        int t =
            p != NULL && p->stop_grace_period >= 0 ? p->stop_grace_period : 10;
        pre_stop(pw, p, target);
        pods_state_stopped(&pw->state, a->name);
        rc = engine_container_stop(pw->we, target, t, eerr, sizeof(eerr));
        break;
    }
    case PODS_RECREATE:
        /* p is the new pod: its pre_stop hooks run in the old container
         * (an exec into a stopped one fails and is only logged). */
        pre_stop(pw, p, target);
        rc = engine_container_remove(pw->we, target, true, eerr, sizeof(eerr));
        if (rc == CP_ENOTFOUND)
            rc = 0;
        if (rc != 0)
            break;
        pods_state_forget(&pw->state, a->name);
        hookmark_forget(pw, a->name);
        /* fall through */
    case PODS_CREATE:
        if (p == NULL)
            return 0;
        return create(pw, p, a->name, err, errlen);
    case PODS_START:
        if (p != NULL) {
            bool is_started;
            rc = start_with_hooks(pw, p, target, a->name, &is_started, err,
                                  errlen);
            /* Started even when only post_start failed. */
            if (is_started)
                pods_state_started(&pw->state, a->name, a->restarts,
                                   cp_now_ms());
            return rc;
        }
        rc = engine_container_start(pw->we, target, eerr, sizeof(eerr));
        if (rc == 0)
            pods_state_started(&pw->state, a->name, a->restarts, cp_now_ms());
        break;
    case PODS_WAIT:
        return 0;
    }
    if (rc != 0)
        snprintf(err, errlen, "%s %s: %s", pods_action_kind_name(a->kind),
                 a->name, eerr);
    return rc;
}

static const struct actual *find_actual(const struct actual *v, size_t n,
                                        const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (v[i].name != NULL && strcmp(v[i].name, name) == 0)
            return &v[i];
    return NULL;
}

/* Sends the settled reports of one diff; reports of pods waiting for
 * their port are held back until the probe decides. */
static void send_reports(struct podworker *pw, const struct podlist *l,
                         char **names, const struct actual *act, size_t na,
                         const struct pods_actions *acts, char **errs,
                         enum pods_report_state *last)
{
    for (size_t i = 0; i < acts->nreports && i < l->n; i++) {
        const struct pods_report *r = &acts->reports[i];
        const struct pod *p = &l->v[i];
        last[i] = r->state;
        if (errs[i] != NULL || !r->is_settled || p->desired == POD_INITIALIZED)
            continue;
        char *error = r->error != NULL ? cp_strdup(r->error) : NULL;
        const struct hookmark *hf = hook_failure(pw, p, names[i]);
        if (error == NULL && hf != NULL)
            error = cp_strdup(hf->fail_error);
        if (r->state == PODS_REPORT_RUNNING && p->wait_for_port > 0 &&
            error == NULL) {
            const struct actual *a = find_actual(act, na, names[i]);
            if (a == NULL)
                continue;
            if (port_status(pw, p, a->id, names[i], &error) == 0)
                continue;
        }
        send_state(pw, p, pods_report_state_name(r->state), error);
        cp_free(error);
    }
}

static void converge(struct podworker *pw, const struct podlist *l)
{
    char **names = cp_calloc(l->n + 1, sizeof(*names));
    char **errs = cp_calloc(l->n + 1, sizeof(*errs));
    enum pods_report_state *last = cp_calloc(l->n + 1, sizeof(*last));
    char err[768];
    for (size_t i = 0; i < l->n; i++) {
        names[i] = pods_container_name(&l->v[i]);
        last[i] = PODS_REPORT_MISSING;
        if (l->v[i].desired == POD_RUNNING && l->v[i].image_name != NULL &&
            image_ready(pw, &l->v[i], err, sizeof(err)) != 0)
            errs[i] = cp_strdup(err);
    }
    int64_t wake_in = 0;
    bool is_busy = false;
    for (int pass = 0; pass < PODW_MAX_PASSES; pass++) {
        struct actual *act = NULL;
        size_t na = 0;
        if (list_actual(pw, &act, &na) != 0) {
            wake_in = 5000;
            break;
        }
        struct pods_actions acts;
        pods_actions_init(&acts);
        pods_diff(l->v, l->n, act, na, &pw->state, cp_now_ms(), &acts);
        send_reports(pw, l, names, act, na, &acts, errs, last);
        sync_probes(pw, l, names, act, na);
        size_t done = 0;
        for (size_t k = 0; k < acts.n; k++) {
            const struct pods_action *a = &acts.v[k];
            if (a->kind == PODS_WAIT ||
                (a->pod != PODS_NO_POD && errs[a->pod] != NULL))
                continue;
            done++;
            if (execute(pw, l, a, err, sizeof(err)) == 0)
                continue;
            cp_warn("pods: %s", err);
            if (a->pod != PODS_NO_POD)
                errs[a->pod] = cp_strdup(err);
        }
        wake_in = acts.wake_in_ms;
        pods_actions_release(&acts);
        free_actual(act, na);
        is_busy = done > 0;
        if (!is_busy)
            break;
    }
    if (is_busy && (wake_in == 0 || wake_in > 1000))
        wake_in = 1000; /* out of passes: come back soon */
    pw->wake_at_ms = wake_in > 0 ? cp_mono_ms() + wake_in : 0;
    for (size_t i = 0; i < l->n; i++) {
        /* A hook failure has a state of its own: a pre_start one left
         * the container unstarted, a post_start one left it running. */
        const struct hookmark *hf = hook_failure(pw, &l->v[i], names[i]);
        const char *st = pods_report_state_name(last[i]);
        if (hf != NULL && errs[i] != NULL &&
            strcmp(errs[i], hf->fail_error) == 0)
            st = hf->is_fail_blocking ? "stopped" : "running";
        if (errs[i] != NULL)
            send_state(pw, &l->v[i], st, errs[i]);
        cp_free(errs[i]);
        cp_free(names[i]);
    }
    cp_free(last);
    cp_free(errs);
    cp_free(names);
}

static void do_restart(struct podworker *pw, const struct restart *r)
{
    char err[512];
    pods_state_stopped(&pw->state, r->name);
    if (engine_container_stop(pw->we, r->cid, 10, err, sizeof(err)) != 0 ||
        engine_container_start(pw->we, r->cid, err, sizeof(err)) != 0) {
        cp_warn("pods: restart of %s: %s", r->name, err);
        return;
    }
    const struct pods_cstate *cs = pods_state_get(&pw->state, r->name);
    pods_state_started(&pw->state, r->name, cs != NULL ? cs->restarts : 0,
                       cp_now_ms());
}

static void restart_release(struct restart *r)
{
    cp_free(r->cid);
    cp_free(r->name);
    cp_free(r->service_id);
}

/* The master's restart of one instance (podworker_restart). The pod's
 * container keeps its id and labels: only a stop and a start, so the
 * diff that follows sees it in sync, also when the master bumped the
 * deploy_rev for the restart (a new rev with the same image needs no
 * recreate, see pods_diff). */
static void restart_instance(struct podworker *pw, const struct podlist *l,
                             const struct restart *r)
{
    size_t i = l != NULL
                   ? pods_find(l->v, l->n, r->service_id, r->instance_number)
                   : PODS_NO_POD;
    if (i == PODS_NO_POD) {
        cp_warn("pods: restart of service %s instance %d ignored: it is "
                "not in this node's pod list",
                r->service_id, r->instance_number);
        return;
    }
    const struct pod *p = &l->v[i];
    if (p->desired != POD_RUNNING) {
        cp_info("pods: restart of %s-%d ignored: it is not desired running",
                p->service_name, p->instance_number);
        return;
    }
    char *name = pods_container_name(p);
    char err[512];
    json_t *ins = NULL;
    int rc = engine_container_inspect(pw->we, name, &ins, err, sizeof(err));
    const char *cid = cp_json_str(ins, "Id");
    if (rc != 0 || cid == NULL) {
        /* The converge that follows creates it. */
        cp_info("pods: restart of %s: no container (%s)", name,
                rc != 0 ? err : "no id");
        goto out;
    }
    /* A restart runs the current secrets (issue #651): when they changed
     * since the container was made, the converge that follows recreates
     * it instead (pods_diff), and a stop and start first would only
     * restart the old values. */
    char *want = pods_secrets_rev(p);
    const char *have = cp_json_str(
        json_object_get(json_object_get(ins, "Config"), "Labels"),
        "io.kontena.container.secrets_rev");
    bool is_secrets_changed = !(want == NULL ? have == NULL
                                             : have != NULL &&
                                                   strcmp(want, have) == 0);
    cp_free(want);
    if (is_secrets_changed) {
        cp_info("pods: restart of %s: its secrets changed; it is recreated",
                name);
        goto out;
    }
    int grace = p->stop_grace_period >= 0 ? p->stop_grace_period : 10;
    cp_info("pods: restarting %s (stop grace %d s)", name, grace);
    /* Probes of the old run go: wait_for_port and the health check
     * start over for the new one. */
    pthread_mutex_lock(&pw->mu);
    for (struct probe *pr = pw->probes; pr != NULL; pr = pr->next)
        if (strcmp(pr->cid, cid) == 0)
            pr->is_dropped = true;
    pthread_mutex_unlock(&pw->mu);
    pods_state_stopped(&pw->state, name);
    if (engine_container_stop(pw->we, cid, grace, err, sizeof(err)) != 0 ||
        engine_container_start(pw->we, cid, err, sizeof(err)) != 0) {
        cp_warn("pods: restart of %s: %s", name, err);
        goto out;
    }
    /* A requested restart is no crash: the backoff starts over. */
    pods_state_started(&pw->state, name, 0, cp_now_ms());
out:
    /* Report again afterwards, even when nothing else changed. */
    memo_forget_state(pw, p);
    json_decref(ins);
    cp_free(name);
}

static void send_stats(struct podworker *pw)
{
    json_t *rows = NULL;
    char err[512];
    if (engine_containers_list(pw->we, PODW_SERVICE_LABEL, &rows, err,
                               sizeof(err)) != 0)
        return;
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        const char *id = cp_json_str(row, "Id");
        const char *st = cp_json_str(row, "State");
        json_t *s = NULL;
        if (id == NULL || st == NULL || strcmp(st, "running") != 0 ||
            engine_container_stats(pw->we, id, &s, err, sizeof(err)) != 0)
            continue;
        const json_t *mem = json_object_get(s, "memory_stats");
        const json_t *cpu = json_object_get(s, "cpu_stats");
        const json_t *pre = json_object_get(s, "precpu_stats");
        double d_cpu = (double)(cp_json_int(json_object_get(cpu, "cpu_usage"),
                                            "total_usage", 0) -
                                cp_json_int(json_object_get(pre, "cpu_usage"),
                                            "total_usage", 0));
        double d_sys = (double)(cp_json_int(cpu, "system_cpu_usage", 0) -
                                cp_json_int(pre, "system_cpu_usage", 0));
        long long ncpu = cp_json_int(cpu, "online_cpus", 1);
        double pct = d_sys > 0 ? d_cpu / d_sys * (double)ncpu * 100.0 : 0.0;
        json_t *nets = json_object_get(s, "networks");
        long long rx = 0, tx = 0;
        const char *k;
        json_t *n;
        json_object_foreach(nets, k, n)
        {
            rx += cp_json_int(n, "rx_bytes", 0);
            tx += cp_json_int(n, "tx_bytes", 0);
        }
        char when[40];
        json_t *stat =
            json_pack("{s:s, s:{s:f}, s:{s:I, s:I}, s:{s:I, s:I}, s:s}", "id",
                      id, "cpu", "usage_pct", pct, "memory", "usage",
                      (json_int_t)cp_json_int(mem, "usage", 0), "limit",
                      (json_int_t)cp_json_int(mem, "limit", 0), "network",
                      "rx_bytes", (json_int_t)rx, "tx_bytes", (json_int_t)tx,
                      "time", cp_time_iso(cp_now_ms(), when, sizeof(when)));
        post(pw, PROTO_M_CONTAINERS_STAT, json_pack("[o]", stat), false,
             NODE_NONE);
        json_decref(s);
    }
    json_decref(rows);
}

static void *worker_main(void *arg)
{
    struct podworker *pw = arg;
    pw->we = engine_new(pw->socket_path);
    pw->next_stats_ms =
        pw->stats_interval_ms > 0 ? cp_mono_ms() + pw->stats_interval_ms : 0;
    for (;;) {
        pthread_mutex_lock(&pw->mu);
        int64_t now = cp_mono_ms();
        bool is_due = pw->wake_at_ms != 0 && now >= pw->wake_at_ms;
        if (!pw->is_stopping && !pw->is_kicked && !pw->wants_sync &&
            pw->nrestarts == 0 && !is_due) {
            int64_t wait = WORKER_IDLE_MS;
            if (pw->wake_at_ms != 0 && pw->wake_at_ms - now < wait)
                wait = pw->wake_at_ms - now;
            cond_wait_ms(&pw->cv, &pw->mu, wait);
            now = cp_mono_ms();
            is_due = pw->wake_at_ms != 0 && now >= pw->wake_at_ms;
        }
        if (pw->is_stopping) {
            pthread_mutex_unlock(&pw->mu);
            break;
        }
        bool is_kicked = pw->is_kicked || is_due;
        bool wants_sync = pw->wants_sync;
        bool wants_resend = pw->wants_resend;
        pw->is_kicked = pw->wants_sync = pw->wants_resend = false;
        struct restart *restarts = pw->restarts;
        size_t nrestarts = pw->nrestarts;
        pw->restarts = NULL;
        pw->nrestarts = 0;
        struct podlist *l = pw->desired;
        if (l != NULL)
            __atomic_add_fetch(&l->refs, 1, __ATOMIC_ACQ_REL);
        pthread_mutex_unlock(&pw->mu);

        logs_reap(pw);
        if (wants_resend) {
            for (size_t i = 0; i < pw->nmemo; i++) {
                cp_free(pw->memo[i].state);
                pw->memo[i].state = NULL;
            }
        }
        if (wants_sync)
            sync_containers(pw);
        for (size_t i = 0; i < nrestarts; i++) {
            if (restarts[i].cid != NULL)
                do_restart(pw, &restarts[i]);
            else
                restart_instance(pw, l, &restarts[i]);
            restart_release(&restarts[i]);
        }
        cp_free(restarts);
        /* Without a first list the diff would remove every container. */
        if (l != NULL && (is_kicked || wants_resend || nrestarts > 0))
            converge(pw, l);
        list_unref(l);
        if (pw->next_stats_ms != 0 && cp_mono_ms() >= pw->next_stats_ms) {
            send_stats(pw);
            pw->next_stats_ms = cp_mono_ms() + pw->stats_interval_ms;
        }
    }
    engine_free(pw->we);
    pw->we = NULL;
    return NULL;
}

/* ==== Loop thread ==== */

static void pull(struct podworker *pw, int64_t now_ms);

static void on_list(void *ctx, const json_t *error, const json_t *result)
{
    struct podworker *pw = ctx;
    pw->is_pulling = false;
    if (error == NULL) {
        struct pod *v = NULL;
        size_t n = 0;
        char err[512];
        if (pods_parse_list(result, &v, &n, err, sizeof(err)) != 0) {
            cp_warn("pods: keeping the previous pod list; the new one is "
                    "bad: %s",
                    err);
        } else {
            struct podlist *l = cp_calloc(1, sizeof(*l));
            l->refs = 1;
            l->v = v;
            l->n = n;
            pthread_mutex_lock(&pw->mu);
            struct podlist *old = pw->desired;
            pw->desired = l;
            kick_locked(pw);
            pthread_mutex_unlock(&pw->mu);
            list_unref(old);
            cp_debug("pods: %zu service pods desired", n);
        }
    } else {
        const char *msg = cp_json_str(error, "message");
        cp_warn("pods: keeping the previous pod list; the master answered "
                "the pull with an error%s%s",
                msg != NULL ? ": " : "", msg != NULL ? msg : "");
    }
    if (pw->wants_pull_again && pw->is_open) {
        pw->wants_pull_again = false;
        pull(pw, cp_mono_ms());
    }
}

static void pull(struct podworker *pw, int64_t now_ms)
{
    pw->next_pull_ms = now_ms + pw->pull_interval_ms;
    if (pw->is_pulling) {
        pw->wants_pull_again = true;
        return;
    }
    const char *node = agent_node_id(pw->agent);
    if (!pw->is_open || node == NULL)
        return;
    if (agent_request(pw->agent, PROTO_M_PODS_LIST, json_pack("[s]", node), 0,
                      on_list, pw, now_ms) == 0)
        pw->is_pulling = true;
}

static void drain_outbox(struct podworker *pw, int64_t now_ms)
{
    pthread_mutex_lock(&pw->mu);
    struct outmsg *m = pw->out_head;
    pw->out_head = pw->out_tail = NULL;
    pw->nout = 0;
    pthread_mutex_unlock(&pw->mu);
    const char *node = agent_node_id(pw->agent);
    while (m != NULL) {
        struct outmsg *next = m->next;
        if (!pw->is_open || node == NULL) {
            json_decref(m->params);
        } else {
            if (m->node == NODE_FIRST)
                json_array_insert_new(m->params, 0, json_string(node));
            else if (m->node == NODE_IN_OBJECT)
                json_object_set_new(json_array_get(m->params, 0), "node",
                                    json_string(node));
            if (m->is_request)
                agent_request(pw->agent, m->method, m->params, 0, NULL, NULL,
                              now_ms);
            else
                agent_notify(pw->agent, m->method, m->params);
        }
        cp_free(m);
        m = next;
    }
}

static void flush_logs(struct podworker *pw)
{
    for (int i = 0; i < 20; i++) {
        pthread_mutex_lock(&pw->mu);
        json_t *batch = logship_queue_take(&pw->logq, LOGSHIP_BATCH_LINES);
        uint64_t dropped = logship_queue_take_dropped(&pw->logq);
        pw->is_log_batch_ready = pw->logq.n >= LOGSHIP_BATCH_LINES;
        pthread_mutex_unlock(&pw->mu);
        if (dropped > 0)
            cp_warn("pods: dropped %llu log lines (the master is slow or "
                    "away; %u bytes are kept)",
                    (unsigned long long)dropped, LOGSHIP_QUEUE_BYTES);
        if (batch == NULL)
            return;
        size_t n = json_array_size(batch);
        if (agent_notify(pw->agent, PROTO_M_CONTAINERS_LOG_BATCH,
                         json_pack("[o]", batch)) != 0)
            cp_warn("pods: dropped %zu log lines: the send failed", n);
    }
}

void podworker_tick(struct podworker *pw, int64_t now_ms)
{
    if (pw->is_open && pw->next_pull_ms != 0 && now_ms >= pw->next_pull_ms)
        pull(pw, now_ms);
    drain_outbox(pw, now_ms);
    bool is_ready;
    pthread_mutex_lock(&pw->mu);
    is_ready = pw->is_log_batch_ready;
    pthread_mutex_unlock(&pw->mu);
    if (pw->is_open && (is_ready || now_ms >= pw->next_flush_ms)) {
        flush_logs(pw);
        pw->next_flush_ms = now_ms + PODW_LOG_FLUSH_MS;
    }
}

void podworker_restart(struct podworker *pw, const char *service_id,
                       int instance_number)
{
    pthread_mutex_lock(&pw->mu);
    pw->restarts =
        cp_realloc(pw->restarts, (pw->nrestarts + 1) * sizeof(*pw->restarts));
    struct restart *r = &pw->restarts[pw->nrestarts++];
    memset(r, 0, sizeof(*r));
    r->service_id = cp_strdup(service_id);
    r->instance_number = instance_number;
    kick_locked(pw);
    pthread_mutex_unlock(&pw->mu);
}

void podworker_notify(struct podworker *pw, const char *reason)
{
    cp_debug("pods: pull requested (%s)", reason != NULL ? reason : "-");
    pull(pw, cp_mono_ms());
}

static void start_threads(struct podworker *pw)
{
    if (pthread_create(&pw->worker_th, NULL, worker_main, pw) != 0 ||
        pthread_create(&pw->prober_th, NULL, prober_main, pw) != 0 ||
        pthread_create(&pw->events_th, NULL, events_main, pw) != 0)
        cp_panic("pods: cannot start the pod worker threads");
    pw->is_started = true;
}

void podworker_on_open(struct podworker *pw, int64_t now_ms)
{
    pw->is_open = true;
    pthread_mutex_lock(&pw->mu);
    pw->wants_sync = pw->wants_resend = true;
    pthread_cond_signal(&pw->cv);
    pthread_mutex_unlock(&pw->mu);
    if (!pw->is_started)
        start_threads(pw);
    pw->next_flush_ms = now_ms + PODW_LOG_FLUSH_MS;
    pull(pw, now_ms);
}

void podworker_on_close(struct podworker *pw)
{
    pw->is_open = false;
}

struct podworker *podworker_new(const struct podworker_options *opt,
                                struct agent *a)
{
    struct podworker *pw = cp_calloc(1, sizeof(*pw));
    pw->socket_path = cp_strdup(opt->socket_path);
    pw->pull_interval_ms = opt->pull_interval_ms > 0 ? opt->pull_interval_ms
                                                     : PODW_PULL_INTERVAL_MS;
    pw->stats_interval_ms = opt->stats_interval_ms == 0
                                ? PODW_STATS_INTERVAL_MS
                                : opt->stats_interval_ms;
    pw->wake = opt->wake;
    pw->wake_ctx = opt->wake_ctx;
    pw->agent = a;
    pw->hook_timeout_s = hooks_timeout_s(getenv(HOOKS_TIMEOUT_ENV));
    pthread_mutex_init(&pw->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&pw->cv, &ca);
    pthread_cond_init(&pw->pcv, &ca);
    pthread_condattr_destroy(&ca);
    logship_queue_init(&pw->logq, LOGSHIP_QUEUE_BYTES);
    pods_state_init(&pw->state);
    return pw;
}

void podworker_free(struct podworker *pw)
{
    if (pw == NULL)
        return;
    if (pw->is_started) {
        pthread_mutex_lock(&pw->mu);
        pw->is_stopping = true;
        pw->stop_flag = 1;
        pthread_cond_broadcast(&pw->cv);
        pthread_cond_broadcast(&pw->pcv);
        pthread_mutex_unlock(&pw->mu);
        pthread_join(pw->worker_th, NULL);
        pthread_join(pw->prober_th, NULL);
        pthread_join(pw->events_th, NULL);
    }
    logs_cancel(pw, NULL);
    while (pw->logs != NULL) {
        struct logstream *ls = pw->logs;
        pw->logs = ls->next;
        logstream_free(ls);
    }
    while (pw->out_head != NULL) {
        struct outmsg *m = pw->out_head;
        pw->out_head = m->next;
        json_decref(m->params);
        cp_free(m);
    }
    while (pw->probes != NULL) {
        struct probe *p = pw->probes;
        pw->probes = p->next;
        probe_free(p);
    }
    for (size_t i = 0; i < pw->nrestarts; i++)
        restart_release(&pw->restarts[i]);
    cp_free(pw->restarts);
    for (size_t i = 0; i < pw->nmemo; i++) {
        cp_free(pw->memo[i].key);
        cp_free(pw->memo[i].rev);
        cp_free(pw->memo[i].state);
        cp_free(pw->memo[i].error);
        cp_free(pw->memo[i].max_rev);
    }
    cp_free(pw->memo);
    for (size_t i = 0; i < pw->npulled; i++)
        cp_free(pw->pulled[i]);
    cp_free(pw->pulled);
    for (size_t i = 0; i < pw->nfailures; i++) {
        cp_free(pw->failures[i].image);
        cp_free(pw->failures[i].error);
    }
    cp_free(pw->failures);
    list_unref(pw->desired);
    pods_state_release(&pw->state);
    while (pw->nhookmarks > 0)
        hookmark_forget(pw, pw->hookmarks[0].name);
    cp_free(pw->hookmarks);
    logship_queue_release(&pw->logq);
    pthread_cond_destroy(&pw->cv);
    pthread_cond_destroy(&pw->pcv);
    pthread_mutex_destroy(&pw->mu);
    cp_free(pw->socket_path);
    cp_free(pw);
}
