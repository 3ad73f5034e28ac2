"""What a node still does while its store's connections are lost under it (PostgreSQL: a restart,
connections terminated, a failover). The one-time writers' lost answers are in
test_one_time_writer.py."""

from __future__ import annotations

import logging
import threading

import pytest
from joserfc import jws
from sqlalchemy.exc import OperationalError

from idbroker.keys.keystore import KeyStore


def kid_of(token: str) -> str:
    return jws.extract_compact(token.encode()).headers()["kid"]


def test_the_signing_keys_loaded_before_serve_while_the_store_cannot_be_read(provider, relayed, caplog):
    """The keys are reloaded every cache_seconds. A reload that finds the store gone keeps the keys
    it has: work already done must still be answered - a refresh token rotated a moment before
    needs its new tokens signed, or its client presents it again and the grant is revoked as a
    reuse. Keys never loaded cannot serve: that fails. Once the store answers, the next reload sees
    what changed meanwhile."""
    relay, db = relayed
    keys = KeyStore(db, provider.settings.secret_bytes(), cache_seconds=0)  # reloads on every use
    relay.refusing = True
    with pytest.raises(OperationalError):
        keys.sign({"sub": "never loaded"})
    relay.refusing = False
    signed = keys.sign({"sub": "before"})
    relay.refusing = True
    relay.cut()
    with caplog.at_level(logging.WARNING, "idbroker.keys"):
        during = keys.sign({"sub": "during"})
        assert keys.jwks()["keys"] and keys.verify(during).claims["sub"] == "during"
    assert kid_of(during) == kid_of(signed)
    assert "the signing keys could not be reloaded" in caplog.text
    rotated = provider.keys.rotate("ES256", immediately=True)  # by another node, meanwhile
    relay.refusing = False
    assert kid_of(keys.sign({"sub": "after"})) == rotated.kid


def test_a_reload_held_by_a_hanging_store_keeps_no_other_request_waiting(provider, relayed):
    """A store that hangs (a partition, a stopped server) holds a reload until its timeouts end it.
    Meanwhile the worker's other requests sign and verify with the keys loaded before, instead of
    queueing behind the reload."""
    relay, db = relayed
    keys = KeyStore(db, provider.settings.secret_bytes(), cache_seconds=0)
    before = keys.sign({"sub": "before"})
    relay.stall()
    reloading = threading.Thread(target=keys.sign, args=({"sub": "reloading"},), daemon=True)
    reloading.start()
    assert relay.held.wait(10), "the reload never reached the store"
    answered: list[str] = []
    meanwhile = threading.Thread(target=lambda: answered.append(keys.sign({"sub": "meanwhile"})), daemon=True)
    meanwhile.start()
    meanwhile.join(10)
    assert answered, "a request waited for the reload held by the store"
    assert kid_of(answered[0]) == kid_of(before) and keys.verify(answered[0]).claims["sub"] == "meanwhile"
    relay.resume()
    reloading.join(10)
    assert not reloading.is_alive()
