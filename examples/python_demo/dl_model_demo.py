#!/usr/bin/python3
"""The seed's Python demo: train a tiny NumPy dense layer, persist its weights
two ways, and compare them side by side.

1. Baseline: json.dump of the weights to weights_baseline.json (with an
   fsync, so both sides pay for durability).
2. EmbedDb: emit tensor_payload.txt in the CSV tensor payload format and run
   `embeddb --tensor-ingest` on it (one atomic, durable batch, then a flush).

Needs only Debian's python3 and python3-numpy. Usage:
    python3 examples/python_demo/dl_model_demo.py [--out DIR] [--embeddb PATH]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np


def find_embeddb(explicit):
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.normpath(os.path.join(here, "..", ".."))
    for cand in (explicit, os.environ.get("EMBEDDB"),
                 os.path.join(root, "build", "cli", "embeddb"), shutil.which("embeddb")):
        if cand and os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    sys.exit("dl_model_demo: embeddb not found; build it (cmake --build build) "
             "or pass --embeddb PATH")


def train(epochs=200, lr=0.1, seed=7):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (256, 8)).astype(np.float32)
    w_true = rng.normal(size=(8, 4)).astype(np.float32)
    b_true = rng.normal(size=4).astype(np.float32)
    y = x @ w_true + b_true
    w = np.zeros((8, 4), np.float32)
    b = np.zeros(4, np.float32)
    for _ in range(epochs):
        err = x @ w + b - y
        w -= lr * (2 / len(x)) * (x.T @ err)
        b -= lr * (2 / len(x)) * err.sum(axis=0)
    loss = float(np.mean((x @ w + b - y) ** 2))
    return w, b, loss


def csv_line(key, name, arr):
    shape = "x".join(str(d) for d in arr.shape) or "scalar"
    values = ",".join(repr(float(v)) for v in arr.ravel())
    return f"{key},{name},{arr.dtype.name},{shape},{values}\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="python_demo_out", help="where the files go")
    ap.add_argument("--embeddb", help="path to the embeddb binary")
    args = ap.parse_args()
    embeddb = find_embeddb(args.embeddb)
    os.makedirs(args.out, exist_ok=True)

    w, b, loss = train()
    print(f"trained dense layer 8->4, final loss {loss:.6f}")
    frame = np.full((32, 32), 0.25, np.float32)

    baseline = os.path.join(args.out, "weights_baseline.json")
    t0 = time.perf_counter()
    with open(baseline, "w") as f:
        json.dump({"dense_w": w.tolist(), "dense_b": b.tolist(),
                   "camera_frame": frame.tolist()}, f)
        f.flush()
        os.fsync(f.fileno())
    base_ms = (time.perf_counter() - t0) * 1e3
    base_bytes = os.path.getsize(baseline)

    payload = os.path.join(args.out, "tensor_payload.txt")
    with open(payload, "w") as f:
        f.write("# key,name,dtype,shape,values... (see embeddb --tensor-ingest --help)\n")
        f.write(csv_line(101, "camera_frame", frame))
        f.write(csv_line(201, "dense_w", w))
        f.write(csv_line(202, "dense_b", b))
    store = os.path.join(args.out, "store")
    t0 = time.perf_counter()
    run = subprocess.run([embeddb, "--tensor-ingest", payload, store],
                         capture_output=True, text=True)
    edb_ms = (time.perf_counter() - t0) * 1e3
    sys.stdout.write(run.stdout)
    if run.returncode != 0:
        sys.stderr.write(run.stderr)
        sys.exit(f"dl_model_demo: embeddb --tensor-ingest failed ({run.returncode})")
    edb_bytes = sum(os.path.getsize(os.path.join(store, n)) for n in os.listdir(store)
                    if n.startswith(("sst_", "wal_")))
    tensor_bytes = w.nbytes + b.nbytes + frame.nbytes

    print()
    print(f"{'persistence':<28}{'baseline (json)':>18}{'EmbedDb':>14}")
    print(f"{'bytes on disk':<28}{base_bytes:>18}{edb_bytes:>14}")
    print(f"{'bytes per tensor byte':<28}{base_bytes / tensor_bytes:>18.2f}"
          f"{edb_bytes / tensor_bytes:>14.2f}")
    print(f"{'time (ms, incl. fsync)':<28}{base_ms:>18.2f}{edb_ms:>14.2f}")
    print(f"{'checksummed, crash-safe':<28}{'no':>18}{'yes':>14}")
    print("(EmbedDb's time includes starting the embeddb process.)")
    print(f"inspect: {embeddb} ls {store}")


if __name__ == "__main__":
    main()
