#!/usr/bin/python3
"""Capture windows (agent/CONTROL.md, "capture") against a real mosquitto,
paho publishers and operators, and nginx (HTTPS WebDAV PUT) as the upload
server.

A capture with pre and post parts, asked while a routine snapshot holding
part of its pre window waits for upload: its snapshot holds exactly the
tensors of the filtered topics whose timestamps fall in the window (the
ground truth: every tensor on flash, live store and rolling snapshots, read
back with `embeddb ls`), its MANIFEST.json carries label, trigger and
window, and once the server is up it is uploaded before the two routine
snapshots that were waiting (one older, one newer). A local trigger
(capture.triggers) hit by a storm of 30 alarms makes one window, from the
first alarm less pre to the last plus post, and the next alarm's window
starts where that one ended. snapshot.mode: on_trigger, accelerated (11.7
MiB through a 4 MiB ring): the store stays within storage.max_disk (plus
at most one window's copy), rolling snapshots expire (never lost, never
uploaded) and only the three triggered windows are uploaded. Refusals: bad
bodies,
`to` too far ahead, and the bound of 4 waiting windows (the fifth gets
`busy`); an empty window answers ok with no snapshot.

Usage: test_capture.py BUILD_DIR REPO_ROOT
"""
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import paho.mqtt.client as mqtt
import paho.mqtt.publish as publish

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_agent_mqtt as base  # noqa: E402
from test_agent_mqtt import Agent, Broker  # noqa: E402
from test_control import Commander  # noqa: E402
from test_snapshot_upload import file_bytes  # noqa: E402
from tls_servers import Nginx, free_port, make_pki, wait_for  # noqa: E402

SUBS = """    - {topic: "sensors/#", qos: 1, format: raw, dtype: float64, shape: [1]}
    - {topic: "other/#", qos: 1, format: raw, dtype: float64, shape: [1]}
"""
TOPICS = ("sensors/a", "sensors/b", "other/x")


def embeddb(*args):
    return subprocess.run([os.path.join(base.BUILD, "cli", "embeddb"), *map(str, args)],
                          capture_output=True, text=True, timeout=60)


def rows(d):
    """(key, name, timestamp_ns) of every tensor in the store d."""
    r = embeddb("ls", d)
    assert r.returncode == 0, r.stderr
    out = []
    for line in r.stdout.splitlines()[1:]:
        f = line.split("\t")
        out.append((f[0], f[1], int(f[4])))
    return out


def snapshot_ls(store):
    r = embeddb("snapshot", "ls", store)
    assert r.returncode == 0, r.stderr
    lines = [l for l in r.stdout.splitlines() if l and not l.startswith("#")]
    head = lines[0].split("\t")
    return {d["name"]: d for d in (dict(zip(head, l.split("\t"))) for l in lines[1:])}


class Publisher(threading.Thread):
    """Publishes a counter on every topic of TOPICS every 10 ms until stopped."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.c = mqtt.Client()
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        self.halt = threading.Event()
        self.n = 0

    def run(self):
        while not self.halt.is_set():
            for t in TOPICS:
                self.c.publish(t, struct.pack("<d", self.n), qos=1)
            self.n += 1
            self.halt.wait(0.01)

    def stop(self):
        self.halt.set()
        self.join()
        self.c.loop_stop()
        self.c.disconnect()


class CaptureTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="embeddb-capture-")
        self.broker = Broker(self.tmp)
        self.broker.start()
        self.agent = Agent(self.tmp, self.broker.port)
        self.closers = []

    def tearDown(self):
        for c in reversed(self.closers):
            c()
        if self.agent.proc and self.agent.proc.poll() is None:
            self.agent.proc.kill()
            self.agent.proc.wait()
            self.agent.logf.close()
            self.agent.notify.close()
        self.broker.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def start(self, extra=""):
        self.agent.write_config(self.broker.port, "control:\n  commands: true\n"
                                "  command_rate: 600\n" + extra, subs=SUBS,
                                mqtt_extra="  protocol: 5\n")
        self.agent.start()
        c = Commander(self.broker.port, True)
        self.closers.append(c.close)
        return c

    def stored(self):
        return int(self.agent.status().get("stored", "0"))

    def log_tail(self):
        with open(self.agent.log) as f:
            return f.read()[-3000:]

    def test_window_is_exact_and_uploaded_first(self):
        pki = make_pki(os.path.join(self.tmp, "pki"), "main")
        port = free_port()
        c = self.start(f"""snapshot:
  interval: 1h
  keep: 100
