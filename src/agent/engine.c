/* Docker Engine API over a unix socket with one reused libcurl easy
 * handle. Bodies are collected into a bounded buffer; an engine that sends
 * more than ENGINE_MAX_BODY gets its transfer aborted.
 * SPDX-License-Identifier: Apache-2.0 */
#include "engine.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../common/util.h"

#include <assert.h>
#include <curl/curl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

struct engine {
    char *socket_path;
    CURL *curl; /* created on first use, reused for keep-alive */
};

struct engine *engine_new(const char *socket_path)
{
    static bool is_curl_ready;
    if (!is_curl_ready) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        is_curl_ready = true;
    }
    struct engine *e = cp_calloc(1, sizeof(*e));
    e->socket_path = cp_strdup(socket_path);
    return e;
}

void engine_free(struct engine *e)
{
    if (e == NULL)
        return;
    if (e->curl != NULL)
        curl_easy_cleanup(e->curl);
    cp_free(e->socket_path);
    cp_free(e);
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ctx)
{
    struct cp_buf *b = ctx;
    size_t n = size * nmemb;
    /* Returning less than n makes curl fail with CURLE_WRITE_ERROR. */
    return cp_buf_append(b, data, n) == 0 ? n : 0;
}

void engine_error_text(const char *body, size_t len, char *out, size_t outlen)
{
    if (outlen == 0)
        return;
    out[0] = '\0';
    if (body == NULL || len == 0)
        return;
    json_t *j = cp_json_parse(body, len, NULL, 0);
    const char *msg = j != NULL ? cp_json_str(j, "message") : NULL;
    if (msg != NULL) {
        snprintf(out, outlen, "%s", msg);
    } else {
        size_t line = strcspn(body, "\r\n");
        if (line > len)
            line = len;
        snprintf(out, outlen, "%.*s", (int)line, body);
    }
    json_decref(j);
}

static void setup(struct engine *e)
{
    if (e->curl == NULL)
        e->curl = curl_easy_init();
    else
        curl_easy_reset(e->curl);
    CURL *c = e->curl;
    curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, e->socket_path);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)ENGINE_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)ENGINE_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
}

int engine_get_json(struct engine *e, const char *path, json_t **out, char *err,
                    size_t errlen)
{
    assert(path[0] == '/');
    *out = NULL;
    int rc = 0;
    struct cp_buf body;
    cp_buf_init(&body, ENGINE_MAX_BODY);
    /* The host name is ignored over a unix socket; Docker wants one. */
    char *url = cp_asprintf("http://docker%s%s", ENGINE_API_PREFIX, path);
    setup(e);
    curl_easy_setopt(e->curl, CURLOPT_URL, url);
    curl_easy_setopt(e->curl, CURLOPT_WRITEDATA, &body);
    cp_trace(CP_TRACE_ENGINE, "engine: GET %s", url);
    CURLcode cc = curl_easy_perform(e->curl);
    if (cc == CURLE_WRITE_ERROR) {
        snprintf(err, errlen, "GET %s: response larger than %u bytes", path,
                 ENGINE_MAX_BODY);
        rc = CP_EPROTO;
        goto out;
    }
    if (cc != CURLE_OK) {
        snprintf(err, errlen, "GET %s via %s: %s", path, e->socket_path,
                 curl_easy_strerror(cc));
        rc = CP_EIO;
        goto out;
    }
    long status = 0;
    curl_easy_getinfo(e->curl, CURLINFO_RESPONSE_CODE, &status);
    if (status < 200 || status > 299) {
        char msg[256];
        engine_error_text(body.data, body.len, msg, sizeof(msg));
        snprintf(err, errlen, "GET %s: HTTP %ld: %s", path, status,
                 msg[0] != '\0' ? msg : "no message");
        rc = status == 404 ? CP_ENOTFOUND : status >= 500 ? CP_EIO : CP_EINVAL;
        goto out;
    }
    char why[160];
    *out = cp_json_parse(body.data != NULL ? body.data : "", body.len, why,
                         sizeof(why));
    if (*out == NULL) {
        snprintf(err, errlen, "GET %s: bad JSON: %s", path, why);
        rc = CP_EPROTO;
    }
out:
    cp_free(url);
    cp_buf_release(&body);
    return rc;
}

static int get_object(struct engine *e, const char *path, json_t **out,
                      char *err, size_t errlen)
{
    int rc = engine_get_json(e, path, out, err, errlen);
    if (rc == 0 && !json_is_object(*out)) {
        snprintf(err, errlen, "GET %s: expected a JSON object", path);
        json_decref(*out);
        *out = NULL;
        rc = CP_EPROTO;
    }
    return rc;
}

