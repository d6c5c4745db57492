#!/usr/bin/env python3
"""A local stand-in for the Venafi TPP endpoints that prequalify uses.

Python 3 standard library only. Serves HTTPS (a throwaway CA and server
certificate are made with the openssl tool at start) or, with --http, plain
HTTP. Prints exactly one line to stdout when ready:

    READY url=https://localhost:PORT ca=/tmp/.../ca.pem

and nothing else. Behaviour, state file format, the test-only control surface
(--control) and every assumption are described in emulator/README.md.
"""

import argparse
import base64
import binascii
import collections
import datetime
import email.utils
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import socketserver

import signin

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_STATE = os.path.join(HERE, "state.json")

REASONS = {
    100: "Continue", 200: "OK", 201: "Created", 202: "Accepted", 204: "No Content",
    301: "Moved Permanently", 302: "Found", 307: "Temporary Redirect",
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 408: "Request Timeout", 409: "Conflict",
    411: "Length Required", 413: "Payload Too Large", 414: "URI Too Long",
    429: "Too Many Requests", 431: "Request Header Fields Too Large",
    500: "Internal Server Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Gateway Timeout", 505: "HTTP Version Not Supported",
}

# Sign result codes (API-NOTES.md, the contract's enum).
SUCCESS = 1
INSUFFICIENT_PERMISSION = 2
OBJECT_NOT_FOUND = 7
USER_NOT_FOUND = 1002
VALUE_PROHIBITED_BY_TEMPLATE = 3001

FAULT_KINDS = ("delay", "status", "drop", "drop_mid_body", "malformed", "oversized", "trickle")

B64_RE = re.compile(r"\A[A-Za-z0-9+/]*={0,2}\Z")
GUID_RE = re.compile(r"\A\{?([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})\}?\Z")

CREATE_FIELDS = ("Dn", "Data", "Comment", "User", "Hours", "SingleUse")
PREAPPROVAL_FIELDS = ("Dn", "Comment", "Hours", "IPAddress", "NotBefore", "SigningExecutable", "SingleUse", "User")
BROWSE_FIELDS = ("Filter", "Limit", "IdentityType")


def dumps(obj):
    return json.dumps(obj, separators=(",", ":")).encode("utf-8")


SUCCESS_BODY = dumps({"Success": True, "Result": SUCCESS})


class BadRequest(Exception):
    """A 400 whose body is {"Error": message}."""


class ApiReply(Exception):
    """Any early reply: status, body bytes, extra headers."""

    def __init__(self, status, body, headers=()):
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers


def oauth_error(status, error, description, headers=()):
    return ApiReply(status, dumps({"error": error, "error_description": description}), headers)


def invalid_token(description):
    return oauth_error(401, "invalid_token", description,
                       (("WWW-Authenticate", 'Bearer error="invalid_token"'),))


# ---------------------------------------------------------------------------
# Scopes: "name:priv1,priv2;name2;name3:priv"


def parse_scope(text):
    if not isinstance(text, str):
        raise ValueError("scope must be a string")
    out = {}
    for part in text.split(";"):
        part = part.strip()
        if not part:
            continue
        name, _, privs = part.partition(":")
        name = name.strip().lower()
        if not name:
            raise ValueError("empty scope name in %r" % part)
        entry = out.setdefault(name, set())
        for p in privs.split(","):
            p = p.strip().lower()
            if p:
                entry.add(p)
    if not out:
        raise ValueError("scope is empty")
    return out


def scope_covers(allowed, requested):
    for name, privs in requested.items():
        if name not in allowed or not privs <= allowed[name]:
            return False
    return True


# ---------------------------------------------------------------------------
# State


class StateError(Exception):
    pass


class Identity:
    __slots__ = ("name", "prefix", "universal", "full_name", "type", "password", "members",
                 "prefixed_name", "prefixed_universal", "is_group")

    def __init__(self, d):
        try:
            self.name = d["name"]
            self.universal = d["universal"]
        except KeyError as e:
            raise StateError("identity lacks %s: %r" % (e, d))
        self.prefix = d.get("prefix", "local")
        m = GUID_RE.match(self.universal)
        if not m:
            raise StateError("identity %s: universal must be a GUID" % self.name)
        self.universal = "{%s}" % m.group(1).lower()
        self.full_name = d.get("full_name", self.name)
        self.type = int(d.get("type", 1))
        if self.type not in (1, 2, 8):
            raise StateError("identity %s: type must be 1, 2 or 8" % self.name)
        self.is_group = self.type != 1
        self.password = d.get("password")
        self.members = list(d.get("members", []))
        self.prefixed_name = "%s:%s" % (self.prefix, self.name)
        self.prefixed_universal = "%s:%s" % (self.prefix, self.universal)

    def browse_entry(self):
        return {
            "FullName": self.full_name,
            "IsGroup": self.is_group,
            "Name": self.name,
            "Prefix": self.prefix,
            "PrefixedName": self.prefixed_name,
            "PrefixedUniversal": self.prefixed_universal,
            "Type": self.type,
            "Universal": self.universal,
        }


class Environment:
    __slots__ = ("dn", "approvers", "key_users", "prequalified_action", "preapproval_action")

    def __init__(self, dn, approvers, key_users, prequalified_action, preapproval_action):
        self.dn = dn
        self.approvers = approvers
        self.key_users = key_users
        self.prequalified_action = prequalified_action
        self.preapproval_action = preapproval_action


class State:
    """The static part: identities, integrations, environments, settings."""

    def __init__(self, data):
        if not isinstance(data, dict):
            raise StateError("state must be a JSON object")
        self.settings = dict(data.get("settings", {}))
        self.identities = [Identity(d) for d in data.get("identities", [])]
        self.by_key = {}
        self.by_username = {}
        for ident in self.identities:
            self.by_key[ident.prefixed_name.lower()] = ident
            self.by_key[ident.prefixed_universal.lower()] = ident
            self.by_key["%s:%s" % (ident.prefix.lower(), ident.universal.strip("{}"))] = ident
            if not ident.is_group:
                self.by_username[ident.name.lower()] = ident
                self.by_username[ident.prefixed_name.lower()] = ident
        self.integrations = {}
        for d in data.get("integrations", []):
            try:
                self.integrations[d["client_id"]] = parse_scope(d["scope"])
            except (KeyError, ValueError) as e:
                raise StateError("integration %r: %s" % (d, e))
        self.environments = {}
        for d in data.get("environments", []):
            if "dn" not in d:
                raise StateError("environment lacks dn: %r" % d)
            env = Environment(
                d["dn"],
                self._persons(d.get("key_use_approvers", []), d["dn"]),
                self._persons(d.get("key_users", []), d["dn"]),
                bool(d.get("prequalified_action", False)),
                bool(d.get("preapproval_action", True)),
            )
            self.environments[d["dn"].lower()] = env

    def _persons(self, names, where):
        """Universals of the persons named, groups expanded (one level deep and nested)."""
        out = set()
        todo = list(names)
        seen = set()
        while todo:
            n = todo.pop()
            ident = self.resolve(n)
            if ident is None:
                raise StateError("%s: unknown identity %r" % (where, n))
            if ident.universal in seen:
                continue
            seen.add(ident.universal)
            if ident.is_group:
                todo.extend(ident.members)
            else:
                out.add(ident.universal)
        return out

    def resolve(self, text):
        """An identity from a PrefixedName or PrefixedUniversal, or None."""
        if not isinstance(text, str):
            return None
        return self.by_key.get(text.strip().lower())


