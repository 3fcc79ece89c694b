/* h2o on libuv. Every request is routed on the loop thread (cheap), the
 * login rate limit is applied there, and the call is then run by
 * api_run() on libuv's thread pool so that store round trips never stall
 * the loop. The answer is sent from the after-work callback, on the loop.
 *
 * A client that goes away while its call runs: h2o disposes the request's
 * pool, our dispose hook clears job->req, and the finished job is dropped.
 * SPDX-License-Identifier: Apache-2.0 */
#include "http.h"
#include "agents.h"
#include "api.h"
#include "ratelimit.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../common/util.h"
#include "../common/version.h"

#include <arpa/inet.h>
#include <h2o.h>
#include <h2o/websocket.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

struct http_server {
    struct master *m;
    h2o_globalconf_t config;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    uv_tcp_t listener;
    bool listening;
    int inflight; /* API jobs queued or running */
    struct stream *streams; /* live streamed answers (a list) */
    int nstreams;
    bool shutting_down;
    uv_timer_t drain_timer;
    int64_t drain_deadline;
    void (*drained)(void *ctx);
    void *drained_ctx;
};

struct handler {
    h2o_handler_t super;
    struct http_server *server;
};

struct job_ref {
    struct job *job;
};

/* One API call in flight between the loop and a worker. */
struct job {
    uv_work_t work;
    struct http_server *server;
    h2o_req_t *req; /* NULL once h2o disposed the request */
    struct job_ref *ref; /* in req's pool; valid while req is */
    const struct api_route *route;
    struct api_req in;
    struct api_res out;
    int64_t started_ms;
};


static const char *reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 422:
        return "Unprocessable Entity";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    default:
        return "OK";
    }
}

static char *dup_iov(h2o_iovec_t v)
{
    return cp_strndup(v.base, v.len);
}

static void log_request(h2o_req_t *req, int status, size_t len,
                        int64_t started_ms, const char *peer)
{
    if (cp_log_level > CP_LOG_INFO)
        return;
    size_t plen = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    /* The query string is left out: it may carry a refresh token. */
    cp_info("http %.*s %.*s %d %zu %lldms %s", (int)req->method.len,
            req->method.base, (int)plen, req->path.base, status, len,
            (long long)(cp_mono_ms() - started_ms), peer ? peer : "-");
}

/* Sends a complete answer; body is copied by h2o. */
static void send_answer(h2o_req_t *req, int status, const char *type,
                        const char *body, size_t len, const char *www_auth)
{
    req->res.status = status;
    req->res.reason = reason(status);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE,
                   NULL, type, strlen(type));
    h2o_add_header_by_str(&req->pool, &req->res.headers,
                          H2O_STRLIT("x-kontena-version"), 0, NULL,
                          H2O_STRLIT(KONTENA_VERSION));
    if (www_auth != NULL)
        h2o_add_header(&req->pool, &req->res.headers,
                       H2O_TOKEN_WWW_AUTHENTICATE, NULL, www_auth,
                       strlen(www_auth));
    req->res.content_length = len;
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD")))
        h2o_send_inline(req, "", 0);
    else
        h2o_send_inline(req, body, len);
}

static void send_error(h2o_req_t *req, int status, const char *msg,
                       int64_t started_ms, const char *peer)
{
    json_t *j = json_pack("{s:s}", "error", msg);
    char *body = cp_json_dump(j);
    json_decref(j);
    size_t len = strlen(body);
    send_answer(req, status, "application/json", body, len, NULL);
    log_request(req, status, len, started_ms, peer);
    cp_free(body);
}

static enum api_method parse_method(h2o_iovec_t m)
{
    static const struct {
        const char *name;
        enum api_method method;
    } methods[] = {
        {"GET", API_GET},       {"POST", API_POST},   {"PUT", API_PUT},
        {"DELETE", API_DELETE}, {"PATCH", API_PATCH}, {"HEAD", API_HEAD},
    };
    for (size_t i = 0; i < CP_ARRAY_LEN(methods); i++) {
        if (h2o_memis(m.base, m.len, methods[i].name,
                      strlen(methods[i].name)))
            return methods[i].method;
    }
    return 0;
}

