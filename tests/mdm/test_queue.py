"""Queue semantics on the real database: FIFO, NotNow until Idle, idempotent results, bounded hot table."""
from __future__ import annotations

import plistlib
from datetime import timedelta

from sqlalchemy import func, select

from bramley.db.base import utcnow
from bramley.mdm import queue
from bramley.mdm.models import CommandHistory, QueuedCommand


def _uuid(payload: bytes | None) -> str | None:
    return plistlib.loads(payload)["CommandUUID"] if payload else None


def test_fifo_with_priority_and_final_rows_leave_the_queue(make_tenant, db):
    t = make_tenant()
    with db.unit_of_work() as s:
        ctx = t.ctx(s)
        target = [queue.Target("UDID-1", "dev-1")]
        first = queue.enqueue(s, ctx, target, "RestartDevice", {})
        second = queue.enqueue(s, ctx, target, "ShutDownDevice", {})
        urgent = queue.enqueue(s, ctx, target, "DeviceLock", {}, priority=10)
        assert _uuid(queue.next_command(s, ctx, "UDID-1")) == urgent
        queue.record_result(s, ctx, "UDID-1", "Acknowledged", urgent, [])
        assert _uuid(queue.next_command(s, ctx, "UDID-1")) == first
        queue.record_result(s, ctx, "UDID-1", "Error", first, [{"ErrorCode": 1}])
        assert _uuid(queue.next_command(s, ctx, "UDID-1")) == second
        queue.record_result(s, ctx, "UDID-1", "Acknowledged", second, [])
        assert queue.next_command(s, ctx, "UDID-1") is None
        assert s.scalar(select(func.count()).select_from(QueuedCommand)
                        .where(QueuedCommand.tenant_id == ctx.tenant_id)) == 0
        statuses = dict(s.execute(select(CommandHistory.command_uuid, CommandHistory.status)
                                  .where(CommandHistory.tenant_id == ctx.tenant_id)).all())
        assert statuses == {urgent: "Acknowledged", first: "Error", second: "Acknowledged"}


def test_not_now_is_skipped_until_the_next_idle(make_tenant, db):
    t = make_tenant()
    with db.unit_of_work() as s:
        ctx = t.ctx(s)
        target = [queue.Target("U", "d")]
        a = queue.enqueue(s, ctx, target, "InstallProfile", {})
        b = queue.enqueue(s, ctx, target, "DeviceInformation", {})
        assert _uuid(queue.next_command(s, ctx, "U")) == a
        queue.record_result(s, ctx, "U", "NotNow", a, [])
        assert _uuid(queue.next_command(s, ctx, "U")) == b  # same exchange: a is skipped
        queue.record_result(s, ctx, "U", "Acknowledged", b, [])
        assert queue.next_command(s, ctx, "U") is None
        queue.record_result(s, ctx, "U", "Idle", "", [])
        assert _uuid(queue.next_command(s, ctx, "U")) == a  # a new exchange offers it again


def test_repeated_or_unknown_results_change_nothing(make_tenant, db):
    t = make_tenant()
    with db.unit_of_work() as s:
        ctx = t.ctx(s)
        a = queue.enqueue(s, ctx, [queue.Target("U", "d")], "DeviceInformation", {})
        queue.next_command(s, ctx, "U")
        assert queue.record_result(s, ctx, "U", "Acknowledged", a, []).final
        assert queue.record_result(s, ctx, "U", "Acknowledged", a, []) is None
        assert queue.record_result(s, ctx, "U", "Error", "NOT-A-COMMAND", []) is None
        assert queue.record_result(s, ctx, "OTHER", "Acknowledged", a, []) is None


def test_a_sent_but_unanswered_command_is_delivered_again(make_tenant, db):
    t = make_tenant()
    with db.unit_of_work() as s:
        ctx = t.ctx(s)
        a = queue.enqueue(s, ctx, [queue.Target("U", "d")], "DeviceLock", {})
        assert _uuid(queue.next_command(s, ctx, "U")) == a
        # The connection dropped; the device comes back with Idle.
        queue.record_result(s, ctx, "U", "Idle", "", [])
        assert _uuid(queue.next_command(s, ctx, "U")) == a


def test_bulk_enqueue_is_one_command_body_for_many_enrollments(make_tenant, db):
    t = make_tenant()
    with db.unit_of_work() as s:
        ctx = t.ctx(s)
        targets = [queue.Target(f"U{i}", f"d{i}") for i in range(12_000)]
        uuid = queue.enqueue(s, ctx, targets, "DeviceInformation", {"Queries": ["OSVersion"]})
        assert s.scalar(select(func.count()).select_from(QueuedCommand).where(
            QueuedCommand.tenant_id == ctx.tenant_id, QueuedCommand.command_uuid == uuid)) == 12_000
        assert _uuid(queue.next_command(s, ctx, "U11999")) == uuid


