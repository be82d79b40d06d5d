"""properties and units

Revision ID: 1d2e3f4a5b62
Revises: 0c1d2e3f4a51
Create Date: 2025-01-15 09:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "1d2e3f4a5b62"
down_revision = "0c1d2e3f4a51"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "properties",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("owner_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("address", sa.String(300), nullable=False),
        sa.Column("city", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "units",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("property_id", sa.Integer, sa.ForeignKey("properties.id"), nullable=False),
        sa.Column("unit_number", sa.String(20), nullable=False),
        sa.Column("bedrooms", sa.Integer, nullable=False, server_default="1"),
        sa.Column("rent_cents", sa.Integer, nullable=True),
    )
    op.create_index("ix_units_property_id", "units", ["property_id"])


def downgrade() -> None:
    op.drop_index("ix_units_property_id", table_name="units")
    op.drop_table("units")
    op.drop_table("properties")
