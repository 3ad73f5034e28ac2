"""Migration sources declared in the configuration file (``[[migration.sources]]``), applied to
the registry when the broker starts (`idbroker serve`), like declared upstream providers.

Each entry: ``id``, ``kind``, optionally ``position`` and ``enabled``; every other key is an option
of the kind (its secret options are stored encrypted, as with ``idbroker sources add``). A declared
source is created when missing and otherwise set to exactly what is declared. Sources added with the
CLI and not declared are left alone. A declared entry that its kind refuses stops the start with
one line.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .sources import InvalidSource, SourceRegistry

RESERVED = ("id", "kind", "position", "enabled")


def apply(registry: SourceRegistry, entries: Iterable[Mapping[str, Any]]) -> list[str]:
    done = []
    for entry in entries:
        source_id = str(entry.get("id", ""))
        options = {k: v for k, v in entry.items() if k not in RESERVED}
        position = entry.get("position")
        enabled = bool(entry.get("enabled", True))
        try:
            row = registry.row(source_id)
            if row is None:
                registry.add(source_id, str(entry.get("kind", "")), options,
                             position=int(position) if position is not None else None, enabled=enabled)
                done.append(f"migration source {source_id}: added from the configuration")
                continue
            if row.kind != entry.get("kind"):
                raise InvalidSource(f"its kind is {row.kind!r} in the database and {entry.get('kind')!r} here; "
                                    f"remove it first (idbroker sources remove {source_id})")
            gone = {k: "" for k in [*row.options, *registry.secret_names(row)] if k not in options}
            registry.update(source_id, {**gone, **options}, enabled=enabled,
                            position=int(position) if position is not None else None)
            done.append(f"migration source {source_id}: updated from the configuration")
        except (InvalidSource, ValueError, TypeError) as exc:
            raise InvalidSource(f"[[migration.sources]] {source_id!r}: {exc}") from None
    return done
