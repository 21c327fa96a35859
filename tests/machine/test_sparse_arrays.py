"""Indexed arrays are sparse: only the elements that are set are stored (docs/state.md), so a
huge index is as cheap as a small one, and every operation agrees with bash (the expected
outputs below are bash 5's)."""
from __future__ import annotations

import time

from machine.drive import run_script


def run(text: str, scopes: dict | None = None) -> tuple[str, dict]:
    out, _, glob, _ = run_script(text, scopes)
    return out, glob


CASES = [
    ('a[9000000000000000000]=1; echo ${#a[@]} ${!a[@]}', "1 9000000000000000000\n"),
    ('b=(x y z); b[10]=w; b+=(v); echo "${b[@]}" "${!b[@]}" ${#b[@]} "${b[-1]}" "${b[-2]-u}"',
     "x y z w v 0 1 2 10 11 5 v w\n"),
    ("b=(x y z); b[10]=w; unset 'b[1]'; echo \"${b[@]}\" \"${!b[@]}\"", "x z w 0 2 10\n"),
    ('b=(x y z); b[10]=w; unset "b[1]"; echo "${b[@]:1:2}" "|" "${b[@]: -2}"', "z w | w\n"),
    ('c=([5]=a b [2]=c); echo "${c[@]}" "${!c[@]}"', "c a b 2 5 6\n"),
    ('c=([5]=a b [2]=c); c[3]+=q; c[5]+=z; declare -p c',
     'declare -a c=([2]="c" [3]="q" [5]="az" [6]="b")\n'),
    ('d=s; d[3]=t; echo "${d[@]}" "${!d[@]}" "$d"', "s t 0 3 s\n"),
    ("c=([2]=a [5]=b); unset 'c[-1]'; echo \"${!c[@]}\"", "2\n"),
    ('e=([3]=x); e[-1]=y; echo "${e[@]}" "${!e[@]}"', "y 3\n"),
    ('declare -a f; f+=(1 2); f[7]=3; f+=(4); echo "${f[@]}" "${!f[@]}"', "1 2 3 4 0 1 7 8\n"),
    ('g[4611686018427387904]=x; g[2]=y; echo "${!g[@]}" "${g[@]: -1}"',
     "2 4611686018427387904 x\n"),
    ('h=([1]=a [3]=b); for v in "${h[@]}"; do echo "<$v>"; done; echo "${h[0]-none}"',
     "<a>\n<b>\nnone\n"),
]


def test_sparse_arrays_agree_with_bash():
    for text, want in CASES:
        got, _ = run(text + "\n")
        assert got == want, text


def test_only_set_elements_are_stored():
    _, glob = run("a[9000000000000000000]=1; a[5]=x; echo\n")
    assert glob["a"]["a"] == {"5": "x", "9000000000000000000": "1"}
    assert list(glob["a"]["a"]) == ["5", "9000000000000000000"]     # in index order


def test_a_huge_index_is_instant():
    t = time.monotonic()
    got, _ = run("for ((i = 0; i < 50; i++)); do a[i * 100000000000000000]=$i; done; "
                 'echo ${#a[@]} "${a[-1]}"\n')
    assert got == "50 49\n"
    assert time.monotonic() - t < 30      # seconds; it takes well under one


def test_list_shaped_arrays_of_old_snapshots_still_load():
    got, glob = run('echo "${!a[@]}" "${a[@]}" ${#a[@]}; a[1]=y; echo "${a[@]}"\n',
                     {"a": {"a": ["x", None, "z"]}})
    assert got == "0 2 x z 2\nx y z\n"
    assert glob["a"]["a"] == {"0": "x", "1": "y", "2": "z"}
