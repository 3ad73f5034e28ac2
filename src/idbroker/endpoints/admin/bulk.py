"""Bulk import and export of users through the admin API: the same code as `idbroker users
import|export` (accounts/transfer.py), so the formats, the checks and the summary are the CLI's.

- ``POST /users/import``: the body is a file in one of transfer.FORMATS (``format``, default
  jsonl), streamed to a temporary file as it arrives (never held in memory) and refused past
  ``admin_import_max_bytes`` (413) - a larger limit than the 64 KiB of every other admin body;
  then imported in batches in a worker thread. ``on_conflict`` (skip|update) and ``dry_run``
  as in the CLI. The answer is the CLI's ``--json`` summary: created, updated, skipped, rejected
  and the first rejects with their line numbers.
- ``GET /users/export``: every user as jsonl (hashes included, so keep it safe), streamed from
  a database cursor.
"""

from __future__ import annotations

import tempfile
from typing import IO, Any

import anyio
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.responses import Response, StreamingResponse

from ...accounts.transfer import FORMATS, FormatOptions, Importer, Rejected, export_lines, reader_for
from . import spec
from .calls import NO_STORE, ApiError, Call, invalid, json_answer

NDJSON = "application/x-ndjson"
CHUNK_SECONDS = 60  # the import body may take longer than body_read_timeout: that much per 1 MiB at worst
_FIREBASE = {"hash_key": str, "salt_separator": str, "rounds": int, "mem_cost": int}



async def _spool(call: Call, limit: int) -> IO[bytes]:
    """The body in a temporary file (rewound); ApiError 413 past `limit`, 400 if it breaks off."""
    length = call.request.headers.get("content-length")
    if length is not None and not (length.isascii() and length.isdigit()):
        raise ApiError(400, "invalid_request", "the Content-Length header is not a number")
    if length is not None and int(length) > limit:
        raise ApiError(413, "invalid_request", f"the file is larger than {limit} bytes (admin_import_max_bytes)")
    out = tempfile.TemporaryFile()  # noqa: SIM115 - closed by the caller
    size = 0
    try:
        timeout = getattr(call.request.app.state, "body_read_timeout", 10.0) + CHUNK_SECONDS * (limit >> 20)
        with anyio.fail_after(timeout):
            async for chunk in call.request.stream():
                size += len(chunk)
                if size > limit:
                    raise ApiError(413, "invalid_request",
                                   f"the file is larger than {limit} bytes (admin_import_max_bytes)")
                await run_in_threadpool(out.write, chunk)
    except TimeoutError:
        out.close()
        raise ApiError(400, "invalid_request", "the request body arrived too slowly") from None
    except ClientDisconnect:
        out.close()
        raise ApiError(400, "invalid_request", "the request body is incomplete") from None
    except BaseException:
        out.close()
        raise
    out.seek(0)
    return out


def _flag(call: Call, name: str) -> bool:
    raw = call.query.get(name, "false")
    if raw not in ("true", "false"):
        raise invalid([(name, "must be true or false")])
    return raw == "true"


def _options(call: Call, format_name: str) -> FormatOptions:
    values: dict[str, Any] = {}
    problems = []
    for name, kind in _FIREBASE.items():
        raw = call.query.get(name)
        if raw is None:
            continue
        if kind is int and not (raw.isascii() and raw.isdigit() and 0 < int(raw) < 2**31):
            problems.append((name, "must be a positive integer"))
            continue
        values[name] = int(raw) if kind is int else raw
    if format_name == "firebase":
        problems += [(n, "is required for the firebase format") for n in _FIREBASE if n not in values]
    elif values:
        problems += [(n, "is for the firebase format only") for n in values]
    if problems:
        raise invalid(problems)
    return FormatOptions(**values)


async def users_import(call: Call) -> Response:
    format_name = call.query.get("format", "jsonl")
    if format_name not in FORMATS:
        raise invalid([("format", f"must be one of {', '.join(FORMATS)}")])
    on_conflict = call.query.get("on_conflict", "skip")
    if on_conflict not in ("skip", "update"):
        raise invalid([("on_conflict", "must be skip or update")])
    dry_run = _flag(call, "dry_run")
    options = _options(call, format_name)
    stream = await _spool(call, call.provider.settings.admin_api.admin_import_max_bytes)
    importer = Importer(call.provider.db, on_conflict=on_conflict, dry_run=dry_run)
    try:
        summary = await run_in_threadpool(importer.run, reader_for(format_name, options).records(stream))
    except Rejected as exc:  # the file as a whole cannot be read (a JSON document that is not one)
        raise invalid([("body", str(exc))], "the file cannot be read") from None
    finally:
        stream.close()
    return json_answer({**summary.as_dict(), "dry_run": dry_run})


async def users_export(call: Call) -> Response:
    lines = export_lines(call.provider.db)
    return StreamingResponse((line.encode() for line in lines), media_type=NDJSON, headers={
        **NO_STORE, "Content-Disposition": 'attachment; filename="users.jsonl"'})


# -- the OpenAPI operation objects -----------------------------------------------------------------
_FILE = {"type": "string", "format": "binary"}
IMPORT_DOC: dict[str, Any] = spec.operation(
    "Import users from a file (the formats of `idbroker users import`; hashes kept as they are)",
    result="ImportSummary", errors=(400, 413, 422), params=[
        spec.query_param("format", "The file's format (default jsonl, what export writes).",
                         {"type": "string", "enum": list(FORMATS)}),
        spec.query_param("on_conflict", "For an email that already has a user: skip the record (default) or "
                         "update the user with it.", {"type": "string", "enum": ["skip", "update"]}),
        spec.query_param("dry_run", "Check every record and count; write nothing.", {"type": "boolean"}),
        *(spec.query_param(n, f"firebase only: the {n.replace('_', ' ')} of the project's password hashes.",
                           {"type": "integer", "minimum": 1, "maximum": 2**31 - 1} if kind is int else None)
          for n, kind in _FIREBASE.items())])
IMPORT_DOC["requestBody"] = {
    "required": True, "description": "The file, at most admin_import_max_bytes (default 50 MB), sent as it is.",
    "content": {media: {"schema": _FILE} for media in (NDJSON, "application/octet-stream", "text/csv",
                                                       "application/json")}}
EXPORT_DOC: dict[str, Any] = spec.operation("Every user as JSON lines (password hashes included)")
EXPORT_DOC["responses"]["200"]["content"] = {NDJSON: {"schema": {"type": "string"}}}
