"""The DPoP / request-object jti store is shared by every worker and node (two services on one
database stand for two nodes), and housekeeping purges what PAR, DPoP and the device flow leave."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey

from idbroker.oauth2.dpop import DpopProofs, InvalidDpopProofError
from idbroker.oauth2.used_jtis import UsedJtis
from idbroker.store.db import utcnow
from idbroker.store.housekeeping import purge
from idbroker.store.models import Client, DeviceCode, PushedRequest, UsedJti

URL = "https://idp.example/oauth2/token"


def proof(key: ECKey) -> str:
    return jwt.encode({"typ": "dpop+jwt", "alg": "ES256", "jwk": key.as_dict(private=False)},
                      {"jti": uuid.uuid4().hex, "htm": "POST", "htu": URL, "iat": int(time.time())}, key)


def test_a_proof_replayed_on_another_node_is_refused(provider: Any) -> None:
    node_a, node_b = DpopProofs(UsedJtis(provider.db), None), DpopProofs(UsedJtis(provider.db), None)
    key = ECKey.generate_key("P-256")
    once = proof(key)
    assert node_a.check(once, "POST", URL) == key.thumbprint()
    with pytest.raises(InvalidDpopProofError, match="already used"):
        node_b.check(once, "POST", URL)
    assert node_b.check(proof(key), "POST", URL) == key.thumbprint()


def test_purge_removes_expired_rows(provider: Any, register: Any) -> None:
    register("app")
    now = utcnow()
    with provider.db.session() as s:
        assert s.get(Client, "app") is not None
        for name, delta in (("old", -10), ("live", 60)):
            s.add(UsedJti(key=name, expires_at=now + timedelta(seconds=delta)))
            s.add(PushedRequest(id=name, client_id="app", params={}, expires_at=now + timedelta(seconds=delta)))
            s.add(DeviceCode(device_code_hash=name, user_code=name.upper(), client_id="app", scope="openid",
                             status="pending", grant_id=None, interval=5, last_polled_at=None, created_at=now,
                             expires_at=now + timedelta(seconds=delta)))
    deleted = purge(provider.db, 365)
    assert deleted["used_jtis"] == deleted["pushed_requests"] == deleted["device_codes"] == 1
    with provider.db.session() as s:
        assert s.get(UsedJti, "live") and s.get(PushedRequest, "live") and s.get(DeviceCode, "live")
