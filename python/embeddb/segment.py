"""segment.py -- decoders of the TensorStore's files, written from
core/FORMAT.md (format versions 1 and 2) alone: segment headers, plain and
packed batches, records and frames, SST footers, index v1 (EDBSST01) and
v2 (EDBSST02), and the store MANIFEST.

Each decoder works on a Blob (a named, read-only buffer: a memory map of a
file, or bytes of a tar member) and checks every length against its bound
before using it, then the checksum, then the fields -- the order the format
document gives. Damage raises CorruptError naming the blob and the offset
of the structure. Nothing here opens files or decides which segments are
live; store.py does that.

A location of a tensor is a tuple:
  ("plain", blob, rec_off)             a record (its header at rec_off)
  ("packed", blob, frame_off, k)       record k of the frame at frame_off
"""
import struct

from ._crc import crc32c
from .errors import CorruptError, FormatError

SEG_MAGIC = b"EDBSEG01"
SEG_HEADER_LEN = 32
BATCH_MAGIC = 0x54414245
BATCH_HEADER_LEN = 32
FOOTER_LEN = 64
SST_MAGIC_V1 = b"EDBSST01"
SST_MAGIC_V2 = b"EDBSST02"
MAN_MAGIC = b"EDBMAN01"
MAX_KEY_LEN = 1024
MAX_NAME_LEN = 1024
MAX_DIMS = 8
BLOCK = 4096
PACK_MAX_DATA = 1024
FRAME_MAX_LEN = 65536
FRAME_MAX_SCHEMAS = 64
RESTART_INTERVAL = 64

# code: (short name, NumPy dtype string, element size). bf16 comes back as
# its raw 16-bit patterns (uint16), as `embeddb get` writes it to .npy.
DTYPES = {
    1: ("f16", "<f2", 2), 2: ("bf16", "<u2", 2), 3: ("f32", "<f4", 4), 4: ("f64", "<f8", 8),
    5: ("i8", "|i1", 1), 6: ("i16", "<i2", 2), 7: ("i32", "<i4", 4), 8: ("i64", "<i8", 8),
    9: ("u8", "|u1", 1), 10: ("u16", "<u2", 2), 11: ("u32", "<u4", 4), 12: ("u64", "<u8", 8),
    13: ("bool", "|b1", 1), 14: ("c64", "<c8", 8), 15: ("c128", "<c16", 16),
}

_U64 = 1 << 64
_HDR = struct.Struct("<8sQQII")
_BATCH = struct.Struct("<IIQQII")
_REC = struct.Struct("<IIQQqHHBBH")
_FOOTER = struct.Struct("<QQIIQQQII8s")
_ENTRY_V1 = struct.Struct("<QQIIIHBB")


def align(n, a):
    return (n + a - 1) // a * a


def to_i64(v):
    v &= _U64 - 1
    return v - _U64 if v >> 63 else v


class Blob:
    """A file's bytes, read-only: `name` for messages, `buf` a memoryview
    (of a memory map when the file is on disk, so slices are no copies),
    `keep` whatever must stay alive while views of buf exist."""

    def __init__(self, name, buf, keep=None):
        self.name = name
        self.buf = memoryview(buf).cast("B") if not isinstance(buf, memoryview) else buf
        self.keep = keep
        self.size = len(self.buf)

    def bad(self, off, reason):
        return CorruptError(self.name, off, reason)


def varint(buf, pos, end):
    """LEB128 at buf[pos:end]: (value, next pos). At most 10 bytes, < 2^64."""
    v = shift = 0
    for i in range(10):
        if pos + i >= end:
            raise FormatError("varint runs past its structure", pos)
        b = buf[pos + i]
        v |= (b & 0x7F) << shift
        if not b & 0x80:
            if v >= _U64:
                raise FormatError("varint above 2^64", pos)
            return v, pos + i + 1
        shift += 7
    raise FormatError("varint longer than 10 bytes", pos)


def zigzag(v):
    return (v >> 1) ^ -(v & 1)


