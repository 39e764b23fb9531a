#!/usr/bin/python3
"""Benchmark (not a test) of the HTTP console, all figures in one run:

1. embeddb-agent's MQTT ingest rate (4 KiB .npy at QoS 1, as
   bench_agent_mqtt.py) with the console on and a client polling
   /api/store and /metrics every 200 ms (the page open), against the same
   agent with no http section; runs alternate, medians compared. The
   agents' peak RSS (VmHWM) in both conditions is reported beside it.
2. GET /api/tensors/load of a 4 KiB float32 tensor (32x32 random values) from
   `embeddb serve`, one client on one keep-alive connection, requests/s,
   as JSON and as format=npy; medians of several runs.

Usage: bench_console.py BUILD_DIR [--messages N] [--runs R] [--seconds S]
"""
import argparse
import http.client
import io
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import paho.mqtt.client as mqtt

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_agent_mqtt  # noqa: E402
from test_agent_mqtt import Agent, Broker, free_port  # noqa: E402
from tls_servers import read_status  # noqa: E402


def npy(i):
    b = io.BytesIO()
    np.save(b, np.full((32, 32), float(i), np.float32))
    return b.getvalue()


def last_write(store):
    return max(os.stat(os.path.join(store, f)).st_mtime_ns for f in os.listdir(store)
               if f.startswith(("wal_", "sst_"))) / 1e9


