"""verify.py -- Reader.verify(): a full check of what a Reader opened, like
`embeddb verify` plus `embeddb snapshot verify` together.

Per SST: every batch of its record area from the header to the index
(every checksum, data blocks included, sequence numbers from base_seq to
the footer's max_seq); the index holds exactly the newest record of each
key of the file, and each v2 restart block's time range is the range of
its entries' timestamps. With a MANIFEST.json (snapshot directory or
object): the store files are exactly those it lists (in tar order for an
object, MANIFEST.json last), each of the listed size and SHA-256, and its
counts and ranges (tensors, seq_range, time_range_ns, key_range, topics)
match the tensors read. Returns problems as strings, [] when clean.
"""
import hashlib

from . import segment as seg
from .errors import CorruptError

_U64 = 1 << 64


def _check_sst(s, out):
    blob, ft = s.blob, s.footer
    newest, off, expect, end = {}, seg.SEG_HEADER_LEN, s.base_seq, ft["index_off"]
    while off < end:
        try:
            got = seg.parse_batch(blob, off, end, s.version, expect, verify_data=True)
        except CorruptError as e:
            out.append(str(e))
            return
        if got is None:
            out.append(str(blob.bad(off, "batch runs past the record area")))
            return
        recs, off = got
        for loc in recs:
            r = loc[-1]
            key_loc = ("plain", r.data_off - 0) if loc[0] == "plain" else ("packed", loc[2], loc[3])
            newest[r.key] = (r.seq, key_loc, r.timestamp_ns)
        expect = (expect + len(recs)) % _U64
    if ft["min_seq"] != s.base_seq or (expect - 1) % _U64 != ft["max_seq"]:
        out.append(str(blob.bad(len(blob.buf) - seg.FOOTER_LEN, "footer seq range %d..%d, records "
                                "hold %d..%d" % (ft["min_seq"], ft["max_seq"], s.base_seq,
                                                 expect - 1))))
    keys = [k for k, _ in s.entries]
    if sorted(newest) != keys:
        out.append(str(blob.bad(ft["index_off"], "index keys (%d) are not the file's keys (%d)"
                                % (len(keys), len(newest)))))
        return
    stamps = []
    for k, loc in s.entries:
        seq, where, ts = newest[k]
        if loc[0] == "plain":
            try:
                r = seg.parse_record(blob, loc[2], loc[2] + loc[3][1])[0]
            except CorruptError as e:
                out.append(str(e))
                continue
            if r.seq != seq or r.key != k:
                out.append(str(blob.bad(loc[2], "index entry %r names seq %d, not the newest %d"
                                        % (k, r.seq, seq))))
        elif where != ("packed", loc[2], loc[3]):
            out.append(str(blob.bad(loc[2], "index entry %r names record %d of this frame, not "
                                    "its newest" % (k, loc[3]))))
        stamps.append(ts)
    if s.blocks is not None:
        for b, (lo, hi) in enumerate(s.blocks):
            part = stamps[b * seg.RESTART_INTERVAL:(b + 1) * seg.RESTART_INTERVAL]
            if part and (min(part), max(part)) != (lo, hi):
                out.append(str(blob.bad(ft["index_off"], "restart block %d time range %d..%d, "
                                        "entries span %d..%d" % (b, lo, hi, min(part), max(part)))))


def _check_manifest_json(r, out):
    mj, files = r.manifest_json, r._files
    listed = [f["name"] for f in mj.get("files", [])]
    present = sorted(n for n in files.names()
                     if n == "MANIFEST" or (n.startswith("sst_") and n.endswith(".sst")))
    if sorted(listed) != present:
        out.append("%s: MANIFEST.json lists %s, the store files are %s"
                   % (files.name, listed, present))
    if r.kind == "object":
        order = files.obj.order
        if order != listed + ["MANIFEST.json"]:
            out.append("%s: tar members %s are not MANIFEST.json's files then MANIFEST.json"
                       % (files.name, order))
    for f in mj.get("files", []):
        b = files.get(f["name"])
        if b is None:
            continue
        if b.size != f["bytes"]:
            out.append("%s: %d bytes, MANIFEST.json says %d" % (b.name, b.size, f["bytes"]))
        elif hashlib.sha256(b.buf).hexdigest() != f["sha256"]:
            out.append("%s: SHA-256 differs from MANIFEST.json's" % b.name)
    ts = list(r.tensors(load=False, on_damage="skip"))
    got = {"tensors": len(ts)}
    if ts:
        got["seq_range"] = [min(t.seq for t in ts), max(t.seq for t in ts)]
        got["time_range_ns"] = [min(t.timestamp_ns for t in ts), max(t.timestamp_ns for t in ts)]
        got["key_range"] = [ts[0].key, ts[-1].key]
        topics = {}
        for t in ts:
            topics[t.name] = topics.get(t.name, 0) + 1
        got["topics"] = topics
    for k, v in got.items():
        if k in mj and mj[k] != v:
            out.append("%s: MANIFEST.json %s is %r, the tensors give %r"
                       % (files.name, k, mj[k], v))


def verify(r):
    out = [str(e) for e in r.damage]
    for s in r._ssts:
        _check_sst(s, out)
    for k in r.keys():
        try:
            r.get(k)
        except CorruptError as e:
            out.append(str(e))
    if r.manifest_json is not None:
        _check_manifest_json(r, out)
    # Each problem once, in the order found.
    return list(dict.fromkeys(out))
