#!/usr/bin/python3
"""embeddb.dask on a real distributed.LocalCluster with two worker
processes, against snapshot objects in s3rver (npm, tests/node) and on
disk: the metadata dataframe and each topic's dask array must equal what
the plain reader gives object by object, in (timestamp, device, seq)
order; a damaged object fails its task with CorruptError naming it; a topic
whose shapes differ is refused.

Usage: test_py_dask.py GEN_PY_STORE REPO_ROOT
"""
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import unittest


GEN = ROOT = None


class DaskOnLocalCluster(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        from distributed import Client, LocalCluster
        from test_py_fleet import S3rver
        cls.tmp = tempfile.mkdtemp(prefix="pydask-")
        cls.s3 = S3rver(cls.tmp)
        c = cls.s3.client()
        cls.paths = []
        for i, dev in enumerate(("cam-1", "cam-2", "cam-3")):
            out = os.path.join(cls.tmp, dev)
            os.mkdir(out)
            subprocess.run([GEN, out, str(21 + i), "150", dev], check=True, timeout=120)
            tar = glob.glob(os.path.join(out, "*.tar"))[0]
            cls.paths.append(tar)
            with open(tar, "rb") as f:
                data = f.read()
            if i == 1:
                data = subprocess.run(["zstd", "-q", "-c"], input=data, capture_output=True,
                                      check=True).stdout
            c.put_object(Bucket="snaps", Key="fleet/%s/%s%s" % (dev, os.path.basename(tar),
                                                               ".zst" if i == 1 else ""),
                         Body=data)
        cls.kw = {"endpoint_url": cls.s3.endpoint, "region_name": "us-east-1",
                  "aws_access_key_id": "S3RVER", "aws_secret_access_key": "S3RVER"}
        # Workers are processes: they find the package through PYTHONPATH.
        os.environ["PYTHONPATH"] = os.path.join(ROOT, "python")
        cls.cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                   dashboard_address=None)
        cls.client = Client(cls.cluster)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.cluster.close()
        cls.s3.stop()
        shutil.rmtree(cls.tmp)

    def expected(self, topic):
        rows = []
        for p in self.paths:
            with embeddb.open(p) as r:
                dev = r.manifest_json["device_id"]
                rows += [(t.timestamp_ns, dev, t.seq, t.key, t.array.copy())
                         for t in r.tensors(topic=topic)]
        return sorted(rows, key=lambda x: x[:3])

    def test_s3_objects_metadata_and_topic_arrays(self):
        objs = edd.s3_objects("snaps", "fleet/", **self.kw)
        self.assertEqual([o.key.split("/")[1] for o in objs], ["cam-1", "cam-2", "cam-3"])
        fleet = edd.read(objs, verify=True)
        df = fleet.metadata().compute()
        self.assertEqual(fleet.metadata().npartitions, 3)
        n = 0
        for p, o in zip(self.paths, objs):
            with embeddb.open(p) as r:
                part = df[df["object"] == str(o)]
                self.assertEqual(list(part["key"]), [embeddb.key_text(k) for k in r.keys()])
                self.assertEqual(list(part["timestamp_ns"]),
                                 [t.timestamp_ns for t in r.tensors(load=False)])
                self.assertEqual(set(part["device"]), {r.manifest_json["device_id"]})
                n += len(r)
        self.assertEqual(len(df), n)
        # The work ran on the cluster's two workers.
        self.assertEqual(len(self.client.scheduler_info()["workers"]), 2)
        for topic in ("topic1", "topic2"):
            want = self.expected(topic)
            ta = fleet.topic(topic)
            data = ta.data.compute()
            self.assertEqual(data.shape[0], len(want))
            self.assertEqual(list(ta.timestamp_ns), [x[0] for x in want])
            self.assertEqual([d.decode() for d in ta.device], [x[1] for x in want])
            self.assertEqual(list(ta.seq), [x[2] for x in want])
            self.assertEqual([embeddb.parse_key(k.decode()) for k in ta.key],
                             [x[3] for x in want])
            for i, x in enumerate(want):
                self.assertEqual(data[i].tobytes(), x[4].tobytes())
            # Slicing stays lazy until computed, and agrees.
            self.assertEqual(ta.data[3::7].compute().tobytes(), data[3::7].tobytes())
        with self.assertRaisesRegex(ValueError, "dtypes or shapes differ"):
            fleet.topic("topic0")

    def test_paths_and_a_damaged_object(self):
        fleet = edd.read(self.paths)
        self.assertEqual(fleet.topic("topic2").data.shape[0], 150)
        bad = os.path.join(self.tmp, "bad.tar")
        with open(self.paths[0], "rb") as f:
            raw = bytearray(f.read())
        raw[512 + 300] ^= 0x20
        with open(bad, "wb") as f:
            f.write(raw)
        with self.assertRaisesRegex(embeddb.CorruptError, "bad.tar") as cm:
            edd.read([self.paths[1], bad], verify=True).metadata().compute()
        self.assertIn("SHA-256", str(cm.exception))
        self.assertEqual(len(edd.read(self.paths[1:]).metadata().compute()) > 0, True)


if __name__ == "__main__":
    GEN = os.path.abspath(sys.argv.pop(1))
    ROOT = os.path.abspath(sys.argv.pop(1))
    sys.path.insert(0, os.path.join(ROOT, "python"))
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import test_py_fleet
    test_py_fleet.ROOT = ROOT
    import embeddb
    import embeddb.dask as edd
    unittest.main(verbosity=2)
