"""Alembic migrations, run programmatically (``idbroker db upgrade`` and at ``serve`` start)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect, text

if TYPE_CHECKING:
    from alembic.config import Config

SCRIPT_LOCATION = str(Path(__file__).with_name("alembic"))
# The newest revision under alembic/versions (tests/store/test_migrations.py keeps it so).
HEAD = "0015"


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", SCRIPT_LOCATION)
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> bool:
    """Migrates the database to `revision`; False when there was nothing to do. A database at the
    newest revision already - every start but the first after an upgrade - is left as it is without
    loading Alembic (and its Mako and Pygments: 0.1 s and ~8 MB the server's workers would inherit)."""
    if revision == "head" and stored_revision(engine) == HEAD:
        return False
    from alembic import command

    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    return True


def stored_revision(engine: Engine) -> str | None:
    """The revision the database records (Alembic's version table), None before the first."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
