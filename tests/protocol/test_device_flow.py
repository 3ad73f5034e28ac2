"""The device authorization grant (RFC 8628): endpoint, /device page, polling answers."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update
from starlette.testclient import TestClient
from support import ISSUER, PASSWORD, form_fields, make_settings

from idbroker.app import create_app
from idbroker.oauth2.device_codes import GRANT_DEVICE_CODE, USER_CODE_ALPHABET, DeviceCodes
from idbroker.provider import Provider
from idbroker.store.db import utcnow
from idbroker.store.models import DeviceCode


@pytest.fixture
def tv(register: Any) -> Any:
    return register("tv", token_endpoint_auth_method="none", redirect_uris=[], post_logout_redirect_uris=[],
                    grant_types=[GRANT_DEVICE_CODE, "refresh_token"], response_types=[])


def start(http: Any, scope: str = "openid profile offline_access") -> dict[str, Any]:
    answer = http.post("/oauth2/device_authorization", data={"client_id": "tv", "scope": scope})
    assert answer.status_code == 200, answer.text
    return answer.json()


def poll(http: Any, device_code: str) -> Any:
    return http.post("/oauth2/token", data={"grant_type": GRANT_DEVICE_CODE, "device_code": device_code,
                                            "client_id": "tv"})


def allow_lookups(provider: Any) -> None:
    """Polls come faster than the interval in a test: forget the last poll."""
    with provider.db.session() as s:
        s.execute(update(DeviceCode).values(last_polled_at=None))


def login_next(page: str) -> str:
    """The `next` of the sign-in form (the page's language selector has one too)."""
    form = re.search(r'action="/login"[^>]*>(.*?)</form>', page, re.S).group(1)  # type: ignore[union-attr]
    return re.search(r'name="next" value="([^"]*)"', form).group(1)  # type: ignore[union-attr]


def enter_code(http: Any, flow: Any, user_code: str, decision: str = "allow") -> Any:
    page = flow.follow(http.get("/device", params={"user_code": user_code}))
    if 'autocomplete="current-password"' in page.text:  # the one door, then back to /device
        back = login_next(page.text)
        assert back.startswith("/device?user_code="), back
        page = flow.follow(http.post("/login", data={**form_fields(page.text), "next": html.unescape(back),
                                                     "username": "alice@example.com", "password": PASSWORD}))
    shown = user_code.upper().replace(" ", "-")
    assert 'action="/device"' in page.text and shown in page.text, page.text
    hidden = dict(re.findall(r'type="hidden" name="(\w+)" value="([^"]*)"', page.text))
    return http.post("/device", data={"csrf_token": hidden["csrf_token"], "user_code": hidden["user_code"],
                                      "decision": decision})


def test_device_flow_end_to_end(http: Any, flow: Any, provider: Any, tv: Any, user: Any) -> None:
    started = start(http)
    code = started["user_code"]
    assert re.fullmatch(f"[{USER_CODE_ALPHABET}]{{4}}-[{USER_CODE_ALPHABET}]{{4}}", code)
    assert started["verification_uri"] == ISSUER + "/device"
    assert started["verification_uri_complete"] == f"{ISSUER}/device?user_code={code}"
    assert started["interval"] == 5 and started["expires_in"] == 600
    pending = poll(http, started["device_code"])
    assert pending.status_code == 400 and pending.json()["error"] == "authorization_pending"
    done = enter_code(http, flow, code.lower().replace("-", " "))  # typed loosely
    assert done.status_code == 200 and "return to your device" in done.text
    allow_lookups(provider)
    tokens = poll(http, started["device_code"])
    assert tokens.status_code == 200, tokens.text
    body = tokens.json()
    assert {"access_token", "id_token", "refresh_token"} <= set(body)
    info = http.get("/oauth2/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert info.status_code == 200 and info.json()["given_name"] == "Alice"
    # The device code is used up.
    assert poll(http, started["device_code"]).json()["error"] == "invalid_grant"


def test_polling_too_fast_slows_down(http: Any, tv: Any) -> None:
    started = start(http)
    assert poll(http, started["device_code"]).json()["error"] == "authorization_pending"
    fast = poll(http, started["device_code"])
    assert fast.status_code == 400 and fast.json()["error"] == "slow_down"
    assert "10 seconds" in fast.json()["error_description"]  # the interval grew by 5


def test_denied(http: Any, flow: Any, provider: Any, tv: Any, user: Any) -> None:
    started = start(http)
    done = enter_code(http, flow, started["user_code"], "deny")
    assert done.status_code == 200
    allow_lookups(provider)
    assert poll(http, started["device_code"]).json()["error"] == "access_denied"


def test_expired_device_code(http: Any, flow: Any, provider: Any, tv: Any, user: Any) -> None:
    started = start(http)
    with provider.db.session() as s:
        s.execute(update(DeviceCode).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert poll(http, started["device_code"]).json()["error"] == "expired_token"
    page = http.get("/device", params={"user_code": started["user_code"]})
    assert page.status_code == 400 and 'aria-invalid="true"' in page.text


def test_unknown_code_and_rate_limit(http: Any, tv: Any) -> None:
    page = http.get("/device")
    assert page.status_code == 200 and 'name="user_code"' in page.text and 'for="user_code"' in page.text
    for _ in range(20):
        assert http.get("/device", params={"user_code": "BBBB-BBBB"}).status_code == 400
    limited = http.get("/device", params={"user_code": "BBBB-BBBB"})
    assert limited.status_code == 429 and "Retry-After" in limited.headers


def test_confirming_counts_against_the_limit(http: Any, flow: Any, tv: Any, user: Any) -> None:
    """Posting guessed codes straight to the confirmation is limited like typing them."""
    started = start(http)
    page = flow.follow(http.get("/device", params={"user_code": started["user_code"]}))
    back = login_next(page.text)
    page = flow.follow(http.post("/login", data={**form_fields(page.text), "next": html.unescape(back),
                                                 "username": "alice@example.com", "password": PASSWORD}))
    csrf = re.search(r'name="csrf_token" value="([^"]*)"', page.text).group(1)  # type: ignore[union-attr]
    answers = [http.post("/device", data={"csrf_token": csrf, "user_code": "BBBB-BBBB", "decision": "allow"})
               for _ in range(20)]
    assert {a.status_code for a in answers} == {400, 429}
    assert answers[-1].status_code == 429


def test_device_page_is_localised(http: Any, tv: Any) -> None:
    page = http.get("/device", headers={"Accept-Language": "fr"})
    assert page.status_code == 200 and "Connect a device" not in page.text


def test_client_without_the_grant_is_refused(http: Any, register: Any) -> None:
    web = register("web")
    answer = http.post("/oauth2/device_authorization", auth=web.basic, data={"scope": "openid"})
    assert answer.status_code == 400 and answer.json()["error"] == "unauthorized_client"


def test_another_client_cannot_redeem(http: Any, register: Any, tv: Any) -> None:
    started = start(http)
    register("tv2", token_endpoint_auth_method="none", redirect_uris=[], post_logout_redirect_uris=[],
             grant_types=[GRANT_DEVICE_CODE], response_types=[])
    answer = http.post("/oauth2/token", data={"grant_type": GRANT_DEVICE_CODE, "device_code": started["device_code"],
                                              "client_id": "tv2"})
    assert answer.json()["error"] == "invalid_grant"


def test_discovery_names_the_endpoint(http: Any) -> None:
    meta = http.get("/.well-known/openid-configuration").json()
    assert meta["device_authorization_endpoint"] == ISSUER + "/oauth2/device_authorization"
    assert GRANT_DEVICE_CODE in meta["grant_types_supported"]


def test_a_store_lost_after_the_answering_poll_still_answers_tokens(provider: Any, relayed: Any, tv: Any, user: Any,
                                                                     tmp_path: Any, monkeypatch: Any) -> None:
    """The poll that carries tokens uses the device code up, issues the refresh token and reads the
    user in one transaction: once it commits, answering needs nothing more from the store (keys
    loaded before serve, keys/keystore.py). A connection lost right after it must not leave the
    device with a used-up code and no tokens (PostgreSQL: its connections through a relay)."""
    relay, db = relayed
    node = Provider(make_settings(tmp_path), db=db)
    started = provider.device_codes.start(provider.clients.get("tv"), "openid offline_access")
    assert provider.device_codes.decide(started["user_code"], allow=True, user=user, auth_time=utcnow(), amr=["pwd"],
                                        acr=None, sid=None, idp=None, grant_ttl=3600)
    answer = DeviceCodes.poll

    def answer_then_lose_the_store(self: DeviceCodes, *args: Any) -> Any:
        answered = answer(self, *args)
        relay.refusing = True
        relay.cut()
        return answered

    monkeypatch.setattr(DeviceCodes, "poll", answer_then_lose_the_store)
    with TestClient(create_app(provider=node), base_url=ISSUER) as http:
        node.keys.sign({})  # the keys, loaded once
        tokens = poll(http, started["device_code"])
    assert tokens.status_code == 200, tokens.text
    assert {"access_token", "id_token", "refresh_token"} <= set(tokens.json())
    assert provider.grants.find_refresh_token(tokens.json()["refresh_token"]) is not None
