"""SAML single logout: the NameID and SessionIndex of sessions begun through a SAML upstream

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 05:30:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('saml_sessions',
    sa.Column('sid', sa.String(length=64), nullable=False),
    sa.Column('provider_id', sa.String(length=64), nullable=False),
    sa.Column('subject', sa.String(length=255), nullable=False),
    sa.Column('name_id', sa.Text(), nullable=False),
    sa.Column('session_index', sa.String(length=255), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['provider_id'], ['upstream_providers.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['sid'], ['sessions.sid'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('sid')
    )
    op.create_index('ix_saml_sessions_subject', 'saml_sessions', ['provider_id', 'subject'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_saml_sessions_subject', table_name='saml_sessions')
    op.drop_table('saml_sessions')
