#!/usr/bin/python3
"""The durable watermark and de-duplication across kills (agent/CONTROL.md,
"Durable watermark"): two examples/durable_publisher.py publishers stream
tensors through a real mosquitto (persistence on) while the agent is
SIGKILLed again and again at moments chosen by a random amount of progress,
some kills right after a seal (SIGUSR1) moved the de-duplication records
into a snapshot. At the end every published tensor must be on flash exactly
once: the store and its snapshots are read back with the Python reader and
the tensors counted per message.

The same under snapshot.mode: on_trigger, the ring turned many times: the
agent killed right after a seal that made the ring drop its oldest
snapshot; every snapshot the ring ever held is kept (hard links) to check
that every message was stored exactly once, and the ring keeps none twice.

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
    dirs = [store]
    root = os.path.join(store, "snapshots")
    if os.path.isdir(root):
        for e in sorted(os.listdir(root)):
            if e.startswith(".seal-") and e != ".seal-new" or not e.startswith("."):
                dirs.append(os.path.join(root, e))
    return stored_tensors_in(dirs)


def stored_tensors_in(dirs):
    """Every tensor under dur/ in the store directories dirs: (name, value)."""
    import embeddb
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

    def streamed_with_kills(self, ids, before_kill, beside=None):
        """Streams from two durable publishers (ids) while the agent is
        SIGKILLed KILLS times, each time after a random amount of progress
        and before_kill(k); beside(pubs, stop), when given, runs in a thread
        meanwhile. Returns how many values each sent and the publishers,
        once all values are durable and the agent has stopped."""
        from durable_publisher import DurablePublisher
        rng = random.Random(int(os.environ.get("EMBEDDB_SEED", "15")))
        self.agent.start()
        pubs = [DurablePublisher("127.0.0.1", self.broker.port, "itest", publisher_id=ids[i],
                                 max_unconfirmed=256, resend_after=1.0) for i in range(2)]
        sent = [0, 0]
        stop = threading.Event()

        def run(i):
            while not stop.is_set():
                if pubs[i].publish(f"dur/{i}/npy", npy_bytes(np.array([sent[i]], np.int64)),
                                   timeout=0.5):
                    sent[i] += 1

        threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
        if beside:
            threads.append(threading.Thread(target=beside, args=(pubs, stop)))
        for t in threads:
            t.start()
        try:
            for k in range(KILLS):
                start = sum(p.through for p in pubs)
                want = start + rng.randint(1, 200)
                wait_for(lambda: sum(p.through for p in pubs) >= want, timeout=60,
                         what=f"progress before kill {k + 1}")
                before_kill(k)
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
        return sent, pubs

    def test_every_tensor_stored_exactly_once_across_kills(self):
        seals = []

        def before_kill(k):
            if k % 3 == 2:  # a seal: the records leave with the snapshot
                n = self.snapshots()
                self.agent.proc.send_signal(signal.SIGUSR1)
                wait_for(lambda: self.snapshots() > n, what="a seal")
                seals.append(k)
        sent, pubs = self.streamed_with_kills(["p0", "p1"], before_kill)
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
        print(f"\n{KILLS} kills ({len(seals)} after a seal): {sent} tensors each stored once; "
              f"republished {[p.resent for p in pubs]}", file=sys.stderr)

    def test_ring_expiry_with_kills_stores_each_tensor_once(self):
        """snapshot.mode: on_trigger with a small ring (768 KiB) turned
        many times by the durable stream and an untagged filler, while the
        two durable publishers stream and the agent is SIGKILLed right after
        a seal made the ring drop its oldest snapshot (the newest
        de-duplication record then sits in the newest snapshot until the
        main loop saves it again; a kill there recovers it from that
        snapshot). What the ring drops is gone from flash, so a watcher
        keeps hard links of every snapshot as it appears (sealed snapshots
        never change) and checks it missed none (their seq ranges join up):
        over all of them and the live store, every value of each publisher
        is stored exactly once -- a table recovered from an older record
        would store a re-sent value twice, a value recorded and never
        stored would be missing -- and what the ring keeps holds no
        value twice."""
        import paho.mqtt.publish as publish
        self.agent.write_config(self.broker.port, CONTROL + """snapshot:
  mode: on_trigger
  max_bytes: 128KiB
  interval: 1h
