"""Tests for flowmetal.machine.printf: bash's printf builtin, %q and echo -e escapes."""
from __future__ import annotations

import os
import random
import shlex
import subprocess
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowmetal.connectors.clock import format_time
from flowmetal.machine.printf import echo_escapes, format, is_warning, shell_quote

BASH = "/bin/bash"
SEP = "\x1f@@"


def _q(s: str) -> str:
    return shlex.quote(s)


def run_bash(script: str) -> str:
    env = dict(os.environ, LC_ALL="C.UTF-8")
    out = subprocess.run([BASH], input=script.encode("utf-8", "surrogateescape"),
                         capture_output=True, env=env, timeout=60)
    return out.stdout.decode("utf-8", "surrogateescape")


def bash_printf_many(cases: list[tuple[str, list[str]]]) -> list[tuple[str, int]]:
    """Run every `printf fmt args...` in one bash; (output, status) for each."""
    lines = []
    for fmt, args in cases:
        cmd = " ".join(["printf", "--", _q(fmt)] + [_q(a) for a in args])
        lines.append(f"{cmd} 2>/dev/null; printf '{SEP}%d{SEP}' $?")
    raw = run_bash("\n".join(lines))
    parts = raw.split(SEP)
    results = []
    for k in range(len(cases)):
        results.append((parts[2 * k], int(parts[2 * k + 1])))
    return results


def local_strftime(timefmt: str, at) -> str:
    """What the connector answers for a %(...)T of a job without TZ (bash runs in this
    process's zone too)."""
    return format_time(time.time() if at is None else at, timefmt)


def ours(fmt: str, args: list[str]) -> tuple[str, int]:
    out, msgs = format(fmt, args, strftime=local_strftime)
    status = 1 if any(not is_warning(m) for m in msgs) else 0
    return out, status


def compare(cases):
    expected = bash_printf_many(cases)
    mismatches = []
    for (fmt, args), exp in zip(cases, expected):
        got = ours(fmt, args)
        if got != exp:
            mismatches.append((fmt, args, got, exp))
    return mismatches


# -- table -----------------------------------------------------------------------------------

