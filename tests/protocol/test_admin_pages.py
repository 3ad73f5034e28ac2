"""The admin pages over HTTP, on both stores: who may enter (the admin group, a recent second
factor), each page, each action through the same domain functions as the admin API, audited with
the admin's id; CSRF refused without change; an admin cannot disable or delete themselves."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from typing import Any

import pytest
from mfa_helpers import code_at, csrf, enrol_totp, factors_of, sign_in, submit_code
from sqlalchemy import select, update
from support import ISSUER, PASSWORD

from idbroker import audit
from idbroker.accounts import administration as admin
from idbroker.store.db import utcnow
from idbroker.store.models import AuditEvent, BrowserSession, User


@pytest.fixture
def admin_user(provider: Any, user: Any) -> Any:
    return admin.update_user(provider.db, user.id, {"groups": ["admin", "staff"]})


@pytest.fixture
def bob(provider: Any) -> Any:
    return provider.users.create("bob@example.com", PASSWORD, email_verified=True, given_name="Bob",
                                 family_name="Builder", groups=["staff"])


def step_up(http: Any, clock: Any, secret: str, next_path: str = "/admin") -> Any:
    """Signs alice in towards `next_path` and passes her authenticator app; the answer of /mfa."""
    r = sign_in(http, next_path=next_path)
    while r.status_code == 303 and "/mfa" not in r.headers["location"]:
        r = http.get(r.headers["location"])
    assert r.status_code == 303 and r.headers["location"].startswith(ISSUER + "/mfa?"), r.headers
    page = http.get(r.headers["location"])
    clock.step()
    return submit_code(http, page, code_at(secret, clock()))


@pytest.fixture
def as_admin(http: Any, admin_user: Any, enrolled: Any, clock: Any) -> Any:
    """The test's browser signed in as alice, an admin who just passed her second factor."""
    r = step_up(http, clock, enrolled[0])
    assert r.status_code == 303 and r.headers["location"] == ISSUER + "/admin"
    return admin_user


def admin_events(provider: Any, admin_id: int) -> list[dict[str, Any]]:
    with provider.db.session(write=False) as s:
        rows = s.scalars(select(AuditEvent).where(AuditEvent.kind == audit.ADMIN_ACTION,
                                                  AuditEvent.user_id == admin_id).order_by(AuditEvent.id))
        return [dict(r.detail or {}) for r in rows]


def reload(provider: Any, user_id: int) -> User | None:
    with provider.db.session(write=False) as s:
        return s.get(User, user_id)


def post(http: Any, path: str, page_path: str, **data: str) -> Any:
    page = http.get(page_path)
    assert page.status_code == 200, page.text
    return http.post(path, data={"csrf_token": csrf(page.text), **data})


# -- who may enter ------------------------------------------------------------------------------------
def test_signed_out_goes_to_the_login_page(http: Any) -> None:
    r = http.get("/admin")
    assert r.status_code == 303 and r.headers["location"] == ISSUER + "/login?next=%2Fadmin"
    r = http.post("/admin/keys/rotate", data={})
    assert r.status_code == 303 and r.headers["location"].startswith(ISSUER + "/login")


def test_a_user_outside_the_admin_group_gets_403(http: Any, user: Any, enrolled: Any, clock: Any,
                                                 provider: Any) -> None:
    step_up(http, clock, enrolled[0], "/account")
    for path in ("/admin", "/admin/users", "/admin/clients", "/admin/keys", "/admin/audit"):
        r = http.get(path)
        assert r.status_code == 403 and "for administrators only" in r.text, path
    before = len(provider.keys.list())
    page = http.get("/account")
    r = http.post("/admin/keys/rotate", data={"csrf_token": csrf(page.text)})
    assert r.status_code == 403 and len(provider.keys.list()) == before


def test_an_admin_without_a_factor_is_told_to_set_one_up(http: Any, admin_user: Any) -> None:
    sign_in(http)
    r = http.get("/admin/users")
    assert r.status_code == 403 and 'href="/account/security"' in r.text
    assert "Set up two-step verification first" in r.text


def test_an_admin_without_a_second_step_in_this_session_is_sent_to_step_up(http: Any, admin_user: Any,
                                                                             enrolled: Any, clock: Any,
                                                                             provider: Any) -> None:
    # Signed in with the password only (the second step not taken yet).
    sign_in(http)
    r = http.get("/admin/users?status=active")
    assert r.status_code == 303
    assert r.headers["location"] == ISSUER + "/mfa?next=%2Fadmin%2Fusers%3Fstatus%3Dactive"
    page = http.get(r.headers["location"])
    clock.step()
    r = submit_code(http, page, code_at(enrolled[0], clock()))
    assert r.status_code == 303 and r.headers["location"] == ISSUER + "/admin/users?status=active"
    assert http.get("/admin/users?status=active").status_code == 200


