"""Every endpoint that sends a mail or a text message is rate-limited per target (the address or
number written to), per account and per client address, and - where it can be abused to flood
someone - sends at most one message per `resend_interval`. Where the answer could tell whether
an address has an account, the limited answer is the answer: the same page, simply no message.

One parametrised case per endpoint. The limits are made small (2) to keep the tests short; each
test sends more requests than a limit allows along one dimension only (the others vary), over
HTTP from browsers at different client addresses, and counts what the real SMTP server and the
SMS console received."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from lifecycle_helpers import page_fields, signup, visible_text
from mfa_helpers import csrf, hidden, start_enrolment
from starlette.testclient import TestClient
from support import ISSUER, PASSWORD, MailSink

from idbroker.accounts.throttle import LIMITS

SMALL = 2
# What these mails are called (security notices, mailed on their own schedule, are not counted).
SUBJECTS = ("Confirm your email address", "You already have an account", "Reset your password",
            "Confirm your new email address", "Your sign-in code")


@pytest.fixture
def settings_overrides(smtp):
    return {**smtp.settings(), "resend_interval": 0}


@pytest.fixture
def small_limits(monkeypatch):
    for name in LIMITS:
        if name.endswith(("-send", "-send-ip")) or name in ("signup-ip", "reset-ask-ip"):
            monkeypatch.setitem(LIMITS, name, (SMALL, 3600))


@pytest.fixture
def at(app) -> Iterator[Callable[[str], TestClient]]:
    """A new browser at a client address."""
    opened: list[TestClient] = []

    def _at(ip: str) -> TestClient:
        browser = TestClient(app, base_url=ISSUER, follow_redirects=False, client=(ip, 50000))
        browser.__enter__()
        opened.append(browser)
        return browser

    yield _at
    for browser in opened:
        browser.__exit__(None, None, None)


def number(i: int) -> str:
    return f"+4477009001{i:02d}"


def sign_in(browser: TestClient, email: str) -> Any:
    page = browser.get("/login")
    r = browser.post("/login", data={**page_fields(page), "username": email, "password": PASSWORD})
    assert r.status_code == 303, r.text
    return r


@dataclass
class Case:
    """One endpoint: `send(browser, actor, target)` makes one request that would send one message
    to target(target); `actor` is the index of the signed-in account, when there is one."""

    send: Callable[..., Any]
    target: Callable[[int], str]
    prepare: Callable[..., Any] = lambda ctx, browser, actor, target: None
    setup: Callable[..., Any] = lambda ctx: None
    signed_in: bool = False          # sent by a signed-in account (per-account limits apply)
    own_target: bool = False         # the target is the account's own (its address)
    same_answer: bool = False        # the answer could tell who has an account: limited = unlimited
    interval: bool = True            # one message per resend_interval
    sms: bool = False


@dataclass
class Ctx:
    provider: Any
    smtp: MailSink
    state: dict[str, Any] = field(default_factory=dict)


def actor_email(k: int) -> str:
    return f"user{k}@example.com"


def make_actors(ctx: Ctx, verified: bool = True) -> None:
    for k in range(6):
        ctx.provider.users.create(actor_email(k), PASSWORD, email_verified=verified, phone_number=number(50 + k))


# -- the endpoints -------------------------------------------------------------------------------------
def signup_send(ctx, browser, actor, target):
    return signup(browser, email=target)


def forgot_send(ctx, browser, actor, target):
    page = browser.get("/forgot-password")
    return browser.post("/forgot-password", data={**page_fields(page), "email": target})


def pending_prepare(ctx, browser, actor, target):
    ctx.state[id(browser)] = signup(browser, email=target)


def verify_resend(ctx, browser, actor, target):
    return browser.post("/verify-email", data={**page_fields(ctx.state[id(browser)]), "action": "resend"})


def unverified_prepare(ctx, browser, actor, target):
    sign_in(browser, actor_email(actor))
    ctx.state[id(browser)] = browser.get("/verify-email")   # may mail a first code: not counted


def email_change_send(ctx, browser, actor, target):
    page = browser.get("/account")
    return browser.post("/account/email", data={"csrf_token": csrf(page.text), "new_email": target,
                                                "current_password": PASSWORD})


def phone_prepare(ctx, browser, actor, target):
    sign_in(browser, actor_email(actor))
    page = browser.get("/account")
    r = browser.post("/account/profile", data={"csrf_token": csrf(page.text), "given_name": "", "family_name": "",
                                               "locale": "", "phone_number": target})
    assert r.status_code == 303


def phone_send(ctx, browser, actor, target):
    page = browser.get("/account")
    return browser.post("/account/phone/send", data={"csrf_token": csrf(page.text)})


def signed_in_prepare(ctx, browser, actor, target):
    sign_in(browser, actor_email(actor))


def sms_enrol_send(ctx, browser, actor, target):
    return start_enrolment(browser, "sms", phone=target)


def email_enrol_prepare(ctx, browser, actor, target):
    sign_in(browser, actor_email(actor))
    ctx.state[id(browser)] = start_enrolment(browser, "email")   # mails a first code: not counted


def email_enrol_resend(ctx, browser, actor, target):
    page = ctx.state[id(browser)]
    if 'name="factor"' not in page.text:  # the set-up itself was refused: nothing to send again
        return page
    return browser.post("/mfa/enrol", data={"csrf_token": csrf(page.text), "action": "resend",
                                            "factor": hidden(page.text, "factor"), "next": "/account/security"})


def factors_setup(ctx):
    make_actors(ctx)
    for k in range(6):
        user = ctx.provider.users.by_email(actor_email(k))
        factor = ctx.provider.mfa.add_pending(user.id, "email", data={"email": user.email})
        ctx.provider.mfa.confirm(factor.id)


def second_step_prepare(ctx, browser, actor, target):
    r = sign_in(browser, actor_email(actor))
    page = browser.get(r.headers["location"].removeprefix(ISSUER))
    assert "Send the code" in page.text, page.text
    ctx.state[id(browser)] = page


def second_step_send(ctx, browser, actor, target):
    page = ctx.state[id(browser)]
    return browser.post("/mfa", data={"csrf_token": csrf(page.text), "interaction": "", "action": "send",
                                      "next": hidden(page.text, "next"), "factor": hidden(page.text, "factor")})


CASES = {
    "sign-up, new address": Case(signup_send, lambda i: f"new{i}@example.com", same_answer=True),
    "sign-up, registered address": Case(signup_send, actor_email, setup=make_actors, same_answer=True),
    "forgotten password": Case(forgot_send, actor_email, setup=make_actors, same_answer=True),
    "new verification code after sign-up": Case(verify_resend, lambda i: f"new{i}@example.com",
                                                 prepare=pending_prepare),
    "new verification code, signed in": Case(verify_resend, actor_email, prepare=unverified_prepare,
                                             setup=lambda ctx: make_actors(ctx, verified=False), signed_in=True,
                                             own_target=True),
    "change of address": Case(email_change_send, lambda i: f"new{i}@example.org", prepare=signed_in_prepare,
                              setup=make_actors, signed_in=True, same_answer=True),
    "phone number confirmation": Case(phone_send, number, prepare=phone_prepare, setup=make_actors,
                                      signed_in=True, sms=True),
    "text-message factor set-up": Case(sms_enrol_send, number, prepare=signed_in_prepare, setup=make_actors,
                                       signed_in=True, sms=True),
    # (its pace: test_mfa_codes.py, test_codes_are_not_sent_more_often_than_the_resend_interval)
    "email factor, new code": Case(email_enrol_resend, actor_email, prepare=email_enrol_prepare, setup=make_actors,
                                   signed_in=True, own_target=True, interval=False),
    "second step of a sign-in": Case(second_step_send, actor_email, prepare=second_step_prepare,
                                     setup=factors_setup, signed_in=True, own_target=True),
}


def received(ctx: Ctx, case: Case, target: str) -> int:
    if case.sms:
        folder = Path(ctx.provider.settings.data_dir) / "sms"
        return sum(1 for f in folder.glob("*.txt") if f.read_text().startswith(f"To: {target}\n")) \
            if folder.exists() else 0
    return sum(1 for m in ctx.smtp.messages if target in str(m["To"]) and str(m["Subject"]) in SUBJECTS)


def answer(r: Any, target: str) -> tuple[Any, ...]:
    return r.status_code, r.headers.get("location"), visible_text(r.text).replace(target, "X")


def run(ctx: Ctx, case: Case, at: Callable[[str], TestClient], plan: list[tuple[str, int, int]], *,
        with_prepare: bool = False) -> tuple[list[int], list[Any]]:
    """Sends one request per (client address, actor, target index), each from a new browser;
    returns the messages each caused (with what preparing the browser caused: with_prepare) and
    the answers."""
    caused, answers = [], []
    for ip, actor, index in plan:
        target = case.target(actor if case.own_target else index)
        browser = at(ip)
        before = received(ctx, case, target)
        case.prepare(ctx, browser, actor, target)
        if not with_prepare:
            before = received(ctx, case, target)
        r = case.send(ctx, browser, actor, target)
        assert r.status_code < 500, r.text
        caused.append(received(ctx, case, target) - before)
        answers.append(answer(r, target))
    return caused, answers


@pytest.fixture
def ctx(provider, smtp) -> Ctx:
    return Ctx(provider, smtp)


@pytest.mark.parametrize("name", CASES)
def test_messages_to_one_target_are_limited(name, ctx, at, small_limits):
    """From new client addresses and, where an account sends, different accounts: one target."""
    case = CASES[name]
    case.setup(ctx)
    same_actor = case.own_target or not case.signed_in
    plan = [(f"198.51.100.{n}", 0 if same_actor else n, 0) for n in range(SMALL + 2)]
    caused, answers = run(ctx, case, at, plan)
    # (Exactly SMALL, unless preparing the browser used some up: a first code on arrival.)
    assert caused[0] == 1 and sum(caused) <= SMALL and caused[-1] == 0, caused
    if case.same_answer:
        assert answers[-1] == answers[0]


@pytest.mark.parametrize("name", [name for name, case in CASES.items() if case.signed_in and not case.own_target])
def test_messages_from_one_account_are_limited(name, ctx, at, small_limits):
    """One account, from new client addresses, to new targets."""
    case = CASES[name]
    case.setup(ctx)
    caused, answers = run(ctx, case, at, [(f"198.51.100.{n}", 0, n) for n in range(SMALL + 2)])
    assert caused[0] == 1 and sum(caused) == SMALL and caused[-1] == 0, caused
    if case.same_answer:
        assert answers[-1] == answers[0]


@pytest.mark.parametrize("name", CASES)
def test_messages_caused_from_one_client_address_are_limited(name, ctx, at, small_limits):
    """One client address, to new targets, as new accounts where an account sends."""
    case = CASES[name]
    case.setup(ctx)
    caused, answers = run(ctx, case, at, [("203.0.113.9", n, n) for n in range(SMALL + 2)])
    assert caused[0] == 1 and sum(caused) <= SMALL and caused[-1] == 0, caused
    if answers[-1][0] == 429:
        assert "Too many" in answers[-1][2] or "Please wait" in answers[-1][2] or "Try again" in answers[-1][2]


@pytest.mark.parametrize("name", [name for name, case in CASES.items() if case.interval])
def test_a_burst_sends_one_message_per_interval(name, ctx, at, provider):
    """Six requests at once (the attack), with the real limits: one message (counting what
    arriving on the page may send)."""
    provider.settings.resend_interval = 60
    case = CASES[name]
    case.setup(ctx)
    same_actor = case.own_target or not case.signed_in
    caused, answers = run(ctx, case, at, [(f"198.51.100.{n}", 0 if same_actor else n, 0) for n in range(6)],
                          with_prepare=True)
    assert caused == [1, 0, 0, 0, 0, 0], caused
    if case.same_answer:
        assert len(set(answers)) == 1
