"""Flow tickets and the signing archive for the TPP emulator.

A signing attempt (the control surface's /__emulator__/sign calls `sign`) in an
environment whose key use flow needs an approval, and that no
pre-qualification or pre-approval covers, opens a pending Flow ticket; an
approved ticket lets the same request through and consumes a use. Every
attempt lands in the archive served by Codesign/RetrieveArchiveEntries.

`install(m)` registers the endpoints in the emulator module `m` and takes
its helpers from it (this file is imported by tpp_emulator.py, never the
other way round). Behaviour and the emulator's choices where the vendor's
documentation is unconfirmed: emulator/README.md, "Flow tickets".
"""

import datetime
import hashlib
import uuid

PRODUCT_CODE_SIGNING = 1610743809

# Flow result codes (API-NOTES.md): 0 is success here.
F_SUCCESS = 0
F_INSUFFICIENT_PERMISSION = 1
F_TICKET_NOT_FOUND = 2
F_FAILED_TO_APPROVE = 4
F_FAILED_TO_REJECT = 5
F_FAILED_TO_UPDATE = 11

PENDING, APPROVED, REJECTED = 0, 1, 2
STATUS_NAMES = {PENDING: "pending", APPROVED: "approved", REJECTED: "rejected"}

ENUMERATE_FIELDS = ("ProductCode", "TicketPageSize", "TicketPageNumber")
LOAD_FIELDS = ("TicketId", "TicketIDs")
APPROVE_FIELDS = ("Comment", "TicketId", "TicketIds", "useCount", "notBefore", "Expires")
REJECT_FIELDS = ("Comment", "TicketId", "TicketIds", "RejectionLevel")
ARCHIVE_FIELDS = ("ArchiveFilter", "PageSize", "Page")
FILTER_FIELDS = ("EnvironmentDN", "EnvironmentDNs", "ProjectDN", "TimestampAfter", "TimestampBefore",
                 "AuthenticatedUser", "IsSigningFailure", "IsSigningViolation", "IsSigningRequestAction",
                 "FreeTextFilter")

SHAPES = ("contract", "docs")
INVALID_IDS = ("atomic", "partial")
REFUSALS_A_TICKET_MAY_COVER = ("not prequalified", "already used", "expired")

M = None  # the emulator module, set by install()


class Flow:
    """Tickets and archive entries; reset with the emulator's state."""

    def __init__(self, settings):
        self.shape = settings.get("ticket_wire_shape", "contract")
        self.invalid_ids = settings.get("ticket_invalid_ids", "atomic")
        self.archive_hash = bool(settings.get("archive_hash_in_artifact", True))
        self.tickets = {}
        self.order = []
        self.archive = []

    def config(self):
        return {"ticket_wire_shape": self.shape, "ticket_invalid_ids": self.invalid_ids,
                "archive_hash_in_artifact": self.archive_hash}


