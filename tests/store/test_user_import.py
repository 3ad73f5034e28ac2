"""`idbroker users import|export` (accounts/transfer.py) against a real store, SQLite and PostgreSQL:
each format, conflicts, dry-run, rejected lines with their numbers, a 100,000-user import, kill -9
mid-import then a re-run, and export -> import round trip."""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import bcrypt
import pytest
from passlib import hash as ph
from sqlalchemy import func, select
from test_cli import IDBROKER

from idbroker.cli import context as ctx
from idbroker.store.models import Base, User

PASSWORD = "legacy pass phrase"
BCRYPT = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
FIREBASE_KEY = "jxspr8Ki0RYycVU8zykbdLGjFQ3McFUH0uiiTvC8pVMXAn210wjLNmdZJzxUECKbm0QsEmYUSDzZvpjeJ9WmXA=="


def write_jsonl(path: Path, records: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def users(database: Any) -> dict[str, User]:
    with database.session(write=False) as s:
        return {u.email: u for u in s.scalars(select(User))}


def count(database: Any) -> int:
    with database.engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(User.__table__))


def signs_in(email: str, password: str) -> bool:
    return ctx.provider().users.authenticate(email, password) is not None


def imported(cli: Any, path: Path, *args: str) -> dict[str, Any]:
    return json.loads(cli("users", "import", str(path), "--json", *args).output)


def test_jsonl_every_field_and_rejected_lines(cli, database, tmp_path):
    path = write_jsonl(tmp_path / "u.jsonl", [
        {"email": "Ann@Example.com", "email_verified": True, "password_hash": BCRYPT, "given_name": "Ann",
         "family_name": "Lee", "groups": ["staff", "ops"], "custom_attributes": {"dept": "42"}, "disabled": False,
         "created_at": "2019-05-01T10:00:00Z", "sub": "legacy-sub-1", "address": {"country": "NZ"},
         "phone_number": "+6421000000", "locale": "en-NZ"},
        {"email": "not-an-address"},
        "{broken json",
        {"email": "x@example.com", "password_hash": "$md5$unknown"},
        {"email": "y@example.com", "groups": "staff"},
        {"email": "z@example.com", "colour": "blue"},
        {"email": "w@example.com", "created_at": "yesterday"},
        {"email": "v@example.com", "disabled": "no"},
        "",
        {"email": "bob@example.com"},
    ])
    summary = imported(cli, path)
    assert (summary["created"], summary["updated"], summary["skipped"], summary["rejected"]) == (2, 0, 0, 7)
    assert [r["line"] for r in summary["rejects"]] == [2, 3, 4, 5, 6, 7, 8]
    reasons = " | ".join(r["reason"] for r in summary["rejects"])
    for says in ("email", "JSON", "password_hash", "groups", "colour", "created_at", "disabled"):
        assert says in reasons
    found = users(database)
    assert set(found) == {"ann@example.com", "bob@example.com"}
    ann = found["ann@example.com"]
    assert ann.sub == "legacy-sub-1" and ann.email_verified and ann.groups == ["staff", "ops"]
    assert ann.custom_attributes == {"dept": "42"} and ann.address == {"country": "NZ"} and ann.locale == "en-NZ"
    assert ann.created_at.year == 2019 and ann.password_hash == BCRYPT
    assert found["bob@example.com"].password_hash is None and not signs_in("bob@example.com", "")
    assert signs_in("ann@example.com", PASSWORD)
    assert users(database)["ann@example.com"].password_hash.startswith("$argon2id$")
    text = cli("users", "import", str(path)).output
    assert "created 0" in text and "skipped 2" in text and "line 3: not valid JSON" in text


def test_conflicts_skip_update_and_dry_run(cli, database, tmp_path):
    first = write_jsonl(tmp_path / "a.jsonl", [{"email": "a@example.com", "given_name": "A", "groups": ["g"],
                                                "password_hash": BCRYPT}])
    imported(cli, first)
    sub = users(database)["a@example.com"].sub
    second = write_jsonl(tmp_path / "b.jsonl", [{"email": "A@example.com", "given_name": "Changed", "disabled": True},
                                                {"email": "new@example.com"}])
    dry = imported(cli, second, "--on-conflict", "update", "--dry-run")
    assert (dry["created"], dry["updated"], dry["dry_run"]) == (1, 1, True)
    assert set(users(database)) == {"a@example.com"} and users(database)["a@example.com"].given_name == "A"
    skip = imported(cli, second)
    assert (skip["created"], skip["skipped"]) == (1, 1) and users(database)["a@example.com"].given_name == "A"
    update = imported(cli, second, "--on-conflict", "update")
    assert (update["created"], update["updated"]) == (0, 2)
    a = users(database)["a@example.com"]
    assert a.given_name == "Changed" and a.disabled and a.sub == sub
    assert a.groups == ["g"] and a.password_hash == BCRYPT  # fields the line does not give are kept
    assert count(database) == 2


