/* What the agent tells the master about its node: the /nodes/update
 * payload (engine /info plus our additions) and the /nodes/stats payload
 * (memory, load, disk, CPU, network from /proc). The parsers and builders
 * are pure: they take text and JSON and return JSON, so tests feed them
 * fixtures. Only facts_read_file(), facts_detect_ip() and
 * facts_sample() touch the system.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef CP_AGENT_FACTS_H
#define CP_AGENT_FACTS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ==== /proc parsers (pure) ==== */

/* Values from /proc/meminfo, in bytes. */
struct facts_mem {
    uint64_t total, free, available, active, inactive, cached, buffers;
};
/* Parses /proc/meminfo text. Returns 0, or CP_EINVAL when MemTotal or
 * MemFree is missing. Missing optional lines stay 0. */
int facts_parse_meminfo(const char *text, struct facts_mem *out);

/* Parses /proc/loadavg ("0.52 0.58 0.59 1/389 12345"); 0 or CP_EINVAL. */
int facts_parse_loadavg(const char *text, double out[3]);

/* Aggregate CPU jiffies from the "cpu " line of /proc/stat, and the
 * number of "cpuN" lines. */
struct facts_cpu {
    uint64_t user, nice, system, idle, iowait, irq, softirq, steal;
    int num_cores;
};
/* Parses /proc/stat text; 0 or CP_EINVAL when there is no "cpu " line. */
int facts_parse_cpu(const char *text, struct facts_cpu *out);
/* The CPU use between two samples as an object {num_cores, system, user,
 * idle, steal} of percentages (0..100). With no elapsed jiffies (or
 * prev == NULL) the percentages are 0 and idle is 100. New reference. */
json_t *facts_cpu_json(const struct facts_cpu *prev,
                       const struct facts_cpu *cur);

/* The interface of the default IPv4 route in /proc/net/route text,
 * copied into out; returns false when there is none. */
bool facts_default_iface(const char *route_text, char *out, size_t outlen);

/* True for interfaces counted as "internal" in stats: the overlay and
 * container bridges and veths (weave*, docker*, veth*, cni*, podman*,
 * br-*, flannel*, kube*, virbr*). lo is neither internal nor external. */
bool facts_iface_is_internal(const char *name);

/* The network object of the stats payload from /proc/net/dev text:
 * {internal:{interfaces:[...], rx_bytes, tx_bytes}, external:{...}}.
 * Malformed lines are skipped. New reference. */
json_t *facts_network_json(const char *netdev_text);

/* ==== Payloads (pure) ==== */

/* What the agent adds to the engine's /info. Borrowed strings. */
struct facts_node {
    const char *name;      /* the node name we connect with */
    const char *public_ip; /* NULL = unknown */
    const char *private_ip;
    char *const *labels; /* KONTENA_NODE_LABELS when has_labels */
    size_t nlabels;
    bool has_labels;
    const char *kernel; /* /proc fallback when /info has none; NULL */
    const char *os;     /* /etc/os-release fallback; NULL */
};

/* The /nodes/update payload: a copy of info (keys as the engine returns
 * them) with Name, PublicIp, PrivateIp, AgentVersion, Drivers{Volume,
 * Network} from info.Plugins, Labels from the config when set, and
 * ServerVersion/KernelVersion/OperatingSystem filled from version (may be
 * NULL) or node when info lacks them. New reference. */
json_t *facts_node_update(const json_t *info, const json_t *version,
                          const struct facts_node *node);

/* One filesystem entry {name, total, free, used} in bytes. */
struct facts_fs {
    const char *name;
    uint64_t total, free, used;
};

/* The /nodes/stats payload from parsed inputs. fs may be NULL (empty
 * list). Takes ownership of cpu and network (from facts_cpu_json() and
 * facts_network_json()). now_ms is the sample's wall-clock time. New
 * reference. */
json_t *facts_stats(const struct facts_mem *mem, const double load[3],
                    const struct facts_fs *fs, json_t *cpu, json_t *network,
                    int64_t now_ms);

/* A stable Docker-style node id ("ABCD:EF01:..." 12 groups of 4 upper
 * case hex digits) derived from seed by SHA-256, for engines whose own ID
 * is not stable (Podman). out must hold FACTS_ID_LEN bytes. Pure. */
#define FACTS_ID_LEN 60
void facts_stable_id(const char *seed, char *out);

/* ==== System access ==== */

/* Reads at most max bytes of a (proc) file into a new NUL-terminated
 * string (caller frees); NULL when it cannot be read. */
char *facts_read_file(const char *path, size_t max);

/* Picks this node's IPv4 address: the one on the default-route
 * interface, else the first non-loopback one. Writes it to out and
 * returns true, or returns false. */
bool facts_detect_ip(char *out, size_t outlen);

/* Running state for stats: the previous CPU sample. */
struct facts_sampler {
    struct facts_cpu prev;
    bool has_prev;
};

/* Reads /proc and statvfs(root_dir) (root_dir may be NULL) and builds
 * the stats payload; the CPU percentages cover the time since the last
 * call (the first call only primes the sampler and reports idle).
 * Returns NULL when /proc/meminfo cannot be read. New reference. */
json_t *facts_sample(struct facts_sampler *s, const char *root_dir);

/* The machine id (/etc/machine-id, else /var/lib/dbus/machine-id) as a
 * new string, or NULL. */
char *facts_machine_id(void);

/* Kernel release (/proc/sys/kernel/osrelease) and PRETTY_NAME from
 * /etc/os-release, as new strings or NULL. */
char *facts_kernel_release(void);
char *facts_os_name(void);
/* Parses PRETTY_NAME out of os-release text (new string or NULL). */
char *facts_parse_os_release(const char *text);

#endif
