"""Self-service sign-up: /signup.

The form asks for the address and a password, an optional phone number, and the profile fields
the operator lists in `signup_fields` (standard claims and custom attributes). Everything is
checked before anything is written.

Nothing the browser gets tells whether the address already had an account: both answers are the
"check your mail" page, with the same status, the session cookie cleared (whoever was signed in
here is not the person signing up) and a pending sign-up cookie of the same shape set
(pending_signup.py); they take about as long (the password is hashed either way; the mail goes
out after the response). A new account is created unverified and mailed a link and a 6-digit
code; an existing one is mailed that it exists. Nobody is signed in until the address is proven
(verification.py); the authorization request waits on the verification page.

Limits: sign-up forms per client address ("signup-ip": past it 429, before any address is looked
at), and mails per address (send_rules "signup", at most one per `resend_interval`, shared with
the verification page's "send a new code"): past those, the same page and no mail.
"""

from __future__ import annotations

import logging
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from ..accounts.lifecycle import PHONE_INVALID
from ..accounts.one_time import VERIFY_EMAIL
from ..accounts.users import UserError
from ..flow.journey import EXPIRED
from ..phone import normalise_phone
from ..text import N_, SUPPORTED
from .hosted import FORM_EXPIRED
from .lifecycle_pages import (
    MAX_FIELD,
    LifecyclePages,
    Problem,
    check_email,
    text_field,
)
from .pending_signup import Pending, binding_of, unbound
from .protection import TOO_MANY, client_ip, limit, wait_words

if TYPE_CHECKING:
    from ..oauth2.authorize_checks import AuthorizationRequest
    from ..store.models import Interaction, User

log = logging.getLogger("idbroker.signup")

SIGNUP_DISABLED = N_("You cannot create an account here. Ask the people who run this application for access.")
PASSWORD_HINT = N_("Use at least %(min)d characters.")
REQUIRED = {
    "given_name": N_("Enter your given name."),
    "family_name": N_("Enter your family name."),
    "phone_number": N_("Enter your phone number."),
}
TOO_LONG = N_("Use at most %(max)d characters.")
CONTROL_CHARACTERS = N_("Remove the control characters from this field.")
LOCALE_INVALID = N_("Choose a language from the list.")
CHOICE_INVALID = N_("This value is not valid. Tick the box or leave it empty.")

TEXT_MAX = 255
_TRUE = ("on", "true", "1", "yes")

LABELS = {
    "email": N_("Email"),
    "password": N_("Password"),
    "given_name": N_("Given name"),
    "family_name": N_("Family name"),
    "locale": N_("Language"),
    "phone_number": N_("Phone number"),
}


@dataclass
class SignupField:
    name: str
    label: str                  # a message id, or the operator's attribute name for custom ones
    kind: str                   # email, password, tel, text, select, checkbox
    autocomplete: str | None
    required: bool
    custom: bool = False
    hint: Problem | None = None
    value: Any = ""
    error: Problem | None = None

    @property
    def dom_id(self) -> str:
        return "f-" + self.name


def humanise(name: str) -> str:
    return name.replace("_", " ").strip().capitalize() or name


def check_text(value: str, limit: int = TEXT_MAX) -> Problem | None:
    if len(value) > limit:
        return Problem(TOO_LONG, {"max": limit})
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in value):
        return Problem(CONTROL_CHARACTERS)
    return None


