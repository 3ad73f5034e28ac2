"""Persistence of grants, authorization codes, refresh tokens and revoked access tokens.

A *grant* is one authorization a user gave a client; every code, refresh token and access token
issued from it names it, so revoking the grant (code replay, refresh reuse, logout, revocation)
ends the whole family at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, exists, or_, select, update
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from ..security import random_token, sha256_hex
from ..store.db import Database, aware, utcnow
from ..store.models import AuthorizationCode, Grant, RefreshToken, RevokedToken, User
from ..store.rows import Row
from .one_time_writer import AUTHORIZATION_CODES, BIND_DPOP_KEY, REFRESH_TOKENS, REUSED, Decision, OneTimeWriter


@dataclass
class CodeRedemption:
    code: Any = None           # the authorization_codes row (attribute access)
    grant: Any = None          # its grant
    replayed: bool = False
    user: Any = None           # the grant's user
    refresh_token: str | None = None


@dataclass
class TokenState:
    revoked: bool
    user: Any = None  # the users-table row (attribute access like a User)


@dataclass
class RefreshRotation:
    old: RefreshToken | None
    grant: Grant | None
    new_token: str | None = None
    reused: bool = False
    user: User | None = None
    scope: str = ""


CACHE_ENTRIES = 10000


class GrantStore:
    def __init__(self, db: Database):
        self.db = db
        # (jti, gid, sub) -> (change-feed generation read before the query, TokenState)
        self._states: dict[tuple[str, str | None, str | None], tuple[int, TokenState]] = {}
        # gid -> the claims request (OIDC Core §5.5) its authorization made: written with the grant
        # and never changed, so kept per worker (a revoked grant is refused by token_state first)
        self._claims_requests: dict[str, dict[str, Any] | None] = {}
        self.rotations = OneTimeWriter(db, REFRESH_TOKENS)
        self.redemptions = OneTimeWriter(db, AUTHORIZATION_CODES)

    # -- grants --------------------------------------------------------------------------------
    def cached_claims_request(self, grant_id: str) -> tuple[bool, dict[str, Any] | None]:
        """(known, the grant's claims request) from this worker's memory; never touches the database."""
        return (grant_id in self._claims_requests), self._claims_requests.get(grant_id)

    def claims_request(self, grant_id: str) -> dict[str, Any] | None:
        """The claims request of the grant's authorization (None when it made none); read once per
        worker and grant, since it never changes."""
        known, asked = self.cached_claims_request(grant_id)
        if known:
            return asked
        with self.db.session(write=False) as s:
            grant = s.get(Grant, grant_id)
            asked = grant.claims if grant is not None else None
        if len(self._claims_requests) >= CACHE_ENTRIES:
            self._claims_requests.clear()
        self._claims_requests[grant_id] = asked
        return asked

    def create_grant(self, *, client_id: str, user_id: int, sid: str | None, scope: str,
                     auth_time: datetime, amr: list[str], acr: str | None, ttl: int, idp: str | None = None,
                     session: Session | None = None) -> Grant:
        now = utcnow()
        grant = Grant(id=random_token(16), client_id=client_id, user_id=user_id, sid=sid, scope=scope,
                      auth_time=auth_time, amr=amr, acr=acr, idp=idp, created_at=now,
                      expires_at=now + timedelta(seconds=ttl), revoked_at=None)
        with self.db.using(session) as s:
            s.add(grant)
        return grant

    def revoke_grant(self, grant_id: str) -> None:
        with self.db.session() as s:
            s.execute(update(Grant).where(Grant.id == grant_id, Grant.revoked_at.is_(None))
                      .values(revoked_at=utcnow()))

    def revoke_session_grants(self, sid: str, *, keep_offline: bool = True) -> None:
        """At logout: end the grants of the session, except offline_access ones when asked."""
        with self.db.session() as s:
            for grant in s.scalars(select(Grant).where(Grant.sid == sid, Grant.revoked_at.is_(None))):
                if keep_offline and "offline_access" in grant.scope.split():
                    continue
                grant.revoked_at = utcnow()

    def revoke_user_client_grants(self, user_id: int, client_id: str) -> int:
        """Everything a user allowed a client: its refresh and access tokens stop working.
        Returns how many live grants were revoked."""
        with self.db.session() as s:
            return s.execute(update(Grant).where(Grant.user_id == user_id, Grant.client_id == client_id,
                                                 Grant.revoked_at.is_(None))
                             .values(revoked_at=utcnow())).rowcount

    def revoke_user_grants(self, user_id: int, *, keep_sid: str | None = None) -> int:
        """Every grant of the user (and so every code, refresh token and access token issued from
        them), e.g. at a password reset; with `keep_sid`, except those made in that browser session
        (a password change keeps the session that made it). Returns how many were revoked."""
        query = update(Grant).where(Grant.user_id == user_id, Grant.revoked_at.is_(None))
        if keep_sid is not None:
            query = query.where(or_(Grant.sid.is_(None), Grant.sid != keep_sid))
        with self.db.session() as s:
            return s.execute(query.values(revoked_at=utcnow())).rowcount

    # -- authorization codes ----------------------------------------------------------------
    def create_code(self, grant: Grant, *, redirect_uri: str | None, nonce: str | None,
                    code_challenge: str | None, ttl: int, session: Session | None = None) -> str:
        code = random_token(32)
        now = utcnow()
        with self.db.using(session) as s:
            s.add(AuthorizationCode(code_hash=sha256_hex(code), grant_id=grant.id, client_id=grant.client_id,
                                    redirect_uri=redirect_uri, nonce=nonce, code_challenge=code_challenge,
                                    created_at=now, expires_at=now + timedelta(seconds=ttl), used_at=None))
        return code

    def drain_batches(self) -> list[tuple[str, float]]:
        """(kind, seconds) of every one-time batch since the last call: code redemptions and refresh
        rotations (one_time_writer.py), for /metrics."""
        return [(writer.statements.kind, seconds) for writer in (self.redemptions, self.rotations)
                for seconds in writer.drain_batches()]

    async def redeem_code(self, code: str, *, check: Callable[[Any, Any], None],
                          refresh_ttl: Callable[[Any], int | None], dpop_jkt: str | None = None) -> CodeRedemption:
        """Uses the code once: of two concurrent redemptions exactly one wins, and a second
        presentation is reported as a replay and revokes the grant (RFC 6749 §4.1.2).

        `check(code, grant)` validates the token request; what it raises is raised after the code
        has been used up all the same. When it passes and `refresh_ttl(grant)` gives a lifetime,
        a refresh token is issued in the same transaction, and with `dpop_jkt` the grant's refresh
        tokens are bound to that DPoP key (RFC 9449 §5) in it too: once it commits, answering needs
        nothing more from the store. As for refresh tokens, the read, the decision and the write are
        group-committed (one_time_writer.py) and awaited without holding a thread."""
        code_hash = sha256_hex(code)
        token = random_token(32)
        read: list[Any] = []

        def decide(found: tuple[Row, Row, Row] | None) -> Decision:
            if found is None:
                return False, None, CodeRedemption()
            row, grant, user = found
            read[:] = [row, grant]
            if row.used_at is not None:
                return False, None, CodeRedemption(row, grant, replayed=True)
            try:
                check(row, grant)
            except Exception as exc:  # noqa: BLE001 - raised once the code is used up
                return True, None, exc
            ttl = refresh_ttl(grant)
            if not ttl:
                return True, None, CodeRedemption(row, grant, user=user)
            successor = refresh_token_row(grant, token, scope=grant.scope, ttl=ttl)
            if dpop_jkt:
                successor[BIND_DPOP_KEY] = dpop_jkt
            return True, successor, CodeRedemption(row, grant, user=user, refresh_token=token)

        decided = await self.redemptions.present_async(code_hash, decide)
        if decided is REUSED:  # redeemed by an earlier presentation in the same batch
            decided = CodeRedemption(*read, replayed=True)
        if isinstance(decided, Exception):
            raise decided
        if decided.replayed:
            await run_in_threadpool(self.revoke_grant, decided.grant.id)
        return decided

    # -- refresh tokens (rotation with reuse detection, OAuth 2.0 Security BCP §4.14) -----------
    def create_refresh_token(self, grant: Grant, *, scope: str, ttl: int) -> tuple[str, datetime]:
        token, row = new_refresh_token(grant, scope=scope, ttl=ttl)
        with self.db.session() as s:
            s.add(row)
        return token, row.expires_at

    def find_refresh_token(self, token: str) -> tuple[RefreshToken, Grant] | None:
        with self.db.session(write=False) as s:
            found = s.execute(select(RefreshToken, Grant).join(Grant, Grant.id == RefreshToken.grant_id)
                              .where(RefreshToken.token_hash == sha256_hex(token))).first()
        return (found[0], found[1]) if found else None

    async def rotate_refresh_token(self, token: str, *, check: Callable[[Any, Any], str], ttl: int
                                   ) -> RefreshRotation:
        """Uses `token` once and issues its successor. `check(old, grant)` validates the request
        and returns the scope of the new token; when it raises, nothing is written. Presenting a
        used token again revokes the whole family.

        The read (token, grant and user in one query), the decision and the write (mark the token
        used - only if it still is unused: of two concurrent presentations exactly one wins - and
        insert its successor) are group-committed with the other rotations waiting in this
        process (one_time_writer.py), and awaited without holding a thread. `old`, `grant` and
        `user` are plain rows (attribute access like the models)."""
        token_hash = sha256_hex(token)
        new = random_token(32)
        read: list[Any] = []

        def decide(found: tuple[Row, Row, Row] | None) -> Decision:
            if found is None:
                return False, None, RefreshRotation(None, None)
            old, grant, user = found
            read[:] = [old, grant]
            scope = check(old, grant)
            now = utcnow()
            if old.used_at is not None:
                return False, None, RefreshRotation(old, grant, reused=True)
            if grant.revoked_at is not None or aware(old.expires_at) <= now:
                return False, None, RefreshRotation(old, grant)
            successor = refresh_token_row(grant, new, scope=scope, ttl=ttl, now=now)
            return True, successor, RefreshRotation(old, grant, new_token=new, user=user, scope=scope)

        decided = await self.rotations.present_async(token_hash, decide)
        if decided is REUSED:  # an earlier presentation in the same batch won
            decided = RefreshRotation(*read, reused=True)
        if decided.reused:  # the family is revoked
            await run_in_threadpool(self.revoke_grant, decided.grant.id)
        return decided

    # -- access-token revocation list ------------------------------------------------------
    def revoke_jti(self, jti: str, expires_at: datetime) -> None:
        with self.db.session() as s:
            if s.get(RevokedToken, jti) is None:
                s.add(RevokedToken(jti=jti, expires_at=expires_at))

    def cached_token_state(self, jti: str, gid: str | None, sub: str | None) -> TokenState | None:
        """This worker's last answer of `token_state` for these arguments, while nothing it
        depends on has changed since (store/changes.py); else None. Never touches the database."""
        return self._cached((jti, gid, sub), self.db.changes.generation())

    def _cached(self, key: tuple[str, str | None, str | None], generation: int | None) -> TokenState | None:
        hit = self._states.get(key)
        return hit[1] if hit is not None and generation is not None and hit[0] == generation else None

    def token_state(self, jti: str, gid: str | None, sub: str | None) -> TokenState:
        """In one query: is the access token revoked (by jti, or through its grant), and when
        `sub` is given, its enabled user (a row of the users table). Runs on every userinfo and
        introspection call, so its statements are built once, with bound parameters, and run on
        a plain connection; and the answer is kept for `cached_token_state`."""
        generation = self.db.changes.generation()  # before the query: a change after it voids the answer
        key = (jti, gid, sub)
        cached = self._cached(key, generation)
        if cached is not None:
            return cached
        statement = _TOKEN_STATE[(gid is not None, sub is not None)]
        with self.db.reads.connect() as conn:
            row = conn.execute(statement, {"jti": jti, "gid": gid, "sub": sub}).first()
        if sub is None:
            state = TokenState(bool(row[0]))
        elif row is None:
            state = TokenState(False, None)
        else:
            state = TokenState(bool(row.revoked), row)
        if generation is not None:
            if len(self._states) >= CACHE_ENTRIES:
                self._states.clear()
            self._states[key] = (generation, state)
        return state


def new_refresh_token(grant: Grant, *, scope: str, ttl: int) -> tuple[str, RefreshToken]:
    """A refresh token of `grant` and its row, for the caller's transaction to add."""
    token = random_token(32)
    return token, RefreshToken(**refresh_token_row(grant, token, scope=scope, ttl=ttl))


def refresh_token_row(grant: Any, token: str, *, scope: str, ttl: int, now: datetime | None = None
                      ) -> dict[str, Any]:
    """The refresh_tokens row of a new `token` of `grant`: it lives `ttl` seconds, never past its grant."""
    now = now or utcnow()
    return {"token_hash": sha256_hex(token), "grant_id": grant.id, "client_id": grant.client_id, "scope": scope,
            "created_at": now, "expires_at": min(now + timedelta(seconds=ttl), aware(grant.expires_at)),
            "used_at": None}


def _token_state_statement(with_grant: bool, with_user: bool) -> Any:
    revoked = exists().where(RevokedToken.jti == bindparam("jti"))
    if with_grant:
        revoked = or_(revoked, ~exists().where(Grant.id == bindparam("gid"), Grant.revoked_at.is_(None)))
    if not with_user:
        return select(revoked.label("revoked"))
    return select(User.__table__, revoked.label("revoked")).where(
        User.sub == bindparam("sub"), User.disabled.is_(False))


_TOKEN_STATE = {(g, u): _token_state_statement(g, u) for g in (False, True) for u in (False, True)}

