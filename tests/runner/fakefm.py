"""`python tests/runner/fakefm.py ARGS` is `fm ARGS` with the fake machine (fake_machine.py)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fake_machine  # noqa: E402

sys.modules["flowmetal.machine"] = fake_machine

from flowmetal.cli import main  # noqa: E402

main(sys.argv[1:])
