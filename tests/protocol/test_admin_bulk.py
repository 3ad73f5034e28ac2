"""Admin API bulk import and export (issue 11, "the admin API gains the same import and
export"): the CLI's formats and summary (accounts/transfer.py), write scope to import, read scope
to export, export | import round-trips, the body bounded by admin_import_max_bytes; on SQLite and
PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import pytest
from test_admin_api import API, reader, token_for, writer  # noqa: F401 - fixtures

from idbroker.accounts import transfer

NDJSON = {"Content-Type": "application/x-ndjson"}


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"admin_import_max_bytes": 4096}


def lines(*records: Any) -> bytes:
    return b"".join((json.dumps(r) if not isinstance(r, str) else r).encode() + b"\n" for r in records)


def test_import_answers_the_cli_summary_with_line_numbers(http, writer, reader, user):  # noqa: F811
    body = lines({"email": "bob@example.com", "given_name": "Bob", "groups": ["staff"]},
                 {"email": "not an email"}, "{broken", {"email": user.email, "given_name": "Changed"})
    r = http.post(f"{API}/users/import", headers={**writer, **NDJSON}, content=body, params={"dry_run": "true"})
    assert r.status_code == 200, r.text
    assert r.json()["dry_run"] is True and r.json()["created"] == 1 and r.json()["skipped"] == 1
    assert http.get(f"{API}/users/bob@example.com", headers=reader).status_code == 404  # nothing written
    r = http.post(f"{API}/users/import", headers={**writer, **NDJSON}, content=body)
    summary = r.json()
    assert (summary["created"], summary["updated"], summary["skipped"], summary["rejected"]) == (1, 0, 1, 2)
    assert [reject["line"] for reject in summary["rejects"]] == [2, 3]
    assert all(reject["reason"] for reject in summary["rejects"])
    bob = http.get(f"{API}/users/bob@example.com", headers=reader).json()
    assert bob["given_name"] == "Bob" and bob["groups"] == ["staff"]
    # on_conflict=update changes the existing user; the same file again never duplicates.
    r = http.post(f"{API}/users/import", headers={**writer, **NDJSON}, content=body,
                  params={"on_conflict": "update"})
    assert (r.json()["created"], r.json()["updated"]) == (0, 2)
    assert http.get(f"{API}/users/{user.sub}", headers=reader).json()["given_name"] == "Changed"
    # A reader may not import.
    r = http.post(f"{API}/users/import", headers={**reader, **NDJSON}, content=body)
    assert r.status_code == 403 and r.json()["error"] == "insufficient_scope"


def test_export_streams_jsonl_that_imports_back(http, writer, reader, user, provider):  # noqa: F811
    r = http.get(f"{API}/users/export", headers=reader)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    exported = [json.loads(line) for line in r.text.splitlines()]
    assert [u["email"] for u in exported] == [user.email]
    assert exported[0]["password_hash"].startswith("$argon2id$")
    assert "".join(transfer.export_lines(provider.db)) == r.text  # the CLI's export, byte for byte
    http.delete(f"{API}/users/{user.sub}", headers=writer)
    r = http.post(f"{API}/users/import", headers={**writer, **NDJSON}, content=r.content)
    assert r.json()["created"] == 1, r.text
    back = http.get(f"{API}/users/{user.sub}", headers=reader).json()  # same sub, same profile
    assert back["email"] == user.email and back["given_name"] == exported[0]["given_name"]
    assert http.get(f"{API}/users/export").status_code == 401


def test_import_refuses_bad_parameters_and_bodies_past_the_limit(http, writer, reader):  # noqa: F811
    ok = lines({"email": "c@example.com"})
    for params, where in [({"format": "xml"}, "format"), ({"on_conflict": "merge"}, "on_conflict"),
                          ({"dry_run": "maybe"}, "dry_run"), ({"format": "firebase"}, "hash_key"),
                          ({"rounds": "8"}, "rounds"), ({"format": "firebase", "rounds": "x"}, "rounds")]:
        r = http.post(f"{API}/users/import", headers={**writer, **NDJSON}, content=ok, params=params)
        assert r.status_code == 422, (params, r.text)
        assert where in [e["path"] for e in r.json()["errors"]], (params, r.json())
    big = lines(*({"email": f"u{i}@example.com"} for i in range(200)))
    assert len(big) > 4096
    r = http.post(f"{API}/users/import", headers={**writer, **NDJSON}, content=big)
    assert r.status_code == 413 and "admin_import_max_bytes" in r.json()["error_description"]

    def chunks():  # no Content-Length: refused once the bytes received pass the limit
        for i in range(0, len(big), 1000):
            yield big[i:i + 1000]

    r = http.post(f"{API}/users/import", headers={**writer, **NDJSON}, content=chunks())
    assert r.status_code == 413
    assert http.get(f"{API}/users/c@example.com", headers=reader).status_code == 404
    r = http.post(f"{API}/users/import", headers={**writer, "Content-Type": "application/json"},
                  content=b"not json", params={"format": "keycloak"})
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == "body"


@pytest.mark.parametrize("body", [
    b"RIFF\x1a\x00\x00\x00WEBPVP8L\x0e\x00\x00\x00/\x00\x00\x00\x00\x07\x10\x11\xfd\x0fDD",
    b"email,given_name\nd@example.com,D\ne@example.com,\xff\n",
], ids=["binary", "latin-1-row"])
def test_a_cognito_csv_that_is_not_utf8_is_refused_whole(http, writer, reader, body):  # noqa: F811
    """Found by the admin API fuzz: a file whose header is not UTF-8 answered 500."""
    r = http.post(f"{API}/users/import", headers={**writer, "Content-Type": "text/csv"}, content=body,
                  params={"format": "cognito-csv"})
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["path"] == "body" and "not UTF-8" in r.json()["errors"][0]["message"], r.json()
    assert http.get(f"{API}/users/d@example.com", headers=reader).status_code == 404


@pytest.mark.parametrize("fmt, body, where", [
    ("cognito-csv", b"email,given_name\nd@example.com,D\x00\ne@example.com,E\n", "given_name"),
    ("jsonl", lines({"email": "d@example.com", "address": {"street_address": "1\x00"}},
                    {"email": "e@example.com"}), "address.street_address"),
    ("jsonl", lines({"email": "d@example.com", "custom_attributes": {"a\x00": "x"}},
                    {"email": "e@example.com"}), "custom_attributes.a\x00"),
], ids=["csv-value", "jsonl-nested-value", "jsonl-key"])
def test_a_record_holding_nul_is_rejected_alone_on_both_stores(http, writer, reader, fmt, body, where):  # noqa: F811
    """PostgreSQL text cannot hold NUL: such a record was a 500 there (and stored on SQLite)."""
    r = http.post(f"{API}/users/import", headers={**writer, "Content-Type": "text/plain"}, content=body,
                  params={"format": fmt})
    assert r.status_code == 200, r.text
    assert (r.json()["created"], r.json()["rejected"]) == (1, 1), r.json()
    assert r.json()["rejects"][0]["reason"] == f"{where} contains a NUL character", r.json()
    assert http.get(f"{API}/users/d@example.com", headers=reader).status_code == 404
    assert http.get(f"{API}/users/e@example.com", headers=reader).status_code == 200


def test_import_and_export_are_in_the_openapi_document(http):
    doc = http.get(f"{API}/openapi.json").json()
    assert doc["paths"][f"{API}/users/import"]["post"]["security"] == [{"bearer": ["idbroker:admin:write"]}]
    assert doc["paths"][f"{API}/users/export"]["get"]["security"] == [{"bearer": ["idbroker:admin:read"]}]
    assert "413" in doc["paths"][f"{API}/users/import"]["post"]["responses"]
