"""__main__.py -- `python3 -m embeddb COMMAND SRC ...`: the reader on the
command line. SRC is a store or snapshot directory, an object (.tar,
.tar.zst, .tar.gz) or `-` for an object on standard input.

  ls SRC [PREFIX] [filters]        one line per tensor, as `embeddb ls`
  cat SRC KEY [-n N] [-o F.npy]    the summary line (first N values, as
                                   `embeddb preview`), key, seq, timestamp;
                                   -o writes the tensor as .npy (- = stdout)
  verify SRC                       every checksum, index and MANIFEST.json hash
  export SRC --to OUT [--stack] [filters]
                                   OUT.npz, OUT.zarr or OUT.h5 (export.py)

filters: --topic T (repeatable), --from NS, --to-ns NS, --dtype D
(repeatable), and a key PREFIX. Keys use the CLI's syntax (101, s:TEXT,
x:HEX, text). Exit 0; 1 damage or problems found; 2 usage; 3 not found.
"""
import argparse
import sys

import numpy as np

from . import open as eopen
from .errors import CorruptError
from .export import export
from .text import key_text, name_text, parse_key, shape_text


def _src(s):
    return sys.stdin.buffer if s == "-" else s


def _filters(p):
    p.add_argument("prefix", nargs="?", default="", help="key prefix (CLI key syntax)")
    p.add_argument("--topic", action="append", help="tensor name (repeatable)")
    p.add_argument("--from", dest="start", type=int, help="timestamps >= NS")
    p.add_argument("--to-ns", dest="end", type=int, help="timestamps < NS")
    p.add_argument("--dtype", action="append", help="f32, float32, ... (repeatable)")


def _select(r, a, load):
    prefix = parse_key(a.prefix) if a.prefix else b""
    return r.tensors(prefix=prefix, topic=a.topic, start_ns=a.start, end_ns=a.end,
                     dtype=a.dtype, load=load)


def cmd_ls(a, out):
    with eopen(_src(a.src)) as r:
        out.write("key\tname\tdtype\tshape\ttimestamp_ns\tbytes\n")
        for t in _select(r, a, False):
            out.write("%s\t%s\t%s\t%s\t%d\t%d\n" % (key_text(t.key), name_text(t.name_bytes),
                                                    t.dtype, shape_text(t.shape),
                                                    t.timestamp_ns, t.nbytes))
    return 0


def cmd_cat(a, out):
    with eopen(_src(a.src)) as r:
        key = parse_key(a.key)
        if key not in r:
            sys.stderr.write("embeddb: %s: no tensor under key %s\n" % (a.src, a.key))
            return 3
        if a.o:
            t = r.get(key)
            if a.o == "-":
                np.save(sys.stdout.buffer, t.array, allow_pickle=False)
            else:
                np.save(a.o, t.array, allow_pickle=False)
            return 0
        t = r.info(key)
        out.write(r.summarize(key, a.n) + "\n")
        out.write("key           %s\nseq           %d\ntimestamp_ns  %d\n"
                  % (key_text(t.key), t.seq, t.timestamp_ns))
    return 0


def cmd_verify(a, out):
    with eopen(_src(a.src), on_damage="skip") as r:
        problems = r.verify()
        for p in problems:
            out.write("bad: %s\n" % p)
        if r.wal_cut:
            out.write("note: torn WAL tail left out: %s at offset %d (%d bytes)\n" % r.wal_cut)
        if not problems:
            out.write("ok: %d tensors, every checksum%s checked\n"
                      % (len(r), " and MANIFEST.json hash" if r.manifest_json else ""))
    return 1 if problems else 0


def cmd_export(a, out):
    with eopen(_src(a.src)) as r:
        n = export(_select(r, a, True), a.to, stacked=a.stack,
                   report=lambda m: sys.stderr.write("embeddb: %s\n" % m))
    out.write("exported %d tensors to %s\n" % (n, a.to))
    return 0


def main(argv=None, out=None):
    out = out or sys.stdout
    p = argparse.ArgumentParser(prog="python3 -m embeddb", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("ls", help="one line per tensor")
    s.add_argument("src")
    _filters(s)
    s.set_defaults(fn=cmd_ls)
    s = sub.add_parser("cat", help="one tensor's summary, or .npy")
    s.add_argument("src")
    s.add_argument("key")
    s.add_argument("-n", type=int, default=8)
    s.add_argument("-o", help="write FILE.npy (- = stdout)")
    s.set_defaults(fn=cmd_cat)
    s = sub.add_parser("verify", help="check every checksum and hash")
    s.add_argument("src")
    s.set_defaults(fn=cmd_verify)
    s = sub.add_parser("export", help="to .npz, .zarr or .h5")
    s.add_argument("src")
    s.add_argument("--to", required=True, help="OUT.npz, OUT.zarr or OUT.h5")
    s.add_argument("--stack", action="store_true", help="one array per topic along time")
    _filters(s)
    s.set_defaults(fn=cmd_export)
    a = p.parse_args(argv)
    try:
        return a.fn(a, out)
    except CorruptError as e:
        sys.stderr.write("embeddb: damaged: %s\n" % e)
        return 1
    except (FileNotFoundError, ValueError) as e:
        sys.stderr.write("embeddb: %s\n" % e)
        return 2
    except BrokenPipeError:  # ls | head
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
