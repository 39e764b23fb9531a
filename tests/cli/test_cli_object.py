#!/usr/bin/python3
"""`embeddb ls|get|verify` on a snapshot object (cli/cli_object.h): the
object as the agent uploads it -- written by gen_py_store with the snapshot
library's own tar encoder, compressed with zstd and gzip (also as several
frames / members) -- read from a file and from standard input, against the
same snapshot read as a directory, and, where numpy is installed, against
the Python reader. Then objects that lie: cut at many offsets, a flipped
byte in a tar header, in an SST, in MANIFEST.json and in the compressed
stream, members with path-traversal names, a huge declared size, the wrong
format, missing members. Every one must exit 4 (damaged) with a message
that says what, and ls/get must print no tensor. Memory: the peak RSS on a
~100 MiB object stays within a few MiB of the peak on a small one.

Usage: test_cli_object.py EMBEDDB GEN_PY_STORE REPO_ROOT
"""
import io
import os
import resource
import shutil
import subprocess
import sys
import tarfile
import tempfile
import unittest

EMBEDDB = GEN = ROOT = None
NAME = "pydev-00000000000000000001"


def run(*args, stdin=None):
    """(exit code, stdout bytes, stderr text) of embeddb ARGS."""
    r = subprocess.run([EMBEDDB, *map(str, args)], input=stdin, capture_output=True, timeout=120)
    err = r.stderr.decode(errors="replace")
    # A sanitizer build reports and may go on: its report fails the test.
    assert "runtime error" not in err and "Sanitizer" not in err, err
    return r.returncode, r.stdout, err


