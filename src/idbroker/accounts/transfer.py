"""Bulk import and export of the user pool (`idbroker users import|export`, docs/migration.md).

Why this shape:
- Streaming. A reader turns a file into records one at a time (jsonl and CSV line by line; the
  JSON-document exports of Firebase and Keycloak are read whole, as they are one document), the
  importer holds one batch (`BATCH` records) at a time, and the export writes rows as the
  database cursor yields them, so memory stays flat whatever the number of users.
- One format, one small class in `FORMATS`, turning its records into the generic jsonl shape;
  one `validate` for all of them, so every format gets the same checks (email shape, a hash
  that a hasher verifies, field types), and a bad record is rejected with its line number
  without stopping the import.
- Idempotent and resumable, keyed on the (lower-cased) email: each batch is one transaction that
  first looks up which of its emails exist, then inserts the new ones (Core executemany) and
  skips or updates the others. A crash or kill -9 loses at most the batch in flight, and
  re-running the same file creates exactly the users still missing; never a duplicate (the
  email column is unique as well).
- Hashes are kept as they are (argon2id, or a legacy encoding a hasher in `passwords.HASHERS`
  verifies) and replaced by argon2id at the user's first sign-in; a user without a hash must set
  a password through the reset flow.
"""

from __future__ import annotations

import csv
import io
import json
import operator
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any, ClassVar, Protocol

from sqlalchemy import bindparam, select

from ..security import nul_path, random_token
from ..store.db import Database, aware, utcnow
from ..store.models import User
from .legacy import firebase
from .passwords import recognised
from .users import EMAIL_RE, PROFILE_FIELDS, normalise_email

BATCH = 1000
MAX_KEPT_REJECTS = 1000  # the summary keeps the first rejects; the count is exact
USERS = User.__table__
STRING_FIELDS = tuple(f for f in PROFILE_FIELDS if f not in ("address", "groups", "custom_attributes"))
BOOL_FIELDS = ("email_verified", "phone_number_verified", "disabled")
TIME_FIELDS = ("created_at", "updated_at")
# Every field of the jsonl format (what `export` writes, what `import --format jsonl` reads).
JSONL_FIELDS = ("sub", "email", "password_hash", *BOOL_FIELDS, *PROFILE_FIELDS, *TIME_FIELDS)
SUB_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.:|@+")


class Rejected(ValueError):
    """A record that cannot be imported; the message says why."""


@dataclass
class FormatOptions:
    """Per-import parameters some formats need (Firebase's scrypt parameters)."""
    hash_key: str | None = None
    salt_separator: str | None = None
    rounds: int | None = None
    mem_cost: int | None = None


class Reader(Protocol):
    format: ClassVar[str]

    def __init__(self, options: FormatOptions) -> None: ...

    def records(self, stream: IO[bytes]) -> Iterator[tuple[int, dict[str, Any] | Rejected]]:
        """(line or record number, the record in the jsonl shape or why it cannot be read)."""
        ...


# -- validation ---------------------------------------------------------------------------------

def _time(value: Any, name: str) -> datetime:
    if isinstance(value, datetime):
        return aware(value).astimezone(UTC).replace(microsecond=0)
    if isinstance(value, str):
        try:
            return aware(datetime.fromisoformat(value.replace("Z", "+00:00"))).astimezone(UTC).replace(microsecond=0)
        except ValueError:
            pass
    raise Rejected(f"{name} is not an ISO 8601 date and time")


def _bool(name: str, value: Any) -> Any:
    if not isinstance(value, bool):
        raise Rejected(f"{name} must be true or false")
    return value


def _string(name: str, value: Any) -> Any:
    if value is not None and (not isinstance(value, str) or len(value) > 2048):
        raise Rejected(f"{name} must be a string")
    return value


def _object(name: str, value: Any) -> Any:
    if value is not None and not isinstance(value, dict):
        raise Rejected(f"{name} must be an object")
    return value


