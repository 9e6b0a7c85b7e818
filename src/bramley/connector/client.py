"""One connection to an Iru tenant or a Bramley server: base URL + API token, with the retry rules every card
shares (reference §2.1).

- 429: wait `Retry-After` (seconds or an HTTP date, capped), then retry; the wait also holds back every later
  request of this connection, as the gateway's limit is per tenant, not per request. Any method: a 429 is
  refused before the API runs anything.
- A connection that could not be opened (refused, DNS, connect timeout): retried for any method, nothing was sent.
- 5xx (500, 502, 503, 504), read timeouts and dropped connections: retried with capped exponential backoff and full
  jitter, on idempotent methods only (GET, HEAD, OPTIONS, PUT, DELETE). A POST or PATCH may already have acted.
- `RateLimit-Remaining: 0` with `RateLimit-Reset` pauses the next request until the window resets.
"""
from __future__ import annotations

import email.utils
import platform
import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

import httpx

from bramley.connector.domains import base_url_for, tenant_of
from bramley.connector.errors import ConnectionFailed, InvalidInput, error_for

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRY_STATUSES = frozenset({500, 502, 503, 504})
VERSION = "0.1.0"


def _user_agent() -> str:
    return f"bramley-connector/{VERSION} {platform.system()}/{platform.release()} Python/{platform.python_version()}"


