"""`idbroker idp ...`: upstream providers managed like clients, against a real store (SQLite and
PostgreSQL), with a test-only kind filed in UPSTREAMS; every mistake is one line and a non-zero exit."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from idbroker.federation import kinds
from idbroker.federation.registry import SeenAssertions
from idbroker.store.db import utcnow
from idbroker.store.housekeeping import purge
from idbroker.store.models import UpstreamProvider


class Stub:
    kind = "stub"

    def __init__(self, config: Any):
        self.config = config

    async def start(self, ctx: Any) -> str:
        return "https://op.example/authorize"

    async def finish(self, ctx: Any, params: Any) -> Any:
        raise NotImplementedError


@pytest.fixture(autouse=True)
def stub_kind(monkeypatch: Any) -> None:
    monkeypatch.setitem(kinds.UPSTREAMS, "stub", Stub)


def test_idp_lifecycle(cli):
    out = json.loads(cli("idp", "add", "--id", "corp", "--kind", "stub", "--name", "Corp SSO",
                         "--option", "issuer=https://op.example", "--secret", "client_secret=hunter2",
                         "--domain", "corp.example", "--trust-email", "--json").output)
    assert out["redirect_uri"] == "http://127.0.0.1:8000/idp/corp/callback" or out["redirect_uri"].endswith(
        "/idp/corp/callback")
    assert out["options"] == {"issuer": "https://op.example"} and out["secrets"] == ["client_secret"]
    assert out["trust_email"] and not out["trust_mfa"] and out["domains"] == ["corp.example"]
    shown = cli("idp", "show", "corp").output
    assert "/idp/corp/callback" in shown and "hunter2" not in shown
    assert "corp" in cli("idp", "list").output
    out = json.loads(cli("idp", "update", "corp", "--name", "Corp", "--option", "issuer=", "--option",
                         "scope=openid email", "--no-trust-email", "--trust-mfa", "--json").output)
    assert out["name"] == "Corp" and out["options"] == {"scope": "openid email"} and out["trust_mfa"]
    assert out["secrets"] == ["client_secret"] and not out["trust_email"]
    assert "removed provider corp" in cli("idp", "remove", "corp").output
    assert json.loads(cli("idp", "list", "--json").output) == []


@pytest.mark.parametrize("args, says", [
    (["add", "--id", "Bad Id", "--kind", "stub", "--name", "X"], "lower-case"),
    (["add", "--id", "x", "--kind", "nope", "--name", "X"], "unknown kind"),
    (["add", "--id", "x", "--kind", "stub", "--name", " "], "name"),
    (["add", "--id", "x", "--kind", "stub", "--name", "X", "--option", "issuer=http://op.example"], "loopback"),
    (["add", "--id", "x", "--kind", "stub", "--name", "X", "--option", "url=ftp://dc.example"], "https"),
    (["add", "--id", "x", "--kind", "stub", "--name", "X", "--option", "noequals"], "KEY=VALUE"),
    (["add", "--id", "x", "--kind", "stub", "--name", "X", "--domain", "not a domain"], "DNS name"),
    (["add", "--id", "x", "--kind", "stub", "--name", "X", "--logo-uri", "javascript:alert(1)"], "https"),
    (["show", "nobody"], "no provider"),
    (["update", "nobody", "--name", "Y"], "no provider"),
    (["remove", "nobody"], "no provider"),
])
def test_idp_mistakes(cli, args, says):
    result = cli("idp", *args, ok=False)
    assert result.exit_code != 0 and says in result.output, result.output
    assert len([line for line in result.output.splitlines() if line.strip()]) == 1, result.output


def test_loopback_http_is_accepted_and_duplicates_refused(cli):
    cli("idp", "add", "--id", "dev", "--kind", "stub", "--name", "Dev", "--option", "issuer=http://127.0.0.1:9/",
        "--option", "url=ldap://localhost:389")
    result = cli("idp", "add", "--id", "dev", "--kind", "stub", "--name", "Dev", ok=False)
    assert result.exit_code == 1 and "already exists" in result.output


def test_secrets_are_stored_encrypted_and_replays_purged(provider):
    provider.upstreams.add("corp", "stub", "Corp", secrets={"client_secret": "hunter2"})
    with provider.db.session(write=False) as s:
        row = s.get(UpstreamProvider, "corp")
    assert "hunter2" not in json.dumps(row.options) + (row.secrets or "")
    replay = SeenAssertions(provider.db)
    later, earlier = (utcnow() + timedelta(minutes=5)).timestamp(), (utcnow() - timedelta(minutes=1)).timestamp()
    assert not replay.seen("_a1", later) and replay.seen("_a1", later)
    assert not replay.seen("_old", earlier)
    assert purge(provider.db, 365)["seen_assertions"] == 1
    assert replay.seen("_a1", later)


def test_every_idp_command_has_help(cli):
    for args in [["idp"], ["idp", "add"], ["idp", "list"], ["idp", "show"], ["idp", "update"], ["idp", "remove"]]:
        assert "Usage" in cli(*args, "--help").output


def test_the_kinds_own_checks_refuse_a_bad_configuration_when_written(cli):
    base = ["idp", "add", "--id", "ad", "--kind", "ldap", "--name", "AD", "--option", "bind_dn=cn=svc",
            "--secret", "bind_password=pw", "--option", "base_dn=dc=example,dc=com"]
    result = cli(*base, "--option", "url=ldap://dc.example.com", ok=False)
    assert result.exit_code == 1 and "start_tls" in result.output, result.output
    cli(*base, "--option", "url=ldap://dc.example.com", "--option", "start_tls=true")
    assert json.loads(cli("idp", "show", "ad", "--json").output)["secrets"] == ["bind_password"]


def test_a_preset_is_its_kind_with_the_providers_defaults(cli):
    out = json.loads(cli("idp", "add", "--id", "google", "--kind", "google", "--name", "Google",
                         "--option", "client_id=abc.apps.example", "--secret", "client_secret=s3cret",
                         "--json").output)
    assert out["kind"] == "oidc" and out["options"]["issuer"] == "https://accounts.google.com"
    assert out["options"]["preset"] == "google" and out["options"]["client_id"] == "abc.apps.example"
    assert out["secrets"] == ["client_secret"] and "s3cret" not in json.dumps(out)


def test_named_flags_set_the_kinds_options(cli, tmp_path):
    """The issue's own flags (--issuer --client-id --client-secret --scope --claim; --url --bind-dn ...;
    --metadata-file) set the same options as --option/--secret, secrets still encrypted."""
    out = json.loads(cli("idp", "add", "--id", "op", "--kind", "oidc", "--name", "OP", "--issuer",
                         "https://op.example", "--client-id", "rp", "--client-secret", "s3cret", "--scope",
                         "openid email", "--scope", "groups", "--claim", "groups=roles", "--claim",
                         "nickname=profile.nick", "--json").output)
    assert out["options"] == {"issuer": "https://op.example", "client_id": "rp",
                              "scopes": ["openid", "email", "groups"],
                              "claims": {"groups": "roles", "nickname": "profile.nick"}}
    assert out["secrets"] == ["client_secret"] and "s3cret" not in json.dumps(out)
    out = json.loads(cli("idp", "update", "op", "--scope", "openid", "--json").output)
    assert out["options"]["scopes"] == ["openid"] and out["options"]["client_id"] == "rp"
    assert "--claim" in cli("idp", "add", "--id", "x", "--kind", "oidc", "--name", "X", "--issuer",
                            "https://op.example", "--claim", "nope", ok=False).output

    out = json.loads(cli("idp", "add", "--id", "ad", "--kind", "ldap", "--name", "AD", "--url",
                         "ldap://dc.example.com", "--start-tls", "--bind-dn", "cn=svc,dc=example,dc=com",
                         "--bind-password", "pw", "--base-dn", "dc=example,dc=com", "--user-filter",
                         "(sAMAccountName={login})", "--json").output)
    assert out["options"]["start_tls"] is True and out["options"]["user_filter"] == "(sAMAccountName={login})"
    assert out["secrets"] == ["bind_password"]

    missing = cli("idp", "add", "--id", "s", "--kind", "saml", "--name", "S", "--metadata-file",
                  str(tmp_path / "absent.xml"), ok=False)
    assert missing.exit_code == 1 and "absent.xml" in missing.output and "Traceback" not in missing.output


def test_a_provider_changed_twice_within_the_clock_tick_is_rebuilt(provider):
    """The built class follows the stored configuration even when two writes share updated_at."""
    registry = provider.upstreams
    registry.add("tick", "stub", "Tick", options={"issuer": "https://a.example"})
    first = registry.get("tick")[1]
    assert first.config.options["issuer"] == "https://a.example"
    with provider.db.session() as s:  # the same updated_at, another configuration
        row = s.get(UpstreamProvider, "tick")
        row.options = {"issuer": "https://b.example"}
    assert registry.get("tick")[1].config.options["issuer"] == "https://b.example"


def test_the_provider_list_is_kept_for_cache_seconds_and_a_local_write_is_seen_at_once(provider, monkeypatch):
    from idbroker.federation import registry as module
    from idbroker.federation.registry import UpstreamRegistry

    clock = [1000.0]
    monkeypatch.setattr(module.time, "monotonic", lambda: clock[0])
    here = UpstreamRegistry(provider.db, b"k" * 32, cache_seconds=5)
    elsewhere = UpstreamRegistry(provider.db, b"k" * 32, cache_seconds=5)  # another worker
    assert here.list() == [] and elsewhere.list() == []
    reads = []
    monkeypatch.setattr(provider.db, "session", _counting(provider.db.session, reads))
    here.add("corp", "stub", "Corp")
    assert [r.id for r in here.list()] == ["corp"]  # this worker's own write: at once
    assert elsewhere.list() == []  # another worker's: within cache_seconds
    clock[0] += 5
    assert [r.id for r in elsewhere.list()] == ["corp"]
    read_before = len(reads)
    for _ in range(3):
        assert [r.id for r in elsewhere.list()] == ["corp"] and elsewhere.for_domain("a@b.example") is None
    assert len(reads) == read_before  # kept: no read per sign-in
    here.remove("corp")
    assert here.list() == []


def _counting(session: Any, reads: list[bool]) -> Any:
    def counted(*args: Any, **kwargs: Any) -> Any:
        reads.append(True)
        return session(*args, **kwargs)
    return counted
