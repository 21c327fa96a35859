"""The fm grammar (PLY yacc over the tokens of lexer.py) and the parse entry points."""
from __future__ import annotations

import ply.yacc as yacc

from flowmetal import records
from flowmetal.errors import ParseError
from flowmetal.lang import ast
from flowmetal.lang.ast import (
    AndOr,
    ArithFor,
    Background,
    BraceGroup,
    Case,
    CaseArm,
    For,
    FunctionDef,
    If,
    Pipeline,
    Program,
    Span,
    Subshell,
    Try,
    While,
)
from flowmetal.lang.lexer import Lexer, is_name, tokens  # noqa: F401  (tokens: for yacc)
from flowmetal.lang.limits import allow_deep_recursion, nesting_message, too_deep
from flowmetal.lang.source import Source
from flowmetal.lang.support import check_program

start = "program"


def _sp(p, a, b):
    return p.lexer.src.span(a, b)


def _kw_end(p, i):
    return p.lexpos(i) + len(p[i])


def _program(p, cmds):
    if cmds:
        return Program(tuple(cmds), _sp(p, cmds[0].span.start, cmds[-1].span.end))
    pos = p.lexer.start
    return Program((), _sp(p, pos, pos))


def _with_redirects(node, redirs):
    if not redirs:
        return node
    span = node.span
    end = redirs[-1].span.end
    span = Span(span.start, end, span.line, span.col)
    return records.replace(node, redirects=tuple(redirs), span=span)


# ---- lists ----------------------------------------------------------------------------------

def p_program(p):
    """program : linebreak
               | compound_list"""
    cmds = p[1] if isinstance(p[1], list) else []
    lx = p.lexer
    if lx.nested is None:
        src = lx.src
        p[0] = Program(tuple(cmds), src.span(0, len(src.text)))
    else:
        p[0] = _program(p, cmds)


def p_compound_list(p):
    """compound_list : linebreak term
                     | linebreak term separator"""
    cmds = p[2]
    if len(p) == 4 and p[3] is not None:
        _background(p, cmds, p[3])
    p[0] = cmds


def _background(p, cmds, sep):
    op, pos = sep
    if op == "&":
        last = cmds[-1]
        cmds[-1] = Background(last, _sp(p, last.span.start, pos + 1))


def p_term(p):
    """term : term separator and_or
            | and_or"""
    if len(p) == 2:
        p[0] = [p[1]]
    else:
        cmds = p[1]
        if p[2] is not None:
            _background(p, cmds, p[2])
        cmds.append(p[3])
        p[0] = cmds


def p_and_or(p):
    """and_or : pipeline
              | and_or AND_IF linebreak pipeline
              | and_or OR_IF linebreak pipeline"""
    if len(p) == 2:
        p[0] = p[1]
    else:
        left, right = p[1], p[4]
        p[0] = AndOr(left, p[2], right, _sp(p, left.span.start, right.span.end))


def p_pipeline(p):
    """pipeline : pipe_sequence
                | bangs pipe_sequence"""
    if len(p) == 2:
        cmds, errs = p[1]
        negated = False
        start = cmds[0].span.start
    else:
        cmds, errs = p[2]
        negated = p[1][0] % 2 == 1    # `! ! cmd` is allowed, as in bash
        start = p[1][1]
    if len(cmds) == 1 and not negated:
        p[0] = cmds[0]
        return
    p[0] = Pipeline(tuple(cmds), negated, _sp(p, start, cmds[-1].span.end), tuple(errs))


def p_bangs(p):
    """bangs : BANG
             | bangs BANG"""
    p[0] = (1, p.lexpos(1)) if len(p) == 2 else (p[1][0] + 1, p[1][1])


def p_pipe_sequence(p):
    """pipe_sequence : command
                     | pipe_sequence PIPE linebreak command
                     | pipe_sequence PIPEAND linebreak command"""
    if len(p) == 2:
        p[0] = ([p[1]], [])
    else:
        cmds, errs = p[1]
        cmds.append(p[4])
        errs.append(p[2] == "|&")
        p[0] = p[1]


def p_command(p):
    """command : SIMPLE
               | compound_command
               | function_definition"""
    p[0] = p[1]


def p_command_redirected(p):
    """command : compound_command redirect_list"""
    p[0] = _with_redirects(p[1], p[2])


def p_command_block(p):
    """command : SIMPLE_PRE brace_group
               | SIMPLE_PRE brace_group redirect_list"""
    cmd = p[1]
    group = p[2]
    redirs = cmd.redirects + (tuple(p[3]) if len(p) == 4 else ())
    end = redirs[-1].span.end if len(p) == 4 else group.span.end
    s = cmd.span
    p[0] = records.replace(cmd, block=group, redirects=redirs,
                               span=Span(s.start, max(end, s.end), s.line, s.col))


