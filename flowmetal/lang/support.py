"""What fm runs of bash's builtins: their options, the ones it lacks, and the check of both.

One table serves `fm check` (every parse runs `check_program`, so a script is refused before
anything runs) and the machine's builtins (they parse their options with `parse_options` and
report what they cannot do with the same messages), so that whatever `fm check` accepts does
not fail at run time as "not supported" or "command not found".
"""
from __future__ import annotations

from flowmetal.lang import ast as A
from flowmetal.records import fields

UNSUPPORTED: dict[str, str] = {
    "alias": "define a function instead",
    "unalias": "define functions instead of aliases (`unset -f NAME` removes one)",
    "bg": "`CMD &` starts a durable branch; `wait` joins it",
    "fg": "`CMD &` starts a durable branch; `wait` joins it",
    "jobs": "`fm ps` lists jobs; a script waits for its branches with `wait`",
    "disown": "a branch belongs to its job until it ends; run a separate job with `fm run -d`",
    "suspend": "a job can sleep durably: `sleep`, `await`",
    "logout": "use `exit`",
    "bind": "fm scripts have no line editor",
    "compgen": "fm scripts have no completion; list files with a glob",
    "complete": "fm scripts have no completion",
    "compopt": "fm scripts have no completion",
    "enable": "fm's builtins cannot be switched off; `command NAME` runs the program",
    "fc": "fm scripts have no history",
    "history": "fm scripts have no history; `fm log JOB` shows a job's",
    "help": "run `fm help` in a terminal",
    "times": "run the work under `command time` or `/usr/bin/time`",
    "ulimit": "set limits before fm starts, or run `prlimit` for one program",
    "umask": "run a program under `sh -c 'umask 077; exec CMD'`",
    "coproc": "start a durable branch with `CMD &` and pass data through a file",
    "time": "`command time CMD` runs the time program",
}
"""bash builtins (and the keywords `coproc`, `time`) fm does not have, with what to do
instead."""

OPTIONS: dict[str, str] = {
    "read": "ersa:d:i:n:N:p:t:u:",
    "declare": "+aAfFgilnprtux",
    "typeset": "+aAfFgilnprtux",
    "local": "+aAilnprtux",
    "export": "np",
    "readonly": "aAp",
    "unset": "fnv",
    "printf": "v:",
    "mapfile": "d:n:O:s:tu:",
    "readarray": "d:n:O:s:tu:",
    "trap": "lp",
    "shopt": "opqsu",
    "hash": "r",
    "caller": "",
    "getopts": "",
    "dirs": "clpv",
    "pushd": "n",
    "popd": "n",
}
"""getopt-style option letters of the builtins whose options are checked (`x:` takes an
argument; a leading `+` allows `+x` to turn an attribute off)."""

LACKING: dict[tuple, str] = {
    ("declare", "I"): "fm does not inherit attributes; declare them again",
    ("local", "I"): "fm does not inherit attributes; declare them again",
    ("export", "f"): "programs cannot call fm functions; `export -f` has no meaning",
    ("readonly", "f"): "fm functions cannot be made readonly",
    ("mapfile", "C"): "read the lines first, then loop over the array",
    ("readarray", "C"): "read the lines first, then loop over the array",
    ("hash", "p"): "call the program by its path",
    ("hash", "d"): "fm keeps no command hash table",
    ("hash", "t"): "use `command -v NAME`",
    ("hash", "l"): "fm keeps no command hash table",
}
"""Options bash has that fm does not, with what to do instead."""

TRAP_SIGNALS: dict[str, str] = {"EXIT": "EXIT", "0": "EXIT", "ERR": "ERR", "INT": "INT",
                                "SIGINT": "INT", "2": "INT", "TERM": "TERM", "SIGTERM": "TERM",
                                "15": "TERM"}
"""The conditions `trap` takes (docs/language.md says what each means for a durable job)."""

TRAP_HINT = ("fm traps EXIT, ERR, INT (Ctrl-C) and TERM (`fm cancel`); a job never sees the "
             "others (a closed terminal does not end it)")

