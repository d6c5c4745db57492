"""Flow tickets and the signing archive: tickets opened by signing attempts,
approve / reject / update with their result codes, both wire shapes, paging."""

import unittest

from emulator.tests.support import DN_PROD, SHA256_B64, USER, EmulatorCase

DN_REL = "\\VED\\Code Signing\\Projects\\Sample\\Release Environment"
DN_DUAL = "\\VED\\Code Signing\\Projects\\Sample\\Dual Control Environment"
T = "/vedsdk/Flow/Tickets/"
ARCHIVE = "/vedsdk/Codesign/RetrieveArchiveEntries"
HASH2 = "CAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="


class FlowCase(EmulatorCase):
    def attempt(self, dn=DN_REL, data=SHA256_B64, user=USER, **kw):
        body = {"dn": dn, "data": data, "user": user, "machine": "build-07", "executable": "signtool.exe"}
        body.update(kw)
        return self.emu.ctl("POST", "sign", body)

    def call(self, name, body, token=None):
        r = self.emu.request("POST", T + name, body=body, token=token or self.tok)
        self.assertEqual(r.status, 200, r)
        return r.json

    def pending(self):
        return self.call("Enumerate", {"ProductCode": 0})["Tickets"]


class TestTicketsFromSigning(FlowCase):
    def test_an_attempt_without_prequalification_opens_one_pending_ticket(self):
        r = self.attempt()
        self.assertFalse(r["allowed"])
        self.assertIn("approval required", r["reason"])
        again = self.attempt()
        self.assertIn("pending approval", again["reason"])
        self.assertEqual(again["ticket"], r["ticket"])
        tickets = self.pending()
        self.assertEqual(len(tickets), 1)
        t = tickets[0]
        self.assertEqual(t["Id"], r["ticket"])
        self.assertEqual(t["Environment"], {"ObjectDN": DN_REL, "User": USER, "Machine": "build-07",
                                            "Executable": "signtool.exe", "Hash": SHA256_B64})
        self.assertEqual((t["RequiredApprovals"], t["Approvals"], t["ProductCode"]), (1, [], 1610743809))
        self.assertRegex(t["Identifier"], r"\A[0-9a-f]{64}\Z")

    def test_a_prequalified_hash_opens_no_ticket(self):
        body = {"Dn": DN_REL, "Data": SHA256_B64, "Comment": "c", "User": USER}
        self.assertResult(self.emu.request("POST", "/vedsdk/Flow/Actions/CodeSign/PreQualify/Create",
                                           body=body, token=self.tok), 1)
        self.assertTrue(self.attempt()["allowed"])
        self.assertEqual(self.pending(), [])

    def test_an_environment_without_approval_opens_none(self):
        r = self.attempt(dn=DN_PROD)
        self.assertIn("not prequalified", r["reason"])
        self.assertNotIn("ticket", r)

    def test_an_approved_ticket_lets_the_signing_through_and_uses_count_down(self):
        tid = self.attempt()["ticket"]
        reply = self.call("Approve", {"TicketId": tid, "Comment": "ok", "useCount": 2})
        self.assertEqual(reply, {"Result": 0})
        self.assertEqual(self.pending(), [])
        self.assertTrue(self.attempt()["allowed"])
        loaded = self.call("Load", {"TicketId": tid})["Ticket"]
        self.assertEqual(loaded["RemainingUses"], 1)
        self.assertTrue(self.attempt()["allowed"])
        r = self.attempt()
        self.assertFalse(r["allowed"])
        self.assertNotEqual(r["ticket"], tid)  # a new request, a new ticket

    def test_an_expired_approval_no_longer_signs(self):
        tid = self.attempt()["ticket"]
        self.call("Approve", {"TicketId": tid, "Comment": "ok", "Expires": "2001-01-01T00:00:00Z"})
        self.assertFalse(self.attempt()["allowed"])

    def test_two_required_approvals(self):
        tid = self.attempt(dn=DN_DUAL)["ticket"]
        self.assertEqual(self.call("Approve", {"TicketId": tid, "Comment": "one"})["Result"], 0)
        self.assertEqual(len(self.pending()), 1)
        other = self.emu.token(username="staging-approver")
        self.assertEqual(self.call("Approve", {"TicketIds": [tid], "Comment": "two"}, other)["Result"], 0)
        self.assertEqual(self.pending(), [])
        self.assertEqual(len(self.call("EnumerateApproved", {})["Tickets"]), 1)


