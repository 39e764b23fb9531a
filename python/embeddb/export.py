"""export.py -- tensors to the data-science formats: NumPy .npz, Zarr
(python3-zarr, format 2) and HDF5 (python3-h5py). The target's format comes
from its name: *.npz, *.zarr, *.h5 / *.hdf5.

Two layouts:

* per tensor (default): one array per tensor at `tensors/<KEY>`, KEY the key
  in the CLI's key syntax (embeddb.key_text: always ASCII) made one array
  name by escape() (`%` `/` written `%25` `%2F`; empty or long names
  hashed); the `key` attribute and the index give the key itself. Beside them,
  `index/key`, `index/name`, `index/dtype` (byte strings), `index/shape`
  (text, as `embeddb ls` prints it), `index/timestamp_ns` and `index/seq`
  (int64/uint64), one row per tensor in key order;
* stacked (--stack): per topic (tensor name) whose tensors all have one
  dtype and shape, `topics/<TOPIC>/data` of shape (N, *shape) ordered by
  timestamp (then seq), with `timestamp_ns`, `seq`, `key` (and `device`
  when the tensors come from several devices) alongside. A topic whose
  shapes or dtypes differ is written per tensor under
  `topics/<TOPIC>/tensors/<KEY>` with its own index, and reported.

In Zarr and HDF5 each data array carries attributes `dtype` (the EmbedDb
name: bf16 arrays hold uint16 bit patterns) and, per tensor, `key`,
`name`, `timestamp_ns`, `seq`. An .npz has no attributes; its array names
are the paths above. Nothing here reads a store: callers hand in Tensors.
"""
import hashlib
import os

import numpy as np

from .text import key_text, shape_text


def escape(s):
    """s as one array name: `%` `/` and a leading `.` or `~` escaped; an
    empty or long name (over 120 bytes: file systems cap a name at 255) is
    `~` and the first 24 hex digits of its SHA-256."""
    e = s.replace("%", "%25").replace("/", "%2F")
    if e[:1] in (".", "~"):
        e = "%%%02X" % ord(e[0]) + e[1:]
    if not e or len(e.encode("utf-8", "surrogateescape")) > 120:
        e = "~" + hashlib.sha256(s.encode("utf-8", "surrogateescape")).hexdigest()[:24]
    return e


def _fmt_of(path):
    p = path.rstrip("/").lower()
    for ext, fmt in ((".npz", "npz"), (".zarr", "zarr"), (".h5", "h5"), (".hdf5", "h5")):
        if p.endswith(ext):
            return fmt
    raise ValueError("%s: the target must end in .npz, .zarr or .h5" % path)


class _Sink:
    """One output file: put(path, array, attrs)."""

    def __init__(self, path):
        self.fmt, self.path = _fmt_of(path), path
        if self.fmt == "npz":
            self.arrays = {}
        elif self.fmt == "zarr":
            import zarr
            self.root = zarr.open_group(path, mode="w")
        else:
            import h5py
            self.root = h5py.File(path, "w")

    def put(self, name, a, attrs=None):
        a = np.asarray(a)
        a = a if a.flags.c_contiguous else a.copy()  # ascontiguousarray makes 0-d 1-d
        if self.fmt == "npz":
            self.arrays[name] = a
            return
        if self.fmt == "zarr":
            row = max(1, a.itemsize * (int(np.prod(a.shape[1:])) if a.ndim > 1 else 1))
            chunks = True if a.ndim == 0 else (max(1, min(a.shape[0], (1 << 20) // row)),) + \
                tuple(max(1, d) for d in a.shape[1:])
            ds = self.root.create_dataset(name, data=a, chunks=chunks, dtype=a.dtype)
        else:
            ds = self.root.create_dataset(name, data=a)
        for k, v in (attrs or {}).items():
            ds.attrs[k] = v

    def close(self):
        if self.fmt == "npz":
            tmp = self.path + ".tmp.npz"
            np.savez(tmp, **self.arrays)
            os.replace(tmp, self.path)
        elif self.fmt == "h5":
            self.root.close()


def _attrs(t):
    return {"key": key_text(t.key), "name": t.name, "dtype": t.dtype,
            "timestamp_ns": int(t.timestamp_ns), "seq": int(t.seq)}


def _index(sink, base, ts):
    sink.put(base + "index/key", np.array([key_text(t.key).encode("ascii") for t in ts], "S"))
    sink.put(base + "index/name", np.array([t.name_bytes for t in ts], "S"))
    sink.put(base + "index/dtype", np.array([t.dtype.encode() for t in ts], "S"))
    sink.put(base + "index/shape", np.array([shape_text(t.shape).encode() for t in ts], "S"))
    sink.put(base + "index/timestamp_ns", np.array([t.timestamp_ns for t in ts], np.int64))
    sink.put(base + "index/seq", np.array([t.seq for t in ts], np.uint64))


def _per_tensor(sink, base, ts):
    for t in ts:
        sink.put(base + "tensors/" + escape(key_text(t.key)), t.array, _attrs(t))
    if ts:
        _index(sink, base, ts)


def stack(ts):
    """ts (Tensors of one topic) ordered by (timestamp, seq) and stacked:
    a dict data, timestamp_ns, seq, key; None when dtypes or shapes differ."""
    if not ts or len({(t.dtype, t.shape) for t in ts}) != 1:
        return None
    ts = sorted(ts, key=lambda t: (t.timestamp_ns, t.seq))
    return {"data": np.stack([t.array for t in ts]),
            "timestamp_ns": np.array([t.timestamp_ns for t in ts], np.int64),
            "seq": np.array([t.seq for t in ts], np.uint64),
            "key": np.array([key_text(t.key).encode("ascii") for t in ts], "S"),
            "dtype": ts[0].dtype, "order": ts}


def export(tensors, path, stacked=False, devices=None, report=None):
    """Writes tensors (an iterable of Tensors) to path. devices: optional
    {id(tensor): device id} for a `device` column when stacking several
    devices' tensors. report(msg) hears about topics left unstacked.
    Returns the number of tensors written."""
    ts = list(tensors)
    sink = _Sink(path)
    try:
        if not stacked:
            _per_tensor(sink, "", ts)
        else:
            by = {}
            for t in ts:
                by.setdefault(t.name, []).append(t)
            for topic in sorted(by):
                base = "topics/" + escape(topic) + "/"
                s = stack(by[topic])
                if s is None:
                    if report:
                        report("topic %r: dtypes or shapes differ, written per tensor" % topic)
                    _per_tensor(sink, base, by[topic])
                    continue
                sink.put(base + "data", s["data"], {"dtype": s["dtype"], "topic": topic})
                for col in ("timestamp_ns", "seq", "key"):
                    sink.put(base + col, s[col])
                if devices is not None:
                    sink.put(base + "device", np.array([devices[id(t)].encode() for t in
                                                        s["order"]], "S"))
    finally:
        sink.close()
    return len(ts)
