"""The small parts of the AWS credentials work that need no store: the [credentials] settings,
the RoleSessionName and duration rules, rule matching, and the RFC 8252 §7.3 loopback redirect match."""

from __future__ import annotations

import pytest
from support import make_settings

from idbroker.credentials.aws import duration, session_name
from idbroker.credentials.base import CredentialRefused
from idbroker.credentials.roles import RoleError, Rule, check_role_arn
from idbroker.oauth2.authorize_checks import loopback_match
from idbroker.settings import SettingsError


@pytest.mark.parametrize("options, says", [
    ({"credentials_max_duration": 899}, "credentials_max_duration"),
    ({"credentials_max_duration": 43201}, "credentials_max_duration"),
    ({"aws_sts_endpoint": "http://sts.example.com"}, "aws_sts_endpoint"),
    ({"aws_region": "mars"}, "aws_region"),
    ({"aws_session_tags": ["team"]}, "TagKey=claim"),
    ({"aws_session_tags": ["team=groups"], "aws_transitive_tag_keys": ["dept"]}, "dept"),
    ({"credentials_audience": " "}, "credentials_audience"),
])
def test_credential_settings_are_checked(tmp_path, options, says):
    with pytest.raises(SettingsError) as caught:
        make_settings(tmp_path, **options)
    assert any(says in p for p in caught.value.problems)


def test_credential_settings_defaults(tmp_path):
    s = make_settings(tmp_path, aws_region="eu-west-3")
    assert s.credentials.sts_endpoint == "https://sts.eu-west-3.amazonaws.com"
    assert s.credentials_audience == "sts.amazonaws.com" and s.credentials_max_duration == 3600
    assert make_settings(tmp_path, aws_sts_endpoint="http://127.0.0.1:9/").credentials.sts_endpoint == \
        "http://127.0.0.1:9/"


def test_session_name_and_duration():
    assert session_name("a" * 80) == "a" * 64
    assert session_name("user|42 x") == "user-42-x" and session_name("x") == "x-"
    assert session_name("a/b:c*d") == "a-b-c-d" and session_name("zoë") == "zo-"
    assert duration(None, 7200) == 3600 and duration(None, 1800) == 1800 and duration("900", 900) == 900
    for bad in ("899", "901", "1e3", "", "-5"):
        with pytest.raises(CredentialRefused):
            duration(bad, 900)


def test_role_arns():
    for good in ("arn:aws:iam::123456789012:role/dev", "arn:aws:iam::123456789012:role/a/b/c-d",
                 "arn:aws-cn:iam::123456789012:role/x"):
        assert check_role_arn(good) == good
    for bad in ("arn:aws:iam::1234:role/x", "arn:aws:iam::123456789012:user/x", "role/x", "",
                "arn:aws:iam::123456789012:role/"):
        with pytest.raises(RoleError):
            check_role_arn(bad)


def test_rule_matching():
    everyone = Rule(1, "arn", None, None, (), 1)
    group = Rule(2, "arn", "groups", "dev", ("cli",), 1)
    flag = Rule(3, "arn", "email_verified", "true", (), 1)
    assert everyone.applies({}, "any")
    assert group.applies({"groups": ["ops", "dev"]}, "cli") and not group.applies({"groups": ["dev"]}, "web")
    assert not group.applies({"groups": ["developers"]}, "cli") and not group.applies({}, "cli")
    assert group.applies({"groups": "dev"}, "cli")
    assert flag.applies({"email_verified": True}, "x") and not flag.applies({"email_verified": False}, "x")


def test_loopback_redirect_ignores_only_the_port():
    registered = ["http://127.0.0.1/callback", "http://[::1]/cb", "https://app.example/cb"]
    assert loopback_match("http://127.0.0.1:49152/callback", registered)
    assert loopback_match("http://[::1]:8080/cb", registered)
    assert not loopback_match("http://127.0.0.1:49152/other", registered)
    assert not loopback_match("http://localhost:49152/callback", ["http://localhost/callback"])  # §8.3
    assert not loopback_match("https://app.example:444/cb", registered)
    assert not loopback_match("http://127.0.0.1:1/callback?x=1", registered)