TABLE: list[tuple[str, list[str]]] = [
    ("%.20f", ["0.1"]), ("%a", ["0.1"]), ("%a", ["1"]), ("%A", ["-2.5"]), ("%.3a", ["0.1"]),
    ("%a", ["0"]), ("%e", ["0"]), ("%g", ["100000"]), ("%g", ["1000000"]), ("%g", ["0.0001"]),
    ("%g", ["0.00001"]), ("%#g", ["1"]), ("%.0f", ["0.5"]), ("%.0f", ["2.5"]),
    ("%.0f", ["1.5"]), ("%f", ["-0"]), ("%f", ["inf"]), ("%F", ["-inf"]), ("%f", ["nan"]),
    ("%f", ["-nan"]), ("%f", ["1.5abc"]), ("%d", ["12abc"]), ("%d", ["abc"]), ("%d", [""]),
    ("%d", [" 12"]), ("%d", ["12 "]), ("%d", ["0x1F"]), ("%d", ["010"]), ("%d", ["08"]),
    ("%d", ["'A"]), ("%d", ['"é']), ("%d", ["'"]), ("%d", ["99999999999999999999"]),
    ("%d", ["-99999999999999999999"]), ("%u", ["-1"]), ("%x", ["-1"]), ("%o", ["8"]),
    ("%#o", ["8"]), ("%#x", ["0"]), ("%#x", ["255"]), ("%#X", ["255"]), ("%05s", ["ab"]),
    ("%-5s|", ["ab"]), ("%.1s", ["abc"]), ("%5.1s", ["abc"]), ("%c", ["abc"]), ("%c", [""]),
    ("%c", []), ("%5c", ["x"]), ("%.0d", ["0"]), ("%.3d", ["5"]), ("%05.3d", ["5"]),
    ("%+d", ["5"]), ("% d", ["5"]), ("%+ d", ["5"]), ("%-05d", ["5"]), ("%*d", ["5", "3"]),
    ("%-*d", ["5", "3"]), ("%*d", ["-5", "3"]), ("%.*f", ["2", "3.14159"]),
    ("%.*f", ["-2", "3.14159"]), ("%s %s", ["a"]), ("%s", []), ("x", []), ("x", ["a", "b"]),
    ("%s-%s;", ["a", "b", "c"]), ("[%z]", ["a"]), ("ab%", []), ("ab%-5", []),
    ("%ld %lld %hd", ["1", "2", "3"]), ("%i", ["42"]), ("%%", []), ("%5%", []),
    ("%b", ["a\\nb"]), ("%b", ["a\\cb", "c"]), ("%s\\c", ["a"]),
    ("%b", ["\\101\\0101\\x41\\u00e9\\e"]), ("\\101\\0101\\x41\\u00e9", []),
    ("\\q\\\"\\'\\?", []), ("%b", ["\\q\\\"\\?\\'"]), ("%s", ["a\\nb"]), ("%e", ["1e300000"]),
    ("%f", ["0x1.8p1"]), ("%d", ["1.5"]), ("%d", ["+5"]), ("%d", ["-0x10"]),
    ("%5.2e", ["12345.678"]), ("%G", ["1e-10"]), ("%g", ["123456789"]),
    ("%.3g", ["0.0001234"]), ("%#.3g", ["1"]), ("%#.0f", ["1"]), ("%#.0e", ["1"]),
    ("%x", ["'a"]), ("%f", ["'a"]), ("%5b", ["a\\tb"]), ("\\x", []), ("\\xg", []),
    ("\\u", []), ("\\777", []), ("%b", ["\\0"]), ("%b", ["\\1234"]), ("%b", ["\\01234"]),
    ("%b", ["\\x"]), ("%b", ["\\u"]), ("%b", ["\\08"]), ("%b", ["\\8"]), ("%.0a", ["15.9"]),
    ("%.1a", ["15.99"]), ("%a", ["1e-4940"]), ("%a", ["3"]), ("%La", ["3"]),
    ("%e", ["1e-5000"]), ("%f", ["1e-5000"]), ("%g", ["1e4932"]), ("%g", ["1e4933"]),
    ("%u", ["18446744073709551616"]), ("%u", ["-18446744073709551616"]),
    ("%u", ["-99999999999999999999"]), ("%d", ["0x"]), ("%d", ["'ab"]), ("%d", [" -12"]),
    ("%d", ["- 12"]), ("%010.2f", ["-3.14159"]), ("%010f", ["inf"]), ("%-10f|", ["nan"]),
    ("%+f", ["1"]), ("% e", ["1"]), ("%+x", ["5"]), ("% u", ["5"]), ("%#.0o", ["0"]),
    ("%#5x", ["10"]), ("%#05x", ["10"]), ("%#g", ["0"]), ("%g", ["0"]), ("%.0g", ["123"]),
    ("%.0e", ["5.5"]), ("%.0e", ["6.5"]), ("%.15g", ["0.1"]), ("%.25g", ["0.1"]),
    ("%.30f", ["1e-20"]), ("%g", ["1e-5"]), ("%G", ["1e100"]), ("%.40e", ["1"]),
    ("%f", ["1e20"]), ("%f", ["123456789012345678901234567890"]), ("%f", ["0x1p-3"]),
    ("%f", ["1.e2"]), ("%f", [".5"]), ("%f", ["  .5"]), ("%f", ["1e"]), ("%f", ["1e+"]),
    ("%f", ["Infinity"]), ("%f", ["infinit"]), ("%f", ["NaN"]), ("%f", ["nan(123)"]),
    ("%f", ["-"]), ("%f", [""]), ("%10.4s|", ["abcdefg"]), ("%c", ["1234"]), ("%d%s", []),
    ("%.3s", []), ("%q", []), ("%5q|", []), ("%b%b", ["a\\cb", "x"]),
    ("a%sb\\n", ["1", "2", "3"]), ("%*.*f", ["8", "2", "3.14159"]), ("%*s|", ["abc", "x"]),
    ("%010a", ["-1"]), ("%-8.3a|", ["2"]), ("%A", ["0x1.fffffffffffffffep0"]),
    ("%.2e", ["9.995"]), ("%.2e", ["9.996"]), ("%.3f", ["-0.0005"]), ("%.1f", ["0.25"]),
    ("%.1f", ["0.35"]), ("%g", ["1e-4"]), ("%g", ["9.9999999e-5"]), ("%g", ["999999.5"]),
    ("%.2g", ["99.5"]), ("%#x %#o", ["0", "0"]), ("%s %d %s", ["a", "1"]),
    ("%(%Y-%m-%d)T", ["1000000000"]), ("%(%H:%M)T|%s", ["43200", "x"]),
    ("%20(%Y)T|", ["86400000"]), ("\\U0001F600 \\u00e9", []), ("%b", ["\\U0001F600"]),
    ("%b", ["\\303\\251"]), ("\\303\\251", []), ("%d %d", ["'é", "'\udcff"]),
    ("%s", ["\udcff"]), ("\\e[1m%s\\e[0m", ["bold"]), ("%-3d|%3d|", ["7", "-7"]),
    ("%o %X", ["511", "48879"]), ("%.5d", ["-42"]), ("%+.5d", ["42"]), ("% 08.3f", ["3.5"]),
    ("%+08d", ["-5"]), ("%08.3d", ["-5"]), ("%-+8d|", ["5"]), ("%x", ["0x"]),
    ("%d", ["0X1f"]), ("%d", ["  +0x1f"]), ("%s", ["%d"]), ("%5.5", []),
]