def _groups(name: str, value: Any) -> Any:
    if not isinstance(value, list) or not all(isinstance(g, str) and g for g in value):
        raise Rejected("groups must be a list of strings")
    return value


def _password_hash(name: str, value: Any) -> Any:
    if value is not None and (not isinstance(value, str) or len(value) > 512 or not recognised(value)):
        raise Rejected("password_hash is not in an encoding idbroker verifies")
    return value


def _sub(name: str, value: Any) -> Any:
    if value is not None and (not isinstance(value, str) or not 1 <= len(value) <= 64 or not set(value) <= SUB_CHARS):
        raise Rejected("sub must be 1 to 64 URL-safe characters")
    return value


def _when(name: str, value: Any) -> Any:
    return None if value is None else _time(value, name)


# field -> its check (returns the value to store); `email` is checked apart, it is the key.
CHECKS: dict[str, Callable[[str, Any], Any]] = {
    **{n: _bool for n in BOOL_FIELDS}, **{n: _string for n in STRING_FIELDS},
    "address": _object, "custom_attributes": _object, "groups": _groups, "password_hash": _password_hash,
    "sub": _sub, **{n: _when for n in TIME_FIELDS}}


def validate(record: Any) -> dict[str, Any]:
    """The columns to write for one record in the jsonl shape (only the fields it gives, and
    `email`), or Rejected. No side effects."""
    if not isinstance(record, dict):
        raise Rejected("not a JSON object")
    where = nul_path(record)
    if where is not None:
        raise Rejected(f"{where} contains a NUL character")
    email = record.get("email")
    if not isinstance(email, str) or len(email) > 320 or not EMAIL_RE.match(email := normalise_email(email)):
        raise Rejected("email missing or not an email address")
    row: dict[str, Any] = {}
    for name, value in record.items():
        check = CHECKS.get(name)
        if check is not None:
            row[name] = check(name, value)
        elif name != "email":
            raise Rejected(f"unknown field {name!r}")
    row["email"] = email
    for name in ("sub", *TIME_FIELDS):  # null: as if absent
        if name in row and row[name] is None:
            del row[name]
    return row


# -- readers ------------------------------------------------------------------------------------

def _lines(stream: IO[bytes]) -> Iterator[tuple[int, str | Rejected]]:
    for number, raw in enumerate(stream, 1):
        try:
            line = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            yield number, Rejected("not UTF-8")
            continue
        if line:
            yield number, line


def _json_lines(stream: IO[bytes]) -> Iterator[tuple[int, Any]]:
    for number, line in _lines(stream):
        if isinstance(line, Rejected):
            yield number, line
            continue
        try:
            yield number, json.loads(line)
        except (ValueError, RecursionError):
            yield number, Rejected("not valid JSON")


def _document(stream: IO[bytes], key: str) -> Iterator[tuple[int, Any]]:
    """The records of a JSON document: a top-level array, or the array under `key`."""
    try:
        doc = json.load(stream)
    except (ValueError, RecursionError) as exc:
        raise Rejected(f"the file is not a JSON document ({exc})") from exc
    items = doc.get(key) if isinstance(doc, dict) else doc
    if not isinstance(items, list):
        raise Rejected(f"the file has no {key!r} array")
    yield from enumerate(items, 1)


def _epoch_ms(value: Any) -> str | None:
    try:
        return datetime.fromtimestamp(int(value) / 1000, UTC).isoformat() if value not in (None, "") else None
    except (ValueError, TypeError, OverflowError, OSError):
        return None


def _b64_to_ab64(text: str) -> str:
    return text.strip().rstrip("=").replace("+", ".")


class JsonLines:
    """The generic format: one JSON object a line with the fields of `JSONL_FIELDS`."""
    format: ClassVar[str] = "jsonl"

    def __init__(self, options: FormatOptions) -> None:
        self.options = options

    def records(self, stream: IO[bytes]) -> Iterator[tuple[int, dict[str, Any] | Rejected]]:
        yield from _json_lines(stream)


