"""Lifecycle recipes end to end on simulated devices: a dry run changes nothing, the real run reaches the devices."""
from __future__ import annotations

import json
import uuid

import pytest

from bramley.connector import InvalidInput, NotFound, connect
from bramley.connector.recipes import offboard_user, reassign_device
from bramley.users import service as users
from tests.conftest import run_cli
from tests.connector.conftest import committed


@pytest.fixture(scope="module")
def kandji(sim, server):
    with connect(server, sim.tenant.token) as connector:
        yield connector


def _user(sim, name: str, email: str) -> str:
    return sim(lambda f: f.write(lambda s, ctx: users.create(s, ctx, name=name, email=email).id))


@pytest.fixture(scope="module")
def leaver(sim, kandji):
    """ana@… with a Mac, a supervised iPhone, an unsupervised iPhone and an Apple TV; diana@… (whose address
    contains ana's) with a Mac of her own."""
    tag = uuid.uuid4().hex[:6]
    email, other = f"ana.{tag}@example.com", f"diana.{tag}@example.com"
    ana, diana = _user(sim, "Ana Lima", email), _user(sim, "Diana Prince", other)

    async def enroll(f):
        return {"mac": await f.enrolled("mac"), "phone": await f.enrolled("iphone", supervised=True),
                "unsupervised": await f.enrolled("iphone", supervised=False), "tv": await f.enrolled("tv"),
                "diana": await f.enrolled("mac")}

    devices = sim(enroll)
    ids = {name: sim(lambda f, d=d: f.device_id(d)) for name, d in devices.items()}
    for name, device_id in ids.items():
        kandji.update_device(device_id, kandji_user_id=diana if name == "diana" else ana)
    committed(lambda: kandji.list_devices("first-200", user_email=tag), lambda found: len(found) == 5)
    return email, devices, ids


def _request_types(sim, device) -> list[str]:
    return [c["request_type"] for c in sim(lambda f: f.commands(device))]


def test_offboarding_dry_run_changes_nothing(sim, kandji, leaver):
    email, devices, ids = leaver
    before = {name: _request_types(sim, d) for name, d in devices.items()}
    report = offboard_user(kandji, email, dry_run=True)
    assert report.dry_run and report.devices == 4 and report.ok
    plan = {(s.device_id, s.card, s.outcome) for s in report.steps}
    assert plan == {(ids["mac"], "Lock Device", "planned"), (ids["phone"], "Turn On Lost Mode", "planned"),
                    (ids["unsupervised"], None, "skipped"), (ids["tv"], None, "skipped"),
                    *{(ids[n], "Create Note", "planned") for n in ("mac", "phone", "unsupervised", "tv")}}
    assert all(s.pin is None for s in report.steps)
    assert {name: _request_types(sim, d) for name, d in devices.items()} == before
    assert all(kandji.list_device_notes(ids[n]).notes == [] for n in ("mac", "phone"))


def test_offboarding_locks_macs_loses_supervised_phones_and_notes_each(sim, kandji, leaver):
    email, devices, ids = leaver
    report = offboard_user(kandji, email, lock_message="Return to IT", phone_number="+1 555 0100")
    assert report.ok and report.devices == 4
    [lock] = [s for s in report.steps if s.card == "Lock Device"]
    assert lock.outcome == "done" and len(lock.pin) == 6
    sim(lambda f: f.acknowledged(devices["mac"], "DeviceLock"))
    assert devices["mac"].state.lock_pin == lock.pin and devices["mac"].state.lock_message == "Return to IT"
    sim(lambda f: f.acknowledged(devices["phone"], "EnableLostMode"))
    assert devices["phone"].state.lost_mode and devices["phone"].state.lost_message == "Return to IT"
    assert not devices["unsupervised"].state.lost_mode and not devices["unsupervised"].state.locked
    for name in ("mac", "phone", "unsupervised", "tv"):
        [note] = committed(lambda: kandji.list_device_notes(ids[name]).notes, bool)
        assert note.content.startswith(f"Offboarded {email}")
    assert "lock the Mac" in kandji.list_device_notes(ids["mac"]).notes[0].content
    # diana's address contains ana's: the exact-email filter leaves her Mac alone.
    assert not devices["diana"].state.locked and kandji.list_device_notes(ids["diana"]).notes == []
    assert "DeviceLock" not in _request_types(sim, devices["diana"])