def load_state(path):
    with open(path, "r", encoding="utf-8") as f:
        return State(json.load(f))


# ---------------------------------------------------------------------------
# Tokens


class Grant:
    __slots__ = ("client_id", "identity", "scope_text", "scope", "issued", "refresh_token",
                 "refresh_until", "revoked")


class Access:
    __slots__ = ("grant", "issued", "expires")

    def __init__(self, grant, issued, expires):
        self.grant = grant
        self.issued = issued
        self.expires = expires


# ---------------------------------------------------------------------------
# The emulator's mutable state and operations (thread-safe).


class Emulator:
    def __init__(self, state, token_lifetime=None, refresh_lifetime=None):
        self.state = state
        s = state.settings
        self.default_token_lifetime = float(token_lifetime if token_lifetime is not None
                                            else s.get("token_lifetime", 3600))
        self.default_refresh_lifetime = float(refresh_lifetime if refresh_lifetime is not None
                                              else s.get("refresh_lifetime", 86400))
        self.max_hours = int(s.get("max_hours", 8760))
        self.max_data_bytes = int(s.get("max_data_bytes", 8192))
        self.max_body_bytes = int(s.get("max_body_bytes", 1048576))
        self.create_fields = frozenset(CREATE_FIELDS) | frozenset(s.get("prequalify_extra_fields", []))
        self.lock = threading.Lock()
        self.faults = []
        self.signin = None  # the JWT issuer and client CA (signin.Signin), made by main()
        self._reset_locked()

    def _reset_locked(self):
        self.token_lifetime = self.default_token_lifetime
        self.refresh_lifetime = self.default_refresh_lifetime
        self.clock_offset = 0.0
        self.access = {}
        self.refresh = {}
        self.prequals = []
        self.preapprovals = []
        self.next_id = 1
        self.log = collections.deque(maxlen=200000)
        self.faults = []

    def reset(self):
        with self.lock:
            self._reset_locked()

    def now(self):
        return time.time() + self.clock_offset

    # -- request log and faults ------------------------------------------

    def record(self, method, path, status, when, fault):
        entry = {"method": method, "path": path, "status": status, "time": when, "fault": fault}
        with self.lock:
            self.log.append(entry)

    def take_fault(self, lpath):
        with self.lock:
            for i, f in enumerate(self.faults):
                if f["path"] is None or f["path"] in lpath:
                    f["remaining"] -= 1
                    if f["remaining"] <= 0:
                        del self.faults[i]
                    return dict(f)
        return None

    # -- tokens ------------------------------------------------------------

    def _issue(self, grant, now, lifetime=None):
        tok = secrets.token_urlsafe(32)
        lifetime = self.token_lifetime if lifetime is None else lifetime
        acc = Access(grant, now, now + lifetime)
        self.access[tok] = acc
        grant.refresh_token = secrets.token_urlsafe(32)
        self.refresh[grant.refresh_token] = grant
        return self._token_reply(tok, acc, now)

    @staticmethod
    def _token_reply(tok, acc, now):
        g = acc.grant
        return {
            "access_token": tok,
            "refresh_token": g.refresh_token,
            "expires": int(acc.expires),
            "expires_in": int(round(acc.expires - now)),
            "refresh_until": int(g.refresh_until),
            "scope": g.scope_text,
            "token_type": "Bearer",
            "identity": g.identity.prefixed_universal,
        }

    def new_grant(self, identity, client_id, scope_text, scope, lifetime=None, refresh_lifetime=None):
        with self.lock:
            now = self.now()
            g = Grant()
            g.client_id = client_id
            g.identity = identity
            g.scope_text = scope_text
            g.scope = scope
            g.issued = now
            g.revoked = False
            g.refresh_until = now + (self.refresh_lifetime if refresh_lifetime is None else refresh_lifetime)
            return self._issue(g, now, lifetime)

    def refresh_grant(self, client_id, refresh_token):
        with self.lock:
            now = self.now()
            g = self.refresh.get(refresh_token)
            if g is None or g.revoked:
                raise oauth_error(400, "invalid_grant",
                                  "The refresh token has already been used or is invalid")
            if g.client_id != client_id:
                raise oauth_error(400, "invalid_grant",
                                  "The client_id does not match the application that issued the grant")
            if now >= g.refresh_until:
                del self.refresh[refresh_token]
                raise oauth_error(400, "invalid_grant", "The refresh token has expired (refresh_until has passed)")
            del self.refresh[refresh_token]
            return self._issue(g, now)

    def check_token(self, headers):
        """The Access record of the request's bearer token, or raise a 401."""
        h = headers.get("authorization")
        if not h:
            raise invalid_token("No bearer token was sent (Authorization header missing)")
        scheme, _, tok = h.partition(" ")
        tok = tok.strip()
        if scheme.lower() != "bearer" or not tok:
            raise invalid_token("The Authorization header is not a Bearer token")
        with self.lock:
            acc = self.access.get(tok)
            now = self.now()
        if acc is None:
            raise invalid_token("The access token is unknown")
        if acc.grant.revoked:
            raise invalid_token("The access token has been revoked")
        if now >= acc.expires:
            raise invalid_token("The access token has expired")
        return acc, tok, now

    def revoke(self, acc):
        with self.lock:
            g = acc.grant
            g.revoked = True
            self.refresh.pop(g.refresh_token, None)

    # -- stores ------------------------------------------------------------

    def store(self, kind, item):
        with self.lock:
            item["id"] = self.next_id
            self.next_id += 1
            (self.prequals if kind == "prequal" else self.preapprovals).append(item)

    def sign(self, dn, data, user, ip=None, executable=None):
        """May hash `data` be signed in environment `dn` by `user` now?"""
        st = self.state
        env = st.environments.get(dn.lower()) if isinstance(dn, str) else None
        if env is None:
            return False, "environment not found: %s" % dn
        ident = st.resolve(user)
        if ident is None:
            return False, "user not found: %s" % user
        if ident.is_group or ident.universal not in env.key_users:
            return False, "%s is not a Key User of the environment" % ident.prefixed_name
        raw = decode_b64(data) if isinstance(data, str) else None
        if raw is None:
            return False, "data is not strict Base64"
        with self.lock:
            now = self.now()
            expired = used = 0
            for p in self.prequals:
                if p["dn_key"] != env.dn.lower() or p["user"] != ident.prefixed_universal or p["raw"] != raw:
                    continue
                if now >= p["expiry"]:
                    expired += 1
                    continue
                if p["single_use"] and p["uses"] >= 1:
                    used += 1
                    continue
                p["uses"] += 1
                return True, "pre-qualified (id %d%s)" % (p["id"], ", single-use, now used" if p["single_use"] else "")
            for p in self.preapprovals:
                if p["dn_key"] != env.dn.lower() or p["user"] != ident.prefixed_universal:
                    continue
                if p["ip"] and ip is not None and p["ip"] != ip:
                    continue
                if p["executable"] and executable is not None and p["executable"].lower() != executable.lower():
                    continue
                if now < p["not_before"]:
                    continue
                if now >= p["expiry"] or (p["single_use"] and p["uses"] >= 1):
                    continue
                p["uses"] += 1
                return True, "pre-approved (id %d)" % p["id"]
        if used:
            return False, "already used: the single-use pre-qualification was consumed"
        if expired:
            return False, "expired: the pre-qualification is past its expiry"
        return False, "not prequalified: no pre-qualification matches this hash, environment and user"

    def listing(self, kind):
        now = self.now()
        with self.lock:
            src = self.prequals if kind == "prequal" else self.preapprovals
            items = []
            for p in src:
                d = {k: v for k, v in p.items() if k not in ("raw", "dn_key")}
                d["expired"] = now >= p["expiry"]
                d["used_up"] = bool(p["single_use"] and p["uses"] >= 1)
                items.append(d)
        return items


