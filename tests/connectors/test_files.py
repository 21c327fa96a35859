"""File effects: open, write, read_file, read_line, glob, test and cd."""
import os
import time

import pytest

from flowmetal.connectors import mark, perform

from .conftest import EchoTerm


def op(term, **req):
    return perform(req, term)


# -- open / write / read_file ------------------------------------------------------------------

def test_open_w_creates_and_truncates(term, tmp_path):
    (tmp_path / "f").write_text("old")
    assert op(term, op="open", path="f", cwd=str(tmp_path), mode="w", display="f") == {}
    assert (tmp_path / "f").read_text() == ""
    assert op(term, op="open", path="new", cwd=str(tmp_path), mode="w") == {}
    assert (tmp_path / "new").exists()


def test_open_a_creates_without_truncating(term, tmp_path):
    (tmp_path / "f").write_text("keep")
    assert op(term, op="open", path="f", cwd=str(tmp_path), mode="a") == {}
    assert (tmp_path / "f").read_text() == "keep"


def test_open_errors_use_the_display_path(term, tmp_path):
    assert op(term, op="open", path=str(tmp_path / "out/x.txt"), cwd=str(tmp_path), mode="w",
              display="out/x.txt") == {"error": "cannot open out/x.txt: No such file or directory"}
    assert op(term, op="open", path="missing", cwd=str(tmp_path), mode="r",
              display="missing") == {"error": "cannot open missing: No such file or directory"}
    assert op(term, op="open", path=".", cwd=str(tmp_path), mode="w",
              display=".") == {"error": "cannot open .: Is a directory"}


def test_open_fifo_without_reader_does_not_block(term, tmp_path):
    os.mkfifo(tmp_path / "p")
    assert op(term, op="open", path="p", cwd=str(tmp_path), mode="w") == {}
    assert op(term, op="open", path="p", cwd=str(tmp_path), mode="r") == {}


def test_write_to_term(term):
    assert op(term, op="write", target={"kind": "term", "fd": 1}, data="hello\n") == {
        "out": "hello\n"}
    assert op(term, op="write", target={"kind": "term", "fd": 2}, data="oops\n") == {
        "err": "oops\n"}
    assert term.echoed() == ("hello\n", "oops\n")


def test_write_to_detached_term_is_only_journaled():
    term = EchoTerm(echo=False)
    try:
        assert op(term, op="write", target={"kind": "term", "fd": 1}, data="x") == {"out": "x"}
        assert term.echoed() == ("", "")
    finally:
        term.close()


def test_write_to_file(term, tmp_path):
    target = {"kind": "file", "path": "f", "mode": "w", "display": "f"}
    assert op(term, op="write", target=target, data="one\n", cwd=str(tmp_path)) == {}
    target["mode"] = "a"
    assert op(term, op="write", target=target, data="two\n", cwd=str(tmp_path)) == {}
    assert (tmp_path / "f").read_text() == "one\ntwo\n"
    bad = {"kind": "file", "path": str(tmp_path / "no/f"), "mode": "a", "display": "no/f"}
    assert op(term, op="write", target=bad, data="x") == {
        "error": "cannot open no/f: No such file or directory"}


def _append(tmp_path, data="row 2\n"):
    return {"op": "write", "cwd": str(tmp_path), "data": data,
            "target": {"kind": "file", "path": "f", "mode": "a", "display": "f"}}


def test_write_mark_notes_size_and_identity_of_an_append_target(tmp_path):
    req = _append(tmp_path)
    assert mark(req) == {"size": 0}                     # not there yet: the append creates it
    (tmp_path / "f").write_text("row 1\n")
    st = os.stat(tmp_path / "f")
    assert mark(req) == {"size": 6, "dev": st.st_dev, "ino": st.st_ino}
    trunc = dict(req, target=dict(req["target"], mode="w"))
    assert mark(trunc) is None                          # truncate + write: a repeat is the same
    assert mark({"op": "write", "target": {"kind": "term", "fd": 1}, "data": "x"}) is None
    assert mark(dict(req, target=dict(req["target"], path="/dev/null"))) is None   # a device
    assert mark({"op": "exec", "stages": []}) is None


def test_write_run_again_skips_bytes_its_first_run_wrote(term, tmp_path):
    (tmp_path / "f").write_text("row 1\n")
    req = _append(tmp_path)
    at = mark(req)
    assert op(term, **req) == {}                        # the first run: cut off before its result
    assert op(term, **dict(req, at=at)) == {"already": 6}
    assert (tmp_path / "f").read_text() == "row 1\nrow 2\n"


