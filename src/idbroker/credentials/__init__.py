"""Credentials issued for a signed-in user beyond OAuth tokens: temporary AWS credentials and
RFC 8693 token exchange. The interface and the table of issuers are in base.py."""
