"""`clients add|update` with the standards options of issue 15 (the names operators rely on):
--response-type "code id_token", --subject-type, --sector-identifier-uri, --frontchannel-logout-uri,
--userinfo-alg, and RS256 as the ID-token default; mistakes are one line and exit 1."""

from __future__ import annotations

import json

import pytest


def test_standards_options_are_stored(cli):
    out = json.loads(cli("clients", "add", "--client-id", "web", "--redirect-uri", "https://web.example/cb",
                         "--response-type", "code", "--response-type", "code id_token",
                         "--subject-type", "pairwise", "--userinfo-alg", "RS256",
                         "--frontchannel-logout-uri", "https://web.example/fcl", "--json").output)
    assert out["id_token_signed_response_alg"] == "RS256"  # registered none: RS256
    assert out["response_types"] == ["code", "code id_token"] and "implicit" in out["grant_types"]
    assert out["subject_type"] == "pairwise" and out["userinfo_signed_response_alg"] == "RS256"
    assert out["frontchannel_logout_uri"] == "https://web.example/fcl"
    out = json.loads(cli("clients", "update", "web", "--userinfo-alg", "none", "--subject-type", "public",
                         "--frontchannel-logout-uri", "", "--id-token-alg", "ES256", "--json").output)
    assert out["userinfo_signed_response_alg"] is None and out["subject_type"] == "public"
    assert out["frontchannel_logout_uri"] is None and out["id_token_signed_response_alg"] == "ES256"


@pytest.mark.parametrize(("args", "message"), [
    (["--subject-type", "secret"], "subject_type must be public or pairwise"),
    (["--userinfo-alg", "HS256"], "userinfo_signed_response_alg must be RS256 or ES256"),
    (["--frontchannel-logout-uri", "https://other.example/fcl"], "frontchannel_logout_uri"),
    (["--subject-type", "pairwise", "--sector-identifier-uri", "http://127.0.0.1:9/none.json"],
     "sector_identifier_uri"),
])
def test_mistakes_are_one_line(cli, args, message):
    r = cli("clients", "add", "--client-id", "bad", "--redirect-uri", "https://web.example/cb", *args, ok=False)
    assert r.exit_code == 1 and message in r.output and "Traceback" not in r.output
