/* Live container inspects (see inspector.h). Lock order: mu is the only
 * lock, and nothing calls the engine or the wake function holding it.
 * SPDX-License-Identifier: Apache-2.0 */
#include "inspector.h"
#include "engine.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../common/proto.h"
#include "../common/rpc.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define LABEL_GRID "io.kontena.grid.name"
#define LABEL_SERVICE_ID "io.kontena.service.id"
#define LABEL_SECRET_ENV "io.kontena.container.secret_env"
#define LABEL_SECRETS_REV "io.kontena.container.secrets_rev"

struct job {
    struct job *next;
    uint32_t rpc_id;
    uint64_t conn_gen;
    char *target, *grid;
    json_t *error, *result; /* once done */
};

struct inspector {
    inspector_wake_fn *wake;
    void *wake_ctx;
    pthread_t th;
    struct engine *engine; /* the thread's own */

    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* Under mu. */
    struct job *todo, *done; /* FIFO / LIFO */
    int njobs;               /* queued + running + done, not taken */
    bool is_stopping;
};

bool inspector_valid_target(const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;
    if (n == 0 || n > 128 || s[0] == '.' || s[0] == '-')
        return false;
    return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                     "0123456789_.-") == n;
}

json_t *inspector_check(const json_t *ins, const char *grid, const char *target)
{
    const json_t *labels =
        json_object_get(json_object_get(ins, "Config"), "Labels");
    const char *g = cp_json_str(labels, LABEL_GRID);
    const char *sid = cp_json_str(labels, LABEL_SERVICE_ID);
    if (grid == NULL || g == NULL || strcmp(g, grid) != 0 || sid == NULL ||
        sid[0] == '\0') {
        char msg[256];
        snprintf(msg, sizeof(msg),
                 "container %s is not a kontena container of this grid",
                 target);
        return rpc_error(403, msg);
    }
    return NULL;
}

void inspector_strip_secrets(json_t *ins)
{
    json_t *cfg = json_object_get(ins, "Config");
    json_t *labels = json_object_get(cfg, "Labels");
    const char *names = cp_json_str(labels, LABEL_SECRET_ENV);
    json_t *env = json_object_get(cfg, "Env");
    for (size_t i = json_array_size(env); i-- > 0;) {
        const char *kv = json_string_value(json_array_get(env, i));
        bool drop = kv == NULL;
        size_t klen = kv != NULL ? strcspn(kv, "=") : 0;
        for (const char *p = names; !drop && p != NULL && *p != '\0';) {
            size_t n = strcspn(p, ",");
            drop = n == klen && strncmp(p, kv, klen) == 0;
            p += n;
            if (*p == ',')
                p++;
        }
        if (drop)
            json_array_remove(env, i);
    }
    json_object_del(labels, LABEL_SECRETS_REV);
}

static void run(struct inspector *in, struct job *j)
{
    char err[512] = "";
    json_t *ins = NULL;
    int rc =
        engine_container_inspect(in->engine, j->target, &ins, err, sizeof(err));
    if (rc == CP_ENOTFOUND) {
        char msg[256];
        snprintf(msg, sizeof(msg), "no such container: %s", j->target);
        j->error = rpc_error(PROTO_ERR_NOT_FOUND, msg);
    } else if (rc != 0 || !json_is_object(ins)) {
        j->error = rpc_error(PROTO_ERR_INTERNAL,
                             err[0] != '\0' ? err : "bad engine answer");
    } else if ((j->error = inspector_check(ins, j->grid, j->target)) == NULL) {
        inspector_strip_secrets(ins);
        j->result = json_incref(ins);
    }
    json_decref(ins);
}

static void *inspector_main(void *arg)
{
    struct inspector *in = arg;
    pthread_mutex_lock(&in->mu);
    for (;;) {
        while (!in->is_stopping && in->todo == NULL)
            pthread_cond_wait(&in->cv, &in->mu);
        if (in->is_stopping)
            break;
        struct job *j = in->todo;
        in->todo = j->next;
        pthread_mutex_unlock(&in->mu);

        run(in, j);

        pthread_mutex_lock(&in->mu);
        j->next = in->done;
        in->done = j;
        pthread_mutex_unlock(&in->mu);
        if (in->wake != NULL)
            in->wake(in->wake_ctx);
        pthread_mutex_lock(&in->mu);
    }
    pthread_mutex_unlock(&in->mu);
    return NULL;
}

struct inspector *inspector_new(const char *socket_path,
                                inspector_wake_fn *wake, void *wake_ctx)
{
    struct inspector *in = cp_calloc(1, sizeof(*in));
    in->wake = wake;
    in->wake_ctx = wake_ctx;
    in->engine = engine_new(socket_path);
    pthread_mutex_init(&in->mu, NULL);
    pthread_cond_init(&in->cv, NULL);
    if (pthread_create(&in->th, NULL, inspector_main, in) != 0)
        cp_panic("agent: cannot start the inspect thread");
    return in;
}

static void job_free(struct job *j)
{
    cp_free(j->target);
    cp_free(j->grid);
    json_decref(j->error);
    json_decref(j->result);
    cp_free(j);
}

void inspector_free(struct inspector *in)
{
    if (in == NULL)
        return;
    pthread_mutex_lock(&in->mu);
    in->is_stopping = true;
    pthread_cond_signal(&in->cv);
    pthread_mutex_unlock(&in->mu);
    pthread_join(in->th, NULL);
    for (struct job *l[2] = {in->todo, in->done}, **p = l; p < l + 2; p++) {
        while (*p != NULL) {
            struct job *next = (*p)->next;
            job_free(*p);
            *p = next;
        }
    }
    pthread_cond_destroy(&in->cv);
    pthread_mutex_destroy(&in->mu);
    engine_free(in->engine);
    cp_free(in);
}

bool inspector_queue(struct inspector *in, uint32_t rpc_id, uint64_t conn_gen,
                     const char *target, const char *grid)
{
    pthread_mutex_lock(&in->mu);
    if (in->njobs >= INSPECTOR_MAX_JOBS) {
        pthread_mutex_unlock(&in->mu);
        return false;
    }
    struct job *j = cp_calloc(1, sizeof(*j));
    j->rpc_id = rpc_id;
    j->conn_gen = conn_gen;
    j->target = cp_strdup(target);
    j->grid = cp_strdup(grid);
    struct job **tail = &in->todo;
    while (*tail != NULL)
        tail = &(*tail)->next;
    *tail = j;
    in->njobs++;
    pthread_cond_signal(&in->cv);
    pthread_mutex_unlock(&in->mu);
    return true;
}

bool inspector_take(struct inspector *in, struct inspector_answer *out)
{
    pthread_mutex_lock(&in->mu);
    struct job *j = in->done;
    if (j != NULL) {
        in->done = j->next;
        in->njobs--;
    }
    pthread_mutex_unlock(&in->mu);
    if (j == NULL)
        return false;
    out->rpc_id = j->rpc_id;
    out->conn_gen = j->conn_gen;
    out->error = j->error;
    out->result = j->result;
    j->error = j->result = NULL;
    job_free(j);
    return true;
}
