"""`bramley connect …`: the connector's cards from the command line, against Bramley or any Iru tenant.

    bramley connect --url acme.api.kandji.io --token-file ~/.iru-token devices list --platform Mac
    BRAMLEY_URL=http://127.0.0.1:8080 BRAMLEY_TOKEN=… bramley connect device lock DEVICE_ID
    bramley connect --profile prod custom GET /devices --query limit=5 --json

Human tables by default (card field names); `--json` for scripts (snake-case field names; a stream prints one
JSON object per line). Errors go to stderr (and, with --json, as {"error": …} on stdout) with exit code 1.
Self-contained: imports only the connector package, never the server.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from functools import wraps
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from bramley.connector.cards import Connector
from bramley.connector.catalog import CARDS, RESULT_SETS
from bramley.connector.client import Connection
from bramley.connector.domains import base_url_for, is_plain_http_to_remote
from bramley.connector.errors import PERMISSIONS, ApiError, ConnectorError, InvalidInput, permission_for
from bramley.connector.output import DEVICE_COLUMNS, cell, device_row, dig, err, out, print_json, run_stream, show
from bramley.connector.output import row as cells
from bramley.connector.output import show_devices, show_records
from bramley.connector.paging import Stream
from bramley.connector.profiles import Profile, ProfileFile, read_token_file

# No pretty tracebacks: they print local variables, and a token is one.
connect_app = typer.Typer(help="The Okta Workflows Kandji cards, against Bramley or any Iru tenant.",
                          no_args_is_help=True, pretty_exceptions_enable=False)
devices_app = typer.Typer(help="List Devices (three result sets, 13 filters).", no_args_is_help=True)
device_app = typer.Typer(help="One device: Get/Update Device and the MDM command cards.", no_args_is_help=True)
lost_app = typer.Typer(help="Lost Mode cards (supervised iPhone and iPad).", no_args_is_help=True)
notes_app = typer.Typer(help="Device notes.", no_args_is_help=True)
secrets_app = typer.Typer(help="Device secrets (values are printed: that is what they are asked for).",
                          no_args_is_help=True)
blueprints_app = typer.Typer(help="Blueprint cards.", no_args_is_help=True)
ade_app = typer.Typer(help="Automated Device Enrollment cards.", no_args_is_help=True)
recipe_app = typer.Typer(help="Lifecycle recipes built from the cards (--dry-run shows what would happen).",
                         no_args_is_help=True)
profile_app = typer.Typer(help="Saved connections (a profile file; tokens never printed).", no_args_is_help=True)
connect_app.add_typer(devices_app, name="devices")
connect_app.add_typer(device_app, name="device")
device_app.add_typer(lost_app, name="lost-mode")
device_app.add_typer(notes_app, name="notes")
device_app.add_typer(secrets_app, name="secrets")
connect_app.add_typer(blueprints_app, name="blueprints")
connect_app.add_typer(ade_app, name="ade")
connect_app.add_typer(recipe_app, name="recipe")
connect_app.add_typer(profile_app, name="profile")

JSON_OPT = typer.Option(False, "--json", help="Print JSON (snake-case names) instead of a table.")


def register(app: typer.Typer) -> None:
    """Add this domain's command groups to the main `bramley` app."""
    app.add_typer(connect_app, name="connect")


def main() -> None:  # `python -m bramley.connector`
    connect_app(prog_name="bramley connect")


# --- the connection ------------------------------------------------------------------------------------------------

