#!/usr/bin/python3
"""The durable watermark and de-duplication across kills (agent/CONTROL.md,
"Durable watermark"): two examples/durable_publisher.py publishers stream
tensors through a real mosquitto (persistence on) while the agent is
SIGKILLed again and again at moments chosen by a random amount of progress,
some kills right after a seal (SIGUSR1) moved the de-duplication records
into a snapshot. At the end every published tensor must be on flash exactly
once: the store and its snapshots are read back with the Python reader and
the tensors counted per message.

Also: untagged messages are stored as before (twice when sent twice), a
message tagged wrongly is stored and counted, and the watermark document
names the topics with their newest durable key.

Usage: test_durable.py BUILD_DIR REPO_ROOT [--kills N] (CI: 10; the issue's
100-kill run is `--kills 100`, about 1 minute).
"""
import collections
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
import unittest

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_agent_mqtt as base  # noqa: E402
from test_agent_mqtt import Agent, Broker, npy_bytes, wait_for  # noqa: E402
from test_control import Watcher  # noqa: E402

KILLS = 10
SUBS = """    - {topic: "dur/+/npy", qos: 1, format: npy}
"""
CONTROL = """control:
  status_interval: 0s
  watermark_interval: 100ms
"""


def stored_tensors(store):
    """Every tensor under dur/ in the store and its snapshots: (name, value)."""
    import embeddb
    dirs = [store]
    root = os.path.join(store, "snapshots")
    if os.path.isdir(root):
        for e in sorted(os.listdir(root)):
            if e.startswith(".seal-") and e != ".seal-new" or not e.startswith("."):
                dirs.append(os.path.join(root, e))
    out = []
    for d in dirs:
        with embeddb.open(d) as r:
            for t in r.tensors(prefix=b"dur/"):
                out.append((t.name, int(np.asarray(t.array).ravel()[0])))
    return out


class DurableTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="embeddb-durable-")
        self.broker = Broker(self.tmp)
        self.broker.start()
        self.agent = Agent(self.tmp, self.broker.port)
        self.agent.write_config(self.broker.port, CONTROL, subs=SUBS, mqtt_extra="  protocol: 5")
        self.watchers = []

    def tearDown(self):
        for w in self.watchers:
            w.close()
        if self.agent.proc and self.agent.proc.poll() is None:
            self.kill()
        self.broker.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def kill(self):
        self.agent.proc.kill()
        self.agent.proc.wait()
        self.agent.logf.close()
        self.agent.notify.close()

    def test_every_tensor_stored_exactly_once_across_kills(self):
        from durable_publisher import DurablePublisher
        rng = random.Random(int(os.environ.get("EMBEDDB_SEED", "15")))
        self.agent.start()
        pubs = [DurablePublisher("127.0.0.1", self.broker.port, "itest", publisher_id=f"p{i}",
                                 max_unconfirmed=256, resend_after=1.0) for i in range(2)]
        sent = [0, 0]
        stop = threading.Event()

        def run(i):
            while not stop.is_set():
                if pubs[i].publish(f"dur/{i}/npy", npy_bytes(np.array([sent[i]], np.int64)),
                                   timeout=0.5):
                    sent[i] += 1

        threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        try:
            seals = 0
            for k in range(KILLS):
                start = sum(p.through for p in pubs)
                want = start + rng.randint(1, 200)
                wait_for(lambda: sum(p.through for p in pubs) >= want, timeout=60,
                         what=f"progress before kill {k + 1}")
                if k % 3 == 2:  # a seal: the records leave with the snapshot
                    n = self.snapshots()
                    self.agent.proc.send_signal(signal.SIGUSR1)
                    wait_for(lambda: self.snapshots() > n, what="a seal")
                    seals += 1
                self.kill()
                self.agent.start()
            stop.set()
            for t in threads:
                t.join()
            for p in pubs:
                self.assertTrue(p.flush(timeout=60), f"{p.id}: {len(p.pending)} never durable")
        finally:
            stop.set()
            for p in pubs:
                p.close()
        self.assertEqual(self.agent.stop(), 0)
        got = stored_tensors(self.agent.store)
        for i in range(2):
            counts = collections.Counter(v for name, v in got if name == f"dur/{i}/npy")
            lost = [v for v in range(sent[i]) if v not in counts]
            twice = {v: c for v, c in counts.items() if c > 1}
            self.assertEqual(lost, [], f"publisher {i}: {len(lost)} of {sent[i]} lost")
            self.assertEqual(twice, {}, f"publisher {i}: stored more than once")
            self.assertEqual(len(counts), sent[i])
        with open(self.agent.log) as f:
            log = f.read()
        self.assertNotIn("reading the de-duplication table", log)  # never failed
        print(f"\n{KILLS} kills ({seals} after a seal): {sent} tensors each stored once; "
              f"republished {[p.resent for p in pubs]}", file=sys.stderr)

    def snapshots(self):
        root = os.path.join(self.agent.store, "snapshots")
        return len([e for e in os.listdir(root) if not e.startswith(".")]) \
            if os.path.isdir(root) else 0

    def test_untagged_as_before_bad_tags_counted_watermark_names_topics(self):
        import paho.mqtt.client as mqtt
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties
        w = Watcher(self.broker.port, "embeddb/itest/durable", mqtt.MQTTv5)
        self.watchers.append(w)
        self.agent.start()

        c = mqtt.Client(protocol=mqtt.MQTTv5)
        c.connect("127.0.0.1", self.broker.port)
        c.loop_start()

        def pub(value, tags):
            props = Properties(PacketTypes.PUBLISH)
            if tags:
                props.UserProperty = tags
            c.publish("dur/x/npy", npy_bytes(np.array([value], np.int64)), qos=1,
                      properties=props).wait_for_publish(10)

        pub(1, None)
        pub(1, None)                                        # untagged: stored twice
        pub(2, [("embeddb-pub", "q"), ("embeddb-seq", "1")])
        pub(2, [("embeddb-pub", "q"), ("embeddb-seq", "1")])  # a duplicate: skipped
        pub(3, [("embeddb-pub", "q"), ("embeddb-seq", "0")])  # bad seq: stored, counted
        pub(4, [("embeddb-pub", "q")])                        # seq missing: likewise
        pub(5, [("embeddb-pub", "q"), ("embeddb-seq", "2"), ("embeddb-time", "77")])
        wait_for(lambda: w.last() and w.last()["publishers"] == [
            {"id": "q", "through": 2, "above": 0}] and w.last()["untracked"] == 2 and
            w.last()["duplicates"] == 1, what="the watermark after 7 messages")
        c.loop_stop()
        c.disconnect()
        d = w.last()
        self.assertEqual(set(d), {"v", "device_id", "time_ns", "topics", "publishers",
                                  "duplicates", "untracked", "evicted", "given_up"})
        self.assertEqual(d["device_id"], "itest")
        self.assertEqual(len(d["topics"]), 1)
        self.assertEqual(d["topics"][0]["filter"], "dur/+/npy")
        self.assertEqual(d["topics"][0]["pub_time_ns"], 77)
        self.assertEqual(self.agent.stop(), 0)
        got = sorted(v for _, v in stored_tensors(self.agent.store))
        self.assertEqual(got, [1, 1, 2, 3, 4, 5])
        # the key in the watermark is the newest tensor's arrival counter
        import embeddb
        with embeddb.open(self.agent.store) as r:
            newest = r.keys(b"dur/x/npy#")[-1]
        self.assertEqual(int(newest.split(b"#")[1]), d["topics"][0]["key"])


if __name__ == "__main__":
    base.BUILD = os.path.abspath(sys.argv.pop(1))
    base.ROOT = os.path.abspath(sys.argv.pop(1))
    if "--kills" in sys.argv:
        i = sys.argv.index("--kills")
        KILLS = int(sys.argv[i + 1])
        del sys.argv[i:i + 2]
    sys.path.insert(0, os.path.join(base.ROOT, "examples"))
    sys.path.insert(0, os.path.join(base.ROOT, "python"))
    unittest.main(verbosity=2)
