"""Priorities on jobs and runs (claims take the highest first), labels copied onto runs, and
alerts: targets on jobs, and an outbox of alerts of their own.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

from f8a_jobs.storage.tables import BigId, Json, NullableJson, UTCDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    normal = sa.text("2")
    op.add_column(
        "jobs", sa.Column("priority", sa.SmallInteger, nullable=False, server_default=normal)
    )
    op.add_column("jobs", sa.Column("alerts", NullableJson, nullable=True))
    op.add_column("job_runs", sa.Column("labels", NullableJson, nullable=True))
    op.add_column(
        "job_runs", sa.Column("priority", sa.SmallInteger, nullable=False, server_default=normal)
    )
    op.create_index(
        "ix_job_runs_claim", "job_runs", ["status", sa.text("priority DESC"), "scheduled_for"]
    )
    op.create_table(
        "alerts",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(64), nullable=False, unique=True),
        sa.Column("delivery", sa.String(32), nullable=False),
        sa.Column("job_id", sa.String(255), nullable=False),
        sa.Column("run_id", sa.String(32), nullable=True),
        sa.Column("slot", UTCDateTime, nullable=True),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("target", Json, nullable=False),
        sa.Column("target_key", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("tries", sa.Integer, nullable=False),
        sa.Column("next_try_at", UTCDateTime, nullable=False),
        sa.Column("give_up_at", UTCDateTime, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("sent_at", UTCDateTime, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("report", NullableJson, nullable=True),
    )
    op.create_index("ix_alerts_due", "alerts", ["status", "next_try_at"])
    op.create_index("ix_alerts_run", "alerts", ["run_id"])
    op.create_index("ix_alerts_repeat", "alerts", ["job_id", "event", "target_key", "created_at"])


def downgrade() -> None:
    op.drop_table("alerts")
    op.drop_index("ix_job_runs_claim", "job_runs")
    op.drop_column("job_runs", "priority")
    op.drop_column("job_runs", "labels")
    op.drop_column("jobs", "alerts")
    op.drop_column("jobs", "priority")
