/* Node facts and stats: /proc parsers, payload builders, and the few
 * functions that read the system. Units follow the original agent: bytes
 * for memory and disk, percentages for CPU, counters for network.
 * SPDX-License-Identifier: Apache-2.0 */
#include "facts.h"
#include "../common/alloc.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/util.h"
#include "../common/version.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <inttypes.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

/* ==== /proc parsers ==== */

/* Moves *p to the start of the next line; false at the end. */
static bool next_line(const char **p)
{
    const char *nl = strchr(*p, '\n');
    if (nl == NULL)
        return false;
    *p = nl + 1;
    return true;
}

static bool parse_u64(const char **p, uint64_t *out)
{
    const char *s = *p;
    while (*s == ' ' || *s == '\t')
        s++;
    if (*s < '0' || *s > '9')
        return false;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    *out = v;
    *p = end;
    return true;
}

int facts_parse_meminfo(const char *text, struct facts_mem *out)
{
    static const struct {
        const char *key;
        size_t offset;
    } keys[] = {
        {"MemTotal:", offsetof(struct facts_mem, total)},
        {"MemFree:", offsetof(struct facts_mem, free)},
        {"MemAvailable:", offsetof(struct facts_mem, available)},
        {"Active:", offsetof(struct facts_mem, active)},
        {"Inactive:", offsetof(struct facts_mem, inactive)},
        {"Cached:", offsetof(struct facts_mem, cached)},
        {"Buffers:", offsetof(struct facts_mem, buffers)},
    };
    memset(out, 0, sizeof(*out));
    bool has_total = false, has_free = false;
    const char *line = text;
    do {
        for (size_t i = 0; i < CP_ARRAY_LEN(keys); i++) {
            size_t n = strlen(keys[i].key);
            if (strncmp(line, keys[i].key, n) != 0)
                continue;
            const char *p = line + n;
            uint64_t v;
            if (!parse_u64(&p, &v))
                break;
            /* Values are in kB unless the line has no unit. */
            while (*p == ' ')
                p++;
            if (strncmp(p, "kB", 2) == 0)
                v *= 1024;
            memcpy((char *)out + keys[i].offset, &v, sizeof(v));
            has_total |= i == 0;
            has_free |= i == 1;
            break;
        }
    } while (next_line(&line));
    return has_total && has_free ? 0 : CP_EINVAL;
}

int facts_parse_loadavg(const char *text, double out[3])
{
    char *end = NULL;
    const char *p = text;
    for (int i = 0; i < 3; i++) {
        while (*p == ' ')
            p++;
        if ((*p < '0' || *p > '9') && *p != '.')
            return CP_EINVAL;
        out[i] = strtod(p, &end);
        if (end == p)
            return CP_EINVAL;
        p = end;
    }
    return 0;
}

int facts_parse_cpu(const char *text, struct facts_cpu *out)
{
    memset(out, 0, sizeof(*out));
    bool has_total = false;
    const char *line = text;
    do {
        if (strncmp(line, "cpu ", 4) == 0) {
            uint64_t *fields[] = {&out->user,    &out->nice,   &out->system,
                                  &out->idle,    &out->iowait, &out->irq,
                                  &out->softirq, &out->steal};
            const char *p = line + 4;
            size_t n = 0;
            while (n < CP_ARRAY_LEN(fields) && parse_u64(&p, fields[n]))
                n++;
            /* Kernels since 2.6 give at least user..irq..softirq. */
            has_total = n >= 4;
        } else if (strncmp(line, "cpu", 3) == 0 && line[3] >= '0' &&
                   line[3] <= '9') {
            out->num_cores++;
        }
    } while (next_line(&line));
    return has_total ? 0 : CP_EINVAL;
}

static double pct(uint64_t part, uint64_t total)
{
    double v = total > 0 ? 100.0 * (double)part / (double)total : 0.0;
    /* Two decimals are plenty and keep the payload small. */
    return (double)(int64_t)(v * 100.0 + 0.5) / 100.0;
}

/* b - a, or 0 when the counter went backwards (a CPU went offline). */
static uint64_t delta(uint64_t a, uint64_t b)
{
    return b >= a ? b - a : 0;
}

