#!/usr/bin/python3
"""Integration tests of embeddb-agent against a real mosquitto broker on a
free loopback port: every payload format end to end (read back with
`embeddb get` and compared byte for byte), malformed payloads mixed into
valid traffic, a broker restart and an agent restart mid-stream with
nothing lost at QoS 1, SIGHUP reloads, readiness over $NOTIFY_SOCKET, and
config errors.

Usage: test_agent_mqtt.py BUILD_DIR REPO_ROOT
"""
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

import numpy as np
import paho.mqtt.publish as publish

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tls_servers import read_status  # noqa: E402

BUILD = ROOT = None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def npy_bytes(arr):
    b = io.BytesIO()
    np.save(b, arr)
    return b.getvalue()


def wait_for(pred, timeout=15.0, what="condition"):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Broker:
    def __init__(self, tmp, tls=None):
        self.port = free_port()
        self.dir = os.path.join(tmp, "broker")
        os.makedirs(self.dir, exist_ok=True)
        self.conf = os.path.join(self.dir, "mosquitto.conf")
        with open(self.conf, "w") as f:
            f.write(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
                    f"persistence true\npersistence_location {self.dir}/\n"
                    "autosave_interval 1\nmax_queued_messages 100000\n"
                    # as root it would drop to user mosquitto, which cannot
                    # read the test's private temp directory
                    "user root\n")
            if tls:  # mutual TLS: the broker demands a client certificate
                f.write(f"cafile {tls}/ca.pem\ncertfile {tls}/server.pem\n"
                        f"keyfile {tls}/server.key\nrequire_certificate true\n"
                        "tls_version tlsv1.2\n")
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(["mosquitto", "-c", self.conf],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self._listening, what="mosquitto to listen")

    def _listening(self):
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
            return True
        except OSError:
            return False

    def stop(self):
        if self.proc:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


