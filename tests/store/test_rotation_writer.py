"""Group commit of refresh-token rotations (oauth2/rotation_writer.py), on both stores."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from idbroker.oauth2.rotation_writer import RotationWriter, _Rotation
from idbroker.security import random_token, sha256_hex
from idbroker.store.db import utcnow
from idbroker.store.models import RefreshToken


@pytest.fixture
def grant(provider, register, user):
    register("app")
    return provider.grants.create_grant(client_id="app", user_id=user.id, sid=None, scope="openid offline_access",
                                        auth_time=utcnow(), amr=["pwd"], acr=None, ttl=86400)


def successor(grant_id: str) -> dict:
    now = utcnow()
    return {"token_hash": sha256_hex(random_token(32)), "grant_id": grant_id, "client_id": "app",
            "scope": "openid", "created_at": now, "expires_at": now + timedelta(hours=1), "used_at": None}


def stored(provider, token_hash: str) -> RefreshToken | None:
    with provider.db.session(write=False) as s:
        return s.get(RefreshToken, token_hash)


def test_in_one_batch_the_first_presentation_wins(provider, grant):
    token, _ = provider.grants.create_refresh_token(grant, scope="openid", ttl=3600)
    first, again, unknown = (_Rotation(sha256_hex(token), successor(grant.id)),
                             _Rotation(sha256_hex(token), successor(grant.id)),
                             _Rotation(sha256_hex("never issued"), successor(grant.id)))
    winners = RotationWriter(provider.db)._write([first, again, unknown])
    assert winners == {id(first)}
    assert stored(provider, first.presented).used_at is not None
    assert stored(provider, first.successor["token_hash"]) is not None
    assert stored(provider, again.successor["token_hash"]) is None
    assert stored(provider, unknown.successor["token_hash"]) is None


def test_concurrent_rotations_of_different_tokens_all_land(provider, grant):
    tokens = [provider.grants.create_refresh_token(grant, scope="openid", ttl=3600)[0] for _ in range(24)]
    writer = RotationWriter(provider.db)
    rows = {t: successor(grant.id) for t in tokens}
    results: dict[str, bool] = {}
    barrier = threading.Barrier(len(tokens))

    def go(token: str) -> None:
        barrier.wait()
        results[token] = writer.rotate(sha256_hex(token), rows[token])

    threads = [threading.Thread(target=go, args=(t,)) for t in tokens]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(results[t] for t in tokens)
    for t in tokens:
        assert stored(provider, sha256_hex(t)).used_at is not None
        assert stored(provider, rows[t]["token_hash"]) is not None


def test_a_failed_batch_writes_nothing(provider, grant):
    token, _ = provider.grants.create_refresh_token(grant, scope="openid", ttl=3600)
    other, _ = provider.grants.create_refresh_token(grant, scope="openid", ttl=3600)
    good = _Rotation(sha256_hex(token), successor(grant.id))
    clash = _Rotation(sha256_hex(other), {**good.successor})  # two successors with one primary key
    with pytest.raises(Exception):  # noqa: B017 - the store's own integrity error
        RotationWriter(provider.db)._write([good, clash])
    assert stored(provider, good.presented).used_at is None  # rolled back
    assert stored(provider, sha256_hex(other)).used_at is None


def test_the_failure_reaches_the_request_and_the_writer_goes_on(provider, grant):
    token, _ = provider.grants.create_refresh_token(grant, scope="openid", ttl=3600)
    writer = RotationWriter(provider.db)
    with pytest.raises(Exception):  # noqa: B017 - a foreign key the store enforces
        writer.rotate(sha256_hex(token), successor("no-such-grant"))
    assert stored(provider, sha256_hex(token)).used_at is None
    assert writer.rotate(sha256_hex(token), successor(grant.id)) is True
