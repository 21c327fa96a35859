"""Time zones named by a job's `TZ` value, read the way glibc reads `TZ`.

`zone(tz)` gives a tzinfo for:

* an IANA name (`Europe/Paris`, `UTC`, `EST5EDT`), looked up in the system's tz database
  through `zoneinfo`; a leading `:` is allowed (`:Europe/Paris`);
* an absolute path to a TZif file (`:/etc/localtime`, `/usr/share/zoneinfo/Asia/Tokyo`);
* a POSIX TZ string (`UTC0`, `JST-9`, `<+03>-3`, `CET-1CEST,M3.5.0,M10.5.0/3`), with explicit
  rules when it has a daylight-saving part (glibc's implicit US rules are not guessed);
* an empty value: UTC, as in glibc.

Anything else is UTC (glibc also falls back to UTC for a value it cannot read).
"""
from __future__ import annotations

import functools
import struct
from datetime import timezone, tzinfo


@functools.lru_cache(maxsize=64)
def zone(tz: str) -> tzinfo:
    """The zone the TZ value `tz` names (see the module docstring); never raises."""
    from zoneinfo import ZoneInfo
    name = tz[1:] if tz.startswith(":") else tz
    if not name:
        return timezone.utc
    if name.startswith("/"):
        try:
            with open(name, "rb") as f:
                return ZoneInfo.from_file(f, key=tz)
        except (OSError, ValueError):
            return timezone.utc
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError, OSError):   # not a name in the tz database
        pass
    try:
        return _posix(name)
    except ValueError:
        return timezone.utc


def _posix(rule: str) -> tzinfo:
    """A POSIX TZ string as a zone. zoneinfo parses these only as the footer of a TZif file,
    so this wraps it in one with no transitions: the footer then rules at every moment."""
    import io
    from zoneinfo import ZoneInfo
    if "\n" in rule or "\0" in rule:
        raise ValueError("not a TZ rule")
    counts = struct.pack(">6l", 0, 0, 0, 0, 1, 4)       # one local time type named "UTC"
    types = struct.pack(">lBB", 0, 0, 0) + b"UTC\0"
    header = b"TZif2" + bytes(15) + counts
    data = header + types + header + types + b"\n" + rule.encode("ascii") + b"\n"
    return ZoneInfo.from_file(io.BytesIO(data), key=rule)
