"""The test-only control surface: signing simulation, clock, logs, reset."""

import unittest

from emulator.tests.support import (CREATE, DN_PROD, DN_STAGING, SHA256_B64, USER, USER_UNIVERSAL,
                                    EmulatorCase)


class TestSignSimulation(EmulatorCase):
    def test_single_use_signs_once_then_refused(self):
        self.assertResult(self.emu.create(self.tok, SingleUse=True), 1)
        allowed, reason = self.emu.sign()
        self.assertTrue(allowed, reason)
        allowed, reason = self.emu.sign()
        self.assertFalse(allowed)
        self.assertIn("already used", reason)
        item = self.emu.ctl("GET", "prequalifications")["items"][0]
        self.assertEqual((item["uses"], item["used_up"]), (1, True))

    def test_unlimited_signs_until_expiry(self):
        self.assertResult(self.emu.create(self.tok, Hours=1), 1)
        for _ in range(3):
            self.assertTrue(self.emu.sign()[0])
        self.emu.ctl("POST", "clock", {"advance": 3599})
        self.assertTrue(self.emu.sign()[0])
        self.emu.ctl("POST", "clock", {"advance": 1})
        allowed, reason = self.emu.sign()
        self.assertFalse(allowed)
        self.assertIn("expired", reason)
        self.assertTrue(self.emu.ctl("GET", "prequalifications")["items"][0]["expired"])

    def test_expired_single_use_is_refused(self):
        self.emu.create(self.tok, SingleUse=True)  # Hours defaults to 24
        self.emu.ctl("POST", "clock", {"advance": 24 * 3600 + 1})
        allowed, reason = self.emu.sign()
        self.assertFalse(allowed)
        self.assertIn("expired", reason)

    def test_match_is_by_hash_environment_and_user(self):
        self.emu.create(self.tok)
        self.assertFalse(self.emu.sign(data="AAAA")[0])
        self.assertIn("not prequalified", self.emu.sign(data="AAAA")[1])
        self.assertFalse(self.emu.sign(dn=DN_STAGING)[0])
        self.assertFalse(self.emu.sign(user="local:build-bot")[0])
        self.assertFalse(self.emu.sign(user="local:other-user")[0])
        self.assertTrue(self.emu.sign(user=USER_UNIVERSAL)[0])
        self.assertTrue(self.emu.sign(dn=DN_PROD.lower())[0])

    def test_bad_sign_requests(self):
        r = self.emu.request("POST", "/__emulator__/sign", body={"dn": DN_PROD})
        self.assertEqual(r.status, 400)
        allowed, reason = self.emu.sign(data="not base64")
        self.assertFalse(allowed)
        self.assertIn("Base64", reason)


class TestLogAndReset(EmulatorCase):
    def test_request_log(self):
        self.emu.create(self.tok)
        self.emu.request("GET", "/vedauth/authorize/verify", token=self.tok)
        self.emu.request("GET", "/nowhere")
        log = self.emu.ctl("GET", "requests")
        self.assertEqual(log["count"], 3)
        self.assertEqual(log["by_path"], {CREATE: 1, "/vedauth/authorize/verify": 1, "/nowhere": 1})
        first = log["items"][0]
        self.assertEqual(set(first), {"method", "path", "status", "time", "fault"})
        self.assertEqual((first["method"], first["path"], first["status"], first["fault"]),
                         ("POST", CREATE, 200, None))
        only = self.emu.ctl("GET", "requests?path=prequalify%2Fcreate")
        self.assertEqual((only["count"], only["by_path"]), (1, {CREATE: 1}))
        # Control calls are not logged, and the log holds no secrets.
        raw = self.emu.request("GET", "/__emulator__/requests").raw.decode()
        self.assertNotIn("__emulator__", raw)
        self.assertNotIn(self.tok, raw)

    def test_reset(self):
        self.emu.create(self.tok)
        self.emu.ctl("POST", "faults", {"kind": "status", "status": 500, "path": "nothing-matches"})
        self.emu.ctl("POST", "clock", {"advance": 100})
        self.emu.ctl("POST", "config", {"token_lifetime": 9})
        self.emu.ctl("POST", "reset")
        self.assertEqual(self.count(), 0)
        self.assertEqual(self.emu.ctl("GET", "requests")["count"], 0)
        self.assertEqual(self.emu.ctl("GET", "faults")["count"], 0)
        self.assertEqual(self.emu.ctl("GET", "clock")["offset"], 0)
        self.assertEqual(self.emu.ctl("GET", "config")["token_lifetime"], 3600)
        self.assertEqual(self.emu.create(self.tok).status, 401, "issued tokens are forgotten")

    def test_clock(self):
        c = self.emu.ctl("POST", "clock", {"advance": 10})
        self.assertEqual(c["offset"], 10)
        self.assertEqual(self.emu.ctl("POST", "clock", {"advance": 5})["offset"], 15)
        r = self.emu.request("POST", "/__emulator__/clock", body={"advance": -1})
        self.assertEqual(r.status, 400)

    def test_control_token_options(self):
        t = self.emu.ctl("POST", "token", {"username": "build-bot", "scope": "codesign:approve;configuration",
                                           "expires_in": 50})
        self.assertEqual(t["expires_in"], 50)
        self.assertEqual(t["identity"], "local:{5a1c2f7e-3b8d-4c61-9e2a-7d4f0b6c8e13}")
        self.assertEqual(t["scope"], "codesign:approve;configuration")
        r = self.emu.request("POST", "/__emulator__/token", body={"username": "nobody"})
        self.assertEqual(r.status, 400)

    def test_unknown_control_endpoint_and_method(self):
        self.assertEqual(self.emu.request("GET", "/__emulator__/nope").status, 404)
        self.assertEqual(self.emu.request("GET", "/__emulator__/sign").status, 405)


if __name__ == "__main__":
    unittest.main()
