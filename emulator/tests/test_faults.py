"""Fault injection: every kind, count, path matching, and what gets processed."""

import http.client
import json
import time
import unittest

from emulator.tests.support import CREATE, EmulatorCase

TRANSPORT_ERRORS = (http.client.HTTPException, OSError)  # ssl.SSLError is an OSError


class TestFaults(EmulatorCase):
    def fault(self, **spec):
        return self.emu.ctl("POST", "faults", spec)

    def last_log(self):
        return self.emu.ctl("GET", "requests")["items"][-1]

    def test_delay(self):
        self.fault(kind="delay", delay=0.3)
        t0 = time.monotonic()
        r = self.emu.create(self.tok)
        self.assertGreaterEqual(time.monotonic() - t0, 0.3)
        self.assertResult(r, 1)
        self.assertEqual(self.count(), 1)
        self.assertEqual(self.last_log()["fault"], "delay")

    def test_status_with_retry_after(self):
        self.fault(kind="status", status=503, retry_after="2")
        r = self.emu.create(self.tok)
        self.assertEqual(r.status, 503)
        self.assertEqual(r.headers["Retry-After"], "2")
        self.assertEqual(r.json, {"Error": "injected"})
        self.assertEqual(self.count(), 0, "a status fault does not perform the operation")
        log = self.last_log()
        self.assertEqual((log["status"], log["fault"]), (503, "status"))
        # The next request is normal again.
        self.assertResult(self.emu.create(self.tok), 1)

    def test_status_with_body_and_headers(self):
        self.fault(kind="status", status=302, headers={"Location": "https://elsewhere.invalid/x"},
                   body='{"Success":false,"Result":4242,"Error":"new code"}')
        r = self.emu.create(self.tok)
        self.assertEqual(r.status, 302)
        self.assertEqual(r.headers["Location"], "https://elsewhere.invalid/x")
        self.assertEqual(r.json["Result"], 4242)
        self.assertNotIn("Retry-After", r.headers)

    def test_drop_processes_by_default(self):
        self.fault(kind="drop")
        with self.assertRaises(TRANSPORT_ERRORS):
            self.emu.create(self.tok)
        self.assertEqual(self.count(), 1, "the server acted, the reply was lost")
        log = self.last_log()
        self.assertEqual((log["status"], log["fault"]), (None, "drop"))

    def test_drop_without_processing(self):
        self.fault(kind="drop", process=False)
        with self.assertRaises(TRANSPORT_ERRORS):
            self.emu.create(self.tok)
        self.assertEqual(self.count(), 0)

    def test_drop_mid_body(self):
        self.fault(kind="drop_mid_body")
        c = self.emu.connection()
        c.request("POST", CREATE, body=json.dumps({"Dn": "\\VED\\x", "Data": "AAAA", "Comment": "c",
                                                   "User": "local:x"}),
                  headers={"Authorization": "Bearer " + self.tok, "Content-Type": "application/json"})
        r = c.getresponse()
        self.assertEqual(r.status, 200)
        declared = int(r.headers["Content-Length"])
        with self.assertRaises(TRANSPORT_ERRORS) as cm:
            r.read()
        c.close()
        if isinstance(cm.exception, http.client.IncompleteRead):
            self.assertLess(len(cm.exception.partial), declared)
            self.assertGreater(len(cm.exception.partial), 0)
        self.assertEqual(self.last_log()["fault"], "drop_mid_body")

    def test_drop_mid_body_processes(self):
        self.fault(kind="drop_mid_body")
        with self.assertRaises(TRANSPORT_ERRORS):
            self.emu.create(self.tok)
        self.assertEqual(self.count(), 1)

    def test_malformed(self):
        self.fault(kind="malformed")
        r = self.emu.create(self.tok)
        self.assertEqual(r.status, 200)
        self.assertTrue(r.headers["Content-Type"].startswith("application/json"))
        with self.assertRaises(ValueError):
            json.loads(r.raw)
        self.assertEqual(self.count(), 1)

    def test_oversized(self):
        self.fault(kind="oversized")
        r = self.emu.create(self.tok)
        self.assertEqual(r.status, 200)
        self.assertGreaterEqual(len(r.raw), 8 * 1024 * 1024 - 64)
        self.assertEqual(r.json["Success"], True)
        self.assertEqual(self.count(), 1)
        self.fault(kind="oversized", size=100000)
        self.assertLessEqual(len(self.emu.create(self.tok).raw), 100000)

    def test_trickle(self):
        self.fault(kind="trickle", delay=0.002)
        t0 = time.monotonic()
        r = self.emu.create(self.tok)
        elapsed = time.monotonic() - t0
        self.assertResult(r, 1)
        self.assertGreater(elapsed, 100 * 0.002)  # the head alone is over 100 bytes
        self.assertEqual(self.last_log()["fault"], "trickle")

    def test_count_and_path_matching(self):
        self.fault(kind="status", status=500, count=2, path="PREQUALIFY/create")
        self.assertEqual(self.emu.request("GET", "/vedauth/authorize/verify", token=self.tok).status, 200)
        self.assertEqual(self.emu.create(self.tok).status, 500)
        self.assertEqual(self.emu.create(self.tok, path="/vedsdk/actions/codesign/prequalify/Create").status, 500)
        self.assertEqual(self.emu.create(self.tok).status, 200)
        self.assertEqual(self.emu.ctl("GET", "faults")["count"], 0)

    def test_faults_queue_in_order_and_apply_to_any_path_by_default(self):
        self.fault(kind="status", status=429)
        self.fault(kind="status", status=503)
        q = self.emu.ctl("GET", "faults")
        self.assertEqual([f["status"] for f in q["items"]], [429, 503])
        self.assertEqual(self.emu.request("GET", "/anything").status, 429)
        self.assertEqual(self.emu.request("GET", "/vedauth/authorize/verify", token=self.tok).status, 503)
        self.assertEqual(self.emu.request("GET", "/anything").status, 404)

    def test_control_calls_never_take_faults(self):
        self.fault(kind="drop", count=5)
        self.assertEqual(self.emu.ctl("GET", "faults")["items"][0]["remaining"], 5)

    def test_clear(self):
        self.fault(kind="status", status=500, count=10)
        self.assertEqual(self.emu.ctl("DELETE", "faults")["count"], 0)
        self.assertResult(self.emu.create(self.tok), 1)

    def test_bad_fault_specs(self):
        for spec in ({"kind": "explode"}, {"kind": "status"}, {"kind": "status", "status": 42},
                     {"kind": "delay", "count": 0}, {"kind": "delay", "delay": -1},
                     {"kind": "drop", "process": "yes"},
                     {"kind": "status", "status": 500, "headers": {"X-Bad": "a\r\nb"}},
                     {"kind": "status", "status": 500, "retry_after": "1\r\nX: y"}):
            with self.subTest(spec=spec):
                r = self.emu.request("POST", "/__emulator__/faults", body=spec)
                self.assertEqual(r.status, 400, r)
        self.assertEqual(self.emu.ctl("GET", "faults")["count"], 0)

    def test_the_connection_survives_non_closing_faults(self):
        c = self.emu.connection()
        self.fault(kind="status", status=503, retry_after="1")
        r1 = self.emu.request("GET", "/vedauth/authorize/verify", token=self.tok, conn=c)
        sock = c.sock
        r2 = self.emu.request("GET", "/vedauth/authorize/verify", token=self.tok, conn=c)
        self.assertEqual((r1.status, r2.status), (503, 200))
        self.assertIs(c.sock, sock)
        c.close()


if __name__ == "__main__":
    unittest.main()
