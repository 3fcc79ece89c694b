"""Shared helpers for the integration tests (Python 3 standard library only).

* Master: starts the real build/kontena-master on a temp data dir and a free
  port, waits for GET /v1/ping, captures stdout/stderr to files in the temp
  dir, parses the "Initial Admin Code: X" line, stops it (SIGTERM/SIGKILL)
  and restarts it on the same data dir.
* request(): one raw HTTP request -> (status, headers, body) where headers is
  a dict with lower-case names and body is parsed JSON when the answer is
  JSON (else text).
* run_cli(): runs build/kontena with a private KONTENA_CONFIG and HOME.
* PostgreSQL: when KONTENA_TEST_DATABASE_URL names a PostgreSQL server
  (tests/pg.sh prints one), every Master gets a fresh database on it
  (KONTENA_DATABASE_URL, with a VAULT_KEY unless the test sets its own)
  instead of the SQLite data dir; pg_start()/pg_stop() run such a server
  for a test module. Master.store_files() lists the files holding the
  stored data either way (for "no plaintext at rest" checks).

Environment: KONTENA_BUILD_DIR and KONTENA_SOURCE_DIR (set by ctest); they
default to ../../build and ../.. relative to this file.
"""

import atexit
import glob
import http.client
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.abspath(
    os.environ.get("KONTENA_SOURCE_DIR") or os.path.join(HERE, "..", ".."))
BUILD_DIR = os.path.abspath(
    os.environ.get("KONTENA_BUILD_DIR") or os.path.join(HERE, "..", "..", "build"))
MASTER_BIN = os.path.join(BUILD_DIR, "kontena-master")
CLI_BIN = os.path.join(BUILD_DIR, "kontena")

REQUEST_TIMEOUT = 10.0  # seconds, every HTTP request
START_TIMEOUT = 10.0  # seconds, master start until /v1/ping answers
CLI_TIMEOUT = 20.0  # seconds, every CLI run

CODE_RE = re.compile(r"Initial Admin Code: (\S+)")
HEX64_RE = re.compile(r"^[0-9a-f]{64}$")
HEX128_RE = re.compile(r"^[0-9a-f]{128}$")

# Settings a developer's shell may carry that would change what we test.
_SCRUB_PREFIXES = ("KONTENA_",)
_SCRUB_NAMES = {
    "PORT", "MONGODB_URI", "MONGOHQ_URL", "INITIAL_ADMIN_CODE", "VAULT_KEY",
    "VAULT_KEY_PREVIOUS",
    "VAULT_IV", "SERVER_NAME", "LOG_LEVEL", "DEBUG_RA", "RACK_ENV",
    "WEBSOCKET_TIMEOUT",
}


def clean_env(extra=None):
    """os.environ without settings that affect the master or the CLI."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(_SCRUB_PREFIXES) and k not in _SCRUB_NAMES}
    if extra:
        for k, v in extra.items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = v
    return env


def free_port():
    """A TCP port that was free a moment ago (bind to port 0)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def require_binary(path, skip=False):
    """A missing master is an error (a broken build must not pass as
    skipped); a missing CLI may be skipped while it is being written."""
    if os.access(path, os.X_OK):
        return
    if skip:
        raise unittest.SkipTest("missing feature: %s is not built yet "
                                "(build it with ninja -C %s)" % (path, BUILD_DIR))
    raise RuntimeError("%s is not built (KONTENA_BUILD_DIR=%s)" % (path, BUILD_DIR))


# ==== HTTP ====

