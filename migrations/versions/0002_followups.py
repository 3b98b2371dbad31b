"""Follow-ups: receipt lookup keys, reply recipients, follow-ups, replies, reporter sessions.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 00:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("reports") as batch:
        batch.add_column(sa.Column("lookup_key", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("reply_recipient", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("review_status", sa.String(length=16), nullable=True))
        batch.create_unique_constraint(op.f("uq_reports_lookup_key"), ["lookup_key"])
        batch.create_check_constraint(
            op.f("ck_reports_review_status"),
            "review_status IS NULL OR review_status IN ('reviewed', 'closed')",
        )
    op.create_table(
        "followups",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("case_id", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("received_hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("padded_size", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.CheckConstraint("padded_size >= 0", name=op.f("ck_followups_padded_size")),
        sa.CheckConstraint(
            "status IN ('new', 'exported', 'purged')", name=op.f("ck_followups_status")
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["reports.id"], name=op.f("fk_followups_case_id_reports")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_followups")),
        sa.UniqueConstraint("case_id", "seq", name="uq_followups_case_seq"),
    )
    op.create_index(op.f("ix_followups_case_id"), "followups", ["case_id"], unique=False)
    op.create_table(
        "replies",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("case_id", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("imported_hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("status_change", sa.String(length=16), nullable=True),
        sa.CheckConstraint(
            "status_change IS NULL OR status_change IN ('reviewed', 'closed')",
            name=op.f("ck_replies_status_change"),
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["reports.id"], name=op.f("fk_replies_case_id_reports")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_replies")),
        sa.UniqueConstraint("case_id", "seq", name="uq_replies_case_seq"),
    )
    op.create_index(op.f("ix_replies_case_id"), "replies", ["case_id"], unique=False)
    op.create_table(
        "reporter_sessions",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("case_id", sa.String(length=32), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["reports.id"], name=op.f("fk_reporter_sessions_case_id_reports")
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_reporter_sessions")),
    )
    op.create_index(
        op.f("ix_reporter_sessions_case_id"), "reporter_sessions", ["case_id"], unique=False
    )
    op.create_index(
        op.f("ix_reporter_sessions_expires_at"), "reporter_sessions", ["expires_at"], unique=False
    )


def downgrade():
    op.drop_index(op.f("ix_reporter_sessions_expires_at"), table_name="reporter_sessions")
    op.drop_index(op.f("ix_reporter_sessions_case_id"), table_name="reporter_sessions")
    op.drop_table("reporter_sessions")
    op.drop_index(op.f("ix_replies_case_id"), table_name="replies")
    op.drop_table("replies")
    op.drop_index(op.f("ix_followups_case_id"), table_name="followups")
    op.drop_table("followups")
    with op.batch_alter_table("reports") as batch:
        batch.drop_constraint(op.f("ck_reports_review_status"), type_="check")
        batch.drop_constraint(op.f("uq_reports_lookup_key"), type_="unique")
        batch.drop_column("review_status")
        batch.drop_column("reply_recipient")
        batch.drop_column("lookup_key")