def iso(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def wire_time(flow, t):
    """A time as the docs write it (/Date(ms)/) or as the contract does (ISO 8601)."""
    if t is None:
        return None
    if flow.shape == "docs":
        return "/Date(%d)/" % int(t * 1000)
    return iso(t)


def env_settings(emu, env):
    raw = emu.state.env_raw.get(env.dn.lower(), {})
    return bool(raw.get("approval_required", False)), int(raw.get("required_approvals", 1))


# ---------------------------------------------------------------------------
# The ticket as the wire shows it


def ticket_wire(emu, t):
    flow = emu.flow
    env = dict(t["environment"])
    if flow.shape == "docs":
        environment = [{"Key": k, "Value": v} for k, v in sorted(env.items())]
        approvers = list(t["approvers"])
    else:
        environment = env
        approvers = []
        for a in t["approvers"]:
            ident = emu.state.resolve(a)
            approvers.append(ident.browse_entry() if ident else {"PrefixedUniversal": a})
    return {
        "Id": t["id"], "FlowId": t["flow_id"], "FlowProcessId": t["process_id"],
        "RequiredApprovals": t["required"],
        "Approvals": [{"Universal": a["universal"], "Comment": a["comment"],
                       "ApprovalTime": wire_time(flow, a["time"])} for a in t["approvals"]],
        "Approvers": approvers,
        "CreationTime": wire_time(flow, t["created"]),
        "RemainingUses": t["remaining"],
        "NotBefore": wire_time(flow, t["not_before"]),
        "ExpiresOn": wire_time(flow, t["expires"]),
        "Identifier": t["identifier"],
        "ProductCode": PRODUCT_CODE_SIGNING,
        "Environment": environment,
        "PriorEnvironment": [] if flow.shape == "docs" else {},
        "RejectionStatus": t["rejection_status"],
        "RejectionComment": t["rejection_comment"],
    }


# ---------------------------------------------------------------------------
# Signing: tickets and the archive


def identifier(dn, user, raw, machine, executable):
    h = hashlib.sha256()
    for part in (dn.lower(), user, raw, machine or "", (executable or "").lower()):
        h.update(len(part).to_bytes(4, "big"))
        h.update(part if isinstance(part, bytes) else part.encode("utf-8"))
    return h.hexdigest()


def open_ticket(emu, env, ident, obj, raw, ident_key, now):
    _, required = env_settings(emu, env)
    tid = "{%s}" % uuid.uuid4()
    environment = {"ObjectDN": env.dn, "User": ident.prefixed_name, "Machine": obj.get("machine") or "",
                   "Executable": obj.get("executable") or "", "Hash": obj["data"]}
    if obj.get("ip"):
        environment["IPAddress"] = obj["ip"]
    t = {"id": tid, "flow_id": "{%s}" % uuid.uuid5(uuid.NAMESPACE_URL, env.dn), "process_id": len(emu.flow.order) + 1,
         "required": required, "approvals": [], "approvers": sorted("local:" + u for u in env.approvers),
         "created": now, "remaining": None, "not_before": None, "expires": None, "identifier": ident_key,
         "environment": environment, "status": PENDING, "rejection_status": 0, "rejection_comment": None,
         "actions": [], "uses": 0}
    emu.flow.tickets[tid] = t
    emu.flow.order.append(tid)
    return t


def ticket_decision(emu, env, ident, obj, raw, now):
    """(allowed, reason, ticket id) for a request no pre-qualification covers."""
    key = identifier(env.dn, ident.prefixed_universal, raw, obj.get("machine"), obj.get("executable"))
    for tid in emu.flow.order:
        t = emu.flow.tickets[tid]
        if t["identifier"] != key or t["status"] != APPROVED:
            continue
        if t["not_before"] is not None and now < t["not_before"]:
            continue
        if t["expires"] is not None and now >= t["expires"]:
            continue
        if t["remaining"] is not None and t["remaining"] <= 0:
            continue
        if t["remaining"] is not None:
            t["remaining"] -= 1
        t["uses"] += 1
        return True, "approved by ticket %s" % tid, tid
    for tid in emu.flow.order:
        t = emu.flow.tickets[tid]
        if t["identifier"] == key and t["status"] == PENDING:
            return False, "pending approval: ticket %s" % tid, tid
    t = open_ticket(emu, env, ident, obj, raw, key, now)
    return False, "approval required: ticket %s opened" % t["id"], t["id"]


def archive_add(emu, obj, signed, reason, now, planted=False):
    st = emu.state
    ident = st.resolve(obj.get("user"))
    env = st.environments.get(obj["dn"].lower()) if isinstance(obj.get("dn"), str) else None
    dn = env.dn if env else obj.get("dn")
    flow = emu.flow
    entry = {
        "ArchiveEntryId": len(flow.archive) + 1,
        "Timestamp": iso(now),
        "EventTypeId": 1 if signed else 2,
        "EventType": "Signing" if signed else "Signing Failure",
        "AuthenticatedUser": ident.prefixed_universal if ident else obj.get("user"),
        "AuthenticatedUserName": ident.prefixed_name if ident else obj.get("user"),
        "Environment": dn,
        "Project": dn.rsplit("\\", 1)[0] if isinstance(dn, str) else None,
        "Flow": "Key Use Flow",
        "Artifact": obj.get("data") if flow.archive_hash else (obj.get("executable") or "unknown"),
        "ApplicationHash": None,
        "Executable": obj.get("executable"),
        "Command": obj.get("command"),
        "Machine": obj.get("machine"),
        "IPAddress": obj.get("ip"),
        "Mechanism": "emulator",
        "IsSigningFailure": not signed,
        "Details": reason,
    }
    entry["_time"] = now
    entry["_planted"] = planted
    flow.archive.append(entry)
    return entry


def sign(emu, obj):
    """The signing simulation (the control surface's /sign): emu.sign, then
    Flow tickets where the environment needs approval; every attempt archived."""
    ok, reason = emu.sign(obj["dn"], obj["data"], obj["user"], obj.get("ip"), obj.get("executable"))
    ticket = None
    st = emu.state
    env = st.environments.get(obj["dn"].lower())
    if not ok and env is not None and reason.startswith(REFUSALS_A_TICKET_MAY_COVER) \
            and env_settings(emu, env)[0]:
        ident = st.resolve(obj["user"])
        raw = M.decode_b64(obj["data"])
        with emu.lock:
            ok, reason, ticket = ticket_decision(emu, env, ident, obj, raw, emu.now())
    with emu.lock:
        archive_add(emu, obj, ok, reason, emu.now())
    out = {"allowed": ok, "reason": reason}
    if ticket:
        out["ticket"] = ticket
    return out


# ---------------------------------------------------------------------------
# API endpoints


def flow_reply(result, message=None, **extra):
    body = {"Result": result}
    if result != F_SUCCESS and message:
        body["Message"] = message
    body.update(extra)
    return 200, M.dumps(body), ()


def read_body(emu, headers, body, fields, scope=None):
    acc, _, now = emu.check_token(headers)
    if scope:
        M._require_scope(acc, *scope)
    M.require_json_content_type(headers)
    obj = M.parse_json_object(body)
    M.check_fields(obj, fields)
    return acc, obj, now


def opt_int(obj, name, default, minimum=0):
    v = obj.get(name, default)
    if v is None:
        return default
    if type(v) is not int or v < minimum:
        raise M.BadRequest("Field '%s' must be an integer >= %d" % (name, minimum))
    return v


def ticket_ids(obj):
    if "TicketId" in obj and "TicketIds" in obj:
        raise M.BadRequest("Give either 'TicketId' or 'TicketIds', not both")
    if "TicketId" in obj:
        ids = [obj["TicketId"]]
    elif "TicketIds" in obj:
        ids = obj["TicketIds"]
        if not isinstance(ids, list) or not ids:
            raise M.BadRequest("Field 'TicketIds' must be a non-empty array of ticket ids")
    else:
        raise M.BadRequest("Missing required field 'TicketId' or 'TicketIds'")
    for i in ids:
        if not isinstance(i, str) or not i:
            raise M.BadRequest("Ticket ids must be non-empty strings")
    return ids


def enumerate_tickets(status):
    def ep(emu, headers, body, query):
        _, obj, _ = read_body(emu, headers, body, ENUMERATE_FIELDS)
        code = opt_int(obj, "ProductCode", PRODUCT_CODE_SIGNING)
        size = opt_int(obj, "TicketPageSize", 100, 1)
        page = opt_int(obj, "TicketPageNumber", 0)
        with emu.lock:
            items = [emu.flow.tickets[i] for i in emu.flow.order if emu.flow.tickets[i]["status"] == status]
            if code not in (0, PRODUCT_CODE_SIGNING):
                items = []
            chunk = [ticket_wire(emu, t) for t in items[page * size:(page + 1) * size]]
        return flow_reply(F_SUCCESS, Tickets=chunk)
    return ep


def count_tickets(status):
    def ep(emu, headers, body, query):
        _, obj, _ = read_body(emu, headers, body, ("ProductCode",))
        code = opt_int(obj, "ProductCode", 0)
        with emu.lock:
            n = sum(1 for t in emu.flow.tickets.values() if t["status"] == status)
        return flow_reply(F_SUCCESS, Count=n if code in (0, PRODUCT_CODE_SIGNING) else 0)
    return ep


def ep_load(emu, headers, body, query):
    _, obj, _ = read_body(emu, headers, body, LOAD_FIELDS)
    ids = obj.get("TicketIDs") if "TicketIDs" in obj else [obj.get("TicketId")]
    if not isinstance(ids, list) or len(ids) != 1 or not isinstance(ids[0], str):
        raise M.BadRequest("Field 'TicketId' (one ticket id string) is required")
    with emu.lock:
        t = emu.flow.tickets.get(ids[0])
        if t is None:
            return flow_reply(F_TICKET_NOT_FOUND, "Ticket %s was not found" % ids[0])
        return flow_reply(F_SUCCESS, Ticket=ticket_wire(emu, t))


def parse_when(obj, name):
    v = obj.get(name)
    if v is None:
        return None
    if not isinstance(v, str):
        raise M.BadRequest("Field '%s' must be an ISO 8601 UTC time such as 2030-01-01T00:00:00Z" % name)
    try:
        return M.parse_utc(v)
    except M.BadRequest:
        raise M.BadRequest("Field '%s' must be an ISO 8601 UTC time such as 2030-01-01T00:00:00Z" % name)


def act(emu, headers, body, fields, want, failure, apply, check):
    """The shared part of Approve, Reject and Update."""
    acc, obj, now = read_body(emu, headers, body, fields, ("codesign", "approve"))
    check(obj)  # a bad value is a 400 before anything changes
    comment = M.req_string(obj, "Comment")
    ids = ticket_ids(obj)
    caller = acc.grant.identity.prefixed_universal
    with emu.lock:
        flow = emu.flow
        invalid = [i for i in ids if i not in flow.tickets or flow.tickets[i]["status"] != want]
        valid = [i for i in ids if i not in invalid]
        for i in valid:
            if caller not in flow.tickets[i]["approvers"]:
                return flow_reply(F_INSUFFICIENT_PERMISSION, "%s is not an approver of ticket %s"
                                  % (acc.grant.identity.prefixed_name, i))
        if invalid and flow.invalid_ids == "atomic":
            return flow_reply(failure, "Not %s: %s" % (STATUS_NAMES[want], ", ".join(invalid)),
                              InvalidTicketIds=invalid)
        for i in valid:
            t = flow.tickets[i]
            apply(t, obj, comment, caller, now)
            t["actions"].append({"action": apply.__name__, "by": caller, "time": now})
    if invalid:
        return flow_reply(F_SUCCESS, InvalidTicketIds=invalid)
    return flow_reply(F_SUCCESS)


def approval_terms(t, obj):
    uses = obj.get("useCount")
    if uses is not None and (type(uses) is not int or uses < 1):
        raise M.BadRequest("Field 'useCount' must be a positive integer or null (unlimited)")
    t["remaining"] = uses
    t["not_before"] = parse_when(obj, "notBefore")
    t["expires"] = parse_when(obj, "Expires")


def approve(t, obj, comment, caller, now):
    if all(a["universal"] != caller for a in t["approvals"]):
        t["approvals"].append({"universal": caller, "comment": comment, "time": now})
    if len(t["approvals"]) >= t["required"]:
        approval_terms(t, obj)
        t["status"] = APPROVED


def reject(t, obj, comment, caller, now):
    t["status"] = REJECTED
    t["rejection_status"] = obj.get("RejectionLevel", 1)
    t["rejection_comment"] = comment


def update(t, obj, comment, caller, now):
    approval_terms(t, obj)


def check_terms(obj):
    approval_terms({}, obj)


def check_level(obj):
    level = obj.get("RejectionLevel", 1)
    if type(level) is not int or level not in (1, 2):
        raise M.BadRequest("Field 'RejectionLevel' must be 1 (retry) or 2 (final)")


def ep_approve(emu, headers, body, query):
    return act(emu, headers, body, APPROVE_FIELDS, PENDING, F_FAILED_TO_APPROVE, approve, check_terms)


def ep_reject(emu, headers, body, query):
    return act(emu, headers, body, REJECT_FIELDS, PENDING, F_FAILED_TO_REJECT, reject, check_level)


def ep_update(emu, headers, body, query):
    return act(emu, headers, body, APPROVE_FIELDS, APPROVED, F_FAILED_TO_UPDATE, update, check_terms)


def archive_matches(e, flt):
    dns = []
    if isinstance(flt.get("EnvironmentDN"), str):
        dns.append(flt["EnvironmentDN"].lower())
    if isinstance(flt.get("EnvironmentDNs"), list):
        dns.extend(d.lower() for d in flt["EnvironmentDNs"] if isinstance(d, str))
    if dns and (e["Environment"] or "").lower() not in dns:
        return False
    if isinstance(flt.get("ProjectDN"), str) and (e["Project"] or "").lower() != flt["ProjectDN"].lower():
        return False
    if flt.get("TimestampAfter") and e["_time"] <= M.parse_utc(flt["TimestampAfter"]):
        return False
    if flt.get("TimestampBefore") and e["_time"] >= M.parse_utc(flt["TimestampBefore"]):
        return False
    user = flt.get("AuthenticatedUser")
    if isinstance(user, str) and user.lower() not in ((e["AuthenticatedUser"] or "").lower(),
                                                      (e["AuthenticatedUserName"] or "").lower()):
        return False
    if isinstance(flt.get("IsSigningFailure"), bool) and e["IsSigningFailure"] != flt["IsSigningFailure"]:
        return False
    return True


def ep_archive(emu, headers, body, query):
    _, obj, _ = read_body(emu, headers, body, ARCHIVE_FIELDS, ("codesign", "manage"))
    flt = obj.get("ArchiveFilter", {})
    if not isinstance(flt, dict):
        raise M.BadRequest("Field 'ArchiveFilter' must be an object")
    M.check_fields(flt, FILTER_FIELDS)
    size = opt_int(obj, "PageSize", 100, 1)
    page = opt_int(obj, "Page", 0)
    with emu.lock:
        found = [e for e in emu.flow.archive if archive_matches(e, flt)]
    chunk = [{k: v for k, v in e.items() if not k.startswith("_")} for e in found[page * size:(page + 1) * size]]
    return 200, M.dumps({"ArchiveResults": chunk, "PageNumber": page, "TotalCount": len(found),
                         "Success": True}), ()


API_ROUTES = {
    "/vedsdk/flow/tickets/enumerate": {"POST": enumerate_tickets(PENDING)},
    "/vedsdk/flow/tickets/enumerateapproved": {"POST": enumerate_tickets(APPROVED)},
    "/vedsdk/flow/tickets/count": {"POST": count_tickets(PENDING)},
    "/vedsdk/flow/tickets/countapproved": {"POST": count_tickets(APPROVED)},
    "/vedsdk/flow/tickets/load": {"POST": ep_load},
    "/vedsdk/flow/tickets/approve": {"POST": ep_approve},
    "/vedsdk/flow/tickets/reject": {"POST": ep_reject},
    "/vedsdk/flow/tickets/update": {"POST": ep_update},
    "/vedsdk/codesign/retrievearchiveentries": {"POST": ep_archive},
}


# ---------------------------------------------------------------------------
# Control surface


def ctl_tickets(emu, method, body, query):
    if method == "POST":
        obj = M._ctl_obj(body)
        for k, v in obj.items():
            if k == "ticket_wire_shape" and v in SHAPES:
                emu.flow.shape = v
            elif k == "ticket_invalid_ids" and v in INVALID_IDS:
                emu.flow.invalid_ids = v
            elif k == "archive_hash_in_artifact" and isinstance(v, bool):
                emu.flow.archive_hash = v
            else:
                raise M.BadRequest("unknown or bad flow setting %r=%r (ticket_wire_shape: %s; "
                                   "ticket_invalid_ids: %s; archive_hash_in_artifact: bool)"
                                   % (k, v, "|".join(SHAPES), "|".join(INVALID_IDS)))
    with emu.lock:
        items = []
        for tid in emu.flow.order:
            t = dict(emu.flow.tickets[tid])
            t["status_name"] = STATUS_NAMES[t["status"]]
            items.append(t)
    return 200, {"items": items, "count": len(items), "config": emu.flow.config()}


def ctl_archive(emu, method, body, query):
    if method == "POST":
        obj = M._ctl_obj(body)
        for k in ("dn", "data", "user"):
            if not isinstance(obj.get(k), str):
                raise M.BadRequest("'%s' (a string) is required" % k)
        with emu.lock:
            e = archive_add(emu, obj, obj.get("signed", True), "planted by a test", emu.now(), planted=True)
        return 200, {k: v for k, v in e.items() if not k.startswith("_")}
    with emu.lock:
        items = [{k: v for k, v in e.items() if not k.startswith("_")} for e in emu.flow.archive]
    return 200, {"items": items, "count": len(items)}


CONTROL_ROUTES = {
    "/__emulator__/tickets": {"GET": ctl_tickets, "POST": ctl_tickets},
    "/__emulator__/archive": {"GET": ctl_archive, "POST": ctl_archive},
}


def install(module):
    """Register the endpoints in the emulator module and take its helpers."""
    global M
    M = module
    module.API_ROUTES.update(API_ROUTES)
    module.CONTROL_ROUTES.update(CONTROL_ROUTES)
