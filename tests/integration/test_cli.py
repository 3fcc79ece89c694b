#!/usr/bin/env python3
"""Integration tests of the `kontena` CLI driven as a user against a real
kontena-master. Every CLI run gets KONTENA_CONFIG=<tmp>/client.json and
HOME=<tmp> (see kontena_harness.CliHome).

Run by ctest or by hand: python3 tests/integration/test_cli.py [-k pattern]
"""

import json
import os
import stat
import sys
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kontena_harness as kh  # noqa: E402


class CliCase(unittest.TestCase):
    """One master and one logged-in CLI home per class."""

    @classmethod
    def setUpClass(cls):
        kh.require_binary(kh.CLI_BIN, skip=True)
        cls.m = kh.Master()
        cls.addClassCleanup(cls.m.cleanup)
        cls.m.start()
        if cls.m.admin_code is None:
            raise RuntimeError("no admin code printed: " + cls.m.describe())
        cls.home = kh.CliHome()
        cls.addClassCleanup(cls.home.cleanup)
        cls.login = cls.home.run("master", "login", "--code", cls.m.admin_code, cls.m.url)
        if cls.login.returncode != 0:
            raise RuntimeError("kontena master login failed: " + kh.describe_run(cls.login))

    def cli(self, *args, env=None, home=None):
        return (home or self.home).run(*args, env=env)

    def ok(self, *args, env=None, home=None):
        cp = self.cli(*args, env=env, home=home)
        self.assertEqual(cp.returncode, 0, "kontena %s: %s" % (" ".join(args),
                                                              kh.describe_run(cp)))
        return cp

    def fails(self, *args, env=None, home=None, code=None):
        cp = self.cli(*args, env=env, home=home)
        if code is None:
            self.assertNotEqual(cp.returncode, 0, "kontena %s should fail: %s"
                                % (" ".join(args), kh.describe_run(cp)))
        else:
            self.assertEqual(cp.returncode, code, "kontena %s: %s"
                             % (" ".join(args), kh.describe_run(cp)))
        self.assertTrue(cp.stderr.strip(), "no error message on stderr: %s"
                        % kh.describe_run(cp))
        return cp

    def token(self):
        return self.home.read_config()["servers"][0]["token"]

    def api(self, method, path, body=None):
        return self.m.req(method, path, body, token=self.token())


class TestCliLogin(CliCase):

    def test_login_writes_config(self):
        cfg_path = self.home.config
        self.assertTrue(os.path.exists(cfg_path), "no config file after login")
        mode = stat.S_IMODE(os.stat(cfg_path).st_mode)
        self.assertEqual(mode, 0o600, "config mode is %o" % mode)
        cfg = self.home.read_config()
        self.assertIsInstance(cfg.get("servers"), list)
        self.assertTrue(cfg["servers"], cfg)
        srv = cfg["servers"][0]
        self.assertEqual(srv.get("url"), self.m.url)
        self.assertRegex(srv.get("token") or "", kh.HEX64_RE)
        self.assertEqual(srv.get("username"), "admin")
        self.assertTrue(srv.get("name"))
        self.assertEqual(cfg.get("current_server"), srv["name"])
        # The stored token is a real one ...
        st, _, user = self.m.req("GET", "/v1/user", token=srv["token"])
        self.assertEqual(st, 200, user)
        self.assertEqual(user["email"], "admin")
        # ... and the login was confirmed, so the code is spent (#1460).
        self.assertEqual(self.m.exchange_code(self.m.admin_code)[0], 404)
        self.assertIn("admin", self.login.stdout)

    def test_whoami(self):
        cp = self.ok("whoami")
        self.assertIn("admin", cp.stdout)
        self.assertIn(self.m.url, cp.stdout)

    def test_master_ls(self):
        name = self.home.read_config()["servers"][0]["name"]
        cp = self.ok("master", "ls")
        self.assertIn(name, cp.stdout)
        self.assertIn(self.m.url, cp.stdout)
        cp = self.ok("master", "ls", "-o", "json")
        rows = json.loads(cp.stdout)
        self.assertEqual([(r["name"], r["url"], r["current"]) for r in rows],
                         [(name, self.m.url, True)])

    def test_master_use(self):
        name = self.home.read_config()["servers"][0]["name"]
        cp = self.ok("master", "use", name)
        self.assertIn(name, cp.stdout)
        self.assertEqual(self.home.read_config()["current_server"], name)
        self.fails("master", "use", "no-such-master")
        self.assertEqual(self.home.read_config()["current_server"], name)

    def test_login_with_wrong_code(self):
        home = kh.CliHome()
        self.addCleanup(home.cleanup)
        cp = self.fails("master", "login", "--code", "000000000000", self.m.url, home=home)
        self.assertFalse(os.path.exists(home.config),
                         "a failed login wrote a config: %s" % kh.describe_run(cp))


