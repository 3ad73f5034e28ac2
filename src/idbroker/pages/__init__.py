"""The hosted pages: sign-in, sign-up, verification, recovery, second step, consent, terms, account
settings and the apps dashboard. HTTP only: the journey of an authorization request is in flow/."""