int engine_info(struct engine *e, json_t **out, char *err, size_t errlen)
{
    return get_object(e, "/info", out, err, errlen);
}

int engine_version(struct engine *e, json_t **out, char *err, size_t errlen)
{
    return get_object(e, "/version", out, err, errlen);
}

bool engine_is_podman(const json_t *version)
{
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(version, "Components"), i, c)
    {
        const char *name = cp_json_str(c, "Name");
        if (name != NULL && strstr(name, "Podman") != NULL)
            return true;
    }
    return false;
}

/* ==== Containers and images ==== */

/* One request: method, path (under ENGINE_API_PREFIX), optional JSON
 * body, HTTP timeout. Fills *status and the raw body. Returns 0 when the
 * engine answered at all (any status), else CP_EIO/CP_EPROTO with err
 * (CP_ETIMEDOUT when timeout_ms passed). */
/* One request; header (may be NULL) is one extra "Name: value" line. */
static int perform_with(struct engine *e, const char *method,
                        const char *path, const char *header,
                        const json_t *body, long timeout_ms, long *status,
                        struct cp_buf *resp, char *err, size_t errlen)
{
    int rc = 0;
    char *url = cp_asprintf("http://docker%s%s", ENGINE_API_PREFIX, path);
    char *payload = body != NULL ? cp_json_dump(body) : NULL;
    struct curl_slist *hdrs = NULL;
    setup(e);
    CURL *c = e->curl;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, resp);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (header != NULL)
        hdrs = curl_slist_append(hdrs, header);
    if (payload != NULL)
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    if (hdrs != NULL)
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    if (payload != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, payload);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(payload));
    } else if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
    }
    cp_trace(CP_TRACE_ENGINE, "engine: %s %s", method, url);
    CURLcode cc = curl_easy_perform(c);
    if (cc == CURLE_WRITE_ERROR) {
        snprintf(err, errlen, "%s %s: response larger than %u bytes", method,
                 path, ENGINE_MAX_BODY);
        rc = CP_EPROTO;
        goto out;
    }
    if (cc != CURLE_OK) {
        snprintf(err, errlen, "%s %s via %s: %s", method, path, e->socket_path,
                 curl_easy_strerror(cc));
        rc = cc == CURLE_OPERATION_TIMEDOUT ? CP_ETIMEDOUT : CP_EIO;
        goto out;
    }
    *status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
out:
    curl_slist_free_all(hdrs);
    cp_free(payload);
    cp_free(url);
    return rc;
}

static int perform(struct engine *e, const char *method, const char *path,
                   const json_t *body, long timeout_ms, long *status,
                   struct cp_buf *resp, char *err, size_t errlen)
{
    return perform_with(e, method, path, NULL, body, timeout_ms, status, resp,
                        err, errlen);
}

/* perform() plus status mapping and optional JSON parsing of the body.
 * ok_status (e.g. 304) also counts as success. */
static int call(struct engine *e, const char *method, const char *path,
                const json_t *body, long timeout_ms, long ok_status,
                json_t **out, char *err, size_t errlen)
{
    if (out != NULL)
        *out = NULL;
    long status = 0;
    struct cp_buf resp;
    cp_buf_init(&resp, ENGINE_MAX_BODY);
    int rc =
        perform(e, method, path, body, timeout_ms, &status, &resp, err, errlen);
    if (rc != 0)
        goto out;
    if ((status < 200 || status > 299) && status != ok_status) {
        char msg[256];
        engine_error_text(resp.data, resp.len, msg, sizeof(msg));
        snprintf(err, errlen, "%s %s: HTTP %ld: %s", method, path, status,
                 msg[0] != '\0' ? msg : "no message");
        rc = status == 404   ? CP_ENOTFOUND
             : status == 409 ? CP_ECONFLICT
             : status >= 500 ? CP_EIO
                             : CP_EINVAL;
        goto out;
    }
    if (out != NULL) {
        char why[160];
        *out = cp_json_parse(resp.data != NULL ? resp.data : "", resp.len, why,
                             sizeof(why));
        if (*out == NULL) {
            snprintf(err, errlen, "%s %s: bad JSON: %s", method, path, why);
            rc = CP_EPROTO;
        }
    }
out:
    cp_buf_release(&resp);
    return rc;
}

static char *escape(struct engine *e, const char *s)
{
    if (e->curl == NULL)
        e->curl = curl_easy_init();
    char *c = curl_easy_escape(e->curl, s, 0);
    char *r = cp_strdup(c != NULL ? c : "");
    curl_free(c);
    return r;
}

