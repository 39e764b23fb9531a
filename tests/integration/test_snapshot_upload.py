#!/usr/bin/python3
"""Integration tests of snapshots and their upload, end to end through
embeddb-agent, against real servers on loopback: mosquitto, nginx (HTTPS,
WebDAV PUT) with a test CA made here, s3rver from the npm registry (S3 with
signature checks, over TLS), and a recording HTTPS server whose requests
are re-signed with botocore to compare signatures.

Covered: an upload that lands and whose tar extracts into a store `embeddb`
reads; rolling retention of uploaded snapshots; a server that is down and
comes back; upload.ciphersuites deciding the suite nginx logs (and one
the server cannot use failing the handshake); a certificate from another CA and a wrong host name (refused);
mutual TLS (accepted with our certificate, refused without); 500s retried
with backoff; a stalled server hitting the I/O timeout; S3 mode against
s3rver with the object read back; the SigV4 front checking every request
of a multipart upload (POST, PUT part, Complete, and ListParts and Abort,
which the front itself implements on s3rver's state); a server answering 2xx before it has the
body (put and s3: retried, never marked uploaded nor deleted, then uploaded
by an honest server); zstd (nginx) and gzip (s3rver) objects unpacked by
`zstd -d`, `tar --zstd` and `gzip -d` into the snapshot's exact tar and
files and read in place (file and stdin) by `embeddb verify` and `embeddb
ls`, and a STATE whose measure lies found out before the last byte;
memory while uploading, uncompressed, gzip and zstd: the kernel's peak
RSS from the seal to the upload's end within 2 MiB of idle, and no more
for 24 MiB than for 8, once the agent has made its first upload (which
may add the codec's context);
SIGTERM while an upload is stuck in connect,
handshake, body, or a missing, flooded or trickled response (the agent
exits 0 at once, the snapshot stays sealed), and while upload.max_rate
holds the body back; the flash budget with uploads
failing (drop_oldest: usage stays inside max_disk and the loss counters
match; reject_new: nothing dropped, everything stored once uploads work
again).

Counters in agent.status are rewritten once a second, after STATE: tests
wait for them (wait_for), never read them once right after another signal.

Usage: test_snapshot_upload.py BUILD_DIR REPO_ROOT
"""
import ctypes
import hashlib
import http.server
import io
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import unittest
from xml.sax.saxutils import escape as xml_escape

import numpy as np
import paho.mqtt.publish as publish

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tls_servers import (FullBacklog, HostileServer, Nginx, StalledServer, free_port,  # noqa: E402
                         make_pki, proc_bytes, read_status, sanitized, syn_sent_to,
                         unbufferable_bytes, wait_for)
from test_agent_mqtt import Broker  # noqa: E402

BUILD = ROOT = None
DEVICE = "itest-dev"


