#!/usr/bin/env python3
"""Integration tests of the master-foundation slice over raw HTTP against a
real kontena-master (spec kontena-master.md sections 2 and 3).

Run by ctest (KONTENA_BUILD_DIR / KONTENA_SOURCE_DIR set) or by hand:
    python3 tests/integration/test_api.py [-k pattern]
KONTENA_KEEP_TMP=1 keeps the temp dirs (master logs) for a post-mortem.
"""

import base64
import json
import os
import random
import re
import signal
import sys
import threading
import time
import unittest
import urllib.parse

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kontena_harness as kh  # noqa: E402

HEX64 = kh.HEX64_RE
HEX128 = kh.HEX128_RE
GRID_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{3,64}$")


class MasterCase(unittest.TestCase):
    """One master per test class; self.m, self.admin (admin token)."""

    master_env = None
    login_admin = True

    @classmethod
    def setUpClass(cls):
        cls.m = kh.Master(env=cls.master_env)
        cls.addClassCleanup(cls.m.cleanup)
        cls.m.start()
        cls.admin = cls.m.login() if cls.login_admin else None

    # -- assertion helpers

    def assertJsonAnswer(self, hdrs, body, what=""):
        """The common contract: X-Kontena-Version and a JSON body."""
        self.assertIn("x-kontena-version", hdrs,
                      "%s: no X-Kontena-Version header in %r" % (what, hdrs))
        self.assertTrue(hdrs.get("content-type", "").startswith("application/json"),
                        "%s: Content-Type is %r, not application/json"
                        % (what, hdrs.get("content-type")))
        self.assertIsInstance(body, (dict, list),
                              "%s: body is not JSON: %r" % (what, body))

    def assertStatus(self, answer, status, what=""):
        st, hdrs, body = answer
        self.assertEqual(st, status, "%s: expected %s, got %s %r\n%s"
                         % (what, status, st, body, self._logs_tail()))
        return body

    def assertFieldErrors(self, answer, fields, what=""):
        """A 422 naming exactly these fields (at least)."""
        st, hdrs, body = answer
        self.assertEqual(st, 422, "%s: expected 422, got %s %r" % (what, st, body))
        self.assertJsonAnswer(hdrs, body, what)
        errs = body.get("error")
        self.assertIsInstance(errs, dict, "%s: error is not an object: %r" % (what, body))
        for f in fields:
            self.assertIn(f, errs, "%s: field %s not named in %r" % (what, f, body))
            self.assertIsInstance(errs[f], str)
            self.assertTrue(errs[f], "%s: empty message for %s" % (what, f))

    def _logs_tail(self):
        return "(master stderr tail: %s)" % self.m.stderr()[-800:]

    # -- API helpers

    def grid_names(self, token=None):
        st, _, body = self.m.req("GET", "/v1/grids", token=token or self.admin)
        self.assertEqual(st, 200, body)
        return sorted(g["name"] for g in body["grids"])

    def create_grid(self, body, token=None):
        return self.m.req("POST", "/v1/grids", body, token=token or self.admin)


# ======================================================================
class TestRootAndHeaders(MasterCase):

    def test_root_shape(self):
        st, hdrs, body = self.m.req("GET", "/")
        self.assertEqual(st, 200)
        self.assertJsonAnswer(hdrs, body, "GET /")
        self.assertEqual(body.get("name"), "Kontena Master")
        self.assertIsInstance(body.get("tagline"), str)
        self.assertTrue(body["tagline"])
        self.assertIsInstance(body.get("version"), str)
        self.assertRegex(body["version"], r"^\d+\.\d+\.\d+")
        self.assertEqual(hdrs["x-kontena-version"], body["version"],
                         "X-Kontena-Version differs from GET / version")

    def test_no_shared_memory_file(self):
        # libmongoc maps /dev/shm/mongoc-<pid> when it loads; the master
        # unlinks the name at once, so a master killed with -9 leaves
        # nothing behind for a later process of the same pid to trip on.
        self.assertFalse(os.path.exists("/dev/shm/mongoc-%d" % self.m.proc.pid))

    def store_backend(self):
        # The MongoDB suite's master names its own (test_mongo_master.py).
        return getattr(self.m, "backend",
                       "postgresql" if self.m.database_url else "sqlite")

    def test_ping(self):
        st, hdrs, body = self.m.req("GET", "/v1/ping")
        self.assertEqual(st, 200)
        self.assertJsonAnswer(hdrs, body, "ping")
        self.assertEqual(body["message"], "pong")
        self.assertEqual(sorted(body["master"]), ["id", "leader", "leader_id", "store"])
        self.assertRegex(body["master"]["id"], r"^[0-9a-f]{32}$")
        self.assertEqual(body["master"]["store"],
                         {"backend": self.store_backend(), "healthy": True})

    def test_master_status_shows_this_master_leading(self):
        # A lone master takes the leader lease at start-up.
        deadline = time.monotonic() + 5
        while True:
            st, hdrs, body = self.m.req("GET", "/v1/master/status", token=self.admin)
            self.assertEqual(st, 200, body)
            if body["leader"] or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertTrue(body["leader"], body)
        self.assertEqual(body["leader_id"], body["id"])
        self.assertGreaterEqual(body["leader_changes"], 1)
        self.assertIsInstance(body["leader_since"], int)
        self.assertGreater(body["leader_lease_expires_at"], time.time() - 1)
        self.assertEqual(body["store"]["backend"], self.store_backend())
        self.assertTrue(body["store"]["healthy"])
        self.assertGreaterEqual(body["store"]["schema_version"], 4)
        self.assertEqual(body["version"], hdrs["x-kontena-version"])
        # Not without a token.
        self.assertEqual(self.m.req("GET", "/v1/master/status")[0], 403)

    def test_every_answer_has_version_and_json(self):
        cases = [
            ("GET", "/", None, None),
            ("GET", "/v1/ping", None, None),
            ("GET", "/no/such/path", None, None),
            ("GET", "/v1/grids/x/y/z", None, None),
            ("DELETE", "/v1/ping", None, None),
            ("GET", "/v1/user", None, None),                      # 403 no token
            ("GET", "/v1/user", None, "0" * 64),                  # 403 bad token
            ("POST", "/oauth2/token", {"grant_type": "nope"}, None),  # 400
            ("POST", "/oauth2/token", {"grant_type": "authorization_code",
                                       "code": "deadbeef0000"}, None),  # 404
            ("GET", "/v1/grids/nosuch", None, self.admin),        # 404
            ("POST", "/v1/grids", {"name": "x"}, self.admin),     # 422
            ("POST", "/v1/grids", "{nope", self.admin),           # 400
            ("GET", "/v1/user", None, self.admin),                # 200
        ]
        for method, path, body, token in cases:
            with self.subTest(method=method, path=path):
                st, hdrs, b = self.m.req(method, path, body, token=token)
                self.assertJsonAnswer(hdrs, b, "%s %s -> %s" % (method, path, st))
                if st >= 400:
                    self.assertIn("error", b, "%s %s: error body %r" % (method, path, b))

    def test_unknown_path_404_json(self):
        st, hdrs, body = self.m.req("GET", "/v1/does-not-exist", token=self.admin)
        self.assertEqual(st, 404)
        self.assertJsonAnswer(hdrs, body, "unknown path")
        self.assertEqual(body, {"error": "Not found"})

    def test_wrong_method_405_json(self):
        for method, path in (("DELETE", "/v1/ping"), ("PATCH", "/v1/grids"),
                             ("PUT", "/oauth2/token"), ("POST", "/v1/user")):
            with self.subTest(method=method, path=path):
                st, hdrs, body = self.m.req(method, path, token=self.admin)
                self.assertEqual(st, 405, "%s %s -> %s %r" % (method, path, st, body))
                self.assertJsonAnswer(hdrs, body, "405")
                self.assertIn("error", body)


