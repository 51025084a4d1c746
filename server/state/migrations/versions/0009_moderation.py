"""the organiser can hide a submission or disqualify a team, with a public reason

Revision ID: 0009
Revises: 0007
Create Date: 2026-12-02 13:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('submissions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('hidden_reason', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('moderated_at', sa.DateTime(), nullable=True))
    with op.batch_alter_table('teams', schema=None) as batch_op:
        batch_op.add_column(sa.Column('disqualified_reason', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('moderated_at', sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('teams', schema=None) as batch_op:
        batch_op.drop_column('moderated_at')
        batch_op.drop_column('disqualified_reason')
    with op.batch_alter_table('submissions', schema=None) as batch_op:
        batch_op.drop_column('moderated_at')
        batch_op.drop_column('hidden_reason')
