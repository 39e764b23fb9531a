#!/usr/bin/python3
"""The seed's Python demo: train a tiny NumPy dense layer, persist its weights
two ways, and compare them side by side.

1. Baseline: json.dump of the weights (and a 32x32 camera frame) to
   weights_baseline.json, followed by an os.fsync so that both sides pay for
   durability.
2. EmbedDb: write tensor_payload.txt in the CSV tensor payload format
   (key,name,dtype,shape,v0,v1,...; see `embeddb --tensor-ingest --help`) and
   run `embeddb --tensor-ingest` on it: one atomic, durable batch, then a
   flush to an SST.

Needs only Debian's /usr/bin/python3 and python3-numpy. Usage:
    python3 examples/python_demo/dl_model_demo.py [--out DIR] [--embeddb PATH]
The embeddb binary is --embeddb PATH, else $EMBEDDB, else ./build/cli/embeddb
(relative to the current directory, then to the repository), else on $PATH.
This is a demo, not a benchmark: one small write each way.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))


def find_embeddb(explicit):
    candidates = [explicit, os.environ.get("EMBEDDB"),
                  os.path.join("build", "cli", "embeddb"),
                  os.path.join(REPO, "build", "cli", "embeddb"), shutil.which("embeddb")]
    for cand in candidates:
        if cand and os.path.isfile(cand) and os.access(cand, os.X_OK):
            return os.path.abspath(cand)
    sys.exit("dl_model_demo: embeddb not found; build it (cmake -S . -B build && "
             "cmake --build build) or pass --embeddb PATH")


def train(epochs=200, lr=0.1, seed=7):
    """A dense layer 8 -> 4 (y = xW + b) fitted by gradient descent."""
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
    """One line of the CSV tensor payload; repr() keeps every float exact."""
    shape = "x".join(str(d) for d in arr.shape) or "scalar"
    values = ",".join(repr(float(v)) for v in arr.ravel())
    return f"{key},{name},{arr.dtype.name},{shape},{values}\n"


def save_json(path, tensors):
    t0 = time.perf_counter()
    with open(path, "w") as f:
        json.dump({name: arr.tolist() for name, arr in tensors.items()}, f)
        f.flush()
        os.fsync(f.fileno())
    return (time.perf_counter() - t0) * 1e3, os.path.getsize(path)


def save_embeddb(embeddb, payload, store, tensors):
    with open(payload, "w") as f:
        f.write("# key,name,dtype,shape,values... (embeddb --tensor-ingest --help)\n")
        for key, (name, arr) in zip((101, 201, 202), tensors.items()):
            f.write(csv_line(key, name, arr))
    t0 = time.perf_counter()
    run = subprocess.run([embeddb, "--tensor-ingest", payload, store],
                         capture_output=True, text=True)
    ms = (time.perf_counter() - t0) * 1e3
    sys.stdout.write(run.stdout)
    if run.returncode != 0:
        sys.stderr.write(run.stderr)
        sys.exit(f"dl_model_demo: embeddb --tensor-ingest failed (exit {run.returncode})")
    size = sum(os.path.getsize(os.path.join(store, n)) for n in os.listdir(store)
               if os.path.isfile(os.path.join(store, n)))
    return ms, size


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="python_demo_out",
                    help="directory for the JSON file, the payload and the store")
    ap.add_argument("--embeddb", help="path to the embeddb binary")
    args = ap.parse_args()
    embeddb = find_embeddb(args.embeddb)
    os.makedirs(args.out, exist_ok=True)

    w, b, loss = train()
    print(f"trained dense layer 8->4, final loss {loss:.3g}")
    tensors = {"camera_frame": np.full((32, 32), 0.25, np.float32), "dense_w": w, "dense_b": b}
    tensor_bytes = sum(a.nbytes for a in tensors.values())

    base_ms, base_bytes = save_json(os.path.join(args.out, "weights_baseline.json"), tensors)
    store = os.path.join(args.out, "store")
    edb_ms, edb_bytes = save_embeddb(embeddb, os.path.join(args.out, "tensor_payload.txt"),
                                     store, tensors)

    print()
    print(f"{'persistence of ' + str(tensor_bytes) + ' tensor bytes':<32}"
          f"{'baseline (json)':>16}{'EmbedDb':>12}")
    print(f"{'bytes on disk':<32}{base_bytes:>16}{edb_bytes:>12}")
    print(f"{'bytes per tensor byte':<32}{base_bytes / tensor_bytes:>16.2f}"
          f"{edb_bytes / tensor_bytes:>12.2f}")
    print(f"{'time (ms, incl. fsync)':<32}{base_ms:>16.2f}{edb_ms:>12.2f}")
    print(f"{'checksummed, crash-safe batch':<32}{'no':>16}{'yes':>12}")
    print(f"{'keeps dtypes (float32)':<32}{'no':>16}{'yes':>12}")
    print("(EmbedDb's time includes starting the embeddb process; the store holds its")
    print(" WAL, SST and MANIFEST files.)")
    print(f"inspect: {embeddb} ls {store}")


if __name__ == "__main__":
    main()
