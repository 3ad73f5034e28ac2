"""Commands: idp add|update|list|show|remove (upstream identity providers)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from ..federation.registry import InvalidUpstream, UpstreamNotFound, redirect_uris
from . import context as ctx

idp_app = typer.Typer(help="Add and manage upstream identity providers (social, OpenID Connect, SAML, LDAP).",
                      no_args_is_help=True)


KeyValues = Annotated[list[str] | None, typer.Option(help="KEY=VALUE (repeat).")]
SecretValues = Annotated[list[str] | None, typer.Option("--secret", help="KEY=VALUE of a secret option, stored "
                                                        "encrypted and never printed (repeat).")]
Domains = Annotated[list[str] | None, typer.Option("--domain", help="Addresses in this domain sign in here "
                                                   "(repeat).")]


Text = Annotated[str | None, typer.Option()]
Issuer = Annotated[str | None, typer.Option(help="oidc: the issuer (discovery at {issuer}/.well-known/...).")]
ClientId = Annotated[str | None, typer.Option(help="oidc/oauth2: our client id at the provider.")]
ClientSecret = Annotated[str | None, typer.Option(help="oidc/oauth2: our client secret there (stored encrypted).")]
Scopes = Annotated[list[str] | None, typer.Option("--scope", help="oidc/oauth2: a scope to ask for (repeat; "
                                                  "replaces the preset's).")]
Claims = Annotated[list[str] | None, typer.Option("--claim", help="LOCAL=UPSTREAM claim (SAML: attribute) "
                                                  "mapping; dotted paths reach nested values (repeat).")]
LdapUrl = Annotated[str | None, typer.Option("--url", help="ldap: ldaps://host or ldap://host with --start-tls.")]
StartTls = Annotated[bool | None, typer.Option("--start-tls/--no-start-tls", help="ldap: StartTLS on ldap://.")]
BindPassword = Annotated[str | None, typer.Option(help="ldap: the service account's password (stored encrypted).")]
UserFilter = Annotated[str | None, typer.Option(help="ldap: e.g. (|(uid={login})(mail={login})).")]
MetadataUrl = Annotated[str | None, typer.Option(help="saml: the IdP's metadata URL (refreshed).")]
MetadataFile = Annotated[str | None, typer.Option(help="saml: the IdP's metadata file (its content is stored).")]


def _typed(kind: str, *, issuer: str | None, client_id: str | None, client_secret: str | None,
           scope: list[str] | None, claim: list[str] | None, url: str | None, start_tls: bool | None,
           bind_dn: str | None, bind_password: str | None, base_dn: str | None, user_filter: str | None,
           group_base_dn: str | None, metadata_url: str | None, metadata_file: str | None
           ) -> tuple[dict[str, Any], dict[str, str]]:
    """(options, secrets) from the named flags: the same keys `--option`/`--secret` would set."""
    options: dict[str, Any] = {key: value for key, value in (
        ("issuer", issuer), ("client_id", client_id), ("url", url), ("bind_dn", bind_dn), ("base_dn", base_dn),
        ("user_filter", user_filter), ("group_base_dn", group_base_dn), ("idp_metadata_url", metadata_url))
        if value is not None}
    if start_tls is not None:
        options["start_tls"] = start_tls
    if scope:
        options["scopes"] = [s for item in scope for s in item.split()]
    if claim:
        options["attributes" if kind == "saml" else "claims"] = ctx.key_values(claim, "--claim")
    if metadata_file is not None:
        try:
            with open(metadata_file, encoding="utf-8") as f:
                options["idp_metadata"] = f.read()
        except OSError as exc:
            ctx.fail(f"--metadata-file {metadata_file}: {exc.strerror or exc}")
    secrets = {key: value for key, value in (("client_secret", client_secret), ("bind_password", bind_password))
               if value is not None}
    return options, secrets


def _idp_dict(row: Any) -> dict[str, Any]:
    p = ctx.provider()
    return {"id": row.id, "kind": row.kind, "name": row.name, "options": row.options,
            "secrets": p.upstreams.secret_names(row), "logo_uri": row.logo_uri, "trust_email": row.trust_email,
            "trust_mfa": row.trust_mfa, "domains": row.domains, **redirect_uris(p.issuer, row.id, row.kind)}


def _print_idp(row: Any, as_json: bool) -> None:
    ctx.print_record(_idp_dict(row), as_json)


@idp_app.command("add")
def idp_add(
    provider_id: Annotated[str, typer.Option("--id", help="Our id: in {issuer}/idp/{id}/... and the idp claim.")],
    kind: Annotated[str, typer.Option(help="oidc, oauth2, saml, ldap, or a preset (google, github, ...).")],
    name: Annotated[str, typer.Option(help="Shown on the sign-in button.")],
    issuer: Issuer = None, client_id: ClientId = None, client_secret: ClientSecret = None, scope: Scopes = None,
    claim: Claims = None, url: LdapUrl = None, start_tls: StartTls = None, bind_dn: Text = None,
    bind_password: BindPassword = None, base_dn: Text = None, user_filter: UserFilter = None,
    group_base_dn: Text = None, metadata_url: MetadataUrl = None, metadata_file: MetadataFile = None,
    option: KeyValues = None, secret: SecretValues = None, domain: Domains = None,
    trust_email: Annotated[bool, typer.Option(help="Its verified addresses may link to existing accounts.")] = False,
    trust_mfa: Annotated[bool, typer.Option(help="Its multi-factor sign-in stands in for ours.")] = False,
    logo_uri: Annotated[str | None, typer.Option(help="Logo on the sign-in button.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Add an upstream provider; prints the redirect URI to register there."""
    named, named_secrets = _typed(
        kind, issuer=issuer, client_id=client_id, client_secret=client_secret, scope=scope, claim=claim, url=url,
        start_tls=start_tls, bind_dn=bind_dn, bind_password=bind_password, base_dn=base_dn, user_filter=user_filter,
        group_base_dn=group_base_dn, metadata_url=metadata_url, metadata_file=metadata_file)
    try:
        row = ctx.provider().upstreams.add(provider_id, kind, name,
                                           options={**ctx.key_values(option, "--option"), **named},
                                           secrets={**ctx.key_values(secret, "--secret"), **named_secrets},
                                           logo_uri=logo_uri, trust_email=trust_email, trust_mfa=trust_mfa,
                                           domains=domain)
    except InvalidUpstream as exc:
        ctx.fail(str(exc))
    _print_idp(row, as_json)