def test_a_second_step_older_than_the_max_age_must_be_taken_again(http: Any, as_admin: Any, provider: Any,
                                                                   enrolled: Any, clock: Any) -> None:
    assert http.get("/admin/users").status_code == 200
    with provider.db.session() as s:
        s.execute(update(BrowserSession).where(BrowserSession.user_id == as_admin.id)
                  .values(auth_time=utcnow() - timedelta(seconds=901), factor_at=utcnow() - timedelta(seconds=901)))
    r = http.get("/admin/users")
    assert r.status_code == 303 and r.headers["location"] == ISSUER + "/login?next=%2Fadmin%2Fusers"
    before = len(provider.keys.list())
    r = http.post("/admin/keys/rotate", data={"csrf_token": csrf(http.get("/account").text)})
    assert r.status_code == 303 and "/login" in r.headers["location"] and len(provider.keys.list()) == before
    r = step_up(http, clock, enrolled[0], "/admin/users")
    assert r.status_code == 303 and r.headers["location"] == ISSUER + "/admin/users"
    assert http.get("/admin/users").status_code == 200


def test_a_fresh_second_step_in_an_old_session_is_enough(http: Any, as_admin: Any, provider: Any) -> None:
    """Freshness is that of the second factor, not of the sign-in: a session signed in long ago
    (a remembered device) that has just passed /mfa may act."""
    with provider.db.session() as s:
        s.execute(update(BrowserSession).where(BrowserSession.user_id == as_admin.id)
                  .values(auth_time=utcnow() - timedelta(days=2), factor_at=utcnow() - timedelta(seconds=30)))
    assert http.get("/admin/users").status_code == 200


# -- pages ---------------------------------------------------------------------------------------------
def test_users_search_and_paging(http: Any, as_admin: Any, bob: Any, provider: Any) -> None:
    for i in range(30):
        provider.users.create(f"user{i:02}@example.org", PASSWORD, groups=["many"])
    page = http.get("/admin/users?group=many")
    assert page.status_code == 200
    assert page.text.count('class="item"') == 25 and "bob@example.com" not in page.text
    nxt = re.search(r'href="(/admin/users\?[^"]*cursor=[^"]+)"', page.text)
    assert nxt
    second = http.get(nxt.group(1).replace("&amp;", "&"))
    assert second.status_code == 200 and second.text.count('class="item"') == 5
    assert "user29@example.org" in second.text and "user00@example.org" not in second.text
    found = http.get("/admin/users?name=build")
    assert "bob@example.com" in found.text and "alice@example.com" not in found.text
    found = http.get("/admin/users?email=ALICE&status=active")
    assert "alice@example.com" in found.text and "bob@example.com" not in found.text
    bad = http.get("/admin/users?cursor=nonsense")
    assert bad.status_code == 400 and "no longer valid" in bad.text


def test_user_detail_shows_profile_sessions_factors(http: Any, as_admin: Any, provider: Any) -> None:
    page = http.get(f"/admin/users/{as_admin.sub}")
    assert page.status_code == 200
    assert as_admin.sub in page.text and "admin, staff" in page.text
    assert 'id="factors">Sign-in methods: 1<' in page.text
    assert 'id="sessions"' in page.text
    assert http.get("/admin/users/nobody").status_code == 404


def test_clients_and_secret_rotation(http: Any, as_admin: Any, register: Any, provider: Any) -> None:
    client = register("shop")
    page = http.get("/admin/clients")
    assert page.status_code == 200 and "/admin/clients/shop" in page.text
    detail = http.get("/admin/clients/shop")
    assert detail.status_code == 200 and "Rotate the secret" in detail.text
    r = http.post("/admin/clients/shop/secret", data={"csrf_token": csrf(detail.text)})
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    secret = re.search(r'<code class="secret">([^<]+)</code>', r.text).group(1)  # type: ignore[union-attr]
    assert secret != client.secret
    # The new secret authenticates at the token endpoint, the old one no longer does.
    assert http.post("/oauth2/token", auth=("shop", client.secret),
                     data={"grant_type": "client_credentials"}).status_code == 401
    assert http.post("/oauth2/token", auth=("shop", secret),
                     data={"grant_type": "client_credentials"}).status_code != 401
    assert 'id="new-secret"' not in http.get("/admin/clients/shop").text  # shown once
    assert {"action": "rotate_secret", "target": "shop"} in admin_events(provider, as_admin.id)
    assert http.get("/admin/clients/nope").status_code == 404


