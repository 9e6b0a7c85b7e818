"""The device door: PUT check-in and connect. Bare HTTP statuses, never a 401 (it can unenroll devices).

Plain ASGI in front of the whole app (see `bramley.app.Bramley`) rather than FastAPI routes: every device of the
fleet comes through here on every exchange, and route matching against every API route, the framework's
middlewares and its dependency machinery cost more than the check-in's own work. Its database work runs in turns
on threads of its own (db/turns.py `Turns`): the requests waiting share one transaction, so a busy door commits once per
turn, not once per request (group commit).
"""
from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from contextlib import closing
from dataclasses import dataclass
from functools import partial
from datetime import datetime, timezone

from bramley.db.engine import OnDemandSession
from bramley.db.raw import RawStatement, dialect_of, execute
from bramley.db.turns import Turns
from bramley.mdm import service
from bramley.mdm.protocol import ProtocolError, decode_checkin, decode_report
from bramley.tenancy import service as tenants
from bramley.web import ClientGone, read_body

log = logging.getLogger("bramley.mdm")
CHECKIN_TYPE = "application/x-apple-aspen-mdm-checkin"
MAX_DEVICE_BODY = 4 * 1024 * 1024
DOOR_PATH = re.compile(r"/mdm/t/([^/]+)/(checkin|connect|mdm)/?")


class Refused(Exception):
    def __init__(self, status: int, reason: str):
        self.status, self.reason = status, reason


class VerifiedCertificates:
    """Forwarded client certificates already checked against their tenant's CA: header value → (certificate hash,
    end of validity). A device sends the same certificate on every request, and parsing it and verifying the CA's
    signature on it was the largest part of a check-in's CPU. Keyed by the CA certificate as well, so a replaced
    CA verifies everything afresh; expiry is still checked on every use. Bounded: least recently used go first."""

    def __init__(self, size: int = 100_000):
        self._entries: OrderedDict[tuple, tuple[str, datetime]] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    @staticmethod
    def key(ca_cert, value: str) -> tuple:
        return ca_cert, hashlib.blake2b(value.encode(), digest_size=20).digest()

    def get(self, key: tuple) -> str | None:
        with self._lock:
            hit = self._entries.get(key)
            if hit is None:
                return None
            if datetime.now(timezone.utc) > hit[1]:
                del self._entries[key]  # expired since it was checked: the full check will say so
                return None
            self._entries.move_to_end(key)
            return hit[0]

    def put(self, key: tuple, cert_hash: str, not_after: datetime) -> None:
        with self._lock:
            self._entries[key] = (cert_hash, not_after)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)


_verified = VerifiedCertificates()


def _identity_hash(db, ctx, settings, headers: Mapping[str, str], body: bytes) -> str:
    """sha256 of the identity certificate: from Mdm-Signature, or from a TLS proxy's forwarded client cert.
    `headers` answers lower-case names."""
    from bramley.mdm import pki, signature

    ca_cert = pki.ca_cert(db, ctx)
    header = headers.get("mdm-signature")
    forwarded_name = (settings.client_cert_header or "").lower()
    try:
        if header:
            cert = signature.verify_mdm_signature(header, body, ca_cert)
        elif forwarded_name and headers.get(forwarded_name):
            value = headers[forwarded_name]
            key = _verified.key(ca_cert, value)
            cert_hash = _verified.get(key)
            if cert_hash is not None:
                return cert_hash
            cert = signature.cert_from_forwarded_header(value, ca_cert)
            cert_hash = signature.cert_sha256(cert)
            _verified.put(key, cert_hash, cert.not_valid_after_utc)
            return cert_hash
        else:
            raise Refused(400, "no device identity")
    except signature.SignatureError as exc:
        raise Refused(400, f"bad identity: {exc}") from None
    return signature.cert_sha256(cert)