def make_pki(d, name="ca"):
    """A test CA, a server certificate for localhost and a client one."""
    os.makedirs(d, exist_ok=True)

    def ossl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)

    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
         f"/CN=embeddb test {name}", "-keyout", "ca.key", "-out", "ca.pem")
    for who, san in (("server", "subjectAltName=DNS:localhost,IP:127.0.0.1"),
                     ("client", "extendedKeyUsage=clientAuth")):
        ossl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={who}", "-keyout",
             f"{who}.key", "-out", f"{who}.csr")
        with open(os.path.join(d, f"{who}.ext"), "w") as f:
            f.write(san + "\n")
        ossl("x509", "-req", "-in", f"{who}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "2", "-extfile", f"{who}.ext", "-out", f"{who}.pem")
    return d


class Agent:
    def __init__(self, tmp, port, extra=""):
        self.tmp = tmp
        self.store = os.path.join(tmp, "store")
        self.conf = os.path.join(tmp, "agent.yaml")
        self.write_config(port, extra)
        self.proc = None
        self.log = os.path.join(tmp, "agent.log")
        self.notify = None

    def write_config(self, port, extra="", subs=None, host="127.0.0.1", mqtt_extra=""):
        subs = subs or """    - {topic: "cam/+/npy", qos: 1, format: npy}
    - {topic: "imu/raw", qos: 1, format: raw, dtype: int16, shape: [4, 3]}
    - {topic: "env/json", qos: 1, format: json}
    - {topic: "env/csv", qos: 1, format: csv, dtype: float64}
"""
        with open(self.conf, "w") as f:
            f.write(f"""device_id: itest
storage:
  dir: {self.store}
  memtable_max: 1MiB
mqtt:
  host: {host}
  port: {port}
{mqtt_extra}
  client_id: embeddb-itest
  keepalive: 5s
  max_payload: 1MiB
  subscriptions:
{subs}batch:
  max_tensors: 16
  max_delay_ms: 50ms
log:
  level: debug
{extra}""")

    def start(self):
        sock_path = os.path.join(self.tmp, "notify.sock")
        if os.path.exists(sock_path):
            os.unlink(sock_path)
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(sock_path)
        self.notify.settimeout(15)
        env = dict(os.environ, NOTIFY_SOCKET=sock_path)
        self.logf = open(self.log, "a")
        self.proc = subprocess.Popen([os.path.join(BUILD, "agent", "embeddb-agent"), "-c",
                                      self.conf], stderr=self.logf, env=env)
        msgs = []
        while not any(m.startswith(b"READY=1") for m in msgs):
            msgs.append(self.notify.recv(4096))
        return msgs

    def stop(self, sig=signal.SIGTERM):
        t0 = time.monotonic()
        self.proc.send_signal(sig)
        rc = self.proc.wait(timeout=10)
        self.stop_seconds = time.monotonic() - t0
        self.logf.close()
        self.notify.close()
        return rc

    def status(self):
        return read_status(self.store)


def slurp(path):
    with open(path) as f:
        return f.read()


def embeddb(*args):
    return subprocess.run([os.path.join(BUILD, "cli", "embeddb"), *map(str, args)],
                          capture_output=True, text=True, timeout=60)


class AgentTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="embeddb-itest-")
        self.broker = Broker(self.tmp)
        self.broker.start()
        self.agent = Agent(self.tmp, self.broker.port)

    def tearDown(self):
        if self.agent.proc and self.agent.proc.poll() is None:
            self.agent.proc.kill()
        self.broker.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def pub(self, topic, payload, qos=1):
        publish.single(topic, payload, qos=qos, hostname="127.0.0.1", port=self.broker.port)

    def mosq_pub(self, topic, message):
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.broker.port),
                        "-q", "1", "-t", topic, "-m", message], check=True, timeout=10)

    def rows(self, prefix=""):
        r = embeddb("ls", self.agent.store, *([prefix] if prefix else []))
        self.assertEqual(r.returncode, 0, r.stderr)
        return [l.split("\t") for l in r.stdout.splitlines()[1:]]

    def get(self, key):
        out = os.path.join(self.tmp, "x.npy")
        r = embeddb("get", self.agent.store, key, "-o", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        return np.load(out)

    def test_every_format_is_stored_with_the_right_bytes(self):
        self.agent.start()
        arrays = [np.arange(12, dtype=np.float32).reshape(3, 4),
                  np.array([[1, -2], [3, 4]], np.int64),
                  np.array([True, False, True]),
                  np.full((32, 32), 0.25, np.float32)]
        for a in arrays:
            self.pub("cam/0/npy", npy_bytes(a))
        imu = np.arange(12, dtype=np.int16).reshape(4, 3) - 6
        self.pub("imu/raw", imu.tobytes())
        self.mosq_pub("env/json", '{"shape":[2,2],"dtype":"uint8","data":[[1,2],[3,4]]}')
        self.mosq_pub("env/csv", "0.5,1.5,2.5")
        wait_for(lambda: self.agent.status().get("stored") == "7", what="7 stored")
        self.assertEqual(self.agent.stop(), 0)
        self.assertLess(self.agent.stop_seconds, 5.0)  # SIGTERM: commit, flush, exit
        cam = self.rows("cam/0/npy#")
        self.assertEqual(len(cam), 4)
        for row, a in zip(cam, arrays):  # ls order = arrival order
            got = self.get(row[0])
            self.assertEqual(got.dtype, a.dtype)
            np.testing.assert_array_equal(got, a)
        np.testing.assert_array_equal(self.get(self.rows("imu/raw#")[0][0]), imu)
        np.testing.assert_array_equal(self.get(self.rows("env/json#")[0][0]),
                                      np.array([[1, 2], [3, 4]], np.uint8))
        np.testing.assert_array_equal(self.get(self.rows("env/csv#")[0][0]),
                                      np.array([0.5, 1.5, 2.5]))
        self.assertEqual(embeddb("verify", self.agent.store).returncode, 0)
        stats = embeddb("stats", self.agent.store)
        self.assertRegex(stats.stdout, r"stored\s+7")
        self.assertRegex(stats.stdout, r"state\s+stopped")

    def test_malformed_payloads_are_counted_and_skipped(self):
        self.agent.start()
        good = npy_bytes(np.ones(4, np.float32))
        bad = [("cam/0/npy", b"not npy"), ("cam/0/npy", npy_bytes(np.ones(3, ">f4"))),
               ("imu/raw", b"\x00" * 5), ("env/json", b"{oops"), ("env/csv", b"1,,2"),
               ("env/json", b'{"shape":[3],"data":[1]}'), ("cam/0/npy", b"x" * (2 << 20))]
        for i in range(5):
            self.pub("cam/0/npy", good)
            topic, payload = bad[i % len(bad)]
            self.pub(topic, payload)
        for topic, payload in bad[5:]:
            self.pub(topic, payload)
        wait_for(lambda: self.agent.status().get("stored") == "5", what="5 stored")
        wait_for(lambda: int(self.agent.status().get("received", 0)) == 12, what="12 received")
        st = self.agent.status()
        self.assertEqual(self.agent.stop(), 0)
        rejected = {k: int(v) for k, v in st.items() if k.startswith("rejected_")}
        self.assertEqual(sum(rejected.values()), 7, st)
        self.assertEqual(rejected["rejected_too_large"], 1)
        self.assertEqual(rejected["rejected_unsupported"], 1)
        self.assertEqual(len(self.rows("cam/0/npy#")), 5)
        self.assertIn("rejected a npy payload on cam/0/npy (unsupported): big-endian",
                      slurp(self.agent.log))

    def test_topics_too_long_for_a_key_are_refused_alone(self):
        # Keys are <topic>#<20 digits>, at most 1024 bytes: a 1003-byte topic
        # is the longest that fits. Longer ones are refused one by one at
        # decode time, never cut (two topics would share keys) and never
        # holding up the valid tensors batched with them.
        self.agent.write_config(self.broker.port,
                                subs='    - {topic: "long/#", qos: 1, format: csv}\n')
        self.agent.start()
        fit = "long/" + "a" * (1003 - 5)
        fit2 = fit[:-1] + "b"
        over = "long/" + "a" * (1004 - 5)
        over2 = over[:-1] + "b"
        huge = "long/" + "z" * 5000  # longer than a name may be, too
        self.assertEqual((len(fit), len(over)), (1003, 1004))
        msgs = []
        for i in range(5):
            msgs += [{"topic": fit, "payload": str(i), "qos": 1},
                     {"topic": over, "payload": str(i), "qos": 1},
                     {"topic": fit2, "payload": str(100 + i), "qos": 1},
                     {"topic": over2, "payload": str(i), "qos": 1},
                     {"topic": huge, "payload": "1", "qos": 1}]
        publish.multiple(msgs, hostname="127.0.0.1", port=self.broker.port)
        wait_for(lambda: self.agent.status().get("rejected_topic_too_long") == "15" and
                 self.agent.status().get("stored") == "10", what="10 stored, 15 refused")
        self.assertEqual(self.agent.stop(), 0)
        self.assertLess(self.agent.stop_seconds, 5.0)
        for topic, first in ((fit, 0), (fit2, 100)):
            rows = self.rows(topic + "#")
            self.assertEqual(len(rows), 5)
            self.assertTrue(all(len(r[0]) == 1024 for r in rows))
            self.assertEqual([float(self.get(r[0])[0]) for r in rows],
                             [float(first + i) for i in range(5)])
        self.assertEqual(len(self.rows()), 10)
        self.assertIn("(topic_too_long)", slurp(self.agent.log))

    def test_agent_restart_loses_nothing_queued_meanwhile(self):
        self.agent.start()
        for i in range(20):
            self.pub("cam/0/npy", npy_bytes(np.full(8, i, np.float32)))
        wait_for(lambda: self.agent.status().get("stored") == "20", what="20 stored")
        self.assertEqual(self.agent.stop(), 0)
        for i in range(20, 50):  # the broker queues these for our session
            self.pub("cam/0/npy", npy_bytes(np.full(8, i, np.float32)))
        self.agent.start()
        wait_for(lambda: self.agent.status().get("stored") == "30", what="30 more stored")
        self.assertEqual(self.agent.stop(), 0)
        rows = self.rows("cam/0/npy#")
        self.assertEqual(len(rows), 50)
        values = [int(self.get(r[0])[0]) for r in rows]
        self.assertEqual(values, list(range(50)))  # arrival order, nothing lost

    def test_broker_restart_mid_stream_loses_nothing(self):
        self.agent.start()
        for i in range(10):
            self.pub("cam/0/npy", npy_bytes(np.full(4, i, np.float32)))
        wait_for(lambda: self.agent.status().get("stored") == "10", what="10 stored")
        self.broker.stop()
        wait_for(lambda: self.agent.status().get("connected") == "0", what="disconnect seen")
        self.broker.start()
        for i in range(10, 30):
            self.pub("cam/0/npy", npy_bytes(np.full(4, i, np.float32)))
        wait_for(lambda: self.agent.status().get("stored") == "30", timeout=45,
                 what="30 stored after the broker came back")
        self.assertEqual(self.agent.stop(), 0)
        values = sorted(int(self.get(r[0])[0]) for r in self.rows("cam/0/npy#"))
        self.assertEqual(values, list(range(30)))

    def test_sighup_reload_adds_topics_and_refuses_bad_config(self):
        msgs = self.agent.start()
        self.assertTrue(any(m.startswith(b"READY=1") for m in msgs))
        good = slurp(self.agent.conf)
        with open(self.agent.conf, "w") as f:
            f.write(good.replace("device_id: itest", "device_id: [broken"))
        self.agent.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "reload refused" in slurp(self.agent.log), what="refusal")
        self.assertIsNone(self.agent.proc.poll())
        self.agent.write_config(self.broker.port, subs="""    - {topic: "cam/+/npy", qos: 1, format: npy}
    - {topic: "new/csv", qos: 1, format: csv}
""")
        self.agent.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "configuration reloaded: 2" in slurp(self.agent.log), what="reload")
        # Retained: delivered whenever the new subscription becomes active.
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.broker.port),
                        "-q", "1", "-r", "-t", "new/csv", "-m", "7,8"], check=True, timeout=10)
        wait_for(lambda: self.agent.status().get("stored") == "1", what="new topic stored")
        self.assertEqual(self.agent.stop(), 0)
        self.assertEqual(self.rows("new/csv#")[0][3], "2")

    def test_sigint_mid_batch_commits_what_arrived(self):
        self.agent.write_config(self.broker.port, extra="")
        with open(self.agent.conf) as f:  # a batch window far longer than the test
            text = f.read().replace("max_delay_ms: 50ms", "max_delay_ms: 1h")
        with open(self.agent.conf, "w") as f:
            f.write(text)
        self.agent.start()
        for i in range(5):
            self.mosq_pub("env/csv", f"{i},{i}")
        wait_for(lambda: int(self.agent.status().get("received", 0)) == 5, what="5 received")
        self.assertEqual(self.agent.status().get("stored"), "0")  # still batching
        self.assertEqual(self.agent.stop(signal.SIGINT), 0)
        self.assertLess(self.agent.stop_seconds, 5.0)
        self.assertEqual(len(self.rows("env/csv#")), 5)

    def test_connection_stays_up_under_load(self):
        # keepalive is 5 s (the broker drops a client silent for 7.5 s); 10 s
        # of steady 4 KiB QoS 1 traffic keeps the agent committing (one
        # fdatasync per batch) the whole time, and the session must hold.
        self.agent.start()
        frame = npy_bytes(np.full((32, 32), 0.5, np.float32))
        t0 = time.monotonic()
        for second in range(10):
            publish.multiple([{"topic": "cam/1/npy", "payload": frame, "qos": 1}] * 800,
                             hostname="127.0.0.1", port=self.broker.port)
            time.sleep(max(0.0, t0 + second + 1 - time.monotonic()))
        wait_for(lambda: self.agent.status().get("stored") == "8000", timeout=120,
                 what="8000 stored")
        st = self.agent.status()
        self.assertEqual(self.agent.stop(), 0)
        self.assertEqual(st.get("reconnects"), "0", st)
        self.assertEqual(st.get("connected"), "1")
        # batch.max_tensors is 16: no batch may hold more, however fast the
        # queue filled.
        self.assertGreaterEqual(int(st["batches"]), 8000 // 16)

    def test_mqtt5_session_stores(self):
        self.agent.write_config(self.broker.port, mqtt_extra='  protocol: 5\n')
        self.agent.start()
        self.mosq_pub("env/csv", "1,2,3")
        wait_for(lambda: self.agent.status().get("stored") == "1", what="stored over MQTT 5")
        self.assertEqual(self.agent.stop(), 0)

    def test_mutual_tls_to_the_broker(self):
        pki = make_pki(os.path.join(self.tmp, "pki"))
        self.broker.stop()
        self.broker = Broker(self.tmp, tls=pki)
        self.broker.start()
        tls = (f"  tls:\n    ca_file: {pki}/ca.pem\n    cert_file: {pki}/client.pem\n"
               f"    key_file: {pki}/client.key\n")
        self.agent.write_config(self.broker.port, host="localhost", mqtt_extra=tls)
        self.agent.start()
        subprocess.run(["mosquitto_pub", "-h", "localhost", "-p", str(self.broker.port),
                        "--cafile", f"{pki}/ca.pem", "--cert", f"{pki}/client.pem", "--key",
                        f"{pki}/client.key", "-q", "1", "-t", "env/csv", "-m", "4,5"],
                       check=True, timeout=10)
        wait_for(lambda: self.agent.status().get("stored") == "1", what="stored over TLS")
        self.assertEqual(self.agent.stop(), 0)
        # A broker certificate from another CA is refused: never subscribed.
        other = make_pki(os.path.join(self.tmp, "other"), "other")
        tls_other = tls.replace(f"{pki}/ca.pem", f"{other}/ca.pem")
        self.agent.write_config(self.broker.port, host="localhost", mqtt_extra=tls_other)
        env = dict(os.environ)
        env.pop("NOTIFY_SOCKET", None)
        proc = subprocess.Popen([os.path.join(BUILD, "agent", "embeddb-agent"), "-c",
                                 self.agent.conf], stderr=subprocess.PIPE, text=True, env=env)
        # Two attempts refused (the second after the 1 s backoff), never subscribed.
        wait_for(lambda: int(self.agent.status().get("connect_failures", "0")) >= 2 and
                 self.agent.status().get("pid") == str(proc.pid), what="two refused attempts")
        self.assertEqual(self.agent.status().get("subscribed"), "0")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
        self.assertEqual(proc.returncode, 0)
        self.assertNotIn("ready: subscribed", err)

    def test_full_disk_is_reported_and_nothing_is_lost(self):
        small = os.path.join(self.tmp, "small")
        os.makedirs(small)
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", small],
                          capture_output=True).returncode != 0:
            self.skipTest("cannot mount a small tmpfs here (needs root)")
        try:
            self.agent.store = os.path.join(small, "store")
            self.agent.write_config(self.broker.port)
            with open(self.agent.conf) as f:
                # min_free 0: no floor beyond the batch itself fitting.
                text = f.read().replace(os.path.join(self.tmp, "store"), self.agent.store)
                text = text.replace("  memtable_max: 1MiB\n", "  memtable_max: 1MiB\n  min_free: 0\n")
            with open(self.agent.conf, "w") as f:
                f.write(text)
            self.agent.start()
            filler = os.path.join(small, "filler")
            with open(filler, "wb") as f:  # leave roughly 150 KiB free
                free = os.statvfs(small).f_bavail * os.statvfs(small).f_frsize
                f.write(b"\0" * max(0, free - 150 * 1024))
            blob = npy_bytes(np.arange(16384, dtype=np.float32))  # 64 KiB each
            for i in range(6):
                self.pub("cam/0/npy", blob)
            # The agent sees the file system full before writing (statvfs:
            # "storage full", a budget refusal) or, when its estimate is
            # short, the write itself fails (ENOSPC, a commit failure).
            wait_for(lambda: int(self.agent.status().get("commit_failures", 0)) +
                     int(self.agent.status().get("budget_refusals", 0)) > 0,
                     what="a refused or failed commit")
            self.assertRegex(slurp(self.agent.log), "No space left on device|storage full")
            os.unlink(filler)  # the operator frees space; the agent retries
            wait_for(lambda: self.agent.status().get("stored") == "6", what="6 stored")
            self.assertEqual(self.agent.stop(), 0)
            self.assertEqual(len(self.rows("cam/0/npy#")), 6)
            self.assertEqual(embeddb("verify", self.agent.store).returncode, 0)
        finally:
            subprocess.run(["umount", "-l", small])

    def test_check_config_reports_file_line_column(self):
        agent = os.path.join(BUILD, "agent", "embeddb-agent")
        ok = subprocess.run([agent, "--check-config", "-c", os.path.join(ROOT, "conf",
                                                                          "agent.yaml")],
                            capture_output=True, text=True)
        self.assertEqual(ok.returncode, 0, ok.stderr)
        bad = os.path.join(self.tmp, "bad.yaml")
        with open(bad, "w") as f:
            f.write("device_id: d\nstorage:\n  dir: /tmp/x\nmqtt:\n  host: h\n  port: 99999\n")
        r = subprocess.run([agent, "--check-config", "-c", bad], capture_output=True, text=True)
        self.assertEqual(r.returncode, 1)
        self.assertIn("bad.yaml:6:9: mqtt.port: expected an integer 1..65535", r.stderr)
        r = subprocess.run([agent, "-c", bad], capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 1)


if __name__ == "__main__":
    BUILD = os.path.abspath(sys.argv.pop(1))
    ROOT = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
