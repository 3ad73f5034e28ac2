"""An ``idbroker serve`` subprocess and the CLI that administers it, for the interoperability tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
from support import wait_until_ready

PEERS = Path(__file__).resolve().parent
NODE_DIR = PEERS / "node"
IDBROKER = Path(sys.executable).with_name("idbroker")
PASSWORD = "correct horse battery staple"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
LOG_TAIL_LINES = 200


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_peers() -> dict[str, str] | str:
    """The node binary and the installed npm peers (``./test`` installs them), or why not."""
    import shutil

    binary = shutil.which("node")
    if binary is None:
        return "node is not installed (./test needs node 20+ on PATH)"
    modules = Path(os.environ.get("IDBROKER_TEST_NODE_MODULES") or NODE_DIR / "node_modules")
    if not (modules / "openid-client" / "package.json").is_file():
        return f"openid-client is not installed in {modules} (run ./test, or npm ci --prefix tests/peers/node)"
    return {"node": binary, "node_modules": str(modules)}


class Broker:
    """One running ``idbroker serve`` and the environment its CLI commands share."""

    def __init__(self, store: str, data_dir: Path, database_url: str | None, workers: int = 1):
        self.store = store
        self.workers = workers
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.data_dir = data_dir
        self.log_path = data_dir / "serve.log"
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("IDBROKER_") or k.startswith("IDBROKER_TEST_")}
        env.update(IDBROKER_DATA_DIR=str(data_dir), IDBROKER_ISSUER=self.issuer)
        if database_url:
            env["IDBROKER_DATABASE_URL"] = database_url
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.user: dict[str, Any] = {}

    # -- process ------------------------------------------------------------------------------
    def start(self) -> None:
        with open(self.log_path, "wb") as log:
            command = [str(IDBROKER), "serve", "--host", "127.0.0.1", "--port", str(self.port), "--access-log",
                       "--workers", str(self.workers)]
            self.proc = subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        with httpx.Client(timeout=2.0) as http:
            try:
                wait_until_ready(self.proc, lambda: http.get(f"{self.issuer}/healthz").status_code == 200,
                                 START_TIMEOUT, "idbroker serve (/healthz)", self.log)
            except TimeoutError:
                self.stop()
                raise

    def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the group we created: Granian and its workers
            proc.wait(timeout=STOP_TIMEOUT)

    def log(self, tail: int = LOG_TAIL_LINES) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError as exc:
            return f"(no log: {exc})"
        return "\n".join(lines[-tail:])

    # -- CLI ------------------------------------------------------------------------------------
    def cli(self, *args: str) -> Any:
        """Runs ``idbroker <args> --json`` with the broker's environment; returns the parsed JSON."""
        done = subprocess.run([str(IDBROKER), *args, "--json"], env=self.env, capture_output=True, text=True,
                              timeout=120, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise AssertionError(f"idbroker {' '.join(args)} failed ({done.returncode}):\n"
                                 f"{done.stdout}\n{done.stderr}")
        return json.loads(done.stdout)

    def add_client(self, client_id: str, redirect_uri: str, post_logout_redirect_uri: str, *,
                   first_party: bool, id_token_alg: str | None, backchannel_logout_uri: str | None = None
                   ) -> dict[str, Any]:
        args = ["clients", "add", "--client-id", client_id, "--name", f"Peer {client_id}",
                "--redirect-uri", redirect_uri, "--post-logout-redirect-uri", post_logout_redirect_uri,
                "--grant-type", "authorization_code", "--grant-type", "refresh_token"]
        if id_token_alg:  # None: whatever the broker gives a client that names none
            args += ["--id-token-alg", id_token_alg]
        if first_party:
            args.append("--first-party")
        if backchannel_logout_uri:
            args += ["--backchannel-logout-uri", backchannel_logout_uri]
        row = self.cli(*args)
        assert row["client_secret"], row
        assert row["token_endpoint_auth_method"] == "client_secret_basic", row
        return row