@dataclass
class Options:
    url: str | None
    token: str | None
    token_file: str | None
    profile: str | None
    profiles_file: Path | None
    region: str | None
    ca_file: str | None
    timeout: float
    retries: int
    _connector: Connector | None = None

    def profiles(self) -> ProfileFile:
        return ProfileFile(self.profiles_file)

    def resolve(self) -> tuple[str, str, str | None, str | None]:
        """(url, token, region, ca_file): options, then --profile, then BRAMLEY_URL/BRAMLEY_TOKEN, then the default
        profile."""
        env = os.environ
        profile: Profile | None = None
        url = self.url
        if self.profile:
            profile = self.profiles().get(self.profile)
        elif not url and env.get("BRAMLEY_URL"):
            url = env["BRAMLEY_URL"]
        elif not url:
            profile = self.profiles().get(None)
        if profile is not None and not url:
            url = profile.url
        if not url:
            raise InvalidInput("Connection", "no connection: give --url and --token, --profile NAME, or set "
                                             "BRAMLEY_URL and BRAMLEY_TOKEN")
        token = self.token
        if not token and self.token_file:
            token = read_token_file(self.token_file)
        if not token and profile is not None:
            token = profile.read_token()
        if not token and env.get("BRAMLEY_TOKEN"):
            token = env["BRAMLEY_TOKEN"]
        if not token and env.get("BRAMLEY_TOKEN_FILE"):
            token = read_token_file(env["BRAMLEY_TOKEN_FILE"], where="BRAMLEY_TOKEN_FILE")
        region = self.region or (profile.region if profile else None)
        ca_file = self.ca_file or (profile.ca_file if profile else None)
        return url, token or "", region, ca_file

    def connector(self, *, validate: bool = False) -> Connector:
        if self._connector is None:
            url, token, region, ca_file = self.resolve()
            base_url = base_url_for(url, region)
            if is_plain_http_to_remote(base_url):
                err.print(f"[yellow]warning:[/yellow] the token goes to {base_url} over plain HTTP")
            connection = Connection(url, token, region=region, verify=ca_file or True, timeout=self.timeout,
                                    max_retries=self.retries, validate=validate)
            self._connector = Connector(connection)
        return self._connector


@connect_app.callback()
def connect_main(
    ctx: typer.Context,
    url: str | None = typer.Option(None, "--url", help="Domain (acme.api.kandji.io, acme.api.eu.kandji.io, "
                                   "acme.api.iru.com) or base URL (http://127.0.0.1:8080). Env: BRAMLEY_URL."),
    token: str | None = typer.Option(None, "--token", help="API token (prefer --token-file or BRAMLEY_TOKEN: "
                                     "options show in the process list).", show_default=False),
    token_file: str | None = typer.Option(None, "--token-file", help="Read the token from this file ('-': stdin). "
                                          "Env: BRAMLEY_TOKEN_FILE."),
    profile: str | None = typer.Option(None, "--profile", help="A saved connection (bramley connect profile).",
                                       envvar="BRAMLEY_PROFILE"),
    profiles_file: Path | None = typer.Option(None, "--profiles-file", envvar="BRAMLEY_CONNECT_PROFILES",
                                              help="The profile file (default ~/.config/bramley/connections.toml)."),
    region: str | None = typer.Option(None, "--region", help="us or eu, for a bare subdomain (acme)."),
    ca_file: str | None = typer.Option(None, "--ca-file", help="CA bundle to trust (a self-signed Bramley)."),
    timeout: float = typer.Option(30.0, "--timeout", min=0.1, help="Seconds per request."),
    retries: int = typer.Option(3, "--retries", min=0, max=10, help="Retries of a 429, or of a 5xx/timeout on "
                                "idempotent calls."),
):
    ctx.obj = Options(url, token, token_file, profile, profiles_file, region, ca_file, timeout, retries)
    ctx.call_on_close(lambda: ctx.obj._connector and ctx.obj._connector.close())


def _opts(ctx: typer.Context) -> Options:
    return ctx.find_object(Options)


def _kandji(ctx: typer.Context) -> Connector:
    return _opts(ctx).connector()


# --- output ------------------------------------------------------------------------------------------------------

def _fail(message: str, as_json: bool, data: dict | None = None, code: int = 1):
    err.print(f"[red]error:[/red] {message}", markup=True, highlight=False)
    if as_json:
        print(json.dumps({"error": data or {"message": message}}, default=str))
    raise typer.Exit(code)


def cli_errors(fn):
    """A ConnectorError becomes an error line (card, device, status; permission on 403) and exit code 1."""
    @wraps(fn)
    def wrapper(*args, **kwargs):
        as_json = bool(kwargs.get("as_json"))
        try:
            return fn(*args, **kwargs)
        except ApiError as exc:
            _fail(escape(str(exc)), as_json, exc.as_dict())
        except ConnectorError as exc:
            _fail(escape(str(exc)), as_json, {"message": str(exc)})
    return wrapper


