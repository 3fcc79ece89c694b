#!/usr/bin/env python3
"""Integration tests of the agent protocol (spec kontena-master.md section 4)
against a real kontena-master: the WebSocket handshake on "/", the
acceptance algorithm and its close codes, MessagePack-RPC framing,
keepalive and disconnect handling, and the node REST routes that act on
connected agents.

Run by ctest (KONTENA_BUILD_DIR / KONTENA_SOURCE_DIR set) or by hand:
    python3 tests/integration/test_protocol.py [-k pattern]
KONTENA_KEEP_TMP=1 keeps the temp dirs (master logs) for a post-mortem.
"""

import os
import re
import struct
import sys
import time
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kontena_harness as kh  # noqa: E402
import wsproto as ws  # noqa: E402

MAX_MESSAGE = 4 * 1024 * 1024
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{9}Z$")

UPDATE_INFO = {
    "NCPU": 2, "MemTotal": 1000, "KernelVersion": "6.1",
    "OperatingSystem": "Debian", "AgentVersion": "1.5.0",
    "PublicIp": "1.2.3.4", "PrivateIp": "10.0.0.1", "Labels": ["a=b"],
    "Drivers": {"Volume": [], "Network": []},
}


class Agent:
    """A connected fake agent: the client plus what it was told."""

    def __init__(self, client, node_id, name):
        self.c = client
        self.node_id = node_id
        self.name = name
        self.master_info = None
        self.node_info = None
        self.inbox = []  # messages read while waiting for something else
        self.next_id = 1000

    def read_until(self, pred, timeout=5.0):
        """The first message (from the inbox, then the socket) for which
        pred(msg) holds; others stay in the inbox."""
        for i, m in enumerate(self.inbox):
            if pred(m):
                return self.inbox.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ws.WSTimeout("no matching message within %.1fs; inbox %r"
                                   % (timeout, self.inbox))
            m = self.c.recv_message(left)
            if pred(m):
                return m
            self.inbox.append(m)

    def notification(self, method, timeout=5.0):
        return self.read_until(
            lambda m: isinstance(m, list) and len(m) == 3 and m[0] == 2 and m[1] == method,
            timeout)

    def call(self, method, params, timeout=5.0, msgid=None):
        """Request -> the response array [1, id, error, result]."""
        if msgid is None:
            self.next_id += 1
            msgid = self.next_id
        self.c.send_binary(ws.request(msgid, method, params))
        return self.read_until(
            lambda m: isinstance(m, list) and len(m) == 4 and m[0] == 1 and m[1] == msgid,
            timeout)

    def notify(self, method, params):
        self.c.send_binary(ws.notify(method, params))

    def update(self, **over):
        info = dict(UPDATE_INFO, Name=self.name)
        info.update(over)
        return self.call("/nodes/update", [self.node_id, info])


class ProtoCase(unittest.TestCase):
    """One master per test class; self.m, self.admin (admin token)."""

    master_env = None
    _grid_seq = 0

    @classmethod
    def setUpClass(cls):
        cls.m = kh.Master(env=cls.master_env)
        cls.addClassCleanup(cls.m.cleanup)
        cls.m.start()
        cls.admin = cls.m.login()

    def setUp(self):
        self.clients = []

    def tearDown(self):
        for c in self.clients:
            c.close()

    # -- REST helpers

    def new_grid(self, prefix="g"):
        ProtoCase._grid_seq += 1
        name = "%s%d%d" % (prefix, os.getpid() % 1000, ProtoCase._grid_seq)
        st, _, g = self.m.req("POST", "/v1/grids", {"name": name}, token=self.admin)
        self.assertEqual(st, 201, g)
        self.assertTrue(g.get("token"), g)
        return g

    def nodes(self, grid):
        st, _, body = self.m.req("GET", "/v1/grids/%s/nodes" % grid, token=self.admin)
        self.assertEqual(st, 200, body)
        return body["nodes"]

    def node(self, grid, name):
        st, _, body = self.m.req("GET", "/v1/nodes/%s/%s" % (grid, name), token=self.admin)
        self.assertEqual(st, 200, "GET node %s/%s: %s %r" % (grid, name, st, body))
        return body

    def wait_node(self, grid, name, pred, timeout=3.0, what="condition"):
        deadline = time.monotonic() + timeout
        n = None
        while time.monotonic() < deadline:
            n = self.node(grid, name)
            if pred(n):
                return n
            time.sleep(0.05)
        self.fail("node %s/%s: %s not reached within %.1fs; last %r\n%s"
                  % (grid, name, what, timeout, n, self.m.stderr()[-1500:]))

    def wait_status(self, grid, name, status, timeout=3.0):
        return self.wait_node(grid, name, lambda n: n.get("status") == status,
                              timeout, "status %s" % status)

    # -- agent helpers

    def connect(self, **kw):
        """A raw client after the 101 (no messages read)."""
        c = ws.connect_agent(self.m.port, **kw)
        self.clients.append(c)
        return c

    def agent(self, grid_token=None, node_id=None, name=None, node_token=None,
              update=False, **kw):
        """An accepted agent: reads master_info and node_info."""
        node_id = node_id or ws.random_node_id()
        name = name or "n-" + node_id[:4].lower()
        c = self.connect(grid_token=grid_token, node_token=node_token,
                         node_id=node_id, name=name, **kw)
        a = Agent(c, node_id, name)
        try:
            a.master_info = a.notification("/agent/master_info")
            a.node_info = a.notification("/agent/node_info")
        except ws.WSClosed as e:
            self.fail("agent %s was refused with %s %r\n%s"
                      % (name, e.code, e.reason, self.m.stderr()[-1500:]))
        a.name = a.node_info[2][0]["name"]
        if update:
            r = a.update()
            self.assertIsNone(r[2], r)
        return a

    def expect_close(self, code, timeout=5.0, **kw):
        """Connects with kw and expects a close with code."""
        c = self.connect(**kw)
        got = c.wait_close(timeout)
        self.assertEqual(got, code, "expected close %s, got %s (%r); master: %s"
                         % (code, got, c.close_reason, self.m.stderr()[-1200:]))
        return c