def p_compound_command(p):
    """compound_command : brace_group
                        | subshell
                        | for_clause
                        | case_clause
                        | if_clause
                        | while_clause
                        | try_clause"""
    p[0] = p[1]


def p_compound_command_tok(p):
    """compound_command : COND
                        | ARITH"""
    p[0] = p[1]


def p_redirect_list(p):
    """redirect_list : REDIR
                     | redirect_list REDIR"""
    if len(p) == 2:
        p[0] = [p[1]]
    else:
        p[1].append(p[2])
        p[0] = p[1]


def p_subshell(p):
    """subshell : LPAREN compound_list RPAREN"""
    p[0] = Subshell(_program(p, p[2]), _sp(p, p.lexpos(1), p.lexpos(3) + 1))


def p_brace_group(p):
    """brace_group : LBRACE compound_list RBRACE"""
    p[0] = BraceGroup(_program(p, p[2]), _sp(p, p.lexpos(1), p.lexpos(3) + 1))


# ---- loops ----------------------------------------------------------------------------------

def _for_var(p, w):
    src = p.lexer.src
    text = src.text[w.span.start:w.span.end]
    if len(w.parts) != 1 or type(w.parts[0]) is not ast.Lit or not is_name(text):
        raise src.error(f"`for` needs a variable name, not `{text}`", w.span.start, w.span.end)
    return text


def p_for_clause(p):
    """for_clause : FOR WORD linebreak do_group
                  | FOR WORD SEMI linebreak do_group"""
    body, end = p[len(p) - 1]
    p[0] = For(_for_var(p, p[2]), None, body, _sp(p, p.lexpos(1), end))


def p_for_clause_in(p):
    """for_clause : FOR WORD linebreak IN sequential_sep do_group
                  | FOR WORD linebreak IN wordlist sequential_sep do_group"""
    body, end = p[len(p) - 1]
    words = tuple(p[5]) if len(p) == 8 else ()
    p[0] = For(_for_var(p, p[2]), words, body, _sp(p, p.lexpos(1), end))


def p_for_arith(p):
    """for_clause : FOR ARITH_FOR linebreak do_group
                  | FOR ARITH_FOR SEMI linebreak do_group"""
    body, end = p[len(p) - 1]
    (init, cond, step), _ = p[2]
    p[0] = ArithFor(init, cond, step, body, _sp(p, p.lexpos(1), end))


def p_wordlist(p):
    """wordlist : WORD
                | wordlist WORD"""
    if len(p) == 2:
        p[0] = [p[1]]
    else:
        p[1].append(p[2])
        p[0] = p[1]


def p_do_group(p):
    """do_group : DO compound_list DONE"""
    p[0] = (_program(p, p[2]), _kw_end(p, 3))


def p_while_clause(p):
    """while_clause : WHILE compound_list do_group
                    | UNTIL compound_list do_group"""
    body, end = p[3]
    p[0] = While(_program(p, p[2]), body, p[1] == "until", _sp(p, p.lexpos(1), end))


# ---- case -----------------------------------------------------------------------------------

def p_case_clause(p):
    """case_clause : CASE WORD linebreak IN linebreak case_list ESAC
                   | CASE WORD linebreak IN linebreak case_list_ns ESAC"""
    p[0] = Case(p[2], tuple(p[6]), _sp(p, p.lexpos(1), _kw_end(p, 7)))


def p_case_clause_empty(p):
    """case_clause : CASE WORD linebreak IN linebreak ESAC"""
    p[0] = Case(p[2], (), _sp(p, p.lexpos(1), _kw_end(p, 6)))


def p_case_list_ns(p):
    """case_list_ns : case_list case_item_ns
                    | case_item_ns"""
    if len(p) == 2:
        p[0] = [p[1]]
    else:
        p[1].append(p[2])
        p[0] = p[1]


def p_case_list(p):
    """case_list : case_list case_item
                 | case_item"""
    if len(p) == 2:
        p[0] = [p[1]]
    else:
        p[1].append(p[2])
        p[0] = p[1]


def _arm_body(p, cmds, pos):
    if cmds:
        return _program(p, cmds)
    return Program((), _sp(p, pos, pos))


