"""argon2id for user passwords with idbroker's configured parameters (DOT_ARGON2), so that a login costs
the peer the same hashing as idbroker."""

import os

from django.contrib.auth.hashers import Argon2PasswordHasher

_m, _t, _p = (int(x) for x in os.environ.get("DOT_ARGON2", "19456,2,1").split(","))


class BenchArgon2Hasher(Argon2PasswordHasher):
    algorithm = "argon2"
    memory_cost = _m
    time_cost = _t
    parallelism = _p
