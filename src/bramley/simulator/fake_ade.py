"""A fake of Apple's device enrollment API (mdmenrollment.apple.com) for tests (reference §9.6).

An ASGI app holding in-memory organisations, one per server token. `GET /session` checks the OAuth 1.0a HMAC-SHA1
signature against the token's secrets; every other call needs a live `X-ADM-Auth-Session`. Implemented:
`/account`, `/server/devices` (cursor pages, then `EXHAUSTED_CURSOR`), `/devices/sync` (queued added/modified/
deleted events; `expire_cursors()` makes old cursors `EXPIRED_CURSOR`), `/devices`, `/profile`,
`/profile/devices` (PUT or POST assigns and updates `profile_status`, DELETE removes), `/device/activationlock`.
Sessions can be expired (→ 401 UNAUTHORIZED) and rotated (a new token in the response header, the old one
dead at once). `server_token_p7m()` makes the .p7m an admin downloads from Apple Business Manager.

`serve_fake_ade()` runs it with uvicorn on a free loopback port.
"""
from __future__ import annotations

import base64
import json
import os
import random
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from urllib.parse import unquote

from asn1crypto import cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import padding as sym_padding, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.serialization import pkcs7
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from bramley.ade.client import SESSION_HEADER, oauth_signature

MAX_LIMIT = 1000
FAMILIES = {"Mac": "OSX", "iPhone": "iOS", "iPad": "iOS", "AppleTV": "tvOS"}


