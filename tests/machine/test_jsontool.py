"""Tests for flowmetal.machine.jsontool: the `json` builtin (get, build, len, keys, valid, pretty)."""
from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowmetal.machine.jsontool import USAGE, dumps, loads, run

REPO = r"""{
  "id": 1296269,
  "node_id": "MDEwOlJlcG9zaXRvcnkxMjk2MjY5",
  "name": "Hello-World",
  "full_name": "octocat/Hello-World",
  "owner": {"login": "octocat", "id": 1, "site_admin": false, "avatar_url": "https://x/y.png"},
  "private": false,
  "description": "This your first repo! \u00e9\u4e2d\ud83d\ude00",
  "fork": false,
  "topics": ["octocat", "atom", "electron", "api"],
  "stargazers_count": 80,
  "size": 108,
  "score": 1e3,
  "ratio": 0.10,
  "big": 123456789012345678901234567890123456789,
  "neg": -0.0,
  "license": null,
  "permissions": {"admin": false, "push": false, "pull": true},
  "created_at": "2011-01-26T19:01:12Z",
  "odd keys": {"x y": [10, 20, {"b": "deep"}], "": "empty", "a.b": "dotted", "\"q\"": 7}
}"""

PAGE = """{"page": 2, "per_page": 3, "total": 7,
  "items": [
    {"id": 4, "tags": [["a", 1], ["b", 2]], "meta": {}},
    {"id": 5, "tags": [], "meta": {"labels": ["x"]}},
    {"id": 6, "tags": [["c", 3.50]], "meta": null}
  ],
  "links": {"next": "/items?page=3", "prev": "/items?page=1"}}"""


def ok(args, stdin=""):
    status, out, err = run(args, stdin)
    assert (status, err) == (0, ""), (status, err)
    return out


@pytest.mark.parametrize("path, out", [
    (".name", "Hello-World\n"),
    (".owner.login", "octocat\n"),
    (".owner.id", "1\n"),
    (".owner.site_admin", "false\n"),
    (".license", "null\n"),
    (".topics[0]", "octocat\n"),
    (".topics[-1]", "api\n"),
    (".topics[-4]", "octocat\n"),
    (".topics", '["octocat","atom","electron","api"]\n'),
    (".permissions", '{"admin":false,"push":false,"pull":true}\n'),
    (".score", "1e3\n"),
    (".ratio", "0.10\n"),
    (".neg", "-0.0\n"),
    (".big", "123456789012345678901234567890123456789\n"),
    (".description", "This your first repo! \u00e9\u4e2d\U0001f600\n"),
    ('.["odd keys"]["x y"][2].b', "deep\n"),
    ('.["odd keys"]["x y"][-1]', '{"b":"deep"}\n'),
    ('.["odd keys"][""]', "empty\n"),
    ('.["odd keys"]["a.b"]', "dotted\n"),
    ('.["odd keys"]["\\"q\\""]', "7\n"),
    ('.["name"]', "Hello-World\n"),
])
def test_get_repo(path, out):
    assert ok(["get", path], REPO) == out


@pytest.mark.parametrize("path, out", [
    (".items[1].meta.labels[0]", "x\n"),
    (".items[0].tags[1][0]", "b\n"),
    (".items[0].tags", '[["a",1],["b",2]]\n'),
    (".items[2].tags[0][1]", "3.50\n"),
    (".items[-1].meta", "null\n"),
    (".items[0].meta", "{}\n"),
    (".items[1].tags", "[]\n"),
    (".links.next", "/items?page=3\n"),
])
def test_get_page(path, out):
    assert ok(["get", path], PAGE) == out


def test_get_root_round_trips_unchanged():
    for doc in (REPO, PAGE):
        compact = ok(["get", "."], doc)
        assert json.loads(compact) == json.loads(doc)
        assert ok(["get", "."], compact) == compact
        assert ok(["pretty"], compact) == dumps(loads(doc), indent=2) + "\n"
    compact = ok(["get", "."], REPO)
    assert '"score":1e3' in compact and '"ratio":0.10' in compact
    assert "123456789012345678901234567890123456789" in compact


def test_pretty_matches_stdlib_layout():
    doc = '{"a":[1,{},[],{"b":null,"c":"\u00e9"}],"d":true,"e":"x\\ny"}'
    expect = json.dumps(json.loads(doc), indent=2, ensure_ascii=False) + "\n"
    assert ok(["pretty"], doc) == expect
    assert ok(["pretty"], "[]") == "[]\n"
    assert ok(["pretty"], '"s"') == '"s"\n'


