"""Fixtures shared by the two-step verification and passkey suites."""

from __future__ import annotations

from typing import Any

import pytest
from mfa_helpers import Clock

from idbroker.mfa import totp


@pytest.fixture
def clock(monkeypatch: Any) -> Clock:
    """TOTP's notion of now, frozen and steppable."""
    frozen = Clock()
    monkeypatch.setattr(totp, "now", frozen)
    return frozen


@pytest.fixture
def client(register: Any) -> Any:
    """A registered third-party client (modules that need another define their own)."""
    return register()
