"""Chunked reads of a `< file` of fm code (issue 8): `read`, `while read`, `mapfile` and the
builtins that take their stdin read a chunk per `read_chunk` effect and split the lines in the
machine; the target's `off` stays the logical position, which programs started inside see."""
from __future__ import annotations

import collections
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flowmetal.connectors import Term, perform
from flowmetal.machine import Machine, initial_state
from flowmetal.machine import reads as B
from flowmetal.runner.history import describe_request, describe_result


def run(text: str, cwd: Path, *, roundtrip: bool = False):
    """Run a script with the real connectors in `cwd`: (requests, stdout, status). With
    `roundtrip`, the machine is rebuilt from its state as JSON at every effect, as a resume from
    a snapshot taken there would."""
    state = initial_state(job="j-000000", argv=["t.fm"], env={"PATH": os.environ["PATH"]},
                          cwd=str(cwd), filename="t.fm", pid=1)
    m = Machine(state, text)
    term = Term(stdin_fd=None, echo=False)
    reqs, out = [], []
    pending = m.start()
    while pending:
        p = pending.pop(0)
        reqs.append(p["req"])
        res = json.loads(json.dumps(perform(p["req"], term)))
        out.append(res.get("out", ""))
        if roundtrip:
            m = Machine(json.loads(json.dumps(m.state)), text)
        pending += m.feed(p["step"], res)
    return reqs, "".join(out), m.done()["status"]


def bash(text: str, cwd: Path) -> str:
    return subprocess.run(["bash", "-c", text], cwd=cwd, capture_output=True, text=True,
                          check=True).stdout


def ops(reqs) -> collections.Counter:
    return collections.Counter(r["op"] for r in reqs)


def numbers(path: Path, n: int) -> Path:
    path.write_text("".join(f"{i}\n" for i in range(1, n + 1)))
    return path


# -- the connector -----------------------------------------------------------------------------

def chunk(tmp_path, **req):
    return perform(dict({"op": "read_chunk", "cwd": str(tmp_path)}, **req), Term(echo=False))


def test_read_chunk_reads_from_an_offset(tmp_path):
    (tmp_path / "f").write_text("hello\nworld\n")
    assert chunk(tmp_path, path="f", off=0, size=8) == {"data": "hello\nwo", "end": 8}
    assert chunk(tmp_path, path="f", off=8, size=8) == {"data": "rld\n", "end": 12, "eof": True}
    assert chunk(tmp_path, path="f", off=12, size=8) == {"data": "", "end": 12, "eof": True}
    assert chunk(tmp_path, path="f", off=0, size=12) == {"data": "hello\nworld\n", "end": 12}
    assert chunk(tmp_path, path="f", off=0)["data"] == "hello\nworld\n"   # 64 KiB by default


def test_read_chunk_never_cuts_a_character(tmp_path):
    text = "aé€😀b" * 5
    (tmp_path / "u").write_bytes(text.encode())
    raw = text.encode()
    for size in range(4, 16):
        got, off = [], 0
        while True:
            res = chunk(tmp_path, path="u", off=off, size=size)
            got.append(res["data"])
            assert not any(0xDC80 <= ord(ch) <= 0xDCFF for ch in res["data"]), (size, res)
            if res.get("eof"):
                break
            assert res["end"] > off
            off = res["end"]
        assert "".join(got) == text
        assert off <= len(raw)


def test_read_chunk_keeps_bytes_that_are_not_utf8(tmp_path):
    (tmp_path / "b").write_bytes(b"a\xff\xfeb\n\xc3")
    res = chunk(tmp_path, path="b", off=0, size=64)
    assert res["eof"] and res["data"].encode("utf-8", "surrogateescape") == b"a\xff\xfeb\n\xc3"


def test_read_chunk_errors(tmp_path):
    assert chunk(tmp_path, path="nope", off=0, display="nope") == {
        "error": "cannot open nope: No such file or directory", "data": "", "eof": True}
    res = chunk(tmp_path, path=str(tmp_path), off=0, display="d")
    assert res["eof"] and res["error"] == "read error: d: Is a directory"
    res = chunk(tmp_path, path="a\0b", off=0)
    assert res["eof"] and res["data"] == "" and "NUL" in res["error"]