def vm_hwm_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def poller(port, stop, counts):
    """The page: /api/store and /metrics every 200 ms on one connection."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    while not stop.wait(0.2):
        for path in ("/api/store", "/metrics"):
            c.request("GET", path)
            r = c.getresponse()
            r.read()
            if r.status != 200:
                raise SystemExit(f"{path}: {r.status}")
            counts[0] += 1


def ingest_run(build, n, with_http):
    tmp = tempfile.mkdtemp(prefix="embeddb-bench-console-")
    broker = Broker(tmp)
    broker.start()
    test_agent_mqtt.BUILD = build
    port = free_port()
    agent = Agent(tmp, broker.port, f"http:\n  listen: 127.0.0.1:{port}\n" if with_http else "")
    agent.write_config(broker.port, subs='    - {topic: "bench/#", qos: 1, format: npy}\n',
                       extra=f"http:\n  listen: 127.0.0.1:{port}\n" if with_http else "")
    with open(agent.conf) as f:
        text = f.read().replace("memtable_max: 1MiB", "memtable_max: 16MiB")
        text = text.replace("max_tensors: 16", "max_tensors: 64").replace(
            "max_delay_ms: 50ms", "max_delay_ms: 200ms").replace("level: debug", "level: info")
    with open(agent.conf, "w") as f:
        f.write(text)
    agent.start()
    stop, counts, th = threading.Event(), [0], None
    if with_http:
        th = threading.Thread(target=poller, args=(port, stop, counts), daemon=True)
        th.start()
    payloads = [npy(i) for i in range(64)]
    pub = mqtt.Client(client_id="bench-pub", clean_session=True)
    pub.max_inflight_messages_set(1000)
    pub.max_queued_messages_set(0)
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    t0 = time.monotonic()
    wall0 = time.time()
    for i in range(n):
        pub.publish(f"bench/cam{i % 4}", payloads[i % 64], qos=1)
    while read_status(agent.store).get("stored") != str(n):
        if time.monotonic() - t0 > 600:
            raise SystemExit("agent did not store every message")
        time.sleep(0.002)
    rate = n / (last_write(agent.store) - wall0)
    rss = vm_hwm_kib(agent.proc.pid)
    stop.set()
    if th:
        th.join()
    pub.loop_stop()
    pub.disconnect()
    agent.stop()
    broker.stop()
    shutil.rmtree(tmp, ignore_errors=True)
    return rate, rss, counts[0]


def load_rate(port, path, seconds):
    """Requests/s on one keep-alive connection: a raw socket client, so that
    the client's own HTTP parsing is not what is measured."""
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    req = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    buf = b""
    n = 0
    t0 = time.monotonic()
    end = t0 + seconds
    while True:
        s.sendall(req)
        while b"\r\n\r\n" not in buf:
            buf += s.recv(65536)
        head, buf = buf.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 200"):
            raise SystemExit(f"{path}: {head[:60]!r}")
        length = int([h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length:")]
                     [0].split(b":")[1])
        while len(buf) < length:
            buf += s.recv(65536)
        buf = buf[length:]
        n += 1
        if n % 64 == 0 and time.monotonic() >= end:
            break
    rate = n / (time.monotonic() - t0)
    s.close()
    return rate


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args()
    build = os.path.abspath(args.build)
    print("load average:", open("/proc/loadavg").read().split()[:3], flush=True)

    # 2. loads from embeddb serve
    tmp = tempfile.mkdtemp(prefix="embeddb-bench-serve-")
    p = subprocess.Popen([os.path.join(build, "cli", "embeddb"), "serve",
                          os.path.join(tmp, "store"), "--listen", "127.0.0.1:0"],
                         stdout=subprocess.PIPE, text=True)
    port = int(p.stdout.readline().split("http://127.0.0.1:")[1].split("/")[0])
    c = http.client.HTTPConnection("127.0.0.1", port)
    frame = np.random.default_rng(13).standard_normal((32, 32)).astype(np.float32)
    body = io.BytesIO()
    np.save(body, frame)
    body = body.getvalue()
    c.request("POST", "/api/tensors/store?key=cam%2F0", body=body,
              headers={"Content-Type": "application/x-npy"})
    r = c.getresponse()
    assert r.status == 200, r.read()
    r.read()
    c.request("GET", "/api/tensors/load?key=cam%2F0")
    r = c.getresponse()
    json_len = len(r.read())
    c.close()
    rates = {"json": [], "npy": []}
    for _ in range(args.runs):
        rates["json"].append(load_rate(port, "/api/tensors/load?key=cam%2F0", args.seconds))
        rates["npy"].append(load_rate(port, "/api/tensors/load?key=cam%2F0&format=npy",
                                      args.seconds))
        print(f"load: json {rates['json'][-1]:.0f} req/s, npy {rates['npy'][-1]:.0f} req/s",
              flush=True)
    p.terminate()
    p.wait()
    shutil.rmtree(tmp, ignore_errors=True)

    # 1. ingest with and without the page open, alternating
    on, off, rss_on, rss_off, polls = [], [], [], [], []
    for r in range(args.runs):
        for with_http in (False, True):
            rate, rss, k = ingest_run(build, args.messages, with_http)
            (on if with_http else off).append(rate)
            (rss_on if with_http else rss_off).append(rss)
            if with_http:
                polls.append(k)
            print(f"run {r + 1} {'page open' if with_http else 'no http  '}: {rate:.0f} msg/s, "
                  f"peak RSS {rss / 1024:.1f} MiB" + (f", {k} polls" if with_http else ""),
                  flush=True)
    ratios = [a / b for a, b in zip(on, off)]
    print(f"\nload average: {open('/proc/loadavg').read().split()[:3]}")
    print(f"medians of {args.runs} runs:")
    print(f"load_4KiB_json_req_per_s={statistics.median(rates['json']):.0f} "
          f"({json_len} B responses; goal >= 5000)")
    print(f"load_4KiB_npy_req_per_s={statistics.median(rates['npy']):.0f}")
    print(f"ingest_msgs_per_s_no_http={statistics.median(off):.0f}")
    print(f"ingest_msgs_per_s_page_open={statistics.median(on):.0f}")
    print(f"ratio_page_open_vs_no_http={statistics.median(ratios):.3f} (pairs: "
          f"{', '.join(f'{x:.3f}' for x in ratios)}; goal >= 0.95)")
    print(f"peak_rss_MiB_no_http={statistics.median(rss_off) / 1024:.2f} "
          f"page_open={statistics.median(rss_on) / 1024:.2f} (growth goal <= 1 MiB)")


if __name__ == "__main__":
    main()
