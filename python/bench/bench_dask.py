#!/usr/bin/python3
"""bench_dask.py -- how embeddb.dask's read rate scales from one worker to
two: snapshot objects in s3rver (the project's S3 test peer, tests/node),
read in full (every tensor into NumPy, every checksum verified) by a
distributed.LocalCluster of 1 and then 2 single-threaded worker processes.

Each configuration reads all objects --runs times (after one warm-up run);
the median wall time gives MB/s of tensor data. The same objects are also
read as local files (paths), which takes s3rver (one Node.js process) out
of the measurement. `uptime` is printed before
and after: on a shared machine the load average says how much of the second
core the second worker could have had.

usage: python3 python/bench/bench_dask.py --gen build/tests/python/gen_py_store
           [--objects 8] [--mib 16] [--runs 5]
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
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "python"))
sys.path.insert(0, os.path.join(ROOT, "tests", "python"))


def uptime():
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--gen", required=True)
    p.add_argument("--objects", type=int, default=8)
    p.add_argument("--mib", type=int, default=16, help="tensor data per object")
    p.add_argument("--runs", type=int, default=5)
    a = p.parse_args()
    import test_py_fleet
    test_py_fleet.ROOT = ROOT
    from distributed import Client, LocalCluster

    import embeddb.dask as edd
    os.environ["PYTHONPATH"] = os.path.join(ROOT, "python")
    tmp = tempfile.mkdtemp(prefix="bench-dask-")
    s3 = test_py_fleet.S3rver(tmp)
    try:
        c = s3.client()
        n = a.mib * (1 << 20) // 4096
        paths = []
        for i in range(a.objects):
            out = os.path.join(tmp, "d%d" % i)
            os.mkdir(out)
            subprocess.run([a.gen, "bench", out, "dev-%d" % i, str(n), "4096"], check=True)
            tar = glob.glob(os.path.join(out, "*.tar"))[0]
            with open(tar, "rb") as f:
                c.put_object(Bucket="snaps", Key="fleet/dev-%d/%s" % (i, os.path.basename(tar)),
                             Body=f.read())
            shutil.rmtree(os.path.join(out, "store"))
            paths.append(tar)
        kw = {"endpoint_url": s3.endpoint, "region_name": "us-east-1",
              "aws_access_key_id": "S3RVER", "aws_secret_access_key": "S3RVER"}
        objs = edd.s3_objects("snaps", "fleet/", **kw)
        total = a.objects * n * 4096
        print("%d objects in s3rver, %.1f MiB of tensor data each (4 KiB tensors), %d runs"
              % (len(objs), a.mib, a.runs))
        print("before: %s" % uptime())
        rates = {}
        for workers in (1, 2):
            with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                              dashboard_address=None) as cl, Client(cl) as client:
                client.wait_for_workers(workers)
                for src, items in (("s3rver", objs), ("files", paths)):
                    times = []
                    for r in range(a.runs + 1):
                        t0 = time.perf_counter()
                        got = client.gather(client.map(edd.read_all, items, pure=False))
                        dt = time.perf_counter() - t0
                        assert sum(b for _, b in got) == total
                        if r:
                            times.append(dt)
                    med = statistics.median(times)
                    rates[src, workers] = total / med / 1e6
                    print("%-6s workers=%d  median %.3f s  %7.1f MB/s  (runs: %s)"
                          % (src, workers, med, rates[src, workers],
                             ", ".join("%.3f" % t for t in times)))
        for src in ("s3rver", "files"):
            print("%s: scaling 1 -> 2 workers %.2fx" % (src, rates[src, 2] / rates[src, 1]))
        print("after:  %s" % uptime())
    finally:
        s3.stop()
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
