#!/usr/bin/python3
"""The fleet example (examples/fleet/gather.py) against the project's S3
test peer, s3rver (npm, tests/node), on a free loopback port.

1. Objects of three devices written by the C engine and snapshot library
   (gen_py_store), uploaded as .tar, .tar.zst and .tar.gz, plus a damaged
   and a truncated object: gather verifies each, passes over the two bad
   ones naming them, and writes one Zarr store per topic across devices,
   ordered by time, bit-exact with the objects read directly.
2. The property test end to end: random tensors published over MQTT to
   embeddb-agent (mosquitto), sealed into a snapshot and uploaded by the
   agent in S3 mode (SigV4, TLS) to s3rver behind the signature-checking
   front of tests/integration, then gathered: each topic's Zarr rows are
   exactly the payloads published, in publish order.

Usage: test_py_fleet.py GEN_PY_STORE BUILD_DIR REPO_ROOT
"""
import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

import numpy as np

GEN = BUILD = ROOT = None
embeddb = None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(cond, timeout=30, what="a condition"):
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError("timed out waiting for %s" % what)
        time.sleep(0.05)


class S3rver:
    """s3rver on plain HTTP with bucket `snaps`."""

    def __init__(self, tmp):
        exe = os.path.join(ROOT, "tests", "node", "node_modules", ".bin", "s3rver")
        if not os.path.exists(exe):
            raise AssertionError("s3rver missing: run sh .ci/deps (npm ci in tests/node)")
        self.port = free_port()
        self.proc = subprocess.Popen([exe, "-d", os.path.join(tmp, "s3data"), "-a", "127.0.0.1",
                                      "-p", str(self.port), "--silent", "--configure-bucket",
                                      "snaps", "--no-vhost-buckets"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)

        def up():
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return True
            except OSError:
                return False
        wait_for(up, what="s3rver to listen")
        self.endpoint = "http://127.0.0.1:%d" % self.port

    def client(self):
        import botocore.session
        from botocore.config import Config
        return botocore.session.get_session().create_client(
            "s3", region_name="us-east-1", endpoint_url=self.endpoint,
            aws_access_key_id="S3RVER", aws_secret_access_key="S3RVER",
            config=Config(s3={"addressing_style": "path"}))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


def gather(*args):
    r = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "fleet", "gather.py"),
                        *map(str, args)], capture_output=True, text=True, timeout=300)
    return r.returncode, r.stdout, r.stderr


def zarr_topic(path):
    import zarr
    g = zarr.open_group(path, mode="r")
    return {k: g[k][...] for k in ("data", "timestamp_ns", "device", "seq", "key")}


