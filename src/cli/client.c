/* The CLI's HTTP client (see client.h). One libcurl easy handle per
 * request keeps the code simple; the CLI makes a handful of calls per run.
 * SPDX-License-Identifier: Apache-2.0 */
#include "client.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/util.h"
#include "../common/version.h"

#include <ctype.h>
#include <curl/curl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CLIENT_CONNECT_TIMEOUT_S 10L
#define CLIENT_TIMEOUT_S 300L

struct client {
    struct config *cfg; /* NULL: refreshes are not persisted */
    struct config_server *srv;
    char *token; /* owned copy of the token in use */
    bool is_anonymous;
    bool is_auth_error;
    long status;
    char err[512];
};

/* One HTTP exchange's answer. */
struct reply {
    long status;
    struct cp_buf body;
    bool is_toobig;
};

static bool curl_ready;

static void setf(struct client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void setf(struct client *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof(c->err), fmt, ap);
    va_end(ap);
}

struct client *client_new(struct config *cfg, struct config_server *srv,
                          const char *token)
{
    if (!curl_ready) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        curl_ready = true;
    }
    struct client *c = cp_calloc(1, sizeof(*c));
    c->cfg = cfg;
    c->srv = srv;
    if (token == NULL && cfg != NULL)
        token = config_token(cfg, srv);
    if (token == NULL)
        token = srv->token;
    config_set_str(&c->token, token);
    return c;
}

void client_free(struct client *c)
{
    if (c == NULL)
        return;
    cp_free(c->token);
    cp_free(c);
}

const char *client_error(const struct client *c)
{
    return c->err;
}

long client_status(const struct client *c)
{
    return c->status;
}

bool client_is_auth_error(const struct client *c)
{
    return c->is_auth_error;
}

void client_set_anonymous(struct client *c, bool is_anonymous)
{
    c->is_anonymous = is_anonymous;
}

char *client_escape(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *out = cp_malloc(n * 3 + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (isalnum(ch) || strchr("-._~@", ch) != NULL) {
            out[o++] = (char)ch;
        } else {
            out[o++] = '%';
            out[o++] = hex[ch >> 4];
            out[o++] = hex[ch & 15];
        }
    }
    out[o] = '\0';
    return out;
}

/* Lower-cases a leading capital of a sentence ("Not found") but leaves
 * acronyms ("TLS error") alone, for rule 17's lower-case errors. */
static char *lower_first(const char *s)
{
    char *out = cp_strdup(s);
    if (isupper((unsigned char)out[0]) &&
        (out[1] == '\0' || !isupper((unsigned char)out[1])))
        out[0] = (char)tolower((unsigned char)out[0]);
    return out;
}

char *client_error_text(const json_t *body)
{
    if (!json_is_object(body))
        return NULL;
    json_t *e = json_object_get(body, "error");
    if (json_is_string(e)) {
        const char *desc = cp_json_str(body, "error_description");
        if (desc != NULL && *desc != '\0')
            return lower_first(desc);
        return lower_first(json_string_value(e));
    }
    if (json_is_object(e)) {
        struct cp_buf b;
        cp_buf_init(&b, 64 * 1024);
        const char *k;
        json_t *v;
        json_object_foreach(e, k, v)
        {
            char *val = json_is_string(v) ? cp_strdup(json_string_value(v))
                                          : cp_json_dump(v);
            cp_buf_printf(&b, "%s%s: %s", b.len > 0 ? "; " : "", k, val);
            cp_free(val);
        }
        char *out = b.data != NULL ? cp_strdup(b.data) : NULL;
        cp_buf_release(&b);
        return out;
    }
    const char *msg = cp_json_str(body, "message");
    if (msg != NULL)
        return lower_first(msg);
    return NULL;
}

/* ==== Transport ==== */

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct reply *r = ud;
    size_t n = size * nmemb;
    if (cp_buf_append(&r->body, ptr, n) != 0) {
        r->is_toobig = true;
        return 0;
    }
    return n;
}

