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

#endif