def decode_b64(s):
    """Bytes of strict, canonical standard Base64 text, or None."""
    if not s or len(s) % 4 or not B64_RE.match(s):
        return None
    try:
        raw = base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError):
        return None
    if base64.b64encode(raw).decode("ascii") != s:
        return None  # non-zero padding bits: not canonical
    return raw


# ---------------------------------------------------------------------------
# Request validation


def require_json_content_type(headers):
    ct = headers.get("content-type", "")
    if ct.split(";", 1)[0].strip().lower() != "application/json":
        raise ApiReply(415, dumps({"Error": "Content-Type must be application/json (got %s)"
                                   % (repr(ct) if ct else "none")}))


def parse_json_object(body):
    if not body:
        raise BadRequest("The request body is empty; a JSON object is required")
    try:
        obj = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as e:
        raise BadRequest("The request body is not valid JSON: %s" % e)
    if not isinstance(obj, dict):
        raise BadRequest("The request body must be a JSON object")
    return obj


def _reject_constant(name):
    raise ValueError("%s is not JSON" % name)


def check_fields(obj, allowed):
    for k in obj:
        if k not in allowed:
            hint = ""
            for a in allowed:
                if a.lower() == k.lower():
                    hint = " (field names are case-sensitive: did you mean '%s'?)" % a
                    break
            raise BadRequest("Unknown field '%s'%s" % (k, hint))


def req_string(obj, name, allow_empty=False):
    if name not in obj:
        raise BadRequest("Missing required field '%s'" % name)
    v = obj[name]
    if not isinstance(v, str):
        raise BadRequest("Field '%s' must be a string" % name)
    if not allow_empty and not v.strip():
        raise BadRequest("Field '%s' must not be empty" % name)
    return v


def opt_string(obj, name):
    if name not in obj:
        return None
    v = obj[name]
    if not isinstance(v, str):
        raise BadRequest("Field '%s' must be a string" % name)
    return v


def opt_hours(obj, max_hours):
    if "Hours" not in obj:
        return 24
    v = obj["Hours"]
    if type(v) is not int:
        raise BadRequest("Field 'Hours' must be an integer number of hours")
    if v < 1 or v > max_hours:
        raise BadRequest("Field 'Hours' must be from 1 to %d (got %d)" % (max_hours, v))
    return v


def opt_bool(obj, name, default=False):
    if name not in obj:
        return default
    v = obj[name]
    if type(v) is not bool:
        raise BadRequest("Field '%s' must be a boolean (true or false)" % name)
    return v


def parse_utc(text):
    """Seconds since the epoch from ISO 8601 UTC text, or raise BadRequest."""
    try:
        t = text.strip()
        if t.endswith(("Z", "z")):
            t = t[:-1] + "+00:00"
        d = datetime.datetime.fromisoformat(t)
    except ValueError:
        raise BadRequest("Field 'NotBefore' must be an ISO 8601 UTC time such as 2024-05-01T12:00:00Z")
    if d.tzinfo is None:
        d = d.replace(tzinfo=datetime.timezone.utc)
    elif d.utcoffset() != datetime.timedelta(0):
        raise BadRequest("Field 'NotBefore' must be in UTC (Z or +00:00)")
    return d.timestamp()


# ---------------------------------------------------------------------------
# API endpoints. Each takes (emu, headers, body, query) and returns
# (status, body_bytes, extra_headers) or raises ApiReply/BadRequest.


def _require_scope(acc, name, priv):
    privs = acc.grant.scope.get(name)
    if privs is None or (priv is not None and priv not in privs):
        need = name if priv is None else "%s:%s" % (name, priv)
        raise oauth_error(403, "insufficient_rights",
                          "Grant rejected scope '%s' required for this operation; the token's scope is '%s'"
                          % (need, acc.grant.scope_text))


def _fail(code, message):
    return 200, dumps({"Success": False, "Result": code, "Error": message}), ()


def _business_checks(emu, acc, dn, user, action_attr, action_name):
    """Order: environment exists (7), caller approves (2), action (3001), user (1002)."""
    st = emu.state
    env = st.environments.get(dn.lower())
    if env is None:
        return None, None, _fail(OBJECT_NOT_FOUND, "Object not found: '%s' does not exist" % dn)
    caller = acc.grant.identity
    if caller.universal not in env.approvers:
        return None, None, _fail(INSUFFICIENT_PERMISSION,
                                 "Insufficient permission: %s is not a Key Use Approver of '%s'"
                                 % (caller.prefixed_name, env.dn))
    if not getattr(env, action_attr):
        return None, None, _fail(VALUE_PROHIBITED_BY_TEMPLATE,
                                 "The key use flow of '%s' has no %s action" % (env.dn, action_name))
    ident = st.resolve(user)
    if ident is None:
        return None, None, _fail(USER_NOT_FOUND, "User not found: '%s'" % user)
    if ident.is_group:
        return None, None, _fail(USER_NOT_FOUND,
                                 "User not found: '%s' is a group, not a person" % user)
    if ident.universal not in env.key_users:
        return None, None, _fail(USER_NOT_FOUND,
                                 "User not found: '%s' is not a Key User of '%s'" % (user, env.dn))
    return env, ident, None


