"""Syntax-error tests: a catalogue of bad inputs, each mapped to its message and position."""
from __future__ import annotations

import pytest

from flowmetal import lang
from flowmetal.diagnostics import render
from flowmetal.errors import ParseError
from flowmetal.lang import IncompleteInput

# (source, message, line, col, incomplete?) -- incomplete means more input could complete the
# program, which is what the interactive shell uses to keep reading lines.
CATALOGUE = [
('diff <(a) b', 'process substitution `<(...)` is not supported: use a temporary file or a pipe', 1, 6, False),
('if a; fi', 'unexpected `fi`: `then` expected after the `if` condition', 1, 7, False),
('fi', 'unexpected `fi`: no `if` is open', 1, 1, False),
('echo ok\n  done', 'unexpected `done`: no `while`/`until`/`for` loop is open', 2, 3, False),
('esac', 'unexpected `esac`: no `case` is open', 1, 1, False),
('}', 'unexpected `}`: no `{` is open', 1, 1, False),
(')', 'unexpected `)`: no `(` is open', 1, 1, False),
('then', 'unexpected `then`: no `if` is open', 1, 1, False),
('else x', 'unexpected `else`: no `if` is open', 1, 1, False),
('do', 'unexpected `do`: no `while`/`until`/`for` loop is open', 1, 1, False),
('if a; then b; done', 'unexpected `done`: no `while`/`until`/`for` loop is open', 1, 15, False),
('while a; do b; fi', 'unexpected `fi`: no `if` is open', 1, 16, False),
('{ }', 'unexpected `}`: the `{ }` block is empty (bash requires at least one command; use `:` for a no-op)', 1, 3, False),
('if true; then\n  echo\n', 'expected `fi` to close the `if` opened at line 1 (the input ended first)', 1, 1, True),
('while true\ndo\n  a\n', 'expected `done` to close the `while` loop opened at line 1 (the input ended first)', 1, 1, True),
('a |', 'a command must follow `|` (the input ended first)', 1, 3, True),
('a &&', 'a command must follow `&&` (the input ended first)', 1, 3, True),
('a ||\n', 'a command must follow `||` (the input ended first)', 1, 3, True),
('| a', 'unexpected `|`: expected a command before it', 1, 1, False),
('x && || y', 'unexpected `||`: expected a command before it', 1, 6, False),
('; a', 'unexpected `;`: expected a command before it', 1, 1, False),
('echo "abc', 'unterminated double quote (opened here)', 1, 6, True),
("echo 'abc\nline2", 'unterminated single quote (opened here)', 1, 6, True),
('echo $(ls', 'unterminated `$(`: expected `)`', 1, 6, True),
('echo ${x', 'unterminated `${`: expected `}`', 1, 6, True),
('echo `ls', 'unterminated backquote (opened here)', 1, 6, True),
('cat <<EOF\nabc\n', 'here-document delimited by `EOF` is never closed', 1, 5, True),
('cat <<A <<B\nA\n', 'here-document delimited by `B` is never closed', 1, 9, True),
('echo >', 'expected a file name after `>`', 1, 6, True),
('echo > ;', 'expected a file name after `>`', 1, 8, False),
('cat <<', 'expected a delimiter word after `<<`', 1, 5, True),
("echo $'abc", "unterminated `$'` string (opened here)", 1, 6, True),
('case x in a) b;; ', 'expected `esac` to close the `case` opened at line 1 (the input ended first)', 1, 1, True),
('case x y', 'unexpected `y`: `in` expected after `case WORD`', 1, 8, False),
('for 1 in a; do :; done', '`for` needs a variable name, not `1`', 1, 5, False),
('for x in a b; echo; done', 'unexpected `echo`: `do` expected after the `for` list', 1, 15, False),
('f() echo', 'a function body must be a compound command such as `{ ...; }`', 1, 5, False),
('try { a; }', '`try { ... }` needs a `catch { ... }` or `finally { ... }` block', 1, 11, True),
('try { a; } ; b', '`try { ... }` must be followed by `catch { ... }` or `finally { ... }`', 1, 12, False),
('catch { a; }', 'unexpected `catch`: it must follow the `}` of a `try { ... }` block', 1, 1, False),
('echo (a)', 'unexpected `(` after `echo`: quote it if it is an argument (a function is defined as `echo() { ...; }`)', 1, 6, False),
('[[ a ', 'unterminated `[[`: expected `]]`', 1, 1, True),
('[[ ]]', 'empty `[[ ]]`: expected an expression', 1, 1, False),
('[[ a == ]]', 'unexpected `]]`: expected an operand after `==`', 1, 9, False),
('[[ -f ]]', 'expected an operand after `-f`', 1, 7, False),
('[[ a b ]]', 'unexpected `b` inside `[[ ]]`: expected a binary operator such as `==`, `-eq` or `]]`', 1, 6, False),
('((1+', 'unterminated `((`: expected `))`', 1, 1, True),
('echo ${!x}', 'indirect expansion `${!name}` is not supported: use an associative array (`declare -A`) instead', 1, 6, False),
('echo ${x;}', 'bad substitution: unexpected `;` in `${...}`', 1, 9, False),
('echo ${}', 'bad substitution: expected a parameter name after `${`', 1, 6, False),
('x=(a b', 'unterminated array literal: expected `)`', 1, 3, True),
('x=(a ; b)', 'unexpected `;` in an array literal', 1, 6, False),
('a;;', 'unexpected `;;`: it can only end a `case` arm', 1, 2, False),
('if a; then b; fi fi', 'unexpected `fi`: no `if` is open', 1, 18, False),
('(a', 'expected `)` to close the `(` opened at line 1 (the input ended first)', 1, 1, True),
('echo $(if a)', 'unexpected `)`: `then` expected after the `if` condition', 1, 12, False),
('for ((i=0;i<3)); do :; done', '`for ((...))` needs three expressions separated by `;`', 1, 5, False),
('{ echo }', 'expected `}` to close the `{` opened at line 1 (the input ended first)', 1, 1, True),
('function "f" { :; }', 'invalid function name `"f"`: use a plain unquoted word', 1, 10, False),
('a[1]=(x)', 'cannot assign a list to an array element', 1, 1, False),
('if then fi', 'unexpected `then`: the `if` condition is empty', 1, 4, False),
('while do done', 'unexpected `do`: the `while` condition is empty', 1, 7, False),
('{ a; } b', 'unexpected `b` after `}`: separate commands with `;` or a newline', 1, 8, False),
('[[ a ]] b', 'unexpected `b` after `[[ a ]]`: separate commands with `;` or a newline', 1, 9, False),
('echo a\\', 'a `\\` at the end of the input continues the line', 1, 7, True),
('a=1 (b)', 'unexpected `(`: quote it, or start a subshell on its own line', 1, 5, False),
('echo ${x:-', 'unterminated `${`: expected `}`', 1, 6, True),
('f() {\n  echo\n', 'expected `}` to close the `{` opened at line 1 (the input ended first)', 1, 5, True),
('case x in\n a) b;;\n  c\n', '`)` expected after the `case` pattern `c`', 3, 4, False),
('! ', 'a command must follow `!` (the input ended first)', 1, 1, True),
('for x in a; do :; done done', 'unexpected `done`: no `while`/`until`/`for` loop is open', 1, 24, False),
]


