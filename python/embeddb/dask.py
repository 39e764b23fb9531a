"""dask.py -- many snapshot objects read in parallel on Dask (Debian's
python3-dask and python3-distributed), for fleets whose data outgrows one
machine: each object is one partition, read by whichever worker runs its
task; nothing here schedules or moves data itself.

    from distributed import Client
    import embeddb.dask as edd
    client = Client("scheduler:8786")            # or a LocalCluster
    objs = edd.s3_objects("snaps", "fleet/", endpoint_url=..., region_name=...)
    fleet = edd.read(objs)                       # or paths of objects / snapshot dirs
    df = fleet.metadata()                        # dask dataframe: one row per tensor
    imu = fleet.topic("imu_window")              # dask array (N, *shape), ordered by time
    imu.data.mean(axis=0).compute(); imu.timestamp_ns; imu.device

Sources are paths (objects, snapshot or store directories, on storage every
worker sees) or S3Object(bucket, key, client_kwargs): each task makes its
own botocore client from client_kwargs (clients do not pickle) and streams
the object into embeddb.open. Every object is verified as it is read
(checksums; pass verify=True to read() for the MANIFEST.json hashes too): a
damaged one fails its task with CorruptError naming the object.

metadata() columns: object, device, key (CLI key syntax), name, timestamp_ns,
seq, dtype, shape (text), nbytes. topic() first computes the topic's rows
of the metadata (every object's headers, in parallel), refuses a topic
whose dtypes or shapes differ (ValueError), then builds the array from one
block per object, each block sorted by (timestamp, seq); when objects
overlap in time (several devices) the blocks are put in global
(timestamp, device, seq) order by one indexing step.
"""
import collections
import warnings

import numpy as np

from .reader import open as _open_src
from .segment import DTYPES
from .text import key_text, shape_text

S3Object = collections.namedtuple("S3Object", "bucket key client_kwargs")
S3Object.__str__ = lambda o: "s3://%s/%s" % (o.bucket, o.key)

TopicArray = collections.namedtuple("TopicArray", "data timestamp_ns device seq key")

SUFFIXES = (".tar", ".tar.zst", ".tar.gz")
_NP = {v[0]: np.dtype(v[1]) for v in DTYPES.values()}


def _client(kw):
    import botocore.session
    from botocore.config import Config
    kw = dict(kw)
    cfg = kw.pop("config", None) or Config(s3={"addressing_style": "path"})
    return botocore.session.get_session().create_client("s3", config=cfg, **kw)


def s3_objects(bucket, prefix="", **client_kwargs):
    """S3Objects of every snapshot object (.tar, .tar.zst, .tar.gz) under
    prefix, sorted by key. client_kwargs go to botocore's create_client
    (endpoint_url, region_name, aws_access_key_id, verify, ...)."""
    c = _client(client_kwargs)
    keys = []
    for page in c.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [o["Key"] for o in page.get("Contents", []) if o["Key"].endswith(SUFFIXES)]
    return [S3Object(bucket, k, client_kwargs) for k in sorted(keys)]


def open_source(src, verify=False):
    """A Reader of one source (path or S3Object)."""
    from .errors import CorruptError
    if isinstance(src, S3Object):
        body = _client(src.client_kwargs).get_object(Bucket=src.bucket, Key=src.key)["Body"]
        try:
            from .tarobj import open_object
            from .reader import Reader, _Tar
            r = Reader(_Tar(open_object(body, name=str(src))), "object")
        finally:
            body.close()
    else:
        r = _open_src(src)
    if verify:
        problems = r.verify()
        if problems:
            r.close()
            raise CorruptError(str(src), None, "; ".join(problems[:3]))
    return r


def _device(r):
    return (r.manifest_json or {}).get("device_id", "")


