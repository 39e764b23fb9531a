#!/usr/bin/python3
"""gather.py -- from fleet to notebook: every snapshot object under a prefix
of an S3-compatible bucket, verified, into one Zarr store per topic across
devices, ordered by time.

The agents upload `<prefix>/<device_id>/<NAME>.tar` (or `.tar.zst`,
`.tar.gz`). This lists the prefix (botocore, ListObjectsV2), reads each
object as a stream straight into embeddb.open (nothing unpacked to disk),
runs verify() (every checksum, and every file against MANIFEST.json's
SHA-256), and passes over -- with the reason, and a non-zero exit -- any
object that is damaged, truncated or not a snapshot. Then, per topic (the
tensor name: the agent names tensors after their MQTT topic), it writes
OUT/<topic>.zarr holding

    data          (N, *shape)  the tensors, ordered by timestamp, then device, then seq
    timestamp_ns  (N,)         int64
    device        (N,)         bytes, the device id from MANIFEST.json
    seq           (N,)         uint64, the sequence number on its device
    key           (N,)         bytes, the key in the CLI's syntax

when all of the topic's tensors share dtype and shape; a topic whose shapes
differ is reported and left out. Everything is held in memory while it is
gathered: this is the one-machine path (embeddb.dask is the one for fleets
that do not fit).

usage: gather.py --endpoint URL --bucket B [--prefix P] --out DIR
                 [--region R] [--ca CA.pem] [--access-key K --secret-file F]
Credentials default to botocore's usual sources (environment, ~/.aws).
Exit 0; 1 when an object was passed over; 2 on a usage or listing error.
"""
import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "python"))

import numpy as np  # noqa: E402

import embeddb  # noqa: E402
from embeddb.export import escape  # noqa: E402

SUFFIXES = (".tar", ".tar.zst", ".tar.gz")


def s3_client(a):
    import botocore.session
    from botocore.config import Config
    kw = {}
    if a.access_key:
        with open(a.secret_file) as f:
            kw = {"aws_access_key_id": a.access_key, "aws_secret_access_key": f.read().strip()}
    return botocore.session.get_session().create_client(
        "s3", region_name=a.region, endpoint_url=a.endpoint, verify=a.ca or True,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}), **kw)


def list_objects(s3, bucket, prefix):
    """Keys of snapshot objects under prefix, sorted."""
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [o["Key"] for o in page.get("Contents", []) if o["Key"].endswith(SUFFIXES)]
    return sorted(keys)


def gather(s3, bucket, keys, report):
    """{topic: [(tensor, device)]} of every object that verifies; report(msg)
    hears about the others. Returns (by_topic, n_ok, n_bad)."""
    from botocore.exceptions import BotoCoreError
    by_topic, ok, bad = {}, 0, 0
    for key in keys:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"]
        try:
            r = embeddb.open(body)
            problems = r.verify()
            if r.manifest_json is None:
                problems.append("no MANIFEST.json: not a snapshot object")
        except (embeddb.CorruptError, FileNotFoundError, BotoCoreError) as e:
            r, problems = None, [str(e)]  # BotoCoreError: a body cut short
        finally:
            body.close()
        if problems:
            report("%s: passed over: %s" % (key, "; ".join(problems[:3])))
            bad += 1
            if r is not None:
                r.close()
            continue
        device = r.manifest_json["device_id"]
        for t in r:
            by_topic.setdefault(t.name, []).append((t, device))
        ok += 1
    return by_topic, ok, bad


def write_topics(by_topic, out, report):
    """One Zarr store per topic; returns {topic: rows written}."""
    import zarr
    os.makedirs(out, exist_ok=True)
    written = {}
    for topic in sorted(by_topic):
        rows = by_topic[topic]
        if len({(t.dtype, t.shape) for t, _ in rows}) != 1:
            report("topic %r: dtypes or shapes differ across tensors, left out" % topic)
            continue
        rows.sort(key=lambda x: (x[0].timestamp_ns, x[1], x[0].seq))
        g = zarr.open_group(os.path.join(out, escape(topic) + ".zarr"), mode="w")
        data = np.stack([t.array for t, _ in rows])
        row = max(1, data[0].nbytes)
        d = g.create_dataset("data", data=data, chunks=(max(1, min(len(rows), (1 << 20) // row)),)
                             + tuple(max(1, x) for x in data.shape[1:]))
        d.attrs.update({"topic": topic, "dtype": rows[0][0].dtype})
        g.create_dataset("timestamp_ns", data=np.array([t.timestamp_ns for t, _ in rows], np.int64))
        g.create_dataset("device", data=np.array([dev.encode() for _, dev in rows], "S"))
        g.create_dataset("seq", data=np.array([t.seq for t, _ in rows], np.uint64))
        g.create_dataset("key", data=np.array([embeddb.key_text(t.key).encode() for t, _ in rows],
                                              "S"))
        g.attrs["topic"] = topic
        written[topic] = len(rows)
    return written


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--endpoint", required=True)
    p.add_argument("--bucket", required=True)
    p.add_argument("--prefix", default="")
    p.add_argument("--out", required=True)
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--ca")
    p.add_argument("--access-key")
    p.add_argument("--secret-file")
    a = p.parse_args(argv)
    if bool(a.access_key) != bool(a.secret_file):
        p.error("--access-key and --secret-file go together")

    def report(m):
        sys.stderr.write("gather: %s\n" % m)
    s3 = s3_client(a)
    try:
        keys = list_objects(s3, a.bucket, a.prefix)
    except Exception as e:  # botocore's errors: endpoint, credentials, bucket
        report("listing s3://%s/%s failed: %s" % (a.bucket, a.prefix, e))
        return 2
    by_topic, ok, bad = gather(s3, a.bucket, keys, report)
    written = write_topics(by_topic, a.out, report)
    for topic, n in written.items():
        print("%s\t%d" % (topic, n))
    print("objects: %d verified, %d passed over; topics: %d written to %s"
          % (ok, bad, len(written), a.out))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
