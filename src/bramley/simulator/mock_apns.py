"""A mock APNs for tests and load runs (after Fleet's apple-apns-mock).

`POST /3/device/{token}` checks what Apple checks for an MDM push (topic, push type, body exactly
{"mdm": "<PushMagic>"}), records every request, and keeps one pending push per token, newest wins, as APNs
stores one notification per offline device. A simulated device waits for its push with `wait` (threads) or
`await next_push` (any event loop). Failures are injected per token: `fail(token, "Unregistered")`.

`serve_mock_apns()` runs it with uvicorn (HTTP/1.1) on a free loopback port; `serve_mock_apns_h2()` runs it
with hypercorn over TLS with ALPN h2, optionally requiring a client certificate, as Apple does.
"""
from __future__ import annotations

import asyncio
import json
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

# The status APNs answers with for each reason (Apple's table of error responses).
REASON_STATUS = {
    "BadCollapseId": 400, "BadDeviceToken": 400, "BadExpirationDate": 400, "BadMessageId": 400,
    "BadPriority": 400, "BadTopic": 400, "DeviceTokenNotForTopic": 400, "DuplicateHeaders": 400,
    "IdleTimeout": 400, "InvalidPushType": 400, "MissingDeviceToken": 400, "MissingTopic": 400,
    "PayloadEmpty": 400, "TopicDisallowed": 400,
    "BadCertificate": 403, "BadCertificateEnvironment": 403, "ExpiredProviderToken": 403, "Forbidden": 403,
    "InvalidProviderToken": 403, "MissingProviderToken": 403,
    "BadPath": 404, "MethodNotAllowed": 405, "Unregistered": 410, "PayloadTooLarge": 413,
    "TooManyProviderTokenUpdates": 429, "TooManyRequests": 429,
    "InternalServerError": 500, "ServiceUnavailable": 503, "Shutdown": 503,
}


@dataclass(frozen=True)
class Push:
    token: str
    topic: str
    push_type: str
    priority: str
    expiration: str
    push_magic: str
    body: bytes
    headers: dict[str, str]
    http_version: str
    status: int
    reason: str
    apns_id: str
    received_at: float = field(default_factory=time.time)


@dataclass
class _Failure:
    reason: str
    status: int
    remaining: int | None  # None: until cleared


class MockAPNs:
    """State and ASGI app. Thread-safe: the server runs in its own thread, tests read from theirs."""

    def __init__(self, *, topic: str | None = None):
        self.topic = topic  # when set, other topics get 400 DeviceTokenNotForTopic (one topic per tenant)
        self._lock = threading.Condition()
        self._requests: list[Push] = []
        self._pending: dict[str, Push] = {}
        self._failures: dict[str, list[_Failure]] = {}
        self._async_waiters: dict[str, list[tuple[asyncio.AbstractEventLoop, asyncio.Future]]] = {}
        self.app = Starlette(routes=[Route("/3/device/{token}", self._endpoint, methods=["POST"])])

    # --- what tests look at -----------------------------------------------------------------------------

    @property
    def requests(self) -> list[Push]:
        """Every request received, failed ones included, in arrival order."""
        with self._lock:
            return list(self._requests)

    def pushes(self, token: str | None = None) -> list[Push]:
        """Accepted (200) pushes, optionally for one token."""
        return [p for p in self.requests if p.status == 200 and (token is None or p.token == token)]

    def fail(self, token: str, reason: str, *, times: int | None = None, status: int | None = None) -> None:
        """Answer pushes to `token` with {"reason": reason} (status from Apple's table) `times` times, or always."""
        with self._lock:
            self._failures.setdefault(token.lower(), []).append(
                _Failure(reason, status or REASON_STATUS.get(reason, 400), times))

    def clear_failures(self, token: str | None = None) -> None:
        with self._lock:
            if token is None:
                self._failures.clear()
            else:
                self._failures.pop(token.lower(), None)

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()
            self._pending.clear()
            self._failures.clear()

    # --- what a simulated device does ----------------------------------------------------------------------

    def take(self, token: str) -> Push | None:
        """The pending push for `token`, if any; taking it delivers it."""
        with self._lock:
            return self._pending.pop(token.lower(), None)

    def wait(self, token: str, timeout: float | None = None) -> Push | None:
        """Block until a push for `token` is pending, take it; None on timeout."""
        token = token.lower()
        with self._lock:
            if not self._lock.wait_for(lambda: token in self._pending, timeout):
                return None
            return self._pending.pop(token)

    async def next_push(self, token: str, timeout: float | None = None) -> Push | None:
        """Await a push for `token` from any event loop, take it; None on timeout."""
        token = token.lower()
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            with self._lock:
                push = self._pending.pop(token, None)
                if push is not None:
                    return push
                future = loop.create_future()
                waiter = (loop, future)
                self._async_waiters.setdefault(token, []).append(waiter)
            try:
                remaining = None if deadline is None else max(0.0, deadline - loop.time())
                await asyncio.wait_for(future, remaining)
            except asyncio.TimeoutError:
                return self.take(token)
            finally:
                with self._lock:
                    waiters = self._async_waiters.get(token, [])
                    if waiter in waiters:
                        waiters.remove(waiter)

    # --- the endpoint --------------------------------------------------------------------------------------

    def _validate(self, token: str, headers, body: bytes) -> tuple[str, str]:
        """(reason, push_magic); reason is "" when the request is what an MDM push must be."""
        if not token or len(token) % 2 or any(c not in "0123456789abcdefABCDEF" for c in token):
            return "BadDeviceToken", ""
        topic = headers.get("apns-topic", "")
        if not topic:
            return "MissingTopic", ""
        if headers.get("apns-push-type", "mdm") != "mdm":
            return "InvalidPushType", ""
        if headers.get("apns-priority", "10") not in ("5", "10"):
            return "BadPriority", ""
        if not headers.get("apns-expiration", "0").isdigit():
            return "BadExpirationDate", ""
        if not body:
            return "PayloadEmpty", ""
        try:
            payload = json.loads(body)
        except ValueError:
            return "BadPayload", ""
        if not isinstance(payload, dict) or set(payload) != {"mdm"} or not isinstance(payload["mdm"], str):
            return "BadPayload", ""
        if self.topic is not None and topic != self.topic:
            return "DeviceTokenNotForTopic", payload["mdm"]
        return "", payload["mdm"]

    async def _endpoint(self, request: Request) -> Response:
        token = request.path_params["token"]
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        reason, magic = self._validate(token, headers, body)
        status = REASON_STATUS.get(reason, 400) if reason else 200
        apns_id = headers.get("apns-id") or str(uuid.uuid4()).upper()
        with self._lock:
            if not reason:
                failures = self._failures.get(token.lower())
                if failures:
                    failure = failures[0]
                    reason, status = failure.reason, failure.status
                    if failure.remaining is not None:
                        failure.remaining -= 1
                        if failure.remaining <= 0:
                            failures.pop(0)
            push = Push(token=token.lower(), topic=headers.get("apns-topic", ""),
                        push_type=headers.get("apns-push-type", ""), priority=headers.get("apns-priority", ""),
                        expiration=headers.get("apns-expiration", ""), push_magic=magic, body=body,
                        headers=headers, http_version=request.scope.get("http_version", ""), status=status,
                        reason=reason, apns_id=apns_id)
            self._requests.append(push)
            if status == 200:
                self._pending[push.token] = push  # newest wins
                self._lock.notify_all()
                for loop, future in self._async_waiters.pop(push.token, []):
                    loop.call_soon_threadsafe(_resolve, future)
        if status == 200:
            return Response(status_code=200, headers={"apns-id": apns_id})
        content: dict = {"reason": reason}
        if status == 410:
            content["timestamp"] = int(time.time() * 1000)
        return JSONResponse(content, status_code=status, headers={"apns-id": apns_id})


