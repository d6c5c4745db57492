"""AddPreApproval, Identity/Browse, unknown paths and methods, HTTP plumbing."""

import socket
import ssl
import unittest

from emulator.tests.support import (CREATE, DN_LEGACY, DN_PROD, USER, USER_UNIVERSAL, EmulatorCase)

ADD = "/vedsdk/Codesign/AddPreApproval"
BROWSE = "/vedsdk/Identity/Browse"


class TestAddPreApproval(EmulatorCase):
    def add(self, token=None, **fields):
        body = {"Dn": DN_PROD, "Comment": "nightly build", "User": USER}
        body.update(fields)
        return self.emu.request("POST", ADD, body=body, token=token or self.tok)

    def items(self):
        return self.emu.ctl("GET", "preapprovals")["items"]

    def test_success_and_stored_fields(self):
        r = self.add(Hours=2, IPAddress="192.0.2.7", NotBefore="2030-01-01T00:00:00Z",
                     SigningExecutable="C:\\Program Files\\signtool.exe", SingleUse=True)
        self.assertResult(r, 1)
        item = self.items()[0]
        self.assertEqual(item["user"], USER_UNIVERSAL)
        self.assertEqual(item["ip"], "192.0.2.7")
        self.assertEqual(item["not_before"], 1893456000)
        self.assertEqual(item["expiry"], 1893456000 + 7200)
        self.assertIs(item["single_use"], True)
        self.assertEqual(item["executable"], "C:\\Program Files\\signtool.exe")

    def test_defaults(self):
        self.assertResult(self.add(), 1)
        item = self.items()[0]
        self.assertEqual(item["hours"], 24)
        self.assertIs(item["single_use"], False)
        self.assertIsNone(item["ip"])

    def test_a_preapproval_allows_signing_in_its_window(self):
        self.add(SingleUse=True)
        allowed, reason = self.emu.sign(data="AAAA")
        self.assertTrue(allowed)
        self.assertIn("pre-approved", reason)
        self.assertFalse(self.emu.sign(data="AAAA")[0])

    def test_validation(self):
        self.assertBad(self.add(IPAddress="300.1.1.1"), "'IPAddress'")
        self.assertBad(self.add(NotBefore="yesterday"), "'NotBefore'")
        self.assertBad(self.add(NotBefore="2030-01-01T00:00:00+02:00"), "UTC")
        self.assertBad(self.add(Data="AAAA"), "'Data'")
        self.assertBad(self.add(Hours="1"), "'Hours'")
        self.assertBad(self.add(User=None), "'User'")
        self.assertEqual(self.items(), [])

    def test_auth_scope_and_business_rules(self):
        self.assertEqual(self.emu.request("POST", ADD, body={}).status, 401)
        r = self.add(token=self.emu.token(scope="configuration"))
        self.assertEqual(r.status, 403)
        self.assertIn("codesign:approve", r.json["error_description"])
        self.assertResult(self.add(Dn="\\VED\\Nope"), 7)
        self.assertResult(self.add(token=self.emu.token(username="other-user")), 2)
        self.assertResult(self.add(User="local:cs-signers"), 1002)
        self.assertResult(self.add(User="local:other-user"), 1002)
        # The Legacy environment lacks the Pre-Qualified action, not pre-approval.
        self.assertResult(self.add(Dn=DN_LEGACY), 1)


class TestIdentityBrowse(EmulatorCase):
    def setUp(self):
        super().setUp()
        self.conf = self.emu.token(scope="configuration")

    def browse(self, token=None, **body):
        return self.emu.request("POST", BROWSE, body=body, token=token or self.conf)

    def test_finds_a_user(self):
        r = self.browse(Filter="sample-cs", Limit=2, IdentityType=1)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json, {"Identities": [{
            "FullName": "Sample Code Signing User", "IsGroup": False, "Name": "sample-cs-user",
            "Prefix": "local", "PrefixedName": "local:sample-cs-user",
            "PrefixedUniversal": USER_UNIVERSAL, "Type": 1,
            "Universal": "{064cbe34-b46e-48c9-b65b-ea8dcda167d4}"}]})

    def test_filter_is_case_insensitive_over_name_and_full_name(self):
        names = [i["Name"] for i in self.browse(Filter="ROBOT", IdentityType=1).json["Identities"]]
        self.assertEqual(names, ["build-bot"])

    def test_identity_type_bitmask_and_limit(self):
        def names(t, **kw):
            return [i["Name"] for i in self.browse(Filter="", IdentityType=t, **kw).json["Identities"]]
        self.assertEqual(names(2), ["cs-signers"])
        self.assertEqual(names(8), ["release-notify"])
        self.assertEqual(names(10), ["cs-signers", "release-notify"])
        self.assertEqual(len(names(1)), 5)
        self.assertEqual(len(names(11)), 7)
        self.assertEqual(len(names(11, Limit=3)), 3)
        group = self.browse(Filter="signers", IdentityType=2).json["Identities"][0]
        self.assertEqual((group["IsGroup"], group["Type"]), (True, 2))

    def test_validation_and_scope(self):
        self.assertBad(self.browse(Filter="x"), "'IdentityType'")
        self.assertBad(self.browse(IdentityType=1), "'Filter'")
        self.assertBad(self.browse(Filter="x", IdentityType=1, Limit=0), "'Limit'")
        self.assertBad(self.browse(Filter="x", IdentityType=1, filter="x"), "'filter'")
        r = self.browse(token=self.tok, Filter="x", IdentityType=1)
        self.assertEqual(r.status, 403)
        self.assertIn("'configuration'", r.json["error_description"])
        self.assertEqual(self.emu.request("POST", BROWSE, body={"Filter": "", "IdentityType": 1}).status, 401)


