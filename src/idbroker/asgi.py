"""Entry point for ASGI servers: ``idbroker.asgi:create`` (a factory) reads settings from the
environment (``IDBROKER_*``, ``IDBROKER_CONFIG``)."""

from __future__ import annotations

from fastapi import FastAPI

from .app import create_app
from .settings import load_settings


def create() -> FastAPI:
    return create_app(load_settings())
