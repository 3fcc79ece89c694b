#!/usr/bin/env python3
"""Integration tests of nodes with real parts: a real kontena-master, real
kontena-agent processes, each in the network namespace of a simulated node
with its own Podman engine (Docker-compatible API), and the kontena CLI.

The engine comes from ../shared/engine/podman-engine.sh ("up", then
"node kn1 1" and "node kn2 2": netns kn1/kn2 at 172.31.0.11/.12, engine
sockets /run/kn1/podman.sock and /run/kn2/podman.sock, the host at
172.31.0.1). It needs root. If the script fails, the tests fail with its
output; they are never skipped for a missing engine.

Covered: nodes come online with their engine's facts and send stats;
labels from the agent and from the CLI (and the agent sees the change);
drain; a killed agent (offline at once, same node id and number after a
restart); a hung agent found by the keepalive (4030) and its reconnect;
a bad grid token (4001, the agent stops); a second agent with the same
node id (4041, the first stops, the node stays online); node removal while
connected (4040, the agent stops); the node-token flow (node create, an
agent with KONTENA_NODE_TOKEN, node env).

Run by ctest (KONTENA_BUILD_DIR / KONTENA_SOURCE_DIR set) or by hand as
root:  python3 tests/integration/test_agents.py [-k pattern]
KONTENA_KEEP_TMP=1 keeps the temp dir (master and agent logs).
"""

import atexit
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kontena_harness as kh  # noqa: E402

ENGINE_SCRIPT = os.path.abspath(os.path.join(
    kh.SOURCE_DIR, "..", "shared", "engine", "podman-engine.sh"))
ENGINE_TIMEOUT = 15 * 60  # a fresh machine installs packages first
AGENT_BIN = os.path.join(kh.BUILD_DIR, "kontena-agent")
HOST_IP = "172.31.0.1"
NODES = {"kn1": 1, "kn2": 2}  # netns name -> index (IP 172.31.0.(10+idx))
GRID = "agt"
PING_INTERVAL = 1  # master keepalive, seconds
WS_TIMEOUT = 2
POLL = 0.1


def node_ip(ns):
    return "172.31.0.%d" % (10 + NODES[ns])


def sock(ns):
    return "/run/%s/podman.sock" % ns


def engine_info(ns):
    """GET /info of the node's engine, straight from its socket."""
    cp = subprocess.run(
        ["curl", "-sf", "--max-time", "5", "--unix-socket", sock(ns),
         "http://d/v1.41/info"], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, timeout=10, universal_newlines=True)
    if cp.returncode != 0:
        raise AssertionError("engine /info on %s failed: %s" % (ns, kh.describe_run(cp)))
    return json.loads(cp.stdout)


def run_engine_script(*args):
    """Runs podman-engine.sh ARGS, echoing its output as progress; raises
    with the output when it fails."""
    argv = ["bash", ENGINE_SCRIPT] + list(args)
    sys.stderr.write("[test_agents] %s (may take minutes the first time)\n"
                     % " ".join(argv))
    sys.stderr.flush()
    started = time.monotonic()
    # From "/": the script starts Podman services that outlive this test
    # and keep its working directory; a build directory removed later
    # would break every container start (conmon: "Failed to get working
    # directory").
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, universal_newlines=True,
                            cwd="/")
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            sys.stderr.write("  | " + line)
            sys.stderr.flush()
            if time.monotonic() - started > ENGINE_TIMEOUT:
                break
        try:
            proc.wait(timeout=max(1, ENGINE_TIMEOUT - (time.monotonic() - started)))
        except subprocess.TimeoutExpired:
            pass
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
            raise RuntimeError("%s did not finish within %ds; output:\n%s"
                               % (" ".join(argv), ENGINE_TIMEOUT, "".join(lines)))
        proc.stdout.close()
    if proc.returncode != 0:
        raise RuntimeError("%s failed with exit %d; output:\n%s"
                           % (" ".join(argv), proc.returncode, "".join(lines)))
    sys.stderr.write("[test_agents] %s done in %.1fs\n"
                     % (" ".join(args), time.monotonic() - started))


# ==== Agents ====

_AGENTS = set()  # every agent started here, killed at exit if left


@atexit.register
def _kill_agents():
    for a in list(_AGENTS):
        try:
            a.kill()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