# ======================================================================
class TestLogin(MasterCase):
    """Code exchange; never makes an authenticated call with the tokens, so
    the bootstrap code stays usable for every test of the class (#1460)."""

    login_admin = False

    def test_admin_code_printed(self):
        self.assertIsNotNone(self.m.admin_code,
                             "no 'Initial Admin Code: X' line on stdout:\n" + self.m.stdout())
        self.assertRegex(self.m.admin_code, r"^[0-9a-f]{12}$")

    def test_json_login(self):
        st, hdrs, body = self.m.exchange_code(self.m.admin_code)
        self.assertEqual(st, 201, body)
        self.assertJsonAnswer(hdrs, body, "json login")
        self.assertRegex(body.get("access_token", ""), HEX64)
        self.assertEqual(body.get("token_type"), "bearer")
        self.assertEqual(body.get("scopes"), "user,owner")
        self.assertEqual(body.get("user", {}).get("email"), "admin")
        # The bootstrap admin's token never expires: no refresh token.
        self.assertIsNone(body.get("expires_in"))
        self.assertIsNone(body.get("refresh_token"))

    def test_form_login(self):
        st, hdrs, body = self.m.req(
            "POST", "/oauth2/token",
            urllib.parse.urlencode({"grant_type": "authorization_code",
                                    "code": self.m.admin_code}),
            headers={"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(st, 201, body)
        self.assertIn("x-kontena-version", hdrs)
        self.assertTrue(hdrs.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"), hdrs)
        self.assertIsInstance(body, str)
        self.assertIn("access_token=", body)
        form = urllib.parse.parse_qs(body, keep_blank_values=True)
        self.assertRegex(form["access_token"][0], HEX64)
        self.assertEqual(form.get("username"), ["admin"])

    def test_query_string_login(self):
        q = urllib.parse.urlencode({"grant_type": "authorization_code",
                                    "code": self.m.admin_code})
        st, _, body = self.m.req("POST", "/oauth2/token?" + q,
                                 headers={"Accept": "application/json"})
        self.assertEqual(st, 201, body)
        self.assertRegex(body.get("access_token", ""), HEX64)

    def test_wrong_code(self):
        for code in ("000000000000", "not-a-code", "x" * 200):
            with self.subTest(code=code[:20]):
                st, hdrs, body = self.m.exchange_code(code)
                self.assertEqual(st, 404, body)
                self.assertJsonAnswer(hdrs, body, "wrong code")
                self.assertEqual(body.get("error"), "invalid_request")

    def test_missing_code(self):
        st, _, body = self.m.req("POST", "/oauth2/token",
                                 {"grant_type": "authorization_code"})
        self.assertEqual(st, 400, body)
        self.assertEqual(body.get("error"), "invalid_request")

    def test_unsupported_grant(self):
        for grant in ("password", "client_credentials", "", None):
            with self.subTest(grant=grant):
                payload = {"code": self.m.admin_code}
                if grant is not None:
                    payload["grant_type"] = grant
                st, hdrs, body = self.m.req("POST", "/oauth2/token", payload)
                self.assertEqual(st, 400, body)
                self.assertJsonAnswer(hdrs, body, "bad grant")
                self.assertEqual(body.get("error"), "unsupported_grant_type")

    def test_legacy_auth_is_403(self):
        st, hdrs, body = self.m.req("POST", "/v1/auth",
                                    {"username": "admin", "password": "x"})
        self.assertEqual(st, 403, body)
        self.assertJsonAnswer(hdrs, body, "/v1/auth")


# ======================================================================
class TestBootstrapCode(unittest.TestCase):
    """Issue #1460: the code survives until a token from it is used."""

    def setUp(self):
        self.m = kh.Master()
        self.addCleanup(self.m.cleanup)
        self.m.start()
        self.assertIsNotNone(self.m.admin_code, self.m.stdout())

    def test_code_reusable_until_confirmed(self):
        m = self.m
        st, _, first = m.exchange_code(m.admin_code)
        self.assertEqual(st, 201, first)
        st, _, second = m.exchange_code(m.admin_code)
        self.assertEqual(st, 201, "lost answer must be retryable (#1460): %r" % second)
        self.assertNotEqual(first["access_token"], second["access_token"])
        st, _, user = m.req("GET", "/v1/user", token=second["access_token"])
        self.assertEqual(st, 200, user)
        self.assertEqual(user.get("email"), "admin")
        st, hdrs, body = m.exchange_code(m.admin_code)
        self.assertEqual(st, 404, "code must be spent after a confirmed login: %r" % body)
        self.assertEqual(body.get("error"), "invalid_request")
        # The confirming token keeps working.
        st, _, _ = m.req("GET", "/v1/grids", token=second["access_token"])
        self.assertEqual(st, 200)
        # Still spent after a restart, and no new code is printed.
        self.assertEqual(m.stop(), 0)
        m.start()
        self.assertNotIn("Initial Admin Code", m.stdout(),
                         "a restart must not mint a new admin code")
        st, _, body = m.exchange_code(m.admin_code)
        self.assertEqual(st, 404, body)
        st, _, _ = m.req("GET", "/v1/user", token=second["access_token"])
        self.assertEqual(st, 200)

    def test_reset_admin_code(self):
        m = self.m
        old = m.admin_code
        m.login()  # spends the old code
        self.assertEqual(m.exchange_code(old)[0], 404)
        self.assertEqual(m.stop(), 0)
        cp = m.run_tool(["reset-admin-code", "--data-dir", m.data_dir])
        self.assertEqual(cp.returncode, 0, kh.describe_run(cp))
        found = kh.CODE_RE.search(cp.stdout)
        self.assertIsNotNone(found, "no 'Initial Admin Code: X' on stdout:\n"
                             + kh.describe_run(cp))
        new = found.group(1)
        self.assertNotEqual(new, old)
        m.start()
        st, _, body = m.exchange_code(new)
        self.assertEqual(st, 201, body)
        self.assertEqual(body["user"]["email"], "admin")
        st, _, _ = m.req("GET", "/v1/user", token=body["access_token"])
        self.assertEqual(st, 200)
        self.assertEqual(m.exchange_code(old)[0], 404, "old code works again")
        self.assertEqual(m.exchange_code(new)[0], 404, "new code not spent")

    def test_initial_admin_code_env(self):
        m2 = kh.Master(code="my-own-code-42")
        self.addCleanup(m2.cleanup)
        m2.start()
        self.assertEqual(m2.admin_code, "my-own-code-42", m2.stdout())
        st, _, body = m2.exchange_code("my-own-code-42")
        self.assertEqual(st, 201, body)


# ======================================================================
class TestAuthMatrix(MasterCase):

    def assertDenied(self, answer, desc, what):
        st, hdrs, body = answer
        self.assertEqual(st, 403, "%s: %s %r" % (what, st, body))
        self.assertJsonAnswer(hdrs, body, what)
        self.assertEqual(body.get("error"), "invalid_token", what)
        self.assertEqual(body.get("error_description"), desc, what)
        www = hdrs.get("www-authenticate", "")
        self.assertTrue(www.startswith('Bearer realm="kontena_master"'),
                        "%s: WWW-Authenticate is %r" % (what, www))

    def make_token(self, **kw):
        req = {"response_type": "token", "scope": "user"}
        req.update(kw)
        st, _, body = self.m.req("POST", "/oauth2/authorize", req, token=self.admin)
        self.assertEqual(st, 201, body)
        self.assertRegex(body.get("access_token", ""), HEX64)
        return body

    def test_no_token(self):
        for path in ("/v1/user", "/v1/grids", "/oauth2/tokens"):
            self.assertDenied(self.m.req("GET", path), "Invalid token", "no token " + path)
        self.assertDenied(self.m.req("POST", "/v1/grids", {"name": "nope1"}),
                          "Invalid token", "POST without token")

    def test_malformed_header(self):
        for value in ("Basic YWRtaW46YWRtaW4=", "Bearer", "Bearer ", "Token " + self.admin,
                      self.admin, "Bearer " + "a" * 600, "Bearer " + self.admin[:-1]):
            with self.subTest(value=value[:30]):
                self.assertDenied(self.m.req("GET", "/v1/user",
                                             headers={"Authorization": value}),
                                  "Invalid token", "header %r" % value[:30])

    def test_unknown_token(self):
        self.assertDenied(self.m.req("GET", "/v1/user", token="f" * 64),
                          "Invalid token", "unknown token")

    def test_revoked_token(self):
        t = self.make_token(description="to revoke")
        tok = t["access_token"]
        st, _, user = self.m.req("GET", "/v1/user", token=tok)
        self.assertEqual(st, 200, user)
        st, _, body = self.m.req("DELETE", "/oauth2/tokens/" + t["id"], token=self.admin)
        self.assertEqual(st, 200, body)
        self.assertDenied(self.m.req("GET", "/v1/user", token=tok), "Invalid token",
                          "revoked token")
        st, _, _ = self.m.req("DELETE", "/oauth2/tokens/" + t["id"], token=self.admin)
        self.assertEqual(st, 404)

    def test_expired_token(self):
        t = self.make_token(expires_in=1)
        self.assertIsInstance(t.get("expires_in"), int)
        self.assertLessEqual(t["expires_in"], 1)
        time.sleep(2.1)
        self.assertDenied(self.m.req("GET", "/v1/user", token=t["access_token"]),
                          "Token expired", "expired token")

    def test_refresh_grant(self):
        t = self.make_token(expires_in=3600)
        self.assertRegex(t.get("refresh_token") or "", HEX128)
        self.assertTrue(3590 <= t["expires_in"] <= 3600, t)
        st, hdrs, new = self.m.req("POST", "/oauth2/token",
                                   {"grant_type": "refresh_token",
                                    "refresh_token": t["refresh_token"]})
        self.assertEqual(st, 201, new)
        self.assertJsonAnswer(hdrs, new, "refresh")
        self.assertRegex(new.get("access_token", ""), HEX64)
        self.assertNotEqual(new["access_token"], t["access_token"])
        self.assertRegex(new.get("refresh_token") or "", HEX128)
        self.assertNotEqual(new["refresh_token"], t["refresh_token"])
        self.assertTrue(7190 <= new["expires_in"] <= 7200, new)
        st, _, user = self.m.req("GET", "/v1/user", token=new["access_token"])
        self.assertEqual(st, 200, user)
        self.assertEqual(user["email"], "admin")
        # Single use.
        st, hdrs, body = self.m.req("POST", "/oauth2/token",
                                    {"grant_type": "refresh_token",
                                     "refresh_token": t["refresh_token"]})
        self.assertEqual(st, 404, body)
        self.assertEqual(body.get("error"), "invalid_request")
        # The refreshed token is the one that lives on (spec 2.1).
        self.assertDenied(self.m.req("GET", "/v1/user", token=t["access_token"]),
                          "Invalid token", "token replaced by refresh")

    def test_token_without_expiry_has_no_refresh(self):
        t = self.make_token()
        self.assertIsNone(t.get("refresh_token"))
        self.assertIsNone(t.get("expires_in"))

    def test_authorize_needs_auth(self):
        st, hdrs, body = self.m.req("POST", "/oauth2/authorize",
                                    {"response_type": "token", "scope": "user"})
        self.assertEqual(st, 403, body)
        self.assertEqual(body.get("error"), "invalid_token")


# ======================================================================
class TestUsersAndGridIsolation(MasterCase):

    def test_isolation_flow(self):
        m, admin = self.m, self.admin
        st, hdrs, inv = m.req("POST", "/oauth2/authorize",
                              {"response_type": "invite", "email": "bob@example.com"},
                              token=admin)
        self.assertEqual(st, 201, inv)
        self.assertJsonAnswer(hdrs, inv, "invite")
        self.assertEqual(inv.get("email"), "bob@example.com")
        self.assertIsInstance(inv.get("invite_code"), str)
        self.assertTrue(inv["invite_code"])
        # Duplicate invite -> 422 on email.
        self.assertFieldErrors(m.req("POST", "/oauth2/authorize",
                                     {"response_type": "invite", "email": "bob@example.com"},
                                     token=admin), ["email"], "duplicate invite")

        st, _, tok = m.exchange_code(inv["invite_code"])
        self.assertEqual(st, 201, tok)
        self.assertEqual(tok["user"]["email"], "bob@example.com")
        bob = tok["access_token"]
        self.assertRegex(bob, HEX64)
        self.assertEqual(m.exchange_code(inv["invite_code"])[0], 404,
                         "an invite code must be single use")

        st, _, me = m.req("GET", "/v1/user", token=bob)
        self.assertEqual(st, 200, me)
        self.assertEqual(me["email"], "bob@example.com")
        self.assertEqual(me.get("roles"), [])

        # Bob is no master admin.
        st, _, body = m.req("POST", "/v1/grids", {"name": "bobs"}, token=bob)
        self.assertEqual(st, 403, body)
        self.assertEqual(body, {"error": "Access denied"})
        st, _, body = m.req("POST", "/oauth2/authorize",
                            {"response_type": "invite", "email": "eve@example.com"},
                            token=bob)
        self.assertEqual(st, 403, body)

        st, _, alpha = self.create_grid({"name": "alpha"})
        self.assertEqual(st, 201, alpha)
        st, _, body = m.req("GET", "/v1/grids/alpha", token=bob)
        self.assertEqual(st, 403, body)
        self.assertEqual(body, {"error": "Access denied"})
        for who in (bob, admin):
            st, _, body = m.req("GET", "/v1/grids/nosuch", token=who)
            self.assertEqual(st, 404, body)
            self.assertEqual(body, {"error": "Not found"})
        self.assertEqual(self.grid_names(bob), [])
        st, _, body = m.req("PUT", "/v1/grids/alpha", {"default_affinity": []}, token=bob)
        self.assertEqual(st, 403, body)
        st, _, body = m.req("DELETE", "/v1/grids/alpha", token=bob)
        self.assertEqual(st, 403, body)

        # Add bob.
        st, _, users = m.req("POST", "/v1/grids/alpha/users",
                             {"email": "bob@example.com"}, token=admin)
        self.assertEqual(st, 201, users)
        self.assertIn("bob@example.com", [u["email"] for u in users["users"]])
        self.assertEqual(self.grid_names(bob), ["alpha"])
        st, _, g = m.req("GET", "/v1/grids/alpha", token=bob)
        self.assertEqual(st, 200, g)
        self.assertEqual(g["token"], alpha["token"])
        self.assertEqual(g["user_count"], 2)
        # Unknown user -> 422 email.
        self.assertFieldErrors(m.req("POST", "/v1/grids/alpha/users",
                                     {"email": "nobody@example.com"}, token=admin),
                               ["email"], "add unknown user")

        # Remove bob.
        st, _, users = m.req("DELETE", "/v1/grids/alpha/users/bob@example.com",
                             token=admin)
        self.assertEqual(st, 200, users)
        self.assertNotIn("bob@example.com", [u["email"] for u in users["users"]])
        st, _, body = m.req("GET", "/v1/grids/alpha", token=bob)
        self.assertEqual(st, 403, body)
        self.assertEqual(body, {"error": "Access denied"})
        self.assertEqual(self.grid_names(bob), [])

        # Token lists: only the caller's, never plaintext.
        st, _, alist = m.req("GET", "/oauth2/tokens", token=admin)
        self.assertEqual(st, 200, alist)
        st, _, blist = m.req("GET", "/oauth2/tokens", token=bob)
        self.assertEqual(st, 200, blist)
        aids = {t["id"] for t in alist["access_tokens"]}
        bids = {t["id"] for t in blist["access_tokens"]}
        self.assertTrue(aids, alist)
        self.assertTrue(bids, blist)
        self.assertFalse(aids & bids, "token lists overlap")
        for lst, email in ((alist, "admin"), (blist, "bob@example.com")):
            text = json.dumps(lst)
            self.assertNotIn(admin, text, "plaintext admin token listed")
            self.assertNotIn(bob, text, "plaintext bob token listed")
            for t in lst["access_tokens"]:
                self.assertIsNone(t.get("access_token"), t)
                self.assertIsNone(t.get("refresh_token"), t)
                self.assertEqual(t.get("user", {}).get("email"), email, t)
        self.assertIn(bob[-4:], [t["access_token_last_four"] for t in blist["access_tokens"]])
        # Bob cannot see or revoke admin's tokens.
        some_admin_id = sorted(aids)[0]
        self.assertEqual(m.req("GET", "/oauth2/tokens/" + some_admin_id, token=bob)[0], 404)
        self.assertEqual(m.req("DELETE", "/oauth2/tokens/" + some_admin_id, token=bob)[0], 404)
        self.assertEqual(m.req("GET", "/v1/user", token=admin)[0], 200)
        # Users list is for user admins.
        self.assertEqual(m.req("GET", "/v1/users", token=bob)[0], 403)
        st, _, ulist = m.req("GET", "/v1/users", token=admin)
        self.assertEqual(st, 200, ulist)
        self.assertEqual(sorted(u["email"] for u in ulist["users"]),
                         ["admin", "bob@example.com"])


# ======================================================================
class TestGrids(MasterCase):

    def test_create_defaults(self):
        st, hdrs, g = self.create_grid({"name": "defaults1"})
        self.assertEqual(st, 201, g)
        self.assertJsonAnswer(hdrs, g, "grid create")
        self.assertEqual(g["name"], "defaults1")
        self.assertEqual(g["id"], "defaults1")
        self.assertEqual(g["subnet"], "10.81.0.0/16")
        self.assertEqual(g["supernet"], "10.80.0.0/12")
        self.assertEqual(g["initial_size"], 1)
        self.assertEqual(g["user_count"], 1)
        self.assertEqual(g["node_count"], 0)
        self.assertEqual(g["service_count"], 0)
        self.assertEqual(g["container_count"], 0)
        self.assertEqual(g["default_affinity"], [])
        self.assertEqual(g["trusted_subnets"], [])
        self.assertEqual(g["stats"], {"statsd": None})
        tok = g["token"]
        self.assertEqual(len(tok), 88, tok)
        self.assertEqual(len(base64.b64decode(tok, validate=True)), 64)
        st, _, again = self.m.req("GET", "/v1/grids/defaults1", token=self.admin)
        self.assertEqual(st, 200)
        self.assertEqual(again, g)
        self.assertIn("defaults1", self.grid_names())
        st, _, g2 = self.create_grid({"name": "defaults2", "initial_size": 3,
                                      "subnet": "10.90.0.0/16", "supernet": "10.88.0.0/13"})
        self.assertEqual(st, 201, g2)
        self.assertEqual((g2["initial_size"], g2["subnet"], g2["supernet"]),
                         (3, "10.90.0.0/16", "10.88.0.0/13"))
        self.assertNotEqual(g2["token"], tok, "grid tokens must be random")

    def test_custom_token(self):
        token = "my-custom-grid-token-0123456789"
        st, _, g = self.create_grid({"name": "custom1", "token": token})
        self.assertEqual(st, 201, g)
        self.assertEqual(g["token"], token)
        st, _, g = self.m.req("GET", "/v1/grids/custom1", token=self.admin)
        self.assertEqual(g["token"], token)

    def test_blank_name_gets_random_name(self):
        names = set()
        for body in ({"name": ""}, {}):
            st, _, g = self.create_grid(body)
            self.assertEqual(st, 201, g)
            self.assertRegex(g["name"], GRID_NAME_RE)
            names.add(g["name"])
            st, _, _ = self.m.req("GET", "/v1/grids/" + g["name"], token=self.admin)
            self.assertEqual(st, 200)
        self.assertEqual(len(names), 2, names)

    def test_validation_per_field(self):
        before = self.grid_names()
        cases = [
            ({"name": "ab"}, "name"),
            ({"name": "bad name!"}, "name"),
            ({"name": "x" * 65}, "name"),
            ({"name": 42}, "name"),
            ({"name": "size0", "initial_size": 0}, "initial_size"),
            ({"name": "size8", "initial_size": 8}, "initial_size"),
            ({"name": "sizes", "initial_size": "3"}, "initial_size"),
            ({"name": "subnet1", "subnet": "10.0.0.0/33"}, "subnet"),
            ({"name": "subnet2", "subnet": "not-a-cidr"}, "subnet"),
            ({"name": "supernet1", "supernet": "300.1.1.1/8"}, "supernet"),
            ({"name": "trusted1", "trusted_subnets": ["nope"]}, "trusted_subnets"),
            ({"name": "trusted2", "trusted_subnets": "192.168.0.0/24"}, "trusted_subnets"),
            ({"name": "logs1", "logs": {"forwarder": "x"}}, "logs"),
            ({"name": "affinity1", "default_affinity": ["nonsense"]}, "default_affinity"),
            ({"name": "stats1", "stats": {"statsd": {"server": "h", "port": 70000}}}, "stats"),
            ({"name": "token1", "token": "short"}, "token"),
        ]
        for body, field in cases:
            with self.subTest(body=body):
                self.assertFieldErrors(self.create_grid(body), [field], repr(body))
        self.assertEqual(self.grid_names(), before, "a rejected create left a grid")

    def test_duplicates(self):
        st, _, g = self.create_grid({"name": "dup1", "token": "dup-token-abcdefghijklmnop"})
        self.assertEqual(st, 201, g)
        self.assertFieldErrors(self.create_grid({"name": "dup1"}), ["name"], "dup name")
        self.assertFieldErrors(
            self.create_grid({"name": "dup2", "token": "dup-token-abcdefghijklmnop"}),
            ["token"], "dup token")
        self.assertEqual(self.m.req("GET", "/v1/grids/dup2", token=self.admin)[0], 404)
        st, _, g1 = self.m.req("GET", "/v1/grids/dup1", token=self.admin)
        self.assertEqual(g1["token"], "dup-token-abcdefghijklmnop")

    def test_several_bad_fields_all_named(self):
        body = {"name": "bad name!", "initial_size": 9, "subnet": "nope",
                "trusted_subnets": ["nope"], "logs": {"forwarder": "x"}}
        self.assertFieldErrors(self.create_grid(body),
                               ["name", "initial_size", "subnet", "trusted_subnets", "logs"],
                               "several bad fields")

    def test_concurrent_creates_of_one_name(self):
        results = []

        def create():
            try:
                results.append(self.create_grid({"name": "race1"})[0])
            except Exception as e:  # noqa: BLE001
                results.append(repr(e))

        threads = [threading.Thread(target=create) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=15)
        self.assertEqual(sorted(results, key=str), [201] + [422] * 19, results)
        self.assertEqual(self.grid_names().count("race1"), 1)

    def test_update_and_delete(self):
        st, _, g = self.create_grid({"name": "upd1"})
        self.assertEqual(st, 201, g)
        upd = {"default_affinity": ["label==az=a"],
               "trusted_subnets": ["192.168.0.0/24"],
               "stats": {"statsd": {"server": "1.2.3.4", "port": 8125}},
               "logs": {"forwarder": "fluentd", "opts": {"fluentd-address": "host:24224"}}}
        st, _, u = self.m.req("PUT", "/v1/grids/upd1", upd, token=self.admin)
        self.assertEqual(st, 200, u)
        st, _, shown = self.m.req("GET", "/v1/grids/upd1", token=self.admin)
        self.assertEqual(st, 200)
        for k, v in upd.items():
            self.assertEqual(shown.get(k), v, k)
        self.assertEqual(shown["token"], g["token"], "update changed the token")
        # A bad update changes nothing.
        self.assertFieldErrors(self.m.req("PUT", "/v1/grids/upd1",
                                          {"trusted_subnets": ["bad"]}, token=self.admin),
                               ["trusted_subnets"], "bad update")
        st, _, again = self.m.req("GET", "/v1/grids/upd1", token=self.admin)
        self.assertEqual(again, shown)
        # Partial update keeps other settings; logs: null removes them.
        st, _, u = self.m.req("PUT", "/v1/grids/upd1",
                              {"default_affinity": ["label!=az=b"], "logs": None},
                              token=self.admin)
        self.assertEqual(st, 200, u)
        st, _, shown = self.m.req("GET", "/v1/grids/upd1", token=self.admin)
        self.assertEqual(shown["default_affinity"], ["label!=az=b"])
        self.assertEqual(shown["trusted_subnets"], ["192.168.0.0/24"])
        self.assertNotIn("logs", shown)
        # Delete.
        st, hdrs, body = self.m.req("DELETE", "/v1/grids/upd1", token=self.admin)
        self.assertEqual(st, 200, body)
        self.assertJsonAnswer(hdrs, body, "delete")
        st, _, body = self.m.req("GET", "/v1/grids/upd1", token=self.admin)
        self.assertEqual(st, 404, body)
        self.assertEqual(body, {"error": "Not found"})
        self.assertEqual(self.m.req("DELETE", "/v1/grids/upd1", token=self.admin)[0], 404)
        self.assertEqual(self.m.req("PUT", "/v1/grids/upd1", {}, token=self.admin)[0], 404)
        self.assertNotIn("upd1", self.grid_names())
        # The name is free again.
        st, _, g = self.create_grid({"name": "upd1"})
        self.assertEqual(st, 201, g)


# ======================================================================
class TestBadRequests(MasterCase):
    """Malformed requests: the right 4xx, JSON, and nothing lost."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.kept = {}
        for name in ("keep1", "keep2"):
            st, _, g = kh.request(cls.m.url, "POST", "/v1/grids", {"name": name},
                                  token=cls.admin)
            assert st == 201, (st, g)
            cls.kept[name] = g

    def tearDown(self):
        # After every bad request, the grids made earlier are intact.
        for name, g in self.kept.items():
            st, _, now = self.m.req("GET", "/v1/grids/" + name, token=self.admin)
            self.assertEqual(st, 200, "grid %s lost: %r" % (name, now))
            self.assertEqual(now, g)
        self.assertEqual(self.m.req("GET", "/v1/ping")[0], 200)

    def post_grid_raw(self, data, ctype="application/json"):
        return self.m.req("POST", "/v1/grids", data, token=self.admin,
                          headers={"Content-Type": ctype})

    def test_malformed_json(self):
        for data in ("{bad", '{"name": "x",}', '{"name": "x"', "nul\x00l", "{'name':'x'}"):
            with self.subTest(data=data):
                st, hdrs, body = self.post_grid_raw(data)
                self.assertEqual(st, 400, body)
                self.assertJsonAnswer(hdrs, body, "malformed json")
                self.assertEqual(body, {"error": "Invalid json"})

    def test_json_not_object(self):
        for data in ("[1, 2]", '"alpha"', "42", "null", "true", '[{"name": "x"}]'):
            with self.subTest(data=data):
                st, hdrs, body = self.post_grid_raw(data)
                self.assertEqual(st, 400, body)
                self.assertJsonAnswer(hdrs, body, "json not an object")
                self.assertEqual(body, {"error": "Invalid json"})

    def big_body_answer(self):
        body = ('{"name": "big1", "x": "%s"}' % ("a" * (1024 * 1024 + 100))).encode()
        head = kh.http_head("POST", "/v1/grids", {
            "Authorization": "Bearer " + self.admin,
            "Content-Type": "application/json",
            "Content-Length": str(len(body))})
        return kh.raw_exchange(self.m.url, head + body)

    def test_body_over_1mib_413(self):
        st, hdrs, body = self.big_body_answer()
        self.assertEqual(st, 413, "%r %r" % (hdrs, str(body)[:200]))
        self.assertEqual(self.m.req("GET", "/v1/grids/big1", token=self.admin)[0], 404)
        # Just under the limit is fine (a 422, not a 413).
        small = json.dumps({"name": "bad name!", "x": "a" * (1024 * 1024 - 200)})
        st, _, body = self.post_grid_raw(small)
        self.assertEqual(st, 422, body)

    def test_body_over_1mib_answer_is_json(self):
        st, hdrs, body = self.big_body_answer()
        self.assertEqual(st, 413)
        self.assertJsonAnswer(hdrs, body, "413 answer")
        self.assertIn("error", body)

    def test_chunked_body_over_1mib_413(self):
        body = ('{"name": "big2", "x": "%s"}' % ("a" * (1024 * 1024 + 100))).encode()
        head = kh.http_head("POST", "/v1/grids", {
            "Authorization": "Bearer " + self.admin,
            "Content-Type": "application/json",
            "Transfer-Encoding": "chunked"})
        data = head + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"
        st, hdrs, answer = kh.raw_exchange(self.m.url, data)
        self.assertEqual(st, 413, "%r %r" % (hdrs, str(answer)[:200]))
        self.assertEqual(self.m.req("GET", "/v1/grids/big2", token=self.admin)[0], 404)

    def test_header_block_over_16kib_431(self):
        for hdrs in ({"X-Big": "a" * (17 * 1024)},
                     {"X-H%d" % i: "b" * 1000 for i in range(20)}):
            with self.subTest(n=len(hdrs)):
                st, rh, body = self.m.req("GET", "/v1/grids", token=self.admin,
                                          headers=hdrs)
                self.assertEqual(st, 431, body)
                self.assertJsonAnswer(rh, body, "431")
                self.assertIn("error", body)
        # 8 KiB of headers is still fine.
        st, _, body = self.m.req("GET", "/v1/grids", token=self.admin,
                                 headers={"X-Big": "a" * 8192})
        self.assertEqual(st, 200, body)

    def test_unknown_path_and_wrong_method(self):
        st, hdrs, body = self.m.req("GET", "/v1/nope/nope", token=self.admin)
        self.assertEqual(st, 404)
        self.assertJsonAnswer(hdrs, body, "404")
        st, hdrs, body = self.m.req("PATCH", "/v1/grids/keep1", {"x": 1}, token=self.admin)
        self.assertEqual(st, 405, body)
        self.assertJsonAnswer(hdrs, body, "405")

    def test_wrong_types_in_object(self):
        for data in ({"name": ["keep1"]}, {"name": {"a": 1}}, {"name": None, "token": 5}):
            with self.subTest(data=data):
                st, hdrs, body = self.m.req("POST", "/v1/grids", data, token=self.admin)
                self.assertEqual(st, 422, body)
                self.assertJsonAnswer(hdrs, body, "wrong types")


# ======================================================================
class TestRateLimit(unittest.TestCase):

    def bad_login(self, m):
        return m.exchange_code("000000000000")

    def test_limit_applies_to_loopback_when_asked(self):
        m = kh.Master(env={"KONTENA_RATE_LIMIT_LOOPBACK": "1",
                           "KONTENA_LOGIN_RATE_LIMIT": "5"})
        self.addCleanup(m.cleanup)
        m.start()
        for i in range(5):
            st, _, body = self.bad_login(m)
            self.assertEqual(st, 404, "attempt %d: %s %r" % (i + 1, st, body))
        st, hdrs, body = self.bad_login(m)
        self.assertEqual(st, 429, body)
        self.assertIn("x-kontena-version", hdrs)
        self.assertTrue(hdrs.get("content-type", "").startswith("application/json"))
        self.assertEqual(body, {"error": "too_many_requests"})
        # Even a right code is refused inside the window ...
        st, _, _ = m.exchange_code(m.admin_code)
        self.assertEqual(st, 429)
        # ... while other endpoints are not limited.
        self.assertEqual(m.req("GET", "/v1/ping")[0], 200)
        self.assertEqual(m.req("GET", "/v1/user")[0], 403)

    def login_from(self, m, xff):
        return m.req("POST", "/oauth2/token",
                     {"grant_type": "authorization_code", "code": "000000000000"},
                     headers={"X-Forwarded-For": xff})

    def test_forwarded_address_counts_only_from_trusted_proxies(self):
        # Loopback is our "load balancer": the limit follows the client
        # address it forwards, so one client cannot lock out the others.
        m = kh.Master(env={"KONTENA_RATE_LIMIT_LOOPBACK": "1",
                           "KONTENA_LOGIN_RATE_LIMIT": "3",
                           "KONTENA_TRUSTED_PROXIES": "127.0.0.0/8, ::1"})
        self.addCleanup(m.cleanup)
        m.start()
        a = [self.login_from(m, "198.51.100.7")[0] for _ in range(4)]
        self.assertEqual(a, [404, 404, 404, 429])
        # Another client behind the same proxy is not limited ...
        self.assertEqual(self.login_from(m, "198.51.100.8")[0], 404)
        # ... and a client cannot escape its limit by prepending entries.
        self.assertEqual(self.login_from(m, "203.0.113.1, 198.51.100.7")[0], 429)
        self.assertIn("198.51.100.7", m.stderr() + m.stdout())

    def test_forwarded_lines_read_together(self):
        # A proxy that adds its own X-Forwarded-For line (HAProxy) must not
        # let the client's own line pick the address.
        m = kh.Master(env={"KONTENA_RATE_LIMIT_LOOPBACK": "1",
                           "KONTENA_LOGIN_RATE_LIMIT": "1",
                           "KONTENA_TRUSTED_PROXIES": "127.0.0.1"})
        self.addCleanup(m.cleanup)
        m.start()
        body = b'{"grant_type":"authorization_code","code":"000000000000"}'

        def login(*xff):
            head = "".join("X-Forwarded-For: %s\r\n" % x for x in xff)
            data = ("POST /oauth2/token HTTP/1.1\r\nHost: x\r\n%s"
                    "Content-Type: application/json\r\nContent-Length: %d\r\n"
                    "Connection: close\r\n\r\n" % (head, len(body))).encode() + body
            return kh.raw_exchange(m.url, data)[0]
        self.assertEqual(login("198.51.100.50", "203.0.113.77"), 404)
        # The real client was 203.0.113.77: limited now, whatever it claims.
        self.assertEqual(login("198.51.100.51", "203.0.113.77"), 429)
        self.assertEqual(login("203.0.113.77"), 429)
        self.assertEqual(login("198.51.100.50"), 404)

    def test_forwarded_address_ignored_from_others(self):
        m = kh.Master(env={"KONTENA_RATE_LIMIT_LOOPBACK": "1",
                           "KONTENA_LOGIN_RATE_LIMIT": "2",
                           "KONTENA_TRUSTED_PROXIES": "10.0.0.0/8"})
        self.addCleanup(m.cleanup)
        m.start()
        # Every request comes from 127.0.0.1 whatever the header says.
        got = [self.login_from(m, "198.51.100.%d" % i)[0] for i in range(3)]
        self.assertEqual(got, [404, 404, 429])

    def test_bad_trusted_proxies_refused_at_start(self):
        cp = kh.run_master_once([], env={"KONTENA_TRUSTED_PROXIES": "10.0.0.0/8, lb.local"})
        self.assertNotEqual(cp.returncode, 0)
        self.assertIn("KONTENA_TRUSTED_PROXIES: 'lb.local'", cp.stderr + cp.stdout)

    def test_loopback_exempt_by_default(self):
        m = kh.Master()
        self.addCleanup(m.cleanup)
        m.start()
        statuses = [self.bad_login(m)[0] for _ in range(70)]
        self.assertEqual(statuses, [404] * 70)
        st, _, body = m.exchange_code(m.admin_code)
        self.assertEqual(st, 201, body)


# ======================================================================
class TestDurability(unittest.TestCase):

    def test_kill9_keeps_acknowledged_writes(self):
        m = kh.Master()
        self.addCleanup(m.cleanup)
        m.start()
        admin = m.login()
        names = ["dur%02d" % i for i in range(20)]
        tokens = {}
        for n in names:
            st, _, g = m.req("POST", "/v1/grids", {"name": n}, token=admin)
            self.assertEqual(st, 201, g)
            tokens[n] = g["token"]
        rc = m.kill()  # right after the last 201
        self.assertEqual(rc, -signal.SIGKILL)
        m.start()
        st, _, body = m.req("GET", "/v1/grids", token=admin)
        self.assertEqual(st, 200, "old admin token refused after restart: %r" % body)
        got = {g["name"]: g["token"] for g in body["grids"]}
        self.assertEqual(sorted(got), names)
        self.assertEqual(got, tokens, "grid tokens changed across the restart")
        st, _, user = m.req("GET", "/v1/user", token=admin)
        self.assertEqual(st, 200)
        self.assertEqual(user["email"], "admin")
        self.assertNotIn("Initial Admin Code", m.stdout())
        # Graceful stop.
        t0 = time.monotonic()
        rc = m.stop(signal.SIGTERM, timeout=5.0)
        took = time.monotonic() - t0
        self.assertEqual(rc, 0, "SIGTERM exit code %s; %s" % (rc, m.describe()))
        self.assertLess(took, 5.0)
        self.assertIn("stopped", m.logs())


# ======================================================================
class TestConfigErrors(unittest.TestCase):

    def test_bad_port(self):
        for env, args in (({"PORT": "abc"}, []), ({}, ["--port", "abc"]),
                          ({"PORT": "70000"}, [])):
            with self.subTest(env=env, args=args):
                cp = kh.run_master_once(args, env=env)
                self.assertEqual(cp.returncode, 2, kh.describe_run(cp))
                lines = cp.stderr.strip().splitlines()
                self.assertEqual(len(lines), 1, kh.describe_run(cp))
                self.assertIn("PORT" if env else "--port", lines[0])

    def test_postgres_url(self):
        port = kh.free_port()
        cp = kh.run_master_once(["--port", str(port), "--bind", "127.0.0.1"],
                                env={"KONTENA_DATABASE_URL": "postgres://x"})
        self.assertNotEqual(cp.returncode, 0, kh.describe_run(cp))
        self.assertIn("PostgreSQL", cp.stderr + cp.stdout, kh.describe_run(cp))

    def test_mongodb_uri(self):
        # No server there (port 1): a clear error naming the host, within
        # the URI's server selection timeout, and never the password.
        port = kh.free_port()
        uri = ("mongodb://kontena:s3cr3t-pw@127.0.0.1:1/kontena_master"
               "?serverSelectionTimeoutMS=1000")
        cp = kh.run_master_once(["--port", str(port), "--bind", "127.0.0.1"],
                                env={"MONGODB_URI": uri})
        out = cp.stderr + cp.stdout
        self.assertNotEqual(cp.returncode, 0, kh.describe_run(cp))
        self.assertIn("MongoDB", out, kh.describe_run(cp))
        self.assertIn("127.0.0.1:1", out, kh.describe_run(cp))
        self.assertNotIn("s3cr3t-pw", out, kh.describe_run(cp))
        # Not a MongoDB URI at all: refused before anything connects.
        cp = kh.run_master_once(["--port", str(port), "--bind", "127.0.0.1"],
                                env={"MONGODB_URI": "mysql://x"})
        self.assertNotEqual(cp.returncode, 0, kh.describe_run(cp))
        self.assertIn("MONGODB_URI", cp.stderr + cp.stdout,
                      kh.describe_run(cp))

    def test_help(self):
        cp = kh.run_master_once(["--help"])
        self.assertEqual(cp.returncode, 0, kh.describe_run(cp))
        self.assertIn("usage", cp.stdout.lower())
        self.assertIn("--port", cp.stdout)
        self.assertIn("reset-admin-code", cp.stdout)

    def test_unknown_option(self):
        cp = kh.run_master_once(["--no-such-option"])
        self.assertEqual(cp.returncode, 2, kh.describe_run(cp))
        self.assertIn("--no-such-option", cp.stderr)


# ======================================================================
class TestRobustness(MasterCase):

    def garbage(self, rng):
        """Bodies that are not a JSON object (so never a valid request)."""
        fixed = [
            b"[" * 5000,
            b"{" * 5000,
            b'{"a":' * 5000,
            b"[" * 5000 + b"]" * 5000,
            b'"' + b"a" * 500000 + b'"',
            b'{"name": "' + b"a" * 500000 + b'"',
            b"\x00" * 100,
            b'{"name": "\x00abc"}',
            b'{"name": "ab\\u0000cd"}',
            b'{"name": "\xff\xfe\xfd"}',
            b'{"name": "\xc3\x28abc"}',
            b'{"grant_type": "authorization_code", "code": "\xed\xa0\x80xyz"}',
            b'{"name": "caf\xe9"}',
            b"\xef\xbb\xbf{}",
            b"{\"name\": 1e999999}",
            b"{\"initial_size\": 123456789012345678901234567890}",
            b"-" * 1000,
            b"%%%%%%&&&&====",
        ]
        out = list(fixed)
        while len(out) < 200:
            n = rng.choice([1, 2, 7, 64, 512, 4096, 65536])
            data = bytes(rng.getrandbits(8) for _ in range(n))
            if not data.strip() or data.lstrip()[:1] == b"{":
                continue
            out.append(data)
        return out

    def test_garbage_bodies(self):
        rng = random.Random(1460)
        before = self.grid_names()
        bodies = self.garbage(rng)
        ctypes = ["application/json", "application/x-www-form-urlencoded",
                  "text/plain", None]
        failures = []
        for i, data in enumerate(bodies):
            for path in ("/v1/grids", "/oauth2/token"):
                hdrs = {}
                ctype = ctypes[i % len(ctypes)]
                if ctype:
                    hdrs["Content-Type"] = ctype
                try:
                    st, rh, body = self.m.req("POST", path, data, token=self.admin,
                                              headers=hdrs)
                except Exception as e:  # noqa: BLE001 - report, don't stop
                    failures.append((i, path, "exception %r" % e))
                    if not self.m.alive():
                        self.fail("master died on body #%d to %s: %r\n%s"
                                  % (i, path, data[:80], self.m.describe()))
                    continue
                ok = (400 <= st < 500 and isinstance(body, dict) and "error" in body
                      and rh.get("content-type", "").startswith("application/json"))
                if not ok:
                    failures.append((i, path, st, data[:60], str(body)[:120]))
        self.assertTrue(self.m.alive(), self.m.describe())
        self.assertEqual(self.m.req("GET", "/v1/ping")[0], 200)
        self.assertEqual(self.grid_names(), before, "garbage created a grid")
        self.assertEqual(failures, [], "%d garbage answers were not 4xx JSON: %r"
                         % (len(failures), failures[:10]))

    def test_garbage_on_raw_socket(self):
        """Broken HTTP itself: the master answers or closes, and lives."""
        rng = random.Random(99)
        payloads = [b"\x00" * 64, b"GET\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n",
                    b"POST /v1/grids HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
                    b"POST /v1/grids HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
                    b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n",
                    b"GET /v1/ping HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"]
        payloads += [bytes(rng.getrandbits(8) for _ in range(256)) for _ in range(10)]
        for p in payloads:
            kh.raw_exchange(self.m.url, p, timeout=3.0)
        self.assertTrue(self.m.alive(), self.m.describe())
        st, _, body = self.m.req("GET", "/v1/ping")
        self.assertEqual(st, 200, body)


if __name__ == "__main__":
    kh.main()