def apple_time(dt: datetime | None = None) -> str:
    return (dt or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ")


def random_serial() -> str:
    return "".join(random.choice("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789") for _ in range(12))


@dataclass
class Request_:
    method: str
    path: str
    session: str | None
    protocol_version: str | None
    body: object


@dataclass
class FakeOrg:
    """One MDM server in one organisation, reached with one server token."""

    consumer_key: str
    consumer_secret: str
    access_token: str
    access_secret: str
    access_token_expiry: datetime
    account: dict
    devices: dict[str, dict] = field(default_factory=dict)
    events: list[dict] = field(default_factory=list)
    generation: int = 1
    snapshots: dict[str, tuple[list[str], int]] = field(default_factory=dict)
    profiles: dict[str, dict] = field(default_factory=dict)
    sessions: set[str] = field(default_factory=set)
    rotate_sessions: bool = False  # every response carries a new session token; the old one dies
    terms_not_signed: bool = False  # every call: 403 T_C_NOT_SIGNED
    revoked: bool = False  # /session: 403 FORBIDDEN
    failing_serials: set[str] = field(default_factory=set)  # profile assignment answers FAILED for these
    queued_errors: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    requests: list[Request_] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # -- what a test does to the organisation ----------------------------------------------------------------

    def token(self) -> dict:
        return {"consumer_key": self.consumer_key, "consumer_secret": self.consumer_secret,
                "access_token": self.access_token, "access_secret": self.access_secret,
                "access_token_expiry": apple_time(self.access_token_expiry)}

    def _event(self, op_type: str, device: dict) -> None:
        self.events.append({**device, "op_type": op_type, "op_date": apple_time()})

    def add_device(self, serial: str | None = None, *, family: str = "Mac", **fields) -> dict:
        """Assign a device to this MDM server in ABM (a sync reports it as `added`)."""
        serial = serial or random_serial()
        device = {
            "serial_number": serial, "model": {"Mac": "MacBook Air", "iPhone": "iPhone 15", "iPad": "iPad Air",
                                               "AppleTV": "Apple TV 4K"}.get(family, family),
            "description": f"{family} test device", "color": "SILVER", "asset_tag": "", "device_family": family,
            "os": FAMILIES.get(family, "iOS"), "device_assigned_by": self.account["admin_id"],
            "device_assigned_date": apple_time(), "profile_status": "empty", **fields}
        with self.lock:
            self.devices[serial] = device
            self._event("added", device)
        return device

    def add_devices(self, count: int, **fields) -> list[dict]:
        return [self.add_device(**fields) for _ in range(count)]

    def modify_device(self, serial: str, **fields) -> dict:
        with self.lock:
            device = self.devices[serial]
            device.update(fields)
            self._event("modified", device)
            return device

    def remove_device(self, serial: str) -> None:
        """Unassign in ABM (a sync reports it as `deleted`)."""
        with self.lock:
            device = self.devices.pop(serial)
            self._event("deleted", device)

    def expire_cursors(self) -> None:
        """Every cursor handed out so far answers EXPIRED_CURSOR (as after seven days)."""
        with self.lock:
            self.generation += 1

    def expire_sessions(self) -> None:
        with self.lock:
            self.sessions.clear()

    def fail_next(self, path: str, status: int, code: str) -> None:
        """The next call to `path` answers `status` with body `code`."""
        with self.lock:
            self.queued_errors.setdefault(path, []).append((status, code))

    def calls(self, path: str) -> int:
        return sum(1 for r in self.requests if r.path == path)


def _encode_cursor(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _decode_cursor(value) -> dict | None:
    if not isinstance(value, str):
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
    except ValueError:
        return None
    return data if isinstance(data, dict) and {"k", "g"} <= data.keys() else None


_OAUTH_PARAM = re.compile(r'(\w+)="([^"]*)"')


class FakeADE:
    def __init__(self) -> None:
        self.orgs: dict[str, FakeOrg] = {}
        self._sessions: dict[str, FakeOrg] = {}
        self._lock = threading.Lock()
        self.app = Starlette(routes=[
            Route("/session", self._session, methods=["GET"]),
            Route("/account", self._account, methods=["GET"]),
            Route("/server/devices", self._fetch, methods=["POST"]),
            Route("/devices/sync", self._sync, methods=["POST"]),
            Route("/devices", self._details, methods=["POST"]),
            Route("/profile", self._profile, methods=["GET", "POST"]),
            Route("/profile/devices", self._profile_devices, methods=["PUT", "POST", "DELETE"]),
            Route("/device/activationlock", self._activation_lock, methods=["POST"]),
        ])

    def new_org(self, *, server_name: str = "Bramley Test MDM", org_name: str = "Accuhive",
                expiry: datetime | None = None) -> FakeOrg:
        org = FakeOrg(
            consumer_key=f"CK_{uuid.uuid4().hex}", consumer_secret=f"CS_{uuid.uuid4().hex}",
            access_token=f"AT_{uuid.uuid4().hex}", access_secret=f"AS_{uuid.uuid4().hex}",
            access_token_expiry=expiry or datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=365),
            account={"server_name": server_name, "server_uuid": str(uuid.uuid4()).upper(),
                     "admin_id": "admin@accuhive.io", "facilitator_id": "admin@accuhive.io",
                     "org_name": org_name, "org_email": "it@accuhive.io", "org_phone": "+1 (415) 640-4923",
                     "org_address": "113 W G St, San Diego CA 92101, USA", "org_id": str(uuid.uuid4().int)[:7],
                     "org_id_hash": uuid.uuid4().hex, "org_type": "org", "org_version": "v2", "urls": []})
        with self._lock:
            self.orgs[org.consumer_key] = org
        return org

    # -- plumbing ----------------------------------------------------------------------------------------------

    def _issue_session(self, org: FakeOrg) -> str:
        token = f"SESSION_{uuid.uuid4().hex}"
        with self._lock:
            self._sessions[token] = org
        org.sessions.add(token)
        return token

    async def _authed(self, request: Request) -> tuple[FakeOrg | None, Response | None, object]:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        session = request.headers.get(SESSION_HEADER)
        org = self._sessions.get(session or "")
        if org is not None:
            org.requests.append(Request_(request.method, request.url.path, session,
                                         request.headers.get("x-server-protocol-version"), body))
        if org is None or session not in org.sessions:
            return None, PlainTextResponse("UNAUTHORIZED", status_code=401), body
        if org.terms_not_signed:
            return org, PlainTextResponse("T_C_NOT_SIGNED", status_code=403), body
        queued = org.queued_errors.get(request.url.path)
        if queued:
            status, code = queued.pop(0)
            return org, PlainTextResponse(code, status_code=status), body
        if raw and not isinstance(body, dict):
            return org, PlainTextResponse("MALFORMED_REQUEST_BODY", status_code=400), body
        return org, None, body

    def _reply(self, org: FakeOrg, request: Request, data) -> Response:
        response = JSONResponse(data)
        if org.rotate_sessions:
            old = request.headers.get(SESSION_HEADER)
            new = self._issue_session(org)
            org.sessions.discard(old or "")
            response.headers[SESSION_HEADER] = new
        return response

    # -- endpoints ---------------------------------------------------------------------------------------------

    async def _session(self, request: Request) -> Response:
        header = request.headers.get("authorization", "")
        if not header.startswith("OAuth "):
            return PlainTextResponse("UNAUTHORIZED", status_code=401)
        params = {k: unquote(v) for k, v in _OAUTH_PARAM.findall(header)}
        org = self.orgs.get(params.get("oauth_consumer_key", ""))
        signature = params.pop("oauth_signature", "")
        params.pop("realm", None)
        if org is None or params.get("oauth_token") != org.access_token:
            return PlainTextResponse("UNAUTHORIZED", status_code=401)
        expected = oauth_signature("GET", str(request.url), params, org.consumer_secret, org.access_secret)
        org.requests.append(Request_("GET", "/session", None, request.headers.get("x-server-protocol-version"),
                                     None))
        if signature != expected or params.get("oauth_signature_method") != "HMAC-SHA1":
            return PlainTextResponse("UNAUTHORIZED", status_code=401)
        if org.revoked or org.access_token_expiry < datetime.now(timezone.utc):
            return PlainTextResponse("FORBIDDEN", status_code=403)
        return JSONResponse({"auth_session_token": self._issue_session(org)})

    async def _account(self, request: Request) -> Response:
        org, error, _ = await self._authed(request)
        return error or self._reply(org, request, org.account)

    @staticmethod
    def _limit(body) -> int:
        limit = body.get("limit") if isinstance(body, dict) else None
        return max(1, min(limit if isinstance(limit, int) else 100, MAX_LIMIT))

    async def _fetch(self, request: Request) -> Response:
        org, error, body = await self._authed(request)
        if error:
            return error
        body = body or {}
        with org.lock:
            raw = body.get("cursor")
            if raw:
                cursor = _decode_cursor(raw)
                if cursor is None:
                    return PlainTextResponse("INVALID_CURSOR", status_code=400)
                if cursor["g"] != org.generation:
                    return PlainTextResponse("EXPIRED_CURSOR", status_code=400)
                if cursor["k"] != "fetch" or cursor["o"] >= len(org.snapshots.get(cursor["s"], ((), 0))[0]):
                    return PlainTextResponse("EXHAUSTED_CURSOR", status_code=400)
            else:
                snap = uuid.uuid4().hex
                org.snapshots[snap] = (sorted(org.devices), len(org.events))
                cursor = {"k": "fetch", "g": org.generation, "s": snap, "o": 0}
            serials, event_index = org.snapshots[cursor["s"]]
            start, limit = cursor["o"], self._limit(body)
            page = [dict(org.devices[s]) for s in serials[start:start + limit] if s in org.devices]
            end = start + limit
            more = end < len(serials)
            nxt = {"k": "fetch", "g": org.generation, "s": cursor["s"], "o": end, "e": event_index}
        return self._reply(org, request, {"devices": page, "cursor": _encode_cursor(nxt),
                                          "fetched_until": apple_time(), "more_to_follow": more})

    async def _sync(self, request: Request) -> Response:
        org, error, body = await self._authed(request)
        if error:
            return error
        cursor = _decode_cursor((body or {}).get("cursor"))
        if cursor is None:
            return PlainTextResponse("INVALID_CURSOR", status_code=400)
        with org.lock:
            if cursor["g"] != org.generation:
                return PlainTextResponse("EXPIRED_CURSOR", status_code=400)
            start = cursor["e"] if cursor["k"] == "sync" else org.snapshots.get(cursor.get("s"), ((), None))[1]
            if start is None:
                return PlainTextResponse("INVALID_CURSOR", status_code=400)
            limit = self._limit(body)
            page = [dict(e) for e in org.events[start:start + limit]]
            end = start + len(page)
            more = end < len(org.events)
            nxt = {"k": "sync", "g": org.generation, "e": end}
        return self._reply(org, request, {"devices": page, "cursor": _encode_cursor(nxt),
                                          "fetched_until": apple_time(), "more_to_follow": more})

    async def _details(self, request: Request) -> Response:
        org, error, body = await self._authed(request)
        if error:
            return error
        serials = (body or {}).get("devices") or []
        out = {s: ({**org.devices[s], "response_status": "SUCCESS"} if s in org.devices
                   else {"response_status": "NOT_ACCESSIBLE"}) for s in serials if isinstance(s, str)}
        return self._reply(org, request, {"devices": out})

    async def _profile(self, request: Request) -> Response:
        org, error, body = await self._authed(request)
        if error:
            return error
        if request.method == "GET":
            profile = org.profiles.get(request.query_params.get("profile_uuid", ""))
            if profile is None:
                return PlainTextResponse("NOT_FOUND", status_code=404)
            return self._reply(org, request, profile)
        if not isinstance(body, dict) or not body.get("profile_name") or not body.get("url"):
            return PlainTextResponse("CONFIG_NAME_REQUIRED" if not (body or {}).get("profile_name")
                                     else "CONFIG_URL_REQUIRED", status_code=400)
        profile_uuid = uuid.uuid4().hex.upper()
        org.profiles[profile_uuid] = {k: v for k, v in body.items() if k != "devices"}
        statuses = self._assign(org, profile_uuid, body.get("devices") or [])
        return self._reply(org, request, {"profile_uuid": profile_uuid, "devices": statuses})

    def _assign(self, org: FakeOrg, profile_uuid: str | None, serials) -> dict[str, str]:
        statuses = {}
        with org.lock:
            for serial in serials:
                if not isinstance(serial, str):
                    continue
                device = org.devices.get(serial)
                if device is None:
                    statuses[serial] = "NOT_ACCESSIBLE"
                elif serial in org.failing_serials:
                    statuses[serial] = "FAILED"
                else:
                    if profile_uuid:
                        device.update(profile_status="assigned", profile_uuid=profile_uuid,
                                      profile_assign_time=apple_time())
                    else:
                        device.update(profile_status="removed", profile_uuid="")
                    org._event("modified", device)
                    statuses[serial] = "SUCCESS"
        return statuses

    async def _profile_devices(self, request: Request) -> Response:
        org, error, body = await self._authed(request)
        if error:
            return error
        body = body or {}
        if request.method == "DELETE":
            return self._reply(org, request, {"devices": self._assign(org, None, body.get("devices") or [])})
        profile_uuid = body.get("profile_uuid")
        if profile_uuid not in org.profiles:
            return PlainTextResponse("PROFILE_NOT_FOUND", status_code=400)
        return self._reply(org, request, {"profile_uuid": profile_uuid,
                                          "devices": self._assign(org, profile_uuid, body.get("devices") or [])})

    async def _activation_lock(self, request: Request) -> Response:
        org, error, body = await self._authed(request)
        if error:
            return error
        serial = (body or {}).get("device")
        status = "SUCCESS" if serial in org.devices else "DEVICE_NOT_FOUND"
        return self._reply(org, request, {"serial_number": serial, "response_status": status})


# -- the .p7m Apple Business Manager hands out ------------------------------------------------------------------

def _plaintext(token: dict) -> bytes:
    return ("Content-Type: text/plain;charset=UTF-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"
            f"-----BEGIN MESSAGE-----\n{json.dumps(token)}\n-----END MESSAGE-----\r\n").encode()


def _smime(der: bytes) -> bytes:
    body = base64.encodebytes(der).decode()
    return ("MIME-Version: 1.0\r\nContent-Disposition: attachment; filename=\"smime.p7m\"\r\n"
            "Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name=\"smime.p7m\"\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n" + body).encode()


def _tripledes_envelope(data: bytes, cert: x509.Certificate) -> bytes:
    # `cryptography` only builds AES envelopes; this is the 3DES-CBC one older tooling makes.
    cek, iv = os.urandom(24), os.urandom(8)
    padder = sym_padding.PKCS7(64).padder()
    encryptor = Cipher(TripleDES(cek), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padder.update(data) + padder.finalize()) + encryptor.finalize()
    asn1_cert = asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))
    ktri = cms.KeyTransRecipientInfo({
        "version": "v0",
        "rid": cms.RecipientIdentifier(name="issuer_and_serial_number", value=cms.IssuerAndSerialNumber(
            {"issuer": asn1_cert.issuer, "serial_number": asn1_cert.serial_number})),
        "key_encryption_algorithm": {"algorithm": "rsaes_pkcs1v15"},
        "encrypted_key": cert.public_key().encrypt(cek, padding.PKCS1v15()),
    })
    enveloped = cms.EnvelopedData({
        "version": "v0",
        "recipient_infos": [cms.RecipientInfo(name="ktri", value=ktri)],
        "encrypted_content_info": {"content_type": "data",
                                   "content_encryption_algorithm": {"algorithm": "tripledes_3key",
                                                                    "parameters": core.OctetString(iv)},
                                   "encrypted_content": ciphertext},
    })
    return cms.ContentInfo({"content_type": "enveloped_data", "content": enveloped}).dump()


