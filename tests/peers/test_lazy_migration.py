"""Lazy migration (migration/lazy.py) through the sign-in and forgot-password pages, against real
legacy stores: moto's server as the Cognito user pool (passwords set there; one user left in
FORCE_CHANGE_PASSWORD), a webhook server in the test that checks the request signature, the
throwaway slapd (slapd.py), and sources that are down or answer garbage. On SQLite and PostgreSQL.

What must hold: a user a source knows is created on the first sign-in (attributes, verified email
as the source says, groups, custom attributes, the typed password as argon2id) and from then on
signs in locally without the source; a wrong password and an unknown address get the same 401
page as a local wrong password; a source that cannot be asked gives the 503 "try again later"
page, writes an audit event, creates nothing, and counts toward the lockout; forgot-password
creates the account from the source and mails the reset link, the page being the same whatever
happened."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import socket
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from slapd import PASSWORD as LDAP_PASSWORD
from slapd import SERVICE_DN, SERVICE_PASSWORD, SLAPD, SUFFIX, Slapd
from sqlalchemy import select
from support import CSRF_RE, PASSWORD, Quiet, free_port, serving

from idbroker import audit
from idbroker.migration.legacy import MUST_CHANGE, UNAVAILABLE
from idbroker.migration.webhook import SIGNATURE_HEADER
from idbroker.store.models import AuditEvent, User

pytestmark = [pytest.mark.peers]

REGION = "eu-west-1"
CAROL, CAROL_PASSWORD = "carol@example.org", "Carol-Passw0rd-legacy!"
DAVE, DAVE_TEMPORARY = "dave@example.org", "Dave-Temp0rary-legacy!"
ERIN, ERIN_PASSWORD = "erin@example.org", "Erin-Passw0rd-webhook!"
HOOK_SECRET = "whsec-test-secret"
ERROR_RE = re.compile(r'<p class="error" role="alert" id="login-error">([^<]*)</p>')


# -- the legacy stores ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cognito() -> Iterator[dict[str, str]]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    try:
        c = boto3.client("cognito-idp", region_name=REGION, endpoint_url=url, aws_access_key_id="testing",
                         aws_secret_access_key="testing")
        pool = c.create_user_pool(PoolName="legacy", UsernameAttributes=["email"], Schema=[
            {"Name": "plan", "AttributeDataType": "String", "Mutable": True}])["UserPool"]["Id"]
        app = c.create_user_pool_client(UserPoolId=pool, ClientName="legacy-app", GenerateSecret=True,
                                        ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"])
        client = app["UserPoolClient"]
        c.admin_create_user(UserPoolId=pool, Username=CAROL, MessageAction="SUPPRESS", UserAttributes=[
            {"Name": "email", "Value": CAROL}, {"Name": "email_verified", "Value": "true"},
            {"Name": "given_name", "Value": "Carol"}, {"Name": "family_name", "Value": "Danvers"},
            {"Name": "custom:plan", "Value": "gold"}])
        c.admin_set_user_password(UserPoolId=pool, Username=CAROL, Password=CAROL_PASSWORD, Permanent=True)
        c.create_group(UserPoolId=pool, GroupName="pilots")
        c.admin_add_user_to_group(UserPoolId=pool, Username=CAROL, GroupName="pilots")
        c.admin_create_user(UserPoolId=pool, Username=DAVE, TemporaryPassword=DAVE_TEMPORARY,
                            MessageAction="SUPPRESS", UserAttributes=[{"Name": "email", "Value": DAVE}])
        yield {"user_pool_id": pool, "client_id": client["ClientId"], "client_secret": client["ClientSecret"],
               "region": REGION, "endpoint_url": url, "aws_access_key_id": "testing",
               "aws_secret_access_key": "testing", "timeout": "3"}
    finally:
        server.stop()


class Webhook:
    """The operator's endpoint: checks the signature, answers for ERIN, garbage for garbage@."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.url = ""
        hook = self

        class Handler(Quiet):
            def do_POST(self) -> None:  # noqa: N802
                body = self.body()
                stamp, _, mac = (self.headers.get(SIGNATURE_HEADER) or "").partition(",v1=")
                expected = hmac.new(HOOK_SECRET.encode(), stamp.removeprefix("t=").encode() + b"." + body,
                                    hashlib.sha256).hexdigest()
                if not stamp.startswith("t=") or not hmac.compare_digest(mac, expected):
                    return self.answer(400, b'{"error": "bad signature"}')
                data = json.loads(body)
                hook.requests.append(data)
                if data["login"] == "garbage@example.org":
                    return self.answer(200, b"<html>oops</html>")
                known = data["login"] == ERIN
                if data["action"] == "verify" and (not known or data["password"] != ERIN_PASSWORD):
                    return self.answer(401, b"{}")
                if not known:
                    return self.answer(404, b"{}")
                return self.answer(200, json.dumps({
                    "email": ERIN, "email_verified": True, "given_name": "Erin", "nickname": "erin",
                    "groups": ["ops", "staff"], "custom_attributes": {"legacy_id": 42}}).encode())

        self.handler = Handler


