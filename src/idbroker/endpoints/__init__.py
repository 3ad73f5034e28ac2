"""HTTP glue for the OAuth 2.0 and OpenID Connect back-channel endpoints (token, revoke,
introspect, userinfo) and logout; the rules live in grants, checks and services."""
