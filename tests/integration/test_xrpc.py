#!/usr/bin/env python3
"""Master -> agent requests with a reply, wherever the agent's socket is:
GET /v1/containers/:grid/:node/:name/inspect is a live /containers/inspect
call to the node's agent (docs/ha.md "Agents across masters").

A real kontena-agent in the network namespace of the simulated node kxr1
(index 32, its own Podman engine from ../shared/engine/podman-engine.sh)
runs one service container with a vault secret in its env.

- TestInspectSqlite (one master, SQLite store, the feed in-process): the
  live inspect is the engine's data (State.Running, State.StartedAt
  changes after a restart through the engine), the secret's env entry is
  stripped, an unknown container is 404, a container of the node that is
  not a kontena container of the grid is refused, and with the agent
  stopped the answer is a quick 503 "not connected to any master".
- TestInspectTwoMasters (masters A and B on one PostgreSQL database):
  the agent is connected to A, the inspect asked through B is answered
  (LISTEN/NOTIFY carries the request to A and the reply back).

Run by ctest (KONTENA_BUILD_DIR / KONTENA_SOURCE_DIR set) or by hand as
root:  python3 tests/integration/test_xrpc.py [-k pattern]
"""

import json
import os
import shutil
import sys
import tempfile
import time
import unittest
import urllib.parse

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kontena_harness as kh  # noqa: E402
import test_agents as ta  # noqa: E402  (AgentProc, engine script)
import test_services as ts  # noqa: E402  (engine API helpers, node lock)

NS, IDX = "kxr1", 32
# test_services' helpers read its NODES: point them at our node alone.
ts.NODES = {NS: IDX}
ts.NODES_LOCK = "/run/kontena-nodes-%s.lock" % NS
GRID = "xrpc"
ts.GRID = GRID
VAULT_KEY = "xr-4c1d7e0b9a8f6e5d4c3b2a1908f7e6d5"
SECRET_VALUE = "xrpc-secret-9f3b2c"
MASTER_ENV = {
    "VAULT_KEY": VAULT_KEY,
    "KONTENA_RECONCILE_INTERVAL": "2",
    "KONTENA_PING_INTERVAL": "1",
    "WEBSOCKET_TIMEOUT": "2",
    "LOG_LEVEL": "debug",
}
FOREIGN = "xrpc-foreign"  # a container of the node engine, not of the grid


def _built_without_postgres():
    cache = os.path.join(kh.BUILD_DIR, "CMakeCache.txt")
    if not os.path.exists(cache):
        return False
    with open(cache) as f:
        return any(line.strip() == "WITH_POSTGRES:BOOL=OFF" for line in f)


def remove_foreign():
    st, _ = ts.engine(NS, "DELETE", "/containers/%s?force=1&v=1" % FOREIGN,
                      timeout=30)
    return st


