"""Command: demo. Registers (or updates) the demo clients, optionally a demo user, and serves the
demo relying party of examples/demo_rp (with the single-page example of examples/spa at /spa/)
on another port, signing in through the broker.

The relying party is example code, not part of the package: it is run from the source checkout's
`examples/` with Granian (`--working-dir`), in a process of its own that this command becomes.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import httpx
import typer

from ..accounts.users import UserError
from ..clients.metadata import ClientMetadata, InvalidClientMetadata
from ..oauth2 import constants as c
from . import context as ctx
from .first_run import local_issuer
from .users_cmd import Password, PasswordStdin, _password

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
RP_CLIENT_ID = "demo-rp"
SPA_CLIENT_ID = "demo-spa"


def _register(meta: ClientMetadata, rotate: bool) -> str | None:
    """Create the client, or bring an existing one to `meta` (a new secret when `rotate`)."""
    clients = ctx.provider().clients
    changes = {k: getattr(meta, k) for k in ("name", "redirect_uris", "post_logout_redirect_uris", "grant_types",
                                              "response_types", "token_endpoint_auth_method", "first_party")}
    try:
        if clients.get(meta.client_id) is None:
            return clients.create(meta)[1]
        return clients.update(meta.client_id, changes, new_secret=rotate)[1]
    except InvalidClientMetadata as exc:
        ctx.fail(f"client {meta.client_id}: {exc}")
    return None


def demo(port: Annotated[int, typer.Option(help="Port of the demo application.")] = 3000,
         host: Annotated[str, typer.Option(help="Address the demo application listens on.")] = "127.0.0.1",
         user: Annotated[str | None, typer.Option(help="Also create this user (or set its password).")] = None,
         password: Password = None, password_stdin: PasswordStdin = False,
         broker_port: Annotated[int | None, typer.Option(help="Port of the running broker when no issuer is "
                                                         "configured (default: the port setting).")] = None,
         check_only: Annotated[bool, typer.Option("--register-only", help="Register the clients (and user), "
                                                  "then stop instead of serving.")] = False) -> None:
    """Register a demo client (and user) and serve a demo relying party that signs in through the broker."""
    rp_dir, spa_dir = EXAMPLES / "demo_rp", EXAMPLES / "spa"
    if not (rp_dir / "app.py").is_file():
        ctx.fail(f"the demo application is not here ({rp_dir}): `idbroker demo` runs from a source checkout")
    settings = ctx.settings()
    issuer = local_issuer("127.0.0.1", broker_port or settings.port) if ctx.uses_local_issuer() else settings.issuer
    base = f"http://{'localhost' if host in ('127.0.0.1', '0.0.0.0', '::', '::1') else host}:{port}"
    if user is not None:
        secret = _password(password, password_stdin)
        users = ctx.provider().users
        try:
            if users.by_email(user) is None:
                users.create(user, secret, email_verified=True)
                ctx.console.print(f"created user {user}")
            else:
                users.set_password(user, secret)
                ctx.console.print(f"user {user}: password set")
        except UserError as exc:
            ctx.fail(str(exc))
    elif password is not None or password_stdin:
        ctx.fail("--password needs --user")
    secret = _register(ClientMetadata(
        client_id=RP_CLIENT_ID, name="idbroker demo", redirect_uris=[base + "/callback"],
        post_logout_redirect_uris=[base + "/"], first_party=True,
        grant_types=[c.GRANT_AUTHORIZATION_CODE, c.GRANT_REFRESH_TOKEN]), rotate=True)
    _register(ClientMetadata(
        client_id=SPA_CLIENT_ID, name="idbroker single-page demo", redirect_uris=[base + "/spa/"],
        post_logout_redirect_uris=[base + "/spa/"], first_party=True, token_endpoint_auth_method=c.AUTH_NONE,
        grant_types=[c.GRANT_AUTHORIZATION_CODE]), rotate=False)
    ctx.console.print(f"clients {RP_CLIENT_ID} (confidential) and {SPA_CLIENT_ID} (public, PKCE) "
                      f"registered for {base}")
    if check_only:
        return
    try:
        with httpx.Client(timeout=5.0) as http:
            found = http.get(issuer + "/.well-known/openid-configuration").json().get("issuer")
    except (httpx.HTTPError, ValueError):
        ctx.fail(f"no broker answers at {issuer}: start it first (./run & or idbroker serve)")
    if found != issuer:
        ctx.fail(f"the broker at {issuer} calls itself {found!r}: configure the same issuer for both")
    ctx.provider().db.dispose()
    ctx.console.print(f"demo relying party on [bold]{base}[/] (single-page example: {base}/spa/), "
                      f"signing in through {issuer}; Ctrl-C stops it")
    env = {**os.environ, "DEMO_RP_ISSUER": issuer, "DEMO_RP_CLIENT_ID": RP_CLIENT_ID,
           "DEMO_RP_CLIENT_SECRET": secret or "", "DEMO_RP_URL": base, "DEMO_SPA_CLIENT_ID": SPA_CLIENT_ID,
           "DEMO_SPA_DIR": str(spa_dir) if spa_dir.is_dir() else ""}
    argv = [sys.executable, "-m", "granian", "--interface", "asgi", "--factory", "--working-dir", str(rp_dir),
            "--host", host, "--port", str(port), "--workers", "1", "app:create"]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(argv[0], argv, env)
