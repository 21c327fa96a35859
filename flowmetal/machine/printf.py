"""Bash's `printf` builtin (formats, escapes, %q, long-double floats) and `echo -e` escapes."""
from __future__ import annotations

import functools
import math
import re
import unicodedata
from fractions import Fraction
from typing import Callable, Optional

__all__ = ["format", "echo_escapes", "shell_quote", "is_warning"]

_WARN = "printf: warning: "

TimeFormatter = Callable[[str, Optional[int]], str]
"""(timefmt, epoch seconds or None for now) -> the text of a `%(timefmt)T` conversion."""


def is_warning(message: str) -> bool:
    """True for messages bash prints without failing (status stays 0)."""
    return message.startswith(_WARN)


# --------------------------------------------------------------------------------------------
# Bytes inside str: octal/hex escapes make bytes; bytes >= 0x80 are kept as surrogate escapes
# (U+DC80..U+DCFF, the os.fsdecode convention) and merged into characters where they form UTF-8.

def _byte(b: int) -> str:
    b &= 0xFF
    return chr(b) if b < 0x80 else chr(0xDC00 + b)


def _merge_bytes(s: str) -> str:
    if not any(0xDC80 <= ord(c) <= 0xDCFF for c in s):
        return s
    try:
        return s.encode("utf-8", "surrogateescape").decode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return s


def _codepoint(cp: int) -> str:
    if cp < 0x110000 and not 0xD800 <= cp <= 0xDFFF:
        return chr(cp)
    # what bash emits for surrogates and values past U+10FFFF: the (extended) UTF-8 bytes
    if cp < 0x10000:
        bs = [0xE0 | (cp >> 12), 0x80 | ((cp >> 6) & 0x3F), 0x80 | (cp & 0x3F)]
    elif cp < 0x200000:
        bs = [0xF0 | (cp >> 18), 0x80 | ((cp >> 12) & 0x3F), 0x80 | ((cp >> 6) & 0x3F),
              0x80 | (cp & 0x3F)]
    elif cp < 0x4000000:
        bs = [0xF8 | (cp >> 24)] + [0x80 | ((cp >> k) & 0x3F) for k in (18, 12, 6, 0)]
    else:
        bs = [0xFC | ((cp >> 30) & 1)] + [0x80 | ((cp >> k) & 0x3F) for k in (24, 18, 12, 6, 0)]
    return "".join(_byte(b) for b in bs)


def _char_code(c: str) -> int:
    o = ord(c)
    return o - 0xDC00 if 0xDC80 <= o <= 0xDCFF else o


# --------------------------------------------------------------------------------------------
# Escapes

_SIMPLE = {"a": "\a", "b": "\b", "e": "\x1b", "E": "\x1b", "f": "\f", "n": "\n", "r": "\r",
           "t": "\t", "v": "\v", "\\": "\\"}
_OCT = "01234567"
_HEX = "0123456789abcdefABCDEF"


def _escape_at(s: str, i: int, mode: str, warnings: Optional[list]):
    """Decode the escape at s[i] == '\\'. mode: 'fmt' (printf format), 'b' (%b), 'echo'.
    Returns (text, next index, stop)."""
    n = len(s)
    if i + 1 >= n:
        return "\\", n, False
    c = s[i + 1]
    if c in _SIMPLE:
        return _SIMPLE[c], i + 2, False
    if c == "c" and mode != "fmt":
        return "", n, True
    if mode == "fmt" and c in "\"'?":
        return c, i + 2, False
    if c in _OCT and (mode == "fmt" or c == "0" or (mode == "b" and c != "0")):
        if mode == "fmt" or c != "0":
            j, limit = i + 1, i + 4
        else:
            j, limit = i + 2, i + 5
        v = 0
        while j < limit and j < n and s[j] in _OCT:
            v = v * 8 + int(s[j])
            j += 1
        return _byte(v), j, False
    if c == "x":
        j = i + 2
        v = 0
        while j < i + 4 and j < n and s[j] in _HEX:
            v = v * 16 + int(s[j], 16)
            j += 1
        if j == i + 2:
            if mode != "echo" and warnings is not None:
                warnings.append(_WARN + "missing hex digit for \\x")
            return "\\x", i + 2, False
        return _byte(v), j, False
    if c in "uU":
        j = i + 2
        limit = i + (6 if c == "u" else 10)
        v = 0
        while j < limit and j < n and s[j] in _HEX:
            v = v * 16 + int(s[j], 16)
            j += 1
        if j == i + 2:
            if mode != "echo" and warnings is not None:
                warnings.append(f"{_WARN}missing unicode digit for \\{c}")
            return "\\" + c, i + 2, False
        return _codepoint(v), j, False
    return "\\" + c, i + 2, False