class _Base(unittest.TestCase):
    """One agent on kxr1 connected to cls.home_master; a service "web"
    (one busybox instance, env PLAIN=visible and the secret DB_PASS as
    DB_PASSWORD) deployed and running."""

    @classmethod
    def masters(cls, tmp):
        raise NotImplementedError

    @classmethod
    def setUpClass(cls):
        kh.require_binary(kh.MASTER_BIN)
        kh.require_binary(ta.AGENT_BIN)
        if os.geteuid() != 0:
            raise unittest.SkipTest("needs root (network namespaces, Podman)")
        if not os.path.exists(ta.ENGINE_SCRIPT):
            raise RuntimeError("engine script missing: %s" % ta.ENGINE_SCRIPT)
        ta.run_engine_script("up")
        ta.run_engine_script("node", NS, str(IDX))
        cls.lock = ts.take_nodes()
        ts.remove_grid_containers()
        remove_foreign()
        cls.tmp = tempfile.mkdtemp(prefix="kontena-xrpc-")
        cls.ms = []
        cls.agent = None
        try:
            cls._set_up()
        except BaseException:
            cls._tear_down()
            raise

    @classmethod
    def _set_up(cls):
        cls.ms = cls.masters(cls.tmp)
        cls.home_master, cls.ask_master = cls.ms[0], cls.ms[-1]
        m = cls.home_master
        cls.token = m.login()
        for method, path, body in (
                ("POST", "/v1/grids", {"name": GRID}),
                ("POST", "/v1/grids/%s/secrets" % GRID,
                 {"name": "DB_PASS", "value": SECRET_VALUE}),
                ("POST", "/v1/grids/%s/services" % GRID, {
                    "name": "web", "image": "busybox", "container_count": 1,
                    "cmd": ["sleep", "3600"], "env": ["PLAIN=visible"],
                    "secrets": [{"secret": "DB_PASS", "name": "DB_PASSWORD",
                                 "type": "env"}]})):
            st, _, got = m.req(method, path, body, token=cls.token)
            if st not in (200, 201):
                raise RuntimeError("%s %s: %s %r" % (method, path, st, got))
        st, _, g = m.req("GET", "/v1/grids/%s" % GRID, token=cls.token)
        uri = "ws://%s:%d" % (ta.HOST_IP, m.port)
        cls.agent = ta.AgentProc(cls.tmp, NS, NS, {
            "KONTENA_URI": uri,
            "KONTENA_TOKEN": g["token"],
            "DOCKER_HOST": "unix://" + ts.sock(NS),
            "KONTENA_NODE_NAME": NS,
            "KONTENA_PODS_INTERVAL": "2",
            "KONTENA_NODE_UPDATE_INTERVAL": "2",
            "LOG_LEVEL": "debug",
        }).start()
        cls.wait(lambda: cls.node().get("connected") is True, 30,
                 "node %s online" % NS)
        st, _, got = m.req("POST", "/v1/services/%s/null/web/deploy" % GRID,
                           {}, token=cls.token)
        if st not in (200, 201):
            raise RuntimeError("deploy: %s %r" % (st, got))
        cls.name = cls.wait(cls.saved_running, 120, "web running and saved")

    @classmethod
    def tearDownClass(cls):
        cls._tear_down()

    @classmethod
    def _tear_down(cls):
        try:
            ts.remove_grid_containers()
            remove_foreign()
        finally:
            if cls.agent is not None:
                try:
                    cls.agent.stop()
                except Exception:  # noqa: BLE001
                    cls.agent.kill()
            ts.remove_grid_containers()
            try:
                for m in cls.ms:
                    m.stop()  # also checks for sanitizer reports
            finally:
                for m in cls.ms:
                    m.cleanup()
                if os.environ.get("KONTENA_KEEP_TMP") != "1":
                    shutil.rmtree(cls.tmp, ignore_errors=True)
                cls.lock.close()

    # -- helpers

    @classmethod
    def node(cls):
        st, _, n = cls.home_master.req("GET", "/v1/nodes/%s/%s" % (GRID, NS),
                                       token=cls.token)
        return n if st == 200 else {}

    @classmethod
    def saved_running(cls):
        """The API name of web's container once it runs on the engine and
        the master has its row, else None."""
        st, _, body = cls.home_master.req(
            "GET", "/v1/containers/%s" % GRID, token=cls.token)
        for c in (body or {}).get("containers", []) if st == 200 else []:
            if c.get("status") == "running" and "web" in c.get("name", ""):
                return c["name"]
        return None

    @classmethod
    def wait(cls, fn, timeout, what):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = fn()
            if got:
                return got
            time.sleep(0.25)
        raise AssertionError("%s: not within %ds\n%s" % (what, timeout, cls.logs()))

    @classmethod
    def logs(cls):
        parts = [cls.agent.describe()] if cls.agent is not None else []
        for m in cls.ms:
            parts.append("master log (tail):\n" + (m.stdout() + m.stderr())[-4000:])
        return "\n".join(parts)

    def inspect(self, name, via=None):
        m = via or self.ask_master
        t0 = time.monotonic()
        st, _, body = m.req("GET", "/v1/containers/%s/%s/%s/inspect"
                            % (GRID, NS, urllib.parse.quote(name)),
                            token=self.token, timeout=30)
        return st, body, time.monotonic() - t0

    def engine_info(self):
        st, info = ts.engine(NS, "GET", "/containers/%s/json" % self.name)
        self.assertEqual(st, 200, info)
        return info

    def check_live(self):
        st, body, _ = self.inspect(self.name)
        self.assertEqual(st, 200, "%r\n%s" % (body, self.logs()))
        info = self.engine_info()
        self.assertEqual(body["Id"], info["Id"])
        self.assertIs(body["State"]["Running"], True)
        self.assertEqual(body["State"]["StartedAt"], info["State"]["StartedAt"])
        env = body["Config"]["Env"]
        self.assertIn("PLAIN=visible", env)
        self.assertFalse([e for e in env if e.startswith("DB_PASSWORD")], env)
        self.assertNotIn(SECRET_VALUE, json.dumps(body))
        self.assertNotIn("io.kontena.container.secrets_rev",
                         body["Config"]["Labels"])
        # the engine does have the secret: it was stripped on the way
        self.assertIn("DB_PASSWORD=" + SECRET_VALUE, info["Config"]["Env"])
        return body


