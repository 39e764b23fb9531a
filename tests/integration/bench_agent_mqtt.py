#!/usr/bin/python3
"""Benchmark (not a test): embeddb-agent's end-to-end ingest rate of 4 KiB
tensors at QoS 1 against mosquitto_sub receiving the same stream from the
same broker in the same run, plus the agent's peak RSS with the default
config. Medians of several runs.

With --control it instead measures the cost of fleet control's status and
durable watermark publishing (agent/CONTROL.md): each run ingests the
stream twice, with control.status_interval and control.watermark_interval
0s (no status, no Last Will, no watermark) and at the most often allowed
(status 1s, watermark 100ms), in alternating order, and reports the on/off
ratio.

With --upload-max-rate R (e.g. 4MiB/s) it measures what an upload costs
ingest: each run first stores 64 MiB (16384 tensors of 4 KiB on other
topics) and seals it, then ingests the stream twice in alternating order --
with that snapshot being uploaded to a local nginx over TLS under
upload.max_rate R (the stream starts once the upload has), and with an
agent that has no upload configured -- and reports the ratio (goal >=
0.95). The runs print the load average beside the figures.

Usage: bench_agent_mqtt.py BUILD_DIR [--messages N] [--runs R] [--control]
                           [--upload-max-rate R]
"""
import argparse
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import paho.mqtt.client as mqtt

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_agent_mqtt import Agent, Broker  # noqa: E402
from tls_servers import Nginx, make_pki, read_status, wait_for  # noqa: E402

PRE = 16384  # tensors stored and sealed before the timed stream (64 MiB)


def npy(i):
    b = io.BytesIO()
    np.save(b, np.full((32, 32), float(i), np.float32))
    return b.getvalue()


def last_write(store):
    """Wall-clock time of the store's last data write (the final commit):
    agent.status is only rewritten once a second, too coarse to time by."""
    return max(os.stat(os.path.join(store, f)).st_mtime_ns for f in os.listdir(store)
               if f.startswith(("wal_", "sst_"))) / 1e9


def vm_hwm_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


CONTROL = {"0s": "  status_interval: 0s\n  watermark_interval: 0s\n",
           "1s": "  status_interval: 1s\n  watermark_interval: 100ms\n"}


