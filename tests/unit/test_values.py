"""The one boolean vocabulary and key lookup every configuration source shares."""

import pytest

from discover.values import find_key, parse_bool


@pytest.mark.parametrize("word", ["1", "t", "T", "TRUE", "true", "True", " true "])
def test_go_true_words(word: str) -> None:
    assert parse_bool(word) is True


@pytest.mark.parametrize("word", ["0", "f", "F", "FALSE", "false", "False"])
def test_go_false_words(word: str) -> None:
    assert parse_bool(word) is False


@pytest.mark.parametrize(
    "word", ["yes", "no", "on", "tRUE", "", "2", None, 2, 1.0, float("inf"), float("nan")]
)
def test_other_values_are_not_booleans(word: object) -> None:
    assert parse_bool(word) is None


def test_a_file_integer_is_read_as_its_text() -> None:
    assert parse_bool(1) is True and parse_bool(0) is False


def test_real_booleans_pass_through() -> None:
    assert parse_bool(True) is True and parse_bool(False) is False


def test_find_key_is_case_insensitive_and_returns_the_spelling_given() -> None:
    assert find_key({"PassHostHeader": 1, "other": 2}, "passhostheader") == "PassHostHeader"
    assert find_key(["a", "b"], "c") is None
