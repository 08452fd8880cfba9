"""Runs as rows from the moment they fall due: trigger, leader epoch, owner, heartbeat,
result; one run per job and slot; flows keyed by (run, argument index); the leadership term.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from f8a_jobs.storage.tables import Json, UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("job_runs") as batch:
        batch.add_column(
            sa.Column("trigger", sa.String(16), nullable=False, server_default="schedule")
        )
        batch.add_column(sa.Column("epoch", sa.Integer, nullable=True))
        batch.add_column(sa.Column("owner", sa.String(128), nullable=True))
        batch.add_column(sa.Column("heartbeat_at", UTCDateTime, nullable=True))
        batch.add_column(sa.Column("result", Json, nullable=True))
        # one run per job and slot; it also orders a job's runs, so the old index goes
        batch.create_unique_constraint("uq_job_runs_slot", ["job_id", "scheduled_for", "trigger"])
        batch.drop_index("ix_job_runs_job")
    with op.batch_alter_table("flow_outbox") as batch:
        batch.add_column(sa.Column("run_id", sa.String(32), nullable=True))
        batch.add_column(sa.Column("arg_index", sa.Integer, nullable=True))
        batch.add_column(sa.Column("error", sa.Text, nullable=True))
        batch.create_unique_constraint("uq_flow_outbox_key", ["run_id", "arg_index"])
    leadership = op.create_table(
        "leadership",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("epoch", sa.Integer, nullable=False),
        sa.Column("holder", sa.String(128), nullable=True),
        sa.Column("since", UTCDateTime, nullable=True),
    )
    op.bulk_insert(leadership, [{"name": "leader", "epoch": 0}])


def downgrade() -> None:
    op.drop_table("leadership")
    with op.batch_alter_table("flow_outbox") as batch:
        batch.drop_constraint("uq_flow_outbox_key", type_="unique")
        for column in ("error", "arg_index", "run_id"):
            batch.drop_column(column)
    with op.batch_alter_table("job_runs") as batch:
        batch.drop_constraint("uq_job_runs_slot", type_="unique")
        batch.create_index("ix_job_runs_job", ["job_id", "scheduled_for"])
        for column in ("result", "heartbeat_at", "owner", "epoch", "trigger"):
            batch.drop_column(column)
