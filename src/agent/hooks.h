/* Service lifecycle hooks on the node (spec 5.1): pre_start runs in a
 * one-off container from the pod's image before the service container's
 * first start; post_start and pre_stop run inside the service container
 * through the engine's exec. Every hook is `sh -c <cmd>` and bounded by
 * a timeout. Called from the pod worker thread only (they block on the
 * engine), never from the agent's loop thread.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef CP_AGENT_HOOKS_H
#define CP_AGENT_HOOKS_H

#include "engine.h"
#include "pods.h"

#include <stddef.h>

#define HOOKS_TIMEOUT_S 300 /* default; KONTENA_HOOK_TIMEOUT overrides */
#define HOOKS_TIMEOUT_ENV "KONTENA_HOOK_TIMEOUT"

/* Called after a oneshot hook succeeded (to tell the master). */
typedef void hooks_done_fn(void *ctx, const struct pod *p,
                           const struct pod_hook *h);

/* Runs p's hooks of type that apply to its instance, in list order.
 * container is the service container: its name for pre_start (the
 * one-off container is named after it), its id or name for the exec
 * hooks. pre_start and post_start stop at the first failure and return
 * its error, with "<type> hook <name> failed: exit <code>" (or "...: timed
 * out after N s", or the engine's error) in err; pre_stop runs every
 * hook, logs each failure and returns the first. 0 when all succeeded
 * (or none applied). done (may be NULL) is called for each oneshot hook
 * that succeeded. */
int hooks_run(struct engine *e, const struct pod *p, enum pod_hook_type type,
              const char *container, int timeout_s, hooks_done_fn *done,
              void *ctx, char *err, size_t errlen);

/* True when p has a hook of type for its instance. Pure. */
bool hooks_any(const struct pod *p, enum pod_hook_type type);

/* The one-off container's name: "<container>-pre-start-<hook>", with
 * characters a container name cannot hold turned into '-'. Caller frees.
 * Pure. */
char *hooks_container_name(const char *container, const char *hook);

/* The hook timeout from the KONTENA_HOOK_TIMEOUT value: whole seconds in
 * 1..86400, else (NULL, empty, bad) HOOKS_TIMEOUT_S. Pure. */
int hooks_timeout_s(const char *value);

#endif