def test_offboarding_nobody_and_bad_input(kandji):
    report = offboard_user(kandji, f"nobody.{uuid.uuid4().hex}@example.com")
    assert (report.devices, report.steps, report.ok) == (0, [], True)
    with pytest.raises(InvalidInput):
        offboard_user(kandji, " ")


def test_reassign_device_dry_run_then_for_real(sim, kandji):
    tag = uuid.uuid4().hex[:6]
    new_user = _user(sim, "Bo Chen", f"bo.{tag}@example.com")
    blueprint = kandji.create_blueprint(f"Loaners {tag}", True).blueprint
    committed(lambda: kandji.list_blueprints().results, lambda found: blueprint["id"] in {b["id"] for b in found})
    device = sim(lambda f: f.enrolled("ipad", listen=False))
    device_id = sim(lambda f: f.device_id(device))

    plan = reassign_device(kandji, device_id, user_email=f"BO.{tag}@example.com", blueprint_name=blueprint["name"],
                           asset_tag="LOAN-7", dry_run=True)
    assert [(s.card, s.outcome) for s in plan.steps] == [("Update Device", "planned"), ("Create Note", "planned")]
    assert f"→ BO.{tag}@example.com" in plan.steps[0].detail and "asset tag none → LOAN-7" in plan.steps[0].detail
    unchanged = kandji.get_device(device_id)
    assert (unchanged.user, unchanged.asset_tag) == (None, "") and unchanged.blueprint_id != blueprint["id"]

    done = reassign_device(kandji, device_id, user_email=f"bo.{tag}@example.com", blueprint_name=blueprint["name"],
                           asset_tag="LOAN-7", note="Loaner for Bo")
    assert done.ok and [s.outcome for s in done.steps] == ["done", "done"]
    after = committed(lambda: kandji.get_device(device_id), lambda device: device.asset_tag == "LOAN-7")
    assert (after.user.user_id, after.blueprint_id, after.asset_tag) == (new_user, blueprint["id"], "LOAN-7")
    notes = committed(lambda: kandji.list_device_notes(device_id).notes, bool)
    assert [n.content for n in notes] == ["Loaner for Bo"]
    with pytest.raises(NotFound):
        reassign_device(kandji, device_id, user_email=f"nobody.{tag}@example.com")
    with pytest.raises(InvalidInput):
        reassign_device(kandji, device_id)


def test_recipes_from_the_cli(settings, sim, server, kandji):
    env = {"BRAMLEY_URL": server, "BRAMLEY_TOKEN": sim.tenant.token}
    device = sim(lambda f: f.enrolled("mac", listen=False))
    device_id = sim(lambda f: f.device_id(device))
    email = f"cli.{uuid.uuid4().hex[:6]}@example.com"
    kandji.update_device(device_id, kandji_user_id=_user(sim, "Cli User", email))
    committed(lambda: kandji.list_devices("first", user_email_exact=email), bool)
    dry = run_cli(settings, "connect", "recipe", "offboard-user", email, "--dry-run", "--json", **env)
    report = json.loads(dry.stdout)
    assert report["dry_run"] and [(s["card"], s["outcome"]) for s in report["steps"]] == [
        ("Lock Device", "planned"), ("Create Note", "planned")]
    assert "DeviceLock" not in _request_types(sim, device)
    table = run_cli(settings, "connect", "recipe", "reassign-device", device_id, "--asset-tag", "IT-9", "--dry-run",
                    **env)
    assert "Update Device" in table.stdout and "would do" in table.stdout
    assert kandji.get_device(device_id).asset_tag == ""