/* Adds ~/.kontena/certs/<host>.pem as the CA when it exists, as the Ruby
 * CLI does for self-signed masters. */
static void set_ca(CURL *h, const char *url)
{
    const char *home = getenv("HOME");
    CURLU *u = curl_url();
    char *host = NULL;
    if (home == NULL || u == NULL)
        goto out;
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK)
        goto out;
    if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
        goto out;
    char *pem = cp_asprintf("%s/.kontena/certs/%s.pem", home, host);
    if (access(pem, R_OK) == 0)
        curl_easy_setopt(h, CURLOPT_CAINFO, pem);
    cp_free(pem);
out:
    curl_free(host);
    curl_url_cleanup(u);
}

/* Performs one exchange; returns 0 with r filled, or CP_EIO. */
static int perform(struct client *c, const char *method, const char *url,
                   const char *body, const char *token, struct reply *r)
{
    char errbuf[CURL_ERROR_SIZE] = "";
    struct curl_slist *hdrs = NULL;
    char *ua = cp_asprintf("User-Agent: kontena-cli/%s", KONTENA_VERSION);
    char *auth =
        token != NULL ? cp_asprintf("Authorization: Bearer %s", token) : NULL;
    int rc = 0;
    CURL *h = curl_easy_init();
    if (h == NULL) {
        setf(c, "cannot initialise libcurl");
        rc = CP_EIO;
        goto out;
    }
    hdrs = curl_slist_append(hdrs, ua);
    hdrs = curl_slist_append(hdrs, "Accept: application/json");
    hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    hdrs = curl_slist_append(hdrs, "Expect:");
    if (auth != NULL)
        hdrs = curl_slist_append(hdrs, auth);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    if (body != NULL) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    } else if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    }
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, CLIENT_CONNECT_TIMEOUT_S);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, CLIENT_TIMEOUT_S);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    const char *ignore = getenv("SSL_IGNORE_ERRORS");
    if (ignore != NULL && strcmp(ignore, "true") == 0) {
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    } else {
        set_ca(h, url);
    }

    CURLcode cc = curl_easy_perform(h);
    if (r->is_toobig) {
        setf(c, "response from %s is bigger than %d MiB", url,
             CLIENT_MAX_BODY / (1024 * 1024));
        rc = CP_EPROTO;
        goto out;
    }
    if (cc == CURLE_OPERATION_TIMEDOUT) {
        setf(c, "request to %s timed out", url);
        rc = CP_EIO;
        goto out;
    }
    if (cc != CURLE_OK) {
        const char *why = errbuf[0] != '\0' ? errbuf : curl_easy_strerror(cc);
        char *low = lower_first(why);
        setf(c, "cannot connect to %s: %s", url, low);
        cp_free(low);
        rc = CP_EIO;
        goto out;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
out:
    curl_easy_cleanup(h);
    curl_slist_free_all(hdrs);
    cp_free(auth);
    cp_free(ua);
    return rc;
}

static char *join_url(const char *base, const char *path)
{
    size_t n = strlen(base);
    while (n > 0 && base[n - 1] == '/')
        n--;
    return cp_asprintf("%.*s%s", (int)n, base, path);
}

