"""Test vectors from the RFCs."""

import pytest

from idbroker.oauth2 import pkce
from idbroker.oauth2.errors import InvalidGrantError, InvalidRequestError
from idbroker.oidc.id_token import half_hash


def test_rfc7636_appendix_b_vector():
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert pkce.s256(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    pkce.check_verifier("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", verifier)


def test_verifier_length_limits():
    short = "a" * 42
    with pytest.raises(InvalidGrantError):
        pkce.check_verifier(pkce.s256(short), short)
    ok = "a" * 43
    pkce.check_verifier(pkce.s256(ok), ok)


def test_plain_method_is_refused():
    with pytest.raises(InvalidRequestError):
        pkce.check_challenge("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "plain", required=False)
    with pytest.raises(InvalidRequestError):  # method defaults to plain (RFC 7636 §4.3)
        pkce.check_challenge("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", None, required=False)


def test_at_hash_vector_from_oidc_core_appendix_a3():
    # OIDC Core A.3: access_token "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y" → at_hash for SHA-256
    assert half_hash("jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y", "RS256") == "77QmUPtjPfzWtF2AnpK9RQ"


def test_pkce_values_with_a_trailing_newline_are_refused():
    import pytest

    from idbroker.oauth2.errors import OAuth2Error
    from idbroker.oauth2.pkce import check_challenge, check_verifier, s256

    verifier = "v" * 43
    with pytest.raises(OAuth2Error):
        check_challenge(s256(verifier) + "\n", "S256", required=True)
    with pytest.raises(OAuth2Error):
        check_verifier(s256(verifier), verifier + "\n")


def test_loopback_hosts():
    from idbroker.security import is_loopback_host

    for host in ("localhost", "LOCALHOST", "127.0.0.1", "127.1.2.3", "::1", "[::1]"):
        assert is_loopback_host(host), host
    for host in (None, "", "example.com", "10.0.0.1", "localhost.example.com", "127.0.0.1.nip.io", "0.0.0.0"):
        assert not is_loopback_host(host), host
