"""discover.readers.one_of: the one reader of Traefik's enumerated keys (healthCheck scheme, sticky
sameSite, ruleSyntax, traceVerbosity), read through the dynamic configuration parser."""

from __future__ import annotations

import pytest

from discover.parse import ConfigError, parse_dynamic
from discover.readers import At, one_of


def _router(**extra):
    return {"http": {"routers": {"a": {"rule": "r", "service": "s", **extra}}}}


def _service(**lb_extra):
    return {"http": {"services": {"s": {"loadBalancer": {"servers": [{"url": "http://b"}], **lb_extra}}}}}


@pytest.mark.parametrize(
    "data, message",
    [
        (_service(healthCheck={"scheme": "ftp"}), "must be http or https, got 'ftp'"),
        (
            _service(sticky={"cookie": {"sameSite": "sometimes"}}),
            "must be none, lax or strict, got 'sometimes'",
        ),
        (_router(ruleSyntax="v9"), "must be v2 or v3"),
        (
            {
                "http": {
                    "routers": {"a": {"rule": "r", "service": "s", "observability": {"traceVerbosity": "x"}}}
                }
            },
            "must be minimal or detailed, got 'x'",
        ),
    ],
)
def test_a_word_outside_the_choices_is_refused_naming_them(data, message):
    with pytest.raises(ConfigError) as info:
        parse_dynamic(data)
    assert message in str(info.value)


def test_any_case_is_read_lower_cased_and_empty_only_where_it_is_a_choice():
    assert one_of("HTTPS", At("k"), ("http", "https")) == "https"
    assert one_of("", At("k"), ("", "none", "lax", "strict")) == ""
    with pytest.raises(ConfigError, match="must not be empty"):
        one_of("", At("k"), ("http", "https"))
    with pytest.raises(ConfigError, match="expected a string"):
        one_of(["http"], At("k"), ("http", "https"))