def test_a_sub_taken_by_another_user_is_rejected(cli, database, tmp_path):
    path = write_jsonl(tmp_path / "s.jsonl", [{"email": "one@example.com", "sub": "same"},
                                              {"email": "two@example.com", "sub": "same"}])
    summary = imported(cli, path)
    assert summary["created"] == 1 and summary["rejects"] == [{"line": 2, "reason": "sub belongs to another user"}]


def test_cognito_csv(cli, database, tmp_path):
    header = ["name", "given_name", "family_name", "middle_name", "nickname", "preferred_username", "profile",
              "picture", "website", "email", "email_verified", "gender", "birthdate", "zoneinfo", "locale",
              "phone_number", "phone_number_verified", "address", "updated_at", "custom:tier", "cognito:mfa_enabled",
              "cognito:username"]
    path = tmp_path / "cognito.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerow(["Jo Bloggs", "Jo", "Bloggs", "", "", "", "", "", "", "jo@example.com", "true", "", "", "", "",
                    "+14155550100", "false", "1 Main St", "", "gold", "false", "jo"])
        w.writerow(["", "", "", "", "", "", "", "", "", "nope", "true", "", "", "", "", "", "false", "", "", "", "",
                    "x"])
        w.writerow(["", "", "", "", "", "", "", "", "", "k@example.com", "maybe", "", "", "", "", "", "false", "", "",
                    "", "", "k"])
    summary = imported(cli, path, "--format", "cognito-csv")
    assert summary["created"] == 1 and [r["line"] for r in summary["rejects"]] == [3, 4]
    jo = users(database)["jo@example.com"]
    assert jo.given_name == "Jo" and jo.email_verified and jo.phone_number == "+14155550100"
    assert jo.custom_attributes == {"tier": "gold", "cognito_username": "jo"} and jo.password_hash is None
    assert jo.address == {"formatted": "1 Main St"}


def test_auth0(cli, database, tmp_path):
    salt = os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", PASSWORD.encode(), salt, 1000, 32)
    b64 = lambda raw: base64.b64encode(raw).decode().rstrip("=")  # noqa: E731
    records = [
        {"email": "b@example.com", "email_verified": True, "given_name": "B", "user_id": "auth0|1",
         "app_metadata": {"plan": "pro"}, "custom_password_hash": {"algorithm": "bcrypt", "hash": {"value": BCRYPT}}},
        {"email": "p@example.com", "blocked": True, "custom_password_hash": {
            "algorithm": "pbkdf2", "hash": {"value": f"$pbkdf2-sha256$i=1000,l=32${b64(salt)}${b64(digest)}",
                                            "encoding": "utf8"}}},
        {"email": "m@example.com", "custom_password_hash": {"algorithm": "md4", "hash": {"value": "abc"}}},
    ]
    (tmp_path / "auth0.json").write_text(json.dumps(records))
    summary = imported(cli, tmp_path / "auth0.json", "--format", "auth0")
    assert summary["created"] == 2 and summary["rejects"][0]["line"] == 3 and "md4" in summary["rejects"][0]["reason"]
    found = users(database)
    assert found["b@example.com"].custom_attributes == {"app_metadata": {"plan": "pro"}, "auth0_user_id": "auth0|1"}
    assert found["p@example.com"].disabled
    assert signs_in("b@example.com", PASSWORD)
    # the password-hash export of Auth0 support: one object a line, bcrypt in passwordHash
    write_jsonl(tmp_path / "auth0.ndjson", [{"_id": {"$oid": "5f"}, "email": "n@example.com", "passwordHash": BCRYPT}])
    assert imported(cli, tmp_path / "auth0.ndjson", "--format", "auth0")["created"] == 1
    assert signs_in("n@example.com", PASSWORD) and not signs_in("n@example.com", "wrong")


