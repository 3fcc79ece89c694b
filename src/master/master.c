/* Start-up of the master process: the store, the key for values sealed at
 * rest, configuration seeds, and the initial admin with its bootstrap
 * code.
 * SPDX-License-Identifier: Apache-2.0 */
#include "master.h"
#include "authcache.h"
#include "ratelimit.h"
#include "vault.h"
#include "../common/alloc.h"
#include "../common/crypto.h"
#include "../common/err.h"
#include "../common/log.h"
#include "../common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEY_FILE "master.key"

/* Reads <data_dir>/master.key, creating it (0600, 32 random bytes) on
 * first boot. Used when VAULT_KEY is not set, so that grid tokens are
 * never stored in clear even then. */
static int local_key(const char *dir, unsigned char raw[32])
{
    char *path = cp_asprintf("%s/%s", dir, KEY_FILE);
    int rc = CP_EIO;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        cp_random_bytes(raw, 32);
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0) {
            bool ok = write(fd, raw, 32) == 32 && fsync(fd) == 0;
            close(fd);
            if (!ok) {
                cp_error("master: cannot write %s: %s", path,
                         strerror(errno));
                unlink(path);
                goto out;
            }
            cp_info("master: created %s (keeps grid tokens sealed; back "
                    "it up with the data)",
                    path);
            rc = 0;
            goto out;
        }
        /* Another master created it first: read theirs. */
        fd = open(path, O_RDONLY | O_CLOEXEC);
    }
    if (fd < 0) {
        cp_error("master: cannot open %s: %s", path, strerror(errno));
        goto out;
    }
    ssize_t n = read(fd, raw, 32);
    close(fd);
    if (n != 32) {
        cp_error("master: %s is damaged (expected 32 bytes)", path);
        goto out;
    }
    rc = 0;
out:
    cp_free(path);
    return rc;
}

int master_open_sealed(const struct master *m, const char *sealed,
                       char **out, size_t *len)
{
    int rc = cp_open(m->seal_key, sealed, out, len);
    if (rc == CP_EPERM && m->has_seal_key_prev)
        rc = cp_open(m->seal_key_prev, sealed, out, len);
    return rc;
}

static int setup_keys(struct master *m)
{
    if (m->cfg.vault_key != NULL) {
        m->vault_configured = true;
        const char *prev = m->cfg.vault_key_previous;
        if (prev != NULL && prev[0] != '\0' &&
            cp_hkdf_sha256(prev, strlen(prev), MASTER_SEAL_INFO,
                           m->seal_key_prev) == 0)
            m->has_seal_key_prev = true;
        return cp_hkdf_sha256(m->cfg.vault_key, strlen(m->cfg.vault_key),
                              MASTER_SEAL_INFO, m->seal_key);
    }
    if (strncmp(m->cfg.store_url, "sqlite:", 7) != 0) {
        cp_error("master: VAULT_KEY is required with a shared store: every "
                 "master must seal values with the same key");
        return CP_EINVAL;
    }
    unsigned char raw[32];
    int rc = local_key(m->cfg.data_dir, raw);
    if (rc == 0)
        rc = cp_hkdf_sha256(raw, sizeof(raw), MASTER_SEAL_INFO, m->seal_key);
    memset(raw, 0, sizeof(raw));
    return rc;
}

static void seed(struct master *m, const char *key, const char *value)
{
    bool written = false;
    if (value != NULL)
        ST_CALL(m->store, config_set_if_absent, key, value, &written);
}

static char *config_value(struct master *m, const char *key)
{
    char *v = NULL;
    if (ST_CALL(m->store, config_get, key, &v) != 0)
        return NULL;
    return v;
}

static void print_code(const char *code)
{
    printf("*********************************************\n"
           "Initial Admin Code: %s\n"
           "*********************************************\n",
           code);
    fflush(stdout);
}

/* Ensures the local admin exists; fills out. */
static int ensure_admin(struct master *m, struct store_user *out,
                        bool *created)
{
    *created = false;
    int rc = ST_CALL(m->store, user_get_by_email, "admin", out);
    if (rc != CP_ENOTFOUND)
        return rc;
    struct store_user u = {0};
    store_new_id(u.id);
    u.email = cp_strdup("admin");
    u.name = cp_strdup("admin");
    u.roles = STORE_ROLE_MASTER_ADMIN;
    u.created_at = u.updated_at = cp_now_ms();
    rc = ST_CALL(m->store, user_create, &u);
    store_user_release(&u);
    /* A conflict means another master made it at the same moment. */
    if (rc != 0 && rc != CP_ECONFLICT)
        return rc;
    *created = rc == 0;
    return ST_CALL(m->store, user_get_by_email, "admin", out);
}

