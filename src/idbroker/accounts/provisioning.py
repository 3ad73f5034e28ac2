"""SCIM 2.0 provisioning (RFC 7643 resources, RFC 7644 protocol) on the user store: what a
provisioning tool (Entra ID, Okta) pushes becomes users and groups here. The HTTP side is
endpoints/scim.py; this module holds the mapping, the filter language and PATCH.

Mapping (RFC 7643 §4.1 User): ``id`` is the user's ``sub``; ``userName`` is the email address (a
userName that is not an address is kept as given and the primary email becomes the address);
``name.givenName|familyName|middleName``, ``nickName``, ``locale``, ``timezone`` (zoneinfo),
``phoneNumbers[0]``, ``active`` (= not disabled) and ``externalId`` (``scim_external_id``, unique)
are columns; ``displayName``, a non-address ``userName`` and the enterprise extension are kept in
``custom_attributes["scim"]``. ``groups`` is read-only (RFC 7643 §4.1.2): it follows Group
membership.

Groups (RFC 7643 §4.2) are rows of ``groups``; a group's members are the users whose
``User.groups`` (the ``groups`` claim) holds its display name, so membership has one source and
every change to a group rewrites those lists in the same transaction as the group.

PATCH (RFC 7644 §3.5.2) is applied to the resource's SCIM representation, and the result is then
stored as a PUT would store it: one code path validates both. The tolerated shapes include
Entra ID's (capitalised ``Replace``, ``"active": "False"`` as a string, ``emails[type eq
"work"].value``, members removed by ``value`` list) and Okta's (``replace`` without a path and a
value object, ``members[value eq "id"]``).

Filters (RFC 7644 §3.4.2.2): attribute paths with eq ne co sw ew pr gt ge lt le, and, or, not
and parentheses, evaluated on the representation (case-insensitive except ``id`` and
``externalId``, RFC 7643 §2.2 caseExact). Users are read in id-ordered batches.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..security import random_token
from ..store.db import Database, aware, utcnow
from ..store.models import ScimGroup, User
from .users import EMAIL_RE, normalise_email

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE_SCHEMA = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
LIST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
MAX_RESULTS = 200  # ServiceProviderConfig filter.maxResults
_BATCH = 500
_CASE_EXACT = {"id", "externalid", "value"}  # RFC 7643: id, externalId, members.value are caseExact


class ScimError(Exception):
    """RFC 7644 §3.12: an error answer with its status and scimType."""

    def __init__(self, status: int, detail: str, scim_type: str | None = None):
        super().__init__(detail)
        self.status, self.detail, self.scim_type = status, detail, scim_type

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"schemas": [ERROR_SCHEMA], "status": str(self.status), "detail": self.detail}
        if self.scim_type:
            body["scimType"] = self.scim_type
        return body


def invalid(detail: str, scim_type: str = "invalidValue") -> ScimError:
    return ScimError(400, detail, scim_type)


class SignsOut(Protocol):
    """accounts/lifecycle.py AccountService, as far as used here."""

    def sign_out_others(self, user_id: int, sub: str, keep_sid: str | None, *, keep_apps: bool = False
                        ) -> list[Any]: ...

    def delete_account(self, user: User) -> list[Any]: ...


# -- filters (RFC 7644 §3.4.2.2) ------------------------------------------------------------------
_TOKEN = re.compile(r'\s*(?:(\()|(\))|("(?:[^"\\]|\\.)*")|([^\s()"\[\]]+(?:\[[^\]]*\][^\s()"]*)?))')
_COMPARE = {"eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"}
Predicate = Callable[[dict[str, Any]], bool]


def _tokens(text: str) -> list[str]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise invalid(f"the filter cannot be read near {text[pos:pos + 20]!r}", "invalidFilter")
        out.append(next(g for g in m.groups() if g is not None))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out


def parse_filter(text: str) -> Predicate:
    if len(text) > 2000:
        raise invalid("the filter is too long", "invalidFilter")
    tokens = _tokens(text)
    if sum(t.lower() in ("(", "not") for t in tokens) > 32:  # bounds the recursion below
        raise invalid("the filter nests too deeply", "invalidFilter")
    pos = 0

    def peek() -> str | None:
        return tokens[pos].lower() if pos < len(tokens) else None

    def take() -> str:
        nonlocal pos
        if pos >= len(tokens):
            raise invalid("the filter ends too early", "invalidFilter")
        pos += 1
        return tokens[pos - 1]

    def or_expr() -> Predicate:
        left = and_expr()
        while peek() == "or":
            take()
            right = and_expr()
            left = (lambda a, b: lambda r: a(r) or b(r))(left, right)
        return left

    def and_expr() -> Predicate:
        left = unary()
        while peek() == "and":
            take()
            right = unary()
            left = (lambda a, b: lambda r: a(r) and b(r))(left, right)
        return left

    def unary() -> Predicate:
        if peek() == "not":
            take()
            inner = unary()
            return lambda r: not inner(r)
        if peek() == "(":
            take()
            inner = or_expr()
            if take() != ")":
                raise invalid("a parenthesis is not closed", "invalidFilter")
            return inner
        return comparison()

    def comparison() -> Predicate:
        path = take()
        if path in ("(", ")") or path.startswith('"'):
            raise invalid("an attribute name is expected", "invalidFilter")
        op = take().lower()
        if op == "pr":
            return lambda r: any(v not in (None, "", [], {}) for v in _values(r, path))
        if op not in _COMPARE:
            raise invalid(f"unknown operator {op!r}", "invalidFilter")
        raw = take()
        value = _literal(raw)
        exact = path.rsplit(".", 1)[-1].split(":")[-1].lower() in _CASE_EXACT
        return lambda r: any(_compare(v, op, value, exact) for v in _values(r, path))

    predicate = or_expr()
    if pos != len(tokens):
        raise invalid(f"unexpected {tokens[pos]!r} in the filter", "invalidFilter")
    return predicate


def _literal(raw: str) -> Any:
    if raw.startswith('"'):
        try:
            return json.loads(raw)
        except ValueError:
            raise invalid("a string in the filter is not valid", "invalidFilter") from None
    low = raw.lower()
    if low in ("true", "false"):
        return low == "true"
    if low == "null":
        return None
    try:
        return float(raw) if "." in raw else int(raw)
    except ValueError:
        raise invalid(f"{raw!r} is not a value (strings are quoted)", "invalidFilter") from None


def _compare(have: Any, op: str, want: Any, exact: bool) -> bool:
    if isinstance(have, dict):  # a multi-valued attribute compared without sub-attribute: its value
        have = have.get("value")
    if isinstance(have, str) and isinstance(want, str):
        if not exact:
            have, want = have.lower(), want.lower()
        if op == "co":
            return want in have
        if op == "sw":
            return have.startswith(want)
        if op == "ew":
            return have.endswith(want)
    elif op in ("co", "sw", "ew"):
        return False
    if op == "eq":
        return have == want
    if op == "ne":
        return have != want
    if have is None or want is None or type(have) is not type(want) and not (
            isinstance(have, int | float) and isinstance(want, int | float)):
        return False
    return {"gt": have > want, "ge": have >= want, "lt": have < want, "le": have <= want}[op]


def _key(obj: dict[str, Any], name: str) -> str | None:
    low = name.lower()
    return next((k for k in obj if k.lower() == low), None)


def _strip_schema(path: str) -> str:
    for schema in (USER_SCHEMA, GROUP_SCHEMA):
        if path.lower().startswith(schema.lower() + ":"):
            return path[len(schema) + 1:]
    return path


def _values(resource: dict[str, Any], path: str) -> list[Any]:
    """Every value at `path` (sub-attributes of multi-valued attributes flattened)."""
    path = _strip_schema(path)
    current: list[Any] = [resource]
    if path.lower().startswith(ENTERPRISE_SCHEMA.lower() + ":"):
        current = [resource.get(ENTERPRISE_SCHEMA) or {}]
        path = path[len(ENTERPRISE_SCHEMA) + 1:]
    for part in path.split("."):
        nxt: list[Any] = []
        for item in current:
            if isinstance(item, dict) and (k := _key(item, part)) is not None:
                value = item[k]
                nxt.extend(value if isinstance(value, list) else [value])
        current = nxt
    return current


# -- the representation of a user ----------------------------------------------------------------
def _scim_extra(user: User) -> dict[str, Any]:
    return dict((user.custom_attributes or {}).get("scim") or {})


def _time(moment: datetime) -> str:
    return aware(moment).isoformat().replace("+00:00", "Z")


def version(resource: dict[str, Any]) -> str:
    """A weak ETag (RFC 7644 §3.14) of a representation without its meta."""
    body = {k: v for k, v in resource.items() if k != "meta"}
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:27]
    return f'W/"{digest}"'


def user_resource(user: User, base: str, groups: dict[str, str]) -> dict[str, Any]:
    """`groups`: display name -> group id (only SCIM groups are listed)."""
    extra = _scim_extra(user)
    name = {k: v for k, v in (("givenName", user.given_name), ("familyName", user.family_name),
                              ("middleName", user.middle_name)) if v}
    if user.given_name or user.family_name:
        name["formatted"] = " ".join(p for p in (user.given_name, user.middle_name, user.family_name) if p)
    body: dict[str, Any] = {"schemas": [USER_SCHEMA], "id": user.sub,
                            "userName": extra.get("userName") or user.email, "active": not user.disabled,
                            "emails": [{"value": user.email, "type": "work", "primary": True}]}
    if user.scim_external_id:
        body["externalId"] = user.scim_external_id
    if name:
        body["name"] = name
    display = extra.get("displayName") or name.get("formatted")
    if display:
        body["displayName"] = display
    for key, column in (("nickName", user.nickname), ("locale", user.locale), ("timezone", user.zoneinfo)):
        if column:
            body[key] = column
    if user.phone_number:
        body["phoneNumbers"] = [{"value": user.phone_number, "type": "work", "primary": True}]
    if extra.get("enterprise"):
        body["schemas"].append(ENTERPRISE_SCHEMA)
        body[ENTERPRISE_SCHEMA] = extra["enterprise"]
    member_of = [{"value": groups[g], "display": g, "$ref": f"{base}/Groups/{groups[g]}"}
                 for g in (user.groups or []) if g in groups]
    if member_of:
        body["groups"] = member_of
    body["meta"] = {"resourceType": "User", "created": _time(user.created_at),
                    "lastModified": _time(user.updated_at), "location": f"{base}/Users/{user.sub}"}
    body["meta"]["version"] = version(body)
    return body


def _string(doc: dict[str, Any], name: str, limit: int = 255) -> str | None:
    key = _key(doc, name)
    value = doc.get(key) if key else None
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > limit or "\x00" in value:
        raise invalid(f"{name} must be a string of at most {limit} characters")
    return value


def _boolean(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):  # Entra ID sends "False"
        return value.lower() == "true"
    raise invalid(f"{name} must be true or false")


def _primary(doc: dict[str, Any], name: str) -> str | None:
    key = _key(doc, name)
    items = doc.get(key) if key else None
    if items in (None, []):
        return None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise invalid(f"{name} must be a list of objects")
    chosen = next((i for i in items if i.get("primary") in (True, "true", "True")), items[0])
    value = chosen.get("value")
    if value is not None and not isinstance(value, str):
        raise invalid(f"{name}.value must be a string")
    return value


@dataclass
class UserValues:
    email: str
    disabled: bool
    columns: dict[str, Any]
    extra: dict[str, Any]


def user_values(doc: Any) -> UserValues:
    """What a User resource (POST or PUT body, or a patched representation) sets; ScimError 400."""
    if not isinstance(doc, dict):
        raise invalid("the body must be a JSON object", "invalidSyntax")
    user_name = _string(doc, "userName", 320)
    if not user_name:
        raise invalid("userName is required")
    email = normalise_email(user_name)
    extra: dict[str, Any] = {}
    primary = _primary(doc, "emails")
    if not EMAIL_RE.match(email):
        if not primary or not EMAIL_RE.match(normalise_email(primary)):
            raise invalid("userName or the primary email must be an email address")
        email, extra["userName"] = normalise_email(primary), user_name
    name_key = _key(doc, "name")
    name = doc.get(name_key) if name_key else None
    if name is not None and not isinstance(name, dict):
        raise invalid("name must be an object")
    name = name or {}
    active_key = _key(doc, "active")
    disabled = not _boolean(doc[active_key], "active") if active_key and doc[active_key] is not None else False
    phone = _primary(doc, "phoneNumbers")
    if phone is not None and len(phone) > 32:
        raise invalid("phoneNumbers.value is too long")
    columns = {"given_name": _string(name, "givenName"), "family_name": _string(name, "familyName"),
               "middle_name": _string(name, "middleName"), "nickname": _string(doc, "nickName"),
               "locale": _string(doc, "locale", 35), "zoneinfo": _string(doc, "timezone", 64),
               "phone_number": phone, "scim_external_id": _string(doc, "externalId")}
    if (display := _string(doc, "displayName")) is not None:
        extra["displayName"] = display
    ent_key = _key(doc, ENTERPRISE_SCHEMA)
    if ent_key and doc[ent_key] is not None:
        if not isinstance(doc[ent_key], dict) or len(json.dumps(doc[ent_key])) > 8000:
            raise invalid("the enterprise extension must be an object")
        extra["enterprise"] = doc[ent_key]
    return UserValues(email, disabled, columns, extra)


# -- PATCH (RFC 7644 §3.5.2) ----------------------------------------------------------------------
_PATH = re.compile(r'^(?P<attr>[^\[\].]+(?::[^\[\].]+)*?)(?:\[(?P<filter>[^\]]+)\])?(?:\.(?P<sub>[^\[\].]+))?$')


def apply_patch(resource: dict[str, Any], body: Any) -> dict[str, Any]:
    """The representation after the operations (a new dict); ScimError 400 when one cannot apply."""
    if not isinstance(body, dict) or not isinstance(body.get("Operations"), list) or not body["Operations"]:
        raise invalid("a PatchOp with a list of Operations is expected", "invalidSyntax")
    doc = json.loads(json.dumps({k: v for k, v in resource.items() if k != "meta"}))
    for operation in body["Operations"]:
        if not isinstance(operation, dict):
            raise invalid("each operation must be an object", "invalidSyntax")
        op = str(operation.get("op", "")).lower()
        if op not in ("add", "replace", "remove"):
            raise invalid("op must be add, replace or remove", "invalidSyntax")
        path, value = operation.get("path"), copy.deepcopy(operation.get("value"))  # no object shared by two ops
        if path is None or path == "":
            if op == "remove":
                raise invalid("remove needs a path", "noTarget")
            if not isinstance(value, dict):
                raise invalid("an operation without a path needs an object value", "invalidSyntax")
            for key, item in value.items():
                if key.lower().startswith(ENTERPRISE_SCHEMA.lower()) and isinstance(item, dict) and \
                        key.lower() == ENTERPRISE_SCHEMA.lower():
                    for sub, v in item.items():
                        _apply(doc, op, f"{ENTERPRISE_SCHEMA}:{sub}", v)
                else:
                    _apply(doc, op, key, item)
        elif not isinstance(path, str) or len(path) > 500:
            raise invalid("path must be a string", "invalidPath")
        else:
            _apply(doc, op, path, value)
    return doc


def _container(doc: dict[str, Any], path: str) -> tuple[dict[str, Any], str]:
    path = _strip_schema(path)
    if path.lower().startswith(ENTERPRISE_SCHEMA.lower() + ":"):
        key = _key(doc, ENTERPRISE_SCHEMA) or ENTERPRISE_SCHEMA
        if not isinstance(doc.get(key), dict):
            doc[key] = {}
        return doc[key], path[len(ENTERPRISE_SCHEMA) + 1:]
    return doc, path


def _apply(doc: dict[str, Any], op: str, path: str, value: Any) -> None:
    target, path = _container(doc, path)
    if "[" not in path and path.count(".") == 1:  # name.givenName
        attr, sub = path.split(".")
        key = _key(target, attr) or attr
        if op == "remove":
            if isinstance(target.get(key), dict):
                target[key].pop(_key(target[key], sub) or sub, None)
            return
        if not isinstance(target.get(key), dict):
            target[key] = {}
        target[key][_key(target[key], sub) or sub] = value
        return
    m = _PATH.match(path)
    if not m:
        raise invalid(f"the path {path!r} cannot be read", "invalidPath")
    attr, flt, sub = m["attr"], m["filter"], m["sub"]
    key = _key(target, attr) or attr
    if flt is None and sub is None:
        if op == "remove":
            if isinstance(value, list) and isinstance(target.get(key), list):  # Entra ID: members by value
                gone = {str(v.get("value")) for v in value if isinstance(v, dict)}
                target[key] = [i for i in target[key] if not (isinstance(i, dict) and str(i.get("value")) in gone)]
            else:
                target.pop(key, None)
        elif op == "add" and isinstance(target.get(key), list):
            items = value if isinstance(value, list) else [value]
            target[key] = target[key] + [i for i in items if i not in target[key]]
        else:
            target[key] = value
        return
    if flt is None:
        raise invalid(f"the path {path!r} cannot be read", "invalidPath")
    predicate = parse_filter(flt)
    items = target.get(key)
    if items is None:
        items = target[key] = []
    if not isinstance(items, list):
        raise invalid(f"{attr} is not multi-valued", "invalidPath")
    matched = [i for i in items if isinstance(i, dict) and predicate(i)]
    if op == "remove":
        if sub:
            for item in matched:
                item.pop(_key(item, sub) or sub, None)
        else:
            target[key] = [i for i in items if not any(i is m for m in matched)]
        return
    if not matched:  # replace emails[type eq "work"].value on a user without one: add it
        eq = re.fullmatch(r'\s*(\w+)\s+eq\s+("(?:[^"\\]|\\.)*")\s*', flt, re.IGNORECASE)
        if not eq:
            raise invalid(f"nothing matches {flt!r}", "noTarget")
        item = {eq[1]: json.loads(eq[2])}
        items.append(item)
        matched = [item]
    for item in matched:
        if sub:
            item[_key(item, sub) or sub] = value
        elif isinstance(value, dict):
            item.update(value)
        else:
            raise invalid("the value must be an object", "invalidValue")


# -- groups ---------------------------------------------------------------------------------------
def group_resource(group: ScimGroup, base: str, members: list[User]) -> dict[str, Any]:
    body: dict[str, Any] = {"schemas": [GROUP_SCHEMA], "id": group.id, "displayName": group.display_name}
    if group.external_id:
        body["externalId"] = group.external_id
    body["members"] = [{"value": u.sub, "display": u.email, "type": "User", "$ref": f"{base}/Users/{u.sub}"}
                       for u in sorted(members, key=lambda u: u.id)]
    body["meta"] = {"resourceType": "Group", "created": _time(group.created_at),
                    "lastModified": _time(group.updated_at), "location": f"{base}/Groups/{group.id}"}
    body["meta"]["version"] = version(body)
    return body


@dataclass
class GroupValues:
    display_name: str
    external_id: str | None
    members: list[str] | None  # subs; None: not given


def group_values(doc: Any) -> GroupValues:
    if not isinstance(doc, dict):
        raise invalid("the body must be a JSON object", "invalidSyntax")
    display = _string(doc, "displayName")
    if not display:
        raise invalid("displayName is required")
    key = _key(doc, "members")
    members = doc.get(key) if key else None
    subs: list[str] | None = None
    if members is not None:
        if not isinstance(members, list) or not all(isinstance(m, dict) and isinstance(m.get("value"), str)
                                                    for m in members):
            raise invalid("members must be a list of objects with a value")
        subs = list(dict.fromkeys(m["value"] for m in members))
    return GroupValues(display, _string(doc, "externalId"), subs)


_BY_EXTERNAL_ID = re.compile(r'^\s*externalId\s+eq\s+("(?:[^"\\]|\\.)*")\s*$', re.IGNORECASE)
_BY_ADDRESS = re.compile(r'^\s*(?:userName|emails(?:\.value)?)\s+eq\s+("(?:[^"\\]|\\.)*")\s*$', re.IGNORECASE)


# -- the service ---------------------------------------------------------------------------------
@dataclass
class Changed:
    resource: dict[str, Any]
    deliveries: list[Any]  # back-channel logouts to send
    deactivated: bool


@dataclass
class Listed:
    total: int
    resources: list[dict[str, Any]]


def _unique(method: Callable[..., Any]) -> Callable[..., Any]:
    """A write that lost a race to a concurrent one of the same userName, externalId or
    displayName (the unique indexes refused it): 409, nothing written."""
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except IntegrityError:
            raise ScimError(409, "the value is already in use", "uniqueness") from None
    return wrapped


class Provisioning:
    """SCIM reads and writes on the store; each write is one transaction. Methods that disable or
    delete users return the back-channel deliveries to send (signout.notify)."""

    def __init__(self, db: Database, accounts: SignsOut):
        self.db = db
        self.accounts = accounts

    # users
    def _group_ids(self, s: Session) -> dict[str, str]:
        return {g.display_name: g.id for g in s.scalars(select(ScimGroup))}

    def _users(self, s: Session) -> Iterator[User]:
        after = 0
        while True:
            batch = list(s.scalars(select(User).where(User.id > after).order_by(User.id).limit(_BATCH)))
            yield from batch
            if len(batch) < _BATCH:
                return
            after = batch[-1].id

    def get_user(self, sub: str, base: str) -> tuple[User, dict[str, Any]]:
        with self.db.session(write=False) as s:
            user = s.scalar(select(User).where(User.sub == sub)) if len(sub) <= 64 else None
            if user is None:
                raise ScimError(404, "no such user")
            return user, user_resource(user, base, self._group_ids(s))

    def list_users(self, base: str, flt: str | None, start: int, count: int) -> Listed:
        predicate = parse_filter(flt) if flt else None
        with self.db.session(write=False) as s:
            groups = self._group_ids(s)
            # The question provisioning tools ask before every create, answered by the index: a
            # userName (or email) that is an address is the email column (see user_values).
            m = _BY_ADDRESS.match(flt or "")
            address = normalise_email(json.loads(m[1])) if m else None
            by_external = _BY_EXTERNAL_ID.match(flt or "")
            rows: Iterator[User] | list[User]
            if address and EMAIL_RE.match(address):
                rows = list(s.scalars(select(User).where(User.email == address)))
            elif by_external:
                rows = list(s.scalars(select(User).where(User.scim_external_id == json.loads(by_external[1]))))
            else:
                rows = self._users(s)
            resources = (user_resource(u, base, groups) for u in rows)
            found = [r for r in resources if predicate is None or predicate(r)]
        return Listed(len(found), found[start - 1:start - 1 + count])

    @_unique
    def create_user(self, doc: Any, base: str) -> dict[str, Any]:
        values = user_values(doc)
        now = utcnow()
        with self.db.session() as s:
            if s.scalar(select(User.id).where(User.email == values.email)) is not None:
                raise ScimError(409, f"a user with userName {values.email} exists", "uniqueness")
            self._check_external_id(s, values.columns["scim_external_id"], None)
            user = User(sub=random_token(16), email=values.email, email_verified=True, password_hash=None,
                        groups=[], custom_attributes={"scim": values.extra} if values.extra else None,
                        disabled=values.disabled, created_at=now, updated_at=now, **values.columns)
            s.add(user)
            s.flush()
            return user_resource(user, base, self._group_ids(s))

    def _check_external_id(self, s: Session, external_id: str | None, sub: str | None) -> None:
        if not external_id:
            return
        holder = s.scalar(select(User.sub).where(User.scim_external_id == external_id))
        if holder is not None and holder != sub:
            raise ScimError(409, "another user has this externalId", "uniqueness")

    @_unique
    def replace_user(self, sub: str, doc: Any, base: str, if_match: str | None) -> Changed:
        """PUT, and PATCH through apply_patch. A user deactivated here is signed out everywhere
        (sessions ended, grants revoked); the deliveries are for signout.notify."""
        values = user_values(doc)
        with self.db.session() as s:
            user = s.scalar(select(User).where(User.sub == sub)) if len(sub) <= 64 else None
            if user is None:
                raise ScimError(404, "no such user")
            groups = self._group_ids(s)
            _check_version(user_resource(user, base, groups), if_match)
            if values.email != user.email and s.scalar(select(User.id).where(User.email == values.email)):
                raise ScimError(409, f"a user with userName {values.email} exists", "uniqueness")
            self._check_external_id(s, values.columns["scim_external_id"], sub)
            was_active = not user.disabled
            if values.email != user.email:
                user.email, user.email_verified = values.email, True
            for key, value in values.columns.items():
                if key == "phone_number" and value != user.phone_number:
                    user.phone_number_verified = False
                setattr(user, key, value)
            attrs = dict(user.custom_attributes or {})
            if values.extra:
                attrs["scim"] = values.extra
            else:
                attrs.pop("scim", None)
            user.custom_attributes = attrs or None
            user.disabled = values.disabled
            user.updated_at = utcnow()
            s.flush()
            resource = user_resource(user, base, groups)
        if was_active and user.disabled:
            return Changed(resource, self.accounts.sign_out_others(user.id, user.sub, None), True)
        return Changed(resource, [], False)

    def patch_user(self, sub: str, body: Any, base: str, if_match: str | None) -> Changed:
        _, current = self.get_user(sub, base)
        _check_version(current, if_match)
        return self.replace_user(sub, apply_patch(current, body), base, current["meta"]["version"])

    def delete_user(self, sub: str, base: str, if_match: str | None) -> list[Any]:
        user, current = self.get_user(sub, base)
        _check_version(current, if_match)
        return self.accounts.delete_account(user)

    # groups
    def _members(self, s: Session, names: set[str]) -> dict[str, list[User]]:
        found: dict[str, list[User]] = {n: [] for n in names}
        for user in self._users(s):
            for name in user.groups or []:
                if name in found:
                    found[name].append(user)
        return found

    def _group(self, s: Session, group_id: str) -> ScimGroup:
        group = s.get(ScimGroup, group_id) if len(group_id) <= 64 else None
        if group is None:
            raise ScimError(404, "no such group")
        return group

    def get_group(self, group_id: str, base: str) -> dict[str, Any]:
        with self.db.session(write=False) as s:
            group = self._group(s, group_id)
            return group_resource(group, base, self._members(s, {group.display_name})[group.display_name])

    def list_groups(self, base: str, flt: str | None, start: int, count: int) -> Listed:
        predicate = parse_filter(flt) if flt else None
        with self.db.session(write=False) as s:
            groups = list(s.scalars(select(ScimGroup).order_by(ScimGroup.created_at, ScimGroup.id)))
            members = self._members(s, {g.display_name for g in groups})
            found = [r for r in (group_resource(g, base, members[g.display_name]) for g in groups)
                     if predicate is None or predicate(r)]
        return Listed(len(found), found[start - 1:start - 1 + count])

    @_unique
    def create_group(self, doc: Any, base: str) -> dict[str, Any]:
        values = group_values(doc)
        now = utcnow()
        with self.db.session() as s:
            if s.scalar(select(ScimGroup.id).where(ScimGroup.display_name == values.display_name)):
                raise ScimError(409, f"a group named {values.display_name} exists", "uniqueness")
            group = ScimGroup(id=str(uuid.uuid4()), display_name=values.display_name,
                              external_id=values.external_id, created_at=now, updated_at=now)
            s.add(group)
            self._set_members(s, group.display_name, None, values.members)
            s.flush()
            return group_resource(group, base, self._members(s, {group.display_name})[group.display_name])

    def _set_members(self, s: Session, name: str, old_name: str | None, subs: list[str] | None) -> None:
        """Rewrites User.groups: `old_name` renamed to `name`; with `subs`, exactly those users hold it."""
        wanted = set(subs) if subs is not None else None
        if wanted:
            known = set(s.scalars(select(User.sub).where(User.sub.in_(wanted))))
            if unknown := wanted - known:
                raise invalid(f"no user with id {sorted(unknown)[0]}")
        for user in self._users(s):
            held = list(user.groups or [])
            had = (old_name or name) in held
            should = user.sub in wanted if wanted is not None else had
            new = [g for g in held if g not in (old_name, name)]
            if should:
                new.append(name)
            if new != held:
                user.groups = new
                user.updated_at = utcnow()

    @_unique
    def replace_group(self, group_id: str, doc: Any, base: str, if_match: str | None) -> dict[str, Any]:
        values = group_values(doc)
        with self.db.session() as s:
            group = self._group(s, group_id)
            old = group.display_name
            _check_version(group_resource(group, base, self._members(s, {old})[old]), if_match)
            if values.display_name != old and s.scalar(
                    select(ScimGroup.id).where(ScimGroup.display_name == values.display_name)):
                raise ScimError(409, f"a group named {values.display_name} exists", "uniqueness")
            self._set_members(s, values.display_name, old, values.members if values.members is not None else [])
            group.display_name, group.external_id = values.display_name, values.external_id
            group.updated_at = utcnow()
            s.flush()
            return group_resource(group, base, self._members(s, {group.display_name})[group.display_name])

    def patch_group(self, group_id: str, body: Any, base: str, if_match: str | None) -> dict[str, Any]:
        current = self.get_group(group_id, base)
        _check_version(current, if_match)
        return self.replace_group(group_id, apply_patch(current, body), base, current["meta"]["version"])

    def delete_group(self, group_id: str, base: str, if_match: str | None) -> None:
        with self.db.session() as s:
            group = self._group(s, group_id)
            name = group.display_name
            _check_version(group_resource(group, base, self._members(s, {name})[name]), if_match)
            for user in self._users(s):
                if name in (user.groups or []):
                    user.groups = [g for g in user.groups if g != name]
                    user.updated_at = utcnow()
            s.delete(group)


def _check_version(resource: dict[str, Any], if_match: str | None) -> None:
    """RFC 7644 §3.14 / RFC 7232 §3.1: If-Match with none of the current version: 412."""
    if if_match is None:
        return
    tags = [t.strip() for t in if_match.split(",")]
    current = resource["meta"]["version"]
    if "*" in tags or any(t.removeprefix("W/") == current.removeprefix("W/") for t in tags):
        return
    raise ScimError(412, "the resource has changed (If-Match)")
