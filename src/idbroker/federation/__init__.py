"""Upstream identity providers: social presets, any OpenID Connect / OAuth 2.0 provider, SAML 2.0
IdPs and LDAP directories. The interface and the table of kinds are in base.py."""