def test_table_matches_bash():
    mismatches = compare(TABLE)
    assert not mismatches


# -- random formats --------------------------------------------------------------------------

NUM_ARGS = ["0", "1", "-1", "7", "42", "-42", "255", "0x1f", "-0x10", "017", "'a", "3.5",
            "-2.25", "1e3", "0.1", "1e-7", "123456.789", "abc", "12x", "", " 5", "inf", "-nan",
            "1e400", "0.0005", "2.5", "99.99", "1e15", "6.02214076e23", "1e-320", "0x1.8p-2"]
# (no huge integers: as a `*` width bash would print gigabytes of padding)
STR_ARGS = ["", "a", "hello", "a b", "x\\ny", "it's", "\\t", "a*b", "$HOME", "~x", "#c",
            "-", "--", "\\c", "100%", "\\0101", "\\x41"]


def gen_spec(r: random.Random) -> str:
    conv = r.choice("sbqdiuoxXcfFeEgGaA")
    flags = "".join(r.sample("-+ #0", r.randint(0, 3)))
    width = r.choice(["", "", "1", "5", "12", "*"])
    prec = r.choice(["", "", ".", ".0", ".1", ".3", ".10", ".*"])
    return f"%{flags}{width}{prec}{conv}"


def gen_case(r: random.Random) -> tuple[str, list[str]]:
    specs = [gen_spec(r) for _ in range(r.randint(1, 3))]
    fmt = r.choice(["", "<", "x="]) + "|".join(specs) + r.choice(["", "\\n", ">"])
    args = []
    for _ in range(r.randint(0, 5)):
        args.append(r.choice(NUM_ARGS) if r.random() < 0.6 else r.choice(STR_ARGS))
    return fmt, args


def test_random_formats_match_bash():
    r = random.Random(7)
    cases = [gen_case(r) for _ in range(1500)]
    mismatches = compare(cases)
    assert not mismatches[:10]


# -- behaviour details -----------------------------------------------------------------------

def test_messages():
    assert format("%d", ["abc"]) == ("0", ["printf: `abc`: invalid number"])
    assert format("%d", ["12abc"]) == ("12", ["printf: `12abc`: invalid number"])
    assert format("%d", ["08"]) == ("0", ["printf: `08`: invalid octal number"])
    assert format("%d", ["0x"]) == ("0", ["printf: `0x`: invalid hex number"])
    out, msgs = format("%d", ["99999999999999999999"])
    assert out == "9223372036854775807" and all(is_warning(m) for m in msgs)
    assert format("a%yb", []) == ("a", ["printf: `y`: invalid format character"])
    assert format("%*d", ["99999999999", "1"])[1][-1] == \
        "printf: width or precision larger than 1048576"
    assert format("ab%", []) == ("ab", ["printf: `%`: missing format character"])
    assert format("\\x", []) == ("\\x", ["printf: warning: missing hex digit for \\x"])
    assert is_warning("printf: warning: x") and not is_warning("printf: `x`: invalid number")


