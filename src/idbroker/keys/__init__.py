"""Signing keys: stored encrypted, published in JWKS, rotated without breaking verifiers."""
