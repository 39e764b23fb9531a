#!/usr/bin/python3
"""The HTTP console's API (console/API.md) against a running `embeddb serve`
and a running embeddb-agent with a real mosquitto: every endpoint, every
error path (bad JSON, wrong dtype and shape, oversized body, unknown key,
missing and wrong token), .npy round trips bit-exact with NumPy, data stored
over HTTP and over MQTT side by side in one store, and `promtool check
metrics` on /metrics.

Usage: test_console.py BUILD_DIR REPO_ROOT
"""
import gzip
import http.client
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_agent_mqtt as tam  # noqa: E402

BUILD = ROOT = None
PROMTOOL = shutil.which("promtool")
MAX_BODY = 262144  # ServeTest's --max-body


def npy_bytes(arr):
    b = io.BytesIO()
    np.save(b, arr)
    return b.getvalue()


class Client:
    """One keep-alive connection; every answer as (status, headers, body)."""

    def __init__(self, port, token=None):
        self.port = port
        self.token = token
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def req(self, method, path, body=None, ctype=None, token=None, accept_gzip=None, **args):
        if args:
            path += "?" + urllib.parse.urlencode(args, doseq=True)
        h = {}
        if accept_gzip:
            h["Accept-Encoding"] = "gzip" if accept_gzip is True else accept_gzip
        if ctype:
            h["Content-Type"] = ctype
        tok = token if token is not None else self.token
        if tok:
            h["Authorization"] = "Bearer " + tok
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
            h["Content-Type"] = "application/json"
        try:
            self.conn.request(method, path, body=body, headers=h)
            r = self.conn.getresponse()
        except (http.client.HTTPException, ConnectionError):
            self.conn.close()  # the server closed a refused upload: reconnect once
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            self.conn.request(method, path, body=body, headers=h)
            r = self.conn.getresponse()
        data = r.read()
        return r.status, dict(r.getheaders()), data

    def json(self, method, path, body=None, want=200, **kw):
        st, h, data = self.req(method, path, body, **kw)
        doc = json.loads(data)
        if st != want:
            raise AssertionError(f"{method} {path}: {st} {data[:300]!r}, wanted {want}")
        return doc

    def error(self, method, path, body=None, status=400, code=None, **kw):
        st, h, data = self.req(method, path, body, **kw)
        assert st == status, f"{method} {path}: {st} {data[:300]!r}, wanted {status}"
        doc = json.loads(data)  # every error is JSON
        assert set(doc) == {"error", "code"}, doc
        assert doc["error"], doc
        if code:
            assert doc["code"] == code, doc
        return doc


