"""`idbroker serve` reaches Granian without the command line's libraries (issue 14: cold start <= 1 s).

The console entry point (idbroker.cli:main) takes a fast path for a plain `serve`: no typer, click,
rich, command modules or the full Provider before the process becomes the server. Checked
structurally in a fresh interpreter (what `sys.modules` holds when the server would start), not by
timing; the timing is bench/bench.py's cold start. Everything else must still reach the typer app.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest

from idbroker.cli import ServeArgs, plain, serve_args

CLI_ONLY = ("typer", "click", "rich", "pygments", "idbroker.cli.main", "idbroker.cli.context", "idbroker.provider")

PROBE = """
import json, sys
import idbroker.server as server

def started(host, port, workers, access_log):
    print(json.dumps({"args": [host, port, workers, access_log], "modules": sorted(sys.modules)}))
    sys.stdout.flush()
    raise SystemExit(0)

server.exec_server = started
sys.argv = ["idbroker", *sys.argv[1:]]
from idbroker.cli import main
main()
"""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(tmp_path, *argv: str) -> tuple[dict, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDBROKER_")}
    env.update(IDBROKER_DATA_DIR=str(tmp_path), IDBROKER_ISSUER="http://127.0.0.1:9")
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], env=env, capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    return json.loads(lines[-1]), "\n".join(lines[:-1])


def test_serve_reaches_granian_without_the_command_line(tmp_path) -> None:
    port = _free_port()
    first, _ = _serve(tmp_path, "serve", "--port", str(port))  # first start: data_dir made by the typer app
    again, output = _serve(tmp_path, "serve", "--port", str(port), "--workers", "2")  # a restart
    assert again["args"] == ["127.0.0.1", port, 2, False]
    loaded = set(again["modules"])
    assert loaded & set(CLI_ONLY) == set(), sorted(loaded & set(CLI_ONLY))
    assert "idbroker serving issuer http://127.0.0.1:9 on" in output
    assert "discovery: http://127.0.0.1:9/.well-known/openid-configuration" in output


@pytest.mark.parametrize("argv", [["serve", "--help"], ["serve", "--port", "eighty"], ["serve", "--bogus"],
                                  ["serve", "--port", "1", "--port", "2"], ["--config=x.toml", "serve"],
                                  ["keys", "list"], ["serve", "--host", "--port"], [], ["serve", "--", "x"]])
def test_anything_else_is_the_typer_app(argv: list[str]) -> None:
    assert serve_args(argv) is None


def test_plain_serve_options() -> None:
    assert serve_args(["serve"]) == ServeArgs(None, "127.0.0.1", None, 1, False)
    assert serve_args(["-c", "a.toml", "serve", "--host=0.0.0.0", "--port", "8080", "--workers=4",
                       "--access-log"]) == ServeArgs("a.toml", "0.0.0.0", 8080, 4, True)
    assert serve_args(["serve", "--port", "0", "--no-access-log"]) == ServeArgs(None, "127.0.0.1", None, 1, False)


@pytest.mark.parametrize("text", [
    "idbroker serving issuer [bold]http://127.0.0.1:39471[/] on http://127.0.0.1:39471 (2 workers, store: sqlite)",
    "idbroker serving issuer [bold]https://id.example.com[/] on http://0.0.0.0:8000 (1 worker, store: postgresql)",
    "discovery: https://a-rather-long-issuer-name.example.com/with/a/path/.well-known/openid-configuration",
    "discovery: http://x/" + "a" * 200,
    "x" * 79 + " " + "y" * 5 + "   " + "z" * 90 + "  ",
    "  signing keys  ES256, RS256 (stored encrypted in the database)",
    "                [bold yellow]back it up[/]: it encrypts the signing keys and keys the client secrets; "
    "without it they are lost",
])
@pytest.mark.parametrize("soft_wrap", [True, False])
def test_start_lines_print_as_rich_prints_them(text: str, soft_wrap: bool) -> None:
    from rich.console import Console

    out = io.StringIO()
    Console(file=out, width=80, force_terminal=False).print(text, soft_wrap=soft_wrap)
    assert plain(text, soft_wrap) + "\n" == out.getvalue()


@pytest.mark.parametrize("text", ["[red]x[/]", "deploy :rocket: now", "caf\u00e9", "a\tb"])
def test_what_rich_alone_renders_goes_to_rich(text: str) -> None:
    assert plain(text, True) is None


def test_fast_path_builds_the_key_store_as_the_provider_does(tmp_path, monkeypatch) -> None:
    from idbroker.cli import DISCOVERY_PATH, key_store
    from idbroker.provider import ENDPOINTS, Provider
    from idbroker.settings import load_settings

    assert DISCOVERY_PATH == ENDPOINTS["discovery"]
    monkeypatch.setenv("IDBROKER_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("IDBROKER_ACCESS_TOKEN_TTL", "7200")
    p = Provider(load_settings())
    mine = key_store(p.settings, p.db)
    fields = ("default_alg", "activation_delay", "max_token_ttl", "cache_seconds")
    assert [getattr(mine, f) for f in fields] == [getattr(p.keys, f) for f in fields]
    assert mine._wrap_key.as_dict() == p.keys._wrap_key.as_dict()
    p.db.dispose()


def test_cli_main_stays_the_entry_point() -> None:
    import idbroker.cli
    import idbroker.cli.main as module  # noqa: F401 - loads the submodule

    assert callable(idbroker.cli.main) and not isinstance(idbroker.cli.main, type(sys))
    assert idbroker.cli.app is sys.modules["idbroker.cli.main"].app