def _decode(headers, raw):
    ctype = headers.get("content-type", "")
    text = raw.decode("utf-8", "replace")
    if "json" in ctype:
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def request(base, method, path, body=None, token=None, headers=None,
            timeout=REQUEST_TIMEOUT):
    """One HTTP request on a new connection.

    base is "http://127.0.0.1:PORT" (or a (host, port) tuple). body may be a
    dict/list (sent as JSON), str or bytes (sent as is). Returns (status,
    headers, body) with lower-case header names; body is parsed JSON when
    the answer says JSON, else text. Repeated headers are joined by ", ".
    """
    host, port = _host_port(base)
    hdrs = {}
    data = None
    if isinstance(body, (dict, list)):
        data = json.dumps(body).encode()
        hdrs["Content-Type"] = "application/json"
    elif isinstance(body, str):
        data = body.encode()
    elif isinstance(body, (bytes, bytearray)):
        data = bytes(body)
    if token is not None:
        hdrs["Authorization"] = "Bearer " + token
    if headers:
        hdrs.update(headers)
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        raw = resp.read()
        out = {}
        for k, v in resp.getheaders():
            k = k.lower()
            out[k] = out[k] + ", " + v if k in out else v
        return resp.status, out, _decode(out, raw)
    finally:
        conn.close()


def raw_exchange(base, data, timeout=REQUEST_TIMEOUT, read_limit=1 << 20):
    """Sends raw bytes on a new socket and reads the answer. Sending stops
    as soon as the server answers (e.g. an early 413), so that the answer
    is not lost to a reset. Reads until the peer closes or the answer's
    Content-Length is complete. Returns (status, headers, body), or
    (None, {}, raw_bytes) when no complete answer head arrived."""
    host, port = _host_port(base)
    s = socket.create_connection((host, port), timeout=timeout)
    buf = b""
    deadline = time.monotonic() + timeout
    try:
        s.setblocking(False)
        off = 0
        while off < len(data) and time.monotonic() < deadline:
            r, w, _ = select.select([s], [s], [], 0.5)
            if r:
                break  # an answer (or a close) before we finished sending
            if w:
                try:
                    off += s.send(data[off:off + 65536])
                except (BlockingIOError, InterruptedError):
                    pass
                except (BrokenPipeError, ConnectionResetError):
                    break
        while len(buf) < read_limit and time.monotonic() < deadline:
            r, _, _ = select.select([s], [], [], 0.5)
            if not r:
                continue
            try:
                chunk = s.recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            except ConnectionResetError:
                break
            if not chunk:
                break
            buf += chunk
            head, sep, rest = buf.partition(b"\r\n\r\n")
            if sep:
                m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                if m and len(rest) >= int(m.group(1)):
                    break
    finally:
        s.close()
    head, sep, rest = buf.partition(b"\r\n\r\n")
    if not sep:
        return None, {}, buf
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        k = k.strip().lower()
        hdrs[k] = hdrs[k] + ", " + v.strip() if k in hdrs else v.strip()
    return status, hdrs, _decode(hdrs, rest)


def http_head(method, path, headers):
    """A raw HTTP/1.1 request head (bytes) for raw_exchange()."""
    lines = ["%s %s HTTP/1.1" % (method, path), "Host: 127.0.0.1",
             "Connection: close"]
    for k, v in headers.items():
        lines.append("%s: %s" % (k, v))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _host_port(base):
    if isinstance(base, tuple):
        return base
    m = re.match(r"^https?://([^:/]+):(\d+)", base)
    if not m:
        raise ValueError("bad base url %r" % base)
    return m.group(1), int(m.group(2))


# ==== PostgreSQL (tests/pg.sh) ====

PG_SCRIPT = os.path.join(SOURCE_DIR, "tests", "pg.sh")


def pg_start():
    """Starts a throwaway PostgreSQL cluster; returns its URL and sets
    KONTENA_TEST_DATABASE_URL so that every Master uses it."""
    cp = subprocess.run(["bash", PG_SCRIPT, "start"], stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, universal_newlines=True,
                        timeout=120)
    if cp.returncode != 0:
        raise RuntimeError("tests/pg.sh start failed:\n" + cp.stderr)
    url = cp.stdout.strip()
    os.environ["KONTENA_TEST_DATABASE_URL"] = url
    return url


def pg_stop(url):
    os.environ.pop("KONTENA_TEST_DATABASE_URL", None)
    subprocess.run(["bash", PG_SCRIPT, "stop", url], timeout=120,
                   stdout=subprocess.DEVNULL)


