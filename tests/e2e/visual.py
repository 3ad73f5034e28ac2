"""Screenshots for the visual regression test (tests/e2e/test_visual_regression.py) and the one code
path that takes them, shared by the test and `scripts/screenshots --baselines` (which writes the
committed baselines under tests/e2e/baselines/), so a baseline taken on this machine matches the
test right away.

Determinism: a throwaway broker of its own (SQLite), fixed users, names and application, a fixed
800×1000 viewport at scale 1, animations and the caret off, reduced motion, focus removed, and
what changes from run to run (dates, times, IP addresses, secrets, QR codes) masked with
Playwright's ``mask=``. The fonts are Debian's (fonts-dejavu-core, installed by ./test), so glyphs
for Arabic and Hebrew are there and are the same on every machine that runs ./test.

Comparison: a pixel differs when one of its channels differs by more than PIXEL_THRESHOLD (of 255);
a page fails when more than MAX_RATIO of its pixels differ, or its size changed. Baselines are
stored as 256-colour PNGs (small files); the threshold absorbs that quantisation."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from browser_helpers import (
    PASSWORD,
    MailSink,
    RelyingParty,
    add_client,
    add_user,
    authorization,
    make_broker,
)
from playwright.sync_api import expect

BASELINES = Path(__file__).resolve().parent / "baselines"
VIEWPORT = {"width": 800, "height": 1000}
PIXEL_THRESHOLD = 48
MAX_RATIO = 0.005
# What changes between runs: dates and times, addresses, secrets and codes.
MASKED = "time, .meta, .secret, .qr, #recovery-codes, .codes"


@dataclass(frozen=True)
class Variant:
    name: str          # file suffix: sign-in.en-light.png
    locale: str        # the browser's language (Accept-Language)
    scheme: str        # prefers-color-scheme


VARIANTS = [Variant("en-light", "en-US", "light"), Variant("en-dark", "en-US", "dark"),
            Variant("ar-light", "ar", "light")]


def _arrive(page: Any) -> None:
    expect(page.locator("h1").first).to_be_visible()


def _submit(page: Any, form: str) -> None:
    page.locator(f"{form} button[type=submit]").last.click()
    page.wait_for_load_state()


def _walk(context: Any, broker: Any, client: Any, email: str, shot: Callable[[Any, str], None]) -> None:
    """Sign-in (fresh, with an error), sign-up, forgotten password, error, device, then signed in:
    consent, account, sign-in security, apps, sign-out. Found by ids and actions, never by text."""
    issuer = broker.issuer
    page = context.new_page()
    page.goto(authorization(broker, client).url)
    _arrive(page)
    shot(page, "sign-in")
    page.locator("#username").fill("nobody@example.org")
    page.locator("#password").fill("wrong password")
    _submit(page, "form:has(#password)")
    expect(page.locator("#login-error")).to_be_visible()
    shot(page, "sign-in-error")
    for path, name in (("/signup", "sign-up"), ("/forgot-password", "forgot-password"), ("/device", "device"),
                       ("/oauth2/authorize?client_id=nobody&response_type=code", "error")):
        page.goto(issuer + path)
        _arrive(page)
        shot(page, name)

    page.goto(authorization(broker, client).url)
    page.locator("#username").fill(email)
    page.locator("#password").fill(PASSWORD)
    _submit(page, "form:has(#password)")
    expect(page).to_have_url(re.compile(r"/consent\?"))
    shot(page, "consent")
    page.locator("button[value=allow]").click()
    page.wait_for_url(re.compile(r"/cb\?"))
    for path in ("/account", "/account/security", "/apps"):
        page.goto(issuer + path)
        _arrive(page)
        shot(page, path.strip("/").replace("/", "-"))
    page.goto(issuer + "/oauth2/logout")
    _arrive(page)
    shot(page, "sign-out")
    page.close()


def take(browser: Any, out: Path, variants: list[Variant] = VARIANTS) -> list[Path]:
    """Starts a throwaway broker, walks every variant and writes NAME.VARIANT.png into `out`."""
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="idbroker-visual-") as tmp:
        mail, rp = MailSink(), RelyingParty()
        broker = make_broker(Path(tmp) / "data", mail, signup_fields="given_name,family_name")
        try:
            client = add_client(broker, rp, "travel", "--name", "Travel Planner")
            for variant in variants:
                add_user(broker, f"ada.{variant.name}@example.com", given_name="Ada", family_name="Lovelace")
            broker.start()
            for variant in variants:
                context = browser.new_context(locale=variant.locale, color_scheme=variant.scheme, viewport=VIEWPORT,
                                              device_scale_factor=1, reduced_motion="reduce", timezone_id="UTC")
                context.set_default_timeout(30_000)

                def shot(page: Any, name: str, variant: Variant = variant) -> None:
                    page.evaluate("() => document.activeElement && document.activeElement.blur()")
                    path = out / f"{name}.{variant.name}.png"
                    page.screenshot(path=str(path), animations="disabled", caret="hide",
                                    mask=[page.locator(MASKED)], mask_color="#888888")
                    Image.open(path).convert("RGB").quantize(256, dither=Image.Dither.NONE).save(path, optimize=True)
                    written.append(path)

                try:
                    _walk(context, broker, client, f"ada.{variant.name}@example.com", shot)
                finally:
                    context.close()
        finally:
            broker.stop()
            rp.stop()
            mail.stop()
    return written


@dataclass
class Difference:
    name: str
    ratio: float
    reason: str


def compare(actual: Path, baseline: Path, diff: Path) -> Difference | None:
    """None when `actual` matches `baseline` within the tolerance; else the difference, with an
    image at `diff` (differing pixels in red over a faded copy of the actual)."""
    from PIL import Image, ImageChops

    got = Image.open(actual).convert("RGB")
    want = Image.open(baseline).convert("RGB")
    if got.size != want.size:
        return Difference(actual.name, 1.0, f"size {got.size} instead of {want.size}")
    delta = ImageChops.difference(got, want)
    bands = delta.split()
    worst = ImageChops.lighter(ImageChops.lighter(bands[0], bands[1]), bands[2])
    mask = worst.point(lambda v: 255 if v > PIXEL_THRESHOLD else 0)
    differing = mask.histogram()[255]
    ratio = differing / (got.size[0] * got.size[1])
    if ratio <= MAX_RATIO:
        return None
    faded = Image.blend(got, Image.new("RGB", got.size, "white"), 0.7)
    faded.paste(Image.new("RGB", got.size, (255, 0, 0)), mask=mask)
    faded.save(diff)
    return Difference(actual.name, ratio, f"{differing} pixels ({ratio:.2%}) differ, more than {MAX_RATIO:.2%}")
