#!/usr/bin/env python3
"""The real kontena-master on the PostgreSQL store backend: a throwaway
PostgreSQL cluster (tests/pg.sh) for the module, a fresh database per
master (kontena_harness does that when KONTENA_TEST_DATABASE_URL is set),
and a subset of test_api.py (login, bootstrap code, tokens, users and grid
isolation, grids, durability), test_protocol.py (agents connecting,
close codes, superseding connections, node REST routes, pod reports
completing a deploy), test_vault.py's TestVault (secrets, rekey, nothing
in plaintext at rest), test_audit_registries.py (registries, pull
credentials, audit log, retention) and test_stacks_api.py's TestStacksApi
(stacks, revisions, stack deploys and removals, logs and events) run
unchanged against it. Then two masters on one database, as in HA: what one writes
the other serves, and a node removed through one master closes the agent
socket the other one holds (the store's change feed, LISTEN/NOTIFY).

Run by ctest (KONTENA_BUILD_DIR / KONTENA_SOURCE_DIR set) or by hand:
    python3 tests/integration/test_pg_master.py [-k pattern]
"""

import os
import sys
import threading
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kontena_harness as kh  # noqa: E402
import test_api  # noqa: E402
import test_audit_registries  # noqa: E402
import test_protocol  # noqa: E402
import test_vault  # noqa: E402
import test_stacks_api  # noqa: E402
import wsproto as ws  # noqa: E402

PG_URL = None


def _built_without_postgres():
    cache = os.path.join(kh.BUILD_DIR, "CMakeCache.txt")
    if not os.path.exists(cache):
        return False
    with open(cache) as f:
        return any(line.strip() == "WITH_POSTGRES:BOOL=OFF" for line in f)


def setUpModule():
    global PG_URL
    if _built_without_postgres():
        raise unittest.SkipTest("this build has no PostgreSQL backend "
                                "(configured with -DWITH_POSTGRES=OFF)")
    PG_URL = kh.pg_start()


def tearDownModule():
    if PG_URL:
        kh.pg_stop(PG_URL)


# ---- test_api.py on PostgreSQL (subclasses: this module's fixtures apply)

class TestRootAndHeadersPg(test_api.TestRootAndHeaders):
    pass


class TestLoginPg(test_api.TestLogin):
    pass


class TestBootstrapCodePg(test_api.TestBootstrapCode):
    pass


class TestAuthMatrixPg(test_api.TestAuthMatrix):
    pass


class TestUsersAndGridIsolationPg(test_api.TestUsersAndGridIsolation):
    pass


class TestGridsPg(test_api.TestGrids):
    pass


class TestDurabilityPg(test_api.TestDurability):
    pass


# ---- test_protocol.py on PostgreSQL

class TestAcceptPg(test_protocol.TestAccept):
    pass


class TestCloseCodesPg(test_protocol.TestCloseCodes):
    pass


class TestSupersedePg(test_protocol.TestSupersede):
    pass


class TestNodeRestPg(test_protocol.TestNodeRest):
    pass


class TestPodReportsPg(test_protocol.TestPodReports):
    pass


# ---- test_vault.py (TestVault: no engine needed) on PostgreSQL: the
# secret operations, re-sealing by vault-rekey on a running master, and no
# plaintext anywhere in the cluster's files

class TestVaultPg(test_vault.TestVault):

    def test_no_vault_key(self):
        """On a shared store a master without VAULT_KEY does not start at
        all (every master must seal with one key), where SQLite's answers
        503; with the key back the secrets are all there."""
        self.cli("vault", "write", "KEEP", "kept")
        self.m.stop()
        self.m.extra_env = dict(self.m.db_env, LOG_LEVEL="debug")
        with self.assertRaises(kh.MasterError):
            self.m.start(timeout=10)
        self.assertIn("VAULT_KEY is required with a shared store",
                      self.m.logs())
        self.restart({"VAULT_KEY": test_vault.KEY1})
        self.assertEqual(self.cli("vault", "read", "KEEP").stdout, "kept\n")


# ---- test_audit_registries.py on PostgreSQL

class TestRegistriesPg(test_audit_registries.TestRegistries):
    pass


class TestPullCredentialsPg(test_audit_registries.TestPullCredentials):
    pass


class TestAuditLogPg(test_audit_registries.TestAuditLog):
    pass


class TestRetentionPg(test_audit_registries.TestRetention):
    pass


# ---- test_stacks_api.py on PostgreSQL (the API alone, no nodes)

