"""DOT's endpoints under /o/ (authorize, token, introspect, userinfo, discovery, JWKS) and Django's login form."""

from django.contrib.auth.views import LoginView
from django.urls import include, path

urlpatterns = [
    path("accounts/login/", LoginView.as_view(), name="login"),
    path("o/", include("oauth2_provider.urls", namespace="oauth2_provider")),
]