static char *header(h2o_req_t *req, const h2o_token_t *token)
{
    ssize_t i = h2o_find_header(&req->headers, token, -1);
    return i < 0 ? NULL : dup_iov(req->headers.entries[i].value);
}

static char *peer_ip(h2o_req_t *req)
{
    struct sockaddr_storage ss;
    socklen_t len = req->conn->callbacks->get_peername(
        req->conn, (struct sockaddr *)&ss);
    char buf[INET6_ADDRSTRLEN] = "-";
    if (len > 0 && ss.ss_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, buf,
                  sizeof(buf));
    else if (len > 0 && ss.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, buf,
                  sizeof(buf));
    return cp_strdup(buf);
}

/* A header by name (for those h2o has no token for), or NULL. */
static char *header_named(h2o_req_t *req, const char *name)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, name, strlen(name), -1);
    return i < 0 ? NULL : dup_iov(req->headers.entries[i].value);
}

/* The client's address: the TCP peer, or what a trusted proxy forwarded
 * (KONTENA_TRUSTED_PROXIES; see proxy.h). */
char *http_client_ip(h2o_req_t *req, const struct proxy_list *proxies)
{
    char *peer = peer_ip(req);
    if (proxies->len == 0)
        return peer;
    /* Every X-Forwarded-For line, in order, as one list: a proxy may add
     * its own line instead of appending to the client's. */
    struct cp_buf all;
    cp_buf_init(&all, 8192); /* the header block is bounded anyway */
    ssize_t i = -1;
    while ((i = h2o_find_header_by_str(&req->headers,
                                       H2O_STRLIT("x-forwarded-for"), i)) !=
           -1) {
        h2o_iovec_t v = req->headers.entries[i].value;
        if (all.len > 0)
            cp_buf_append(&all, ", ", 2);
        cp_buf_append(&all, v.base, v.len);
    }
    char *xff = all.len > 0 ? cp_strndup(all.data, all.len) : NULL;
    cp_buf_release(&all);
    char *ip = proxy_client_ip(proxies, peer, xff);
    cp_free(xff);
    cp_free(peer);
    return ip;
}

/* "scheme://authority" as the client addressed us. */
static char *scheme_host(h2o_req_t *req, const struct proxy_list *proxies)
{
    const char *scheme = NULL;
    if (proxies->len > 0) {
        char *peer = peer_ip(req);
        char *xfp = header_named(req, "x-forwarded-proto");
        scheme = proxy_scheme(proxies, peer, xfp);
        cp_free(xfp);
        cp_free(peer);
    }
    if (scheme != NULL)
        return cp_asprintf("%s://%.*s", scheme, (int)req->authority.len,
                           req->authority.base);
    return cp_asprintf("%.*s://%.*s", (int)req->scheme->name.len,
                       req->scheme->name.base, (int)req->authority.len,
                       req->authority.base);
}

static void on_req_dispose(void *p)
{
    struct job_ref *ref = p;
    if (ref->job != NULL)
        ref->job->req = NULL;
}

/* ==== Streamed answers (struct api_stream; spec 3.3 follow) ====
 *
 * A stream is a chunked 200 response that h2o sends while the client
 * stays. At any time it does exactly one of: a poll on a worker thread
 * (master_queue), a send that h2o holds until it calls proceed, or a wait
 * on its timer (0.1 s after items, 0.5 s after a keep-alive space). The
 * store is never read on the loop.
 *
 * It ends when h2o disposes the request (client gone: on_stream_dispose),
 * when poll fails, or at shutdown (http_shutdown marks every stream
 * ending; the next step sends the final empty chunk). Its memory goes
 * when both the request is gone and no poll is running; the timer handle
 * is closed first. */

#define STREAM_IDLE_MS 500
#define STREAM_BUSY_MS 100
#define STREAM_MAX_CHUNK (32u * 1024 * 1024)

struct stream_ref {
    struct stream *st;
};

struct stream {
    h2o_generator_t gen; /* first: h2o hands it back to us */
    struct http_server *server;
    h2o_req_t *req;           /* NULL once h2o disposed the request */
    struct stream_ref *ref;   /* in req's pool */
    struct api_stream api;
    uv_timer_t timer;
    struct cp_buf next;    /* filled by poll on the worker */
    struct cp_buf sending; /* held by h2o until proceed */
    int polled;            /* poll's result */
    bool polling;
    bool ending;
    bool final_sent;
    struct stream *prev, *nxt;
    int64_t started_ms;
    size_t bytes;
    char *peer;
};

