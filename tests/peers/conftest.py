"""A real ``idbroker serve`` for the interoperability tests, driven through its CLI.

The ``broker`` fixture starts the broker as a subprocess (Granian, the real ASGI stack) on a free
port, once per module and store: SQLite in a temporary data directory, and PostgreSQL in a
database created for the run from IDBROKER_TEST_POSTGRES_URL (an admin URL; skipped when unset)
and dropped afterwards. Clients and users are registered with the ``idbroker`` CLI against the
same data directory and database. When a test fails, the tail of the broker's output is attached
to its report.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from broker_process import LOG_TAIL_LINES, PASSWORD, Broker, node_peers
from sqlalchemy import create_engine, text


@pytest.fixture(scope="session")
def node() -> dict[str, str]:
    """The node binary and the installed npm peers (``./test`` installs them)."""
    found = node_peers()
    if isinstance(found, str):
        pytest.skip(found)
    return found


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def broker(request: pytest.FixtureRequest, node: dict[str, str],
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    yield from running_broker(request.param, tmp_path_factory.mktemp(f"broker-{request.param}"))


def running_broker(store: str, data_dir: Any, env: dict[str, str] | None = None) -> Iterator[Broker]:
    """A started `idbroker serve` on `store` (PostgreSQL: a database of its own, dropped after)
    with Alice as its user and `env` added to its environment; stopped when the generator ends."""
    admin_url = os.environ.get("IDBROKER_TEST_POSTGRES_URL")
    database_url = created = None
    if store == "postgres":
        if not admin_url:
            pytest.skip("IDBROKER_TEST_POSTGRES_URL is not set (./test sets it)")
        created = f"idbroker_peers_{uuid.uuid4().hex[:12]}"
        _admin(admin_url, f'CREATE DATABASE "{created}"')
        database_url = admin_url.rsplit("/", 1)[0] + f"/{created}"
    b = Broker(store, data_dir, database_url)
    b.env.update(env or {})
    try:
        b.user = b.cli("users", "add", "--email", "alice@example.com", "--password", PASSWORD,
                       "--given-name", "Alice", "--family-name", "Liddell")
        b.start()
        yield b
    finally:
        b.stop()
        if created and admin_url:
            _admin(admin_url, f'DROP DATABASE IF EXISTS "{created}" WITH (FORCE)')


def _admin(admin_url: str, statement: str) -> None:
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(statement))
    finally:
        engine.dispose()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    report = yield
    if report.failed and call.when in ("setup", "call"):
        b = getattr(item, "funcargs", {}).get("broker")
        if isinstance(b, Broker):
            report.sections.append((f"idbroker serve output ({b.store}, last {LOG_TAIL_LINES} lines)", b.log()))
    return report
