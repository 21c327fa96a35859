"""Durations (`250ms`, `1h30m`, bare seconds) and `sleep --until` times (RFC 3339, `HH:MM`)."""
from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_MAX = 100 * 365.25 * 86400.0  # 100 years
_NUM = r"(?:\d+(?:\.\d*)?|\.\d+)"
_PART = re.compile(rf"({_NUM})(ms|s|m|h|d|w)")
_BARE = re.compile(_NUM)
_HINT = "expected a number with a unit such as 250ms 30s 5m 2h 3d 1w"
_CLOCK = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?")
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?"
    r"([Zz]|[+-]\d{2}:?\d{2})?")


class DurationError(ValueError):
    """A bad duration or time; `.message` is a one-line explanation for the user."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def parse_duration(text: str) -> float:
    """Seconds in `text`: `250ms 30s 5m 2h 3d 1w`, compounds in any order (`1h30m`, `30s1m`,
    each unit at most once), or a bare number of seconds (`1.5`). Raises DurationError."""
    s = text.strip()
    if not s:
        raise DurationError(f"empty duration: {_HINT}")
    if s[0] == "-":
        raise DurationError(f"bad duration `{text}`: a duration cannot be negative")
    if _BARE.fullmatch(s):
        total = float(s)
    else:
        total, pos, seen = 0.0, 0, set()
        while pos < len(s):
            m = _PART.match(s, pos)
            if not m:
                raise DurationError(f"bad duration `{text}`: {_HINT}")
            unit = m.group(2)
            if unit in seen:
                raise DurationError(f"bad duration `{text}`: unit `{unit}` given twice")
            seen.add(unit)
            total += float(m.group(1)) * _UNITS[unit]
            pos = m.end()
    if total > _MAX:
        raise DurationError(f"bad duration `{text}`: longer than 100 years")
    return total


def format_duration(seconds: float) -> str:
    """A compact form that parse_duration reads back: 0.25 -> 250ms, 90 -> 1m30s,
    93784 -> 1d2h3m4s, 1.5 -> 1.5s (rounded to the millisecond)."""
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        return str(seconds)
    if seconds < 0:
        return "-" + format_duration(-seconds)
    ms = round(seconds * 1000)
    if ms == 0:
        return f"{seconds * 1000:g}ms" if seconds > 0 else "0s"
    secs, frac = divmod(ms, 1000)
    out = []
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        n, secs = divmod(secs, size)
        if n:
            out.append(f"{n}{unit}")
    if frac and not secs and not out:
        out.append(f"{frac}ms")
    elif frac:
        out.append(f"{secs}.{frac:03d}".rstrip("0") + "s")
    elif secs:
        out.append(f"{secs}s")
    return "".join(out)


def parse_time(text: str, now: float, tz_offset_seconds: int) -> float:
    """Epoch seconds for `sleep --until TEXT`: an RFC 3339 timestamp (without an offset it is
    local time), or `HH:MM[:SS]`, the next such local time strictly after `now`. Local time is
    UTC + tz_offset_seconds. Raises DurationError."""
    import datetime as dt

    s = text.strip()
    m = _CLOCK.fullmatch(s)
    if m:
        h, mi, se = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
        if h > 23 or mi > 59 or se > 59:
            raise DurationError(f"bad time `{text}`: no such time of day")
        local = now + tz_offset_seconds
        t = (local // 86400) * 86400 + h * 3600 + mi * 60 + se - tz_offset_seconds
        while t <= now:
            t += 86400
        return float(t)
    m = _RFC3339.fullmatch(s)
    if not m:
        raise DurationError(
            f"bad time `{text}`: expected RFC 3339 (2026-11-28T23:00:00Z) or HH:MM")
    y, mo, d, h, mi = (int(m.group(i)) for i in range(1, 6))
    se = int(m.group(6) or 0)
    frac = float(m.group(7)) if m.group(7) else 0.0
    off = m.group(8)
    if not off:
        offset = tz_offset_seconds
    elif off in "Zz":
        offset = 0
    else:
        digits = off[1:].replace(":", "")
        oh, om = int(digits[:2]), int(digits[2:])
        if oh > 23 or om > 59:
            raise DurationError(f"bad time `{text}`: bad UTC offset `{off}`")
        offset = (oh * 3600 + om * 60) * (-1 if off[0] == "-" else 1)
    try:
        base = dt.datetime(y, mo, d, h, mi, se, tzinfo=dt.timezone.utc)
    except ValueError as e:
        raise DurationError(f"bad time `{text}`: {e}") from None
    return base.timestamp() - offset + frac
