"""Where the broker may send a browser on its own pages."""

from __future__ import annotations


def local_path(value: str | None, default: str = "/") -> str:
    """`value` when it is a path on this site, else `default`: never an open redirect."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value \
            or any(ord(ch) < 0x20 for ch in value) or len(value) > 2048:
        return default
    return value
