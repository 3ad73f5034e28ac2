"""`idbroker sources ...`: lazy-migration sources managed like upstream providers, against a real
store (SQLite and PostgreSQL): order, encrypted secrets, the kinds' own checks at write time, and
every mistake one line with a non-zero exit."""

from __future__ import annotations

import json

import pytest

from idbroker.store.models import LegacySource

WEBHOOK = ["--kind", "webhook", "--url", "https://legacy.example/check", "--secret", "whsec-hunter2"]
COGNITO = ["--kind", "cognito", "--user-pool-id", "eu-west-1_AbC123", "--client-id", "abc", "--region",
           "eu-west-1", "--client-secret", "cog-s3cret"]


def ids(cli) -> list[str]:
    return [s["id"] for s in json.loads(cli("sources", "list", "--json").output)]


def test_sources_lifecycle_and_order(cli):
    out = json.loads(cli("sources", "add", "--id", "hook", *WEBHOOK, "--json").output)
    assert out == {"id": "hook", "kind": "webhook", "position": 1, "enabled": True,
                   "options": {"url": "https://legacy.example/check"}, "secrets": ["secret"]}
    out = json.loads(cli("sources", "add", "--id", "pool", *COGNITO, "--json").output)
    assert out["position"] == 2 and out["secrets"] == ["client_secret"] and "cog-s3cret" not in json.dumps(out)
    cli("sources", "add", "--id", "first", *WEBHOOK, "--position", "1")
    assert ids(cli) == ["first", "hook", "pool"]
    cli("sources", "update", "pool", "--position", "1")
    assert ids(cli) == ["pool", "first", "hook"]
    listed = json.loads(cli("sources", "list", "--json").output)
    assert [s["position"] for s in listed] == [1, 2, 3]
    out = json.loads(cli("sources", "update", "hook", "--disabled", "--option", "timeout=2", "--json").output)
    assert out["enabled"] is False and out["options"] == {"url": "https://legacy.example/check", "timeout": "2"}
    assert out["secrets"] == ["secret"]
    shown = cli("sources", "show", "pool").output
    assert "eu-west-1_AbC123" in shown and "cog-s3cret" not in shown
    assert "pool" in cli("sources", "list").output
    assert "removed source first" in cli("sources", "remove", "first").output
    assert [(s["id"], s["position"]) for s in json.loads(cli("sources", "list", "--json").output)] == [
        ("pool", 1), ("hook", 2)]


def test_secrets_are_stored_encrypted(cli, provider):
    cli("sources", "add", "--id", "hook", *WEBHOOK)
    with provider.db.session(write=False) as s:
        row = s.get(LegacySource, "hook")
    assert row is not None and "whsec-hunter2" not in json.dumps(row.options) + (row.secrets or "")
    ((source_id, built),) = provider.migration_sources.enabled()
    assert source_id == "hook" and built._secret == "whsec-hunter2"


@pytest.mark.parametrize("args, says", [
    (["add", "--id", "Bad Id", *WEBHOOK], "lower-case"),
    (["add", "--id", "x", "--kind", "nope"], "unknown kind"),
    (["add", "--id", "x", "--kind", "webhook", "--url", "http://legacy.example/check", "--secret", "s"], "loopback"),
    (["add", "--id", "x", "--kind", "webhook", "--url", "ftp://legacy.example", "--secret", "s"], "https"),
    (["add", "--id", "x", "--kind", "webhook", "--url", "https://legacy.example"], "secret is required"),
    (["add", "--id", "x", "--kind", "cognito", "--client-id", "c", "--region", "r"], "user_pool_id"),
    (["add", "--id", "x", *COGNITO, "--endpoint-url", "http://cognito.example"], "loopback"),
    (["add", "--id", "x", "--kind", "ldap", "--url", "ldap://dc.example.com", "--option", "bind_dn=cn=svc",
      "--option", "bind_password=pw", "--option", "base_dn=dc=example"], "start_tls"),
    (["add", "--id", "x", *WEBHOOK, "--option", "noequals"], "KEY=VALUE"),
    (["add", "--id", "x", *WEBHOOK, "--position", "0"], "position"),
    (["show", "nobody"], "no source"),
    (["update", "nobody", "--position", "1"], "no source"),
    (["remove", "nobody"], "no source"),
])
def test_sources_mistakes(cli, args, says):
    result = cli("sources", *args, ok=False)
    assert result.exit_code != 0 and says in result.output, result.output
    assert len([line for line in result.output.splitlines() if line.strip()]) == 1, result.output


def test_loopback_http_and_ldap_are_accepted_and_duplicates_refused(cli):
    cli("sources", "add", "--id", "dev", "--kind", "webhook", "--url", "http://127.0.0.1:9/check", "--secret", "s")
    cli("sources", "add", "--id", "dir", "--kind", "ldap", "--url", "ldap://localhost:389", "--option",
        "bind_dn=cn=svc", "--option", "bind_password=pw", "--option", "base_dn=dc=example")
    assert json.loads(cli("sources", "show", "dir", "--json").output)["secrets"] == ["bind_password"]
    result = cli("sources", "add", "--id", "dev", *WEBHOOK, ok=False)
    assert result.exit_code == 1 and "already exists" in result.output


def test_every_sources_command_has_help(cli):
    for args in [["sources"], ["sources", "add"], ["sources", "list"], ["sources", "show"], ["sources", "update"],
                 ["sources", "remove"]]:
        assert "Usage" in cli(*args, "--help").output


def test_a_source_changed_twice_within_the_clock_tick_is_rebuilt(provider):
    """The built source follows the stored configuration even when two writes share updated_at."""
    sources = provider.migration_sources
    sources.add("hook", "webhook", {"url": "http://127.0.0.1:9/a", "secret": "s3cret"})
    assert dict(sources.enabled())["hook"].url == "http://127.0.0.1:9/a"
    with provider.db.session() as s:  # the same updated_at, another configuration
        s.get(LegacySource, "hook").options = {"url": "http://127.0.0.1:9/b"}
    assert dict(sources.enabled())["hook"].url == "http://127.0.0.1:9/b"
