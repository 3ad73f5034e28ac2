"""`idbroker roles ...` against a real store (SQLite and PostgreSQL): rules in the order they are
tried, the default, and every operator mistake as one line and a non-zero exit."""

from __future__ import annotations

import json

import pytest

from idbroker.cli import context as ctx

DEV = "arn:aws:iam::123456789012:role/dev"
ADMIN = "arn:aws:iam::123456789012:role/team/admin"
READ = "arn:aws:iam::123456789012:role/read-only"


def test_roles_lifecycle_and_order(cli):
    assert json.loads(cli("roles", "list", "--json").output) == {"rules": [], "default": None}
    dev = json.loads(cli("roles", "add", "--role-arn", DEV, "--claim", "groups", "--match", "dev",
                         "--client", "cli", "--client", "web", "--json").output)
    admin = json.loads(cli("roles", "add", "--role-arn", ADMIN, "--claim", "email", "--match", "boss@example.com",
                           "--priority", "10", "--json").output)
    assert dev["clients"] == ["cli", "web"] and dev["priority"] == 100 and admin["priority"] == 10
    cli("roles", "default", READ)
    listed = json.loads(cli("roles", "list", "--json").output)
    assert [r["id"] for r in listed["rules"]] == [admin["id"], dev["id"]]   # lower priority first
    assert listed["default"] == READ
    shown = cli("roles", "list").output
    assert "default: arn:aws:iam::123456789012:role/read-only" in shown

    rules = ctx.provider().role_rules
    boss = {"email": "boss@example.com", "groups": ["dev"]}
    assert rules.choose(boss, "cli") == ADMIN                        # first match wins
    assert rules.choose(boss, "cli", preferred=DEV) == DEV           # a matching rule names it
    assert rules.choose({"groups": ["dev"]}, "other") == READ        # the client is not listed: default
    assert rules.choose({"groups": ["dev"]}, "other", preferred=READ) is None  # the default is no rule

    assert f"removed role rule {admin['id']}" in cli("roles", "remove", str(admin["id"])).output
    cli("roles", "default", "--deny")
    listed = json.loads(cli("roles", "list", "--json").output)
    assert [r["id"] for r in listed["rules"]] == [dev["id"]] and listed["default"] is None
    assert rules.choose({"groups": ["ops"]}, "cli") is None


@pytest.mark.parametrize("args, says", [
    (["add", "--role-arn", "arn:aws:iam::12345:role/x"], "not an IAM role ARN"),
    (["add", "--role-arn", "arn:aws:iam::123456789012:user/bob"], "not an IAM role ARN"),
    (["add", "--role-arn", DEV, "--claim", "groups"], "--claim and --match go together"),
    (["add", "--role-arn", DEV, "--priority", "-1"], "--priority"),
    (["remove", "999"], "no role rule 999"),
    (["default"], "either a role ARN or --deny"),
    (["default", DEV, "--deny"], "either a role ARN or --deny"),
    (["default", "role/dev"], "not an IAM role ARN"),
])
def test_mistakes_are_one_line(cli, args, says):
    result = cli("roles", *args, ok=False)
    assert result.exit_code != 0
    assert says in result.output and "Traceback" not in result.output
    assert len([line for line in result.output.splitlines() if line.strip()]) == 1
