#!/usr/bin/env python3
"""What record checksums (journal format 2) cost: encode+decode per record, and the
1,000 x /bin/true loop against an fm without them, side by side.

Run from the repository root, after `.venv/bin/python -m compileall -q flowmetal`:
    .venv/bin/python bench/checksum.py [codec|loop]... [--base REV] [--runs N]
`codec` times encode and decode of typical records with and without the crc member, in this
process. `loop` extracts REV (default: where this branch left main, `git merge-base main HEAD`)
with `git archive` into a temporary directory,
byte-compiles it, and times `fm loop.fm` there and here in turn, best of N (default 5).
Nothing here is asserted (speed is measured, not tested); the target is <= 3% on the loop. On a
shared machine one `fm loop.fm` varies by more than that from run to run: use many runs
(--runs 15), and read the codec figures (what is added per record; two records per effect).
"""
from __future__ import annotations

import argparse
import compileall
import os
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flowmetal.journal import codec  # noqa: E402

N = 1000
LOOP = f"for ((i=0; i<{N}; i++)); do /bin/true; done\n"

# Records as the runner writes them for `/bin/true` (about 450 bytes each way) and a snapshot.
_REQ = {"op": "exec", "stages": [{"argv": ["/bin/true"], "env+": {"FM_STEP_KEY": "loop-x1y2z3-7"},
                                  "env-": []}], "cwd": "/home/someone/work",
        "fds": {"0": {"kind": "term", "fd": 0}, "1": {"kind": "term", "fd": 1},
                "2": {"kind": "term", "fd": 2}}, "display": "/bin/true"}
RECORDS = {
    "effect.started": (7, "effect.started", {"step": 4, "req": _REQ}),
    "effect.done": (8, "effect.done", {"step": 4, "res": {"status": [0], "out": "", "err": ""}}),
    "snapshot 2kB": (9, "snapshot", {"step": 5, "state": {"vars": {f"v{i}": "x" * 20
                                                                   for i in range(60)}},
                                     "pending": [], "layout": "0123abcd", "version": "0.1.0"}),
}


def _encode_v1(seq: int, kind: str, fields: dict, ts: str | None = None) -> bytes:
    """codec.encode as it was before checksums (format 1), for comparison."""
    if not codec._KIND_RE.match(kind):
        raise ValueError(f"bad record kind {kind!r}")
    for key in ("seq", "ts", "kind"):
        if key in fields:
            raise ValueError(f"record field {key!r} is reserved")
    rec = {"seq": seq, "ts": ts or codec.now_ts(), "kind": kind}
    rec.update(fields)
    return codec._encoder.encode(rec).encode("ascii") + b"\n"


def _decode_v1(raw: bytes, seq: int, name: str, lineno: int) -> dict:
    """codec.decode as it was before checksums (format 1), for comparison."""
    rec = codec.loads(raw)
    if rec is None:
        raise codec.damaged(name, lineno, "invalid JSON")
    m = codec.HEADER_RE.match(raw)
    if not isinstance(rec, dict) or m is None:
        raise codec.damaged(name, lineno, "not a journal record")
    if rec["seq"] != seq:
        raise codec.damaged(name, lineno, "seq")
    if seq == 0 and rec["kind"] != "job.started":
        raise codec.damaged(name, lineno, "first")
    return rec


def _best(stmt, runs: int) -> float:
    """Best microseconds per call of `stmt` over `runs` rounds of 20,000 calls."""
    return min(timeit.repeat(stmt, number=20000, repeat=runs)) / 20000 * 1e6