/* One request with the current token. Fills *out on 2xx. */
static int exchange(struct client *c, const char *method, const char *path,
                    const char *body, json_t **out)
{
    struct reply r = {0};
    cp_buf_init(&r.body, CLIENT_MAX_BODY);
    char *url = join_url(c->srv->url, path);
    json_t *j = NULL;
    c->status = 0;
    int rc =
        perform(c, method, url, body, c->is_anonymous ? NULL : c->token, &r);
    if (rc != 0)
        goto out;
    c->status = r.status;
    if (r.body.len > 0) {
        char why[160];
        j = cp_json_parse(r.body.data, r.body.len, why, sizeof(why));
        if (j == NULL && r.status >= 200 && r.status < 300) {
            setf(c, "invalid json from %s: %s", url, why);
            rc = CP_EPROTO;
            goto out;
        }
    }
    if (r.status >= 200 && r.status < 300) {
        if (out != NULL) {
            *out = j != NULL ? j : json_null();
            j = NULL;
        }
        goto out;
    }
    char *text = client_error_text(j);
    const char *code = cp_json_str(j, "error");
    if (r.status == 401 || (r.status == 403 && code != NULL &&
                            strcmp(code, "invalid_token") == 0)) {
        c->is_auth_error = true;
        rc = CP_EPERM;
    } else if (r.status == 404) {
        rc = CP_ENOTFOUND;
    } else {
        rc = CP_EINVAL;
    }
    if (text != NULL)
        setf(c, "%s", text);
    else if (r.status == 404)
        setf(c, "not found");
    else
        setf(c, "master answered http %ld", r.status);
    cp_free(text);
out:
    json_decref(j);
    cp_free(url);
    cp_buf_release(&r.body);
    return rc;
}

/* ==== Token refresh ==== */

static bool can_refresh(const struct client *c)
{
    if (c->is_anonymous || c->srv->refresh_token == NULL)
        return false;
    if (c->cfg != NULL && config_token_from_env(c->cfg, c->srv))
        return false;
    return true;
}

/* POST /oauth2/token grant_type=refresh_token, then stores the new token
 * in the server entry and, when there is a config, on disk. */
static int refresh(struct client *c)
{
    json_t *req = json_pack("{s:s, s:s}", "grant_type", "refresh_token",
                            "refresh_token", c->srv->refresh_token);
    char *body = cp_json_dump(req);
    json_t *resp = NULL;
    bool was_anonymous = c->is_anonymous;
    c->is_anonymous = true;
    int rc = exchange(c, "POST", "/oauth2/token", body, &resp);
    c->is_anonymous = was_anonymous;
    if (rc != 0) {
        char why[sizeof(c->err)];
        snprintf(why, sizeof(why), "%s", c->err);
        setf(c, "token refresh failed: %s", why);
        /* No answer at all is a connection problem, not a bad login. */
        if (rc != CP_EIO) {
            c->is_auth_error = true;
            rc = CP_EPERM;
        }
        goto out;
    }
    const char *tok = cp_json_str(resp, "access_token");
    if (tok == NULL) {
        setf(c, "token refresh failed: no access_token in the answer");
        rc = CP_EPROTO;
        goto out;
    }
    config_set_str(&c->srv->token, tok);
    config_set_str(&c->token, tok);
    config_set_str(&c->srv->refresh_token, cp_json_str(resp, "refresh_token"));
    long long exp = cp_json_int(resp, "expires_in", 0);
    c->srv->token_expires_at = exp > 0 ? cp_now_ms() / 1000 + exp : 0;
    if (c->cfg != NULL) {
        char why[256];
        if (config_save(c->cfg, why, sizeof(why)) != 0)
            fprintf(stderr, "warning: cannot save the refreshed token: %s\n",
                    why);
    }
out:
    json_decref(resp);
    cp_free(body);
    json_decref(req);
    return rc;
}

int client_request(struct client *c, const char *method, const char *path,
                   const json_t *body, json_t **out)
{
    c->is_auth_error = false;
    c->err[0] = '\0';
    if (out != NULL)
        *out = NULL;
    char *text = body != NULL ? cp_json_dump(body) : NULL;
    int rc;
    bool is_refreshed = false;
    if (can_refresh(c) && c->srv->token_expires_at > 0 &&
        cp_now_ms() / 1000 >= c->srv->token_expires_at) {
        rc = refresh(c);
        if (rc != 0)
            goto out;
        is_refreshed = true;
    }
    rc = exchange(c, method, path, text, out);
    if (rc == CP_EPERM && c->status == 401 && !is_refreshed && can_refresh(c)) {
        rc = refresh(c);
        if (rc != 0)
            goto out;
        rc = exchange(c, method, path, text, out);
    }
out:
    cp_free(text);
    return rc;
}