upload:
  url: https://localhost:{port}/up
  ca_file: {pki.ca}
  prefix: fleet
  connect_timeout: 2s
  retry: {{initial: 100ms, max: 300ms}}
""")
        pub = Publisher(self.broker.port)
        self.closers.append(pub.stop)
        pub.start()
        wait_for(lambda: self.stored() >= 150, what="traffic stored")
        older = c.call("snapshot", {"id": "older"})["snapshot"]
        self.assertTrue(older)
        at = self.stored()
        wait_for(lambda: self.stored() >= at + 60, what="more traffic")
        r = c.call("capture", {"label": "alarm-7", "topics": ["sensors/#"], "pre": "3s",
                               "post": "700ms", "origin": "itest"})
        self.assertTrue(r["ok"], r)
        name, (lo, hi) = r["snapshot"], r["window_ns"]
        self.assertEqual(hi - lo, 3_700_000_000)
        newer = c.call("snapshot", {"id": "newer"})["snapshot"]
        # names sort by the first tensor's seq: the capture's copies are
        # numbered after the live store's tensors, so by name it would be the
        # last of the three to go
        self.assertTrue(older < newer < name, (older, newer, name))
        pub.stop()
        self.closers.remove(pub.stop)
        wait_for(lambda: all(snapshot_ls(self.agent.store).get(n, {}).get("state") == "sealed"
                             for n in (older, name, newer)),
                 what=lambda: f"three sealed snapshots: {snapshot_ls(self.agent.store)}")
        # the server comes up: the capture goes first, then the older one
        web = Nginx(self.tmp, pki, port=port).start()
        self.closers.append(web.stop)
        wait_for(lambda: all(snapshot_ls(self.agent.store)[n]["state"] == "uploaded"
                             for n in (older, name, newer)), timeout=60,
                 what=lambda: f"all uploaded: {self.log_tail()}")
        with open(web.access_log) as f:
            puts = [m.group(1) for m in re.finditer(r'"PUT /up/fleet/itest/(\S+)\.tar HTTP[^"]*" 2',
                                                     f.read())]
        self.assertEqual(puts, [name, older, newer])
        self.assertEqual(self.agent.stop(), 0)

        root = os.path.join(self.agent.store, "snapshots")
        truth, in_older, after_trigger = set(), 0, 0
        manifest = json.load(open(os.path.join(root, name, "MANIFEST.json")))
        cap = manifest["capture"]
        for d in [self.agent.store] + [os.path.join(root, n) for n in (older, newer)]:
            for key, tname, ts in rows(d):
                if tname.startswith("sensors/") and lo <= ts < hi:
                    truth.add((key, tname, ts))
                    in_older += d.endswith(older)
                    after_trigger += ts >= cap["trigger_ns"]
        got = set(rows(os.path.join(root, name)))
        self.assertEqual(got, truth)
        self.assertGreater(in_older, 0)       # the pre part reached a sealed snapshot
        self.assertGreater(after_trigger, 0)  # the post part was waited for
        self.assertEqual(cap["label"], "alarm-7")
        self.assertEqual(cap["window_ns"], [lo, hi])
        self.assertEqual(cap["filters"], ["sensors/#"])
        self.assertTrue(lo < cap["trigger_ns"] < hi)
        self.assertEqual(manifest["tensors"], len(truth))
        self.assertEqual(set(manifest["topics"]), {"sensors/a", "sensors/b"})
        self.assertTrue(os.path.exists(web.object_path(f"/up/fleet/itest/{name}.tar")))
        self.assertEqual(embeddb("snapshot", "verify", self.agent.store, name).returncode, 0)
        # the second reader (python/embeddb) reads the uploaded object whole
        obj = web.object_path(f"/up/fleet/itest/{name}.tar")
        r = subprocess.run([sys.executable, "-m", "embeddb", "verify", obj], capture_output=True,
                           text=True, timeout=60,
                           env=dict(os.environ, PYTHONPATH=os.path.join(base.ROOT, "python")))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def captures(self):
        """MANIFEST.json of every finished capture window, oldest first."""
        root = os.path.join(self.agent.store, "snapshots")
        out = []
        for n in sorted(os.listdir(root)) if os.path.isdir(root) else []:
            p = os.path.join(root, n, "MANIFEST.json")
            if os.path.exists(os.path.join(root, n, "CAPTURE")) and os.path.exists(p):
                out.append(json.load(open(p)))
        return sorted(out, key=lambda m: m["capture"]["trigger_ns"])

    def test_trigger_storm_makes_one_window_and_windows_never_overlap(self):
        self.agent.write_config(self.broker.port, """snapshot:
  interval: 1h