COGNITO_STRINGS = ("given_name", "family_name", "middle_name", "nickname", "preferred_username", "picture",
                   "website", "gender", "birthdate", "zoneinfo", "locale", "phone_number")


class CognitoCsv:
    """The CSV of Cognito's user import job (header from GetCSVHeader): no password hashes, so
    the users are created without one and set a password through the reset flow."""
    format: ClassVar[str] = "cognito-csv"

    def __init__(self, options: FormatOptions) -> None:
        self.options = options

    def records(self, stream: IO[bytes]) -> Iterator[tuple[int, dict[str, Any] | Rejected]]:
        text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
        reader = csv.DictReader(text)
        try:  # the header too: it is where a file that is not CSV (nor UTF-8) first shows
            if not reader.fieldnames or "email" not in reader.fieldnames:
                raise Rejected("the CSV header has no email column (use Cognito's GetCSVHeader header)")
            for row in reader:
                yield reader.line_num, self._record(row)
        except UnicodeDecodeError as exc:
            raise Rejected(f"the file is not UTF-8 (near line {reader.line_num + 1})") from exc
        except csv.Error as exc:  # a field longer than csv.field_size_limit()
            raise Rejected(f"the file is not CSV (line {reader.line_num}: {exc})") from exc

    @staticmethod
    def _record(row: dict[str, str | None]) -> dict[str, Any] | Rejected:
        if None in row:
            return Rejected("more columns than the header")
        record: dict[str, Any] = {"email": row.get("email") or "", "groups": []}
        for name in ("email_verified", "phone_number_verified"):
            value = (row.get(name) or "false").strip().lower()
            if value not in ("true", "false"):
                return Rejected(f"{name} must be true or false")
            record[name] = value == "true"
        for name in COGNITO_STRINGS:
            if row.get(name):
                record[name] = row[name]
        if row.get("address"):
            record["address"] = {"formatted": row["address"]}
        custom = {k.split(":", 1)[1]: v for k, v in row.items() if k and k.startswith("custom:") and v}
        if row.get("cognito:username"):
            custom["cognito_username"] = row["cognito:username"]
        if custom:
            record["custom_attributes"] = custom
        return record


AUTH0_SELF_DESCRIBING = ("bcrypt", "argon2", "ldap", "pbkdf2", "scrypt")


class Auth0:
    """Auth0's bulk user import file (a JSON array, or one object a line as its export jobs and
    its password-hash export write), with `custom_password_hash` or `passwordHash` (bcrypt)."""
    format: ClassVar[str] = "auth0"

    def __init__(self, options: FormatOptions) -> None:
        self.options = options

    def records(self, stream: IO[bytes]) -> Iterator[tuple[int, dict[str, Any] | Rejected]]:
        buffered = stream if isinstance(stream, io.BufferedReader) else io.BufferedReader(stream)  # type: ignore[arg-type]
        first = buffered.peek(64).lstrip()[:1]
        source = _document(buffered, "users") if first == b"[" else _json_lines(buffered)
        for number, item in source:
            yield number, item if isinstance(item, Rejected) else self._record(item)

    @staticmethod
    def _record(user: Any) -> dict[str, Any] | Rejected:
        if not isinstance(user, dict):
            return Rejected("not a JSON object")
        record: dict[str, Any] = {"email": user.get("email") or user.get("Email") or ""}
        for name in ("given_name", "family_name", "nickname", "picture"):
            if user.get(name) is not None:
                record[name] = user[name]
        if "email_verified" in user:
            record["email_verified"] = user["email_verified"]
        if "blocked" in user:
            record["disabled"] = user["blocked"]
        if user.get("created_at"):
            record["created_at"] = user["created_at"]
        custom = {k: user[k] for k in ("user_metadata", "app_metadata") if isinstance(user.get(k), dict)}
        if user.get("user_id") or user.get("_id"):
            custom["auth0_user_id"] = user.get("user_id") or (user["_id"].get("$oid") if isinstance(
                user["_id"], dict) else user["_id"])
        if custom:
            record["custom_attributes"] = custom
        hashed = user.get("custom_password_hash")
        if hashed is not None:
            algorithm = hashed.get("algorithm") if isinstance(hashed, dict) else None
            value = hashed.get("hash", {}).get("value") if isinstance(hashed.get("hash") if isinstance(
                hashed, dict) else None, dict) else None
            if algorithm not in AUTH0_SELF_DESCRIBING or not isinstance(value, str):
                return Rejected(f"custom_password_hash algorithm {algorithm!r} is not supported")
            if algorithm == "pbkdf2" and value.startswith("$pbkdf2-") and "$i=" in value:
                # Auth0's PHC form $pbkdf2-sha256$i=N,l=L$salt$hash -> passlib's $pbkdf2-sha256$N$salt$hash
                head, params, salt, digest = value[1:].split("$", 3) if value.count("$") == 4 else ("", "", "", "")
                iterations = dict(p.split("=", 1) for p in params.split(",") if "=" in p).get("i", "")
                value = f"${head}${iterations}${_b64_to_ab64(salt)}${_b64_to_ab64(digest)}"
            record["password_hash"] = value
        elif isinstance(user.get("passwordHash"), str):
            record["password_hash"] = user["passwordHash"]
        return record


