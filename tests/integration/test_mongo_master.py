#!/usr/bin/env python3
"""The real kontena-master on the MongoDB store backend, as
test_pg_master.py does it on PostgreSQL: a throwaway one-member replica
set (tests/mongo.sh) for the module, a fresh database per master
(MONGODB_URI=mongodb://127.0.0.1:N/it_<hex>?replicaSet=rs0), and the same
subsets of test_api.py, test_protocol.py, test_vault.py's TestVault,
test_audit_registries.py and test_stacks_api.py's TestStacksApi run
unchanged against it. Then two masters on one database, as in HA: what one
writes the other serves, and a node removed through one master closes the
agent socket the other one holds (the store's change feed: a change
stream); and three masters started together on an empty database.

Where no mongod is on PATH (Debian ships no MongoDB server) it says so,
"SKIPPED: no mongod on PATH: the MongoDB store suite did not run", and
exits 77, which ctest reports as "Skipped"; so does a build without the
backend (-DWITH_MONGODB=OFF).

Run by ctest (KONTENA_BUILD_DIR / KONTENA_SOURCE_DIR set) or by hand:
    python3 tests/integration/test_mongo_master.py [-k pattern]
"""

import atexit
import glob
import os
import re
import shutil
import subprocess
import sys
import threading
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kontena_harness as kh  # noqa: E402
import test_api  # noqa: E402
import test_audit_registries  # noqa: E402
import test_pg_master  # noqa: E402
import test_protocol  # noqa: E402
import test_vault  # noqa: E402
import test_stacks_api  # noqa: E402

MONGO_SCRIPT = os.path.join(kh.SOURCE_DIR, "tests", "mongo.sh")
SKIP_CODE = 77  # ctest's SKIP_RETURN_CODE for this test
MONGO_URL = None  # the replica set of this module (tests/mongo.sh start)
VAULT_KEY = "it-" + "k" * 61


# ==== The replica set (tests/mongo.sh) and the shell ====

def _built_without_mongodb():
    cache = os.path.join(kh.BUILD_DIR, "CMakeCache.txt")
    if not os.path.exists(cache):
        return False
    with open(cache) as f:
        return any(line.strip() == "WITH_MONGODB:BOOL=OFF" for line in f)


def _shell():
    return (os.environ.get("MONGO_SHELL") or shutil.which("mongosh")
            or shutil.which("mongo"))


def skip_reason():
    """Why this suite cannot run here, or None."""
    if _built_without_mongodb():
        return ("this build has no MongoDB backend (configured with "
                "-DWITH_MONGODB=OFF)")
    if not (os.environ.get("MONGOD") or shutil.which("mongod")):
        return "no mongod on PATH"
    if not _shell():
        return ("mongod is on PATH but neither mongosh nor mongo is "
                "(needed to initiate the replica set)")
    return None


def skip_message(reason):
    return "SKIPPED: %s: the MongoDB store suite did not run" % reason


def mongo_start():
    """Starts a throwaway replica set; returns its URL."""
    cp = subprocess.run(["bash", MONGO_SCRIPT, "start"], stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, universal_newlines=True,
                        timeout=180)
    # skip_reason() found mongod and a shell: a 77 now is a fault (a
    # SkipTest here would end the run "OK", which ctest reports as passed).
    if cp.returncode != 0:
        raise RuntimeError("tests/mongo.sh start failed:\n" + cp.stderr)
    return cp.stdout.strip()


def mongo_stop(url):
    subprocess.run(["bash", MONGO_SCRIPT, "stop", url], timeout=120,
                   stdout=subprocess.DEVNULL)


def mongo_dir(url):
    """The tests/mongo.sh directory of the server at url."""
    for f in glob.glob("/tmp/kontena-mongo.*/url"):
        with open(f) as fh:
            if fh.read().strip() == url:
                return os.path.dirname(f)
    raise RuntimeError("not a tests/mongo.sh server: %s" % url)


