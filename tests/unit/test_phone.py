import pytest

from idbroker.phone import is_e164, normalise_phone


@pytest.mark.parametrize("raw, expected", [
    ("+44 20 7946 0958", "+442079460958"),
    ("+1 (555) 555-0100", "+15555550100"),
    ("0033 6 12 34 56 78", "+33612345678"),
    ("+49/30/123456", "+4930123456"),
    ("+683 4002", "+6834002"),
    ("+1.555.555.0100", "+15555550100"),
])
def test_accepted_numbers_become_e164(raw, expected):
    assert normalise_phone(raw) == expected
    assert is_e164(expected)


@pytest.mark.parametrize("raw", [
    "", None, "notaphone", "020 7946 0958", "+0 555 0100", "+12345", "+1234567890123456",
    "+44 20 7946 0958 ext 2", "+44\x0020", "+4420794609５8", "+" + "1" * 39 + "0",
    " " * 30 + "+44 20 7946 0958",
])
def test_refused_input(raw):
    assert normalise_phone(raw) is None
