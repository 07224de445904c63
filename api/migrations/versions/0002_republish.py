"""publications numbered per scenario, so an earlier plan can be published again

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

COLUMNS = "plan_id, event_id, publish_number, patient_id, action, sequence"


def _publications(name: str, key: list[str], with_number: bool) -> None:
    columns = [
        sa.Column('plan_id', sa.String(length=32), sa.ForeignKey('plans.id'), nullable=False),
        sa.Column('event_id', sa.String(length=32), sa.ForeignKey('calendar_events.id'), nullable=False),
    ]
    if with_number:
        columns.append(sa.Column('publish_number', sa.Integer(), nullable=False))
    columns += [
        sa.Column('patient_id', sa.String(length=64), nullable=False),
        sa.Column('action', sa.String(length=20), nullable=False),
        sa.Column('sequence', sa.Integer(), nullable=False),
    ]
    op.create_table(name, *columns, sa.PrimaryKeyConstraint(*key))


def _replace_publications(copy: str) -> None:
    """The filled copy takes the publications table's place, index and constraint names
    (PostgreSQL keeps the names of the table a copy was made in; later migrations use them)."""
    op.drop_index('ix_publications_patient_id', table_name='publications')
    op.drop_table('publications')
    op.rename_table(copy, 'publications')
    if op.get_bind().dialect.name == "postgresql":
        for suffix in ("pkey", "plan_id_fkey", "event_id_fkey"):
            op.execute(f"ALTER TABLE publications RENAME CONSTRAINT {copy}_{suffix} TO publications_{suffix}")
    op.create_index('ix_publications_patient_id', 'publications', ['patient_id'], unique=False)


def upgrade() -> None:
    with op.batch_alter_table('scenarios') as batch_op:
        batch_op.add_column(sa.Column('publish_count', sa.Integer(), nullable=False, server_default='0'))
    # Until now a plan could be published once, so plans rank by when they were published.
    op.execute(
        "UPDATE scenarios SET publish_count = (SELECT COUNT(*) FROM plans "
        "WHERE plans.scenario_id = scenarios.id AND plans.published_at IS NOT NULL)")
    _publications('publications_next', ['plan_id', 'event_id', 'publish_number'], with_number=True)
    op.execute(
        f"INSERT INTO publications_next ({COLUMNS}) "
        "SELECT p.plan_id, p.event_id, (SELECT COUNT(*) FROM plans q JOIN plans r ON r.id = p.plan_id "
        "WHERE q.scenario_id = r.scenario_id AND q.published_at IS NOT NULL "
        "AND q.published_at <= r.published_at), p.patient_id, p.action, p.sequence FROM publications p")
    _replace_publications('publications_next')


def downgrade() -> None:
    _publications('publications_previous', ['plan_id', 'event_id'], with_number=False)
    op.execute(
        "INSERT INTO publications_previous (plan_id, event_id, patient_id, action, sequence) "
        "SELECT p.plan_id, p.event_id, p.patient_id, p.action, p.sequence FROM publications p "
        "WHERE p.publish_number = (SELECT MAX(q.publish_number) FROM publications q "
        "WHERE q.plan_id = p.plan_id AND q.event_id = p.event_id)")
    _replace_publications('publications_previous')
    with op.batch_alter_table('scenarios') as batch_op:
        batch_op.drop_column('publish_count')
