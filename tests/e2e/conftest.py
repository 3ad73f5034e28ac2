"""Browser tests: the hosted pages in a real Chromium (the Debian package, driven by Playwright's
sync API) against a real ``idbroker serve`` that sends real mail to an SMTP server in the test.

Fixtures: ``browser`` (one Chromium for the run; every test skips when it is not installed),
``mail`` (an aiosmtpd server), ``rp`` (a relying party's redirect URI), ``broker`` (a server on
SQLite with sign-up fields and a custom attribute, shared by the suite), ``client`` (a
third-party confidential client of it) and ``context``/``page`` (a fresh browser profile per
test). When a test fails, its report gets the page it was on and the tail of the broker's log.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from browser_helpers import (
    WAIT_SECONDS,
    Broker,
    Client,
    MailSink,
    RelyingParty,
    add_client,
    chromium_missing,
    launch,
    make_broker,
    running,
)

SIGNUP_SETTINGS = {"signup_fields": "given_name,family_name,newsletter", "custom_attributes": "newsletter:bool"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: drives the hosted pages in Chromium (tests/e2e)")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    reason = chromium_missing()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=WAIT_SECONDS * 1000)
    with sync_playwright() as playwright:
        chromium = launch(playwright)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="session")
def mail() -> Iterator[MailSink]:
    sink = MailSink()
    yield sink
    sink.stop()


@pytest.fixture(scope="session")
def rp() -> Iterator[RelyingParty]:
    server = RelyingParty()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def broker(browser: Any, mail: MailSink, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    with running(make_broker(tmp_path_factory.mktemp("e2e-broker"), mail, **SIGNUP_SETTINGS)) as b:
        yield b


@pytest.fixture(scope="session")
def client(broker: Broker, rp: RelyingParty) -> Client:
    return add_client(broker, rp, "travel", "--name", "Travel Planner")


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(locale="en-US")
    ctx.set_default_timeout(WAIT_SECONDS * 1000)
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def page(context: Any) -> Any:
    return context.new_page()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    report = yield
    if report.failed and call.when in ("setup", "call"):
        funcargs = getattr(item, "funcargs", {})
        pages = [p for ctx in (funcargs.get("context"), funcargs.get("other")) if ctx is not None
                 for p in _pages(ctx)]
        for p in pages:
            report.sections.append(("browser page", f"{p.url}\n\n{_text(p)}"))
        for name in ("broker", "terms_broker"):
            b = funcargs.get(name)
            if isinstance(b, Broker):
                report.sections.append((f"idbroker serve output ({name})", b.log()))
    return report


def _pages(ctx: Any) -> list[Any]:
    try:
        return list(ctx.pages)
    except Exception:  # a closed context
        return []


def _text(p: Any) -> str:
    try:
        return p.locator("body").inner_text(timeout=1000)
    except Exception:  # the page is gone or not loaded
        return "(no page text)"
