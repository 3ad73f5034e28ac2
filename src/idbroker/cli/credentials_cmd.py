"""Commands: credentials aws (a credential_process helper for the AWS SDKs and CLI)."""

from __future__ import annotations

import typer

credentials_app = typer.Typer(help="Get credentials for other services through the broker.", no_args_is_help=True)