int engine_containers_list(struct engine *e, const char *label, json_t **out,
                           char *err, size_t errlen)
{
    char *path;
    if (label != NULL) {
        json_t *f = json_pack("{s:[s]}", "label", label);
        char *dump = cp_json_dump(f);
        char *q = escape(e, dump);
        path = cp_asprintf("/containers/json?all=1&filters=%s", q);
        cp_free(q);
        cp_free(dump);
        json_decref(f);
    } else {
        path = cp_asprintf("/containers/json?all=1");
    }
    int rc = call(e, "GET", path, NULL, ENGINE_TIMEOUT_MS, 0, out, err, errlen);
    if (rc == 0 && !json_is_array(*out)) {
        snprintf(err, errlen, "GET %s: expected a JSON array", path);
        json_decref(*out);
        *out = NULL;
        rc = CP_EPROTO;
    }
    cp_free(path);
    return rc;
}

int engine_container_inspect(struct engine *e, const char *id, json_t **out,
                             char *err, size_t errlen)
{
    char *path = cp_asprintf("/containers/%s/json", id);
    int rc = call(e, "GET", path, NULL, ENGINE_TIMEOUT_MS, 0, out, err, errlen);
    cp_free(path);
    return rc;
}

int engine_container_create(struct engine *e, const char *name,
                            const json_t *body, char **id_out, char *err,
                            size_t errlen)
{
    *id_out = NULL;
    char *q = escape(e, name);
    char *path = cp_asprintf("/containers/create?name=%s", q);
    json_t *resp = NULL;
    int rc =
        call(e, "POST", path, body, ENGINE_TIMEOUT_MS, 0, &resp, err, errlen);
    if (rc == 0) {
        const char *id = cp_json_str(resp, "Id");
        if (id == NULL) {
            snprintf(err, errlen, "POST %s: no Id in the answer", path);
            rc = CP_EPROTO;
        } else {
            *id_out = cp_strdup(id);
        }
    }
    json_decref(resp);
    cp_free(path);
    cp_free(q);
    return rc;
}

int engine_container_start(struct engine *e, const char *id, char *err,
                           size_t errlen)
{
    char *path = cp_asprintf("/containers/%s/start", id);
    int rc =
        call(e, "POST", path, NULL, ENGINE_TIMEOUT_MS, 304, NULL, err, errlen);
    cp_free(path);
    return rc;
}

int engine_container_stop(struct engine *e, const char *id, int timeout_s,
                          char *err, size_t errlen)
{
    char *path = timeout_s >= 0
                     ? cp_asprintf("/containers/%s/stop?t=%d", id, timeout_s)
                     : cp_asprintf("/containers/%s/stop", id);
    long ms =
        (long)(timeout_s >= 0 ? timeout_s : 10) * 1000 + ENGINE_TIMEOUT_MS;
    int rc = call(e, "POST", path, NULL, ms, 304, NULL, err, errlen);
    cp_free(path);
    return rc;
}

int engine_container_kill(struct engine *e, const char *id, const char *sig,
                          char *err, size_t errlen)
{
    char *path = cp_asprintf("/containers/%s/kill?signal=%s", id,
                             sig != NULL ? sig : "SIGKILL");
    int rc =
        call(e, "POST", path, NULL, ENGINE_TIMEOUT_MS, 0, NULL, err, errlen);
    cp_free(path);
    return rc;
}

int engine_container_remove(struct engine *e, const char *id, bool force,
                            char *err, size_t errlen)
{
    char *path =
        cp_asprintf("/containers/%s?v=1%s", id, force ? "&force=1" : "");
    int rc =
        call(e, "DELETE", path, NULL, ENGINE_TIMEOUT_MS, 0, NULL, err, errlen);
    cp_free(path);
    return rc;
}

int engine_container_wait(struct engine *e, const char *id, int timeout_ms,
                          int *status_code, char *err, size_t errlen)
{
    *status_code = -1;
    char *path = cp_asprintf("/containers/%s/wait", id);
    json_t *resp = NULL;
    int rc = call(e, "POST", path, NULL, timeout_ms, 0, &resp, err, errlen);
    if (rc == 0) {
        json_t *code = json_object_get(resp, "StatusCode");
        if (json_is_integer(code)) {
            *status_code = (int)json_integer_value(code);
        } else {
            snprintf(err, errlen, "POST %s: no StatusCode in the answer", path);
            rc = CP_EPROTO;
        }
    }
    json_decref(resp);
    cp_free(path);
    return rc;
}

