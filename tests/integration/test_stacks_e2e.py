#!/usr/bin/env python3
"""Stacks, the vault and the CLI end to end (issue 5): a real master with
VAULT_KEY, real agents on two Podman nodes (kse1 at 172.31.0.37, kse2 at
172.31.0.38), and the kontena CLI as a user drives it:

 01 install a stack file of two linked busybox services with variables
    (-v, a default, one read from the vault) and a secret from the vault:
    the containers run with the resolved env and the secret;
 02 upgrade the stack to a second revision that changes one service: only
    that service is redeployed (the other's containers are untouched);
 03 update the secret in the vault: the running containers get the new
    value without a manual deploy;
 04 remove the stack: its containers and services are gone.

Run by ctest or by hand as root: python3 tests/integration/test_stacks_e2e.py
"""

import json
import os
import shutil
import sys
import tempfile
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kontena_harness as kh  # noqa: E402
import test_agents as ta  # noqa: E402
import test_ha as ha  # noqa: E402  (engine helpers)

GRID = "stke2e"
NODES = {"kse1": 27, "kse2": 28}
VAULT_KEY = "e2e-" + "s" * 60
MASTER_ENV = {
    "VAULT_KEY": VAULT_KEY,
    "KONTENA_RECONCILE_INTERVAL": "2",
    "KONTENA_DEPLOY_INSTANCE_TIMEOUT": "60",
    "KONTENA_PING_INTERVAL": "2",
    "LOG_LEVEL": "debug",
}

STACK_V1 = """\
stack: e2e/app
version: 1.0.0
description: two linked busybox services
variables:
  greeting:
    type: string
    default: hello
  db_user:
    type: string
  db_name:
    type: string
    from:
      vault: e2e-dbname
services:
  db:
    image: busybox
    command: sleep 3600
    environment:
      - DB_USER=${db_user}
      - DB_NAME=${db_name}
    secrets:
      - secret: e2e-pass
        name: DB_PASSWORD
        type: env
  web:
    image: busybox
    instances: 2
    command: sh -c "exec sleep 3600"
    links:
      - db
    environment:
      GREETING: ${greeting}-${STACK}
      DB_HOST: db.${STACK}.${GRID}.kontena.local
    secrets:
      - secret: e2e-pass
        name: DB_PASSWORD
        type: env
"""

STACK_V2 = STACK_V1.replace("GREETING: ${greeting}-${STACK}",
                            "GREETING: ${greeting}-${STACK}-v2")


def env_of(info):
    return dict(e.split("=", 1) for e in info["Config"]["Env"] if "=" in e)


def containers(service):
    """name -> (node, engine id, env) of the stack service's running
    containers (named <stack>.<service>-<n> or with the service label)."""
    out = {}
    for ns in NODES:
        for name, c in ha.grid_containers(ns).items():
            labels = c.get("Labels") or {}
            if labels.get("io.kontena.service.name") != service:
                continue
            if labels.get("io.kontena.stack.name", "app") != "app":
                continue
            if c.get("State") != "running":
                continue
            st, info = ha.engine(ns, "GET", "/containers/%s/json" % c["Id"])
            if st == 200:
                out[name] = (ns, c["Id"], env_of(info))
    return out


