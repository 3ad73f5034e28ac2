"""A worker's start stays light (issue 14: RSS <= 100 MB per worker, cold start <= 1 s).

Granian's workers import `idbroker.asgi` and call `create()`. Libraries that only an optional part
needs - httpx (upstream providers, webhook sources), boto3/botocore (the Cognito migration source),
pysaml2, xmlschema and defusedxml (SAML upstreams), ldap3 (LDAP upstreams and sources), py_webauthn
(passkey ceremonies), segno (the TOTP enrolment's QR code), libpass (legacy crypt(3) strings) - load
on first use, not in every worker; test and benchmark tools never load, nor do the command line's (rich, click, typer).
The supervisor prepares the store with the application's modules before it forks the workers
(server.py), so what `prepare` loads every worker inherits: it is held to the same rule. And
`idbroker serve` is the server itself: up to the moment Granian starts, it has loaded none of the
command line's libraries, which the supervisor and every worker would otherwise carry (a start
used to load them for its options, then exec the server). Checked in a fresh interpreter by what
`sys.modules` holds: no timing involved.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

LAZY = ("boto3", "botocore", "s3transfer", "saml2", "xmlschema", "ldap3", "webauthn", "pyasn1_modules",
        "httpx", "httpcore", "h11",  # httpx: with the first upstream provider built (web/upstream_http.py)
        "segno", "defusedxml", "passlib")  # the TOTP QR code, SAML's XML checks, legacy crypt(3) strings
NEEDLESS = ("rich", "click", "pygments", "typer")  # httpx's command line, the CLI's libraries
NEVER = ("schemathesis", "hypothesis", "pytest", "moto")
MIGRATIONS = ("alembic", "mako")  # needed to migrate, not on a restart of a migrated store (store/migrate.py)

WORKER = """
import json, sys
def loaded():  # asgi.py enters httpx._main as None: refused, not loaded
    return sorted(name for name, module in sys.modules.items() if module is not None)
import idbroker.asgi
imported = loaded()
from idbroker.server import prepare
from idbroker.settings import load_settings
prepare(load_settings(), "127.0.0.1", 8000, 2)
prepared = loaded()
idbroker.asgi.create()
print(json.dumps({"import": imported, "prepare": prepared, "create": loaded()}))
"""

SERVE = """
import json, sys
import granian
def serve(self):
    print(json.dumps(sorted(sys.modules)))
    sys.exit(0)
granian.Granian.serve = serve
sys.argv = ["idbroker", "serve", "--port", sys.argv[1]]
from idbroker.cli import main
main()
"""

STEPS = ["import", "prepare", "create"]


def _top_level(modules: list[str]) -> set[str]:
    return {name.partition(".")[0] for name in modules}


@pytest.fixture(scope="module")
def worker_modules(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    data_dir = tmp_path_factory.mktemp("worker")
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDBROKER_")}
    env["IDBROKER_DATA_DIR"] = str(data_dir)
    for _start in ("first", "again"):  # measured on a restart: a first start loads Alembic to migrate
        done = subprocess.run([sys.executable, "-c", WORKER], env=env, capture_output=True, text=True, timeout=120,
                              cwd=data_dir)
        assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    return {**{step: _top_level(names) for step, names in found.items()}, "all": set(found["create"])}


def test_serve_starts_granian_without_the_command_lines_libraries(tmp_path) -> None:
    from support import free_port

    env = {k: v for k, v in os.environ.items() if not k.startswith("IDBROKER_")}
    env["IDBROKER_DATA_DIR"] = str(tmp_path)
    for _start in ("first", "again"):  # a restart, as above: migrating loads Alembic's templates (mako, pygments)
        done = subprocess.run([sys.executable, "-c", SERVE, str(free_port())], env=env, capture_output=True,
                              text=True, timeout=120, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert {"idbroker.server", "idbroker.provider", "granian"} <= loaded  # it did prepare the store, then start
    assert not _top_level(sorted(loaded)) & set(NEEDLESS)
    assert "idbroker.cli.main" not in loaded and "idbroker.cli.serve_cmd" not in loaded


@pytest.mark.parametrize("step", STEPS)
def test_optional_libraries_load_on_first_use(worker_modules: dict[str, set[str]], step: str) -> None:
    assert worker_modules[step] & set(LAZY) == set()


@pytest.mark.parametrize("step", STEPS)
def test_test_tools_never_load_in_a_worker(worker_modules: dict[str, set[str]], step: str) -> None:
    assert worker_modules[step] & set(NEVER) == set()


@pytest.mark.parametrize("step", STEPS)
def test_command_line_libraries_stay_out_of_a_worker(worker_modules: dict[str, set[str]], step: str) -> None:
    assert worker_modules[step] & set(NEEDLESS) == set()


@pytest.mark.parametrize("step", STEPS)
def test_migration_tools_stay_out_of_a_restart(worker_modules: dict[str, set[str]], step: str) -> None:
    assert worker_modules[step] & set(MIGRATIONS) == set()


def test_a_sqlite_broker_leaves_the_postgresql_dialect_alone(worker_modules: dict[str, set[str]]) -> None:
    assert {name for name in worker_modules["all"] if name.startswith("sqlalchemy.dialects.postgresql")} == set()
    assert "sqlalchemy.dialects.sqlite" in worker_modules["all"]


def test_the_worker_did_load_the_broker(worker_modules: dict[str, set[str]]) -> None:
    """The check above means something: the subprocess really built the app."""
    assert {"idbroker", "starlette", "sqlalchemy", "joserfc"} <= worker_modules["create"]


def test_saml_constants_are_pysaml2s() -> None:
    """federation/saml.py spells out pysaml2's algorithm and NameID format URIs so it loads without
    pysaml2; they must stay the library's."""
    from idbroker.federation import saml as module

    module.load_pysaml2()
    from saml2 import saml
    from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

    assert module.SIG_RSA_SHA256 == SIG_RSA_SHA256
    assert module.DIGEST_SHA256 == DIGEST_SHA256
    assert module.NAMEID_FORMAT_PERSISTENT == saml.NAMEID_FORMAT_PERSISTENT
    assert module.NAMEID_FORMAT_EMAILADDRESS == saml.NAMEID_FORMAT_EMAILADDRESS
    assert module.NAMEID_FORMAT_UNSPECIFIED == saml.NAMEID_FORMAT_UNSPECIFIED
    assert module.Saml2Client.__module__ == "saml2.client"


