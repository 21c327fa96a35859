"""Helpful error messages: syntax errors, built from the lexer's record of open constructs,
and the call chain under a run-time error's diagnostic."""
from __future__ import annotations

from flowmetal.lang.lexer import PATTERN

_OPENER = {"FI": ("if",), "THEN": ("if",), "ELSE": ("if",), "ELIF": ("if",),
           "DONE": ("while", "until", "for"), "DO": ("while", "until", "for"),
           "ESAC": ("case",), "RBRACE": ("{",), "RPAREN": ("(",)}
_OPENER_TEXT = {"if": "`if`", "while": "`while`/`until`/`for` loop", "case": "`case`",
                "{": "`{`", "(": "`(`"}
_CLOSED = frozenset(("FI", "DONE", "ESAC", "RBRACE", "RPAREN", "COND", "ARITH"))
_BINOPS = frozenset(("SEMI", "AMP", "PIPE", "PIPEAND", "AND_IF", "OR_IF"))
_NOOP = " (bash requires at least one command; use `:` for a no-op)"
_EMPTY_BODY = {("THEN", "FI"): "the `then` branch is empty" + _NOOP,
               ("THEN", "ELSE"): "the `then` branch is empty" + _NOOP,
               ("THEN", "ELIF"): "the `then` branch is empty" + _NOOP,
               ("ELSE", "FI"): "the `else` branch is empty" + _NOOP,
               ("DO", "DONE"): "the loop body is empty" + _NOOP,
               ("LBRACE", "RBRACE"): "the `{ }` block is empty" + _NOOP,
               ("LPAREN", "RPAREN"): "the `( )` subshell is empty" + _NOOP,
               ("IF", "THEN"): "the `if` condition is empty",
               ("ELIF", "THEN"): "the `elif` condition is empty",
               ("WHILE", "DO"): "the `while` condition is empty",
               ("UNTIL", "DO"): "the `until` condition is empty"}


def expectation(src, frame):
    """What the innermost open construct still needs."""
    kind, phase, pos = frame
    line = src.line_of(pos)
    if kind == "if":
        if phase == "cond":
            return "`then` expected after the `if` condition"
        return f"expected `fi` to close the `if` opened at line {line}"
    if kind in ("while", "until", "for"):
        if phase in ("cond", "head"):
            what = "list" if kind == "for" else "condition"
            return f"`do` expected after the `{kind}` {what}"
        return f"expected `done` to close the `{kind}` loop opened at line {line}"
    if kind == "case":
        if phase == "head":
            return "`in` expected after `case WORD`"
        return f"expected `esac` to close the `case` opened at line {line}"
    if kind == "{":
        return f"expected `}}` to close the `{{` opened at line {line}"
    return f"expected `)` to close the `(` opened at line {line}"


def _show(src, tok):
    """(text to quote, start, end) for a token."""
    v = tok.value
    span = getattr(v, "span", None)
    if tok.type == "SIMPLE" or tok.type == "SIMPLE_PRE":
        if v.words:
            span = v.words[0].span
    if span is not None:
        s = src.text[span.start:span.end]
        if "\n" in s or len(s) > 40:
            s = s.split("\n")[0][:40] + "..."
        return s, span.start, span.end
    if tok.type == "NEWLINE":
        return "newline", tok.lexpos, tok.lexpos + 1
    if tok.type == "ARITH_FOR":
        return "((", tok.lexpos, tok.lexpos + 2
    return str(v), tok.lexpos, tok.lexpos + len(str(v))


def _after_try(tok):
    return tok is not None and tok.type == "RBRACE" and getattr(tok, "owner", None) == "TRY"


