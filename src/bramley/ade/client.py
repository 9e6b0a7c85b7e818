"""A client for Apple's device enrollment API (mdmenrollment.apple.com, reference §9.2–9.3). No DB.

Only `GET /session` is OAuth 1.0a signed (HMAC-SHA1, realm ADM); it yields a session token that every other
call sends as `X-ADM-Auth-Session`. Apple may hand back a new token in any response: the client keeps the latest.
On 401 (or a 403 `FORBIDDEN`, which Apple's own simulator sends for a stale session) it signs in again once.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

import httpx

from bramley.ade.token import ServerToken

PROTOCOL_VERSION = "7"
SESSION_HEADER = "X-ADM-Auth-Session"
MAX_FETCH_LIMIT = 1000  # Apple's maximum page for fetch and sync
# Codes meaning the token or the account needs an admin (terms not accepted, token revoked): retrying won't help.
ACCOUNT_CODES = {"T_C_NOT_SIGNED", "ACCESS_DENIED", "FORBIDDEN", "UNAUTHORIZED", "TOKEN_EXPIRED",
                 "TOKEN_REJECTED", "OAUTH_PROBLEM"}
CURSOR_RESET_CODES = {"EXPIRED_CURSOR", "INVALID_CURSOR"}


class DEPError(Exception):
    """Apple answered with an error status. `code` is Apple's error string (EXPIRED_CURSOR, FORBIDDEN, ...)."""

    def __init__(self, status: int, code: str, retry_after: float | None = None):
        super().__init__(f"Apple ADE API {status} {code}".strip())
        self.status = status
        self.code = code
        self.retry_after = retry_after

    @property
    def account_problem(self) -> bool:
        return self.status in (401, 403) or self.code in ACCOUNT_CODES

    @property
    def transient(self) -> bool:
        return self.status == 429 or self.status >= 500


def _pct(value: str) -> str:
    return quote(value, safe="~")


def _base_url(url: str) -> str:
    """OAuth's normalised request URL: lower-case scheme and host, default port dropped, no query."""
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    port = parts.port
    netloc = host if port is None or (scheme, port) in (("http", 80), ("https", 443)) else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path or "/", "", ""))


def oauth_signature(method: str, url: str, params: dict[str, str], consumer_secret: str, token_secret: str) -> str:
    pairs = sorted((_pct(k), _pct(v)) for k, v in params.items())
    base = "&".join([method.upper(), _pct(_base_url(url)), _pct("&".join(f"{k}={v}" for k, v in pairs))])
    key = f"{_pct(consumer_secret)}&{_pct(token_secret)}".encode()
    return base64.b64encode(hmac.new(key, base.encode(), hashlib.sha1).digest()).decode()


def oauth_header(method: str, url: str, token: ServerToken, *, timestamp: int | None = None,
                 nonce: str | None = None) -> str:
    params = {
        "oauth_consumer_key": token.consumer_key,
        "oauth_token": token.access_token,
        "oauth_signature_method": "HMAC-SHA1",
        "oauth_timestamp": str(timestamp if timestamp is not None else int(time.time())),
        "oauth_nonce": nonce or secrets.token_hex(16),
        "oauth_version": "1.0",
    }
    params["oauth_signature"] = oauth_signature(method, url, params, token.consumer_secret, token.access_secret)
    return 'OAuth realm="ADM", ' + ", ".join(f'{k}="{_pct(v)}"' for k, v in params.items())


def _error_code(response: httpx.Response) -> str:
    text = response.text.strip()
    try:
        data = json.loads(text)
    except ValueError:
        data = text
    if isinstance(data, dict):
        data = data.get("code") or data.get("error") or data.get("message") or ""
    code = str(data).strip().splitlines()[0] if str(data).strip() else ""
    return code[:64]


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    try:
        return min(max(float(value), 0.0), 3600.0)
    except ValueError:
        return None


@dataclass
class DevicePage:
    devices: list[dict]
    cursor: str | None
    more_to_follow: bool


