"""vedauth: oauth, refresh-token rotation, verify, revoke and lifetimes."""

import time
import unittest

from emulator.tests.support import Emulator, EmulatorCase

OAUTH = "/vedauth/authorize/oauth"
REFRESH = "/vedauth/authorize/token"
VERIFY = "/vedauth/authorize/verify"
REVOKE = "/vedauth/revoke/token"
APPROVER = "local:{9f3e6a21-0c4b-4d7e-8a15-2b6c9d0e4f78}"


def login(emu, **over):
    body = {"client_id": "prequalify", "username": "approver", "password": "approver-pass-1",
            "scope": "codesign:approve"}
    body.update(over)
    return emu.request("POST", OAUTH, body=body)


class TestOAuth(EmulatorCase):
    def assertOAuthError(self, reply, error, word=None):
        self.assertEqual(reply.status, 400, reply)
        self.assertEqual(reply.json["error"], error)
        if word:
            self.assertIn(word, reply.json["error_description"])

    def test_password_grant(self):
        before = int(time.time())
        r = login(self.emu, state="xyz")
        self.assertEqual(r.status, 200, r)
        t = r.json
        self.assertEqual(set(t), {"access_token", "refresh_token", "expires", "expires_in", "refresh_until",
                                  "scope", "token_type", "identity"})
        self.assertEqual(t["token_type"], "Bearer")
        self.assertEqual(t["scope"], "codesign:approve")
        self.assertEqual(t["identity"], APPROVER)
        self.assertEqual(t["expires_in"], 3600)
        self.assertAlmostEqual(t["expires"], before + 3600, delta=2)
        self.assertAlmostEqual(t["refresh_until"], before + 86400, delta=2)
        self.assertGreaterEqual(len(t["access_token"]), 32)
        self.assertNotEqual(t["access_token"], t["refresh_token"])
        self.assertResult(self.emu.create(t["access_token"]), 1)

    def test_usernames_in_either_form_and_several_scopes(self):
        r = login(self.emu, username="LOCAL:approver", scope="codesign:approve;configuration")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["scope"], "codesign:approve;configuration")

    def test_tokens_are_random(self):
        a, b = login(self.emu).json, login(self.emu).json
        self.assertNotEqual(a["access_token"], b["access_token"])
        self.assertNotEqual(a["refresh_token"], b["refresh_token"])

    def test_bad_password_and_unknown_user(self):
        for over in ({"password": "wrong"}, {"username": "nobody"}, {"username": "cs-signers"}):
            self.assertOAuthError(login(self.emu, **over), "invalid_grant", "Username/password combination not valid")

    def test_unknown_client(self):
        self.assertOAuthError(login(self.emu, client_id="nope"), "invalid_client")

    def test_scope_not_allowed_for_the_integration(self):
        self.assertOAuthError(login(self.emu, client_id="prequalify-readonly"), "invalid_scope", "codesign:approve")
        self.assertOAuthError(login(self.emu, scope="codesign:approve,delete"), "invalid_scope")
        self.assertOAuthError(login(self.emu, scope="admin"), "invalid_scope")
        self.assertOAuthError(login(self.emu, scope=""), "invalid_scope")
        r = login(self.emu, client_id="prequalify-readonly", scope="configuration")
        self.assertEqual(r.status, 200, r)

    def test_missing_fields_and_bad_body(self):
        for field in ("client_id", "username", "password"):
            body = {"client_id": "prequalify", "username": "approver", "password": "approver-pass-1",
                    "scope": "codesign:approve"}
            del body[field]
            self.assertOAuthError(self.emu.request("POST", OAUTH, body=body), "invalid_request", field)
        self.assertOAuthError(self.emu.request("POST", OAUTH, raw_body=b"nope"), "invalid_request")

    def test_password_never_in_request_log(self):
        login(self.emu)
        log = self.emu.request("GET", "/__emulator__/requests").raw.decode()
        self.assertIn("/vedauth/authorize/oauth", log)
        self.assertNotIn("approver-pass-1", log)


