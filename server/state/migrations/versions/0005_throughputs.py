"""throughput of each network on each worker device, for wait estimates

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 10:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'throughputs',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('arch', sa.String(length=64), nullable=False),
        sa.Column('device', sa.String(length=128), nullable=False),
        sa.Column('forward_per_second', sa.Float(), nullable=False),
        sa.Column('backward_per_second', sa.Float(), nullable=False),
        sa.Column('measured_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('arch', 'device'),
    )
    with op.batch_alter_table('throughputs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_throughputs_measured_at'), ['measured_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('throughputs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_throughputs_measured_at'))
    op.drop_table('throughputs')
