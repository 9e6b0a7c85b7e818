"""`bramley trust sync / check / status`: the zero-trust side of the device-trust contract, as a client.

A sync reads the whole device list (and details for the devices whose verdict changed, at least one per sync so
a removed Device details permission is noticed), then swaps the local snapshot in one transaction. Faults:
- recoverable (timeouts, refused connections, 5xx, 429): the snapshot stays, the state says "failed to sync,
  last successful sync at …", and the loop backs off and tries again until it recovers by itself;
- unrecoverable (401, 403, other 4xx): the state becomes needs_attention, the admin is notified (log, and a
  webhook when configured), and syncing stops until the integration is given a new token or URL.

`check` answers from the snapshot alone, evaluating the rule at the time of asking (a device that went quiet
since the last sync fails the window as it should). Only HTTP to the server; no server imports.
"""
from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import random
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx

from bramley.trust import rules
from bramley.trust.client import ApiError, IruClient, Recoverable, Unrecoverable, base_url
from bramley.trust.snapshot import Row, Snapshot

log = logging.getLogger("bramley.trust.sync")

OK, WAITING, FAILING, NEEDS_ATTENTION = "ok", "waiting", "failing", "needs_attention"
# Exit codes the CLI uses (scripts and service managers read them).
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NEEDS_ATTENTION = 0, 1, 2, 3


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def iso(dt: datetime | None) -> str | None:
    return dt.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z") if dt else None


def default_state_dir() -> Path:
    """Per user: ~/Library/Application Support/Bramley/trust on macOS, $XDG_STATE_HOME/bramley/trust elsewhere."""
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "Bramley" / "trust"
    state_home = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state_home) / "bramley" / "trust"


def fingerprint(url: str, token: str) -> str:
    """Which integration the state belongs to (a changed token or URL is a reconfiguration). Not the token."""
    return hashlib.sha256(f"{base_url(url)}\n{token.strip()}".encode()).hexdigest()[:16]


@dataclass
class SyncConfig:
    url: str
    token: str
    state_dir: Path
    window_days: int = rules.DEFAULT_WINDOW_DAYS
    retries: int = 3  # more tries per request for a recoverable fault
    timeout: float = 30.0
    details_limit: int = 50  # device details read per sync (changed verdicts first)
    webhook: str | None = None
    backoff_min: float = 10.0  # first wait after a failed sync; doubles per failure, up to the interval


@dataclass
class SyncResult:
    state: str
    devices: int = 0
    verified: int = 0
    pages: int = 0
    details: int = 0
    retried: int = 0  # requests retried after a recoverable fault (5xx, 429, connection trouble)
    seconds: float = 0.0
    error: str | None = None
    error_status: int | None = None
    failures: int = 0
    stopped: bool = False  # refused to run: the integration needs attention

    @property
    def ok(self) -> bool:
        return self.state == OK


# --- notifications ---------------------------------------------------------------------------------------

@dataclass
class Notifier:
    """Tells the admin the integration needs attention: always in the log, and by webhook when configured."""

    webhook: str | None = None
    timeout: float = 10.0
    attempts: int = 3
    transport: httpx.BaseTransport | None = field(default=None, repr=False)

    def send(self, event: dict) -> bool:
        log.error("%s", event["message"])
        if not self.webhook:
            return True
        for attempt in range(self.attempts):
            try:
                with httpx.Client(timeout=self.timeout, transport=self.transport) as client:
                    response = client.post(self.webhook, json=event)
                if response.status_code < 300:
                    return True
                problem = f"answered {response.status_code}"
            except httpx.HTTPError as exc:
                problem = type(exc).__name__
            log.warning("webhook delivery failed (%s), attempt %d of %d", problem, attempt + 1, self.attempts)
            if attempt + 1 < self.attempts:
                time.sleep(0.5 * 2 ** attempt)
        return False


# --- one sync --------------------------------------------------------------------------------------------

def _flag(value) -> bool:
    """List fields are JSON booleans; details flags are the strings "True"/"False" (reference §6 rule 21)."""
    if isinstance(value, bool):
        return value
    return isinstance(value, str) and value.strip().lower() == "true"


