"""Breached and common passwords: the shipped list (size, known entries, misses), refusal with the
reason at sign-up, reset and change of password, the switch, and the optional k-anonymity range
check against a local server that speaks the Pwned Passwords range protocol."""

from __future__ import annotations

import hashlib
import secrets
import time

import pytest
from lifecycle_helpers import NEW_PASSWORD, last_mail, link_in, local, page_fields, signup, user_count
from support import CSRF_RE, PASSWORD, Quiet, free_port, query_of, serving

from idbroker.accounts.breached import HEADER, MAGIC, BreachedList, BreachedPasswords, RangeChecker
from idbroker.accounts.policy import PasswordPolicy, PasswordRejected

REASON = "This password appears in lists of breached or common passwords."
# The first and last entries of the source list that the build keeps (src/idbroker/data/README.md),
# and a few well-known ones.
KNOWN = ["password", 'administrator"', "password123", "qwertyuiop", "iloveyou123", "1234567890"]
ONLY_ONLINE = "a phrase only the range service knows 7c1e"


@pytest.fixture(scope="module")
def shipped():
    return BreachedList()


def test_the_shipped_list_is_large_sorted_and_mapped_lazily(shipped):
    fresh = BreachedList()
    assert fresh._map is None                 # nothing read before the first lookup
    assert len(shipped) >= 100_000
    raw = shipped.path.read_bytes()
    magic, count, size = HEADER.unpack_from(raw)
    assert magic == MAGIC and size == 8 and len(raw) == HEADER.size + count * size
    assert len(raw) < 2_000_000               # compact: ~8 bytes an entry, no passwords in clear
    entries = [raw[i:i + size] for i in range(HEADER.size, len(raw), size)]
    assert entries == sorted(set(entries))
    assert b"password" not in raw


@pytest.mark.parametrize("password", KNOWN)
def test_known_entries_hit(shipped, password):
    assert password in shipped


def test_case_variants_of_known_entries_are_refused(shipped):
    check = BreachedPasswords(shipped)
    assert "iLoveYou123" not in shipped and check("iLoveYou123") and check("SunShine1")


def test_random_strong_passwords_miss(shipped):
    check = BreachedPasswords(shipped)
    assert not any(check(secrets.token_urlsafe(12)) for _ in range(2000))
    assert not check(PASSWORD) and not check(NEW_PASSWORD)


def test_policy_says_why():
    policy = PasswordPolicy(breached=BreachedPasswords())
    with pytest.raises(PasswordRejected) as caught:
        policy.check("iloveyou123")
    assert REASON in caught.value.message
    policy.check(PASSWORD)
    PasswordPolicy().check("iloveyou123")     # no list, no refusal


# -- over HTTP -----------------------------------------------------------------------------------------
@pytest.fixture
def settings_overrides(smtp):
    return {**smtp.settings(), "resend_interval": 0}


def test_signup_refuses_a_breached_password_with_the_reason(http, provider, smtp):
    r = signup(http, password="iloveyou123")
    assert r.status_code == 400 and REASON in r.text
    assert user_count(provider) == 0
    assert signup(http, password=NEW_PASSWORD).status_code == 200
    assert user_count(provider) == 1


def test_reset_refuses_a_breached_password_with_the_reason(http, provider, smtp, user):
    page = http.get("/forgot-password")
    http.post("/forgot-password", data={**page_fields(page), "email": "alice@example.com"})
    url = local(link_in(last_mail(smtp, "alice@example.com"), "/reset-password"))
    page = http.get(url)
    data = {**page_fields(page), "token": query_of(url)["token"], "password": "Password123",
            "password_confirmation": "Password123"}
    r = http.post("/reset-password", data=data)
    assert r.status_code == 400 and REASON in r.text
    assert provider.users.authenticate("alice@example.com", PASSWORD) is not None
    r = http.post("/reset-password", data={**data, "password": NEW_PASSWORD, "password_confirmation": NEW_PASSWORD})
    assert r.status_code == 200


def _sign_in(http):
    page = http.get("/login")
    r = http.post("/login", data={"csrf_token": CSRF_RE.search(page.text).group(1), "username": "alice@example.com",
                                  "password": PASSWORD})
    assert r.status_code == 303, r.text


def _change(http, new):
    page = http.get("/account")
    return http.post("/account/password", data={"csrf_token": CSRF_RE.search(page.text).group(1),
                                                "current_password": PASSWORD, "new_password": new})


