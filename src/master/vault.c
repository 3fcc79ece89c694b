/* The vault's keys, check value, pod secrets and rekey (see vault.h).
 * SPDX-License-Identifier: Apache-2.0 */
#include "vault.h"
#include "master.h"
#include "../common/alloc.h"
#include "../common/crypto.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../common/util.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>

/* The HKDF purpose label of the vault key: the same VAULT_KEY also seals
 * grid tokens ("kontena-master seal v1"); distinct labels give distinct
 * keys. */
#define VAULT_INFO "kontena-master vault v1"
/* What the check value seals. */
#define CHECK_PLAIN "kontena vault check v1"
#define REKEY_PAGE 100
#define REKEY_PASSES 3

static const char NOT_CONFIGURED[] = "Vault not configured";
static const char WRONG_KEY[] = "vault key does not match the stored secrets";
static const char CHECK_FAILED[] =
    "vault key could not be checked against the store; see the master log";

struct vault {
    const char *unusable; /* NULL when usable */
    bool has_key;
    bool has_prev;
    unsigned char key[CP_KEY_LEN];
    unsigned char prev[CP_KEY_LEN];
    char kid[CP_KEY_ID_LEN + 1];
    char prev_kid[CP_KEY_ID_LEN + 1];
};

bool vault_name_ok(const char *name)
{
    if (name == NULL || name[0] == '\0' || name[0] == '-' ||
        strlen(name) > VAULT_MAX_NAME)
        return false;
    for (const char *p = name; *p != '\0'; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return false;
    }
    return true;
}

const char *vault_unusable(const struct vault *v)
{
    return v == NULL ? NOT_CONFIGURED : v->unusable;
}

char *vault_seal(const struct vault *v, const void *plain, size_t len)
{
    if (v == NULL || !v->has_key)
        cp_panic("vault_seal without a key");
    return cp_seal_kid(v->key, plain, len);
}

void vault_plain_free(char *plain, size_t len)
{
    if (plain == NULL)
        return;
    OPENSSL_cleanse(plain, len);
    cp_free(plain);
}

int vault_open(const struct vault *v, const char *sealed, char **out,
               size_t *len)
{
    if (v == NULL || !v->has_key)
        return CP_EPERM;
    char kid[CP_KEY_ID_LEN + 1];
    if (cp_sealed_key_id(sealed, kid) == 0) {
        /* The text names its key: use that one, or fail without trying. */
        if (strcmp(kid, v->kid) == 0)
            return cp_open(v->key, sealed, out, len);
        if (v->has_prev && strcmp(kid, v->prev_kid) == 0)
            return cp_open(v->prev, sealed, out, len);
        return CP_EPERM;
    }
    int rc = cp_open(v->key, sealed, out, len);
    if (rc == CP_EPERM && v->has_prev)
        rc = cp_open(v->prev, sealed, out, len);
    return rc;
}

static int derive(const char *secret, unsigned char out[CP_KEY_LEN],
                  char kid[CP_KEY_ID_LEN + 1])
{
    int rc = cp_hkdf_sha256(secret, strlen(secret), VAULT_INFO, out);
    if (rc == 0)
        cp_key_id(out, kid);
    return rc;
}

/* True when sealed is a check value that opens with one of v's keys. */
static bool check_opens(const struct vault *v, const char *sealed,
                        bool *is_current)
{
    char *plain = NULL;
    size_t len = 0;
    char kid[CP_KEY_ID_LEN + 1];
    if (vault_open(v, sealed, &plain, &len) != 0)
        return false;
    bool ok = len == strlen(CHECK_PLAIN) && memcmp(plain, CHECK_PLAIN, len) == 0;
    vault_plain_free(plain, len);
    *is_current = cp_sealed_key_id(sealed, kid) == 0 && strcmp(kid, v->kid) == 0;
    return ok;
}

/* Reads the check value, writing it on first use; sets v->unusable when
 * it does not open. */