def _expand(s: str, mode: str, warnings: Optional[list] = None) -> tuple[str, bool]:
    if "\\" not in s:
        return s, False
    out = []
    i = 0
    n = len(s)
    while i < n:
        k = s.find("\\", i)
        if k < 0:
            out.append(s[i:])
            break
        out.append(s[i:k])
        text, i, stop = _escape_at(s, k, mode, warnings)
        out.append(text)
        if stop:
            return _merge_bytes("".join(out)), True
    return _merge_bytes("".join(out)), False


def echo_escapes(s: str) -> tuple[str, bool]:
    """Interpret `echo -e` escapes. Returns (text, stopped) where stopped means `\\c` was seen
    (the caller prints nothing after the text, not even the newline)."""
    return _expand(s, "echo")


# --------------------------------------------------------------------------------------------
# %q

_BACKSLASH_CHARS = frozenset(" \t\n'\"\\|&;()<>!{}*[?]^$`,")


def _printable(c: str) -> bool:
    o = ord(c)
    if o < 0x80:
        return 0x20 <= o < 0x7F
    return unicodedata.category(c) not in ("Cc", "Cs", "Cn", "Co")


def shell_quote(s: str) -> str:
    """Quote like bash's `printf %q`: '' for empty, $'...' when there are control characters,
    else backslashes before special characters."""
    if s == "":
        return "''"
    if all(_printable(c) for c in s):
        out = []
        for i, c in enumerate(s):
            if c in _BACKSLASH_CHARS or (i == 0 and c in "~#"):
                out.append("\\")
            out.append(c)
        return "".join(out)
    out = ["$'"]
    for c in s:
        if c == "\x1b":
            out.append("\\E")
        elif c in "\a\b\f\n\r\t\v":
            out.append("\\" + "abfnrtv"["\a\b\f\n\r\t\v".index(c)])
        elif c in "\\'":
            out.append("\\" + c)
        elif _printable(c):
            out.append(c)
        else:
            o = ord(c)
            bs = [o - 0xDC00] if 0xDC80 <= o <= 0xDCFF else \
                c.encode("utf-8", "surrogatepass")
            out.extend(f"\\{b:03o}" for b in bs)
    out.append("'")
    return "".join(out)


# --------------------------------------------------------------------------------------------
# Numeric arguments

_INT_RE = re.compile(r"[ \t\n\v\f\r]*([-+]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)")


def _invalid(arg: str) -> str:
    if arg[:1] == "0" and arg[1:2].isdigit():
        what = "invalid octal number"
    elif arg[:2] == "0x":
        what = "invalid hex number"
    else:
        what = "invalid number"
    return f"printf: `{arg}`: {what}"


def _parse_int(arg: str, unsigned: bool, msgs: list) -> int:
    """strtoimax/strtoumax with bash's checks; errors and warnings go to msgs."""
    if arg == "":
        return 0
    if arg[0] in "'\"":
        return _char_code(arg[1]) if len(arg) > 1 else 0
    m = _INT_RE.match(arg)
    if not m:
        msgs.append(_invalid(arg))
        return 0
    digits = m.group(2)
    v = int(digits, 16) if digits[:2] in ("0x", "0X") else int(digits, 8) if digits[0] == "0" \
        else int(digits)
    if m.group(1) == "-":
        v = -v
    if m.end() != len(arg):
        msgs.append(_invalid(arg))
    if unsigned:
        if v > 2 ** 64 - 1 or v < -(2 ** 64 - 1):
            msgs.append(f"{_WARN}`{arg}`: Numerical result out of range")
            return 2 ** 64 - 1
        return v % (2 ** 64)
    if v > 2 ** 63 - 1:
        msgs.append(f"{_WARN}`{arg}`: Numerical result out of range")
        return 2 ** 63 - 1
    if v < -(2 ** 63):
        msgs.append(f"{_WARN}`{arg}`: Numerical result out of range")
        return -(2 ** 63)
    return v


