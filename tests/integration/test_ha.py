#!/usr/bin/env python3
"""High availability end to end (issue 6, docs/ha.md): a throwaway
PostgreSQL cluster (tests/pg.sh), three kontena-master processes on one
database, nginx in front of them with TLS (a CA and a server certificate
made here) and the WebSocket upgrade of deploy/nginx/kontena.conf, two
real kontena-agent processes on Podman nodes (kha1 at 172.31.0.35, kha2
at 172.31.0.36) connecting to nginx with wss:// and verifying its
certificate, and the kontena CLI talking to nginx over https.

In order (the tests share the masters and build on each other):
 01 exactly one leader, all masters agree on it;
 02 a grid, a vault secret and a deployed service made through the load
    balancer are seen through every master, the secret is in the
    containers' env;
 03 kill -9 the leader: another master leads within 15 s, the agents
    that were on it reconnect through nginx, both nodes are online again,
    and then a node whose agent is killed has its instances rescheduled
    by the new leader;
 04 kill -9 a non-leader while writes go through nginx: every
    acknowledged write is there afterwards;
 05 a clean shutdown (SIGTERM) of the leader: the next leader within 2 s.

Run by ctest (KONTENA_BUILD_DIR / KONTENA_SOURCE_DIR set) or by hand as
root: python3 tests/integration/test_ha.py. KONTENA_KEEP_TMP=1 keeps logs.
"""

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kontena_harness as kh  # noqa: E402
import test_agents as ta  # noqa: E402
import test_services as ts  # noqa: E402

GRID = "hagrid"
NODES = {"kha1": 25, "kha2": 26}
N1, N2 = sorted(NODES)
CODE = "ha-initial-code-0123"
VAULT_KEY = "ha-" + "v" * 61
LEADER_GAP_GOAL = 15.0
CLEAN_GAP_GOAL = 2.0
MASTER_ENV = {
    "KONTENA_RECONCILE_INTERVAL": "2",
    "KONTENA_GRACE_HA": "5",
    "KONTENA_DEPLOY_INSTANCE_TIMEOUT": "60",
    "KONTENA_PING_INTERVAL": "2",
    "WEBSOCKET_TIMEOUT": "3",
    "KONTENA_TRUSTED_PROXIES": "127.0.0.1",
    "LOG_LEVEL": "debug",
}


def sock(ns):
    return "/run/%s/podman.sock" % ns


class _UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self._path)
        self.sock = s


def engine(ns, method, path, timeout=15):
    conn = _UnixHTTP(sock(ns), timeout)
    try:
        conn.request(method, "/v1.41" + path)
        resp = conn.getresponse()
        raw = resp.read().decode("utf-8", "replace")
        try:
            return resp.status, json.loads(raw) if raw else None
        except ValueError:
            return resp.status, raw
    finally:
        conn.close()


def grid_containers(ns, service=None):
    labels = ["io.kontena.grid.name=" + GRID]
    if service:
        labels.append("io.kontena.service.name=" + service)
    q = urllib.parse.quote(json.dumps({"label": labels}))
    st, body = engine(ns, "GET", "/containers/json?all=1&filters=" + q)
    if st != 200 or not isinstance(body, list):
        raise AssertionError("engine %s: %s %r" % (ns, st, body))
    return {c["Names"][0].lstrip("/"): c for c in body}


def running(service):
    out = {}
    for ns in NODES:
        for name, c in grid_containers(ns, service).items():
            if c.get("State") == "running":
                out[name] = ns
    return out


def remove_grid_containers():
    for ns in NODES:
        try:
            rows = grid_containers(ns)
        except Exception:  # noqa: BLE001 - engine down: nothing to clean
            continue
        for c in rows.values():
            engine(ns, "DELETE", "/containers/%s?force=1&v=1" % c["Id"], timeout=30)


def openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE, timeout=60)


def make_tls(d):
    """A CA and a server certificate for 127.0.0.1, 172.31.0.1, localhost."""
    ca_key, ca = os.path.join(d, "ca.key"), os.path.join(d, "ca.pem")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=kontena test CA", "-keyout", ca_key, "-out", ca)
    key, csr, crt = (os.path.join(d, n) for n in ("server.key", "server.csr",
                                                     "server.crt"))
    ext = os.path.join(d, "ext.cnf")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,IP:%s,DNS:localhost\n"
                "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\n" % ta.HOST_IP)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
            "-keyout", key, "-out", csr)
    openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
            "-days", "2", "-extfile", ext, "-out", crt)
    return ca