# --- general -------------------------------------------------------------------------------------------------------

@connect_app.command("check")
@cli_errors
def check(ctx: typer.Context, as_json: bool = JSON_OPT):
    """Validate the connection: domain and token, with one cheap call (Devices › Device list)."""
    connection = _opts(ctx).connector(validate=True).connection
    result = {"base_url": connection.base_url, "tenant": connection.tenant, "token": "valid",
              "can_list_devices": True}
    show(result, as_json, title="Connection")


@connect_app.command("cards")
def cards(as_json: bool = JSON_OPT):
    """Every card, its command here and the permissions its token needs."""
    rows = [{"card": c.name, "command": f"bramley connect {c.command}",
             "permissions": [str(PERMISSIONS[r]) for r in c.routes]} for c in CARDS]
    if as_json:
        print_json(rows)
        return
    table = Table("Card", "Command", "Permissions")
    for row in rows:
        table.add_row(*cells(row["card"], row["command"], "\n".join(row["permissions"]) or "(the route called)"))
    out.print(table)


# --- List Devices ----------------------------------------------------------------------------------------------------

@devices_app.command("list")
@cli_errors
def devices_list(
    ctx: typer.Context,
    result_set: str = typer.Option("first-200", "--result-set", help="first | first-200 | stream"),
    user_email: str | None = typer.Option(None, help="User Email: contains this text."),
    user_email_exact: str | None = typer.Option(None, help="User Email - Exact."),
    user_name: str | None = typer.Option(None, help="User Name."),
    user_id: str | None = typer.Option(None, "--user-id", help="Kandji User ID."),
    device_id: str | None = typer.Option(None, help="Device ID."),
    device_name: str | None = typer.Option(None, help="Device Name."),
    serial_number: str | None = typer.Option(None, help="Serial Number."),
    mac_address: str | None = typer.Option(None, help="MAC Address."),
    asset_tag: str | None = typer.Option(None, help="Asset Tag."),
    platform: str | None = typer.Option(None, help="Platform: Mac, iPhone, iPad, AppleTV."),
    model: str | None = typer.Option(None, help="Model."),
    os_version: str | None = typer.Option(None, help="OS Version."),
    blueprint_id: str | None = typer.Option(None, help="Blueprint ID."),
    progress: bool | None = typer.Option(None, "--progress/--no-progress", help="Progress bar while streaming "
                                         "(default: when stderr is a terminal)."),
    as_json: bool = JSON_OPT,
):
    """List Devices: First Matching Record, First 200 Matching Records, or Stream Matching Records."""
    if result_set not in RESULT_SETS:
        raise InvalidInput("List Devices", f"--result-set must be one of {', '.join(RESULT_SETS)}")
    filters = dict(user_email=user_email, user_email_exact=user_email_exact, user_name=user_name,
                   kandji_user_id=user_id, device_id=device_id, device_name=device_name, serial_number=serial_number,
                   mac_address=mac_address, asset_tag=asset_tag, platform=platform, model=model, os_version=os_version,
                   blueprint_id=blueprint_id)
    result = _kandji(ctx).list_devices(result_set, **filters)
    if result_set == "first":
        show(result, as_json, title="First Matching Record")
    elif result_set == "first-200":
        show_devices(result, as_json)
    else:
        run_stream(result, as_json, progress, "devices", device_row, DEVICE_COLUMNS)


# --- one device ----------------------------------------------------------------------------------------------------

DEVICE_ARG = typer.Argument(..., metavar="DEVICE_ID", help="Kandji-specific device ID.")


@device_app.command("get")
@cli_errors
def device_get(ctx: typer.Context, device_id: str = DEVICE_ARG,
               details: str = typer.Option("basic", "--details", help="basic | full"), as_json: bool = JSON_OPT):
    """Get Device (Basic or Full details)."""
    show(_kandji(ctx).get_device(device_id, details), as_json, title="Device")


