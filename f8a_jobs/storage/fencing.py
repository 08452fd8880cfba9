"""Leadership terms and the fence: the one writer of the ``leadership`` row.

Each leadership term bumps ``leadership.epoch``. Firing, claiming, relaying and the workflow
runner first check, under a share lock, that the caller's epoch is still the current one, so a
process that lost the lead starts nothing new, and a new term's bump waits for a write that
checked the old one to commit.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from f8a_jobs.storage.tables import leadership

LEADER = "leader"


class LostLeadership(Exception):
    """This process's term has ended: another process leads now."""

    def __init__(self, mine: int, current: int | None) -> None:
        super().__init__(f"leader term {mine} has ended (the current term is {current})")


def begin_term(connection: Connection, holder: str, now: datetime) -> int:
    """Start a leadership term (the caller holds the leader lock); returns its epoch."""
    epoch = connection.execute(
        update(leadership)
        .where(leadership.c.name == LEADER)
        .values(epoch=leadership.c.epoch + 1, holder=holder, since=now)
        .returning(leadership.c.epoch)
    ).scalar()
    if epoch is None:  # the migration seeds the row; an emptied table starts again
        epoch = 1
        connection.execute(
            insert(leadership).values(name=LEADER, epoch=epoch, holder=holder, since=now)
        )
    return int(epoch)


def current_term(connection: Connection) -> dict[str, Any]:
    row = connection.execute(select(leadership).where(leadership.c.name == LEADER)).first()
    if row is None:
        return {"epoch": 0, "holder": None, "since": None}
    return {"epoch": row.epoch, "holder": row.holder, "since": row.since}


def fence(connection: Connection, epoch: int) -> None:
    """Raise ``LostLeadership`` unless ``epoch`` is the current term, and keep it current until
    the transaction ends (a share lock: a new term's bump waits for it)."""
    query = select(leadership.c.epoch).where(leadership.c.name == LEADER)
    if connection.dialect.name == "postgresql":
        query = query.with_for_update(read=True)
    current = connection.execute(query).scalar()
    if current != epoch:
        raise LostLeadership(epoch, current)
