"""Structured logs (issue 13): with log_format = "json" every line of the broker's log is one JSON
object with the request's fields; access lines are on; and no line carries the password, the code,
a token, a cookie or the client secret - checked on the lines of a full login and token exchange.
X-Request-Id is taken when plausible, made up otherwise, and returned."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest
from starlette.testclient import TestClient
from support import ISSUER, PASSWORD, Flow, form_fields

from idbroker.web import request_log


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"log_format": "json", "log_level": "DEBUG"}


@pytest.fixture
def lines(app: Any):  # type: ignore[no-untyped-def]
    """The JSON lines the broker's loggers write while the test runs (the handler json mode installs)."""
    stream = io.StringIO()
    logger = logging.getLogger("idbroker")
    saved = logger.handlers[:], logger.level, logger.propagate
    for handler in saved[0]:
        logger.removeHandler(handler)
    request_log.configure("DEBUG", "json")
    handler = next(h for h in logger.handlers if getattr(h, "_idbroker", False))
    handler.setStream(stream)  # type: ignore[attr-defined]
    yield lambda: [line for line in stream.getvalue().splitlines() if line]
    for h in logger.handlers[:]:
        logger.removeHandler(h)
    for h in saved[0]:
        logger.addHandler(h)
    logger.setLevel(saved[1])
    logger.propagate = saved[2]


def test_a_login_and_token_exchange_leave_no_secret_in_the_log(app, register, user, lines):
    client = register()
    with TestClient(app, base_url=ISSUER, follow_redirects=False) as http:
        flow = Flow(http)
        q, verifier = flow.code_flow(client, scope="openid profile offline_access")
        cookies = dict(http.cookies)
        token = http.post("/oauth2/token", auth=client.basic, data={
            "grant_type": "authorization_code", "code": q["code"], "redirect_uri": client.redirect_uri,
            "code_verifier": verifier}, headers={"X-Request-Id": "req-123.abc_DEF"})
        assert token.status_code == 200, token.text
        assert token.headers["x-request-id"] == "req-123.abc_DEF"
        body = token.json()
        http.get("/oauth2/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"})
        http.post("/oauth2/token", auth=client.basic, data={"grant_type": "refresh_token",
                                                            "refresh_token": body["refresh_token"]})
        # A replayed code and a failed sign-in are logged too.
        http.post("/oauth2/token", auth=client.basic, data={
            "grant_type": "authorization_code", "code": q["code"], "redirect_uri": client.redirect_uri,
            "code_verifier": verifier})
        http.cookies.clear()
        page = http.get("/login")
        http.post("/login", data={**form_fields(page.text), "username": "alice@example.com",
                                  "password": PASSWORD + "!"})

    out = lines()
    assert out, "nothing was logged"
    records = [json.loads(line) for line in out]  # every line is one JSON object
    for record in records:
        assert {"time", "level", "logger", "message"} <= record.keys(), record
    access = [r for r in records if r["logger"] == "idbroker.access"]
    assert access, "access lines are on by default with log_format json"
    token_line = next(r for r in access if r["route"] == "/oauth2/token" and r["request_id"] == "req-123.abc_DEF")
    assert token_line["status"] == 200 and token_line["method"] == "POST" and token_line["latency_ms"] >= 0
    assert token_line["client_id"] == client.client_id
    assert any(r["route"] == "/oauth2/authorize" for r in access)
    signed_in = next(r for r in access if r["route"] == "/login" and r["status"] == 303)
    assert signed_in["sub"] == user.sub

    secrets = [PASSWORD, PASSWORD + "!", q["code"], verifier, body["access_token"], body["refresh_token"],
               body["id_token"], client.secret, *cookies.values()]
    text = "\n".join(out)
    for secret in secrets:
        assert secret and secret not in text, f"a secret is in the log: {secret[:12]}..."
    assert "bearer " not in text.lower() and "basic " not in text.lower()  # no Authorization header
    assert "code_challenge" not in text and "?" not in "".join(r["route"] for r in access)


@pytest.mark.parametrize("incoming", ["x" * 129, "bad id", "a\nb", "<script>", ""])
def test_an_implausible_request_id_is_replaced(http, incoming):
    r = http.get("/healthz", headers={"X-Request-Id": incoming} if incoming else {})
    returned = r.headers["x-request-id"]
    assert returned != incoming and len(returned) == 32 and returned.isalnum()


def test_a_plausible_request_id_is_kept(http):
    assert http.get("/healthz", headers={"X-Request-Id": "a" * 128}).headers["x-request-id"] == "a" * 128
    assert http.get("/nowhere", headers={"X-Request-Id": "lb-1.2_3"}).headers["x-request-id"] == "lb-1.2_3"


def test_log_format_is_checked():
    from idbroker.settings import SettingsError, load_settings

    assert load_settings(env={"IDBROKER_LOG_FORMAT": "json"}).observability.access_log_on
    assert not load_settings(env={"IDBROKER_LOG_FORMAT": "text"}).observability.access_log_on
    with pytest.raises(SettingsError, match="log_format"):
        load_settings(env={"IDBROKER_LOG_FORMAT": "xml"})


def test_a_served_broker_writes_json_lines(tmp_path):
    """`idbroker serve` with IDBROKER_LOG_FORMAT=json: after the command's own start-up lines, every
    line - Granian's and the broker's - is a JSON object; access lines carry the request id."""
    import sys
    from pathlib import Path

    import httpx

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "peers"))
    from broker_process import Broker

    broker = Broker("sqlite", tmp_path, None)
    broker.env["IDBROKER_LOG_FORMAT"] = "json"
    broker.start()
    try:
        with httpx.Client(timeout=5.0) as http:
            r = http.get(f"{broker.issuer}/.well-known/openid-configuration", headers={"X-Request-Id": "served-1"})
            assert r.headers["x-request-id"] == "served-1"
    finally:
        broker.stop()
    lines = broker.log_path.read_text().splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("{"))
    records = []
    for line in lines[first:]:
        assert line.startswith("{"), line
        records.append(json.loads(line))
    assert any(r.get("request_id") == "served-1" and r.get("route") == "/.well-known/openid-configuration"
               and r.get("status") == 200 for r in records), records
    assert any(r["logger"] == "_granian" for r in records)