class TestStacksApiPg(test_stacks_api.TestStacksApi):
    pass


# ---- Two masters, one database

class TestTwoMasters(unittest.TestCase):
    """Masters A and B on one PostgreSQL database."""

    @classmethod
    def setUpClass(cls):
        cls.a = kh.Master()
        cls.addClassCleanup(cls.a.cleanup)
        cls.a.start()
        cls.b = kh.Master(database_url=cls.a.database_url)
        cls.addClassCleanup(cls.b.cleanup)
        cls.b.start()
        cls.admin = cls.a.login()

    def setUp(self):
        self.clients = []

    def tearDown(self):
        for c in self.clients:
            c.close()

    def test_one_admin_code(self):
        # B found the admin A created: it printed no second code.
        self.assertIsNotNone(self.a.admin_code)
        self.assertIsNone(self.b.admin_code, self.b.stdout())

    def test_writes_on_one_served_by_the_other(self):
        st, _, me = self.b.req("GET", "/v1/user", token=self.admin)
        self.assertEqual(st, 200, me)
        st, _, g = self.a.req("POST", "/v1/grids", {"name": "shared-grid"},
                              token=self.admin)
        self.assertEqual(st, 201, g)
        st, _, got = self.b.req("GET", "/v1/grids/shared-grid", token=self.admin)
        self.assertEqual(st, 200, got)
        self.assertEqual(got["token"], g["token"])  # unsealed with one key
        # the same name through B is a clash
        st, _, body = self.b.req("POST", "/v1/grids", {"name": "shared-grid"},
                                 token=self.admin)
        self.assertEqual(st, 422, body)
        st, _, _ = self.b.req("DELETE", "/v1/grids/shared-grid", token=self.admin)
        self.assertEqual(st, 200)
        st, _, _ = self.a.req("GET", "/v1/grids/shared-grid", token=self.admin)
        self.assertEqual(st, 404)

    def test_node_removed_on_a_closes_agent_on_b(self):
        st, _, g = self.a.req("POST", "/v1/grids", {"name": "ha-nodes"},
                              token=self.admin)
        self.assertEqual(st, 201, g)
        node_id = ws.random_node_id()
        c = ws.connect_agent(self.b.port, grid_token=g["token"],
                             node_id=node_id, name="far")
        self.clients.append(c)
        agent = test_protocol.Agent(c, node_id, "far")
        agent.notification("/agent/master_info")
        agent.notification("/agent/node_info")
        # A sees the node B accepted, online
        st, _, n = self.a.req("GET", "/v1/nodes/ha-nodes/far", token=self.admin)
        self.assertEqual(st, 200, n)
        self.assertIs(n["connected"], True, n)
        # removed through A: B holds the socket and closes it (4040)
        st, _, body = self.a.req("DELETE", "/v1/nodes/ha-nodes/far",
                                 token=self.admin)
        self.assertEqual(st, 200, body)
        self.assertEqual(c.wait_close(5), 4040,
                         "B did not close the agent; B stderr:\n%s"
                         % self.b.stderr()[-1500:])


class TestConcurrentStart(unittest.TestCase):
    """Three masters started at the same moment on one empty database:
    the schema is migrated once, one admin and one admin code exist, and
    every master serves."""

    def test_three_masters_start_together(self):
        server = os.environ["KONTENA_TEST_DATABASE_URL"]
        name, url = kh.pg_new_database(server)
        self.addCleanup(kh.pg_drop_database, server, name)
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
        rows = kh.pg_sql(url, "SELECT COUNT(*), COUNT(DISTINCT version), "
                              "MAX(version) FROM schema_migrations").split("|")
        # Each version applied once, by one master (numbers may have gaps).
        count, distinct, top = (int(x) for x in rows)
        self.assertEqual(count, distinct, rows)
        self.assertGreaterEqual(top, count, rows)
        applied = sum(m.stderr().count("applied schema migration") for m in ms)
        self.assertEqual(applied, count)
        self.assertEqual(kh.pg_sql(url, "SELECT COUNT(*) FROM users "
                                        "WHERE email='admin'").strip(), "1")
        codes = [m.admin_code for m in ms if m.admin_code]
        self.assertEqual(len(codes), 1, [m.stdout() for m in ms])
        token = ms[0].login(codes[0])
        for m in ms:
            st, _, body = m.req("GET", "/v1/user", token=token)
            self.assertEqual(st, 200, body)


if __name__ == "__main__":
    kh.main()
