"""submissions remember whether their normalisation may be checked (auto) or is insisted on

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 10:05:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('submissions', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('normalisation', sa.String(length=16), server_default='auto', nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table('submissions', schema=None) as batch_op:
        batch_op.drop_column('normalisation')
