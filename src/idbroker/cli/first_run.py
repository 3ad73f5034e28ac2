"""What a first `idbroker serve` tells the operator: the issuer it picks when none is configured,
and what it created (database, secret key, signing keys) with the next step.

Without a configured issuer the broker on a loopback address calls itself ``http://localhost:PORT``,
not ``http://127.0.0.1:PORT``: browsers treat ``localhost`` as a secure context and accept it as a
WebAuthn relying-party id, but refuse an IP address (WebAuthn §5.1.3), so passkeys work with the
defaults. The other commands (cli/context.py) and ``idbroker demo`` derive the same issuer, so they agree
with the server without configuration.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..settings import Settings

WILDCARD_HOSTS = ("0.0.0.0", "::", "127.0.0.1", "::1", "localhost")


def issuer_configured(settings: Settings) -> bool:
    return settings.issuer != Settings.issuer or "IDBROKER_ISSUER" in os.environ


def local_issuer(host: str, port: int) -> str:
    """The development issuer for a server listening on `host`:`port`."""
    name = "localhost" if host in WILDCARD_HOSTS else host
    return f"http://{name}:{port}"


@dataclass
class FirstStart:
    """What exists before the services are built; `report()` says what was created since."""

    settings: Settings
    secret_path: Path | None = None
    database_path: Path | None = None
    had_secret: bool = True
    had_database: bool = True
    lines: list[str] = field(default_factory=list)

    @classmethod
    def before(cls, settings: Settings) -> FirstStart:
        out = cls(settings)
        if not settings.secret_key:
            out.secret_path = (Path(settings.data_dir) / "secret.key").resolve()
            out.had_secret = out.secret_path.exists()
        if not settings.database_url:
            out.database_path = (Path(settings.data_dir) / "idbroker.db").resolve()
            out.had_database = out.database_path.exists()
        return out

    def report(self, new_keys: list[str]) -> list[str]:
        """Lines of text: none when nothing was created."""
        from ..keys.keystore import ENC_ALGS  # here: `idbroker serve` reads this module before the application

        lines: list[str] = []
        if not self.had_database and self.database_path is not None:
            lines.append(f"  database      {self.database_path} (SQLite)")
        if not self.had_secret and self.secret_path is not None:
            lines.append(f"  secret key    {self.secret_path}")
            lines.append("                back it up: it encrypts the signing keys and keys the "
                         "client secrets; without it they are lost")
        signing = [k for k in new_keys if k not in ENC_ALGS]
        encryption = [k for k in new_keys if k in ENC_ALGS]
        if signing:
            lines.append(f"  signing keys  {', '.join(signing)} (stored encrypted in the database)")
        if encryption:
            lines.append(f"  encryption key {', '.join(encryption)} (request objects; stored encrypted)")
        if not lines:
            return []
        return ["First start: created", *lines,
                "Next: register an application and a user (idbroker clients add …, idbroker users add …: "
                "see the README's walkthrough), or try it at once with idbroker demo"]
