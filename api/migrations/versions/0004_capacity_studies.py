"""capacity studies run as jobs, and the files of their reports

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('capacity_studies',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('organisation_id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('scenario_id', sa.String(length=32), nullable=False),
    sa.Column('scenario_version_id', sa.String(length=32), nullable=False),
    sa.Column('document', sa.JSON(), nullable=False),
    sa.Column('time_limit_seconds', sa.Float(), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('cancel_requested', sa.Boolean(), nullable=False),
    sa.Column('progress_done', sa.Integer(), nullable=False),
    sa.Column('progress_total', sa.Integer(), nullable=False),
    sa.Column('progress_variant', sa.String(length=200), nullable=True),
    sa.Column('error_code', sa.String(length=60), nullable=True),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], ),
    sa.ForeignKeyConstraint(['scenario_id'], ['scenarios.id'], ),
    sa.ForeignKeyConstraint(['scenario_version_id'], ['scenario_versions.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('capacity_studies', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_capacity_studies_organisation_id'), ['organisation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_capacity_studies_scenario_id'), ['scenario_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_capacity_studies_status'), ['status'], unique=False)

    op.create_table('capacity_study_files',
    sa.Column('study_id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('media_type', sa.String(length=100), nullable=False),
    sa.Column('content', sa.LargeBinary(), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['study_id'], ['capacity_studies.id'], ),
    sa.PrimaryKeyConstraint('study_id', 'name')
    )


def downgrade() -> None:
    op.drop_table('capacity_study_files')
    with op.batch_alter_table('capacity_studies', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_capacity_studies_status'))
        batch_op.drop_index(batch_op.f('ix_capacity_studies_scenario_id'))
        batch_op.drop_index(batch_op.f('ix_capacity_studies_organisation_id'))
    op.drop_table('capacity_studies')