def _identify(app_state, subdomain: str, headers: Mapping[str, str], body: bytes, *, bound_device: bool = False):
    """The read half of every device-door request, before any write transaction (on SQLite writers take turns,
    so a turn should hold only the state change): the tenant (404), the identity certificate (400) and, for the
    agent door, the device whose enrollment that certificate is bound to. Returns (ctx, cert hash | device id).

    Usually answered from caches (tenant, CA, verified certificates) without a query: the session opens only if
    one is needed, and is closed, not committed (committing an unused session still begins and ends one)."""
    with closing(OnDemandSession(app_state.db.sessions)) as db:
        tenant = tenants.name_by_subdomain(db, subdomain)
        if tenant is None:
            raise Refused(404, "unknown tenant")
        ctx = tenants.system_context(tenant)
        cert_hash = _identity_hash(db, ctx, app_state.settings, headers, body)
        if not bound_device:
            return ctx, cert_hash
        enrollment_id = service.bound_enrollment(db, ctx, cert_hash)
        enrollment = service._enrollment(db, ctx, enrollment_id) if enrollment_id else None
        if enrollment is None:
            raise Refused(400, "certificate not bound to an enrollment")
        return ctx, enrollment.device_id


def device_of_request(request, subdomain: str, body: bytes):
    """(ctx, device_id) of a request signed by an enrolled device's identity: the check the agent door (/agent/…)
    shares with check-ins. Refused(404) for an unknown tenant, Refused(400) without a bound identity."""
    return _identify(request.app.state, subdomain, request.headers, body, bound_device=True)


@dataclass
class DeviceRequest:
    subdomain: str
    kind: str  # checkin | connect
    headers: dict[str, str]
    body: bytes


def _prepare(app_state, request: DeviceRequest):
    """Everything before the transaction: who is asking (tenant, certificate) and what the message says."""
    ctx, cert_hash = _identify(app_state, request.subdomain, request.headers, request.body)
    try:
        message = decode_checkin(request.body) if request.kind == "checkin" else decode_report(request.body)
    except ProtocolError as exc:
        raise Refused(400, str(exc)) from None
    return ctx, cert_hash, message


def _serve_turn(app_state, requests: list[DeviceRequest]) -> list:
    """One turn of the door: every request's reply (or Refused, or the exception it raised), in order.

    Under load a turn holds many requests, run in one transaction: its begin and commit, SQLite's write lock and
    the hop to this thread are paid once per turn instead of once per request. A report whose identity check
    finds no channel has changed nothing and is simply refused. Should any other request be refused or fail, the
    transaction is rolled back and each request runs again in a transaction of its own, so one request's
    refusal or failure never touches the others' changes (savepoints would give the same isolation,
    but cost two statements per request, round trips on PostgreSQL, where requests almost never fail). If a
    commit fails, the requests in it fail with it and none of their changes stay."""
    outcomes: list = [None] * len(requests)
    prepared = []
    for index, request in enumerate(requests):
        try:
            prepared.append((index, request.kind, *_prepare(app_state, request)))
        except Exception as exc:  # Refused, or a failure of this request alone
            outcomes[index] = exc
    if len(prepared) > 1:
        try:
            outcomes_together = _run(app_state, prepared)
        except Exception:
            log.info("a device request failed in a turn of %d: each runs alone", len(prepared))
        else:
            for (index, *_), reply in zip(prepared, outcomes_together):
                outcomes[index] = reply
            return outcomes
    for item in prepared:
        try:
            outcomes[item[0]] = _run(app_state, [item])[0]
        except (ProtocolError, service.IdentityMismatch) as exc:
            outcomes[item[0]] = Refused(400, str(exc))  # rolled back: a refused request changes nothing
        except Exception as exc:
            outcomes[item[0]] = exc
    return outcomes


