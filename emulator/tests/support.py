"""Start a real emulator process and talk to it over real HTTP(S).

No sleeps for synchronisation: start() blocks on the READY line, stop() on
the process exit.
"""

import http.client
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
EMULATOR = os.path.join(os.path.dirname(HERE), "tpp_emulator.py")
STATE = os.path.join(os.path.dirname(HERE), "state.json")

DN_PROD = "\\VED\\Code Signing\\Projects\\Sample\\Production Environment"
DN_STAGING = "\\VED\\Code Signing\\Projects\\Sample\\Staging Environment"
DN_LEGACY = "\\VED\\Code Signing\\Projects\\Sample\\Legacy Environment"
USER = "local:sample-cs-user"
USER_UNIVERSAL = "local:{064cbe34-b46e-48c9-b65b-ea8dcda167d4}"
SHA256_B64 = "q2rFZ7Tqxo2hKc8fvJNtBkO/7qR4LHCm0mQYDJ3HjNs="
CREATE = "/vedsdk/Flow/Actions/CodeSign/PreQualify/Create"
CREATE_NEW = "/vedsdk/actions/codesign/prequalify/Create"

READY_RE = re.compile(r"\AREADY url=(https?)://([^:/ ]+):(\d+) ca=(\S*)\n\Z")


class Reply:
    def __init__(self, status, headers, raw):
        self.status = status
        self.headers = headers
        self.raw = raw

    @property
    def json(self):
        return json.loads(self.raw)

    def __repr__(self):
        return "<Reply %d %r>" % (self.status, self.raw[:300])


class Emulator:
    def __init__(self, *args, http=False, control=True):
        cmd = [sys.executable, EMULATOR, "--port", "0"]
        if control:
            cmd.append("--control")
        if http:
            cmd.append("--http")
        cmd.extend(args)
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self.stderr, text=True)
        self.ready_line = self.proc.stdout.readline()
        m = READY_RE.match(self.ready_line)
        if not m:
            self.proc.kill()
            self.proc.wait()
            self.stderr.seek(0)
            raise RuntimeError("no READY line: %r %s" % (self.ready_line, self.stderr.read().decode()))
        self.scheme, self.host, self.port, self.ca = m.group(1), m.group(2), int(m.group(3)), m.group(4)
        self.url = "%s://%s:%d" % (self.scheme, self.host, self.port)
        self.ctx = None
        if self.scheme == "https":
            self.ctx = ssl.create_default_context(cafile=self.ca)  # check_hostname is on
        self._conn = None

    # -- connections -------------------------------------------------------

    def connection(self, timeout=30):
        if self.ctx is not None:
            return http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=timeout)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(self, method, path, body=None, token=None, headers=None, conn=None, raw_body=None,
                content_type="application/json"):
        """One request; a fresh connection unless `conn` is given. Returns a Reply."""
        h = {}
        if body is not None:
            raw_body = json.dumps(body).encode()
        if raw_body is not None and content_type is not None:
            h["Content-Type"] = content_type
        if token is not None:
            h["Authorization"] = "Bearer " + token
        h.update(headers or {})
        own = conn is None
        c = conn or self.connection()
        try:
            c.request(method, path, body=raw_body, headers=h)
            r = c.getresponse()
            data = r.read()
            return Reply(r.status, r.headers, data)
        finally:
            if own:
                c.close()

    def ctl(self, method, name, body=None):
        if self._conn is None:
            self._conn = self.connection()
        try:
            r = self.request(method, "/__emulator__/" + name, body=body, conn=self._conn)
        except (http.client.HTTPException, OSError):
            self._conn.close()
            self._conn = self.connection()
            r = self.request(method, "/__emulator__/" + name, body=body, conn=self._conn)
        if r.status != 200:
            raise AssertionError("control %s %s -> %r" % (method, name, r))
        return r.json

    def token(self, username="approver", scope="codesign:approve", **kw):
        body = {"username": username, "scope": scope}
        body.update(kw)
        return self.ctl("POST", "token", body)["access_token"]

    def create(self, token, path=CREATE, **fields):
        body = {"Dn": DN_PROD, "Data": SHA256_B64, "Comment": "unit test", "User": USER}
        body.update(fields)
        for k in [k for k, v in body.items() if v is _DROP]:
            del body[k]
        return self.request("POST", path, body=body, token=token)

    def sign(self, dn=DN_PROD, data=SHA256_B64, user=USER):
        r = self.ctl("POST", "sign", {"dn": dn, "data": data, "user": user})
        return r["allowed"], r["reason"]

    def stop(self, sig=signal.SIGTERM):
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        rc = self.proc.wait(timeout=20)
        rest = self.proc.stdout.read()
        self.proc.stdout.close()
        self.stderr.close()
        return rc, rest


_DROP = object()
DROP = _DROP  # pass as a field value to leave the field out


class EmulatorCase(unittest.TestCase):
    """One emulator per test class; reset before each test."""

    emulator_args = ()
    emulator_http = False

    @classmethod
    def setUpClass(cls):
        cls.emu = Emulator(*cls.emulator_args, http=cls.emulator_http)

    @classmethod
    def tearDownClass(cls):
        rc, _ = cls.emu.stop()
        assert rc == 0, rc

    def setUp(self):
        self.emu.ctl("POST", "reset")
        self.tok = self.emu.token()

    def assertResult(self, reply, code):
        self.assertEqual(reply.status, 200, reply)
        body = reply.json
        self.assertIs(body["Success"], code == 1, body)
        self.assertEqual(body["Result"], code, body)
        if code != 1:
            self.assertIsInstance(body["Error"], str)
        return body

    def assertBad(self, reply, word):
        self.assertEqual(reply.status, 400, reply)
        self.assertIn("application/json", reply.headers["Content-Type"])
        self.assertIn(word, reply.json["Error"])

    def count(self):
        return self.emu.ctl("GET", "prequalifications")["count"]