class SignupViews(LifecyclePages):
    # -- the form's fields ---------------------------------------------------------------------
    def custom_kinds(self) -> dict[str, str]:
        return dict(attr.partition(":")[::2] for attr in self.settings.custom_attributes)  # type: ignore[misc]

    def fields(self) -> list[SignupField]:
        s = self.settings
        out = [
            SignupField("email", LABELS["email"], "email", "username", True),
            SignupField("password", LABELS["password"], "password", "new-password", True,
                        hint=Problem(PASSWORD_HINT, {"min": s.password_min_length})),
        ]
        custom = self.custom_kinds()
        for name in s.signup_fields:
            if name == "given_name":
                out.append(SignupField(name, LABELS[name], "text", "given-name", True))
            elif name == "family_name":
                out.append(SignupField(name, LABELS[name], "text", "family-name", True))
            elif name == "locale":
                out.append(SignupField(name, LABELS[name], "select", "language", False))
            elif name == "phone_number":
                out.append(SignupField(name, LABELS[name], "tel", "tel", True))
            elif name in custom:
                kind = "checkbox" if custom[name] == "bool" else "text"
                out.append(SignupField(name, humanise(name), kind, None, False, custom=True))
        if "phone_number" not in s.signup_fields:
            out.append(SignupField("phone_number", LABELS["phone_number"], "tel", "tel", False))
        return out

    def check(self, form: FormData, fields: list[SignupField], lang: str) -> tuple[dict[str, Any], bool]:
        """Fills each field's value (for re-display) and error; returns (user values, ok)."""
        values: dict[str, Any] = {"custom_attributes": {}}
        ok = True
        for f in fields:
            raw = text_field(form, f.name)
            if f.kind != "password":
                raw = raw.strip()
            f.value = raw if len(raw) <= MAX_FIELD else raw[:MAX_FIELD]
            problem: Problem | None = None
            if f.name == "email":
                email, problem = check_email(raw)
                values["email"] = email
            elif f.name == "password":
                f.value = ""  # never sent back
                problem = self.check_password(raw, values.get("email"))
                values["password"] = raw
            elif f.kind == "checkbox":
                if raw and raw.lower() not in _TRUE:
                    problem = Problem(CHOICE_INVALID)
                f.value = bool(raw) and raw.lower() in _TRUE
                values["custom_attributes"][f.name] = f.value
            elif not raw:
                if f.required:
                    problem = Problem(REQUIRED.get(f.name, REQUIRED["given_name"]))
                elif f.name == "locale":
                    values["locale"] = lang
            elif f.name == "locale":
                if raw not in SUPPORTED:
                    problem = Problem(LOCALE_INVALID)
                values["locale"] = raw
            elif f.name == "phone_number":
                phone = normalise_phone(raw)
                problem = None if phone else Problem(PHONE_INVALID)
                values["phone_number"] = phone
            else:
                problem = check_text(raw)
                if f.custom:
                    values["custom_attributes"][f.name] = raw
                else:
                    values[f.name] = raw
            if problem is not None:
                f.error = problem
                ok = False
        values.setdefault("locale", lang)
        if not values["custom_attributes"]:
            values["custom_attributes"] = None
        return values, ok


    # -- pages ---------------------------------------------------------------------------------
    def _form_page(self, request: Request, interaction: Interaction | None, req: AuthorizationRequest | None,
                   fields: list[SignupField], status: int = 200, error: Problem | None = None,
                   headers: dict[str, str] | None = None) -> Response:
        lang = self.language(request, req)
        for f in fields:
            if f.name == "locale" and not f.value:
                f.value = lang
        return self.page(request, "signup/signup.html", status, req=req, headers=headers, fields=fields,
                         error=error, interaction=interaction.id if interaction else "",
                         login_url=self.login_url(interaction))

    def _disabled(self, request: Request, interaction: Interaction | None,
                  req: AuthorizationRequest | None) -> Response:
        return self.page(request, "signup/disabled.html", 403, req=req, message=SIGNUP_DISABLED,
                         login_url=self.login_url(interaction))

    async def signup_form(self, request: Request) -> Response:
        value = request.query_params.get("interaction")
        interaction, req = self.journey.parked(value)
        if value and interaction is None:
            return self.journey.error_page(request, EXPIRED, 400)
        if not self.signup_allowed(req.client if req else None):
            return self._disabled(request, interaction, req)
        return self._form_page(request, interaction, req, self.fields())

    async def signup_submit(self, request: Request) -> Response:
        posted = await self.posted(request)
        if isinstance(posted, Response):
            return posted
        form, interaction, req = posted
        if not self.signup_allowed(req.client if req else None):
            return self._disabled(request, interaction, req)
        fields = self.fields()
        lang = self.language(request, req)
        values, ok = await run_in_threadpool(self.check, form, fields, lang)  # the password check may ask the range API
        if not self.csrf.valid(request, text_field(form, "csrf_token")):
            return self._form_page(request, interaction, req, fields, 400, Problem(FORM_EXPIRED))
        if not ok:
            return self._form_page(request, interaction, req, fields, 400)
        wait = await run_in_threadpool(limit, self.provider, "signup-ip", client_ip(request))
        if wait is not None:
            words = wait_words(self.pages, lang, wait)
            return self._form_page(request, interaction, req, fields, 429, Problem(TOO_MANY, {"wait": words}),
                                   headers={"Retry-After": str(wait)})
        email = values.pop("email")
        password = values.pop("password")
        existing = await run_in_threadpool(self.provider.users.by_email, email)
        user: User | None = None
        if existing is None:
            try:
                user = await run_in_threadpool(self._create, email, password, values)
            except (UserError, IntegrityError):
                # Taken meanwhile (two sign-ups at once): answered like any existing address.
                existing = await run_in_threadpool(self.provider.users.by_email, email)
        else:
            # As long as creating an account would take: the answer time says nothing either.
            await run_in_threadpool(self.provider.passwords.hash, password)
        response = self.check_page(request, interaction, req, email)
        await self.sign_out_here(request, response)
        self.pending_signups.set(response, Pending(email, binding_of(user) if user is not None else unbound()))
        refused = await run_in_threadpool(self.may_mail, request, "signup", email, None, "verify")
        if refused is None:
            self.later(response, self.signup_mail, user or existing, user is not None, lang, interaction)
        return response

    def _create(self, email: str, password: str, values: dict[str, Any]) -> User:
        return self.provider.users.create(email, password, email_verified=False, policy_checked=True, **values)

    def signup_mail(self, user: User | None, new: bool, lang: str, interaction: Interaction | None) -> None:
        """After the answer: the new account's link and code, or the existing one's "you already
        have an account" (none to a disabled account)."""
        if user is None or user.disabled:
            return
        mail_lang = self.pages.catalogs.negotiate(user.locale, lang)
        if new:
            token, code = self.provider.one_time.issue(user.id, VERIFY_EMAIL, self.settings.verification_ttl,
                                                       with_code=True)
            subject, text = self.verification_mail(mail_lang, token, code or "", interaction)
        else:
            subject, text = self.already_registered_mail(mail_lang, interaction)
        self.send_now(user.email, subject, text)