def embeddb(*args):
    return subprocess.run([os.path.join(BUILD, "cli", "embeddb"), *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def store_count(d):
    r = embeddb("ls", d)
    assert r.returncode == 0, r.stderr
    return len(r.stdout.splitlines()) - 1


def store_values(d):
    """The first value of every tensor in store d (publish_n's message number)."""
    out = []
    for line in embeddb("ls", d).stdout.splitlines()[1:]:
        key = line.split("\t")[0]
        r = embeddb("preview", d, key, "-n", "1")
        out.append(int(float(r.stdout.split("->")[1].split(",")[0])))
    return out


def snapshots(store):
    """embeddb snapshot ls as a list of dicts."""
    r = embeddb("snapshot", "ls", store)
    assert r.returncode == 0, r.stderr
    lines = [l for l in r.stdout.splitlines() if l and not l.startswith("#")]
    head = lines[0].split("\t")
    return [dict(zip(head, l.split("\t"))) for l in lines[1:]]


def file_bytes(d):
    """Bytes of every file under d (what storage.max_disk bounds), each inode
    once: sealing hard-links an SST into the snapshot before unlinking it
    from the store, and a file renamed between two directories mid-walk can
    be listed in both; neither takes its bytes twice on flash."""
    sizes = {}
    for dp, _, names in os.walk(d):
        for n in names:
            try:
                st = os.lstat(os.path.join(dp, n))
            except FileNotFoundError:
                continue  # deleted between listing and stat
            sizes[(st.st_dev, st.st_ino)] = st.st_size
    return sum(sizes.values())


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Agent:
    def __init__(self, tmp, broker_port, storage="", snapshot="", upload=""):
        self.tmp = tmp
        self.store = os.path.join(tmp, "store")
        self.conf = os.path.join(tmp, "agent.yaml")
        self.log = os.path.join(tmp, "agent.log")
        self.proc = None
        with open(self.conf, "w") as f:
            f.write(f"""device_id: {DEVICE}
storage:
  dir: {self.store}
  memtable_max: 256KiB
  min_free: 1MiB
{storage}
mqtt:
  host: 127.0.0.1
  port: {broker_port}
  client_id: embeddb-upload-itest
  subscriptions:
    - {{topic: "s/+", qos: 1, format: raw, dtype: float32, shape: [256]}}
    - {{topic: "big/+", qos: 1, format: raw, dtype: float32, shape: [4096]}}
batch:
  max_tensors: 16
  max_bytes: 1MiB
  max_delay_ms: 20ms
snapshot:
  interval: 1h
{snapshot}
{upload}
log:
  level: debug
""")

    def start(self):
        self.logf = open(self.log, "a")
        self.proc = subprocess.Popen([os.path.join(BUILD, "agent", "embeddb-agent"), "-c",
                                      self.conf], stderr=self.logf)
        wait_for(lambda: self.status().get("subscribed") == "1" or self.proc.poll() is not None,
                 what="the agent to subscribe")
        assert self.proc.poll() is None, self.log_text()

    def stop(self):
        """SIGTERM; the exit code (None if it was not running). stop_seconds:
        from the signal to the exit."""
        if self.proc and self.proc.poll() is None:
            t0 = time.monotonic()
            self.proc.send_signal(signal.SIGTERM)
            rc = self.proc.wait(timeout=60)
            self.stop_seconds = time.monotonic() - t0
            self.logf.close()
            return rc
        return None

    def status(self):
        return read_status(self.store)

    def stat(self, key):
        return int(self.status().get(key, "0"))

    def log_text(self):
        with open(self.log) as f:
            return f.read()

    def seal(self):
        """Asks the agent for a snapshot the way an operator does."""
        r = embeddb("snapshot", self.store)
        assert r.returncode == 0 and "asked embeddb-agent" in r.stdout, (
            f"{r.stdout}{r.stderr}agent exit {self.proc.poll()}:\n{self.log_text()[-3000:]}")


def publish_n(port, n, start=0, topic="s/a", floats=256):
    msgs = [{"topic": topic, "qos": 1,
             "payload": np.full(floats, start + i, np.float32).tobytes()} for i in range(n)]
    for i in range(0, n, 500):
        publish.multiple(msgs[i:i + 500], hostname="127.0.0.1", port=port)


class UploadTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="embeddb-upload-")
        self.broker = Broker(self.tmp)
        self.broker.start()
        self.pki = make_pki(os.path.join(self.tmp, "pki"), "main")
        self.servers = []
        self.agent = None

    def tearDown(self):
        if self.agent and self.agent.proc and self.agent.proc.poll() is None:
            self.agent.proc.kill()
            self.agent.proc.wait()
            self.agent.logf.close()
        for s in self.servers:
            s.stop()
        self.broker.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def nginx(self, **kw):
        web = Nginx(self.tmp, self.pki, **kw)
        self.servers.append(web)
        return web

    def upload_conf(self, port, path="/up", extra="", ca=None, connect="2s", io="2s",
                    response=None):
        return (f"upload:\n  url: https://localhost:{port}{path}\n  ca_file: {ca or self.pki.ca}\n"
                f"  prefix: fleet\n  connect_timeout: {connect}\n  io_timeout: {io}\n"
                + (f"  response_timeout: {response}\n" if response else "") +
                f"  retry: {{initial: 200ms, max: 1s}}\n{extra}")

    def start_agent(self, **kw):
        self.agent = Agent(self.tmp, self.broker.port, **kw)
        self.agent.start()
        return self.agent

    def wait_state(self, state, n=1, timeout=30):
        wait_for(lambda: sum(s["state"] == state for s in snapshots(self.agent.store)) >= n,
                 timeout=timeout, what=lambda: f"{n} snapshot(s) {state}: "
                 f"{snapshots(self.agent.store)}\n{self.agent.log_text()[-3000:]}")

    def published_and_sealed(self, n):
        publish_n(self.broker.port, n)
        wait_for(lambda: self.agent.stat("stored") >= n, what="the messages to be stored")
        self.agent.seal()

    def big_snapshot_sealed(self):
        """Seals one snapshot of 16 KiB tensors too large to vanish into
        socket buffers (unbufferable_bytes): a server that stops reading
        leaves its upload unfinished. Returns the tensor count."""
        n = unbufferable_bytes() // (16 << 10) + 16
        publish_n(self.broker.port, n, topic="big/a", floats=4096)
        wait_for(lambda: self.agent.stat("stored") >= n, timeout=60,
                 what="the big messages to be stored")
        self.agent.seal()
        wait_for(lambda: len(snapshots(self.agent.store)) == 1, what="the snapshot sealed")
        return n

    def wait_counter(self, key, at_least, timeout=30):
        wait_for(lambda: self.agent.stat(key) >= at_least, timeout=timeout,
                 what=lambda: f"{key} >= {at_least}: {self.agent.status()}\n"
                 f"{self.agent.log_text()[-3000:]}")

    # ---- HTTPS PUT ------------------------------------------------------------

    def test_upload_lands_and_its_tar_is_a_store(self):
        web = self.nginx().start()
        token = os.path.join(self.tmp, "token")
        with open(token, "w") as f:
            f.write("t0ken\n")
        self.start_agent(snapshot="  keep: 1",
                         upload=self.upload_conf(web.port, extra=f"  token_file: {token}\n"))
        self.published_and_sealed(100)
        self.wait_state("uploaded")
        snap = snapshots(self.agent.store)[0]
        obj = web.object_path(f"/up/fleet/{DEVICE}/{snap['name']}.tar")
        self.assertTrue(os.path.exists(obj), os.listdir(web.root))
        with open(os.path.join(self.agent.store, "snapshots", snap["name"], "STATE")) as f:
            state = f.read()
        self.assertIn(f"tar_sha256={sha256_file(obj)}", state)
        out = os.path.join(self.tmp, "received")
        with tarfile.open(obj) as tf:
            names = tf.getnames()
            tf.extractall(out)
        self.assertIn(f"{snap['name']}/MANIFEST.json", names)
        got = os.path.join(out, snap["name"])
        self.assertEqual(store_count(got), 100)
        self.assertEqual(embeddb("verify", got).returncode, 0)
        r = embeddb("ls", got, "s/a#")
        first = r.stdout.splitlines()[1].split("\t")[0]
        self.assertIn("0, 0, 0", embeddb("preview", got, first, "-n", "3").stdout)
        # MANIFEST.json's hashes describe the received files.
        with open(os.path.join(got, "MANIFEST.json")) as f:
            manifest = f.read()
        for name, sha in re.findall(r'"name": "([^"]+)", "bytes": \d+, "sha256": "([0-9a-f]+)"',
                                    manifest):
            self.assertEqual(sha256_file(os.path.join(got, name)), sha, name)
        self.assertIn('"s/a": 100', manifest)
        # The bearer token went out (nginx logs it only as a header count, so
        # the request is checked for shape instead): PUT with our user agent.
        with open(web.access_log) as f:
            log = f.read()
        self.assertRegex(log, rf'"PUT /up/fleet/{DEVICE}/{snap["name"]}.tar HTTP/1.1" 201')
        # Rolling retention: with keep 1, the first uploaded snapshot goes
        # once a second one is uploaded.
        self.published_and_sealed(150)
        wait_for(lambda: [s["state"] for s in snapshots(self.agent.store)] == ["uploaded"] and
                 snapshots(self.agent.store)[0]["name"] != snap["name"],
                 timeout=30, what="retention to keep one uploaded snapshot")
        # agent.status is rewritten once a second, after STATE: wait for it.
        wait_for(lambda: self.agent.stat("snapshots_uploaded") == 2,
                 what="the second upload counted")
        self.assertTrue(os.path.exists(obj))  # the server's copy is not ours to delete
        self.assertNotIn("t0ken", self.agent.log_text())
        self.assertEqual(self.agent.stop(), 0)

    def test_ciphersuites_choose_the_negotiated_suite(self):
        # nginx logs the suite of every request ($ssl_cipher, OpenSSL's
        # names); the agent offers only what upload.ciphersuites lists.
        web = self.nginx().start()
        cases = [("TLS-ECDHE-RSA-WITH-CHACHA20-POLY1305-SHA256", "ECDHE-RSA-CHACHA20-POLY1305"),
                 ("TLS-ECDHE-RSA-WITH-AES-128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256")]
        keep = "  keep: 10"  # retention must not take an uploaded one while we count them
        for k, (ours, openssl) in enumerate(cases):
            self.start_agent(snapshot=keep, upload=self.upload_conf(
                web.port, extra=f"  ciphersuites: [{ours}]\n"))
            self.published_and_sealed(20)
            self.wait_state("uploaded", n=k + 1)
            self.assertIn("cipher suites: as configured, first " + ours, self.agent.log_text())
            self.assertIn(f"TLS suite {ours}", self.agent.log_text())
            name = snapshots(self.agent.store)[k]["name"]
            with open(web.access_log) as f:
                self.assertRegex(f.read(), rf"PUT /up/fleet/{DEVICE}/{name}.tar HTTP/1.1\" 201 "
                                 rf"\d+ TLSv1.2 {openssl} ")
            self.assertEqual(self.agent.stop(), 0)
        # A suite the server cannot use (ECDSA, its certificate is RSA): the
        # handshake fails, retried, never an upload.
        self.start_agent(snapshot=keep, upload=self.upload_conf(
            web.port, extra="  ciphersuites: [TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256]\n"))
        self.published_and_sealed(20)
        self.wait_counter("upload_retries", 1)
        snap = [s for s in snapshots(self.agent.store) if s["state"] != "uploaded"][0]
        self.assertIn("TLS handshake", snap["error"])
        self.assertEqual(self.agent.stop(), 0)
        # The default names its order: this machine's AES instructions decide.
        self.start_agent(snapshot=keep, upload=self.upload_conf(web.port))
        self.wait_state("uploaded", n=3)
        self.assertRegex(self.agent.log_text(), r"cipher suites: (mbedTLS's AEAD order \(AES "
                         r"instructions here\)|ChaCha20-Poly1305 first \(no AES instructions "
                         r"here\)), first TLS-")

    def test_server_down_then_back_resumes(self):
        port = free_port()
        self.start_agent(upload=self.upload_conf(port))
        self.published_and_sealed(50)
        wait_for(lambda: self.agent.stat("upload_retries") >= 2, what="retries while down")
        self.wait_state("sealed")  # between attempts (one may be running now)
        snap = snapshots(self.agent.store)[0]
        self.assertIn("localhost", snap["error"])
        web = self.nginx(port=port).start()
        self.wait_state("uploaded")
        self.assertTrue(os.path.exists(
            web.object_path(f"/up/fleet/{DEVICE}/{snap['name']}.tar")))

    def test_upload_survives_an_agent_restart(self):
        port = free_port()
        self.start_agent(upload=self.upload_conf(port))
        self.published_and_sealed(50)
        wait_for(lambda: self.agent.stat("upload_retries") >= 1, what="a failed attempt")
        self.assertEqual(self.agent.stop(), 0)
        web = self.nginx(port=port).start()
        self.agent.start()
        self.wait_state("uploaded")
        name = snapshots(self.agent.store)[0]["name"]
        self.assertTrue(os.path.exists(web.object_path(f"/up/fleet/{DEVICE}/{name}.tar")))

    def test_certificate_from_another_ca_is_refused(self):
        other = make_pki(os.path.join(self.tmp, "other"), "other")
        web = self.nginx(cert=other.server_cert, key=other.server_key).start()
        self.start_agent(upload=self.upload_conf(web.port))
        self.published_and_sealed(20)
        wait_for(lambda: self.agent.stat("upload_retries") >= 2, what="refused attempts")
        self.wait_state("sealed")  # between attempts (one may be running now)
        snap = snapshots(self.agent.store)[0]
        self.assertRegex(snap["error"].lower(), "certificate|verif")
        self.assertEqual(os.listdir(web.root), [])

    def test_wrong_host_name_is_refused(self):
        cert, key = self.pki.issue("otherhost", "subjectAltName=DNS:otherhost")
        web = self.nginx(cert=cert, key=key).start()
        self.start_agent(upload=self.upload_conf(web.port))
        self.published_and_sealed(20)
        wait_for(lambda: self.agent.stat("upload_retries") >= 2, what="refused attempts")
        snap = snapshots(self.agent.store)[0]
        self.assertRegex(snap["error"].lower(), "name|cn|host")
        self.assertEqual(os.listdir(web.root), [])

    def test_client_certificate_accepted_and_required(self):
        web = self.nginx(require_client_cert=True).start()
        extra = f"  cert_file: {self.pki.client_cert}\n  key_file: {self.pki.client_key}\n"
        self.start_agent(upload=self.upload_conf(web.port, extra=extra))
        self.published_and_sealed(20)
        self.wait_state("uploaded")
        self.agent.stop()
        # Without a certificate nginx answers 400: a 4xx marks it failed,
        # left for an operator, and `embeddb snapshot retry` hands it back.
        shutil.rmtree(self.agent.store)
        self.start_agent(upload=self.upload_conf(web.port))
        self.published_and_sealed(20)
        self.wait_state("failed")
        snap = snapshots(self.agent.store)[0]
        self.assertIn("400", snap["error"])
        wait_for(lambda: self.agent.stat("snapshots_failed") == 1, what="the failure counted")
        r = embeddb("snapshot", "retry", self.agent.store, snap["name"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.agent.stop()
        self.agent.start()
        self.wait_state("failed")
        self.assertEqual(snapshots(self.agent.store)[0]["attempts"], "1")

    def test_server_errors_are_retried_with_backoff(self):
        web = self.nginx().start()
        self.start_agent(upload=self.upload_conf(web.port, path="/fail500"))
        self.published_and_sealed(20)
        wait_for(lambda: self.agent.stat("upload_retries") >= 3, what="three retries")
        self.wait_state("sealed")  # between attempts (one may be running now)
        snap = snapshots(self.agent.store)[0]
        self.assertIn("HTTP 500", snap["error"])
        self.assertIn("injected failure", snap["error"])
        delays = [int(m) for m in re.findall(r"retrying in (\d+) ms", self.agent.log_text())]
        self.assertGreaterEqual(len(delays), 3)
        self.assertTrue(all(100 <= d <= 1000 for d in delays), delays)
        self.assertGreater(max(delays[2:]), 250, delays)  # it grew from 200 ms

    def test_stalled_server_hits_the_io_timeout(self):
        stall = StalledServer(self.pki.server_cert, self.pki.server_key).start()
        self.servers.append(stall)
        self.start_agent(upload=self.upload_conf(stall.port))
        self.published_and_sealed(20)
        # Ingest goes on while the worker is stuck in an upload.
        wait_for(lambda: self.agent.status().get("uploading", "-") != "-", what="an upload")
        publish_n(self.broker.port, 40, start=100)
        wait_for(lambda: self.agent.stat("stored") >= 60, what="ingest during the upload")
        t0 = time.monotonic()
        wait_for(lambda: self.agent.stat("upload_retries") >= 1, timeout=20, what="a timeout")
        self.assertLess(time.monotonic() - t0, 10)
        self.assertRegex(snapshots(self.agent.store)[0]["error"].lower(), "no progress|time")
        # The agent stops promptly even with an upload hanging.
        t0 = time.monotonic()
        self.assertEqual(self.agent.stop(), 0)
        self.assertLess(time.monotonic() - t0, 10)

    # ---- servers that lie or never finish ---------------------------------------

    def early_2xx_is_never_an_upload(self, s3):
        """A server that answers 200 after 0, then after 256 KiB of the body:
        each attempt is a retry, the snapshot is never marked uploaded nor
        deleted (keep: 0), and an honest server then gets it whole."""
        bad = HostileServer(self.pki, "answer", after=0, status=200).start()
        self.servers.append(bad)
        # One PUT, even in s3 mode (the parts of a multipart upload:
        # test_multipart_upload.py).
        conf = (self.s3_conf(bad.port) + "  part_size: 5GiB\n" if s3
                else self.upload_conf(bad.port))
        self.start_agent(snapshot="  keep: 0", upload=conf)
        n = self.big_snapshot_sealed()
        self.wait_counter("upload_retries", 1)
        bad.after = 256 << 10
        wait_for(lambda: any(a >= 256 << 10 for a in bad.answered_after),
                 what="an answer after 256 KiB of the body")
        k = next(i for i, a in enumerate(bad.answered_after) if a >= 256 << 10) + 1
        self.wait_counter("upload_retries", k)
        self.assertEqual(self.agent.stat("snapshots_uploaded"), 0)
        snap = snapshots(self.agent.store)[0]
        self.assertIn(snap["state"], ("sealed", "uploading"))
        self.assertIn("before the whole body was sent", snap["error"])
        self.assertIn("NOT counted as uploaded", self.agent.log_text())
        with open(os.path.join(self.agent.store, "snapshots", snap["name"], "STATE")) as f:
            want_sha = re.search(r"tar_sha256=([0-9a-f]{64})", f.read()).group(1)
        # An honest server on the same port: uploaded whole, then (keep: 0) removed.
        bad.stop()
        key = f"fleet/{DEVICE}/{snap['name']}.tar"
        if s3:
            port = self.s3rver(port=bad.port)
            self.wait_counter("snapshots_uploaded", 1)
            body = self.s3_client(port).get_object(Bucket="snaps", Key=key)["Body"].read()
            got_sha = hashlib.sha256(body).hexdigest()
        else:
            web = self.nginx(port=bad.port).start()
            self.wait_counter("snapshots_uploaded", 1)
            got_sha = sha256_file(web.object_path(f"/up/{key}"))
        self.assertEqual(got_sha, want_sha)
        wait_for(lambda: snapshots(self.agent.store) == [], what="keep: 0 removing it once uploaded")
        self.assertEqual(self.agent.stat("tensors_dropped"), 0)
        self.assertEqual(self.agent.stop(), 0)
        self.assertEqual(store_count(self.agent.store), 0)  # all n went into the snapshot
        self.assertGreater(n, 0)

    def test_early_2xx_is_retried_and_never_marked_uploaded_put(self):
        self.early_2xx_is_never_an_upload(s3=False)

    def test_early_2xx_is_retried_and_never_marked_uploaded_s3(self):
        self.early_2xx_is_never_an_upload(s3=True)

    def test_sigterm_ends_the_agent_promptly_wherever_an_upload_is_stuck(self):
        # Timeouts far beyond the unit's TimeoutStopSec (10 s): only the
        # cancel can end these attempts in time.
        port = free_port()
        self.start_agent(upload=self.upload_conf(port, connect="120s", io="120s",
                                                 response="120s"))
        n = self.big_snapshot_sealed()
        name = snapshots(self.agent.store)[0]["name"]
        self.assertEqual(self.agent.stop(), 0)
        cases = [
            ("connect", lambda: FullBacklog(port), lambda s: syn_sent_to(port)),
            ("handshake", lambda: HostileServer(self.pki, "stall_handshake"),
             lambda s: s.engaged.is_set()),
            ("body", lambda: HostileServer(self.pki, "stall_body", after=256 << 10),
             lambda s: s.engaged.is_set()),
            ("response", lambda: HostileServer(self.pki, "stall_response"),
             lambda s: s.engaged.is_set()),
            ("1xx flood", lambda: HostileServer(self.pki, "flood"), lambda s: s.engaged.is_set()),
            ("trickle", lambda: HostileServer(self.pki, "trickle"), lambda s: s.engaged.is_set()),
        ]
        for what, make, engaged in cases:
            with self.subTest(what):
                srv = make()
                srv.start() if isinstance(srv, FullBacklog) else srv.start(port=port)
                try:
                    self.agent.start()
                    wait_for(lambda: engaged(srv), timeout=30,
                             what=f"the upload to reach its {what}\n{self.agent.log_text()[-2000:]}")
                    wait_for(lambda: self.agent.status().get("uploading") == name,
                             what="agent.status to show the upload")
                    self.assertEqual(self.agent.stop(), 0, self.agent.log_text()[-2000:])
                finally:
                    srv.stop()
                print(f"  SIGTERM during {what}: exit 0 after {self.agent.stop_seconds * 1000:.0f} ms",
                      file=sys.stderr)
                self.assertLess(self.agent.stop_seconds, 5)  # unit: TimeoutStopSec=10
                snaps = snapshots(self.agent.store)
                self.assertEqual([(s["name"], s["state"], s["tensors"]) for s in snaps],
                                 [(name, "sealed", str(n))])
                st = self.agent.status()  # written at exit: no attempt ended as a retry or failure
                self.assertEqual((st.get("upload_retries"), st.get("snapshots_failed")), ("0", "0"))

    def test_sigterm_while_max_rate_holds_the_body_back_is_prompt(self):
        # 1 KiB/s: after the first 16 KiB record the body waits ~16 s for
        # tokens; the wait is on the cancel flag, so a stop ends it at once.
        port = free_port()
        self.start_agent(upload=self.upload_conf(port, io="120s", response="120s",
                                                 extra="  max_rate: 1KiB/s\n"))
        self.published_and_sealed(100)
        wait_for(lambda: len(snapshots(self.agent.store)) == 1, what="the snapshot sealed")
        name = snapshots(self.agent.store)[0]["name"]
        self.assertEqual(self.agent.stop(), 0)
        srv = HostileServer(self.pki, "stall_body", after=8 << 10)
        srv.start(port=port)
        self.servers.append(srv)
        self.agent.start()
        wait_for(lambda: srv.engaged.is_set(), timeout=30,
                 what=lambda: f"8 KiB of the body to arrive\n{self.agent.log_text()[-2000:]}")
        self.assertEqual(self.agent.stop(), 0, self.agent.log_text()[-2000:])
        self.assertLess(self.agent.stop_seconds, 5)  # unit: TimeoutStopSec=10
        self.assertEqual([(s["name"], s["state"]) for s in snapshots(self.agent.store)],
                         [(name, "sealed")])
        st = self.agent.status()
        self.assertEqual((st.get("upload_retries"), st.get("snapshots_failed")), ("0", "0"))

    # ---- S3 ----------------------------------------------------------------------

    def s3rver(self, secret="S3RVER", port=0):
        """s3rver over plain HTTP behind S3Front (TLS + SigV4 checks) on
        `port` (0: a free one); the front's port. s3rver 3.7.1 checks V2
        signatures only (its source: "Signature version 4 calculation is
        unimplemeneted"), so the front verifies every request with
        botocore's signer before passing it on."""
        back = self._s3rver_plain()
        self.front = S3Front(self.pki, back, "S3RVER", secret, port=port,
                             data=os.path.join(self.tmp, "s3data"))
        self.servers.append(self.front)
        return self.front.port

    def _s3rver_plain(self):
        exe = os.path.join(ROOT, "tests", "node", "node_modules", ".bin", "s3rver")
        if not os.path.exists(exe):
            self.fail("s3rver missing: run sh .ci/deps (npm ci in tests/node)")
        port = free_port()
        data = os.path.join(self.tmp, "s3data")
        proc = subprocess.Popen([exe, "-d", data, "-a", "127.0.0.1", "-p", str(port), "--silent",
                                 "--configure-bucket", "snaps", "--no-vhost-buckets"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)

        class Proc:
            def stop(self_inner):
                if proc.poll() is None:
                    proc.terminate()
                    proc.wait(timeout=10)
        self.servers.append(Proc())

        def up():
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                return True
            except OSError:
                return False
        wait_for(up, what="s3rver to listen")
        return port

    def s3_conf(self, port, secret="S3RVER"):
        sec = os.path.join(self.tmp, "s3.secret")
        with open(sec, "w") as f:
            f.write(secret + "\n")
        return self.upload_conf(port, path="", extra=(
            "  mode: s3\n  s3:\n    region: us-east-1\n    bucket: snaps\n"
            f"    access_key: S3RVER\n    secret_file: {sec}\n    addressing: path\n"))

    def s3_client(self, port):
        import botocore.session
        from botocore.config import Config
        return botocore.session.get_session().create_client(
            "s3", region_name="us-east-1", endpoint_url=f"https://localhost:{port}",
            aws_access_key_id="S3RVER", aws_secret_access_key="S3RVER", verify=self.pki.ca,
            config=Config(s3={"addressing_style": "path"}))

    def test_s3_upload_to_s3rver_reads_back(self):
        port = self.s3rver()
        self.start_agent(upload=self.s3_conf(port))
        self.published_and_sealed(120)
        self.wait_state("uploaded")
        snap = snapshots(self.agent.store)[0]
        key = f"fleet/{DEVICE}/{snap['name']}.tar"
        body = self.s3_client(port).get_object(Bucket="snaps", Key=key)["Body"].read()
        self.assertEqual(len(body), int(snap["tar_bytes"]))
        with open(os.path.join(self.agent.store, "snapshots", snap["name"], "STATE")) as f:
            self.assertIn(f"tar_sha256={hashlib.sha256(body).hexdigest()}", f.read())
        out = os.path.join(self.tmp, "from-s3")
        with tarfile.open(fileobj=io.BytesIO(body)) as tf:
            tf.extractall(out)
        self.assertEqual(store_count(os.path.join(out, snap["name"])), 120)
        self.assertGreaterEqual(self.front.checked, 2)  # our PUT and botocore's GET
        self.assertNotIn("S3RVER\n", self.agent.log_text())

    def test_s3_front_checks_every_multipart_request(self):
        # Each request of botocore's multipart upload passes the front's
        # SigV4 and payload-hash check before s3rver sees it, and a wrongly
        # signed POST is refused; ListParts and Abort (the front's own)
        # agree with botocore.
        from botocore.exceptions import ClientError
        port = self.s3rver()
        s3 = self.s3_client(port)
        key = "fleet/mp/object.bin"
        parts = [os.urandom(5 << 20), os.urandom(1000)]  # S3's 5 MiB minimum, then the last
        up = s3.create_multipart_upload(Bucket="snaps", Key=key)["UploadId"]
        etags = [s3.upload_part(Bucket="snaps", Key=key, UploadId=up, PartNumber=i + 1,
                                Body=p)["ETag"] for i, p in enumerate(parts)]
        s3.complete_multipart_upload(
            Bucket="snaps", Key=key, UploadId=up,
            MultipartUpload={"Parts": [{"ETag": e, "PartNumber": i + 1}
                                       for i, e in enumerate(etags)]})
        self.assertEqual(s3.get_object(Bucket="snaps", Key=key)["Body"].read(), b"".join(parts))
        def query(p):  # sorted, the upload id named ID
            q = p.split("?", 1)[1] if "?" in p else ""
            return "&".join(sorted(re.sub(r"uploadId=[^&]+", "uploadId=ID", q).split("&")))
        seen = [(m, query(p), n) for m, p, n in self.front.requests]
        self.assertEqual(seen[:4], [("POST", "uploads", 0),
                                    ("PUT", "partNumber=1&uploadId=ID", 5 << 20),
                                    ("PUT", "partNumber=2&uploadId=ID", 1000),
                                    ("POST", "uploadId=ID", seen[3][2])])
        self.assertGreater(seen[3][2], 0)  # the CompleteMultipartUpload XML, hashed and signed
        # ListParts and Abort: the front's own (see S3Front), checked like
        # the rest; after Complete the upload is gone (NoSuchUpload).
        n = self.front.checked
        with self.assertRaises(ClientError) as e:
            s3.list_parts(Bucket="snaps", Key=key, UploadId=up)
        self.assertEqual(e.exception.response["Error"]["Code"], "NoSuchUpload")
        self.assertEqual(self.front.checked, n + 1)
        up = s3.create_multipart_upload(Bucket="snaps", Key=key)["UploadId"]
        etag = s3.upload_part(Bucket="snaps", Key=key, UploadId=up, PartNumber=1,
                              Body=b"x" * 1000)["ETag"]
        listed = s3.list_parts(Bucket="snaps", Key=key, UploadId=up)["Parts"]
        self.assertEqual([(p["PartNumber"], p["ETag"], p["Size"]) for p in listed],
                         [(1, etag, 1000)])
        self.assertEqual(self.front.uploads(), [up])
        s3.abort_multipart_upload(Bucket="snaps", Key=key, UploadId=up)
        self.assertEqual(self.front.uploads(), [])
        # A POST signed with another secret never reaches s3rver.
        import botocore.session
        from botocore.config import Config
        bad = botocore.session.get_session().create_client(
            "s3", region_name="us-east-1", endpoint_url=f"https://localhost:{port}",
            aws_access_key_id="S3RVER", aws_secret_access_key="wrong", verify=self.pki.ca,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
        n = self.front.checked
        with self.assertRaises(ClientError) as e:
            bad.create_multipart_upload(Bucket="snaps", Key=key)
        self.assertEqual(e.exception.response["Error"]["Code"], "SignatureDoesNotMatch")
        self.assertEqual(self.front.checked, n)

    def test_s3_wrong_secret_is_refused_by_the_server(self):
        port = self.s3rver()
        self.start_agent(upload=self.s3_conf(port, secret="not-the-secret"))
        self.published_and_sealed(20)
        self.wait_state("failed")
        self.assertIn("403", snapshots(self.agent.store)[0]["error"])
        self.assertNotIn("not-the-secret", self.agent.log_text())

    def test_s3_signature_agrees_with_botocore(self):
        from sigv4_botocore import botocore_authorization
        rec = Recorder(self.pki)
        self.servers.append(rec)
        self.start_agent(upload=self.s3_conf(rec.port))
        self.published_and_sealed(30)
        self.wait_state("uploaded")
        req = rec.requests[0]
        self.assertEqual(req["method"], "PUT")
        h = req["headers"]
        self.assertEqual(h["x-amz-content-sha256"], hashlib.sha256(req["body"]).hexdigest())
        url = f"https://{h['host']}{req['path']}"
        signed = {k: h[k] for k in ("host", "x-amz-content-sha256", "x-amz-date")}
        want = botocore_authorization("PUT", url, signed, h["x-amz-content-sha256"], "us-east-1",
                                      "S3RVER", "S3RVER", h["x-amz-date"])
        self.assertEqual(h["authorization"], want)

    # ---- compression on the wire ---------------------------------------------------

    def received_is_the_snapshot(self, obj_bytes, unpack, snap):
        """The object unpacked by the standard tool (`unpack`: argv reading
        stdin) is byte for byte the snapshot's tar stream (its SHA-256 and
        length, fixed at seal time, in STATE), and `tar` extracts files
        byte for byte equal to the snapshot's own."""
        tar = subprocess.run(unpack, input=obj_bytes, capture_output=True, timeout=60)
        self.assertEqual(tar.returncode, 0, tar.stderr)
        state = self.state_of(snap["name"])
        self.assertEqual(len(tar.stdout), int(state["tar_bytes"]))
        self.assertEqual(hashlib.sha256(tar.stdout).hexdigest(), state["tar_sha256"])
        # The object is what STATE measured before sending it.
        self.assertEqual(len(obj_bytes), int(state["object_bytes"]))
        self.assertEqual(hashlib.sha256(obj_bytes).hexdigest(), state["object_sha256"])
        out = os.path.join(self.tmp, "unpacked-" + snap["name"])
        os.makedirs(out)
        with tarfile.open(fileobj=io.BytesIO(tar.stdout)) as tf:
            tf.extractall(out)
        mine = os.path.join(self.agent.store, "snapshots", snap["name"])
        got = os.path.join(out, snap["name"])
        names = sorted(n for n in os.listdir(mine) if n != "STATE")
        self.assertEqual(sorted(os.listdir(got)), names)
        for n in names:
            with open(os.path.join(mine, n), "rb") as a, open(os.path.join(got, n), "rb") as b:
                self.assertEqual(a.read(), b.read(), n)
        return got

    def state_of(self, name):
        with open(os.path.join(self.agent.store, "snapshots", name, "STATE")) as f:
            return dict(l.split("=", 1) for l in f.read().splitlines() if "=" in l)

    def embeddb_reads_object(self, path, body, snap):
        """`embeddb verify` passes the object (path, or body on stdin for
        "-") and `embeddb ls` lists what it lists for the snapshot."""
        exe = os.path.join(BUILD, "cli", "embeddb")
        d = os.path.join(self.agent.store, "snapshots", snap["name"])
        r = subprocess.run([exe, "verify", path], input=body, capture_output=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn(b"every file matches MANIFEST.json", r.stdout)
        r = subprocess.run([exe, "ls", path], input=body, capture_output=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.decode(), embeddb("ls", d).stdout)

    def test_zstd_put_to_nginx_unpacks_with_tar_zstd(self):
        web = self.nginx().start()
        self.start_agent(upload=self.upload_conf(web.port, extra="  compression: zstd\n"))
        self.published_and_sealed(200)
        self.wait_state("uploaded")
        snap = snapshots(self.agent.store)[0]
        obj = web.object_path(f"/up/fleet/{DEVICE}/{snap['name']}.tar.zst")
        self.assertTrue(os.path.exists(obj), os.listdir(web.root))
        with open(obj, "rb") as f:
            body = f.read()
        self.assertEqual(self.state_of(snap["name"])["object"], "zstd:7")  # the default level
        self.assertLess(len(body), int(snap["tar_bytes"]) // 2)
        got = self.received_is_the_snapshot(body, ["zstd", "-d", "-c"], snap)
        self.assertEqual(store_count(got), 200)
        # tar's own zstd support, straight from the object file.
        out = os.path.join(self.tmp, "tar-zstd")
        os.makedirs(out)
        r = subprocess.run(["tar", "--zstd", "-xf", obj, "-C", out], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(embeddb("verify", os.path.join(out, snap["name"])).returncode, 0)
        # embeddb reads the object as the agent sent it, without unpacking.
        self.embeddb_reads_object(obj, None, snap)
        with open(web.access_log) as f:
            self.assertRegex(f.read(),
                             rf'"PUT /up/fleet/{DEVICE}/{snap["name"]}.tar.zst HTTP/1.1" 201')
        wait_for(lambda: self.agent.stat("bytes_uploaded") == len(body),
                 what=lambda: f"bytes_uploaded == {len(body)} (the object's, as sent): "
                 f"{self.agent.status()}")
        self.assertEqual(self.agent.stop(), 0)

    def upload_memory(self, codec):
        """Uploads (to nginx, as `codec`) snapshots of 4, 8 and 24 MiB of
        noisy tensors; returns ([(idle, peak) per upload] RSS in bytes,
        whether the agent is unsanitized). Each peak is the kernel's VmHWM,
        reset (clear_refs 5) once the tensors are stored; idle is that
        reset value. So the peak covers the seal (its hashing pass and,
        compressed, its measuring pass), the readahead and sender threads
        and the whole upload, with no sampling gap. The first upload pays
        what an agent pays once: the codec's context, the library code it
        runs for the first time."""
        web = self.nginx().start()
        extra = f"  compression: {codec}\n" if codec != "none" else ""
        # retention must not take an uploaded one while we count them
        self.start_agent(snapshot="  keep: 10", upload=self.upload_conf(web.port, extra=extra))
        rng = np.random.default_rng(14)
        pid = self.agent.proc.pid
        out, stored = [], 0
        for k, mib in enumerate((4, 8, 24)):
            n = mib << 6  # 16 KiB tensors
            for i in range(0, n, 128):
                # sensor-like: a slow signal plus noise, so codecs shrink it a little
                msgs = [{"topic": "big/a", "qos": 1, "payload": (
                    np.sin(np.arange(4096, dtype=np.float32) / 64 + i + j)
                    + rng.normal(0, 0.01, 4096)).astype(np.float32).tobytes()}
                    for j in range(128)]
                publish.multiple(msgs, hostname="127.0.0.1", port=self.broker.port)
            stored += n
            self.wait_counter("stored", stored, timeout=60)
            try:
                with open(f"/proc/{pid}/clear_refs", "w") as f:
                    f.write("5")  # VmHWM := VmRSS
            except OSError as e:
                self.skipTest(f"no /proc/PID/clear_refs here: {e}")
            idle = proc_bytes(pid, "VmHWM")
            self.agent.seal()
            self.wait_state("uploaded", n=k + 1, timeout=120)
            peak = proc_bytes(pid, "VmHWM")
            snap = snapshots(self.agent.store)[k]
            state = self.state_of(snap["name"])
            obj = int(state.get("object_bytes", state["tar_bytes"]))
            self.assertGreater(obj, (mib << 20) * 2 // 3)  # streamed, not a tiny object
            print(f"{codec} {mib} MiB: RSS idle {idle >> 10} KiB, peak while sealing and "
                  f"uploading {peak >> 10} KiB (+{(peak - idle) >> 10} KiB), object "
                  f"{obj >> 10} KiB", file=sys.stderr)
            out.append((idle, peak))
        plain = not sanitized(pid)
        self.assertEqual(self.agent.stop(), 0)
        return out, plain

    def check_upload_memory(self, codec, context):
        """The bound: an upload adds less than 2 MiB to an agent's idle RSS
        (its ring of 1 MiB read ahead, the send queue, the object's and
        TLS's buffers), and 24 MiB no more than 8 MiB did (to within 256
        KiB: nothing is held per byte); the first one may also add the
        codec's context, which the agent keeps for the next (glibc hands
        the freed block out again), and up to 3 MiB of first-use costs
        (library code paged in, the worker's malloc arena)."""
        [(idle1, peak1), (idle8, peak8), (idle24, peak24)], plain = self.upload_memory(codec)
        if not plain:
            return
        self.assertLess(peak1 - idle1, (3 << 20) + context)
        self.assertLess(peak8 - idle8, 2 << 20)
        self.assertLess(peak24 - idle24, 2 << 20)
        # what the 8 MiB upload freed is still there: three times the bytes add no more
        self.assertLess(peak24 - idle24, (peak8 - idle8) + (256 << 10))

    def test_upload_memory_is_flat_uncompressed(self):
        self.check_upload_memory("none", 0)

    def test_upload_memory_is_flat_gzip(self):
        # deflate's state: (1 << (windowBits + 2)) + (1 << (memLevel + 9)), zlib.h
        self.check_upload_memory("gzip", (1 << 17) + (1 << 17))

    def test_upload_memory_is_flat_zstd(self):
        # zstd's streaming context at the default level 7, libzstd's own estimate
        zstd = ctypes.CDLL("libzstd.so.1")
        zstd.ZSTD_estimateCStreamSize.restype = ctypes.c_size_t
        self.check_upload_memory("zstd", zstd.ZSTD_estimateCStreamSize(7))

    def test_gzip_to_s3rver_unpacks_with_gzip_d(self):
        port = self.s3rver()
        self.start_agent(upload=self.s3_conf(port) + "  compression: gzip\n  level: 9\n")
        self.published_and_sealed(150)
        self.wait_state("uploaded")
        snap = snapshots(self.agent.store)[0]
        key = f"fleet/{DEVICE}/{snap['name']}.tar.gz"
        got = self.s3_client(port).get_object(Bucket="snaps", Key=key)
        body = got["Body"].read()
        self.assertEqual(got["ContentType"], "application/gzip")
        self.assertEqual(self.state_of(snap["name"])["object"], "gzip:9")
        self.received_is_the_snapshot(body, ["gzip", "-d", "-c"], snap)
        self.embeddb_reads_object("-", body, snap)  # on standard input
        self.assertGreaterEqual(self.front.checked, 2)  # the signed hash matched the body

    def test_a_measure_from_another_codec_is_not_trusted(self):
        # STATE claims a zstd:3 object of other bytes (a previous run's, a
        # library upgrade): the agent measures again before sending, and what
        # it sends is what it measured.
        port = self.s3rver()
        self.start_agent(upload=self.s3_conf(port) + "  compression: zstd\n  level: 1\n")
        self.published_and_sealed(60)
        self.wait_state("uploaded")
        self.assertEqual(self.agent.stop(), 0)
        name = snapshots(self.agent.store)[0]["name"]
        path = os.path.join(self.agent.store, "snapshots", name, "STATE")
        with open(path) as f:
            text = f.read()
        # Level 3 named, level 1's figures kept: a lying STATE.
        text = text.replace("state=uploaded", "state=sealed").replace("object=zstd:1",
                                                                      "object=zstd:3")
        with open(path, "w") as f:
            f.write(text)
        with open(self.agent.conf) as f:
            conf = f.read()
        with open(self.agent.conf, "w") as f:
            f.write(conf.replace("  level: 1\n", "  level: 3\n"))
        self.agent.start()
        wait_for(lambda: self.agent.stat("upload_retries") >= 1 or
                 snapshots(self.agent.store)[0]["state"] == "uploaded", timeout=30,
                 what="the lying measure to be found out")
        self.wait_state("uploaded")
        self.assertIn("came out different from the one measured", self.agent.log_text())
        body = self.s3_client(port).get_object(
            Bucket="snaps", Key=f"fleet/{DEVICE}/{name}.tar.zst")["Body"].read()
        self.received_is_the_snapshot(body, ["zstd", "-d", "-c"], snapshots(self.agent.store)[0])

    # ---- the flash budget ---------------------------------------------------------

    MAX_DISK = 3 << 20
    BATCH = 16  # batch.max_tensors in Agent's config
    # What the agent may hold acknowledged and unstored: two batches, room
    # for the broker's in-flight window (INFLIGHT_ROOM in agent.c), and the
    # one message its network thread waits with.
    HELD = 2 * BATCH + 32 + 1

    def budget_run(self, on_full, path, until):
        """Publishes 3000 messages of 1 KiB (more than fits in MAX_DISK) with
        uploads failing, samples the store's bytes until `until()` holds,
        and returns the web server and the peak."""
        web = self.nginx().start()
        self.start_agent(storage=f"  max_disk: {self.MAX_DISK}\n  on_full: {on_full}",
                         snapshot="  max_bytes: 512KiB\n  keep: 0",
                         upload=self.upload_conf(web.port, path=path))
        peak = [0]
        done = threading.Event()

        def sample():
            while not done.is_set():
                peak[0] = max(peak[0], file_bytes(self.agent.store))
                time.sleep(0.02)
        t = threading.Thread(target=sample)
        t.start()
        try:
            publish_n(self.broker.port, 3000)
            wait_for(until, timeout=60, what="the budget to settle")
        finally:
            done.set()
            t.join()
        return web, peak[0]

    def test_budget_drop_oldest_keeps_usage_inside_and_counts_the_loss(self):
        _, peak = self.budget_run("drop_oldest", "/fail500",
                                  lambda: self.agent.stat("stored") == 3000)
        self.assertLessEqual(peak, self.MAX_DISK)
        dropped = self.agent.stat("tensors_dropped")
        self.assertGreater(dropped, 0)
        self.assertEqual(self.agent.stop(), 0)
        kept = store_count(self.agent.store) + sum(
            int(s["tensors"]) for s in snapshots(self.agent.store))
        self.assertEqual(kept + dropped, 3000)
        self.assertEqual(self.agent.stat("snapshots_dropped"),
                         len(re.findall("LOST", self.agent.log_text())))

    def test_budget_reject_new_holds_a_bounded_few_and_catches_up(self):
        # Refused three times over: the agent has been stuck for seconds.
        web, peak = self.budget_run("reject_new", "/fail500",
                                    lambda: self.agent.stat("budget_refusals") >= 3)
        self.assertLessEqual(peak, self.MAX_DISK)
        self.assertEqual(self.agent.stat("tensors_dropped"), 0)
        # While the store cannot take more, the agent holds at most HELD of
        # what the broker handed over; the broker keeps the rest (one status
        # file: the figures are from one moment).
        st = self.agent.status()
        held = int(st["received"]) - int(st["stored"])
        self.assertLessEqual(held, self.HELD, st)
        self.assertLessEqual(int(st["pending"]), self.HELD, st)
        self.assertLess(int(st["received"]), 3000, st)
        # A stop stores what was handed over, past max_disk if need be (never
        # past min_free), and passes it by at most what was held.
        before = file_bytes(self.agent.store)
        self.assertEqual(self.agent.stop(), 0, self.agent.log_text()[-2000:])
        st = self.agent.status()
        self.assertEqual(st["pending"], "0")
        self.assertLessEqual(file_bytes(self.agent.store), self.MAX_DISK + self.HELD * 2048)
        # Uploads work again: retention frees the flash and the rest, which
        # waited in the broker, flows in: every message exactly once.
        with open(self.agent.conf) as f:
            conf = f.read().replace("/fail500", "/up")
        with open(self.agent.conf, "w") as f:
            f.write(conf)
        self.agent.start()
        wait_for(lambda: self.agent.stat("received") + int(st["received"]) >= 3000, timeout=60,
                 what="the broker to hand over the rest")
        self.agent.seal()
        wait_for(lambda: snapshots(self.agent.store) and
                 all(s["state"] == "uploaded" for s in snapshots(self.agent.store)),
                 timeout=60, what="the last snapshot to upload")
        self.agent.stop()
        values = store_values(self.agent.store)
        up = os.path.join(web.root, "up", "fleet", DEVICE)
        for name in os.listdir(up):
            with tarfile.open(os.path.join(up, name)) as tf:
                tf.extractall(os.path.join(self.tmp, "untar"))
                values += store_values(os.path.join(self.tmp, "untar", name[:-4]))
        self.assertEqual(sorted(values), list(range(3000)))


def tls_http_server(handler, pki, port=0):
    """A threading HTTPS server on loopback `port` (0: a free one) with the
    pki's server certificate, serving in a daemon thread: (server, port)."""
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki.server_cert, pki.server_key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, srv.server_address[1]


class S3Front:
    """HTTPS on a free port in front of an S3 server on plain HTTP: checks
    each request's AWS Signature V4 with botocore's signer (and the payload
    hash against the body), answers 403 SignatureDoesNotMatch like S3 when
    either is wrong, else forwards the request and relays the answer. Every
    method S3's multipart upload uses goes through the same check (POST
    ?uploads and ?uploadId, PUT ?partNumber, GET and DELETE ?uploadId);
    `requests` records (method, path, body bytes) of each checked one,
    `received` (method, path, body bytes, Content-Length) of every request
    before any check (a body cut short shows there).

    s3rver 3.7.1 implements CreateMultipartUpload, UploadPart and
    CompleteMultipartUpload but answers ListParts and AbortMultipartUpload
    with 405 (and ListMultipartUploads not at all), and no other S3 server
    on npm or Debian 12 does better (@20minutes/s3rver 5.0.0 neither: its
    lib/routes.js answers 405 or NotImplemented for all three). So,
    given s3rver's data directory (`data`), this front implements exactly
    those three itself (no delimiter; pages as S3 makes them: by
    max-parts and part-number-marker, by max-uploads (capped at
    `max_uploads`, S3's 1000 unless a test lowers it) and key-marker /
    upload-id-marker, uploads in (key, id) order), on s3rver's own state
    (DATA/BUCKET/._S3rver_uploads/ID/key, N and N.md5), after the same
    signature check, and answers NoSuchUpload (404) like S3 for an upload
    id s3rver does not hold, for every request naming one. Nothing else
    is emulated.

    For the tests of lying peers: `hook(method, path, body)`, when set, is
    called after the checks and may return (status, headers, body) to
    answer instead of the server, or "cut" to close the connection without
    an answer; `after(method, path, status)` is called once the server has
    answered, before the answer is relayed."""

    def __init__(self, pki, backend_port, access_key, secret, port=0, data=None):
        import http.client
        import urllib.parse
        from sigv4_botocore import botocore_authorization
        front = self
        self.checked = 0
        self.requests = []
        self.received = []
        self.data = data
        self.hook = None
        self.after = None
        self.max_uploads = 1000

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def answer(self, status, headers, body):
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def refuse(self, code, why, status=403):
                body = (f"<?xml version=\"1.0\"?><Error><Code>{code}</Code>"
                        f"<Message>{why}</Message></Error>").encode()
                self.answer(status, {}, body)

            def uploads_state(self, q):
                """ListParts, Abort and ListMultipartUploads on s3rver's
                files; None to relay."""
                if not front.data or not ("uploadId" in q or (self.command == "GET" and
                                                              "uploads" in q)):
                    return None
                bucket = urllib.parse.urlsplit(self.path).path.split("/")[1]
                if "uploadId" not in q:  # ListMultipartUploads, by prefix, paged
                    return self.answer(200, {"Content-Type": "application/xml"},
                                       front.list_uploads(bucket, q)) or True
                up = os.path.join(front.data, bucket, "._S3rver_uploads", q["uploadId"][0])
                if not os.path.isdir(up):
                    return self.refuse("NoSuchUpload", "no such upload", 404) or True
                if self.command == "DELETE":
                    shutil.rmtree(up)
                    return self.answer(204, {}, b"") or True
                if self.command != "GET":
                    return None
                marker = int(q.get("part-number-marker", ["0"])[0] or 0)
                most = int(q.get("max-parts", ["1000"])[0])
                def md5(n):
                    with open(os.path.join(up, f"{n}.md5")) as f:
                        return f.read()
                nums = sorted(int(n) for n in os.listdir(up) if n.isdigit() and int(n) > marker)
                page, more = nums[:most], len(nums) > most
                parts = "".join(
                    f"<Part><PartNumber>{n}</PartNumber><LastModified>2026-01-01T00:00:00.000Z"
                    f"</LastModified><ETag>&quot;{md5(n)}&quot;</ETag>"
                    f"<Size>{os.path.getsize(os.path.join(up, str(n)))}</Size></Part>"
                    for n in page)
                body = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListPartsResult xmlns="
                        "\"http://s3.amazonaws.com/doc/2006-03-01/\"><Bucket>" + bucket +
                        f"</Bucket><UploadId>{q['uploadId'][0]}</UploadId><PartNumberMarker>"
                        f"{marker}</PartNumberMarker><NextPartNumberMarker>"
                        f"{page[-1] if page else 0}</NextPartNumberMarker><MaxParts>{most}"
                        f"</MaxParts><IsTruncated>{'true' if more else 'false'}</IsTruncated>"
                        + parts + "</ListPartsResult>").encode()
                return self.answer(200, {"Content-Type": "application/xml"}, body) or True

            def relay(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n) if n else b""
                front.received.append((self.command, self.path, len(body), n))
                if len(body) < n:  # the client gave up on its body: nobody to answer
                    self.close_connection = True
                    return
                h = {k.lower(): v for k, v in self.headers.items()}
                auth = h.get("authorization", "")
                m = re.match(r"AWS4-HMAC-SHA256 Credential=([^/]+)/\d{8}/([^/]+)/s3/aws4_request, "
                             r"SignedHeaders=([^,]+), Signature=[0-9a-f]{64}$", auth)
                if not m or m.group(1) != access_key:
                    return self.refuse("AccessDenied", "bad or missing Authorization")
                signed = {k: h[k] for k in m.group(3).split(";")}
                want = botocore_authorization(self.command, f"https://{h['host']}{self.path}",
                                              signed, h["x-amz-content-sha256"], m.group(2),
                                              access_key, secret, h["x-amz-date"])
                if want != auth:
                    return self.refuse("SignatureDoesNotMatch", "signature mismatch")
                if (h["x-amz-content-sha256"] != "UNSIGNED-PAYLOAD" and
                        h["x-amz-content-sha256"] != hashlib.sha256(body).hexdigest()):
                    return self.refuse("XAmzContentSHA256Mismatch", "payload hash mismatch")
                front.checked += 1
                front.requests.append((self.command, self.path, len(body)))
                hooked = front.hook(self.command, self.path, body) if front.hook else None
                if hooked == "cut":
                    self.close_connection = True
                    return
                if hooked:
                    return self.answer(*hooked)
                q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query,
                                          keep_blank_values=True)
                if self.uploads_state(q):
                    return
                c = http.client.HTTPConnection("127.0.0.1", backend_port, timeout=30)
                c.request(self.command, self.path, body=body, headers=dict(self.headers))
                r = c.getresponse()
                data = r.read()
                if front.after:
                    front.after(self.command, self.path, r.status)
                self.send_response(r.status)
                for k, v in r.getheaders():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                c.close()

            do_PUT = do_GET = do_HEAD = do_POST = do_DELETE = relay

            def log_message(self, *a):
                pass

        self.srv, self.port = tls_http_server(H, pki, port)

    def list_uploads(self, bucket, q):
        """A ListMultipartUploadsResult page for the query q (parse_qs)."""
        def arg(name, default=""):
            return q.get(name, [default])[0]
        d = os.path.join(self.data, bucket, "._S3rver_uploads")
        prefix, km, im = arg("prefix"), arg("key-marker"), arg("upload-id-marker")
        most = min(int(arg("max-uploads", "1000")), self.max_uploads)
        ups = []
        for up in self.uploads(bucket):
            try:
                with open(os.path.join(d, up, "key")) as f:
                    key = f.read()
            except OSError:
                continue  # being made or aborted
            # S3: after (key-marker, upload-id-marker); key-marker alone:
            # the keys after it
            if key.startswith(prefix) and (not km or key > km or (key == km and im and up > im)):
                ups.append((key, up))
        ups.sort()
        page, more = ups[:most], len(ups) > most
        items = "".join(f"<Upload><Key>{xml_escape(k)}</Key><UploadId>{i}</UploadId>"
                        "<StorageClass>STANDARD</StorageClass></Upload>" for k, i in page)
        nxt = (f"<NextKeyMarker>{xml_escape(page[-1][0])}</NextKeyMarker>"
               f"<NextUploadIdMarker>{page[-1][1]}</NextUploadIdMarker>" if more else "")
        return ("<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListMultipartUploadsResult xmlns="
                "\"http://s3.amazonaws.com/doc/2006-03-01/\"><Bucket>" + bucket + "</Bucket>"
                f"<KeyMarker>{xml_escape(km)}</KeyMarker><UploadIdMarker>{im}</UploadIdMarker>"
                + nxt + f"<Prefix>{xml_escape(prefix)}</Prefix><MaxUploads>{most}</MaxUploads>"
                f"<IsTruncated>{'true' if more else 'false'}</IsTruncated>" + items +
                "</ListMultipartUploadsResult>").encode()

    def uploads(self, bucket="snaps"):
        """The multipart uploads s3rver holds (their ids)."""
        d = os.path.join(self.data, bucket, "._S3rver_uploads")
        return sorted(os.listdir(d)) if os.path.isdir(d) else []

    def part_bytes(self):
        """Body bytes of every UploadPart request the front took."""
        return sum(n for m, p, n in self.requests if m == "PUT" and "partNumber=" in p)

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()


class Recorder:
    """An HTTPS server that records each request (method, path, headers,
    body) and answers 200."""

    def __init__(self, pki):
        self.requests = []
        rec = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_PUT(self):
                n = int(self.headers["Content-Length"])
                body = self.rfile.read(n)
                rec.requests.append({"method": "PUT", "path": self.path, "body": body,
                                     "headers": {k.lower(): v for k, v in self.headers.items()}})
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.srv, self.port = tls_http_server(H, pki)

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()


if __name__ == "__main__":
    BUILD, ROOT = sys.argv[1], sys.argv[2]
    unittest.main(argv=[sys.argv[0]] + sys.argv[3:], verbosity=2)
