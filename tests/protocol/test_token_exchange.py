"""RFC 8693 token exchange at the token endpoint, through HTTP (SQLite and PostgreSQL): policy per
client (audiences, scopes, grant type, confidential clients only), the subject's revocation and
user, delegation (`act`), the requested token type, and the audit trail."""

from __future__ import annotations

import json

import pytest
from joserfc import jwt
from sqlalchemy import select, update

from idbroker.clients.metadata import ClientMetadata, InvalidClientMetadata
from idbroker.store.models import AuditEvent, Client

GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
AT = "urn:ietf:params:oauth:token-type:access_token"
IDT = "urn:ietf:params:oauth:token-type:id_token"
API = "https://api.example"
SCOPES = ["openid", "profile", "email", "offline_access", "orders.read", "orders.write"]


@pytest.fixture
def front(register):
    """The application the user signed in to: may exchange into the API and the backend client."""
    return register("front", first_party=True, scopes=SCOPES,
                    grant_types=["authorization_code", "refresh_token", "client_credentials", GRANT],
                    exchange_audiences=[API, "backend", "https://api2.example"])


@pytest.fixture
def backend(register):
    """A service (and relying party) the front exchanges into; itself allowed to exchange onward."""
    return register("backend", redirect_uris=["https://backend.example/cb"], first_party=True,
                    scopes=["openid", "profile", "orders.read"],
                    grant_types=["authorization_code", "client_credentials", GRANT],
                    exchange_audiences=["https://db.example"])


@pytest.fixture
def signed_in(http, flow, front, user):
    """The token response of alice's code flow at the front."""
    q, verifier = flow.code_flow(front, scope="openid profile email orders.read offline_access")
    r = http.post("/oauth2/token", auth=front.basic, data={
        "grant_type": "authorization_code", "code": q["code"], "redirect_uri": front.redirect_uri,
        "code_verifier": verifier})
    assert r.status_code == 200, r.text
    return r.json()


def exchange(http, client, **params):
    data = {"grant_type": GRANT, **params}
    if "subject_token" in params:
        data.setdefault("subject_token_type", AT)
    return http.post("/oauth2/token", auth=client.basic if client.secret else None,
                     data=data if client.secret else {**data, "client_id": client.client_id})


def claims_of(provider, token):
    return jwt.decode(token, provider.keys.public_keyset()).claims


def refused(response, error):
    assert response.status_code == 400, response.text
    assert response.json()["error"] == error, response.text
    assert "access_token" not in response.json()


def audit_rows(provider):
    with provider.db.session(write=False) as s:
        return [e.detail for e in s.scalars(select(AuditEvent).where(AuditEvent.kind == "token.exchanged")
                                            .order_by(AuditEvent.id))]


# -- allowed -------------------------------------------------------------------------------------
def test_access_token_exchanged_into_an_allowed_audience_with_narrowed_scope(http, provider, front, backend,
                                                                            signed_in, user):
    r = exchange(http, front, subject_token=signed_in["access_token"], audience=API, scope="orders.read")
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    # RFC 8693 §2.2.1: access_token, issued_token_type, token_type, expires_in, scope; no refresh token.
    assert body["issued_token_type"] == AT and body["token_type"] == "Bearer" and body["scope"] == "orders.read"
    assert 0 < body["expires_in"] <= 3600 and "refresh_token" not in body
    claims = claims_of(provider, body["access_token"])
    subject = claims_of(provider, signed_in["access_token"])
    assert claims["aud"] == API and claims["client_id"] == "front" and claims["sub"] == user.sub
    assert claims["scope"] == "orders.read" and "act" not in claims
    assert claims["exp"] <= subject["exp"]  # never outlives its subject
    # Introspection (by the API's client) shows the exchanged token's audience.
    seen = http.post("/oauth2/introspect", auth=backend.basic, data={"token": body["access_token"]}).json()
    assert seen["active"] is True and seen["aud"] == API and seen["scope"] == "orders.read"
    assert audit_rows(provider)[-1] == {"client_id": "front", "outcome": "issued", "subject_token_type": AT,
                                        "requested_token_type": AT, "audience": [API], "scope": "orders.read"}


def test_without_scope_the_subjects_scope_less_offline_access(http, provider, front, signed_in):
    body = exchange(http, front, subject_token=signed_in["access_token"], audience=API).json()
    assert body["scope"] == "openid profile email orders.read"


