"""Metadata on jobs: what a job's author records that the service keeps and shows but does
not act on (Datatailr's ``Image``, ``CPU``, ``Memory``, ``RunAs``…).

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

from f8a_jobs.storage.tables import NullableJson

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("metadata", NullableJson, nullable=True))


def downgrade() -> None:
    op.drop_column("jobs", "metadata")