@device_app.command("update")
@cli_errors
def device_update(ctx: typer.Context, device_id: str = DEVICE_ARG,
                  blueprint_id: str | None = typer.Option(None, help="Blueprint ID to assign."),
                  user_id: str | None = typer.Option(None, "--user-id", help="Kandji User ID to assign."),
                  asset_tag: str | None = typer.Option(None, help="Asset tag."), as_json: bool = JSON_OPT):
    """Update Device: Blueprint, user and/or asset tag."""
    show(_kandji(ctx).update_device(device_id, blueprint_id=blueprint_id, kandji_user_id=_number(user_id),
                                    asset_tag=asset_tag), as_json, title="Update Device")


def _number(value: str | None):
    """The card types Kandji User ID as a Number: digits go as an int (the legacy id), anything else as text."""
    return int(value) if value and value.isdigit() else value


@device_app.command("lock")
@cli_errors
def device_lock(ctx: typer.Context, device_id: str = DEVICE_ARG,
                message: str | None = typer.Option(None, help="Lock screen message."),
                phone_number: str | None = typer.Option(None, help="Lock screen phone number."),
                as_json: bool = JSON_OPT):
    """Lock Device (a Mac returns its 6-digit PIN)."""
    show(_kandji(ctx).lock_device(device_id, message=message, phone_number=phone_number), as_json, "Lock Device")


@device_app.command("erase")
@cli_errors
def device_erase(ctx: typer.Context, device_id: str = DEVICE_ARG,
                 pin: str | None = typer.Option(None, help="Mac: the 6-digit unlock PIN for after the erase."),
                 preserve_data_plan: bool | None = typer.Option(None, "--preserve-data-plan/--no-preserve-data-plan",
                                                                help="iPhone/iPad: keep the cellular plan."),
                 disallow_proximity_setup: bool | None = typer.Option(
                     None, "--disallow-proximity-setup/--allow-proximity-setup", help="iPhone/iPad."),
                 yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
                 as_json: bool = JSON_OPT):
    """Erase Device. Irreversible: asks for confirmation unless --yes."""
    if not yes:
        if not sys.stdin.isatty():
            raise InvalidInput("Erase Device", "erasing needs --yes when not run interactively")
        typer.confirm(f"Erase device {device_id}? Everything on it is lost", abort=True)
    show(_kandji(ctx).erase_device(device_id, pin=pin, preserve_data_plan=preserve_data_plan,
                                   disallow_proximity_setup=disallow_proximity_setup), as_json, "Erase Device")


def _simple(name: str, method: str, doc: str) -> None:
    @device_app.command(name, help=doc)
    @cli_errors
    def command(ctx: typer.Context, device_id: str = DEVICE_ARG, as_json: bool = JSON_OPT):
        show(getattr(_kandji(ctx), method)(device_id), as_json, title=doc.split(":")[0].rstrip("."))
    command.__name__ = f"device_{method}"


for _name, _method, _doc in [
    ("clear-passcode", "clear_passcode", "Clear Passcode: iPhone and iPad only (others answer 400)."),
    ("shutdown", "shutdown_device", "Shutdown Device."),
    ("blank-push", "send_mdm_blank_push", "Send MDM Blank Push."),
    ("update-inventory", "update_inventory", "Update Inventory."),
    ("reinstall-agent", "reinstall_kandji_agent", "Reinstall Kandji Agent: Mac only."),
    ("apps", "list_device_apps", "List Device Apps."),
    ("library-items", "list_device_library_items", "List Device Library Items."),
]:
    _simple(_name, _method, _doc)


@device_app.command("restart")
@cli_errors
def device_restart(ctx: typer.Context, device_id: str = DEVICE_ARG,
                   notify_user: bool = typer.Option(False, help="Mac: let the user save work first."),
                   rebuild_kernel_cache: bool = typer.Option(False, help="Mac."), as_json: bool = JSON_OPT):
    """Restart Device."""
    show(_kandji(ctx).restart_device(device_id, notify_user=notify_user, rebuild_kernel_cache=rebuild_kernel_cache),
         as_json, "Restart Device")


