/* Docker Engine API client over a unix socket (libcurl). Calls are
 * synchronous with short timeouts; the agent makes them from the main
 * loop between WebSocket events, so every call is bounded in time and in
 * response size. Written for Docker's API and tolerant of Podman's compat
 * layer (engine/NOTES.md).
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef CP_AGENT_ENGINE_H
#define CP_AGENT_ENGINE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define ENGINE_API_PREFIX "/v1.41"
#define ENGINE_MAX_BODY (8u * 1024 * 1024)
#define ENGINE_CONNECT_TIMEOUT_MS 5000
#define ENGINE_TIMEOUT_MS 15000

struct engine;

/* A client for the engine listening on socket_path (borrowed, copied).
 * Never fails; connection problems show up on the first call. */
struct engine *engine_new(const char *socket_path);
void engine_free(struct engine *e);

/* GET ENGINE_API_PREFIX + path and parse the JSON body into *out (new
 * reference). Returns 0; CP_EIO when the engine is unreachable or answers
 * 5xx; CP_ENOTFOUND on 404; CP_EINVAL on other 4xx; CP_EPROTO when the
 * body is too big or not JSON. On error err holds one line, with the
 * engine's own "message" when it sent one. */
int engine_get_json(struct engine *e, const char *path, json_t **out, char *err,
                    size_t errlen);

/* GET /info and GET /version; same contract as engine_get_json, and *out
 * is checked to be an object. */
int engine_info(struct engine *e, json_t **out, char *err, size_t errlen);
int engine_version(struct engine *e, json_t **out, char *err, size_t errlen);

/* True when a /version document comes from Podman's compat layer
 * (a component named "Podman Engine"). Podman differs from Docker in ways
 * the agent must know about: its /info ID is regenerated on every call.
 * Pure. */
bool engine_is_podman(const json_t *version);

/* Extracts the engine's error text from a response body: the "message"
 * member of a JSON object (Docker and Podman both send it), else the
 * body's first line. Writes at most errlen bytes to out. Pure. */
void engine_error_text(const char *body, size_t len, char *out, size_t outlen);

/* ==== Containers and images (the pod worker) ====
 *
 * Same error contract as engine_get_json: 0; CP_EIO (unreachable, 5xx);
 * CP_ENOTFOUND (404); CP_ECONFLICT (409); CP_EINVAL (other 4xx);
 * CP_EPROTO (bad or oversized body); err holds one line naming the call
 * and the engine's message. A struct engine is not thread-safe: each
 * thread that calls the engine owns its own (engine_new is cheap). */

/* GET /containers/json?all=1, only containers carrying label (a key, or
 * "key=value"); NULL lists every container. *out: new JSON array. */
int engine_containers_list(struct engine *e, const char *label, json_t **out,
                           char *err, size_t errlen);
/* GET /containers/{id}/json; *out: new object. */
int engine_container_inspect(struct engine *e, const char *id, json_t **out,
                             char *err, size_t errlen);
/* POST /containers/create?name=name with body; *id_out: the new id
 * (caller frees). */
int engine_container_create(struct engine *e, const char *name,
                            const json_t *body, char **id_out, char *err,
                            size_t errlen);
/* POST /containers/{id}/start; "already started" (304) counts as 0. */
int engine_container_start(struct engine *e, const char *id, char *err,
                           size_t errlen);
/* POST /containers/{id}/stop?t=timeout_s (timeout_s < 0: the engine's
 * default); the HTTP timeout is timeout_s plus a margin. 304 counts as 0. */
int engine_container_stop(struct engine *e, const char *id, int timeout_s,
                          char *err, size_t errlen);
/* POST /containers/{id}/kill?signal=sig (NULL: SIGKILL). */
int engine_container_kill(struct engine *e, const char *id, const char *sig,
                          char *err, size_t errlen);
/* DELETE /containers/{id}?force=1&v=1 when force, else ?v=1. */
int engine_container_remove(struct engine *e, const char *id, bool force,
                            char *err, size_t errlen);
/* POST /containers/{id}/wait: blocks until the container is not running
 * (at most timeout_ms: CP_ETIMEDOUT) and gives its StatusCode. */
int engine_container_wait(struct engine *e, const char *id, int timeout_ms,
                          int *status_code, char *err, size_t errlen);
/* Runs argv (a JSON array of strings) in the running container id:
 * POST /containers/{id}/exec, POST /exec/{eid}/start with Detach false
 * (the multiplexed output is read and dropped; it ends when the command
 * does), then GET /exec/{eid}/json for ExitCode into *exit_code. The
 * whole run takes at most timeout_ms (CP_ETIMEDOUT; the command may go
 * on running in the container). CP_ECONFLICT when the container is not
 * running. */
int engine_exec(struct engine *e, const char *id, const json_t *argv,
                int timeout_ms, int *exit_code, char *err, size_t errlen);
/* GET /containers/{id}/stats?stream=false; *out: new object. */
int engine_container_stats(struct engine *e, const char *id, json_t **out,
                           char *err, size_t errlen);
/* GET /images/{ref}/json; *out: new object (NULL allowed: only check). */
int engine_image_inspect(struct engine *e, const char *ref, json_t **out,
                         char *err, size_t errlen);
/* POST /images/create?fromImage=ref (tag split off). The engine answers
 * 200 and a JSON progress stream even when the pull fails (Podman always
 * does): an errorDetail/error member anywhere in the stream makes it
 * CP_EIO with that message in err. Takes up to ENGINE_PULL_TIMEOUT_MS. */
#define ENGINE_PULL_TIMEOUT_MS 600000
/* auth (may be NULL) is sent as the X-Registry-Auth header: see
 * engine_registry_auth(). */
int engine_image_pull(struct engine *e, const char *ref, const char *auth,
                      char *err, size_t errlen);
/* The X-Registry-Auth value for pull credentials: base64url (padded) of
 * the JSON {username, password, email, serveraddress}, members that are
 * NULL left out. New string (caller frees; it holds the password). Pure. */
char *engine_registry_auth(const char *username, const char *password,
                           const char *email, const char *serveraddress);
/* The first error in a pull's JSON progress stream (errorDetail.message,
 * else error), or NULL when there is none. Borrowed from stream; body is
 * NUL-terminated text. Pure; writes the message into out. */
bool engine_pull_error(const char *body, size_t len, char *out, size_t outlen);

/* Called with each chunk of a streamed body; return 0 to go on, non-zero
 * to stop the stream. */
typedef int engine_chunk_fn(void *ctx, const char *data, size_t len);

/* GET ENGINE_API_PREFIX + path with no overall timeout, feeding the body
 * to fn as it arrives (events, logs with follow=1). Returns when the
 * engine ends the stream (0), when fn or *cancel asks to stop (0; cancel
 * is polled at least once a second), or on error (CP_EIO, CP_ENOTFOUND,
 * CP_EINVAL, with err). */
int engine_stream(struct engine *e, const char *path, engine_chunk_fn *fn,
                  void *ctx, const volatile int *cancel, char *err,
                  size_t errlen);

#endif