class TestStacksE2E(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        kh.require_binary(kh.MASTER_BIN)
        kh.require_binary(ta.AGENT_BIN)
        kh.require_binary(kh.CLI_BIN)
        if os.geteuid() != 0:
            raise RuntimeError("needs root (network namespaces, Podman)")
        ha.NODES = NODES  # the engine helpers read these
        ha.GRID = GRID
        ta.run_engine_script("up")
        for ns, idx in sorted(NODES.items()):
            ta.run_engine_script("node", ns, str(idx))
        cls.tmp = tempfile.mkdtemp(prefix="kontena-stke2e-")
        cls.agents = {}
        cls.m = cls.home = None
        try:
            cls._set_up()
        except BaseException:
            cls._tear_down()
            raise

    @classmethod
    def _set_up(cls):
        ha.remove_grid_containers()
        cls.m = kh.Master(env=MASTER_ENV, args=["--bind", "0.0.0.0"],
                          workdir=os.path.join(cls.tmp, "master"))
        cls.m.start()
        cls.token = cls.m.login()
        cls.home = kh.CliHome()
        for args in (("master", "login", "--token", cls.token, cls.m.url),
                     ("grid", "create", GRID), ("grid", "use", GRID)):
            cp = cls.home.run(*args)
            if cp.returncode != 0:
                raise RuntimeError("kontena %s: %s" % (" ".join(args), kh.describe_run(cp)))
        st, _, g = cls.m.req("GET", "/v1/grids/" + GRID, token=cls.token)
        uri = "ws://%s:%d" % (ta.HOST_IP, cls.m.port)
        for ns in sorted(NODES):
            cls.agents[ns] = ta.AgentProc(cls.tmp, ns, ns, {
                "KONTENA_URI": uri,
                "KONTENA_TOKEN": g["token"],
                "DOCKER_HOST": "unix://" + ha.sock(ns),
                "KONTENA_NODE_NAME": ns,
                "KONTENA_PODS_INTERVAL": "2",
                "KONTENA_NODE_UPDATE_INTERVAL": "2",
                "LOG_LEVEL": "debug",
            }).start()
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            st, _, body = cls.m.req("GET", "/v1/grids/%s/nodes" % GRID, token=cls.token)
            if st == 200 and sum(n.get("status") == "online" for n in body["nodes"]) == 2:
                break
            time.sleep(0.25)
        else:
            raise RuntimeError("nodes not online:\n" + cls.logs())
        cls.files = os.path.join(cls.tmp, "files")
        os.makedirs(cls.files)
        for name, text in (("v1.yml", STACK_V1), ("v2.yml", STACK_V2)):
            with open(os.path.join(cls.files, name), "w") as f:
                f.write(text)

    @classmethod
    def tearDownClass(cls):
        cls._tear_down()

    @classmethod
    def _tear_down(cls):
        try:
            ha.remove_grid_containers()
        finally:
            for a in cls.agents.values():
                try:
                    a.stop()
                except Exception:  # noqa: BLE001
                    a.kill()
            ha.remove_grid_containers()
            if cls.m is not None:
                cls.m.stop()
                cls.m.cleanup()
            if cls.home is not None:
                cls.home.cleanup()
            if os.environ.get("KONTENA_KEEP_TMP") != "1":
                shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def logs(cls):
        parts = [a.describe() for a in cls.agents.values()]
        if cls.m is not None:
            parts.append("master log (tail):\n" + (cls.m.stdout() + cls.m.stderr())[-6000:])
        return "\n".join(parts)

    def cli(self, *args, timeout=kh.CLI_TIMEOUT, env=None):
        cp = self.home.run(*args, timeout=timeout, env=env)
        self.assertEqual(cp.returncode, 0, "kontena %s: %s\n%s" % (
            " ".join(args), kh.describe_run(cp), self.logs()))
        return cp

    def wait_for(self, what, fn, timeout, interval=0.5):
        deadline = time.monotonic() + timeout
        while True:
            got = fn()
            if got:
                return got
            if time.monotonic() >= deadline:
                self.fail("%s: not within %.0fs\n%s" % (what() if callable(what) else what,
                                                        timeout, self.logs()))
            time.sleep(interval)

    def stack(self):
        st, _, body = self.m.req("GET", "/v1/stacks/%s/app" % GRID, token=self.token)
        return st, body

    def test_01_install(self):
        self.cli("vault", "write", "e2e-pass", "pass-one")
        self.cli("vault", "write", "e2e-dbname", "appdb")
        cp = self.cli("stack", "install", os.path.join(self.files, "v1.yml"), "-n", "app",
                      "-v", "db_user=alice", timeout=240)
        sys.stderr.write("[test_stacks_e2e] install: %s\n" % cp.stdout.strip()[-300:])
        st, body = self.stack()
        self.assertEqual(st, 200, body)
        self.assertEqual(body["revision"], 1)
        self.assertEqual(body["variables"].get("db_user"), "alice")
        self.assertNotIn("db_name", body["variables"], "vault values are never stored")
        db = self.wait_for(lambda: "db running: %s" % containers("db"),
                           lambda: len(containers("db")) == 1 and containers("db"), 60)
        web = self.wait_for(lambda: "web running twice: %s" % containers("web"),
                            lambda: len(containers("web")) == 2 and containers("web"), 60)
        (_, _, env), = db.values()
        self.assertEqual(env.get("DB_USER"), "alice")
        self.assertEqual(env.get("DB_NAME"), "appdb")
        self.assertEqual(env.get("DB_PASSWORD"), "pass-one")
        for _, _, env in web.values():
            self.assertEqual(env.get("GREETING"), "hello-app")
            self.assertEqual(env.get("DB_HOST"), "db.app.%s.kontena.local" % GRID)
            self.assertEqual(env.get("DB_PASSWORD"), "pass-one")
        # The stored container data on the master never holds the secret.
        st, _, listing = self.m.req("GET", "/v1/containers/%s?all=1" % GRID,
                                    token=self.token)
        self.assertEqual(st, 200)
        self.assertNotIn("pass-one", json.dumps(listing))

    def test_02_upgrade_changes_only_web(self):
        before_db = {n: cid for n, (_, cid, _) in containers("db").items()}
        self.assertEqual(len(before_db), 1)
        self.cli("stack", "upgrade", "app", os.path.join(self.files, "v2.yml"),
                 "-v", "db_user=alice", timeout=240)
        st, body = self.stack()
        self.assertEqual(body["revision"], 2)
        self.wait_for(lambda: "web on v2: %s" % containers("web"),
                      lambda: len(containers("web")) == 2 and all(
                          e.get("GREETING") == "hello-app-v2"
                          for _, _, e in containers("web").values()), 60)
        after_db = {n: cid for n, (_, cid, _) in containers("db").items()}
        self.assertEqual(after_db, before_db, "db was redeployed by an upgrade "
                                              "that did not change it")
        # The same file again is no new revision.
        self.cli("stack", "upgrade", "app", os.path.join(self.files, "v2.yml"),
                 "-v", "db_user=alice", timeout=240)
        self.assertEqual(self.stack()[1]["revision"], 2)

    def test_03_secret_update_rolls_out(self):
        t0 = time.monotonic()
        self.cli("vault", "update", "e2e-pass", "pass-two")
        self.wait_for(lambda: "new secret in every container: %s" % {
            n: e.get("DB_PASSWORD") for n, (_, _, e) in
            list(containers("db").items()) + list(containers("web").items())},
            lambda: len(containers("db")) == 1 and len(containers("web")) == 2 and all(
                e.get("DB_PASSWORD") == "pass-two" for _, _, e in
                list(containers("db").values()) + list(containers("web").values())), 90)
        sys.stderr.write("[test_stacks_e2e] secret rolled out in %.1fs\n"
                         % (time.monotonic() - t0))

    def test_04_remove(self):
        self.cli("stack", "rm", "app", "--force", timeout=120)
        self.assertEqual(self.stack()[0], 404)
        self.wait_for(lambda: "containers gone: db %s web %s" % (containers("db"),
                                                                  containers("web")),
                      lambda: not containers("db") and not containers("web"), 60)
        st, _, body = self.m.req("GET", "/v1/grids/%s/services" % GRID, token=self.token)
        self.assertEqual([s["name"] for s in body["services"]], [])


if __name__ == "__main__":
    kh.main()