def test_write_run_again_completes_a_write_cut_short(term, tmp_path):
    (tmp_path / "f").write_text("row 1\n")
    req = _append(tmp_path, "row 2 is long\n")
    at = mark(req)
    with open(tmp_path / "f", "a") as f:
        f.write("row 2 ")
    assert op(term, **dict(req, at=at)) == {"already": 6}
    assert (tmp_path / "f").read_text() == "row 1\nrow 2 is long\n"


def test_write_run_again_writes_what_is_not_where_it_was_expected(term, tmp_path):
    (tmp_path / "f").write_text("row 1\n")
    req = _append(tmp_path)
    at = mark(req)
    assert op(term, **dict(req, at=at)) == {}           # the first run never wrote
    assert (tmp_path / "f").read_text() == "row 1\nrow 2\n"
    at = mark(req)
    with open(tmp_path / "f", "a") as f:                # someone else appended first
        f.write("other\n")
    assert op(term, **dict(req, at=at)) == {}
    assert (tmp_path / "f").read_text() == "row 1\nrow 2\nother\nrow 2\n"


def test_write_run_again_into_a_replaced_file_writes(term, tmp_path):
    (tmp_path / "f").write_text("row 1\n")
    req = _append(tmp_path)
    at = mark(req)
    op(term, **req)
    os.rename(tmp_path / "f", tmp_path / "f.1")         # rotated before the resume
    (tmp_path / "f").write_text("row 1\nrow 2\n")       # same bytes, another file
    assert op(term, **dict(req, at=at)) == {}
    assert (tmp_path / "f").read_text() == "row 1\nrow 2\nrow 2\n"


def test_write_run_again_of_a_file_that_did_not_exist(term, tmp_path):
    req = _append(tmp_path)
    at = mark(req)
    op(term, **req)
    assert op(term, **dict(req, at=at)) == {"already": 6}
    assert (tmp_path / "f").read_text() == "row 2\n"


def test_read_file(term, tmp_path):
    (tmp_path / "f").write_bytes(b"caf\xc3\xa9 \xff\n")
    res = op(term, op="read_file", path="f", cwd=str(tmp_path), display="f")
    assert res["data"].encode("utf-8", "surrogateescape") == b"caf\xc3\xa9 \xff\n"
    assert op(term, op="read_file", path="nope", cwd=str(tmp_path), display="nope") == {
        "error": "cannot open nope: No such file or directory"}
    assert op(term, op="read_file", path=".", cwd=str(tmp_path), display=".") == {
        "error": "cannot read .: Is a directory"}


# -- read_line ---------------------------------------------------------------------------------

def _stdin_pipe(data: bytes):
    r, w = os.pipe()
    os.write(w, data)
    os.close(w)
    return r


def _stdin_file(tmp_path, data: bytes):
    (tmp_path / "stdin").write_bytes(data)
    return os.open(tmp_path / "stdin", os.O_RDONLY)


@pytest.mark.parametrize("make_stdin", ["pipe", "file"])
def test_read_line_leaves_the_rest_for_the_next_command(tmp_path, env, make_stdin):
    data = b"first line\nsecond\nthird"
    fd = _stdin_pipe(data) if make_stdin == "pipe" else _stdin_file(tmp_path, data)
    term = EchoTerm(stdin_fd=fd)
    try:
        assert op(term, op="read_line", fd=0, delim="\n") == {"line": "first line"}
        res = op(term, op="exec", cwd=str(tmp_path), stages=[
            {"argv": ["cat"], "env": env, "fds": {"1": {"kind": "capture"}}}])
        assert res["capture"] == "second\nthird"
    finally:
        os.close(fd)
        term.close()


@pytest.mark.parametrize("make_stdin", ["pipe", "file"])
def test_read_line_eof_cases(tmp_path, make_stdin):
    data = b"a\n\nlast"
    fd = _stdin_pipe(data) if make_stdin == "pipe" else _stdin_file(tmp_path, data)
    term = EchoTerm(stdin_fd=fd)
    try:
        assert op(term, op="read_line", fd=0) == {"line": "a"}
        assert op(term, op="read_line", fd=0) == {"line": ""}
        assert op(term, op="read_line", fd=0) == {"line": "last", "eof": True}
        assert op(term, op="read_line", fd=0) == {"line": None}
    finally:
        os.close(fd)
        term.close()


