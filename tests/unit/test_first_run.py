"""A first run that teaches: the README's walkthrough works pasted as-is, and the first
`idbroker serve` says what it created and what to do next.

Both start real servers (``./run`` and ``idbroker serve``) on a free port with a scratch data
directory, through the variables the README documents (IDBROKER_PORT, IDBROKER_DATA_DIR).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from support import free_port, wait_until_ready

ROOT = Path(__file__).resolve().parents[2]
IDBROKER = Path(sys.executable).with_name("idbroker")
TIMEOUT = 90


def walkthrough() -> str:
    """The first code block of the README's walkthrough section."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Five-minute walkthrough"):]
    found = re.search(r"```sh\n(.*?)```", section, re.S)
    assert found, "no ```sh block in the walkthrough"
    return found.group(1)


def scratch_env(tmp_path: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDBROKER_")}
    env.update(IDBROKER_PORT=str(port), IDBROKER_DATA_DIR=str(tmp_path / "data"))
    return env


def stop_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)


def test_readme_walkthrough_runs_as_pasted(tmp_path: Path) -> None:
    port = free_port()
    script = walkthrough()
    assert "./run &" in script and "/healthz" in script  # starts the broker and waits for it
    script = script.replace("localhost:8000", f"localhost:{port}")
    log = tmp_path / "walkthrough.log"
    with open(log, "wb") as out:
        # errexit: every command must succeed; the group holds the background ./run, stopped after.
        proc = subprocess.Popen(["bash", "-e", "-o", "pipefail", "-c", script], cwd=ROOT,
                                env=scratch_env(tmp_path, port), stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            code = proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            code = None
        finally:
            stop_group(proc)
    output = log.read_text(errors="replace")
    assert code == 0, f"the walkthrough failed ({code}):\n{output}"
    assert "run: starting idbroker serve" in output, output  # ./run says what it does
    assert f'"issuer": "http://localhost:{port}"' in output, output  # the discovery document was printed
    assert "client_secret" in output and "alice@example.com" in output, output
    assert (tmp_path / "data" / "idbroker.db").exists()  # IDBROKER_DATA_DIR was honoured, not ./data


@contextmanager
def serving(tmp_path: Path, port: int) -> Iterator[tuple[subprocess.Popen, Path]]:
    log = tmp_path / f"serve-{port}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(IDBROKER), "serve"], env=scratch_env(tmp_path, port), stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        with httpx.Client(timeout=2.0) as http:
            wait_until_ready(proc, lambda: http.get(f"http://localhost:{port}/healthz").status_code == 200,
                             TIMEOUT, "idbroker serve", lambda: log.read_text(errors="replace"))
        yield proc, log
    finally:
        stop_group(proc)


def test_first_start_says_what_it_created_and_what_next(tmp_path: Path) -> None:
    port = free_port()
    data = (tmp_path / "data").resolve()
    with serving(tmp_path, port) as (_, log):
        first = " ".join(log.read_text().split())  # rich may wrap long lines
        with httpx.Client() as http:
            issuer = http.get(f"http://localhost:{port}/.well-known/openid-configuration").json()["issuer"]
    assert "First start: created" in first, first
    assert f"database {data / 'idbroker.db'}" in first, first
    assert f"secret key {data / 'secret.key'}" in first and "back it up" in first, first
    assert "signing keys ES256, RS256" in first, first
    assert "idbroker demo" in first and "idbroker clients add" in first, first
    # No issuer configured: localhost (a WebAuthn RP id browsers accept), on the configured port.
    assert issuer == f"http://localhost:{port}", issuer
    assert f"serving issuer http://localhost:{port}" in first, first

    port = free_port()
    with serving(tmp_path, port) as (_, log):
        again = log.read_text()
    assert "First start" not in again and "back it up" not in again, again
    assert "serving issuer" in again, again


def test_demo_registers_its_clients_again_and_again(tmp_path: Path) -> None:
    env = scratch_env(tmp_path, free_port())
    for _ in range(2):  # a second run updates what the first created
        done = subprocess.run([str(IDBROKER), "demo", "--register-only", "--port", "3999", "--user",
                               "dee@example.com", "--password-stdin"], env=env, input="correct horse battery staple\n",
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "demo-rp" in done.stdout and "demo-spa" in done.stdout and "http://localhost:3999" in done.stdout
    assert "password set" in done.stdout, done.stdout
    shown = subprocess.run([str(IDBROKER), "clients", "show", "demo-rp", "--json"], env=env, capture_output=True,
                           text=True, timeout=120)
    assert "http://localhost:3999/callback" in shown.stdout, shown.stdout + shown.stderr

    wrong = subprocess.run([str(IDBROKER), "demo", "--register-only", "--password", "x"], env=env,
                           capture_output=True, text=True, timeout=120)
    assert wrong.returncode == 1 and wrong.stderr.strip() == "error: --password needs --user", wrong.stderr