# ==== Acceptance ====


class TestAccept(ProtoCase):

    def test_accept_update_stats_get(self):
        g = self.new_grid()
        grid = g["name"]
        node_id = ws.random_node_id()
        c = self.connect(grid_token=g["token"], node_id=node_id, name="alpha",
                         labels=["zone=a", "ssd"])
        self.assertEqual(c.status, 101)
        self.assertIn("kontena-version", c.headers)
        self.assertRegex(c.headers["kontena-version"], r"^1\.5\.\d+")
        self.assertRegex(c.headers.get("kontena-connected-at", ""), TIME_RE)

        # master_info first, then node_info.
        m1 = c.recv_message(5)
        self.assertEqual(m1[:2], [2, "/agent/master_info"], m1)
        self.assertEqual(m1[2], [{"version": c.headers["kontena-version"]}])
        m2 = c.recv_message(5)
        self.assertEqual(m2[:2], [2, "/agent/node_info"], m2)
        info = m2[2][0]
        self.assertEqual(info["node_number"], 1)
        self.assertEqual(info["id"], node_id)
        self.assertEqual(info["name"], "alpha")
        self.assertEqual(info["grid"]["name"], grid)
        self.assertEqual(info["overlay_ip"], "10.81.0.1")
        self.assertEqual(info["labels"], ["zone=a", "ssd"])
        self.assertIs(info["initial_member"], True)

        listed = [n for n in self.nodes(grid) if n["node_id"] == node_id]
        self.assertEqual(len(listed), 1, self.nodes(grid))
        self.assertEqual(listed[0]["status"], "connecting")
        self.assertIs(listed[0]["connected"], True)
        self.assertEqual(listed[0]["name"], "alpha")
        self.assertEqual(listed[0]["agent_version"], "1.5.0")

        a = Agent(c, node_id, "alpha")
        info = dict(UPDATE_INFO, Name="alpha")
        c.send_binary(ws.request(4242, "/nodes/update", [node_id, info]))
        resp = a.read_until(lambda m: m[0] == 1)
        self.assertEqual(len(resp), 4, resp)
        self.assertEqual(resp[:3], [1, 4242, None], resp)
        n = self.wait_status(grid, "alpha", "online")
        self.assertEqual(n["cpus"], 2)
        self.assertEqual(n["os"], "Debian")
        self.assertEqual(n["public_ip"], "1.2.3.4")
        self.assertEqual(n["private_ip"], "10.0.0.1")
        self.assertEqual(n["kernel_version"], "6.1")
        self.assertEqual(n["mem_total"], 1000)
        # Labels from the handshake win over Docker's.
        self.assertEqual(n["labels"], ["zone=a", "ssd"])

        stats = {"memory": {"total": 1000, "used": 400}, "load": {"1m": 0.5},
                 "filesystem": [{"name": "/", "free": 5}],
                 "usage": {"container_seconds": 7}, "cpu": {"num_cores": 2},
                 "time": "2025-11-25T13:00:00Z"}
        a.notify("/nodes/stats", [node_id, stats])
        # Stats are written in batches every 10 s (one transaction for all
        # nodes), so allow one flush interval and some.
        deadline = time.monotonic() + 14
        body = None
        while time.monotonic() < deadline:
            st, _, body = self.m.req("GET", "/v1/nodes/%s/alpha/stats" % grid,
                                     token=self.admin)
            self.assertEqual(st, 200, body)
            if body.get("stats"):
                break
            time.sleep(0.05)
        got = body.get("stats")
        self.assertIsInstance(got, (dict, list), body)
        text = repr(got)
        self.assertIn("400", text, body)
        self.assertIn("container_seconds", text, body)

        r = a.call("/nodes/get", [node_id])
        self.assertIsNone(r[2], r)
        self.assertEqual(r[3]["name"], "alpha")
        self.assertEqual(r[3]["node_id"], node_id)
        self.assertEqual(r[3]["status"], "online")
        self.assertEqual(r[3]["id"], "%s/alpha" % grid)
        self.assertEqual(r[3]["cpus"], 2)

    def test_node_name_clash(self):
        g = self.new_grid()
        a = self.agent(g["token"], name="web")
        self.assertEqual(a.node_info[2][0]["node_number"], 1)
        self.assertEqual(a.name, "web")
        b = self.agent(g["token"], name="web")
        info = b.node_info[2][0]
        self.assertEqual(info["name"], "web-2")
        self.assertEqual(info["node_number"], 2)
        self.assertEqual(info["overlay_ip"], "10.81.0.2")
        self.assertIs(info["initial_member"], False)
        names = sorted(n["name"] for n in self.nodes(g["name"]))
        self.assertEqual(names, ["web", "web-2"])
        self.assertEqual(self.node(g["name"], "web-2")["node_id"], b.node_id)

    def test_reconnect_same_node_keeps_number(self):
        g = self.new_grid()
        node_id = ws.random_node_id()
        a = self.agent(g["token"], node_id=node_id, name="again", update=True)
        a.c.send_close(1000)
        a.c.wait_close(5)
        self.wait_status(g["name"], "again", "offline")
        b = self.agent(g["token"], node_id=node_id, name="again")
        self.assertEqual(b.node_info[2][0]["node_number"], 1)
        self.assertEqual(b.node_info[2][0]["name"], "again")
        self.assertEqual(len(self.nodes(g["name"])), 1)
        self.wait_status(g["name"], "again", "connecting")


