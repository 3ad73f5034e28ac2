"""Which AWS role a user may assume: rules (`idbroker roles`), like Cognito identity pools'
rule-based role mapping.

A rule names a role ARN and, optionally, an ID-token claim and a value: it matches a user whose
claim equals the value, or - for a list claim such as `groups` - contains it; a rule without a
claim matches everybody. A rule may be limited to some clients. Rules are tried by ascending
`priority` (then by id), the first match wins. When none matches, the default role applies, or
nobody gets credentials when the default is "deny" (the initial state).

A request may name a preferred role (Cognito's "preferred role"): it is granted only when some
rule matching this user and client names it - never merely because it is the default.

The claims are those of an ID token for the user with every standard scope (oidc/claims.py
`user_claims`), plus `groups`, `idp` and the operator's custom attributes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from ..oidc.claims import SCOPE_CLAIMS, upstream_claims, user_claims
from ..store.db import Database, utcnow
from ..store.models import RoleDefault, RoleRule, User

# arn:aws:iam::<12-digit account>:role/<path/>name (IAM User Guide, "IAM identifiers"); other
# partitions (aws-cn, aws-us-gov) share the form.
ROLE_ARN_RE = re.compile(r"^arn:aws(?:-[a-z]+)*:iam::\d{12}:role/(?:[\x21-\x7e]+/)?[\w+=,.@-]{1,64}$")
DEFAULT_ID = 1


class RoleError(ValueError):
    """An operator mistake: one clear line."""


@dataclass(frozen=True)
class Rule:
    id: int
    role_arn: str
    claim: str | None
    match: str | None
    clients: tuple[str, ...]
    priority: int

    def applies(self, claims: Mapping[str, Any], client_id: str) -> bool:
        if self.clients and client_id not in self.clients:
            return False
        if self.claim is None:
            return True
        value = claims.get(self.claim)
        if isinstance(value, list | tuple):
            return any(_text(v) == self.match for v in value)
        return value is not None and _text(value) == self.match

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "role_arn": self.role_arn, "claim": self.claim, "match": self.match,
                "clients": list(self.clients), "priority": self.priority}


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def check_role_arn(arn: str) -> str:
    if not ROLE_ARN_RE.match(arn or ""):
        raise RoleError(f"{arn!r} is not an IAM role ARN (arn:aws:iam::<12-digit account>:role/<name>)")
    return arn


def claims_of(user: User, idp: str | None = None) -> dict[str, Any]:
    """The claims rules look at: an ID token's claims for every standard scope, `groups`, `idp`
    and the custom attributes (a standard claim wins over a custom attribute of the same name)."""
    claims: dict[str, Any] = dict(user.custom_attributes or {})
    claims.update(user_claims(user, list(SCOPE_CLAIMS)))
    claims["groups"] = list(user.groups or [])
    claims.update(upstream_claims(idp))
    return claims


class RoleRules:
    def __init__(self, db: Database):
        self.db = db

    # -- administration -----------------------------------------------------------------------
    def add(self, role_arn: str, *, claim: str | None = None, match: str | None = None,
            clients: list[str] | None = None, priority: int = 100) -> Rule:
        check_role_arn(role_arn)
        if (claim is None) != (match is None):
            raise RoleError("--claim and --match go together")
        if claim is not None and not claim.strip():
            raise RoleError("--claim must name a claim")
        if not 0 <= priority <= 1_000_000:
            raise RoleError("--priority must be between 0 and 1000000")
        with self.db.session() as s:
            row = RoleRule(role_arn=role_arn, claim=claim, match=match, clients=list(dict.fromkeys(clients or [])),
                           priority=priority, created_at=utcnow())
            s.add(row)
            s.flush()
            return _rule(row)

    def list(self) -> list[Rule]:
        with self.db.session(write=False) as s:
            return [_rule(r) for r in s.scalars(select(RoleRule).order_by(RoleRule.priority, RoleRule.id))]

    def remove(self, rule_id: int) -> None:
        with self.db.session() as s:
            row = s.get(RoleRule, rule_id)
            if row is None:
                raise RoleError(f"no role rule {rule_id}")
            s.delete(row)

    def set_default(self, role_arn: str | None) -> None:
        """`role_arn` for users no rule matches; None: refuse them."""
        if role_arn is not None:
            check_role_arn(role_arn)
        with self.db.session() as s:
            row = s.get(RoleDefault, DEFAULT_ID)
            if row is None:
                s.add(RoleDefault(id=DEFAULT_ID, role_arn=role_arn, updated_at=utcnow()))
            else:
                row.role_arn, row.updated_at = role_arn, utcnow()

    def default(self) -> str | None:
        with self.db.session(write=False) as s:
            row = s.get(RoleDefault, DEFAULT_ID)
            return row.role_arn if row else None

    # -- decision -----------------------------------------------------------------------------
    def choose(self, claims: Mapping[str, Any], client_id: str, preferred: str | None = None) -> str | None:
        """The role for this user and client, or None (refused). Blocking (the database)."""
        matching = [r for r in self.list() if r.applies(claims, client_id)]
        if preferred is not None:
            return preferred if any(r.role_arn == preferred for r in matching) else None
        if matching:
            return matching[0].role_arn
        return self.default()


def _rule(row: RoleRule) -> Rule:
    return Rule(row.id, row.role_arn, row.claim, row.match, tuple(row.clients or ()), row.priority)
