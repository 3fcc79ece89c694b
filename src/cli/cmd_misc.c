/* Top-level commands that are not groups: "kontena whoami" and
 * "kontena version".
 * SPDX-License-Identifier: Apache-2.0 */
#include "cli.h"
#include "output.h"
#include "../common/alloc.h"
#include "../common/json.h"
#include "../common/version.h"

#include <stdio.h>

int cmd_whoami(struct cli *cli, const struct args *a)
{
    if (cli_config(cli) != 0)
        return 1;
    const struct config_server *s = config_current(cli->cfg);
    if (a->vals != NULL && args_has(a, "bash-completion-path")) {
        if (s != NULL)
            printf("%s\n", s->name);
        return 0;
    }
    struct client *c = cli_connect(cli);
    if (c == NULL)
        return 1;
    json_t *user = cli_call(cli, c, "GET", "/v1/user", NULL,
                            "cannot get the current user");
    client_free(c);
    if (user == NULL)
        return 1;
    if (cli->is_json) {
        output_json(user, stdout);
    } else {
        const char *grid = config_grid(cli->cfg, s);
        const char *email = cp_json_str(user, "email");
        printf("Master: %s\nURL: %s\nGrid: %s\nUser: %s\n", s->name, s->url,
               grid != NULL ? grid : "-", email != NULL ? email : "-");
    }
    json_decref(user);
    return 0;
}

int cmd_version(struct cli *cli, const struct args *a)
{
    CP_UNUSED(a);
    printf("cli: %s\n", KONTENA_VERSION);
    if (cli_config(cli) != 0)
        return 1;
    struct config_server *s = config_current(cli->cfg);
    if (s == NULL || s->url == NULL)
        return 0;
    struct client *c = client_new(cli->cfg, s, NULL);
    client_set_anonymous(c, true);
    json_t *root = NULL;
    int rc = 0;
    if (client_request(c, "GET", "/", NULL, &root) != 0) {
        rc =
            cli_fail(cli, "cannot get the master version: %s", client_error(c));
    } else {
        const char *v = cp_json_str(root, "version");
        printf("master: %s (%s)\n", v != NULL ? v : "unknown", s->url);
    }
    json_decref(root);
    client_free(c);
    return rc;
}
