#!/usr/bin/python3
"""The kill -9 soak of embeddb-agent under MQTT load: a command (like the
benchmarks), not a timed test. It measures what the agent loses and
duplicates when it is killed at random moments, against a real mosquitto.

What it does:
  1. Starts mosquitto on a free loopback port (persistence on, no queue
     limit, in a temp dir) and embeddb-agent with a generated config: a
     store in the temp dir, default batching, fsync on, a persistent
     session, small snapshots (seals happen during the run; no upload).
  2. A paho publisher (QoS 1, one long-lived connection) publishes at a
     steady rate on --topics topics. Each message is a raw int64 tensor
     [id, publish time (ns, wall clock), id ^ CHECK, id, id, ...]; a message
     counts as published only once its PUBACK arrived.
  3. Each round: the agent runs a random (seeded) time after it is ready
     (READY=1, i.e. subscribed), gets SIGKILL, stays down a random while
     (up to --down-max), and is started again. Messages published meanwhile
     wait in the broker's session and arrive in a burst after the restart;
     a share of the kills (--early) is drawn from the first moments after
     READY=1 so that some land in that burst, where the agent holds the most
     acknowledged but unstored messages.
  4. After --rounds kills: publishing stops, every PUBACK is awaited, and an
     end marker is published last: a payload of the wrong size on a
     subscribed topic, which the agent rejects and counts. The agent starts
     one last time; once agent.status of that process counts the rejection,
     the broker has handed it everything before (one session queue, in
     order); once nothing is pending and stored + rejected == received it
     is stopped with SIGTERM (exit 0 expected).
  5. Everything stored is read back with soak_dump (every checksum
     verified): the live store, every snapshot under snapshots/ and every
     committed but unfinished .seal-NAME (not .seal-new: that is garbage
     whose tensors are still in the store; not .del-NAME).

Accounting:
  published   ids whose PUBACK arrived
  stored      distinct ids found in any of those stores
  lost        published and not stored
  duplicated  extra copies of an id: under another key (redelivered by the
              broker and stored again; each such copy is pinned to the kill
              between its two arrivals) or the same key held in two stores
  foreign     stored tensors that were never published or whose payload,
              topic or size does not match what was sent (fails the run)
  reused keys one key holding different messages in different stores: the
              agent wrote a key twice (fails the run; within one store the
              older message just disappears and shows up as unexplained)

Attributing losses to kills. The broker delivers the session's queue in
order, so a kill that loses messages leaves a gap in the stored ids. For a
lost id, take the nearest stored ids below and above it and their arrival
times (the tensor timestamp is the agent's wall-clock receive time): the
incarnation that acknowledged the lost message died between the two, so the
kill is one whose death lies after the lower neighbour arrived, whose
restart lies before the upper neighbour arrived, and that happened after the
message was published. The kills that qualify are consecutive; several
qualify when an incarnation stored nothing at all (it acknowledged messages
and died before its first commit), and then the gap alone cannot say how
the loss splits between them. The broker can: it runs with log_type all,
and each incarnation is one connection ("New client connected ... as
embeddb-soak"), so the PUBACKs it logged on that connection are exactly the
messages that incarnation acknowledged. A kill's lost count is that number
minus the deliveries the incarnation stored whose PUBACK the broker took (a
stored copy that was delivered again later was not taken). Those counts
are what --max-lost-per-kill checks; they must add up to the lost ids, and
the lost ids are then assigned to kills in that proportion (earliest
deadline first over each id's candidate kills) for the windows and the
table. If no kill qualifies, the loss is "unexplained" (lost by the
graceful stop, or overwritten under a reused key) and fails the run
whatever the thresholds.
A kill's loss window is the span of publish times of the messages it lost
(newest - oldest), i.e. how much of the sensor's timeline is missing; the
table also shows how old the oldest lost message was at the kill.

Duplicates and the broker. QoS 1 is at-least-once: a message is sent again
after a kill if the broker had not processed its PUBACK. The agent stores a
QoS 1 message only once the broker has answered a settle barrier sent after
its PUBACK (agent/ingest.c), so with a broker that keeps its in-flight
window nothing is stored twice. mosquitto 2.0.11 (Debian 12) does not keep
it for a session with queued messages: acknowledging the oldest in-flight
message moves up to max_inflight_messages more from the queue into flight
whatever is already in flight (db__message_delete_outgoing), so while the
backlog of a downtime drains thousands are in flight, the barrier's answer
lies behind them, and the agent takes some messages unproven (counted in
its maybe_duplicated) rather than hold more than its bound; a kill then may
duplicate those. --broker-max-inflight 1 keeps that broker to one message in
flight (ctest runs both ways).

Exit status 0 only when: duplicated <= --max-duplicates, every kill's lost
count and window are within --max-lost-per-kill and --max-lost-window-ms
(when given), nothing is foreign, reused, unexplained or damaged, the
broker's PUBACK counts agree with the stored ids (one connection per start,
the graceful stop lost nothing), every start was ready in time, and the
graceful stop exited 0. 1 otherwise, 2 on
bad usage. --keep-dir keeps the store, both logs and kills.tsv (each kill's
times and lost / duplicated ids) for a post-mortem.

Usage: soak_agent.py [--build BUILD_DIR | --agent PATH --dump PATH]
                     [--rounds N] [--rate MSG_PER_S] [--seed S] ...
       (soak_agent.py --help lists every option)
"""
import argparse
import bisect
import heapq
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