@pytest.mark.parametrize("path, missing", [
    (".nope", ".nope"),
    (".owner.nope", ".nope"),
    (".topics[4]", "[4]"),
    (".topics[-5]", "[-5]"),
    (".name[0]", "[0]"),
    (".topics.x", ".x"),
    (".owner[0]", "[0]"),
    (".license.x", ".x"),
    ('.["odd keys"]["zz"]', '["zz"]'),
])
def test_get_missing(path, missing):
    assert run(["get", path], REPO) == (
        1, "", f"json get: no value at `{path}` (path `{missing}` not found)\n")
    assert run(["get", path, "fallback value"], REPO) == (0, "fallback value\n", "")
    assert run(["get", path, ""], REPO) == (0, "\n", "")


def test_get_missing_message_example():
    assert run(["get", ".a.b"], '{"a": {}}') == (
        1, "", "json get: no value at `.a.b` (path `.b` not found)\n")


def test_default_not_used_when_present():
    assert ok(["get", ".license", "x"], REPO) == "null\n"
    assert ok(["get", ".owner.site_admin", "x"], REPO) == "false\n"


@pytest.mark.parametrize("path", [
    ".a[", "a", "", ".a.", "..a", ".a[x]", '.a["x"', '.["x"', ".a[1.5]", ".[]", '.a[\'x\']',
    ".a b", ".a]", '.["x"]junk', "[0]",
])
def test_get_bad_path(path):
    status, out, err = run(["get", path], "{}")
    assert (status, out) == (2, "")
    assert err.startswith(f"json get: bad path `{path}`: ")
    assert err.count("\n") == 1


def test_bad_path_checked_before_stdin():
    assert run(["get", ".a["], "not json")[0] == 2


@pytest.mark.parametrize("args", [
    ["get"], ["get", ".a", "b", "c"], ["len", "x"], ["keys", "x"], ["valid", "x"],
    ["pretty", "x"], [], ["frobnicate"], ["GET", "."],
])
def test_usage(args):
    assert run(args, "{}") == (2, "", USAGE + "\n")


@pytest.mark.parametrize("stdin", ["", "   ", "{", "{'a': 1}", "[1,]", "{} {}", "NaN",
                                   "[Infinity]", "tru", '"\\x"', "01"])
def test_bad_stdin(stdin):
    for args in (["get", "."], ["len"], ["keys"], ["pretty"]):
        status, out, err = run(args, stdin)
        assert (status, out) == (1, "")
        assert err.startswith("json: invalid JSON on stdin: ") and err.count("\n") == 1, err
    assert run(["valid"], stdin) == (1, "", "")


def test_bad_stdin_message():
    assert run(["get", "."], "") == (
        1, "", "json: invalid JSON on stdin: Expecting value at line 1 column 1\n")
    assert run(["len"], '{\n  "a": }') == (
        1, "", "json: invalid JSON on stdin: Expecting value at line 2 column 8\n")


def test_deep_nesting_does_not_crash():
    status, out, err = run(["get", "."], "[" * 100000 + "]" * 100000)
    assert status in (0, 1) and "Traceback" not in err


def test_surrogate_escaped_stdin():
    text = b'{"k": "caf\xe9 \xff", "\xfe": 1}'.decode("utf-8", "surrogateescape")
    out = ok(["get", ".k"], text)
    assert out.encode("utf-8", "surrogateescape") == b"caf\xe9 \xff\n"
    out = ok(["get", "."], text)
    assert out.encode("utf-8", "surrogateescape") == b'{"k":"caf\xe9 \xff","\xfe":1}\n'
    assert ok(["keys"], text).encode("utf-8", "surrogateescape") == b"k\n\xfe\n"
    assert run(["valid"], text)[0] == 0
    assert run(["get", ".x"], "\udcff")[0] == 1


@pytest.mark.parametrize("stdin, out", [
    ("[1,2,3]", "3\n"), ("[]", "0\n"), ('{"a":1,"b":2}', "2\n"), ('"h\u00e9llo"', "5\n"),
    ('""', "0\n"),
])
def test_len(stdin, out):
    assert ok(["len"], stdin) == out


@pytest.mark.parametrize("stdin, kind", [("1", "a number"), ("null", "null"),
                                         ("true", "a boolean")])
