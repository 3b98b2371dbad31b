"""Initial schema: reports (metadata only) and envelope_chunks.

Revision ID: 0001
Revises:
Create Date: 2025-01-01 00:00:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "reports",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("received_hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("padded_size", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("danger_now", sa.Boolean(), nullable=True),
        sa.CheckConstraint("padded_size >= 0", name=op.f("ck_reports_padded_size")),
        sa.CheckConstraint(
            "status IN ('new', 'exported', 'purged')", name=op.f("ck_reports_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reports")),
    )
    op.create_index(
        "ix_reports_status_received_hour", "reports", ["status", "received_hour"], unique=False
    )
    op.create_table(
        "envelope_chunks",
        sa.Column("envelope_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.CheckConstraint("seq >= 0", name=op.f("ck_envelope_chunks_seq")),
        sa.PrimaryKeyConstraint("envelope_id", "seq", name=op.f("pk_envelope_chunks")),
    )


def downgrade():
    op.drop_table("envelope_chunks")
    op.drop_index("ix_reports_status_received_hour", table_name="reports")
    op.drop_table("reports")