# ==== Close codes ====


class TestCloseCodes(ProtoCase):

    def test_bad_version_4010(self):
        g = self.new_grid()
        seen = {}
        for version in ("1.4.0", "2.5.0", "1.50.0", "0.5.0"):
            c = self.connect(grid_token=g["token"], node_id=ws.random_node_id(),
                             name="old", version=version)
            msgs = []
            try:
                while True:
                    msgs.append(c.recv_message(5))
            except ws.WSClosed as e:
                code = e.code
            self.assertEqual(code, 4010, version)
            seen[version] = msgs
        # Refused before any node was created.
        self.assertEqual(self.nodes(g["name"]), [])
        # Spec 4.2 step 1: the master_info notification comes before the
        # close, so that the agent learns the master's version.
        for version, msgs in seen.items():
            self.assertEqual(len(msgs), 1, "agent %s: expected exactly one "
                             "/agent/master_info before close 4010, got %r"
                             % (version, msgs))
            self.assertEqual(msgs[0][:2], [2, "/agent/master_info"], (version, msgs))
            self.assertRegex(msgs[0][2][0]["version"], r"^1\.5\.")

    def test_patch_version_may_differ(self):
        g = self.new_grid()
        self.agent(g["token"], version="1.5.3")
        self.agent(g["token"], version="1.5.0")

    def test_missing_node_id_4000(self):
        g = self.new_grid()
        self.expect_close(4000, grid_token=g["token"], node_id=None, name="x")
        self.expect_close(4000, grid_token=g["token"], node_id=ws.random_node_id(),
                          name=None)
        self.assertEqual(self.nodes(g["name"]), [])

    def test_unknown_grid_token_4001(self):
        self.expect_close(4001, grid_token="not-a-grid-token-at-all",
                          node_id=ws.random_node_id(), name="x")

    def test_no_token_4004(self):
        self.expect_close(4004, node_id=ws.random_node_id(), name="x")

    def test_unknown_node_token_4002(self):
        self.expect_close(4002, node_token="no-such-node-token-0123456789",
                          node_id=ws.random_node_id(), name="x")

    def _node_with_token(self, grid, name):
        st, _, n = self.m.req("POST", "/v1/grids/%s/nodes" % grid, {"name": name},
                              token=self.admin)
        self.assertEqual(st, 201, n)
        self.assertTrue(n.get("token"), n)
        self.assertEqual(n["status"], "created")
        return n

    def test_node_token_bind_then_4005_4003_4006(self):
        g = self.new_grid()
        grid = g["name"]
        n = self._node_with_token(grid, "tok")
        node_id = ws.random_node_id()
        # Bind it by connecting with the node token.
        a = self.agent(node_token=n["token"], node_id=node_id, name="whatever")
        self.assertEqual(a.node_info[2][0]["name"], "tok")
        self.assertEqual(a.node_info[2][0]["id"], node_id)
        self.assertEqual(self.node(grid, "tok")["node_id"], node_id)
        a.c.send_close(1000)
        a.c.wait_close(5)
        self.wait_status(grid, "tok", "offline")
        # The grid token for that node id: 4005.
        self.expect_close(4005, grid_token=g["token"], node_id=node_id, name="tok")
        # The node token from another node id: 4003.
        self.expect_close(4003, node_token=n["token"], node_id=ws.random_node_id(),
                          name="tok")
        # The node token again from the bound id works.
        self.agent(node_token=n["token"], node_id=node_id, name="tok")
        # A second token node, bound to an id a grid-token node has: 4006.
        other = self.agent(g["token"], name="gridnode")
        n2 = self._node_with_token(grid, "tok2")
        self.expect_close(4006, node_token=n2["token"], node_id=other.node_id,
                          name="tok2")
        self.assertIsNone(self.node(grid, "tok2").get("node_id"))

    def test_clock_skew_4020(self):
        g = self.new_grid()
        for offset in (-60, 10, -3600, 3600):
            self.expect_close(4020, grid_token=g["token"], node_id=ws.random_node_id(),
                              name="skew", connected_at=time.time() + offset)
        # Within the window (-1 s .. +6 s with WEBSOCKET_TIMEOUT 5): accepted.
        self.agent(g["token"], name="skew-ok", connected_at=time.time() - 3)
        self.agent(g["token"], name="skew-ok2", connected_at=time.time() + 0.5)