def test_keys_rotate(http: Any, as_admin: Any, provider: Any) -> None:
    before = {k.kid for k, _ in provider.keys.list()}
    page = http.get("/admin/keys")
    assert page.status_code == 200 and all(kid in page.text for kid in before)
    r = http.post("/admin/keys/rotate", data={"csrf_token": csrf(page.text), "alg": "RS256"})
    assert r.status_code == 303 and r.headers["location"] == ISSUER + "/admin/keys?done=key_rotated"
    [new] = [k for k, _ in provider.keys.list() if k.kid not in before]
    assert new.alg == "RS256"
    page = http.get(r.headers["location"])
    assert new.kid in page.text and "A new signing key was created." in page.text
    assert {"action": "rotate_key", "target": new.kid, "alg": "RS256"} in admin_events(provider, as_admin.id)


def test_audit_trail_filters_and_pages(http: Any, as_admin: Any, bob: Any, provider: Any) -> None:
    for _ in range(30):
        provider.audit.record(audit.LOGIN_FAILED, user_id=bob.id, ip="192.0.2.9")
    page = http.get("/admin/audit?user=bob@example.com&kind=login.failed&since=1h")
    assert page.status_code == 200 and page.text.count('class="item"') == 25
    nxt = re.search(r'href="(/admin/audit\?[^"]*cursor=[^"]+)"', page.text)
    assert nxt
    second = http.get(nxt.group(1).replace("&amp;", "&"))
    assert second.status_code == 200 and second.text.count('class="item"') == 5
    assert http.get("/admin/audit?user=alice@example.com&kind=login.failed").text.count('class="item"') == 0
    bad = http.get("/admin/audit?since=yesterday-ish")
    assert bad.status_code == 400 and "an age such as 1h" in bad.text


# -- actions --------------------------------------------------------------------------------------------
def test_disable_signs_out_and_enable(http: Any, as_admin: Any, bob: Any, provider: Any, app: Any) -> None:
    from starlette.testclient import TestClient

    with TestClient(app, base_url=ISSUER, follow_redirects=False) as bobs:
        sign_in(bobs, "bob@example.com")
        assert bobs.get("/account").status_code == 200
        path = f"/admin/users/{bob.sub}"
        r = post(http, path + "/disable", path)
        assert r.status_code == 303 and r.headers["location"] == ISSUER + path + "?done=disabled"
        assert reload(provider, bob.id).disabled  # type: ignore[union-attr]
        assert bobs.get("/account").status_code == 303  # signed out everywhere
        page = http.get(r.headers["location"])
        assert "The user was disabled and signed out everywhere." in page.text
        r = post(http, path + "/enable", path)
        assert r.status_code == 303 and not reload(provider, bob.id).disabled  # type: ignore[union-attr]
    assert [e["action"] for e in admin_events(provider, as_admin.id)] == ["disable", "enable"]
    assert all(e["target"] == bob.sub for e in admin_events(provider, as_admin.id))


def test_sign_out_everywhere(http: Any, as_admin: Any, bob: Any, provider: Any, app: Any) -> None:
    from starlette.testclient import TestClient

    with TestClient(app, base_url=ISSUER, follow_redirects=False) as bobs:
        sign_in(bobs, "bob@example.com")
        path = f"/admin/users/{bob.sub}"
        r = post(http, path + "/signout", path)
        assert r.status_code == 303 and r.headers["location"].endswith("?done=signed_out")
        assert bobs.get("/account").status_code == 303
    assert provider.accounts.live_sessions(bob.id) == []
    assert {"action": "signout", "target": bob.sub} in admin_events(provider, as_admin.id)


def test_reset_mfa(http: Any, as_admin: Any, bob: Any, provider: Any, app: Any, clock: Any) -> None:
    from starlette.testclient import TestClient

    with TestClient(app, base_url=ISSUER, follow_redirects=False) as bobs:
        sign_in(bobs, "bob@example.com")
        enrol_totp(bobs, clock)
    assert factors_of(provider, bob.id)
    path = f"/admin/users/{bob.sub}"
    r = post(http, path + "/reset-mfa", path)
    assert r.status_code == 303 and r.headers["location"].endswith("?done=mfa_reset")
    assert factors_of(provider, bob.id) == [] and provider.mfa.recovery_codes_left(bob.id) == 0
    assert {"action": "reset_mfa", "target": bob.sub, "factors_removed": 1} in admin_events(provider, as_admin.id)


