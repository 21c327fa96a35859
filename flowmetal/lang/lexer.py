"""The context-sensitive fm lexer: PLY token rules whose functions hand-scan bash words."""
# Bash tokenisation depends on where a word appears (reserved words count only in command
# position, `in` only after `for x`/`case w`, `)` ends a case pattern...), so a Lexer object
# keeps that state and the PLY rule functions consult it. A whole simple command (assignments,
# words, redirections) is scanned at once and handed to the grammar as one SIMPLE token: that
# keeps the LALR grammar small and parsing fast.
from __future__ import annotations

import re

import ply.lex as lex

from flowmetal.lang.ast import (
    SQ,
    ArithCommand,
    CondCommand,
    HereDoc,
    Lit,
    Redirect,
    SimpleCommand,
    Word,
)
from flowmetal.lang.cond import CondParser
from flowmetal.lang.source import Ctx
from flowmetal.lang.support import RETRY_OPTIONS
from flowmetal.lang.words import (
    NORMAL,
    Unterminated,
    arith_end,
    arith_text,
    brace_expand,
    has_brace,
    scan_assign,
    scan_decl_array,
    scan_heredoc,
    scan_word,
)

tokens = (
    "SIMPLE", "SIMPLE_PRE", "FNAME", "FPARENS", "WORD", "REDIR", "COND", "ARITH", "ARITH_FOR",
    "NEWLINE", "SEMI", "AMP", "AND_IF", "OR_IF", "PIPE", "PIPEAND", "LPAREN", "RPAREN",
    "DSEMI", "SEMIAND", "DSEMIAND",
    "IF", "THEN", "ELIF", "ELSE", "FI", "WHILE", "UNTIL", "DO", "DONE", "FOR", "IN", "CASE",
    "ESAC", "FUNCTION", "TRY", "CATCH", "FINALLY", "LBRACE", "RBRACE", "BANG",
    "OP", "IONUM",   # only PLY rule names: the rule functions retype these tokens
)

# Lexer states: what kind of word the grammar can take next.
CMD, AFTER_CLOSE, FOR_NAME, FOR_IN, ARGS, CASE_WORD, CASE_IN, PATTERN, FUNC_NAME, \
    FUNC_PARENS = range(10)

_D = r"(?=[ \t\n;&|<>()]|\Z)"
_RESERVED = re.compile(r"(if|then|elif|else|fi|while|until|do|done|for|case|esac|function|try|"
                       r"catch|finally|\{|\}|!|\[\[)" + _D)
_KW_IN = re.compile(r"in" + _D)
_KW_DO = re.compile(r"do" + _D)
_KW_ESAC = re.compile(r"esac" + _D)
_CATCH_KW = re.compile(r"(catch|finally)" + _D)
_REDIR_START = re.compile(r"[0-9]*[<>]|&>")
_REDIR = re.compile(r"([0-9]*)(<<<|<<-|<<|<>|<&|<|>>|>&|>\||>)|(&>>|&>)")
_FPARENS = re.compile(r"\([ \t]*\)")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
KEYWORDS = {
    "if": "IF", "then": "THEN", "elif": "ELIF", "else": "ELSE", "fi": "FI", "while": "WHILE",
    "until": "UNTIL", "do": "DO", "done": "DONE", "for": "FOR", "case": "CASE", "esac": "ESAC",
    "function": "FUNCTION", "try": "TRY", "catch": "CATCH", "finally": "FINALLY",
    "{": "LBRACE", "}": "RBRACE", "!": "BANG", "in": "IN",
}
_CLOSERS = frozenset(("fi", "done", "esac", "}"))
_OPS = {";": "SEMI", "&": "AMP", "&&": "AND_IF", "||": "OR_IF", "|": "PIPE", "|&": "PIPEAND",
        ";;": "DSEMI", ";&": "SEMIAND", ";;&": "DSEMIAND", "(": "LPAREN", ")": "RPAREN"}
LOOPS = ("while", "until", "for")
_DECL = frozenset(("declare", "typeset", "local", "export", "readonly"))
_BLOCK_CMDS = frozenset(("retry", "timeout"))

