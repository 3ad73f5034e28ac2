"""The CLI mirrors of the admin API (issue 13, Admin): users search|delete|signout|reset-mfa,
audit list and db backup, against a real store (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import sqlite3

import pytest
from sqlalchemy import select

from idbroker.cli import context as ctx
from idbroker.store.models import BrowserSession, MfaFactor, RecoveryCode, User


@pytest.fixture
def people(cli):
    p = ctx.provider()
    made = [p.users.create(f"u{i}@example.com", None, given_name=f"Person{i}",
                           groups=["ops"] if i % 2 else []) for i in range(5)]
    p.users.set_disabled("u4@example.com")
    return made


def test_users_search_filters_like_the_api(cli, people):
    out = json.loads(cli("users", "search", "--group", "ops", "--json").stdout)
    assert [u["email"] for u in out] == ["u1@example.com", "u3@example.com"]
    out = json.loads(cli("users", "search", "--status", "disabled", "--json").stdout)
    assert [u["email"] for u in out] == ["u4@example.com"]
    out = json.loads(cli("users", "search", "--name", "PERSON2", "--json").stdout)
    assert [u["email"] for u in out] == ["u2@example.com"]
    assert "u0@example.com" in cli("users", "search", "--email", "u0").stdout
    bad = cli("users", "search", "--status", "gone", ok=False)
    assert bad.exit_code == 1 and "active or disabled" in bad.output and "Traceback" not in bad.output


def test_signout_reset_mfa_and_delete(cli, people):
    p = ctx.provider()
    user = people[0]
    p.sessions.create(user, ["pwd"], None)
    factor = p.mfa.add_pending(user.id, "totp", secret="JBSWY3DPEHPK3PXP")
    p.mfa.confirm(factor.id)
    p.mfa.new_recovery_codes(user.id)

    assert "1 session ended" in cli("users", "signout", "u0@example.com").stdout
    with p.db.session(write=False) as s:
        assert s.scalars(select(BrowserSession).where(BrowserSession.user_id == user.id,
                                                      BrowserSession.ended_at.is_(None))).first() is None
    assert "removed 1 second factor" in cli("users", "reset-mfa", "u0@example.com").stdout
    with p.db.session(write=False) as s:
        assert s.scalars(select(MfaFactor).where(MfaFactor.user_id == user.id)).first() is None
        assert s.scalars(select(RecoveryCode).where(RecoveryCode.user_id == user.id)).first() is None

    refused = cli("users", "delete", "u0@example.com", input="n\n", ok=False)
    assert refused.exit_code == 1
    cli("users", "delete", "u0@example.com", "--yes")
    with p.db.session(write=False) as s:
        assert s.scalar(select(User).where(User.email == "u0@example.com")) is None
    missing = cli("users", "signout", "nobody@example.com", ok=False)
    assert missing.exit_code == 1 and "no user" in missing.output


def test_audit_list_filters(cli, people):
    p = ctx.provider()
    for _ in range(3):
        p.audit.record("login.failed", user_id=people[1].id, ip="192.0.2.9")
    p.audit.record("login.succeeded", user_id=people[2].id)
    out = json.loads(cli("audit", "list", "--user", "u1@example.com", "--since", "1h", "--json").stdout)
    assert len(out) == 3 and {e["kind"] for e in out} == {"login.failed"} and out[0]["user"] == "u1@example.com"
    out = json.loads(cli("audit", "list", "--kind", "login.succeeded", "--json").stdout)
    assert len(out) == 1 and out[0]["user"] == "u2@example.com"
    assert json.loads(cli("audit", "list", "--until", "2000-01-01T00:00:00", "--json").stdout) == []
    assert len(json.loads(cli("audit", "list", "--limit", "2", "--json").stdout)) == 2
    bad = cli("audit", "list", "--since", "last tuesday", ok=False)
    assert bad.exit_code == 1 and "--since" in bad.output and "Traceback" not in bad.output


def test_db_backup(cli, people, database, tmp_path):
    target = tmp_path / "copy.db"
    result = cli("db", "backup", str(target))
    if database.engine.dialect.name == "postgresql":
        assert "pg_dump" in result.stdout and not target.exists()
        return
    with sqlite3.connect(target) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        emails = {r[0] for r in conn.execute("SELECT email FROM users")}
    assert {f"u{i}@example.com" for i in range(5)} <= emails
    again = cli("db", "backup", str(target), ok=False)
    assert again.exit_code == 1 and "exists" in again.output