import paho.mqtt.client as mqtt

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
CHECK = 0x5EED50AC1234567  # element 2 of every payload is id ^ CHECK
TOPIC = "soak"
CLIENT_ID = "embeddb-soak"
END_MARKER = b"soak-end"  # the wrong size for the raw shape: rejected


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout, what, step=0.02, progress=None):
    """pred() true within timeout seconds; with progress (a function whose
    value changes while work goes on), within timeout seconds of the last
    change: a slow machine is not a failure, a stall is."""
    end = time.monotonic() + timeout
    last = progress() if progress else None
    while True:
        v = pred()
        if v:
            return v
        if progress:
            now = progress()
            if now != last:
                last, end = now, time.monotonic() + timeout
        if time.monotonic() > end:
            raise SoakError(f"timed out after {timeout:.0f} s "
                            f"{'without progress ' if progress else ''}waiting for {what}")
        time.sleep(step)


def read_status(store):
    """STORE/agent.status as a dict of strings ({} before the first write)."""
    try:
        with open(os.path.join(store, "agent.status")) as f:
            return dict(line.strip().split("=", 1) for line in f if "=" in line)
    except OSError:
        return {}


def tail(path, n=15):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


class SoakError(Exception):
    """The run could not be carried out (not a measured failure)."""


class Broker:
    """mosquitto on a free loopback port. The agent's persistent session
    (clean_session false) keeps its queue while the agent is dead; no queue
    limit that a run can reach, so a drop is never the broker's."""

    def __init__(self, tmp, exe, max_inflight=None):
        self.port = free_port()
        self.dir = os.path.join(tmp, "broker")
        os.makedirs(self.dir)
        self.conf = os.path.join(self.dir, "mosquitto.conf")
        self.log = os.path.join(self.dir, "mosquitto.log")
        with open(self.conf, "w") as f:
            f.write(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
                    f"persistence true\npersistence_location {self.dir}/\n"
                    "autosave_interval 1\nmax_queued_messages 100000000\n"
                    # every PUBACK, counted per connection (acks_per_connection)
                    + "log_type all\n"
                    + (f"max_inflight_messages {max_inflight}\n" if max_inflight is not None
                       else "")
                    # as root it would drop to user mosquitto, which cannot
                    # read the private temp directory
                    + ("user root\n" if os.geteuid() == 0 else ""))
        self.exe = exe
        self.proc = None

    def start(self):
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([self.exe, "-c", self.conf], stdout=log, stderr=log)
        wait_for(self._listening, 15, "mosquitto to listen")

    def _listening(self):
        if self.proc.poll() is not None:
            raise SoakError(f"mosquitto exited ({self.proc.returncode}):\n{tail(self.log)}")
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
            return True
        except OSError:
            return False

    def acks_per_connection(self):
        """The PUBACKs the broker logged from the agent, one count per
        connection of the agent's client id, in connection order."""
        conns = []
        with open(self.log, errors="replace") as f:
            for line in f:
                if f"Received PUBACK from {CLIENT_ID} (" in line:
                    conns[-1] += 1
                elif "New client connected" in line and f" as {CLIENT_ID} (" in line:
                    conns.append(0)
        return conns

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