class Nginx:
    """nginx with deploy/nginx/kontena.conf in front of the masters."""

    def __init__(self, tmp, ports, tls_port):
        self.dir = os.path.join(tmp, "nginx")
        os.makedirs(os.path.join(self.dir, "tls"), exist_ok=True)
        self.ca = make_tls(os.path.join(self.dir, "tls"))
        self.tls_port = tls_port
        with open(os.path.join(self.dir, "upstream.conf"), "w") as f:
            f.write("upstream kontena_masters {\n%s    keepalive 8;\n}\n" % "".join(
                "    server 127.0.0.1:%d max_fails=1 fail_timeout=2s;\n" % p for p in ports))
        with open(os.path.join(kh.SOURCE_DIR, "deploy", "nginx", "kontena.conf")) as f:
            site = f.read()
        site = (site.replace("/etc/nginx/kontena-upstream.conf",
                             os.path.join(self.dir, "upstream.conf"))
                .replace("/etc/nginx/tls", os.path.join(self.dir, "tls"))
                .replace("listen 80;", "listen 127.0.0.1:%d;" % kh.free_port())
                .replace("listen [::]:80;", "")
                .replace("listen 443 ", "listen 0.0.0.0:%d " % tls_port)
                .replace("listen [::]:443 ssl http2;", ""))
        self.conf = os.path.join(self.dir, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write("user root;\ndaemon off;\npid %s/nginx.pid;\nerror_log %s/error.log info;\n"
                    "events {}\nhttp {\n  access_log %s/access.log;\n%s\n}\n"
                    % (self.dir, self.dir, self.dir, site))
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self.proc = subprocess.Popen([nginx, "-p", self.dir, "-c", self.conf],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", tls_port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("nginx did not listen: %s" % self.error_log())

    def error_log(self):
        try:
            with open(os.path.join(self.dir, "error.log")) as f:
                return f.read()[-3000:]
        except OSError:
            return ""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class TestHA(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        kh.require_binary(kh.MASTER_BIN)
        kh.require_binary(ta.AGENT_BIN)
        kh.require_binary(kh.CLI_BIN)
        if os.geteuid() != 0:
            raise RuntimeError("test_ha needs root (nodes, nginx as root)")
        ta.run_engine_script("up")
        for ns, idx in sorted(NODES.items()):
            ta.run_engine_script("node", ns, str(idx))
        cls.tmp = tempfile.mkdtemp(prefix="kontena-ha-")
        cls.masters, cls.agents = [], {}
        cls.nginx = cls.home = cls.pg = None
        try:
            cls._set_up()
        except BaseException:
            cls._tear_down()
            raise

    @classmethod
    def _set_up(cls):
        remove_grid_containers()
        cls.pg = kh.pg_start()
        os.environ.pop("KONTENA_TEST_DATABASE_URL", None)  # we pass it ourselves
        _, cls.db = kh.pg_new_database(cls.pg)
        env = dict(MASTER_ENV, KONTENA_DATABASE_URL=cls.db, VAULT_KEY=VAULT_KEY,
                   INITIAL_ADMIN_CODE=CODE)
        # Three masters started together on an empty database.
        for i in range(3):
            m = kh.Master(env=env,
                          workdir=os.path.join(cls.tmp, "master%d" % i))
            cls.masters.append(m)
        for m in cls.masters:
            m.start()
        cls.nginx = Nginx(cls.tmp, [m.port for m in cls.masters], kh.free_port())
        cls.lb = "https://127.0.0.1:%d" % cls.nginx.tls_port
        cls.home = kh.CliHome()
        certs = os.path.join(cls.home.dir, ".kontena", "certs")
        os.makedirs(certs, exist_ok=True)
        shutil.copy(cls.nginx.ca, os.path.join(certs, "127.0.0.1.pem"))
        for args in (("master", "login", "--code", CODE, cls.lb),
                     ("grid", "create", GRID), ("grid", "use", GRID)):
            cp = cls.home.run(*args)
            if cp.returncode != 0:
                raise RuntimeError("kontena %s: %s\n%s" % (" ".join(args),
                                                          kh.describe_run(cp), cls.logs()))
        cls.token = cls.home.read_config()["servers"][0]["token"]
        st, _, g = cls.masters[0].req("GET", "/v1/grids/" + GRID, token=cls.token)
        if st != 200:
            raise RuntimeError("grid: %s %r" % (st, g))
        uri = "wss://%s:%d" % (ta.HOST_IP, cls.nginx.tls_port)
        for ns in sorted(NODES):
            cls.agents[ns] = ta.AgentProc(cls.tmp, ns, ns, {
                "KONTENA_URI": uri,
                "KONTENA_TOKEN": g["token"],
                "DOCKER_HOST": "unix://" + sock(ns),
                "KONTENA_NODE_NAME": ns,
                "SSL_CERT_FILE": cls.nginx.ca,
                "KONTENA_PODS_INTERVAL": "2",
                "KONTENA_NODE_UPDATE_INTERVAL": "2",
                "LOG_LEVEL": "debug",
            }).start()
        for ns in NODES:
            cls.wait_online(ns, 40)

    @classmethod
    def tearDownClass(cls):
        cls._tear_down()

    @classmethod
    def _tear_down(cls):
        try:
            remove_grid_containers()
        finally:
            for a in cls.agents.values():
                try:
                    a.stop()
                except Exception:  # noqa: BLE001
                    a.kill()
            remove_grid_containers()
            if cls.nginx is not None:
                cls.nginx.stop()
            for m in cls.masters:
                try:
                    m.stop()
                except Exception:  # noqa: BLE001 - already killed
                    pass
                m.cleanup()
            if cls.home is not None:
                cls.home.cleanup()
            if cls.pg:
                kh.pg_stop(cls.pg)
            if os.environ.get("KONTENA_KEEP_TMP") != "1":
                shutil.rmtree(cls.tmp, ignore_errors=True)
            else:
                sys.stderr.write("[test_ha] kept %s\n" % cls.tmp)

    # -- helpers

    @classmethod
    def alive_masters(cls):
        return [m for m in cls.masters if m.alive()]

    @classmethod
    def logs(cls):
        parts = [a.describe() for a in cls.agents.values()]
        for i, m in enumerate(cls.masters):
            parts.append("master%d log (tail):\n%s" % (i, (m.stdout() + m.stderr())[-4000:]))
        if cls.nginx is not None:
            parts.append("nginx error log:\n" + cls.nginx.error_log())
        return "\n".join(parts)

    @classmethod
    def lb_req(cls, method, path, body=None):
        """A request through nginx (TLS verified against our CA)."""
        import ssl
        ctx = ssl.create_default_context(cafile=cls.nginx.ca)
        conn = http.client.HTTPSConnection("127.0.0.1", cls.nginx.tls_port, context=ctx,
                                           timeout=10)
        try:
            hdrs = {"Authorization": "Bearer " + cls.token, "Accept": "application/json"}
            data = None
            if body is not None:
                data = json.dumps(body).encode()
                hdrs["Content-Type"] = "application/json"
            conn.request(method, path, body=data, headers=hdrs)
            r = conn.getresponse()
            raw = r.read()
            return r.status, json.loads(raw) if raw else None
        finally:
            conn.close()

    @classmethod
    def nodes(cls, m=None):
        m = m or cls.alive_masters()[0]
        st, _, body = m.req("GET", "/v1/grids/%s/nodes" % GRID, token=cls.token)
        if st != 200:
            raise AssertionError("nodes: %s %r" % (st, body))
        return {n["name"]: n for n in body["nodes"]}

    @classmethod
    def wait_online(cls, name, timeout):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = cls.nodes().get(name)
            if last is not None and last.get("status") == "online":
                return last
            time.sleep(0.25)
        raise AssertionError("node %s not online in %.0fs: %s\n%s" % (
            name, timeout, json.dumps(last), cls.logs()))

    @classmethod
    def statuses(cls):
        out = {}
        for m in cls.alive_masters():
            st, _, body = m.req("GET", "/v1/master/status", token=cls.token)
            if st == 200:
                out[body["id"]] = (m, body)
        return out

    @classmethod
    def leader(cls, timeout=20):
        """(master, status) of the one leader all live masters agree on."""
        deadline = time.monotonic() + timeout
        while True:
            st = cls.statuses()
            leaders = [(m, b) for m, b in st.values() if b["leader"]]
            ids = {b["leader_id"] for _, b in st.values()}
            if len(leaders) == 1 and ids == {leaders[0][1]["id"]}:
                return leaders[0]
            if time.monotonic() > deadline:
                raise AssertionError("no agreed leader: %s" % json.dumps(
                    {k: v[1] for k, v in st.items()}))
            time.sleep(0.1)

    def wait_for(self, what, fn, timeout, interval=0.25):
        deadline = time.monotonic() + timeout
        while True:
            got = fn()
            if got:
                return got
            if time.monotonic() >= deadline:
                self.fail("%s: not within %.0fs\n%s" % (what() if callable(what) else what,
                                                        timeout, self.logs()))
            time.sleep(interval)

    def cli(self, *args, timeout=kh.CLI_TIMEOUT):
        cp = self.home.run(*args, timeout=timeout)
        self.assertEqual(cp.returncode, 0, "kontena %s: %s\n%s" % (
            " ".join(args), kh.describe_run(cp), self.logs()))
        return cp

    # -- the tests

    def test_01_one_leader(self):
        self.assertEqual(len(self.masters), 3)
        m, st = self.leader()
        for _, (other, body) in self.statuses().items():
            self.assertEqual(body["store"]["backend"], "postgresql")
            self.assertTrue(body["store"]["healthy"])
            self.assertEqual(body["leader_id"], st["id"])
        # The database was migrated once, with one admin.
        self.assertEqual(kh.pg_sql(self.db, "SELECT COUNT(*), COUNT(DISTINCT version) "
                                            "FROM schema_migrations").strip().split("|")[0],
                         kh.pg_sql(self.db, "SELECT COUNT(DISTINCT version) "
                                            "FROM schema_migrations").strip())
        self.assertEqual(kh.pg_sql(self.db, "SELECT COUNT(*) FROM users").strip(), "1")

    def test_02_writes_seen_by_all(self):
        self.cli("vault", "write", "HA_SECRET", "s3cr3t-ha")
        self.cli("service", "create", "web", "busybox", "--instances", "2",
                 "--cmd", "sleep 3600", "--secret", "HA_SECRET:HA_SECRET:env")
        self.cli("service", "deploy", "web", timeout=120)
        for m in self.masters:
            st, _, body = m.req("GET", "/v1/services/%s/null/web" % GRID, token=self.token)
            self.assertEqual(st, 200, body)
            st, _, body = m.req("GET", "/v1/secrets/%s/HA_SECRET" % GRID, token=self.token)
            self.assertEqual((st, body.get("value")), (200, "s3cr3t-ha"), body)
        where = self.wait_for(lambda: "web running twice: %s" % running("web"),
                              lambda: len(running("web")) == 2 and running("web"), 30)
        self.assertEqual(sorted(where.values()), [N1, N2])
        for name, ns in where.items():
            st, info = engine(ns, "GET", "/containers/%s/json" % name)
            self.assertIn("HA_SECRET=s3cr3t-ha", info["Config"]["Env"])

    def test_03_leader_killed(self):
        m, st = self.leader()
        runs = {ns: a.runs for ns, a in self.agents.items()}
        t0 = time.monotonic()
        m.kill()
        new_m, new_st = self.leader(timeout=LEADER_GAP_GOAL + 5)
        gap = time.monotonic() - t0
        sys.stderr.write("[test_ha] leader after SIGKILL in %.1fs\n" % gap)
        self.assertNotEqual(new_st["id"], st["id"])
        self.assertLess(gap, LEADER_GAP_GOAL)
        # Every node online again (those that were on the dead master
        # reconnected through nginx to another).
        for ns in NODES:
            self.wait_online(ns, 60)
        self.assertEqual(runs, {ns: a.runs for ns, a in self.agents.items()},
                         "agents restarted instead of reconnecting")
        # A node lost now is handled by the new leader: web's instance on
        # it moves to the other node.
        a = self.agents[N2]
        a.signal(signal.SIGKILL)
        a.wait_exit(5)
        try:
            self.wait_for(lambda: "web all on %s: %s" % (N1, running("web")),
                          lambda: sorted(grid_containers(N1, "web")) == ["web-1", "web-2"]
                          and all(c["State"] == "running"
                                  for c in grid_containers(N1, "web").values()), 60)
        finally:
            a.start()
        self.wait_online(N2, 60)
        # The dead master comes back as a follower: no leadership hop.
        m.start(port=m.port)
        again, again_st = self.leader()
        self.assertEqual(again_st["id"], new_st["id"])

    def test_04_non_leader_killed(self):
        lead, _ = self.leader()
        victim = [m for m in self.alive_masters() if m is not lead][0]
        acked = []
        for i in range(40):
            if i == 15:
                victim.kill()
            st, body = None, None
            try:
                st, body = self.lb_req("POST", "/v1/grids/%s/secrets" % GRID,
                                       {"name": "acked-%d" % i, "value": "v%d" % i})
            except OSError:
                pass
            if st == 201:
                acked.append(i)
        self.assertGreaterEqual(len(acked), 30, "nginx should retry the dead master")
        st, body = self.lb_req("GET", "/v1/grids/%s/secrets" % GRID)
        names = {s["name"] for s in body["secrets"]}
        missing = [i for i in acked if "acked-%d" % i not in names]
        self.assertEqual(missing, [], "acknowledged writes lost")
        self.leader()

    def test_05_clean_shutdown(self):
        m, st = self.leader()
        if len(self.alive_masters()) < 2:
            self.skipTest("needs two masters alive")
        t0 = time.monotonic()
        m.stop()
        new_m, new_st = self.leader(timeout=10)
        gap = time.monotonic() - t0
        sys.stderr.write("[test_ha] leader after SIGTERM in %.1fs\n" % gap)
        self.assertNotEqual(new_st["id"], st["id"])
        self.assertLess(gap, CLEAN_GAP_GOAL + 1.0)  # stop() itself waits for the exit


if __name__ == "__main__":
    kh.main()
