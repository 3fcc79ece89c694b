#!/usr/bin/env python3
"""bench/deploy's REST side: create services, request all their deploys
as fast as possible, poll every deploy until it has finished_at, and
print one JSON summary on stdout. Progress goes to stderr.

  deploy_driver.py URL TOKEN MASTER_PID GRIDS SERVICES INSTANCES TIMEOUT_S
                   [IMAGE] [CMD_JSON]

GRIDS is a comma-separated list of grid names; every grid gets SERVICES
services (b001, b002, ...) of INSTANCES instances, strategy ha.
SPDX-License-Identifier: Apache-2.0
"""
import collections
import datetime
import http.client
import json
import os
import sys
import threading
import time
import urllib.parse

url, token, pid = sys.argv[1], sys.argv[2], int(sys.argv[3])
grids = [g for g in sys.argv[4].split(",") if g]
n_svc, n_inst, timeout_s = int(sys.argv[5]), int(sys.argv[6]), float(sys.argv[7])
image = sys.argv[8] if len(sys.argv) > 8 else "busybox"
cmd = json.loads(sys.argv[9]) if len(sys.argv) > 9 and sys.argv[9] else None
u = urllib.parse.urlparse(url)
CLK = os.sysconf("SC_CLK_TCK")


def log(msg):
    print(f"bench/deploy: {msg}", file=sys.stderr, flush=True)


def cpu_s():
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return (int(rest[11]) + int(rest[12])) / CLK
    except OSError:
        return -1.0


