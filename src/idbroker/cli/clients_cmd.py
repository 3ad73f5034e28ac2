"""Commands: clients add|update|list|show|remove|registration-token."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from ..clients.metadata import ClientMetadata, InvalidClientMetadata
from ..clients.registry import ClientExists, ClientNotFound, metadata_of
from ..oauth2 import constants as c
from . import context as ctx

clients_app = typer.Typer(help="Register and manage client applications.", no_args_is_help=True)


Multi = Annotated[list[str] | None, typer.Option()]
Color = Annotated[str | None, typer.Option(help="Brand colour for this client's pages (#rrggbb).")]
ThemeName = Annotated[str | None, typer.Option(help="A theme folder (under themes_dir) for this client's pages; "
                                               "'' to clear.")]
Signup = Annotated[bool | None, typer.Option("--signup/--no-signup", help="Allow sign-up from this client's login "
                                             "(default: the global setting).")]
Mfa = Annotated[str | None, typer.Option(help="Second-factor policy for this client: off, optional or required "
                                         "(default: the global mfa_policy).")]
Ttl = Annotated[int | None, typer.Option(help="Lifetime in seconds for this client (default: global setting).")]
Idps = Annotated[list[str] | None, typer.Option("--idp", help="An upstream provider (`idp` id) its sign-in page "
                                                "offers (repeat; replaces the list; '' for every one).")]
AllIdps = Annotated[bool, typer.Option("--all-idps", help="Offer every upstream provider (the default).")]
Local = Annotated[bool | None, typer.Option("--local-accounts/--no-local-accounts", help="Offer the password form, "
                                            "sign-up and reset (default), or upstream providers only.")]
# OIDC Registration §2 / Core §8.1 / Front-Channel Logout 1.0 (issue 15).
SubjectType = Annotated[str | None, typer.Option(help="public (default) or pairwise: a per-sector `sub` "
                                                 "(OIDC Core §8.1).")]
SectorUri = Annotated[str | None, typer.Option(help="https URL of a JSON array listing every redirect URI; its "
                                               "host is the pairwise sector ('' to clear).")]
FrontUri = Annotated[str | None, typer.Option(help="Front-channel logout URI, loaded in an iframe with iss and "
                                              "sid when the user signs out ('' to clear).")]
UserinfoAlg = Annotated[str | None, typer.Option(help="Sign userinfo responses (RS256 or ES256; 'none' for "
                                                 "plain JSON, the default).")]

# RFC 9126 §6, RFC 9101 §10.5, RFC 9449 §5.2 (issue 15).
RequirePar = Annotated[bool | None, typer.Option("--require-par/--no-require-par", help="Accept its authorization "
                                                 "requests only through the PAR endpoint (/oauth2/par).")]
RequireSigned = Annotated[bool | None, typer.Option("--require-signed-request-object/--no-require-signed-request-"
                                                    "object", help="Accept only signed request objects.")]
DpopBound = Annotated[bool | None, typer.Option("--dpop-bound/--no-dpop-bound", help="Require a DPoP proof on "
                                                "every token request (RFC 9449).")]
# JARM §3 and the FAPI 2.0 Security Profile (oauth2/jarm.py, oauth2/fapi.py).
AuthorizationAlg = Annotated[str | None, typer.Option(help="Sign JARM authorization responses with RS256 (the "
                                                      "default) or ES256.")]
Fapi2 = Annotated[bool | None, typer.Option("--fapi2/--no-fapi2", help="FAPI 2.0 Security Profile: PAR, PKCE S256, "
                                            "code only, private_key_jwt, DPoP-bound tokens, 60 s codes.")]


def _profile_options(authorization_alg: str | None, fapi2: bool | None) -> dict[str, Any]:
    out: dict[str, Any] = {} if fapi2 is None else {"fapi2": fapi2}
    if authorization_alg is not None:
        out["authorization_signed_response_alg"] = authorization_alg or None
    return out


def _sender_options(require_par: bool | None, require_signed: bool | None, dpop_bound: bool | None) -> dict[str, Any]:
    return {k: v for k, v in {"require_par": require_par, "require_signed_request_object": require_signed,
                              "dpop_bound": dpop_bound}.items() if v is not None}


def _standards(subject_type: str | None, sector_uri: str | None, front_uri: str | None,
               userinfo_alg: str | None) -> dict[str, Any]:
    """The issue-15 client options given, as metadata changes ('' clears a URI)."""
    out: dict[str, Any] = {}
    if subject_type is not None:
        out["subject_type"] = subject_type
    if sector_uri is not None:
        out["sector_identifier_uri"] = sector_uri or None
    if front_uri is not None:
        out["frontchannel_logout_uri"] = front_uri or None
        out["frontchannel_logout_session_required"] = bool(front_uri)
    if userinfo_alg is not None:
        out["userinfo_signed_response_alg"] = None if userinfo_alg.lower() == "none" else userinfo_alg
    return out


def _idps(idp: list[str] | None, all_idps: bool) -> list[str] | None | bool:
    """The client's `idps` from --idp/--all-idps: a list, None for every provider, False for no change.
    Each id must be a configured provider."""
    if all_idps or idp == [""]:
        return None
    if idp is None:
        return False
    wanted = list(dict.fromkeys(i for i in idp if i))
    known = {r.id for r in ctx.provider().upstreams.list()}
    unknown = [i for i in wanted if i not in known]
    if unknown:
        ctx.fail(f"no upstream provider {', '.join(map(repr, unknown))} (see: idbroker idp list)")
    return wanted


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
        if key == "idps" and value is None:
            value = "(every provider)"
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
    id_token_alg: Annotated[str, typer.Option(help="ID token signing algorithm (RS256, the default, or "
                                              "ES256).")] = c.ID_TOKEN_DEFAULT_ALG,
    subject_type: SubjectType = None, sector_identifier_uri: SectorUri = None,
    frontchannel_logout_uri: FrontUri = None, userinfo_alg: UserinfoAlg = None,
    access_token_ttl: Ttl = None, id_token_ttl: Ttl = None, refresh_token_ttl: Ttl = None,
    primary_color: Color = None, background_color: Color = None, theme: ThemeName = None,
    signup: Signup = None, mfa: Mfa = None, idp: Idps = None, all_idps: AllIdps = False, local_accounts: Local = None,
    require_par: RequirePar = None, require_signed_request_object: RequireSigned = None,
    dpop_bound: DpopBound = None, authorization_alg: AuthorizationAlg = None, fapi2: Fapi2 = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Register a client. Confidential clients get a generated secret, printed once."""
    idps = _idps(idp, all_idps)
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
    meta.idps = None if idps is False else idps  # type: ignore[assignment]
    meta.local_accounts = local_accounts is not False
    for key, value in _standards(subject_type, sector_identifier_uri, frontchannel_logout_uri, userinfo_alg).items():
        setattr(meta, key, value)
    for key, value in _sender_options(require_par, require_signed_request_object, dpop_bound).items():
        setattr(meta, key, value)
    for key, value in _profile_options(authorization_alg, fapi2).items():
        setattr(meta, key, value)
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
    subject_type: SubjectType = None, sector_identifier_uri: SectorUri = None,
    frontchannel_logout_uri: FrontUri = None, userinfo_alg: UserinfoAlg = None,
    access_token_ttl: Ttl = None, id_token_ttl: Ttl = None, refresh_token_ttl: Ttl = None,
    primary_color: Color = None, background_color: Color = None, theme: ThemeName = None,
    signup: Signup = None, mfa: Mfa = None, idp: Idps = None, all_idps: AllIdps = False, local_accounts: Local = None,
    require_par: RequirePar = None, require_signed_request_object: RequireSigned = None,
    dpop_bound: DpopBound = None, authorization_alg: AuthorizationAlg = None, fapi2: Fapi2 = None,
    rotate_secret: Annotated[bool, typer.Option(help="Issue a new client secret.")] = False,
    exchange_audience: Annotated[list[str] | None, typer.Option(
        help="An audience this client may exchange tokens into (RFC 8693; repeat; replaces the list).")] = None,
    no_exchange: Annotated[bool, typer.Option("--no-exchange", help="Clear its token-exchange audiences.")] = False,
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
        "signup_enabled": signup, "mfa_policy": mfa, "local_accounts": local_accounts}.items() if v is not None}
    idps = _idps(idp, all_idps)
    if idps is not False:
        changes["idps"] = idps
    changes |= _standards(subject_type, sector_identifier_uri, frontchannel_logout_uri, userinfo_alg)
    changes |= _sender_options(require_par, require_signed_request_object, dpop_bound)
    changes |= _profile_options(authorization_alg, fapi2)
    if exchange_audience and no_exchange:
        ctx.fail("--exchange-audience and --no-exchange exclude each other")
    if exchange_audience or no_exchange:
        changes["exchange_audiences"] = list(dict.fromkeys(exchange_audience or []))
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


@clients_app.command("registration-token")
def clients_registration_token(
    expires_in: Annotated[int | None, typer.Option(help="Seconds the token is valid (default: until used up).")] = None,
    max_uses: Annotated[int | None, typer.Option(help="Registrations it allows (default: any number).")] = None,
) -> None:
    """Create an initial access token for dynamic registration (RFC 7591 §3, setting registration = token)."""
    if expires_in is not None and expires_in <= 0:
        ctx.fail("--expires-in must be a positive number of seconds")
    if max_uses is not None and max_uses <= 0:
        ctx.fail("--max-uses must be a positive number")
    token = ctx.provider().registration.issue_initial_token(expires_in, max_uses)
    ctx.console.print("initial access token (shown once; send it as Authorization: Bearer to /oauth2/register):")
    ctx.console.print(token, markup=False, highlight=False, soft_wrap=True)


# -- idp -------------------------------------------------------------------------------------------
