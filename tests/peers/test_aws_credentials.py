"""POST /credentials/aws against a test STS of our own (sts_server.py) that verifies the web
identity token against the broker's JWKS and applies per-role trust rules, on both stores: role
rules, preferred roles, the default, duration bounds, every STS error, and the bearer token's
checks (expired, revoked, no scope)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select
from sts_server import StsError, TestSts
from support import ISSUER

from idbroker.audit import AWS_CREDENTIALS_ISSUED, AWS_CREDENTIALS_REFUSED
from idbroker.store.models import AuditEvent, User

DEV = "arn:aws:iam::123456789012:role/dev"
OPS = "arn:aws:iam::123456789012:role/ops"
READ = "arn:aws:iam::123456789012:role/read-only"
SCOPE = "openid aws.credentials"


@pytest.fixture
def jwks_source() -> dict[str, Any]:
    return {}


@pytest.fixture
def sts(jwks_source: dict[str, Any]) -> Iterator[TestSts]:
    server = TestSts(ISSUER, lambda: jwks_source["get"]())
    for role in (DEV, OPS, READ):
        server.trust[role] = {"aud": "sts.amazonaws.com", "amr": "pwd"}
    server.max_duration[OPS] = 7200
    yield server
    server.stop()


@pytest.fixture
def settings_overrides(sts: TestSts) -> dict[str, Any]:
    return {"aws_sts_endpoint": sts.url, "credentials_max_duration": 7200,
            "aws_session_tags": ["email=email", "team=groups"], "aws_transitive_tag_keys": ["team"]}


@pytest.fixture
def alice(provider, user, http, jwks_source):  # type: ignore[no-untyped-def]
    jwks_source["get"] = lambda: http.get("/.well-known/jwks.json").json()   # what STS fetches
    with provider.db.session() as s:
        s.get(User, user.id).groups = ["dev", "eu"]
    return user


@pytest.fixture
def cli_client(register):  # type: ignore[no-untyped-def]
    return register("cli", scopes=["openid", "aws.credentials"])


def token_for(http, flow, client, scope: str = SCOPE) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    q, verifier = flow.code_flow(client, scope=scope)
    r = http.post("/oauth2/token", auth=client.basic, data={
        "grant_type": "authorization_code", "code": q["code"], "redirect_uri": client.redirect_uri,
        "code_verifier": verifier})
    assert r.status_code == 200, r.text
    return r.json()


def ask(http, access_token: str, **form: str):  # type: ignore[no-untyped-def]
    return http.post("/credentials/aws", headers={"Authorization": f"Bearer {access_token}"}, data=form or None)


@pytest.fixture
def token(http, flow, cli_client, alice) -> str:  # type: ignore[no-untyped-def]
    return token_for(http, flow, cli_client)["access_token"]


def test_rule_by_group_gives_credentials_from_sts(http, provider, alice, token, sts):
    provider.role_rules.add(OPS, claim="groups", match="ops", priority=1)
    provider.role_rules.add(DEV, claim="groups", match="dev", priority=5)
    provider.role_rules.add(READ, priority=9)
    r = ask(http, token)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["Version"] == 1 and body["RoleArn"] == DEV
    assert body["AccessKeyId"].startswith("ASIA") and body["SecretAccessKey"] and body["SessionToken"]
    assert body["Expiration"].endswith("Z") and r.headers["cache-control"] == "no-store"
    call = sts.calls[-1]
    claims = call["claims"]
    assert claims["iss"] == ISSUER and claims["aud"] == "sts.amazonaws.com" and claims["sub"] == alice.sub
    assert claims["amr"] == ["pwd"] and claims["exp"] - claims["iat"] == 300 and claims["jti"]
    assert claims["https://aws.amazon.com/tags"] == {
        "principal_tags": {"email": ["alice@example.com"], "team": ["dev:eu"]}, "transitive_tag_keys": ["team"]}
    assert call["duration"] == 3600 and call["session_name"] == alice.sub[:64]
    with provider.db.session(write=False) as s:
        events = list(s.scalars(select(AuditEvent).where(AuditEvent.kind == AWS_CREDENTIALS_ISSUED)))
    assert len(events) == 1 and events[0].user_id == alice.id and events[0].detail["role_arn"] == DEV
    assert body["SecretAccessKey"] not in str(events[0].detail) and token not in str(events[0].detail)


def test_first_match_by_priority_and_client_limits(http, provider, token, sts):
    provider.role_rules.add(OPS, claim="email", match="alice@example.com", clients=["other"], priority=1)
    provider.role_rules.add(READ, claim="email", match="alice@example.com", priority=2)
    provider.role_rules.add(DEV, claim="groups", match="dev", priority=3)
    assert ask(http, token).json()["RoleArn"] == READ          # OPS is for another client only


def test_preferred_role_allowed_only_when_a_matching_rule_names_it(http, provider, token, sts):
    provider.role_rules.add(DEV, claim="groups", match="dev", priority=1)
    provider.role_rules.add(OPS, claim="groups", match="eu", priority=2)
    provider.role_rules.add(READ, claim="groups", match="finance", priority=3)
    provider.role_rules.set_default(READ)
    r = ask(http, token, role_arn=OPS)
    assert r.status_code == 200 and r.json()["RoleArn"] == OPS and sts.calls[-1]["role"] == OPS
    calls = len(sts.calls)
    r = ask(http, token, role_arn=READ)                         # only the default and a rule she does not match
    assert r.status_code == 403 and r.json()["error"] == "access_denied"
    assert len(sts.calls) == calls                              # STS never asked
    r = ask(http, token, role_arn="not-an-arn")
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    with provider.db.session(write=False) as s:
        refused = list(s.scalars(select(AuditEvent).where(AuditEvent.kind == AWS_CREDENTIALS_REFUSED)))
    assert [e.detail["role_arn"] for e in refused] == [READ, "not-an-arn"]


def test_default_role_and_deny(http, provider, token, sts):
    provider.role_rules.add(OPS, claim="groups", match="ops")
    r = ask(http, token)                                        # initial state: deny
    assert r.status_code == 403 and r.json()["error"] == "access_denied" and not sts.calls
    provider.role_rules.set_default(READ)
    assert ask(http, token).json()["RoleArn"] == READ
    provider.role_rules.set_default(None)
    assert ask(http, token).status_code == 403


@pytest.mark.parametrize("seconds, status", [("899", 400), ("7201", 400), ("abc", 400), ("-1", 400),
                                              ("900", 200), ("7200", 200)])
def test_duration_bounds(http, provider, token, sts, seconds, status):
    provider.role_rules.add(OPS)
    r = ask(http, token, duration_seconds=seconds)
    assert r.status_code == status, r.text
    if status == 200:
        assert sts.calls[-1]["duration"] == int(seconds)
    else:
        assert r.json()["error"] == "invalid_request" and not sts.calls


def test_duration_above_the_roles_maximum_is_invalid_request(http, provider, token, sts):
    provider.role_rules.add(DEV)                                 # MaxSessionDuration 3600 at STS
    r = ask(http, token, duration_seconds="7200")
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"


@pytest.mark.parametrize("error, status, answer", [
    (StsError(403, "AccessDenied", "no"), 403, "access_denied"),
    (StsError(400, "InvalidIdentityToken", "no"), 403, "access_denied"),
    (StsError(400, "ExpiredToken", "old"), 403, "access_denied"),
    (StsError(403, "IDPRejectedClaim", "no"), 403, "access_denied"),
    (StsError(400, "Throttling", "Rate exceeded"), 503, "temporarily_unavailable"),
    (StsError(503, "ServiceUnavailable", "down", "Receiver"), 503, "temporarily_unavailable"),
    (StsError(400, "IDPCommunicationError", "cannot reach the JWKS"), 503, "temporarily_unavailable"),
])
def test_sts_errors_are_mapped(http, provider, token, sts, error, status, answer):
    provider.role_rules.add(DEV)
    sts.fail_next = error
    r = ask(http, token)
    assert r.status_code == status and r.json()["error"] == answer, r.text
    assert "AccessKeyId" not in r.text


def test_sts_checks_fail_as_aws_would(http, provider, token, sts):
    provider.role_rules.add(DEV)
    sts.trust[DEV] = {"amr": "mfa"}                              # trust policy wants MFA
    assert ask(http, token).json()["error"] == "access_denied"
    sts.trust[DEV] = {}
    sts.audience = "another-audience"                             # IdP registered with another audience
    r = ask(http, token)
    assert r.status_code == 403 and "identity token" in r.json()["error_description"]


def test_sts_unreachable_is_503(http, provider, token, sts):
    provider.role_rules.add(DEV)
    sts.stop()
    r = ask(http, token)
    assert r.status_code == 503 and r.json()["error"] == "temporarily_unavailable" and r.headers["retry-after"]


@pytest.mark.parametrize("misbehaviour", ["hang", "garbage"])
def test_a_hung_or_garbled_sts_is_503(http, provider, token, sts, monkeypatch, misbehaviour):
    from idbroker.credentials import aws

    monkeypatch.setattr(aws, "STS_READ_TIMEOUT", 1)
    provider.role_rules.add(DEV)
    sts.misbehave, sts.hang_seconds = misbehaviour, 3
    r = ask(http, token)
    assert r.status_code == 503 and r.json()["error"] == "temporarily_unavailable" and r.headers["retry-after"]
    assert "Traceback" not in r.text
    sts.misbehave = None
    assert ask(http, token).status_code == 200  # and once STS answers again, credentials come


def test_bearer_token_checks(http, provider, flow, register, alice, cli_client, token, sts):
    provider.role_rules.add(DEV)
    r = http.post("/credentials/aws")
    assert r.status_code == 401 and r.headers["www-authenticate"] == 'Bearer realm="idbroker"'
    r = ask(http, token + "x")
    assert r.status_code == 401 and 'error="invalid_token"' in r.headers["www-authenticate"]
    expired = provider.access_tokens.issue(client_id="cli", sub=alice.sub, scope=SCOPE, ttl=-5).token
    r = ask(http, expired)
    assert r.status_code == 401 and r.json()["error"] == "invalid_token"
    # the same client, a token without the scope
    narrow = token_for(http, flow, cli_client, scope="openid")["access_token"]
    r = ask(http, narrow)
    assert r.status_code == 403 and r.json()["error"] == "insufficient_scope"
    assert 'scope="aws.credentials"' in r.headers["www-authenticate"]
    # a client not allowed the scope never gets it in a token; nor does a forged-looking one count
    other = register("web", scopes=["openid"])
    foreign = provider.access_tokens.issue(client_id=other.client_id, sub=alice.sub, scope=SCOPE, ttl=60).token
    r = ask(http, foreign)
    assert r.status_code == 403 and r.json()["error"] == "insufficient_scope"
    # revoked
    assert ask(http, token).status_code == 200
    assert http.post("/oauth2/revoke", auth=cli_client.basic, data={"token": token}).status_code == 200
    r = ask(http, token)
    assert r.status_code == 401 and r.json()["error"] == "invalid_token"
    assert not [c for c in sts.calls if c["claims"]["sub"] != alice.sub]


def test_disabled_user_gets_nothing(http, provider, alice, token, sts):
    provider.role_rules.add(DEV)
    provider.users.set_disabled(alice.email)
    r = ask(http, token)
    assert r.status_code == 401 and r.json()["error"] == "invalid_token" and not sts.calls


def test_unknown_parameter_and_discovery(http, provider, token, sts):
    r = ask(http, token, role="x")
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    assert "aws.credentials" in http.get("/.well-known/openid-configuration").json()["scopes_supported"]


# -- the credential_process helper against a real `idbroker serve` ---------------------------------
def _sign_in_through_pages(url: str, callback_prefix: str) -> None:
    """What the user does in the browser: the login form, the consent page, then the redirect
    to the helper's loopback listener."""
    import httpx
    from broker_process import PASSWORD as BROKER_PASSWORD
    from support import form_fields

    with httpx.Client(timeout=30.0, follow_redirects=False) as browser:
        r = browser.get(url)
        for _ in range(12):
            if r.status_code in (302, 303):
                location = str(r.headers["location"])
                target = location if location.startswith("http") else str(r.url.join(location))
                r = browser.get(target)
                if target.startswith(callback_prefix):
                    assert r.status_code == 200 and b"close this window" in r.content
                    return
            elif 'autocomplete="current-password"' in r.text:
                r = browser.post(str(r.url.join("/login")), data={**form_fields(r.text), "username": "bob@example.com",
                                                                   "password": BROKER_PASSWORD})
            elif 'action="/consent"' in r.text:
                r = browser.post(str(r.url.join("/consent")), data={**form_fields(r.text), "decision": "allow"})
            else:
                raise AssertionError(f"unexpected page {r.status_code}: {r.text[:500]}")
    raise AssertionError("the sign-in never reached the helper")