SHOPT: dict[str, bool] = {
    # fm's fixed behaviour: setting the option to this value is accepted and changes nothing
    "lastpipe": True, "inherit_errexit": True, "failglob": True, "globasciiranges": True,
    "nullglob": False, "extglob": False, "globstar": False, "dotglob": False,
    "nocaseglob": False, "nocasematch": False, "expand_aliases": False, "xpg_echo": False,
    "extdebug": False,
    # only an interactive bash uses these; in a script they change nothing
    "checkwinsize": True, "histappend": False, "cmdhist": True, "lithist": False,
    "progcomp": True, "promptvars": True, "interactive_comments": True, "hostcomplete": True,
    "checkjobs": False, "huponexit": False, "autocd": False, "cdspell": False,
    "dirspell": False, "direxpand": False, "histreedit": False, "histverify": False,
    "no_empty_cmd_completion": False, "complete_fullquote": True, "mailwarn": False,
}
"""`shopt` options fm knows, with the value it always has."""

SHOPT_HINT: dict[str, str] = {
    "nullglob": "fm stops at a glob that matches nothing: test first with `[[ -e ... ]]`",
    "failglob": "fm stops at a glob that matches nothing",
    "extglob": "use `[[ $x =~ REGEX ]]` or `case` with several patterns",
    "globstar": "use `find` for a recursive listing",
    "dotglob": "match dot files with a pattern of their own (`.*`)",
    "nocaseglob": "fm globs are case-sensitive",
    "nocasematch": "compare lowercased values: `${x,,}`",
    "lastpipe": "every stage of an fm-code pipeline runs in the current shell",
    "inherit_errexit": "a failure inside `$(...)` always fails its command",
    "expand_aliases": "define functions instead of aliases",
}

SET_FLAGS_IGNORED = "hbmBHvE"
"""`set` flags accepted without effect (interactive ones, and what fm always does: -B brace
expansion, -E the ERR trap inside functions)."""

SET_FLAGS_LACKING: dict[str, str] = {
    "C": "fm's `>` always truncates; test with `[[ -e ... ]]` first",
    "n": "run `fm check FILE` to check a script without running it",
    "a": "export the variables by name",
    "k": "put assignments before the command name",
    "t": "use `exit` after the command",
    "T": "fm has no DEBUG or RETURN traps",
    "P": "use `cd -P` and `pwd -P`",
}
"""`set` flags bash has that fm does not, with what to do instead."""


RETRY_OPTIONS: dict[str, str | None] = {
    "-n": "attempts", "--attempts": "attempts", "--delay": "delay", "--backoff": "backoff",
    "--max-delay": "max_delay", "--timeout": "timeout", "--on": "on", "--jitter": None}
"""`retry`'s options, each with the setting it gives a value to (None: a flag)."""

RETRY_USAGE = ("usage: retry [-n N|--attempts N] [--delay D] [--backoff F] [--max-delay D] "
               "[--jitter] [--timeout D] [--on S,...] { BODY } | -- CMD [ARG...]")


class OptionError(Exception):
    """A builtin got an option it does not take: `message` says which and what to do."""

    def __init__(self, message: str, index: int = 0):
        super().__init__(message)
        self.message = message
        self.index = index        # the argument holding the bad option


def unsupported(name: str) -> str:
    """The message for a bash builtin fm does not have."""
    return f"`{name}` is not supported in fm: {UNSUPPORTED[name]}"


def parse_options(name: str, args: list, spec: str | None = None) -> tuple:
    """Split the leading options off `args` as bash's builtins do (`-rs`, `-n1` or `-n 1`,
    `--` ends them, `-` alone is an operand). Returns ([(letter, value or None)], the rest);
    a `+x` comes back as letter "+x". Raises OptionError. An argument that is not a string
    (an array literal) ends the options."""
    spec = OPTIONS[name] if spec is None else spec
    plus = spec.startswith("+")
    out = []
    i = 0
    while i < len(args):
        a = args[i]
        if not isinstance(a, str) or len(a) < 2 or a[0] not in "-+" or a[0] == "+" and not plus:
            break
        if a == "--":
            return out, args[i + 1:]
        j = 1
        while j < len(a):
            ch = a[j]
            k = spec.find(ch)
            if ch in "+:" or k < 0:
                raise OptionError(_bad_option(name, ch, spec), i)
            if spec[k + 1:k + 2] == ":":
                if a[0] == "+":
                    raise OptionError(_bad_option(name, ch, spec), i)
                if j + 1 < len(a):
                    out.append((ch, a[j + 1:]))
                elif i + 1 < len(args) and isinstance(args[i + 1], str):
                    i += 1
                    out.append((ch, args[i]))
                else:
                    raise OptionError(f"{name}: -{ch}: option requires an argument", i)
                break
            out.append((ch if a[0] == "-" else "+" + ch, None))
            j += 1
        i += 1
    return out, args[i:]