static void stream_poll(struct stream *st);

/* The path without its query (which may carry a token), for logs. */
static size_t path_len(const h2o_req_t *req)
{
    return req->query_at != SIZE_MAX ? req->query_at : req->path.len;
}

static void stream_timer_closed(uv_handle_t *h)
{
    struct stream *st = h->data;
    cp_buf_release(&st->next);
    cp_buf_release(&st->sending);
    cp_free(st->peer);
    cp_free(st);
}

/* Frees st once the request is gone and no poll runs. */
static void stream_maybe_free(struct stream *st)
{
    if (st->req != NULL || st->polling)
        return;
    struct http_server *s = st->server;
    if (st->prev != NULL)
        st->prev->nxt = st->nxt;
    else
        s->streams = st->nxt;
    if (st->nxt != NULL)
        st->nxt->prev = st->prev;
    s->nstreams--;
    st->api.free(st->api.ctx);
    uv_timer_stop(&st->timer);
    uv_close((uv_handle_t *)&st->timer, stream_timer_closed);
}

/* Hands the next chunk to h2o (a space when poll found nothing). */
static void stream_send(struct stream *st)
{
    h2o_req_t *req = st->req;
    if (st->ending) {
        st->final_sent = true;
        h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
        cp_info("http stream %.*s ended by the master after %zu bytes, "
                "%lldms %s",
                (int)path_len(req), req->path.base, st->bytes,
                (long long)(cp_mono_ms() - st->started_ms), st->peer);
        return;
    }
    cp_buf_release(&st->sending);
    st->sending = st->next;
    cp_buf_init(&st->next, STREAM_MAX_CHUNK);
    if (st->sending.len == 0)
        cp_buf_append(&st->sending, " ", 1);
    st->bytes += st->sending.len;
    h2o_iovec_t buf = h2o_iovec_init(st->sending.data, st->sending.len);
    h2o_send(req, &buf, 1, H2O_SEND_STATE_IN_PROGRESS);
}

static void stream_poll_work(void *ctx)
{
    struct stream *st = ctx;
    cp_buf_release(&st->next);
    cp_buf_init(&st->next, STREAM_MAX_CHUNK);
    st->polled = st->api.poll(st->api.ctx, &st->next);
}

static void stream_poll_done(void *ctx)
{
    struct stream *st = ctx;
    st->polling = false;
    if (st->req == NULL) {
        stream_maybe_free(st);
        return;
    }
    if (st->polled < 0) {
        cp_warn("http: stream %.*s ends: %s", (int)path_len(st->req),
                st->req->path.base, cp_strerror(st->polled));
        st->ending = true;
    }
    stream_send(st);
}

static void stream_poll(struct stream *st)
{
    st->polling = true;
    master_queue(st->server->m, stream_poll_work, stream_poll_done, st);
}

static void stream_on_timer(uv_timer_t *t)
{
    struct stream *st = t->data;
    if (st->req == NULL)
        return;
    if (st->ending)
        stream_send(st);
    else
        stream_poll(st);
}

static void stream_proceed(h2o_generator_t *gen, h2o_req_t *req)
{
    struct stream *st = (struct stream *)gen;
    CP_UNUSED(req);
    if (st->req == NULL || st->final_sent)
        return;
    uv_timer_start(&st->timer, stream_on_timer,
                   st->ending ? 0
                              : (st->polled > 0 ? STREAM_BUSY_MS
                                                : STREAM_IDLE_MS),
                   0);
}

static void stream_stop(h2o_generator_t *gen, h2o_req_t *req)
{
    /* The connection is going; the dispose hook that follows frees. */
    CP_UNUSED(gen);
    CP_UNUSED(req);
}

