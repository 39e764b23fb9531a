#!/bin/sh
# The local end-to-end demo (the README's main job): a mosquitto broker on a
# free loopback port, embeddb-agent with conf/agent.yaml (storage under
# ./embeddb-demo), sample tensors published over MQTT in every format, then
# `embeddb ls` and `embeddb preview` on what was stored.
# Usage: sh examples/agent_demo.sh [BUILD_DIR]   (default ./build)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
agent=$build/agent/embeddb-agent
embeddb=$build/cli/embeddb
mosquitto=$(command -v mosquitto || echo /usr/sbin/mosquitto)
[ -x "$agent" ] && [ -x "$embeddb" ] || { echo "build first: cmake -S . -B build && cmake --build build"; exit 1; }
work=$(mktemp -d)
store=$PWD/embeddb-demo
broker_pid=""; agent_pid=""
cleanup() {
  [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null || true
  [ -n "$broker_pid" ] && kill "$broker_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location %s/\nuser root\n' \
  "$port" "$work" > "$work/mosquitto.conf"
"$mosquitto" -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &
broker_pid=$!
echo "== broker: mosquitto on 127.0.0.1:$port"

rm -rf "$store"
sed -e "s#^  port: 1883#  port: $port#" -e "s#^  dir: .*#  dir: $store#" \
  "$root/conf/agent.yaml" > "$work/agent.yaml"
"$agent" --check-config -c "$work/agent.yaml"
"$agent" -c "$work/agent.yaml" 2>"$work/agent.log" &
agent_pid=$!
i=0
until grep -q '^subscribed=1' "$store/agent.status" 2>/dev/null; do
  i=$((i + 1)); [ $i -lt 100 ] || { cat "$work/agent.log"; exit 1; }; sleep 0.1
done
echo "== agent: subscribed (conf/agent.yaml, store $store)"

echo "== publishing sample tensors"
/usr/bin/python3 - "$port" <<'PY'
import io, sys
import numpy as np
import paho.mqtt.publish as publish
port = int(sys.argv[1])
def npy(a):
    b = io.BytesIO(); np.save(b, a); return b.getvalue()
msgs = [("sensors/cam0/frame", npy(np.full((32, 32), 0.25, np.float32))),
        ("sensors/cam1/frame", npy(np.arange(64, dtype=np.uint8).reshape(8, 8))),
        ("sensors/imu", (np.arange(12, dtype=np.float32) * 0.5).tobytes()),
        ("sensors/env/json", b'{"shape":[2,2],"dtype":"int16","data":[[1,2],[3,4]]}')]
publish.multiple([{"topic": t, "payload": p, "qos": 1} for t, p in msgs],
                 hostname="127.0.0.1", port=port)
print(f"  paho: {len(msgs)} messages (npy x2, raw, json)")
PY
mosquitto_pub -h 127.0.0.1 -p "$port" -q 1 -t sensors/env/csv -m "20.5,21.0,21.25"
echo "  mosquitto_pub: 1 message (csv)"
i=0
until grep -q '^stored=5' "$store/agent.status" 2>/dev/null; do
  i=$((i + 1)); [ $i -lt 100 ] || { cat "$work/agent.log"; exit 1; }; sleep 0.1
done
kill -TERM "$agent_pid"; wait "$agent_pid" || true; agent_pid=""
echo "== agent log"; cat "$work/agent.log"
echo "== embeddb ls $store"
"$embeddb" ls "$store"
first=$("$embeddb" ls "$store" sensors/cam0/frame# | sed -n 2p | cut -f1)
echo "== embeddb preview $store $first -n 4"
"$embeddb" preview "$store" "$first" -n 4
echo "== embeddb verify $store"
"$embeddb" verify "$store"