def test_format_reuse_and_missing_args():
    assert format("%s=%d;", ["a", "1", "b"]) == ("a=1;b=0;", [])
    assert format("x\\n", ["ignored"]) == ("x\n", [])
    assert format("%s", []) == ("", [])
    assert format("[%s|%d|%q]", []) == ("[|0|'']", [])


def test_b_stop_ends_all_output():
    assert format("%s %b %s\\n", ["a", "b\\cx", "c", "d", "e"]) == ("a b", [])


def test_bytes_become_surrogate_escapes():
    out, _ = format("\\377\\303\\251", [])
    assert out == "\udcffé"


def test_time_conversions_ask_the_caller():
    asked = []

    def strftime(timefmt, at):
        asked.append((timefmt, at))
        return f"<{len(asked)}>"
    out, msgs = format("%(%s)T %()T|%5(%Y)T|%.1(%Y)T|", ["-1", "", "0", "-2", "7"],
                       strftime=strftime)
    assert msgs == [] and out == "<1> <2>|  <3>|<|<5> <6>|  <7>|<|"
    # -1, -2 and a missing or empty argument are "now" (None); format reuse asks again
    assert asked == [("%s", None), ("%X", None), ("%Y", 0), ("%Y", None), ("%s", 7),
                     ("%X", None), ("%Y", None), ("%Y", None)]


def test_time_conversion_without_a_strftime_is_a_bug():
    with pytest.raises(ValueError):
        format("%(%s)T", [])


def test_characters_not_bytes():
    # deliberate: fm counts characters where bash counts bytes
    assert format("%3s|%.1s|%c", ["é", "é€", "é"]) == ("  é|é|é", [])


# -- %q --------------------------------------------------------------------------------------

QUOTE_CASES = ["", "abc", "a b", "it's", 'a"b', "~", "a~", "~/x", "a=b", "=a", "a,b", "a#b",
               "#a", "$x", "a*b", "a\\b", "a\nb", "a\tb", "\x1b[0m", "\x7f", "é", "a:b@c%d+e",
               "!", "{a}", "^", "a|b;c&d", "(x)", "<>", "`", "-", "--x", ".", "\x01",
               "a'b\n", "x]", "%", "ü ö", "\udcff", "\udcc3", "a?b[c]", "tab\there", "\r",
               "\x07\x08\x0b\x0c", "日本語 テキスト", "a\u200bb", "\u00a0"]


def test_quote_matches_bash():
    script = "\n".join(f"printf '%q{SEP}' {_q(s)}" for s in QUOTE_CASES)
    expected = run_bash(script).split(SEP)[:-1]
    got = [shell_quote(s) for s in QUOTE_CASES]
    assert got == expected


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=0x2FF),
                        max_size=12), min_size=1, max_size=8))
def test_quote_round_trips_through_bash(strings):
    script = "\n".join(f"eval \"s=$(printf %s {_q(shell_quote(s))})\"; "
                       f"printf '%s{SEP}' \"$s\"" for s in strings)
    assert run_bash(script).split(SEP)[:-1] == strings


# -- echo -e ---------------------------------------------------------------------------------

ECHO_CASES = ["a\\101b\\0101c\\x41\\u00e9\\\"\\q\\e", "x\\cy", "\\x", "\\u", "a\\", "\\\\n",
              "\\0", "\\08", "\\01234", "\\x4g", "\\U0001F600", "\\a\\b\\f\\v\\r\\t", "\\E",
              "plain", "", "\\n\\n", "\\c", "a\\cb\\n", "\\303\\251", "\\0303\\0251"]


def test_echo_escapes_match_bash():
    script = "\n".join(f"echo -ne {_q(s)}; printf '{SEP}'" for s in ECHO_CASES)
    expected = run_bash(script).split(SEP)[:-1]
    got = [echo_escapes(s)[0] for s in ECHO_CASES]
    assert got == expected


def test_echo_stop_flag():
    assert echo_escapes("a\\cb") == ("a", True)
    assert echo_escapes("a\\nb") == ("a\nb", False)
    assert echo_escapes("no escapes") == ("no escapes", False)