static void on_stream_dispose(void *p)
{
    struct stream_ref *ref = p;
    struct stream *st = ref->st;
    if (st == NULL)
        return;
    if (!st->final_sent)
        cp_info("http stream %.*s closed by the client after %zu bytes, "
                "%lldms %s",
                (int)path_len(st->req), st->req->path.base, st->bytes,
                (long long)(cp_mono_ms() - st->started_ms), st->peer);
    st->req = NULL;
    st->ref = NULL;
    stream_maybe_free(st);
}

/* Starts the stream of api on req (takes api). */
static void stream_start(struct http_server *s, h2o_req_t *req,
                         struct api_stream api, int64_t started_ms,
                         const char *peer)
{
    struct stream *st = cp_calloc(1, sizeof(*st));
    st->gen.proceed = stream_proceed;
    st->gen.stop = stream_stop;
    st->server = s;
    st->req = req;
    st->api = api;
    st->started_ms = started_ms;
    st->peer = cp_strdup(peer ? peer : "-");
    cp_buf_init(&st->next, STREAM_MAX_CHUNK);
    cp_buf_init(&st->sending, STREAM_MAX_CHUNK);
    uv_timer_init(s->m->loop, &st->timer);
    st->timer.data = st;
    st->ref = h2o_mem_alloc_shared(&req->pool, sizeof(*st->ref),
                                   on_stream_dispose);
    st->ref->st = st;
    st->nxt = s->streams;
    if (s->streams != NULL)
        s->streams->prev = st;
    s->streams = st;
    s->nstreams++;

    req->res.status = 200;
    req->res.reason = "OK";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE,
                   NULL, H2O_STRLIT("application/json"));
    h2o_add_header_by_str(&req->pool, &req->res.headers,
                          H2O_STRLIT("x-kontena-version"), 0, NULL,
                          H2O_STRLIT(KONTENA_VERSION));
    h2o_start_response(req, &st->gen);
    cp_info("http stream %.*s started %s", (int)path_len(req), req->path.base,
            st->peer);
    stream_poll(st);
}

/* Shutdown: every stream sends its final chunk at its next step. */
static void streams_end_all(struct http_server *s)
{
    s->shutting_down = true;
    for (struct stream *st = s->streams; st != NULL; st = st->nxt) {
        st->ending = true;
        if (st->req != NULL && !st->polling && !st->final_sent &&
            uv_is_active((uv_handle_t *)&st->timer)) {
            uv_timer_stop(&st->timer);
            stream_send(st);
        }
    }
}

/* ==== API calls on the worker pool ==== */

static void work_cb(uv_work_t *w)
{
    struct job *job = w->data;
    api_run(job->route, &job->in, &job->out);
}

static void after_work_cb(uv_work_t *w, int status)
{
    struct job *job = w->data;
    job->server->inflight--;
    h2o_req_t *req = job->req;
    struct api_res *r = &job->out;
    if (req != NULL && status == 0 && r->stream.poll != NULL &&
        r->status == 200 &&
        (job->server->shutting_down ||
         job->server->nstreams >= HTTP_MAX_STREAMS)) {
        cp_warn("http: %d streams already open, refusing another",
                job->server->nstreams);
        send_error(req, 503,
                   job->server->shutting_down
                       ? "master is shutting down"
                       : "too many followed streams, try again later",
                   job->started_ms, job->in.peer_ip);
    } else if (req != NULL && status == 0 && r->stream.poll != NULL &&
               r->status == 200) {
        struct api_stream api = r->stream;
        r->stream = (struct api_stream){0};
        stream_start(job->server, req, api, job->started_ms,
                     job->in.peer_ip);
    } else if (req != NULL && status == 0) {
        char *body = NULL;
        const char *type = "application/json";
        size_t len;
        if (r->raw != NULL) {
            type = r->raw_type;
            len = strlen(r->raw);
        } else {
            body = cp_json_dump(r->body ? r->body : json_object());
            len = strlen(body);
        }
        send_answer(req, r->status ? r->status : 200, type,
                    r->raw ? r->raw : body, len, r->www_authenticate);
        log_request(req, r->status, len, job->started_ms, job->in.peer_ip);
        cp_free(body);
    } else if (req == NULL) {
        cp_debug("http: client left before its answer was ready");
    }
    /* The request outlives this job when h2o is still sending: detach
     * the dispose hook so that it does not touch a freed job. */
    if (req != NULL && job->ref != NULL)
        job->ref->job = NULL;
    api_req_release(&job->in);
    api_res_release(&job->out);
    cp_free(job);
}