json_t *facts_cpu_json(const struct facts_cpu *prev,
                       const struct facts_cpu *cur)
{
    uint64_t user = 0, sys = 0, idle = 0, steal = 0;
    if (prev != NULL) {
        user = delta(prev->user + prev->nice, cur->user + cur->nice);
        sys = delta(prev->system + prev->irq + prev->softirq,
                    cur->system + cur->irq + cur->softirq);
        idle = delta(prev->idle + prev->iowait, cur->idle + cur->iowait);
        steal = delta(prev->steal, cur->steal);
    }
    uint64_t total = user + sys + idle + steal;
    return json_pack("{s:i, s:f, s:f, s:f, s:f}", "num_cores",
                     cur->num_cores > 0 ? cur->num_cores : 1, "system",
                     pct(sys, total), "user", pct(user, total), "idle",
                     total > 0 ? pct(idle, total) : 100.0, "steal",
                     pct(steal, total));
}

bool facts_default_iface(const char *route_text, char *out, size_t outlen)
{
    const char *line = route_text;
    /* Skip the header line. */
    if (!next_line(&line))
        return false;
    do {
        char iface[IF_NAMESIZE + 1], dest[16], mask[16];
        if (sscanf(line, "%16s %15s %*s %*s %*s %*s %*s %15s", iface, dest,
                   mask) != 3)
            continue;
        if (strcmp(dest, "00000000") == 0 && strcmp(mask, "00000000") == 0) {
            snprintf(out, outlen, "%s", iface);
            return true;
        }
    } while (next_line(&line));
    return false;
}

bool facts_iface_is_internal(const char *name)
{
    static const char *const prefixes[] = {
        "weave", "vethwe",  "docker", "veth",  "cni",      "podman",
        "br-",   "flannel", "kube",   "virbr", "datapath", "vxlan",
    };
    for (size_t i = 0; i < CP_ARRAY_LEN(prefixes); i++) {
        if (strncmp(name, prefixes[i], strlen(prefixes[i])) == 0)
            return true;
    }
    return false;
}

json_t *facts_network_json(const char *netdev_text)
{
    json_t *in_names = json_array(), *ex_names = json_array();
    uint64_t in_rx = 0, in_tx = 0, ex_rx = 0, ex_tx = 0;
    const char *line = netdev_text;
    do {
        /* "  eth0: 123 4 0 0 0 0 0 0 456 7 ..." : receive has 8 fields,
         * transmit bytes is the 9th number. */
        const char *colon = strchr(line, ':');
        const char *nl = strchr(line, '\n');
        if (colon == NULL || (nl != NULL && colon > nl))
            continue;
        const char *name = line;
        while (*name == ' ')
            name++;
        size_t name_len = (size_t)(colon - name);
        if (name_len == 0 || name_len > IF_NAMESIZE)
            continue;
        const char *p = colon + 1;
        uint64_t v[9];
        size_t n = 0;
        while (n < CP_ARRAY_LEN(v) && parse_u64(&p, &v[n]))
            n++;
        if (n < CP_ARRAY_LEN(v))
            continue;
        char ifname[IF_NAMESIZE + 1];
        memcpy(ifname, name, name_len);
        ifname[name_len] = '\0';
        if (strcmp(ifname, "lo") == 0)
            continue;
        if (facts_iface_is_internal(ifname)) {
            json_array_append_new(in_names, json_string(ifname));
            in_rx += v[0];
            in_tx += v[8];
        } else {
            json_array_append_new(ex_names, json_string(ifname));
            ex_rx += v[0];
            ex_tx += v[8];
        }
    } while (next_line(&line));
    return json_pack("{s:{s:o, s:I, s:I}, s:{s:o, s:I, s:I}}", "internal",
                     "interfaces", in_names, "rx_bytes", (json_int_t)in_rx,
                     "tx_bytes", (json_int_t)in_tx, "external", "interfaces",
                     ex_names, "rx_bytes", (json_int_t)ex_rx, "tx_bytes",
                     (json_int_t)ex_tx);
}

char *facts_parse_os_release(const char *text)
{
    const char *line = text;
    do {
        if (strncmp(line, "PRETTY_NAME=", 12) != 0)
            continue;
        const char *v = line + 12;
        size_t len = strcspn(v, "\n");
        if (len >= 2 && (v[0] == '"' || v[0] == '\'') && v[len - 1] == v[0]) {
            v++;
            len -= 2;
        }
        return len > 0 ? cp_strndup(v, len) : NULL;
    } while (next_line(&line));
    return NULL;
}

/* ==== Payloads ==== */