# ==== Superseding, disconnects ====


class TestSupersede(ProtoCase):

    def test_second_connection_supersedes(self):
        g = self.new_grid()
        grid = g["name"]
        node_id = ws.random_node_id()
        first = self.agent(g["token"], node_id=node_id, name="dup", update=True)
        self.wait_status(grid, "dup", "online")
        second = self.agent(g["token"], node_id=node_id, name="dup")
        self.assertEqual(second.node_info[2][0]["node_number"], 1)
        self.assertEqual(first.c.wait_close(5), 4041)
        self.assertTrue(self.node(grid, "dup")["connected"])
        r = second.update()
        self.assertIsNone(r[2], r)
        self.wait_status(grid, "dup", "online")
        # The old socket goes away now: the node must stay online.
        first.c.abort()
        time.sleep(1.0)
        n = self.node(grid, "dup")
        self.assertEqual(n["status"], "online", n)
        self.assertIs(n["connected"], True, n)
        # And the new connection still works.
        r = second.call("/nodes/get", [node_id])
        self.assertIsNone(r[2], r)
        self.assertEqual(r[3]["status"], "online")
        self.assertEqual(len(self.nodes(grid)), 1)

    def test_old_connection_closing_normally_keeps_node_online(self):
        g = self.new_grid()
        grid = g["name"]
        node_id = ws.random_node_id()
        first = self.agent(g["token"], node_id=node_id, name="dup2", update=True)
        second = self.agent(g["token"], node_id=node_id, name="dup2", update=True)
        self.assertEqual(first.c.wait_close(5), 4041)  # also answers the close
        first.c.close()
        time.sleep(1.0)
        self.assertEqual(self.node(grid, "dup2")["status"], "online")
        # The second one closing does take it offline.
        second.c.send_close(1000)
        second.c.wait_close(5)
        self.wait_status(grid, "dup2", "offline")

    def test_killed_client_goes_offline(self):
        g = self.new_grid()
        a = self.agent(g["token"], name="killed", update=True)
        self.wait_status(g["name"], "killed", "online")
        a.c.abort()
        n = self.wait_status(g["name"], "killed", "offline", timeout=3.0)
        self.assertIs(n["connected"], False)
        self.assertTrue(n.get("disconnected_at"), n)

    def test_node_removed_4040(self):
        g = self.new_grid()
        a = self.agent(g["token"], name="doomed", update=True)
        st, _, body = self.m.req("DELETE", "/v1/nodes/%s/doomed" % g["name"],
                                 token=self.admin)
        self.assertEqual(st, 200, body)
        self.assertEqual(a.c.wait_close(5), 4040)
        st, _, _ = self.m.req("GET", "/v1/nodes/%s/doomed" % g["name"], token=self.admin)
        self.assertEqual(st, 404)

    def test_token_reset_4031(self):
        g = self.new_grid()
        grid = g["name"]
        st, _, n = self.m.req("POST", "/v1/grids/%s/nodes" % grid, {"name": "reset"},
                              token=self.admin)
        self.assertEqual(st, 201, n)
        a = self.agent(node_token=n["token"], name="reset", update=True)
        st, _, body = self.m.req("PUT", "/v1/nodes/%s/reset/token" % grid,
                                 {"reset_connection": True}, token=self.admin)
        self.assertEqual(st, 200, body)
        self.assertNotEqual(body["token"], n["token"])
        self.assertEqual(a.c.wait_close(5), 4031)
        self.wait_status(grid, "reset", "offline")
        # The old token is refused now, the new one accepted.
        self.expect_close(4002, node_token=n["token"], node_id=a.node_id, name="reset")
        self.agent(node_token=body["token"], node_id=a.node_id, name="reset")

    def test_token_update_without_reset_keeps_connection(self):
        g = self.new_grid()
        grid = g["name"]
        st, _, n = self.m.req("POST", "/v1/grids/%s/nodes" % grid, {"name": "keep"},
                              token=self.admin)
        self.assertEqual(st, 201, n)
        a = self.agent(node_token=n["token"], name="keep", update=True)
        st, _, body = self.m.req("PUT", "/v1/nodes/%s/keep/token" % grid,
                                 {"reset_connection": False}, token=self.admin)
        self.assertEqual(st, 200, body)
        self.assertTrue(a.c.is_open(0.5))
        r = a.call("/nodes/get", [a.node_id])
        self.assertIsNone(r[2], r)