class TestRefresh(EmulatorCase):
    def test_rotation(self):
        first = login(self.emu).json
        r = self.emu.request("POST", REFRESH, body={"client_id": "prequalify", "refresh_token": first["refresh_token"]})
        self.assertEqual(r.status, 200, r)
        second = r.json
        self.assertNotEqual(second["access_token"], first["access_token"])
        self.assertNotEqual(second["refresh_token"], first["refresh_token"])
        self.assertEqual(second["refresh_until"], first["refresh_until"])
        self.assertEqual(second["scope"], first["scope"])
        self.assertEqual(second["identity"], APPROVER)
        # The old refresh token is dead at once.
        r = self.emu.request("POST", REFRESH, body={"client_id": "prequalify", "refresh_token": first["refresh_token"]})
        self.assertEqual(r.status, 400)
        self.assertEqual(r.json["error"], "invalid_grant")
        self.assertIn("already been used or is invalid", r.json["error_description"])
        # The new one works, once.
        third = self.emu.request("POST", REFRESH, body={"client_id": "prequalify",
                                                        "refresh_token": second["refresh_token"]})
        self.assertEqual(third.status, 200)
        # The old access token stays valid until its own expiry (an assumption).
        self.assertResult(self.emu.create(first["access_token"]), 1)
        self.assertResult(self.emu.create(third.json["access_token"]), 1)

    def test_client_id_must_match(self):
        first = login(self.emu).json
        r = self.emu.request("POST", REFRESH, body={"client_id": "prequalify-readonly",
                                                    "refresh_token": first["refresh_token"]})
        self.assertEqual(r.status, 400)
        self.assertEqual(r.json["error"], "invalid_grant")
        self.assertIn("client_id", r.json["error_description"])
        # A mismatch does not burn the refresh token.
        r = self.emu.request("POST", REFRESH, body={"client_id": "prequalify", "refresh_token": first["refresh_token"]})
        self.assertEqual(r.status, 200)

    def test_expired_refresh_token(self):
        t = self.emu.ctl("POST", "token", {"username": "approver", "refresh_expires_in": 100})
        self.emu.ctl("POST", "clock", {"advance": 101})
        r = self.emu.request("POST", REFRESH, body={"client_id": "prequalify", "refresh_token": t["refresh_token"]})
        self.assertEqual(r.status, 400)
        self.assertEqual(r.json["error"], "invalid_grant")
        self.assertIn("expired", r.json["error_description"])

    def test_unknown_refresh_token_and_missing_fields(self):
        r = self.emu.request("POST", REFRESH, body={"client_id": "prequalify", "refresh_token": "nope"})
        self.assertEqual((r.status, r.json["error"]), (400, "invalid_grant"))
        r = self.emu.request("POST", REFRESH, body={"client_id": "prequalify"})
        self.assertEqual((r.status, r.json["error"]), (400, "invalid_request"))


class TestVerifyRevoke(EmulatorCase):
    def test_verify(self):
        t = login(self.emu).json
        r = self.emu.request("GET", VERIFY, token=t["access_token"])
        self.assertEqual(r.status, 200, r)
        v = r.json
        self.assertEqual(v["application"], "prequalify")
        self.assertEqual(v["identity"], APPROVER)
        self.assertEqual(v["scope"], "codesign:approve")
        self.assertEqual(v["expires_unix_time"], t["expires"])
        self.assertAlmostEqual(v["valid_for"], 3600, delta=2)
        self.assertLessEqual(v["grant_issued_on_unix_time"], v["access_issued_on_unix_time"])
        self.emu.ctl("POST", "clock", {"advance": 600})
        self.assertAlmostEqual(self.emu.request("GET", VERIFY, token=t["access_token"]).json["valid_for"], 3000, delta=2)

    def test_verify_invalid(self):
        self.assertEqual(self.emu.request("GET", VERIFY).status, 401)
        self.assertEqual(self.emu.request("GET", VERIFY, token="nope").status, 401)
        tok = self.emu.token(expires_in=5)
        self.emu.ctl("POST", "clock", {"advance": 5})
        r = self.emu.request("GET", VERIFY, token=tok)
        self.assertEqual((r.status, r.json["error"]), (401, "invalid_token"))

    def test_revoke_kills_access_and_refresh(self):
        t = login(self.emu).json
        r = self.emu.request("GET", REVOKE, token=t["access_token"])
        self.assertEqual(r.status, 200, r)
        for path, method in ((VERIFY, "GET"), (REVOKE, "GET")):
            self.assertEqual(self.emu.request(method, path, token=t["access_token"]).status, 401, path)
        self.assertEqual(self.emu.create(t["access_token"]).status, 401)
        r = self.emu.request("POST", REFRESH, body={"client_id": "prequalify", "refresh_token": t["refresh_token"]})
        self.assertEqual((r.status, r.json["error"]), (400, "invalid_grant"))

    def test_revoke_covers_every_access_token_of_the_grant(self):
        first = login(self.emu).json
        second = self.emu.request("POST", REFRESH, body={"client_id": "prequalify",
                                                         "refresh_token": first["refresh_token"]}).json
        self.assertEqual(self.emu.request("GET", REVOKE, token=second["access_token"]).status, 200)
        self.assertEqual(self.emu.request("GET", VERIFY, token=first["access_token"]).status, 401)

    def test_revoke_without_token(self):
        self.assertEqual(self.emu.request("GET", REVOKE).status, 401)


class TestLifetimes(unittest.TestCase):
    def test_command_line_and_config(self):
        emu = Emulator("--token-lifetime", "30", "--refresh-lifetime", "90", http=True)
        try:
            t = login(emu).json
            self.assertEqual(t["expires_in"], 30)
            self.assertAlmostEqual(t["refresh_until"] - t["expires"], 60, delta=2)
            emu.ctl("POST", "clock", {"advance": 31})
            self.assertEqual(emu.request("GET", VERIFY, token=t["access_token"]).status, 401)
            r = emu.request("POST", REFRESH, body={"client_id": "prequalify", "refresh_token": t["refresh_token"]})
            self.assertEqual(r.status, 200)
            self.assertEqual(emu.request("GET", VERIFY, token=r.json["access_token"]).status, 200)
            cfg = emu.ctl("POST", "config", {"token_lifetime": 5, "refresh_lifetime": 10})
            self.assertEqual(cfg, {"token_lifetime": 5, "refresh_lifetime": 10})
            self.assertEqual(login(emu).json["expires_in"], 5)
            emu.ctl("POST", "reset")  # back to the command line's values
            self.assertEqual(emu.ctl("GET", "config"), {"token_lifetime": 30, "refresh_lifetime": 90})
        finally:
            self.assertEqual(emu.stop()[0], 0)


if __name__ == "__main__":
    unittest.main()