# long double (x87 80-bit): 64-bit significand, exponent range
_LD_BITS = 64
_LD_MIN_EXP = -16445          # quantum of subnormals
_LD_NORMAL = Fraction(1, 2 ** 16382)
_LD_OVER = 2 ** 16384

_FLOAT_RE = re.compile(
    r"[ \t\n\v\f\r]*([-+]?)(?:"
    r"0[xX](?P<hm>[0-9a-fA-F]+(?:\.[0-9a-fA-F]*)?|\.[0-9a-fA-F]+)(?:[pP](?P<he>[-+]?[0-9]+))?"
    r"|(?P<inf>[iI][nN][fF](?:[iI][nN][iI][tT][yY])?)"
    r"|(?P<nan>[nN][aA][nN](?:\([0-9A-Za-z_]*\))?)"
    r"|(?P<dm>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE](?P<de>[-+]?[0-9]+))?)")


def _round_ld(x: Fraction) -> tuple[Optional[Fraction], bool]:
    """Round a positive exact value to the nearest long double; (value or None for overflow,
    range_error)."""
    if x == 0:
        return x, False
    e = x.numerator.bit_length() - x.denominator.bit_length()
    if Fraction(2) ** e > x:
        e -= 1
    q = max(e - (_LD_BITS - 1), _LD_MIN_EXP)
    m = round(x / Fraction(2) ** q)
    v = m * Fraction(2) ** q
    if v >= _LD_OVER:
        return None, True
    return v, v < _LD_NORMAL


class _Num:
    """A float argument: kind 'num' | 'inf' | 'nan', sign, exact magnitude."""
    __slots__ = ("kind", "neg", "mag")

    def __init__(self, kind: str, neg: bool, mag: Fraction = Fraction(0)):
        self.kind = kind
        self.neg = neg
        self.mag = mag


@functools.lru_cache(maxsize=1024)
def _strtold(arg: str) -> tuple[_Num, int, bool]:
    """(value, end of the parsed prefix or -1, range error)."""
    m = _FLOAT_RE.match(arg)
    if not m:
        return _Num("num", False), -1, False
    neg = m.group(1) == "-"
    if m.group("inf"):
        return _Num("inf", neg), m.end(), False
    if m.group("nan"):
        return _Num("nan", neg), m.end(), False
    if m.group("hm") is not None:
        mant, exp_s, base = m.group("hm"), m.group("he"), 16
    else:
        mant, exp_s, base = m.group("dm"), m.group("de"), 10
    ip, _, fp = mant.partition(".")
    digits = (ip + fp) or "0"
    n = int(digits, base)
    exp = int(exp_s) if exp_s else 0
    if n == 0:
        return _Num("num", neg), m.end(), False
    if base == 16:
        shift = exp - 4 * len(fp)
        if shift > 20000:
            return _Num("inf", neg), m.end(), True
        if shift < -20000:
            return _Num("num", neg), m.end(), True
        x = Fraction(n) * Fraction(2) ** shift
    else:
        shift = exp - len(fp)
        mag10 = shift + len(digits)
        if mag10 > 5000:
            return _Num("inf", neg), m.end(), True
        if mag10 < -5000:
            return _Num("num", neg), m.end(), True
        x = Fraction(n) * Fraction(10) ** shift
    v, err = _round_ld(x)
    if v is None:
        return _Num("inf", neg), m.end(), True
    return _Num("num", neg, v), m.end(), err


def _parse_float(arg: str, msgs: list) -> _Num:
    if arg == "":
        return _Num("num", False)
    if arg[0] in "'\"":
        return _Num("num", False, Fraction(_char_code(arg[1]) if len(arg) > 1 else 0))
    v, end, range_err = _strtold(arg)
    if end < 0:
        msgs.append(_invalid(arg))
        return v
    if end != len(arg):
        msgs.append(_invalid(arg))
    elif range_err:
        msgs.append(f"{_WARN}`{arg}`: Numerical result out of range")
    return v


