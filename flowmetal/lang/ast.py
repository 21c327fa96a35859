"""The fm abstract syntax tree: one frozen dataclass per construct, each with a Span."""
from __future__ import annotations

from typing import Optional, Union

from flowmetal.records import record


@record
class Span:
    """A region of source text. Offsets index the text given to parse(); line and col are 1-based
    and describe `start`."""
    start: int
    end: int
    line: int
    col: int


# ----------------------------------------------------------------------------------------------
# Words. A Word is a sequence of parts; expansion turns it into zero or more strings.

@record
class Lit:
    """Literal text. Unquoted when it is a direct part of a Word (glob characters * ? [ in it are
    live, as is a leading ~ handled by Tilde); quoted when inside DQ."""
    text: str
    span: Span


@record
class SQ:
    """Quoted literal text: '...', the decoded value of $'...', or a backslash-escaped char
    outside quotes (`\\*` is SQ('*')). Never globbed, never split."""
    text: str
    span: Span


@record
class DQ:
    """A double-quoted string "..."; parts are Lit (quoted), Param, CmdSub, ArithSub."""
    parts: tuple
    span: Span


@record
class Tilde:
    """A leading ~ or ~user in an unquoted word (or after : / = in an assignment value)."""
    user: str
    span: Span


@record
class Param:
    """A parameter expansion: $x, ${x}, ${x op arg}, ${a[i]}, ${#x}, ${!m[@]}, $1, $@, $?...

    name:  a variable name, a digit string ('0', '1', '10') or one of '@ * # ? $ ! -'.
    index: for a[i] forms: a Word (the subscript, arithmetic for indexed arrays, a string for
           associative ones), or the literal Word of '@' / '*' (use Param.index_all).
    op:    None (plain), or one of
             ':-' '-' ':=' '=' ':?' '?' ':+' '+'   (arg: Word, may be None for ${x:?})
             '#' '##' '%' '%%'                      (arg: Word pattern)
             '/' '//' '/#' '/%'                      (arg: Word pattern; arg2: Word replacement
                                                      or None)
             ':'                                    (substring; arg: ArithText offset, arg2:
                                                     ArithText length or None)
             'len'                                  ${#x}, ${#a[@]} (no arg)
             'keys'                                 ${!m[@]} / ${!m[*]} (no arg)
             '^' '^^' ',' ',,'                       case modification (arg: pattern Word or None)
    """
    name: str
    span: Span
    index: Optional['Word'] = None
    index_all: Optional[str] = None   # '@' or '*' when the subscript is [@] / [*]
    op: Optional[str] = None
    arg: Optional[object] = None
    arg2: Optional[object] = None
    braced: bool = False


@record
class ArithText:
    """Arithmetic source text, evaluated at run time by the arithmetic evaluator. `text` is the raw
    expression between the delimiters; `span` covers it (for error carets)."""
    text: str
    span: Span
    parts: tuple = ()   # when the text holds $(...), ${...} or `...`: its parts as in a
                        # here-document, expanded to text before evaluation (as bash does)


@record
class CmdSub:
    """$(...) or `...`: body is a parsed Program of the inner text."""
    body: 'Program'
    span: Span


@record
class ArithSub:
    """$((...))."""
    expr: ArithText
    span: Span


@record
class BraceAlt:
    """Brace alternation {a,b,c} in unquoted text; each alternative is a tuple of word parts."""
    alts: tuple          # tuple[tuple[part, ...], ...]
    span: Span


@record
class BraceSeq:
    """Brace sequence {1..5}, {a..e}, {1..10..2}; start/end are the literal texts."""
    start: str
    end: str
    step: Optional[int]
    span: Span


WordPart = Union[Lit, SQ, DQ, Tilde, Param, CmdSub, ArithSub, BraceAlt, BraceSeq]


@record
class Word:
    parts: tuple          # tuple[WordPart, ...]
    span: Span


# ----------------------------------------------------------------------------------------------
# Assignments and redirections

@record
class ArrayLit:
    """The value of a=(...) : items are Words, or (key Word, value Word) pairs for [k]=v."""
    items: tuple
    span: Span


@record
class Assign:
    """name=value, name+=value, name[i]=value, name=(...). value is None for `name=`
    (the empty string)."""
    name: str
    op: str                       # '=' or '+='
    value: Optional[Union[Word, ArrayLit]]
    span: Span
    index: Optional[Word] = None


@record
class HereDoc:
    """A here-document body. expand=False for <<'EOF' (body is literal text: one Lit/SQ part);
    otherwise parts are as in DQ (Lit, Param, CmdSub, ArithSub). strip_tabs for <<-."""
    parts: tuple
    expand: bool
    span: Span


