"""The sync client's HTTP side: the Iru device API as a zero-trust product calls it (device list pages and
device details, nothing else), with its fault policy. Talks only HTTP; imports nothing of the server.

Every failure is one of two kinds, because the caller treats them differently:
- `Recoverable`: timeouts, refused or dropped connections, 5xx, 429, replies that are not the API's. Retried
  here a few times (honouring Retry-After); if it persists the sync fails and keeps its last snapshot.
- `Unrecoverable`: 401 (bad, revoked or deleted token), 403 (a permission was taken away), any other 4xx
  (wrong URL). Never retried: the integration needs an admin.
"""
from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from email.utils import parsedate_to_datetime
from urllib.parse import quote, urlsplit

import httpx
import orjson

PAGE_SIZE = 300  # the API's hard maximum (reference §2.4)
MAX_PAGES = 10_000
MAX_WAIT = 60.0  # longest Retry-After honoured
USER_AGENT = "bramley-trust-sync/1.0"


class ApiError(Exception):
    recoverable = True

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message)
        self.message = message
        self.status = status


class Recoverable(ApiError):
    recoverable = True


class Unrecoverable(ApiError):
    recoverable = False


def base_url(value: str) -> str:
    """`acme.api.kandji.io`, `https://host:8443`, `http://127.0.0.1:8080`, or a bare subdomain (`acme`) → the
    origin the API lives at (scheme, host, port; a path is dropped: the API is at the host root)."""
    text = (value or "").strip()
    if not text:
        raise ValueError("the URL is empty")
    if "://" not in text:
        text = f"https://{text}" if ("." in text or ":" in text) else f"https://{text}.api.kandji.io"
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {value!r}")
    return f"{parts.scheme}://{parts.netloc}"


def _detail(response: httpx.Response) -> str:
    """The server's own message (detail, error, errors, message), short; never echoes headers."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return ""
    if isinstance(body, dict):
        for key in ("detail", "error", "errors", "message"):
            if key in body:
                return str(body[key])[:200]
    return ""


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class IruClient:
    """GETs against one tenant's API with a token. `retries` more tries per request for recoverable faults."""

    def __init__(self, url: str, token: str, *, timeout: float = 30.0, retries: int = 3, backoff: float = 0.5,
                 transport: httpx.BaseTransport | None = None, sleep: Callable[[float], None] = time.sleep,
                 rng: random.Random | None = None):
        self.url = base_url(url)
        self.retries, self.backoff, self.sleep = retries, backoff, sleep
        self.rng = rng or random.Random()
        self.requests = 0
        self.retried = 0  # requests sent again after a recoverable fault
        self._http = httpx.Client(
            base_url=self.url, transport=transport, timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            headers={"Authorization": f"Bearer {token.strip()}", "Accept": "application/json",
                     "User-Agent": USER_AGENT}, follow_redirects=False)
        self._hold_until = 0.0  # the server said to wait (429 or an exhausted rate-limit window)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "IruClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- one request ---------------------------------------------------------------------------------

    def _wait(self, attempt: int, hint: float | None) -> None:
        delay = min(MAX_WAIT, hint) if hint is not None else self.backoff * 2 ** attempt * self.rng.uniform(0.5, 1.0)
        self.sleep(delay)
        self._hold_until = 0.0  # whatever the server asked for is waited out now

    def get(self, path: str, params: dict | None = None):
        """The decoded JSON of a 200; 404 → None when `path` names one object. Raises ApiError."""
        last: Recoverable | None = None
        for attempt in range(self.retries + 1):
            pause = self._hold_until - time.monotonic()
            if pause > 0:
                self.sleep(min(pause, MAX_WAIT))
                self._hold_until = 0.0
            hint = None
            try:
                self.requests += 1
                response = self._http.get(path, params=params)
            except httpx.TimeoutException:
                last = Recoverable(f"timed out calling {self.url}")
            except httpx.TransportError as exc:
                last = Recoverable(f"cannot reach {self.url}: {type(exc).__name__}")
            else:
                status = response.status_code
                self._pace(response)
                if status == 200:
                    try:
                        return orjson.loads(response.content)
                    except orjson.JSONDecodeError:
                        last = Recoverable("the server's reply is not JSON (a proxy or captive portal?)",
                                           status=status)
                elif status == 429:
                    hint = _retry_after(response) or 1.0
                    self._hold_until = time.monotonic() + min(hint, MAX_WAIT)
                    last = Recoverable("rate limited (429)", status=status)
                elif status >= 500:
                    hint = _retry_after(response)
                    last = Recoverable(f"server error ({status})", status=status)
                else:
                    raise self._refusal(response, path)
            if attempt < self.retries:
                self.retried += 1
                self._wait(attempt, hint)
        assert last is not None
        raise last

    def _pace(self, response: httpx.Response) -> None:
        """Stay under the limit instead of running into it: an exhausted window means wait for its reset."""
        if response.headers.get("ratelimit-remaining") == "0":
            try:
                reset = float(response.headers.get("ratelimit-reset", "1"))
            except ValueError:
                reset = 1.0
            self._hold_until = max(self._hold_until, time.monotonic() + min(reset, MAX_WAIT))

    def _refusal(self, response: httpx.Response, path: str) -> ApiError:
        status, detail = response.status_code, _detail(response)
        said = f": {detail}" if detail else ""
        if status == 401:
            return Unrecoverable(f"the API token was refused (401{said}): it is wrong, revoked or deleted",
                                 status=status)
        if status == 403:
            return Unrecoverable(f"the API token lacks a permission for GET {path.split('?')[0]} (403{said}); it "
                                 "needs Device list and Device details", status=status)
        if 300 <= status < 400:
            return Unrecoverable(f"redirected ({status}) to {response.headers.get('location', '?')}: use that URL",
                                 status=status)
        if status == 404:
            return Unrecoverable(f"{self.url} has no device API (404{said}): check the URL", status=status)
        return Unrecoverable(f"the API refused the request ({status}{said})", status=status)

    # --- the two calls a zero-trust product makes ------------------------------------------------------

    def device_pages(self, *, page_size: int = PAGE_SIZE) -> Iterator[list[dict]]:
        """Every device, page by page (offset += what came back), until an empty or short page."""
        offset, previous_first = 0, None
        for _ in range(MAX_PAGES):
            page = self.get("/api/v1/devices", {"limit": page_size, "offset": offset})
            if not isinstance(page, list) or not all(isinstance(d, dict) for d in page):
                raise Recoverable("the device list is not a JSON array of devices")
            if not page:
                return
            first = page[0].get("device_id")
            if offset and first is not None and first == previous_first:
                raise Recoverable("the server ignored the offset (the same page came back twice)")
            previous_first = first
            yield page
            if len(page) < page_size:
                return
            offset += len(page)
        raise Recoverable(f"more than {MAX_PAGES} pages of devices")

    def device_details(self, device_id: str) -> dict | None:
        """One device's details; None when it no longer exists (deleted since the list was read)."""
        try:
            details = self.get(f"/api/v1/devices/{quote(device_id, safe='')}/details")
        except Unrecoverable as exc:
            if exc.status == 404:
                return None
            raise
        if not isinstance(details, dict):
            raise Recoverable("device details are not a JSON object")
        return details
