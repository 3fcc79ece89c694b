#!/usr/bin/env python3
"""Integration tests of external registries and the audit log with real
parts: a real kontena-master, the real kontena CLI as a user runs it, and a
real kontena-agent whose engine is a small fake Docker API in this file
(a unix-socket HTTP server). The fake engine exists because no real
engine here can reach a registry (Podman's pulls always fail, see
../shared/engine/NOTES.md): what matters is the X-Registry-Auth header the
agent sends with its pull, and the fake engine records it.

Covered: registries added, listed, shown and removed with the CLI and the
API (password from -p and from stdin, never in any API answer nor in
plaintext in the store's files, SQLite's -wal included); 422/404 answers; grid
isolation of registries; the pod's image_credentials reaching the engine
as X-Registry-Auth (and none for an image of another registry); audit
entries for grid create, service create and registry add with filtered
bodies, failures recorded, reads not recorded; 403 for a non-admin on the
master audit log; the grid audit log holds only its grid's entries; the
CLI's audit-log tables; retention trims to KONTENA_AUDIT_LOG_MAX.

Every class runs on PostgreSQL too (test_pg_master.py subclasses them).

Run by ctest (KONTENA_BUILD_DIR / KONTENA_SOURCE_DIR set) or by hand:
    python3 tests/integration/test_audit_registries.py [-k pattern]
KONTENA_KEEP_TMP=1 keeps the temp dirs (master and agent logs).
"""

import base64
import http.server
import json
import os
import shutil
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kontena_harness as kh  # noqa: E402

AGENT_BIN = os.path.join(kh.BUILD_DIR, "kontena-agent")
PASSWORD = "Pa55-w0rd-d9c41e7b"  # searched for in the database files
PASSWORD2 = "stdin-Secret-5e0a77"
SECRET_VALUE = "vault-Value-77c2e9a1"
REG_URL = "https://registry.example.test:5000/v2/"
REG_NAME = "registry.example.test:5000"


# ==== A fake Docker engine on a unix socket ====

class _Engine(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    allow_reuse_address = True


class FakeEngine:
    """Answers the calls kontena-agent makes with plausible Docker API
    answers, has no images, fails every pull, and records each pull's
    image and X-Registry-Auth header."""

    def __init__(self, path):
        self.path = path
        self.pulls = []  # (fromImage, tag, X-Registry-Auth or None)
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        engine = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def address_string(self):
                return "agent"

            def _send(self, status, obj):
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self):
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def _path(self):
                u = urllib.parse.urlsplit(self.path)
                p = u.path
                if p.startswith("/v1."):
                    p = "/" + p.split("/", 2)[2]
                return p, urllib.parse.parse_qs(u.query)

            def do_GET(self):
                p, q = self._path()
                if p == "/info":
                    self._send(200, {
                        "ID": "FAKE:ENGINE:0001", "Name": "fake-node",
                        "MemTotal": 4 << 30, "NCPU": 2,
                        "DockerRootDir": "/var/lib/fake",
                        "OperatingSystem": "Fake OS", "KernelVersion": "6.1",
                        "Driver": "overlay2", "ServerVersion": "24.0.0",
                        "Plugins": {"Volume": ["local"],
                                    "Network": ["bridge"]}})
                elif p == "/version":
                    self._send(200, {"Version": "24.0.0",
                                     "ApiVersion": "1.41",
                                     "Components": [{"Name": "Engine",
                                                     "Version": "24.0.0"}]})
                elif p == "/containers/json":
                    self._send(200, [])
                elif p == "/events":
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    self.wfile.flush()
                    while not engine.stopping.wait(0.5):
                        pass
                    self.close_connection = True
                else:
                    self._send(404, {"message": "no such thing: " + p})

            def do_POST(self):
                p, q = self._path()
                self._body()
                if p == "/images/create":
                    with engine.lock:
                        engine.pulls.append((
                            (q.get("fromImage") or [""])[0],
                            (q.get("tag") or [""])[0],
                            self.headers.get("X-Registry-Auth")))
                    # Like Docker: 200 and an error inside the stream.
                    self._send(200, {"errorDetail": {
                        "message": "fake engine: registry unreachable"},
                        "error": "fake engine: registry unreachable"})
                else:
                    self._send(404, {"message": "no such thing: " + p})

            def do_DELETE(self):
                self._send(404, {"message": "no such container"})

        self.server = _Engine(path, Handler)
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()

    def pulls_of(self, image):
        with self.lock:
            return [p for p in self.pulls if p[0] == image]


