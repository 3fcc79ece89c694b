#!/usr/bin/env python3
"""Integration tests of the vault (spec 7): a real kontena-master with a
VAULT_KEY, driven with the kontena CLI as a user (vault write / read /
update / ls / rm / export / import) and over REST.

TestVault (no engine needed):
  - the CLI round trip, name and value validation, duplicates, upsert;
  - services naming a missing secret are refused; a used secret cannot
    be removed; a secret update bumps the revision of its services;
  - 503 without VAULT_KEY; a master restarted with another VAULT_KEY
    answers 503 with a clear error and logs why;
  - the store's files (SQLite's kontena.db, -wal, -shm; on PostgreSQL
    the whole test cluster after a checkpoint) never hold a value in
    plaintext, nor do the master's logs;
  - key rotation: a master with VAULT_KEY + VAULT_KEY_PREVIOUS reads the
    old values, `kontena-master vault-rekey` re-seals them while it runs,
    then the new key alone reads everything; a rekey with keys that do not
    open the secrets changes nothing and says so. The grid and node tokens
    and the external registry passwords rotate too: a real agent (on
    test_audit_registries' fake engine) pulls with the registry's
    credentials during the rotation and with the new key alone after it.

TestVaultPods (root, Podman nodes kva1/kva2 from
../shared/engine/podman-engine.sh, a real agent on each): a busybox
service with --secret gets the value in its container env (engine
inspect on the node socket), the master's stored container data does not
hold it, `vault update` reaches the running container without a manual
deploy (the reconciler runs every 2 s here), and `service restart` runs
the current value (#651).

TestVault runs on PostgreSQL too (test_pg_master.py subclasses it).

Run by ctest (KONTENA_BUILD_DIR / KONTENA_SOURCE_DIR set) or by hand:
  python3 tests/integration/test_vault.py [-k pattern]
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
# The Podman nodes of this test (netns name:index), read by test_services
# when it is imported: its engine helpers then talk to these nodes.
os.environ["KONTENA_SVC_NODES"] = "kva1:17,kva2:18"
import kontena_harness as kh  # noqa: E402
import test_agents as ta  # noqa: E402
import test_services as ts  # noqa: E402
import test_audit_registries as tar  # noqa: E402

KEY1 = "k1-3b9f0c1e5a7d4e2f8a6b1c0d9e8f7a6b"
KEY2 = "k2-0f1e2d3c4b5a69788796a5b4c3d2e1f0"
KEY3 = "k3-not-the-key-of-anything-stored-x"
GRID = "vlt"
POLL = 0.25


def marker(tag):
    """A value that is unique to this run and easy to find in bytes."""
    return "%s-%s" % (tag, os.urandom(8).hex())


def rekey(m, env=None):
    """Runs kontena-master vault-rekey on m's data dir; fails on a
    sanitizer report of the tool."""
    cp = m.run_tool(["vault-rekey", "--data-dir", m.data_dir], env=env)
    for mark in kh.Master.SANITIZER_MARKS:
        if mark in cp.stderr:
            raise AssertionError("sanitizer report from vault-rekey:\n" + cp.stderr)
    return cp


def files_with(root, needles):
    """{path: [needles found]} over every file under root (bytes)."""
    found = {}
    for dirpath, _, names in os.walk(root):
        for n in names:
            p = os.path.join(dirpath, n)
            try:
                with open(p, "rb") as f:
                    data = f.read()
            except OSError:
                continue
            hits = [s for s in needles if s.encode() in data]
            if hits:
                found[p] = hits
    return found


class VaultCase(unittest.TestCase):
    """Helpers shared by both classes."""

    def cli(self, *args, stdin_data="", ok=True):
        cp = self.home.run(*args, stdin_data=stdin_data)
        if ok:
            self.assertEqual(cp.returncode, 0, "kontena %s: %s\n%s" % (
                " ".join(map(str, args)), kh.describe_run(cp), self.m.describe()))
        return cp

    def cli_fails(self, *args, stdin_data=""):
        cp = self.home.run(*args, stdin_data=stdin_data)
        self.assertNotEqual(cp.returncode, 0, "kontena %s should fail: %s" % (
            " ".join(map(str, args)), kh.describe_run(cp)))
        return cp

    def rest(self, method, path, body=None):
        st, _, got = self.m.req(method, path, body=body, token=self.token)
        return st, got


class TestVault(VaultCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="kontena-vault-")
        self.m = kh.Master(env={"VAULT_KEY": KEY1, "LOG_LEVEL": "debug"},
                           workdir=self.tmp)
        self.m.start()
        self.token = self.m.login()
        self.home = kh.CliHome()
        for args in (("master", "login", "--token", self.token, self.m.url),
                     ("grid", "create", GRID), ("grid", "use", GRID)):
            self.cli(*args)

    def tearDown(self):
        try:
            if self.m.alive():
                self.m.stop()  # also checks for sanitizer reports
        finally:
            self.m.cleanup()
            self.home.cleanup()
            if os.environ.get("KONTENA_KEEP_TMP") != "1":
                shutil.rmtree(self.tmp, ignore_errors=True)

    def restart(self, env):
        """Restarts the master with env alone (and the store's URL on
        PostgreSQL)."""
        self.m.stop()
        self.m.extra_env = dict(self.m.db_env, **env)
        self.m.extra_env["LOG_LEVEL"] = "debug"
        self.m.start()

    def all_logs(self):
        text = ""
        for n in sorted(os.listdir(self.tmp)):
            if n.endswith(".log"):
                text += kh._read(os.path.join(self.tmp, n))
        return text

    # -- the CLI round trip

    def test_cli_round_trip(self):
        v1, v2, v3 = marker("alpha"), marker("beta"), marker("gamma")
        cp = self.cli("vault", "write", "DB_PASS", v1)
        self.assertIn("DB_PASS", cp.stdout)
        # the value from stdin, without its newline
        self.cli("vault", "write", "api-token", stdin_data=v2 + "\n")
        self.assertEqual(self.cli("vault", "read", "DB_PASS").stdout, v1 + "\n")
        self.assertEqual(self.cli("vault", "read", "api-token").stdout, v2 + "\n")
        cp = self.cli("vault", "read", "DB_PASS", "-o", "json")
        j = json.loads(cp.stdout)
        self.assertEqual(j["id"], "%s/DB_PASS" % GRID)
        self.assertEqual(j["value"], v1)
        self.assertEqual(j["services"], [])
        for k in ("created_at", "updated_at"):
            self.assertRegex(j[k], r"^\d{4}-\d\d-\d\dT")

        cp = self.cli("vault", "ls")
        lines = cp.stdout.splitlines()
        self.assertRegex(lines[0], r"^NAME\s+CREATED AT\s+UPDATED AT")
        self.assertEqual([l.split()[0] for l in lines[1:]], ["DB_PASS", "api-token"])
        self.assertNotIn(v1, cp.stdout)
        st, body = self.rest("GET", "/v1/grids/%s/secrets" % GRID)
        self.assertEqual(st, 200)
        self.assertEqual([s["name"] for s in body["secrets"]], ["DB_PASS", "api-token"])
        for s in body["secrets"]:
            self.assertNotIn("value", s)
            self.assertEqual(set(s), {"id", "name", "created_at", "updated_at",
                                      "services"})

        self.cli("vault", "update", "DB_PASS", v3)
        self.assertEqual(self.cli("vault", "read", "DB_PASS").stdout, v3 + "\n")
        cp = self.cli_fails("vault", "update", "missing", "x")
        self.assertIn("cannot update secret missing", cp.stderr)
        self.cli("vault", "update", "--upsert", "missing", "made")
        self.assertEqual(self.cli("vault", "read", "missing").stdout, "made\n")

        # bad input: clear errors, nothing stored
        cp = self.cli_fails("vault", "write", "DB_PASS", "again")
        self.assertIn("name: is already taken", cp.stderr)
        cp = self.cli_fails("vault", "write", "bad.name", "x")
        self.assertIn("name: must be", cp.stderr)
        cp = self.cli_fails("vault", "write", "has space", "x")
        self.assertIn("name: must be", cp.stderr)
        cp = self.cli_fails("vault", "write", "EMPTY", stdin_data="")
        self.assertIn("no value given", cp.stderr)
        st, body = self.rest("POST", "/v1/grids/%s/secrets" % GRID, {"name": "X"})
        self.assertEqual((st, body), (422, {"error": {"value": "is required"}}))
        st, body = self.rest("POST", "/v1/grids/%s/secrets" % GRID,
                             {"name": "X", "value": 5})
        self.assertEqual((st, body), (422, {"error": {"value": "must be a string"}}))
        st, body = self.rest("POST", "/v1/grids/%s/secrets" % GRID,
                             {"name": "X", "value": "x" * (128 * 1024 + 1)})
        self.assertEqual(st, 422)
        st, body = self.rest("GET", "/v1/secrets/%s/nope" % GRID)
        self.assertEqual((st, body), (404, {"error": "Not found"}))
        st, body = self.rest("PUT", "/v1/secrets/%s/nope" % GRID, {"value": "v"})
        self.assertEqual((st, body), (404, {"error": "Not found"}))
        st, body = self.rest("GET", "/v1/secrets/nogrid/DB_PASS")
        self.assertEqual(st, 404)
        cp = self.cli_fails("vault", "read", "nope")
        self.assertIn("cannot read secret nope", cp.stderr)

        # export, then import into a fresh grid
        cp = self.cli("vault", "export")
        exported = json.loads(cp.stdout)
        self.assertEqual(exported, {"DB_PASS": v3, "api-token": v2, "missing": "made"})
        self.cli("grid", "create", "vlt2")
        self.cli("grid", "use", "vlt2")
        path = os.path.join(self.tmp, "secrets.json")
        with open(path, "w") as f:
            json.dump(exported, f)
        cp = self.cli("vault", "import", path)
        self.assertIn("Imported 3", cp.stdout)
        self.assertEqual(json.loads(self.cli("vault", "export").stdout), exported)
        # stdin; a null removes, numbers become text
        cp = self.cli("vault", "import", stdin_data=json.dumps(
            {"missing": None, "PORT": 5432, "DB_PASS": "changed"}))
        self.assertIn("Imported 2", cp.stdout)
        self.assertEqual(json.loads(self.cli("vault", "export").stdout),
                         {"DB_PASS": "changed", "PORT": "5432", "api-token": v2})
        cp = self.cli_fails("vault", "import", stdin_data="[1, 2]")
        self.assertIn("not a JSON object", cp.stderr)
        cp = self.cli_fails("vault", "import", stdin_data='{"A": {"x": 1}}')
        self.assertIn("value of A", cp.stderr)
        # the first grid is untouched
        self.cli("grid", "use", GRID)
        self.assertEqual(self.cli("vault", "read", "DB_PASS").stdout, v3 + "\n")

        cp = self.cli_fails("vault", "rm", "api-token")  # no tty: --force
        self.assertIn("--force", cp.stderr)
        self.cli("vault", "rm", "--force", "api-token")
        self.assertEqual(self.rest("GET", "/v1/secrets/%s/api-token" % GRID)[0], 404)
        cp = self.cli_fails("vault", "rm", "--force", "api-token")
        self.assertIn("not found", cp.stderr)

        # no value in the master's logs
        self.m.stop()
        logs = self.all_logs()
        for v in (v1, v2, v3):
            self.assertNotIn(v, logs)

    # -- services and secrets

    def test_services_use_secrets(self):
        v = marker("svc")
        cp = self.cli_fails("service", "create", "web", "busybox",
                            "--secret", "DB_PASS:DB_PASSWORD")
        self.assertIn("DB_PASS", cp.stderr)
        self.assertIn("secrets", cp.stderr)
        self.cli("vault", "write", "DB_PASS", v)
        self.cli("service", "create", "web", "busybox",
                 "--secret", "DB_PASS:DB_PASSWORD",
                 "--secret", "DB_PASS:ALSO:env")
        st, svc = self.rest("GET", "/v1/services/%s/null/web" % GRID)
        self.assertEqual(st, 200)
        self.assertEqual(svc["secrets"], [
            {"secret": "DB_PASS", "name": "DB_PASSWORD", "type": "env"},
            {"secret": "DB_PASS", "name": "ALSO", "type": "env"}])
        rev = svc["revision"]
        j = json.loads(self.cli("vault", "read", "DB_PASS", "-o", "json").stdout)
        self.assertEqual(j["services"], [{"id": "%s/null/web" % GRID, "name": "web"}])
        st, body = self.rest("GET", "/v1/grids/%s/secrets" % GRID)
        self.assertEqual(body["secrets"][0]["services"],
                         [{"id": "%s/null/web" % GRID, "name": "web"}])

        # an update naming a missing secret is refused, the service kept
        cp = self.cli_fails("service", "update", "web", "--secret", "NOPE:X")
        self.assertIn("NOPE", cp.stderr)
        self.assertEqual(self.rest("GET", "/v1/services/%s/null/web" % GRID)[1]
                         ["revision"], rev)

        # a new value bumps the revision (the reconciler rolls it out);
        # the same value again changes nothing
        self.cli("vault", "update", "DB_PASS", v + "-2")
        rev2 = self.rest("GET", "/v1/services/%s/null/web" % GRID)[1]["revision"]
        self.assertEqual(rev2, rev + 1)
        self.cli("vault", "update", "DB_PASS", v + "-2")
        self.assertEqual(self.rest("GET", "/v1/services/%s/null/web" % GRID)[1]
                         ["revision"], rev2)

        # a used secret cannot go; once unused it can
        cp = self.cli_fails("vault", "rm", "--force", "DB_PASS")
        self.assertIn("is used by service(s) null/web", cp.stderr)
        self.cli("service", "rm", "--force", "web")
        self.cli("vault", "rm", "--force", "DB_PASS")

    # -- no key, wrong key

    def test_no_vault_key(self):
        self.cli("vault", "write", "KEEP", "kept")
        self.restart({})
        for method, path, body in (
                ("GET", "/v1/grids/%s/secrets" % GRID, None),
                ("POST", "/v1/grids/%s/secrets" % GRID, {"name": "A", "value": "b"}),
                ("GET", "/v1/secrets/%s/KEEP" % GRID, None),
                ("PUT", "/v1/secrets/%s/KEEP" % GRID, {"value": "b"}),
                ("DELETE", "/v1/secrets/%s/KEEP" % GRID, None)):
            st, got = self.rest(method, path, body)
            self.assertEqual((st, got), (503, {"error": "Vault not configured"}),
                             "%s %s" % (method, path))
        cp = self.cli_fails("vault", "ls")
        self.assertIn("vault not configured", cp.stderr)
        self.assertIn("VAULT_KEY is not set", self.m.logs())
        # the rest of the master works
        self.assertEqual(self.rest("GET", "/v1/grids/%s" % GRID)[0], 200)
        # and the secret is still there with the key back
        self.restart({"VAULT_KEY": KEY1})
        self.assertEqual(self.cli("vault", "read", "KEEP").stdout, "kept\n")

    def test_wrong_vault_key(self):
        self.cli("vault", "write", "KEEP", "kept")
        self.restart({"VAULT_KEY": KEY3})
        st, got = self.rest("GET", "/v1/secrets/%s/KEEP" % GRID)
        self.assertEqual((st, got), (503, {"error": "vault key does not match "
                                                    "the stored secrets"}))
        st, got = self.rest("POST", "/v1/grids/%s/secrets" % GRID,
                            {"name": "NEW", "value": "x"})
        self.assertEqual(st, 503)
        cp = self.cli_fails("vault", "read", "KEEP")
        self.assertIn("vault key does not match the stored secrets", cp.stderr)
        logs = self.m.logs()
        self.assertIn("VAULT_KEY does not match the key the stored secrets "
                      "were sealed with", logs)
        self.assertEqual(self.rest("GET", "/v1/grids/%s" % GRID)[0], 200)
        self.restart({"VAULT_KEY": KEY1})
        self.assertEqual(self.cli("vault", "read", "KEEP").stdout, "kept\n")
        self.assertEqual(self.rest("GET", "/v1/secrets/%s/NEW" % GRID)[0], 404)

    # -- at rest

    def test_no_plaintext_at_rest(self):
        values = [marker("rest%d" % i) for i in range(5)]
        for i, v in enumerate(values):
            self.cli("vault", "write", "S%d" % i, v)
        self.cli("vault", "update", "S0", values[0] + "-new")
        values.append(values[0] + "-new")
        for i in range(1, 5):
            self.assertEqual(self.cli("vault", "read", "S%d" % i).stdout,
                             values[i] + "\n")
        files = self.m.store_files()
        if not self.m.database_url:  # running: the WAL holds writes
            self.assertIn(os.path.join(self.m.data_dir, "kontena.db-wal"), files)
        self.assertTrue(files)
        found = kh.files_holding(files, values)
        self.assertEqual(found, {}, "plaintext secrets in the store")
        found = files_with(self.m.data_dir, values)
        self.assertEqual(found, {}, "plaintext secrets in the data dir")
        self.m.stop()
        found = kh.files_holding(self.m.store_files(), values)
        self.assertEqual(found, {}, "plaintext secrets in the store")
        found = files_with(self.m.data_dir, values)
        self.assertEqual(found, {}, "plaintext secrets in the data dir")
        logs = self.all_logs()
        for v in values:
            self.assertNotIn(v, logs)

    # -- rotation

    REG_PASSWORD = "reg-Pa55-0c7e1d9b4a"  # searched for in the store's files
    REG_URL = "https://Registry.Rekey.test:5000/v2/"  # named in lower case
    PRIVATE_IMAGE = "registry.rekey.test:5000/team/app"

    def pull_auth(self, engine, agent_env, seen):
        """Starts a real agent on engine, deploys the service once its
        node is online, waits for a pull of PRIVATE_IMAGE beyond the first
        seen ones, stops the agent, and returns the pull's credentials
        (from X-Registry-Auth; None without)."""
        agent = tar.AgentProc(self.tmp, agent_env)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                st, nodes = self.rest("GET", "/v1/grids/%s/nodes" % GRID)
                if st == 200 and any(n.get("name") == "fake-node" and
                                     n.get("status") == "online"
                                     for n in nodes["nodes"]):
                    break
                time.sleep(0.2)
            else:
                self.fail("agent not online: %r\n%s\n%s" % (
                    nodes, agent.log()[-3000:], self.m.describe()))
            self.cli("service", "deploy", "--no-wait", "priv")
            deadline = time.monotonic() + 40
            while time.monotonic() < deadline:
                pulls = engine.pulls_of(self.PRIVATE_IMAGE)
                if len(pulls) > seen:
                    auth = pulls[-1][2]
                    if auth is None:
                        return None
                    got = tar.decode_auth(auth)
                    return {k: got.get(k) for k in
                            ("username", "password", "serveraddress")}
                time.sleep(0.2)
            self.fail("no pull of %s: %r\n%s\n%s" % (
                self.PRIVATE_IMAGE, engine.pulls, agent.log()[-3000:],
                self.m.describe()))
        finally:
            rc = agent.stop()
            log = agent.log()
            for mark in kh.Master.SANITIZER_MARKS:
                self.assertNotIn(mark, log, "sanitizer report from the agent:\n"
                                 + log[max(0, log.find(mark) - 200):][:3000])
            self.assertEqual(rc, 0, "agent exit status\n" + log[-2000:])
            self.assertNotIn(self.REG_PASSWORD, log)

    def test_rekey(self):
        kh.require_binary(tar.AGENT_BIN)
        v = {n: marker(n) for n in ("one", "two", "three")}
        self.cli("vault", "write", "one", v["one"])
        self.cli("vault", "write", "two", v["two"])
        # ... and the external registries' passwords; a real agent pulls
        # the service's image with them from a fake engine
        self.cli("external-registry", "add", self.REG_URL, "-u", "puller",
                 "-p", self.REG_PASSWORD)
        self.cli("service", "create", "priv", self.PRIVATE_IMAGE + ":1")
        engine = tar.FakeEngine(os.path.join(self.tmp, "docker.sock")).start()
        self.addCleanup(engine.stop)
        grid = self.rest("GET", "/v1/grids/%s" % GRID)[1]
        creds = {"username": "puller", "password": self.REG_PASSWORD,
                 "serveraddress": self.REG_URL}

        def agent_env():
            return {"KONTENA_URI": self.m.url.replace("http://", "ws://"),
                    "KONTENA_TOKEN": grid["token"],
                    "DOCKER_HOST": "unix://" + engine.path,
                    "KONTENA_NODE_ID": "FAKE:ENGINE:0001",
                    "KONTENA_NODE_NAME": "fake-node",
                    "KONTENA_PODS_INTERVAL": "1", "LOG_LEVEL": "debug"}
        # VAULT_KEY also seals the grid and node tokens: they rotate too
        node_token = "node-token-" + os.urandom(8).hex()
        st, _ = self.rest("POST", "/v1/grids/%s/nodes" % GRID,
                          {"name": "n1", "token": node_token})
        self.assertEqual(st, 201)
        grid_token = self.rest("GET", "/v1/grids/%s" % GRID)[1]["token"]
        self.assertTrue(grid_token)

        def tokens_shown():
            g = self.rest("GET", "/v1/grids/%s" % GRID)[1].get("token")
            n = self.rest("GET", "/v1/nodes/%s/n1/token" % GRID)[1].get("token")
            self.assertEqual((g, n), (grid_token, node_token), self.m.logs()[-2000:])

        # rotation step 1: every master runs with the new key and the old
        self.restart({"VAULT_KEY": KEY2, "VAULT_KEY_PREVIOUS": KEY1})
        self.assertEqual(self.cli("vault", "read", "one").stdout, v["one"] + "\n")
        self.assertIn("vault-rekey", self.m.logs())  # tells what to do next
        tokens_shown()
        self.cli("vault", "write", "three", v["three"])  # sealed under KEY2
        # the registry's password, still under KEY1, reaches the pull
        got = self.pull_auth(engine, agent_env(), 0)
        self.assertEqual(got, creds, self.m.logs()[-3000:])
        seen = len(engine.pulls_of(self.PRIVATE_IMAGE))

        # a rekey whose keys open nothing changes nothing and says so
        cp = rekey(self.m, {"VAULT_KEY": KEY3, "VAULT_KEY_PREVIOUS": "nope-nope-nope-nope"})
        self.assertEqual(cp.returncode, 1, kh.describe_run(cp))
        self.assertIn("neither VAULT_KEY", cp.stderr)
        cp = rekey(self.m)
        self.assertEqual(cp.returncode, 1, kh.describe_run(cp))
        self.assertIn("VAULT_KEY is not set", cp.stderr)

        # step 2: rekey while the master runs
        cp = rekey(self.m, {"VAULT_KEY": KEY2, "VAULT_KEY_PREVIOUS": KEY1})
        self.assertEqual(cp.returncode, 0, kh.describe_run(cp))
        self.assertIn("2 secret(s) re-sealed", cp.stdout)
        self.assertIn("1 already", cp.stdout)
        self.assertIn("check value re-sealed", cp.stdout)
        self.assertIn("2 grid/node token(s) re-sealed", cp.stdout)
        self.assertIn("1 registry password(s) re-sealed, 0 already", cp.stdout)
        for n in v:
            self.assertEqual(self.cli("vault", "read", n).stdout, v[n] + "\n")
        # again: nothing left to do
        cp = rekey(self.m, {"VAULT_KEY": KEY2, "VAULT_KEY_PREVIOUS": KEY1})
        self.assertEqual(cp.returncode, 0, kh.describe_run(cp))
        self.assertIn("0 secret(s) re-sealed", cp.stdout)
        self.assertIn("3 already", cp.stdout)
        self.assertIn("0 registry password(s) re-sealed, 1 already", cp.stdout)

        # step 3: the new key alone
        self.restart({"VAULT_KEY": KEY2})
        self.assertEqual(json.loads(self.cli("vault", "export").stdout), v)
        self.assertNotIn("does not match", self.m.logs())
        tokens_shown()
        got = self.pull_auth(engine, agent_env(), seen)
        self.assertEqual(got, creds, self.m.logs()[-3000:])
        self.assertNotIn("cannot open the password", self.m.logs())
        # the old key alone no longer opens anything
        self.restart({"VAULT_KEY": KEY1})
        st, got = self.rest("GET", "/v1/secrets/%s/one" % GRID)
        self.assertEqual(st, 503, got)
        self.m.stop()
        self.assertEqual(files_with(self.m.data_dir, list(v.values())), {})
        self.assertEqual(kh.files_holding(self.m.store_files(),
                                          list(v.values()) + [self.REG_PASSWORD]),
                         {})
        self.assertNotIn(self.REG_PASSWORD, self.all_logs())


class TestVaultPods(VaultCase):
    """Secrets delivered to containers on real Podman nodes."""

    @classmethod
    def setUpClass(cls):
        kh.require_binary(kh.MASTER_BIN)
        kh.require_binary(ta.AGENT_BIN)
        kh.require_binary(kh.CLI_BIN)
        if os.geteuid() != 0:
            raise RuntimeError("TestVaultPods needs root (network namespaces "
                               "and the Podman engine)")
        ts.GRID = GRID  # the engine helpers select our grid's containers
        ta.run_engine_script("up")
        for ns, idx in sorted(ts.NODES.items()):
            ta.run_engine_script("node", ns, str(idx))
        cls.lock = ts.take_nodes()
        ts.remove_grid_containers()
        cls.tmp = tempfile.mkdtemp(prefix="kontena-vaultpods-")
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
        env = dict(ts.MASTER_ENV, VAULT_KEY=KEY1)
        cls.m = kh.Master(env=env, args=["--bind", "0.0.0.0"],
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
        uri = "ws://%s:%d" % (ta.HOST_IP, cls.m.port)
        for ns in sorted(ts.NODES):
            cls.agents[ns] = ta.AgentProc(cls.tmp, ns, ns, {
                "KONTENA_URI": uri,
                "KONTENA_TOKEN": body["token"],
                "DOCKER_HOST": "unix://" + ts.sock(ns),
                "KONTENA_NODE_NAME": ns,
                "KONTENA_PODS_INTERVAL": "2",
                "KONTENA_NODE_UPDATE_INTERVAL": "2",
                "LOG_LEVEL": "debug",
            }).start()
        deadline = time.monotonic() + 30
        while True:
            st, _, nodes = cls.m.req("GET", "/v1/grids/%s/nodes" % GRID, token=cls.token)
            online = [n["name"] for n in nodes.get("nodes", []) if n.get("status") == "online"]
            if len(online) == len(ts.NODES):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("nodes not online: %r\n%s" % (nodes, cls.logs()))
            time.sleep(POLL)

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
            reports = ["agent %s:\n%s" % (a.label, a.log()[-4000:])
                       for a in cls.agents.values()
                       if any(mk in a.log() for mk in kh.Master.SANITIZER_MARKS)]
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
                    sys.stderr.write("[test_vault] kept %s\n" % cls.tmp)
                if getattr(cls, "lock", None) is not None:
                    cls.lock.close()
            if reports:
                raise AssertionError("sanitizer reports: " + "\n".join(reports))

    @classmethod
    def logs(cls):
        parts = [a.describe() for a in cls.agents.values()]
        if cls.m is not None:
            parts.append(cls.m.describe())
        return "\n".join(parts)

    def wait_for(self, what, fn, timeout):
        deadline = time.monotonic() + timeout
        while True:
            last = fn()
            if last:
                return last
            if time.monotonic() >= deadline:
                break
            time.sleep(POLL)
        desc = what() if callable(what) else what
        self.fail("%s: not within %.0fs\n%s" % (desc, timeout, self.logs()))

    def container(self, name):
        """(node, inspect) of the one running container of service name."""
        where = ts.running_placement(name)
        if len(where) != 1:
            return None
        (cname, (ns,)), = where.items()
        info = ts.engine_inspect(ns, cname)
        return (ns, info) if info and info["State"]["Running"] else None

    def env_value(self, name, var):
        got = self.container(name)
        return ts.env_of(got[1]).get(var) if got else None

    def wait_env(self, name, var, want, timeout):
        return self.wait_for(
            lambda: "%s=%r in the container of %s (now %r)" % (
                var, want, name, self.env_value(name, var)),
            lambda: self.env_value(name, var) == want, timeout)

    def test_secret_delivery_update_and_restart(self):
        v1, v2, v3 = marker("pod1"), marker("pod2"), marker("pod3")
        other = marker("other")
        self.cli("vault", "write", "DB_PASS", v1)
        self.cli("vault", "write", "EXTRA", other)
        self.addCleanup(self.home.run, "service", "rm", "--force", "sec")
        self.cli("service", "create", "sec", "busybox", "--cmd", "sleep 3600",
                 "--stop-timeout", "1s",
                 "--secret", "DB_PASS:DB_PASSWORD",
                 "--secret", "DB_PASS:BOTH", "--secret", "EXTRA:BOTH:env")
        cp = self.home.run("service", "deploy", "sec", "--timeout", "60", timeout=90)
        self.assertEqual(cp.returncode, 0, kh.describe_run(cp) + self.logs())
        self.wait_env("sec", "DB_PASSWORD", v1, 30)
        ns, info = self.container("sec")
        env = ts.env_of(info)
        self.assertEqual(env.get("BOTH"), v1 + "\n" + other)  # same name: joined
        first_id = info["Id"]
        labels = info["Config"]["Labels"]
        self.assertEqual(labels.get("io.kontena.container.secret_env"),
                         "DB_PASSWORD,BOTH")
        self.assertNotIn(v1, json.dumps(labels))

        # the master's record of the container holds neither value nor name
        def stored():
            st, body = self.rest("GET", "/v1/services/%s/null/sec/containers" % GRID)
            cs = body.get("containers") if isinstance(body, dict) else None
            return cs if st == 200 and cs and cs[0].get("env") else None
        cs = self.wait_for("the stored container of sec", stored, 20)
        text = json.dumps(cs)
        self.assertNotIn(v1, text)
        self.assertNotIn(other, text)
        self.assertFalse([e for e in cs[0]["env"] if e.split("=")[0] in
                          ("DB_PASSWORD", "BOTH")], cs[0]["env"])
        self.assertNotIn("io.kontena.container.secrets_rev", text)
        self.assertTrue(any(e.startswith("KONTENA_SERVICE_NAME=") for e in cs[0]["env"]),
                        cs[0]["env"])

        # a new value reaches the running service without a deploy
        t0 = time.monotonic()
        self.cli("vault", "update", "DB_PASS", v2)
        self.wait_env("sec", "DB_PASSWORD", v2, 45)
        sys.stderr.write("[test_vault] vault update reached the container in "
                         "%.1fs\n" % (time.monotonic() - t0))
        ns, info = self.container("sec")
        self.assertNotEqual(info["Id"], first_id)
        self.assertEqual(ts.env_of(info).get("BOTH"), v2 + "\n" + other)

        # restart runs the current value (#651)
        self.cli("vault", "update", "DB_PASS", v3)
        self.cli("service", "restart", "sec")
        self.wait_env("sec", "DB_PASSWORD", v3, 45)
        ns, info = self.container("sec")
        before, cid = info["State"]["StartedAt"], info["Id"]
        time.sleep(1.1)
        # with the secrets unchanged, a restart is a stop and a start of
        # the same container
        self.cli("service", "restart", "sec")
        self.wait_for("sec restarted", lambda: self.container("sec") and
                      self.container("sec")[1]["State"]["StartedAt"] != before, 30)
        ns, info = self.container("sec")
        self.assertEqual(info["Id"], cid)
        self.assertEqual(ts.env_of(info).get("DB_PASSWORD"), v3)

        # no value in any log line of master or agents
        logs = self.m.logs() + "".join(a.log() for a in self.agents.values())
        for v in (v1, v2, v3, other):
            self.assertNotIn(v, logs)


if __name__ == "__main__":
    kh.main()
