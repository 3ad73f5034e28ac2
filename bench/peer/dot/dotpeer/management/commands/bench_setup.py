"""Creates what ./bench/run measures, on a migrated database: the clients svc1 and web1 and the bench users.

    python manage.py bench_setup --svc1-secret S --web1-secret W --redirect-uri URI \
        --username 'bench{n}@example.com' --password P --users 32

svc1: confidential, client_credentials. web1: confidential, authorization code (+ PKCE, required by the
settings), refresh tokens, ID tokens RS256, first-party (skip_authorization: no consent page, as
idbroker's `clients add --first-party`). Client secrets are stored as given (hash_client_secret=False):
idbroker keeps a keyed HMAC of high-entropy client secrets, so neither server runs a slow password hash
on every token request. Users get one argon2id hash, computed once and reused (they share the password).
"""

from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand
from oauth2_provider.models import Application


class Command(BaseCommand):
    help = "create the bench clients and users"

    def add_arguments(self, parser):
        parser.add_argument("--svc1-secret", required=True)
        parser.add_argument("--web1-secret", required=True)
        parser.add_argument("--redirect-uri", required=True)
        parser.add_argument("--username", default="bench{n}@example.com")
        parser.add_argument("--password", required=True)
        parser.add_argument("--users", type=int, default=32)

    def handle(self, *args, **o):
        Application.objects.filter(client_id__in=["svc1", "web1"]).delete()
        Application.objects.create(
            client_id="svc1", client_secret=o["svc1_secret"], hash_client_secret=False, name="svc1",
            client_type=Application.CLIENT_CONFIDENTIAL, authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
            redirect_uris="", algorithm=Application.NO_ALGORITHM)
        Application.objects.create(
            client_id="web1", client_secret=o["web1_secret"], hash_client_secret=False, name="web1",
            client_type=Application.CLIENT_CONFIDENTIAL, authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
            redirect_uris=o["redirect_uri"], algorithm=Application.RS256_ALGORITHM, skip_authorization=True)
        hashed = make_password(o["password"])
        names = [o["username"].format(n=n) for n in range(o["users"])]
        User.objects.filter(username__in=names).delete()
        User.objects.bulk_create([User(username=n, email=n, password=hashed) for n in names], batch_size=5000)
        self.stdout.write(f"svc1, web1 and {len(names)} users created")