def decode_auth(value):
    """The JSON in an X-Registry-Auth value (padded base64url)."""
    for c in "+/":
        if c in value:
            raise AssertionError("not base64url: %r" % value)
    return json.loads(base64.urlsafe_b64decode(value.encode()))


class AgentProc:
    """One kontena-agent talking to the fake engine."""

    def __init__(self, logdir, env):
        self.log_path = os.path.join(logdir, "agent.log")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([AGENT_BIN], stdout=self._log,
                                     stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL,
                                     env=kh.clean_env(env))

    def log(self):
        return kh._read(self.log_path)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log.close()
        return self.proc.returncode


# ==== Tests ====

class AuditCase(unittest.TestCase):
    """A master and a logged-in CLI home per class."""

    master_env = None

    @classmethod
    def setUpClass(cls):
        kh.require_binary(kh.CLI_BIN, skip=True)
        cls.m = kh.Master(env=cls.master_env)
        cls.addClassCleanup(cls.m.cleanup)
        cls.m.start()
        cls.home = kh.CliHome()
        cls.addClassCleanup(cls.home.cleanup)
        cp = cls.home.run("master", "login", "--code", cls.m.admin_code,
                          cls.m.url)
        if cp.returncode != 0:
            raise RuntimeError("login failed: " + kh.describe_run(cp))
        cls.admin = cls.home.read_config()["servers"][0]["token"]

    def ok(self, *args, stdin_data=""):
        cp = self.home.run(*args, stdin_data=stdin_data)
        self.assertEqual(cp.returncode, 0, "kontena %s: %s"
                         % (" ".join(map(str, args)), kh.describe_run(cp)))
        return cp

    def fails(self, *args, stdin_data=""):
        cp = self.home.run(*args, stdin_data=stdin_data)
        self.assertNotEqual(cp.returncode, 0, "kontena %s should fail: %s"
                            % (" ".join(map(str, args)), kh.describe_run(cp)))
        self.assertTrue(cp.stderr.startswith("error: "), kh.describe_run(cp))
        return cp

    def req(self, method, path, body=None, token=None):
        return self.m.req(method, path, body, token=token or self.admin)

    def audit(self, path="/v1/audit_logs?limit=3000", token=None):
        st, _, body = self.req("GET", path, token=token)
        self.assertEqual(st, 200, body)
        return body["logs"]

    def invite(self, email):
        st, _, inv = self.req("POST", "/oauth2/authorize",
                              {"response_type": "invite", "email": email})
        self.assertEqual(st, 201, inv)
        st, _, tok = self.m.exchange_code(inv["invite_code"])
        self.assertEqual(st, 201, tok)
        return tok["access_token"]


