"""Commands: serve, clients, idp, users, keys, db."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from ..accounts.users import UserError
from ..clients.metadata import ClientMetadata, InvalidClientMetadata
from ..clients.registry import ClientExists, ClientNotFound, metadata_of
from ..federation.registry import InvalidUpstream, UpstreamNotFound, redirect_uris
from ..oauth2 import constants as c
from ..phone import normalise_phone
from ..settings import Settings
from . import context as ctx

app = typer.Typer(help="idbroker: a self-hostable OpenID Connect identity broker.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
clients_app = typer.Typer(help="Register and manage client applications.", no_args_is_help=True)
idp_app = typer.Typer(help="Add and manage upstream identity providers (social, OpenID Connect, SAML, LDAP).",
                       no_args_is_help=True)
users_app = typer.Typer(help="Manage users of the built-in user pool.", no_args_is_help=True)
keys_app = typer.Typer(help="List and rotate token signing keys.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema migrations and housekeeping.", no_args_is_help=True)
app.add_typer(clients_app, name="clients")
app.add_typer(idp_app, name="idp")
app.add_typer(users_app, name="users")
app.add_typer(keys_app, name="keys")
app.add_typer(db_app, name="db")


@app.callback()
def _root(config: Annotated[str | None, typer.Option("--config", "-c", help="TOML configuration file "
                                                     "(default: $IDBROKER_CONFIG).")] = None) -> None:
    ctx.set_config(config)


# -- serve -----------------------------------------------------------------------------------------
@app.command()
def serve(host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
          workers: Annotated[int, typer.Option(help="Worker processes (default: 1).")] = 1,
          access_log: Annotated[bool, typer.Option(help="Log every request.")] = False) -> None:
    """Apply migrations, make sure signing keys exist, and serve the broker with Granian."""
    from ..server import exec_server

    if ctx.settings().issuer == Settings.issuer and "IDBROKER_ISSUER" not in os.environ:
        # No issuer configured: the local address is the issuer (development).
        local = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        os.environ["IDBROKER_ISSUER"] = f"http://{local}:{port}"
    # Share the cores among the workers' password hashing.
    os.environ.setdefault("IDBROKER_HASH_CONCURRENCY", str(max(1, (os.cpu_count() or 1) // max(1, workers))))
    p = ctx.provider()
    p.keys.ensure()
    ctx.console.print(f"idbroker serving issuer [bold]{p.issuer}[/] on http://{host}:{port} "
                      f"({workers} worker{'s' if workers != 1 else ''}, store: {p.db.engine.url.get_backend_name()})")
    ctx.console.print(f"discovery: {p.endpoint('discovery')}")
    p.db.dispose()
    exec_server(host, port, workers, access_log)


# -- clients ------------------------------------------------------------------------------------
Multi = Annotated[list[str] | None, typer.Option()]
Color = Annotated[str | None, typer.Option(help="Brand colour for this client's pages (#rrggbb).")]
ThemeName = Annotated[str | None, typer.Option(help="A theme folder (under themes_dir) for this client's pages; "
                                               "'' to clear.")]
Signup = Annotated[bool | None, typer.Option("--signup/--no-signup", help="Allow sign-up from this client's login "
                                             "(default: the global setting).")]
Mfa = Annotated[str | None, typer.Option(help="Second-factor policy for this client: off, optional or required "
                                         "(default: the global mfa_policy).")]
Ttl = Annotated[int | None, typer.Option(help="Lifetime in seconds for this client (default: global setting).")]


def _client_row(row: Any, secret: str | None = None) -> dict[str, Any]:
    out = {"client_id": row.client_id, **{k: v for k, v in vars(metadata_of(row)).items() if k != "client_id"}}
    out["public"] = row.public
    if secret:
        out["client_secret"] = secret
    return out


def _print_client(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        ctx.console.print_json(json.dumps(data))
        return
    table = Table(show_header=False, box=None)
    for key, value in data.items():
        if key == "client_secret":
            continue
        table.add_row(f"[bold]{key}[/]", escape(", ".join(value) if isinstance(value, list) else str(value)))
    ctx.console.print(table)
    if data.get("client_secret"):
        ctx.console.print(f"\n[bold yellow]client_secret[/] (shown once, store it now): {data['client_secret']}")


def _branding(current: dict[str, Any], primary: str | None, background: str | None, theme: str | None
              ) -> dict[str, Any] | None:
    for key, value in (("primary_color", primary), ("background", background), ("theme", theme)):
        if value:
            current[key] = value
        elif value == "" and key in current:
            del current[key]
    return current or None


def _jwks(path: str | None) -> dict | None:
    if not path:
        return None
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        ctx.fail(f"cannot read JWKS from {path}: {exc}")
    return None


@clients_app.command("add")
def clients_add(
    client_id: Annotated[str, typer.Option(help="The client_id applications send.")],
    redirect_uri: Annotated[list[str] | None, typer.Option(help="Allowed redirect URI (repeat for several).")] = None,
    public: Annotated[bool, typer.Option(help="Public client (no secret; PKCE required).")] = False,
    first_party: Annotated[bool, typer.Option(help="Trusted application: no consent screen.")] = False,
    name: Annotated[str, typer.Option(help="Display name shown to users.")] = "",
    logo_uri: Annotated[str | None, typer.Option(help="Logo shown on the login page.")] = None,
    logback_uri: Annotated[str | None, typer.Option(help="The application's start page.")] = None,
    hidden: Annotated[bool, typer.Option("--hidden/--visible", help="Leave it off the users' apps dashboard "
                                         "(shown there only with a start page).")] = False,
    post_logout_redirect_uri: Annotated[list[str] | None, typer.Option(help="Allowed post-logout URI.")] = None,
    backchannel_logout_uri: Annotated[str | None, typer.Option(help="Back-channel logout URI.")] = None,
    grant_type: Annotated[list[str] | None, typer.Option(help="Allowed grant type (repeat).")] = None,
    response_type: Annotated[list[str] | None, typer.Option(help="Allowed response type (repeat); "
                                                            "implicit only when named here.")] = None,
    scope: Annotated[list[str] | None, typer.Option(help="Allowed scope (repeat).")] = None,
    auth_method: Annotated[str | None, typer.Option(help="Token endpoint auth method.")] = None,
    jwks_file: Annotated[str | None, typer.Option(help="Public JWKS file for private_key_jwt.")] = None,
    id_token_alg: Annotated[str, typer.Option(help="ID token signing algorithm (ES256 or RS256).")] = "ES256",
    access_token_ttl: Ttl = None, id_token_ttl: Ttl = None, refresh_token_ttl: Ttl = None,
    primary_color: Color = None, background_color: Color = None, theme: ThemeName = None,
    signup: Signup = None, mfa: Mfa = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Register a client. Confidential clients get a generated secret, printed once."""
    method = auth_method or (c.AUTH_NONE if public else c.AUTH_BASIC)
    if public and method != c.AUTH_NONE:
        ctx.fail("a public client authenticates with 'none'")
    grants = grant_type or ([c.GRANT_CLIENT_CREDENTIALS] if response_type == [] else
                            [c.GRANT_AUTHORIZATION_CODE, c.GRANT_REFRESH_TOKEN])
    meta = ClientMetadata(client_id=client_id, name=name, redirect_uris=redirect_uri or [],
                          post_logout_redirect_uris=post_logout_redirect_uri or [],
                          token_endpoint_auth_method=method, grant_types=list(grants),
                          response_types=list(response_type if response_type is not None else
                                              ([c.RESPONSE_CODE] if c.GRANT_AUTHORIZATION_CODE in grants else [])),
                          first_party=first_party, logo_uri=logo_uri, logback_uri=logback_uri,
                          hidden_from_dashboard=hidden,
                          backchannel_logout_uri=backchannel_logout_uri, jwks=_jwks(jwks_file),
                          id_token_signed_response_alg=id_token_alg, access_token_ttl=access_token_ttl,
                          id_token_ttl=id_token_ttl, refresh_token_ttl=refresh_token_ttl,
                          branding=_branding({}, primary_color, background_color, theme), signup_enabled=signup,
                          mfa_policy=mfa)
    if scope:
        meta.scopes = list(scope)
    try:
        row, secret = ctx.provider().clients.create(meta)
    except InvalidClientMetadata as exc:
        ctx.fail("; ".join(exc.problems))
    except ClientExists as exc:
        ctx.fail(str(exc))
    _print_client(_client_row(row, secret), as_json)


