"""HTTP glue for the OAuth 2.0 endpoints; the rules live in grants, checks and services."""