class TestRegistries(AuditCase):

    def test_01_add_list_show_remove(self):
        self.ok("grid", "create", "regs")
        cp = self.ok("external-registry", "add", REG_URL, "-u", "bob",
                     "-p", PASSWORD, "-e", "bob@example.com")
        self.assertIn("Added registry %s" % REG_NAME, cp.stdout)
        self.assertNotIn(PASSWORD, cp.stdout + cp.stderr)
        # The password from stdin (not a terminal), with its newline.
        cp = self.ok("external-registry", "add", "https://quay.io", "-u",
                     "robot", stdin_data=PASSWORD2 + "\n")
        self.assertIn("Added registry quay.io", cp.stdout)

        cp = self.ok("external-registry", "ls")
        lines = cp.stdout.splitlines()
        self.assertEqual(lines[0].split(), ["NAME", "URL", "USERNAME", "EMAIL"])
        self.assertTrue(lines[1].startswith("quay.io "), cp.stdout)
        self.assertIn(REG_NAME, lines[2])
        self.assertIn("bob@example.com", lines[2])
        cp = self.ok("external-registry", "ls", "-o", "json")
        regs = json.loads(cp.stdout)
        self.assertEqual([r["name"] for r in regs], ["quay.io", REG_NAME])
        want = {"id": "regs/" + REG_NAME, "name": REG_NAME, "url": REG_URL,
                "username": "bob", "email": "bob@example.com"}
        self.assertEqual(regs[1], want)

        st, _, body = self.req("GET", "/v1/grids/regs/external_registries")
        self.assertEqual(st, 200, body)
        st, _, one = self.req("GET", "/v1/external_registries/regs/" + REG_NAME)
        self.assertEqual((st, one), (200, want))
        for text in (json.dumps(body), json.dumps(one), json.dumps(regs)):
            self.assertNotIn(PASSWORD, text)
            self.assertNotIn(PASSWORD2, text)
            self.assertNotIn("password", text)

        # Passwords are sealed at rest: no plaintext in any database file
        # (SQLite's, -wal included; or the PostgreSQL cluster's).
        files = self.m.store_files()
        if not self.m.database_url:
            self.assertTrue(any(f.endswith("-wal") for f in files), files)
        self.assertTrue(files)
        self.assertEqual(kh.files_holding(files, [PASSWORD, PASSWORD2]), {})
        self.assertNotIn(PASSWORD, self.m.logs())

        cp = self.fails("external-registry", "rm", "quay.io")
        self.assertIn("--force", cp.stderr)
        self.ok("external-registry", "rm", "--force", "quay.io")
        st, _, body = self.req("GET", "/v1/external_registries/regs/quay.io")
        self.assertEqual((st, body), (404, {"error": "Not found"}))
        cp = self.fails("external-registry", "rm", "--force", "quay.io")
        self.assertIn("cannot remove registry quay.io", cp.stderr)

    def test_02_bad_input(self):
        self.req("POST", "/v1/grids", {"name": "badin"})
        path = "/v1/grids/badin/external_registries"
        for body, fields in (
                ({}, ["url", "username", "password"]),
                ({"url": "ftp://x", "username": "u", "password": "p"}, ["url"]),
                ({"url": "https://a b", "username": "u", "password": "p"}, ["url"]),
                ({"url": "https://x:99999", "username": "u", "password": "p"}, ["url"]),
                ({"url": "https://x", "username": 5, "password": "p"}, ["username"]),
                ({"url": "https://x", "username": "u", "password": ""}, ["password"]),
                ({"url": "https://x", "username": "u", "password": "p",
                  "email": 7}, ["email"])):
            st, _, err = self.req("POST", path, body)
            self.assertEqual(st, 422, (body, err))
            for f in fields:
                self.assertIn(f, err["error"], (body, err))
        body = {"url": "https://dup.example.com", "username": "u",
                "password": "p"}
        self.assertEqual(self.req("POST", path, body)[0], 201)
        st, _, err = self.req("POST", path, body)
        self.assertEqual(st, 422, err)
        self.assertIn("name", err["error"])
        st, _, err = self.m.req("POST", path, "{not json", token=self.admin)
        self.assertEqual((st, err), (400, {"error": "Invalid json"}))
        st, _, err = self.req("GET", "/v1/external_registries/nosuch/x")
        self.assertEqual((st, err), (404, {"error": "Not found"}))
        st, _, err = self.req("DELETE", "/v1/external_registries/badin/nope")
        self.assertEqual((st, err), (404, {"error": "Not found"}))
        cp = self.fails("external-registry", "add", "ftp://x", "-u", "u",
                        "-p", "p", "--grid", "badin")
        self.assertIn("url", cp.stderr)
        cp = self.home.run("external-registry", "add", "https://x", "-p", "p")
        self.assertEqual(cp.returncode, 2, kh.describe_run(cp))
        self.assertIn("--username", cp.stderr)
        cp = self.home.run("external-registry", "add", "https://x", "-u", "u",
                           "--grid", "badin", stdin_data="")
        self.assertEqual(cp.returncode, 2, kh.describe_run(cp))
        self.assertIn("password is empty", cp.stderr)

    def test_03_grid_isolation(self):
        bob = self.invite("reg-bob@example.com")
        self.req("POST", "/v1/grids", {"name": "iso-a"})
        self.req("POST", "/v1/grids", {"name": "iso-b"})
        st, _, _ = self.req("POST", "/v1/grids/iso-b/users",
                            {"email": "reg-bob@example.com"})
        self.assertEqual(st, 201)
        body = {"url": "https://iso.example.com", "username": "u",
                "password": "p"}
        self.assertEqual(self.req("POST", "/v1/grids/iso-a/external_registries",
                                  body)[0], 201)
        for method, path, b in (
                ("GET", "/v1/grids/iso-a/external_registries", None),
                ("POST", "/v1/grids/iso-a/external_registries", body),
                ("GET", "/v1/external_registries/iso-a/iso.example.com", None),
                ("DELETE", "/v1/external_registries/iso-a/iso.example.com",
                 None)):
            st, _, err = self.req(method, path, b, token=bob)
            self.assertEqual((st, err), (403, {"error": "Access denied"}),
                             (method, path))
        # A member of iso-b works there and sees nothing of iso-a.
        st, _, lst = self.req("GET", "/v1/grids/iso-b/external_registries",
                              token=bob)
        self.assertEqual((st, lst), (200, {"external_registries": []}))
        self.assertEqual(self.req("POST", "/v1/grids/iso-b/external_registries",
                                  body, token=bob)[0], 201)
        st, _, _ = self.req("GET", "/v1/external_registries/iso-a/iso.example.com")
        self.assertEqual(st, 200)


