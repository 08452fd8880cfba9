"""Runs across jobs, newest first (``GET /runs``): an index from which any page starts.

Revision ID: 0009
Revises: 0008
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_job_runs_scheduled", "job_runs", ["scheduled_for", "run_id"])


def downgrade() -> None:
    op.drop_index("ix_job_runs_scheduled", "job_runs")
