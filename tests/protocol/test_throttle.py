"""Failed-login throttling over HTTP: per (account, address) locks with exponential delays, no
password check while locked, the owner elsewhere unaffected, one address across many accounts
slowed, many addresses against one account, success resets, one lock mail; and the rate limits on
email-verification codes, resending and forgot-password mails."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from lifecycle_helpers import code_in, last_mail, page_fields, signup
from sqlalchemy import select, update
from starlette.testclient import TestClient
from support import ISSUER, PASSWORD, MailSink, form_fields

from idbroker.accounts.throttle import LIMITS, LoginThrottle
from idbroker.store.db import aware, utcnow
from idbroker.store.models import Throttle

WRONG = "not the password at all"
HOME = "198.51.100.7"     # the attacker's address in these tests (documentation ranges: no traffic)
AWAY = "192.0.2.44"       # the owner's other address


@pytest.fixture
def settings_overrides(smtp):
    return {**smtp.settings(), "lockout_threshold": 5, "lockout_max_seconds": 900, "ip_failure_threshold": 30}


@pytest.fixture
def at(app):
    """Browsers at given client addresses: at(ip) -> TestClient."""
    clients: list[TestClient] = []

    def _at(ip: str) -> TestClient:
        client = TestClient(app, base_url=ISSUER, follow_redirects=False, client=(ip, 50000))
        client.__enter__()
        clients.append(client)
        return client

    yield _at
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def verify_calls(provider, monkeypatch):
    """How many times a password was checked against a hash."""
    calls = []
    original = provider.passwords.verify

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(provider.passwords, "verify", counting)
    return calls


def login(http, email="alice@example.com", password=WRONG):
    page = http.get("/login")
    assert page.status_code == 200
    return http.post("/login", data={**form_fields(page.text), "username": email, "password": password})


def pair_row(provider, email="alice@example.com", ip=HOME) -> Throttle | None:
    with provider.db.session(write=False) as s:
        return s.get(Throttle, LoginThrottle.keys(email, ip)[0])


def expire_locks(provider):
    """As if every lock had run out (rather than sleeping)."""
    with provider.db.session() as s:
        s.execute(update(Throttle).where(Throttle.locked_until.is_not(None))
                  .values(locked_until=utcnow() - timedelta(seconds=1)))


def lock_length(row: Throttle) -> int:
    return round((aware(row.locked_until) - aware(row.last_failure_at)).total_seconds())


def test_lockout_after_threshold_answers_429_and_does_not_check_the_password(at, provider, user, verify_calls):
    http = at(HOME)
    for _ in range(5):
        r = login(http)
        assert r.status_code == 401 and "Incorrect email or password." in r.text
    assert len(verify_calls) == 5
    # Locked now: even the right password is not checked, and nothing says whether it was right.
    for password in (PASSWORD, WRONG):
        r = login(http, password=password)
        assert r.status_code == 429
        assert 0 < int(r.headers["retry-after"]) <= 30
        assert re.search(r"Too many attempts\. Try again in (30|29|28) seconds\.", r.text)
        assert "idbroker_session" not in r.headers.get("set-cookie", "")
    assert len(verify_calls) == 5
    assert r.headers["cache-control"] == "no-store" and 'value="alice@example.com"' in r.text


def test_the_lock_doubles_with_each_failure_up_to_the_maximum(at, provider, user, settings_overrides):
    http = at(HOME)
    for _ in range(5):
        login(http)
    lengths = [lock_length(pair_row(provider))]
    for _ in range(6):
        expire_locks(provider)
        assert login(http).status_code == 401
        r = login(http)
        assert r.status_code == 429
        lengths.append(lock_length(pair_row(provider)))
        assert abs(int(r.headers["retry-after"]) - lengths[-1]) <= 2
    assert lengths == [30, 60, 120, 240, 480, 900, 900]
    assert "Try again in 15 minutes." in r.text


def test_an_expired_lock_lets_the_owner_in_and_success_resets_the_pair(at, provider, user):
    http = at(HOME)
    for _ in range(5):
        login(http)
    assert login(http, password=PASSWORD).status_code == 429
    expire_locks(provider)
    r = login(http, password=PASSWORD)
    assert r.status_code == 303, r.text
    assert pair_row(provider) is None
    # A fresh start: four more mistakes are plain mistakes, the fifth locks again.
    for _ in range(4):
        assert login(http).status_code == 401
    assert login(http, password=PASSWORD).status_code == 303
    for _ in range(5):
        assert login(http).status_code == 401
    assert login(http).status_code == 429


def test_the_owner_signing_in_from_elsewhere_is_not_locked(at, provider, user):
    attacker, owner = at(HOME), at(AWAY)
    for _ in range(5):
        login(attacker)
    assert login(attacker, password=PASSWORD).status_code == 429
    r = login(owner, password=PASSWORD)
    assert r.status_code == 303, r.text
    # and the attacker stays locked
    assert login(attacker, password=PASSWORD).status_code == 429


def test_one_address_failing_across_many_accounts_is_slowed(at, provider, user, verify_calls):
    http = at(HOME)
    for i in range(30):
        assert login(http, email=f"user{i}@example.com").status_code == 401
    r = login(http, email="alice@example.com", password=PASSWORD)
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    assert len(verify_calls) == 30
    # The accounts it tried are not locked for anyone else.
    assert login(at(AWAY), email="alice@example.com", password=PASSWORD).status_code == 303


def test_many_addresses_against_one_account_slow_it_everywhere(at, provider, user):
    for i in range(LoginThrottle.ACCOUNT_ADDRESSES):
        assert login(at(f"203.0.113.{i + 1}")).status_code == 401
    owner = at(AWAY)
    r = login(owner, password=PASSWORD)
    assert r.status_code == 429
    expire_locks(provider)
    assert login(owner, password=PASSWORD).status_code == 303
    # The owner's address no longer counts against the account: the next attacker address is
    # the tenth again, not the eleventh.
    with provider.db.session(write=False) as s:
        account = s.get(Throttle, LoginThrottle.keys("alice@example.com", AWAY)[1])
    assert account.failures == LoginThrottle.ACCOUNT_ADDRESSES


def test_unknown_accounts_lock_the_same_way(at, provider, user):
    http = at(HOME)
    for _ in range(5):
        assert login(http, email="nobody@example.com").status_code == 401
    r = login(http, email="nobody@example.com")
    assert r.status_code == 429 and "Too many attempts." in r.text


def test_the_owner_gets_one_mail_per_lock_in_their_language(at, provider, smtp):
    provider.users.create("alice@example.com", PASSWORD, email_verified=True, locale="fr")
    http = at(HOME)
    for _ in range(5):
        login(http)
    (mail,) = smtp.wait_for("alice@example.com")
    assert "connexion" in str(mail["Subject"]).lower()
    text = MailSink.text(mail)
    assert HOME in text and f"{ISSUER}/forgot-password" in text
    # More attempts while locked, and further locks of the same run, send nothing more.
    for _ in range(3):
        login(http)
    for _ in range(2):
        expire_locks(provider)
        login(http)
    provider.audit.drain()
    assert len([m for m in smtp.messages if "alice@example.com" in str(m["To"])]) == 1


def test_no_lock_mail_for_addresses_without_an_account(at, provider, smtp):
    http = at(HOME)
    for _ in range(6):
        login(http, email="nobody@example.com")
    provider.audit.drain()
    assert smtp.messages == []


def test_a_burst_gets_no_more_tries_than_the_threshold(at, provider, user, verify_calls):
    """Counted before the password is checked: parallel requests cannot slip past the lock."""
    import concurrent.futures

    pages = [at(HOME) for _ in range(8)]
    forms = [form_fields(p.get("/login").text) for p in pages]
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(lambda i: pages[i].post("/login", data={**forms[i], "username": "alice@example.com",
                                                                     "password": WRONG}).status_code, range(8)))
    assert sorted(codes) == [401] * 5 + [429] * 3
    assert len(verify_calls) == 5


def test_sign_ins_in_flight_never_lock_a_busy_address(provider, user):
    """Many people behind one address signing in at once: only real failures count there."""
    throttle = provider.login_throttle
    busy = provider.settings.ip_failure_threshold + 5
    attempts = [throttle.attempt(f"user{i}@example.com", HOME) for i in range(busy)]
    assert all(a.retry_after == 0 for a in attempts)
    assert throttle.locked_for("someone@example.com", HOME) == 0


def test_purge_forgets_old_rows(provider, user):
    throttle = provider.login_throttle
    attempt = throttle.attempt("alice@example.com", HOME)
    assert attempt.retry_after == 0
    throttle.failed(attempt)  # the pair, the account and the address each have a row now
    old = utcnow() - timedelta(days=2)
    with provider.db.session() as s:
        s.execute(update(Throttle).values(first_failure_at=old, last_failure_at=old, locked_until=None))
    assert throttle.purge() == 3
    with provider.db.session(write=False) as s:
        assert s.scalars(select(Throttle)).all() == []


# -- rate limits ------------------------------------------------------------------------------------
@pytest.fixture
def unverified(http, provider, smtp):
    """Bob, just signed up (signed in, address not verified), and his verification page."""
    page = signup(http)
    assert page.status_code == 200
    return page


def _verify(http, page, code):
    return http.post("/verify-email", data={**page_fields(page), "action": "verify", "code": code})


def _resend(http, page):
    return http.post("/verify-email", data={**page_fields(page), "action": "resend"})


def test_code_verification_is_rate_limited_per_user(http, provider, smtp, unverified, settings_overrides):
    limit, window = LIMITS["verify-code"]
    provider.settings.resend_interval = 0
    tries = 0
    while tries < limit:
        r = _verify(http, unverified, "000000")
        assert r.status_code == 400
        tries += 1
        if tries % 5 == 0:
            assert _resend(http, unverified).status_code == 200
    code = code_in(last_mail(smtp, "bob@example.com", 1 + limit // 5))
    r = _verify(http, unverified, code)   # even the right code is not checked now
    assert r.status_code == 429 and 0 < int(r.headers["retry-after"]) <= window
    assert "Too many attempts. Try again in 15 minutes." in r.text
    assert provider.users.by_email("bob@example.com").email_verified is False
    # When the window is over, the code works.
    with provider.db.session() as s:
        s.execute(update(Throttle).values(first_failure_at=utcnow() - timedelta(seconds=window)))
    assert _verify(http, unverified, code).status_code in (200, 303)
    assert provider.users.by_email("bob@example.com").email_verified is True


def test_resending_codes_is_rate_limited(http, provider, smtp, unverified):
    limit, window = LIMITS["verify-send"]
    provider.settings.resend_interval = 0
    for _ in range(limit):
        assert _resend(http, unverified).status_code == 200
    r = _resend(http, unverified)
    assert r.status_code == 429 and 3500 < int(r.headers["retry-after"]) <= window
    assert "Try again in 1 hour." in r.text
    assert len(smtp.wait_for("bob@example.com", 1 + limit)) == 1 + limit
    provider.audit.drain()
    assert len(smtp.messages) == 1 + limit


def test_forgot_password_mails_are_rate_limited(at, provider, smtp, user):
    provider.settings.resend_interval = 0
    http = at(HOME)

    def forgot(email):
        page = http.get("/forgot-password")
        return http.post("/forgot-password", data={**page_fields(page), "email": email})

    per_account, _ = LIMITS["reset-send"]
    for _ in range(per_account + 2):
        assert forgot("alice@example.com").status_code == 200   # the same answer past the limit
    assert len(smtp.wait_for("alice@example.com", per_account)) == per_account
    per_address, window = LIMITS["reset-ask-ip"]
    for i in range(per_address - per_account - 2):
        assert forgot(f"user{i}@example.com").status_code == 200
    r = forgot("alice@example.com")
    assert r.status_code == 429 and 0 < int(r.headers["retry-after"]) <= window and "Too many attempts." in r.text
    elsewhere = at(AWAY)
    page = elsewhere.get("/forgot-password")
    assert elsewhere.post("/forgot-password", data={**page_fields(page), "email": "x@example.com"}).status_code == 200
    assert len([m for m in smtp.messages if "alice" in str(m["To"])]) == per_account


def test_the_limiter_counts_atomically_and_windows_reset(provider):
    limiter = provider.limiter
    assert [limiter.hit("test:k", 3, 60) for _ in range(3)] == [None, None, None]
    wait = limiter.hit("test:k", 3, 60)
    assert wait is not None and 0 < wait <= 60
    assert limiter.peek("test:k", 3, 60) == wait or abs(limiter.peek("test:k", 3, 60) - wait) <= 1
    assert limiter.peek("test:other", 3, 60) is None
    with provider.db.session() as s:
        s.execute(update(Throttle).where(Throttle.key == "test:k")
                  .values(first_failure_at=utcnow() - timedelta(seconds=61)))
    assert limiter.hit("test:k", 3, 60) is None
    limiter.clear("test:k")
    assert limiter.peek("test:k", 1, 60) is None
    with pytest.raises(ValueError):
        limiter.hit("x" * 300, 1, 60)