def test_len_and_keys_of_scalars(stdin, kind):
    assert run(["len"], stdin) == (1, "", f"json len: {kind} has no length\n")
    assert run(["keys"], stdin) == (1, "", f"json keys: {kind} has no keys\n")
    assert run(["keys"], '"abc"') == (1, "", "json keys: a string has no keys\n")


def test_keys():
    assert ok(["keys"], '{"b":1,"a":2,"x y":3}') == "b\na\nx y\n"
    assert ok(["keys"], '["p","q","r"]') == "0\n1\n2\n"
    assert ok(["keys"], "{}") == ""
    assert ok(["keys"], REPO).splitlines()[:3] == ["id", "node_id", "name"]


@pytest.mark.parametrize("stdin", ["{}", "[]", "1", "-1.5e-3", '"x"', "null", REPO, PAGE,
                                   " \n true \n "])
def test_valid(stdin):
    assert run(["valid"], stdin) == (0, "", "")


@pytest.mark.parametrize("items, out", [
    ([], "{}\n"),
    (["name=octocat"], '{"name":"octocat"}\n'),
    (["a=1", "b:=1", "c:=1e3", "d:=true", "e:=null", "f:=[1,{\"x\":2}]"],
     '{"a":"1","b":1,"c":1e3,"d":true,"e":null,"f":[1,{"x":2}]}\n'),
    (["z=1", "a=2", "m=3"], '{"z":"1","a":"2","m":"3"}\n'),
    (["a.b=dotted"], '{"a.b":"dotted"}\n'),
    (["a=x=y"], '{"a":"x=y"}\n'),
    (["a="], '{"a":""}\n'),
    (["a=h\u00e9 \"q\" \\ \n"], '{"a":"h\u00e9 \\"q\\" \\\\ \\n"}\n'),
    (["x y=1"], '{"x y":"1"}\n'),
    (["big:=123456789012345678901234567890"], '{"big":123456789012345678901234567890}\n'),
    (["a=1", "a=2"], '{"a":"2"}\n'),
    (["ns:key=v"], '{"ns:key":"v"}\n'),
    (["obj:= { \"k\" : [ 1 , 2 ] } "], '{"obj":{"k":[1,2]}}\n'),
])
def test_build(items, out):
    assert ok(["build", *items]) == out


@pytest.mark.parametrize("item", ["n:=abc", "n:=", "n:={", "n:=NaN", "n:=1 2"])
def test_build_bad_raw_json(item):
    status, out, err = run(["build", "ok=1", item], "")
    assert (status, out) == (1, "")
    assert err.startswith(f"json build: invalid JSON in `{item}`: ") and err.count("\n") == 1


@pytest.mark.parametrize("item", ["q==x", "Header:Value", "plain", "=x", ":=1"])
def test_build_usage_errors(item):
    status, out, err = run(["build", item], "")
    assert (status, out) == (2, "")
    assert f"`{item}`" in err and err.count("\n") == 1


_keys = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1).filter(
    lambda k: "=" not in k and not k.endswith(":"))
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(), kids, max_size=3),
    max_leaves=8)


# a string value starting with `=` would read as `field==x` (a query parameter), as in HTTPie
@given(st.dictionaries(_keys, st.one_of(st.text().filter(lambda s: not s.startswith("="))
                                        .map(lambda s: ("str", s)),
                                        _json_values.map(lambda v: ("raw", v))), max_size=6))
def test_build_then_get(fields):
    items = [f"{k}={v}" if kind == "str" else f"{k}:={json.dumps(v)}"
             for k, (kind, v) in fields.items()]
    doc = ok(["build", *items])
    assert list(json.loads(doc)) == list(fields)
    for k, (kind, v) in fields.items():
        out = ok(["get", ".[" + json.dumps(k) + "]"], doc)
        if kind == "str":
            assert out == v + "\n"
        elif isinstance(v, str):
            assert out == v + "\n"
        else:
            assert json.loads(out) == v
            assert out == json.dumps(v, separators=(",", ":"), ensure_ascii=False) + "\n"


@given(_json_values)
def test_dumps_matches_stdlib(v):
    text = json.dumps(v, ensure_ascii=False)
    assert dumps(loads(text)) == json.dumps(v, separators=(",", ":"), ensure_ascii=False)
    assert dumps(loads(text), indent=2) == json.dumps(v, indent=2, ensure_ascii=False)
