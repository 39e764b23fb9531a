#!/usr/bin/python3
"""bench_read.py -- how fast the Python reader brings a snapshot into NumPy,
against the obvious alternative: `tar -xf` of the same object followed by
np.load of the same tensors saved as .npy files (the files are written
beforehand and are in the page cache, like the object).

Measures, each as the median of --runs runs (all data in the page cache):
  tar     embeddb.open(OBJECT.tar) and every tensor's array (verified)
  stream  the same object through a pipe (a non-seekable stream: copies)
  dir     embeddb.open(snapshot directory) (SST data memory-mapped)
  base    tar -xf OBJECT.tar into an empty directory + np.load of N .npy files
and prints MB/s of tensor data, the ratios tar/base and dir/base (the
issue's bar: >= 0.5 and >= 2), and `uptime` before and after.

usage: python3 python/bench/bench_read.py --gen build/tests/python/gen_py_store
           [--mib 256] [--tensor-bytes 4096] [--runs 5] [--dir TMP]
"""
import argparse
import glob
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

import numpy as np  # noqa: E402

import embeddb  # noqa: E402


def uptime():
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def timed(fn, runs):
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def read_all(src):
    n = 0
    with embeddb.open(src) as r:
        for t in r:
            n += t.array.nbytes
    return n


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--gen", required=True, help="gen_py_store (built in tests/python)")
    p.add_argument("--mib", type=int, default=256)
    p.add_argument("--tensor-bytes", type=int, default=4096)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--dir", default=None)
    a = p.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench-read-", dir=a.dir)
    try:
        n = a.mib * (1 << 20) // a.tensor_bytes
        subprocess.run([a.gen, "bench", tmp, "bench-dev", str(n), str(a.tensor_bytes)], check=True)
        tar = glob.glob(os.path.join(tmp, "*.tar"))[0]
        unpacked = os.path.join(tmp, "unpacked")
        os.mkdir(unpacked)
        subprocess.run(["tar", "-xf", tar, "-C", unpacked], check=True)
        snap = glob.glob(os.path.join(unpacked, "*"))[0]
        npy = os.path.join(tmp, "npy")
        os.mkdir(npy)
        files = []
        with embeddb.open(snap) as r:
            for i, t in enumerate(r):
                f = os.path.join(npy, "%d.npy" % i)
                np.save(f, t.array)
                files.append(f)
        data = n * a.tensor_bytes
        print("object: %s, %d tensors of %d bytes, %.1f MiB of tensor data, crc32c: %s"
              % (os.path.basename(tar), n, a.tensor_bytes, data / 2 ** 20, embeddb.CRC_BACKEND))
        print("before: %s" % uptime())
        read_all(tar)  # warm the page cache

        def base():
            out = os.path.join(tmp, "x")
            os.mkdir(out)
            subprocess.run(["tar", "-xf", tar, "-C", out], check=True)
            for f in files:
                np.load(f)
            shutil.rmtree(out)

        def stream():
            c = subprocess.Popen(["cat", tar], stdout=subprocess.PIPE)
            read_all(c.stdout)
            c.stdout.close()
            c.wait()
        res = {"tar": timed(lambda: read_all(tar), a.runs), "stream": timed(stream, a.runs),
               "dir": timed(lambda: read_all(snap), a.runs), "base": timed(base, a.runs)}
        for k, v in res.items():
            print("%-7s %8.3f s  %8.1f MB/s" % (k, v, data / v / 1e6))
        print("tar/base speed: %.2fx (bar 0.5x)   dir/base speed: %.2fx (bar 2x)"
              % (res["base"] / res["tar"], res["base"] / res["dir"]))
        print("after:  %s" % uptime())
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