def _codec_row(name: str, seq: int, kind: str, fields: dict, runs: int) -> str:
    ts = "2026-11-28T22:10:03.123Z"
    plain, sealed = _encode_v1(seq, kind, fields, ts), codec.encode(seq, kind, fields, ts)
    assert codec.unseal(sealed[:-1]) + b"\n" == plain
    p_raw, s_raw = plain[:-1], sealed[:-1]
    enc0 = _best(lambda: _encode_v1(seq, kind, fields, ts), runs)
    enc1 = _best(lambda: codec.encode(seq, kind, fields, ts), runs)
    dec0 = _best(lambda: _decode_v1(p_raw, seq, "j", seq + 1), runs)
    dec1 = _best(lambda: codec.decode(s_raw, seq, "j", seq + 1, True), runs)
    return (f"  {name:<15} {len(sealed):>5}  {enc0:5.2f} -> {enc1:5.2f}  {dec0:5.2f} -> "
            f"{dec1:5.2f}  {enc1 + dec1 - enc0 - dec0:+6.2f}")


def bench_codec(runs: int) -> None:
    """Microseconds per record for encode and decode, without and with the checksum."""
    print("codec, us per record (best of %d x 20,000):" % runs)
    print(f"  {'record':<15} {'bytes':>5}  {'encode':>13}  {'decode':>13}  {'both +':>7}")
    for name, (seq, kind, fields) in RECORDS.items():
        print(_codec_row(name, seq, kind, fields, runs))


def _extract(rev: str, into: Path) -> None:
    archive = subprocess.run(["git", "archive", rev, "flowmetal"], cwd=ROOT, check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    # PYTHONDONTWRITEBYTECODE may be set: compile here, or every run pays for it
    compileall.compile_dir(into / "flowmetal", quiet=1)


def _run(code: Path, work: Path) -> tuple[float, int]:
    """Wall time of one `fm loop.fm` with `code` first on the path, and its journal's size."""
    home = Path(tempfile.mkdtemp(dir=work))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FM_")}
    env.update(FM_HOME=str(home), PYTHONPATH=str(code))
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "flowmetal", "loop.fm"], cwd=work, env=env,
                   check=True, stdout=subprocess.DEVNULL)
    took = time.perf_counter() - t0
    (job,) = os.listdir(home / "jobs")
    return took, (home / "jobs" / job / "journal.jsonl").stat().st_size


def bench_loop(rev: str, runs: int) -> None:
    """fm of `rev` and this tree running /bin/true N times, alternately, best of `runs`."""
    compileall.compile_dir(ROOT / "flowmetal", quiet=1)
    with tempfile.TemporaryDirectory() as d:
        base, work = Path(d, "base"), Path(d, "work")
        base.mkdir()
        work.mkdir()
        _extract(rev, base)
        (work / "loop.fm").write_text(LOOP)
        times: dict[str, list[float]] = {rev: [], "this tree": []}
        sizes = {}
        for _ in range(runs):  # alternate, so that a busy moment hits both alike
            for name, code in ((rev, base), ("this tree", ROOT)):
                took, sizes[name] = _run(code, work)
                times[name].append(took)
    b, t = min(times[rev]), min(times["this tree"])
    print(f"loop /bin/true x{N}, best of {runs}: {rev} {b:.3f}s ({sizes[rev]} journal bytes)  "
          f"this tree {t:.3f}s ({sizes['this tree']} bytes)  change {100 * (t / b - 1):+.1f}%"
          "  (target <= +3%)")
    mb, mt = statistics.median(times[rev]), statistics.median(times["this tree"])
    print(f"  median: {rev} {mb:.3f}s  this tree {mt:.3f}s  change {100 * (mt / mb - 1):+.1f}%")
    print("  all runs: " + "; ".join(f"{k}: " + " ".join(f"{x:.3f}" for x in v)
                                     for k, v in times.items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", nargs="*", choices=["codec", "loop"], default=["codec", "loop"])
    ap.add_argument("--base", help="the revision to compare with (loop); default: the merge-base "
                                   "with main")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    if "codec" in args.what:
        bench_codec(args.runs)
    if "loop" in args.what:
        base = args.base or subprocess.run(["git", "merge-base", "main", "HEAD"], cwd=ROOT,
                                           check=True, capture_output=True,
                                           text=True).stdout.strip()[:10]
        bench_loop(base, args.runs)


if __name__ == "__main__":
    main()
