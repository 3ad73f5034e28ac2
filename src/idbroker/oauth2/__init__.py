"""OAuth 2.0 (RFC 6749 and friends): errors, client authentication, PKCE, tokens, grants, endpoints."""
