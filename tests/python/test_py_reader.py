#!/usr/bin/python3
"""Cross-implementation tests of the Python reader (python/embeddb) against
data the real C programs write, read back by the real C `embeddb` tool.

gen_py_store (tests/python/gen_py_store.c, the engine and snapshot library)
writes a store (every dtype, 0-d to 8-d, empty tensors, 1024-byte and binary
keys, overwritten keys, plain and packed batches, several SSTs and an open
WAL), a snapshot sealed from it and that snapshot's object (.tar); zstd and
gzip make the .tar.zst and .tar.gz the agent will upload. For each source --
store, snapshot directory, each object by path and as a non-seekable pipe,
and the v1 fixtures -- every tensor Python yields must equal, bit for bit,
what `embeddb get -o -` writes for it, `embeddb ls`'s lines must come out
the same, and `summarize` must equal `embeddb preview` for every key.

Then damage: byte flips over whole segments compared with `embeddb verify`
(wherever C reports damage Python raises or reports it, and Python never
returns a tensor that differs from the original); WAL torn tails and
mid-WAL corruption; MANIFEST damage; truncated, lying and damaged objects.

Usage: test_py_reader.py GEN_PY_STORE EMBEDDB REPO_ROOT
"""
import glob
import gzip
import io
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest

import numpy as np

GEN = EMBEDDB = ROOT = None
embeddb = None
# Under the sanitizer build every `embeddb` run is slow: CMake sets
# EMBEDDB_PY_SAMPLE=N there and the per-key comparisons with the C tool take
# every Nth key (ls, verify and all of Python's own reads stay whole).
SAMPLE = int(os.environ.get("EMBEDDB_PY_SAMPLE", "1"))


def cli(*args, check=True):
    r = subprocess.run([EMBEDDB, *map(str, args)], capture_output=True, timeout=120)
    if check and r.returncode:
        raise AssertionError("embeddb %s: %s" % (args, r.stderr.decode()))
    return r


def c_tensors(d):
    """{key bytes: (dtype str, shape, data bytes)} of every tensor `embeddb ls`
    lists in d, each through `embeddb get -o -`; and ls's lines."""
    lines = cli("ls", d).stdout.decode("utf-8", "surrogateescape").splitlines()
    out = {}
    for line in lines[1::SAMPLE]:
        ktext = line.split("\t")[0]
        a = np.load(io.BytesIO(cli("get", d, ktext, "-o", "-").stdout), allow_pickle=False)
        out[embeddb.parse_key(ktext)] = (a.dtype.str, a.shape, a.tobytes())
    return out, lines


def py_lines(r):
    from embeddb.text import name_text, shape_text
    rows = ["key\tname\tdtype\tshape\ttimestamp_ns\tbytes"]
    for t in r.tensors(load=False):
        rows.append("\t".join([embeddb.key_text(t.key), name_text(t.name_bytes), t.dtype,
                               shape_text(t.shape), str(t.timestamp_ns), str(t.nbytes)]))
    return rows


class Pipe:
    """A non-seekable stream of a file's bytes (read() only), like an S3 body."""

    def __init__(self, path):
        self.p = subprocess.Popen(["cat", path], stdout=subprocess.PIPE)

    def read(self, n=-1):
        return self.p.stdout.read(n)

    def close(self):
        self.p.stdout.close()
        self.p.wait()


