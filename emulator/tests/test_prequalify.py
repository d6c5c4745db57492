"""PreQualify/Create: every status and result-code path, on both paths."""

import unittest

from emulator.tests.support import (CREATE, CREATE_NEW, DN_LEGACY, DN_PROD, DN_STAGING, DROP,
                                    SHA256_B64, USER, USER_UNIVERSAL, EmulatorCase)


class TestAuthAndScope(EmulatorCase):
    def assert401(self, reply, word):
        self.assertEqual(reply.status, 401, reply)
        self.assertEqual(reply.json["error"], "invalid_token")
        self.assertIn(word, reply.json["error_description"])
        self.assertIn("Bearer", reply.headers["WWW-Authenticate"])

    def test_missing_token(self):
        self.assert401(self.emu.create(None), "No bearer token")

    def test_not_a_bearer_header(self):
        r = self.emu.request("POST", CREATE, body={}, headers={"Authorization": "Basic YTpi"})
        self.assert401(r, "not a Bearer")

    def test_unknown_token(self):
        self.assert401(self.emu.create("not-a-real-token"), "unknown")

    def test_expired_token(self):
        tok = self.emu.token(expires_in=60)
        self.assertResult(self.emu.create(tok), 1)
        self.emu.ctl("POST", "clock", {"advance": 61})
        self.assert401(self.emu.create(tok), "expired")
        self.assertEqual(self.count(), 1)

    def test_revoked_token(self):
        tok = self.emu.token()
        self.assertEqual(self.emu.request("GET", "/vedauth/revoke/token", token=tok).status, 200)
        self.assert401(self.emu.create(tok), "revoked")

    def test_scope_without_codesign_approve_is_403_naming_it(self):
        for scope in ("configuration", "codesign:manage", "codesign"):
            tok = self.emu.token(scope=scope)
            r = self.emu.create(tok)
            self.assertEqual(r.status, 403, r)
            self.assertEqual(r.json["error"], "insufficient_rights")
            self.assertIn("Grant rejected scope 'codesign:approve'", r.json["error_description"])
        self.assertEqual(self.count(), 0)

    def test_scope_check_comes_before_body_validation(self):
        tok = self.emu.token(scope="configuration")
        r = self.emu.request("POST", CREATE, raw_body=b"{not json", token=tok)
        self.assertEqual(r.status, 403)

    def test_token_check_comes_before_scope_and_body(self):
        r = self.emu.request("POST", CREATE, raw_body=b"{not json")
        self.assertEqual(r.status, 401)


class TestBodyValidation(EmulatorCase):
    def test_not_json(self):
        r = self.emu.request("POST", CREATE, raw_body=b"{\"Dn\": ", token=self.tok)
        self.assertBad(r, "not valid JSON")

    def test_empty_body(self):
        r = self.emu.request("POST", CREATE, raw_body=b"", token=self.tok)
        self.assertBad(r, "empty")

    def test_not_an_object(self):
        for raw in (b"[]", b"\"x\"", b"42", b"null"):
            self.assertBad(self.emu.request("POST", CREATE, raw_body=raw, token=self.tok), "JSON object")

    def test_nan_is_not_json(self):
        r = self.emu.request("POST", CREATE, raw_body=b'{"Hours": NaN}', token=self.tok)
        self.assertBad(r, "not valid JSON")

    def test_wrong_casing_names_the_field(self):
        r = self.emu.create(self.tok, Dn=DROP, dn=DN_PROD)
        self.assertBad(r, "'dn'")
        self.assertIn("'Dn'", r.json["Error"])
        self.assertBad(self.emu.create(self.tok, singleUse=True), "singleUse")

    def test_unknown_field(self):
        self.assertBad(self.emu.create(self.tok, Priority=1), "'Priority'")
        # AddPreApproval's fields are not accepted here (an assumption, see README).
        self.assertBad(self.emu.create(self.tok, IPAddress="10.0.0.1"), "'IPAddress'")

    def test_missing_fields(self):
        for field in ("Dn", "Data", "Comment", "User"):
            self.assertBad(self.emu.create(self.tok, **{field: DROP}), "'%s'" % field)

    def test_wrong_types(self):
        cases = [
            ({"Hours": "8"}, "'Hours'"), ({"Hours": 1.5}, "'Hours'"), ({"Hours": 8.0}, "'Hours'"),
            ({"Hours": True}, "'Hours'"), ({"Hours": None}, "'Hours'"), ({"Hours": 0}, "'Hours'"),
            ({"Hours": -1}, "'Hours'"), ({"Hours": 8761}, "'Hours'"),
            ({"SingleUse": "true"}, "'SingleUse'"), ({"SingleUse": 1}, "'SingleUse'"),
            ({"SingleUse": None}, "'SingleUse'"),
            ({"Dn": 7}, "'Dn'"), ({"Dn": ""}, "'Dn'"), ({"User": ["local:x"]}, "'User'"),
            ({"Comment": None}, "'Comment'"), ({"Comment": "  "}, "'Comment'"), ({"Data": 12}, "'Data'"),
        ]
        for fields, word in cases:
            with self.subTest(fields=fields):
                self.assertBad(self.emu.create(self.tok, **fields), word)

    def test_bad_base64(self):
        for data in ("", "q2r", "not base64!", "q2rFZ7Tqxo2hKc8fvJNtBkO/7qR4LHCm0mQYDJ3HjNs",
                     "q2rFZ7Tqxo2hKc8fvJNtBkO_7qR4LHCm0mQYDJ3HjNs=", "q2rFZ7Tqxo2hKc8fvJNtBkO/7qR4LHCm0mQYDJ3HjNt=",
                     " q2rFZ7Tqxo2hKc8fvJNtBkO/7qR4LHCm0mQYDJ3HjNs=", "q2rF\nZ7Tq", "YQ=="[:3] + "=="):
            with self.subTest(data=data):
                r = self.emu.create(self.tok, Data=data)
                self.assertBad(r, "'Data'")
        self.assertEqual(self.count(), 0)
        self.assertResult(self.emu.create(self.tok, Data="q2rF"), 1)  # any length of strict Base64