@pytest.mark.parametrize("src,message,line,col,incomplete", CATALOGUE,
                         ids=[repr(c[0])[:40] for c in CATALOGUE])
def test_catalogue(src, message, line, col, incomplete):
    with pytest.raises(ParseError) as info:
        lang.parse(src, "bad.fm")
    e = info.value
    assert e.message == message
    assert (e.line, e.col) == (line, col)
    assert isinstance(e, IncompleteInput) is incomplete
    assert e.filename == "bad.fm" and e.text == src
    assert 0 <= e.start <= e.end <= len(src) + 1
    # The position agrees with the offsets, and the diagnostic renders.
    before = src[:e.start]
    assert line == before.count("\n") + 1 and col == e.start - (before.rfind("\n") + 1) + 1
    out = render(e.filename, e.text, e.start, e.end, e.line, e.col, e.message)
    assert out.startswith(f"fm: bad.fm:{line}:{col}: error: ")


def test_catalogue_is_big_enough():
    assert len(CATALOGUE) >= 25


def test_error_points_at_the_offending_token():
    src = "if true; then\n  echo hi\nfi\nwhile x; do\n  y\nfi\n"
    with pytest.raises(ParseError) as info:
        lang.parse(src, "f.fm")
    e = info.value
    assert src[e.start:e.end] == "fi" and (e.line, e.col) == (6, 1)
    assert e.message == ("unexpected `fi`: expected `done` to close the `while` loop opened at "
                         "line 4") or e.message == "unexpected `fi`: no `if` is open"