KEYCLOAK_ALGORITHMS = {"pbkdf2-sha256": "pbkdf2-sha256", "pbkdf2-sha512": "pbkdf2-sha512", "pbkdf2": "pbkdf2"}


class Keycloak:
    """A Keycloak realm export (`kc.sh export`: the realm file or its users-N.json files): the
    `users` array, with `credentials` of type password hashed by PBKDF2 (sha1, sha256, sha512)."""
    format: ClassVar[str] = "keycloak"

    def __init__(self, options: FormatOptions) -> None:
        self.options = options

    def records(self, stream: IO[bytes]) -> Iterator[tuple[int, dict[str, Any] | Rejected]]:
        for number, user in _document(stream, "users"):
            yield number, self._record(user)

    def _record(self, user: Any) -> dict[str, Any] | Rejected:
        if not isinstance(user, dict):
            return Rejected("not a JSON object")
        if user.get("serviceAccountClientId"):
            return Rejected("a service account, not a person")
        record: dict[str, Any] = {"email": user.get("email") or "", "groups": [
            g.strip("/") for g in user.get("groups") or [] if isinstance(g, str) and g.strip("/")]}
        for ours, theirs in (("given_name", "firstName"), ("family_name", "lastName"),
                             ("preferred_username", "username"), ("email_verified", "emailVerified")):
            if user.get(theirs) is not None:
                record[ours] = user[theirs]
        if user.get("enabled") is not None:
            record["disabled"] = not user["enabled"] if isinstance(user["enabled"], bool) else user["enabled"]
        if user.get("createdTimestamp") is not None:
            record["created_at"] = _epoch_ms(user["createdTimestamp"]) or "invalid"
        attributes = user.get("attributes")
        if isinstance(attributes, dict) and attributes:
            record["custom_attributes"] = {k: v[0] if isinstance(v, list) and len(v) == 1 else v
                                           for k, v in attributes.items()}
        passwords = [c for c in user.get("credentials") or [] if isinstance(c, dict) and c.get("type") == "password"]
        if passwords:
            try:
                record["password_hash"] = self._hash(passwords[0])
            except (ValueError, TypeError, KeyError, AttributeError):
                return Rejected("the password credential cannot be read")
        return record

    @staticmethod
    def _hash(credential: dict[str, Any]) -> str:
        if "secretData" in credential:  # Keycloak 12 and later
            secret = json.loads(credential["secretData"])
            data = json.loads(credential["credentialData"])
            value, salt = secret["value"], secret["salt"]
            algorithm, iterations = data["algorithm"], int(data["hashIterations"])
        else:
            value, salt = credential["hashedSaltedValue"], credential["salt"]
            algorithm, iterations = credential.get("algorithm", "pbkdf2-sha256"), int(credential["hashIterations"])
        if algorithm not in KEYCLOAK_ALGORITHMS:
            raise ValueError(f"unsupported algorithm {algorithm}")
        return f"${KEYCLOAK_ALGORITHMS[algorithm]}${iterations}${_b64_to_ab64(salt)}${_b64_to_ab64(value)}"


