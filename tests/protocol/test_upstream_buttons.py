"""The providers' buttons on the sign-in page: the accessible name says where the user goes, the
mark is the provider's own logo when it has one (``--logo-uri``), else its preset's
(static/idp/<preset>.svg), else a neutral one; the marks are served as SVG."""

from __future__ import annotations

import re
from typing import Any

import pytest

from idbroker.federation.presets import PRESETS

BUTTON_RE = re.compile(r'<a class="button secondary idp-button" href="(?P<href>[^"]+)" id="idp-(?P<id>[^"]+)">'
                       r'<img class="idp-mark" src="(?P<src>[^"]+)" alt="" width="20" height="20">'
                       r'<span>(?P<name>[^<]+)</span></a>')


def buttons(http: Any) -> dict[str, dict[str, str]]:
    page = http.get("/login")
    assert page.status_code == 200
    return {m["id"]: m.groupdict() for m in BUTTON_RE.finditer(page.text)}


def test_presets_show_their_mark_and_a_logo_uri_wins(http: Any, provider: Any) -> None:
    secrets = {"client_secret": "s"}
    provider.upstreams.add("google", "google", "Google", options={"client_id": "g"}, secrets=secrets)
    provider.upstreams.add("gitlab", "gitlab", "GitLab", options={"client_id": "g"}, secrets=secrets,
                           logo_uri="https://logos.example/ours.svg")
    provider.upstreams.add("corp", "oidc", "Corporate", options={"client_id": "c", "issuer": "https://op.example"},
                           secrets=secrets)
    found = buttons(http)
    assert found["google"]["src"] == "/static/idp/google.svg"
    assert found["google"]["name"] == "Continue with Google"  # the link's accessible name (alt="")
    assert found["gitlab"]["src"] == "https://logos.example/ours.svg"
    assert found["corp"]["src"] == "/static/idp/generic.svg"


@pytest.mark.parametrize("name", [*sorted(PRESETS), "generic"])
def test_marks_are_served_as_svg(http: Any, name: str) -> None:
    r = http.get(f"/static/idp/{name}.svg")
    assert r.status_code == 200 and r.headers["content-type"].startswith("image/svg+xml")