class AgentProc:
    """One kontena-agent inside a node's network namespace."""

    def __init__(self, logdir, label, ns, env):
        self.label = label
        self.ns = ns
        self.env = dict(env)
        self.logdir = logdir
        self.runs = 0
        self.proc = None
        self.log_path = None
        self._log = None

    def start(self):
        if self.alive():
            raise RuntimeError("agent %s already running" % self.label)
        self.runs += 1
        self.log_path = os.path.join(self.logdir, "agent-%s.%d.log" % (self.label, self.runs))
        self._close()
        self._log = open(self.log_path, "wb")
        env = kh.clean_env(self.env)
        self.proc = subprocess.Popen(
            ["nsenter", "--net=/run/netns/%s" % self.ns, AGENT_BIN],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env)
        _AGENTS.add(self)
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout):
        """The exit status, or None if it still runs after timeout."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout=5.0):
        """SIGTERM (after SIGCONT, in case it is stopped), then SIGKILL."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGCONT)
                self.proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            if self.wait_exit(timeout) is None:
                self.proc.kill()
                self.proc.wait(timeout=5)
        _AGENTS.discard(self)
        self._close()
        return self.proc.returncode

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)
        _AGENTS.discard(self)
        self._close()

    def log(self):
        return kh._read(self.log_path)

    def describe(self):
        st = "running" if self.alive() else "exit %s" % (
            self.proc.returncode if self.proc else None)
        return "agent %s (%s, netns %s) log %s:\n%s" % (
            self.label, st, self.ns, self.log_path, self.log()[-4000:])

    def _close(self):
        if self._log is not None:
            self._log.close()
            self._log = None


# ==== The tests ====