def _meta_part(src, topic=None, verify=False):
    import pandas as pd
    with open_source(src, verify) as r:
        dev = _device(r)
        rows = [(str(src), dev, key_text(t.key), t.name, t.timestamp_ns, t.seq, t.dtype,
                 shape_text(t.shape), t.nbytes) for t in r.tensors(topic=topic, load=False)]
    df = pd.DataFrame(rows, columns=list(_META_COLS))
    return df.astype(_META_COLS)


_META_COLS = collections.OrderedDict([
    ("object", "object"), ("device", "object"), ("key", "object"), ("name", "object"),
    ("timestamp_ns", "int64"), ("seq", "uint64"), ("dtype", "object"), ("shape", "object"),
    ("nbytes", "int64")])


def _topic_part(src, topic, dtype, shape, verify=False):
    with open_source(src, verify) as r:
        ts = sorted(r.tensors(topic=topic), key=lambda t: (t.timestamp_ns, t.seq))
        if not ts:
            return np.empty((0,) + shape, dtype)
        return np.stack([t.array for t in ts])


def read_all(src, verify=False):
    """Reads every tensor of src into memory (checked); (tensors, bytes).
    The unit of work of the read-rate benchmark."""
    n = b = 0
    with open_source(src, verify) as r:
        for t in r:
            n += 1
            b += t.array.nbytes
    return n, b


class Fleet:
    """Snapshot objects as Dask collections (see the module text)."""

    def __init__(self, sources, verify=False):
        self.sources, self.verify = list(sources), verify

    def metadata(self, topic=None):
        """A dask dataframe, one partition per object, one row per tensor."""
        import dask
        import dask.dataframe as dd
        import pandas as pd
        meta = pd.DataFrame({c: pd.Series(dtype=t) for c, t in _META_COLS.items()})
        parts = [dask.delayed(_meta_part)(s, topic, self.verify) for s in self.sources]
        return dd.from_delayed(parts, meta=meta, verify_meta=False)

    def topic(self, topic):
        """The topic's tensors as a TopicArray: `data` a dask array
        (N, *shape), `timestamp_ns`, `device`, `seq`, `key` NumPy arrays of
        the same order (timestamp, then device, then seq)."""
        import dask
        import dask.array as da
        parts = dask.compute(*[dask.delayed(_meta_part)(s, topic, self.verify)
                               for s in self.sources])
        kinds = set()
        for p in parts:
            kinds |= set(zip(p["dtype"], p["shape"]))
        if len(kinds) > 1:
            raise ValueError("topic %r: dtypes or shapes differ: %s" % (topic, sorted(kinds)))
        if not kinds:
            raise KeyError(topic)
        dt_name, shape_s = kinds.pop()
        shape = () if shape_s == "scalar" else tuple(int(x) for x in shape_s.split("x"))
        dtype = _NP[dt_name]
        blocks, cols = [], {"timestamp_ns": [], "device": [], "seq": [], "key": []}
        for src, p in zip(self.sources, parts):
            if not len(p):
                continue
            p = p.sort_values(["timestamp_ns", "seq"], kind="stable")
            blocks.append(da.from_delayed(dask.delayed(_topic_part)(src, topic, dtype, shape,
                                                                    self.verify),
                                          shape=(len(p),) + shape, dtype=dtype))
            for c in cols:
                cols[c].append(p[c].to_numpy())
        data = da.concatenate(blocks, axis=0)
        cols = {c: np.concatenate(v) for c, v in cols.items()}
        order = np.lexsort((cols["seq"], cols["device"].astype(str), cols["timestamp_ns"]))
        if (order != np.arange(len(order))).any():
            with warnings.catch_warnings():  # many small chunks: the price of interleaving
                warnings.simplefilter("ignore", da.PerformanceWarning)
                data = data[order]
            cols = {c: v[order] for c, v in cols.items()}
        return TopicArray(data, cols["timestamp_ns"].astype(np.int64),
                          cols["device"].astype("S"), cols["seq"].astype(np.uint64),
                          cols["key"].astype("S"))


def read(sources, verify=False):
    """A Fleet over sources (paths or S3Objects)."""
    return Fleet(sources, verify)