@device_app.command("set-name")
@cli_errors
def device_set_name(ctx: typer.Context, device_id: str = DEVICE_ARG,
                    device_name: str = typer.Argument(..., help="The new name."), as_json: bool = JSON_OPT):
    """Set Device Name."""
    show(_kandji(ctx).set_device_name(device_id, device_name), as_json, "Set Device Name")


@device_app.command("unlock-account")
@cli_errors
def device_unlock_account(ctx: typer.Context, device_id: str = DEVICE_ARG,
                          username: str = typer.Argument(..., help="Local account's short name."),
                          as_json: bool = JSON_OPT):
    """Unlock (Local) User Account: Mac only."""
    show(_kandji(ctx).unlock_user_account(device_id, username), as_json, "Unlock (Local) User Account")


@device_app.command("remote-desktop")
@cli_errors
def device_remote_desktop(ctx: typer.Context, device_id: str = DEVICE_ARG,
                          state: str = typer.Argument(..., metavar="on|off"), as_json: bool = JSON_OPT):
    """Manage Apple Remote Desktop: on (Observe and Control for all users) or off. Mac only."""
    show(_kandji(ctx).manage_apple_remote_desktop(device_id, state), as_json, "Manage Apple Remote Desktop")


@lost_app.command("on")
@cli_errors
def lost_on(ctx: typer.Context, device_id: str = DEVICE_ARG,
            message: str | None = typer.Option(None, "--message", help="Lock Message."),
            phone_number: str | None = typer.Option(None, help="Phone Number."),
            footnote: str | None = typer.Option(None, help="Footnote."), as_json: bool = JSON_OPT):
    """Turn On Lost Mode (needs --message or --phone-number)."""
    show(_kandji(ctx).turn_on_lost_mode(device_id, lock_message=message, phone_number=phone_number,
                                        footnote=footnote), as_json, "Turn On Lost Mode")


for _name, _method, _doc in [("off", "turn_off_lost_mode", "Turn Off Lost Mode."),
                             ("sound", "play_lost_mode_sound", "Play Lost Mode Sound."),
                             ("locate", "update_lost_mode_location", "Update Lost Mode Location.")]:
    def _lost(method=_method, doc=_doc, name=_name):
        @lost_app.command(name, help=doc)
        @cli_errors
        def command(ctx: typer.Context, device_id: str = DEVICE_ARG, as_json: bool = JSON_OPT):
            show(getattr(_kandji(ctx), method)(device_id), as_json, title=doc.rstrip("."))
        command.__name__ = f"lost_{name}"
    _lost()


@notes_app.command("list")
@cli_errors
def notes_list(ctx: typer.Context, device_id: str = DEVICE_ARG, as_json: bool = JSON_OPT):
    """List Device Notes."""
    notes = _kandji(ctx).list_device_notes(device_id).notes
    show_records([n.plain() for n in notes], as_json, ["note_id", "created_at", "author", "content"],
                 f"{len(notes)} note(s)")


@notes_app.command("add")
@cli_errors
def notes_add(ctx: typer.Context, device_id: str = DEVICE_ARG, note: str = typer.Argument(..., help="Note text."),
              as_json: bool = JSON_OPT):
    """Create Note."""
    show(_kandji(ctx).create_note(device_id, note), as_json, "Create Note")


for _name, _method, _doc in [
    ("bypass-codes", "get_activation_lock_bypass_codes", "Get Activation Lock Bypass Codes."),
    ("filevault-key", "get_filevault_recovery_key", "Get FileVault Recovery Key."),
    ("unlock-pin", "get_unlock_pin", "Get (Mac) Unlock PIN."),
]:
    def _secret(method=_method, doc=_doc, name=_name):
        @secrets_app.command(name, help=doc)
        @cli_errors
        def command(ctx: typer.Context, device_id: str = DEVICE_ARG, as_json: bool = JSON_OPT):
            show(getattr(_kandji(ctx), method)(device_id), as_json, title=doc.rstrip("."))
        command.__name__ = f"secret_{method}"
    _secret()


# --- blueprints ---------------------------------------------------------------------------------------------------

BLUEPRINT_COLUMNS = ["id", "name", "computers_count", "missing_computers_count", "enrollment_code.code",
                     "enrollment_code.is_active"]