/* Drivers.<kind> from info.Plugins.<kind> (a list of names). The engine's
 * built-in drivers have no version of their own. */
static json_t *drivers(const json_t *info, const char *kind)
{
    json_t *out = json_array();
    json_t *names = json_object_get(json_object_get(info, "Plugins"), kind);
    size_t i;
    json_t *v;
    json_array_foreach(names, i, v)
    {
        if (json_is_string(v))
            json_array_append_new(
                out, json_pack("{s:O, s:n}", "name", v, "version"));
    }
    return out;
}

static void fill_str(json_t *obj, const char *key, const char *value)
{
    const char *have = cp_json_str(obj, key);
    if ((have == NULL || have[0] == '\0') && value != NULL)
        json_object_set_new(obj, key, json_string(value));
}

json_t *facts_node_update(const json_t *info, const json_t *version,
                          const struct facts_node *node)
{
    json_t *p = json_is_object(info) ? json_deep_copy(info) : json_object();
    if (node->name != NULL)
        json_object_set_new(p, "Name", json_string(node->name));
    json_object_set_new(p, "PublicIp",
                        node->public_ip != NULL ? json_string(node->public_ip)
                                                : json_null());
    json_object_set_new(p, "PrivateIp",
                        node->private_ip != NULL ? json_string(node->private_ip)
                                                 : json_null());
    json_object_set_new(p, "AgentVersion", json_string(KONTENA_VERSION));
    json_object_set_new(p, "Drivers",
                        json_pack("{s:o, s:o}", "Volume",
                                  drivers(info, "Volume"), "Network",
                                  drivers(info, "Network")));
    if (node->has_labels) {
        json_t *labels = json_array();
        for (size_t i = 0; i < node->nlabels; i++)
            json_array_append_new(labels, json_string(node->labels[i]));
        json_object_set_new(p, "Labels", labels);
    } else if (!json_is_array(json_object_get(p, "Labels"))) {
        json_object_set_new(p, "Labels", json_array());
    }
    if (json_is_object(version)) {
        fill_str(p, "ServerVersion", cp_json_str(version, "Version"));
        fill_str(p, "KernelVersion", cp_json_str(version, "KernelVersion"));
    }
    fill_str(p, "KernelVersion", node->kernel);
    fill_str(p, "OperatingSystem", node->os);
    return p;
}

json_t *facts_stats(const struct facts_mem *mem, const double load[3],
                    const struct facts_fs *fs, json_t *cpu, json_t *network,
                    int64_t now_ms)
{
    /* "used" is what free(1) calls used: neither free nor page cache. */
    uint64_t reclaimable = mem->free + mem->buffers + mem->cached;
    uint64_t used = mem->total > reclaimable ? mem->total - reclaimable : 0;
    json_t *filesystem = json_array();
    if (fs != NULL)
        json_array_append_new(
            filesystem,
            json_pack("{s:s, s:I, s:I, s:I}", "name", fs->name, "total",
                      (json_int_t)fs->total, "free", (json_int_t)fs->free,
                      "used", (json_int_t)fs->used));
    char when[32];
    cp_time_iso(now_ms, when, sizeof(when));
    return json_pack(
        "{s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I}, s:{s:f, s:f, s:f}, s:o,"
        " s:{s:i}, s:o, s:o, s:s}",
        "memory", "total", (json_int_t)mem->total, "free",
        (json_int_t)mem->free, "active", (json_int_t)mem->active, "inactive",
        (json_int_t)mem->inactive, "cached", (json_int_t)mem->cached, "buffers",
        (json_int_t)mem->buffers, "used", (json_int_t)used, "load", "1m",
        load[0], "5m", load[1], "15m", load[2], "filesystem", filesystem,
        "usage", "container_seconds", 0, "cpu", cpu, "network", network, "time",
        when);
}

void facts_stable_id(const char *seed, char *out)
{
    char hex[65];
    cp_sha256_hex(seed, strlen(seed), hex);
    size_t o = 0;
    for (size_t i = 0; i < 48; i++) {
        if (i > 0 && i % 4 == 0)
            out[o++] = ':';
        char c = hex[i];
        out[o++] = c >= 'a' && c <= 'f' ? (char)(c - 'a' + 'A') : c;
    }
    out[o] = '\0';
}

/* ==== System access ==== */