def check_token(token: str | None) -> str:
    """The token as sent: surrounding whitespace stripped; refused if empty or if it could split a header."""
    value = (token or "").strip()
    if not value:
        raise InvalidInput("Connection", "no API token: give --token, --token-file or BRAMLEY_TOKEN")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in value):
        raise InvalidInput("Connection", "the API token contains spaces or control characters")
    return value


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """`Retry-After` as seconds (fractions allowed) or an HTTP date; None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class Connection:
    """A domain and an API token. Validates both with one cheap call (GET /devices?limit=1) unless told not to.

    `transport` swaps the network (tests use httpx.MockTransport); `sleep` and `clock` (monotonic seconds) are
    replaceable for the same reason. The token is never part of repr(), errors or logs.
    """

    def __init__(self, domain: str, token: str, *, region: str | None = None, timeout: float = 30.0,
                 max_retries: int = 3, backoff_base: float = 0.5, backoff_cap: float = 8.0,
                 retry_after_cap: float = 60.0, verify: bool | str = True, validate: bool = True,
                 transport: httpx.BaseTransport | None = None, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic, user_agent: str | None = None):
        self.base_url = base_url_for(domain, region)
        self.api_url = self.base_url + "/api/v1"
        self.tenant = tenant_of(self.base_url)
        self.max_retries, self.backoff_base, self.backoff_cap = max_retries, backoff_base, backoff_cap
        self.retry_after_cap = retry_after_cap
        self._sleep, self._clock = sleep, clock
        self._random = random.Random()
        self._gate_lock = threading.Lock()
        self._not_before = 0.0  # monotonic time before which no request leaves (429, RateLimit-Reset)
        self._client = httpx.Client(
            base_url=self.api_url, transport=transport, verify=verify, follow_redirects=False,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            headers={"Authorization": f"Bearer {check_token(token)}", "Accept": "application/json",
                     "User-Agent": user_agent or _user_agent()})
        if validate:
            try:
                self.validate()
            except BaseException:
                self.close()
                raise

    def __repr__(self) -> str:
        return f"Connection({self.base_url!r}, token=<hidden>)"

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def validate(self) -> None:
        """The cheapest call the minimum permission allows (Devices › Device Information › Device list)."""
        response = self.request("GET", "/devices", params={"limit": 1}, card="Connection")
        body = _json(response)
        if not isinstance(body, list):
            raise ConnectionFailed("Connection", None, self.api_url + "/devices",
                                   "the answer is not an Iru device list; is this the API's domain?")

    # --- requests -------------------------------------------------------------------------------------------

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = None,
                data: Mapping[str, Any] | None = None, headers: Mapping[str, str] | None = None,
                card: str | None = None, device_id: str | None = None, raise_for_status: bool = True
                ) -> httpx.Response:
        """Send one request to `/api/v1{path}` with the retry rules above. Non-2xx raises an ApiError naming the
        card, the device and the status (unless raise_for_status=False: Custom API Action reports it instead)."""
        method = method.upper()
        url, query = _relative(path), _query(params)
        if "?" in url:
            # A query in the path and a query object together (Custom API Action allows both): merge them, as
            # httpx would replace the path's query with the object's.
            url, _, inline = url.partition("?")
            query = [*parse_qsl(inline, keep_blank_values=True), *(query or {}).items()]
        kwargs: dict[str, Any] = {"params": query, "headers": dict(headers or {})}
        if json is not None:
            kwargs["json"] = json
        elif data is not None:
            kwargs["data"] = data
        attempt = 0
        while True:
            self._wait_for_gate()
            try:
                response = self._client.request(method, url, **kwargs)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                # Nothing reached the API: safe to try again whatever the method.
                if attempt < self.max_retries:
                    attempt += 1
                    self._pause(self._backoff(attempt))
                    continue
                raise ConnectionFailed(card, device_id, self.base_url, _reason(exc)) from None
            except httpx.TransportError as exc:  # read/write timeout, dropped connection: it may have acted
                if method in IDEMPOTENT and attempt < self.max_retries:
                    attempt += 1
                    self._pause(self._backoff(attempt))
                    continue
                raise ConnectionFailed(card, device_id, self.base_url, _reason(exc)) from None
            self._note_rate_limit(response)
            status = response.status_code
            if status == 429 and attempt < self.max_retries:
                attempt += 1
                wait = retry_after_seconds(response.headers.get("Retry-After"))
                self._hold_all(min(self.retry_after_cap, 1.0 if wait is None else wait))
                continue  # the gate at the top of the loop does the waiting
            if status in RETRY_STATUSES and method in IDEMPOTENT and attempt < self.max_retries:
                attempt += 1
                wait = retry_after_seconds(response.headers.get("Retry-After")) if status == 503 else None
                self._pause(min(self.retry_after_cap, wait) if wait is not None else self._backoff(attempt))
                continue
            if raise_for_status and not 200 <= status < 300:
                raise error_for(status, card=card, device_id=device_id, method=method, path=url,
                                body=_json(response), headers=dict(response.headers))
            return response

    def get_json(self, path: str, **kwargs) -> Any:
        return _json(self.request("GET", path, **kwargs))

    # --- pacing ---------------------------------------------------------------------------------------------

    def _backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(cap, base·2^(attempt-1))]."""
        return self._random.uniform(0, min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1)))

    def _pause(self, seconds: float) -> None:
        if seconds > 0:
            self._sleep(seconds)

    def _hold_all(self, seconds: float) -> None:
        """No request of this connection leaves for `seconds` (the limit is the tenant's, not the request's)."""
        with self._gate_lock:
            self._not_before = max(self._not_before, self._clock() + seconds)

    def _wait_for_gate(self) -> None:
        with self._gate_lock:
            remaining = self._not_before - self._clock()
        if remaining > 0:
            self._pause(remaining)

    def _note_rate_limit(self, response: httpx.Response) -> None:
        remaining = response.headers.get("RateLimit-Remaining")
        reset = response.headers.get("RateLimit-Reset")
        if remaining is None or reset is None or response.status_code == 429:
            return
        try:
            if int(remaining) > 0:
                return
            seconds = min(self.retry_after_cap, max(0.0, float(reset)))
        except ValueError:
            return
        self._hold_all(seconds)


def _relative(path: str) -> str:
    """A path after /v1. Absolute URLs are refused: the token must never be sent to another host."""
    path = path.strip()
    if "://" in path or path.startswith("//"):
        raise InvalidInput("Custom API Action", "give the path after /v1 (e.g. /devices), not a full URL")
    if not path.startswith("/"):
        path = "/" + path
    if path.startswith("/api/v1/"):
        path = path[len("/api/v1"):]
    return path


def _query(params: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not params:
        return None
    out: dict[str, Any] = {}
    for key, value in params.items():
        if value is None:
            continue
        out[key] = ("true" if value else "false") if isinstance(value, bool) else value
    return out


def _json(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return response.text


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text != type(exc).__name__ else text