def mongo_eval(url, js):
    """Runs the JavaScript js with the shell on the database at url;
    returns the last line it printed."""
    cp = subprocess.run([_shell(), "--quiet", "--norc", url, "--eval", js],
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                        universal_newlines=True, timeout=60)
    if cp.returncode != 0:
        raise RuntimeError("mongo shell %r: %s%s" % (js, cp.stdout, cp.stderr))
    lines = cp.stdout.strip().splitlines()
    return lines[-1].strip() if lines else ""


def mongo_database_url(server, name):
    """server's URL with name as its database, the query string kept."""
    m = re.match(r"^(mongodb://[^/?]*)(?:/[^?]*)?(\?.*)?$", server)
    if not m:
        raise ValueError("cannot read the database in %r" % server)
    return m.group(1) + "/" + name + (m.group(2) or "")


# ==== Masters on MongoDB ====

_HarnessMaster = kh.Master


class MongoMaster(_HarnessMaster):
    """kh.Master with MONGODB_URI: a fresh database on this module's
    replica set, or database_url (another master's) to share one. Installed
    as kh.Master for the module, so the borrowed test classes use it."""

    def __init__(self, env=None, args=None, workdir=None, code=None,
                 database_url=None):
        super().__init__(env=env, args=args, workdir=workdir, code=code)
        self.mongo_name = None
        if database_url is None:
            self.mongo_name = "it_" + os.urandom(8).hex()
            database_url = mongo_database_url(MONGO_URL, self.mongo_name)
        self.backend = "mongodb"
        self.database_url = database_url
        self.db_env = {"MONGODB_URI": database_url}
        self.store_env = dict(self.db_env)
        # Every master sharing a database must seal with one key.
        if "VAULT_KEY" not in (env or {}):
            self.store_env["VAULT_KEY"] = VAULT_KEY
        self.extra_env = dict(self.store_env)
        self.extra_env.update(env or {})
        if code is not None:
            self.extra_env["INITIAL_ADMIN_CODE"] = code

    def cleanup(self):
        try:
            super().cleanup()
        finally:
            if self.mongo_name:
                try:
                    mongo_eval(self.database_url, "db.dropDatabase().ok")
                except (RuntimeError, OSError, subprocess.SubprocessError):
                    pass  # the server may be gone already
                self.mongo_name = None

    def store_files(self):
        """Every file of the test server (collections, indexes, journal,
        log), after an fsync so that writes reach them. mongo.sh turns
        compression off, so plaintext would show."""
        mongo_eval(self.database_url, "db.adminCommand({fsync: 1}).ok")
        found = []
        for dirpath, _, names in os.walk(mongo_dir(MONGO_URL)):
            found.extend(os.path.join(dirpath, n) for n in names)
        return sorted(found)


def setUpModule():
    global MONGO_URL
    reason = skip_reason()
    if reason:
        raise unittest.SkipTest(skip_message(reason))
    os.environ.pop("KONTENA_TEST_DATABASE_URL", None)  # not PostgreSQL
    MONGO_URL = mongo_start()
    atexit.register(_stop_at_exit, MONGO_URL)  # when interrupted
    os.environ["KONTENA_TEST_MONGODB_URI"] = MONGO_URL
    kh.Master = MongoMaster


def _stop_at_exit(url):
    kh._kill_leftovers()  # masters first, while their server is up
    mongo_stop(url)  # nothing left to do after tearDownModule


def tearDownModule():
    kh.Master = _HarnessMaster
    os.environ.pop("KONTENA_TEST_MONGODB_URI", None)
    if MONGO_URL:
        mongo_stop(MONGO_URL)


# ---- test_api.py on MongoDB (subclasses: this module's fixtures apply)

class TestRootAndHeadersMongo(test_api.TestRootAndHeaders):
    pass  # the backend name comes from MongoMaster.backend


class TestLoginMongo(test_api.TestLogin):
    pass


class TestBootstrapCodeMongo(test_api.TestBootstrapCode):
    pass


class TestAuthMatrixMongo(test_api.TestAuthMatrix):
    pass


class TestUsersAndGridIsolationMongo(test_api.TestUsersAndGridIsolation):
    pass


class TestGridsMongo(test_api.TestGrids):
    pass


