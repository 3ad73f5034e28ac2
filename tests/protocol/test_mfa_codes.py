"""Codes by text message and by mail, over HTTP on both stores: SMS through a webhook (a real
local HTTP server that checks the signature), through Amazon SNS (moto's server on loopback, read
back through its API) and to the console; email codes through a real SMTP server. Setting each up,
signing in with it, resending, wrong codes."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
from pathlib import Path

import httpx
import pytest
from mfa_helpers import (
    authorize,
    confirm_enrolment,
    consent_if_asked,
    csrf,
    events,
    factors_of,
    follow,
    hidden,
    login_page,
    redeem,
    sign_in,
    start_enrolment,
    submit_code,
)
from support import MailSink, Quiet, free_port, serving

from idbroker import audit
from idbroker.notify.sms import SIGNATURE_HEADER, mask_phone
from idbroker.phone import is_e164, normalise_phone

PHONE = "+447700900123"
WEBHOOK_SECRET = "webhook-signing-secret"
SMS_CODE_RE = re.compile(r"^(\d{6}) is your sign-in code", re.M)
MAIL_CODE_RE = re.compile(r"^\s+(\d{6})\s*$", re.M)


class Gateway:
    """An SMS provider's webhook on loopback: keeps each message whose signature is right."""

    def __init__(self) -> None:
        self.messages: list[dict] = []
        self.rejected = 0
        self.status = 202
        self._arrived = threading.Condition()
        gateway = self

        class Handler(Quiet):
            def do_POST(self):  # noqa: N802
                body = self.body()
                expected = "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
                good = hmac.compare_digest(self.headers.get(SIGNATURE_HEADER, ""), expected)
                ok = good and self.headers["content-type"] == "application/json" and self.path == "/sms"
                with gateway._arrived:
                    if ok:
                        gateway.messages.append(json.loads(body))
                    else:
                        gateway.rejected += 1
                    gateway._arrived.notify_all()
                self.answer(gateway.status if ok else 403)

        self.handler = Handler
        self.url = ""

    def wait_for(self, count: int) -> list[dict]:
        with self._arrived:
            self._arrived.wait_for(lambda: len(self.messages) >= count, timeout=10)
        assert len(self.messages) >= count, (self.messages, self.rejected)
        return self.messages


@pytest.fixture
def gateway():
    g = Gateway()
    with serving(g.handler) as base:
        g.url = base + "/sms"
        yield g


@pytest.fixture
def moto_sns(monkeypatch):
    """Moto's server on a free loopback port, and dummy AWS credentials pointing at nothing else."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "eu-west-1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    url = f"http://127.0.0.1:{port}"
    httpx.post(url + "/moto-api/reset")
    yield url
    server.stop()


def published(url: str) -> list[dict]:
    """The text messages moto's SNS accepted, from its model API."""
    return httpx.get(url + "/moto-api/data.json").json()["sns"]["SMS"]


@pytest.fixture
def backend():
    return "console"


@pytest.fixture
def settings_overrides(request, backend, smtp):
    values = {**smtp.settings(), "sms_backend": backend, "resend_interval": 0}
    if backend == "webhook":
        values.update(sms_webhook_url=request.getfixturevalue("gateway").url, sms_webhook_secret=WEBHOOK_SECRET)
    if backend == "sns":
        values.update(sns_endpoint_url=request.getfixturevalue("moto_sns"), sns_region="eu-west-1")
    return values


def mail_codes(smtp, count: int) -> list[str]:
    """The codes of the first `count` sign-in-code mails to Alice (security notices are skipped)."""
    def mine():
        return [m for m in smtp.messages if str(m["Subject"]) == "Your sign-in code"
                and "alice@example.com" in str(m["To"])]

    with smtp._arrived:
        smtp._arrived.wait_for(lambda: len(mine()) >= count, timeout=10)
    found = mine()
    assert len(found) >= count, [str(m["Subject"]) for m in smtp.messages]
    return [MAIL_CODE_RE.search(MailSink.text(m)).group(1) for m in found]