def test_read_chunk_reads_what_a_fifo_holds(tmp_path):
    os.mkfifo(tmp_path / "p")
    writer = subprocess.Popen(["sh", "-c", "printf 'x\\ny\\n' > p"], cwd=tmp_path)
    try:
        assert chunk(tmp_path, path="p", off=0, size=64) == {"data": "x\ny\n"}
    finally:
        writer.wait(10)
    writer = subprocess.Popen(["sh", "-c", ": > p"], cwd=tmp_path)
    try:
        assert chunk(tmp_path, path="p", off=0, size=64) == {"data": "", "eof": True}
    finally:
        writer.wait(10)


def test_fm_log_shows_read_chunk():
    req = {"op": "read_chunk", "path": "/w/nums.txt", "off": 65536, "size": 65536,
           "display": "nums.txt"}
    assert describe_request(req) == "read_chunk  nums.txt @65536"
    assert describe_result(req, {"data": "abc", "end": 3}) == "-> 3 chars"
    assert describe_result(req, {"data": "", "eof": True}) == "-> 0 chars, EOF"
    assert describe_result(req, {"error": "cannot open x: Permission denied"}).startswith(
        "-> error: cannot open x")


# -- effects per line --------------------------------------------------------------------------

def test_while_read_of_10000_lines_makes_a_few_effects(tmp_path):
    f = numbers(tmp_path / "nums.txt", 10000)
    reqs, out, status = run("n=0\nwhile read -r l; do n=$((n+l)); done < nums.txt\necho $n\n",
                            tmp_path)
    assert (out, status) == ("50005000\n", 0)
    count = ops(reqs)
    assert "read_line" not in count
    assert count["read_chunk"] <= f.stat().st_size // B.CHUNK + 2
    assert len(reqs) <= 6


def test_while_read_of_many_chunks(tmp_path):
    (tmp_path / "w.txt").write_text("".join(f"{i} {'w' * (i % 50)}\n" for i in range(20000)))
    size = (tmp_path / "w.txt").stat().st_size
    text = "k=0; t=0\nwhile read -r a b; do k=$((k+1)); t=$((t+${#b})); done < w.txt\necho $k $t\n"
    reqs, out, _ = run(text, tmp_path)
    assert out == bash(text, tmp_path)
    assert size // B.CHUNK + 1 <= ops(reqs)["read_chunk"] <= size // B.CHUNK + 2


def test_mapfile_of_10000_lines_is_one_read_and_fast(tmp_path):
    numbers(tmp_path / "nums.txt", 10000)
    t0 = time.perf_counter()
    reqs, out, _ = run('mapfile -t a < nums.txt\necho "${#a[@]} ${a[0]} ${a[9999]}"\n', tmp_path)
    elapsed = time.perf_counter() - t0
    assert out == "10000 1 10000\n"
    assert ops(reqs)["read_chunk"] == 1
    assert elapsed < 20.0           # ~0.3 s (10x that, loaded); minutes when every line was an effect


def test_the_terminal_is_still_read_a_line_per_effect(tmp_path):
    (tmp_path / "in").write_text("a\nb\n")
    state = initial_state(job="j", argv=["t.fm"], env={"PATH": os.environ["PATH"]},
                          cwd=str(tmp_path), filename="t.fm", pid=1)
    m = Machine(state, "read -r x\necho \"[$x]\"\n")
    (p,) = m.start()
    assert p["req"] == {"op": "read_line", "fd": 0, "delim": "\n"}


# -- the logical position ----------------------------------------------------------------------

def test_a_program_inside_the_loop_starts_at_the_logical_offset(tmp_path):
    numbers(tmp_path / "nums.txt", 1000)
    text = ("while read -r l; do\n  if [ $l = 500 ]; then x=$(head -n1); echo \"$l $x\"; fi\n"
            "done < nums.txt\n")
    reqs, out, _ = run(text, tmp_path)
    assert out == "500 501\n"
    (ex,) = [r for r in reqs if r["op"] == "exec"]
    assert ex["stages"][0]["fds"]["0"]["off"] == len("".join(f"{i}\n" for i in range(1, 501)))
    assert ops(reqs)["read_chunk"] == 2          # the text read ahead is used after `head`


