"""Per-client branding, the global theme, and operator themes that override templates and files."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import pkce_pair

from idbroker.clients.metadata import ClientMetadata, InvalidClientMetadata

REPO_THEMES = Path(__file__).resolve().parents[2] / "themes"


def _authorize(flow, client_id, redirect_uri="https://app.example/cb"):
    _, challenge = pkce_pair()
    return flow.authorize(client_id=client_id, redirect_uri=redirect_uri, response_type="code", scope="openid",
                          code_challenge=challenge, code_challenge_method="S256")


def test_client_branding_on_login_and_consent(http, flow, register, user):
    register("shop", name="Shop & Co", logo_uri="https://cdn.example/shop.png",
             branding={"primary_color": "#aa3300"})
    page = _authorize(flow, "shop")
    assert "Shop &amp; Co" in page.text and 'src="https://cdn.example/shop.png"' in page.text
    assert 'href="/theme.css?client=shop"' in page.text
    css = http.get("/theme.css", params={"client": "shop"})
    assert css.headers["content-type"].startswith("text/css") and "--ib-primary: #aa3300;" in css.text
    consent = flow.login(page)
    assert "Shop &amp; Co" in consent.text and 'href="/theme.css?client=shop"' in consent.text


def test_unbranded_pages_use_the_global_colours(http):
    css = http.get("/theme.css").text
    assert "--ib-primary: #2557d6;" in css and "--ib-radius: 8px;" in css
    assert http.get("/theme.css", params={"client": "nobody"}).status_code == 200


@pytest.mark.parametrize("branding", [{"primary_color": "red;}body{display:none"}, {"primary_color": "#12345"},
                                      {"theme": "../etc"}, {"font": "x"}])
def test_branding_is_validated(provider, branding):
    with pytest.raises(InvalidClientMetadata):
        provider.clients.create(ClientMetadata(client_id="bad", redirect_uris=["https://a.example/cb"],
                                               branding=branding))
    assert provider.clients.get("bad") is None


class TestGlobalTheme:
    @pytest.fixture
    def settings_overrides(self):
        return {"themes_dir": str(REPO_THEMES), "theme": "example", "theme_primary_color": "#123456"}

    def test_example_theme_applies_to_every_page(self, http):
        page = http.get("/login")
        assert "Example Corp" in page.text
        css = http.get("/theme.css").text
        assert "--ib-primary: #123456;" in css and ".example-brand" in css
        logo = http.get("/themes/example/logo.svg")
        assert logo.status_code == 200 and logo.text.startswith("<svg")
        assert http.get("/static/idbroker.css").status_code == 200  # built-in files still served

    @pytest.mark.parametrize("path", ["/themes/example/../../../pyproject.toml", "/themes/example/%2e%2e/x",
                                      "/themes/..%2f/x", "/themes/example/nope.css"])
    def test_theme_files_cannot_escape_their_folder(self, http, path):
        assert http.get(path).status_code == 404


class TestClientTheme:
    @pytest.fixture
    def settings_overrides(self):
        return {"themes_dir": str(REPO_THEMES)}

    def test_only_the_client_that_names_a_theme_gets_it(self, http, flow, register):
        register("themed", branding={"theme": "example"})
        register("plain")
        assert "Example Corp" in _authorize(flow, "themed").text
        assert ".example-brand" in http.get("/theme.css", params={"client": "themed"}).text
        assert "Example Corp" not in _authorize(flow, "plain").text
        assert ".example-brand" not in http.get("/theme.css", params={"client": "plain"}).text


class TestOperatorTemplateOverride:
    @pytest.fixture
    def settings_overrides(self, tmp_path):
        theme = tmp_path / "themes" / "acme"
        (theme / "templates" / "login").mkdir(parents=True)
        builtin = Path(__file__).resolve().parents[2] / "src/idbroker/web/templates/login/login.html"
        (theme / "templates" / "login" / "login.html").write_text(
            builtin.read_text().replace("{% block body %}", '{% block body %}<p id="acme">ACME sign-in</p>', 1))
        (theme / "static").mkdir()
        (theme / "static" / "idbroker.css").write_text("/* acme stylesheet */")
        return {"themes_dir": str(tmp_path / "themes"), "theme": "acme"}

    def test_templates_and_static_files_are_overridden(self, http):
        page = http.get("/login")
        assert '<p id="acme">ACME sign-in</p>' in page.text and 'autocomplete="current-password"' in page.text
        assert http.get("/static/idbroker.css").text == "/* acme stylesheet */"
        assert http.get("/static/form_post.js").status_code == 200  # falls back to built-in files


def test_settings_reject_bad_theme_values(tmp_path):
    from idbroker.settings import SettingsError, load_settings

    with pytest.raises(SettingsError) as exc:
        load_settings(env={"IDBROKER_THEME_PRIMARY_COLOR": "blue", "IDBROKER_THEME_FONT": "x;}</style>",
                           "IDBROKER_THEMES_DIR": str(tmp_path), "IDBROKER_THEME": "missing"})
    text = "\n".join(exc.value.problems)
    assert "colours" in text and "theme_font" in text and "not a folder" in text
