"""Real faults for the sync client: a server process of our own to stop and start, a fault-injecting proxy in
front of a live server, and a webhook receiver for the admin notices."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.conftest import cli_env, free_port

DETAILS = ("GET", "/api/v1/devices/{device_id}/details")
DEVICE_LIST = ("GET", "/api/v1/devices")
ZERO_TRUST = [DEVICE_LIST, DETAILS]  # what the Twingate setup grants, and all a sync needs


class ServerProcess:
    """`bramley serve` on a fixed port that a test may stop (as an outage) and start again."""

    def __init__(self, settings, **env):
        self.settings, self.env = settings, env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        exe = Path(sys.executable).with_name("bramley")
        env = cli_env(self.settings, **{"BRAMLEY_RATE_LIMIT_PER_SECOND": "100000",
                                        "BRAMLEY_RATE_LIMIT_PER_HOUR": "10000000", **self.env})
        self.proc = subprocess.Popen([str(exe), "serve", "--port", str(self.port), "--no-worker"], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.proc.stderr.read().decode()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None


@pytest.fixture
def server_process(settings):
    """A server of the test's own (the session's live_server must keep running for other tests)."""
    servers: list[ServerProcess] = []

    def _make(**env) -> ServerProcess:
        server = ServerProcess(settings, **env)
        server.start()
        servers.append(server)
        return server

    yield _make
    for server in servers:
        server.stop()


class _Quiet(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # the test output is not an access log
        pass

    def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class FaultProxy:
    """Forwards GETs to a live server, except those a rule answers itself (a 500, a 429, a dropped connection).

    `rules` are (predicate(path) -> bool, times or None for always, reply) checked in order; reply is
    (status, headers, body) or "drop" (close the connection without answering).
    """

    def __init__(self, upstream: str):
        self.upstream = upstream
        self.rules: list[list] = []
        self.seen: list[tuple[str, int | str]] = []
        self.lock = threading.Lock()
        self._client = httpx.Client(base_url=upstream, timeout=30)
        proxy = self

        class Handler(_Quiet):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                proxy._handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def add(self, reply, *, times: int | None = None, when: Callable[[str], bool] = lambda path: True) -> None:
        with self.lock:
            self.rules.append([when, times, reply])

    def clear(self) -> None:
        with self.lock:
            self.rules.clear()

    def _pick(self, path: str):
        with self.lock:
            for rule in self.rules:
                when, times, reply = rule
                if when(path) and (times is None or times > 0):
                    if times is not None:
                        rule[1] -= 1
                    return reply
        return None

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        reply = self._pick(handler.path)
        if reply == "drop":
            self.seen.append((handler.path, "drop"))
            handler.close_connection = True
            handler.connection.shutdown(2)
            return
        if reply is not None:
            status, headers, body = reply
            self.seen.append((handler.path, status))
            handler._reply(status, body, {"Content-Type": "application/json", **headers})
            return
        headers = {k: v for k, v in handler.headers.items() if k.lower() in ("authorization", "accept", "user-agent")}
        try:
            upstream = self._client.get(handler.path, headers=headers)
        except httpx.HTTPError:
            self.seen.append((handler.path, 502))
            handler._reply(502, b'{"detail":"bad gateway"}', {"Content-Type": "application/json"})
            return
        self.seen.append((handler.path, upstream.status_code))
        passed = {k: v for k, v in upstream.headers.items()
                  if k.lower() not in ("content-length", "content-encoding", "transfer-encoding", "connection")}
        handler._reply(upstream.status_code, upstream.content, passed)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._client.close()


SERVER_ERROR = (500, {}, b'{"detail":"A server error occurred."}')
THROTTLED = (429, {"Retry-After": "1"}, b'{"message":"API rate limit exceeded"}')


@pytest.fixture
def fault_proxy():
    proxies: list[FaultProxy] = []

    def _make(upstream: str) -> FaultProxy:
        proxy = FaultProxy(upstream)
        proxies.append(proxy)
        return proxy

    yield _make
    for proxy in proxies:
        proxy.close()


class WebhookReceiver:
    """Where the admin's notices go: records each JSON body POSTed to it."""

    def __init__(self):
        self.received: list[dict] = []
        self.arrived = threading.Event()
        receiver = self

        class Handler(_Quiet):
            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("Content-Length", 0))
                receiver.received.append(json.loads(self.rfile.read(length)))
                receiver.arrived.set()
                self._reply(204, b"")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/bramley"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook():
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


def server_verdicts(client, tenant) -> dict[str, bool]:
    """Every serial's verdict as the server's trust API gives it (all pages)."""
    out: dict[str, bool] = {}
    offset = 0
    while True:
        r = client.get("/api/v1/trust/devices", params={"limit": 300, "offset": offset}, headers=tenant.auth)
        assert r.status_code == 200, r.text
        page = r.json()["results"]
        for verdict in page:
            out[verdict["serial_number"]] = out.get(verdict["serial_number"], False) or verdict["verified"]
        if len(page) < 300:
            return out
        offset += 300