def sms_code(text: str) -> str:
    found = SMS_CODE_RE.search(text)
    assert found, text
    return found.group(1)


def send_code(http, page):
    r = http.post("/mfa", data={"csrf_token": csrf(page.text), "interaction": hidden(page.text, "interaction"),
                                "next": hidden(page.text, "next"), "action": "send",
                                "factor": hidden(page.text, "factor")})
    assert r.status_code == 303, r.text
    return follow(http, r)


def sign_in_with(http, provider, client, read_code, expected_amr):
    """An authorization that passes the second step with the code `read_code()` returns."""
    page, verifier = authorize(http, client)
    page = login_page(http, page)
    assert "Send the code" in page.text, page.text
    page = send_code(http, page)
    assert "We sent a code to" in page.text and 'autocomplete="one-time-code"' in page.text
    landing = consent_if_asked(http, follow(http, submit_code(http, page, read_code())))
    claims = redeem(http, provider, client, landing, verifier)
    assert claims["amr"] == expected_amr
    return claims


# -- SMS ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["webhook"])
def test_sms_through_the_webhook(http, provider, client, user, gateway):
    sign_in(http)
    page = start_enrolment(http, "sms", phone="+44 7700 900 123")
    assert page.status_code == 200, page.text
    assert mask_phone(PHONE) in page.text
    [message] = gateway.wait_for(1)
    assert message["to"] == PHONE
    assert message["text"].endswith(f"@127.0.0.1:8000 #{sms_code(message['text'])}")  # origin-bound code
    wrong = confirm_enrolment(http, page, "000000" if sms_code(message["text"]) != "000000" else "111111")
    assert wrong.status_code == 400
    done = confirm_enrolment(http, wrong, sms_code(message["text"]), name="Work phone")
    assert done.status_code == 200 and "Save your recovery codes" in done.text
    [factor] = factors_of(provider, user.id)
    assert factor.kind == "sms" and factor.data == {"phone": PHONE} and factor.name == "Work phone"
    assert audit.MFA_ENROLLED in events(provider, user.id)

    http.cookies.clear()
    sign_in_with(http, provider, client, lambda: sms_code(gateway.wait_for(2)[1]["text"]), ["pwd", "sms", "mfa"])
    assert gateway.rejected == 0 and len(gateway.messages) == 2


@pytest.mark.parametrize("backend", ["webhook"])
def test_a_failing_gateway_is_reported(http, provider, user, gateway):
    gateway.status = 500
    sign_in(http)
    page = start_enrolment(http, "sms", phone=PHONE)
    assert page.status_code == 400 and "The code could not be sent" in page.text
    assert not provider.mfa.enrolled(user.id)


@pytest.mark.parametrize("backend", ["sns"])
def test_sms_through_amazon_sns(http, provider, client, user, moto_sns):
    sign_in(http)
    page = start_enrolment(http, "sms", phone="0044 7700 900123")
    assert page.status_code == 200, page.text
    [sent] = published(moto_sns)
    assert sent["phone_number"] == PHONE
    done = confirm_enrolment(http, page, sms_code(sent["message"]))
    assert done.status_code == 200
    http.cookies.clear()
    sign_in_with(http, provider, client, lambda: sms_code(published(moto_sns)[1]["message"]), ["pwd", "sms", "mfa"])
    texts = [m["message"] for m in published(moto_sns)]
    assert len(texts) == 2 and all(t.startswith(tuple("0123456789")) and "is your sign-in code for idbroker" in t
                                   for t in texts)


