#!/usr/bin/env python3
"""The chaos report (issue 13 item 4): crash the scripts of tests/chaos/scripts after and before
every journal write, as power cuts, at random moments and twice over; resume them; compare each
with an uncrashed run (tests/chaos/harness.py says how). docs/reliability.md quotes the figures.

Run from the repository root:
  .venv/bin/python bench/chaos.py --full              every scenario (>= 10,000), 2 processes,
                                                     figures to docs/reliability.json
  .venv/bin/python bench/chaos.py --sample 200        a seeded random sample, nothing written
  .venv/bin/python bench/chaos.py --scripts once,files --full --out r.json
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import multiprocessing
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NUMBERS = ROOT / "docs" / "reliability.json"
KEEP = 40
"""Workspaces of non-ok scenarios kept for inspection (the rest are deleted as they finish)."""


def load_harness():
    """tests/chaos/harness.py, loaded by path (this file's own name would shadow the package)."""
    spec = importlib.util.spec_from_file_location("chaos_harness",
                                                  ROOT / "tests" / "chaos" / "harness.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


h = load_harness()


def _play(task):
    """Pool worker: play one scenario in its own directory."""
    ref, scenario, root, check_log = task
    try:
        outcome = h.run_scenario(ref, scenario, Path(root), check_log=check_log)
    except Exception as e:              # the harness itself failed: report it as an error
        outcome = h.Outcome(scenario, h.ERROR, f"harness: {type(e).__name__}: {e}", 0, False, 0.0)
    return outcome, root


def commit() -> tuple:
    """(HEAD's short hash, whether the tree has uncommitted changes)."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout
    return git("rev-parse", "--short=12", "HEAD").strip(), bool(git("status", "--porcelain",
                                                                    "--", "flowmetal").strip())


def sweep(scripts: list, *, full: bool, sample: int, seed: int, workers: int, tmp: Path,
          log_every: int) -> dict:
    """Run the sweep and return its figures."""
    rng = random.Random(seed)
    t0 = time.monotonic()
    refs = {}
    for s in scripts:
        refs[s] = h.make_reference(s, tmp / "ref" / s)
        again = h.make_reference(s, tmp / "ref2" / s)
        if (again.stdout, again.files, again.status, sorted(t for t, _ in again.ledger)) != \
                (refs[s].stdout, refs[s].files, refs[s].status,
                 sorted(t for t, _ in refs[s].ledger)):
            raise SystemExit(f"{s}: two uncrashed runs differ; the script is not deterministic")
    scenarios = [sc for s in scripts for sc in h.plan(refs[s], rng)]
    if not full:
        scenarios = rng.sample(scenarios, min(sample, len(scenarios)))
    tasks = [(refs[sc.script], sc, str(tmp / f"s{i}"), i % log_every == 0)
             for i, sc in enumerate(scenarios)]
    print(f"{len(tasks)} scenarios over {len(scripts)} scripts "
          f"({sum(r.records for r in refs.values())} journal records), seed {seed}, "
          f"{workers} processes", flush=True)
    outcomes, kept = [], 0
    with multiprocessing.Pool(workers) as pool:
        for i, (o, root) in enumerate(pool.imap_unordered(_play, tasks, chunksize=4), 1):
            outcomes.append(o)
            if o.verdict == h.OK or kept >= KEEP:
                shutil.rmtree(root, ignore_errors=True)
            if o.verdict != h.OK:
                kept += 1
                print(f"  {o.verdict}: {o.scenario.label}: {o.detail.splitlines()[0][:300]}",
                      flush=True)
            if i % 250 == 0:
                done = time.monotonic() - t0
                print(f"  {i}/{len(tasks)} in {done:.0f}s", flush=True)
    wall = time.monotonic() - t0
    return figures(refs, outcomes, wall, seed, workers, full)


def figures(refs: dict, outcomes: list, wall: float, seed: int, workers: int,
            full: bool) -> dict:
    verdicts = Counter(o.verdict for o in outcomes)
    by_kind = Counter(o.scenario.kind for o in outcomes)
    rev, dirty = commit()
    per_script = {}
    for name, ref in sorted(refs.items()):
        mine = [o for o in outcomes if o.scenario.script == name]
        per_script[name] = {"records": ref.records, "scenarios": len(mine),
                            "not_ok": sum(o.verdict != h.OK for o in mine)}
    import flowmetal
    return {
        "mode": "full" if full else "sample",
        "scenarios": len(outcomes),
        "scripts": len(refs),
        "journal_records": sum(r.records for r in refs.values()),
        "process_deaths": sum(o.deaths for o in outcomes),
        "ok": verdicts[h.OK],
        "duplicates": verdicts[h.DUPLICATE],
        "own_write_duplicates": verdicts[h.OWN_WRITE],
        "divergent": verdicts[h.DIVERGENT],
        "lost": verdicts[h.LOST],
        "errors": verdicts[h.ERROR],
        "reruns": sum(o.reruns for o in outcomes),
        "by_kind": dict(sorted(by_kind.items())),
        "wall_seconds": round(wall),
        "workers": workers,
        "seed": seed,
        "fm_version": flowmetal.__version__,
        "commit": rev + ("+dirty" if dirty else ""),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "per_script": per_script,
        "findings": [{"verdict": o.verdict, "scenario": o.scenario.label,
                      "detail": o.detail.splitlines()[0][:300] if o.detail else ""}
                     for o in sorted(outcomes, key=lambda o: o.scenario.label)
                     if o.verdict != h.OK],
    }


def repro(labels: list, tmp: Path) -> int:
    """Play the named scenarios one by one and print each verdict in full; keeps `tmp`."""
    refs, bad = {}, 0
    for i, label in enumerate(labels):
        scenario = h.parse_scenario(label)
        if scenario.script not in refs:
            refs[scenario.script] = h.make_reference(scenario.script, tmp / "ref" / scenario.script)
        o = h.run_scenario(refs[scenario.script], scenario, tmp / f"s{i}")
        bad += o.verdict != h.OK
        print(f"{o.verdict}: {o.scenario.label} ({o.deaths} deaths, {o.seconds:.2f}s)"
              f"{' re-ran an interrupted effect' if o.reruns else ''}\n{o.detail}".rstrip())
    print(f"workspaces in {tmp}")
    return 1 if bad else 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="every scenario; writes --out")
    ap.add_argument("--sample", type=int, default=100, help="scenarios without --full")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--scripts", default="", help="comma-separated names (default: all)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--log-every", type=int, default=4,
                    help="check `fm log --output` in every Nth scenario")
    ap.add_argument("--out", default=None, help=f"numbers file (default with --full: {NUMBERS})")
    ap.add_argument("--keep", default=None, help="directory for the scenarios' workspaces")
    ap.add_argument("--repro", metavar="LABEL", action="append", default=[],
                    help="play one scenario, e.g. 'once: power-before@21' (repeatable)")
    args = ap.parse_args(argv)
    if args.repro:
        return repro(args.repro, Path(tempfile.mkdtemp(prefix="fm-chaos-", dir=args.keep)))
    scripts = args.scripts.split(",") if args.scripts else h.script_names()
    seed = args.seed if args.seed is not None else random.randrange(1 << 32)
    tmp = Path(tempfile.mkdtemp(prefix="fm-chaos-", dir=args.keep))
    out = args.out or (NUMBERS if args.full and not args.scripts else None)
    try:
        numbers = sweep(scripts, full=args.full, sample=args.sample, seed=seed,
                        workers=args.workers, tmp=tmp, log_every=args.log_every)
    finally:
        left = sorted(p.name for p in tmp.glob("s*"))
        if left:
            print(f"workspaces of scenarios not ok: {tmp} ({len(left)})")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    text = json.dumps(numbers, indent=2) + "\n"
    if out:
        Path(out).write_text(text)
        print(f"wrote {out}")
    summary = {k: v for k, v in numbers.items() if k not in ("per_script", "findings")}
    print(json.dumps(summary, indent=2))
    return 0 if numbers["ok"] == numbers["scenarios"] else 1


if __name__ == "__main__":
    sys.exit(main())
