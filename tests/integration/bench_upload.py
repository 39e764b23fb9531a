#!/usr/bin/python3
"""Snapshot upload benchmark: embeddb-agent uploading a 256 MiB snapshot to
a local nginx over TLS, against `curl --upload-file` of the very same tar
bytes to the same server, alternated in the same run; plus the agent's RSS
before and during its uploads (the tar is streamed, never held in memory).

The snapshot is made the real way: 65536 tensors of 4 KiB published over
MQTT, stored by the agent, sealed on SIGUSR1. Each agent repetition marks
the snapshot sealed again (its STATE file) and asks the agent to look.

--corpus sensor publishes tensors that compress like sensor data (each a
distinct float32 window of smooth motion quantised to a 16-bit ADC's
steps, plus noise of a few steps) instead of 64 constant ones (which
shrink 200-fold and say nothing about compression).

--link RATE (a tc rate: 100mbit, 20mbit) runs the whole benchmark in a
private network namespace (`unshare -n`: needs root, or CAP_SYS_ADMIN and
CAP_NET_ADMIN) whose loopback gets MTU 1500 and, once the snapshot is
stored and before the first upload, a `tbf` qdisc of that rate: a board's
uplink. It then reports tensor payload bytes delivered per second by the
agent and by curl (which sends the uncompressed tar), against the goal
payload/s >= 0.9 x (payload / object) x link, i.e. object bytes/s >= 0.9 x
link (the link stays full of compressed data); also with the stricter
ratio tar / object (the codec's own), which asks 2-3 % more.

The agent's time for an upload is its own log's ("uploaded (N bytes in M
ms"): from just after it marks the snapshot `uploading` in STATE (an
fsync) to the server's whole answer, before the outcome is written to
STATE. It takes in opening the object (and starting its compressor),
resolving, connecting, the TLS handshake, the request head, the body and
the answer; the counting pass of a compressed object (measure) comes only
in the first upload, which is not among the runs reported. curl's is the
wall time of the curl process (its start-up included).

After the uploads the run measures mbedTLS's raw speed for the suite
the server logged (build/tests/bench/cipher_bench, same machine, same run)
and prints the agent's object rate as a ratio of it.

--peer sink uploads (agent and curl alike) to a TLS peer in this process
(Python's ssl, i.e. OpenSSL, the client's suite preferred as nginx does)
that reads each body into one reused buffer, checks its SHA-256 against
the snapshot's STATE and answers 201, storing nothing but the first body
(curl's file). nginx stores every body in a new file: on the bench VM its
page-cache writes took most of the second core (perf: half of nginx's
time in copy_folio_from_iter_atomic, 0.3-1.0 CPU s per 256 MiB, varying
from run to run), so with 2 cores the peer, not the agent, set the pace.
The sink measures the agent's own sending path.

With --max-rate R (e.g. 4MiB/s) the agent uploads under upload.max_rate
and the run also reports its rate as a ratio of R (the token bucket's
promise: within 10 % over 10 s and more; pick --mib so an upload takes at
least 10 s). --compression zstd|gzip uploads compressed objects.

Usage: bench_upload.py BUILD_DIR [--runs N] [--mib M] [--max-rate R] [--compression C]
                       [--corpus constant|sensor] [--link RATE] [--peer nginx|sink]
Prints one line per run and the medians; exit 0.
"""
import argparse
import hashlib
import os
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import paho.mqtt.publish as publish

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tls_servers import Nginx, make_pki, proc_bytes, read_status, wait_for  # noqa: E402
from test_agent_mqtt import Broker  # noqa: E402


def rss_kib(pid):
    return proc_bytes(pid, "VmRSS") >> 10


