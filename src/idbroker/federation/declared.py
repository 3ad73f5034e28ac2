"""Upstream providers declared in the configuration file (``[[upstreams]]``), applied to the
registry when the broker starts (`idbroker serve`), so that a deployment can keep its providers in
version control next to the rest of its settings.

Each entry is one provider: ``id``, ``kind`` (a kind or a preset), ``name``, optionally ``domains``,
``trust_email``, ``trust_mfa``, ``logo_uri``, a ``secrets`` table (stored encrypted, as
``idp add --secret``), and every other key is an option of the kind (as ``idp add --option``).
A declared provider is created when missing and otherwise set to exactly what is declared (options
not declared any more are removed; its account links are kept). Providers added with the CLI and not
declared are left alone. A declared entry that its kind refuses stops the start with one line.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .presets import expand
from .registry import InvalidUpstream, UpstreamRegistry

RESERVED = ("id", "kind", "name", "domains", "trust_email", "trust_mfa", "logo_uri", "secrets")


def apply(registry: UpstreamRegistry, entries: Iterable[Mapping[str, Any]]) -> list[str]:
    """What was done, one line per provider; InvalidUpstream (naming the entry) for a bad one."""
    done = []
    for entry in entries:
        provider_id = str(entry.get("id", ""))
        try:
            done.append(_apply_one(registry, provider_id, entry))
        except InvalidUpstream as exc:
            raise InvalidUpstream(f"[[upstreams]] {provider_id!r}: {exc}") from None
    return done


def _apply_one(registry: UpstreamRegistry, provider_id: str, entry: Mapping[str, Any]) -> str:
    declared_kind = str(entry.get("kind", ""))
    name = str(entry.get("name") or provider_id)
    options = {k: v for k, v in entry.items() if k not in RESERVED}
    secrets = entry.get("secrets") or {}
    if not isinstance(secrets, Mapping):
        raise InvalidUpstream("secrets: expected a table of NAME = \"value\"")
    secrets = {str(k): str(v) for k, v in secrets.items()}
    domains = [str(d) for d in entry.get("domains") or []]
    flags = {"trust_email": bool(entry.get("trust_email", False)), "trust_mfa": bool(entry.get("trust_mfa", False))}
    logo_uri = entry.get("logo_uri")
    row = registry.row(provider_id)
    if row is None:
        registry.add(provider_id, declared_kind, name, options=options, secrets=secrets,
                     logo_uri=str(logo_uri) if logo_uri else None, domains=domains, **flags)
        return f"provider {provider_id}: added from the configuration"
    kind, expanded = expand(declared_kind, options)
    if kind != row.kind:
        raise InvalidUpstream(f"its kind is {row.kind!r} in the database and {kind!r} here; remove it first "
                              f"(idbroker idp remove {provider_id})")
    gone_options = {k: "" for k in row.options if k not in expanded}
    gone_secrets = {k: "" for k in registry.secret_names(row) if k not in secrets}
    registry.update(provider_id, name=name, options={**gone_options, **expanded},
                    secrets={**gone_secrets, **secrets}, logo_uri=str(logo_uri or ""), domains=domains, **flags)
    return f"provider {provider_id}: updated from the configuration"