class TestInspectSqlite(_Base):
    @classmethod
    def masters(cls, tmp):
        if os.environ.get("KONTENA_TEST_DATABASE_URL"):
            raise unittest.SkipTest("the SQLite case runs without "
                                    "KONTENA_TEST_DATABASE_URL")
        m = kh.Master(env=MASTER_ENV, args=["--bind", "0.0.0.0"],
                      workdir=os.path.join(tmp, "master"))
        os.makedirs(m.workdir, exist_ok=True)
        m.start()
        return [m]

    def test_1_live_data_follows_the_engine(self):
        before = self.check_live()
        # restarted behind the master's back: the live call sees it
        time.sleep(1.1)  # StartedAt has second resolution on some engines
        st, got = ts.engine(NS, "POST", "/containers/%s/restart?t=1" % self.name,
                            timeout=60)
        self.assertIn(st, (200, 204), got)
        after = self.check_live()
        self.assertNotEqual(after["State"]["StartedAt"],
                            before["State"]["StartedAt"])

    def test_2_unknown_container(self):
        st, body, _ = self.inspect("no-such-container")
        self.assertEqual(st, 404, body)
        self.assertIn("no such container: no-such-container", body["error"])
        st, body, _ = self.inspect("..%2f..%2finfo")
        self.assertIn(st, (400, 404), body)

    def test_3_foreign_container_refused(self):
        st, got = ts.engine(NS, "POST", "/containers/create?name=" + FOREIGN, {
            "Image": "busybox", "Cmd": ["sleep", "3600"],
            "Env": ["HOST_SECRET=nope"]})
        self.assertEqual(st, 201, got)
        st, body, _ = self.inspect(FOREIGN)
        self.assertEqual(st, 403, body)
        self.assertIn("not a kontena container of this grid", body["error"])
        self.assertNotIn("HOST_SECRET", json.dumps(body))

    def test_4_permissions_and_names(self):
        # no token: refused before any call to the agent
        st, _, body = self.home_master.req(
            "GET", "/v1/containers/%s/%s/%s/inspect" % (GRID, NS, self.name))
        self.assertEqual(st, 403, body)
        st, _, body = self.home_master.req(
            "GET", "/v1/containers/nogrid/%s/%s/inspect" % (NS, self.name),
            token=self.token)
        self.assertEqual(st, 404, body)
        st, _, body = self.home_master.req(
            "GET", "/v1/containers/%s/nonode/%s/inspect" % (GRID, self.name),
            token=self.token)
        self.assertEqual(st, 404, body)
        st, body, _ = self.inspect(self.name + "x")
        self.assertEqual(st, 404, body)

    def test_9_agent_stopped(self):
        self.agent.stop()
        self.wait(lambda: self.node().get("connected") is False, 20,
                  "node %s offline" % NS)
        st, body, took = self.inspect(self.name)
        self.assertEqual(st, 503, body)
        self.assertEqual(body["error"],
                         "node %s is not connected to any master" % NS)
        self.assertLess(took, 2.0)
        # back: answered again
        self.agent.start()
        self.wait(lambda: self.node().get("connected") is True, 30,
                  "node %s online again" % NS)
        self.wait(lambda: self.inspect(self.name)[0] == 200, 20,
                  "inspect answered after the agent came back")


class TestInspectTwoMasters(_Base):
    """The agent on master A, the inspect asked through master B."""

    @classmethod
    def masters(cls, tmp):
        if _built_without_postgres():
            raise unittest.SkipTest("this build has no PostgreSQL backend")
        cls.pg_url = kh.pg_start()
        try:
            a = kh.Master(env=MASTER_ENV, args=["--bind", "0.0.0.0"],
                          workdir=os.path.join(tmp, "master-a"))
            os.makedirs(a.workdir, exist_ok=True)
            a.start()
            b = kh.Master(env=MASTER_ENV, workdir=os.path.join(tmp, "master-b"),
                          database_url=a.database_url)
            os.makedirs(b.workdir, exist_ok=True)
            b.start()
        except BaseException:
            kh.pg_stop(cls.pg_url)
            raise
        return [a, b]

    @classmethod
    def _tear_down(cls):
        try:
            super()._tear_down()
        finally:
            if getattr(cls, "pg_url", None):
                kh.pg_stop(cls.pg_url)

    def test_inspect_through_the_other_master(self):
        a, b = self.ms
        self.assertIsNot(a, b)
        # A holds the socket
        n = self.node()
        self.assertIs(n.get("connected"), True, n)
        body = self.check_live()  # asked through B
        self.assertEqual(body["Name"].lstrip("/"), self.name)
        st, body2, _ = self.inspect(self.name, via=a)
        self.assertEqual(st, 200, body2)
        self.assertEqual(body2["Id"], body["Id"])
        st, body, _ = self.inspect("no-such-container")
        self.assertEqual(st, 404, body)


if __name__ == "__main__":
    unittest.main()