class TestAgents(unittest.TestCase):
    """Shared master, grid and one agent per node; test methods run in
    name order and each leaves the kn1 agent online (test_08 removes kn2
    for good)."""

    @classmethod
    def setUpClass(cls):
        kh.require_binary(kh.MASTER_BIN)
        kh.require_binary(AGENT_BIN)
        kh.require_binary(kh.CLI_BIN)
        if os.geteuid() != 0:
            raise RuntimeError("test_agents needs root (network namespaces and "
                               "the Podman engine)")
        if not os.path.exists(ENGINE_SCRIPT):
            raise RuntimeError("engine script missing: %s" % ENGINE_SCRIPT)
        run_engine_script("up")
        for ns, idx in sorted(NODES.items()):
            run_engine_script("node", ns, str(idx))
        cls.tmp = tempfile.mkdtemp(prefix="kontena-agt-")
        cls.m = None
        cls.home = None
        cls.agents = {}
        try:
            cls._set_up_master()
        except BaseException:
            cls._tear_down()
            raise

    @classmethod
    def _set_up_master(cls):
        cls.m = kh.Master(
            env={"KONTENA_PING_INTERVAL": str(PING_INTERVAL),
                 "WEBSOCKET_TIMEOUT": str(WS_TIMEOUT), "LOG_LEVEL": "debug"},
            args=["--bind", "0.0.0.0"], workdir=os.path.join(cls.tmp, "master"))
        os.makedirs(cls.m.workdir, exist_ok=True)
        cls.m.start()
        cls.token = cls.m.login()
        cls.home = kh.CliHome()
        cp = cls.home.run("master", "login", "--token", cls.token, cls.m.url)
        if cp.returncode != 0:
            raise RuntimeError("kontena master login --token: " + kh.describe_run(cp))
        cp = cls.home.run("grid", "create", GRID)
        if cp.returncode != 0:
            raise RuntimeError("kontena grid create: " + kh.describe_run(cp))
        st, _, body = cls.m.req("GET", "/v1/grids/%s" % GRID, token=cls.token)
        if st != 200 or not body.get("token"):
            raise RuntimeError("GET /v1/grids/%s: %s %r" % (GRID, st, body))
        cls.grid_token = body["token"]
        cls.uri = "ws://%s:%d" % (HOST_IP, cls.m.port)
        # kn1 first and online before kn2, so node numbers are 1 and 2.
        cls.agents["kn1"] = cls.make_agent(
            "kn1", "kn1", {"KONTENA_NODE_NAME": "kn1",
                           "KONTENA_NODE_LABELS": "az=a disk=ssd"}).start()
        cls.wait_status_cls("kn1", "online", 30)
        cls.agents["kn2"] = cls.make_agent(
            "kn2", "kn2", {"KONTENA_NODE_NAME": "kn2"}).start()

    @classmethod
    def tearDownClass(cls):
        cls._tear_down()

    @classmethod
    def _tear_down(cls):
        for a in list(cls.agents.values()):
            try:
                a.stop()
            except Exception:  # noqa: BLE001
                a.kill()
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
                sys.stderr.write("[test_agents] kept %s\n" % cls.tmp)

    # -- helpers

    @classmethod
    def make_agent(cls, label, ns, extra, token=True):
        env = {
            "KONTENA_URI": cls.uri,
            "DOCKER_HOST": "unix://" + sock(ns),
            "KONTENA_NODE_UPDATE_INTERVAL": "2",
            "KONTENA_STATS_INTERVAL": "2",
            "LOG_LEVEL": "debug",
        }
        if token:
            env["KONTENA_TOKEN"] = cls.grid_token
        env.update(extra)
        return AgentProc(cls.tmp, label, ns, env)

    def agent(self, label, ns, extra, token=True):
        """A test-local agent, stopped when the test ends."""
        a = self.make_agent(label, ns, extra, token)
        self.addCleanup(a.stop)
        return a

    @classmethod
    def nodes(cls):
        st, _, body = cls.m.req("GET", "/v1/grids/%s/nodes" % GRID, token=cls.token)
        if st != 200:
            raise AssertionError("GET nodes: %s %r" % (st, body))
        return {n["name"]: n for n in body["nodes"]}

    @classmethod
    def wait_status_cls(cls, name, status, timeout):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = cls.nodes().get(name)
            if last is not None and last.get("status") == status:
                return last
            time.sleep(POLL)
        raise AssertionError("node %s not %s within %.0fs; last %s\n%s\n%s" % (
            name, status, timeout, json.dumps(last), cls.logs(), cls.m.describe()))

    def wait_status(self, name, status, timeout):
        return self.wait_status_cls(name, status, timeout)

    @classmethod
    def logs(cls, *extra):
        return "\n".join(a.describe() for a in list(cls.agents.values()) + list(extra))

    def cli(self, *args):
        cp = self.home.run(*args)
        self.assertEqual(cp.returncode, 0, "kontena %s: %s" % (
            " ".join(map(str, args)), kh.describe_run(cp)))
        return cp

    def wait_log(self, agent, text, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in agent.log():
                return
            time.sleep(POLL)
        self.fail("agent %s did not log %r within %.0fs\n%s"
                  % (agent.label, text, timeout, agent.describe()))

    def ensure_kn1_online(self):
        a = self.agents["kn1"]
        if not a.alive():
            a.start()
        return self.wait_status("kn1", "online", 30)

    # -- 1. online with the engine's facts, stats, CLI

    def test_01_online_with_engine_facts(self):
        got = {ns: self.wait_status(ns, "online", 30) for ns in NODES}
        for ns, n in got.items():
            info = engine_info(ns)
            for key in ("os", "kernel_version", "cpus", "mem_total"):
                self.assertTrue(n.get(key), "%s: %s empty in %s" % (ns, key, json.dumps(n)))
            self.assertEqual(n["cpus"], info["NCPU"], ns)
            self.assertEqual(n["mem_total"], info["MemTotal"], ns)
            self.assertEqual(n["kernel_version"], info["KernelVersion"], ns)
            self.assertEqual(n["private_ip"], node_ip(ns), ns)
            self.assertTrue(n["connected"], ns)
            self.assertTrue(n.get("agent_version"), ns)
        self.assertNotEqual(got["kn1"]["node_id"], got["kn2"]["node_id"])
        self.assertTrue(got["kn1"]["node_id"] and got["kn2"]["node_id"])
        self.assertEqual(got["kn1"]["node_number"], 1)
        self.assertEqual(got["kn2"]["node_number"], 2)

        # stats arrive within a flush: the master writes them in batches
        # every 10 s (stats interval 2 s)
        deadline = time.monotonic() + 14
        stats = None
        while time.monotonic() < deadline:
            st, _, body = self.m.req("GET", "/v1/nodes/%s/kn1/stats" % GRID, token=self.token)
            self.assertEqual(st, 200, body)
            stats = body.get("stats")
            if stats:
                break
            time.sleep(0.2)
        self.assertTrue(stats, "no stats for kn1 within 14 s\n" + self.logs())
        self.assertIsInstance(stats, dict)

        # the CLI sees the same
        cp = self.cli("node", "ls")
        for ns in NODES:
            line = [l for l in cp.stdout.splitlines() if l.split()[:1] == [ns]]
            self.assertEqual(len(line), 1, "node ls: %s\n%s" % (ns, cp.stdout))
            self.assertIn("online", line[0], cp.stdout)
        cp = self.cli("node", "show", "kn1", "-o", "json")
        shown = json.loads(cp.stdout)
        self.assertEqual(shown["name"], "kn1")
        self.assertEqual(shown["node_id"], got["kn1"]["node_id"])
        self.assertEqual(shown["status"], "online")

    # -- 2. labels

    def test_02_labels(self):
        n = self.ensure_kn1_online()
        self.assertIn("az=a", n["labels"])
        self.assertIn("disk=ssd", n["labels"])
        self.cli("node", "label", "add", "kn1", "env=test")
        n = self.nodes()["kn1"]
        for label in ("az=a", "disk=ssd", "env=test"):
            self.assertIn(label, n["labels"], json.dumps(n["labels"]))
        # the agent is told (/agent/node_info) and logs the new labels
        self.wait_log(self.agents["kn1"], "env=test", 5)
        lines = [l for l in self.agents["kn1"].log().splitlines()
                 if "node info" in l and "env=test" in l]
        self.assertTrue(lines, self.agents["kn1"].describe())

    # -- 3. drain

    def test_03_drain(self):
        self.wait_status("kn2", "online", 30)
        self.cli("node", "update", "kn2", "--availability", "drain")
        n = self.wait_status("kn2", "drain", 5)
        self.assertEqual(n["availability"], "drain")
        self.assertTrue(n["connected"])
        self.cli("node", "update", "kn2", "--availability", "active")
        n = self.wait_status("kn2", "online", 5)
        self.assertEqual(n["availability"], "active")

    # -- 4. killed agent

    def test_04_killed_agent_goes_offline_and_returns(self):
        before = self.ensure_kn1_online()
        a = self.agents["kn1"]
        a.signal(signal.SIGKILL)
        a.wait_exit(5)
        t0 = time.monotonic()
        off = self.wait_status("kn1", "offline", 3)
        self.assertLess(time.monotonic() - t0, 2.5)
        self.assertFalse(off["connected"])
        a.start()
        on = self.wait_status("kn1", "online", 20)
        self.assertEqual(on["node_id"], before["node_id"])
        self.assertEqual(on["node_number"], before["node_number"])
        self.assertEqual(len([n for n in self.nodes().values()
                              if n["node_id"] == before["node_id"]]), 1)

    # -- 5. hung agent, keepalive

    def test_05_hung_agent_found_by_keepalive(self):
        self.ensure_kn1_online()
        a = self.agents["kn1"]
        a.signal(signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            off = self.wait_status("kn1", "offline", PING_INTERVAL + WS_TIMEOUT + 3)
            sys.stderr.write("[test_agents] hung agent offline after %.1fs\n"
                             % (time.monotonic() - t0))
            wc = off.get("websocket_connection") or {}
            self.assertEqual(wc.get("close_code"), 4030, json.dumps(off))
        finally:
            a.signal(signal.SIGCONT)
        self.assertTrue(a.alive())
        self.wait_status("kn1", "online", 30)
        self.assertTrue(a.alive(), "the agent stopped instead of reconnecting\n"
                        + a.describe())

    # -- 6. bad grid token

    def test_06_bad_token_stops_the_agent(self):
        a = self.agent("bad", "kn2", {
            "KONTENA_TOKEN": "wrong-" + secrets.token_hex(12),
            "KONTENA_NODE_ID": "BAD:" + secrets.token_hex(8).upper(),
            "KONTENA_NODE_NAME": "badtoken"}).start()
        rc = a.wait_exit(10)
        self.assertIsNotNone(rc, "agent with a bad token still runs after 10 s\n"
                             + a.describe())
        self.assertEqual(rc, 1, a.describe())
        self.assertIn("4001", a.log(), a.describe())
        self.assertNotIn("badtoken", self.nodes())

    # -- 7. same node id twice

    def test_07_same_node_id_supersedes(self):
        node_id = "DUP:" + secrets.token_hex(8).upper()
        extra = {"KONTENA_NODE_ID": node_id, "KONTENA_NODE_NAME": "kn1dup"}
        first = self.agent("dup1", "kn1", extra).start()
        n1 = self.wait_status("kn1dup", "online", 20)
        self.assertEqual(n1["node_id"], node_id)
        second = self.agent("dup2", "kn1", extra).start()
        rc = first.wait_exit(10)
        self.assertIsNotNone(rc, "the first agent still runs 10 s after a second "
                             "one connected\n" + self.logs(first, second))
        self.assertEqual(rc, 1, first.describe())
        self.assertIn("4041", first.log(), first.describe())
        # The node stays connected: the old socket's close must not unplug
        # it. Between the new connection and its first /nodes/update the
        # status is "connecting" (connected, not yet updated); never offline.
        seen = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            n = self.nodes().get("kn1dup")
            self.assertIsNotNone(n, "kn1dup vanished")
            seen.append(n["status"])
            self.assertTrue(n["connected"] and n["status"] in ("online", "connecting"),
                            "node flapped: %s\nstatuses %s\n%s" % (
                                json.dumps(n), seen, self.logs(first, second)))
            self.assertTrue(second.alive(), second.describe())
            time.sleep(0.1)
        self.assertEqual(seen[-1], "online", "statuses %s\n%s" % (
            seen, self.logs(first, second)))
        self.assertEqual(n["node_id"], node_id)
        self.assertEqual(n["node_number"], n1["node_number"])
        self.assertEqual(len([x for x in self.nodes().values()
                              if x["node_id"] == node_id]), 1)
        second.stop()
        self.wait_status("kn1dup", "offline", 5)
        self.cli("node", "rm", "kn1dup", "--force")

    # -- 8. removal while connected

    def test_08_remove_connected_node(self):
        a = self.agents["kn2"]
        self.wait_status("kn2", "online", 30)
        self.cli("node", "rm", "kn2", "--force")
        rc = a.wait_exit(10)
        self.assertIsNotNone(rc, "agent of a removed node still runs after 10 s\n"
                             + a.describe())
        self.assertEqual(rc, 1, a.describe())
        self.assertIn("4040", a.log(), a.describe())
        deadline = time.monotonic() + 5
        while "kn2" in self.nodes() and time.monotonic() < deadline:
            time.sleep(POLL)
        self.assertNotIn("kn2", self.nodes())
        st, _, _ = self.m.req("GET", "/v1/nodes/%s/kn2" % GRID, token=self.token)
        self.assertEqual(st, 404)

    # -- 9. node token

    def test_09_node_token_flow(self):
        token = secrets.token_hex(12)  # 24 characters
        cp = self.cli("node", "create", "kn3", "--token", token)
        n = self.nodes().get("kn3")
        self.assertIsNotNone(n, cp.stdout)
        self.assertTrue(n["has_token"])
        self.assertEqual(n["status"], "created")
        a = self.agent("kn3", "kn2", {
            "KONTENA_NODE_TOKEN": token, "KONTENA_NODE_NAME": "kn3",
            "KONTENA_NODE_ID": "KN3:" + secrets.token_hex(8).upper()}, token=False)
        a.start()
        n = self.wait_status("kn3", "online", 20)
        self.assertTrue(n["has_token"])
        self.assertEqual(n["private_ip"], node_ip("kn2"))
        self.assertTrue(a.alive(), a.describe())
        cp = self.cli("node", "env", "kn3")
        env = dict(l.split("=", 1) for l in cp.stdout.splitlines() if "=" in l)
        self.assertIn("KONTENA_URI", env, cp.stdout)
        self.assertTrue(env["KONTENA_URI"].startswith("ws://"), cp.stdout)
        self.assertIn(":%d" % self.m.port, env["KONTENA_URI"], cp.stdout)
        self.assertEqual(env.get("KONTENA_NODE_TOKEN"), token, cp.stdout)
        self.assertNotIn("KONTENA_TOKEN", env, cp.stdout)


if __name__ == "__main__":
    kh.main()
