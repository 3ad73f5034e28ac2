"""Legacy password hashers: one module per scheme family, each class filed in
`accounts.passwords.HASHERS`. A hasher recognises its own encoding and verifies a password against
it with the library that owns the primitive; it never makes new hashes (idbroker stores argon2id,
and replaces a legacy hash at the user's first successful sign-in).

Cost parameters come from imported data, so each hasher refuses parameters beyond sane bounds
(`common.py`) instead of letting one imported row cost minutes of CPU or gigabytes of memory."""
