"""Fuzz tests: no input, however malformed, makes parse() raise anything but ParseError."""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowmetal import lang, records
from flowmetal.errors import ParseError
from flowmetal.lang import ast as A

FRAGMENTS = [
    "if ", "then ", "fi", "else ", "elif ", "while ", "until ", "do ", "done", "for ", " in ",
    "case ", "esac", ";;", ";&", ";;&", "{ ", " }", "{", "}", "(", ")", "((", "))", "[[ ", " ]]",
    "$(", "${", "$((", "`", "'", '"', "\\", "\n", ";", "&", "&&", "||", "|", "|&", "<<", "<<-",
    "<<<", ">", ">>", "<", "2>&1", ">&", "&>", "&>>", "3<>", "EOF", "\nEOF\n", "'EOF'", "x",
    "echo", "cat", " ", "  ", "\t", "$x", "$1", "$@", "$?", "#", "~", "~/", "=", "+=", "a=", "a[",
    "]", "[", "{a,b}", "{1..3}", ",", ":", ":-", "-", "!", "*", "?", "function ", "f()", "f ",
    "try ", "catch ", "finally ", "retry ", "timeout 5 ", "$'", "\\n", "\\\n", "=~", "==", "-f ",
    "-eq", "%", "%%", "/", "//", "@", "declare ", "local ", "a=(", "[k]=", "$\"", "..", "\r",
    "\u00e9", "\x00", "0", "9", "#{", "${#", "${!", "[@]", ")", "in", "esac ", "select ",
]

SEEDS = [
    "echo hello world\n",
    "if [[ -f $f ]]; then cat \"$f\"; elif true; then :; else echo no; fi\n",
    "for x in a b {1..3}; do echo \"$x\" | tr a b >> out 2>&1; done\n",
    "for ((i=0; i<3; i++)); do echo $((i * 2)); done\n",
    "while read -r line; do echo ${line:-empty}; done < in.txt\n",
    "case $1 in a|b) echo ab;; (*) echo other;& esac\n",
    "f() { local x=$(date +%s); echo `pwd` $x; }\n",
    "function g { try { risky; } catch { echo failed; } finally { cleanup; }; }\n",
    "cat <<EOF\nhello $name\nEOF\ncat <<-'E'\n\tliteral\n\tE\n",
    "retry --attempts 3 { curl -f https://x/$id; } && timeout 5s { sleep 1; } &\n",
    "a=(1 \"2 3\" [k]=v) b+=x c[1]=y env VAR=1 cmd ${a[@]} ${#a[@]} ${!m[@]} ${x/a/b}\n",
    "(( x = 1 + 2 )) || [[ ! $x =~ ^(a|b)$ && -n \"$y\" ]]\n",
    "{ echo a; echo b; } > log; ( cd /tmp && ls ) | wc -l\n",
    "echo $'\\t' ~/x ~root \\* 'q' \"${x:-\"d\"}\" $(echo $(echo \")\"))\n",
]


def _check(text):
    try:
        prog = lang.parse(text, "fuzz.fm")
    except ParseError as e:
        assert 0 <= e.start <= len(text) + 1
        assert e.line >= 1 and e.col >= 1
        assert "internal parser error" not in e.message, e.message
        return
    _walk(prog, text)


def _walk(node, text):
    if isinstance(node, A.Span):
        assert 0 <= node.start <= node.end <= len(text), node
    elif isinstance(node, tuple):
        for x in node:
            _walk(x, text)
    elif records.is_record(node):
        for name in records.fields(node):
            _walk(getattr(node, name), text)


def fast(n):
    return settings(max_examples=n, deadline=None, suppress_health_check=list(HealthCheck),
                    database=None)


fragment_scripts = st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=40).map("".join)


@fast(3000)
@given(fragment_scripts)
def test_random_fragment_scripts(text):
    _check(text)


@st.composite
def mutated(draw):
    text = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(text)))
        j = draw(st.integers(i, min(len(text), i + 8)))
        kind = draw(st.sampled_from(["insert", "delete", "replace", "dup", "truncate"]))
        if kind == "insert":
            text = text[:i] + draw(st.sampled_from(FRAGMENTS)) + text[i:]
        elif kind == "delete":
            text = text[:i] + text[j:]
        elif kind == "replace":
            text = text[:i] + draw(st.sampled_from(FRAGMENTS)) + text[j:]
        elif kind == "dup":
            text = text[:j] + text[i:j] + text[j:]
        else:
            text = text[:i]
    return text


@fast(3000)
@given(mutated())
def test_mutated_scripts(text):
    _check(text)


@fast(500)
@given(st.text(max_size=60))
def test_arbitrary_text(text):
    _check(text)


@fast(300)
@given(st.lists(st.sampled_from(SEEDS), min_size=1, max_size=6).map("".join))
def test_valid_scripts_parse(text):
    prog = lang.parse(text, "ok.fm")
    _walk(prog, text)


def test_every_prefix_of_a_script():
    """Cutting a valid script anywhere never crashes the parser."""
    text = "".join(SEEDS)
    for i in range(len(text) + 1):
        _check(text[:i])
