"""Fixtures shared by every suite: a provider on SQLite and on PostgreSQL, an HTTP client
against the ASGI app, and helpers to register clients and users.

Storage-backed tests are parametrised over both stores (``store`` param ids ``sqlite`` and
``postgres``); PostgreSQL comes from IDBROKER_TEST_POSTGRES_URL (an admin URL: a database per
run is created and dropped). ``./test`` always sets it, starting a throwaway server if needed.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from joserfc.jwk import RSAKey
from sqlalchemy import create_engine, make_url, text
from starlette.testclient import TestClient
from support import (
    ISSUER,
    PASSWORD,
    TEST_SECRET,
    Flow,
    MailSink,
    Quiet,
    RegisteredClient,
    Relay,
    make_settings,
    serving,
)

from idbroker.app import create_app
from idbroker.clients.metadata import ClientMetadata
from idbroker.provider import Provider
from idbroker.store.db import Database
from idbroker.store.migrate import upgrade
from idbroker.store.models import Base


class _PooledRSAKey(RSAKey):
    """The broker's key store as tests see it: a new 2048-bit RSA key takes ~45 ms to generate, and
    every provider makes two (RS256 signing, RSA-OAEP-256 decryption), so each of some two thousand
    tests would spend ~0.1 s on them. Here the store's keys come from a small pool made once per
    run, in turn: a provider's keys (and up to six rotations) still differ from each other, and
    keys that tests generate themselves (clients' keys) never come from it."""

    _raw: list[Any] = []
    _turn = itertools.count()

    @classmethod
    def generate_key(cls, key_size: int | None = 2048, parameters: Any = None, private: bool = True,
                     auto_kid: bool = False) -> Any:
        if key_size != 2048 or not private or auto_kid:
            return super().generate_key(key_size, parameters, private, auto_kid)
        turn = next(cls._turn) % 6
        if turn == len(cls._raw):
            cls._raw.append(cls.binding.generate_private_key(2048))
        return cls(cls._raw[turn], cls._raw[turn], parameters)


@pytest.fixture(scope="session", autouse=True)
def _pooled_rsa_keys() -> Iterator[None]:
    from idbroker.keys import keystore

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(keystore, "RSAKey", _PooledRSAKey)
        yield


def _postgres_admin_url() -> str | None:
    return os.environ.get("IDBROKER_TEST_POSTGRES_URL")


@pytest.fixture(scope="session")
def _databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Database]]:
    """One migrated database per store for the whole run."""
    dbs: dict[str, Database] = {}
    sqlite_path = tmp_path_factory.mktemp("sqlite") / "idbroker.db"
    dbs["sqlite"] = Database(f"sqlite:///{sqlite_path}")
    admin_url = _postgres_admin_url()
    created = None
    if admin_url:
        created = f"idbroker_test_{uuid.uuid4().hex[:12]}"
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{created}"'))
        admin.dispose()
        dbs["postgres"] = Database(admin_url.rsplit("/", 1)[0] + f"/{created}")
    for db in dbs.values():
        upgrade(db.engine)
    yield dbs
    for db in dbs.values():
        db.dispose()
    if created:
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{created}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, _databases: dict[str, Database]) -> Database:
    if request.param not in _databases:
        pytest.skip("IDBROKER_TEST_POSTGRES_URL is not set (./test sets it)")
    db = _databases[request.param]
    with db.engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())
    return db



@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Override in a test module to change settings for its tests."""
    return {}


@pytest.fixture
def provider(database: Database, tmp_path: Any, settings_overrides: dict[str, Any]) -> Provider:
    p = Provider(make_settings(tmp_path, **settings_overrides), db=database)
    p.keys.ensure()
    return p


@pytest.fixture
def relayed(provider: Provider) -> Iterator[tuple[Relay, Database]]:
    """PostgreSQL: a second Database on the provider's store whose connections go through a `Relay`
    (support.py), to lose them as the network or a restarting server would."""
    if provider.db.writer_lock is not None:
        pytest.skip("SQLite: no connection between the node and its store")
    url = make_url(provider.db.url)
    relay = Relay(url.host or "127.0.0.1", url.port or 5432)
    db = Database(url.set(host="127.0.0.1", port=relay.port).render_as_string(hide_password=False))
    try:
        yield relay, db
    finally:
        db.dispose()
        relay.close()


@pytest.fixture
def app(provider: Provider):  # type: ignore[no-untyped-def]
    return create_app(provider=provider)


@pytest.fixture
def http(app) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(app, base_url=ISSUER, follow_redirects=False) as client:
        yield client



@pytest.fixture
def register(provider: Provider):  # type: ignore[no-untyped-def]
    def _register(client_id: str = "app", **fields: Any) -> RegisteredClient:
        fields.setdefault("redirect_uris", ["https://app.example/cb"])
        fields.setdefault("post_logout_redirect_uris", ["https://app.example/bye"])
        meta = ClientMetadata(client_id=client_id, **fields)
        row, secret = provider.clients.create(meta)
        return RegisteredClient(client_id, secret, (fields["redirect_uris"] or [""])[0])

    return _register


@pytest.fixture
def user(provider: Provider):  # type: ignore[no-untyped-def]
    return provider.users.create("alice@example.com", PASSWORD, email_verified=True, given_name="Alice",
                                 family_name="Liddell", phone_number="+15555550100",
                                 address={"country": "GB"})



@pytest.fixture
def flow(http: TestClient) -> Flow:
    return Flow(http)



@pytest.fixture
def smtp() -> Iterator[MailSink]:
    sink = MailSink()
    yield sink
    sink.stop()


@pytest.fixture
def receiver():
    """A real HTTP endpoint that records back-channel logout deliveries: (base URL, list, event)."""
    import threading
    from urllib.parse import parse_qs

    received: list[dict] = []
    arrived = threading.Event()

    class Handler(Quiet):
        def do_POST(self):  # noqa: N802
            received.append({"path": self.path, "content_type": self.headers["content-type"],
                             "form": parse_qs(self.body().decode())})
            self.answer(200, content_type="text/plain")
            arrived.set()

    with serving(Handler) as base:
        yield base, received, arrived


@pytest.fixture
def cli(database: Database, tmp_path: Any, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """`idbroker ...` in process against the test's store: cli("clients", "list") -> the click
    Result; a non-zero exit fails the test unless ok=False."""
    from typer.testing import CliRunner

    from idbroker.cli import app as cli_app
    from idbroker.cli import context as cli_ctx

    monkeypatch.setenv("IDBROKER_DATABASE_URL", database.engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("IDBROKER_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("IDBROKER_SECRET_KEY", TEST_SECRET)
    monkeypatch.setenv("IDBROKER_ARGON2_MEMORY_KIB", "8192")
    cli_ctx.provider.cache_clear()
    runner = CliRunner()

    def run(*args: str, ok: bool = True, input: str | None = None) -> Any:
        result = runner.invoke(cli_app, list(args), input=input)
        if ok:
            assert result.exit_code == 0, result.output
        return result

    yield run
    cli_ctx.provider.cache_clear()
