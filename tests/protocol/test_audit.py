"""Security events: what the sign-in, reset and password-change paths record, the mails that the
NOTIFY kinds send (once, in the user's language, else the default), and the account page's
"Recent security activity"."""

from __future__ import annotations

import pytest
from lifecycle_helpers import NEW_PASSWORD, last_mail, link_in, local, page_fields
from sqlalchemy import select
from support import CSRF_RE, ISSUER, PASSWORD, MailSink, query_of

from idbroker import audit
from idbroker.store.models import AuditEvent

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


@pytest.fixture
def settings_overrides(smtp):
    return {**smtp.settings(), "default_locale": "de", "resend_interval": 0}


def events(provider, user_id=None):
    with provider.db.session(write=False) as s:
        query = select(AuditEvent).order_by(AuditEvent.id)
        if user_id is not None:
            query = query.where(AuditEvent.user_id == user_id)
        return list(s.scalars(query))


def login(http, password, email="alice@example.com"):
    page = http.get("/login")
    return http.post("/login", data={"csrf_token": CSRF_RE.search(page.text).group(1), "username": email,
                                     "password": password}, headers={"User-Agent": FIREFOX})


def test_sign_in_records_failures_the_lock_and_success(http, provider, user, smtp):
    for _ in range(5):
        assert login(http, "wrong wrong wrong").status_code == 401
    kinds = [e.kind for e in events(provider, user.id)]
    assert kinds == [audit.LOGIN_FAILED] * 5 + [audit.ACCOUNT_LOCKED]
    failed = events(provider, user.id)[0]
    assert failed.ip == "testclient" and failed.user_agent == FIREFOX
    assert events(provider, user.id)[-1].detail == {"seconds": 30}
    # Refused attempts while locked are not password checks: nothing more is recorded.
    assert login(http, PASSWORD).status_code == 429
    assert len(events(provider, user.id)) == 6
    # Unknown accounts are recorded without a user.
    login(http, "whatever it is", email="nobody@example.com")
    assert [e.kind for e in events(provider) if e.user_id is None] == [audit.LOGIN_FAILED]
    provider.audit.drain()
    assert len(smtp.wait_for("alice@example.com")) == 1


def test_success_is_recorded(http, provider, user):
    assert login(http, PASSWORD).status_code == 303
    (event,) = events(provider, user.id)
    assert event.kind == audit.LOGIN_SUCCEEDED and event.detail == {"method": "pwd"}


def test_reset_records_the_change_and_sends_one_mail(http, provider, user, smtp):
    page = http.get("/forgot-password")
    http.post("/forgot-password", data={**page_fields(page), "email": "alice@example.com"})
    url = local(link_in(last_mail(smtp, "alice@example.com"), "/reset-password"))
    page = http.get(url)
    r = http.post("/reset-password", data={**page_fields(page), "token": query_of(url)["token"],
                                           "password": NEW_PASSWORD, "password_confirmation": NEW_PASSWORD})
    assert r.status_code == 200
    (event,) = events(provider, user.id)
    assert event.kind == audit.PASSWORD_CHANGED and event.detail == {"method": "reset"}
    provider.audit.drain()
    assert len(smtp.wait_for("alice@example.com", 2)) == 2   # the link, and "your password was changed"


def test_account_change_records_and_mails(http, provider, user, smtp):
    assert login(http, PASSWORD).status_code == 303
    page = http.get("/account")
    r = http.post("/account/password", data={"csrf_token": CSRF_RE.search(page.text).group(1),
                                             "current_password": PASSWORD, "new_password": NEW_PASSWORD},
                  headers={"User-Agent": FIREFOX})
    assert r.status_code == 303
    assert [e.kind for e in events(provider, user.id)] == [audit.LOGIN_SUCCEEDED, audit.PASSWORD_CHANGED]
    (mail,) = smtp.wait_for("alice@example.com")
    # Alice chose no language: the broker's default (de here).
    assert mail["Subject"] == "Ihr Passwort wurde geändert"
    text = MailSink.text(mail)
    assert "Firefox" in text and "Linux" in text and f"{ISSUER}/forgot-password" in text


@pytest.mark.parametrize("kind", sorted(audit.NOTIFY))
def test_every_notify_kind_mails_the_user_in_their_language(provider, smtp, kind):
    user = provider.users.create("carol@example.com", PASSWORD, locale="fr")
    provider.audit.record(kind, user_id=user.id, ip="192.0.2.1", user_agent=FIREFOX, method="totp", remaining=3,
                          seconds=60)
    (mail,) = smtp.wait_for("carol@example.com")
    subject, _ = audit.MAILS[kind]
    assert mail["Subject"] != subject              # translated
    text = MailSink.text(mail)
    assert "192.0.2.1" in text and ISSUER in text and "UTC" in text
    assert "&#" not in text and "&amp;" not in text  # plain text, not escaped
    (event,) = events(provider, user.id)
    assert event.kind == kind


def test_other_kinds_send_nothing_and_a_broken_mail_server_breaks_nothing(provider, smtp, monkeypatch):
    user = provider.users.create("dave@example.com", PASSWORD)
    provider.audit.record(audit.LOGIN_FAILED, user_id=user.id)
    provider.audit.record(audit.LOGIN_SUCCEEDED, user_id=user.id)
    provider.audit.drain()
    assert smtp.messages == []

    class Broken:
        def send(self, *args, **kwargs):
            raise OSError("no mail today")

    monkeypatch.setattr(provider.audit, "mailer", Broken())
    provider.audit.record(audit.MFA_REMOVED, user_id=user.id, method="sms")   # logged, not raised
    provider.audit.drain()
    assert len(events(provider, user.id)) == 3


def test_the_account_page_lists_recent_security_activity(http, provider, user):
    login(http, "not it, sorry")
    assert login(http, PASSWORD).status_code == 303
    page = http.get("/account")
    assert page.status_code == 200
    assert "Letzte Sicherheitsaktivitäten" in page.text or "Recent security activity" in page.text
    section = page.text.split('id="security-activity"', 1)[1].split("</ul>", 1)[0]
    assert section.index('data-kind="login.succeeded"') < section.index('data-kind="login.failed"')
    assert "Firefox" in section and "testclient" in section