def p_case_item_ns(p):
    """case_item_ns : pattern_head linebreak
                    | pattern_head compound_list"""
    pats, start, end = p[1]
    body = _arm_body(p, p[2] if isinstance(p[2], list) else None, end)
    p[0] = CaseArm(tuple(pats), body, ";;", _sp(p, start, max(end, body.span.end)))


def p_case_item(p):
    """case_item : pattern_head linebreak case_term linebreak
                 | pattern_head compound_list case_term linebreak"""
    pats, start, end = p[1]
    body = _arm_body(p, p[2] if isinstance(p[2], list) else None, end)
    term, tpos = p[3]
    p[0] = CaseArm(tuple(pats), body, term, _sp(p, start, tpos + len(term)))


def p_case_term(p):
    """case_term : DSEMI
                 | SEMIAND
                 | DSEMIAND"""
    p[0] = (p[1], p.lexpos(1))


def p_pattern_head(p):
    """pattern_head : pattern RPAREN
                    | LPAREN pattern RPAREN"""
    if len(p) == 3:
        pats = p[1]
        p[0] = (pats, pats[0].span.start, p.lexpos(2) + 1)
    else:
        p[0] = (p[2], p.lexpos(1), p.lexpos(3) + 1)


def p_pattern(p):
    """pattern : WORD
               | pattern PIPE WORD"""
    if len(p) == 2:
        p[0] = [p[1]]
    else:
        p[1].append(p[3])
        p[0] = p[1]


# ---- if -------------------------------------------------------------------------------------

def p_if_clause(p):
    """if_clause : IF compound_list THEN compound_list else_part FI
                 | IF compound_list THEN compound_list FI"""
    clauses = [(_program(p, p[2]), _program(p, p[4]))]
    else_body = None
    if len(p) == 7:
        more, else_body = p[5]
        clauses.extend(more)
    p[0] = If(tuple(clauses), else_body, _sp(p, p.lexpos(1), _kw_end(p, len(p) - 1)))


def p_else_part(p):
    """else_part : ELIF compound_list THEN compound_list
                 | ELIF compound_list THEN compound_list else_part
                 | ELSE compound_list"""
    if len(p) == 3:
        p[0] = ([], _program(p, p[2]))
    elif len(p) == 5:
        p[0] = ([(_program(p, p[2]), _program(p, p[4]))], None)
    else:
        more, else_body = p[5]
        p[0] = ([(_program(p, p[2]), _program(p, p[4]))] + more, else_body)


# ---- functions and try ----------------------------------------------------------------------

def _fname(p, w):
    src = p.lexer.src
    text = src.text[w.span.start:w.span.end]
    if len(w.parts) != 1 or type(w.parts[0]) is not ast.Lit:
        raise src.error(f"invalid function name `{text}`: use a plain unquoted word",
                        w.span.start, w.span.end)
    return text


def p_function_definition(p):
    """function_definition : FNAME FPARENS linebreak function_body"""
    w = p[1]
    body = p[4]
    p[0] = FunctionDef(_fname(p, w), body, _sp(p, w.span.start, body.span.end))


def p_function_keyword(p):
    """function_definition : FUNCTION WORD linebreak function_body
                           | FUNCTION WORD FPARENS linebreak function_body"""
    body = p[len(p) - 1]
    p[0] = FunctionDef(_fname(p, p[2]), body, _sp(p, p.lexpos(1), body.span.end))


def p_function_body(p):
    """function_body : compound_command
                     | compound_command redirect_list"""
    p[0] = p[1] if len(p) == 2 else _with_redirects(p[1], p[2])


# (A PLY production cannot be wrapped over lines, hence the noqa on the long one.)
def p_try_clause(p):
    """try_clause : TRY linebreak brace_group CATCH linebreak brace_group
                  | TRY linebreak brace_group FINALLY linebreak brace_group
                  | TRY linebreak brace_group CATCH linebreak brace_group FINALLY linebreak brace_group"""  # noqa: E501
    body = p[3]
    catch = finally_ = None
    if p[4] == "catch":
        catch = p[6]
        if len(p) == 10:
            finally_ = p[9]
    else:
        finally_ = p[6]
    last = p[len(p) - 1]
    p[0] = Try(body, catch, finally_, _sp(p, p.lexpos(1), last.span.end))


# ---- separators -----------------------------------------------------------------------------

def p_separator_op(p):
    """separator_op : AMP
                    | SEMI"""
    p[0] = (p[1], p.lexpos(1))


def p_separator(p):
    """separator : separator_op linebreak
                 | newline_list"""
    p[0] = p[1] if len(p) == 3 else None


def p_sequential_sep(p):
    """sequential_sep : SEMI linebreak
                      | newline_list"""
    p[0] = None


