"""Helpers shared by the sign-up, verification and recovery tests: drive the hosted forms and
read what the real SMTP sink received."""

from __future__ import annotations

import html
import re
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select
from support import ISSUER, MailSink, form_fields, pkce_pair

from idbroker.store.models import User

NEW_PASSWORD = "a brand new passphrase"
CODE_RE = re.compile(r"^\s+(\d{6})\s*$", re.M)


def link_in(text: str, path: str) -> str:
    found = re.search(re.escape(ISSUER + path) + r"\?\S+", text)
    assert found, f"no {path} link in:\n{text}"
    return found.group(0)


def local(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def code_in(text: str) -> str:
    found = CODE_RE.search(text)
    assert found, f"no code in:\n{text}"
    return found.group(1)


def last_mail(smtp: MailSink, to: str, count: int = 1) -> str:
    return MailSink.text(smtp.wait_for(to, count)[-1])


def page_fields(page: Any) -> dict[str, str]:
    return form_fields(page.text)


def signup(http: Any, interaction: str = "", **fields: Any) -> Any:
    page = http.get("/signup", params={"interaction": interaction} if interaction else None)
    assert page.status_code == 200, page.text
    data = {**page_fields(page), "email": "bob@example.com", "password": "bob's long password",
            "given_name": "Bob", "family_name": "Builder"}
    data.update({k: v for k, v in fields.items() if v is not None})
    for key in [k for k, v in fields.items() if v is None]:
        data.pop(key, None)
    return http.post("/signup", data=data)


def authorize_params(client: Any, **extra: str) -> tuple[dict[str, str], str]:
    verifier, challenge = pkce_pair()
    params = dict(client_id=client.client_id, redirect_uri=client.redirect_uri, response_type="code",
                  scope="openid profile email", state="st", code_challenge=challenge,
                  code_challenge_method="S256", nonce="n-1")
    params.update(extra)
    return params, verifier


def user_count(provider: Any) -> int:
    with provider.db.session(write=False) as s:
        return s.scalar(select(func.count()).select_from(User))


def visible_text(page_html: str) -> str:
    """The page without its per-request values (CSRF token), for comparing two answers."""
    body = re.sub(r'name="csrf_token" value="[^"]*"', "", page_html)
    return html.unescape(body)


def input_ids(page_html: str) -> list[str]:
    """ids of every visible form control (input, select, textarea) on a page."""
    ids = []
    for tag in re.findall(r"<(?:input|select|textarea)\b[^>]*>", page_html, re.S):
        if 'type="hidden"' in tag:
            continue
        found = re.search(r'\bid="([^"]+)"', tag)
        assert found, f"form control without id: {tag}"
        ids.append(found.group(1))
    return ids


def assert_labelled(page_html: str) -> None:
    for control in input_ids(page_html):
        assert f'<label for="{control}"' in page_html, f"no label for #{control}"
