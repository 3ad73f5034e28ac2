"""dynamic client registration (RFC 7591 / 7592): registration columns on clients, initial access tokens

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 06:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

URIS = ('client_uri', 'policy_uri', 'tos_uri', 'jwks_uri')


def upgrade() -> None:
    with op.batch_alter_table('clients') as batch:
        batch.add_column(sa.Column('registered_dynamically', sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
        batch.add_column(sa.Column('registration_access_token_hash', sa.String(length=128), nullable=True))
        batch.add_column(sa.Column('application_type', sa.String(length=16), nullable=True))
        for name in URIS:
            batch.add_column(sa.Column(name, sa.String(length=2048), nullable=True))
        batch.add_column(sa.Column('contacts', sa.JSON(), nullable=True))
        batch.add_column(sa.Column('software_id', sa.String(length=255), nullable=True))
        batch.add_column(sa.Column('software_version', sa.String(length=255), nullable=True))
    op.create_table('registration_tokens',
    sa.Column('token_hash', sa.String(length=128), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('max_uses', sa.Integer(), nullable=True),
    sa.Column('uses', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('token_hash')
    )


def downgrade() -> None:
    op.drop_table('registration_tokens')
    with op.batch_alter_table('clients') as batch:
        for name in ('software_version', 'software_id', 'contacts', *reversed(URIS), 'application_type',
                     'registration_access_token_hash', 'registered_dynamically'):
            batch.drop_column(name)
