#!/usr/bin/python3
"""Smoke test of `embeddb bench`'s workloads with tiny sizes: each runs,
prints its report (the figures are not judged: benchmarks measure) and
removes its scratch directory; bad workload names and options exit 1. The
default 4 KiB ingest report keeps its form (test_cli_end_to_end.py checks
its goal block too).

Run by ctest as: /usr/bin/python3 test_cli_bench_smoke.py PATH/TO/embeddb
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

EMBEDDB = None
TINY = ["--tensors", "128", "--runs", "1", "--memtable-max", str(1 << 20),
        "--samples", "600", "--max-ssts", "10"]


def run(*args):
    return subprocess.run([EMBEDDB, *map(str, args)], capture_output=True, text=True,
                          timeout=120)


class BenchSmokeTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="embeddb-bench-smoke-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def bench(self, *args):
        r = run("bench", *args, "--dir", self.tmp, *TINY)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(os.listdir(self.tmp), [])  # scratch directory removed
        return r.stdout

    def test_small_reports_each_size_against_raw(self):
        out = self.bench("small", "--topics", 3)
        self.assertIn("3 topics interleaved", out)
        for size in (12, 128, 4096):
            self.assertRegex(out, rf"(?m)^ *{size} B run 1: raw \d+ tensors/s, engine \d+ "
                                  rf"tensors/s \(ratio [\d.]+; paired [\d.]+\); "
                                  rf"bytes written/payload [\d.]+ \(io [\d.]+, raw io [\d.]+\)")
        header = ("size_B  shape    raw_tensors_per_s  engine_tensors_per_s  ratio  ratio_paired  "
                  "bytes_written_per_payload  io_per_payload  raw_io_per_payload")
        lines = out.splitlines()
        at = lines.index(header)
        self.assertEqual([l.split()[:2] for l in lines[at + 1:at + 4]],
                         [["12", "f32[3]"], ["128", "f32[32]"], ["4096", "f32[1024]"]])
        self.assertIn("counts a whole page", out)

    def test_reads_reports_each_sst_count(self):
        out = self.bench("reads")
        self.assertIn("20 topics x 600 samples", out)
        self.assertRegex(out, r"(?m)^  10 SSTs: built at \d+ tensors/s")
        lines = out.splitlines()
        at = next(i for i, l in enumerate(lines) if l.startswith("ssts  point_loads_per_s"))
        row = lines[at + 1].split()
        self.assertEqual(row[0], "10")
        # At most one pread per point load or latest (a cached frame needs none).
        self.assertLessEqual(float(row[2]), 1.0)
        self.assertEqual(row[4], "600")   # the window (10 s > 600 ms) holds the whole topic
        self.assertEqual(row[7], "600")   # and so does the topic scan
        self.assertLessEqual(float(row[9]), 1.0)
        self.assertFalse(lines[at + 2].strip()[:1].isdigit())  # --max-ssts 10: one row

    def test_all_runs_ingest_small_and_reads(self):
        out = self.bench("all")
        self.assertRegex(out, r"(?m)^bench: 128 tensors of 4096 bytes")
        self.assertIn("ratio_ingest=", out)
        self.assertIn("bench small: ", out)
        self.assertIn("bench reads: ", out)

    def test_default_is_the_4k_ingest(self):
        out = self.bench()
        self.assertRegex(out, r"(?m)^bench: 128 tensors of 4096 bytes \(32x32 float32\) in "
                              r"batches of 64, one fdatasync per batch")
        self.assertNotIn("bench small", out)
        self.assertNotIn("bench reads", out)

    def test_bad_names_and_options_exit_1(self):
        for args in (["bench", "smal"], ["bench", "small", "reads"], ["bench", "--topics", "0"],
                     ["bench", "reads", "--max-ssts", "5"], ["bench", "--samples", "x"]):
            r = run(*args)
            self.assertEqual(r.returncode, 1, (args, r.stdout, r.stderr))
            self.assertTrue(r.stderr)
        self.assertIn("unknown benchmark 'smal'", run("bench", "smal").stderr)
        help_text = run("bench", "--help").stdout
        for word in ("ingest (the default)", "small:", "reads:", "all:"):
            self.assertIn(word, help_text)


if __name__ == "__main__":
    EMBEDDB = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
