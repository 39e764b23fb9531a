#!/bin/sh
# The Debian packages on a clean Debian 12: a fresh minbase root made by
# debootstrap for ARCH, systemd added, then the packages installed with apt
# (so their Depends must resolve from the Debian archive). Checks what an
# operator gets: the config validates, the system user and the state
# directory, the conffile, the unit enabled and accepted by
# `systemd-analyze verify`, the agent starting as its user on its state
# directory and stopping cleanly, and that upgrade keeps an edited config
# while remove and purge never delete /var/lib/embeddb.
# A foreign ARCH runs under qemu-user-static through binfmt_misc.
# Usage (as root): test_deb_install.sh ARCH WORKDIR AGENT_DEB CLI_DEB
set -eu
[ $# -eq 4 ] || { echo "usage: $0 ARCH WORKDIR AGENT_DEB CLI_DEB" >&2; exit 2; }
arch="$1"; work="$2"; agent_deb="$3"; cli_deb="$4"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
root="$work/debian12-$arch"
passed=0
ok() { passed=$((passed + 1)); echo "ok: $*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
# Commands in the root run as on a board named board-17 (their own UTS
# namespace): the shipped config takes its device_id from the host name.
# in_root_exec replaces the calling (sub)shell, so `in_root_exec CMD &`
# leaves $! naming CMD itself; in_root runs CMD and returns.
in_root_exec() { exec unshare --uts /bin/sh -c 'hostname board-17 && exec chroot "$@"' sh \
                 "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
                 DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 "$@"; }
in_root() { (in_root_exec "$@"); }

mkdir -p "$work"
rm -rf "$root"
echo "== debootstrap $arch (minbase bookworm)"
if ! debootstrap --arch="$arch" --variant=minbase bookworm "$root" "$mirror" \
     > "$work/debootstrap-$arch.log" 2>&1; then
  tail -20 "$work/debootstrap-$arch.log" >&2
  fail "debootstrap $arch"
fi
cp /etc/resolv.conf "$root/etc/resolv.conf"
mkdir -p "$root/tmp/debs"
cp "$agent_deb" "$cli_deb" "$root/tmp/debs/"
a="/tmp/debs/$(basename "$agent_deb")"; c="/tmp/debs/$(basename "$cli_deb")"

echo "== apt-get install systemd $(basename "$agent_deb") $(basename "$cli_deb")"
in_root apt-get update -q > "$work/apt-$arch.log" 2>&1 || { cat "$work/apt-$arch.log" >&2; fail "apt-get update"; }
in_root apt-get install -y -q --no-install-recommends systemd "$a" "$c" >> "$work/apt-$arch.log" 2>&1 ||
  { tail -30 "$work/apt-$arch.log" >&2; fail "apt-get install"; }
[ "$(in_root dpkg-query -W -f='${Architecture}' embeddb-agent)" = "$arch" ] || fail "not the $arch package"
ok "installed with its dependencies from Debian 12 ($arch)"

out=$(in_root embeddb-agent --check-config /etc/embeddb/agent.yaml) || fail "check-config: $out"
case "$out" in *"store /var/lib/embeddb, device_id board-17"*) ;; *) fail "check-config said: $out" ;; esac
ok "embeddb-agent --check-config /etc/embeddb/agent.yaml: $out"

pw=$(in_root getent passwd embeddb) || fail "no embeddb user"
case "$pw" in *:/var/lib/embeddb:/usr/sbin/nologin) ;; *) fail "user: $pw" ;; esac
uid=$(echo "$pw" | cut -d: -f3)
[ "$uid" -lt 1000 ] || fail "embeddb is not a system user (uid $uid)"
st=$(in_root stat -c '%U:%G %a' /var/lib/embeddb)
[ "$st" = "embeddb:embeddb 700" ] || fail "state directory: $st"
ok "system user embeddb (uid $uid), /var/lib/embeddb $st"

in_root dpkg-query -W -f='${Conffiles}' embeddb-agent | grep -q "^ /etc/embeddb/agent.yaml " ||
  fail "agent.yaml is not a conffile"
ok "/etc/embeddb/agent.yaml is a conffile"

v=$(in_root systemd-analyze verify /lib/systemd/system/embeddb-agent.service 2>&1) || fail "verify: $v"
[ -z "$v" ] || fail "systemd-analyze verify complained: $v"
[ -L "$root/etc/systemd/system/multi-user.target.wants/embeddb-agent.service" ] || fail "unit not enabled"
ok "unit enabled; systemd-analyze verify: no complaints"

# The agent as the unit runs it: user embeddb, the shipped config. No broker
# listens on this port, so it keeps retrying; SIGTERM stops it cleanly.
sed -i 's/^  port: 1883/  port: 9/' "$root/etc/embeddb/agent.yaml"
in_root_exec setpriv --reuid=embeddb --regid=embeddb --init-groups \
  embeddb-agent -c /etc/embeddb/agent.yaml > "$work/agent-$arch.log" 2>&1 &
pid=$!
i=0
until [ -f "$root/var/lib/embeddb/agent.status" ] || [ $i -ge 100 ]; do sleep 0.2; i=$((i + 1)); done
kill -TERM "$pid"
rc=0; wait "$pid" || rc=$?
[ "$rc" = 0 ] || { cat "$work/agent-$arch.log" >&2; fail "agent exited $rc on SIGTERM"; }
[ -f "$root/var/lib/embeddb/agent.status" ] || { cat "$work/agent-$arch.log" >&2; fail "no agent.status"; }
owner=$(in_root stat -c %U /var/lib/embeddb/agent.status)
[ "$owner" = embeddb ] || fail "agent.status owned by $owner"
grep -qx "device_id=board-17" "$root/var/lib/embeddb/agent.status" || fail "device_id is not the host name"
in_root setpriv --reuid=embeddb --regid=embeddb --init-groups embeddb ls /var/lib/embeddb \
  > "$work/ls-$arch.log" 2>&1 || { cat "$work/ls-$arch.log" >&2; fail "embeddb ls on the agent's store"; }
ok "agent ran as embeddb on /var/lib/embeddb and stopped cleanly on SIGTERM"

# Upgrade (the same version again) keeps the operator's edit of the conffile.
in_root dpkg --force-confold -i "$a" > /dev/null 2>&1 || fail "reinstall"
grep -q '^  port: 9$' "$root/etc/embeddb/agent.yaml" || fail "reinstall replaced the edited config"
ok "reinstall keeps the edited /etc/embeddb/agent.yaml"

in_root apt-get remove -y -q embeddb-agent > /dev/null 2>&1 || fail "remove"
[ ! -e "$root/usr/bin/embeddb-agent" ] || fail "binary left after remove"
[ -f "$root/etc/embeddb/agent.yaml" ] || fail "remove deleted the config"
in_root apt-get purge -y -q embeddb-agent > /dev/null 2>&1 || fail "purge"
[ ! -e "$root/etc/embeddb/agent.yaml" ] || fail "purge left the config"
[ -f "$root/var/lib/embeddb/agent.status" ] || fail "purge deleted the store"
ok "remove keeps the config; purge removes it and keeps /var/lib/embeddb"

rm -rf "$root"
echo "$passed passed, 0 failed ($arch)"
