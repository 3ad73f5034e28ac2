"""Userinfo and ID token claims: sub, email, email_verified for scope "openid email", as idbroker and the
oidc-provider peer release them."""

from oauth2_provider.oauth2_validators import OAuth2Validator


class BenchValidator(OAuth2Validator):
    oidc_claim_scope = {**OAuth2Validator.oidc_claim_scope, "email": "email", "email_verified": "email"}

    def get_additional_claims(self, request):
        return {"email": request.user.email, "email_verified": True}