@blueprints_app.command("list")
@cli_errors
def blueprints_list(ctx: typer.Context,
                    result_set: str = typer.Option("first-200", "--result-set", help="first-200 | stream"),
                    progress: bool | None = typer.Option(None, "--progress/--no-progress"), as_json: bool = JSON_OPT):
    """List Blueprints: First 200 Records, or Stream All Records."""
    result = _kandji(ctx).list_blueprints(result_set)
    if isinstance(result, Stream):
        run_stream(result, as_json, progress, "blueprints", lambda b: [cell(dig(b, c)) for c in BLUEPRINT_COLUMNS],
                   [(c, w) for c, w in zip(BLUEPRINT_COLUMNS, (36, 24, 5, 5, 8, 5))])
    else:
        show_records(result.results, as_json, BLUEPRINT_COLUMNS, f"{len(result.results)} Blueprint(s)")


@blueprints_app.command("get")
@cli_errors
def blueprints_get(ctx: typer.Context, blueprint_id: str | None = typer.Option(None, "--id", help="Blueprint ID."),
                   name: str | None = typer.Option(None, "--name", help="Blueprint Name (exact)."),
                   as_json: bool = JSON_OPT):
    """Get Blueprint by ID or by name."""
    show(_kandji(ctx).get_blueprint(blueprint_id, name), as_json, "Blueprint")


@blueprints_app.command("create")
@cli_errors
def blueprints_create(ctx: typer.Context, name: str = typer.Argument(..., help="Unique Blueprint name."),
                      enrollment_code_is_active: bool = typer.Option(
                          ..., "--enrollment-code-active/--enrollment-code-inactive",
                          help="Enrollment Code Is Active (manual enrollment from the portal)."),
                      enrollment_code: str | None = typer.Option(None, help="Enrollment Code (random if absent)."),
                      color: str | None = typer.Option(None), description: str | None = typer.Option(None),
                      icon: str | None = typer.Option(None), as_json: bool = JSON_OPT):
    """Create Blueprint."""
    show(_kandji(ctx).create_blueprint(name, enrollment_code_is_active, enrollment_code=enrollment_code, color=color,
                                       description=description, icon=icon), as_json, "Create Blueprint")


# --- ADE --------------------------------------------------------------------------------------------------------

ADE_COLUMNS = ["id", "server_name", "org_name", "status", "days_left", "device_counts.total"]
ADE_DEVICE_COLUMNS = ["id", "serial_number", "model", "device_family", "profile_status", "mdm_device.id"]


@ade_app.command("integrations")
@cli_errors
def ade_integrations(ctx: typer.Context,
                     result_set: str = typer.Option("first-200", "--result-set", help="first-200 | stream"),
                     progress: bool | None = typer.Option(None, "--progress/--no-progress"), as_json: bool = JSON_OPT):
    """List ADE Integrations."""
    result = _kandji(ctx).list_ade_integrations(result_set)
    if isinstance(result, Stream):
        run_stream(result, as_json, progress, "ADE integrations", lambda r: [cell(dig(r, c)) for c in ADE_COLUMNS],
                   [(c, w) for c, w in zip(ADE_COLUMNS, (36, 24, 24, 8, 5, 6))])
    else:
        show_records(result.results, as_json, ADE_COLUMNS, f"{len(result.results)} integration(s)")


@ade_app.command("integration")
@cli_errors
def ade_integration(ctx: typer.Context, ade_token_id: str = typer.Argument(..., help="ADE Token ID."),
                    as_json: bool = JSON_OPT):
    """Get ADE Integration."""
    show(_kandji(ctx).get_ade_integration(ade_token_id), as_json, "ADE Integration")


@ade_app.command("devices")
@cli_errors
def ade_devices(ctx: typer.Context, ade_token_id: str = typer.Argument(..., help="ADE Token ID."),
                result_set: str = typer.Option("first-300", "--result-set", help="first-300 | stream"),
                progress: bool | None = typer.Option(None, "--progress/--no-progress"), as_json: bool = JSON_OPT):
    """List ADE Devices (mdm_device empty: awaiting enrollment)."""
    result = _kandji(ctx).list_ade_devices(ade_token_id, result_set)
    if isinstance(result, Stream):
        run_stream(result, as_json, progress, "ADE devices",
                   lambda r: [cell(dig(r, c)) for c in ADE_DEVICE_COLUMNS],
                   [(c, w) for c, w in zip(ADE_DEVICE_COLUMNS, (36, 14, 16, 8, 10, 36))])
    else:
        show_records(result.results, as_json, ADE_DEVICE_COLUMNS, f"{len(result.results)} ADE device(s)")


