/* External registries: name derivation and pod credentials (registry.h).
 * SPDX-License-Identifier: Apache-2.0 */
#include "registry.h"
#include "vault.h"
#include "../common/alloc.h"
#include "../common/crypto.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../common/util.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static bool is_host_char(char c)
{
    return isalnum((unsigned char)c) || c == '.' || c == '-' || c == '_';
}

int registry_name_from_url(const char *url, char *out, size_t outlen, char *err,
                           size_t errlen)
{
    out[0] = '\0';
    const char *p = NULL;
    int port = 0;
    if (url == NULL || url[0] == '\0') {
        snprintf(err, errlen, "is required");
        return CP_EINVAL;
    }
    if (strncasecmp(url, "http://", 7) == 0) {
        p = url + 7;
        port = 80;
    } else if (strncasecmp(url, "https://", 8) == 0) {
        p = url + 8;
        port = 443;
    } else {
        snprintf(err, errlen, "must be an http:// or https:// url");
        return CP_EINVAL;
    }
    for (const char *s = url; *s != '\0'; s++) {
        if (isspace((unsigned char)*s) || iscntrl((unsigned char)*s)) {
            snprintf(err, errlen, "must not contain blanks");
            return CP_EINVAL;
        }
    }
    size_t auth_len = strcspn(p, "/?#");
    const char *at = memchr(p, '@', auth_len);
    if (at != NULL) {
        snprintf(err, errlen,
                 "must not contain credentials; use username "
                 "and password");
        return CP_EINVAL;
    }
    const char *host = p;
    size_t host_len = 0;
    const char *rest = NULL;
    if (*p == '[') { /* [IPv6]:port */
        const char *close = memchr(p, ']', auth_len);
        if (close == NULL || close == p + 1) {
            snprintf(err, errlen, "has a bad IPv6 host");
            return CP_EINVAL;
        }
        for (const char *s = p + 1; s < close; s++) {
            if (!isxdigit((unsigned char)*s) && *s != ':' && *s != '.') {
                snprintf(err, errlen, "has a bad IPv6 host");
                return CP_EINVAL;
            }
        }
        host_len = (size_t)(close - p) + 1;
        rest = close + 1;
    } else {
        while (host_len < auth_len && host[host_len] != ':')
            host_len++;
        rest = host + host_len;
        for (size_t i = 0; i < host_len; i++) {
            if (!is_host_char(host[i])) {
                snprintf(err, errlen, "has a bad host name");
                return CP_EINVAL;
            }
        }
    }
    if (host_len == 0) {
        snprintf(err, errlen, "has no host");
        return CP_EINVAL;
    }
    const char *end = p + auth_len;
    if (rest < end) {
        if (*rest != ':' || rest + 1 == end) {
            snprintf(err, errlen, "has a bad port");
            return CP_EINVAL;
        }
        long v = 0;
        for (const char *s = rest + 1; s < end; s++) {
            if (!isdigit((unsigned char)*s) || v > 65535) {
                snprintf(err, errlen, "has a bad port");
                return CP_EINVAL;
            }
            v = v * 10 + (*s - '0');
        }
        if (v < 1 || v > 65535) {
            snprintf(err, errlen, "has a bad port");
            return CP_EINVAL;
        }
        port = (int)v;
    }
    int n = port == 80 || port == 443
                ? snprintf(out, outlen, "%.*s", (int)host_len, host)
                : snprintf(out, outlen, "%.*s:%d", (int)host_len, host, port);
    if (n < 0 || (size_t)n >= outlen) {
        out[0] = '\0';
        snprintf(err, errlen, "has a host name that is too long");
        return CP_EINVAL;
    }
    /* Host names are case-insensitive and image references name them in
     * lower case (cp_image_registry matches exactly): "Quay.io" is
     * "quay.io". */
    for (size_t i = 0; i < host_len; i++)
        out[i] = (char)tolower((unsigned char)out[i]);
    return 0;
}

/* {username, password, email, serveraddress} of r with its password
 * opened; NULL (logged) when it cannot be opened. */
static json_t *credentials(struct master *m, const struct store_registry *r,
                           const char *grid_id)
{
    char *pass = NULL;
    size_t len = 0;
    /* During a key rotation it may still be under VAULT_KEY_PREVIOUS. */
    int rc = master_open_sealed(m, r->password_sealed, &pass, &len);
    if (rc != 0) {
        cp_error("registries: cannot open the password of registry %s in "
                 "grid %s (%s): was the master key (VAULT_KEY or "
                 "master.key) changed without VAULT_KEY_PREVIOUS and "
                 "vault-rekey?",
                 r->name, grid_id, cp_strerror(rc));
        return NULL;
    }
    json_t *c = json_object();
    cp_json_set_str(c, "username", r->username);
    json_t *pj = json_stringn(pass, len);
    json_object_set_new(c, "password", pj != NULL ? pj : json_string(""));
    cp_json_set_str(c, "email", r->email);
    cp_json_set_str(c, "serveraddress", r->url);
    /* The plaintext lives on only in c, which goes to the agent. */
    vault_plain_free(pass, len);
    return c;
}

int registry_add_pod_credentials(struct master *m, const char *grid_id,
                                 json_t *pods)
{
    if (json_array_size(pods) == 0)
        return 0;
    struct store_registry_list regs = {0};
    int rc = ST_CALL(m->store, registry_list, grid_id, &regs);
    if (rc != 0 || regs.len == 0) {
        store_registry_list_release(&regs);
        return rc;
    }
    /* Opened once per registry per list, only when a pod needs it. */
    json_t **opened = cp_calloc(regs.len, sizeof(*opened));
    bool *tried = cp_calloc(regs.len, sizeof(*tried));
    size_t i;
    json_t *pod;
    json_array_foreach(pods, i, pod)
    {
        char name[REGISTRY_NAME_MAX];
        cp_image_registry(cp_json_str(pod, "image_name"), name, sizeof(name));
        for (size_t k = 0; k < regs.len; k++) {
            if (strcmp(regs.items[k].name, name) != 0)
                continue;
            if (!tried[k]) {
                tried[k] = true;
                opened[k] = credentials(m, &regs.items[k], grid_id);
            }
            if (opened[k] == NULL)
                break;
            json_t *copy = json_copy(pod);
            json_object_set(copy, "image_credentials", opened[k]);
            json_array_set_new(pods, i, copy);
            break;
        }
    }
    for (size_t k = 0; k < regs.len; k++)
        json_decref(opened[k]);
    cp_free(opened);
    cp_free(tried);
    store_registry_list_release(&regs);
    return 0;
}