def check_header(blob, file_no=None):
    """Segment header at 0: (file number, base_seq, version)."""
    if blob.size < SEG_HEADER_LEN:
        raise blob.bad(0, "file shorter than the 32-byte segment header")
    h = bytes(blob.buf[:SEG_HEADER_LEN])
    magic, no, base, ver, crc = _HDR.unpack(h)
    if magic != SEG_MAGIC:
        raise blob.bad(0, "bad segment magic")
    if crc32c(h[:28]) != crc:
        raise blob.bad(0, "segment header checksum mismatch")
    if ver not in (1, 2):
        raise blob.bad(24, "unsupported segment version %d" % ver)
    if file_no is not None and no != file_no:
        raise blob.bad(8, "segment file number %d does not match its name (%d)" % (no, file_no))
    return no, base, ver


def shape_numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


class Record:
    """A decoded record header (plain) or frame record (packed)."""

    __slots__ = ("key", "name", "dtype", "shape", "timestamp_ns", "seq", "data_off",
                 "data_len", "crcs_off", "blob", "packed")

    def dtype_name(self):
        return DTYPES[self.dtype][0]


def parse_record(blob, off, end, verify_data=False):
    """The plain record at off (its record must end by end): a Record and
    the record's length. Checks every bound, then hdr_crc; the data block
    checksums only with verify_data (load_data checks them otherwise)."""
    buf = blob.buf
    if off % 8:
        raise blob.bad(off, "record not 8-byte aligned")
    if end - off < 40:
        raise blob.bad(off, "record header runs past its batch")
    (hcrc, hdr_len, data_len, seq, ts, key_len, name_len, dt, ndim,
     res) = _REC.unpack_from(buf, off)
    if not 1 <= key_len <= MAX_KEY_LEN:
        raise blob.bad(off, "record key_len %d out of 1..1024" % key_len)
    if name_len > MAX_NAME_LEN:
        raise blob.bad(off, "record name_len %d above 1024" % name_len)
    if ndim > MAX_DIMS:
        raise blob.bad(off, "record ndim %d above 8" % ndim)
    if dt not in DTYPES:
        raise blob.bad(off, "record dtype %d unknown" % dt)
    if res:
        raise blob.bad(off, "record reserved field not zero")
    nblocks = (data_len + BLOCK - 1) // BLOCK
    want = align(align(40 + 8 * ndim + key_len + name_len, 4) + 4 * nblocks, 8)
    if hdr_len != want or hdr_len > end - off:
        raise blob.bad(off, "record hdr_len %d wrong (layout needs %d, %d left)"
                       % (hdr_len, want, end - off))
    rec_len = hdr_len + align(data_len, 8)
    if rec_len >= 1 << 32 or rec_len > end - off:
        raise blob.bad(off, "record length %d runs past its batch or 32 bits" % rec_len)
    if crc32c(buf[off + 4:off + hdr_len]) != hcrc:
        raise blob.bad(off, "record header checksum mismatch")
    shape = struct.unpack_from("<%dQ" % ndim, buf, off + 40)
    size = DTYPES[dt][2]
    numel = shape_numel(shape)
    if numel * size != data_len:
        raise blob.bad(off, "record data_len %d is not product(shape) x %d" % (data_len, size))
    p = off + 40 + 8 * ndim
    r = Record()
    r.key = bytes(buf[p:p + key_len])
    r.name = bytes(buf[p + key_len:p + key_len + name_len])
    r.dtype, r.shape, r.timestamp_ns, r.seq = dt, shape, ts, seq
    r.crcs_off = align(p + key_len + name_len, 4)
    r.data_off, r.data_len, r.blob, r.packed = off + hdr_len, data_len, blob, False
    if verify_data:
        check_data(r)
    return r, rec_len


