"""The apps dashboard (/apps) and the home page that leads to it."""

from __future__ import annotations

import re

import pytest
from support import ISSUER, PASSWORD, form_fields


def sign_in(http, email="alice@example.com", password=PASSWORD):
    page = http.get("/login")
    r = http.post("/login", data={**form_fields(page.text), "username": email, "password": password})
    assert r.status_code == 303 and r.headers["location"] == ISSUER + "/", r.text
    return r


def tile(html, client_id):
    found = re.search(rf'<li class="tile" data-client="{re.escape(client_id)}">(.*?)</li>', html, re.S)
    return found.group(1) if found else None


def test_dashboard_requires_a_session(http):
    r = http.get("/apps")
    assert r.status_code == 303 and r.headers["location"] == ISSUER + "/login?next=%2Fapps"
    home = http.get("/")
    assert home.status_code == 303 and home.headers["location"] == ISSUER + "/apps"


def test_after_sign_in_home_leads_to_the_dashboard(http, user):
    sign_in(http)
    r = http.get("/")
    assert r.status_code == 303 and r.headers["location"] == ISSUER + "/apps"
    page = http.get("/apps")
    assert page.status_code == 200 and "no-store" in page.headers["cache-control"]
    assert 'href="/account"' in page.text and 'href="/oauth2/logout"' in page.text


def test_tiles_for_visible_clients_with_a_start_page(http, register, user):
    register("wiki", name="Team Wiki", logback_uri="https://wiki.example/start",
             logo_uri="https://wiki.example/logo.png")
    register("mail", name="Mail", logback_uri="https://mail.example/")
    register("admin", name="Admin console", logback_uri="https://admin.example/", hidden_from_dashboard=True)
    register("api-only", name="Backend", logback_uri=None)
    sign_in(http)
    html = http.get("/apps").text
    wiki = tile(html, "wiki")
    assert wiki is not None
    assert '<img src="https://wiki.example/logo.png" alt=""' in wiki
    assert "Team Wiki" in wiki
    assert re.search(r'<a href="https://wiki\.example/start"[^>]*rel="noopener"', wiki)
    assert ">Open<" in wiki
    mail = tile(html, "mail")
    assert mail is not None and "<img" not in mail and 'class="logo placeholder"' in mail
    # hidden from the dashboard, or nothing to open
    assert tile(html, "admin") is None and "Admin console" not in html
    assert tile(html, "api-only") is None and "Backend" not in html
    # sorted by name
    assert html.index('data-client="mail"') < html.index('data-client="wiki"')


def test_client_names_and_urls_are_escaped(http, register, user):
    register("evil", name='<script>alert("x")</script>', logback_uri='https://evil.example/?a="><script>')
    sign_in(http)
    html = http.get("/apps").text
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert 'href="https://evil.example/?a=&#34;&gt;&lt;script&gt;"' in html


def test_empty_dashboard(http, user):
    sign_in(http)
    page = http.get("/apps")
    assert page.status_code == 200 and 'class="tiles"' not in page.text
    assert "There are no applications to show yet." in page.text


def test_ended_session_cannot_see_the_dashboard(http, provider, user):
    sign_in(http)
    provider.sessions.end_all_for_user(user.id)
    r = http.get("/apps")
    assert r.status_code == 303 and r.headers["location"] == ISSUER + "/login?next=%2Fapps"


def test_login_returns_to_the_page_that_asked_for_it(http, user):
    r = http.get("/account")
    assert r.status_code == 303 and r.headers["location"].endswith("/login?next=%2Faccount")
    page = http.get(r.headers["location"])
    assert 'name="next" value="/account"' in page.text
    r = http.post("/login", data={**form_fields(page.text), "next": "/account", "username": "alice@example.com",
                                  "password": PASSWORD})
    assert r.headers["location"] == "http://127.0.0.1:8000/account"


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:x"])
def test_login_never_returns_to_another_site(http, user, target):
    page = http.get("/login", params={"next": target})
    assert page.text.count('name="next"') == 1  # the language selector's own, not the login form's
    r = http.post("/login", data={**form_fields(page.text), "next": target, "username": "alice@example.com",
                                  "password": PASSWORD})
    assert r.headers["location"] == "http://127.0.0.1:8000/"
