"""Directory users created at the same moment, each in its own transaction (as an IdP's parallel POSTs are): the
unique index decides a userName race, and concurrent creations all get their own legacy id."""
from __future__ import annotations

import threading

from sqlalchemy import func, select

from bramley.errors import Conflict
from bramley.users import service as users
from bramley.users.models import User

WRITERS = 8


def _race(tenant, names: list[str]) -> list[object]:
    """Create one user per name, all threads released at once; each thread's user, or the exception it met."""
    with tenant.db.unit_of_work() as s:
        ctx = tenant.ctx(s)
    # Released before their first statement: a SQLite writer holds the write lock from there to its commit.
    start = threading.Barrier(len(names), timeout=30)
    outcomes: list[object] = [None] * len(names)

    def create(i: int) -> None:
        try:
            start.wait()
            with tenant.db.unit_of_work() as s:
                outcomes[i] = users.create_directory_user(s, ctx, users.Profile(user_name=names[i]))
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            outcomes[i] = exc

    threads = [threading.Thread(target=create, args=(i,)) for i in range(len(names))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return outcomes


def test_one_of_racing_creations_of_a_user_name_wins_the_rest_conflict(make_tenant):
    tenant = make_tenant()
    outcomes = _race(tenant, ["Racer@corp.example" if i % 2 else "racer@CORP.example" for i in range(WRITERS)])
    assert sum(not isinstance(o, Exception) for o in outcomes) == 1
    assert all(isinstance(o, Conflict) for o in outcomes if isinstance(o, Exception))
    with tenant.db.unit_of_work() as s:
        assert s.scalar(select(func.count()).select_from(User).where(User.tenant_id == tenant.id)) == 1


def test_concurrent_creations_each_draw_their_own_legacy_id(make_tenant):
    tenant = make_tenant()
    outcomes = _race(tenant, [f"user{i}@corp.example" for i in range(WRITERS)])
    assert not [o for o in outcomes if isinstance(o, Exception)]
    with tenant.db.unit_of_work() as s:
        ids = list(s.scalars(select(User.deprecated_user_id).where(User.tenant_id == tenant.id)))
    assert sorted(ids) == sorted({o.deprecated_user_id for o in outcomes}) and len(set(ids)) == WRITERS
