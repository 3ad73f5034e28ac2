"""The django-oauth-toolkit peer of ./bench/run: the smallest Django project a Python team would deploy
for an OpenID provider, configured like the idbroker under test.

Environment (set by bench/bench.py):
  DOT_DATA_DIR        where the SQLite file and the RSA signing key live
  DOT_DATABASE_URL    postgresql://user@host:port/name for PostgreSQL; unset = SQLite in DOT_DATA_DIR
  DOT_ARGON2          "memory_kib,time_cost,parallelism": idbroker's argon2id parameters, for user passwords
  DOT_PG_POOL         PostgreSQL connections per worker, at most (default 16; a pool per worker)
"""

import os
from pathlib import Path
from urllib.parse import urlsplit

BASE_DIR = Path(__file__).resolve().parent
DATA_DIR = Path(os.environ.get("DOT_DATA_DIR", BASE_DIR.parent / "data"))
DATA_DIR.mkdir(parents=True, exist_ok=True)

SECRET_KEY = os.environ.get("DOT_SECRET_KEY", "bench-only-" + "x" * 40)
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "oauth2_provider",
    "dotpeer",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
ROOT_URLCONF = "dotpeer.urls"
WSGI_APPLICATION = "dotpeer.wsgi.application"
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "DIRS": [BASE_DIR / "templates"],
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": ["django.template.context_processors.request",
                                       "django.contrib.auth.context_processors.auth"]},
}]

_url = os.environ.get("DOT_DATABASE_URL", "")
DOT_PG_POOL = int(os.environ.get("DOT_PG_POOL", "16"))  # PostgreSQL connections per worker, at most
if _url.startswith("postgres"):
    _p = urlsplit(_url)
    DATABASES = {"default": {
        "ENGINE": "django.db.backends.postgresql", "NAME": _p.path.lstrip("/"), "USER": _p.username or "postgres",
        "PASSWORD": _p.password or "", "HOST": _p.hostname or "127.0.0.1", "PORT": str(_p.port or 5432),
        # A bounded pool per worker (Django's psycopg pool), as idbroker keeps one (20 + 10 per worker), not
        # a persistent connection per thread: Granian's WSGI pool grows to as many threads as there are
        # requests in flight (256 at most), so CONN_MAX_AGE=None held ~56 connections per server under the
        # bench's 32 connections; next to idbroker's pool that ran PostgreSQL's 100 slots out ("too many
        # clients already") and requests failed with 500s (first at /o/authorize/). A thread waits for a
        # free connection instead. No check on checkout, as idbroker does no pre-ping.
        "CONN_MAX_AGE": 0, "CONN_HEALTH_CHECKS": False,
        "OPTIONS": {"pool": {"min_size": 2, "max_size": DOT_PG_POOL, "timeout": 30}},
    }}
else:
    DATABASES = {"default": {
        "ENGINE": "django.db.backends.sqlite3", "NAME": DATA_DIR / "dot.sqlite3",
        # the same journal as idbroker's SQLite store (WAL, synchronous=NORMAL); writers take the lock up front
        "OPTIONS": {"init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                    "transaction_mode": "IMMEDIATE", "timeout": 20},
    }}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
LOGIN_URL = "/accounts/login/"
SESSION_ENGINE = "django.contrib.sessions.backends.db"
# user passwords: argon2id with idbroker's parameters (dotpeer.hashers)
PASSWORD_HASHERS = ["dotpeer.hashers.BenchArgon2Hasher"]
LOGGING = {"version": 1, "disable_existing_loggers": False,
           "handlers": {"console": {"class": "logging.StreamHandler"}},
           "root": {"handlers": ["console"], "level": "WARNING"}}

_key_file = DATA_DIR / "oidc-rsa.pem"
if not _key_file.exists():  # made once, by the setup command, before any worker starts
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    _key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _key_file.write_bytes(_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()))

OAUTH2_PROVIDER = {
    "OIDC_ENABLED": True,
    "OIDC_RSA_PRIVATE_KEY": _key_file.read_text(),  # ID tokens RS256 (DOT signs with RSA only)
    "PKCE_REQUIRED": True,
    "ROTATE_REFRESH_TOKEN": True,  # every refresh returns a new refresh token, the old one is revoked
    "REFRESH_TOKEN_GRACE_PERIOD_SECONDS": 0,
    "ACCESS_TOKEN_EXPIRE_SECONDS": 3600,
    "REFRESH_TOKEN_EXPIRE_SECONDS": 30 * 86400,
    "AUTHORIZATION_CODE_EXPIRE_SECONDS": 60,
    "SCOPES": {"openid": "OpenID Connect", "email": "email", "profile": "profile",
               "offline_access": "refresh tokens", "api:read": "read", "api:write": "write",
               "introspection": "introspect tokens"},
    "DEFAULT_SCOPES": ["openid"],
    "OAUTH2_VALIDATOR_CLASS": "dotpeer.validator.BenchValidator",
}
