#!/usr/bin/env python3
"""Integration tests of stacks on the master (spec 3.1 "Stacks", 3.2
"Stack install", 5.5; issue #2523), over HTTP against a real
kontena-master.

TestStacksApi (no nodes): create, list (the null stack hidden), show,
update (a new revision only when something changed; new services made,
existing ones untouched until deploy), patch labels, removal in the
background; every 422 of a stack body; links across stacks (and removal
refused while another stack links to it); the null stack refused;
permissions (unknown grid 404, non-member 403); a deploy that fails
before any service deploy and one that fails in a service deploy (no
nodes) both end in error naming the service; logs and events, with
follow.

TestStacksOnNodes: a real agent on each of two Podman nodes (kst1 at
172.31.0.25 with az=a, kst2 at 172.31.0.26 with az=b; the node helpers of
test_services.py, pointed at these nodes): a stack of two linked busybox
services deployed in link order, a deploy failing on an affinity no node
matches, revision 2 redeploying only the changed service, restart and
stop, and removal taking the containers with it.

Run by ctest (KONTENA_BUILD_DIR / KONTENA_SOURCE_DIR set) or by hand as
root:  python3 tests/integration/test_stacks_api.py [-k pattern]
KONTENA_KEEP_TMP=1 keeps the temp dir (master and agent logs).
"""

import json
import os
import shutil
import socket
import sys
import tempfile
import time
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# The node helpers of test_services.py, on nodes of our own.
os.environ.setdefault("KONTENA_SVC_NODES", "kst1:15,kst2:16")
import kontena_harness as kh  # noqa: E402
import test_agents as ta  # noqa: E402
import test_services as ts  # noqa: E402

GRID = "stkt"
ts.GRID = GRID  # the engine helpers filter containers by this grid label
POLL = 0.25


def svc(name, **kw):
    d = {"name": name, "image": "busybox"}
    d.update(kw)
    return d


def stack_body(name, services, **kw):
    d = {"name": name, "stack": "test/" + name, "version": "1.0.0",
         "registry": "file://", "source": "# kontena.yml of %s\n" % name,
         "variables": {"v": "1"}, "services": services}
    d.update(kw)
    return d


class StackCase(unittest.TestCase):
    """Helpers shared by both classes; cls.m, cls.token, GRID."""

    def rest(self, method, path, body=None, token=None):
        st, _, got = self.m.req(method, path, body=body,
                                token=token or self.token)
        return st, got

    def ok(self, method, path, body=None, status=(200, 201)):
        st, got = self.rest(method, path, body)
        self.assertIn(st, status if isinstance(status, tuple) else (status,),
                      "%s %s: %s %r" % (method, path, st, got))
        return got

    def stack(self, name):
        return self.ok("GET", "/v1/stacks/%s/%s" % (GRID, name), status=200)

    def errors(self, method, path, body=None):
        """The 422 error hash of a call."""
        st, got = self.rest(method, path, body)
        self.assertEqual(st, 422, "%s %s: %s %r" % (method, path, st, got))
        self.assertIsInstance(got.get("error"), dict, got)
        return got["error"]

    def wait_for(self, what, fn, timeout, interval=POLL):
        deadline = time.monotonic() + timeout
        while True:
            last = fn()
            if last:
                return last
            if time.monotonic() >= deadline:
                break
            time.sleep(interval)
        self.fail("%s: not within %.0fs\n%s" % (
            what() if callable(what) else what, timeout, self.diag()))

    def diag(self):
        return "master log (tail):\n" + (self.m.stdout() + self.m.stderr())[-6000:]

    def deploy_and_wait(self, name, timeout):
        d = self.ok("POST", "/v1/stacks/%s/%s/deploy" % (GRID, name), status=200)
        self.assertEqual(d["stack_id"], "%s/%s" % (GRID, name))
        self.assertIn(d["state"], ("created", "ongoing"), d)
        path = "/v1/stacks/%s/%s/deploys/%s" % (GRID, name, d["id"])
        seen = {}

        def finished():
            seen["d"] = self.ok("GET", path, status=200)
            return seen["d"]["state"] in ("success", "error") and seen["d"]
        return self.wait_for(lambda: "stack deploy %s finished (last %s)" % (
            d["id"], json.dumps(seen.get("d"))), finished, timeout)

    def wait_gone(self, name, timeout=15):
        self.wait_for("stack %s removed" % name, lambda: self.rest(
            "GET", "/v1/stacks/%s/%s" % (GRID, name))[0] == 404, timeout)


