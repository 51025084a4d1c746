"""evaluations: the unit of work becomes one run of a submission in one phase

Every submission gets one evaluation on the default competition's development phase, WITH THE
SAME ID as the submission (Celery messages already in the broker carry submission ids), its
status, lease, attempts, progress, error, task id and times copied; its result is re-pointed at
that evaluation. Submissions gain their competition (the default one). Nothing is lost.

Downgrade copies each submission's one evaluation back; it refuses, changing nothing, when a
submission has another number of evaluations or belongs to another competition (that data has
no place in the older schema).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 13:30:00
"""
from datetime import UTC, datetime

from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

# The lifecycle columns that move from submissions to evaluations, as 0001 declared them.
LIFECYCLE = [
    ('suite', sa.String(length=32), False),
    ('status', sa.String(length=16), False),
    ('progress', sa.JSON(), True),
    ('error', sa.Text(), True),
    ('attempts', sa.Integer(), False),
    ('task_id', sa.String(length=64), True),
    ('lease_owner', sa.String(length=128), True),
    ('lease_expires', sa.DateTime(), True),
    ('queued_at', sa.DateTime(), True),
    ('started_at', sa.DateTime(), True),
    ('finished_at', sa.DateTime(), True),
]
MOVED = [name for name, _, _ in LIFECYCLE]


def _old_results_unique() -> tuple[str, dict]:
    """The name of 0001's unnamed unique constraint on results.submission_id, and the batch
    options that let SQLite (which reflects it without a name) find it."""
    if op.get_bind().dialect.name == 'postgresql':
        return 'results_submission_id_key', {}
    return 'uq_results_submission_id', {'naming_convention': {'uq': 'uq_%(table_name)s_%(column_0_name)s'}}


def _default_development_phase() -> int:
    """The default competition's development phase, created if absent (the settings' values;
    every start brings them in step again)."""
    from server.state.competition_spec import DEFAULT_PHASE, DEFAULT_SLUG, DEFAULT_TITLE
    from server.state.config import get_settings

    bind = op.get_bind()
    competition_id = bind.scalar(sa.text('SELECT id FROM competitions WHERE slug = :slug'), {'slug': DEFAULT_SLUG})
    if competition_id is None:
        settings = get_settings()
        bind.execute(
            sa.text(
                'INSERT INTO competitions (slug, title, description, suite, score, final_selections,'
                ' submissions_per_day, max_active_per_team, created_at) VALUES (:slug, :title, \'\','
                ' :suite, :score, 2, :per_day, :max_active, :now)'
            ),
            {
                'slug': DEFAULT_SLUG,
                'title': DEFAULT_TITLE,
                'suite': settings.suite,
                'score': settings.score,
                'per_day': settings.submissions_per_day,
                'max_active': settings.max_active_per_team,
                'now': datetime.now(UTC).replace(tzinfo=None),
            },
        )
        competition_id = bind.scalar(sa.text('SELECT id FROM competitions WHERE slug = :slug'), {'slug': DEFAULT_SLUG})
    phase_id = bind.scalar(
        sa.text("SELECT id FROM phases WHERE competition_id = :c AND kind = 'development' ORDER BY position"),
        {'c': competition_id},
    )
    if phase_id is None:
        settings = get_settings()
        bind.execute(
            sa.text(
                "INSERT INTO phases (competition_id, name, kind, eval_set, position)"
                " VALUES (:c, :name, 'development', :eval_set, 0)"
            ),
            {'c': competition_id, 'name': DEFAULT_PHASE, 'eval_set': (settings.eval_set or settings.default_eval_set).name},
        )
        phase_id = bind.scalar(
            sa.text("SELECT id FROM phases WHERE competition_id = :c AND kind = 'development'"), {'c': competition_id}
        )
    return int(phase_id)