def test_botocore_credential_process_gets_credentials_from_the_test_sts(tmp_path, monkeypatch):
    import stat
    import subprocess

    import botocore.session
    import httpx
    from broker_process import IDBROKER, Broker
    from broker_process import PASSWORD as BROKER_PASSWORD

    data_dir = tmp_path / "broker"
    data_dir.mkdir()
    broker = Broker("sqlite", data_dir, None)
    sts = TestSts(broker.issuer, lambda: httpx.get(f"{broker.issuer}/.well-known/jwks.json", timeout=5).json())
    sts.trust[DEV] = {"amr": "pwd"}
    broker.env.update(IDBROKER_AWS_STS_ENDPOINT=sts.url, IDBROKER_ARGON2_MEMORY_KIB="8192")
    helper = None
    try:
        broker.cli("users", "add", "--email", "bob@example.com", "--password", BROKER_PASSWORD)
        broker.cli("clients", "add", "--client-id", "aws-cli", "--public", "--redirect-uri",
                   "http://127.0.0.1/callback", "--scope", "openid", "--scope", "offline_access",
                   "--scope", "aws.credentials")
        broker.cli("roles", "add", "--role-arn", DEV)
        broker.start()
        cache = tmp_path / "cache"
        command = [str(IDBROKER), "credentials", "aws", "--issuer", broker.issuer, "--client-id", "aws-cli",
                   "--cache-dir", str(cache), "--no-browser", "--timeout", "60"]
        # First run: the browser step (the loopback listener, PKCE), driven through the real pages.
        helper = subprocess.Popen(command, env=broker.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  stdin=subprocess.DEVNULL)
        line = helper.stderr.readline()
        assert "http" in line, line
        url = line[line.index("http"):].strip()
        query = dict(httpx.URL(url).params)
        assert query["code_challenge_method"] == "S256" and query["redirect_uri"].startswith("http://127.0.0.1:")
        _sign_in_through_pages(url, query["redirect_uri"])
        out, err = helper.communicate(timeout=60)
        assert helper.returncode == 0, err
        first = json.loads(out)
        assert first["Version"] == 1 and first["RoleArn"] == DEV and first["AccessKeyId"].startswith("ASIA")
        [cached] = list(cache.iterdir())
        assert stat.S_IMODE(cached.stat().st_mode) == 0o600 and "refresh_token" in cached.read_text()

        # Then botocore runs the helper as credential_process: the cached refresh token, no browser.
        config = tmp_path / "aws-config"
        config.write_text("[profile dev]\ncredential_process = " + " ".join(command[:-2] + ["--timeout", "1"]) + "\n")
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
        for key, value in broker.env.items():
            if key.startswith("IDBROKER_"):
                monkeypatch.setenv(key, value)
        calls = len(sts.calls)
        creds = botocore.session.Session(profile="dev").get_credentials().get_frozen_credentials()
        assert creds.access_key.startswith("ASIA") and creds.access_key != first["AccessKeyId"]
        assert creds.secret_key and creds.token and len(sts.calls) == calls + 1
        assert sts.calls[-1]["claims"]["sub"] == sts.calls[0]["claims"]["sub"]
    finally:
        if helper is not None and helper.poll() is None:
            helper.kill()
            helper.wait()
        broker.stop()
        sts.stop()


