"""Traefik's constraint expressions (cases from Traefik's constraints_labels_test.go, plus errors)."""

import time

import pytest

from discover.constraints import parse_constraints

LABELS = {"hello": "world", "foo": "bar"}


@pytest.mark.parametrize(
    ("expr", "labels", "expected"),
    [
        ('Label("hello", "world")', LABELS, True),
        ('Label("hello", "worlds")', LABELS, False),
        ('Label("hi", "world")', LABELS, False),
        ('!Label("hello", "world")', LABELS, False),
        ('Label("hello", "world") && Label("foo", "bar")', LABELS, True),
        ('Label("hello", "worlds") && Label("foo", "bar")', LABELS, False),
        ('Label("hello", "world") && !Label("foo", "bar")', LABELS, False),
        ('Label("hello", "world") || Label("foo", "bar")', LABELS, True),
        ('Label("hello", "worlds") || Label("foo", "bar")', LABELS, True),
        ('Label("hello", "world") || !Label("foo", "bar")', LABELS, True),
        ('Label("hello", "bar")', {}, False),
        ("", LABELS, True),
        ("   ", {}, True),
        ('LabelRegex("hello", "w\\\\w+")', LABELS, True),
        ('LabelRegex("hello", "w\\\\w+s")', LABELS, False),
        ('LabelRegex("hi", "w\\\\w+")', LABELS, False),
        ('!LabelRegex("hello", "w\\\\w+")', LABELS, False),
        # Go's MatchString is a search, not a full match
        ("LabelRegex(`hello`, `orl`)", LABELS, True),
        ("LabelRegex(`hello`, `^orl`)", LABELS, False),
        # backquoted (raw) strings, as in Traefik's docs
        ("Label(`a.b`, `c`)", {"a.b": "c"}, True),
        ("LabelRegex(`x`, `\\d+`)", {"x": "v12"}, True),
        # && binds tighter than ||
        ("Label(`a`,`1`) || Label(`b`,`1`) && Label(`c`,`1`)", {"a": "1"}, True),
        ("(Label(`a`,`1`) || Label(`b`,`1`)) && Label(`c`,`1`)", {"a": "1"}, False),
        ("!(Label(`a`,`1`) || Label(`b`,`1`))", {"c": "1"}, True),
        ("!!Label(`a`,`1`)", {"a": "1"}, True),
        # Go escapes in interpreted strings
        ('Label("t", "a\\tb")', {"t": "a\tb"}, True),
        ('Label("t", "\\x41\\u00e9")', {"t": "Aé"}, True),
    ],
)
def test_matches(expr, labels, expected):
    assert parse_constraints(expr)(labels) is expected


@pytest.mark.parametrize(
    ("expr", "column", "fragment"),
    [
        ('Label("hello")', 1, "takes 2 arguments"),
        ('Foo("hello")', 1, "unknown function 'Foo'"),
        ("Label(`a`, `b`) &&", 19, "expected Label"),
        ("Label(`a`, `b`) Label(`c`, `d`)", 17, "expected '&&' or '||'"),
        ("(Label(`a`, `b`)", 17, "expected ')'"),
        ("Label(`a`, `b", 12, "unterminated string"),
        ('Label("a", "b)', 12, "unterminated string"),
        ("Label(`a`, `b`) & Label(`c`, `d`)", 17, "did you mean '&&'"),
        ("Label(a, `b`)", 7, "expected a string argument"),
        ("LabelRegex(`a`, `(`)", 17, "invalid regular expression"),
        ('Label("a", "\\q")', 13, "unknown escape"),
        ("Label", 6, "expected '(' after Label"),
        ("Label(`a`, `b`) && @", 20, "unexpected character '@'"),
        # RE2 refuses what Go's regexp refuses, with the reason
        ("LabelRegex(`a`, `(x)\\1`)", 17, "backreferences are not supported"),
        ("LabelRegex(`a`, `(?!x)`)", 17, "lookahead/lookbehind"),
        ("LabelRegex(`a`, `a{1001}`)", 17, "invalid repetition size"),
    ],
)
def test_errors_name_the_column(expr, column, fragment):
    with pytest.raises(ValueError) as info:
        parse_constraints(expr)
    msg = str(info.value)
    assert f"column {column}:" in msg
    assert fragment in msg


@pytest.mark.parametrize(
    ("expr", "labels", "expected"),
    [
        # Go's regexp semantics (RE2), not Python's re
        ("LabelRegex(`x`, `^a$`)", {"x": "a\n"}, False),  # $ is the end of the text
        ("LabelRegex(`x`, `^\\pL+$`)", {"x": "éa"}, True),  # Unicode classes
        ("LabelRegex(`x`, `\\d`)", {"x": "\u0663"}, False),  # \d is ASCII
        ("LabelRegex(`x`, `^$`)", {}, True),  # an absent label is the empty string
        ('Label("t", "\\xc3\\xa9")', {"t": "é"}, True),  # \x escapes are bytes, as in Go
    ],
)
def test_go_semantics(expr, labels, expected):
    assert parse_constraints(expr)(labels) is expected


def test_label_regex_is_linear_on_a_hostile_pattern():
    # Python's re takes seconds (and doubles per character) on this; RE2 is linear.
    match = parse_constraints("LabelRegex(`env`, `^(a|aa)+$`) || LabelRegex(`env`, `^(a+)+$`)")
    labels = {"env": "a" * 60 + "!"}
    start = time.perf_counter()
    assert match(labels) is False
    assert time.perf_counter() - start < 0.05
