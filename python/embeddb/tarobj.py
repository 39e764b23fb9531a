"""tarobj.py -- reads an uploaded snapshot object (snapshot/FORMAT.md, "The
uploaded object"): one ustar archive, plain or as a standard zstd or gzip
stream of the same tar, from a path or any readable stream (an S3
get_object()["Body"], an HTTP response, a pipe), without unpacking to disk.

A plain .tar given by path is memory-mapped and its members are views of the
map (no copy). Anything else is read once, front to back, each member into
memory; nothing seeks. The compression is told by the first bytes (zstd
28 b5 2f fd, gzip 1f 8b), not by the name.

Refused with CorruptError naming the object and the offset (in the tar
stream, after decompression): a header whose checksum or size field is bad,
a member that is not a regular file or directory entry, members from more
than one directory, a name twice, and a stream that ends before the two
zero blocks (truncated).
"""
import mmap
import os

from .errors import CorruptError
from .segment import Blob

BLOCK = 512
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
GZIP_MAGIC = b"\x1f\x8b"
CHUNK = 1 << 20


class _Prefixed:
    """A reader that first returns head, then the rest of f."""

    def __init__(self, head, f):
        self.head, self.f = head, f

    def read(self, n=-1):
        if self.head:
            if n is None or n < 0:
                out, self.head = self.head + self.f.read(), b""
                return out
            out, self.head = self.head[:n], self.head[n:]
            if len(out) < n:
                out += self.f.read(n - len(out)) or b""
            return out
        return self.f.read(n)

    def readable(self):
        return True


def _read_exact(f, n):
    """Up to n bytes from f, short only at the end of the stream."""
    parts, got = [], 0
    while got < n:
        b = f.read(min(n - got, CHUNK))
        if not b:
            break
        parts.append(b)
        got += len(b)
    return b"".join(parts) if len(parts) != 1 else parts[0]


def _octal(field, name, off, what):
    raw = bytes(field)
    if raw[:1] and raw[0] & 0x80:  # GNU base-256
        v = int.from_bytes(raw, "big") & ~(0x80 << (8 * (len(raw) - 1)))
        return v
    s = raw.split(b"\0", 1)[0].strip(b" ")
    if not s:
        return 0
    try:
        return int(s, 8)
    except ValueError:
        raise CorruptError(name, off, "tar header %s field is not octal" % what) from None


def _header(h, name, off):
    """(member path, size, typeflag) of the 512-byte header h at off."""
    want = _octal(h[148:156], name, off, "chksum")
    got = sum(bytes(h[:148])) + 8 * 32 + sum(bytes(h[156:]))
    if want != got:
        raise CorruptError(name, off, "tar header checksum mismatch")
    size = _octal(h[124:136], name, off, "size")
    typ = bytes(h[156:157])
    nm = bytes(h[0:100]).split(b"\0", 1)[0]
    if bytes(h[257:262]) == b"ustar":
        pre = bytes(h[345:500]).split(b"\0", 1)[0]
        if pre:
            nm = pre + b"/" + nm
    return nm.decode("utf-8", "surrogateescape"), size, typ


class TarObject:
    """The members of one snapshot object: `files` maps a member's base name
    to its Blob, `order` lists the base names in tar order, `dirname` is the
    directory they sit in (the snapshot NAME), `name` the object's."""

    def __init__(self, name):
        self.name, self.files, self.order, self.dirname = name, {}, [], None
        self._map = None

    def _add(self, path, off, data):
        d, _, base = path.rstrip("/").rpartition("/")
        if self.dirname is None:
            self.dirname = d
        elif d != self.dirname:
            raise CorruptError(self.name, off, "tar holds members of two directories (%r, %r)"
                               % (self.dirname, d))
        if not base or base in self.files:
            raise CorruptError(self.name, off, "tar member %r empty or repeated" % path)
        self.files[base] = Blob("%s:%s" % (self.name, path), data, keep=self._map)
        self.order.append(base)

    def close(self):
        self.files = {}
        if self._map is not None:
            try:
                self._map.close()
            except BufferError:
                pass  # arrays still view it; the map goes with the last of them


def _members(obj, next_block, read_data):
    """Walks headers: next_block() gives (offset, 512 bytes or shorter),
    read_data(off, size) the member's bytes (raising when short)."""
    long_name = None
    while True:
        off, h = next_block()
        if len(h) < BLOCK:
            raise CorruptError(obj.name, off, "tar stream truncated (no end-of-archive blocks)")
        if not any(h):
            off2, h2 = next_block()
            if len(h2) < BLOCK or any(h2):
                raise CorruptError(obj.name, off2, "tar end-of-archive is one zero block, not two")
            return
        path, size, typ = _header(h, obj.name, off)
        data_off = off + BLOCK
        data = read_data(data_off, size)
        if long_name is not None:
            path, long_name = long_name, None
        if typ in (b"0", b"\0"):
            obj._add(path, off, data)
        elif typ == b"L":
            long_name = bytes(data).split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
        elif typ in (b"5", b"x", b"g"):
            pass  # directory entries and pax headers (a re-packed object)
        else:
            raise CorruptError(obj.name, off, "tar member %r of type %r is not a file" % (path, typ))


