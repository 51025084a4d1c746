"""final selections on submissions, and when a competition's final phase was started

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 14:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('submissions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('final_selected_at', sa.DateTime(), nullable=True))
    with op.batch_alter_table('competitions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('finals_started_at', sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('competitions', schema=None) as batch_op:
        batch_op.drop_column('finals_started_at')
    with op.batch_alter_table('submissions', schema=None) as batch_op:
        batch_op.drop_column('final_selected_at')