def server_token_p7m(cert_pem: bytes | str, token: dict | FakeOrg, *, cipher: str = "aes256_cbc") -> bytes:
    """The server token file for `token`, encrypted to the certificate from GET …/ade/public_key (S/MIME)."""
    cert = x509.load_pem_x509_certificate(cert_pem.encode() if isinstance(cert_pem, str) else cert_pem)
    data = _plaintext(token.token() if isinstance(token, FakeOrg) else token)
    if cipher == "tripledes_3key":
        return _smime(_tripledes_envelope(data, cert))
    aes = {"aes128_cbc": algorithms.AES128, "aes256_cbc": algorithms.AES256}[cipher]
    return (pkcs7.PKCS7EnvelopeBuilder().set_data(data).add_recipient(cert)
            .set_content_encryption_algorithm(aes).encrypt(serialization.Encoding.SMIME, [pkcs7.PKCS7Options.Binary]))


# -- running it ----------------------------------------------------------------------------------------------

@dataclass
class RunningFake:
    url: str
    fake: FakeADE


@contextmanager
def serve_fake_ade(fake: FakeADE | None = None, *, host: str = "127.0.0.1") -> Iterator[RunningFake]:
    """Run the fake with uvicorn on a free loopback port for the duration of the block."""
    import uvicorn

    fake = fake or FakeADE()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    server = uvicorn.Server(uvicorn.Config(fake.app, lifespan="off", log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="fake-ade", daemon=True)
    thread.start()
    deadline = time.time() + 10
    while not server.started:
        if time.time() > deadline or not thread.is_alive():
            raise RuntimeError("fake ADE service did not start")
        time.sleep(0.01)
    try:
        yield RunningFake(f"http://{host}:{sock.getsockname()[1]}", fake)
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
