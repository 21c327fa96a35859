"""Which records are fsync'd when (docs/journal.md): results of effects that change nothing in
the world wait for the next fsync; every world-changing effect's result is durable before the
job goes on. Proven by a crash sweep that simulates a power loss (FM_CRASH_POWER=1 cuts the
journal back to its last fsync before the SIGKILL): no completed world-changing effect runs
twice; reads may repeat."""
from __future__ import annotations

import signal
from collections import Counter

import pytest

from .helpers import journal_of, real_fm

SCRIPT = """\
for f in a b c; do
  [ -e "$f.txt" ] && echo "have $f"
  x=$(/bin/sh -c 'echo "$FM_STEP_KEY" >> ledger; echo ok')
  t=$EPOCHSECONDS
  for g in *.txt; do :; done
  echo "$f $x" >> out.txt
done
echo end
"""


def fm(*args, cwd, home, env=None):
    return real_fm(*args, cwd=cwd, home=home, env=env, timeout=60)


journal = journal_of


def world_done(recs) -> set:
    """Steps of exec effects whose result is in the journal."""
    execs = {r["step"] for r in recs if r["kind"] == "effect.started" and r["req"]["op"] == "exec"}
    return {r["step"] for r in recs if r["kind"] == "effect.done" and r["step"] in execs}


@pytest.fixture
def work(tmp_path):
    w = tmp_path / "w"
    w.mkdir()
    (w / "s.fm").write_text(SCRIPT)
    (w / "b.txt").write_text("")
    return w


def test_a_read_result_waits_for_the_next_fsync_a_world_result_does_not(work, tmp_path):
    ref = fm("s.fm", cwd=work, home=tmp_path / "ref")
    assert ref.returncode == 0 and ref.stdout.endswith("end\n"), ref.stderr
    _, recs = journal(tmp_path / "ref")
    ops = {r["step"]: r["req"]["op"] for r in recs if r["kind"] == "effect.started"}
    read = next(r["seq"] for r in recs if r["kind"] == "effect.done" and ops[r["step"]] == "glob")
    world = next(r["seq"] for r in recs if r["kind"] == "effect.done" and ops[r["step"]] == "exec")
    for seq, survives in ((read, False), (world, True)):
        home = tmp_path / f"p{seq}"
        r = fm("s.fm", cwd=work, home=home, env={"FM_CRASH_AT": str(seq), "FM_CRASH_POWER": "1"})
        assert r.returncode == -signal.SIGKILL
        _, after = journal(home)
        assert (len(after) == seq + 1) is survives, (seq, [x["kind"] for x in after])


def test_power_loss_at_every_record_never_reruns_a_completed_world_effect(work, tmp_path):
    ref = fm("s.fm", cwd=work, home=tmp_path / "ref")
    assert ref.returncode == 0, ref.stderr
    expect = (work / "out.txt").read_text()
    _, recs = journal(tmp_path / "ref")
    lost_some = 0
    for n in range(1, len(recs) - 1):
        home = tmp_path / f"h{n}"
        for name in ("ledger", "out.txt"):
            (work / name).unlink(missing_ok=True)
        first = fm("s.fm", cwd=work, home=home, env={"FM_CRASH_AT": str(n), "FM_CRASH_POWER": "1"})
        assert first.returncode == -signal.SIGKILL, first.stderr
        job, after_crash = journal(home)
        lost_some += len(after_crash) < n + 1
        durable = world_done(after_crash)
        again = fm("resume", job, cwd=work, home=home)
        assert again.returncode == 0, (n, again.stderr)
        _, final = journal(home)
        keys = Counter((work / "ledger").read_text().split())
        for step in durable:
            assert keys[f"{job}-{step}"] == 1, (n, step, keys)
        assert max(keys.values()) <= 2, (n, keys)
        # the job's own appends (world-changing) are never lost; a cut-off one may repeat
        lines = (work / "out.txt").read_text().splitlines()
        assert sorted(set(lines)) == sorted(set(expect.splitlines())), (n, lines)
    assert lost_some, "no crash point lost an unsynced record: the sweep proves nothing"


def test_batch_mode_runs_and_may_delay_a_world_result(work, tmp_path):
    """`fsync = "batch"`: the job runs the same; a world-changing effect's result may wait for
    its fsync (here: lost by a power loss right after it, so that effect may run again)."""
    cfg = tmp_path / "config.toml"
    cfg.write_text('[journal]\nfsync = "batch"\n')
    ref = fm("s.fm", cwd=work, home=tmp_path / "ref", env={"FM_CONFIG": str(cfg)})
    assert ref.returncode == 0 and ref.stdout.endswith("end\n"), ref.stderr
    _, recs = journal(tmp_path / "ref")
    ops = {r["step"]: r["req"]["op"] for r in recs if r["kind"] == "effect.started"}
    world = next(r["seq"] for r in recs if r["kind"] == "effect.done" and ops[r["step"]] == "exec")
    home = tmp_path / "p"
    r = fm("s.fm", cwd=work, home=home, env={"FM_CONFIG": str(cfg), "FM_CRASH_AT": str(world),
                                             "FM_CRASH_POWER": "1"})
    assert r.returncode == -signal.SIGKILL
    job, after = journal(home)
    assert len(after) <= world          # its result was not yet durable
    again = fm("resume", job, cwd=work, home=home, env={"FM_CONFIG": str(cfg)})
    assert again.returncode == 0 and again.stdout.endswith("end\n"), again.stderr