def _create_evaluations() -> None:
    op.create_table(
        'evaluations',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('submission_id', sa.Integer(), nullable=False),
        sa.Column('phase_id', sa.Integer(), nullable=False),
        sa.Column('suite', sa.String(length=32), nullable=False),
        sa.Column('suite_version', sa.String(length=16), nullable=True),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('progress', sa.JSON(), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('task_id', sa.String(length=64), nullable=True),
        sa.Column('lease_owner', sa.String(length=128), nullable=True),
        sa.Column('lease_expires', sa.DateTime(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('queued_at', sa.DateTime(), nullable=True),
        sa.Column('started_at', sa.DateTime(), nullable=True),
        sa.Column('finished_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['phase_id'], ['phases.id']),
        sa.ForeignKeyConstraint(['submission_id'], ['submissions.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('evaluations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_evaluations_finished_at'), ['finished_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_evaluations_phase_id'), ['phase_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_evaluations_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_evaluations_submission_id'), ['submission_id'], unique=False)


def upgrade() -> None:
    _create_evaluations()
    phase_id = _default_development_phase()
    bind = op.get_bind()
    competition_id = bind.scalar(sa.text('SELECT competition_id FROM phases WHERE id = :p'), {'p': phase_id})
    columns = ', '.join(MOVED)
    bind.execute(
        sa.text(
            f'INSERT INTO evaluations (id, submission_id, phase_id, suite_version, created_at, {columns})'
            f' SELECT s.id, s.id, :phase, (SELECT r.suite_version FROM results r WHERE r.submission_id = s.id),'
            f' s.created_at, {", ".join("s." + name for name in MOVED)} FROM submissions s'
        ),
        {'phase': phase_id},
    )
    if bind.dialect.name == 'postgresql':
        bind.execute(
            sa.text(
                "SELECT setval(pg_get_serial_sequence('evaluations', 'id'),"
                " COALESCE((SELECT MAX(id) FROM evaluations), 0) + 1, false)"
            )
        )

    with op.batch_alter_table('submissions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('competition_id', sa.Integer(), nullable=True))
    bind.execute(sa.text('UPDATE submissions SET competition_id = :c'), {'c': competition_id})
    with op.batch_alter_table('submissions', schema=None) as batch_op:
        batch_op.alter_column('competition_id', existing_type=sa.Integer(), nullable=False)
        batch_op.create_foreign_key('fk_submissions_competition_id', 'competitions', ['competition_id'], ['id'])
        batch_op.create_index(batch_op.f('ix_submissions_competition_id'), ['competition_id'], unique=False)
        batch_op.drop_index(batch_op.f('ix_submissions_status'))
        batch_op.drop_index(batch_op.f('ix_submissions_finished_at'))
        for name in MOVED:
            batch_op.drop_column(name)

    with op.batch_alter_table('results', schema=None) as batch_op:
        batch_op.add_column(sa.Column('evaluation_id', sa.Integer(), nullable=True))
    # Each migrated evaluation has its submission's id.
    bind.execute(sa.text('UPDATE results SET evaluation_id = submission_id'))
    unique_name, options = _old_results_unique()
    with op.batch_alter_table('results', schema=None, **options) as batch_op:
        batch_op.drop_constraint(unique_name, type_='unique')
        batch_op.alter_column('evaluation_id', existing_type=sa.Integer(), nullable=False)
        batch_op.create_unique_constraint('uq_results_evaluation_id', ['evaluation_id'])
        batch_op.create_foreign_key('fk_results_evaluation_id', 'evaluations', ['evaluation_id'], ['id'])
        batch_op.create_index(batch_op.f('ix_results_submission_id'), ['submission_id'], unique=False)


def _refuse_lossy_downgrade() -> None:
    from server.state.competition_spec import DEFAULT_SLUG

    bind = op.get_bind()
    uneven = bind.scalar(
        sa.text(
            'SELECT COUNT(*) FROM submissions s WHERE (SELECT COUNT(*) FROM evaluations e'
            ' WHERE e.submission_id = s.id) <> 1'
        )
    )
    elsewhere = bind.scalar(
        sa.text(
            'SELECT COUNT(*) FROM submissions s JOIN competitions c ON c.id = s.competition_id'
            ' WHERE c.slug <> :slug'
        ),
        {'slug': DEFAULT_SLUG},
    )
    if uneven or elsewhere:
        raise RuntimeError(
            f'Cannot downgrade below 0008 without losing data: {uneven} submission(s) have other '
            f'than exactly one evaluation and {elsewhere} belong to a competition other than '
            f'{DEFAULT_SLUG!r}; the older schema has no place for them. Nothing was changed.'
        )


def downgrade() -> None:
    _refuse_lossy_downgrade()
    bind = op.get_bind()
    with op.batch_alter_table('submissions', schema=None) as batch_op:
        for name, type_, _ in LIFECYCLE:
            batch_op.add_column(sa.Column(name, type_, nullable=True))
    for name in MOVED:
        bind.execute(
            sa.text(
                f'UPDATE submissions SET {name} = (SELECT e.{name} FROM evaluations e'
                ' WHERE e.submission_id = submissions.id)'
            )
        )
    with op.batch_alter_table('submissions', schema=None) as batch_op:
        for name, type_, nullable in LIFECYCLE:
            if not nullable:
                batch_op.alter_column(name, existing_type=type_, nullable=False)
        batch_op.create_index(batch_op.f('ix_submissions_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_submissions_finished_at'), ['finished_at'], unique=False)
        batch_op.drop_index(batch_op.f('ix_submissions_competition_id'))
        batch_op.drop_constraint('fk_submissions_competition_id', type_='foreignkey')
        batch_op.drop_column('competition_id')

    unique_name, _ = _old_results_unique()
    with op.batch_alter_table('results', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_results_submission_id'))
        batch_op.drop_constraint('fk_results_evaluation_id', type_='foreignkey')
        batch_op.drop_constraint('uq_results_evaluation_id', type_='unique')
        batch_op.drop_column('evaluation_id')
        batch_op.create_unique_constraint(unique_name, ['submission_id'])

    with op.batch_alter_table('evaluations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_evaluations_submission_id'))
        batch_op.drop_index(batch_op.f('ix_evaluations_status'))
        batch_op.drop_index(batch_op.f('ix_evaluations_phase_id'))
        batch_op.drop_index(batch_op.f('ix_evaluations_finished_at'))
    op.drop_table('evaluations')
