"""The one grammar of rules and constraints: AST shape, precedence, columns, Go string literals."""

import pytest

from discover.goexpr import And, Arg, Call, GoExprError, Not, Or, decode_go_string, parse_expr


def call(name, col, *args):
    return Call(name, col, tuple(Arg(v, c) for v, c in args))


def test_ast_with_one_based_columns():
    node = parse_expr('Host(`a.test`) && !Path("/x")')
    assert node == And((call("Host", 1, ("a.test", 6)), Not(call("Path", 20, ("/x", 25)), 19)))


@pytest.mark.parametrize(
    ("src", "shape"),
    [
        # && binds tighter than ||; ! tighter than both
        ("A() || B() && C()", ("or", "A", ("and", "B", "C"))),
        ("A() && B() || C()", ("or", ("and", "A", "B"), "C")),
        ("(A() || B()) && C()", ("and", ("or", "A", "B"), "C")),
        ("!A() && B()", ("and", ("not", "A"), "B")),
        ("!(A() && B())", ("not", ("and", "A", "B"))),
        ("!!A()", ("not", ("not", "A"))),
        # chains are flat
        ("A() && B() && C()", ("and", "A", "B", "C")),
        ("A() || B() || C()", ("or", "A", "B", "C")),
        ("((A()))", "A"),
    ],
)
def test_precedence(src, shape):
    def show(n):
        if isinstance(n, Call):
            return n.name
        if isinstance(n, Not):
            return ("not", show(n.operand))
        return ("and" if isinstance(n, And) else "or", *map(show, n.operands))

    assert show(parse_expr(src)) == shape
    assert isinstance(parse_expr("A() || B()"), Or)


def test_call_arguments():
    node = parse_expr('F(`a`, "b\\tc",`d`)')
    assert node == call("F", 1, ("a", 3), ("b\tc", 8), ("d", 15))
    assert parse_expr("F()") == Call("F", 1, ())


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        ("`raw \\n stays`", "raw \\n stays"),
        ("`a\r\nb`", "a\nb"),  # Go drops carriage returns from raw strings
        ('"\\a\\b\\f\\n\\r\\t\\v\\\\\\""', '\a\b\f\n\r\t\v\\"'),
        ('"\\x41\\101\\u00e9\\U0001F600"', "AAé\U0001f600"),
        ('"\\xc3\\xa9"', "é"),  # \x escapes are bytes, as in Go: together they spell one character
        ('"caf\\303\\251"', "café"),
        ('""', ""),
    ],
)
def test_go_string_literals(literal, value):
    assert decode_go_string(literal) == value
    assert parse_expr(f"F({literal})").args[0].value == value


def test_invalid_utf8_bytes_survive_as_surrogate_escapes():
    value = decode_go_string('"\\xff"')
    assert value.encode("utf-8", "surrogateescape") == b"\xff"


@pytest.mark.parametrize(
    ("literal", "column", "words"),
    [
        ('"\\q"', 2, "unknown escape sequence '\\q'"),
        ('"\\x4"', 2, "expected 2 hexadecimal digits"),
        ('"\\u12"', 2, "expected 4 hexadecimal digits"),
        ('"\\ud800"', 2, "not a valid Unicode code point"),
        ('"\\U00110000"', 2, "not a valid Unicode code point"),
        ('"\\400"', 2, "octal"),
        ('"\\12"', 2, "octal"),
        ('"\\\'"', 2, "unknown escape"),  # \' is only valid in Go rune literals
        ('"abc', 1, "unterminated string"),
        ('"a\nb"', 1, "unterminated string"),  # interpreted strings cannot span lines
        ('"a"b', 4, "unexpected text"),
        ("'a'", 1, "not a Go string literal"),
    ],
)
def test_go_string_errors(literal, column, words):
    with pytest.raises(GoExprError) as info:
        decode_go_string(literal)
    assert info.value.column == column, str(info.value)
    assert words in info.value.message


@pytest.mark.parametrize(
    ("src", "column", "words"),
    [
        ("", 1, "empty rule"),
        ("F(`a`", 6, "expected ',' or ')' to close '(' at column 2, found end of rule"),
        ("(F()", 5, "expected ')' to close '(' at column 1"),
        ("F())", 4, "unbalanced parentheses"),
        ("F() G()", 5, "after a complete expression"),
        ("F() &&", 7, "unexpected end of rule; expected a matcher"),
        ("F() & G()", 5, "did you mean '&&'"),
        ("F() | G()", 5, "did you mean '||'"),
        ("F", 2, "expected '(' after F"),
        ("F(x)", 3, "expected a string argument"),
        ("F(`a` `b`)", 7, "expected ',' or ')'"),
        ("F('a')", 3, "quoted"),
        ("F() && #", 8, "unexpected character '#'"),
        ("F(`a", 3, "missing closing '`'"),
        ('F("a\\z")', 5, "unknown escape"),
    ],
)
def test_syntax_errors_name_the_column(src, column, words):
    with pytest.raises(GoExprError) as info:
        parse_expr(src, noun="rule", callee="a matcher")
    assert info.value.column == column, str(info.value)
    assert words in info.value.message
    assert str(info.value) == f"column {column}: {info.value.message}"


def test_errors_come_in_text_order():
    # the lexer is lazy: a syntax error before a bad character is the one reported
    with pytest.raises(GoExprError) as info:
        parse_expr("F() G() @")
    assert info.value.column == 5


def test_rules_and_constraints_share_the_grammar():
    """Both front ends report the grammar's error, at the same column."""
    from discover.constraints import parse_constraints
    from router.rules import RuleError, parse_rule

    for src in ("F(`a`) &", "(F(`a`)", 'F("\\q")', "F(`a` `b`)"):
        with pytest.raises(GoExprError) as grammar:
            parse_expr(src)
        with pytest.raises(RuleError) as rule:
            parse_rule(src)
        with pytest.raises(ValueError) as constraint:
            parse_constraints(src)
        assert rule.value.column == grammar.value.column
        assert f"column {grammar.value.column}: " in str(constraint.value)
