"""Regenerate the golden journals: run each *.fm here, kill it after record CUT, and store the
journal with machine-specific paths replaced by placeholders. Run from the repository root:
    .venv/bin/python tests/golden/make.py
Only needed when the journal format changes on purpose (bump FORMAT then)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

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
            text = (home / "jobs" / job / "journal.jsonl").read_text()
            text = text.replace(str(home), "@HOME@").replace(str(work), "@WORK@")
            (HERE / f"{script.stem}.journal.jsonl").write_text(text)
            (HERE / f"{script.stem}.progress.txt").write_text((work / "progress.txt").read_text())


if __name__ == "__main__":
    main()
