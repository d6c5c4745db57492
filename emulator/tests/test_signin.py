"""Password-less grants: the JWT grant against the trusted issuer, and the
certificate grant over mutual TLS with the client CA."""

import http.client
import json
import os
import shutil
import ssl
import tempfile
import unittest

from emulator.tests.support import EmulatorCase

JWT = "/vedauth/authorize/jwt"
CERT = "/vedauth/authorize/certificate"
REFRESH = "/vedauth/authorize/token"
APPROVER = "local:{9f3e6a21-0c4b-4d7e-8a15-2b6c9d0e4f78}"


class TestJwtGrant(EmulatorCase):
    def jwt(self, **kw):
        return self.emu.ctl("POST", "jwt", kw)["jwt"]

    def grant(self, token, **over):
        body = {"client_id": "prequalify", "jwt": token, "scope": "codesign:approve"}
        body.update(over)
        return self.emu.request("POST", JWT, body=body)

    def assertRefused(self, reply, word):
        self.assertEqual(reply.status, 400, reply)
        self.assertEqual(reply.json["error"], "invalid_grant")
        self.assertIn(word, reply.json["error_description"])

    def test_a_valid_jwt_gives_a_grant_that_refreshes(self):
        r = self.grant(self.jwt(identity="approver"))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["identity"], APPROVER)
        self.assertEqual(r.json["scope"], "codesign:approve")
        again = self.emu.request("POST", REFRESH, body={"client_id": "prequalify",
                                                        "refresh_token": r.json["refresh_token"]})
        self.assertEqual(again.status, 200, again)

    def test_the_minted_claims_name_issuer_audience_and_expiry(self):
        reply = self.emu.ctl("POST", "jwt", {"identity": "approver", "expires_in": 60})
        claims = reply["claims"]
        self.assertEqual(claims["sub"], "approver")
        self.assertEqual(claims["exp"] - claims["iat"], 60)
        self.assertEqual(reply["jwt"].count("."), 2)

    def test_a_changed_signature_or_payload_is_refused(self):
        head, payload, sig = self.jwt().split(".")
        other = self.jwt(identity="sample-cs-user").split(".")[1]
        self.assertRefused(self.grant(".".join((head, other, sig))), "signature")
        self.assertRefused(self.grant(".".join((head, payload, sig + "A"))), "signature")
        self.assertRefused(self.grant("not-a-jwt"), "not a JWT")

    def test_an_expired_jwt_is_refused(self):
        self.assertRefused(self.grant(self.jwt(expires_in=-1)), "expired")

    def test_the_wrong_audience_is_refused(self):
        self.assertRefused(self.grant(self.jwt(aud="https://elsewhere.example")), "audience")

    def test_a_subject_with_no_identity_is_refused(self):
        self.assertRefused(self.grant(self.jwt(identity="nobody")), "No identity is mapped")

    def test_the_integration_and_scope_are_checked_as_for_a_password(self):
        r = self.grant(self.jwt(), client_id="no-such-client")
        self.assertEqual(r.json["error"], "invalid_client")
        r = self.grant(self.jwt(), scope="admin:everything")
        self.assertEqual(r.json["error"], "invalid_scope")


class TestCertificateGrant(EmulatorCase):
    def cert_files(self, identity):
        reply = self.emu.ctl("POST", "client_cert", {"identity": identity})
        folder = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, folder)
        paths = []
        for name in ("cert", "key"):
            path = os.path.join(folder, name + ".pem")
            with open(path, "w") as f:
                f.write(reply[name])
            paths.append(path)
        return paths

    def grant(self, identity=None):
        ctx = ssl.create_default_context(cafile=self.emu.ca)
        if identity:
            cert, key = self.cert_files(identity)
            ctx.load_cert_chain(cert, key)
        c = http.client.HTTPSConnection(self.emu.host, self.emu.port, context=ctx, timeout=30)
        try:
            c.request("POST", CERT, body=json.dumps({"client_id": "prequalify", "scope": "codesign:approve"}),
                      headers={"Content-Type": "application/json"})
            r = c.getresponse()
            return r.status, json.loads(r.read())
        finally:
            c.close()

    def test_a_mapped_certificate_gives_a_grant(self):
        status, body = self.grant("approver")
        self.assertEqual(status, 200, body)
        self.assertEqual(body["identity"], APPROVER)

    def test_without_a_certificate_there_is_no_grant(self):
        status, body = self.grant()
        self.assertEqual((status, body["error"]), (400, "invalid_grant"))
        self.assertIn("No client certificate", body["error_description"])

    def test_a_subject_with_no_identity_is_refused(self):
        status, body = self.grant("stranger")
        self.assertEqual((status, body["error"]), (400, "invalid_grant"))
        self.assertIn("CN=stranger", body["error_description"])


if __name__ == "__main__":
    unittest.main()
