"""`bramley scim-token ...` (directory integrations and their SCIM tokens) and `bramley blueprint-rules ...`."""
from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

console = Console()
err = Console(stderr=True)

scim_app = typer.Typer(help="SCIM directory integrations and their tokens (a token is shown once).",
                       no_args_is_help=True)
rules_app = typer.Typer(help="Blueprint assignment rules: members of a group get a blueprint, first match wins.",
                        no_args_is_help=True)


def _cli():
    from bramley import cli

    return cli


def _admin_ctx(s, tenant: str):
    ctx = _cli()._tenant_ctx(s, tenant)
    return type(ctx)(ctx.tenant_id, ctx.subdomain, ctx.region, actor_id="cli", actor_type="admin",
                     actor_name="bramley CLI")


def _run(fn):
    """Domain errors as one red line and exit 1, as the rest of the CLI does."""
    return _cli()._domain_errors(fn)


def _scim_url(tenant: str) -> str:
    from bramley.config import get_settings

    public = get_settings().public_url
    return f"{public.rstrip('/')}/api/v1/scim" if public else "https://<your Bramley host>/api/v1/scim"


def _show_token(data: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(data))
        return
    console.print(f"integration: {data['name']} ({data['id']})")
    console.print(f"SCIM base URL: {data['url']}")
    console.print(f"token: [bold]{data['token']}[/bold]")
    console.print("Copy it now into your identity provider: it will not be shown again.")


@scim_app.command("create")
def scim_token_create(tenant: str = typer.Option(..., help="Tenant subdomain."),
                      name: str = typer.Option("SCIM directory", help="Name of the directory integration."),
                      as_json: bool = typer.Option(False, "--json")):
    """Create a directory integration and print its SCIM token (once)."""
    @_run
    def go():
        from bramley.scim import service as scim

        with _cli()._database().unit_of_work() as s:
            issued = scim.create_integration(s, _admin_ctx(s, tenant), name=name)
            data = {"id": issued.integration.id, "name": issued.integration.name, "token": issued.token,
                    "url": _scim_url(tenant)}
        _show_token(data, as_json)
    go()


@scim_app.command("rotate")
def scim_token_rotate(integration_id: str, tenant: str = typer.Option(..., help="Tenant subdomain."),
                      as_json: bool = typer.Option(False, "--json")):
    """Replace an integration's token: the old one stops working at once."""
    @_run
    def go():
        from bramley.scim import service as scim

        with _cli()._database().unit_of_work() as s:
            issued = scim.rotate(s, _admin_ctx(s, tenant), integration_id)
            data = {"id": issued.integration.id, "name": issued.integration.name, "token": issued.token,
                    "url": _scim_url(tenant)}
        _show_token(data, as_json)
    go()


@scim_app.command("list")
def scim_token_list(tenant: str = typer.Option(..., help="Tenant subdomain."),
                    as_json: bool = typer.Option(False, "--json")):
    """A tenant's directory integrations (never their tokens)."""
    from bramley.scim import service as scim

    with _cli()._database().unit_of_work(write=False) as s:
        rows = [integration_dict(r) for r in scim.get_all(s, _cli()._tenant_ctx(s, tenant))]
    if as_json:
        print(json.dumps(rows))
        return
    table = Table("id", "name", "created", "token rotated", "last used")
    for r in rows:
        table.add_row(r["id"], r["name"], r["created_at"], r["rotated_at"] or "", r["last_used_at"] or "never")
    console.print(table)


@scim_app.command("rename")
def scim_token_rename(integration_id: str, name: str = typer.Option(...),
                      tenant: str = typer.Option(..., help="Tenant subdomain.")):
    """Rename a directory integration."""
    @_run
    def go():
        from bramley.scim import service as scim

        with _cli()._database().unit_of_work() as s:
            scim.rename(s, _admin_ctx(s, tenant), integration_id, name=name)
        console.print(f"renamed {integration_id}")
    go()


@scim_app.command("delete")
def scim_token_delete(integration_id: str, tenant: str = typer.Option(..., help="Tenant subdomain.")):
    """Delete a directory integration; its token stops working, the users it provisioned stay."""
    @_run
    def go():
        from bramley.scim import service as scim

        with _cli()._database().unit_of_work() as s:
            scim.delete(s, _admin_ctx(s, tenant), integration_id)
        console.print(f"deleted {integration_id}")
    go()


def integration_dict(row) -> dict:
    iso = lambda d: d.isoformat() if d else None  # noqa: E731
    return {"id": row.id, "name": row.name, "created_at": iso(row.created_at), "rotated_at": iso(row.rotated_at),
            "last_used_at": iso(row.last_used_at)}


# --- blueprint assignment rules ---------------------------------------------------------------------------------

def rule_dict(rule, groups_by_id: dict, blueprints_by_id: dict) -> dict:
    group = groups_by_id.get(rule.group_id)
    bp = blueprints_by_id.get(rule.blueprint_id)
    return {"id": rule.id, "position": rule.position, "group_id": rule.group_id,
            "group_name": group.display_name if group else None, "blueprint_id": rule.blueprint_id,
            "blueprint_name": bp.name if bp else None, "override_manual": rule.override_manual}


