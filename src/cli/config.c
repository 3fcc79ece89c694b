/* ~/.kontena_client.json: load, migrate, query, save (see config.h).
 * Adding a server field: also update server_from_json() and
 * server_to_json().
 * SPDX-License-Identifier: Apache-2.0 */
#include "config.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The file is small; anything bigger is not ours. */
#define CONFIG_MAX_BYTES (4 * 1024 * 1024)

void config_set_str(char **field, const char *s)
{
    char *copy = s != NULL ? cp_strdup(s) : NULL;
    cp_free(*field);
    *field = copy;
}

struct config_server *config_server_new(const char *name, const char *url)
{
    struct config_server *srv = cp_calloc(1, sizeof(*srv));
    config_set_str(&srv->name, name);
    config_set_str(&srv->url, url);
    srv->extra = json_object();
    return srv;
}

void config_server_free(struct config_server *srv)
{
    if (srv == NULL)
        return;
    cp_free(srv->name);
    cp_free(srv->url);
    cp_free(srv->token);
    cp_free(srv->refresh_token);
    cp_free(srv->username);
    cp_free(srv->grid);
    json_decref(srv->extra);
    cp_free(srv);
}

struct config *config_new(const char *path)
{
    struct config *cfg = cp_calloc(1, sizeof(*cfg));
    config_set_str(&cfg->path, path);
    cfg->rest = json_object();
    return cfg;
}

static void clear_file_state(struct config *cfg)
{
    for (size_t i = 0; i < cfg->nservers; i++)
        config_server_free(cfg->servers[i]);
    cp_free(cfg->servers);
    cfg->servers = NULL;
    cfg->nservers = 0;
    config_set_str(&cfg->current_server, NULL);
    json_decref(cfg->rest);
    cfg->rest = json_object();
    cfg->is_migrated = false;
}

void config_free(struct config *cfg)
{
    if (cfg == NULL)
        return;
    clear_file_state(cfg);
    json_decref(cfg->rest);
    cp_free(cfg->path);
    cp_free(cfg->env_master);
    cp_free(cfg->env_grid);
    cp_free(cfg->env_token);
    cp_free(cfg);
}

char *config_default_path(void)
{
    const char *p = getenv("KONTENA_CONFIG");
    if (p != NULL && *p != '\0')
        return cp_strdup(p);
    const char *home = getenv("HOME");
    if (home == NULL || *home == '\0')
        home = ".";
    return cp_asprintf("%s/.kontena_client.json", home);
}

/* ==== Parsing ==== */

static char *dup_member(const json_t *obj, const char *key)
{
    const char *s = cp_json_str(obj, key);
    return s != NULL ? cp_strdup(s) : NULL;
}

/* token_expires_at is epoch seconds in the Ruby CLI; accept an ISO time
 * too, since hand-edited files have carried both. */
static int64_t expires_from_json(const json_t *v)
{
    if (json_is_integer(v))
        return (int64_t)json_integer_value(v);
    if (json_is_real(v))
        return (int64_t)json_real_value(v);
    int64_t ms;
    if (json_is_string(v) && cp_time_parse_iso(json_string_value(v), &ms) == 0)
        return ms / 1000;
    return 0;
}

static struct config_server *server_from_json(json_t *obj)
{
    struct config_server *srv = config_server_new(NULL, NULL);
    srv->name = dup_member(obj, "name");
    srv->url = dup_member(obj, "url");
    srv->token = dup_member(obj, "token");
    srv->refresh_token = dup_member(obj, "refresh_token");
    srv->username = dup_member(obj, "username");
    if (srv->username == NULL)
        srv->username = dup_member(obj, "email");
    srv->grid = dup_member(obj, "grid");
    srv->token_expires_at =
        expires_from_json(json_object_get(obj, "token_expires_at"));
    static const char *const known[] = {
        "name",     "url",   "token", "refresh_token",
        "username", "email", "grid",  "token_expires_at"};
    json_object_update(srv->extra, obj);
    for (size_t i = 0; i < CP_ARRAY_LEN(known); i++)
        json_object_del(srv->extra, known[i]);
    return srv;
}

static void append_server(struct config *cfg, struct config_server *srv)
{
    cfg->servers =
        cp_realloc(cfg->servers, (cfg->nservers + 1) * sizeof(*cfg->servers));
    cfg->servers[cfg->nservers++] = srv;
}

