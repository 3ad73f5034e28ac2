"""The contract of every extension table (ARCHITECTURE.md: one Protocol + one table per extension
point): the table is typed with its Protocol, each entry is a class filed under its own key and
has what the Protocol asks for, and the composition root builds every entry of the tables it
serves."""

from __future__ import annotations

import inspect
import types
import typing
from typing import Any

import pytest
from support import make_settings

from idbroker.accounts import passwords
from idbroker.credentials import base as credentials
from idbroker.federation import base as federation
from idbroker.federation import kinds as upstream_kinds
from idbroker.mfa import factors
from idbroker.mfa.base import Factor
from idbroker.migration import base as migration
from idbroker.oauth2 import grants
from idbroker.oauth2.grants.base import GrantHandler
from idbroker.provider import Provider

# (module, table name, the Protocols its values are classes of, the class attribute that is the key)
TABLES: list[tuple[types.ModuleType, str, tuple[type, ...], str]] = [
    (factors, "FACTORS", (Factor,), "kind"),
    (grants, "GRANTS", (GrantHandler,), "grant_type"),
    (upstream_kinds, "UPSTREAMS", (federation.Upstream, federation.PasswordAuthority), "kind"),
    (migration, "SOURCES", (migration.MigrationSource,), "kind"),
    (credentials, "ISSUERS", (credentials.CredentialIssuer,), "token_type"),
    (passwords, "HASHERS", (passwords.LegacyHasher,), "scheme"),
]

ENTRIES = [pytest.param(protocols, key_attr, key, cls, id=f"{name}[{key}]")
           for module, name, protocols, key_attr in TABLES for key, cls in getattr(module, name).items()]


def members(protocol: type) -> tuple[set[str], set[str]]:
    """(the class attributes, the methods) a Protocol declares."""
    methods = {n for n, v in vars(protocol).items() if not n.startswith("_") and inspect.isfunction(v)}
    return set(vars(protocol).get("__annotations__", {})), methods


def satisfies(cls: type, protocol: type) -> bool:
    attributes, methods = members(protocol)
    return all(hasattr(cls, a) for a in attributes) and all(callable(getattr(cls, m, None)) for m in methods)


@pytest.mark.parametrize(("module", "name", "protocols", "key_attr"), TABLES, ids=[t[1] for t in TABLES])
def test_table_is_typed_with_its_protocols(module: types.ModuleType, name: str, protocols: tuple[type, ...],
                                           key_attr: str) -> None:
    hint = typing.get_type_hints(module)[name]
    assert typing.get_origin(hint) is dict
    key_type, value_type = typing.get_args(hint)
    assert key_type is str
    classes = typing.get_args(value_type) if typing.get_origin(value_type) in (typing.Union, types.UnionType) \
        else (value_type,)
    assert all(typing.get_origin(c) is type for c in classes)
    assert {typing.get_args(c)[0] for c in classes} == set(protocols)


@pytest.mark.parametrize(("protocols", "key_attr", "key", "cls"), ENTRIES)
def test_entry_is_a_class_under_its_own_key(protocols: tuple[type, ...], key_attr: str, key: str, cls: Any) -> None:
    assert inspect.isclass(cls)
    assert getattr(cls, key_attr) == key
    assert any(satisfies(cls, p) for p in protocols), f"{cls.__name__} lacks what {protocols} ask for"


@pytest.mark.parametrize(("table", "built"), [(factors.FACTORS, "factors"), (grants.GRANTS, "grant_handlers")])
def test_composition_root_builds_every_entry(tmp_path: Any, table: dict[str, type], built: str) -> None:
    instances = getattr(Provider(make_settings(tmp_path)), built)
    assert set(instances) == set(table)
    assert all(isinstance(instances[key], cls) for key, cls in table.items())