def _open_mapped(path, name):
    obj = TarObject(name)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            raise CorruptError(name, 0, "empty object")
        obj._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    buf = memoryview(obj._map)
    pos = [0]

    def next_block():
        off = pos[0]
        pos[0] += BLOCK
        return off, buf[off:off + BLOCK]

    def read_data(off, n):
        if n > size - off:
            raise CorruptError(name, off - BLOCK, "tar member size %d runs past the object "
                               "(%d bytes left): truncated or lying" % (n, size - off))
        pos[0] = off + (n + BLOCK - 1) // BLOCK * BLOCK
        return buf[off:off + n]

    _members(obj, next_block, read_data)
    return obj


def _open_stream(f, name):
    obj = TarObject(name)
    pos = [0]

    def next_block():
        off = pos[0]
        b = _read_exact(f, BLOCK)
        pos[0] += len(b)
        return off, b

    def read_data(off, n):
        data = bytearray()
        while len(data) < n:  # in chunks: a lying size meets the end, not a huge allocation
            b = f.read(min(CHUNK, n - len(data)))
            if not b:
                raise CorruptError(name, off - BLOCK, "tar stream truncated inside a member "
                                   "(%d of %d bytes)" % (len(data), n))
            data += b
        pad = (-n) % BLOCK
        if pad and len(_read_exact(f, pad)) < pad:
            raise CorruptError(name, off + n, "tar stream truncated in a member's padding")
        pos[0] = off + n + pad
        return bytes(data)

    _members(obj, next_block, read_data)
    # The rest of the stream: tar's record padding, and the compressed
    # stream's own end, which tells a whole stream from a cut one.
    while f.read(CHUNK):
        pass
    return obj


def _decompressed(f, head, name):
    src = _Prefixed(head, f)
    if head.startswith(ZSTD_MAGIC):
        try:
            import zstandard
        except ImportError:
            raise RuntimeError("reading .tar.zst needs python3-zstandard") from None
        return _Zstd(src, zstandard, name)
    if head.startswith(GZIP_MAGIC):
        import gzip
        return gzip.GzipFile(fileobj=src, mode="rb")
    return src


class _Zstd:
    """zstd frames one after another, decompressed as read; a stream that
    ends inside a frame is truncated (CorruptError), not a short object."""

    def __init__(self, src, zstandard, name):
        self.src, self.z, self.name = src, zstandard, name
        self.d, self.buf, self.done, self.n_in = None, b"", False, 0

    def read(self, n=-1):
        while not self.done and (n is None or n < 0 or len(self.buf) < n):
            chunk = self.src.read(CHUNK)
            if not chunk:
                if self.d is not None:
                    raise CorruptError(self.name, self.n_in, "zstd stream truncated inside a frame")
                self.done = True
                break
            self.n_in += len(chunk)
            while chunk:
                if self.d is None:
                    self.d = self.z.ZstdDecompressor().decompressobj()
                self.buf += self.d.decompress(chunk)
                chunk = b""
                if self.d.eof:
                    chunk, self.d = self.d.unused_data, None
        if n is None or n < 0:
            out, self.buf = self.buf, b""
        else:
            out, self.buf = self.buf[:n], self.buf[n:]
        return out


class _Guard:
    """Turns a decompressor's own errors into CorruptError."""

    def __init__(self, f, name):
        self.f, self.name, self.n = f, name, 0

    def read(self, n=-1):
        try:
            b = self.f.read(n)
        except (OSError, EOFError, ValueError) as e:
            raise CorruptError(self.name, self.n, "compressed stream damaged: %s" % e) from None
        except Exception as e:  # zstandard.ZstdError is no OSError
            if type(e).__name__ == "ZstdError":
                raise CorruptError(self.name, self.n, "compressed stream damaged: %s" % e) from None
            raise
        self.n += len(b)
        return b


def open_object(src, name=None):
    """A TarObject from a path or a readable binary stream."""
    if isinstance(src, (str, bytes, os.PathLike)):
        path = os.fsdecode(src)
        name = name or path
        with open(path, "rb") as f:
            head = f.read(4)
            if not head.startswith(ZSTD_MAGIC) and not head.startswith(GZIP_MAGIC):
                return _open_mapped(path, name)
            return _open_stream(_Guard(_decompressed(f, head, name), name), name)
    name = name or getattr(src, "name", None) or "<stream>"
    head = _read_exact(src, 4)
    return _open_stream(_Guard(_decompressed(src, head, name), name), name)
