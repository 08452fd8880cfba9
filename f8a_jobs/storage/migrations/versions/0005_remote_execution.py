"""Remote execution: which worker runs a run or a try ("" while its message waits in the
broker), and a remote try's reported outcome until the leader's runner applies it.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

from f8a_jobs.storage.tables import NullableJson

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("job_runs") as batch:
        batch.add_column(sa.Column("worker", sa.String(255), nullable=True))
    with op.batch_alter_table("run_tasks") as batch:
        batch.add_column(sa.Column("worker", sa.String(255), nullable=True))
        batch.add_column(sa.Column("reported", NullableJson, nullable=True))
    op.create_index(
        "ix_run_tasks_reported",
        "run_tasks",
        ["run_id"],
        postgresql_where=sa.text("reported IS NOT NULL"),
        sqlite_where=sa.text("reported IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_run_tasks_reported", table_name="run_tasks")
    with op.batch_alter_table("run_tasks") as batch:
        batch.drop_column("reported")
        batch.drop_column("worker")
    with op.batch_alter_table("job_runs") as batch:
        batch.drop_column("worker")
