"""Words the broker shows, below every layer that shows them: the message-id marker `N_` and
the languages the catalogs cover (`SUPPORTED`, `match`). The catalogs themselves and the choice
of a request's language live in web/i18n.py; domain code only marks its messages here."""

from __future__ import annotations


def N_(message: str) -> str:  # noqa: N802 - the gettext_noop marker the extractor looks for
    """Marks a message id for extraction; translated where it is shown."""
    return message


# Web tag -> Babel locale identifier, in selector order.
SUPPORTED = {"en": "en", "fr": "fr", "de": "de", "nl": "nl", "ja": "ja", "es": "es", "pt-BR": "pt_BR",
             "it": "it", "zh-Hans": "zh_Hans", "ar": "ar", "he": "he"}
_LOOKUP = {tag.lower(): tag for tag in SUPPORTED}
# Bare languages that map to a supported regional/script variant.
_LOOKUP.update({"pt": "pt-BR", "zh": "zh-Hans", "zh-cn": "zh-Hans", "zh-sg": "zh-Hans",
                "iw": "he"})  # "iw": Hebrew's withdrawn ISO 639 code, still sent by old Java/Android


def match(tag: str | None) -> str | None:
    """A supported tag for a BCP 47 tag, or None."""
    if not tag:
        return None
    tag = tag.strip().replace("_", "-").lower()
    if tag in _LOOKUP:
        return _LOOKUP[tag]
    base = tag.split("-")[0]
    return _LOOKUP.get(base)
