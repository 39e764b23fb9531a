#!/usr/bin/python3
"""End-to-end tests of the embeddb binary: the demo modes, CSV ingest and its
errors, ls/get/preview/stats/verify on real stores, .npy exports read back
with numpy.load, exit codes, --help everywhere, the Python demo.

Run by ctest as: /usr/bin/python3 test_cli_end_to_end.py PATH/TO/embeddb REPO_ROOT
Needs only Debian's python3 and python3-numpy. Every test works in its own
temporary directory and removes it.
"""
import fcntl
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
                          cwd=cwd, timeout=240)


def csv_line(key, name, arr):
    """One payload line for arr, as examples/python_demo/dl_model_demo.py writes them."""
    shape = "x".join(map(str, arr.shape)) or "scalar"
    if np.iscomplexobj(arr):
        vals = [repr(complex(v)) for v in arr.ravel()]
    elif arr.dtype.kind in "iub":
        vals = [str(int(v)) for v in arr.ravel()]
    else:
        vals = [repr(float(v)) for v in arr.ravel()]
    return f"{key},{name},{arr.dtype.name},{shape}," + ",".join(vals) + "\n"


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

    def ls_rows(self, *extra):
        r = run("ls", self.store, *extra)
        self.assertEqual(r.returncode, 0, r.stderr)
        return [line.split("\t") for line in r.stdout.splitlines()]

    # ---- demo modes ------------------------------------------------------

    def test_dryrun_prints_the_seed_lines_and_cleans_up(self):
        before = set(os.listdir(tempfile.gettempdir()))
        r = run("--tensor-dryrun")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertIn("flushed 2 to sst_000000.sst", lines)
        self.assertIn("camera_frame (32x32) -> 0.25, 0.25, ...", lines)
        self.assertTrue(any(l.startswith("imu_window (4x3) -> ") for l in lines), lines)
        self.assertIn("WAL record key=101 camera_frame", r.stdout)
        leftovers = {n for n in set(os.listdir(tempfile.gettempdir())) - before
                     if n.startswith("embeddb-dryrun-")}
        self.assertEqual(leftovers, set())

    def test_dryrun_into_a_given_directory_leaves_the_store(self):
        r = run("--tensor-dryrun", self.store)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([row[0] for row in self.ls_rows()[1:]], ["101", "202"])

    def test_train_loss_decreases_and_checkpoints_are_stored(self):
        r = run("--tensor-train", self.store, "--epochs", 8)
        self.assertEqual(r.returncode, 0, r.stderr)
        losses = [float(m) for m in re.findall(r"^epoch \d+ loss ([0-9.]+)", r.stdout, re.M)]
        self.assertEqual(len(losses), 8)
        self.assertTrue(all(b < a for a, b in zip(losses, losses[1:])), losses)
        self.assertLess(losses[-1], losses[0] / 4)
        self.assertIn("flushed 16 to sst_000000.sst", r.stdout.splitlines())
        self.assertRegex(r.stdout, r"(?m)^dense_w \(8x4\) -> ")
        self.assertRegex(r.stdout, r"(?m)^dense_b \(4\) -> ")
        rows = self.ls_rows()
        self.assertEqual(len(rows), 1 + 16)
        self.assertEqual(rows[-2][:4], ["1016", "dense_w", "f32", "8x4"])
        self.assertEqual(rows[-1][:4], ["1017", "dense_b", "f32", "4"])
        out = os.path.join(self.tmp, "w.npy")
        self.assertEqual(run("get", self.store, 1016, "-o", out).returncode, 0)
        self.assertEqual(np.load(out).shape, (8, 4))

    def test_numeric_benchmark_checks_everything_with_sync_off(self):
        r = run(2000, 16, 4, 4096, os.path.join(self.tmp, "nb"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("sync OFF", r.stdout)
        self.assertIn("loaded and checked 2000 tensors", r.stdout)
        self.assertRegex(r.stdout, r"flushes [1-9]\d*, SSTs [1-9]")

    def test_bench_reports_the_goal_block(self):
        r = run("bench", "--dir", self.tmp, "--tensors", 512, "--runs", 1,
                "--memtable-max", 1 << 20)
        self.assertEqual(r.returncode, 0, r.stderr)
        for key in ("ratio_ingest=", "bytes_written_per_payload=", "io_write_bytes_per_payload=",
                    "peak_rss_MiB=", "point_load_preads=1 (goal 1)"):
            self.assertIn(key, r.stdout)
        self.assertIn("point load from SST: 1 pread", r.stdout)
        self.assertEqual(os.listdir(self.tmp), [])  # scratch directory removed

    # ---- ingest ----------------------------------------------------------

    def test_ingest_then_ls_lists_every_tensor_in_key_order(self):
        r = self.ingest("# comment\n\n"
                        "202,imu,int16,2x3,1,2,3,4,5,-6\n"
                        "101,camera_frame,float32,2x2,0.25,0.25,0.25,0.25\n"
                        "s:cam/0,frame0,uint8,4,1,2,3,255\n"
                        "x:00ff,raw,float64,scalar,1.5\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("saved 101: camera_frame (2x2) -> 0.25, 0.25, 0.25, 0.25", r.stdout)
        self.assertIn("ingested 4 tensors", r.stdout)
        self.assertIn("in one batch: 1 fdatasync", r.stdout)
        self.assertIn("flushed 4 to sst_000000.sst", r.stdout.splitlines())
        rows = self.ls_rows()
        self.assertEqual(rows[0], ["key", "name", "dtype", "shape", "timestamp_ns", "bytes"])
        # Bytewise key order: numeric keys are 8 bytes starting with 0x00 0x00.
        self.assertEqual([row[0] for row in rows[1:]], ["101", "202", "x:00ff", "cam/0"])
        self.assertEqual(rows[1][1:4], ["camera_frame", "f32", "2x2"])
        self.assertEqual(rows[2][1:4], ["imu", "i16", "2x3"])
        self.assertEqual(rows[3][1:4], ["raw", "f64", "scalar"])
        self.assertEqual(rows[2][5], "12")
        self.assertEqual(rows[4][5], "4")
        self.assertGreater(int(rows[1][4]), 1_600_000_000 * 10**9)  # stamped "now", in ns
        self.assertEqual([row[0] for row in self.ls_rows("cam/")[1:]], ["cam/0"])
        self.assertEqual([row[0] for row in self.ls_rows("x:00")[1:]], ["101", "202", "x:00ff"])
        self.assertEqual([row[0] for row in self.ls_rows("x:00ff")[1:]], ["x:00ff"])
        self.assertEqual(len(self.ls_rows("nothing-here")), 1)

    def test_names_with_tabs_cannot_break_ls_lines(self):
        self.assertEqual(self.ingest("1,a\tb,float32,1,1\n").returncode, 0)
        self.assertEqual(self.ls_rows()[1][:2], ["1", "a\\x09b"])

    def test_bad_payload_lines_name_file_and_line_and_store_nothing(self):
        bad = {
            "1,a,float32,2,1\n": "fewer values than the shape needs (1 of 2)",
            "1,a,float32,2,1,2,3\n": "more values than the shape holds (3 for 2)",
            "1,a,float99,2,1,2\n": "unknown dtype 'float99'",
            "1,a,int8,1,300\n": "out of range for i8",
            "1,a,int8,1,1.5\n": "not an integer",
            "1,a,float32,2xq,1,2\n": "bad shape '2xq'",
            "1,a,float32,1,abc\n": "'abc' is not a number",
            "1,a,float32,1x1x1x1x1x1x1x1x1,1\n": "more than 8 dimensions",
            "x:zz,a,float32,1,1\n": "bad or missing key",
            "5,dup,float32,1,2\n": "key 5 already used on line 1",
        }
        for text, why in bad.items():
            r = self.ingest("5,good,float32,1,1\n" + text)
            self.assertEqual(r.returncode, 1, text)
            self.assertTrue(r.stderr.startswith(os.path.join(self.tmp, "payload.csv") + ":2: "),
                            r.stderr)
            self.assertIn(why, r.stderr, text)
            self.assertFalse(os.path.exists(self.store), "nothing may be stored: " + text)

    def test_missing_payload_prints_the_python_demo_hint(self):
        missing = os.path.join(self.tmp, "nope.csv")
        r = run("--tensor-ingest", missing, self.store)
        self.assertEqual(r.returncode, 1)
        self.assertIn(f"no such file: {missing} (generate one with: python3 "
                      "examples/python_demo/dl_model_demo.py)", r.stderr)
        self.assertFalse(os.path.exists(self.store))

    def test_ingest_into_a_store_locked_by_a_writer_fails_cleanly(self):
        self.assertEqual(self.ingest("1,a,float32,1,1\n").returncode, 0)
        with open(os.path.join(self.store, "LOCK"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            r = self.ingest("2,b,float32,1,2\n")
            self.assertEqual(r.returncode, 2, r.stdout)
            self.assertIn(f"embeddb: {self.store}: ", r.stderr)
            # Inspection opens read-only: it works beside the writer.
            self.assertEqual([row[0] for row in self.ls_rows()[1:]], ["1"])
            self.assertEqual(run("verify", self.store).returncode, 0)

    # ---- get -------------------------------------------------------------

    def test_get_writes_npy_that_numpy_reads_back_exactly(self):
        cases = {
            "float32": np.array([[0.5, -1.25], [3.0, 1e-3]], np.float32),
            "float64": np.array([1.0 / 3, -2.5, 1e300], np.float64),
            "int16": np.array([[-32768, 0, 32767]], np.int16),
            "uint8": np.arange(12, dtype=np.uint8).reshape(3, 4),
            "bool": np.array([True, False, True]),
            "complex64": np.array([1.5 - 2j, -2.0, 3j], np.complex64),
            "complex128": np.array([[1 / 3 + 0.25j]], np.complex128),
            "float16": np.array([0.5, -2.0, 65504.0], np.float16),
            "int64": np.array([-(2 ** 63), 2 ** 63 - 1], np.int64),
            "uint64": np.array([2 ** 64 - 1, 0], np.uint64),
            "int8": np.array(-7, np.int8),
        }
        r = self.ingest("".join(csv_line(i + 1, dt, arr) for i, (dt, arr) in
                                enumerate(cases.items())))
        self.assertEqual(r.returncode, 0, r.stderr)
        for i, (dt, arr) in enumerate(cases.items()):
            out = os.path.join(self.tmp, f"{dt}.npy")
            g = run("get", self.store, i + 1, "-o", out)
            self.assertEqual(g.returncode, 0, g.stderr)
            self.assertFalse(os.path.exists(out + ".tmp"))
            got = np.load(out)
            self.assertEqual(got.dtype, arr.dtype, dt)
            self.assertEqual(got.shape, arr.shape, dt)
            np.testing.assert_array_equal(got, arr)
            with open(out, "rb") as f:
                head = f.read(10)
            self.assertEqual((10 + head[8] + 256 * head[9]) % 64, 0, dt)

    def test_get_to_stdout_and_bfloat16_as_raw_bits(self):
        self.assertEqual(self.ingest("3,bf,bfloat16,2,1.5,-3\n").returncode, 0)
        r = subprocess.run([EMBEDDB, "get", self.store, "3", "-o", "-"], capture_output=True,
                           timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"bfloat16", r.stderr)
        path = os.path.join(self.tmp, "bf.npy")
        with open(path, "wb") as f:
            f.write(r.stdout)
        got = np.load(path)
        self.assertEqual(got.dtype, np.dtype("<u2"))
        np.testing.assert_array_equal(got, [0x3fc0, 0xc040])  # bf16 bits of 1.5, -3

    def test_missing_key_exits_3_and_missing_store_exits_2(self):
        self.assertEqual(self.ingest("5,good,float32,1,1\n").returncode, 0)
        out = os.path.join(self.tmp, "x.npy")
        r = run("get", self.store, 999, "-o", out)
        self.assertEqual(r.returncode, 3)
        self.assertIn("no tensor under key 999", r.stderr)
        self.assertFalse(os.path.exists(out))
        self.assertEqual(run("preview", self.store, "s:999").returncode, 3)
        r = run("ls", os.path.join(self.tmp, "no-such-store"))
        self.assertEqual(r.returncode, 2)
        self.assertIn("embeddb: " + os.path.join(self.tmp, "no-such-store") + ": ", r.stderr)

    def test_usage_errors_exit_1(self):
        self.assertEqual(self.ingest("5,good,float32,1,1\n").returncode, 0)
        for args in (["bogus"], ["get", self.store, 5], ["get", self.store, "x:zz", "-o", "a"],
                     ["ls"], ["ls", self.store, "x:1"], ["preview", self.store, 5, "-n", "-1"],
                     ["stats", self.store, "extra"], ["--tensor-train", "--epochs", 0],
                     ["bench", "--runs", 0], ["10", "2"], ["ls", self.store, "--frobnicate"]):
            r = run(*args)
            self.assertEqual(r.returncode, 1, (args, r.stdout, r.stderr))
            self.assertTrue(r.stderr, args)
        r = run()
        self.assertEqual(r.returncode, 1)
        self.assertIn("usage:", r.stderr)

    # ---- preview, stats, verify -----------------------------------------

    def test_preview_prints_n_values(self):
        vals = ",".join(str(i) for i in range(2048))
        self.assertEqual(self.ingest(f"9,big,float32,2048,{vals}\n").returncode, 0)
        r = run("preview", self.store, 9, "-n", 3)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "big (2048) -> 0, 1, 2, ...\n")
        r = run("preview", self.store, 9)
        self.assertEqual(r.stdout, "big (2048) -> 0, 1, 2, 3, 4, 5, 6, 7, ...\n")

    def test_stats_counts_distinct_keys(self):
        self.assertEqual(self.ingest("1,a,float32,1,1\n2,b,float32,1,2\n").returncode, 0)
        self.assertEqual(self.ingest("2,b2,float32,1,3\n").returncode, 0)
        r = run("stats", self.store)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"(?m)^unique_keys\s+2$")
        self.assertRegex(r.stdout, r"(?m)^n_sst\s+2$")
        self.assertRegex(r.stdout, r"(?m)^n_entries\s+3 ")
        self.assertNotIn("embeddb-agent", r.stdout)
        # A store an embeddb-agent writes into also shows the agent's counters.
        with open(os.path.join(self.store, "agent.status"), "w") as f:
            f.write("state=running\nstored=7\n")
        r = run("stats", self.store)
        self.assertRegex(r.stdout, r"(?m)^  stored\s+7$")
        self.assertRegex(r.stdout, r"(?m)^  state\s+running$")

    def test_verify_is_clean_then_reports_a_flipped_byte(self):
        a = np.full(1024, 0.5, np.float32)
        b = np.full(1024, 0.75, np.float32)
        self.assertEqual(self.ingest(csv_line(1, "a", a) + csv_line(2, "b", b)).returncode, 0)
        ok = run("verify", self.store)
        self.assertEqual(ok.returncode, 0, ok.stdout + ok.stderr)
        self.assertEqual(ok.stdout, "ok: 2 files, 2 indexed records checked\n")
        sst = os.path.join(self.store, "sst_000000.sst")
        with open(sst, "r+b") as f:
            data = f.read()
            at = data.find(a.tobytes())  # tensor 1's data, wherever the format puts it
            self.assertGreater(at, 0)
            f.seek(at + 2000)
            f.write(bytes([data[at + 2000] ^ 0x40]))
        bad = run("verify", self.store)
        self.assertEqual(bad.returncode, 4, bad.stdout + bad.stderr)
        self.assertRegex(bad.stdout, r"(?m)^damaged: .*sst_000000\.sst")
        self.assertRegex(bad.stdout, r"(?m)^\d+ damaged items? found$")
        out = os.path.join(self.tmp, "x.npy")
        g = run("get", self.store, 1, "-o", out)
        self.assertEqual(g.returncode, 4, g.stderr)
        self.assertFalse(os.path.exists(out))
        self.assertEqual(run("get", self.store, 2, "-o", out).returncode, 0)
        np.testing.assert_array_equal(np.load(out), b)

    def test_verify_reports_a_damaged_manifest_as_damage(self):
        self.assertEqual(self.ingest("1,a,float32,1,1\n").returncode, 0)
        with open(os.path.join(self.store, "MANIFEST"), "r+b") as f:
            f.seek(20)
            byte = f.read(1)
            f.seek(20)
            f.write(bytes([byte[0] ^ 0xff]))
        r = run("verify", self.store)
        self.assertEqual(r.returncode, 4, r.stdout + r.stderr)
        self.assertIn("damaged: ", r.stdout)

    # ---- help and the Python demo ---------------------------------------

    def test_every_command_has_help(self):
        r = run("--help")
        self.assertEqual(r.returncode, 0)
        for text in ("Exit codes:", "0  ok", "1  usage error", "2  store or I/O error",
                     "3  not found", "4  corruption found", "s:TEXT", "x:HEX"):
            self.assertIn(text, r.stdout)
        for cmd in (["ls", "--help"], ["get", "--help"], ["preview", "-h"], ["latest", "--help"], ["stats", "--help"],
                    ["verify", "--help"], ["bench", "--help"], ["--tensor-dryrun", "--help"],
                    ["--tensor-train", "--help"], ["--tensor-ingest", "--help"],
                    ["1", "--help"]):
            r = run(*cmd)
            self.assertEqual(r.returncode, 0, cmd)
            self.assertIn("usage: embeddb", r.stdout, cmd)
        self.assertIn("key,name,dtype,shape,v0,v1,...", run("--tensor-ingest", "--help").stdout)

    def test_python_demo_persists_through_embeddb(self):
        demo = os.path.join(ROOT, "examples", "python_demo", "dl_model_demo.py")
        out = os.path.join(self.tmp, "demo")
        r = subprocess.run(["/usr/bin/python3", demo, "--out", out, "--embeddb", EMBEDDB],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("baseline (json)", r.stdout)
        self.assertTrue(os.path.exists(os.path.join(out, "weights_baseline.json")))
        self.assertTrue(os.path.exists(os.path.join(out, "tensor_payload.txt")))
        self.store = os.path.join(out, "store")
        rows = self.ls_rows()
        self.assertEqual([row[1] for row in rows[1:]], ["camera_frame", "dense_w", "dense_b"])
        frame = os.path.join(self.tmp, "frame.npy")
        self.assertEqual(run("get", self.store, 101, "-o", frame).returncode, 0)
        np.testing.assert_array_equal(np.load(frame), np.full((32, 32), 0.25, np.float32))


if __name__ == "__main__":
    EMBEDDB = os.path.abspath(sys.argv.pop(1))
    ROOT = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
