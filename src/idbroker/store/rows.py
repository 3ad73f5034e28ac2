"""Rows of joined Core queries, as attribute objects per table (the hot paths skip the ORM)."""

from __future__ import annotations

import json
from typing import Any

Layout = list[tuple[list[str], int, int]]


class Row:
    """Columns of one table from a joined row, as attributes (like the model's)."""

    def __init__(self, values: Any):
        self.__dict__.update(values)


def layout_of(*tables: Any) -> Layout:
    """Where each table's columns sit in a row that selects these tables, in this order."""
    out, start = [], 0
    for table in tables:
        out.append(([c.name for c in table.columns], start, start + len(table.columns)))
        start += len(table.columns)
    return out


def split(row: Any, layout: Layout) -> list[Row]:
    """One Row per table of `layout`."""
    return [Row(zip(names, row[start:end], strict=True)) for names, start, end in layout]


def fingerprint(row: Any) -> str:
    """Every column of a model row, as one string: what a class built from the row depends on.
    (Two writes within the clock's resolution share `updated_at`, so that alone cannot say whether
    something built from the row is still current.)"""
    return json.dumps({c.name: getattr(row, c.key) for c in row.__table__.columns}, sort_keys=True, default=str)
