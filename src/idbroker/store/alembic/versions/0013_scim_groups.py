"""SCIM groups (id, display name unique, external id) and users' SCIM externalId

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 05:50:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('groups',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('display_name', sa.String(length=255), nullable=False),
    sa.Column('external_id', sa.String(length=255), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('display_name')
    )
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('scim_external_id', sa.String(length=255), nullable=True))
        batch_op.create_index(batch_op.f('ix_users_scim_external_id'), ['scim_external_id'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_users_scim_external_id'))
        batch_op.drop_column('scim_external_id')
    op.drop_table('groups')
