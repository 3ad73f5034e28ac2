"""A real ``idbroker serve`` for the interoperability tests, driven through its CLI.

The ``broker`` fixture starts the broker as a subprocess (Granian, the real ASGI stack) on a free
port, once per module and store: SQLite in a temporary data directory, and PostgreSQL in a
database created for the run from IDBROKER_TEST_POSTGRES_URL (an admin URL; skipped when unset)
and dropped afterwards. Clients and users are registered with the ``idbroker`` CLI against the
same data directory and database. When a test fails, the tail of the broker's output is attached
to its report.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

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


class Broker:
    """One running ``idbroker serve`` and the environment its CLI commands share."""

    def __init__(self, store: str, data_dir: Path, database_url: str | None):
        self.store = store
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
            self.proc = subprocess.Popen([str(IDBROKER), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                                         env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = START_TIMEOUT
        with httpx.Client(timeout=2.0) as http:
            while deadline > 0:
                try:
                    if http.get(f"{self.issuer}/healthz").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                try:  # doubles as the pause between attempts, and notices an early exit
                    code = self.proc.wait(timeout=0.1)
                except subprocess.TimeoutExpired:
                    deadline -= 0.1 + 0.0  # plus the request time, which is bounded by the client timeout
                    continue
                raise RuntimeError(f"idbroker serve exited with {code} before answering /healthz:\n{self.log()}")
        self.stop()
        raise RuntimeError(f"idbroker serve did not answer /healthz within {START_TIMEOUT:.0f}s:\n{self.log()}")

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
                   first_party: bool, id_token_alg: str, backchannel_logout_uri: str | None = None
                   ) -> dict[str, Any]:
        args = ["clients", "add", "--client-id", client_id, "--name", f"Peer {client_id}",
                "--redirect-uri", redirect_uri, "--post-logout-redirect-uri", post_logout_redirect_uri,
                "--grant-type", "authorization_code", "--grant-type", "refresh_token",
                "--id-token-alg", id_token_alg]
        if first_party:
            args.append("--first-party")
        if backchannel_logout_uri:
            args += ["--backchannel-logout-uri", backchannel_logout_uri]
        row = self.cli(*args)
        assert row["client_secret"], row
        assert row["token_endpoint_auth_method"] == "client_secret_basic", row
        return row


@pytest.fixture(scope="session")
def node() -> dict[str, str]:
    """The node binary and the installed npm peers (``./test`` installs them)."""
    binary = shutil.which("node")
    if binary is None:
        pytest.skip("node is not installed (./test needs node 20+ on PATH)")
    modules = Path(os.environ.get("IDBROKER_TEST_NODE_MODULES") or NODE_DIR / "node_modules")
    if not (modules / "openid-client" / "package.json").is_file():
        pytest.skip(f"openid-client is not installed in {modules} "
                    "(run ./test, or npm ci --prefix tests/peers/node)")
    return {"node": binary, "node_modules": str(modules)}


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def broker(request: pytest.FixtureRequest, node: dict[str, str],
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    store = request.param
    data_dir = tmp_path_factory.mktemp(f"broker-{store}")
    admin_url = os.environ.get("IDBROKER_TEST_POSTGRES_URL")
    database_url = created = None
    if store == "postgres":
        if not admin_url:
            pytest.skip("IDBROKER_TEST_POSTGRES_URL is not set (./test sets it)")
        created = f"idbroker_peers_{uuid.uuid4().hex[:12]}"
        _admin(admin_url, f'CREATE DATABASE "{created}"')
        database_url = admin_url.rsplit("/", 1)[0] + f"/{created}"
    b = Broker(store, data_dir, database_url)
    try:
        b.user = b.cli("users", "add", "--email", "alice@example.com", "--password", PASSWORD,
                       "--given-name", "Alice", "--family-name", "Liddell")
        b.start()
        yield b
    finally:
        b.stop()
        if created and admin_url:
            _admin(admin_url, f'DROP DATABASE IF EXISTS "{created}" WITH (FORCE)')


def _admin(admin_url: str, statement: str) -> None:
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(statement))
    finally:
        engine.dispose()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    report = yield
    if report.failed and call.when in ("setup", "call"):
        b = getattr(item, "funcargs", {}).get("broker")
        if isinstance(b, Broker):
            report.sections.append((f"idbroker serve output ({b.store}, last {LOG_TAIL_LINES} lines)", b.log()))
    return report
