"""Parse tests: the AST shape (and spans) produced by lang.parse() for every SPEC 1.1 construct."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from flowmetal import lang, records
from flowmetal.lang import ast as A


def parse(text):
    return lang.parse(text, "t.fm")


def one(text):
    prog = parse(text)
    assert len(prog.commands) == 1, prog.commands
    return prog.commands[0]


def S(node):
    """A span-free rendering of a node: (TypeName, {non-default fields}) / text for Lit."""
    if isinstance(node, tuple):
        return tuple(S(x) for x in node)
    if isinstance(node, A.Lit):
        return node.text
    if isinstance(node, A.Word):
        return S(node.parts) if len(node.parts) != 1 else S(node.parts[0])
    if records.is_record(node):
        out = {}
        defaults = type(node).__record_defaults__
        for name in records.fields(node):
            if name == "span":
                continue
            v = getattr(node, name)
            if name in defaults and v == defaults[name]:
                continue
            out[name] = S(v)
        return (type(node).__name__, out)
    return node


def words(cmd):
    """The words of a simple command rendered with S()."""
    assert isinstance(cmd, A.SimpleCommand), cmd
    return [S(w) for w in cmd.words]


def text_of(src, node):
    return src[node.span.start:node.span.end]


# ---- simple commands, words ----------------------------------------------------------------

def test_empty_and_comments():
    assert parse("").commands == ()
    assert parse("\n\n  # just a comment\n").commands == ()
    assert parse("#!/usr/bin/env fm\n").commands == ()


def test_simple_command_and_spans():
    src = "  echo hello   world  "
    c = one(src)
    assert words(c) == ["echo", "hello", "world"]
    assert text_of(src, c) == "echo hello   world"
    assert (c.span.line, c.span.col) == (1, 3)
    w = c.words[2]
    assert text_of(src, w) == "world" and w.span.col == 16
    assert text_of(src, w.parts[0]) == "world"


def test_line_and_column_on_later_lines():
    src = "a\n\n  b c\n"
    prog = parse(src)
    b = prog.commands[1]
    assert (b.span.line, b.span.col, b.span.start) == (3, 3, 5)
    assert (b.words[1].span.line, b.words[1].span.col) == (3, 5)
    assert prog.span.start == 0 and prog.span.end == len(src)


def test_comment_only_at_word_start():
    assert words(one("echo a#b # comment")) == ["echo", "a#b"]
    assert words(one("echo '#' x")) == ["echo", ("SQ", {"text": "#"}), "x"]


def test_line_continuation():
    assert words(one("echo a \\\n  b")) == ["echo", "a", "b"]
    assert words(one("echo ab\\\ncd")) == ["echo", "abcd"]


def test_single_double_quotes_and_escapes():
    c = one("""echo 'it''s' "a $x b" \\* a\\ b""")
    assert words(c)[1] == (("SQ", {"text": "it"}), ("SQ", {"text": "s"}))
    assert words(c)[2] == ("DQ", {"parts": ("a ", ("Param", {"name": "x"}), " b")})
    assert words(c)[3] == ("SQ", {"text": "*"})
    assert words(c)[4] == ("a", ("SQ", {"text": " "}), "b")


def test_double_quote_escapes():
    c = one(r'echo "a\"b\\c\$d\`e\nf"')
    assert words(c)[1] == ("DQ", {"parts": ('a"b\\c$d`e\\nf',)})


def test_glob_chars_stay_literal_text():
    c = one("ls *.txt ?x [ab]*")
    assert words(c) == ["ls", "*.txt", "?x", "[ab]*"]
    assert all(isinstance(w.parts[0], A.Lit) for w in c.words)


def test_ansi_c_quotes():
    c = one(r"echo $'a\tb\n\x41\101\u00e9\'q' $'\cA'")
    assert words(c)[1] == ("SQ", {"text": "a\tb\nAA\u00e9'q"})
    assert words(c)[2] == ("SQ", {"text": "\x01"})


def test_locale_string_is_dq():
    assert words(one('echo $"hi $x"'))[1] == ("DQ", {"parts": ("hi ", ("Param", {"name": "x"}))})


def test_adjacent_literal_text_is_merged():
    c = one("echo ab\\\ncd$ x$")
    assert words(c)[1:] == ["abcd$", "x$"]
    assert len(c.words[1].parts) == 1


def test_lone_dollar_is_literal():
    assert words(one('echo $ "$" $% a$')) == ["echo", "$", ("DQ", {"parts": ("$",)}), "$%", "a$"]


# ---- parameters ------------------------------------------------------------------------------

def P(name, **kw):
    return ("Param", dict(name=name, **kw))


def test_simple_params():
    c = one("echo $x $_a1 $1 $10 $@ $* $# $? $$ $! $- $0")
    assert words(c)[1:] == [P("x"), P("_a1"), P("1"), (P("1"), "0"), P("@"), P("*"), P("#"),
                            P("?"), P("$"), P("!"), P("-"), P("0")]


def test_braced_params():
    c = one("echo ${x} ${10} ${#x} ${#a[@]} ${!m[@]} ${!m[*]} ${a[i+1]} ${a[@]} ${a[*]}")
    ws = words(c)[1:]
    assert ws[0] == P("x", braced=True)
    assert ws[1] == P("10", braced=True)
    assert ws[2] == P("x", op="len", braced=True)
    assert ws[3] == P("a", op="len", index="@", index_all="@", braced=True)
    assert ws[4] == P("m", op="keys", index="@", index_all="@", braced=True)
    assert ws[5] == P("m", op="keys", index="*", index_all="*", braced=True)
    assert ws[6] == P("a", index="i+1", braced=True)
    assert ws[7] == P("a", index="@", index_all="@", braced=True)
    assert ws[8] == P("a", index="*", index_all="*", braced=True)


def test_param_index_is_a_word():
    c = one('echo ${m[$k]} ${m["a b"]}')
    assert words(c)[1] == P("m", index=P("k"), braced=True)
    assert words(c)[2] == P("m", index=("DQ", {"parts": ("a b",)}), braced=True)


@pytest.mark.parametrize("op", [":-", "-", ":=", "=", ":?", "?", ":+", "+"])
def test_param_default_ops(op):
    c = one("echo ${x%sdef ault}" % op)
    assert words(c)[1] == P("x", op=op, arg="def ault", braced=True)


def test_param_ops_with_empty_and_nested_args():
    c = one('echo ${x:?} ${x:-} ${x:-$y} ${x:-"a b"} ${x:-${y:-z}} ${x:-~/d}')
    ws = words(c)[1:]
    assert ws[0] == P("x", op=":?", braced=True)
    assert ws[1] == P("x", op=":-", braced=True)
    assert ws[2] == P("x", op=":-", arg=P("y"), braced=True)
    assert ws[3] == P("x", op=":-", arg=("DQ", {"parts": ("a b",)}), braced=True)
    assert ws[4] == P("x", op=":-", arg=P("y", op=":-", arg="z", braced=True), braced=True)
    assert ws[5] == P("x", op=":-", arg=(("Tilde", {"user": ""}), "/d"), braced=True)


@pytest.mark.parametrize("op", ["#", "##", "%", "%%", "^", "^^", ",", ",,"])
def test_param_pattern_ops(op):
    c = one("echo ${x%s*.t}" % op)
    assert words(c)[1] == P("x", op=op, arg="*.t", braced=True)


def test_param_case_ops_without_pattern():
    assert words(one("echo ${x^^} ${x,}"))[1:] == [P("x", op="^^", braced=True),
                                                    P("x", op=",", braced=True)]


def test_param_replace_ops():
    c = one("echo ${x/a/b} ${x//a} ${x/#a/b c} ${x/%a/} ${x//\\//-}")
    ws = words(c)[1:]
    assert ws[0] == P("x", op="/", arg="a", arg2="b", braced=True)
    assert ws[1] == P("x", op="//", arg="a", braced=True)
    assert ws[2] == P("x", op="/#", arg="a", arg2="b c", braced=True)
    assert ws[3] == P("x", op="/%", arg="a", braced=True)
    assert ws[4] == P("x", op="//", arg=("SQ", {"text": "/"}), arg2="-", braced=True)


def test_param_substring():
    src = "echo ${x:1} ${x: -2:n+1} ${a[@]:1:2}"
    c = one(src)
    p1, p2, p3 = (w.parts[0] for w in c.words[1:])
    assert (p1.op, p1.arg.text, p1.arg2) == (":", "1", None)
    assert isinstance(p1.arg, A.ArithText)
    assert (p2.op, p2.arg.text, p2.arg2.text) == (":", " -2", "n+1")
    assert text_of(src, p2.arg2) == "n+1"
    assert (p3.index_all, p3.op, p3.arg.text, p3.arg2.text) == ("@", ":", "1", "2")


def test_param_spans():
    src = 'echo "${x:-d}"'
    p = one(src).words[1].parts[0].parts[0]
    assert text_of(src, p) == "${x:-d}"
    assert text_of(src, p.arg) == "d"


# ---- command and arithmetic substitution -------------------------------------------------

def test_cmdsub_and_spans_index_original_text():
    src = "echo $(ls -l | wc) x"
    c = one(src)
    sub = c.words[1].parts[0]
    assert isinstance(sub, A.CmdSub)
    assert text_of(src, sub) == "$(ls -l | wc)"
    pipe = sub.body.commands[0]
    assert isinstance(pipe, A.Pipeline)
    assert text_of(src, pipe.commands[1]) == "wc"
    assert text_of(src, sub.body) == "ls -l | wc"


def test_nested_cmdsub_and_quotes_inside():
    c = one('x=$(echo "$(basename "$f")" \')\' ")")')
    v = c.assigns[0].value.parts[0]
    inner = v.body.commands[0]
    assert words(inner)[0] == "echo"
    assert isinstance(inner.words[1].parts[0].parts[0], A.CmdSub)
    assert words(inner)[2] == ("SQ", {"text": ")"})


def test_cmdsub_with_case_and_comment():
    c = one("x=$(case $y in a) echo A;; (b) echo B;; esac # )\n)")
    case = c.assigns[0].value.parts[0].body.commands[0]
    assert isinstance(case, A.Case) and len(case.arms) == 2


def test_empty_cmdsub():
    sub = one("echo $()").words[1].parts[0]
    assert sub.body.commands == ()


def test_backticks():
    src = "echo `date +%s` \"`pwd`\""
    c = one(src)
    sub = c.words[1].parts[0]
    assert isinstance(sub, A.CmdSub) and words(sub.body.commands[0]) == ["date", "+%s"]
    assert text_of(src, sub) == "`date +%s`"
    assert text_of(src, sub.body.commands[0].words[1]) == "+%s"
    dq = c.words[2].parts[0]
    assert isinstance(dq.parts[0], A.CmdSub)


def test_backticks_with_escapes_map_spans_back():
    src = r"echo `echo \`id\` \$HOME`"
    c = one(src)
    body = c.words[1].parts[0].body.commands[0]
    inner = body.words[1].parts[0]
    assert isinstance(inner, A.CmdSub) and words(inner.body.commands[0]) == ["id"]
    assert words(body)[2] == P("HOME")
    assert text_of(src, body.words[0]) == "echo"
    assert text_of(src, inner.body.commands[0]) == "id"


def test_arith_sub():
    src = "echo $((1 + (2*x))) \"$((y))\""
    c = one(src)
    a = c.words[1].parts[0]
    assert isinstance(a, A.ArithSub) and a.expr.text == "1 + (2*x)"
    assert text_of(src, a.expr) == "1 + (2*x)" and text_of(src, a) == "$((1 + (2*x)))"
    assert c.words[2].parts[0].parts[0].expr.text == "y"


def test_dollar_paren_paren_that_is_not_arithmetic():
    sub = one("echo $((a) | b)").words[1].parts[0]
    assert isinstance(sub, A.CmdSub)
    assert isinstance(sub.body.commands[0], A.Pipeline)


# ---- tilde and brace expansion -----------------------------------------------------------

def T(user=""):
    return ("Tilde", {"user": user})


def test_tilde():
    c = one("echo ~ ~/x ~bob ~bob/y a~ '~' ~\"x\"")
    ws = words(c)[1:]
    assert ws[:4] == [T(), (T(), "/x"), T("bob"), (T("bob"), "/y")]
    assert ws[4] == "a~"
    assert ws[5] == ("SQ", {"text": "~"})
    assert ws[6] == ("~", ("DQ", {"parts": ("x",)}))


def test_tilde_in_assignment_values():
    c = one("PATH=~/bin:~root/sbin:/usr/bin:~")
    assert S(c.assigns[0].value) == (T(), "/bin:", T("root"), "/sbin:/usr/bin:", T())


def test_brace_alternation():
    src = "echo a{b,c}d {x,} {,y} {\"q r\",$v}"
    c = one(src)
    ws = words(c)[1:]
    assert ws[0] == ("a", ("BraceAlt", {"alts": (("b",), ("c",))}), "d")
    assert ws[1] == ("BraceAlt", {"alts": (("x",), ())})
    assert ws[2] == ("BraceAlt", {"alts": ((), ("y",))})
    assert ws[3] == ("BraceAlt", {"alts": ((("DQ", {"parts": ("q r",)}),), (P("v"),))})
    assert text_of(src, c.words[1].parts[1]) == "{b,c}"


def test_nested_brace_alternation():
    ws = words(one("echo x{a,{b,c}}y {{a,b}}"))
    assert ws[1] == ("x", ("BraceAlt", {"alts": (("a",), (("BraceAlt", {"alts": (("b",), ("c",))}),))}), "y")
    assert ws[2] == ("{", ("BraceAlt", {"alts": (("a",), ("b",))}), "}")


def test_brace_sequences():
    ws = words(one("echo {1..5} {a..e} {1..10..2} {-3..3} {z..a..-1}"))
    assert ws[1:] == [("BraceSeq", {"start": "1", "end": "5", "step": None}),
                      ("BraceSeq", {"start": "a", "end": "e", "step": None}),
                      ("BraceSeq", {"start": "1", "end": "10", "step": 2}),
                      ("BraceSeq", {"start": "-3", "end": "3", "step": None}),
                      ("BraceSeq", {"start": "z", "end": "a", "step": -1})]


def test_invalid_braces_stay_literal():
    ws = words(one("echo {} {x} a{b}c {1..} {a..bb} '{a,b}' \\{a,b} { }"))
    assert ws[1:6] == ["{}", "{x}", "a{b}c", "{1..}", "{a..bb}"]
    assert ws[6] == ("SQ", {"text": "{a,b}"})
    assert ws[7] == (("SQ", {"text": "{"}), "a,b}")
    assert ws[8:] == ["{", "}"]


def test_no_brace_expansion_in_assignments_or_patterns():
    c = one("x={a,b} echo")
    assert S(c.assigns[0].value) == "{a,b}"
    case = one("case x in {a,b}) :;; esac")
    assert S(case.arms[0].patterns[0]) == "{a,b}"


# ---- assignments ---------------------------------------------------------------------------

def test_assignments():
    src = "a=1 b+=two c= d[3]=x m[$k]+=v cmd arg=notassign"
    c = one(src)
    a, b, cc, d, m = c.assigns
    assert (a.name, a.op, S(a.value)) == ("a", "=", "1")
    assert (b.name, b.op, S(b.value)) == ("b", "+=", "two")
    assert (cc.name, cc.value) == ("c", None)
    assert (d.name, S(d.index), S(d.value)) == ("d", "3", "x")
    assert (m.name, m.op, S(m.index), S(m.value)) == ("m", "+=", P("k"), "v")
    assert words(c) == ["cmd", "arg=notassign"]
    assert text_of(src, d) == "d[3]=x"
    assert text_of(src, c) == src


def test_assignment_only_command():
    c = one("x=$(date)")
    assert c.words == () and isinstance(c.assigns[0].value.parts[0], A.CmdSub)


def test_array_literals():
    src = 'a=(one "two words" [k]=v $x {1..2}\n  # comment\n  three) b+=(y) e=()'
    c = one(src)
    arr = c.assigns[0].value
    assert isinstance(arr, A.ArrayLit)
    items = arr.items
    assert S(items[0]) == "one"
    assert S(items[1]) == ("DQ", {"parts": ("two words",)})
    assert isinstance(items[2], tuple) and S(items[2]) == ("k", "v")
    assert S(items[3]) == P("x")
    assert S(items[4]) == ("BraceSeq", {"start": "1", "end": "2", "step": None})
    assert S(items[5]) == "three"
    assert text_of(src, arr).startswith("(one") and text_of(src, arr).endswith("three)")
    assert c.assigns[1].op == "+=" and S(c.assigns[1].value.items) == ("y",)
    assert c.assigns[2].value.items == ()


def test_declaration_arguments_are_words():
    c = one('local x=1 y="a b" z')
    assert words(c) == ["local", "x=1", ("y=", ("DQ", {"parts": ("a b",)})), "z"]
    assert c.assigns == ()


def test_declaration_array_argument():
    # AST extension (see the module report): `name=(...)` after declare/local/... is a Word
    # whose parts are Lit("name=") then an ArrayLit.
    c = one("declare -A m=([a]=1 [b]=2)")
    w = c.words[2]
    assert S(w.parts[0]) == "m=" and isinstance(w.parts[1], A.ArrayLit)
    assert S(w.parts[1].items) == (("a", "1"), ("b", "2"))


# ---- redirections --------------------------------------------------------------------------

def R(op, target, fd=None):
    d = {"op": op, "target": target}
    if fd is not None:
        d["fd"] = fd
    return ("Redirect", d)


def test_redirections():
    src = "cmd >out >>app <in 2>err 2>>err2 &>both &>>both2 2>&1 >&2 3<&0 4<>rw >|clob 5>&-"
    c = one(src)
    assert words(c) == ["cmd"]
    assert S(c.redirects) == (R(">", "out"), R(">>", "app"), R("<", "in"), R(">", "err", 2),
                              R(">>", "err2", 2), R("&>", "both"), R("&>>", "both2"),
                              R(">&", "1", 2), R(">&", "2"), R("<&", "0", 3),
                              R("<>", "rw", 4), R(">|", "clob"), R(">&", "-", 5))
    assert text_of(src, c.redirects[7]) == "2>&1"
    assert text_of(src, c) == src


def test_redirection_positions_and_spaces():
    c = one("> f echo a 2> 'e f' b")
    assert words(c) == ["echo", "a", "b"]
    assert S(c.redirects) == (R(">", "f"), R(">", ("SQ", {"text": "e f"}), 2))


def test_digits_not_followed_by_redirect_are_words():
    c = one("echo 2 >x a2>y")
    assert words(c) == ["echo", "2", "a2"]
    assert [r.fd for r in c.redirects] == [None, None]


def test_here_string():
    c = one('cat <<< "$x y"')
    assert S(c.redirects) == (R("<<<", ("DQ", {"parts": (P("x"), " y")})),)


def test_heredoc_expanding():
    src = "cat <<EOF\nhello $name\n  $(date) \\$x \"q\"\nEOF\necho next\n"
    prog = parse(src)
    cat, echo = prog.commands
    hd = cat.redirects[0].target
    assert isinstance(hd, A.HereDoc) and hd.expand
    assert S(hd.parts)[0:2] == ("hello ", P("name"))
    assert S(hd.parts)[2] == "\n  "
    assert isinstance(hd.parts[3], A.CmdSub)
    assert S(hd.parts)[4] == ' $x "q"\n'
    assert text_of(src, hd) == "hello $name\n  $(date) \\$x \"q\"\n"
    assert words(echo) == ["echo", "next"]
    assert echo.span.line == 5


def test_heredoc_quoted_is_literal():
    for delim in ("'EOF'", '"EOF"', "\\EOF", "E'O'F"):
        c = parse(f"cat <<{delim}\n$x `y`\nEOF\n").commands[0]
        hd = c.redirects[0].target
        assert not hd.expand
        assert S(hd.parts) == (("SQ", {"text": "$x `y`\n"}),)


def test_heredoc_strip_tabs():
    src = "\tcat <<-END\n\t\tindented $x\n\tEND\n"
    hd = parse(src).commands[0].redirects[0].target
    assert S(hd.parts) == ("indented ", P("x"), "\n")
    hd2 = parse("cat <<-'END'\n\ta\n\t\tb\n\tEND\n").commands[0].redirects[0].target
    assert S(hd2.parts) == (("SQ", {"text": "a\nb\n"}),)


def test_several_heredocs_on_one_line():
    src = "cat <<A; cat <<-B | tr a b\none\nA\n\ttwo\n\tB\necho after"
    prog = parse(src)
    assert len(prog.commands) == 3
    h1 = prog.commands[0].redirects[0].target
    h2 = prog.commands[1].commands[0].redirects[0].target
    assert S(h1.parts) == ("one\n",) and S(h2.parts) == ("two\n",)
    assert words(prog.commands[2]) == ["echo", "after"]


def test_heredoc_empty_body_and_at_end_without_newline():
    hd = parse("cat <<E\nE").commands[0].redirects[0].target
    assert hd.parts == ()
    hd = parse("cat <<'E'\nE\n").commands[0].redirects[0].target
    assert S(hd.parts) == (("SQ", {"text": ""}),)


def test_heredoc_in_compound_and_cmdsub():
    prog = parse("while read l; do echo $l; done <<EOF\na\nEOF\nx=$(cat <<X\nin\nX\n)")
    w = prog.commands[0]
    assert isinstance(w, A.While) and S(w.redirects[0].target.parts) == ("a\n",)
    sub = prog.commands[1].assigns[0].value.parts[0]
    assert S(sub.body.commands[0].redirects[0].target.parts) == ("in\n",)


# ---- pipelines and lists -------------------------------------------------------------------

def test_pipeline():
    src = "a | b |& c"
    p = one(src)
    assert isinstance(p, A.Pipeline) and not p.negated
    assert [words(c)[0] for c in p.commands] == ["a", "b", "c"]
    assert p.stderr == (False, True)
    assert text_of(src, p) == src


def test_pipeline_newline_after_pipe():
    p = one("a |\n\n  b")
    assert len(p.commands) == 2


def test_negation():
    p = one("! a | b")
    assert p.negated and len(p.commands) == 2 and p.span.start == 0
    p = one("! a")
    assert isinstance(p, A.Pipeline) and p.negated and len(p.commands) == 1


def test_and_or_left_associative():
    c = one("a && b || c")
    assert isinstance(c, A.AndOr) and c.op == "||"
    assert isinstance(c.left, A.AndOr) and c.left.op == "&&"
    assert words(c.right) == ["c"]
    c = one("a &&\n b")
    assert c.op == "&&"


def test_lists_and_background():
    src = "a; b & c\nd &"
    prog = parse(src)
    cmds = prog.commands
    assert len(cmds) == 4
    assert isinstance(cmds[1], A.Background) and words(cmds[1].command) == ["b"]
    assert text_of(src, cmds[1]) == "b &"
    assert isinstance(cmds[3], A.Background)
    assert not isinstance(cmds[0], A.Background) and not isinstance(cmds[2], A.Background)


def test_background_and_or():
    c = one("a && b &")
    assert isinstance(c, A.Background) and isinstance(c.command, A.AndOr)


def test_reserved_words_only_in_command_position():
    c = one("echo if then fi { } done ! [[")
    assert words(c) == ["echo", "if", "then", "fi", "{", "}", "done", "!", "[["]
    c = one("x=1 if")     # after an assignment `if` is a command name, as in bash
    assert words(c) == ["if"]


# ---- compound commands ---------------------------------------------------------------------

def test_brace_group_and_subshell():
    src = "{ a; b; } > log; ( c\n d )"
    prog = parse(src)
    g, s = prog.commands
    assert isinstance(g, A.BraceGroup) and len(g.body.commands) == 2
    assert S(g.redirects) == (R(">", "log"),)
    assert text_of(src, g) == "{ a; b; } > log"
    assert isinstance(s, A.Subshell) and len(s.body.commands) == 2
    assert text_of(src, s) == "( c\n d )"


def test_nested_groups():
    g = one("{ { a; } }")
    assert isinstance(g.body.commands[0], A.BraceGroup)
    s = one("((a) )")
    assert isinstance(s, A.Subshell) and isinstance(s.body.commands[0], A.Subshell)


def test_if():
    src = "if a; then b; elif c\nthen d; else e; fi"
    c = one(src)
    assert isinstance(c, A.If)
    assert len(c.clauses) == 2
    cond, body = c.clauses[0]
    assert words(cond.commands[0]) == ["a"] and words(body.commands[0]) == ["b"]
    assert words(c.clauses[1][0].commands[0]) == ["c"]
    assert words(c.else_body.commands[0]) == ["e"]
    assert text_of(src, c) == src
    c = one("if a\nthen\n  b\nfi >out")
    assert c.else_body is None and S(c.redirects) == (R(">", "out"),)


def test_while_until():
    c = one("while read x; do echo $x; done < file")
    assert isinstance(c, A.While) and not c.until
    assert S(c.redirects) == (R("<", "file"),)
    c = one("until false\ndo\n :\ndone")
    assert c.until and words(c.body.commands[0]) == [":"]


def test_for():
    src = "for x in a \"b c\" {1..2}; do echo $x; done"
    c = one(src)
    assert isinstance(c, A.For) and c.var == "x"
    assert S(c.words) == ("a", ("DQ", {"parts": ("b c",)}),
                          ("BraceSeq", {"start": "1", "end": "2", "step": None}))
    assert text_of(src, c) == src
    assert one("for x; do :; done").words is None
    assert one("for x do :; done").words is None
    assert one("for x\ndo :; done").words is None
    assert one("for x in; do :; done").words == ()
    assert S(one("for x in a b\ndo :; done").words) == ("a", "b")
    assert S(one("for x\nin a\ndo :; done").words) == ("a",)
    assert S(one("for i in do done; do :; done").words) == ("do", "done")


def test_arith_for():
    src = "for ((i = 0; i < n; i++)); do echo $i; done"
    c = one(src)
    assert isinstance(c, A.ArithFor)
    assert (c.init.text, c.cond.text, c.step.text) == ("i = 0", "i < n", "i++")
    assert text_of(src, c.cond) == "i < n"
    c = one("for ((;;))\ndo break; done")
    assert (c.init, c.cond, c.step) == (None, None, None)
    c = one("for ((i=0; i<3; i++)) do :; done")
    assert c.cond.text == "i<3"


def test_case():
    src = "case $x in\n  a|b) one;;\n  (c) two ;&\n  *) three;;&\n  d) ;;\nesac"
    c = one(src)
    assert isinstance(c, A.Case) and S(c.word) == P("x")
    arms = c.arms
    assert [S(a.patterns) for a in arms] == [("a", "b"), ("c",), ("*",), ("d",)]
    assert [a.terminator for a in arms] == [";;", ";&", ";;&", ";;"]
    assert words(arms[0].body.commands[0]) == ["one"]
    assert arms[3].body.commands == ()
    assert text_of(src, arms[0]) == "a|b) one;;"
    assert text_of(src, arms[1]) == "(c) two ;&"
    assert text_of(src, c) == src


def test_case_last_arm_without_terminator_and_keywords_as_patterns():
    c = one("case $x in if|then) a;; done) b\nesac")
    assert [S(a.patterns) for a in c.arms] == [("if", "then"), ("done",)]
    c = one("case x in a) b; esac")
    assert len(c.arms) == 1 and c.arms[0].terminator == ";;"
    c = one("case x in fi) b\nesac")
    assert S(c.arms[0].patterns) == ("fi",)
    assert one("case x in esac").arms == ()
    assert one("case x\nin\nesac").arms == ()


def test_case_patterns_with_quotes_and_globs():
    c = one('case "$f" in *.tar.gz|"a b"|[0-9]*) x;; esac')
    assert S(c.arms[0].patterns) == ("*.tar.gz", ("DQ", {"parts": ("a b",)}), "[0-9]*")


def test_nested_case_in_case():
    c = one("case a in a) case b in b) x;; esac;; c) y;; esac")
    assert len(c.arms) == 2 and isinstance(c.arms[0].body.commands[0], A.Case)


# ---- [[ ]] and (( )) -----------------------------------------------------------------------

def cond(text):
    c = one(text)
    assert isinstance(c, A.CondCommand)
    return c.expr


def test_cond_unary_and_binary():
    e = cond('[[ -f "$p" ]]')
    assert isinstance(e, A.CondUnary) and e.op == "-f"
    for op in ("==", "=", "!=", "=~", "<", ">", "-eq", "-ne", "-lt", "-le", "-gt", "-ge",
               "-nt", "-ot", "-ef"):
        e = cond(f"[[ a {op} b ]]")
        assert isinstance(e, A.CondBinary) and (e.op, S(e.left), S(e.right)) == (op, "a", "b")
    for op in ("-z", "-n", "-e", "-d", "-r", "-w", "-x", "-s", "-L", "-h", "-v"):
        assert cond(f"[[ {op} x ]]").op == op


def test_cond_word_not_and_or_grouping():
    e = cond("[[ ! -z $a && ( $b || $c ) ]]")
    assert isinstance(e, A.CondAnd)
    assert isinstance(e.left, A.CondNot) and isinstance(e.left.expr, A.CondUnary)
    assert isinstance(e.right, A.CondOr)
    assert isinstance(e.right.left, A.CondWord)
    e = cond("[[ a || b && c ]]")
    assert isinstance(e, A.CondOr) and isinstance(e.right, A.CondAnd)


def test_cond_pattern_and_regex():
    e = cond("[[ $f == *.txt ]]")
    assert S(e.right) == "*.txt"
    e = cond("[[ $x =~ ^(a|b)[0-9]+$ ]]")
    assert e.op == "=~" and S(e.right) == "^(a|b)[0-9]+$"
    e = cond("[[ $x =~ ( a) && y ]]")
    assert isinstance(e, A.CondAnd) and S(e.left.right) == "( a)"


def test_cond_spans_and_redirects_and_newlines():
    src = "[[ a == b &&\n  -n c ]] && echo"
    c = one(src)
    assert text_of(src, c.left) == "[[ a == b &&\n  -n c ]]"
    assert text_of(src, c.left.expr.left) == "a == b"


def test_arith_command():
    src = "(( x = 1 + (2 * y) )) && ((i++))"
    c = one(src)
    a = c.left
    assert isinstance(a, A.ArithCommand) and a.expr.text == " x = 1 + (2 * y) "
    assert text_of(src, a) == "(( x = 1 + (2 * y) ))"
    assert c.right.expr.text == "i++"


def test_double_paren_that_is_nested_subshell():
    c = one("((a) | b)")
    assert isinstance(c, A.Subshell)


# ---- functions, try, retry/timeout blocks --------------------------------------------------

def test_function_forms():
    src = "f() { echo; }"
    f = one(src)
    assert isinstance(f, A.FunctionDef) and f.name == "f" and isinstance(f.body, A.BraceGroup)
    assert text_of(src, f) == src
    f = one("my-fn::x () \n{\n :\n}")
    assert f.name == "my-fn::x"
    f = one("function g { :; } > log")
    assert f.name == "g" and S(f.body.redirects) == (R(">", "log"),)
    f = one("function h() ( subshell )")
    assert isinstance(f.body, A.Subshell)
    f = one("function k\n{ :; }")
    assert f.name == "k"
    f = one("f() if a; then b; fi")
    assert isinstance(f.body, A.If)
    f = one("f() [[ -n $1 ]]")
    assert isinstance(f.body, A.CondCommand)


def test_try():
    src = "try { a; } catch { b; } finally { c; }"
    t = one(src)
    assert isinstance(t, A.Try)
    assert words(t.body.body.commands[0]) == ["a"]
    assert words(t.catch.body.commands[0]) == ["b"]
    assert words(t.finally_.body.commands[0]) == ["c"]
    assert text_of(src, t) == src
    t = one("try {\n  a\n}\ncatch {\n  b\n}\n\n# note\nfinally {\n  c\n}")
    assert t.catch is not None and t.finally_ is not None
    t = one("try { a; } finally { c; }")
    assert t.catch is None
    t = one("try { a; }\ncatch { b; }")
    assert t.finally_ is None


def test_try_followed_by_commands():
    prog = parse("try { a; } catch { b; }\necho next")
    assert len(prog.commands) == 2 and words(prog.commands[1]) == ["echo", "next"]


def test_retry_and_timeout_blocks():
    src = 'retry --attempts 3 --backoff 2s { curl -f "$u"; jq .; } > log'
    c = one(src)
    assert words(c) == ["retry", "--attempts", "3", "--backoff", "2s"]
    assert isinstance(c.block, A.BraceGroup) and len(c.block.body.commands) == 2
    assert S(c.redirects) == (R(">", "log"),)
    assert text_of(src, c) == src
    c = one("timeout 5m {\n  sleep 10\n}")
    assert words(c) == ["timeout", "5m"] and c.block is not None
    c = one("retry { a; } && b")
    assert isinstance(c, A.AndOr) and c.left.block is not None


def test_block_only_after_retry_and_timeout():
    assert words(one("echo { a }")) == ["echo", "{", "a", "}"]
    assert one('retry "{" x').block is None
    assert one("timeout 5 sleep 1").block is None


# ---- the whole thing -----------------------------------------------------------------------

SCRIPT = r'''#!/usr/bin/env fm
# deploy script
set -euo pipefail
BASE_URL="https://ci.local/build/${BUILD_ID:-latest}"
declare -A hosts=([web]=10.0.0.1 [db]=10.0.0.2)
log() { echo "[$(date +%s)] $*" >&2; }
for host in "${!hosts[@]}"; do
    if ! curl -fsS "$BASE_URL/$host.tar.gz" -o "/tmp/$host.tgz"; then
        log "download failed for $host"
        continue
    elif [[ -f /tmp/$host.tgz && $host == w* ]]; then
        tar xzf "/tmp/$host.tgz" -C /opt/app 2>/dev/null || true
    fi
    case "$host" in
        web|api) echo web ;;
        db) echo "database ${hosts[$host]}" ;;
        *) echo other ;;
    esac
done
i=0
while (( i < 10 )); do i=$((i + 1)); done
cat <<EOF > /tmp/out.txt
value: $i and $(hostname)
EOF
retry --attempts 3 { curl -f "$BASE_URL/ok" | jq .status; }
try { deploy; } catch { rollback & } finally { cleanup; }
'''


def test_realistic_script():
    prog = parse(SCRIPT)
    kinds = [type(c).__name__ for c in prog.commands]
    assert kinds == ["SimpleCommand", "SimpleCommand", "SimpleCommand", "FunctionDef", "For",
                     "SimpleCommand", "While", "SimpleCommand", "SimpleCommand", "Try"]


def test_every_span_is_sane():
    """Every Span lies inside the text and its line/col agree with its start offset."""
    text = SCRIPT
    lines = text.split("\n")

    def walk(n):
        if isinstance(n, A.Span):
            assert 0 <= n.start <= n.end <= len(text)
            before = text[:n.start]
            assert n.line == before.count("\n") + 1
            assert n.col == n.start - (before.rfind("\n") + 1) + 1
            assert n.line <= len(lines)
        elif isinstance(n, tuple):
            for x in n:
                walk(x)
        elif records.is_record(n):
            for name in records.fields(n):
                walk(getattr(n, name))
    walk(parse(text))


def test_parsing_time_grows_linearly():
    """Catches an accidental quadratic parser without timing against the wall: 4x the lines
    take about 4x the CPU time (a quadratic parser: 16x), best of three each. The figure
    itself (~50 ms for 1,000 lines on a quiet machine) belongs in bench/."""
    n = SCRIPT.count("\n")
    small, big = SCRIPT * (1000 // n + 1), SCRIPT * (4000 // n + 1)
    parse(small)   # warm up: loads the tables
    ratio = min(_timed(big) for _ in range(3)) / min(_timed(small) for _ in range(3))
    assert ratio < 10, f"4x the lines took {ratio:.1f}x the time"


def _timed(text):
    t = time.process_time()
    parse(text)
    return time.process_time() - t


def test_import_is_cheap_and_tables_are_prebuilt():
    code = ("import sys, flowmetal.lang as l; assert 'ply' not in sys.modules; "
            "import ply.yacc, ply.lex\n"
            "def boom(*a, **k): raise AssertionError('tables regenerated')\n"
            "ply.yacc.yacc = ply.lex.lex = boom\n"
            "ply.yacc.LRGeneratedTable = boom\n"
            "l.parse('echo hi | cat', 'x')\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""


def test_committed_tables_match_the_grammar():
    import ply.yacc as yacc

    from flowmetal.lang import _parsetab, parser
    info = yacc.ParserReflect(vars(parser))
    info.get_all()
    assert info.signature() == _parsetab._lr_signature, \
        "grammar changed: run `python -m flowmetal.lang.parser` to regenerate _parsetab.py"


def test_nodes_are_frozen_and_hashable():
    prog = parse("cat <<EOF\n$x\nEOF\necho {a,b}")
    hash(prog)
    with pytest.raises(AttributeError):
        prog.commands[0].words = ()


def test_double_negation():
    assert words(one("! ! a")) == ["a"]
    p = one("! ! ! a | b")
    assert isinstance(p, A.Pipeline) and p.negated


def test_incomplete_input_class():
    from flowmetal.errors import ParseError
    assert issubclass(lang.IncompleteInput, ParseError)


def test_rescanned_words_do_not_make_parsing_exponential():
    # `a[...]` might be an assignment; when it is not, the word is scanned again, and the
    # $(...) inside must not be parsed again at every level.
    for text in ["a[$(" * 40 + "x" + ")]" * 40, "a=([$(b=([$(" * 25 + "x" + ")]))]" * 25,
                 "try { a; }\n" + "# " * 5000 + "\nx"]:
        t = time.perf_counter()
        try:
            parse(text)
        except lang.ParseError:
            pass
        assert time.perf_counter() - t < 1.0


def test_brace_after_the_command_of_retry_is_an_argument():
    # SPEC 1.4: `retry [OPTIONS] { BODY }` vs `retry [OPTIONS] [--] CMD [ARG...]`.
    c = one("retry --attempts 3 --jitter --delay=1s --on 1,2 { a; }")
    assert c.block is not None and words(c)[-1] == "1,2"
    assert one("retry -- echo { x }").block is None
    assert one("retry --attempts 2 echo { x }").block is None
    assert one("timeout 5 echo { x }").block is None
    assert one("retry $opts { a; }").block is not None