# ---- PLY rules (the order of the functions is the order PLY tries them) ----------------------
t_ignore = " \t"


def t_CONT(t):
    r"\\\n"
    st = t.lexer.st
    if t.lexpos + 2 >= len(st.src.text):
        raise st.src.error("line continuation at the end of the input", t.lexpos, t.lexpos + 1,
                           incomplete=True)
    return None


def t_COMMENT(t):
    r"\#[^\n]*"
    return None


def t_NEWLINE(t):
    r"\n"
    return t.lexer.st.on_newline(t)


def t_OP(t):
    r";;&|;;|;&|;|&&|&>>|&>|&|\|\||\|&|\||\(|\)|<<<|<<-|<<|<>|<&|<|>>|>&|>\||>"
    return t.lexer.st.on_op(t)


def t_IONUM(t):
    r"[0-9]+(?=[<>])"
    return t.lexer.st.on_word(t)


def t_WORD(t):
    r"[\s\S]"
    return t.lexer.st.on_word(t)


def t_error(t):  # unreachable: t_WORD matches any character
    t.lexer.skip(1)


def _base_lexer():
    """The PLY lexer, loaded from the committed table module (never built or written here)."""
    from flowmetal.lang import _lextab
    lx = lex.Lexer()
    lx.readtab(_lextab, globals())
    lx.lexoptimize = True   # our rule functions retype tokens; skip PLY's type check
    return lx


_BASE = None


def base_lexer():
    global _BASE
    if _BASE is None:
        _BASE = _base_lexer()
    return _BASE


def build_lextab(outputdir):
    """Regenerate flowmetal/lang/_lextab.py (a development step, see parser.build_tables)."""
    import sys
    lex.lex(module=sys.modules[__name__], optimize=True, lextab="_lextab", outputdir=outputdir,
            errorlog=lex.NullLogger())


def _skip_blank_lines(text, pos):
    """The offset after the blanks, newlines, line continuations and comments at pos."""
    n = len(text)
    while pos < n:
        c = text[pos]
        if c in " \t\n":
            pos += 1
        elif c == "\\" and text.startswith("\n", pos + 1):
            pos += 2
        elif c == "#":
            e = text.find("\n", pos)
            pos = n if e < 0 else e
        else:
            break
    return pos


def unquote_delim(raw):
    """A here-document delimiter with its quotes removed."""
    out = []
    i = 0
    n = len(raw)
    while i < n:
        c = raw[i]
        if c == "\\" and i + 1 < n:
            out.append(raw[i + 1])
            i += 2
            continue
        if c not in "'\"":
            out.append(c)
        i += 1
    return "".join(out)