class TestPullCredentials(AuditCase):
    """The agent pulls with the grid's credentials for the image's
    registry, and with none for other registries."""

    @classmethod
    def setUpClass(cls):
        kh.require_binary(AGENT_BIN, skip=True)
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp(prefix="kontena-fake-engine-")
        cls.addClassCleanup(lambda: os.environ.get("KONTENA_KEEP_TMP") == "1"
                            or shutil.rmtree(cls.tmp, ignore_errors=True))
        cls.engine = FakeEngine(os.path.join(cls.tmp, "docker.sock")).start()
        cls.addClassCleanup(cls.engine.stop)

    def stop_agent(self, agent):
        rc = agent.stop()
        log = agent.log()
        for mark in kh.Master.SANITIZER_MARKS:
            self.assertNotIn(mark, log, "sanitizer report from the agent:\n"
                             + log[max(0, log.find(mark) - 200):][:3000])
        self.assertEqual(rc, 0, "agent exit status\n" + log[-2000:])

    def test_pull_with_credentials(self):
        self.ok("grid", "create", "pulls")
        st, _, grid = self.req("GET", "/v1/grids/pulls")
        self.ok("external-registry", "add", REG_URL, "-u", "puller", "-p",
                PASSWORD, "-e", "puller@example.com")
        agent = AgentProc(self.tmp, {
            "KONTENA_URI": self.m.url.replace("http://", "ws://"),
            "KONTENA_TOKEN": grid["token"],
            "DOCKER_HOST": "unix://" + self.engine.path,
            "KONTENA_NODE_ID": "FAKE:ENGINE:0001",
            "KONTENA_NODE_NAME": "fake-node",
            "KONTENA_PODS_INTERVAL": "1",
            "LOG_LEVEL": "debug",
        })
        self.addCleanup(self.stop_agent, agent)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            st, _, nodes = self.req("GET", "/v1/grids/pulls/nodes")
            if st == 200 and nodes["nodes"] and \
                    nodes["nodes"][0].get("status") == "online":
                break
            time.sleep(0.2)
        else:
            self.fail("node not online: %r\n%s\n%s" % (
                nodes, agent.log()[-3000:], self.m.describe()))

        private = "registry.example.test:5000/team/app"
        public = "example/public-app"
        for name, image in (("priv", private + ":1.2"),
                            ("pub", public + ":3")):
            self.ok("service", "create", name, image)
            self.home.run("service", "deploy", "--no-wait", name)
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            if self.engine.pulls_of(private) and self.engine.pulls_of(public):
                break
            time.sleep(0.2)
        else:
            self.fail("no pulls seen: %r\n%s" % (self.engine.pulls,
                                                 agent.log()[-4000:]))
        img, tag, auth = self.engine.pulls_of(private)[0]
        self.assertEqual(tag, "1.2")
        self.assertIsNotNone(auth, "no X-Registry-Auth for %s" % private)
        self.assertEqual(decode_auth(auth), {
            "username": "puller", "password": PASSWORD,
            "email": "puller@example.com", "serveraddress": REG_URL})
        _, tag, auth = self.engine.pulls_of(public)[0]
        self.assertEqual(tag, "3")
        self.assertIsNone(auth, "credentials sent to another registry")
        # Never in a log: not the agent's, not the master's.
        self.assertNotIn(PASSWORD, agent.log())
        self.assertNotIn(PASSWORD, self.m.logs())
        self.assertIn("with credentials", agent.log())
        # The failed pull is reported as the instance's error.
        deadline = time.monotonic() + 20
        err = None
        while time.monotonic() < deadline and not err:
            st, _, inst = self.req("GET", "/v1/services/pulls/null/priv/instances")
            items = inst.get("instances", []) if st == 200 else []
            err = items[0].get("error") if items else None
            time.sleep(0.2)
        self.assertIn("registry unreachable", err or "", inst)


