#!/usr/bin/env python3
"""Integration tests of services end to end: a real kontena-master, two
real kontena-agent processes in the network namespaces of simulated nodes
(ksv1 at 172.31.0.23 with label az=a, ksv2 at 172.31.0.24 with az=b), each
with its own Podman engine (Docker-compatible API), and the kontena CLI
as a user (temp KONTENA_CONFIG, logged in with --token, grid selected).

The engine comes from ../shared/engine/podman-engine.sh ("up", "node ksv1
13", "node ksv2 14": nodes of this test alone, see NODES); see
test_agents.py, whose helpers are reused here.

Covered: service create + deploy (ha spread, labels, env, published port
answering HTTP, REST instance counts, CLI containers / container ls);
scale up and down; update + rolling redeploy; logs and logs -f;
stop / start / restart; the daemon strategy; affinity (placement and an
impossible rule failing the deploy with the filter and the rule named);
a killed container restarted by the agent; node loss (the ha instances
move to the other node after the grace period); service removal.

Every container the tests create carries io.kontena.grid.name=GRID; they
are all removed through the engine API at the end, also on failure.

Run by ctest (KONTENA_BUILD_DIR / KONTENA_SOURCE_DIR set) or by hand as
root:  python3 tests/integration/test_services.py [-k pattern]
KONTENA_KEEP_TMP=1 keeps the temp dir (master and agent logs).
"""

import fcntl
import http.client
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kontena_harness as kh  # noqa: E402
import test_agents as ta  # noqa: E402  (AgentProc, engine script, nodes)

GRID = "svct"
# Nodes of our own (netns name -> index, IP 172.31.0.(10+idx)): an agent
# removes every service container of its engine that its master does not
# want, so sharing kn1/kn2 with other test runs (test_agents.py) makes
# them destroy each other's containers. KONTENA_SVC_NODES="kn1:1,kn2:2"
# picks others.
NODES = dict((n, int(i)) for n, i in (
    x.split(":") for x in os.environ.get(
        "KONTENA_SVC_NODES", "ksv1:13,ksv2:14").split(",")))
N1, N2 = sorted(NODES, key=NODES.get)
LABELS = {N1: "az=a", N2: "az=b"}
POLL = 0.25
DEPLOY_WAIT = 90  # seconds, a CLI deploy (instance timeout is 60)

MASTER_ENV = {
    "KONTENA_RECONCILE_INTERVAL": "2",
    "KONTENA_GRACE_HA": "5",
    "KONTENA_GRACE_DAEMON": "5",
    "KONTENA_GRACE_RANDOM": "3",
    "KONTENA_DEPLOY_INSTANCE_TIMEOUT": "60",
    "KONTENA_PING_INTERVAL": "1",
    "WEBSOCKET_TIMEOUT": "2",
    "LOG_LEVEL": "debug",
}


# ==== Sharing the nodes ====
# An agent removes every service container of its engine that its master
# does not want there, so two agents (of two masters) on one node engine
# destroy each other's containers. Runs of these tests take an exclusive
# lock, and wait until no other kontena-agent uses the node engines.

NODES_LOCK = "/run/kontena-nodes-%s.lock" % "-".join(sorted(NODES))
EXCLUSIVE_WAIT = 600  # seconds