# --- Custom API Action ------------------------------------------------------------------------------------------------

def _pairs(values: list[str], what: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise InvalidInput("Custom API Action", f"{what} {value!r} must look like key=value")
        pairs[key] = val
    return pairs


@connect_app.command("custom")
@cli_errors
def custom(ctx: typer.Context,
           request_type: str = typer.Argument(..., metavar="METHOD", help="GET, POST, PUT, PATCH or DELETE."),
           relative_url: str = typer.Argument(..., help="The path after /v1, e.g. /devices (a query is allowed)."),
           query: list[str] = typer.Option([], "--query", "-q", help="key=value; repeat."),
           header: list[str] = typer.Option([], "--header", "-H", help="key=value; repeat (not Authorization)."),
           body: str | None = typer.Option(None, "--body", help="JSON body, or @file."),
           as_json: bool = JSON_OPT):
    """Custom API Action: prints Status Code, Headers and Body. Exit code 1 when the status is 400 or above."""
    payload = None
    if body is not None:
        text = Path(body[1:]).read_text() if body.startswith("@") else body
        try:
            payload = json.loads(text)
        except ValueError as exc:
            raise InvalidInput("Custom API Action", f"--body is not JSON: {exc}") from None
    result = _kandji(ctx).custom_api_action(request_type, relative_url, query=_pairs(query, "--query") or None,
                                            headers=_pairs(header, "--header") or None, body=payload)
    if as_json:
        print_json(result.plain())
    else:
        out.print(f"Status Code: {result.status_code}", highlight=False)
        if result.body is not None:
            out.print_json(json.dumps(result.body, default=str))
    if result.status_code >= 400:
        if result.status_code == 403:
            err.print(f"[red]error:[/red] 403: the token lacks the permission "
                      f"{escape(str(permission_for(request_type, relative_url)))}")
        raise typer.Exit(1)


# --- recipes ---------------------------------------------------------------------------------------------------------

def _report(report, as_json: bool) -> None:
    if as_json:
        print_json(report.as_dict())
    else:
        verb = "would do" if report.dry_run else "did"
        table = Table("Device", "Platform", "Card", "What", "Outcome", "PIN",
                      title=f"{report.recipe} {report.subject}: {report.devices} device(s), {verb}")
        for s in report.steps:
            outcome = s.outcome if not s.error else f"{s.outcome}: {s.error}"
            table.add_row(*cells(f"{s.device_name or ''}\n{s.device_id}", s.platform or "", s.card or "-", s.detail,
                                 outcome, s.pin or ""))
        out.print(table)
    if not report.ok:
        raise typer.Exit(1)


@recipe_app.command("offboard-user")
@cli_errors
def recipe_offboard(ctx: typer.Context, email: str = typer.Argument(..., help="The user's exact email."),
                    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would happen; change nothing."),
                    message: str = typer.Option("This device has been locked by IT. Please contact IT.",
                                                "--message", help="Lock screen / Lost Mode message."),
                    phone_number: str | None = typer.Option(None, help="Phone number for the lock screen."),
                    note: str | None = typer.Option(None, help="Note text (default: what was done)."),
                    as_json: bool = JSON_OPT):
    """Offboard a user: lock their Macs (PINs returned), Lost Mode on supervised iPhones/iPads, a note on each."""
    from bramley.connector.recipes import offboard_user

    _report(offboard_user(_kandji(ctx), email, dry_run=dry_run, lock_message=message, phone_number=phone_number,
                          note=note), as_json)


@recipe_app.command("reassign-device")
@cli_errors
def recipe_reassign(ctx: typer.Context, device_id: str = DEVICE_ARG,
                    user_id: str | None = typer.Option(None, "--user-id", help="Kandji User ID of the new user."),
                    user_email: str | None = typer.Option(None, help="The new user's email (looked up)."),
                    blueprint_id: str | None = typer.Option(None, help="Blueprint ID."),
                    blueprint_name: str | None = typer.Option(None, help="Blueprint name (exact)."),
                    asset_tag: str | None = typer.Option(None, help="New asset tag."),
                    note: str | None = typer.Option(None, help="Note text (default: what changed)."),
                    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would happen; change nothing."),
                    as_json: bool = JSON_OPT):
    """Reassign a device: new user, Blueprint and/or asset tag, and a note saying so."""
    from bramley.connector.recipes import reassign_device

    _report(reassign_device(_kandji(ctx), device_id, kandji_user_id=_number(user_id), user_email=user_email,
                            blueprint_id=blueprint_id, blueprint_name=blueprint_name, asset_tag=asset_tag, note=note,
                            dry_run=dry_run), as_json)


# --- profiles -------------------------------------------------------------------------------------------------------

@profile_app.command("add")
@cli_errors
def profile_add(ctx: typer.Context, name: str = typer.Argument(..., help="Profile name."),
                url: str = typer.Option(..., "--url", help="Domain or base URL."),
                token_file: str | None = typer.Option(None, "--token-file", help="Read the token from this file "
                                                      "each time (the file's path is saved, not the token)."),
                token_env: str | None = typer.Option(None, "--token-env", help="Read the token from this "
                                                     "environment variable each time."),
                token_stdin: bool = typer.Option(False, "--token-stdin", help="Read the token from stdin and keep "
                                                 "it in the profile file (mode 0600)."),
                region: str | None = typer.Option(None, help="us or eu, for a bare subdomain."),
                ca_file: str | None = typer.Option(None, "--ca-file", help="CA bundle to trust."),
                default: bool = typer.Option(False, "--default", help="Make it the default profile."),
                check_connection: bool = typer.Option(True, "--check/--no-check",
                                                      help="Validate domain and token now (one cheap call)."),
                as_json: bool = JSON_OPT):
    """Save a connection. The token is validated now, then read from its source whenever the profile is used."""
    sources = [bool(token_file), bool(token_env), token_stdin]
    if sum(sources) != 1:
        raise InvalidInput("Connection", "give exactly one of --token-file, --token-env or --token-stdin")
    inline = sys.stdin.readline().strip() if token_stdin else None
    profile = Profile(name=name, url=url, token=inline, token_file=str(Path(token_file).expanduser().resolve())
                      if token_file else None, token_env=token_env, region=region, ca_file=ca_file)
    if check_connection:
        with Connection(url, profile.read_token() or "", region=region, verify=ca_file or True,
                        timeout=_opts(ctx).timeout, max_retries=_opts(ctx).retries) as connection:
            base_url = connection.base_url
    else:
        base_url = base_url_for(url, region)
    store = _opts(ctx).profiles()
    store.save(profile, make_default=default)
    show({"profile": name, "base_url": base_url, "token": profile.token_source, "checked": check_connection,
          "file": str(store.path)}, as_json, title="Profile saved")


@profile_app.command("list")
@cli_errors
def profile_list(ctx: typer.Context, as_json: bool = JSON_OPT):
    """Saved connections (never their tokens)."""
    store = _opts(ctx).profiles()
    profiles, default = store.all()
    rows = [{"name": p.name, "url": p.url, "token": p.token_source, "default": p.name == default} for p in profiles]
    show_records(rows, as_json, ["name", "url", "token", "default"], str(store.path))


@profile_app.command("remove")
@cli_errors
def profile_remove(ctx: typer.Context, name: str = typer.Argument(...)):
    """Forget a saved connection."""
    _opts(ctx).profiles().remove(name)
    err.print(f"removed profile {name}")


@profile_app.command("default")
@cli_errors
def profile_default(ctx: typer.Context, name: str = typer.Argument(...)):
    """Use this profile when no --url, --profile or BRAMLEY_URL is given."""
    _opts(ctx).profiles().set_default(name)
    err.print(f"default profile: {name}")
