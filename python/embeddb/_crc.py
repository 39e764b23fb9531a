"""_crc.py -- CRC-32C (Castagnoli), the checksum of every EmbedDb structure.

Uses Debian's python3-crc32c (hardware CRC instructions where the CPU has
them) and falls back to a table-driven pure-Python version, which gives the
same values about 200 times slower; `BACKEND` says which one runs.
crc32c(b"123456789") == 0xe3069283.
"""

try:
    import crc32c as _fast

    def crc32c(data, crc=0):
        """CRC-32C of data (any bytes-like), continuing from crc."""
        return _fast.crc32c(data, crc)

    BACKEND = "crc32c"
except ImportError:  # pragma: no cover - exercised by the fallback test
    _fast = None
    BACKEND = "python"


def _make_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _make_table()


def crc32c_py(data, crc=0):
    """The pure-Python CRC-32C: same contract as crc32c()."""
    t = _TABLE
    c = crc ^ 0xFFFFFFFF
    for b in bytes(data):
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


if _fast is None:
    crc32c = crc32c_py  # noqa: F811 -- the fallback