@pytest.fixture(scope="module")
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    with serving(hook.handler) as base:
        hook.url = f"{base}/legacy-login"
        yield hook


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    if not SLAPD.exists():
        pytest.skip(f"{SLAPD} is missing (apt install slapd)")
    server = Slapd(tmp_path_factory.mktemp("slapd"))
    server.start()
    server.load()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def settings_overrides(smtp: Any) -> dict[str, Any]:
    return {**smtp.settings(), "lockout_threshold": 3, "resend_interval": 0}


def dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}/nobody-listens"


def ldap_options(directory: Slapd) -> dict[str, Any]:
    return {"url": directory.url, "bind_dn": SERVICE_DN, "bind_password": SERVICE_PASSWORD, "base_dn": SUFFIX,
            "group_base_dn": f"ou=groups,{SUFFIX}", "group_mode": "groupOfNames", "email_verified": "true",
            "timeout": "2"}


# -- through the pages ----------------------------------------------------------------------------
def login(http: Any, email: str, password: str) -> Any:
    page = http.get("/login")
    return http.post("/login", data={"csrf_token": CSRF_RE.search(page.text).group(1), "username": email,
                                     "password": password})


def error(response: Any) -> str:
    found = ERROR_RE.search(response.text)
    assert found, response.text
    return found.group(1)


def forgot(http: Any, email: str) -> Any:
    page = http.get("/forgot-password")
    return http.post("/forgot-password", data={"csrf_token": CSRF_RE.search(page.text).group(1), "email": email})


def user(provider: Any, email: str) -> User | None:
    with provider.db.session(write=False) as s:
        return s.scalar(select(User).where(User.email == email))


def events(provider: Any, kind: str) -> list[AuditEvent]:
    with provider.db.session(write=False) as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.kind == kind).order_by(AuditEvent.id)))


# -- the tests ------------------------------------------------------------------------------------
def test_a_cognito_user_is_created_on_first_sign_in_then_signs_in_without_the_pool(http, provider, cognito, caplog):
    provider.migration_sources.add("pool", "cognito", cognito)
    assert user(provider, CAROL) is None
    with caplog.at_level(logging.DEBUG):
        assert login(http, CAROL, CAROL_PASSWORD).status_code == 303
    assert "InitiateAuth" in caplog.text and CAROL_PASSWORD not in caplog.text  # botocore logs its params
    carol = user(provider, CAROL)
    assert carol is not None and carol.email_verified and carol.given_name == "Carol"
    assert carol.family_name == "Danvers" and carol.groups == ["pilots"]
    assert carol.custom_attributes == {"plan": "gold"}
    assert carol.password_hash.startswith("$argon2id$") and CAROL_PASSWORD not in carol.password_hash
    (migrated,) = events(provider, audit.USER_MIGRATED)
    assert migrated.user_id == carol.id and migrated.detail["source"] == "pool"
    # The pool goes away: the local account answers, the right password only.
    provider.migration_sources.update("pool", {"endpoint_url": dead_url()})
    http.cookies.clear()
    assert login(http, CAROL, CAROL_PASSWORD).status_code == 303
    assert login(http, CAROL, "not the password at all").status_code == 401
    assert events(provider, audit.MIGRATION_SOURCE_UNAVAILABLE) == []


