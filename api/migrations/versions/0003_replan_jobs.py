"""re-plan jobs: the plan re-planned, the moment re-planned from, the disruptions applied

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs') as batch_op:
        batch_op.add_column(sa.Column('base_plan_id', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('as_of', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('disruptions', sa.JSON(), nullable=True))
        batch_op.create_index(batch_op.f('ix_jobs_base_plan_id'), ['base_plan_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('jobs') as batch_op:
        batch_op.drop_index(batch_op.f('ix_jobs_base_plan_id'))
        batch_op.drop_column('disruptions')
        batch_op.drop_column('as_of')
        batch_op.drop_column('base_plan_id')