# --------------------------------------------------------------------------------------------
# Float formatting (exact, like glibc on a long double)

def _int_str(n: int) -> str:
    """str(n) for n >= 0 without Python's limit on long conversions."""
    if n.bit_length() < 12000:
        return str(n)
    k = int(n.bit_length() * 0.30102999566398120) // 2
    hi, lo = divmod(n, 10 ** k)
    return _int_str(hi) + _int_str(lo).rjust(k, "0")


def _exp10(v: Fraction) -> int:
    """floor(log10(v)) for v > 0."""
    e = math.floor(math.log10(v.numerator) - math.log10(v.denominator))
    p = Fraction(10) ** e
    while p > v:
        e -= 1
        p /= 10
    while p * 10 <= v:
        e += 1
        p *= 10
    return e


def _fixed(v: Fraction, prec: int, alt: bool) -> str:
    n = round(v * 10 ** prec)
    if prec == 0:
        return _int_str(n) + ("." if alt else "")
    s = _int_str(n).rjust(prec + 1, "0")
    return s[:-prec] + "." + s[-prec:]


def _sci_parts(v: Fraction, prec: int) -> tuple[str, int]:
    """Significant digits (prec+1 of them) and decimal exponent."""
    if v == 0:
        return "0" * (prec + 1), 0
    x = _exp10(v)
    n = round(v / Fraction(10) ** (x - prec))
    if n >= 10 ** (prec + 1):
        x += 1
        n = round(v / Fraction(10) ** (x - prec))
    return _int_str(n), x


def _sci(v: Fraction, prec: int, alt: bool, upper: bool) -> str:
    digits, x = _sci_parts(v, prec)
    mant = digits[0]
    if prec > 0 or alt:
        mant += "." + digits[1:]
    exp = f"{'-' if x < 0 else '+'}{abs(x):02d}"
    return f"{mant}{'E' if upper else 'e'}{exp}"


def _general(v: Fraction, prec: int, alt: bool, upper: bool) -> str:
    p = prec if prec > 0 else 1
    x = _sci_parts(v, p - 1)[1] if v != 0 else 0
    if p > x >= -4:
        s = _fixed(v, p - 1 - x, alt)
    else:
        s = _sci(v, p - 1, alt, upper)
    if not alt and "." in s:
        mant, e, exp = s.partition("E" if upper else "e")
        mant = mant.rstrip("0").rstrip(".")
        s = mant + e + exp
    return s


def _hexfloat(v: Fraction, prec: Optional[int], alt: bool, upper: bool) -> str:
    if v == 0:
        lead, frac_bits, p = 0, 0, 0
    else:
        e = v.numerator.bit_length() - v.denominator.bit_length()
        if Fraction(2) ** e > v:
            e -= 1
        q = max(e - 63, _LD_MIN_EXP)
        m = int(v / Fraction(2) ** q)   # exact: v is a long double
        lead, frac_bits, p = m >> 60, m & ((1 << 60) - 1), q + 60
    if prec is not None and prec < 15:
        shift = 60 - 4 * prec
        total = round(Fraction((lead << 60) | frac_bits, 1 << shift))
        lead, frac_bits = total >> (4 * prec), total & ((1 << (4 * prec)) - 1)
        if lead >= 16:
            lead, p = 1, p + 4
        frac = f"{frac_bits:0{prec}x}" if prec else ""
    else:
        frac = f"{frac_bits:015x}"
        if prec is None:
            frac = frac.rstrip("0")
        else:
            frac += "0" * (prec - 15)
    s = f"0x{lead:x}"
    if frac or alt:
        s += "." + frac
    s += f"p{'-' if p < 0 else '+'}{abs(p)}"
    return s.upper() if upper else s


