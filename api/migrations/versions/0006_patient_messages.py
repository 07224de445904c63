"""patient messages: calendar events say whether the patient takes calendar invites (a per-patient
preference, no longer a property of sensitive review types), each publication remembers the visit an event showed (so an update can say
what changed), and message_deliveries keeps the delivery status of SMS, letters and invites

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('publications') as batch:
        batch.add_column(sa.Column('visit_id', sa.String(length=64), nullable=True))
    # Existing sensitive events were published without invites; they keep that until their
    # scenario is published again, which sets the flag from the patient's contact preference.
    with op.batch_alter_table('calendar_events') as batch:
        batch.add_column(sa.Column('calendar_invites', sa.Boolean(), nullable=True))
    op.execute("UPDATE calendar_events SET calendar_invites = NOT sensitive")
    with op.batch_alter_table('calendar_events') as batch:
        batch.alter_column('calendar_invites', existing_type=sa.Boolean(), nullable=False)
    op.create_table('message_deliveries',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('organisation_id', sa.String(length=32), nullable=False),
    sa.Column('event_id', sa.String(length=32), nullable=False),
    sa.Column('publish_number', sa.Integer(), nullable=False),
    sa.Column('action', sa.String(length=20), nullable=False),
    sa.Column('channel', sa.String(length=20), nullable=False),
    sa.Column('status', sa.String(length=40), nullable=False),
    sa.Column('provider_id', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['event_id'], ['calendar_events.id'], ),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('event_id', 'publish_number', 'channel')
    )
    op.create_index(op.f('ix_message_deliveries_organisation_id'), 'message_deliveries', ['organisation_id'], unique=False)
    op.create_index(op.f('ix_message_deliveries_event_id'), 'message_deliveries', ['event_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_message_deliveries_event_id'), table_name='message_deliveries')
    op.drop_index(op.f('ix_message_deliveries_organisation_id'), table_name='message_deliveries')
    op.drop_table('message_deliveries')
    with op.batch_alter_table('publications') as batch:
        batch.drop_column('visit_id')
    with op.batch_alter_table('calendar_events') as batch:
        batch.drop_column('calendar_invites')