def ep_prequalify_create(emu, headers, body, query):
    acc, _, now = emu.check_token(headers)
    _require_scope(acc, "codesign", "approve")
    require_json_content_type(headers)
    obj = parse_json_object(body)
    check_fields(obj, emu.create_fields)
    dn = req_string(obj, "Dn")
    data = req_string(obj, "Data")
    raw = decode_b64(data)
    if raw is None:
        raise BadRequest("Field 'Data' must be strict standard Base64 (RFC 4648 alphabet, '=' padding)")
    if len(raw) > emu.max_data_bytes:
        raise BadRequest("Field 'Data' decodes to %d bytes; at most %d are allowed" % (len(raw), emu.max_data_bytes))
    comment = req_string(obj, "Comment")
    user = req_string(obj, "User")
    hours = opt_hours(obj, emu.max_hours)
    single = opt_bool(obj, "SingleUse")
    env, ident, failure = _business_checks(emu, acc, dn, user, "prequalified_action", "Pre-Qualified Signature")
    if failure:
        return failure
    emu.store("prequal", {
        "data": data, "raw": raw, "dn": env.dn, "dn_key": env.dn.lower(),
        "user": ident.prefixed_universal, "user_name": ident.prefixed_name,
        "hours": hours, "expiry": now + hours * 3600, "single_use": single, "comment": comment,
        "approver": acc.grant.identity.prefixed_universal, "created": now, "uses": 0,
    })
    return 200, SUCCESS_BODY, ()


def ep_add_preapproval(emu, headers, body, query):
    acc, _, now = emu.check_token(headers)
    _require_scope(acc, "codesign", "approve")
    require_json_content_type(headers)
    obj = parse_json_object(body)
    check_fields(obj, PREAPPROVAL_FIELDS)
    dn = req_string(obj, "Dn")
    comment = req_string(obj, "Comment")
    user = req_string(obj, "User")
    hours = opt_hours(obj, emu.max_hours)
    single = opt_bool(obj, "SingleUse")
    ip = opt_string(obj, "IPAddress")
    if ip is not None:
        try:
            ip = str(ipaddress.ip_address(ip.strip()))
        except ValueError:
            raise BadRequest("Field 'IPAddress' must be an IPv4 or IPv6 address")
    exe = opt_string(obj, "SigningExecutable")
    nb = opt_string(obj, "NotBefore")
    not_before = parse_utc(nb) if nb is not None else now
    env, ident, failure = _business_checks(emu, acc, dn, user, "preapproval_action", "Pre-Approval")
    if failure:
        return failure
    emu.store("preapproval", {
        "dn": env.dn, "dn_key": env.dn.lower(), "user": ident.prefixed_universal,
        "user_name": ident.prefixed_name, "hours": hours, "not_before": not_before,
        "expiry": not_before + hours * 3600, "single_use": single, "ip": ip, "executable": exe,
        "comment": comment, "approver": acc.grant.identity.prefixed_universal, "created": now, "uses": 0,
    })
    return 200, SUCCESS_BODY, ()


def ep_identity_browse(emu, headers, body, query):
    acc, _, _ = emu.check_token(headers)
    _require_scope(acc, "configuration", None)
    require_json_content_type(headers)
    obj = parse_json_object(body)
    check_fields(obj, BROWSE_FIELDS)
    flt = req_string(obj, "Filter", allow_empty=True).lower()
    if "IdentityType" not in obj:
        raise BadRequest("Missing required field 'IdentityType' (1 user, 2 security group, 8 distribution group)")
    itype = obj["IdentityType"]
    if type(itype) is not int or itype <= 0:
        raise BadRequest("Field 'IdentityType' must be a positive integer bitmask")
    limit = obj.get("Limit", 100)
    if type(limit) is not int or limit < 1:
        raise BadRequest("Field 'Limit' must be a positive integer")
    out = []
    for ident in sorted(emu.state.identities, key=lambda i: i.name.lower()):
        if not ident.type & itype:
            continue
        if flt and flt not in ident.name.lower() and flt not in ident.full_name.lower() \
                and flt not in ident.prefixed_name.lower():
            continue
        out.append(ident.browse_entry())
        if len(out) >= limit:
            break
    return 200, dumps({"Identities": out}), ()


def _oauth_body(headers, body):
    require_json_content_type(headers)
    try:
        return parse_json_object(body)
    except BadRequest as e:
        raise oauth_error(400, "invalid_request", str(e))


def _oauth_str(obj, name):
    v = obj.get(name)
    if not isinstance(v, str) or not v:
        raise oauth_error(400, "invalid_request", "'%s' is required" % name)
    return v


def _integration(emu, obj, client_id):
    """The requested scope text and what the API integration allows."""
    scope_text = obj.get("scope")
    if not isinstance(scope_text, str) or not scope_text.strip():
        raise oauth_error(400, "invalid_scope", "'scope' is required, e.g. codesign:approve")
    allowed = emu.state.integrations.get(client_id)
    if allowed is None:
        raise oauth_error(400, "invalid_client", "The client_id is not a registered API integration")
    return scope_text, allowed


def ep_oauth(emu, headers, body, query):
    obj = _oauth_body(headers, body)
    client_id = _oauth_str(obj, "client_id")
    username = _oauth_str(obj, "username")
    password = _oauth_str(obj, "password")
    scope_text, allowed = _integration(emu, obj, client_id)
    ident = emu.state.by_username.get(username.strip().lower())
    if ident is None or ident.password is None or not secrets.compare_digest(ident.password, password):
        raise oauth_error(400, "invalid_grant", "Username/password combination not valid")
    return _grant(emu, ident, client_id, scope_text, allowed)


def _grant(emu, ident, client_id, scope_text, allowed):
    """A new grant for a signed-in identity, within what the integration allows."""
    try:
        requested = parse_scope(scope_text)
    except ValueError as e:
        raise oauth_error(400, "invalid_scope", "The scope is malformed: %s" % e)
    if not scope_covers(allowed, requested):
        raise oauth_error(400, "invalid_scope",
                          "The requested scope '%s' is not allowed for client_id '%s'" % (scope_text, client_id))
    reply = emu.new_grant(ident, client_id, scope_text.strip(), requested)
    return 200, dumps(reply), ()