class TestCliGrids(CliCase):

    def test_grid_lifecycle(self):
        cp = self.ok("grid", "create", "test1")
        self.assertIn("test1", cp.stdout)
        self.assertEqual(self.home.read_config()["servers"][0].get("grid"), "test1",
                         "grid create should select the new grid")
        st, _, g = self.api("GET", "/v1/grids/test1")
        self.assertEqual(st, 200, g)

        cp = self.ok("grid", "ls")
        self.assertIn("test1", cp.stdout.split())

        cp = self.ok("grid", "show", "test1")
        self.assertIn("test1", cp.stdout)
        self.assertIn(g["token"], cp.stdout, "grid show does not show the token")

        cp = self.ok("grid", "show", "test1", "-o", "json")
        shown = json.loads(cp.stdout)
        self.assertEqual(shown["name"], "test1")
        self.assertEqual(shown["token"], g["token"])

        self.ok("grid", "use", "test1")
        self.assertEqual(stat.S_IMODE(os.stat(self.home.config).st_mode), 0o600,
                         "config mode changed by a save")
        cp = self.ok("grid", "current")
        self.assertIn("test1", cp.stdout)
        cp = self.ok("grid", "current", "--name")
        self.assertEqual(cp.stdout.strip(), "test1")

        self.ok("grid", "update", "test1", "--default-affinity", "label==az=a")
        cp = self.ok("grid", "show", "test1")
        self.assertIn("label==az=a", cp.stdout)
        st, _, g2 = self.api("GET", "/v1/grids/test1")
        self.assertEqual(g2["default_affinity"], ["label==az=a"])

        cp = self.ok("grid", "rm", "test1", "--force")
        cp = self.ok("grid", "ls")
        self.assertNotIn("test1", cp.stdout)
        self.assertEqual(self.api("GET", "/v1/grids/test1")[0], 404)

    def test_grid_create_bad_name(self):
        before = self.api("GET", "/v1/grids")[2]["grids"]
        cp = self.fails("grid", "create", "bad name!")
        self.assertIn("name", cp.stderr)
        self.assertEqual(self.api("GET", "/v1/grids")[2]["grids"], before,
                         "a failed create left a grid")

    def test_grid_create_json_and_duplicate(self):
        cp = self.ok("grid", "create", "test2", "-o", "json")
        g = json.loads(cp.stdout)
        self.assertEqual(g["name"], "test2")
        self.assertEqual(len(g["token"]), 88)
        cp = self.fails("grid", "create", "test2")
        self.assertIn("name", cp.stderr)
        self.ok("grid", "rm", "test2", "--force")

    def test_grid_rm_needs_force_without_tty(self):
        self.ok("grid", "create", "keepme")
        self.addCleanup(self.cli, "grid", "rm", "keepme", "--force")
        self.fails("grid", "rm", "keepme")
        self.assertEqual(self.api("GET", "/v1/grids/keepme")[0], 200,
                         "grid removed without --force")

    def test_grid_show_missing(self):
        cp = self.fails("grid", "show", "nosuch")
        self.assertIn("nosuch", cp.stderr)


class TestCliWithoutConfig(CliCase):

    def test_no_login(self):
        home = kh.CliHome()
        self.addCleanup(home.cleanup)
        cp = self.fails("grid", "ls", home=home)
        self.assertIn("login", cp.stderr, "message should say how to log in")
        self.assertEqual(cp.stdout.strip(), "")
        self.assertFalse(os.path.exists(home.config))

    def test_env_overrides(self):
        st, _, g = self.api("POST", "/v1/grids", {"name": "envgrid"})
        self.assertEqual(st, 201, g)
        self.addCleanup(self.api, "DELETE", "/v1/grids/envgrid")
        home = kh.CliHome()
        self.addCleanup(home.cleanup)
        env = {"KONTENA_URL": self.m.url, "KONTENA_TOKEN": self.token()}
        cp = self.ok("grid", "ls", env=env, home=home)
        self.assertIn("envgrid", cp.stdout)
        cp = self.ok("whoami", env=env, home=home)
        self.assertIn("admin", cp.stdout)
        cp = self.ok("grid", "show", "envgrid", "-o", "json", env=env, home=home)
        self.assertEqual(json.loads(cp.stdout)["token"], g["token"])
        self.assertFalse(os.path.exists(home.config),
                         "env overrides must not create a config file")
        self.assertEqual([f for f in os.listdir(home.dir) if "kontena" in f], [],
                         "files left in HOME: %r" % os.listdir(home.dir))
        # A bad token from the environment is refused with a clear message.
        bad = {"KONTENA_URL": self.m.url, "KONTENA_TOKEN": "f" * 64}
        cp = self.fails("grid", "ls", env=bad, home=home)
        self.assertIn("token", cp.stderr.lower())
        self.assertFalse(os.path.exists(home.config))

    def test_env_overrides_do_not_touch_existing_config(self):
        before = self.home.config_text()
        env = {"KONTENA_URL": self.m.url, "KONTENA_TOKEN": self.token()}
        self.ok("grid", "ls", env=env)
        self.assertEqual(self.home.config_text(), before)

    def test_unknown_command(self):
        cp = self.fails("frobnicate", code=2)
        self.assertIn("frobnicate", cp.stderr)
        self.fails("grid", "frobnicate", code=2)
        self.fails("grid", "create", code=2)          # missing NAME
        self.fails("grid", "ls", "--no-such-flag", code=2)


if __name__ == "__main__":
    kh.main()