@record
class Redirect:
    """fd op target. op is one of
         '>' '>>' '>|' '<' '<>' '&>' '&>>'   target: Word (a path)
         '>&' '<&'                          target: Word (an fd number or '-' to close)
         '<<' '<<-'                         target: HereDoc
         '<<<'                              target: Word (a here-string)
    fd is None when not written (the default: 1 for output ops, 0 for input ops)."""
    op: str
    target: Union[Word, HereDoc]
    span: Span
    fd: Optional[int] = None


# ----------------------------------------------------------------------------------------------
# Commands

@record
class SimpleCommand:
    """[assigns] [words] [redirects]. `block` is the trailing { BODY } of `retry ... { }` and
    `timeout D { }` (the parser recognises it only after those command names)."""
    assigns: tuple        # tuple[Assign, ...]
    words: tuple          # tuple[Word, ...]
    redirects: tuple      # tuple[Redirect, ...]
    span: Span
    block: Optional['BraceGroup'] = None


@record
class Pipeline:
    """a | b |& c. stderr[i] is True when command i is joined to the next by |&."""
    commands: tuple
    negated: bool
    span: Span
    stderr: tuple = ()


@record
class AndOr:
    """left && right, left || right (left-associative: a && b || c is AndOr(AndOr(a,b),c))."""
    left: 'Command'
    op: str               # '&&' or '||'
    right: 'Command'
    span: Span


@record
class Background:
    """cmd & — a durable branch (SPEC 1.7)."""
    command: 'Command'
    span: Span


@record
class Program:
    """A sequence of commands (a script, a block body, a $(...) body)."""
    commands: tuple
    span: Span


@record
class BraceGroup:
    body: Program
    span: Span
    redirects: tuple = ()


@record
class Subshell:
    """( ... ): a scope, not a fork (SPEC 1.2 rule 8)."""
    body: Program
    span: Span
    redirects: tuple = ()


@record
class If:
    """clauses: ((cond Program, body Program), ...) for if/elif; else_body or None."""
    clauses: tuple
    else_body: Optional[Program]
    span: Span
    redirects: tuple = ()


@record
class While:
    cond: Program
    body: Program
    until: bool
    span: Span
    redirects: tuple = ()


@record
class For:
    """for var in words; do body; done. words None means `for var; do` (iterate "$@")."""
    var: str
    words: Optional[tuple]
    body: Program
    span: Span
    redirects: tuple = ()


@record
class ArithFor:
    """for ((init; cond; step)); do body; done. Each part may be None (empty)."""
    init: Optional[ArithText]
    cond: Optional[ArithText]
    step: Optional[ArithText]
    body: Program
    span: Span
    redirects: tuple = ()


@record
class CaseArm:
    patterns: tuple       # tuple[Word, ...]
    body: Program
    terminator: str       # ';;', ';&' or ';;&'
    span: Span


@record
class Case:
    word: Word
    arms: tuple           # tuple[CaseArm, ...]
    span: Span
    redirects: tuple = ()


# [[ ... ]] expressions
@record
class CondUnary:
    """-z -n -e -f -d -r -w -x -s -L -h -p -S -b -c -t -v and friends; operand a Word."""
    op: str
    operand: Word
    span: Span


@record
class CondBinary:
    """== = != =~ < > -eq -ne -lt -le -gt -ge -nt -ot -ef. For == and != the right Word is a
    pattern (unquoted parts are live glob syntax); for =~ it is a regex."""
    op: str
    left: Word
    right: Word
    span: Span


@record
class CondWord:
    """[[ word ]]: true when the word is non-empty."""
    word: Word
    span: Span


@record
class CondNot:
    expr: object
    span: Span


@record
class CondAnd:
    left: object
    right: object
    span: Span


@record
class CondOr:
    left: object
    right: object
    span: Span


@record
class CondCommand:
    """[[ expr ]]"""
    expr: object
    span: Span
    redirects: tuple = ()


@record
class ArithCommand:
    """(( expr )): status 0 when the value is non-zero."""
    expr: ArithText
    span: Span
    redirects: tuple = ()


@record
class FunctionDef:
    """name() body  /  function name body  /  function name() body. body is a compound command
    (usually a BraceGroup)."""
    name: str
    body: 'Command'
    span: Span


@record
class Try:
    """try { } [catch { }] [finally { }] — at least one of catch/finally is present."""
    body: BraceGroup
    catch: Optional[BraceGroup]
    finally_: Optional[BraceGroup]
    span: Span
    redirects: tuple = ()


Command = Union[SimpleCommand, Pipeline, AndOr, Background, BraceGroup, Subshell, If, While,
                For, ArithFor, Case, CondCommand, ArithCommand, FunctionDef, Try]