static void check_key(struct vault *v, struct store *st)
{
    char *stored = NULL;
    int rc = ST_CALL(st, config_get, VAULT_CHECK_KEY, &stored);
    if (rc == CP_ENOTFOUND) {
        char *sealed = vault_seal(v, CHECK_PLAIN, strlen(CHECK_PLAIN));
        bool written = false;
        rc = ST_CALL(st, config_set_if_absent, VAULT_CHECK_KEY, sealed,
                     &written);
        cp_free(sealed);
        if (rc == 0 && written) {
            cp_info("vault: key %s recorded; every master must run with the "
                    "same VAULT_KEY",
                    v->kid);
            return;
        }
        /* Another master wrote it first: check against theirs. */
        if (rc == 0)
            rc = ST_CALL(st, config_get, VAULT_CHECK_KEY, &stored);
    }
    if (rc != 0) {
        cp_error("vault: cannot read the vault check value: %s; the secret "
                 "API answers 503",
                 cp_strerror(rc));
        v->unusable = CHECK_FAILED;
        return;
    }
    bool is_current = false;
    if (!check_opens(v, stored, &is_current)) {
        char kid[CP_KEY_ID_LEN + 1] = "unknown";
        cp_sealed_key_id(stored, kid);
        cp_error("vault: VAULT_KEY does not match the key the stored secrets "
                 "were sealed with (they name key %s; VAULT_KEY is key %s%s%s)"
                 "; the secret API answers 503 until the master runs with "
                 "that key (to change keys, see docs/vault.md: "
                 "VAULT_KEY_PREVIOUS and kontena-master vault-rekey)",
                 kid, v->kid, v->has_prev ? ", VAULT_KEY_PREVIOUS is key " : "",
                 v->has_prev ? v->prev_kid : "");
        v->unusable = WRONG_KEY;
    } else if (!is_current) {
        cp_warn("vault: the stored secrets are still sealed with "
                "VAULT_KEY_PREVIOUS (key %s); run kontena-master vault-rekey "
                "to re-seal them under VAULT_KEY (key %s)",
                v->prev_kid, v->kid);
    }
    cp_free(stored);
}

struct vault *vault_new(const char *key, const char *prev, struct store *st)
{
    struct vault *v = cp_calloc(1, sizeof(*v));
    if (key == NULL || key[0] == '\0') {
        v->unusable = NOT_CONFIGURED;
        cp_warn("vault: VAULT_KEY is not set: the secret API answers 503");
        return v;
    }
    if (strlen(key) < 16)
        cp_warn("vault: VAULT_KEY is short (%zu chars); use 32 random "
                "characters or more",
                strlen(key));
    if (derive(key, v->key, v->kid) != 0) {
        v->unusable = CHECK_FAILED;
        cp_error("vault: cannot derive the vault key");
        return v;
    }
    v->has_key = true;
    if (prev != NULL && prev[0] != '\0' && strcmp(prev, key) != 0) {
        if (derive(prev, v->prev, v->prev_kid) == 0)
            v->has_prev = true;
    }
    if (st != NULL)
        check_key(v, st);
    return v;
}

void vault_free(struct vault *v)
{
    if (v == NULL)
        return;
    OPENSSL_cleanse(v, sizeof(*v));
    cp_free(v);
}

/* ==== Pods ==== */

int vault_pod_secrets(const struct vault *v, struct store *st,
                      const char *grid_id, const json_t *spec, json_t **out)
{
    *out = NULL;
    const json_t *refs = json_object_get(spec, "secrets");
    json_t *arr = json_array();
    if (json_array_size(refs) > 0 && vault_unusable(v) != NULL) {
        json_decref(arr);
        return CP_EAGAIN;
    }
    size_t i;
    const json_t *r;
    int rc = 0;
    json_array_foreach(refs, i, r)
    {
        const char *secret = cp_json_str(r, "secret");
        const char *name = cp_json_str(r, "name");
        const char *type = cp_json_str(r, "type");
        if (secret == NULL || name == NULL ||
            (type != NULL && strcmp(type, "env") != 0))
            continue;
        struct store_secret s = {0};
        rc = ST_CALL(st, secret_get, grid_id, secret, &s);
        if (rc == CP_ENOTFOUND) {
            cp_warn("vault: secret %s of a service is missing; left out of "
                    "its pods",
                    secret);
            rc = 0;
            continue;
        }
        char *plain = NULL;
        size_t len = 0;
        if (rc == 0)
            rc = vault_open(v, s.value, &plain, &len);
        store_secret_release(&s);
        if (rc != 0) {
            cp_error("vault: cannot open secret %s for a pod: %s", secret,
                     cp_strerror(rc));
            break;
        }
        json_t *val = json_stringn(plain, len);
        vault_plain_free(plain, len);
        if (val == NULL) { /* not UTF-8: the API never stores such */
            rc = CP_EPROTO;
            break;
        }
        json_array_append_new(arr, json_pack("{s:s, s:s, s:o}", "name", name,
                                             "type", "env", "value", val));
    }
    if (rc != 0) {
        json_decref(arr);
        return rc;
    }
    *out = arr;
    return 0;
}