def parse_retry_options(args: list) -> tuple:
    """Split `retry`'s options off its arguments: ({setting: (flag, value text)}, with
    "jitter": True for --jitter; the rest). A None argument (known only at run time) ends the
    options, or is an option's value. Raises OptionError for an option retry does not take,
    one without its value, or a number where the command belongs (`retry 3 make`)."""
    opts: dict = {}
    i = 0
    while i < len(args) and isinstance(args[i], str) and args[i][:1] == "-" and args[i] != "--":
        flag, eq, value = args[i].partition("=")
        if flag[:2] == "-n" and flag[2:].isdigit():
            flag, eq, value = "-n", "=", flag[2:]
        if flag not in RETRY_OPTIONS:
            raise OptionError(f"retry: unknown option `{flag}` ({RETRY_USAGE})", i)
        key = RETRY_OPTIONS[flag]
        if key is None:
            opts["jitter"] = True
        elif not eq and i + 1 >= len(args):
            raise OptionError(f"retry: {flag} needs a value", i)
        else:
            if not eq:
                i += 1
                value = args[i]
            opts[key] = (flag, value)
        i += 1
    rest = args[i:]
    if rest and isinstance(rest[0], str) and rest[0].isdigit():
        raise OptionError(f"retry: `{rest[0]}` is not a command: give the attempts as "
                          f"`retry -n {rest[0]} CMD` ({RETRY_USAGE})", i)
    return opts, rest


def _bad_option(name: str, ch: str, spec: str) -> str:
    hint = LACKING.get((name, ch))
    if hint:
        return f"{name}: -{ch}: not supported in fm: {hint}"
    letters = " ".join("-" + c for c in spec if c not in "+:")
    takes = f"{name} takes {letters}" if letters else f"{name} takes no options"
    return f"{name}: -{ch}: invalid option (fm's {takes})"


def trap_problem(action, names: list) -> str | None:
    """Why `trap ACTION NAME...` cannot run in fm, or None."""
    for n in names:
        key = n.upper()
        if key not in TRAP_SIGNALS:
            return f"trap: `{n}`: not supported in fm: {TRAP_HINT}"
        if action == "" and TRAP_SIGNALS[key] in ("INT", "TERM"):
            return (f"trap: `{n}`: fm cannot ignore a cancellation; clean up in a "
                    "`finally` block or a trap that runs commands")
    return None


def action_problem(text: str) -> str | None:
    """Why the text of a trap cannot run (a syntax error in it), or None."""
    from flowmetal.errors import ParseError
    from flowmetal.lang import parse
    try:
        parse(text, "trap")
    except ParseError as e:
        return f"trap: {e.filename}:{e.line}:{e.col}: {e.message}"
    return None


def shopt_problem(flag: str, name: str) -> str | None:
    """Why `shopt -s|-u NAME` cannot run in fm, or None."""
    if name not in SHOPT:
        return f"shopt: {name}: invalid shell option name"
    if SHOPT[name] == (flag == "s"):
        return None
    now = "on" if SHOPT[name] else "off"
    hint = SHOPT_HINT.get(name)
    return f"shopt: -{flag} {name}: fm cannot change `{name}` (it is always {now})" + \
        (f": {hint}" if hint else "")


def set_problem(flag: str) -> str | None:
    """Why `set -X` / `set +X` cannot run in fm, or None (a plain letter: on; `+X`: off)."""
    ch = flag[-1]
    if ch in SET_FLAGS_LACKING and not (flag[0] == "+"):
        return f"set: -{ch}: not supported in fm: {SET_FLAGS_LACKING[ch]}"
    if ch == "B" and flag[0] == "+":
        return "set: +B: fm always does brace expansion; quote the braces instead"
    if ch == "E" and flag[0] == "+":
        return "set: +E: fm's ERR trap always applies inside functions (as with -E)"
    if ch not in SET_FLAGS_IGNORED and ch not in SET_FLAGS_LACKING and ch not in SET_FLAGS:
        return f"set: {flag[0]}{ch}: invalid option"
    return None


SET_FLAGS = "eufx"
"""`set` flags fm has: errexit, nounset, noglob, xtrace."""

SET_LONG: dict[str, str | None] = {
    "errexit": "e", "nounset": "u", "noglob": "f", "xtrace": "x", "pipefail": "pipefail",
    "errtrace": "E", "braceexpand": "B", "hashall": "h", "monitor": "m", "notify": "b",
    "histexpand": "H", "verbose": "v", "noclobber": "C", "noexec": "n", "allexport": "a",
    "keyword": "k", "onecmd": "t", "functrace": "T", "physical": "P", "emacs": None,
    "vi": None, "history": None, "ignoreeof": None, "interactive-comments": None,
    "nolog": None, "privileged": None, "posix": "posix",
}
"""`set -o NAME`: the flag each name stands for (None: interactive, accepted without effect)."""


