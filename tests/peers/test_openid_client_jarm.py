"""panva's openid-client against a running ``idbroker serve``: JWT-secured authorization
responses (JARM) with ``useJwtResponseMode``; the library verifies the response JWT (signature
from the JWKS, iss, aud, exp, state), redeems the code, and reads an error sent as JARM
(``node/rp_jarm.mjs`` prints a summary)."""

from __future__ import annotations

import json
import subprocess

import pytest
from broker_process import NODE_DIR, PASSWORD, Broker

pytestmark = pytest.mark.peers

RP = NODE_DIR / "rp_jarm.mjs"


def test_jarm_with_openid_client(node: dict[str, str], broker: Broker) -> None:
    web = broker.add_client("jarm-web", "https://rp.example/cb", "https://rp.example/bye", first_party=True,
                            id_token_alg=None)
    env = {**broker.env, "IDBROKER_TEST_NODE_MODULES": node["node_modules"], "RP_ISSUER": broker.issuer,
           "RP_CLIENT_ID": "jarm-web", "RP_CLIENT_SECRET": web["client_secret"],
           "RP_REDIRECT_URI": "https://rp.example/cb", "RP_USERNAME": broker.user["email"], "RP_PASSWORD": PASSWORD}
    done = subprocess.run([node["node"], str(RP)], env=env, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL, cwd=RP.parent)
    assert done.returncode == 0, f"--- stderr\n{done.stderr}\n--- stdout\n{done.stdout}"
    summary = json.loads(done.stdout)
    assert {"jwt", "query.jwt", "fragment.jwt", "form_post.jwt"} <= set(summary["discovery"]["modes"])
    assert summary["returned_params"] == ["response"]
    assert summary["has_sub"] is True
    assert summary["pages"] == ["login"]
    assert summary["error"] == "invalid_scope"
