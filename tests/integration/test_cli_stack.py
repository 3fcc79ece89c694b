#!/usr/bin/env python3
"""The `kontena stack` commands that talk to a master, run as a user would
against an HTTP server that speaks the stacks API contract (spec 3.1/3.2:
POST /v1/grids/G/stacks, GET/PUT/PATCH/DELETE /v1/stacks/G/S, deploy and
its polling, stop, restart, logs). The contract server keeps stacks in
memory and records every request, so the tests check what the CLI sends
(bodies, order of child stacks) and how it ends on each deploy outcome:
success, an error before any service deploy (issue #2523) and a deploy
that never finishes (bounded wait). The end-to-end install on a real
master with Podman nodes lives with the master's stacks tests.

Run by ctest or by hand: python3 tests/integration/test_cli_stack.py
"""

import json
import os
import sys
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kontena_harness as kh  # noqa: E402

STACKS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "stacks")
TOKEN = "t" * 64


def fixture(name):
    return os.path.join(STACKS, name)


class Contract:
    """In-memory state of the contract server."""

    def __init__(self):
        self.lock = threading.Lock()
        self.stacks = {}
        self.deploys = {}
        self.requests = []
        self.removing = {}

    def stack_json(self, s):
        out = dict(s)
        out["id"] = "g/" + s["name"]
        out["services"] = [dict(svc, id="g/%s/%s" % (s["name"], svc["name"]),
                                state="running")
                           for svc in s.get("services", [])]
        return out


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def reply(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def handle_any(self, method):
        st = self.server.contract
        n = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(n)) if n else None
        path, _, query = self.path.partition("?")
        with st.lock:
            st.requests.append((method, path, body))
        if self.headers.get("Authorization") != "Bearer " + TOKEN:
            return self.reply(403, {"error": "Access denied"})
        parts = path.strip("/").split("/")
        with st.lock:
            return self.route(st, method, parts, body, query)

    def route(self, st, method, parts, body, query):
        if parts[:2] == ["v1", "grids"] and parts[3:] == ["stacks"]:
            if method == "GET":
                return self.reply(200, {"stacks": [st.stack_json(s) for s in
                                                   st.stacks.values()]})
            name = body["name"]
            if name in st.stacks:
                return self.reply(422, {"error": {"name": "is already taken"}})
            s = dict(body, revision=1, state="initialized", labels=body.get("labels", []))
            st.stacks[name] = s
            return self.reply(201, st.stack_json(s))
        if parts[:2] == ["v1", "secrets"] and len(parts) == 4:
            if parts[3] == "db-pass":
                return self.reply(200, {"id": "g/db-pass", "name": "db-pass",
                                        "value": "from-vault"})
            return self.reply(404, {"error": "Not found"})
        if parts[:2] != ["v1", "stacks"] or len(parts) < 4:
            return self.reply(404, {"error": "Not found"})
        name, rest = parts[3], parts[4:]
        s = st.stacks.get(name)
        if name in st.removing:
            st.removing[name] -= 1
            if st.removing[name] <= 0:
                st.stacks.pop(name, None)
                s = None
        if s is None:
            return self.reply(404, {"error": "Not found"})
        if not rest:
            if method == "GET":
                return self.reply(200, st.stack_json(s))
            if method == "PUT":
                keep = {"labels": s["labels"], "revision": s["revision"] + 1,
                        "state": s["state"]}
                s.clear()
                s.update(body, **keep)
                s["name"] = name
                return self.reply(200, st.stack_json(s))
            if method == "PATCH":
                s["labels"] = body["labels"]
                return self.reply(200, st.stack_json(s))
            if method == "DELETE":
                st.removing[name] = 2
                return self.reply(200, {})
        if rest == ["deploy"] and method == "POST":
            did = "d%d" % (len(st.deploys) + 1)
            d = {"id": did, "stack_id": "g/" + name, "created_at": "now",
                 "state": "created", "service_deploys": [], "polls": 0,
                 "stack": name}
            st.deploys[did] = d
            return self.reply(200, self.deploy_view(d))
        if len(rest) == 2 and rest[0] == "deploys" and method == "GET":
            d = st.deploys.get(rest[1])
            if d is None:
                return self.reply(404, {"error": "Not found"})
            self.advance(st, d)
            return self.reply(200, self.deploy_view(d))
        if rest in (["stop"], ["restart"]) and method == "POST":
            return self.reply(200, {})
        if rest == ["container_logs"] and method == "GET":
            return self.reply(200, {"logs": [
                {"id": "1", "name": name + ".web-1", "created_at": "t1",
                 "type": "stdout", "data": "hello from %s\n" % name}]})
        if rest == ["event_logs"] and method == "GET":
            return self.reply(200, {"logs": [
                {"id": "1", "created_at": "t1", "type": "stack:deploy",
                 "message": "deployed " + name}]})
        return self.reply(404, {"error": "Not found"})

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")

    def do_PUT(self):
        self.handle_any("PUT")

    def do_PATCH(self):
        self.handle_any("PATCH")

    def do_DELETE(self):
        self.handle_any("DELETE")

    @staticmethod
    def deploy_view(d):
        return {k: v for k, v in d.items() if k not in ("polls", "stack")}

    @staticmethod
    def advance(st, d):
        d["polls"] += 1
        stack = d["stack"]
        if stack.startswith("failearly"):
            # The stack deploy errors before any service deploy starts.
            d["state"] = "error"
            d["reason"] = "service web: image is missing"
        elif stack.startswith("hang"):
            d["state"] = "ongoing"
        elif d["polls"] == 1:
            d["state"] = "ongoing"
            d["service_deploys"] = [
                {"id": "s1", "service_id": "g/%s/%s" % (stack, svc["name"]),
                 "state": "ongoing", "instance_deploys": []}
                for svc in st.stacks[stack]["services"]]
        else:
            d["state"] = "success"
            for sd in d["service_deploys"]:
                sd["state"] = "success"


