"""Lifecycle recipes built only from the cards, as an Okta flow would chain them.

- offboard_user: find the user's devices by exact email (List Devices), lock each Mac and keep its PIN (Lock
  Device), put each supervised iPhone and iPad in Lost Mode (Get Device full details → Turn On Lost Mode), and
  add a note to each device saying what was done (Create Note).
- reassign_device: update a device's user, Blueprint and asset tag (Update Device) and note the change (Create
  Note). A user may be given by email (Custom API Action on /users) and a Blueprint by name (Get Blueprint).

With dry_run the reads still happen (to know what would be done) and every write is only planned. One failing
device does not stop the others; the report says what happened to each.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

from bramley.connector.cards import Connector
from bramley.connector.paging import next_page_query
from bramley.connector.errors import ConnectorError, InvalidInput, NotFound, error_for

LOST_MODE_PLATFORMS = ("iPhone", "iPad")


@dataclass
class Step:
    device_id: str
    device_name: str | None
    platform: str | None
    card: str | None  # the card that does (or would do) it; None when skipped
    detail: str
    outcome: str  # planned | done | failed | skipped
    pin: str | None = None
    error: str | None = None


@dataclass
class Report:
    recipe: str
    subject: str
    dry_run: bool
    steps: list[Step] = field(default_factory=list)
    devices: int = 0

    @property
    def ok(self) -> bool:
        return all(s.outcome != "failed" for s in self.steps)

    def as_dict(self) -> dict:
        return {"recipe": self.recipe, "subject": self.subject, "dry_run": self.dry_run, "devices": self.devices,
                "ok": self.ok, "steps": [asdict(s) for s in self.steps]}


def _today() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d")


def offboard_user(kandji: Connector, email: str, *, dry_run: bool = False,
                  lock_message: str = "This device has been locked by IT. Please contact IT.",
                  phone_number: str | None = None, note: str | None = None) -> Report:
    email = (email or "").strip()
    if not email:
        raise InvalidInput("Offboard user", "the user's email is required")
    report = Report("offboard-user", email, dry_run)
    for device in kandji.list_devices("stream", user_email_exact=email):
        report.devices += 1
        base = dict(device_id=device.device_id, device_name=device.device_name, platform=device.platform)
        done: list[str] = []

        def step(card: str | None, detail: str, run=None, **extra) -> Step:
            s = Step(**base, card=card, detail=detail, outcome="planned" if card else "skipped", **extra)
            report.steps.append(s)
            if card and not dry_run and run is not None:
                try:
                    run(s)
                    s.outcome = "done"
                except ConnectorError as exc:
                    s.outcome, s.error = "failed", str(exc)
            if s.outcome in ("done", "planned") and card:
                done.append(detail)
            return s

        if device.is_removed or device.mdm_enabled is False:
            step(None, "not managed any more: no MDM command can reach it")
        elif device.platform == "Mac":
            def lock(s: Step) -> None:
                s.pin = kandji.lock_device(device.device_id, message=lock_message, phone_number=phone_number).pin
            step("Lock Device", "lock the Mac (its unlock PIN is returned)", lock)
        elif device.platform in LOST_MODE_PLATFORMS:
            try:
                details = kandji.get_device(device.device_id, "full")
                supervised = bool(details.mdm and details.mdm.supervised)
            except ConnectorError as exc:
                report.steps.append(Step(**base, card="Get Device", detail="read supervision", outcome="failed",
                                         error=str(exc)))
                supervised = None
            if supervised:
                step("Turn On Lost Mode", "turn on Lost Mode",
                     lambda s: kandji.turn_on_lost_mode(device.device_id, lock_message=lock_message,
                                                        phone_number=phone_number))
            elif supervised is False:
                step(None, "not supervised: Lost Mode needs a supervised iPhone or iPad")
        else:
            step(None, f"no lock or Lost Mode for {device.platform or 'this device'}")
        text = note or f"Offboarded {email} on {_today()}" + (f": {'; '.join(done)}." if done else ".")
        step("Create Note", f"note: {text}", lambda s: kandji.create_note(device.device_id, text))
    return report


def reassign_device(kandji: Connector, device_id: str, *, kandji_user_id: str | int | None = None,
                    user_email: str | None = None, blueprint_id: str | None = None,
                    blueprint_name: str | None = None, asset_tag: str | None = None, note: str | None = None,
                    dry_run: bool = False) -> Report:
    recipe = "Reassign device"
    if kandji_user_id is not None and user_email:
        raise InvalidInput(recipe, "give the user by id or by email, not both")
    if blueprint_id and blueprint_name:
        raise InvalidInput(recipe, "give the Blueprint by id or by name, not both")
    if kandji_user_id is None and not user_email and not blueprint_id and not blueprint_name and asset_tag is None:
        raise InvalidInput(recipe, "give a new user, Blueprint or asset tag")
    device = kandji.get_device(device_id)
    report = Report("reassign-device", device.device_id, dry_run, devices=1)
    base = dict(device_id=device.device_id, device_name=device.device_name, platform=device.platform)
    changes: list[str] = []
    user_label = None
    if user_email:
        kandji_user_id, user_label = _user_by_email(kandji, user_email)
    if kandji_user_id is not None:
        before = device.user.email or device.user.name if device.user else "nobody"
        changes.append(f"user {before} → {user_label or kandji_user_id}")
    if blueprint_name:
        blueprint_id = kandji.get_blueprint(blueprint_name=blueprint_name).id
    if blueprint_id:
        target = blueprint_name or blueprint_id
        changes.append(f"Blueprint {device.blueprint_name or device.blueprint_id or 'none'} → {target}")
    if asset_tag is not None:
        changes.append(f"asset tag {device.asset_tag or 'none'} → {asset_tag or 'none'}")
    update = Step(**base, card="Update Device", detail="; ".join(changes), outcome="planned")
    report.steps.append(update)
    text = note or f"Reassigned on {_today()}: {'; '.join(changes)}."
    note_step = Step(**base, card="Create Note", detail=f"note: {text}", outcome="planned")
    report.steps.append(note_step)
    if dry_run:
        return report
    try:
        kandji.update_device(device.device_id, blueprint_id=blueprint_id, kandji_user_id=kandji_user_id,
                             asset_tag=asset_tag)
        update.outcome = "done"
    except ConnectorError as exc:
        update.outcome, update.error = "failed", str(exc)
        note_step.outcome, note_step.detail = "skipped", "no note: the update failed"
        return report
    try:
        kandji.create_note(device.device_id, text)
        note_step.outcome = "done"
    except ConnectorError as exc:
        note_step.outcome, note_step.error = "failed", str(exc)
    return report


def _user_by_email(kandji: Connector, email: str) -> tuple[str, str]:
    """The user with exactly this email, through Custom API Action on GET /users (email matches by substring)."""
    query: dict | None = {"email": email}
    while query is not None:
        result = kandji.custom_api_action("GET", "/users", query=query)
        if result.status_code != 200:
            raise error_for(result.status_code, card="Custom API Action", device_id=None, method="GET",
                            path="/users", body=result.body)
        body = result.body or {}
        for user in body.get("results", []):
            if str(user.get("email", "")).lower() == email.strip().lower():
                return str(user["id"]), email
        next_query = next_page_query(body.get("next"))
        query = {**next_query, "email": email} if next_query else None
    raise NotFound(card="Reassign device", device_id=None, status_code=404, method="GET", path="/users",
                   body={"detail": f"No user has the email {email!r}."})