class TestAuditLog(AuditCase):
    # A service may only name a secret that the vault holds.
    master_env = {"VAULT_KEY": "audit-" + "v" * 58}

    def test_01_entries_with_filtered_bodies(self):
        self.ok("grid", "create", "audited")
        self.ok("external-registry", "add", REG_URL, "-u", "bob", "-p",
                PASSWORD)
        self.ok("vault", "write", "DB_PASS", SECRET_VALUE)
        self.ok("service", "create", "web", "busybox", "--secret",
                "DB_PASS:DB_PASS:env", "-e", "MODE=x")
        before = len(self.audit())
        for _ in range(3):
            self.req("GET", "/v1/grids/audited")  # reads are not recorded
            self.req("GET", "/v1/grids/audited/external_registries")
        self.assertEqual(len(self.audit()), before)
        # A failure after authentication is recorded too.
        st, _, _ = self.req("POST", "/v1/grids/audited/external_registries",
                            {"url": "nope", "username": "u",
                             "password": PASSWORD})
        self.assertEqual(st, 422)
        # One before authentication is not.
        self.m.req("POST", "/v1/grids", {"name": "anon"}, token="bad" * 10)

        logs = self.audit()
        self.assertEqual(len(logs), before + 1)
        self.assertNotIn(PASSWORD, json.dumps(logs))
        self.assertNotIn(SECRET_VALUE, json.dumps(logs))
        times = [e["time"] for e in logs]
        self.assertEqual(times, sorted(times, reverse=True), "newest first")
        by = {(e["resource_type"], e["event_name"], e["event_status"]): e
              for e in logs}
        g = by[("grids", "create", "success")]
        self.assertEqual(g["resource_name"], "audited")
        self.assertEqual(g["grid"], "audited")
        self.assertRegex(g["grid_id"], r"^[0-9a-f]{24}$")
        self.assertEqual(g["user_identity"]["email"], "admin")
        self.assertRegex(g["user_identity"]["id"], r"^[0-9a-f]{24}$")
        self.assertEqual(g["source_ip"], "127.0.0.1")
        self.assertTrue(g["user_agent"].startswith("kontena-cli/"), g)
        self.assertEqual(g["status"], 201)

        r = by[("external_registries", "create", "success")]
        self.assertEqual(r["resource_name"], "audited/" + REG_NAME)
        self.assertEqual(r["grid"], "audited")
        self.assertEqual(r["request_body"]["password"], "[FILTERED]")
        self.assertEqual(r["request_body"]["username"], "bob")
        bad = by[("external_registries", "create", "error")]
        self.assertEqual(bad["status"], 422)
        self.assertEqual(bad["request_body"]["password"], "[FILTERED]")

        v = by[("secrets", "create", "success")]
        self.assertEqual(v["request_body"]["value"], "[FILTERED]")
        self.assertEqual(v["request_body"]["name"], "DB_PASS")

        s = by[("services", "create", "success")]
        self.assertEqual(s["resource_name"], "audited/null/web")
        self.assertEqual(s["service"], "audited/null/web")
        self.assertEqual(s["request_body"]["image"], "busybox")
        for k, v in s["request_body"]["secrets"][0].items():
            self.assertEqual(v, "[FILTERED]", k)
        for key in ("time", "grid", "grid_id", "service", "resource_type",
                    "resource_name", "resource_id", "event_name",
                    "event_status", "source_ip", "user_agent",
                    "user_identity"):
            self.assertIn(key, s)
        self.assertNotIn(PASSWORD, self.m.logs())
        self.assertNotIn(SECRET_VALUE, self.m.logs())

    def test_02_access_and_isolation(self):
        carol = self.invite("carol@example.com")
        st, _, body = self.req("GET", "/v1/audit_logs", token=carol)
        self.assertEqual((st, body), (403, {"error": "Access denied"}))
        for name in ("iso-one", "iso-two"):
            self.assertEqual(self.req("POST", "/v1/grids", {"name": name})[0],
                             201)
            self.req("POST", "/v1/grids/%s/external_registries" % name,
                     {"url": "https://%s.example.com" % name,
                      "username": "u", "password": "p"})
        self.req("PUT", "/v1/grids/iso-two", {"trusted_subnets": []})
        one = self.audit("/v1/grids/iso-one/audit_log")
        two = self.audit("/v1/grids/iso-two/audit_log")
        self.assertEqual({e["grid"] for e in one}, {"iso-one"})
        self.assertEqual({e["grid"] for e in two}, {"iso-two"})
        self.assertEqual(
            sorted((e["resource_type"], e["event_name"]) for e in one),
            [("external_registries", "create"), ("grids", "create")])
        self.assertEqual(len(two), 3)
        # A member who is no grid admin cannot read it; nor can outsiders.
        self.req("POST", "/v1/grids/iso-one/users",
                 {"email": "carol@example.com"})
        st, _, body = self.req("GET", "/v1/grids/iso-one/audit_log",
                               token=carol)
        self.assertEqual((st, body), (403, {"error": "Access denied"}))
        st, _, body = self.req("GET", "/v1/grids/iso-two/audit_log",
                               token=carol)
        self.assertEqual(st, 403)
        # Carol's denied attempts are in the log, under her name.
        mine = [e for e in self.audit()
                if e["user_identity"]["email"] == "carol@example.com"]
        self.assertEqual(mine, [])  # reads by Carol are not recorded
        st, _, _ = self.req("DELETE", "/v1/grids/iso-two", token=carol)
        self.assertEqual(st, 403)
        mine = [e for e in self.audit("/v1/grids/iso-two/audit_log")
                if e["user_identity"]["email"] == "carol@example.com"]
        self.assertEqual(len(mine), 1)
        self.assertEqual((mine[0]["event_name"], mine[0]["status"]),
                         ("delete", 403))
        # Limits.
        self.assertEqual(len(self.audit("/v1/audit_logs?limit=2")), 2)
        for bad in ("0", "3001", "x"):
            st, _, err = self.req("GET", "/v1/audit_logs?limit=" + bad)
            self.assertEqual(st, 422, err)
            self.assertIn("limit", err["error"])
        st, _, err = self.req("GET", "/v1/grids/nosuch/audit_log")
        self.assertEqual((st, err), (404, {"error": "Not found"}))

    def test_03_cli_tables(self):
        self.ok("grid", "create", "clitab")
        self.ok("grid", "update", "clitab", "--trusted-subnet", "10.9.0.0/24")
        cp = self.ok("master", "audit-log", "--limit", "2")
        lines = cp.stdout.splitlines()
        self.assertEqual(lines[0].split(),
                         ["TIME", "USER", "ACTION", "RESOURCE", "SOURCE",
                          "IP", "USER", "AGENT"])
        self.assertEqual(len(lines), 3, cp.stdout)
        self.assertIn("update", lines[1])
        self.assertIn("grids clitab", lines[1])
        self.assertIn("127.0.0.1", lines[1])
        self.assertIn("kontena-cli/", lines[1])
        cp = self.ok("grid", "audit-log", "clitab", "-o", "json")
        entries = json.loads(cp.stdout)
        self.assertEqual([e["event_name"] for e in entries],
                         ["update", "create"])
        cp = self.ok("grid", "audit-log")  # the current grid
        self.assertEqual(len(cp.stdout.splitlines()), 3, cp.stdout)
        cp = self.home.run("master", "audit-log", "--limit", "0")
        self.assertEqual(cp.returncode, 2, kh.describe_run(cp))
        self.assertIn("--limit", cp.stderr)
        cp = self.fails("grid", "audit-log", "nosuch")
        self.assertIn("nosuch", cp.stderr)


class TestRetention(AuditCase):
    master_env = {"KONTENA_AUDIT_LOG_MAX": "5"}

    def test_trim_to_max(self):
        for i in range(12):
            st, _, _ = self.req("POST", "/v1/grids", {"name": "ret-%02d" % i})
            self.assertEqual(st, 201)
        self.assertEqual(len(self.audit()), 12)
        # The periodic job runs 5 s after start, then every 10 minutes.
        self.m.stop()
        self.m.start()
        deadline = time.monotonic() + 20
        logs = self.audit()
        while len(logs) > 5 and time.monotonic() < deadline:
            time.sleep(0.3)
            logs = self.audit()
        self.assertEqual([e["resource_name"] for e in logs],
                         ["ret-%02d" % i for i in range(11, 6, -1)])
        self.assertIn("old audit entries removed: 7", self.m.logs())


if __name__ == "__main__":
    kh.main()
