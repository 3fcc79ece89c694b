#!/usr/bin/env python3
"""Checks the install files in deploy/ with what can check them on a
machine without Docker or systemd as PID 1:

- the Compose files and the Container Linux cloud-config parse as YAML
  (Debian's python3-yaml, run by /usr/bin/python3), have the shape the
  docs describe, and use only environment variables the master reads;
- the systemd unit passes `systemd-analyze verify` with its ExecStart
  pointed at the built binary, and its env file names only known
  variables;
- the nginx configuration passes `nginx -t` with a throwaway certificate
  and an upstream of local masters;
- the Dockerfile's runtime packages provide every shared library the
  built kontena-master links (ldd + dpkg -S), and the paths it copies
  exist in the build.

Run by ctest (KONTENA_BUILD_DIR / KONTENA_SOURCE_DIR set) or by hand:
python3 tests/integration/test_deploy_files.py
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kontena_harness as kh  # noqa: E402

SRC = kh.SOURCE_DIR
DEPLOY = os.path.join(SRC, "deploy")
SYS_PYTHON = "/usr/bin/python3"


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def master_variables():
    """Every environment variable the master's config table reads."""
    text = read(os.path.join(SRC, "src", "master", "config.c"))
    names = set(re.findall(r'\{"([A-Z][A-Z0-9_]+)",', text))
    names |= set(re.findall(r'"([A-Z][A-Z0-9_]+)"', text))
    return names


def load_yaml(path):
    """The file as JSON-able data, parsed by PyYAML under Debian's python."""
    code = ("import json,sys,yaml\n"
            "print(json.dumps(yaml.safe_load(open(sys.argv[1]))))\n")
    cp = subprocess.run([SYS_PYTHON, "-c", code, path], stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, universal_newlines=True, timeout=30)
    if cp.returncode != 0:
        raise AssertionError("%s is not valid YAML: %s" % (path, cp.stderr.strip()))
    return json.loads(cp.stdout)


def env_names(entries):
    out = []
    for e in entries:
        name = e.split("=", 1)[0].strip()
        if name:
            out.append(name)
    return out