def test_queue_stays_bounded_over_rounds_and_history_is_compacted(make_tenant, db):
    t = make_tenant()
    with db.unit_of_work() as s:
        ctx = t.ctx(s)
        targets = [queue.Target(f"U{i}", f"d{i}") for i in range(50)]
        for _ in range(10):
            uuid = queue.enqueue(s, ctx, targets, "DeviceInformation", {})
            for target in targets:
                queue.next_command(s, ctx, target.enrollment_id)
                queue.record_result(s, ctx, target.enrollment_id, "Acknowledged", uuid, [])
        pending = s.scalar(select(func.count()).select_from(QueuedCommand).where(QueuedCommand.tenant_id == ctx.tenant_id))
        assert pending == 0
        queue.compact(s, retention=timedelta(days=30), now=utcnow() + timedelta(days=31))
        left = s.scalar(select(func.count()).select_from(CommandHistory).where(CommandHistory.tenant_id == ctx.tenant_id))
        assert left == 0


def test_compaction_keeps_what_finished_within_retention_however_old_the_command(make_tenant, db):
    from sqlalchemy import update

    t = make_tenant()
    now = utcnow()
    with db.unit_of_work() as s:
        ctx = t.ctx(s)
        old_done = queue.enqueue(s, ctx, [queue.Target("U", "d")], "DeviceInformation", {})
        old_late = queue.enqueue(s, ctx, [queue.Target("U", "d")], "SecurityInfo", {})
        old_pending = queue.enqueue(s, ctx, [queue.Target("U", "d")], "ProfileList", {})
        for uuid in (old_done, old_late):
            queue.record_result(s, ctx, "U", "Acknowledged", uuid, [])
        # All three were asked for 40 days ago; one finished 35 days ago, one yesterday, one never.
        s.execute(update(CommandHistory).where(CommandHistory.tenant_id == ctx.tenant_id)
                  .values(created_at=now - timedelta(days=40)))
        s.execute(update(CommandHistory).where(CommandHistory.command_uuid == old_done)
                  .values(completed_at=now - timedelta(days=35)))
        s.execute(update(CommandHistory).where(CommandHistory.command_uuid == old_late)
                  .values(completed_at=now - timedelta(days=1)))
        assert queue.compact(s, retention=timedelta(days=30), now=now) == 1
        left = set(s.scalars(select(CommandHistory.command_uuid).where(CommandHistory.tenant_id == ctx.tenant_id)))
        assert left == {old_late, old_pending}


def test_deactivate_drops_pending_work_and_says_why(make_tenant, db):
    t = make_tenant()
    with db.unit_of_work() as s:
        ctx = t.ctx(s)
        a = queue.enqueue(s, ctx, [queue.Target("U", "d")], "DeviceLock", {})
        assert queue.deactivate(s, ctx, ["U"]) == 1
        assert queue.next_command(s, ctx, "U") is None
        assert s.scalar(select(CommandHistory.status).where(CommandHistory.tenant_id == ctx.tenant_id,
                                                            CommandHistory.command_uuid == a)) == "Deactivated"


def test_every_worker_compacts_finished_history_on_its_housekeeping_round(make_tenant, db, settings):
    from bramley.jobs import service as jobs
    from bramley.jobs.worker import Worker

    t = make_tenant()
    with db.unit_of_work() as s:
        ctx = t.ctx(s)
        done = queue.enqueue(s, ctx, [queue.Target("E1", "d1"), queue.Target("E2", "d2")], "DeviceInformation", {})
        for enrollment in ("E1", "E2"):
            queue.next_command(s, ctx, enrollment)
            queue.record_result(s, ctx, enrollment, "Acknowledged", done, [])
        waiting = queue.enqueue(s, ctx, [queue.Target("E3", "d3")], "DeviceInformation", {})

    def history(s):
        return dict(s.execute(select(CommandHistory.enrollment_id, CommandHistory.status).where(
            CommandHistory.tenant_id == t.id)).all())

    calls = []

    def broken(_s, _settings):
        calls.append("broken")
        raise RuntimeError("a broken periodic task")

    jobs.register_periodic("test.broken", broken, every=timedelta(hours=1))
    try:
        worker = Worker(db, settings.model_copy(update={"command_history_days": 0}))
        worker._housekeeping()
        worker._housekeeping()  # not due again within the hour: runs nothing
    finally:
        jobs.PERIODIC.pop("test.broken")
    assert calls == ["broken"]  # ran once; its failure did not stop the compaction
    with db.unit_of_work() as s:
        assert history(s) == {"E3": "Pending"}  # finished history gone, pending work untouched
        assert _uuid(queue.next_command(s, t.ctx(s), "E3")) == waiting