def start_serve(store, *extra):
    p = subprocess.Popen([os.path.join(BUILD, "cli", "embeddb"), "serve", store, "--listen",
                          "127.0.0.1:0", *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    line = p.stdout.readline()
    if not line.startswith("embeddb serve: http://127.0.0.1:"):
        p.kill()
        raise AssertionError(f"serve did not start: {line!r} {p.stderr.read()!r}")
    port = int(line.split("http://127.0.0.1:")[1].split("/")[0])
    return p, port


def stop(p):
    p.terminate()
    assert p.wait(timeout=10) == 0
    p.stdout.close()
    p.stderr.close()


def promtool_check(text):
    r = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


class ServeTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="embeddb-console-")
        self.store = os.path.join(self.tmp, "store")
        self.proc, self.port = start_serve(self.store, "--max-body", str(MAX_BODY),
                                           "--memtable-max", "1048576")
        self.c = Client(self.port)

    def tearDown(self):
        if self.proc.poll() is None:
            stop(self.proc)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_store_load_json_with_summary_and_preview(self):
        r = self.c.json("POST", "/api/tensors/store",
                        {"key": "101", "name": "camera_frame", "dtype": "float32",
                         "shape": [2, 2], "data": [0.25, 0.25, 0.25, 0.5]})
        self.assertEqual(r["stored"], 1)
        self.assertEqual(r["first_seq"], r["last_seq"])
        self.assertRegex(r["wal"], r"^wal_\d{6}\.log$")
        self.assertGreaterEqual(r["offset"], 0)
        self.assertGreater(r["bytes_written"], 16)
        self.assertEqual(r["fsyncs"], 1)
        self.assertEqual(r["tensors"][0]["key"], "101")
        t = self.c.json("GET", "/api/tensors/load", key="101")
        self.assertEqual((t["name"], t["dtype"], t["shape"]), ("camera_frame", "f32", [2, 2]))
        self.assertEqual(t["values"], [0.25, 0.25, 0.25, 0.5])
        self.assertEqual(t["summary"], "camera_frame (2x2) -> 0.25, 0.25, 0.25, 0.5")
        self.assertEqual(t["seq"], r["first_seq"])
        p = self.c.json("GET", "/api/tensors/load", key="101", preview=2)
        self.assertEqual(p["values"], [0.25, 0.25])
        self.assertTrue(p["preview"])
        self.assertEqual(p["numel"], 4)
        # A name defaults to the key's text; nested data gives the shape.
        self.c.json("POST", "/api/tensors/store", {"key": "s:abc", "data": [[1, 2, 3], [4, 5, 6]],
                                                   "dtype": "int64"})
        t = self.c.json("GET", "/api/tensors/load", key="s:abc")
        self.assertEqual((t["name"], t["shape"], t["values"]), ("s:abc", [2, 3],
                                                                [1, 2, 3, 4, 5, 6]))
        # int64 in full (never through a double)
        self.c.json("POST", "/api/tensors/store", {"key": "big", "dtype": "int64",
                                                   "data": [9007199254740993, -2**63]})
        self.assertEqual(self.c.json("GET", "/api/tensors/load", key="big")["values"],
                         [9007199254740993, -2**63])

    def test_npy_round_trip_bit_exact(self):
        rng = np.random.default_rng(13)
        arrays = {
            "f32": rng.standard_normal((32, 32)).astype(np.float32),
            "f64": rng.standard_normal(17),
            "f16": rng.standard_normal((3, 5)).astype(np.float16),
            "i64": rng.integers(-2**63, 2**63 - 1, 9, dtype=np.int64),
            "u8": rng.integers(0, 255, (4, 4, 3), dtype=np.uint8),
            "bool": rng.integers(0, 2, 10).astype(bool),
            "c64": (rng.standard_normal(4) + 1j * rng.standard_normal(4)).astype(np.complex64),
            "scalar": np.float32(3.5).reshape(()),
        }
        arrays["f32"][0, 0] = np.nan
        arrays["f32"][0, 1] = -0.0
        for k, a in arrays.items():
            r = self.c.json("POST", "/api/tensors/store", npy_bytes(a),
                            ctype="application/x-npy", key="npy/" + k, name="n_" + k)
            self.assertEqual(r["tensors"][0]["bytes"], a.nbytes)
        for k, a in arrays.items():
            st, h, body = self.c.req("GET", "/api/tensors/load", key="npy/" + k, format="npy")
            self.assertEqual(st, 200)
            self.assertEqual(h["Content-Type"], "application/x-npy")
            back = np.load(io.BytesIO(body))
            self.assertEqual(back.dtype, a.dtype, k)
            self.assertEqual(back.shape, a.shape, k)
            self.assertEqual(back.tobytes(), a.tobytes(), k)
        # JSON values read back exactly as their dtype, whatever their magnitude
        wide = np.concatenate([
            rng.standard_normal(2000).astype(np.float32) * np.float32(10) ** rng.integers(
                -38, 38, 2000).astype(np.float32),
            np.array([1.4e-45, 1e-45 * 3, 3.4028235e38, 1e-5, 9.999999e-6, 1e9, 99999999,
                      123456789, 0.1, 1 / 3, 5e-324 * 0, -0.0, 2 ** 24 + 2, 1e-38, 1.17549435e-38],
                     np.float32)]).astype(np.float32)
        wide = wide[np.isfinite(wide)]
        for dt in (np.float32, np.float16, np.float64, np.int8, np.uint16, np.int32, np.uint32):
            a = wide.astype(dt) if dt != np.float16 else wide.clip(-6e4, 6e4).astype(dt)
            self.c.json("POST", "/api/tensors/store", npy_bytes(a), ctype="application/x-npy",
                        key="wide/" + np.dtype(dt).name)
            got = self.c.json("GET", "/api/tensors/load", key="wide/" + np.dtype(dt).name)
            back = np.array(got["values"], dtype=np.float64).astype(dt)
            self.assertEqual(back.tobytes(), a.tobytes(), np.dtype(dt).name)
        t = self.c.json("GET", "/api/tensors/load", key="npy/f32", preview=3)
        self.assertIsNone(t["values"][0])  # NaN is null in JSON
        self.assertEqual(t["values"][1], 0)

    def test_batch_is_one_durable_commit(self):
        batch = [{"key": f"b/{i}", "name": "batch", "data": [i, i + 1]} for i in range(20)]
        r = self.c.json("POST", "/api/tensors/store", batch)
        self.assertEqual(r["stored"], 20)
        self.assertEqual(r["fsyncs"], 1)
        self.assertEqual(r["last_seq"] - r["first_seq"], 19)
        self.assertEqual([t["seq"] for t in r["tensors"]],
                         list(range(r["first_seq"], r["last_seq"] + 1)))
        # .npy files one after another, one key= (and name=) each: one commit
        arrs = [np.arange(6, dtype=np.int16).reshape(2, 3), np.ones(4, np.float64),
                np.array(True)]
        body = b"".join(npy_bytes(a) for a in arrs)
        r = self.c.json("POST", "/api/tensors/store", body, ctype="application/x-npy",
                        key=["n/1", "n/2", "n/3"], name=["a", "b", "c"])
        self.assertEqual((r["stored"], r["fsyncs"]), (3, 1))
        self.assertEqual([t["name"] for t in r["tensors"]], ["a", "b", "c"])
        for k, a in zip(("n/1", "n/2", "n/3"), arrs):
            body2 = self.c.req("GET", "/api/tensors/load", key=k, format="npy")[2]
            self.assertEqual(np.load(io.BytesIO(body2)).tobytes(), a.tobytes())
        e = self.c.error
        e("POST", "/api/tensors/store", body, 400, "mismatch", ctype="application/x-npy",
          key=["o/1", "o/2"])  # a file left over
        e("POST", "/api/tensors/store", body, 400, "malformed", ctype="application/x-npy",
          key=["o/1", "o/2", "o/3", "o/4"])  # a key without a file
        e("POST", "/api/tensors/store", body + b"\0", 400, "mismatch",
          ctype="application/x-npy", key=["o/1", "o/2", "o/3"])
        e("POST", "/api/tensors/store", body[:-1], 400, "mismatch",
          ctype="application/x-npy", key=["o/1", "o/2", "o/3"])
        e("POST", "/api/tensors/store", body, 400, "bad_name", ctype="application/x-npy",
          key=["o/1", "o/2", "o/3"], name=["x"])
        self.c.error("GET", "/api/tensors/load", status=404, code="not_found", key="o/1")
        # One bad member refuses the whole batch; nothing of it is stored.
        bad = [{"key": "c/1", "data": [1]}, {"key": "c/2", "dtype": "uint8", "data": [300]}]
        self.c.error("POST", "/api/tensors/store", bad, 400, "mismatch")
        self.c.error("GET", "/api/tensors/load", status=404, code="not_found", key="c/1")

    def test_bad_input_is_refused_with_a_reason(self):
        e = self.c.error
        post = "/api/tensors/store"
        e("POST", post, "{not json", 400, "malformed", ctype="application/json")
        e("POST", post, "", 400, "malformed", ctype="application/json")
        e("POST", post, '{"key":"a","data":[1]} trailing', 400, "malformed")
        e("POST", post, "[]", 400, "malformed")
        e("POST", post, {"key": "a", "dtype": "float99", "data": [1]}, 400)
        e("POST", post, {"key": "a", "shape": [2, 2], "data": [1, 2, 3]}, 400, "mismatch")
        e("POST", post, {"key": "a", "data": [[1, 2], [3]]}, 400, "malformed")
        e("POST", post, {"key": "a", "dtype": "int8", "data": [1.5]}, 400, "mismatch")
        e("POST", post, {"key": "a", "dtype": "int8", "data": [128]}, 400, "mismatch")
        e("POST", post, {"name": "no key", "data": [1]}, 400, "bad_key")
        e("POST", post, {"key": "a"}, 400, "malformed")
        e("POST", post, {"key": "a", "data": [1], "colour": "red"}, 400, "unsupported")
        e("POST", post, '{"key":"a","key":"b","data":[1]}', 400, "malformed")
        e("POST", post, {"key": "a\\u0001", "data": [1]}, 400, "unsupported")
        e("POST", post, {"key": "a", "name": "tab\there", "data": [1]}, 400, "unsupported")
        e("POST", post, {"key": "x:zz", "data": [1]}, 400, "bad_key")
        e("POST", post, {"key": 5, "data": [1]}, 400, "malformed")
        # Limits, both sides: a 1024-byte key and name are fine, 1025 is not.
        self.c.json("POST", post, {"key": "k" * 1024, "name": "n" * 1024, "data": [1]})
        e("POST", post, {"key": "k" * 1025, "data": [1]}, 400, "key_too_long")
        e("POST", post, {"key": "k", "name": "n" * 1025, "data": [1]}, 400, "name_too_long")
        # The body bound: exactly at the limit it is decoded, a byte over it refused.
        body = npy_bytes(np.zeros(MAX_BODY // 4 - 32, np.float32))  # the header is 128 bytes
        self.assertEqual(len(body), MAX_BODY)
        self.c.json("POST", post, body, ctype="application/x-npy", key="fits")
        e("POST", post, body + b"\0", 413, "too_large", ctype="application/x-npy", key="big")
        e("POST", post, json.dumps({"key": "j", "data": [0] * (MAX_BODY // 2)}), 413,
          "too_large", ctype="application/json")
        # ... also when it comes chunked, without a Content-Length
        st, h, data = self.c.req("POST", post, iter([body[:1000], body[1000:], b"x"]),
                                 ctype="application/x-npy", key="chunked")
        self.assertEqual(st, 413)
        # npy: damaged, big-endian, missing key
        e("POST", post, npy_bytes(np.zeros(3, np.float32))[:-2], 400, "mismatch",
          ctype="application/x-npy", key="n")
        e("POST", post, b"\x93NUMPY\x01\x00garbage", 400, "malformed",
          ctype="application/x-npy", key="n")
        e("POST", post, npy_bytes(np.zeros(3, ">f4")), 400, "unsupported",
          ctype="application/x-npy", key="n")
        e("POST", post, npy_bytes(np.zeros(3, np.float32)), 400, "bad_key",
          ctype="application/x-npy")
        e("POST", post, npy_bytes(np.zeros(3, np.float32)), 400, "bad_key",
          ctype="application/x-npy", key="")
        # loads and listings
        e("GET", "/api/tensors/load", status=404, code="not_found", key="nothing")
        e("GET", "/api/tensors/load", status=400, code="bad_key")
        e("GET", "/api/tensors/load", status=400, code="bad_argument", key="fits", preview="-1")
        e("GET", "/api/tensors/load", status=400, code="bad_argument", key="fits",
          format="csv")
        e("GET", "/api/tensors/load?key=a%00b", status=400, code="bad_argument")
        e("GET", "/api/tensors", status=400, code="bad_argument", limit=0)
        e("GET", "/api/tensors", status=400, code="bad_argument", limit=1001)
        self.c.json("GET", "/api/tensors", limit=1000)
        # methods and paths
        e("GET", "/api/tensors/store", status=405, code="method")
        e("POST", "/api/tensors/load", status=405, code="method")
        e("GET", "/../../etc/passwd", status=404, code="not_found")
        e("GET", "/api/nothing", status=404, code="not_found")
        e("POST", "/api/snapshot", status=404, code="no_snapshots")
        # nothing of the above was stored, and the server still answers
        keys = [t["key"] for t in self.c.json("GET", "/api/tensors", limit=1000)["tensors"]]
        self.assertEqual(sorted(keys), sorted(["k" * 1024, "fits"]))

    def test_listing_is_paginated_in_key_order(self):
        keys = [f"p/{i:03d}" for i in range(25)] + ["q/1", "o/1"]
        self.c.json("POST", "/api/tensors/store", [{"key": k, "data": [1]} for k in keys])
        self.c.json("POST", "/api/store/flush")
        self.c.json("POST", "/api/tensors/store", {"key": "p/010", "data": [2]})  # newer
        got, after = [], None
        while True:
            args = {"prefix": "p/", "limit": 10}
            if after:
                args["after"] = after
            page = self.c.json("GET", "/api/tensors", **args)
            self.assertLessEqual(len(page["tensors"]), 10)
            got += page["tensors"]
            after = page["next_after"]
            if not after:
                break
        self.assertEqual([t["key"] for t in got], sorted(k for k in keys if k.startswith("p/")))
        p10 = [t for t in got if t["key"] == "p/010"][0]
        self.assertRegex(p10["file"], r"^wal_")  # the newest version, in the MemTable
        self.assertRegex(got[0]["file"], r"^sst_")
        all_ = self.c.json("GET", "/api/tensors", limit=1000)["tensors"]
        self.assertEqual([t["key"] for t in all_], sorted(keys))

    def test_pipeline_view_and_flush(self):
        s = self.c.json("GET", "/api/store")
        self.assertEqual(s["role"], "serve")
        self.assertEqual(s["memtable"]["max"], 1048576)
        self.assertEqual(s["ssts"], [])
        self.c.json("POST", "/api/tensors/store", {"key": "101", "data": list(range(1024))})
        s = self.c.json("GET", "/api/store")
        self.assertEqual(s["memtable"]["tensors"], 1)
        self.assertGreater(s["memtable"]["bytes"], 4096)
        wal = s["wal"]["name"]
        f = self.c.json("POST", "/api/store/flush")
        self.assertRegex(f["sst"], r"^sst_\d{6}\.sst$")
        self.assertEqual(f["tensors"], 1)
        s = self.c.json("GET", "/api/store")
        self.assertEqual([x["name"] for x in s["ssts"]], [f["sst"]])
        self.assertEqual((s["ssts"][0]["first_key"], s["ssts"][0]["last_key"]), ("101", "101"))
        self.assertEqual(s["memtable"]["tensors"], 0)
        self.assertNotEqual(s["wal"]["name"], wal)
        self.assertEqual(self.c.json("POST", "/api/store/flush"), {"sst": None, "tensors": 0})
        # filling past memtable_max (1 MiB) flushes by itself: the 5th of 240 KB
        flushed = []
        for i in range(6):
            r = self.c.json("POST", "/api/tensors/store", npy_bytes(np.zeros(60000, np.float32)),
                            ctype="application/x-npy", key=f"m/{i}")
            flushed.append(r["flushed"])
        self.assertEqual(flushed, [False] * 4 + [True, False])
        self.assertEqual(len(self.c.json("GET", "/api/store")["ssts"]), 2)

    @unittest.skipUnless(PROMTOOL, "promtool (Debian prometheus) missing")
    def test_metrics_pass_promtool(self):
        self.c.json("POST", "/api/tensors/store", {"key": "a", "data": [1]})
        st, h, body = self.c.req("GET", "/metrics")
        self.assertEqual(st, 200)
        self.assertTrue(h["Content-Type"].startswith("text/plain; version=0.0.4"))
        text = body.decode()
        self.assertIn("embeddb_store_tensors_saved_total 1\n", text)
        self.assertIn('embeddb_snapshots{state="uploaded"} 0\n', text)
        promtool_check(text)

    def test_static_files_are_the_embedded_page(self):
        for path, ctype in (("/", "text/html"), ("/index.html", "text/html"),
                            ("/app.js", "text/javascript"), ("/styles.css", "text/css")):
            st, h, body = self.c.req("GET", path, accept_gzip=True)
            self.assertEqual(st, 200, path)
            self.assertTrue(h["Content-Type"].startswith(ctype), path)
            self.assertEqual(h["Content-Encoding"], "gzip")
            name = "index.html" if path == "/" else path[1:]
            with open(os.path.join(ROOT, "web", name), "rb") as f:
                self.assertEqual(gzip.decompress(body), f.read())
            # the page is only sent compressed: a client that cannot take it is told why
            self.c.error("GET", path, status=406, code="gzip")
            self.c.error("GET", path, status=406, code="gzip", accept_gzip="gzip;q=0")
        for path in ("/web/index.html", "/index.html/", "/%2e%2e/CMakeLists.txt",
                     "/CMakeLists.txt"):
            self.assertEqual(self.c.req("GET", path, accept_gzip=True)[0], 404, path)


class ServeOptionsTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="embeddb-console-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_token_guards_writes(self):
        tf = os.path.join(self.tmp, "token")
        with open(tf, "w") as f:
            f.write("s3cret-token-0123456789\n")
        p, port = start_serve(os.path.join(self.tmp, "store"), "--token-file", tf)
        try:
            c = Client(port)
            body = {"key": "a", "data": [1]}
            c.error("POST", "/api/tensors/store", body, 401, "token")
            c.error("POST", "/api/tensors/store", body, 401, "token", token="wrong")
            c.error("POST", "/api/tensors/store", body, 401, "token",
                    token="s3cret-token-012345678")  # a prefix of it
            c.error("POST", "/api/tensors/store", body, 401, "token",
                    token="s3cret-token-01234567890")
            c.error("POST", "/api/store/flush", status=401, code="token")
            c.error("GET", "/api/tensors/load", status=404, key="a")  # reads are open
            c.json("POST", "/api/tensors/store", body, token="s3cret-token-0123456789")
            c.json("POST", "/api/store/flush", token="s3cret-token-0123456789")
            self.assertEqual(c.json("GET", "/api/tensors/load", key="a")["values"], [1])
        finally:
            stop(p)

    def test_refusals_at_start(self):
        emb = os.path.join(BUILD, "cli", "embeddb")
        store = os.path.join(self.tmp, "store")

        def run(*a):
            return subprocess.run([emb, "serve", store, *a], capture_output=True, text=True,
                                  timeout=30)

        r = run("--listen", "0.0.0.0:0")
        self.assertEqual(r.returncode, 1)
        self.assertIn("--token-file", r.stderr)
        r = run("--listen", "localhost:80")
        self.assertEqual(r.returncode, 1)
        self.assertIn("not ADDR:PORT", r.stderr)
        r = run("--listen", "127.0.0.1:65536")
        self.assertEqual(r.returncode, 1)
        short = os.path.join(self.tmp, "short")
        with open(short, "w") as f:
            f.write("abc\n")
        r = run("--token-file", short)
        self.assertEqual(r.returncode, 1)
        self.assertNotIn("abc", r.stderr)
        # The store has one writer: a second serve on it is refused.
        p, port = start_serve(store)
        try:
            r = run("--listen", "127.0.0.1:0")
            self.assertEqual(r.returncode, 2, r.stderr)
        finally:
            stop(p)

    def test_demo_panel_reads_the_python_demo(self):
        demo = os.path.join(self.tmp, "demo")
        r = subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "examples", "python_demo",
                                                             "dl_model_demo.py"),
                            "--out", demo, "--embeddb", os.path.join(BUILD, "cli", "embeddb")],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        p, port = start_serve(os.path.join(demo, "store"))
        try:
            c = Client(port)
            d = c.json("GET", "/api/demo")
            self.assertEqual(d["dir"], demo)
            files = {f["name"]: f for f in d["files"]}
            base = files["weights_baseline.json"]
            self.assertTrue(base["found"])
            self.assertEqual(base["bytes"], os.path.getsize(os.path.join(
                demo, "weights_baseline.json")))
            pay = files["tensor_payload.txt"]
            self.assertTrue(pay["found"])
            self.assertEqual([t["name"] for t in pay["tensors"]],
                             ["camera_frame", "dense_w", "dense_b"])
            self.assertEqual(pay["values"], 32 * 32 + 8 * 4 + 4)
            self.assertTrue(d["store"]["found"])
            self.assertGreater(d["store"]["bytes"], 0)
            # the demo's tensors are in the store being served
            t = c.json("GET", "/api/tensors/load", key="101", preview=4)
            self.assertEqual(t["name"], "camera_frame")
            os.unlink(os.path.join(demo, "weights_baseline.json"))
            d = c.json("GET", "/api/demo")
            self.assertFalse(d["files"][0]["found"])
            self.assertIn("dl_model_demo.py --out " + demo, d["regenerate"])
        finally:
            stop(p)


class AgentConsoleTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="embeddb-console-agent-")
        self.broker = tam.Broker(self.tmp)
        self.broker.start()
        self.port = tam.free_port()
        self.token = "agent-token-0123456789"
        tf = os.path.join(self.tmp, "token")
        with open(tf, "w") as f:
            f.write(self.token + "\n")
        self.agent = tam.Agent(self.tmp, self.broker.port,
                               f"http:\n  listen: 127.0.0.1:{self.port}\n  token_file: {tf}\n")

    def tearDown(self):
        if self.agent.proc and self.agent.proc.poll() is None:
            self.agent.proc.kill()
        self.broker.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_http_and_mqtt_side_by_side(self):
        self.agent.start()
        c = Client(self.port, token=self.token)
        frame = np.arange(32 * 32, dtype=np.float32).reshape(32, 32) / 1024
        for i in range(5):
            tam.publish.single("cam/0/npy", npy_bytes(frame + i), qos=1, hostname="127.0.0.1",
                               port=self.broker.port)
        tam.publish.single("cam/0/npy", b"not npy", qos=1, hostname="127.0.0.1",
                           port=self.broker.port)
        r = c.json("POST", "/api/tensors/store", npy_bytes(frame), ctype="application/x-npy",
                   key="http/frame", name="camera_frame")
        self.assertEqual(r["stored"], 1)
        tam.wait_for(lambda: c.json("GET", "/api/store")["agent"]["stored"] == 5,
                     what="5 MQTT tensors stored")
        s = c.json("GET", "/api/store")
        a = s["agent"]
        self.assertEqual(s["role"], "agent")
        self.assertEqual((a["device_id"], a["received"], a["http_stored"]), ("itest", 6, 1))
        self.assertTrue(a["connected"])
        self.assertEqual(a["rejected"]["malformed"], 1)
        keys = [t["key"] for t in c.json("GET", "/api/tensors", limit=1000)["tensors"]]
        self.assertIn("http/frame", keys)
        mqtt_keys = [k for k in keys if k.startswith("cam/0/npy#")]
        self.assertEqual(len(mqtt_keys), 5)
        st, h, body = c.req("GET", "/api/tensors/load", key=mqtt_keys[-1], format="npy")
        self.assertEqual(np.load(io.BytesIO(body)).tobytes(), (frame + 4).tobytes())
        st, h, body = c.req("GET", "/api/tensors/load", key="http/frame", format="npy")
        self.assertEqual(np.load(io.BytesIO(body)).tobytes(), frame.tobytes())
        # The agent's keys are new by construction: an HTTP write of one is refused.
        c.error("POST", "/api/tensors/store", {"key": "http/frame", "data": [1]}, 409, "exists")
        # tokens
        c.error("POST", "/api/snapshot", status=401, code="token", token="")
        c.error("POST", "/api/snapshot", status=401, code="token", token="nope")
        snap = c.json("POST", "/api/snapshot")["snapshot"]
        self.assertTrue(snap.startswith("itest-"))
        tam.wait_for(lambda: any(x["name"] == snap and x["tensors"] == 6
                                 for x in c.json("GET", "/api/store")["snapshots"]),
                     what="the snapshot in the pipeline view")
        c.error("POST", "/api/snapshot", status=409, code="nothing_stored")
        st, h, body = c.req("GET", "/metrics")
        text = body.decode()
        self.assertIn("embeddb_agent_received_total 6\n", text)
        self.assertIn('embeddb_agent_rejected_total{reason="malformed"} 1\n', text)
        self.assertIn("embeddb_agent_http_stored_total 1\n", text)
        if PROMTOOL:
            promtool_check(text)
        self.assertEqual(self.agent.stop(), 0)

    def test_check_config_refuses_an_open_listen_without_token(self):
        self.agent.write_config(self.broker.port, "http:\n  listen: 0.0.0.0:8080\n")
        r = subprocess.run([os.path.join(BUILD, "agent", "embeddb-agent"), "--check-config",
                            "-c", self.agent.conf], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 1)
        self.assertIn("http.listen", r.stderr)
        self.assertIn("token_file", r.stderr)
        self.agent.write_config(self.broker.port, "http:\n  listen: 127.0.0.1:99999\n")
        r = subprocess.run([os.path.join(BUILD, "agent", "embeddb-agent"), "--check-config",
                            "-c", self.agent.conf], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 1)
        self.assertIn("http.listen", r.stderr)
        self.agent.write_config(self.broker.port, "http: {}\n")
        r = subprocess.run([os.path.join(BUILD, "agent", "embeddb-agent"), "--check-config",
                            "-c", self.agent.conf], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)


if __name__ == "__main__":
    BUILD, ROOT = sys.argv[1], sys.argv[2]
    tam.BUILD, tam.ROOT = BUILD, ROOT
    del sys.argv[1:3]
    unittest.main(verbosity=2)
