"""Labels on jobs (Datatailr's ``Labels``): shown on the job, indexed one row each.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

from f8a_jobs.storage.tables import NullableJson

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("labels", NullableJson, nullable=True))
    op.create_table(
        "job_labels",
        sa.Column("job_id", sa.String(255), primary_key=True),
        sa.Column("label", sa.String(64), primary_key=True),
    )
    op.create_index("ix_job_labels_label", "job_labels", ["label", "job_id"])


def downgrade() -> None:
    op.drop_table("job_labels")
    op.drop_column("jobs", "labels")