@pytest.mark.parametrize("make_stdin", ["pipe", "file"])
def test_read_line_other_delimiters(tmp_path, make_stdin):
    data = b"x" * 5000 + b":tail\0rest"  # the delimiter lies past the first block
    fd = _stdin_pipe(data) if make_stdin == "pipe" else _stdin_file(tmp_path, data)
    term = EchoTerm(stdin_fd=fd)
    try:
        assert op(term, op="read_line", fd=0, delim=":") == {"line": "x" * 5000}
        assert op(term, op="read_line", fd=0, delim="") == {"line": "tail"}
        assert os.read(fd, 100) == b"rest"
    finally:
        os.close(fd)
        term.close()


def test_read_line_without_stdin(term):
    assert op(term, op="read_line", fd=0) == {"line": None}


# -- glob ----------------------------------------------------------------------------------------

@pytest.fixture
def tree(tmp_path):
    for name in ["b.txt", "a.txt", ".hidden.txt", "c.log", "sub/d.txt", "sub/deep/e.txt",
                 "[x].txt", "sp ace.txt"]:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")
    return tmp_path


def glob(term, pattern, cwd):
    return op(term, op="glob", pattern=pattern, cwd=str(cwd))["matches"]


def test_glob_relative_sorted_no_hidden(term, tree):
    assert glob(term, "*.txt", tree) == ["[x].txt", "a.txt", "b.txt", "sp ace.txt"]
    assert glob(term, ".*.txt", tree) == [".hidden.txt"]
    assert glob(term, ".*", tree) == [".hidden.txt"]  # never . or .. (bash 5.2 globskipdots)


def test_glob_absolute(term, tree):
    assert glob(term, str(tree / "sub" / "*.txt"), "/") == [str(tree / "sub" / "d.txt")]


def test_glob_double_star_is_not_recursive(term, tree):
    assert glob(term, "**/*.txt", tree) == ["sub/d.txt"]


def test_glob_escaped_parts_are_literal(term, tree):
    import glob as g
    assert glob(term, g.escape("[x]") + "*", tree) == ["[x].txt"]
    assert glob(term, "[x]*", tree) == []  # unescaped: a bracket expression


def test_glob_directories_only(term, tree):
    assert glob(term, "*/", tree) == ["sub/"]


def test_glob_no_match(term, tree):
    assert glob(term, "*.none", tree) == []
    assert glob(term, "nodir/*", tree) == []


# -- test --------------------------------------------------------------------------------------

def t(term, test, path, cwd, path2=None):
    req = {"op": "test", "test": test, "path": path, "cwd": str(cwd)}
    if path2 is not None:
        req["path2"] = path2
    return op(term, **req)["result"]


