"""What handlers log while a run or a task's try runs, kept with the run.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

from f8a_jobs.storage.tables import BigId, UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "run_logs",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("task", sa.String(1024), nullable=False),
        sa.Column("part", sa.Integer, nullable=False),
        sa.Column("try_number", sa.Integer, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=True),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("ts", UTCDateTime, nullable=False),
        sa.Column("level", sa.Integer, nullable=False),
        sa.Column("logger", sa.String(255), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
    )
    op.create_index("ix_run_logs_try", "run_logs", ["run_id", "task", "part", "try_number", "id"])


def downgrade() -> None:
    op.drop_table("run_logs")