def foreign_agents(mine=()):
    """[(pid, node)] of kontena-agent processes, not ours, whose
    DOCKER_HOST is one of the node engines."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) in mine:
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                argv0 = f.read().split(b"\0")[0]
            if not argv0.endswith(b"kontena-agent"):
                continue
            with open("/proc/%s/environ" % pid, "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        for ns in NODES:
            if b"DOCKER_HOST=unix://" + sock(ns).encode() in env:
                found.append((int(pid), ns))
    return found


def take_nodes(timeout=EXCLUSIVE_WAIT):
    """The lock file (kept open = held), once no foreign agent runs."""
    f = open(NODES_LOCK, "a")
    deadline = time.monotonic() + timeout
    told = False
    while True:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            others = foreign_agents()
            if not others:
                return f
            fcntl.flock(f, fcntl.LOCK_UN)
        except BlockingIOError:
            others = "another holder of %s" % NODES_LOCK
        if time.monotonic() > deadline:
            f.close()
            raise RuntimeError("the node engines stay in use by others (%s) "
                               "after %ds" % (others, timeout))
        if not told:
            sys.stderr.write("[test_services] waiting for the node engines: "
                             "in use by %s\n" % (others,))
            told = True
        time.sleep(1)


# ==== The engine API of a node (straight from its socket) ====

def node_ip(ns):
    return "172.31.0.%d" % (10 + NODES[ns])


def sock(ns):
    return "/run/%s/podman.sock" % ns


class _UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self._path)
        self.sock = s


def engine(ns, method, path, body=None, timeout=15):
    """(status, parsed JSON or text) of one engine API call on node ns."""
    conn = _UnixHTTP(sock(ns), timeout)
    try:
        data = json.dumps(body).encode() if body is not None else None
        hdrs = {"Content-Type": "application/json"} if data else {}
        conn.request(method, "/v1.41" + path, body=data, headers=hdrs)
        resp = conn.getresponse()
        raw = resp.read().decode("utf-8", "replace")
        try:
            return resp.status, json.loads(raw) if raw else None
        except ValueError:
            return resp.status, raw
    finally:
        conn.close()


def engine_containers(ns, service=None):
    """Name -> list row of the node's containers of our grid (all states)."""
    labels = ["io.kontena.grid.name=" + GRID]
    if service is not None:
        labels.append("io.kontena.service.name=" + service)
    q = urllib.parse.quote(json.dumps({"label": labels}))
    st, body = engine(ns, "GET", "/containers/json?all=1&filters=" + q)
    if st != 200 or not isinstance(body, list):
        raise AssertionError("engine %s container list: %s %r" % (ns, st, body))
    return {c["Names"][0].lstrip("/"): c for c in body}


def engine_inspect(ns, name):
    st, body = engine(ns, "GET", "/containers/%s/json" % urllib.parse.quote(name))
    if st == 404:
        return None
    if st != 200:
        raise AssertionError("engine %s inspect %s: %s %r" % (ns, name, st, body))
    return body


def placement(service):
    """Name -> node of the service's containers (all states), both nodes."""
    out = {}
    for ns in NODES:
        for name in engine_containers(ns, service):
            out.setdefault(name, []).append(ns)
    return out


def running_placement(service):
    out = {}
    for ns in NODES:
        for name, c in engine_containers(ns, service).items():
            if c.get("State") == "running":
                out.setdefault(name, []).append(ns)
    return out


def remove_grid_containers(service=None):
    """Force-removes our grid's containers (of one service, or all) on
    both nodes; returns the names removed."""
    gone = []
    for ns in NODES:
        try:
            rows = engine_containers(ns, service)
        except Exception:  # noqa: BLE001 - engine down: nothing to clean
            continue
        for name, c in rows.items():
            st, _ = engine(ns, "DELETE", "/containers/%s?force=1&v=1" % c["Id"], timeout=30)
            if st in (200, 204, 404):
                gone.append("%s/%s" % (ns, name))
    return gone


def env_of(info):
    return dict(e.split("=", 1) for e in (info.get("Config") or {}).get("Env") or []
                if "=" in e)