def _psql():
    found = shutil.which("psql")
    if found:
        return found
    for d in sorted(os.listdir("/usr/lib/postgresql"), reverse=True):
        cand = os.path.join("/usr/lib/postgresql", d, "bin", "psql")
        if os.access(cand, os.X_OK):
            return cand
    raise RuntimeError("psql not found (install the postgresql package)")


def pg_sql(url, sql):
    """Runs sql with psql on the database at url; returns its output."""
    cp = subprocess.run([_psql(), "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1",
                         "-d", url, "-c", sql], stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, universal_newlines=True,
                        timeout=60)
    if cp.returncode != 0:
        raise RuntimeError("psql %r: %s" % (sql, cp.stderr))
    return cp.stdout


def pg_database_url(server, name):
    """server's URL with its database name replaced by name."""
    m = re.match(r"^(postgres(?:ql)?://[^/]*)/([^?]*)(.*)$", server)
    if not m:
        raise ValueError("cannot read the database name in %r" % server)
    return m.group(1) + "/" + name + m.group(3)


def pg_new_database(server):
    """Creates an empty database on server; returns (name, url)."""
    name = "it_" + os.urandom(8).hex()
    pg_sql(server, "CREATE DATABASE " + name)
    return name, pg_database_url(server, name)


def pg_drop_database(server, name):
    pg_sql(server, "DROP DATABASE IF EXISTS %s WITH (FORCE)" % name)


# ==== The master ====

class MasterError(Exception):
    pass


_LIVE = set()  # masters started by this process, killed at exit if left


@atexit.register
def _kill_leftovers():
    for m in list(_LIVE):
        try:
            m.cleanup()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


