"""The instruction table names exactly what the compiler emits and the machine runs."""
from __future__ import annotations

from pathlib import Path

from spec_format import load_dir

from flowmetal.errors import ParseError
from flowmetal.lang import parse
from flowmetal.lang.compile import compile_unit
from flowmetal.lang.instructions import INSTRUCTIONS
from flowmetal.machine.durable import SYS_CODES
from flowmetal.machine.vm import Machine

SPEC = Path(__file__).resolve().parents[1] / "spec"


def _arity(name: str) -> range:
    ops = INSTRUCTIONS[name][0]
    optional = sum(op.endswith("?") for op in ops)
    return range(len(ops) - optional, len(ops) + 1)


def _instructions():
    cases, _ = load_dir(SPEC)
    for case in cases:
        try:
            unit = compile_unit(parse(case.body, "t.fm"), "main")
        except ParseError:      # cases about syntax errors
            continue
        for code in unit.codes.values():
            yield from code.instrs
    for instrs in SYS_CODES.values():
        yield from instrs


def test_every_instruction_is_in_the_table_with_its_operands():
    seen = set()
    for ins in _instructions():
        assert ins[0] in INSTRUCTIONS, ins[0]
        assert len(ins) - 1 in _arity(ins[0]), ins
        seen.add(ins[0])
    assert seen >= set(INSTRUCTIONS) - {"UNSUPPORTED"}


def test_the_machine_runs_exactly_the_table():
    methods = {name[3:] for name in dir(Machine) if name.startswith("op_")}
    assert methods == set(INSTRUCTIONS)
