#!/usr/bin/env bash
# Starts valkey-server on 127.0.0.1:6379 in the foreground with the module
# and the example triggers of testdata/examples/iungo.manifest. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
port=${PORT:-6379}
dir=$(mktemp -d -t iungo-run.XXXXXX)
cli=(valkey-cli -p "$port")

if "${cli[@]}" ping >/dev/null 2>&1; then
  echo "run: something already answers on port $port; stop it or use PORT=<port> make run" >&2
  exit 1
fi

valkey-server testdata/examples/valkey.conf --port "$port" --dir "$dir" \
  --loadmodule "$PWD/build/iungo.so" config "$PWD/testdata/examples/iungo.manifest" &
server=$!
cleanup() { kill -TERM "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
trap 'exit 0' INT TERM # Ctrl-C is how one stops it: not an error

for _ in $(seq 100); do "${cli[@]}" ping >/dev/null 2>&1 && break; sleep 0.05; done

cat <<MSG

valkey-server with iungo is running on 127.0.0.1:$port (Ctrl-C stops it).
Try, in another terminal:

  valkey-cli -p $port HSET order:1001 user u7 amount 120 status pending
  valkey-cli -p $port HSET order:1001 status completed
  valkey-cli -p $port GET points:u7                 # 120, credited once

  valkey-cli -p $port SET session-data:42:score 10
  valkey-cli -p $port SET session:42 alive PX 200
  sleep 1; valkey-cli -p $port EXISTS session-data:42:score   # 0: cleaned up

  valkey-cli -p $port IUNGO TRIGGER LIST

MSG
wait $server
