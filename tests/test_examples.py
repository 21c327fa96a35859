"""Every script in examples/ runs to success: the README's first command must keep working."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.fm"))


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(script, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FM_") or k == "FM_HAND_OVER"}
    env["FM_HOME"] = str(tmp_path / "home")
    r = subprocess.run([sys.executable, "-m", "flowmetal", str(script)], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr and r.stdout


def test_there_are_examples():
    assert any(p.name == "hello.fm" for p in EXAMPLES)
