#!/bin/sh
# The python3-embeddb Debian package (.ci/packages): its control fields
# (architecture all, the project's version, Depends on Debian's python3 and
# NumPy) and its contents, unpacked and used: the module imports from the
# package's dist-packages alone and `python3 -m embeddb verify` checks the
# v1 fixtures. Then `pip install ./python` in a venv with --no-index: the
# same package installs offline, with Debian's setuptools (python/_build).
# Usage: test_py_deb.sh PYTHON3_EMBEDDB_DEB REPO_ROOT
set -eu
[ $# -eq 2 ] || { echo "usage: $0 DEB REPO_ROOT" >&2; exit 2; }
deb="$1"; root=$(cd "$2" && pwd)
fail() { echo "FAIL: $*" >&2; exit 1; }
version=$(sed -n 's/^project(embeddb VERSION \([0-9.]*\).*/\1/p' "$root/CMakeLists.txt")
[ "$(dpkg-deb -f "$deb" Package)" = python3-embeddb ] || fail "package name"
[ "$(dpkg-deb -f "$deb" Architecture)" = all ] || fail "architecture $(dpkg-deb -f "$deb" Architecture)"
[ "$(dpkg-deb -f "$deb" Version)" = "$version" ] || fail "version $(dpkg-deb -f "$deb" Version), project $version"
case "$(dpkg-deb -f "$deb" Depends)" in *python3-numpy*) ;; *) fail "Depends lacks python3-numpy" ;; esac
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dpkg-deb -x "$deb" "$tmp"
pkg="$tmp/usr/lib/python3/dist-packages"
[ -f "$pkg/embeddb/__init__.py" ] || fail "no embeddb module in /usr/lib/python3/dist-packages"
[ -f "$tmp/usr/share/doc/python3-embeddb/README.md" ] || fail "no README"
got=$(cd "$tmp" && PYTHONPATH="$pkg" /usr/bin/python3 -c 'import embeddb; print(embeddb.__version__, embeddb.__file__)')
[ "$got" = "$version $pkg/embeddb/__init__.py" ] || fail "imported: $got"
out=$(cd "$tmp" && PYTHONPATH="$pkg" /usr/bin/python3 -m embeddb verify "$root/tests/core/fixtures/v1/checkpoint") ||
  fail "verify: $out"
echo "ok: $(basename "$deb"): version $version, architecture all, imports and verifies ($out)"

src="$tmp/src"
cp -r "$root/python" "$src"  # pip builds in place: not in the checkout
rm -rf "$src/build" "$src"/*.egg-info
/usr/bin/python3 -m venv --system-site-packages "$tmp/venv"
"$tmp/venv/bin/pip" install --no-index --no-cache-dir -q "$src" > "$tmp/pip.log" 2>&1 ||
  { cat "$tmp/pip.log" >&2; fail "pip install --no-index ./python"; }
got=$(cd "$tmp" && "$tmp/venv/bin/python" -c 'import embeddb; print(embeddb.__version__, embeddb.__file__)')
case "$got" in "$version $tmp/venv/lib/python3"*/site-packages/embeddb/__init__.py) ;;
  *) fail "pip-installed module: $got" ;; esac
echo "ok: pip install --no-index ./python: embeddb $version in a venv"