@pytest.mark.parametrize("backend", ["console"])
def test_sms_to_the_console(http, provider, client, user):
    sign_in(http)
    folder = Path(provider.settings.data_dir) / "sms"

    def latest() -> str:
        files = sorted(folder.glob("*.txt"))
        assert files
        text = files[-1].read_text()
        assert text.startswith(f"To: {PHONE}\n")
        return sms_code(text.split("\n\n", 1)[1])

    page = start_enrolment(http, "sms", phone=PHONE)
    assert confirm_enrolment(http, page, latest()).status_code == 200
    http.cookies.clear()
    sign_in_with(http, provider, client, latest, ["pwd", "sms", "mfa"])
    assert len(list(folder.glob("*.txt"))) == 2


@pytest.mark.parametrize("backend", ["console"])
@pytest.mark.parametrize("phone", ["12345", "+0123456789", "+44 77", "+4477009001234567", "phone", ""])
def test_phone_numbers_must_be_e164(http, provider, user, phone):
    sign_in(http)
    page = start_enrolment(http, "sms", phone=phone)
    assert page.status_code == 400 and "international format" in page.text
    assert factors_of(provider, user.id) == []
    assert not (Path(provider.settings.data_dir) / "sms").exists()


def test_e164_checks():
    assert is_e164(normalise_phone("+1 (555) 555-0100")) and is_e164(normalise_phone("0033 6 12 34 56 78"))
    for bad in ("+1555", "5555550100", "+1555555010012345", "+15555550100x", "+١٢٣٤٥٦٧٨٩"):
        assert normalise_phone(bad) is None, bad
    assert mask_phone("+447700900123") == "+44••••••••23"


# -- email ------------------------------------------------------------------------------------------
def test_email_codes(http, provider, client, user, smtp):
    sign_in(http)
    page = start_enrolment(http, "email")
    assert page.status_code == 200 and "a•••@example.com" in page.text
    [code] = mail_codes(smtp, 1)
    done = confirm_enrolment(http, page, code)
    assert done.status_code == 200
    http.cookies.clear()

    sign_in_with(http, provider, client, lambda: mail_codes(smtp, 2)[1], ["pwd", "otp", "mfa"])


def test_a_new_code_voids_the_previous_one_and_codes_work_once(http, app, provider, client, user, smtp):
    sign_in(http)
    page = start_enrolment(http, "email")
    [first] = mail_codes(smtp, 1)
    page = http.post("/mfa/enrol", data={"csrf_token": csrf(page.text), "action": "resend",
                                         "factor": hidden(page.text, "factor"), "next": "/account/security"})
    assert page.status_code == 200 and "We sent a code to" in page.text
    second = mail_codes(smtp, 2)[1]
    if first != second:
        assert confirm_enrolment(http, page, first).status_code == 400
    assert confirm_enrolment(http, page, second).status_code == 200
    http.cookies.clear()
    page, _ = authorize(http, client)
    page = send_code(http, login_page(http, page))
    code = mail_codes(smtp, 3)[2]
    assert submit_code(http, page, code).status_code == 303
    from starlette.testclient import TestClient
    from support import ISSUER

    with TestClient(app, base_url=ISSUER, follow_redirects=False) as other:
        page, _ = authorize(other, client)
        page = login_page(other, page)
        assert "Send the code" in page.text
        reused = other.post("/mfa", data={"csrf_token": csrf(page.text), "action": "verify", "code": code,
                                          "interaction": hidden(page.text, "interaction"),
                                          "factor": hidden(page.text, "factor")})
        assert reused.status_code == 400


@pytest.mark.parametrize("backend", ["console"])
def test_codes_are_not_sent_more_often_than_the_resend_interval(http, provider, client, user):
    sign_in(http)
    page = start_enrolment(http, "email")
    assert page.status_code == 200
    provider.settings.resend_interval = 60
    again = http.post("/mfa/enrol", data={"csrf_token": csrf(page.text), "action": "resend",
                                          "factor": hidden(page.text, "factor"), "next": "/account/security"})
    assert again.status_code == 429 and "Please wait" in again.text
