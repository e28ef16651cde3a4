"""relayer indexes: what settling a transaction looks up

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 06:40:00

Settling a mined transaction finds its work by transaction or batch: disclosures and jobs
by tx_id, records by batch_id. Without these indexes each settlement scanned the table.
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("records") as batch_op:
        batch_op.create_index("ix_records_batch", ["batch_id"], unique=False)
    with op.batch_alter_table("chain_jobs") as batch_op:
        batch_op.create_index("ix_chain_jobs_tx", ["tx_id"], unique=False)
    with op.batch_alter_table("disclosures") as batch_op:
        batch_op.create_index("ix_disclosures_tx", ["tx_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("disclosures") as batch_op:
        batch_op.drop_index("ix_disclosures_tx")
    with op.batch_alter_table("chain_jobs") as batch_op:
        batch_op.drop_index("ix_chain_jobs_tx")
    with op.batch_alter_table("records") as batch_op:
        batch_op.drop_index("ix_records_batch")