def peak_rss_kib(*args):
    """Exit code and peak RSS (KiB) of embeddb ARGS, from wait4's rusage."""
    p = subprocess.Popen([EMBEDDB, *map(str, args)], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    return p.returncode, ru.ru_maxrss


def tar_checksum(h):
    return sum(h[:148]) + 8 * 32 + sum(h[156:512])


def set_size(blob, hdr_off, field):
    """blob with the size field of the header at hdr_off replaced (12 bytes)
    and its checksum made right again: a header that lies consistently."""
    b = bytearray(blob)
    b[hdr_off + 124:hdr_off + 136] = field
    b[hdr_off + 148:hdr_off + 156] = b"%06o\0 " % tar_checksum(b[hdr_off:hdr_off + 512])
    return bytes(b)


class ObjectTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="embeddb-obj-")
        subprocess.run([GEN, cls.tmp, "7"], check=True, capture_output=True, timeout=120)
        cls.dir = os.path.join(cls.tmp, "store", "snapshots", NAME)
        with open(os.path.join(cls.tmp, NAME + ".tar"), "rb") as f:
            cls.tar = f.read()
        cls.zst = subprocess.run(["zstd", "-q", "-c", "-3"], input=cls.tar, check=True,
                                 capture_output=True).stdout
        cls.gz = subprocess.run(["gzip", "-n", "-c"], input=cls.tar, check=True,
                                capture_output=True).stdout
        half = len(cls.tar) // 2
        # Several frames / members, as `cat a.zst b.zst` makes: one stream.
        cls.zst2 = b"".join(subprocess.run(["zstd", "-q", "-c"], input=p, check=True,
                                           capture_output=True).stdout
                            for p in (cls.tar[:half], cls.tar[half:]))
        cls.gz2 = b"".join(subprocess.run(["gzip", "-n", "-c"], input=p, check=True,
                                          capture_output=True).stdout
                           for p in (cls.tar[:half], cls.tar[half:]))
        cls.objects = {"t.tar": cls.tar, "t.tar.zst": cls.zst, "t.tar.gz": cls.gz,
                       "multi.tar.zst": cls.zst2, "multi.tar.gz": cls.gz2}
        for n, blob in cls.objects.items():
            cls.write(n, blob)
        rc, cls.listing, err = run("ls", cls.dir)
        assert rc == 0, err
        with tarfile.open(fileobj=io.BytesIO(cls.tar)) as t:
            cls.members = {os.path.basename(m.name): m for m in t.getmembers()}

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def write(cls, name, blob):
        p = os.path.join(cls.tmp, name)
        with open(p, "wb") as f:
            f.write(blob)
        return p

    def path(self, name):
        return os.path.join(self.tmp, name)

    def assert_damaged(self, blob, *words, name="bad.tar"):
        """Every command refuses blob (by path and on stdin) with exit 4,
        ls and get printing no tensor, and verify's words include words."""
        p = self.write(name, blob)
        rc, out, err = run("verify", p)
        self.assertEqual(rc, 4, (out, err))
        text = out.decode(errors="replace")
        self.assertIn("damaged: ", text)
        for w in words:
            self.assertIn(w, text)
        rc, out, err = run("ls", "-", stdin=blob)
        self.assertEqual(rc, 4, err)
        self.assertEqual(out.count(b"\n"), 1, "ls listed tensors of a damaged object")
        self.assertIn("damaged: ", err)
        first_key = self.listing.split(b"\n")[1].split(b"\t")[0].decode()
        rc, out, err = run("get", p, first_key, "-o", "-")
        self.assertEqual(rc, 4, err)
        self.assertEqual(out, b"")
        return text

    # ---- whole objects -------------------------------------------------------------

    def test_ls_of_every_codec_file_and_stdin_is_the_directory_listing(self):
        self.assertGreater(self.listing.count(b"\n"), 700)
        for n, blob in self.objects.items():
            with self.subTest(n):
                rc, out, err = run("ls", self.path(n))
                self.assertEqual((rc, err), (0, ""))
                self.assertEqual(out, self.listing)
                rc, out, err = run("ls", "-", stdin=blob)
                self.assertEqual((rc, out), (0, self.listing), err)

    def test_ls_prefix_and_window_are_the_directory_ones(self):
        for args in (["topic1"], ["topic0", "--from", "0"], ["--to", "1000"],
                     ["x:00", "--from", "-1d"]):
            with self.subTest(args):
                want = run("ls", self.dir, *args)
                self.assertEqual(want[0], 0, want[2])
                self.assertEqual(run("ls", self.path("t.tar.zst"), *args)[:2], want[:2])

    def test_get_writes_the_directory_npy_for_sampled_keys(self):
        keys = [l.split(b"\t")[0].decode() for l in self.listing.splitlines()[1:]]
        for k in keys[::37] + keys[-1:]:
            with self.subTest(k[:40]):
                want = run("get", self.dir, k, "-o", "-")
                self.assertEqual(want[0], 0, want[2])
                self.assertEqual(run("get", self.path("t.tar.gz"), k, "-o", "-")[:2], want[:2])
                self.assertEqual(run("get", "-", k, "-o", "-", stdin=self.zst)[:2], want[:2])

    def test_get_of_a_missing_key_exits_3(self):
        rc, _, err = run("get", self.path("t.tar.zst"), "s:no-such-key", "-o", "-")
        self.assertEqual(rc, 3)
        self.assertIn("no tensor under key", err)

    def test_verify_passes_every_codec(self):
        for n in self.objects:
            with self.subTest(n):
                rc, out, err = run("verify", self.path(n))
                self.assertEqual(rc, 0, (out, err))
                self.assertRegex(out.decode(), r"^ok: (none|zstd|gzip) object, 5 files, \d+ "
                                 r"records checked, every file matches MANIFEST.json\n$")

    def test_python_reader_lists_the_same(self):
        r = subprocess.run([sys.executable, "-c", "import numpy"], capture_output=True)
        if r.returncode:
            self.skipTest("python3-numpy is not installed (CI has it)")
        env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"))
        for n in ("t.tar", "t.tar.gz", "t.tar.zst"):
            py = subprocess.run([sys.executable, "-m", "embeddb", "ls", self.path(n)], env=env,
                                capture_output=True, timeout=120)
            self.assertEqual(py.returncode, 0, py.stderr)
            self.assertEqual(py.stdout, run("ls", self.path(n))[1])

    # ---- objects that lie --------------------------------------------------------------

    def test_cut_at_many_offsets_is_truncated(self):
        for n in ("t.tar", "t.tar.zst", "t.tar.gz"):
            blob = self.objects[n]
            for cut in sorted({1, 3, 100, 511, 512, 1000, len(blob) // 3, len(blob) // 2,
                               len(blob) - 1030, len(blob) - 1024, len(blob) - 513,
                               len(blob) - 8, len(blob) - 1}):
                with self.subTest(n=n, cut=cut):
                    text = self.assert_damaged(blob[:cut], name="cut-" + n)
                    self.assertRegex(text, r"truncated|not a snapshot object")

    def test_flipped_byte_in_a_tar_header(self):
        b = bytearray(self.tar)
        b[self.members["MANIFEST"].offset + 20] ^= 0x01  # inside the name field
        self.assert_damaged(bytes(b), "tar header checksum mismatch")

    def test_flipped_byte_in_an_sst(self):
        sst = next(m for n, m in self.members.items() if n.startswith("sst_"))
        b = bytearray(self.tar)
        b[sst.offset_data + sst.size // 2] ^= 0x10
        text = self.assert_damaged(bytes(b), "sst_")
        # The seal's hash finds it too.
        self.assertIn("MANIFEST.json says", text)

    def test_flipped_byte_in_the_sst_index_and_footer(self):
        sst = next(m for n, m in self.members.items() if n.startswith("sst_"))
        for back, word in ((70, "index"), (10, "footer")):
            b = bytearray(self.tar)
            b[sst.offset_data + sst.size - back] ^= 0x01
            with self.subTest(word):
                self.assert_damaged(bytes(b), word)

    def test_flipped_byte_in_manifest_json_hashes_fails(self):
        # MANIFEST.json carries the others' hashes, not one of its own: a
        # flipped hash digit is a mismatch with the file it names.
        m = self.members["MANIFEST.json"]
        b = bytearray(self.tar)
        i = self.tar.index(b'"sha256": "', m.offset_data) + 20
        b[i] = ord("0") if b[i] != ord("0") else ord("1")
        self.assert_damaged(bytes(b), "MANIFEST.json says")

    def test_flipped_byte_in_the_compressed_stream(self):
        for n in ("t.tar.zst", "t.tar.gz"):
            b = bytearray(self.objects[n])
            b[len(b) // 2] ^= 0x40
            with self.subTest(n):
                self.assert_damaged(bytes(b), name="flip-" + n)

    def test_path_traversal_and_odd_names_are_refused(self):
        for evil in ("../etc/passwd", "/etc/passwd", f"{NAME}/../../x", f"{NAME}/a/b",
                     f"../{NAME}/MANIFEST", "sst_000000.sst", f"{NAME}/x\ny"):
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
                data = b"x" * 10
                ti = tarfile.TarInfo(evil)
                ti.size = len(data)
                t.addfile(ti, io.BytesIO(data))
            with self.subTest(evil):
                self.assert_damaged(buf.getvalue(), "is not DIR/NAME")

    def test_a_huge_declared_size_meets_the_end_not_an_allocation(self):
        off = self.members["MANIFEST.json"].offset
        for field, word in ((b"77777777777\0", "truncated inside member"),
                            (b"\x80\0\0\0\x40" + b"\0" * 7, "is not believable"),
                            (b"\x80" + b"\xff" * 11, "size field is not a number")):
            blob = set_size(self.tar, off, field)
            with self.subTest(word):
                self.assert_damaged(blob, word)
                rc, kib = peak_rss_kib("verify", self.write("huge.tar", blob))
                self.assertEqual(rc, 4)
                self.assertLess(kib, 256 * 1024)  # 8 GiB declared; not allocated

    def test_wrong_formats(self):
        with open(os.path.join(self.dir, "MANIFEST"), "rb") as f:
            manifest = f.read()
        for blob, word in ((b"", "empty object"), (b"hello world\n" * 100, "not a snapshot"),
                           (manifest, "not a snapshot"), (b"\0" * 1024, "no MANIFEST"),
                           (b"\x28\xb5\x2f\xfd" + b"\0" * 100, "zstd stream"),
                           (b"\x1f\x8b" + b"\1" * 100, "gzip stream damaged")):
            with self.subTest(word):
                self.assert_damaged(blob, word)

    def test_missing_or_extra_members(self):
        def repack(skip=(), extra=None):
            buf = io.BytesIO()
            with tarfile.open(fileobj=io.BytesIO(self.tar)) as src, \
                    tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
                for m in src.getmembers():
                    if os.path.basename(m.name) not in skip:
                        t.addfile(m, src.extractfile(m))
                if extra:
                    ti = tarfile.TarInfo(f"{NAME}/{extra}")
                    ti.size = 3
                    t.addfile(ti, io.BytesIO(b"abc"))
            return buf.getvalue()
        sst = next(n for n in self.members if n.startswith("sst_"))
        self.assert_damaged(repack(skip=["MANIFEST.json"]), "no MANIFEST.json")
        self.assert_damaged(repack(skip=["MANIFEST"]), "no MANIFEST")
        self.assert_damaged(repack(skip=[sst]), f"MANIFEST names {sst}")
        self.assert_damaged(repack(extra="notes.txt"), "notes.txt")
        # GNU tar's record padding and directory entry are fine: not damage.
        self.assertEqual(run("verify", "-", stdin=repack())[0], 0)

    # ---- memory ------------------------------------------------------------------

    def test_memory_does_not_grow_with_the_object(self):
        big = os.path.join(self.tmp, "big")
        os.makedirs(big)
        subprocess.run([GEN, "bench", big, "bigdev", "96", str(1 << 20)], check=True,
                       capture_output=True, timeout=300)
        obj = next(os.path.join(big, n) for n in os.listdir(big) if n.endswith(".tar"))
        self.assertGreater(os.path.getsize(obj), 96 << 20)
        zobj = obj + ".zst"
        subprocess.run(["zstd", "-q", "-1", obj, "-o", zobj], check=True)
        for args in (["verify"], ["ls"]):
            for small, large in ((self.path("t.tar"), obj), (self.path("t.tar.zst"), zobj)):
                with self.subTest(args=args, obj=os.path.basename(large)):
                    rc_s, kib_s = peak_rss_kib(*args, small)
                    rc_l, kib_l = peak_rss_kib(*args, large)
                    self.assertEqual((rc_s, rc_l), (0, 0))
                    # 96 MiB more object, at most 8 MiB more memory (the
                    # window grows to a 1 MiB record; zstd's window at -1).
                    self.assertLess(kib_l - kib_s, 8 * 1024, (kib_s, kib_l))


if __name__ == "__main__":
    EMBEDDB, GEN, ROOT = sys.argv[1:4]
    del sys.argv[1:4]
    unittest.main(verbosity=2)