/* ==== Rekey ==== */

struct rekey_counts {
    int resealed, current, conflicts, failed;
};

/* Re-seals one value under the current key when it is not already;
 * *out (caller frees) is the new text, NULL when nothing to do. */
static int reseal(const struct vault *v, const char *sealed, char **out)
{
    *out = NULL;
    char kid[CP_KEY_ID_LEN + 1];
    if (cp_sealed_key_id(sealed, kid) == 0 && strcmp(kid, v->kid) == 0)
        return 0;
    char *plain = NULL;
    size_t len = 0;
    int rc = vault_open(v, sealed, &plain, &len);
    if (rc != 0)
        return rc;
    *out = vault_seal(v, plain, len);
    vault_plain_free(plain, len);
    return 0;
}

static int rekey_check(const struct vault *v, struct store *st)
{
    char *stored = NULL;
    int rc = ST_CALL(st, config_get, VAULT_CHECK_KEY, &stored);
    if (rc == CP_ENOTFOUND) {
        printf("vault-rekey: no check value yet (no master has run with a "
               "VAULT_KEY); nothing to check\n");
        return 0;
    }
    if (rc != 0) {
        fprintf(stderr, "vault-rekey: cannot read the check value: %s\n",
                cp_strerror(rc));
        return rc;
    }
    bool is_current = false;
    if (!check_opens(v, stored, &is_current)) {
        char kid[CP_KEY_ID_LEN + 1] = "unknown";
        cp_sealed_key_id(stored, kid);
        fprintf(stderr,
                "vault-rekey: neither VAULT_KEY (key %s) nor "
                "VAULT_KEY_PREVIOUS (%s%s) opens the stored check value "
                "(key %s); nothing was changed\n",
                v->kid, v->has_prev ? "key " : "not set",
                v->has_prev ? v->prev_kid : "", kid);
        cp_free(stored);
        return CP_EPERM;
    }
    if (!is_current) {
        char *fresh = vault_seal(v, CHECK_PLAIN, strlen(CHECK_PLAIN));
        rc = ST_CALL(st, config_set, VAULT_CHECK_KEY, fresh);
        cp_free(fresh);
        if (rc != 0) {
            fprintf(stderr, "vault-rekey: cannot write the check value: %s\n",
                    cp_strerror(rc));
            cp_free(stored);
            return rc;
        }
        printf("vault-rekey: check value re-sealed under key %s\n", v->kid);
    }
    cp_free(stored);
    return 0;
}