# ==== The API alone ====

class TestStacksApi(StackCase):

    @classmethod
    def setUpClass(cls):
        kh.require_binary(kh.MASTER_BIN)
        cls.m = kh.Master(env={"KONTENA_DEPLOY_INSTANCE_TIMEOUT": "5"})
        cls.m.start()
        cls.token = cls.m.login()
        st, _, body = cls.m.req("POST", "/v1/grids", {"name": GRID},
                                token=cls.token)
        if st != 201:
            raise RuntimeError("grid create: %s %r" % (st, body))

    @classmethod
    def tearDownClass(cls):
        try:
            cls.m.stop()  # also checks for sanitizer reports
        finally:
            cls.m.cleanup()

    def create(self, name, services, **kw):
        return self.ok("POST", "/v1/grids/%s/stacks" % GRID,
                       stack_body(name, services, **kw), status=201)

    def remove(self, name):
        st, got = self.rest("DELETE", "/v1/stacks/%s/%s" % (GRID, name))
        self.assertEqual(st, 200, got)
        self.wait_gone(name)

    def test_create_show_list(self):
        got = self.create("shop", [svc("web", links=[{"name": "db", "alias": "db"}],
                                       instances=2),
                                   svc("db", env=["A=1"])],
                          expose="web", labels=["env=test"],
                          metadata={"m": True}, parent=None)
        self.addCleanup(self.remove, "shop")
        self.assertEqual(got["id"], "%s/shop" % GRID)
        self.assertEqual(got["name"], "shop")
        self.assertEqual(got["state"], "initialized")
        self.assertEqual(got["revision"], 1)
        for k, v in (("stack", "test/shop"), ("version", "1.0.0"),
                     ("registry", "file://"), ("expose", "web"),
                     ("source", "# kontena.yml of shop\n"),
                     ("variables", {"v": "1"}), ("labels", ["env=test"]),
                     ("metadata", {"m": True}), ("parent", None),
                     ("children", [])):
            self.assertEqual(got.get(k), v, "%s in %s" % (k, json.dumps(got)))
        for k in ("created_at", "updated_at"):
            self.assertRegex(got[k], r"^\d{4}-\d\d-\d\dT", got)
        names = sorted(s["name"] for s in got["services"])
        self.assertEqual(names, ["db", "web"])
        web = [s for s in got["services"] if s["name"] == "web"][0]
        self.assertEqual(web["id"], "%s/shop/web" % GRID)
        self.assertEqual(web["stack"], {"id": "%s/shop" % GRID, "name": "shop"})
        self.assertEqual(web["links"], [{"id": "%s/shop/db" % GRID, "alias": "db",
                                         "name": "db"}])
        self.assertEqual(web["state"], "initialized")
        self.assertEqual(web["dns"], "web.shop.%s.kontena.local" % GRID)
        # the services are there through the service API too
        st, s = self.rest("GET", "/v1/services/%s/shop/db" % GRID)
        self.assertEqual(st, 200, s)
        self.assertEqual(s["env"], ["A=1"])

        self.assertEqual(self.stack("shop"), got)
        lst = self.ok("GET", "/v1/grids/%s/stacks" % GRID, status=200)
        self.assertIn("shop", [s["name"] for s in lst["stacks"]])
        self.assertNotIn("null", [s["name"] for s in lst["stacks"]])
        # the default stack is hidden from the list but can be shown
        null = self.stack("null")
        self.assertEqual(null["revision"], 0)

    def test_children_and_parent(self):
        self.create("kid", [svc("a")], parent={"name": "mom"})
        self.addCleanup(self.remove, "kid")
        kid = self.stack("kid")
        self.assertEqual(kid["parent"], {"id": None, "name": "mom"})
        self.create("mom", [svc("a")])
        self.addCleanup(self.remove, "mom")
        self.assertEqual(self.stack("kid")["parent"],
                         {"id": "%s/mom" % GRID, "name": "mom"})
        self.assertEqual(self.stack("mom")["children"],
                         [{"id": "%s/kid" % GRID, "name": "kid"}])

    def test_update_revisions(self):
        body = stack_body("upd", [svc("a", env=["X=1"])])
        self.ok("POST", "/v1/grids/%s/stacks" % GRID, body, status=201)
        self.addCleanup(self.remove, "upd")
        path = "/v1/stacks/%s/upd" % GRID
        # the same body: no new revision
        self.assertEqual(self.ok("PUT", path, body, status=200)["revision"], 1)
        del body["name"]  # optional on update
        self.assertEqual(self.ok("PUT", path, body, status=200)["revision"], 1)
        # a change: revision 2; a new service is made, a changed one is
        # left alone until the stack is deployed
        body["services"] = [svc("a", env=["X=2"]), svc("b")]
        got = self.ok("PUT", path, body, status=200)
        self.assertEqual(got["revision"], 2)
        self.assertEqual(sorted(s["name"] for s in got["services"]), ["a", "b"])
        a = [s for s in got["services"] if s["name"] == "a"][0]
        self.assertEqual(a["env"], ["X=1"])
        self.assertEqual(a["revision"], 1)
        # only the source changes: a revision too
        body["source"] = "changed"
        self.assertEqual(self.ok("PUT", path, body, status=200)["revision"], 3)
        self.assertEqual(self.stack("upd")["source"], "changed")
        # renaming is refused
        body["name"] = "other"
        self.assertIn("name", self.errors("PUT", path, body))
        # a bad body changes nothing
        errs = self.errors("PUT", path, {"services": []})
        self.assertIn("services", errs)
        self.assertEqual(self.stack("upd")["revision"], 3)
        # unknown stack
        self.assertEqual(self.rest("PUT", "/v1/stacks/%s/nope" % GRID, body)[0], 404)

    def test_patch_labels(self):
        self.create("lab", [svc("a")], labels=["a=1"])
        self.addCleanup(self.remove, "lab")
        path = "/v1/stacks/%s/lab" % GRID
        got = self.ok("PATCH", path, {"labels": ["b=2", "c=3"]}, status=200)
        self.assertEqual(got["labels"], ["b=2", "c=3"])
        self.assertEqual(got["revision"], 1)
        self.assertEqual(self.stack("lab")["labels"], ["b=2", "c=3"])
        self.assertIn("labels", self.errors("PATCH", path, {"labels": "x"}))
        self.assertIn("labels", self.errors("PATCH", path, {"labels": [1]}))
        self.assertIn("labels", self.errors("PATCH", path, {}))
        self.assertEqual(self.ok("PATCH", path, {"labels": []}, status=200)["labels"], [])

    def test_validation_errors(self):
        path = "/v1/grids/%s/stacks" % GRID
        cases = [
            ({"name": "-bad", "services": [svc("a")]}, ["name"]),
            ({"name": "null", "services": [svc("a")]}, ["name"]),
            ({"services": [svc("a")]}, ["name"]),
            ({"name": "v1", "services": []}, ["services"]),
            ({"name": "v1"}, ["services"]),
            ({"name": "v1", "services": [svc("a")], "expose": "b"}, ["expose"]),
            ({"name": "v1", "services": [svc("a")],
              "volumes": [{"name": "data", "external": "gvol"}]}, ["volumes.data"]),
            ({"name": "v1", "services": [svc("a")],
              "volumes": [{"name": "data"}]}, ["volumes"]),
            ({"name": "v1", "services": [svc("a", links=["b"])]}, ["services.a.links"]),
            ({"name": "v1", "services": [svc("a", links=["b"]), svc("b", links=["c"]),
                                         svc("c", links=["a"])]},
             ["services.a.links"]),
            ({"name": "v1", "services": [svc("a", links=[{"name": "nostack/x"}])]},
             ["services.a.links"]),
            ({"name": "v1", "services": [svc("a", image=""), svc("b", instances="x"),
                                         svc("c", strategy="nope")]},
             ["services.a.image", "services.b.instances", "services.c.strategy"]),
            ({"name": "v1", "services": [svc("a"), svc("a")]}, ["services.a.name"]),
            ({"name": "v1", "services": [{"image": "busybox"}]}, ["services"]),
            ({"name": "v1", "services": [svc("a")], "variables": []}, ["variables"]),
            ({"name": "v1", "services": [svc("a")], "labels": "x"}, ["labels"]),
            ({"name": "v1", "services": [svc("a")], "parent": {"name": "v1"}},
             ["parent"]),
        ]
        for body, fields in cases:
            errs = self.errors("POST", path, body)
            for f in fields:
                self.assertIn(f, errs, "%s -> %s" % (json.dumps(body), errs))
        # messages name what is wrong
        errs = self.errors("POST", path, cases[8][0])
        self.assertEqual(errs["services.a.links"], "service a has missing links: b")
        errs = self.errors("POST", path, cases[9][0])
        self.assertIn("recursive links", errs["services.a.links"])
        errs = self.errors("POST", path, cases[6][0])
        self.assertIn("managed volumes", errs["volumes.data"])
        # nothing was made
        names = [s["name"] for s in self.ok("GET", path, status=200)["stacks"]]
        self.assertNotIn("v1", names)
        self.assertEqual(self.rest("GET", "/v1/services/%s/v1/a" % GRID)[0], 404)
        # an existing name
        self.create("dup", [svc("a")])
        self.addCleanup(self.remove, "dup")
        errs = self.errors("POST", path, stack_body("dup", [svc("b")]))
        self.assertEqual(errs["name"], "dup already exists")
        # malformed JSON
        st, _, got = self.m.req("POST", path, "{nope", token=self.token)
        self.assertEqual(st, 400, got)

    def test_cross_stack_links(self):
        self.create("back", [svc("api")])
        self.create("front", [svc("web", links=[{"name": "back/api", "alias": "api"}])])
        front = self.stack("front")
        self.assertEqual(front["services"][0]["links"],
                         [{"id": "%s/back/api" % GRID, "alias": "api", "name": "api"}])
        # the linked stack cannot go while front links to it
        errs = self.errors("DELETE", "/v1/stacks/%s/back" % GRID)
        self.assertIn("front/web", errs["service"])
        self.assertEqual(self.stack("back")["name"], "back")
        # nor can the service
        st, got = self.rest("DELETE", "/v1/services/%s/back/api" % GRID)
        self.assertEqual(st, 422, got)
        # a revision of back without api: the deploy fails before any
        # service deploy, in error (issue #2523), and changes nothing
        self.ok("PUT", "/v1/stacks/%s/back" % GRID,
                stack_body("back", [svc("other")]), status=200)
        d = self.deploy_and_wait("back", 20)
        self.assertEqual(d["state"], "error", d)
        self.assertIn("api", d["reason"])
        self.assertIn("front/web", d["reason"])
        self.assertEqual(d["service_deploys"], [])
        self.assertIsNotNone(d["finished_at"])
        self.assertEqual(self.rest("GET", "/v1/services/%s/back/api" % GRID)[0], 200)
        # front goes first, then back
        self.remove("front")
        self.remove("back")
        self.assertEqual(self.rest("GET", "/v1/services/%s/back/other" % GRID)[0], 404)

    def test_null_stack_refused(self):
        base = "/v1/stacks/%s/null" % GRID
        for method, path, body in (("PUT", base, stack_body("null", [svc("a")])),
                                   ("PATCH", base, {"labels": []}),
                                   ("DELETE", base, None),
                                   ("POST", base + "/deploy", None),
                                   ("POST", base + "/stop", None),
                                   ("POST", base + "/restart", None)):
            errs = self.errors(method, path, body)
            self.assertIn("default stack null", errs.get("stack", ""),
                          "%s %s: %s" % (method, path, errs))
        self.assertEqual(self.rest("GET", base)[0], 200)

    def test_permissions(self):
        self.create("perm", [svc("a")])
        self.addCleanup(self.remove, "perm")
        st, _, inv = self.m.req("POST", "/oauth2/authorize",
                                {"response_type": "invite", "email": "stk@example.com"},
                                token=self.token)
        self.assertEqual(st, 201, inv)
        st, _, tok = self.m.exchange_code(inv["invite_code"])
        self.assertEqual(st, 201, tok)
        eve = tok["access_token"]
        for method, path in (("GET", "/v1/grids/%s/stacks" % GRID),
                             ("POST", "/v1/grids/%s/stacks" % GRID),
                             ("GET", "/v1/stacks/%s/perm" % GRID),
                             ("PUT", "/v1/stacks/%s/perm" % GRID),
                             ("PATCH", "/v1/stacks/%s/perm" % GRID),
                             ("DELETE", "/v1/stacks/%s/perm" % GRID),
                             ("POST", "/v1/stacks/%s/perm/deploy" % GRID),
                             ("POST", "/v1/stacks/%s/perm/stop" % GRID),
                             ("POST", "/v1/stacks/%s/perm/restart" % GRID),
                             ("GET", "/v1/stacks/%s/perm/deploys/x" % GRID),
                             ("GET", "/v1/stacks/%s/perm/container_logs" % GRID),
                             ("GET", "/v1/stacks/%s/perm/event_logs" % GRID)):
            st, got = self.rest(method, path, stack_body("perm", [svc("a")]),
                                token=eve)
            self.assertEqual(st, 403, "%s %s as non-member: %s %r" % (
                method, path, st, got))
            st, got = self.rest(method, path.replace(GRID, "nogrid", 1), {})
            self.assertEqual(st, 404, "%s %s in unknown grid: %s" % (method, path, st))
        st, _, got = self.m.req("GET", "/v1/grids/%s/stacks" % GRID)
        self.assertEqual(st, 403, got)  # no token
        # the stack is untouched
        self.assertEqual(self.stack("perm")["revision"], 1)
        # a member may
        st, got = self.rest("POST", "/v1/grids/%s/users" % GRID,
                            {"email": "stk@example.com"})
        self.assertIn(st, (200, 201), got)
        st, got = self.rest("GET", "/v1/stacks/%s/perm" % GRID, token=eve)
        self.assertEqual(st, 200, got)
        # unknown stacks and deploys
        self.assertEqual(self.rest("GET", "/v1/stacks/%s/nope" % GRID)[0], 404)
        self.assertEqual(self.rest("GET", "/v1/stacks/%s/perm/deploys/x" % GRID)[0], 404)

    def test_deploy_fails_without_nodes(self):
        self.create("nonodes", [svc("web", links=["db"]), svc("db")])
        self.addCleanup(self.remove, "nonodes")
        d = self.deploy_and_wait("nonodes", 30)
        self.assertEqual(d["state"], "error", d)
        self.assertIn("service db", d["reason"])  # db first: web links to it
        self.assertEqual(d["revision"], 1)
        self.assertEqual(len(d["service_deploys"]), 1)
        sd = d["service_deploys"][0]
        self.assertEqual(sd["service_id"], "%s/nonodes/db" % GRID)
        self.assertEqual(sd["state"], "error")
        self.assertIn(sd["reason"], d["reason"])
        # the revision was applied to the services
        for name in ("db", "web"):
            s = self.ok("GET", "/v1/services/%s/nonodes/%s" % (GRID, name), status=200)
            self.assertEqual(s["stack_revision"], 1, s)
        # events of the stack, as a list and as a stream
        ev = self.ok("GET", "/v1/stacks/%s/nonodes/event_logs" % GRID, status=200)
        msgs = [e["message"] for e in ev["logs"]]
        self.assertTrue(any("failed" in m and "service db" in m for m in msgs), msgs)
        self.assertTrue(all({"id": "%s/nonodes" % GRID, "type": "stack"}
                            in e["relationships"] for e in ev["logs"]), ev)
        first = self.stream_first("/v1/stacks/%s/nonodes/event_logs?follow=1" % GRID)
        self.assertIn("relationships", first)
        got = self.ok("GET", "/v1/stacks/%s/nonodes/container_logs" % GRID, status=200)
        self.assertEqual(got, {"logs": []})
        errs = self.errors("GET", "/v1/stacks/%s/nonodes/container_logs?limit=0" % GRID)
        self.assertIn("limit", errs)
        # a second deploy is a new one
        d2 = self.deploy_and_wait("nonodes", 30)
        self.assertNotEqual(d2["id"], d["id"])

    def stream_first(self, path, timeout=10):
        """The first JSON object of a follow stream."""
        s = socket.create_connection(("127.0.0.1", self.m.port), timeout=timeout)
        try:
            s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                       "\r\n" % (path, self.token)).encode())
            buf = b""
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
                head, _, body = buf.partition(b"\r\n\r\n")
                self.assertIn(b" 200 ", head.split(b"\r\n")[0] + b" ", head)
                start = body.find(b"{")
                if start >= 0:
                    # chunked framing: items are whole inside one chunk
                    end = body.find(b"\r\n", start)
                    if end > 0:
                        return json.JSONDecoder().raw_decode(
                            body[start:end].decode())[0]
            self.fail("no item in the stream within %ds: %r" % (timeout, buf[:500]))
        finally:
            s.close()

    def test_takeover_after_master_death(self):
        """A master killed in the middle of a stack deploy: its lease runs
        out and the restarted master (a new holder) takes the job over
        and ends it; it never stays ongoing (issue #2523)."""
        self.create("orphan", [svc("web", links=["db"]), svc("db")])
        self.addCleanup(self.remove, "orphan")
        d = self.ok("POST", "/v1/stacks/%s/orphan/deploy" % GRID, status=200)
        path = "/v1/stacks/%s/orphan/deploys/%s" % (GRID, d["id"])
        self.wait_for("stack deploy ongoing",
                      lambda: self.ok("GET", path, status=200)["state"] == "ongoing",
                      10, interval=0.02)
        self.m.kill()
        self.m.start()
        st, got = self.rest("GET", path)
        self.assertEqual(st, 200, got)
        self.assertIn(got["state"], ("ongoing", "error"), got)
        t0 = time.monotonic()
        got = self.wait_for("stack deploy taken over and ended",
                            lambda: self.ok("GET", path, status=200)["state"]
                            in ("success", "error") and self.ok("GET", path,
                                                                status=200), 70)
        sys.stderr.write("[test_stacks_api] taken over and ended %.1fs after the "
                         "restart\n" % (time.monotonic() - t0))
        self.assertEqual(got["state"], "error", got)
        self.assertIn("service db", got["reason"])
        self.assertIsNotNone(got["finished_at"])

    def test_remove_in_background(self):
        self.create("gone", [svc("a"), svc("b", links=["a"])])
        st, got = self.rest("DELETE", "/v1/stacks/%s/gone" % GRID)
        # The answer is the removal job (a client polls it for a refusal).
        self.assertEqual(st, 200, got)
        self.assertEqual((got["action"], got["stack_id"]), ("remove", GRID + "/gone"))
        self.assertIn(got["state"], ("created", "ongoing", "success"))
        self.wait_gone("gone")
        for name in ("a", "b"):
            self.assertEqual(self.rest("GET", "/v1/services/%s/gone/%s" % (GRID, name))[0],
                             404)
        # the name is free again
        self.create("gone", [svc("c")])
        self.remove("gone")


