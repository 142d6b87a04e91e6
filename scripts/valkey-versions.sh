#!/usr/bin/env bash
# Builds the Valkey versions of scripts/valkey-versions.txt from Debian's
# source packages into build/valkey/<version>/bin (valkey-server,
# valkey-cli, valkey-benchmark), skipping a version already built. Only the
# upstream (orig) tarball is used, with upstream's own make and its bundled
# jemalloc and Lua: Debian's patches make the build link against the
# system jemalloc instead. Nothing downloaded is committed (build/ is
# ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"

need=()
command -v make >/dev/null 2>&1 || need+=(make)
command -v gcc >/dev/null 2>&1 || need+=(gcc libc6-dev)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
command -v dpkg-source >/dev/null 2>&1 || need+=(dpkg-dev)
if [ ${#need[@]} -gt 0 ]; then
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

sources=/etc/apt/sources.list.d/iungo-valkey-src.sources
updated=""
grep -v '^[[:space:]]*\(#\|$\)' scripts/valkey-versions.txt | while read -r version suite package; do
  out="build/valkey/$version"
  if [ -x "$out/bin/valkey-server" ] && "$out/bin/valkey-server" --version | grep -q "v=$version "; then
    echo "valkey-versions: $version already built in $out"
    continue
  fi
  if ! grep -qs "^Suites:.* $suite\b" "$sources"; then
    suites=$(sed -n 's/^Suites: //p' "$sources" 2>/dev/null || true)
    $sudo tee "$sources" >/dev/null <<SRC
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: $(echo "$suites $suite" | xargs)
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    updated=""
  fi
  if [ -z "$updated" ]; then
    $sudo apt-get update -qq </dev/null
    updated=1
  fi
  work="build/valkey/src/$version"
  rm -rf "$work" && mkdir -p "$work"
  # The orig tarball is all we need: when a mirror lists a package whose
  # Debian part it no longer serves, apt-get fails after downloading it.
  # A newer Debian revision of the same upstream version (a security
  # update) has the same tarball: the suite's current one is tried next.
  for want in "valkey=$package" "valkey/$suite"; do
    (cd "$work" && apt-get source --download-only "$want" </dev/null >/dev/null 2>&1 || true)
    ls "$work"/valkey_"$version"*.orig.tar.* >/dev/null 2>&1 && break
  done
  orig=$(ls "$work"/valkey_"$version"*.orig.tar.* 2>/dev/null | head -1)
  if [ -z "$orig" ]; then
    echo "valkey-versions: Debian $suite no longer has the source of valkey $version ($package);" \
      "update scripts/valkey-versions.txt to a version it has: apt-cache showsrc valkey" >&2
    exit 1
  fi
  tar -xf "$orig" -C "$work"
  dir=$(find "$work" -mindepth 1 -maxdepth 1 -type d | head -1)
  echo "valkey-versions: building valkey $version (a few minutes)"
  make -C "$dir" -j"$(nproc)" BUILD_TLS=no </dev/null >"$work/build.log" 2>&1 || {
    tail -30 "$work/build.log" >&2
    exit 1
  }
  mkdir -p "$out/bin"
  for bin in valkey-server valkey-cli valkey-benchmark; do cp "$dir/src/$bin" "$out/bin/"; done
  rm -rf "$work"
  "$out/bin/valkey-server" --version
done
