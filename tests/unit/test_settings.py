import pytest

from idbroker.settings import SettingsError, load_settings


def test_defaults_are_valid(tmp_path):
    s = load_settings(env={})
    assert s.issuer == "http://127.0.0.1:8000" and s.signing_alg == "ES256"
    assert s.argon2_memory_kib == 19 * 1024 and s.argon2_time_cost == 2 and s.argon2_parallelism == 1


def test_toml_then_env_precedence(tmp_path):
    cfg = tmp_path / "idbroker.toml"
    cfg.write_text('issuer = "https://id.example.com"\n[tokens]\naccess_token_ttl = 600\ncode_ttl = 30\n')
    s = load_settings(str(cfg), env={"IDBROKER_ACCESS_TOKEN_TTL": "900"})
    assert s.issuer == "https://id.example.com" and s.access_token_ttl == 900 and s.code_ttl == 30


def test_every_problem_is_reported(tmp_path):
    env = {"IDBROKER_ISSUER": "ftp://x/", "IDBROKER_SIGNING_ALG": "HS256", "IDBROKER_ACCESS_TOKEN_TTL": "soon",
           "IDBROKER_NOPE": "1"}
    with pytest.raises(SettingsError) as exc:
        load_settings(env=env)
    text = "\n".join(exc.value.problems)
    assert "access_token_ttl must be int" in text and "unknown environment variable IDBROKER_NOPE" in text


def test_semantic_validation():
    with pytest.raises(SettingsError) as exc:
        load_settings(env={"IDBROKER_ISSUER": "http://id.example.com", "IDBROKER_SIGNING_ALG": "HS256",
                           "IDBROKER_CODE_TTL": "3600", "IDBROKER_SECRET_KEY": "c2hvcnQ"})
    problems = exc.value.problems
    assert any("https" in p for p in problems)
    assert any("signing_alg" in p for p in problems)
    assert any("code_ttl" in p for p in problems)
    assert any("secret_key" in p for p in problems)


def test_bad_toml_is_reported(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("issuer = \n")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(str(cfg), env={})
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(str(tmp_path / "missing.toml"), env={})


def test_generated_secret_key_is_persisted(tmp_path):
    s = load_settings(env={"IDBROKER_DATA_DIR": str(tmp_path)})
    s.ensure_secret_key()
    again = load_settings(env={"IDBROKER_DATA_DIR": str(tmp_path)})
    again.ensure_secret_key()
    assert s.secret_key == again.secret_key and len(s.secret_bytes()) == 32
    assert (tmp_path / "secret.key").stat().st_mode & 0o077 == 0
