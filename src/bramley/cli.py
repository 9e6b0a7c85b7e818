"""`bramley` command line. Other tools and tests rely on these exact forms (issue 4 §3)."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from bramley.config import Settings, get_settings

app = typer.Typer(help="Bramley: self-hosted Apple device management with the Iru (Kandji) API.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
tenant_app = typer.Typer(help="Tenants.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens (values are shown once).", no_args_is_help=True)
demo_app = typer.Typer(help="Demo data.", no_args_is_help=True)
db_app = typer.Typer(help="Database.", no_args_is_help=True)
app.add_typer(tenant_app, name="tenant")
app.add_typer(token_app, name="token")
app.add_typer(demo_app, name="demo")
app.add_typer(db_app, name="db")
secrets_app = typer.Typer(help="Secrets at rest (values are never printed).", no_args_is_help=True)
app.add_typer(secrets_app, name="secrets")

console = Console()
err = Console(stderr=True)


def _database(settings: Settings | None = None):
    from bramley.db.engine import Database
    from bramley.db.migrate import upgrade

    settings = settings or get_settings()
    upgrade(settings)
    return Database(settings)


def _fail(message: str, code: int = 1):
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


def _domain_errors(fn):
    from functools import wraps

    from bramley.errors import BramleyError, Conflict, InvalidField, NotFound

    @wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except InvalidField as exc:
            _fail("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.errors.items()))
        except Conflict as exc:
            _fail(exc.message)
        except NotFound as exc:
            _fail(f"not found: {exc}")
        except BramleyError as exc:
            _fail(str(exc))
    return wrapper


@db_app.command("upgrade")
def db_upgrade():
    """Apply database migrations."""
    from bramley.db.migrate import upgrade

    upgrade(get_settings())
    console.print("database is up to date")


@tenant_app.command("create")
@_domain_errors
def tenant_create(subdomain: str, region: str = typer.Option("us", help="us or eu")):
    """Create a tenant."""
    from bramley.tenancy import service as tenants

    db = _database()
    with db.unit_of_work() as s:
        tenant = tenants.create(s, subdomain=subdomain, region=region)
        console.print(f"created tenant {tenant.subdomain} ({tenant.region}) id={tenant.id}")


@tenant_app.command("list")
def tenant_list(as_json: bool = typer.Option(False, "--json")):
    """List tenants."""
    from bramley.tenancy import service as tenants

    db = _database()
    with db.unit_of_work() as s:
        rows = tenants.get_all(s)
        if as_json:
            print(json.dumps([{"id": t.id, "subdomain": t.subdomain, "region": t.region} for t in rows]))
            return
        table = Table("subdomain", "region", "id", "created")
        for t in rows:
            table.add_row(t.subdomain, t.region, t.id, t.created_at.strftime("%Y-%m-%d %H:%M"))
        console.print(table)


def _tenant_ctx(s, subdomain: str):
    from bramley.tenancy import service as tenants

    tenant = tenants.get_by_subdomain(s, subdomain)
    if tenant is None:
        _fail(f"no tenant {subdomain!r}")
    return tenants.system_context(tenant)


def route_catalogue():
    from bramley.app import create_app
    from bramley.auth.permissions import catalogue

    return catalogue(create_app(get_settings()).routes)


@token_app.command("create")
@_domain_errors
def token_create(
    tenant: str = typer.Option(..., help="Tenant subdomain."),
    description: str = typer.Option(..., help="What the token is for (required)."),
    all_access: bool = typer.Option(False, "--all", help="Grant every route."),
    permission: list[str] = typer.Option([], "--permission", help='e.g. "GET /api/v1/devices" (repeatable)'),
    as_json: bool = typer.Option(False, "--json"),
):
    """Create an API token; its value is printed once and never again."""
    from bramley.auth import service as tokens
    from bramley.auth.permissions import parse_permission

    try:
        perms = [parse_permission(p) for p in permission]
    except ValueError as exc:
        _fail(str(exc))
    if not all_access and not perms:
        _fail("give --all or at least one --permission")
    known = {p.key for p in route_catalogue()}
    db = _database()
    with db.unit_of_work() as s:
        ctx = _tenant_ctx(s, tenant)
        ctx = type(ctx)(ctx.tenant_id, ctx.subdomain, ctx.region, actor_id="cli", actor_type="admin",
                        actor_name="bramley CLI")
        created = tokens.create(s, ctx, description=description, permissions=perms, all_access=all_access, known=known)
        token_id, value = created.token.id, created.value
    if as_json:
        print(json.dumps({"id": token_id, "token": value}))
    else:
        console.print(f"token id: {token_id}")
        console.print(f"token:    [bold]{value}[/bold]")
        console.print("Copy it now: it will not be shown again.")


@token_app.command("list")
def token_list(tenant: str = typer.Option(...), as_json: bool = typer.Option(False, "--json")):
    """List a tenant's tokens (never their values)."""
    from bramley.auth import service as tokens

    db = _database()
    with db.unit_of_work() as s:
        ctx = _tenant_ctx(s, tenant)
        rows = tokens.get_all(s, ctx)
        data = [{"id": t.id, "description": t.description, "all_access": t.all_access,
                 "permissions": [" ".join(p) for p in t.permissions],
                 "created_at": t.created_at.isoformat(), "last_used_at": t.last_used_at.isoformat() if t.last_used_at else None,
                 "revoked": t.revoked_at is not None} for t in rows]
    if as_json:
        print(json.dumps(data))
        return
    table = Table("id", "description", "access", "last used", "revoked")
    for t in data:
        access = "all" if t["all_access"] else f"{len(t['permissions'])} routes"
        table.add_row(t["id"], t["description"], access, t["last_used_at"] or "never", "yes" if t["revoked"] else "")
    console.print(table)


