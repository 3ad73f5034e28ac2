"""panva's openid-client against a running ``idbroker serve``: pushed authorization requests
with DPoP-bound tokens (token, userinfo, refresh) and the device authorization grant, the user
code typed on /device (``node/rp_advanced.mjs`` drives both and prints a summary)."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
from broker_process import NODE_DIR, PASSWORD, Broker

pytestmark = pytest.mark.peers

RP = NODE_DIR / "rp_advanced.mjs"
DEVICE = "urn:ietf:params:oauth:grant-type:device_code"


def test_par_dpop_and_device_flow(node: dict[str, str], broker: Broker) -> None:
    web = broker.add_client("adv-web", "https://rp.example/cb", "https://rp.example/bye", first_party=False,
                            id_token_alg=None)
    broker.cli("clients", "add", "--client-id", "adv-tv", "--public", "--grant-type", DEVICE,
               "--grant-type", "refresh_token")
    env = {**broker.env, "IDBROKER_TEST_NODE_MODULES": node["node_modules"], "RP_ISSUER": broker.issuer,
           "RP_CLIENT_ID": "adv-web", "RP_CLIENT_SECRET": web["client_secret"],
           "RP_REDIRECT_URI": "https://rp.example/cb", "RP_DEVICE_CLIENT_ID": "adv-tv",
           "RP_USERNAME": broker.user["email"], "RP_PASSWORD": PASSWORD}
    done = subprocess.run([node["node"], str(RP)], env=env, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL, cwd=RP.parent)
    assert done.returncode == 0, f"--- stderr\n{done.stderr}\n--- stdout\n{done.stdout}"
    summary = json.loads(done.stdout)
    assert summary["discovery"]["par"] == broker.issuer + "/oauth2/par"
    assert summary["discovery"]["device"] == broker.issuer + "/oauth2/device_authorization"
    assert "ES256" in summary["discovery"]["dpop_algs"]
    assert summary["par_request_uri"].startswith("urn:ietf:params:oauth:request_uri:")
    assert summary["pages"] == ["login", "consent"]
    assert summary["token_type"] == "dpop" and summary["refreshed_token_type"] == "dpop"
    assert summary["userinfo"] == {"sub_matches": True, "email": broker.user["email"]}
    assert re.fullmatch(r"[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}", summary["user_code"])
    assert summary["pages_after_device"] == ["device"]  # already signed in: straight to the confirmation
    assert summary["device_page_done"] is True
    assert summary["device"]["sub_matches"] is True
