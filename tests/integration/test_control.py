#!/usr/bin/python3
"""Fleet control over MQTT (agent/CONTROL.md) against a real mosquitto on a
free loopback port, watched by a real paho subscriber: the retained status
published at connect and every control.status_interval, its counters
following the traffic, the Last Will turning it offline ("lost") when the
agent is SIGKILLed and a graceful stop's own offline status ("stopped"),
under MQTT 3.1.1 and 5; status and watermark off (control.status_interval
and control.watermark_interval 0s) publishing nothing; and the configuration refusing what would fail later.
Commands: every verb and every error reply over MQTT 5 (response topic and
correlation data) and 3.1.1 (the reply topic and the body's id), body and
id sizes on both sides of their limits, the rate limit on both sides, a
retained command refused, commands off ignored, a response topic that is a
command topic not used, the documented mosquitto ACL keeping an intruder
out, and a fleet-wide command answered by three agents on one broker.

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
import uuid

import paho.mqtt.client as mqtt
import paho.mqtt.publish as publish
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_agent_mqtt as base  # noqa: E402
from test_agent_mqtt import Agent, Broker, wait_for  # noqa: E402


class Watcher:
    """A paho subscriber recording (topic, payload, retain) as they come."""

    def __init__(self, port, topic, protocol=mqtt.MQTTv311):
        self.msgs = []
        self.corrs = []
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
        corr = None
        props = getattr(m, "properties", None)
        if props is not None and hasattr(props, "CorrelationData"):
            corr = bytes(props.CorrelationData)
        with self.lock:
            self.msgs.append((m.topic, bytes(m.payload), bool(m.retain)))
            self.corrs.append(corr)

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

    def test_status_and_watermark_off_publish_nothing(self):
        self.configure("control:\n  status_interval: 0s\n  watermark_interval: 0s\n")
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
            ("control:\n  command_rate: 0\n", "control.command_rate"),
            ("control:\n  command_rate: 601\n", "control.command_rate"),
            ("control:\n  commands: maybe\n", "control.commands"),
        ]
        for extra, want in cases:
            self.agent.write_config(self.broker.port, extra)
            r = subprocess.run([agent, "--check-config", "-c", self.agent.conf],
                               capture_output=True, text=True, timeout=10)
            self.assertEqual(r.returncode, 1, extra)
            self.assertIn(want, r.stderr, extra)
        for extra in ("control:\n  status_interval: 1s\n", "control:\n  status_interval: 24h\n",
                      "control:\n  status_interval: 0s\n",
                      "control:\n  commands: true\n  command_rate: 1\n",
                      "control:\n  commands: true\n  command_rate: 600\n",
                      "control:\n  prefix: " + "p" * 128 + "\n"):
            self.agent.write_config(self.broker.port, extra)
            r = subprocess.run([agent, "--check-config", "-c", self.agent.conf],
                               capture_output=True, text=True, timeout=10)
            self.assertEqual(r.returncode, 0, extra + r.stderr)
        # a board named "fleet" would take the fleet's commands as its own
        for commands, rc in (("true", 1), ("false", 0)):
            self.agent.write_config(self.broker.port, f"control:\n  commands: {commands}\n")
            with open(self.agent.conf) as f:
                text = f.read().replace("device_id: itest", "device_id: fleet")
            with open(self.agent.conf, "w") as f:
                f.write(text)
            r = subprocess.run([agent, "--check-config", "-c", self.agent.conf],
                               capture_output=True, text=True, timeout=10)
            self.assertEqual(r.returncode, rc, r.stderr)
            if rc:
                self.assertIn("device_id: 'fleet' names the fleet-wide command topic", r.stderr)


class Commander:
    """An operator's client: sends a command and waits for its reply, over
    MQTT 5 (response topic + correlation data) or 3.1.1 (reply topic + id)."""

    def __init__(self, port, v5, reply_filter="embeddb/+/reply"):
        self.port = port
        self.v5 = v5
        self.resp = f"ops/replies/{uuid.uuid4().hex}"
        self.w = Watcher(port, self.resp if v5 else reply_filter,
                         mqtt.MQTTv5 if v5 else mqtt.MQTTv311)
        self.n = 0

    def send(self, verb, body=None, device="itest", raw=None, retain=False):
        """Publishes the command; returns a key to wait for its reply."""
        self.n += 1
        key = f"c{self.n}"
        if raw is None:
            doc = dict(body or {})
            if not self.v5:
                doc.setdefault("id", key)
            raw = json.dumps(doc).encode()
        topic = f"embeddb/{device}/cmd/{verb}"
        c = mqtt.Client(protocol=mqtt.MQTTv5 if self.v5 else mqtt.MQTTv311)
        c.connect("127.0.0.1", self.port)
        c.loop_start()
        props = None
        if self.v5:
            props = Properties(PacketTypes.PUBLISH)
            props.ResponseTopic = self.resp
            props.CorrelationData = key.encode()
        info = c.publish(topic, raw, qos=1, retain=retain, properties=props)
        info.wait_for_publish(15)
        c.loop_stop()
        c.disconnect()
        return key

    def replies(self, key):
        with self.w.lock:
            out = []
            for (t, p, _), corr in zip(self.w.msgs, self.w.corrs):
                d = json.loads(p)
                if (self.v5 and corr == key.encode()) or (not self.v5 and d.get("id") == key):
                    out.append(d)
            return out

    def call(self, verb, body=None, **kw):
        key = self.send(verb, body, **kw)
        wait_for(lambda: self.replies(key), what=f"the reply to {verb} {key}")
        return self.replies(key)[0]

    def close(self):
        self.w.close()


class CommandTest(unittest.TestCase):
    setUp = ControlTest.setUp
    tearDown = ControlTest.tearDown
    kill_agent = ControlTest.kill_agent
    pub = ControlTest.pub

    def start(self, v5, extra="control:\n  commands: true\n  command_rate: 600\n"):
        self.agent.write_config(self.broker.port, extra,
                                mqtt_extra="  protocol: 5\n" if v5 else "")
        self.agent.start()
        c = Commander(self.broker.port, v5)
        self.watchers.append(c.w)
        return c

    def every_verb(self, v5):
        c = self.start(v5)
        status = Watcher(self.broker.port, "embeddb/itest/status")
        self.watchers.append(status)
        wait_for(lambda: status.docs(), what="the status at connect")
        before = len(status.docs())
        r = c.call("status", {"origin": "ops-console"})
        self.assertEqual(r["ok"], True, r)
        self.assertEqual((r["v"], r["device_id"], r["verb"]), (1, "itest", "status"))
        wait_for(lambda: len(status.docs()) > before, what="a status on command")
        # snapshot: nothing stored yet -> null; then one with the data
        r = c.call("snapshot")
        self.assertEqual((r["ok"], r["snapshot"]), (True, None), r)
        for i in range(3):
            self.pub("env/csv", f"{i},2")
        wait_for(lambda: self.agent.status().get("stored") == "3", what="3 stored")
        r = c.call("snapshot", {"id": "snap-1"} if v5 else None)
        self.assertEqual(r["ok"], True, r)
        self.assertRegex(r["snapshot"], r"^itest-\d{20}$")
        snaps = os.path.join(self.agent.store, "snapshots")
        wait_for(lambda: r["snapshot"] in os.listdir(snaps), what="the sealed snapshot")
        r = c.call("upload")
        self.assertEqual((r["ok"], r["retried"]), (True, 0), r)
        # errors: each answered, none stops the agent
        cases = [("reboot", None, "unknown_verb"),
                 ("status", b"{oops", "bad_json"),
                 ("status", b"[1,2]", "bad_json"),
                 ("status", b'{"id":"a"} trailing', "bad_json"),
                 ("status", b'{"origin":5}', "bad_field"),
                 ("status", b'{"origin":"x","origin":"y"}', "bad_field"),
                 ("status", b'{"reboot":"now"}', "bad_field"),
                 ("status", json.dumps({"origin": "o" * 65}).encode(), "bad_field"),
                 ("status", b'{"origin":"caf\\u00e9"}', "bad_field"),
                 ("status", b"{" + b" " * 4096 + b"}", "too_large"),
                 ("snapshot", b"\xff\xfe\x00", "bad_json")]
        for verb, raw, want in cases:
            if raw is not None and not v5:
                # 3.1.1 matches replies by id, which a broken body cannot
                # carry: the reply topic gets exactly one new document
                n = len(c.w.msgs)
                c.send(verb, raw=raw)
                wait_for(lambda: len(c.w.msgs) > n, what=f"the reply to {raw[:20]!r}")
                d = json.loads(c.w.msgs[n][1])
            else:
                d = c.call(verb, raw=raw) if raw is not None else c.call(verb)
            self.assertEqual((d["ok"], d["error"]), (False, want), (verb, raw, d))
            self.assertTrue(d["message"])
            self.assertEqual(d["verb"], verb)
        # both sides of the limits: 4096 bytes and a 64-byte id pass
        body = b'{"origin":"' + b"o" * 64 + b'"' + b" " * (4096 - 77) + b"}"
        self.assertEqual(len(body), 4096)
        if v5:
            self.assertEqual(c.call("status", raw=body)["ok"], True)
        self.assertEqual(c.call("status", {"origin": "o" * 64})["ok"], True)
        self.pub("env/csv", "9,9")
        wait_for(lambda: self.agent.status().get("stored") == "4", what="still storing")
        self.assertEqual(self.agent.stop(), 0)
        with open(self.agent.log) as f:
            log = f.read()
        self.assertIn("origin 'ops-console'", log)
        self.assertIn("embeddb/itest/cmd/reboot", log)
        self.assertIn("unknown_verb", log)

    def test_every_verb_and_error_mqtt5(self):
        self.every_verb(True)

    def test_every_verb_and_error_mqtt311(self):
        self.every_verb(False)

    def test_response_topic_that_is_a_command_topic_is_not_used(self):
        c = self.start(True)
        plain = Watcher(self.broker.port, "embeddb/itest/reply", mqtt.MQTTv5)
        self.watchers.append(plain)
        for resp in ("embeddb/fleet/cmd/status", "embeddb/itest/cmd/snapshot", "ops/+/x"):
            c.resp = resp
            key = c.send("status")
            wait_for(lambda: key.encode() in plain.corrs, what=f"the reply for {resp}")
            d = plain.docs()[plain.corrs.index(key.encode())]
            self.assertEqual(d["ok"], True, d)
        self.assertEqual(self.agent.stop(), 0)
        with open(self.agent.log) as f:
            self.assertEqual(f.read().count("command on"), 3)

    def test_documented_acl_lets_only_the_operator_command(self):
        """The ACL in agent/CONTROL.md, taken from the file, on a broker with
        passwords: an intruder's command never reaches the board, the
        operator's does (MQTT 5 reply under ops/replies/), and the board's
        status and Last Will pass."""
        with open(os.path.join(base.ROOT, "agent", "CONTROL.md")) as f:
            doc = f.read()
        acl = doc.split("### Who may send commands")[1].split("```")[1]
        acl = acl.replace("pattern read  sensors/#", "pattern read  env/#")
        d = self.broker.dir
        with open(os.path.join(d, "embeddb.acl"), "w") as f:
            f.write(acl)
        pw = os.path.join(d, "passwd")
        for i, user in enumerate(("itest", "fleet-operator", "intruder")):
            subprocess.run(["mosquitto_passwd", "-b"] + (["-c"] if i == 0 else []) +
                           [pw, user, "pw-" + user], check=True, capture_output=True)
        self.broker.stop()
        with open(self.broker.conf) as f:
            conf = f.read().replace("allow_anonymous true", "allow_anonymous false")
        with open(self.broker.conf, "w") as f:
            f.write(conf + f"password_file {pw}\nacl_file {d}/embeddb.acl\n")
        self.broker.start()
        secret = os.path.join(self.tmp, "board.pw")
        with open(secret, "w") as f:
            f.write("pw-itest\n")
        self.agent.write_config(self.broker.port, "control:\n  commands: true\n  "
                                "status_interval: 1s\n",
                                mqtt_extra=f"  protocol: 5\n  username: itest\n"
                                f"  password_file: {secret}\n")
        self.agent.start()

        def client(user, proto=mqtt.MQTTv5):
            c = mqtt.Client(protocol=proto)
            c.username_pw_set(user, "pw-" + user)
            return c
        got, lock = [], threading.Lock()

        def on_message(cl, ud, m):
            with lock:
                got.append((m.topic, bytes(m.payload)))
        op = client("fleet-operator")
        op.on_message = on_message
        op.connect("127.0.0.1", self.broker.port)
        op.loop_start()
        op.subscribe([("ops/replies/op", 1), ("embeddb/+/status", 1)])
        try:
            wait_for(lambda: any(t == "embeddb/itest/status" for t, _ in got),
                     what="the board's status through the ACL")
            intruder = client("intruder", mqtt.MQTTv311)
            intruder.connect("127.0.0.1", self.broker.port)
            intruder.loop_start()
            for verb in ("snapshot", "status"):
                intruder.publish(f"embeddb/itest/cmd/{verb}", b"{}", qos=1).wait_for_publish(15)
                intruder.publish(f"embeddb/fleet/cmd/{verb}", b"{}", qos=1).wait_for_publish(15)
            intruder.loop_stop()
            intruder.disconnect()
            props = Properties(PacketTypes.PUBLISH)
            props.ResponseTopic = "ops/replies/op"
            props.CorrelationData = b"k1"
            op.publish("embeddb/itest/cmd/status", b'{"origin":"operator"}', qos=1,
                       properties=props).wait_for_publish(15)
            wait_for(lambda: any(t == "ops/replies/op" for t, _ in got),
                     what="the operator's reply")
            reply = json.loads([p for t, p in got if t == "ops/replies/op"][0])
            self.assertEqual(reply["ok"], True, reply)
            self.kill_agent()
            wait_for(lambda: json.loads([p for t, p in got if t == "embeddb/itest/status"][-1])
                     ["online"] is False, what="the Last Will through the ACL")
        finally:
            op.loop_stop()
            op.disconnect()
        with open(self.agent.log) as f:
            log = f.read()
        # the operator's command, processed after the intruder's were sent,
        # is the only one the board saw
        self.assertEqual(log.count("command on"), 1, log)
        self.assertIn("origin 'operator'", log)

    def test_rate_limit_both_sides(self):
        c = self.start(True, "control:\n  commands: true\n  command_rate: 3\n")
        for i in range(3):
            self.assertEqual(c.call("status")["ok"], True)
        r = c.call("status")
        self.assertEqual((r["ok"], r["error"]), (False, "rate_limited"), r)
        self.assertIn("3 commands in 60 s", r["message"])

    def test_retained_command_is_refused(self):
        # Retained before the agent subscribes: delivered with the retain
        # flag at every (re)subscription, so never carried out.
        c = Commander(self.broker.port, False)
        self.watchers.append(c.w)
        key = c.send("snapshot", retain=True)
        self.agent.write_config(self.broker.port, "control:\n  commands: true\n")
        self.agent.start()
        wait_for(lambda: c.replies(key), what="the refusal")
        r = c.replies(key)[0]
        self.assertEqual((r["ok"], r["error"]), (False, "bad_field"), r)
        self.assertIn("retained", r["message"])
        # clear it from the broker
        publish.single("embeddb/itest/cmd/snapshot", b"", retain=True, hostname="127.0.0.1",
                       port=self.broker.port)

    def test_commands_off_are_not_taken(self):
        c = self.start(False, "")
        c.send("status")
        c.send("snapshot")
        self.pub("env/csv", "1,2")
        wait_for(lambda: self.agent.status().get("stored") == "1", what="1 stored")
        self.assertEqual(self.agent.status().get("received"), "1")
        self.assertEqual(c.w.msgs, [])
        self.assertEqual(self.agent.stop(), 0)
        with open(self.agent.log) as f:
            self.assertNotIn("command on", f.read())

    def test_fleet_command_reaches_three_agents(self):
        agents = []
        try:
            for name in ("a1", "a2", "a3"):
                d = os.path.join(self.tmp, name)
                os.makedirs(d)
                a = Agent(d, self.broker.port, "control:\n  commands: true\n")
                with open(a.conf) as f:
                    text = f.read().replace("device_id: itest", f"device_id: {name}")
                text = text.replace("client_id: embeddb-itest", f"client_id: embeddb-{name}")
                with open(a.conf, "w") as f:
                    f.write(text)
                a.start()
                agents.append(a)
            c = Commander(self.broker.port, False)
            self.watchers.append(c.w)
            key = c.send("status", device="fleet")
            wait_for(lambda: len(c.replies(key)) == 3, what="three replies")
            got = sorted(r["device_id"] for r in c.replies(key))
            self.assertEqual(got, ["a1", "a2", "a3"])
            self.assertTrue(all(r["ok"] for r in c.replies(key)))
            # one board's own topic reaches that board alone
            key = c.send("status", device="a2")
            wait_for(lambda: c.replies(key), what="a2's reply")
            publish.single("probe/x", b"1", qos=1, hostname="127.0.0.1", port=self.broker.port)
            key3 = c.send("status", device="a2")
            wait_for(lambda: c.replies(key3), what="a2's second reply")
            self.assertEqual([r["device_id"] for r in c.replies(key)], ["a2"])
            for a in agents:
                self.assertEqual(a.stop(), 0)
        finally:
            for a in agents:
                if a.proc.poll() is None:
                    a.proc.kill()
                    a.proc.wait()


if __name__ == "__main__":
    base.BUILD = os.path.abspath(sys.argv.pop(1))
    base.ROOT = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