def _format_float(conv: str, num: _Num, flags: str,
                  prec: Optional[int]) -> tuple[str, str, bool]:
    """(sign, body, zero-padding allowed)."""
    upper = conv in "EFGA"
    sign = "-" if num.neg else ("+" if "+" in flags else (" " if " " in flags else ""))
    if num.kind != "num":
        body = num.kind.upper() if upper else num.kind
        return sign, body, False
    alt = "#" in flags
    c = conv.lower()
    v = num.mag
    if c == "f":
        body = _fixed(v, 6 if prec is None else prec, alt)
    elif c == "e":
        body = _sci(v, 6 if prec is None else prec, alt, upper)
    elif c == "g":
        body = _general(v, 6 if prec is None else prec, alt, upper)
    else:
        body = _hexfloat(v, prec, alt, upper)
    return sign, body, True


# --------------------------------------------------------------------------------------------
# Format parsing

_FLAGS = "-+ #0"
_LENGTH = "hlLjzt"
_CONVS = "sbqdiuoxXcfFeEgGaA"


@functools.lru_cache(maxsize=512)
def _parse_format(fmt: str) -> tuple[tuple, tuple]:
    """Pieces: ('lit', text) | ('conv', flags, width, prec, conv, timefmt) | ('err', message).
    width/prec: None, an int, or '*'. Returns (pieces, warnings)."""
    pieces: list = []
    warnings: list[str] = []
    lit: list[str] = []
    i, n = 0, len(fmt)

    def flush():
        if lit:
            pieces.append(("lit", _merge_bytes("".join(lit))))
            lit.clear()

    while i < n:
        c = fmt[i]
        if c == "\\":
            text, i, _stop = _escape_at(fmt, i, "fmt", warnings)
            lit.append(text)
            continue
        if c != "%":
            k = i
            while k < n and fmt[k] not in "\\%":
                k += 1
            lit.append(fmt[i:k])
            i = k
            continue
        start = i
        i += 1
        if i < n and fmt[i] == "%":
            lit.append("%")
            i += 1
            continue
        flags = ""
        while i < n and fmt[i] in _FLAGS:
            flags += fmt[i]
            i += 1
        width = prec = None
        if i < n and fmt[i] == "*":
            width = "*"
            i += 1
        else:
            k = i
            while i < n and fmt[i].isdigit() and fmt[i].isascii():
                i += 1
            if i > k:
                width = int(fmt[k:i])
        if i < n and fmt[i] == ".":
            i += 1
            if i < n and fmt[i] == "*":
                prec = "*"
                i += 1
            else:
                k = i
                while i < n and fmt[i].isdigit() and fmt[i].isascii():
                    i += 1
                prec = int(fmt[k:i]) if i > k else 0
        while i < n and fmt[i] in _LENGTH:
            i += 1
        flush()
        if i >= n:
            pieces.append(("err", f"printf: `{fmt[start:i]}`: missing format character"))
            break
        conv = fmt[i]
        timefmt = None
        if conv == "(":
            close = fmt.find(")", i + 1)
            if close < 0 or close + 1 >= n or fmt[close + 1] != "T":
                pieces.append(("err", f"printf: `{fmt[start:]}`: invalid time format "
                                      "specification"))
                break
            timefmt = fmt[i + 1:close] or "%X"
            conv = "T"
            i = close + 2
        elif conv not in _CONVS:
            pieces.append(("err", f"printf: `{conv}`: invalid format character"))
            break
        else:
            i += 1
        pieces.append(("conv", flags, width, prec, conv, timefmt))
    flush()
    return tuple(pieces), tuple(warnings)


_MAX_WIDTH = 1 << 20   # fm refuses to pad beyond a mebibyte (bash would print gigabytes)
_INT_MAX = 2 ** 31 - 1


def _star(arg: Optional[str], msgs: list) -> int:
    """A `*` width or precision: an int-sized number (bash's getint)."""
    if arg is None:
        return 0
    v = _parse_int(arg, False, msgs)
    if not -_INT_MAX - 1 <= v <= _INT_MAX:
        msgs.append(f"{_WARN}`{arg}`: Numerical result out of range")
        v = _INT_MAX if v > 0 else -_INT_MAX - 1
    return v