def make_push_certificate(topic: str | None = None, *, not_before: datetime | None = None,
                          not_after: datetime | None = None, key_size: int = 2048) -> tuple[bytes, bytes]:
    """A self-signed stand-in for an Apple MDM push certificate: (cert PEM, key PEM), topic in the subject UID."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    topic = topic or f"com.apple.mgmt.External.{uuid.uuid4()}"
    now = datetime.now(timezone.utc)
    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    name = x509.Name([x509.NameAttribute(NameOID.USER_ID, topic),
                      x509.NameAttribute(NameOID.COMMON_NAME, f"APSP:{topic.rsplit('.', 1)[-1]}"),
                      x509.NameAttribute(NameOID.COUNTRY_NAME, "US")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or now - timedelta(minutes=5))
            .not_valid_after(not_after or now + timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                              serialization.NoEncryption()))


def _resolve(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


@dataclass
class RunningMock:
    url: str
    mock: MockAPNs


def _free_socket(host: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    return sock


@contextmanager
def serve_mock_apns(mock: MockAPNs | None = None, *, host: str = "127.0.0.1") -> Iterator[RunningMock]:
    """Run the mock with uvicorn (plain HTTP/1.1) on a free loopback port for the duration of the block."""
    import uvicorn

    mock = mock or MockAPNs()
    sock = _free_socket(host)
    server = uvicorn.Server(uvicorn.Config(mock.app, lifespan="off", log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="mock-apns", daemon=True)
    thread.start()
    deadline = time.time() + 10
    while not server.started:
        if time.time() > deadline or not thread.is_alive():
            raise RuntimeError("mock APNs did not start")
        time.sleep(0.01)
    try:
        yield RunningMock(f"http://{host}:{sock.getsockname()[1]}", mock)
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@contextmanager
def serve_mock_apns_h2(mock: MockAPNs | None = None, *, certfile: Path, keyfile: Path,
                       client_ca: Path | None = None, host: str = "127.0.0.1") -> Iterator[RunningMock]:
    """Run the mock with hypercorn over TLS (ALPN h2, as APNs). With `client_ca`, a client certificate
    chaining to it is required, as APNs requires the push certificate."""
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    mock = mock or MockAPNs()
    with _free_socket(host) as probe:
        port = probe.getsockname()[1]
    config = Config()
    config.bind = [f"{host}:{port}"]
    config.certfile, config.keyfile = str(certfile), str(keyfile)
    config.alpn_protocols = ["h2", "http/1.1"]
    config.accesslog = None
    config.errorlog = None
    if client_ca:
        config.ca_certs = str(client_ca)
        config.verify_mode = ssl.CERT_REQUIRED
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    started = threading.Event()

    async def _main() -> None:
        task = asyncio.ensure_future(serve(mock.app, config, shutdown_trigger=stop.wait))
        for _ in range(500):
            try:
                socket.create_connection((host, port), timeout=0.1).close()
                break
            except OSError:
                await asyncio.sleep(0.01)
        started.set()
        await task

    thread = threading.Thread(target=loop.run_until_complete, args=(_main(),), name="mock-apns-h2", daemon=True)
    thread.start()
    if not started.wait(10):
        raise RuntimeError("mock APNs (h2) did not start")
    try:
        yield RunningMock(f"https://{host}:{port}", mock)
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()