class GatherFromS3rver(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="pyfleet-")
        self.s3 = S3rver(self.tmp)
        self.secret = os.path.join(self.tmp, "secret")
        with open(self.secret, "w") as f:
            f.write("S3RVER\n")

    def tearDown(self):
        self.s3.stop()
        shutil.rmtree(self.tmp)

    def make(self, device, seed):
        out = os.path.join(self.tmp, device)
        os.mkdir(out)
        subprocess.run([GEN, out, str(seed), "150", device], check=True, timeout=120)
        return glob.glob(os.path.join(out, "*.tar"))[0]

    def test_gathers_verified_objects_into_one_zarr_per_topic(self):
        c = self.s3.client()
        tars = {}
        for i, (dev, enc) in enumerate((("board-1", ""), ("board-2", ".zst"), ("board-3", ".gz"))):
            tar = self.make(dev, 11 + i)
            tars[dev] = tar
            with open(tar, "rb") as f:
                data = f.read()
            if enc == ".zst":
                data = subprocess.run(["zstd", "-q", "-c"], input=data, capture_output=True,
                                      check=True).stdout
            elif enc == ".gz":
                data = subprocess.run(["gzip", "-c"], input=data, capture_output=True,
                                      check=True).stdout
            c.put_object(Bucket="snaps", Key="fleet/%s/%s%s" % (dev, os.path.basename(tar), enc),
                         Body=data)
        with open(tars["board-1"], "rb") as f:
            raw = bytearray(f.read())
        raw[512 + 200] ^= 0x10  # a data byte of the first SST: its SHA-256 and a CRC fail
        c.put_object(Bucket="snaps", Key="fleet/board-9/damaged.tar", Body=bytes(raw))
        zst = subprocess.run(["zstd", "-q", "-c"], input=bytes(raw), capture_output=True).stdout
        c.put_object(Bucket="snaps", Key="fleet/board-8/cut.tar.zst", Body=zst[:len(zst) // 2])
        c.put_object(Bucket="snaps", Key="fleet/board-1/notes.txt", Body=b"not an object")
        c.put_object(Bucket="snaps", Key="other/board-7/x.tar", Body=bytes(raw))

        out = os.path.join(self.tmp, "zarr")
        rc, so, se = gather("--endpoint", self.s3.endpoint, "--bucket", "snaps", "--prefix",
                            "fleet/", "--out", out, "--access-key", "S3RVER", "--secret-file",
                            self.secret)
        self.assertEqual(rc, 1, se)
        self.assertIn("fleet/board-9/damaged.tar: passed over", se)
        self.assertIn("fleet/board-8/cut.tar.zst: passed over", se)
        self.assertNotIn("board-7", se + so)
        self.assertIn("objects: 3 verified, 2 passed over", so)
        self.assertIn("topic 'topic0': dtypes or shapes differ", se)

        # What the three objects hold, read directly.
        want = {}
        for dev, tar in tars.items():
            with embeddb.open(tar) as r:
                for t in r.tensors(topic=["topic1", "topic2"]):
                    want.setdefault(t.name, []).append((t.timestamp_ns, dev, t.seq, t.key,
                                                        t.array.copy()))
        # Every other topic's shapes differ across tensors or devices.
        self.assertEqual(sorted(os.listdir(out)), ["topic1.zarr", "topic2.zarr"])
        for topic, rows in want.items():
            rows.sort(key=lambda x: x[:3])
            z = zarr_topic(os.path.join(out, topic + ".zarr"))
            self.assertEqual(len(rows), 150)  # 50 per device
            self.assertEqual(z["data"].shape[0], len(rows))
            self.assertEqual(list(z["timestamp_ns"]), [x[0] for x in rows])
            self.assertEqual(list(z["timestamp_ns"]), sorted(z["timestamp_ns"]))
            self.assertEqual([d.decode() for d in z["device"]], [x[1] for x in rows])
            self.assertEqual(list(z["seq"]), [x[2] for x in rows])
            self.assertEqual([embeddb.parse_key(k.decode()) for k in z["key"]],
                             [x[3] for x in rows])
            for i, x in enumerate(rows):
                self.assertEqual(z["data"][i].tobytes(), x[4].tobytes())
            self.assertEqual(len(set(z["device"])), 3)  # the devices interleave in time

        # Only good objects under the prefix: exit 0.
        rc, so, se = gather("--endpoint", self.s3.endpoint, "--bucket", "snaps", "--prefix",
                            "fleet/board-2/", "--out", os.path.join(self.tmp, "z2"),
                            "--access-key", "S3RVER", "--secret-file", self.secret)
        self.assertEqual(rc, 0, se)
        self.assertIn("objects: 1 verified, 0 passed over", so)

    def test_listing_failure_is_exit_2(self):
        rc, so, se = gather("--endpoint", self.s3.endpoint, "--bucket", "no-such-bucket",
                            "--out", os.path.join(self.tmp, "z"), "--access-key", "S3RVER",
                            "--secret-file", self.secret)
        self.assertEqual(rc, 2)
        self.assertIn("listing s3://no-such-bucket/ failed", se)


def agent_to_fleet_test():
    """The property test, built on tests/integration's upload harness (its
    broker, test CA, agent and signature-checking S3 front)."""
    sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
    import test_snapshot_upload as tsu
    tsu.BUILD, tsu.ROOT = BUILD, ROOT

    class AgentToFleet(tsu.UploadTest):
        def test_random_tensors_over_mqtt_arrive_in_the_fleet_zarr(self):
            import paho.mqtt.publish as publish
            port = self.s3rver()
            self.start_agent(upload=self.s3_conf(port))
            rnd = np.random.default_rng(16)
            sent = {"s/a": [], "s/b": []}
            msgs = []
            for i in range(90):
                topic = ("s/a", "s/b")[int(rnd.integers(2))]
                v = rnd.standard_normal(256).astype(np.float32)
                v[int(rnd.integers(256))] = [np.nan, np.inf, -0.0][i % 3]
                sent[topic].append(v.tobytes())
                msgs.append({"topic": topic, "qos": 1, "payload": v.tobytes()})
            publish.multiple(msgs, hostname="127.0.0.1", port=self.broker.port)
            tsu.wait_for(lambda: self.agent.stat("stored") >= 90, what="the tensors stored")
            self.agent.seal()
            self.wait_state("uploaded")
            secret = os.path.join(self.tmp, "s3.secret")
            out = os.path.join(self.tmp, "fleet-zarr")
            rc, so, se = gather("--endpoint", "https://localhost:%d" % port, "--bucket", "snaps",
                                "--prefix", "fleet/", "--out", out, "--ca", self.pki.ca,
                                "--access-key", "S3RVER", "--secret-file", secret)
            self.assertEqual(rc, 0, se)
            self.assertIn("objects: 1 verified, 0 passed over", so)
            for topic, rows in sent.items():
                z = zarr_topic(os.path.join(out, topic.replace("/", "%2F") + ".zarr"))
                self.assertEqual(z["data"].dtype, np.float32)
                self.assertEqual([r.tobytes() for r in z["data"]], rows)  # publish order
                self.assertEqual(set(z["device"]), {tsu.DEVICE.encode()})

    for name in dir(tsu.UploadTest):  # the harness only, not its tests
        if name.startswith("test"):
            setattr(AgentToFleet, name, None)
    return AgentToFleet


if __name__ == "__main__":
    GEN = os.path.abspath(sys.argv.pop(1))
    BUILD = os.path.abspath(sys.argv.pop(1))
    ROOT = os.path.abspath(sys.argv.pop(1))
    sys.path.insert(0, os.path.join(ROOT, "python"))
    import embeddb  # noqa: E402,F811
    AgentToFleet = agent_to_fleet_test()
    unittest.main(verbosity=2)
