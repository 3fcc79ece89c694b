/* Node views.
 * SPDX-License-Identifier: Apache-2.0 */
#include "nodes.h"
#include "../common/alloc.h"
#include "../common/json.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

const char *nodes_status(const struct store_node *n)
{
    if (n->connected_at == 0 && !n->connected)
        return "created";
    if (!n->connected)
        return "offline";
    if (!n->updated)
        return "connecting";
    if (n->availability != NULL && strcmp(n->availability, "drain") == 0)
        return "drain";
    return "online";
}

void nodes_overlay_ip(const char *subnet, int node_number, char *out,
                      size_t len)
{
    char ip[16];
    const char *slash = subnet ? strchr(subnet, '/') : NULL;
    out[0] = '\0';
    if (slash == NULL || slash - subnet >= (long)sizeof(ip))
        return;
    memcpy(ip, subnet, (size_t)(slash - subnet));
    ip[slash - subnet] = '\0';
    struct in_addr a;
    if (inet_pton(AF_INET, ip, &a) != 1)
        return;
    a.s_addr = htonl(ntohl(a.s_addr) + (uint32_t)node_number);
    inet_ntop(AF_INET, &a, out, (socklen_t)len);
}

static json_t *setting(const struct store_grid *g, const char *key,
                       json_t *dflt)
{
    json_t *v = json_object_get(g->settings, key);
    if (v == NULL) 
        return dflt;
    json_decref(dflt);
    return json_deep_copy(v);
}

json_t *nodes_grid_json(const struct store_grid *g, const char *token)
{
    json_t *j = json_pack("{s:s,s:s,s:i,s:s?,s:s?}", "id", g->name, "name",
                          g->name, "initial_size", g->initial_size, "subnet",
                          g->subnet, "supernet", g->supernet);
    if (token != NULL)
        json_object_set_new(j, "token", json_string(token));
    json_object_set_new(j, "stats",
                        setting(g, "stats", json_pack("{s:n}", "statsd")));
    json_object_set_new(j, "trusted_subnets",
                        setting(g, "trusted_subnets", json_array()));
    json_t *logs = json_object_get(g->settings, "logs");
    if (logs != NULL)
        json_object_set_new(j, "logs", json_deep_copy(logs));
    return j;
}

static json_t *fact(const struct store_node *n, const char *key)
{
    json_t *v = json_object_get(n->info, key);
    return v ? json_deep_copy(v) : json_null();
}

json_t *nodes_json(const struct store_node *n, const struct store_grid *g,
                   const char *grid_token)
{
    char id[512], overlay[16];
    snprintf(id, sizeof(id), "%s/%s", g->name, n->name);
    nodes_overlay_ip(g->subnet, n->node_number, overlay, sizeof(overlay));
    json_t *j = json_object();
    json_object_set_new(j, "id", json_string(id));
    cp_json_set_str(j, "node_id", n->node_id);
    json_object_set_new(j, "connected", json_boolean(n->connected));
    json_object_set_new(j, "updated", json_boolean(n->updated));
    cp_json_set_str(j, "availability",
                    n->availability ? n->availability : "active");
    cp_json_set_time(j, "created_at", n->created_at);
    cp_json_set_time(j, "updated_at", n->updated_at);
    cp_json_set_time(j, "connected_at", n->connected_at);
    cp_json_set_time(j, "last_seen_at", n->last_seen_at);
    cp_json_set_time(j, "disconnected_at", n->disconnected_at);
    json_object_set_new(j, "status", json_string(nodes_status(n)));
    json_object_set_new(j, "has_token", json_boolean(n->token_hash != NULL));
    json_object_set_new(j, "name", json_string(n->name));
    static const char *const facts[] = {
        "os",        "engine_root_dir", "driver",         "network_drivers",
        "volume_drivers", "kernel_version", "mem_total", "mem_limit",
        "cpus",      "public_ip",       "private_ip",     "docker_version",
    };
    for (size_t i = 0; i < CP_ARRAY_LEN(facts); i++)
        json_object_set_new(j, facts[i], fact(n, facts[i]));
    json_object_set_new(j, "labels",
                        n->labels ? json_deep_copy(n->labels) : json_array());
    json_object_set_new(j, "overlay_ip", json_string(overlay));
    cp_json_set_str(j, "agent_version", n->agent_version);
    json_object_set_new(j, "peer_ips", json_array());
    json_object_set_new(j, "node_number", json_integer(n->node_number));
    json_object_set_new(j, "initial_member",
                        json_boolean(n->node_number <= g->initial_size));
    json_object_set_new(j, "grid", nodes_grid_json(g, grid_token));
    json_t *ru = json_object();
    static const char *const usage[] = {"memory", "load", "filesystem",
                                        "usage", "cpu"};
    for (size_t i = 0; i < CP_ARRAY_LEN(usage); i++) {
        json_t *v = json_object_get(n->stats, usage[i]);
        json_object_set_new(ru, usage[i], v ? json_deep_copy(v) : json_null());
    }
    json_object_set_new(j, "resource_usage", ru);
    if (n->close_code != 0)
        json_object_set_new(j, "websocket_connection",
                            json_pack("{s:b,s:i,s:s?}", "opened",
                                      n->connected, "close_code",
                                      n->close_code, "close_reason",
                                      n->close_reason));
    return j;
}