@token_app.command("revoke")
@_domain_errors
def token_revoke(token_id: str):
    """Revoke a token: it answers 401 from now on."""
    from bramley.auth import service as tokens
    from bramley.tenancy import service as tenants

    db = _database()
    with db.unit_of_work() as s:
        token = tokens.get_any(s, token_id)
        if token is None:
            _fail(f"no token {token_id}")
        ctx = tenants.system_context(tenants.get(s, token.tenant_id))
        tokens.revoke(s, ctx, token_id)
    console.print(f"revoked {token_id}")


@token_app.command("permissions")
def token_permissions(as_json: bool = typer.Option(False, "--json")):
    """The permission catalogue, grouped as the admin UI groups it."""
    cat = route_catalogue()
    if as_json:
        print(json.dumps([{"section": p.section, "group": p.group, "label": p.label, "method": p.method,
                           "path": p.path} for p in cat]))
        return
    table = Table("section", "group", "label", "permission")
    for p in cat:
        table.add_row(p.section, p.group, p.label, f"{p.method} {p.path}")
    console.print(table)


def seed_tenant(settings: Settings, subdomain: str, count: int, *, quiet: bool = False) -> None:
    from bramley.demo.seed import seed

    db = _database(settings)
    with Progress(TextColumn("seeding {task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=err, disable=quiet) as progress:
        task = progress.add_task(subdomain, total=count)
        with db.unit_of_work() as s:
            ctx = _tenant_ctx(s, subdomain)
            seed(s, ctx, devices_count=count, progress=lambda n: progress.advance(task, n))
    db.dispose()


@demo_app.command("seed")
def demo_seed(tenant: str = typer.Option(...), devices: int = typer.Option(50, "--devices", min=1, max=1_000_000)):
    """Fill a tenant with a realistic fleet (Macs, iPhones, iPads, Apple TVs; users; blueprints)."""
    seed_tenant(get_settings(), tenant, devices)
    console.print(f"seeded {devices} devices into {tenant}")


def _ensure_demo(settings: Settings) -> None:
    from bramley.auth import service as tokens
    from bramley.tenancy import service as tenants

    db = _database(settings)
    with db.unit_of_work() as s:
        tenant = tenants.get_by_subdomain(s, "demo")
        fresh = tenant is None
        if fresh:
            tenant = tenants.create(s, subdomain="demo", region="us")
        ctx = tenants.system_context(tenant)
        created = tokens.create(s, ctx, description="Demo token (bramley serve --demo)", permissions=[],
                                all_access=True)
        value = created.value
    db.dispose()
    if fresh:
        seed_tenant(settings, "demo", 60)
    err.print(f"[green]demo tenant ready[/green]: subdomain demo, API token [bold]{value}[/bold]")
    err.print("  try: curl -H 'Authorization: Bearer " + value + "' http://HOST:PORT/api/v1/devices")


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1"),
    port: int = typer.Option(8080),
    workers: int = typer.Option(1, min=1),
    demo: bool = typer.Option(False, "--demo", help="Create a demo tenant with a fleet and print a token."),
    tls_cert: Path | None = typer.Option(None, "--tls-cert", exists=True, dir_okay=False),
    tls_key: Path | None = typer.Option(None, "--tls-key", exists=True, dir_okay=False),
    no_worker: bool = typer.Option(False, "--no-worker",
                                   help="Do not run background jobs here (run `bramley worker` instead)."),
):
    """Run the server (migrations are applied first). GET /healthz answers 200 when ready."""
    import uvicorn

    from bramley.db.migrate import upgrade

    # The job worker runs in-process unless told otherwise; set before the settings are first read.
    if no_worker:
        os.environ["BRAMLEY_RUN_WORKER"] = "false"
    else:
        os.environ.setdefault("BRAMLEY_RUN_WORKER", "true")
    get_settings.cache_clear()
    settings = get_settings()
    if bool(tls_cert) != bool(tls_key):
        _fail("--tls-cert and --tls-key go together")
    _check_master_key(settings)
    upgrade(settings)
    if demo:
        _ensure_demo(settings)
    # Workers are separate processes: they rebuild the app from the same environment.
    os.environ.setdefault("BRAMLEY_DATA_DIR", str(settings.data_dir))
    # Workers share one listening socket, and the first one awake took every connection waiting (libuv accepts
    # until the queue is empty): keep-alive clients then all landed on one worker while the others idled (seen: 16
    # of 16 connections on one of two workers, half the throughput). One accept per wake-up spreads them.
    os.environ.setdefault("UV_TCP_SINGLE_ACCEPT", "1")
    uvicorn.run("bramley.app:create_app", factory=True, host=host, port=port, workers=workers,
                ssl_certfile=str(tls_cert) if tls_cert else None, ssl_keyfile=str(tls_key) if tls_key else None,
                log_level="warning", access_log=False)


def _check_master_key(settings: Settings) -> None:
    """Refuse to start on a malformed BRAMLEY_SECRET_KEY or an unsafe key file (creating the file if absent)."""
    from bramley.secrets.crypto import MasterKeyError, keyring

    try:
        keyring(settings)
    except MasterKeyError as exc:
        _fail(str(exc))


@secrets_app.command("generate-key")
def secrets_generate_key():
    """Print a new random master key (base64 of 32 bytes) for BRAMLEY_SECRET_KEY."""
    from bramley.secrets.crypto import encode_key, generate_key

    print(encode_key(generate_key()))


@secrets_app.command("rotate-key")
def secrets_rotate_key(
    new_master_key: str | None = typer.Option(
        None, "--new-master-key",
        help="Only with BRAMLEY_SECRET_KEY: base64 of the new master key ('-' reads it from stdin). "
             "Without it the data keys rotate under the same master key."),
):
    """New data key per tenant, every value re-encrypted; a key-file master key is replaced too."""
    from bramley.errors import BramleyError
    from bramley.secrets import crypto
    from bramley.secrets import service as secrets

    settings = get_settings()
    file_based = settings.secret_key is None
    if file_based and new_master_key:
        _fail("--new-master-key applies to BRAMLEY_SECRET_KEY; the key file is replaced automatically")
    _check_master_key(settings)
    db = _database(settings)
    new_master = None
    if file_based:
        with db.unit_of_work() as s:
            in_use = secrets.master_key_ids(s)
        staged = crypto.staged_master_key(settings)
        if staged is not None and staged.id in in_use:
            crypto.promote_staged_key(settings)  # an earlier run committed but stopped before renaming
        new_master = crypto.stage_master_key(settings)
    elif new_master_key:
        text = sys.stdin.readline() if new_master_key == "-" else new_master_key
        try:
            new_master = crypto.parse_master_key(text, source="--new-master-key")
        except crypto.MasterKeyError as exc:
            _fail(str(exc))
    try:
        with db.unit_of_work() as s:
            _, values_total = secrets.count_all(s)
        with Progress(TextColumn("re-encrypting secrets"), BarColumn(), MofNCompleteColumn(),
                      TimeRemainingColumn(), console=err) as progress:
            task = progress.add_task("secrets", total=values_total)
            with db.unit_of_work() as s:
                report = secrets.rotate_all(s, new_master=new_master,
                                            progress=lambda n: progress.advance(task, n))
    except BramleyError as exc:
        if file_based:
            crypto.discard_staged_key(settings)
        _fail(f"rotation rolled back, nothing changed: {exc}")
    except BaseException:
        if file_based:
            crypto.discard_staged_key(settings)
        raise
    if file_based:
        crypto.promote_staged_key(settings)
    db.dispose()
    say = lambda line: console.print(line, soft_wrap=True, highlight=False)  # noqa: E731 (one line each)
    say(f"rotated data keys of {report.tenants} tenants; re-encrypted {report.secrets} secrets")
    if file_based:
        say(f"new master key {report.master_key_id} written to {crypto.key_path(settings)}")
    elif report.master_key_changed:
        say(f"data keys now wrapped by master key {report.master_key_id}")
        say("set BRAMLEY_SECRET_KEY to the new key and restart every Bramley process")
    else:
        say(f"master key {report.master_key_id} unchanged (BRAMLEY_SECRET_KEY)")


# --- background jobs and APNs ----------------------------------------------------------------------------

apns_app = typer.Typer(help="APNs push credentials (one push topic per tenant).", no_args_is_help=True)
app.add_typer(apns_app, name="apns")


@app.command()
def worker(
    concurrency: int | None = typer.Option(None, min=1, help="Batches run side by side (default: setting)."),
    once: bool = typer.Option(False, "--once", help="Run the jobs due now, then exit."),
):
    """Run background jobs (APNs pushes, ...) until interrupted; start as many as needed."""
    import asyncio
    import signal

    from bramley.jobs.worker import Worker

    settings = get_settings()
    _check_master_key(settings)  # jobs decrypt credentials (APNs keys, ADE tokens): refuse a bad key up front
    db = _database(settings)
    runner = Worker(db, settings, concurrency=concurrency)

    async def _run() -> None:
        if once:
            async with runner:
                count = await runner.drain()
            err.print(f"ran {count} jobs")
            return
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        err.print("worker running (Ctrl-C stops it)")
        await runner.run(stop)

    asyncio.run(_run())
    db.dispose()


@apns_app.command("upload")
@_domain_errors
def apns_upload(
    files: list[Path] = typer.Argument(..., exists=True, dir_okay=False, metavar="CERT KEY | P8FILE",
                                       help="CERT KEY (PEM), or with --token-auth the .p8 key file."),
    tenant: str = typer.Option(..., help="Tenant subdomain."),
    token_auth: bool = typer.Option(False, "--token-auth", help="Provider token (JWT) auth with a .p8 key."),
    key_id: str = typer.Option("", "--key-id", help="Token auth: the key's id."),
    team_id: str = typer.Option("", "--team-id", help="Token auth: the Apple developer team id."),
    topic: str = typer.Option("", "--topic", help="Token auth: the push topic (com.apple.mgmt.External.…)."),
):
    """Store the tenant's MDM push certificate and key (topic read from the certificate), or token-auth keys."""
    from bramley.mdm import push

    if token_auth:
        if len(files) != 1:
            _fail("--token-auth takes one file: the .p8 auth key")
        if not (key_id and team_id and topic):
            _fail("--token-auth needs --key-id, --team-id and --topic")
    elif len(files) != 2:
        _fail("give the certificate and its private key: bramley apns upload --tenant SUB CERT KEY")
    db = _database()
    with db.unit_of_work() as s:
        ctx = _tenant_ctx(s, tenant)
        ctx = type(ctx)(ctx.tenant_id, ctx.subdomain, ctx.region, actor_id="cli", actor_type="admin",
                        actor_name="bramley CLI")
        if token_auth:
            row = push.save_token_key(s, ctx, key_pem=files[0].read_bytes(), key_id=key_id, team_id=team_id,
                                      topic=topic)
        else:
            row = push.save_certificate(s, ctx, cert_pem=files[0].read_bytes(), key_pem=files[1].read_bytes())
        topic_saved, auth, not_after = row.topic, row.auth_type, row.not_after
    expiry = f", expires {not_after:%Y-%m-%d}" if not_after else ""
    console.print(f"stored APNs {auth} credentials for {tenant}: topic {topic_saved}{expiry}")


@apns_app.command("show")
def apns_show(tenant: str = typer.Option(...), as_json: bool = typer.Option(False, "--json")):
    """The tenant's push topic, auth type and certificate expiry (never the key)."""
    from bramley.mdm import push

    db = _database()
    with db.unit_of_work() as s:
        row = push.get_certificate(s, _tenant_ctx(s, tenant))
        data = None if row is None else {
            "topic": row.topic, "auth_type": row.auth_type, "key_id": row.key_id, "team_id": row.team_id,
            "not_after": row.not_after.isoformat() if row.not_after else None}
    if data is None:
        _fail(f"tenant {tenant!r} has no APNs credentials (bramley apns upload)")
    if as_json:
        print(json.dumps(data))
    else:
        for name, value in data.items():
            console.print(f"{name}: {value or '-'}")



# --- enrollment ---------------------------------------------------------------------------------------------

mdm_app = typer.Typer(help="Device enrollment.", no_args_is_help=True)
app.add_typer(mdm_app, name="mdm")


@mdm_app.command("enroll-code")
@_domain_errors
def mdm_enroll_code(
    tenant: str = typer.Option(..., help="Tenant subdomain."),
    ttl_hours: int = typer.Option(168, "--ttl-hours", min=1, help="Valid for this long (default 7 days)."),
    blueprint: str | None = typer.Option(None, "--blueprint", help="Blueprint id the enrolled device joins."),
    as_json: bool = typer.Option(False, "--json"),
):
    """Mint a one-time enrollment code: GET /mdm/t/SUB/enroll?code=CODE serves one profile. Shown once."""
    from datetime import timedelta

    from bramley.db.base import utcnow
    from bramley.mdm import enroll

    settings = get_settings()
    db = _database(settings)
    with db.unit_of_work() as s:
        ctx = _tenant_ctx(s, tenant)
        if blueprint is not None:
            from bramley.blueprints import service as blueprints

            blueprint = blueprints.get_or_raise(s, ctx, blueprint).id
        code = enroll.mint_enroll_code(s, ctx, ttl=timedelta(hours=ttl_hours), blueprint_id=blueprint)
    expires_at = (utcnow() + timedelta(hours=ttl_hours)).isoformat()
    path = f"/mdm/t/{tenant}/enroll?code={code}"
    url = f"{settings.public_url.rstrip('/')}{path}" if settings.public_url else path
    if as_json:
        print(json.dumps({"code": code, "url": url, "expires_at": expires_at}))
    else:
        console.print(f"enrollment code: [bold]{code}[/bold] (one use, until {expires_at})")
        console.print(f"profile: {url}")


@app.command()
@_domain_errors
def simulate(
    url: str = typer.Option(..., help="Server base URL, e.g. http://127.0.0.1:8000."),
    tenant: str = typer.Option(..., help="Tenant subdomain."),
    devices: int = typer.Option(10, "--devices", min=1, max=1_000_000),
    platform: str = typer.Option("mixed", "--platform", help="mac, iphone, ipad, tv or mixed."),
    enroll_code: list[str] = typer.Option([], "--enroll-code", help="One-time enrollment code; repeat, one a device."),
    mint_codes: bool = typer.Option(False, "--mint-codes",
                                    help="Mint the codes still missing in the local database (needs its access)."),
    concurrency: int = typer.Option(20, min=1, help="Enrollments and check-ins in flight at once."),
    duration: float | None = typer.Option(None, min=0, help="Stop after this many seconds."),
    rounds: int | None = typer.Option(None, min=0, help="Stop after every device woke this many times."),
    poll_interval: float = typer.Option(30.0, "--poll-interval", min=0,
                                        help="Also check in every N seconds (0: on pushes only)."),
    not_now: float = typer.Option(0.05, "--not-now", min=0, max=1, help="Chance a routine command gets NotNow."),
    mock_apns: str | None = typer.Option(None, "--mock-apns", metavar="HOST:PORT",
                                         help="Run a mock APNs here and wake devices by its pushes "
                                              "(start the server with BRAMLEY_APNS_URL=http://HOST:PORT)."),
    supervised: bool | None = typer.Option(None, "--supervised/--unsupervised", help="Default: a realistic mix."),
    seed: int | None = typer.Option(None, help="Random seed (same seed, same fleet)."),
    key_pool: int = typer.Option(0, "--key-pool", min=0, help="Load runs: share N RSA keys (0: one a device)."),
    ca_file: Path | None = typer.Option(None, "--ca-file", exists=True, dir_okay=False, help="CA bundle for https."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
):
    """Enroll N simulated Apple devices through the real endpoints (SCEP included) and keep them checking in."""
    import asyncio

    from bramley.simulator import swarm
    from bramley.simulator.agent import Options
    from bramley.simulator.device import platform_name

    if platform.lower() != "mixed":
        try:
            platform_name(platform)
        except ValueError as exc:
            _fail(str(exc))
    if poll_interval == 0 and not mock_apns:
        _fail("--poll-interval 0 needs --mock-apns: nothing would wake the devices")
    codes = [c for value in enroll_code for c in value.split(",") if c.strip()]
    if mint_codes and len(codes) < devices:
        from bramley.mdm import enroll

        with _database().unit_of_work() as s:
            ctx = _tenant_ctx(s, tenant)
            codes += [enroll.mint_enroll_code(s, ctx) for _ in range(devices - len(codes))]
    config = swarm.SwarmConfig(url=url, tenant=tenant, devices=devices, platform=platform, codes=codes,
                               concurrency=concurrency, seed=seed, supervised=supervised, duration=duration,
                               rounds=rounds, key_pool=key_pool, device=Options(not_now_probability=not_now,
                                                             poll_interval=poll_interval or None))
    try:
        summary = asyncio.run(swarm.simulate(config, mock_apns=mock_apns, console=err, progress=not as_json,
                                             verify=str(ca_file) if ca_file else True, announce=err.print))
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    if as_json:
        print(json.dumps(summary))
    else:
        table = Table("", "")
        for key, value in summary.items():
            table.add_row(key, json.dumps(value) if isinstance(value, (dict, list)) else str(value))
        console.print(table)
    if summary["failed"] or not summary["enrolled"]:
        raise typer.Exit(1)


def _register_domains() -> None:
    from bramley.connector.cli import register as register_connector
    from bramley.scim.cli import register as register_scim
    from bramley.trust.cli import register as register_trust

    for register in (register_scim, register_connector, register_trust):
        register(app)


_register_domains()


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
