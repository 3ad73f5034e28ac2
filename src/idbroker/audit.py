"""Security events: recorded in the audit trail (audit_events) and, for the ones a user should
know about, mailed to them in their language."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from .store.db import utcnow
from .store.models import AuditEvent

if TYPE_CHECKING:
    from .provider import Provider

log = logging.getLogger("idbroker.audit")

# Event kinds. Those in NOTIFY are mailed to the user.
MFA_ENROLLED = "mfa.enrolled"
MFA_REMOVED = "mfa.removed"
RECOVERY_CODE_USED = "mfa.recovery_code_used"
RECOVERY_CODES_REGENERATED = "mfa.recovery_codes_regenerated"
ACCOUNT_LOCKED = "login.locked"
LOGIN_FAILED = "login.failed"
LOGIN_SUCCEEDED = "login.succeeded"
PASSWORD_CHANGED = "account.password_changed"
NOTIFY = frozenset({MFA_ENROLLED, MFA_REMOVED, RECOVERY_CODE_USED, RECOVERY_CODES_REGENERATED, ACCOUNT_LOCKED})


class Audit:
    def __init__(self, provider: Provider):
        self.provider = provider

    def record(self, kind: str, *, user_id: int | None = None, ip: str | None = None,
               user_agent: str | None = None, **detail: Any) -> None:
        """Never raises: a failed audit write is logged, the user's action goes on."""
        try:
            with self.provider.db.session() as s:
                s.add(AuditEvent(user_id=user_id, kind=kind, ip=ip, user_agent=(user_agent or "")[:512] or None,
                                 detail=detail or None, created_at=utcnow()))
        except Exception:  # noqa: BLE001 - the audit trail must not break sign-in
            log.exception("audit event %s not recorded", kind)
        log.info("security event %s user=%s", kind, user_id)

    def events(self, user_id: int, limit: int = 50) -> list[AuditEvent]:
        from sqlalchemy import select

        with self.provider.db.session(write=False) as s:
            return list(s.scalars(select(AuditEvent).where(AuditEvent.user_id == user_id)
                                  .order_by(AuditEvent.id.desc()).limit(limit)))