int engine_exec(struct engine *e, const char *id, const json_t *argv,
                int timeout_ms, int *exit_code, char *err, size_t errlen)
{
    *exit_code = -1;
    char *path = cp_asprintf("/containers/%s/exec", id);
    json_t *body = json_pack("{s:O, s:b, s:b}", "Cmd", argv, "AttachStdout", 1,
                             "AttachStderr", 1);
    json_t *resp = NULL;
    char *exec_id = NULL;
    int rc =
        call(e, "POST", path, body, ENGINE_TIMEOUT_MS, 0, &resp, err, errlen);
    json_decref(body);
    cp_free(path);
    path = NULL;
    if (rc == 0) {
        if (cp_json_str(resp, "Id") == NULL) {
            snprintf(err, errlen, "exec in %s: no Id in the answer", id);
            rc = CP_EPROTO;
        } else {
            exec_id = cp_strdup(cp_json_str(resp, "Id"));
        }
    }
    json_decref(resp);
    resp = NULL;
    if (rc != 0)
        goto out;
    /* Detach false: the answer is the multiplexed output, and it ends
     * when the command does. The output is only drained (bounded by
     * ENGINE_MAX_BODY like every body); the exit code is what counts. */
    path = cp_asprintf("/exec/%s/start", exec_id);
    body = json_pack("{s:b, s:b}", "Detach", 0, "Tty", 0);
    rc = call(e, "POST", path, body, timeout_ms, 0, NULL, err, errlen);
    json_decref(body);
    cp_free(path);
    path = NULL;
    if (rc != 0)
        goto out;
    path = cp_asprintf("/exec/%s/json", exec_id);
    rc = call(e, "GET", path, NULL, ENGINE_TIMEOUT_MS, 0, &resp, err, errlen);
    if (rc == 0) {
        json_t *code = json_object_get(resp, "ExitCode");
        if (json_is_integer(code)) {
            *exit_code = (int)json_integer_value(code);
        } else {
            snprintf(err, errlen, "GET %s: no ExitCode in the answer", path);
            rc = CP_EPROTO;
        }
    }
    json_decref(resp);
out:
    cp_free(path);
    cp_free(exec_id);
    return rc;
}

int engine_container_stats(struct engine *e, const char *id, json_t **out,
                           char *err, size_t errlen)
{
    char *path = cp_asprintf("/containers/%s/stats?stream=false", id);
    int rc = call(e, "GET", path, NULL, ENGINE_TIMEOUT_MS, 0, out, err, errlen);
    cp_free(path);
    return rc;
}

int engine_image_inspect(struct engine *e, const char *ref, json_t **out,
                         char *err, size_t errlen)
{
    char *path = cp_asprintf("/images/%s/json", ref);
    json_t *j = NULL;
    int rc = call(e, "GET", path, NULL, ENGINE_TIMEOUT_MS, 0, &j, err, errlen);
    if (out != NULL)
        *out = j;
    else
        json_decref(j);
    cp_free(path);
    return rc;
}

bool engine_pull_error(const char *body, size_t len, char *out, size_t outlen)
{
    size_t pos = 0;
    while (pos < len) {
        size_t end = pos;
        while (end < len && body[end] != '\n')
            end++;
        json_t *j = cp_json_parse(body + pos, end - pos, NULL, 0);
        const char *msg =
            cp_json_str(json_object_get(j, "errorDetail"), "message");
        if (msg == NULL)
            msg = cp_json_str(j, "error");
        if (msg != NULL) {
            snprintf(out, outlen, "%s", msg);
            json_decref(j);
            return true;
        }
        json_decref(j);
        pos = end + 1;
    }
    return false;
}

char *engine_registry_auth(const char *username, const char *password,
                           const char *email, const char *serveraddress)
{
    json_t *j = json_object();
    if (username != NULL)
        cp_json_set_str(j, "username", username);
    if (password != NULL)
        cp_json_set_str(j, "password", password);
    if (email != NULL)
        cp_json_set_str(j, "email", email);
    if (serveraddress != NULL)
        cp_json_set_str(j, "serveraddress", serveraddress);
    char *text = cp_json_dump(j);
    json_decref(j);
    /* Docker decodes it with Go's base64.URLEncoding: the URL alphabet,
     * padded. */
    char *b64 = cp_base64_encode(text, strlen(text));
    for (char *p = b64; *p != '\0'; p++) {
        if (*p == '+')
            *p = '-';
        else if (*p == '/')
            *p = '_';
    }
    memset(text, 0, strlen(text));
    cp_free(text);
    return b64;
}

