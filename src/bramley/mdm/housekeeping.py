"""Periodic upkeep of the MDM tables, run by every job worker (jobs.register_periodic)."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from bramley.jobs import service as jobs
from bramley.mdm import queue


def compact_command_history(db: Session, settings) -> int:
    """Finished commands leave the hot queue when they finish; their history goes after the retention."""
    return queue.compact(db, retention=timedelta(days=settings.command_history_days))


jobs.register_periodic("mdm.compact_command_history", compact_command_history, every=timedelta(hours=1))