class StackCommands(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        kh.require_binary(kh.CLI_BIN, skip=True)
        cls.home = kh.CliHome()
        cls.addClassCleanup(cls.home.cleanup)
        cls.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        cls.httpd.contract = Contract()
        cls.thread = threading.Thread(target=cls.httpd.serve_forever, daemon=True)
        cls.thread.start()
        cls.addClassCleanup(cls.httpd.server_close)
        cls.addClassCleanup(cls.httpd.shutdown)
        cls.url = "http://127.0.0.1:%d" % cls.httpd.server_address[1]

    @property
    def st(self):
        return self.httpd.contract

    def cli(self, *args, env=None, stdin_data=""):
        extra = {"KONTENA_URL": self.url, "KONTENA_TOKEN": TOKEN,
                 "KONTENA_GRID": "g"}
        extra.update(env or {})
        return self.home.run("stack", *args, env=extra, stdin_data=stdin_data)

    def ok(self, *args, env=None):
        cp = self.cli(*args, env=env)
        self.assertEqual(cp.returncode, 0, kh.describe_run(cp))
        return cp

    def fails(self, *args, env=None, code=1, stdin_data=""):
        cp = self.cli(*args, env=env, stdin_data=stdin_data)
        self.assertEqual(cp.returncode, code, kh.describe_run(cp))
        self.assertTrue(cp.stderr.strip(), kh.describe_run(cp))
        return cp

    def sent(self, method, suffix):
        with self.st.lock:
            return [b for m, p, b in self.st.requests
                    if m == method and p.endswith(suffix)]

    def test_install_sends_the_stack_body_and_deploys(self):
        cp = self.ok("install", fixture("wordpress.yml"), "-n", "blog",
                     env={"WP_DB_PASSWORD": "pw1"})
        self.assertIn("created stack blog", cp.stdout)
        self.assertIn("g/blog/wordpress: ongoing", cp.stdout)
        self.assertIn("g/blog/wordpress: success", cp.stdout)
        self.assertIn("deployed stack blog", cp.stdout)
        body = self.sent("POST", "/v1/grids/g/stacks")[-1]
        self.assertEqual(body["name"], "blog")
        self.assertEqual(body["registry"], "file://")
        self.assertEqual(body["variables"]["db_password"], "pw1")
        with open(fixture("wordpress.yml")) as f:
            self.assertEqual(body["source"], f.read())
        self.assertEqual([s["name"] for s in body["services"]], ["wordpress", "mysql"])
        self.assertEqual(len(self.sent("POST", "/v1/stacks/g/blog/deploy")), 1)
        # Installing it again is the master's 422, printed per field.
        cp = self.fails("install", fixture("wordpress.yml"), "-n", "blog",
                        "--no-deploy")
        self.assertIn("cannot create stack blog", cp.stderr)
        self.assertIn("name: is already taken", cp.stderr)

    def test_install_children_first(self):
        self.ok("install", fixture("parent.yml"), "-n", "shop", "--no-deploy")
        names = [b["name"] for b in self.sent("POST", "/v1/grids/g/stacks")]
        self.assertEqual(names[-2:], ["shop-cache", "shop"])
        child = self.st.stacks["shop-cache"]
        self.assertEqual(child["parent"], {"name": "shop"})
        self.assertEqual(child["variables"], {"size": 2})
        self.assertEqual(self.sent("POST", "/v1/stacks/g/shop/deploy"), [])

    def test_bad_file_sends_nothing(self):
        before = len(self.st.requests)
        cp = self.fails("install", fixture("errors.yml"))
        self.assertIn("errors.yml:5: services.web.instances", cp.stderr)
        self.assertEqual(len(self.st.requests), before)

    def test_deploy_error_before_any_service_ends_with_reason(self):
        self.ok("install", fixture("variables.yml"), "-n", "failearly",
                "-v", "tag=1", "--no-deploy")
        t0 = time.monotonic()
        cp = self.fails("deploy", "failearly")
        self.assertLess(time.monotonic() - t0, 10)
        self.assertIn("error: cannot deploy stack failearly: service web: "
                      "image is missing", cp.stderr)

    def test_deploy_wait_is_bounded(self):
        self.ok("install", fixture("variables.yml"), "-n", "hang",
                "-v", "tag=1", "--no-deploy")
        t0 = time.monotonic()
        cp = self.fails("deploy", "hang", "--timeout", "2")
        self.assertLess(time.monotonic() - t0, 10)
        self.assertIn("still not finished after 2 s", cp.stderr)
        cp = self.ok("deploy", "hang", "--no-wait")
        self.assertIn("deploy of stack hang started", cp.stdout)
        self.fails("deploy", "nosuchstack")

    def test_upgrade_replays_stored_values(self):
        self.ok("install", fixture("wordpress.yml"), "-n", "up", "--no-deploy")
        first = self.st.stacks["up"]["variables"]["db_password"]
        self.ok("label", "add", "up", "team=a")
        cp = self.ok("upgrade", "up", "--no-deploy")
        self.assertIn("upgraded stack up to revision 2", cp.stdout)
        put = self.sent("PUT", "/v1/stacks/g/up")[-1]
        self.assertEqual(put["variables"]["db_password"], first)
        self.assertNotIn("labels", put)
        self.assertEqual(self.st.stacks["up"]["labels"], ["team=a"])
        # From a file, with a new value, then deployed.
        cp = self.ok("upgrade", "up", fixture("wordpress.yml"),
                     "-v", "wp_instances=3")
        self.assertIn("deployed stack up", cp.stdout)
        self.assertEqual(self.st.stacks["up"]["variables"]["wp_instances"], 3)
        # Another stack file is refused unless --force.
        cp = self.fails("upgrade", "up", fixture("variables.yml"),
                        "-v", "tag=1", "--no-deploy")
        self.assertIn("was installed from acme/wordpress, not vars", cp.stderr)
        self.ok("upgrade", "up", fixture("variables.yml"), "-v", "tag=1",
                "--no-deploy", "--force")

    def test_list_show_inspect(self):
        self.ok("install", fixture("variables.yml"), "-n", "seen",
                "-v", "tag=2", "--no-deploy")
        cp = self.ok("ls")
        self.assertRegex(cp.stdout, r"(?m)^seen\s+vars:1\s+1\s+1\s+initialized")
        ls = json.loads(self.ok("ls", "-o", "json").stdout)
        self.assertIn("seen", [s["name"] for s in ls])
        cp = self.ok("show", "seen")
        self.assertIn("g/seen:", cp.stdout)
        self.assertIn("    app:\n      image: busybox:2", cp.stdout)
        cp = self.ok("inspect", "seen")
        with open(fixture("variables.yml")) as f:
            self.assertEqual(cp.stdout, f.read())
        cp = self.ok("inspect", "seen", "--values")
        self.assertIn("tag: \"2\"\n", cp.stdout)
        self.fails("show", "nope")

    def test_logs_events_stop_restart(self):
        self.ok("install", fixture("variables.yml"), "-n", "lg",
                "-v", "tag=2", "--no-deploy")
        cp = self.ok("logs", "lg", "--tail", "5")
        self.assertIn("[lg.web-1]: hello from lg", cp.stdout)
        cp = self.ok("events", "lg")
        self.assertIn("stack:deploy: deployed lg", cp.stdout)
        self.ok("stop", "lg")
        self.ok("restart", "lg")
        self.assertEqual(len(self.sent("POST", "/v1/stacks/g/lg/stop")), 1)
        self.assertEqual(len(self.sent("POST", "/v1/stacks/g/lg/restart")), 1)

    def test_labels(self):
        self.ok("install", fixture("variables.yml"), "-n", "lb",
                "-v", "tag=2", "--no-deploy")
        self.ok("label", "add", "lb", "a=1", "b=2")
        self.assertEqual(self.st.stacks["lb"]["labels"], ["a=1", "b=2"])
        self.ok("label", "rm", "lb", "a=1")
        self.assertEqual(self.sent("PATCH", "/v1/stacks/g/lb")[-1], {"labels": ["b=2"]})
        cp = self.ok("label", "ls", "lb")
        self.assertEqual(cp.stdout, "b=2\n")
        cp = self.fails("label", "rm", "lb", "zzz")
        self.assertIn("has no such label", cp.stderr)

    def test_remove(self):
        self.ok("install", fixture("variables.yml"), "-n", "gone",
                "-v", "tag=2", "--no-deploy")
        cp = self.fails("rm", "gone")
        self.assertIn("use --force", cp.stderr)
        self.assertIn("gone", self.st.stacks)
        cp = self.ok("rm", "gone", "--force")
        self.assertIn("removed stack gone", cp.stdout)
        self.assertNotIn("gone", self.st.stacks)
        self.fails("rm", "gone", "--force")

    def test_vault_variable(self):
        path = os.path.join(self.home.dir, "vault.yml")
        with open(path, "w") as f:
            f.write("stack: v\nvariables:\n  pw:\n    from:\n      vault: db-pass\n"
                    "  other:\n    from:\n      vault: missing\n    default: dflt\n"
                    "services:\n  app:\n    image: busybox\n"
                    "    environment: ['PW=${pw}', 'O=${other}']\n")
        body = json.loads(self.ok("validate", path, "-o", "json").stdout)
        self.assertEqual(body["services"][0]["env"], ["PW=from-vault", "O=dflt"])
        # The secret is used, not stored with the stack.
        self.assertEqual(body["variables"], {"other": "dflt"})


if __name__ == "__main__":
    kh.main()