class Firebase:
    """`firebase auth:export users.json --format=json`: the `users` array. Password hashes are
    Firebase's modified scrypt with the project's parameters (FormatOptions), written in the
    `$firebase-scrypt$` encoding (accounts/legacy/firebase.py)."""
    format: ClassVar[str] = "firebase"

    def __init__(self, options: FormatOptions) -> None:
        self.options = options

    def records(self, stream: IO[bytes]) -> Iterator[tuple[int, dict[str, Any] | Rejected]]:
        for number, user in _document(stream, "users"):
            yield number, self._record(user)

    def _record(self, user: Any) -> dict[str, Any] | Rejected:
        if not isinstance(user, dict):
            return Rejected("not a JSON object")
        record: dict[str, Any] = {"email": user.get("email") or ""}
        if "emailVerified" in user:
            record["email_verified"] = user["emailVerified"]
        if "disabled" in user:
            record["disabled"] = user["disabled"]
        for ours, theirs in (("nickname", "displayName"), ("picture", "photoUrl"), ("phone_number", "phoneNumber")):
            if user.get(theirs):
                record[ours] = user[theirs]
        if user.get("createdAt"):
            record["created_at"] = _epoch_ms(user["createdAt"]) or "invalid"
        custom: dict[str, Any] = {"firebase_uid": user["localId"]} if user.get("localId") else {}
        if user.get("customAttributes"):
            try:
                claims = json.loads(user["customAttributes"])
            except (ValueError, TypeError):
                return Rejected("customAttributes is not a JSON object")
            if not isinstance(claims, dict):
                return Rejected("customAttributes is not a JSON object")
            custom.update(claims)
        if custom:
            record["custom_attributes"] = custom
        if user.get("passwordHash"):
            o = self.options
            if not (o.hash_key and o.salt_separator is not None and o.rounds and o.mem_cost):
                return Rejected("a password hash, but no --hash-key, --salt-separator, --rounds and --mem-cost")
            record["password_hash"] = firebase.encode(o.hash_key, o.salt_separator, o.rounds, o.mem_cost,
                                                      str(user.get("salt") or ""), str(user["passwordHash"]))
        return record


FORMATS: dict[str, type[Reader]] = {r.format: r for r in (JsonLines, CognitoCsv, Auth0, Keycloak, Firebase)}


# -- import -------------------------------------------------------------------------------------

@dataclass
class Summary:
    created: int = 0
    updated: int = 0
    skipped: int = 0
    rejected: int = 0
    rejects: list[tuple[int, str]] = field(default_factory=list)  # (line, reason), the first MAX_KEPT_REJECTS

    def reject(self, line: int, reason: str) -> None:
        self.rejected += 1
        if len(self.rejects) < MAX_KEPT_REJECTS:
            self.rejects.append((line, reason))

    def as_dict(self) -> dict[str, Any]:
        return {"created": self.created, "updated": self.updated, "skipped": self.skipped,
                "rejected": self.rejected, "rejects": [{"line": n, "reason": r} for n, r in self.rejects]}


# Every column a new row gets when the record does not give it (the column's own scalar default, so
# a column added to User later needs nothing here).
INSERT_DEFAULTS: dict[str, Any] = {
    **{c.name: c.default.arg if c.default is not None and c.default.is_scalar else None
       for c in USERS.columns if c.name != "id"},
    "email_verified": False, "phone_number_verified": False, "disabled": False}


