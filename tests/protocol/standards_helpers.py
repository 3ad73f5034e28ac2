"""Shared by the JARM, FAPI 2.0 and encrypted request object tests: the `idbroker` CLI on the
test's store (import the `cli` fixture into a test module)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from support import TEST_SECRET
from typer.testing import CliRunner

from idbroker.cli import app as cli_app
from idbroker.cli import context as cli_ctx


@pytest.fixture(name="cli")
def cli_runner(database: Any, tmp_path: Any, monkeypatch: Any) -> Iterator[Any]:
    monkeypatch.setenv("IDBROKER_DATABASE_URL", database.engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("IDBROKER_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("IDBROKER_SECRET_KEY", TEST_SECRET)
    monkeypatch.setenv("IDBROKER_ARGON2_MEMORY_KIB", "8192")
    cli_ctx.provider.cache_clear()
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(cli_app, list(args))

    yield run
    cli_ctx.provider.cache_clear()