class DEPClient:
    """One server token's conversation with Apple. `session_token` may carry a token from an earlier run."""

    def __init__(self, base_url: str, token: ServerToken, *, http: httpx.AsyncClient,
                 session_token: str | None = None):
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.http = http
        self.session_token = session_token
        self.sessions_started = 0

    async def start_session(self) -> str:
        url = f"{self.base_url}/session"
        response = await self.http.get(url, headers={"Authorization": oauth_header("GET", url, self.token),
                                                     "X-Server-Protocol-Version": PROTOCOL_VERSION})
        if response.status_code != 200:
            raise DEPError(response.status_code, _error_code(response), _retry_after(response))
        try:
            session = response.json()["auth_session_token"]
        except (ValueError, KeyError, TypeError):
            raise DEPError(502, "BAD_SESSION_RESPONSE") from None
        if not isinstance(session, str) or not session:
            raise DEPError(502, "BAD_SESSION_RESPONSE")
        self.session_token = session
        self.sessions_started += 1
        return session

    async def call(self, method: str, path: str, body: dict | None = None, params: dict | None = None):
        if not self.session_token:
            await self.start_session()
        for attempt in (1, 2):
            response = await self.http.request(
                method, f"{self.base_url}{path}", params=params,
                content=json.dumps(body).encode() if body is not None else None,
                headers={SESSION_HEADER: self.session_token or "", "X-Server-Protocol-Version": PROTOCOL_VERSION,
                         "Content-Type": "application/json;charset=UTF8", "Accept": "application/json"})
            rotated = response.headers.get(SESSION_HEADER)
            if rotated:
                self.session_token = rotated
            if response.status_code < 400:
                try:
                    return response.json()
                except ValueError:
                    raise DEPError(502, "BAD_RESPONSE_BODY") from None
            code = _error_code(response)
            stale = response.status_code == 401 or (response.status_code == 403 and code == "FORBIDDEN")
            if stale and attempt == 1:
                await self.start_session()
                continue
            raise DEPError(response.status_code, code, _retry_after(response))
        raise AssertionError("unreachable")

    # -- the calls Bramley makes --------------------------------------------------------------------------------

    async def account(self) -> dict:
        data = await self.call("GET", "/account")
        if not isinstance(data, dict) or not data.get("server_uuid"):
            raise DEPError(502, "BAD_ACCOUNT_RESPONSE")
        return data

    async def _page(self, path: str, cursor: str | None, limit: int) -> DevicePage:
        body: dict = {"limit": max(1, min(limit, MAX_FETCH_LIMIT))}
        if cursor:
            body["cursor"] = cursor
        data = await self.call("POST", path, body)
        if not isinstance(data, dict):
            raise DEPError(502, "BAD_DEVICES_RESPONSE")
        devices = [d for d in data.get("devices") or [] if isinstance(d, dict) and d.get("serial_number")]
        return DevicePage(devices, data.get("cursor") or cursor, bool(data.get("more_to_follow")))

    async def fetch_devices(self, cursor: str | None, limit: int = MAX_FETCH_LIMIT) -> DevicePage:
        return await self._page("/server/devices", cursor, limit)

    async def sync_devices(self, cursor: str, limit: int = MAX_FETCH_LIMIT) -> DevicePage:
        return await self._page("/devices/sync", cursor, limit)

    async def define_profile(self, profile: dict) -> str:
        data = await self.call("POST", "/profile", profile)
        uuid = data.get("profile_uuid") if isinstance(data, dict) else None
        if not isinstance(uuid, str) or not uuid:
            raise DEPError(502, "BAD_PROFILE_RESPONSE")
        return uuid

    async def assign_profile(self, profile_uuid: str, serials: list[str]) -> dict[str, str]:
        """{serial: SUCCESS | NOT_ACCESSIBLE | FAILED ...}; a serial Apple leaves out counts as FAILED."""
        data = await self.call("PUT", "/profile/devices", {"profile_uuid": profile_uuid, "devices": serials})
        statuses = data.get("devices") if isinstance(data, dict) else None
        statuses = statuses if isinstance(statuses, dict) else {}
        return {s: str(statuses.get(s) or "FAILED")[:32] for s in serials}