def _mapped(emu, name, what):
    """The person a password-less sign-in names (by user name), or invalid_grant."""
    ident = emu.state.by_username.get(name.strip().lower()) if isinstance(name, str) else None
    if ident is None:
        raise oauth_error(400, "invalid_grant", "No identity is mapped to %s" % what)
    return ident


def ep_jwt(emu, headers, body, query):
    obj = _oauth_body(headers, body)
    client_id = _oauth_str(obj, "client_id")
    token = _oauth_str(obj, "jwt")
    scope_text, allowed = _integration(emu, obj, client_id)
    claims, why = emu.signin.verify_jwt(token, emu.now())
    if claims is None:
        raise oauth_error(400, "invalid_grant", "The JWT was refused: %s" % why)
    sub = claims.get("sub")
    ident = _mapped(emu, sub, "the JWT subject %r" % sub)
    return _grant(emu, ident, client_id, scope_text, allowed)


def ep_certificate(emu, headers, body, query):
    obj = _oauth_body(headers, body)
    client_id = _oauth_str(obj, "client_id")
    scope_text, allowed = _integration(emu, obj, client_id)
    subject = headers.get(signin.SUBJECT_HEADER)
    if not subject:
        raise oauth_error(400, "invalid_grant", "No client certificate was presented over TLS")
    ident = _mapped(emu, subject, "the certificate subject CN=%s" % subject)
    return _grant(emu, ident, client_id, scope_text, allowed)


def ep_token(emu, headers, body, query):
    obj = _oauth_body(headers, body)
    client_id = _oauth_str(obj, "client_id")
    refresh_token = _oauth_str(obj, "refresh_token")
    return 200, dumps(emu.refresh_grant(client_id, refresh_token)), ()


def ep_verify(emu, headers, body, query):
    acc, _, now = emu.check_token(headers)
    g = acc.grant
    return 200, dumps({
        "access_issued_on_unix_time": int(acc.issued),
        "application": g.client_id,
        "expires_unix_time": int(acc.expires),
        "grant_issued_on_unix_time": int(g.issued),
        "identity": g.identity.prefixed_universal,
        "scope": g.scope_text,
        "valid_for": int(acc.expires - now),
    }), ()


def ep_revoke(emu, headers, body, query):
    acc, _, _ = emu.check_token(headers)
    emu.revoke(acc)
    return 200, dumps({"Revoked": True}), ()


API_ROUTES = {
    "/vedsdk/flow/actions/codesign/prequalify/create": {"POST": ep_prequalify_create},
    "/vedsdk/actions/codesign/prequalify/create": {"POST": ep_prequalify_create},
    "/vedsdk/codesign/addpreapproval": {"POST": ep_add_preapproval},
    "/vedsdk/identity/browse": {"POST": ep_identity_browse},
    "/vedauth/authorize/oauth": {"POST": ep_oauth},
    "/vedauth/authorize/token": {"POST": ep_token},
    "/vedauth/authorize/jwt": {"POST": ep_jwt},
    "/vedauth/authorize/certificate": {"POST": ep_certificate},
    "/vedauth/authorize/verify": {"GET": ep_verify},
    "/vedauth/revoke/token": {"GET": ep_revoke},
}


# ---------------------------------------------------------------------------
# Control surface (/__emulator__/..., only with --control)


def _ctl_obj(body):
    if not body or not body.strip():
        return {}
    return parse_json_object(body)


