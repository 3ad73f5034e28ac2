"""`clients add|update` with the issue-15 names for PAR, request objects, DPoP and devices:
--require-par, --require-signed-request-object, --dpop-bound, --grant-type ...:device_code."""

from __future__ import annotations

import json

DEVICE = "urn:ietf:params:oauth:grant-type:device_code"



def test_sender_options_are_stored_and_changed(cli):
    out = json.loads(cli("clients", "add", "--client-id", "web", "--redirect-uri", "https://web.example/cb",
                         "--require-par", "--require-signed-request-object", "--dpop-bound", "--json").output)
    assert out["require_par"] and out["require_signed_request_object"] and out["dpop_bound"]
    out = json.loads(cli("clients", "update", "web", "--no-require-par", "--no-dpop-bound", "--json").output)
    assert not out["require_par"] and not out["dpop_bound"] and out["require_signed_request_object"]


def test_device_client(cli):
    out = json.loads(cli("clients", "add", "--client-id", "tv", "--public", "--grant-type", DEVICE,
                         "--grant-type", "refresh_token", "--json").output)
    assert out["grant_types"] == [DEVICE, "refresh_token"] and out["public"]


def test_unknown_grant_is_one_line(cli):
    result = cli("clients", "add", "--client-id", "x", "--grant-type", "urn:nope", ok=False)
    assert result.exit_code == 1 and "Traceback" not in result.output
