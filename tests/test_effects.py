"""The effect registry: every op is performable and shown by `fm log`, from its one record."""
from __future__ import annotations

import pytest

from flowmetal.connectors import _handler
from flowmetal.effects import EFFECTS
from flowmetal.runner import history


@pytest.mark.parametrize("op", sorted(EFFECTS))
def test_every_op_has_a_connector_and_a_log_rendering(op):
    effect = EFFECTS[op]
    assert callable(_handler(op))
    assert effect.log in history._SHOW_REQUEST and effect.log in history._SHOW_RESULT
    assert not (effect.waits and effect.world)


def test_an_unknown_op_is_a_value_error():
    with pytest.raises(ValueError, match="unknown effect op"):
        _handler("teleport")


def test_the_ops_the_machine_requests_are_registered():
    """Every op named in the docs' table of requests has a record (and nothing else does)."""
    import re
    from pathlib import Path
    text = (Path(__file__).resolve().parents[1] / "docs" / "effects.md").read_text()
    table = text[text.index("| op | does |"):]
    table = table[:table.index("\n\n")]
    named = set(re.findall(r"`([a-z_]+)`", "\n".join(l.split("|")[1] for l in table.splitlines()[2:])))
    assert named == set(EFFECTS)