def rules_listing(s, ctx) -> list[dict]:
    from bramley.blueprints import rules
    from bramley.blueprints import service as blueprints
    from bramley.users import groups

    rows = rules.list_rules(s, ctx)
    by_group = groups.get_many(s, ctx, [r.group_id for r in rows])
    by_bp = {r.blueprint_id: blueprints.get(s, ctx, r.blueprint_id) for r in rows}
    return [rule_dict(r, by_group, {k: v for k, v in by_bp.items() if v}) for r in rows]


@rules_app.command("list")
def rules_list(tenant: str = typer.Option(..., help="Tenant subdomain."),
               as_json: bool = typer.Option(False, "--json")):
    """The tenant's rules, in the order they are tried."""
    with _cli()._database().unit_of_work(write=False) as s:
        data = rules_listing(s, _cli()._tenant_ctx(s, tenant))
    if as_json:
        print(json.dumps(data))
        return
    table = Table("#", "group", "blueprint", "overrides manual", "id")
    for r in data:
        table.add_row(str(r["position"]), r["group_name"] or r["group_id"], r["blueprint_name"] or r["blueprint_id"],
                      "yes" if r["override_manual"] else "", r["id"])
    console.print(table)


def _resolve(s, ctx, group: str, blueprint: str) -> tuple[str, str]:
    """Ids, or names (a group's displayName, a blueprint's name)."""
    from sqlalchemy import select

    from bramley.blueprints import service as blueprints
    from bramley.users import groups
    from bramley.users.models import DirectoryGroup
    from bramley.users.service import user_name_key

    g = groups.get(s, ctx, group)
    if g is None:
        g = s.scalar(select(DirectoryGroup).where(DirectoryGroup.tenant_id == ctx.tenant_id,
                                                  DirectoryGroup.display_name_key == user_name_key(group)))
    bp = blueprints.get(s, ctx, blueprint) or blueprints.get_by_name(s, ctx, blueprint)
    if g is None:
        _cli()._fail(f"no group {group!r}")
    if bp is None:
        _cli()._fail(f"no blueprint {blueprint!r}")
    return g.id, bp.id


@rules_app.command("add")
def rules_add(tenant: str = typer.Option(..., help="Tenant subdomain."),
              group: str = typer.Option(..., help="Group id or display name."),
              blueprint: str = typer.Option(..., help="Blueprint id or name."),
              position: int | None = typer.Option(None, min=1, help="1 = tried first (default: last)."),
              override_manual: bool = typer.Option(False, "--override-manual",
                                                   help="Also move devices whose blueprint was set by hand."),
              as_json: bool = typer.Option(False, "--json")):
    """Add a rule: members of GROUP get BLUEPRINT."""
    @_run
    def go():
        from bramley.blueprints import rules

        with _cli()._database().unit_of_work() as s:
            ctx = _admin_ctx(s, tenant)
            group_id, blueprint_id = _resolve(s, ctx, group, blueprint)
            rule = rules.create(s, ctx, group_id=group_id, blueprint_id=blueprint_id, position=position,
                                override_manual=override_manual)
            data = next(r for r in rules_listing(s, ctx) if r["id"] == rule.id)
        print(json.dumps(data)) if as_json else console.print(f"rule {data['id']} at position {data['position']}")
    go()


@rules_app.command("move")
def rules_move(rule_id: str, position: int = typer.Option(..., min=1), tenant: str = typer.Option(...)):
    """Change where a rule is tried."""
    @_run
    def go():
        from bramley.blueprints import rules

        with _cli()._database().unit_of_work() as s:
            rules.update(s, _admin_ctx(s, tenant), rule_id, {"position": position})
        console.print(f"rule {rule_id} moved to position {position}")
    go()


@rules_app.command("delete")
def rules_delete(rule_id: str, tenant: str = typer.Option(...)):
    """Delete a rule (devices keep the blueprint it gave them)."""
    @_run
    def go():
        from bramley.blueprints import rules

        with _cli()._database().unit_of_work() as s:
            rules.delete(s, _admin_ctx(s, tenant), rule_id)
        console.print(f"deleted rule {rule_id}")
    go()


@rules_app.command("apply")
def rules_apply(tenant: str = typer.Option(...)):
    """Re-evaluate every device with a user now (each move is audited with its rule)."""
    @_run
    def go():
        from bramley.blueprints import rules

        with _cli()._database().unit_of_work() as s:
            moved = rules.apply_all(s, _admin_ctx(s, tenant))
        console.print(f"{moved} devices moved")
    go()


def register(app: typer.Typer) -> None:
    """Add this domain's command groups to the main `bramley` app."""
    app.add_typer(scim_app, name="scim-token")
    app.add_typer(rules_app, name="blueprint-rules")