def test_a_webhook_user_is_created_from_a_signed_answer_and_the_hook_is_not_asked_again(http, provider, webhook):
    provider.migration_sources.add("hook", "webhook", {"url": webhook.url, "secret": HOOK_SECRET})
    webhook.requests.clear()
    assert login(http, ERIN, ERIN_PASSWORD).status_code == 303
    assert webhook.requests == [{"action": "verify", "login": ERIN, "password": ERIN_PASSWORD}]
    erin = user(provider, ERIN)
    assert erin is not None and erin.email_verified and erin.given_name == "Erin" and erin.nickname == "erin"
    assert erin.groups == ["ops", "staff"] and erin.custom_attributes == {"legacy_id": 42}
    http.cookies.clear()
    assert login(http, ERIN, ERIN_PASSWORD).status_code == 303
    assert len(webhook.requests) == 1


def test_an_ldap_user_becomes_a_plain_local_account(http, provider, directory):
    provider.migration_sources.add("dir", "ldap", ldap_options(directory))
    assert login(http, "alice@example.org", LDAP_PASSWORD).status_code == 303
    alice = user(provider, "alice@example.org")
    assert alice is not None and alice.given_name == "Alice" and alice.family_name == "Liddell"
    assert alice.email_verified and alice.groups == ["admins", "everyone", "staff"]
    assert alice.password_hash.startswith("$argon2id$")
    provider.migration_sources.remove("dir")
    http.cookies.clear()
    assert login(http, "alice@example.org", LDAP_PASSWORD).status_code == 303


def test_wrong_passwords_and_unknown_addresses_get_the_local_wrong_password_page(
        http, provider, cognito, webhook, directory):
    provider.users.create("local@example.org", PASSWORD)
    provider.migration_sources.add("pool", "cognito", cognito)
    provider.migration_sources.add("hook", "webhook", {"url": webhook.url, "secret": HOOK_SECRET})
    provider.migration_sources.add("dir", "ldap", ldap_options(directory))
    answers = [login(http, email, password) for email, password in [
        ("local@example.org", "wrong wrong wrong"), (CAROL, "wrong wrong wrong"), (ERIN, "wrong wrong wrong"),
        ("alice@example.org", "wrong wrong wrong"), ("nobody@example.org", "wrong wrong wrong")]]
    assert {r.status_code for r in answers} == {401}
    assert len({error(r) for r in answers}) == 1
    assert [user(provider, e) for e in (CAROL, ERIN, "alice@example.org", "nobody@example.org")] == [None] * 4
    assert events(provider, audit.MIGRATION_SOURCE_UNAVAILABLE) == []


@pytest.fixture
def hung() -> Iterator[str]:
    """A port that accepts connections (the kernel's backlog) and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/never-answers"
    finally:
        listener.close()


@pytest.mark.parametrize("fault", ["down", "hung", "garbage"])
def test_a_source_that_cannot_answer_says_try_again_creates_nothing_and_counts_toward_the_lock(
        http, provider, webhook, hung, fault):
    email = "garbage@example.org" if fault == "garbage" else ERIN
    url = {"down": dead_url(), "hung": hung, "garbage": webhook.url}[fault]
    provider.migration_sources.add("hook", "webhook", {"url": url, "secret": HOOK_SECRET, "timeout": "1"})
    for _ in range(3):  # lockout_threshold
        answer = login(http, email, ERIN_PASSWORD)
        assert answer.status_code == 503
        assert error(answer) == UNAVAILABLE
    assert user(provider, email) is None
    down = events(provider, audit.MIGRATION_SOURCE_UNAVAILABLE)
    assert len(down) == 3 and down[0].detail["source"] == "hook"
    assert ERIN_PASSWORD not in json.dumps([e.detail for e in down])
    failed = events(provider, audit.LOGIN_FAILED)
    assert len(failed) == 3 and failed[0].detail["reason"] == "unavailable"
    # Locked: the password is not even checked any more, so the source is not asked.
    assert login(http, email, ERIN_PASSWORD).status_code == 429
    assert len(events(provider, audit.MIGRATION_SOURCE_UNAVAILABLE)) == 3


@pytest.fixture
def proxy_page() -> Iterator[str]:
    """Something that answers every request with a proxy's HTML error page (status 200)."""

    class Page(Quiet):
        def do_POST(self) -> None:  # noqa: N802
            self.body()
            self.answer(200, b"<html><body>502 Bad Gateway</body></html>", "text/html")

    with serving(Page) as base:
        yield base


