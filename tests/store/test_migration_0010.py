"""Migration 0010 (issue 15 standards metadata) on a store with clients registered before it:
they keep the ES256 stored for them (the old default, written explicitly into every row), and
get public subjects, unsigned userinfo and no front-channel logout. New clients default to RS256."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from idbroker.clients.metadata import ClientMetadata
from idbroker.store import migrate


def _fill(column: sa.Column) -> object:
    if isinstance(column.type, sa.JSON):
        return []
    if isinstance(column.type, sa.Boolean):
        return False
    if isinstance(column.type, sa.DateTime):
        return datetime(2026, 1, 1, tzinfo=UTC)
    return "x"


def test_existing_clients_keep_es256_and_get_the_new_defaults(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'm.db'}")
    migrate.upgrade(engine, "0009")
    clients = sa.Table("clients", sa.MetaData(), autoload_with=engine)
    row = {c.name: _fill(c) for c in clients.columns if not c.nullable and c.server_default is None}
    row.update(client_id="old", id_token_signed_response_alg="ES256", token_endpoint_auth_method="none",
               redirect_uris=["https://old.example/cb"])
    with engine.begin() as conn:
        conn.execute(clients.insert().values(**row))
    migrate.upgrade(engine, "0010")
    with engine.connect() as conn:
        got = conn.execute(sa.text(
            "SELECT id_token_signed_response_alg, subject_type, userinfo_signed_response_alg,"
            " sector_identifier_uri, frontchannel_logout_uri, frontchannel_logout_session_required"
            " FROM clients WHERE client_id = 'old'")).one()
    assert tuple(got) == ("ES256", "public", None, None, None, 0)
    assert ClientMetadata(client_id="new").id_token_signed_response_alg == "RS256"
    engine.dispose()


def test_head_is_alembics_newest_revision():
    """`migrate.HEAD` lets a start skip loading Alembic when the database is there already."""
    from alembic.script import ScriptDirectory

    assert ScriptDirectory.from_config(migrate.alembic_config("sqlite://")).get_heads() == [migrate.HEAD]


def test_upgrade_to_head_from_an_older_revision_still_runs(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'm.db'}")
    assert migrate.stored_revision(engine) is None
    migrate.upgrade(engine, "0014")
    assert migrate.stored_revision(engine) == "0014"
    migrate.upgrade(engine)
    assert migrate.stored_revision(engine) == migrate.HEAD
    assert "factor_at" in {c["name"] for c in sa.inspect(engine).get_columns("sessions")}
