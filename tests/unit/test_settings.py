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


def test_sections_and_flat_names_are_the_same_option():
    s = load_settings(env={"IDBROKER_CODE_TTL": "30"})
    assert s.tokens.code_ttl == 30 and s.code_ttl == 30
    s.code_ttl = 45
    assert s.tokens.code_ttl == 45
    s.mail.smtp_port = 2525
    assert s.smtp_port == 2525
    from idbroker.settings import Settings
    assert Settings.issuer == "http://127.0.0.1:8000"  # the class answers defaults


def test_each_section_reports_its_own_problems():
    from idbroker.settings import Settings
    s = Settings(code_ttl=0, smtp_port=0, mfa_policy="sometimes")
    assert any("code_ttl" in p for p in s.tokens.problems(s))
    assert s.mail.problems(s) == ["smtp_port must be a TCP port"]
    assert s.mfa.problems(s) == ["mfa_policy must be off, optional or required"]
    assert s.keys.problems(s) == []


def test_unknown_keyword_is_a_type_error():
    from idbroker.settings import Settings
    with pytest.raises(TypeError, match="nope"):
        Settings(nope=1)


def test_options_may_stand_in_any_table(tmp_path):
    cfg = tmp_path / "idbroker.toml"
    cfg.write_text('[anything.nested]\ncode_ttl = 30\n[mail]\nsmtp_port = 2525\nsignup_fields = ["given_name"]\n')
    s = load_settings(str(cfg), env={})
    assert s.code_ttl == 30 and s.mail.smtp_port == 2525 and s.signup.signup_fields == ["given_name"]


def test_arrays_of_tables_survive_loading(tmp_path):
    cfg = tmp_path / "idbroker.toml"
    cfg.write_text(
        '[[upstreams]]\nid = "google"\nkind = "google"\nclient_id = "abc"\n'
        '[[upstreams]]\nid = "corp"\nkind = "ldap"\nurl = "ldaps://ldap.example.com"\n'
        '[[migration.sources]]\nid = "old-pool"\nkind = "cognito"\nregion = "eu-west-1"\n')
    s = load_settings(str(cfg), env={})
    assert [u["id"] for u in s.upstreams] == ["google", "corp"]
    assert s.upstreams[1]["url"] == "ldaps://ldap.example.com"
    assert s.migration_sources == [{"id": "old-pool", "kind": "cognito", "region": "eu-west-1"}]


def test_bad_arrays_of_tables_are_reported_all_at_once(tmp_path):
    cfg = tmp_path / "idbroker.toml"
    cfg.write_text('code_ttl = "soon"\n[[upstreams]]\nid = "a b"\nkind = "oidc"\n[[upstreams]]\nid = "x"\n'
                   '[[upstreams]]\nid = "x"\nkind = "oidc"\n[[widgets]]\nid = "w"\n')
    with pytest.raises(SettingsError) as exc:
        load_settings(str(cfg), env={"IDBROKER_SMTP_PORT": "99999"})
    text = "\n".join(exc.value.problems)
    for expected in ("code_ttl must be int", "entry 1 needs an id", "entry 2 needs a kind",
                     "entry 3 repeats the id 'x'", "unknown list of tables [[widgets]]",
                     "smtp_port must be a TCP port"):
        assert expected in text, expected


def test_a_type_error_does_not_hide_the_other_problems():
    with pytest.raises(SettingsError) as exc:
        load_settings(env={"IDBROKER_ACCESS_TOKEN_TTL": "soon", "IDBROKER_ISSUER": "http://id.example.com",
                           "IDBROKER_MFA_POLICY": "sometimes"})
    text = "\n".join(exc.value.problems)
    assert "access_token_ttl must be int" in text and "https" in text and "mfa_policy" in text


def test_repr_never_shows_secrets():
    from idbroker.settings import Settings
    text = repr(Settings(secret_key="c2VjcmV0" * 8, smtp_password="hunter2", sms_webhook_secret="s3"))
    assert "hunter2" not in text and "c2VjcmV0" not in text and "s3'" not in text and "smtp_password='***'" in text