json_t *nodes_info_json(const struct store_node *n,
                        const struct store_grid *g)
{
    char overlay[16];
    nodes_overlay_ip(g->subnet, n->node_number, overlay, sizeof(overlay));
    json_t *j = json_object();
    cp_json_set_str(j, "id", n->node_id);
    cp_json_set_time(j, "created_at", n->created_at);
    cp_json_set_time(j, "updated_at", n->updated_at);
    json_object_set_new(j, "name", json_string(n->name));
    json_object_set_new(j, "labels",
                        n->labels ? json_deep_copy(n->labels) : json_array());
    json_object_set_new(j, "overlay_ip", json_string(overlay));
    json_object_set_new(j, "peer_ips", json_array());
    json_object_set_new(j, "node_number", json_integer(n->node_number));
    json_object_set_new(j, "initial_member",
                        json_boolean(n->node_number <= g->initial_size));
    json_object_set_new(j, "grid", nodes_grid_json(g, NULL));
    return j;
}

json_t *nodes_facts_from_update(const json_t *p)
{
    static const struct {
        const char *from;
        const char *to;
    } map[] = {
        {"OperatingSystem", "os"},   {"KernelVersion", "kernel_version"},
        {"Driver", "driver"},        {"DockerRootDir", "engine_root_dir"},
        {"MemTotal", "mem_total"},   {"NCPU", "cpus"},
        {"PublicIp", "public_ip"},   {"PrivateIp", "private_ip"},
        {"ServerVersion", "docker_version"}, {"Name", "hostname"},
        {"ID", "engine_id"},
    };
    json_t *out = json_object();
    for (size_t i = 0; i < CP_ARRAY_LEN(map); i++) {
        json_t *v = json_object_get(p, map[i].from);
        if (json_is_string(v) || json_is_integer(v) || json_is_real(v))
            json_object_set(out, map[i].to, v);
    }
    json_t *mem_limit = json_object_get(p, "MemLimit");
    json_object_set_new(out, "mem_limit",
                        json_is_boolean(mem_limit) ? json_deep_copy(mem_limit)
                                                   : json_true());
    json_t *drivers = json_object_get(p, "Drivers");
    json_t *vol = json_object_get(drivers, "Volume");
    json_t *net = json_object_get(drivers, "Network");
    json_object_set_new(out, "volume_drivers",
                        json_is_array(vol) ? json_deep_copy(vol)
                                           : json_array());
    json_object_set_new(out, "network_drivers",
                        json_is_array(net) ? json_deep_copy(net)
                                           : json_array());
    return out;
}