class TestRoutingAndHttp(EmulatorCase):
    def test_unknown_path_is_404_json(self):
        r = self.emu.request("GET", "/vedsdk/nothing/here", token=self.tok)
        self.assertEqual(r.status, 404)
        self.assertIn("Error", r.json)
        self.assertIn("application/json", r.headers["Content-Type"])

    def test_wrong_method_is_405(self):
        r = self.emu.request("GET", CREATE, token=self.tok)
        self.assertEqual(r.status, 405)
        self.assertEqual(r.headers["Allow"], "POST")
        r = self.emu.request("POST", "/vedauth/authorize/verify", body={}, token=self.tok)
        self.assertEqual(r.status, 405)

    def test_json_content_type_is_required(self):
        body = b'{"Filter": "", "IdentityType": 1}'
        conf = self.emu.token(scope="configuration")
        for path, tok in ((CREATE, self.tok), (ADD, self.tok), (BROWSE, conf), ("/vedauth/authorize/oauth", None),
                          ("/vedauth/authorize/token", None)):
            for ct in (None, "application/x-www-form-urlencoded", "text/json"):
                with self.subTest(path=path, ct=ct):
                    r = self.emu.request("POST", path, token=tok, raw_body=body, content_type=ct)
                    self.assertEqual(r.status, 415, r)
                    self.assertIn("application/json", r.json["Error"])
        r = self.emu.request("POST", BROWSE, token=conf, raw_body=body, content_type="Application/JSON; charset=utf-8")
        self.assertEqual(r.status, 200)
        # Authentication and scope are checked first.
        self.assertEqual(self.emu.request("POST", CREATE, raw_body=body, content_type=None).status, 401)
        self.assertEqual(self.emu.request("POST", BROWSE, token=self.tok, raw_body=body, content_type=None).status, 403)

    def test_query_string_is_ignored_for_routing(self):
        self.assertResult(self.emu.create(self.tok, path=CREATE + "?x=1"), 1)

    def test_keep_alive_reuses_one_connection(self):
        c = self.emu.connection()
        r = self.emu.request("GET", "/vedauth/authorize/verify", token=self.tok, conn=c)
        sock = c.sock
        for i in range(200):
            r = self.emu.request("POST", CREATE, token=self.tok, conn=c, body={
                "Dn": DN_PROD, "Data": "AAAA", "Comment": "keep-alive %d" % i, "User": USER})
            self.assertEqual(r.status, 200)
            self.assertIs(c.sock, sock, "the connection was not reused")
        c.close()
        self.assertEqual(self.count(), 200)

    def raw(self, data):
        s = socket.create_connection((self.emu.host, self.emu.port), timeout=10)
        s = self.emu.ctx.wrap_socket(s, server_hostname=self.emu.host)
        s.sendall(data)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
        s.close()
        return out

    def test_http10_closes_and_chunked_body_works(self):
        body = ('{"Dn":"%s","Data":"AAAA","Comment":"c","User":"%s"}'
                % (DN_PROD.replace("\\", "\\\\"), USER)).encode()
        chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
        out = self.raw(b"POST " + CREATE.encode() + b" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                       + self.tok.encode() + b"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
                       b"Connection: close\r\n\r\n" + chunked)
        self.assertTrue(out.startswith(b"HTTP/1.1 200 OK\r\n"), out)
        self.assertIn(b"Connection: close", out)
        self.assertTrue(out.endswith(b'{"Success":true,"Result":1}'))
        out = self.raw(b"GET /vedauth/authorize/verify HTTP/1.0\r\nAuthorization: Bearer " + self.tok.encode()
                       + b"\r\n\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 200 OK"), out)

    def test_expect_100_continue(self):
        body = ('{"Dn":"%s","Data":"AAAA","Comment":"c","User":"%s"}'
                % (DN_PROD.replace("\\", "\\\\"), USER)).encode()
        s = socket.create_connection((self.emu.host, self.emu.port), timeout=10)
        s = self.emu.ctx.wrap_socket(s, server_hostname=self.emu.host)
        s.sendall(b"POST " + CREATE.encode() + b" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                  + self.tok.encode() + b"\r\nContent-Type: application/json; charset=utf-8\r\n"
                  b"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n" % len(body))
        self.assertEqual(s.recv(100), b"HTTP/1.1 100 Continue\r\n\r\n")
        s.sendall(body)
        self.assertIn(b"200 OK", s.recv(65536))
        s.close()

    def test_garbage_and_oversized_requests(self):
        self.assertTrue(self.raw(b"NONSENSE\r\n\r\n").startswith(b"HTTP/1.1 400"))
        out = self.raw(b"POST " + CREATE.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 413"), out)
        self.assertTrue(self.raw(b"GET / HTTP/2.0\r\n\r\n").startswith(b"HTTP/1.1 505"))

    def test_plain_http_on_the_https_port_fails(self):
        s = socket.create_connection((self.emu.host, self.emu.port), timeout=10)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            data = s.recv(100)
        except ConnectionError:
            data = b""
        s.close()
        self.assertFalse(data.startswith(b"HTTP/1.1 200"))
        # and the server still serves TLS clients afterwards
        self.assertEqual(self.emu.request("GET", "/vedauth/authorize/verify", token=self.tok).status, 200)


if __name__ == "__main__":
    unittest.main()