def set_long_problem(on: bool, name: str) -> str | None:
    """Why `set -o NAME` (`+o` when not `on`) cannot run in fm, or None."""
    if name not in SET_LONG:
        return f"set: {name}: invalid option name"
    flag = SET_LONG[name]
    if flag == "posix":
        return "set: -o posix: fm is not a POSIX shell; its strict mode is its default" \
            if on else None
    if flag is None or flag == "pipefail":
        return None
    return set_problem(("-" if on else "+") + flag)


# -- the static check -------------------------------------------------------------------------
def check_program(program: A.Program, src) -> None:
    """Raise the ParseError (made by `src.error`) for the first use of a bash builtin, option,
    trap or shell option that fm cannot run, when it is written literally."""
    funcs = set()
    commands = []
    _collect(program, funcs, commands)
    for cmd in commands:
        problem = command_problem(_literal_words(cmd.words), funcs)
        if problem is not None:
            message, k = problem
            span = cmd.words[min(k, len(cmd.words) - 1)].span
            raise src.error(message, span.start, span.end)


_LEAVES = frozenset((A.Span, A.Lit, A.SQ, A.Tilde, A.BraceSeq, str, int, bool, type(None)))
"""What holds no command: the walk does not look inside."""


def _collect(program, funcs: set, commands: list):
    """The function names defined anywhere in `program`, and its simple commands with words
    (in `$(...)` too), in source order."""
    stack = [program]
    while stack:
        obj = stack.pop()
        t = type(obj)
        if t is tuple or t is list:
            stack.extend(o for o in obj if type(o) not in _LEAVES)
            continue
        if t is A.FunctionDef:
            funcs.add(obj.name)
        elif t is A.SimpleCommand and obj.words:
            commands.append(obj)
        for name in fields(obj):
            v = getattr(obj, name)
            if type(v) not in _LEAVES:
                stack.append(v)
    commands.sort(key=lambda c: c.span.start)


def _literal_words(words) -> list:
    """The text of each word up to the first that is not plain text (None marks it)."""
    out = []
    for w in words:
        text = []
        for part in w.parts:
            if type(part) is A.SQ or type(part) is A.Lit:
                text.append(part.text)
            elif type(part) is A.DQ and all(type(q) is A.Lit for q in part.parts):
                text.extend(q.text for q in part.parts)
            else:
                out.append(None)
                return out
        out.append("".join(text))
    return out


def command_problem(argv: list, funcs=()) -> tuple | None:
    """(message, index of the word to point at) when the command `argv` (plain strings, a
    None where the text is only known at run time) cannot run in fm; else None."""
    k = 0
    while k < len(argv) and argv[k] in ("command", "builtin"):
        k += 1
    if k >= len(argv) or argv[k] is None:
        return None
    name = argv[k]
    if name in funcs and k == 0:
        return None
    if name in UNSUPPORTED:
        return unsupported(name), k
    if name == "retry":
        try:
            parse_retry_options(argv[k + 1:])
        except OptionError as e:
            return e.message, k + 1 + e.index
        return None
    if name not in OPTIONS and name != "set":
        return None
    args = argv[k + 1:]
    if None in args:
        args = args[:args.index(None)]
    try:
        if name == "set":
            return _set_problem(args, k)
        opts, rest = parse_options(name, args)
    except OptionError as e:
        return e.message, k + 1 + e.index
    problem = _operand_problem(name, opts, rest, len(argv) - k - 1 > len(args))
    if problem is None:
        return None
    return problem[0], k + 1 + len(args) - len(rest) + problem[1]


def _set_problem(args: list, k: int):
    long = None
    for i, a in enumerate(args):
        if long is not None:
            message, long = set_long_problem(long, a), None
        elif a in ("--", "-") or a[:1] not in "-+":
            return None
        else:
            message = next(filter(None, (set_problem(a[0] + ch) for ch in a[1:] if ch != "o")),
                           None)
            long = a[0] == "-" if "o" in a[1:] else None
        if message:
            return message, k + 1 + i
    return None


