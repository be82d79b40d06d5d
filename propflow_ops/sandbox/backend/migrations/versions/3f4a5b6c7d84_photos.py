"""photos of maintenance requests (S3 keys)

Revision ID: 3f4a5b6c7d84
Revises: 2e3f4a5b6c73
Create Date: 2025-02-20 11:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "3f4a5b6c7d84"
down_revision = "2e3f4a5b6c73"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "photos",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "maintenance_request_id", sa.Integer, sa.ForeignKey("maintenance_requests.id"), nullable=False
        ),
        sa.Column("s3_key", sa.String(500), nullable=False, unique=True),
        sa.Column("content_type", sa.String(50), nullable=False, server_default="image/jpeg"),
        sa.Column("size_bytes", sa.Integer, nullable=False),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_photos_maintenance_request_id", "photos", ["maintenance_request_id"])


def downgrade() -> None:
    op.drop_index("ix_photos_maintenance_request_id", table_name="photos")
    op.drop_table("photos")
