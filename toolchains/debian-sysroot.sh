#!/bin/sh
# Builds a target sysroot from Debian 12 packages, without root and without
# touching the machine's dpkg: a private apt state resolves the packages for
# ARCH, and each .deb is unpacked into DIR. The result is used exactly like
# a Yocto or Buildroot sysroot:
#   toolchains/debian-sysroot.sh armhf /opt/sysroot-armhf
#   cmake -S . -B build-armhf --toolchain toolchains/arm-linux-gnueabihf.cmake \
#         -DEMBEDDB_SYSROOT=/opt/sysroot-armhf
# CI uses it for armhf, where multiarch can't be installed when a mirror's
# security index for that architecture lags the host's (versions must match).
# Usage: debian-sysroot.sh ARCH DIR [MIRROR]
set -eu
[ $# -ge 2 ] || { echo "usage: $0 ARCH DIR [MIRROR]" >&2; exit 2; }
arch="$1"; dir="$2"; mirror="${3:-http://deb.debian.org/debian}"
pkgs="libc6-dev libmosquitto-dev libmbedtls-dev libyaml-dev libcmocka-dev libmicrohttpd-dev libzstd-dev zlib1g-dev"

mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
apt_dir="$dir/.apt"
mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial" "$apt_dir/etc/preferences.d"
: > "$apt_dir/status"
printf 'deb [arch=%s] %s bookworm main\ndeb [arch=%s] %s bookworm-updates main\n' \
  "$arch" "$mirror" "$arch" "$mirror" > "$apt_dir/etc/sources.list"
apt_opts="-o Dir::Etc::SourceList=$apt_dir/etc/sources.list -o Dir::Etc::SourceParts=/dev/null
-o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts=$apt_dir/etc/preferences.d
-o Dir::State::Lists=$apt_dir/lists -o Dir::State::Status=$apt_dir/status
-o Dir::Cache=$apt_dir/cache -o Dir::Cache::Archives=$apt_dir/archives
-o APT::Architecture=$arch -o APT::Architectures=$arch
-o Debug::NoLocking=1 -o APT::Sandbox::User=root -o APT::Get::AllowUnauthenticated=false"

# shellcheck disable=SC2086
apt-get $apt_opts -q update >/dev/null
# With an empty status file, --download-only fetches each package's whole
# dependency closure: the libraries the target links against at run time.
# shellcheck disable=SC2086
apt-get $apt_opts -q -y --no-install-recommends --download-only install $pkgs >/dev/null
for deb in "$apt_dir"/archives/*.deb; do
  dpkg-deb -x "$deb" "$dir"
done
# Absolute symlinks (libfoo.so -> /lib/...) would point at the build
# machine: make them relative to the sysroot.
find "$dir" -type l | while read -r link; do
  target="$(readlink "$link")"
  case "$target" in
    /*) ln -sfn "$(realpath -m --relative-to="$(dirname "$link")" "$dir$target")" "$link" ;;
  esac
done
echo "sysroot for $arch in $dir ($(ls "$apt_dir"/archives/*.deb | wc -l) packages)"
