"""Alert slots and hour-rounded sessions: alert_state.last_run_slot; old sessions dropped.

``last_run_slot`` is the start of the alert slot of the last ``send-alerts``
run, so an alert goes out only in the first run of a slot. Sessions made
before this revision stored a precise last-activity time and have no expiry
in their cookie (so they could not be resumed anyway): they are deleted.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 00:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("alert_state") as batch:
        batch.add_column(sa.Column("last_run_slot", sa.DateTime(timezone=True), nullable=True))
    op.execute("DELETE FROM reporter_sessions")
    op.execute("DELETE FROM staff_sessions")


def downgrade():
    with op.batch_alter_table("alert_state") as batch:
        batch.drop_column("last_run_slot")
