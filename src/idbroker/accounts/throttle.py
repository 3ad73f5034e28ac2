"""Throttling: rate limits and failed sign-ins, counted in the `throttles` table so that every
worker and every process sees the same counts.

Rate limits - ``provider.limiter`` (a RateLimiter)
--------------------------------------------------
::

    retry_after = provider.limiter.hit(key, limit, window)
    if retry_after is not None:
        ...answer 429 with Retry-After: retry_after, and do not do the thing...

`hit` counts one event under `key` and returns None while there were at most `limit` events in
the current window, else the whole seconds (>= 1) until the window ends. The window is fixed: it
opens at the key's first event and lasts `window` seconds (at most a day); the next event after it
opens a new one. A refused event is not counted, so a client that keeps trying is not locked out
for longer. `peek(key, limit, window)` answers the same without counting, `clear(key)` forgets the
key (e.g. after a success). Counting is atomic: concurrent hits from several workers never let
more than `limit` events through.

Keys are text of at most 255 characters, a purpose and a subject: ``f"mfa-code:{user.id}"``,
``f"sms-send:{user.id}"``, ``f"sms-send-ip:{ip}"``. Pass addresses, phone numbers and other
personal or long values through `subject()` (a SHA-256 prefix). The limits in use are in LIMITS;
a limit for a code that is typed should stop guessing long before the code space is covered
(a 6-digit code: at most a few tries per code and a few dozen per day).

`hit_all(rules)` passes several limits at once (each a `Rule`): every one counts the event, or,
when one of them is past its limit, none does and that rule is returned with its wait.

Mails and texts - ``send_rules``
--------------------------------
Every endpoint that sends a mail or a text message passes `send_rules(purpose, to, ...)` with
`hit_all` before sending: LIMITS ``<purpose>-send`` per target (the address or number written to)
and per account, ``<purpose>-send-ip`` per client address (purposes without one limit requests
per address themselves, e.g. "signup-ip", "reset-ask-ip"), and at most one message to the target
every `resend_interval` seconds. Where the answer could tell whether an address has an account
(sign-up, forgotten password, change of address), the rules are passed the same way whether it
has one or not, and a refused message is simply not sent: the page is the same.

Failed sign-ins - ``provider.login_throttle`` (a LoginThrottle)
--------------------------------------------------------------
Counted per (account, client address) pair, per address across accounts, and per account across
addresses - for accounts that do not exist too, so a lock says nothing about who has an account:

* the pair: after `lockout_threshold` failures the pair is locked; each further failure doubles
  the lock, from BASE_DELAY seconds up to `lockout_max_seconds`. Only that address is locked out
  of that account: the owner signing in from elsewhere is not affected, and an attacker at one
  address cannot lock the owner out. A success resets the pair.
* the address: past `ip_failure_threshold` failures (over any accounts) the address is slowed the
  same way, for every account (password spraying from one address).
* the account: when ACCOUNT_ADDRESSES distinct addresses have failed on it, the account is slowed
  for every address, doubling with each new failing address (a distributed attack - the one case
  where the owner waits too; a password reset still works). An address where the owner then
  signs in successfully stops counting.

An attempt is counted before the password is checked (`attempt`), and taken back on success
(`succeeded`): a burst of parallel requests cannot get more guesses than the threshold. While a
key is locked the password is not checked at all. Counts are forgotten FORGET_AFTER seconds after
the key's last failure; `purge` (run now and then by `attempt`) deletes such rows.

Client addresses
----------------
The address is the client's as web/proxies.py `client_ip` names it. Behind a reverse proxy or load
balancer the connection's peer is the proxy, so every client would share one address: the operator
lists the proxies in `trusted_proxies`, and only from those peers are ``X-Forwarded-For`` and
``Forwarded`` believed. Trusting the header from any client would let an attacker choose a new
address for every attempt.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.orm import Session

from ..store.db import Database, aware, upsert_insert, utcnow
from ..store.housekeeping import purge_forgotten_throttles
from ..store.models import Throttle

MAX_WINDOW = 86400
# (limit, window seconds) of the rate limits that the broker applies.
LIMITS = {
    "verify-code": (10, 900),         # email-verification codes typed, per address
    "verify-send": (5, 3600),         # verification mails asked for again, per address and per account
    "verify-send-ip": (20, 3600),     # ... per client address
    "signup-ip": (20, 3600),          # sign-up forms accepted, per client address (past it: 429)
    "signup-send": (3, 3600),         # sign-up mails (verification, "already registered"), per address
    "reset-send": (3, 3600),          # password-reset mails, per address and per account (silently skipped)
    "reset-ask-ip": (20, 3600),       # forgot-password requests, per client address (past it: 429)
    "email-change-send": (3, 3600),   # change-of-address mails, per new address and per account (skipped)
    "email-change-send-ip": (10, 3600),
    "phone-send": (3, 3600),          # phone-number confirmation texts, per number and per account
    "phone-send-ip": (10, 3600),
    "mfa-send": (10, 3600),           # second-factor codes by text or mail, per target and per account
    "mfa-send-ip": (30, 3600),
    "lock-mail": (1, 3600),           # "your account was locked" mails, per account
    "device-code-ip": (20, 900),      # RFC 8628 user codes looked up on /device, per client address
    "register-ip": (20, 3600),        # RFC 7591 client registrations, per client address (past it: 429)
}


def subject(value: str) -> str:
    """A short, fixed-length stand-in for a personal or long key part."""
    return hashlib.sha256(value.strip().lower().encode("utf-8", "surrogatepass")).hexdigest()[:32]


def client_address(host: str | None) -> str:
    return (host or "unknown")[:100]


@dataclass(frozen=True)
class Rule:
    """At most `limit` events under `key` per `window` seconds; `per` says what the key counts
    ("target", "account", "ip", "interval")."""

    key: str
    limit: int
    window: int
    per: str = ""


def send_rules(purpose: str, to: str, *, account: int | None = None, ip: str | None = None,
               interval: int = 0, pace: str | None = None) -> list[Rule]:
    """The limits one mail or text of `purpose` to `to` must pass (see "Mails and texts" above).
    `pace` names the purpose whose interval it shares (a sign-up mail and a verification mail
    asked for again wait for each other); interval 0: none."""
    count, window = LIMITS[f"{purpose}-send"]
    target = subject(to)
    rules = [Rule(f"{purpose}-send:{target}", count, window, "target")]
    if account is not None:
        rules.append(Rule(f"{purpose}-send-account:{account}", count, window, "account"))
    if f"{purpose}-send-ip" in LIMITS:
        rules.append(Rule(f"{purpose}-send-ip:{client_address(ip)}", *LIMITS[f"{purpose}-send-ip"], "ip"))
    if interval > 0:
        rules.append(Rule(f"{pace or purpose}-interval:{target}", 1, interval, "interval"))
    return rules


def _seconds_until(when: datetime, now: datetime) -> int:
    return max(1, math.ceil((aware(when) - now).total_seconds()))


def _insert(s: Session) -> Any:
    return upsert_insert(s.get_bind().dialect.name)(Throttle)


def _row(s: Session, key: str) -> Throttle:
    """The key's row, created when missing, locked for this transaction (PostgreSQL: FOR UPDATE;
    SQLite writers hold the database lock anyway)."""
    s.execute(_insert(s).values(key=key, failures=0).on_conflict_do_nothing(index_elements=["key"]))
    return s.scalars(select(Throttle).where(Throttle.key == key).with_for_update()).one()


# The statements of every sign-in, built once and run without the ORM (`attempt`, `succeeded`).
_t = Throttle.__table__
_LOCKS = select(_t.c.locked_until).where(_t.c.key.in_(bindparam("keys", expanding=True)))


@cache
def _first_attempt(dialect: str) -> Any:
    return upsert_insert(dialect)(_t).on_conflict_do_nothing(index_elements=["key"]).returning(_t.c.key)


_TAKE_BACK = delete(_t).where(_t.c.key == bindparam("pair")).returning(_t.c.failures)
_UNCOUNT = (update(_t).where(_t.c.key == bindparam("account"), _t.c.failures > 0)
            .values(failures=_t.c.failures - 1))
_FORGET_IDLE = delete(_t).where(_t.c.key == bindparam("account"), _t.c.failures == 0, _t.c.locked_until.is_(None))


class RateLimiter:
    def __init__(self, db: Database):
        self.db = db

    def hit(self, key: str, limit: int, window: int) -> int | None:
        refused = self.hit_all([Rule(key, limit, window)])
        return refused[1] if refused is not None else None

    def hit_all(self, rules: Sequence[Rule]) -> tuple[Rule, int] | None:
        """One event under every rule, in one transaction: None when all allowed it (each counted
        it), else the first rule past its limit and the seconds until its window ends (none
        counted it). Rules name distinct keys."""
        for rule in rules:
            if len(rule.key) > 255 or rule.limit < 1 or not 0 < rule.window <= MAX_WINDOW:
                raise ValueError("a key of at most 255 characters, a positive limit and a window of at most a day")
        now = utcnow()
        with self.db.session() as s:
            rows = {key: _row(s, key) for key in sorted({rule.key for rule in rules})}  # one locking order
            for rule in rules:
                row = rows[rule.key]
                if row.first_failure_at is None or \
                        aware(row.first_failure_at) + timedelta(seconds=rule.window) <= now:
                    row.failures, row.first_failure_at, row.locked_until = 0, now, None
                if row.failures >= rule.limit:
                    return rule, _seconds_until(aware(row.first_failure_at) + timedelta(seconds=rule.window), now)
            for rule in rules:
                row = rows[rule.key]
                row.failures += 1
                row.last_failure_at = now
                if row.failures >= rule.limit:
                    row.locked_until = aware(row.first_failure_at) + timedelta(seconds=rule.window)
        return None

    def peek(self, key: str, limit: int, window: int) -> int | None:
        now = utcnow()
        with self.db.session(write=False) as s:
            row = s.get(Throttle, key)
        if row is None or row.first_failure_at is None or row.failures < limit:
            return None
        ends = aware(row.first_failure_at) + timedelta(seconds=window)
        return _seconds_until(ends, now) if ends > now else None

    def clear(self, key: str) -> None:
        with self.db.session() as s:
            s.execute(delete(Throttle).where(Throttle.key == key))


@dataclass(frozen=True)
class Attempt:
    """A sign-in attempt as the throttle saw it: refused (`retry_after` > 0, the password must not
    be checked), or counted, ready to be confirmed by `failed` or taken back by `succeeded`."""

    pair: str
    account: str
    address: str
    retry_after: int = 0
    new_address: bool = False   # this attempt added the address to the account's failing ones
    first_lock: bool = False    # if it fails, it locks the account (here or everywhere): tell the owner
    lock_seconds: int = 0       # the lock it sets if it fails


class LoginThrottle:
    BASE_DELAY = 30           # seconds of the first lock
    ACCOUNT_ADDRESSES = 10    # distinct failing addresses before an account slows everywhere
    FORGET_AFTER = 86400      # failures are forgotten this long after a key's last one
    PURGE_ODDS = 200          # one attempt in this many purges forgotten rows

    def __init__(self, db: Database, *, threshold: int = 5, max_seconds: int = 900, ip_threshold: int = 30,
                 account_addresses: int | None = None):
        self.db = db
        self.threshold = threshold
        self.max_seconds = max_seconds
        self.ip_threshold = ip_threshold
        self.account_addresses = account_addresses or self.ACCOUNT_ADDRESSES

    def delay(self, past: int) -> int:
        """The lock after the `past`-th failure beyond a threshold (0: the one that reached it)."""
        return min(self.max_seconds, self.BASE_DELAY * 2 ** min(past, 30))

    @staticmethod
    def keys(email: str, ip: str | None) -> tuple[str, str, str]:
        account, address = subject(email), client_address(ip)
        return f"login:{account}:{address}", f"login-account:{account}", f"login-address:{address}"

    def locked_for(self, email: str, ip: str | None) -> int:
        """Seconds until this address may try this account again (0: now). Reads only."""
        now = utcnow()
        with self.db.reads.connect() as conn:
            locks = [r.locked_until for r in conn.execute(_LOCKS, {"keys": list(self.keys(email, ip))})]
        return max((_seconds_until(until, now) for until in locks if until is not None and aware(until) > now),
                   default=0)

    def _fresh(self, row: Throttle, now: datetime) -> None:
        if row.last_failure_at is not None and aware(row.last_failure_at) + timedelta(seconds=self.FORGET_AFTER) <= now:
            row.failures, row.first_failure_at, row.last_failure_at, row.locked_until = 0, None, None, None

    def attempt(self, email: str, ip: str | None) -> Attempt:
        """Before the password is checked: refused while anything is locked, else counted against
        the (account, address) pair at once, so parallel guesses cannot slip past its lock. The
        account and the address count only real failures (`failed`): sign-ins still in flight
        never lock a busy address (an office behind one NAT)."""
        pair_key, account_key, address_key = self.keys(email, ip)
        wait = self.locked_for(email, ip)  # the cheap answer to an attacker who keeps trying
        if wait:
            return Attempt(pair_key, account_key, address_key, retry_after=wait)
        if secrets.randbelow(self.PURGE_ODDS) == 0:
            self.purge()
        now = utcnow()
        with self.db.session() as s:
            # Usually the pair has no row (a success deletes it): one statement creates it as
            # this first attempt left it. Else the row, locked, is counted on below.
            lock = self.delay(1 - self.threshold) if 1 >= self.threshold else 0
            first_lock = self.threshold == 1
            conn = s.connection()
            created = conn.execute(_first_attempt(conn.dialect.name), {
                "key": pair_key, "failures": 1, "first_failure_at": now, "last_failure_at": now,
                "locked_until": now + timedelta(seconds=lock) if lock else None}).first()
            if created is not None:
                return Attempt(pair_key, account_key, address_key, new_address=True, first_lock=first_lock,
                               lock_seconds=lock)
            pair = s.scalars(select(Throttle).where(Throttle.key == pair_key).with_for_update()).one()
            self._fresh(pair, now)
            if pair.locked_until and aware(pair.locked_until) > now:  # locked meanwhile by a concurrent attempt
                return Attempt(pair_key, account_key, address_key,
                               retry_after=_seconds_until(pair.locked_until, now))
            new_address = pair.first_failure_at is None
            pair.last_failure_at = now
            pair.first_failure_at = pair.first_failure_at or now
            pair.failures += 1
            lock = 0
            if pair.failures >= self.threshold:
                lock = self.delay(pair.failures - self.threshold)
                pair.locked_until = now + timedelta(seconds=lock)
            first_lock = pair.failures == self.threshold
        return Attempt(pair_key, account_key, address_key, new_address=new_address, first_lock=first_lock,
                       lock_seconds=lock)

    def failed(self, attempt: Attempt) -> Attempt:
        """The password was wrong: the address, and the account when this address is new to its
        failures, count it; returns the attempt with the locks it set."""
        now = utcnow()
        first_lock, lock = attempt.first_lock, attempt.lock_seconds
        with self.db.session() as s:
            rows = {key: _row(s, key) for key in sorted((attempt.account, attempt.address))}
            for key, threshold, counts in ((attempt.account, self.account_addresses, attempt.new_address),
                                           (attempt.address, self.ip_threshold, True)):
                row = rows[key]
                self._fresh(row, now)
                row.last_failure_at = now
                row.first_failure_at = row.first_failure_at or now
                if not counts:
                    continue
                row.failures += 1
                if row.failures >= threshold:
                    seconds = self.delay(row.failures - threshold)
                    row.locked_until = now + timedelta(seconds=seconds)
                    lock = max(lock, seconds)
                    first_lock = first_lock or (key == attempt.account and row.failures == threshold)
        return dataclasses.replace(attempt, first_lock=first_lock, lock_seconds=lock)

    def succeeded(self, attempt: Attempt, session: Session | None = None) -> None:
        """The password was right: the pair starts afresh, and the address no longer counts
        against the account. With `session`, in the caller's transaction (the sign-in's)."""
        if attempt.retry_after:
            return
        with self.db.using(session) as s:
            conn = s.connection()
            # Rows are locked in the order pair, account, as `attempt` and `failed` do.
            failures = conn.execute(_TAKE_BACK, {"pair": attempt.pair}).scalar()
            if failures is not None and failures > 1:  # earlier failures from here counted on the account
                conn.execute(_UNCOUNT, {"account": attempt.account})
            conn.execute(_FORGET_IDLE, {"account": attempt.account})

    def purge(self) -> int:
        """Deletes the rows whose failures are forgotten and that lock nothing (rate-limit rows
        too: their windows are at most a day): the housekeeping rule, run now."""
        return purge_forgotten_throttles(self.db)

