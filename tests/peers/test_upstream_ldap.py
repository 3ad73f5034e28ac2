"""The ``ldap`` upstream kind (federation/ldap.py) against a real, throwaway OpenLDAP slapd
(slapd.py): service-account search then user bind, groups (nested ones resolved), the same answer
for a wrong password and an unknown user, filter injection, empty passwords, a refused service
account, and a directory that is hung or down, each bounded by the timeout. Every wait is bounded."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from slapd import PASSWORD, SERVICE_DN, SERVICE_PASSWORD, SLAPD, SUFFIX, Slapd

from idbroker.federation.base import UpstreamConfig, UpstreamUnavailable
from idbroker.federation.kinds import UPSTREAMS
from idbroker.federation.ldap import UNAVAILABLE, LdapAuthority

pytestmark = [pytest.mark.peers,
              pytest.mark.skipif(not SLAPD.exists(), reason=f"{SLAPD} is missing (apt install slapd)")]

TIMEOUT = 1.0


def authority(url: str, **options: object) -> LdapAuthority:
    values = dict(url=url, bind_dn=SERVICE_DN, bind_password=SERVICE_PASSWORD, base_dn=SUFFIX,
                  group_base_dn=f"ou=groups,{SUFFIX}", timeout=TIMEOUT)
    values.update(options)
    return UPSTREAMS["ldap"](UpstreamConfig(id="corp", kind="ldap", name="Corp", options=values))  # type: ignore[return-value]


def running(tmp: Path) -> Slapd:
    server = Slapd(tmp)
    server.start()
    server.load()
    return server


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    server = running(tmp_path_factory.mktemp("slapd"))
    try:
        yield server
    finally:
        server.stop()


def test_right_password_gives_the_entry_with_its_groups_nested_ones_included(directory: Slapd) -> None:
    identity = authority(directory.url, group_mode="groupOfNames").authenticate("alice", PASSWORD)
    assert identity is not None
    assert identity.provider_id == "corp"
    assert len(identity.subject) == 36 and identity.subject.count("-") == 4  # entryUUID, not the DN
    assert identity.email == "alice@example.org" and identity.email_verified is False
    assert identity.claims == {"preferred_username": "alice", "name": "Alice Liddell", "given_name": "Alice",
                               "family_name": "Liddell"}
    assert identity.groups == ("admins", "everyone", "staff")  # staff ⊂ everyone ⇄ admins (a cycle)
    by_mail = authority(directory.url, group_mode="groupOfNames", email_verified="true")
    again = by_mail.authenticate("alice@example.org", PASSWORD)
    assert again is not None and again.subject == identity.subject and again.email_verified is True


def test_member_of_gives_direct_groups_and_claims_map_to_other_attributes(directory: Slapd) -> None:
    identity = authority(directory.url, claims={"name": "cn", "nickname": "uid"}).authenticate("bob", PASSWORD)
    assert identity is not None
    assert identity.groups == ("everyone",)
    assert identity.email is None and identity.email_verified is False
    assert identity.claims == {"preferred_username": "bob", "name": "bob", "family_name": "Builder", "nickname": "bob"}


def test_wrong_password_and_unknown_user_are_the_same_none(directory: Slapd) -> None:
    ldap = authority(directory.url, email_verified="false")  # as the CLI may store it
    assert ldap.authenticate("alice", "wrong " + PASSWORD) is None
    assert ldap.authenticate("nobody", PASSWORD) is None
    identity = ldap.authenticate("alice", PASSWORD)  # the shared connection is still good
    assert identity is not None and identity.email_verified is False


def test_a_login_is_a_value_not_a_filter(directory: Slapd) -> None:
    ldap = authority(directory.url)
    for login in ("*)(uid=*", "*", "al*", "alice)(uid=nobody", "alice)(|(uid=*", "alice\\", "alice\x00"):
        assert ldap.authenticate(login, PASSWORD) is None, login


def test_an_ambiguous_login_is_refused(directory: Slapd, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "idbroker.federation"):
        assert authority(directory.url).authenticate("shared@example.org", PASSWORD) is None
    assert "matched 2 entries" in caplog.text


def test_an_empty_password_is_refused_before_any_bind(directory: Slapd) -> None:
    # RFC 4513 §5.1.2: a DN with an empty password is an unauthenticated bind, which succeeds.
    ldap = authority(directory.url)
    assert ldap.authenticate("alice", "") is None
    assert ldap._service is None  # nothing was asked


def test_a_refused_service_account_is_unavailable_and_its_password_not_logged(
        directory: Slapd, caplog: pytest.LogCaptureFixture) -> None:
    wrong = "the-service-password-that-is-wrong"
    with caplog.at_level(logging.DEBUG), pytest.raises(UpstreamUnavailable) as raised:
        authority(directory.url, bind_password=wrong).authenticate("alice", PASSWORD)
    assert raised.value.message == UNAVAILABLE
    assert "invalidCredentials" in raised.value.detail and SERVICE_DN in caplog.text
    for secret in (wrong, PASSWORD):
        assert secret not in caplog.text and secret not in raised.value.detail


def test_a_hung_then_stopped_directory_is_unavailable_within_the_timeout(tmp_path: Path) -> None:
    server = running(tmp_path)
    try:
        ldap = authority(server.url)
        assert ldap.authenticate("alice", PASSWORD) is not None
        for fault in (server.pause, server.stop):
            fault()
            began = time.monotonic()
            with pytest.raises(UpstreamUnavailable) as raised:
                ldap.authenticate("alice", PASSWORD)
            assert raised.value.message == UNAVAILABLE
            assert time.monotonic() - began < 4 * TIMEOUT + 1, fault.__name__
        server.start()  # back again: the stale shared connection is replaced
        assert ldap.authenticate("alice", PASSWORD) is not None
    finally:
        server.stop()


@pytest.mark.parametrize("url", ["ldap://ldap.example.com", "ldap://10.0.0.5:389", "http://127.0.0.1"])
def test_plain_ldap_is_for_loopback_only(url: str) -> None:
    with pytest.raises(ValueError):
        authority(url)
    assert authority("ldap://ldap.example.com", start_tls=True).server.host == "ldap.example.com"
    assert authority("ldaps://ldap.example.com").server.ssl
    assert authority("ldap://127.0.0.2:3890").server.port == 3890