def test_mismatched_closer_names_the_open_construct():
    with pytest.raises(ParseError) as info:
        lang.parse("if a; then\n  while b; do\n    c\n  fi\nfi", "f.fm")
    assert info.value.message == ("unexpected `fi`: expected `done` to close the `while` loop "
                                  "opened at line 2")
    with pytest.raises(ParseError) as info:
        lang.parse("while a\ndo\n  if b; then c; done", "f.fm")
    assert info.value.message == ("unexpected `done`: expected `fi` to close the `if` opened at "
                                  "line 3")


def test_errors_inside_command_substitution_point_into_the_original_text():
    src = "echo ok\nx=$(echo \"$(fi)\")"
    with pytest.raises(ParseError) as info:
        lang.parse(src, "f.fm")
    e = info.value
    assert src[e.start:e.end] == "fi" and e.line == 2
    src = "echo `echo \\`fi\\``"
    with pytest.raises(ParseError) as info:
        lang.parse(src, "f.fm")
    assert src[info.value.start:info.value.end] == "fi"


@pytest.mark.parametrize("src", [
    "if true; then", "if true; then\n", "while :; do echo", "for x in a b", "case $x in",
    "case $x in a)", "{ a", "( a", "a |", "a &&", "a ||", "echo \"a", "echo 'a", "echo $(a",
    "echo ${a", "echo `a", "cat <<EOF", "cat <<EOF\nbody", "x=(a", "[[ -n a", "((x",
    "echo $((1", "f() {", "try {", "try { a; }", "try { a; } catch {", "echo a \\\n",
    "function f", "echo \"$(echo 'a", "if a; then b; else",
])
def test_incomplete_input(src):
    with pytest.raises(IncompleteInput):
        lang.parse(src, "<stdin>")


@pytest.mark.parametrize("src", [
    "fi", "if a; fi", "a ;; b", "echo )", "{ }", "| a", "[[ ]]", "echo ${x;}", "f() echo",
    "case x in a) b;;\n c\n", "echo > ;", "x=(a ; b)",
])
def test_complete_but_wrong_input_is_not_incomplete(src):
    with pytest.raises(ParseError) as info:
        lang.parse(src, "<stdin>")
    assert not isinstance(info.value, IncompleteInput)


def test_deep_nesting_is_a_parse_error_not_a_crash():
    for src in ["$(" * 3000, "echo " + "${x:-" * 3000, "[[ " + "( " * 5000,
                "echo " + "{a," * 3000 + "}" * 3000, "{ " * 5000, "(" * 5000, "if " * 5000,
                "echo " + '"$(' * 1000, "`" * 1001, "! " * 3000 + "(" * 3000]:
        with pytest.raises(ParseError):
            lang.parse(src, "deep.fm")