static bool header_block_too_big(h2o_req_t *req, size_t max)
{
    size_t total = req->method.len + req->path.len + 16;
    for (size_t i = 0; i != req->headers.size; i++)
        total += req->headers.entries[i].name->len +
                 req->headers.entries[i].value.len + 4;
    return total > max;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    struct http_server *s = ((struct handler *)self)->server;
    struct master *m = s->m;
    int64_t started = cp_mono_ms();
    char *peer = http_client_ip(req, &m->cfg.proxies);
    int status = 404;

    if (header_block_too_big(req, m->cfg.max_header)) {
        send_error(req, 431, "Request header fields too large", started,
                   peer);
        goto done;
    }
    /* Agents upgrade to a WebSocket on "/" (spec 4.1). */
    const char *ws_key = NULL;
    if (h2o_memis(req->path_normalized.base, req->path_normalized.len,
                  H2O_STRLIT("/")) &&
        h2o_is_websocket_handshake(req, &ws_key) == 0 && ws_key != NULL) {
        if (m->agents == NULL) {
            send_error(req, 503, "master is shutting down", started, peer);
            goto done;
        }
        cp_info("http: agent WebSocket upgrade from %s", peer);
        agents_upgrade(m->agents, req, ws_key);
        goto done;
    }
    if (req->entity.len > m->cfg.max_body) {
        send_error(req, 413, "Request body too large", started, peer);
        goto done;
    }
    enum api_method method = parse_method(req->method);
    char *params[API_MAX_PARAMS] = {0};
    char *path = dup_iov(req->path_normalized);
    const struct api_route *route =
        method ? api_match(method, path, params, &status) : NULL;
    if (route == NULL) {
        cp_free(path);
        send_error(req, method ? status : 405,
                   status == 405 || !method ? "Method not allowed"
                                            : "Not found",
                   started, peer);
        goto done;
    }
    if ((route->flags & API_LOGIN) &&
        (m->cfg.rate_limit_loopback || !ratelimit_is_loopback(peer)) &&
        !ratelimit_allow(m->login_limit, peer, cp_mono_ms())) {
        cp_warn("auth: login rate limit hit by %s", peer);
        for (int i = 0; i < API_MAX_PARAMS; i++)
            cp_free(params[i]);
        cp_free(path);
        send_error(req, 429, "too_many_requests", started, peer);
        goto done;
    }

    struct job *job = cp_calloc(1, sizeof(*job));
    job->work.data = job;
    job->server = s;
    job->req = req;
    job->route = route;
    job->started_ms = started;
    struct api_req *in = &job->in;
    in->m = m;
    in->method = method;
    in->path = path;
    memcpy(in->params, params, sizeof(params));
    if (req->query_at != SIZE_MAX)
        in->query = cp_strndup(req->path.base + req->query_at + 1,
                               req->path.len - req->query_at - 1);
    in->body = cp_strndup(req->entity.base ? req->entity.base : "",
                          req->entity.len);
    in->body_len = req->entity.len;
    in->authorization = header(req, H2O_TOKEN_AUTHORIZATION);
    in->content_type = header(req, H2O_TOKEN_CONTENT_TYPE);
    in->accept = header(req, H2O_TOKEN_ACCEPT);
    in->user_agent = header(req, H2O_TOKEN_USER_AGENT);
    in->peer_ip = peer;
    peer = NULL;
    in->scheme_host = scheme_host(req, &m->cfg.proxies);

    if ((route->flags & API_FAST_READ) && m->store_is_local) {
        api_run(route, &job->in, &job->out);
        s->inflight++;
        after_work_cb(&job->work, 0);
        goto done;
    }
    struct job_ref *ref =
        h2o_mem_alloc_shared(&req->pool, sizeof(*ref), on_req_dispose);
    ref->job = job;
    job->ref = ref;
    s->inflight++;
    uv_queue_work(m->loop, &job->work, work_cb, after_work_cb);
done:
    cp_free(peer);
    return 0;
}

