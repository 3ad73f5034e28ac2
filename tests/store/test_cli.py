"""The command line, against a real store (SQLite and PostgreSQL)."""

from __future__ import annotations

import json

import pytest
from support import TEST_SECRET
from typer.testing import CliRunner

from idbroker.cli import app
from idbroker.cli import context as ctx


@pytest.fixture
def cli(database, tmp_path, monkeypatch):
    monkeypatch.setenv("IDBROKER_DATABASE_URL", database.engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("IDBROKER_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("IDBROKER_SECRET_KEY", TEST_SECRET)
    monkeypatch.setenv("IDBROKER_ARGON2_MEMORY_KIB", "8192")
    ctx.provider.cache_clear()
    runner = CliRunner()

    def run(*args: str, ok: bool = True):
        result = runner.invoke(app, list(args))
        if ok:
            assert result.exit_code == 0, result.output
        return result

    yield run
    ctx.provider.cache_clear()


def test_every_command_has_help(cli):
    for args in [[], ["serve"], ["clients"], ["clients", "add"], ["clients", "list"], ["clients", "show"],
                 ["clients", "update"], ["clients", "remove"], ["users"], ["users", "add"], ["users", "list"],
                 ["users", "show"], ["users", "set-password"], ["users", "disable"], ["keys"], ["keys", "list"],
                 ["keys", "rotate"], ["db"], ["db", "upgrade"]]:
        result = cli(*args, "--help")
        assert "Usage" in result.output


def test_clients_lifecycle(cli):
    out = json.loads(cli("clients", "add", "--client-id", "web", "--redirect-uri", "https://web.example/cb",
                         "--redirect-uri", "https://web.example/cb2", "--name", "Web", "--first-party",
                         "--post-logout-redirect-uri", "https://web.example/bye", "--json").output)
    assert out["client_secret"] and out["redirect_uris"] == ["https://web.example/cb", "https://web.example/cb2"]
    assert out["grant_types"] == ["authorization_code", "refresh_token"] and out["response_types"] == ["code"]
    spa = json.loads(cli("clients", "add", "--client-id", "spa", "--public", "--redirect-uri",
                         "https://spa.example/cb", "--json").output)
    assert "client_secret" not in spa and spa["token_endpoint_auth_method"] == "none"
    imp = json.loads(cli("clients", "add", "--client-id", "imp", "--redirect-uri", "https://i.example/cb",
                         "--response-type", "id_token", "--public", "--json").output)
    assert "implicit" in imp["grant_types"]
    listed = json.loads(cli("clients", "list", "--json").output)
    assert [c["client_id"] for c in listed] == ["imp", "spa", "web"]
    assert all("client_secret" not in c and "secret_hash" not in c for c in listed)
    updated = json.loads(cli("clients", "update", "web", "--name", "Web 2", "--rotate-secret",
                             "--access-token-ttl", "300", "--json").output)
    assert updated["name"] == "Web 2" and updated["client_secret"] != out["client_secret"]
    assert updated["access_token_ttl"] == 300
    bad = cli("clients", "update", "web", "--redirect-uri", "http://evil.example/cb", ok=False)
    assert bad.exit_code == 1 and "https" in bad.output
    dup = cli("clients", "add", "--client-id", "web", "--redirect-uri", "https://x.example/cb", ok=False)
    assert dup.exit_code == 1 and "already exists" in dup.output
    cli("clients", "remove", "web")
    assert cli("clients", "show", "web", ok=False).exit_code == 1


def test_users_lifecycle(cli):
    user = json.loads(cli("users", "add", "--email", "u@example.com", "--password", "long enough pw",
                          "--given-name", "U", "--json").output)
    assert user["email"] == "u@example.com" and user["sub"]
    assert cli("users", "add", "--email", "u@example.com", "--password", "long enough pw", ok=False).exit_code == 1
    assert cli("users", "add", "--email", "v@example.com", "--password", "short", ok=False).exit_code == 1
    cli("users", "set-password", "u@example.com", "--password", "another long pw")
    assert ctx.provider().users.authenticate("u@example.com", "another long pw") is not None
    cli("users", "disable", "u@example.com")
    assert json.loads(cli("users", "show", "u@example.com", "--json").output)["disabled"] is True
    assert ctx.provider().users.authenticate("u@example.com", "another long pw") is None
    cli("users", "disable", "u@example.com", "--enable")
    assert len(json.loads(cli("users", "list", "--json").output)) == 1


def test_keys_list_and_rotate(cli):
    keys = json.loads(cli("keys", "list", "--json").output)
    assert {k["alg"] for k in keys} == {"ES256", "RS256"} and all(k["state"] == "active" for k in keys)
    cli("keys", "rotate")
    keys = json.loads(cli("keys", "list", "--json").output)
    assert sorted(k["state"] for k in keys if k["alg"] == "ES256") == ["active", "next"]
    cli("keys", "rotate", "--alg", "RS256", "--now")
    keys = json.loads(cli("keys", "list", "--json").output)
    assert sorted(k["state"] for k in keys if k["alg"] == "RS256") == ["active", "retired"]


def test_invalid_configuration_is_reported(cli, monkeypatch):
    monkeypatch.setenv("IDBROKER_ISSUER", "not a url")
    ctx.provider.cache_clear()
    result = cli("clients", "list", ok=False)
    assert result.exit_code == 2 and "issuer" in result.output


def test_db_upgrade(cli):
    from alembic.script import ScriptDirectory

    from idbroker.store.migrate import alembic_config

    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert f"revision {head}" in cli("db", "upgrade").output


def test_clients_hidden_from_dashboard(cli):
    out = json.loads(cli("clients", "add", "--client-id", "admin", "--redirect-uri", "https://admin.example/cb",
                         "--logback-uri", "https://admin.example/", "--hidden", "--json").output)
    assert out["hidden_from_dashboard"] is True
    shown = json.loads(cli("clients", "add", "--client-id", "wiki", "--redirect-uri", "https://wiki.example/cb",
                           "--json").output)
    assert shown["hidden_from_dashboard"] is False
    visible = json.loads(cli("clients", "update", "admin", "--visible", "--json").output)
    assert visible["hidden_from_dashboard"] is False
    # other settings are left alone when the flag is not given
    renamed = json.loads(cli("clients", "update", "admin", "--name", "Admin", "--json").output)
    assert renamed["hidden_from_dashboard"] is False and renamed["logback_uri"] == "https://admin.example/"
    hidden = json.loads(cli("clients", "update", "wiki", "--hidden", "--json").output)
    assert hidden["hidden_from_dashboard"] is True
    assert ctx.provider().clients.get("wiki").hidden_from_dashboard is True
    assert "--hidden" in cli("clients", "add", "--help").output
    assert "--visible" in cli("clients", "update", "--help").output


def test_client_branding_flags(cli):
    out = json.loads(cli("clients", "add", "--client-id", "b", "--redirect-uri", "https://b.example/cb",
                         "--primary-color", "#aa3300", "--theme", "example", "--no-signup", "--json").output)
    assert out["branding"] == {"primary_color": "#aa3300", "theme": "example"} and out["signup_enabled"] is False
    out = json.loads(cli("clients", "update", "b", "--background-color", "#ffffff", "--theme", "", "--json").output)
    assert out["branding"] == {"primary_color": "#aa3300", "background": "#ffffff"}
    bad = cli("clients", "update", "b", "--primary-color", "red", ok=False)
    assert bad.exit_code == 1 and "colour" in bad.output
