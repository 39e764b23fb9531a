"""reader.py -- embeddb.open(): one read-only view of the tensors in a store
directory, a snapshot directory or an uploaded snapshot object, applying the
recovery rules of core/FORMAT.md in memory (it writes nothing, takes no
lock, and so runs beside a live writer).

What is visible: the newest version of every key among the live SSTs the
MANIFEST names (a sealed-but-not-renamed segment counts, recovery steps 2
and 3) and the committed batches of the open WAL segment, replayed with
every checksum checked. A WAL tail that runs past the end of the file or is
damaged with nothing valid after it is a torn tail (a writer mid-append, or
a crash): it is left out and `wal_cut` says where. Damage with a valid batch
after it is corruption.

Damage policy: structural damage found while opening (MANIFEST, an SST's
footer or index, WAL corruption) raises CorruptError, unless
open(..., on_damage="skip"), which leaves that file's tensors out and lists
the error in `damage`. Damage inside one tensor (a record header, a data
block, a frame) is found when that tensor is read and raises CorruptError
for it alone; every other tensor stays readable. Data is verified on every
read, as the C reader does.

Arrays are read-only views of memory-mapped SSTs where the source is a file
(no copy; they keep the map alive); packed tensors (1 KiB or less) and WAL
or streamed data are copies.
"""
import hashlib
import json
import mmap
import os
import re
import stat

import numpy as np

from . import segment as seg
from .errors import CorruptError
from .segment import DTYPES, Blob

_SEG_RE = re.compile(r"^(sst|wal)_(\d{6,})\.(sst|log)$")
_NAME_TO_CODE = {v[0]: k for k, v in DTYPES.items()}
_NAME_TO_CODE.update({np.dtype(v[1]).name: k for k, v in DTYPES.items() if k != 2})
_NAME_TO_CODE["bfloat16"] = 2
_U64 = 1 << 64


def dtype_code(d):
    """The dtype code of a short name (f32), a NumPy name (float32) or a
    numpy.dtype. bf16 has no NumPy dtype: name it "bf16"."""
    if isinstance(d, int) and d in DTYPES:
        return d
    if isinstance(d, str) and d in _NAME_TO_CODE:
        return _NAME_TO_CODE[d]
    try:
        name = np.dtype(d).name
    except TypeError:
        raise ValueError("unknown dtype %r" % (d,)) from None
    if name not in _NAME_TO_CODE:
        raise ValueError("unknown dtype %r" % (d,))
    return _NAME_TO_CODE[name]


def _as_key(k):
    if isinstance(k, str):
        return k.encode("utf-8", "surrogateescape")
    return bytes(k)


class Tensor:
    """One tensor: `array` (numpy.ndarray of its dtype and shape; bf16 as
    uint16 bit patterns), `key` (bytes), `name` (str; `name_bytes` raw),
    `dtype` (short name: f32, bf16, ...), `shape`, `timestamp_ns`, `seq`,
    `nbytes`, and `source` (the file it was read from)."""

    __slots__ = ("key", "name_bytes", "dtype", "shape", "timestamp_ns", "seq", "nbytes",
                 "source", "_rec", "_array", "_reader")

    def __init__(self, rec, reader):
        self.key, self.name_bytes = rec.key, rec.name
        self.dtype, self.shape = DTYPES[rec.dtype][0], tuple(rec.shape)
        self.timestamp_ns, self.seq, self.nbytes = rec.timestamp_ns, rec.seq, rec.data_len
        self.source, self._rec, self._array, self._reader = rec.blob.name, rec, None, reader

    @property
    def name(self):
        return self.name_bytes.decode("utf-8", "surrogateescape")

    @property
    def array(self):
        if self._array is None:
            self._array = _array_of(self._rec)
        return self._array

    def __array__(self, dtype=None):
        a = self.array
        return a if dtype is None else a.astype(dtype)

    def __repr__(self):
        return "Tensor(key=%r, name=%r, dtype=%s, shape=%r, seq=%d, timestamp_ns=%d)" % (
            self.key, self.name, self.dtype, self.shape, self.seq, self.timestamp_ns)


def _array_of(rec, count=None):
    """rec's data as an array, checked: all of it, or its first count
    elements (flat; only the 4 KiB blocks holding them are verified)."""
    code = DTYPES[rec.dtype]
    numel = seg.shape_numel(rec.shape)
    n = numel if count is None else min(count, numel)
    seg.check_data(rec, None if count is None else n * code[2])
    dt = np.dtype(code[1])
    if rec.packed:
        a = np.frombuffer(bytes(rec.blob.buf[rec.data_off:rec.data_off + n * code[2]]), dt)
    else:
        a = np.frombuffer(rec.blob.buf, dt, count=n, offset=rec.data_off)
    return a.reshape(rec.shape) if count is None else a


