from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from bramley.db.base import Base, JSONType, UTCDateTime, utcnow

BigID = BigInteger().with_variant(Integer(), "sqlite")


class Job(Base):
    """Background work (APNs pushes, queue compaction, ...), claimed with FOR UPDATE SKIP LOCKED on PostgreSQL.

    `dedup_key` coalesces: while a job with the same (tenant, kind, dedup_key) is pending, another is not added.
    Finished jobs are deleted; dead ones (out of attempts) stay for inspection and no longer block their key.
    """

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_due", "run_after", "id"),
        Index("ix_jobs_dedup", "tenant_id", "kind", "dedup_key", unique=True,
              sqlite_where=text("dead_at IS NULL"), postgresql_where=text("dead_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(36))
    kind: Mapped[str] = mapped_column(String(48))
    dedup_key: Mapped[str] = mapped_column(String(255))
    payload: Mapped[dict] = mapped_column(JSONType, default=dict)
    run_after: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str] = mapped_column(Text, default="")
    # Set when the key is enqueued again while the job runs: the run may have missed the new work, so it reruns.
    rerun: Mapped[bool] = mapped_column(Boolean, default=False)
    dead_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