def keycloak_credential(algorithm: str, digest: str, size: int) -> dict[str, Any]:
    salt = os.urandom(16)
    value = hashlib.pbkdf2_hmac(digest, PASSWORD.encode(), salt, 27500, size)
    return {"type": "password", "secretData": json.dumps({"value": base64.b64encode(value).decode(),
                                                          "salt": base64.b64encode(salt).decode()}),
            "credentialData": json.dumps({"hashIterations": 27500, "algorithm": algorithm})}


def test_keycloak(cli, database, tmp_path):
    realm = {"realm": "corp", "users": [
        {"username": "kim", "email": "kim@example.com", "emailVerified": True, "enabled": True, "firstName": "Kim",
         "createdTimestamp": 1600000000000, "attributes": {"dept": ["7"]}, "groups": ["/staff", "/staff/ops"],
         "credentials": [keycloak_credential("pbkdf2-sha256", "sha256", 64)]},
        {"username": "lee", "email": "lee@example.com", "enabled": False,
         "credentials": [keycloak_credential("pbkdf2-sha512", "sha512", 64)]},
        {"username": "old", "email": "old@example.com", "credentials": [keycloak_credential("pbkdf2", "sha1", 20)]},
        {"username": "service-account-x", "serviceAccountClientId": "x"},
        {"username": "noemail"},
    ]}
    (tmp_path / "realm.json").write_text(json.dumps(realm))
    summary = imported(cli, tmp_path / "realm.json", "--format", "keycloak")
    assert summary["created"] == 3 and [r["line"] for r in summary["rejects"]] == [4, 5]
    kim = users(database)["kim@example.com"]
    assert kim.groups == ["staff", "staff/ops"] and kim.custom_attributes == {"dept": "7"}
    assert kim.preferred_username == "kim" and kim.created_at.year == 2020
    assert users(database)["lee@example.com"].disabled
    assert signs_in("kim@example.com", PASSWORD) and signs_in("old@example.com", PASSWORD)
    assert not signs_in("old@example.com", "wrong")


def test_firebase(cli, database, tmp_path):
    export = {"users": [
        {"localId": "u1", "email": "fb@example.com", "emailVerified": True, "displayName": "Fi",
         "passwordHash": "lSrfV15cpx95/sZS2W9c9Kp6i/LVgQNDNC/qzrCnh1SAyZvqmZqAjTdn3aoItz+VHjoZilo78198JAdRuid5lQ==",
         "salt": "42xEC+ixf3L2lw==", "createdAt": "1600000000000", "customAttributes": "{\"role\": \"admin\"}"},
        {"localId": "u2", "phoneNumber": "+15550100"},
    ]}
    (tmp_path / "fb.json").write_text(json.dumps(export))
    missing = cli("users", "import", str(tmp_path / "fb.json"), "--format", "firebase", ok=False)
    assert missing.exit_code == 1 and "--hash-key" in missing.output
    summary = imported(cli, tmp_path / "fb.json", "--format", "firebase", "--hash-key", FIREBASE_KEY,
                       "--salt-separator", "Bw==", "--rounds", "8", "--mem-cost", "14")
    assert summary["created"] == 1 and summary["rejects"][0]["line"] == 2
    fb = users(database)["fb@example.com"]
    assert fb.custom_attributes == {"firebase_uid": "u1", "role": "admin"} and fb.nickname == "Fi"
    assert not signs_in("fb@example.com", "user2password") and signs_in("fb@example.com", "user1password")
    assert users(database)["fb@example.com"].password_hash.startswith("$argon2id$")


