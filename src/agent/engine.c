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
