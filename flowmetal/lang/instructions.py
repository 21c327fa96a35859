"""Every instruction of the step machine and its operands: the one list of them.

Compiled code (lang/compile.py) and the controllers' code (machine/durable.py) are lists of
tuples `(NAME, operand...)`; the machine runs each with its method `op_NAME`. Jump targets are
indexes into the same list. A test checks that this table, the compiler, the controllers and
the machine's methods name the same instructions.
"""
from __future__ import annotations

INSTRUCTIONS: dict[str, tuple[tuple[str, ...], str]] = {
    # -- control flow --------------------------------------------------------------------------
    "JMP": (("to",), "go to `to`"),
    "JF": (("to",), "go to `to` when the status is non-zero"),
    "JT": (("to",), "go to `to` when the status is zero"),
    "STATUS": (("n",), "set the status to n"),
    "NEG": ((), "negate the status (`!`)"),
    "CHECK": (("node",), "raise when the status is non-zero and errexit is on"),
    "END": ((), "end of a script, eval, source or branch body: pop the frame"),
    "RET": ((), "end of a function or block body: pop the frame"),
    "UNSUPPORTED": (("node", "message"), "raise: this construct is not supported"),
    # -- blocks (entries of a frame's block stack `b`) -----------------------------------------
    "HANDLER": (("to", "catch?"), "push a handler: an error jumps to `to` as false status"),
    "POPB": ((), "pop the innermost block (handler, loop, redirect, scope)"),
    "LOOP": (("break_to", "continue_to"), "push a loop block for break/continue"),
    "FORNEXT": (("node", "slot", "exit"), "next item of a for loop into its variable, or exit"),
    "ARGS": (("slot",), "the positional parameters into a slot (`for x; do`)"),
    "FINALLY": (("to",), "push a finally block: any exit runs the code at `to` first"),
    "FIN_ENTER": ((), "enter a finally normally (remember the status)"),
    "FIN_END": ((), "leave a finally: resume the exit it interrupted, if any"),
    "SCOPE": (("end",), "push a scope block: `( ... )` (variables, functions, cwd restored)"),
    "SCOPE_END": ((), "pop the scope block and restore"),
    "REDIR": (("node",), "push a redirect block with the compound command's redirections"),
    "CAPBEGIN": (("cmdsub", "slot", "end"), "start `$(...)`: a scope writing to a buffer"),
    "CAPEND": (("slot", "cmdsub"), "end `$(...)`: its output into a slot"),
    "READFILE": (("redirect", "slot"), "`$(< file)`: the file's text into a slot (an effect)"),
    # -- commands ------------------------------------------------------------------------------
    "EXPAND": (("words", "slot", "node", "literal"), "expand words into an argv slot (globs as "
               "effects); `literal` is the argv itself when no word needs expanding, else None"),
    "CMD": (("node", "slot", "block"), "run a simple command: function, builtin or program"),
    "DYNVARS": (("names",), "draw journaled values ($RANDOM, $EPOCHSECONDS, ~user) as effects"),
    "PIPE": (("node", "slots", "pslot", "end"), "a pipeline: one exec effect when all external"),
    "PSTAGE": (("pslot", "k", "n", "stderr", "to"), "start stage k of an fm-code "
               "pipeline; a run of external stages from k: one exec (a stream before fm code)"),
    "PSTAGE_END": (("pslot", "k"), "end stage k: its output "
                   "becomes the next stage's input (a stream it read is closed)"),
    "PIPE_END": (("node", "pslot"), "end an fm-code pipeline: statuses, pipefail"),
    "ARITH": (("text", "sets_status"), "evaluate an arithmetic expression"),
    "COND": (("node",), "evaluate `[[ ... ]]` (file tests as effects)"),
    "CASEWORD": (("word", "slot"), "expand the word of a case into a slot"),
    "CASEPAT": (("patterns", "slot", "to"), "go to `to` when a pattern matches the case word"),
    "FUNC": (("name", "code"), "define a function"),
    "SPAWN": (("code", "node"), "start a durable branch running `code` (`node &`)"),
    # -- controllers (machine/durable.py, unit `sys`) -------------------------------------------
    "RUNARGV": ((), "run the controller's expanded argv as a command (`retry -- cmd`)"),
    "BODY": ((), "push the controller's body frame (a block or sys:run)"),
    "CTL_RET": ((), "return from a controller with the body's status"),
    "RETRY_START": ((), "start a retry (its deadline, if any, as a clock effect)"),
    "RETRY_DONE": ((), "judge the attempt's status"),
    "RETRY_FAILED": ((), "an attempt failed: wait (durable timer) and go again, or give up"),
    "TIMEOUT_START": ((), "set the durable deadline (a clock effect)"),
    "TIMEOUT_FAILED": ((), "the body failed: a deadline of ours gives 124, else pass it on"),
}
"""name -> (operand names, what it does)."""