def one_run(build, n, control=None, upload=None):
    """upload: None (no snapshot), "" (a sealed snapshot, no upload
    configured) or a max_rate (that snapshot uploading while we time)."""
    tmp = tempfile.mkdtemp(prefix="embeddb-bench-")
    broker = Broker(tmp)
    broker.start()
    web = None
    import test_agent_mqtt
    test_agent_mqtt.BUILD = build
    agent = Agent(tmp, broker.port)
    # The default batching and memtable settings (conf/agent.yaml's values).
    agent.write_config(broker.port, subs='    - {topic: "bench/#", qos: 1, format: npy}\n')
    with open(agent.conf) as f:
        text = f.read().replace("memtable_max: 1MiB", "memtable_max: 16MiB")
        if control is not None:
            text += "control:\n" + CONTROL[control]
        if upload is not None:
            text += "snapshot: {max_bytes: 4GiB, interval: 0ms, keep: 10}\n"
        if upload:
            pki = make_pki(os.path.join(tmp, "pki"), "bench")
            web = Nginx(tmp, pki).start()
            text += (f"upload:\n  url: https://localhost:{web.port}/agent\n"
                     f"  ca_file: {pki.ca}\n  io_timeout: 60s\n  max_rate: {upload}\n")
        text = text.replace("max_tensors: 16", "max_tensors: 64").replace(
            "max_delay_ms: 50ms", "max_delay_ms: 200ms").replace("level: debug", "level: info")
    with open(agent.conf, "w") as f:
        f.write(text)
    agent.start()
    sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-q",
                            "1", "-t", "bench/#", "-C", str(n)], stdout=subprocess.DEVNULL)
    time.sleep(0.5)
    payloads = [npy(i) for i in range(64)]
    pub = mqtt.Client(client_id="bench-pub", clean_session=True)
    pub.max_inflight_messages_set(1000)
    pub.max_queued_messages_set(0)
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    pre = 0
    if upload is not None:
        pre = PRE
        for i in range(pre):
            pub.publish(f"bench/pre{i % 4}", payloads[(i * 7) % 64], qos=1)
        wait_for(lambda: read_status(agent.store).get("stored") == str(pre), timeout=300,
                 what="the snapshot's tensors")
        subprocess.run([os.path.join(build, "cli", "embeddb"), "snapshot", agent.store],
                       check=True, capture_output=True)
        if upload:
            wait_for(lambda: read_status(agent.store).get("uploading", "-") != "-",
                     timeout=120, what="the upload to start")
    t0 = time.monotonic()
    wall0 = time.time()
    for i in range(n):
        pub.publish(f"bench/cam{i % 4}", payloads[i % 64], qos=1)
    t_sub = None
    while True:
        if t_sub is None and sub.poll() is not None:
            t_sub = time.monotonic() - t0
        if read_status(agent.store).get("stored") == str(pre + n):
            t_agent = last_write(agent.store) - wall0
            break
        if time.monotonic() - t0 > 600:
            raise SystemExit("agent did not store every message")
        time.sleep(0.002)
    if t_sub is None:
        sub.wait(timeout=120)
        t_sub = time.monotonic() - t0
    rss_kib = vm_hwm_kib(agent.proc.pid)
    if upload and read_status(agent.store).get("uploading", "-") == "-":
        print("  note: the upload ended before the stream was stored", flush=True)
    pub.loop_stop()
    pub.disconnect()
    agent.stop()
    broker.stop()
    if web:
        web.stop()
    shutil.rmtree(tmp, ignore_errors=True)
    return n / t_agent, n / t_sub, rss_kib


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--control", action="store_true")
    ap.add_argument("--upload-max-rate", default=None)
    args = ap.parse_args()
    build = os.path.abspath(args.build)
    if args.upload_max_rate:
        print(f"load average at start: {os.getloadavg()}", flush=True)
        up, no, ratios = [], [], []
        for r in range(args.runs):
            order = (args.upload_max_rate, "") if r % 2 == 0 else ("", args.upload_max_rate)
            got = {u: one_run(build, args.messages, upload=u)[0] for u in order}
            no.append(got[""])
            up.append(got[args.upload_max_rate])
            ratios.append(up[-1] / no[-1])
            print(f"run {r + 1}: without upload {no[-1]:.0f} msg/s, uploading under max_rate "
                  f"{args.upload_max_rate} {up[-1]:.0f} msg/s, ratio {ratios[-1]:.3f}", flush=True)
        print(f"\nmedians of {args.runs} runs, {args.messages} messages of 4 KiB (npy) at QoS 1:")
        print(f"without_upload_msgs_per_s={statistics.median(no):.0f}")
        print(f"uploading_msgs_per_s={statistics.median(up):.0f}")
        print(f"ratio_uploading_vs_not={statistics.median(ratios):.3f} (goal >= 0.95)")
        print(f"load average at end: {os.getloadavg()}")
        return
    if args.control:
        on, off, ratios = [], [], []
        for r in range(args.runs):
            order = ("0s", "1s") if r % 2 == 0 else ("1s", "0s")
            got = {c: one_run(build, args.messages, c)[0] for c in order}
            off.append(got["0s"])
            on.append(got["1s"])
            ratios.append(got["1s"] / got["0s"])
            print(f"run {r + 1}: status+watermark off {got['0s']:.0f} msg/s, on "
                  f"{got['1s']:.0f} msg/s, ratio {ratios[-1]:.3f}", flush=True)
        print(f"\nmedians of {args.runs} runs, {args.messages} messages of 4 KiB (npy) at QoS 1:")
        print(f"control_off_msgs_per_s={statistics.median(off):.0f}")
        print(f"control_on_msgs_per_s={statistics.median(on):.0f}")
        print(f"ratio_on_vs_off={statistics.median(ratios):.3f} (goal >= 0.95)")
        return
    agent_rates, sub_rates, ratios, rss = [], [], [], []
    for r in range(args.runs):
        a, s, kib = one_run(build, args.messages)
        agent_rates.append(a)
        sub_rates.append(s)
        ratios.append(a / s)
        rss.append(kib)
        print(f"run {r + 1}: agent {a:.0f} msg/s, mosquitto_sub {s:.0f} msg/s, "
              f"ratio {a / s:.3f}, agent peak RSS {kib / 1024:.1f} MiB", flush=True)
    print(f"\nmedians of {args.runs} runs, {args.messages} messages of 4 KiB (npy) at QoS 1:")
    print(f"agent_msgs_per_s={statistics.median(agent_rates):.0f}")
    print(f"mosquitto_sub_msgs_per_s={statistics.median(sub_rates):.0f}")
    print(f"ratio_agent_vs_mosquitto_sub={statistics.median(ratios):.3f} (goal >= 0.90)")
    print(f"agent_peak_rss_MiB={max(rss) / 1024:.1f} (bound 8 MiB + memtable_max 16 MiB = 24)")


if __name__ == "__main__":
    main()