def _run(app_state, prepared: list[tuple]) -> list:
    """The prepared requests in one transaction, committed only if every one of them succeeds (a refused report
    that changed nothing does not count as a failure): each one's reply, or Refused."""
    with app_state.db.turn_of_work() as db:
        outcomes = _apply(db, prepared)
        db.flush()  # what the requests changed through the ORM, before the devices' rows are patched
        replies = [(item[2], outcome) for item, outcome in zip(prepared, outcomes)
                   if isinstance(outcome, service.Reply)]
        service.mark_seen(db, replies)
        if all(reply.repeatable for _, reply in replies) and dialect_of(db) == "postgresql":
            # Nothing here a crash could lose for good (service.REPEATABLE_RESULTS): the commit need not wait for
            # the WAL flush, which was most of a busy turn's time on PostgreSQL. SQLite (WAL, synchronous=NORMAL)
            # does not wait for the disk at commit anyway.
            execute(db, _ASYNC_COMMIT, {})
    return outcomes


_ASYNC_COMMIT = RawStatement("SET LOCAL synchronous_commit TO off")


def _apply(db, prepared: list[tuple]) -> list:
    """In arrival order. Reports on the connect endpoint go in batches (service.connect_turn: one statement per step
    for all of them on PostgreSQL); a batch ends where a check-in comes between, or a channel comes again, so each
    device still sees its requests answered one after the other."""
    outcomes: list = []
    batch: list[service.ConnectRequest] = []
    batch_channels: set[tuple[str, str]] = set()

    def run_batch() -> None:
        for reply in service.connect_turn(db, batch) if batch else []:
            outcomes.append(Refused(400, str(reply)) if isinstance(reply, service.IdentityMismatch) else reply)
        batch.clear()
        batch_channels.clear()

    for _, kind, ctx, cert_hash, message in prepared:
        if kind != "connect":
            run_batch()
            outcomes.append(service.checkin(db, ctx, cert_hash, message))
            continue
        channel = (ctx.tenant_id, message.identity.enrollment_id)
        if channel in batch_channels:
            run_batch()
        batch.append(service.ConnectRequest(ctx, cert_hash, message))
        batch_channels.add(channel)
    run_batch()
    return outcomes


class DeviceDoor:
    """Serves PUT /mdm/t/{subdomain}/checkin, /connect and /mdm (NanoMDM style: one URL for both, check-ins told
    apart by their Content-Type); passes every other request on to the app."""

    def __init__(self, app, state) -> None:
        self.app = app
        # One lane on either database. On SQLite writers take turns anyway. On PostgreSQL a turn is a handful of
        # statements whatever its size, and usually commits without waiting for the disk (see `_run`): one lane
        # kept the CPU busy with the largest turns, where more lanes split the same requests into more, smaller
        # turns (two lanes: 20% fewer check-ins per second).
        self.turns = Turns(partial(_serve_turn, state), lanes=1, name="device-door")

    async def __call__(self, scope, receive, send) -> None:
        match = DOOR_PATH.fullmatch(scope["path"]) if scope["type"] == "http" else None
        if match is None:
            await self.app(scope, receive, send)
            return
        if scope["method"] != "PUT":
            await _reply(send, 405, headers=[(b"allow", b"PUT")])
            return
        subdomain, kind = match.groups()
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        if kind == "mdm":
            kind = "checkin" if headers.get("content-type", "").startswith(CHECKIN_TYPE) else "connect"
        try:
            body = await read_body(receive, MAX_DEVICE_BODY)
        except ClientGone:  # nothing to act on: the report is cut short, and no one waits for the answer
            return
        if body is None:
            await _reply(send, 413)
            return
        request = DeviceRequest(subdomain, kind, headers, body)
        try:
            reply = await self.turns.serve(request)
        except Refused as exc:
            log.info("device request refused (%s %s): %s", kind, exc.status, exc.reason)
            await _reply(send, exc.status)
            return
        except Exception:
            log.exception("device request failed (%s)", kind)
            await _reply(send, 500)
            return
        await _reply(send, reply.status, reply.body, [(b"content-type", reply.content_type.encode())]
                     if reply.body else [])


async def _reply(send, status: int, body: bytes = b"", headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [*(headers or []), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