/* One pass over every secret; counts what it did. */
static int rekey_pass(const struct vault *v, struct store *st,
                      struct rekey_counts *n)
{
    char after[STORE_ID_LEN + 1] = "";
    for (;;) {
        struct store_secret_list page = {0};
        int rc = ST_CALL(st, secrets_page, after, REKEY_PAGE, &page);
        if (rc != 0) {
            fprintf(stderr, "vault-rekey: cannot list secrets: %s\n",
                    cp_strerror(rc));
            return rc;
        }
        for (size_t i = 0; i < page.len; i++) {
            const struct store_secret *s = &page.items[i];
            char *fresh = NULL;
            rc = reseal(v, s->value, &fresh);
            if (rc != 0) {
                fprintf(stderr,
                        "vault-rekey: secret %s (grid id %s) opens with "
                        "neither key: %s\n",
                        s->name, s->grid_id, cp_strerror(rc));
                n->failed++;
                continue;
            }
            if (fresh == NULL) {
                n->current++;
                continue;
            }
            rc = ST_CALL(st, secret_reseal, s->id, s->value, fresh);
            cp_free(fresh);
            if (rc == 0)
                n->resealed++;
            else if (rc == CP_ECONFLICT)
                n->conflicts++; /* written meanwhile: the next pass sees it */
            else if (rc != CP_ENOTFOUND) {
                fprintf(stderr, "vault-rekey: cannot write secret %s: %s\n",
                        s->name, cp_strerror(rc));
                n->failed++;
            }
        }
        bool is_last = page.len < REKEY_PAGE;
        if (page.len > 0)
            memcpy(after, page.items[page.len - 1].id, sizeof(after));
        store_secret_list_release(&page);
        if (is_last)
            return 0;
    }
}

/* The grid and node tokens and the registry passwords that VAULT_KEY
 * also seals (master.h seal_key): re-sealed under the new key when they
 * open with the previous one. A value that opens with neither was sealed
 * with another key (e.g. <data dir>/master.key before VAULT_KEY was set):
 * a warning, since it is no vault secret. */
struct token_counts {
    int resealed, current, unopened, failed;
};

struct token_keys {
    unsigned char key[CP_KEY_LEN], prev[CP_KEY_LEN];
    bool has_prev;
    struct token_counts tokens, registries;
};

/* What reseal_token rewrites: a grid's or a node's token, or a
 * registry's password (sealed with the same key). */
enum sealed_kind { SEALED_GRID, SEALED_NODE, SEALED_REGISTRY };

static void reseal_token(struct token_keys *k, struct store *st,
                         enum sealed_kind kind, const char *id,
                         const char *what, const char *sealed)
{
    char *plain = NULL;
    size_t len = 0;
    struct token_counts *n =
        kind == SEALED_REGISTRY ? &k->registries : &k->tokens;
    if (sealed == NULL)
        return;
    if (cp_open(k->key, sealed, &plain, &len) == 0) {
        vault_plain_free(plain, len);
        n->current++;
        return;
    }
    if (!k->has_prev || cp_open(k->prev, sealed, &plain, &len) != 0) {
        if (kind == SEALED_REGISTRY)
            fprintf(stderr,
                    "vault-rekey: warning: the password of %s opens with "
                    "neither key; remove the registry and add it again\n",
                    what);
        else
            fprintf(stderr,
                    "vault-rekey: warning: the token of %s opens with "
                    "neither key; reset it to show it again\n",
                    what);
        n->unopened++;
        return;
    }
    char *fresh = cp_seal(k->key, plain, len);
    vault_plain_free(plain, len);
    int rc = kind == SEALED_GRID
                 ? ST_CALL(st, grid_token_reseal, id, sealed, fresh)
             : kind == SEALED_NODE
                 ? ST_CALL(st, node_token_reseal, id, sealed, fresh)
                 : ST_CALL(st, registry_reseal, id, sealed, fresh);
    cp_free(fresh);
    if (rc == 0)
        n->resealed++;
    else if (rc != CP_ENOTFOUND && rc != CP_ECONFLICT) {
        /* Changed or gone meanwhile: a new value is under the new key. */
        fprintf(stderr, "vault-rekey: cannot write the %s of %s: %s\n",
                kind == SEALED_REGISTRY ? "password" : "token", what,
                cp_strerror(rc));
        n->failed++;
    }
}

