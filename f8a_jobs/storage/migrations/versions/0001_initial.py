"""Jobs, their runs, the flow outbox and the service state.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from f8a_jobs.storage.tables import BigId, Json, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("job_id", sa.String(255), primary_key=True),
        sa.Column("handler", sa.String(255), nullable=False),
        sa.Column("kwargs", Json, nullable=False),
        sa.Column("schedule", Json, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("misfire_grace_time", sa.Integer, nullable=False),
        sa.Column("next_run_time", UTCDateTime, nullable=True),
        sa.Column("last_run", UTCDateTime, nullable=True),
        sa.Column("source", sa.String(255), nullable=False),
        sa.Column("source_hash", sa.String(64), nullable=True),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_jobs_next_run_time", "jobs", ["next_run_time"])
    op.create_index("ix_jobs_handler", "jobs", ["handler"])
    op.create_table(
        "job_runs",
        sa.Column("run_id", sa.String(32), primary_key=True),
        sa.Column("job_id", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("scheduled_for", UTCDateTime, nullable=False),
        sa.Column("started_at", UTCDateTime, nullable=True),
        sa.Column("finished_at", UTCDateTime, nullable=True),
        sa.Column("handler", sa.String(255), nullable=True),
        sa.Column("kwargs", Json, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("traceback", sa.Text, nullable=True),
        sa.Column("missed_count", sa.Integer, nullable=True),
    )
    op.create_index("ix_job_runs_job", "job_runs", ["job_id", "scheduled_for"])
    op.create_index("ix_job_runs_status", "job_runs", ["status", "scheduled_for"])
    op.create_table(
        "flow_outbox",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(255), nullable=False),
        sa.Column("flow_name", sa.String(255), nullable=False),
        sa.Column("arguments", Json, nullable=False),
        sa.Column("task_names", Json, nullable=True),
        sa.Column("run_subsequent", sa.Boolean, nullable=False),
        sa.Column("follow_subflows", sa.Boolean, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("sent_at", UTCDateTime, nullable=True),
    )
    op.create_index("ix_flow_outbox_status", "flow_outbox", ["status", "id"])
    op.create_index("ix_flow_outbox_job", "flow_outbox", ["job_id", "id"])
    op.create_table(
        "service_state",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(255), nullable=False),
    )


def downgrade() -> None:
    for table in ("service_state", "flow_outbox", "job_runs", "jobs"):
        op.drop_table(table)