class TestDurabilityMongo(test_api.TestDurability):
    pass


# ---- test_protocol.py on MongoDB

class TestAcceptMongo(test_protocol.TestAccept):
    pass


class TestCloseCodesMongo(test_protocol.TestCloseCodes):
    pass


class TestSupersedeMongo(test_protocol.TestSupersede):
    pass


class TestNodeRestMongo(test_protocol.TestNodeRest):
    pass


class TestPodReportsMongo(test_protocol.TestPodReports):
    pass


# ---- test_vault.py (TestVault) on MongoDB: the secret operations,
# re-sealing by vault-rekey on a running master, and no plaintext in any
# file of the server

class TestVaultMongo(test_vault.TestVault):

    def test_no_vault_key(self):
        """On a shared store a master without VAULT_KEY does not start at
        all (every master must seal with one key); with the key back the
        secrets are all there."""
        self.cli("vault", "write", "KEEP", "kept")
        self.m.stop()
        self.m.extra_env = dict(self.m.db_env, LOG_LEVEL="debug")
        with self.assertRaises(kh.MasterError):
            self.m.start(timeout=10)
        self.assertIn("VAULT_KEY is required with a shared store",
                      self.m.logs())
        self.restart({"VAULT_KEY": test_vault.KEY1})
        self.assertEqual(self.cli("vault", "read", "KEEP").stdout, "kept\n")


# ---- test_audit_registries.py on MongoDB

class TestRegistriesMongo(test_audit_registries.TestRegistries):
    pass


class TestPullCredentialsMongo(test_audit_registries.TestPullCredentials):
    pass


class TestAuditLogMongo(test_audit_registries.TestAuditLog):
    pass


class TestRetentionMongo(test_audit_registries.TestRetention):
    pass


# ---- test_stacks_api.py on MongoDB (the API alone, no nodes)

class TestStacksApiMongo(test_stacks_api.TestStacksApi):
    pass


# ---- Two masters, one database

class TestTwoMastersMongo(test_pg_master.TestTwoMasters):
    """test_pg_master.py's two masters on one database, here on MongoDB
    (the node removal reaches B through the change stream)."""


class TestConcurrentStart(unittest.TestCase):
    """Three masters started at the same moment on one empty database: the
    indexes are made once (under the schema lease) without an error, the
    schema version is recorded, one admin and one admin code exist, and
    every master serves."""

    def test_three_masters_start_together(self):
        name = "it_" + os.urandom(8).hex()
        url = mongo_database_url(MONGO_URL, name)
        self.addCleanup(mongo_eval, url, "db.dropDatabase().ok")
        ms = [kh.Master(database_url=url) for _ in range(3)]
        for m in ms:
            self.addCleanup(m.cleanup)
        errors = []

        def start(m):
            try:
                m.start(timeout=30)
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append("%s\n%s" % (e, m.describe()))

        threads = [threading.Thread(target=start, args=(m,)) for m in ms]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        applied = sum(m.stderr().count("MongoDB schema version") for m in ms)
        self.assertEqual(applied, 1, [m.stderr()[-2000:] for m in ms])
        self.assertEqual(mongo_eval(url, "db.meta.countDocuments({_id: "
                                         "'schema', version: {$gte: 4}})"),
                         "1")
        self.assertEqual(mongo_eval(url, "db.users.getIndexes().some("
                                         "function (i) { return i.name == "
                                         "'users_email_key'; })"), "true")
        self.assertEqual(mongo_eval(url, "db.users.countDocuments("
                                         "{email: 'admin'})"), "1")
        codes = [m.admin_code for m in ms if m.admin_code]
        self.assertEqual(len(codes), 1, [m.stdout() for m in ms])
        token = ms[0].login(codes[0])
        for m in ms:
            st, _, body = m.req("GET", "/v1/user", token=token)
            self.assertEqual(st, 200, body)


if __name__ == "__main__":
    why = skip_reason()
    if why:
        print(skip_message(why), file=sys.stderr)
        sys.exit(SKIP_CODE)
    kh.main()