def test_helper_failures_are_one_line(tmp_path):
    import subprocess

    from broker_process import IDBROKER, free_port

    done = subprocess.run([str(IDBROKER), "credentials", "aws", "--issuer", f"http://127.0.0.1:{free_port()}",
                           "--client-id", "aws-cli", "--cache-dir", str(tmp_path), "--no-browser"],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("error: cannot reach") and len(done.stderr.strip().splitlines()) == 1


def test_wiring_against_motos_sts(provider, alice, sts):
    """Moto's STS checks nothing, but its answers are the real service's shapes: the issuer's
    boto3 call, unsigned, parses them into the same credential_process JSON."""
    from moto.server import ThreadedMotoServer
    from support import free_port, run_coroutine

    from idbroker.credentials.aws import AwsCredentials
    from idbroker.credentials.base import CredentialRequest, Subject
    from idbroker.credentials.roles import claims_of
    from idbroker.settings import CredentialSettings

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        provider.role_rules.add(DEV, claim="groups", match="dev")
        issuer = AwsCredentials(provider.role_rules, provider.keys,
                                CredentialSettings(aws_sts_endpoint=f"http://127.0.0.1:{port}"), issuer=ISSUER)
        with provider.db.session(write=False) as s:
            claims = claims_of(s.get(User, alice.id))
        subject = Subject(sub=alice.sub, client_id="cli", scopes=frozenset({"aws.credentials"}),
                          claims={**claims, "amr": ["pwd"]})
        issued = run_coroutine(issuer.issue(CredentialRequest(subject, options={"duration_seconds": "900"})))
    finally:
        server.stop()
    body = issued.body
    assert body["Version"] == 1 and body["RoleArn"] == DEV and body["AccessKeyId"] and body["SessionToken"]
    assert body["Expiration"].endswith("Z") and 0 < issued.expires_in <= 900
