"""Start, READY line, HTTPS certificate, control flag and clean exit."""

import json
import os
import signal
import ssl
import subprocess
import sys
import tempfile
import unittest

from emulator.tests import support
from emulator.tests.support import Emulator


class TestLifecycle(unittest.TestCase):
    def test_https_ready_line_certificate_and_sigterm(self):
        emu = Emulator()
        try:
            self.assertRegex(emu.ready_line, r"\AREADY url=https://localhost:\d+ ca=/\S+/ca\.pem\n\Z")
            folder = os.path.dirname(emu.ca)
            self.assertTrue(os.path.isfile(emu.ca))
            # No server key is left on disk once the server has loaded it. The
            # JWT signing key and the client CA key, which sign on request,
            # stay in a subfolder only the emulator's user can enter.
            self.assertFalse([f for f in os.listdir(folder) if f.endswith(".key")])
            self.assertEqual(os.stat(os.path.join(folder, "signin")).st_mode & 0o777, 0o700)
            r = emu.request("GET", "/vedauth/authorize/verify")  # hostname checked against the cert
            self.assertEqual(r.status, 401)
            # The same certificate is valid for 127.0.0.1 too.
            import http.client
            c = http.client.HTTPSConnection("127.0.0.1", emu.port, context=emu.ctx, timeout=10)
            r = emu.request("GET", "/vedauth/authorize/verify", conn=c)
            c.close()
            self.assertEqual(r.status, 401)
            # An untrusted client (system roots only) is refused.
            c = http.client.HTTPSConnection("localhost", emu.port, context=ssl.create_default_context(),
                                            timeout=10)
            with self.assertRaises(ssl.SSLCertVerificationError):
                c.request("GET", "/")
            c.close()
        finally:
            rc, rest = emu.stop(signal.SIGTERM)
        self.assertEqual(rc, 0)
        self.assertEqual(rest, "", "nothing but the READY line goes to stdout")
        self.assertFalse(os.path.exists(folder), "the temporary certificate folder is removed")

    def test_fresh_keys_every_start(self):
        a, b = Emulator(http=False), Emulator(http=False)
        try:
            with open(a.ca) as fa, open(b.ca) as fb:
                self.assertNotEqual(fa.read(), fb.read())
        finally:
            self.assertEqual(a.stop()[0], 0)
            self.assertEqual(b.stop()[0], 0)

    def test_http_ready_line_and_sigint(self):
        emu = Emulator(http=True)
        try:
            self.assertRegex(emu.ready_line, r"\AREADY url=http://127\.0\.0\.1:\d+ ca=\n\Z")
            self.assertEqual(emu.request("GET", "/nowhere").status, 404)
        finally:
            rc, rest = emu.stop(signal.SIGINT)
        self.assertEqual(rc, 0)
        self.assertEqual(rest, "")

    def test_control_surface_needs_the_flag(self):
        emu = Emulator(http=True, control=False)
        try:
            for method, path in (("POST", "token"), ("GET", "requests"), ("POST", "reset"), ("POST", "faults")):
                r = emu.request(method, "/__emulator__/" + path, body={})
                self.assertEqual(r.status, 404, path)
                self.assertIn("Error", r.json)
        finally:
            self.assertEqual(emu.stop()[0], 0)

    def test_state_file_option_and_bad_state(self):
        with tempfile.TemporaryDirectory() as d:
            with open(support.STATE) as f:
                state = json.load(f)
            state["environments"][0]["dn"] = "\\VED\\Code Signing\\Projects\\Other\\Env"
            path = os.path.join(d, "state.json")
            with open(path, "w") as f:
                json.dump(state, f)
            emu = Emulator("--state", path, http=True)
            try:
                tok = emu.token()
                self.assertEqual(emu.create(tok, Dn="\\VED\\Code Signing\\Projects\\Other\\Env").json["Result"], 1)
                self.assertEqual(emu.create(tok).json["Result"], 7)
            finally:
                self.assertEqual(emu.stop()[0], 0)
            with open(path, "w") as f:
                f.write("{not json")
            p = subprocess.run([sys.executable, support.EMULATOR, "--state", path, "--http"],
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(p.returncode, 2)
            self.assertEqual(p.stdout, "")
            self.assertIn("cannot load state", p.stderr)

    def test_port_in_use_exits_2(self):
        emu = Emulator(http=True)
        try:
            p = subprocess.run([sys.executable, support.EMULATOR, "--http", "--port", str(emu.port)],
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(p.returncode, 2)
            self.assertEqual(p.stdout, "")
            self.assertIn("cannot listen", p.stderr)
        finally:
            self.assertEqual(emu.stop()[0], 0)

    def test_max_lifetime_exits_by_itself(self):
        emu = Emulator("--max-lifetime", "0.2", http=True)
        self.assertEqual(emu.proc.wait(timeout=20), 0)
        emu.stop()


if __name__ == "__main__":
    unittest.main()