class TestKeepalive(ProtoCase):
    master_env = {"KONTENA_PING_INTERVAL": "1", "WEBSOCKET_TIMEOUT": "2"}

    def test_answering_client_stays(self):
        g = self.new_grid()
        a = self.agent(g["token"], name="alive", update=True)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                a.c.recv_data(0.2)
            except ws.WSTimeout:
                pass
        self.assertGreaterEqual(len(a.c.pings), 3, "master pings every 1 s")
        self.assertTrue(a.c.is_open(0.2))
        self.assertEqual(self.node(g["name"], "alive")["status"], "online")
        # last_seen_at is written from the pongs.
        n = self.node(g["name"], "alive")
        self.assertTrue(n.get("last_seen_at"), n)

    def test_hung_client_4030(self):
        g = self.new_grid()
        a = self.agent(g["token"], name="hung", update=True)
        a.c.auto_pong = False
        start = time.monotonic()
        # Do not read the socket for a while.
        time.sleep(1 + 2 + 1.5)
        code = a.c.wait_close(1 + 2 + 2)
        elapsed = time.monotonic() - start
        self.assertEqual(code, 4030)
        self.assertLessEqual(elapsed, 1 + 2 + 2 + 0.5)
        self.wait_status(g["name"], "hung", "offline", timeout=2.0)


# ==== Framing ====