def check_data(r, upto=None):
    """Checks the data block checksums of plain record r: all of them, or
    those of the blocks holding its first `upto` bytes."""
    if r.packed:
        return
    buf, blob = r.blob.buf, r.blob
    n = r.data_len if upto is None else min(upto, r.data_len)
    for b in range((n + BLOCK - 1) // BLOCK):
        lo = r.data_off + b * BLOCK
        hi = min(lo + BLOCK, r.data_off + r.data_len)
        want = int.from_bytes(buf[r.crcs_off + 4 * b:r.crcs_off + 4 * b + 4], "little")
        if crc32c(buf[lo:hi]) != want:
            raise blob.bad(lo, "data block %d checksum mismatch" % b)


def parse_frame(blob, off, end):
    """The packed frame at off (it must end by end): (list of Records in
    order, first_seq, frame length incl. frame_len). Checks the CRC first,
    then every field."""
    buf = blob.buf
    if end - off < 4:
        raise blob.bad(off, "frame length runs past its batch")
    flen = int.from_bytes(buf[off:off + 4], "little")
    total = 4 + flen
    if flen < 4 or total > FRAME_MAX_LEN or total > end - off:
        raise blob.bad(off, "frame_len %d out of bounds" % flen)
    crc_at = off + total - 4
    if crc32c(buf[off:crc_at]) != int.from_bytes(buf[crc_at:crc_at + 4], "little"):
        raise blob.bad(off, "frame checksum mismatch")
    try:
        return _decode_frame(blob, buf, off, crc_at) + (total,)
    except FormatError as e:
        raise blob.bad(off if e.offset is None else e.offset, "frame: " + e.reason) from None


def _decode_frame(blob, buf, off, end):
    p = off + 4
    n, p = varint(buf, p, end)
    first_seq, p = varint(buf, p, end)
    ns, p = varint(buf, p, end)
    if n < 1 or n > FRAME_MAX_LEN:
        raise FormatError("n_records %d out of bounds" % n, off)
    if not 1 <= ns <= FRAME_MAX_SCHEMAS or ns > n:
        raise FormatError("n_schemas %d out of 1..64 or above n_records" % ns, off)
    schemas = []
    for _ in range(ns):
        at = p
        nl, p = varint(buf, p, end)
        if nl > MAX_NAME_LEN or p + nl + 2 > end:
            raise FormatError("schema name_len %d out of bounds" % nl, at)
        name = bytes(buf[p:p + nl])
        dt, ndim = buf[p + nl], buf[p + nl + 1]
        p += nl + 2
        if dt not in DTYPES:
            raise FormatError("schema dtype %d unknown" % dt, at)
        if ndim > MAX_DIMS:
            raise FormatError("schema ndim %d above 8" % ndim, at)
        shape = []
        for _ in range(ndim):
            d, p = varint(buf, p, end)
            if d > PACK_MAX_DATA:
                raise FormatError("schema dimension %d too large for a packed tensor" % d, at)
            shape.append(d)
        dlen = shape_numel(shape) * DTYPES[dt][2]
        if dlen > PACK_MAX_DATA:
            raise FormatError("schema data length %d above 1024" % dlen, at)
        schemas.append((name, dt, tuple(shape), dlen))
    prev_keys = [b""] * ns
    recs = []
    cur = None
    ts = 0
    for k in range(n):
        at = p
        h, p = varint(buf, p, end)
        suffix_len, same_len, same_schema = h >> 2, (h >> 1) & 1, h & 1
        if same_schema:
            if cur is None:
                raise FormatError("first record of a frame says same_schema", at)
        else:
            cur, p = varint(buf, p, end)
            if cur >= ns:
                raise FormatError("schema index %d out of the table" % cur, at)
        prev = prev_keys[cur]
        if same_len:
            shared = len(prev) - suffix_len
            if shared < 0:
                raise FormatError("suffix longer than the previous key", at)
        else:
            shared, p = varint(buf, p, end)
            if shared > len(prev):
                raise FormatError("shared %d above the previous key's length" % shared, at)
        key_len = shared + suffix_len
        if not 1 <= key_len <= MAX_KEY_LEN or suffix_len > end - p:
            raise FormatError("key length %d out of 1..1024 or past the frame" % key_len, at)
        key = prev[:shared] + bytes(buf[p:p + suffix_len])
        p += suffix_len
        prev_keys[cur] = key
        d, p = varint(buf, p, end)
        ts = to_i64(ts + zigzag(d))
        name, dt, shape, dlen = schemas[cur]
        if dlen > end - p:
            raise FormatError("record data runs past the frame", at)
        r = Record()
        r.key, r.name, r.dtype, r.shape, r.timestamp_ns = key, name, dt, shape, ts
        r.seq = (first_seq + k) % _U64
        r.data_off, r.data_len, r.crcs_off, r.blob, r.packed = p, dlen, None, blob, True
        recs.append(r)
        p += dlen
    if p != end:
        raise FormatError("frame holds %d bytes after its last record" % (end - p), p)
    return recs, first_seq


def parse_batch_header(blob, off):
    """The batch header at off: (n_records, body_len, first_seq, kind), or
    None when it runs past the end of the blob (a torn tail). Raises on a
    bad magic or checksum or an impossible field."""
    if blob.size - off < BATCH_HEADER_LEN:
        return None
    h = bytes(blob.buf[off:off + BATCH_HEADER_LEN])
    magic, n, body_len, first_seq, kind, crc = _BATCH.unpack(h)
    if magic != BATCH_MAGIC:
        raise blob.bad(off, "bad batch magic")
    if crc32c(h[:28]) != crc:
        raise blob.bad(off, "batch header checksum mismatch")
    if n < 1 or body_len % 8 or kind not in (0, 1):
        raise blob.bad(off, "batch header fields out of bounds")
    if body_len < (40 if kind == 0 else 2) * n:
        raise blob.bad(off, "batch body_len %d too small for %d records" % (body_len, n))
    return n, body_len, first_seq, kind


def parse_batch(blob, off, end, version, expect_seq, verify_data=True):
    """The batch at off, whose body must end by end: (records in order,
    offset after it). None when its header or body runs past end (torn)."""
    hdr = parse_batch_header(blob, off)
    if hdr is None:
        return None
    n, body_len, first_seq, kind = hdr
    if expect_seq is not None and first_seq != expect_seq:
        raise blob.bad(off, "batch first_seq %d where %d was due" % (first_seq, expect_seq))
    if kind == 1 and version == 1:
        raise blob.bad(off, "packed batch in a version 1 segment")
    body = off + BATCH_HEADER_LEN
    if body_len > end - body:
        return None
    body_end = body + body_len
    recs = []
    p = body
    if kind == 0:
        for i in range(n):
            r, rec_len = parse_record(blob, p, body_end, verify_data)
            if r.seq != (first_seq + i) % _U64:
                raise blob.bad(p, "record seq %d where %d was due" % (r.seq, first_seq + i))
            recs.append(("plain", blob, p, r))
            p += rec_len
        if p != body_end:
            raise blob.bad(p, "plain batch body has %d bytes after its records" % (body_end - p))
    else:
        while len(recs) < n:
            at = p
            frs, fseq, flen = parse_frame(blob, p, body_end)
            if fseq != (first_seq + len(recs)) % _U64:
                raise blob.bad(at, "frame first_seq %d where %d was due"
                               % (fseq, first_seq + len(recs)))
            if len(recs) + len(frs) > n:
                raise blob.bad(at, "frames hold more than the batch's %d records" % n)
            recs.extend(("packed", blob, at, k, r) for k, r in enumerate(frs))
            p += flen
        pad = body_end - p
        if pad >= 8 or any(blob.buf[p:body_end]):
            raise blob.bad(p, "packed batch pad is not 0..7 zero bytes")
    return recs, body_end


def parse_footer(blob, file_no=None):
    """The 64-byte footer: dict of its fields, or raises."""
    if blob.size < SEG_HEADER_LEN + FOOTER_LEN:
        raise blob.bad(None, "file too short for an SST footer")
    at = blob.size - FOOTER_LEN
    f = bytes(blob.buf[at:])
    (index_off, index_len, n, icrc, min_seq, max_seq, no, res, fcrc,
     magic) = _FOOTER.unpack(f)
    if magic not in (SST_MAGIC_V1, SST_MAGIC_V2):
        raise blob.bad(at, "bad SST footer magic")
    if crc32c(f[:52]) != fcrc:
        raise blob.bad(at, "SST footer checksum mismatch")
    if res:
        raise blob.bad(at, "SST footer reserved field not zero")
    if index_off < SEG_HEADER_LEN or index_off + index_len != at:
        raise blob.bad(at, "SST footer index_off %d / index_len %d do not end at the footer"
                       % (index_off, index_len))
    if file_no is not None and no != file_no:
        raise blob.bad(at, "SST footer file number %d does not match its name (%d)" % (no, file_no))
    if crc32c(blob.buf[index_off:at]) != icrc:
        raise blob.bad(index_off, "SST index checksum mismatch")
    return {"index_off": index_off, "index_len": index_len, "n": n, "min_seq": min_seq,
            "max_seq": max_seq, "file_no": no, "v": 1 if magic == SST_MAGIC_V1 else 2}


def has_footer(blob):
    """1 when blob ends in a valid SST footer (a sealed segment)."""
    try:
        parse_footer(blob)
        return True
    except CorruptError:
        return False


class SST:
    """A sealed segment: its index, decoded and checked once.

    `entries` is a list of (key, location) in key order; `blocks` the
    timestamp range (lo, hi) of each 64-entry restart block (index v2;
    None for v1, whose index has no times)."""

    def __init__(self, blob, file_no=None):
        self.blob = blob
        _, self.base_seq, self.version = check_header(blob, file_no)
        self.footer = ft = parse_footer(blob, file_no)
        self.blocks = None
        try:
            if ft["v"] == 1:
                self.entries = self._index_v1(ft)
            else:
                self.entries = self._index_v2(ft)
        except FormatError as e:
            raise blob.bad(ft["index_off"] if e.offset is None else e.offset,
                           "index: " + e.reason) from None

    def _index_v1(self, ft):
        buf, off, n = self.blob.buf, ft["index_off"], ft["n"]
        end = off + ft["index_len"]
        if n * 32 > ft["index_len"]:
            raise FormatError("n_entries %d do not fit the index" % n)
        heap = off + 32 * n
        out, prev, heap_end = [], None, heap
        for i in range(n):
            e = off + 32 * i
            rec_off, seq, rec_len, hdr_len, key_off, key_len, dt, res = _ENTRY_V1.unpack_from(buf, e)
            if not 1 <= key_len <= MAX_KEY_LEN or heap + key_off + key_len > end:
                raise FormatError("entry %d key out of the heap" % i, e)
            if rec_off < SEG_HEADER_LEN or rec_off + rec_len > off or rec_off % 8:
                raise FormatError("entry %d record out of the record area" % i, e)
            if dt not in DTYPES or res:
                raise FormatError("entry %d dtype %d / reserved bad" % (i, dt), e)
            key = bytes(buf[heap + key_off:heap + key_off + key_len])
            if prev is not None and key <= prev:
                raise FormatError("entry %d key not above the previous one" % i, e)
            heap_end = max(heap_end, heap + key_off + key_len)
            prev = key
            out.append((key, ("plain", self.blob, rec_off, (seq, rec_len, hdr_len, dt))))
        if align(heap_end - off, 8) != ft["index_len"] or any(buf[heap_end:end]):
            raise FormatError("index heap pad is not zero up to a multiple of 8", heap_end)
        return out

    def _index_v2(self, ft):
        buf, off = self.blob.buf, ft["index_off"]
        end = off + ft["index_len"]
        if ft["index_len"] < 16:
            raise FormatError("index shorter than its header")
        n, n_frames, elen, tlen = struct.unpack_from("<IIII", buf, off)
        if n != ft["n"]:
            raise FormatError("index n_entries %d differ from the footer's %d" % (n, ft["n"]))
        n_restarts = (n + RESTART_INTERVAL - 1) // RESTART_INTERVAL
        ent = off + 16
        rst = ent + elen
        tms = rst + 4 * n_restarts
        frm = tms + tlen
        pad = frm + 12 * n_frames
        if pad > end or end - pad >= 8 or any(buf[pad:end]):
            raise FormatError("index parts do not add up to index_len with a zero pad")
        restarts = struct.unpack_from("<%dI" % n_restarts, buf, rst)
        frames = [struct.unpack_from("<QI", buf, frm + 12 * i) for i in range(n_frames)]
        prev_end = SEG_HEADER_LEN
        for i, (fo, fl) in enumerate(frames):
            if fo < prev_end or fo + fl > off or fl < 8 or fl > FRAME_MAX_LEN:
                raise FormatError("frame %d (offset %d, length %d) out of order or bounds"
                                  % (i, fo, fl), frm + 12 * i)
            prev_end = fo + fl
        out, p, prev_key = [], ent, None
        for i in range(n):
            at = p
            if i % RESTART_INTERVAL == 0:
                if restarts[i // RESTART_INTERVAL] != p - ent:
                    raise FormatError("restart %d does not point at entry %d"
                                      % (i // RESTART_INTERVAL, i), at)
                last, frame_no, last_k, last_packed = b"", 0, -1, False
            a, p = varint(buf, p, rst)
            unshared, same_len = a >> 1, a & 1
            if same_len:
                shared = len(last) - unshared
                if shared < 0:
                    raise FormatError("entry %d unshared above the previous key" % i, at)
            else:
                shared, p = varint(buf, p, rst)
                if shared > len(last):
                    raise FormatError("entry %d shares more than the previous key" % i, at)
            klen = shared + unshared
            if not 1 <= klen <= MAX_KEY_LEN or unshared > rst - p:
                raise FormatError("entry %d key length %d out of bounds" % (i, klen), at)
            key = last[:shared] + bytes(buf[p:p + unshared])
            p += unshared
            if prev_key is not None and key <= prev_key:
                raise FormatError("entry %d key not above the previous one" % i, at)
            v, p = varint(buf, p, rst)
            if v & 1:
                k1 = v >> 1
                if k1 == 0:
                    if not last_packed:
                        raise FormatError("entry %d continues a frame after no packed entry" % i, at)
                    k = last_k + 1
                else:
                    k = k1 - 1
                    d, p = varint(buf, p, rst)
                    frame_no = frame_no + zigzag(d)
                if not 0 <= frame_no < n_frames:
                    raise FormatError("entry %d frame number %d out of 0..%d"
                                      % (i, frame_no, n_frames - 1), at)
                if k >= FRAME_MAX_LEN:
                    raise FormatError("entry %d record number %d out of bounds" % (i, k), at)
                out.append((key, ("packed", self.blob, frames[frame_no][0], k)))
                last_k, last_packed = k, True
            else:
                hdr_len = v >> 1
                rec_off, p = varint(buf, p, rst)
                rec_len, p = varint(buf, p, rst)
                if p >= rst:
                    raise FormatError("entry %d runs past the entries" % i, at)
                dt = buf[p]
                p += 1
                if (rec_off < SEG_HEADER_LEN or rec_off % 8 or rec_off + rec_len > off
                        or hdr_len > rec_len or dt not in DTYPES):
                    raise FormatError("entry %d record out of the record area" % i, at)
                out.append((key, ("plain", self.blob, rec_off, (None, rec_len, hdr_len, dt))))
                last_packed = False
            last = prev_key = key
        if p != rst:
            raise FormatError("entries end %d bytes before entries_len" % (rst - p), p)
        blocks, q, mn = [], tms, 0
        for b in range(n_restarts):
            d, q = varint(buf, q, frm)
            mn = to_i64(mn + zigzag(d))
            w, q = varint(buf, q, frm)
            blocks.append((mn, to_i64(mn + w)))
        if q != frm:
            raise FormatError("times end %d bytes before times_len" % (frm - q), q)
        self.blocks = blocks
        return out


def parse_manifest(blob):
    """MANIFEST: (version, wal_no, [(lo, hi), ...])."""
    buf = bytes(blob.buf)
    if len(buf) < 28:
        raise blob.bad(0, "MANIFEST shorter than 28 bytes")
    if buf[:8] != MAN_MAGIC:
        raise blob.bad(0, "bad MANIFEST magic")
    ver, nr, wal_no = struct.unpack_from("<IIQ", buf, 8)
    if ver not in (1, 2):
        raise blob.bad(8, "unsupported MANIFEST version %d" % ver)
    if len(buf) != 24 + 16 * nr + 4:
        raise blob.bad(12, "MANIFEST n_ranges %d does not match its length %d" % (nr, len(buf)))
    if crc32c(buf[:-4]) != int.from_bytes(buf[-4:], "little"):
        raise blob.bad(len(buf) - 4, "MANIFEST checksum mismatch")
    ranges, prev = [], -1
    for i in range(nr):
        lo, hi = struct.unpack_from("<QQ", buf, 24 + 16 * i)
        if lo > hi or lo <= prev or hi >= wal_no:
            raise blob.bad(24 + 16 * i, "MANIFEST range %d..%d out of order or not below wal_no"
                           % (lo, hi))
        prev = hi
        ranges.append((lo, hi))
    return ver, wal_no, ranges
