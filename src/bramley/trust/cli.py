"""`bramley trust …`: the sync client a zero-trust product runs (sync, check, status), and `evaluate` for the
server's admin. Client commands import only the client modules: they need no database and no server."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import typer

trust_app = typer.Typer(help="Device trust: sync a snapshot of verified devices over the API and check serials "
                             "against it (the zero-trust side); evaluate verdicts on the server.",
                        no_args_is_help=True)

STATE_DIR_HELP = "Where the snapshot and state live (default: $BRAMLEY_TRUST_DIR, else a per-user directory)."


def _state_dir(value: Path | None) -> Path:
    from bramley.trust.sync import default_state_dir

    return value if value is not None else default_state_dir()


def _out(text: str) -> None:
    typer.echo(text)


def _err(text: str) -> None:
    typer.echo(text, err=True)


def _log_to(state_dir: Path, *, stderr: bool) -> None:
    """The log channel: <state dir>/trust.log, where a needs-attention notice always lands, and (when syncing in
    a loop) stderr, which a service manager keeps; a single sync prints its own outcome instead."""
    logger = logging.getLogger("bramley.trust.sync")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s")
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    to_file = logging.FileHandler(state_dir / "trust.log")
    to_file.setFormatter(fmt)
    logger.addHandler(to_file)
    if stderr:
        to_stderr = logging.StreamHandler()
        to_stderr.setFormatter(fmt)
        logger.addHandler(to_stderr)


@trust_app.command("sync")
def sync(
    url: str = typer.Option(..., "--url", envvar="BRAMLEY_TRUST_URL",
                            help="The API: <sub>.api.kandji.io, https://host:port, http://127.0.0.1:8080, …"),
    token: str = typer.Option(..., "--token", envvar="BRAMLEY_TRUST_TOKEN",
                              help="API token with Device list and Device details (prefer the environment "
                                   "variable: a command line is visible to other users)."),
    interval: float = typer.Option(300.0, "--interval", min=0.1, help="Seconds between syncs."),
    once: bool = typer.Option(False, "--once", help="Sync once and exit (exit 1: failed, 3: needs attention)."),
    state_dir: Path | None = typer.Option(None, "--state-dir", envvar="BRAMLEY_TRUST_DIR", help=STATE_DIR_HELP),
    window_days: int = typer.Option(7, "--window-days", min=1, max=365,
                                    help="Days a device may go without reporting and stay verified."),
    webhook: str | None = typer.Option(None, "--webhook", envvar="BRAMLEY_TRUST_WEBHOOK",
                                       help="POST a JSON notice here when the integration needs attention."),
    retries: int = typer.Option(3, "--retries", min=0, max=10, help="Retries per request on recoverable faults."),
    timeout: float = typer.Option(30.0, "--timeout", min=0.1, help="Seconds per request."),
    backoff_min: float = typer.Option(10.0, "--backoff", min=0.05,
                                      help="First wait after a failed sync (doubles, up to the interval)."),
    details_limit: int = typer.Option(50, "--details-limit", min=1,
                                      help="Device details read per sync (devices whose verdict changed first)."),
    as_json: bool = typer.Option(False, "--json", help="With --once: print the outcome as JSON."),
):
    """Pull the device list as a zero-trust product does and keep a local snapshot of verified serials."""
    import signal
    import threading
    from dataclasses import asdict

    from bramley.trust import sync as trust_sync
    from bramley.trust.client import base_url

    try:
        base_url(url)
    except ValueError as exc:
        _err(f"error: {exc}")
        raise typer.Exit(trust_sync.EXIT_USAGE) from None
    if webhook is not None and not webhook.startswith(("http://", "https://")):
        _err("error: --webhook must be an http(s) URL")
        raise typer.Exit(trust_sync.EXIT_USAGE)
    directory = _state_dir(state_dir)
    _log_to(directory, stderr=not once)
    config = trust_sync.SyncConfig(url=url, token=token, state_dir=directory, window_days=window_days,
                                   retries=retries, timeout=timeout, webhook=webhook, backoff_min=backoff_min,
                                   details_limit=details_limit)
    try:
        if once:
            with trust_sync.SyncLock(directory):
                result = trust_sync.sync_once(config)
        else:
            stop = threading.Event()
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: stop.set())
            _err(f"syncing {base_url(url)} every {interval:g} s into {directory} (Ctrl-C stops)")
            code = trust_sync.run(config, interval=interval, stop=stop)
            if code == trust_sync.EXIT_NEEDS_ATTENTION:
                _err("stopped: the integration needs attention (see `bramley trust status`)")
            raise typer.Exit(code)
    except trust_sync.AlreadyRunning as exc:
        _err(f"error: {exc}")
        raise typer.Exit(trust_sync.EXIT_USAGE) from None
    if as_json:
        _out(json.dumps({**asdict(result), "ok": result.ok}))
    elif result.stopped:
        _err(f"not syncing: the integration needs attention ({result.error}); give it a new token or URL")
    elif result.ok:
        _out(f"synced {result.devices} devices ({result.verified} verified) in {result.seconds:.1f} s")
    else:
        _err(f"{result.state.replace('_', ' ')}: {result.error}")
    raise typer.Exit({trust_sync.OK: trust_sync.EXIT_OK, trust_sync.FAILING: trust_sync.EXIT_FAILED}.get(
        result.state, trust_sync.EXIT_NEEDS_ATTENTION))


@trust_app.command("check")
def check(
    serial_number: str = typer.Argument(..., help="The device's serial number."),
    as_json: bool = typer.Option(False, "--json"),
    state_dir: Path | None = typer.Option(None, "--state-dir", envvar="BRAMLEY_TRUST_DIR", help=STATE_DIR_HELP),
):
    """Is this serial verified? Answers from the local snapshot (exit 0 verified, 1 not, 2 no snapshot yet)."""
    from bramley.trust import sync as trust_sync
    from bramley.trust.snapshot import FILE_NAME, Snapshot

    if not serial_number.strip():
        _err("error: give a serial number")
        raise typer.Exit(trust_sync.EXIT_USAGE)
    directory = _state_dir(state_dir)
    if not (directory / FILE_NAME).exists():
        _err(f"no snapshot in {directory}: run `bramley trust sync` first")
        raise typer.Exit(trust_sync.EXIT_USAGE)
    with Snapshot(directory) as snap:
        if not snap.integration()["last_success_at"]:
            _err(f"no successful sync yet ({trust_sync.state_line(snap.integration())})")
            raise typer.Exit(trust_sync.EXIT_USAGE)
        verdict = trust_sync.check(snap, serial_number)
    if as_json:
        _out(json.dumps(verdict))
    else:
        _out(f"{verdict['serial_number']}: {'verified' if verdict['verified'] else 'NOT verified'}")
        for reason in verdict["reasons"]:
            _out(f"  - {reason['message']}")
        if verdict["sync_state"] != trust_sync.OK:
            _err(f"warning: {verdict['sync_summary']}")
    raise typer.Exit(trust_sync.EXIT_OK if verdict["verified"] else trust_sync.EXIT_FAILED)


@trust_app.command("status")
def status(
    as_json: bool = typer.Option(False, "--json"),
    state_dir: Path | None = typer.Option(None, "--state-dir", envvar="BRAMLEY_TRUST_DIR", help=STATE_DIR_HELP),
):
    """The integration's state, its last sync and last successful sync, and the last error."""
    from bramley.trust import sync as trust_sync
    from bramley.trust.snapshot import FILE_NAME, Snapshot

    directory = _state_dir(state_dir)
    if not (directory / FILE_NAME).exists():
        if as_json:
            _out(json.dumps({"state": trust_sync.WAITING, "summary": "not configured", "state_dir": str(directory)}))
        else:
            _out(f"not configured: no sync has run with state directory {directory}")
        return
    with Snapshot(directory) as snap:
        info = trust_sync.status(snap)
    info["state_dir"] = str(directory)
    if as_json:
        _out(json.dumps(info))
        return
    rows = [("state", f"{info['state']}: {info['summary']}"), ("url", info["url"] or "-"),
            ("last sync attempt", info["last_attempt_at"] or "never"),
            ("last successful sync", info["last_success_at"] or "never"),
            ("snapshot", f"{info['snapshot_devices']} devices, {info['verified'] or 0} verified at last sync"),
            ("last error", f"{info['last_error']} (at {info['last_error_at']})" if info["last_error"] else "none")]
    if info["state"] == trust_sync.FAILING:
        rows.append(("failed attempts in a row", str(info["failures"])))
    if info["next_attempt_at"]:
        rows.append(("next attempt", info["next_attempt_at"]))
    if info["state"] == trust_sync.NEEDS_ATTENTION:
        rows.append(("admin notified", info["notified_at"] or "not yet (notice failed)"))
    for name, value in rows:
        _out(f"{name + ':':<26}{value}")


@trust_app.command("evaluate")
def evaluate(tenant: str = typer.Option(..., help="Tenant subdomain."),
             as_json: bool = typer.Option(False, "--json")):
    """Server side: evaluate every device of a tenant now, recording and auditing verdict changes."""
    from bramley.cli import _database, _fail
    from bramley.tenancy import service as tenants
    from bramley.trust import service as trust

    db = _database()
    with db.unit_of_work() as s:
        found = tenants.get_by_subdomain(s, tenant)
        if found is None:
            _fail(f"no tenant {tenant!r}")
        ctx = tenants.system_context(found)
        summary = trust.evaluate_tenant(s, ctx)
        trust.schedule_sweep(s, ctx)
    db.dispose()
    if as_json:
        _out(json.dumps(summary))
    else:
        _out(f"{tenant}: {summary['verified']} of {summary['devices']} devices verified "
             f"(window {summary['window_days']} days); {summary['changes']} changes recorded"
             + (" (first evaluation: baseline, not audited)" if summary["baseline"] else ""))


def register(app: typer.Typer) -> None:
    """Add this domain's command groups to the main `bramley` app."""
    app.add_typer(trust_app, name="trust")
