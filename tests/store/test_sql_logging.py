"""Database errors never carry their statements' parameters (token hashes, grant ids, whatever a
client sent), so logging one cannot leak them: every engine is made with hide_parameters."""

from __future__ import annotations

import logging
import secrets

import pytest
from alembic import command
from sqlalchemy import Engine, event, text
from sqlalchemy.exc import DBAPIError

from idbroker.store.db import Database
from idbroker.store.migrate import alembic_config


def test_a_database_error_is_logged_without_its_parameters(database, caplog):
    secret = f"secret-{secrets.token_hex(8)}"
    with pytest.raises(DBAPIError) as raised, database.session(write=False) as s:
        s.execute(text("SELECT :value FROM no_such_table"), {"value": secret})
    logging.getLogger("idbroker").error("query failed", exc_info=raised.value)
    assert "no_such_table" in caplog.text  # the error itself, with its statement, is there
    assert secret not in caplog.text and secret not in str(raised.value)


def test_every_engine_hides_parameters(database, tmp_path):
    """The application's engines (both stores) and the one alembic's own command line makes
    (store/alembic/env.py, when no connection is handed to it)."""
    engines: list[Engine] = []

    def seen(conn):  # type: ignore[no-untyped-def]
        engines.append(conn.engine)

    event.listen(Engine, "engine_connect", seen)
    try:
        db = Database(database.url)
        with db.session(write=False) as s:
            s.execute(text("SELECT 1"))
        db.dispose()
        command.upgrade(alembic_config(f"sqlite:///{tmp_path / 'alembic-cli.db'}"), "head")
    finally:
        event.remove(Engine, "engine_connect", seen)
    assert {e.dialect.name for e in engines} >= {database.engine.dialect.name, "sqlite"}
    assert all(e.hide_parameters for e in engines), [e.url for e in engines if not e.hide_parameters]
