"""Regenerate the golden journals: run each *.fm here, kill it after record CUT, and store the
journal with machine-specific paths replaced by placeholders. Run from the repository root:
    .venv/bin/python tests/golden/make.py
Only needed when the journal format changes on purpose (bump FORMAT then, and keep the old
journal as <name>-format<N>.journal.jsonl, which the tests replay too).

Known limit: a journal made now holds a snapshot in the current code layout whose memoised
requests are keyed by a hash of the request (vm.py `_request_key`), absolute paths included, so
after the test moves it to other directories its replay stops at "a re-run instruction asked
for 'open' ... (machine bug)". Until that is settled, deploy.journal.jsonl (format 2) is
deploy-format1.journal.jsonl's records with `format` set to 2 and their checksums added: its
snapshot is of an older layout, so it is replayed from the start, as the format 1 one is."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from flowmetal.journal import codec

HERE = Path(__file__).parent
CUT = 19
ENV = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "LC_ALL": "C.UTF-8"}


def main():
    for script in sorted(HERE.glob("*.fm")):
        with tempfile.TemporaryDirectory() as d:
            work, home = Path(d, "work"), Path(d, "home")
            work.mkdir()
            shutil.copy(script, work / script.name)
            env = dict(ENV, FM_HOME=str(home), FM_CRASH_AT=str(CUT), PWD=str(work))
            subprocess.run([sys.executable, "-m", "flowmetal", script.name], cwd=work, env=env)
            (job,) = os.listdir(home / "jobs")
            out = []
            for raw in (home / "jobs" / job / "journal.jsonl").read_bytes().splitlines():
                raw = raw.replace(bytes(home), b"@HOME@").replace(bytes(work), b"@WORK@")
                out.append(codec.reseal(json.loads(raw)))  # its checksum, for the edited text
            (HERE / f"{script.stem}.journal.jsonl").write_bytes(b"".join(out))
            (HERE / f"{script.stem}.progress.txt").write_text((work / "progress.txt").read_text())


if __name__ == "__main__":
    main()
