"""Owners, groups and permissions of jobs; who started each run; the audit trail.

Jobs that exist already belong to ``F8A_JOBS_SYSTEM_OWNER`` (``system``) with ``rwrwr-``: all
may read them, as before, and only admins may change them until an admin gives them owners.

Revision ID: 0008
Revises: 0007
"""

import os

import sqlalchemy as sa
from alembic import op

from f8a_jobs.storage.tables import BigId, NullableJson, UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    owner = os.environ.get("F8A_JOBS_SYSTEM_OWNER") or "system"
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("owner", sa.String(128), nullable=False, server_default=owner))
        batch.add_column(sa.Column("group_name", sa.String(128), nullable=True))
        batch.add_column(
            sa.Column("permissions", sa.String(6), nullable=False, server_default="rwrwr-")
        )
    with op.batch_alter_table("jobs") as batch:
        batch.alter_column("owner", server_default=None)
        batch.alter_column("permissions", server_default=None)
    op.create_index("ix_jobs_owner", "jobs", ["owner"])
    op.create_index("ix_jobs_group_name", "jobs", ["group_name"])
    op.add_column("job_runs", sa.Column("started_by", sa.String(160), nullable=True))
    op.create_table(
        "audit_log",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("user", sa.String(128), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("job_id", sa.String(255), nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("details", NullableJson, nullable=True),
    )
    op.create_index("ix_audit_log_job", "audit_log", ["job_id", "id"])
    op.create_index("ix_audit_log_user", "audit_log", ["user", "id"])


def downgrade() -> None:
    op.drop_table("audit_log")
    op.drop_column("job_runs", "started_by")
    op.drop_index("ix_jobs_group_name", "jobs")
    op.drop_index("ix_jobs_owner", "jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("permissions")
        batch.drop_column("group_name")
        batch.drop_column("owner")