class _Dir:
    """Files of a directory, memory-mapped on request."""

    def __init__(self, path):
        self.path = path
        self.name = path

    def names(self):
        return os.listdir(self.path)

    def exists(self, base):
        return os.path.exists(os.path.join(self.path, base))

    def get(self, base, mapped=True):
        p = os.path.join(self.path, base)
        try:
            fd = os.open(p, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            size = os.fstat(fd).st_size
            if not mapped or size == 0:
                with os.fdopen(os.dup(fd), "rb") as f:
                    return Blob(p, f.read())
            m = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
            return Blob(p, memoryview(m), keep=m)
        finally:
            os.close(fd)


class _Tar:
    def __init__(self, obj):
        self.obj, self.name, self.path = obj, obj.name, obj.name

    def names(self):
        return list(self.obj.files)

    def exists(self, base):
        return base in self.obj.files

    def get(self, base, mapped=True):
        return self.obj.files.get(base)


class Reader:
    """The tensors of one store, snapshot or object (see the module text).

    `kind` is "store", "snapshot" or "object"; `manifest_json` the parsed
    MANIFEST.json (None in a plain store), `state` the STATE dict of a
    snapshot directory (None otherwise); `damage` the CorruptErrors passed
    over with on_damage="skip"; `wal_cut` (file, offset, bytes) of a torn
    WAL tail left out, or None."""

    def __init__(self, files, kind, on_damage="raise", retries=50):
        if on_damage not in ("raise", "skip"):
            raise ValueError("on_damage is 'raise' or 'skip'")
        self._files, self.kind, self.path = files, kind, files.path
        self._skip = on_damage == "skip"
        self.damage, self.wal_cut = [], None
        self.manifest_json = self.state = None
        self._frames = {}
        self._ssts, self._wal = [], None
        if files.exists("MANIFEST.json"):
            self.manifest_json = parse_manifest_json(files.get("MANIFEST.json", mapped=False))
            if kind == "store":
                self.kind = "snapshot"
        if kind != "object" and files.exists("STATE"):
            self.state = parse_state(files.get("STATE", mapped=False))
        for attempt in range(retries):
            try:
                self._open_segments()
                break
            except _Raced:
                if attempt == retries - 1:
                    raise
        self._build()

    # ---- opening -----------------------------------------------------
    def _open_segments(self):
        f = self._files
        man = f.get("MANIFEST", mapped=False)
        if man is None:
            raise FileNotFoundError("%s: no MANIFEST (not a store, snapshot or object)" % f.name)
        self.manifest_version, wal_no, ranges = seg.parse_manifest(man)
        self._ssts, self._wal, self.damage, self.wal_cut = [], None, [], None
        self._salvaged = []
        self._seen = (wal_no, ranges)
        # The ranges are only enumerated as far as segment files exist: a
        # MANIFEST naming 2^63 SSTs costs what the directory holds.
        present = set()
        for name in f.names():
            m = _SEG_RE.match(name)
            if m and m.group(1) + m.group(3) in ("sstsst", "wallog"):
                present.add(int(m.group(2)))
        for lo, hi in ranges:
            inside = sorted(n for n in present if lo <= n <= hi)
            if len(inside) != hi - lo + 1:
                # Raises, or retries a race; with on_damage="skip" notes the
                # first and the last missing SST: whatever is older than a
                # missing one may be stale and is not served.
                first = next(n for n in range(lo, hi + 1) if n not in present)
                last = next(n for n in range(hi, lo - 1, -1) if n not in present)
                self._open_sst(first, live_required=True)
                if last != first:
                    self._salvaged.append((last, _Salvaged([], False, self.damage[-1])))
            for n in inside:
                self._open_sst(n, live_required=True)
        # The open segment: sealed and renamed, sealed not yet renamed, or a WAL.
        sst_name, wal_name = "sst_%06d.sst" % wal_no, "wal_%06d.log" % wal_no
        if f.exists(sst_name):
            self._open_sst(wal_no, live_required=False)
            return
        blob = f.get(wal_name, mapped=False)
        if blob is None:
            if f.exists(sst_name):  # renamed between the two looks
                raise _Raced()
            return  # a checkpoint or snapshot: no WAL
        if seg.has_footer(blob):
            self._add_sst(blob, wal_no)
            return
        self._replay(blob, wal_no)

    def _open_sst(self, n, live_required):
        f = self._files
        blob = f.get("sst_%06d.sst" % n)
        if blob is None:
            wal = f.get("wal_%06d.log" % n)
            if wal is not None and seg.has_footer(wal):
                blob = wal
        if blob is None:
            if isinstance(f, _Dir):
                again = f.get("MANIFEST", mapped=False)
                if again is not None and seg.parse_manifest(again)[1:] != self._seen:
                    raise _Raced()  # a writer released it meanwhile
            e = CorruptError(os.path.join(f.name, "sst_%06d.sst" % n), None,
                             "live SST named by the MANIFEST is missing")
            self._damaged(e)
            self._salvaged.append((n, _Salvaged([], False, e)))
            return
        self._add_sst(blob, n)

    def _add_sst(self, blob, n):
        try:
            self._ssts.append(seg.SST(blob, n))
        except CorruptError as e:
            self._damaged(e)
            self._salvaged.append(_salvage(blob, n, e))

    def _damaged(self, e):
        if not self._skip:
            raise e
        self.damage.append(e)

    def _replay(self, blob, n):
        """The committed batches of the open WAL segment."""
        recs, off = [], seg.SEG_HEADER_LEN
        try:
            _, expect, ver = seg.check_header(blob, n)
        except CorruptError as e:
            # Recovery step 4: a header never synced is an empty segment,
            # unless valid batches follow it: then it is corruption, and
            # on_damage="skip" goes on from the first of them.
            later = _later_batch(blob, seg.SEG_HEADER_LEN, None) if blob.size >= off else None
            if later is None:
                self._wal = []
                return
            self._damaged(e)
            recs.append(("gap", e))
            (off, expect), ver = later, 2
        while off < blob.size:
            try:
                got = seg.parse_batch(blob, off, blob.size, ver, expect)
            except CorruptError as e:
                later = _later_batch(blob, off + 8, expect)
                if later is None:
                    self.wal_cut = (blob.name, off, blob.size - off)
                    break
                self._damaged(e)
                # on_damage="skip": go on at the next valid batch. The bad
                # batch may have held any key: older versions are not served.
                recs.append(("gap", e))
                off, expect = later
                continue
            if got is None:
                self.wal_cut = (blob.name, off, blob.size - off)
                break
            batch, off = got
            recs.extend(batch)
            expect = (expect + len(batch)) % _U64
        self._wal = recs

    def _build(self):
        """key -> location, newest wins: SSTs by file number, then the WAL."""
        m, trange = {}, {}
        self._ssts.sort(key=lambda s: s.footer["file_no"])
        segs = [(s.footer["file_no"], s) for s in self._ssts] + self._salvaged
        for _, s in sorted(segs, key=lambda x: x[0]):
            if isinstance(s, _Salvaged):
                # A damaged SST (on_damage="skip"): what its records still
                # show replaces older versions; when they could not all be
                # read, any older version may be stale and is not served.
                if not s.complete:
                    for k in m:
                        m[k] = ("unknown", s.error)
                for loc in s.recs:
                    m[loc[-1].key] = loc
                    trange.pop(loc[-1].key, None)
                continue
            for i, (k, loc) in enumerate(s.entries):
                m[k] = loc
                if s.blocks is not None:
                    trange[k] = s.blocks[i // seg.RESTART_INTERVAL]
                else:
                    trange.pop(k, None)
        for loc in self._wal or ():
            if loc[0] == "gap":
                for k in m:
                    m[k] = ("unknown", loc[1])
                continue
            m[loc[-1].key] = loc
            trange.pop(loc[-1].key, None)
        self._map, self._trange = m, trange
        self._keys = sorted(m)

    # ---- reading -----------------------------------------------------
    def _record(self, loc):
        if loc[0] == "unknown":
            raise CorruptError(loc[1].file, loc[1].offset, "a newer version may be in this "
                               "damaged file (%s); the older one is not served" % loc[1].reason)
        if len(loc) == 4 and loc[0] == "plain" and isinstance(loc[3], tuple):
            _, blob, off, (seq, rec_len, hdr_len, dt) = loc
            rec, got_len = seg.parse_record(blob, off, off + rec_len)
            if got_len != rec_len or (seq is not None and rec.seq != seq) or rec.dtype != dt:
                raise blob.bad(off, "record does not match its index entry "
                               "(length, seq or dtype)")
            return rec
        if loc[0] == "plain":
            return loc[3]
        if len(loc) == 5:
            return loc[4]
        _, blob, foff, k = loc
        ck = (id(blob), foff)
        recs = self._frames.get(ck)
        if recs is None:
            recs = seg.parse_frame(blob, foff, blob.size)[0]
            if len(self._frames) > 1024:
                self._frames.clear()
            self._frames[ck] = recs
        if k >= len(recs):
            raise blob.bad(foff, "index names record %d of a frame of %d" % (k, len(recs)))
        return recs[k]

    def _checked(self, key, rec):
        if rec.key != key:
            raise rec.blob.bad(rec.data_off, "record key %r is not its index entry's %r"
                               % (rec.key, key))
        return rec

    def keys(self, prefix=b""):
        """Every visible key (bytes), ascending; those starting with prefix."""
        p = _as_key(prefix)
        return [k for k in self._keys if k.startswith(p)] if p else list(self._keys)

    def __len__(self):
        return len(self._keys)

    def __contains__(self, key):
        return _as_key(key) in self._map

    def get(self, key):
        """The Tensor under key (KeyError when none); its data verified."""
        k = _as_key(key)
        if k not in self._map:
            raise KeyError(key)
        t = Tensor(self._checked(k, self._record(self._map[k])), self)
        t.array  # noqa: B018 -- verify now, so a damaged tensor raises here
        return t

    def load(self, key):
        """The array under key."""
        return self.get(key).array

    def info(self, key):
        """The Tensor under key with only its header read (no data check)."""
        k = _as_key(key)
        if k not in self._map:
            raise KeyError(key)
        return Tensor(self._checked(k, self._record(self._map[k])), self)

    def preview(self, key, n=8):
        """The first n elements (flat) of key's tensor, reading and checking
        only the 4 KiB blocks that hold them."""
        t = self.info(key)
        return _array_of(t._rec, n)

    def summarize(self, key, n=8):
        """The seed's summary line, as `embeddb preview DIR KEY -n N` prints it."""
        from .text import summary_line
        t = self.info(key)
        return summary_line(t.name_bytes, t._rec.dtype, t.shape, _array_of(t._rec, n))

    def tensors(self, prefix=b"", topic=None, start_ns=None, end_ns=None, dtype=None,
                load=True, on_damage="raise"):
        """Tensors in key order, filtered: key prefix; topic (a name or a
        list of names: the agent names a tensor after its MQTT topic);
        timestamps in [start_ns, end_ns); dtype (a name or list). With
        load=False the data is read on first use of .array. on_damage="skip"
        passes damaged tensors over (listed in self.damage)."""
        topics = None if topic is None else {_as_key(t) for t in
                                             ([topic] if isinstance(topic, (str, bytes)) else topic)}
        dts = None if dtype is None else {dtype_code(d) for d in
                                          ([dtype] if isinstance(dtype, (str, int, np.dtype, type))
                                           else dtype)}
        for k in self.keys(prefix):
            tr = self._trange.get(k)
            if tr is not None and ((start_ns is not None and tr[1] < start_ns) or
                                   (end_ns is not None and tr[0] >= end_ns)):
                continue
            try:
                rec = self._checked(k, self._record(self._map[k]))
                if topics is not None and rec.name not in topics:
                    continue
                if dts is not None and rec.dtype not in dts:
                    continue
                if start_ns is not None and rec.timestamp_ns < start_ns:
                    continue
                if end_ns is not None and rec.timestamp_ns >= end_ns:
                    continue
                t = Tensor(rec, self)
                if load:
                    t.array  # noqa: B018
            except CorruptError as e:
                if on_damage != "skip":
                    raise
                self.damage.append(e)
                continue
            yield t

    def __iter__(self):
        return self.tensors()

    def topics(self):
        """{name: count} of the visible tensors (reads every header)."""
        out = {}
        for t in self.tensors(load=False):
            out[t.name] = out.get(t.name, 0) + 1
        return out

    # ---- checking ----------------------------------------------------
    def verify(self):
        """Checks everything: every record of every segment (headers and
        data blocks), that every index entry names a record of its key, and
        for a snapshot or object the files against MANIFEST.json (SHA-256
        and size, tar order) and its counts and ranges. Returns a list of
        problems, each a string naming the file and offset; [] is clean."""
        from .verify import verify
        return verify(self)

    def close(self):
        """Drops the maps (arrays still in use keep theirs alive)."""
        for s in self._ssts:
            _close_blob(s.blob)
        self._ssts, self._map, self._keys, self._frames = [], {}, [], {}
        if isinstance(self._files, _Tar):
            self._files.obj.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _close_blob(blob):
    keep = blob.keep
    if isinstance(keep, mmap.mmap):
        try:
            blob.buf.release()
            keep.close()
        except BufferError:
            pass  # numpy arrays still view it: the map goes with the last of them


class _Salvaged:
    """What the records of a damaged SST still show: `recs` as a WAL replay
    gives them, `complete` when the scan reached the index."""

    def __init__(self, recs, complete, error):
        self.recs, self.complete, self.error = recs, complete, error


def _salvage(blob, n, error):
    """Scans a damaged SST's batches from its header (checking every
    checksum) up to its index, or up to the first damage."""
    recs, complete = [], False
    try:
        _, base, ver = seg.check_header(blob, n)
        try:
            end = seg.parse_footer(blob)["index_off"]
        except CorruptError:
            end = None
        off, expect = seg.SEG_HEADER_LEN, base
        while end is None or off < end:
            got = seg.parse_batch(blob, off, end or blob.size, ver, expect)
            if got is None:
                break
            batch, off = got
            recs.extend(batch)
            expect = (expect + len(batch)) % _U64
        complete = end is not None and off == end
    except CorruptError:
        pass
    return (n, _Salvaged(recs, complete, error))


class _Raced(Exception):
    """A writer changed the directory between two looks: read it again."""


def _later_batch(blob, start, expect):
    """(offset, first_seq) of the first valid batch header with a sequence
    number above expect (any when None) at an 8-aligned offset from start
    on, or None."""
    buf = blob.buf
    magic = seg.BATCH_MAGIC.to_bytes(4, "little")
    p = start + (-start) % 8
    raw = bytes(buf)
    while True:
        p = raw.find(magic, p)
        if p < 0:
            return None
        if p % 8 == 0:
            try:
                h = seg.parse_batch_header(blob, p)
                if h is not None and (expect is None or h[2] > expect):
                    return p, h[2]
            except CorruptError:
                pass
        p += 1


def parse_manifest_json(blob):
    """MANIFEST.json as a dict; key_range as bytes and topics as the names
    they stand for (each \\u00XX is one byte, snapshot/FORMAT.md)."""
    if blob.size > 16 << 20:
        raise blob.bad(None, "MANIFEST.json larger than 16 MiB")
    try:
        d = json.loads(bytes(blob.buf).decode("ascii"))
    except (UnicodeDecodeError, ValueError) as e:
        raise blob.bad(None, "MANIFEST.json is not ASCII JSON: %s" % e) from None
    if not isinstance(d, dict) or d.get("format") != "embeddb-snapshot/1":
        raise blob.bad(None, "MANIFEST.json format is not embeddb-snapshot/1")
    try:
        if "key_range" in d:
            d["key_range"] = [s.encode("latin-1") for s in d["key_range"]]
        if "topics" in d:
            d["topics"] = {k.encode("latin-1").decode("utf-8", "surrogateescape"): v
                           for k, v in d["topics"].items()}
        for f in d.get("files", []):
            if set(f) != {"name", "bytes", "sha256"}:
                raise ValueError("files entry %r" % (f,))
    except (UnicodeEncodeError, ValueError, TypeError, AttributeError) as e:
        raise blob.bad(None, "MANIFEST.json member malformed: %s" % e) from None
    return d


STATES = ("sealed", "uploading", "uploaded", "failed")


def parse_state(blob):
    """STATE as a dict of strings (integers converted)."""
    if blob.size > 64 << 10:
        raise blob.bad(None, "STATE larger than 64 KiB")
    out, off = {}, 0
    for line in bytes(blob.buf).split(b"\n"):
        if line:
            k, eq, v = line.partition(b"=")
            if not eq:
                raise blob.bad(off, "STATE line without '='")
            k, v = k.decode("ascii", "replace"), v.decode("utf-8", "replace")
            if k in ("tensors", "tar_bytes", "created_ns", "attempts", "updated_ns"):
                try:
                    v = int(v)
                except ValueError:
                    raise blob.bad(off, "STATE %s is not a number" % k) from None
            out[k] = v
        off += len(line) + 1
    if out.get("state") not in STATES:
        raise blob.bad(None, "STATE state %r unknown" % out.get("state"))
    return out


def open(src, on_damage="raise"):  # noqa: A001 -- embeddb.open, like io.open
    """Opens src read-only: a store directory, a snapshot directory, an
    object file (.tar, .tar.zst, .tar.gz: told by content) or a readable
    binary stream of an object. Returns a Reader."""
    if isinstance(src, (str, bytes, os.PathLike)):
        path = os.fsdecode(src)
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            return Reader(_Dir(path), "store", on_damage)
    from .tarobj import open_object
    obj = open_object(src)
    if not obj.files:
        raise CorruptError(obj.name, 0, "object holds no files")
    return Reader(_Tar(obj), "object", on_damage)


def sha256_of(blob):
    return hashlib.sha256(blob.buf).hexdigest()