class CrossImplementation(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="pyreader-")
        subprocess.run([GEN, cls.tmp, "1", "300"], check=True, timeout=120)
        cls.store = os.path.join(cls.tmp, "store")
        cls.snap = glob.glob(os.path.join(cls.store, "snapshots", "pydev-*"))[0]
        cls.tar = glob.glob(os.path.join(cls.tmp, "*.tar"))[0]
        subprocess.run(["zstd", "-q", "-k", cls.tar], check=True)
        with open(cls.tar, "rb") as f, open(cls.tar + ".gz", "wb") as g:
            subprocess.run(["gzip", "-c"], stdin=f, stdout=g, check=True)
        cls.unpacked = os.path.join(cls.tmp, "unpacked")
        os.mkdir(cls.unpacked)
        subprocess.run(["tar", "-xf", cls.tar, "-C", cls.unpacked], check=True)
        name = os.path.basename(cls.tar)[:-4]
        cls.c_store = c_tensors(cls.store)
        cls.c_snap = c_tensors(os.path.join(cls.unpacked, name))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def same(self, r, c):
        want, lines = c
        self.assertEqual(py_lines(r), lines)
        got = {}
        for t in r:
            a = t.array
            got[t.key] = (a.dtype.str, a.shape, a.tobytes())
            self.assertEqual(a.shape, t.shape)
        self.assertEqual(len(got), len(lines) - 1)
        self.assertEqual(len(want), len(lines[1::SAMPLE]))
        for k, v in want.items():
            self.assertEqual(got[k], v, k)

    def test_store_with_ssts_and_open_wal_matches_c(self):
        with embeddb.open(self.store) as r:
            self.assertEqual(r.kind, "store")
            self.assertIsNotNone(r._wal)
            self.assertGreaterEqual(len(r._ssts), 2)
            self.same(r, self.c_store)
            self.assertEqual(r.verify(), [])

    def test_snapshot_directory_matches_c(self):
        with embeddb.open(self.snap) as r:
            self.assertEqual(r.kind, "snapshot")
            self.assertEqual(r.state["state"], "sealed")
            self.assertEqual(r.manifest_json["tensors"], len(r))
            self.same(r, self.c_snap)
            self.assertEqual(r.verify(), [])

    def test_objects_by_path_and_stream_match_c(self):
        for path in (self.tar, self.tar + ".zst", self.tar + ".gz"):
            with self.subTest(path=path), embeddb.open(path) as r:
                self.assertEqual(r.kind, "object")
                self.same(r, self.c_snap)
                self.assertEqual(r.verify(), [])
            with self.subTest(stream=path):
                p = Pipe(path)
                try:
                    with embeddb.open(p) as r:
                        self.same(r, self.c_snap)
                        self.assertEqual(r.verify(), [])
                finally:
                    p.close()

    def test_object_from_an_http_response(self):
        """An HTTP response body (urllib, chunked or not) is a stream like
        any other: served by a local http.server."""
        import functools
        import http.server
        import threading
        import urllib.request
        h = functools.partial(http.server.SimpleHTTPRequestHandler, directory=self.tmp)
        h.log_message = lambda *a: None
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), h)
        th = threading.Thread(target=srv.serve_forever, daemon=True)
        th.start()
        try:
            for suffix in (".zst", ".gz", ""):
                url = "http://127.0.0.1:%d/%s%s" % (srv.server_address[1],
                                                    os.path.basename(self.tar), suffix)
                with self.subTest(suffix=suffix), urllib.request.urlopen(url, timeout=60) as resp:
                    with embeddb.open(resp) as r:
                        self.same(r, self.c_snap)
        finally:
            srv.shutdown()
            srv.server_close()
            th.join()

    def test_objects_repacked_by_gnu_tar_still_open(self):
        """An object unpacked and packed again by GNU tar (gnu and pax
        formats, with a directory entry) reads the same."""
        name = os.path.basename(self.tar)[:-4]
        for fmt in ("gnu", "pax"):
            p = os.path.join(self.tmp, "repacked-%s.tar" % fmt)
            subprocess.run(["tar", "--format=" + fmt, "-cf", p, "-C", self.unpacked, name],
                           check=True)
            with self.subTest(fmt=fmt), embeddb.open(p) as r:
                self.same(r, self.c_snap)

    def test_pure_python_crc_reads_the_same(self):
        """Without python3-crc32c the fallback CRC-32C serves (slowly)."""
        code = ("import sys; sys.modules['crc32c'] = None; sys.path.insert(0, sys.argv[1]); "
                "import embeddb; assert embeddb.CRC_BACKEND == 'python', embeddb.CRC_BACKEND; "
                "r = embeddb.open(sys.argv[2]); assert r.verify() == [], r.verify(); "
                "print(len(r), sum(t.array.nbytes for t in r))")
        fx = os.path.join(ROOT, "tests", "core", "fixtures", "v1", "store")
        out = subprocess.run([sys.executable, "-c", code, os.path.join(ROOT, "python"), fx],
                             capture_output=True, text=True, timeout=120)
        self.assertEqual(out.returncode, 0, out.stderr)
        with embeddb.open(fx) as r:
            self.assertEqual(out.stdout.split(), [str(len(r)),
                                                  str(sum(t.array.nbytes for t in r))])

    def test_stores_the_cli_writes_match_c(self):
        """Stores written by the `embeddb` tool's own modes: the seed's dry
        run and training demo, a CSV ingest (f16, bf16, bool, c128, a binary
        key) and the numeric benchmark (400 tensors over a dozen SSTs and a
        WAL)."""
        d = os.path.join(self.tmp, "cli")
        os.mkdir(d)
        csv = os.path.join(d, "p.csv")
        with open(csv, "w") as f:
            f.write("a,t1,f16,2x2,1,2,3,4\nb,t2,bf16,3,1.5,2.5,-3\nc,t3,bool,scalar,1\n"
                    "x:00ff,t4,c128,2,(1+2j),3j\ns:77,t5,u64,1,18446744073709551615\n")
        runs = {"dry": ["--tensor-dryrun"], "train": ["--tensor-train", "--epochs", "3"],
                "ingest": ["--tensor-ingest", csv], "num": ["400", "8", "4", "3000"]}
        for name, args in runs.items():
            store = os.path.join(d, name)
            if name == "train":
                cli(args[0], store, *args[1:])
            else:
                cli(*args, store)
            with self.subTest(name=name), embeddb.open(store) as r:
                self.same(r, c_tensors(store))
                self.assertEqual(r.verify(), [])
                if name == "num":
                    self.assertGreater(len(r._ssts), 10)
                    self.assertIsNotNone(r._wal)

    def test_v1_fixtures_match_c(self):
        for d in ("store", "checkpoint"):
            path = os.path.join(ROOT, "tests", "core", "fixtures", "v1", d)
            with self.subTest(d=d), embeddb.open(path) as r:
                self.same(r, c_tensors(path))
                self.assertEqual(r.verify(), [])

    def test_object_is_the_tar_snapshot_format_describes(self):
        """Every header field of the C-written object as snapshot/FORMAT.md's
        table gives it, members in its order, two zero blocks at the end."""
        with open(self.tar, "rb") as f:
            data = f.read()
        name = os.path.basename(self.tar)[:-4]
        with embeddb.open(self.snap) as r:
            files = [x["name"] for x in r.manifest_json["files"]] + ["MANIFEST.json"]
            mtime = r.manifest_json["created_ns"] // 10 ** 9
        off = 0
        for member in files:
            h = data[off:off + 512]
            size = os.path.getsize(os.path.join(self.snap, member))
            self.assertEqual(h[0:100].rstrip(b"\0"), member.encode())
            self.assertEqual(h[100:108], b"0000644\0")
            self.assertEqual((h[108:116], h[116:124]), (b"0000000\0", b"0000000\0"))
            self.assertEqual(h[124:136], b"%011o\0" % size)
            self.assertEqual(h[136:148], b"%011o\0" % mtime)
            chk = sum(h[:148]) + 8 * 32 + sum(h[156:])
            self.assertEqual(h[148:156], b"%06o\0 " % chk)
            self.assertEqual(h[156:157], b"0")
            self.assertEqual((h[257:263], h[263:265]), (b"ustar\0", b"00"))
            self.assertEqual((h[265:297].rstrip(b"\0"), h[297:329].rstrip(b"\0")),
                             (b"root", b"root"))
            self.assertEqual(h[345:500].rstrip(b"\0"), name.encode())
            rest = bytearray(h)
            for a, b in ((0, 100), (100, 157), (257, 329), (345, 500)):
                rest[a:b] = bytes(b - a)
            self.assertFalse(any(rest), "a field the format leaves zero is not")
            with open(os.path.join(self.snap, member), "rb") as f:
                self.assertEqual(data[off + 512:off + 512 + size], f.read())
            off += 512 + (size + 511) // 512 * 512
        self.assertEqual(data[off:], bytes(1024))

    def test_summarize_equals_embeddb_preview(self):
        with embeddb.open(self.snap) as r:
            for i, k in enumerate(r.keys()):
                if i % SAMPLE:
                    continue
                n = (0, 1, 3, 8, 100)[i // SAMPLE % 5]
                want = cli("preview", self.snap, embeddb.key_text(k), "-n", n).stdout
                self.assertEqual(r.summarize(k, n).encode("utf-8", "surrogateescape") + b"\n",
                                 want, k)

    def test_store_sst_data_is_memory_mapped_not_copied(self):
        with embeddb.open(self.store) as r:
            t = r.get(b"over/a")  # rewritten in the WAL: a copy is fine there
            big = [x for x in embeddb.open(self.snap) if x.key.startswith(b"big/")]
            self.assertEqual(len(big), 4)
            for x in big:
                self.assertFalse(x.array.flags.owndata)
                self.assertFalse(x.array.flags.writeable)
                base = x.array
                while isinstance(base, np.ndarray):
                    base = base.base
                self.assertIsInstance(base, memoryview)  # of the mmap
            self.assertEqual(t.key, b"over/a")

    def test_filters(self):
        with embeddb.open(self.tar) as r:
            allt = list(r.tensors(load=False))
            by = lambda f: [t.key for t in allt if f(t)]  # noqa: E731
            self.assertEqual([t.key for t in r.tensors(prefix="topic1#", load=False)],
                             by(lambda t: t.key.startswith(b"topic1#")))
            self.assertEqual(len(by(lambda t: t.name == "topic2")), 100)
            self.assertEqual([t.key for t in r.tensors(topic="topic2", load=False)],
                             by(lambda t: t.name == "topic2"))
            self.assertEqual([t.key for t in r.tensors(topic=["topic0", "big"], load=False)],
                             by(lambda t: t.name in ("topic0", "big")))
            stamps = sorted(t.timestamp_ns for t in allt)
            lo, hi = stamps[100], stamps[400]
            got = [t.key for t in r.tensors(start_ns=lo, end_ns=hi, load=False)]
            self.assertEqual(got, by(lambda t: lo <= t.timestamp_ns < hi))
            self.assertEqual([t.key for t in r.tensors(start_ns=stamps[-1], load=False)],
                             by(lambda t: t.timestamp_ns == stamps[-1]))
            self.assertEqual(list(r.tensors(end_ns=stamps[0], load=False)), [])
            for d in ("f16", "float16", np.float16, "bf16", "bool", "c128"):
                want = {"float16": "f16", np.float16: "f16"}.get(d, d)
                self.assertEqual([t.key for t in r.tensors(dtype=d, load=False)],
                                 by(lambda t: t.dtype == want), d)
            self.assertEqual([t.key for t in r.tensors(dtype=["i8", "u8"], load=False)],
                             by(lambda t: t.dtype in ("i8", "u8")))
            with self.assertRaises(ValueError):
                list(r.tensors(dtype="f128"))
            self.assertEqual(r.keys(b"dt15/"), by(lambda t: t.key.startswith(b"dt15/")))
            self.assertEqual(r.topics()["topic0"], 100)
            self.assertEqual(r.manifest_json["topics"], r.topics())
            self.assertEqual(r.manifest_json["key_range"], [r.keys()[0], r.keys()[-1]])

    def test_load_preview_and_missing_key(self):
        with embeddb.open(self.store) as r:
            k = r.keys()[0]
            a = r.load(k)
            self.assertTrue(np.array_equal(r.preview(k, 2).view(np.uint8),
                                           a.reshape(-1)[:2].view(np.uint8)))
            self.assertEqual(len(r.preview(k, 10 ** 9)), a.size)
            self.assertEqual(len(r.preview(k, 0)), 0)
            with self.assertRaises(KeyError):
                r.load(b"no such key")

    def test_crc32c_fallback_agrees(self):
        from embeddb._crc import crc32c, crc32c_py
        self.assertEqual(crc32c_py(b"123456789"), 0xE3069283)
        rnd = random.Random(3)
        for n in (0, 1, 7, 4096, 10000):
            b = bytes(rnd.getrandbits(8) for _ in range(n))
            self.assertEqual(crc32c_py(b), crc32c(b))
            self.assertEqual(crc32c_py(b[n // 2:], crc32c_py(b[:n // 2])), crc32c(b))


class BesideALiveWriter(unittest.TestCase):
    """Opens a store again and again while the C engine writes and flushes
    it: each open sees whole batches, a prefix of what was written, with the
    right values, never less than the open before."""

    def test_reads_beside_a_running_writer(self):
        tmp = tempfile.mkdtemp(prefix="pyreader-live-")
        store, stop = os.path.join(tmp, "store"), os.path.join(tmp, "stop")
        w = subprocess.Popen([GEN, "live", store, stop])
        try:
            seen, opens, flushed = 0, 0, set()
            while opens < 40 or seen < 300 or len(flushed) < 3:
                self.assertIsNone(w.poll(), "the writer died")
                try:
                    r = embeddb.open(store)
                except FileNotFoundError:
                    continue  # not created yet
                with r:
                    keys = r.keys()
                    self.assertEqual(len(keys) % 5, 0)
                    self.assertEqual(keys, [b"live#%020d" % c for c in range(len(keys))])
                    self.assertGreaterEqual(len(keys), seen)
                    for t in r:
                        c = int(t.key[5:])
                        n = t.shape[0]
                        want = (np.array([c, c + 0.5, c + 0.25], np.float32) if n == 3 else
                                np.arange(c, c + 300, dtype=np.float32))
                        self.assertTrue(np.array_equal(t.array, want), t.key)
                    seen = len(keys)
                    flushed |= {s.footer["file_no"] for s in r._ssts}
                opens += 1
        finally:
            open(stop, "w").close()
            self.assertEqual(w.wait(timeout=60), 0)
        with embeddb.open(store) as r:  # after the writer: the C tool agrees
            self.assertEqual(py_lines(r), cli("ls", store).stdout.decode().splitlines())
        shutil.rmtree(tmp)


def pym(*args, stdin=None):
    """python3 -m embeddb ARGS: (exit code, stdout bytes, stderr text)."""
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"))
    r = subprocess.run([sys.executable, "-m", "embeddb", *map(str, args)], capture_output=True,
                       stdin=stdin, env=env, timeout=300)
    return r.returncode, r.stdout, r.stderr.decode()


class CommandLine(unittest.TestCase):
    """python3 -m embeddb ls|cat|verify|export against the C tool's output
    and the tensors read back from .npz, Zarr and HDF5."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="pyreader-cli-")
        subprocess.run([GEN, cls.tmp, "3", "300"], check=True, timeout=120)
        cls.store = os.path.join(cls.tmp, "store")
        cls.tar = glob.glob(os.path.join(cls.tmp, "*.tar"))[0]
        cls.snap = glob.glob(os.path.join(cls.store, "snapshots", "pydev-*"))[0]
        subprocess.run(["zstd", "-q", "-k", cls.tar], check=True)
        with embeddb.open(cls.tar) as r:
            cls.truth = {t.key: (t.array.copy(), t) for t in r}

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def test_ls_and_cat_equal_the_c_tool(self):
        for src, cdir in ((self.store, self.store), (self.tar, self.snap)):
            rc, out, err = pym("ls", src)
            self.assertEqual(rc, 0, err)
            self.assertEqual(out, cli("ls", cdir).stdout)
            rc, out, err = pym("ls", src, "topic1#", "--from", "1796043628000100000")
            self.assertEqual(out, cli("ls", cdir, "topic1#", "--from", "1796043628000100000").stdout)
        for k in (b"big/3", b"\x00\xff\n", (101).to_bytes(8, "big"), b"12345"):
            rc, out, err = pym("cat", self.tar, embeddb.key_text(k), "-o", "-")
            self.assertEqual(rc, 0, err)
            self.assertEqual(out, cli("get", self.snap, embeddb.key_text(k), "-o", "-").stdout)
            rc, out, err = pym("cat", self.tar, embeddb.key_text(k), "-n", "3")
            self.assertEqual(out.splitlines()[0] + b"\n",
                             cli("preview", self.snap, embeddb.key_text(k), "-n", "3").stdout)
        self.assertEqual(pym("cat", self.tar, "s:no such key")[0], 3)
        self.assertEqual(pym("ls", os.path.join(self.tmp, "missing"))[0], 2)

    def test_verify_exit_codes(self):
        rc, out, err = pym("verify", self.tar)
        self.assertEqual((rc, out.startswith(b"ok: ")), (0, True), out + err.encode())
        d = os.path.join(self.tmp, "bad")
        shutil.copytree(self.snap, d)
        sst = sorted(glob.glob(os.path.join(d, "sst_*.sst")))[-1]
        with open(sst, "r+b") as f:
            f.seek(100)
            b = f.read(1)
            f.seek(100)
            f.write(bytes([b[0] ^ 1]))
        rc, out, err = pym("verify", d)
        self.assertEqual(rc, 1)
        self.assertIn(sst.encode(), out)
        self.assertIn(b"SHA-256", out)
        with open(self.tar + ".zst", "rb") as f:
            rc, out, err = pym("verify", "-", stdin=f)
        self.assertEqual(rc, 0, err)

    def check_tensor(self, a, attrs, key):
        want, t = self.truth[key]
        self.assertEqual(a.dtype, want.dtype)
        self.assertEqual(a.shape, want.shape)
        self.assertEqual(a.tobytes(), want.tobytes(), key)
        if attrs is not None:
            self.assertEqual((attrs["timestamp_ns"], attrs["seq"], attrs["dtype"]),
                             (t.timestamp_ns, t.seq, t.dtype))

    def read_back(self, path):
        """{array path: (array, attrs or None)} of an export."""
        out = {}
        if path.endswith(".npz"):
            with np.load(path) as z:
                return {k: (z[k], None) for k in z.files}
        if path.endswith(".zarr"):
            import zarr
            g = zarr.open_group(path, mode="r")
            g.visititems(lambda k, v: out.__setitem__(k, (v[...], v.attrs.asdict()))
                         if isinstance(v, zarr.Array) else None)
            return out
        import h5py
        with h5py.File(path, "r") as h:
            h.visititems(lambda k, v: out.__setitem__(k, (v[()], dict(v.attrs)))
                         if isinstance(v, h5py.Dataset) else None)
        return out

    def test_export_per_tensor_round_trips(self):
        for ext in ("npz", "zarr", "h5"):
            path = os.path.join(self.tmp, "all." + ext)
            rc, out, err = pym("export", self.tar + ".zst", "--to", path)
            self.assertEqual(rc, 0, err)
            got = self.read_back(path)
            keys = [embeddb.parse_key(k.decode()) for k in got["index/key"][0]]
            self.assertEqual(keys, sorted(self.truth))
            n = 0
            for name, (a, attrs) in got.items():
                if name.startswith("tensors/"):
                    key = embeddb.parse_key(attrs["key"]) if attrs else keys[n]
                    self.check_tensor(a, attrs, key)
                    n += 1
            self.assertEqual(n, len(self.truth), ext)
            ts = got["index/timestamp_ns"][0]
            self.assertEqual(list(ts), [self.truth[k][1].timestamp_ns for k in keys])

    def test_export_stacked_by_topic_along_time(self):
        for ext in ("npz", "zarr", "h5"):
            path = os.path.join(self.tmp, "stack." + ext)
            rc, out, err = pym("export", self.tar, "--to", path, "--stack", "--topic", "topic1",
                               "--topic", "topic0", "--topic", "topic2")
            self.assertEqual(rc, 0, err)
            self.assertIn("topic 'topic0': dtypes or shapes differ", err)
            got = self.read_back(path)
            for topic in ("topic1", "topic2"):
                data = got["topics/%s/data" % topic][0]
                keys = [embeddb.parse_key(k.decode()) for k in got["topics/%s/key" % topic][0]]
                ts = got["topics/%s/timestamp_ns" % topic][0]
                self.assertEqual(len(keys), 100)
                self.assertEqual(data.shape[0], 100)
                self.assertEqual(list(ts), sorted(ts))
                for i, k in enumerate(keys):
                    self.assertEqual(ts[i], self.truth[k][1].timestamp_ns)
                    self.check_tensor(data[i], None, k)
            self.assertFalse(any(k.startswith("topics/big") for k in got))
            per = [k for k in got if k.startswith("topics/topic0/tensors/")]
            self.assertEqual(len(per), 100)

    def test_export_refuses_an_unknown_format(self):
        rc, out, err = pym("export", self.tar, "--to", os.path.join(self.tmp, "x.csv"))
        self.assertEqual(rc, 2)
        self.assertIn(".npz, .zarr or .h5", err)


class Mutations(unittest.TestCase):
    """Random damage (byte changes, 8-byte garbage, cuts; fixed seed) to a
    store file, a snapshot file or an object: the reader raises
    CorruptError (or FileNotFoundError for a gone MANIFEST) and nothing
    else, and every tensor it does return is the original's."""

    def test_random_mutations_give_corrupt_error_or_right_data(self):
        tmp = tempfile.mkdtemp(prefix="pyreader-mut-")
        subprocess.run([GEN, tmp, "4", "100"], check=True, timeout=120)
        snap = glob.glob(os.path.join(tmp, "store", "snapshots", "*"))[0]
        with open(glob.glob(os.path.join(tmp, "*.tar"))[0], "rb") as f:
            tar = f.read()
        with embeddb.open(snap) as r:
            truth = {t.key: t.array.tobytes() for t in r}
        rnd = random.Random(1616)
        errors = 0
        for i in range(1000 // SAMPLE):
            obj = rnd.random() < 0.4
            d = os.path.join(tmp, "m%d" % i)
            if obj:
                data = bytearray(tar)
            else:
                shutil.copytree(snap, d)
                target = os.path.join(d, rnd.choice(sorted(os.listdir(d))))
                with open(target, "rb") as f:
                    data = bytearray(f.read())
            for _ in range(rnd.choice((1, 1, 2, 5, 20))):
                if not data:
                    break
                at, op = rnd.randrange(len(data)), rnd.random()
                if op < 0.6:
                    data[at] = rnd.randrange(256)
                elif op < 0.8:
                    del data[at:]
                else:
                    data[at:at + 8] = rnd.randbytes(8)
            if not obj:
                with open(target, "wb") as f:
                    f.write(data)
            try:
                with embeddb.open(io.BytesIO(bytes(data)) if obj else d,
                                  on_damage=rnd.choice(("raise", "skip"))) as r:
                    for t in r.tensors(on_damage="skip"):
                        self.assertEqual(t.array.tobytes(), truth[t.key], (i, t.key))
                    r.verify()
            except (embeddb.CorruptError, FileNotFoundError):
                errors += 1
            shutil.rmtree(d, ignore_errors=True)
        self.assertGreater(errors, 0)
        shutil.rmtree(tmp)


class Damage(unittest.TestCase):
    """Bad bytes: an exception naming file and offset, never wrong data."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="pyreader-dmg-")
        subprocess.run([GEN, cls.tmp, "2", "400"], check=True, timeout=120)
        cls.store = os.path.join(cls.tmp, "store")
        cls.snap = glob.glob(os.path.join(cls.store, "snapshots", "pydev-*"))[0]
        cls.tar = glob.glob(os.path.join(cls.tmp, "*.tar"))[0]
        with embeddb.open(cls.snap) as r:
            cls.truth = {t.key: t.array.tobytes() for t in r}
        with embeddb.open(cls.store) as r:
            cls.store_truth = {t.key: t.array.tobytes() for t in r}

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def copy(self, src):
        d = tempfile.mkdtemp(dir=self.tmp)
        dst = os.path.join(d, "s")
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns("snapshots"))
        return dst

    def read_all(self, path, truth):
        """Everything Python gives for path: problems found (strings) and
        the tensors it returned, each checked against truth."""
        problems = []
        try:
            r = embeddb.open(path, on_damage="skip")
        except embeddb.CorruptError as e:
            return [str(e)]
        with r:
            problems += [str(e) for e in r.damage]
            for t in r.tensors(on_damage="skip"):
                self.assertEqual(t.array.tobytes(), truth[t.key], "wrong data for %r" % t.key)
            problems += [str(e) for e in r.damage]
            problems += r.verify()
        return problems

    def test_byte_flips_over_every_sst_match_c_verify(self):
        rnd = random.Random(16)
        ssts = sorted(glob.glob(os.path.join(self.snap, "sst_*.sst")))
        flips = 0
        for sst in ssts:
            size = os.path.getsize(sst)
            offs = set(rnd.sample(range(size), min(size, 40 // SAMPLE)))
            offs |= {0, 8, 24, 28, 32, 36, 60, size - 64, size - 60, size - 44, size - 12,
                     size - 8, size - 1}
            for off in sorted(offs):
                d = self.copy(self.snap)
                p = os.path.join(d, os.path.basename(sst))
                with open(p, "r+b") as f:
                    f.seek(off)
                    b = f.read(1)
                    f.seek(off)
                    f.write(bytes([b[0] ^ 0x40]))
                c_bad = cli("verify", d, check=False).returncode != 0
                problems = self.read_all(d, self.truth)
                if c_bad:
                    self.assertTrue(problems, "C reports damage at %s+%d, Python none" % (p, off))
                for msg in problems:
                    self.assertIn(os.path.dirname(p), msg)
                    self.assertRegex(msg, r"offset \d+|missing|MANIFEST")
                flips += 1
                shutil.rmtree(os.path.dirname(d))
        self.assertGreater(flips, 100 // SAMPLE)

    def test_sst_truncations_match_c_verify(self):
        sst = sorted(glob.glob(os.path.join(self.snap, "sst_*.sst")))[-1]
        size = os.path.getsize(sst)
        for cut in (0, 1, 31, 32, 33, 100, size // 2, size - 65, size - 64, size - 63, size - 1):
            d = self.copy(self.snap)
            os.truncate(os.path.join(d, os.path.basename(sst)), cut)
            self.assertNotEqual(cli("verify", d, check=False).returncode, 0, cut)
            problems = self.read_all(d, self.truth)
            self.assertTrue(problems, "C reports a cut at %d, Python nothing" % cut)
            shutil.rmtree(os.path.dirname(d))

    def test_wal_byte_flips_match_c(self):
        """A flip in the open WAL: where C's read-only open fails Python's
        does too; where C cuts a torn tail Python shows the same tensors."""
        wal = glob.glob(os.path.join(self.store, "wal_*.log"))[0]
        size = os.path.getsize(wal)
        rnd = random.Random(61)
        for off in sorted(set(rnd.sample(range(size), min(size, 30 // SAMPLE))) |
                          {0, 8, 28, 32, 40, 60}):
            d = self.copy(self.store)
            p = os.path.join(d, os.path.basename(wal))
            with open(p, "r+b") as f:
                f.seek(off)
                b = f.read(1)
                f.seek(off)
                f.write(bytes([b[0] ^ 0x08]))
            c = cli("ls", d, check=False)
            try:
                with embeddb.open(d) as r:
                    got = {t.key: t.array.tobytes() for t in r}
                py_err = None
            except embeddb.CorruptError as e:
                py_err = e
            if c.returncode:
                self.assertIsNotNone(py_err, "C fails the open at %s+%d, Python reads" % (p, off))
                self.assertEqual(py_err.file, p)
            else:
                self.assertIsNone(py_err, "C reads %s+%d, Python says %s" % (p, off, py_err))
                want = {embeddb.parse_key(line.split("\t")[0])
                        for line in c.stdout.decode().splitlines()[1:]}
                self.assertEqual(set(got), want, off)
                for k, v in got.items():
                    self.assertEqual(v, self.store_truth.get(k, v) if k.startswith(b"wal/")
                                     else v)
            shutil.rmtree(os.path.dirname(d))

    def test_flip_in_one_record_leaves_the_rest_readable(self):
        d = self.copy(self.snap)
        with embeddb.open(d) as r:
            t = r.info(b"big/2")
            off = t._rec.data_off + 5000
        with open(t.source, "r+b") as f:
            f.seek(off)
            f.write(b"\xff\xfe")
        with embeddb.open(d) as r:
            with self.assertRaises(embeddb.CorruptError) as cm:
                r.load(b"big/2")
            self.assertEqual(cm.exception.file, t.source)
            self.assertEqual(cm.exception.offset, t._rec.data_off + 4096)
            self.assertIn("data block 1 checksum", str(cm.exception))
            self.assertEqual(len(r.preview(b"big/2", 1000)), 1000)  # block 0 is intact
            n = 0
            for x in r.tensors(on_damage="skip"):
                self.assertEqual(x.array.tobytes(), self.truth[x.key])
                n += 1
            self.assertEqual(n, len(self.truth) - 1)
            self.assertEqual(len(r.damage), 1)
            self.assertTrue(any("data block 1" in p for p in r.verify()))
        self.assertNotEqual(cli("verify", d, check=False).returncode, 0)

    def test_damaged_sst_index_fails_open_or_is_skipped(self):
        d = self.copy(self.snap)
        sst = sorted(glob.glob(os.path.join(d, "sst_*.sst")))[0]
        with open(sst, "rb") as f:
            data = bytearray(f.read())
        index_off = int.from_bytes(data[-64:-56], "little")
        data[index_off + 20] ^= 1
        with open(sst, "wb") as f:
            f.write(data)
        with self.assertRaises(embeddb.CorruptError) as cm:
            embeddb.open(d)
        self.assertEqual((cm.exception.file, cm.exception.offset), (sst, index_off))
        with embeddb.open(d, on_damage="skip") as r:
            self.assertEqual(len(r.damage), 1)
            self.assertGreater(len(r), 0)
            for t in r:
                self.assertEqual(t.array.tobytes(), self.truth[t.key])
        self.assertNotEqual(cli("ls", d, check=False).returncode, 0)

    def test_wal_torn_tail_is_left_out_like_c(self):
        wal = glob.glob(os.path.join(self.store, "wal_*.log"))[0]
        size = os.path.getsize(wal)
        for cut in (size - 1, size - 37, 33, 32, 20):
            d = self.copy(self.store)
            os.truncate(os.path.join(d, os.path.basename(wal)), cut)
            with embeddb.open(d) as r:
                got = {t.key: t.array.tobytes() for t in r}
                if cut > 32:
                    self.assertIsNotNone(r.wal_cut)
                    self.assertEqual(r.wal_cut[0], os.path.join(d, os.path.basename(wal)))
            want, lines = c_tensors(d)
            self.assertEqual(py_lines(embeddb.open(d)), lines, cut)
            for k, v in want.items():
                self.assertEqual(got[k], v[2])

    def test_wal_corruption_before_a_valid_batch_fails_like_c(self):
        d = self.copy(self.store)
        wal = glob.glob(os.path.join(d, "wal_*.log"))[0]
        with open(wal, "r+b") as f:
            f.seek(32 + 40)  # inside the first batch's first record
            f.write(b"\x00\x01\x02")
        with self.assertRaises(embeddb.CorruptError) as cm:
            embeddb.open(d)
        self.assertEqual((cm.exception.file, cm.exception.offset), (wal, 64))  # its record
        self.assertNotEqual(cli("ls", d, check=False).returncode, 0)
        with embeddb.open(d, on_damage="skip") as r:
            self.assertEqual(len(r.damage), 1)
            # The batches after the bad one are served; every older version
            # (the bad batch may have replaced it) raises instead.
            got = [t for t in r.tensors(on_damage="skip")]
            self.assertGreaterEqual(len(got), 80)
            for t in got:
                self.assertEqual(t.array.tobytes(), self.store_truth[t.key])
            with self.assertRaisesRegex(embeddb.CorruptError, "newer version may be"):
                r.load(b"over/a")

    def test_missing_live_sst_and_a_lying_manifest(self):
        d = self.copy(self.snap)
        ssts = sorted(glob.glob(os.path.join(d, "sst_*.sst")))
        self.assertEqual(len(ssts), 3)
        os.unlink(ssts[1])
        with self.assertRaisesRegex(embeddb.CorruptError, "live SST named by the MANIFEST is "
                                    "missing") as cm:
            embeddb.open(d)
        self.assertEqual(cm.exception.file, ssts[1])
        self.assertNotEqual(cli("ls", d, check=False).returncode, 0)
        with embeddb.open(d, on_damage="skip") as r:
            # What the newer SSTs hold is served; nothing older than the
            # missing file (it may have held a newer version).
            served = list(r.tensors(on_damage="skip"))
            self.assertTrue(served)
            for t in served:
                self.assertEqual(t.array.tobytes(), self.truth[t.key])
                self.assertGreater(int(t.source.rsplit("_", 1)[1][:6]),
                                   int(ssts[1].rsplit("_", 1)[1][:6]))
        # A MANIFEST (checksum right) naming SSTs 0..2^62: refused at once,
        # without counting to 2^62.
        body = b"EDBMAN01" + struct.pack("<IIQ", 2, 1, 1 << 62) + struct.pack("<QQ", 0,
                                                                              (1 << 62) - 1)
        with open(os.path.join(d, "MANIFEST"), "wb") as f:
            f.write(body + struct.pack("<I", embeddb.crc32c(body)))
        with self.assertRaisesRegex(embeddb.CorruptError, "missing"):
            embeddb.open(d)
        with embeddb.open(d, on_damage="skip") as r:
            self.assertEqual(list(r.tensors(on_damage="skip")), [])

    def test_damaged_or_missing_manifest(self):
        d = self.copy(self.store)
        man = os.path.join(d, "MANIFEST")
        with open(man, "r+b") as f:
            f.seek(17)
            f.write(b"\x7f")
        with self.assertRaises(embeddb.CorruptError) as cm:
            embeddb.open(d)
        self.assertEqual(cm.exception.file, man)
        os.unlink(man)
        with self.assertRaises(FileNotFoundError):
            embeddb.open(d)

    def test_truncated_objects_raise_naming_the_offset(self):
        with open(self.tar, "rb") as f:
            data = f.read()
        zst = subprocess.run(["zstd", "-q", "-c"], input=data, capture_output=True).stdout
        gz = gzip.compress(data)
        for blob, name in ((data, "t.tar"), (zst, "t.tar.zst"), (gz, "t.tar.gz")):
            for cut in (1, 511, 512, 513, len(blob) // 2, len(blob) - 1024, len(blob) - 513,
                        len(blob) - 1):
                p = os.path.join(self.tmp, name)
                with open(p, "wb") as f:
                    f.write(blob[:cut])
                with self.subTest(name=name, cut=cut):
                    with self.assertRaises(embeddb.CorruptError) as cm:
                        embeddb.open(p)
                    self.assertEqual(cm.exception.file, p)
                    self.assertIsNotNone(cm.exception.offset)
                    with self.assertRaises(embeddb.CorruptError):
                        embeddb.open(io.BufferedReader(io.BytesIO(blob[:cut])))

    def test_lying_and_damaged_tar_headers(self):
        with open(self.tar, "rb") as f:
            data = bytearray(f.read())
        p = os.path.join(self.tmp, "bad.tar")
        bad = bytearray(data)
        bad[124:136] = b"77777777777\0"  # size far past the end, checksum fixed below
        bad[148:156] = b"        "
        bad[148:156] = b"%06o\0 " % sum(bad[:512])
        with open(p, "wb") as f:
            f.write(bad)
        with self.assertRaisesRegex(embeddb.CorruptError, "runs past|truncated") as cm:
            embeddb.open(p)
        self.assertEqual(cm.exception.offset, 0)
        with self.assertRaises(embeddb.CorruptError):
            embeddb.open(io.BytesIO(bytes(bad)))
        bad = bytearray(data)
        bad[0] ^= 1  # name changed, checksum not
        with open(p, "wb") as f:
            f.write(bad)
        with self.assertRaisesRegex(embeddb.CorruptError, "tar header checksum") as cm:
            embeddb.open(p)
        self.assertEqual((cm.exception.file, cm.exception.offset), (p, 0))
        # A flipped data byte in an object: verify names the member.
        bad = bytearray(data)
        bad[512 + 100] ^= 1
        with open(p, "wb") as f:
            f.write(bad)
        problems = self.read_all(p, self.truth)
        self.assertTrue(any(p + ":" in m for m in problems), problems)
        self.assertTrue(any("SHA-256" in m for m in problems), problems)
        # Damaged compressed stream.
        zst = bytearray(subprocess.run(["zstd", "-q", "-c"], input=bytes(data),
                                       capture_output=True).stdout)
        zst[len(zst) // 2] ^= 0xFF
        with self.assertRaises(embeddb.CorruptError):
            embeddb.open(io.BytesIO(bytes(zst)))


if __name__ == "__main__":
    GEN = os.path.abspath(sys.argv.pop(1))
    EMBEDDB = os.path.abspath(sys.argv.pop(1))
    ROOT = os.path.abspath(sys.argv.pop(1))
    sys.path.insert(0, os.path.join(ROOT, "python"))
    import embeddb  # noqa: E402,F811
    unittest.main(verbosity=2)
