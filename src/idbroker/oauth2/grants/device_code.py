"""RFC 8628 §3.4 device access token request: the device polls with its device_code until the
user has decided on /device (oauth2/device_codes.py gives pending, slow_down, denied, expired)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool

from ..device_codes import GRANT_DEVICE_CODE, DeviceCodes
from .base import UserGrant

if TYPE_CHECKING:
    from ...store.models import Client


class DeviceCodeGrant(UserGrant):
    grant_type = GRANT_DEVICE_CODE

    def __init__(self, *user_grant: Any, devices: DeviceCodes):
        super().__init__(*user_grant)
        self.devices = devices

    async def handle(self, client: Client, form: dict[str, str]) -> dict[str, Any]:
        device_code = self.presented(client, form, "device_code")
        grant, user, refresh = await run_in_threadpool(self.devices.poll, device_code, client, self.refresh_ttl(client),
                                                       self.refresh_binding(client))
        return self.token_response(client, grant, scope=grant.scope, refresh_token=refresh, user=user)
