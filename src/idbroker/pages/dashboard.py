"""The apps dashboard: a tile per application users can open from here."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..store.models import Client
from .hosted import HostedPages


class DashboardViews(HostedPages):
    def routes(self) -> list[Route]:
        return [
            Route("/", self.home, methods=["GET"]),
            Route("/apps", self.apps, methods=["GET"]),
        ]

    async def home(self, request: Request) -> Response:
        return self.redirect("/apps")

    def listed_apps(self) -> list[Client]:
        """Clients with a start page (logback_uri) that the operator did not hide."""
        rows = [c for c in self.provider.clients.list() if c.logback_uri and not c.hidden_from_dashboard]
        return sorted(rows, key=lambda c: (c.name or c.client_id).lower())

    async def apps(self, request: Request) -> Response:
        found = self.signed_in(request)
        if found is None:
            return self.to_login(request)
        apps = await run_in_threadpool(self.listed_apps)
        return self.page(request, "dashboard/apps.html", user=found[1], apps=apps, nav="apps")