static void on_accept(uv_stream_t *listener, int status)
{
    struct http_server *s = listener->data;
    if (status != 0)
        return;
    uv_tcp_t *conn = h2o_mem_alloc(sizeof(*conn));
    uv_tcp_init(listener->loop, conn);
    if (uv_accept(listener, (uv_stream_t *)conn) != 0) {
        uv_close((uv_handle_t *)conn, (uv_close_cb)free);
        return;
    }
    uv_tcp_nodelay(conn, 1);
    h2o_accept(&s->accept_ctx,
               h2o_uv_socket_create((uv_stream_t *)conn, (uv_close_cb)free));
}

struct http_server *http_start(struct master *m)
{
    struct http_server *s = cp_calloc(1, sizeof(*s));
    s->m = m;
    h2o_config_init(&s->config);
    s->config.server_name = h2o_iovec_init(H2O_STRLIT("kontena-master"));
    /* h2o refuses bigger bodies itself, in plain text; keep its limit
     * above ours so that a body just over our limit gets our JSON 413. */
    s->config.max_request_entity_size = m->cfg.max_body * 2;
    h2o_hostconf_t *host = h2o_config_register_host(
        &s->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    struct handler *h = (struct handler *)h2o_create_handler(path,
                                                             sizeof(*h));
    h->super.on_req = on_req;
    h->server = s;
    h2o_context_init(&s->ctx, m->loop, &s->config);
    s->accept_ctx.ctx = &s->ctx;
    s->accept_ctx.hosts = s->config.hosts;

    struct sockaddr_storage addr;
    int rc;
    if (strchr(m->cfg.bind, ':') != NULL)
        rc = uv_ip6_addr(m->cfg.bind, m->cfg.port,
                         (struct sockaddr_in6 *)&addr);
    else
        rc = uv_ip4_addr(m->cfg.bind, m->cfg.port,
                         (struct sockaddr_in *)&addr);
    if (rc != 0) {
        cp_error("http: bad listen address %s: %s", m->cfg.bind,
                 uv_strerror(rc));
        goto fail;
    }
    uv_tcp_init(m->loop, &s->listener);
    s->listener.data = s;
    rc = uv_tcp_bind(&s->listener, (struct sockaddr *)&addr, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&s->listener, 4096, on_accept);
    if (rc != 0) {
        cp_error("http: cannot listen on %s:%d: %s", m->cfg.bind,
                 m->cfg.port, uv_strerror(rc));
        uv_close((uv_handle_t *)&s->listener, NULL);
        goto fail;
    }
    s->listening = true;
    cp_info("http: listening on %s:%d", m->cfg.bind, m->cfg.port);
    return s;
fail:
    /* h2o 2.2 cannot dispose a context while keep-alive connections
     * remain and offers no way to close them, so its context is left to
     * the exit (tests/lsan.supp names these allocations). */
    cp_free(s);
    return NULL;
}

static void on_drain_tick(uv_timer_t *t)
{
    struct http_server *s = t->data;
    bool busy = s->inflight > 0 || s->m->jobs > 0;
    if (busy && cp_mono_ms() < s->drain_deadline)
        return;
    if (busy)
        cp_warn("http: %d calls and %d jobs still running at shutdown",
                s->inflight, s->m->jobs);
    uv_timer_stop(t);
    uv_close((uv_handle_t *)t, NULL);
    s->drained(s->drained_ctx);
}

void http_shutdown(struct http_server *s, int timeout_ms,
                   void (*done)(void *ctx), void *ctx)
{
    if (s->listening) {
        uv_close((uv_handle_t *)&s->listener, NULL);
        s->listening = false;
    }
    h2o_context_request_shutdown(&s->ctx);
    streams_end_all(s);
    s->drained = done;
    s->drained_ctx = ctx;
    s->drain_deadline = cp_mono_ms() + timeout_ms;
    uv_timer_init(s->m->loop, &s->drain_timer);
    s->drain_timer.data = s;
    uv_timer_start(&s->drain_timer, on_drain_tick, 0, 20);
}

void http_free(struct http_server *s)
{
    if (s == NULL)
        return;
    /* h2o 2.2 cannot dispose a context while keep-alive connections
     * remain and offers no way to close them, so its context is left to
     * the exit (tests/lsan.supp names these allocations). */
    cp_free(s);
}
