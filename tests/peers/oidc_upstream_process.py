"""``node upstream_provider.mjs`` (panva's npm oidc-provider as a real upstream OpenID provider):
started on a free loopback port, restarted with another signing key, stopped. Shared by the
upstream kind's peer tests (test_upstream_oidc.py) and the browser tests (tests/e2e)."""

from __future__ import annotations

import json
import subprocess

import httpx
from joserfc.jwk import ECKey
from peers.broker_process import NODE_DIR, free_port
from support import wait_until_ready

CLIENT_ID, CLIENT_SECRET = "idbroker", "upstream-test-secret-0123456789"
WAIT = 30.0


class UpstreamProcess:
    """The provider, with one confidential client registered for `redirect_uri` (and, with
    `client_key`, a ``<CLIENT_ID>-pkjwt`` client authenticating with that key)."""

    def __init__(self, node: dict[str, str], redirect_uri: str, client_key: ECKey | None = None):
        self.node = node
        self.redirect_uri = redirect_uri
        self.client_key = client_key
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, kid: str) -> None:
        env = {"PATH": "/usr/bin:/bin", "PORT": str(self.port), "CLIENT_ID": CLIENT_ID,
               "CLIENT_SECRET": CLIENT_SECRET, "REDIRECT_URI": self.redirect_uri, "KID": kid,
               "IDBROKER_TEST_NODE_MODULES": self.node["node_modules"]}
        if self.client_key is not None:
            env["CLIENT_JWKS"] = json.dumps({"keys": [self.client_key.as_dict(private=False)]})
        self.proc = subprocess.Popen([self.node["node"], str(NODE_DIR / "upstream_provider.mjs")], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     stdin=subprocess.DEVNULL)
        try:
            wait_until_ready(self.proc, lambda: httpx.get(self.issuer + "/jwks", timeout=2.0).status_code == 200,
                             WAIT, "upstream_provider.mjs", lambda: "(its output is not kept)")
        except TimeoutError:
            self.stop()
            raise

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
