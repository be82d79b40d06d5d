"""tenants and maintenance requests

Revision ID: 2e3f4a5b6c73
Revises: 1d2e3f4a5b62
Create Date: 2025-02-03 14:05:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "2e3f4a5b6c73"
down_revision = "1d2e3f4a5b62"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("unit_id", sa.Integer, sa.ForeignKey("units.id"), nullable=False),
        sa.Column("lease_start", sa.Date, nullable=False),
        sa.Column("lease_end", sa.Date, nullable=True),
    )
    op.create_table(
        "maintenance_requests",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("property_id", sa.Integer, sa.ForeignKey("properties.id"), nullable=False),
        sa.Column("unit_id", sa.Integer, sa.ForeignKey("units.id"), nullable=False),
        sa.Column("tenant_id", sa.Integer, sa.ForeignKey("tenants.id"), nullable=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("status", sa.String(20), nullable=False, server_default="open"),
        sa.Column("priority", sa.String(10), nullable=False, server_default="normal"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_maintenance_requests_property_id", "maintenance_requests", ["property_id"])
    op.create_index("ix_maintenance_requests_status", "maintenance_requests", ["status"])


def downgrade() -> None:
    op.drop_index("ix_maintenance_requests_status", table_name="maintenance_requests")
    op.drop_index("ix_maintenance_requests_property_id", table_name="maintenance_requests")
    op.drop_table("maintenance_requests")
    op.drop_table("tenants")
