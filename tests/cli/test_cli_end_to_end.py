#!/usr/bin/python3
"""End-to-end tests of the embeddb binary: demo modes, ingest errors,
ls/get/preview/stats/verify on real stores, .npy exports read back by NumPy,
exit codes. Usage: test_cli_end_to_end.py PATH/TO/embeddb REPO_ROOT
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np

EMBEDDB = None
ROOT = None


def run(*args, cwd=None):
    return subprocess.run([EMBEDDB, *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


class CliTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="embeddb-cli-")
        self.store = os.path.join(self.tmp, "store")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def ingest(self, text, store=None):
        path = os.path.join(self.tmp, "payload.csv")
        with open(path, "w") as f:
            f.write(text)
        return run("--tensor-ingest", path, store or self.store)

    def test_dryrun_prints_the_seed_lines(self):
        r = run("--tensor-dryrun")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("WAL record key=101 camera_frame", r.stdout)
        self.assertIn("WAL record key=202", r.stdout)
        self.assertIn("flushed 2 to sst_000000.sst", r.stdout.splitlines())
        self.assertIn("camera_frame (32x32) -> 0.25, 0.25, ...", r.stdout.splitlines())
        self.assertIn("1 fdatasync", r.stdout)

    def test_ingest_then_ls_lists_every_tensor_in_key_order(self):
        r = self.ingest("# comment\n\n"
                        "202,imu,int16,2x3,1,2,3,4,5,-6\n"
                        "101,camera_frame,float32,2x2,0.25,0.25,0.25,0.25\n"
                        "s:cam/0,frame0,uint8,4,1,2,3,255\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("ingested 3 tensor(s)", r.stdout)
        self.assertIn("flushed 3 to sst_000000.sst", r.stdout)
        ls = run("ls", self.store)
        self.assertEqual(ls.returncode, 0, ls.stderr)
        rows = [l.split("\t") for l in ls.stdout.splitlines()]
        self.assertEqual(rows[0], ["key", "name", "dtype", "shape", "timestamp_ns", "bytes"])
        self.assertEqual([r[0] for r in rows[1:]], ["101", "202", "cam/0"])
        self.assertEqual(rows[1][1:4], ["camera_frame", "f32", "2x2"])
        self.assertEqual(rows[2][1:4], ["imu", "i16", "2x3"])
        self.assertEqual(rows[2][5], "12")
        self.assertEqual(rows[3][5], "4")
        prefix = run("ls", self.store, "cam/")
        self.assertEqual(len(prefix.stdout.splitlines()), 2)

    def test_get_writes_npy_that_numpy_reads_back_exactly(self):
        cases = {
            "float32": np.array([[0.5, -1.25], [3.0, 1e-3]], np.float32),
            "float64": np.array([1.0 / 3, -2.5, 1e300], np.float64),
            "int16": np.array([[-32768, 0, 32767]], np.int16),
            "uint8": np.arange(12, dtype=np.uint8).reshape(3, 4),
            "bool": np.array([True, False, True]),
            "complex64": np.array([1.5, -2.0], np.complex64),
            "float16": np.array([0.5, -2.0, 65504.0], np.float16),
            "int64": np.array([-(2 ** 40), 2 ** 40], np.int64),
        }
        lines = []
        for i, (dt, arr) in enumerate(cases.items()):
            shape = "x".join(map(str, arr.shape))
            vals = ",".join(repr(float(np.real(v))) for v in arr.ravel())
            lines.append(f"{i + 1},{dt},{dt},{shape},{vals}\n")
        r = self.ingest("".join(lines))
        self.assertEqual(r.returncode, 0, r.stderr)
        for i, (dt, arr) in enumerate(cases.items()):
            out = os.path.join(self.tmp, f"{dt}.npy")
            g = run("get", self.store, i + 1, "-o", out)
            self.assertEqual(g.returncode, 0, g.stderr)
            got = np.load(out)
            self.assertEqual(got.dtype, arr.dtype, dt)
            self.assertEqual(got.shape, arr.shape, dt)
            np.testing.assert_array_equal(got, arr)

    def test_scalar_exports_as_zero_d_array(self):
        self.assertEqual(self.ingest("7,s,float64,scalar,2.5\n").returncode, 0)
        out = os.path.join(self.tmp, "s.npy")
        self.assertEqual(run("get", self.store, 7, "-o", out).returncode, 0)
        got = np.load(out)
        self.assertEqual(got.shape, ())
        self.assertEqual(float(got), 2.5)

    def test_bad_payload_lines_name_file_and_line_and_store_nothing(self):
        bad = {
            "1,a,float32,2,1\n": "fewer values",
            "1,a,float32,2,1,2,3\n": "more values",
            "1,a,float99,2,1,2\n": "unknown dtype",
            "1,a,int8,1,300\n": "out of range",
            "1,a,int8,1,1.5\n": "not an integer",
            "1,a,float32,2xq,1,2\n": "bad shape",
            "1,a,float32,1,abc\n": "not a number",
            "1,a,float32,1x1x1x1x1x1x1x1x1,1\n": "more than 8",
            "x:zz,a,float32,1,1\n": "bad or missing key",
        }
        for text, why in bad.items():
            r = self.ingest("5,good,float32,1,1\n" + text)
            self.assertEqual(r.returncode, 1, text)
            self.assertRegex(r.stderr, r"payload\.csv:2: ", text)
            self.assertIn(why, r.stderr, text)
            self.assertFalse(os.path.exists(self.store), "nothing may be stored: " + text)

    def test_missing_payload_prints_the_python_demo_hint(self):
        r = run("--tensor-ingest", os.path.join(self.tmp, "nope.csv"), self.store)
        self.assertEqual(r.returncode, 1)
        self.assertIn("dl_model_demo.py", r.stderr)

    def test_preview_prints_n_values(self):
        vals = ",".join(str(i) for i in range(2048))
        self.assertEqual(self.ingest(f"9,big,float32,2048,{vals}\n").returncode, 0)
        r = run("preview", self.store, 9, "-n", 3)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.strip(), "big (2048) -> 0, 1, 2, ...")

    def test_missing_key_exits_3_and_missing_store_exits_2(self):
        self.assertEqual(self.ingest("5,good,float32,1,1\n").returncode, 0)
        self.assertEqual(run("get", self.store, 999, "-o", os.path.join(self.tmp, "x.npy"))
                         .returncode, 3)
        self.assertEqual(run("preview", self.store, 999).returncode, 3)
        r = run("ls", os.path.join(self.tmp, "no-such-store"))
        self.assertEqual(r.returncode, 2)
        self.assertIn("no-such-store", r.stderr)

    def test_verify_is_clean_then_reports_a_flipped_byte(self):
        vals = ",".join(["0.5"] * 1024)
        self.assertEqual(self.ingest(f"1,a,float32,1024,{vals}\n2,b,float32,1024,{vals}\n")
                         .returncode, 0)
        ok = run("verify", self.store)
        self.assertEqual(ok.returncode, 0, ok.stdout + ok.stderr)
        self.assertIn("ok:", ok.stdout)
        sst = os.path.join(self.store, "sst_000000.sst")
        with open(sst, "r+b") as f:
            f.seek(32 + 32 + 2000)  # inside the first tensor's data
            b = f.read(1)
            f.seek(-1, 1)
            f.write(bytes([b[0] ^ 0x40]))
        bad = run("verify", self.store)
        self.assertEqual(bad.returncode, 4, bad.stdout + bad.stderr)
        self.assertIn("sst_000000.sst", bad.stdout)
        self.assertIn("checksum", bad.stdout)
        g = run("get", self.store, 1, "-o", os.path.join(self.tmp, "x.npy"))
        self.assertEqual(g.returncode, 4)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "x.npy")))
        self.assertEqual(run("get", self.store, 2, "-o", os.path.join(self.tmp, "y.npy"))
                         .returncode, 0)

    def test_train_loss_decreases_and_checkpoints_are_stored(self):
        r = run("--tensor-train", self.store, "--epochs", 8)
        self.assertEqual(r.returncode, 0, r.stderr)
        losses = [float(m) for m in re.findall(r"^epoch \d+ loss ([0-9.]+)", r.stdout, re.M)]
        self.assertEqual(len(losses), 8)
        self.assertTrue(all(b < a for a, b in zip(losses, losses[1:])), losses)
        self.assertIn("flushed 16 to sst_000000.sst", r.stdout)
        self.assertIn("dense_w (8x4) -> ", r.stdout)
        ls = run("ls", self.store)
        self.assertEqual(len(ls.stdout.splitlines()), 1 + 16)

    def test_numeric_benchmark_runs_and_checks_everything(self):
        r = run(2000, 16, 4, 4096, os.path.join(self.tmp, "nb"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("loaded and checked 2000 tensors", r.stdout)
        self.assertRegex(r.stdout, r"flushes [1-9]")

    def test_python_demo_persists_through_embeddb(self):
        demo = os.path.join(ROOT, "examples", "python_demo", "dl_model_demo.py")
        out = os.path.join(self.tmp, "demo")
        r = subprocess.run(["/usr/bin/python3", demo, "--out", out, "--embeddb", EMBEDDB],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("baseline (json)", r.stdout)
        self.assertTrue(os.path.exists(os.path.join(out, "weights_baseline.json")))
        ls = run("ls", os.path.join(out, "store"))
        self.assertEqual([l.split("\t")[1] for l in ls.stdout.splitlines()[1:]],
                         ["camera_frame", "dense_w", "dense_b"])

    def test_every_command_has_help(self):
        for cmd in (["--help"], ["ls", "--help"], ["get", "--help"], ["preview", "--help"],
                    ["stats", "--help"], ["verify", "--help"], ["bench", "--help"],
                    ["--tensor-dryrun", "--help"], ["--tensor-train", "--help"],
                    ["--tensor-ingest", "--help"]):
            r = run(*cmd)
            self.assertEqual(r.returncode, 0, cmd)
            self.assertIn("usage:", r.stdout, cmd)
        r = run("bogus")
        self.assertEqual(r.returncode, 1)

    def test_stats_counts_distinct_keys(self):
        self.assertEqual(self.ingest("1,a,float32,1,1\n2,b,float32,1,2\n").returncode, 0)
        self.assertEqual(self.ingest("2,b2,float32,1,3\n").returncode, 0)
        r = run("stats", self.store)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"tensors\s+2 \(distinct keys\)")
        self.assertRegex(r.stdout, r"sst_files\s+2")


if __name__ == "__main__":
    EMBEDDB = os.path.abspath(sys.argv.pop(1))
    ROOT = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
