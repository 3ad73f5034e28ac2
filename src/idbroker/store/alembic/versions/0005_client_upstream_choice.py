"""the upstream providers a client offers, and whether it takes local accounts

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 05:20:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('idps', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('local_accounts', sa.Boolean(), nullable=False,
                                      server_default=sa.true()))


def downgrade() -> None:
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.drop_column('local_accounts')
        batch_op.drop_column('idps')