def test_repeated_audience_and_resource_are_all_in_aud(http, provider, front, signed_in):
    r = http.post("/oauth2/token", auth=front.basic, content=(
        f"grant_type={GRANT}&subject_token={signed_in['access_token']}&subject_token_type={AT}"
        "&audience=https%3A%2F%2Fapi.example&resource=https%3A%2F%2Fapi2.example&audience=backend"),
        headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200, r.text
    assert claims_of(provider, r.json()["access_token"])["aud"] == [API, "backend", "https://api2.example"]


def test_other_grants_still_refuse_a_repeated_parameter(http, register):
    svc = register("svc", redirect_uris=[], response_types=[], grant_types=["client_credentials"],
                   scopes=["orders.read"])
    r = http.post("/oauth2/token", auth=svc.basic, content=(
        "grant_type=client_credentials&resource=https%3A%2F%2Fa.example&resource=https%3A%2F%2Fb.example"),
        headers={"content-type": "application/x-www-form-urlencoded"})
    refused(r, "invalid_request")
    r = exchange(http, svc, subject_token="x", scope="a", **{"audience": API})
    refused(r, "unauthorized_client")


# -- policy ----------------------------------------------------------------------------------------
def test_an_audience_not_listed_for_the_client_is_invalid_target(http, provider, front, signed_in):
    refused(exchange(http, front, subject_token=signed_in["access_token"], audience="https://evil.example"),
            "invalid_target")
    # One unlisted target among listed ones refuses the whole request.
    refused(exchange(http, front, subject_token=signed_in["access_token"], audience=API,
                     resource="https://evil.example"), "invalid_target")
    refused(exchange(http, front, subject_token=signed_in["access_token"], resource="https://api.example#x"),
            "invalid_target")
    # RFC 8707 §2: a resource is an absolute URI, even when the same string is a listed audience.
    refused(exchange(http, front, subject_token=signed_in["access_token"], resource="backend"), "invalid_target")
    row = audit_rows(provider)[0]
    assert row["outcome"] == "refused" and row["error"] == "invalid_target" and row["client_id"] == "front"


def test_scope_is_never_widened(http, front, backend, signed_in):
    # The client may have orders.write, but the subject token does not.
    refused(exchange(http, front, subject_token=signed_in["access_token"], audience=API,
                     scope="orders.read orders.write"), "invalid_scope")
    # offline_access: no refresh token from an exchange.
    refused(exchange(http, front, subject_token=signed_in["access_token"], audience=API, scope="offline_access"),
            "invalid_scope")
    # The target (a registered client) does not allow email, though the subject and the client do.
    refused(exchange(http, front, subject_token=signed_in["access_token"], audience="backend", scope="email"),
            "invalid_scope")


def test_client_not_allowed_the_grant_is_unauthorized_client(http, register, signed_in):
    other = register("other", exchange_audiences=[API])  # listed audience, but not the grant type
    refused(exchange(http, other, subject_token=signed_in["access_token"], audience=API), "unauthorized_client")


def test_public_clients_cannot_exchange(http, provider, register, signed_in):
    """Decision: token exchange is for confidential clients only (RFC 8693 §5): registration
    refuses the grant for a public client, and the endpoint refuses a public client."""
    with pytest.raises(InvalidClientMetadata, match="public client cannot use token exchange"):
        ClientMetadata(client_id="spa", redirect_uris=["https://spa.example/cb"], token_endpoint_auth_method="none",
                       grant_types=["authorization_code", GRANT]).validate()
    spa = register("spa", token_endpoint_auth_method="none", exchange_audiences=[API])
    refused(exchange(http, spa, subject_token=signed_in["access_token"], audience=API), "unauthorized_client")
    # A row that has the grant all the same (written before the rule, or by hand) is refused too.
    with provider.db.session() as s:
        s.execute(update(Client).where(Client.client_id == "spa").values(grant_types=["authorization_code", GRANT]))
    provider.clients.forget("spa")
    refused(exchange(http, spa, subject_token=signed_in["access_token"], audience=API), "unauthorized_client")


def test_a_token_of_another_client_cannot_be_exchanged(http, register, signed_in):
    thief = register("thief", redirect_uris=[], response_types=[], grant_types=[GRANT], exchange_audiences=[API])
    refused(exchange(http, thief, subject_token=signed_in["access_token"], audience=API), "invalid_request")
    refused(exchange(http, thief, subject_token=signed_in["id_token"], subject_token_type=IDT, audience=API),
            "invalid_request")


# -- the subject token -----------------------------------------------------------------------------
def test_revoked_subject_is_refused(http, provider, front, backend, signed_in):
    exchanged = exchange(http, front, subject_token=signed_in["access_token"], audience=API).json()["access_token"]
    # Revoking the refresh token ends its grant: the subject access token, and what was exchanged from it.
    assert http.post("/oauth2/revoke", auth=front.basic, data={"token": signed_in["refresh_token"]}).status_code == 200
    r = exchange(http, front, subject_token=signed_in["access_token"], audience=API)
    refused(r, "invalid_request")  # RFC 8693 §2.2.2: an invalid subject token is invalid_request
    assert "revoked" in r.json()["error_description"]
    seen = http.post("/oauth2/introspect", auth=backend.basic, data={"token": exchanged}).json()
    assert seen == {"active": False}


def test_revoked_subject_access_token_is_refused(http, front, signed_in):
    assert http.post("/oauth2/revoke", auth=front.basic, data={"token": signed_in["access_token"]}).status_code == 200
    refused(exchange(http, front, subject_token=signed_in["access_token"], audience=API), "invalid_request")


def test_disabled_user_is_refused(http, provider, front, signed_in, user):
    provider.users.set_disabled(user.email)
    r = exchange(http, front, subject_token=signed_in["access_token"], audience=API)
    refused(r, "invalid_request")
    assert "no longer active" in r.json()["error_description"]
    refused(exchange(http, front, subject_token=signed_in["id_token"], subject_token_type=IDT, audience=API),
            "invalid_request")
    row = audit_rows(provider)[-1]
    assert row["outcome"] == "refused"


def test_expired_subject_is_refused(http, provider, front, user):
    expired_at = provider.access_tokens.issue(client_id="front", sub=user.sub, scope="openid", ttl=-5,
                                              grant_id=None, auth_time=0).token
    r = exchange(http, front, subject_token=expired_at, audience=API)
    refused(r, "invalid_request")
    assert "expired" in r.json()["error_description"]
    expired_id = provider.id_tokens.issue(client_id="front", alg="ES256", sub=user.sub, ttl=-5, auth_time=0)
    r = exchange(http, front, subject_token=expired_id, subject_token_type=IDT, audience=API)
    refused(r, "invalid_request")
    assert "expired" in r.json()["error_description"]


def test_the_new_token_never_outlives_its_subject(http, provider, front, user):
    short = provider.access_tokens.issue(client_id="front", sub=user.sub, scope="openid", ttl=60, auth_time=0)
    body = exchange(http, front, subject_token=short.token, audience=API).json()
    assert body["expires_in"] <= 60
    assert claims_of(provider, body["access_token"])["exp"] <= short.claims["exp"]


def test_id_token_as_subject(http, provider, front, signed_in, user):
    r = exchange(http, front, subject_token=signed_in["id_token"], subject_token_type=IDT, audience=API)
    assert r.status_code == 200, r.text
    claims = claims_of(provider, r.json()["access_token"])
    assert claims["sub"] == user.sub and claims["aud"] == API and claims["scope"] == "openid"
    # An ID token gives no authorization beyond openid.
    refused(exchange(http, front, subject_token=signed_in["id_token"], subject_token_type=IDT, audience=API,
                     scope="orders.read"), "invalid_scope")


def test_subject_token_type_must_match_and_be_supported(http, front, signed_in):
    refused(exchange(http, front, subject_token=signed_in["access_token"], audience=API,
                     subject_token_type="urn:ietf:params:oauth:token-type:saml2"), "invalid_request")
    # An access token presented as an ID token, and the other way round.
    refused(exchange(http, front, subject_token=signed_in["access_token"], subject_token_type=IDT, audience=API),
            "invalid_request")
    refused(exchange(http, front, subject_token=signed_in["id_token"], subject_token_type=AT, audience=API),
            "invalid_request")
    refused(exchange(http, front, subject_token="not.a.token", audience=API), "invalid_request")


def test_missing_parameters_are_invalid_request(http, front, signed_in):
    token = signed_in["access_token"]
    refused(exchange(http, front, audience=API), "invalid_request")  # no subject_token
    refused(http.post("/oauth2/token", auth=front.basic, data={"grant_type": GRANT, "subject_token": token,
                                                               "audience": API}), "invalid_request")  # no type
    refused(exchange(http, front, subject_token=token), "invalid_request")  # no audience or resource
    # RFC 8693 §2.1: actor_token_type is required with actor_token, and must not come without it.
    refused(exchange(http, front, subject_token=token, audience=API, actor_token=token), "invalid_request")
    refused(exchange(http, front, subject_token=token, audience=API, actor_token_type=AT), "invalid_request")
    refused(exchange(http, front, subject_token=token, audience=API,
                     requested_token_type="urn:ietf:params:oauth:token-type:refresh_token"), "invalid_request")


# -- delegation --------------------------------------------------------------------------------------
def client_token(http, client, scope="orders.read"):
    r = http.post("/oauth2/token", auth=client.basic, data={"grant_type": "client_credentials", "scope": scope})
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def test_delegation_puts_the_actor_in_act_and_nests_prior_actors(http, provider, front, backend, signed_in, user):
    actor = client_token(http, front)
    r = exchange(http, front, subject_token=signed_in["access_token"], audience="backend", scope="orders.read",
                 actor_token=actor, actor_token_type=AT)
    assert r.status_code == 200, r.text
    first = r.json()["access_token"]
    claims = claims_of(provider, first)
    assert claims["sub"] == user.sub and claims["act"] == {"sub": "front"} and claims["aud"] == "backend"
    assert audit_rows(provider)[-1]["actor"] == "front"
    # The backend, holding a token issued for it, exchanges it onward acting itself: the chain nests.
    r = exchange(http, backend, subject_token=first, audience="https://db.example",
                 actor_token=client_token(http, backend), actor_token_type=AT)
    assert r.status_code == 200, r.text
    second = claims_of(provider, r.json()["access_token"])
    assert second["act"] == {"sub": "backend", "act": {"sub": "front"}} and second["client_id"] == "backend"
    # Introspection shows the delegation.
    seen = http.post("/oauth2/introspect", auth=front.basic, data={"token": r.json()["access_token"]}).json()
    assert seen["active"] is True and seen["act"] == second["act"] and seen["aud"] == "https://db.example"
    # Exchanged again without an actor token, a delegated token stays delegated.
    r = exchange(http, backend, subject_token=first, audience="https://db.example")
    assert claims_of(provider, r.json()["access_token"])["act"] == {"sub": "front"}


def test_an_actor_token_that_is_itself_delegated_nests(http, provider, front, backend, signed_in):
    delegated = exchange(http, front, subject_token=signed_in["access_token"], audience="backend",
                         actor_token=client_token(http, front), actor_token_type=AT).json()["access_token"]
    own = client_token(http, backend)  # backend's own token as the subject, the delegated one as actor
    own_user = exchange(http, backend, subject_token=own, audience="https://db.example",
                        actor_token=delegated, actor_token_type=AT)
    refused(own_user, "invalid_request")  # a client's own token does not stand for a user
    # A user token for the backend with the delegated token as actor: the actor's act nests.
    r = exchange(http, backend, subject_token=delegated, audience="https://db.example",
                 actor_token=delegated, actor_token_type=AT)
    assert r.status_code == 200, r.text
    user_sub = claims_of(provider, delegated)["sub"]
    assert claims_of(provider, r.json()["access_token"])["act"] == {"sub": user_sub, "act": {"sub": "front"}}


def test_a_revoked_actor_token_is_refused(http, front, signed_in):
    actor = client_token(http, front)
    http.post("/oauth2/revoke", auth=front.basic, data={"token": actor})
    refused(exchange(http, front, subject_token=signed_in["access_token"], audience=API, actor_token=actor,
                     actor_token_type=AT), "invalid_request")


# -- requested token type ----------------------------------------------------------------------------
def test_id_token_requested_for_a_registered_client(http, provider, front, backend, signed_in, user):
    r = exchange(http, front, subject_token=signed_in["access_token"], audience="backend", scope="openid profile",
                 requested_token_type=IDT)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["issued_token_type"] == IDT and body["token_type"] == "N_A" and body["scope"] == "openid profile"
    claims = claims_of(provider, body["access_token"])
    assert claims["aud"] == "backend" and claims["azp"] == "front" and claims["sub"] == user.sub
    assert "auth_time" in claims
    # Not for an audience that is not a relying party, nor without openid.
    refused(exchange(http, front, subject_token=signed_in["access_token"], audience=API, requested_token_type=IDT),
            "invalid_request")
    refused(exchange(http, front, subject_token=signed_in["access_token"], audience="backend", scope="profile",
                     requested_token_type=IDT), "invalid_request")


# -- discovery and the CLI ---------------------------------------------------------------------------
def test_discovery_lists_the_grant(http):
    assert GRANT in http.get("/.well-known/openid-configuration").json()["grant_types_supported"]



def test_cli_sets_and_clears_the_exchange_audiences(cli):
    assert cli("clients", "add", "--client-id", "gw", "--redirect-uri", "https://gw.example/cb",
               "--grant-type", "authorization_code", "--grant-type", GRANT).exit_code == 0
    out = cli("clients", "update", "gw", "--exchange-audience", API, "--exchange-audience", "backend", "--json")
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["exchange_audiences"] == [API, "backend"]
    out = cli("clients", "update", "gw", "--no-exchange", "--json")
    assert json.loads(out.output)["exchange_audiences"] == []
    both = cli("clients", "update", "gw", "--no-exchange", "--exchange-audience", API, ok=False)
    assert both.exit_code == 1 and "exclude each other" in both.output and "Traceback" not in both.output
    bad = cli("clients", "update", "gw", "--exchange-audience", "has space", ok=False)
    assert bad.exit_code == 1 and "invalid exchange audience" in bad.output
    public = cli("clients", "add", "--client-id", "spa", "--public", "--redirect-uri", "https://spa.example/cb",
                 "--grant-type", "authorization_code", "--grant-type", GRANT, ok=False)
    assert public.exit_code == 1 and "public client cannot use token exchange" in public.output