def _num(obj, name, default, minimum=0):
    v = obj.get(name, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v < minimum:
        raise BadRequest("'%s' must be a number >= %s" % (name, minimum))
    return v


def ctl_token(emu, method, body, query):
    obj = _ctl_obj(body)
    username = obj.get("username", "approver")
    ident = emu.state.by_username.get(str(username).lower()) or emu.state.resolve(username)
    if ident is None or ident.is_group:
        raise BadRequest("unknown user %r" % username)
    client_id = obj.get("client_id", "prequalify")
    scope_text = obj.get("scope", "codesign:approve")
    try:
        scope = parse_scope(scope_text)
    except ValueError as e:
        raise BadRequest("bad scope: %s" % e)
    lifetime = obj.get("expires_in")
    if lifetime is not None:
        lifetime = _num(obj, "expires_in", None)
    rlife = obj.get("refresh_expires_in")
    if rlife is not None:
        rlife = _num(obj, "refresh_expires_in", None)
    return 200, emu.new_grant(ident, str(client_id), scope_text.strip(), scope, lifetime, rlife)


def ctl_jwt(emu, method, body, query):
    """A JWT from the trusted issuer for `identity` (a user name, not checked:
    an unknown one makes a JWT the server maps to no identity). GET takes
    `identity` and `audience` from the query and answers {"value": jwt} as
    GitHub's ACTIONS_ID_TOKEN_REQUEST_URL does, so CI steps can run here."""
    if method == "GET":
        q = dict(part.partition("=")[::2] for part in query.split("&") if part)
        obj = {"identity": urllib_unquote(q.get("identity", "approver"))}
        if "audience" in q:
            obj["aud"] = urllib_unquote(q["audience"])
    else:
        obj = _ctl_obj(body)
    sub = obj.get("identity", "approver")
    aud = obj.get("aud")
    if not isinstance(sub, str) or (aud is not None and not isinstance(aud, (str, list))):
        raise BadRequest("'identity' must be a string and 'aud' a string or list")
    expires_in = obj.get("expires_in", 300)
    if isinstance(expires_in, bool) or not isinstance(expires_in, (int, float)):
        raise BadRequest("'expires_in' must be a number of seconds (negative: already expired)")
    token, claims = emu.signin.mint_jwt(sub, emu.now(), expires_in, aud)
    return 200, {"jwt": token, "value": token, "claims": claims}


def ctl_client_cert(emu, method, body, query):
    """A key and a client certificate from the client CA for subject CN=`identity`."""
    obj = _ctl_obj(body)
    sub = obj.get("identity", "approver")
    if not isinstance(sub, str) or not re.match(r"\A[\w.@ -]{1,64}\Z", sub):
        raise BadRequest("'identity' must be a user name")
    cert, key = emu.signin.mint_client_cert(sub)
    return 200, {"cert": cert, "key": key, "ca": emu.signin.client_ca}


def ctl_sign(emu, method, body, query):
    obj = _ctl_obj(body)
    for k in ("dn", "data", "user"):
        if not isinstance(obj.get(k), str):
            raise BadRequest("'%s' (a string) is required" % k)
    ok, reason = emu.sign(obj["dn"], obj["data"], obj["user"], obj.get("ip"), obj.get("executable"))
    return 200, {"allowed": ok, "reason": reason}


def ctl_prequals(emu, method, body, query):
    items = emu.listing("prequal")
    return 200, {"items": items, "count": len(items)}


def ctl_preapprovals(emu, method, body, query):
    items = emu.listing("preapproval")
    return 200, {"items": items, "count": len(items)}


def ctl_requests(emu, method, body, query):
    sub = None
    for part in query.split("&"):
        k, _, v = part.partition("=")
        if k == "path":
            sub = urllib_unquote(v).lower()
    with emu.lock:
        items = list(emu.log)
    if sub:
        items = [i for i in items if sub in i["path"].lower()]
    by_path = collections.Counter(i["path"] for i in items)
    return 200, {"items": items, "count": len(items), "by_path": dict(by_path)}


def urllib_unquote(s):
    from urllib.parse import unquote_plus
    return unquote_plus(s)


def ctl_reset(emu, method, body, query):
    emu.reset()
    return 200, {"reset": True}


def ctl_clock(emu, method, body, query):
    if method == "POST":
        obj = _ctl_obj(body)
        adv = _num(obj, "advance", 0)
        with emu.lock:
            emu.clock_offset += adv
    return 200, {"now": emu.now(), "offset": emu.clock_offset}


def ctl_config(emu, method, body, query):
    if method == "POST":
        obj = _ctl_obj(body)
        for k in obj:
            if k not in ("token_lifetime", "refresh_lifetime"):
                raise BadRequest("unknown config key %r" % k)
        with emu.lock:
            if "token_lifetime" in obj:
                emu.token_lifetime = float(_num(obj, "token_lifetime", 0))
            if "refresh_lifetime" in obj:
                emu.refresh_lifetime = float(_num(obj, "refresh_lifetime", 0))
    return 200, {"token_lifetime": emu.token_lifetime, "refresh_lifetime": emu.refresh_lifetime}


def ctl_faults(emu, method, body, query):
    if method == "DELETE":
        with emu.lock:
            emu.faults = []
        return 200, {"items": [], "count": 0}
    if method == "POST":
        obj = _ctl_obj(body)
        kind = obj.get("kind")
        if kind not in FAULT_KINDS:
            raise BadRequest("'kind' must be one of %s" % ", ".join(FAULT_KINDS))
        count = obj.get("count", 1)
        if type(count) is not int or count < 1:
            raise BadRequest("'count' must be a positive integer")
        path = obj.get("path")
        if path is not None and not isinstance(path, str):
            raise BadRequest("'path' must be a string")
        f = {
            "kind": kind, "count": count, "remaining": count,
            "path": path.lower() if path else None,
            "delay": _num(obj, "delay", 0.05 if kind == "trickle" else 0),
            "status": None, "retry_after": None, "body": None,
            "process": obj.get("process", True),
            "size": obj.get("size", 8 * 1024 * 1024),
        }
        if type(f["process"]) is not bool:
            raise BadRequest("'process' must be a boolean")
        if type(f["size"]) is not int or f["size"] < 16:
            raise BadRequest("'size' must be an integer >= 16")
        if kind == "status":
            st = obj.get("status")
            if type(st) is not int or not 100 <= st <= 599:
                raise BadRequest("'status' (100-599) is required for a status fault")
            f["status"] = st
        if "retry_after" in obj:
            ra = obj["retry_after"]
            if isinstance(ra, bool) or not isinstance(ra, (str, int, float)):
                raise BadRequest("'retry_after' must be a string or number")
            ra = str(ra)
            if "\r" in ra or "\n" in ra:
                raise BadRequest("'retry_after' must be one line")
            f["retry_after"] = ra
        f["headers"] = []
        hdrs = obj.get("headers", {})
        if not isinstance(hdrs, dict):
            raise BadRequest("'headers' must be an object of header name to value")
        for k, v in hdrs.items():
            if isinstance(v, bool) or not isinstance(v, (str, int, float)):
                raise BadRequest("header %r must have a string value" % k)
            v = str(v)
            if not re.match(r"\A[A-Za-z0-9!#$%&'*+.^_`|~-]+\Z", k) or "\r" in v or "\n" in v:
                raise BadRequest("header %r is not a valid one-line header" % k)
            f["headers"].append((k, v))
        if "body" in obj:
            if not isinstance(obj["body"], str):
                raise BadRequest("'body' must be a string")
            f["body"] = obj["body"]
        with emu.lock:
            emu.faults.append(f)
    with emu.lock:
        items = [dict(f) for f in emu.faults]
    return 200, {"items": items, "count": len(items)}


CONTROL_ROUTES = {
    "/__emulator__/token": {"POST": ctl_token},
    "/__emulator__/jwt": {"GET": ctl_jwt, "POST": ctl_jwt},
    "/__emulator__/client_cert": {"POST": ctl_client_cert},
    "/__emulator__/sign": {"POST": ctl_sign},
    "/__emulator__/prequalifications": {"GET": ctl_prequals},
    "/__emulator__/preapprovals": {"GET": ctl_preapprovals},
    "/__emulator__/requests": {"GET": ctl_requests},
    "/__emulator__/reset": {"POST": ctl_reset},
    "/__emulator__/clock": {"GET": ctl_clock, "POST": ctl_clock},
    "/__emulator__/config": {"GET": ctl_config, "POST": ctl_config},
    "/__emulator__/faults": {"GET": ctl_faults, "POST": ctl_faults, "DELETE": ctl_faults},
}


# ---------------------------------------------------------------------------
# HTTP plumbing

_date_cache = [0, ""]


def http_date():
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache[1] = email.utils.formatdate(now, usegmt=True)
        _date_cache[0] = now
    return _date_cache[1]


class _Close(Exception):
    """Stop serving this connection without (another) reply."""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "tpp-emulator"
    disable_nagle_algorithm = True  # TCP_NODELAY on every accepted socket
    wbufsize = 0  # each response goes out in one wfile.write (one sendall)
    timeout = None  # no socket timeout: with one, every recv and send costs an extra poll()

    def setup(self):
        ctx = self.server.ssl_context
        self._raw = self.request
        if ctx is not None:
            self.request.settimeout(30)  # for the handshake only
            self.request = ctx.wrap_socket(self.request, server_side=True)
            self.request.settimeout(None)
        self._tls_subject = signin.peer_subject(self.request) if ctx is not None else None
        super().setup()

    def finish(self):
        try:
            super().finish()
        finally:
            if self.request is not self._raw:
                try:
                    self.request.close()
                except OSError:
                    pass

    # BaseHTTPRequestHandler.handle() loops on this until close_connection.
    def handle_one_request(self):
        self.close_connection = True
        try:
            self._one_request()
        except _Close:
            self.close_connection = True
        except (ConnectionError, TimeoutError, ssl.SSLError, OSError):
            self.close_connection = True

    def _one_request(self):
        rfile = self.rfile
        line = rfile.readline(65537)
        if not line:
            return
        if len(line) > 65536:
            self._send_simple(414, {"Error": "Request line too long"}, close=True)
            return
        parts = line.split()
        if len(parts) != 3:
            self._send_simple(400, {"Error": "Malformed request line"}, close=True)
            return
        method = parts[0].decode("latin-1")
        target = parts[1].decode("latin-1")
        version = parts[2].decode("latin-1")
        headers = {}
        n = 0
        while True:
            h = rfile.readline(65537)
            if h in (b"\r\n", b"\n"):
                break
            if not h:
                return  # peer went away mid-headers
            n += 1
            if len(h) > 65536 or n > 200:
                self._send_simple(431, {"Error": "Request headers too large"}, close=True)
                return
            k, sep, v = h.partition(b":")
            if not sep:
                self._send_simple(400, {"Error": "Malformed header line"}, close=True)
                return
            headers[k.strip().lower().decode("latin-1")] = v.strip().decode("latin-1")
        conn = headers.get("connection", "").lower()
        if version == "HTTP/1.1":
            keep = "close" not in conn
        elif version == "HTTP/1.0":
            keep = "keep-alive" in conn
        else:
            self._send_simple(505, {"Error": "HTTP version not supported"}, close=True)
            return
        self._http10 = version == "HTTP/1.0"
        body = self._read_body(headers, version)
        if body is None:
            return
        self.close_connection = not keep
        self.command = method
        self._dispatch(method, target, headers, body)

    def _read_body(self, headers, version):
        te = headers.get("transfer-encoding")
        cl = headers.get("content-length")
        limit = self.server.emu.max_body_bytes
        if (te or cl) and version == "HTTP/1.1" and headers.get("expect", "").lower() == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if te:
            if te.lower() != "chunked":
                self._send_simple(501, {"Error": "Transfer-Encoding %s not supported" % te}, close=True)
                return None
            chunks = []
            total = 0
            while True:
                size_line = self.rfile.readline(1026)
                try:
                    size = int(size_line.split(b";")[0].strip(), 16)
                except ValueError:
                    self._send_simple(400, {"Error": "Malformed chunk size"}, close=True)
                    return None
                if size == 0:
                    while True:  # trailers
                        t = self.rfile.readline(65537)
                        if t in (b"\r\n", b"\n", b""):
                            break
                    break
                total += size
                if total > limit:
                    self._send_simple(413, {"Error": "Request body too large"}, close=True)
                    return None
                chunks.append(self._read_exact(size))
                self.rfile.readline(3)
            return b"".join(chunks)
        if cl is None:
            return b""
        try:
            n = int(cl)
            if n < 0:
                raise ValueError
        except ValueError:
            self._send_simple(400, {"Error": "Malformed Content-Length"}, close=True)
            return None
        if n > limit:
            self._send_simple(413, {"Error": "Request body too large (at most %d bytes)" % limit}, close=True)
            return None
        return self._read_exact(n) if n else b""

    def _read_exact(self, n):
        data = self.rfile.read(n)
        if len(data) != n:
            raise _Close()
        return data

    # -- responses ---------------------------------------------------------

    def _head(self, status, length, extra=(), close=False, ctype="application/json; charset=utf-8"):
        lines = ["HTTP/1.1 %d %s\r\nServer: tpp-emulator\r\nDate: %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
                 % (status, REASONS.get(status, "Status"), http_date(), ctype, length)]
        for k, v in extra:
            lines.append("%s: %s\r\n" % (k, v))
        if close or self.close_connection:
            self.close_connection = True
            lines.append("Connection: close\r\n")
        elif self._http10:
            lines.append("Connection: keep-alive\r\n")
        lines.append("\r\n")
        return "".join(lines).encode("latin-1")

    def _send(self, status, body, extra=(), close=False):
        self.wfile.write(self._head(status, len(body), extra, close) + body)
        self._log(status)

    def _send_simple(self, status, obj, close=False):
        self._http10 = getattr(self, "_http10", False)
        self._send(status, dumps(obj), (), close)

    def _log(self, status):
        if self.server.verbose:
            sys.stderr.write("%s %s -> %s\n" % (getattr(self, "command", "?"), getattr(self, "_path", "?"), status))

    def _abort(self):
        """Close the connection at once, without a TLS close_notify."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        raise _Close()

    # -- dispatch ----------------------------------------------------------

    def _dispatch(self, method, target, headers, body):
        path, _, query = target.partition("?")
        self._path = path
        headers.pop(signin.SUBJECT_HEADER, None)
        if self._tls_subject:
            headers[signin.SUBJECT_HEADER] = self._tls_subject
        lpath = path.lower()
        emu = self.server.emu
        if lpath.startswith("/__emulator__"):
            if not self.server.control:
                self._send_simple(404, {"Error": "No endpoint at %s" % path})
                return
            self._control(method, lpath, query, body)
            return
        when = emu.now()
        fault = emu.take_fault(lpath) if emu.faults else None
        if fault is None:
            status, payload, extra = self._call(emu, method, path, lpath, headers, body, query)
            emu.record(method, path, status, when, None)
            self._send(status, payload, extra)
            return
        kind = fault["kind"]
        if kind == "status":
            extra = list(fault["headers"])
            if fault["retry_after"] is not None:
                extra.append(("Retry-After", fault["retry_after"]))
            payload = fault["body"].encode("utf-8") if fault["body"] is not None else b'{"Error":"injected"}'
            emu.record(method, path, fault["status"], when, kind)
            self._send(fault["status"], payload, extra)
            return
        if kind == "drop":
            if fault["process"]:
                self._call(emu, method, path, lpath, headers, body, query)
            emu.record(method, path, None, when, kind)
            self._abort()
        if kind == "delay":
            if fault["process"]:
                status, payload, extra = self._call(emu, method, path, lpath, headers, body, query)
                emu.record(method, path, status, when, kind)
                time.sleep(fault["delay"])
            else:
                time.sleep(fault["delay"])
                status, payload, extra = self._call(emu, method, path, lpath, headers, body, query)
                emu.record(method, path, status, when, kind)
            self._send(status, payload, extra)
            return
        status, payload, extra = self._call(emu, method, path, lpath, headers, body, query)
        if kind == "malformed":
            payload = fault["body"].encode("utf-8") if fault["body"] is not None \
                else b'{"Success": true, "Result": 1, <this is not JSON'
            emu.record(method, path, 200, when, kind)
            self._send(200, payload)
            return
        if kind == "oversized":
            pad = max(0, fault["size"] - 40)
            payload = b'{"Success":true,"Result":1,"Padding":"' + b"x" * pad + b'"}'
            emu.record(method, path, 200, when, kind)
            self._send(200, payload)
            return
        full = self._head(status, len(payload), extra) + payload
        emu.record(method, path, status, when, kind)
        if kind == "drop_mid_body":
            head_len = len(full) - len(payload)
            self.wfile.write(full[:head_len + len(payload) // 2])
            self._abort()
        # trickle
        delay = fault["delay"]
        for i in range(len(full)):
            self.wfile.write(full[i:i + 1])
            if delay:
                time.sleep(delay)

    @staticmethod
    def _call(emu, method, path, lpath, headers, body, query):
        route = API_ROUTES.get(lpath)
        if route is None:
            return 404, dumps({"Error": "No endpoint at %s" % path}), ()
        fn = route.get(method)
        if fn is None:
            return 405, dumps({"Error": "Method %s is not allowed for %s" % (method, path)}), \
                (("Allow", ", ".join(sorted(route))),)
        try:
            return fn(emu, headers, body, query)
        except ApiReply as r:
            return r.status, r.body, r.headers
        except BadRequest as e:
            return 400, dumps({"Error": str(e)}), ()
        except Exception:  # a bug in the emulator: say so loudly, answer 500
            traceback.print_exc(file=sys.stderr)
            return 500, dumps({"Error": "emulator bug: %s %s failed (see its stderr)" % (method, path)}), ()

    def _control(self, method, lpath, query, body):
        route = CONTROL_ROUTES.get(lpath.rstrip("/"))
        if route is None:
            self._send_simple(404, {"Error": "No control endpoint at %s" % lpath})
            return
        fn = route.get(method)
        if fn is None:
            self._send(405, dumps({"Error": "Method %s is not allowed" % method}),
                       (("Allow", ", ".join(sorted(route))),))
            return
        try:
            status, obj = fn(self.server.emu, method, body, query)
        except BadRequest as e:
            status, obj = 400, {"Error": str(e)}
        except Exception:  # a bug in the emulator
            traceback.print_exc(file=sys.stderr)
            status, obj = 500, {"Error": "emulator bug in %s (see its stderr)" % lpath}
        self._send(status, dumps(obj))


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024
    allow_reuse_address = True

    def __init__(self, addr, emu, ssl_context, control, verbose):
        self.emu = emu
        self.ssl_context = ssl_context
        self.control = control
        self.verbose = verbose
        super().__init__(addr, Handler)

    def server_bind(self):
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn); skip it.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request, client_address):
        if self.verbose:
            super().handle_error(request, client_address)


# ---------------------------------------------------------------------------
# Certificates


def make_certs(folder):
    """A fresh CA and a server certificate for localhost and 127.0.0.1."""
    def run(*args):
        subprocess.run(("openssl",) + args, cwd=folder, check=True,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-sha256",
        "-subj", "/CN=prequalify TPP emulator throwaway CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", "-new", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    with open(os.path.join(folder, "server.ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                "basicConstraints=critical,CA:FALSE\n"
                "keyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-set_serial", "0x" + secrets.token_hex(16), "-days", "2", "-sha256",
        "-extfile", "server.ext", "-out", "server.pem")
    os.unlink(os.path.join(folder, "ca.key"))  # nothing else is ever signed with it
    return (os.path.join(folder, "ca.pem"), os.path.join(folder, "server.pem"),
            os.path.join(folder, "server.key"))


# ---------------------------------------------------------------------------


def parse_args(argv):
    p = argparse.ArgumentParser(description="Local Venafi TPP emulator (see emulator/README.md)")
    p.add_argument("--port", type=int, default=0, help="TCP port; 0 picks a free one (default)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--state", default=DEFAULT_STATE, help="state file (default emulator/state.json)")
    p.add_argument("--http", action="store_true", help="serve plain HTTP instead of HTTPS")
    p.add_argument("--control", action="store_true", help="enable the test-only /__emulator__/ surface")
    p.add_argument("--token-lifetime", type=float, default=None, help="access token lifetime, seconds")
    p.add_argument("--refresh-lifetime", type=float, default=None, help="refresh token (grant) lifetime, seconds")
    p.add_argument("--max-lifetime", type=float, default=0,
                   help="exit by itself after this many seconds (0: never)")
    p.add_argument("--verbose", action="store_true", help="log requests to stderr")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    sigs = {signal.SIGTERM, signal.SIGINT}
    # A shell's `cmd &` starts us with SIGINT ignored; install handlers so the
    # signals are not discarded, then block them and take them with sigwait.
    for s in sigs:
        signal.signal(s, lambda *_: None)
    signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    tmp = None
    server = None
    try:
        try:
            emu = Emulator(load_state(args.state), args.token_lifetime, args.refresh_lifetime)
        except (OSError, ValueError, StateError) as e:
            sys.stderr.write("tpp_emulator: cannot load state %s: %s\n" % (args.state, e))
            return 2
        ctx = None
        ca = ""
        tmp = tempfile.mkdtemp(prefix="tpp-emulator-")
        try:
            keys = os.path.join(tmp, "signin")
            os.mkdir(keys, 0o700)
            emu.signin = signin.Signin(keys, emu.state.settings.get("jwt_audience", signin.AUDIENCE))
        except (OSError, subprocess.CalledProcessError) as e:
            err = getattr(e, "stderr", b"") or b""
            sys.stderr.write("tpp_emulator: openssl failed: %s %s\n" % (e, err.decode("utf-8", "replace")))
            return 2
        if not args.http:
            try:
                ca, cert, key = make_certs(tmp)
            except (OSError, subprocess.CalledProcessError) as e:
                err = getattr(e, "stderr", b"") or b""
                sys.stderr.write("tpp_emulator: openssl failed: %s %s\n" % (e, err.decode("utf-8", "replace")))
                return 2
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            ctx.load_cert_chain(cert, key)
            emu.signin.ask_for_client_certs(ctx)
            os.unlink(key)
            os.unlink(os.path.join(tmp, "server.csr"))
        try:
            server = Server((args.host, args.port), emu, ctx, args.control, args.verbose)
        except OSError as e:
            sys.stderr.write("tpp_emulator: cannot listen on %s port %d: %s\n" % (args.host, args.port, e))
            return 2
        port = server.server_address[1]
        if args.http:
            host = args.host
        else:
            host = "localhost" if args.host in ("127.0.0.1", "localhost", "0.0.0.0") else args.host
        if ":" in host:
            host = "[%s]" % host
        t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                             name="serve", daemon=True)
        t.start()
        sys.stdout.write("READY url=%s://%s:%d ca=%s\n" % ("http" if args.http else "https", host, port, ca))
        sys.stdout.flush()
        if args.max_lifetime > 0:
            signal.sigtimedwait(sigs, args.max_lifetime)
        else:
            signal.sigwait(sigs)
        return 0
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
