"""Golden histories (tests/golden): journals written by an earlier fm, cut short as by a crash,
must keep replaying cleanly to the same end; a history the program no longer matches must be
refused loudly, never papered over."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

GOLDEN = Path(__file__).parent / "golden"


def install(tmp_path: Path, name: str, edit=None) -> tuple[str, Path, Path]:
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    text = (GOLDEN / f"{name}.journal.jsonl").read_text()
    text = text.replace("@HOME@", str(home)).replace("@WORK@", str(work))
    first = json.loads(text.split("\n", 1)[0])
    if edit is not None:
        rest = text.split("\n", 1)[1]
        first = edit(first)
        text = json.dumps(first, separators=(",", ":")) + "\n" + rest
    job_dir = home / "jobs" / first["id"]
    job_dir.mkdir(parents=True)
    (job_dir / "journal.jsonl").write_text(text)
    (work / "progress.txt").write_text((GOLDEN / f"{name}.progress.txt").read_text())
    return first["id"], work, home


def resume(job: str, work: Path, home: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FM_")}
    env["FM_HOME"] = str(home)
    return subprocess.run([sys.executable, "-m", "flowmetal", "resume", job], cwd=work,
                          env=env, capture_output=True, text=True, timeout=60)


def test_golden_history_replays_to_the_end(tmp_path):
    job, work, home = install(tmp_path, "deploy")
    r = resume(job, work, home)
    assert r.returncode == 0, r.stderr
    assert re.fullmatch(r"step SHIP\ncaught 1\ndone after 3 steps, r=\d+\n", r.stdout), r.stdout
    assert (work / "progress.txt").read_text() == \
        "[build] start\n[test] start\n[ship] start\n"


def test_a_divergent_history_is_refused(tmp_path):
    def edit(first):
        first["source"] = first["source"].replace("tr a-z A-Z", "tr a-z a-z")
        return first
    job, work, home = install(tmp_path, "deploy", edit)
    path = home / "jobs" / job / "journal.jsonl"
    before = path.read_text()
    r = resume(job, work, home)
    assert r.returncode == 1
    assert r.stderr.startswith("fm: journal diverges from the program at step "), r.stderr
    assert path.read_text() == before