def test_a_program_that_moves_the_offset_back_drops_the_read_ahead():
    """A fake world: the program (a `seek back` of some kind) reports the file at offset 0."""
    text = ("{ read -r a; prog; read -r b; } < f\necho \"$a $b\"\n")
    state = initial_state(job="j", argv=["t.fm"], env={"PATH": "/bin"}, cwd="/w",
                          filename="t.fm", pid=1)
    m = Machine(state, text)
    (p,) = m.start()
    assert p["req"]["op"] == "open"
    (p,) = m.feed(p["step"], {})
    assert p["req"] == {"op": "read_chunk", "path": "/w/f", "off": 0, "size": B.CHUNK,
                        "cwd": "/w", "display": "f"}
    (p,) = m.feed(p["step"], {"data": "1\n2\n3\n", "end": 6, "eof": True})
    assert p["req"]["op"] == "exec"
    fd0 = p["req"]["stages"][0]["fds"]["0"]
    assert fd0["off"] == 2
    (p,) = m.feed(p["step"], {"status": [0], "offsets": {str(fd0["id"]): 0}})
    assert p["req"]["op"] == "read_chunk" and p["req"]["off"] == 0
    (p,) = m.feed(p["step"], {"data": "1\n2\n3\n", "end": 6, "eof": True})
    assert p["req"] == {"op": "write", "target": {"kind": "term", "fd": 1}, "data": "1 1\n"}


def test_the_state_keeps_only_the_unconsumed_rest(tmp_path):
    numbers(tmp_path / "nums.txt", 30000)
    text = ("k=0\nwhile read -r l; do k=$((k+1)); (( k % 5000 )) || echo $k; done < nums.txt\n"
            "echo end\n")
    state = initial_state(job="j", argv=["t.fm"], env={"PATH": "/bin"}, cwd=str(tmp_path),
                          filename="t.fm", pid=1)
    m = Machine(state, text)
    term = Term(stdin_fd=None, echo=False)
    pending = m.start()
    sizes = []
    while pending:
        p = pending.pop(0)
        sizes.append(len(json.dumps(m.state)))
        io = json.dumps(m.state["branches"]["0"]["io"])
        pending += m.feed(p["step"], perform(p["req"], term))
    assert max(sizes) < B.CHUNK * 1.2 + 4000
    assert p["req"]["data"] == "end\n" and '"buf"' not in io


# -- the same answers as bash, with snapshots anywhere and tiny chunks -------------------------

SCRIPT = r"""
{
  while IFS= read -r l; do
    printf '<%s>' "$l"
    case $l in *3*) printf '{%s}' "$(head -n1)" ;; esac
    case $l in *7*) break ;; esac
  done
  echo
  read -r after || true
  echo "after [$after]"
  mapfile -t -n 2 two
  echo "two ${#two[@]} [${two[*]}]"
  IFS=: read -r x y || true
  echo "x [$x] y [$y]"
  mapfile -t rest
  printf '[%s]' "${rest[@]}"
  echo
} < data.txt
mapfile all < data.txt
printf '%s' "${all[@]}" | od -c | head -3
"""

DATA = [
    "a\nb\n\nc3\nd:e:f:\nsecond3\n7th\nx\nq7\ny:z:\nr\n\nm:n:\ns\n" * 3 + "tail without newline",
    "é€😀\n" * 40 + "1:2:3\n\n\n3\n" + "ü" * 100 + "\n7\n8:9\nend",
    "3\n3\n3\n7\n",
    "",
    "no newline at all",
]


@pytest.mark.parametrize("size", [4, 5, 7, 16, 1 << 16])
@pytest.mark.parametrize("data", range(len(DATA)))
def test_same_output_as_bash_with_any_chunk_size_and_snapshots(tmp_path, monkeypatch, size,
                                                                data):
    (tmp_path / "data.txt").write_text(DATA[data])
    expected = bash(SCRIPT, tmp_path)
    monkeypatch.setattr(B, "CHUNK", size)
    monkeypatch.setattr(B, "BIG_CHUNK", size * 3)
    _, out, status = run(SCRIPT, tmp_path)
    assert (out, status) == (expected, 0)
    _, out, status = run(SCRIPT, tmp_path, roundtrip=True)
    assert (out, status) == (expected, 0)


