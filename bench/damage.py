"""The damage sweep's full mode (issue 17 item 5; tests/journal/damage.py plays and judges a case).

    .venv/bin/python bench/damage.py --full            # every case, 2 processes; writes the
                                                       # figures to docs/reliability-damage.json
    .venv/bin/python bench/damage.py --sample 200      # a seeded random sample (nothing written)
    .venv/bin/python bench/damage.py --grep 'lock is'  # only the cases whose name matches

docs/reliability.md ("The damage sweep") quotes the figures of the last full run; a test fails
when the two disagree.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flowmetal import __version__  # noqa: E402
from tests.journal import damage  # noqa: E402

NUMBERS = ROOT / "docs" / "reliability-damage.json"
SEED = 20261203


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--full", action="store_true", help="every case; write the numbers file")
    ap.add_argument("--sample", type=int, help="a seeded random sample of N cases")
    ap.add_argument("--grep", help="only cases whose name matches this regular expression")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=SEED)
    a = ap.parse_args()
    if not (a.full or a.sample or a.grep):
        ap.error("say --full, --sample N or --grep RE")

    def select(cases):
        if a.grep:
            cases = [c for c in cases if re.search(a.grep, c.name)]
        if a.sample:
            cases = damage.sample_n(cases, a.sample, a.seed)
        return cases

    def progress(o, i, n):
        if o.verdict == damage.FAILURE:
            print(f"FAILURE {o.case}: {o.detail}", flush=True)
        if i % 50 == 0 or i == n:
            print(f"[{i}/{n}]", file=sys.stderr, flush=True)

    commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="fm-damage-") as tmp:
        fig = damage.sweep(Path(tmp), select=select, workers=a.workers, progress=progress)
    fig.update(mode="full" if a.full and not a.grep else "sample", workers=a.workers,
               seed=a.seed, fm_version=__version__, date=time.strftime("%Y-%m-%d"),
               commit=commit)
    print(json.dumps({k: v for k, v in fig.items() if k != "failed"}, indent=2))
    if fig["mode"] == "full":
        NUMBERS.write_text(json.dumps(fig, indent=2) + "\n")
        print(f"wrote {NUMBERS.relative_to(ROOT)}; the tables for docs/reliability.md:\n")
        print(tables(fig))
    return 1 if fig["failures"] else 0


def tables(fig: dict) -> str:
    """The figures as docs/reliability.md's "The damage sweep" quotes them."""
    m, s = divmod(fig["wall_seconds"], 60)
    rows = ["| figure | value |", "|---|---|"]
    for name, value in (("damage cases", f"{fig['cases']:,}"),
                        ("commands run", f"{fig['commands']:,}"),
                        ("clean errors", f"{fig['clean_errors']:,}"),
                        ("correct results", f"{fig['correct']:,}"),
                        ("failures", f"{fig['failures']:,}"),
                        ("damage sweep wall time", f"{m} min {s} s"),
                        ("damage sweep commit", f"`{fig['commit']}`")):
        rows.append(f"| {name} | {value} |")
    rows += ["", "| kind of damage | cases | clean errors | correct | failures |",
             "|---|---|---|---|---|"]
    for kind, c in fig["by_kind"].items():
        counts = [sum(c.values()), c.get("error", 0), c.get("correct", 0), c.get("failure", 0)]
        rows.append(f"| {kind} | " + " | ".join(f"{n:,}" for n in counts) + " |")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
