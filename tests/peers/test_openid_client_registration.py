"""Dynamic client registration (RFC 7591) with panva's openid-client against a running
``idbroker serve`` with ``registration = token``: openid-client's own `dynamicClientRegistration`
(discovery, then the registration request with an initial access token from
``idbroker clients registration-token``), the RFC 7592 read with the registration access token,
and the registered client through the whole code + PKCE flow of ``node/rp_flow.mjs``.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import httpx
import pytest
from broker_process import IDBROKER, NODE_DIR, Broker
from conftest import running_broker
from test_openid_client import assert_core_flow, run_rp

pytestmark = pytest.mark.peers

REGISTER = NODE_DIR / "register_client.mjs"
RP = "https://rp.example"


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def registering_broker(request: pytest.FixtureRequest, node: dict[str, str],
                       tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A broker with `registration = token` (the module-wide `broker` has registration off)."""
    store = request.param
    yield from running_broker(store, tmp_path_factory.mktemp(f"registering-{store}"),
                              {"IDBROKER_REGISTRATION": "token"})


def initial_token(broker: Broker) -> str:
    done = subprocess.run([str(IDBROKER), "clients", "registration-token", "--max-uses", "1"], env=broker.env,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def register(node: dict[str, str], broker: Broker, token: str | None) -> subprocess.CompletedProcess[str]:
    env = {**broker.env, "IDBROKER_TEST_NODE_MODULES": node["node_modules"], "RP_ISSUER": broker.issuer,
           "RP_REDIRECT_URI": f"{RP}/cb", "RP_POST_LOGOUT_REDIRECT_URI": f"{RP}/bye"}
    if token:
        env["RP_INITIAL_ACCESS_TOKEN"] = token
    return subprocess.run([node["node"], str(REGISTER)], env=env, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL, cwd=REGISTER.parent)


def test_openid_client_registers_and_signs_in(node: dict[str, str], registering_broker: Broker) -> None:
    broker = registering_broker
    refused = register(node, broker, None)  # token mode: no initial access token, no client
    assert refused.returncode != 0 and "invalid_token" in refused.stderr, refused.stderr
    done = register(node, broker, initial_token(broker))
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["registration_endpoint"] == broker.issuer + "/oauth2/register"
    registered = summary["client"]
    assert registered["client_secret"] and registered["redirect_uris"] == [f"{RP}/cb"]
    assert registered["id_token_signed_response_alg"] == "RS256"
    read = httpx.get(registered["registration_client_uri"],
                     headers={"Authorization": f"Bearer {registered['registration_access_token']}"})
    assert read.status_code == 200 and read.json()["client_id"] == registered["client_id"]
    rp = run_rp(node, broker, registered, f"{RP}/cb", f"{RP}/bye", "RS256")
    assert_core_flow(rp, broker, registered["client_id"], "RS256", first_party=False)