int engine_image_pull(struct engine *e, const char *ref, const char *auth,
                      char *err, size_t errlen)
{
    /* Split "repo:tag" (a ':' after the last '/'; "host:5000/x" has none). */
    char *name = cp_strdup(ref);
    char *slash = strrchr(name, '/');
    char *colon = strrchr(slash != NULL ? slash : name, ':');
    char *at = strchr(name, '@');
    const char *tag = "latest";
    if (at == NULL && colon != NULL) {
        *colon = '\0';
        tag = colon + 1;
    }
    char *qn = escape(e, name);
    char *qt = escape(e, tag);
    char *path =
        at != NULL ? cp_asprintf("/images/create?fromImage=%s", qn)
                   : cp_asprintf("/images/create?fromImage=%s&tag=%s", qn, qt);
    long status = 0;
    struct cp_buf resp;
    cp_buf_init(&resp, ENGINE_MAX_BODY);
    char *header =
        auth != NULL ? cp_asprintf("X-Registry-Auth: %s", auth) : NULL;
    int rc = perform_with(e, "POST", path, header, NULL, ENGINE_PULL_TIMEOUT_MS,
                          &status, &resp, err, errlen);
    if (header != NULL) {
        memset(header, 0, strlen(header));
        cp_free(header);
    }
    if (rc != 0)
        goto out;
    char msg[256];
    if (status < 200 || status > 299) {
        engine_error_text(resp.data, resp.len, msg, sizeof(msg));
        snprintf(err, errlen, "HTTP %ld: %s", status,
                 msg[0] != '\0' ? msg : "no message");
        rc = status == 404 ? CP_ENOTFOUND : CP_EIO;
    } else if (engine_pull_error(resp.data, resp.len, msg, sizeof(msg))) {
        snprintf(err, errlen, "%s", msg);
        rc = CP_EIO;
    }
out:
    cp_buf_release(&resp);
    cp_free(path);
    cp_free(qt);
    cp_free(qn);
    cp_free(name);
    return rc;
}

/* ==== Streams ==== */

struct stream_ctx {
    engine_chunk_fn *fn;
    void *ctx;
    const volatile int *cancel;
    bool is_stopped;
    long status;
    struct cp_buf errbody; /* the body of a non-2xx answer */
    CURL *curl;
};

static size_t on_stream(char *data, size_t size, size_t nmemb, void *ctx)
{
    struct stream_ctx *s = ctx;
    size_t n = size * nmemb;
    if (s->status == 0)
        curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &s->status);
    if (s->status < 200 || s->status > 299) {
        cp_buf_append(&s->errbody, data, n);
        return n;
    }
    if (s->fn(s->ctx, data, n) != 0) {
        s->is_stopped = true;
        return 0;
    }
    return n;
}

static int on_progress(void *ctx, curl_off_t dt, curl_off_t dn, curl_off_t ut,
                       curl_off_t un)
{
    CP_UNUSED(dt);
    CP_UNUSED(dn);
    CP_UNUSED(ut);
    CP_UNUSED(un);
    struct stream_ctx *s = ctx;
    if (s->cancel != NULL && *s->cancel) {
        s->is_stopped = true;
        return 1;
    }
    return 0;
}

int engine_stream(struct engine *e, const char *path, engine_chunk_fn *fn,
                  void *ctx, const volatile int *cancel, char *err,
                  size_t errlen)
{
    int rc = 0;
    char *url = cp_asprintf("http://docker%s%s", ENGINE_API_PREFIX, path);
    struct stream_ctx s = {.fn = fn, .ctx = ctx, .cancel = cancel};
    cp_buf_init(&s.errbody, 64 * 1024);
    setup(e);
    CURL *c = e->curl;
    s.curl = c;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 0L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_stream);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &s);
    cp_trace(CP_TRACE_ENGINE, "engine: stream GET %s", url);
    CURLcode cc = curl_easy_perform(c);
    if (s.is_stopped)
        goto out;
    if (cc != CURLE_OK) {
        snprintf(err, errlen, "GET %s via %s: %s", path, e->socket_path,
                 curl_easy_strerror(cc));
        rc = CP_EIO;
        goto out;
    }
    if (s.status == 0)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &s.status);
    if (s.status < 200 || s.status > 299) {
        char msg[256];
        engine_error_text(s.errbody.data, s.errbody.len, msg, sizeof(msg));
        snprintf(err, errlen, "GET %s: HTTP %ld: %s", path, s.status,
                 msg[0] != '\0' ? msg : "no message");
        rc = s.status == 404   ? CP_ENOTFOUND
             : s.status >= 500 ? CP_EIO
                               : CP_EINVAL;
    }
out:
    cp_buf_release(&s.errbody);
    cp_free(url);
    return rc;
}