char *facts_read_file(const char *path, size_t max)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    char *buf = cp_malloc(max + 1);
    size_t len = 0;
    while (len < max) {
        ssize_t n = read(fd, buf + len, max - len);
        if (n < 0) {
            cp_free(buf);
            buf = NULL;
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
out:
    close(fd);
    return buf;
}

bool facts_detect_ip(char *out, size_t outlen)
{
    char iface[IF_NAMESIZE + 1] = "";
    char *route = facts_read_file("/proc/net/route", 64 * 1024);
    if (route != NULL)
        facts_default_iface(route, iface, sizeof(iface));
    cp_free(route);
    struct ifaddrs *ifs = NULL;
    if (getifaddrs(&ifs) != 0)
        return false;
    bool is_found = false;
    /* Two passes: the default-route interface first, then any. */
    for (int pass = 0; pass < 2 && !is_found; pass++) {
        for (struct ifaddrs *i = ifs; i != NULL; i = i->ifa_next) {
            if (i->ifa_addr == NULL || i->ifa_addr->sa_family != AF_INET ||
                (i->ifa_flags & IFF_LOOPBACK) != 0)
                continue;
            if (pass == 0 && strcmp(i->ifa_name, iface) != 0)
                continue;
            const struct sockaddr_in *sin =
                (const struct sockaddr_in *)(const void *)i->ifa_addr;
            if (inet_ntop(AF_INET, &sin->sin_addr, out, (socklen_t)outlen) !=
                NULL) {
                is_found = true;
                break;
            }
        }
    }
    freeifaddrs(ifs);
    return is_found;
}

char *facts_machine_id(void)
{
    static const char *const paths[] = {"/etc/machine-id",
                                        "/var/lib/dbus/machine-id"};
    for (size_t i = 0; i < CP_ARRAY_LEN(paths); i++) {
        char *s = facts_read_file(paths[i], 256);
        if (s == NULL)
            continue;
        s[strcspn(s, "\r\n")] = '\0';
        if (s[0] != '\0')
            return s;
        cp_free(s);
    }
    return NULL;
}

char *facts_kernel_release(void)
{
    char *s = facts_read_file("/proc/sys/kernel/osrelease", 256);
    if (s != NULL)
        s[strcspn(s, "\n")] = '\0';
    return s;
}

char *facts_os_name(void)
{
    char *text = facts_read_file("/etc/os-release", 16 * 1024);
    char *name = text != NULL ? facts_parse_os_release(text) : NULL;
    cp_free(text);
    return name;
}

json_t *facts_sample(struct facts_sampler *s, const char *root_dir)
{
    enum { PROC_MAX = 256 * 1024 };
    json_t *out = NULL;
    struct facts_mem mem;
    double load[3] = {0, 0, 0};
    struct facts_cpu cpu;
    char *meminfo = facts_read_file("/proc/meminfo", PROC_MAX);
    char *loadavg = facts_read_file("/proc/loadavg", 4096);
    char *stat = facts_read_file("/proc/stat", PROC_MAX);
    char *netdev = facts_read_file("/proc/net/dev", PROC_MAX);
    if (meminfo == NULL || facts_parse_meminfo(meminfo, &mem) != 0)
        goto out;
    if (loadavg != NULL)
        facts_parse_loadavg(loadavg, load);
    json_t *cpu_json;
    if (stat != NULL && facts_parse_cpu(stat, &cpu) == 0) {
        cpu_json = facts_cpu_json(s->has_prev ? &s->prev : NULL, &cpu);
        s->prev = cpu;
        s->has_prev = true;
    } else {
        memset(&cpu, 0, sizeof(cpu));
        cpu_json = facts_cpu_json(NULL, &cpu);
    }
    struct facts_fs fs = {.name = root_dir};
    struct statvfs vfs;
    bool has_fs = root_dir != NULL && statvfs(root_dir, &vfs) == 0;
    if (has_fs) {
        fs.total = (uint64_t)vfs.f_blocks * vfs.f_frsize;
        fs.free = (uint64_t)vfs.f_bavail * vfs.f_frsize;
        fs.used = (uint64_t)(vfs.f_blocks - vfs.f_bfree) * vfs.f_frsize;
    }
    out = facts_stats(&mem, load, has_fs ? &fs : NULL, cpu_json,
                      facts_network_json(netdev != NULL ? netdev : ""),
                      cp_now_ms());
out:
    cp_free(meminfo);
    cp_free(loadavg);
    cp_free(stat);
    cp_free(netdev);
    return out;
}
