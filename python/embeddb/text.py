"""text.py -- tensors and keys as the C `embeddb` tool prints them: the
seed's summary line (ts_summarize: `name (shape) -> v0, v1, ...`, values
as C's %g) and keys in the CLI's key syntax (numeric, text, s:TEXT, x:HEX),
so that the Python and C outputs can be compared byte for byte.
"""
import math
import struct

import numpy as np

from .segment import DTYPES

U64_KEY_LEN = 8


def c_g(v):
    """C printf("%g") of a double, including glibc's nan/-nan/inf spelling."""
    if math.isnan(v):
        return "-nan" if math.copysign(1.0, v) < 0 else "nan"
    if math.isinf(v):
        return "-inf" if v < 0 else "inf"
    return "%g" % v


def _as_double(code, a, i):
    """Element i of flat array a as ts_dtype_get gives it: complex types
    their real part, bf16 (uint16 patterns) widened, integers rounded."""
    x = a[i]
    if code == 2:
        return struct.unpack("<f", struct.pack("<I", int(x) << 16))[0]
    if code in (14, 15):
        return float(x.real)
    if code == 13:
        return 1.0 if x else 0.0
    if code in (8, 12):
        return float(int(x))
    return float(x)


def summary_line(name, code, shape, values):
    """ts_summarize of a tensor whose first len(values) elements are values."""
    nm = name.decode("utf-8", "surrogateescape") if isinstance(name, bytes) else name
    dims = "x".join(str(d) for d in shape) if shape else "scalar"
    numel = 1
    for d in shape:
        numel *= d
    flat = np.asarray(values).reshape(-1)
    shown = min(len(flat), numel)
    parts = [c_g(_as_double(code, flat, i)) for i in range(shown)]
    line = "%s (%s) ->" % (nm, dims)
    if parts:
        line += " " + ", ".join(parts)
    if shown < numel:
        line += ", ..." if shown else " ..."
    return line


def key_text(key):
    """A key as the CLI prints it (cli_key_format): an 8-byte key starting
    with byte 0 as its number, printable text as itself (s:-prefixed when
    it would read as something else), anything else as x:HEX."""
    key = bytes(key)
    if len(key) == U64_KEY_LEN and key[0] == 0:
        return str(int.from_bytes(key, "big"))
    if key and all(0x20 <= b < 0x7F for b in key):
        s = key.decode("ascii")
        tag = s.isdigit() or (len(key) >= 2 and s[0] in "sx" and s[1] == ":")
        return ("s:" if tag else "") + s
    return "x:" + key.hex()


def parse_key(text):
    """The bytes of a key in the CLI's syntax (the inverse of key_text)."""
    if text.isdigit() and text.isascii():
        v = int(text)
        if v >= 1 << 64:
            raise ValueError("numeric key %s above 2^64" % text)
        return v.to_bytes(8, "big")
    if text.startswith("s:"):
        return text[2:].encode("utf-8", "surrogateescape")
    if text.startswith("x:"):
        return bytes.fromhex(text[2:])
    return text.encode("utf-8", "surrogateescape")


def name_text(name):
    """A tensor name as `embeddb ls` prints it (cli_fmt_name)."""
    out = bytearray()
    for b in bytes(name):
        if b < 0x20 or b == 0x7F:
            out += b"\\x%02x" % b
        elif b == 0x5C:
            out += b"\\\\"
        else:
            out.append(b)
    return out.decode("utf-8", "surrogateescape")


def shape_text(shape):
    return "x".join(str(d) for d in shape) if shape else "scalar"


def dtype_name(code):
    return DTYPES[code][0]