class Master:
    """One kontena-master process on a private data dir.

    m = Master(); m.start(); ... m.stop(); m.start()  # same data dir
    m.cleanup() stops it and removes the temp dir.
    """

    def __init__(self, env=None, args=None, workdir=None, code=None,
                 database_url=None):
        """database_url: share this PostgreSQL database (another master's
        m.database_url) instead of a fresh one."""
        require_binary(MASTER_BIN)
        self.own_workdir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(prefix="kontena-it-")
        self.data_dir = os.path.join(self.workdir, "data")
        os.makedirs(self.data_dir, exist_ok=True)
        self.pg_server = os.environ.get("KONTENA_TEST_DATABASE_URL") or None
        self.pg_name = None
        self.database_url = database_url
        self.store_env = {}
        self.db_env = {}  # only where the store is, for env replacements
        if self.pg_server and database_url is None:
            self.pg_name, self.database_url = pg_new_database(self.pg_server)
        if self.database_url:
            self.db_env = {"KONTENA_DATABASE_URL": self.database_url}
            self.store_env = dict(self.db_env)
            # Every master sharing a database must seal with one key; a
            # test that sets VAULT_KEY chooses the keys itself.
            if "VAULT_KEY" not in (env or {}):
                self.store_env["VAULT_KEY"] = "it-" + "k" * 61
        self.extra_env = dict(self.store_env)
        self.extra_env.update(env or {})
        self.extra_args = list(args or [])
        if code is not None:
            self.extra_env["INITIAL_ADMIN_CODE"] = code
        self.proc = None
        self.port = None
        self.runs = 0
        self.admin_code = None
        self.stdout_path = None
        self.stderr_path = None
        self._out = self._err = None

    # -- paths and logs

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def stdout(self):
        return _read(self.stdout_path)

    def stderr(self):
        return _read(self.stderr_path)

    def logs(self):
        """stdout and stderr of the current (or last) run."""
        return self.stdout() + self.stderr()

    def describe(self):
        return "master logs (%s):\n--- stdout\n%s\n--- stderr\n%s" % (
            self.workdir, self.stdout()[-3000:], self.stderr()[-3000:])

    # -- life cycle

    def start(self, timeout=START_TIMEOUT, port=None):
        """Starts the master and waits for GET /v1/ping. Keeps the port of
        a previous run unless told otherwise (a restart on the same port
        retries a little while the old socket goes away)."""
        if self.proc is not None and self.proc.poll() is None:
            raise MasterError("already running")
        attempts = 3
        for attempt in range(attempts):
            if port is not None:
                self.port = port
            elif self.port is None or attempt > 0:
                self.port = free_port()
            try:
                self._spawn(timeout)
                return self
            except MasterError as e:
                bind_problem = "listen" in self.stderr() or "in use" in self.stderr()
                if attempt == attempts - 1 or not bind_problem:
                    raise e
        return self

    def _spawn(self, timeout):
        self.runs += 1
        self.stdout_path = os.path.join(self.workdir, "stdout.%d.log" % self.runs)
        self.stderr_path = os.path.join(self.workdir, "stderr.%d.log" % self.runs)
        self._close_files()
        self._out = open(self.stdout_path, "wb")
        self._err = open(self.stderr_path, "wb")
        argv = [MASTER_BIN, "--port", str(self.port), "--bind", "127.0.0.1",
                "--data-dir", self.data_dir] + self.extra_args
        self.proc = subprocess.Popen(
            argv, stdout=self._out, stderr=self._err, stdin=subprocess.DEVNULL,
            env=clean_env(self.extra_env), cwd=self.workdir)
        _LIVE.add(self)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise MasterError("kontena-master exited with %s before "
                                  "answering ping; %s" % (self.proc.returncode,
                                                          self.describe()))
            try:
                st, _, body = request(self.url, "GET", "/v1/ping", timeout=1.0)
                if st == 200 and isinstance(body, dict) and body.get("message") == "pong":
                    break
            except (OSError, http.client.HTTPException):
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise MasterError("kontena-master did not answer /v1/ping "
                                  "within %.0fs; %s" % (timeout, self.describe()))
            time.sleep(0.05)
        m = CODE_RE.search(self.stdout())
        if m:
            self.admin_code = m.group(1)
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=5.0):
        """Sends sig and waits; returns the exit code (SIGKILL after
        timeout, then the code is negative)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        _LIVE.discard(self)
        self._close_files()
        self.check_sanitizers()
        return self.proc.returncode

    SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                       "runtime error:", "WARNING: ThreadSanitizer")

    def check_sanitizers(self):
        """Fails when a sanitizer build of the master reported anything
        (memory errors, leaks at exit, undefined behaviour)."""
        if not self.stderr_path or not os.path.exists(self.stderr_path):
            return
        with open(self.stderr_path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
        for mark in self.SANITIZER_MARKS:
            if mark in text:
                at = text.index(mark)
                raise MasterError("sanitizer report from kontena-master:\n%s"
                                  % text[max(0, at - 200):at + 3000])

    def kill(self):
        """kill -9."""
        return self.stop(signal.SIGKILL, timeout=5.0)

    def restart(self, **kw):
        self.stop()
        return self.start(**kw)

    def cleanup(self):
        try:
            self.kill()
        finally:
            self._close_files()
            if self.own_workdir and os.environ.get("KONTENA_KEEP_TMP") != "1":
                shutil.rmtree(self.workdir, ignore_errors=True)
            if self.pg_name and self.pg_server:
                try:
                    pg_drop_database(self.pg_server, self.pg_name)
                except (RuntimeError, OSError, subprocess.SubprocessError):
                    pass  # the cluster may be gone already
                self.pg_name = None

    def _close_files(self):
        for f in (self._out, self._err):
            if f is not None:
                f.close()
        self._out = self._err = None

    # -- conveniences

    def req(self, method, path, body=None, token=None, headers=None,
            timeout=REQUEST_TIMEOUT):
        return request(self.url, method, path, body=body, token=token,
                       headers=headers, timeout=timeout)

    def exchange_code(self, code):
        return self.req("POST", "/oauth2/token",
                        {"grant_type": "authorization_code", "code": code})

    def login(self, code=None):
        """Exchanges the code (default: the admin code) and returns the
        access token; confirms the login with GET /v1/user."""
        st, _, body = self.exchange_code(code or self.admin_code)
        if st != 201:
            raise MasterError("login failed: %s %r" % (st, body))
        token = body["access_token"]
        st, _, _ = self.req("GET", "/v1/user", token=token)
        if st != 200:
            raise MasterError("GET /v1/user with a new token: %s" % st)
        return token

    def store_files(self):
        """The files that hold this master's stored data: SQLite's
        kontena.db with its -wal and -shm; on PostgreSQL, after a
        CHECKPOINT (so that tables reach their files), every file of the
        test cluster (tables, WAL, server log)."""
        if not self.database_url:
            return sorted(glob.glob(os.path.join(self.data_dir, "kontena.db*")))
        pg_sql(self.database_url, "CHECKPOINT")
        m = re.search(r"[?&]host=([^&]+)", self.database_url)
        if not m or not m.group(1).startswith("/tmp/kontena-pg."):
            raise RuntimeError("not a tests/pg.sh cluster: %s" % self.database_url)
        found = []
        for dirpath, _, names in os.walk(m.group(1)):
            found.extend(os.path.join(dirpath, n) for n in names)
        return sorted(found)

    def run_tool(self, args, env=None, timeout=15.0):
        """Runs kontena-master with args (not as a server), with the same
        data dir. Returns CompletedProcess (text)."""
        full = dict(self.store_env)
        full.update(env or {})
        return subprocess.run(
            [MASTER_BIN] + list(args), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
            env=clean_env(full), timeout=timeout, cwd=self.workdir,
            universal_newlines=True)


def files_holding(paths, needles):
    """{path: [needles found in its bytes]} over the regular files among
    paths (sockets and vanished files are skipped)."""
    found = {}
    for p in paths:
        if not os.path.isfile(p):
            continue
        try:
            with open(p, "rb") as f:
                data = f.read()
        except OSError:
            continue
        hits = [n for n in needles if n.encode() in data]
        if hits:
            found[p] = hits
    return found


def _read(path):
    if not path or not os.path.exists(path):
        return ""
    with open(path, "rb") as f:
        return f.read().decode("utf-8", "replace")


def run_master_once(args, env=None, timeout=10.0, cwd=None):
    """Runs kontena-master to completion (config errors, --help)."""
    require_binary(MASTER_BIN)
    return subprocess.run(
        [MASTER_BIN] + list(args), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        env=clean_env(env), timeout=timeout, cwd=cwd,
        universal_newlines=True)


# ==== The CLI ====

class CliHome:
    """A private HOME and KONTENA_CONFIG for CLI runs."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="kontena-cli-")
        self.config = os.path.join(self.dir, "client.json")

    def env(self, extra=None):
        env = clean_env({"HOME": self.dir, "KONTENA_CONFIG": self.config,
                         "NO_COLOR": "1", "TERM": "dumb"})
        if extra:
            for k, v in extra.items():
                if v is None:
                    env.pop(k, None)
                else:
                    env[k] = v
        return env

    def run(self, *args, env=None, stdin_data="", timeout=CLI_TIMEOUT):
        """Runs build/kontena ARGS; returns CompletedProcess (text)."""
        require_binary(CLI_BIN, skip=True)
        return subprocess.run(
            [CLI_BIN] + [str(a) for a in args], input=stdin_data,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=self.env(env), timeout=timeout, cwd=self.dir,
            universal_newlines=True)

    def read_config(self):
        with open(self.config) as f:
            return json.load(f)

    def config_text(self):
        with open(self.config) as f:
            return f.read()

    def cleanup(self):
        if os.environ.get("KONTENA_KEEP_TMP") != "1":
            shutil.rmtree(self.dir, ignore_errors=True)


def describe_run(cp):
    return "exit %s\n--- stdout\n%s\n--- stderr\n%s" % (
        cp.returncode, cp.stdout, cp.stderr)


def main():
    """unittest.main with a normal summary and a non-zero exit on failure."""
    unittest.main(verbosity=2)
