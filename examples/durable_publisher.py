#!/usr/bin/python3
"""durable_publisher.py -- publish to embeddb-agent and keep every message
until the agent says it is on flash (agent/CONTROL.md, "Durable watermark").

A broker's PUBACK only says the broker has the message, and the agent's
PUBACK goes out before it stores: a message can be acknowledged and still
be lost when the agent is killed or the power goes. This helper keeps what
it published until the agent's durable watermark covers it, and publishes
it again when it is not covered in time (the agent restarted, the broker
lost it). The agent recognises a message it already stored and does not
store it twice: each message carries two MQTT 5 user properties,
`embeddb-pub` (this publisher's id) and `embeddb-seq` (1, 2, 3, ...).

    pub = DurablePublisher("broker.local", 1883, device_id="board-7")
    pub.publish("sensors/imu", npy_bytes)   # waits while the buffer is full
    pub.flush(timeout=60)                   # everything durable on flash?
    pub.close()

Bounds: at most max_unconfirmed messages are kept (publish() waits for room
rather than drop one); it is at most 1024, the agent's de-duplication
window (agent/watermark.h, WM_WINDOW). A publisher id names one sequence
from 1 on; this process's id ends with its start time, so a restart of the
publisher starts a new sequence (the agent forgets old ids past
control.dedup_publishers). Needs Debian's python3-paho-mqtt (1.6).

Command line (a demo): durable_publisher.py HOST PORT DEVICE_ID TOPIC N
publishes N small npy tensors (values 0..N-1) and waits until all are durable.
"""
import collections
import io
import json
import os
import socket
import sys
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

WINDOW = 1024  # agent/watermark.h WM_WINDOW


class DurablePublisher:
    def __init__(self, host, port, device_id, prefix="embeddb", publisher_id=None,
                 max_unconfirmed=WINDOW, resend_after=5.0, qos=1):
        if not 1 <= max_unconfirmed <= WINDOW:
            raise ValueError(f"max_unconfirmed must be 1..{WINDOW} (the agent's window)")
        self.id = publisher_id or f"{socket.gethostname()}-{os.getpid()}-{time.time_ns()}"
        self.id = "".join(c if c.isalnum() or c in "._:-" else "_" for c in self.id)[:64]
        self.max = max_unconfirmed
        self.resend_after = resend_after
        self.qos = qos
        self.next_seq = 1
        self.through = 0                      # the agent's durable watermark for us
        self.pending = collections.OrderedDict()  # seq -> [topic, payload, sent_at]
        self.resent = 0
        self.cv = threading.Condition()
        self.closing = False
        self.durable_topic = f"{prefix}/{device_id}/durable"
        self.c = mqtt.Client(client_id=f"dp-{self.id}"[:64], protocol=mqtt.MQTTv5)
        self.c.on_connect = self._on_connect
        self.c.on_message = self._on_message
        self.c.connect_async(host, port, keepalive=30)
        self.c.loop_start()
        self.timer = threading.Thread(target=self._resend_loop, daemon=True)
        self.timer.start()

    def _on_connect(self, client, userdata, flags, rc, properties=None):
        if rc == 0:
            client.subscribe(self.durable_topic, qos=1)

    def _on_message(self, client, userdata, m):
        try:
            doc = json.loads(m.payload)
            mine = [p for p in doc.get("publishers", []) if p.get("id") == self.id]
        except (ValueError, AttributeError):
            return
        if not mine:
            return
        with self.cv:
            self.through = max(self.through, int(mine[0]["through"]))
            while self.pending and next(iter(self.pending)) <= self.through:
                self.pending.popitem(last=False)
            self.cv.notify_all()

    def _send(self, seq, topic, payload):
        props = Properties(PacketTypes.PUBLISH)
        props.UserProperty = [("embeddb-pub", self.id), ("embeddb-seq", str(seq)),
                              ("embeddb-time", str(time.time_ns()))]
        self.c.publish(topic, payload, qos=self.qos, properties=props)

    def publish(self, topic, payload, timeout=None):
        """Publishes and keeps the message until the watermark covers it.
        Waits while max_unconfirmed are kept; False when timeout passed."""
        with self.cv:
            if not self.cv.wait_for(lambda: len(self.pending) < self.max, timeout):
                return False
            seq = self.next_seq
            self.next_seq += 1
            self.pending[seq] = [topic, payload, time.monotonic()]
        self._send(seq, topic, payload)
        return True

    def _resend_loop(self):
        while True:
            with self.cv:
                if self.cv.wait_for(lambda: self.closing, min(1.0, self.resend_after)):
                    return
                now = time.monotonic()
                due = [(s, e[0], e[1]) for s, e in self.pending.items()
                       if now - e[2] >= self.resend_after]
                for s, _, _ in due:
                    self.pending[s][2] = now
                self.resent += len(due)
            for s, topic, payload in due:  # oldest first, as first sent
                self._send(s, topic, payload)

    def flush(self, timeout=None):
        """Waits until every message published so far is durable."""
        with self.cv:
            return self.cv.wait_for(lambda: not self.pending, timeout)

    def close(self):
        with self.cv:
            self.closing = True
            self.cv.notify_all()
        self.timer.join()
        self.c.loop_stop()
        self.c.disconnect()


def _npy(value):
    import numpy as np
    b = io.BytesIO()
    np.save(b, np.array([value], dtype=np.int64))
    return b.getvalue()


def main(argv):
    if len(argv) != 6:
        print(__doc__.split("Command line")[1], file=sys.stderr)
        return 2
    host, port, device, topic, n = argv[1], int(argv[2]), argv[3], argv[4], int(argv[5])
    pub = DurablePublisher(host, port, device)
    for i in range(n):
        pub.publish(topic, _npy(i))
    ok = pub.flush(timeout=120)
    print(f"{n} published as {pub.id}; all durable: {ok}; republished {pub.resent}")
    pub.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
