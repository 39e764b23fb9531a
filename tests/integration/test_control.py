#!/usr/bin/python3
"""Fleet control over MQTT (agent/CONTROL.md) against a real mosquitto on a
free loopback port, watched by a real paho subscriber: the retained status
published at connect and every control.status_interval, its counters
following the traffic, the Last Will turning it offline ("lost") when the
agent is SIGKILLed and a graceful stop's own offline status ("stopped"),
under MQTT 3.1.1 and 5; status off (control.status_interval: 0s) publishing
nothing; and the configuration refusing what would fail later.

Usage: test_control.py BUILD_DIR REPO_ROOT
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import unittest

import paho.mqtt.client as mqtt
import paho.mqtt.publish as publish

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_agent_mqtt as base  # noqa: E402
from test_agent_mqtt import Agent, Broker, wait_for  # noqa: E402


class Watcher:
    """A paho subscriber recording (topic, payload, retain) as they come."""

    def __init__(self, port, topic, protocol=mqtt.MQTTv311):
        self.msgs = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.c = mqtt.Client(protocol=protocol)
        self.c.on_message = self._on_message
        self.c.on_subscribe = lambda *a: self.subscribed.set()
        self.c.connect("127.0.0.1", port)
        self.c.subscribe(topic, qos=1)
        self.c.loop_start()
        if not self.subscribed.wait(15):
            raise AssertionError("the watcher's subscription was not acknowledged")

    def _on_message(self, client, userdata, m):
        with self.lock:
            self.msgs.append((m.topic, bytes(m.payload), bool(m.retain)))

    def docs(self, topic=None):
        with self.lock:
            return [json.loads(p) for t, p, _ in self.msgs if topic is None or t == topic]

    def last(self, topic=None):
        d = self.docs(topic)
        return d[-1] if d else None

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


STATUS_KEYS = {"v", "device_id", "online", "version", "time_ns", "uptime_s", "mqtt", "flash",
               "snapshots", "upload_backlog_bytes"}
MQTT_KEYS = {"connected", "received", "stored", "rejected", "rejected_by", "unmatched", "held",
             "maybe_duplicated", "reconnects"}
REJECT_REASONS = {"too_large", "malformed", "unsupported", "mismatch", "no_memory",
                  "topic_too_long", "invalid"}


class ControlTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="embeddb-control-")
        self.broker = Broker(self.tmp)
        self.broker.start()
        self.agent = Agent(self.tmp, self.broker.port)
        self.watchers = []

    def tearDown(self):
        for w in self.watchers:
            w.close()
        if self.agent.proc and self.agent.proc.poll() is None:
            self.kill_agent()
        self.broker.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def kill_agent(self):
        self.agent.proc.kill()
        self.agent.proc.wait()
        self.agent.logf.close()
        self.agent.notify.close()

    def watch(self, topic, protocol=mqtt.MQTTv311):
        w = Watcher(self.broker.port, topic, protocol)
        self.watchers.append(w)
        return w

    def configure(self, control="control:\n  status_interval: 1s\n", mqtt_extra=""):
        self.agent.write_config(self.broker.port, control, mqtt_extra=mqtt_extra)

    def pub(self, topic, payload):
        publish.single(topic, payload, qos=1, hostname="127.0.0.1", port=self.broker.port)

    def check_online(self, d):
        self.assertEqual(set(d), STATUS_KEYS)
        self.assertEqual(d["v"], 1)
        self.assertEqual(d["device_id"], "itest")
        self.assertIs(d["online"], True)
        self.assertRegex(d["version"], r"^\d+\.\d+\.\d+$")
        self.assertEqual(set(d["mqtt"]), MQTT_KEYS)
        self.assertEqual(set(d["mqtt"]["rejected_by"]), REJECT_REASONS)
        self.assertEqual(d["mqtt"]["rejected"], sum(d["mqtt"]["rejected_by"].values()))
        self.assertEqual(set(d["flash"]), {"used", "limit", "free"})
        self.assertEqual(set(d["snapshots"]),
                         {"sealed", "uploading", "uploaded", "failed", "sealing"})
        self.assertGreaterEqual(d["flash"]["free"], 0)

    def status_and_will(self, protocol_line, paho_protocol):
        self.configure(mqtt_extra=protocol_line)
        w = self.watch("embeddb/+/status", paho_protocol)
        self.agent.start()
        topic = "embeddb/itest/status"
        wait_for(lambda: w.last(topic) and w.last(topic)["online"], what="online status")
        self.check_online(w.last(topic))
        # counters follow the traffic: 3 stored, 1 rejected
        for i in range(3):
            self.pub("env/csv", f"{i},1,2")
        self.pub("env/json", "{oops")
        wait_for(lambda: w.last(topic)["mqtt"]["stored"] == 3 and
                 w.last(topic)["mqtt"]["rejected_by"]["malformed"] == 1,
                 what="a status counting 3 stored and 1 malformed")
        d = w.last(topic)
        self.check_online(d)
        self.assertEqual(d["mqtt"]["received"], 4)
        self.assertGreater(d["flash"]["used"], 0)
        # every control.status_interval (1 s): later documents, later times
        n = len(w.docs(topic))
        wait_for(lambda: len(w.docs(topic)) >= n + 2, what="two more periodic statuses")
        times = [x["time_ns"] for x in w.docs(topic)]
        self.assertEqual(times, sorted(times))
        # a subscriber arriving late gets the retained document
        late = self.watch(topic)
        wait_for(lambda: late.last(), what="the retained status")
        self.assertTrue(late.msgs[0][2], "the status is retained")
        self.assertIs(late.last()["online"], True)
        # SIGKILL: the broker publishes the Last Will
        self.kill_agent()
        wait_for(lambda: w.last(topic)["online"] is False, what="the offline Last Will")
        self.assertEqual(w.last(topic), {"v": 1, "device_id": "itest", "online": False,
                                         "version": d["version"], "reason": "lost"})
        late2 = self.watch(topic)
        wait_for(lambda: late2.last(), what="the retained offline status")
        self.assertEqual(late2.last()["reason"], "lost")
        # back online after a restart, then a graceful stop says "stopped"
        self.agent.start()
        wait_for(lambda: w.last(topic)["online"] is True, what="online again")
        self.assertEqual(w.last(topic)["mqtt"]["stored"], 0)  # counters are per run
        self.assertEqual(self.agent.stop(signal.SIGTERM), 0)
        wait_for(lambda: w.last(topic)["online"] is False, what="the stopped status")
        self.assertEqual(w.last(topic)["reason"], "stopped")

    def test_status_and_last_will_mqtt311(self):
        self.status_and_will("", mqtt.MQTTv311)

    def test_status_and_last_will_mqtt5(self):
        self.status_and_will("  protocol: 5\n", mqtt.MQTTv5)

    def test_prefix_names_the_topics(self):
        self.configure("control:\n  prefix: fleet-a/site_2\n  status_interval: 1s\n")
        w = self.watch("#")
        self.agent.start()
        wait_for(lambda: w.last("fleet-a/site_2/itest/status"), what="status under the prefix")
        self.assertFalse([t for t, _, _ in w.msgs if t.startswith("embeddb/")])

    def test_status_off_publishes_nothing(self):
        self.configure("control:\n  status_interval: 0s\n")
        w = self.watch("#")
        self.agent.start()
        self.pub("env/csv", "1,2")
        wait_for(lambda: self.agent.status().get("stored") == "1", what="1 stored")
        self.kill_agent()
        # the watcher sees only the message it published itself; a probe
        # published after the kill proves nothing from the agent is queued
        self.pub("probe/x", "1")
        wait_for(lambda: any(t == "probe/x" for t, _, _ in w.msgs), what="the probe")
        self.assertEqual(sorted({t for t, _, _ in w.msgs}), ["env/csv", "probe/x"])

    def test_default_interval_is_a_minute_and_connect_publishes_at_once(self):
        self.configure("")
        w = self.watch("embeddb/itest/status")
        self.agent.start()
        wait_for(lambda: w.last(), what="the status at connect")
        self.check_online(w.last())
        self.assertLess(w.last()["uptime_s"], 60)

    def test_config_refuses_what_would_fail(self):
        agent = os.path.join(base.BUILD, "agent", "embeddb-agent")
        cases = [
            ("control:\n  status_interval: 999ms\n", "control.status_interval: 999ms is too often"),
            ("control:\n  status_interval: 25h\n", "control.status_interval"),
            ("control:\n  status_interval: 5\n", "control.status_interval"),
            ("control:\n  prefix: a/+/b\n", "control.prefix: '+' is not allowed"),
            ("control:\n  prefix: a/#\n", "control.prefix: '#' is not allowed"),
            ("control:\n  prefix: /a\n", "control.prefix: must not start with '/'"),
            ("control:\n  prefix: a//b\n", "control.prefix: has an empty segment"),
            ("control:\n  prefix: " + "p" * 129 + "\n", "control.prefix: 129 bytes; at most 128"),
            ("control:\n  bogus: 1\n", "unknown key 'control.bogus'"),
        ]
        for extra, want in cases:
            self.agent.write_config(self.broker.port, extra)
            r = subprocess.run([agent, "--check-config", "-c", self.agent.conf],
                               capture_output=True, text=True, timeout=10)
            self.assertEqual(r.returncode, 1, extra)
            self.assertIn(want, r.stderr, extra)
        for extra in ("control:\n  status_interval: 1s\n", "control:\n  status_interval: 24h\n",
                      "control:\n  status_interval: 0s\n",
                      "control:\n  prefix: " + "p" * 128 + "\n"):
            self.agent.write_config(self.broker.port, extra)
            r = subprocess.run([agent, "--check-config", "-c", self.agent.conf],
                               capture_output=True, text=True, timeout=10)
            self.assertEqual(r.returncode, 0, extra + r.stderr)


if __name__ == "__main__":
    base.BUILD = os.path.abspath(sys.argv.pop(1))
    base.ROOT = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