def test_ldap_names_load_on_first_use() -> None:
    """`from idbroker.federation.ldap import Connection` still works (the tests' slapd helper)."""
    from idbroker.federation.ldap import Connection, escape_filter_chars

    assert Connection.__module__.startswith("ldap3")
    assert escape_filter_chars("a*b") == "a\\2ab"


def test_webauthn_names_load_on_first_use() -> None:
    from idbroker.mfa import webauthn as module

    names = module.load_webauthn()
    assert names.bytes_to_base64url(b"\xff") == "_w"
    assert names.TRANSPORTS >= {"usb", "internal", "hybrid"}


def test_language_names_are_babels() -> None:
    """web/i18n.py spells out each language's own name and direction so that workers need not load
    every language's CLDR data; they must stay what Babel says (zh_Hans: our own short name)."""
    from babel import Locale

    from idbroker.text import SUPPORTED
    from idbroker.web.i18n import OWN_NAMES

    assert set(OWN_NAMES) == set(SUPPORTED.values())
    for ident, (name, direction) in OWN_NAMES.items():
        locale = Locale.parse(ident)
        if ident != "zh_Hans":
            babel_name = locale.get_display_name(ident)
            assert name == babel_name[:1].upper() + babel_name[1:], ident
        assert direction == ("rtl" if locale.character_order == "right-to-left" else "ltr"), ident


def test_catalogs_load_no_cldr_locale_data(tmp_path) -> None:
    """Building the catalogs (every worker does) reads no language's CLDR data."""
    code = ("import babel.localedata as d; from idbroker.web.i18n import Catalogs; c = Catalogs(); "
            "print(sorted(c._dirs.items())); print(sorted(d._cache))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    dirs, cached = done.stdout.strip().splitlines()[-2:]
    assert "('ar', 'rtl')" in dirs
    assert cached == "[]"


@pytest.mark.parametrize(("argv", "expected"), [
    (["serve", "--port", "80"], (None, ["--port", "80"])),
    (["-c", "a.toml", "serve"], ("a.toml", [])),
    (["--config", "a.toml", "serve", "--workers", "2"], ("a.toml", ["--workers", "2"])),
    (["--config=a.toml", "serve", "--help"], ("a.toml", ["--help"])),
    (["users", "list"], None), (["-c", "a.toml", "users", "list"], None), (["-c"], None), ([], None),
    (["clients", "serve"], None)])
def test_serve_is_recognised_with_or_without_a_configuration_file(argv, expected) -> None:
    """What cli/__init__.py hands to the server's own `main` instead of the command line."""
    from idbroker.cli import serve_options

    assert serve_options(argv) == expected