int config_load_text(struct config *cfg, const char *text, size_t len,
                     char *err, size_t errlen)
{
    char why[160];
    clear_file_state(cfg);
    if (len == 0)
        return 0;
    json_t *root = cp_json_parse(text, len, why, sizeof(why));
    if (root == NULL) {
        snprintf(err, errlen, "invalid json: %s", why);
        return CP_EINVAL;
    }
    int rc = 0;
    if (!json_is_object(root)) {
        snprintf(err, errlen, "not a json object");
        rc = CP_EINVAL;
        goto out;
    }
    cfg->current_server = dup_member(root, "current_server");
    json_t *servers = json_object_get(root, "servers");
    size_t i;
    json_t *v;
    json_array_foreach(servers, i, v)
    {
        if (!json_is_object(v) || cp_json_str(v, "name") == NULL)
            continue;
        struct config_server *srv = server_from_json(v);
        config_put_server(cfg, srv);
    }

    /* The pre-1.0 layout kept one master under "server". */
    json_t *legacy = json_object_get(root, "server");
    if (json_is_object(legacy)) {
        struct config_server *srv = server_from_json(legacy);
        if (srv->name == NULL)
            config_set_str(&srv->name, "default");
        if (config_find(cfg, srv->name) == NULL) {
            if (cfg->current_server == NULL)
                config_set_str(&cfg->current_server, srv->name);
            append_server(cfg, srv);
        } else {
            config_server_free(srv);
        }
        cfg->is_migrated = true;
    } else if (legacy != NULL) {
        cfg->is_migrated = true;
    }

    json_object_update(cfg->rest, root);
    json_object_del(cfg->rest, "current_server");
    json_object_del(cfg->rest, "servers");
    json_object_del(cfg->rest, "server");
out:
    json_decref(root);
    if (rc != 0)
        clear_file_state(cfg);
    return rc;
}

int config_load(struct config *cfg, char *err, size_t errlen)
{
    struct cp_buf b;
    cp_buf_init(&b, CONFIG_MAX_BYTES);
    int rc = 0;
    FILE *f = fopen(cfg->path, "r");
    if (f == NULL) {
        if (errno == ENOENT) {
            clear_file_state(cfg);
            return 0;
        }
        snprintf(err, errlen, "%s: %s", cfg->path, strerror(errno));
        return CP_EIO;
    }
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (cp_buf_append(&b, chunk, n) != 0) {
            snprintf(err, errlen, "%s: file is too big", cfg->path);
            rc = CP_EINVAL;
            goto out;
        }
    }
    if (ferror(f)) {
        snprintf(err, errlen, "%s: read error", cfg->path);
        rc = CP_EIO;
        goto out;
    }
    char why[200];
    rc = config_load_text(cfg, b.data != NULL ? b.data : "", b.len, why,
                          sizeof(why));
    if (rc != 0)
        snprintf(err, errlen, "%s: %s", cfg->path, why);
out:
    fclose(f);
    cp_buf_release(&b);
    return rc;
}

/* ==== Serialising and saving ==== */

static void set_opt_str(json_t *obj, const char *key, const char *s)
{
    cp_json_set_str(obj, key, s);
}

static json_t *server_to_json(const struct config_server *srv)
{
    json_t *o = json_object();
    set_opt_str(o, "name", srv->name);
    set_opt_str(o, "url", srv->url);
    set_opt_str(o, "token", srv->token);
    if (srv->token_expires_at > 0)
        json_object_set_new(o, "token_expires_at",
                            json_integer((json_int_t)srv->token_expires_at));
    else
        json_object_set_new(o, "token_expires_at", json_null());
    set_opt_str(o, "refresh_token", srv->refresh_token);
    set_opt_str(o, "username", srv->username);
    set_opt_str(o, "grid", srv->grid);
    if (srv->extra != NULL)
        json_object_update_missing(o, srv->extra);
    return o;
}

char *config_to_text(const struct config *cfg)
{
    json_t *root = json_object();
    set_opt_str(root, "current_server", cfg->current_server);
    if (!json_object_get(cfg->rest, "current_account"))
        json_object_set_new(root, "current_account", json_string("kontena"));
    json_t *servers = json_array();
    for (size_t i = 0; i < cfg->nservers; i++)
        json_array_append_new(servers, server_to_json(cfg->servers[i]));
    json_object_set_new(root, "servers", servers);
    if (!json_object_get(cfg->rest, "accounts"))
        json_object_set_new(root, "accounts", json_array());
    json_object_update(root, cfg->rest);
    char *s = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    char *out = cp_asprintf("%s\n", s != NULL ? s : "{}");
    cp_free(s);
    return out;
}

static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        return cp_strdup(".");
    if (slash == path)
        return cp_strdup("/");
    return cp_strndup(path, (size_t)(slash - path));
}