class Importer:
    """Writes validated records in batches of `batch` (one transaction each); see the module doc."""

    def __init__(self, db: Database, *, on_conflict: str = "skip", dry_run: bool = False, batch: int = BATCH):
        if on_conflict not in ("skip", "update"):
            raise ValueError("on_conflict is skip or update")
        self.db = db
        self.update = on_conflict == "update"
        self.dry_run = dry_run
        self.batch = batch
        self._statement: str | None = None
        self._dialect: Any = None
        self._values: Any = None
        self._processed: list[tuple[int, Any]] = []
        self._inserted = 0
        self._analysed_at = 0

    def run(self, records: Iterable[tuple[int, dict[str, Any] | Rejected]],
            progress: Callable[[int], None] | None = None) -> Summary:
        summary = Summary()
        pending: list[tuple[int, dict[str, Any]]] = []
        for number, record in records:
            try:
                if isinstance(record, Rejected):
                    raise record
                pending.append((number, validate(record)))
            except Rejected as exc:
                summary.reject(number, str(exc))
            if len(pending) >= self.batch:
                self._write(pending, summary)
                pending = []
                if progress:
                    progress(self.batch)
        if pending:
            self._write(pending, summary)
            if progress:
                progress(len(pending))
        return summary

    def _write(self, batch: list[tuple[int, dict[str, Any]]], summary: Summary) -> None:
        emails = list({row["email"] for _, row in batch})
        subs = list({row["sub"] for _, row in batch if "sub" in row})
        with self.db.session() as s:
            existing = dict(s.execute(select(USERS.c.email, USERS.c.id).where(USERS.c.email.in_(emails))).all())
            taken = dict(s.execute(select(USERS.c.sub, USERS.c.email).where(USERS.c.sub.in_(subs))).all()) \
                if subs else {}
            now = utcnow()
            inserts: dict[str, dict[str, Any]] = {}
            updates: dict[str, dict[str, Any]] = {}
            for number, row in batch:
                email = row["email"]
                if "sub" in row and taken.get(row["sub"], email) != email:
                    summary.reject(number, "sub belongs to another user")
                    continue
                if email in existing or email in inserts:
                    if not self.update:
                        summary.skipped += 1
                        continue
                    if email in inserts:  # the file names this email twice in one batch: the later line wins
                        inserts[email].update({k: v for k, v in row.items() if k != "sub"})
                        summary.updated += 1
                        continue
                    summary.updated += 1
                    changes = {k: v for k, v in row.items() if k not in ("sub", "email", "created_at")}
                    updates.setdefault(email, {"b_id": existing[email]}).update(changes, updated_at=now)
                    continue
                if "sub" in row:
                    taken[row["sub"]] = email
                full = {**INSERT_DEFAULTS, "groups": [], "created_at": now, **row}
                full["sub"] = full["sub"] or random_token(16)
                full["updated_at"] = full["updated_at"] or full["created_at"]
                inserts[email] = full
                summary.created += 1
            if self.dry_run:
                return
            if inserts:
                self._insert(s.connection(), list(inserts.values()))
                self._inserted += len(inserts)
            by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
            for values in updates.values():
                by_columns.setdefault(tuple(sorted(values)), []).append(values)
            for columns, rows in by_columns.items():
                statement = USERS.update().where(USERS.c.id == bindparam("b_id")).values(
                    {c: bindparam(c) for c in columns if c != "b_id"})
                s.execute(statement, rows)
        self._keep_statistics()

    def _keep_statistics(self) -> None:
        """PostgreSQL plans each batch's email lookup from the table's statistics, which autovacuum
        refreshes only now and then: planned for the small table it was, the lookup scans the
        whole table, and every batch takes longer than the one before. ANALYZE whenever the
        import has doubled the rows since the last one keeps the plan on the email index."""
        if self.db.url.startswith("postgresql") and self._inserted >= max(2 * self._analysed_at, self.batch):
            with self.db.engine.connect() as conn:
                conn.exec_driver_sql("ANALYZE users")
                conn.commit()
            self._analysed_at = self._inserted


    def _insert(self, conn: Any, rows: list[dict[str, Any]]) -> None:
        """One executemany on the driver's cursor: the statement is built once, and each value goes
        through its column type's own bind processor (the one SQLAlchemy would apply), without
        SQLAlchemy's per-row parameter handling, which costs more than the insert itself. On
        PostgreSQL, COPY (psycopg's `cursor.copy`) instead: one round trip for the batch, where
        executemany pays the server one statement a row."""
        if self._statement is None or self._dialect is not conn.dialect:
            self._dialect = conn.dialect
            names = [c.name for c in USERS.columns if c.name != "id"]
            mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
            preparer = conn.dialect.identifier_preparer
            target = f"{preparer.format_table(USERS)} ({', '.join(preparer.quote(n) for n in names)})"
            self._statement = f"COPY {target} FROM STDIN" if conn.dialect.name == "postgresql" else \
                f"INSERT INTO {target} VALUES ({', '.join([mark] * len(names))})"
            self._values = operator.itemgetter(*names)
            processors = [USERS.c[n].type._cached_bind_processor(conn.dialect) for n in names]
            self._processed = [(i, f) for i, f in enumerate(processors) if f is not None]
        params = []
        for row in rows:
            values = list(self._values(row))
            for i, process in self._processed:
                if values[i] is not None:
                    values[i] = process(values[i])
            params.append(tuple(values))
        if conn.dialect.name != "postgresql":
            conn.exec_driver_sql(self._statement, params)
            return
        with conn.connection.driver_connection.cursor() as cursor, cursor.copy(self._statement) as copy:
            for values in params:
                copy.write_row(values)


