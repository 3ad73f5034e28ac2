"""role rules and the default role for AWS credentials

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 05:20:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('role_rules',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('role_arn', sa.String(length=2048), nullable=False),
    sa.Column('claim', sa.String(length=255), nullable=True),
    sa.Column('match', sa.String(length=1024), nullable=True),
    sa.Column('clients', sa.JSON(), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('role_default',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('role_arn', sa.String(length=2048), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )


def downgrade() -> None:
    op.drop_table('role_default')
    op.drop_table('role_rules')