/* Stores a bootstrap code for admin and prints it. */
static int mint_code(struct master *m, const struct store_user *admin)
{
    char random_code[13];
    const char *code = m->cfg.initial_admin_code;
    if (code == NULL) {
        cp_random_hex(random_code, 6);
        code = random_code;
    }
    struct store_token t = {0};
    store_new_id(t.id);
    snprintf(t.user_id, sizeof(t.user_id), "%s", admin->id);
    t.kind = STORE_TOKEN_CODE;
    char hash[65];
    cp_sha256_hex(code, strlen(code), hash);
    t.token_hash = cp_strdup(hash);
    snprintf(t.token_last4, sizeof(t.token_last4), "%s",
             code + (strlen(code) > 4 ? strlen(code) - 4 : 0));
    t.scopes = cp_strdup("user,owner");
    t.internal = true;
    t.is_bootstrap = true;
    t.created_at = cp_now_ms();
    int rc = ST_CALL(m->store, token_create, &t);
    store_token_release(&t);
    if (rc == CP_ECONFLICT) {
        /* The same INITIAL_ADMIN_CODE is already stored. */
        rc = 0;
    }
    if (rc == 0)
        print_code(code);
    return rc;
}

struct queued {
    uv_work_t work;
    struct master *m;
    master_work_fn *fn;
    master_work_fn *done;
    void *ctx;
};

static void queued_work(uv_work_t *w)
{
    struct queued *q = w->data;
    q->fn(q->ctx);
}

static void queued_done(uv_work_t *w, int status)
{
    struct queued *q = w->data;
    CP_UNUSED(status);
    q->m->jobs--;
    q->done(q->ctx);
    cp_free(q);
}

void master_queue(struct master *m, master_work_fn *work,
                  master_work_fn *done, void *ctx)
{
    struct queued *q = cp_calloc(1, sizeof(*q));
    q->work.data = q;
    q->m = m;
    m->jobs++;
    q->fn = work;
    q->done = done;
    q->ctx = ctx;
    uv_queue_work(m->loop, &q->work, queued_work, queued_done);
}

int master_init(struct master *m)
{
    char err[256] = "";
    m->started_at = cp_now_ms();
    cp_random_hex(m->master_id, 16);
    int rc = store_open(m->cfg.store_url, &m->store, err, sizeof(err));
    if (rc != 0) {
        cp_error("master: cannot open the store: %s", err);
        return rc;
    }
    rc = setup_keys(m);
    if (rc != 0)
        return rc;
    m->vault = vault_new(m->cfg.vault_key, m->cfg.vault_key_previous,
                         m->store);
    m->store_is_local = m->cfg.inline_reads &&
                        strcmp(m->store->ops->name, "sqlite") == 0;

    char uuid[33];
    cp_random_hex(uuid, 16);
    seed(m, "server.uuid", uuid);
    seed(m, "server.name", m->cfg.server_name);
    seed(m, "server.root_url", m->cfg.master_url);
    m->server_uuid = config_value(m, "server.uuid");
    m->server_name = config_value(m, "server.name");
    m->root_url = config_value(m, "server.root_url");

    struct store_user admin = {0};
    bool created = false;
    rc = ensure_admin(m, &admin, &created);
    if (rc == 0 && created)
        rc = mint_code(m, &admin);
    store_user_release(&admin);
    if (rc != 0) {
        cp_error("master: cannot create the initial admin: %s",
                 cp_strerror(rc));
        return rc;
    }
    m->login_limit = ratelimit_new(m->cfg.login_rate_limit,
                                   (int64_t)m->cfg.login_rate_window * 1000,
                                   4096);
    m->auth_cache = authcache_new(m->cfg.auth_cache_ms, 1024);
    return 0;
}

int master_reset_admin_code(struct master *m)
{
    char err[256] = "";
    int rc = store_open(m->cfg.store_url, &m->store, err, sizeof(err));
    if (rc != 0) {
        cp_error("master: cannot open the store: %s", err);
        return rc;
    }
    struct store_user admin = {0};
    bool created = false;
    rc = ensure_admin(m, &admin, &created);
    if (rc == 0)
        rc = m->store->ops->bootstrap_codes_delete(m->store);
    if (rc == 0)
        rc = mint_code(m, &admin);
    store_user_release(&admin);
    if (rc != 0)
        cp_error("master: cannot mint a new admin code: %s",
                 cp_strerror(rc));
    return rc;
}

void master_release(struct master *m)
{
    store_close(m->store);
    vault_free(m->vault);
    ratelimit_free(m->login_limit);
    authcache_free(m->auth_cache);
    cp_free(m->server_uuid);
    cp_free(m->server_name);
    cp_free(m->root_url);
    memset(m->seal_key, 0, sizeof(m->seal_key));
    memset(m->seal_key_prev, 0, sizeof(m->seal_key_prev));
    master_config_release(&m->cfg);
}