def status_kb(key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


local = threading.local()


def call(method, path, body=None):
    """One request on this thread's keep-alive connection -> (status, json)."""
    for attempt in range(3):
        c = getattr(local, "conn", None)
        if c is None:
            c = local.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        try:
            hdrs = {"Authorization": f"Bearer {token}"}
            data = None
            if body is not None:
                data = json.dumps(body).encode()
                hdrs["Content-Type"] = "application/json"
            c.request(method, path, body=data, headers=hdrs)
            r = c.getresponse()
            raw = r.read()
            try:
                j = json.loads(raw) if raw else None
            except ValueError:
                j = {"raw": raw[:200].decode(errors="replace")}
            return r.status, j
        except (OSError, http.client.HTTPException) as e:
            c.close()
            local.conn = None
            if attempt == 2:
                return 0, {"error": str(e)}
            time.sleep(0.2)


def parallel(items, fn, threads):
    items = list(items)
    out = [None] * len(items)
    nxt = [0]
    lock = threading.Lock()

    def run():
        while True:
            with lock:
                i = nxt[0]
                nxt[0] += 1
            if i >= len(items):
                return
            out[i] = fn(items[i])

    ts = [threading.Thread(target=run) for _ in range(min(threads, len(items)))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return out


def parse_time(s):
    if not s:
        return None
    s = s.replace("Z", "+00:00")
    return datetime.datetime.fromisoformat(s).timestamp()


# ---- services ----
svcs = [(g, f"b{i:03d}") for g in grids for i in range(1, n_svc + 1)]


def create(gs):
    g, name = gs
    body = {"name": name, "image": image, "instances": n_inst, "strategy": "ha"}
    if cmd:
        body["cmd"] = cmd
    st, j = call("POST", f"/v1/grids/{g}/services", body)
    if st not in (200, 201):
        return f"{g}/{name}: HTTP {st} {json.dumps(j)[:300]}"
    return None


t = time.time()
errs = [e for e in parallel(svcs, create, 4) if e]
if errs:
    log(f"service creation failed ({len(errs)} of {len(svcs)}): {errs[0]}")
    print(json.dumps({"error": "create", "detail": errs[:5]}))
    sys.exit(1)
log(f"created {len(svcs)} services x {n_inst} instances in {time.time() - t:.1f} s")

# ---- deploys ----
cpu0 = cpu_s()
t0 = time.time()


def deploy(gs):
    g, name = gs
    st, j = call("POST", f"/v1/services/{g}/null/{name}/deploy", {})
    if st not in (200, 201) or not isinstance(j, dict) or not j.get("id"):
        return (gs, None, f"HTTP {st} {json.dumps(j)[:200]}")
    return (gs, j["id"], None)


reqs = parallel(svcs, deploy, 8)
t_req = time.time()
bad = [r for r in reqs if r[1] is None]
log(f"{len(reqs) - len(bad)} deploys requested in {t_req - t0:.2f} s"
    + (f"; {len(bad)} refused, e.g. {bad[0][2]}" if bad else ""))
pending = {r[0]: r[1] for r in reqs if r[1] is not None}
done = {}
samples = []  # (t, cpu_s, rss_kb, finished, acked instances)
peak_rss = status_kb("VmRSS")
last_log = 0.0
while pending and time.time() - t0 < timeout_s:
    if not os.path.exists(f"/proc/{pid}"):
        log("the master is gone")
        break

    def poll(item):
        (g, name), did = item
        return item, call("GET", f"/v1/services/{g}/null/{name}/deploys/{did}")

    for ((gs, did), (st, j)) in parallel(list(pending.items()), poll, 4):
        if st == 200 and isinstance(j, dict) and j.get("finished_at"):
            done[gs] = j
            pending.pop(gs, None)
    now = time.time()
    rss = status_kb("VmRSS")
    peak_rss = max(peak_rss, rss)
    samples.append((now - t0, cpu_s(), rss, len(done)))
    if now - last_log >= 10:
        last_log = now
        log(f"t={now - t0:5.1f}s deploys finished {len(done)}/{len(reqs)}, "
            f"master RSS {rss / 1024:.1f} MiB, CPU {cpu_s() - cpu0:.1f} s")
    if pending:
        time.sleep(0.5)
t_end = time.time()
cpu1 = cpu_s()

# ---- summary ----
states = collections.Counter()
reasons = collections.Counter()
inst_states = collections.Counter()
fins, starts = [], []
for gs, j in done.items():
    states[j.get("state")] += 1
    if j.get("state") != "success":
        reasons[(j.get("reason") or "")[:160]] += 1
    for idp in j.get("instance_deploys") or []:
        inst_states[idp.get("state")] += 1
    f = parse_time(j.get("finished_at"))
    if f:
        fins.append(f)
    s = parse_time(j.get("started_at"))
    if s:
        starts.append(s)
# Deploys still pending: what state were they in?
stuck = collections.Counter()
for gs, did in list(pending.items())[:200]:
    st, j = call("GET", f"/v1/services/{gs[0]}/null/{gs[1]}/deploys/{did}")
    if isinstance(j, dict):
        stuck[f"{j.get('state')} (started_at {'set' if j.get('started_at') else 'null'})"] += 1
        for idp in j.get("instance_deploys") or []:
            inst_states["(unfinished deploy) " + str(idp.get("state"))] += 1
last_fin = max(fins) if fins else None
wall = (last_fin - t0) if last_fin else None
acked = inst_states.get("success", 0)
out = {
    "services": len(svcs),
    "instances": len(svcs) * n_inst,
    "deploys_requested": len(reqs) - len(bad),
    "deploys_refused": len(bad),
    "request_s": round(t_req - t0, 3),
    "deploys_finished": len(done),
    "deploys_unfinished": len(pending),
    "unfinished_states": dict(stuck),
    "states": dict(states),
    "error_reasons": dict(reasons.most_common(8)),
    "instance_states": dict(inst_states),
    "acked_instances": acked,
    "wall_s": round(wall, 3) if wall is not None else None,
    "first_started_s": round(min(starts) - t0, 3) if starts else None,
    "first_finished_s": round(min(fins) - t0, 3) if fins else None,
    "poll_end_s": round(t_end - t0, 3),
    "rate": round(acked / wall, 1) if wall else 0,
    "cpu_s": round(cpu1 - cpu0, 2),
    "cpu_pct": round(100 * (cpu1 - cpu0) / max(t_end - t0, 1e-9), 1),
    "rss_kb_end": status_kb("VmRSS"),
    "rss_kb_peak_sampled": peak_rss,
    "hwm_kb": status_kb("VmHWM"),
    "timed_out": bool(pending),
    "t0_unix": t0,
}
print(json.dumps(out))
