"""The dynamic-registration settings check themselves (settings.py RegistrationSettings)."""

from __future__ import annotations

from typing import Any

import pytest

from idbroker.settings import Settings, SettingsError


@pytest.mark.parametrize(("options", "message"), [
    ({"registration": "public"}, "registration must be off, open or token"),
    ({"registration_allowed_scopes": ["openid", "idbroker:admin"]}, "never given to a registered client"),
    ({"registration_allowed_scopes": ["aws.credentials"]}, "never given to a registered client"),
    ({"registration_allowed_scopes": ["bad scope"]}, "is not a scope token"),
    ({"registration_software_statement_jwks": "/nonexistent/keys.json"}, "no file"),
])
def test_bad_registration_settings_are_one_clear_line(options: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings(**options).validate()
    assert len(caught.value.problems) == 1 and message in caught.value.problems[0]


def test_defaults_are_off_and_standard_scopes() -> None:
    settings = Settings()
    settings.validate()
    assert settings.registration == "off"
    assert settings.registration_allowed_scopes == ["openid", "profile", "email", "phone", "address", "offline_access"]