""", subs=SUBS + '    - {topic: "fill/raw", qos: 1, format: raw, dtype: float64, shape: [512]}\n',
            mqtt_extra="  protocol: 5")
        with open(self.agent.conf) as f:
            conf = f.read().replace("  memtable_max: 1MiB\n",
                                    "  memtable_max: 64KiB\n  max_disk: 768KiB\n")
            conf = conf.replace("  max_tensors: 16\n", "  max_tensors: 16\n  max_bytes: 64KiB\n")
        with open(self.agent.conf, "w") as f:
            f.write(conf)
        root, shadow = os.path.join(self.agent.store, "snapshots"), os.path.join(self.tmp, "all")
        os.mkdir(shadow)
        watched = threading.Event()
        self.addCleanup(watched.set)

        def fill(pubs, stop):
            """64 KiB of filler for every 10 durable messages through: the
            ring turns at the pace of the durable stream, not the machine's."""
            blob, done = bytes(4096), 0
            while not stop.is_set():
                through = sum(p.through for p in pubs)
                if through < done + 10:
                    stop.wait(0.01)
                    continue
                done = through
                publish.multiple([{"topic": "fill/raw", "qos": 1, "payload": blob}] * 16,
                                 hostname="127.0.0.1", port=self.broker.port)

        def copy_new():
            for e in os.listdir(root) if os.path.isdir(root) else []:
                dst = os.path.join(shadow, e)
                if e.startswith(".") or os.path.exists(dst):
                    continue
                try:
                    shutil.copytree(os.path.join(root, e), dst + ".tmp", copy_function=os.link)
                    os.rename(dst + ".tmp", dst)
                except (OSError, shutil.Error):
                    shutil.rmtree(dst + ".tmp", ignore_errors=True)  # expired meanwhile

        def watch():
            """Hard links of each snapshot as it appears; a snapshot lives
            for several seals, so a 5 ms poll sees each one."""
            while not watched.is_set():
                copy_new()
                watched.wait(0.005)

        def before_kill(k):
            # right after a seal that made the ring drop its oldest
            ring = self.ring()
            wait_for(lambda: all(a != b for a, b in zip(self.ring(), ring)), timeout=60,
                     what=f"a seal and an expiry before kill {k + 1}")

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        sent, _ = self.streamed_with_kills(["r0", "r1"], before_kill, fill)
        watched.set()
        watcher.join()
        copy_new()  # the agent has stopped: nothing changes any more
        with open(self.agent.log) as f:
            log = f.read()
        expired = log.count("ring: snapshot ")
        self.assertGreaterEqual(expired, KILLS)
        kept = stored_tensors(self.agent.store)
        ever, seqs = list(stored_tensors_in([self.agent.store])), []
        for e in sorted(os.listdir(shadow)):
            with open(os.path.join(shadow, e, "MANIFEST.json")) as f:
                seqs.append(json.load(f)["seq_range"])
            ever += stored_tensors_in([os.path.join(shadow, e)])
        self.assertEqual([a for a, b in seqs], [1] + [b + 1 for a, b in seqs[:-1]],
                         "the watcher missed a snapshot")
        for i in range(2):
            name = f"dur/{i}/npy"
            counts = collections.Counter(v for n, v in ever if n == name)
            self.assertEqual({v: c for v, c in counts.items() if c > 1}, {},
                             f"publisher {i}: stored more than once")
            self.assertEqual([v for v in range(sent[i]) if v not in counts], [],
                             f"publisher {i}: lost")
            self.assertEqual(len(counts), sent[i])
            now = collections.Counter(v for n, v in kept if n == name)
            self.assertEqual({v: c for v, c in now.items() if c > 1}, {})
            self.assertLess(len(now), sent[i], f"publisher {i}: the ring dropped none")
        self.assertNotIn("reading the de-duplication table", log)
        print(f"\n{KILLS} kills after a seal and an expiry, {expired} snapshots expired, "
              f"{log.count('table of 2 publisher(s) from snapshot')} tables recovered from a "
              f"snapshot: {sent} tensors each stored once", file=sys.stderr)

    def ring(self):
        """The oldest and the newest snapshot's names."""
        root = os.path.join(self.agent.store, "snapshots")
        names = sorted(e for e in os.listdir(root) if not e.startswith(".")) \
            if os.path.isdir(root) else []
        return (names[0], names[-1]) if names else ("", "")

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
