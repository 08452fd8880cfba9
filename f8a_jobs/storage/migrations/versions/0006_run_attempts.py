"""A retried run keeps its earlier attempts: their times, status, error and the tries of the
tasks the retry ran again, which the retry would otherwise overwrite.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

from f8a_jobs.storage.tables import NullableJson

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("job_runs") as batch:
        batch.add_column(sa.Column("attempts", NullableJson, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("job_runs") as batch:
        batch.drop_column("attempts")
