"""Commands: credentials aws - a `credential_process` helper for the AWS SDKs and CLI.

    [profile dev]
    credential_process = idbroker credentials aws --issuer https://id.example.com --client-id aws-cli

It is a public client of the broker (a native app, RFC 8252): the first time, it listens on
http://127.0.0.1:<a port the system gives>/callback (§7.3), opens the authorization URL in the
browser (and prints it on stderr), and redeems the code with PKCE S256 (RFC 7636). The refresh
token is kept in a file readable by the user only (0600, in a 0700 directory; default
~/.cache/idbroker), so that later runs need no browser; a refused refresh token is forgotten and
the browser asked again. Then it POSTs to /credentials/aws and prints the answer, the JSON that
`credential_process` reads, on stdout. Any failure is one line on stderr and a non-zero exit.

Register the client once: `idbroker clients add --client-id aws-cli --public
--redirect-uri http://127.0.0.1/callback --scope openid --scope offline_access
--scope aws.credentials`.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sys
import threading
import webbrowser
from base64 import urlsafe_b64encode
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode, urlsplit

import typer

credentials_app = typer.Typer(help="Get credentials for other services through the broker.", no_args_is_help=True)

SCOPE = "openid offline_access aws.credentials"
DONE_PAGE = (b"<!doctype html><meta charset=utf-8><title>idbroker</title>"
             b"<p>Signed in. You can close this window and return to the terminal.</p>")


class HelperError(Exception):
    """One line for stderr."""


@credentials_app.command("aws")
def credentials_aws(
    issuer: Annotated[str, typer.Option(help="The broker's issuer URL.")],
    client_id: Annotated[str, typer.Option(help="A public client allowed the aws.credentials scope.")],
    role_arn: Annotated[str | None, typer.Option(help="A preferred role (granted only when a rule allows it).")
                        ] = None,
    duration: Annotated[int | None, typer.Option(help="Seconds the credentials last (900 and up).")] = None,
    cache_dir: Annotated[str | None, typer.Option(help="Where the refresh token is kept (default "
                                                  "~/.cache/idbroker).")] = None,
    no_browser: Annotated[bool, typer.Option("--no-browser", help="Only print the sign-in URL.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the browser sign-in.")] = 300.0,
) -> None:
    """Print temporary AWS credentials as credential_process JSON (signing in in the browser when needed)."""
    try:
        body = Helper(issuer.rstrip("/"), client_id, Path(cache_dir).expanduser() if cache_dir else
                      Path.home() / ".cache" / "idbroker", browser=not no_browser, timeout=timeout
                      ).credentials(role_arn, duration)
    except HelperError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None
    print(json.dumps(body))


class Helper:
    def __init__(self, issuer: str, client_id: str, cache_dir: Path, *, browser: bool = True, timeout: float = 300.0):
        import httpx

        if urlsplit(issuer).scheme not in ("https", "http") or not urlsplit(issuer).hostname:
            raise HelperError(f"--issuer {issuer!r} is not a URL")
        self.issuer, self.client_id, self.browser, self.timeout = issuer, client_id, browser, timeout
        key = hashlib.sha256(f"{issuer}\n{client_id}".encode()).hexdigest()[:24]
        self.cache_dir = cache_dir
        self.cache = cache_dir / f"aws-{key}.json"
        self.http = httpx.Client(timeout=30.0, follow_redirects=False)
        self._metadata: dict[str, Any] | None = None

    # -- the steps --------------------------------------------------------------------------------
    def credentials(self, role_arn: str | None, duration: int | None) -> dict[str, Any]:
        access = self._refreshed() or self._browser_sign_in()
        form = {k: v for k, v in (("role_arn", role_arn), ("duration_seconds", str(duration) if duration else None))
                if v}
        r = self._post(self.issuer + "/credentials/aws", data=form or None,
                       headers={"Authorization": f"Bearer {access}"})
        if r.status_code != 200:
            raise HelperError(_why(r, "the broker refused the credentials"))
        body = r.json()
        if body.get("Version") != 1 or "AccessKeyId" not in body:
            raise HelperError("the broker's answer is not credential_process JSON")
        return body

    def _refreshed(self) -> str | None:
        """An access token from the cached refresh token, or None (none cached, or refused)."""
        try:
            cached = json.loads(self.cache.read_text())
        except (OSError, ValueError):
            return None
        r = self._post(self.metadata()["token_endpoint"], data={
            "grant_type": "refresh_token", "refresh_token": cached.get("refresh_token", ""),
            "client_id": self.client_id})
        if r.status_code == 200 and r.json().get("access_token"):
            self._save(r.json())
            return r.json()["access_token"]
        if r.status_code in (400, 401):
            self.cache.unlink(missing_ok=True)   # revoked or expired: sign in again
            return None
        raise HelperError(_why(r, "the broker did not refresh the sign-in"))

    def _browser_sign_in(self) -> str:
        verifier = secrets.token_urlsafe(48)
        challenge = urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        state = secrets.token_urlsafe(24)
        got: dict[str, str] = {}
        arrived = threading.Event()

        class Callback(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                parts = urlsplit(self.path)
                if parts.path != "/callback":
                    self.send_error(404)
                    return
                got.update({k: v[0] for k, v in parse_qs(parts.query).items()})
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.end_headers()
                self.wfile.write(DONE_PAGE)
                arrived.set()

            def log_message(self, *args: Any) -> None:
                pass

        server = HTTPServer(("127.0.0.1", 0), Callback)
        redirect_uri = f"http://127.0.0.1:{server.server_port}/callback"   # RFC 8252 §7.3
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            url = self.metadata()["authorization_endpoint"] + "?" + urlencode({
                "response_type": "code", "client_id": self.client_id, "redirect_uri": redirect_uri,
                "scope": SCOPE, "state": state, "code_challenge": challenge, "code_challenge_method": "S256",
                "prompt": "consent"})
            print(f"Sign in to get AWS credentials: {url}", file=sys.stderr, flush=True)
            if self.browser:
                webbrowser.open(url)
            if not arrived.wait(self.timeout):
                raise HelperError("no sign-in arrived from the browser in time")
        finally:
            server.shutdown()
            server.server_close()
        if not secrets.compare_digest(got.get("state", ""), state):
            raise HelperError("the browser's answer does not belong to this sign-in (state)")
        if "error" in got:
            raise HelperError(f"sign-in failed: {got['error']} {got.get('error_description', '')}".strip())
        r = self._post(self.metadata()["token_endpoint"], data={
            "grant_type": "authorization_code", "code": got.get("code", ""), "redirect_uri": redirect_uri,
            "client_id": self.client_id, "code_verifier": verifier})
        if r.status_code != 200:
            raise HelperError(_why(r, "the broker did not accept the sign-in"))
        self._save(r.json())
        return r.json()["access_token"]

    # -- plumbing ---------------------------------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        if self._metadata is None:
            r = self._get(self.issuer + "/.well-known/openid-configuration")
            if r.status_code != 200:
                raise HelperError(f"{self.issuer} has no OpenID configuration (HTTP {r.status_code})")
            self._metadata = r.json()
        return self._metadata

    def _save(self, tokens: dict[str, Any]) -> None:
        refresh = tokens.get("refresh_token")
        if not refresh:
            return
        self.cache_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.cache.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"issuer": self.issuer, "client_id": self.client_id, "refresh_token": refresh}, f)
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.cache)

    def _get(self, url: str) -> Any:
        import httpx

        try:
            return self.http.get(url)
        except httpx.HTTPError as exc:
            raise HelperError(f"cannot reach {url}: {type(exc).__name__}") from None

    def _post(self, url: str, **kwargs: Any) -> Any:
        import httpx

        try:
            return self.http.post(url, **kwargs)
        except httpx.HTTPError as exc:
            raise HelperError(f"cannot reach {url}: {type(exc).__name__}") from None


def _why(r: Any, what: str) -> str:
    try:
        body = r.json()
        return f"{what}: {body.get('error', r.status_code)} {body.get('error_description', '')}".strip()
    except ValueError:
        return f"{what} (HTTP {r.status_code})"
