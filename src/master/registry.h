/* External registries (spec 3.1, 4.5, 7): the name a registry is known
 * by, the registry an image is pulled from, and the image_credentials the
 * pods of a grid carry to its agents. Passwords are sealed at rest with
 * the master's seal key and opened only to build a pod list.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef CP_REGISTRY_H
#define CP_REGISTRY_H

#include <jansson.h>
#include <stddef.h>

#include "master.h"

#define REGISTRY_NAME_MAX 256

/* The name of the registry at url (as the original): its host in lower
 * case (image references are matched against it exactly), plus ":port"
 * when the port is neither 80 nor 443. url must be http:// or
 * https:// with a host and no blanks. Returns 0, or CP_EINVAL with a
 * lower-case reason in err. Pure. */
int registry_name_from_url(const char *url, char *out, size_t outlen, char *err,
                           size_t errlen);

/* Sets image_credentials {username, password, email, serveraddress} on
 * every pod of pods (an array, edited in place) whose image_name is
 * pulled from one of grid_id's registries (cp_image_registry). Pods in
 * the array may be shared (memoised): a pod that gets credentials is
 * replaced by a shallow copy, never written to. One store read; a grid
 * without registries costs nothing more. Returns 0 or the store's error (pods
 * are then left without credentials). A password that cannot be opened is
 * logged (without its value) and its pods get none. */
int registry_add_pod_credentials(struct master *m, const char *grid_id,
                                 json_t *pods);

#endif