def test_delete_needs_the_confirmation(http: Any, as_admin: Any, bob: Any, provider: Any) -> None:
    path = f"/admin/users/{bob.sub}/delete"
    r = post(http, path, path, confirm="wrong@example.com")
    assert r.status_code == 400 and "Type the user's email address to confirm." in html.unescape(r.text)
    assert reload(provider, bob.id) is not None
    r = post(http, path, path, confirm="Bob@example.com")
    assert r.status_code == 303 and r.headers["location"] == ISSUER + "/admin/users?done=deleted"
    assert reload(provider, bob.id) is None
    assert {"action": "delete", "target": bob.sub, "email": "bob@example.com"} in admin_events(provider, as_admin.id)


def test_actions_without_csrf_change_nothing(http: Any, as_admin: Any, bob: Any, provider: Any) -> None:
    path = f"/admin/users/{bob.sub}"
    keys = len(provider.keys.list())
    for action, data in (("/disable", {}), ("/delete", {"confirm": "bob@example.com"}), ("/signout", {}),
                         ("/reset-mfa", {})):
        for token in (None, "forged"):
            r = http.post(path + action, data={**data, **({"csrf_token": token} if token else {})})
            assert r.status_code == 400 and "Your form expired" in r.text, action
    r = http.post("/admin/keys/rotate", data={})
    assert r.status_code == 400 and len(provider.keys.list()) == keys
    row = reload(provider, bob.id)
    assert row is not None and not row.disabled
    assert admin_events(provider, as_admin.id) == []


def test_an_admin_cannot_disable_or_delete_themselves(http: Any, as_admin: Any, provider: Any) -> None:
    path = f"/admin/users/{as_admin.sub}"
    page = http.get(path)
    assert f'action="{path}/disable"' not in page.text and f'href="{path}/delete"' not in page.text
    r = http.post(path + "/disable", data={"csrf_token": csrf(page.text)})
    assert r.status_code == 400 and "you would lock yourself out" in r.text
    r = http.post(path + "/delete", data={"csrf_token": csrf(page.text), "confirm": "alice@example.com"})
    assert r.status_code == 400 and "you would lock yourself out" in r.text
    assert http.get(path + "/delete").status_code == 400
    row = reload(provider, as_admin.id)
    assert row is not None and not row.disabled
    assert http.get("/admin/users").status_code == 200
    assert admin_events(provider, as_admin.id) == []


def test_pages_are_translated(http: Any, as_admin: Any) -> None:
    page = http.get("/admin/users", headers={"accept-language": "fr"})
    assert page.status_code == 200 and 'lang="fr"' in page.text
    assert ">Users<" not in page.text


def test_odd_search_input_is_a_clear_answer_never_a_server_error(http: Any, as_admin: Any) -> None:
    for query in ("email=%00a&name=%00&group=%00", "status=bogus", "cursor=%ff%fe", "email=" + "x" * 5000,
                  "email=%ed%a0%80"):
        r = http.get("/admin/users?" + query)
        assert r.status_code in (200, 400), query
    for query in ("since=99999999999w", "since=%00", "kind=%00x&user=%00", "since=0001-01-01", "cursor=YTox"):
        r = http.get("/admin/audit?" + query)
        assert r.status_code in (200, 400), query
    assert http.get("/admin/audit?since=99999999999w").status_code == 400
    assert http.get("/admin/users/%00").status_code == 404
    assert http.get("/admin/clients/%00").status_code == 404


@pytest.mark.parametrize("settings_overrides", [{"admin_group": "ops"}])
def test_the_admin_group_is_a_setting(http: Any, admin_user: Any, enrolled: Any, clock: Any,
                                      provider: Any) -> None:
    step_up(http, clock, enrolled[0])
    assert http.get("/admin/users").status_code == 403  # "admin" is not the group any more
    admin.update_user(provider.db, admin_user.id, {"groups": ["ops"]})
    assert http.get("/admin/users").status_code == 200


def test_settings_are_checked(tmp_path: Any) -> None:
    from support import make_settings

    from idbroker.settings import SettingsError

    for bad in ({"admin_step_up_max_age": 0}, {"admin_group": " "}):
        with pytest.raises(SettingsError, match="admin_"):
            make_settings(tmp_path, **bad)  # validates
