"""Run policies of plain jobs: tries with delays, a timeout, pausing on failure. A run counts
its tries and may wait (``not_before``) before the next. A job may run after another's runs
(``after_job``, indexed: every finished run looks its followers up).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

from f8a_jobs.storage.tables import Json, UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("policy", Json, nullable=True))
        batch.add_column(sa.Column("after_job", sa.String(255), nullable=True))
        batch.create_index("ix_jobs_after_job", ["after_job"])
    with op.batch_alter_table("job_runs") as batch:
        batch.add_column(sa.Column("tries", sa.Integer, nullable=True))
        batch.add_column(sa.Column("not_before", UTCDateTime, nullable=True))
    # runs going on during the upgrade are their first try (their end is matched by it)
    op.execute(sa.text("UPDATE job_runs SET tries = 1 WHERE status = 'running'"))


def downgrade() -> None:
    with op.batch_alter_table("job_runs") as batch:
        batch.drop_column("not_before")
        batch.drop_column("tries")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_after_job")
        batch.drop_column("after_job")
        batch.drop_column("policy")
