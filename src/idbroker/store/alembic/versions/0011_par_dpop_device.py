"""PAR, request objects, DPoP, device flow: pushed requests, used jtis, device codes, client
switches, DPoP-bound grants

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 05:50:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('pushed_requests',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('client_id', sa.String(length=255), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['client_id'], ['clients.client_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_pushed_requests_expires_at', 'pushed_requests', ['expires_at'], unique=False)
    op.create_table('used_jtis',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_index('ix_used_jtis_expires_at', 'used_jtis', ['expires_at'], unique=False)
    op.create_table('device_codes',
    sa.Column('device_code_hash', sa.String(length=64), nullable=False),
    sa.Column('user_code', sa.String(length=16), nullable=False),
    sa.Column('client_id', sa.String(length=255), nullable=False),
    sa.Column('scope', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('grant_id', sa.String(length=64), nullable=True),
    sa.Column('interval', sa.Integer(), nullable=False),
    sa.Column('last_polled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['client_id'], ['clients.client_id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['grant_id'], ['grants.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('device_code_hash'),
    sa.UniqueConstraint('user_code')
    )
    op.create_index('ix_device_codes_expires_at', 'device_codes', ['expires_at'], unique=False)
    with op.batch_alter_table('clients') as batch:
        batch.add_column(sa.Column('require_par', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column('require_signed_request_object', sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
        batch.add_column(sa.Column('dpop_bound', sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table('grants') as batch:
        batch.add_column(sa.Column('dpop_jkt', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('grants') as batch:
        batch.drop_column('dpop_jkt')
    with op.batch_alter_table('clients') as batch:
        batch.drop_column('dpop_bound')
        batch.drop_column('require_signed_request_object')
        batch.drop_column('require_par')
    op.drop_index('ix_device_codes_expires_at', table_name='device_codes')
    op.drop_table('device_codes')
    op.drop_index('ix_used_jtis_expires_at', table_name='used_jtis')
    op.drop_table('used_jtis')
    op.drop_index('ix_pushed_requests_expires_at', table_name='pushed_requests')
    op.drop_table('pushed_requests')