@idp_app.command("update")
def idp_update(
    provider_id: Annotated[str, typer.Argument(help="The provider to change.")],
    name: Annotated[str | None, typer.Option()] = None,
    issuer: Issuer = None, client_id: ClientId = None, client_secret: ClientSecret = None, scope: Scopes = None,
    claim: Claims = None, url: LdapUrl = None, start_tls: StartTls = None, bind_dn: Text = None,
    bind_password: BindPassword = None, base_dn: Text = None, user_filter: UserFilter = None,
    group_base_dn: Text = None, metadata_url: MetadataUrl = None, metadata_file: MetadataFile = None,
    option: Annotated[list[str] | None, typer.Option(help="KEY=VALUE, merged; KEY= removes it (repeat).")] = None,
    secret: SecretValues = None, domain: Domains = None,
    no_domains: Annotated[bool, typer.Option("--no-domains", help="Remove every domain.")] = False,
    trust_email: Annotated[bool | None, typer.Option("--trust-email/--no-trust-email")] = None,
    trust_mfa: Annotated[bool | None, typer.Option("--trust-mfa/--no-trust-mfa")] = None,
    logo_uri: Annotated[str | None, typer.Option(help="'' removes it.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Change a provider (options and secrets are merged; --domain replaces the list)."""
    current = ctx.provider().upstreams.row(provider_id)
    if current is None:
        ctx.fail(f"no provider {provider_id!r}")
    named, named_secrets = _typed(
        current.kind, issuer=issuer, client_id=client_id, client_secret=client_secret, scope=scope, claim=claim,
        url=url, start_tls=start_tls, bind_dn=bind_dn, bind_password=bind_password, base_dn=base_dn,
        user_filter=user_filter, group_base_dn=group_base_dn, metadata_url=metadata_url, metadata_file=metadata_file)
    try:
        row = ctx.provider().upstreams.update(
            provider_id, name=name, options={**ctx.key_values(option, "--option"), **named},
            secrets={**ctx.key_values(secret, "--secret"), **named_secrets},
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
