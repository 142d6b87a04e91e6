#!/usr/bin/env bash
# Installs what building and testing need, when missing: valkey-server and
# valkey-tools (Debian bookworm-backports), redis-server 7.0 (bookworm; the
# tests check that the module refuses to load there), chromium (the UI's browser
# test drives it headless), gcc for cgo, and a Go toolchain
# (Debian's, which then fetches the version go.mod asks for through the Go
# module proxy). Safe to run again; needs root or sudo only to install.
set -euo pipefail

need=()
command -v valkey-server >/dev/null 2>&1 || need+=(valkey-server)
command -v valkey-cli >/dev/null 2>&1 || need+=(valkey-tools)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v gcc >/dev/null 2>&1 || need+=(gcc libc6-dev)
command -v go >/dev/null 2>&1 || [ -x /usr/local/go/bin/go ] || need+=(golang-go)
[ ${#need[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${need[*]}"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
if ! grep -rqs '^[^#]*bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  $sudo tee /etc/apt/sources.list.d/bookworm-backports.sources >/dev/null <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq -t bookworm-backports "${need[@]}" >/dev/null 2>&1 ||
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -t bookworm-backports "${need[@]}"
valkey-server --version
