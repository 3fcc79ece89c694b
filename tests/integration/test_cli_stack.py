#!/usr/bin/env python3
"""The `kontena stack` commands run as a user would against a real
kontena-master (spec 3.1/3.2/5.5): the CLI is logged in with
`master login --token`, the grid made and selected with `grid create/use`,
and what the CLI sent is read back through the master's own API.

StackCommands (no nodes): install (the stored stack: source, variables,
services, labels, parent and children; `depends` children first, named
<parent>-<name>), a bad file sending nothing, a deploy that fails before
any service deploy (issue #2523: a revision dropping a service another
stack links to) and a deploy with no nodes, both ending the command with
the master's reason and exit 1; upgrade replaying the stored values;
ls/show/inspect; events/stop/restart; labels; rm; a variable read from
the real vault (the master runs with VAULT_KEY).

StackDeployOnNode: a real agent on Podman node kcs1 (172.31.0.39; the
node helpers and lock file of test_services.py): an install deployed to
success with the stack's container logs, and a deploy held by a
wait_for_port nothing answers, so that `--timeout` ends the command while
the master's deploy is still running.

Run by ctest or by hand (the node class as root):
  python3 tests/integration/test_cli_stack.py [-k pattern]
KONTENA_KEEP_TMP=1 keeps the temp dirs (master and agent logs).
"""

import json
import os
import shutil
import sys
import tempfile
import time
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kontena_harness as kh  # noqa: E402
import test_agents as ta  # noqa: E402  (AgentProc, engine script)
import test_services as ts  # noqa: E402  (node engine helpers, lock file)

STACKS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "stacks")
VAULT_KEY = "cli-stack-" + "v" * 54
POLL = 0.25


def fixture(name):
    return os.path.join(STACKS, name)


BLOG = """\
stack: acme/blog
version: 1.2.0
description: a blog and its database
expose: web
variables:
  web_instances:
    type: integer
    min: 1
    max: 5
    default: 2
  db_password:
    type: string
    from:
      env: BLOG_DB_PASSWORD
      random_string: 20
services:
  web:
    image: busybox:1.36
    instances: ${web_instances}
    command: sh -c "echo 'starting ${STACK}' && exec sleep 3600"
    environment:
      DB_HOST: db.${STACK}.${GRID}.kontena.local
      DB_PASSWORD: ${db_password}
      PRICE: $$5
    links:
      - db:database
    deploy:
      strategy: ha
  db:
    image: busybox
    command: sleep 3600
    environment:
      - PASSWORD=${db_password}
"""

BACK = """\
stack: acme/back
services:
  api:
    image: busybox
  other:
    image: busybox
"""

BACK_V2 = """\
stack: acme/back
services:
  other:
    image: busybox
"""

FRONT = """\
stack: acme/front
services:
  web:
    image: busybox
    links:
      - back/api:api
"""

VAULT_STACK = """\
stack: v
variables:
  pw:
    from:
      vault: db-pass
  other:
    from:
      vault: missing
    default: dflt
services:
  app:
    image: busybox
    environment: ['PW=${pw}', 'O=${other}']
"""