def _row(device: dict) -> Row | None:
    serial, device_id = device.get("serial_number"), device.get("device_id")
    if not (isinstance(serial, str) and serial.strip() and isinstance(device_id, str) and device_id):
        return None  # a record without a serial number cannot match a device
    last = device.get("last_check_in")
    name, platform = device.get("device_name"), device.get("platform")
    return Row(device_id=device_id, serial_number=serial.strip(), device_name=name if isinstance(name, str) else None,
               platform=platform if isinstance(platform, str) else None,
               last_check_in=last if isinstance(last, str) and last else None,
               agent_installed=_flag(device.get("agent_installed")), mdm_enabled=_flag(device.get("mdm_enabled")),
               is_removed=_flag(device.get("is_removed")))


def facts(row: Row) -> rules.Facts:
    return rules.Facts(serial_number=row.serial_number, known=True,
                       last_check_in=rules.parse_timestamp(row.last_check_in), agent_installed=row.agent_installed,
                       mdm_enabled=row.mdm_enabled, is_removed=row.is_removed)


def _verified(row: Row, cutoff: datetime) -> bool:
    """The rule's outcome without building its reasons (counts over the whole fleet)."""
    if not (row.agent_installed and row.mdm_enabled and not row.is_removed):
        return False
    last = rules.parse_timestamp(row.last_check_in)
    return last is not None and last >= cutoff


def _apply_details(row: Row, details: dict) -> None:
    """Details are read after the list: where they say otherwise, they are the fresher word."""
    agent, mdm = details.get("kandji_agent"), details.get("mdm")
    if isinstance(agent, dict):
        if "agent_installed" in agent:
            row.agent_installed = _flag(agent["agent_installed"])
        last = agent.get("last_check_in")
        row.agent_last_check_in = last if isinstance(last, str) and last else None
    if isinstance(mdm, dict) and "mdm_enabled" in mdm:
        row.mdm_enabled = _flag(mdm["mdm_enabled"])


def _details_targets(rows: dict[str, Row], previous: dict[str, bool] | None, cutoff: datetime,
                     limit: int) -> list[str]:
    """The first device (a permission probe every sync), then those whose verdict changed or that are new."""
    targets = list(rows)[:1]
    if previous is not None:
        targets += [device_id for device_id, row in rows.items()
                    if previous.get(device_id) != _verified(row, cutoff)]
    return list(dict.fromkeys(targets))[:max(1, limit)]


def sync_once(config: SyncConfig, *, snapshot: Snapshot | None = None, transport: httpx.BaseTransport | None = None,
              notifier: Notifier | None = None, on_page=None, sleep=time.sleep) -> SyncResult:
    """One sync attempt, its outcome written to the state. Never raises for an API fault."""
    own = snapshot is None
    snap = snapshot or Snapshot(config.state_dir)
    try:
        return _sync(config, snap, transport=transport, notifier=notifier or Notifier(config.webhook),
                     on_page=on_page, sleep=sleep)
    finally:
        if own:
            snap.close()


