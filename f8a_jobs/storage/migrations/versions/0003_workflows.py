"""Workflows: a job's tasks, a run's expanded graph and cancel request, and one row per task
(and per ``for_each`` part) of a workflow run.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

from f8a_jobs.storage.tables import Json, UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("workflow", Json, nullable=True))
    with op.batch_alter_table("job_runs") as batch:
        batch.add_column(sa.Column("graph", Json, nullable=True))
        batch.add_column(sa.Column("cancel_requested", sa.Boolean, nullable=True))
    op.create_table(
        "run_tasks",
        sa.Column("run_id", sa.String(32), primary_key=True),
        sa.Column("task", sa.String(1024), primary_key=True),
        sa.Column("part", sa.Integer, primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("tries", sa.Integer, nullable=False),
        sa.Column("ready_at", UTCDateTime, nullable=True),
        sa.Column("started_at", UTCDateTime, nullable=True),
        sa.Column("finished_at", UTCDateTime, nullable=True),
        sa.Column("finished_seq", sa.Integer, nullable=True),
        sa.Column("executed", sa.Boolean, nullable=False),
        sa.Column("epoch", sa.Integer, nullable=True),
        sa.Column("owner", sa.String(128), nullable=True),
        sa.Column("heartbeat_at", UTCDateTime, nullable=True),
        sa.Column("result", Json, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("traceback", sa.Text, nullable=True),
        sa.Column("item", Json, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("run_tasks")
    with op.batch_alter_table("job_runs") as batch:
        batch.drop_column("cancel_requested")
        batch.drop_column("graph")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("workflow")