class TestFraming(ProtoCase):

    def closes_with(self, agent, code, timeout=5.0):
        got = agent.c.wait_close(timeout)
        self.assertEqual(got, code, "expected %s, got %s %r" % (code, got, agent.c.close_reason))

    def test_truncated_frame_1002(self):
        g = self.new_grid()
        a = self.agent(g["token"], update=True)
        full = ws.request(7, "/nodes/get", [a.node_id])
        a.c.send_binary(full[:-3])
        self.closes_with(a, 1002)
        self.wait_status(g["name"], a.name, "offline")

    def test_text_frame_1002(self):
        g = self.new_grid()
        a = self.agent(g["token"])
        a.c.send_text('[0, 1, "/nodes/get", []]')
        self.closes_with(a, 1002)

    def test_not_an_array_1002(self):
        g = self.new_grid()
        a = self.agent(g["token"])
        a.c.send_binary(ws.pack({"kind": 0}))
        self.closes_with(a, 1002)

    def test_unknown_kind_1002(self):
        g = self.new_grid()
        a = self.agent(g["token"])
        a.c.send_binary(ws.pack([7, 1, "/nodes/get", []]))
        self.closes_with(a, 1002)

    def test_ext_type_1002(self):
        g = self.new_grid()
        a = self.agent(g["token"])
        a.c.send_binary(bytes([0x93, 0x02, 0xa2, 0x2f, 0x61, 0x91, 0xd4, 0x01, 0x00]))
        self.closes_with(a, 1002)

    def test_oversize_message_1009(self):
        g = self.new_grid()
        a = self.agent(g["token"])
        payload = b"\x00" * (MAX_MESSAGE + 1)
        frame = ws.WSClient.build_frame(ws.OP_BINARY, payload)
        # Header and a little: the limit is known from the header.
        a.c.send_raw(frame[:14 + 1024])
        try:
            code = a.c.wait_close(3)
        except ws.WSTimeout:
            try:
                a.c.send_raw(frame[14 + 1024:])
            except OSError:
                pass
            code = a.c.wait_close(5)
        self.assertEqual(code, 1009)

    def test_oversize_fragmented_message_1009(self):
        g = self.new_grid()
        a = self.agent(g["token"])
        half = b"\x01" * (MAX_MESSAGE // 2 + 16)
        try:
            a.c.send_frame(ws.OP_BINARY, half, fin=False)
            a.c.send_frame(ws.OP_CONT, half, fin=True)
        except OSError:
            pass
        self.assertEqual(a.c.wait_close(5), 1009)

    def test_message_just_under_limit_is_read(self):
        g = self.new_grid()
        a = self.agent(g["token"])
        # An unknown notification of nearly 4 MiB: dropped, connection stays.
        params = ["x" * (MAX_MESSAGE - 64)]
        msg = ws.notify("/nodes/unknown", params)
        self.assertLessEqual(len(msg), MAX_MESSAGE)
        a.c.send_binary(msg)
        r = a.call("/nodes/get", [a.node_id], timeout=10)
        self.assertIsNone(r[2], r)

    def test_unknown_method_501_stays_open(self):
        g = self.new_grid()
        a = self.agent(g["token"])
        r = a.call("/nosuch/thing", [1, 2])
        self.assertEqual(len(r), 4, r)
        self.assertIsInstance(r[2], dict, r)
        self.assertEqual(r[2].get("code"), 501, r)
        self.assertIsNone(r[3], r)
        r = a.call("/nodes/nosuch", [])
        self.assertEqual(r[2].get("code"), 501, r)
        # Unknown notifications are dropped quietly.
        a.notify("/nosuch/notify", [1])
        # Responses matching no request are ignored.
        a.c.send_binary(ws.response(99999, None, {"x": 1}))
        r = a.call("/nodes/get", [a.node_id])
        self.assertIsNone(r[2], r)
        self.assertEqual(r[3]["node_id"], a.node_id)
        self.assertTrue(a.c.is_open(0.2))

    def test_fragmented_request_and_ping_answered(self):
        g = self.new_grid()
        a = self.agent(g["token"])
        a.c.send_fragmented(ws.request(555, "/nodes/get", [a.node_id]), 3)
        r = a.read_until(lambda m: m[0] == 1 and m[1] == 555)
        self.assertIsNone(r[2], r)
        self.assertEqual(r[3]["node_id"], a.node_id)
        # The ping between the fragments was answered with its payload.
        deadline = time.monotonic() + 3
        while b"mid" not in a.c.pongs and time.monotonic() < deadline:
            try:
                a.c.recv_data(0.2)
            except ws.WSTimeout:
                pass
        self.assertIn(b"mid", a.c.pongs)

    def test_request_ids_echoed(self):
        g = self.new_grid()
        a = self.agent(g["token"])
        for msgid in (1, 127, 65536, 2 ** 31):
            r = a.call("/nodes/get", [a.node_id], msgid=msgid)
            self.assertEqual(r[1], msgid)

    def test_malformed_closes_only_that_connection(self):
        g = self.new_grid()
        good = self.agent(g["token"], name="good", update=True)
        bad = self.agent(g["token"], name="bad", update=True)
        bad.c.send_binary(b"\x94\x00\x01\xa2/a\xdd\xff\xff\xff\xff")
        self.closes_with(bad, 1002)
        self.wait_status(g["name"], "bad", "offline")
        r = good.call("/nodes/get", [good.node_id])
        self.assertIsNone(r[2], r)
        self.assertEqual(r[3]["name"], "good")
        st, _, body = self.m.req("GET", "/v1/ping")
        self.assertEqual(st, 200, body)
        self.assertEqual(self.node(g["name"], "good")["status"], "online")
        self.assertTrue(self.m.alive())

    def test_garbage_frames_never_crash(self):
        g = self.new_grid()
        good = self.agent(g["token"], name="steady", update=True)
        junk = [b"", b"\xc1", b"\x90", b"\x93\x02\xc0\x90", b"\xdf\xff\xff\xff\xff",
                bytes(range(256)), b"\x94\x00\xff\xa2/a\x90",
                b"\x91" * 100 + b"\x01"]
        for data in junk:
            a = self.agent(g["token"])
            a.c.send_binary(data)
            self.assertEqual(a.c.wait_close(5), 1002, data[:20])
        r = good.call("/nodes/get", [good.node_id])
        self.assertIsNone(r[2], r)
        self.assertTrue(self.m.alive())


# ==== REST acting on agents ====


class TestNodeRest(ProtoCase):

    def test_update_labels_drain_pushes_node_info(self):
        g = self.new_grid()
        grid = g["name"]
        a = self.agent(g["token"], name="worker", update=True)
        self.wait_status(grid, "worker", "online")
        st, _, body = self.m.req("PUT", "/v1/nodes/%s/worker" % grid,
                                 {"labels": ["x=1", "region=eu"], "availability": "drain"},
                                 token=self.admin)
        self.assertEqual(st, 200, body)
        self.assertEqual(body["status"], "drain")
        self.assertEqual(body["labels"], ["x=1", "region=eu"])
        n = self.node(grid, "worker")
        self.assertEqual(n["status"], "drain")
        self.assertEqual(n["availability"], "drain")
        m = a.notification("/agent/node_info", timeout=5)
        self.assertEqual(m[2][0]["labels"], ["x=1", "region=eu"])
        self.assertEqual(m[2][0]["name"], "worker")
        # Back to active.
        st, _, body = self.m.req("PUT", "/v1/nodes/%s/worker" % grid,
                                 {"availability": "active"}, token=self.admin)
        self.assertEqual(st, 200, body)
        self.assertEqual(self.node(grid, "worker")["status"], "online")

    def test_invalid_availability_422(self):
        g = self.new_grid()
        self.agent(g["token"], name="w2", update=True)
        for bad in ("paused", 1, True, ""):
            st, _, body = self.m.req("PUT", "/v1/nodes/%s/w2" % g["name"],
                                     {"availability": bad}, token=self.admin)
            self.assertEqual(st, 422, (bad, body))
            self.assertIn("availability", body.get("error", {}), body)
        self.assertEqual(self.node(g["name"], "w2")["availability"], "active")
        st, _, body = self.m.req("PUT", "/v1/nodes/%s/w2" % g["name"],
                                 {"labels": "a=b"}, token=self.admin)
        self.assertEqual(st, 422, body)

    def test_health(self):
        g = self.new_grid()
        a = self.agent(g["token"], name="healthy", update=True)
        st, _, h = self.m.req("GET", "/v1/nodes/%s/healthy/health" % g["name"],
                              token=self.admin)
        self.assertEqual(st, 200, h)
        self.assertIs(h["connected"], True, h)
        self.assertEqual(h["name"], "healthy")
        self.assertEqual(h["status"], "online")
        a.c.abort()
        self.wait_status(g["name"], "healthy", "offline")
        st, _, h = self.m.req("GET", "/v1/nodes/%s/healthy/health" % g["name"],
                              token=self.admin)
        self.assertEqual(st, 200, h)
        self.assertIs(h["connected"], False, h)

    def test_node_lookup_by_node_id(self):
        g = self.new_grid()
        a = self.agent(g["token"], name="byid")
        n = self.node(g["name"], a.node_id)
        self.assertEqual(n["name"], "byid")

    def _invite(self, email):
        st, _, inv = self.m.req("POST", "/oauth2/authorize",
                                {"response_type": "invite", "email": email},
                                token=self.admin)
        self.assertEqual(st, 201, inv)
        st, _, tok = self.m.exchange_code(inv["invite_code"])
        self.assertEqual(st, 201, tok)
        return tok["access_token"]

    def test_node_token_routes(self):
        g = self.new_grid()
        grid = g["name"]
        st, _, n = self.m.req("POST", "/v1/grids/%s/nodes" % grid,
                              {"name": "tn", "labels": ["a=1"]}, token=self.admin)
        self.assertEqual(st, 201, n)
        token = n["token"]
        st, _, body = self.m.req("GET", "/v1/nodes/%s/tn/token" % grid, token=self.admin)
        self.assertEqual(st, 200, body)
        self.assertEqual(body["token"], token)
        st, _, body = self.m.req("PUT", "/v1/nodes/%s/tn/token" % grid,
                                 {"token": "my-own-node-token-123456"}, token=self.admin)
        self.assertEqual(st, 200, body)
        self.assertEqual(body["token"], "my-own-node-token-123456")
        st, _, body = self.m.req("GET", "/v1/nodes/%s/tn/token" % grid, token=self.admin)
        self.assertEqual(body["token"], "my-own-node-token-123456")
        st, _, body = self.m.req("PUT", "/v1/nodes/%s/tn/token" % grid,
                                 {"token": "short"}, token=self.admin)
        self.assertEqual(st, 422, body)
        # Non-member: 403 on all three, and on node delete.
        outsider = self._invite("outsider%d@example.com" % os.getpid())
        for method, path, body in (("GET", "/token", None), ("PUT", "/token", {}),
                                   ("DELETE", "/token", None), ("DELETE", "", None)):
            st, _, b = self.m.req(method, "/v1/nodes/%s/tn%s" % (grid, path), body,
                                  token=outsider)
            self.assertEqual(st, 403, (method, path, b))
        # Member without the grid admin role: still 403.
        member_email = "member%d@example.com" % os.getpid()
        member = self._invite(member_email)
        st, _, b = self.m.req("POST", "/v1/grids/%s/users" % grid, {"email": member_email},
                              token=self.admin)
        self.assertEqual(st, 201, b)
        st, _, b = self.m.req("GET", "/v1/nodes/%s/tn" % grid, token=member)
        self.assertEqual(st, 200, b)
        for method, path in (("GET", "/token"), ("PUT", "/token"), ("DELETE", "/token")):
            st, _, b = self.m.req(method, "/v1/nodes/%s/tn%s" % (grid, path),
                                  {} if method == "PUT" else None, token=member)
            self.assertEqual(st, 403, (method, path, b))
        st, _, b = self.m.req("GET", "/v1/nodes/%s/tn/token" % grid, token=self.admin)
        self.assertEqual(b["token"], "my-own-node-token-123456", "unchanged by the 403s")
        # Delete the token: then it has none and cannot connect.
        st, _, body = self.m.req("DELETE", "/v1/nodes/%s/tn/token" % grid, token=self.admin)
        self.assertEqual(st, 200, body)
        st, _, body = self.m.req("GET", "/v1/nodes/%s/tn/token" % grid, token=self.admin)
        self.assertEqual(st, 404, body)
        self.expect_close(4002, node_token="my-own-node-token-123456",
                          node_id=ws.random_node_id(), name="tn")

    def test_create_node_duplicate_name_422(self):
        g = self.new_grid()
        grid = g["name"]
        st, _, n = self.m.req("POST", "/v1/grids/%s/nodes" % grid, {"name": "twin"},
                              token=self.admin)
        self.assertEqual(st, 201, n)
        st, _, body = self.m.req("POST", "/v1/grids/%s/nodes" % grid, {"name": "twin"},
                                 token=self.admin)
        self.assertEqual(st, 422, body)
        self.assertIn("name", body.get("error", {}), body)
        # A name an agent took via the grid token clashes too.
        self.agent(g["token"], name="agentname")
        st, _, body = self.m.req("POST", "/v1/grids/%s/nodes" % grid, {"name": "agentname"},
                                 token=self.admin)
        self.assertEqual(st, 422, body)
        st, _, body = self.m.req("POST", "/v1/grids/%s/nodes" % grid, {"name": "-bad"},
                                 token=self.admin)
        self.assertEqual(st, 422, body)
        self.assertEqual(sorted(x["name"] for x in self.nodes(grid)), ["agentname", "twin"])


# ==== Pod state reports (batched on the loop) ====


class TestPodReports(ProtoCase):

    def test_set_state_answers_and_completes_deploy(self):
        g = self.new_grid()
        grid = g["name"]
        a = self.agent(g["token"], update=True)
        b = self.agent(g["token"], update=True)
        self.wait_status(grid, a.name, "online")
        self.wait_status(grid, b.name, "online")
        st, _, body = self.m.req("POST", "/v1/grids/%s/services" % grid,
                                 {"name": "web", "image": "busybox",
                                  "instances": 2, "strategy": "ha",
                                  # both at once (concurrency 2)
                                  "deploy_opts": {"min_health": 0.0}},
                                 token=self.admin)
        self.assertIn(st, (200, 201), body)
        st, _, d = self.m.req("POST", "/v1/services/%s/null/web/deploy" % grid,
                              {}, token=self.admin)
        self.assertIn(st, (200, 201), d)
        pods = {}
        for ag in (a, b):
            # A request or a notification, depending on the master.
            try:
                ag.read_until(lambda m: isinstance(m, list) and
                              "/service_pods/notify_update" in m[1:3],
                              timeout=10)
            except ws.WSTimeout:
                _, _, dd = self.m.req("GET", "/v1/services/%s/null/web/deploys/%s"
                                      % (grid, d["id"]), token=self.admin)
                self.fail("no notify_update: deploy %r inbox %r master %s"
                          % (dd, ag.inbox, self.m.stderr()[-1500:]))
            r = ag.call("/node_service_pods/list", [ag.node_id])
            self.assertIsNone(r[2], r)
            got = r[3]["service_pods"]
            self.assertEqual(len(got), 1, got)
            pods[ag.node_id] = got[0]
        # Bad params: 400, the connection stays.
        r = a.call("/node_service_pods/set_state", [a.node_id, {"state": "x"}])
        self.assertEqual(r[2].get("code"), 400, r)
        r = a.call("/node_service_pods/set_state", [a.node_id])
        self.assertEqual(r[2].get("code"), 400, r)
        pa, pb = pods[a.node_id], pods[b.node_id]
        # No such instance: 404.
        r = a.call("/node_service_pods/set_state", [a.node_id, {
            "service_id": pa["service_id"], "instance_number": 99,
            "rev": pa["deploy_rev"], "state": "running", "error": None}])
        self.assertEqual(r[2].get("code"), 404, r)
        # Another node's instance: answered, but not written.
        r = a.call("/node_service_pods/set_state", [a.node_id, {
            "service_id": pb["service_id"],
            "instance_number": pb["instance_number"],
            "rev": pb["deploy_rev"], "state": "running", "error": None}])
        self.assertIsNone(r[2], r)
        time.sleep(0.5)
        st, _, dd = self.m.req("GET", "/v1/services/%s/null/web/deploys/%s"
                               % (grid, d["id"]), token=self.admin)
        self.assertEqual(st, 200, dd)
        self.assertIsNone(dd.get("finished_at"), dd)
        # Each node reports its own: a request and a notification.
        r = a.call("/node_service_pods/set_state", [a.node_id, {
            "service_id": pa["service_id"],
            "instance_number": pa["instance_number"],
            "rev": pa["deploy_rev"], "state": "running", "error": None}])
        self.assertIsNone(r[2], r)
        self.assertEqual(r[3], {}, r)
        b.notify("/node_service_pods/set_state", [b.node_id, {
            "service_id": pb["service_id"],
            "instance_number": pb["instance_number"],
            "rev": pb["deploy_rev"], "state": "running"}])
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            st, _, dd = self.m.req("GET", "/v1/services/%s/null/web/deploys/%s"
                                   % (grid, d["id"]), token=self.admin)
            if dd.get("finished_at"):
                break
            time.sleep(0.05)
        self.assertEqual(dd.get("state"), "success", dd)
        self.assertTrue(a.c.is_open(0.1))


if __name__ == "__main__":
    kh.main()