@pytest.mark.parametrize(("args", "says"), [
    (["--format", "nope"], "--format"), (["--on-conflict", "merge"], "--on-conflict"),
    (["--rounds", "8"], "firebase"),
])
def test_mistakes_are_one_line(cli, tmp_path, args, says):
    path = write_jsonl(tmp_path / "x.jsonl", [{"email": "a@example.com"}])
    result = cli("users", "import", str(path), *args, ok=False)
    assert result.exit_code == 1 and says in result.output and len(result.output.strip().splitlines()) == 1
    missing = cli("users", "import", str(tmp_path / "missing.jsonl"), ok=False)
    assert missing.exit_code == 1 and "cannot read" in missing.output
    (tmp_path / "bad.json").write_text("{not json")
    bad = cli("users", "import", str(tmp_path / "bad.json"), "--format", "keycloak", ok=False)
    assert bad.exit_code == 1 and "not a JSON document" in bad.output
    (tmp_path / "binary.csv").write_bytes(b"RIFF\x1a\x00\x00\x00WEBPVP8L\x0e\x00\xfd\x0fDD\n")
    (tmp_path / "huge.csv").write_text('email,given_name\na@example.com,"' + "x" * (csv.field_size_limit() + 1) + '"\n')
    for name, says in [("binary.csv", "not UTF-8"), ("huge.csv", "not CSV")]:
        out = cli("users", "import", str(tmp_path / name), "--format", "cognito-csv", ok=False)
        assert out.exit_code == 1 and says in out.output and len(out.output.strip().splitlines()) == 1, out.output


def big_file(path: Path, n: int) -> Path:
    line = '{"email":"user%d@example.com","email_verified":true,"groups":["g"],"password_hash":"' + BCRYPT + '"}\n'
    with path.open("w") as f:
        for start in range(0, n, 10_000):
            f.write("".join(line % i for i in range(start, min(n, start + 10_000))))
    return path


def test_a_hundred_thousand_users(cli, database, tmp_path):
    path = big_file(tmp_path / "big.jsonl", 100_000)
    summary = imported(cli, path)
    assert summary["created"] == 100_000 and summary["rejected"] == 0
    assert count(database) == 100_000
    assert signs_in("user99999@example.com", PASSWORD)
    assert imported(cli, path)["skipped"] == 100_000 and count(database) == 100_000


def test_kill_9_mid_import_then_rerun_gives_exactly_the_file(cli, database, tmp_path):
    n = 60_000  # 60 batches of the importer: the kill lands well before the end (asserted below)
    path = big_file(tmp_path / "kill.jsonl", n)
    ctx.provider().db.dispose()  # the store is migrated; the subprocess writes on its own connections
    ctx.provider.cache_clear()
    proc = subprocess.Popen([str(IDBROKER), "users", "import", str(path)], env=dict(os.environ),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        while count(database) == 0 and proc.poll() is None:  # wait for the first committed batch
            pass
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    killed_at = count(database)
    assert 0 < killed_at < n and proc.returncode == -signal.SIGKILL
    summary = imported(cli, path)
    assert summary["skipped"] == killed_at and summary["created"] == n - killed_at
    assert count(database) == n
    with database.engine.connect() as conn:
        assert conn.scalar(select(func.count(func.distinct(User.__table__.c.email)))) == n


def test_export_import_round_trip(cli, database, tmp_path):
    cli("users", "add", "--email", "own@example.com", "--password", "an own password", "--group", "a")
    write_jsonl(tmp_path / "in.jsonl", [
        {"email": "leg@example.com", "password_hash": ph.sha512_crypt.using(rounds=5000).hash(PASSWORD),
         "custom_attributes": {"x": [1, 2]}, "disabled": True, "address": {"locality": "Wellington"},
         "created_at": "2001-02-03T04:05:06Z"},
    ])
    imported(cli, tmp_path / "in.jsonl")
    cli("users", "export", str(tmp_path / "out.jsonl"))
    assert oct((tmp_path / "out.jsonl").stat().st_mode & 0o777) == "0o600"
    first = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["email"] for r in first] == ["own@example.com", "leg@example.com"]
    assert first[0]["password_hash"].startswith("$argon2id$") and first[0]["groups"] == ["a"]
    with database.engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())
    assert imported(cli, tmp_path / "out.jsonl")["created"] == 2
    again = cli("users", "export", "-").output
    assert [json.loads(line) for line in again.splitlines()] == first
    assert signs_in("own@example.com", "an own password")


def test_standard_input_and_help(cli, database):
    from typer.testing import CliRunner

    from idbroker.cli import app

    lines = json.dumps({"email": "in@example.com", "password_hash": BCRYPT}) + "\n" + "nope\n"
    result = CliRunner().invoke(app, ["users", "import", "-", "--json"], input=lines)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["created"] == 1 and summary["rejects"] == [{"line": 2, "reason": "not valid JSON"}]
    assert signs_in("in@example.com", PASSWORD)
    for command in ("import", "export"):
        text = " ".join(cli("users", command, "--help").output.split())
        assert "Usage" in text and "--format" in text