def reader_for(format_name: str, options: FormatOptions | None = None) -> Reader:
    return FORMATS[format_name](options or FormatOptions())


# -- export -------------------------------------------------------------------------------------

JSON_FIELDS = ("address", "groups", "custom_attributes")


def _time_json(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):  # SQLite: "YYYY-MM-DD HH:MM:SS[.ffffff]", UTC
        return f'"{value[:10]}T{value[11:19]}Z"'
    return f'"{aware(value).astimezone(UTC).replace(microsecond=0, tzinfo=None).isoformat()}Z"'


def _json_json(value: Any) -> str:
    if isinstance(value, str):  # SQLite keeps JSON as its text: written out as it is
        return value
    return "null" if value is None else _DUMPS(value)


def _bool_json(value: Any) -> str:
    return "true" if value else "false"


def _string_json(value: Any) -> str:
    return "null" if value is None else _ENCODE_STRING(value)


_DUMPS = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_ENCODE_STRING = json.encoder.encode_basestring  # type: ignore[attr-defined]
_ENCODERS = [(name, _time_json if name in TIME_FIELDS else _json_json if name in JSON_FIELDS
              else _bool_json if name in BOOL_FIELDS else _string_json) for name in JSONL_FIELDS]


def export_lines(db: Database) -> Iterator[str]:
    """Every user as one jsonl line (with its newline), in id order, streamed (a server-side cursor
    on PostgreSQL). The driver's own cursor and a per-column encoder: SQLAlchemy's row processing
    would decode each JSON and date value only for it to be encoded again."""
    preparer = db.engine.dialect.identifier_preparer
    statement = (f"SELECT {', '.join(preparer.quote(n) for n in JSONL_FIELDS)} FROM "
                 f"{preparer.format_table(USERS)} ORDER BY {preparer.quote('id')}")
    keys = [(f'"{name}":', encode) for name, encode in _ENCODERS]
    with db.engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=BATCH).exec_driver_sql(statement)
        for rows in result.partitions(BATCH):
            for row in rows:
                yield "{" + ",".join(key + encode(v) for (key, encode), v in zip(keys, row, strict=True)) + "}\n"


def export_records(db: Database) -> Iterator[dict[str, Any]]:
    """Every user in the jsonl shape (what `export` writes), in id order."""
    for line in export_lines(db):
        yield json.loads(line)


def export(db: Database, out: IO[str]) -> int:
    count = 0
    for line in export_lines(db):
        out.write(line)
        count += 1
    return count