class Lexer:
    """One tokenisation pass over text[start:] (a script, or the inside of $(...) / `...`)."""

    def __init__(self, src, text, start=0, nested=None, depth=0, subparse=None):
        self.src = src
        self.text = text
        self.ctx = Ctx(text, src, depth, subparse)
        lx = base_lexer().clone()
        lx.input(text)
        lx.lexpos = start
        lx.st = self
        self.lx = lx
        self.start = start
        self.nested = nested      # None, "$(" or "`"
        self.state = CMD
        self.frames = []          # open constructs, for error messages: [kind, phase, pos]
        self.heredocs = []        # here-documents whose bodies start after the next newline
        self.paren = 0            # open subshell parentheses (a `)` at 0 ends a $(...))
        self.done = False
        self.closed = False
        self.end_pos = None
        self.cur = None           # the last token returned
        self.prev = None          # the one before it
        self.last_sig = None      # type of the last token that was not a NEWLINE
        self.last_sig_tok = None  # ... and that token

    # ---- the interface yacc uses -----------------------------------------------------------
    def token(self):
        if self.done:
            return None
        tok = self.lx.token()
        if tok is None:
            self.done = True
            if self.end_pos is None:
                self.end_pos = len(self.text)
            self._at_eof()
        else:
            self.prev = self.cur
            self.cur = tok
            if tok.type != "NEWLINE":
                self.last_sig = tok.type
                self.last_sig_tok = tok
        return tok

    def _at_eof(self):
        if self.heredocs:
            hd = self.heredocs[0]
            raise self.src.error(f"here-document delimited by `{hd[1]}` is never closed",
                                 hd[3], hd[4], incomplete=True)
        if self.nested == "$(" and not self.closed:
            raise self.src.error("unterminated `$(`: expected `)`", self.start - 2,
                                 self.start, incomplete=True)

    # ---- rule handlers ---------------------------------------------------------------------
    def on_newline(self, t):
        pos = t.lexpos + 1
        if self.heredocs:
            pos = self.read_heredocs(pos)
            t.lexer.lexpos = pos
        if self.state not in (FOR_IN, CASE_IN, PATTERN):
            self.state = CMD
        cur = self.cur
        if cur is not None and cur.type == "RBRACE" and getattr(cur, "owner", None) in (
                "TRY", "CATCH"):
            # `try { } <newlines> catch { }`: the newlines do not end the try command.
            p = _skip_blank_lines(self.text, pos)
            if _CATCH_KW.match(self.text, p):
                t.lexer.lexpos = p
                return None
        t.type = "NEWLINE"
        return t

    def on_op(self, t):
        op = t.value
        c = op[0]
        if c == "<" or c == ">" or op == "&>" or op == "&>>":
            return self.on_word(t)
        pos = t.lexpos
        st = self.state
        text = self.text
        if op == "(":
            if st == PATTERN:
                t.type = "LPAREN"
                return t
            if st == FUNC_PARENS:
                m = _FPARENS.match(text, pos)
                if m:
                    t.type = "FPARENS"
                    t.value = "()"
                    t.lexer.lexpos = m.end()
                    self.state = CMD
                    return t
            if text.startswith("((", pos):
                if st == FOR_NAME:
                    return self._arith_for(t)
                if st in (CMD, AFTER_CLOSE, FUNC_PARENS):
                    try:
                        e = arith_end(self.ctx, pos + 2, "((")
                    except Unterminated:
                        raise self.src.error("unterminated `((`: expected `))`", pos, pos + 2,
                                             incomplete=True) from None
                    if e is not None:
                        t.type = "ARITH"
                        t.value = ArithCommand(arith_text(self.ctx, pos + 2, e),
                                               self.src.span(pos, e + 2))
                        t.lexer.lexpos = e + 2
                        self.state = AFTER_CLOSE
                        return t
            if st in (CMD, AFTER_CLOSE, FUNC_PARENS):
                self.frames.append(["(", None, pos])
                self.paren += 1
            t.type = "LPAREN"
            self.state = CMD
            return t
        if op == ")":
            if st == PATTERN:
                t.type = "RPAREN"
                self.state = CMD
                return t
            if self.paren == 0 and self.nested == "$(":
                self.end_pos = pos + 1
                self.closed = True
                t.lexer.lexpos = t.lexer.lexlen
                return None
            frames = self.frames
            t.top = frames[-1] if frames else None
            if self.paren > 0:
                self.paren -= 1
                if frames and frames[-1][0] == "(":
                    frames.pop()
            t.type = "RPAREN"
            self.state = AFTER_CLOSE
            return t
        t.type = _OPS[op]
        if op in (";;", ";&", ";;&"):
            frames = self.frames
            self.state = PATTERN if frames and frames[-1][0] == "case" else CMD
        elif not (op == "|" and st == PATTERN):
            self.state = CMD
        return t

    def on_word(self, t):
        pos = t.lexpos
        st = self.state
        text = self.text
        if st == CMD or st == AFTER_CLOSE or st == FUNC_PARENS:
            m = _RESERVED.match(text, pos)
            if m:
                return self.keyword(t, m.group(1), m.end())
            if st == AFTER_CLOSE:
                return self.word_or_redirect(t)
            return self.simple(t)
        if st == FOR_NAME:
            self.state = FOR_IN
            return self.word_or_redirect(t)
        if st == FOR_IN:
            m = _KW_IN.match(text, pos)
            if m:
                self.state = ARGS
                return self._kw(t, "IN", "in", m.end())
            m = _KW_DO.match(text, pos)
            if m:
                return self.keyword(t, "do", m.end())
            return self.word_or_redirect(t)
        if st == ARGS:
            return self.word_or_redirect(t, brace=True)
        if st == CASE_WORD:
            self.state = CASE_IN
            return self.word_or_redirect(t)
        if st == CASE_IN:
            m = _KW_IN.match(text, pos)
            if m:
                frames = self.frames
                if frames and frames[-1][0] == "case":
                    frames[-1][1] = "arms"
                self.state = PATTERN
                return self._kw(t, "IN", "in", m.end())
            return self.word_or_redirect(t)
        if st == PATTERN:
            m = _KW_ESAC.match(text, pos)
            if m:
                return self.keyword(t, "esac", m.end())
            return self.word_or_redirect(t)
        # FUNC_NAME
        self.state = FUNC_PARENS
        t = self.word_or_redirect(t)
        t.fname = True
        return t

    def _kw(self, t, typ, value, end):
        t.type = typ
        t.value = value
        t.lexer.lexpos = end
        return t

    def keyword(self, t, kw, end):
        pos = t.lexpos
        frames = self.frames
        top = frames[-1] if frames else None
        t.top = top
        if kw == "[[":
            expr, e = CondParser(self.ctx, pos, end).parse()
            t.type = "COND"
            t.value = CondCommand(expr, self.src.span(pos, e))
            t.lexer.lexpos = e
            self.state = AFTER_CLOSE
            return t
        self._kw(t, KEYWORDS[kw], kw, end)
        self.state = AFTER_CLOSE if kw in _CLOSERS else CMD
        if kw == "if":
            frames.append(["if", "cond", pos])
        elif kw == "then":
            if top and top[0] == "if" and top[1] == "cond":
                top[1] = "body"
        elif kw == "elif":
            if top and top[0] == "if":
                top[1] = "cond"
        elif kw == "else":
            if top and top[0] == "if":
                top[1] = "else"
        elif kw == "fi":
            if top and top[0] == "if":
                frames.pop()
        elif kw == "while" or kw == "until":
            frames.append([kw, "cond", pos])
        elif kw == "for":
            frames.append(["for", "head", pos])
            self.state = FOR_NAME
        elif kw == "do":
            if top and top[0] in LOOPS:
                top[1] = "body"
        elif kw == "done":
            if top and top[0] in LOOPS:
                frames.pop()
        elif kw == "case":
            frames.append(["case", "head", pos])
            self.state = CASE_WORD
        elif kw == "esac":
            if top and top[0] == "case":
                frames.pop()
        elif kw == "{":
            frames.append(["{", self.last_sig, pos])
        elif kw == "}":
            if top and top[0] == "{":
                frames.pop()
                t.owner = top[1]
        elif kw == "function":
            self.state = FUNC_NAME
        return t

    def _arith_for(self, t):
        pos = t.lexpos
        text = self.text
        src = self.src
        try:
            e = arith_end(self.ctx, pos + 2, "((")
        except Unterminated:
            raise src.error("unterminated `for ((`: expected `))`", pos, pos + 2,
                            incomplete=True) from None
        if e is None:
            raise src.error("expected `((init; cond; step))` after `for`", pos, pos + 1)
        cuts = [pos + 2]
        depth = 0
        for i in range(pos + 2, e):
            c = text[i]
            if c == "(":
                depth += 1
            elif c == ")":
                depth -= 1
            elif c == ";" and depth == 0:
                cuts.append(i + 1)
        if len(cuts) != 3:
            raise src.error("`for ((...))` needs three expressions separated by `;`",
                            pos, e + 2)
        bounds = [(cuts[0], cuts[1] - 1), (cuts[1], cuts[2] - 1), (cuts[2], e)]
        vals = []
        for a, b in bounds:
            while a < b and text[a] in " \t\n":
                a += 1
            while b > a and text[b - 1] in " \t\n":
                b -= 1
            vals.append(arith_text(self.ctx, a, b) if b > a else None)
        t.type = "ARITH_FOR"
        t.value = (tuple(vals), e + 2)
        t.lexer.lexpos = e + 2
        self.state = AFTER_CLOSE
        return t

    def word_or_redirect(self, t, brace=False):
        """A lone word (a for-list item, case subject or pattern, a name) or a redirection."""
        pos = t.lexpos
        text = self.text
        if _REDIR_START.match(text, pos):
            r, e = self.scan_redirect(pos)
            t.type = "REDIR"
            t.value = r
            t.lexer.lexpos = e
            return t
        parts, e = scan_word(self.ctx, pos, NORMAL)
        if e == pos:
            raise self.src.error(f"unexpected `{text[pos]}`", pos, pos + 1)
        if brace and has_brace(parts):
            parts = brace_expand(self.ctx, parts)
        t.type = "WORD"
        t.value = Word(tuple(parts), self.src.span(pos, e))
        t.lexer.lexpos = e
        return t

    # ---- simple commands and redirections --------------------------------------------------
    def simple(self, t):
        """Scan a whole simple command: [assignments] [words] with redirections anywhere."""
        text = self.text
        n = len(text)
        src = self.src
        ctx = self.ctx
        pos = start = t.lexpos
        last = pos
        assigns = []
        words = []
        redirs = []
        block = decl = False
        typ = "SIMPLE"
        while True:
            while pos < n:
                c = text[pos]
                if c == " " or c == "\t":
                    pos += 1
                elif c == "\\" and pos + 1 < n and text[pos + 1] == "\n":
                    if pos + 2 >= len(src.text):
                        raise src.error("line continuation at the end of the input", pos,
                                        pos + 1, incomplete=True)
                    pos += 2
                else:
                    break
            if pos >= n:
                break
            c = text[pos]
            if c in "\n;|#)":
                break
            if c == "&" and not text.startswith("&>", pos):
                break
            if c == "(":
                if len(words) == 1 and not assigns and not redirs:
                    # `name()` or `name ()`: a function definition.
                    w = words[0]
                    if not _FPARENS.match(text, pos):
                        name = text[w.span.start:w.span.end]
                        raise src.error(f"unexpected `(` after `{name}`: quote it if it is an "
                                        f"argument (a function is defined as `{name}() "
                                        "{ ...; }`)", pos, pos + 1)
                    t.type = "FNAME"
                    t.value = w
                    t.lexer.lexpos = w.span.end
                    self.state = FUNC_PARENS
                    return t
                raise src.error("unexpected `(`: quote it, or start a subshell on its own "
                                "line", pos, pos + 1)
            if _REDIR_START.match(text, pos):
                r, pos = self.scan_redirect(pos)
                redirs.append(r)
                last = pos
                continue
            if not words:
                a = scan_assign(ctx, pos)
                if a is not None:
                    assigns.append(a[0])
                    pos = last = a[1]
                    continue
            else:
                if (block and c == "{" and (pos + 1 >= n or text[pos + 1] in " \t\n;&|<>()")
                        and _block_position(words)):
                    typ = "SIMPLE_PRE"
                    break
                if decl:
                    r = scan_decl_array(ctx, pos)
                    if r is not None:
                        words.append(r[0])
                        pos = last = r[1]
                        continue
            parts, e = scan_word(ctx, pos, NORMAL)
            if has_brace(parts):
                parts = brace_expand(ctx, parts)
            words.append(Word(tuple(parts), src.span(pos, e)))
            if len(words) == 1 and len(parts) == 1 and type(parts[0]) is Lit:
                name = parts[0].text
                block = name in _BLOCK_CMDS
                decl = name in _DECL
            pos = last = e
        t.type = typ
        t.value = SimpleCommand(tuple(assigns), tuple(words), tuple(redirs),
                                src.span(start, last))
        t.lexer.lexpos = last
        self.state = CMD
        return t

    def scan_redirect(self, pos):
        """One redirection at pos: return (Redirect, end)."""
        text = self.text
        src = self.src
        m = _REDIR.match(text, pos)
        if m.group(3):
            op = m.group(3)
            fd = None
        else:
            op = m.group(2)
            fd = int(m.group(1)) if m.group(1) else None
        p = m.end()
        n = len(text)
        while p < n:
            c = text[p]
            if c == " " or c == "\t":
                p += 1
            elif c == "\\" and p + 1 < n and text[p + 1] == "\n":
                p += 2
            else:
                break
        parts, e = scan_word(self.ctx, p, NORMAL)
        if e == p:
            if p < n and text[p] == "(" and p == m.end() and op in ("<", ">"):
                raise src.error(f"process substitution `{op}(...)` is not supported: use a "
                                "temporary file or a pipe", pos, p + 1)
            if op == "<<" or op == "<<-":
                what = "a delimiter word"
            elif op in (">&", "<&"):
                what = "a file descriptor number (or `-`)"
            elif op == "<<<":
                what = "a word"
            else:
                what = "a file name"
            msg = f"expected {what} after `{op}`"
            if p >= len(src.text):
                raise src.error(msg, pos, m.end(), incomplete=True)
            raise src.error(msg, p if p < n else pos, p + 1 if p < n else m.end())
        if op == "<<" or op == "<<-":
            raw = text[p:e]
            delim = unquote_delim(raw)
            expand = not any(q in raw for q in "'\"\\")
            target = HereDoc((), expand, src.span(p, e))
            self.heredocs.append((target, delim, op == "<<-", pos, m.end()))
        else:
            target = Word(tuple(parts), src.span(p, e))
        return Redirect(op, target, src.span(pos, e), fd), e

    def read_heredocs(self, pos):
        """Read the bodies of the pending here-documents starting at pos; return the end."""
        text = self.text
        src = self.src
        n = len(text)
        for hd, delim, strip, opstart, opend in self.heredocs:
            body_start = p = pos
            while True:
                nl = text.find("\n", p)
                line_end = n if nl < 0 else nl
                line = text[p:line_end]
                if (line.lstrip("\t") if strip else line) == delim and (p < n or nl >= 0):
                    body_end = p
                    pos = n if nl < 0 else nl + 1
                    break
                if nl < 0:
                    raise src.error(f"here-document delimited by `{delim}` is never closed",
                                    opstart, opend, incomplete=True)
                p = nl + 1
            if hd.expand:
                parts = scan_heredoc(self.ctx.bounded(body_end), body_start, body_end, strip)
            else:
                body = text[body_start:body_end]
                if strip:
                    body = "".join(ln.lstrip("\t") for ln in body.splitlines(True))
                parts = (SQ(body, src.span(body_start, body_end)),)
            # The HereDoc node was created when `<<` was scanned, before its body could be
            # read; it is completed here, before parse() returns it to anyone.
            object.__setattr__(hd, "parts", parts)
            object.__setattr__(hd, "span", src.span(body_start, body_end))
        self.heredocs = []
        return pos


def _block_position(words):
    """Whether a `{` after these words opens the BODY of `retry [OPTIONS] { BODY }` or
    `timeout DURATION { BODY }`, rather than being an argument of `retry ... [--] CMD ...`."""
    texts = [w.parts[0].text if len(w.parts) == 1 and type(w.parts[0]) is Lit else None
             for w in words]
    if texts[0] == "timeout":
        return len(texts) == 2 and texts[1] != "--"
    i = 1
    while i < len(texts):
        t = texts[i]
        if t == "--":
            return False
        if t is None or t.startswith("-"):
            # An option; `--name value` (but a flag's) and `-n N` take the next word too.
            i += 2 if t is not None and (RETRY_OPTIONS.get(t) is not None or t[:2] == "--"
                                         and "=" not in t and t not in RETRY_OPTIONS) else 1
        else:
            return False     # the CMD of `retry [OPTIONS] CMD ...` has started
    return i == len(texts)


def is_name(s):
    return bool(_NAME.match(s))