class Agent:
    """embeddb-agent with the soak's config; readiness is READY=1 on its
    $NOTIFY_SOCKET (sent once subscribed)."""

    def __init__(self, tmp, exe, port, n_elems, args):
        self.tmp, self.exe = tmp, exe
        self.store = os.path.join(tmp, "store")
        self.conf = os.path.join(tmp, "agent.yaml")
        self.log = os.path.join(tmp, "agent.log")
        self.sock_path = os.path.join(tmp, "notify.sock")
        self.proc = None
        self.notify = None
        with open(self.conf, "w") as f:
            f.write(f"""device_id: soak
storage:
  dir: {self.store}
  memtable_max: {args.memtable_max}
  fsync: true
  min_free: 0
mqtt:
  host: 127.0.0.1
  port: {port}
  client_id: {CLIENT_ID}
  clean_session: false
  keepalive: 5s
  max_payload: 1MiB
  subscriptions:
    - {{topic: "{TOPIC}/+", qos: 1, format: raw, dtype: int64, shape: [{n_elems}]}}
snapshot:
  max_bytes: {args.snapshot_bytes}
  interval: {args.snapshot_interval}
  keep: 0
log:
  level: info
""")

    def start(self, timeout):
        if os.path.exists(self.sock_path):
            os.unlink(self.sock_path)
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(self.sock_path)
        env = dict(os.environ, NOTIFY_SOCKET=self.sock_path)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([self.exe, "-c", self.conf], stderr=log,
                                         stdout=subprocess.DEVNULL, env=env)
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if self.proc.poll() is not None or left <= 0:
                what = (f"exited with {self.proc.returncode}" if self.proc.poll() is not None
                        else f"not ready after {timeout:.0f} s")
                raise SoakError(f"embeddb-agent {what}:\n{tail(self.log)}")
            self.notify.settimeout(min(left, 0.5))
            try:
                if self.notify.recv(4096).startswith(b"READY=1"):
                    return
            except socket.timeout:
                pass

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        """SIGKILL; returns the exit status it had if it died by itself."""
        died_alone = self.proc.poll()
        if died_alone is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self._close()
        return died_alone

    def terminate(self, timeout):
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = None
        self._close()
        return rc

    def _close(self):
        if self.notify:
            self.notify.close()
            self.notify = None

    def status(self):
        return read_status(self.store)