class Sink:
    """HTTPS PUT peer that reads whole bodies and stores none but the first
    (into `first`): see --peer. `bodies` is (path, bytes, sha256 hex,
    suite) per request, appended once the whole body is read, before the
    201 goes out."""

    def __init__(self, pki, first):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(pki.server_cert, pki.server_key)
        self.ctx.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE  # the client's choice, as nginx
        self.first, self.bodies = first, []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                raw, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(raw,), daemon=True).start()

    def _handle(self, raw):
        buf = memoryview(bytearray(1 << 20))
        with self.ctx.wrap_socket(raw, server_side=True) as c:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = c.recv(4096)
                if not chunk:
                    return
                head += chunk
            head, _, rest = head.partition(b"\r\n\r\n")
            path = head.split()[1].decode()
            left = int(re.search(rb"\r\ncontent-length: *(\d+)", head, re.I).group(1))
            h = hashlib.sha256(rest)
            out = open(self.first, "wb") if not self.bodies else None
            if out:
                out.write(rest)
            left -= len(rest)
            while left > 0:
                n = c.recv_into(buf, min(left, len(buf)))
                if not n:
                    return
                h.update(buf[:n])
                if out:
                    out.write(buf[:n])
                left -= n
            if out:
                out.close()
            self.bodies.append((path, os.path.getsize(self.first) if out else None,
                                h.hexdigest(), c.cipher()[0]))
            c.sendall(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--max-rate", default=None)
    ap.add_argument("--compression", default="none")
    ap.add_argument("--corpus", choices=("constant", "sensor"), default="constant")
    ap.add_argument("--link", default=None)
    ap.add_argument("--peer", choices=("nginx", "sink"), default="nginx")
    args = ap.parse_args()
    if args.link and not os.environ.get("EMBEDDB_BENCH_NETNS"):
        # Again, inside a network namespace of our own: its loopback is
        # the link we shape, and nothing else on the machine shares it.
        os.environ["EMBEDDB_BENCH_NETNS"] = "1"
        os.execvp("unshare", ["unshare", "-n", sys.executable, *sys.argv])
    if args.link:
        subprocess.run(["ip", "link", "set", "lo", "up", "mtu", "1500"], check=True)
    print(f"load average at start: {os.getloadavg()}")
    extra = f"  compression: {args.compression}\n"
    if args.max_rate:
        extra += f"  max_rate: {args.max_rate}\n"
    tmp = tempfile.mkdtemp(prefix="embeddb-bench-upload-")
    broker = Broker(tmp)
    broker.start()
    pki = make_pki(os.path.join(tmp, "pki"), "bench")
    web = Nginx(tmp, pki).start()
    sink = Sink(pki, os.path.join(tmp, "first.obj")) if args.peer == "sink" else None
    port = sink.port if sink else web.port
    store = os.path.join(tmp, "store")
    conf = os.path.join(tmp, "agent.yaml")
    with open(conf, "w") as f:
        f.write(f"""device_id: bench
storage: {{dir: {store}, memtable_max: 64MiB, min_free: 16MiB}}
mqtt:
  host: 127.0.0.1
  port: {broker.port}
  subscriptions: [{{topic: "b/+", qos: 1, format: raw, dtype: float32, shape: [1024]}}]
snapshot: {{max_bytes: 4GiB, interval: 0ms, keep: 10}}
upload:
  url: https://localhost:{port}/agent
  ca_file: {pki.ca}
  io_timeout: 60s
{extra}""")
    log = open(os.path.join(tmp, "agent.log"), "w+")
    agent = subprocess.Popen([os.path.join(args.build, "agent", "embeddb-agent"), "-c", conf],
                             stderr=log)
    embeddb = os.path.join(args.build, "cli", "embeddb")

    def status():
        return read_status(store)

    try:
        wait_for(lambda: status().get("subscribed") == "1", what="agent")
        n = args.mib * 256
        payload = [np.full(1024, i, np.float32).tobytes() for i in range(64)]
        rng = np.random.default_rng(14)
        step = np.float32(16.0 / 32768)  # a +-16 g accelerometer's 16-bit step

        def sensor(j):
            t = (j * 1024 + np.arange(1024)) / 1000.0
            v = 2.0 * np.sin(2 * np.pi * 0.7 * t) + 0.5 * np.sin(2 * np.pi * 3.1 * t + j % 7)
            v = np.round(v / step + rng.normal(0, 3, 1024)) * step
            return v.astype(np.float32).tobytes()
        t0 = time.monotonic()
        for i in range(0, n, 2048):
            publish.multiple([{"topic": "b/x", "qos": 1,
                               "payload": sensor(j) if args.corpus == "sensor" else payload[j % 64]}
                              for j in range(i, min(n, i + 2048))],
                             hostname="127.0.0.1", port=broker.port)
        wait_for(lambda: int(status().get("stored", 0)) >= n, timeout=600, what="ingest")
        print(f"ingest: {n} tensors ({args.mib} MiB) in {time.monotonic() - t0:.1f} s")
        base_rss = rss_kib(agent.pid)
        if args.link:
            # burst: 32 KiB, a few of the link's MTU-sized packets; latency
            # bounds the queue. Only the uploads run over the shaped link.
            subprocess.run(["tc", "qdisc", "add", "dev", "lo", "root", "tbf", "rate", args.link,
                            "burst", "32kb", "latency", "100ms"], check=True)
        subprocess.run([embeddb, "snapshot", store], check=True, capture_output=True)
        agent_ms, curl_s, peaks = [], [], []

        def uploaded_count():
            return len(re.findall(r"uploaded \(\d+ bytes(?:, \w+)? in (\d+) ms",
                                  open(log.name).read()))

        def agent_run(k):
            peak = [0]
            stop = threading.Event()

            def sample():
                while not stop.is_set():
                    peak[0] = max(peak[0], rss_kib(agent.pid))
                    time.sleep(0.01)
            th = threading.Thread(target=sample)
            th.start()
            wait_for(lambda: uploaded_count() >= k, timeout=900, what=f"agent upload {k}")
            stop.set()
            th.join()
            ms = int(re.findall(r"uploaded \((\d+) bytes(?:, \w+)? in (\d+) ms",
                                open(log.name).read())[-1][1])
            agent_ms.append(ms)
            peaks.append(peak[0])

        agent_run(1)  # the first upload follows sealing (hashing) right away
        name = [d for d in os.listdir(os.path.join(store, "snapshots")) if d[0] != "."][0]
        suffix = {"none": ".tar", "gzip": ".tar.gz", "zstd": ".tar.zst"}[args.compression]
        obj = sink.first if sink else web.object_path(f"/agent/bench/{name}{suffix}")
        size = os.path.getsize(obj)
        # curl sends the uncompressed tar: what a board without compression
        # would send (the .tar the agent uploads is that same file).
        tar = os.path.join(tmp, "snapshot.tar")
        if args.compression == "none":
            tar = obj
        else:
            with open(tar, "wb") as f:  # exactly the snapshot's tar stream
                subprocess.run([args.compression, "-d", "-c", obj], stdout=f, check=True)
        tar_size = os.path.getsize(tar)
        for k in range(args.runs):
            t = time.monotonic()
            subprocess.run(["curl", "-sS", "-o", "/dev/null", "--cacert", pki.ca,
                            "--upload-file", tar, f"https://localhost:{port}/curl/{k}.tar"],
                           check=True)
            curl_s.append(time.monotonic() - t)
            state = os.path.join(store, "snapshots", name, "STATE")
            with open(state) as f:
                text = f.read().replace("state=uploaded", "state=sealed")
            with open(state, "w") as f:
                f.write(text)
            subprocess.run([embeddb, "snapshot", store], check=True, capture_output=True)
            agent_run(k + 2)
        mib, tar_mib = size / (1 << 20), tar_size / (1 << 20)
        for k in range(args.runs):
            print(f"run {k + 1}: agent {mib / (agent_ms[k + 1] / 1000):.1f} MiB/s of object, "
                  f"curl {tar_mib / curl_s[k]:.1f} MiB/s of tar")
        a = statistics.median(agent_ms[1:]) / 1000
        c = statistics.median(curl_s)
        payload = n * 4096
        print(f"object {size} bytes, tar {tar_size} bytes, payload {payload} bytes; median "
              f"agent {mib / a:.1f} MiB/s of object, curl {tar_mib / c:.1f} MiB/s of tar, "
              f"agent/curl (wall time for the same snapshot) = {c / a:.2f}x")
        ratio = payload / size
        print(f"tensor payload delivered: agent {payload / a / 1e6:.2f} MB/s, curl "
              f"{payload / c / 1e6:.2f} MB/s; payload/object = {ratio:.3f}, tar/object = "
              f"{tar_size / size:.3f}")
        if args.link:
            m = re.fullmatch(r"(\d+)(k|m|g)?bit", args.link)
            link = int(m.group(1)) * {None: 1, "k": 1e3, "m": 1e6, "g": 1e9}[m.group(2)] / 8
            print(f"link {args.link} = {link / 1e6:.2f} MB/s: agent payload/s = "
                  f"{payload / a / (ratio * link):.3f} x (payload/object x link) [goal >= 0.9], "
                  f"object/s = {size / a / link:.3f} x link; curl tar/s = "
                  f"{tar_size / c / link:.3f} x link; with tar/object as the ratio: "
                  f"{payload / a / (tar_size / size * link):.3f}")
        if args.max_rate:
            m = re.fullmatch(r"(\d+)\s*(B|KB|KiB|MB|MiB|GB|GiB)?/s", args.max_rate)
            mul = {None: 1, "B": 1, "KB": 1e3, "KiB": 1024, "MB": 1e6, "MiB": 1 << 20,
                   "GB": 1e9, "GiB": 1 << 30}[m.group(2)]
            limit = int(m.group(1)) * mul
            print(f"max_rate {args.max_rate}: median agent {size / a:.0f} B/s over {a:.1f} s "
                  f"= {size / a / limit:.3f} x the limit")
        print(f"agent RSS: {base_rss / 1024:.1f} MiB before, peak {max(peaks) / 1024:.1f} MiB "
              f"while uploading {mib:.0f} MiB")
        if sink:
            with open(os.path.join(store, "snapshots", name, "STATE")) as f:
                want = re.search(r"^(?:object|tar)_sha256=(\w+)$" if args.compression == "none"
                                 else r"^object_sha256=(\w+)$", f.read(), re.M).group(1)
            bad = [b for b in sink.bodies if b[0].startswith("/agent/") and b[2] != want]
            if bad or len(sink.bodies) != 2 * args.runs + 1:
                sys.exit(f"the sink got {len(sink.bodies)} bodies, {len(bad)} not the snapshot")
            agent_suites = {b[3] for b in sink.bodies if b[0].startswith("/agent/")}
            print(f"negotiated (sink): agent {', '.join(sorted(agent_suites))}; "
                  f"every agent body matched the SHA-256 in STATE")
        else:
            with open(os.path.join(web.dir, "logs", "access.log")) as f:
                ciphers = set(re.findall(r"TLSv1\.\d \S+", f.read()))
            print(f"negotiated: {', '.join(sorted(ciphers))}")
        suites = {"ECDHE-ECDSA-CHACHA20-POLY1305": "ChaCha20-Poly1305",
                  "ECDHE-RSA-CHACHA20-POLY1305": "ChaCha20-Poly1305",
                  "ECDHE-ECDSA-AES128-GCM-SHA256": "AES-128-GCM",
                  "ECDHE-RSA-AES128-GCM-SHA256": "AES-128-GCM",
                  "ECDHE-ECDSA-AES256-GCM-SHA384": "AES-256-GCM",
                  "ECDHE-RSA-AES256-GCM-SHA384": "AES-256-GCM"}
        if sink:
            names = {suites.get(c) for c in agent_suites} - {None}
        else:
            with open(os.path.join(web.dir, "logs", "access.log")) as f:
                names = {suites.get(c) for c in re.findall(r'"PUT /agent/\S+ [^"]*" \d+ \d+ '
                                                            r'TLSv1\.\d (\S+)', f.read())} - {None}
        if len(names) == 1 and not args.link:
            r = subprocess.run([os.path.join(args.build, "tests", "bench", "cipher_bench"),
                                "64", "5"], capture_output=True, text=True, check=True)
            raw = float(re.search(re.escape(names.pop()) + r"\s+median\s+([\d.]+)",
                                  r.stdout).group(1))
            print(r.stdout, end="")
            print(f"agent object rate / mbedTLS raw speed of the negotiated cipher = "
                  f"{mib / a / raw:.3f} [goal >= 0.85 uncompressed]")
        print(f"load average at end: {os.getloadavg()}")
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=60)
        web.stop()
        broker.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