def syntax_error(lx, tok):
    """The ParseError for an unexpected token (tok None: the end of the input)."""
    src = lx.src
    frames = lx.frames
    if tok is None:
        last = lx.last_sig_tok
        if lx.nested is not None and (lx.closed or lx.nested == "`"):
            # The end of a $( ... ) or `...` body, not of the input.
            pos = lx.end_pos - 1
            closer = ")" if lx.nested == "$(" else "`"
            msg = f"unexpected `{closer}`"
            if frames:
                msg += ": " + expectation(src, frames[-1])
            elif last is not None and last.type in _BINOPS:
                msg += f": a command must follow `{last.value}`"
            return src.error(msg, pos, pos + 1)
        end = len(src.text)
        if _after_try(last):
            return src.error("`try { ... }` needs a `catch { ... }` or `finally { ... }` "
                             "block", end, end, incomplete=True)
        if frames:
            f = frames[-1]
            kw_len = 1 if f[0] in "{(" else len(f[0])
            return src.error(expectation(src, f) + " (the input ended first)", f[2],
                             f[2] + kw_len, incomplete=True)
        if last is not None and last.type in _BINOPS | {"BANG"}:
            return src.error(f"a command must follow `{last.value}` (the input ended first)",
                             last.lexpos, last.lexpos + len(last.value), incomplete=True)
        return src.error("unexpected end of input", end, end, incomplete=True)

    typ = tok.type
    prev = lx.prev
    ptyp = prev.type if prev is not None else None
    text, start, end = _show(src, tok)
    if _after_try(prev) and typ not in ("CATCH", "FINALLY"):
        return src.error("`try { ... }` must be followed by `catch { ... }` or "
                         "`finally { ... }`", start, end)
    top = getattr(tok, "top", None)
    before = list(frames)
    if top is not None and not any(f is top for f in frames):
        before.append(top)   # the lexer already closed it on this token
    if (ptyp, typ) in _EMPTY_BODY:
        return src.error(f"unexpected `{text}`: {_EMPTY_BODY[ptyp, typ]}", start, end)
    if typ in _OPENER:
        kinds = _OPENER[typ]
        if not any(f[0] in kinds for f in before):
            return src.error(f"unexpected `{text}`: no {_OPENER_TEXT[kinds[0]]} is open",
                             start, end)
        return src.error(f"unexpected `{text}`: " + expectation(src, before[-1]), start, end)
    if typ in ("CATCH", "FINALLY"):
        return src.error(f"unexpected `{text}`: it must follow the `}}` of a `try {{ ... }}` "
                         "block", start, end)
    if typ in ("DSEMI", "SEMIAND", "DSEMIAND"):
        return src.error(f"unexpected `{text}`: it can only end a `case` arm", start, end)
    if typ in _BINOPS and (prev is None or ptyp in _BINOPS or ptyp in (
            "NEWLINE", "LPAREN", "LBRACE", "IF", "THEN", "ELSE", "ELIF", "DO", "WHILE",
            "UNTIL", "BANG")):
        return src.error(f"unexpected `{text}`: expected a command before it", start, end)
    if ptyp == "FPARENS" or (ptyp == "WORD" and getattr(prev, "fname", False)):
        return src.error("a function body must be a compound command such as `{ ...; }`",
                         start, end)
    if ptyp in _CLOSED and typ in ("SIMPLE", "WORD", "SIMPLE_PRE", "LPAREN", "FNAME"):
        return src.error(f"unexpected `{text}` after `{_show(src, prev)[0]}`: separate "
                         "commands with `;` or a newline", start, end)
    got = " on the same line" if typ == "NEWLINE" else f", not `{text}`"
    if ptyp == "FOR" and typ != "ARITH_FOR":
        return src.error(f"`for` needs a variable name{got}", start, end)
    if ptyp == "FUNCTION":
        return src.error(f"`function` needs a name{got}", start, end)
    if ptyp == "CASE":
        return src.error(f"`case` needs a word to match{got}", start, end)
    if lx.state == PATTERN and ptyp == "WORD" and typ != "ESAC":
        return src.error(f"`)` expected after the `case` pattern `{_show(src, prev)[0]}`",
                         start, end)
    msg = "unexpected newline" if typ == "NEWLINE" else f"unexpected `{text}`"
    if typ == "REDIR":
        msg = f"unexpected redirection `{text}`"
    if before:
        msg += ": " + expectation(src, before[-1])
    return src.error(msg, start, end)


def call_chain_text(chain) -> str | None:
    """The line under an error's diagnostic that says where it happened, innermost first:

        in deploy (deploy.fm:2), called from main (deploy.fm:4), called from deploy.fm:5

    `chain` is the error record's [[kind, name, file, line]] list, outermost first (the
    machine's `call_chain`); a function shows as NAME (FILE:LINE), a sourced file as
    source (FILE:LINE), the script as FILE:LINE. None when there is nothing to show (a
    missing or malformed chain: records come from a journal)."""
    if not isinstance(chain, list) or len(chain) < 2:
        return None
    parts = []
    for entry in reversed(chain):
        if not (isinstance(entry, list) and len(entry) == 4):
            return None
        kind, name, file, line = (str(x) for x in entry)
        where = f"{file}:{line}" if line not in ("", "0") else file
        if kind == "fn":
            parts.append(f"{name} ({where})")
        elif kind == "src":
            parts.append(f"source ({where})")
        else:
            parts.append(where)
    return "    in " + ", called from ".join(parts)