int config_save(const struct config *cfg, char *err, size_t errlen)
{
    if (cfg->is_readonly)
        return 0;
    char *text = config_to_text(cfg);
    char *dir = dir_of(cfg->path);
    char *tmp = cp_asprintf("%s/.kontena_client.json.XXXXXX", dir);
    int rc = 0;
    int fd = mkstemp(tmp);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create a file in %s: %s", dir,
                 strerror(errno));
        rc = CP_EIO;
        goto out;
    }
    size_t len = strlen(text);
    size_t off = 0;
    if (fchmod(fd, 0600) != 0)
        goto fail;
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            goto fail;
        off += (size_t)w;
    }
    if (fsync(fd) != 0)
        goto fail;
    if (close(fd) != 0) {
        fd = -1;
        goto fail;
    }
    fd = -1;
    if (rename(tmp, cfg->path) != 0)
        goto fail;
    goto out;
fail:
    snprintf(err, errlen, "cannot write %s: %s", cfg->path, strerror(errno));
    rc = CP_EIO;
    if (fd >= 0)
        close(fd);
    unlink(tmp);
out:
    cp_free(tmp);
    cp_free(dir);
    cp_free(text);
    return rc;
}

/* ==== Queries and edits ==== */

void config_apply_env(struct config *cfg, const char *url, const char *master,
                      const char *grid, const char *token)
{
    if (master != NULL && *master != '\0')
        config_set_str(&cfg->env_master, master);
    if (grid != NULL && *grid != '\0')
        config_set_str(&cfg->env_grid, grid);
    if (token != NULL && *token != '\0')
        config_set_str(&cfg->env_token, token);
    if (url == NULL || *url == '\0')
        return;
    cfg->is_readonly = true;
    const char *name = cfg->env_master != NULL ? cfg->env_master : "default";
    struct config_server *srv = config_find(cfg, name);
    if (srv == NULL) {
        srv = config_server_new(name, url);
        append_server(cfg, srv);
    } else {
        config_set_str(&srv->url, url);
    }
    config_set_str(&cfg->env_master, name);
}

struct config_server *config_find(const struct config *cfg, const char *name)
{
    if (name == NULL)
        return NULL;
    for (size_t i = 0; i < cfg->nservers; i++) {
        if (cfg->servers[i]->name != NULL &&
            strcmp(cfg->servers[i]->name, name) == 0)
            return cfg->servers[i];
    }
    return NULL;
}

struct config_server *config_current(const struct config *cfg)
{
    if (cfg->env_master != NULL)
        return config_find(cfg, cfg->env_master);
    return config_find(cfg, cfg->current_server);
}

void config_put_server(struct config *cfg, struct config_server *srv)
{
    for (size_t i = 0; i < cfg->nservers; i++) {
        if (cfg->servers[i]->name != NULL && srv->name != NULL &&
            strcmp(cfg->servers[i]->name, srv->name) == 0) {
            if (cfg->servers[i] != srv)
                config_server_free(cfg->servers[i]);
            cfg->servers[i] = srv;
            return;
        }
    }
    append_server(cfg, srv);
}

int config_remove_server(struct config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->nservers; i++) {
        if (cfg->servers[i]->name == NULL ||
            strcmp(cfg->servers[i]->name, name) != 0)
            continue;
        config_server_free(cfg->servers[i]);
        memmove(&cfg->servers[i], &cfg->servers[i + 1],
                (cfg->nservers - i - 1) * sizeof(*cfg->servers));
        cfg->nservers--;
        if (cfg->current_server != NULL &&
            strcmp(cfg->current_server, name) == 0)
            config_set_str(&cfg->current_server, NULL);
        return 0;
    }
    return CP_ENOTFOUND;
}

void config_set_current(struct config *cfg, const char *name)
{
    config_set_str(&cfg->current_server, name);
}

static bool is_env_target(const struct config *cfg,
                          const struct config_server *srv)
{
    return srv != NULL && srv == config_current(cfg);
}

bool config_token_from_env(const struct config *cfg,
                           const struct config_server *srv)
{
    return cfg->env_token != NULL && is_env_target(cfg, srv);
}

const char *config_token(const struct config *cfg,
                         const struct config_server *srv)
{
    if (srv == NULL)
        return NULL;
    if (config_token_from_env(cfg, srv))
        return cfg->env_token;
    return srv->token;
}

const char *config_grid(const struct config *cfg,
                        const struct config_server *srv)
{
    if (srv == NULL)
        return NULL;
    if (cfg->env_grid != NULL && is_env_target(cfg, srv))
        return cfg->env_grid;
    return srv->grid;
}
