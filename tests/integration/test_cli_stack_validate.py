#!/usr/bin/env python3
"""`kontena stack validate` run as a user would, on the stack files in
tests/integration/stacks/: the resolved YAML (and -o json) of good files,
and for bad ones every error with its file, line and key, and exit 1.
No master is needed: validate reads files only (and the grid name from
KONTENA_GRID).

Run by ctest or by hand: python3 tests/integration/test_cli_stack_validate.py
"""

import json
import os
import re
import sys
import time
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kontena_harness as kh  # noqa: E402

STACKS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "stacks")


def fixture(name):
    return os.path.join(STACKS, name)


class StackValidate(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        kh.require_binary(kh.CLI_BIN, skip=True)
        cls.home = kh.CliHome()
        cls.addClassCleanup(cls.home.cleanup)

    def run_cli(self, *args, env=None, stdin_data=""):
        extra = {"KONTENA_GRID": "prod"}
        extra.update(env or {})
        return self.home.run("stack", "validate", *args, env=extra,
                             stdin_data=stdin_data)

    def ok(self, *args, env=None):
        cp = self.run_cli(*args, env=env)
        self.assertEqual(cp.returncode, 0, kh.describe_run(cp))
        self.assertEqual(cp.stderr, "", kh.describe_run(cp))
        return cp.stdout

    def ok_json(self, *args, env=None):
        return json.loads(self.ok(*args, "-o", "json", env=env))

    def fails(self, *args, env=None, stdin_data=""):
        cp = self.run_cli(*args, env=env, stdin_data=stdin_data)
        self.assertEqual(cp.returncode, 1, kh.describe_run(cp))
        self.assertEqual(cp.stdout, "", kh.describe_run(cp))
        return cp.stderr

    def assertError(self, stderr, file, line, path, part):
        prefix = "error: %s:%d: %s: " % (fixture(file) if file else "", line,
                                         path)
        for l in stderr.splitlines():
            if l.startswith(prefix) and part in l:
                return
        self.fail("no error %r ... %r in:\n%s" % (prefix, part, stderr))

    # ---- good files ----

    def test_wordpress_yaml(self):
        out = self.ok(fixture("wordpress.yml"),
                      env={"WP_DB_PASSWORD": "hunter2"})
        for want in ("name: wordpress\n", "stack: acme/wordpress\n",
                     "version: 1.2.0\n", "expose: wordpress\n",
                     "  db_password: hunter2\n", "  wp_instances: 2\n",
                     "  instances: 2\n",
                     "  - WORDPRESS_DB_HOST=mysql.wordpress.prod.kontena.local\n",
                     "  - WORDPRESS_DB_PASSWORD=hunter2\n",
                     "  - PRICE=$5\n", "  - echo 'starting wordpress' && exec "
                     "apache2-foreground\n",
                     "  - name: mysql\n    alias: db\n",
                     "  memory: 268435456\n", "  stop_grace_period: 60\n",
                     "  - db-data:/var/lib/mysql\n",
                     "- name: db-data\n  external: db-data\n"):
            self.assertIn(want, out)
        self.assertNotIn("source:", out)
        # Fields the file does not set are not shown.
        self.assertNotIn("null", out.split("services:")[1])

    def test_wordpress_json_is_the_install_body(self):
        body = self.ok_json(fixture("wordpress.yml"), "-n", "blog")
        self.assertEqual(body["name"], "blog")
        self.assertEqual(body["stack"], "acme/wordpress")
        self.assertEqual(body["registry"], "file://")
        with open(fixture("wordpress.yml")) as f:
            self.assertEqual(body["source"], f.read())
        self.assertEqual(body["parent"], None)
        self.assertEqual(body["labels"], [])
        self.assertEqual(body["metadata"], {"description": "WordPress and MariaDB"})
        self.assertRegex(body["variables"]["db_password"], r"^[A-Za-z0-9]{20}$")
        svcs = {s["name"]: s for s in body["services"]}
        self.assertEqual(list(svcs), ["wordpress", "mysql"])
        wp = svcs["wordpress"]
        self.assertEqual(wp["ports"], [{"ip": "0.0.0.0", "protocol": "tcp",
                                        "node_port": 8080, "container_port": 80}])
        self.assertEqual(wp["deploy_opts"], {"wait_for_port": 80, "min_health": 0.5})
        self.assertEqual(wp["strategy"], "ha")
        self.assertIn("WORDPRESS_DB_HOST=mysql.blog.prod.kontena.local", wp["env"])
        self.assertEqual(wp["health_check"], {"protocol": "http", "port": 80, "uri": "/"})
        self.assertIsNone(wp["user"])  # unset fields go as null
        self.assertEqual(svcs["mysql"]["stateful"], True)
        self.assertEqual(body["volumes"], [{"name": "db-data", "external": "db-data"}])

    def test_values_and_overrides(self):
        body = self.ok_json(fixture("variables.yml"), "-v", "tag=1.36")
        self.assertEqual(body["variables"], {"replicas": 1, "mode": "safe",
                                             "tag": "1.36"})
        self.assertEqual(body["services"][0]["image"], "busybox:1.36")
        body = self.ok_json(fixture("variables.yml"), "--values-from",
                            fixture("values.yml"), "-v", "replicas=3")
        self.assertEqual(body["variables"], {"replicas": 3, "mode": "fast",
                                             "tag": "1.36"})
        app = body["services"][0]
        self.assertEqual(app["instances"], 3)
        self.assertEqual(app["env"], ["MODE=fast"])
        # -v wins over --values-from.
        body = self.ok_json(fixture("variables.yml"), "--values-from",
                            fixture("values.yml"), "-v", "mode=safe")
        self.assertEqual(body["variables"]["mode"], "safe")

    def test_variable_errors(self):
        err = self.fails(fixture("variables.yml"))
        self.assertError(err, "variables.yml", 12, "variables.tag",
                         "variable tag has no value: give it with -v tag=VALUE")
        err = self.fails(fixture("variables.yml"), "-v", "tag=x",
                         "-v", "replicas=9", "-v", "mode=turbo")
        self.assertError(err, "variables.yml", 3, "variables.replicas",
                         "out of range (1 to 3)")
        self.assertError(err, "variables.yml", 8, "variables.mode",
                         "'turbo' is not one of the options")
        cp = self.run_cli(fixture("variables.yml"), "-v", "no-equals")
        self.assertEqual(cp.returncode, 2, kh.describe_run(cp))
        self.assertIn("use NAME=VALUE", cp.stderr)
        err = self.fails(fixture("variables.yml"), "--values-from",
                         fixture("nope.yml"))
        self.assertIn("cannot read --values-from", err)

    def test_prompt_without_terminal(self):
        err = self.fails(fixture("prompt.yml"), stdin_data="ignored\n")
        self.assertError(err, "prompt.yml", 5,
                         "variables.admin_password.from.prompt",
                         "variable admin_password needs an answer to 'Admin "
                         "password' but stdin is not a terminal")
        body = self.ok_json(fixture("prompt.yml"), "-v", "admin_password=pw")
        self.assertEqual(body["services"][0]["env"], ["PASSWORD=pw"])

    def test_extends(self):
        body = self.ok_json(fixture("extends.yml"))
        app = body["services"][0]
        self.assertEqual(app["image"], "busybox:1.36")
        self.assertEqual(app["instances"], 2)
        self.assertEqual(app["env"], ["FROM=app", "KEEP=base"])

    def test_depends_prints_children_first(self):
        out = self.ok(fixture("parent.yml"))
        docs = out.split("---\n")
        docs = [d for d in docs if d.strip()]
        self.assertEqual(len(docs), 2, out)
        self.assertIn("name: app-cache\n", docs[0])
        self.assertIn("parent:\n  name: app\n", docs[0])
        self.assertIn("  size: 2\n", docs[0])
        self.assertIn("name: app\n", docs[1])
        self.assertIn("  - name: app-cache/db\n    alias: cache\n", docs[1])
        bodies = self.ok_json(fixture("parent.yml"), "-n", "shop")
        self.assertEqual([b["name"] for b in bodies], ["shop-cache", "shop"])
        self.assertEqual(bodies[0]["parent"], {"name": "shop"})

    # ---- bad files ----

    def test_every_error_with_line_and_key(self):
        err = self.fails(fixture("errors.yml"))
        self.assertError(err, "errors.yml", 5, "services.web.instances",
                         "must be a whole number from 0 to 10000, not 'many'")
        self.assertError(err, "errors.yml", 6, "services.web.colour",
                         "unknown key")
        self.assertError(err, "errors.yml", 8, "services.web.links",
                         "links to 'nothere', which is not a service")
        self.assertError(err, "errors.yml", 10, "services.web.environment.A",
                         "unknown variable 'UNDEFINED'")
        self.assertError(err, "errors.yml", 12, "services.web.deploy.strategy",
                         "must be ha, daemon or random")
        self.assertError(err, "errors.yml", 16, "services.b.links",
                         "links form a cycle: a -> b -> a")
        self.assertError(err, "errors.yml", 20, "services.noimage.ports[1]",
                         "invalid port '70000:80'")
        self.assertError(err, "errors.yml", 19, "services.noimage.image",
                         "is required")
        self.assertIn("has 8 problems", err)

    def test_bad_yaml(self):
        err = self.fails(fixture("badyaml.yml"))
        self.assertRegex(err, re.escape("error: %s:5: invalid YAML at column "
                                        % fixture("badyaml.yml")))

    def test_missing_stack_key(self):
        err = self.fails(fixture("nostack.yml"))
        self.assertError(err, "nostack.yml", 1, "stack", "is required")

    def test_missing_file(self):
        cp = self.run_cli(fixture("missing.yml"))
        self.assertEqual(cp.returncode, 1)
        self.assertIn("cannot read", cp.stderr)
        # No FILE: kontena.yml in the current directory (the CLI home).
        cp = self.run_cli()
        self.assertEqual(cp.returncode, 1)
        self.assertIn("kontena.yml", cp.stderr)

    def test_huge_file_refused_quickly(self):
        path = os.path.join(self.home.dir, "huge.yml")
        with open(path, "w") as f:
            f.write("stack: x\n" + "#" * (5 * 1000 * 1000))
        t0 = time.monotonic()
        cp = self.run_cli(path)
        self.assertLess(time.monotonic() - t0, 5)
        self.assertEqual(cp.returncode, 1, kh.describe_run(cp))
        self.assertIn("stack files are limited to 1048576 bytes", cp.stderr)

    def test_alias_bomb_refused(self):
        lines = ["stack: bomb", "x-0: &a0 [lol, lol, lol, lol, lol]"]
        for i in range(1, 12):
            lines.append("x-%d: &a%d [%s]" % (i, i, ", ".join(["*a%d" % (i - 1)] * 8)))
        lines += ["services:", "  web: {image: x}", ""]
        path = os.path.join(self.home.dir, "bomb.yml")
        with open(path, "w") as f:
            f.write("\n".join(lines))
        t0 = time.monotonic()
        cp = self.run_cli(path)
        self.assertLess(time.monotonic() - t0, 10)
        self.assertEqual(cp.returncode, 1, kh.describe_run(cp))
        self.assertIn("once aliases are expanded", cp.stderr)

    def test_no_grid(self):
        # Without a grid, ${GRID} says so; files that do not use it are fine.
        err = self.fails(fixture("wordpress.yml"), env={"KONTENA_GRID": None})
        self.assertError(err, "wordpress.yml", 23,
                         "services.wordpress.environment.WORDPRESS_DB_HOST",
                         "${GRID} is unknown: no current grid")
        self.ok(fixture("extends.yml"), env={"KONTENA_GRID": None})


if __name__ == "__main__":
    kh.main()