def _operand_problem(name: str, opts: list, rest: list, more: bool):
    """(message, index in `rest`) for a problem in the operands of trap and shopt (the known
    part of them), or None."""
    flags = {o for o, _ in opts}
    if name == "trap" and not flags and rest:
        if len(rest) == 1 and not more:
            checks = [(0, trap_problem(None, rest))]          # `trap SIG`: reset it
        else:
            action = None if rest[0] == "-" else rest[0]
            checks = [(i, trap_problem(action, [n])) for i, n in enumerate(rest) if i]
            checks.append((0, action and action_problem(action)))
    elif name == "shopt" and "o" not in flags:
        flag = "s" if "s" in flags else "u" if "u" in flags else None
        checks = [(i, shopt_problem(flag, n) if flag else
                   None if n in SHOPT else f"shopt: {n}: invalid shell option name")
                  for i, n in enumerate(rest)]
    else:
        return None
    return next(((m, i) for i, m in checks if m), None)


# -- help: `fm help NAME` ------------------------------------------------------------------------
HELP: dict[str, tuple] = {
    # durable builtins (SPEC 1.4)
    "sleep": ("sleep DURATION...\nsleep --until TIME",
              "A durable timer: the clock is read once (journaled), the due time is fixed, and "
              "the wait is an effect, so a job killed while it waits and resumed waits only for "
              "what is left. Durations: 250ms 30s 5m 2h 3d 1w, compounds (1h30m), decimals, "
              "bare seconds; several are added up. TIME is RFC 3339 or HH:MM[:SS] (the next "
              "such time in the job's zone).",
              "sleep 1h30m; sleep --until 02:00"),
    "retry": ("retry [-n N|--attempts N] [--delay D] [--backoff F] [--max-delay D] [--jitter] "
              "[--timeout D] [--on S,...] { BODY }\nretry [OPTIONS] [--] CMD [ARG...]",
              "Runs BODY (or CMD) until it succeeds, at most N times (default 5), waiting "
              "D*F^(k-1) between attempts (1s, doubling, at most 5m; --jitter draws each wait "
              "from [0, wait]). --timeout bounds the whole retry (status 124), --on retries only "
              "on those statuses. Each wait is a durable timer. When the attempts run out, the "
              "error points at the command that failed in the last attempt and names the retry.",
              "retry -n 3 --delay 2s -- curl -fsS https://ci.local/health"),
    "timeout": ("timeout DURATION { BODY }\ntimeout DURATION [--] CMD [ARG...]",
                "A durable wall-clock deadline, fixed when `timeout` starts: at the deadline the "
                "running program gets SIGTERM (SIGKILL 2s later), a durable sleep is cut short, "
                "and the body fails with status 124, pointing at the command it stopped. A "
                "deadline that passed while the job was not running fires when it resumes.",
                "timeout 10m { make test; make package; }"),
    "once": ("once CMD [ARG...]",
             "Runs the external program CMD at most once. If a crash cut it off (its start is "
             "journaled, its end is not), the resumed job does not run it again: it fails with "
             "status 125 (outcome unknown) so the script can check by hand.",
             "once curl -fsS -X POST https://pay.local/charge -d @order.json"),
    "now": ("now [+FORMAT]",
            "Prints the current time (a journaled clock read) in the job's time zone: RFC 3339 "
            "with the offset, or strftime FORMAT.",
            "stamp=$(now +%Y%m%d-%H%M%S)"),
    "json": ("json get PATH [DEFAULT]\njson build ITEM...\njson len|keys|valid|pretty",
             "Pure JSON on stdin, no effect: `get` prints the value at PATH (.a.b[0]; strings "
             "raw, others compact; a missing path is status 1 unless DEFAULT is given), "
             "`build` makes an object from field=string and field:=rawjson items.",
             "id=$(curl -fsS \"$url\" | json get '.items[0].id')"),
    "callback": ("callback [--name NAME] [--method GET|POST]",
                 "Registers a one-shot callback and prints its URL, <base>/callbacks/<token> "
                 "(the daemon's address or [daemon] public_url; the daemon is started if none "
                 "runs). The token (192 bits) is stored before the URL is printed. The first "
                 "request to the URL is kept for `await`, whenever it comes; later ones get "
                 "409. --name names it in `fm ps`; --method GET answers other methods with 405.",
                 "url=$(callback --name approve); mail -s approve ops <<< \"$url\""),
    "await": ("await CALLBACK [--timeout D]\nawait --event NAME [--timeout D]",
              "Waits for the callback (its URL or token) to be requested and prints the "
              "request's body (for GET, its query as a JSON object); sets CALLBACK_METHOD and "
              "CALLBACK_HEADERS (JSON). With --event, waits for the next event NAME sent to "
              "the job (`fm send JOB NAME DATA`, POST /jobs/JOB/events/NAME) and prints its "
              "data; events queue per name, in order. A delivery that came earlier is kept "
              "until awaited; each is consumed once. Status 124 when D passes first.",
              "await \"$url\" --timeout 2d > decision.json"),
    # control
    "true": (": [ARG...]\ntrue [ARG...]", "Does nothing and succeeds (status 0).",
             "while true; do poll || break; done"),
    "false": ("false [ARG...]",
              "Does nothing and fails with status 1 (which raises an error unless handled).",
              "if false; then echo never; fi"),
    "exit": ("exit [N]",
             "Ends the script (or the current branch, `( ... )` or `$(...)`) with status N "
             "(default: the last command's). `finally` blocks and the EXIT trap run first.",
             "[[ -f config.toml ]] || exit 2"),
    "return": ("return [N]",
               "Leaves the function (or sourced file) with status N (default: the last "
               "command's). A non-zero status raises at the call, as under `set -e` bash.",
               "is_ready() { [[ -f ready ]] && return 0; return 1; }"),
    "break": ("break [N]\ncontinue [N]",
              "Leaves (`break`) or goes on with the next round of (`continue`) the innermost "
              "loop, or the Nth enclosing one.",
              "for f in *.log; do [[ -s $f ]] || continue; gzip \"$f\"; done"),
    "shift": ("shift [N]", "Drops the first N (default 1) positional parameters.",
              "while (( $# )); do echo \"$1\"; shift; done"),
    "eval": ("eval TEXT...",
             "Joins its arguments with spaces and runs the text as fm code, in the current "
             "scope; its effects are journaled like any others.",
             "eval \"$(ssh-agent -s)\""),
    "source": ("source FILE [ARG...]\n. FILE [ARG...]",
               "Runs FILE's code in the current shell (its functions and variables stay); "
               "with ARGs, they are $1... while it runs. Errors in it show the call chain.",
               "source ./lib.fm"),
    "exec": ("exec CMD [ARG...]\nexec REDIRECTION...",
             "With redirections only, changes the script's own file descriptors; with a "
             "command, runs it and ends the script with its status.",
             "exec >> build.log 2>&1"),
    "trap": ("trap [-lp] ['CMDS' NAME...]\ntrap - NAME...",
             "Runs CMDS on EXIT (when the job really ends, once, even across resumes), ERR (a "
             "failure nothing handles), INT (Ctrl-C) or TERM (`fm cancel`). A trap cannot stop "
             "a cancellation; `trap - NAME` resets one, `trap -p` lists them.",
             "trap 'rm -rf \"$tmp\"' EXIT"),
    "wait": ("wait [-n] [ID...]",
             "Waits for branches started with `CMD &`: the given ones (the last one's status), "
             "the next to end (-n), or all of them (the status of the first that failed).",
             "for r in us eu; do deploy \"$r\" & done; wait"),
    "caller": ("caller [N]",
               "Prints the line and file (with N: line, function, file) of the Nth call up the "
               "stack; status 1 past the top.",
               "die() { echo \"error at $(caller 0)\" >&2; exit 1; }"),
    # output, input
    "echo": ("echo [-neE] [ARG...]",
             "Prints its arguments separated by spaces and a newline (-n: none; -e: "
             "interpret backslash escapes).",
             "echo \"deployed $version\""),
    "printf": ("printf [-v VAR] FORMAT [ARG...]",
               "Formats ARGs as C printf does (%s %d %x %f %q %b %(FMT)T, widths, `*`), "
               "reusing FORMAT until every ARG is used; -v assigns the text to VAR (an element "
               "too) instead of printing it. %(FMT)T reads the clock once (journaled).",
               "printf '%-10s %5d\\n' \"$name\" \"$count\""),
    "read": ("read [-rs] [-a ARRAY] [-d DELIM] [-n N|-N N] [-p PROMPT] [-t SECS] [-u FD] "
             "[NAME...]",
             "Reads a line from stdin (or FD) and assigns its fields to the NAMEs (the rest to "
             "the last; REPLY when none), or to ARRAY with -a. Status 1 at end of input; -t "
             "bounds a wait on the job's stdin (status 142).",
             "while IFS=, read -r host port; do echo \"$host:$port\"; done < hosts.csv"),
    "mapfile": ("mapfile [-t] [-d DELIM] [-n N] [-s N] [-O I] [-u FD] [ARRAY]\nreadarray ...",
                "Reads stdin's lines into ARRAY (MAPFILE by default); -t strips the newlines.",
                "mapfile -t hosts < hosts.txt"),
    "getopts": ("getopts OPTSTRING NAME [ARG...]",
                "Parses the next option of $@ (or ARGs) as bash does: sets NAME to the letter, "
                "OPTARG to its argument, OPTIND to the next index; status 1 after the last "
                "option. A leading `:` in OPTSTRING makes errors silent.",
                "while getopts 'vo:' o; do case $o in v) verbose=1;; o) out=$OPTARG;; esac; "
                "done"),
    # variables
    "declare": ("declare [-aAfFgilnrtuxp] [+ilnux] [NAME[=VALUE]...]\ntypeset ...",
                "Sets variables and their attributes: -a indexed array, -A associative, "
                "-i integer (assignments are arithmetic), -l/-u case, -n nameref, -r readonly, "
                "-x exported, -g global from a function; -p prints them as bash does.",
                "declare -A port=([web]=80 [db]=5432)"),
    "local": ("local [-aAilnrux] [+ilnux] NAME[=VALUE]...",
              "Declares variables seen only by this function and the functions it calls "
              "(bash's dynamic scoping); takes declare's attributes.",
              "deploy() { local -n cfg=$1; local host=${cfg[host]}; ssh \"$host\" ./release; }"),
    "export": ("export [-n] [NAME[=VALUE]...]\nexport -p",
               "Marks variables to be passed to the programs the job runs (-n unmarks).",
               "export AWS_REGION=eu-west-1"),
    "readonly": ("readonly [-aA] [NAME[=VALUE]...]\nreadonly -p",
                 "Makes variables read-only: assigning or unsetting them is an error.",
                 "readonly RELEASE=$(git describe)"),
    "unset": ("unset [-fnv] NAME...",
              "Removes variables (-v, the default), functions (-f) or a nameref itself (-n); "
              "an element too: unset 'a[2]'.",
              "unset 'cache[$key]'"),
    "let": ("let EXPR...", "Evaluates arithmetic expressions; fails when the last one is 0.",
            "let 'n += 1'"),
    "set": ("set [-eufx] [+eufx] [-o NAME] [--] [ARG...]",
            "Turns shell options on (-) or off (+): errexit (-e), nounset (-u), noglob (-f), "
            "xtrace (-x), -o pipefail; `set -- ARGS` replaces the positional parameters; "
            "`set -o` lists the options.",
            "set -- \"$@\" --verbose"),
    "shopt": ("shopt [-pqsu] [-o] [NAME...]",
              "Shows shell options. fm's are fixed to what fm always does (lastpipe, "
              "inherit_errexit, failglob on; nullglob, extglob, globstar, ... off): setting "
              "one to that value is accepted, to the other refused by `fm check`.",
              "shopt -q lastpipe && echo 'every pipeline stage runs here'"),
    # tests
    "test": ("test EXPR\n[ EXPR ]",
             "Evaluates a POSIX test expression (-f FILE, -z STR, A = B, N -lt M, !, -a, -o); "
             "file tests are journaled effects. Prefer `[[ ... ]]`.",
             "[ -d \"$dir\" ] || mkdir -p \"$dir\""),
    # directories
    "cd": ("cd [-L|-P] [DIR | -]",
           "Changes the job's directory (HOME without DIR; `-` the previous one, printed). "
           "The directory is part of the job's state and kept across resumes.",
           "cd \"$workdir\" && make"),
    "pwd": ("pwd [-LP]", "Prints the job's current directory (-P: with links resolved).",
            "here=$(pwd)"),
    "pushd": ("pushd [-n] [DIR | +N | -N]",
              "Pushes the current directory on the directory stack and changes to DIR.",
              "pushd build; make; popd"),
    "popd": ("popd [-n] [+N | -N]",
             "Removes the top of the directory stack and changes to the new top.",
             "pushd /tmp; popd"),
    "dirs": ("dirs [-clpv] [+N | -N]", "Prints the directory stack (-c clears it).",
             "dirs -v"),
    # commands
    "command": ("command [-v|-V] NAME [ARG...]",
                "Runs NAME as a builtin or program, skipping functions of that name (and fm's "
                "durable builtins: `command sleep 1` runs the program); -v/-V say what NAME is.",
                "command -v jq >/dev/null || { echo 'jq missing' >&2; exit 1; }"),
    "builtin": ("builtin NAME [ARG...]",
                "Runs the builtin NAME, even where a function has that name.",
                "cd() { builtin cd \"$@\" && echo \"now in $PWD\"; }"),
    "type": ("type [-atp] NAME...",
             "Says what each NAME is: keyword, function, builtin or file (-t: that word only).",
             "type -t deploy"),
    "hash": ("hash [-r] [NAME...]",
             "fm keeps no command table: `hash -r` does nothing, `hash NAME` checks that NAME "
             "is found on PATH.",
             "hash git || exit 1"),
    # keywords
    "try": ("try { BODY } catch { HANDLER } [finally { CLEANUP }]\ntry { BODY } finally "
            "{ CLEANUP }",
            "Runs BODY; a runtime error in it (a failing command, an unset variable, ...) runs "
            "HANDLER, with $? the failing status and $FM_ERROR its `file:line:col: message`. "
            "CLEANUP runs however BODY ends, on `exit`, `return` and cancellation too.",
            "try { deploy; } catch { notify \"failed: $FM_ERROR\"; } finally { rm -f lock; }"),
    "if": ("if LIST; then LIST; [elif LIST; then LIST;]... [else LIST;] fi",
           "Runs the first branch whose condition succeeds. A failure in a condition counts "
           "as false instead of raising.",
           "if curl -fs \"$url\" >/dev/null; then echo up; else echo down; fi"),
    "for": ("for NAME in WORD...; do LIST; done\nfor (( INIT; COND; STEP )); do LIST; done",
            "Runs LIST for each word (no word splitting: an unquoted $(...) gives one word per "
            "line), or as a C-style arithmetic loop.",
            "for host in $(cat hosts.txt); do ssh \"$host\" uptime; done"),
    "while": ("while LIST; do LIST; done\nuntil LIST; do LIST; done",
              "Runs the body while (until: until) the condition succeeds.",
              "until curl -fs \"$url\"; do sleep 5s; done"),
    "case": ("case WORD in PATTERN[|PATTERN]...) LIST ;; ... esac",
             "Runs the list of the first pattern (a glob) that WORD matches (`;&` and `;;&` "
             "fall through as in bash).",
             "case $env in prod|production) confirm;; *) ;; esac"),
    "function": ("NAME() { BODY; }\nfunction NAME { BODY; }",
                 "Defines a function: its arguments are $1..., `local` variables are its own, "
                 "an error inside leaves it at once and shows the call chain.",
                 "greet() { echo \"hello, $1\"; }; greet world"),
    "[[": ("[[ EXPR ]]",
           "A test without word splitting or globbing: -f FILE, -n STR, A == PATTERN, "
           "A =~ REGEX (BASH_REMATCH), N -lt M, &&, ||, !. False raises unless handled.",
           "[[ $branch == release/* ]] && publish"),
    "((": ("(( EXPR ))",
           "Evaluates integer arithmetic; status 0 when the value is not 0 (false raises "
           "unless handled). Non-integer text is an error, never a silent 0.",
           "(( attempts += 1 )); (( attempts < 5 )) || exit 1"),
}
"""`fm help NAME`: (synopsis, one-paragraph description, example) of every builtin the machine
registers and the keywords users meet (a synopsis's lines are its forms); a name that is
another's alias points at it in HELP_ALIASES. tests/lang/test_help.py walks the machine's
builtins (none is without help) and checks docs/language.md's builtin reference against
`reference_markdown()`."""

