"""errors.py -- the exceptions the reader raises.

Every damage the reader finds is a CorruptError that names the file (for a
member of an uploaded object, "OBJECT:MEMBER") and the byte offset inside it
where the bad structure starts, like the C reader's messages. Anything that
is not damage (a missing file, a key not found, a bad argument) is one of
Python's own exceptions (FileNotFoundError, KeyError, ValueError).
"""


class EmbedDbError(Exception):
    """Base class of the package's own errors."""


class CorruptError(EmbedDbError):
    """Damaged or inconsistent data: `file`, `offset` (None when the whole
    file is meant) and `reason` say where and what."""

    def __init__(self, file, offset, reason):
        self.file, self.offset, self.reason = str(file), offset, reason
        where = self.file if offset is None else "%s: offset %d" % (self.file, offset)
        super().__init__("%s: %s" % (where, reason))

    def __reduce__(self):  # pickles whole: Dask hands a worker's error back
        return (CorruptError, (self.file, self.offset, self.reason))


class FormatError(Exception):
    """Internal: a decoder's complaint before the caller adds file and offset."""

    def __init__(self, reason, offset=None):
        self.reason, self.offset = reason, offset
        super().__init__(reason)