capture:
  triggers:
    - {on: "alarms/#", topics: ["sensors/#"], pre: 1s, post: 500ms, label: alarm}
""", subs=SUBS + '    - {topic: "alarms/#", qos: 1, format: raw, dtype: float64, shape: [1]}\n')
        self.agent.start()
        pub = Publisher(self.broker.port)
        self.closers.append(pub.stop)
        pub.start()
        wait_for(lambda: self.stored() >= 150, what="traffic stored")
        alarm = mqtt.Client()
        alarm.connect("127.0.0.1", self.broker.port)
        alarm.loop_start()
        self.closers.append(alarm.loop_stop)
        for i in range(30):  # a storm: one window
            alarm.publish("alarms/fire", struct.pack("<d", i), qos=1).wait_for_publish(10)
            time.sleep(0.02)
        wait_for(lambda: len(self.captures()) == 1, what=lambda: f"one capture: {self.log_tail()}")
        alarm.publish("alarms/fire", struct.pack("<d", 99), qos=1).wait_for_publish(10)
        wait_for(lambda: len(self.captures()) == 2, what=lambda: f"a second: {self.log_tail()}")
        pub.stop()
        self.closers.remove(pub.stop)
        self.assertEqual(self.agent.stop(), 0)
        first, second = (m["capture"] for m in self.captures())
        alarms = sorted(ts for _, name, ts in rows(self.agent.store) if name == "alarms/fire")
        self.assertEqual(len(alarms), 31)
        # the first window: from the first alarm less pre to the last of the
        # storm plus post; the second starts where the first ended
        self.assertEqual(first["window_ns"], [alarms[0] - 10**9, alarms[29] + 5 * 10**8])
        self.assertEqual(first["trigger_ns"], alarms[0])
        self.assertEqual(second["trigger_ns"], alarms[30])
        self.assertEqual(second["window_ns"], [max(alarms[30] - 10**9, first["window_ns"][1]),
                                               alarms[30] + 5 * 10**8])
        self.assertEqual([m["capture"]["label"] for m in self.captures()], ["alarm", "alarm"])
        self.assertTrue(all(set(m["topics"]) <= {"sensors/a", "sensors/b"} and m["tensors"]
                            for m in self.captures()))

    def sealed_windows(self):
        """(name, tensors) of every capture the agent's log says it sealed."""
        with open(self.agent.log) as f:
            return [(m.group(1), int(m.group(2))) for m in
                    re.finditer(r"capture '\S+' sealed as (\S+): (\d+) tensor", f.read())]

    def test_on_trigger_mode_holds_the_budget_and_uploads_only_windows(self):
        """snapshot.mode: on_trigger, accelerated: 11.7 MiB through a 4 MiB
        ring (three turns) with three alarms."""
        pki = make_pki(os.path.join(self.tmp, "pki"), "main")
        web = Nginx(self.tmp, pki).start()
        self.closers.append(web.stop)
        max_disk = 4 << 20
        self.agent.write_config(self.broker.port, f"""snapshot:
  mode: on_trigger
  max_bytes: 512KiB
  interval: 1h
capture:
  triggers:
    - {{on: "alarms/#", topics: ["sensors/#"], pre: 100ms, post: 50ms, label: alarm}}
upload:
  url: https://localhost:{web.port}/up
  ca_file: {pki.ca}
  prefix: fleet
  retry: {{initial: 100ms, max: 300ms}}
""", subs='    - {topic: "sensors/#", qos: 1, format: raw, dtype: float64, shape: [512]}\n'
            '    - {topic: "alarms/#", qos: 1, format: raw, dtype: float64, shape: [1]}\n')
        with open(self.agent.conf) as f:
            conf = f.read().replace("  memtable_max: 1MiB\n",
                                    f"  memtable_max: 256KiB\n  max_disk: {max_disk}\n")
            conf = conf.replace("  max_tensors: 16\n", "  max_tensors: 16\n  max_bytes: 256KiB\n")
        with open(self.agent.conf, "w") as f:
            f.write(conf)
        self.agent.start()
        peak, halt = [0], threading.Event()

        def sample():
            while not halt.is_set():
                peak[0] = max(peak[0], file_bytes(self.agent.store))
                halt.wait(0.02)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        payload = struct.pack("<512d", *range(512))
        sent = 0
        c = mqtt.Client()
        c.connect("127.0.0.1", self.broker.port)
        c.loop_start()
        self.closers.append(c.loop_stop)
        for chunk in range(6):
            for _ in range(500):  # about 2 MB/s: a window is a fraction of the ring
                c.publish("sensors/a", payload, qos=1)
                time.sleep(0.002)
            sent += 500
            if chunk % 2 == 0:
                c.publish("alarms/fire", struct.pack("<d", chunk), qos=1).wait_for_publish(10)
                sent += 1
                n = chunk // 2 + 1
                wait_for(lambda: len(self.sealed_windows()) >= n,
                         what=lambda: f"capture {n}: {self.log_tail()}")
        wait_for(lambda: self.stored() == sent, what=lambda: f"{sent} stored: {self.log_tail()}")
        windows = self.sealed_windows()
        self.assertEqual(len(windows), 3)

        def uploaded():
            with open(web.access_log) as f:
                return re.findall(r'"PUT /up/fleet/itest/(\S+)\.tar HTTP[^"]*" 2', f.read())
        wait_for(lambda: len(uploaded()) >= 3, what=lambda: f"the windows uploaded: "
                 f"{self.log_tail()}")
        halt.set()
        sampler.join()
        status = self.agent.status()
        self.assertEqual(self.agent.stop(), 0)
        # the ring held the budget; a window's copy counts from the next
        # commit on, so it may pass by at most one window (agent/CONTROL.md)
        biggest = max(t for _, t in windows) * (512 * 8 + 128)
        self.assertLessEqual(peak[0], max_disk + biggest, (peak[0], biggest))
        self.assertGreater(int(status["snapshots_expired"]), 0)
        self.assertEqual(status["snapshots_dropped"], "0")
        self.assertEqual(status["budget_refusals"], "0")
        # only the windows were uploaded, each once
        self.assertEqual(sorted(uploaded()), sorted(n for n, _ in windows))
        self.assertTrue(all(t > 0 for _, t in windows))

    def test_refusals_and_the_bound_on_waiting_windows(self):
        c = self.start()
        ok = {"label": "L", "topics": ["sensors/#"]}
        for body, err in [({"topics": ["t"], "pre": "1s"}, "bad_field"),
                          (dict(ok, pre="61m"), "bad_field"),
                          (dict(ok, post="601s"), "bad_field"),
                          (dict(ok, pre="1s", colour="red"), "bad_field"),
                          (dict(ok, topics=["a/#/b"], pre="1s"), "bad_field"),
                          (dict(ok, pre="0s", post="0s"), "bad_field")]:
            r = c.call("capture", body)
            self.assertEqual((r["ok"], r.get("error")), (False, err), (body, r))
        # `to` ahead of the board's clock by more than the post limit
        now = time.time_ns()
        r = c.call("capture", dict(ok, **{"from": now, "to": now + 601 * 10**9}))
        self.assertEqual(r.get("error"), "bad_field", r)
        self.assertIn("ahead", r["message"])
        # an empty window: ok, no snapshot
        r = c.call("capture", dict(ok, **{"from": 1, "to": 2}))
        self.assertEqual((r["ok"], r["snapshot"], r["tensors"]), (True, None, 0), r)
        # four windows wait for their end; the fifth is refused
        keys = [c.send("capture", dict(ok, label=f"w{i}", post="10m")) for i in range(5)]
        wait_for(lambda: c.replies(keys[4]), what="the fifth capture's reply")
        r = c.replies(keys[4])[0]
        self.assertEqual((r["ok"], r["error"]), (False, "busy"), r)
        self.assertFalse(any(c.replies(k) for k in keys[:4]))
        # a graceful stop with windows waiting exits at once
        self.assertEqual(self.agent.stop(), 0)


if __name__ == "__main__":
    base.BUILD = os.path.abspath(sys.argv.pop(1))
    base.ROOT = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