HELP_ALIASES: dict[str, str] = {":": "true", "[": "test", ".": "source", "typeset": "declare",
                                "readarray": "mapfile", "continue": "break", "until": "while",
                                "]]": "[[", "catch": "try", "finally": "try"}


def help_text(name: str) -> str | None:
    """The text `fm help NAME` prints for a builtin or keyword (for a bash builtin fm lacks:
    what to do instead), or None when fm knows no such name."""
    if name in UNSUPPORTED:
        return unsupported(name)
    entry = HELP.get(HELP_ALIASES.get(name, name))
    if entry is None:
        return None
    synopsis, description, example = entry
    import textwrap
    return "\n".join([*(f"{'usage:' if k == 0 else '':<6} {s}"
                        for k, s in enumerate(synopsis.split("\n"))), "",
                      textwrap.fill(description, 92), "", "example:", f"  {example}"])


def reference_markdown() -> str:
    """The builtin reference table of docs/language.md, made from HELP."""
    rows = ["| name | synopsis |", "|---|---|"]
    for name, (synopsis, _, _) in HELP.items():
        also = sorted(a for a, n in HELP_ALIASES.items() if n == name)
        shown = ", ".join(f"`{n}`" for n in [name, *also])
        forms = "<br>".join(f"`{s}`" for s in synopsis.replace("|", "\\|").split("\n"))
        rows.append(f"| {shown} | {forms} |")
    return "\n".join(rows)
