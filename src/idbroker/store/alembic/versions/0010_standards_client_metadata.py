"""standards client metadata: signed userinfo, pairwise subjects, front-channel logout, claims requests

Existing clients keep the id_token_signed_response_alg stored for them (ES256, the old default,
was written explicitly into every row): their relying parties verify ES256 ID tokens today, and
a silent switch would break those that pinned it. Only clients registered from now on without an
algorithm get RS256 (OIDC Registration §2); `clients update ID --id-token-alg RS256` moves one.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 05:45:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('userinfo_signed_response_alg', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('subject_type', sa.String(length=16), nullable=False,
                                      server_default='public'))
        batch_op.add_column(sa.Column('sector_identifier_uri', sa.String(length=2048), nullable=True))
        batch_op.add_column(sa.Column('frontchannel_logout_uri', sa.String(length=2048), nullable=True))
        batch_op.add_column(sa.Column('frontchannel_logout_session_required', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
    with op.batch_alter_table('grants', schema=None) as batch_op:
        batch_op.add_column(sa.Column('claims', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('grants', schema=None) as batch_op:
        batch_op.drop_column('claims')
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.drop_column('frontchannel_logout_session_required')
        batch_op.drop_column('frontchannel_logout_uri')
        batch_op.drop_column('sector_identifier_uri')
        batch_op.drop_column('subject_type')
        batch_op.drop_column('userinfo_signed_response_alg')