class TestDeployFiles(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        kh.require_binary(kh.MASTER_BIN)
        cls.known = master_variables()
        # sanity of the extraction itself
        for v in ("VAULT_KEY", "PORT", "KONTENA_DATA_DIR", "KONTENA_DATABASE_URL"):
            if v not in cls.known:
                raise RuntimeError("config.c no longer names %s?" % v)

    def assertKnown(self, names, where):
        unknown = sorted(set(names) - self.known - {"POSTGRES_USER", "POSTGRES_DB",
                                                    "POSTGRES_PASSWORD"})
        self.assertEqual(unknown, [], "%s sets variables the master does not read"
                         % where)

    def test_compose_single(self):
        doc = load_yaml(os.path.join(DEPLOY, "docker-compose.yml"))
        self.assertEqual(sorted(doc["services"]), ["master"])
        m = doc["services"]["master"]
        self.assertIn("80:9292", m["ports"])
        names = env_names(m["environment"])
        for v in ("RACK_ENV", "VAULT_KEY", "VAULT_IV", "INITIAL_ADMIN_CODE"):
            self.assertIn(v, names)
        self.assertKnown(names, "docker-compose.yml")
        self.assertTrue(os.path.exists(os.path.join(DEPLOY, m["build"]["dockerfile"]
                                                    .replace("deploy/", ""))))

    def test_compose_mongodb(self):
        # The seed's own shape: the master on MongoDB (a replica set).
        doc = load_yaml(os.path.join(DEPLOY, "docker-compose.mongodb.yml"))
        self.assertEqual(sorted(doc["services"]), ["master", "mongodb"])
        m = doc["services"]["master"]
        self.assertIn("80:9292", m["ports"])
        env = dict(e.split("=", 1) for e in m["environment"])
        self.assertKnown(env.keys(), "docker-compose.mongodb.yml")
        self.assertRegex(env["MONGODB_URI"],
                         r"^mongodb://mongodb:27017/kontena_master\?replicaSet=rs0$")
        mongo = doc["services"]["mongodb"]
        self.assertIn("--replSet", mongo["command"])
        self.assertIn("rs0", mongo["command"])
        self.assertIn("rs.initiate", " ".join(mongo["healthcheck"]["test"]))
        self.assertEqual(m["depends_on"]["mongodb"]["condition"], "service_healthy")

    def test_compose_ha(self):
        doc = load_yaml(os.path.join(DEPLOY, "docker-compose.ha.yml"))
        svcs = doc["services"]
        masters = [n for n in svcs if n.startswith("master")]
        self.assertGreaterEqual(len(masters), 2)
        urls = set()
        keys = set()
        for n in masters:
            env = dict(e.split("=", 1) for e in svcs[n]["environment"])
            self.assertKnown(env.keys(), "docker-compose.ha.yml " + n)
            urls.add(env["KONTENA_DATABASE_URL"])
            keys.add(env["VAULT_KEY"])
        self.assertEqual(len(urls), 1, "every master on the same database")
        self.assertEqual(len(keys), 1, "every master with the same VAULT_KEY")
        self.assertTrue(next(iter(urls)).startswith("postgres://"))
        self.assertIn("nginx", svcs)
        mounts = " ".join(svcs["nginx"]["volumes"])
        for f in ("kontena.conf", "upstream-compose.conf"):
            self.assertIn(f, mounts)
            self.assertTrue(os.path.exists(os.path.join(DEPLOY, "nginx", f)))
        upstream = read(os.path.join(DEPLOY, "nginx", "upstream-compose.conf"))
        for n in masters:
            self.assertIn("server %s:9292" % n, upstream)

    def test_cloud_config(self):
        path = os.path.join(DEPLOY, "container-linux", "cloud-config.yml")
        self.assertTrue(read(path).startswith("#cloud-config\n"))
        doc = load_yaml(path)
        units = doc["coreos"]["units"]
        self.assertEqual(units[0]["name"], "kontena-master.service")
        env = doc["write_files"][0]["content"]
        names = [l.split("=", 1)[0] for l in env.splitlines()
                 if l and not l.lstrip().startswith("#")]
        self.assertKnown(names, "cloud-config.yml")
        self.assertIn("-p 80:9292", units[0]["content"])

    def test_systemd_unit(self):
        if shutil.which("systemd-analyze") is None:
            self.skipTest("systemd-analyze not installed")
        unit = read(os.path.join(DEPLOY, "systemd", "kontena-master.service"))
        envfile = os.path.join(DEPLOY, "systemd", "kontena-master.env")
        names = [l.split("=", 1)[0] for l in read(envfile).splitlines()
                 if l and not l.startswith("#")]
        names += [l.lstrip("#").split("=", 1)[0] for l in read(envfile).splitlines()
                  if re.match(r"#[A-Z_]+=", l)]
        self.assertKnown(names, "kontena-master.env")
        self.assertIn("ExecStart=/usr/local/bin/kontena-master\n", unit)
        tmp = tempfile.mkdtemp(prefix="kontena-unit-")
        try:
            local = (unit.replace("/usr/local/bin/kontena-master", kh.MASTER_BIN)
                     .replace("/etc/kontena/master.env", envfile)
                     .replace("User=kontena", "User=root")
                     .replace("Group=kontena", "Group=root"))
            path = os.path.join(tmp, "kontena-master.service")
            with open(path, "w") as f:
                f.write(local)
            cp = subprocess.run(["systemd-analyze", "verify", path],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                universal_newlines=True, timeout=60)
            self.assertEqual(cp.returncode, 0, cp.stdout)
            self.assertNotIn("Unknown key", cp.stdout)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def test_nginx_config(self):
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        if not os.path.exists(nginx):
            self.skipTest("nginx not installed")
        tmp = tempfile.mkdtemp(prefix="kontena-nginx-")
        try:
            os.makedirs(os.path.join(tmp, "tls"))
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                            "-days", "1", "-subj", "/CN=localhost",
                            "-keyout", os.path.join(tmp, "tls", "server.key"),
                            "-out", os.path.join(tmp, "tls", "server.crt")],
                           check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=60)
            with open(os.path.join(tmp, "upstream.conf"), "w") as f:
                f.write("upstream kontena_masters {\n"
                        "    server 127.0.0.1:9292;\n    keepalive 8;\n}\n")
            site = (read(os.path.join(DEPLOY, "nginx", "kontena.conf"))
                    .replace("/etc/nginx/kontena-upstream.conf",
                             os.path.join(tmp, "upstream.conf"))
                    .replace("/etc/nginx/tls", os.path.join(tmp, "tls"))
                    .replace("listen 80;", "listen 127.0.0.1:18080;")
                    .replace("listen 443 ", "listen 127.0.0.1:18443 ")
                    .replace("listen [::]:80;", "")
                    .replace("listen [::]:443 ssl http2;", ""))
            conf = os.path.join(tmp, "nginx.conf")
            with open(conf, "w") as f:
                f.write("pid %s/nginx.pid;\nerror_log %s/error.log;\n"
                        "events {}\nhttp {\n  access_log off;\n%s\n}\n"
                        % (tmp, tmp, site))
            cp = subprocess.run([nginx, "-t", "-p", tmp, "-c", conf],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                universal_newlines=True, timeout=60)
            self.assertEqual(cp.returncode, 0, cp.stdout)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def test_dockerfile_runtime_libraries(self):
        text = read(os.path.join(DEPLOY, "Dockerfile"))
        m = re.search(r"--no-install-recommends \\\n(.*?)&&", text, re.S)
        self.assertIsNotNone(m, "runtime apt-get install line not found")
        pkgs = set(m.group(1).replace("\\", " ").split())
        cp = subprocess.run(["ldd", kh.MASTER_BIN], stdout=subprocess.PIPE,
                            universal_newlines=True, timeout=30, check=True)
        if "libasan" in cp.stdout:
            self.skipTest("a sanitizer build links its runtime's libraries; the "
                          "Dockerfile's build has none (the plain suite checks this)")
        missing = []
        for line in cp.stdout.splitlines():
            mm = re.search(r"=> (/\S+)", line)
            if not mm or "libasan" in line or "libubsan" in line:
                continue
            real = os.path.realpath(mm.group(1))
            owner = None
            for cand in (mm.group(1), real):
                q = subprocess.run(["dpkg", "-S", cand], stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL, universal_newlines=True)
                if q.returncode == 0:
                    owner = q.stdout.split(":", 1)[0]
                    break
            if owner is None:
                continue  # not from a package (cannot happen on Debian)
            if owner in ("libc6", "libgcc-s1") or owner in pkgs:
                continue
            missing.append("%s (%s)" % (mm.group(1), owner))
        # Libraries pulled in by the listed ones are installed with them;
        # anything else must be listed.
        deps = set()
        for p in pkgs:
            q = subprocess.run(["apt-cache", "depends", "--recurse", "--no-recommends",
                                "--no-suggests", "--no-conflicts", "--no-breaks",
                                "--no-replaces", "--no-enhances", p],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               universal_newlines=True, timeout=60)
            deps |= {l.strip().split(":")[0] for l in q.stdout.splitlines()
                     if l and not l.startswith(" ")}
        missing = [x for x in missing if x.split("(")[1].rstrip(")").split(":")[0]
                   not in deps]
        self.assertEqual(missing, [], "libraries not provided by the Dockerfile's "
                         "runtime packages")
        for path in re.findall(r"COPY --from=build (.*?) /usr/local/bin/", text):
            for p in path.split():
                name = os.path.basename(p)
                self.assertTrue(os.path.exists(os.path.join(kh.BUILD_DIR, name)),
                                "the Dockerfile copies %s, which the build does not "
                                "make" % name)


if __name__ == "__main__":
    kh.main()
