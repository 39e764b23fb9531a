#!/usr/bin/python3
"""`embeddb ls --from/--to` and `embeddb latest` on a store with known
timestamps, written by gen_time_store (tests/cli/gen_time_store.c describes
it: 100 tensors one second apart over two topics in three SSTs and the WAL,
cam/0 at 1.5 s, and key 4 saved again at 200 s). Every window is checked
against a model of that store, so boundaries (from included, to excluded),
SST edges and the "newest version decides" rule are all covered.

Run by ctest as: /usr/bin/python3 test_cli_time.py PATH/TO/embeddb PATH/TO/gen_time_store
Needs only Debian's python3.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

EMBEDDB = None
GEN = None
S = 10**9
BASE = 1796050800 * S  # 2026-11-30T15:00:00Z


def run(*args):
    return subprocess.run([EMBEDDB, *map(str, args)], capture_output=True, text=True, timeout=60)


def model(base):
    """key -> timestamp of its newest version, as gen_time_store writes them."""
    m = {f"sensors/imu{c % 2}#{c:020d}": base + c * S for c in range(100)}
    m["cam/0"] = base + S + S // 2
    m["sensors/imu0#00000000000000000004"] = base + 200 * S
    return m


class TimeWindowTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="embeddb-cli-time-")
        cls.store = os.path.join(cls.tmp, "store")
        r = subprocess.run([GEN, cls.store, str(BASE)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def ls_keys(self, *args, store=None):
        r = run("ls", store or self.store, *args)
        self.assertEqual(r.returncode, 0, (args, r.stderr))
        lines = r.stdout.splitlines()
        self.assertEqual(lines[0], "key\tname\tdtype\tshape\ttimestamp_ns\tbytes")
        rows = [l.split("\t") for l in lines[1:]]
        return [(row[0], int(row[4])) for row in rows]

    def expect(self, lo, hi, prefix="", base=BASE):
        return sorted((k, t) for k, t in model(base).items()
                      if k.startswith(prefix) and lo <= t < hi)

    def test_the_store_spans_three_ssts_and_the_wal(self):
        self.assertEqual(sorted(f for f in os.listdir(self.store) if f.endswith(".sst")),
                         ["sst_000000.sst", "sst_000001.sst", "sst_000002.sst"])

    def test_without_a_window_ls_lists_every_newest_version(self):
        self.assertEqual(self.ls_keys(), self.expect(-2**63, 2**63))
        self.assertEqual(len(self.ls_keys()), 101)

    def test_integer_windows_match_the_model_at_every_edge(self):
        for lo, hi in ((10, 20), (0, 10), (25, 35), (29, 31), (59, 60), (89, 91), (0, 100),
                       (95, 1000), (200, 201), (199, 200), (1.5, 1.5 + 1e-9), (1.5 + 1e-9, 3)):
            lo_ns, hi_ns = BASE + int(lo * S), BASE + int(hi * S)
            with self.subTest(lo=lo, hi=hi):
                self.assertEqual(self.ls_keys("--from", lo_ns, "--to", hi_ns),
                                 self.expect(lo_ns, hi_ns))

    def test_a_key_is_listed_by_its_newest_version_only(self):
        keys = [k for k, _ in self.ls_keys("--from", BASE, "--to", BASE + 10 * S)]
        self.assertNotIn("sensors/imu0#00000000000000000004", keys)  # saved again at 200 s
        self.assertIn("sensors/imu0#00000000000000000002", keys)
        self.assertEqual(self.ls_keys("--from", BASE + 200 * S),
                         [("sensors/imu0#00000000000000000004", BASE + 200 * S)])

    def test_prefix_and_window_combine(self):
        got = self.ls_keys("sensors/imu1", "--from", BASE + 10 * S, "--to", BASE + 20 * S)
        self.assertEqual([k for k, _ in got], [f"sensors/imu1#{c:020d}" for c in range(11, 20, 2)])
        self.assertEqual(self.ls_keys("cam/", "--to", BASE + 2 * S), [("cam/0", BASE + S + S // 2)])
        self.assertEqual(self.ls_keys("cam/", "--from", BASE + 2 * S), [])

    def test_one_sided_windows(self):
        self.assertEqual(self.ls_keys("--from", BASE + 90 * S), self.expect(BASE + 90 * S, 2**63))
        self.assertEqual(self.ls_keys("--to", BASE + 3 * S), self.expect(-2**63, BASE + 3 * S))

    def test_rfc3339_forms_name_the_same_instants(self):
        want = self.expect(BASE + 10 * S, BASE + 20 * S)
        for lo, hi in (("2026-11-30T15:00:10Z", "2026-11-30T15:00:20Z"),
                       ("2026-11-30t15:00:10z", "2026-11-30T16:00:20+01:00"),
                       ("2026-11-30T09:30:10-05:30", "2026-11-30T15:00:19.999999999Z"),
                       ("2026-11-30T15:00:09.000000001Z", str(BASE + 20 * S))):
            with self.subTest(lo=lo, hi=hi):
                self.assertEqual(self.ls_keys("--from", lo, "--to", hi), want)
        # cam/0 sits at 1.5 s: --from includes it, --to excludes it.
        self.assertIn(("cam/0", BASE + S + S // 2),
                      self.ls_keys("cam/", "--from", "2026-11-30T15:00:01.5Z"))
        self.assertEqual(self.ls_keys("cam/", "--to", "2026-11-30T15:00:01.500Z"), [])

    def test_an_empty_window_lists_nothing_and_says_so(self):
        for lo, hi in ((BASE + 20 * S, BASE + 10 * S), (BASE + 10 * S, BASE + 10 * S)):
            r = run("ls", self.store, "--from", lo, "--to", hi)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout, "key\tname\tdtype\tshape\ttimestamp_ns\tbytes\n")
            self.assertIn("the window is empty", r.stderr)

    def test_bad_times_exit_1_and_say_why(self):
        for opt, value, why in (("--from", "2026-13-01T00:00:00Z", "month 13 does not exist"),
                                ("--to", "-10", "needs a unit"),
                                ("--from", "9223372036854775808", "above the largest int64"),
                                ("--from", "2026-11-30T15:00:00.1234567890Z", "at most 9"),
                                ("--to", "2026-11-30T15:00:00", "missing Z"),
                                ("--to", "yesterday", "not a number of nanoseconds"),
                                ("--from", "-3w", "unknown unit 'w'"),
                                ("--from", "2026-02-29T00:00:00Z", "day 29 does not exist")):
            with self.subTest(value=value):
                r = run("ls", self.store, opt, value)
                self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
                self.assertEqual(r.stdout, "")
                self.assertIn(f"embeddb: ls: {opt} '{value}': ", r.stderr)
                self.assertIn(why, r.stderr)
        r = run("ls", self.store, "--from")
        self.assertEqual(r.returncode, 1)
        self.assertIn("needs a value", r.stderr)

    def test_ages_count_back_from_now(self):
        store = os.path.join(self.tmp, "recent")
        base = time.time_ns() - 2 * 3600 * S  # every timestamp within 2h - 200 s of now
        r = subprocess.run([GEN, store, str(base)], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        every = self.expect(-2**63, 2**63, base=base)
        self.assertEqual(self.ls_keys("--from", "-3h", store=store), every)
        self.assertEqual(self.ls_keys("--from", "-180m", "--to", "-1h", store=store), every)
        self.assertEqual(self.ls_keys("--to", "-1d", store=store), [])
        self.assertEqual(self.ls_keys("--from", "-3600s", store=store), [])
        self.assertEqual(self.ls_keys("--from", "-1d", "--to", "-0s", store=store), every)


class LatestTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="embeddb-cli-latest-")
        cls.store = os.path.join(cls.tmp, "store")
        r = subprocess.run([GEN, cls.store, str(BASE)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def latest(self, *args):
        r = run("latest", self.store, *args)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(len(lines), 4, r.stdout)
        self.assertRegex(lines[2], r"^seq           \d+$")
        return lines[0], lines[1], int(lines[2].split()[1]), lines[3]

    def test_latest_is_the_highest_seq_of_the_prefix(self):
        summary, key, seq0, ts = self.latest("sensors/imu0")
        # Key 4 was saved last, at 200 s, though key 98 sorts and stamps later.
        self.assertEqual(summary, "sensors/imu0 (3) -> -1, -2, -3")
        self.assertEqual(key, "key           sensors/imu0#00000000000000000004")
        self.assertEqual(ts, f"timestamp_ns  {BASE + 200 * S} (2026-11-30T15:03:20Z)")
        summary, key, seq1, ts = self.latest("sensors/imu1", "-n", 2)
        self.assertEqual(summary, "sensors/imu1 (3) -> 99, 99.5, ...")
        self.assertEqual(key, "key           sensors/imu1#00000000000000000099")
        self.assertEqual(ts, f"timestamp_ns  {BASE + 99 * S} (2026-11-30T15:01:39Z)")
        self.assertEqual(seq0, seq1 + 2)  # cam/0, then key 4 again
        for prefix in ("sensors/", ""):  # "" is every key
            self.assertEqual(self.latest(prefix)[1],
                             "key           sensors/imu0#00000000000000000004")

    def test_latest_finds_a_prefix_held_only_by_an_sst(self):
        self.assertEqual(self.latest("sensors/imu1#0000000000000000002")[1],
                         "key           sensors/imu1#00000000000000000029")
        summary, _, _, ts = self.latest("cam/")
        self.assertEqual(summary, "cam (1) -> 7")
        self.assertEqual(ts, f"timestamp_ns  {BASE + S + S // 2} (2026-11-30T15:00:01.500Z)")

    def test_no_key_with_the_prefix_exits_3(self):
        r = run("latest", self.store, "nothing/")
        self.assertEqual(r.returncode, 3, r.stdout + r.stderr)
        self.assertEqual(r.stdout, "")
        self.assertIn("no tensor under a key starting with nothing/", r.stderr)

    def test_usage_errors_exit_1_and_missing_store_2(self):
        for args in (["latest", self.store], ["latest", self.store, "x:1"],
                     ["latest", self.store, "cam/", "-n", "x"], ["latest"]):
            r = run(*args)
            self.assertEqual(r.returncode, 1, (args, r.stderr))
            self.assertTrue(r.stderr)
        self.assertEqual(run("latest", os.path.join(self.tmp, "none"), "cam/").returncode, 2)

    def test_help(self):
        for cmd in ("latest", "ls"):
            r = run(cmd, "--help")
            self.assertEqual(r.returncode, 0)
            self.assertIn(f"usage: embeddb {cmd}", r.stdout)
        self.assertIn("--from", run("ls", "--help").stdout)
        self.assertIn("latest DIR PREFIX", run("--help").stdout)


if __name__ == "__main__":
    EMBEDDB = os.path.abspath(sys.argv.pop(1))
    GEN = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
