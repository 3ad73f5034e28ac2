"""JARM and FAPI 2.0 per client: clients.authorization_signed_response_alg, clients.fapi2

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 06:20:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('clients') as batch:
        batch.add_column(sa.Column('authorization_signed_response_alg', sa.String(length=16), nullable=True))
        batch.add_column(sa.Column('fapi2', sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('clients') as batch:
        batch.drop_column('fapi2')
        batch.drop_column('authorization_signed_response_alg')
