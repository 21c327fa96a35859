# _lextab.py. This file automatically created by PLY (version 3.11). Don't edit!
_tabversion   = '3.10'
_lextokens    = set(('AMP', 'AND_IF', 'ARITH', 'ARITH_FOR', 'BANG', 'CASE', 'CATCH', 'COND', 'DO', 'DONE', 'DSEMI', 'DSEMIAND', 'ELIF', 'ELSE', 'ESAC', 'FI', 'FINALLY', 'FNAME', 'FOR', 'FPARENS', 'FUNCTION', 'IF', 'IN', 'IONUM', 'LBRACE', 'LPAREN', 'NEWLINE', 'OP', 'OR_IF', 'PIPE', 'PIPEAND', 'RBRACE', 'REDIR', 'RPAREN', 'SEMI', 'SEMIAND', 'SIMPLE', 'SIMPLE_PRE', 'THEN', 'TRY', 'UNTIL', 'WHILE', 'WORD'))
_lexreflags   = 64
_lexliterals  = ''
_lexstateinfo = {'INITIAL': 'inclusive'}
_lexstatere   = {'INITIAL': [('(?P<t_CONT>\\\\\\n)|(?P<t_COMMENT>\\#[^\\n]*)|(?P<t_NEWLINE>\\n)|(?P<t_OP>;;&|;;|;&|;|&&|&>>|&>|&|\\|\\||\\|&|\\||\\(|\\)|<<<|<<-|<<|<>|<&|<|>>|>&|>\\||>)|(?P<t_IONUM>[0-9]+(?=[<>]))|(?P<t_WORD>[\\s\\S])', [None, ('t_CONT', 'CONT'), ('t_COMMENT', 'COMMENT'), ('t_NEWLINE', 'NEWLINE'), ('t_OP', 'OP'), ('t_IONUM', 'IONUM'), ('t_WORD', 'WORD')])]}
_lexstateignore = {'INITIAL': ' \t'}
_lexstateerrorf = {'INITIAL': 't_error'}
_lexstateeoff = {}
