"""Upstream providers and migration sources declared in the configuration file ([[upstreams]],
[[migration.sources]]) are applied to the database when the broker starts: created, then kept
exactly as declared, secrets encrypted, CLI-added ones left alone. Against a real store (SQLite and
PostgreSQL). A refused entry stops `idbroker serve` with one line: test_operator_mistakes.py."""

from __future__ import annotations

import json

from idbroker.federation import declared as declared_upstreams
from idbroker.migration import declared as declared_sources
from idbroker.settings import load_settings
from idbroker.store.models import LegacySource, UpstreamProvider

CONFIG = """
[[upstreams]]
id = "corp-ad"
kind = "ldap"
name = "Corp AD"
url = "ldap://127.0.0.1:3890"
bind_dn = "cn=svc,dc=corp,dc=example"
base_dn = "dc=corp,dc=example"
domains = ["corp.example"]
secrets = { bind_password = "s3cret-bind" }

[[migration.sources]]
id = "old-app"
kind = "webhook"
url = "http://127.0.0.1:9/verify"
secret = "s3cret-hook"
position = 1
"""


def test_declared_entries_are_created_then_kept_as_declared(provider, tmp_path):
    config = tmp_path / "idbroker.toml"
    config.write_text(CONFIG)
    settings = load_settings(str(config))
    done = declared_upstreams.apply(provider.upstreams, settings.upstreams) + \
        declared_sources.apply(provider.migration_sources, settings.migration_sources)
    assert done == ["provider corp-ad: added from the configuration",
                    "migration source old-app: added from the configuration"]
    with provider.db.session(write=False) as s:
        upstream = s.get(UpstreamProvider, "corp-ad")
        source = s.get(LegacySource, "old-app")
        stored = json.dumps([upstream.options, upstream.secrets, source.options, source.secrets])
    assert "s3cret" not in stored and upstream.domains == ["corp.example"]
    assert provider.upstreams.config(upstream).options["bind_password"] == "s3cret-bind"

    provider.upstreams.add("cli-added", "ldap", "Other", options={"url": "ldaps://dc.example", "bind_dn": "cn=x",
                                                                  "base_dn": "dc=x"}, secrets={"bind_password": "p"})
    # The file changes: an option removed, another changed; applying again makes the rows match it.
    config.write_text(CONFIG.replace('base_dn = "dc=corp,dc=example"\n', 'base_dn = "ou=people,dc=corp,dc=example"\n')
                      .replace('domains = ["corp.example"]\n', ""))
    settings = load_settings(str(config))
    assert declared_upstreams.apply(provider.upstreams, settings.upstreams) == [
        "provider corp-ad: updated from the configuration"]
    row = provider.upstreams.row("corp-ad")
    assert row.options["base_dn"] == "ou=people,dc=corp,dc=example" and row.domains == []
    assert provider.upstreams.row("cli-added") is not None  # not declared: left alone
