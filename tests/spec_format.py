"""Parse the language spec files (`tests/spec/*.test.fm`, Oils-style) into SpecCase records.

A file is a sequence of cases. Lines before the first case are a free-form header. A case is

    #### name of the case
    script body (bash syntax), any number of lines
    ## key: value                 single-line keys
    ## STDOUT:                    multi-line blocks, verbatim, up to `## END`
    expected stdout lines
    ## END

Keys (see tests/spec/README.md for the full description):

    ## STDOUT: ... ## END        expected stdout, exactly (each line gets its newline)
    ## stdout: text              shorthand for a one-line STDOUT ("text\n")
    ## stdout-json: "a\nb"       expected stdout as a JSON string (no trailing newline added)
    ## STDERR: ... ## END        expected stderr, exactly (fm only; never compared with bash)
    ## stderr-json: "..."        expected stderr as a JSON string (fm only)
    ## stderr-contains: text     stderr must contain text (fm only; may repeat)
    ## stderr-not-contains: text stderr must not contain text (fm only; may repeat)
    ## status: N                 expected exit status (default 0)
    ## fm-only: reason           fm differs from bash on purpose: not run against bash
    ## fm-pending: reason        fm does not do this yet (names the issue): the fm run must fail
    ## bash-skip: reason         an fm extension bash cannot run (try/catch...): not run against bash

Stdout defaults to empty: a case that prints nothing says so by saying nothing. Stderr is checked
only when a STDERR/stderr-json/stderr-contains key is present.

Body lines must not start with `## ` (or be exactly `##`): such lines are keys. After the first
key only keys, blank lines and `# comment` lines may follow, so a stray script line after the
expectations is an error rather than silently ignored.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional


class SpecFormatError(Exception):
    """A malformed spec file; the message names file:line."""


@dataclass(frozen=True)
class SpecCase:
    file: str                     # file name, e.g. "words.test.fm"
    name: str                     # the text after ####
    line: int                     # line of the #### header in the file
    body: str                     # the script, ending with a newline
    stdout: str = ""
    stderr: Optional[str] = None  # exact stderr, or None when not checked exactly
    stderr_contains: tuple = ()
    stderr_not_contains: tuple = ()
    status: int = 0
    fm_only: Optional[str] = None
    bash_skip: Optional[str] = None
    fm_pending: Optional[str] = None   # not built in fm yet (names the issue); expected to fail

    @property
    def id(self) -> str:
        return f"{self.file}::{self.name}"

    @property
    def runs_in_bash(self) -> bool:
        return self.fm_only is None and self.bash_skip is None


_BLOCK_KEYS = {"STDOUT": "stdout", "STDERR": "stderr"}
_LINE_KEYS = {"stdout", "stdout-json", "stderr-json", "stderr-contains", "stderr-not-contains",
              "status",
              "fm-only", "bash-skip", "fm-pending"}
_KEY_RE = re.compile(r"^## ?([A-Za-z][A-Za-z-]*):(?: (.*))?$")


def _is_key_line(line: str) -> bool:
    return line == "##" or line.startswith("## ")


def parse_text(text: str, filename: str) -> list[SpecCase]:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    cases: list[SpecCase] = []
    names: dict[str, int] = {}
    i = 0
    n = len(lines)

    def err(lineno: int, msg: str) -> SpecFormatError:
        return SpecFormatError(f"{filename}:{lineno}: {msg}")

    # Skip the header.
    while i < n and not lines[i].startswith("#### "):
        i += 1

    while i < n:
        header_line = i + 1
        name = lines[i][5:].strip()
        if not name:
            raise err(header_line, "case has no name")
        if name in names:
            raise err(header_line, f"duplicate case name {name!r} (first at line {names[name]})")
        names[name] = header_line
        i += 1

        body: list[str] = []
        while i < n and not lines[i].startswith("#### ") and not _is_key_line(lines[i]):
            body.append(lines[i])
            i += 1
        while body and body[-1].strip() == "":
            body.pop()
        if not body:
            raise err(header_line, f"case {name!r} has an empty body")

        fields: dict = {"stderr_contains": [], "stderr_not_contains": []}
        seen: set[str] = set()

        def once(key: str, lineno: int, *, seen: set[str] = seen, name: str = name) -> None:
            if key in seen:
                raise err(lineno, f"key {key!r} given twice in case {name!r}")
            seen.add(key)

        while i < n and not lines[i].startswith("#### "):
            line = lines[i]
            lineno = i + 1
            if line.strip() == "" or (line.startswith("#") and not line.startswith("##")):
                i += 1   # blank lines and `# comments` may separate cases
                continue
            if not _is_key_line(line):
                raise err(lineno, f"script text after the expectations of case {name!r}: {line!r}")
            m = _KEY_RE.match(line)
            if not m:
                raise err(lineno, f"malformed key line {line!r}")
            key, value = m.group(1), m.group(2)
            if key in _BLOCK_KEYS:
                if value not in (None, ""):
                    raise err(lineno, f"`## {key}:` takes no value on its line")
                target = _BLOCK_KEYS[key]
                once(target, lineno)
                i += 1
                block: list[str] = []
                while i < n and lines[i] != "## END":
                    if lines[i].startswith("#### "):
                        raise err(lineno, f"`## {key}:` block is not closed by `## END`")
                    block.append(lines[i])
                    i += 1
                if i >= n:
                    raise err(lineno, f"`## {key}:` block is not closed by `## END`")
                i += 1   # the END line
                fields[target] = "".join(b + "\n" for b in block)
                continue
            if key == "END":
                raise err(lineno, "`## END` without an open block")
            if key not in _LINE_KEYS:
                raise err(lineno, f"unknown key {key!r}")
            value = value if value is not None else ""
            if key == "stdout":
                once("stdout", lineno)
                fields["stdout"] = value + "\n"
            elif key in ("stdout-json", "stderr-json"):
                target = key[:-5]
                once(target, lineno)
                try:
                    decoded = json.loads(value)
                except ValueError as e:
                    raise err(lineno, f"bad JSON string in {key}: {e}") from None
                if not isinstance(decoded, str):
                    raise err(lineno, f"{key} must be a JSON string")
                fields[target] = decoded
            elif key in ("stderr-contains", "stderr-not-contains"):
                if not value:
                    raise err(lineno, f"{key} needs a text")
                fields[key.replace("-", "_")].append(value)
            elif key == "status":
                once("status", lineno)
                try:
                    fields["status"] = int(value)
                except ValueError:
                    raise err(lineno, f"status must be an integer, not {value!r}") from None
            elif key in ("fm-only", "bash-skip", "fm-pending"):
                once(key, lineno)
                if not value.strip():
                    raise err(lineno, f"{key} needs a reason")
                fields[key.replace("-", "_")] = value.strip()
            i += 1

        fields["stderr_contains"] = tuple(fields["stderr_contains"])
        fields["stderr_not_contains"] = tuple(fields["stderr_not_contains"])
        cases.append(SpecCase(file=filename, name=name, line=header_line,
                              body="\n".join(body) + "\n", **fields))
    return cases


def parse_file(path: Path | str) -> list[SpecCase]:
    path = Path(path)
    return parse_text(path.read_text(encoding="utf-8"), path.name)


def load_dir(directory: Path | str) -> tuple[list[SpecCase], list[str]]:
    """All cases of every *.test.fm file in `directory`, and the format errors found (a broken
    file contributes its error, not its cases)."""
    cases: list[SpecCase] = []
    errors: list[str] = []
    for path in sorted(Path(directory).glob("*.test.fm")):
        try:
            cases.extend(parse_file(path))
        except SpecFormatError as e:
            errors.append(str(e))
    return cases, errors
