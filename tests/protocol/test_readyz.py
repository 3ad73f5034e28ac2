"""/readyz (issue 13): 200 when the database answers and a signing key signs, 503 naming the failed
check otherwise; /healthz stays liveness (200 whatever the database does)."""

from __future__ import annotations

import os
import uuid

from sqlalchemy import create_engine, delete, text
from starlette.testclient import TestClient
from support import ISSUER, make_settings

from idbroker.app import create_app
from idbroker.provider import Provider
from idbroker.store.db import Database
from idbroker.store.migrate import upgrade
from idbroker.store.models import SigningKey


def test_ready_when_the_database_and_a_key_are_there(http):
    r = http.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "ok", "checks": {"database": "ok", "signing_key": "ok"}}
    assert r.headers["cache-control"] == "no-store"


def test_not_ready_without_a_signing_key(http, provider):
    with provider.db.session() as s:
        s.execute(delete(SigningKey))
    provider.keys.invalidate()
    r = http.get("/readyz")
    assert r.status_code == 503
    assert r.json()["checks"] == {"database": "ok", "signing_key": "failed"}
    assert http.get("/healthz").status_code == 200


def _broken_after_start(db: Database, tmp_path, breaker) -> None:  # type: ignore[no-untyped-def]
    provider = Provider(make_settings(tmp_path), db=db)
    provider.keys.ensure()
    with TestClient(create_app(provider=provider), base_url=ISSUER) as http:
        assert http.get("/readyz").status_code == 200
        breaker()
        r = http.get("/readyz")
        assert r.status_code == 503, r.text
        assert r.json()["status"] == "unavailable"
        assert r.json()["checks"]["database"] in ("failed", "timeout")
        assert http.get("/healthz").status_code == 200  # liveness: the process answers
        # No stack trace, no driver message in the answer.
        assert "Traceback" not in r.text and "sqlite" not in r.text.lower()


def test_not_ready_when_the_sqlite_file_is_no_database(tmp_path):
    path = tmp_path / "idbroker.db"
    db = Database(f"sqlite:///{path}")
    upgrade(db.engine)

    def breaker() -> None:
        db.engine.dispose()
        path.write_bytes(b"this is not a database " * 512)

    try:
        _broken_after_start(db, tmp_path, breaker)
    finally:
        db.dispose()


def test_not_ready_when_the_postgresql_database_is_gone(tmp_path):
    import pytest

    admin_url = os.environ.get("IDBROKER_TEST_POSTGRES_URL")
    if not admin_url:
        pytest.skip("IDBROKER_TEST_POSTGRES_URL is not set (./test sets it)")
    name = f"idbroker_readyz_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    db = Database(admin_url.rsplit("/", 1)[0] + f"/{name}")
    upgrade(db.engine)

    def breaker() -> None:  # terminates its connections; new ones find no database
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))

    try:
        _broken_after_start(db, tmp_path, breaker)
    finally:
        db.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
