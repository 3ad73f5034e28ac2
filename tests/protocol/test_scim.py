"""SCIM 2.0 provisioning (RFC 7643 / RFC 7644) under /scim/v2, through HTTP with real
client_credentials tokens, on SQLite and PostgreSQL: discovery, the user lifecycle (with Entra ID's
and Okta's PATCH shapes), filters and paging, uniqueness, groups kept in step with User.groups and
the `groups` claim, If-Match, 401/403, and malformed input answered as SCIM errors."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from sqlalchemy import select
from support import PASSWORD, pkce_pair

from idbroker.store.models import AuditEvent, BrowserSession, User

BASE = "/scim/v2"
SCIM = "application/scim+json"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
CC = dict(grant_types=["client_credentials"], response_types=[], redirect_uris=[], post_logout_redirect_uris=[])


def token_for(http: Any, register: Any, client_id: str, scopes: list[str]) -> str:
    client = register(client_id, scopes=scopes, **CC)
    r = http.post("/oauth2/token", auth=client.basic,
                  data={"grant_type": "client_credentials", "scope": " ".join(scopes)})
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


@pytest.fixture
def scim(http: Any, register: Any) -> Any:
    """A client for /scim/v2 with an idbroker:scim token."""
    headers = {"Authorization": "Bearer " + token_for(http, register, "entra", ["idbroker:scim"])}

    class Client:
        def call(self, method: str, path: str, body: Any = None, **extra: Any) -> Any:
            kwargs: dict[str, Any] = {"headers": {**headers, **extra.pop("headers", {})}, **extra}
            if body is not None:
                kwargs["content"] = json.dumps(body)
                kwargs["headers"]["Content-Type"] = SCIM
            return http.request(method, BASE + path, **kwargs)

        def get(self, path: str, **extra: Any) -> Any:
            return self.call("GET", path, **extra)

        def post(self, path: str, body: Any, **extra: Any) -> Any:
            return self.call("POST", path, body, **extra)

        def put(self, path: str, body: Any, **extra: Any) -> Any:
            return self.call("PUT", path, body, **extra)

        def patch(self, path: str, ops: list[dict[str, Any]], **extra: Any) -> Any:
            return self.call("PATCH", path, {"schemas": [PATCH], "Operations": ops}, **extra)

        def delete(self, path: str, **extra: Any) -> Any:
            return self.call("DELETE", path, **extra)

    return Client()


def scim_error(r: Any, status: int, scim_type: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(SCIM)
    body = r.json()
    assert body["schemas"] == [ERROR] and body["status"] == str(status)
    if scim_type:
        assert body["scimType"] == scim_type
    return body


def new_user(email: str = "bjensen@example.com", **extra: Any) -> dict[str, Any]:
    return {"schemas": [USER], "userName": email, "externalId": "ext-" + email.split("@")[0],
            "name": {"givenName": "Barbara", "familyName": "Jensen"}, "displayName": "Babs Jensen",
            "emails": [{"value": email, "type": "work", "primary": True}], "active": True, **extra}


def test_discovery_endpoints(http: Any) -> None:
    config = http.get(f"{BASE}/ServiceProviderConfig")
    assert config.status_code == 200 and config.headers["content-type"].startswith(SCIM)
    body = config.json()
    assert body["patch"]["supported"] is True and body["filter"]["supported"] is True
    assert body["etag"]["supported"] is True and body["bulk"]["supported"] is False
    assert body["authenticationSchemes"][0]["type"] == "oauthbearertoken"
    types = http.get(f"{BASE}/ResourceTypes").json()
    assert {t["endpoint"] for t in types["Resources"]} == {"/Users", "/Groups"} and types["totalResults"] == 2
    assert http.get(f"{BASE}/ResourceTypes/User").json()["schema"] == USER
    schemas = http.get(f"{BASE}/Schemas").json()["Resources"]
    user_schema = next(s for s in schemas if s["id"] == USER)
    assert "userName" in {a["name"] for a in user_schema["attributes"]}
    scim_error(http.get(f"{BASE}/Schemas/urn:nothing"), 404)


def test_tokens_are_required_and_need_the_scope(http: Any, register: Any, flow: Any, user: Any) -> None:
    r = http.get(f"{BASE}/Users")
    scim_error(r, 401)
    assert r.headers["www-authenticate"].startswith("Bearer")
    r = http.get(f"{BASE}/Users", headers={"Authorization": "Bearer nonsense"})
    scim_error(r, 401)
    assert 'error="invalid_token"' in r.headers["www-authenticate"]
    other = {"Authorization": "Bearer " + token_for(http, register, "plain", ["api"])}
    r = http.get(f"{BASE}/Users", headers=other)
    scim_error(r, 403)
    assert 'scope="idbroker:scim"' in r.headers["www-authenticate"]
    # A user's token, even with the scope, is not a provisioning client's.
    client = register("web", scopes=["openid", "idbroker:scim"])
    q, verifier = flow.code_flow(client, scope="openid idbroker:scim")
    r = http.post("/oauth2/token", auth=client.basic, data={
        "grant_type": "authorization_code", "code": q["code"], "redirect_uri": client.redirect_uri,
        "code_verifier": verifier})
    assert r.status_code == 200, r.text
    scim_error(http.get(f"{BASE}/Users", headers={"Authorization": "Bearer " + r.json()["access_token"]}), 403)


def test_user_lifecycle_filters_paging_and_uniqueness(scim: Any, provider: Any) -> None:
    r = scim.post("/Users", new_user())
    assert r.status_code == 201, r.text
    created = r.json()
    assert r.headers["location"] == created["meta"]["location"] and r.headers["etag"] == created["meta"]["version"]
    assert created["userName"] == "bjensen@example.com" and created["active"] is True
    assert created["externalId"] == "ext-bjensen" and created["displayName"] == "Babs Jensen"
    assert created["name"]["givenName"] == "Barbara" and created["meta"]["resourceType"] == "User"
    stored = provider.users.by_email("bjensen@example.com")
    assert stored.sub == created["id"] and stored.password_hash is None and stored.given_name == "Barbara"
    with provider.db.session(write=False) as s:
        kinds = list(s.scalars(select(AuditEvent.kind).where(AuditEvent.kind.like("scim.%"))))
    assert kinds == ["scim.user_created"]

    scim_error(scim.post("/Users", new_user("BJensen@Example.com", externalId="other")), 409, "uniqueness")
    scim_error(scim.post("/Users", new_user("x@example.com", externalId="ext-bjensen")), 409, "uniqueness")

    got = scim.get(f"/Users/{created['id']}")
    assert got.status_code == 200 and got.json() == created
    scim_error(scim.get("/Users/nobody"), 404)

    for i in range(4):
        assert scim.post("/Users", new_user(f"user{i}@example.com", displayName=f"Member {i}",
                                             active=i % 2 == 0)).status_code == 201

    def found(flt: str, **params: Any) -> list[str]:
        r = scim.get("/Users", params={"filter": flt, **params})
        assert r.status_code == 200, r.text
        assert r.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:ListResponse"]
        return [u["userName"] for u in r.json()["Resources"]]

    assert found('userName eq "BJENSEN@example.com"') == ["bjensen@example.com"]
    assert found('emails.value eq "user1@example.com"') == ["user1@example.com"]
    assert found('externalId eq "ext-user2"') == ["user2@example.com"]
    assert found('externalId eq "EXT-USER2"') == []  # externalId is caseExact
    assert found('displayName co "member"') == [f"user{i}@example.com" for i in range(4)]
    assert found('displayName co "member" and active eq false') == ["user1@example.com", "user3@example.com"]
    assert found('userName eq "user0@example.com" or (userName sw "user3" and not (active eq true))') == [
        "user0@example.com", "user3@example.com"]
    page = scim.get("/Users", params={"filter": 'displayName co "Member"', "startIndex": "2", "count": "2"}).json()
    assert page["totalResults"] == 4 and page["startIndex"] == 2 and page["itemsPerPage"] == 2
    assert [u["userName"] for u in page["Resources"]] == ["user1@example.com", "user2@example.com"]
    assert scim.get("/Users", params={"count": "0"}).json()["Resources"] == []
    scim_error(scim.get("/Users", params={"filter": 'userName eq'}), 400, "invalidFilter")
    scim_error(scim.get("/Users", params={"filter": 'userName zz "a"'}), 400, "invalidFilter")
    scim_error(scim.get("/Users", params={"filter": '(userName eq "a"'}), 400, "invalidFilter")
    scim_error(scim.get("/Users", params={"startIndex": "x"}), 400)
    scim_error(scim.get("/Users", params={"filter": "(" * 300 + 'userName eq "a"' + ")" * 300}), 400, "invalidFilter")

    # PUT replaces: what is not sent is cleared.
    r = scim.put(f"/Users/{created['id']}", {"schemas": [USER], "userName": "barbara@example.com",
                                             "name": {"givenName": "Barbara"}, "active": True})
    assert r.status_code == 200, r.text
    assert r.json()["userName"] == "barbara@example.com" and "externalId" not in r.json()
    stored = provider.users.by_email("barbara@example.com")
    assert stored.family_name is None and stored.sub == created["id"]
    scim_error(scim.put(f"/Users/{created['id']}", new_user("user0@example.com")), 409, "uniqueness")

    assert scim.delete(f"/Users/{created['id']}").status_code == 204
    scim_error(scim.get(f"/Users/{created['id']}"), 404)
    assert provider.users.by_email("barbara@example.com") is None


def test_patch_in_entra_id_shape(scim: Any, provider: Any) -> None:
    sub = scim.post("/Users", new_user()).json()["id"]
    r = scim.patch(f"/Users/{sub}", [
        {"op": "Replace", "path": "name.familyName", "value": "Jensen-Smith"},
        {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "babs@example.com"},
        {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
         "value": "Finance"},
        {"op": "Replace", "path": "displayName", "value": "Babs"},
        {"op": "Replace", "path": "userName", "value": "babs@example.com"},
    ])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["name"]["familyName"] == "Jensen-Smith" and body["userName"] == "babs@example.com"
    assert body["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"] == {"department": "Finance"}
    assert provider.users.by_email("babs@example.com").family_name == "Jensen-Smith"
    # Entra ID's deactivation: a string "False".
    r = scim.patch(f"/Users/{sub}", [{"op": "Replace", "path": "active", "value": "False"}])
    assert r.status_code == 200 and r.json()["active"] is False
    assert provider.users.by_email("babs@example.com").disabled is True
    r = scim.patch(f"/Users/{sub}", [{"op": "remove", "path": "name.familyName"}])
    assert r.status_code == 200 and "familyName" not in r.json()["name"]


def test_patch_in_okta_shape_and_deactivation_ends_sessions(scim: Any, provider: Any, http: Any, flow: Any,
                                                            register: Any, user: Any) -> None:
    client = register()
    flow.code_flow(client)
    with provider.db.session(write=False) as s:
        assert s.scalars(select(BrowserSession).where(BrowserSession.user_id == user.id,
                                                      BrowserSession.ended_at.is_(None))).first() is not None
    r = scim.patch(f"/Users/{user.sub}", [{"op": "replace", "value": {"active": False,
                                                                        "name.givenName": "Ally"}}])
    assert r.status_code == 200, r.text
    assert r.json()["active"] is False and r.json()["name"]["givenName"] == "Ally"
    with provider.db.session(write=False) as s:
        assert s.scalars(select(BrowserSession).where(BrowserSession.user_id == user.id,
                                                      BrowserSession.ended_at.is_(None))).first() is None
        event = s.scalars(select(AuditEvent).where(AuditEvent.kind == "scim.user_updated")).one()
        assert event.detail["deactivated"] is True and event.detail["client_id"] == "entra"
    # Signing in is refused now.
    http.cookies.clear()
    _, challenge = pkce_pair()
    page = flow.authorize(client_id=client.client_id, redirect_uri=client.redirect_uri, response_type="code",
                          scope="openid", state="s", code_challenge=challenge, code_challenge_method="S256")
    refused = flow.login(page, password=PASSWORD)
    assert refused.status_code == 401 and 'autocomplete="current-password"' in refused.text
    # Okta's reactivation: the same sign-in goes through.
    r = scim.patch(f"/Users/{user.sub}", [{"op": "replace", "value": {"active": True}}])
    assert r.status_code == 200 and r.json()["active"] is True, (r.text, r.headers)
    q, _ = flow.code_flow(client)
    assert q["code"]


def test_delete_ends_sessions(scim: Any, provider: Any, flow: Any, register: Any, user: Any) -> None:
    flow.code_flow(register())
    assert scim.delete(f"/Users/{user.sub}").status_code == 204
    with provider.db.session(write=False) as s:
        assert s.scalars(select(BrowserSession).where(BrowserSession.user_id == user.id)).first() is None
        assert s.get(User, user.id) is None
    scim_error(scim.delete(f"/Users/{user.sub}"), 404)


def test_if_match(scim: Any) -> None:
    r = scim.post("/Users", new_user())
    sub, tag = r.json()["id"], r.headers["etag"]
    assert tag.startswith('W/"')
    r = scim.patch(f"/Users/{sub}", [{"op": "replace", "path": "nickName", "value": "B"}], headers={"If-Match": tag})
    assert r.status_code == 200 and r.headers["etag"] != tag
    scim_error(scim.patch(f"/Users/{sub}", [{"op": "replace", "path": "nickName", "value": "C"}],
                          headers={"If-Match": tag}), 412)
    scim_error(scim.put(f"/Users/{sub}", new_user(), headers={"If-Match": tag}), 412)
    scim_error(scim.delete(f"/Users/{sub}", headers={"If-Match": tag}), 412)
    assert scim.get(f"/Users/{sub}").json()["nickName"] == "B"
    assert scim.delete(f"/Users/{sub}", headers={"If-Match": "*"}).status_code == 204
    r = scim.post("/Groups", {"displayName": "Ops"})
    gid, tag = r.json()["id"], r.headers["etag"]
    r = scim.patch(f"/Groups/{gid}", [{"op": "replace", "path": "displayName", "value": "Operations"}],
                   headers={"If-Match": tag})
    assert r.status_code == 200 and r.json()["displayName"] == "Operations"
    scim_error(scim.put(f"/Groups/{gid}", {"displayName": "X"}, headers={"If-Match": tag}), 412)
    scim_error(scim.delete(f"/Groups/{gid}", headers={"If-Match": tag}), 412)
    assert scim.delete(f"/Groups/{gid}", headers={"If-Match": r.headers["etag"]}).status_code == 204


def test_groups_follow_users_and_the_groups_claim(scim: Any, provider: Any, http: Any, flow: Any, register: Any,
                                                  user: Any) -> None:
    bob = scim.post("/Users", new_user("bob@example.com")).json()["id"]
    r = scim.post("/Groups", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                              "displayName": "Engineering", "externalId": "g-1", "members": [{"value": user.sub}]})
    assert r.status_code == 201, r.text
    group = r.json()
    assert [m["value"] for m in group["members"]] == [user.sub] and r.headers["location"].endswith(group["id"])
    scim_error(scim.post("/Groups", {"displayName": "Engineering"}), 409, "uniqueness")
    scim_error(scim.post("/Groups", {"displayName": "Other", "members": [{"value": "nobody"}]}), 400)
    assert provider.users.by_email("alice@example.com").groups == ["Engineering"]
    assert scim.get(f"/Users/{user.sub}").json()["groups"][0]["value"] == group["id"]

    # Entra ID adds members with a list value; Okta removes one with a filtered path.
    r = scim.patch(f"/Groups/{group['id']}", [{"op": "Add", "path": "members", "value": [{"value": bob}]}])
    assert r.status_code == 200 and {m["value"] for m in r.json()["members"]} == {user.sub, bob}
    assert provider.users.by_email("bob@example.com").groups == ["Engineering"]
    r = scim.patch(f"/Groups/{group['id']}", [{"op": "remove", "path": f'members[value eq "{user.sub}"]'}])
    assert r.status_code == 200 and [m["value"] for m in r.json()["members"]] == [bob]
    assert provider.users.by_email("alice@example.com").groups == []
    r = scim.patch(f"/Groups/{group['id']}", [{"op": "Add", "path": "members", "value": [{"value": user.sub}]},
                                              {"op": "Remove", "path": "members", "value": [{"value": bob}]}])
    assert [m["value"] for m in r.json()["members"]] == [user.sub]
    assert provider.users.by_email("bob@example.com").groups == []

    listed = scim.get("/Groups", params={"filter": 'displayName eq "engineering"'}).json()
    assert [g["id"] for g in listed["Resources"]] == [group["id"]]
    assert scim.get("/Groups", params={"filter": 'displayName eq "nope"'}).json()["totalResults"] == 0

    # A rename (PUT) follows into the users' lists and the groups claim.
    r = scim.put(f"/Groups/{group['id']}", {"displayName": "Platform", "members": [{"value": user.sub}]})
    assert r.status_code == 200 and r.json()["displayName"] == "Platform"
    client = register("rp", first_party=True, scopes=["openid", "groups"])
    q, verifier = flow.code_flow(client, scope="openid groups")
    tokens = http.post("/oauth2/token", auth=client.basic, data={
        "grant_type": "authorization_code", "code": q["code"], "redirect_uri": client.redirect_uri,
        "code_verifier": verifier}).json()
    part = tokens["id_token"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    assert claims["groups"] == ["Platform"]

    assert scim.delete(f"/Groups/{group['id']}").status_code == 204
    scim_error(scim.get(f"/Groups/{group['id']}"), 404)
    assert provider.users.by_email("alice@example.com").groups == []
    with provider.db.session(write=False) as s:
        kinds = set(s.scalars(select(AuditEvent.kind).where(AuditEvent.kind.like("scim.group%"))))
    assert kinds == {"scim.group_created", "scim.group_updated", "scim.group_deleted"}


def test_malformed_requests_are_scim_errors(scim: Any, user: Any) -> None:
    scim_error(scim.call("POST", "/Users", content=b"{not json",
                         headers={"Content-Type": SCIM}), 400, "invalidSyntax")
    scim_error(scim.call("POST", "/Users", content=b"[]", headers={"Content-Type": SCIM}), 400)
    scim_error(scim.call("POST", "/Users", content=b"userName=x", headers={"Content-Type": "text/plain"}), 415)
    scim_error(scim.post("/Users", {"userName": "not an address"}), 400, "invalidValue")
    scim_error(scim.post("/Users", {"userName": 5}), 400, "invalidValue")
    scim_error(scim.post("/Users", {"userName": "a@example.com", "name": "x"}), 400, "invalidValue")
    scim_error(scim.post("/Users", {"userName": "a@example.com", "active": "maybe"}), 400, "invalidValue")
    scim_error(scim.post("/Users", {"userName": "a@example.com", "emails": "x"}), 400, "invalidValue")
    scim_error(scim.post("/Users", {"userName": "a\u0000@example.com"}), 400)
    path = f"/Users/{user.sub}"
    scim_error(scim.call("PATCH", path, {"Operations": "x"}), 400, "invalidSyntax")
    scim_error(scim.patch(path, [{"op": "explode", "path": "active", "value": False}]), 400, "invalidSyntax")
    scim_error(scim.patch(path, [{"op": "remove"}]), 400, "noTarget")
    scim_error(scim.patch(path, [{"op": "replace", "value": "x"}]), 400, "invalidSyntax")
    scim_error(scim.patch(path, [{"op": "replace", "path": "emails[type eq", "value": "x"}]), 400)
    scim_error(scim.patch(path, [{"op": "replace", "path": "userName", "value": None}]), 400)
    scim_error(scim.post("/Groups", {"displayName": "G", "members": "all"}), 400)
    scim_error(scim.post("/Groups", {"members": []}), 400)
    # A userName that is not an address is kept when the primary email is one.
    r = scim.post("/Users", {"userName": "CORP\\carol", "emails": [{"value": "carol@example.com", "primary": True}]})
    assert r.status_code == 201 and r.json()["userName"] == "CORP\\carol"
    assert r.json()["emails"][0]["value"] == "carol@example.com"
