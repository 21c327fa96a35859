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

import pytest

from flowmetal.journal import codec, read_records

GOLDEN = Path(__file__).parent / "golden"


def install(tmp_path: Path, name: str, edit=None) -> tuple[str, Path, Path]:
    """Put golden journal `name` in a fresh state directory, its placeholders replaced by this
    run's paths (and the checksums of the lines so edited computed afresh, after checking the
    stored ones); `edit` may change job.started."""
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    out = []
    for n, raw in enumerate((GOLDEN / f"{name}.journal.jsonl").read_bytes().splitlines()):
        sealed = codec.has_checksum(raw)
        assert not sealed or codec.checksum_ok(raw), f"{name}:{n + 1}: bad checksum"
        line = raw.replace(b"@HOME@", bytes(home)).replace(b"@WORK@", bytes(work))
        rec = json.loads(line)
        if n == 0:
            first = rec
            if edit is not None:
                rec = edit(rec)
                line = json.dumps(rec, separators=(",", ":")).encode()
        out.append(codec.reseal(rec) if sealed else line + b"\n")
    job_dir = home / "jobs" / first["id"]
    job_dir.mkdir(parents=True)
    (job_dir / "journal.jsonl").write_bytes(b"".join(out))
    script = name.split("-")[0]  # deploy-format1 is deploy's history as an older fm wrote it
    (work / "progress.txt").write_text((GOLDEN / f"{script}.progress.txt").read_text())
    return first["id"], work, home


def resume(job: str, work: Path, home: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FM_") or k == "FM_HAND_OVER"}
    env["FM_HOME"] = str(home)
    return subprocess.run([sys.executable, "-m", "flowmetal", "resume", job], cwd=work,
                          env=env, capture_output=True, text=True, timeout=60)


# deploy: the current journal format; deploy-format1: written before records had checksums.
@pytest.mark.parametrize("name", ["deploy", "deploy-format1"])
def test_golden_history_replays_to_the_end(tmp_path, name):
    job, work, home = install(tmp_path, name)
    r = resume(job, work, home)
    assert r.returncode == 0, r.stderr
    assert re.fullmatch(r"step SHIP\ncaught 1\ndone after 3 steps, r=\d+\n", r.stdout), r.stdout
    assert (work / "progress.txt").read_text() == \
        "[build] start\n[test] start\n[ship] start\n"
    # The records appended to it carry checksums, whatever its format; all of it reads back.
    recs = list(read_records(home / "jobs" / job / "journal.jsonl"))
    assert recs[0]["format"] == (2 if name == "deploy" else 1)
    assert recs[-1]["kind"] == "job.finished" and "crc" in recs[-1]
    assert ("crc" in recs[1]) == (name == "deploy")


@pytest.mark.parametrize("name", ["deploy", "deploy-format1"])
def test_a_divergent_history_is_refused(tmp_path, name):
    def edit(first):
        first["source"] = first["source"].replace("tr a-z A-Z", "tr a-z a-z")
        return first
    job, work, home = install(tmp_path, name, edit)
    path = home / "jobs" / job / "journal.jsonl"
    before = path.read_text()
    r = resume(job, work, home)
    assert r.returncode == 1
    assert r.stderr.startswith("fm: journal diverges from the program at step "), r.stderr
    assert path.read_text() == before


def test_a_flipped_byte_in_a_golden_history_is_reported(tmp_path):
    job, work, home = install(tmp_path, "deploy")
    path = home / "jobs" / job / "journal.jsonl"
    data = bytearray(path.read_bytes())
    at = data.index(b'"steps":{"a":["build"') + 12  # inside a snapshot's variables
    data[at] ^= 0x20
    path.write_bytes(bytes(data))
    r = resume(job, work, home)
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr == f"fm: {path}:2: damaged record (checksum mismatch); " \
                       "the job cannot be resumed safely\n"
