"""Operator mistakes, made for real with the installed ``idbroker`` command: each one is a clear
line on stderr (a short list for configuration problems) and a non-zero exit, never a traceback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support import TEST_SECRET, free_port, wait_until_ready

IDBROKER = Path(sys.executable).with_name("idbroker")
TIMEOUT = 120


def run(*args: str, env: dict[str, str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(IDBROKER), *args], env=env, capture_output=True, text=True, timeout=TIMEOUT,
                          input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL)


def refused(done: subprocess.CompletedProcess[str], *expected: str, lines: int = 1) -> str:
    """The command failed with at most `lines` lines on stderr naming every `expected` text."""
    err = done.stderr.strip()
    assert done.returncode != 0, (done.stdout, err)
    assert "Traceback" not in err + done.stdout, err
    assert err and len(err.splitlines()) <= lines, err
    for text in expected:
        assert text in err, err
    return err


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("IDBROKER_") or k.startswith("IDBROKER_TEST_")}
    base.update(IDBROKER_DATA_DIR=str(tmp_path / "data"), IDBROKER_ISSUER="http://localhost:8000",
                IDBROKER_SECRET_KEY=TEST_SECRET, IDBROKER_ARGON2_MEMORY_KIB="8192", COLUMNS="300")
    return base


def postgres_url() -> str:
    url = os.environ.get("IDBROKER_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("IDBROKER_TEST_POSTGRES_URL is not set (./test sets it)")
    return url


def with_database(url: str, database: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(database=database).render_as_string(hide_password=False)


# -- the database -----------------------------------------------------------------------------------
def closed_port() -> int:
    return free_port()  # nothing listens there once the probe socket is closed


@pytest.mark.parametrize("command", [("users", "list"), ("db", "current"), ("db", "upgrade")])
def test_unreachable_postgresql(env: dict[str, str], command: tuple[str, ...]) -> None:
    env["IDBROKER_DATABASE_URL"] = f"postgresql+psycopg://idbroker:secret-pw@127.0.0.1:{closed_port()}/idbroker"
    err = refused(run(*command, env=env), "cannot use the database", "refused")
    assert "secret-pw" not in err  # the URL is shown without its password


def test_wrong_postgresql_credentials(env: dict[str, str]) -> None:
    from sqlalchemy.engine import make_url

    url = make_url(postgres_url()).set(username="no_such_role_h13", password="wrong-pw")
    env["IDBROKER_DATABASE_URL"] = url.render_as_string(hide_password=False)
    err = refused(run("users", "list", env=env), "cannot use the database", "no_such_role_h13")
    assert "wrong-pw" not in err


def test_missing_postgresql_database(env: dict[str, str]) -> None:
    env["IDBROKER_DATABASE_URL"] = with_database(postgres_url(), "no_such_database_h13")
    refused(run("users", "list", env=env), "cannot use the database", "no_such_database_h13", "does not exist")


def test_unreachable_postgresql_stops_serve(env: dict[str, str]) -> None:
    """The server prepares the store before Granian starts: a database it cannot use stops the
    start with one line, before any worker."""
    env["IDBROKER_DATABASE_URL"] = f"postgresql+psycopg://idbroker:secret-pw@127.0.0.1:{closed_port()}/idbroker"
    err = refused(run("serve", "--port", str(free_port()), env=env), "cannot use the database", "refused")
    assert "secret-pw" not in err


def test_a_refused_declared_entry_stops_serve(env: dict[str, str], tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[[upstreams]]\nid = "op"\nkind = "oidc"\nname = "OP"\nissuer = "http://op.example"\n'
                      'client_id = "rp"\n')
    refused(run("--config", str(config), "serve", "--port", str(free_port()), env=env), "[[upstreams]] 'op'",
            "loopback")
    env["IDBROKER_CONFIG"] = str(config)  # the same through the environment (`idbroker serve` alone)
    refused(run("serve", "--port", str(free_port()), env=env), "[[upstreams]] 'op'", "loopback")


# -- data_dir ---------------------------------------------------------------------------------------
def test_data_dir_that_is_a_file(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("not a directory")
    env["IDBROKER_DATA_DIR"] = str(tmp_path / "afile")
    env.pop("IDBROKER_SECRET_KEY")
    refused(run("users", "list", env=env), "data_dir", "is a file, not a directory")
    env["IDBROKER_DATA_DIR"] = str(tmp_path / "afile" / "below")
    refused(run("serve", "--port", str(free_port()), env=env), "data_dir", "cannot be created")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_read_only_data_dir(env: dict[str, str], tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    env["IDBROKER_DATA_DIR"] = str(ro)
    try:
        refused(run("users", "list", env=env), "data_dir", "not writable")
    finally:
        ro.chmod(0o755)


# -- the port ---------------------------------------------------------------------------------------
@pytest.fixture
def served(env: dict[str, str], tmp_path: Path) -> Iterator[int]:
    """One `idbroker serve` on a free port, serving."""
    port = free_port()
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([str(IDBROKER), "serve", "--port", str(port)], env=env, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        with httpx.Client(timeout=2.0) as http:
            wait_until_ready(proc, lambda: http.get(f"http://127.0.0.1:{port}/healthz").status_code == 200,
                             60.0, "idbroker serve", lambda: log_path.read_text(errors="replace"))
        yield port
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=15)


def test_second_serve_on_a_served_port_refuses(env: dict[str, str], served: int, tmp_path: Path) -> None:
    env["IDBROKER_DATA_DIR"] = str(tmp_path / "other")
    refused(run("serve", "--port", str(served), env=env), f"port {served}", "already in use")
    assert httpx.get(f"http://127.0.0.1:{served}/healthz", timeout=5).status_code == 200  # the first one serves on


def test_serve_on_a_port_another_program_holds(env: dict[str, str]) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        refused(run("serve", "--port", str(port), env=env), f"port {port}", "already in use")


def test_server_module_checks_the_port_too(env: dict[str, str]) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "idbroker.server", "--port", str(port)], env=env,
                              capture_output=True, text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL)
        refused(done, "already in use")


# -- configuration ----------------------------------------------------------------------------------
def test_every_configuration_problem_at_once(env: dict[str, str], tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('port = "eighty"\nsigning_alg = "XX"\nno_such_option = 1\n')
    env["IDBROKER_ACCESS_TOKEN_TTL"] = "soon"  # a type error in the environment too
    err = refused(run("-c", str(config), "users", "list", env=env), "port", "signing_alg", "no_such_option",
                  "IDBROKER_ACCESS_TOKEN_TTL", lines=6)
    assert err.splitlines()[0].startswith("Invalid configuration")


def test_config_file_that_is_not_toml(env: dict[str, str], tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("port = \n")
    refused(run("-c", str(config), "users", "list", env=env), "not valid TOML", lines=2)


# -- users and clients ------------------------------------------------------------------------------
@pytest.mark.parametrize("phone", ["12345", "+1 abc", "020 7946 0000", "+"])
def test_bad_phone_number(env: dict[str, str], phone: str) -> None:
    refused(run("users", "add", "--email", "p@example.com", "--phone-number", phone, "--password-stdin",
                env=env, stdin="a long enough password 1\n"), "--phone-number", "E.164")


def test_users_add_reads_the_password_from_stdin_never_needs_argv(env: dict[str, str]) -> None:
    done = run("users", "add", "--email", "s@example.com", "--password-stdin", "--json", env=env,
               stdin="a long enough password 1\n")
    assert done.returncode == 0, done.stderr
    done = run("users", "set-password", "s@example.com", "--password-stdin", env=env,
               stdin="another long password 2\n")
    assert done.returncode == 0, done.stderr
    # No terminal and no --password-stdin: a clear line, not a hang or a password from nowhere.
    refused(run("users", "add", "--email", "t@example.com", env=env), "--password-stdin")
    refused(run("users", "set-password", "s@example.com", env=env), "--password-stdin")


@pytest.mark.parametrize("uri", ["ftp://app.example/cb", "javascript:alert(1)", "myapp:/cb"])
def test_non_http_redirect_uri_says_what_is_allowed(env: dict[str, str], uri: str) -> None:
    err = refused(run("clients", "add", "--client-id", "c1", "--name", "C", "--redirect-uri", uri, env=env),
                  uri, "https", "reverse-DNS")
    assert "implicit" not in err  # the client is not implicit: do not blame that


def test_relative_redirect_uri(env: dict[str, str]) -> None:
    refused(run("clients", "add", "--client-id", "c1", "--name", "C", "--redirect-uri", "app.example/cb",
                env=env), "must be absolute")
