#!/bin/sh
# The local end-to-end demo (the README's main job): a mosquitto broker on a
# free loopback port, embeddb-agent with conf/agent.yaml (storage under
# ./embeddb-demo), sample tensors published over MQTT in every format,
# `embeddb ls` and `embeddb preview` on what was stored, and last a snapshot
# sealed and uploaded over TLS to a local nginx (certificates from a test CA
# made here), received as a tar that is itself a store.
# Usage: sh examples/agent_demo.sh [BUILD_DIR]   (default ./build)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
agent=$build/agent/embeddb-agent
embeddb=$build/cli/embeddb
mosquitto=$(command -v mosquitto || echo /usr/sbin/mosquitto)
nginx=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$agent" ] && [ -x "$embeddb" ] || { echo "build first: cmake -S . -B build && cmake --build build"; exit 1; }
work=$(mktemp -d)
store=$PWD/embeddb-demo
broker_pid=""; agent_pid=""; nginx_pid=""
cleanup() {
  [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null || true
  [ -n "$broker_pid" ] && kill "$broker_pid" 2>/dev/null || true
  [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM
free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
port=$(free_port)

printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location %s/\nuser root\n' \
  "$port" "$work" > "$work/mosquitto.conf"
"$mosquitto" -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &
broker_pid=$!
echo "== broker: mosquitto on 127.0.0.1:$port"

# The upload target: nginx with HTTPS and WebDAV PUT, its certificate issued
# by a CA made just for this demo.
https_port=$(free_port)
mkdir -p "$work/www" "$work/nginx"
(cd "$work" &&
  openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=embeddb demo CA" \
    -keyout ca.key -out ca.pem 2>/dev/null &&
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server.key \
    -out server.csr 2>/dev/null &&
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > san.ext &&
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 \
    -extfile san.ext -out server.pem 2>/dev/null)
user_line=""
[ "$(id -u)" = 0 ] && user_line="user root;"
cat > "$work/nginx.conf" <<NGINX
$user_line
worker_processes 1;
pid $work/nginx/nginx.pid;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path $work/nginx/body;
  server {
    listen 127.0.0.1:$https_port ssl;
    ssl_certificate $work/server.pem;
    ssl_certificate_key $work/server.key;
    root $work/www;
    client_max_body_size 0;
    location / { dav_methods PUT; create_full_put_path on; }
  }
}
NGINX
"$nginx" -c "$work/nginx.conf" -p "$work/nginx" -e "$work/nginx/error.log" -g 'daemon off;' &
nginx_pid=$!
echo "== upload target: nginx on https://localhost:$https_port (test CA $work/ca.pem)"

rm -rf "$store"
sed -e "s#^  port: 1883#  port: $port#" -e "s#^  dir: .*#  dir: $store#" \
  "$root/conf/agent.yaml" > "$work/agent.yaml"
printf 'device_id: edge-demo-01\nupload:\n  url: https://localhost:%s/snapshots\n  ca_file: %s/ca.pem\n  prefix: demo\n' \
  "$https_port" "$work" >> "$work/agent.yaml"
"$agent" --check-config -c "$work/agent.yaml"
"$agent" -c "$work/agent.yaml" 2>"$work/agent.log" &
agent_pid=$!
i=0
until grep -q '^subscribed=1' "$store/agent.status" 2>/dev/null; do
  i=$((i + 1)); [ $i -lt 100 ] || { cat "$work/agent.log"; exit 1; }; sleep 0.1
done
echo "== agent: subscribed (conf/agent.yaml + an upload section, store $store)"

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
echo "== embeddb ls $store"
"$embeddb" ls "$store"
first=$("$embeddb" ls "$store" sensors/cam0/frame# | sed -n 2p | cut -f1)
echo "== embeddb preview $store $first -n 4"
"$embeddb" preview "$store" "$first" -n 4
echo "== embeddb verify $store"
"$embeddb" verify "$store"

echo "== embeddb snapshot $store   (asks the running agent to seal one)"
"$embeddb" snapshot "$store"
i=0
until "$embeddb" snapshot ls "$store" | grep -q "	uploaded	"; do
  i=$((i + 1)); [ $i -lt 300 ] || { cat "$work/agent.log"; exit 1; }; sleep 0.1
done
echo "== embeddb snapshot ls $store"
"$embeddb" snapshot ls "$store"
snap=$("$embeddb" snapshot ls "$store" | sed -n 2p | cut -f1)
echo "== embeddb snapshot verify $store $snap"
"$embeddb" snapshot verify "$store" "$snap"
obj="$work/www/snapshots/demo/edge-demo-01/$snap.tar"
echo "== the server received $(wc -c < "$obj") bytes: $obj"
tar tvf "$obj"
mkdir "$work/received"
tar xf "$obj" -C "$work/received"
echo "== embeddb ls on the received copy"
"$embeddb" ls "$work/received/$snap"
kill -TERM "$agent_pid"; wait "$agent_pid" || true; agent_pid=""
echo "== agent log"; cat "$work/agent.log"