@clients_app.command("update")
def clients_update(
    client_id: Annotated[str, typer.Argument(help="The client to change.")],
    redirect_uri: Multi = None, post_logout_redirect_uri: Multi = None, grant_type: Multi = None,
    response_type: Multi = None, scope: Multi = None,
    name: Annotated[str | None, typer.Option()] = None,
    logo_uri: Annotated[str | None, typer.Option()] = None,
    logback_uri: Annotated[str | None, typer.Option()] = None,
    backchannel_logout_uri: Annotated[str | None, typer.Option()] = None,
    first_party: Annotated[bool | None, typer.Option("--first-party/--third-party")] = None,
    hidden: Annotated[bool | None, typer.Option("--hidden/--visible", help="Hide it from or show it on the "
                                                "users' apps dashboard.")] = None,
    auth_method: Annotated[str | None, typer.Option()] = None,
    jwks_file: Annotated[str | None, typer.Option()] = None,
    id_token_alg: Annotated[str | None, typer.Option()] = None,
    access_token_ttl: Ttl = None, id_token_ttl: Ttl = None, refresh_token_ttl: Ttl = None,
    primary_color: Color = None, background_color: Color = None, theme: ThemeName = None,
    signup: Signup = None, mfa: Mfa = None,
    rotate_secret: Annotated[bool, typer.Option(help="Issue a new client secret.")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Change a client's settings (list options replace the whole list)."""
    changes = {k: v for k, v in {
        "redirect_uris": redirect_uri, "post_logout_redirect_uris": post_logout_redirect_uri,
        "grant_types": grant_type, "response_types": response_type, "scopes": scope, "name": name,
        "logo_uri": logo_uri, "logback_uri": logback_uri, "backchannel_logout_uri": backchannel_logout_uri,
        "first_party": first_party, "hidden_from_dashboard": hidden,
        "token_endpoint_auth_method": auth_method, "jwks": _jwks(jwks_file),
        "id_token_signed_response_alg": id_token_alg, "access_token_ttl": access_token_ttl,
        "id_token_ttl": id_token_ttl, "refresh_token_ttl": refresh_token_ttl,
        "signup_enabled": signup, "mfa_policy": mfa}.items() if v is not None}
    current = ctx.provider().clients.get(client_id)
    if current is not None and (primary_color or background_color or theme is not None):
        changes["branding"] = _branding(dict(current.branding or {}), primary_color, background_color, theme)
    try:
        row, secret = ctx.provider().clients.update(client_id, changes, new_secret=rotate_secret)
    except InvalidClientMetadata as exc:
        ctx.fail("; ".join(exc.problems))
    except ClientNotFound:
        ctx.fail(f"no client {client_id!r}")
    _print_client(_client_row(row, secret), as_json)


@clients_app.command("list")
def clients_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List registered clients."""
    rows = ctx.provider().clients.list()
    if as_json:
        ctx.console.print_json(json.dumps([_client_row(r) for r in rows]))
        return
    table = Table("client_id", "name", "type", "grant types", "redirect URIs")
    for r in rows:
        table.add_row(escape(r.client_id), escape(r.name), "public" if r.public else "confidential",
                      ", ".join(r.grant_types), escape("\n".join(r.redirect_uris)))
    ctx.console.print(table)


@clients_app.command("show")
def clients_show(client_id: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show one client."""
    row = ctx.provider().clients.get(client_id)
    if row is None:
        ctx.fail(f"no client {client_id!r}")
    _print_client(_client_row(row), as_json)


@clients_app.command("remove")
def clients_remove(client_id: str) -> None:
    """Delete a client and everything issued to it."""
    try:
        ctx.provider().clients.remove(client_id)
    except ClientNotFound:
        ctx.fail(f"no client {client_id!r}")
    ctx.console.print(f"removed client {escape(client_id)}")


# -- idp -------------------------------------------------------------------------------------------
KeyValues = Annotated[list[str] | None, typer.Option(help="KEY=VALUE (repeat).")]
SecretValues = Annotated[list[str] | None, typer.Option("--secret", help="KEY=VALUE of a secret option, stored "
                                                        "encrypted and never printed (repeat).")]
Domains = Annotated[list[str] | None, typer.Option("--domain", help="Addresses in this domain sign in here "
                                                   "(repeat).")]


def _pairs(values: list[str] | None, flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            ctx.fail(f"{flag} {item!r}: expected KEY=VALUE")
        out[key.strip()] = value
    return out


def _idp_dict(row: Any) -> dict[str, Any]:
    p = ctx.provider()
    return {"id": row.id, "kind": row.kind, "name": row.name, "options": row.options,
            "secrets": p.upstreams.secret_names(row), "logo_uri": row.logo_uri, "trust_email": row.trust_email,
            "trust_mfa": row.trust_mfa, "domains": row.domains, **redirect_uris(p.issuer, row.id, row.kind)}


def _print_idp(row: Any, as_json: bool) -> None:
    data = _idp_dict(row)
    if as_json:
        ctx.console.print_json(json.dumps(data))
        return
    table = Table(show_header=False, box=None)
    for key, value in data.items():
        shown = ", ".join(f"{k}={v}" for k, v in value.items()) if isinstance(value, dict) else \
            ", ".join(value) if isinstance(value, list) else str(value)
        table.add_row(f"[bold]{key}[/]", escape(shown))
    ctx.console.print(table)


@idp_app.command("add")
def idp_add(
    provider_id: Annotated[str, typer.Option("--id", help="Our id: in {issuer}/idp/{id}/... and the idp claim.")],
    kind: Annotated[str, typer.Option(help="oidc, oauth2, saml, ldap, or a preset (google, github, ...).")],
    name: Annotated[str, typer.Option(help="Shown on the sign-in button.")],
    option: KeyValues = None, secret: SecretValues = None, domain: Domains = None,
    trust_email: Annotated[bool, typer.Option(help="Its verified addresses may link to existing accounts.")] = False,
    trust_mfa: Annotated[bool, typer.Option(help="Its multi-factor sign-in stands in for ours.")] = False,
    logo_uri: Annotated[str | None, typer.Option(help="Logo on the sign-in button.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Add an upstream provider; prints the redirect URI to register there."""
    try:
        row = ctx.provider().upstreams.add(provider_id, kind, name, options=_pairs(option, "--option"),
                                           secrets=_pairs(secret, "--secret"), logo_uri=logo_uri,
                                           trust_email=trust_email, trust_mfa=trust_mfa, domains=domain)
    except InvalidUpstream as exc:
        ctx.fail(str(exc))
    _print_idp(row, as_json)


@idp_app.command("update")
def idp_update(
    provider_id: Annotated[str, typer.Argument(help="The provider to change.")],
    name: Annotated[str | None, typer.Option()] = None,
    option: Annotated[list[str] | None, typer.Option(help="KEY=VALUE, merged; KEY= removes it (repeat).")] = None,
    secret: SecretValues = None, domain: Domains = None,
    no_domains: Annotated[bool, typer.Option("--no-domains", help="Remove every domain.")] = False,
    trust_email: Annotated[bool | None, typer.Option("--trust-email/--no-trust-email")] = None,
    trust_mfa: Annotated[bool | None, typer.Option("--trust-mfa/--no-trust-mfa")] = None,
    logo_uri: Annotated[str | None, typer.Option(help="'' removes it.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Change a provider (options and secrets are merged; --domain replaces the list)."""
    try:
        row = ctx.provider().upstreams.update(
            provider_id, name=name, options=_pairs(option, "--option"), secrets=_pairs(secret, "--secret"),
            logo_uri=logo_uri, trust_email=trust_email, trust_mfa=trust_mfa,
            domains=[] if no_domains else domain)
    except InvalidUpstream as exc:
        ctx.fail(str(exc))
    except UpstreamNotFound:
        ctx.fail(f"no provider {provider_id!r}")
    _print_idp(row, as_json)


@idp_app.command("list")
def idp_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List upstream providers."""
    rows = ctx.provider().upstreams.list()
    if as_json:
        ctx.console.print_json(json.dumps([_idp_dict(r) for r in rows]))
        return
    table = Table("id", "kind", "name", "domains")
    for r in rows:
        table.add_row(escape(r.id), escape(r.kind), escape(r.name), escape(", ".join(r.domains)))
    ctx.console.print(table)


@idp_app.command("show")
def idp_show(provider_id: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show one provider and the URIs to register at it."""
    row = ctx.provider().upstreams.row(provider_id)
    if row is None:
        ctx.fail(f"no provider {provider_id!r}")
    _print_idp(row, as_json)


@idp_app.command("remove")
def idp_remove(provider_id: str) -> None:
    """Delete a provider and every account link to it."""
    try:
        ctx.provider().upstreams.remove(provider_id)
    except UpstreamNotFound:
        ctx.fail(f"no provider {provider_id!r}")
    ctx.console.print(f"removed provider {escape(provider_id)}")


# -- users --------------------------------------------------------------------------------------
def _user_dict(u: Any) -> dict[str, Any]:
    return {"sub": u.sub, "email": u.email, "email_verified": u.email_verified, "given_name": u.given_name,
            "family_name": u.family_name, "phone_number": u.phone_number, "groups": u.groups,
            "disabled": u.disabled, "created_at": u.created_at.isoformat()}


Password = Annotated[str | None, typer.Option(help="The password (visible in the process list and shell history: "
                                            "prefer the prompt or --password-stdin).")]
PasswordStdin = Annotated[bool, typer.Option("--password-stdin", help="Read the password from the first line of "
                                             "standard input.")]
PASSWORD_WAYS = ("Without --password or --password-stdin, the password is asked for twice, hidden "
                 "(only in a terminal).")


def _password(given: str | None, from_stdin: bool) -> str:
    """The password from --password, from standard input, or typed twice at a hidden prompt."""
    if given is not None and from_stdin:
        ctx.fail("give either --password or --password-stdin, not both")
    if given is not None:
        return given
    if from_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            ctx.fail("--password-stdin: standard input has no password on its first line")
        return line
    if not sys.stdin.isatty():
        ctx.fail("no password given and no terminal to ask for one: use --password-stdin or --password")
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True)


@users_app.command("add", help=f"Create a user in the built-in pool. {PASSWORD_WAYS}")
def users_add(email: Annotated[str, typer.Option()],
              password: Password = None, password_stdin: PasswordStdin = False,
              given_name: Annotated[str | None, typer.Option()] = None,
              family_name: Annotated[str | None, typer.Option()] = None,
              phone_number: Annotated[str | None, typer.Option(help="In international form: + country code and "
                                                               "number (E.164), e.g. +14155550100.")] = None,
              group: Annotated[list[str] | None, typer.Option(help="Group membership (repeat).")] = None,
              email_verified: Annotated[bool, typer.Option(help="Mark the address verified.")] = True,
              as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    phone = normalise_phone(phone_number) if phone_number else None
    if phone_number and phone is None:
        ctx.fail(f"--phone-number {phone_number!r} is not an international number: "
                 "+ country code and number (E.164), e.g. +14155550100")
    secret = _password(password, password_stdin)
    try:
        user = ctx.provider().users.create(email, secret, email_verified=email_verified, given_name=given_name,
                                           family_name=family_name, phone_number=phone, groups=list(group or []))
    except UserError as exc:
        ctx.fail(str(exc))
    _print_user(user, as_json)


def _print_user(user: Any, as_json: bool) -> None:
    data = _user_dict(user)
    if as_json:
        ctx.console.print_json(json.dumps(data))
        return
    table = Table(show_header=False, box=None)
    for key, value in data.items():
        table.add_row(f"[bold]{key}[/]", escape(str(value)))
    ctx.console.print(table)


@users_app.command("list")
def users_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List users."""
    users = ctx.provider().users.list()
    if as_json:
        ctx.console.print_json(json.dumps([_user_dict(u) for u in users]))
        return
    table = Table("email", "sub", "verified", "disabled")
    for u in users:
        table.add_row(escape(u.email), u.sub, "yes" if u.email_verified else "no", "yes" if u.disabled else "no")
    ctx.console.print(table)


@users_app.command("show")
def users_show(email: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show one user."""
    user = ctx.provider().users.by_email(email)
    if user is None:
        ctx.fail(f"no user {email!r}")
    _print_user(user, as_json)


@users_app.command("set-password", help=f"Set a user's password. {PASSWORD_WAYS}")
def users_set_password(email: str, password: Password = None, password_stdin: PasswordStdin = False) -> None:
    secret = _password(password, password_stdin)
    try:
        ctx.provider().users.set_password(email, secret)
    except UserError as exc:
        ctx.fail(str(exc))
    ctx.console.print(f"password changed for {escape(email)}")


@users_app.command("disable")
def users_disable(email: str, enable: Annotated[bool, typer.Option("--enable", help="Re-enable instead.")] = False
                  ) -> None:
    """Disable a user (sign-in and existing tokens stop working) or re-enable one."""
    p = ctx.provider()
    try:
        user = p.users.set_disabled(email, not enable)
    except UserError as exc:
        ctx.fail(str(exc))
    if not enable:
        p.sessions.end_all_for_user(user.id)
    ctx.console.print(f"{'enabled' if enable else 'disabled'} {escape(email)}")


# -- keys -------------------------------------------------------------------------------------
@keys_app.command("list")
def keys_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Signing keys and their state (next, active, retired)."""
    p = ctx.provider()
    p.keys.ensure()
    rows = p.keys.list()
    if as_json:
        ctx.console.print_json(json.dumps([{"kid": k.kid, "alg": k.alg, "state": st,
                                             "activate_at": k.activate_at.isoformat(),
                                             "retire_after": k.retire_after.isoformat() if k.retire_after else None}
                                            for k, st in rows]))
        return
    table = Table("kid", "alg", "state", "signs from", "published until")
    for k, st in rows:
        table.add_row(k.kid, k.alg, st, k.activate_at.isoformat(),
                      k.retire_after.isoformat() if k.retire_after else "-")
    ctx.console.print(table)


@keys_app.command("rotate")
def keys_rotate(alg: Annotated[str | None, typer.Option(help="ES256 or RS256 (default: signing_alg).")] = None,
                now: Annotated[bool, typer.Option("--now", help="Sign with it at once (key compromise).")] = False
                ) -> None:
    """Create a new key: published in JWKS at once, signing after key_activation_delay."""
    p = ctx.provider()
    if alg not in (None, "ES256", "RS256"):
        ctx.fail("alg must be ES256 or RS256")
    p.keys.ensure()
    key = p.keys.rotate(alg, immediately=now)
    ctx.console.print(f"new {key.alg} key {key.kid}: published now, signs from {key.activate_at.isoformat()}")


# -- db ----------------------------------------------------------------------------------------
@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration."""
    from ..store.migrate import current_revision

    p = ctx.provider()  # upgrades
    ctx.console.print(f"database at revision {current_revision(p.db.engine)}")


@db_app.command("current")
def db_current() -> None:
    """Show the schema revision."""
    from ..store.db import Database
    from ..store.migrate import current_revision

    db = Database(ctx.settings().resolved_database_url)
    ctx.console.print(current_revision(db.engine) or "empty database")


@db_app.command("purge")
def db_purge() -> None:
    """Delete expired codes, tokens, grants, sessions and interactions, forgotten throttle rows and
    audit events older than audit_retention_days (what every worker also does each purge_interval)."""
    from ..store.housekeeping import purge

    p = ctx.provider()
    counts = purge(p.db, p.settings.audit_retention_days)
    for table, deleted in counts.items():
        ctx.console.print(f"{table}: {deleted} deleted")


def main() -> None:
    """The ``idbroker`` command. A mistake on the command line (a missing option, a bad value) is
    one line on stderr and exit status 2, an interrupted prompt exit status 1."""
    from typer._click.exceptions import NoArgsIsHelpError  # typer's own copy of click (typer 0.29)

    try:
        code = app(standalone_mode=False)
    except NoArgsIsHelpError as exc:  # a command group alone: its help, as always
        exc.show()
        sys.exit(exc.exit_code)
    except typer.TyperException as exc:  # the command line's usage errors
        where = f" (see: {exc.ctx.command_path} --help)" if getattr(exc, "ctx", None) else ""
        ctx.error_line(exc.format_message() + where)
        sys.exit(exc.exit_code)
    except typer.Abort:  # end of input at a prompt
        ctx.error_line("aborted")
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