# ==== On real nodes ====

MASTER_ENV = dict(ts.MASTER_ENV)
MASTER_ENV["KONTENA_STACK_SERVICE_TIMEOUT"] = "120"
DEPLOY_WAIT = 150


class TestStacksOnNodes(StackCase):
    """One master, grid GRID, one agent per node (kst1, kst2), shared by
    the tests in name order: stack app lives from test_01 to test_05."""

    @classmethod
    def setUpClass(cls):
        kh.require_binary(kh.MASTER_BIN)
        kh.require_binary(ta.AGENT_BIN)
        if os.geteuid() != 0:
            raise RuntimeError("TestStacksOnNodes needs root (network namespaces "
                               "and the Podman engine)")
        ta.run_engine_script("up")
        for ns, idx in sorted(ts.NODES.items()):
            ta.run_engine_script("node", ns, str(idx))
        cls.lock = ts.take_nodes()
        ts.remove_grid_containers()
        cls.tmp = tempfile.mkdtemp(prefix="kontena-stkt-")
        cls.m = None
        cls.agents = {}
        try:
            cls.m = kh.Master(env=MASTER_ENV, args=["--bind", "0.0.0.0"],
                              workdir=os.path.join(cls.tmp, "master"))
            os.makedirs(cls.m.workdir, exist_ok=True)
            cls.m.start()
            cls.token = cls.m.login()
            st, _, g = cls.m.req("POST", "/v1/grids", {"name": GRID}, token=cls.token)
            if st != 201:
                raise RuntimeError("grid create: %s %r" % (st, g))
            uri = "ws://%s:%d" % (ta.HOST_IP, cls.m.port)
            for ns in sorted(ts.NODES):
                cls.agents[ns] = ta.AgentProc(cls.tmp, ns, ns, {
                    "KONTENA_URI": uri,
                    "KONTENA_TOKEN": g["token"],
                    "DOCKER_HOST": "unix://" + ts.sock(ns),
                    "KONTENA_NODE_NAME": ns,
                    "KONTENA_NODE_LABELS": ts.LABELS[ns],
                    "KONTENA_PODS_INTERVAL": "2",
                    "KONTENA_NODE_UPDATE_INTERVAL": "2",
                    "LOG_LEVEL": "debug",
                }).start()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                st, _, nodes = cls.m.req("GET", "/v1/grids/%s/nodes" % GRID,
                                         token=cls.token)
                if st == 200 and sum(n["status"] == "online"
                                     for n in nodes["nodes"]) == 2:
                    break
                time.sleep(POLL)
            else:
                raise RuntimeError("nodes not online: %r" % (nodes,))
        except BaseException:
            cls._tear_down()
            raise

    @classmethod
    def tearDownClass(cls):
        cls._tear_down()

    @classmethod
    def _tear_down(cls):
        try:
            ts.remove_grid_containers()
        finally:
            for a in list(cls.agents.values()):
                try:
                    a.stop()
                except Exception:  # noqa: BLE001
                    a.kill()
            ts.remove_grid_containers()
            try:
                if cls.m is not None:
                    cls.m.stop()
            finally:
                if cls.m is not None:
                    cls.m.cleanup()
                if os.environ.get("KONTENA_KEEP_TMP") != "1":
                    shutil.rmtree(cls.tmp, ignore_errors=True)
                else:
                    sys.stderr.write("[test_stacks_api] kept %s\n" % cls.tmp)
                cls.lock.close()

    def diag(self):
        parts = [a.describe() for a in self.agents.values()]
        parts.append(StackCase.diag(self))
        return "\n".join(parts)

    def running(self, stack, service):
        """Container name -> node of the service's running containers."""
        out = {}
        for ns in ts.NODES:
            for name, c in ts.engine_containers(ns).items():
                labels = c.get("Labels") or {}
                if (labels.get("io.kontena.stack.name") == stack and
                        labels.get("io.kontena.service.name") == service and
                        c.get("State") == "running"):
                    out[name] = ns
        return out

    def service(self, name):
        return self.ok("GET", "/v1/services/%s/app/%s" % (GRID, name), status=200)

    def app_body(self, web_env):
        return stack_body("app", [
            svc("web", instances=2, cmd=["httpd", "-f", "-p", "8080"],
                env=web_env, links=[{"name": "db", "alias": "database"}]),
            svc("db", cmd=["httpd", "-f", "-p", "8081"], env=["ROLE=db"])],
            expose="web")

    def test_01_deploy_linked(self):
        self.ok("POST", "/v1/grids/%s/stacks" % GRID, self.app_body(["V=1"]), status=201)
        t0 = time.monotonic()
        d = self.deploy_and_wait("app", DEPLOY_WAIT)
        sys.stderr.write("[test_stacks_api] stack deploy took %.1fs\n"
                         % (time.monotonic() - t0))
        self.assertEqual(d["state"], "success", "%s\n%s" % (json.dumps(d), self.diag()))
        self.assertIsNone(d["reason"])
        # one service deploy each, in link order: db before web
        self.assertEqual([s["service_id"] for s in d["service_deploys"]],
                         ["%s/app/db" % GRID, "%s/app/web" % GRID])
        self.assertTrue(all(s["state"] == "success" for s in d["service_deploys"]), d)
        db_done = d["service_deploys"][0]["finished_at"]
        web_start = d["service_deploys"][1]["started_at"]
        self.assertLessEqual(db_done, web_start, d)
        web = self.wait_for("web x2 running", lambda: len(self.running("app", "web")) == 2
                            and self.running("app", "web"), 20)
        self.assertEqual(sorted(web.values()), sorted(ts.NODES), web)  # ha spread
        self.assertEqual(sorted(web), ["app.web-1", "app.web-2"])
        db = self.wait_for("db running", lambda: self.running("app", "db"), 20)
        self.assertEqual(list(db), ["app.db-1"])
        info = ts.engine_inspect(list(db.values())[0], "app.db-1")
        self.assertEqual(ts.env_of(info).get("ROLE"), "db")
        st = self.wait_for("stack running", lambda: self.stack("app")["state"] == "running"
                           and self.stack("app"), 20)
        for s in st["services"]:
            self.assertEqual(s["stack_revision"], 1, s)
            self.assertEqual(s["state"], "running", s)

    def test_02_failing_deploy(self):
        body = stack_body("bad", [svc("ok", cmd=["sleep", "3600"]),
                                  svc("nowhere", cmd=["sleep", "3600"],
                                      affinity=["label==az=x"], links=["ok"])])
        self.ok("POST", "/v1/grids/%s/stacks" % GRID, body, status=201)
        t0 = time.monotonic()
        d = self.deploy_and_wait("bad", DEPLOY_WAIT)
        self.assertEqual(d["state"], "error", d)
        self.assertIn("service nowhere", d["reason"])
        self.assertIn("affinity", d["reason"])
        self.assertIn("label==az=x", d["reason"])
        self.assertLess(time.monotonic() - t0, 60, "failure took too long")
        self.assertEqual([s["state"] for s in d["service_deploys"]],
                         ["success", "error"], d)
        self.assertEqual(self.rest("DELETE", "/v1/stacks/%s/bad" % GRID)[0], 200)
        self.wait_gone("bad", 30)
        self.wait_for("bad's containers removed",
                      lambda: not any(c.get("Labels", {}).get("io.kontena.stack.name")
                                      == "bad" for ns in ts.NODES
                                      for c in ts.engine_containers(ns).values()), 30)

    def test_03_revision_2_redeploys_changed_service(self):
        before = {n: self.service(n) for n in ("web", "db")}
        db_started = {name: ts.engine_inspect(ns, name)["State"]["StartedAt"]
                      for name, ns in self.running("app", "db").items()}
        got = self.ok("PUT", "/v1/stacks/%s/app" % GRID, self.app_body(["V=2"]),
                      status=200)
        self.assertEqual(got["revision"], 2)
        d = self.deploy_and_wait("app", DEPLOY_WAIT)
        self.assertEqual(d["state"], "success", "%s\n%s" % (json.dumps(d), self.diag()))
        self.assertEqual(d["revision"], 2)
        after = {n: self.service(n) for n in ("web", "db")}
        self.assertEqual(after["db"]["revision"], before["db"]["revision"])
        self.assertEqual(after["web"]["revision"], before["web"]["revision"] + 1)
        for n in ("web", "db"):
            self.assertEqual(after[n]["stack_revision"], 2)
        self.assertEqual(after["web"]["env"], ["V=2"])

        def web_v2():
            run = self.running("app", "web")
            return len(run) == 2 and all(
                ts.env_of(ts.engine_inspect(ns, name)).get("V") == "2"
                for name, ns in run.items())
        self.wait_for("web containers with V=2", web_v2, 30)
        # db's container was not recreated
        for name, ns in self.running("app", "db").items():
            self.assertEqual(ts.engine_inspect(ns, name)["State"]["StartedAt"],
                             db_started.get(name), name)

    def test_04_restart_and_stop(self):
        before = {name: ts.engine_inspect(ns, name)["State"]["StartedAt"]
                  for svc_name in ("web", "db")
                  for name, ns in self.running("app", svc_name).items()}
        self.assertEqual(len(before), 3, before)
        time.sleep(1.1)  # StartedAt may have second precision
        self.assertEqual(self.ok("POST", "/v1/stacks/%s/app/restart" % GRID,
                                 status=200), {})

        def restarted():
            now = {name: ts.engine_inspect(ns, name)
                   for s in ("web", "db") for name, ns in self.running("app", s).items()}
            return sorted(now) == sorted(before) and all(
                i["State"]["StartedAt"] != before[n] for n, i in now.items())
        self.wait_for("app restarted", restarted, 30)
        self.assertEqual(self.ok("POST", "/v1/stacks/%s/app/stop" % GRID,
                                 status=200), {})
        self.wait_for("app stopped", lambda: not self.running("app", "web")
                      and not self.running("app", "db"), 30)
        self.wait_for("stack state stopped",
                      lambda: self.stack("app")["state"] == "stopped", 10)

    def test_05_delete(self):
        self.assertEqual(self.rest("DELETE", "/v1/stacks/%s/app" % GRID)[0], 200)
        self.wait_gone("app", 30)
        self.wait_for("app's containers removed",
                      lambda: not any(c.get("Labels", {}).get("io.kontena.stack.name")
                                      == "app" for ns in ts.NODES
                                      for c in ts.engine_containers(ns).values()), 30)
        self.assertEqual(self.rest("GET", "/v1/services/%s/app/web" % GRID)[0], 404)


if __name__ == "__main__":
    unittest.main(verbosity=2)
