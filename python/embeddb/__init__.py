"""embeddb -- read EmbedDb stores, snapshots and uploaded snapshot objects
into NumPy.

A second, independent implementation of core/FORMAT.md (TensorStore format
versions 1 and 2) and snapshot/FORMAT.md (MANIFEST.json, STATE, the uploaded
tar), in pure Python with NumPy. It reads; it never writes a store.

    import embeddb
    with embeddb.open("board-7-00000000000000000001.tar.zst") as r:
        for t in r.tensors(topic="imu_window", start_ns=t0):
            print(t.key, t.timestamp_ns, t.array.mean())

See python/README.md for the whole interface; `python3 -m embeddb --help`
for the command line (ls, cat, verify, export).
"""
from ._crc import BACKEND as CRC_BACKEND, crc32c
from .errors import CorruptError, EmbedDbError
from .reader import Reader, Tensor, open
from .text import key_text, parse_key

from ._version import __version__

__all__ = ["open", "Reader", "Tensor", "CorruptError", "EmbedDbError", "crc32c", "CRC_BACKEND",
           "key_text", "parse_key", "__version__"]
