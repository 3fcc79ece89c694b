/* Service lifecycle hooks: one-off pre_start containers and exec'd
 * post_start / pre_stop commands (hooks.h).
 * SPDX-License-Identifier: Apache-2.0 */
#include "hooks.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../common/util.h"

#include <stdio.h>
#include <string.h>

#define HOOKS_MARGIN_MS 5000 /* on top of the hook timeout, for HTTP */

bool hooks_any(const struct pod *p, enum pod_hook_type type)
{
    for (size_t i = 0; i < p->nhooks; i++)
        if (pods_hook_runs(p, i, type))
            return true;
    return false;
}

char *hooks_container_name(const char *container, const char *hook)
{
    char *name = cp_asprintf("%s-pre-start-%s", container, hook);
    for (char *c = name; *c != '\0'; c++) {
        bool ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                  (*c >= '0' && *c <= '9') || *c == '_' || *c == '.' ||
                  *c == '-';
        if (!ok)
            *c = '-';
    }
    return name;
}

int hooks_timeout_s(const char *value)
{
    long long v;
    if (value == NULL || cp_parse_int(value, 1, 86400, &v) != 0)
        return HOOKS_TIMEOUT_S;
    return (int)v;
}

/* The one-off container: the pod's image, env (with secrets) and user,
 * catatonit as PID 1, no kontena labels (so the diff never sees it). */
static json_t *oneoff_body(const struct pod *p, const char *cmd)
{
    json_t *full = NULL;
    pods_container_spec(p, &full);
    json_t *body = json_pack("{s:s, s:[s,s], s:[s], s:{s:b}}", "Image",
                             p->image_name, "Entrypoint", "sh", "-c", "Cmd",
                             cmd, "HostConfig", "Init", 1);
    json_t *env = json_object_get(full, "Env");
    if (env != NULL)
        json_object_set(body, "Env", env);
    if (p->user != NULL)
        json_object_set_new(body, "User", json_string(p->user));
    json_decref(full);
    return body;
}

/* Runs cmd in a one-off container; *code gets its exit status. */
static int run_oneoff(struct engine *e, const struct pod *p,
                      const char *container, const struct pod_hook *h,
                      int timeout_s, int *code, char *err, size_t errlen)
{
    char *name = hooks_container_name(container, h->name);
    char eerr[512];
    /* A leftover from an agent that died mid-hook would block the name. */
    engine_container_remove(e, name, true, eerr, sizeof(eerr));
    json_t *body = oneoff_body(p, h->cmd);
    char *id = NULL;
    int rc = engine_container_create(e, name, body, &id, eerr, sizeof(eerr));
    json_decref(body);
    if (rc == 0)
        rc = engine_container_start(e, id, eerr, sizeof(eerr));
    if (rc == 0)
        rc = engine_container_wait(e, id, timeout_s * 1000 + HOOKS_MARGIN_MS,
                                   code, eerr, sizeof(eerr));
    if (rc != 0)
        snprintf(err, errlen, "%s", eerr);
    if (id != NULL &&
        engine_container_remove(e, id, true, eerr, sizeof(eerr)) != 0)
        cp_warn("hooks: cannot remove %s: %s", name, eerr);
    cp_free(id);
    cp_free(name);
    return rc;
}

int hooks_run(struct engine *e, const struct pod *p, enum pod_hook_type type,
              const char *container, int timeout_s, hooks_done_fn *done,
              void *ctx, char *err, size_t errlen)
{
    const char *tname = pods_hook_type_name(type);
    int first = 0;
    for (size_t i = 0; i < p->nhooks; i++) {
        if (!pods_hook_runs(p, i, type))
            continue;
        const struct pod_hook *h = &p->hooks[i];
        char eerr[512] = "";
        int code = -1;
        int rc;
        cp_info("hooks: %s-%d: %s hook %s: %s", p->service_name,
                p->instance_number, tname, h->name, h->cmd);
        int64_t t0 = cp_mono_ms();
        if (type == POD_HOOK_PRE_START) {
            rc = run_oneoff(e, p, container, h, timeout_s, &code, eerr,
                            sizeof(eerr));
        } else {
            json_t *argv = json_pack("[s,s,s]", "sh", "-c", h->cmd);
            rc = engine_exec(e, container, argv,
                             timeout_s * 1000 + HOOKS_MARGIN_MS, &code, eerr,
                             sizeof(eerr));
            json_decref(argv);
        }
        char why[768];
        if (rc == CP_ETIMEDOUT)
            snprintf(why, sizeof(why),
                     "%s hook %s failed: timed out after %d s", tname, h->name,
                     timeout_s);
        else if (rc != 0)
            snprintf(why, sizeof(why), "%s hook %s failed: %s", tname, h->name,
                     eerr);
        else if (code != 0)
            snprintf(why, sizeof(why), "%s hook %s failed: exit %d", tname,
                     h->name, code);
        if (rc == 0 && code == 0) {
            cp_info("hooks: %s-%d: %s hook %s done in %lld ms", p->service_name,
                    p->instance_number, tname, h->name,
                    (long long)(cp_mono_ms() - t0));
            if (h->is_oneshot && done != NULL)
                done(ctx, p, h);
            continue;
        }
        cp_warn("hooks: %s-%d: %s", p->service_name, p->instance_number, why);
        if (first == 0) {
            first = rc != 0 ? rc : CP_EIO;
            snprintf(err, errlen, "%s", why);
        }
        if (type != POD_HOOK_PRE_STOP)
            break;
    }
    return first;
}