def test_account_change_refuses_a_breached_password_with_the_reason(http, provider, user):
    _sign_in(http)
    r = _change(http, "qwertyuiop")
    assert r.status_code == 400 and REASON in r.text
    assert provider.users.authenticate("alice@example.com", PASSWORD) is not None
    assert _change(http, NEW_PASSWORD).status_code == 303


@pytest.mark.parametrize("settings_overrides", [{"breached_passwords": False}])
def test_the_check_can_be_turned_off(http, provider):
    r = signup(http, password="iloveyou123")
    assert r.status_code == 200 and user_count(provider) == 1


# -- the range API -------------------------------------------------------------------------------------
class RangeServer:
    """Pwned Passwords range protocol: GET /range/<5 hex> -> "SUFFIX:COUNT" lines, with padding."""

    def __init__(self, breached: list[str]):
        self.requests: list[str] = []
        digests = [hashlib.sha1(p.encode()).hexdigest().upper() for p in breached]
        table: dict[str, list[str]] = {}
        for d in digests:
            table.setdefault(d[:5], []).append(f"{d[5:]}:{1234}")
        server = self

        class Handler(Quiet):
            def do_GET(self):  # noqa: N802
                server.requests.append(self.path)
                prefix = self.path.rsplit("/", 1)[-1]
                if not self.path.startswith("/range/") or len(prefix) != 5:
                    self.answer(404, content_type="text/plain")
                    return
                lines = table.get(prefix.upper(), []) + [f"{'0' * 34}{i % 10}:0" for i in range(5)]  # padding
                self.answer(200, "\r\n".join(lines).encode(), "text/plain")

        self.handler = Handler
        self.url = ""


@pytest.fixture
def range_server():
    server = RangeServer([ONLY_ONLINE, "password"])
    with serving(server.handler) as base:
        server.url = base + "/range"
        yield server


def test_range_check_hit_and_miss_send_only_the_prefix(range_server):
    checker = RangeChecker(range_server.url)
    assert checker.count(ONLY_ONLINE) == 1234
    strong = secrets.token_urlsafe(16)
    assert checker.count(strong) == 0
    for path, password in zip(range_server.requests, (ONLY_ONLINE, strong), strict=True):
        digest = hashlib.sha1(password.encode()).hexdigest().upper()
        assert path == "/range/" + digest[:5]
        assert password not in path and digest[5:] not in path
    # a padding line (count 0) is not a hit, and answers are cached per prefix
    assert checker.count(ONLY_ONLINE) == 1234 and len(range_server.requests) == 2
    checker.close()


class TestWithRangeService:
    @pytest.fixture
    def settings_overrides(self, range_server, smtp):
        return {**smtp.settings(), "breached_range_url": range_server.url}

    def test_signup_is_refused_for_a_password_only_the_service_knows(self, http, provider, range_server):
        r = signup(http, password=ONLY_ONLINE)
        assert r.status_code == 400 and REASON in r.text
        assert user_count(provider) == 0
        assert range_server.requests and all(len(p) == len("/range/") + 5 for p in range_server.requests)
        assert signup(http, password=NEW_PASSWORD).status_code == 200

    def test_offline_list_decides_first(self, http, provider, range_server):
        assert REASON in signup(http, password="iloveyou123").text
        assert range_server.requests == []


class TestRangeServiceDown:
    @pytest.fixture
    def settings_overrides(self, smtp):
        return {**smtp.settings(), "breached_range_url": f"http://127.0.0.1:{free_port()}/range"}

    def test_the_offline_list_still_works(self, http, provider):
        started = time.monotonic()
        r = signup(http, password="iloveyou123")
        assert r.status_code == 400 and REASON in r.text
        r = signup(http, password=ONLY_ONLINE)
        assert r.status_code == 200 and user_count(provider) == 1
        assert time.monotonic() - started < 10


def test_an_unreachable_or_confused_service_is_no_answer():
    assert RangeChecker(f"http://127.0.0.1:{free_port()}", timeout=0.5).count("anything at all") is None
    import httpx

    nonsense = httpx.MockTransport(lambda request: httpx.Response(200, text="<html>not a range</html>\nx:y"))
    assert RangeChecker("http://range.invalid", transport=nonsense).count("anything at all") is None
    assert BreachedPasswords(online=RangeChecker("http://range.invalid", transport=nonsense))("anything at all") \
        is False
