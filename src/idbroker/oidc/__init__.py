"""OpenID Connect layers: discovery, JWKS, ID tokens, claims, userinfo, logout."""
