"""competitions and their phases (development, final), each phase naming its evaluation set

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 12:45:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'competitions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('slug', sa.String(length=63), nullable=False),
        sa.Column('title', sa.String(length=200), nullable=False),
        sa.Column('description', sa.Text(), nullable=False),
        sa.Column('suite', sa.String(length=32), nullable=False),
        sa.Column('score', sa.Text(), nullable=False),
        sa.Column('final_selections', sa.Integer(), nullable=False),
        sa.Column('reveal_at', sa.DateTime(), nullable=True),
        sa.Column('published_at', sa.DateTime(), nullable=True),
        sa.Column('submissions_per_day', sa.Integer(), nullable=False),
        sa.Column('max_active_per_team', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('slug'),
    )
    op.create_table(
        'phases',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('competition_id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('eval_set', sa.String(length=255), nullable=False),
        sa.Column('starts_at', sa.DateTime(), nullable=True),
        sa.Column('ends_at', sa.DateTime(), nullable=True),
        sa.Column('position', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['competition_id'], ['competitions.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('competition_id', 'name'),
        sa.UniqueConstraint('competition_id', 'position'),
    )
    with op.batch_alter_table('phases', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_phases_competition_id'), ['competition_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('phases', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_phases_competition_id'))
    op.drop_table('phases')
    op.drop_table('competitions')
