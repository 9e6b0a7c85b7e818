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
    db.engine.dispose()


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
    db.engine.dispose()
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
):
    """Run the server (migrations are applied first). GET /healthz answers 200 when ready."""
    import uvicorn

    from bramley.db.migrate import upgrade

    settings = get_settings()
    if bool(tls_cert) != bool(tls_key):
        _fail("--tls-cert and --tls-key go together")
    upgrade(settings)
    if demo:
        _ensure_demo(settings)
    # Workers are separate processes: they rebuild the app from the same environment.
    os.environ.setdefault("BRAMLEY_DATA_DIR", str(settings.data_dir))
    uvicorn.run("bramley.app:create_app", factory=True, host=host, port=port, workers=workers,
                ssl_certfile=str(tls_cert) if tls_cert else None, ssl_keyfile=str(tls_key) if tls_key else None,
                log_level="warning", access_log=False)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
