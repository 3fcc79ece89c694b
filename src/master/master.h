/* Process-wide state of kontena-master and the few prototypes shared
 * between its files. Kept small on purpose.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef CP_MASTER_H
#define CP_MASTER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "../common/crypto.h"
#include "config.h"
#include "store.h"

struct ratelimit;
struct authcache;
struct agents;
struct vault;

/* The master process. Created once in main(); read-only after start-up
 * except where a field says who mutates it. Handlers running on worker
 * threads read it freely: nothing here changes after master_init(). */
struct master {
    struct master_config cfg;
    struct store *store;
    uv_loop_t *loop;
    char *server_uuid; /* config server.uuid */
    char *server_name; /* config server.name, may be NULL */
    char *root_url;    /* config server.root_url, may be NULL */
    /* Key for values sealed at rest that are not vault secrets (grid
     * tokens): from VAULT_KEY, else from <data_dir>/master.key. */
    unsigned char seal_key[CP_KEY_LEN];
    /* The same from VAULT_KEY_PREVIOUS during a key rotation. */
    unsigned char seal_key_prev[CP_KEY_LEN];
    bool has_seal_key_prev;
    bool vault_configured;
    struct vault *vault; /* grid secrets (vault.h); never NULL after init */
    bool store_is_local; /* embedded store: cheap reads may run inline */
    int64_t started_at;
    struct ratelimit *login_limit; /* loop thread only */
    struct authcache *auth_cache;  /* thread-safe */
    char master_id[33]; /* this process, for node connection ownership */
    struct agents *agents; /* agent sessions; loop thread only */
    int jobs;              /* master_queue jobs in flight; loop thread */
};

/* The HKDF purpose label of seal_key (vault.c re-seals with it too). */
#define MASTER_SEAL_INFO "kontena-master seal v1"

/* Runs work(ctx) on a worker thread, then done(ctx) on the loop thread.
 * work may block on the store; done may touch loop state. */
typedef void master_work_fn(void *ctx);
void master_queue(struct master *m, master_work_fn *work,
                  master_work_fn *done, void *ctx);

/* Opens a value sealed with seal_key, or during a key rotation with the
 * previous one; as cp_open. */
int master_open_sealed(const struct master *m, const char *sealed,
                       char **out, size_t *len);

/* Opens the store, seeds config, creates the initial admin on first boot
 * and prints its code. Returns 0 or a CP_E* code after logging why. */
int master_init(struct master *m);
void master_release(struct master *m);

/* Mints a fresh bootstrap admin code, replacing earlier ones, and prints
 * it (kontena-master reset-admin-code). */
int master_reset_admin_code(struct master *m);

#endif