def nat_rules(ns, needle):
    """The node's iptables nat rules that mention needle (diagnostics)."""
    try:
        cp = subprocess.run(["nsenter", "--net=/run/netns/" + ns, "iptables", "-t",
                             "nat", "-S"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, universal_newlines=True,
                            timeout=10)
        return "\n".join(l for l in cp.stdout.splitlines() if needle in l)
    except (OSError, subprocess.SubprocessError) as e:
        return "(iptables: %s)" % e


def http_status_line(ip, port, timeout=3.0):
    """The first line of an HTTP answer from ip:port, or None."""
    try:
        with socket.create_connection((ip, port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
            buf = b""
            while b"\r\n" not in buf and len(buf) < 4096:
                chunk = s.recv(4096)
                if not chunk:
                    break
                buf += chunk
            line = buf.split(b"\r\n", 1)[0].decode("latin-1")
            return line or None
    except OSError:
        return None


# ==== The tests ====

class TestServices(unittest.TestCase):
    """One master, grid GRID and one agent per node, shared by the tests
    (name order). Service web lives from test_01 to test_10; the other
    tests use services of their own and remove them."""

    @classmethod
    def setUpClass(cls):
        kh.require_binary(kh.MASTER_BIN)
        kh.require_binary(ta.AGENT_BIN)
        kh.require_binary(kh.CLI_BIN)
        if os.geteuid() != 0:
            raise RuntimeError("test_services needs root (network namespaces "
                               "and the Podman engine)")
        if not os.path.exists(ta.ENGINE_SCRIPT):
            raise RuntimeError("engine script missing: %s" % ta.ENGINE_SCRIPT)
        ta.run_engine_script("up")
        for ns, idx in sorted(NODES.items()):
            ta.run_engine_script("node", ns, str(idx))
        cls.lock = take_nodes()
        remove_grid_containers()  # leftovers of an earlier, killed run
        cls.started = time.monotonic()
        cls.tmp = tempfile.mkdtemp(prefix="kontena-svct-")
        cls.m = None
        cls.home = None
        cls.agents = {}
        try:
            cls._set_up()
        except BaseException:
            cls._tear_down()
            raise

    @classmethod
    def _set_up(cls):
        cls.m = kh.Master(env=MASTER_ENV, args=["--bind", "0.0.0.0"],
                          workdir=os.path.join(cls.tmp, "master"))
        os.makedirs(cls.m.workdir, exist_ok=True)
        cls.m.start()
        cls.token = cls.m.login()
        cls.home = kh.CliHome()
        for args in (("master", "login", "--token", cls.token, cls.m.url),
                     ("grid", "create", GRID), ("grid", "use", GRID)):
            cp = cls.home.run(*args)
            if cp.returncode != 0:
                raise RuntimeError("kontena %s: %s" % (" ".join(args), kh.describe_run(cp)))
        st, _, body = cls.m.req("GET", "/v1/grids/%s" % GRID, token=cls.token)
        if st != 200 or not body.get("token"):
            raise RuntimeError("GET /v1/grids/%s: %s %r" % (GRID, st, body))
        uri = "ws://%s:%d" % (ta.HOST_IP, cls.m.port)
        for ns in sorted(NODES):
            cls.agents[ns] = ta.AgentProc(cls.tmp, ns, ns, {
                "KONTENA_URI": uri,
                "KONTENA_TOKEN": body["token"],
                "DOCKER_HOST": "unix://" + sock(ns),
                "KONTENA_NODE_NAME": ns,
                "KONTENA_NODE_LABELS": LABELS[ns],
                "KONTENA_PODS_INTERVAL": "2",
                "KONTENA_NODE_UPDATE_INTERVAL": "2",
                "KONTENA_STATS_INTERVAL": "5",
                "LOG_LEVEL": "debug",
            }).start()
            cls.wait_online(ns, 30)

    @classmethod
    def tearDownClass(cls):
        cls._tear_down()

    @classmethod
    def _tear_down(cls):
        try:
            left = remove_grid_containers()
            if left:
                sys.stderr.write("[test_services] removed leftover containers: %s\n"
                                 % ", ".join(sorted(left)))
        finally:
            for a in list(cls.agents.values()):
                try:
                    a.stop()
                except Exception:  # noqa: BLE001
                    a.kill()
            # containers an agent made while stopping
            remove_grid_containers()
            try:
                if cls.m is not None:
                    cls.m.stop()  # also checks for sanitizer reports
            finally:
                if cls.m is not None:
                    cls.m.cleanup()
                if cls.home is not None:
                    cls.home.cleanup()
                if os.environ.get("KONTENA_KEEP_TMP") != "1":
                    shutil.rmtree(cls.tmp, ignore_errors=True)
                else:
                    sys.stderr.write("[test_services] kept %s\n" % cls.tmp)
                sys.stderr.write("[test_services] %.0fs after the engine was up\n"
                                 % (time.monotonic() - getattr(cls, "started", time.monotonic())))
                if getattr(cls, "lock", None) is not None:
                    cls.lock.close()  # releases the flock

    # -- helpers

    @classmethod
    def nodes(cls):
        st, _, body = cls.m.req("GET", "/v1/grids/%s/nodes" % GRID, token=cls.token)
        if st != 200:
            raise AssertionError("GET nodes: %s %r" % (st, body))
        return {n["name"]: n for n in body["nodes"]}

    @classmethod
    def wait_online(cls, name, timeout):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = cls.nodes().get(name)
            if last is not None and last.get("status") == "online":
                return last
            time.sleep(POLL)
        raise AssertionError("node %s not online within %.0fs; last %s\n%s" % (
            name, timeout, json.dumps(last), cls.logs()))

    @classmethod
    def logs(cls):
        tail = lambda s: s[-5000:]  # noqa: E731
        parts = [a.describe() for a in cls.agents.values()]
        if cls.m is not None:
            parts.append("master log (tail):\n" + tail(cls.m.stdout() + cls.m.stderr()))
        mine = {a.proc.pid for a in cls.agents.values() if a.proc is not None}
        others = foreign_agents(mine)
        if others:
            parts.append("WARNING: other kontena-agent processes use the node "
                         "engines and remove our containers: %s" % others)
        return "\n".join(parts)

    def run_cli(self, *args, timeout=kh.CLI_TIMEOUT):
        return self.home.run(*args, timeout=timeout)

    def cli(self, *args, timeout=kh.CLI_TIMEOUT):
        cp = self.run_cli(*args, timeout=timeout)
        self.assertEqual(cp.returncode, 0, "kontena %s: %s\n%s" % (
            " ".join(map(str, args)), kh.describe_run(cp), self.logs()))
        return cp

    def deploy(self, name, *extra):
        t0 = time.monotonic()
        cp = self.cli("service", "deploy", name, "--timeout", str(DEPLOY_WAIT - 5),
                      *extra, timeout=DEPLOY_WAIT)
        sys.stderr.write("[test_services] deploy %s took %.1fs\n"
                         % (name, time.monotonic() - t0))
        return cp

    def svc_path(self, name, suffix=""):
        return "/v1/services/%s/null/%s%s" % (GRID, name, suffix)

    def rest(self, method, path, body=None):
        st, _, got = self.m.req(method, path, body=body, token=self.token)
        return st, got

    def service(self, name):
        st, body = self.rest("GET", self.svc_path(name))
        self.assertEqual(st, 200, "GET service %s: %r" % (name, body))
        return body

    def instances(self, name):
        st, body = self.rest("GET", self.svc_path(name, "/instances"))
        self.assertEqual(st, 200, "GET instances of %s: %r" % (name, body))
        return body["instances"]

    def wait_for(self, what, fn, timeout, interval=POLL):
        """Polls fn until it returns a true value; fails with what() (or
        the string) and the logs at the deadline."""
        deadline = time.monotonic() + timeout
        last = None
        while True:
            last = fn()
            if last:
                return last
            if time.monotonic() >= deadline:
                break
            time.sleep(interval)
        desc = what() if callable(what) else what
        self.fail("%s: not within %.0fs\n%s" % (desc, timeout, self.logs()))

    def remove_service(self, name):
        """Cleanup: the CLI removal, then the engine removal of what is left."""
        try:
            self.run_cli("service", "rm", name, "--force")
        finally:
            deadline = time.monotonic() + 10
            while placement(name) and time.monotonic() < deadline:
                time.sleep(0.5)
            remove_grid_containers(name)

    def create_service(self, name, *args, cleanup=True):
        if cleanup:
            self.addCleanup(self.remove_service, name)
        return self.cli("service", "create", name, "busybox", *args)

    def ensure_web(self):
        """Service web as test_01 makes it (when a test runs alone)."""
        st, _ = self.rest("GET", self.svc_path("web"))
        if st == 404:
            self.cli("service", "create", "web", "busybox", "--instances", "2",
                     "--cmd", "httpd -f -p 8080", "-p", "18080:8080", "-e", "FOO=bar")
            self.deploy("web")
        self.wait_for(lambda: "web not running twice: %s" % running_placement("web"),
                      lambda: len(running_placement("web")) == 2, 20)

    # -- 1. create + deploy

    def test_01_create_and_deploy(self):
        cp = self.cli("service", "create", "web", "busybox", "--instances", "2",
                      "--cmd", "httpd -f -p 8080", "-p", "18080:8080", "-e", "FOO=bar")
        cp = self.deploy("web")
        self.assertIn("deployed", cp.stdout, kh.describe_run(cp))

        where = placement("web")
        self.assertEqual(sorted(where), ["web-1", "web-2"], where)
        self.assertEqual(sorted(n for v in where.values() for n in v), [N1, N2],
                         "ha must spread one per node: %s" % where)
        for name, (ns,) in where.items():
            info = engine_inspect(ns, name)
            self.assertTrue(info["State"]["Running"], "%s on %s: %s" % (
                name, ns, json.dumps(info["State"])))
            labels = info["Config"]["Labels"]
            self.assertEqual(labels.get("io.kontena.service.name"), "web", labels)
            self.assertEqual(labels.get("io.kontena.grid.name"), GRID, labels)
            self.assertEqual(labels.get("io.kontena.service.instance_number"),
                             name.split("-")[1], labels)
            env = env_of(info)
            self.assertEqual(env.get("FOO"), "bar", env)
            self.assertEqual(env.get("KONTENA_SERVICE_NAME"), "web", env)


        def two_running():
            svc = self.service("web")
            c = svc.get("instance_counts") or {}
            return c.get("running") == 2 and c.get("total") == 2 and svc
        svc = self.wait_for(lambda: "instance_counts of web: %s" % json.dumps(
            self.service("web").get("instance_counts")), two_running, 10)
        self.assertEqual(svc["instances"], 2, json.dumps(svc))

        cp = self.cli("service", "containers", "web")
        for name in ("web-1", "web-2"):
            self.assertIn(name, cp.stdout)
        self.assertIn(N1, cp.stdout)
        self.assertIn(N2, cp.stdout)
        cp = self.cli("container", "ls")
        rows = {l.split()[0]: l for l in cp.stdout.splitlines()[1:] if l.strip()}
        for name in ("web-1", "web-2"):
            self.assertIn(name, rows, cp.stdout)
            self.assertIn("running", rows[name], cp.stdout)

        # last: the published port answers HTTP on both node IPs
        for ns in NODES:
            ip = node_ip(ns)
            name = [n for n, v in where.items() if v == [ns]][0]
            line = self.wait_for(
                lambda: "HTTP from %s:18080 (%s: PortBindings %s; engine nat rules "
                "for 18080:\n%s)" % (
                    ip, name, json.dumps(engine_inspect(ns, name)["HostConfig"].get(
                        "PortBindings")), nat_rules(ns, "18080")),
                lambda: http_status_line(ip, 18080), 10, interval=0.5)
            self.assertRegex(line, r"^HTTP/1\.[01] \d{3}", line)

    # -- 2. scale

    def test_02_scale(self):
        # A service without a published port: web's 18080 allows only one
        # instance per node, so 4 instances of web cannot fit two nodes.
        self.create_service("scl", "--instances", "1", "--cmd", "sleep 3600")
        self.deploy("scl")
        self.assertEqual(len(running_placement("scl")), 1, placement("scl"))

        t0 = time.monotonic()
        cp = self.cli("service", "scale", "scl", "4", "--timeout", "80", timeout=DEPLOY_WAIT)
        self.assertIn("deployed", cp.stdout, kh.describe_run(cp))
        where = self.wait_for(lambda: "scl x4: %s" % placement("scl"),
                              lambda: (len(running_placement("scl")) == 4
                                       and running_placement("scl")), 20)
        self.assertEqual(sorted(where), ["scl-1", "scl-2", "scl-3", "scl-4"])
        per = {ns: sum(1 for v in where.values() if ns in v) for ns in NODES}
        self.assertEqual(per, {N1: 2, N2: 2}, "ha spread of 4: %s" % where)

        self.cli("service", "scale", "scl", "1", "--timeout", "80", timeout=DEPLOY_WAIT)
        where = self.wait_for(lambda: "scl x1: %s" % placement("scl"),
                              lambda: len(placement("scl")) == 1 and placement("scl"), 30)
        self.assertEqual(sorted(where), ["scl-1"], where)
        self.assertEqual(self.service("scl")["instances"], 1)
        sys.stderr.write("[test_services] scale 1->4->1 took %.1fs\n" % (time.monotonic() - t0))

    # -- 3. update + rolling redeploy

    def test_03_update_and_redeploy(self):
        self.ensure_web()
        before = {}
        for name, (ns,) in placement("web").items():
            before[name] = engine_inspect(ns, name)["Id"]
        self.cli("service", "update", "web", "-e", "FOO=baz")
        cp = self.deploy("web", "-o", "json")
        d = json.loads(cp.stdout)
        self.assertEqual(d.get("state"), "success", cp.stdout)
        ids = d.get("instance_deploys") or []
        self.assertEqual(len(ids), 2, cp.stdout)
        self.assertEqual([i.get("state") for i in ids], ["success", "success"], cp.stdout)

        where = self.wait_for(lambda: "web after update: %s" % placement("web"),
                              lambda: len(running_placement("web")) == 2
                              and running_placement("web"), 15)
        for name, (ns,) in where.items():
            info = engine_inspect(ns, name)
            self.assertNotEqual(info["Id"], before.get(name),
                                "%s on %s was not recreated" % (name, ns))
            self.assertEqual(env_of(info).get("FOO"), "baz", env_of(info))
            self.assertTrue(info["State"]["Running"])

    # -- 4. logs

    def test_04_logs(self):
        self.addCleanup(self.remove_service, "lg")
        script = "i=0; while true; do echo line-$i; i=$((i+1)); sleep 1; done"
        # --cmd splits on spaces, so the shell script goes in by REST.
        st, body = self.rest("POST", "/v1/grids/%s/services" % GRID, {
            "name": "lg", "image": "busybox", "instances": 1,
            "cmd": ["sh", "-c", script]})
        self.assertIn(st, (200, 201), body)
        self.deploy("lg")

        seen = {"n": -1, "out": ""}

        def has_line():
            cp = self.run_cli("service", "logs", "lg")
            seen["out"] = kh.describe_run(cp)
            nums = [int(x) for x in re.findall(r"line-(\d+)", cp.stdout)]
            if cp.returncode == 0 and nums:
                seen["n"] = max(nums)
                return True
            return False
        self.wait_for(lambda: "line-N in kontena service logs lg; last: %s" % seen["out"],
                      has_line, 12, interval=1)

        proc = subprocess.Popen([kh.CLI_BIN, "service", "logs", "-f", "lg"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, env=self.home.env(),
                                cwd=self.home.dir)
        out = b""
        rc = None
        try:
            # The first burst may be history; streaming means lines keep
            # coming afterwards: two numbers past the first burst's last.
            first_max = None
            first_at = None
            deadline = time.monotonic() + 8
            while time.monotonic() < deadline:
                r, _, _ = select.select([proc.stdout], [], [], 0.3)
                if r:
                    chunk = os.read(proc.stdout.fileno(), 65536)
                    if not chunk:
                        break
                    out += chunk
                nums = [int(x) for x in re.findall(rb"line-(\d+)", out)]
                if nums and first_at is None:
                    first_at = time.monotonic()
                if first_at is not None and first_max is None and \
                        time.monotonic() - first_at >= 0.5:
                    first_max = max(nums)
                if first_max is not None and max(nums) >= first_max + 2:
                    break
            proc.send_signal(signal.SIGINT)
            try:
                rc = proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                rc = None
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=5)
            err = proc.stderr.read()
            proc.stdout.close()
            proc.stderr.close()
        text = out.decode("utf-8", "replace")
        nums = [int(x) for x in re.findall(r"line-(\d+)", text)]
        self.assertTrue(nums and max(nums) > seen["n"],
                        "logs -f showed no line after line-%d:\n%s\nstderr: %s"
                        % (seen["n"], text, err))
        self.assertTrue(first_max is not None and max(nums) >= first_max + 2,
                        "logs -f did not stream: first burst up to line-%s, then "
                        "up to line-%d in 8 s:\n%s\nstderr: %s"
                        % (first_max, max(nums), text, err))
        self.assertIsNotNone(rc, "logs -f did not exit within 5 s of SIGINT")

    # -- 5. stop / start / restart

    def test_05_stop_start_restart(self):
        self.ensure_web()
        cp = self.cli("service", "stop", "web")

        def all_stopped():
            w = placement("web")
            infos = [engine_inspect(ns[0], n) for n, ns in w.items()]
            return len(infos) == 2 and all(i and not i["State"]["Running"] for i in infos)
        self.wait_for(lambda: "web containers stopped: %s" % placement("web"),
                      all_stopped, 15)
        self.wait_for(lambda: "instance states after stop: %s" % json.dumps(
            [(i["instance_number"], i["desired_state"], i["state"])
             for i in self.instances("web")]),
            lambda: all(i["state"] == "stopped" for i in self.instances("web")), 10)
        self.assertTrue(all(i["desired_state"] == "stopped" for i in self.instances("web")))

        self.cli("service", "start", "web")
        self.wait_for(lambda: "web running again: %s" % placement("web"),
                      lambda: len(running_placement("web")) == 2, 15)
        self.wait_for(lambda: "instance states after start: %s" % json.dumps(
            [(i["instance_number"], i["desired_state"], i["state"])
             for i in self.instances("web")]),
            lambda: all(i["state"] == "running" for i in self.instances("web")), 10)

        before = {n: engine_inspect(ns[0], n)["State"]["StartedAt"]
                  for n, ns in placement("web").items()}
        time.sleep(1.1)  # StartedAt may have second precision
        self.cli("service", "restart", "web")

        def restarted():
            now = {n: engine_inspect(ns[0], n) for n, ns in placement("web").items()}
            return (sorted(now) == sorted(before) and
                    all(i["State"]["Running"] and i["State"]["StartedAt"] != before[n]
                        for n, i in now.items()))
        self.wait_for(lambda: "web restarted (StartedAt before %s, now %s)" % (
            before, {n: engine_inspect(ns[0], n)["State"]["StartedAt"]
                     for n, ns in placement("web").items()}), restarted, 15)

    # -- 6. daemon

    def test_06_daemon(self):
        self.create_service("d", "--deploy-strategy", "daemon", "--cmd", "sleep 3600")
        self.deploy("d")
        where = self.wait_for(lambda: "daemon d: %s" % placement("d"),
                              lambda: len(running_placement("d")) == 2
                              and running_placement("d"), 10)
        per = {ns: sum(1 for v in where.values() if ns in v) for ns in NODES}
        self.assertEqual(per, {N1: 1, N2: 1}, where)
        time.sleep(2)  # no extra instances show up
        self.assertEqual(len(placement("d")), 2, placement("d"))

    # -- 7. affinity

    def test_07_affinity(self):
        self.create_service("aff", "--instances", "2", "--cmd", "sleep 3600",
                            "--affinity", "label==az=b")
        self.deploy("aff")
        where = self.wait_for(lambda: "aff: %s" % placement("aff"),
                              lambda: len(running_placement("aff")) == 2
                              and running_placement("aff"), 10)
        self.assertEqual(sorted(n for v in where.values() for n in v), [N2, N2],
                         "affinity az=b: %s" % where)

        self.create_service("noaff", "--instances", "1", "--cmd", "sleep 3600",
                            "--affinity", "label==az=x")
        t0 = time.monotonic()
        cp = self.run_cli("service", "deploy", "noaff", "--timeout", "30", timeout=40)
        took = time.monotonic() - t0
        self.assertNotEqual(cp.returncode, 0, kh.describe_run(cp))
        self.assertLess(took, 15, "impossible affinity failed only after %.1fs" % took)
        out = cp.stdout + cp.stderr
        self.assertIn("affinity", out, kh.describe_run(cp))
        self.assertIn("label==az=x", out, kh.describe_run(cp))
        self.assertEqual(placement("noaff"), {})

    # -- 8. killed container

    def test_08_killed_container_restarted(self):
        self.ensure_web()
        where = placement("web")
        ns = where["web-1"][0]
        before = engine_inspect(ns, "web-1")
        st, body = engine(ns, "POST", "/containers/%s/kill" % before["Id"])
        self.assertIn(st, (200, 204), body)
        t0 = time.monotonic()

        def again():
            i = engine_inspect(ns, "web-1")
            # running again: restarted (new StartedAt) or recreated (new Id)
            return i and i["State"]["Running"] and (
                i["State"]["StartedAt"] != before["State"]["StartedAt"]
                or i["Id"] != before["Id"]) and i
        self.wait_for(lambda: "web-1 on %s running again: %s" % (
            ns, json.dumps((engine_inspect(ns, "web-1") or {}).get("State"))), again, 15)
        sys.stderr.write("[test_services] killed web-1 back after %.1fs\n"
                         % (time.monotonic() - t0))

    # -- 9. node loss

    def test_09_node_loss(self):
        self.create_service("nl", "--instances", "2", "--cmd", "sleep 3600")
        self.deploy("nl")
        where = self.wait_for(lambda: "nl: %s" % placement("nl"),
                              lambda: len(running_placement("nl")) == 2
                              and running_placement("nl"), 10)
        self.assertEqual(sorted(n for v in where.values() for n in v), [N1, N2], where)
        on_kn2 = [n for n, v in where.items() if v == [N2]][0]

        a = self.agents[N2]
        a.signal(signal.SIGKILL)
        a.wait_exit(5)
        try:
            t0 = time.monotonic()

            def all_on_kn1():
                rows = engine_containers(N1, "nl")
                return (sorted(n for n, c in rows.items() if c["State"] == "running")
                        == ["nl-1", "nl-2"])
            self.wait_for(lambda: "nl all on %s after %s's agent died: %s; instances %s" % (
                N1, N2, placement("nl"), json.dumps(self.instances("nl"))), all_on_kn1, 40)
            sys.stderr.write("[test_services] nl moved to the first node after %.1fs\n"
                             % (time.monotonic() - t0))
            nodes = {i["instance_number"]: i["node"] for i in self.instances("nl")}
            self.assertEqual(nodes, {1: N1, 2: N1})
        finally:
            if not a.alive():
                a.start()
        self.wait_online(N2, 30)
        # back online, the agent removes its stale copy
        self.wait_for(lambda: "stale %s on %s removed: %s" % (on_kn2, N2, placement("nl")),
                      lambda: engine_containers(N2, "nl") == {}, 20)

    # -- 10. remove

    def test_10_remove(self):
        self.ensure_web()
        self.cli("service", "rm", "web", "--force")
        self.wait_for(lambda: "web containers gone: %s" % placement("web"),
                      lambda: placement("web") == {}, 30)
        st, _ = self.rest("GET", self.svc_path("web"))
        self.assertEqual(st, 404)


    # -- 11. hooks (spec 5.1)

    def engine_exec(self, ns, name, argv):
        """Exit code of argv run in container name on node ns."""
        st, body = engine(ns, "POST", "/containers/%s/exec" % name,
                          {"Cmd": argv, "AttachStdout": True, "AttachStderr": True})
        self.assertEqual(st, 201, "exec create in %s: %s %r" % (name, st, body))
        eid = body["Id"]
        st, _ = engine(ns, "POST", "/exec/%s/start" % eid,
                       {"Detach": False, "Tty": False}, timeout=30)
        self.assertEqual(st, 200, "exec start in %s: %s" % (name, st))
        st, info = engine(ns, "GET", "/exec/%s/json" % eid)
        self.assertEqual(st, 200, "exec inspect: %s %r" % (st, info))
        return info.get("ExitCode")

    def create_service_rest(self, name, hooks):
        self.addCleanup(self.remove_service, name)
        st, body = self.rest("POST", "/v1/grids/%s/services" % GRID, {
            "name": name, "image": "busybox", "container_count": 1,
            "cmd": ["sleep", "3600"], "hooks": hooks})
        self.assertIn(st, (200, 201), "create %s: %s %r" % (name, st, body))

    def test_11_hooks(self):
        self.create_service_rest("hk", {
            "post_start": [{"name": "mark", "cmd": "touch /tmp/post",
                            "instances": "*", "oneshot": False}],
            "pre_start": [{"name": "ok", "cmd": "true", "instances": "*",
                           "oneshot": True}]})
        rev = self.service("hk")["revision"]
        cp = self.deploy("hk")
        self.assertIn("deployed", cp.stdout, kh.describe_run(cp))
        where = running_placement("hk")
        self.assertEqual(sorted(where), ["hk-1"], where)
        ns = where["hk-1"][0]
        self.assertEqual(self.engine_exec(ns, "hk-1", ["test", "-f", "/tmp/post"]), 0,
                         "post_start hook did not run in hk-1")
        # the one-off pre_start container is gone
        st, _ = engine(ns, "GET", "/containers/hk-1-pre-start-ok/json")
        self.assertEqual(st, 404)

        # the oneshot pre_start hook is recorded as done for instance 1,
        # without a new revision
        def ok_done():
            svc = self.service("hk")
            hooks = svc.get("hooks") or []
            if isinstance(hooks, dict):
                hooks = [dict(h, type=t) for t, l in hooks.items() for h in l]
            ok = [h for h in hooks if h.get("name") == "ok"]
            return ok and [str(d) for d in ok[0].get("done") or []] == ["1"] and svc
        svc = self.wait_for(lambda: "hook ok done: %s" % json.dumps(
            self.service("hk").get("hooks")), ok_done, 15)
        self.assertEqual(svc["revision"], rev, json.dumps(svc))

        # a failing pre_start keeps the service container from starting
        self.create_service_rest("hkbad", {
            "pre_start": [{"name": "fail", "cmd": "exit 3", "instances": "*",
                           "oneshot": False}]})
        cp = self.run_cli("service", "deploy", "hkbad", "--timeout",
                          str(DEPLOY_WAIT - 5), timeout=DEPLOY_WAIT)
        out = cp.stdout + cp.stderr
        self.assertNotEqual(cp.returncode, 0, kh.describe_run(cp))
        self.assertIn("pre_start hook", out, kh.describe_run(cp))
        self.assertIn("exit 3", out, kh.describe_run(cp))
        self.assertEqual(running_placement("hkbad"), {})
        st, body = self.rest("GET", self.svc_path("hkbad", "/instances"))
        self.assertEqual(st, 200, body)
        errs = [i.get("error") or "" for i in body["instances"]]
        self.assertTrue(any("pre_start hook fail failed: exit 3" in e for e in errs),
                        json.dumps(body))

if __name__ == "__main__":
    kh.main()
