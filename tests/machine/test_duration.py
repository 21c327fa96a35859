"""Tests for flowmetal.machine.duration: durations, their compact form, `sleep --until` times."""
from __future__ import annotations

import calendar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowmetal.machine.duration import DurationError, format_duration, parse_duration, parse_time


@pytest.mark.parametrize("text, seconds", [
    ("250ms", 0.25), ("30s", 30), ("5m", 300), ("2h", 7200), ("3d", 259200), ("1w", 604800),
    ("1h30m", 5400), ("1m30s500ms", 90.5), ("30s1m", 90), ("0", 0), ("10", 10),
    ("1.5", 1.5), ("0.25s", 0.25), ("1.5h", 5400), (".5s", 0.5), ("2.", 2), (" 5m ", 300),
    ("1w1d1h1m1s1ms", 604800 + 86400 + 3600 + 60 + 1.001), ("0ms", 0),
])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text, fragment", [
    ("5x", "bad duration `5x`: expected a number with a unit such as 250ms 30s 5m 2h 3d 1w"),
    ("", "empty duration"), ("   ", "empty duration"), ("-5s", "negative"), ("-1", "negative"),
    ("1h1h", "unit `h` given twice"), ("5m30", "expected a number"), ("m", "expected"),
    ("1 h", "expected"), ("1e3", "expected"), ("inf", "expected"), ("nan", "expected"),
    ("1.2.3s", "expected"), ("101y", "expected"), ("5300w", "longer than 100 years"),
    ("99999999999", "longer than 100 years"), ("5S", "expected"), ("1h+30m", "expected"),
])
def test_parse_duration_errors(text, fragment):
    with pytest.raises(DurationError) as ei:
        parse_duration(text)
    assert fragment in ei.value.message
    assert isinstance(ei.value, ValueError)


@pytest.mark.parametrize("seconds, text", [
    (0.25, "250ms"), (90, "1m30s"), (3600, "1h"), (93784, "1d2h3m4s"), (1.5, "1.5s"),
    (0, "0s"), (1, "1s"), (60, "1m"), (604800, "1w"), (694861, "1w1d1h1m1s"),
    (90.5, "1m30.5s"), (3600.001, "1h0.001s"), (0.001, "1ms"), (0.0005, "0.5ms"), (-90, "-1m30s"),
    (59.9999, "1m"),
])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


@given(st.integers(min_value=0, max_value=100 * 365 * 86400 * 1000))
def test_format_parse_round_trip(ms):
    text = format_duration(ms / 1000)
    assert parse_duration(text) == pytest.approx(ms / 1000, abs=1e-6)


@given(st.lists(st.sampled_from(["ms", "s", "m", "h", "d", "w"]), unique=True, min_size=1),
       st.lists(st.integers(0, 999), min_size=6, max_size=6))
def test_compounds_any_order(units, numbers):
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    text = "".join(f"{n}{u}" for n, u in zip(numbers, units))
    expect = sum(n * scale[u] for n, u in zip(numbers, units))
    assert parse_duration(text) == pytest.approx(expect)


def _epoch(*args):
    return float(calendar.timegm(args))


@pytest.mark.parametrize("text, expect", [
    ("2026-11-28T23:00:00Z", _epoch(2026, 11, 28, 23, 0, 0)),
    ("2026-11-28t23:00:00z", _epoch(2026, 11, 28, 23, 0, 0)),
    ("2026-11-28 23:00:00Z", _epoch(2026, 11, 28, 23, 0, 0)),
    ("2026-11-28T23:00:00+02:00", _epoch(2026, 11, 28, 21, 0, 0)),
    ("2026-11-28T23:00:00-05:30", _epoch(2026, 11, 29, 4, 30, 0)),
    ("2026-11-28T23:00:00+0200", _epoch(2026, 11, 28, 21, 0, 0)),
    ("2026-11-28T23:00:00.250Z", _epoch(2026, 11, 28, 23, 0, 0) + 0.25),
    ("2024-02-29T00:00:00Z", _epoch(2024, 2, 29, 0, 0, 0)),
    # no offset: local time (tz_offset 3600 below)
    ("2026-11-28T23:00:00", _epoch(2026, 11, 28, 22, 0, 0)),
    ("2026-11-28T23:00", _epoch(2026, 11, 28, 22, 0, 0)),
])
def test_parse_time_rfc3339(text, expect):
    assert parse_time(text, now=0.0, tz_offset_seconds=3600) == pytest.approx(expect)


NOW = _epoch(2026, 5, 10, 12, 30, 0)  # 12:30:00 UTC


@pytest.mark.parametrize("text, tz, expect", [
    ("13:00", 0, _epoch(2026, 5, 10, 13, 0, 0)),
    ("12:00", 0, _epoch(2026, 5, 11, 12, 0, 0)),          # passed today: tomorrow
    ("12:30", 0, _epoch(2026, 5, 11, 12, 30, 0)),         # strictly after now
    ("12:30:01", 0, _epoch(2026, 5, 10, 12, 30, 1)),
    ("00:00", 0, _epoch(2026, 5, 11, 0, 0, 0)),
    ("23:59:59", 0, _epoch(2026, 5, 10, 23, 59, 59)),
    ("9:05", 0, _epoch(2026, 5, 11, 9, 5, 0)),
    # local is UTC+2 -> 14:30 local now
    ("15:00", 7200, _epoch(2026, 5, 10, 13, 0, 0)),
    ("14:00", 7200, _epoch(2026, 5, 11, 12, 0, 0)),
    ("01:00", 7200, _epoch(2026, 5, 10, 23, 0, 0)),       # tomorrow local, still today UTC
    # local is UTC-10 -> 02:30 local now
    ("03:00", -36000, _epoch(2026, 5, 10, 13, 0, 0)),
    ("23:00", -36000, _epoch(2026, 5, 11, 9, 0, 0)),
])
def test_parse_time_clock(text, tz, expect):
    assert parse_time(text, NOW, tz) == expect


@given(st.floats(0, 4e9), st.integers(-14 * 3600, 14 * 3600), st.integers(0, 23),
       st.integers(0, 59))
def test_clock_is_next_occurrence(now, tz, h, m):
    t = parse_time(f"{h:02d}:{m:02d}", now, tz)
    assert now < t <= now + 86400
    assert (t + tz) % 86400 == pytest.approx(h * 3600 + m * 60)


@pytest.mark.parametrize("text", [
    "", "24:00", "12:60", "12:00:60", "noon", "12", "2026-02-30T00:00:00Z",
    "2026-13-01T00:00:00Z", "2026-11-28", "2026-11-28T25:00:00Z", "2026-11-28T23:00:00+24:00",
    "2026-11-28T23:00:00Zjunk", "12:00pm", "1:2",
])
def test_parse_time_errors(text):
    with pytest.raises(DurationError) as ei:
        parse_time(text, NOW, 0)
    assert f"`{text}`" in ei.value.message