@pytest.mark.parametrize("fault", ["down", "hung", "garbage"])
def test_a_cognito_pool_that_cannot_answer_says_try_again_and_creates_nothing(
        http, provider, cognito, hung, proxy_page, fault):
    url = {"down": dead_url(), "hung": hung, "garbage": proxy_page}[fault]
    provider.migration_sources.add("pool", "cognito", {**cognito, "endpoint_url": url, "timeout": "1"})
    answer = login(http, CAROL, CAROL_PASSWORD)
    assert answer.status_code == 503 and error(answer) == UNAVAILABLE
    assert user(provider, CAROL) is None
    (down,) = events(provider, audit.MIGRATION_SOURCE_UNAVAILABLE)
    assert down.detail["source"] == "pool" and CAROL_PASSWORD not in json.dumps(down.detail)


def test_a_later_source_that_knows_the_user_wins_over_an_earlier_one_that_is_down(http, provider, webhook):
    provider.migration_sources.add("old", "webhook", {"url": dead_url(), "secret": HOOK_SECRET})
    provider.migration_sources.add("hook", "webhook", {"url": webhook.url, "secret": HOOK_SECRET})
    assert login(http, ERIN, ERIN_PASSWORD).status_code == 303
    assert user(provider, ERIN) is not None
    assert [e.detail["source"] for e in events(provider, audit.MIGRATION_SOURCE_UNAVAILABLE)] == ["old"]


def test_a_pool_password_that_must_change_sends_the_user_through_the_reset(http, provider, cognito, smtp):
    provider.migration_sources.add("pool", "cognito", cognito)
    answer = login(http, DAVE, DAVE_TEMPORARY)
    assert answer.status_code == 403 and error(answer) == MUST_CHANGE
    dave = user(provider, DAVE)
    assert dave is not None and dave.password_hash is None
    assert login(http, DAVE, DAVE_TEMPORARY).status_code == 401  # no usable password until it is reset
    assert forgot(http, DAVE).status_code == 200
    assert "/reset-password?" in smtp.text(smtp.wait_for(DAVE)[-1])


def test_forgot_password_creates_the_account_from_the_source_and_mails_it(http, provider, cognito, smtp):
    provider.migration_sources.add("pool", "cognito", cognito)
    known, unknown = forgot(http, CAROL), forgot(http, "nobody@example.org")
    assert known.status_code == unknown.status_code == 200
    assert known.text.replace(CAROL, "X") == unknown.text.replace("nobody@example.org", "X")
    carol = user(provider, CAROL)
    assert carol is not None and carol.password_hash is None and carol.groups == ["pilots"]
    assert "/reset-password?" in smtp.text(smtp.wait_for(CAROL)[-1])
    assert user(provider, "nobody@example.org") is None
    # A source that is down: the same page, nothing created, an audit event.
    provider.migration_sources.update("pool", {"endpoint_url": dead_url()})
    assert forgot(http, "other@example.org").text.replace("other@example.org", "X") == unknown.text.replace(
        "nobody@example.org", "X")
    assert [e.detail["during"] for e in events(provider, audit.MIGRATION_SOURCE_UNAVAILABLE)] == ["forgot-password"]


def test_forgot_password_asks_the_webhook_and_the_directory_without_a_password(
        http, provider, webhook, directory, smtp):
    provider.migration_sources.add("hook", "webhook", {"url": webhook.url, "secret": HOOK_SECRET})
    provider.migration_sources.add("dir", "ldap", ldap_options(directory))
    webhook.requests.clear()
    forgot(http, ERIN)
    forgot(http, "alice@example.org")
    assert webhook.requests[0] == {"action": "lookup", "login": ERIN}
    erin, alice = user(provider, ERIN), user(provider, "alice@example.org")
    assert erin is not None and erin.password_hash is None and erin.groups == ["ops", "staff"]
    assert alice is not None and alice.password_hash is None and alice.given_name == "Alice"
    for address in (ERIN, "alice@example.org"):
        assert "/reset-password?" in smtp.text(smtp.wait_for(address)[-1])
    assert [e.detail["source"] for e in events(provider, audit.USER_MIGRATED)] == ["hook", "dir"]