def _sync(config: SyncConfig, snap: Snapshot, *, transport, notifier: Notifier, on_page, sleep) -> SyncResult:
    state = snap.integration()
    current = fingerprint(config.url, config.token)
    if state["token_fingerprint"] == current and state["state"] == NEEDS_ATTENTION:
        return SyncResult(NEEDS_ATTENTION, error=state["last_error"], error_status=state["last_error_status"],
                          failures=state["failures"], stopped=True)
    if state["token_fingerprint"] != current:
        # A new token or URL: a reconfigured integration starts afresh (the last snapshot stays until replaced).
        snap.update_integration(url=base_url(config.url), token_fingerprint=current, failures=0, notified_at=None,
                                state=OK if state["last_success_at"] else WAITING)
    started, now = time.monotonic(), utcnow()
    snap.update_integration(last_attempt_at=iso(now), window_days=config.window_days)
    cutoff = now - timedelta(days=config.window_days)
    pages = details = 0
    client = IruClient(config.url, config.token, timeout=config.timeout, retries=config.retries,
                       transport=transport, sleep=sleep)
    try:
        with client:
            rows: dict[str, Row] = {}
            for page in client.device_pages():
                pages += 1
                for device in page:
                    row = _row(device)
                    if row is not None:
                        rows[row.device_id] = row
                if on_page is not None:
                    on_page(pages)
            previous = None
            if state["last_success_at"]:
                previous = {r.device_id: _verified(r, cutoff) for r in snap.rows()}
            for device_id in _details_targets(rows, previous, cutoff, config.details_limit):
                found = client.device_details(device_id)
                details += 1
                if found is None:
                    rows.pop(device_id)  # deleted since the list was read
                else:
                    _apply_details(rows[device_id], found)
    except Unrecoverable as exc:
        result = _needs_attention(config, snap, exc, notifier, pages=pages, started=started)
        result.retried = client.retried
        return result
    except Recoverable as exc:
        result = _failing(config, snap, exc, pages=pages, started=started)
        result.retried = client.retried
        return result
    verified = sum(1 for r in rows.values() if _verified(r, cutoff))
    seconds = round(time.monotonic() - started, 3)
    snap.replace(rows.values(), state=OK, last_success_at=iso(now), failures=0, next_attempt_at=None,
                 devices=len(rows), verified=verified, sync_seconds=seconds)
    if state["state"] == FAILING:
        log.info("sync recovered after %d failed attempts: %d devices, %d verified", state["failures"], len(rows),
                 verified)
    else:
        log.info("synced %d devices (%d verified) in %.1f s", len(rows), verified, seconds)
    return SyncResult(OK, devices=len(rows), verified=verified, pages=pages, details=details,
                      retried=client.retried, seconds=seconds)


def _failing(config: SyncConfig, snap: Snapshot, exc: ApiError, *, pages: int, started: float) -> SyncResult:
    state = snap.integration()
    failures = (state["failures"] or 0) + 1
    snap.update_integration(state=FAILING, failures=failures, last_error=exc.message, last_error_status=exc.status,
                            last_error_at=iso(utcnow()))
    log.warning("failed to sync, last successful sync at %s: %s", state["last_success_at"] or "never", exc.message)
    return SyncResult(FAILING, pages=pages, seconds=round(time.monotonic() - started, 3), error=exc.message,
                      error_status=exc.status, failures=failures, devices=state["devices"] or 0,
                      verified=state["verified"] or 0)


def _needs_attention(config: SyncConfig, snap: Snapshot, exc: ApiError, notifier: Notifier, *, pages: int,
                     started: float) -> SyncResult:
    state = snap.integration()
    now = iso(utcnow())
    snap.update_integration(state=NEEDS_ATTENTION, last_error=exc.message, last_error_status=exc.status,
                            last_error_at=now, next_attempt_at=None)
    event = {
        "event": "trust.integration.needs_attention",
        "message": f"Bramley trust sync needs attention: {exc.message}. Syncing has stopped; give the integration "
                   "a new API token (Device list and Device details) or fix the URL.",
        "url": base_url(config.url), "status": exc.status, "error": exc.message, "occurred_at": now,
        "last_successful_sync_at": state["last_success_at"], "devices_in_snapshot": state["devices"] or 0,
    }
    if notifier.send(event):
        snap.update_integration(notified_at=now)
    return SyncResult(NEEDS_ATTENTION, pages=pages, seconds=round(time.monotonic() - started, 3), error=exc.message,
                      error_status=exc.status, failures=state["failures"] or 0)


# --- the loop --------------------------------------------------------------------------------------------

def backoff(failures: int, *, interval: float, minimum: float, rng: random.Random | None = None) -> float:
    """Wait after the n-th failed sync in a row: doubling from `minimum`, never longer than the interval."""
    ceiling = min(interval, minimum * 2 ** max(0, failures - 1))
    return ceiling * (rng or random).uniform(0.5, 1.0)


class AlreadyRunning(Exception):
    pass