class Publisher:
    """One paho client (QoS 1, one connection for the whole run) publishing
    message id i at t0 + i / rate. It never reconnects: a resent message
    would be a duplicate the agent did not cause, so a lost connection
    fails the run instead."""

    def __init__(self, port, rate, n_elems, topics):
        self.rate, self.n_elems, self.topics = rate, n_elems, topics
        self.pub_ns = []  # by id: wall-clock time of the publish call
        self.infos = []   # by id: paho's MQTTMessageInfo (is_published = PUBACK seen)
        self.template = bytearray(struct.pack("<q", 0) * n_elems)
        self.stop_evt = threading.Event()
        self.connected = threading.Event()
        self.disconnected = None
        self.error = None  # what stopped the publishing thread early
        self.late_resets = 0
        self.c = mqtt.Client(client_id=f"soak-pub-{os.getpid()}", clean_session=True)
        self.c.max_inflight_messages_set(1000)
        self.c.max_queued_messages_set(0)
        self.c.on_connect = lambda c, u, f, rc: rc == 0 and self.connected.set()
        self.c.on_disconnect = self._on_disconnect
        self.c.connect("127.0.0.1", port, keepalive=30)
        self.c.loop_start()
        if not self.connected.wait(15):
            raise SoakError("the publisher could not connect to mosquitto")
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _on_disconnect(self, c, u, rc):
        if not self.stop_evt.is_set() or rc != 0:
            self.disconnected = rc

    def payload(self, i, t_ns):
        b = self.template
        struct.pack_into("<qqq", b, 0, i, t_ns, i ^ CHECK)
        if self.n_elems > 3:
            struct.pack_into("<q", b, 24, i)
        return bytes(b)

    def _publish(self, i):
        t_ns = time.time_ns()
        info = self.c.publish(f"{TOPIC}/{i % self.topics}", self.payload(i, t_ns), qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise SoakError(f"publish {i}: {mqtt.error_string(info.rc)}")
        self.pub_ns.append(t_ns)
        self.infos.append(info)

    def _run(self):
        try:
            self._pace()
        except Exception as e:  # reported by check(), not lost with the thread
            self.error = e

    def check(self):
        if self.error is not None:
            raise SoakError(f"the publisher stopped: {self.error}")
        if self.disconnected is not None:
            raise SoakError(f"the publisher lost its connection (rc {self.disconnected})")

    def _pace(self):
        t0, i0 = time.monotonic(), 0
        while not self.stop_evt.is_set() and self.disconnected is None:
            i = len(self.pub_ns)
            delay = t0 + (i - i0) / self.rate - time.monotonic()
            if delay > 0:
                if self.stop_evt.wait(delay):
                    break
            elif delay < -0.05:  # starved of CPU: resume the pace, no burst
                t0, i0 = time.monotonic(), i
                self.late_resets += 1
            self._publish(i)

    def start(self):
        self.thread.start()

    def stop(self):
        self.stop_evt.set()
        self.thread.join()

    def n_acked(self):
        return sum(1 for info in self.infos if info.is_published())

    def end_marker(self):
        info = self.c.publish(f"{TOPIC}/0", END_MARKER, qos=1)
        wait_for(info.is_published, 60, "the end marker's PUBACK")

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def dump(dump_exe, store_dir):
    """[(key, seq, recv_ns, data_len, id, pub_ns, check)] of one store, and
    an error text ('' when every checksum held)."""
    r = subprocess.run([dump_exe, "-n", "3", store_dir], capture_output=True, text=True)
    rows = []
    for line in r.stdout.splitlines():
        f = line.split("\t")
        vals = [int(v) if v != "-" else None for v in f[4:7]]
        rows.append((f[0], int(f[1]), int(f[2]), int(f[3]), *vals))
    err = "" if r.returncode == 0 else (r.stderr.strip() or f"soak_dump exited {r.returncode}")
    return rows, err


def stores_to_read(store):
    """The live store, every snapshot and every committed unfinished seal."""
    out = [("live", store)]
    root = os.path.join(store, "snapshots")
    names = sorted(os.listdir(root)) if os.path.isdir(root) else []
    for n in names:
        if n == ".seal-new" or n.startswith(".del-"):
            continue
        if os.path.isdir(os.path.join(root, n)):
            out.append((n, os.path.join(root, n)))
    leftovers = [n for n in names if n == ".seal-new" or n.startswith((".seal-", ".del-"))]
    return out, leftovers


class Kill:
    def __init__(self, n, ready_ns, dead_ns, run_s, died_alone):
        self.n, self.ready_ns, self.dead_ns, self.run_s = n, ready_ns, dead_ns, run_s
        self.died_alone = died_alone
        self.restart_ns = None  # when the next incarnation was started
        self.lost = []          # ids
        self.dups = []          # ids stored again after this kill


def assign_losses(spans, n_kills, caps):
    """Lost ids to kills, each id (first, last, id) to one kill in
    first..last, at most caps[n] to kill n: earliest deadline first. None
    when impossible."""
    spans = sorted(spans)
    out = [[] for _ in range(n_kills)]
    heap, s = [], 0
    for n in range(n_kills):
        while s < len(spans) and spans[s][0] == n:
            heapq.heappush(heap, (spans[s][1], spans[s][2]))
            s += 1
        while heap and len(out[n]) < caps[n]:
            last, i = heapq.heappop(heap)
            if last < n:
                return None
            out[n].append(i)
        if heap and heap[0][0] <= n:
            return None
    return out if not heap else None


def analyse(pub, kills, stored_rows, args, starts, acks):
    """Fills each Kill's lost ids; returns the counts for the summary."""
    sent = pub.pub_ns
    acked = {i for i, info in enumerate(pub.infos) if info.is_published()}
    copies = {}       # id -> [(store, key, recv_ns)]
    key_ids = {}      # key -> {ids}
    foreign = []
    expect_len = args.msg_bytes
    for where, (key, _seq, recv_ns, dlen, i, p_ns, chk) in stored_rows:
        topic = key.rsplit("#", 1)[0]
        ok = (i is not None and 0 <= i < len(sent) and p_ns == sent[i] and chk == i ^ CHECK
              and dlen == expect_len and topic == f"{TOPIC}/{i % args.topics}")
        if not ok:
            foreign.append(f"{where}:{key} (values {i}, {p_ns}, {chk}; {dlen} bytes)")
            continue
        copies.setdefault(i, []).append((where, key, recv_ns))
        key_ids.setdefault(key, set()).add(i)
    redelivered = sum(len({k for _, k, _ in c}) - 1 for c in copies.values())
    same_key = sum(len(c) - len({k for _, k, _ in c}) for c in copies.values())
    reused_keys = {k: v for k, v in key_ids.items() if len(v) > 1}
    stored_ids = sorted(copies)
    arrival = {i: min(r for _, _, r in copies[i]) for i in stored_ids}
    # A copy under a new key was stored by a later incarnation: pin it to
    # the kill between the two arrivals.
    dup_unexplained = []
    for i in stored_ids:
        first_by_key = {}
        for _, key, r in copies[i]:
            first_by_key[key] = min(r, first_by_key.get(key, r))
        arrivals = sorted(first_by_key.values())
        for a, b in zip(arrivals, arrivals[1:]):
            k = next((k for k in kills if a < k.dead_ns and k.restart_ns is not None
                      and k.restart_ns <= b), None)
            if k:
                k.dups.append(i)
            else:
                dup_unexplained.append(i)
    lost = sorted(acked - set(stored_ids))
    unexplained, ambiguous, spans = [], 0, []
    for i in lost:
        j = bisect.bisect_left(stored_ids, i)
        lo = arrival[stored_ids[j - 1]] if j > 0 else -1
        hi = arrival[stored_ids[j]] if j < len(stored_ids) else float("inf")
        cands = [n for n, k in enumerate(kills)
                 if lo < k.dead_ns and k.restart_ns is not None and k.restart_ns <= hi
                 and sent[i] < k.dead_ns]
        if not cands:
            unexplained.append(i)
            continue
        ambiguous += len(cands) > 1
        spans.append((cands[0], cands[-1], i))
    # What each incarnation (started at starts[n]) lost, from the broker's
    # PUBACK count on its connection: acks - stored deliveries the broker
    # took (a delivery stored again later was not taken).
    taken = [0] * len(starts)
    for i in stored_ids:
        first_by_key = {}
        for _, key, r in copies[i]:
            first_by_key[key] = min(r, first_by_key.get(key, r))
        last = max(first_by_key.values())
        taken[bisect.bisect_right(starts, last) - 1] += 1
    problems = []
    n_lost = None
    if len(acks) != len(starts):
        problems.append(f"the broker logged {len(acks)} connection(s) of the agent for "
                        f"{len(starts)} start(s): a reconnect, so per-kill counts are unknown")
    else:
        # the last incarnation also took the end marker and rejected it
        n_lost = [a - t - (n == len(starts) - 1) for n, (a, t) in enumerate(zip(acks, taken))]
        if n_lost[-1]:
            problems.append(f"the gracefully stopped agent acknowledged {acks[-1]} and its "
                            f"stored and rejected messages account for "
                            f"{acks[-1] - n_lost[-1]}")
        if sum(n_lost) != len(lost) or min(n_lost) < 0:
            problems.append(f"the broker's PUBACK counts give {sum(n_lost)} lost (per "
                            f"incarnation {n_lost}), the stored ids {len(lost)}")
    # Each kill gets as many lost ids as the broker counted.
    counted = n_lost is not None and not problems
    assigned = assign_losses(spans, len(kills), n_lost[:len(kills)]) if counted else None
    if counted and assigned is None:
        problems.append("the lost ids cannot be assigned to kills in the broker's counts")
    if assigned is None:  # the run fails already: each id to its first candidate
        assigned = assign_losses(spans, len(kills), [len(spans)] * len(kills))
    for n, ids in enumerate(assigned):
        kills[n].lost = sorted(ids)
    return dict(published=len(acked), sent=len(sent), unacked=len(sent) - len(acked),
                stored=len(stored_ids), tensors=len(stored_rows), lost=len(lost),
                redelivered=redelivered, same_key=same_key, duplicated=redelivered + same_key,
                reused_keys=reused_keys, foreign=foreign, unexplained=unexplained,
                dup_unexplained=dup_unexplained,
                ambiguous=ambiguous, problems=problems,
                stored_unacked=len(set(stored_ids) - acked))


def window_ms(pub, k):
    if not k.lost:
        return 0.0
    t = [pub.pub_ns[i] for i in k.lost]
    return (max(t) - min(t)) / 1e6


def ranges(ids):
    """'3-7,9' from sorted ids."""
    out, start = [], None
    for a, b in zip(ids, ids[1:] + [None]):
        start = a if start is None else start
        if b != a + 1:
            out.append(f"{start}" if start == a else f"{start}-{a}")
            start = None
    return ",".join(out)


def run(args):
    t_start = time.monotonic()
    rng = random.Random(args.seed)
    n_elems = args.msg_bytes // 8
    tmp = tempfile.mkdtemp(prefix="embeddb-soak-")
    broker = agent = pub = None
    kills = []
    problems = []
    try:
        broker = Broker(tmp, args.mosquitto, args.broker_max_inflight)
        broker.start()
        agent = Agent(tmp, args.agent, broker.port, n_elems, args)
        # The first start creates the persistent session before anything is
        # published: from here on the broker queues every message for it.
        first_start_ns = time.time_ns()
        agent.start(args.ready_timeout)
        pub = Publisher(broker.port, args.rate, n_elems, args.topics)
        pub.start()
        for n in range(1, args.rounds + 1):
            ready_ns = time.time_ns()
            early = rng.random() < args.early
            run_s = rng.uniform(args.run_min, args.early_max if early else args.run_max)
            time.sleep(run_s)  # the random kill moment is the point
            died_alone = agent.kill()
            dead_ns = time.time_ns()
            if died_alone is not None:
                problems.append(f"round {n}: the agent exited by itself ({died_alone})")
            kills.append(Kill(n, ready_ns, dead_ns, run_s, died_alone))
            pub.check()
            time.sleep(rng.uniform(0, args.down_max))
            kills[-1].restart_ns = time.time_ns()
            agent.start(args.ready_timeout)
            if args.verbose:
                print(f"round {n:4d}: ran {run_s:5.2f} s, published {len(pub.pub_ns)}",
                      file=sys.stderr, flush=True)
        # Drain: no more publishing, every PUBACK in, then the end marker.
        pub.stop()
        pub.check()
        wait_for(lambda: pub.n_acked() == len(pub.infos), args.drain_timeout,
                 "every PUBACK from mosquitto", progress=pub.n_acked)
        pub.end_marker()
        pid = str(agent.proc.pid)

        def drained():
            if not agent.alive():
                raise SoakError(f"the agent exited by itself ({agent.proc.returncode}) "
                                f"during the drain:\n{tail(agent.log)}")
            st = agent.status()
            if st.get("pid") != pid:
                return False
            rejected = sum(int(v) for k, v in st.items() if k.startswith("rejected_"))
            return (rejected >= 1 and st.get("pending") == "0" and
                    int(st.get("stored", 0)) + rejected + int(st.get("unmatched", 0)) ==
                    int(st.get("received", -1)))

        wait_for(drained, args.drain_timeout, "the agent to drain the broker's queue", 0.1,
                 progress=lambda: agent.status().get("received"))
        rc = agent.terminate(30)
        if rc != 0:
            problems.append(f"graceful stop (SIGTERM) exited {rc}, expected 0")
        pub.close()
        pub_late = pub.late_resets
        broker.stop()
        # Read back everything stored.
        places, leftovers = stores_to_read(agent.store)
        stored_rows, n_snapshots = [], 0
        for where, d in places:
            rows, err = dump(args.dump, d)
            if err:
                problems.append(f"{where}: {err}")
            n_snapshots += where != "live"
            stored_rows += [(where, r) for r in rows]
        starts = [first_start_ns] + [k.restart_ns for k in kills]
        res = analyse(pub, kills, stored_rows, args, starts, broker.acks_per_connection())
        problems += res["problems"]
        with open(os.path.join(tmp, "kills.tsv"), "w") as f:  # for --keep-dir post-mortems
            f.write("kill\tready_ns\tdead_ns\trestart_ns\tlost\tdups\n")
            for k in kills:
                f.write(f"{k.n}\t{k.ready_ns}\t{k.dead_ns}\t{k.restart_ns}\t"
                        f"{ranges(k.lost) or '-'}\t{ranges(sorted(k.dups)) or '-'}\n")
        elapsed = time.monotonic() - t_start
        report(args, pub, kills, res, problems, leftovers, n_snapshots, pub_late, elapsed)
        return 1 if problems else 0
    finally:
        if agent and agent.alive():
            agent.kill()
        if pub:
            pub.stop_evt.set()
        if broker:
            broker.stop()
        if args.keep_dir:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def report(args, pub, kills, res, problems, leftovers, n_snapshots, pub_late, elapsed):
    lossy = [k for k in kills if k.lost]
    worst_w = max(kills, key=lambda k: window_ms(pub, k), default=None)
    worst_n = max(kills, key=lambda k: len(k.lost), default=None)
    ww = window_ms(pub, worst_w) if worst_w else 0.0
    if args.verbose:
        print(f"{'kill':>4} {'ran_s':>6} {'lost':>6} {'window_ms':>9} {'oldest_ms':>9} "
              f"{'dups':>5}  lost ids; dup ids")
        for k in kills:
            w = window_ms(pub, k)
            oldest = (k.dead_ns - min(pub.pub_ns[i] for i in k.lost)) / 1e6 if k.lost else 0
            note = f"  (exited by itself: {k.died_alone})" if k.died_alone is not None else ""
            dups = f"; dup {ranges(sorted(k.dups))}" if k.dups else ""
            print(f"{k.n:4d} {k.run_s:6.2f} {len(k.lost):6d} {w:9.1f} {oldest:9.1f} "
                  f"{len(k.dups):5d}  {ranges(k.lost) or '-'}{dups}{note}")
    for k in kills:
        if args.max_lost_per_kill is not None and len(k.lost) > args.max_lost_per_kill:
            problems.append(f"kill {k.n}: lost {len(k.lost)} > --max-lost-per-kill "
                            f"{args.max_lost_per_kill}")
        w = window_ms(pub, k)
        if args.max_lost_window_ms is not None and w > args.max_lost_window_ms:
            problems.append(f"kill {k.n}: loss window {w:.1f} ms > --max-lost-window-ms "
                            f"{args.max_lost_window_ms:g}")
    if res["duplicated"] > args.max_duplicates:
        problems.append(f"duplicated {res['duplicated']} > --max-duplicates "
                        f"{args.max_duplicates} ({res['redelivered']} stored again under a "
                        f"new key, {res['same_key']} same key in two stores)")
    if res["foreign"]:
        problems.append(f"{len(res['foreign'])} stored tensor(s) never published or not as "
                        f"sent, e.g. {res['foreign'][:3]}")
    if res["reused_keys"]:
        k, v = next(iter(res["reused_keys"].items()))
        problems.append(f"{len(res['reused_keys'])} key(s) hold different messages in "
                        f"different stores, e.g. {k}: ids {sorted(v)}")
    if res["unexplained"]:
        problems.append(f"{len(res['unexplained'])} lost message(s) not explained by a kill "
                        f"(ids {ranges(res['unexplained'])[:200]})")
    print(f"soak: kills={len(kills)} published={res['published']} stored={res['stored']} "
          f"lost={res['lost']} duplicated={res['duplicated']} "
          f"longest_loss_window_ms={ww:.1f}"
          + (f" (kill {worst_w.n}, {len(worst_w.lost)} msgs)" if worst_w and ww else "")
          + f" max_lost_per_kill={len(worst_n.lost) if worst_n else 0}"
          f" kills_with_loss={len(lossy)} unexplained={len(res['unexplained'])}"
          f" foreign={len(res['foreign'])} elapsed_s={elapsed:.1f}"
          f" result={'FAIL' if problems else 'PASS'}")
    if args.verbose:
        windows = sorted(window_ms(pub, k) for k in kills)
        over = sum(w > 200 for w in windows)
        print(f"  run: seed {args.seed}, {args.rate:g} msg/s of {args.msg_bytes} B on "
              f"{args.topics} topic(s), run {args.run_min:g}..{args.run_max:g} s "
              f"({args.early:g} of rounds ..{args.early_max:g} s), down "
              f"0..{args.down_max:g} s; publisher fell behind and re-paced {pub_late} time(s)")
        kinds = {}
        for n in leftovers:
            kind = ".seal-new" if n == ".seal-new" else n[:n.index("-") + 1] + "NAME"
            kinds[kind] = kinds.get(kind, 0) + 1
        print(f"  stores read: live + {n_snapshots} snapshot(s) and committed seal(s), "
              f"{res['tensors']} tensors; unfinished after the stop: "
              + (", ".join(f"{v} {k}" for k, v in sorted(kinds.items())) or "none"))
        print(f"  sent {res['sent']} (never acked {res['unacked']}, of which stored "
              f"{res['stored_unacked']}); duplicates: {res['redelivered']} new key, "
              f"{res['same_key']} same key twice ({len(res['dup_unexplained'])} new-key copies "
              f"not after a kill); ambiguous loss attributions {res['ambiguous']}")
        if windows:
            print(f"  loss windows: median {windows[len(windows) // 2]:.1f} ms, "
                  f"p90 {windows[int(len(windows) * 0.9) if len(windows) > 1 else 0]:.1f} ms, "
                  f"max {windows[-1]:.1f} ms; kills losing more than 200 ms: "
                  f"{over} of {len(kills)}")
    for p in problems:
        print(f"FAIL: {p}")


def main():
    ap = argparse.ArgumentParser(
        description="kill -9 soak of embeddb-agent under MQTT load (see the module docstring)")
    ap.add_argument("--build", default=os.path.join(REPO, "build"),
                    help="build directory (default: REPO/build)")
    ap.add_argument("--agent", help="embeddb-agent (default: BUILD/agent/embeddb-agent)")
    ap.add_argument("--dump", help="soak_dump (default: BUILD/tests/soak/soak_dump)")
    ap.add_argument("--mosquitto", default=os.environ.get("MOSQUITTO") or
                    shutil.which("mosquitto") or "/usr/sbin/mosquitto",
                    help="the broker (default: $MOSQUITTO, else from PATH)")
    ap.add_argument("--rounds", type=int, default=20, help="kills (default 20)")
    ap.add_argument("--rate", type=float, default=2000, help="messages per second (2000)")
    ap.add_argument("--msg-bytes", type=int, default=1024,
                    help="payload bytes, a multiple of 8, at least 24 (1024)")
    ap.add_argument("--topics", type=int, default=4, help="topics soak/0.. (4)")
    ap.add_argument("--seed", type=int, default=None, help="random seed (default: random, printed)")
    ap.add_argument("--run-min", type=float, default=0.05,
                    help="least seconds from READY=1 (subscribed) to the kill (0.05)")
    ap.add_argument("--run-max", type=float, default=2.0, help="most seconds to the kill (2)")
    ap.add_argument("--early", type=float, default=0.25,
                    help="share of rounds killed early, --run-min..--early-max s after READY=1, "
                    "while the backlog of the downtime arrives (0.25)")
    ap.add_argument("--early-max", type=float, default=0.25, help="see --early (0.25)")
    ap.add_argument("--down-max", type=float, default=2.0,
                    help="most seconds the agent stays dead before a restart (2)")
    ap.add_argument("--memtable-max", default="512KiB", help="agent storage.memtable_max (512KiB)")
    ap.add_argument("--snapshot-bytes", default="2MiB", help="agent snapshot.max_bytes (2MiB)")
    ap.add_argument("--snapshot-interval", default="5s", help="agent snapshot.interval (5s)")
    ap.add_argument("--max-lost-window-ms", type=float, default=None,
                    help="fail when a kill's loss window exceeds this (default: unchecked)")
    ap.add_argument("--max-lost-per-kill", type=int, default=None,
                    help="fail when a kill loses more messages (default: unchecked)")
    ap.add_argument("--max-duplicates", type=int, default=0, help="duplicates allowed (0)")
    ap.add_argument("--ready-timeout", type=float, default=30, help="seconds to READY=1")
    ap.add_argument("--drain-timeout", type=float, default=120,
                    help="seconds the drain may go without progress (120)")
    ap.add_argument("--keep-dir", action="store_true",
                    help="keep the temp dir (path printed): store, logs, kills.tsv")
    ap.add_argument("--broker-max-inflight", type=int, default=None,
                    help="mosquitto's max_inflight_messages (default: its own, 20)")
    ap.add_argument("-v", "--verbose", action="store_true", help="per-kill table and details")
    args = ap.parse_args()
    if args.msg_bytes < 24 or args.msg_bytes % 8 or args.rounds < 1 or args.rate <= 0 \
            or args.topics < 1 or not 0 < args.run_min <= args.run_max or args.down_max < 0 \
            or not 0 <= args.early <= 1 or args.early_max < args.run_min:
        ap.error("need --msg-bytes >= 24 and a multiple of 8, --rounds >= 1, --rate > 0, "
                 "--topics >= 1, 0 < --run-min <= --run-max, --down-max >= 0, "
                 "0 <= --early <= 1, --early-max >= --run-min")
    args.agent = args.agent or os.path.join(args.build, "agent", "embeddb-agent")
    args.dump = args.dump or os.path.join(args.build, "tests", "soak", "soak_dump")
    for exe in (args.agent, args.dump, args.mosquitto):
        if not os.access(exe, os.X_OK):
            ap.error(f"not an executable: {exe}")
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1 << 31)
    print(f"soak: seed {args.seed}, {args.rounds} rounds", file=sys.stderr, flush=True)
    # SIGTERM (ctest's timeout) unwinds through the cleanup like Ctrl-C.
    def interrupted(*_):
        print("soak: interrupted (SIGTERM); cleaning up", file=sys.stderr)
        sys.exit(1)
    signal.signal(signal.SIGTERM, interrupted)
    try:
        return run(args)
    except SoakError as e:
        print(f"soak: FAIL: {e}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