def test_read_u_from_a_dup_after_a_snapshot(tmp_path):
    """`<&3` copies the target; after a resume the copies are separate dicts, and reading
    through one must move the other."""
    (tmp_path / "f").write_text("1\n2\n3\n4\n")
    text = ("exec 3< f\nread -r a <&3\nread -r -u 3 b\n{ read -r c; } <&3\n"
            "mapfile -t -u 3 d\necho $a $b $c ${d[*]}\n")
    expected = bash(text, tmp_path)
    assert expected == "1 2 3 4\n"
    assert run(text, tmp_path, roundtrip=True)[1] == expected


# -- crash and resume --------------------------------------------------------------------------

CRASH_SCRIPT = r"""
mark() { sh -c 'echo "$1" >> ran.txt' mark "$1"; }
n=0; k=0
while read -r l pad; do
  n=$((n+l)); k=$((k+1))
  if (( k % 150 == 0 )); then echo "k $k"; fi
  if (( k % 2500 == 0 )); then mark "at-$k-$l"; fi
  if (( k % 3000 == 0 )); then x=$(head -n1); echo "head $x"; fi
done < nums.txt
echo "sum $n lines $k"
mapfile -t a < nums.txt
echo "mapfile ${#a[@]} ${a[0]} ${a[-1]}"
{ read -r first; mapfile -t -n 3 b; read -r after; } < nums.txt
echo "$first / ${b[*]} / $after"
"""


def _fm(args, cwd, env):
    return subprocess.run([sys.executable, "-m", "flowmetal", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def _setup(root: Path):
    work = root / "work"
    work.mkdir(parents=True)
    (work / "s.fm").write_text(CRASH_SCRIPT)
    (work / "nums.txt").write_text("".join(f"{i} padding-to-make-longer-lines\n"
                                           for i in range(1, 10001)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FM_") or k == "FM_HAND_OVER"}
    env["FM_HOME"] = str(root / "home")
    return work, env


def test_crash_anywhere_in_a_long_read_loop(tmp_path):
    """SIGKILL the runner after journal record N (FM_CRASH_AT), resume, and get what an
    uncrashed run gets; every program inside the loop ran once. FM_READS_SWEEP=all tries every
    record, else a random sample (the seed is in the failure message)."""
    work, env = _setup(tmp_path / "ref")
    ref = _fm(["s.fm"], work, env)
    assert ref.returncode == 0, ref.stderr
    ran = (work / "ran.txt").read_text()
    assert ran.count("\n") == 3
    bash_work, _ = _setup(tmp_path / "bash")
    assert ref.stdout == bash(CRASH_SCRIPT, bash_work)
    (job,) = os.listdir(tmp_path / "ref" / "home" / "jobs")
    journal = tmp_path / "ref" / "home" / "jobs" / job / "journal.jsonl"
    records = [json.loads(line) for line in journal.read_text().splitlines()]
    assert sum(r.get("kind") == "snapshot" for r in records) >= 2
    total = len(records)
    seed = random.randrange(1 << 30)
    points = range(total - 1) if os.environ.get("FM_READS_SWEEP") == "all" else \
        sorted(random.Random(seed).sample(range(total - 1), 8))
    for n in points:
        root = tmp_path / f"n{n}"
        work, env = _setup(root)
        first = _fm(["s.fm"], work, dict(env, FM_CRASH_AT=str(n)))
        (job,) = os.listdir(root / "home" / "jobs")
        if first.returncode == 0:
            # Snapshots are paced by bytes, and a record's size varies a little from run to
            # run: this run may have ended with fewer records than the reference, before n.
            own = (root / "home" / "jobs" / job / "journal.jsonl").read_text().count("\n")
            assert own <= n + 1 < total, (seed, n, own, total)
            continue
        assert first.returncode == -9, (seed, n, first.returncode, first.stderr)
        second = _fm(["resume", job], work, env)
        assert second.returncode == 0, (seed, n, second.stderr)
        assert first.stdout + second.stdout == ref.stdout, (seed, n)
        assert (work / "ran.txt").read_text() == ran, (seed, n)
