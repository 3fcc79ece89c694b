/* The CLI's client configuration, ~/.kontena_client.json (or the path in
 * KONTENA_CONFIG): the known masters, their tokens and selected grids.
 * Loading migrates the old single-server layout; saving is atomic (temp
 * file + rename, mode 0600). Environment overrides (KONTENA_URL,
 * KONTENA_MASTER, KONTENA_GRID, KONTENA_TOKEN) live beside the file's
 * values and are never written back.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef CP_CLI_CONFIG_H
#define CP_CLI_CONFIG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One master the user has logged in to. Every string may be NULL. */
struct config_server {
    char *name;
    char *url;
    char *token;
    char *refresh_token;
    char *username;
    char *grid;
    int64_t token_expires_at; /* epoch seconds; 0 means never */
    json_t *extra;            /* unknown keys, kept for round trips */
};

struct config {
    char *path;           /* where config_save() writes */
    bool is_readonly;     /* KONTENA_URL given: never write */
    bool is_migrated;     /* the old layout was converted on load */
    char *current_server; /* as stored in the file */
    struct config_server **servers;
    size_t nservers;
    json_t *rest;     /* other top-level keys (accounts...) */
    char *env_master; /* KONTENA_MASTER */
    char *env_grid;   /* KONTENA_GRID */
    char *env_token;  /* KONTENA_TOKEN */
};

/* Returns an empty configuration that would save to path (may be NULL). */
struct config *config_new(const char *path);
void config_free(struct config *cfg);

/* Returns the default path: $KONTENA_CONFIG, else $HOME/.kontena_client.json
 * (caller frees). */
char *config_default_path(void);

/* Replaces cfg's contents with the parsed text. Returns 0, or CP_EINVAL
 * with a reason in err. Migrates the layout with a "server" key. */
int config_load_text(struct config *cfg, const char *text, size_t len,
                     char *err, size_t errlen);
/* Loads cfg->path; a missing file is an empty configuration. Returns 0, or
 * CP_EIO/CP_EINVAL with a reason in err. */
int config_load(struct config *cfg, char *err, size_t errlen);
/* Serialises the file's view (no environment overrides; caller frees). */
char *config_to_text(const struct config *cfg);
/* Writes cfg->path atomically with mode 0600; a no-op when read-only.
 * Returns 0 or CP_EIO with a reason in err. */
int config_save(const struct config *cfg, char *err, size_t errlen);

/* Applies environment overrides; any argument may be NULL. url makes the
 * configuration read-only and selects a server named master or "default"
 * with that URL. */
void config_apply_env(struct config *cfg, const char *url, const char *master,
                      const char *grid, const char *token);

/* Borrowed server by name, or NULL when there is none. */
struct config_server *config_find(const struct config *cfg, const char *name);
/* The current server (KONTENA_MASTER first), or NULL. */
struct config_server *config_current(const struct config *cfg);
/* Adds srv, replacing a server of the same name; takes ownership. */
void config_put_server(struct config *cfg, struct config_server *srv);
/* Removes and frees the named server; clears current_server if it pointed
 * at it. Returns 0 or CP_ENOTFOUND. */
int config_remove_server(struct config *cfg, const char *name);
/* Sets current_server (copied; NULL clears it). */
void config_set_current(struct config *cfg, const char *name);

/* The token and grid for srv with environment overrides applied; borrowed,
 * may be NULL. */
const char *config_token(const struct config *cfg,
                         const struct config_server *srv);
const char *config_grid(const struct config *cfg,
                        const struct config_server *srv);
/* True when the token for srv comes from KONTENA_TOKEN. */
bool config_token_from_env(const struct config *cfg,
                           const struct config_server *srv);

struct config_server *config_server_new(const char *name, const char *url);
void config_server_free(struct config_server *srv);
/* Replaces *field with a copy of s (NULL clears it). */
void config_set_str(char **field, const char *s);

#endif