def _pad(sign: str, body: str, width: int, flags: str, zero_ok: bool) -> str:
    total = len(sign) + len(body)
    if width <= total:
        return sign + body
    if "-" in flags:
        return sign + body + " " * (width - total)
    if "0" in flags and zero_ok:
        if body[:2] in ("0x", "0X"):
            return sign + body[:2] + "0" * (width - total) + body[2:]
        return sign + "0" * (width - total) + body
    return " " * (width - total) + sign + body


def format(fmt: str, args: list[str], *,
           strftime: Optional[TimeFormatter] = None) -> tuple[str, list[str]]:
    """Run bash's `printf fmt args...`. Returns (output, messages). Messages starting with
    "printf: warning: " (see is_warning) leave the status 0; any other message means status 1.

    `strftime(timefmt, epoch)` gives the text of each `%(timefmt)T`, in order; `epoch` is None
    for "now" (-1, -2 or no argument). Formatting a time needs the clock and the zone's rules,
    which the machine may not read, so the caller supplies it; a format with a `%(...)T` and
    no `strftime` is a bug (ValueError)."""
    pieces, fmt_warnings = _parse_format(fmt)
    out: list[str] = []
    msgs: list[str] = list(fmt_warnings)
    argi = 0
    nargs = len(args)

    def next_arg() -> Optional[str]:
        nonlocal argi
        if argi < nargs:
            argi += 1
            return args[argi - 1]
        return None

    while True:
        before = argi
        for piece in pieces:
            kind = piece[0]
            if kind == "lit":
                out.append(piece[1])
                continue
            if kind == "err":
                msgs.append(piece[1])
                return _merge_bytes("".join(out)), msgs
            _, flags, width, prec, conv, timefmt = piece
            if width == "*":
                a = next_arg()
                width = _star(a, msgs)
                if width < 0:
                    flags += "-"
                    width = -width
            if prec == "*":
                a = next_arg()
                prec = _star(a, msgs)
                if prec < 0:
                    prec = None
            width = width or 0
            if width > _MAX_WIDTH or (prec is not None and prec > _MAX_WIDTH):
                msgs.append(f"printf: width or precision larger than {_MAX_WIDTH}")
                return _merge_bytes("".join(out)), msgs
            arg = next_arg()
            if conv in "sbqcT":
                s = "" if arg is None else arg
                if conv == "b":
                    s, stop = _expand(s, "b", msgs)
                    if prec is not None:
                        s = s[:prec]
                    if stop:
                        out.append(_pad("", s, width, flags, False))
                        return _merge_bytes("".join(out)), msgs
                elif conv == "q":
                    s = shell_quote(s)
                elif conv == "c":
                    s = s[:1] if s else "\0"
                    prec = None
                elif conv == "T":
                    if strftime is None:
                        raise ValueError("printf: %(...)T needs a strftime")
                    t = -1 if arg is None or arg == "" else _parse_int(arg, False, msgs)
                    s = strftime(timefmt, None if t in (-1, -2) else t)
                if prec is not None and conv != "b":
                    s = s[:prec]
                out.append(_pad("", s, width, flags, False))
                continue
            if conv in "di":
                v = _parse_int(arg, False, msgs) if arg is not None else 0
                digits = str(abs(v))
                sign = "-" if v < 0 else ("+" if "+" in flags else (" " if " " in flags else ""))
            elif conv in "uoxX":
                v = _parse_int(arg, True, msgs) if arg is not None else 0
                sign = ""
                if conv == "u":
                    digits = str(v)
                elif conv == "o":
                    digits = f"{v:o}"
                else:
                    digits = f"{v:x}" if conv == "x" else f"{v:X}"
            else:
                num = _parse_float(arg, msgs) if arg is not None else _Num("num", False)
                sign, body, zero_ok = _format_float(conv, num, flags, prec)
                out.append(_pad(sign, body, width, flags, zero_ok))
                continue
            if prec is not None:
                digits = "" if (prec == 0 and v == 0) else digits.rjust(prec, "0")
            if "#" in flags:
                if conv == "o" and not digits.startswith("0"):
                    digits = "0" + digits
                elif conv in "xX" and v != 0:
                    digits = ("0x" if conv == "x" else "0X") + digits
            out.append(_pad(sign, digits, width, flags, prec is None))
        if argi >= nargs or argi == before:
            break
    return _merge_bytes("".join(out)), msgs
