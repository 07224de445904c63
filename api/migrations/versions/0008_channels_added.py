"""a channel a patient adds is told about an unchanged visit: calendar events remember the
patient's channels when last published, and each publication the channels added since

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('calendar_events') as batch:
        batch.add_column(sa.Column('channels', sa.JSON(), nullable=True))
    with op.batch_alter_table('publications') as batch:
        batch.add_column(sa.Column('channels_added', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('publications') as batch:
        batch.drop_column('channels_added')
    with op.batch_alter_table('calendar_events') as batch:
        batch.drop_column('channels')
