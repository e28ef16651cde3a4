"""records waiting for a batch: read from an index alone

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05 13:10:00

Each relayer step asks how many records wait for a batch and how old the oldest is, then
takes the oldest ones. Through ix_records_status that read every pending row, those already
in a batch in flight included, to test batch_id and read created_at — and each row holds its
ciphertext, so a page per record. (status, batch_id, id, created_at) answers the count and
the oldest time from the index alone, finds the batch's rows without passing over the others,
and still serves counts by status.
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("records") as batch_op:
        batch_op.drop_index("ix_records_status")
        batch_op.create_index("ix_records_waiting", ["status", "batch_id", "id", "created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("records") as batch_op:
        batch_op.drop_index("ix_records_waiting")
        batch_op.create_index("ix_records_status", ["status"], unique=False)
