#!/bin/sh
# The systemd unit: systemd-analyze verify accepts it (with ExecStart aimed at
# the freshly built binary) and its offline security exposure is <= 2.0.
# Usage: test_systemd_unit.sh UNIT AGENT_BINARY
set -eu
unit="$1"; agent="$2"
command -v systemd-analyze >/dev/null || { echo "systemd-analyze missing: skipped"; exit 0; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
sed "s#/usr/bin/embeddb-agent#$agent#" "$unit" > "$tmp/embeddb-agent.service"
# verify warns about the unknown User= on machines without the package's
# system user; every other complaint fails the test.
out2=$(systemd-analyze verify "$tmp/embeddb-agent.service" 2>&1 | grep "embeddb-agent.service:" | grep -v -i "user" || true)
if [ -n "$out2" ]; then echo "verify: $out2"; exit 1; fi
level=$(systemd-analyze security --offline=true "$tmp/embeddb-agent.service" 2>/dev/null \
        | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
echo "exposure $level"
[ -n "$level" ] || { echo "could not read the exposure level"; exit 1; }
awk -v l="$level" 'BEGIN { exit !(l <= 2.0) }' || { echo "exposure $level > 2.0"; exit 1; }
echo "1 passed, 0 failed"