class TestTicketCalls(FlowCase):
    def test_invalid_ids_are_listed_and_nothing_changes(self):
        tid = self.attempt()["ticket"]
        reply = self.call("Reject", {"TicketIds": [tid, "{nope}"], "Comment": "no", "RejectionLevel": 2})
        self.assertEqual(reply["Result"], 5)
        self.assertEqual(reply["InvalidTicketIds"], ["{nope}"])
        self.assertIn("Message", reply)
        self.assertEqual(len(self.pending()), 1)

    def test_partial_mode_acts_on_the_valid_ids(self):
        self.emu.ctl("POST", "tickets", {"ticket_invalid_ids": "partial"})
        tid = self.attempt()["ticket"]
        reply = self.call("Approve", {"TicketIds": [tid, "{nope}"], "Comment": "ok"})
        self.assertEqual(reply, {"Result": 0, "InvalidTicketIds": ["{nope}"]})
        self.assertEqual(self.pending(), [])

    def test_update_works_on_approved_tickets_only(self):
        tid = self.attempt()["ticket"]
        self.assertEqual(self.call("Update", {"TicketId": tid, "Comment": "u", "useCount": 1})["Result"], 11)
        self.call("Approve", {"TicketId": tid, "Comment": "ok"})
        self.assertEqual(self.call("Update", {"TicketId": tid, "Comment": "u", "useCount": 1})["Result"], 0)
        self.assertEqual(self.call("Load", {"TicketId": tid})["Ticket"]["RemainingUses"], 1)

    def test_field_names_are_case_sensitive(self):
        tid = self.attempt()["ticket"]
        r = self.emu.request("POST", T + "Approve", body={"TicketId": tid, "Comment": "x", "UseCount": 1},
                             token=self.tok)
        self.assertBad(r, "useCount")

    def test_only_an_approver_of_the_ticket_may_act(self):
        tid = self.attempt()["ticket"]
        other = self.emu.token(username="staging-approver")
        self.assertEqual(self.call("Approve", {"TicketId": tid, "Comment": "x"}, other)["Result"], 1)

    def test_acting_needs_the_approve_scope(self):
        tid = self.attempt()["ticket"]
        tok = self.emu.token(scope="codesign:manage")
        r = self.emu.request("POST", T + "Approve", body={"TicketId": tid, "Comment": "x"}, token=tok)
        self.assertEqual(r.status, 403)

    def test_load_of_an_unknown_ticket(self):
        self.assertEqual(self.call("Load", {"TicketId": "{nope}"})["Result"], 2)

    def test_enumerate_pages(self):
        for i in range(5):
            self.attempt(machine="m%d" % i)
        pages = [self.call("Enumerate", {"TicketPageSize": 2, "TicketPageNumber": n})["Tickets"]
                 for n in range(4)]
        self.assertEqual([len(p) for p in pages], [2, 2, 1, 0])
        self.assertEqual(self.call("Count", {})["Count"], 5)

    def test_docs_wire_shape(self):
        self.emu.ctl("POST", "tickets", {"ticket_wire_shape": "docs"})
        self.attempt()
        t = self.pending()[0]
        self.assertIn({"Key": "ObjectDN", "Value": DN_REL}, t["Environment"])
        self.assertTrue(all(isinstance(a, str) and a.startswith("local:{") for a in t["Approvers"]))
        self.assertRegex(t["CreationTime"], r"\A/Date\(\d+\)/\Z")


class TestArchive(FlowCase):
    def test_every_attempt_is_archived_and_pages(self):
        tok = self.emu.token(scope="codesign:approve,manage")
        self.attempt()
        self.attempt(dn=DN_PROD, data=HASH2)
        self.emu.ctl("POST", "archive", {"dn": DN_PROD, "data": SHA256_B64, "user": USER})
        r = self.emu.request("POST", ARCHIVE, body={"ArchiveFilter": {}, "PageSize": 2, "Page": 0}, token=tok).json
        self.assertEqual((r["TotalCount"], len(r["ArchiveResults"]), r["PageNumber"]), (3, 2, 0))
        r = self.emu.request("POST", ARCHIVE, body={"ArchiveFilter": {"EnvironmentDN": DN_PROD}, "PageSize": 2,
                                                    "Page": 0}, token=tok).json
        self.assertEqual(r["TotalCount"], 2)
        self.assertEqual([e["IsSigningFailure"] for e in r["ArchiveResults"]], [True, False])
        self.assertEqual(r["ArchiveResults"][1]["Artifact"], SHA256_B64)

    def test_the_archive_needs_the_manage_scope(self):
        r = self.emu.request("POST", ARCHIVE, body={"ArchiveFilter": {}}, token=self.tok)
        self.assertEqual(r.status, 403)


if __name__ == "__main__":
    unittest.main()