class SyncLock:
    """One syncing process per state directory (an advisory lock on a file beside the snapshot)."""

    def __init__(self, state_dir: Path):
        Path(state_dir).mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = Path(state_dir) / "sync.lock"
        self._fh = None

    def __enter__(self) -> "SyncLock":
        self._fh = open(self.path, "w")
        try:
            fcntl.flock(self._fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._fh.close()
            raise AlreadyRunning(f"another `bramley trust sync` is using {self.path.parent}") from None
        return self

    def __exit__(self, *exc) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()


def run(config: SyncConfig, *, interval: float, stop: threading.Event | None = None,
        transport: httpx.BaseTransport | None = None) -> int:
    """Sync every `interval` seconds until `stop`; after failures back off and retry sooner. Returns an exit code:
    EXIT_OK when stopped, EXIT_NEEDS_ATTENTION when an unrecoverable error ended syncing."""
    stop = stop or threading.Event()
    notifier = Notifier(config.webhook)
    with SyncLock(config.state_dir), Snapshot(config.state_dir) as snap:
        while not stop.is_set():
            result = sync_once(config, snapshot=snap, transport=transport, notifier=notifier, sleep=stop.wait)
            if result.state == NEEDS_ATTENTION:
                return EXIT_NEEDS_ATTENTION
            delay = interval if result.ok else backoff(result.failures, interval=interval,
                                                       minimum=min(config.backoff_min, interval))
            snap.update_integration(next_attempt_at=iso(utcnow() + timedelta(seconds=delay)))
            stop.wait(delay)
    return EXIT_OK


# --- reading the snapshot --------------------------------------------------------------------------------

def state_line(state: dict, now: datetime | None = None) -> str:
    """One sentence for humans: what the integration is doing."""
    last = state["last_success_at"]
    when = f"{last} ({ago(last, now)})" if last else "never"
    return {
        WAITING: "waiting to sync",
        OK: f"synced, last successful sync at {when}",
        FAILING: f"failed to sync, last successful sync at {when}",
        NEEDS_ATTENTION: f"needs attention: syncing stopped, last successful sync at {when}",
    }.get(state["state"], state["state"])


def ago(stamp: str | None, now: datetime | None = None) -> str:
    then = rules.parse_timestamp(stamp)
    if then is None:
        return "never"
    seconds = max(0, int(((now or utcnow()) - then).total_seconds()))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''} ago"
    return "just now"


def status(snap: Snapshot, now: datetime | None = None) -> dict:
    state = snap.integration()
    return {**state, "summary": state_line(state, now), "snapshot_devices": snap.count()}


def check(snap: Snapshot, serial_number: str, *, now: datetime | None = None,
          window_days: int | None = None) -> dict:
    """The verdict for one serial number from the snapshot, evaluated now. Several records with the serial (a
    removed one and its re-enrollment): verified if any is; otherwise the most recently seen one explains why."""
    now = now or utcnow()
    state = snap.integration()
    window = window_days or state["window_days"] or rules.DEFAULT_WINDOW_DAYS
    serial = serial_number.strip()
    found = snap.lookup(serial)
    chosen, verdict = None, rules.evaluate(rules.Facts(serial, known=False), now=now, window_days=window)
    for row in found:
        candidate = rules.evaluate(facts(row), now=now, window_days=window)
        newer = chosen is None or (row.last_check_in or "") > (chosen.last_check_in or "")
        if chosen is None or (candidate.verified and not verdict.verified) or \
                (candidate.verified == verdict.verified and newer):
            chosen, verdict = row, candidate
    return {
        "serial_number": chosen.serial_number if chosen else serial,
        "verified": verdict.verified,
        "reasons": [f.as_dict() for f in verdict.failed],
        "device_id": chosen.device_id if chosen else None,
        "device_name": chosen.device_name if chosen else None,
        "last_check_in": chosen.last_check_in if chosen else None,
        "agent_last_check_in": chosen.agent_last_check_in if chosen else None,
        "window_days": window,
        "snapshot_at": state["last_success_at"],
        "sync_state": state["state"],
        "sync_summary": state_line(state, now),
    }
