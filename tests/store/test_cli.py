"""The command line, against a real store (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from idbroker.cli import app
from idbroker.cli import context as ctx

IDBROKER = Path(sys.executable).with_name("idbroker")



def command_paths(command=None, prefix=()):
    """Every command and group of the CLI, read from the application itself (a new group is
    checked without being listed here)."""
    import typer.main

    command = command or typer.main.get_command(app)
    yield list(prefix)
    for name, sub in getattr(command, "commands", {}).items():
        yield from command_paths(sub, (*prefix, name))


def test_every_command_has_help(cli):
    paths = list(command_paths())
    assert ["users", "add"] in paths and ["idp", "add"] in paths and len(paths) > 30
    for args in paths:
        result = cli(*args, "--help")
        assert "Usage" in result.output and result.output.count("\n") > 3, args


def test_clients_lifecycle(cli):
    out = json.loads(cli("clients", "add", "--client-id", "web", "--redirect-uri", "https://web.example/cb",
                         "--redirect-uri", "https://web.example/cb2", "--name", "Web", "--first-party",
                         "--post-logout-redirect-uri", "https://web.example/bye", "--json").output)
    assert out["client_secret"] and out["redirect_uris"] == ["https://web.example/cb", "https://web.example/cb2"]
    assert out["grant_types"] == ["authorization_code", "refresh_token"] and out["response_types"] == ["code"]
    spa = json.loads(cli("clients", "add", "--client-id", "spa", "--public", "--redirect-uri",
                         "https://spa.example/cb", "--json").output)
    assert "client_secret" not in spa and spa["token_endpoint_auth_method"] == "none"
    imp = json.loads(cli("clients", "add", "--client-id", "imp", "--redirect-uri", "https://i.example/cb",
                         "--response-type", "id_token", "--public", "--json").output)
    assert "implicit" in imp["grant_types"]
    listed = json.loads(cli("clients", "list", "--json").output)
    assert [c["client_id"] for c in listed] == ["imp", "spa", "web"]
    assert all("client_secret" not in c and "secret_hash" not in c for c in listed)
    updated = json.loads(cli("clients", "update", "web", "--name", "Web 2", "--rotate-secret",
                             "--access-token-ttl", "300", "--json").output)
    assert updated["name"] == "Web 2" and updated["client_secret"] != out["client_secret"]
    assert updated["access_token_ttl"] == 300
    bad = cli("clients", "update", "web", "--redirect-uri", "http://evil.example/cb", ok=False)
    assert bad.exit_code == 1 and "https" in bad.output
    dup = cli("clients", "add", "--client-id", "web", "--redirect-uri", "https://x.example/cb", ok=False)
    assert dup.exit_code == 1 and "already exists" in dup.output
    cli("clients", "remove", "web")
    assert cli("clients", "show", "web", ok=False).exit_code == 1


def test_users_lifecycle(cli):
    user = json.loads(cli("users", "add", "--email", "u@example.com", "--password", "long enough pw",
                          "--given-name", "U", "--json").output)
    assert user["email"] == "u@example.com" and user["sub"]
    assert cli("users", "add", "--email", "u@example.com", "--password", "long enough pw", ok=False).exit_code == 1
    assert cli("users", "add", "--email", "v@example.com", "--password", "short", ok=False).exit_code == 1
    cli("users", "set-password", "u@example.com", "--password", "another long pw")
    assert ctx.provider().users.authenticate("u@example.com", "another long pw") is not None
    cli("users", "disable", "u@example.com")
    assert json.loads(cli("users", "show", "u@example.com", "--json").output)["disabled"] is True
    assert ctx.provider().users.authenticate("u@example.com", "another long pw") is None
    cli("users", "disable", "u@example.com", "--enable")
    assert len(json.loads(cli("users", "list", "--json").output)) == 1


def test_keys_list_and_rotate(cli):
    keys = json.loads(cli("keys", "list", "--json").output)
    # RSA-OAEP-256: the request-object encryption key (keys/keystore.py ENC_ALGS)
    assert {k["alg"] for k in keys} == {"ES256", "RS256", "RSA-OAEP-256"} and all(k["state"] == "active" for k in keys)
    cli("keys", "rotate")
    keys = json.loads(cli("keys", "list", "--json").output)
    assert sorted(k["state"] for k in keys if k["alg"] == "ES256") == ["active", "next"]
    cli("keys", "rotate", "--alg", "RS256", "--now")
    keys = json.loads(cli("keys", "list", "--json").output)
    assert sorted(k["state"] for k in keys if k["alg"] == "RS256") == ["active", "retired"]
    cli("keys", "rotate", "--alg", "RSA-OAEP-256")  # the request-object encryption key rotates the same way
    keys = json.loads(cli("keys", "list", "--json").output)
    assert sorted(k["state"] for k in keys if k["alg"] == "RSA-OAEP-256") == ["active", "next"]
    bad = cli("keys", "rotate", "--alg", "HS256", ok=False)
    assert bad.exit_code == 1 and "RSA-OAEP-256" in bad.output


def test_invalid_configuration_is_reported(cli, monkeypatch):
    monkeypatch.setenv("IDBROKER_ISSUER", "not a url")
    ctx.provider.cache_clear()
    result = cli("clients", "list", ok=False)
    assert result.exit_code == 2 and "issuer" in result.output


def test_db_upgrade(cli):
    from alembic.script import ScriptDirectory

    from idbroker.store.migrate import alembic_config

    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert f"revision {head}" in cli("db", "upgrade").output


def test_clients_hidden_from_dashboard(cli):
    out = json.loads(cli("clients", "add", "--client-id", "admin", "--redirect-uri", "https://admin.example/cb",
                         "--logback-uri", "https://admin.example/", "--hidden", "--json").output)
    assert out["hidden_from_dashboard"] is True
    shown = json.loads(cli("clients", "add", "--client-id", "wiki", "--redirect-uri", "https://wiki.example/cb",
                           "--json").output)
    assert shown["hidden_from_dashboard"] is False
    visible = json.loads(cli("clients", "update", "admin", "--visible", "--json").output)
    assert visible["hidden_from_dashboard"] is False
    # other settings are left alone when the flag is not given
    renamed = json.loads(cli("clients", "update", "admin", "--name", "Admin", "--json").output)
    assert renamed["hidden_from_dashboard"] is False and renamed["logback_uri"] == "https://admin.example/"
    hidden = json.loads(cli("clients", "update", "wiki", "--hidden", "--json").output)
    assert hidden["hidden_from_dashboard"] is True
    assert ctx.provider().clients.get("wiki").hidden_from_dashboard is True
    assert "--hidden" in cli("clients", "add", "--help").output
    assert "--visible" in cli("clients", "update", "--help").output


def test_client_branding_flags(cli):
    out = json.loads(cli("clients", "add", "--client-id", "b", "--redirect-uri", "https://b.example/cb",
                         "--primary-color", "#aa3300", "--theme", "example", "--no-signup", "--json").output)
    assert out["branding"] == {"primary_color": "#aa3300", "theme": "example"} and out["signup_enabled"] is False
    out = json.loads(cli("clients", "update", "b", "--background-color", "#ffffff", "--theme", "", "--json").output)
    assert out["branding"] == {"primary_color": "#aa3300", "background": "#ffffff"}
    bad = cli("clients", "update", "b", "--primary-color", "red", ok=False)
    assert bad.exit_code == 1 and "colour" in bad.output


# -- operator input -------------------------------------------------------------------------------
NEW_PASSWORD = "a new long password"
PASSWORD_COMMANDS = {
    "add": ["users", "add", "--email", "new@example.com"],
    "set-password": ["users", "set-password", "old@example.com"],
}


@pytest.fixture
def old_user(cli):
    cli("users", "add", "--email", "old@example.com", "--password", "the old long password")


def password_works(command: str) -> bool:
    email = "new@example.com" if command == "add" else "old@example.com"
    return ctx.provider().users.authenticate(email, NEW_PASSWORD) is not None


def one_error_line(result) -> str:
    """The whole of stderr: one line starting with "error:" (no traceback, no usage block)."""
    assert result.exit_code != 0 and (result.exception is None or isinstance(result.exception, SystemExit))
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.mark.parametrize("command", PASSWORD_COMMANDS)
def test_password_from_argv_or_stdin(cli, old_user, command):
    args = PASSWORD_COMMANDS[command]
    result = CliRunner().invoke(app, [*args, "--password-stdin"], input=f"{NEW_PASSWORD}\nignored\n")
    assert result.exit_code == 0, result.output
    assert password_works(command)
    if command == "set-password":
        cli(*args, "--password", "yet another long pw")
        assert ctx.provider().users.authenticate("old@example.com", "yet another long pw") is not None
    else:
        cli("users", "add", "--email", "argv@example.com", "--password", NEW_PASSWORD)
        assert ctx.provider().users.authenticate("argv@example.com", NEW_PASSWORD) is not None


@pytest.mark.parametrize("command", PASSWORD_COMMANDS)
@pytest.mark.parametrize(("extra", "stdin", "says"), [
    ([], "", "no terminal"),  # CliRunner's stdin is not a terminal
    ([], f"{NEW_PASSWORD}\n", "no terminal"),  # piped input is not taken without --password-stdin
    (["--password-stdin"], "", "no password"),
    (["--password-stdin"], "\n", "no password"),
    (["--password", NEW_PASSWORD, "--password-stdin"], f"{NEW_PASSWORD}\n", "not both"),
], ids=["no input", "piped without flag", "stdin empty", "stdin blank line", "both"])
def test_no_usable_password_is_one_line_and_changes_nothing(cli, old_user, command, extra, stdin, says):
    result = CliRunner().invoke(app, [*PASSWORD_COMMANDS[command], *extra], input=stdin)
    assert says in one_error_line(result)
    assert "Aborted" not in result.output and "Traceback" not in result.output
    assert not password_works(command)
    assert ctx.provider().users.by_email("new@example.com") is None


def in_terminal(args: list[str], answers: list[str], timeout: float = 60.0) -> tuple[int, str]:
    """Runs ``idbroker <args>`` with a pseudo-terminal as stdin, stdout and stderr, answering each
    prompt ("...: ") with the next of `answers`; returns the exit status and everything shown."""
    main, tty = os.openpty()
    proc = subprocess.Popen([str(IDBROKER), *args], stdin=tty, stdout=tty, stderr=tty, start_new_session=True)
    os.close(tty)
    shown, pending, deadline = b"", list(answers), time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([main], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(main, 4096)
                except OSError:  # EIO: the program has exited and closed the terminal
                    break
                if not chunk:
                    break
                shown += chunk
                # click shows "Password:", then getpass turns echo off and adds the " "
                if pending and shown.endswith(b": "):
                    os.write(main, pending.pop(0).encode() + b"\n")
        text = re.sub(r"\x1b\[[0-9;]*m", "", shown.decode(errors="replace"))  # without rich's styles
        return proc.wait(timeout=max(1.0, deadline - time.monotonic())), text
    finally:
        os.close(main)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("command", PASSWORD_COMMANDS)
def test_password_prompt_in_a_terminal_is_hidden_and_typed_twice(cli, old_user, command):
    code, shown = in_terminal(PASSWORD_COMMANDS[command], ["first try of a pw", "does not match",
                                                           NEW_PASSWORD, NEW_PASSWORD])
    assert code == 0, shown
    assert "Password:" in shown and "Repeat for confirmation:" in shown and "do not match" in shown
    assert NEW_PASSWORD not in shown and "first try of a pw" not in shown  # never echoed
    assert password_works(command)


@pytest.mark.parametrize("number", ["notaphone", "12345", "0044 20 7946 0958x", "+0 20 7946 0958", "020 7946 0958",
                                    "+1" + "2" * 15, "+44 20 7946 0958" + " " * 40])
def test_bad_phone_numbers_are_refused(cli, number):
    result = cli("users", "add", "--email", "p@example.com", "--password", "long enough pw",
                 "--phone-number", number, ok=False)
    assert "--phone-number" in one_error_line(result)
    assert ctx.provider().users.by_email("p@example.com") is None


def test_phone_numbers_are_stored_in_e164(cli):
    user = json.loads(cli("users", "add", "--email", "p@example.com", "--password", "long enough pw",
                          "--phone-number", "0044 (20) 7946-0958", "--json").output)
    assert user["phone_number"] == "+442079460958"


@pytest.mark.parametrize("args", [["users", "show", "[/x]"], ["clients", "show", "[/x]"],
                                  ["users", "disable", "[bold]x"], ["clients", "remove", "[/]"]])
def test_operator_input_is_never_read_as_markup(cli, args):
    result = cli(*args, ok=False)
    assert args[-1] in one_error_line(result)


def test_password_help_names_every_way(cli):
    for command in PASSWORD_COMMANDS.values():
        text = " ".join(cli(*command[:2], "--help").output.split())
        assert "--password-stdin" in text and "asked for twice" in text
        assert not re.search(r"\* --password|--password \S+ \[required\]", text), text


@pytest.mark.parametrize("args", [["users", "add", "--password", "long enough pw"], ["users", "add", "--email"],
                                  ["serve", "--port", "eighty"], ["users", "frob"], ["clients", "add"],
                                  ["users", "set-password"]])
def test_command_line_mistakes_are_one_line(args):
    done = subprocess.run([str(IDBROKER), *args], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and done.stdout == "" and len(lines) == 1 and lines[0].startswith("error: "), done


def test_end_of_input_at_the_prompt_is_one_line(cli):
    code, shown = in_terminal(PASSWORD_COMMANDS["add"], ["\x04"])  # Ctrl-D
    assert code == 1 and shown.strip().splitlines()[-1] == "error: aborted" and "Traceback" not in shown, shown
    assert ctx.provider().users.by_email("new@example.com") is None


def test_db_purge_command(cli, database):
    from datetime import timedelta

    from sqlalchemy import func, select

    from idbroker.store.db import utcnow
    from idbroker.store.models import Interaction

    with database.session() as s:
        s.add(Interaction(id="i-expired", client_id="app", params={}, created_at=utcnow() - timedelta(hours=2),
                          expires_at=utcnow() - timedelta(hours=1)))
    out = cli("db", "purge").output
    assert "interactions: 1 deleted" in out and "grants: 0 deleted" in out
    with database.session(write=False) as s:
        assert s.scalar(select(func.count()).select_from(Interaction)) == 0