class CliCase(unittest.TestCase):
    """Helpers over cls.m (the master), cls.token, cls.home, cls.grid."""

    @classmethod
    def start_master(cls, env, args=(), workdir=None):
        cls.m = kh.Master(env=env, args=list(args), workdir=workdir)
        if workdir is not None:
            os.makedirs(workdir, exist_ok=True)
        cls.m.start()
        cls.token = cls.m.login()
        cls.home = kh.CliHome()
        for args in (("master", "login", "--token", cls.token, cls.m.url),
                     ("grid", "create", cls.grid), ("grid", "use", cls.grid)):
            cp = cls.home.run(*args)
            if cp.returncode != 0:
                raise RuntimeError("kontena %s: %s" % (" ".join(args),
                                                       kh.describe_run(cp)))

    def write(self, name, text):
        path = os.path.join(self.home.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def cli(self, *args, env=None, stdin_data="", timeout=kh.CLI_TIMEOUT):
        cp = self.home.run("stack", *args, env=env, stdin_data=stdin_data,
                           timeout=timeout)
        for mark in kh.Master.SANITIZER_MARKS:  # a sanitizer build of the CLI
            self.assertNotIn(mark, cp.stderr, kh.describe_run(cp))
        return cp

    def ok(self, *args, env=None, timeout=kh.CLI_TIMEOUT):
        cp = self.cli(*args, env=env, timeout=timeout)
        self.assertEqual(cp.returncode, 0, "%s\n%s" % (kh.describe_run(cp),
                                                       self.diag()))
        return cp

    def fails(self, *args, env=None, code=1, stdin_data="", timeout=kh.CLI_TIMEOUT):
        cp = self.cli(*args, env=env, stdin_data=stdin_data, timeout=timeout)
        self.assertEqual(cp.returncode, code, kh.describe_run(cp))
        self.assertTrue(cp.stderr.strip(), kh.describe_run(cp))
        return cp

    def diag(self):
        return "master log (tail):\n" + (self.m.stdout() + self.m.stderr())[-4000:]

    def rest(self, method, path, body=None):
        st, _, got = self.m.req(method, path, body=body, token=self.token)
        return st, got

    def stored(self, name):
        """The stack as the master keeps it (GET /v1/stacks/G/S)."""
        st, got = self.rest("GET", "/v1/stacks/%s/%s" % (self.grid, name))
        self.assertEqual(st, 200, "stack %s: %s %r" % (name, st, got))
        return got

    def stack_names(self):
        st, got = self.rest("GET", "/v1/grids/%s/stacks" % self.grid)
        self.assertEqual(st, 200, got)
        return sorted(s["name"] for s in got["stacks"])

    def service(self, stack, name):
        st, got = self.rest("GET", "/v1/services/%s/%s/%s" % (self.grid, stack, name))
        self.assertEqual(st, 200, got)
        return got

    def wait_for(self, what, fn, timeout, interval=POLL):
        deadline = time.monotonic() + timeout
        while True:
            last = fn()
            if last:
                return last
            if time.monotonic() >= deadline:
                self.fail("%s: not within %.0fs\n%s" % (what, timeout, self.diag()))
            time.sleep(interval)


# ==== No nodes ====

class StackCommands(CliCase):
    grid = "clistk"

    @classmethod
    def setUpClass(cls):
        kh.require_binary(kh.CLI_BIN, skip=True)
        cls.m = cls.home = None
        try:
            cls.start_master({"VAULT_KEY": VAULT_KEY,
                              "KONTENA_DEPLOY_INSTANCE_TIMEOUT": "5"})
        except BaseException:
            cls._tear_down()
            raise

    @classmethod
    def tearDownClass(cls):
        cls._tear_down()

    @classmethod
    def _tear_down(cls):
        try:
            if cls.m is not None:
                cls.m.stop()  # also checks for sanitizer reports
        finally:
            if cls.m is not None:
                cls.m.cleanup()
            if cls.home is not None:
                cls.home.cleanup()

    def test_install_stores_the_stack(self):
        path = self.write("blog.yml", BLOG)
        cp = self.ok("install", path, "-n", "blog", "--no-deploy",
                     env={"BLOG_DB_PASSWORD": "pw1"})
        self.assertIn("created stack blog", cp.stdout)
        self.assertNotIn("deploy", cp.stdout)
        got = self.stored("blog")
        self.assertEqual(got["id"], "%s/blog" % self.grid)
        self.assertEqual(got["stack"], "acme/blog")
        self.assertEqual(got["version"], "1.2.0")
        self.assertEqual(got["registry"], "file://")
        self.assertEqual(got["source"], BLOG)
        self.assertEqual(got["variables"], {"web_instances": 2, "db_password": "pw1"})
        self.assertEqual(got["expose"], "web")
        self.assertEqual(got["labels"], [])
        self.assertEqual(got["metadata"], {"description": "a blog and its database"})
        self.assertEqual(got["revision"], 1)
        self.assertEqual(got["state"], "initialized")
        self.assertEqual(sorted(s["name"] for s in got["services"]), ["db", "web"])
        web = self.service("blog", "web")
        self.assertEqual(web["image"], "busybox:1.36")
        self.assertEqual(web["instances"], 2)
        self.assertEqual(web["strategy"], "ha")
        self.assertEqual(sorted(web["env"]),
                         ["DB_HOST=db.blog.%s.kontena.local" % self.grid,
                          "DB_PASSWORD=pw1", "PRICE=$5"])
        self.assertEqual(web["links"], [{"id": "%s/blog/db" % self.grid,
                                         "alias": "database", "name": "db"}])
        self.assertEqual(self.service("blog", "db")["env"], ["PASSWORD=pw1"])
        # no deploy was asked for
        st, ev = self.rest("GET", "/v1/stacks/%s/blog/event_logs" % self.grid)
        self.assertEqual(st, 200, ev)
        self.assertFalse([e for e in ev["logs"] if e["type"] == "stack:deploy"], ev)
        # Installing it again is the master's 422, printed per field.
        cp = self.fails("install", path, "-n", "blog", "--no-deploy")
        self.assertIn("cannot create stack blog", cp.stderr)
        self.assertIn("name: blog already exists", cp.stderr)
        # A file the master refuses (an external volume it does not have)
        # is its 422, and nothing is made.
        cp = self.fails("install", fixture("wordpress.yml"), "-n", "wp",
                        "--no-deploy")
        self.assertIn("cannot create stack wp", cp.stderr)
        self.assertIn("volumes.db-data: external volume db-data not found", cp.stderr)
        self.assertNotIn("wp", self.stack_names())

    def test_install_children_first(self):
        # parent.yml (stack acme/app) links to app-cache/db: the child
        # must exist before the parent is created.
        cp = self.ok("install", fixture("parent.yml"), "--no-deploy")
        lines = [l for l in cp.stdout.splitlines() if l.startswith("created stack")]
        self.assertEqual(lines, ["created stack app-cache", "created stack app"])
        self.assertIn("installing child stack app-cache of app", cp.stdout)
        child = self.stored("app-cache")
        self.assertEqual(child["parent"], {"id": "%s/app" % self.grid, "name": "app"})
        self.assertEqual(child["variables"], {"size": 2})
        self.assertEqual(child["stack"], "acme/db")
        self.assertEqual(self.service("app-cache", "db")["instances"], 2)
        parent = self.stored("app")
        self.assertEqual(parent["children"], [{"id": "%s/app-cache" % self.grid,
                                               "name": "app-cache"}])
        self.assertEqual(self.service("app", "web")["links"],
                         [{"id": "%s/app-cache/db" % self.grid, "alias": "cache",
                           "name": "db"}])
        # --no-deploy: neither was deployed
        for name in ("app", "app-cache"):
            st, ev = self.rest("GET", "/v1/stacks/%s/%s/event_logs" % (self.grid, name))
            self.assertFalse([e for e in ev["logs"] if e["type"] == "stack:deploy"], ev)
        # the parent goes first (the child is linked from it)
        self.ok("rm", "app", "--force")
        self.ok("rm", "app-cache", "--force")

    def test_bad_file_sends_nothing(self):
        before = self.stack_names()
        cp = self.fails("install", fixture("errors.yml"))
        self.assertIn("errors.yml:5: services.web.instances", cp.stderr)
        self.assertEqual(self.stack_names(), before)
        self.assertNotIn("errors", self.stack_names())
        cp = self.fails("install", fixture("badyaml.yml"), "-n", "badyaml")
        self.assertEqual(self.stack_names(), before)

    def test_deploy_error_before_any_service_ends_with_reason(self):
        """Issue #2523: a revision of back drops api, which front links
        to; the deploy fails before any service deploy starts."""
        self.ok("install", self.write("back.yml", BACK), "-n", "back", "--no-deploy")
        self.ok("install", self.write("front.yml", FRONT), "-n", "front", "--no-deploy")
        cp = self.ok("upgrade", "back", self.write("back2.yml", BACK_V2), "--no-deploy")
        self.assertIn("upgraded stack back to revision 2", cp.stdout)
        t0 = time.monotonic()
        cp = self.fails("deploy", "back", "--timeout", "60")
        self.assertLess(time.monotonic() - t0, 15, "the failure took too long")
        self.assertIn("error: cannot deploy stack back: service api cannot be "
                      "removed: front/web links to it", cp.stderr)
        # nothing changed: api is still there
        self.service("back", "api")
        # with -o json the deploy is printed as well
        cp = self.fails("deploy", "back", "-o", "json")
        d = json.loads(cp.stdout)
        self.assertEqual((d["state"], d["service_deploys"]), ("error", []), d)
        self.ok("rm", "front", "--force")
        self.ok("rm", "back", "--force")

    def test_deploy_without_nodes_fails_with_reason(self):
        path = self.write("nonodes.yml", BLOG)
        t0 = time.monotonic()
        cp = self.fails("install", path, "-n", "nonodes", "--timeout", "60")
        self.assertLess(time.monotonic() - t0, 30, "the failure took too long")
        self.assertIn("created stack nonodes", cp.stdout)
        self.assertIn("deploying stack nonodes", cp.stdout)
        # db first (web links to it); its service deploy is shown failing
        self.assertRegex(cp.stdout, r"(?m)^%s/nonodes/db: error: " % self.grid)
        self.assertRegex(cp.stderr, r"error: cannot deploy stack nonodes: "
                                    r"service db deploy failed: \S")
        # a deploy of its own fails the same way; --no-wait returns at once
        cp = self.fails("deploy", "nonodes")
        self.assertIn("cannot deploy stack nonodes: service db deploy failed",
                      cp.stderr)
        cp = self.ok("deploy", "nonodes", "--no-wait")
        self.assertRegex(cp.stdout, r"^deploy of stack nonodes started: \S+\n$")
        cp = self.fails("deploy", "nosuchstack")
        self.assertIn("cannot deploy stack nosuchstack", cp.stderr)
        cp = self.fails("deploy", "nonodes", "--timeout", "0", code=2)
        self.assertIn("--timeout must be seconds", cp.stderr)

    def test_upgrade_replays_stored_values(self):
        path = self.write("up.yml", BLOG)
        self.ok("install", path, "-n", "up", "--no-deploy")
        first = self.stored("up")["variables"]["db_password"]
        self.assertEqual(len(first), 20)  # the random string
        self.ok("label", "add", "up", "team=a")
        # From the stored source and values: nothing differs, so the
        # master keeps revision 1; the random string and labels stay.
        cp = self.ok("upgrade", "up", "--no-deploy")
        self.assertIn("upgraded stack up to revision 1", cp.stdout)
        got = self.stored("up")
        self.assertEqual(got["variables"]["db_password"], first)
        self.assertEqual(got["labels"], ["team=a"])
        # From a file, with new values (a file upgrade reads the file's
        # variables anew, so the password is given): revision 2.
        cp = self.ok("upgrade", "up", path, "-v", "web_instances=3",
                     "-v", "db_password=" + first, "--no-deploy")
        self.assertIn("upgraded stack up to revision 2", cp.stdout)
        got = self.stored("up")
        self.assertEqual(got["variables"], {"web_instances": 3, "db_password": first})
        self.assertEqual(got["labels"], ["team=a"])
        # the services take the revision when the stack is deployed
        self.assertEqual(self.service("up", "web")["instances"], 2)
        # stored source again, one value changed
        cp = self.ok("upgrade", "up", "-v", "web_instances=4", "--no-deploy")
        self.assertIn("upgraded stack up to revision 3", cp.stdout)
        got = self.stored("up")
        self.assertEqual(got["variables"], {"web_instances": 4, "db_password": first})
        # Another stack file is refused unless --force.
        cp = self.fails("upgrade", "up", fixture("variables.yml"),
                        "-v", "tag=1", "--no-deploy")
        self.assertIn("was installed from acme/blog, not vars", cp.stderr)
        self.assertEqual(self.stored("up")["revision"], 3)
        cp = self.ok("upgrade", "up", fixture("variables.yml"), "-v", "tag=1",
                     "--no-deploy", "--force")
        self.assertIn("upgraded stack up to revision 4", cp.stdout)
        self.assertEqual(self.stored("up")["stack"], "vars")
        self.fails("upgrade", "nosuchstack", "--no-deploy")

    def test_list_show_inspect(self):
        self.ok("install", fixture("variables.yml"), "-n", "seen",
                "-v", "tag=2", "--no-deploy")
        cp = self.ok("ls")
        self.assertRegex(cp.stdout, r"(?m)^seen\s+vars:1\s+1\s+1\s+initialized\s+-\s+-$")
        self.assertNotRegex(cp.stdout, r"(?m)^null\s")
        ls = json.loads(self.ok("ls", "-o", "json").stdout)
        self.assertIn("seen", [s["name"] for s in ls])
        cp = self.ok("show", "seen")
        self.assertIn("%s/seen:" % self.grid, cp.stdout)
        self.assertIn("  revision: 1\n", cp.stdout)
        self.assertIn("    app:\n      image: busybox:2\n      state: initialized\n",
                      cp.stdout)
        self.assertEqual(json.loads(self.ok("show", "seen", "-o", "json").stdout),
                         self.stored("seen"))
        cp = self.ok("inspect", "seen")
        with open(fixture("variables.yml")) as f:
            self.assertEqual(cp.stdout, f.read())
        cp = self.ok("inspect", "seen", "--values")
        self.assertIn("tag: \"2\"\n", cp.stdout)
        self.assertIn("replicas: 1\n", cp.stdout)
        cp = self.fails("show", "nope")
        self.assertIn("cannot show stack nope", cp.stderr)

    def test_events_stop_restart(self):
        self.ok("install", fixture("variables.yml"), "-n", "lg",
                "-v", "tag=2", "--no-deploy")
        cp = self.ok("logs", "lg", "--tail", "5")
        self.assertEqual(cp.stdout, "")  # never deployed: no containers
        cp = self.ok("stop", "lg")
        self.assertIn("stopping stack lg", cp.stdout)
        cp = self.ok("restart", "lg")
        self.assertIn("restarting stack lg", cp.stdout)
        self.assertEqual(self.service("lg", "app")["state"], "stopped")
        cp = self.ok("events", "lg")
        self.assertIn("stack:stop: stack lg stopped (1 services)", cp.stdout)
        self.assertIn("stack:restart: stack lg restarted (1 services)", cp.stdout)
        cp = self.ok("events", "lg", "--tail", "1")
        self.assertIn("stack:restart", cp.stdout)
        self.assertNotIn("stack:stop", cp.stdout)
        self.fails("stop", "nope")
        cp = self.fails("logs", "lg", "--tail", "0", code=2)
        self.assertIn("--tail must be", cp.stderr)

    def test_labels(self):
        self.ok("install", fixture("variables.yml"), "-n", "lb",
                "-v", "tag=2", "--no-deploy")
        cp = self.ok("label", "add", "lb", "a=1", "b=2")
        self.assertIn("added label a=1 to stack lb", cp.stdout)
        self.assertEqual(self.stored("lb")["labels"], ["a=1", "b=2"])
        self.ok("label", "rm", "lb", "a=1")
        self.assertEqual(self.stored("lb")["labels"], ["b=2"])
        cp = self.ok("label", "ls", "lb")
        self.assertEqual(cp.stdout, "b=2\n")
        cp = self.fails("label", "rm", "lb", "zzz")
        self.assertIn("has no such label", cp.stderr)
        self.assertEqual(self.stored("lb")["labels"], ["b=2"])
        self.assertEqual(self.stored("lb")["revision"], 1)
        cp = self.ok("ls")
        self.assertRegex(cp.stdout, r"(?m)^lb\s.*\sb=2$")

    def test_remove(self):
        self.ok("install", fixture("variables.yml"), "-n", "gone",
                "-v", "tag=2", "--no-deploy")
        cp = self.fails("rm", "gone")  # stdin is not a terminal
        self.assertIn("use --force", cp.stderr)
        self.assertIn("gone", self.stack_names())
        cp = self.ok("rm", "gone", "--force")
        self.assertIn("removed stack gone", cp.stdout)
        self.assertNotIn("gone", self.stack_names())
        st, _ = self.rest("GET", "/v1/services/%s/gone/app" % self.grid)
        self.assertEqual(st, 404)
        cp = self.fails("rm", "gone", "--force")
        self.assertIn("cannot remove stack gone", cp.stderr)

    def test_vault_variable(self):
        cp = self.home.run("vault", "write", "db-pass", "from-vault")
        self.assertEqual(cp.returncode, 0, kh.describe_run(cp))
        path = self.write("vault.yml", VAULT_STACK)
        body = json.loads(self.ok("validate", path, "-o", "json").stdout)
        self.assertEqual(body["services"][0]["env"], ["PW=from-vault", "O=dflt"])
        # The secret is used, not stored with the stack.
        self.assertEqual(body["variables"], {"other": "dflt"})
        self.ok("install", path, "--no-deploy")
        got = self.stored("v")
        self.assertEqual(got["variables"], {"other": "dflt"})
        self.assertEqual(self.service("v", "app")["env"], ["PW=from-vault", "O=dflt"])
        # a secret the vault lacks, without a default, is an error naming
        # the variable, and nothing is sent
        path = self.write("vault2.yml", VAULT_STACK.replace("stack: v", "stack: v2")
                          .replace("vault: db-pass", "vault: nosuch"))
        cp = self.fails("install", path, "--no-deploy")
        self.assertIn("variables.pw: variable pw has no value", cp.stderr)
        self.assertNotIn("v2", self.stack_names())


# ==== On a real node ====

NODE = "kcs1"
NODE_IDX = 29
NODE_GRID = "clistkn"
NODE_MASTER_ENV = {
    "KONTENA_RECONCILE_INTERVAL": "2",
    "KONTENA_PING_INTERVAL": "2",
    "KONTENA_DEPLOY_INSTANCE_TIMEOUT": "120",
    "KONTENA_STACK_SERVICE_TIMEOUT": "150",
    "LOG_LEVEL": "debug",
}

HELLO = """\
stack: acme/hello
services:
  web:
    image: busybox
    command: sh -c "echo hello from ${STACK}; exec sleep 3600"
"""

HOLD = """\
stack: acme/hold
services:
  web:
    image: busybox
    command: sleep 3600
    deploy:
      wait_for_port: 9999
"""


class StackDeployOnNode(CliCase):
    """One master and one agent on node kcs1, grid NODE_GRID."""
    grid = NODE_GRID

    @classmethod
    def setUpClass(cls):
        kh.require_binary(kh.CLI_BIN, skip=True)
        kh.require_binary(ta.AGENT_BIN)
        if os.geteuid() != 0:
            raise RuntimeError("StackDeployOnNode needs root (network "
                               "namespaces and the Podman engine)")
        # test_services' helpers, pointed at our node and grid
        ts.NODES = {NODE: NODE_IDX}
        ts.NODES_LOCK = "/run/kontena-nodes-%s.lock" % NODE
        ts.GRID = NODE_GRID
        ta.run_engine_script("up")
        ta.run_engine_script("node", NODE, str(NODE_IDX))
        cls.lock = ts.take_nodes()
        ts.remove_grid_containers()
        cls.tmp = tempfile.mkdtemp(prefix="kontena-clistk-")
        cls.m = cls.home = cls.agent = None
        try:
            cls.start_master(NODE_MASTER_ENV, args=["--bind", "0.0.0.0"],
                             workdir=os.path.join(cls.tmp, "master"))
            st, _, g = cls.m.req("GET", "/v1/grids/" + NODE_GRID, token=cls.token)
            if st != 200:
                raise RuntimeError("grid %s: %s %r" % (NODE_GRID, st, g))
            cls.agent = ta.AgentProc(cls.tmp, NODE, NODE, {
                "KONTENA_URI": "ws://%s:%d" % (ta.HOST_IP, cls.m.port),
                "KONTENA_TOKEN": g["token"],
                "DOCKER_HOST": "unix://" + ts.sock(NODE),
                "KONTENA_NODE_NAME": NODE,
                "KONTENA_PODS_INTERVAL": "2",
                "KONTENA_NODE_UPDATE_INTERVAL": "2",
                "LOG_LEVEL": "debug",
            }).start()
            deadline = time.monotonic() + 30
            while True:
                st, _, nodes = cls.m.req("GET", "/v1/grids/%s/nodes" % NODE_GRID,
                                         token=cls.token)
                if st == 200 and any(n.get("status") == "online"
                                     for n in nodes["nodes"]):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError("node %s not online: %r\n%s" % (
                        NODE, nodes, cls.agent.describe()))
                time.sleep(POLL)
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
            if cls.agent is not None:
                try:
                    cls.agent.stop()
                except Exception:  # noqa: BLE001
                    cls.agent.kill()
            ts.remove_grid_containers()
            try:
                if cls.m is not None:
                    cls.m.stop()
            finally:
                if cls.m is not None:
                    cls.m.cleanup()
                if cls.home is not None:
                    cls.home.cleanup()
                if os.environ.get("KONTENA_KEEP_TMP") != "1":
                    shutil.rmtree(cls.tmp, ignore_errors=True)
                else:
                    sys.stderr.write("[test_cli_stack] kept %s\n" % cls.tmp)
                cls.lock.close()

    def diag(self):
        return "%s\n%s" % (self.agent.describe() if self.agent else "",
                           CliCase.diag(self))

    def running(self, stack):
        return sorted(name for name, c in ts.engine_containers(NODE).items()
                      if (c.get("Labels") or {}).get("io.kontena.stack.name") == stack
                      and c.get("State") == "running")

    def test_install_deploys_and_logs(self):
        cp = self.ok("install", self.write("hello.yml", HELLO), "--timeout", "120",
                     timeout=150)
        self.assertIn("created stack hello", cp.stdout)
        self.assertIn("deploying stack hello", cp.stdout)
        self.assertIn("%s/hello/web: success" % NODE_GRID, cp.stdout)
        self.assertTrue(cp.stdout.endswith("deployed stack hello\n"), cp.stdout)
        self.assertEqual(self.running("hello"), ["hello.web-1"])
        self.wait_for("stack hello running",
                      lambda: self.stored("hello")["state"] == "running", 20)

        def logged():
            cp = self.cli("logs", "hello", "--tail", "5")
            return cp.returncode == 0 and "hello from hello" in cp.stdout and cp
        cp = self.wait_for("the stack's container logs", logged, 30, interval=1)
        self.assertIn("[hello.web-1]", cp.stdout)
        cp = self.ok("rm", "hello", "--force", "--timeout", "60", timeout=90)
        self.assertIn("removed stack hello", cp.stdout)
        self.wait_for("hello's container removed", lambda: not self.running("hello"), 30)

    def test_deploy_wait_is_bounded(self):
        self.ok("install", self.write("hold.yml", HOLD), "-n", "hold", "--no-deploy")
        t0 = time.monotonic()
        cp = self.fails("deploy", "hold", "--timeout", "4")
        took = time.monotonic() - t0
        self.assertGreaterEqual(took, 4)
        self.assertLess(took, 10)
        self.assertIn("error: cannot deploy stack hold: still not finished after 4 s "
                      "(state ongoing); see kontena stack show hold", cp.stderr)
        self.assertIn("%s/hold/web: ongoing" % NODE_GRID, cp.stdout)
        # the master's deploy goes on: the container runs while the port
        # check holds the deploy, and the stack shows it deploying
        self.wait_for("hold's container running", lambda: self.running("hold"), 30)
        cp = self.ok("show", "hold")
        self.assertIn("  state: deploying\n", cp.stdout)
        self.assertEqual(self.stored("hold")["state"], "deploying")
        self.ok("rm", "hold", "--force", "--no-wait")


if __name__ == "__main__":
    kh.main()