class TestBusinessRules(EmulatorCase):
    def test_success_on_both_paths_and_any_case(self):
        for path in (CREATE, CREATE_NEW, CREATE.lower(), CREATE.upper(), "/VEDSDK/Actions/CodeSign/PreQualify/create"):
            with self.subTest(path=path):
                self.assertResult(self.emu.create(self.tok, path=path), 1)
        self.assertEqual(self.count(), 5)

    def test_reply_shape(self):
        r = self.emu.create(self.tok)
        self.assertEqual(r.json, {"Success": True, "Result": 1})
        self.assertTrue(r.headers["Content-Type"].startswith("application/json"))
        self.assertEqual(int(r.headers["Content-Length"]), len(r.raw))

    def test_stored_with_defaults(self):
        self.emu.create(self.tok)
        item = self.emu.ctl("GET", "prequalifications")["items"][0]
        self.assertEqual(item["hours"], 24)
        self.assertAlmostEqual(item["expiry"] - item["created"], 24 * 3600, delta=1)
        self.assertIs(item["single_use"], False)
        self.assertEqual(item["user"], USER_UNIVERSAL)
        self.assertEqual(item["dn"], DN_PROD)
        self.assertEqual(item["data"], SHA256_B64)
        self.assertEqual(item["comment"], "unit test")
        self.assertEqual(item["approver"], "local:{9f3e6a21-0c4b-4d7e-8a15-2b6c9d0e4f78}")
        self.assertEqual(item["uses"], 0)

    def test_hours_and_single_use_are_stored(self):
        self.emu.create(self.tok, Hours=2, SingleUse=True)
        item = self.emu.ctl("GET", "prequalifications")["items"][0]
        self.assertEqual(item["hours"], 2)
        self.assertAlmostEqual(item["expiry"] - item["created"], 7200, delta=1)
        self.assertIs(item["single_use"], True)

    def test_same_hash_twice_is_two_prequalifications(self):
        self.assertResult(self.emu.create(self.tok, SingleUse=True), 1)
        self.assertResult(self.emu.create(self.tok, SingleUse=True), 1)
        self.assertEqual(self.count(), 2)
        self.assertTrue(self.emu.sign()[0])
        self.assertTrue(self.emu.sign()[0])
        self.assertFalse(self.emu.sign()[0])

    def test_dn_and_user_match_case_insensitively(self):
        self.assertResult(self.emu.create(self.tok, Dn=DN_PROD.upper(), User="LOCAL:Sample-CS-User"), 1)
        self.assertResult(self.emu.create(self.tok, User=USER_UNIVERSAL.upper()), 1)
        self.assertResult(self.emu.create(self.tok, User="local:064cbe34-b46e-48c9-b65b-ea8dcda167d4"), 1)
        users = {i["user"] for i in self.emu.ctl("GET", "prequalifications")["items"]}
        self.assertEqual(users, {USER_UNIVERSAL})

    def test_group_members_are_key_users(self):
        # Staging lists the group local:cs-signers as its Key Users.
        self.assertResult(self.emu.create(self.tok, Dn=DN_STAGING, User="local:build-bot"), 1)

    def test_object_not_found(self):
        body = self.assertResult(self.emu.create(self.tok, Dn="\\VED\\Code Signing\\Projects\\Nope\\Env"), 7)
        self.assertIn("Nope", body["Error"])

    def test_insufficient_permission(self):
        tok = self.emu.token(username="sample-cs-user")
        self.assertResult(self.emu.create(tok), 2)
        tok = self.emu.token(username="staging-approver")
        self.assertResult(self.emu.create(tok), 2)
        self.assertResult(self.emu.create(tok, Dn=DN_STAGING), 1)

    def test_environment_without_the_prequalified_action(self):
        body = self.assertResult(self.emu.create(self.tok, Dn=DN_LEGACY), 3001)
        self.assertIn("Pre-Qualified Signature", body["Error"])

    def test_user_not_found(self):
        for user, word in (("local:nobody", "not found"), ("local:cs-signers", "group"),
                           ("local:{7b8c9d0e-f1a2-4b3c-9d4e-5f6a7b8c9d0e}", "group"),
                           ("local:other-user", "not a Key User"), ("sample-cs-user", "not found"),
                           ("AD+corp:jdoe", "not found"), ("local:approver", "not a Key User")):
            with self.subTest(user=user):
                body = self.assertResult(self.emu.create(self.tok, User=user), 1002)
                self.assertIn(word, body["Error"])
        self.assertEqual(self.count(), 0)

    def test_order_of_checks(self):
        # Environment first, then the caller's role, then the action, then the user.
        other = self.emu.token(username="other-user")
        self.assertResult(self.emu.create(other, Dn="\\VED\\Nope", User="local:nobody"), 7)
        self.assertResult(self.emu.create(other, Dn=DN_LEGACY, User="local:nobody"), 2)
        self.assertResult(self.emu.create(self.tok, Dn=DN_LEGACY, User="local:nobody"), 3001)

    def test_failures_store_nothing(self):
        self.emu.create(self.tok, Dn=DN_LEGACY)
        self.emu.create(self.emu.token(username="other-user"))
        self.assertEqual(self.count(), 0)


if __name__ == "__main__":
    unittest.main()
