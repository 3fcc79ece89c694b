/* The vault (spec 7): grid secrets sealed at rest with AES-256-GCM under
 * a key derived from VAULT_KEY (HKDF-SHA256, info "kontena-master vault
 * v1", distinct from the key that seals grid tokens). Values are sealed
 * as "kv2:<key id>:..." (common/crypto.h), so that during a key rotation
 * (VAULT_KEY_PREVIOUS) each value opens with the key it names and
 * `kontena-master vault-rekey` knows what is left to re-seal.
 *
 * A check value sealed with the key is kept in config ("vault.check"): a
 * master started with another key finds out at once, logs why, and
 * answers the secret routes 503 instead of returning garbage or sealing
 * new values under a key that does not match the old ones.
 *
 * Plaintexts handled here are never logged.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef CP_VAULT_H
#define CP_VAULT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "store.h"

/* The most bytes a secret value may have (an env entry of 128 KiB, the
 * original's limit for env values). */
#define VAULT_MAX_VALUE (128 * 1024)
/* The longest secret name. */
#define VAULT_MAX_NAME 255
/* Config key of the check value. */
#define VAULT_CHECK_KEY "vault.check"

struct vault;

/* Sets up the vault from key (VAULT_KEY) and prev (VAULT_KEY_PREVIOUS);
 * either may be NULL. Reads the check value from st, or writes it on
 * first use. Never fails: without a key, or with a key that does not open
 * the check value, the vault is unusable (logged once here with the
 * reason, see vault_unusable). Returns a new vault (vault_free). */
struct vault *vault_new(const char *key, const char *prev, struct store *st);
void vault_free(struct vault *v);

/* NULL when secrets can be read and written; otherwise the reason, for a
 * 503 (static string). */
const char *vault_unusable(const struct vault *v);

/* Seals plain (len bytes) under the current key; new string (caller
 * frees). The vault must be usable. */
char *vault_seal(const struct vault *v, const void *plain, size_t len);

/* Opens a value sealed under the current or the previous key. 0 with a
 * new NUL-terminated *out of *len bytes (caller frees with
 * vault_plain_free), CP_EPERM when neither key opens it (wrong key,
 * tampered text), CP_EPROTO when it is not sealed text. */
int vault_open(const struct vault *v, const char *sealed, char **out,
               size_t *len);
/* Wipes and frees a plaintext from vault_open (NULL is fine). */
void vault_plain_free(char *plain, size_t len);

/* Secret names: 1..VAULT_MAX_NAME chars of [A-Za-z0-9_-], not starting
 * with '-' (the original's /\A(?!-)(\w|-)+\z/). */
bool vault_name_ok(const char *name);

/* The pod's "secrets" (spec 4.5): for every {secret, name, type} of the
 * service spec, {name, type: "env", value} with the plaintext of the
 * grid's secret, in spec order; a secret that no longer exists is left
 * out (logged by name). Returns 0 and a new array in *out; CP_EAGAIN
 * when the spec names secrets and the vault is unusable, CP_EPERM when a
 * value does not open, or a store error: callers must then not send a
 * pod list at all (a pod without its secrets would replace the running
 * container with one that lacks them). */
int vault_pod_secrets(const struct vault *v, struct store *st,
                      const char *grid_id, const json_t *spec, json_t **out);

/* kontena-master vault-rekey: opens the store of cfg and re-seals the
 * check value and every secret that is not yet under VAULT_KEY (opening
 * it with VAULT_KEY_PREVIOUS), row by row with compare-and-set, so that
 * masters may run meanwhile. Prints what it did. Returns 0, or 1 after
 * printing why (no VAULT_KEY, a value no key opens, store errors). */
int vault_rekey_command(const struct master_config *cfg);

#endif