def p_linebreak(p):
    """linebreak : newline_list
                 | empty"""
    p[0] = None


def p_newline_list(p):
    """newline_list : NEWLINE
                    | newline_list NEWLINE"""
    p[0] = None


def p_empty(p):
    """empty :"""
    p[0] = None


def p_error(tok):
    # Only used while generating the tables; parses install a per-lexer handler (_run).
    raise SyntaxError(tok)


# ---- entry points ---------------------------------------------------------------------------

_BASE = None


def _base_parser():
    """The LR parser built from the committed tables (never regenerated at run time)."""
    global _BASE
    if _BASE is None:
        from flowmetal.lang import _parsetab
        lr = yacc.LRTable()
        lr.read_table(_parsetab)
        lr.bind_callables(globals())
        _BASE = yacc.LRParser(lr, p_error)
    return _BASE


def _run(lexer):
    """Run one LR parse over lexer's tokens. Each (nested) parse gets its own shallow copy of
    the parser so the error handler is bound to the right lexer (and threads don't clash)."""
    def on_error(tok):
        from flowmetal.lang.errmsg import syntax_error
        raise syntax_error(lexer, tok)
    parser = object.__new__(yacc.LRParser)
    parser.__dict__.update(_base_parser().__dict__)
    parser.errorfunc = on_error
    return parser.parse(lexer=lexer)


def _subparse(ctx, start, kind):
    """Parse the program inside $( ... ) (ending at its `)`) or `...` (ending at the bound)."""
    key = (start, kind, len(ctx.text))
    done = ctx.src.subparses.get(key)
    if done is not None:
        return done
    lexer = Lexer(ctx.src, ctx.text, start, nested=kind, depth=ctx.depth + 1,
                  subparse=_subparse)
    done = ctx.src.subparses[key] = (_run(lexer), lexer.end_pos)
    return done


def parse_mapped(ctx, inner, offs):
    """Parse `inner` (unescaped backquote text) and map its offsets back through offs."""
    outer = ctx.src
    src = Source(inner, outer.filename)
    lexer = Lexer(src, inner, 0, nested="`", depth=ctx.depth + 1, subparse=_subparse)
    try:
        prog = _run(lexer)
    except ParseError as e:
        a = offs[min(e.start, len(offs) - 1)]
        b = offs[min(e.end - 1, len(offs) - 1)] + 1 if e.end > e.start else a + 1
        raise outer.error(e.message, a, max(a + 1, b),
                          incomplete=type(e).__name__ == "IncompleteInput") from None

    def fix(s):
        # offs[i] is where inner character i came from; an end offset maps via the last
        # character it covers.
        a = offs[min(s.start, len(offs) - 1)]
        b = offs[min(s.end - 1, len(offs) - 1)] + 1 if s.end > s.start else a
        return outer.span(a, max(a, b))
    return _remap(prog, fix)


def _remap(node, fix):
    if isinstance(node, Span):
        return fix(node)
    if isinstance(node, tuple):
        return tuple(_remap(x, fix) for x in node)
    if records.is_record(node) and not isinstance(node, type):
        return type(node)(**{f: _remap(getattr(node, f), fix)
                             for f in records.fields(node)})
    return node


def parse_program(text: str, filename: str) -> Program:
    """Parse a whole script. Every failure surfaces as ParseError."""
    if not isinstance(text, str):
        raise TypeError("parse() needs a str")
    src = Source(text, filename)
    allow_deep_recursion()      # in case an embedder (a test harness) lowered it again
    try:
        program = _run(Lexer(src, text, 0, subparse=_subparse))
        deep = too_deep(program)
        if deep is not None:
            raise src.error(nesting_message(), deep.start, deep.end)
        check_program(program, src)    # what fm cannot run is refused before anything runs
        return program
    except ParseError:
        raise
    except RecursionError:
        raise src.error("the input is nested too deeply to parse", 0, 1) from None
    except Exception as e:  # a parser bug must still reach the user as a located error
        raise src.error(f"internal parser error ({type(e).__name__}: {e}); please report it",
                        0, 1) from None


def build_tables():
    """Regenerate the committed table modules _parsetab.py and _lextab.py (development only)."""
    import os
    import sys

    from flowmetal.lang import lexer
    here = os.path.dirname(os.path.abspath(__file__))
    lexer.build_lextab(here)
    yacc.yacc(module=sys.modules[__name__], tabmodule="_parsetab", outputdir=here,
              debug=False, write_tables=True, errorlog=yacc.PlyLogger(sys.stderr))


if __name__ == "__main__":
    build_tables()