def test_file_tests(term, tmp_path):
    (tmp_path / "f").write_text("x")
    (tmp_path / "empty").write_text("")
    (tmp_path / "d").mkdir()
    (tmp_path / "exe").write_text("")
    (tmp_path / "exe").chmod(0o755)
    os.symlink("f", tmp_path / "link")
    os.symlink("nowhere", tmp_path / "broken")
    os.mkfifo(tmp_path / "fifo")
    cases = {
        ("-e", "f"): True, ("-e", "nope"): False, ("-e", "broken"): False, ("-e", ""): False,
        ("-f", "f"): True, ("-f", "d"): False, ("-d", "d"): True, ("-d", "f"): False,
        ("-d", ""): False, ("-s", "f"): True, ("-s", "empty"): False,
        ("-r", "f"): True, ("-w", "f"): True, ("-x", "exe"): True, ("-x", "nope"): False,
        ("-L", "link"): True, ("-h", "broken"): True, ("-L", "f"): False,
        ("-p", "fifo"): True, ("-p", "f"): False, ("-S", "f"): False, ("-b", "f"): False,
        ("-c", "/dev/null"): True, ("-g", "f"): False, ("-u", "f"): False,
        ("-k", "/tmp"): True, ("-O", "f"): True, ("-G", "f"): True,
    }
    for (test, path), expected in cases.items():
        assert t(term, test, path, tmp_path) is expected, (test, path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads and executes anything")
def test_access_tests_as_a_user(term, tmp_path):
    (tmp_path / "f").write_text("x")
    (tmp_path / "f").chmod(0)
    assert not t(term, "-r", "f", tmp_path)
    assert not t(term, "-x", "f", tmp_path)


def test_binary_file_tests(term, tmp_path):
    (tmp_path / "old").write_text("")
    (tmp_path / "new").write_text("")
    past = time.time() - 100
    os.utime(tmp_path / "old", (past, past))
    os.link(tmp_path / "new", tmp_path / "hard")
    assert t(term, "-nt", "new", tmp_path, "old") is True
    assert t(term, "-nt", "old", tmp_path, "new") is False
    assert t(term, "-nt", "new", tmp_path, "missing") is True
    assert t(term, "-ot", "old", tmp_path, "new") is True
    assert t(term, "-ot", "missing", tmp_path, "new") is True
    assert t(term, "-ef", "new", tmp_path, "hard") is True
    assert t(term, "-ef", "new", tmp_path, "old") is False


def test_N_modified_since_read(term, tmp_path):
    f = tmp_path / "f"
    f.write_text("")
    os.utime(f, ns=(1_000, 2_000))
    assert t(term, "-N", "f", tmp_path) is True
    os.utime(f, ns=(3_000, 2_000))
    assert t(term, "-N", "f", tmp_path) is False


def test_t_checks_the_job_terminal(tmp_path):
    leader, follower = os.openpty()
    term = EchoTerm(stdin_fd=follower)
    try:
        assert t(term, "-t", "0", tmp_path) is True
        assert t(term, "-t", "1", tmp_path) is False  # EchoTerm echoes into pipes
        assert t(term, "-t", "7", tmp_path) is False
        assert t(term, "-t", "x", tmp_path) is False
    finally:
        os.close(leader)
        os.close(follower)
        term.close()


def test_unknown_test_raises(term, tmp_path):
    with pytest.raises(ValueError):
        t(term, "-Z", "f", tmp_path)


# -- cd ------------------------------------------------------------------------------------------

def cd(term, path, cwd, **kw):
    return op(term, op="cd", path=path, cwd=str(cwd), **kw)


def test_cd_relative_and_dotdot(term, tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    assert cd(term, "a/b", tmp_path) == {"cwd": str(tmp_path / "a" / "b")}
    assert cd(term, "../..", tmp_path / "a" / "b") == {"cwd": str(tmp_path)}
    assert cd(term, "./a/./b/", tmp_path) == {"cwd": str(tmp_path / "a" / "b")}
    assert cd(term, "/", tmp_path) == {"cwd": "/"}
    assert cd(term, "", tmp_path) == {"cwd": str(tmp_path)}


def test_cd_is_logical_through_symlinks(term, tmp_path):
    (tmp_path / "real" / "inner").mkdir(parents=True)
    os.symlink(tmp_path / "real" / "inner", tmp_path / "link")
    assert cd(term, "link", tmp_path) == {"cwd": str(tmp_path / "link")}
    assert cd(term, "..", tmp_path / "link") == {"cwd": str(tmp_path)}


def test_cd_falls_back_to_the_physical_path(term, tmp_path):
    (tmp_path / "real" / "inner").mkdir(parents=True)
    (tmp_path / "real" / "sibling").mkdir()
    os.symlink(tmp_path / "real" / "inner", tmp_path / "link")
    # Logically link/../sibling is tmp/sibling (missing); bash then tries the physical path.
    assert cd(term, "../sibling", tmp_path / "link") == {"cwd": str(tmp_path / "real" / "sibling")}


def test_cd_errors(term, tmp_path):
    (tmp_path / "f").write_text("")
    assert cd(term, "/nope", tmp_path) == {"error": "cd: /nope: No such file or directory"}
    assert cd(term, "f", tmp_path, display="f") == {"error": "cd: f: Not a directory"}


# -- home (~user) --------------------------------------------------------------------------------

def test_home_of_a_user(term):
    import pwd
    me = pwd.getpwuid(os.getuid())
    assert perform({"op": "home", "user": me.pw_name}, term) == {"home": me.pw_dir}
    assert perform({"op": "home", "user": "root"}, term) == {"home": pwd.getpwnam("root").pw_dir}


@pytest.mark.parametrize("user", ["no-such-user-fm", "", "a\0b", "\udcff"])
def test_home_of_no_such_user(term, user):
    assert perform({"op": "home", "user": user}, term) == {"home": None}
