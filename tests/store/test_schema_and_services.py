"""Storage behaviour on both stores: migrations match the models, services keep their invariants."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from support import PASSWORD

from idbroker.accounts.passwords import Passwords
from idbroker.accounts.users import UserError, UserService
from idbroker.clients.metadata import ClientMetadata, InvalidClientMetadata
from idbroker.clients.registry import ClientExists
from idbroker.store.models import Base, Client, User


def test_migrations_match_models(database):
    with database.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_client_secret_is_stored_as_keyed_hash(provider):
    row, secret = provider.clients.create(ClientMetadata(client_id="c1", redirect_uris=["https://a.example/cb"]))
    assert secret and len(secret) >= 43
    with provider.db.session(write=False) as s:
        stored = s.get(Client, "c1").secret_hash
    assert secret not in stored and len(stored) == 64
    assert provider.clients.verify_secret(row, secret) and not provider.clients.verify_secret(row, secret + "x")


def test_duplicate_client_and_invalid_update_change_nothing(provider):
    provider.clients.create(ClientMetadata(client_id="c1", redirect_uris=["https://a.example/cb"]))
    with pytest.raises(ClientExists):
        provider.clients.create(ClientMetadata(client_id="c1", redirect_uris=["https://b.example/cb"]))
    with pytest.raises(InvalidClientMetadata):
        provider.clients.update("c1", {"redirect_uris": ["http://evil.example/cb"]})
    assert provider.clients.list()[0].redirect_uris == ["https://a.example/cb"]


def test_public_client_has_no_secret(provider):
    row, secret = provider.clients.create(ClientMetadata(client_id="spa", redirect_uris=["https://a.example/cb"],
                                                         token_endpoint_auth_method="none"))
    assert secret is None and row.secret_hash is None and row.public


def test_users_have_opaque_stable_sub_and_argon2id(provider):
    u = provider.users.create("Bob@Example.com", PASSWORD)
    assert u.email == "bob@example.com" and len(u.sub) >= 16 and "bob" not in u.sub.lower()
    assert u.password_hash.startswith("$argon2id$")
    assert provider.users.authenticate("BOB@example.com", PASSWORD).sub == u.sub
    assert provider.users.authenticate("bob@example.com", "wrong password") is None
    with pytest.raises(UserError):
        provider.users.create("bob@example.com", PASSWORD)
    with pytest.raises(UserError):
        provider.users.create("not-an-email", PASSWORD)
    with pytest.raises(UserError):
        provider.users.create("c@example.com", "short")
    assert len(provider.users.list()) == 1


def test_password_rehashed_when_parameters_rise(provider):
    provider.users.create("carol@example.com", PASSWORD)
    stronger = UserService(provider.db, Passwords(memory_kib=12 * 1024, time_cost=2, parallelism=1))
    assert stronger.authenticate("carol@example.com", PASSWORD) is not None
    with provider.db.session(write=False) as s:
        stored = s.query(User).one().password_hash
    assert "m=12288,t=2,p=1" in stored
    assert stronger.authenticate("carol@example.com", PASSWORD) is not None


def test_sessions_end(provider):
    u = provider.users.create("dan@example.com", PASSWORD)
    cookie, session = provider.sessions.create(u, ["pwd"], None)
    assert provider.sessions.lookup(cookie)[0].sid == session.sid
    assert provider.sessions.lookup("x" * 43) is None
    provider.sessions.end(session.sid)
    assert provider.sessions.lookup(cookie) is None