static int rekey_tokens(const struct master_config *cfg, struct store *st)
{
    struct token_keys k = {0};
    if (cp_hkdf_sha256(cfg->vault_key, strlen(cfg->vault_key),
                       MASTER_SEAL_INFO, k.key) != 0)
        return CP_EINVAL;
    const char *prev = cfg->vault_key_previous;
    k.has_prev = prev != NULL && prev[0] != '\0' &&
                 cp_hkdf_sha256(prev, strlen(prev), MASTER_SEAL_INFO,
                                k.prev) == 0;
    struct store_grid_list grids = {0};
    int rc = ST_CALL(st, grid_list, NULL, &grids);
    for (size_t i = 0; rc == 0 && i < grids.len; i++) {
        const struct store_grid *g = &grids.items[i];
        char what[160];
        snprintf(what, sizeof(what), "grid %s", g->name);
        reseal_token(&k, st, SEALED_GRID, g->id, what, g->token_sealed);
        struct store_node_list nodes = {0};
        rc = ST_CALL(st, node_list, g->id, &nodes);
        for (size_t n = 0; rc == 0 && n < nodes.len; n++) {
            snprintf(what, sizeof(what), "node %s/%s", g->name,
                     nodes.items[n].name ? nodes.items[n].name : "?");
            reseal_token(&k, st, SEALED_NODE, nodes.items[n].id, what,
                         nodes.items[n].token_sealed);
        }
        store_node_list_release(&nodes);
        struct store_registry_list rl = {0};
        if (rc == 0)
            rc = ST_CALL(st, registry_list, g->id, &rl);
        for (size_t r = 0; rc == 0 && r < rl.len; r++) {
            snprintf(what, sizeof(what), "registry %s/%s", g->name,
                     rl.items[r].name);
            reseal_token(&k, st, SEALED_REGISTRY, rl.items[r].id, what,
                         rl.items[r].password_sealed);
        }
        store_registry_list_release(&rl);
    }
    store_grid_list_release(&grids);
    OPENSSL_cleanse(k.key, sizeof(k.key));
    OPENSSL_cleanse(k.prev, sizeof(k.prev));
    if (rc != 0) {
        fprintf(stderr,
                "vault-rekey: cannot list grids, nodes and registries: %s\n",
                cp_strerror(rc));
        return rc;
    }
    printf("vault-rekey: %d grid/node token(s) re-sealed, %d already under "
           "the new key%s\n",
           k.tokens.resealed, k.tokens.current,
           k.tokens.unopened > 0 ? ", some open with neither key (see above)"
                                 : "");
    printf("vault-rekey: %d registry password(s) re-sealed, %d already "
           "under the new key%s\n",
           k.registries.resealed, k.registries.current,
           k.registries.unopened > 0
               ? ", some open with neither key (see above)"
               : "");
    return k.tokens.failed > 0 || k.registries.failed > 0 ? CP_EIO : 0;
}

int vault_rekey_command(const struct master_config *cfg)
{
    if (cfg->vault_key == NULL || cfg->vault_key[0] == '\0') {
        fprintf(stderr, "vault-rekey: VAULT_KEY is not set: it names the key "
                        "to re-seal the secrets under\n");
        return 1;
    }
    struct store *st = NULL;
    char err[256] = "";
    int rc = store_open(cfg->store_url, &st, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "vault-rekey: cannot open the store: %s\n", err);
        return 1;
    }
    struct vault *v = vault_new(cfg->vault_key, cfg->vault_key_previous, NULL);
    struct rekey_counts total = {0};
    rc = rekey_check(v, st);
    for (int pass = 0; rc == 0 && pass < REKEY_PASSES; pass++) {
        struct rekey_counts n = {0};
        rc = rekey_pass(v, st, &n);
        total.resealed += n.resealed;
        total.failed += n.failed;
        if (pass == 0)
            total.current = n.current;
        total.conflicts = n.conflicts;
        if (n.conflicts == 0)
            break;
    }
    if (rc == 0 && total.conflicts > 0) {
        fprintf(stderr,
                "vault-rekey: %d secret(s) kept changing while being "
                "re-sealed; run vault-rekey again\n",
                total.conflicts);
        total.failed += total.conflicts;
    }
    if (rc == 0)
        printf("vault-rekey: %d secret(s) re-sealed under key %s, %d "
               "already under it%s\n",
               total.resealed, v->kid, total.current,
               total.failed > 0 ? "; some were not (see above)" : "");
    if (rc == 0)
        rc = rekey_tokens(cfg, st);
    bool ok = rc == 0 && total.failed == 0;
    vault_free(v);
    store_close(st);
    return ok ? 0 : 1;
}
